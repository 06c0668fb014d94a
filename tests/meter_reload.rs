//! Swapping meters through a `reload` layer under the global default (its own test binary: a process sets its
//! global default once). tracing-subscriber drops the old layer inside `reload`'s write lock, and every span and
//! event in the process waits on that lock: dropping a meter's last handle there used to wait for its journal
//! writer, whose own warning needed the same lock (a deadlock).

use std::sync::Arc;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use parking_lot::Mutex;
use tokenmeter::journal::{FsyncPolicy, JournalConfig};
use tokenmeter::{ManualClock, TokenMeter};
use tracing::info_span;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{Layer, reload};

/// The messages of the `tokenmeter::journal` warnings the process emitted.
#[derive(Clone, Default)]
struct JournalWarnings(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> Layer<S> for JournalWarnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "tokenmeter::journal" {
            struct Message<'a>(&'a mut String);
            impl tracing::field::Visit for Message<'_> {
                fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                    if field.name() == "message" {
                        *self.0 = format!("{value:?}");
                    }
                }
            }
            let mut message = String::new();
            event.record(&mut Message(&mut message));
            self.0.lock().push(message);
        }
    }
}

fn call(model: &str) {
    let _call =
        info_span!("chat", gen_ai.request.model = model, input_tokens = 1000u64, output_tokens = 10u64).entered();
}

#[test]
fn meters_swap_through_reload_and_a_dropped_meter_never_holds_the_process() {
    let warnings = JournalWarnings::default();
    let projects: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let seen = projects.clone();
    let first = TokenMeter::builder().build();
    let (layer, handle) = reload::Layer::new(first.layer());
    tracing_subscriber::registry().with(layer).with(warnings.clone()).init();

    let session = info_span!("session", session.id = "s-1", project = "checkout");
    session.in_scope(|| call("claude-haiku-4-5"));
    assert_eq!(first.total_usage().calls, 1);

    // The swap the README recommends: the old meter's handle kept, so the drop in the lock is a count.
    let second = TokenMeter::builder()
        .on_call(move |c| seen.lock().push(c.dimensions.project.as_deref().map(str::to_owned)))
        .build();
    handle.reload(second.layer()).unwrap();
    session.in_scope(|| call("claude-haiku-4-5"));
    call("claude-haiku-4-5");
    assert_eq!(first.total_usage().calls, 1, "the old meter no longer sees calls");
    assert_eq!(second.total_usage().calls, 2);
    // The session span opened before the swap: the new meter never saw it, so it gives that call no project.
    assert_eq!(*projects.lock(), [None, None]);
    session.in_scope(|| info_span!("step", project = "search").in_scope(|| call("claude-haiku-4-5")));
    assert_eq!(projects.lock().last(), Some(&Some("search".to_owned())), "a span opened after the swap does");
    first.shutdown().unwrap();
    drop(first);

    // A meter whose journal cannot write (a directory where today's file goes), swapped out holding its last
    // handle with a record still queued: the writer fails that write during the drop, inside `reload`'s lock,
    // and warns; the warning waits for the lock. The idle writer also wakes on its own (every 100 ms at most):
    // should it take the record before the swap, the warning comes with the lock free and this attempt shows
    // nothing, so it is tried again.
    for attempt in 1.. {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 28, 9, 0, 0).unwrap());
        std::fs::create_dir(dir.path().join("tokenmeter-2026-03-28.jsonl")).unwrap();
        let journaled = TokenMeter::builder()
            .with_clock(clock)
            .with_journal(JournalConfig::new(dir.path()).with_fsync(FsyncPolicy::EveryRecord))
            .try_build()
            .unwrap();
        handle.reload(journaled.layer()).unwrap();
        let next = TokenMeter::builder().build().layer();
        let warned_before = warnings.0.lock().len();
        // Long enough for the idle writer's sleep to grow to its longest (100 ms).
        std::thread::sleep(Duration::from_millis(400));
        call("claude-haiku-4-5");
        assert_eq!(journaled.total_usage().calls, 1);
        drop(journaled);

        let (done_tx, done_rx) = channel();
        let swapper = handle.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            swapper.reload(next).unwrap();
            let _ = done_tx.send(started.elapsed());
        });
        let Ok(took) = done_rx.recv_timeout(Duration::from_secs(30)) else {
            // A panic would unwind into span drops that wait on the same lock: end the process instead.
            eprintln!("the swap never returned: the dropped meter waited for its writer, which waited for the swap");
            std::process::exit(1);
        };
        // The default lock timeout (5 s) and a second.
        assert!(took <= Duration::from_secs(8), "{took:?}");
        // The writer, let go, finishes: its warning arrives once the lock is free.
        let deadline = Instant::now() + Duration::from_secs(10);
        while warnings.0.lock().len() == warned_before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(warnings.0.lock()[warned_before..], ["journal write failed"]);
        if took >= tokenmeter::journal::DROP_WAIT - Duration::from_millis(100) {
            break;
        }
        assert!(attempt < 3, "the writer took the record before the swap in {attempt} attempts");
    }
}
