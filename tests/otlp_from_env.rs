//! The standard `OTEL_*` variables configure export, and `with_otlp_from_env` exports only when an endpoint is
//! set. One test per binary: it sets process environment variables.
#![cfg(feature = "otlp")]

use std::time::Duration;

use tokenmeter::TokenMeter;
use tokenmeter::export::otlp::OtlpConfig;

#[test]
fn standard_variables_configure_export() {
    // Starts from none set, whatever the machine running the tests exports (a CI runner with a collector).
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTEL_") {
            // SAFETY: the only test in this binary, before any thread that reads the environment is started.
            unsafe { std::env::remove_var(&name) };
        }
    }
    let meter = TokenMeter::builder().with_otlp_from_env().expect("nothing set: no export").build();
    assert!(meter.export_status().is_none(), "no endpoint in the environment: no export");

    // SAFETY: the only test in this binary, and nothing else here reads the environment concurrently.
    unsafe {
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/");
        std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
        std::env::set_var("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cr%3Dt");
        std::env::set_var("OTEL_METRIC_EXPORT_INTERVAL", "250");
        std::env::set_var("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta");
        std::env::set_var("OTEL_SERVICE_NAME", "env-service");
    }
    let settings = OtlpConfig::from_env().expect("endpoint set").resolve().expect("valid");
    assert_eq!(settings.endpoint, "http://127.0.0.1:9/");
    assert_eq!(settings.interval, Duration::from_millis(250));
    assert_eq!(settings.headers, vec![("x-api-key".to_owned(), "s3cr=t".to_owned())]);
    assert_eq!(settings.service_name, "env-service");

    let meter = TokenMeter::builder().with_otlp_from_env().expect("valid").build();
    let status = meter.export_status().expect("exporting");
    let target = status.target.clone().unwrap_or_default();
    assert_eq!(target, "grpc to http://127.0.0.1:9/ every 250ms (delta, timeout 10s, headers x-api-key)");
    assert!(!status.to_string().contains("s3cr"), "header values never shown: {status}");
    // Its exporter thread reads the environment no more once it is shut down (before more is set below).
    let _ = meter.shutdown();
    drop(meter);

    // `ignore_env` reads none of it: not the endpoint, nor a bad value that would fail `resolve`.
    let builder = OtlpConfig::new().with_endpoint("http://127.0.0.1:4318").ignore_env();
    let own = builder.resolve().expect("the environment is not read");
    // The environment says grpc and `env-service`: the defaults (http/protobuf, its metrics path) show it unread.
    let endpoint = "http://127.0.0.1:4318/v1/metrics";
    assert_eq!(own.endpoint, endpoint);
    assert!(own.service_name.starts_with("unknown_service:otlp_from_env"), "{}", own.service_name);
    unsafe {
        std::env::set_var("OTEL_METRIC_EXPORT_INTERVAL", "soon");
    }
    assert!(OtlpConfig::new().with_endpoint("http://127.0.0.1:4318").resolve().is_err(), "read without ignore_env");
    assert_eq!(builder.resolve().expect("still not read").interval, Duration::from_secs(60));

    unsafe {
        std::env::set_var("OTEL_SDK_DISABLED", "true");
    }
    assert!(OtlpConfig::from_env().is_none(), "OTEL_SDK_DISABLED wins");
    // Also over a configuration in code that reads the environment (the kill switch an operator sets for a
    // fleet: it was ignored there), not over one that does not.
    let config = OtlpConfig::new().with_endpoint("http://127.0.0.1:9");
    let meter = TokenMeter::builder().with_otlp(config.clone()).expect("no export, no error").build();
    assert!(meter.export_status().is_none(), "OTEL_SDK_DISABLED: no export");
    let meter = TokenMeter::builder().with_otlp(config.clone().ignore_env()).expect("valid").build();
    assert!(meter.export_status().is_some(), "ignore_env: exports");
    let _ = meter.shutdown();
    // It replaces an earlier setup, as any `with_otlp` does: nothing is exported.
    let builder = TokenMeter::builder().with_otlp(config.clone().ignore_env()).expect("valid");
    let meter = builder.with_otlp(config).expect("no export, no error").build();
    assert!(meter.export_status().is_none(), "the earlier setup is dropped");
}
