//! End to end for the Grafana dashboards (issue 7): a known workload exported over OTLP lands in the real
//! Prometheus of `scripts/otlp-stack.sh`, then
//! - the dashboards' own queries (read from `dashboards/*.json`, Grafana variables substituted) return exactly
//!   the in-process figures: total cost, total tokens by type, cache hit rate;
//! - `scripts/check-dashboards.py` passes with `job` set to this workload's service only: schema, units,
//!   promtool, and every query non-empty.
//!
//! `increase()` extrapolates to the edges of its range unless the range starts and ends on samples. The test
//! therefore evaluates the range between two export timestamps of this service (all its series share them):
//! t0 after a first round had landed and t1 after two more rounds, and compares with the in-process figures of
//! those two rounds.
//!
//! Needs the stack: `scripts/e2e.sh` starts it and runs this.
#![cfg(feature = "otlp")]

mod e2e_support;
mod otlp_workload;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use e2e_support::{Prometheus, grpc_endpoint, unique_job};
use serde_json::Value;
use tokenmeter::TokenMeter;
use tokenmeter::budget::{Budget, BudgetLimit, BudgetPeriod, BudgetScope};
use tokenmeter::export::otlp::{MetricAttributes, OtlpConfig, Protocol};
use tracing_subscriber::prelude::*;

const LANDING: Duration = Duration::from_secs(45);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn prometheus_url() -> String {
    let port = std::env::var("TOKENMETER_PROMETHEUS_PORT").unwrap_or_else(|_| "9090".into());
    format!("http://127.0.0.1:{port}")
}

/// The queries of the panel titled `title` in `dashboards/{file}`.
fn panel_queries(file: &str, title: &str) -> Vec<String> {
    let path = root().join("dashboards").join(file);
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard")).expect("JSON");
    let panel = dash["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .find(|p| p["title"] == title && p["type"] != "row")
        .unwrap_or_else(|| panic!("no panel {title:?} in {file}"));
    panel["targets"].as_array().expect("targets").iter().map(|t| t["expr"].as_str().expect("expr").to_owned()).collect()
}

/// Grafana's variables as the dashboard would send them for this service over `range` (a duration in ms).
fn substitute(expr: &str, job: &str, range: &str) -> String {
    let ms: f64 = range.strip_suffix("ms").and_then(|n| n.parse().ok()).expect("a range in ms");
    expr.replace("$__range_s", &(ms / 1000.0).to_string())
        .replace("$__range", range)
        .replace("$__rate_interval", "1m")
        .replace("$job", &regex_escape(job))
        .replace("$model", ".*")
        .replace("$provider", ".*")
        .replace("$agent", ".*")
        .replace("$project", ".*")
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { vec![c] } else { vec!['\\', '\\', c] })
        .collect()
}

/// Raw Prometheus HTTP API call (instant query at `time`, or a range selector's raw samples).
fn api(query: &str, time: Option<&str>) -> Value {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    let mut url = format!("{}/api/v1/query?query={}", prometheus_url(), encode(query));
    if let Some(t) = time {
        url.push_str(&format!("&time={t}"));
    }
    let text = client.get(url).send().expect("Prometheus request").text().expect("Prometheus body");
    let body: Value = serde_json::from_str(&text).expect("Prometheus JSON");
    assert_eq!(body["status"], "success", "{query}: {body}");
    body["data"]["result"].clone()
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Instant query at `time`: labels by `label` (or "" for a single series) to value.
fn values_at(query: &str, time: &str, label: &str) -> BTreeMap<String, f64> {
    api(query, Some(time))
        .as_array()
        .expect("vector")
        .iter()
        .map(|s| {
            let key = s["metric"][label].as_str().unwrap_or_default().to_owned();
            (key, s["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN))
        })
        .collect()
}

/// The export timestamps (ms) shared by every `tokenmeter_*` counter series of `job` (but the late joiner's, born
/// after round 1), with the total calls then.
fn common_timestamps(job: &str) -> Vec<(i64, f64)> {
    let mut common: Option<BTreeSet<i64>> = None;
    for metric in ["tokenmeter_calls_total", "tokenmeter_tokens_total", "tokenmeter_cost_USD_total"] {
        let selector = format!("{metric}{{job=\"{job}\", gen_ai_agent_name!=\"late-joiner\"}}[10m]");
        for s in api(&selector, None).as_array().expect("matrix") {
            let ts: BTreeSet<i64> = s["values"]
                .as_array()
                .expect("values")
                .iter()
                .map(|v| (v[0].as_f64().expect("timestamp") * 1000.0).round() as i64)
                .collect();
            common = Some(match common {
                None => ts,
                Some(c) => c.intersection(&ts).copied().collect(),
            });
        }
    }
    let common = common.unwrap_or_default();
    let mut calls: BTreeMap<i64, f64> = BTreeMap::new();
    for s in api(&format!("tokenmeter_calls_total{{job=\"{job}\"}}[10m]"), None).as_array().expect("matrix") {
        for v in s["values"].as_array().expect("values") {
            let t = (v[0].as_f64().expect("timestamp") * 1000.0).round() as i64;
            *calls.entry(t).or_default() += v[1].as_str().and_then(|x| x.parse::<f64>().ok()).unwrap_or(f64::NAN);
        }
    }
    common.into_iter().map(|t| (t, calls.get(&t).copied().unwrap_or(f64::NAN))).collect()
}

fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[test]
#[ignore = "needs the OTLP stack: run scripts/e2e.sh"]
fn dashboard_queries_equal_in_process_figures_and_all_return_data() {
    let prom = Prometheus::connect();
    let job = unique_job("dashboards");
    let meter = TokenMeter::builder()
        .with_otlp(
            OtlpConfig::new()
                .with_endpoint(grpc_endpoint())
                .with_protocol(Protocol::Grpc)
                .with_interval(Duration::from_millis(500))
                .with_timeout(Duration::from_secs(5))
                .with_service_name(&job)
                .ignore_env(),
        )
        .expect("valid OTLP config")
        .with_metric_attributes(MetricAttributes::new().with_agent().with_project())
        .with_budget(Budget::new("dash-monthly-usd", BudgetLimit::usd(1000.0).expect("usd")))
        // Over its limit in round 1: budget alerts fire and the time to limit is 0, so those panels have data.
        .with_budget(
            Budget::new("dash-daily-tokens", BudgetLimit::tokens(10_000))
                .with_period(BudgetPeriod::Day)
                .with_thresholds([50, 80]),
        )
        // One account per agent: "Values nearest their limits" has data.
        .with_budget(
            Budget::new("dash-per-agent", BudgetLimit::tokens(1_000_000)).with_scope(BudgetScope::each("agent")),
        )
        .build();
    let per_round = otlp_workload::CALLS_PER_ROUND as f64;
    let calls = format!("sum(tokenmeter_calls_total{{job=\"{job}\"}})");

    // Round 1, landed; then a few exports with nothing new, so t0 is a sample after round 1.
    otlp_workload::run(&meter);
    meter.flush_metrics().expect("export");
    prom.wait_for(&calls, per_round, 0.0, LANDING).unwrap();
    let first = meter.total_usage();
    std::thread::sleep(Duration::from_millis(2500));

    // A series born between t0 and t1 (an agent and model not seen before, one call): `increase()` alone never
    // counts its first export, which holds the whole call; the dashboards' range totals must.
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        let _late = tracing::info_span!(
            "chat claude-opus-4-5",
            gen_ai.provider.name = "anthropic",
            gen_ai.operation.name = "chat",
            gen_ai.request.model = "claude-opus-4-5",
            gen_ai.agent.name = "late-joiner",
            input_tokens = 4_000u64,
            output_tokens = 900u64,
        )
        .entered();
    });

    // Rounds 2 and 3, landed; then a few more exports.
    otlp_workload::run(&meter);
    otlp_workload::run(&meter);
    meter.flush_metrics().expect("export");
    prom.wait_for(&calls, 3.0 * per_round + 1.0, 0.0, LANDING).unwrap();
    let all = meter.total_usage();
    std::thread::sleep(Duration::from_millis(2500));

    // t0: the last shared export timestamp with round 1 only; t1: the last shared one (all three rounds).
    let stamps = common_timestamps(&job);
    let t0 = stamps.iter().filter(|(_, c)| *c == per_round).map(|(t, _)| *t).max().expect("a sample after round 1");
    let t1 = stamps
        .iter()
        .filter(|(_, c)| *c == 3.0 * per_round + 1.0)
        .map(|(t, _)| *t)
        .max()
        .expect("a sample after round 3");
    let range = format!("{}ms", t1 - t0);
    let at = secs(t1);
    eprintln!("{job}: {} shared export timestamps; range {range} ending at {at}", stamps.len());

    // Total cost (cost.json and overview.json "Total cost").
    let want_cost = all.cost.as_usd() - first.cost.as_usd();
    for file in ["cost.json", "overview.json"] {
        let q = substitute(&panel_queries(file, "Total cost")[0], &job, &range);
        let got = values_at(&q, &at, "").into_values().next().expect("total cost");
        assert!((got - want_cost).abs() <= 1e-6, "{file} Total cost {got} vs in process {want_cost}\n{q}");
        eprintln!("{file} Total cost: {got:.6} USD = in process {want_cost:.6}");
    }

    // Total tokens by type (cost.json "Tokens by type").
    let q = substitute(&panel_queries("cost.json", "Tokens by type")[0], &job, &range);
    let got = values_at(&q, &at, "gen_ai_token_type");
    for (kind, a, b) in [
        ("input", first.tokens.input, all.tokens.input),
        ("output", first.tokens.output, all.tokens.output),
        ("cache_read", first.tokens.cache_read, all.tokens.cache_read),
        ("cache_write_5m", first.tokens.cache_write_5m, all.tokens.cache_write_5m),
        ("cache_write_1h", first.tokens.cache_write_1h, all.tokens.cache_write_1h),
        ("reasoning", first.tokens.reasoning, all.tokens.reasoning),
    ] {
        let want = (b - a) as f64;
        let g = got.get(kind).copied().unwrap_or(f64::NAN);
        assert!((g - want).abs() <= 1e-6, "tokens of type {kind}: dashboard {g} vs in process {want}: {got:?}\n{q}");
    }
    eprintln!("cost.json Tokens by type: {got:?}");

    // Cache hit rate (cache.json and overview.json): cache reads over prompt tokens, of what was recorded after
    // round 1 (rounds 2-3 and the late joiner).
    let (a, b) = (first.tokens, all.tokens);
    let read = (b.cache_read - a.cache_read) as f64;
    let prompt = read
        + (b.input - a.input) as f64
        + (b.cache_write_5m - a.cache_write_5m) as f64
        + (b.cache_write_1h - a.cache_write_1h) as f64;
    let want_hit = read / prompt;
    for file in ["cache.json", "overview.json"] {
        let q = substitute(&panel_queries(file, "Cache hit rate")[0], &job, &range);
        let got = values_at(&q, &at, "").into_values().next().expect("hit rate");
        assert!((got - want_hit).abs() <= 1e-9, "{file} Cache hit rate {got} vs in process {want_hit}\n{q}");
        eprintln!("{file} Cache hit rate: {got} = in process {want_hit}");
    }

    // Every dashboard query, for this service alone, is valid and returns data (the meter is still exporting).
    let out = Command::new("python3")
        .arg(root().join("scripts/check-dashboards.py"))
        .args(["--prometheus", &prometheus_url(), "--set"])
        .arg(format!("job={}", regex_escape(&job).replace("\\\\", "\\")))
        .output()
        .expect("run scripts/check-dashboards.py");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    assert!(out.status.success(), "check-dashboards.py failed for job {job}:\n{text}");

    meter.shutdown().expect("shutdown");
}
