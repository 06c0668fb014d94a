//! What the capture layer's own per-layer filter (`TokenMeter::filtered_layer`) saves the application, and what
//! it costs a call, against `layer()` in the same run.
//!
//! Rows (printed as rows of `scripts/bench.sh`'s table):
//! - `trace span + event that fmt's filter turns off`: a `trace!` span entered with a `trace!` event inside,
//!   beside a `fmt` layer filtered at `INFO` (`fmt::layer().with_filter(...)`, the README's setup). Baseline:
//!   `fmt` alone, where the callsite is off for the process (~2 ns). With `layer()` beside it, an unfiltered
//!   layer, the callsite is on: the span is made, registered, entered, closed and the event dispatched, only for
//!   the layer to ignore them. With `filtered_layer()` it stays off.
//! - `non-LLM info span beside fmt(info)`: the same three stacks on a span `fmt` prints.
//! - `llm_call, filtered_layer() vs layer()`: the LLM call of `benches/capture.rs` (a default meter: capture,
//!   pricing, totals and the ledger; in a session span), with the filter's per-span checks (`Filtered` looks each span up on enter, exit, record
//!   and close to read its filter bit).
//!
//! A callsite's interest is asked of every dispatcher alive when it is registered, so the configurations
//! cannot run side by side as `capture.rs`'s paired rounds do: each batch runs in a child process of this
//! binary, its one dispatcher the global default (as `.init()` sets), in an order rotated every round (9
//! rounds); a figure is the median over rounds, with quartiles in brackets.
//!
//! Run: `cargo bench --bench filtering` (or `./scripts/bench.sh`).

use std::hint::black_box;
use std::time::Instant;

use tokenmeter::TokenMeter;
use tracing::Dispatch;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::prelude::*;

#[path = "support/pipeline.rs"]
mod pipeline;

const ROUNDS: usize = 9;

#[derive(Clone, Copy, PartialEq)]
enum Stack {
    FmtOnly,
    Layer,
    Filtered,
}

fn fmt_info<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer().with_writer(std::io::sink).with_ansi(false).with_filter(LevelFilter::INFO)
}

fn dispatch(stack: Stack, meter: &TokenMeter) -> Dispatch {
    match stack {
        Stack::FmtOnly => Dispatch::new(tracing_subscriber::registry().with(fmt_info())),
        Stack::Layer => Dispatch::new(tracing_subscriber::registry().with(fmt_info()).with(meter.layer())),
        Stack::Filtered => Dispatch::new(tracing_subscriber::registry().with(fmt_info()).with(meter.filtered_layer())),
    }
}

fn trace_span() {
    let span = tracing::trace_span!("poll", stream = 3u64);
    let _e = span.enter();
    tracing::trace!(bytes = 10u64, "read");
    black_box(&span);
}

fn info_span() {
    let span = tracing::info_span!("handle_request", http.route = "/v1/items", attempt = 1u64);
    let _e = span.enter();
    black_box(&span);
}

fn llm_call() {
    let session = pipeline::session_span_of("sess-7f3a9c");
    let _s = session.enter();
    for _ in 0..100 {
        pipeline::llm_call();
    }
}

/// The environment variable that makes this binary a child running one configuration.
const CHILD: &str = "TOKENMETER_BENCH_FILTERING_CHILD";

const WORKLOADS: [(fn(), u64, u64); 3] = [(trace_span, 1_000_000, 1), (info_span, 200_000, 1), (llm_call, 200, 100)];

/// In a child process (its only dispatcher, the global default, as an application's `.init()` sets): nanoseconds
/// per operation of `n` runs of the workload (`per` operations each).
fn child(stack: Stack, workload: usize) -> f64 {
    let meter = TokenMeter::builder().build();
    tracing::dispatcher::set_global_default(dispatch(stack, &meter)).expect("the child's only dispatcher");
    let (f, n, per) = WORKLOADS[workload];
    for _ in 0..n / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    let ns = t.elapsed().as_nanos() as f64 / (n * per) as f64;
    if workload == 2 {
        assert!(meter.total_usage().calls > 0, "the calls were captured");
    }
    ns
}

fn batch(stack: Stack, workload: usize) -> f64 {
    let out = std::process::Command::new(std::env::current_exe().expect("this bench's path"))
        .env(CHILD, format!("{}:{workload}", stack as u8))
        .output()
        .expect("the child ran");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {text} {}", String::from_utf8_lossy(&out.stderr));
    text.trim().parse().unwrap_or_else(|_| panic!("a figure from the child, not {text:?}"))
}

fn rounds(stacks: &[Stack], workload: usize) -> Vec<Vec<f64>> {
    let mut out = vec![Vec::with_capacity(ROUNDS); stacks.len()];
    for r in 0..ROUNDS {
        for k in 0..stacks.len() {
            let i = (k + r) % stacks.len();
            out[i].push(batch(stacks[i], workload));
        }
    }
    out
}

fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() / 4], v[(3 * v.len()) / 4])
}

fn per_round(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| f(*x, *y)).collect()
}

fn main() {
    if let Ok(which) = std::env::var(CHILD) {
        let (stack, workload) = which.split_once(':').expect("stack:workload");
        let stack = [Stack::FmtOnly, Stack::Layer, Stack::Filtered][stack.parse::<usize>().expect("a stack")];
        println!("{}", child(stack, workload.parse().expect("a workload")));
        return;
    }
    println!("\n| bench | baseline | figure | ratio | target |\n|---|---|---|---|---|");
    for (name, workload) in
        [("trace span + event that fmt's filter turns off", 0), ("non-LLM info span beside fmt(info)", 1)]
    {
        let r = rounds(&[Stack::FmtOnly, Stack::Layer, Stack::Filtered], workload);
        let base = spread(r[0].clone()).0;
        for (i, which) in [(1, "layer()"), (2, "filtered_layer()")] {
            let (ratio, lo, hi) = spread(per_round(&r[0], &r[i], |b, w| w / b));
            println!(
                "| {name}: fmt(info) vs + {which} | {base:.1} ns | {:.1} ns | {ratio:.2}x ({lo:.2}–{hi:.2}) | \
                 (filtering) |",
                spread(r[i].clone()).0
            );
        }
    }
    let r = rounds(&[Stack::Layer, Stack::Filtered], 2);
    let (added, lo, hi) = spread(per_round(&r[0], &r[1], |l, f| f - l));
    println!(
        "| llm_call beside fmt(info): layer() vs filtered_layer() | {:.1} ns | {:.1} ns | {added:+.0} ns ({lo:+.0} \
         – {hi:+.0}) | (filtering) |",
        spread(r[0].clone()).0,
        spread(r[1].clone()).0
    );
}
