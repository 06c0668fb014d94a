//! Headers from `OTEL_EXPORTER_OTLP_[METRICS_]HEADERS` never replace the ones tokenmeter resolved. opentelemetry-otlp
//! reads those variables again when it builds its exporter and puts them over the headers it is given, under
//! `ignore_env()` too: an application sending its traces to vendor A with A's key in the variable sent that key to
//! tokenmeter's collector, in place of the one configured for it. Its own test binary: it sets the variables.
#![cfg(feature = "otlp")]

mod otlp_stand_in;
mod otlp_workload;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokenmeter::TokenMeter;
use tokenmeter::export::otlp::{OtlpConfig, Protocol};

type Seen = Arc<Mutex<Vec<(String, Option<String>, Option<String>, Option<String>)>>>;

/// A plain-text stand-in collector (HTTP/1.1 and HTTP/2 with prior knowledge) on a thread of its own, noting each
/// export's path, `x-api-key` and `authorization`.
fn serve(seen: Seen) -> u16 {
    otlp_stand_in::listen(move |tcp| {
        let seen = Arc::clone(&seen);
        otlp_stand_in::serve_connection(hyper_util::rt::TokioIo::new(tcp), move |req| {
            let header = |name: &str| req.headers().get(name).map(|v| v.to_str().unwrap_or("?").to_owned());
            let path = req.uri().path().to_owned();
            seen.lock().unwrap().push((path, header("x-api-key"), header("authorization"), header("user-agent")));
        })
    })
}

#[test]
fn headers_in_the_environment_never_replace_the_configured_ones() {
    // SAFETY: set before any other thread of this binary reads the environment (its only test, at its start).
    unsafe {
        std::env::set_var("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=vendor-a-key,authorization=Bearer vendor-a");
    }
    let seen: Seen = Arc::default();
    let port = serve(Arc::clone(&seen));
    for protocol in [Protocol::HttpProtobuf, Protocol::Grpc] {
        for ignore_env in [true, false] {
            seen.lock().unwrap().clear();
            let config = OtlpConfig::new()
                .with_endpoint(format!("http://127.0.0.1:{port}"))
                .with_protocol(protocol)
                .with_interval(Duration::from_secs(3600))
                .with_header("x-api-key", "tokenmeter-key");
            let config = if ignore_env { config.ignore_env() } else { config };
            let meter = TokenMeter::builder().with_otlp(config).expect("config").build();
            otlp_workload::run(&meter);
            meter.flush_metrics().unwrap_or_else(|e| panic!("{protocol}: {e}"));
            let got = seen.lock().unwrap().clone();
            let (path, key, auth, agent) = got.first().cloned().unwrap_or_else(|| panic!("{protocol}: no export"));
            // The exporter's own user agent still goes (`OTel-OTLP-Exporter-Rust/…`, gRPC with tonic's after it).
            assert!(
                agent.as_deref().is_some_and(|a| a.starts_with("OTel-OTLP-Exporter-Rust/")),
                "{protocol}: {agent:?}"
            );
            assert_eq!(key.as_deref(), Some("tokenmeter-key"), "{protocol} ignore_env={ignore_env}: {path}");
            // Under `ignore_env()` the variable's other header is not sent either; otherwise it is (the builder
            // wins only for the names it sets).
            let expected = (!ignore_env).then_some("Bearer vendor-a");
            assert_eq!(auth.as_deref(), expected, "{protocol} ignore_env={ignore_env}: {path}");
            meter.shutdown().expect("the final export");
        }
    }
}
