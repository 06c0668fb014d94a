//! A stand-in OTLP collector for the tests that need to see what reaches one (TLS, headers): it answers every
//! metrics export with success, over gRPC (HTTP/2) or HTTP/1.1, on whatever connection it is handed.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};

/// The gRPC metrics export's path.
pub const GRPC_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

pub type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// The success answer to an export at `path`: over gRPC an empty `ExportMetricsServiceResponse` in one frame,
/// then `grpc-status: 0` as a trailer; over HTTP an empty 200; for another path a 404.
pub fn success(path: &str) -> Response<Body> {
    if path == GRPC_PATH {
        let mut trailers = hyper::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().expect("header"));
        let frames: Vec<Result<Frame<Bytes>, Infallible>> =
            vec![Ok(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))), Ok(Frame::trailers(trailers))];
        let body = StreamBody::new(futures_util::stream::iter(frames)).boxed();
        return Response::builder().header("content-type", "application/grpc").body(body).expect("response");
    }
    if path == "/v1/metrics" {
        let body = Full::new(Bytes::new()).boxed();
        return Response::builder().header("content-type", "application/x-protobuf").body(body).expect("response");
    }
    Response::builder().status(404).body(Full::new(Bytes::new()).boxed()).expect("response")
}

/// Serves one connection (plain or TLS), HTTP/1.1 or HTTP/2, with `handle` seeing each request first; the body
/// is read whole before the answer.
pub async fn serve_connection<IO, F>(io: IO, handle: F)
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    F: Fn(&Request<Incoming>) + Clone + Send + Sync + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let handle = handle.clone();
        async move {
            handle(&req);
            let path = req.uri().path().to_owned();
            let _ = req.into_body().collect().await;
            Ok::<_, Infallible>(success(&path))
        }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    let _ = builder.serve_connection(io, service).await;
}

/// Listens on a free port of 127.0.0.1, on a thread of its own with its own runtime, handing each connection
/// accepted to `on_accept` (spawned); returns the port.
pub fn listen<F, Fut>(on_accept: F) -> u16
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                tokio::spawn(on_accept(tcp));
            }
        });
    });
    port
}
