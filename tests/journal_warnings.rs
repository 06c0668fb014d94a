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

/// The messages of INFO events of target `tokenmeter::journal`.
#[derive(Clone, Default)]
struct Infos(Arc<std::sync::Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Infos {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message<'a>(&'a mut String);
        impl tracing::field::Visit for Message<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    *self.0 = format!("{value:?}");
                }
            }
        }
        let m = event.metadata();
        if m.target() == "tokenmeter::journal" && *m.level() == tracing::Level::INFO {
            let mut text = String::new();
            event.record(&mut Message(&mut text));
            self.0.lock().unwrap().push(text);
        }
    }
}

#[test]
fn retention_says_which_day_files_it_deleted() {
    // Deletions were seen only as a count in `files_removed`: a clock that was wrong left no trace of the days
    // it cost.
    let dir = tempfile::tempdir().unwrap();
    for day in ["2025-10-01", "2025-10-02", "2025-10-03", "2026-03-10", "2026-03-13"] {
        std::fs::write(dir.path().join(format!("tokenmeter-{day}.jsonl")), b"\n").unwrap();
    }
    let clock = ManualClock::new(chrono::DateTime::parse_from_rfc3339("2026-03-14T09:00:00Z").unwrap().to_utc());
    let infos = Infos::default();
    let meter = tracing::subscriber::with_default(tracing_subscriber::registry().with(infos.clone()), || {
        TokenMeter::builder()
            .with_clock(clock)
            .with_journal(
                JournalConfig::new(dir.path())
                    .with_max_age(Some(std::time::Duration::from_secs(90 * 86_400)))
                    .with_max_total_bytes(Some(1)),
            )
            .try_build()
            .unwrap()
    });
    assert_eq!(meter.journal_stats().unwrap().files_removed, 4);
    let infos = infos.0.lock().unwrap();
    assert_eq!(
        infos.as_slice(),
        [
            "journal retention deleted 3 day file(s) older than the age limit of 90 day(s) (2025-10-01 to 2025-10-03)",
            "journal retention deleted 1 day file(s) to keep the journal under 1 bytes (2026-03-10)"
        ]
    );
}
