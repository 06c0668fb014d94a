//! Peak memory of a month of traffic: 1M LLM calls over 100k sessions, through the layer.
//!
//! `scripts/bench.sh` runs this binary under `/usr/bin/time -v` twice, as `bare` (the same spans in a bare
//! registry: the baseline) and as `tokenmeter` (the meter with pricing, the ledger, two budgets and the OTLP
//! instruments on a meter provider that does not export), and reports both peaks ("Maximum resident set size")
//! and the difference. Target (issue 8, 5): the `tokenmeter` run peaks at <= 64 MB.
//!
//! The journal is off here: it writes to disk, and in memory it is a bounded queue (`with_queue_capacity`,
//! 4,096 records by default) in front of a writer thread.
//!
//! The calls are spread over 30 days by a `ManualClock` (2.6 s apart), so the ledger ages its buckets through
//! every tier as a month-long process would; 100k sessions of 10 turns, 5,000 users, 50 projects, 10 agents,
//! 3 models, prompt caching.
//!
//! Usage: `cargo run --release --example memory -- [bare|tokenmeter] [CALLS] [SESSIONS]`

use std::time::Duration;

use chrono::{TimeZone, Utc};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use tokenmeter::budget::{Budget, BudgetLimit, BudgetPeriod, BudgetScope};
use tokenmeter::{ManualClock, TokenMeter};
use tracing_subscriber::prelude::*;

#[path = "../benches/support/month.rs"]
mod month;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "tokenmeter".into());
    let calls: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let sessions: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000).max(1);
    if mode != "bare" && mode != "tokenmeter" {
        eprintln!("usage: memory [bare|tokenmeter] [CALLS] [SESSIONS]");
        std::process::exit(2);
    }

    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).single().expect("date"));
    let step = chrono::Duration::nanoseconds((30 * 86_400 * 1_000_000_000 / calls.max(1)) as i64);
    let meter = (mode == "tokenmeter").then(|| {
        let reader =
            PeriodicReader::builder(InMemoryMetricExporter::default()).with_interval(Duration::from_secs(3600)).build();
        TokenMeter::builder()
            .with_clock(clock.clone())
            .with_meter_provider(SdkMeterProvider::builder().with_reader(reader).build())
            .with_budget(Budget::new("monthly", BudgetLimit::usd(1e9).expect("limit")).with_period(BudgetPeriod::Month))
            .with_budget(
                Budget::new("project-7", BudgetLimit::tokens(u64::MAX / 4))
                    .with_scope(BudgetScope::project("project-7"))
                    .with_period(BudgetPeriod::Day),
            )
            .build()
    });
    let subscriber = tracing_subscriber::registry().with(meter.as_ref().map(|m| m.layer()));

    tracing::subscriber::with_default(subscriber, || {
        let done = month::record_month(&clock, calls, sessions, step, |_| {});
        println!("{mode}: {done} calls over {sessions} sessions");
    });

    if let Some(meter) = &meter {
        let totals = meter.total_usage();
        let stats = meter.ledger_stats();
        println!(
            "recorded {} calls, ${:.2}; ledger: {} series (limit {}), {} sessions tracked",
            totals.calls,
            totals.cost.as_usd(),
            stats.series.total,
            stats.series_limit,
            stats.tracked_sessions
        );
        // Timed too: the cross-check of `benches/reports.rs`' summary row, whose ledger is fed records directly;
        // this one was fed through the layer. The median of 11.
        let mut times = Vec::with_capacity(11);
        let mut summary = None;
        for _ in 0..11 {
            let started = std::time::Instant::now();
            summary = Some(meter.usage_summary(tokenmeter::ledger::Window::Last30Days).expect("30-day summary"));
            times.push(started.elapsed());
        }
        times.sort();
        let calls = summary.map_or(0, |s| s.calls);
        // Fewer calls than recorded: `Last30Days` is the 30 whole local days ending today, and the simulated
        // month began partway into its first day.
        println!(
            "30-day summary: {} calls (the 30 whole days ending today); ledger entries: {:?}",
            calls, stats.series
        );
        println!(
            "30-day summary over the ledger the layer fed: {:.2} ms (median of 11)",
            times[times.len() / 2].as_secs_f64() * 1e3
        );
        // After the peak: what erasing one user (and so nothing of the journal, which is off here) costs a meter
        // this full. It holds the ledger's lock for the whole pass over its buckets.
        let started = std::time::Instant::now();
        let erased = meter.erase(&tokenmeter::journal::Erasure::new().user("user-7")).expect("erasure");
        println!(
            "erasing one user from memory: {:.1} ms ({} ledger entries, {} cache histories)",
            started.elapsed().as_secs_f64() * 1e3,
            erased.ledger_entries,
            erased.cache_histories
        );
    }
    // The kernel's own high-water mark, as a cross-check of /usr/bin/time's figure.
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM"))
    {
        println!("{}", line.split_whitespace().collect::<Vec<_>>().join(" "));
    }
}
