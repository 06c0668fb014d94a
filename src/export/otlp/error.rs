//! [`OtlpError`]: everything that can go wrong configuring, flushing or shutting down OTLP export.

/// An OTLP export error. Configuration errors come from
/// [`TokenMeterBuilder::with_otlp`](crate::TokenMeterBuilder::with_otlp); flush and shutdown errors from
/// [`TokenMeter::flush_metrics`](crate::TokenMeter::flush_metrics) and
/// [`TokenMeter::shutdown`](crate::TokenMeter::shutdown). Recording never returns an error: a failed export is
/// counted ([`ExportStatus`](super::ExportStatus), metric `tokenmeter.export.failures`) and retried with the
/// next interval's data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtlpError {
    /// An `OTEL_*` environment variable holds a value that cannot be used.
    #[error("{var}={value:?} is not valid: {reason}")]
    InvalidEnv {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// A builder setting cannot be used.
    #[error("OTLP {setting} is not valid: {reason}")]
    InvalidSetting {
        /// The setting.
        setting: &'static str,
        /// What was expected.
        reason: String,
    },
    /// The endpoint is not an `http://` or `https://` URL with a host.
    #[error("OTLP endpoint {endpoint:?} is not valid: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given, without `user:password@` or a `?query` (where tokens are sometimes put).
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An `https://` endpoint, but TLS support was not compiled in.
    #[error(
        "OTLP endpoint {endpoint:?} uses https, but tokenmeter was built without TLS: enable the `otlp-tls` \
         feature, or send to a collector over http:// (e.g. a local agent)"
    )]
    TlsNotEnabled {
        /// The endpoint as given, without `user:password@` or a `?query` (where tokens are sometimes put).
        endpoint: String,
    },
    /// The CA certificate file cannot be read or holds no PEM certificate.
    #[error("OTLP CA certificate {path}: {reason}")]
    Certificate {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A header (or gRPC metadata entry) cannot be sent.
    #[error("OTLP header {name:?} is not valid: {reason}")]
    InvalidHeader {
        /// The header name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The export thread could not be started.
    #[error("could not start the OTLP export thread: {0}")]
    Runtime(#[source] std::io::Error),
    /// The OpenTelemetry exporter refused the configuration.
    #[error("could not build the OTLP exporter: {0}")]
    Exporter(String),
    /// Exporting on demand failed (the collector is unreachable or refused the data). The message ends with what
    /// to check, as far as the export's error tells: the collector's reachability, its answer, or the protocol.
    #[error("flushing metrics to the collector failed: {0}")]
    Flush(String),
    /// Shutting down the metrics pipeline failed; the last export may not have reached the collector.
    #[error("shutting down the metrics pipeline failed: {0}")]
    Shutdown(String),
    /// A flush after the metrics pipeline was shut down ([`TokenMeter::shutdown`](crate::TokenMeter::shutdown),
    /// or the application's own provider's `shutdown`): the export was ended on purpose (the collector has
    /// nothing to do with it).
    #[error("the metrics pipeline was shut down: what was recorded since is not exported")]
    ShutDown,
}
