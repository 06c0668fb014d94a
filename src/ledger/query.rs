//! The query API: windows, filters, group-by; and the selection machinery the reports share.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::Ledger;
use super::agg::{Agg, Core, Histograms, OTHER, SeriesKey, ToolAgg};
use super::bucket::{Bucket, Tier};
use super::calendar::{self, Grain};
use super::store::Store;
use crate::pricing::Money;
use crate::record::TokenUsage;

// === Window ===

/// A time window of a query or report.
///
/// The rolling windows end with the current minute and are aligned so their edges fall on bucket edges (see
/// the [module docs](crate::ledger#windows-and-edges)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// The current minute and the 59 before it.
    LastHour,
    /// The current local hour and the 5 before it.
    Last6Hours,
    /// The current local hour and the 23 before it.
    Last24Hours,
    /// Today (local) and the 6 days before it.
    Last7Days,
    /// Today (local) and the 29 days before it.
    Last30Days,
    /// Everything the ledger holds.
    All,
    /// `[from, to)`.
    Range {
        /// Inclusive start.
        from: DateTime<Utc>,
        /// Exclusive end.
        to: DateTime<Utc>,
    },
}

impl Window {
    /// `[from, to)`; checked when the window is used ([`QueryError::InvalidWindow`] if `from >= to`).
    pub fn range(from: DateTime<Utc>, to: DateTime<Utc>) -> Window {
        Window::Range { from, to }
    }

    /// The window's `[from, to)` in Unix seconds at `now`.
    pub(crate) fn bounds(&self, store: &Store, now: i64) -> Result<(i64, i64), QueryError> {
        let tz = store.tz;
        let end = now.div_euclid(60) * 60 + 60;
        let days_back = |n: i64| {
            let today = calendar::local(tz, now).date();
            calendar::start_of_date(tz, calendar::add_days(today, -n))
        };
        Ok(match *self {
            Window::LastHour => (end - 3_600, end),
            Window::Last6Hours => (calendar::hours_back(tz, now, 5), end),
            Window::Last24Hours => (calendar::hours_back(tz, now, 23), end),
            Window::Last7Days => (days_back(6), end),
            Window::Last30Days => (days_back(29), end),
            Window::All => {
                let mut from = store.first_ts.map_or(end - 60, |f| f.div_euclid(60) * 60);
                if let Some(b) = store.buckets(i64::MIN, i64::MAX).next() {
                    from = from.min(b.start);
                }
                (from, end.max(store.last_ts.map_or(end, |l| l.div_euclid(60) * 60 + 60)))
            }
            Window::Range { from, to } => {
                if from >= to {
                    return Err(QueryError::InvalidWindow { from, to });
                }
                // Whole seconds, the exclusive end rounded up: an end at 10:00:00.9 keeps the 10:00 minute, and
                // two bounds within one second (10:02:00.25..10:02:00.75) are not an empty window.
                let end = to.timestamp() + i64::from(to.timestamp_subsec_nanos() > 0);
                (from.timestamp(), end)
            }
        })
    }

    /// [`Window::bounds`], a `FROM..TO` window widened to the edges of the buckets its bounds fall in (see
    /// [`Ledger::aligned`]).
    pub(crate) fn aligned_bounds(&self, store: &Store, now: i64) -> Result<(i64, i64), QueryError> {
        let (from, to) = self.bounds(store, now)?;
        Ok(match self {
            Window::Range { .. } => {
                (store.bucket_start(from, now).min(from), store.bucket_edge_at_or_after(to, now).max(to))
            }
            _ => (from, to),
        })
    }

    /// The window before this one, for period comparisons: the same stretch one period earlier. For the
    /// rolling windows it starts the same whole units before `from` (`7d`: 7 local days before the current
    /// window's first day; `24h`: 24 local hours before its first hour) and ends where the current window's
    /// whole hours end, one period earlier (`7d` at 09:20: 7 days ago at 09:00); the older data is kept by the
    /// hour at best, so the current partial hour has no exact counterpart, and the comparison's rates cover
    /// the difference. `1h`, a range and `All`: the same length just before it.
    pub(crate) fn previous_bounds(&self, tz: chrono_tz::Tz, now: i64, from: i64, to: i64) -> (i64, i64) {
        let days_before =
            |n: i64| calendar::start_of_date(tz, calendar::add_days(calendar::local(tz, from).date(), -n));
        let hours_back = |t: i64, n: u32| calendar::hours_back(tz, t, n);
        let days_back_now = |n: i64| {
            let t = calendar::same_local_time(tz, now, -n).unwrap_or(now - n * 86_400);
            calendar::hour_start(tz, t)
        };
        match self {
            Window::LastHour => (from - 3_600, from),
            Window::Last6Hours => (hours_back(from, 6), hours_back(now, 6)),
            Window::Last24Hours => (hours_back(from, 24), hours_back(now, 24)),
            Window::Last7Days => (days_before(7), days_back_now(7)),
            Window::Last30Days => (days_before(30), days_back_now(30)),
            Window::All | Window::Range { .. } => (from - (to - from), from),
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::LastHour => f.write_str("1h"),
            Window::Last6Hours => f.write_str("6h"),
            Window::Last24Hours => f.write_str("24h"),
            Window::Last7Days => f.write_str("7d"),
            Window::Last30Days => f.write_str("30d"),
            Window::All => f.write_str("all"),
            Window::Range { from, to } => write!(f, "{}..{}", from.to_rfc3339(), to.to_rfc3339()),
        }
    }
}

impl FromStr for Window {
    type Err = QueryError;

    /// `1h`, `6h`, `24h`, `7d`, `30d`, `all`, or `FROM..TO` with RFC 3339 times.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Ok(match s.to_ascii_lowercase().as_str() {
            "1h" => Window::LastHour,
            "6h" => Window::Last6Hours,
            "24h" | "1d" => Window::Last24Hours,
            "7d" => Window::Last7Days,
            "30d" => Window::Last30Days,
            "all" => Window::All,
            _ => {
                let (a, b) = s.split_once("..").ok_or_else(|| QueryError::UnknownWindow(s.to_owned()))?;
                let parse = |t: &str| {
                    DateTime::parse_from_rfc3339(t.trim())
                        .map(|d| d.with_timezone(&Utc))
                        .map_err(|_| QueryError::UnknownWindow(s.to_owned()))
                };
                let (from, to) = (parse(a)?, parse(b)?);
                if from >= to {
                    return Err(QueryError::InvalidWindow { from, to });
                }
                Window::Range { from, to }
            }
        })
    }
}

/// A resolved window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowBounds {
    /// Inclusive start.
    pub from: DateTime<Utc>,
    /// Exclusive end.
    pub to: DateTime<Utc>,
}

impl WindowBounds {
    pub(crate) fn of(from: i64, to: i64) -> Self {
        WindowBounds { from: calendar::utc(from), to: calendar::utc(to) }
    }
}

// === Dimension, TimeGrain, GroupBy, Filter ===

/// An attribution dimension of the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// The model: the price book's id for a model the book knows (whatever id a call gave), else the id as given.
    Model,
    /// The provider (`gen_ai.provider.name`).
    Provider,
    /// `session.id`.
    Session,
    /// `project`.
    Project,
    /// `gen_ai.agent.name` / `agent`.
    Agent,
    /// The application's `operation`.
    Operation,
    /// The enclosing task's name.
    Task,
    /// Tool executions (`gen_ai.tool.name`).
    Tool,
    /// `user.id`.
    User,
    /// `tenant.id`.
    Tenant,
}

impl Dimension {
    /// Every dimension.
    pub const ALL: [Dimension; 10] = [
        Dimension::Model,
        Dimension::Provider,
        Dimension::Session,
        Dimension::Project,
        Dimension::Agent,
        Dimension::Operation,
        Dimension::Task,
        Dimension::Tool,
        Dimension::User,
        Dimension::Tenant,
    ];

    /// The snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            Dimension::Model => "model",
            Dimension::Provider => "provider",
            Dimension::Session => "session",
            Dimension::Project => "project",
            Dimension::Agent => "agent",
            Dimension::Operation => "operation",
            Dimension::Task => "task",
            Dimension::Tool => "tool",
            Dimension::User => "user",
            Dimension::Tenant => "tenant",
        }
    }

    /// True for the dimensions of the compound series (any combination can be filtered and grouped).
    pub(crate) const fn is_compound(self) -> bool {
        matches!(
            self,
            Dimension::Model
                | Dimension::Provider
                | Dimension::Project
                | Dimension::Agent
                | Dimension::Operation
                | Dimension::Task
                | Dimension::Tenant
        )
    }

    /// The label of a missing value.
    pub(crate) const fn none_label(self) -> &'static str {
        match self {
            Dimension::Model | Dimension::Provider => "unknown",
            _ => "(none)",
        }
    }

    pub(crate) fn label(self, v: Option<&str>) -> String {
        v.unwrap_or(self.none_label()).to_owned()
    }

    pub(crate) fn of_key(self, k: &SeriesKey) -> Option<&str> {
        match self {
            Dimension::Model => k.model.as_deref(),
            Dimension::Provider => k.provider.as_deref(),
            Dimension::Project => k.project.as_deref(),
            Dimension::Agent => k.agent.as_deref(),
            Dimension::Operation => k.operation.as_deref(),
            Dimension::Task => k.task.as_deref(),
            Dimension::Tenant => k.tenant.as_deref(),
            Dimension::Session | Dimension::Tool | Dimension::User => None,
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dimension {
    type Err = QueryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        Dimension::ALL.into_iter().find(|d| d.name() == t).ok_or_else(|| QueryError::UnknownDimension(s.to_owned()))
    }
}

/// A calendar grain for time grouping, in the ledger's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeGrain {
    /// Local hours.
    Hour,
    /// Local days.
    Day,
    /// Local weeks, from Monday unless [`LedgerConfig::with_week_start`](super::LedgerConfig::with_week_start)
    /// names another day.
    Week,
    /// Calendar months.
    Month,
}

impl TimeGrain {
    /// The snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            TimeGrain::Hour => "hour",
            TimeGrain::Day => "day",
            TimeGrain::Week => "week",
            TimeGrain::Month => "month",
        }
    }

    /// The end of the grain that starts at `start` in `tz` (where the next one starts): a local day across a DST
    /// change is 23 or 25 hours. `start` is a grain's start, as a time row's key gives it.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use tokenmeter::ledger::TimeGrain;
    ///
    /// // Paris, the day the clocks went forward: 23 hours.
    /// let start = Utc.with_ymd_and_hms(2026, 3, 28, 23, 0, 0).unwrap();
    /// let end = TimeGrain::Day.end_of(start, chrono_tz::Europe::Paris);
    /// assert_eq!(end, Utc.with_ymd_and_hms(2026, 3, 29, 22, 0, 0).unwrap());
    /// ```
    pub fn end_of(self, start: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        // A week's end is 7 local days after its start, whichever day weeks start on.
        DateTime::from_timestamp(calendar::grain_end(tz, self.grain(0), start.timestamp()), 0).unwrap_or(start)
    }

    /// The calendar grain, weeks starting `week_start` days after Monday.
    pub(crate) const fn grain(self, week_start: u8) -> Grain {
        match self {
            TimeGrain::Hour => Grain::Hour,
            TimeGrain::Day => Grain::Day,
            TimeGrain::Week => Grain::Week(week_start),
            TimeGrain::Month => Grain::Month,
        }
    }
}

impl fmt::Display for TimeGrain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a query groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// One row per value of a dimension.
    Dimension(Dimension),
    /// One row per local hour, day, week or month.
    Time(TimeGrain),
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupBy::Dimension(d) => d.fmt(f),
            GroupBy::Time(g) => g.fmt(f),
        }
    }
}

impl FromStr for GroupBy {
    type Err = QueryError;

    /// A dimension name, or `hour`, `day`, `week`, `month`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "hour" => GroupBy::Time(TimeGrain::Hour),
            "day" => GroupBy::Time(TimeGrain::Day),
            "week" => GroupBy::Time(TimeGrain::Week),
            "month" => GroupBy::Time(TimeGrain::Month),
            _ => GroupBy::Dimension(s.parse().map_err(|_| QueryError::UnknownGroupBy(s.to_owned()))?),
        })
    }
}

/// Keeps only records whose `dimension` equals `value` (`unknown` for a missing model or provider,
/// `(none)` for other missing values, `(other)` for the overflow entry).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Filter {
    /// The dimension.
    pub dimension: Dimension,
    /// The value.
    pub value: String,
}

impl Filter {
    /// `dimension == value`.
    pub fn new(dimension: Dimension, value: impl Into<String>) -> Self {
        Filter { dimension, value: value.into() }
    }

    fn matches(&self, v: Option<&str>) -> bool {
        match v {
            Some(v) => v == self.value,
            None => self.value == self.dimension.none_label(),
        }
    }
}

impl FromStr for Filter {
    type Err = QueryError;

    /// `dimension=value`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (d, v) = s.split_once('=').ok_or_else(|| QueryError::InvalidArgument {
            name: "filter",
            reason: format!("`{s}` is not of the form dimension=value"),
        })?;
        Ok(Filter::new(d.parse()?, v.trim()))
    }
}

// === Query ===

/// A query: a window, equality filters, and an optional group-by.
///
/// Supported shapes: any filters on model, provider, project, agent, operation, task and tenant, grouped by
/// any of those or by time; a filter on session, user or tool alone (or project with session), grouped by
/// time or not at all; grouped by session (optionally filtered by project), by user, or by tool, without
/// other filters; grouped by project filtered by session; grouped by tool filtered by session, or by session
/// filtered by tool (tool rows count executions in `calls`, errors in `failed_calls`). Others are
/// [`QueryError::Unsupported`].
///
/// ```
/// use tokenmeter::ledger::{Dimension, GroupBy, Query, Window};
///
/// let q = Query::new(Window::Last7Days)
///     .filter(Dimension::Agent, "support-bot")
///     .group_by(GroupBy::Dimension(Dimension::Model));
/// # let _ = q;
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[must_use]
pub struct Query {
    /// The window.
    pub window: Window,
    /// Equality filters, all of which must hold.
    #[serde(default)]
    pub filters: Vec<Filter>,
    /// Grouping.
    #[serde(default)]
    pub group_by: Option<GroupBy>,
}

impl Query {
    /// A query over `window`, unfiltered, ungrouped.
    pub fn new(window: Window) -> Self {
        Query { window, filters: Vec::new(), group_by: None }
    }

    /// Adds a filter.
    pub fn filter(mut self, dimension: Dimension, value: impl Into<String>) -> Self {
        self.filters.push(Filter::new(dimension, value));
        self
    }

    /// Sets the grouping.
    pub fn group_by(mut self, group_by: GroupBy) -> Self {
        self.group_by = Some(group_by);
        self
    }
}

/// Token counts by kind, for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFigures {
    /// Uncached input.
    pub input: u64,
    /// Output (reasoning included).
    pub output: u64,
    /// Read from the cache.
    pub cache_read: u64,
    /// Written to the cache, 5-minute lifetime.
    pub cache_write_5m: u64,
    /// Written to the cache, 1-hour lifetime.
    pub cache_write_1h: u64,
    /// Written to the cache, both lifetimes.
    pub cache_creation: u64,
    /// Reasoning (part of output).
    pub reasoning: u64,
    /// Every billed token.
    pub total: u64,
}

impl From<&TokenUsage> for TokenFigures {
    fn from(t: &TokenUsage) -> Self {
        TokenFigures {
            input: t.input,
            output: t.output,
            cache_read: t.cache_read,
            cache_write_5m: t.cache_write_5m,
            cache_write_1h: t.cache_write_1h,
            cache_creation: t.cache_write(),
            reasoning: t.reasoning,
            total: t.total(),
        }
    }
}

/// One row of a query result (or the totals).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRow {
    /// The group's value (a dimension value, or the RFC 3339 start of a time grain at the ledger's time zone's
    /// offset then: `2025-11-03T00:00:00+09:00` for a Tokyo day, `+00:00` in UTC).
    pub key: String,
    /// Calls.
    pub calls: u64,
    /// Calls that ended in an error.
    pub failed_calls: u64,
    /// Calls without usage.
    pub unmetered_calls: u64,
    /// Metered calls on models the price book does not know.
    pub unpriced_calls: u64,
    /// Tasks.
    pub tasks: u64,
    /// Tokens by kind.
    pub tokens: TokenFigures,
    /// Cost in USD.
    pub cost_usd: f64,
    /// The exact cost in pico-USD: rows of a partition add up to its total exactly (their `cost_usd` floats
    /// may not, by a few units in the last place). Absent (0) in results written before it was added.
    #[serde(default)]
    pub cost_picos: Money,
    /// Share of the selection's cost (0-1).
    pub cost_share: f64,
    /// Share of the selection's tokens (0-1).
    pub token_share: f64,
}

pub(crate) fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

impl GroupRow {
    pub(crate) fn of(key: String, c: &Core, total: &Core) -> Self {
        GroupRow {
            key,
            calls: c.calls,
            failed_calls: c.failed_calls,
            unmetered_calls: c.unmetered_calls,
            unpriced_calls: c.unpriced_calls,
            tasks: c.tasks,
            tokens: TokenFigures::from(&c.tokens),
            cost_usd: c.cost.as_usd(),
            cost_picos: c.cost,
            cost_share: ratio(c.cost.picos() as f64, total.cost.picos() as f64),
            token_share: ratio(c.tokens.total() as f64, total.tokens.total() as f64),
        }
    }
}

/// The answer to a [`Query`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// The resolved window.
    pub window: WindowBounds,
    /// The filters applied.
    pub filters: Vec<Filter>,
    /// The grouping, if any.
    pub group_by: Option<GroupBy>,
    /// The whole selection.
    pub totals: GroupRow,
    /// One row per group: by cost (then calls) for dimensions, by time for time grains.
    pub groups: Vec<GroupRow>,
    /// With filters: calls in the window that the ledger holds in an overflow entry (past a cardinality cap)
    /// where a filtered dimension was folded to `(other)`. They may match the filters but are not counted,
    /// never guessed; the figures are exact when it is 0. Absent (`None`) without filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unattributed_calls: Option<u64>,
}

/// An invalid query or report request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The window's start is not before its end.
    #[error("window start {from} is not before its end {to}: give a `from` earlier than `to`")]
    InvalidWindow {
        /// Start.
        from: DateTime<Utc>,
        /// End.
        to: DateTime<Utc>,
    },
    /// A window string that is not one of the known forms.
    #[error("unknown window `{0}`: expected 1h, 6h, 24h, 7d, 30d, all, or FROM..TO with RFC 3339 times")]
    UnknownWindow(String),
    /// A dimension name that is not known.
    #[error(
        "unknown dimension `{0}`: expected model, provider, session, project, agent, operation, task, tool, user or tenant"
    )]
    UnknownDimension(String),
    /// A group-by that is neither a dimension nor a time grain.
    #[error("unknown group-by `{0}`: expected a dimension name (model, agent, …) or hour, day, week, month")]
    UnknownGroupBy(String),
    /// The same dimension filtered twice.
    #[error("dimension `{0}` is filtered twice: give each dimension at most one value")]
    DuplicateFilter(Dimension),
    /// A combination of filters and grouping the ledger's series cannot answer exactly.
    #[error("unsupported query: {0}")]
    Unsupported(String),
    /// The ledger no longer keeps data at the asked resolution for the window.
    #[error("{grain} resolution is not available for this window: {detail}")]
    ResolutionUnavailable {
        /// The asked grain.
        grain: TimeGrain,
        /// What is kept.
        detail: String,
    },
    /// A report argument out of range.
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// The argument.
        name: &'static str,
        /// What is wrong and what is expected.
        reason: String,
    },
}

// === Selection ===

/// Which records a query keeps, in terms of the series that can answer it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Selection {
    All,
    Compound(Vec<Filter>),
    Session(String),
    User(String),
    ProjectSession(Filter, String),
    Tool(String),
}

fn matches_key(filters: &[Filter], k: &SeriesKey) -> bool {
    filters.iter().all(|f| f.matches(f.dimension.of_key(k)))
}

/// Adds the row `label` holding what `total` has beyond `rows` (merged into a row of that name if there is
/// one), when that is any call.
pub(crate) fn add_rest(rows: &mut Vec<(String, Agg)>, total: &Agg, label: &str) {
    let mut part = Agg::default();
    rows.iter().for_each(|(_, a)| part.merge(a));
    let rest = total.less(&part);
    if rest.core.calls > 0 {
        match rows.iter_mut().find(|(k, _)| k == label) {
            Some((_, a)) => a.merge(&rest),
            None => rows.push((label.to_owned(), rest)),
        }
    }
}

/// Tool executions as an [`Agg`]: executions in `calls`, errors in `failed_calls`.
fn tool_agg(t: &ToolAgg) -> Agg {
    let mut a = Agg::default();
    a.core.calls = t.invocations;
    a.core.failed_calls = t.errors;
    a.core.duration_us = t.duration_us;
    a
}

/// A bucket's sums less those of every entry of `map` (the session or user map): the calls without one.
fn without(b: &Bucket, map: &rustc_hash::FxHashMap<std::sync::Arc<str>, Agg>) -> Agg {
    let mut part = Agg::default();
    map.values().for_each(|a| part.merge(a));
    b.totals.less(&part)
}

/// True when `f`'s dimension was folded to `(other)` in a series past the cap, so whether the series
/// matches `f` is no longer known.
fn folded(f: &Filter, k: &SeriesKey) -> bool {
    f.value != OTHER && f.dimension.of_key(k) == Some(OTHER)
}

/// The longest window whose report series is by hour: 49 hours, two local days where one of them is 25 hours long
/// (the clocks go back); two days of any other week are 48.
pub(crate) const HOURLY_SERIES_UP_TO_SECS: i64 = 49 * 3_600;

impl Selection {
    /// The selection of `filters`; a model filter takes any id of the model (`claude-sonnet-4-5-20250929`,
    /// a Bedrock or Vertex id), as the ledger files the calls of a model the price book knows under the book's id.
    pub(crate) fn from_filters(filters: &[Filter], prices: &crate::PriceBook) -> Result<Self, QueryError> {
        let canonical;
        let filters = match filters.iter().position(|f| f.dimension == Dimension::Model) {
            Some(i) => match prices.resolve(&filters[i].value) {
                Some(p) if p.canonical() != filters[i].value => {
                    let mut f = filters.to_vec();
                    f[i].value = p.canonical().to_owned();
                    canonical = f;
                    &canonical[..]
                }
                _ => filters,
            },
            None => filters,
        };
        for (i, f) in filters.iter().enumerate() {
            if filters[..i].iter().any(|g| g.dimension == f.dimension) {
                return Err(QueryError::DuplicateFilter(f.dimension));
            }
        }
        if filters.is_empty() {
            return Ok(Selection::All);
        }
        if filters.iter().all(|f| f.dimension.is_compound()) {
            return Ok(Selection::Compound(filters.to_vec()));
        }
        let find = |d: Dimension| filters.iter().find(|f| f.dimension == d);
        match (filters.len(), find(Dimension::Session), find(Dimension::User), find(Dimension::Tool)) {
            (1, Some(s), _, _) => Ok(Selection::Session(s.value.clone())),
            (1, _, Some(u), _) => Ok(Selection::User(u.value.clone())),
            (1, _, _, Some(t)) => Ok(Selection::Tool(t.value.clone())),
            (2, Some(s), None, None) => match find(Dimension::Project) {
                Some(p) => Ok(Selection::ProjectSession(p.clone(), s.value.clone())),
                None => Err(unsupported_filters()),
            },
            _ => Err(unsupported_filters()),
        }
    }

    /// The selection's sums in one bucket.
    pub(crate) fn agg(&self, b: &Bucket) -> Agg {
        match self {
            Selection::All => b.totals.clone(),
            Selection::Compound(f) => {
                let mut a = Agg::default();
                for s in b.series.values().filter(|s| matches_key(f, &s.key)) {
                    a.merge(&s.agg);
                }
                a
            }
            // The session and user maps hold only the calls that have one: `(none)` is the rest of the bucket.
            Selection::Session(s) if s == Dimension::Session.none_label() => without(b, &b.sessions),
            Selection::User(u) if u == Dimension::User.none_label() => without(b, &b.users),
            Selection::Session(s) => b.sessions.get(s.as_str()).cloned().unwrap_or_default(),
            Selection::User(u) => b.users.get(u.as_str()).cloned().unwrap_or_default(),
            // A project's calls without a session: its series less its (project, session) pairs.
            Selection::ProjectSession(p, s) if s == Dimension::Session.none_label() => {
                let whole = Selection::Compound(vec![p.clone()]).agg(b);
                let mut pairs = Agg::default();
                for e in b.project_sessions.values().filter(|e| p.matches(e.project.as_deref())) {
                    pairs.merge(&e.agg);
                }
                whole.less(&pairs)
            }
            Selection::ProjectSession(p, s) => {
                let mut a = Agg::default();
                for e in b.project_sessions.values().filter(|e| *e.session == **s && p.matches(e.project.as_deref())) {
                    a.merge(&e.agg);
                }
                a
            }
            Selection::Tool(t) => b.tools.get(t.as_str()).map(tool_agg).unwrap_or_default(),
        }
    }

    /// Calls over `[from, to)` held in overflow entries (past a cardinality cap) where the selection's value
    /// was folded to `(other)`: they may belong to the selection but are not counted in it.
    pub(crate) fn unattributed(&self, store: &Store, from: i64, to: i64) -> u64 {
        let mut n = 0;
        for b in store.buckets(from, to) {
            n += match self {
                Selection::All => 0,
                // Folded in one filter's dimension, and matching (or folded in) every other.
                Selection::Compound(f) => b
                    .series
                    .values()
                    .filter(|s| {
                        f.iter().any(|f| folded(f, &s.key))
                            && f.iter().all(|f| folded(f, &s.key) || f.matches(f.dimension.of_key(&s.key)))
                    })
                    .map(|s| s.agg.core.calls)
                    .sum(),
                // Calls folded into `(other)` have a session (a user): they are never `(none)`'s.
                Selection::Session(s) if s != OTHER && s != Dimension::Session.none_label() => {
                    b.sessions.get(OTHER).map_or(0, |a| a.core.calls)
                }
                Selection::User(u) if u != OTHER && u != Dimension::User.none_label() => {
                    b.users.get(OTHER).map_or(0, |a| a.core.calls)
                }
                Selection::Tool(t) if t != OTHER => b.tools.get(OTHER).map_or(0, |a| a.invocations),
                // Calls without a session are in the series only: those whose project was folded.
                Selection::ProjectSession(p, s) if s == Dimension::Session.none_label() => {
                    b.series.values().filter(|x| folded(p, &x.key)).map(|x| x.agg.core.calls).sum()
                }
                Selection::ProjectSession(p, s) if s != OTHER => b
                    .project_sessions
                    .values()
                    .filter(|e| {
                        &*e.session == OTHER && (p.matches(e.project.as_deref()) || e.project.as_deref() == Some(OTHER))
                    })
                    .map(|e| e.agg.core.calls)
                    .sum(),
                _ => 0,
            };
        }
        n
    }

    /// The selection's sums over `[from, to)`.
    pub(crate) fn total(&self, store: &Store, from: i64, to: i64) -> Agg {
        let mut a = Agg::default();
        for b in store.buckets(from, to) {
            a.merge(&self.agg(b));
        }
        a
    }

    /// [`Selection::total`] as the rows of a breakdown by `group_by` add up to it. Grouped by session under a
    /// project filter, the rows come from the (project, session) pairs and the total from the series, which
    /// fold differently past their caps (a project's series past the cap fold to `(other)`, its pairs keep
    /// the project): in each bucket the total is the pairs' sums plus what the series hold beyond them (the
    /// project's calls without a session), so that the rows never add up to more than it.
    pub(crate) fn total_for(&self, store: &Store, from: i64, to: i64, group_by: Option<Dimension>) -> Agg {
        match (group_by, self) {
            (Some(Dimension::Session), Selection::Compound(f))
                if f.len() == 1 && f[0].dimension == Dimension::Project =>
            {
                let mut a = Agg::default();
                for b in store.buckets(from, to) {
                    let mut pairs = Agg::default();
                    for e in b.project_sessions.values().filter(|e| f[0].matches(e.project.as_deref())) {
                        pairs.merge(&e.agg);
                    }
                    let beyond = self.agg(b).less(&pairs);
                    a.merge(&pairs);
                    a.merge(&beyond);
                }
                a
            }
            // Grouped by session under a tool filter, the rows come from the (session, tool) pairs and the total
            // from the tools map, whose caps are lower: a tool folded to `(other)` there (past 32 in a minute) kept
            // its pairs, and the rows added up to more than a total of 0. In each bucket the total is the pairs'
            // sums plus what the tools map holds beyond them.
            (Some(Dimension::Session), Selection::Tool(t)) => {
                let mut a = Agg::default();
                for b in store.buckets(from, to) {
                    let mut pairs = Agg::default();
                    for e in b.session_tools.values().filter(|e| *e.tool == **t) {
                        pairs.merge(&tool_agg(&e.agg));
                    }
                    let beyond = self.agg(b).less(&pairs);
                    a.merge(&pairs);
                    a.merge(&beyond);
                }
                a
            }
            _ => self.total(store, from, to),
        }
    }

    /// The row that makes a breakdown by `dim` add up to its total, when the rows' map does not hold every
    /// call: sessions and users (the calls without one, `(none)`), and the projects of one session (its calls
    /// in pairs folded past their cap, `(other)`).
    pub(crate) fn rest_label(&self, dim: Dimension) -> Option<&'static str> {
        match (dim, self) {
            (Dimension::Session | Dimension::User, _) => Some(dim.none_label()),
            (Dimension::Project, Selection::Session(_)) => Some(OTHER),
            _ => None,
        }
    }

    /// [`Selection::total`] of everything over `[from, to)` where either edge may fall inside an older,
    /// coarser bucket (a previous period 59 days back starts inside a month bucket, which `total` would leave
    /// out; a `7d` comparison's previous period ends at 09:00 inside a day bucket, which `total` would take
    /// whole): whole local days from the totals-only daily series and the hours around them from the hourly
    /// series while it keeps them, when both edges are on local hours. Else each edge moves to an edge of the
    /// bucket it falls in (the start back; the end on, or back when `end_on` is false: a span that must not
    /// reach past `to`), and the buckets give the sums over that span.
    ///
    /// Returns the sums and the span they cover (`[from, to)` when exact): a caller comparing rates divides
    /// by that span's length (the buckets starting in `[from, to)` alone would leave out the start's bucket
    /// and take the end's whole: a range of old hours compared days that belong to the next one).
    pub(crate) fn total_all_exact(store: &Store, now: i64, from: i64, to: i64, end_on: bool) -> (Agg, i64, i64) {
        let tz = store.tz;
        let buckets = || {
            let start = store.bucket_start(from, now).min(from);
            let end = match store.bucket_edge_at_or_after(to, now) {
                e if e == to || end_on => e.max(to),
                // `max` then `min`, not `clamp`: it panics on `start > to`, which no caller passes, but a report
                // must never panic.
                _ => store.bucket_start(to, now).max(start).min(to),
            };
            (Selection::All.total(store, start, end), start, end)
        };
        if store.bucket_start(from, now) == from && store.bucket_start(to, now) == to {
            return (Selection::All.total(store, from, to), from, to);
        }
        if calendar::hour_start(tz, from) != from || calendar::hour_start(tz, to) != to || from >= to {
            return buckets();
        }
        // Whole days [d0, d1), hours before and after (a window inside one day is hours only: d0 = d1 = to).
        let d0 = match calendar::day_start(tz, from) {
            d if d == from => from,
            d => calendar::grain_end(tz, calendar::Grain::Day, d),
        }
        .min(to);
        let d1 = calendar::day_start(tz, to).max(d0);
        let hourly_from = store.hourly_from(now);
        let sum = |series: &std::collections::BTreeMap<i64, Agg>, a: &mut Agg, lo: i64, hi: i64| {
            for (_, v) in series.range(lo..hi.max(lo)) {
                a.merge(v);
            }
        };
        // The daily totals reach back 10 years: a span of days before that, when the ledger holds calls that old,
        // is the buckets' (the daily series holds nothing there, and those days were counted as empty).
        let daily_from = now - super::store::DAILY_TOTALS_SPAN;
        let older_than_daily = d0 < d1 && d0 < daily_from && store.first_ts.is_some_and(|f| f < daily_from);
        if (from < d0 && from < hourly_from) || (d1 < to && d1 < hourly_from) || older_than_daily {
            return buckets();
        }
        let mut a = Agg::default();
        sum(&store.hourly, &mut a, from, d0);
        sum(&store.daily, &mut a, d0, d1);
        sum(&store.hourly, &mut a, d1, to);
        (a, from, to)
    }

    /// Rows per value of `dim` over `[from, to)`, unsorted.
    pub(crate) fn grouped(
        &self,
        store: &Store,
        from: i64,
        to: i64,
        dim: Dimension,
    ) -> Result<Vec<(String, Agg)>, QueryError> {
        let mut rows: rustc_hash::FxHashMap<String, Agg> = Default::default();
        let buckets = store.buckets(from, to);
        match (dim, self) {
            (d, Selection::All | Selection::Compound(_)) if d.is_compound() => {
                let filters: &[Filter] = match self {
                    Selection::Compound(f) => f,
                    _ => &[],
                };
                for b in buckets {
                    for s in b.series.values().filter(|s| matches_key(filters, &s.key)) {
                        rows.entry(d.label(d.of_key(&s.key))).or_default().merge(&s.agg);
                    }
                }
            }
            (Dimension::Session, Selection::All) => {
                for b in buckets {
                    for (k, a) in &b.sessions {
                        rows.entry(k.to_string()).or_default().merge(a);
                    }
                }
            }
            (Dimension::Session, Selection::Compound(f)) if f.len() == 1 && f[0].dimension == Dimension::Project => {
                for b in buckets {
                    for e in b.project_sessions.values().filter(|e| f[0].matches(e.project.as_deref())) {
                        rows.entry(e.session.to_string()).or_default().merge(&e.agg);
                    }
                }
            }
            // The calls without a session are in no (project, session) pair: every one of them fell to the
            // `(other)` row, read as values past a cap.
            (Dimension::Project, Selection::Session(s)) if **s == *Dimension::Session.none_label() => {
                return Err(QueryError::Unsupported(
                    "grouping the calls without a session by project: the ledger keeps projects per session only \
                     for calls that have one; `breakdown_tree(project, session)` has each project's `(none)` row"
                        .into(),
                ));
            }
            (Dimension::Project, Selection::Session(s)) => {
                for b in buckets {
                    for e in b.project_sessions.values().filter(|e| *e.session == **s) {
                        rows.entry(Dimension::Project.label(e.project.as_deref())).or_default().merge(&e.agg);
                    }
                }
            }
            (Dimension::User, Selection::All) => {
                for b in buckets {
                    for (k, a) in &b.users {
                        rows.entry(k.to_string()).or_default().merge(a);
                    }
                }
            }
            (Dimension::Tool, Selection::All) => {
                for b in buckets {
                    for (k, t) in &b.tools {
                        rows.entry(k.to_string()).or_default().merge(&tool_agg(t));
                    }
                }
            }
            (Dimension::Tool, Selection::Session(s)) => {
                for b in buckets {
                    for e in b.session_tools.values().filter(|e| *e.session == **s) {
                        rows.entry(e.tool.to_string()).or_default().merge(&tool_agg(&e.agg));
                    }
                }
            }
            (Dimension::Session, Selection::Tool(t)) => {
                for b in buckets {
                    for e in b.session_tools.values().filter(|e| *e.tool == **t) {
                        rows.entry(e.session.to_string()).or_default().merge(&tool_agg(&e.agg));
                    }
                }
            }
            (d, _) => {
                return Err(QueryError::Unsupported(format!(
                    "grouping by {d} with these filters; group by {d} alone, or filter only on model, provider, \
                     project, agent, operation, task and tenant and group by one of those"
                )));
            }
        }
        let drop_taskless = matches!(dim, Dimension::Model | Dimension::Provider);
        Ok(rows
            .into_iter()
            .filter(|(_, a)| a.core.calls > 0 || (!drop_taskless && a.core.tasks > 0) || a.opp.is_some())
            .collect())
    }

    /// Rows per `grain` over `[from, to)`, oldest first, gaps filled with zeros.
    pub(crate) fn series(
        &self,
        store: &Store,
        now: i64,
        from: i64,
        to: i64,
        grain: TimeGrain,
    ) -> Result<Vec<(i64, Agg)>, QueryError> {
        let tz = store.tz;
        let g = grain.grain(store.week_start);
        let mut points: std::collections::BTreeMap<i64, Agg> = Default::default();
        let fits = |t: Tier| match t {
            Tier::Minute => true,
            Tier::Hour => g >= Grain::Hour,
            Tier::Day => g >= Grain::Day,
            Tier::Month => g == Grain::Month,
            Tier::Archive => false,
        };
        // The bucket `from` falls inside counts for the check too: a coarser one starting before `from` (a day
        // bucket under an hourly grain) holds part of the window, and with nothing starting in the window the
        // check passed on no buckets at all, answering zeros where the hourly totals hold calls.
        let check_from = store.bucket_start(from, now).min(from);
        if store.buckets(check_from, to).all(|b| fits(b.tier)) {
            for b in store.buckets(from, to) {
                let a = self.agg(b);
                if a.core != Core::default() || a.opp.is_some() {
                    points.entry(calendar::grain_start(tz, g, b.start)).or_default().merge(&a);
                }
            }
        } else if *self == Selection::All {
            let (source, period) = if grain == TimeGrain::Hour {
                if from < store.hourly_from(now) {
                    return Err(QueryError::ResolutionUnavailable {
                        grain,
                        detail: "hourly totals are kept for 35 days; use a shorter window or a coarser grain".into(),
                    });
                }
                (&store.hourly, Grain::Hour)
            } else {
                (&store.daily, Grain::Day)
            };
            // The hour or day `to` falls inside, when the bucket holding `to` lies within it: taken from the
            // buckets starting before `to`, as the window's total takes them. Whole, it counted the calls after
            // `to` (a window to 14:10 had 14:30's call in its 14:00 row, and not in its total). A coarser bucket
            // holding `to` (a day bucket under an hourly row) would put its whole day in the row: the hour's or
            // day's total is kept then.
            // (Only for that period, `to` within reach of the data: not for an all-time window's end.)
            for (k, a) in source.range(from..to.max(from)) {
                let point = points.entry(calendar::grain_start(tz, g, *k)).or_default();
                let end = calendar::grain_end(tz, period, *k);
                if end > to
                    && store.bucket_start(to.saturating_sub(1), now) >= *k
                    && store.bucket_edge_at_or_after(to, now) <= end
                {
                    for b in store.buckets(*k, to) {
                        point.merge(&self.agg(b));
                    }
                } else {
                    point.merge(a);
                }
            }
        } else {
            return Err(QueryError::ResolutionUnavailable {
                grain,
                detail: "filtered series keep minutes for 2 hours, hours for 48 hours, days for 35 days and \
                         months for 400 days; use a shorter window or a coarser grain"
                    .into(),
            });
        }
        // One row per grain: a window that would make more than `fill` makes is refused, not cut short (which
        // kept its oldest, most likely empty, rows and dropped the data).
        let grain_secs = match g {
            Grain::Hour => 3_600,
            Grain::Day => 86_400,
            Grain::Week(_) => 7 * 86_400,
            Grain::Month => 28 * 86_400,
        };
        // Rows start at the grain start `from` falls in; a month is 28 days at least, so this never undercounts.
        let rows = to.saturating_sub(calendar::grain_start(tz, g, from)).saturating_sub(1) / grain_secs + 1;
        if rows > MAX_SERIES_ROWS as i64 {
            return Err(QueryError::Unsupported(format!(
                "{grain} rows over this window would be more than {MAX_SERIES_ROWS}: use a shorter window or a \
                 coarser grain"
            )));
        }
        Ok(fill(tz, g, from, to, points))
    }
}

impl Selection {
    /// The starts of the first and the last bucket that hold activity of the selection (calls, tasks or
    /// opportunities), or `None` when none does: the span a series of the selection needs. A window over the
    /// whole ledger would take in older buckets, coarser than the selection's own, and a filtered series
    /// refuses a window with any bucket coarser than its grain.
    #[cfg(feature = "http")]
    pub(crate) fn active_span(&self, store: &Store) -> Option<(i64, i64)> {
        let mut span: Option<(i64, i64)> = None;
        for b in store.buckets(i64::MIN, i64::MAX) {
            let a = self.agg(b);
            if a.core != Core::default() || a.opp.is_some() {
                span = Some(span.map_or((b.start, b.start), |(f, l)| (f.min(b.start), l.max(b.start))));
            }
        }
        span
    }

    /// The series of a report over `[from, to)`: by hour for windows up to 49 hours (two local days, one of them 25
    /// hours long where clocks go back: two days of any other week are 48), else by day; by day too
    /// when the hours a short window needs are no longer kept (older than the hourly totals' 35 days). A window
    /// of more days than a series has rows lists the days from the first record's to the last's (or now's).
    pub(crate) fn report_series(
        &self,
        store: &Store,
        now: i64,
        from: i64,
        to: i64,
    ) -> Result<(TimeGrain, Vec<(i64, Agg)>), QueryError> {
        if to - from <= HOURLY_SERIES_UP_TO_SECS {
            match self.series(store, now, from, to, TimeGrain::Hour) {
                Err(QueryError::ResolutionUnavailable { .. }) => {}
                r => return r.map(|p| (TimeGrain::Hour, p)),
            }
        }
        self.series_within_data(store, now, from, to, TimeGrain::Day).map(|p| (TimeGrain::Day, p))
    }

    /// [`series`](Self::series), for a window that may be far wider than the ledger's data (`0001-01-01..9999-12-31`
    /// for "all time"): with more rows than a series has, its rows before the first record's and after the last's
    /// (or now's) are empty, so the series spans the data's (the window's figures are not cut; the empty rows are
    /// not listed), and a ledger without records has none (it answered that the window was too wide).
    pub(crate) fn series_within_data(
        &self,
        store: &Store,
        now: i64,
        from: i64,
        to: i64,
        grain: TimeGrain,
    ) -> Result<Vec<(i64, Agg)>, QueryError> {
        match self.series(store, now, from, to, grain) {
            Err(QueryError::Unsupported(_)) => {
                let (data_from, data_to) = match (store.first_ts, store.last_ts) {
                    (Some(first), Some(last)) => (
                        from.max(calendar::grain_start(store.tz, grain.grain(store.week_start), first)),
                        to.min(calendar::grain_end(store.tz, grain.grain(store.week_start), last.max(now))),
                    ),
                    // An empty range: no rows, and still the error of a filter that cannot be answered.
                    _ => (from, from),
                };
                self.series(store, now, data_from, data_to.max(data_from), grain)
            }
            r => r,
        }
    }
}

fn unsupported_filters() -> QueryError {
    QueryError::Unsupported(
        "filters on session, user or tool cannot be combined with other filters (except project with session)".into(),
    )
}

/// The most rows a time series has (a window of 10 years of days is 3,660).
const MAX_SERIES_ROWS: usize = 100_000;

/// Every grain start in `[from, to)` with its point or zero.
pub(crate) fn fill(
    tz: Tz,
    g: Grain,
    from: i64,
    to: i64,
    points: std::collections::BTreeMap<i64, Agg>,
) -> Vec<(i64, Agg)> {
    let mut out = Vec::new();
    let mut points = points.into_iter().peekable();
    let mut t = calendar::grain_start(tz, g, from);
    // A window of 10 years of days is 3,660 points; `series` refuses windows of more rows than this.
    while t < to && out.len() < MAX_SERIES_ROWS {
        let next = calendar::grain_end(tz, g, t).max(t + 60);
        let mut a = Agg::default();
        while let Some((k, _)) = points.peek() {
            if *k < next {
                if let Some((_, p)) = points.next() {
                    a.merge(&p);
                }
            } else {
                break;
            }
        }
        out.push((t, a));
        t = next;
    }
    out
}

/// Merged distributions of every bucket in `[from, to)`, in 64-bit counts (`None` when no bucket has any).
pub(crate) fn histograms(store: &Store, from: i64, to: i64) -> Option<Histograms<u64>> {
    let mut out: Option<Histograms<u64>> = None;
    for b in store.buckets(from, to) {
        if let Some(h) = &b.hist {
            match &mut out {
                Some(o) => h.widen_into(o),
                None => {
                    let mut o = Histograms::<u64>::new()?;
                    h.widen_into(&mut o);
                    out = Some(o);
                }
            }
        }
    }
    out
}

pub(crate) fn sort_rows(rows: &mut [(String, Agg)]) {
    rows.sort_by(|a, b| {
        b.1.core.cost.cmp(&a.1.core.cost).then(b.1.core.calls.cmp(&a.1.core.calls)).then(a.0.cmp(&b.0))
    });
}

impl Ledger {
    /// `window`'s bounds with the start moved back to the start of the bucket it falls in: the span a report
    /// over that wider window sees whole. A `FROM..TO` window takes the buckets that start in it, so older
    /// than two hours its start falls inside an hour, day or month bucket that it leaves out; a caller that
    /// holds the records (the CLI) cuts them to `FROM..TO` itself and asks for this wider window, so that the
    /// figures are the asked window's exactly.
    pub fn covering(&self, window: Window) -> Result<WindowBounds, QueryError> {
        self.read(|store, now| {
            let (from, to) = window.bounds(store, now)?;
            Ok(WindowBounds::of(store.bucket_start(from, now).min(from), to))
        })
    }

    /// The first bucket edge at or after `t` (`t` when a bucket starts there): where a window whose start is
    /// implied (a length back from its end) begins, so that it takes no bucket starting before that length.
    #[cfg(feature = "http")]
    pub(crate) fn edge_at_or_after(&self, t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        self.read(|store, now| calendar::utc(store.bucket_edge_at_or_after(t.timestamp(), now)))
    }

    /// A `FROM..TO` window widened to the edges of the buckets its bounds fall in (other windows as they are):
    /// the span a query over it counts, whole. A window takes the buckets that start in it, so a bound inside
    /// an hour, day or month bucket (data older than 2 hours, 48 hours, 35 days) would leave out the bucket
    /// its start falls in and count the one its end falls in whole; over the widened window the figures are
    /// those of the window's own bounds.
    pub fn aligned(&self, window: Window) -> Result<Window, QueryError> {
        let Window::Range { .. } = window else { return Ok(window) };
        self.read(|store, now| {
            let (from, to) = window.aligned_bounds(store, now)?;
            Ok(Window::range(calendar::utc(from), calendar::utc(to)))
        })
    }

    /// Answers a query: totals of the selection, and rows per group.
    pub fn query(&self, q: &Query) -> Result<QueryResult, QueryError> {
        let sel = Selection::from_filters(&q.filters, &self.inner.prices)?;
        self.read(|store, now| {
            let (from, to) = q.window.bounds(store, now)?;
            let by = match q.group_by {
                Some(GroupBy::Dimension(d)) => Some(d),
                _ => None,
            };
            let mut total = sel.total_for(store, from, to, by);
            // Unfiltered and ungrouped, a window on local hours takes its whole days from the daily totals (kept
            // 10 years) and the hours around them from the hourly ones, as the series does: counted by the
            // buckets starting in it, a range inside a month bucket, or inside the archive past 400 days, read 0
            // (or the whole bucket). Not when an edge falls inside an hour, where those figures are not exact, nor
            // grouped by a dimension or filtered: their rows and totals are the buckets', which hold the values.
            // (A window on the buckets' edges, the rolling ones and `All`, is exact as it is.)
            let on_edges = store.bucket_start(from, now) == from && store.bucket_start(to, now) == to;
            if q.group_by.is_none() && sel == Selection::All && !on_edges {
                let (exact, start, end) = Selection::total_all_exact(store, now, from, to, false);
                if (start, end) == (from, to) {
                    total = exact;
                }
            }
            let groups = match q.group_by {
                None => Vec::new(),
                Some(GroupBy::Dimension(d)) => {
                    let mut rows = sel.grouped(store, from, to, d)?;
                    // Sessions and users are kept in their own maps, which hold only the calls that have one:
                    // the rest is a `(none)` row (for one session's projects, an `(other)` row), so that the
                    // rows add up to the total. Sorted with the others (added after the sort, the costliest row
                    // could come last).
                    if let Some(label) = sel.rest_label(d) {
                        add_rest(&mut rows, &total, label);
                    }
                    sort_rows(&mut rows);
                    rows.iter().map(|(k, a)| GroupRow::of(k.clone(), &a.core, &total.core)).collect()
                }
                Some(GroupBy::Time(g)) => {
                    let points = sel.series(store, now, from, to, g)?;
                    // The rows' own sum is the total: where the buckets are coarser than the grain, the series
                    // reads the hourly or daily totals from the first hour or day starting at or after `from`,
                    // while `total` takes the whole buckets starting in the window, which leaves out the part of
                    // the coarser bucket `from` falls inside that those hours or days hold.
                    total = Agg::default();
                    points.iter().for_each(|(_, a)| total.merge(a));
                    // The start at the zone's offset then: the same instant, its local date readable in the key
                    // (`2025-11-03T00:00:00+09:00` for a Tokyo day, not `2025-11-02T15:00:00+00:00`).
                    let tz = store.tz;
                    points
                        .into_iter()
                        .map(|(t, a)| {
                            GroupRow::of(calendar::utc(t).with_timezone(&tz).to_rfc3339(), &a.core, &total.core)
                        })
                        .collect()
                }
            };
            Ok(QueryResult {
                window: WindowBounds::of(from, to),
                filters: q.filters.clone(),
                group_by: q.group_by,
                totals: GroupRow::of("total".into(), &total.core, &total.core),
                groups,
                unattributed_calls: (!q.filters.is_empty()).then(|| sel.unattributed(store, from, to)),
            })
        })
    }
}
