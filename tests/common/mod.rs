//! Shared test helpers: a meter on a manual clock that collects every record.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use parking_lot::Mutex;
use tokenmeter::{CallRecord, ManualClock, RecordSink, TaskRecord, TokenMeter, TokenMeterBuilder, ToolRecord};
use tracing_subscriber::prelude::*;

#[derive(Default, Clone)]
pub struct Collected {
    pub calls: Arc<Mutex<Vec<CallRecord>>>,
    pub tasks: Arc<Mutex<Vec<TaskRecord>>>,
    pub tools: Arc<Mutex<Vec<ToolRecord>>>,
}

impl RecordSink for Collected {
    fn on_call(&self, record: &CallRecord) {
        self.calls.lock().push(record.clone());
    }
    fn on_task(&self, record: &TaskRecord) {
        self.tasks.lock().push(record.clone());
    }
    fn on_tool(&self, record: &ToolRecord) {
        self.tools.lock().push(record.clone());
    }
}

impl Collected {
    pub fn calls(&self) -> Vec<CallRecord> {
        self.calls.lock().clone()
    }
    pub fn only_call(&self) -> CallRecord {
        let calls = self.calls();
        assert_eq!(calls.len(), 1, "expected exactly one call, got {calls:#?}");
        calls.into_iter().next().unwrap()
    }
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 14, 9, 26, 53).unwrap()
}

pub struct Harness {
    pub meter: TokenMeter,
    pub clock: ManualClock,
    pub seen: Collected,
}

impl Harness {
    pub fn new() -> Self {
        Self::with(|b| b)
    }

    pub fn with(configure: impl FnOnce(TokenMeterBuilder) -> TokenMeterBuilder) -> Self {
        let clock = ManualClock::new(t0());
        let seen = Collected::default();
        let meter = configure(TokenMeter::builder().with_clock(clock.clone()).with_sink(seen.clone())).build();
        Harness { meter, clock, seen }
    }

    /// Runs `f` with a registry holding only this meter's layer as the default subscriber.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let subscriber = tracing_subscriber::registry().with(self.meter.layer());
        tracing::subscriber::with_default(subscriber, f)
    }
}

/// Loads one Claude Code session file holding `lines` (one project, `s1.jsonl`) with the built-in prices.
pub fn load_transcript(lines: &str) -> tokenmeter::transcripts::TranscriptLoad {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("projects/-home-dev-test");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("s1.jsonl"), lines).unwrap();
    let files = tokenmeter::transcripts::discover(dir.path()).unwrap();
    tokenmeter::transcripts::TranscriptLoader::new(tokenmeter::PriceBook::builtin()).load(&files)
}

/// The name the test harness knows `test`, a test of the module whose `module_path!()` is `module`, by: what
/// to pass with `--exact` to re-run this test binary on that one test. Inside `tests/integration.rs` that is
/// `<file>::<test>`; in a test binary of its own, `<test>`.
pub fn test_path(module: &str, test: &str) -> String {
    match module.split_once("::") {
        Some((_, inner)) => format!("{inner}::{test}"),
        None => test.to_owned(),
    }
}

/// A local port that takes connections and never answers them (a collector or webhook that hangs): held until the
/// test binary ends.
pub fn silent_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    port
}

/// Collects events with target `tokenmeter::budget`: level, fields, and whether the event is a root event.
#[derive(Clone, Default)]
pub struct BudgetEvents(pub Arc<Mutex<Vec<(tracing::Level, String, bool)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for BudgetEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "tokenmeter::budget" {
            return;
        }
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={:?} ", field.name(), value));
            }
        }
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        self.0.lock().push((*event.metadata().level(), fields.0, event.is_root()));
    }
}
