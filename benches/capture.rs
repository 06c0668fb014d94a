//! What the layer costs the application, against baselines in the same run.
//!
//! Rows (criterion groups; the table printed at the end, which README "Performance" quotes, comes from paired
//! rounds instead: see "paired rounds" below; `TOKENMETER_BENCH_PAIRED_ONLY=1` skips the criterion groups):
//! - `non_llm_span`: a plain span's whole life (new, enter, exit, close) with a `fmt` layer writing to a sink,
//!   without and with tokenmeter beside it. Target (issue 8, 1): ratio <= 1.25.
//! - `non_llm_event`: a plain event, same two stacks. Target (1): ratio <= 1.25.
//! - `llm_call`: an LLM call span with its fields declared, the response id and usage recorded later, closed,
//!   inside a long-lived session span (project, session id). `registry` is the same span in a bare registry;
//!   `registry+tokenmeter` has the whole pipeline on: pricing, ledger, two budgets (USD per month, tokens per
//!   project), the journal queue (its writer thread on a temp dir) and the OTLP instruments (SDK meter provider
//!   with a reader that does not export during the run). Target (2): adds <= 400 ns.
//! - `llm_call/registry+otel_metrics_layer`: the baseline of target (2): the same span in a bare registry plus,
//!   inside it, the event `tracing-opentelemetry` 0.34's `MetricsLayer` needs to record the same information
//!   (monotonic counters for five token kinds and cost, a duration histogram, three attributes), on the same
//!   SDK setup. Target: tokenmeter's added cost is at most half the `MetricsLayer`'s added cost (both over
//!   `registry`) — stricter than comparing totals. Its event carries the call's token counts and cost as
//!   constants: the application would still have to price and time the call, work this side does not pay (in
//!   `MetricsLayer`'s favour). The bench checks that its registry still makes the spans (`MetricsLayer` filters
//!   per layer).
//! - `two_threads`: the same full-pipeline LLM call, per call, with one thread and with two threads recording at
//!   once (wall time / calls, from the first thread's start to the last one's end, each read on its thread). Target
//!   (3): two threads' throughput over one's (time a call on one thread / time a call on two) >= 1.6 (the ideal on
//!   two cores is 2.0). The target row runs under the global default dispatcher, as an application that calls
//!   `.init()` does, in a child process of this binary (a process sets its global default once); with it, in the
//!   same rounds, work that shares nothing on one thread and on two: the ceiling the machine gave in those rounds.
//!   The same for the pipeline without the journal and for the bare registry (the criterion group `two_threads` runs
//!   under a scoped default: it is not the target row). Then the same comparison under a scoped default
//!   (`with_default`), for the full pipeline and each part alone: there every span clones and drops the thread's
//!   `Dispatch`, one `Arc` count the threads share, so even the bare registry does not scale (1.0x or less); the
//!   global default is a `&'static`, no count.
//!
//! The journal: in the target rows its queue holds a whole batch (`NO_DROP_QUEUE`), and the bench fails if a
//! record is dropped. With the default queue (4,096) a batch at a million calls a second overflowed it (24% of
//! the one-thread full pipeline's records, 64% of the two-thread rows'), and a dropped call skips the queue's
//! copy, so those rows timed less than the whole pipeline (the two-thread side most). The writer drains what
//! is left after a batch during the flush between batches; it competes for the cores during the batch. The
//! one-thread rows (target 2) stop timing when the calls end: they measure the application's thread, and the
//! writer has the other core. The two-thread rows (target 3, throughput) time on until the flush returns, with
//! their journals in `/dev/shm` (syncing a batch to this machine's disk took longer than recording it):
//! untimed, two busy threads left most of their records to the flush (the writer rests three times its work),
//! and the target row read 1.51x where, timed through the flush, it reads 1.28-1.36x (2026-12-06). Only the writer-priority comparison keeps the default queue: its subject is that overload. The
//! criterion groups (not in the table; `bench.sh` skips them) keep it too: they record for seconds without a
//! flush, which no queue holds, so their journal rows time calls some of which were dropped.
//!
//! Paired rounds: each comparison's configurations (e.g. bare registry, full pipeline, each partial pipeline,
//! `MetricsLayer`) run one batch each per round (20,000 calls; 100,000 for non-LLM rows), in an order rotated
//! every round, 25 rounds; a figure is the median over rounds of the per-round difference or ratio, with its
//! quartiles in brackets. On this shared 2-vCPU machine criterion's row-after-row medians moved ratios by
//! 30-50% between runs (a slow spell during one row and not its baseline); pairing cancels that drift, and
//! the quartiles show what is left.
//!
//! What profiling taught (callgrind instruction counts per call; `perf record -e cpu-clock` works here, hardware
//! counters do not; kept here so the next person starts from it). `scripts/callgrind.sh` counts instructions
//! per call part by part with `examples/profile.rs` (this bench's call in a loop); `examples/profile.rs N
//! journal` under `perf record -g` shows the journal writer's thread (`--comm tokenmeter-jour`):
//! - Non-LLM spans: the layer looks up a per-thread cache of callsite plans on `on_new_span`; an unplanned
//!   callsite returns before touching the span, and `on_close` finds no state. That is the whole cost.
//! - An LLM call through capture alone was ~5,000 instructions over the bare span (~1,500) when first
//!   profiled (~6,700 over ~1,550 on 2026-12-03, `scripts/callgrind.sh`), with no hotspot:
//!   each of the five `record`s looks the span up in the registry and takes its extensions lock (~110) and
//!   visits one value (~140), plus ~160 of its own; creation interns the labels and boxes the span's state
//!   (~1,400); close walks the ancestors for dimensions (~780), builds the record (~1,300), prices it and adds
//!   the per-model totals (~600). Tuning any one piece saves a few percent; 400 ns needs a different design.
//! - The ledger was ~3,100 instructions per call: 11 dimension maps keyed by strings, three hdrhistograms,
//!   the session's cache-reuse state (its per-call allocation is the pending cache write). Reusing the box
//!   of the write a call reads for the write it makes, its labels replaced only when they differ (pointer
//!   comparison of the interned `Arc`s): -274 (callgrind, no journal: 13,002 -> 12,729).
//! - OTLP ~1,000: three SDK histogram records behind a per-series lock, the series lookup (hash of the
//!   attribute values), exact counters in per-thread shards.
//! - Budgets were ~980 for two budgets, most of it the alert snapshot's u128 divisions on every call; deciding
//!   from the spend alone and building the snapshot only for an alert brought it to ~680.
//! - The journal: ~630 on the recording thread (a record clone, a channel send), and 11,800 on its writer
//!   thread, 40% of it chrono's `collect_str` timestamp path through serde_json's escaper; a stack-buffer
//!   timestamp brought the writer to ~7,100 (the rest is serde_json escaping ~40 keys). Then the queue got a
//!   flat copy of the record instead of a clone (~980 instructions, more than the clone, but the clone's
//!   seven `Arc` counts were dropped by the writer on the other core, and those cache lines bounced: A/B
//!   medians of the recording thread with the journal on went 1,841 → 1,530 ns), and the writer encodes
//!   lines by hand (~510 instructions a record). What is left on the writer is the kernel: `perf` puts more
//!   of its time in `write` (copying ~590-byte lines into the page cache) than in userland. On two vCPUs that
//!   writer is a third busy thread, so two recording threads with the journal on cannot scale to 1.6x here
//!   (unless the writer yields: see 2026-12-04 below).
//! - Tried and not kept: a per-thread cache of recently created spans' state (`Arc<Mutex<_>>` in the
//!   extensions, a thread-local slot array keyed by layer and span id) so `record` skips the registry lookup:
//!   `record` went from ~440 to ~300 instructions, but creation and close paid a second allocation and locks,
//!   net -340 of ~14,000 per call (2.4%); not worth the extra state machine.
//! - Also tried and not kept: one journal queue per recording thread (4, created on first use), no change on
//!   two vCPUs (the writer's CPU and the cross-core transfer of ~550-byte queued records are the limit, not the
//!   queue's indices); moving the span state's label `Arc`s into the record instead of cloning them, same
//!   instruction count and no wall-clock difference within this machine's noise.
//! - Roll-up spans (a call span with call spans inside is not counted again) need the nearest ancestor call
//!   span: found in the same ancestor walk as the dimensions, a flag test per ancestor; with request ids kept
//!   apart from response ids, full pipeline without the journal 12,720 -> 12,693 instructions a call.
//! - The ancestor walk for dimensions used `parent().scope()`, which looks the parent up twice; walking with
//!   `parent()` alone saved ~180 instructions per call.
//! - The span state (~600 bytes) was built on the stack and moved into the extensions at creation, and taken
//!   back out at close: four copies. Filling it in place and reading it in place at close: 13,091 -> 12,807
//!   instructions per call. Then keying it by meter (two meters on one registry used to panic: extensions
//!   hold one value per type) cost +225 (no journal: 12,765 -> 12,990); callgrind runs one thread at a
//!   time, so compare runs without the journal, whose queue may or may not be full there.
//! - The journal writer's CPU per record (thread CPU time over 1M calls; callgrind cannot see it, because
//!   valgrind runs one thread at a time): ~700 ns, about half in the kernel (`write` into the page cache,
//!   ext4 delayed allocation, the once-a-second `fsync`), half in ~310 instructions of encoding that stall on
//!   the queued records' cache lines, written on the other core. Formatting counts as `u64` (`itoa`'s `u128`
//!   path divides in 128 bits), not re-checking the queued text's UTF-8, and copying strings that need no
//!   escape in one piece: 730-880 -> 570-770 ns. Reusing the batch buffer across rounds changed nothing.
//! - Tried and not kept: encoding each line on the recording thread, into per-thread shards of line buffers
//!   that the writer swaps out and `write`s (no shared queue, no queued copy). `perf` over 300k calls: the
//!   writer went from 1,304 samples to 418 and the recording thread gained 864: the same CPU, moved onto the
//!   application's thread (+300-450 ns a call alone). Two threads reached the same absolute throughput
//!   (medians ~1.5-1.6 us a call both ways); only the ratio looked better, because one thread got slower.
//!   It did end the two-thread rows' journal drops (each thread pays for its own lines). Target (2) measures
//!   the application thread, so the writer keeps the encoding.
//! - 2026-12-03, `perf` over 1M calls with the journal on, one recording thread: the writer thread had 27% of
//!   the samples to the recording thread's 73%; about 40% of the writer's are encoding (`write_json`, string
//!   escaping, `itoa`, the timestamp), the rest the kernel's `write` (copying into the page cache, ext4's
//!   delayed allocation) and the once-a-second `fsync`'s writeback. For two threads to reach 1.6x on two
//!   cores the writer would need at most a quarter of a recording thread's CPU per call; halving the
//!   encoding would not get there.
//! - The floor (2026-12-03): `FloorLayer` (`benches/support/pipeline.rs`) does the least any layer can do to
//!   capture this call: an extension inserted at creation, each of the five `record`s a span lookup, the
//!   extensions' lock and map, a visit by field name, and one read at close. It adds ~2,700 instructions
//!   (callgrind: 4,246 a call against the bare registry's 1,550) and ~300 ns (paired rounds: +297 ns). So
//!   target (2)'s 400 ns leaves ~100 ns for everything tokenmeter does beyond that: dimensions from the
//!   ancestors, the record, pricing, the ledger, budgets, the journal queue and OTLP (~8,700 instructions
//!   today). The `MetricsLayer` comparison needs tokenmeter at ~575 ns added: the floor plus ~275 ns.
//! - The journal writer's batch size (2026-12-03, `examples/profile.rs N journal` prints the writer thread's
//!   CPU per record written): writing every 32 KiB or 128 KiB instead of up to 1,024 records a round costs
//!   more, not less, in the kernel (~460 and ~290 ns of system time a record against ~195): each `write` (with
//!   its lock, `fstat` and tail check) costs ~14 us here, the bytes ~0.26 ns each. User time did not change
//!   measurably (~250-350 ns a record, under the noise), so batches stay as they are.
//! - Two threads, part by part (paired rounds): even the bare registry scales only ~1.2x on this machine
//!   (every span clones and drops the `Dispatch`, one shared `Arc` count); capture, ledger and OTLP each
//!   scale ~1.5-1.65x; budgets ~1.4x (one lock per budget per call: a budget's spend is one number);
//!   the journal ~1.2x (the writer thread needs a core).
//! - 2026-12-04: the journal writer's priority. Every measure above found the same limit for two threads
//!   with the journal on: on two cores, two recording threads and a busy writer are three threads.
//!   `WriterPriority::Background` (opt-in; Linux, that thread alone) runs the writer at nice 19, so the
//!   recording threads get the cores first and the writer what they leave. Paired rounds of two threads at
//!   once, `Normal` against `Background` in the same rounds: 1.32x, 1.42x, 1.47x, 1.39x and 1.41x the
//!   throughput in five runs, with 28-34% of the records written instead of 63-72% (the rest dropped,
//!   counted: the bench's million calls a second a thread is an overload either way). The target row while
//!   `Background` was briefly the default: 1.66x, 1.28x and 1.71x; its own row since: 1.47x and 1.24x (the
//!   target row at `Normal`: 1.21x and 1.18x that day, 1.03-1.26x before). `examples/writer_priority.rs`
//!   measures the cost at paced rates with both cores kept busy by spinning threads: `Background` wrote
//!   every record up to 10,000 a second and ~20,000 a second past that; `Normal` wrote all of 100,000 a
//!   second. The gain exists only in an overload no real application reaches, and the cost (records dropped,
//!   so budgets forget spend after a restart) in one a CPU-bound host could, so `Normal` stays the default
//!   and the target row measures it. Tried first as an environment switch (not kept): nice 5 and 10 helped
//!   less (1.43-1.50x and 1.26-1.45x in the target row, against 1.52-1.80x at 19 and 1.20-1.37x at 0, a
//!   noisy afternoon).
//! - 2026-12-04 (later): the writer's duty cycle. Under overload the writer never slept: a full queue woke it, and it
//!   drained round after round, taking a third of two cores from two recording threads. Now, after a round that wrote
//!   records, it rests three times as long as the round's work (its thread's CPU time: taking, encoding, `write`;
//!   waiting on the disk is not work), except while a flush waits or the meter drops: at most a quarter of a core,
//!   ~400,000 records a second on an idle core, and at real rates rounds and rests of microseconds. Same afternoon,
//!   same noise (bare call 154-214 ns), three paired-only runs each (the rest measured in wall time then): the target
//!   row without the rest 1.17x, 1.22x and 1.36x (journal off 1.59x, 1.31x, 1.62x: 0.74-0.93 of it), with it 1.40x,
//!   1.30x and 1.26x (journal off 1.29x, 1.25x, 1.57x: 0.80-1.09 of it; two earlier runs 1.49x and 1.62x against
//!   1.61x and 1.60x). Written by `Normal` in the two-threads-at-once row: 84-99% before, 50-59% after; at paced
//!   rates on a saturated machine (`examples/writer_priority.rs`) `Normal` still wrote every record up to 100,000 a
//!   second. A rest of six times the work (a seventh of a core) was no better within the noise (1.37x against 1.27x
//!   journal off) and wrote 40%, so three stays. Counting the sync's CPU too (once a second it writes back a second
//!   of pages, milliseconds of CPU) rested the writer long enough to drop 0.6-1.1% of 100,000 calls a second on the
//!   saturated machine in four runs; without it, none in three.
//! - Two threads: shared `Arc` reference counts are contended cache lines; the price book's canonical ids
//!   were bumped by every priced call until the per-thread shards got their own copies. Budgets still take
//!   one short lock per budget per call.
//! - 2026-12-05: the dispatcher. Every two-thread row ran under `with_default`, where each span clones the
//!   thread's scoped `Dispatch` (an `Arc`) and drops it at close: one count both threads write on every span.
//!   The bare registry read 0.98-1.00x there; under the global default (a `&'static`, what `.init()` sets) it
//!   scales. Six runs that day, in child processes: the bare registry 1.64-1.81x under the global default
//!   (0.37-0.88x scoped in the same runs); the full pipeline 1.39-1.48x (scoped 0.05-0.11x less), the
//!   machine's ceiling (unshared work, same rounds) 1.87-1.99x; journal off 1.77x and 1.65x in the two runs
//!   whose ceiling was 1.8x or more. So without the journal the pipeline scales past the target; with it, the
//!   writer thread is the limit (above).
//! - Tried and not kept (2026-12-05): the journal's `enqueued` and `taken` counters on their own cache lines
//!   (every recording thread writes `enqueued`; the writer stores `taken` and the other counters beside it).
//!   Capture + journal, two threads, global default, alternating binaries: 1.23, 1.39, 1.46x before and 1.03,
//!   1.21, 1.45x after (ceilings 1.84-2.00x): no gain within this noise.
//! - 2026-12-06: durations on the monotonic clock (a wall-clock step during a call zeroed or inflated them): a
//!   second clock reading as a call closes, +148-161 instructions a call (full without the journal 13,393 ->
//!   13,549). Reading only the monotonic clock and deriving the wall time from a start-up anchor would save it,
//!   but a record's time would then drift from the wall clock's until restart.
//! - 2026-12-06 (later): string searches are not free on this path. The regional-endpoint pricing asks of each
//!   call's model id whether it is a Bedrock inference profile (`us.anthropic.claude-…`), once in capture and once
//!   in pricing; with `trim`, `rfind('/')` and `split_once` on a 17-byte first-party id that cost ~860 instructions
//!   a call (`CharSearcher` and `memchr` calls, callgrind: capture 8,546 -> 9,465). Settling `claude-…` ids on
//!   their first two bytes and others on one `contains(&b'.')` brought it to +154 (8,700), most of it in pricing's
//!   `Option` chain and a wider field set.
//! - 2026-12-07: `session.id` winning over a nearer `gen_ai.conversation.id` (one more `Option` carried through the
//!   ancestor walk) and matching a call against the calls recorded inside its span by tokens when it has no id
//!   (asked only of a span that encloses calls): capture 8,726 -> 8,779 instructions a call, full without the
//!   journal 13,937 -> 13,982 (`scripts/callgrind.sh capture full`, both commits built the same afternoon).
//!   Later the same day, a task's tally of its subtasks' figures (`TaskRecord::with_subtasks`) held inline made
//!   every span's state ~90 bytes larger and cost +52 a call (14,051) though no task was in the call; boxed, and
//!   with the dimension filter's check inlined: capture 8,776, full 13,999.
//! - 2026-12-07 (thirty-ninth session): budgets of each value of a dimension (`user=*`) made a budget's spend an enum
//!   of one account or a map of them, and the per-call step a function of the account. Without changes to the
//!   bench's budgets (two of one value each), the first cut cost +128 instructions a call (budgets 9,654 -> 9,782,
//!   full 14,003 -> 14,121, base 468c2f1 and HEAD built the same afternoon): `callgrind_annotate` put it in two
//!   places, `step_back` no longer inlined (+106 a call) and the drop of the empty `SmallVec` of pending alerts,
//!   which now hold an `Arc` (the value), a call on every call (+21). With `step_back` inlined and the pending
//!   alerts in a `Vec`: capture 8,777, budgets 9,708 (+54), full 14,053 (+50, +0.4%); after the `(other)` account
//!   and the per-value restating (neither on this path): capture 8,777, budgets 9,702, full 14,053.
//! - 2026-12-08 (forty-third session): the erasure's gate (`EraseGate::pass`: a generation read twice, a count up
//!   and down on the thread's slot, the thread's own count in a `thread_local!`, so that an erasure waits for the
//!   calls finishing as it begins and clears those after of its values): capture 8,796 -> 8,876, full 14,061 ->
//!   14,132 (+71, +0.5%; base 486fa86 and HEAD built the same hour, `scripts/callgrind.sh capture full`). After
//!   its review (the thread's own count kept per meter, a second list for a record inside another meter's):
//!   capture 8,890, full 14,174 (+113 over the base, +0.8%).
//!
//! Run: `cargo bench --bench capture` (or `./scripts/bench.sh` for every bench and one table).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::Criterion;
use tokenmeter::TokenMeter;
use tokenmeter::journal::WriterPriority;
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

#[path = "support/pipeline.rs"]
mod pipeline;
use pipeline::{
    FloorLayer, NO_DROP_QUEUE, Parts, llm_call, llm_call_span, meter_with, quiet_provider, record_usage,
    session_span_of,
};

fn fmt_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer().with_writer(std::io::sink).with_ansi(false)
}

fn plain_span() {
    let span = tracing::info_span!("handle_request", http.route = "/v1/items", attempt = 1u64);
    let _e = span.enter();
    black_box(&span);
}

fn plain_event() {
    tracing::info!(items = 3u64, "loaded items");
}

/// The long-lived span the calls run in: what an agent session looks like.
fn session_span() -> tracing::Span {
    session_span_of("sess-7f3a9c")
}

/// The same call, plus the event `tracing-opentelemetry`'s `MetricsLayer` turns into OTel metrics: five token
/// counters, cost, a duration histogram, three attributes (model, provider, operation).
fn llm_call_with_metrics_event() {
    let span = llm_call_span();
    let _e = span.enter();
    record_usage(&span);
    tracing::info!(
        monotonic_counter.gen_ai.tokens.input = 1_000u64,
        monotonic_counter.gen_ai.tokens.cache_read = 10_000u64,
        monotonic_counter.gen_ai.tokens.cache_write = 1_000u64,
        monotonic_counter.gen_ai.tokens.output = 500u64,
        monotonic_counter.gen_ai.tokens.reasoning = 0u64,
        monotonic_counter.gen_ai.cost.usd = 0.017_25f64,
        histogram.gen_ai.client.operation.duration = 1.42f64,
        gen_ai.request.model = "claude-sonnet-4-5",
        gen_ai.provider.name = "anthropic",
        gen_ai.operation.name = "chat",
    );
}

fn bench_non_llm(c: &mut Criterion, journal_dir: &Path) {
    let mut g = c.benchmark_group("non_llm_span");
    let base = tracing_subscriber::registry().with(fmt_layer());
    tracing::subscriber::with_default(base, || g.bench_function("fmt", |b| b.iter(plain_span)));
    let meter = full_meter(journal_dir);
    let with = tracing_subscriber::registry().with(fmt_layer()).with(meter.layer());
    tracing::subscriber::with_default(with, || g.bench_function("fmt+tokenmeter", |b| b.iter(plain_span)));
    g.finish();

    let mut g = c.benchmark_group("non_llm_event");
    let base = tracing_subscriber::registry().with(fmt_layer());
    tracing::subscriber::with_default(base, || g.bench_function("fmt", |b| b.iter(plain_event)));
    let with = tracing_subscriber::registry().with(fmt_layer()).with(meter.layer());
    tracing::subscriber::with_default(with, || g.bench_function("fmt+tokenmeter", |b| b.iter(plain_event)));
    g.finish();
    let _ = meter.shutdown();
}

/// The `llm_call` ladder: criterion id, table row, parts on. The full pipeline first.
const LADDER: [(&str, &str, Parts); 6] = [
    ("registry+tokenmeter", "llm_call (full pipeline)", Parts::FULL),
    ("registry+tokenmeter_capture", "  of which capture + pricing + totals", Parts::CAPTURE),
    ("registry+tokenmeter_capture_otlp", "  capture + OTLP instruments only", Parts::OTLP_ONLY),
    ("registry+tokenmeter_capture_ledger", "  capture + ledger only", Parts::LEDGER),
    ("registry+tokenmeter_capture_budgets", "  capture + two budgets only", Parts::BUDGETS),
    ("registry+tokenmeter_capture_journal", "  capture + journal queue only", Parts::JOURNAL),
];

/// A meter with everything on.
fn full_meter(journal_dir: &Path) -> TokenMeter {
    meter_with(Parts::FULL, journal_dir)
}

fn bench_llm(c: &mut Criterion, journal_dir: &Path) {
    let mut g = c.benchmark_group("llm_call");
    let base = tracing_subscriber::registry();
    tracing::subscriber::with_default(base, || {
        let session = session_span();
        let _s = session.enter();
        g.bench_function("registry", |b| b.iter(llm_call));
    });

    let mut full = None;
    for (name, _, parts) in LADDER {
        let meter = meter_with(parts, journal_dir);
        let with = tracing_subscriber::registry().with(meter.layer());
        tracing::subscriber::with_default(with, || {
            let session = session_span();
            let _s = session.enter();
            g.bench_function(name, |b| b.iter(llm_call));
        });
        if name == "registry+tokenmeter" {
            full = Some(meter);
        } else {
            let _ = meter.shutdown();
        }
    }

    let provider = quiet_provider();
    let otel = tracing_subscriber::registry().with(tracing_opentelemetry::MetricsLayer::new(provider.clone()));
    tracing::subscriber::with_default(otel, || {
        let session = session_span();
        let _s = session.enter();
        g.bench_function("registry+otel_metrics_layer", |b| b.iter(llm_call_with_metrics_event));
    });
    g.finish();
    let _ = provider.shutdown();

    // (Skipped when a filter left the full row out.)
    let Some(meter) = full else { return };
    let totals = meter.total_usage();
    if totals.calls > 0 {
        assert!(totals.unpriced_calls == 0 && totals.cost.as_usd() > 0.0, "the bench priced the calls");
        let budgets = meter.budget_status();
        assert!(budgets.iter().all(|b| b.spent.as_f64() > 0.0), "both budgets saw the calls: {budgets:?}");
    }
    let _ = meter.shutdown();
    if let Some(j) = meter.journal_stats() {
        eprintln!(
            "journal during the full-pipeline row: {} queued, {} dropped (the writer cannot keep up with a million \
             calls a second; the recording thread never waits)",
            j.enqueued, j.dropped
        );
    }
}

/// Runs `iters` full-pipeline calls on each of `threads` threads at once; returns wall time per call.
fn run_threads(dispatch: &Dispatch, threads: u64, iters: u64) -> Duration {
    pipeline::calls_on_threads(Some(dispatch), threads, iters) / threads as u32
}

/// The same under the global default dispatcher (the `Dispatch` passed is that one, not used).
fn run_threads_global(_: &Dispatch, threads: u64, iters: u64) -> Duration {
    pipeline::calls_on_threads(None, threads, iters) / threads as u32
}

/// Units of unshared work a ceiling batch runs on each thread (~20 ms).
const UNITS: u64 = 10_000;

/// `iters` rounds of work that shares nothing on each of `threads` threads at once; wall time per round.
fn run_unshared(_: &Dispatch, threads: u64, iters: u64) -> Duration {
    let wall = pipeline::on_threads(threads, |_, start| {
        pipeline::timed(start, || {
            for _ in 0..iters {
                black_box(pipeline::unshared_work());
            }
        })
    });
    wall / threads as u32
}

fn bench_threads(c: &mut Criterion, journal_dir: &Path) {
    let mut g = c.benchmark_group("two_threads");
    let in_memory = Parts { journal: false, ..Parts::FULL };
    for (suffix, parts) in [("", Parts::FULL), ("_no_journal", in_memory)] {
        let meter = meter_with(parts, journal_dir);
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(meter.layer()));
        g.bench_function(format!("1_thread{suffix}"), |b| b.iter_custom(|iters| run_threads(&dispatch, 1, iters)));
        g.bench_function(format!("2_threads{suffix}"), |b| b.iter_custom(|iters| run_threads(&dispatch, 2, iters)));
        let _ = meter.shutdown();
    }
    g.finish();
}

// === paired rounds: the table's figures ===
//
// Criterion measures each row for seconds, one row after another; on a shared machine a slow spell during one
// row and not its baseline moves a ratio by tens of percent. The table therefore comes from paired rounds:
// every configuration of a comparison runs one batch per round, in an order rotated each round, and each
// figure is the median over rounds of the per-round difference or ratio, so a slow spell hits both sides.

/// Rounds per comparison.
const ROUNDS: usize = 25;

/// One side of a comparison: a dispatch, the meter behind it (flushed after each batch, outside the timing,
/// so a journal writer still draining does not slow the next batch), and what one iteration does.
struct Side {
    dispatch: Dispatch,
    meter: Option<TokenMeter>,
    run: fn(&Dispatch, u64) -> Duration,
    /// For the two-thread rows, which measure throughput: the threads the side runs on, and the time runs on
    /// until the journal has written (and synced) the batch, that wall time shared among them as the calls'
    /// is. Stopped when the calls ended, they left the writer's backlog (most of it, on two busy threads: the
    /// writer rests three times its work) to the untimed flush, and the ratio read high.
    through_flush: Option<u32>,
}

impl Side {
    fn new(dispatch: Dispatch, meter: Option<TokenMeter>, run: fn(&Dispatch, u64) -> Duration) -> Self {
        Side { dispatch, meter, run, through_flush: None }
    }

    /// Timed until the journal has the batch, on `threads` threads ([`Side::through_flush`]).
    fn through_flush(mut self, threads: u32) -> Self {
        self.through_flush = Some(threads);
        self
    }

    /// Nanoseconds per iteration over a batch of `n`.
    fn batch(&self, n: u64) -> f64 {
        let mut elapsed = (self.run)(&self.dispatch, n);
        if let Some(m) = &self.meter {
            let flush = Instant::now();
            let _ = m.flush();
            if let Some(threads) = self.through_flush {
                elapsed += flush.elapsed() / threads.max(1);
            }
        }
        elapsed.as_nanos() as f64 / n as f64
    }
}

fn in_session(dispatch: &Dispatch, n: u64, call: fn()) -> Duration {
    tracing::dispatcher::with_default(dispatch, || {
        let session = session_span();
        let _s = session.enter();
        let t = Instant::now();
        for _ in 0..n {
            call();
        }
        t.elapsed()
    })
}

fn plain(dispatch: &Dispatch, n: u64, call: fn()) -> Duration {
    tracing::dispatcher::with_default(dispatch, || {
        let t = Instant::now();
        for _ in 0..n {
            call();
        }
        t.elapsed()
    })
}

/// Runs `ROUNDS` rounds over `sides` (batches of `n`); returns each side's per-round figures.
fn rounds(sides: &[Side], n: u64) -> Vec<Vec<f64>> {
    for side in sides {
        side.batch(n / 4); // warm-up: callsites registered, caches and maps filled
    }
    let mut out = vec![Vec::with_capacity(ROUNDS); sides.len()];
    for r in 0..ROUNDS {
        for k in 0..sides.len() {
            let i = (k + r) % sides.len();
            out[i].push(sides[i].batch(n));
        }
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A per-round figure's median and quartiles (the spread shown in brackets).
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let (lo, hi) = (v[v.len() / 4], v[(3 * v.len()) / 4]);
    (median(v), lo, hi)
}

fn per_round(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| f(*x, *y)).collect()
}

fn ok(pass: bool) -> &'static str {
    if pass { "met" } else { "MISSED" }
}

/// One row of the table.
fn row(name: &str, base: f64, fig: f64, ratio: String, verdict: String) {
    println!("| {name} | {base:.1} ns | {fig:.1} ns | {ratio} | {verdict} |");
}

/// The environment variable that makes this binary a child running one configuration under the global default.
const GLOBAL_ROW: &str = "TOKENMETER_BENCH_GLOBAL_ROW";

/// Target 3 as applications run: one configuration's registry installed as the global default (what `.init()`
/// does), one thread against two. Under a scoped default (`with_default`, the other two-thread rows) every span
/// clones and drops the thread's `Dispatch`, one `Arc` count both threads share; the global one is a
/// `&'static`, no count. A process sets its global default once, so each configuration runs in a child
/// process of this binary (`GLOBAL_ROW`), which prints its rows. In the same rounds: work that shares nothing,
/// on one thread and on two: the ceiling the machine allowed in those rounds (on a shared machine, not always
/// 2x).
fn global_rows(which: &str, journal_dir: &Path) {
    let (name, parts, target) = match which {
        "full" => ("two_threads (ns per call; global default dispatcher)", Parts::FULL, true),
        "no_journal" => ("  two_threads, journal off, global default", Parts { journal: false, ..Parts::FULL }, false),
        "bare" => ("  two_threads, bare registry, global default", Parts::NONE, false),
        // Not in the table; for experiments (`TOKENMETER_BENCH_GLOBAL_ROW=journal`, the bench binary run directly).
        "capture" => ("  two_threads, capture + pricing + totals, global default", Parts::CAPTURE, false),
        "journal" => ("  two_threads, capture + journal only, global default", Parts::JOURNAL, false),
        "budgets" => ("  two_threads, capture + budgets only, global default", Parts::BUDGETS, false),
        "otlp" => ("  two_threads, capture + OTLP only, global default", Parts::OTLP_ONLY, false),
        "ledger" => ("  two_threads, capture + ledger only, global default", Parts::LEDGER, false),
        other => panic!("{GLOBAL_ROW}={other}: full, no_journal, bare, capture, journal, budgets, otlp or ledger"),
    };
    let meter = meter_with(Parts { queue: Some(NO_DROP_QUEUE), ..parts }, journal_dir);
    let global = match parts.layer {
        true => Dispatch::new(tracing_subscriber::registry().with(meter.layer())),
        false => Dispatch::new(tracing_subscriber::registry()),
    };
    tracing::dispatcher::set_global_default(global.clone()).expect("a child sets the global default once");
    let one = Side::new(global.clone(), Some(meter.clone()), |d, n| run_threads_global(d, 1, n));
    let two = Side::new(global, Some(meter.clone()), |d, n| run_threads_global(d, 2, n));
    let ceiling = format!("    the machine in the same rounds: unshared work on two threads ({which})");
    threads_rows(name, [one, two], batch(parts), target, Some(&ceiling));
    if let Some(j) = meter.journal_stats() {
        assert!(j.enqueued > 0, "the global default's meter recorded the calls");
        assert_eq!(j.dropped, 0, "the journal dropped records during the paired rounds ({which}, global default)");
        assert_eq!(j.failed_records, 0, "journal writes failed during the paired rounds ({which}, global default)");
    }
    let _ = meter.shutdown();
}

/// One thread against two: `sides` (one thread, two threads) in paired rounds of `n` calls, with work that
/// shares nothing on one thread and on two in the same rounds (the ceiling the machine gave them). Prints the
/// row, saying when the machine gave less than 1.8x (then the row says more about the machine than about the
/// pipeline), and the ceiling's own row when `ceiling` names it.
fn threads_rows(name: &str, sides: [Side; 2], n: u64, target: bool, ceiling: Option<&str>) {
    let [one, two] = sides;
    let unshared = one.dispatch.clone();
    let sides = [
        one.through_flush(1),
        two.through_flush(2),
        // ~20 ms of unshared work a batch whatever the calls' batch (`n`): the time of 10,000 units scaled to `n`
        // units, so that the side reads as the time a unit.
        Side::new(unshared.clone(), None, |d, n| run_unshared(d, 1, UNITS) * n as u32 / UNITS as u32),
        Side::new(unshared, None, |d, n| run_unshared(d, 2, UNITS) * n as u32 / UNITS as u32),
    ];
    let r = rounds(&sides, n);
    let (machine, _, _) = spread(per_round(&r[2], &r[3], |one, two| one / two));
    let busy = if machine < 1.8 { format!("; the machine gave {machine:.2}x") } else { String::new() };
    let mut rows = vec![(name, 0, target)];
    if let Some(ceiling) = ceiling {
        rows.push((ceiling, 2, false));
    }
    for (name, i, target) in rows {
        let (m, lo, hi) = spread(per_round(&r[i], &r[i + 1], |one, two| one / two));
        row(
            name,
            median(r[i].clone()),
            median(r[i + 1].clone()),
            format!("{m:.2}x throughput ({lo:.2}–{hi:.2})"),
            match (target, i) {
                (true, _) => format!(">= 1.6x: {}{busy}", ok(m >= 1.6)),
                (false, 0) => format!("(reference{busy})"),
                (false, _) => "(reference)".into(),
            },
        );
    }
}

/// Calls a thread makes per batch: about 20-30 ms of work, long enough for the scheduler to have put two threads
/// on two cores (with 2.4 ms batches of bare-registry calls, some rounds ran both threads on one core throughout).
fn batch(parts: Parts) -> u64 {
    if parts.layer { 20_000 } else { 200_000 }
}

/// Where the two-thread rows keep their journals: in memory (`/dev/shm`) where there is one. Those rows time
/// until the journal has written and synced each batch ([`Side::through_flush`]); on a disk, syncing the batch's
/// ~12 MB took longer than recording it (one thread: 5.2 us a call through the flush, 2.2 on tmpfs), and the
/// rows measured the disk. The writer's CPU (encoding, `write`) is the same either way; in an application the
/// sync runs once a second on the writer's thread, not between calls.
fn throughput_dir(journal_dir: &Path, name: &str) -> PathBuf {
    match shm_dir() {
        Some(shm) => shm.join(name),
        None => journal_dir.join(name),
    }
}

/// This run's directory in `/dev/shm`, where there is one with room for a row's journal (~900 MB; a container's
/// is often 64 MiB, and failed writes are no drops: the rows would time the failure path). Removed at the end of
/// `main`, and by [`ShmGuard`] when a row's assertion fails.
fn shm_dir() -> Option<PathBuf> {
    const ROOM: u64 = 2 << 30;
    let shm = Path::new("/dev/shm");
    (shm.is_dir() && shm_free()? >= ROOM).then(|| shm.join(format!("tokenmeter-bench-{}", std::process::id())))
}

/// Bytes free in `/dev/shm`.
#[cfg(unix)]
fn shm_free() -> Option<u64> {
    let path = std::ffi::CString::new("/dev/shm").ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid C string and `st` points to writable memory for one `statvfs`.
    if unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: `statvfs` returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::useless_conversion)] // the fields' types differ between platforms
    Some(u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize)))
}

#[cfg(not(unix))]
fn shm_free() -> Option<u64> {
    None
}

/// Removes this run's `/dev/shm` directory when dropped: on the way out of `main`, and when a row's assertion
/// unwinds (its journal would otherwise hold up to ~900 MB of memory).
struct ShmGuard;

impl Drop for ShmGuard {
    fn drop(&mut self) {
        // Not through `shm_dir`, whose room check a failed row's journal may now fail.
        let _ = std::fs::remove_dir_all(Path::new("/dev/shm").join(format!("tokenmeter-bench-{}", std::process::id())));
    }
}

/// Runs [`global_rows`] for `which` in a child process and prints its rows.
fn global_rows_in_child(which: &str, journal_dir: &Path) {
    let exe = std::env::current_exe().expect("the bench binary's path");
    let out = std::process::Command::new(exe)
        .env(GLOBAL_ROW, which)
        .env("TOKENMETER_BENCH_JOURNAL", journal_dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("the bench runs a child");
    // Its journal (up to ~900 MB) goes whether it passed or not.
    let _ = std::fs::remove_dir_all(journal_dir);
    assert!(out.status.success(), "the {which} child failed: {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(rows.len(), 2, "the {which} child printed its two rows: {text}");
    for line in rows {
        println!("{line}");
    }
}

fn paired_table(journal_dir: &Path) {
    println!("\n| bench | baseline | figure | ratio | target |\n|---|---|---|---|---|");

    // Target 1: non-LLM span and event beside fmt.
    let meter = full_meter(&journal_dir.join("p1"));
    let fmt_only = || Dispatch::new(tracing_subscriber::registry().with(fmt_layer()));
    let fmt_tm = || Dispatch::new(tracing_subscriber::registry().with(fmt_layer()).with(meter.layer()));
    for (name, run) in [
        ("non_llm_span", (|d: &Dispatch, n| plain(d, n, plain_span)) as fn(&Dispatch, u64) -> Duration),
        ("non_llm_event", |d: &Dispatch, n| plain(d, n, plain_event)),
    ] {
        let r = rounds(&[Side::new(fmt_only(), None, run), Side::new(fmt_tm(), None, run)], 100_000);
        let (ratio, lo, hi) = spread(per_round(&r[0], &r[1], |b, w| w / b));
        row(
            name,
            median(r[0].clone()),
            median(r[1].clone()),
            format!("{ratio:.3}x ({lo:.3}–{hi:.3})"),
            format!("<= 1.25x: {}", ok(ratio <= 1.25)),
        );
    }
    let _ = meter.shutdown();

    // Target 2: the LLM call, the ladder of partial pipelines, and MetricsLayer.
    let call = (|d: &Dispatch, n| in_session(d, n, llm_call)) as fn(&Dispatch, u64) -> Duration;
    let mut sides = vec![Side::new(Dispatch::new(tracing_subscriber::registry()), None, call)];
    for (i, (_, _, parts)) in LADDER.iter().enumerate() {
        let parts = Parts { queue: Some(NO_DROP_QUEUE), ..*parts };
        let meter = meter_with(parts, &journal_dir.join(format!("p2-{i}")));
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(meter.layer()));
        sides.push(Side::new(dispatch, Some(meter), call));
    }
    let provider = quiet_provider();
    let otel =
        Dispatch::new(tracing_subscriber::registry().with(tracing_opentelemetry::MetricsLayer::new(provider.clone())));
    // `MetricsLayer` filters per layer (events with metric fields only); the registry must still make the spans,
    // or its side would skip the span's cost.
    tracing::dispatcher::with_default(&otel, || assert!(!llm_call_span().is_disabled(), "the otel side makes spans"));
    sides.push(Side::new(otel, None, |d, n| in_session(d, n, llm_call_with_metrics_event)));
    let floor_tokens = std::sync::Arc::default();
    let floor = FloorLayer { tokens: std::sync::Arc::clone(&floor_tokens) };
    sides.push(Side::new(Dispatch::new(tracing_subscriber::registry().with(floor)), None, call));
    let r = rounds(&sides, 20_000);
    assert!(floor_tokens.load(std::sync::atomic::Ordering::Relaxed) > 0, "the floor layer saw the usage");
    // The full pipeline did its whole work: priced every call, and both budgets counted them (a call out of a
    // budget's scope, or unpriced, would make the row cheaper unseen).
    if let Some(full) = &sides[1].meter {
        let totals = full.total_usage();
        assert!(totals.calls > 0 && totals.unpriced_calls == 0, "the full row priced its calls: {totals:?}");
        let budgets = full.budget_status();
        assert!(budgets.len() == 2 && budgets.iter().all(|b| b.calls > 0), "both budgets saw the calls: {budgets:?}");
    }
    let bare = &r[0];
    let added = |i: usize| per_round(bare, &r[i], |b, w| w - b);
    for (i, (_, name, _)) in LADDER.iter().enumerate() {
        let (m, lo, hi) = spread(added(i + 1));
        let verdict = if i == 0 { format!("adds <= 400 ns: {}", ok(m <= 400.0)) } else { "(breakdown)".to_string() };
        row(name, median(bare.clone()), median(r[i + 1].clone()), format!("+{m:.0} ns (+{lo:.0} – +{hi:.0})"), verdict);
    }
    let (m, lo, hi) = spread(added(LADDER.len() + 2));
    row(
        "  floor: the least any layer does to capture it",
        median(bare.clone()),
        median(r[LADDER.len() + 2].clone()),
        format!("+{m:.0} ns (+{lo:.0} – +{hi:.0})"),
        "(reference)".into(),
    );
    let otel_added = added(LADDER.len() + 1);
    for (name, i, verdict) in [
        ("llm_call vs MetricsLayer (added cost)", 1, true),
        ("  like for like: capture + OTLP only vs MetricsLayer", 3, false),
    ] {
        let (m, lo, hi) = spread(per_round(&otel_added, &added(i), |o, t| o / t));
        row(
            name,
            median(otel_added.clone()),
            median(added(i)),
            format!("{m:.2}x as fast ({lo:.2}–{hi:.2})"),
            if verdict { format!(">= 2x as fast: {}", ok(m >= 2.0)) } else { "(reference)".into() },
        );
    }
    for (i, side) in sides.into_iter().enumerate() {
        if let Some(m) = side.meter {
            if let Some(j) = m.journal_stats() {
                let row = LADDER.get(i.wrapping_sub(1)).map_or("?", |(_, name, _)| name.trim());
                // A dropped record skips the queue's copy: the row would time less than it says.
                assert_eq!(j.dropped, 0, "the journal dropped records during the paired rounds ({row})");
            }
            let _ = m.shutdown();
        }
    }
    let _ = provider.shutdown();
    for i in 0..LADDER.len() {
        let _ = std::fs::remove_dir_all(journal_dir.join(format!("p2-{i}")));
    }

    // Target 3: one thread against two, under the global default (each in a child process), then under a
    // scoped default.
    for which in ["full", "no_journal", "bare"] {
        let dir = throughput_dir(journal_dir, &format!("p3-global-{which}"));
        global_rows_in_child(which, &dir);
    }

    // The same comparison under a scoped default, where each configuration can run: the full pipeline, with
    // the journal writer at `Background`, without the journal, each part alone, and the bare registry.
    for (name, parts) in [
        ("  two_threads, scoped default (with_default)", Parts::FULL),
        (
            "  two_threads, journal writer at Background priority",
            Parts { writer: WriterPriority::Background, ..Parts::FULL },
        ),
        ("  two_threads, journal off (ns per call)", Parts { journal: false, ..Parts::FULL }),
        ("  two_threads, capture + pricing + totals", Parts::CAPTURE),
        ("  two_threads, bare registry (tracing itself)", Parts::NONE),
        ("  two_threads, capture + OTLP only", Parts::OTLP_ONLY),
        ("  two_threads, capture + ledger only", Parts::LEDGER),
        ("  two_threads, capture + budgets only", Parts::BUDGETS),
        ("  two_threads, capture + journal only", Parts::JOURNAL),
    ] {
        // Each row its own journal, removed after it: a meter replays its directory at start, and a row writes
        // ~1.5M records (~900 MB).
        let dir = throughput_dir(journal_dir, &format!("p3-{}", name.trim().replace([' ', ',', '+'], "_")));
        let meter = meter_with(Parts { queue: Some(NO_DROP_QUEUE), ..parts }, &dir);
        let dispatch = match parts.layer {
            true => Dispatch::new(tracing_subscriber::registry().with(meter.layer())),
            false => Dispatch::new(tracing_subscriber::registry()),
        };
        let one = Side::new(dispatch.clone(), Some(meter.clone()), |d, n| run_threads(d, 1, n));
        let two = Side::new(dispatch, Some(meter.clone()), |d, n| run_threads(d, 2, n));
        threads_rows(name, [one, two], batch(parts), false, None);
        if let Some(j) = meter.journal_stats() {
            // Both sides do all the work: a dropped record (or one whose write failed) would make the two-thread
            // side's calls cheaper.
            assert_eq!(j.dropped, 0, "the journal dropped records during the paired rounds ({})", name.trim());
            assert_eq!(j.failed_records, 0, "journal writes failed during the paired rounds ({})", name.trim());
        }
        let _ = meter.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }

    // What the journal writer's priority buys and costs: two threads at once, the full pipeline with its writer
    // at `Normal` (the default) against `Background`, in the same rounds; and how much of what each recorded
    // reached the journal.
    let sides: Vec<Side> = [WriterPriority::Normal, WriterPriority::Background]
        .into_iter()
        .map(|writer| {
            let meter = meter_with(Parts { writer, ..Parts::FULL }, &journal_dir.join(format!("p4-{writer:?}")));
            let dispatch = Dispatch::new(tracing_subscriber::registry().with(meter.layer()));
            Side::new(dispatch, Some(meter), |d, n| run_threads(d, 2, n))
        })
        .collect();
    let r = rounds(&sides, 20_000);
    let (m, lo, hi) = spread(per_round(&r[0], &r[1], |normal, background| normal / background));
    row(
        "  two threads at once: journal writer at Background vs Normal priority",
        median(r[0].clone()),
        median(r[1].clone()),
        format!("{m:.2}x throughput ({lo:.2}–{hi:.2})"),
        "(reference)".into(),
    );
    for (side, name) in sides.iter().zip(["Normal", "Background"]) {
        if let Some(meter) = &side.meter {
            let _ = meter.flush();
            if let Some(j) = meter.journal_stats() {
                let offered = j.enqueued + j.dropped;
                eprintln!(
                    "journal writer at {name}, two threads at a million calls a second each: {} of {offered} records \
                     written ({:.0}%; the rest dropped, counted)",
                    j.written,
                    100.0 * j.written as f64 / offered.max(1) as f64
                );
            }
        }
    }
}

fn main() {
    if let Some(which) = std::env::var_os(GLOBAL_ROW) {
        // The parent names the child's journal; run by hand, it gets its own, removed after.
        let own = std::env::temp_dir().join(format!("tokenmeter-bench-global-{}", std::process::id()));
        let dir = std::env::var_os("TOKENMETER_BENCH_JOURNAL").map_or(own.clone(), std::path::PathBuf::from);
        global_rows(&which.to_string_lossy(), &dir);
        let _ = std::fs::remove_dir_all(own);
        return;
    }
    let journal = std::env::temp_dir().join(format!("tokenmeter-bench-{}", std::process::id()));
    let _shm = ShmGuard;
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    if std::env::var_os("TOKENMETER_BENCH_PAIRED_ONLY").is_none() {
        bench_non_llm(&mut c, &journal.join("a"));
        bench_llm(&mut c, &journal.join("b"));
        bench_threads(&mut c, &journal.join("c"));
        c.final_summary();
    }
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        paired_table(&journal.join("d"));
    }
    let _ = std::fs::remove_dir_all(&journal);
}
