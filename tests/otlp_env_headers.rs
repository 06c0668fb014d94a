//! Headers from `OTEL_EXPORTER_OTLP_[METRICS_]HEADERS` never replace the ones tokenmeter resolved. opentelemetry-otlp
//! reads those variables again when it builds its exporter and puts them over the headers it is given, under
//! `ignore_env()` too: an application sending its traces to vendor A with A's key in the variable sent that key to
//! tokenmeter's collector, in place of the one configured for it. Its own test binary: it sets the variables.
#![cfg(feature = "otlp")]

mod otlp_workload;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use tokenmeter::TokenMeter;
use tokenmeter::export::otlp::{OtlpConfig, Protocol};

type Seen = Arc<Mutex<Vec<(String, Option<String>, Option<String>)>>>;

/// Answers an OTLP export over gRPC or HTTP, noting its path, `x-api-key` and `authorization`.
async fn answer(
    req: Request<Incoming>,
    seen: Seen,
) -> Result<Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>, Infallible> {
    let header = |name: &str| req.headers().get(name).map(|v| v.to_str().unwrap_or("?").to_owned());
    let path = req.uri().path().to_owned();
    seen.lock().unwrap().push((path.clone(), header("x-api-key"), header("authorization")));
    let _ = req.into_body().collect().await;
    if path.ends_with("/Export") {
        let mut trailers = hyper::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().expect("header"));
        let frames: Vec<Result<Frame<Bytes>, Infallible>> =
            vec![Ok(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))), Ok(Frame::trailers(trailers))];
        let body = StreamBody::new(futures_util::stream::iter(frames)).boxed();
        return Ok(Response::builder().header("content-type", "application/grpc").body(body).expect("response"));
    }
    let body = Full::new(Bytes::new()).boxed();
    Ok(Response::builder().header("content-type", "application/x-protobuf").body(body).expect("response"))
}

/// A plain-text stand-in collector (HTTP/1.1 and HTTP/2 with prior knowledge) on a thread of its own.
fn serve(seen: Seen) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| answer(req, Arc::clone(&seen)));
                    let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                    let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(tcp), service).await;
                });
            }
        });
    });
    port
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
            let (path, key, auth) = got.first().cloned().unwrap_or_else(|| panic!("{protocol}: no export"));
            assert_eq!(key.as_deref(), Some("tokenmeter-key"), "{protocol} ignore_env={ignore_env}: {path}");
            // Under `ignore_env()` the variable's other header is not sent either; otherwise it is (the builder
            // wins only for the names it sets).
            let expected = (!ignore_env).then_some("Bearer vendor-a");
            assert_eq!(auth.as_deref(), expected, "{protocol} ignore_env={ignore_env}: {path}");
            meter.shutdown().expect("the final export");
        }
    }
}
