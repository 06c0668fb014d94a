//! The budget-alert webhook: a JSON POST per alert from a thread of its own (feature `webhook`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use super::alert::{BudgetAlert, WebhookCounters};

/// Where and how budget alerts are POSTed. Add it with
/// [`TokenMeterBuilder::with_webhook`](crate::TokenMeterBuilder::with_webhook).
///
/// Each alert is one POST of [`BudgetAlert::to_json`] with `Content-Type: application/json`, sent from a
/// delivery thread: the recording thread only puts the alert on a bounded queue, and an alert that finds the
/// queue full is dropped and counted ([`WebhookStats::dropped`](super::WebhookStats::dropped)). A transport
/// error, a timeout, a 5xx, a 408 or a 429 is retried with exponential backoff; after the last retry the alert
/// is counted as failed. Other 4xx answers are not retried.
///
/// ```
/// use std::time::Duration;
/// use tokenmeter::budget::WebhookConfig;
///
/// let hook = WebhookConfig::new("https://hooks.example.com/budget")
///     .with_header("Authorization", "Bearer secret")
///     .with_max_retries(5)
///     .with_backoff(Duration::from_secs(1), Duration::from_secs(60));
/// # let _ = hook;
/// ```
#[derive(Clone)]
pub struct WebhookConfig {
    url: String,
    headers: Vec<(String, String)>,
    timeout: Duration,
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    queue_capacity: usize,
}

impl std::fmt::Debug for WebhookConfig {
    /// Header values are not shown: they often hold credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("headers", &self.headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("queue_capacity", &self.queue_capacity)
            .finish()
    }
}

impl WebhookConfig {
    /// POST to `url` (`http://` or `https://`), with a 5 s timeout per attempt, 3 retries, backoff from
    /// 500 ms doubling up to 30 s, and a queue of 256 alerts.
    pub fn new(url: impl Into<String>) -> Self {
        WebhookConfig {
            url: url.into(),
            headers: Vec::new(),
            timeout: Duration::from_secs(5),
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            queue_capacity: 256,
        }
    }

    /// Adds a request header (an authorization token, say).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the time one attempt may take, connection included.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how many times a failed attempt is repeated.
    pub fn with_max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Sets the wait before the first retry and the cap the doubling wait stops at.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Sets how many alerts may wait for delivery (at least 1).
    pub fn with_queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// The endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// The recording side of the webhook: a bounded queue to the delivery thread.
pub(super) struct WebhookQueue {
    tx: SyncSender<BudgetAlert>,
    counters: Arc<WebhookCounters>,
}

impl WebhookQueue {
    /// Starts the delivery thread. If the thread cannot be started, every alert is counted as dropped.
    pub(super) fn start(config: WebhookConfig) -> Self {
        let (tx, rx) = sync_channel(config.queue_capacity);
        let counters = Arc::new(WebhookCounters::default());
        let thread_counters = counters.clone();
        let spawned = std::thread::Builder::new()
            .name("tokenmeter-webhook".into())
            .spawn(move || run(config, rx, &thread_counters));
        if let Err(e) = spawned {
            tracing::error!(target: "tokenmeter::budget", error = %e, "cannot start the webhook thread; alerts will not be posted");
        }
        WebhookQueue { tx, counters }
    }

    /// Queues an alert; never blocks.
    pub(super) fn enqueue(&self, alert: BudgetAlert) {
        if self.tx.try_send(alert).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn counters(&self) -> &WebhookCounters {
        &self.counters
    }
}

/// How one attempt went.
enum Attempt {
    Delivered,
    Retry(String),
    GiveUp(String),
}

fn run(config: WebhookConfig, rx: Receiver<BudgetAlert>, counters: &WebhookCounters) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(config.timeout))
        .http_status_as_error(false)
        .user_agent(concat!("tokenmeter/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    // Ends when the meter (the queue's sender) is dropped.
    for alert in rx {
        deliver(&agent, &config, counters, &alert);
    }
}

fn deliver(agent: &ureq::Agent, config: &WebhookConfig, counters: &WebhookCounters, alert: &BudgetAlert) {
    let body = alert.to_json().to_string();
    let mut backoff = config.initial_backoff;
    let mut last_error = String::new();
    for attempt in 0..=config.max_retries {
        if attempt > 0 {
            counters.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(backoff);
            backoff = backoff.saturating_mul(2).min(config.max_backoff);
        }
        match post(agent, config, &body) {
            Attempt::Delivered => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Attempt::Retry(e) => last_error = e,
            Attempt::GiveUp(e) => {
                last_error = e;
                break;
            }
        }
    }
    counters.failed.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        target: "tokenmeter::budget",
        url = %config.url,
        budget = %alert.budget,
        error = %last_error,
        "budget alert webhook failed; alert not delivered"
    );
}

fn post(agent: &ureq::Agent, config: &WebhookConfig, body: &str) -> Attempt {
    let mut request = agent.post(&config.url).header("Content-Type", "application/json");
    for (name, value) in &config.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    match request.send(body) {
        Ok(response) => {
            let status = response.status().as_u16();
            match status {
                200..=299 => Attempt::Delivered,
                408 | 429 | 500..=599 => Attempt::Retry(format!("HTTP {status}")),
                _ => Attempt::GiveUp(format!("HTTP {status}")),
            }
        }
        Err(e) => Attempt::Retry(e.to_string()),
    }
}
