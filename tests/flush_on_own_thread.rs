//! A subscriber that flushes in reaction to tokenmeter's own warnings runs on the thread that would do the
//! flushing (the journal's writer, the webhook's delivery thread): the flush must return, not wait on itself.
//! One test in this file: it sets the global subscriber, which those threads log through.
#![cfg(feature = "webhook")]

use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokenmeter::budget::{Budget, BudgetLimit, WebhookConfig};
use tokenmeter::{FsyncPolicy, JournalConfig, ManualClock, TokenMeter};
use tracing::info_span;
use tracing_subscriber::prelude::*;

/// What the reacting subscriber saw: which warning, and what the flush it made returned.
type Outcome = (&'static str, String);

/// Flushes the meter in `METER` on the journal's and the webhook's warnings, and reports what the flush returned.
struct FlushOnWarning(Mutex<Sender<Outcome>>);

static METER: OnceLock<TokenMeter> = OnceLock::new();
/// Another meter, with a journal that works: the first one's writer thread may flush it.
static OTHER: OnceLock<TokenMeter> = OnceLock::new();

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for FlushOnWarning {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let m = event.metadata();
        let Some(meter) = METER.get() else { return };
        if *m.level() != tracing::Level::WARN {
            return;
        }
        let outcome = match m.target() {
            "tokenmeter::journal" => {
                let other = OTHER.get().map(|o| format!("{:?}", o.flush()));
                let _ = self.0.lock().unwrap().send(("other journal", other.unwrap_or_default()));
                ("journal", format!("{:?}", meter.flush()))
            }
            "tokenmeter::budget" => ("webhook", format!("{:?}", meter.flush_webhook(Duration::MAX))),
            _ => return,
        };
        let _ = self.0.lock().unwrap().send(outcome);
    }
}

#[test]
fn a_flush_made_on_the_flushing_thread_returns() {
    let (tx, rx) = channel();
    let layer = FlushOnWarning(Mutex::new(tx));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(chrono::DateTime::parse_from_rfc3339("2026-03-14T09:00:00Z").unwrap().to_utc());
    // A directory where the day's file should be: every append fails, and the writer warns.
    std::fs::create_dir(dir.path().join("tokenmeter-2026-03-14.jsonl")).unwrap();
    // A hook that closes every connection unanswered: every post fails, and the delivery thread warns. The first
    // is held until the call below has queued all four alerts (a port nothing listened on failed the first post
    // before the next alert was queued, now and then, and that warning's flush found nothing queued).
    let hook_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", hook_listener.local_addr().unwrap());
    let (release, released) = channel::<()>();
    std::thread::spawn(move || {
        for (n, conn) in hook_listener.incoming().enumerate() {
            if n == 0 {
                let _ = released.recv_timeout(Duration::from_secs(30));
            }
            drop(conn);
        }
    });
    let hook = WebhookConfig::new(url).with_timeout(Duration::from_secs(20)).with_max_retries(0);
    let meter = TokenMeter::builder()
        .with_clock(clock)
        .with_journal(JournalConfig::new(dir.path()).with_fsync(FsyncPolicy::EveryRecord).with_replay(false))
        .with_budget(Budget::new("team", BudgetLimit::usd(1.0).unwrap()).with_thresholds([10, 20, 30, 40]))
        .with_webhook(hook)
        .try_build()
        .unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other = TokenMeter::builder().with_journal(JournalConfig::new(other_dir.path())).try_build().unwrap();
    OTHER.set(other).unwrap();
    METER.set(meter.clone()).unwrap();

    let recording = tracing::Dispatch::new(tracing_subscriber::registry().with(meter.layer()));
    tracing::dispatcher::with_default(&recording, || {
        // $0.45 on haiku-4-5 ($1 a million input tokens): four thresholds crossed, four alerts queued at once.
        let _call = info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 450_000u64).entered();
    });
    release.send(()).unwrap();

    let mut seen = Vec::new();
    while !(seen.iter().any(|(what, _)| *what == "journal") && seen.iter().any(|(what, _)| *what == "webhook")) {
        // Before the fix each flush waited on its own thread for ever, and nothing came.
        let outcome = rx.recv_timeout(Duration::from_secs(30)).expect("a flush on its own thread returned");
        seen.push(outcome);
    }
    let journal = seen.iter().find(|(what, _)| *what == "journal").unwrap();
    assert_eq!(journal.1, "Err(OnWriterThread)", "{seen:?}");
    let other = seen.iter().find(|(what, _)| *what == "other journal").unwrap();
    assert_eq!(other.1, "Ok(())", "another meter's journal flushes from this writer thread: {seen:?}");
    let webhook = seen.iter().find(|(what, _)| *what == "webhook").unwrap();
    assert_eq!(webhook.1, "false", "alerts still queued, none deliverable while the delivery thread waits: {seen:?}");
    // Five alerts (four thresholds and the projected overrun), a warning for each failed post, made after the
    // failure is counted: each warning's flush finds later alerts queued (false at once, on its own thread), the
    // last one's finds none left (true).
    while seen.iter().filter(|(what, _)| *what == "webhook").count() < 5 {
        seen.push(rx.recv_timeout(Duration::from_secs(30)).expect("a warning per alert"));
    }
    let webhook: Vec<&str> = seen.iter().filter(|(what, _)| *what == "webhook").map(|(_, r)| r.as_str()).collect();
    assert_eq!(webhook, ["false", "false", "false", "false", "true"], "{seen:?}");

    // The threads were not stuck: the application's own flushes return (the journal reports the failed writes).
    let (done_tx, done_rx) = channel();
    let app = meter.clone();
    std::thread::spawn(move || {
        let journal = app.flush();
        let webhook = app.flush_webhook(Duration::from_secs(20));
        let _ = done_tx.send((journal.is_err(), webhook));
    });
    let (journal_failed, webhook_done) = done_rx.recv_timeout(Duration::from_secs(60)).expect("the flushes returned");
    assert!(journal_failed, "every append failed");
    assert!(webhook_done, "every alert was given up");
}
