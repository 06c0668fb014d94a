//! [`TokenMeter`]: the cheap, clonable handle; its builder; the first read-out (totals by model).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};

use crate::capture::fields::BUILTIN_DIMENSIONS;
use crate::capture::{CaptureFilter, TokenMeterLayer};
use crate::clock::{Clock, SystemClock};
use crate::pricing::{Money, PriceBook, PriceBookError, PricedModel};
use crate::record::{CallRecord, TaskRecord, TokenUsage, ToolRecord};
use crate::shards::Shards;

/// The default cap on a dimension value's length, in bytes.
pub const DEFAULT_MAX_DIMENSION_LEN: usize = 128;

/// The most user-named extra dimensions a meter takes.
pub const MAX_EXTRA_DIMENSIONS: usize = 16;

/// Receives every record capture makes, on the recording thread, after the meter's own totals are updated.
///
/// Implementations must be quick and must not block: they run inside the application's span close. A panic in
/// a sink is caught and counted ([`CaptureStats::sink_panics`]), never propagated into the application.
///
/// A sink must not open spans: tracing-subscriber's registry never removes a span closed inside another span's
/// close, and such a span holds its parents open for good. Send that work to another thread; spans opened there
/// are counted in [`CaptureStats::spans_opened_while_closing`] and warned about once.
pub trait RecordSink: Send + Sync + 'static {
    /// A call finished.
    fn on_call(&self, record: &CallRecord);
    /// A task span closed.
    fn on_task(&self, _record: &TaskRecord) {}
    /// A tool-execution span closed.
    fn on_tool(&self, _record: &ToolRecord) {}
    /// A call replayed from the journal when the meter was built (see [`crate::journal`]); not called for
    /// live calls. Sinks that keep history (windows, reports) rebuild it here.
    fn on_replayed_call(&self, _record: &CallRecord) {}
    /// A task replayed from the journal when the meter was built; not called for live tasks.
    fn on_replayed_task(&self, _record: &TaskRecord) {}
    /// A tool execution replayed from the journal when the meter was built; not called for live ones.
    fn on_replayed_tool(&self, _record: &ToolRecord) {}
    /// Whether this sink hears of each record before the meter's ledger takes it in (default: after, so a sink
    /// that queries the meter finds the record there). A sink that decides who may read the ledger, as the HTTP
    /// API's `SessionTenants` does, must know of a call before any read can find it in the ledger.
    fn before_ledger(&self) -> bool {
        false
    }
    /// For a sink whose [`before_ledger`](Self::before_ledger) is true: the call (`call`), task or tool execution
    /// it just heard of, of these dimensions, is in the ledger now (`SessionTenants` learns its session again: a
    /// sweep that read the ledger in between may have forgotten it).
    #[doc(hidden)]
    fn after_ledger(&self, _dimensions: &crate::Dimensions, _call: bool) {}

    /// The meter erased these `(dimension, value)` pairs ([`TokenMeter::erase`]): those named, and the sessions
    /// its journal's erased lines were in. A sink that keeps dimension values (as the HTTP API's `SessionTenants`
    /// keeps sessions and their tenants) forgets them here. Called on the erasing thread, before the ledger
    /// forgets them (not in a dry run).
    fn on_erase(&self, _values: &[(String, String)]) {}
}

struct CallbackSink<F>(F);

impl<F: Fn(&CallRecord) + Send + Sync + 'static> RecordSink for CallbackSink<F> {
    fn on_call(&self, record: &CallRecord) {
        (self.0)(record)
    }
}

/// Usage summed over a set of calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageTotals {
    /// Calls, metered or not.
    pub calls: u64,
    /// Calls whose span closed without any token value.
    pub unmetered_calls: u64,
    /// Calls that ended in an error.
    pub failed_calls: u64,
    /// Metered calls whose model has no price: their tokens are counted, their cost is not (never $0).
    pub unpriced_calls: u64,
    /// Tokens by kind.
    pub tokens: TokenUsage,
    /// Web searches (all calls', priced or not).
    #[serde(default)]
    pub web_search_requests: u64,
    /// Cost of the priced calls, web search fees included.
    pub cost: Money,
    /// The web search fees within `cost`.
    #[serde(default)]
    pub web_search_cost: Money,
    /// What cache reads saved against paying the input rate.
    pub cache_savings: Money,
}

impl UsageTotals {
    pub(crate) fn add_call(&mut self, record: &CallRecord) {
        self.calls += 1;
        self.unmetered_calls += u64::from(!record.metered);
        self.failed_calls += u64::from(record.outcome.is_error());
        self.unpriced_calls += u64::from(record.is_unpriced());
        self.tokens.add(&record.tokens);
        self.web_search_requests = self.web_search_requests.saturating_add(record.web_search_requests);
        if let Some(cost) = &record.cost {
            self.cost += cost.total;
            self.web_search_cost += cost.web_search;
            self.cache_savings += cost.cache_savings;
        }
    }

    fn merge(&mut self, other: &UsageTotals) {
        self.calls += other.calls;
        self.unmetered_calls += other.unmetered_calls;
        self.failed_calls += other.failed_calls;
        self.unpriced_calls += other.unpriced_calls;
        self.tokens.add(&other.tokens);
        self.web_search_requests = self.web_search_requests.saturating_add(other.web_search_requests);
        self.cost += other.cost;
        self.web_search_cost += other.web_search_cost;
        self.cache_savings += other.cache_savings;
    }
}

/// Totals for one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ModelUsageFields")]
pub struct ModelUsage {
    /// The canonical model id when priced (dated and provider-specific ids merge), else the id as reported,
    /// else `"unknown"`.
    pub model: Arc<str>,
    /// Whether the price book knows this model. For `(other)` (a recording thread's models past the first
    /// 512, grouped for display; each call is still priced as its own model): whether none of its calls was
    /// unpriced. The 512 are per recording thread (and replay's calls are the building thread's): past them, a
    /// model first seen on a thread whose 512 are taken has its calls there in `(other)`, so its own row, made on
    /// other threads, holds only part of them. Totals, costs and budgets stay exact.
    pub priced: bool,
    /// The totals.
    #[serde(flatten)]
    pub totals: UsageTotals,
}

/// [`ModelUsage`] as it is read: its totals' fields listed, not flattened. serde reads a flattened field through a
/// buffer that has no 128-bit integers, and every sum of money is one: no `ModelUsage` could be read back.
#[derive(Deserialize)]
struct ModelUsageFields {
    model: Arc<str>,
    priced: bool,
    calls: u64,
    unmetered_calls: u64,
    failed_calls: u64,
    unpriced_calls: u64,
    tokens: TokenUsage,
    #[serde(default)]
    web_search_requests: u64,
    cost: Money,
    #[serde(default)]
    web_search_cost: Money,
    cache_savings: Money,
}

impl From<ModelUsageFields> for ModelUsage {
    fn from(f: ModelUsageFields) -> Self {
        // Every field named: a field added to `UsageTotals` fails to compile here until it is read too.
        let totals = UsageTotals {
            calls: f.calls,
            unmetered_calls: f.unmetered_calls,
            failed_calls: f.failed_calls,
            unpriced_calls: f.unpriced_calls,
            tokens: f.tokens,
            web_search_requests: f.web_search_requests,
            cost: f.cost,
            web_search_cost: f.web_search_cost,
            cache_savings: f.cache_savings,
        };
        ModelUsage { model: f.model, priced: f.priced, totals }
    }
}

/// Invocations of one tool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolUsage {
    /// `gen_ai.tool.name`.
    pub tool: Arc<str>,
    /// Executions.
    pub invocations: u64,
    /// Executions that ended in an error.
    pub errors: u64,
    /// Summed wall time, microseconds.
    pub total_duration_us: u64,
}

/// Capture's own health counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureStats {
    /// Call records made.
    pub calls: u64,
    /// Of those, calls whose span closed with no token value.
    pub unmetered_calls: u64,
    /// Task records made.
    pub tasks: u64,
    /// Tool records made.
    pub tool_calls: u64,
    /// Calls the normalization rules had to correct (see the capture contract).
    pub normalization_corrections: u64,
    /// Field values rejected as impossible (negative, fractional, NaN, infinite, over 10^12 tokens, text where
    /// a number belongs).
    pub rejected_values: u64,
    /// Calls finalized early because a long-lived span started another call under a new response id.
    pub shared_span_splits: u64,
    /// Panics caught in record sinks.
    pub sink_panics: u64,
    /// Call spans not counted because their usage rolls up call spans inside them (an `invoke_agent` span
    /// carrying its agent's totals): the calls inside are counted instead.
    #[serde(default)]
    pub rollup_spans: u64,
    /// Events with token fields outside any call span: no call to apply them to, so they are not counted.
    #[serde(default)]
    pub orphan_usage_events: u64,
    /// Spans closed while tokenmeter was closing another span: opened there by a record sink or budget callback
    /// (see [`RecordSink`]), or held elsewhere and dropped there. tracing-subscriber's registry never removes a
    /// span closed inside another span's close, and such a span keeps its parent spans open. Should stay 0. (A
    /// span a sink opens and hands to another thread or task closes later, and is not counted.)
    #[serde(default)]
    pub spans_opened_while_closing: u64,
    /// Calls whose fields a [`CaptureRule`](crate::capture::CaptureRule) read otherwise than the contract does (an
    /// inclusive input read as uncached, a cache-write total as one-hour writes).
    #[serde(default)]
    pub capture_rule_calls: u64,
    /// Call spans closed unsent: [`TokenMeter::guard`] refused the request and dropped its future unpolled, and
    /// the call span the future owned (made before the check, as `.instrument(span)` does) closed with nothing
    /// recorded, then or later. Not counted as calls.
    #[serde(default)]
    pub unsent_calls: u64,
    /// Spans made and events raised with a field named as a usage count that capture does not read, so whose
    /// value is counted nowhere: a misspelled `gen_ai.usage.input_token`, a kind the contract does not have
    /// (`gen_ai.usage.audio_input_tokens`), another provider's name (`prompt_token_count`). Counted as declared,
    /// whether or not a value was recorded; each field name is also logged at WARN, once per meter. Should stay
    /// 0: record those tokens under a name the contract reads (README "Capture contract"), or, for a field that is
    /// no count of tokens used, name it with [`TokenMeterBuilder::with_non_usage_field`].
    #[serde(default)]
    pub unread_usage_declarations: u64,
}

impl CaptureStats {
    fn merge(&mut self, o: &CaptureStats) {
        self.calls += o.calls;
        self.unmetered_calls += o.unmetered_calls;
        self.tasks += o.tasks;
        self.tool_calls += o.tool_calls;
        self.normalization_corrections += o.normalization_corrections;
        self.rejected_values += o.rejected_values;
        self.shared_span_splits += o.shared_span_splits;
        self.sink_panics += o.sink_panics;
        self.rollup_spans += o.rollup_spans;
        self.orphan_usage_events += o.orphan_usage_events;
        self.spans_opened_while_closing += o.spans_opened_while_closing;
        self.capture_rule_calls += o.capture_rule_calls;
        self.unsent_calls += o.unsent_calls;
        self.unread_usage_declarations += o.unread_usage_declarations;
    }
}

// === impl TokenMeterBuilder ===

/// Builds a [`TokenMeter`]. Start with [`TokenMeter::builder`].
#[must_use]
pub struct TokenMeterBuilder {
    clock: Arc<dyn Clock>,
    prices: PriceBook,
    extra_dims: Vec<Arc<str>>,
    non_usage_fields: Vec<Arc<str>>,
    /// The first name given past [`MAX_EXTRA_DIMENSIONS`], refused at build.
    dims_past_cap: Option<String>,
    max_dim_len: usize,
    dimension_filter: Option<DimensionFilter>,
    capture_rules: Vec<crate::capture::CaptureRule>,
    sinks: Vec<Arc<dyn RecordSink>>,
    pub(crate) budget_setup: crate::budget::BudgetSetup,
    pub(crate) journal_config: Option<crate::journal::JournalConfig>,
    pub(crate) ledger_config: crate::ledger::LedgerConfig,
    /// [`with_time_zone`](Self::with_time_zone)'s zone, which wins over the ledger config's whatever the order.
    pub(crate) time_zone: Option<chrono_tz::Tz>,
    #[cfg(feature = "otlp")]
    pub(crate) otlp: Option<crate::export::otlp::OtlpSetup>,
    #[cfg(feature = "otlp")]
    pub(crate) metric_attributes: crate::export::otlp::MetricAttributes,
}

impl fmt::Debug for TokenMeterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenMeterBuilder")
            .field("clock", &self.clock)
            .field("extra_dims", &self.extra_dims)
            .field("max_dim_len", &self.max_dim_len)
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

impl TokenMeterBuilder {
    fn new() -> Self {
        TokenMeterBuilder {
            clock: Arc::new(SystemClock),
            prices: PriceBook::builtin(),
            extra_dims: Vec::new(),
            non_usage_fields: Vec::new(),
            dims_past_cap: None,
            max_dim_len: DEFAULT_MAX_DIMENSION_LEN,
            dimension_filter: None,
            capture_rules: Vec::new(),
            sinks: Vec::new(),
            budget_setup: crate::budget::BudgetSetup::default(),
            journal_config: None,
            ledger_config: crate::ledger::LedgerConfig::default(),
            time_zone: None,
            #[cfg(feature = "otlp")]
            otlp: None,
            #[cfg(feature = "otlp")]
            metric_attributes: crate::export::otlp::MetricAttributes::default(),
        }
    }

    /// Uses `clock` for every timestamp and duration (default: [`SystemClock`]).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Replaces the price book (default: [`PriceBook::builtin`]), with any file merged into it before by
    /// [`with_prices_file`](Self::with_prices_file): call that one after this one.
    pub fn with_price_book(mut self, prices: PriceBook) -> Self {
        self.prices = prices;
        self
    }

    /// Overrides and adds prices from a TOML file (format in [`crate::pricing`]), merged into the book as it is
    /// now (a later [`with_price_book`](Self::with_price_book) replaces the book, this file's prices included). A
    /// bad file is an error that names the file, the line and the field.
    ///
    /// An entry replaces the model's whole price: when the price it replaces had long-context rates or a
    /// fast-mode multiplier and the entry gives none, a warning says so (those calls are then priced at the
    /// entry's standard rates), as a `tracing` event and, with no subscriber yet on this thread, on stderr.
    pub fn with_prices_file(mut self, path: impl AsRef<Path>) -> Result<Self, PriceBookError> {
        let path = path.as_ref();
        let before = self.prices.clone();
        self.prices.merge_toml_file(path)?;
        for (id, price) in self.prices.models() {
            let Some((_, was)) = before.models().find(|(b, _)| *b == id) else { continue };
            let lost: Vec<String> = price.rules_lost_from(was).iter().map(|key| format!("`{key}`")).collect();
            if lost.is_empty() {
                continue;
            }
            let message = format!(
                "{}: `{id}` replaces a price that had {} and gives none: its calls over {} prompt tokens or in \
                 fast mode are priced at the entry's standard rates",
                path.display(),
                lost.join(" and "),
                was.long_context_threshold()
            );
            tracing::warn!(target: "tokenmeter", "{message}");
            unheard(|| message);
        }
        Ok(self)
    }

    /// Adds a user-named attribution dimension: a span field of that name is inherited like `session.id`.
    /// Empty names and repeats are ignored; a name beyond [`MAX_EXTRA_DIMENSIONS`] is refused by
    /// [`try_build`](Self::try_build) ([`BuildError::TooManyDimensions`]; `build` logs it and leaves it out).
    pub fn with_dimension(mut self, name: impl Into<String>) -> Self {
        let name: String = name.into();
        if name.is_empty() || self.extra_dims.iter().any(|d| **d == *name) {
            return self;
        }
        if self.extra_dims.len() < MAX_EXTRA_DIMENSIONS {
            self.extra_dims.push(Arc::from(name));
        } else {
            self.dims_past_cap.get_or_insert(name);
        }
        self
    }

    /// Passes every dimension value a record is made with through `filter(dimension, value)` before anything
    /// keeps it (budgets, the ledger, the journal, OTLP, sinks, the HTTP API, [`TokenMeter::current_dimensions`]):
    /// the value it returns is kept (cut at the dimension length cap), `None` drops it. `dimension` is the
    /// built-in name (`session`, `user`, `tenant`, `project`, `agent`, `operation`, `task`) or your own. For
    /// pseudonymous ids (a keyed hash of `user` and `session`), and for values that may be free text: any span, of
    /// any crate, with a field named `task`, `operation`, `project` or `agent` fills that dimension (an
    /// `#[instrument]`ed `fn run(task: &str)` records its argument). A task whose name is dropped is `unnamed`.
    /// Budgets are matched against the kept values: scope them by those. Runs once per value of each record (not
    /// per span), as sinks do; a filter that panics drops the value.
    ///
    /// ```
    /// use tracing_subscriber::prelude::*;
    ///
    /// let meter = tokenmeter::TokenMeter::builder()
    ///     .with_dimension_filter(|dimension, value| match dimension {
    ///         // Only the names the application gives its tasks; anything else may be text.
    ///         "task" => ["summarize", "triage"].contains(&value).then(|| value.to_owned()),
    ///         "user" => Some(format!("u-{:x}", value.len())), // a keyed hash in practice
    ///         _ => Some(value.to_owned()),
    ///     })
    ///     .build();
    /// let subscriber = tracing_subscriber::registry().with(meter.layer());
    /// tracing::subscriber::with_default(subscriber, || {
    ///     let _run = tracing::info_span!("run", task = "Summarize Jane Roe's results", user.id = "jane@example.com")
    ///         .entered();
    ///     // What a call made here is recorded with: the task dropped, the user replaced.
    ///     let here = meter.current_dimensions().unwrap();
    ///     assert_eq!((here.task, here.user.as_deref()), (None, Some("u-10")));
    /// });
    /// ```
    pub fn with_dimension_filter(
        mut self,
        filter: impl Fn(&str, &str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.dimension_filter = Some(Arc::new(filter));
        self
    }

    /// Says that the span or event field `name` is not a count of tokens used, though named like one (an
    /// `estimated_prompt_tokens` of your own, say): it is then neither counted in
    /// [`CaptureStats::unread_usage_declarations`] nor warned about. Capture never reads it either way.
    pub fn with_non_usage_field(mut self, name: impl Into<String>) -> Self {
        let name: String = name.into();
        if !name.is_empty() && !self.non_usage_fields.iter().any(|d| **d == *name) {
            self.non_usage_fields.push(Arc::from(name));
        }
        self
    }

    /// Caps dimension values at `bytes` (cut at a character boundary; default [`DEFAULT_MAX_DIMENSION_LEN`];
    /// `usize::MAX` keeps them whole; 0 is taken as 1).
    pub fn with_max_dimension_len(mut self, bytes: usize) -> Self {
        self.max_dim_len = bytes.max(1);
        self
    }

    /// Reads the fields of the calls `rule` names as it says, where an emitter's meaning differs from the capture
    /// contract's: rig's Anthropic provider records Anthropic's uncached input count under
    /// `gen_ai.usage.input_tokens`, which the contract reads as cache-inclusive. See
    /// [`CaptureRule`](crate::capture::CaptureRule). Rules add up; a rule that changes no reading is left out.
    pub fn with_capture_rule(mut self, rule: crate::capture::CaptureRule) -> Self {
        if rule.changes_anything() && !self.capture_rules.contains(&rule) {
            self.capture_rules.push(rule);
        }
        self
    }

    /// Adds a sink that receives every record.
    pub fn with_sink(mut self, sink: impl RecordSink) -> Self {
        self.sinks.push(Arc::new(sink));
        self
    }

    /// Calls `f` with every call record (a shorthand for a [`RecordSink`] that only wants calls).
    pub fn on_call(self, f: impl Fn(&CallRecord) + Send + Sync + 'static) -> Self {
        self.with_sink(CallbackSink(f))
    }

    /// Builds the meter. With a journal ([`with_journal`](Self::with_journal)) it is replayed first; if the
    /// journal directory is unusable, the error is logged (target `tokenmeter::journal`) and the meter runs
    /// without a journal (a directory that can be read but not written to is still replayed, so budgets keep
    /// their spend): use [`try_build`](Self::try_build) to get the error instead.
    ///
    /// The meter is usually built before the subscriber it is a layer of is installed, so no subscriber hears
    /// these events: while no subscriber would hear them on this thread, they are also written to standard error.
    pub fn build(mut self) -> TokenMeter {
        for e in self.extra_dimension_problems() {
            tracing::error!(target: "tokenmeter::capture", error = %e, "dimension never filled");
            unheard(|| format!("dimension never filled: {e}"));
        }
        for e in self.budget_scope_problems() {
            let what = match e {
                BuildError::BudgetNameEmpty => "budget without a name",
                BuildError::BudgetPeriod { .. } => "budget period out of range",
                _ => "budget matches no call",
            };
            tracing::error!(target: "tokenmeter::budget", error = %e, "{what}");
            unheard(|| format!("{what}: {e}"));
        }
        if let Err(e) = self.check_right_size_target() {
            tracing::error!(target: "tokenmeter::ledger", error = %e, "no right-sizing suggestions");
            unheard(|| format!("no right-sizing suggestions: {e}"));
        }
        if let Err(e) = self.check_anomaly_rule() {
            tracing::error!(target: "tokenmeter::ledger", error = %e, "anomaly reports will fail");
            unheard(|| format!("anomaly reports will fail: {e}"));
        }
        // Each bad metric dimension said and left out: a dimension whose Prometheus label clashed with another
        // (`job`) was said "never exported" and exported all the same.
        #[cfg(feature = "otlp")]
        while let Err(e) = self.check_metric_dimensions() {
            tracing::error!(target: "tokenmeter::otlp", error = %e, "metric dimension never exported");
            unheard(|| format!("metric dimension never exported: {e}"));
            let key = match &e {
                BuildError::TooManyMetricDimensions { name, .. } => name,
                BuildError::MetricDimension { dimension, .. }
                | BuildError::MetricDimensionReserved { dimension }
                | BuildError::MetricDimensionLabel { dimension, .. } => dimension,
                _ => break,
            };
            if !self.metric_attributes.remove(&key.clone()) {
                break;
            }
        }
        if let Err(e) = self.check_webhook() {
            tracing::error!(target: "tokenmeter::budget", error = %e, "budget alerts will not be posted");
            unheard(|| format!("budget alerts will not be posted: {e}"));
        }
        if let Err(e) = self.check_journal_retention() {
            tracing::error!(target: "tokenmeter::journal", error = %e, "restarts will forget budget spend");
            unheard(|| format!("restarts will forget budget spend: {e}"));
        }
        let journal = self.take_journal_config();
        let meter = self.assemble(journal.as_ref().and_then(crate::journal::JournalConfig::max_age));
        if let Some(config) = journal
            && let Err(e) = crate::journal::attach(&meter, config, true)
        {
            tracing::error!(target: "tokenmeter::journal", error = %e, "journal disabled");
            unheard(|| format!("journal disabled: {e}"));
            meter.inner.journal_disabled.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Self::attach_exporter(&meter);
        meter
    }

    /// Builds the meter, replaying the journal first. Fails with a [`BuildError`] for what `build` would log and
    /// run without: an unusable journal directory or a retention that forgets a budget's period, an extra
    /// dimension that could never be filled, a budget that could count nothing (its scope or name), a right-sizing
    /// target without a price, an anomaly rule no report can apply, a metric dimension never exported, a webhook
    /// that cannot post.
    pub fn try_build(mut self) -> Result<TokenMeter, BuildError> {
        self.check_extra_dimensions()?;
        self.check_budget_scopes()?;
        self.check_right_size_target()?;
        self.check_anomaly_rule()?;
        #[cfg(feature = "otlp")]
        self.check_metric_dimensions()?;
        self.check_webhook()?;
        self.check_journal_retention()?;
        let journal = self.take_journal_config();
        let meter = self.assemble(journal.as_ref().and_then(crate::journal::JournalConfig::max_age));
        if let Some(config) = journal {
            crate::journal::attach(&meter, config, false)?;
        }
        Self::attach_exporter(&meter);
        Ok(meter)
    }

    /// An extra dimension named like a field of the capture contract (`model`, `session.id`, `input_tokens`) is
    /// never filled: capture reads that field as what the contract says it is. One named like a built-in
    /// dimension (`user`) is filled but never read: budgets, reports and the journal take that name for the
    /// built-in one.
    fn check_extra_dimensions(&self) -> Result<(), BuildError> {
        match self.extra_dimension_problems().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every extra dimension that would never be filled or read, in the order they were added: `build` logs
    /// each one (it logged the first only).
    fn extra_dimension_problems(&self) -> Vec<BuildError> {
        let mut problems: Vec<BuildError> = self
            .extra_dims
            .iter()
            .filter_map(|d| {
                // `server.address` is read for a call's geography and may name a dimension of your own too.
                use crate::capture::fields::Role;
                if !matches!(crate::capture::fields::classify(d), Role::Other | Role::ServerAddress) {
                    Some(BuildError::ContractDimension { name: d.to_string() })
                } else if BUILTIN_DIMENSIONS.contains(&&**d) {
                    Some(BuildError::BuiltinDimension { name: d.to_string() })
                } else {
                    None
                }
            })
            .collect();
        if let Some(name) = &self.dims_past_cap {
            problems.push(BuildError::TooManyDimensions { name: name.clone(), max: MAX_EXTRA_DIMENSIONS });
        }
        problems
    }

    /// An anomaly rule no report can apply: every `anomalies()` call would fail, long after the build.
    fn check_anomaly_rule(&self) -> Result<(), BuildError> {
        let config = &self.ledger_config;
        match config.anomaly.problem().filter(|_| config.is_enabled()) {
            Some((field, reason)) => Err(BuildError::AnomalyRule { field, reason }),
            None => Ok(()),
        }
    }

    /// A right-sizing target set must have a price, or no call can be priced against it: the right-sizing
    /// suggestion would never appear and the efficiency score's right-sizing part would read as perfect. The
    /// default is not checked: a price book of other providers' models has no use for it.
    fn check_right_size_target(&self) -> Result<(), BuildError> {
        let config = &self.ledger_config;
        match &config.right_size_target {
            Some(target) if config.is_enabled() && self.prices.resolve(target).is_none() => {
                Err(BuildError::RightSizeTarget { model: target.clone() })
            }
            _ => Ok(()),
        }
    }

    /// A metric dimension that is not one of the meter's dimensions has no value to export, and one past the cap
    /// is not exported at all.
    #[cfg(feature = "otlp")]
    fn check_metric_dimensions(&self) -> Result<(), BuildError> {
        use crate::export::otlp::{MAX_METRIC_DIMENSIONS, MetricDimension};
        if let Some(dimension) = self.metric_attributes.past_cap() {
            let name = dimension.attribute_key().as_str().to_owned();
            return Err(BuildError::TooManyMetricDimensions { name, max: MAX_METRIC_DIMENSIONS });
        }
        for dimension in self.metric_attributes.dimensions() {
            if let MetricDimension::Custom(name) = dimension
                && !self.extra_dims.iter().any(|d| **d == **name)
            {
                return Err(BuildError::MetricDimension { dimension: name.to_string(), extra: self.extra_list() });
            }
            // An attribute key tokenmeter sets itself: the dimension's value and tokenmeter's would be one key, the
            // first kept (six token types' observations on one attribute set: the SDK keeps the last).
            if let MetricDimension::Custom(name) = dimension
                && (crate::export::otlp::names::RESERVED_ATTRIBUTES.contains(&&**name)
                    || name.starts_with("tokenmeter."))
            {
                return Err(BuildError::MetricDimensionReserved { dimension: name.to_string() });
            }
        }
        // Prometheus labels: every character other than a letter, digit or `_` becomes `_`. A dimension whose label
        // is another attribute's (`error_type` beside `error.type`, `tenant_id` beside `tenant.id`) or one
        // Prometheus sets itself (`job`, `instance`; `le` and `quantile` on histograms) would lose one of the two
        // values, or have the series rejected, on the way into Prometheus.
        let label = |key: &str| -> String {
            key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
        };
        let mut taken: Vec<(String, String)> =
            ["job", "instance", "le", "quantile", "otel_scope_name", "otel_scope_version"]
                .iter()
                .map(|l| (l.to_string(), format!("Prometheus's own `{l}`")))
                .chain(
                    crate::export::otlp::names::RESERVED_ATTRIBUTES
                        .iter()
                        .chain([&crate::export::otlp::names::ATTR_OUTCOME])
                        // The task dimension is the tasks' own `task` attribute, left off the task metrics.
                        .filter(|k| **k != crate::export::otlp::names::ATTR_TASK)
                        .map(|k| (label(k), format!("the attribute `{k}`"))),
                )
                .collect();
        for dimension in self.metric_attributes.dimensions() {
            let key = dimension.attribute_key();
            let key = key.as_str();
            let mine = label(key);
            let clash = match taken.iter().find(|(l, _)| *l == mine) {
                Some((_, other)) => Some(other.clone()),
                None if mine.starts_with("__") => Some("Prometheus's own `__` labels".to_owned()),
                None => None,
            };
            if let Some(clashes_with) = clash {
                return Err(BuildError::MetricDimensionLabel { dimension: key.to_owned(), label: mine, clashes_with });
            }
            taken.push((mine, format!("the dimension `{key}`")));
        }
        Ok(())
    }

    /// The extra dimensions, listed for an error message.
    fn extra_list(&self) -> String {
        match self.extra_dims.is_empty() {
            true => "none".to_owned(),
            false => self.extra_dims.iter().map(|d| format!("`{d}`")).collect::<Vec<_>>().join(", "),
        }
    }

    /// A journal that deletes files before a budget's period is over would replay part of its spend after a
    /// restart: the budget would start lower than it is.
    fn check_journal_retention(&self) -> Result<(), BuildError> {
        // Without replay, no spend comes back whatever is kept.
        let Some(age) = self.journal_config.as_ref().filter(|c| c.replays()).and_then(|c| c.max_age()) else {
            return Ok(());
        };
        const DAY: u64 = 86_400;
        match self.budget_reach() {
            Some(reach) if age.as_secs() < reach.days * DAY => Err(BuildError::JournalRetention {
                budget: reach.budget,
                period: reach.period,
                needed_days: reach.days,
            }),
            _ => Ok(()),
        }
    }

    /// The journal's settings, told the budget whose period reaches furthest back (files deleted for size inside it
    /// are warned about); without replay, no spend comes back whatever is deleted.
    fn take_journal_config(&mut self) -> Option<crate::journal::JournalConfig> {
        let mut config = self.journal_config.take()?;
        config.budget_reach = self.budget_reach().filter(|_| config.replays());
        Some(config)
    }

    /// The budget whose period needs the journal's files furthest back, if one needs more than the two days
    /// retention never deletes.
    fn budget_reach(&self) -> Option<crate::journal::BudgetReach> {
        const DAY: u64 = 86_400;
        let mut furthest: Option<crate::journal::BudgetReach> = None;
        for budget in &self.budget_setup.budgets {
            let reach = match budget.period() {
                crate::budget::BudgetPeriod::Day => DAY,
                crate::budget::BudgetPeriod::Week => 7 * DAY,
                crate::budget::BudgetPeriod::Month => 31 * DAY,
                // The window reaches a bucket (a sixtieth) past its duration.
                crate::budget::BudgetPeriod::Rolling(d) => d.as_secs() + d.as_secs().div_ceil(60),
            };
            // A day more: files are by UTC day, periods by the budget's own time zone. Today's and yesterday's
            // files are never deleted, which covers two days whatever the age.
            let days = reach.div_ceil(DAY) + 1;
            if days > 2 && furthest.as_ref().is_none_or(|f| days > f.days) {
                furthest = Some(crate::journal::BudgetReach {
                    budget: budget.name().to_owned(),
                    period: budget.period().to_string(),
                    days,
                });
            }
        }
        furthest
    }

    /// A webhook whose URL or headers cannot make a request would fail every alert, after its retries.
    fn check_webhook(&self) -> Result<(), BuildError> {
        #[cfg(feature = "webhook")]
        if let Some(reason) = self.budget_setup.webhook.as_ref().and_then(|w| w.problem()) {
            return Err(BuildError::Webhook { reason });
        }
        Ok(())
    }

    /// A budget scoped to a dimension this meter does not capture would match no call (and a blocking one would
    /// never block): a misspelt name, or an extra dimension not added with
    /// [`with_dimension`](Self::with_dimension).
    fn check_budget_scopes(&self) -> Result<(), BuildError> {
        match self.budget_scope_problems().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Each budget's first problem that makes it count nothing (or, failing one, count other than asked), in the
    /// order the budgets were added: `build` logs every one (it logged only the first, and a second bad budget
    /// counted $0 for ever without a word).
    fn budget_scope_problems(&self) -> Vec<BuildError> {
        self.budget_setup
            .budgets
            .iter()
            .filter_map(|b| {
                // Alerts, journal marks and the status name a budget (a second one of a name replaces the first,
                // as the file's tables do): an empty name is none (the budget file refuses it too).
                if b.name().trim().is_empty() {
                    return Some(BuildError::BudgetNameEmpty);
                }
                self.budget_scope_problem(b).err()
            })
            .collect()
    }

    fn budget_scope_problem(&self, budget: &crate::budget::Budget) -> Result<(), BuildError> {
        // Capture keeps no empty value: a budget on one (`BudgetScope::tenant("")`) would count nothing.
        if let crate::budget::BudgetScope::Dimension { value, .. } | crate::budget::BudgetScope::Model(value) =
            budget.scope()
            && value.trim().is_empty()
        {
            return Err(BuildError::BudgetScopeEmpty { at: written_at(budget), budget: budget.name().to_owned() });
        }
        // Captured values are cut at `max_dim_len`: a longer scope value would equal none of them.
        if let crate::budget::BudgetScope::Dimension { value, .. } = budget.scope()
            && value.len() > self.max_dim_len
        {
            return Err(BuildError::BudgetScopeTooLong {
                at: written_at(budget),
                budget: budget.name().to_owned(),
                len: value.len(),
                max: self.max_dim_len,
            });
        }
        if let crate::budget::BudgetScope::Dimension { name, .. } | crate::budget::BudgetScope::Each { name } =
            budget.scope()
            && &**name != "model"
            && !BUILTIN_DIMENSIONS.contains(&name.as_ref())
            && !self.extra_dims.iter().any(|d| **d == **name)
        {
            return Err(BuildError::BudgetDimension {
                at: written_at(budget),
                budget: budget.name().to_owned(),
                dimension: name.to_string(),
                extra: self.extra_list(),
            });
        }
        // Calls on a model without a price count $0: a USD budget on one (a misspelt id, say) never counts
        // anything, and a `Block` one never blocks. (A token budget counts them: any id may be meant.)
        if let crate::budget::BudgetScope::Model(model) = budget.scope()
            && budget.limit().unit() == crate::budget::BudgetUnit::Usd
            && self.prices.resolve(model).is_none()
        {
            return Err(BuildError::BudgetModelUnpriced {
                at: written_at(budget),
                budget: budget.name().to_owned(),
                model: model.to_string(),
            });
        }
        // A rolling window longer than the budgets keep would count less than asked (a `Block` one would let more
        // through); one under a second is no window.
        if let Some(asked) = budget.period_out_of_range() {
            return Err(BuildError::BudgetPeriod { budget: budget.name().to_owned(), asked, taken: budget.period() });
        }
        Ok(())
    }

    fn assemble(mut self, journal_max_age: Option<std::time::Duration>) -> TokenMeter {
        let shards = Shards::new(crate::shards::per_core_count(), Shard::default);
        let config = match self.time_zone {
            Some(tz) => self.ledger_config.with_time_zone(tz),
            None => self.ledger_config,
        };
        // What a restart would no longer replay is not kept in memory either, unless the ledger says otherwise.
        let config = config.with_default_retention(journal_max_age);
        let ledger = crate::ledger::Ledger::new(config, self.clock.clone(), self.prices.clone());
        // The ledger first, after the sinks that must hear of a record before it (in the order they were added).
        let (mut sinks, after): (Vec<_>, Vec<_>) = self.sinks.drain(..).partition(|s| s.before_ledger());
        let before_ledger = sinks.len();
        sinks.push(Arc::new(ledger.clone()));
        sinks.extend(after);
        self.sinks = sinks;
        TokenMeter {
            inner: Arc::new(MeterInner {
                key: NEXT_METER_KEY.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                clock: self.clock,
                prices: self.prices,
                extra_dims: self.extra_dims.into_boxed_slice(),
                non_usage_fields: self.non_usage_fields.into_boxed_slice(),
                max_dim_len: self.max_dim_len,
                dimension_filter: self.dimension_filter,
                capture_rules: self.capture_rules.into_boxed_slice(),
                erase_gate: crate::erase::EraseGate::new(shards.len()),
                shards,
                sinks: self.sinks.into_boxed_slice(),
                before_ledger,
                budgets: self.budget_setup.into_tracker(),
                journal: std::sync::OnceLock::new(),
                journal_disabled: std::sync::atomic::AtomicBool::new(false),
                ledger,
                #[cfg(feature = "otlp")]
                otlp: crate::export::otlp::build_exporter(self.otlp, self.metric_attributes),
                warned_span_in_close: std::sync::atomic::AtomicBool::new(false),
                unread_warnings: Arc::default(),
            }),
        }
    }

    /// Lets the exporter's collection-time callbacks read the meter, once the journal is replayed: a budget status
    /// read in the middle of the replay (a pull reader scraped then) rolled periods and re-armed thresholds the
    /// rest of the replay then reached again, so their alerts fired a second time after the restart.
    fn attach_exporter(meter: &TokenMeter) {
        #[cfg(feature = "otlp")]
        crate::export::otlp::attach_exporter(&meter.inner);
        #[cfg(not(feature = "otlp"))]
        let _ = meter;
    }
}

/// Writes what `build` could not honour to standard error when no subscriber is there to hear its events on this
/// thread (the meter is built before the subscriber whose layer it is). Asked of this thread's default, not of
/// `has_been_set`, which any scoped default ever set (a test harness's, long gone) turned true for good: the
/// event went nowhere and nothing was written.
pub(crate) fn unheard(message: impl FnOnce() -> String) {
    if tracing::dispatcher::get_default(|d| d.is::<tracing_core::subscriber::NoSubscriber>()) {
        eprintln!("tokenmeter: {}", message());
    }
}

/// `d` in whole milliseconds, down: a wait an error names reads `998ms`, not `998.712345ms`.
pub(crate) fn whole_millis(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// [`TokenMeterBuilder::with_dimension_filter`]'s filter.
type DimensionFilter = Arc<dyn Fn(&str, &str) -> Option<String> + Send + Sync>;

/// How long [`TokenMeter::shutdown`] waits for the budget webhook's queue.
pub const SHUTDOWN_WEBHOOK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long [`TokenMeter::shutdown`] waits for the journal to write and sync every record so far, at most.
pub const SHUTDOWN_JOURNAL_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Calls [`TokenMeter::shutdown`] when dropped: see [`TokenMeter::shutdown_guard`].
#[must_use = "the guard shuts the meter down when it is dropped: bind it to a name (`let _shutdown = …`); `let _ = …` \
              drops it at once"]
#[derive(Debug)]
pub struct ShutdownGuard {
    meter: TokenMeter,
    limit: Option<std::time::Duration>,
}

impl ShutdownGuard {
    /// Shuts down with [`TokenMeter::shutdown_within`] this `limit` instead.
    pub fn with_limit(mut self, limit: std::time::Duration) -> Self {
        self.limit = Some(limit);
        self
    }
}

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        let result = match self.limit {
            Some(limit) => self.meter.shutdown_within(limit),
            None => self.meter.shutdown(),
        };
        if let Err(e) = result {
            // Not a tracing event: the subscriber may be gone or shutting down too.
            eprintln!("tokenmeter: shutdown (at the ShutdownGuard's drop): {e}");
        }
    }
}

/// What [`TokenMeter::shutdown`] could not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShutdownError {
    /// The journal could not write or sync every record.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// Budget alerts were still queued for the webhook when the wait ended ([`SHUTDOWN_WEBHOOK_WAIT`], or less:
    /// what was left of [`TokenMeter::shutdown_within`]'s limit).
    #[error("budget alerts were still queued for the webhook after {waited:?}")]
    WebhookPending {
        /// How long the shutdown waited for them.
        waited: std::time::Duration,
    },
    /// The last OTLP export, or stopping the pipeline, failed.
    #[cfg(feature = "otlp")]
    #[error(transparent)]
    Otlp(#[from] crate::export::otlp::OtlpError),
}

/// The "file:line: field `…`: " prefix of a budget read from a file, for [`BuildError`]s about its scope.
fn written_at(budget: &crate::budget::Budget) -> String {
    budget.scope_written_at().map(|at| format!("{at}: ")).unwrap_or_default()
}

/// Errors building a meter ([`TokenMeterBuilder::try_build`]). Non-exhaustive: its OTLP variants exist only with
/// the `otlp` feature, which another crate in the build may turn on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The journal could not be opened or replayed.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// A USD budget is scoped to a model the price book has no price for: its calls count $0, so it would
    /// never count anything (a misspelt id, say), and a `Block` budget would never block.
    #[error(
        "{at}budget `{budget}` counts dollars on model `{model}`, which the price book has no price for: its calls \
         would count $0 and the budget would never be reached; fix the model id, or give it a price \
         (PriceBook::set, a price file)"
    )]
    BudgetModelUnpriced {
        /// For a budget read from a file, where its scope is written; empty for one built in code.
        at: String,
        /// The budget's name.
        budget: String,
        /// The model id, normalized.
        model: String,
    },
    /// A budget is scoped to a dimension this meter does not capture, so it would match no call.
    #[error(
        "{at}budget `{budget}` is scoped to the dimension `{dimension}`, which this meter does not capture (dimensions: \
         session, user, tenant, project, agent, operation, task; extra dimensions: {extra})"
    )]
    BudgetDimension {
        /// For a budget read from a file, where its scope is written (`budgets.toml:7: field
        /// \`budgets.team.scope\`: `); empty for one built in code.
        at: String,
        /// The budget's name.
        budget: String,
        /// The dimension its scope names.
        dimension: String,
        /// The meter's extra dimensions, listed for the message.
        extra: String,
    },
    /// The journal deletes files before a budget's period is over
    /// ([`JournalConfig::with_max_age`](crate::journal::JournalConfig::with_max_age)), so a restart would
    /// replay only part of its spend.
    #[error(
        "budget `{budget}` ({period}) needs the journal's files for {needed_days} days, but the journal deletes \
         them sooner, so a restart would forget part of its spend: set JournalConfig::with_max_age to at least \
         {needed_days} days (or None)"
    )]
    JournalRetention {
        /// The budget's name.
        budget: String,
        /// Its period as written (`month`, `rolling 180d`).
        period: String,
        /// The least `max_age` that keeps its whole period, in days.
        needed_days: u64,
    },
    /// A budget is scoped to an empty (or blank) dimension value or model, which no call carries (capture keeps
    /// no empty value).
    #[error("{at}budget `{budget}` is scoped to an empty value, which no call carries: name the value it counts")]
    BudgetScopeEmpty {
        /// For a budget read from a file, where its scope is written; empty for one built in code.
        at: String,
        /// The budget's name.
        budget: String,
    },
    /// A budget's name is empty (or blank): alerts, journal lines and the status name their budget.
    #[error("a budget has an empty name: give it one (alerts, the journal and the status name their budget)")]
    BudgetNameEmpty,
    /// A budget's rolling period is outside one second to [`MAX_ROLLING`](crate::budget::MAX_ROLLING) (`build`
    /// logs it and takes the nearest).
    #[error(
        "budget `{budget}` has a rolling period of {asked:?}, outside 1s to 366 days: it would count `{taken}` instead"
    )]
    BudgetPeriod {
        /// The budget's name.
        budget: String,
        /// The period asked for.
        asked: std::time::Duration,
        /// The period the budget would count instead.
        taken: crate::budget::BudgetPeriod,
    },
    /// A budget's scope value is longer than the meter keeps dimension values
    /// ([`with_max_dimension_len`](TokenMeterBuilder::with_max_dimension_len)), so it would match no call.
    #[error(
        "{at}budget `{budget}` is scoped to a value of {len} bytes, but dimension values are cut at {max} bytes, so it \
         would match no call: raise `with_max_dimension_len` to at least {len}"
    )]
    BudgetScopeTooLong {
        /// For a budget read from a file, where its scope is written; empty for one built in code.
        at: String,
        /// The budget's name.
        budget: String,
        /// The scope value's length in bytes.
        len: usize,
        /// The meter's cap.
        max: usize,
    },
    /// An extra dimension is named like a field of the capture contract, which capture reads as that field:
    /// the dimension would never be filled.
    #[error(
        "the extra dimension `{name}` is a field of the capture contract (read as what the contract says it is, \
         never as a dimension): name your own span field otherwise, or use the built-in dimension"
    )]
    ContractDimension {
        /// The dimension's name.
        name: String,
    },
    /// An extra dimension is named like a built-in dimension (`session`, `user`, `tenant`), which every reader
    /// (budgets, reports, the journal) takes for the built-in one: the extra one would never be read.
    #[error(
        "the extra dimension `{name}` has the name of a built-in dimension, which budgets and reports read as the \
         built-in one (filled from the span field `{name}.id`): record `{name}.id`, or name your dimension otherwise"
    )]
    BuiltinDimension {
        /// The dimension's name.
        name: String,
    },
    /// The ledger's right-sizing target ([`LedgerConfig::with_right_size_target`](crate::ledger::LedgerConfig))
    /// has no price in the meter's price book, so no call could be priced against it.
    #[error(
        "the right-sizing target `{model}` has no price in the price book, so small premium calls cannot be priced \
         against it (no `model_right_sizing` suggestion, and a perfect right-sizing score): name a priced model"
    )]
    RightSizeTarget {
        /// The target as given.
        model: String,
    },
    /// The ledger's anomaly rule ([`LedgerConfig::with_anomaly_rule`](crate::ledger::LedgerConfig)) cannot be
    /// applied: a factor that is not a positive number, or trailing days outside 1-365.
    #[error("the anomaly rule's `{field}`: {reason}")]
    AnomalyRule {
        /// The rule's field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// More extra dimensions than a meter keeps ([`MAX_EXTRA_DIMENSIONS`]): the ones past the cap would never be
    /// filled.
    #[error("the extra dimension `{name}` is past the {max} a meter keeps: it would never be filled")]
    TooManyDimensions {
        /// The first name past the cap.
        name: String,
        /// The cap.
        max: usize,
    },
    /// A metric dimension ([`MetricAttributes`](crate::export::otlp::MetricAttributes)) is neither built in nor
    /// one of the meter's extra dimensions, so it would have no value to export.
    #[cfg(feature = "otlp")]
    #[error(
        "the metric dimension `{dimension}` is not captured by this meter, so it would never be exported \
         (dimensions: agent, project, tenant, user, session, operation, task; extra dimensions: {extra}): add it \
         with TokenMeterBuilder::with_dimension"
    )]
    MetricDimension {
        /// The dimension's name.
        dimension: String,
        /// The meter's extra dimensions, listed for the message.
        extra: String,
    },
    /// A metric dimension is named like an attribute tokenmeter sets itself
    /// ([`RESERVED_ATTRIBUTES`](crate::export::otlp::names::RESERVED_ATTRIBUTES), `tokenmeter.*`): the two would
    /// be one attribute, and one of them lost.
    #[cfg(feature = "otlp")]
    #[error(
        "the metric dimension `{dimension}` is named like an attribute tokenmeter's metrics set themselves \
         (gen_ai.token.type, gen_ai.request.model, gen_ai.provider.name, gen_ai.operation.name, gen_ai.tool.name, \
         error.type, task, otel.metric.overflow, tokenmeter.*): the two would be one attribute and one of them lost; \
         rename the dimension"
    )]
    MetricDimensionReserved {
        /// The dimension's name.
        dimension: String,
    },
    /// A metric dimension's Prometheus label (every character other than a letter, digit or `_` made `_`) is
    /// another attribute's or dimension's, or one Prometheus sets itself (`job`, `instance`, `le`, `quantile`).
    #[cfg(feature = "otlp")]
    #[error(
        "the metric dimension `{dimension}` becomes the Prometheus label `{label}`, as {clashes_with} does: one of \
         the two values would be lost or the series rejected; rename the dimension"
    )]
    MetricDimensionLabel {
        /// The dimension's name (its attribute key).
        dimension: String,
        /// Its Prometheus label.
        label: String,
        /// What else has that label.
        clashes_with: String,
    },
    /// More metric dimensions than exported metrics carry
    /// ([`MAX_METRIC_DIMENSIONS`](crate::export::otlp::MAX_METRIC_DIMENSIONS)).
    #[cfg(feature = "otlp")]
    #[error("the metric dimension `{name}` is past the {max} exported metrics carry: it would never be exported")]
    TooManyMetricDimensions {
        /// The first dimension past the cap, as its attribute key.
        name: String,
        /// The cap.
        max: usize,
    },
    /// The budget-alert webhook's URL or a header cannot make a request.
    #[error("the budget-alert webhook cannot post: {reason}")]
    Webhook {
        /// What is wrong (the URL shown without its path, which may hold a token).
        reason: String,
    },
}

// === impl TokenMeter ===

/// The handle to one meter: cheap to clone (an `Arc`), `Send + Sync`.
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// let meter = tokenmeter::TokenMeter::builder().build();
/// let subscriber = tracing_subscriber::registry().with(meter.layer());
/// tracing::subscriber::with_default(subscriber, || {
///     let span = tracing::info_span!(
///         "chat claude-sonnet-4-5",
///         gen_ai.request.model = "claude-sonnet-4-5",
///         gen_ai.usage.input_tokens = 1200,
///         gen_ai.usage.output_tokens = 300,
///     );
///     drop(span);
/// });
/// assert_eq!(meter.total_usage().calls, 1);
/// assert_eq!(meter.total_usage().cost.to_string(), "$0.0081");
/// ```
///
/// # Blocking
///
/// Dropping the last clone (the subscriber holding the layer holds one) of a meter with a journal or OTLP export
/// finishes them in that drop: it waits for the journal writer to write what it holds and for the last export,
/// which can take seconds. Call [`shutdown`](Self::shutdown) first, off an async runtime's workers; a meter held
/// by a global subscriber is never dropped. [`check_budget`](Self::check_budget) and
/// [`budget_status`](Self::budget_status) may run the budgets' alert callbacks on the calling thread: the alerts a
/// restart left owed, and those of a period the clock came back into.
#[derive(Clone)]
pub struct TokenMeter {
    pub(crate) inner: Arc<MeterInner>,
}

impl fmt::Debug for TokenMeter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenMeter").field("stats", &self.capture_stats()).finish_non_exhaustive()
    }
}

impl TokenMeter {
    /// Everything to do once before the process exits, for what the meter holds that would otherwise be lost
    /// (a meter held by a global subscriber is never dropped): waits until the journal has written and synced
    /// every record so far (at most [`SHUTDOWN_JOURNAL_WAIT`]), waits for the budget webhook's queue (at most
    /// [`SHUTDOWN_WEBHOOK_WAIT`]), then exports what is left over OTLP and stops that pipeline. Each step runs
    /// even when an earlier one failed; the first failure is returned. Recording afterwards is harmless
    /// (journaled and counted, no longer exported). Blocks the calling thread: against a collector and a webhook
    /// that never answer, for up to about twice the export timeout plus 10 s (README "Temporality, outages,
    /// shutdown"); [`shutdown_within`](Self::shutdown_within) keeps to a limit.
    pub fn shutdown(&self) -> Result<(), ShutdownError> {
        self.shutdown_by(None)
    }

    /// [`shutdown`](Self::shutdown) within `limit` overall, for a platform's grace period after SIGTERM: each
    /// step waits at most what is left of it (and no longer than `shutdown` would), and returns at the limit
    /// with its own error: [`JournalError::TimedOut`](crate::journal::JournalError::TimedOut),
    /// [`ShutdownError::WebhookPending`], or, with the `otlp` feature, an
    /// [`OtlpError::Shutdown`](crate::export::otlp::OtlpError::Shutdown) that says it gave up waiting. What a step
    /// did not finish goes on in the background (the journal writer, the webhook's thread, the final export on
    /// a `tokenmeter-shutdown` thread) until the process exits; nothing recorded before the call is dropped by it.
    /// A step whose turn comes after the limit still starts, and waits for nothing.
    ///
    /// ```
    /// # let meter = tokenmeter::TokenMeter::builder().build();
    /// // Kubernetes gives 30 s after SIGTERM by default; leave the application's own draining its share.
    /// if let Err(e) = meter.shutdown_within(std::time::Duration::from_secs(10)) {
    ///     eprintln!("tokenmeter: {e}");
    /// }
    /// ```
    pub fn shutdown_within(&self, limit: std::time::Duration) -> Result<(), ShutdownError> {
        // A limit too long to add is no limit.
        self.shutdown_by(std::time::Instant::now().checked_add(limit))
    }

    /// A guard that calls [`shutdown`](Self::shutdown) when it is dropped: at the end of `main` however it ends,
    /// an early `?` return or a panic that unwinds included (an explicit `meter.shutdown()?` at the end is skipped
    /// by both, and a meter held by a global subscriber is never dropped: what it held was lost). A failure is
    /// written to standard error (a drop returns nothing); [`ShutdownGuard::with_limit`] keeps it to a limit.
    /// Not run by [`std::process::exit`], by `panic = "abort"`, or by a signal: call `shutdown` before those.
    /// Calling `shutdown` as well is harmless.
    ///
    /// ```
    /// use tracing_subscriber::prelude::*;
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     let meter = tokenmeter::TokenMeter::builder().try_build()?;
    ///     let _shutdown = meter.shutdown_guard();
    ///     tracing_subscriber::registry().with(meter.layer()).init();
    ///     // ... the application, whose `?` returns and panics still shut the meter down ...
    ///     Ok(())
    /// }
    /// ```
    pub fn shutdown_guard(&self) -> ShutdownGuard {
        ShutdownGuard { meter: self.clone(), limit: None }
    }

    fn shutdown_by(&self, deadline: Option<std::time::Instant>) -> Result<(), ShutdownError> {
        // What a step may wait: its own cap, or what is left before the deadline when that is less, in whole
        // milliseconds (errors say how long was waited: `1.499987654s` otherwise).
        let wait = |cap: std::time::Duration| {
            deadline.map_or(cap, |d| {
                let left = d.saturating_duration_since(std::time::Instant::now());
                cap.min(whole_millis(left))
            })
        };
        let mut first: Option<ShutdownError> = None;
        if let Err(e) = self.flush_timeout(wait(SHUTDOWN_JOURNAL_WAIT)) {
            first.get_or_insert(ShutdownError::Journal(e));
        }
        #[cfg(feature = "webhook")]
        {
            let waited = wait(SHUTDOWN_WEBHOOK_WAIT);
            if !self.flush_webhook(waited) {
                first.get_or_insert(ShutdownError::WebhookPending { waited });
            }
        }
        #[cfg(feature = "otlp")]
        if let Err(e) = match deadline {
            None => self.shutdown_otlp(),
            Some(deadline) => self.shutdown_otlp_by(deadline),
        } {
            first.get_or_insert(ShutdownError::Otlp(e));
        }
        first.map_or(Ok(()), Err)
    }

    /// Starts building a meter.
    pub fn builder() -> TokenMeterBuilder {
        TokenMeterBuilder::new()
    }

    /// The `tracing_subscriber` layer that feeds this meter. Add it to a registry beside any other layers, last
    /// when some of them have per-layer filters (README "Add it to your subscriber" says why); it reads only the
    /// spans and events the capture contract names, and never changes what the other layers see. Several layers
    /// of one meter may be installed (in several subscribers); they feed the same totals.
    pub fn layer(&self) -> TokenMeterLayer {
        TokenMeterLayer::new(self.inner.clone())
    }

    /// [`layer`](Self::layer) behind its own per-layer filter ([`CaptureFilter`]), which turns on for it only
    /// the callsites capture reads. Use it when another layer has a per-layer filter (`fmt::layer().with_filter(
    /// EnvFilter::…)`): beside an unfiltered layer, the `trace!` spans and events that filter turns off are
    /// built and dispatched anyway, for the whole process. What it costs and saves is in README "Performance".
    /// Swapping meters through a `reload` layer works with [`layer`](Self::layer) (a `Filtered` layer can only
    /// be modified in place).
    pub fn filtered_layer<S>(&self) -> tracing_subscriber::filter::Filtered<TokenMeterLayer, CaptureFilter, S>
    where
        S: tracing_core::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        use tracing_subscriber::Layer as _;
        let layer = self.layer();
        layer.clone().with_filter(CaptureFilter::new(layer))
    }

    /// The current time on the meter's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// The price book this meter prices with.
    pub fn price_book(&self) -> &PriceBook {
        &self.inner.prices
    }

    /// Totals per model, most expensive first (then by calls).
    pub fn model_usage(&self) -> Vec<ModelUsage> {
        let mut merged: HashMap<Arc<str>, ModelUsage> = HashMap::default();
        for shard in self.inner.shards.iter() {
            let shard = shard.lock();
            for slot in &shard.models {
                merged
                    .entry(slot.key.clone())
                    .or_insert_with(|| ModelUsage {
                        model: slot.key.clone(),
                        priced: slot.priced.is_some(),
                        totals: UsageTotals::default(),
                    })
                    .totals
                    .merge(&slot.totals);
            }
        }
        let mut out: Vec<ModelUsage> = merged.into_values().collect();
        for m in out.iter_mut().filter(|m| &*m.model == "(other)") {
            m.priced = m.totals.unpriced_calls == 0;
        }
        out.sort_by(|a, b| {
            b.totals.cost.cmp(&a.totals.cost).then(b.totals.calls.cmp(&a.totals.calls)).then(a.model.cmp(&b.model))
        });
        out
    }

    /// Totals over every call.
    pub fn total_usage(&self) -> UsageTotals {
        let mut total = UsageTotals::default();
        for m in self.model_usage() {
            total.merge(&m.totals);
        }
        total
    }

    /// Invocations per tool, by name.
    pub fn tool_usage(&self) -> Vec<ToolUsage> {
        let mut merged: HashMap<Arc<str>, ToolUsage> = HashMap::default();
        for shard in self.inner.shards.iter() {
            for (k, t) in &shard.lock().tools {
                let e = merged.entry(k.clone()).or_insert_with(|| ToolUsage { tool: k.clone(), ..Default::default() });
                e.invocations += t.invocations;
                e.errors += t.errors;
                e.total_duration_us = e.total_duration_us.saturating_add(t.total_duration_us);
            }
        }
        let mut out: Vec<ToolUsage> = merged.into_values().collect();
        out.sort_by(|a, b| a.tool.cmp(&b.tool));
        out
    }

    /// The dimensions a call made here would be recorded with: those of the current span
    /// (`tracing::Span::current()`) and its ancestors, resolved as capture resolves them (the nearest value of
    /// each; `session.id` over a conversation; a task span's name). For a budget check before a request, in the
    /// context the request will run in, without passing the user, tenant or agent down by hand:
    ///
    /// ```
    /// use tokenmeter::budget::{Budget, BudgetAction, BudgetLimit, BudgetScope, RequestScope};
    /// use tracing_subscriber::prelude::*;
    ///
    /// let meter = tokenmeter::TokenMeter::builder()
    ///     .with_budget(
    ///         Budget::new("alice", BudgetLimit::tokens(0)).with_scope(BudgetScope::user("alice"))
    ///             .with_action(BudgetAction::Block),
    ///     )
    ///     .build();
    /// let subscriber = tracing_subscriber::registry().with(meter.layer());
    /// tracing::subscriber::with_default(subscriber, || {
    ///     let _request = tracing::info_span!("request", user.id = "alice").entered();
    ///     let _agent = tracing::info_span!("invoke_agent", gen_ai.agent.name = "researcher").entered();
    ///     let here = meter.current_dimensions().unwrap_or_default();
    ///     assert_eq!(here.user.as_deref(), Some("alice"));
    ///     let scope = RequestScope::from_dimensions(&here).with_model("claude-sonnet-4-5");
    ///     assert_eq!(meter.check_budget(&scope).unwrap_err().budget(), "alice");
    /// });
    /// ```
    ///
    /// `None` outside any span, or when the current subscriber is not a `tracing_subscriber` registry (the
    /// dimensions live in its spans). Under a registry without this meter's layer, the spans carry nothing this
    /// meter read: empty dimensions. Costs a registry lookup per ancestor; call it per request, not per token.
    pub fn current_dimensions(&self) -> Option<crate::Dimensions> {
        TokenMeterLayer::new(self.inner.clone()).current_dimensions()
    }

    /// Capture's health counters.
    pub fn capture_stats(&self) -> CaptureStats {
        self.inner.capture_stats()
    }
}

// === impl MeterInner ===

/// Totals of one model key in one shard.
struct ModelSlot {
    key: Arc<str>,
    priced: Option<PricedModel>,
    totals: UsageTotals,
}

#[derive(Default)]
struct Shard {
    /// Model id as reported -> its slot in `models` (and, past the cap, its own price and key).
    resolved: HashMap<Box<str>, Resolved>,
    models: Vec<ModelSlot>,
    tools: HashMap<Arc<str>, ToolUsage>,
    stats: CaptureStats,
}

/// Where a model id's calls go, as cached per shard.
#[derive(Clone)]
struct Resolved {
    slot: usize,
    /// Set when the slot is the shared `(other)` one: the cap only groups totals for display, so the call
    /// is still priced, and matched to model budgets, as its own model.
    overflow: Option<Arc<Overflowed>>,
}

/// A model id whose totals went to `(other)`: its own price (none when unknown) and budget key.
struct Overflowed {
    priced: Option<PricedModel>,
    key: Arc<str>,
}

/// Cached model-id resolutions per shard are bounded: a stream of distinct unknown ids cannot grow memory.
const MAX_RESOLVED_PER_SHARD: usize = 1024;

/// Distinct model keys (and tool names) kept per shard; further ones share one `(other)` entry.
const MAX_MODELS_PER_SHARD: usize = 512;

impl Shard {
    /// Adds one tool execution to the per-tool totals (past the cap, to `(other)`).
    fn add_tool(&mut self, record: &ToolRecord) {
        let known = self.tools.contains_key(&record.tool);
        let key =
            if !known && self.tools.len() >= MAX_MODELS_PER_SHARD { Arc::from("(other)") } else { record.tool.clone() };
        let t = self.tools.entry(key.clone()).or_insert_with(|| ToolUsage { tool: key, ..Default::default() });
        t.invocations += 1;
        t.errors += u64::from(record.outcome.is_error());
        t.total_duration_us = t.total_duration_us.saturating_add(record.duration_us);
    }

    /// Where a call on `model` goes: a hash lookup of the id as reported; on first sight, a price-book
    /// resolution (dated and provider-specific ids of one model share the canonical id's slot).
    fn model_slot(&mut self, model: Option<&str>, prices: &PriceBook) -> Resolved {
        let id = model.unwrap_or("");
        if let Some(r) = self.resolved.get(id) {
            return r.clone();
        }
        let priced = if id.is_empty() { None } else { prices.resolve(id).map(|p| p.detached()) };
        let key: Arc<str> = match (&priced, model) {
            (Some(p), _) => Arc::from(p.canonical()),
            (None, Some(m)) if !m.is_empty() => Arc::from(m),
            _ => Arc::from("unknown"),
        };
        let resolved = match self.models.iter().position(|m| m.key == key) {
            Some(slot) => Resolved { slot, overflow: None },
            None if self.models.len() < MAX_MODELS_PER_SHARD => {
                self.models.push(ModelSlot { key, priced, totals: UsageTotals::default() });
                Resolved { slot: self.models.len() - 1, overflow: None }
            }
            None => {
                let slot = match self.models.iter().position(|m| &*m.key == "(other)") {
                    Some(idx) => idx,
                    None => {
                        self.models.push(ModelSlot {
                            key: Arc::from("(other)"),
                            priced: None,
                            totals: UsageTotals::default(),
                        });
                        self.models.len() - 1
                    }
                };
                Resolved { slot, overflow: Some(Arc::new(Overflowed { priced, key })) }
            }
        };
        if self.resolved.len() < MAX_RESOLVED_PER_SHARD {
            self.resolved.insert(Box::from(id), resolved.clone());
        }
        resolved
    }
}

/// Hands the exporter the meter's last capture and journal counts before its parts go: the OTLP pipeline drops
/// last (its provider's final export runs then), when the callbacks can no longer read the meter.
impl Drop for MeterInner {
    fn drop(&mut self) {
        // The alerts still queued for the webhook, as the journal's drop waits for its queue (after it, the
        // delivery thread goes on only while the process lives): the journal marked them delivered when they
        // fired, so one lost here is not sent after a restart. Nothing to wait for when none is queued.
        #[cfg(feature = "webhook")]
        if !self.budgets.alerts.flush_webhook(crate::journal::DROP_WAIT) {
            eprintln!(
                "tokenmeter: budget alerts were still being delivered to the webhook {:?} after the meter's drop (a \
                 slow or unreachable endpoint); they are sent only if the process lives on. Call \
                 TokenMeter::shutdown() before the drop to wait and see the outcome",
                crate::journal::DROP_WAIT
            );
        }
        #[cfg(feature = "otlp")]
        if let Some(otlp) = &self.otlp {
            let capture = self.capture_stats();
            // After the journal's own drop has written (or failed to write) what its queue held.
            let journal = match self.journal.take() {
                Some(writer) => {
                    let (dropped, failed, alerts) = writer.final_losses();
                    Some(crate::export::otlp::JournalLosses::Journal { dropped, failed, alerts })
                }
                None if self.journal_disabled.load(std::sync::atomic::Ordering::Relaxed) => {
                    Some(crate::export::otlp::JournalLosses::disabled(&capture))
                }
                None => None,
            };
            otlp.keep_final_counts(capture, journal);
        }
    }
}

/// The next meter's [`MeterInner::key`].
static NEXT_METER_KEY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

pub(crate) struct MeterInner {
    /// Which meter's state a span's extensions hold (see `capture::SpanStates`): unique in the process. The
    /// shared state's address was the key, and a meter built where a dropped one lived (a `reload` layer
    /// swapping meters) took over the spans the dropped one had opened.
    pub(crate) key: usize,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) prices: PriceBook,
    pub(crate) extra_dims: Box<[Arc<str>]>,
    /// [`TokenMeterBuilder::with_non_usage_field`]'s names.
    non_usage_fields: Box<[Arc<str>]>,
    pub(crate) max_dim_len: usize,
    /// [`TokenMeterBuilder::with_dimension_filter`]'s filter.
    dimension_filter: Option<DimensionFilter>,
    /// [`TokenMeterBuilder::with_capture_rule`]'s rules.
    pub(crate) capture_rules: Box<[crate::capture::CaptureRule]>,
    shards: Shards<Shard>,
    /// Records finishing while [`TokenMeter::erase`] runs are cleared of its values.
    pub(crate) erase_gate: crate::erase::EraseGate,
    sinks: Box<[Arc<dyn RecordSink>]>,
    /// How many of `sinks` come before the ledger ([`RecordSink::before_ledger`]); they are first.
    before_ledger: usize,
    pub(crate) budgets: crate::budget::BudgetTracker,
    pub(crate) journal: std::sync::OnceLock<crate::journal::JournalWriter>,
    /// A journal was configured and `build` ran without it (it could not be opened, or its directory was read-only):
    /// what is recorded is not journaled, which the OTLP exporter counts as `journal_disabled` losses.
    pub(crate) journal_disabled: std::sync::atomic::AtomicBool,
    pub(crate) ledger: crate::ledger::Ledger,
    #[cfg(feature = "otlp")]
    pub(crate) otlp: Option<crate::export::otlp::OtlpMetrics>,
    /// The warning about spans opened while closing was logged.
    warned_span_in_close: std::sync::atomic::AtomicBool,
    /// The unread usage fields warned about, and those whose warning a thread holds back.
    unread_warnings: Arc<Mutex<UnreadWarnings>>,
}

/// How many unread usage field names a meter warns about; past them, they are only counted.
const MAX_UNREAD_USAGE_WARNINGS: usize = 32;

/// Warnings held back at once for threads that have not logged them yet (a thread that ends drops its entries).
const MAX_PENDING_UNREAD_WARNINGS: usize = 256;

/// The unread usage fields a meter warned about, and the warnings held back (see [`defer_log`]) by thread.
#[derive(Default)]
struct UnreadWarnings {
    warned: Vec<&'static str>,
    pending: Vec<(&'static str, std::thread::ThreadId)>,
}

/// A warning held back for `thread`: its pending entry goes when it is dropped, run or not (a thread's held-back
/// logs are dropped when it ends).
struct PendingUnreadWarning {
    warnings: Arc<Mutex<UnreadWarnings>>,
    field: &'static str,
    thread: std::thread::ThreadId,
}

impl Drop for PendingUnreadWarning {
    fn drop(&mut self) {
        self.warnings.lock().pending.retain(|p| *p != (self.field, self.thread));
    }
}

thread_local! {
    /// The (meter, field) pairs this thread warned about or holds a warning for: a span of such a callsite skips
    /// the meter's lock once its fields are. Capped; past it the lock is taken.
    static UNREAD_SEEN: std::cell::RefCell<Vec<(usize, &'static str)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How many pairs [`UNREAD_SEEN`] holds.
const MAX_UNREAD_SEEN: usize = 64;

impl fmt::Debug for MeterInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeterInner").finish_non_exhaustive()
    }
}

/// Capture's notes on a finished call, for the health counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CaptureNotes {
    pub(crate) corrections: u64,
    pub(crate) rejected_values: u64,
    pub(crate) split: bool,
    /// A [`CaptureRule`](crate::capture::CaptureRule) changed how its fields were read.
    pub(crate) turned: bool,
}

impl MeterInner {
    /// Capture's health counters, summed over the shards.
    fn capture_stats(&self) -> CaptureStats {
        let mut stats = CaptureStats::default();
        for shard in self.shards.iter() {
            stats.merge(&shard.lock().stats);
        }
        stats
    }

    fn shard(&self) -> &Mutex<Shard> {
        self.shards.mine()
    }

    /// Prices a call (filling `rec.cost`), adds it to the totals and hands it to the sinks. Takes the record by
    /// reference: it is a few hundred bytes, built once on the recording thread's stack and never moved.
    pub(crate) fn finish_call(&self, rec: &mut CallRecord, notes: CaptureNotes) {
        self.filter_dimensions(&mut rec.dimensions);
        let passed = self.erase_gate.pass();
        let erased = passed.scrub(&mut rec.dimensions);
        let mut model_key: Option<Arc<str>> = None;
        {
            let mut shard = self.shard().lock();
            let shard = &mut *shard;
            let resolved = shard.model_slot(rec.model.as_deref(), &self.prices);
            let slot = &mut shard.models[resolved.slot];
            let (priced, key) = match &resolved.overflow {
                Some(own) => (own.priced.as_ref(), &own.key),
                None => (slot.priced.as_ref(), &slot.key),
            };
            if rec.metered {
                rec.cost = priced.map(|p| p.price_call(rec));
            }
            if !self.budgets.is_empty() {
                model_key = Some(key.clone());
            }
            slot.totals.add_call(rec);
            let stats = &mut shard.stats;
            stats.calls += 1;
            stats.unmetered_calls += u64::from(!rec.metered);
            stats.normalization_corrections += notes.corrections;
            stats.rejected_values += notes.rejected_values;
            stats.shared_span_splits += u64::from(notes.split);
            stats.capture_rule_calls += u64::from(notes.turned);
        }
        let (marks, due) = match &model_key {
            Some(key) => self.budgets.on_call(rec, key, &*self.clock),
            None => Default::default(),
        };
        #[cfg(feature = "otlp")]
        if let Some(otlp) = &self.otlp {
            otlp.record_call(rec, &self.prices);
        }
        if let Some(journal) = self.journal.get() {
            if !erased {
                journal.append(rec);
            }
            // After the call that caused them, before they are delivered: a restarted meter knows these alerts
            // were delivered (queued after, a callback that stops the process, or its exit as the webhook posts,
            // could leave the mark unwritten, and a restart delivered the alert again).
            for mark in marks {
                journal.append_alert(mark);
            }
        }
        self.dispatch(|s| s.on_call(rec));
        self.after_ledger(&rec.dimensions, true);
        drop(passed);
        // The alerts this call crossed, once the journal, the ledger and the sinks have it: a callback that reads
        // the usage (`query`, `usage_summary`) for its message sees the call that crossed the threshold.
        self.budgets.deliver(due);
    }

    /// Delivers the budget alerts owed since the replay (once; afterwards an atomic load) and journals them.
    pub(crate) fn deliver_owed_alerts(&self, now: i64) {
        let (marks, alerts) = self.budgets.take_owed(now);
        if let Some(journal) = self.journal.get() {
            marks.into_iter().for_each(|mark| journal.append_alert(mark));
        }
        self.budgets.deliver(alerts);
    }

    /// Adds a call replayed from the journal back into the model totals and the budgets (no capture stats, no
    /// alerts, not journaled again) and hands it to the sinks' `on_replayed_call`. The hook where anything
    /// else that keeps history (the ledger) joins replay.
    ///
    /// A metered call journaled without a cost (its model was unknown then) is priced with today's book, as
    /// the ledger prices it: the totals, the budgets and the reports agree on one figure.
    pub(crate) fn replay_call(&self, rec: &mut CallRecord) {
        let model_key = {
            let mut shard = self.shard().lock();
            let shard = &mut *shard;
            let resolved = shard.model_slot(rec.model.as_deref(), &self.prices);
            let slot = &mut shard.models[resolved.slot];
            if rec.metered && rec.cost.is_none() {
                let priced = resolved.overflow.as_ref().map_or(slot.priced.as_ref(), |own| own.priced.as_ref());
                rec.cost = priced.map(|p| p.price_call(rec));
            }
            slot.totals.add_call(rec);
            match resolved.overflow {
                Some(own) => own.key.clone(),
                None => slot.key.clone(),
            }
        };
        self.budgets.replay_call(rec, &model_key, self.clock.now());
        self.dispatch(|s| s.on_replayed_call(rec));
    }

    pub(crate) fn finish_task(&self, mut record: TaskRecord, rejected_values: u64) {
        if self.dimension_filter.is_some() {
            self.filter_dimensions(&mut record.dimensions);
        }
        let passed = self.erase_gate.pass();
        let erased = passed.scrub(&mut record.dimensions);
        if self.dimension_filter.is_some() || erased {
            // Named by its dimension, as capture names it.
            record.task = record.dimensions.task.get_or_insert_with(|| Arc::from("unnamed")).clone();
        }
        {
            let mut shard = self.shard().lock();
            shard.stats.tasks += 1;
            shard.stats.rejected_values += rejected_values;
        }
        #[cfg(feature = "otlp")]
        if let Some(otlp) = &self.otlp {
            otlp.record_task(&record);
        }
        if let Some(journal) = self.journal.get().filter(|_| !erased) {
            journal.append_task(&record);
        }
        self.dispatch(|s| s.on_task(&record));
        self.after_ledger(&record.dimensions, false);
        drop(passed);
    }

    /// Hands a task replayed from the journal to the sinks' `on_replayed_task` (no capture stats, not exported
    /// or journaled again).
    pub(crate) fn replay_task(&self, record: &TaskRecord) {
        self.dispatch(|s| s.on_replayed_task(record));
    }

    pub(crate) fn finish_tool(&self, mut record: ToolRecord, rejected_values: u64) {
        self.filter_dimensions(&mut record.dimensions);
        let passed = self.erase_gate.pass();
        let erased = passed.scrub(&mut record.dimensions);
        {
            let mut shard = self.shard().lock();
            shard.stats.tool_calls += 1;
            shard.stats.rejected_values += rejected_values;
            shard.add_tool(&record);
        }
        #[cfg(feature = "otlp")]
        if let Some(otlp) = &self.otlp {
            otlp.record_tool(&record);
        }
        if let Some(journal) = self.journal.get().filter(|_| !erased) {
            journal.append_tool(&record);
        }
        self.dispatch(|s| s.on_tool(&record));
        self.after_ledger(&record.dimensions, false);
        drop(passed);
    }

    /// Adds a tool execution replayed from the journal back into the per-tool totals (no capture stats, not
    /// exported or journaled again) and hands it to the sinks' `on_replayed_tool`.
    pub(crate) fn replay_tool(&self, record: &ToolRecord) {
        self.shard().lock().add_tool(record);
        self.dispatch(|s| s.on_replayed_tool(record));
    }

    /// Counts a call span skipped as a roll-up of the calls inside it, with its rejected values.
    pub(crate) fn count_rollup(&self, rejected: u64) {
        let mut shard = self.shard().lock();
        shard.stats.rollup_spans += 1;
        shard.stats.rejected_values += rejected;
    }

    /// Counts a call span closed unsent (see [`CaptureStats::unsent_calls`]), with its rejected values.
    pub(crate) fn count_unsent(&self, rejected: u64) {
        let mut shard = self.shard().lock();
        shard.stats.unsent_calls += 1;
        shard.stats.rejected_values += rejected;
    }

    /// Counts a span that closed while this meter's layer was closing another (a sink or callback opened or
    /// dropped it).
    pub(crate) fn count_span_opened_while_closing(&self) {
        self.shard().lock().stats.spans_opened_while_closing += 1;
    }

    /// Warns, once, that span `name` closed while this meter's layer was closing another.
    pub(crate) fn warn_span_opened_while_closing(&self, name: &'static str) {
        if !self.warned_span_in_close.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                target: "tokenmeter::capture",
                span = name,
                "a span closed while tokenmeter was closing another (a record sink or budget callback opened or \
                 dropped it): tracing-subscriber never removes a span closed inside another span's close, and it \
                 keeps its parent spans open for good; hand such work to another thread \
                 (capture_stats().spans_opened_while_closing counts them)"
            );
        }
    }

    /// Counts a span or event declaring usage fields capture does not read (`fields`, never empty), and warns
    /// once about each field name, from the thread's next span exit, record or close (a log made while the
    /// dispatcher makes a span or hands out an event goes nowhere). A field the meter keeps as an extra dimension
    /// is read, and one named with [`TokenMeterBuilder::with_non_usage_field`] is not usage: both are left out.
    #[cold]
    pub(crate) fn note_unread_usage(&self, meta: &'static tracing::Metadata<'static>, fields: &[&'static str]) {
        let unread = |f: &&'static str| {
            !self.extra_dims.iter().any(|d| &**d == *f) && !self.non_usage_fields.iter().any(|d| &**d == *f)
        };
        if !fields.iter().any(unread) {
            return;
        }
        self.shard().lock().stats.unread_usage_declarations += 1;
        let key = self.key;
        let seen = |f: &'static str| UNREAD_SEEN.try_with(|s| s.borrow().contains(&(key, f))).unwrap_or(false);
        let fresh: Vec<&'static str> = fields.iter().copied().filter(unread).filter(|f| !seen(f)).collect();
        if fresh.is_empty() {
            return;
        }
        let thread = std::thread::current().id();
        let to_warn: Vec<&'static str> = {
            let mut w = self.unread_warnings.lock();
            let to_warn = fresh
                .iter()
                .copied()
                .filter(|f| {
                    let due = !w.warned.contains(f)
                        && w.warned.len() < MAX_UNREAD_USAGE_WARNINGS
                        && !w.pending.contains(&(f, thread))
                        && w.pending.len() < MAX_PENDING_UNREAD_WARNINGS;
                    if due {
                        w.pending.push((f, thread));
                    }
                    due
                })
                .collect();
            // Warned, or held back by this thread, or past the caps: this thread need not ask again.
            let settled = |f: &&'static str| {
                w.warned.contains(f) || w.pending.contains(&(f, thread)) || w.warned.len() >= MAX_UNREAD_USAGE_WARNINGS
            };
            let settled: Vec<&'static str> = fresh.iter().copied().filter(settled).collect();
            let _ = UNREAD_SEEN.try_with(|s| {
                let mut s = s.borrow_mut();
                for f in settled {
                    // The oldest go first: those of a meter since dropped, most likely (keys are never reused).
                    if s.len() >= MAX_UNREAD_SEEN {
                        s.remove(0);
                    }
                    s.push((key, f));
                }
            });
            to_warn
        };
        let kind = if meta.is_span() { "span" } else { "event" };
        for field in to_warn {
            // Dropped with the closure, run or not: a thread that ends holding the warning leaves it to another.
            let pending = PendingUnreadWarning { warnings: Arc::clone(&self.unread_warnings), field, thread };
            crate::capture::defer_log(move || {
                // Marked as it is logged.
                {
                    let mut w = pending.warnings.lock();
                    if w.warned.contains(&field) || w.warned.len() >= MAX_UNREAD_USAGE_WARNINGS {
                        return;
                    }
                    w.warned.push(field);
                }
                tracing::warn!(
                    target: "tokenmeter::capture",
                    field,
                    callsite = meta.name(),
                    callsite_target = meta.target(),
                    "a {kind} declares {field}, named as a count of tokens used, which tokenmeter does not read: \
                     unless its tokens are also in a field it reads (as a part of a total), they are in no figure. \
                     Record them under a name the capture contract reads (README \"Capture contract\"), or name the \
                     field with TokenMeterBuilder::with_non_usage_field; \
                     capture_stats().unread_usage_declarations counts such spans and events"
                );
            });
        }
    }

    /// Counts a usage event that had no call span to update, with its rejected values.
    pub(crate) fn count_orphan_usage(&self, rejected: u64) {
        let mut shard = self.shard().lock();
        shard.stats.orphan_usage_events += 1;
        shard.stats.rejected_values += rejected;
    }

    pub(crate) fn count_rejected(&self, n: u64) {
        if n > 0 {
            self.shard().lock().stats.rejected_values += n;
        }
    }

    /// [`RecordSink::after_ledger`] for the sinks heard before the ledger (they come first).
    fn after_ledger(&self, dimensions: &crate::Dimensions, call: bool) {
        if self.before_ledger == 0 {
            return;
        }
        self.dispatch_to(&self.sinks[..self.before_ledger], |s| s.after_ledger(dimensions, call));
    }

    /// Applies [`TokenMeterBuilder::with_dimension_filter`]'s filter to `dims`, if there is one: run as sinks are
    /// (usage events it logs are not read back), a panic dropping the value.
    #[inline]
    pub(crate) fn filter_dimensions(&self, dims: &mut crate::Dimensions) {
        if let Some(filter) = &self.dimension_filter {
            self.apply_dimension_filter(filter, dims);
        }
    }

    /// What the filter keeps of one value: the same `Arc` when it keeps it as it is, `None` when it drops it (or
    /// panics).
    fn filtered(&self, filter: &DimensionFilter, name: &str, value: &Arc<str>) -> Option<Arc<str>> {
        let kept = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| filter(name, value))).ok()??;
        Some(if *kept == **value { value.clone() } else { Arc::from(crate::capture::capped(&kept, self.max_dim_len)) })
    }

    /// A value as the application's spans would have it recorded: cut at the meter's length, empty dropped, then
    /// filtered; the same `Arc` when nothing changes.
    pub(crate) fn as_recorded(&self, name: &str, value: &Arc<str>) -> Option<Arc<str>> {
        let cut = crate::capture::capped(value, self.max_dim_len);
        if cut.is_empty() {
            return None;
        }
        let value = if cut.len() == value.len() { value.clone() } else { Arc::from(cut) };
        match &self.dimension_filter {
            Some(filter) => crate::capture::while_in_sinks(|| self.filtered(filter, name, &value)),
            None => Some(value),
        }
    }

    #[inline(never)]
    fn apply_dimension_filter(&self, filter: &DimensionFilter, dims: &mut crate::Dimensions) {
        let keep = |name: &str, value: &Arc<str>| self.filtered(filter, name, value);
        crate::capture::while_in_sinks(|| {
            let crate::Dimensions { session, user, tenant, project, agent, operation, task, extra } = dims;
            for (name, slot) in [
                ("session", session),
                ("user", user),
                ("tenant", tenant),
                ("project", project),
                ("agent", agent),
                ("operation", operation),
                ("task", task),
            ] {
                *slot = slot.take().and_then(|v| keep(name, &v));
            }
            extra.retain_mut(|(name, value)| match keep(name, value) {
                Some(kept) => {
                    *value = kept;
                    true
                }
                None => false,
            });
        });
    }

    fn dispatch(&self, f: impl Fn(&dyn RecordSink)) {
        self.dispatch_to(&self.sinks, f)
    }

    /// Tells every sink what [`TokenMeter::erase`] erases ([`RecordSink::on_erase`]); a sink that panics is counted.
    pub(crate) fn tell_sinks_erased(&self, values: &[(String, String)]) {
        self.dispatch(|s| s.on_erase(values));
    }

    fn dispatch_to(&self, sinks: &[Arc<dyn RecordSink>], f: impl Fn(&dyn RecordSink)) {
        crate::capture::while_in_sinks(|| {
            for sink in sinks {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&**sink)));
                if r.is_err() {
                    self.shard().lock().stats.sink_panics += 1;
                }
            }
        })
    }
}
