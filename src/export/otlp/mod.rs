//! OTLP metrics export (feature `otlp`, on by default).
//!
//! Turn it on with [`TokenMeterBuilder::with_otlp`](crate::TokenMeterBuilder::with_otlp) (tokenmeter runs its own
//! OpenTelemetry pipeline: periodic reader, OTLP exporter over gRPC or HTTP/protobuf) or
//! [`with_meter_provider`](crate::TokenMeterBuilder::with_meter_provider) (your `SdkMeterProvider`, your
//! exporters). [`TokenMeterBuilder::with_otlp_from_env`](crate::TokenMeterBuilder::with_otlp_from_env) exports
//! only when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is set, and neither
//! `OTEL_SDK_DISABLED=true` nor an `OTEL_METRICS_EXPORTER` without `otlp` turns it off.
//!
//! ```no_run
//! use std::time::Duration;
//! use tokenmeter::export::otlp::{MetricAttributes, OtlpConfig, Protocol};
//!
//! let meter = tokenmeter::TokenMeter::builder()
//!     .with_otlp(
//!         OtlpConfig::new()
//!             .with_endpoint("http://127.0.0.1:4317")
//!             .with_protocol(Protocol::Grpc)
//!             .with_interval(Duration::from_secs(15))
//!             .with_service_name("support-bot"),
//!     )?
//!     .with_metric_attributes(MetricAttributes::new().with_agent())
//!     .build();
//! // ... install meter.layer(), run ...
//! meter.shutdown()?; // journal flushed, webhook queue sent, what is left exported
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What is exported
//!
//! The metric names, units, attributes and Prometheus names are in [`names`] and in the crate's
//! README ("Metrics"). In short: the GenAI semconv histograms (`gen_ai.client.token.usage`,
//! `gen_ai.client.operation.duration`, `gen_ai.client.operation.time_to_first_chunk`) with semconv bucket boundaries;
//! exact counters (`tokenmeter.tokens` by token type, `tokenmeter.cost` and `tokenmeter.cache.savings` in USD, web
//! searches and their fees, `tokenmeter.calls` by outcome, unmetered and unpriced calls, tasks, tool invocations,
//! budget alerts, capture corrections, dropped journal records, export failures); gauges (efficiency score, cache hit
//! rate, budget spent / limit / remaining / utilization / projected). Sums are cumulative unless delta is asked for.
//!
//! # Implementation details
//!
//! Recording happens on the thread that closed the call's span, right after the call is priced, and never
//! waits on export:
//!
//! - The exact counters are not SDK instruments on the hot path. Each thread shard keeps the totals of each
//!   attribute set (plain integers; money in exact pico-USD) behind its own, normally uncontended lock; the
//!   SDK reads them through observable instruments at collection time, on its own thread. A call costs one
//!   lock, one hash of its few attribute strings and one probe of the shard's series cache.
//! - The histograms are SDK histograms bound to the series' attribute set once (the SDK's experimental bound
//!   instruments), so a record is a bucket search and one short lock in the SDK, with no attribute hashing.
//! - Gauges are observable: the efficiency score, cache hit rate and budget figures are computed in their
//!   callbacks, at collection time, on the SDK's thread.
//! - Series are capped per metric family ([`MetricAttributes::with_max_series`]); what does not fit goes to one
//!   overflow series (`otel.metric.overflow = true`). Memory is bounded by that cap, whatever the input and
//!   however long the collector is away: the SDK keeps aggregates, not a queue of exports, and a cumulative
//!   export after an outage carries everything since the start.
//! - The exporter's network I/O runs on a one-worker tokio runtime owned by tokenmeter (thread
//!   `tokenmeter-otlp-io`), driven from the SDK's periodic reader thread; the application needs no runtime.

mod attributes;
mod config;
mod error;
mod handle;
pub mod names;
mod pipeline;
mod series;

use std::fmt;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::metrics::{BoundHistogram, Histogram, Meter, MeterProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use parking_lot::Mutex;

pub use attributes::{
    DEFAULT_MAX_SERIES, DEFAULT_MAX_VALUE_LEN, MAX_METRIC_DIMENSIONS, MAX_SERIES_LIMIT, MetricAttributes,
    MetricDimension,
};
pub use config::{Compression, OtlpConfig, OtlpSettings, Protocol, Temporality, env};
pub use error::OtlpError;
pub(crate) use handle::{attach_exporter, build_exporter};
/// The OpenTelemetry crates tokenmeter is built against, for handing over a provider of the same version.
pub use {opentelemetry, opentelemetry_sdk};

use self::attributes::truncate;
use self::names::*;
use self::pipeline::{ExportCounters, OwnedPipeline};
use self::series::{KEY_SLOTS, RawKey, SeriesTable, Totals};
use crate::TokenMeter;
use crate::budget::{AlertKind, BudgetAlert, BudgetState, BudgetUnit};
use crate::ledger::{Dimension, Window};
use crate::meter::CaptureStats;
use crate::meter::MeterInner;
use crate::pricing::{Money, PriceBook};
use crate::record::{CallRecord, Outcome, TaskRecord, TokenUsage, ToolRecord};

/// How export went so far, from [`TokenMeter::export_status`](crate::TokenMeter::export_status).
///
/// Its [`Display`](fmt::Display) is one line for a log: where metrics go and what the last export carried.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStatus {
    /// Where tokenmeter's own pipeline sends (protocol, endpoint, interval); `None` when the application handed
    /// over its provider (its exporters are its own, and the counts below stay zero).
    pub target: Option<String>,
    /// Successful exports.
    pub exports: u64,
    /// Failed exports (collector unreachable, refused, timed out).
    pub failures: u64,
    /// When the last export finished.
    pub last_export_at: Option<SystemTime>,
    /// When the last successful export finished.
    pub last_success_at: Option<SystemTime>,
    /// Metrics in the last export.
    pub last_metrics: usize,
    /// Data points (series) in the last export.
    pub last_data_points: usize,
    /// The last export's error, if it failed.
    pub last_error: Option<String>,
}

impl fmt::Display for ExportStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(target) = &self.target else {
            return f.write_str("OTLP metrics go through the application's own meter provider");
        };
        write!(f, "OTLP metrics: {target}; ")?;
        match (&self.last_error, self.exports + self.failures) {
            (_, 0) => f.write_str("nothing exported yet"),
            (None, _) => write!(
                f,
                "last export sent {} metrics ({} data points); exports: {} ok, {} failed",
                self.last_metrics, self.last_data_points, self.exports, self.failures
            ),
            (Some(e), _) => {
                write!(f, "last export failed: {e}; exports: {} ok, {} failed", self.exports, self.failures)
            }
        }
    }
}

// === impl OtlpSetup ===

/// Whose provider the metrics go through.
pub(crate) enum Pipeline {
    /// tokenmeter's own ([`TokenMeterBuilder::with_otlp`](crate::TokenMeterBuilder::with_otlp)).
    Owned(OwnedPipeline),
    /// The application's ([`TokenMeterBuilder::with_meter_provider`](crate::TokenMeterBuilder::with_meter_provider)).
    Provided(SdkMeterProvider),
}

/// What the builder holds until the meter is built.
pub(crate) struct OtlpSetup {
    pipeline: Pipeline,
    /// Fed by a budget-alert callback registered on the builder.
    alerts: Arc<AlertCounts>,
}

impl fmt::Debug for OtlpSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pipeline {
            Pipeline::Owned(p) => f.debug_tuple("Owned").field(&p.settings).finish(),
            Pipeline::Provided(_) => f.write_str("Provided"),
        }
    }
}

impl OtlpSetup {
    pub(crate) fn new(pipeline: Pipeline) -> Self {
        OtlpSetup { pipeline, alerts: Arc::new(AlertCounts::default()) }
    }

    pub(crate) fn owned(config: &OtlpConfig) -> Result<Self, OtlpError> {
        Ok(Self::new(Pipeline::Owned(pipeline::build(config.resolve()?)?)))
    }

    pub(crate) fn alerts(&self) -> &Arc<AlertCounts> {
        &self.alerts
    }

    fn provider(&self) -> &SdkMeterProvider {
        match &self.pipeline {
            Pipeline::Owned(p) => &p.provider,
            Pipeline::Provided(p) => p,
        }
    }
}

/// Budget alerts fired, by budget, kind and threshold. Alerts are rare, so one lock is fine; the number of
/// entries is bounded by budgets × thresholds (and capped).
#[derive(Default)]
pub(crate) struct AlertCounts(Mutex<AlertTable>);

/// The alert series, and the alerts of keys past [`MAX_ALERT_SERIES`] (exported as one overflow series: they
/// were dropped, and a per-tenant budgets file of 250 tenants, five keys each, left 50 tenants' alerts uncounted).
#[derive(Default, Clone)]
struct AlertTable {
    keys: Vec<(AlertKey, u64)>,
    /// The overflow series, once a key did not fit (at 0 when only the preregistered keys overflowed).
    overflow: Option<u64>,
}

type AlertKey = (Arc<str>, &'static str, Option<u32>);

const MAX_ALERT_SERIES: usize = 1_000;

impl AlertCounts {
    pub(crate) fn note(&self, alert: &BudgetAlert) {
        let percent = match alert.kind {
            AlertKind::ThresholdCrossed { percent } => Some(percent),
            AlertKind::ProjectedOverrun => None,
        };
        let mut t = self.0.lock();
        if let Some((_, n)) = t
            .keys
            .iter_mut()
            .find(|((b, k, p), _)| *b == alert.budget && *k == alert.kind.event_name() && *p == percent)
        {
            *n += 1;
        } else if t.keys.len() < MAX_ALERT_SERIES {
            t.keys.push(((Arc::clone(&alert.budget), alert.kind.event_name(), percent), 1));
        } else {
            *t.overflow.get_or_insert(0) += 1;
        }
    }

    /// Series at 0 for alerts not fired yet (see `BudgetTracker::alert_kinds`).
    pub(crate) fn preregister(&self, keys: Vec<AlertKey>) {
        let mut t = self.0.lock();
        for key in keys {
            if t.keys.iter().any(|(k, _)| *k == key) {
                continue;
            }
            if t.keys.len() >= MAX_ALERT_SERIES {
                // Its alerts will go to the overflow series: at 0 from the start too, so `increase` counts the
                // first of them.
                t.overflow.get_or_insert(0);
                break;
            }
            t.keys.push((key, 0));
        }
    }

    fn snapshot(&self) -> AlertTable {
        self.0.lock().clone()
    }
}

/// A value computed at most once per `ttl`: the gauges of one collection share one report.
struct Memo<T>(Mutex<Option<(Instant, Arc<T>)>>);

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo(Mutex::new(None))
    }
}

impl<T> Memo<T> {
    const TTL: Duration = Duration::from_millis(200);

    fn get(&self, make: impl FnOnce() -> T) -> Arc<T> {
        let mut slot = self.0.lock();
        if let Some((at, v)) = &*slot
            && at.elapsed() < Self::TTL
        {
            return Arc::clone(v);
        }
        let v = Arc::new(make());
        *slot = Some((Instant::now(), Arc::clone(&v)));
        v
    }
}

/// Efficiency score and cache hit rate of one rolling window.
struct WindowScores {
    window: &'static str,
    score: f64,
    cache_hit_rate: f64,
}

/// The rolling windows the efficiency and cache gauges cover.
const GAUGE_WINDOWS: [(&str, Window); 2] = [("1h", Window::LastHour), ("24h", Window::Last24Hours)];

// === impl OtlpMetrics ===

/// Sums of the calls of one series in one shard.
#[derive(Default, Clone)]
struct CallTotals {
    calls: u64,
    unmetered: u64,
    unpriced: u64,
    tokens: TokenUsage,
    web_searches: u64,
    cost: Money,
    web_search_cost: Money,
    savings: Money,
}

impl CallTotals {
    /// Whether the series' dollars mean anything: some call was priced, or none went unpriced and its model
    /// has a price (failed calls without usage on a priced model cost $0). A series of a model without a price
    /// exports no cost or savings, its failed calls' series included: as a $0 series it put the model in "Cost
    /// by model" at $0.00, which the price book never said.
    fn priced(&self, model_priced: bool) -> bool {
        self.calls > self.unmetered + self.unpriced || (self.unpriced == 0 && model_priced)
    }
}

impl Totals for CallTotals {
    fn merge(&mut self, o: &Self) {
        self.calls += o.calls;
        self.unmetered += o.unmetered;
        self.unpriced += o.unpriced;
        self.tokens.add(&o.tokens);
        self.web_searches = self.web_searches.saturating_add(o.web_searches);
        self.cost += o.cost;
        self.web_search_cost += o.web_search_cost;
        self.savings += o.savings;
    }
}

#[derive(Default, Clone)]
struct Count(u64);

impl Totals for Count {
    fn merge(&mut self, o: &Self) {
        self.0 += o.0;
    }
}

/// The histograms of one call series, bound on first use (a histogram never recorded is never exported).
#[derive(Default)]
struct CallHandles {
    /// The series' model has a price, decided when the series is made (the price book does not change after
    /// build): the final export of a provider dropped after its meter can no longer ask the meter, and read
    /// a series of usage-less calls on an unpriced model as a $0 cost.
    model_priced: bool,
    input_tokens: OnceLock<BoundHistogram<u64>>,
    output_tokens: OnceLock<BoundHistogram<u64>>,
    duration: OnceLock<BoundHistogram<f64>>,
    first_chunk: OnceLock<BoundHistogram<f64>>,
}

/// What the observable callbacks read: the series tables and, once built, the meter.
struct Shared {
    calls: SeriesTable<CallHandles, CallTotals>,
    tasks: SeriesTable<(), Count>,
    tools: SeriesTable<(), Count>,
    meter: OnceLock<Weak<MeterInner>>,
    counters: Option<Arc<ExportCounters>>,
    alerts: Arc<AlertCounts>,
    scores: Memo<Vec<WindowScores>>,
    budgets: Memo<Vec<BudgetState>>,
    /// The capture and journal counts last observed, and the meter's last ones (kept as it drops): a provider's
    /// final export after the meter is gone reported no capture corrections and no journal losses at all.
    last_counts: parking_lot::Mutex<LastCounts>,
    /// When the series tables started from zero (Unix seconds): [`START_TIME`].
    started: f64,
    /// [`MetricAttributes::with_max_value_len`], for the budget gauges' value attribute as for the dimensions'.
    max_value_len: usize,
}

/// A meter upgraded for one collection callback. Were the application to let go of the meter meanwhile, this
/// handle would be the last, and the meter would drop on the SDK's export thread: its provider's shutdown then
/// waits on that very thread (5 s, and its final export lost). The last handle is dropped on a thread of its own.
struct Held(Option<TokenMeter>);

impl std::ops::Deref for Held {
    type Target = TokenMeter;

    fn deref(&self) -> &TokenMeter {
        self.0.as_ref().expect("a held meter is taken only when dropped")
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // `into_inner` gives the meter only to the last handle, whichever drops last, atomically.
        if let Some(inner) = self.0.take().and_then(|meter| Arc::into_inner(meter.inner)) {
            // Should the thread not start, the closure (and the meter) drops here, as before.
            let _ = std::thread::Builder::new().name("tokenmeter-drop".into()).spawn(move || drop(inner));
        }
    }
}

/// See [`Shared::last_counts`].
#[derive(Default, Clone, Copy)]
struct LastCounts {
    capture: Option<CaptureStats>,
    journal: Option<JournalLosses>,
}

/// What the journal lost, for `tokenmeter.journal.dropped`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JournalLosses {
    /// Records dropped (queue full) and failed (write failed), and budget alert lines lost.
    Journal { dropped: u64, failed: u64, alerts: u64 },
    /// A journal was configured and `build` ran without it: the records captured since.
    Disabled { records: u64 },
}

impl JournalLosses {
    /// For a meter running without the journal it was configured with: every call, task and tool record captured.
    pub(crate) fn disabled(capture: &CaptureStats) -> Self {
        JournalLosses::Disabled { records: capture.calls + capture.tasks + capture.tool_calls }
    }
}

impl Shared {
    fn meter(&self) -> Option<Held> {
        self.meter.get().and_then(Weak::upgrade).map(|inner| Held(Some(TokenMeter { inner })))
    }

    fn capture_stats(&self) -> Option<CaptureStats> {
        match self.meter() {
            Some(m) => {
                let stats = m.capture_stats();
                self.last_counts.lock().capture = Some(stats);
                Some(stats)
            }
            None => self.last_counts.lock().capture,
        }
    }

    fn journal_losses(&self) -> Option<JournalLosses> {
        match self.meter() {
            Some(m) => {
                let losses = match m.journal_stats() {
                    Some(j) => Some(JournalLosses::Journal {
                        dropped: j.dropped,
                        failed: j.failed_records,
                        alerts: j.alerts_dropped,
                    }),
                    // Configured, and `build` ran without it: every record captured since went unjournaled.
                    None if m.inner.journal_disabled.load(std::sync::atomic::Ordering::Relaxed) => {
                        Some(JournalLosses::disabled(&m.capture_stats()))
                    }
                    None => None,
                };
                self.last_counts.lock().journal = losses;
                losses
            }
            None => self.last_counts.lock().journal,
        }
    }

    /// The call series whose cost and savings are exported ([`CallTotals::priced`]), with their totals.
    fn priced_calls(&self) -> series::Snapshot<CallHandles, CallTotals> {
        let mut series = self.calls.snapshot();
        // The overflow series names no model: its own counts decide.
        series.retain(|(s, t)| {
            t.priced(s.handles.model_priced && s.attributes.iter().any(|kv| kv.key.as_str() == ATTR_MODEL))
        });
        series
    }

    fn scores(&self) -> Arc<Vec<WindowScores>> {
        self.scores.get(|| {
            let Some(meter) = self.meter() else { return Vec::new() };
            GAUGE_WINDOWS
                .iter()
                .filter_map(|&(window, w)| {
                    // As the reports score: a window whose calls all closed without usage has nothing to score
                    // (its report's 100 and 0% are placeholders).
                    let totals = meter.query(&crate::ledger::Query::new(w)).ok()?.totals;
                    if totals.calls <= totals.unmetered_calls {
                        return None;
                    }
                    let r = meter.efficiency_report(w, Dimension::Model).ok()?;
                    Some(WindowScores {
                        window,
                        score: r.efficiency_scores.overall,
                        cache_hit_rate: r.efficiency_scores.cache_hit_rate,
                    })
                })
                .collect()
        })
    }

    /// The budgets the gauges export: every one, or past [`MAX_BUDGET_SERIES`] the most used of them.
    fn budgets(&self) -> Arc<Vec<BudgetState>> {
        self.budgets.get(|| {
            let mut all = self.meter().map(|m| m.budget_status_leaving_owed_alerts()).unwrap_or_default();
            most_used_budgets(&mut all);
            all
        })
    }
}

/// Budgets a budget gauge exports at most. The SDK keeps 2,000 series an instrument and folds later ones into one
/// overflow point holding whichever value came last: with more budgets, those past the 2,000th in the file went
/// missing from every budget panel and one of them showed under the overflow label. The cap matches the alert
/// counter's ([`MAX_ALERT_SERIES`]).
const MAX_BUDGET_SERIES: usize = 1_000;

/// Keeps the [`MAX_BUDGET_SERIES`] budgets nearest their limits (highest utilization, then name): the ones the
/// panels and alert rules on these gauges are for. The values of budgets of each value of a dimension come after
/// every other budget: 1,000 users at 20% of their own limit pushed an organisation's budget at 10% out of every
/// panel. Every gauge reads the same selection (one status a collection); the order of a gauge's points means
/// nothing.
fn most_used_budgets(all: &mut Vec<BudgetState>) {
    if all.len() <= MAX_BUDGET_SERIES {
        return;
    }
    all.sort_by(|a, b| {
        (a.member.is_some().cmp(&b.member.is_some()))
            .then_with(|| b.utilization.total_cmp(&a.utilization))
            .then_with(|| a.budget.cmp(&b.budget))
            .then_with(|| a.member.cmp(&b.member))
    });
    all.truncate(MAX_BUDGET_SERIES);
}

/// The live exporter state a meter holds: instruments, series, and the pipeline if tokenmeter owns it.
pub(crate) struct OtlpMetrics {
    shared: Arc<Shared>,
    dimensions: Box<[MetricDimension]>,
    max_value_len: usize,
    token_usage: Histogram<u64>,
    duration: Histogram<f64>,
    first_chunk: Histogram<f64>,
    setup: OtlpSetup,
}

impl fmt::Debug for OtlpMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpMetrics").field("setup", &self.setup).finish_non_exhaustive()
    }
}

/// `attributes` plus one more, sorted by key (the SDK finds sorted sets on its first probe).
fn with_attribute(attributes: &[KeyValue], extra: KeyValue) -> Vec<KeyValue> {
    let mut v = Vec::with_capacity(attributes.len() + 1);
    v.extend_from_slice(attributes);
    v.push(extra);
    sort_attributes(&mut v);
    v
}

fn sort_attributes(v: &mut Vec<KeyValue>) {
    v.sort_by(|a, b| a.key.cmp(&b.key));
    v.dedup_by(|a, b| a.key == b.key);
}

fn outcome_parts(outcome: &Outcome) -> Option<&str> {
    match outcome {
        Outcome::Ok => None,
        Outcome::Error { error_type } => Some(error_type),
    }
}

impl OtlpMetrics {
    pub(crate) fn new(setup: OtlpSetup, attributes: MetricAttributes) -> Self {
        let cap = attributes.max_series();
        let shards = crate::shards::per_core_count();
        let counters = match &setup.pipeline {
            Pipeline::Owned(p) => Some(Arc::clone(&p.counters)),
            Pipeline::Provided(_) => None,
        };
        let shared = Arc::new(Shared {
            calls: SeriesTable::new(cap, shards),
            tasks: SeriesTable::new(cap, shards),
            tools: SeriesTable::new(cap, shards),
            meter: OnceLock::new(),
            counters,
            alerts: Arc::clone(&setup.alerts),
            scores: Memo::default(),
            budgets: Memo::default(),
            last_counts: parking_lot::Mutex::default(),
            started: SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
            max_value_len: attributes.max_value_len(),
        });
        let scope = InstrumentationScope::builder("tokenmeter").with_version(env!("CARGO_PKG_VERSION")).build();
        let meter = setup.provider().meter_with_scope(scope);
        let token_usage = meter
            .u64_histogram(TOKEN_USAGE)
            .with_unit("{token}")
            .with_description("Number of input and output tokens used.")
            .with_boundaries(TOKEN_USAGE_BUCKETS.to_vec())
            .build();
        let duration = meter
            .f64_histogram(OPERATION_DURATION)
            .with_unit("s")
            .with_description("GenAI operation duration.")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        let first_chunk = meter
            .f64_histogram(TIME_TO_FIRST_CHUNK)
            .with_unit("s")
            .with_description("Time to receive the first chunk of a streamed response.")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        register_observables(&meter, &shared);
        OtlpMetrics {
            shared,
            dimensions: attributes.dimensions().to_vec().into_boxed_slice(),
            max_value_len: attributes.max_value_len(),
            token_usage,
            duration,
            first_chunk,
            setup,
        }
    }

    /// Keeps the meter's last capture and journal counts as it drops, for the provider's final export.
    pub(crate) fn keep_final_counts(&self, capture: CaptureStats, journal: Option<JournalLosses>) {
        *self.shared.last_counts.lock() = LastCounts { capture: Some(capture), journal };
    }

    /// Lets the collection-time callbacks read the meter (capture stats, ledger, budgets, journal).
    pub(crate) fn attach(&self, meter: Weak<MeterInner>) {
        if let Some(inner) = meter.upgrade() {
            self.shared.alerts.preregister(inner.budgets.alert_kinds());
        }
        let _ = self.shared.meter.set(meter);
    }

    fn value(&self, s: &str) -> String {
        truncate(s, self.max_value_len).to_owned()
    }

    fn dimension_attributes(&self, raw: &RawKey<'_>, first_slot: usize, out: &mut Vec<KeyValue>) {
        for (i, d) in self.dimensions.iter().enumerate() {
            if let Some(Some(v)) = raw.get(first_slot + i) {
                out.push(KeyValue::new(d.attribute_key(), self.value(v)));
            }
        }
    }

    fn outcome_attributes(&self, error_type: Option<&str>, out: &mut Vec<KeyValue>) {
        match error_type {
            None => out.push(KeyValue::new(ATTR_OUTCOME, "ok")),
            Some(e) => {
                out.push(KeyValue::new(ATTR_OUTCOME, "error"));
                out.push(KeyValue::new(ATTR_ERROR_TYPE, self.value(e)));
            }
        }
    }

    /// Records a priced call. Runs on the recording thread.
    pub(crate) fn record_call(&self, rec: &CallRecord, prices: &PriceBook) {
        let mut raw: RawKey<'_> = [None; KEY_SLOTS];
        raw[0] = rec.model.as_deref();
        raw[1] = rec.provider.as_deref();
        raw[2] = rec.operation.as_deref();
        raw[3] = outcome_parts(&rec.outcome);
        for (i, d) in self.dimensions.iter().enumerate() {
            if let Some(slot) = raw.get_mut(4 + i) {
                *slot = d.value(&rec.dimensions);
            }
        }
        let attributes = |raw: &RawKey<'_>| {
            let mut v = Vec::with_capacity(6 + self.dimensions.len());
            if let Some(model) = raw[0] {
                let canonical = prices.resolve(model);
                let shown = canonical.as_ref().map(|p| p.canonical()).unwrap_or(model);
                v.push(KeyValue::new(ATTR_MODEL, self.value(shown)));
            }
            if let Some(provider) = raw[1] {
                v.push(KeyValue::new(ATTR_PROVIDER, self.value(provider)));
            }
            if let Some(operation) = raw[2] {
                v.push(KeyValue::new(ATTR_OPERATION, self.value(operation)));
            }
            self.outcome_attributes(raw[3], &mut v);
            self.dimension_attributes(raw, 4, &mut v);
            sort_attributes(&mut v);
            v
        };
        let handles = || CallHandles {
            model_priced: raw[0].is_some_and(|m| prices.resolve(m).is_some()),
            ..CallHandles::default()
        };
        self.shared.calls.record(&raw, attributes, handles, |series, totals| {
            totals.calls += 1;
            totals.unmetered += u64::from(!rec.metered);
            totals.unpriced += u64::from(rec.is_unpriced());
            totals.tokens.add(&rec.tokens);
            totals.web_searches = totals.web_searches.saturating_add(rec.web_search_requests);
            if let Some(cost) = &rec.cost {
                totals.cost += cost.total;
                totals.web_search_cost += cost.web_search;
                totals.savings += cost.cache_savings;
            }
            let h = &series.handles;
            let attrs = &series.attributes;
            if rec.metered {
                h.input_tokens
                    .get_or_init(|| {
                        self.token_usage.bind(&with_attribute(attrs, KeyValue::new(ATTR_TOKEN_TYPE, "input")))
                    })
                    .record(rec.tokens.prompt_total());
                h.output_tokens
                    .get_or_init(|| {
                        self.token_usage.bind(&with_attribute(attrs, KeyValue::new(ATTR_TOKEN_TYPE, "output")))
                    })
                    .record(rec.tokens.output);
            }
            h.duration.get_or_init(|| self.duration.bind(attrs)).record(rec.duration_us as f64 / 1e6);
            if let Some(ttfc) = rec.time_to_first_token_us
                && rec.streaming != Some(false)
            {
                h.first_chunk.get_or_init(|| self.first_chunk.bind(attrs)).record(ttfc as f64 / 1e6);
            }
        });
    }

    /// Records a closed task. Runs on the recording thread.
    pub(crate) fn record_task(&self, rec: &TaskRecord) {
        let mut raw: RawKey<'_> = [None; KEY_SLOTS];
        raw[0] = Some(&rec.task);
        raw[1] = outcome_parts(&rec.outcome);
        for (i, d) in self.dimensions.iter().enumerate() {
            // A task is already labelled by its own name.
            if *d != MetricDimension::Task
                && let Some(slot) = raw.get_mut(2 + i)
            {
                *slot = d.value(&rec.dimensions);
            }
        }
        let attributes = |raw: &RawKey<'_>| {
            let mut v = Vec::with_capacity(4 + self.dimensions.len());
            v.push(KeyValue::new(ATTR_TASK, self.value(raw[0].unwrap_or_default())));
            self.outcome_attributes(raw[1], &mut v);
            self.dimension_attributes(raw, 2, &mut v);
            sort_attributes(&mut v);
            v
        };
        self.shared.tasks.record(&raw, attributes, || (), |_, n| n.0 += 1);
    }

    /// Records a tool execution. Runs on the recording thread.
    pub(crate) fn record_tool(&self, rec: &ToolRecord) {
        let mut raw: RawKey<'_> = [None; KEY_SLOTS];
        raw[0] = Some(&rec.tool);
        raw[1] = outcome_parts(&rec.outcome);
        for (i, d) in self.dimensions.iter().enumerate() {
            if let Some(slot) = raw.get_mut(2 + i) {
                *slot = d.value(&rec.dimensions);
            }
        }
        let attributes = |raw: &RawKey<'_>| {
            let mut v = Vec::with_capacity(4 + self.dimensions.len());
            v.push(KeyValue::new(ATTR_TOOL, self.value(raw[0].unwrap_or_default())));
            self.outcome_attributes(raw[1], &mut v);
            self.dimension_attributes(raw, 2, &mut v);
            sort_attributes(&mut v);
            v
        };
        self.shared.tools.record(&raw, attributes, || (), |_, n| n.0 += 1);
    }

    /// Collects and exports now.
    pub(crate) fn flush(&self) -> Result<(), OtlpError> {
        if pipeline::on_export_thread() {
            return Err(OtlpError::Flush(ON_EXPORT_THREAD.to_owned()));
        }
        match self.setup.provider().force_flush() {
            Ok(()) => Ok(()),
            // Not the collector's fault: the export was ended on purpose.
            Err(opentelemetry_sdk::error::OTelSdkError::AlreadyShutdown) => Err(OtlpError::ShutDown),
            Err(e) => {
                let cause = self.with_cause(&e);
                let (grpc, proxy) = match &self.setup.pipeline {
                    Pipeline::Owned(p) => (p.settings.protocol == Protocol::Grpc, p.proxy),
                    Pipeline::Provided(_) => (false, None),
                };
                // Through a proxy, the refusal, the status or the timeout may be the proxy's.
                let proxy = proxy
                    .map(|name| format!("; the export goes through the proxy in {name}, which may be what failed (NO_PROXY lists hosts that skip it)"))
                    .unwrap_or_default();
                Err(OtlpError::Flush(format!("{cause} ({}{proxy})", what_to_check(&cause, grpc))))
            }
        }
    }

    /// The SDK's flush and shutdown errors say only that they failed; the export's own error says why.
    /// When the export's error is known it is the message; the SDK's own (`[InternalFailure("Failed to
    /// shutdown")]`) only when it is not.
    /// A wait the SDK gave up on (a shutdown's final export gets 5 s) says so: the export may still be running,
    /// and the last export's error alone read as the reason.
    fn with_cause(&self, sdk: &opentelemetry_sdk::error::OTelSdkError) -> String {
        let cause = match &self.setup.pipeline {
            Pipeline::Owned(p) => p.counters.last_error(),
            Pipeline::Provided(_) => None,
        };
        let gave_up = match sdk {
            opentelemetry_sdk::error::OTelSdkError::Timeout(waited) => Some(format!("{waited:?}")),
            // The provider's shutdown lists its readers' errors: `InternalFailure("[Timeout(5s)]")`.
            opentelemetry_sdk::error::OTelSdkError::InternalFailure(listed) => listed
                .split_once("Timeout(")
                .and_then(|(_, rest)| rest.split_once(')'))
                .map(|(waited, _)| waited.to_owned()),
            _ => None,
        };
        match (gave_up, cause) {
            (Some(waited), cause) => format!(
                "gave up waiting for the export after {waited}{}",
                cause.map(|c| format!(" (the last export failed: {c})")).unwrap_or_default()
            ),
            (None, Some(cause)) => format!("the last export failed: {cause}"),
            (None, None) => pipeline::sdk_text(sdk),
        }
    }

    /// Exports what is left and stops tokenmeter's own pipeline; flushes a handed-over provider (its owner shuts
    /// it down). Calling it again is harmless.
    pub(crate) fn shutdown(&self) -> Result<(), OtlpError> {
        match &self.setup.pipeline {
            Pipeline::Owned(_) if pipeline::on_export_thread() => Err(OtlpError::Shutdown(ON_EXPORT_THREAD.to_owned())),
            Pipeline::Owned(p) => {
                // Flushed first: the SDK's flush waits for the export (bounded by the export's own timeout),
                // while its shutdown gives the final export at most 5 seconds, less than the default timeout of
                // 10. The shutdown's own final collection then has only what was recorded since.
                // A failed flush is not the answer: the shutdown's export may still get through (cumulative
                // totals carry everything). With a collector that hangs, this takes up to twice the export timeout
                // (a periodic export may be in flight first) plus 5 s.
                let _ = p.provider.force_flush();
                match p.provider.shutdown() {
                    Ok(()) | Err(opentelemetry_sdk::error::OTelSdkError::AlreadyShutdown) => Ok(()),
                    Err(e) => Err(OtlpError::Shutdown(self.with_cause(&e))),
                }
            }
            // A provider its owner shut down first has nothing left to flush: not a failure (it read "check that
            // the collector is running").
            Pipeline::Provided(p) => match p.force_flush() {
                Ok(()) | Err(opentelemetry_sdk::error::OTelSdkError::AlreadyShutdown) => Ok(()),
                Err(e) => {
                    let cause = pipeline::sdk_text(&e);
                    Err(OtlpError::Flush(format!("{cause} ({})", what_to_check(&cause, false))))
                }
            },
        }
    }

    pub(crate) fn status(&self) -> ExportStatus {
        match &self.setup.pipeline {
            Pipeline::Owned(p) => p.counters.status(Some(&p.settings)),
            Pipeline::Provided(_) => ExportCounters::default().status(None),
        }
    }
}

/// What to check when an export failed with `cause`, as far as the exporter's error tells (`grpc`: the pipeline
/// exports over OTLP/gRPC).
fn what_to_check(cause: &str, grpc: bool) -> &'static str {
    // opentelemetry-otlp's HTTP exporter says "HTTP export failed with status code: 413"; its gRPC exporter
    // "export failed with gRPC code: Unauthenticated: …".
    let http = |codes: &[&str]| codes.iter().any(|c| cause.contains(&format!("status code: {c}")));
    let grpc_code = |codes: &[&str]| codes.iter().any(|c| cause.contains(&format!("gRPC code: {c}")));
    if http(&["401", "403"]) || grpc_code(&["Unauthenticated", "PermissionDenied"]) {
        "the collector refused the credentials: check the headers (OTEL_EXPORTER_OTLP_HEADERS)"
    } else if http(&["429"]) {
        "the collector is throttling: each export is retried within its timeout, and the next comes at the next \
         interval"
    } else if http(&["404", "405"]) || grpc_code(&["Unimplemented"]) {
        "nothing there takes OTLP metrics: check the endpoint's path (OTLP/HTTP posts to /v1/metrics) and port"
    } else if http(&["413"]) {
        "the export is larger than the collector takes: raise its request size limit, or lower `max_series`"
    } else if http(&["4"]) {
        "the collector answered and refused the export: check the endpoint and the collector's log"
    } else if http(&["5"]) {
        "the collector answered with a server error: check its log"
    } else if grpc
        && ["http2 error", "frame with invalid size", "broken pipe", "Broken pipe", "h2 protocol error"]
            .iter()
            .any(|s| cause.contains(s))
    {
        // OTLP/gRPC against an HTTP/1.1 port (4318, a proxy) fails in the HTTP/2 handshake.
        "the connection broke off at once: check that the endpoint speaks OTLP/gRPC (4317; OTLP/HTTP is 4318, \
         OTEL_EXPORTER_OTLP_PROTOCOL)"
    } else {
        "check that the collector is running and reachable"
    }
}

/// Why a flush or shutdown on the SDK's reader thread is refused.
const ON_EXPORT_THREAD: &str = "called on the metrics export thread (from a subscriber or callback it runs), where it \
                                would wait on itself: call it from another thread";

/// Series of `tokenmeter.tokens` kept apart (six points each, plus six for the overflow series: 1,998 attribute
/// sets, under the SDK's default limit of 2,000 an instrument); the rest are summed into the overflow series.
const TOKEN_SERIES: usize = 332;

/// The attribute of the overflow series (the SDK's own name for its overflow set).
const OVERFLOW_ATTRIBUTE: &str = "otel.metric.overflow";

fn is_overflow(attributes: &[KeyValue]) -> bool {
    attributes.iter().any(|kv| kv.key.as_str() == OVERFLOW_ATTRIBUTE)
}

fn usd(m: Money) -> f64 {
    m.as_usd()
}

/// Registers every observable instrument; their callbacks run at collection time on the SDK's thread.
fn register_observables(meter: &Meter, shared: &Arc<Shared>) {
    let s = Arc::clone(shared);
    meter
        .u64_observable_counter(TOKENS)
        .with_unit("{token}")
        .with_description("Tokens by type: input (uncached), output, cache_read, cache_write_5m, cache_write_1h, reasoning (part of output).")
        .with_callback(move |o| {
            let observe = |a: &[KeyValue], t: &TokenUsage| {
                for (kind, n) in [
                    ("input", t.input),
                    ("output", t.output),
                    ("cache_read", t.cache_read),
                    ("cache_write_5m", t.cache_write_5m),
                    ("cache_write_1h", t.cache_write_1h),
                    ("reasoning", t.reasoning),
                ] {
                    o.observe(n, &with_attribute(a, KeyValue::new(ATTR_TOKEN_TYPE, kind)));
                }
            };
            // Six points a series: past TOKEN_SERIES series, the SDK's own limit (2000 attribute sets an
            // instrument) would keep only the last value of what it folds. The series past it (in the order
            // they were first seen, so each stays on its side) are summed into the overflow series here.
            let mut folded: Option<TokenUsage> = None;
            for (i, (series, t)) in s.calls.snapshot().into_iter().enumerate() {
                if i < TOKEN_SERIES && !is_overflow(&series.attributes) {
                    observe(&series.attributes, &t.tokens);
                } else {
                    folded.get_or_insert_with(TokenUsage::default).add(&t.tokens);
                }
            }
            if let Some(t) = folded {
                observe(&[KeyValue::new(OVERFLOW_ATTRIBUTE, true)], &t);
            }
        })
        .build();
    let s = Arc::clone(shared);
    meter
        .f64_observable_counter(COST)
        .with_unit("USD")
        .with_description("Cost of the priced calls, from exact integer pico-USD sums.")
        .with_callback(move |o| {
            for (series, t) in s.priced_calls() {
                o.observe(usd(t.cost), &series.attributes);
            }
        })
        .build();
    let s = Arc::clone(shared);
    meter
        .f64_observable_counter(CACHE_SAVINGS)
        .with_unit("USD")
        .with_description("What cache reads saved against paying the input rate.")
        .with_callback(move |o| {
            for (series, t) in s.priced_calls() {
                o.observe(usd(t.savings), &series.attributes);
            }
        })
        .build();
    let s = Arc::clone(shared);
    meter
        .u64_observable_counter(WEB_SEARCH_REQUESTS)
        .with_unit("{request}")
        .with_description("Web searches made through Anthropic's server-side web_search tool.")
        .with_callback(move |o| {
            // Only the series that searched: most never do, and a series of zeros would double the export.
            for (series, t) in s.calls.snapshot() {
                if t.web_searches > 0 {
                    o.observe(t.web_searches, &series.attributes);
                }
            }
        })
        .build();
    let s = Arc::clone(shared);
    meter
        .f64_observable_counter(WEB_SEARCH_COST)
        .with_unit("USD")
        .with_description("Web search fees of the priced calls (a part of tokenmeter.cost).")
        .with_callback(move |o| {
            for (series, t) in s.priced_calls() {
                if t.web_searches > 0 {
                    o.observe(usd(t.web_search_cost), &series.attributes);
                }
            }
        })
        .build();
    let s = Arc::clone(shared);
    meter
        .u64_observable_counter(CALLS)
        .with_unit("{call}")
        .with_description("LLM calls, by outcome.")
        .with_callback(move |o| {
            for (series, t) in s.calls.snapshot() {
                o.observe(t.calls, &series.attributes);
            }
        })
        .build();
    let s = Arc::clone(shared);
    meter
        .u64_observable_counter(CALLS_UNMETERED)
        .with_unit("{call}")
        .with_description("Calls whose span closed without any token value (usage unknown).")
        .with_callback(move |o| {
            for (series, t) in s.calls.snapshot() {
                o.observe(t.unmetered, &series.attributes);
            }
        })
        .build();
    let s = Arc::clone(shared);
    meter
        .u64_observable_counter(CALLS_UNPRICED)
        .with_unit("{call}")
        .with_description("Metered calls on a model the price book does not know: not in the cost.")
        .with_callback(move |o| {
            for (series, t) in s.calls.snapshot() {
                o.observe(t.unpriced, &series.attributes);
            }
        })
        .build();
    let s = Arc::clone(shared);
    meter
        .u64_observable_counter(TASKS)
        .with_unit("{task}")
        .with_description("Tasks (spans with a `task` field), by outcome.")
        .with_callback(move |o| {
            for (series, n) in s.tasks.snapshot() {
                o.observe(n.0, &series.attributes);
            }
        })
        .build();
    let s = Arc::clone(shared);
    meter
        .u64_observable_counter(TOOL_INVOCATIONS)
        .with_unit("{invocation}")
        .with_description("Tool executions, by tool and outcome.")
        .with_callback(move |o| {
            for (series, n) in s.tools.snapshot() {
                o.observe(n.0, &series.attributes);
            }
        })
        .build();
    let s = Arc::clone(shared);
    meter
        .u64_observable_counter(CAPTURE_CORRECTIONS)
        .with_unit("{correction}")
        .with_description(
            "Capture corrections: normalized token fields, rejected values, shared-span splits, roll-up spans not \
             counted again, usage events outside any call span, call spans a budget guard dropped unsent, spans and \
             events with usage fields capture does not read.",
        )
        .with_callback(move |o| {
            if let Some(stats) = s.capture_stats() {
                o.observe(stats.normalization_corrections, &[KeyValue::new(ATTR_CORRECTION, "normalization")]);
                o.observe(stats.rejected_values, &[KeyValue::new(ATTR_CORRECTION, "rejected_value")]);
                o.observe(stats.shared_span_splits, &[KeyValue::new(ATTR_CORRECTION, "shared_span_split")]);
                o.observe(stats.rollup_spans, &[KeyValue::new(ATTR_CORRECTION, "rollup_span")]);
                o.observe(stats.orphan_usage_events, &[KeyValue::new(ATTR_CORRECTION, "orphan_usage_event")]);
                o.observe(stats.unsent_calls, &[KeyValue::new(ATTR_CORRECTION, "unsent_call")]);
                o.observe(
                    stats.unread_usage_declarations,
                    &[KeyValue::new(ATTR_CORRECTION, "unread_usage_declaration")],
                );
            }
        })
        .build();
    if shared.counters.is_some() {
        let s = Arc::clone(shared);
        meter
            .u64_observable_counter(EXPORT_FAILURES)
            .with_unit("{export}")
            .with_description("Failed OTLP exports (collector unreachable, refused, timed out).")
            .with_callback(move |o| {
                if let Some(c) = &s.counters {
                    o.observe(c.failures.load(std::sync::atomic::Ordering::Relaxed), &[]);
                }
            })
            .build();
    }
    let s = Arc::clone(shared);
    meter
        .u64_observable_counter(JOURNAL_DROPPED)
        .with_unit("{record}")
        .with_description(
            "Journal records lost: queue full (the writer fell behind) or write failed; budget alert lines lost \
             (alert_lost: those alerts are delivered again after a restart); or records captured while running \
             without the journal configured (journal_disabled).",
        )
        .with_callback(move |o| match s.journal_losses() {
            Some(JournalLosses::Journal { dropped, failed, alerts }) => {
                o.observe(dropped, &[KeyValue::new(ATTR_REASON, "queue_full")]);
                o.observe(failed, &[KeyValue::new(ATTR_REASON, "write_failed")]);
                o.observe(alerts, &[KeyValue::new(ATTR_REASON, "alert_lost")]);
            }
            Some(JournalLosses::Disabled { records }) => {
                o.observe(records, &[KeyValue::new(ATTR_REASON, "journal_disabled")]);
            }
            None => {}
        })
        .build();
    let s = Arc::clone(shared);
    meter
        .u64_observable_counter(BUDGET_ALERTS)
        .with_unit("{alert}")
        .with_description("Budget alerts fired, by budget, kind and threshold.")
        .with_callback(move |o| {
            let table = s.alerts.snapshot();
            for ((budget, kind, percent), n) in table.keys {
                let mut a = vec![KeyValue::new(ATTR_BUDGET, budget.to_string()), KeyValue::new(ATTR_ALERT, kind)];
                if let Some(p) = percent {
                    a.push(KeyValue::new(ATTR_ALERT_THRESHOLD, i64::from(p)));
                }
                o.observe(n, &a);
            }
            if let Some(n) = table.overflow {
                o.observe(n, &[KeyValue::new(OVERFLOW_ATTRIBUTE, true)]);
            }
        })
        .build();
    register_gauges(meter, shared);
}

/// The observable gauges: efficiency, cache and budget figures, computed at collection time.
fn register_gauges(meter: &Meter, shared: &Arc<Shared>) {
    let started = shared.started;
    meter
        .f64_observable_gauge(START_TIME)
        .with_unit("s")
        .with_description("Unix time the exporter's counters count from (zero then).")
        .with_callback(move |o| o.observe(started, &[]))
        .build();
    let s = Arc::clone(shared);
    meter
        .f64_observable_gauge(EFFICIENCY_SCORE)
        .with_unit("{score}")
        .with_description("Efficiency score, 0-100 (green >= 80, amber 50-79.9, red < 50), over a rolling window.")
        .with_callback(move |o| {
            for w in s.scores().iter() {
                o.observe(w.score, &[KeyValue::new(ATTR_WINDOW, w.window)]);
            }
        })
        .build();
    let s = Arc::clone(shared);
    meter
        .f64_observable_gauge(CACHE_HIT_RATE)
        .with_unit("1")
        .with_description("Cache reads over all prompt tokens, 0-1, over a rolling window.")
        .with_callback(move |o| {
            for w in s.scores().iter() {
                o.observe(w.cache_hit_rate, &[KeyValue::new(ATTR_WINDOW, w.window)]);
            }
        })
        .build();
    type Pick = fn(&BudgetState) -> Option<f64>;
    let amounts: [(&'static str, &'static str, BudgetUnit, &'static str, Pick); 8] = [
        (BUDGET_SPENT, "USD", BudgetUnit::Usd, "Budget spend in the current period.", |b| Some(b.spent.as_f64())),
        (BUDGET_LIMIT, "USD", BudgetUnit::Usd, "Budget limit.", |b| Some(b.limit.as_f64())),
        (BUDGET_REMAINING, "USD", BudgetUnit::Usd, "Budget left (zero when over).", |b| Some(b.remaining.as_f64())),
        (BUDGET_PROJECTED, "USD", BudgetUnit::Usd, "Projected spend at the period's end at the current rate.", |b| {
            b.projected.map(|p| p.as_f64())
        }),
        (BUDGET_TOKENS_SPENT, "{token}", BudgetUnit::Tokens, "Token budget spend in the current period.", |b| {
            Some(b.spent.as_f64())
        }),
        (BUDGET_TOKENS_LIMIT, "{token}", BudgetUnit::Tokens, "Token budget limit.", |b| Some(b.limit.as_f64())),
        (BUDGET_TOKENS_REMAINING, "{token}", BudgetUnit::Tokens, "Token budget left (zero when over).", |b| {
            Some(b.remaining.as_f64())
        }),
        (BUDGET_TOKENS_PROJECTED, "{token}", BudgetUnit::Tokens, "Projected token spend at the period's end.", |b| {
            b.projected.map(|p| p.as_f64())
        }),
    ];
    for (name, unit, budget_unit, description, pick) in amounts {
        let s = Arc::clone(shared);
        meter
            .f64_observable_gauge(name)
            .with_unit(unit)
            .with_description(description)
            .with_callback(move |o| {
                for b in s.budgets().iter().filter(|b| b.limit.unit() == budget_unit) {
                    if let Some(v) = pick(b) {
                        o.observe(v, &budget_attributes(b, s.max_value_len));
                    }
                }
            })
            .build();
    }
    let s = Arc::clone(shared);
    meter
        .f64_observable_gauge(BUDGET_UTILIZATION)
        .with_unit("1")
        .with_description("Budget spend over its limit (1 = limit reached).")
        .with_callback(move |o| {
            for b in s.budgets().iter() {
                o.observe(b.utilization, &budget_attributes(b, s.max_value_len));
            }
        })
        .build();
    let s = Arc::clone(shared);
    meter
        .f64_observable_gauge(BUDGET_TIME_TO_LIMIT)
        .with_unit("s")
        .with_description("Time until the budget's limit is reached at the current rate (absent when it is not).")
        .with_callback(move |o| {
            for b in s.budgets().iter() {
                if let Some(t) = b.time_to_limit {
                    o.observe(t.as_secs_f64(), &budget_attributes(b, s.max_value_len));
                }
            }
        })
        .build();
}

/// The budget's name and period, and for one value of a budget of each value of a dimension that value
/// (`tokenmeter.budget.member`), sorted by key.
/// The value (a user id, say) is cut at `max_value_len` bytes as the dimension attributes are; the budget's name is
/// the application's own.
fn budget_attributes(b: &BudgetState, max_value_len: usize) -> Vec<KeyValue> {
    let mut a = Vec::with_capacity(3);
    a.push(KeyValue::new(ATTR_BUDGET, b.budget.to_string()));
    if let Some(member) = &b.member {
        a.push(KeyValue::new(ATTR_BUDGET_MEMBER, truncate(member, max_value_len).to_owned()));
    }
    a.push(KeyValue::new(ATTR_BUDGET_PERIOD, b.period.to_string()));
    a
}
