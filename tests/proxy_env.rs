//! The proxy variables (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`): OTLP/HTTP export and the budget webhook
//! follow them to a host elsewhere, and never for this machine. A platform that sets a proxy for every workload,
//! without `NO_PROXY=localhost`, used to send the exports for a collector sidecar on 127.0.0.1 to the proxy, and
//! they were lost as "network error". Its own test binary: it sets the variables.
#![cfg(any(feature = "otlp", feature = "webhook"))]

#[cfg(feature = "webhook")]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

/// A server on 127.0.0.1 noting each request's method and target, and answering all with `status`.
struct Recorder {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    fn start(status: u16) -> Self {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let (seen, stop) = (Arc::<Mutex<Vec<String>>>::default(), Arc::new(AtomicBool::new(false)));
        let (log, stopped) = (Arc::clone(&seen), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let Ok(Some(mut request)) = server.recv_timeout(Duration::from_millis(50)) else { continue };
                let mut body = Vec::new();
                let _ = request.as_reader().read_to_end(&mut body);
                log.lock().push(format!("{} {}", request.method(), request.url()));
                let _ = request.respond(tiny_http::Response::empty(status));
            }
        });
        Recorder { port, seen, stop, thread: Some(thread) }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The proxy every variable names, set once before anything reads the environment.
fn proxy() -> &'static Recorder {
    static PROXY: std::sync::OnceLock<Recorder> = std::sync::OnceLock::new();
    PROXY.get_or_init(|| {
        let proxy = Recorder::start(502);
        let url = format!("http://127.0.0.1:{}", proxy.port);
        for name in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
            // SAFETY: inside the `OnceLock`'s initialiser, which every test runs before anything else (and before
            // starting a thread that could read the environment): no other thread of this binary reads it now.
            unsafe { std::env::set_var(name, &url) };
        }
        for name in ["NO_PROXY", "no_proxy"] {
            // SAFETY: as above.
            unsafe { std::env::remove_var(name) };
        }
        proxy
    })
}

#[cfg(feature = "webhook")]
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(feature = "otlp")]
#[test]
fn otlp_http_export_to_this_machine_never_goes_through_the_proxy() {
    use tokenmeter::TokenMeter;
    use tokenmeter::export::otlp::{OtlpConfig, Protocol};
    use tracing_subscriber::prelude::*;

    let proxy = proxy();
    let export = |endpoint: String| {
        let config = OtlpConfig::new()
            .with_endpoint(endpoint)
            .with_protocol(Protocol::HttpProtobuf)
            .with_timeout(Duration::from_secs(2))
            .with_interval(Duration::from_secs(3600));
        let meter = TokenMeter::builder().with_otlp(config).expect("config").build();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(meter.layer()), || {
            let _call =
                tracing::info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 10u64).entered();
        });
        meter.flush_metrics()
    };
    let collector = Recorder::start(200);
    for host in ["127.0.0.1", "localhost"] {
        let before = collector.seen().len();
        export(format!("http://{host}:{}", collector.port)).unwrap_or_else(|e| panic!("{host}: {e}"));
        assert!(collector.seen().len() > before, "{host}: the collector saw {:?}", collector.seen());
    }
    assert_eq!(proxy.seen().iter().filter(|r| r.contains("/v1/metrics")).count(), 0, "{:?}", proxy.seen());

    // A collector elsewhere is reached through the proxy the variables name (which refuses, here).
    let failed = export("http://collector.invalid:4318".into());
    let err = failed.expect_err("the proxy answers 502").to_string();
    // The 502 is the proxy's, not the collector's: the error says the export went through one.
    assert!(err.contains("the export goes through the proxy in HTTP_PROXY"), "{err}");
    assert!(proxy.seen().iter().any(|r| r.contains("collector.invalid:4318")), "the proxy saw {:?}", proxy.seen());
}

#[cfg(feature = "webhook")]
#[test]
fn a_webhook_on_this_machine_never_goes_through_the_proxy() {
    use tokenmeter::budget::{Budget, BudgetAction, BudgetLimit, BudgetScope, WebhookConfig};

    let proxy = proxy();
    let alert = |url: String| {
        let hook = WebhookConfig::new(url).with_timeout(Duration::from_secs(2)).with_max_retries(0);
        let budget = Budget::new("alice", BudgetLimit::usd(1.0).unwrap())
            .with_scope(BudgetScope::user("alice"))
            .with_action(BudgetAction::Block)
            .with_thresholds([50]);
        let h = common::Harness::with(|b| b.with_budget(budget).with_webhook(hook));
        h.clock.set(chrono::DateTime::parse_from_rfc3339("2026-03-31T12:00:00Z").unwrap().into());
        h.run(|| {
            let _user = tracing::info_span!("request", user.id = "alice").entered();
            let _call =
                tracing::info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 600_000u64)
                    .entered();
        });
        wait_until("the webhook's attempt", || {
            let stats = h.meter.alert_stats().webhook;
            stats.delivered + stats.failed == 1
        });
        h.meter.alert_stats().webhook
    };
    let hook = Recorder::start(204);
    let stats = alert(format!("http://127.0.0.1:{}/hooks/budget", hook.port));
    assert_eq!(stats.delivered, 1, "{stats:?}; the proxy saw {:?}", proxy.seen());
    assert_eq!(hook.seen(), ["POST /hooks/budget"]);
    let through_proxy = |host: &str| proxy.seen().iter().filter(|r| r.contains(host)).count();
    assert_eq!(through_proxy(&hook.port.to_string()), 0, "{:?}", proxy.seen());

    // A webhook elsewhere goes through the proxy (which refuses).
    let stats = alert("http://hooks.invalid/budget".into());
    assert_eq!(stats.failed, 1, "{stats:?}");
    assert_eq!(through_proxy("hooks.invalid"), 1, "{:?}", proxy.seen());
}
