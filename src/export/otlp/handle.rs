//! OTLP methods on the builder and the handle.

use std::sync::Arc;

use opentelemetry_sdk::metrics::SdkMeterProvider;

use super::{ExportStatus, MetricAttributes, OtlpConfig, OtlpError, OtlpMetrics, OtlpSetup, Pipeline};
use crate::meter::{MeterInner, TokenMeter, TokenMeterBuilder};

// === impl TokenMeterBuilder ===

impl TokenMeterBuilder {
    /// Exports metrics over OTLP through a pipeline tokenmeter owns (see [`crate::export::otlp`]). The
    /// configuration is resolved against the `OTEL_*` environment and checked now, and the export threads
    /// start now; an error says which setting is wrong. Replaces an earlier `with_otlp` or
    /// [`with_meter_provider`](Self::with_meter_provider). With `OTEL_SDK_DISABLED=true` in the environment
    /// (and no [`OtlpConfig::ignore_env`]) nothing is exported, as the OpenTelemetry SDKs do
    /// ([`OtlpConfig::sdk_disabled`]): an earlier setup is dropped too.
    pub fn with_otlp(mut self, config: OtlpConfig) -> Result<Self, OtlpError> {
        if config.sdk_disabled() {
            self.otlp = None;
            return Ok(self);
        }
        let setup = OtlpSetup::owned(&config)?;
        Ok(self.with_setup(setup))
    }

    /// [`with_otlp`](Self::with_otlp) with [`OtlpConfig::new`] when the environment asks for export
    /// ([`OtlpConfig::from_env`]: `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` set,
    /// `OTEL_SDK_DISABLED` not `true`); otherwise the builder unchanged.
    pub fn with_otlp_from_env(self) -> Result<Self, OtlpError> {
        match OtlpConfig::from_env() {
            Some(config) => self.with_otlp(config),
            None => Ok(self),
        }
    }

    /// Records tokenmeter's metrics through the application's own `SdkMeterProvider` (its readers, exporters,
    /// temporality and resource) instead of a pipeline of tokenmeter's. [`TokenMeter::shutdown`] then only
    /// flushes it: shutting it down stays with the application. Use a provider from the same
    /// `opentelemetry_sdk` version ([`crate::export::otlp::opentelemetry_sdk`]), and one meter per provider.
    pub fn with_meter_provider(self, provider: SdkMeterProvider) -> Self {
        self.with_setup(OtlpSetup::new(Pipeline::Provided(provider)))
    }

    fn with_setup(mut self, mut setup: OtlpSetup) -> Self {
        // One alert callback per builder: a replaced setup hands its counts on.
        if let Some(previous) = self.otlp.take() {
            setup.alerts = previous.alerts;
            self.otlp = Some(setup);
            return self;
        }
        let alerts = Arc::clone(setup.alerts());
        self.otlp = Some(setup);
        self.with_budget_alert_callback(move |alert| alerts.note(alert))
    }

    /// Which dimensions exported metrics carry, and the caps on series and value length (default:
    /// [`MetricAttributes::new`]).
    pub fn with_metric_attributes(mut self, attributes: MetricAttributes) -> Self {
        self.metric_attributes = attributes;
        self
    }
}

/// Turns the builder's OTLP setup into the meter's exporter state (called while assembling the meter).
pub(crate) fn build_exporter(setup: Option<OtlpSetup>, attributes: MetricAttributes) -> Option<OtlpMetrics> {
    setup.map(|setup| OtlpMetrics::new(setup, attributes))
}

/// Lets the exporter's collection-time callbacks read the assembled meter.
pub(crate) fn attach_exporter(inner: &Arc<MeterInner>) {
    if let Some(otlp) = &inner.otlp {
        otlp.attach(Arc::downgrade(inner));
    }
}

// === impl TokenMeter ===

impl TokenMeter {
    /// How OTLP export is going (where to, how many exports failed, what the last one carried); `None` when the
    /// meter does not export.
    ///
    /// ```
    /// let meter = tokenmeter::TokenMeter::builder().build();
    /// assert!(meter.export_status().is_none());
    /// ```
    pub fn export_status(&self) -> Option<ExportStatus> {
        self.inner.otlp.as_ref().map(OtlpMetrics::status)
    }

    /// Collects and exports metrics now, waiting for the export: at most the export timeout, or twice that when a
    /// periodic export to a collector that does not answer is already under way (it is waited for first).
    /// Returns at once without OTLP export; after [`shutdown`](TokenMeter::shutdown), an error saying so. Blocks
    /// the calling thread: call it from tests, at checkpoints or before exit, never from a record sink.
    pub fn flush_metrics(&self) -> Result<(), OtlpError> {
        match &self.inner.otlp {
            Some(otlp) => otlp.flush(),
            None => Ok(()),
        }
    }

    /// Exports what is left and stops tokenmeter's export pipeline (a handed-over provider is only flushed);
    /// the OTLP part of [`TokenMeter::shutdown`].
    pub(crate) fn shutdown_otlp(&self) -> Result<(), OtlpError> {
        match &self.inner.otlp {
            Some(otlp) => otlp.shutdown(),
            None => Ok(()),
        }
    }

    /// [`shutdown_otlp`](Self::shutdown_otlp), waiting for it until `deadline` at most: the SDK's own shutdown
    /// ignores the timeout it is given, so it runs on a `tokenmeter-shutdown` thread, which goes on past the
    /// deadline (the export may still get through before the process exits).
    pub(crate) fn shutdown_otlp_by(&self, deadline: std::time::Instant) -> Result<(), OtlpError> {
        if self.inner.otlp.is_none() || super::pipeline::on_export_thread() {
            // Nothing to wait for, or refused at once (waiting on the export thread would wait on itself).
            return self.shutdown_otlp();
        }
        let (done, result) = std::sync::mpsc::sync_channel(1);
        let meter = self.clone();
        let spawned = std::thread::Builder::new().name("tokenmeter-shutdown".into()).spawn(move || {
            let _ = done.send(meter.shutdown_otlp());
        });
        if spawned.is_err() {
            return self.shutdown_otlp();
        }
        let limit = deadline.saturating_duration_since(std::time::Instant::now());
        result.recv_timeout(limit).unwrap_or_else(|_| {
            let waited = crate::meter::whole_millis(limit);
            Err(OtlpError::Shutdown(format!(
                "gave up waiting for the final export after {waited:?}, what was left of the shutdown's limit; it \
                 goes on until the process exits"
            )))
        })
    }
}
