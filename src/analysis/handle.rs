//! The reports on the meter handle, and the builder's ledger settings.

use chrono_tz::Tz;

use super::{
    AnomalyReport, BreakdownTree, CacheReport, Comparison, EfficiencyReport, Forecast, ReportFilter, TimeOfDayReport,
    UsageSummary,
};
use crate::ledger::{Dimension, Ledger, LedgerConfig, LedgerStats, Query, QueryError, QueryResult, Window};
use crate::meter::{TokenMeter, TokenMeterBuilder};

impl TokenMeterBuilder {
    /// The time zone of the ledger's local hours, days, weeks and months (default UTC). It wins over the zone
    /// of a [`with_ledger_config`](Self::with_ledger_config), before or after it.
    pub fn with_time_zone(mut self, tz: Tz) -> Self {
        self.time_zone = Some(tz);
        self
    }

    /// Replaces the ledger's settings; its time zone applies unless [`with_time_zone`](Self::with_time_zone) is
    /// set (a config made for its thresholds alone put the reports back in UTC).
    pub fn with_ledger_config(mut self, config: LedgerConfig) -> Self {
        self.ledger_config = config;
        self
    }
}

impl TokenMeter {
    /// The meter's ledger: rolling aggregates of every call, task and tool execution it records (and every
    /// record the journal replays), and the reports on them. The reports below compute under its lock
    /// (milliseconds): from async code, run them with `tokio::task::spawn_blocking` (see [`Ledger`]).
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// [`Ledger::query`].
    pub fn query(&self, query: &Query) -> Result<QueryResult, QueryError> {
        self.ledger().query(query)
    }

    /// [`Ledger::usage_summary`].
    pub fn usage_summary(&self, window: Window) -> Result<UsageSummary, QueryError> {
        self.ledger().usage_summary(window)
    }

    /// [`Ledger::efficiency_report`].
    pub fn efficiency_report(&self, window: Window, group_by: Dimension) -> Result<EfficiencyReport, QueryError> {
        self.ledger().efficiency_report(window, group_by)
    }

    /// [`Ledger::efficiency_report_for`]: the efficiency report of the records `filter` keeps.
    pub fn efficiency_report_for(
        &self,
        window: Window,
        group_by: Dimension,
        filter: &ReportFilter,
    ) -> Result<EfficiencyReport, QueryError> {
        self.ledger().efficiency_report_for(window, group_by, filter)
    }

    /// [`Ledger::cache_report`].
    pub fn cache_report(&self, window: Window) -> Result<CacheReport, QueryError> {
        self.ledger().cache_report(window)
    }

    /// [`Ledger::cache_report_for`]: the cache report of the records `filter` keeps.
    pub fn cache_report_for(&self, window: Window, filter: &ReportFilter) -> Result<CacheReport, QueryError> {
        self.ledger().cache_report_for(window, filter)
    }

    /// [`Ledger::breakdown_tree`].
    pub fn breakdown_tree(
        &self,
        window: Window,
        parent: Dimension,
        child: Dimension,
    ) -> Result<BreakdownTree, QueryError> {
        self.ledger().breakdown_tree(window, parent, child)
    }

    /// [`Ledger::time_of_day`].
    pub fn time_of_day(&self, window: Window) -> Result<TimeOfDayReport, QueryError> {
        self.ledger().time_of_day(window)
    }

    /// [`Ledger::anomalies`].
    pub fn anomalies(&self, window: Window) -> Result<AnomalyReport, QueryError> {
        self.ledger().anomalies(window)
    }

    /// [`Ledger::forecast`].
    pub fn forecast(&self, days: u32, monthly_limit_usd: Option<f64>) -> Result<Forecast, QueryError> {
        self.ledger().forecast(days, monthly_limit_usd)
    }

    /// [`Ledger::compare_periods`].
    pub fn compare_periods(&self, window: Window) -> Result<Comparison, QueryError> {
        self.ledger().compare_periods(window)
    }

    /// [`Ledger::compare_values`].
    pub fn compare_values(
        &self,
        window: Window,
        dimension: Dimension,
        a: &str,
        b: &str,
    ) -> Result<Comparison, QueryError> {
        self.ledger().compare_values(window, dimension, a, b)
    }

    /// [`Ledger::stats`].
    pub fn ledger_stats(&self) -> LedgerStats {
        self.ledger().stats()
    }
}
