//! The LLM call the capture bench measures, and the pipelines it measures it through: shared by
//! `benches/capture.rs` and `examples/profile.rs` (`scripts/callgrind.sh`), so that instruction counts and
//! bench timings are of the same call through the same meter.
//!
//! Each includes this file with `#[path]`; neither uses every item.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use tokenmeter::TokenMeter;
use tokenmeter::budget::{Budget, BudgetLimit, BudgetPeriod, BudgetScope};
use tokenmeter::journal::{JournalConfig, WriterPriority};
use tokenmeter::ledger::LedgerConfig;
use tracing::field::Empty;

/// The long-lived span the calls run in: what an agent session looks like.
pub fn session_span_of(session: &str) -> tracing::Span {
    tracing::info_span!("session", gen_ai.conversation.id = session, project = "bench")
}

/// Runs `iters` calls on each of `threads` threads at once, each thread in its own session (as request
/// handlers serve theirs), released together; returns the wall time from the first thread's start to the last
/// thread's end, each read on its own thread (the main thread may be scheduled late on a busy machine).
///
/// `dispatch`: each thread records under it as its scoped default (`with_default`); `None` records under the
/// global default (`set_global_default`, what `.init()` installs).
pub fn calls_on_threads(dispatch: Option<&tracing::Dispatch>, threads: u64, iters: u64) -> Duration {
    on_threads(threads, |t, start| {
        let body = || {
            let session = session_span_of(&format!("sess-{t}"));
            let _s = session.enter();
            timed(start, || {
                for _ in 0..iters {
                    llm_call();
                }
            })
        };
        match dispatch {
            Some(dispatch) => tracing::dispatcher::with_default(dispatch, body),
            None => body(),
        }
    })
}

/// Runs `work(thread, barrier)` on each of `threads` threads at once; `work` sets itself up, then times its
/// part with [`timed`] on the shared barrier, which releases the threads together. Returns the wall time from
/// the first thread's start to the last thread's end.
pub fn on_threads<F>(threads: u64, work: F) -> Duration
where
    F: Fn(u64, &std::sync::Barrier) -> (std::time::Instant, std::time::Instant) + Sync,
{
    let start = std::sync::Barrier::new(threads as usize);
    let spans: Vec<(std::time::Instant, std::time::Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (start, work) = (&start, &work);
                s.spawn(move || work(t, start))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a bench thread panicked")).collect()
    });
    let first = spans.iter().map(|s| s.0).min();
    let last = spans.iter().map(|s| s.1).max();
    match (first, last) {
        (Some(first), Some(last)) => last.duration_since(first),
        _ => Duration::ZERO,
    }
}

/// Waits at `start` with the other threads, then runs `f`; when it started and ended, read on this thread.
pub fn timed(start: &std::sync::Barrier, f: impl FnOnce()) -> (std::time::Instant, std::time::Instant) {
    start.wait();
    let t0 = std::time::Instant::now();
    f();
    (t0, std::time::Instant::now())
}

/// Work that shares nothing between threads (a xorshift loop in registers, ~2 us here): two threads of it
/// show how much of two cores the machine gives at that moment, the ceiling of any two-thread ratio.
pub fn unshared_work() -> u64 {
    let mut x = std::hint::black_box(0x9E37_79B9_7F4A_7C15u64);
    for i in 0..1_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x.wrapping_add(i);
    }
    std::hint::black_box(x)
}
/// An LLM call span: eight fields declared, five of them (the response id, four token counts) recorded later.
pub fn llm_call_span() -> tracing::Span {
    tracing::info_span!(
        "chat claude-sonnet-4-5",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = "anthropic",
        gen_ai.request.model = "claude-sonnet-4-5",
        gen_ai.response.id = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.cache_read.input_tokens = Empty,
        gen_ai.usage.cache_creation.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
    )
}

/// Records the response id and the usage, as a client does once the response is in.
pub fn record_usage(span: &tracing::Span) {
    span.record("gen_ai.response.id", "msg_01XFDUDYJgAACzvnptvVoYEL");
    span.record("gen_ai.usage.input_tokens", 12_000u64);
    span.record("gen_ai.usage.cache_read.input_tokens", 10_000u64);
    span.record("gen_ai.usage.cache_creation.input_tokens", 1_000u64);
    span.record("gen_ai.usage.output_tokens", 500u64);
}

/// One whole call: the span made, entered, its usage recorded, closed.
pub fn llm_call() {
    let span = llm_call_span();
    let _e = span.enter();
    record_usage(&span);
}

/// An SDK meter provider that collects but does not export while the bench runs (the reader's interval is an
/// hour), so both OTel paths pay recording only.
pub fn quiet_provider() -> SdkMeterProvider {
    let reader =
        PeriodicReader::builder(InMemoryMetricExporter::default()).with_interval(Duration::from_secs(3600)).build();
    SdkMeterProvider::builder().with_reader(reader).build()
}

/// Parts of the pipeline, for the ladder of `llm_call` rows.
#[derive(Clone, Copy)]
pub struct Parts {
    pub ledger: bool,
    pub budgets: bool,
    pub otlp: bool,
    pub journal: bool,
    /// The journal writer thread's priority (the default, `Normal`, unless a row says otherwise).
    pub writer: WriterPriority,
    /// The journal's queue capacity, when not the default (4,096 records). The target rows use
    /// [`NO_DROP_QUEUE`]: with the default, a batch at a million calls a second overflows the queue, and a
    /// dropped call skips the queue's copy, so a row would time less than the full pipeline.
    pub queue: Option<usize>,
    pub layer: bool,
}

impl Parts {
    pub const CAPTURE: Parts = Parts {
        ledger: false,
        budgets: false,
        otlp: false,
        journal: false,
        writer: WriterPriority::Normal,
        queue: None,
        layer: true,
    };
    /// No tokenmeter layer at all: the bare registry.
    pub const NONE: Parts = Parts { layer: false, ..Parts::CAPTURE };
    pub const OTLP_ONLY: Parts = Parts { otlp: true, ..Parts::CAPTURE };
    pub const LEDGER: Parts = Parts { ledger: true, ..Parts::CAPTURE };
    pub const BUDGETS: Parts = Parts { budgets: true, ..Parts::CAPTURE };
    pub const JOURNAL: Parts = Parts { journal: true, ..Parts::CAPTURE };
    pub const FULL: Parts = Parts { ledger: true, budgets: true, otlp: true, journal: true, ..Parts::CAPTURE };
}

/// A queue that holds a whole batch of the paired rounds (20,000 calls a thread, two threads), so that between
/// the flushes after each batch nothing is dropped.
pub const NO_DROP_QUEUE: usize = 65_536;

/// A meter with the given parts on (capture, pricing and the per-model totals are always on).
pub fn meter_with(parts: Parts, journal_dir: &Path) -> TokenMeter {
    let mut b = TokenMeter::builder();
    if !parts.ledger {
        b = b.with_ledger_config(LedgerConfig::disabled());
    }
    if parts.otlp {
        b = b.with_meter_provider(quiet_provider());
    }
    if parts.budgets {
        b = b
            .with_budget(
                Budget::new("monthly", BudgetLimit::usd(1e12).expect("limit")).with_period(BudgetPeriod::Month),
            )
            .with_budget(
                Budget::new("bench-project", BudgetLimit::tokens(u64::MAX / 4))
                    .with_scope(BudgetScope::project("bench"))
                    .with_period(BudgetPeriod::Day),
            );
    }
    if parts.journal {
        let mut config = JournalConfig::new(journal_dir).with_writer_priority(parts.writer);
        if let Some(records) = parts.queue {
            config = config.with_queue_capacity(records);
        }
        b = b.with_journal(config);
    }
    b.build()
}

/// The floor of any capture: a layer that does the least a `tracing` layer can do to capture this call (keep
/// the response id's length and the four token counts in the span's extensions as they are recorded, and
/// read them when the span closes). No pricing, no dimensions, no aggregation. What it adds over the bare
/// registry is what the layer machinery itself costs per call: span lookups, the extensions' lock and map,
/// value visits.
pub struct FloorLayer {
    /// Tokens seen at close, summed (so the work cannot be optimized away).
    pub tokens: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Default)]
struct FloorUsage {
    id_len: u64,
    tokens: [u64; 4],
}

struct FloorVisitor<'a>(&'a mut FloorUsage);

impl tracing::field::Visit for FloorVisitor<'_> {
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        let slot = match field.name() {
            "gen_ai.usage.input_tokens" => 0,
            "gen_ai.usage.cache_read.input_tokens" => 1,
            "gen_ai.usage.cache_creation.input_tokens" => 2,
            "gen_ai.usage.output_tokens" => 3,
            _ => return,
        };
        self.0.tokens[slot] = value;
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "gen_ai.response.id" {
            self.0.id_len = value.len() as u64;
        }
    }

    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

impl<S> tracing_subscriber::Layer<S> for FloorLayer
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().fields().field("gen_ai.usage.input_tokens").is_none() {
            return;
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(FloorUsage::default());
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id)
            && let Some(usage) = span.extensions_mut().get_mut::<FloorUsage>()
        {
            values.record(&mut FloorVisitor(usage));
        }
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        if let Some(span) = ctx.span(&id)
            && let Some(usage) = span.extensions().get::<FloorUsage>()
        {
            let sum = usage.tokens.iter().sum::<u64>() + usage.id_len;
            self.tokens.fetch_add(sum, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
