//! Exports that stop working are logged: one WARN at the first failure (not one per export), with the export's
//! own error, and an INFO when a collector answers again. Flush and shutdown errors carry the export's error.
//! Its own test binary: it installs a global subscriber, which the SDK's reader thread logs through.
#![cfg(feature = "otlp")]

mod otlp_workload;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokenmeter::TokenMeter;
use tokenmeter::export::otlp::{OtlpConfig, Protocol};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;

/// `(level, message and fields)` of every event of target `tokenmeter::export`. With a meter in `react`, a
/// WARN makes it flush and shut the meter down from the thread that logged it (the SDK's reader thread), and
/// keeps what they returned in `reactions`.
#[derive(Clone, Default)]
struct Seen {
    events: Arc<Mutex<Vec<(tracing::Level, String)>>>,
    react: Arc<std::sync::OnceLock<TokenMeter>>,
    reactions: Arc<Mutex<Vec<String>>>,
}

struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "tokenmeter::export" {
            let mut text = Text(String::new());
            event.record(&mut text);
            self.events.lock().push((*event.metadata().level(), text.0));
            if let (Some(meter), true) = (self.react.get(), *event.metadata().level() == tracing::Level::WARN) {
                let flushed = meter.flush_metrics().map_err(|e| e.to_string());
                let shut = meter.shutdown().map_err(|e| e.to_string());
                self.reactions.lock().push(format!("{flushed:?} / {shut:?}"));
            }
        }
    }
}

impl Seen {
    fn count(&self, level: tracing::Level) -> usize {
        self.events.lock().iter().filter(|(l, _)| *l == level).count()
    }

    fn wait_for(&self, level: tracing::Level, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.count(level) < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn failed_exports_are_logged_once_and_the_recovery_too() {
    let seen = Seen::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(seen.clone())).expect("global");

    // A port nothing listens on yet; a collector stand-in takes it later.
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let config = OtlpConfig::new()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_protocol(Protocol::HttpProtobuf)
        .with_interval(Duration::from_millis(100))
        .with_timeout(Duration::from_millis(500))
        .with_header("authorization", "Bearer sekrit-token")
        .ignore_env();
    let meter = TokenMeter::builder().with_otlp(config).expect("config").build();
    let _ = seen.react.set(meter.clone());
    otlp_workload::run(&meter);

    let err = meter.flush_metrics().expect_err("nothing listens");
    let status = meter.export_status().expect("exporting");
    let cause = status.last_error.clone().expect("the export's error");
    assert!(err.to_string().contains(&cause), "the flush error says why: {err} / {cause}");
    // Several periodic exports fail; the log says so once.
    let deadline = Instant::now() + Duration::from_secs(20);
    while meter.export_status().expect("exporting").failures < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(meter.export_status().expect("exporting").failures >= 5);
    assert_eq!(seen.count(tracing::Level::WARN), 1, "{:?}", seen.events.lock());
    {
        let events = seen.events.lock();
        let warning = &events[0].1;
        assert!(warning.contains("OTLP metrics export failed"), "{warning}");
        assert!(warning.contains(&format!("127.0.0.1:{port}")), "names the target: {warning}");
        assert!(warning.contains("failed_in_a_row=1"), "{warning}");
        assert!(!warning.contains("sekrit"), "never a header value: {warning}");
    }
    assert_eq!(seen.count(tracing::Level::INFO), 0);
    // The subscriber that flushed and shut down from the reader thread got errors, not a thread waiting on
    // itself (which would have stopped every later export, and this test, for ever).
    {
        let reactions = seen.reactions.lock();
        assert_eq!(reactions.len(), 1, "{reactions:?}");
        assert_eq!(reactions[0].matches("called on the metrics export thread").count(), 2, "{reactions:?}");
    }

    // The collector comes up: the next export works, and the log says so once.
    let server = tiny_http::Server::http(format!("127.0.0.1:{port}")).expect("collector stand-in");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(50)) {
                    let _ = req.respond(tiny_http::Response::empty(200));
                }
            }
        })
    };
    seen.wait_for(tracing::Level::INFO, 1);
    meter.flush_metrics().expect("the collector answers");
    assert_eq!(seen.count(tracing::Level::INFO), 1, "{:?}", seen.events.lock());
    assert!(seen.events.lock().iter().any(|(l, t)| *l == tracing::Level::INFO && t.contains("works again")));
    assert_eq!(seen.count(tracing::Level::WARN), 1, "no new warning while exports work");
    meter.shutdown().expect("the final export goes through");

    // A pipeline whose first export is delivered says so once: where metrics go.
    let fresh = TokenMeter::builder()
        .with_otlp(
            OtlpConfig::new()
                .with_endpoint(format!("http://127.0.0.1:{port}"))
                .with_protocol(Protocol::HttpProtobuf)
                .with_interval(Duration::from_secs(3600))
                .ignore_env(),
        )
        .expect("config")
        .build();
    otlp_workload::run(&fresh);
    fresh.flush_metrics().expect("the collector answers");
    fresh.flush_metrics().expect("the collector answers");
    let works: Vec<String> = seen
        .events
        .lock()
        .iter()
        .filter(|(l, t)| *l == tracing::Level::INFO && t.contains("OTLP metrics export works: the first export"))
        .map(|(_, t)| t.clone())
        .collect();
    assert_eq!(works.len(), 1, "once, not per export: {works:?}");
    assert!(works[0].contains(&format!("127.0.0.1:{port}/v1/metrics")), "names the target: {works:?}");
    fresh.shutdown().expect("the final export goes through");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    collector.join().expect("collector thread");
}
