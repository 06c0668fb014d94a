//! [`OtlpConfig`]: where and how to export, from the builder and the standard `OTEL_*` environment variables.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::OtlpError;

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// OTLP over gRPC (`grpc`), default port 4317.
    Grpc,
    /// OTLP over HTTP with protobuf bodies (`http/protobuf`), default port 4318. The OTLP default.
    #[default]
    HttpProtobuf,
}

impl Protocol {
    /// The name used by `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc` or `http/protobuf`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }

    fn default_endpoint(self) -> &'static str {
        match self {
            Protocol::Grpc => "http://localhost:4317",
            Protocol::HttpProtobuf => "http://localhost:4318/v1/metrics",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Aggregation temporality of the exported sums and histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Temporality {
    /// Every export carries the totals since the start (what Prometheus, Mimir and Grafana Cloud accept).
    #[default]
    Cumulative,
    /// Every export carries only what changed since the previous export.
    Delta,
    /// The OTLP exporter's `lowmemory` preference: histograms (`gen_ai.client.token.usage`,
    /// `gen_ai.client.operation.duration`, `gen_ai.client.operation.time_to_first_chunk`) are delta; tokenmeter's
    /// exact counters (observable counters) and gauges stay cumulative, as the specification gives for
    /// asynchronous instruments. It saves no memory here: tokenmeter binds its histograms to their attribute
    /// sets, which the SDK keeps. A delta interval whose export failed is lost.
    LowMemory,
}

impl Temporality {
    /// `cumulative`, `delta` or `lowmemory` (the values of `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Temporality::Cumulative => "cumulative",
            Temporality::Delta => "delta",
            Temporality::LowMemory => "lowmemory",
        }
    }
}

/// Compression of export requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compression {
    /// Uncompressed.
    #[default]
    None,
    /// gzip.
    Gzip,
}

/// Where and how to export metrics over OTLP.
///
/// Every setting comes from, in order: the builder method, the standard environment variable (signal-specific
/// `OTEL_EXPORTER_OTLP_METRICS_*` before `OTEL_EXPORTER_OTLP_*`), the OTLP default.
/// [`ignore_env`](Self::ignore_env) turns the environment off.
///
/// | setting | builder | environment | default |
/// |---|---|---|---|
/// | endpoint | [`with_metrics_endpoint`](Self::with_metrics_endpoint) (as is), [`with_endpoint`](Self::with_endpoint) (base) | `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (as is), `OTEL_EXPORTER_OTLP_ENDPOINT` (base) | `http://localhost:4318/v1/metrics`, gRPC `http://localhost:4317` |
/// | protocol | [`with_protocol`](Self::with_protocol) | `OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL` = `grpc` \| `http/protobuf` | `http/protobuf` |
/// | headers | [`with_header`](Self::with_header) | `OTEL_EXPORTER_OTLP_[METRICS_]HEADERS` = `k1=v1,k2=v2` (values percent-decoded) | none |
/// | timeout | [`with_timeout`](Self::with_timeout) | `OTEL_EXPORTER_OTLP_[METRICS_]TIMEOUT` (ms) | 10 s |
/// | compression | [`with_compression`](Self::with_compression) | `OTEL_EXPORTER_OTLP_[METRICS_]COMPRESSION` = `gzip` \| `none` | none |
/// | interval | [`with_interval`](Self::with_interval) | `OTEL_METRIC_EXPORT_INTERVAL` (ms) | 60 s |
/// | temporality | [`with_temporality`](Self::with_temporality) | `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` = `cumulative` \| `delta` \| `lowmemory` | cumulative |
/// | service name | [`with_service_name`](Self::with_service_name), else a `service.name` [`with_resource_attribute`](Self::with_resource_attribute) | `OTEL_SERVICE_NAME`, else `service.name` in `OTEL_RESOURCE_ATTRIBUTES` | `unknown_service:` and the executable's name |
/// | resource | [`with_resource_attribute`](Self::with_resource_attribute) | `OTEL_RESOURCE_ATTRIBUTES` = `k1=v1,k2=v2` | none |
///
/// With the HTTP protocol a *base* endpoint (the builder's, or `OTEL_EXPORTER_OTLP_ENDPOINT`) gets `/v1/metrics`
/// appended to its path (before a `?query`) unless it already ends so; `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is
/// used as is. gRPC endpoints are
/// used as given. `https://` endpoints need the `otlp-tls` feature.
///
/// ```
/// use std::time::Duration;
/// use tokenmeter::export::otlp::{OtlpConfig, Protocol};
///
/// let config = OtlpConfig::new()
///     .with_endpoint("http://127.0.0.1:4317")
///     .with_protocol(Protocol::Grpc)
///     .with_interval(Duration::from_secs(10))
///     .with_service_name("support-bot")
///     .ignore_env();
/// let settings = config.resolve().unwrap();
/// assert_eq!(settings.endpoint, "http://127.0.0.1:4317");
/// assert_eq!(settings.to_string(), "grpc to http://127.0.0.1:4317 every 10s (cumulative, timeout 10s)");
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct OtlpConfig {
    endpoint: Option<String>,
    metrics_endpoint: Option<String>,
    protocol: Option<Protocol>,
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
    interval: Option<Duration>,
    temporality: Option<Temporality>,
    compression: Option<Compression>,
    service_name: Option<String>,
    resource: Vec<(String, String)>,
    certificate: Option<PathBuf>,
    ignore_env: bool,
}

impl fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values are often credentials: show their names only; endpoints without `user:password@` or a
        // query (see `redacted`).
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtlpConfig")
            .field("endpoint", &self.endpoint.as_deref().map(redacted))
            .field("metrics_endpoint", &self.metrics_endpoint.as_deref().map(redacted))
            .field("protocol", &self.protocol)
            .field("headers", &header_names)
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .field("temporality", &self.temporality)
            .field("compression", &self.compression)
            .field("service_name", &self.service_name)
            .field("resource", &self.resource)
            .field("certificate", &self.certificate)
            .field("ignore_env", &self.ignore_env)
            .finish()
    }
}

/// Environment variables read by [`OtlpConfig`].
pub mod env {
    /// Base endpoint for all signals (HTTP: `/v1/metrics` is appended).
    pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
    /// Full metrics endpoint, used as is.
    pub const OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
    /// `grpc` or `http/protobuf`.
    pub const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
    /// `grpc` or `http/protobuf`, metrics only.
    pub const OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL";
    /// `k1=v1,k2=v2`.
    pub const OTEL_EXPORTER_OTLP_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
    /// `k1=v1,k2=v2`, metrics only.
    pub const OTEL_EXPORTER_OTLP_METRICS_HEADERS: &str = "OTEL_EXPORTER_OTLP_METRICS_HEADERS";
    /// Milliseconds.
    pub const OTEL_EXPORTER_OTLP_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
    /// Milliseconds, metrics only.
    pub const OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT";
    /// `gzip` or `none`.
    pub const OTEL_EXPORTER_OTLP_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
    /// `gzip` or `none`, metrics only.
    pub const OTEL_EXPORTER_OTLP_METRICS_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION";
    /// `cumulative`, `delta` or `lowmemory` (see [`Temporality`](super::Temporality)).
    pub const OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: &str =
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";
    /// Export interval, milliseconds.
    pub const OTEL_METRIC_EXPORT_INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";
    /// The `service.name` resource attribute.
    pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
    /// Resource attributes, `k1=v1,k2=v2`.
    pub const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
    /// `true` disables the SDK: [`OtlpConfig::from_env`](super::OtlpConfig::from_env) returns `None`.
    pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
    /// A PEM file of CA certificates to trust for an `https://` endpoint.
    pub const OTEL_EXPORTER_OTLP_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_CERTIFICATE";
    /// The same for metrics only.
    pub const OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE: &str = "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE";
    /// The metrics exporters an application asks for (`otlp`, `none`, `prometheus`, …; comma-separated).
    pub const OTEL_METRICS_EXPORTER: &str = "OTEL_METRICS_EXPORTER";
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
const HTTP_METRICS_PATH: &str = "/v1/metrics";

impl OtlpConfig {
    /// A configuration that takes everything not set on it from the `OTEL_*` environment variables, then from
    /// the OTLP defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// `Some` when the environment asks for export: `OTEL_EXPORTER_OTLP_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is set, `OTEL_SDK_DISABLED` is not `true`, and
    /// `OTEL_METRICS_EXPORTER`, when set, names `otlp` (`none` turns metrics off where the endpoint is there for
    /// traces). For applications that export only where a collector was configured.
    pub fn from_env() -> Option<Self> {
        Self::from_env_with(|k| std::env::var(k).ok())
    }

    fn from_env_with(get: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let set = |k: &str| get(k).is_some_and(|v| !v.trim().is_empty());
        let disabled = get(env::OTEL_SDK_DISABLED).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let not_otlp = get(env::OTEL_METRICS_EXPORTER)
            .filter(|v| !v.trim().is_empty())
            .is_some_and(|v| !v.split(',').any(|e| e.trim().eq_ignore_ascii_case("otlp")));
        (!disabled
            && !not_otlp
            && (set(env::OTEL_EXPORTER_OTLP_ENDPOINT) || set(env::OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)))
        .then(Self::new)
    }

    /// `OTEL_SDK_DISABLED` is `true` and this configuration reads the environment (no [`ignore_env`]): the
    /// OpenTelemetry kill switch an operator sets for a fleet, which [`with_otlp`] honours as the SDKs do (no
    /// export), as [`from_env`](Self::from_env) does.
    ///
    /// [`ignore_env`]: Self::ignore_env
    /// [`with_otlp`]: crate::TokenMeterBuilder::with_otlp
    pub fn sdk_disabled(&self) -> bool {
        !self.ignore_env && std::env::var(env::OTEL_SDK_DISABLED).is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// The collector's endpoint: a base URL such as `http://127.0.0.1:4318` (HTTP; `/v1/metrics` is appended
    /// unless present) or `http://127.0.0.1:4317` (gRPC).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The full metrics URL, used as is (nothing appended), as `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is: for a
    /// backend whose metrics path is not `/v1/metrics`. Wins over [`with_endpoint`](Self::with_endpoint).
    pub fn with_metrics_endpoint(mut self, url: impl Into<String>) -> Self {
        self.metrics_endpoint = Some(url.into());
        self
    }

    /// The transport (default: `http/protobuf`, as OTLP specifies).
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// Adds a header (HTTP) or metadata entry (gRPC) sent with every export, e.g. an API key. Headers from the
    /// environment are added to these.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// How long one export may take, retries included (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How often metrics are collected and exported (default 60 s).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// Cumulative (default) or delta temporality.
    pub fn with_temporality(mut self, temporality: Temporality) -> Self {
        self.temporality = Some(temporality);
        self
    }

    /// Request compression (default none).
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = Some(compression);
        self
    }

    /// The `service.name` resource attribute; Prometheus pipelines usually turn it into the `job` label.
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Adds a resource attribute (e.g. `deployment.environment.name`). Set on every exported series by most
    /// Prometheus pipelines, so keep them few and low-cardinality.
    pub fn with_resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource.push((key.into(), value.into()));
        self
    }

    /// A PEM file of CA certificates to trust, besides the system's, for an `https://` endpoint (a collector
    /// behind a private CA). Read when the exporter is built. Needs the `otlp-tls` feature.
    pub fn with_certificate(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.certificate = Some(pem_file.into());
        self
    }

    /// Ignores every `OTEL_*` environment variable: only the builder and the defaults count. One exception, in
    /// opentelemetry-otlp, which reads it itself: `OTEL_EXPORTER_OTLP_[METRICS_]COMPRESSION=gzip` compresses even
    /// without [`with_compression`](Self::with_compression). (Its headers variables, which it also reads, are
    /// kept out: the headers sent are the resolved ones.)
    pub fn ignore_env(mut self) -> Self {
        self.ignore_env = true;
        self
    }

    /// Resolves the configuration against the environment and the defaults, checking every value.
    pub fn resolve(&self) -> Result<OtlpSettings, OtlpError> {
        if self.ignore_env { self.resolve_with(|_| None) } else { self.resolve_with(|k| std::env::var(k).ok()) }
    }

    pub(crate) fn resolve_with(&self, get: impl Fn(&str) -> Option<String>) -> Result<OtlpSettings, OtlpError> {
        let get = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let pick = |specific: &'static str, general: &'static str| {
            get(specific).map(|v| (specific, v)).or_else(|| get(general).map(|v| (general, v)))
        };

        let protocol = match self.protocol {
            Some(p) => p,
            None => match pick(env::OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, env::OTEL_EXPORTER_OTLP_PROTOCOL) {
                Some((var, v)) => parse_protocol(var, &v)?,
                None => Protocol::default(),
            },
        };

        // Where it came from, for the error: a bad value from the environment names its variable.
        let (endpoint, from) =
            match (&self.metrics_endpoint, &self.endpoint, get(env::OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)) {
                (Some(full), _, _) => (full.trim().to_owned(), None),
                (None, Some(base), _) => (signal_endpoint(protocol, base), None),
                (None, None, Some(full)) => (full, Some(env::OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)),
                (None, None, None) => match get(env::OTEL_EXPORTER_OTLP_ENDPOINT) {
                    Some(base) => (signal_endpoint(protocol, &base), Some(env::OTEL_EXPORTER_OTLP_ENDPOINT)),
                    None => (protocol.default_endpoint().to_owned(), None),
                },
            };
        check_endpoint(&endpoint).map_err(|e| match (e, from) {
            (OtlpError::InvalidEndpoint { endpoint, reason }, Some(var)) => {
                OtlpError::InvalidEndpoint { endpoint, reason: format!("{reason} (the value of {var})") }
            }
            (e, _) => e,
        })?;

        let mut headers = Vec::new();
        for (k, v) in &self.headers {
            headers.push(check_header(k, v)?);
        }
        if let Some((var, raw)) = pick(env::OTEL_EXPORTER_OTLP_METRICS_HEADERS, env::OTEL_EXPORTER_OTLP_HEADERS) {
            for (k, v) in parse_pairs(var, &raw, true)? {
                if !headers.iter().any(|(h, _): &(String, String)| h.eq_ignore_ascii_case(&k)) {
                    headers.push(check_header(&k, &v)?);
                }
            }
        }

        let timeout = match self.timeout {
            Some(t) => t,
            None => match pick(env::OTEL_EXPORTER_OTLP_METRICS_TIMEOUT, env::OTEL_EXPORTER_OTLP_TIMEOUT) {
                Some((var, v)) => parse_millis(var, &v)?,
                None => DEFAULT_TIMEOUT,
            },
        };
        let interval = match self.interval {
            Some(i) => i,
            None => match get(env::OTEL_METRIC_EXPORT_INTERVAL) {
                Some(v) => parse_millis(env::OTEL_METRIC_EXPORT_INTERVAL, &v)?,
                None => DEFAULT_INTERVAL,
            },
        };
        if timeout.is_zero() {
            return Err(OtlpError::InvalidSetting { setting: "timeout", reason: "must be more than zero".into() });
        }
        if interval.is_zero() {
            return Err(OtlpError::InvalidSetting { setting: "interval", reason: "must be more than zero".into() });
        }

        let compression = match self.compression {
            Some(c) => c,
            None => match pick(env::OTEL_EXPORTER_OTLP_METRICS_COMPRESSION, env::OTEL_EXPORTER_OTLP_COMPRESSION) {
                Some((var, v)) => match v.to_ascii_lowercase().as_str() {
                    "gzip" => Compression::Gzip,
                    "none" => Compression::None,
                    _ => return Err(invalid_env(var, &v, "expected `gzip` or `none`")),
                },
                None => Compression::None,
            },
        };

        let temporality = match self.temporality {
            Some(t) => t,
            None => match get(env::OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE) {
                Some(v) => match v.to_ascii_lowercase().as_str() {
                    "cumulative" => Temporality::Cumulative,
                    "delta" => Temporality::Delta,
                    "lowmemory" => Temporality::LowMemory,
                    _ => {
                        return Err(invalid_env(
                            env::OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE,
                            &v,
                            "expected `cumulative`, `delta` or `lowmemory`",
                        ));
                    }
                },
                None => Temporality::Cumulative,
            },
        };

        let mut resource = Vec::new();
        if let Some(raw) = get(env::OTEL_RESOURCE_ATTRIBUTES) {
            resource = parse_pairs(env::OTEL_RESOURCE_ATTRIBUTES, &raw, false)?;
        }
        for (k, v) in &self.resource {
            if k.trim().is_empty() {
                return Err(OtlpError::InvalidSetting {
                    setting: "resource attribute",
                    reason: "an attribute key is empty".into(),
                });
            }
            resource.retain(|(rk, _)| rk != k);
            resource.push((k.clone(), v.clone()));
        }
        let certificate = match &self.certificate {
            Some(path) => Some(path.clone()),
            // A CA file set for every workload (a platform's mounted CA) means nothing to a plain http://
            // endpoint, and is left out rather than refused: the certificate set in code still is.
            None => pick(env::OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE, env::OTEL_EXPORTER_OTLP_CERTIFICATE)
                .filter(|_| endpoint.starts_with("https://"))
                .map(|(_, v)| PathBuf::from(v)),
        };
        if let Some(path) = &certificate {
            if !cfg!(feature = "otlp-tls") {
                return Err(OtlpError::InvalidSetting {
                    setting: "certificate",
                    reason: format!("{} needs TLS: enable the `otlp-tls` feature", path.display()),
                });
            }
            if !endpoint.starts_with("https://") {
                return Err(OtlpError::InvalidSetting {
                    setting: "certificate",
                    reason: format!(
                        "{} is for an https:// endpoint, and {} is not one",
                        path.display(),
                        redacted(&endpoint)
                    ),
                });
            }
        }

        let resource_service = resource.iter().position(|(k, _)| k == "service.name").map(|i| resource.remove(i).1);
        // A builder setting wins: `with_service_name`, then a `service.name` resource attribute set in code.
        let builder_service = self.resource.iter().rev().find(|(k, _)| k == "service.name").map(|(_, v)| v.clone());
        let service_name = self
            .service_name
            .clone()
            .or(builder_service)
            .or_else(|| get(env::OTEL_SERVICE_NAME))
            .or(resource_service)
            .unwrap_or_else(unknown_service);

        Ok(OtlpSettings {
            protocol,
            endpoint,
            headers,
            timeout,
            interval,
            temporality,
            compression,
            service_name,
            resource,
            certificate,
        })
    }
}

/// An [`OtlpConfig`] resolved against the environment and the defaults: what the exporter really uses.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtlpSettings {
    /// The transport.
    pub protocol: Protocol,
    /// The full endpoint URL requests go to.
    pub endpoint: String,
    /// Headers (HTTP) or metadata (gRPC) sent with every export.
    pub headers: Vec<(String, String)>,
    /// Time allowed for one export.
    pub timeout: Duration,
    /// Time between exports.
    pub interval: Duration,
    /// Temporality of sums and histograms.
    pub temporality: Temporality,
    /// Request compression.
    pub compression: Compression,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// Other resource attributes.
    pub resource: Vec<(String, String)>,
    /// A PEM file of CA certificates trusted besides the system's.
    pub certificate: Option<PathBuf>,
}

impl fmt::Debug for OtlpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtlpSettings")
            .field("protocol", &self.protocol)
            .field("endpoint", &redacted(&self.endpoint))
            .field("headers", &header_names)
            .field("timeout", &self.timeout)
            .field("interval", &self.interval)
            .field("temporality", &self.temporality)
            .field("compression", &self.compression)
            .field("service_name", &self.service_name)
            .field("resource", &self.resource)
            .field("certificate", &self.certificate)
            .finish()
    }
}

impl fmt::Display for OtlpSettings {
    /// One line for logs: `http/protobuf to http://127.0.0.1:4318/v1/metrics every 60s (cumulative, timeout 10s)`.
    /// Header values are never shown, nor credentials or a query in the endpoint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} to {} every {:?} ({}, timeout {:?}",
            self.protocol,
            redacted(&self.endpoint),
            self.interval,
            self.temporality.as_str(),
            self.timeout
        )?;
        if self.compression == Compression::Gzip {
            f.write_str(", gzip")?;
        }
        if !self.headers.is_empty() {
            let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
            write!(f, ", headers {}", names.join(","))?;
        }
        if let Some(path) = &self.certificate {
            write!(f, ", CA {}", path.display())?;
        }
        f.write_str(")")
    }
}

/// `endpoint` for a log line: `user:password@` and a `?query` (where tokens are sometimes put) left out.
fn redacted(endpoint: &str) -> String {
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("", endpoint));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let path = match path.find(['?', '#']) {
        Some(i) => format!("{}?…", &path[..i]),
        None => path.to_owned(),
    };
    let userinfo = if host.len() < authority.len() { "…@" } else { "" };
    if scheme.is_empty() { format!("{userinfo}{host}{path}") } else { format!("{scheme}://{userinfo}{host}{path}") }
}

fn invalid_env(var: &'static str, value: &str, reason: &str) -> OtlpError {
    OtlpError::InvalidEnv { var, value: value.to_owned(), reason: reason.to_owned() }
}

fn parse_protocol(var: &'static str, v: &str) -> Result<Protocol, OtlpError> {
    match v.to_ascii_lowercase().as_str() {
        "grpc" => Ok(Protocol::Grpc),
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        "http/json" => Err(invalid_env(var, v, "http/json is not supported: use `http/protobuf` or `grpc`")),
        _ => Err(invalid_env(var, v, "expected `grpc` or `http/protobuf`")),
    }
}

fn parse_millis(var: &'static str, v: &str) -> Result<Duration, OtlpError> {
    match v.parse::<u64>() {
        Ok(0) => Err(invalid_env(var, v, "must be more than zero milliseconds")),
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => Err(invalid_env(var, v, "expected a whole number of milliseconds")),
    }
}

/// The metrics URL for a base endpoint.
fn signal_endpoint(protocol: Protocol, base: &str) -> String {
    let base = base.trim();
    match protocol {
        Protocol::Grpc => base.to_owned(),
        Protocol::HttpProtobuf => {
            // The path goes before a query (`https://gw/otlp?tenant=a`: a gateway's routing), not after it.
            let (url, query) = base.split_once('?').map_or((base, None), |(url, query)| (url, Some(query)));
            let trimmed = url.trim_end_matches('/');
            let url = if trimmed.ends_with(HTTP_METRICS_PATH) {
                trimmed.to_owned()
            } else {
                format!("{trimmed}{HTTP_METRICS_PATH}")
            };
            match query {
                Some(query) => format!("{url}?{query}"),
                None => url,
            }
        }
    }
}

fn check_endpoint(endpoint: &str) -> Result<(), OtlpError> {
    // Named in errors without `user:password@` or a query: an application logs the error, or panics with it.
    let bad = |reason: &str| OtlpError::InvalidEndpoint { endpoint: redacted(endpoint), reason: reason.to_owned() };
    let rest = if let Some(rest) = endpoint.strip_prefix("http://") {
        rest
    } else if let Some(rest) = endpoint.strip_prefix("https://") {
        if !cfg!(feature = "otlp-tls") {
            return Err(OtlpError::TlsNotEnabled { endpoint: redacted(endpoint) });
        }
        rest
    } else {
        return Err(bad("it must start with http:// or https://, e.g. http://127.0.0.1:4318"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // The port is after the host, not in `user:password@` (whose `:` read as a port's and refused the endpoint).
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if authority.is_empty() {
        return Err(bad("it has no host"));
    }
    if authority.chars().any(|c| c.is_whitespace()) {
        return Err(bad("the host contains whitespace"));
    }
    if let Some((host, port)) = authority.rsplit_once(':')
        && !host.ends_with(']')
        && !host.contains(':')
        && port.parse::<u16>().is_err()
    {
        return Err(bad("the port is not a number between 0 and 65535"));
    }
    // What the exporters parse it as: a space or a character outside ASCII in the path or query passed here
    // and failed in the exporter's build, whose error quoted the whole URL, query and all.
    if endpoint.parse::<http::Uri>().is_err() {
        return Err(bad("it is not a valid URL (percent-encode spaces and characters outside ASCII)"));
    }
    Ok(())
}

fn check_header(name: &str, value: &str) -> Result<(String, String), OtlpError> {
    let name = name.trim();
    let bad = |reason: &str| OtlpError::InvalidHeader { name: name.to_owned(), reason: reason.to_owned() };
    if name.is_empty() {
        return Err(bad("the header name is empty"));
    }
    // RFC 9110 token characters; gRPC metadata keys are additionally lower-case, done at export.
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
        return Err(bad("a header name may hold only letters, digits and !#$%&'*+-.^_`|~"));
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(bad("the value contains a line break or NUL"));
    }
    // What both transports can send (the HTTP client would drop such a header without a word).
    if http::HeaderValue::from_str(value.trim()).is_err() {
        return Err(bad("the value contains a control character"));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// Parses `k1=v1,k2=v2` with percent-decoded keys and values (the format of the OTLP headers and resource
/// attribute variables).
///
/// `secret` for the headers variables: their values are credentials (often set fleet-wide for another vendor),
/// so an error shows the keys only, each value as `…`, and never quotes the entry at fault (a value cut at an
/// unencoded comma is the usual one).
fn parse_pairs(var: &'static str, raw: &str, secret: bool) -> Result<Vec<(String, String)>, OtlpError> {
    let shown = || {
        if !secret {
            return raw.to_owned();
        }
        let items = raw.split(',').map(str::trim).filter(|s| !s.is_empty());
        items
            .map(|item| item.split_once('=').map_or("…".to_owned(), |(k, _)| format!("{}=…", k.trim())))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for (n, item) in raw.split(',').map(str::trim).filter(|s| !s.is_empty()).enumerate() {
        let Some((k, v)) = item.split_once('=') else {
            let what = if secret { format!("entry {} (shown as `…`)", n + 1) } else { format!("`{item}`") };
            let hint = if secret { " (a value with an unencoded comma? write it as %2C)" } else { "" };
            return Err(invalid_env(var, &shown(), &format!("{what} is not of the form key=value{hint}")));
        };
        let k = percent_decode(k.trim()).ok_or_else(|| invalid_env(var, &shown(), "bad percent-encoding"))?;
        let v = percent_decode(v.trim()).ok_or_else(|| invalid_env(var, &shown(), "bad percent-encoding"))?;
        if k.is_empty() {
            return Err(invalid_env(var, &shown(), "a key is empty"));
        }
        out.retain(|(ok, _)| *ok != k);
        out.push((k, v));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The resource semantic conventions' fallback when no service name is given: `unknown_service:` and the
/// process's executable name (`unknown_service:support-bot`), or `unknown_service` alone when it has none. Two
/// applications without a name were one Prometheus `job`, `unknown_service`, on every dashboard and alert.
fn unknown_service() -> String {
    let exe = std::env::current_exe().ok();
    match exe.as_deref().and_then(std::path::Path::file_name).and_then(|n| n.to_str()).filter(|n| !n.is_empty()) {
        Some(name) => format!("unknown_service:{name}"),
        None => "unknown_service".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve(config: &OtlpConfig, vars: &[(&str, &str)]) -> Result<OtlpSettings, OtlpError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        config.resolve_with(|k| map.get(k).cloned())
    }

    #[test]
    fn an_endpoint_the_exporter_cannot_parse_is_refused_without_its_query() {
        let err = resolve(&OtlpConfig::new().with_endpoint("http://collector:4318/my path?api_key=s3cret"), &[])
            .expect_err("a space in the path");
        let text = format!("{err} {err:?}");
        assert!(text.contains("not a valid URL") && !text.contains("s3cret"), "{text}");
    }

    #[test]
    fn endpoints_with_credentials_ipv6_hosts_and_queries_still_pass() {
        for endpoint in [
            "http://[::1]:4318/v1/metrics",
            "https://bob:s3cret@otlp.example.com:4318/v1/metrics",
            "http://127.0.0.1:4318/v1/metrics?api_key=s3cret",
            "http://collector/otlp%20in%20a%20path/v1/metrics",
        ] {
            if endpoint.starts_with("https") && !cfg!(feature = "otlp-tls") {
                continue;
            }
            assert!(resolve(&OtlpConfig::new().with_endpoint(endpoint), &[]).is_ok(), "{endpoint}");
        }
    }

    #[test]
    fn a_bad_endpoint_from_the_environment_names_its_variable() {
        for var in [env::OTEL_EXPORTER_OTLP_ENDPOINT, env::OTEL_EXPORTER_OTLP_METRICS_ENDPOINT] {
            let err = resolve(&OtlpConfig::new(), &[(var, "collector:4317")]).expect_err("no scheme");
            assert!(err.to_string().contains(&format!("(the value of {var})")), "{err}");
        }
        let err = resolve(&OtlpConfig::new().with_endpoint("collector:4317"), &[]).expect_err("no scheme");
        assert!(!err.to_string().contains("the value of"), "set in code: {err}");
    }

    #[test]
    fn a_bad_headers_variable_is_reported_without_its_values() {
        // One entry without `=` (a value cut at an unencoded comma): the error quoted the whole variable, the
        // bearer token with it, wherever the application printed the error.
        for raw in ["authorization=Bearer sk-live-abc,x-scope-orgid", "authorization=Bearer sk-live-abc,api-key=ab%zz"]
        {
            for var in [env::OTEL_EXPORTER_OTLP_HEADERS, env::OTEL_EXPORTER_OTLP_METRICS_HEADERS] {
                let err = resolve(&OtlpConfig::new(), &[(var, raw)]).expect_err("a bad entry");
                for text in [err.to_string(), format!("{err:?}")] {
                    assert!(!text.contains("sk-live") && !text.contains("orgid") && !text.contains("%zz"), "{text}");
                    assert!(text.contains(var) && text.contains("authorization=…"), "{text}");
                }
            }
        }
        let err = resolve(&OtlpConfig::new(), &[(env::OTEL_EXPORTER_OTLP_HEADERS, "a=1,b")]).unwrap_err();
        assert!(err.to_string().contains("entry 2 (shown as `…`) is not of the form key=value"), "{err}");
        // Resource attributes are no secret: the entry at fault is quoted.
        let err = resolve(&OtlpConfig::new(), &[(env::OTEL_RESOURCE_ATTRIBUTES, "team=a,oops")]).unwrap_err();
        assert!(err.to_string().contains("`oops` is not of the form key=value"), "{err}");
    }

    #[test]
    fn logged_endpoints_leave_out_credentials_and_queries() {
        assert_eq!(redacted("http://127.0.0.1:4318/v1/metrics"), "http://127.0.0.1:4318/v1/metrics");
        assert_eq!(
            redacted("https://bob:s3cret@otlp.example.com:4318/v1/metrics"),
            "https://…@otlp.example.com:4318/v1/metrics"
        );
        assert_eq!(
            redacted("https://otlp.example.com/v1/metrics?api_key=s3cret"),
            "https://otlp.example.com/v1/metrics?…"
        );
        assert_eq!(redacted("https://otlp.example.com?token=s3cret"), "https://otlp.example.com?…");
        let s = resolve(&OtlpConfig::new().with_endpoint("http://bob:s3cret@otlp.example.com:4318?k=s3cret"), &[]);
        let s = s.unwrap();
        assert!(!s.to_string().contains("s3cret"), "{s}");
        // An https:// endpoint: its settings with the feature `otlp-tls`, the error that names it without.
        match resolve(&OtlpConfig::new().with_endpoint("https://bob:s3cret@otlp.example.com:4318?k=s3cret"), &[]) {
            Ok(s) => assert!(!s.to_string().contains("s3cret"), "{s}"),
            Err(e) => assert!(!e.to_string().contains("s3cret") && e.to_string().contains("otlp.example.com"), "{e}"),
        }
    }

    #[test]
    fn defaults_are_otlp_defaults() {
        let s = resolve(&OtlpConfig::new(), &[]).unwrap();
        assert_eq!(s.protocol, Protocol::HttpProtobuf);
        assert_eq!(s.endpoint, "http://localhost:4318/v1/metrics");
        assert_eq!(s.timeout, Duration::from_secs(10));
        assert_eq!(s.interval, Duration::from_secs(60));
        assert_eq!(s.temporality, Temporality::Cumulative);
        // The semantic conventions' fallback: `unknown_service:` and the executable's name (this test binary's).
        let exe = std::env::current_exe().unwrap();
        let exe = exe.file_name().unwrap().to_str().unwrap();
        assert_eq!(s.service_name, format!("unknown_service:{exe}"));
        let s = resolve(&OtlpConfig::new().with_protocol(Protocol::Grpc), &[]).unwrap();
        assert_eq!(s.endpoint, "http://localhost:4317");
    }

    /// A platform that sets a CA file for every workload does not break one exporting to a plain http://
    /// sidecar: the variable is left out there. Set in code, a certificate for an http:// endpoint is refused.
    #[test]
    fn a_certificate_from_the_environment_is_left_out_for_a_plain_http_endpoint() {
        for var in ["OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE"] {
            let vars = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://sidecar:4318"), (var, "/etc/ssl/platform-ca.pem")];
            let s = resolve(&OtlpConfig::new(), &vars).unwrap();
            assert_eq!((s.endpoint.as_str(), s.certificate), ("http://sidecar:4318/v1/metrics", None), "{var}");
        }
        let in_code = OtlpConfig::new().with_endpoint("http://sidecar:4318").with_certificate("ca.pem");
        assert!(resolve(&in_code, &[]).is_err());
        if cfg!(feature = "otlp-tls") {
            let vars = [
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ssl/platform-ca.pem"),
            ];
            let s = resolve(&OtlpConfig::new(), &vars).unwrap();
            assert_eq!(s.certificate, Some(PathBuf::from("/etc/ssl/platform-ca.pem")), "kept for https://");
        }
    }

    #[test]
    fn environment_fills_what_the_builder_left_open() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=abc%3D%3D,x-team=core"),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "2500"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "5000"),
            ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "Delta"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs,deployment.environment.name=prod"),
        ];
        let s = resolve(&OtlpConfig::new(), &vars).unwrap();
        assert_eq!(s.protocol, Protocol::Grpc, "the metrics-specific variable wins");
        assert_eq!(s.endpoint, "http://collector:4318/", "gRPC endpoints are used as given");
        assert_eq!(s.headers, vec![("api-key".into(), "abc==".into()), ("x-team".into(), "core".into())]);
        assert_eq!(s.timeout, Duration::from_millis(2500));
        assert_eq!(s.interval, Duration::from_secs(5));
        assert_eq!(s.temporality, Temporality::Delta);
        assert_eq!(s.compression, Compression::Gzip);
        for (v, t) in [("lowmemory", Temporality::LowMemory), ("LowMemory", Temporality::LowMemory)] {
            let s = resolve(&OtlpConfig::new(), &[("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", v)]).unwrap();
            assert_eq!(s.temporality, t, "{v}");
            assert_eq!(t.as_str(), "lowmemory");
        }
        assert_eq!(s.service_name, "from-attrs");
        assert_eq!(s.resource, vec![("deployment.environment.name".into(), "prod".into())]);

        let s = resolve(&OtlpConfig::new(), &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://gw.example/otlp")]);
        if cfg!(feature = "otlp-tls") {
            assert_eq!(s.unwrap().endpoint, "https://gw.example/otlp/v1/metrics");
        } else {
            assert!(matches!(s, Err(OtlpError::TlsNotEnabled { .. })));
        }
        let s = resolve(
            &OtlpConfig::new().with_service_name("svc"),
            &[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://c:9999/custom"), ("OTEL_SERVICE_NAME", "env")],
        )
        .unwrap();
        assert_eq!(s.endpoint, "http://c:9999/custom", "the signal-specific endpoint is used as is");
        assert_eq!(s.service_name, "svc", "the builder wins over the environment");
        // Also as a resource attribute set in code.
        let config = OtlpConfig::new().with_resource_attribute("service.name", "mine");
        let s = resolve(&config, &[("OTEL_SERVICE_NAME", "env"), ("OTEL_RESOURCE_ATTRIBUTES", "service.name=res")]);
        assert_eq!(s.unwrap().service_name, "mine");
        let s = resolve(
            &OtlpConfig::new(),
            &[("OTEL_SERVICE_NAME", "env"), ("OTEL_RESOURCE_ATTRIBUTES", "service.name=res")],
        );
        assert_eq!(s.unwrap().service_name, "env", "the specification's order");
    }

    #[test]
    fn a_base_endpoint_gets_the_metrics_path_before_its_query() {
        let base = |b: &str| signal_endpoint(Protocol::HttpProtobuf, b);
        assert_eq!(base("http://gw:4318/otlp?tenant=a"), "http://gw:4318/otlp/v1/metrics?tenant=a");
        assert_eq!(base("http://gw:4318/?tenant=a"), "http://gw:4318/v1/metrics?tenant=a");
        assert_eq!(base("http://gw:4318/"), "http://gw:4318/v1/metrics");
        assert_eq!(base("http://gw:4318/v1/metrics"), "http://gw:4318/v1/metrics", "not twice");
        assert_eq!(signal_endpoint(Protocol::Grpc, "http://gw:4317?x=1"), "http://gw:4317?x=1");
    }

    #[test]
    fn a_metrics_endpoint_is_used_as_is() {
        let config = OtlpConfig::new().with_metrics_endpoint("https://ingest.example/otlp/metrics");
        let vars =
            [("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://env:1/x"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://e:2")];
        if cfg!(feature = "otlp-tls") {
            assert_eq!(resolve(&config, &vars).unwrap().endpoint, "https://ingest.example/otlp/metrics");
        }
        let config = OtlpConfig::new().with_endpoint("http://base:4318").with_metrics_endpoint("http://c:9/m");
        assert_eq!(resolve(&config, &vars).unwrap().endpoint, "http://c:9/m", "it wins over the base endpoint");
        let err = resolve(&OtlpConfig::new().with_metrics_endpoint("c:9/m"), &[]).unwrap_err();
        assert!(matches!(err, OtlpError::InvalidEndpoint { .. }), "{err:?}");
    }

    #[test]
    fn credentials_in_an_endpoint_are_read_and_never_shown() {
        // A password in the endpoint is not a port; and neither it nor a query's token is in an error or `Debug`.
        let s = resolve(&OtlpConfig::new().with_endpoint("http://bob:s3cret@otlp.example.com"), &[]).unwrap();
        assert_eq!(s.endpoint, "http://bob:s3cret@otlp.example.com/v1/metrics");
        assert!(!format!("{s:?} {s}").contains("s3cret"), "{s:?}");
        let config = OtlpConfig::new().with_endpoint("http://bob:s3cret@otlp.example.com:43x8/?api_key=k3y");
        assert!(!format!("{config:?}").contains("s3cret") && !format!("{config:?}").contains("k3y"));
        let err = resolve(&config, &[]).unwrap_err().to_string();
        assert!(err.contains("otlp.example.com:43x8") && err.contains("port"), "{err}");
        assert!(!err.contains("s3cret") && !err.contains("k3y"), "{err}");
        let err = resolve(&OtlpConfig::new().with_endpoint("http://bob:s3cret@"), &[]).unwrap_err().to_string();
        assert!(err.contains("no host") && !err.contains("s3cret"), "{err}");
        if !cfg!(feature = "otlp-tls") {
            let err = resolve(&OtlpConfig::new().with_endpoint("https://bob:s3cret@h:1"), &[]).unwrap_err();
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn builder_wins_and_ignore_env_ignores() {
        let vars = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318"), ("OTEL_METRIC_EXPORT_INTERVAL", "nonsense")];
        let config =
            OtlpConfig::new().with_endpoint("http://127.0.0.1:4318/v1/metrics").with_interval(Duration::from_secs(1));
        let s = resolve(&config, &vars).unwrap();
        assert_eq!(s.endpoint, "http://127.0.0.1:4318/v1/metrics");
        assert_eq!(s.interval, Duration::from_secs(1));
        let s = resolve(&OtlpConfig::new().ignore_env(), &[]).unwrap();
        assert_eq!(s.endpoint, "http://localhost:4318/v1/metrics");
    }

    #[test]
    fn bad_values_are_actionable_errors() {
        let e = resolve(&OtlpConfig::new(), &[("OTEL_METRIC_EXPORT_INTERVAL", "10s")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "OTEL_METRIC_EXPORT_INTERVAL=\"10s\" is not valid: expected a whole number of milliseconds"
        );
        let e = resolve(&OtlpConfig::new(), &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]).unwrap_err();
        assert!(e.to_string().contains("use `http/protobuf` or `grpc`"), "{e}");
        let e = resolve(&OtlpConfig::new().with_endpoint("localhost:4317"), &[]).unwrap_err();
        assert!(e.to_string().contains("must start with http:// or https://"), "{e}");
        let e = resolve(&OtlpConfig::new().with_endpoint("http://host:99999"), &[]).unwrap_err();
        assert!(e.to_string().contains("port"), "{e}");
        let e = resolve(&OtlpConfig::new().with_header("bad name", "v"), &[]).unwrap_err();
        assert!(matches!(e, OtlpError::InvalidHeader { .. }), "{e}");
        let e = resolve(&OtlpConfig::new(), &[("OTEL_EXPORTER_OTLP_HEADERS", "novalue")]).unwrap_err();
        assert!(e.to_string().contains("key=value"), "{e}");
    }

    #[test]
    fn from_env_needs_an_endpoint_and_no_disable() {
        let get = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert!(OtlpConfig::from_env_with(get(&[])).is_none());
        assert!(OtlpConfig::from_env_with(get(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])).is_some());
        assert!(OtlpConfig::from_env_with(get(&[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://c:4318")])).is_some());
        assert!(
            OtlpConfig::from_env_with(get(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"),
                ("OTEL_SDK_DISABLED", "true")
            ]))
            .is_none()
        );
        // The endpoint set for traces, metrics turned off.
        let metrics = |exporter: &'static str| {
            OtlpConfig::from_env_with(|k: &str| match k {
                "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://c:4318".to_owned()),
                "OTEL_METRICS_EXPORTER" => Some(exporter.to_owned()),
                _ => None,
            })
            .is_some()
        };
        assert!(!metrics("none"));
        assert!(!metrics("prometheus"));
        assert!(metrics("otlp"));
        assert!(metrics(" prometheus, OTLP "));
        assert!(metrics(""));
    }

    #[test]
    fn display_hides_header_values() {
        let s = resolve(&OtlpConfig::new().with_header("authorization", "Bearer secret"), &[]).unwrap();
        let shown = format!("{s} {s:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("authorization"), "{shown}");
    }
}
