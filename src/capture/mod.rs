//! Capture: the `tracing` layer that turns LLM call spans into [`CallRecord`]s.
//!
//! # Which spans it reads
//!
//! Every callsite is classified once, by its declared field names (the contract's names are in [`fields`], and
//! what each means in the README's "The capture contract, in brief"): an *LLM call span* declares a token
//! field; a *context span* declares an attribution dimension (`session.id`, `user.id`, `project`, `task`, …);
//! a *tool span* declares `gen_ai.tool.name` and
//! `gen_ai.operation.name`; a *usage event* declares a token field; an *error event* is the `ERROR` event with
//! the one field `error` that `#[tracing::instrument(err)]` emits, which fails the call span it is in. The layer
//! ignores every other span and event, and never filters: other layers see exactly what they saw before.
//!
//! A call span with call spans inside it is a *roll-up* (an `invoke_agent` span carrying its agent's totals) and
//! is not counted, unless its `gen_ai.operation.name` is a single model request
//! ([`INFERENCE_OPERATIONS`](fields::INFERENCE_OPERATIONS)), or it has usage and none of the calls inside had
//! any, or it has no operation and its own id none of them had: the calls inside are. A call that is one of the
//! calls recorded inside its span (the same id; without an id, the same tokens) is counted once, there. Usage
//! events outside any call span update nothing; both are counted in [`CaptureStats`](crate::CaptureStats).
//!
//! # Implementation details
//!
//! - Non-LLM spans and events: one per-thread hash lookup of the callsite's plan when created, and one span
//!   lookup at close (to find no state). Enter is not implemented; exit reads one thread-local flag (whether a
//!   usage event's dispatch held a log back, which is written then) and the process's panic count (a relaxed
//!   load; the span is looked up only while a panic unwinds).
//!   (A per-layer `Filter` was tried first: `Filtered` looks the span up on every enter, exit, record and
//!   close to check its filter bit, which cost more than it saved per span. It is offered beside, as
//!   [`CaptureFilter`] through `TokenMeter::filtered_layer`: it keeps off the callsites other layers' per-layer
//!   filters turn off, which an unfiltered layer turns on for the whole process.)
//! - Spans it reads: one boxed state in the span's extensions (per meter: several meters' layers may share a
//!   registry, and each finds its own state by key), filled by a visitor that looks each field's role
//!   up by index in a per-callsite plan (no name comparisons on the hot path; the plan is found through a
//!   per-thread cache).
//! - At a call span's close: normalization, one walk up the span tree for dimensions (nearest ancestor wins,
//!   reading only spans this layer tracks), pricing through a per-thread-shard model cache, totals in that
//!   shard. No global lock; no I/O; no allocation beyond the record's own strings.
//! - Nothing here panics on any field value; bad values are counted in [`CaptureStats`](crate::CaptureStats).

pub mod fields;
mod normalize;
mod rule;
mod values;

pub use rule::CaptureRule;
pub use values::{MAX_LABEL_LEN, MAX_TOKENS_PER_FIELD, MAX_WEB_SEARCHES_PER_CALL};

use std::cell::Cell;
use std::sync::Arc;

use chrono::DateTime;
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{Extensions, ExtensionsMut, LookupSpan, SpanRef};

use crate::clock::micros_between;
use crate::meter::{CaptureNotes, MeterInner};
use crate::pricing::Money;
use crate::record::{CallRecord, Dimensions, Outcome, TaskRecord, TaskTotals, TokenUsage, ToolRecord};

use fields::{CallsitePlan, DIM_COUNT, Dim, EXECUTE_TOOL, plan_for};
pub(crate) use values::capped;
use values::{CallFields, DeclaredPerCall, DimValues, FieldVisitor, RenderedOnly};

/// A per-layer filter that turns on, for the capture layer alone, exactly the spans and events capture reads
/// (by their callsites' declared fields, as the layer itself decides) and turns off every other callsite. Get it
/// with [`TokenMeter::filtered_layer`](crate::TokenMeter::filtered_layer), which wraps the layer in it.
///
/// Why: a layer without a filter has an interest in every callsite. Beside another layer with a per-layer
/// filter (`fmt::layer().with_filter(EnvFilter::…)`), a `trace!` span or event that filter turns off is then no
/// longer off for the whole process: it is built, registered and dispatched (the process's max level becomes
/// `TRACE`), only for this layer to ignore it. With this filter such a callsite stays off.
#[derive(Clone)]
pub struct CaptureFilter {
    layer: TokenMeterLayer,
}

impl std::fmt::Debug for CaptureFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureFilter").finish_non_exhaustive()
    }
}

impl CaptureFilter {
    pub(crate) fn new(layer: TokenMeterLayer) -> Self {
        CaptureFilter { layer }
    }

    fn reads(&self, meta: &Metadata<'_>) -> bool {
        let plan = plan_for(meta);
        // A callsite with usage fields capture does not read is seen too, to count and warn about them.
        if !plan.unread_usage.is_empty() {
            return true;
        }
        if meta.is_event() {
            plan.has_tokens || plan.instrument_err || plan.error_event
        } else {
            self.layer.wants(meta, plan)
        }
    }
}

impl<S> tracing_subscriber::layer::Filter<S> for CaptureFilter
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        self.reads(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing_core::Interest {
        if self.reads(meta) { tracing_core::Interest::always() } else { tracing_core::Interest::never() }
    }
}

/// The id of the span an event was raised in (its explicit parent, or the thread's current span), whatever a
/// per-layer filter hides: under [`CaptureFilter`] `event_span` skips spans the filter turned off, and capture
/// must still tell an event in the call span from one in a helper span inside it.
fn own_span_id<S>(event: &Event<'_>, ctx: &Context<'_, S>) -> Option<Id>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if event.is_root() {
        None
    } else if let Some(parent) = event.parent() {
        Some(parent.clone())
    } else {
        ctx.current_span().id().cloned()
    }
}

/// The capture layer. Build it with [`TokenMeter::layer`](crate::TokenMeter::layer).
///
/// It implements [`Layer`] for any subscriber with span lookup (a `Registry` and the layers on it). It never
/// returns a filtering decision ([`Layer::register_callsite`] and [`Layer::enabled`] keep their defaults of
/// "always"): it never hides anything from another layer, and it changes no span or event another layer sees.
/// Beside layers that all have per-layer filters, though, its interest turns on the spans they turn off: a
/// `debug_span!` then exists and becomes `Span::current()` inside it.
/// [`TokenMeter::filtered_layer`](crate::TokenMeter::filtered_layer) turns on only the callsites capture reads.
#[derive(Clone)]
pub struct TokenMeterLayer {
    inner: Arc<MeterInner>,
}

impl std::fmt::Debug for TokenMeterLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenMeterLayer").finish_non_exhaustive()
    }
}

thread_local! {
    /// Set while this thread runs a meter layer's `on_event` for a usage or error event (see [`defer_log`]).
    static IN_EVENT: Cell<bool> = const { Cell::new(false) };
    /// Log events [`defer_log`] held back, for the next `on_exit`, `on_record` or `on_close` on this thread.
    static DEFERRED: std::cell::RefCell<Vec<Box<dyn FnOnce()>>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Whether [`DEFERRED`] holds anything (read on every close: a `Cell` is cheaper than the `RefCell`).
    static HAS_DEFERRED: Cell<bool> = const { Cell::new(false) };
    /// Set while this thread runs a meter's sinks (see [`while_in_sinks`]).
    static IN_SINKS: Cell<bool> = const { Cell::new(false) };
    /// Set while this thread runs a meter layer's `on_close` (sinks and budget callbacks run there).
    static IN_CLOSE: Cell<bool> = const { Cell::new(false) };
    /// The name of a span opened meanwhile, for the warning given when that `on_close` ends.
    static OPENED_WHILE_CLOSING: Cell<Option<&'static str>> = const { Cell::new(None) };
    /// Set while this thread drops a request [`TokenMeter::guard`](crate::TokenMeter::guard) refused (see
    /// [`drop_unsent`]).
    static DROPPING_UNSENT: Cell<bool> = const { Cell::new(false) };
}

/// Drops a request that was never sent (a future [`TokenMeter::guard`](crate::TokenMeter::guard) refused and never
/// polled). A call span the future owned (`.instrument(span)` made it before the budget check) closes in this drop
/// with nothing recorded: it is counted in [`CaptureStats::unsent_calls`](crate::CaptureStats::unsent_calls), not
/// as a call.
pub(crate) fn drop_unsent<T>(request: T) {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            let _ = DROPPING_UNSENT.try_with(|d| d.set(self.0));
        }
    }
    let _reset = Reset(DROPPING_UNSENT.try_with(|d| d.replace(true)).unwrap_or(false));
    drop(request);
}

/// Whether this thread is dropping a request [`TokenMeter::guard`](crate::TokenMeter::guard) refused.
fn dropping_unsent() -> bool {
    DROPPING_UNSENT.try_with(Cell::get).unwrap_or(false)
}

/// A span of a request that was never made: nothing was recorded on it, and it closes in [`drop_unsent`] or was
/// entered there (the caller held a clone of it, `fut.instrument(span.clone())`, and dropped that later).
fn unsent(fields: &CallFields) -> bool {
    !fields.tokens.any()
        && fields.response_id.is_none()
        && fields.error_type.is_none()
        && fields.status_error.is_none()
        && (fields.entered_unsent || dropping_unsent())
}

/// Marks this thread as inside a meter layer's `on_close` until dropped; then warns (once per meter) if a span
/// was opened meanwhile. The warning waits for the close to end: an event raised inside `on_new_span` would be
/// dropped by a scoped dispatcher (a dispatch inside a dispatch goes nowhere).
struct Closing<'a> {
    was: bool,
    meter: &'a MeterInner,
}

impl<'a> Closing<'a> {
    fn enter(meter: &'a MeterInner) -> Self {
        Closing { was: IN_CLOSE.try_with(|c| c.replace(true)).unwrap_or(false), meter }
    }
}

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        let _ = IN_CLOSE.try_with(|c| c.set(self.was));
        if let Some(name) = OPENED_WHILE_CLOSING.try_with(Cell::take).ok().flatten() {
            let meter = self.meter;
            let _ =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| meter.warn_span_opened_while_closing(name)));
        }
    }
}

/// Logs with `log` now, or, inside a meter layer's `on_event` (a usage event that split a shared span's calls
/// finishes the earlier call there: its budget alerts fire), at the next span exit, record or close this layer sees
/// on this thread (usually the exit of the span the event was in). A thread that ends first drops them.
/// An event logged inside another event's dispatch goes nowhere when any scoped dispatcher is set
/// (`with_default`), and under a global one it overwrites tracing-subscriber's per-layer filter state for the
/// layers that had not yet seen the outer event (tokio-rs/tracing#2704). Callbacks, sinks and webhooks are not
/// held back: only tokenmeter's own log events.
pub(crate) fn defer_log(log: impl FnOnce() + 'static) {
    if IN_EVENT.try_with(Cell::get).unwrap_or(false) {
        let queued = DEFERRED.try_with(|d| d.try_borrow_mut().map(|mut d| d.push(Box::new(log))).is_ok());
        if queued.unwrap_or(false) {
            let _ = HAS_DEFERRED.try_with(|h| h.set(true));
        }
    } else {
        // As held-back logs are: another layer's panic on the event must not unwind out of the application's span
        // close (the call, task or tool it finishes would go unfinished, and during an unwind it would abort).
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(log));
    }
}

/// Logs what [`defer_log`] held back on this thread (one flag read when nothing is).
#[inline]
fn log_deferred() {
    if HAS_DEFERRED.try_with(Cell::get).unwrap_or(false) {
        log_deferred_now();
    }
}

#[cold]
fn log_deferred_now() {
    if IN_EVENT.try_with(Cell::get).unwrap_or(false) {
        return;
    }
    let _ = HAS_DEFERRED.try_with(|h| h.set(false));
    let held = DEFERRED.try_with(|d| d.try_borrow_mut().map(|mut d| std::mem::take(&mut *d)).unwrap_or_default());
    for log in held.unwrap_or_default() {
        // Another layer panicking on the event must not unwind out of this span's exit or close (whose call
        // would go unfinished), nor drop the logs after it.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(log));
    }
}

/// Marks this thread as inside a meter layer's `on_event` until dropped (see [`defer_log`]).
struct InEvent(bool);

impl InEvent {
    fn enter() -> Self {
        InEvent(IN_EVENT.try_with(|c| c.replace(true)).unwrap_or(false))
    }
}

impl Drop for InEvent {
    fn drop(&mut self) {
        let _ = IN_EVENT.try_with(|c| c.set(self.0));
    }
}

/// Runs a meter's sinks. A sink that logs a call's usage with the contract's field names (`info!(input_tokens =
/// r.tokens.input, ..)` in an `on_call` callback) must not feed it back into capture: usage events and error
/// events raised meanwhile are ignored, unless the call span they belong to was opened by the sink itself (a
/// sink making calls of its own is still metered).
#[inline]
pub(crate) fn while_in_sinks<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the flag however `f` ends: a panic out of it (another layer's, on an alert's event) that left
    /// the flag set would have this thread ignore every usage and error event from then on.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = IN_SINKS.try_with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(IN_SINKS.try_with(|c| c.replace(true)).unwrap_or(false));
    f()
}

fn in_sinks() -> bool {
    IN_SINKS.try_with(Cell::get).unwrap_or(false)
}

/// What capture keeps in a span's extensions.
struct SpanState {
    plan: &'static CallsitePlan,
    /// When the span (or its latest call) started: [`Clock::monotonic_nanos`](crate::clock::Clock::monotonic_nanos).
    start: i64,
    call: CallFields,
    dims: DimValues,
    task: Option<TaskTally>,
    rejected: u64,
    /// A call span this meter finalized (or skipped as a roll-up) ran inside this one: if this is a call span
    /// too, and not a single model request, its usage is the roll-up of those calls (see [`rollup`]).
    encloses_calls: bool,
    /// One of those calls (or a roll-up of calls further in) carried usage. A span whose enclosed calls all
    /// closed without usage carries the only usage there is, and is counted (see [`rollup`]).
    encloses_usage: bool,
    /// The span has carried more than one call (a new response or request id split it): each of its calls
    /// carries its own usage, so none is a roll-up of the calls inside it.
    carries_calls: bool,
    /// The calls with usage that closed inside this span since a call of this span last matched one (at most
    /// [`MAX_ENCLOSED`], the latest): a call of this span that is one of them is that same API call, recorded
    /// twice (a loop span recording each response around a client that records it too; a retry wrapper recording
    /// the attempt that worked), and is skipped as a roll-up. See [`recorded_inside`].
    enclosed: Vec<EnclosedCall>,
    /// Closed: set by the first of this meter's layers to see the close (a meter layered twice by mistake
    /// still records each call once).
    closed: bool,
    /// Opened while this thread ran a meter's sinks: events inside it are read (see [`while_in_sinks`]).
    opened_in_sinks: bool,
    /// What the span declared at creation of the fields each call may restate: where the next call on a
    /// long-lived span starts from.
    declared: DeclaredPerCall,
}

/// Every meter's state for one span. A span's extensions hold one value per type, and two meters' layers on
/// one registry (one per tenant, say) both read the same span: each keeps its own state, found by its key. The
/// first meter's is inline, so the usual single meter pays one comparison.
struct SpanStates {
    first: (usize, SpanState),
    more: Vec<(usize, SpanState)>,
}

impl SpanStates {
    fn get(&self, key: usize) -> Option<&SpanState> {
        if self.first.0 == key {
            return Some(&self.first.1);
        }
        self.more.iter().find(|(k, _)| *k == key).map(|(_, s)| s)
    }

    fn get_mut(&mut self, key: usize) -> Option<&mut SpanState> {
        if self.first.0 == key {
            return Some(&mut self.first.1);
        }
        self.more.iter_mut().find(|(k, _)| *k == key).map(|(_, s)| s)
    }
}

/// Enclosed calls a span keeps (see [`SpanState::enclosed`]); past this the oldest goes. A loop span's turn that
/// fans out to more calls than this before the loop records the turn counts the turn twice. It was 8, which an
/// agent turn with 8 tool or sub-agent calls reached.
const MAX_ENCLOSED: usize = 1024;

/// A call with usage that closed inside a call span: what tells whether a call of that span is the same one.
struct EnclosedCall {
    response_id: Option<Arc<str>>,
    request_id: Option<Arc<str>>,
    /// Its tokens, normalized.
    tokens: TokenUsage,
}

/// Where in `enclosed` the call `fields` was already recorded, if it was: by its response or request id when it
/// has one; without an id, by its tokens, the same of every kind (a wrapper around retried attempts recording the
/// usage of the one that worked, and no id). `tokens` gives the call's own, normalized, asked only then.
fn recorded_inside(
    fields: &CallFields,
    tokens: impl FnOnce() -> TokenUsage,
    enclosed: &[EnclosedCall],
) -> Option<usize> {
    if enclosed.is_empty() {
        return None;
    }
    let ids = [&fields.response_id, &fields.request_id];
    if ids.iter().any(|id| id.is_some()) {
        let same = |theirs: &Option<Arc<str>>| theirs.is_some() && ids.contains(&theirs);
        return enclosed.iter().position(|e| same(&e.response_id) || same(&e.request_id));
    }
    let tokens = tokens();
    if tokens == TokenUsage::default() {
        return None;
    }
    enclosed.iter().rposition(|e| e.tokens == tokens)
}

/// A call whose span closed (or was taken over by the next call on a long-lived span).
struct EndedCall<'a> {
    fields: &'a CallFields,
    dims: &'a DimValues,
    /// Monotonic nanoseconds ([`Clock::monotonic_nanos`](crate::clock::Clock::monotonic_nanos)).
    start: i64,
    /// Monotonic nanoseconds.
    end: i64,
    /// Unix nanoseconds at `end`: the record's timestamp is this less the duration.
    end_unix: i64,
    rejected: u64,
    split: bool,
    /// The span's usage rolls up calls already counted: skip it (see [`rollup`]).
    rollup: bool,
    /// A call inside the span carried usage: what a skipped roll-up passes on to the call span around it.
    encloses_usage: bool,
}

/// Whether a call span's usage is a roll-up of the calls inside it (an `invoke_agent` span carrying its
/// agent's totals, as the GenAI agent-span conventions allow): it encloses call spans and its operation is not a
/// single model request ([`fields::INFERENCE_OPERATIONS`]). Counting it would count those calls twice.
///
/// Unless none of those calls carried usage while this span did (a span recording the usage of a client whose
/// own span declares usage it never records): then its usage is counted nowhere else, and it is a call. And
/// unless the span has no operation and its own response or request id, which none of the calls inside had
/// while they had ids ([`recorded_inside`] found none): a call of its own (a streamed request during which a
/// sub-agent's calls ran), not a total of theirs. An `invoke_agent` span stays a roll-up whatever its id.
/// `enclosed` is the span's [`SpanState::enclosed`]: whole, as nothing matched and drained it in a span that never
/// split.
fn rollup(encloses_calls: bool, encloses_usage: bool, enclosed: &[EnclosedCall], fields: &CallFields) -> bool {
    let own_id = fields.response_id.is_some() || fields.request_id.is_some();
    // Ids are being reported inside: a span without an operation whose own id is none of theirs is its own call.
    let encloses_ids = || enclosed.iter().any(|e| e.response_id.is_some() || e.request_id.is_some());
    encloses_calls
        && (encloses_usage || !fields.tokens.any())
        && !(own_id && fields.operation_name.is_none() && encloses_ids())
        && !fields.operation_name.as_deref().is_some_and(|op| fields::INFERENCE_OPERATIONS.contains(&op))
}

#[derive(Default)]
struct TaskTally {
    calls: u64,
    unpriced_calls: u64,
    failed_calls: u64,
    tokens: TokenUsage,
    cost: Money,
    /// The tasks that closed inside this one, with theirs: `None` until one has (boxed: every span's state
    /// holds a tally's room, and few tasks have tasks inside).
    subtasks: Option<Box<TaskTotals>>,
}

impl TaskTally {
    /// This task's own figures with its subtasks'.
    fn with_subtasks(&self) -> TaskTotals {
        let mut all = TaskTotals {
            subtasks: 0,
            calls: self.calls,
            unpriced_calls: self.unpriced_calls,
            failed_calls: self.failed_calls,
            tokens: self.tokens,
            cost: self.cost,
        };
        if let Some(inside) = &self.subtasks {
            all.add(inside);
        }
        all
    }
}

impl TokenMeterLayer {
    pub(crate) fn new(inner: Arc<MeterInner>) -> Self {
        TokenMeterLayer { inner }
    }

    /// The dimensions a call span opened in the current span would get (see
    /// [`TokenMeter::current_dimensions`](crate::TokenMeter::current_dimensions)).
    pub(crate) fn current_dimensions(&self) -> Option<Dimensions> {
        let id = tracing::Span::current().id()?;
        tracing::dispatcher::get_default(|dispatch| {
            let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
            let span = registry.span(&id)?;
            let ext = span.extensions();
            let (mut own, is_task) = match self.state(&ext) {
                Some(state) => (state.dims.clone(), state.task.is_some()),
                None => (DimValues::default(), false),
            };
            drop(ext);
            // A task without a name of its own is `unnamed` to the calls inside it, as they are recorded.
            if is_task && own.builtin[Dim::Task as usize].is_none() {
                own.builtin[Dim::Task as usize] = Some(Arc::from("unnamed"));
            }
            // The walk starts at the span's parent: the span's own values are `own`.
            Some(self.dimensions(&own, &span, Enclosing::Leave, None).0)
        })
        .map(|mut dims| {
            // As a record made here would keep them (the filter is the application's code: run outside the
            // dispatcher's borrow).
            self.inner.filter_dimensions(&mut dims);
            dims
        })
    }

    /// This meter's key in [`SpanStates`], unique in the process.
    fn key(&self) -> usize {
        self.inner.key
    }

    fn state<'e>(&self, ext: &'e Extensions<'_>) -> Option<&'e SpanState> {
        ext.get::<SpanStates>()?.get(self.key())
    }

    fn state_mut<'e>(&self, ext: &'e mut ExtensionsMut<'_>) -> Option<&'e mut SpanState> {
        ext.get_mut::<SpanStates>()?.get_mut(self.key())
    }

    /// Notes that a panic unwound through the span (its guard dropped while the thread panicked): a call, task or
    /// tool span left so fails as `panic` when it closes, even when the panic was caught before that.
    fn mark_unwound<S>(&self, id: &Id, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(span) = ctx.span(id) else { return };
        if let Some(state) = self.state_mut(&mut span.extensions_mut()) {
            state.call.unwound = true;
        }
    }

    /// Whether this meter reads spans of this callsite: decided from the callsite's cached plan (a per-thread
    /// hash lookup), plus a name check only when the meter has extra dimensions and the span has fields outside
    /// the contract.
    fn wants(&self, meta: &Metadata<'_>, plan: &CallsitePlan) -> bool {
        plan.wanted
            || (plan.may_carry_extra
                && !self.inner.extra_dims.is_empty()
                && meta.fields().iter().any(|f| self.inner.extra_dims.iter().any(|d| &**d == f.name())))
    }

    fn visitor<'a>(
        &'a self,
        plan: &'static CallsitePlan,
        call: &'a mut CallFields,
        dims: &'a mut DimValues,
    ) -> FieldVisitor<'a> {
        FieldVisitor::new(plan, &self.inner.extra_dims, self.inner.max_dim_len, call, dims)
    }

    /// Resolves dimensions: the span's own, then each ancestor's for what is still missing. Also returns the
    /// nearest ancestor task span (found in the same walk), which a call adds itself to. For a call, the
    /// nearest ancestor call span is marked as enclosing it (see [`Enclosing`]; the same walk, continued until
    /// it is found).
    fn dimensions<'a, S>(
        &self,
        own: &DimValues,
        span: &SpanRef<'a, S>,
        enclosing: Enclosing,
        inner: Option<([Option<&Arc<str>>; 2], &TokenUsage)>,
    ) -> (Dimensions, Option<SpanRef<'a, S>>)
    where
        S: Subscriber + for<'l> LookupSpan<'l>,
    {
        let mut builtin: [Option<Arc<str>>; DIM_COUNT] = own.builtin.clone();
        let mut extra: Vec<(u8, Arc<str>)> = own.extra.clone();
        // The nearest `gen_ai.conversation.id`: the session only when no span of the call's has `session.id`
        // (which leaves the session slot empty, so the walk goes on looking for one).
        let mut conversation = own.conversation.clone();
        let extra_count = self.inner.extra_dims.len();
        let complete = |b: &[Option<Arc<str>>; DIM_COUNT], e: &Vec<(u8, Arc<str>)>| {
            b.iter().all(Option::is_some) && e.len() == extra_count
        };
        let mut task_span = None;
        let mut done = complete(&builtin, &extra);
        let mut to_mark = enclosing != Enclosing::Leave;
        if !done || to_mark {
            // One registry lookup per ancestor (`parent().scope()` would look the parent up twice).
            let mut next = span.parent();
            while let Some(ancestor) = next {
                let ext = ancestor.extensions();
                let Some(state) = self.state(&ext) else {
                    drop(ext);
                    next = ancestor.parent();
                    continue;
                };
                let is_task = state.task.is_some();
                let mark = to_mark && state.plan.has_tokens;
                if !done {
                    for (slot, value) in builtin.iter_mut().zip(state.dims.builtin.iter()) {
                        if slot.is_none() {
                            slot.clone_from(value);
                        }
                    }
                    for (idx, value) in &state.dims.extra {
                        if !extra.iter().any(|(i, _)| i == idx) {
                            extra.push((*idx, value.clone()));
                        }
                    }
                    if conversation.is_none() {
                        conversation.clone_from(&state.dims.conversation);
                    }
                    // The nearest task names the call's task, `unnamed` when it has no name of its own (as its
                    // record is named): an outer task's name would give the call a task its tally is not in.
                    let task = &mut builtin[Dim::Task as usize];
                    if is_task && task.is_none() {
                        *task = Some(Arc::from("unnamed"));
                    }
                }
                drop(ext);
                if mark {
                    if let Some(state) = self.state_mut(&mut ancestor.extensions_mut()) {
                        state.encloses_calls = true;
                        if enclosing == Enclosing::MarkWithUsage {
                            state.encloses_usage = true;
                            if let Some((ids, tokens)) = inner {
                                if state.enclosed.len() >= MAX_ENCLOSED {
                                    state.enclosed.remove(0);
                                }
                                let [response_id, request_id] = ids.map(|id| id.cloned());
                                state.enclosed.push(EnclosedCall { response_id, request_id, tokens: *tokens });
                            }
                        }
                    }
                    to_mark = false;
                }
                // Complete dimensions include `task`, which only a task span (or the call span) provides.
                done = done || complete(&builtin, &extra);
                next = if done && !to_mark { None } else { ancestor.parent() };
                if is_task && task_span.is_none() {
                    task_span = Some(ancestor);
                }
            }
        }
        extra.sort_by_key(|(i, _)| *i);
        let [session, user, tenant, project, agent, operation, task] = builtin;
        let dimensions = Dimensions {
            session: session.or(conversation),
            user,
            tenant,
            project,
            agent,
            operation,
            task,
            extra: extra
                .into_iter()
                .filter_map(|(i, v)| self.inner.extra_dims.get(i as usize).map(|n| (n.clone(), v)))
                .collect(),
        };
        (dimensions, task_span)
    }

    /// A call's tokens as its record would have them (capture rules applied, normalized): to compare it with a
    /// call inside its span (see [`recorded_inside`]).
    fn tokens_of<S>(&self, span: &SpanRef<'_, S>, fields: &CallFields) -> TokenUsage
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let provider = fields.provider_name.as_deref().or(fields.system.as_deref());
        let ruled = match self.inner.capture_rules.is_empty() {
            true => None,
            false => {
                rule::CaptureRule::apply(&self.inner.capture_rules, span.metadata().target(), provider, &fields.tokens)
            }
        };
        normalize::normalize(ruled.as_ref().unwrap_or(&fields.tokens)).0
    }

    /// Makes the call record for what `call.fields` holds, and adds it to the nearest enclosing task (the span's
    /// own tally when the call span is itself a task).
    fn finish_call<S>(&self, span: &SpanRef<'_, S>, call: EndedCall<'_>, own_task: Option<&mut TaskTally>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let EndedCall { fields, dims: own_dims, start, end, end_unix, rejected, split, rollup, encloses_usage } = call;
        if rollup {
            // Its calls are counted; it still encloses them, for a roll-up further out.
            self.mark_enclosing_call(span, encloses_usage);
            self.inner.count_rollup(rejected);
            return;
        }
        let provider = fields.provider_name.clone().or_else(|| fields.system.clone());
        // Emitters whose fields mean something else than the contract says, for the calls a rule names (see
        // `CaptureRule`): the fields as those rules read them, when they change anything.
        let ruled = match self.inner.capture_rules.is_empty() {
            true => None,
            false => rule::CaptureRule::apply(
                &self.inner.capture_rules,
                span.metadata().target(),
                provider.as_deref(),
                &fields.tokens,
            ),
        };
        let turned = ruled.is_some();
        let (tokens, fixes) = normalize::normalize(ruled.as_ref().unwrap_or(&fields.tokens));
        let ids = [fields.response_id.as_ref(), fields.request_id.as_ref()];
        // A call span that is itself a task counts in its own tally: named `unnamed` when it has no name, as its
        // task record is (an outer task's name would give the call a task whose record does not hold it).
        let unnamed;
        let own_dims = if own_task.is_some() && own_dims.builtin[Dim::Task as usize].is_none() {
            let mut dims = own_dims.clone();
            dims.builtin[Dim::Task as usize] = Some(Arc::from("unnamed"));
            unnamed = dims;
            &unnamed
        } else {
            own_dims
        };
        let (dimensions, task_span) =
            self.dimensions(own_dims, span, Enclosing::of_call(fields.tokens.any()), Some((ids, &tokens)));
        let mut record = CallRecord {
            timestamp: started_at(start, end, end_unix),
            duration_us: micros_between(start, end),
            time_to_first_token_us: fields.ttft_us,
            model: fields
                .response_model
                .clone()
                .or_else(|| fields.request_model.clone())
                .or_else(|| fields.model.clone()),
            provider,
            operation: fields.operation_name.clone(),
            request_id: fields.response_id.clone().or_else(|| fields.request_id.clone()),
            streaming: fields.stream,
            service_tier: fields.service_tier.as_ref().map(canonical_label),
            speed: fields.speed.as_ref().map(canonical_label),
            inference_geo: match &fields.inference_geo {
                Some(geo) if crate::pricing::geography_stated(geo) => Some(canonical_label(geo)),
                unstated => endpoint_geography(fields).or_else(|| unstated.clone()),
            },
            tokens,
            web_search_requests: fields.tokens.web_search_requests.unwrap_or(0),
            metered: fields.tokens.any(),
            outcome: outcome(fields),
            dimensions,
            cost: None,
        };
        self.inner.finish_call(
            &mut record,
            CaptureNotes { corrections: fixes.count(), rejected_values: rejected, split, turned },
        );
        let tally = |t: &mut TaskTally| {
            t.calls += 1;
            t.unpriced_calls += u64::from(record.is_unpriced());
            t.failed_calls += u64::from(record.outcome.is_error());
            t.tokens.add(&record.tokens);
            t.cost += record.cost_or_zero();
        };
        match (own_task, task_span) {
            (Some(t), _) => tally(t),
            (None, Some(task_span)) => {
                if let Some(t) = self.state_mut(&mut task_span.extensions_mut()).and_then(|s| s.task.as_mut()) {
                    tally(t);
                }
            }
            (None, None) => {}
        }
    }

    /// The event `#[tracing::instrument(err)]` emits when its function returns `Err`, or an `ERROR` event with
    /// `error.type`: when its span is a call, task or tool span, that call, task or tool execution failed (as
    /// `otel.status_code = "ERROR"` or the `error.type` field would; `tracing-opentelemetry` likewise fails its
    /// span on `ERROR` events). Only the event's own span: an error inside a child span (a helper that failed
    /// and was retried) is not the call's. Only the type label of `error.type` is read, never other fields or
    /// the message.
    fn mark_failed<S>(&self, event: &Event<'_>, plan: &'static CallsitePlan, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(span) = ctx.event_span(event) else { return };
        if own_span_id(event, ctx).as_ref() != Some(&span.id()) {
            return;
        }
        let applies = self.state(&span.extensions()).is_some_and(|state| {
            let failable = state.plan.has_tokens || state.task.is_some() || state.plan.tool_candidate;
            // Raised by a sink: only a span the sink opened itself.
            failable && (state.opened_in_sinks || !in_sinks())
        });
        if !applies {
            return;
        }
        // The event's fields are visited with no lock on the span: `error.type = %e` runs the application's
        // `Display`, which may log or open a span, and another layer reading this span's extensions then (fmt's
        // fields, tracing-opentelemetry's parent) would wait on the write lock held here for good.
        let error_type = plan.error_event.then(|| {
            let (mut update, mut dims) = (CallFields::default(), DimValues::default());
            event.record(&mut self.visitor(plan, &mut update, &mut dims));
            update.error_type
        });
        let mut ext = span.extensions_mut();
        let Some(state) = self.state_mut(&mut ext) else { return };
        match error_type {
            Some(Some(kind)) => state.call.error_type = Some(kind),
            Some(None) => {}
            None => state.call.status_error = Some(true),
        }
    }

    /// Marks the nearest ancestor call span as enclosing a call (and usage, with `usage`).
    fn mark_enclosing_call<S>(&self, span: &SpanRef<'_, S>, usage: bool)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut next = span.parent();
        while let Some(ancestor) = next {
            if let Some(state) = self.state_mut(&mut ancestor.extensions_mut())
                && state.plan.has_tokens
            {
                state.encloses_calls = true;
                state.encloses_usage |= usage;
                return;
            }
            next = ancestor.parent();
        }
    }

    /// Adds a closed task (`whole`: its figures with its subtasks') to the nearest task span around `span`.
    fn add_to_parent_task<S>(&self, span: &SpanRef<'_, S>, whole: &TaskTotals)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut next = span.parent();
        while let Some(ancestor) = next {
            if let Some(task) = self.state_mut(&mut ancestor.extensions_mut()).and_then(|s| s.task.as_mut()) {
                task.subtasks.get_or_insert_default().add_subtask(whole);
                return;
            }
            next = ancestor.parent();
        }
    }

    /// Applies newer call fields (and the dimensions recorded with them) to a span's state; when they start a new
    /// call on a span that already holds a finished one (a different response id), finalizes the earlier call
    /// first: dimensions recorded with the next call's id are that call's, not the earlier one's.
    fn apply_call_update<S>(&self, span: &SpanRef<'_, S>, update: CallFields, dims: Option<DimValues>, rejected: u64)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut earlier: Option<EarlierCall> = None;
        {
            let mut ext = span.extensions_mut();
            let Some(state) = self.state_mut(&mut ext) else {
                drop(ext);
                self.inner.count_rejected(rejected);
                return;
            };
            state.rejected += rejected;
            // Each kind of id is compared with its own earlier value: a call may carry both a response id and a
            // request id, and the second arriving is not a new call.
            let changed =
                |new: &Option<Arc<str>>, old: &Option<Arc<str>>| matches!((new, old), (Some(n), Some(o)) if n != o);
            // A held call is finished by the next id even without usage (an error response, a dropped
            // stream): it is a call of its own, and its error must not pass to the next one.
            // A failed call that has a request id and no response id never gets one (an error response has no
            // message id; a stream that fails after starting has its id already): a response id arriving is the
            // next call's (a shared span whose calls record the response id first, or a retry on one span).
            let held = &state.call;
            let held_failed = held.error_type.is_some() || held.status_error == Some(true);
            let follows_failed_call = update.response_id.is_some()
                && held.response_id.is_none()
                && held.request_id.is_some()
                && held_failed
                // The failed call's own request id with it: that call's late response id (a wrapper recording
                // a stream that failed midway at its end).
                && update.request_id.as_ref().is_none_or(|r| held.request_id.as_ref() != Some(r));
            let starts_new_call = changed(&update.response_id, &held.response_id)
                || changed(&update.request_id, &held.request_id)
                || follows_failed_call;
            if starts_new_call {
                let now = self.inner.clock.monotonic_nanos();
                let finished = state.call.clone();
                // A span carrying several calls is not a roll-up (its calls, this one included, are finished as
                // calls): a call made inside it during one of them (a helper's own call span) is another call,
                // not a part of this one.
                state.carries_calls = true;
                let rejected = std::mem::take(&mut state.rejected);
                // The finished call, when a call inside the span recorded it already; the ids of the calls inside
                // that are not it may be the next call's (its client's span closes before this span records it).
                // What was enclosed up to the match was this call's, or earlier ones'.
                let matched = recorded_inside(&finished, || self.tokens_of(span, &finished), &state.enclosed);
                if let Some(at) = matched {
                    state.enclosed.drain(..=at);
                }
                let rollup = matched.is_some();
                earlier = Some(EarlierCall {
                    fields: finished,
                    dims: state.dims.clone(),
                    start: state.start,
                    rejected,
                    rollup,
                });
                state.call.reset_per_call(&state.declared);
                state.start = now;
                state.encloses_calls = false;
                state.encloses_usage = false;
            }
            state.call.replace_with(update);
            if let Some(dims) = dims {
                state.dims.replace_with(dims);
            }
        }
        if let Some(e) = earlier {
            let (end, end_unix) = (self.inner.clock.monotonic_nanos(), self.inner.clock.unix_nanos());
            let call = EndedCall {
                fields: &e.fields,
                dims: &e.dims,
                start: e.start,
                end,
                end_unix,
                rejected: e.rejected,
                split: true,
                rollup: e.rollup,
                encloses_usage: e.rollup,
            };
            // A span that is a task too counts the earlier call in its own tally, as it will the last one. The
            // tally is taken out rather than borrowed: the span may be entered here, and the sinks that run in
            // `finish_call` may log inside it (another layer reading its extensions).
            let mut own_task = self.state_mut(&mut span.extensions_mut()).and_then(|s| s.task.take());
            self.finish_call(span, call, own_task.as_mut());
            if let Some(tally) = own_task
                && let Some(state) = self.state_mut(&mut span.extensions_mut())
            {
                state.task = Some(tally);
            }
        }
    }
}

/// What resolving a span's dimensions does to the nearest enclosing call span (for the roll-up rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enclosing {
    /// Nothing: the span is a task or a tool, not a call.
    Leave,
    /// Marks it as enclosing a call.
    Mark,
    /// Marks it as enclosing a call that carried usage.
    MarkWithUsage,
}

impl Enclosing {
    fn of_call(carried_usage: bool) -> Self {
        if carried_usage { Enclosing::MarkWithUsage } else { Enclosing::Mark }
    }
}

/// The call a long-lived span finished when the next one began, taken out of its state to be finalized.
struct EarlierCall {
    fields: CallFields,
    dims: DimValues,
    start: i64,
    rejected: u64,
    /// Recorded already by a call inside the span (see [`SpanState::enclosed`]).
    rollup: bool,
}

/// A pricing modifier's text as the rules read it (`service_tier`, `speed`, `inference_geo`: case and surrounding
/// spaces aside), so that the record, the journal and what groups by them hold one spelling: `" US "` is `us`. The
/// same `Arc` when it is one already (the usual case: no allocation).
fn canonical_label(label: &Arc<str>) -> Arc<str> {
    let trimmed = label.trim();
    if trimmed.len() == label.len() && !trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        return Arc::clone(label);
    }
    Arc::from(trimmed.to_ascii_lowercase())
}

/// Where a call on a cloud's endpoint ran, when the span does not say (no `inference_geo`, or an empty or
/// `not_available` one): the geography of a Bedrock inference-profile id in a model field (`us` for
/// `us.anthropic.claude-…`; the response's model may be the bare id), else the region of a Vertex AI endpoint in
/// `server.address`.
fn endpoint_geography(fields: &CallFields) -> Option<Arc<str>> {
    [&fields.request_model, &fields.model, &fields.response_model]
        .into_iter()
        .flatten()
        .find_map(|m| crate::pricing::bedrock_geography(m))
        .or_else(|| fields.server_address.as_deref().and_then(crate::pricing::vertex_geography))
        .map(values::intern)
}

/// The wall-clock time something that ended at `end_unix` started: its end less its duration, both readings of
/// the monotonic clock (`start`, `end`). A step of the wall clock meanwhile moves neither the duration nor the
/// start off the wall clock's time at the end.
fn started_at(start: i64, end: i64, end_unix: i64) -> DateTime<chrono::Utc> {
    DateTime::from_timestamp_nanos(end_unix.saturating_sub(end.saturating_sub(start).max(0)))
}

fn outcome(fields: &CallFields) -> Outcome {
    match (&fields.error_type, fields.status_error) {
        (Some(t), _) => Outcome::Error { error_type: t.clone() },
        (None, Some(true)) => Outcome::Error { error_type: Arc::from("error") },
        // Closed while its thread unwinds from a panic (the function making the call, or the task, panicked), and
        // nothing said otherwise: not a success (an `otel.status_code = "OK"` recorded first still is one). A
        // call that was answered (usage or a response id recorded) was one, whatever its caller did next.
        // Left by a panic that a wrapper caught before the span closed (`catch_unwind`, tower-http's
        // `CatchPanicLayer`) counts the same: the panic unwound through the span's guard (`on_exit`).
        // (The thread's panic state read last: nearly every call closing has usage.)
        (None, None)
            if !fields.tokens.any() && fields.response_id.is_none() && (fields.unwound || std::thread::panicking()) =>
        {
            Outcome::Error { error_type: Arc::from("panic") }
        }
        _ => Outcome::Ok,
    }
}

impl<S> Layer<S> for TokenMeterLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // To log what `defer_log` held back (the exit of the span a usage event was in usually comes next, outside any
    // dispatch and the registry's close), and to note a panic unwinding through the span.
    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        log_deferred();
        // A panic unwinding through the span's guard, before anything catches it: one relaxed load of the
        // process's panic count when none is under way.
        if std::thread::panicking() {
            self.mark_unwound(id, &ctx);
        }
        // A request `guard` refused is dropped unpolled, and an `Instrumented` future enters its span to drop it
        // (and exits it): the span is that request's, though its caller may hold a clone and close it later.
        if dropping_unsent() {
            let Some(span) = ctx.span(id) else { return };
            if let Some(state) = self.state_mut(&mut span.extensions_mut()) {
                state.call.entered_unsent = true;
            }
        }
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let plan = plan_for(attrs.metadata());
        if !plan.unread_usage.is_empty() {
            // Held back until this thread's next span exit or close: an event logged while the dispatcher makes
            // the span goes nowhere (tracing's dispatcher is not re-entered).
            let _in_event = InEvent::enter();
            self.inner.note_unread_usage(attrs.metadata(), &plan.unread_usage);
        }
        if !self.wants(attrs.metadata(), plan) {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let opened_in_sinks = in_sinks();
        let mut ext = span.extensions_mut();
        let new_state = || SpanState {
            plan,
            start: self.inner.clock.monotonic_nanos(),
            call: CallFields::default(),
            dims: DimValues::default(),
            task: plan.has_task.then(TaskTally::default),
            rejected: 0,
            encloses_calls: false,
            encloses_usage: false,
            carries_calls: false,
            enclosed: Vec::new(),
            closed: false,
            opened_in_sinks,
            declared: DeclaredPerCall::default(),
        };
        // Built where it lives, then filled in place: moving a built state in would copy its ~600 bytes twice.
        let key = self.key();
        match ext.get_mut::<SpanStates>() {
            // This meter's other layer (a meter added twice) already tracks the span.
            Some(states) if states.get(key).is_some() => return,
            Some(states) => states.more.push((key, new_state())),
            None => ext.insert(SpanStates { first: (key, new_state()), more: Vec::new() }),
        }
        let Some(state) = self.state_mut(&mut ext) else { return };
        let mut visitor = self.visitor(plan, &mut state.call, &mut state.dims);
        attrs.record(&mut visitor);
        state.rejected = u64::from(visitor.rejected.values);
        if let Some(declared) = DeclaredPerCall::of(&state.call) {
            state.declared = declared;
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        log_deferred();
        let Some(span) = ctx.span(id) else { return };
        let mut rendered_only = false;
        {
            let mut ext = span.extensions_mut();
            let Some(state) = self.state_mut(&mut ext) else { return };
            let plan = state.plan;
            // A response id arriving on a span that already holds usage may start a new call (a long-lived span
            // carrying several calls): that needs the values collected first. Everything else is written
            // straight into the span's state, later values replacing earlier ones.
            let may_split = (state.call.response_id.is_some() || state.call.request_id.is_some())
                && plan.id_fields.iter().any(|f| values.contains(f));
            if !may_split {
                let SpanState { call, dims, rejected, .. } = state;
                let mut visitor = self.visitor(plan, call, dims);
                // A value shown through `Debug`/`Display` runs the application's code, which may log inside this
                // span (the current one, usually): a layer reading the span's extensions for that event would wait
                // for good on the lock held here. Such values are left, and rendered below with no lock held.
                visitor.defer_rendering = true;
                values.record(&mut visitor);
                *rejected += u64::from(visitor.rejected.values);
                if !visitor.deferred {
                    return;
                }
                rendered_only = true;
            }
        }
        let Some(plan) = self.state(&span.extensions()).map(|s| s.plan) else { return };
        let (mut update, mut dims) = (CallFields::default(), DimValues::default());
        let visitor = self.visitor(plan, &mut update, &mut dims);
        let rejected = if rendered_only {
            let mut visitor = RenderedOnly(visitor);
            values.record(&mut visitor);
            visitor.0.rejected.values
        } else {
            let mut visitor = visitor;
            values.record(&mut visitor);
            visitor.rejected.values
        };
        self.apply_call_update(&span, update, Some(dims), u64::from(rejected));
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let plan = plan_for(event.metadata());
        if !plan.unread_usage.is_empty() {
            let _in_event = InEvent::enter();
            self.inner.note_unread_usage(event.metadata(), &plan.unread_usage);
        }
        if plan.instrument_err || plan.error_event {
            let _in_event = InEvent::enter();
            self.mark_failed(event, plan, &ctx);
            return;
        }
        if !plan.has_tokens {
            return;
        }
        let _in_event = InEvent::enter();
        let (mut update, mut dims) = (CallFields::default(), DimValues::default());
        let mut visitor = self.visitor(plan, &mut update, &mut dims);
        event.record(&mut visitor);
        let rejected = u64::from(visitor.rejected.values);
        // Raised by a sink (logging the usage it was handed): only a call the sink opened itself is updated.
        let from_sink = in_sinks();
        // The call this usage belongs to: the nearest enclosing LLM call span.
        let Some(parent) = ctx.event_span(event) else {
            if !from_sink {
                self.inner.count_orphan_usage(rejected);
            }
            return;
        };
        for span in parent.scope() {
            let call = self.state(&span.extensions()).filter(|s| s.plan.has_tokens).map(|s| s.opened_in_sinks);
            match call {
                Some(opened_in_sinks) if from_sink && !opened_in_sinks => return,
                Some(_) => {
                    // As for an error event without usage: a warning, or an error in a span inside the call
                    // (a retry on the way), says nothing of the call's outcome; its usage still counts.
                    if *event.metadata().level() != tracing_core::Level::ERROR
                        || Some(span.id()) != own_span_id(event, &ctx)
                    {
                        (update.error_type, update.status_error) = (None, None);
                    }
                    self.apply_call_update(&span, update, None, rejected);
                    return;
                }
                None => {}
            }
        }
        if !from_sink {
            self.inner.count_orphan_usage(rejected);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        log_deferred();
        // A span closing inside this layer's close of another (a sink or budget callback opened it there, or
        // dropped one it held): tracing-subscriber's registry never removes a span closed inside another span's
        // close (its close count is above one then), and that span holds its parents open. Nothing here can undo
        // that; it is counted and warned about once. A span a sink opens and hands elsewhere closes later, and
        // is not counted.
        if IN_CLOSE.try_with(Cell::get).unwrap_or(false) {
            self.inner.count_span_opened_while_closing();
            let name = ctx.metadata(&id).map_or("unknown", |m| m.name());
            let _ = OPENED_WHILE_CLOSING.try_with(|c| c.set(Some(name)));
        }
        let Some(span) = ctx.span(&id) else { return };
        // The state is read in place (the registry drops it with the span): taking it out would copy its ~600
        // bytes twice. Holding this span's extensions while the record is made is safe: a closing span is
        // entered nowhere, and what runs meanwhile only reads its ancestors (and writes a task ancestor's tally).
        let mut ext = span.extensions_mut();
        let Some(state) = self.state_mut(&mut ext) else { return };
        if std::mem::replace(&mut state.closed, true) {
            return;
        }
        let _closing = Closing::enter(&self.inner);
        let (end, end_unix) = (self.inner.clock.monotonic_nanos(), self.inner.clock.unix_nanos());
        let plan = state.plan;
        let is_tool = plan.tool_candidate
            && state.call.operation_name.as_deref() == Some(EXECUTE_TOOL)
            && state.call.tool_name.is_some();
        // Nothing of a request never made is counted: not its call, nor a tool or task span it owned. (Asked only
        // of those: a span that only carries dimensions, a request's or a session's, closes without the check.)
        let never_made = (plan.has_tokens || is_tool || state.task.is_some()) && unsent(&state.call);
        if plan.has_tokens && never_made {
            self.inner.count_unsent(std::mem::take(&mut state.rejected));
        } else if plan.has_tokens {
            let rejected = std::mem::take(&mut state.rejected);
            let rollup = recorded_inside(&state.call, || self.tokens_of(&span, &state.call), &state.enclosed).is_some()
                || !state.carries_calls
                    && rollup(state.encloses_calls, state.encloses_usage, &state.enclosed, &state.call);
            let call = EndedCall {
                fields: &state.call,
                dims: &state.dims,
                start: state.start,
                end,
                end_unix,
                rejected,
                split: false,
                rollup,
                encloses_usage: state.encloses_usage,
            };
            self.finish_call(&span, call, state.task.as_mut());
        }
        // A tool span may declare token fields too (a sub-agent run as a tool, recording its calls' totals): it
        // is a tool execution whether or not it is also counted as a call.
        if is_tool && !never_made {
            let record = ToolRecord {
                timestamp: started_at(state.start, end, end_unix),
                duration_us: micros_between(state.start, end),
                tool: state.call.tool_name.clone().unwrap_or_else(|| Arc::from("unknown")),
                outcome: outcome(&state.call),
                dimensions: self.dimensions(&state.dims, &span, Enclosing::Leave, None).0,
            };
            self.inner.finish_tool(record, std::mem::take(&mut state.rejected));
        }
        if let Some(tally) = state.task.take().filter(|t| !(never_made && t.calls == 0 && t.subtasks.is_none())) {
            let (mut dimensions, _) = self.dimensions(&state.dims, &span, Enclosing::Leave, None);
            // The task around this one counts it, with what ran inside it, in its own `with_subtasks`.
            let whole = tally.with_subtasks();
            self.add_to_parent_task(&span, &whole);
            // Named by its own field: one declared and never filled inside another task would take the outer
            // task's name from the ancestors, two records of one name, the outer one short of these calls.
            let task = state.dims.builtin[Dim::Task as usize].clone().unwrap_or_else(|| Arc::from("unnamed"));
            dimensions.task = Some(Arc::clone(&task));
            let record = TaskRecord {
                timestamp: started_at(state.start, end, end_unix),
                duration_us: micros_between(state.start, end),
                task,
                dimensions,
                calls: tally.calls,
                unpriced_calls: tally.unpriced_calls,
                failed_calls: tally.failed_calls,
                tokens: tally.tokens,
                cost: tally.cost,
                outcome: outcome(&state.call),
                with_subtasks: tally.subtasks.is_some().then_some(whole),
            };
            self.inner.finish_task(record, std::mem::take(&mut state.rejected));
        } else {
            self.inner.count_rejected(state.rejected);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sinks_flag_is_restored_after_a_panic() {
        let caught = std::panic::catch_unwind(|| while_in_sinks(|| panic!("a layer's panic on an alert's event")));
        assert!(caught.is_err());
        assert!(!in_sinks(), "left set, this thread would ignore every usage event from then on");
        // Nested: the inner run restores the outer one's flag.
        while_in_sinks(|| {
            let _ = std::panic::catch_unwind(|| while_in_sinks(|| panic!("inner")));
            assert!(in_sinks());
        });
        assert!(!in_sinks());
    }
}
