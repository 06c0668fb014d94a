//! The webhook's delivery thread logs a warning for an alert it could not deliver, through the global default
//! subscriber. Another layer's panic on that warning ended the thread: the alerts after it were counted as
//! dropped ("queue full"), and every flush waited its whole timeout. (`init()` also bridges the `log` crate, so
//! the HTTP client's own log records on that thread panic here too, inside the request.) One test in this binary:
//! it sets the process's global default.
#![cfg(feature = "webhook")]

mod common;

use std::time::Duration;

use common::Harness;
use tokenmeter::budget::{Budget, BudgetLimit, WebhookConfig};
use tracing_subscriber::prelude::*;

struct PanicsOnWebhookWarnings;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PanicsOnWebhookWarnings {
    fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if std::thread::current().name() == Some("tokenmeter-webhook") {
            panic!("a layer's panic on the webhook thread's warning");
        }
    }
}

#[test]
fn a_panic_on_the_delivery_threads_warning_does_not_stop_it() {
    tracing_subscriber::registry().with(PanicsOnWebhookWarnings).init();
    // A port nothing listens on: each alert fails at once (no retry), and its warning is logged.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let hook = WebhookConfig::new(format!("http://127.0.0.1:{port}/hooks/budget")).with_max_retries(0);
    let h = Harness::with(|b| {
        b.with_budget(Budget::new("b", BudgetLimit::usd(1.0).unwrap()).with_thresholds([50, 90])).with_webhook(hook)
    });
    h.run(|| {
        let _call =
            tracing::info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 600_000u64).entered();
    });
    assert!(h.meter.flush_webhook(Duration::from_secs(20)), "the first alert's failure is counted");
    h.run(|| {
        let _call =
            tracing::info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 400_000u64).entered();
    });
    assert!(h.meter.flush_webhook(Duration::from_secs(20)), "the thread still delivers after the panic");
    let alerts = h.meter.alert_stats();
    assert!(alerts.fired >= 2, "{alerts:?}");
    assert_eq!((alerts.webhook.failed, alerts.webhook.dropped), (alerts.fired, 0), "{alerts:?}");
}
