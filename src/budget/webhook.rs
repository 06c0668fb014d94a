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
/// error, a timeout, a 5xx, a 408 or a 429 is retried with exponential backoff (waiting at least what a
/// `Retry-After` header asks, up to the backoff cap); after the last retry the alert is counted as failed. Other
/// 4xx answers, redirects (never followed: a redirected POST would arrive as a GET without its body) and
/// refused TLS certificates are not retried. The URL and headers are checked when the meter is built
/// ([`BuildError::Webhook`](crate::BuildError::Webhook)).
///
/// The URL often is a secret (chat webhooks carry their token in the path): `Debug` and the failure warning
/// show only its scheme, host and port, and `Debug` shows header names only.
///
/// Alerts still queued when the process exits are not posted; call
/// [`TokenMeter::flush_webhook`](crate::TokenMeter::flush_webhook) before exiting.
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
#[must_use]
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
            .field("url", &redacted(&self.url))
            .field("headers", &self.headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("queue_capacity", &self.queue_capacity)
            .finish()
    }
}

/// The longest timeout a webhook attempt may have.
const LONGEST_TIMEOUT: Duration = Duration::from_secs(3600);

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

    /// Adds a request header (an authorization token, say). A `Content-Type` replaces the default
    /// `application/json`.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the time one attempt may take, connection included: more than zero and at most an hour
    /// (`try_build` refuses others).
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

    /// Sets how many alerts may wait for delivery, from 1 to 65,536 (a value outside is taken as the nearest;
    /// the queue's slots are allocated when the meter is built).
    pub fn with_queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.clamp(1, 1 << 16);
        self
    }

    /// The endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Why this configuration cannot work: a zero timeout or one over an hour, a URL that is not `http://` or
    /// `https://` with a host, or a header name or value HTTP does not allow.
    pub(crate) fn problem(&self) -> Option<String> {
        if self.timeout.is_zero() {
            return Some("the timeout is zero: every attempt would time out at once".to_owned());
        }
        // `Duration::MAX` ("wait for good") made every attempt panic in the HTTP client (an `Instant` overflow).
        if self.timeout > LONGEST_TIMEOUT {
            return Some(format!(
                "the timeout is {:?}, over an hour: one stuck attempt would hold back every alert after it that long",
                self.timeout
            ));
        }
        let scheme = self.url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
        if !matches!(scheme.as_deref(), Some("http" | "https")) {
            return Some("the URL does not start with http:// or https://".to_owned());
        }
        let shown = redacted(&self.url);
        match self.url.parse::<ureq::http::Uri>() {
            Err(_) => return Some(format!("the URL `{shown}` does not parse")),
            Ok(uri) if uri.host().is_none_or(str::is_empty) => {
                return Some(format!("the URL `{shown}` has no host"));
            }
            Ok(_) => {}
        }
        for (name, value) in &self.headers {
            if ureq::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Some(format!("the header name `{}` is not valid HTTP", name.escape_debug()));
            }
            if ureq::http::HeaderValue::from_str(value).is_err() {
                return Some(format!("the value of header `{name}` is not valid HTTP (a line break?)"));
            }
        }
        None
    }
}

/// A URL as it may be shown: scheme, host and port only (chat webhooks carry a token in the path, and
/// `user:password@` is a credential).
pub(crate) fn redacted(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => return "<not a URL>".to_owned(),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let hidden = rest.len() > authority.len() || authority.len() > host.len();
    format!("{scheme}://{host}{}", if hidden { "/…" } else { "" })
}

/// The recording side of the webhook: a bounded queue to the delivery thread.
pub(super) struct WebhookQueue {
    tx: SyncSender<BudgetAlert>,
    counters: Arc<WebhookCounters>,
    /// The delivery thread: a flush called there (a subscriber reacting to its warning) cannot wait for it.
    thread: Option<std::thread::ThreadId>,
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
        let thread = match spawned {
            Ok(handle) => Some(handle.thread().id()),
            Err(e) => {
                tracing::error!(target: "tokenmeter::budget", error = %e, "cannot start the webhook thread; alerts will not be posted");
                None
            }
        };
        WebhookQueue { tx, counters, thread }
    }

    /// Queues an alert; never blocks.
    pub(super) fn enqueue(&self, alert: BudgetAlert) {
        // Counted before the send, so that a flush never sees an alert delivered before it was queued (SeqCst
        // here and where the delivery thread counts the outcome: a flush on another thread reads them in order).
        self.counters.queued.fetch_add(1, Ordering::SeqCst);
        if self.tx.try_send(alert).is_err() {
            self.counters.queued.fetch_sub(1, Ordering::SeqCst);
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits until every queued alert is delivered or given up, at most `timeout`; true when none is left. On
    /// the delivery thread itself (a subscriber reacting to its warning) nothing can be delivered while it waits:
    /// false at once unless nothing is queued.
    pub(super) fn flush(&self, timeout: Duration) -> bool {
        let timeout = if self.thread == Some(std::thread::current().id()) { Duration::ZERO } else { timeout };
        // `Duration::MAX` (wait for good) would overflow the instant.
        let deadline = std::time::Instant::now().checked_add(timeout);
        let c = &self.counters;
        loop {
            let queued = c.queued.load(Ordering::SeqCst);
            let done = c.delivered.load(Ordering::SeqCst) + c.failed.load(Ordering::SeqCst);
            if done >= queued {
                return true;
            }
            let now = std::time::Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return false;
            }
            std::thread::sleep(deadline.map_or(Duration::from_millis(5), |d| (d - now).min(Duration::from_millis(5))));
        }
    }

    pub(super) fn counters(&self) -> &WebhookCounters {
        &self.counters
    }
}

/// How one attempt went.
enum Attempt {
    Delivered,
    /// Worth another attempt, after at least the wait the server asked for (`Retry-After`).
    Retry(String, Option<Duration>),
    GiveUp(String),
}

fn agent(config: &WebhookConfig) -> ureq::Agent {
    let builder = ureq::Agent::config_builder();
    // ureq follows the proxy variables (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`); an endpoint on this
    // machine is never reached through one, as Go's HTTP clients do.
    let builder = if crate::net::is_loopback_url(&config.url) { builder.proxy(None) } else { builder };
    builder
        .timeout_global(Some(config.timeout))
        .http_status_as_error(false)
        // A 301/302/303 would turn the POST into a GET without its body (and a 2xx to that GET would count as
        // delivered); a redirect is reported instead.
        .max_redirects(0)
        .user_agent(concat!("tokenmeter/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn run(config: WebhookConfig, rx: Receiver<BudgetAlert>, counters: &WebhookCounters) {
    let mut client = agent(&config);
    // Ends when the meter (the queue's sender) is dropped.
    for alert in rx {
        if deliver(&client, &config, counters, &alert) {
            // A panic inside the client may have left its connection pool's lock poisoned, which would fail every
            // later request: a new client.
            client = agent(&config);
        }
    }
}

/// Delivers one alert, counting how it went; true when the HTTP client panicked on the way.
fn deliver(agent: &ureq::Agent, config: &WebhookConfig, counters: &WebhookCounters, alert: &BudgetAlert) -> bool {
    let mut panicked = false;
    let body = alert.to_json().to_string();
    let mut backoff = config.initial_backoff;
    let mut last_error = String::new();
    let mut asked = None;
    for attempt in 0..=config.max_retries {
        if attempt > 0 {
            counters.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(backoff.max(asked.unwrap_or_default()).min(config.max_backoff));
            backoff = backoff.saturating_mul(2).min(config.max_backoff);
        }
        // A panic on this thread (the HTTP client's, or a `log` backend's on its output) would end it: the alerts
        // queued behind would never be counted, and every flush would wait its whole timeout.
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| post(agent, config, &body)))
            .unwrap_or_else(|_| {
                panicked = true;
                Attempt::GiveUp("the HTTP client panicked".to_owned())
            });
        match attempt {
            Attempt::Delivered => {
                counters.delivered.fetch_add(1, Ordering::SeqCst);
                return panicked;
            }
            Attempt::Retry(e, retry_after) => {
                last_error = e;
                asked = retry_after;
            }
            Attempt::GiveUp(e) => {
                last_error = e;
                break;
            }
        }
    }
    counters.failed.fetch_add(1, Ordering::SeqCst);
    // Another layer's panic on this warning must not end the delivery thread either.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tracing::warn!(
            target: "tokenmeter::budget",
            url = %redacted(&config.url),
            budget = %alert.budget,
            error = %last_error,
            "budget alert webhook failed; alert not delivered"
        )
    }));
    panicked
}

fn post(agent: &ureq::Agent, config: &WebhookConfig, body: &str) -> Attempt {
    // A `Content-Type` of the caller's replaces the default (added both, the request carried two, which many
    // servers answer with 400, never retried: every alert failed).
    let own_type = config.headers.iter().any(|(name, _)| name.trim().eq_ignore_ascii_case("content-type"));
    let mut request = agent.post(&config.url);
    if !own_type {
        request = request.header("Content-Type", "application/json");
    }
    for (name, value) in &config.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    match request.send(body) {
        Ok(response) => {
            let status = response.status().as_u16();
            match status {
                200..=299 => Attempt::Delivered,
                408 | 429 | 500..=599 => {
                    let asked = response.headers().get("retry-after").and_then(|v| v.to_str().ok());
                    Attempt::Retry(format!("HTTP {status}"), asked.and_then(retry_after))
                }
                300..=399 => Attempt::GiveUp(format!("HTTP {status}: redirected (configure the URL it redirects to)")),
                _ => Attempt::GiveUp(format!("HTTP {status}")),
            }
        }
        Err(e) => {
            // The error's text may quote the URL: only its shown form goes into the warning.
            let text = e.to_string().replace(&config.url, &redacted(&config.url));
            match e {
                // Retrying cannot help: the request cannot be made, or the server's certificate is refused.
                ureq::Error::BadUri(_)
                | ureq::Error::Http(_)
                | ureq::Error::RequireHttpsOnly(_)
                | ureq::Error::TlsRequired
                | ureq::Error::Tls(_)
                | ureq::Error::Rustls(_) => Attempt::GiveUp(text),
                // A certificate refused in the handshake comes as an I/O error holding rustls' error (it was
                // retried: four handshakes and the backoff for every alert, each one queued behind the last).
                ureq::Error::Io(io) if refused_certificate(&io) => Attempt::GiveUp(text),
                _ => Attempt::Retry(text, None),
            }
        }
    }
}

/// Whether an I/O error is rustls refusing the server's certificate (or the server refusing the handshake):
/// nothing a retry changes.
fn refused_certificate(io: &std::io::Error) -> bool {
    matches!(
        io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
        Some(
            rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::UnsupportedNameType
                | rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure)
        )
    )
}

/// A `Retry-After` value: delay seconds, or an HTTP date (its distance from now).
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_path_query_or_credentials() {
        assert_eq!(redacted("https://hooks.slack.com/services/T000/B000/XXXX"), "https://hooks.slack.com/…");
        assert_eq!(redacted("https://user:pa55@example.com:8443/x?token=1"), "https://example.com:8443/…");
        assert_eq!(redacted("http://127.0.0.1:9000"), "http://127.0.0.1:9000");
        assert_eq!(redacted("https://a.example?key=1"), "https://a.example/…");
        assert_eq!(redacted("hooks.example.com/x"), "<not a URL>");
        let debug = format!("{:?}", WebhookConfig::new("https://discord.com/api/webhooks/1/s3cret"));
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn bad_urls_and_headers_are_named() {
        let problem = |c: WebhookConfig| c.problem().unwrap_or_default();
        assert!(problem(WebhookConfig::new("hooks.example.com/x")).contains("start with http:// or https://"));
        assert!(problem(WebhookConfig::new("ftp://example.com/x")).contains("start with http:// or https://"));
        assert!(problem(WebhookConfig::new("https:///x")).contains("does not parse"));
        assert!(problem(WebhookConfig::new("https://exa mple.com/x")).contains("does not parse"));
        let header = WebhookConfig::new("https://example.com/x").with_header("Authorization", "Bearer a\nb");
        assert!(problem(header).contains("header `Authorization`"));
        let name = WebhookConfig::new("https://example.com/x").with_header("Bad Name", "v");
        assert!(problem(name).contains("header name"));
        assert_eq!(WebhookConfig::new("http://127.0.0.1:9/h").with_header("X-Key", "v").problem(), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(" 0 "), Some(Duration::ZERO));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        let wait = retry_after(&soon).unwrap();
        assert!(wait > Duration::from_secs(80) && wait <= Duration::from_secs(90), "{wait:?}");
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), None, "a date passed");
        assert_eq!(retry_after("soon"), None);
    }
}
