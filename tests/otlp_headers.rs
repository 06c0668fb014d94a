//! Headers reach an OTLP/HTTP collector exactly as configured: opentelemetry-otlp percent-decodes the values it
//! is handed, so a builder value `a%41b` used to arrive as `aAb` (and an environment value, decoded by tokenmeter
//! already, was decoded twice). A value no HTTP client can send (a control character) is refused up front rather
//! than dropped.
#![cfg(feature = "otlp")]

use crate::otlp_workload;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokenmeter::TokenMeter;
use tokenmeter::export::otlp::{OtlpConfig, OtlpError, Protocol};

#[test]
fn builder_header_values_arrive_unchanged() {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("server"));
    let port = server.server_addr().to_ip().expect("ip").port();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let (srv, got) = (Arc::clone(&server), Arc::clone(&seen));
    std::thread::spawn(move || {
        for mut req in srv.incoming_requests() {
            let mut body = Vec::new();
            let _ = std::io::Read::read_to_end(req.as_reader(), &mut body);
            for h in req.headers() {
                if h.field.equiv("x-api-key") {
                    got.lock().unwrap().push(h.value.as_str().to_owned());
                }
            }
            let _ = req.respond(tiny_http::Response::empty(200));
        }
    });
    let config = OtlpConfig::new()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_protocol(Protocol::HttpProtobuf)
        .with_interval(Duration::from_secs(3600))
        .with_header("x-api-key", "a%41b")
        .ignore_env();
    let meter = TokenMeter::builder().with_otlp(config).expect("config").build();
    otlp_workload::run(&meter);
    meter.flush_metrics().expect("export");
    assert_eq!(seen.lock().unwrap().first().map(String::as_str), Some("a%41b"));
    meter.shutdown().expect("the final export");
    server.unblock();
}

#[test]
fn a_header_value_no_client_can_send_is_refused() {
    for protocol in [Protocol::HttpProtobuf, Protocol::Grpc] {
        let config = OtlpConfig::new().with_protocol(protocol).with_header("x-team", "blue\u{1}").ignore_env();
        let err = TokenMeter::builder().with_otlp(config).unwrap_err();
        assert!(matches!(&err, OtlpError::InvalidHeader { name, .. } if name == "x-team"), "{err:?}");
        assert!(err.to_string().contains("control character"), "{err}");
    }
}
