//! Budget alerts and where they go: a `tracing` event, user callbacks, the webhook.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::{BudgetAction, BudgetAmount, BudgetPeriod, BudgetScope};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AlertKind {
    /// Spend reached `percent`% of the limit (for the first time this period).
    ThresholdCrossed {
        /// The threshold, in percent of the limit.
        percent: u32,
    },
    /// At the rate so far, spend will pass the limit before the period ends.
    ProjectedOverrun,
}

impl AlertKind {
    /// `threshold_crossed` or `projected_overrun`: the webhook payload's `event`.
    pub fn event_name(&self) -> &'static str {
        match self {
            AlertKind::ThresholdCrossed { .. } => "threshold_crossed",
            AlertKind::ProjectedOverrun => "projected_overrun",
        }
    }
}

/// One budget alert.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetAlert {
    /// What happened.
    pub kind: AlertKind,
    /// The budget's name.
    pub budget: Arc<str>,
    /// Its scope.
    pub scope: BudgetScope,
    /// Its period.
    pub period: BudgetPeriod,
    /// Warn or block.
    pub action: BudgetAction,
    /// Spent in the current period, this call included.
    pub spent: BudgetAmount,
    /// The limit.
    pub limit: BudgetAmount,
    /// Spent / limit.
    pub utilization: f64,
    /// Projected spend at the end of the period at the rate so far (see
    /// [`BudgetState::projected`](super::BudgetState::projected)).
    pub projected: Option<BudgetAmount>,
    /// Start of the current period.
    pub period_start: DateTime<Utc>,
    /// When the period resets.
    pub resets_at: DateTime<Utc>,
    /// When the call that caused the alert ended.
    pub at: DateTime<Utc>,
}

impl BudgetAlert {
    /// The webhook's JSON body:
    ///
    /// ```json
    /// {"id": "acme-monthly|tenant=acme|2026-03-01T05:00:00Z|threshold_crossed|75",
    ///  "event": "threshold_crossed", "threshold_percent": 75, "budget": "acme-monthly", "scope": "tenant=acme",
    ///  "period": "month", "action": "block", "unit": "usd", "spent": 7.5, "limit": 10.0, "remaining": 2.5,
    ///  "utilization": 0.75, "projected_spend": 11.2, "period_start": "2026-03-01T05:00:00Z",
    ///  "resets_at": "2026-04-01T04:00:00Z", "at": "2026-03-14T09:26:53Z", "text": "budget `acme-monthly` …"}
    /// ```
    ///
    /// Amounts are US dollars (or tokens, by `unit`) as numbers; `threshold_percent` is present only for
    /// threshold alerts and `projected_spend` is `null` when unknown. `text` is the alert's display form, so
    /// chat webhooks that show `text` need no template. `id` is the same for every delivery of one alert (a
    /// retry after a timeout may deliver it twice): budget, scope, period start, event and threshold.
    pub fn to_json(&self) -> serde_json::Value {
        let ts = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        let remaining = match (self.limit, self.spent) {
            (BudgetAmount::Usd(l), BudgetAmount::Usd(s)) => BudgetAmount::Usd(l.saturating_sub(s)),
            (BudgetAmount::Tokens(l), BudgetAmount::Tokens(s)) => BudgetAmount::Tokens(l.saturating_sub(s)),
            (l, _) => l,
        };
        let mut id = format!("{}|{}|{}|{}", self.budget, self.scope, ts(&self.period_start), self.kind.event_name());
        if let AlertKind::ThresholdCrossed { percent } = self.kind {
            id.push_str(&format!("|{percent}"));
        }
        let mut body = serde_json::json!({
            "id": id,
            "event": self.kind.event_name(),
            "budget": &*self.budget,
            "scope": self.scope.to_string(),
            "period": self.period.to_string(),
            "action": self.action,
            "unit": self.limit.unit().as_str(),
            "spent": self.spent.as_f64(),
            "limit": self.limit.as_f64(),
            "remaining": remaining.as_f64(),
            "utilization": self.utilization,
            "projected_spend": self.projected.map(|p| p.as_f64()),
            "period_start": ts(&self.period_start),
            "resets_at": ts(&self.resets_at),
            "at": ts(&self.at),
            "text": self.to_string(),
        });
        if let AlertKind::ThresholdCrossed { percent } = self.kind {
            body["threshold_percent"] = percent.into();
        }
        body
    }
}

impl fmt::Display for BudgetAlert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "budget `{}` ({}, {}): ", self.budget, self.scope, self.period)?;
        match self.kind {
            AlertKind::ThresholdCrossed { percent } => write!(f, "{percent}% threshold crossed")?,
            AlertKind::ProjectedOverrun => f.write_str("projected to overrun")?,
        }
        write!(f, ": spent {:.2} of {:.2} ({:.0}%)", self.spent, self.limit, self.utilization * 100.0)?;
        if let Some(p) = self.projected {
            write!(f, ", projected {p:.2}")?;
        }
        write!(f, "; resets at {}", self.resets_at.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

/// Webhook delivery counters (all zero without a webhook).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookStats {
    /// Alerts the endpoint accepted (a 2xx answer).
    pub delivered: u64,
    /// Attempts repeated after a failure.
    pub retries: u64,
    /// Alerts given up on after the last retry, or at once when retrying cannot help (a 4xx other than 408 and
    /// 429, a redirect, a TLS certificate refused).
    pub failed: u64,
    /// Alerts dropped because the webhook queue was full.
    pub dropped: u64,
}

/// Alert counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertStats {
    /// Alerts fired.
    pub fired: u64,
    /// Panics caught in alert callbacks.
    pub callback_panics: u64,
    /// Webhook delivery.
    pub webhook: WebhookStats,
}

/// Atomic webhook counters shared with the delivery thread.
#[derive(Debug, Default)]
pub(super) struct WebhookCounters {
    /// Alerts put on the queue (each ends delivered or failed).
    #[cfg_attr(not(feature = "webhook"), allow(dead_code))]
    pub(super) queued: AtomicU64,
    pub(super) delivered: AtomicU64,
    pub(super) retries: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) dropped: AtomicU64,
}

impl WebhookCounters {
    fn snapshot(&self) -> WebhookStats {
        WebhookStats {
            delivered: self.delivered.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// A user callback for alerts.
pub(crate) type AlertCallback = Box<dyn Fn(&BudgetAlert) + Send + Sync + 'static>;

/// Delivers alerts.
pub(crate) struct AlertRouter {
    callbacks: Box<[AlertCallback]>,
    #[cfg(feature = "webhook")]
    webhook: Option<super::webhook::WebhookQueue>,
    fired: AtomicU64,
    callback_panics: AtomicU64,
}

impl fmt::Debug for AlertRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertRouter").field("callbacks", &self.callbacks.len()).finish_non_exhaustive()
    }
}

impl AlertRouter {
    pub(super) fn new(
        callbacks: Box<[AlertCallback]>,
        #[cfg(feature = "webhook")] webhook: Option<super::webhook::WebhookQueue>,
    ) -> Self {
        AlertRouter {
            callbacks,
            #[cfg(feature = "webhook")]
            webhook,
            fired: AtomicU64::new(0),
            callback_panics: AtomicU64::new(0),
        }
    }

    /// Sends one alert everywhere it goes. Never blocks on the network and never panics. Runs as the meter's
    /// sinks do (on the recording thread, often inside the application's own call span): what the callbacks
    /// log (`error!(error = %alert)` is what `#[instrument(err)]` emits) is not read back as a failed call
    /// or as usage.
    pub(super) fn deliver(&self, alert: BudgetAlert) {
        crate::capture::while_in_sinks(|| self.deliver_now(alert));
    }

    fn deliver_now(&self, alert: BudgetAlert) {
        self.fired.fetch_add(1, Ordering::Relaxed);
        let resets_at = alert.resets_at.to_rfc3339_opts(SecondsFormat::Secs, true);
        let projected = alert.projected.map(|p| p.to_string());
        let at_limit = matches!(alert.kind, AlertKind::ThresholdCrossed { percent } if percent >= 100);
        macro_rules! event {
            ($level:ident) => {
                tracing::$level!(
                    target: "tokenmeter::budget",
                    budget = %alert.budget,
                    event = alert.kind.event_name(),
                    scope = %alert.scope,
                    spent = %alert.spent,
                    limit = %alert.limit,
                    utilization = alert.utilization,
                    projected = projected.as_deref(),
                    resets_at = %resets_at,
                    "{alert}"
                )
            };
        }
        if at_limit {
            event!(error);
        } else {
            event!(warn);
        }
        for callback in self.callbacks.iter() {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(&alert))).is_err() {
                self.callback_panics.fetch_add(1, Ordering::Relaxed);
            }
        }
        #[cfg(feature = "webhook")]
        if let Some(webhook) = &self.webhook {
            webhook.enqueue(alert);
        }
    }

    /// Waits for the webhook's queue (see [`TokenMeter::flush_webhook`](crate::TokenMeter::flush_webhook)).
    #[cfg(feature = "webhook")]
    pub(super) fn flush_webhook(&self, timeout: std::time::Duration) -> bool {
        self.webhook.as_ref().is_none_or(|w| w.flush(timeout))
    }

    pub(super) fn stats(&self) -> AlertStats {
        #[cfg(feature = "webhook")]
        let webhook = self.webhook.as_ref().map(|w| w.counters().snapshot()).unwrap_or_default();
        #[cfg(not(feature = "webhook"))]
        let webhook = WebhookCounters::default().snapshot();
        AlertStats {
            fired: self.fired.load(Ordering::Relaxed),
            callback_panics: self.callback_panics.load(Ordering::Relaxed),
            webhook,
        }
    }
}
