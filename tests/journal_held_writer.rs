//! A journal writer held up (here: inside a subscriber that blocks on its warning, as a hung disk would hold it
//! in `write`): a flush with a time limit gives up, and what it would have reported is reported by the next one.
//! Its own test binary: the writer thread logs through the global default.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use parking_lot::Mutex;
use tokenmeter::journal::{FsyncPolicy, JournalConfig, JournalError};
use tokenmeter::{ManualClock, TokenMeter};
use tracing::info_span;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;

/// Blocks the thread of any `tokenmeter::journal` event until the gate is open.
struct Gate(Arc<Mutex<()>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Gate {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "tokenmeter::journal" {
            drop(self.0.lock());
        }
    }
}

#[test]
fn a_flush_with_a_time_limit_gives_up_on_a_held_writer_and_loses_nothing() {
    let gate = Arc::new(Mutex::new(()));
    let closed = gate.lock();
    tracing_subscriber::registry().with(Gate(gate.clone())).init();

    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 28, 9, 0, 0).unwrap());
    // A directory where today's file goes: the first write fails, and the writer's warning waits at the gate.
    std::fs::create_dir(dir.path().join("tokenmeter-2026-03-28.jsonl")).unwrap();
    let meter = TokenMeter::builder()
        .with_clock(clock)
        .with_journal(JournalConfig::new(dir.path()).with_fsync(FsyncPolicy::EveryRecord).with_queue_capacity(2))
        .try_build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    let call = || {
        let _call = info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 1000u64).entered();
    };
    tracing::subscriber::with_default(subscriber, || {
        call();
        // The writer takes that record within its longest sleep (100 ms), fails (counted) and waits at the gate.
        let deadline = Instant::now() + Duration::from_secs(10);
        while meter.journal_stats().unwrap().failed_records == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(meter.journal_stats().unwrap().failed_records, 1);
        // Two fill the queue, the third is dropped: the flush below cannot even be queued.
        (0..3).for_each(|_| call());
    });

    let started = Instant::now();
    let err = meter.flush_timeout(Duration::from_millis(300)).expect_err("the writer is held");
    assert!(matches!(err, JournalError::TimedOut { waited } if waited == Duration::from_millis(300)), "{err}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(5), "{took:?}");
    // `shutdown_within` gives the journal what is left of its limit, not `SHUTDOWN_JOURNAL_WAIT` (30 s).
    let started = Instant::now();
    let err = meter.shutdown_within(Duration::from_millis(400)).expect_err("the writer is still held");
    assert!(
        matches!(&err, tokenmeter::ShutdownError::Journal(JournalError::TimedOut { waited })
            if *waited <= Duration::from_millis(400) && *waited >= Duration::from_millis(350)),
        "{err}"
    );
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(350) && took < Duration::from_secs(5), "{took:?}");

    drop(closed);
    // The write failed before the first flush gave up: the next flush says so.
    let err = meter.flush().expect_err("the failed write is reported by the next flush");
    assert!(matches!(err, JournalError::Write(_)), "{err}");
    assert_eq!(meter.journal_stats().unwrap().failed_records, 3);
    assert!(matches!(meter.flush(), Err(JournalError::Dropped { records: 1 })));
    meter.flush().expect("each reported once");
}
