//! A journal whose writes keep failing warns once, then at most once a minute: a disk that stays full fails
//! hundreds of rounds a second, and a warning each would flood the log (often on that same disk). When writes work
//! again, that is said once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokenmeter::{FsyncPolicy, JournalConfig, ManualClock, TokenMeter};
use tracing::info_span;
use tracing_subscriber::prelude::*;

/// Counts WARN events of target `tokenmeter::journal`, and keeps its INFO events' fields.
#[derive(Clone, Default)]
struct Warnings(Arc<AtomicU64>, Arc<Mutex<Vec<String>>>);

/// An event's fields as `name=value` text.
struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let m = event.metadata();
        if m.target() == "tokenmeter::journal" && *m.level() == tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        if m.target() == "tokenmeter::journal" && *m.level() == tracing::Level::INFO {
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            self.1.lock().unwrap().push(fields.0.trim_end().to_owned());
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
    assert_eq!(warnings.1.lock().unwrap().len(), 0, "nothing works again yet");

    // The disk has room again: the next append says so, once, with how many records were lost.
    std::fs::remove_dir(dir.path().join("tokenmeter-2026-03-14.jsonl")).unwrap();
    for _ in 0..3 {
        tracing::dispatcher::with_default(&layer, || {
            let _c = info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 1u64).entered();
        });
        meter.flush().unwrap();
    }
    assert_eq!(meter.journal_stats().unwrap().written, 3);
    assert_eq!(*warnings.1.lock().unwrap(), ["message=journal writes work again failed_records=50"]);
}
