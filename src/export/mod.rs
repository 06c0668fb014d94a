//! Getting tokenmeter's figures out of the process.
//!
//! - [`otlp`] (feature `otlp`, on by default): OpenTelemetry metrics over OTLP gRPC or HTTP/protobuf, for an
//!   OpenTelemetry collector, Prometheus, Mimir, Grafana Cloud or any other OTLP backend.

#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub mod otlp;
