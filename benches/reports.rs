//! Report generation over a month of traffic: 1M recorded calls over 30 days, 100k sessions.
//!
//! Rows (criterion medians; the table at the end is what README "Performance" quotes):
//! - `summary_30d/scan_records`: the baseline, a straight fold over the 1M `CallRecord`s in memory computing
//!   what the summary's headline needs (totals by kind, cost, by model, a daily series): what a report would
//!   cost without a ledger, if the records were even kept.
//! - `summary_30d/ledger`: `Ledger::usage_summary(Window::Last30Days)` from the ledger's aggregates. Target:
//!   <= 50 ms.
//! - `efficiency_30d/ledger`, `cache_30d/ledger`, `anomalies_30d/ledger`, `forecast/ledger`: the other
//!   reports on the same ledger, for reference.
//! - `ingest/ledger_call`: one `Ledger::ingest_call` (the recording-thread cost), measured over the whole
//!   feed.
//! - `anomalies_spiky/ledger`: `anomalies(Last7Days)` where they are many: a call every 3 s for 7 days, then
//!   every second for 3 (460,800 calls, 100k sessions, 5,000 users), 100 anomalies over 50 hours, each named
//!   by its spiking value. The monthly feed above is even, with no anomaly to attribute. Profiled
//!   (2026-12-05): each anomaly summed its whole baseline week per value into a new map (tens of thousands of
//!   `String` keys, rehashing ~250-byte sums), ~100-120 ms; the baseline now sums only the period's own values,
//!   once per period for all its metrics. Same run, criterion medians: 151.8 ms before, 28.3 ms after.
//!
//! Results (2-core shared dev machine, rustc 1.95, release; criterion medians; 2026-11-23, via
//! `scripts/bench.sh`): summary_30d 8.76 ms against 68.68 ms for scan_records (ratio 0.128; target <= 50 ms),
//! efficiency_30d 7.83 ms, cache_30d / anomalies_30d / forecast 0.05 / 0.14 / 0.01 ms. An earlier run measured
//! ingest/ledger_call at 376 ns per call in steady state and 1.8 µs per call over the whole feed (23 calls a
//! minute: per-minute bucket hand-offs dominate); this bench prints both lines on every run.
//!
//! Run: `cargo bench --bench reports`.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::Criterion;
use tokenmeter::ledger::{Dimension, Ledger, LedgerConfig, Window};
use tokenmeter::{CallRecord, Dimensions, ManualClock, Money, Outcome, PriceBook, TokenUsage};

const CALLS: u64 = 1_000_000;

fn end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 31, 18, 0, 0).unwrap()
}

/// The first instant of the 30-day window ending at `end()`: local (UTC) midnight 29 days before its day.
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap()
}

/// The month of records: 3 models, 10 agents, 20 operations, 50 projects, 5,000 users, 100k sessions of 10
/// turns with prompt caching, 1% failures.
fn records(book: &PriceBook) -> Vec<CallRecord> {
    let start = start();
    let step_us = (end() - start).num_microseconds().unwrap_or(1) / CALLS as i64;
    let s = |v: String| -> Arc<str> { Arc::from(v) };
    let sessions: Vec<Arc<str>> = (0..100_000).map(|i| s(format!("session-{i:06}"))).collect();
    let users: Vec<Arc<str>> = (0..5_000).map(|i| s(format!("user-{i}"))).collect();
    let agents: Vec<Arc<str>> = (0..10).map(|i| s(format!("agent-{i}"))).collect();
    let ops: Vec<Arc<str>> = (0..20).map(|i| s(format!("op-{i}"))).collect();
    let projects: Vec<Arc<str>> = (0..50).map(|i| s(format!("project-{i}"))).collect();
    let models: Vec<Arc<str>> =
        ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-5"].into_iter().map(Arc::from).collect();
    let provider: Arc<str> = Arc::from("anthropic");
    (0..CALLS)
        .map(|i| {
            let turn = i % 10;
            let tokens = TokenUsage {
                input: 200 + turn * 50,
                cache_read: if turn > 0 { 2_000 + turn * 300 } else { 0 },
                cache_write_5m: 300,
                output: 300 + (i % 7) * 40,
                ..TokenUsage::default()
            };
            let model = models[(i % 3) as usize].clone();
            let cost = book.price(&model, &tokens, None, None);
            CallRecord {
                timestamp: start + Duration::microseconds(i as i64 * step_us),
                duration_us: 800_000 + (i % 13) * 100_000,
                time_to_first_token_us: Some(300_000 + (i % 5) * 50_000),
                model: Some(model),
                provider: Some(provider.clone()),
                operation: None,
                request_id: None,
                streaming: Some(true),
                service_tier: None,
                speed: None,
                inference_geo: None,
                tokens,
                web_search_requests: 0,
                metered: true,
                outcome: if i % 100 == 0 {
                    Outcome::Error { error_type: Arc::from("overloaded_error") }
                } else {
                    Outcome::Ok
                },
                dimensions: Dimensions {
                    session: Some(sessions[(i / 10) as usize].clone()),
                    user: Some(users[(i / 10 % 5_000) as usize].clone()),
                    project: Some(projects[(i / 10 % 50) as usize].clone()),
                    agent: Some(agents[(i % 10) as usize].clone()),
                    operation: Some(ops[(i % 20) as usize].clone()),
                    ..Dimensions::default()
                },
                cost,
            }
        })
        .collect()
}

/// The baseline: one pass over the records for the summary's headline figures.
fn scan(records: &[CallRecord], from: DateTime<Utc>) -> (u64, Money, TokenUsage, usize, usize) {
    let mut calls = 0;
    let mut cost = Money::ZERO;
    let mut tokens = TokenUsage::default();
    let mut by_model: HashMap<&str, (u64, Money)> = HashMap::new();
    let mut by_day: HashMap<i64, Money> = HashMap::new();
    for r in records.iter().filter(|r| r.timestamp >= from) {
        calls += 1;
        let c = r.cost_or_zero();
        cost += c;
        tokens.add(&r.tokens);
        let e = by_model.entry(r.model.as_deref().unwrap_or("unknown")).or_default();
        e.0 += 1;
        e.1 += c;
        *by_day.entry(r.timestamp.timestamp().div_euclid(86_400)).or_default() += c;
    }
    (calls, cost, tokens, by_model.len(), by_day.len())
}

/// When this process started: criterion's estimates written before it are an earlier run's (a filter or
/// `--test` leaves them in place), and are not reported.
static STARTED: std::sync::OnceLock<std::time::SystemTime> = std::sync::OnceLock::new();

/// Reads criterion's median for `group/function` from this run's output.
fn median_ns(group: &str, function: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| "target".into());
    let path = target.join("criterion").join(group).join(function).join("new/estimates.json");
    let written = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    if STARTED.get().is_none_or(|started| written < *started) {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn main() {
    STARTED.get_or_init(std::time::SystemTime::now);
    let mut c = Criterion::default().sample_size(10).configure_from_args();
    let book = PriceBook::builtin();
    let records = records(&book);

    let clock = ManualClock::new(records[0].timestamp);
    let ledger = Ledger::new(LedgerConfig::default(), Arc::new(clock.clone()), book);
    let started = Instant::now();
    for r in &records {
        clock.set(r.timestamp);
        ledger.ingest_call(r);
    }
    let ingest_ns = started.elapsed().as_nanos() as f64 / CALLS as f64;
    clock.set(end());
    let summary = ledger.usage_summary(Window::Last30Days).expect("summary");
    assert_eq!(summary.calls, CALLS, "the window holds every call");

    let from = start();
    let mut g = c.benchmark_group("summary_30d");
    g.bench_function("scan_records", |b| b.iter(|| black_box(scan(&records, from))));
    g.bench_function("ledger", |b| b.iter(|| black_box(ledger.usage_summary(Window::Last30Days))));
    g.finish();
    for (group, f) in [
        (
            "efficiency_30d",
            &(|l: &Ledger| drop(black_box(l.efficiency_report(Window::Last30Days, Dimension::Agent))))
                as &dyn Fn(&Ledger),
        ),
        ("cache_30d", &|l: &Ledger| drop(black_box(l.cache_report(Window::Last30Days)))),
        ("anomalies_30d", &|l: &Ledger| drop(black_box(l.anomalies(Window::Last30Days)))),
        ("forecast", &|l: &Ledger| drop(black_box(l.forecast(30, Some(1_000.0))))),
    ] {
        let mut g = c.benchmark_group(group);
        g.bench_function("ledger", |b| b.iter(|| f(&ledger)));
        g.finish();
    }

    let (spiky, spiky_calls) = spiky_ledger();
    let found = spiky.anomalies(Window::Last7Days).expect("anomalies").anomalies.len();
    assert!(found > 50, "the spiky feed has anomalies to attribute: {found}");
    let mut g = c.benchmark_group("anomalies_spiky");
    g.bench_function("ledger", |b| b.iter(|| black_box(spiky.anomalies(Window::Last7Days))));
    g.finish();

    // The recording-thread cost in steady state: calls of 100 sessions within one minute.
    let hot_clock = ManualClock::new(end());
    let hot = Ledger::new(LedgerConfig::default(), Arc::new(hot_clock), PriceBook::builtin());
    let mut feed: Vec<CallRecord> = records[..1_000].to_vec();
    for r in &mut feed {
        r.timestamp = end();
    }
    let mut i = 0;
    let mut g = c.benchmark_group("ingest");
    g.sample_size(50);
    g.bench_function("ledger_call", |b| {
        b.iter(|| {
            hot.ingest_call(&feed[i % feed.len()]);
            i += 1;
        })
    });
    g.finish();

    let stats = ledger.stats();
    println!(
        "\nledger after {CALLS} calls: {} entries (limit {}), buckets {:?}",
        stats.series.total, stats.series_limit, stats.buckets
    );
    println!("ingest: {ingest_ns:.0} ns per call over the whole feed (23 calls a minute: per-minute costs dominate)");
    if let Some(n) = median_ns("ingest", "ledger_call") {
        println!("ingest: {n:.0} ns per call in steady state (ingest/ledger_call)");
    }
    // Rows of the one table `scripts/bench.sh` prints (markdown; the same columns as benches/capture.rs).
    println!("\n| bench | baseline | figure | ratio | target |\n|---|---|---|---|---|");
    match (median_ns("summary_30d", "scan_records"), median_ns("summary_30d", "ledger")) {
        (Some(b), Some(w)) => println!(
            "| 30-day summary over 1M calls | {:.2} ms (fold over the records) | {:.2} ms | {:.3}x | <= 50 ms: {} |",
            b / 1e6,
            w / 1e6,
            w / b,
            if w <= 50e6 { "met" } else { "MISSED" }
        ),
        _ => println!(
            "| 30-day summary over 1M calls | (no figures from this run: run without --test or a filter) | | | |"
        ),
    }
    for (group, what) in [
        ("efficiency_30d", "30-day efficiency report"),
        ("cache_30d", "30-day cache report"),
        ("anomalies_30d", "30-day anomalies"),
        ("forecast", "forecast"),
    ] {
        if let Some(w) = median_ns(group, "ledger") {
            println!("| {what} (reference) | - | {:.2} ms | - | - |", w / 1e6);
        }
    }
    if let Some(w) = median_ns("anomalies_spiky", "ledger") {
        println!(
            "| 7-day anomalies, {found} to attribute ({spiky_calls} calls; reference) | - | {:.2} ms | - | - |",
            w / 1e6
        );
    }
}

/// A week of a call every 3 s, then three days of one a second: hours and days of 3x traffic to attribute.
fn spiky_ledger() -> (Ledger, u64) {
    let book = PriceBook::builtin();
    let start = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let end = start + Duration::days(10);
    let clock = ManualClock::new(start);
    let ledger = Ledger::new(LedgerConfig::default(), Arc::new(clock.clone()), book.clone());
    let sessions: Vec<Arc<str>> = (0..100_000).map(|i| Arc::from(format!("session-{i:06}"))).collect();
    let users: Vec<Arc<str>> = (0..5_000).map(|i| Arc::from(format!("user-{i}"))).collect();
    let model: Arc<str> = Arc::from("claude-sonnet-4-5");
    let provider: Arc<str> = Arc::from("anthropic");
    let tokens = TokenUsage { input: 500, output: 200, ..TokenUsage::default() };
    let cost = book.price(&model, &tokens, None, None);
    let (mut t, mut i) = (start, 0u64);
    while t < end {
        let rec = CallRecord {
            timestamp: t,
            duration_us: 1_000,
            time_to_first_token_us: None,
            model: Some(model.clone()),
            provider: Some(provider.clone()),
            operation: None,
            request_id: None,
            streaming: None,
            service_tier: None,
            speed: None,
            inference_geo: None,
            tokens,
            web_search_requests: 0,
            metered: true,
            outcome: Outcome::Ok,
            dimensions: Dimensions {
                session: Some(sessions[(i % 100_000) as usize].clone()),
                user: Some(users[(i % 5_000) as usize].clone()),
                ..Dimensions::default()
            },
            cost: cost.clone(),
        };
        clock.set(t);
        ledger.ingest_call(&rec);
        t += Duration::seconds(if (t - start).num_days() >= 7 { 1 } else { 3 });
        i += 1;
    }
    clock.set(end);
    (ledger, i)
}
