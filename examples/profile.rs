//! The bench's LLM call in a loop, for counting instructions under callgrind: `scripts/callgrind.sh` runs it.
//!
//! Each call is `benches/capture.rs`' `llm_call` (the same code: `benches/support/pipeline.rs`) inside a
//! long-lived session span, through a registry with the meter's layer and the parts asked for on, built as the
//! bench builds them. Pricing and the per-model totals are always on.
//!
//! Parts: `full` (ledger, OTLP instruments on an SDK meter provider that does not export during the run, two
//! budgets: the bench's full pipeline without the journal, whose writer thread callgrind would run on the same
//! core), `capture` (nothing else), `ledger`, `otlp`, `budgets` (that part alone), `bare` (no tokenmeter: the
//! registry alone), `floor` (no tokenmeter: the least a layer can do to capture the call, `FloorLayer`), and
//! `journal` (the full pipeline plus the journal, into `$TMPDIR`; for `perf`, not
//! callgrind: the writer thread's work is counted there only when it gets scheduled).
//!
//! A count per call is the difference of two runs' totals divided by the difference of their calls, so that
//! start-up and shutdown cancel out: `(Ir(40,000) - Ir(20,000)) / 20,000`.
//!
//! Usage: `cargo run --release --example profile -- CALLS [full|capture|ledger|otlp|budgets|bare|floor|journal]`

#[path = "../benches/support/pipeline.rs"]
mod pipeline;

use pipeline::{FloorLayer, Parts, llm_call, meter_with, session_span_of};
use tracing_subscriber::prelude::*;

/// `PROFILE_THREADS=N`: `N` threads each record `CALLS` calls in their own session at once, and the wall time
/// per call over all of them is printed (for `perf` and for scaling; callgrind runs one thread at a time). Not
/// for `bare` and `floor`, which run on the main thread.
fn threads() -> Option<u64> {
    std::env::var("PROFILE_THREADS").ok().and_then(|t| t.parse().ok()).map(|t: u64| t.max(1))
}

fn on_threads(dispatch: &tracing::Dispatch, threads: u64, n: u64) {
    let elapsed = pipeline::calls_on_threads(Some(dispatch), threads, n);
    let per_call = elapsed.as_nanos() / u128::from(threads * n).max(1);
    eprintln!("{threads} threads x {n} calls: {per_call}ns wall time a call");
}

fn calls(n: u64) {
    let session = session_span_of("sess-7f3a9c");
    let _s = session.enter();
    for _ in 0..n {
        llm_call();
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = match args.next().map(|s| s.parse()) {
        Some(Ok(n)) => n,
        _ => {
            eprintln!("usage: profile CALLS [full|capture|ledger|otlp|budgets|bare|floor|journal]");
            std::process::exit(2);
        }
    };
    let which = args.next().unwrap_or_else(|| "full".into());
    if which == "floor" {
        let tokens = std::sync::Arc::default();
        let registry = tracing_subscriber::registry().with(FloorLayer { tokens: std::sync::Arc::clone(&tokens) });
        tracing::subscriber::with_default(registry, || calls(n));
        eprintln!("{} tokens seen", tokens.load(std::sync::atomic::Ordering::Relaxed));
        return;
    }
    let parts = match which.as_str() {
        "full" => Parts { journal: false, ..Parts::FULL },
        "capture" => Parts::CAPTURE,
        "ledger" => Parts::LEDGER,
        "otlp" => Parts::OTLP_ONLY,
        "budgets" => Parts::BUDGETS,
        "bare" => Parts::NONE,
        "journal" => Parts::FULL,
        other => {
            eprintln!("unknown parts {other:?}: full, capture, ledger, otlp, budgets, bare, floor or journal");
            std::process::exit(2);
        }
    };
    if !parts.layer {
        tracing::subscriber::with_default(tracing_subscriber::registry(), || calls(n));
        return;
    }
    let dir = std::env::temp_dir().join(format!("tokenmeter-profile-{}", std::process::id()));
    let meter = meter_with(parts, &dir);
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(meter.layer()));
    match threads() {
        None => tracing::dispatcher::with_default(&dispatch, || calls(n)),
        Some(t) => on_threads(&dispatch, t, n),
    }
    if parts.journal {
        // Everything queued written, then the writer thread's CPU time so far (Linux: /proc).
        let _ = meter.flush();
        if let (Some(cpu), Some(j)) = (writer_cpu_secs(), meter.journal_stats()) {
            let per = |s: f64| s * 1e9 / j.written.max(1) as f64;
            eprintln!(
                "journal writer: {:.0} ns user + {:.0} ns system a record written ({:.2} s + {:.2} s)",
                per(cpu.0),
                per(cpu.1),
                cpu.0,
                cpu.1
            );
        }
    }
    let _ = meter.shutdown();
    let totals = meter.total_usage();
    eprintln!("{} calls recorded, {} priced", totals.calls, totals.calls - totals.unpriced_calls);
    if let Some(j) = meter.journal_stats() {
        eprintln!("journal: {} written, {} dropped", j.written, j.dropped);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The journal writer thread's user and system CPU seconds, from `/proc/self/task/*/stat` (Linux only).
fn writer_cpu_secs() -> Option<(f64, f64)> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("tokenmeter-jour") {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        // After the command's closing parenthesis come fields 3 (state) onwards: utime is field 14, stime 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = 100.0; // USER_HZ on Linux
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        return Some((utime / ticks, stime / ticks));
    }
    None
}
