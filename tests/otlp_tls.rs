//! OTLP over TLS to a collector behind a private CA, both transports: a stand-in collector (hyper over rustls,
//! HTTP/2 and HTTP/1.1) whose certificate a test CA signed. With the CA file (`with_certificate`, or
//! `OTEL_EXPORTER_OTLP_CERTIFICATE`) exports arrive; without it the server is refused (unknown issuer), so the
//! certificate is what is checked, not skipped. gRPC over `https://` used to be refused even for a public CA:
//! tonic trusts no root certificate unless told to.
#![cfg(feature = "otlp-tls")]

use crate::otlp_stand_in;
use crate::otlp_workload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokenmeter::TokenMeter;
use tokenmeter::export::otlp::{OtlpConfig, OtlpError, Protocol};

/// A CA, and a certificate for `localhost` it signed.
struct Pki {
    ca_pem: String,
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "tokenmeter test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let key = rcgen::KeyPair::generate().expect("server key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    Pki { ca_pem: ca_cert.pem(), cert, key }
}

/// Requests seen, by path, and connections: accepted, and of those the ones whose TLS handshake failed.
#[derive(Default)]
struct Seen {
    grpc: AtomicUsize,
    http: AtomicUsize,
    accepted: AtomicUsize,
    handshakes_failed: AtomicUsize,
}

/// Starts the stand-in collector on a thread of its own; returns its port.
fn serve(pki: &Pki, seen: Arc<Seen>) -> u16 {
    let chain = vec![pki.cert.der().clone()];
    let key = rustls_key(&pki.key);
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server TLS config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    otlp_stand_in::listen(move |tcp| {
        seen.accepted.fetch_add(1, Ordering::SeqCst);
        let (acceptor, seen) = (acceptor.clone(), Arc::clone(&seen));
        async move {
            // A refused handshake (the client not trusting the CA) ends here.
            let Ok(tls) = acceptor.accept(tcp).await else {
                seen.handshakes_failed.fetch_add(1, Ordering::SeqCst);
                return;
            };
            otlp_stand_in::serve_connection(hyper_util::rt::TokioIo::new(tls), move |req| {
                match req.uri().path() {
                    otlp_stand_in::GRPC_PATH => seen.grpc.fetch_add(1, Ordering::SeqCst),
                    "/v1/metrics" => seen.http.fetch_add(1, Ordering::SeqCst),
                    _ => 0,
                };
            })
            .await;
        }
    })
}

fn rustls_key(key: &rcgen::KeyPair) -> tokio_rustls::rustls::pki_types::PrivateKeyDer<'static> {
    tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into())
}

fn config(port: u16, protocol: Protocol, ca: Option<&Path>) -> OtlpConfig {
    let config = OtlpConfig::new()
        .with_endpoint(format!("https://localhost:{port}"))
        .with_protocol(protocol)
        .with_interval(Duration::from_secs(3600))
        .with_timeout(Duration::from_secs(5))
        .ignore_env();
    match ca {
        Some(path) => config.with_certificate(path),
        None => config,
    }
}

fn write_ca(pki: &Pki, dir: &Path) -> PathBuf {
    let path = dir.join("ca.pem");
    std::fs::write(&path, &pki.ca_pem).expect("write CA");
    path
}

#[test]
fn exports_reach_a_collector_behind_a_private_ca_over_both_transports() {
    let pki = pki();
    let seen = Arc::new(Seen::default());
    let port = serve(&pki, Arc::clone(&seen));
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = write_ca(&pki, dir.path());
    for (protocol, count) in [(Protocol::Grpc, &seen.grpc), (Protocol::HttpProtobuf, &seen.http)] {
        let meter = TokenMeter::builder().with_otlp(config(port, protocol, Some(&ca))).expect("config").build();
        otlp_workload::run(&meter);
        meter.flush_metrics().unwrap_or_else(|e| panic!("{protocol}: {e}"));
        assert!(count.load(Ordering::SeqCst) >= 1, "{protocol}: the collector saw no export");
        let status = meter.export_status().expect("exporting");
        assert_eq!(status.failures, 0, "{protocol}: {status}");
        assert!(status.target.as_deref().is_some_and(|t| t.contains("CA ")), "{protocol}: {status}");
        assert!(status.exports >= 1, "{protocol}: {status}");
    }
}

#[test]
fn without_the_ca_the_collector_is_not_trusted() {
    let pki = pki();
    let seen = Arc::new(Seen::default());
    let port = serve(&pki, Arc::clone(&seen));
    // tonic's error names the certificate problem; reqwest's says "network error" only, so for HTTP the failed
    // handshakes the collector counts are what tell a distrusted certificate from an unreachable collector.
    for (protocol, says) in
        [(Protocol::Grpc, Some("invalid peer certificate: UnknownIssuer")), (Protocol::HttpProtobuf, None)]
    {
        let (accepted, failed) = (seen.accepted.load(Ordering::SeqCst), seen.handshakes_failed.load(Ordering::SeqCst));
        let meter = TokenMeter::builder().with_otlp(config(port, protocol, None)).expect("config").build();
        otlp_workload::run(&meter);
        let err = meter.flush_metrics().expect_err("an unknown issuer");
        assert!(matches!(err, OtlpError::Flush(_)), "{protocol}: {err:?}");
        if let Some(says) = says {
            assert!(err.to_string().contains(says), "{protocol}: {err}");
        }
        // The collector sent its certificate: it had accepted the connection before the client could refuse it.
        assert!(seen.accepted.load(Ordering::SeqCst) > accepted, "{protocol}: the collector accepted no connection");
        // Its side of the handshake fails once the client's alert (or close) reaches it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.handshakes_failed.load(Ordering::SeqCst) == failed {
            assert!(Instant::now() < deadline, "{protocol}: no TLS handshake failed at the collector");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    assert_eq!(seen.grpc.load(Ordering::SeqCst) + seen.http.load(Ordering::SeqCst), 0);
}

#[test]
fn a_bad_ca_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.pem");
    let err = TokenMeter::builder().with_otlp(config(4317, Protocol::Grpc, Some(&missing))).unwrap_err();
    assert!(matches!(&err, OtlpError::Certificate { path, .. } if *path == missing), "{err:?}");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").expect("write");
    let err = TokenMeter::builder().with_otlp(config(4317, Protocol::HttpProtobuf, Some(&not_pem))).unwrap_err();
    assert!(err.to_string().contains("holds no PEM certificate"), "{err}");
    // A CA file for a plain-text endpoint is a mistake.
    let plain = OtlpConfig::new().with_endpoint("http://127.0.0.1:4318").with_certificate(&not_pem).ignore_env();
    let err = TokenMeter::builder().with_otlp(plain).unwrap_err();
    assert!(err.to_string().contains("is for an https:// endpoint"), "{err}");
}
