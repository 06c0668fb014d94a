//! A journal whose writes keep failing warns once, then at most once a minute: a disk that stays full fails
//! hundreds of rounds a second, and a warning each would flood the log (often on that same disk).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokenmeter::{FsyncPolicy, JournalConfig, ManualClock, TokenMeter};
use tracing::info_span;
use tracing_subscriber::prelude::*;

/// Counts WARN events of target `tokenmeter::journal`.
#[derive(Clone, Default)]
struct Warnings(Arc<AtomicU64>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let m = event.metadata();
        if m.target() == "tokenmeter::journal" && *m.level() == tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn failing_writes_warn_once_a_minute_not_once_a_round() {
    let warnings = Warnings::default();
    // The writer thread logs through the global dispatcher.
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(warnings.clone())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(chrono::DateTime::parse_from_rfc3339("2026-03-14T09:00:00Z").unwrap().to_utc());
    // A directory where the day's file should be: every append fails.
    std::fs::create_dir(dir.path().join("tokenmeter-2026-03-14.jsonl")).unwrap();
    let meter = TokenMeter::builder()
        .with_clock(clock)
        .with_journal(JournalConfig::new(dir.path()).with_fsync(FsyncPolicy::EveryRecord).with_replay(false))
        .try_build()
        .unwrap();
    let layer = tracing::Dispatch::new(tracing_subscriber::registry().with(meter.layer()));
    for _ in 0..50 {
        tracing::dispatcher::with_default(&layer, || {
            let _c = info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 1u64).entered();
        });
        // Each flush is a round of its own, and each fails.
        assert!(meter.flush().is_err());
    }
    let stats = meter.journal_stats().unwrap();
    assert_eq!(stats.failed_records, 50);
    assert!(stats.write_errors >= 50, "{stats:?}");
    // (The minute itself, on a clock the test sets: `warning_due`'s unit test in src/journal/writer.rs.)
    assert_eq!(warnings.0.load(Ordering::Relaxed), 1, "one warning for 50 failed rounds");
}
