//! End to end: a workload exported over OTLP gRPC and over OTLP HTTP/protobuf lands in a real Prometheus
//! (through rotel and vmagent, see `scripts/otlp-stack.sh`), and PromQL returns exactly the in-process figures:
//! tokens by type, cost to 1e-6 USD, calls by outcome, tasks, tools, histograms, budget and efficiency gauges,
//! under the documented Prometheus names.
//!
//! Needs the stack: `scripts/e2e.sh` starts it, runs these (`cargo test --test e2e_otlp -- --ignored`) and
//! stops it.
#![cfg(feature = "otlp")]

mod e2e_support;
mod otlp_workload;

use std::time::Duration;

use e2e_support::{Prometheus, grpc_endpoint, http_endpoint, unique_job};
use tokenmeter::budget::BudgetUnit;
use tokenmeter::budget::{Budget, BudgetLimit, BudgetPeriod, BudgetScope};
use tokenmeter::export::otlp::names::*;
use tokenmeter::export::otlp::{MetricAttributes, OtlpConfig, Protocol};
use tokenmeter::{TokenMeter, Window};

const LANDING: Duration = Duration::from_secs(45);
const ROUNDS: u64 = 3;

fn meter(protocol: Protocol, job: &str) -> TokenMeter {
    let endpoint = match protocol {
        Protocol::Grpc => grpc_endpoint(),
        _ => http_endpoint(),
    };
    TokenMeter::builder()
        .with_otlp(
            OtlpConfig::new()
                .with_endpoint(endpoint)
                .with_protocol(protocol)
                .with_interval(Duration::from_secs(1))
                .with_timeout(Duration::from_secs(5))
                .with_service_name(job)
                .ignore_env(),
        )
        .expect("valid OTLP config")
        .with_metric_attributes(MetricAttributes::new().with_agent().with_project())
        .with_budget(Budget::new("e2e-monthly-usd", BudgetLimit::usd(5.0).expect("usd")))
        .with_budget(
            Budget::new("e2e-daily-tokens", BudgetLimit::tokens(100_000))
                .with_period(BudgetPeriod::Day)
                .with_thresholds([50, 80]),
        )
        // One account per agent: a series per agent, by `tokenmeter_budget_member`.
        .with_budget(
            Budget::new("e2e-per-agent", BudgetLimit::tokens(1_000_000)).with_scope(BudgetScope::each("agent")),
        )
        .build()
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

fn exported_workload_equals_in_process_figures(protocol: Protocol) {
    let prom = Prometheus::connect();
    let job = unique_job(protocol.as_str().replace('/', "-").as_str());
    let unix_now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    let before = unix_now();
    let meter = meter(protocol, &job);
    let built = unix_now();
    for _ in 0..ROUNDS {
        otlp_workload::run(&meter);
    }
    meter.flush_metrics().expect("the collector accepts the export");
    let want = meter.total_usage();
    assert_eq!(want.calls, ROUNDS * otlp_workload::CALLS_PER_ROUND);
    let sel = format!("job=\"{job}\"");

    prom.wait_for(&format!("sum({PROM_CALLS}{{{sel}}})"), want.calls as f64, 0.0, LANDING).unwrap();
    // Every exported series lands within the same export; give the last batch a moment anyway.
    prom.wait_for(&format!("count({PROM_TOKENS}{{{sel}}})"), 6.0 * 5.0, 0.0, LANDING).unwrap();

    // Tokens by type.
    let tokens = prom.by(&format!("sum by (gen_ai_token_type) ({PROM_TOKENS}{{{sel}}})"), "gen_ai_token_type");
    for (kind, n) in [
        ("input", want.tokens.input),
        ("output", want.tokens.output),
        ("cache_read", want.tokens.cache_read),
        ("cache_write_5m", want.tokens.cache_write_5m),
        ("cache_write_1h", want.tokens.cache_write_1h),
        ("reasoning", want.tokens.reasoning),
    ] {
        assert_eq!(tokens.get(kind).copied(), Some(n as f64), "tokens of type {kind}: {tokens:?}");
    }

    // Cost and cache savings to 1e-6 USD, in total and per model.
    let cost = prom.value(&format!("sum({PROM_COST}{{{sel}}})")).expect("cost");
    assert!(close(cost, want.cost.as_usd(), 1e-6), "cost {cost} vs {}", want.cost);
    let savings = prom.value(&format!("sum({PROM_CACHE_SAVINGS}{{{sel}}})")).expect("savings");
    assert!(close(savings, want.cache_savings.as_usd(), 1e-6), "savings {savings} vs {}", want.cache_savings);
    let by_model = prom.by(&format!("sum by (gen_ai_request_model) ({PROM_COST}{{{sel}}})"), "gen_ai_request_model");
    for m in meter.model_usage() {
        let got = by_model.get(&*m.model).copied();
        if m.totals.unpriced_calls > 0 && m.totals.calls == m.totals.unpriced_calls + m.totals.unmetered_calls {
            // A model without a price has no cost series: not a $0.00 bar.
            assert_eq!(got, None, "cost of unpriced {}", m.model);
            continue;
        }
        let got = got.unwrap_or(f64::NAN);
        assert!(close(got, m.totals.cost.as_usd(), 1e-6), "cost of {}: {got} vs {}", m.model, m.totals.cost);
    }

    // Web searches and their fees, on the one series that searched.
    let searches = prom
        .by(&format!("sum by (gen_ai_request_model) ({PROM_WEB_SEARCH_REQUESTS}{{{sel}}})"), "gen_ai_request_model");
    assert_eq!(searches.get("claude-sonnet-4-5").copied(), Some(want.web_search_requests as f64), "{searches:?}");
    assert_eq!(searches.len(), 1, "{searches:?}");
    let fees = prom.value(&format!("sum({PROM_WEB_SEARCH_COST}{{{sel}}})")).expect("web search fees");
    assert!(close(fees, want.web_search_cost.as_usd(), 1e-6), "fees {fees} vs {}", want.web_search_cost);

    // Calls by outcome, unmetered, unpriced.
    let outcomes = prom.by(&format!("sum by (tokenmeter_outcome) ({PROM_CALLS}{{{sel}}})"), "tokenmeter_outcome");
    assert_eq!(outcomes.get("ok").copied(), Some((want.calls - want.failed_calls) as f64), "{outcomes:?}");
    assert_eq!(outcomes.get("error").copied(), Some(want.failed_calls as f64), "{outcomes:?}");
    let errors = prom.by(&format!("sum by (error_type) ({PROM_CALLS}{{{sel}, error_type!=\"\"}})"), "error_type");
    assert_eq!(errors.get("overloaded_error").copied(), Some(ROUNDS as f64), "{errors:?}");
    assert_eq!(prom.value(&format!("sum({PROM_CALLS_UNMETERED}{{{sel}}})")), Some(want.unmetered_calls as f64));
    assert_eq!(prom.value(&format!("sum({PROM_CALLS_UNPRICED}{{{sel}}})")), Some(want.unpriced_calls as f64));
    let agents = prom.by(&format!("sum by (gen_ai_agent_name) ({PROM_CALLS}{{{sel}}})"), "gen_ai_agent_name");
    assert_eq!(agents.get("triage").copied(), Some(4.0 * ROUNDS as f64), "{agents:?}");

    // Tasks and tools.
    let tasks = prom.by(&format!("sum by (tokenmeter_outcome) ({PROM_TASKS}{{{sel}}})"), "tokenmeter_outcome");
    assert_eq!(tasks.get("ok").copied(), Some(ROUNDS as f64), "{tasks:?}");
    assert_eq!(tasks.get("error").copied(), Some(ROUNDS as f64), "{tasks:?}");
    let tools = prom.by(&format!("sum by (gen_ai_tool_name) ({PROM_TOOL_INVOCATIONS}{{{sel}}})"), "gen_ai_tool_name");
    assert_eq!(tools.get("web_search").copied(), Some(2.0 * ROUNDS as f64), "{tools:?}");
    assert_eq!(tools.get("read_file").copied(), Some(ROUNDS as f64), "{tools:?}");

    // Semconv histograms.
    let metered = (want.calls - want.unmetered_calls) as f64;
    let usage_count =
        prom.by(&format!("sum by (gen_ai_token_type) ({PROM_TOKEN_USAGE}_count{{{sel}}})"), "gen_ai_token_type");
    assert_eq!(usage_count.get("input").copied(), Some(metered), "{usage_count:?}");
    let usage_sum =
        prom.by(&format!("sum by (gen_ai_token_type) ({PROM_TOKEN_USAGE}_sum{{{sel}}})"), "gen_ai_token_type");
    assert_eq!(usage_sum.get("input").copied(), Some(want.tokens.prompt_total() as f64), "{usage_sum:?}");
    assert_eq!(usage_sum.get("output").copied(), Some(want.tokens.output as f64), "{usage_sum:?}");
    let le_inf = prom.value(&format!("sum({PROM_TOKEN_USAGE}_bucket{{{sel}, le=\"+Inf\"}})"));
    assert_eq!(le_inf, Some(2.0 * metered));
    let le_4096 = prom.value(&format!("sum({PROM_TOKEN_USAGE}_bucket{{{sel}, le=\"4096\"}})"));
    assert!(le_4096.is_some(), "semconv bucket boundary le=4096 present");
    assert_eq!(prom.value(&format!("sum({PROM_OPERATION_DURATION}_count{{{sel}}})")), Some(want.calls as f64));
    assert_eq!(prom.value(&format!("sum({PROM_TIME_TO_FIRST_CHUNK}_count{{{sel}}})")), Some(2.0 * ROUNDS as f64));
    let ttfc = prom.value(&format!("sum({PROM_TIME_TO_FIRST_CHUNK}_sum{{{sel}}})")).unwrap_or(f64::NAN);
    assert!(close(ttfc, 0.7 * ROUNDS as f64, 1e-9), "{ttfc}");

    // Budget gauges equal `budget_status()`.
    let budgets = meter.budget_status();
    let members: Vec<&str> = budgets.iter().filter_map(|b| b.member.as_deref()).collect();
    assert_eq!(members, ["triage", "writer"], "the budget of each agent's values");
    assert_eq!(budgets.len(), 4);
    for b in &budgets {
        let bsel = match &b.member {
            Some(m) => format!("{sel}, tokenmeter_budget=\"{}\", tokenmeter_budget_member=\"{m}\"", b.budget),
            None => format!("{sel}, tokenmeter_budget=\"{}\"", b.budget),
        };
        let (spent, limit, remaining) = match b.limit.unit() {
            BudgetUnit::Usd => (PROM_BUDGET_SPENT, PROM_BUDGET_LIMIT, PROM_BUDGET_REMAINING),
            BudgetUnit::Tokens => (PROM_BUDGET_TOKENS_SPENT, PROM_BUDGET_TOKENS_LIMIT, PROM_BUDGET_TOKENS_REMAINING),
        };
        for (name, want) in [(spent, b.spent.as_f64()), (limit, b.limit.as_f64()), (remaining, b.remaining.as_f64())] {
            let got = prom.value(&format!("{name}{{{bsel}}}")).unwrap_or(f64::NAN);
            assert!(close(got, want, 1e-6), "{name} of {}: {got} vs {want}", b.budget);
        }
        let util = prom.value(&format!("{PROM_BUDGET_UTILIZATION}{{{bsel}}}")).unwrap_or(f64::NAN);
        assert!(close(util, b.utilization, 1e-9), "utilization of {}: {util} vs {}", b.budget, b.utilization);
    }
    let alerts = prom.value(&format!("sum({PROM_BUDGET_ALERTS}{{{sel}}})")).unwrap_or(0.0);
    assert_eq!(alerts, meter.alert_stats().fired as f64, "budget alerts");
    assert!(alerts >= 2.0, "the token budget crossed 50% and 80%");

    // Efficiency and cache gauges equal the in-process report.
    let report = meter.efficiency_report(Window::LastHour, tokenmeter::Dimension::Model).expect("report");
    let score = prom.value(&format!("{PROM_EFFICIENCY_SCORE}{{{sel}, tokenmeter_window=\"1h\"}}"));
    assert_eq!(score, Some(report.efficiency_scores.overall));
    let hit = prom.value(&format!("{PROM_CACHE_HIT_RATE}{{{sel}, tokenmeter_window=\"1h\"}}")).unwrap_or(f64::NAN);
    assert!(close(hit, report.efficiency_scores.cache_hit_rate, 1e-12), "{hit}");

    // The start time the rules tell watched processes by: the exporter's, one series for the instance.
    let started = prom.value(&format!("{PROM_START_TIME}{{{sel}}}")).unwrap_or(f64::NAN);
    assert!(before <= started && started <= built, "{PROM_START_TIME} {started} not in {before}..{built}");
    assert_eq!(prom.value(&format!("count({PROM_START_TIME}{{{sel}}})")), Some(1.0));

    // Every documented name is what Prometheus holds.
    let names = prom.metric_names(&job);
    eprintln!("{} metric names for {job}: {names:#?}", protocol.as_str());
    for name in [
        format!("{PROM_TOKEN_USAGE}_bucket"),
        format!("{PROM_TOKEN_USAGE}_count"),
        format!("{PROM_TOKEN_USAGE}_sum"),
        format!("{PROM_OPERATION_DURATION}_bucket"),
        format!("{PROM_TIME_TO_FIRST_CHUNK}_bucket"),
        PROM_TOKENS.into(),
        PROM_COST.into(),
        PROM_CACHE_SAVINGS.into(),
        PROM_WEB_SEARCH_REQUESTS.into(),
        PROM_WEB_SEARCH_COST.into(),
        PROM_CALLS.into(),
        PROM_CALLS_UNMETERED.into(),
        PROM_CALLS_UNPRICED.into(),
        PROM_TASKS.into(),
        PROM_TOOL_INVOCATIONS.into(),
        PROM_BUDGET_ALERTS.into(),
        PROM_CAPTURE_CORRECTIONS.into(),
        PROM_EXPORT_FAILURES.into(),
        PROM_START_TIME.into(),
        PROM_EFFICIENCY_SCORE.into(),
        PROM_CACHE_HIT_RATE.into(),
        PROM_BUDGET_SPENT.into(),
        PROM_BUDGET_LIMIT.into(),
        PROM_BUDGET_REMAINING.into(),
        PROM_BUDGET_UTILIZATION.into(),
        PROM_BUDGET_PROJECTED.into(),
        PROM_BUDGET_TOKENS_SPENT.into(),
        PROM_BUDGET_TOKENS_LIMIT.into(),
        PROM_BUDGET_TOKENS_REMAINING.into(),
    ] {
        assert!(names.contains(&name), "{name} not in Prometheus; it has {names:#?}");
    }
    let labels = prom.label_names(PROM_CALLS, &job);
    eprintln!("labels of {PROM_CALLS}: {labels:?}");
    for label in [
        "job",
        "instance",
        "gen_ai_request_model",
        "gen_ai_provider_name",
        "gen_ai_operation_name",
        "tokenmeter_outcome",
        "project",
    ] {
        assert!(labels.iter().any(|l| l == label), "label {label} missing: {labels:?}");
    }
    assert!(!labels.iter().any(|l| l == "session_id" || l == "user_id"), "ids stay off metrics: {labels:?}");

    meter.shutdown().expect("shutdown flushes");
    let status = meter.export_status().expect("exporting");
    assert_eq!(status.failures, 0, "{status}");
    eprintln!("{status}");
}

#[test]
#[ignore = "needs the OTLP stack: run scripts/e2e.sh"]
fn grpc_export_lands_in_prometheus_with_in_process_figures() {
    exported_workload_equals_in_process_figures(Protocol::Grpc);
}

#[test]
#[ignore = "needs the OTLP stack: run scripts/e2e.sh"]
fn http_export_lands_in_prometheus_with_in_process_figures() {
    exported_workload_equals_in_process_figures(Protocol::HttpProtobuf);
}
