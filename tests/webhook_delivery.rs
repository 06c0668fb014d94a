//! The budget-alert webhook against a local HTTP server: the payload, retries with backoff, and an unreachable
//! server costing the application nothing but counted failures.
#![cfg(feature = "webhook")]

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::Harness;
use parking_lot::Mutex;
use tokenmeter::budget::{Budget, BudgetAction, BudgetLimit, BudgetScope, WebhookConfig};
use tracing::info_span;

/// A request the server saw.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A server on 127.0.0.1 that answers the n-th request (0-based) with `status(n)`, for at most `requests`
/// requests or 30 seconds.
struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(requests: usize, delay: Duration, status: impl Fn(usize) -> u16 + Send + 'static) -> Self {
        Self::start_with(requests, delay, move |n| (status(n), Vec::new()))
    }

    /// As `start`, answering the n-th request with a status and headers.
    fn start_with(
        requests: usize,
        delay: Duration,
        answer: impl Fn(usize) -> (u16, Vec<(&'static str, String)>) + Send + 'static,
    ) -> Self {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut n = 0;
            while n < requests && Instant::now() < deadline && !stopped.load(Ordering::SeqCst) {
                let Ok(Some(mut request)) = server.recv_timeout(Duration::from_millis(100)) else { continue };
                let mut body = String::new();
                request.as_reader().read_to_string(&mut body).unwrap();
                log.lock().push(Seen {
                    at: Instant::now(),
                    method: request.method().to_string(),
                    path: request.url().to_owned(),
                    headers: request
                        .headers()
                        .iter()
                        .map(|h| (h.field.as_str().to_string(), h.value.as_str().to_owned()))
                        .collect(),
                    body,
                });
                std::thread::sleep(delay);
                let (status, headers) = answer(n);
                let mut response = tiny_http::Response::empty(status);
                for (name, value) in headers {
                    response.add_header(tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap());
                }
                let _ = request.respond(response);
                n += 1;
            }
        });
        Server { url: format!("http://127.0.0.1:{port}/hooks/budget"), seen, stop, thread: Some(thread) }
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Late on March 31, so that no spend below the limit projects past it: these tests count threshold alerts.
fn harness(configure: impl FnOnce(tokenmeter::TokenMeterBuilder) -> tokenmeter::TokenMeterBuilder) -> Harness {
    let h = Harness::with(configure);
    h.clock.set(chrono::DateTime::parse_from_rfc3339("2026-03-31T12:00:00Z").unwrap().into());
    h
}

fn spend(h: &Harness, micros: u64) {
    h.run(|| {
        let _user = info_span!("request", user.id = "alice").entered();
        let _call = info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = micros).entered();
    });
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn budget() -> Budget {
    Budget::new("alice-monthly", BudgetLimit::usd(1.0).unwrap())
        .with_scope(BudgetScope::user("alice"))
        .with_action(BudgetAction::Block)
}

fn fast(url: &str) -> WebhookConfig {
    WebhookConfig::new(url)
        .with_timeout(Duration::from_secs(2))
        .with_max_retries(2)
        .with_backoff(Duration::from_millis(20), Duration::from_millis(50))
}

#[test]
fn the_payload_describes_the_alert() {
    let server = Server::start(1, Duration::ZERO, |_| 204);
    let hook = fast(&server.url).with_header("Authorization", "Bearer s3cret");
    let h = harness(|b| b.with_budget(budget().with_thresholds([50])).with_webhook(hook));
    spend(&h, 600_000);
    wait_until("delivery", || h.meter.alert_stats().webhook.delivered == 1);

    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/hooks/budget"));
    assert_eq!(request.header("Content-Type"), Some("application/json"));
    assert_eq!(request.header("Authorization"), Some("Bearer s3cret"));
    let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
    let expected = serde_json::json!({
        "id": body["id"],
        "event": "threshold_crossed",
        "threshold_percent": 50,
        "budget": "alice-monthly",
        "scope": "user=alice",
        "period": "month",
        "action": "block",
        "unit": "usd",
        "spent": 0.6,
        "limit": 1.0,
        "remaining": 0.4,
        "utilization": 0.6,
        "projected_spend": 0.6 * 31.0 / 30.5,
        "period_start": "2026-03-01T00:00:00Z",
        "resets_at": "2026-04-01T00:00:00Z",
        "at": "2026-03-31T12:00:00Z",
        "unpriced_calls": 0,
        "text": body["text"],
    });
    for (key, want) in expected.as_object().unwrap() {
        let got = &body[key];
        match (got.as_f64(), want.as_f64()) {
            (Some(g), Some(w)) => assert!((g - w).abs() < 1e-6, "{key}: {g} != {w}"),
            _ => assert_eq!(got, want, "{key}"),
        }
    }
    assert_eq!(body.as_object().unwrap().len(), expected.as_object().unwrap().len(), "{body:#}");
    assert!(body["text"].as_str().unwrap().starts_with("budget `alice-monthly` (user=alice, month): 50% threshold"));
    assert_eq!(body["id"].as_str().map(str::len), Some(16), "{body:#}");
    let stats = h.meter.alert_stats().webhook;
    assert_eq!((stats.delivered, stats.retries, stats.failed, stats.dropped), (1, 0, 0, 0));
}

#[test]
fn a_content_type_of_the_callers_replaces_the_default() {
    // Added beside the default, the request carried two `Content-Type` headers (many servers answer 400).
    let server = Server::start(1, Duration::ZERO, |_| 204);
    let hook = fast(&server.url).with_header("content-type", "application/json; charset=utf-8");
    let h = harness(|b| b.with_budget(budget().with_thresholds([50])).with_webhook(hook));
    spend(&h, 600_000);
    wait_until("delivery", || h.meter.alert_stats().webhook.delivered == 1);
    let seen = server.requests();
    let types: Vec<&str> = seen[0]
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(types, ["application/json; charset=utf-8"]);
}

#[test]
fn server_errors_are_retried_with_backoff() {
    let server = Server::start(3, Duration::ZERO, |n| if n < 2 { 503 } else { 200 });
    let h = harness(|b| b.with_budget(budget().with_thresholds([50])).with_webhook(fast(&server.url)));
    spend(&h, 600_000);
    wait_until("delivery after retries", || h.meter.alert_stats().webhook.delivered == 1);
    let stats = h.meter.alert_stats().webhook;
    assert_eq!((stats.retries, stats.failed), (2, 0));
    let seen = server.requests();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|r| r.body == seen[0].body), "every attempt sends the same alert");
}

#[test]
fn client_errors_are_not_retried() {
    let server = Server::start(1, Duration::ZERO, |_| 404);
    let h = harness(|b| b.with_budget(budget().with_thresholds([50])).with_webhook(fast(&server.url)));
    spend(&h, 600_000);
    wait_until("the failure", || h.meter.alert_stats().webhook.failed == 1);
    assert_eq!(h.meter.alert_stats().webhook.retries, 0);
}

#[test]
fn a_down_server_costs_retries_then_counted_failures() {
    // A port nothing listens on: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/hooks/budget");
    let h = harness(|b| b.with_budget(budget()).with_webhook(fast(&url)));

    for _ in 0..4 {
        spend(&h, 300_000); // crosses 50, 75 + 90, 100: four alerts
    }
    // (That recording never waits is `recording_never_waits_for_a_slow_endpoint`: a refused connection fails
    // too fast to tell.)
    assert_eq!(h.meter.alert_stats().fired, 4);

    wait_until("every alert to fail", || h.meter.alert_stats().webhook.failed == 4);
    let stats = h.meter.alert_stats().webhook;
    assert_eq!((stats.delivered, stats.retries, stats.dropped), (0, 8, 0), "two retries per alert");
    // The application is unaffected: calls counted, budgets enforced.
    assert_eq!(h.meter.total_usage().calls, 4);
    assert!(h.meter.check_budget(&tokenmeter::RequestScope::new().with_user("alice")).is_err());
}

#[test]
fn recording_never_waits_for_a_slow_endpoint() {
    // Each POST is answered after 3 s: delivering the four alerts on the recording thread would take 12 s.
    let server = Server::start(4, Duration::from_secs(3), |_| 200);
    let hook = fast(&server.url).with_timeout(Duration::from_secs(10));
    let h = harness(|b| b.with_budget(budget()).with_webhook(hook));
    let started = Instant::now();
    for _ in 0..4 {
        spend(&h, 300_000); // crosses 50, 75 + 90, 100: four alerts
    }
    let took = started.elapsed();
    assert_eq!(h.meter.alert_stats().fired, 4);
    assert_eq!(h.meter.alert_stats().webhook.delivered, 0, "nothing answered yet");
    assert!(took < Duration::from_secs(2), "recording waited for the webhook: {took:?}");
    drop(server);
}

#[test]
fn a_full_queue_drops_and_counts() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    // No answer until the five spends below are done (a fixed 2 s answer let a slow machine's spends outlast
    // it, and a queue that had drained dropped fewer): the first delivery is in flight the whole time.
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let server = Server::start(2, Duration::ZERO, move |_| {
        // Returns when `release` is dropped (or after 20 s, for a test that failed before dropping it).
        let _ = gate.lock().recv_timeout(Duration::from_secs(20));
        counter.fetch_add(1, Ordering::SeqCst);
        200
    });
    // A timeout longer than the wait: a delivery that timed out would fail and be retried, and `delivered`
    // would fall short of what was not dropped.
    let hook = fast(&server.url).with_timeout(Duration::from_secs(30)).with_queue_capacity(1);
    let h = harness(|b| b.with_budget(budget().with_thresholds([10, 20, 30, 40, 50])).with_webhook(hook));
    let started = Instant::now();
    for _ in 0..5 {
        spend(&h, 100_000);
    }
    // Waiting for the webhook, spend 3 would wait for the held answer (20 s); 4 s leaves room for a loaded
    // machine.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "recording waited for the webhook: {took:?}");
    drop(release);
    wait_until("the queue to drain", || {
        let s = h.meter.alert_stats().webhook;
        s.delivered + s.dropped + s.failed == 5
    });
    let stats = h.meter.alert_stats().webhook;
    // One in flight and one queued at most: the rest were dropped.
    assert!(stats.dropped >= 3, "{stats:?}");
    assert_eq!((stats.delivered, stats.failed), (5 - stats.dropped, 0), "{stats:?}");
    drop(server);
    assert_eq!(calls.load(Ordering::SeqCst) as u64, stats.delivered);
}

#[test]
fn redirects_are_not_followed_and_count_as_failed() {
    // A 302 followed by a client would arrive as a GET without the body, and its 2xx would count as delivered.
    let server = Server::start_with(2, Duration::ZERO, |n| match n {
        0 => (302, vec![("Location", "/elsewhere".to_owned())]),
        _ => (200, Vec::new()),
    });
    let h = harness(|b| b.with_budget(budget().with_thresholds([50])).with_webhook(fast(&server.url)));
    spend(&h, 600_000);
    wait_until("the failure", || h.meter.alert_stats().webhook.failed == 1);
    let stats = h.meter.alert_stats().webhook;
    assert_eq!((stats.delivered, stats.retries), (0, 0), "{stats:?}");
    std::thread::sleep(Duration::from_millis(200));
    let seen = server.requests();
    assert_eq!(seen.len(), 1, "the redirect was not followed: {seen:?}");
    assert_eq!(seen[0].method, "POST");
}

#[test]
fn retry_after_is_waited_for() {
    // Backoff alone would retry after 20 ms; the server asks for a second.
    let server = Server::start_with(2, Duration::ZERO, |n| match n {
        0 => (429, vec![("Retry-After", "1".to_owned())]),
        _ => (200, Vec::new()),
    });
    let hook = fast(&server.url).with_backoff(Duration::from_millis(20), Duration::from_secs(5));
    let h = harness(|b| b.with_budget(budget().with_thresholds([50])).with_webhook(hook));
    spend(&h, 600_000);
    wait_until("delivery after the asked wait", || h.meter.alert_stats().webhook.delivered == 1);
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    let waited = seen[1].at - seen[0].at;
    assert!(waited >= Duration::from_millis(950), "retried after {waited:?}");
}

#[test]
fn flush_webhook_waits_for_queued_alerts() {
    let server = Server::start(4, Duration::from_millis(300), |_| 200);
    let h = harness(|b| b.with_budget(budget().with_thresholds([20, 40, 60])).with_webhook(fast(&server.url)));
    spend(&h, 700_000); // three thresholds crossed at once: three alerts, each answered after 300 ms
    assert!(!h.meter.flush_webhook(Duration::from_millis(50)), "the alerts cannot be delivered in 50 ms");
    // `Duration::MAX` waits for good (it overflowed the deadline: a panic).
    assert!(h.meter.flush_webhook(Duration::MAX));
    assert_eq!(h.meter.alert_stats().webhook.delivered, 3);
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn dropping_the_meter_waits_for_queued_alerts() {
    // The journal marks an alert delivered when it fires: one the drop left queued was never sent, then or after
    // a restart (a scoped meter's drop delivered one alert of four).
    let server = Server::start(4, Duration::from_millis(200), |_| 200);
    let h = harness(|b| b.with_budget(budget().with_thresholds([20, 40, 60])).with_webhook(fast(&server.url)));
    spend(&h, 700_000); // three alerts, each answered after 200 ms
    let started = Instant::now();
    drop(h);
    assert_eq!(server.requests().len(), 3, "delivered before the drop returned");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[test]
fn a_webhook_that_cannot_post_is_a_build_error() {
    for (url, header, want) in [
        ("hooks.example.com/budget", ("X-Key", "v"), "start with http:// or https://"),
        ("https://hooks.example.com/budget", ("Authorization", "Bearer a\nb"), "header `Authorization`"),
    ] {
        let hook = WebhookConfig::new(url).with_header(header.0, header.1);
        let err = tokenmeter::TokenMeter::builder().with_webhook(hook).try_build().unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, tokenmeter::BuildError::Webhook { .. }), "{err:?}");
        assert!(text.contains(want), "{text}");
        assert!(!text.contains("/budget"), "the URL's path is not shown: {text}");
    }
    // A zero timeout: every attempt timed out at once, retried and counted as failed, without a word at build.
    let hook = WebhookConfig::new("https://hooks.example.com/budget").with_timeout(Duration::ZERO);
    let err = tokenmeter::TokenMeter::builder().with_webhook(hook).try_build().unwrap_err();
    assert!(err.to_string().contains("the timeout is zero"), "{err}");
    // `Duration::MAX` ("wait for good"): every delivery panicked in the HTTP client, counted as a failure.
    for timeout in [Duration::MAX, Duration::from_secs(3601)] {
        let hook = WebhookConfig::new("https://hooks.example.com/budget").with_timeout(timeout);
        let err = tokenmeter::TokenMeter::builder().with_webhook(hook).try_build().unwrap_err();
        assert!(err.to_string().contains("over an hour"), "{err}");
    }
    let hook = WebhookConfig::new("https://hooks.example.com/budget").with_timeout(Duration::from_secs(3600));
    assert!(tokenmeter::TokenMeter::builder().with_webhook(hook).try_build().is_ok());
}

#[test]
fn a_refused_certificate_is_not_retried() {
    // A self-signed certificate, which no root trusts: rustls refuses it in the handshake, and ureq hands that
    // back as an I/O error. It was retried as a network error: every alert cost four handshakes and the
    // backoff, and the alerts behind it waited.
    use tokio_rustls::rustls;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().self_signed(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()))
        .unwrap();
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counted = handshakes.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            counted.fetch_add(1, Ordering::SeqCst);
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let _ = std::io::Read::read(&mut tls, &mut [0u8; 64]);
        }
    });
    let url = format!("https://localhost:{port}/hooks/budget");
    let h = harness(|b| b.with_budget(budget().with_thresholds([50])).with_webhook(fast(&url)));
    spend(&h, 600_000);
    wait_until("the failure", || h.meter.alert_stats().webhook.failed == 1);
    assert_eq!(h.meter.alert_stats().webhook.retries, 0);
    assert_eq!(handshakes.load(Ordering::SeqCst), 1);
}

#[cfg(feature = "otlp")]
#[test]
fn shutdown_within_shares_its_limit_between_the_webhook_and_the_export() {
    use tokenmeter::ShutdownError;
    use tokenmeter::export::otlp::{OtlpConfig, Protocol};
    // A webhook that answers after 3 s, and a collector that takes the connection and never answers:
    // `shutdown()` would wait 5 s for the one and 10 s or more for the other.
    let server = Server::start(4, Duration::from_secs(3), |_| 200);
    let port = common::silent_port();
    let otlp = OtlpConfig::new()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_protocol(Protocol::HttpProtobuf)
        .with_interval(Duration::from_secs(3600))
        .with_timeout(Duration::from_secs(10))
        .ignore_env();
    let h = harness(|b| {
        b.with_budget(budget().with_thresholds([20, 40])).with_webhook(fast(&server.url)).with_otlp(otlp).unwrap()
    });
    spend(&h, 500_000); // two alerts queued
    let started = Instant::now();
    let err = h.meter.shutdown_within(Duration::from_millis(1500)).expect_err("neither finishes in time");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1400) && took < Duration::from_secs(4), "{took:?}");
    // The first failure is returned: the webhook's, with what it was given of the limit.
    assert!(
        matches!(err, ShutdownError::WebhookPending { waited } if waited <= Duration::from_millis(1500)
            && waited >= Duration::from_millis(1400)),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("budget alerts were still queued for the webhook after 1."), "{err}");
}
