//! Budget alerts and where they go: a `tracing` event, user callbacks, the webhook.

use crate::redact::Printable;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::{BudgetAction, BudgetAmount, BudgetPeriod, BudgetScope};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
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
    /// Its scope: for a budget of each value of a dimension, this value's (`user=alice`).
    pub scope: BudgetScope,
    /// For a budget of each value of a dimension ([`BudgetScope::Each`], `user=*`), the value that reached the
    /// threshold (`alice`); `None` for other budgets.
    pub member: Option<Arc<str>>,
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
    /// Calls of the period on a model without a price (a USD budget's): they count $0 in `spent`, so the spend
    /// is more than it says when this is not 0.
    pub unpriced_calls: u64,
}

impl BudgetAlert {
    /// The webhook's JSON body:
    ///
    /// ```json
    /// {"id": "9b1c0e4f27d3a8a5", "event": "threshold_crossed", "threshold_percent": 75, "budget": "acme-monthly", "scope": "tenant=acme",
    ///  "period": "month", "action": "block", "unit": "usd", "spent": 7.5, "limit": 10.0, "remaining": 2.5,
    ///  "utilization": 0.75, "projected_spend": 11.2, "period_start": "2026-03-01T05:00:00Z",
    ///  "resets_at": "2026-04-01T04:00:00Z", "at": "2026-03-14T09:26:53Z", "unpriced_calls": 0,
    ///  "text": "budget `acme-monthly` …"}
    /// ```
    ///
    /// Amounts are US dollars (or tokens, by `unit`) as numbers; `threshold_percent` is present only for
    /// threshold alerts, `member` only for a budget of each value of a dimension (the value, also in `scope`),
    /// and `projected_spend` is `null` when unknown. `unpriced_calls` counts the period's
    /// calls on models without a price, which count $0 in `spent`. `text` is the alert's display form, so
    /// chat webhooks that show `text` need no template. `id` is the same for every delivery of one alert (a
    /// retry after a timeout may deliver it twice) and differs between alerts: a hash of the budget, its scope,
    /// the period start, the event, the threshold and the limit (an alert fired again after the limit changed
    /// is another alert).
    pub fn to_json(&self) -> serde_json::Value {
        let ts = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        let remaining = match (self.limit, self.spent) {
            (BudgetAmount::Usd(l), BudgetAmount::Usd(s)) => BudgetAmount::Usd(l.saturating_sub(s)),
            (BudgetAmount::Tokens(l), BudgetAmount::Tokens(s)) => BudgetAmount::Tokens(l.saturating_sub(s)),
            (l, _) => l,
        };
        let percent = match self.kind {
            AlertKind::ThresholdCrossed { percent } => percent.to_string(),
            AlertKind::ProjectedOverrun => String::new(),
        };
        let limit = match self.limit {
            BudgetAmount::Usd(m) => format!("usd:{}", m.picos()),
            BudgetAmount::Tokens(t) => format!("tokens:{t}"),
        };
        let scope = self.scope.to_string();
        let start = ts(&self.period_start);
        let id = stable_id(&[&self.budget, &scope, &start, self.kind.event_name(), &percent, &limit]);
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
            "unpriced_calls": self.unpriced_calls,
            "text": self.to_string(),
        });
        if let AlertKind::ThresholdCrossed { percent } = self.kind {
            body["threshold_percent"] = percent.into();
        }
        if let Some(member) = &self.member {
            body["member"] = (**member).into();
        }
        body
    }
}

/// Logs `event` once the recording thread has left the layer's locks (`defer_log`), as the meter's sinks run
/// (`while_in_sinks`: not read back as a call's usage or error).
fn say_later(event: impl FnOnce() + 'static) {
    crate::capture::defer_log(move || crate::capture::while_in_sinks(event));
}

/// 64-bit FNV-1a over the parts, each preceded by its length (so that no two lists of parts collide by their
/// joints), as 16 hex digits: stable across versions and platforms, unlike the standard library's hasher.
fn stable_id(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for part in parts {
        eat(&(part.len() as u64).to_le_bytes());
        eat(part.as_bytes());
    }
    format!("{h:016x}")
}

impl fmt::Display for BudgetAlert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The scope's value may come from a request (a user id): shown printable (see `Printable`).
        let scope = self.scope.to_string();
        write!(f, "budget `{}` ({}, {}): ", Printable(&self.budget), Printable(&scope), self.period)?;
        match self.kind {
            AlertKind::ThresholdCrossed { percent } => write!(f, "{percent}% threshold crossed")?,
            AlertKind::ProjectedOverrun => f.write_str("projected to overrun")?,
        }
        write!(f, ": spent {:.2} of {:.2} ({:.0}%)", self.spent, self.limit, self.utilization * 100.0)?;
        if let Some(p) = self.projected {
            write!(f, ", projected {p:.2}")?;
        }
        match self.unpriced_calls {
            0 => {}
            1 => f.write_str("; 1 call without a price counted at $0")?,
            n => write!(f, "; {n} calls without a price counted at $0")?,
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

    /// Says, once per budget, that a USD budget is seeing calls on a model without a price, which count $0
    /// toward it (a block budget would not stop them). A root event, as alerts are.
    pub(super) fn warn_unpriced(&self, budget: &str, scope: &str, model: &str) {
        let (budget, scope, model) = (budget.to_owned(), scope.to_owned(), model.to_owned());
        say_later(move || {
            let (budget, scope, model) = (Printable(&budget), Printable(&scope), Printable(&model));
            tracing::warn!(
                target: "tokenmeter::budget",
                parent: None,
                budget = %budget,
                event = "unpriced_calls",
                scope = %scope,
                model = %model,
                "budget `{budget}` ({scope}): calls on `{model}` have no price and count $0 toward it; give the \
                 model a price (PriceBook::set, a price file) to count them (said once per budget)"
            )
        });
    }

    /// A budget of each value of a dimension found its accounts full and counted a call in its `(other)` account:
    /// said once a UTC day per budget, with how many calls went there so far.
    pub(super) fn warn_members_full(&self, budget: &str, scope: &BudgetScope, max: usize, overflow: u64) {
        let other = scope.member(super::tracker::OTHER).to_string();
        let (budget, scope) = (budget.to_owned(), scope.to_string());
        say_later(move || {
            let (budget, scope, other) = (Printable(&budget), Printable(&scope), Printable(&other));
            tracing::warn!(
                target: "tokenmeter::budget",
                parent: None,
                budget = %budget,
                event = "members_full",
                scope = %scope,
                max_members = max,
                calls = overflow,
                "budget `{budget}` ({scope}) holds spend for {max} values, none of them idle: calls of further \
                 values count together as `{other}`, under one limit ({overflow} calls so far); raise it with \
                 Budget::with_max_members (said once a day)"
            )
        });
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
        let logged = alert.clone();
        crate::capture::defer_log(move || crate::capture::while_in_sinks(|| log_alert(&logged)));
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
}

/// An alert's log event.
fn log_alert(alert: &BudgetAlert) {
    let resets_at = alert.resets_at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let projected = alert.projected.map(|p| p.to_string());
    let at_limit = matches!(alert.kind, AlertKind::ThresholdCrossed { percent } if percent >= 100);
    let scope = alert.scope.to_string();
    let (budget, scope) = (Printable(&alert.budget), Printable(&scope));
    // A root event: it fires inside whatever span recorded the spend, and belongs to none of them (an ERROR
    // event inside a span marks that span failed for `tracing-opentelemetry`, and logs show it there).
    macro_rules! event {
        ($level:ident) => {
            tracing::$level!(
                target: "tokenmeter::budget",
                parent: None,
                budget = %budget,
                event = alert.kind.event_name(),
                scope = %scope,
                spent = %alert.spent,
                limit = %alert.limit,
                utilization = alert.utilization,
                projected = projected.as_deref(),
                resets_at = %resets_at,
                unpriced_calls = alert.unpriced_calls,
                "{alert}"
            )
        };
    }
    if at_limit {
        event!(error);
    } else {
        event!(warn);
    }
}

impl AlertRouter {
    /// Waits for the webhook's queue (see [`TokenMeter::flush_webhook`](crate::TokenMeter::flush_webhook)).
    #[cfg(feature = "webhook")]
    pub(crate) fn flush_webhook(&self, timeout: std::time::Duration) -> bool {
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::Money;

    fn alert(budget: &str, scope: BudgetScope, limit_usd: u128, percent: u32) -> BudgetAlert {
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        BudgetAlert {
            kind: AlertKind::ThresholdCrossed { percent },
            budget: Arc::from(budget),
            scope,
            member: None,
            period: BudgetPeriod::Month,
            action: BudgetAction::Warn,
            spent: BudgetAmount::Usd(Money::from_picos(limit_usd * 1_000_000_000_000 / 2)),
            limit: BudgetAmount::Usd(Money::from_picos(limit_usd * 1_000_000_000_000)),
            utilization: 0.5,
            projected: None,
            period_start: t,
            resets_at: t,
            at: t,
            unpriced_calls: 0,
        }
    }

    fn id(a: &BudgetAlert) -> String {
        a.to_json()["id"].as_str().unwrap_or_default().to_owned()
    }

    #[test]
    fn the_id_is_one_per_alert() {
        let a = alert("acme", BudgetScope::user("a|b"), 10, 50);
        assert_eq!(id(&a).len(), 16);
        assert!(id(&a).bytes().all(|b| b.is_ascii_hexdigit()));
        // The same alert (a retry, or the same figures later) has the same id.
        let mut later = a.clone();
        later.spent = BudgetAmount::Usd(Money::from_picos(7_000_000_000_000));
        later.at += chrono::Duration::hours(1);
        assert_eq!(id(&later), id(&a));
        // Another threshold, another limit (fired again after the limit changed), another budget: other ids,
        // also where the parts' joints would line up (`acme` + `a|b` against `acme|a` + `b`).
        for other in [
            alert("acme", BudgetScope::user("a|b"), 10, 75),
            alert("acme", BudgetScope::user("a|b"), 20, 50),
            alert("acme|a", BudgetScope::user("b"), 10, 50),
        ] {
            assert_ne!(id(&other), id(&a));
        }
    }
}
