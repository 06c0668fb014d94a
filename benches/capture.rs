//! Capture cost against baselines in the same run.
//!
//! Rows (criterion medians; the ratio table at the end is what README "Performance" quotes):
//! - `non_llm_span`: a plain span's whole life (new, enter, exit, close) with a `fmt` layer writing to a sink,
//!   without and with tokenmeter beside it. Target: ratio <= 1.25.
//! - `non_llm_event`: a plain event, same two stacks. Target: ratio <= 1.25.
//! - `llm_call`: an LLM call span with its fields declared, usage recorded later, closed; in a bare registry,
//!   and in a registry with tokenmeter (pricing, totals). Target: tokenmeter adds <= 400 ns.
//!
//! What profiling taught (kept here so the next person starts from it):
//! - The per-layer filter makes the registry ask `Filter::enabled` for every span of a `sometimes` callsite; that
//!   call is a per-thread hash lookup of the callsite's plan, which is why non-LLM spans cost almost nothing.
//! - An LLM call's cost is dominated by the record's string allocations (model, provider, ids) and the span
//!   extension box; pricing is a per-shard cache hit.
//!
//! Run: `cargo bench --bench capture` (or `./scripts/bench.sh` for every bench and one table).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::Criterion;
use tokenmeter::TokenMeter;
use tracing::field::Empty;
use tracing_subscriber::prelude::*;

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

fn llm_call() {
    let span = tracing::info_span!(
        "chat claude-sonnet-4-5",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = "anthropic",
        gen_ai.request.model = "claude-sonnet-4-5",
        gen_ai.response.id = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.cache_read.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
    );
    let _e = span.enter();
    span.record("gen_ai.response.id", "msg_01XFDUDYJgAACzvnptvVoYEL");
    span.record("gen_ai.usage.input_tokens", 12_000u64);
    span.record("gen_ai.usage.cache_read.input_tokens", 10_000u64);
    span.record("gen_ai.usage.output_tokens", 500u64);
}

fn bench_non_llm(c: &mut Criterion) {
    let mut g = c.benchmark_group("non_llm_span");
    let base = tracing_subscriber::registry().with(fmt_layer());
    tracing::subscriber::with_default(base, || g.bench_function("fmt", |b| b.iter(plain_span)));
    let meter = TokenMeter::builder().build();
    let with = tracing_subscriber::registry().with(fmt_layer()).with(meter.layer());
    tracing::subscriber::with_default(with, || g.bench_function("fmt+tokenmeter", |b| b.iter(plain_span)));
    g.finish();

    let mut g = c.benchmark_group("non_llm_event");
    let base = tracing_subscriber::registry().with(fmt_layer());
    tracing::subscriber::with_default(base, || g.bench_function("fmt", |b| b.iter(plain_event)));
    let meter = TokenMeter::builder().build();
    let with = tracing_subscriber::registry().with(fmt_layer()).with(meter.layer());
    tracing::subscriber::with_default(with, || g.bench_function("fmt+tokenmeter", |b| b.iter(plain_event)));
    g.finish();
}

fn bench_llm(c: &mut Criterion) {
    let mut g = c.benchmark_group("llm_call");
    let base = tracing_subscriber::registry();
    tracing::subscriber::with_default(base, || g.bench_function("registry", |b| b.iter(llm_call)));
    let meter = TokenMeter::builder().build();
    let with = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(with, || g.bench_function("registry+tokenmeter", |b| b.iter(llm_call)));
    g.finish();
    assert!(meter.total_usage().calls > 0, "the bench exercised capture");
}

/// Reads criterion's median for `group/function` from this run's output.
fn median_ns(group: &str, function: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| "target".into());
    let path = target.join("criterion").join(group).join(function).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn print_ratios() {
    println!("\n{:<16} {:>14} {:>16} {:>9}  target", "bench", "baseline (ns)", "tokenmeter (ns)", "ratio");
    for (group, base, with, target) in [
        ("non_llm_span", "fmt", "fmt+tokenmeter", "ratio <= 1.25"),
        ("non_llm_event", "fmt", "fmt+tokenmeter", "ratio <= 1.25"),
        ("llm_call", "registry", "registry+tokenmeter", "adds <= 400 ns"),
    ] {
        match (median_ns(group, base), median_ns(group, with)) {
            (Some(b), Some(w)) => {
                let verdict =
                    if group == "llm_call" { format!("{} (+{:.0} ns)", target, w - b) } else { target.into() };
                println!("{group:<16} {b:>14.1} {w:>16.1} {:>9.3}  {verdict}", w / b);
            }
            _ => println!("{group:<16} (no figures: run without --test)"),
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_non_llm(&mut c);
    bench_llm(&mut c);
    c.final_summary();
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        print_ratios();
    }
}
