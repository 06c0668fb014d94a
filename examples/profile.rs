//! The bench's LLM call in a loop, for counting instructions under callgrind: `scripts/callgrind.sh` runs it.
//!
//! Each call is `benches/capture.rs`' `llm_call` (the same code: `benches/support/pipeline.rs`) inside a
//! long-lived session span, through a registry with the meter's layer and the parts asked for on, built as the
//! bench builds them. Pricing and the per-model totals are always on.
//!
//! Parts: `full` (ledger, OTLP instruments on an SDK meter provider that does not export during the run, two
//! budgets: the bench's full pipeline without the journal, whose writer thread callgrind would run on the same
//! core), `capture` (nothing else), `ledger`, `otlp`, `budgets` (that part alone), `bare` (no tokenmeter: the
//! registry alone), and `journal` (the full pipeline plus the journal, into `$TMPDIR`; for `perf`, not
//! callgrind: the writer thread's work is counted there only when it gets scheduled).
//!
//! A count per call is the difference of two runs' totals divided by the difference of their calls, so that
//! start-up and shutdown cancel out: `(Ir(40,000) - Ir(20,000)) / 20,000`.
//!
//! Usage: `cargo run --release --example profile -- CALLS [full|capture|ledger|otlp|budgets|bare|journal]`

#[path = "../benches/support/pipeline.rs"]
mod pipeline;

use pipeline::{Parts, llm_call, meter_with, session_span_of};
use tracing_subscriber::prelude::*;

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
            eprintln!("usage: profile CALLS [full|capture|ledger|otlp|budgets|bare|journal]");
            std::process::exit(2);
        }
    };
    let parts = match args.next().as_deref().unwrap_or("full") {
        "full" => Parts { journal: false, ..Parts::FULL },
        "capture" => Parts::CAPTURE,
        "ledger" => Parts::LEDGER,
        "otlp" => Parts::OTLP_ONLY,
        "budgets" => Parts::BUDGETS,
        "bare" => Parts::NONE,
        "journal" => Parts::FULL,
        other => {
            eprintln!("unknown parts {other:?}: full, capture, ledger, otlp, budgets, bare or journal");
            std::process::exit(2);
        }
    };
    if !parts.layer {
        tracing::subscriber::with_default(tracing_subscriber::registry(), || calls(n));
        return;
    }
    let dir = std::env::temp_dir().join(format!("tokenmeter-profile-{}", std::process::id()));
    let meter = meter_with(parts, &dir);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(meter.layer()), || calls(n));
    let _ = meter.shutdown();
    let totals = meter.total_usage();
    eprintln!("{} calls recorded, {} priced", totals.calls, totals.calls - totals.unpriced_calls);
    if let Some(j) = meter.journal_stats() {
        eprintln!("journal: {} written, {} dropped", j.written, j.dropped);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
