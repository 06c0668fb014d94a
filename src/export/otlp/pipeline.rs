//! The export pipeline tokenmeter owns when built with [`with_otlp`](crate::TokenMeterBuilder::with_otlp): an
//! `SdkMeterProvider` with a periodic reader (its own thread) and an OTLP exporter whose network I/O runs on a
//! one-worker tokio runtime that tokenmeter owns. The application needs no runtime of its own, and no
//! recording thread ever waits on the network.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use parking_lot::Mutex;

use super::config::{Compression, OtlpSettings, Protocol, Temporality};
use super::{ExportStatus, OtlpError};

/// A tokio runtime with one worker thread, shut down without blocking when dropped (it may be dropped inside
/// the application's own async context, where a blocking shutdown would panic).
pub(crate) struct ExportRuntime(Option<tokio::runtime::Runtime>);

impl ExportRuntime {
    fn new() -> Result<Self, OtlpError> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .thread_name("tokenmeter-otlp-io")
            // A flush from here (a subscriber reacting to hyper's or tonic's events on this thread) would block
            // the one worker that drives the export it waits for: refused, as on the reader thread.
            .on_thread_start(|| ON_EXPORT_THREAD.with(|t| t.set(true)))
            .enable_all()
            .build()
            .map(|rt| ExportRuntime(Some(rt)))
            .map_err(OtlpError::Runtime)
    }

    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.0.as_ref().map(|rt| rt.handle())
    }
}

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Export outcomes, shared between the exporter (on the reader thread) and the meter's read-out.
#[derive(Default)]
pub(crate) struct ExportCounters {
    pub(crate) exports: AtomicU64,
    pub(crate) failures: AtomicU64,
    last: Mutex<LastExport>,
}

#[derive(Default)]
struct LastExport {
    at: Option<SystemTime>,
    metrics: usize,
    data_points: usize,
    error: Option<String>,
    last_success: Option<SystemTime>,
    /// Failed exports in a row (0 after a success).
    failing: u64,
    /// When a failure was last logged (kept across runs: a collector that comes and goes is logged at most
    /// once in [`WARN_EVERY`]).
    warned_at: Option<Instant>,
    /// A failure of the current run was logged (so its end is too).
    warned_this_run: bool,
    /// An export was delivered (the first is logged).
    delivered: bool,
}

/// While exports keep failing, a warning at most this often (the first failure is always logged).
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(600);

/// What an export's outcome gives the application's log: exports that stop working are otherwise silent (the
/// failure counters reach the collector only with a later export that works).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExportLog {
    /// The pipeline's first export was delivered, and no failure was logged before it: the one line that says
    /// where metrics go and that they get there.
    Working { metrics: usize, data_points: usize },
    /// An export failed, and no failure was logged in the last [`WARN_EVERY`].
    Failed { error: String, in_a_row: u64 },
    /// An export worked after `failed` in a row did not, and one of those was logged.
    Recovered { failed: u64 },
}

/// An SDK error's text without the SDK's framing: `InternalFailure`'s `Display` prefixes "Operation failed: ",
/// which the messages built on it repeated ("shutting down … failed: Operation failed: …: Operation failed: …").
pub(crate) fn sdk_text(e: &opentelemetry_sdk::error::OTelSdkError) -> String {
    match e {
        opentelemetry_sdk::error::OTelSdkError::InternalFailure(message) => message.clone(),
        other => other.to_string(),
    }
}

impl ExportCounters {
    /// Counts an export's outcome at `now` and says what to log, if anything.
    pub(crate) fn note(
        &self,
        metrics: usize,
        data_points: usize,
        result: &OTelSdkResult,
        now: Instant,
    ) -> Option<ExportLog> {
        let at = SystemTime::now();
        let mut last = self.last.lock();
        last.at = Some(at);
        last.metrics = metrics;
        last.data_points = data_points;
        match result {
            Ok(()) => {
                self.exports.fetch_add(1, Ordering::Relaxed);
                last.error = None;
                last.last_success = Some(at);
                let failed = std::mem::take(&mut last.failing);
                let warned = std::mem::take(&mut last.warned_this_run);
                let first = !std::mem::replace(&mut last.delivered, true);
                if failed > 0 && warned {
                    Some(ExportLog::Recovered { failed })
                } else {
                    first.then_some(ExportLog::Working { metrics, data_points })
                }
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                let error = sdk_text(e);
                last.error = Some(error.clone());
                last.failing += 1;
                let due = last.warned_at.is_none_or(|t| now.saturating_duration_since(t) >= WARN_EVERY);
                if !due {
                    return None;
                }
                last.warned_at = Some(now);
                last.warned_this_run = true;
                Some(ExportLog::Failed { error, in_a_row: last.failing })
            }
        }
    }

    /// The last export's error, while exports are failing.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last.lock().error.clone()
    }

    pub(crate) fn status(&self, settings: Option<&OtlpSettings>) -> ExportStatus {
        let last = self.last.lock();
        ExportStatus {
            target: settings.map(|s| s.to_string()),
            exports: self.exports.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            last_export_at: last.at,
            last_success_at: last.last_success,
            last_metrics: last.metrics,
            last_data_points: last.data_points,
            last_error: last.error.clone(),
        }
    }
}

thread_local! {
    /// Set on the SDK's reader thread once it has exported, and on the export runtime's threads: a flush or
    /// shutdown called there (by a subscriber reacting to the export's WARN event, say) would wait on that thread
    /// itself, for ever.
    static ON_EXPORT_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread is the SDK's reader thread or one of the export runtime's (see
/// [`ON_EXPORT_THREAD`]).
pub(crate) fn on_export_thread() -> bool {
    ON_EXPORT_THREAD.with(std::cell::Cell::get)
}

/// The OTLP exporter, run on the export runtime and counted.
struct CountingExporter {
    inner: opentelemetry_otlp::MetricExporter,
    /// The settings' one-line description (never header values), for the log.
    target: String,
    runtime: Arc<ExportRuntime>,
    counters: Arc<ExportCounters>,
    temporality: opentelemetry_sdk::metrics::Temporality,
    /// The export timeout, over the whole export: the transports' own timeouts start once connected (tonic has
    /// no connect or TLS handshake timeout), so a collector address that takes the connection and never answers
    /// held the reader thread, and with it a flush and the shutdown, forever.
    timeout: Duration,
}

impl fmt::Debug for CountingExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingExporter").finish_non_exhaustive()
    }
}

fn count(metrics: &ResourceMetrics) -> (usize, usize) {
    let mut n = 0;
    let mut points = 0;
    for scope in metrics.scope_metrics() {
        for metric in scope.metrics() {
            n += 1;
            points += match metric.data() {
                AggregatedMetrics::F64(d) => data_points(d),
                AggregatedMetrics::U64(d) => data_points(d),
                AggregatedMetrics::I64(d) => data_points(d),
            };
        }
    }
    (n, points)
}

fn data_points<T>(d: &MetricData<T>) -> usize {
    match d {
        MetricData::Gauge(g) => g.data_points().count(),
        MetricData::Sum(s) => s.data_points().count(),
        MetricData::Histogram(h) => h.data_points().count(),
        MetricData::ExponentialHistogram(h) => h.data_points().count(),
    }
}

impl PushMetricExporter for CountingExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        ON_EXPORT_THREAD.with(|t| t.set(true));
        let (n, points) = count(metrics);
        // The reader thread polls this future with a plain executor; the transport needs a tokio reactor, so the
        // request runs on the export runtime while this (dedicated) thread waits for it.
        let result = match self.runtime.handle() {
            Some(handle) => handle.block_on(async {
                tokio::time::timeout(self.timeout, self.inner.export(metrics))
                    .await
                    .unwrap_or(Err(opentelemetry_sdk::error::OTelSdkError::Timeout(self.timeout)))
            }),
            None => Err(opentelemetry_sdk::error::OTelSdkError::AlreadyShutdown),
        };
        match self.counters.note(n, points, &result, Instant::now()) {
            Some(ExportLog::Failed { error, in_a_row }) => tracing::warn!(
                target: "tokenmeter::export",
                export = %self.target,
                %error,
                failed_in_a_row = in_a_row,
                "OTLP metrics export failed (logged again every 10 minutes while exports keep failing; \
                 TokenMeter::export_status counts them)"
            ),
            Some(ExportLog::Working { metrics, data_points }) => tracing::info!(
                target: "tokenmeter::export",
                export = %self.target,
                metrics,
                data_points,
                "OTLP metrics export works: the first export was delivered (logged once; failures are logged as \
                 they come)"
            ),
            Some(ExportLog::Recovered { failed }) => tracing::info!(
                target: "tokenmeter::export",
                export = %self.target,
                failed_in_a_row = failed,
                "OTLP metrics export works again"
            ),
            None => {}
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
        self.temporality
    }
}

const SERVICE_INSTANCE_ID: &str = "service.instance.id";

/// A random UUID (version 4 layout) from the standard library's per-process random hash keys.
fn random_instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let word = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u32(std::process::id());
        h.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
        h.finish()
    };
    let (a, b) = (word(1), word(2));
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000; // RFC 4122 variant
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000; // version 4
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// Requests the gRPC channel queues while it is not ready (tonic's default: 1,024). One export is in flight at a
/// time (the reader thread waits for it), so two leave room for a flush behind a periodic export.
const GRPC_BUFFER: usize = 2;

/// The HTTP exporter's client: sends each request with the resolved headers only. opentelemetry-otlp adds
/// `OTEL_EXPORTER_OTLP_[METRICS_]HEADERS` over the headers it is given (under `ignore_env()` too, the environment's
/// value winning): an application sending traces to one vendor with its key in that variable sent the key to
/// tokenmeter's collector, in place of the one configured for it.
#[derive(Debug)]
struct ResolvedHeaders {
    inner: reqwest::Client,
    headers: http::HeaderMap,
}

impl ResolvedHeaders {
    fn new(inner: reqwest::Client, resolved: &[(String, String)]) -> Result<Self, OtlpError> {
        Ok(ResolvedHeaders { inner, headers: header_map(resolved)? })
    }
}

/// The resolved headers as HTTP headers (names lowercased), or the first one no client can send.
fn header_map(resolved: &[(String, String)]) -> Result<http::HeaderMap, OtlpError> {
    let mut headers = http::HeaderMap::new();
    for (k, v) in resolved {
        let bad = |reason: String| OtlpError::InvalidHeader { name: k.clone(), reason };
        let name = http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).map_err(|e| bad(e.to_string()))?;
        headers.insert(name, http::HeaderValue::from_str(v).map_err(|e| bad(e.to_string()))?);
    }
    Ok(headers)
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ResolvedHeaders {
    async fn send_bytes(
        &self,
        mut request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        // What the exporter sets itself (the body's type and encoding, its user agent unless one was configured)
        // stays; the rest are the resolved headers.
        let h = request.headers_mut();
        let own = [http::header::CONTENT_TYPE, http::header::CONTENT_ENCODING, http::header::USER_AGENT];
        let kept: Vec<_> = own.into_iter().filter_map(|name| h.remove(&name).map(|v| (name, v))).collect();
        *h = self.headers.clone();
        for (name, value) in kept {
            if name != http::header::USER_AGENT || !h.contains_key(&name) {
                h.insert(name, value);
            }
        }
        self.inner.send_bytes(request).await
    }
}

/// What [`build`] made: the provider plus what the meter keeps to report on it.
pub(crate) struct OwnedPipeline {
    pub(crate) provider: SdkMeterProvider,
    pub(crate) settings: OtlpSettings,
    pub(crate) counters: Arc<ExportCounters>,
    /// The proxy variable OTLP/HTTP requests go through (read when the client was built), for errors.
    pub(crate) proxy: Option<&'static str>,
    /// Kept so the runtime lives as long as the meter (the exporter holds it too).
    _runtime: Arc<ExportRuntime>,
}

/// Builds the provider, reader, exporter and runtime for `settings`.
pub(crate) fn build(settings: OtlpSettings) -> Result<OwnedPipeline, OtlpError> {
    let runtime = Arc::new(ExportRuntime::new()?);
    let temporality = match settings.temporality {
        Temporality::Cumulative => opentelemetry_sdk::metrics::Temporality::Cumulative,
        Temporality::Delta => opentelemetry_sdk::metrics::Temporality::Delta,
        Temporality::LowMemory => opentelemetry_sdk::metrics::Temporality::LowMemory,
    };
    let compression = match settings.compression {
        Compression::None => None,
        Compression::Gzip => Some(opentelemetry_otlp::Compression::Gzip),
    };
    let exporter = {
        // tonic spawns its connection task at build time and needs the runtime's context for it.
        let _enter = runtime.handle().map(|h| h.enter());
        let built = match settings.protocol {
            Protocol::Grpc => {
                let metadata = opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(header_map(
                    &settings.headers,
                )?);
                // tokenmeter's own channel. The one opentelemetry-otlp builds sets only the request timeout,
                // which starts once connected: no connect or TLS handshake timeout, so a collector address
                // that never answers kept the channel connecting, and each export cut off by the export
                // timeout left its request (the whole batch of metrics) in tonic's buffer of 1,024, one more
                // an interval. Here connecting and the handshake time out too, and the buffer holds two.
                let bad = |e: tonic::transport::Error| OtlpError::Exporter(format!("gRPC channel: {e}"));
                let endpoint = tonic::transport::Endpoint::from_shared(settings.endpoint.clone())
                    .map_err(bad)?
                    .timeout(settings.timeout)
                    .connect_timeout(settings.timeout)
                    .buffer_size(GRPC_BUFFER);
                // tonic trusts no root certificate unless told to: the bundled webpki roots and the system's.
                #[cfg(feature = "otlp-tls")]
                let endpoint = if settings.endpoint.starts_with("https://") {
                    use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig};
                    let mut tls = ClientTlsConfig::new().with_enabled_roots().timeout(settings.timeout);
                    if let Some(pem) = ca_pem(&settings)? {
                        tls = tls.ca_certificate(Certificate::from_pem(pem));
                    }
                    endpoint.tls_config(tls).map_err(bad)?
                } else {
                    endpoint
                };
                // opentelemetry-otlp adds `OTEL_EXPORTER_OTLP_[METRICS_]HEADERS` over the metadata it is given
                // (under `ignore_env()` too, the environment's value winning): an interceptor, which runs after
                // that, sends the resolved metadata instead.
                let resolved = metadata.clone();
                let mut b = opentelemetry_otlp::MetricExporter::builder()
                    .with_tonic()
                    .with_channel(endpoint.connect_lazy())
                    .with_timeout(settings.timeout)
                    .with_temporality(temporality)
                    .with_metadata(metadata)
                    .with_interceptor(move |mut req: tonic::Request<()>| {
                        // The exporter's `user-agent` stays, unless one was configured.
                        let agent = req.metadata().get("user-agent").cloned();
                        *req.metadata_mut() = resolved.clone();
                        if let Some(agent) = agent.filter(|_| !resolved.contains_key("user-agent")) {
                            req.metadata_mut().insert("user-agent", agent);
                        }
                        Ok(req)
                    });
                if let Some(c) = compression {
                    b = b.with_compression(c);
                }
                b.build()
            }
            Protocol::HttpProtobuf => {
                // opentelemetry-otlp percent-decodes every value it is handed: the values, already decoded (from
                // the environment) or given as is (the builder), have their `%` escaped to arrive unchanged.
                let headers: HashMap<String, String> =
                    settings.headers.iter().map(|(k, v)| (k.clone(), v.replace('%', "%25"))).collect();
                let mut b = opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(settings.endpoint.clone())
                    .with_timeout(settings.timeout)
                    .with_temporality(temporality)
                    .with_headers(headers);
                if let Some(c) = compression {
                    b = b.with_compression(c);
                }
                // opentelemetry-otlp's own client, as it builds it (the request timeout); a CA file is added to the
                // system's roots. reqwest follows the proxy variables (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`), as a
                // collector elsewhere may need; a collector on this machine (a sidecar) is never reached through
                // one, as Go's HTTP clients do, where a platform's proxy without `NO_PROXY=localhost` would lose
                // every export.
                let client = reqwest::Client::builder().timeout(settings.timeout);
                let client = if crate::net::is_loopback_url(&settings.endpoint) { client.no_proxy() } else { client };
                #[cfg(feature = "otlp-tls")]
                let client = match ca_pem(&settings)? {
                    Some(pem) => {
                        let bad = |e: reqwest::Error| OtlpError::Certificate {
                            path: settings.certificate.clone().unwrap_or_default(),
                            reason: e.to_string(),
                        };
                        client.tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem).map_err(bad)?)
                    }
                    None => client,
                };
                let client = client.build().map_err(|e| OtlpError::Exporter(format!("HTTP client: {e}")))?;
                b = b.with_http_client(ResolvedHeaders::new(client, &settings.headers)?);
                b.build()
            }
        };
        built.map_err(|e| OtlpError::Exporter(e.to_string()))?
    };
    // gRPC goes through no proxy (tonic's channel reads no proxy variables).
    let proxy = match settings.protocol {
        Protocol::Grpc => None,
        _ => crate::net::proxy_variable(&settings.endpoint),
    };
    let counters = Arc::new(ExportCounters::default());
    let exporter = CountingExporter {
        inner: exporter,
        target: match proxy {
            Some(name) => format!("{settings}, through the proxy in {name}"),
            None => settings.to_string(),
        },
        runtime: Arc::clone(&runtime),
        counters: Arc::clone(&counters),
        temporality,
        timeout: settings.timeout,
    };
    let reader = PeriodicReader::builder(exporter).with_interval(settings.interval).build();
    let mut resource = Resource::builder_empty()
        .with_detector(Box::new(opentelemetry_sdk::resource::TelemetryResourceDetector))
        .with_service_name(settings.service_name.clone());
    for attribute in resource_attributes(&settings.resource) {
        resource = resource.with_attribute(attribute);
    }
    let provider = SdkMeterProvider::builder().with_reader(reader).with_resource(resource.build()).build();
    Ok(OwnedPipeline { provider, settings, counters, proxy, _runtime: runtime })
}

/// The resource attributes of the pipeline's metrics: the configured ones, and a random `service.instance.id` unless
/// one is configured. Replicas of one service must not write the same series: each process is its own instance
/// unless told otherwise (Prometheus pipelines turn this into the `instance` label). An empty one counts as none:
/// `service.instance.id=$POD_NAME` with the variable unset would make every replica one instance.
fn resource_attributes(configured: &[(String, String)]) -> Vec<KeyValue> {
    let is_empty_id = |(k, v): &&(String, String)| k == SERVICE_INSTANCE_ID && v.trim().is_empty();
    let mut out: Vec<KeyValue> =
        configured.iter().filter(|kv| !is_empty_id(kv)).map(|(k, v)| KeyValue::new(k.clone(), v.clone())).collect();
    if !out.iter().any(|kv| kv.key.as_str() == SERVICE_INSTANCE_ID) {
        out.push(KeyValue::new(SERVICE_INSTANCE_ID, random_instance_id()));
    }
    out
}

/// The CA certificate file's PEM, checked to hold at least one certificate.
#[cfg(feature = "otlp-tls")]
fn ca_pem(settings: &OtlpSettings) -> Result<Option<Vec<u8>>, OtlpError> {
    let Some(path) = &settings.certificate else {
        return Ok(None);
    };
    let bad = |reason: String| OtlpError::Certificate { path: path.clone(), reason };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(bad("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned()));
    }
    Ok(Some(pem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_process_is_an_instance_unless_one_is_named() {
        let id = |configured: &[(&str, &str)]| {
            let configured: Vec<(String, String)> =
                configured.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            let attributes = resource_attributes(&configured);
            let ids: Vec<String> = attributes
                .iter()
                .filter(|kv| kv.key.as_str() == SERVICE_INSTANCE_ID)
                .map(|kv| kv.value.as_str().into_owned())
                .collect();
            assert_eq!(ids.len(), 1, "{attributes:?}");
            (ids[0].clone(), attributes.len())
        };
        assert_eq!(id(&[("service.instance.id", "pod-7"), ("team", "a")]), ("pod-7".to_owned(), 2));
        // None, or an empty one (`service.instance.id=$POD_NAME` with the variable unset): a random id per pipeline.
        for configured in [&[][..], &[("service.instance.id", "")], &[("service.instance.id", "  ")]] {
            let (a, n) = id(configured);
            assert_eq!((a.len(), n), (36, 1), "{a}");
            assert_ne!(a, id(configured).0);
        }
    }

    #[test]
    fn the_export_runtimes_threads_refuse_a_flush_as_the_reader_thread_does() {
        let runtime = ExportRuntime::new().unwrap();
        let handle = runtime.handle().unwrap().clone();
        let on_worker = handle.block_on(async { tokio::spawn(async { on_export_thread() }).await.unwrap() });
        assert!(on_worker, "a task on the export runtime's worker");
        assert!(!on_export_thread(), "this test's own thread");
    }

    #[test]
    fn a_run_of_failures_is_logged_at_its_start_and_every_ten_minutes_and_its_end_once() {
        let c = ExportCounters::default();
        let failed = Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure("connection refused".into()));
        let t0 = Instant::now();
        assert_eq!(c.note(3, 9, &Ok(()), t0), Some(ExportLog::Working { metrics: 3, data_points: 9 }), "the first");
        assert_eq!(c.note(3, 9, &Ok(()), t0), None, "working exports are not logged after the first");
        let first = c.note(3, 9, &failed, t0);
        assert!(
            matches!(&first, Some(ExportLog::Failed { error, in_a_row: 1 }) if error.contains("connection refused")),
            "{first:?}"
        );
        assert_eq!(c.note(3, 9, &failed, t0 + Duration::from_secs(60)), None);
        assert_eq!(c.note(3, 9, &failed, t0 + WARN_EVERY - Duration::from_secs(1)), None);
        assert!(matches!(c.note(3, 9, &failed, t0 + WARN_EVERY), Some(ExportLog::Failed { in_a_row: 4, .. })));
        assert_eq!(c.last_error().as_deref(), Some("connection refused"), "without the SDK's \"Operation failed: \"");
        assert_eq!(c.note(3, 9, &Ok(()), t0 + WARN_EVERY), Some(ExportLog::Recovered { failed: 4 }));
        assert_eq!(c.note(3, 9, &Ok(()), t0 + WARN_EVERY), None, "recovered once");
        assert_eq!(c.last_error(), None);
        // A collector that comes and goes: a new run of failures within 10 minutes of the last warning is not
        // logged, nor its end; one after that is.
        let soon = t0 + WARN_EVERY + Duration::from_secs(60);
        assert_eq!(c.note(3, 9, &failed, soon), None);
        assert_eq!(c.note(3, 9, &Ok(()), soon), None);
        let later = t0 + WARN_EVERY * 2;
        assert!(matches!(c.note(3, 9, &failed, later), Some(ExportLog::Failed { in_a_row: 1, .. })));
        assert_eq!(c.note(3, 9, &Ok(()), later), Some(ExportLog::Recovered { failed: 1 }));
        let status = c.status(None);
        assert_eq!((status.exports, status.failures), (6, 6));
    }

    #[test]
    fn a_first_delivery_after_logged_failures_is_logged_as_the_recovery_alone() {
        let c = ExportCounters::default();
        let failed = Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure("connection refused".into()));
        let t0 = Instant::now();
        assert!(matches!(c.note(1, 1, &failed, t0), Some(ExportLog::Failed { in_a_row: 1, .. })));
        assert_eq!(c.note(1, 1, &Ok(()), t0), Some(ExportLog::Recovered { failed: 1 }));
        assert_eq!(c.note(1, 1, &Ok(()), t0), None, "the first delivery is not logged again");
    }
}
