//! Starting up over a month of journal: what `try_build()` costs when the journal replays 1M calls.
//!
//! A meter with a journal replays it when it is built, on the building thread, before `try_build()` returns:
//! every call of the kept files (90 days by default) goes back into the totals, the budgets and the ledger. This
//! bench writes a month of traffic (1M calls over 30 days, 100k sessions of 10 turns, 5,000 users, 50 projects,
//! 10 agents, 3 models, prompt caching: the traffic of `examples/memory.rs`) through a meter's journal, then in
//! rotated rounds:
//! - `read`: the baseline, [`tokenmeter::journal::read`] over the same directory: opening, reading and decoding
//!   every line into a `CallRecord`, what any replay must do;
//! - `build`: `TokenMeter::builder().with_journal(..).try_build()` with the ledger and two budgets (those of
//!   `examples/memory.rs`): the read plus pricing, totals, budgets and the ledger's ingest.
//!
//! It prints the journal's size, each side's median over the rounds (with quartiles), records a second, and
//! the ratio `build / read`. There is no target in issue 8 for this; it is here so that README "Performance"
//! can say what a restart costs.
//!
//! What profiling taught (2026-12-05, `perf record -e cpu-clock`, and each part decoded alone in a loop): a line
//! decodes in ~1,700 ns in a loop (~2,600 ns a record over the files), of which the cost object's seven money
//! fields are ~600 ns (serde_json reads a `u128` by pushing its digits into a `String`, then parsing it), the
//! dimensions ~210, the tokens ~140, the timestamp ~150 (chrono's parser); the meter's own work per record
//! (pricing, totals, budgets, the ledger's ingest) ~1,400 ns. So decoding moved to a thread of its own, the
//! building thread ingesting batches of 256 records as they come: `build` 4,031 ms (read alone 2,627 ms, one
//! thread) -> 3,247 ms; then `Arc<str>` fields read without serde's intermediate `String` (one allocation and
//! copy instead of two): 3,067 ms. The decoding thread now bounds it (`build` ~1.05x `read`). Left: a faster
//! `u128` read needs serde_json's help or a hand-written line parser (the writer already encodes by hand).
//!
//! Run: `cargo bench --bench replay` (about a minute after the build; `./scripts/bench.sh` runs it too).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use tokenmeter::budget::{Budget, BudgetLimit, BudgetPeriod, BudgetScope};
use tokenmeter::journal::{FsyncPolicy, JournalConfig};
use tokenmeter::{ManualClock, TokenMeter, TokenMeterBuilder};
use tracing_subscriber::prelude::*;

const CALLS: u64 = 1_000_000;
const SESSIONS: u64 = 100_000;
const ROUNDS: usize = 5;
#[path = "support/month.rs"]
mod month;

fn journal(dir: &Path) -> JournalConfig {
    JournalConfig::new(dir).with_fsync(FsyncPolicy::Never).with_queue_capacity(JournalConfig::MAX_QUEUE_CAPACITY)
}

fn with_budgets(builder: TokenMeterBuilder) -> TokenMeterBuilder {
    builder
        .with_budget(Budget::new("monthly", BudgetLimit::usd(1e9).expect("limit")).with_period(BudgetPeriod::Month))
        .with_budget(
            Budget::new("project-7", BudgetLimit::tokens(u64::MAX / 4))
                .with_scope(BudgetScope::project("project-7"))
                .with_period(BudgetPeriod::Day),
        )
}

/// Records the month through a meter with a journal; returns the clock at its end.
fn write_month(dir: &Path) -> ManualClock {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).single().expect("date"));
    let step = chrono::Duration::nanoseconds((30 * 86_400 * 1_000_000_000 / CALLS) as i64);
    let meter = with_budgets(TokenMeter::builder().with_clock(clock.clone()).with_journal(journal(dir)))
        .try_build()
        .expect("journal directory");
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        month::record_month(&clock, CALLS, SESSIONS, step, |done| {
            // The queue holds 131,072 records: flushing every 50,000 keeps every one.
            if done.is_multiple_of(50_000) {
                meter.flush().expect("journal written, nothing dropped");
            }
        })
    });
    meter.flush().expect("journal written, nothing dropped");
    let stats = meter.journal_stats().expect("journal");
    assert_eq!((stats.written, stats.dropped), (CALLS, 0), "{stats:?}");
    clock
}

fn quartiles(mut xs: Vec<Duration>) -> (f64, f64, f64) {
    xs.sort();
    let at = |q: usize| xs[(xs.len() - 1) * q / 4].as_secs_f64() * 1e3;
    (at(1), at(2), at(3))
}

fn main() {
    // `cargo bench` passes `--bench`; nothing here takes arguments.
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let clock = write_month(dir.path());
    let written = started.elapsed();
    let (mut files, mut bytes) = (0u64, 0u64);
    for entry in std::fs::read_dir(dir.path()).expect("journal dir") {
        let meta = entry.expect("entry").metadata().expect("metadata");
        if meta.is_file() {
            files += 1;
            bytes += meta.len();
        }
    }
    println!(
        "journal: {CALLS} calls in {files} day files, {:.1} MB ({:.0} bytes a call); written in {:.1} s",
        bytes as f64 / 1e6,
        bytes as f64 / CALLS as f64,
        written.as_secs_f64()
    );

    let (mut reads, mut builds) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Rotated: a slow spell on this shared machine falls on both sides across the rounds.
        for side in [round % 2, (round + 1) % 2] {
            if side == 0 {
                let t = Instant::now();
                let mut calls = 0u64;
                let report = tokenmeter::journal::read(dir.path(), |r| {
                    black_box(&r);
                    calls += 1;
                })
                .expect("read");
                reads.push(t.elapsed());
                assert_eq!((calls, report.skipped_lines), (CALLS, 0));
            } else {
                let t = Instant::now();
                let meter =
                    with_budgets(TokenMeter::builder().with_clock(clock.clone()).with_journal(journal(dir.path())))
                        .try_build()
                        .expect("replayed");
                builds.push(t.elapsed());
                assert_eq!(meter.total_usage().calls, CALLS);
                assert_eq!(meter.journal_stats().expect("journal").replay.records, CALLS);
                // Dropped outside the timing: its (idle) writer thread stops.
                drop(meter);
            }
        }
    }
    let (r1, r2, r3) = quartiles(reads);
    let (b1, b2, b3) = quartiles(builds);
    println!("replay/read  (baseline: journal::read, decode only): {r2:.0} ms [{r1:.0}, {r3:.0}]");
    println!("replay/build (try_build: totals, budgets, ledger):    {b2:.0} ms [{b1:.0}, {b3:.0}]");
    println!(
        "replay: {:.0} records a second; build over read {:.2}x; {:.2} us a record",
        CALLS as f64 / (b2 / 1e3),
        b2 / r2,
        b2 * 1e3 / CALLS as f64
    );
    // The row `scripts/bench.sh` puts in its table.
    println!(
        "| restart: `try_build()` replaying a 30-day journal, 1M calls ({:.0} MB) | {r2:.0} ms (`journal::read`, decode \
         only) | {b2:.0} ms [{b1:.0}, {b3:.0}] ({:.0}k records/s) | {:.2}x | none (reported) |",
        bytes as f64 / 1e6,
        CALLS as f64 / (b2 / 1e3) / 1e3,
        b2 / r2
    );
}
