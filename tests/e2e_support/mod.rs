//! Helpers for the end-to-end tests against the pipeline of `scripts/otlp-stack.sh` (rotel → vmagent →
//! Prometheus on 127.0.0.1): endpoints, the stack script, and PromQL over Prometheus' HTTP API.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

fn port(var: &str, default: u16) -> u16 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The collector's OTLP gRPC endpoint.
pub fn grpc_endpoint() -> String {
    format!("http://127.0.0.1:{}", port("TOKENMETER_OTLP_GRPC_PORT", 4317))
}

/// The collector's OTLP HTTP base endpoint.
pub fn http_endpoint() -> String {
    format!("http://127.0.0.1:{}", port("TOKENMETER_OTLP_HTTP_PORT", 4318))
}

/// A `service.name` (and so a Prometheus `job`) no earlier run used: Prometheus keeps data between runs.
pub fn unique_job(tag: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("tokenmeter-e2e-{tag}-{}-{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// Runs `scripts/otlp-stack.sh` with `args`, panicking with its output if it fails.
pub fn stack(args: &[&str]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/otlp-stack.sh");
    let out = Command::new(&script).args(args).output().expect("run scripts/otlp-stack.sh");
    assert!(
        out.status.success(),
        "otlp-stack.sh {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Labels of one series.
pub type Labels = BTreeMap<String, String>;

/// A Prometheus HTTP API client.
pub struct Prometheus {
    base: String,
    client: reqwest::blocking::Client,
}

impl Prometheus {
    /// The stack's Prometheus; panics with a hint when it is not up.
    pub fn connect() -> Self {
        let base = format!("http://127.0.0.1:{}", port("TOKENMETER_PROMETHEUS_PORT", 9090));
        let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
        let ready = client.get(format!("{base}/-/ready")).send().map(|r| r.status().is_success()).unwrap_or(false);
        assert!(ready, "Prometheus is not up at {base}: run `scripts/otlp-stack.sh start` (scripts/e2e.sh does)");
        Prometheus { base, client }
    }

    fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
        let url = format!("{}{path}?{}", self.base, query.join("&"));
        let resp = self.client.get(url).send().expect("Prometheus request");
        let body: Value = serde_json::from_str(&resp.text().expect("Prometheus body")).expect("Prometheus JSON");
        assert_eq!(body["status"], "success", "Prometheus {path} {params:?}: {body}");
        body["data"].clone()
    }

    /// An instant query: every series' labels and value.
    pub fn query(&self, promql: &str) -> Vec<(Labels, f64)> {
        let data = self.api("/api/v1/query", &[("query", promql)]);
        let Some(result) = data["result"].as_array() else {
            panic!("{promql}: not a vector: {data}");
        };
        result
            .iter()
            .map(|s| {
                let labels: Labels = s["metric"]
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
                    .unwrap_or_default();
                let value = s["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
                (labels, value)
            })
            .collect()
    }

    /// The single value of a query that returns one series (e.g. a `sum(...)`), `None` when it returns none.
    pub fn value(&self, promql: &str) -> Option<f64> {
        let v = self.query(promql);
        assert!(v.len() <= 1, "{promql}: expected at most one series, got {v:?}");
        v.first().map(|(_, x)| *x)
    }

    /// Values by one label (e.g. `sum by (gen_ai_token_type) (...)`).
    pub fn by(&self, promql: &str, label: &str) -> BTreeMap<String, f64> {
        self.query(promql).into_iter().map(|(l, v)| (l.get(label).cloned().unwrap_or_default(), v)).collect()
    }

    /// Polls `promql` until it returns `want` (within `tolerance`), for at most `timeout`.
    pub fn wait_for(&self, promql: &str, want: f64, tolerance: f64, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < timeout {
            last = self.value(promql);
            if let Some(v) = last
                && (v - want).abs() <= tolerance
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!("{promql}: wanted {want}, last saw {last:?} after {timeout:?}"))
    }

    /// Every metric name that has a series with `job`.
    pub fn metric_names(&self, job: &str) -> Vec<String> {
        let selector = format!("{{job=\"{job}\"}}");
        let data = self.api("/api/v1/label/__name__/values", &[("match[]", selector.as_str())]);
        data.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
    }

    /// Every label name on `job`'s series of `metric`.
    pub fn label_names(&self, metric: &str, job: &str) -> Vec<String> {
        let selector = format!("{metric}{{job=\"{job}\"}}");
        let data = self.api("/api/v1/labels", &[("match[]", selector.as_str())]);
        data.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
    }
}

/// Percent-encodes a query parameter value.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Resident memory of this process, in KiB (Linux).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
