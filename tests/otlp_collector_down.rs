//! tokenmeter's own pipeline pointed at a collector that is not there: recording stays fast and never fails,
//! flushing reports the outage with an actionable error, the failures are counted, and nothing panics, also when
//! built, used and dropped inside an application's tokio runtime. Bad configuration is refused up front.
#![cfg(feature = "otlp")]

use crate::otlp_workload;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use tokenmeter::TokenMeter;
use tokenmeter::export::otlp::{OtlpConfig, OtlpError, Protocol};

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A local port that takes connections and never answers (a collector that hangs).
fn silent_collector() -> u16 {
    crate::common::silent_port()
}

/// A local port that answers every request with `response` (an HTTP/1.1 server, whatever the client speaks): held
/// until the test ends.
fn answering(response: &'static str) -> u16 {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                // The request's head and body, roughly: enough that the client is done sending.
                let mut buf = [0u8; 65_536];
                let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(response.as_bytes());
                std::thread::sleep(Duration::from_millis(100));
            });
        }
    });
    port
}

fn unreachable(protocol: Protocol) -> OtlpConfig {
    OtlpConfig::new()
        .with_endpoint(format!("http://127.0.0.1:{}", closed_port()))
        .with_protocol(protocol)
        .with_interval(Duration::from_millis(100))
        .with_timeout(Duration::from_millis(500))
        .with_service_name("tokenmeter-test")
        .ignore_env()
}

#[test]
fn recording_is_unaffected_when_the_collector_is_unreachable() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let meter = TokenMeter::builder().with_otlp(unreachable(protocol)).expect("config").build();
        let start = Instant::now();
        for _ in 0..50 {
            otlp_workload::run(&meter);
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{protocol}: recording waited on export");
        assert_eq!(meter.total_usage().calls, 50 * otlp_workload::CALLS_PER_ROUND);
        let err = meter.flush_metrics().expect_err("nothing listens");
        assert!(matches!(err, OtlpError::Flush(_)), "{err:?}");
        assert!(err.to_string().contains("check that the collector is running"), "{err}");
        let status = meter.export_status().expect("exporting");
        assert!(status.failures >= 1, "{status}");
        assert!(status.last_error.is_some(), "{status}");
        assert!(status.to_string().contains("last export failed"), "{status}");
        // The final export fails too; shutting down says so and can be repeated (then harmless).
        let first = meter.shutdown().expect_err("the final export has nowhere to go");
        assert!(matches!(first, tokenmeter::ShutdownError::Otlp(OtlpError::Shutdown(_))), "{protocol}: {first:?}");
        // Why, once: it read "…failed: Operation failed: [InternalFailure(\"Failed to shutdown\")]: Operation
        // failed: HTTP export failed: network error".
        let text = first.to_string();
        assert!(text.contains("the last export failed: ") && !text.contains("Operation failed"), "{text}");
        assert!(!err.to_string().contains("Operation failed"), "{err}");
        meter.shutdown().expect("a second shutdown is harmless");
        // Recording goes on after shutdown (no longer exported), and a flush says why nothing goes out, without
        // sending anyone to check a collector.
        otlp_workload::run(&meter);
        assert_eq!(meter.total_usage().calls, 51 * otlp_workload::CALLS_PER_ROUND);
        let err = meter.flush_metrics().expect_err("shut down");
        assert!(matches!(err, OtlpError::ShutDown), "{protocol}: {err:?}");
        assert!(!err.to_string().contains("check that the collector"), "{protocol}: {err}");
    }
}

#[test]
fn recording_does_not_wait_on_a_collector_that_never_answers() {
    // A refused connection fails in a millisecond, so the test above cannot see recording wait on an export: a
    // collector that accepts and never answers holds each export for its whole timeout (2 s here).
    let port = silent_collector();
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let config = OtlpConfig::new()
            .with_endpoint(format!("http://127.0.0.1:{port}"))
            .with_protocol(protocol)
            .with_interval(Duration::from_millis(100))
            .with_timeout(Duration::from_secs(2))
            .ignore_env();
        let meter = TokenMeter::builder().with_otlp(config).expect("config").build();
        // Rounds over a second of exports (one every 100 ms, each held 2 s): none waits for one.
        let (start, mut longest) = (Instant::now(), Duration::ZERO);
        while start.elapsed() < Duration::from_secs(1) {
            let round = Instant::now();
            otlp_workload::run(&meter);
            longest = longest.max(round.elapsed());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(longest < Duration::from_millis(1_500), "{protocol}: a round took {longest:?}");
    }
}

#[test]
fn works_inside_and_outside_an_application_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let meter = rt.block_on(async {
        let meter = TokenMeter::builder().with_otlp(unreachable(Protocol::Grpc)).expect("config").build();
        otlp_workload::run(&meter);
        meter
    });
    otlp_workload::run(&meter);
    assert_eq!(meter.total_usage().calls, 2 * otlp_workload::CALLS_PER_ROUND);
    // Dropped inside the application's async context: no blocking runtime shutdown, no panic.
    rt.block_on(async move {
        drop(meter);
    });
}

#[test]
fn bad_configuration_is_refused_with_what_to_fix() {
    let err =
        TokenMeter::builder().with_otlp(OtlpConfig::new().with_endpoint("localhost:4317").ignore_env()).unwrap_err();
    assert!(matches!(err, OtlpError::InvalidEndpoint { .. }), "{err:?}");
    assert!(err.to_string().contains("http://"), "{err}");
    let err = TokenMeter::builder().with_otlp(OtlpConfig::new().with_header("x bad", "1").ignore_env()).unwrap_err();
    assert!(matches!(err, OtlpError::InvalidHeader { .. }), "{err:?}");
    let err =
        TokenMeter::builder().with_otlp(OtlpConfig::new().with_interval(Duration::ZERO).ignore_env()).unwrap_err();
    assert!(err.to_string().contains("interval"), "{err}");
    if !cfg!(feature = "otlp-tls") {
        let err = TokenMeter::builder()
            .with_otlp(OtlpConfig::new().with_endpoint("https://otlp.example.com").ignore_env())
            .unwrap_err();
        assert!(err.to_string().contains("otlp-tls"), "{err}");
    }
}

/// A collector that answers in 6 s, under the export timeout (10 s) but over the SDK's 5 s for a shutdown's
/// final export: `shutdown()` flushes first, so what was recorded before it is delivered.
#[test]
fn shutdown_waits_for_a_slow_collector_up_to_the_export_timeout() {
    let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("server"));
    let port = server.server_addr().to_ip().expect("ip").port();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    for _ in 0..2 {
        let (server, answered) = (std::sync::Arc::clone(&server), std::sync::Arc::clone(&answered));
        std::thread::spawn(move || {
            while let Ok(req) = server.recv() {
                std::thread::sleep(Duration::from_secs(6));
                if req.respond(tiny_http::Response::empty(200)).is_ok() {
                    answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
    }
    let config = OtlpConfig::new()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_protocol(Protocol::HttpProtobuf)
        .with_interval(Duration::from_secs(3600))
        .with_timeout(Duration::from_secs(10))
        .ignore_env();
    let meter = TokenMeter::builder().with_otlp(config).expect("config").build();
    otlp_workload::run(&meter);
    let start = Instant::now();
    // The flush's export is answered; the shutdown's own final export (nothing new) is cut off at 5 s.
    let result = meter.shutdown();
    assert!(
        matches!(&result, Err(tokenmeter::ShutdownError::Otlp(OtlpError::Shutdown(m)))
            if m.contains("gave up waiting for the export after 5s")),
        "the flush is answered, the final export times out: {result:?}"
    );
    let status = meter.export_status().expect("exporting");
    assert_eq!(status.exports, 1, "the export before shutdown was answered: {status}");
    assert!(status.last_success_at.is_some(), "{status}");
    assert!(answered.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert!(start.elapsed() < Duration::from_secs(20), "bounded by the timeout plus 5 s: {:?}", start.elapsed());
}

/// A collector address that takes the connection and never answers the TLS handshake (a load balancer whose
/// backend is gone): the transport's own request timeout starts only once connected, so a flush and the
/// shutdown waited forever. Each export is now cut off at the export timeout.
#[cfg(feature = "otlp-tls")]
#[test]
fn an_export_to_a_collector_that_never_answers_ends_at_the_timeout() {
    let port = silent_collector();
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let config = OtlpConfig::new()
            .with_endpoint(format!("https://127.0.0.1:{port}"))
            .with_protocol(protocol)
            .with_interval(Duration::from_secs(3600))
            .with_timeout(Duration::from_secs(1))
            .ignore_env();
        let meter = TokenMeter::builder().with_otlp(config).expect("config").build();
        otlp_workload::run(&meter);
        let (tx, rx) = std::sync::mpsc::channel();
        let m = meter.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let flushed = m.flush_metrics();
            let _ = tx.send((flushed, start.elapsed()));
        });
        let (flushed, took) =
            rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("{protocol:?}: the flush hung"));
        assert!(flushed.is_err(), "{protocol:?}: {flushed:?}");
        assert!(took < Duration::from_secs(20), "{protocol:?}: bounded by the timeout: {took:?}");
        let status = meter.export_status().expect("exporting");
        assert!(status.failures >= 1, "{protocol:?}: {status}");
    }
}

#[test]
fn a_failed_flush_says_what_to_check_from_the_exports_error() {
    // Every flush error ended "check that the collector is running and reachable": also when the collector had
    // answered (413: too large, 401: no credentials, 404: a wrong path, 429: throttled), and when an OTLP/gRPC
    // exporter was pointed at an HTTP/1.1 port.
    let answer = |status: &str| {
        let text = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        answering(Box::leak(text.into_boxed_str()))
    };
    let http1 = answer("400 Bad Request");
    for (port, protocol, want) in [
        (answer("413 Payload Too Large"), Protocol::HttpProtobuf, "413 (the export is larger than the collector takes"),
        (answer("401 Unauthorized"), Protocol::HttpProtobuf, "401 (the collector refused the credentials"),
        (
            answer("404 Not Found"),
            Protocol::HttpProtobuf,
            "404 (nothing there takes OTLP metrics: check the endpoint's path",
        ),
        (answer("429 Too Many Requests"), Protocol::HttpProtobuf, "429 (the collector is throttling"),
        (http1, Protocol::HttpProtobuf, "400 (the collector answered and refused the export"),
        (http1, Protocol::Grpc, "check that the endpoint speaks OTLP/gRPC"),
    ] {
        let config = OtlpConfig::new()
            .with_endpoint(format!("http://127.0.0.1:{port}"))
            .with_protocol(protocol)
            .with_interval(Duration::from_secs(3600))
            .with_timeout(Duration::from_secs(2))
            .ignore_env();
        let meter = TokenMeter::builder().with_otlp(config).expect("config").build();
        otlp_workload::run(&meter);
        let err = meter.flush_metrics().expect_err("refused");
        assert!(err.to_string().contains(want), "{protocol}: {err}");
        assert!(!err.to_string().contains("running and reachable"), "{protocol}: {err}");
        drop(meter);
    }
}

/// OTLP/HTTP to a collector that never answers, with a 6 s export timeout (more than the SDK's 5 s for a
/// shutdown's final export) and no periodic export during a test.
fn hanging_http() -> OtlpConfig {
    OtlpConfig::new()
        .with_endpoint(format!("http://127.0.0.1:{}", silent_collector()))
        .with_protocol(Protocol::HttpProtobuf)
        .with_interval(Duration::from_secs(3600))
        .with_timeout(Duration::from_secs(6))
        .ignore_env()
}

#[test]
fn a_shutdown_that_gave_up_waiting_says_so() {
    // Against a collector that never answers, the SDK gives a shutdown's final export 5 s and returns a timeout;
    // the error read only "the last export failed: …", the flush's error, as if the final export had failed.
    let meter = TokenMeter::builder().with_otlp(hanging_http()).expect("config").build();
    otlp_workload::run(&meter);
    let err = meter.shutdown().expect_err("nothing answers");
    assert!(err.to_string().contains("gave up waiting for the export after 5s"), "{err}");
}

#[test]
fn shutdown_within_keeps_to_its_limit_against_a_collector_that_never_answers() {
    // `shutdown()` here takes the flush's 6 s and the SDK's 5 s for the final export; a grace period may not.
    let meter = TokenMeter::builder().with_otlp(hanging_http()).expect("config").build();
    otlp_workload::run(&meter);
    let started = Instant::now();
    let err = meter.shutdown_within(Duration::from_secs(1)).expect_err("nothing answers");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "{took:?}");
    assert!(
        matches!(&err, tokenmeter::ShutdownError::Otlp(OtlpError::Shutdown(m))
            if m.contains("gave up waiting for the final export after") && m.contains("the shutdown's limit")),
        "{err}"
    );
    // Recording afterwards is harmless.
    otlp_workload::run(&meter);
}

#[test]
fn shutdown_within_a_limit_a_collector_meets_shuts_the_pipeline_down() {
    let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("server"));
    let port = server.server_addr().to_ip().expect("ip").port();
    let exports = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (srv, seen) = (server.clone(), exports.clone());
    std::thread::spawn(move || {
        for mut req in srv.incoming_requests() {
            let _ = std::io::Read::read_to_end(req.as_reader(), &mut Vec::new());
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = req.respond(tiny_http::Response::empty(200));
        }
    });
    let config = OtlpConfig::new()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_protocol(Protocol::HttpProtobuf)
        .with_interval(Duration::from_secs(3600))
        .ignore_env();
    let meter = TokenMeter::builder().with_otlp(config).expect("config").build();
    otlp_workload::run(&meter);
    meter.shutdown_within(Duration::from_secs(20)).expect("the collector answers");
    assert!(exports.load(std::sync::atomic::Ordering::SeqCst) >= 1, "the final export reached the collector");
    // The pipeline was shut down, not given up on.
    assert!(matches!(meter.flush_metrics(), Err(OtlpError::ShutDown)));
    server.unblock();
}
