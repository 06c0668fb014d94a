//! What tokenmeter exports, read back through the OpenTelemetry SDK's in-memory exporter: every figure equals the
//! in-process read-out, attributes follow the builder, series are capped, histograms use semconv buckets.
#![cfg(feature = "otlp")]

use crate::otlp_workload;

use std::collections::BTreeMap;

use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider, Temporality};
use tokenmeter::TokenMeter;
use tokenmeter::export::otlp::MetricAttributes;
use tokenmeter::export::otlp::names::*;
use tracing::info_span;
use tracing_subscriber::prelude::*;

type Attrs = BTreeMap<String, String>;

fn pipeline(temporality: Temporality) -> (SdkMeterProvider, InMemoryMetricExporter) {
    let exporter =
        opentelemetry_sdk::metrics::InMemoryMetricExporterBuilder::new().with_temporality(temporality).build();
    let reader = PeriodicReader::builder(exporter.clone()).build();
    (SdkMeterProvider::builder().with_reader(reader).build(), exporter)
}

fn meter(provider: &SdkMeterProvider, attributes: MetricAttributes) -> TokenMeter {
    TokenMeter::builder().with_meter_provider(provider.clone()).with_metric_attributes(attributes).build()
}

/// Flushes and returns the latest export.
fn collect(meter: &TokenMeter, exporter: &InMemoryMetricExporter) -> ResourceMetrics {
    exporter.reset();
    meter.flush_metrics().expect("flush");
    exporter.get_finished_metrics().expect("metrics").pop().expect("one export")
}

fn find<'a>(rm: &'a ResourceMetrics, name: &str) -> Option<&'a Metric> {
    rm.scope_metrics().flat_map(|s| s.metrics()).find(|m| m.name() == name)
}

fn attrs<'a>(kvs: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> Attrs {
    kvs.map(|kv| (kv.key.to_string(), kv.value.to_string())).collect()
}

/// Sum data points as (attributes, value), for counters of either number type.
fn sums(rm: &ResourceMetrics, name: &str) -> Vec<(Attrs, f64)> {
    let m = find(rm, name).unwrap_or_else(|| panic!("{name} not exported"));
    match m.data() {
        AggregatedMetrics::U64(MetricData::Sum(s)) => {
            assert!(s.is_monotonic(), "{name} is a counter");
            s.data_points().map(|p| (attrs(p.attributes()), p.value() as f64)).collect()
        }
        AggregatedMetrics::F64(MetricData::Sum(s)) => {
            assert!(s.is_monotonic(), "{name} is a counter");
            s.data_points().map(|p| (attrs(p.attributes()), p.value())).collect()
        }
        other => panic!("{name}: not a sum: {other:?}"),
    }
}

fn total_where(points: &[(Attrs, f64)], key: &str, value: &str) -> f64 {
    points.iter().filter(|(a, _)| a.get(key).map(String::as_str) == Some(value)).map(|(_, v)| v).sum()
}

fn total(points: &[(Attrs, f64)]) -> f64 {
    points.iter().map(|(_, v)| v).sum()
}

struct Hist {
    attrs: Attrs,
    count: u64,
    sum: f64,
    bounds: Vec<f64>,
}

fn histograms(rm: &ResourceMetrics, name: &str) -> Vec<Hist> {
    let m = find(rm, name).unwrap_or_else(|| panic!("{name} not exported"));
    match m.data() {
        AggregatedMetrics::U64(MetricData::Histogram(h)) => h
            .data_points()
            .map(|p| Hist {
                attrs: attrs(p.attributes()),
                count: p.count(),
                sum: p.sum() as f64,
                bounds: p.bounds().collect(),
            })
            .collect(),
        AggregatedMetrics::F64(MetricData::Histogram(h)) => h
            .data_points()
            .map(|p| Hist {
                attrs: attrs(p.attributes()),
                count: p.count(),
                sum: p.sum(),
                bounds: p.bounds().collect(),
            })
            .collect(),
        other => panic!("{name}: not a histogram: {other:?}"),
    }
}

#[test]
fn exported_figures_equal_the_in_process_read_out() {
    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let meter = meter(&provider, MetricAttributes::new().with_agent());
    otlp_workload::run(&meter);
    let rm = collect(&meter, &exporter);
    let want = meter.total_usage();
    assert_eq!(want.calls, otlp_workload::CALLS_PER_ROUND);

    let tokens = sums(&rm, TOKENS);
    for (kind, n) in [
        ("input", want.tokens.input),
        ("output", want.tokens.output),
        ("cache_read", want.tokens.cache_read),
        ("cache_write_5m", want.tokens.cache_write_5m),
        ("cache_write_1h", want.tokens.cache_write_1h),
        ("reasoning", want.tokens.reasoning),
    ] {
        assert_eq!(total_where(&tokens, ATTR_TOKEN_TYPE, kind), n as f64, "tokens of type {kind}");
    }
    assert!((total(&sums(&rm, COST)) - want.cost.as_usd()).abs() < 1e-9, "cost");
    assert!((total(&sums(&rm, CACHE_SAVINGS)) - want.cache_savings.as_usd()).abs() < 1e-9, "cache savings");
    // Web searches: only the series that searched, its fees a part of the cost.
    assert_eq!(want.web_search_requests, otlp_workload::WEB_SEARCHES_PER_ROUND);
    let searches = sums(&rm, WEB_SEARCH_REQUESTS);
    assert_eq!(searches.len(), 1, "{searches:?}");
    assert_eq!(total_where(&searches, ATTR_MODEL, "claude-sonnet-4-5"), want.web_search_requests as f64);
    assert!(want.web_search_cost.as_usd() > 0.0);
    assert!((total(&sums(&rm, WEB_SEARCH_COST)) - want.web_search_cost.as_usd()).abs() < 1e-12, "search fees");
    let calls = sums(&rm, CALLS);
    assert_eq!(total_where(&calls, ATTR_OUTCOME, "ok"), (want.calls - want.failed_calls) as f64);
    assert_eq!(total_where(&calls, ATTR_OUTCOME, "error"), want.failed_calls as f64);
    assert_eq!(total_where(&calls, ATTR_ERROR_TYPE, "overloaded_error"), 1.0);
    assert_eq!(total(&sums(&rm, CALLS_UNMETERED)), want.unmetered_calls as f64);
    assert_eq!(total(&sums(&rm, CALLS_UNPRICED)), want.unpriced_calls as f64);

    // Per model, as `model_usage` keys them: the dated id merged into the canonical one.
    for m in meter.model_usage() {
        assert_eq!(total_where(&calls, ATTR_MODEL, &m.model), m.totals.calls as f64, "calls of {}", m.model);
        let cost = total_where(&sums(&rm, COST), ATTR_MODEL, &m.model);
        assert!((cost - m.totals.cost.as_usd()).abs() < 1e-9, "cost of {}", m.model);
    }
    let models: std::collections::BTreeSet<&str> =
        calls.iter().filter_map(|(a, _)| a.get(ATTR_MODEL).map(String::as_str)).collect();
    assert_eq!(
        models.into_iter().collect::<Vec<_>>(),
        ["claude-haiku-4-5", "claude-opus-4-5", "claude-sonnet-4-5", "mystery-model-1"]
    );
    // The model without a price has calls, and no cost or savings series: not a $0.00 bar in "Cost by model".
    for name in [COST, CACHE_SAVINGS] {
        let points = sums(&rm, name);
        let priced: std::collections::BTreeSet<&str> =
            points.iter().filter_map(|(a, _)| a.get(ATTR_MODEL).map(String::as_str)).collect();
        assert_eq!(
            priced.into_iter().collect::<Vec<_>>(),
            ["claude-haiku-4-5", "claude-opus-4-5", "claude-sonnet-4-5"]
        );
    }

    // Attributes: the defaults plus the agent asked for; never the session, user or project unless asked.
    let sonnet =
        calls.iter().find(|(a, _)| a.get(ATTR_MODEL).map(String::as_str) == Some("claude-sonnet-4-5")).unwrap();
    let keys: Vec<&str> = sonnet.0.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "gen_ai.agent.name",
            "gen_ai.operation.name",
            "gen_ai.provider.name",
            "gen_ai.request.model",
            "tokenmeter.outcome"
        ]
    );
    assert_eq!(sonnet.0["gen_ai.agent.name"], "triage");
    assert_eq!(sonnet.1, 4.0, "three calls and the dated one");

    // Semconv histograms.
    let usage = histograms(&rm, TOKEN_USAGE);
    assert!(usage.iter().all(|h| h.bounds == TOKEN_USAGE_BUCKETS));
    let metered = want.calls - want.unmetered_calls;
    let count = |t: &str| usage.iter().filter(|h| h.attrs[ATTR_TOKEN_TYPE] == t).map(|h| h.count).sum::<u64>();
    let sum = |t: &str| usage.iter().filter(|h| h.attrs[ATTR_TOKEN_TYPE] == t).map(|h| h.sum).sum::<f64>();
    assert_eq!((count("input"), count("output")), (metered, metered));
    assert_eq!(sum("input"), want.tokens.prompt_total() as f64, "semconv input includes cache reads and writes");
    assert_eq!(sum("output"), want.tokens.output as f64);
    assert_eq!(find(&rm, TOKEN_USAGE).unwrap().unit(), "{token}");
    let duration = histograms(&rm, OPERATION_DURATION);
    assert!(duration.iter().all(|h| h.bounds == DURATION_BUCKETS));
    assert_eq!(duration.iter().map(|h| h.count).sum::<u64>(), want.calls);
    assert!(duration.iter().any(|h| h.attrs.get(ATTR_ERROR_TYPE).map(String::as_str) == Some("timeout")));
    assert_eq!(find(&rm, OPERATION_DURATION).unwrap().unit(), "s");
    let first = histograms(&rm, TIME_TO_FIRST_CHUNK);
    assert_eq!(first.iter().map(|h| h.count).sum::<u64>(), 2, "only the two streams");
    assert!((first.iter().map(|h| h.sum).sum::<f64>() - 0.7).abs() < 1e-9);

    // Tasks and tools.
    let tasks = sums(&rm, TASKS);
    assert_eq!(total_where(&tasks, ATTR_TASK, "summarize"), 1.0);
    let draft = tasks.iter().find(|(a, _)| a[ATTR_TASK] == "draft").unwrap();
    assert_eq!((draft.0[ATTR_OUTCOME].as_str(), draft.0[ATTR_ERROR_TYPE].as_str()), ("error", "gave_up"));
    let tools = sums(&rm, TOOL_INVOCATIONS);
    assert_eq!(total_where(&tools, ATTR_TOOL, "web_search"), 2.0);
    assert_eq!(total_where(&tools, ATTR_OUTCOME, "error"), 1.0);
    assert_eq!(total(&tools), otlp_workload::TOOLS_PER_ROUND as f64);
    let mut corrections: Vec<_> =
        sums(&rm, CAPTURE_CORRECTIONS).into_iter().map(|(a, n)| (a[ATTR_CORRECTION].clone(), n)).collect();
    corrections.sort_by(|a, b| a.0.cmp(&b.0));
    let stats = meter.capture_stats();
    let expected = [
        ("normalization", stats.normalization_corrections),
        ("orphan_usage_event", stats.orphan_usage_events),
        ("rejected_value", stats.rejected_values),
        ("rollup_span", stats.rollup_spans),
        ("shared_span_split", stats.shared_span_splits),
        ("unread_usage_declaration", stats.unread_usage_declarations),
        ("unsent_call", stats.unsent_calls),
    ];
    assert_eq!(corrections, expected.map(|(k, n)| (k.to_owned(), n as f64)));

    // Cumulative: a second round doubles every counter.
    otlp_workload::run(&meter);
    let rm = collect(&meter, &exporter);
    assert_eq!(total(&sums(&rm, CALLS)), 2.0 * otlp_workload::CALLS_PER_ROUND as f64);
    assert!((total(&sums(&rm, COST)) - meter.total_usage().cost.as_usd()).abs() < 1e-9);
}

#[test]
fn delta_temporality_exports_what_changed() {
    let (provider, exporter) = pipeline(Temporality::Delta);
    let meter = meter(&provider, MetricAttributes::new());
    otlp_workload::run(&meter);
    let first = collect(&meter, &exporter);
    assert_eq!(total(&sums(&first, CALLS)), otlp_workload::CALLS_PER_ROUND as f64);
    otlp_workload::run(&meter);
    otlp_workload::run(&meter);
    let third = collect(&meter, &exporter);
    assert_eq!(total(&sums(&third, CALLS)), 2.0 * otlp_workload::CALLS_PER_ROUND as f64);
    let usage = histograms(&third, TOKEN_USAGE);
    let metered = otlp_workload::CALLS_PER_ROUND - 1;
    assert_eq!(usage.iter().map(|h| h.count).sum::<u64>(), 2 * 2 * metered);
}

#[test]
fn low_memory_temporality_keeps_exact_counters_cumulative_and_histograms_delta() {
    // `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=lowmemory`: the specification keeps asynchronous
    // counters cumulative, and tokenmeter's exact counters are asynchronous.
    let (provider, exporter) = pipeline(Temporality::LowMemory);
    let meter = meter(&provider, MetricAttributes::new());
    otlp_workload::run(&meter);
    collect(&meter, &exporter);
    otlp_workload::run(&meter);
    let second = collect(&meter, &exporter);
    assert_eq!(total(&sums(&second, CALLS)), 2.0 * otlp_workload::CALLS_PER_ROUND as f64);
    assert!((total(&sums(&second, COST)) - meter.total_usage().cost.as_usd()).abs() < 1e-9);
    let usage = histograms(&second, TOKEN_USAGE);
    let metered = otlp_workload::CALLS_PER_ROUND - 1;
    assert_eq!(usage.iter().map(|h| h.count).sum::<u64>(), 2 * metered, "the second round only");
}

#[test]
fn series_are_capped_with_an_exact_overflow_series_and_values_are_cut() {
    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let meter = meter(&provider, MetricAttributes::new().with_max_series(3).with_max_value_len(16));
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        let long = format!("a-model-id-longer-than-sixteen-bytes-{}", "x".repeat(300));
        let _c = info_span!("chat", gen_ai.request.model = long.as_str(), input_tokens = 1u64).entered();
        drop(_c);
        for i in 0..9u64 {
            let model = format!("m{i}");
            let _c = info_span!("chat", gen_ai.request.model = model.as_str(), input_tokens = 100 + i).entered();
        }
    });
    let rm = collect(&meter, &exporter);
    let calls = sums(&rm, CALLS);
    assert_eq!(calls.len(), 4, "three series and the overflow series: {calls:?}");
    assert_eq!(total(&calls), 10.0, "nothing is lost");
    assert_eq!(total_where(&calls, "otel.metric.overflow", "true"), 7.0);
    assert_eq!(total_where(&calls, ATTR_MODEL, "a-model-id-longe"), 1.0, "values are cut at 16 bytes");
    let tokens = sums(&rm, TOKENS);
    assert_eq!(total_where(&tokens, ATTR_TOKEN_TYPE, "input"), 1.0 + (100..109).sum::<u64>() as f64);
    let histos = histograms(&rm, TOKEN_USAGE);
    assert_eq!(histos.len(), 2 * 4, "histograms share the capped series");
}

#[test]
fn metric_dimensions_named_by_span_field_or_extra_dimension_are_exported() {
    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let attributes = MetricAttributes::new()
        .with_named_dimension("tenant.id") // the span field: the tenant
        .with_named_dimension("gen_ai.request.model") // on every metric already: adds nothing
        .with_named_dimension("team"); // an extra dimension
    assert_eq!(attributes.dimensions().len(), 2, "{:?}", attributes.dimensions());
    let meter = TokenMeter::builder()
        .with_meter_provider(provider.clone())
        .with_dimension("team")
        .with_metric_attributes(attributes)
        .try_build()
        .expect("every metric dimension is captured");
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        let _scope = info_span!("request", tenant.id = "acme", team = "search").entered();
        let _c = info_span!("chat", gen_ai.request.model = "claude-sonnet-4-5", input_tokens = 7u64).entered();
    });
    let calls = sums(&collect(&meter, &exporter), CALLS);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0.get("tenant.id").map(String::as_str), Some("acme"), "{calls:?}");
    assert_eq!(calls[0].0.get("team").map(String::as_str), Some("search"), "{calls:?}");
}

#[test]
fn a_metric_dimension_the_meter_does_not_capture_is_refused() {
    let (provider, _exporter) = pipeline(Temporality::Cumulative);
    let err = TokenMeter::builder()
        .with_meter_provider(provider.clone())
        .with_metric_attributes(MetricAttributes::new().with_named_dimension("team"))
        .try_build()
        .map(|_| ())
        .expect_err("`team` is not an extra dimension");
    let text = err.to_string();
    assert!(text.contains("`team`") && text.contains("extra dimensions: none"), "{text}");
    assert!(matches!(err, tokenmeter::BuildError::MetricDimension { .. }), "{err:?}");

    // An extra dimension named like an attribute the metrics set themselves: with `gen_ai.token.type` the six
    // token types' observations shared one attribute set, and the SDK kept the last.
    for name in ["gen_ai.token.type", "tokenmeter.budget", "otel.metric.overflow"] {
        let err = TokenMeter::builder()
            .with_meter_provider(provider.clone())
            .with_dimension(name)
            .with_metric_attributes(MetricAttributes::new().with_named_dimension(name))
            .try_build()
            .map(|_| ())
            .expect_err("a reserved attribute key");
        assert!(matches!(&err, tokenmeter::BuildError::MetricDimensionReserved { dimension } if dimension == name));
    }
    // Named unlike any attribute, but the same label once in Prometheus (`.` becomes `_`): `job` is the scrape's
    // own, `error_type` is `error.type`'s, and `team.name` and `team_name` are each other's.
    for (names, label) in
        [(&["job"][..], "job"), (&["error_type"], "error_type"), (&["team.name", "team_name"], "team_name")]
    {
        let mut builder = TokenMeter::builder().with_meter_provider(provider.clone());
        let mut attributes = MetricAttributes::new();
        for name in names {
            builder = builder.with_dimension(*name);
            attributes = attributes.with_named_dimension(name);
        }
        let err = builder.with_metric_attributes(attributes).try_build().map(|_| ()).expect_err("a label clash");
        assert!(
            matches!(&err, tokenmeter::BuildError::MetricDimensionLabel { label: l, .. } if l == label),
            "{names:?}: {err:?}"
        );
    }
    // The built-in dimensions, the task's among them (the task metrics' own `task` attribute), clash with nothing.
    let all = ["gen_ai.agent.name", "project", "tenant.id", "user.id", "session.id", "operation", "task"];
    let attributes = all.iter().fold(MetricAttributes::new(), |a, d| a.with_named_dimension(d));
    TokenMeter::builder()
        .with_meter_provider(provider.clone())
        .with_metric_attributes(attributes)
        .try_build()
        .expect("the built-in dimensions");

    let mut attributes = MetricAttributes::new();
    let mut builder = TokenMeter::builder().with_meter_provider(provider.clone());
    for i in 0..9 {
        builder = builder.with_dimension(format!("d{i}"));
        attributes = attributes.with_named_dimension(&format!("d{i}"));
    }
    let err = builder.with_metric_attributes(attributes).try_build().map(|_| ()).expect_err("nine dimensions");
    assert!(err.to_string().contains("`d8` is past the 8"), "{err}");
}

#[test]
fn token_counters_stay_exact_past_the_sdks_series_limit() {
    // Six points a series: 400 series would make 2,400 attribute sets, past the SDK's 2,000 an instrument,
    // whose overflow keeps only the last value written (the input total read 334 of 400).
    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let meter = meter(&provider, MetricAttributes::new());
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..400u64 {
            let model = format!("m{i}");
            let _c =
                info_span!("chat", gen_ai.request.model = model.as_str(), input_tokens = 1u64, output_tokens = 2u64)
                    .entered();
        }
    });
    let rm = collect(&meter, &exporter);
    let tokens = sums(&rm, TOKENS);
    assert!(tokens.len() <= 2_000, "{} attribute sets", tokens.len());
    assert_eq!(total_where(&tokens, ATTR_TOKEN_TYPE, "input"), 400.0);
    assert_eq!(total_where(&tokens, ATTR_TOKEN_TYPE, "output"), 800.0);
    let folded: Vec<_> = tokens.iter().filter(|(a, _)| a.contains_key("otel.metric.overflow")).collect();
    assert_eq!(folded.len(), 6, "one overflow set per token type: {folded:?}");
    assert_eq!(total_where(&tokens, ATTR_MODEL, "m0"), 3.0, "the first series keep their own sets");
    // Collected again, each series stays on its side (cumulative counters must not move between sets).
    let sorted = |mut v: Vec<(Attrs, f64)>| {
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let again = sorted(sums(&collect(&meter, &exporter), TOKENS));
    assert!(again == sorted(tokens), "the second collection differs from the first");
    assert_eq!(total(&sums(&rm, CALLS)), 400.0);
}

fn gauges(rm: &ResourceMetrics, name: &str) -> Vec<(Attrs, f64)> {
    let m = find(rm, name).unwrap_or_else(|| panic!("{name} not exported"));
    match m.data() {
        AggregatedMetrics::F64(MetricData::Gauge(g)) => {
            g.data_points().map(|p| (attrs(p.attributes()), p.value())).collect()
        }
        other => panic!("{name}: not an f64 gauge: {other:?}"),
    }
}

#[test]
fn gauges_and_self_observability_follow_budgets_ledger_and_journal() {
    use tokenmeter::budget::{Budget, BudgetLimit, BudgetPeriod};

    let dir = tempfile::tempdir().expect("tempdir");
    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let meter = TokenMeter::builder()
        .with_meter_provider(provider.clone())
        .with_budget(Budget::new("usd", BudgetLimit::usd(2.0).expect("usd")))
        .with_budget(
            Budget::new("tokens", BudgetLimit::tokens(50_000)).with_period(BudgetPeriod::Day).with_thresholds([50]),
        )
        .with_journal(tokenmeter::JournalConfig::new(dir.path()))
        .try_build()
        .expect("meter");
    otlp_workload::run(&meter);
    let rm = collect(&meter, &exporter);

    for b in meter.budget_status() {
        let spent_name = if &*b.budget == "usd" { BUDGET_SPENT } else { BUDGET_TOKENS_SPENT };
        let spent = gauges(&rm, spent_name);
        let got = spent.iter().find(|(a, _)| a[ATTR_BUDGET] == *b.budget).map(|(_, v)| *v);
        assert_eq!(got, Some(b.spent.as_f64()), "{spent_name} of {}", b.budget);
        let util = gauges(&rm, BUDGET_UTILIZATION);
        let got = util.iter().find(|(a, _)| a[ATTR_BUDGET] == *b.budget).map(|(_, v)| *v);
        assert_eq!(got, Some(b.utilization), "utilization of {}", b.budget);
    }
    let alerts = sums(&rm, BUDGET_ALERTS);
    assert_eq!(total(&alerts), meter.alert_stats().fired as f64);
    assert!(
        alerts
            .iter()
            .any(|(a, _)| a[ATTR_BUDGET] == "tokens" && a.get(ATTR_ALERT_THRESHOLD).map(String::as_str) == Some("50"))
    );

    let report = meter.efficiency_report(tokenmeter::Window::LastHour, tokenmeter::Dimension::Model).expect("report");
    let score = gauges(&rm, EFFICIENCY_SCORE);
    assert_eq!(
        score.iter().find(|(a, _)| a[ATTR_WINDOW] == "1h").map(|(_, v)| *v),
        Some(report.efficiency_scores.overall)
    );
    let hit = gauges(&rm, CACHE_HIT_RATE);
    assert_eq!(
        hit.iter().find(|(a, _)| a[ATTR_WINDOW] == "1h").map(|(_, v)| *v),
        Some(report.efficiency_scores.cache_hit_rate)
    );

    let dropped = sums(&rm, JOURNAL_DROPPED);
    assert_eq!(dropped.len(), 3, "queue_full, write_failed and alert_lost");
    assert_eq!(total_where(&dropped, ATTR_REASON, "alert_lost"), 0.0);
    assert_eq!(total(&dropped), 0.0);
    assert!(find(&rm, EXPORT_FAILURES).is_none(), "only tokenmeter's own pipeline counts export failures");
}

/// A meter with a `team` budget of `team_usd` and a `per-user` budget of $1 for each user, after one Haiku call
/// of each `(user, input tokens)` ($1 a million).
fn team_and_each_user(
    team_usd: f64,
    calls: impl IntoIterator<Item = (String, u64)>,
) -> (TokenMeter, InMemoryMetricExporter) {
    use tokenmeter::budget::{Budget, BudgetLimit, BudgetScope};

    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let meter = TokenMeter::builder()
        .with_meter_provider(provider)
        .with_budget(Budget::new("team", BudgetLimit::usd(team_usd).expect("usd")))
        .with_budget(Budget::new("per-user", BudgetLimit::usd(1.0).expect("usd")).with_scope(BudgetScope::each_user()))
        .try_build()
        .expect("meter");
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        for (user, input) in calls {
            let _user = info_span!("request", user.id = %user).entered();
            let _call = info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = input).entered();
        }
    });
    (meter, exporter)
}

#[test]
fn a_budget_for_each_user_exports_a_series_per_user_named_by_the_member_attribute() {
    let (meter, exporter) = team_and_each_user(10.0, [("alice".to_owned(), 600_000), ("bob".to_owned(), 200_000)]);
    let rm = collect(&meter, &exporter);
    let mut util: Vec<(String, Option<String>, f64)> = gauges(&rm, BUDGET_UTILIZATION)
        .into_iter()
        .map(|(a, v)| (a[ATTR_BUDGET].clone(), a.get(ATTR_BUDGET_MEMBER).cloned(), v))
        .collect();
    util.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let expected = [
        ("per-user".to_owned(), Some("alice".to_owned()), 0.6),
        ("per-user".to_owned(), Some("bob".to_owned()), 0.2),
        ("team".to_owned(), None, 0.08),
    ];
    assert_eq!(util.len(), expected.len(), "{util:?}");
    for (got, want) in util.iter().zip(expected) {
        assert_eq!((&got.0, &got.1), (&want.0, &want.1));
        assert!((got.2 - want.2).abs() < 1e-12, "{got:?}");
    }
}

#[test]
fn a_budget_values_attribute_is_cut_at_the_attribute_length_as_dimensions_are() {
    use tokenmeter::budget::{Budget, BudgetLimit, BudgetScope};
    // `with_max_value_len` is the control the README gives for what OTLP carries; the member went out whole.
    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let meter = TokenMeter::builder()
        .with_meter_provider(provider)
        .with_metric_attributes(MetricAttributes::new().with_user().with_max_value_len(10))
        .with_budget(Budget::new("per-user", BudgetLimit::usd(1.0).expect("usd")).with_scope(BudgetScope::each_user()))
        .try_build()
        .expect("meter");
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        let _user = info_span!("request", user.id = "alexandria@example.com").entered();
        let _call = info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 100u64).entered();
    });
    let rm = collect(&meter, &exporter);
    let members: Vec<String> =
        gauges(&rm, BUDGET_UTILIZATION).into_iter().filter_map(|(a, _)| a.get(ATTR_BUDGET_MEMBER).cloned()).collect();
    assert_eq!(members, ["alexandria"]);
}

#[test]
fn past_the_budget_series_cap_the_values_of_budgets_of_each_value_go_first() {
    // 1,000 users at 20% of their own $1 pushed the organisation's budget, at 10%, out of the 1,000 series.
    let (meter, exporter) = team_and_each_user(2_000.0, (0..1_000).map(|i| (format!("user-{i:04}"), 200_000)));
    let rm = collect(&meter, &exporter);
    let util = gauges(&rm, BUDGET_UTILIZATION);
    assert_eq!(util.len(), 1_000);
    let org = util.iter().find(|(a, _)| a[ATTR_BUDGET] == "team").map(|(_, v)| *v);
    assert_eq!(org, Some(0.1));
    assert_eq!(util.iter().filter(|(a, _)| a.contains_key(ATTR_BUDGET_MEMBER)).count(), 999);
}

#[test]
fn a_window_of_calls_without_usage_has_no_efficiency_gauge() {
    // One call that timed out before any usage: nothing to score. Its report reads 100 and 0% as
    // placeholders; the gauges used to publish those.
    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let meter = meter(&provider, MetricAttributes::new());
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        let _c = info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = tracing::field::Empty)
            .entered();
    });
    assert_eq!(meter.total_usage().unmetered_calls, 1);
    let rm = collect(&meter, &exporter);
    assert!(find(&rm, EFFICIENCY_SCORE).is_none_or(|_| gauges(&rm, EFFICIENCY_SCORE).is_empty()));
    assert!(find(&rm, CACHE_HIT_RATE).is_none_or(|_| gauges(&rm, CACHE_HIT_RATE).is_empty()));
}

#[test]
fn a_model_without_a_price_has_no_cost_series_even_for_its_failed_calls() {
    // A failed call without usage is a series of its own (outcome, error type): for a model without a price it
    // exported $0 and put the model back in "Cost by model". A priced model's failed calls cost a true $0.
    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let meter = meter(&provider, MetricAttributes::new());
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        for model in ["mystery-model-1", "claude-haiku-4-5"] {
            let _ok = info_span!("chat", gen_ai.request.model = model, input_tokens = 100u64, output_tokens = 10u64)
                .entered();
        }
        for model in ["mystery-model-1", "claude-haiku-4-5"] {
            let _failed = info_span!(
                "chat",
                gen_ai.request.model = model,
                input_tokens = tracing::field::Empty,
                error.type = "timeout"
            )
            .entered();
        }
    });
    assert_eq!((meter.total_usage().unmetered_calls, meter.total_usage().unpriced_calls), (2, 1));
    let rm = collect(&meter, &exporter);
    for name in [COST, CACHE_SAVINGS] {
        let mut series: Vec<(String, String)> =
            sums(&rm, name).into_iter().map(|(a, _)| (a[ATTR_MODEL].clone(), a[ATTR_OUTCOME].clone())).collect();
        series.sort();
        let haiku = |outcome: &str| ("claude-haiku-4-5".to_owned(), outcome.to_owned());
        assert_eq!(series, [haiku("error"), haiku("ok")], "{name}");
    }
    // The calls themselves are all there.
    assert_eq!(total_where(&sums(&rm, CALLS), ATTR_MODEL, "mystery-model-1"), 2.0);
}

#[test]
fn every_budget_alert_series_is_exported_at_zero_before_it_fires() {
    // A counter series that first appears at 1 shows no `increase`: the first alert of each budget, kind and
    // threshold went uncounted on the dashboards.
    use tokenmeter::budget::{Budget, BudgetLimit, BudgetPeriod};
    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let meter = TokenMeter::builder()
        .with_meter_provider(provider.clone())
        .with_budget(Budget::new("monthly", BudgetLimit::usd(10.0).unwrap()).with_thresholds([50, 100]))
        .with_budget(
            Budget::new("hourly", BudgetLimit::tokens(1_000))
                .with_period(BudgetPeriod::Rolling(std::time::Duration::from_secs(3_600)))
                .with_thresholds([90]),
        )
        .build();
    let rm = collect(&meter, &exporter);
    let mut alerts: Vec<(String, String, String, f64)> = sums(&rm, BUDGET_ALERTS)
        .into_iter()
        .map(|(a, v)| {
            let get = |k: &str| a.get(k).cloned().unwrap_or_default();
            (get(ATTR_BUDGET), get(ATTR_ALERT), get(ATTR_ALERT_THRESHOLD), v)
        })
        .collect();
    alerts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let row = |b: &str, k: &str, t: &str| (b.to_owned(), k.to_owned(), t.to_owned(), 0.0);
    assert_eq!(
        alerts,
        [
            row("hourly", "threshold_crossed", "90"),
            row("monthly", "projected_overrun", ""),
            row("monthly", "threshold_crossed", "100"),
            row("monthly", "threshold_crossed", "50"),
        ]
    );
}

#[test]
fn budget_alerts_past_the_series_cap_are_counted_in_an_overflow_series() {
    // 16 budgets of 64 thresholds (and a projected overrun each): 1,040 keys past the cap of 1,000. The alerts
    // of keys past it were dropped without a word.
    use tokenmeter::budget::{Budget, BudgetLimit};
    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let mut builder = TokenMeter::builder().with_meter_provider(provider.clone());
    for i in 0..16 {
        builder = builder
            .with_budget(Budget::new(format!("b{i:02}"), BudgetLimit::usd(1.0).unwrap()).with_thresholds(1..=64));
    }
    let meter = builder.build();
    // Before any alert: the overflow series is there at 0, so that `increase` counts the first alert in it.
    let rm = collect(&meter, &exporter);
    assert_eq!(total_where(&sums(&rm, BUDGET_ALERTS), "otel.metric.overflow", "true"), 0.0);
    assert!(sums(&rm, BUDGET_ALERTS).iter().any(|(a, _)| a.contains_key("otel.metric.overflow")));
    tracing::subscriber::with_default(tracing_subscriber::registry().with(meter.layer()), || {
        let _call =
            info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 1_000_000u64).entered();
    });
    let fired = meter.alert_stats().fired;
    assert!(fired >= 16 * 64, "{fired}");
    let rm = collect(&meter, &exporter);
    let alerts = sums(&rm, BUDGET_ALERTS);
    assert_eq!(total(&alerts), fired as f64);
    let overflow = total_where(&alerts, "otel.metric.overflow", "true");
    assert!(overflow > 0.0, "{alerts:?}");
    assert_eq!(alerts.len(), 1_001, "the cap and the overflow series");
}

#[test]
fn a_provider_its_owner_shut_down_first_is_no_shutdown_error() {
    // The application shut its provider down before the meter: `meter.shutdown()` failed with the SDK's
    // AlreadyShutdown and "check that the collector is running".
    let (provider, _exporter) = pipeline(Temporality::Cumulative);
    let meter = meter(&provider, MetricAttributes::new());
    provider.shutdown().expect("the owner's shutdown");
    meter.shutdown().expect("nothing left to flush is not a failure");
}

#[test]
fn a_provider_exporting_after_its_meter_is_gone_reads_no_cost_for_an_unpriced_model() {
    // A usage-less call on a model without a price: no cost series while the meter lives. After the meter was
    // dropped, the provider's next export could not ask the meter's price book and exported a $0 cost for it.
    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let meter = meter(&provider, MetricAttributes::new());
    tracing::subscriber::with_default(tracing_subscriber::registry().with(meter.layer()), || {
        let _c = info_span!("chat", gen_ai.request.model = "mystery-model-1", input_tokens = tracing::field::Empty)
            .entered();
    });
    let costed = |rm: &ResourceMetrics| {
        find(rm, COST).map_or(0, |_| sums(rm, COST).iter().filter(|(a, _)| a.contains_key(ATTR_MODEL)).count())
    };
    let live = collect(&meter, &exporter);
    assert_eq!(total(&sums(&live, CALLS)), 1.0);
    assert_eq!(costed(&live), 0);
    drop(meter);
    exporter.reset();
    provider.force_flush().expect("flush");
    let after = exporter.get_finished_metrics().expect("metrics").pop().expect("one export");
    assert_eq!(total(&sums(&after, CALLS)), 1.0, "the callbacks still report the meter's last totals");
    assert_eq!(costed(&after), 0, "no $0 cost for a model without a price");
}

#[test]
fn the_providers_final_export_after_the_meter_is_gone_carries_the_capture_corrections() {
    // The callbacks read capture stats through the meter: once it was dropped, the provider's final export (the
    // application shuts its provider down last) carried no capture corrections at all, and the corrections
    // since the previous export never reached the collector.
    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let meter = meter(&provider, MetricAttributes::new());
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        let _s = info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = -3i64).entered();
    });
    let rejected = meter.capture_stats().rejected_values;
    assert_eq!(rejected, 1);
    drop(meter);
    exporter.reset();
    provider.force_flush().expect("flush");
    let rm = exporter.get_finished_metrics().expect("metrics").pop().expect("one export");
    let corrections = sums(&rm, CAPTURE_CORRECTIONS);
    let got = corrections.iter().find(|(a, _)| a[ATTR_CORRECTION] == "rejected_value").map(|(_, n)| *n);
    assert_eq!(got, Some(1.0), "{corrections:?}");
}

#[test]
fn budget_gauges_past_the_series_cap_export_the_budgets_nearest_their_limits() {
    // 2,500 budgets: the SDK keeps 2,000 series an instrument and folds the rest into one overflow point holding
    // whichever value came last, so budgets past the 2,000th went missing from every budget panel.
    use tokenmeter::budget::{Budget, BudgetLimit};
    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let mut builder = TokenMeter::builder().with_meter_provider(provider.clone());
    for i in 0..2_500u32 {
        // Larger limits, lower utilization: b0000 is the nearest its limit.
        let limit = BudgetLimit::usd(1.0 + f64::from(i)).unwrap();
        builder = builder.with_budget(Budget::new(format!("b{i:04}"), limit).with_thresholds([100]));
    }
    let meter = builder.build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(meter.layer()), || {
        let _call = info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 100_000u64).entered();
    });
    let rm = collect(&meter, &exporter);
    let expected: Vec<String> = (0..1_000).map(|i| format!("b{i:04}")).collect();
    for name in [BUDGET_UTILIZATION, BUDGET_SPENT, BUDGET_LIMIT, BUDGET_REMAINING] {
        let mut got: Vec<String> = gauges(&rm, name).into_iter().map(|(a, _)| a[ATTR_BUDGET].clone()).collect();
        got.sort();
        assert_eq!(got, expected, "{name}: the 1,000 most used, no overflow point");
    }
    let status = meter.budget_status();
    let util = gauges(&rm, BUDGET_UTILIZATION);
    let b0 = util.iter().find(|(a, _)| a[ATTR_BUDGET] == "b0000").map(|(_, v)| *v);
    assert_eq!(b0, status.iter().find(|b| &*b.budget == "b0000").map(|b| b.utilization));
}

#[test]
fn build_leaves_out_the_metric_dimensions_it_says_are_never_exported() {
    // `job` (Prometheus's own label) beside a good one: `build` logged "metric dimension never exported" and
    // exported `job` on every series all the same; and it said only the first of two bad ones.
    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let meter = TokenMeter::builder()
        .with_meter_provider(provider.clone())
        .with_dimension("job")
        .with_dimension("error_type")
        .with_dimension("team")
        .with_metric_attributes(
            MetricAttributes::new()
                .with_named_dimension("job")
                .with_named_dimension("error_type")
                .with_named_dimension("team"),
        )
        .build();
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        let _scope = info_span!("request", job = "nightly", error_type = "x", team = "search").entered();
        let _c = info_span!("chat", gen_ai.request.model = "claude-sonnet-4-5", input_tokens = 7u64).entered();
    });
    let calls = sums(&collect(&meter, &exporter), CALLS);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(!calls[0].0.contains_key("job") && !calls[0].0.contains_key("error_type"), "{calls:?}");
    assert_eq!(calls[0].0.get("team").map(String::as_str), Some("search"), "the good one stays: {calls:?}");
}

#[test]
fn the_start_time_gauge_is_when_the_counters_started_from_zero() {
    // The spend rules and range panels tell a process Prometheus watched from its start from one it first saw long
    // after it started by `tokenmeter.start_time`: one point, the Unix time the exporter began, the same at every
    // export.
    let unix_now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let before = unix_now();
    let meter = meter(&provider, MetricAttributes::new());
    let built = unix_now();
    otlp_workload::run(&meter);
    let first = gauges(&collect(&meter, &exporter), START_TIME);
    assert_eq!(first.len(), 1, "{first:?}");
    let (attributes, started) = &first[0];
    assert!(attributes.is_empty(), "the process is the resource's: {attributes:?}");
    assert!(before <= *started && *started <= built, "{started} not in {before}..{built}");
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(gauges(&collect(&meter, &exporter), START_TIME), first);
}

#[test]
fn a_usage_field_capture_does_not_read_is_exported_as_a_correction() {
    // The main test's workload declares none, so its `unread_usage_declaration` series reads 0 whatever feeds it.
    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let meter = TokenMeter::builder().with_meter_provider(provider.clone()).build();
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..3 {
            let _call = info_span!(
                "chat",
                gen_ai.request.model = "claude-haiku-4-5",
                input_tokens = 10u64,
                gen_ai.usage.audio_input_tokens = 4u64
            )
            .entered();
        }
    });
    assert_eq!(meter.capture_stats().unread_usage_declarations, 3);
    let rm = collect(&meter, &exporter);
    let corrections = sums(&rm, CAPTURE_CORRECTIONS);
    let got = corrections.iter().find(|(a, _)| a[ATTR_CORRECTION] == "unread_usage_declaration").map(|(_, n)| *n);
    assert_eq!(got, Some(3.0), "{corrections:?}");
    assert_eq!(total(&sums(&rm, CALLS)), 3.0, "the calls themselves are counted");
}

#[test]
fn a_request_the_budget_refused_is_exported_as_an_unsent_call() {
    // The main test's workload refuses nothing, so its `unsent_call` series reads 0 whatever feeds it.
    use tokenmeter::budget::{Budget, BudgetAction, BudgetLimit, RequestScope};
    use tracing::Instrument;
    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let meter = TokenMeter::builder()
        .with_meter_provider(provider.clone())
        .with_budget(Budget::new("hard", BudgetLimit::usd(1.0).unwrap()).with_action(BudgetAction::Block))
        .build();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        // $1.50 of Haiku input: over the $1 budget.
        let _spent =
            info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 1_500_000u64).entered();
        drop(_spent);
        for _ in 0..2 {
            let call =
                info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = tracing::field::Empty);
            let request = async {
                tracing::Span::current().record("input_tokens", 10u64);
            }
            .instrument(call);
            let refused = runtime.block_on(meter.guard(&RequestScope::new(), request));
            assert_eq!(refused.unwrap_err().budget(), "hard");
        }
    });
    assert_eq!(meter.capture_stats().unsent_calls, 2);
    let rm = collect(&meter, &exporter);
    let corrections = sums(&rm, CAPTURE_CORRECTIONS);
    let got = corrections.iter().find(|(a, _)| a[ATTR_CORRECTION] == "unsent_call").map(|(_, n)| *n);
    assert_eq!(got, Some(2.0), "{corrections:?}");
    assert_eq!(total(&sums(&rm, CALLS)), 1.0, "only the call that was sent");
}

#[test]
fn a_journal_build_ran_without_is_exported_as_records_lost() {
    // A journal directory that cannot be used: `build` said so on stderr and ran without it, and nothing exported
    // showed it (no `tokenmeter.journal.dropped` series at all), so a fleet's alerts could not tell it from a
    // healthy journal. Every record captured since counts as `journal_disabled`.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, "").unwrap();
    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let meter = TokenMeter::builder()
        .with_meter_provider(provider.clone())
        .with_journal(tokenmeter::JournalConfig::new(&file))
        .build();
    assert!(meter.journal_stats().is_none(), "running without its journal");
    otlp_workload::run(&meter);
    let rm = collect(&meter, &exporter);
    let dropped = sums(&rm, JOURNAL_DROPPED);
    let c = meter.capture_stats();
    assert!(c.calls > 0 && c.tasks > 0 && c.tool_calls > 0, "{c:?}");
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(total_where(&dropped, ATTR_REASON, "journal_disabled"), (c.calls + c.tasks + c.tool_calls) as f64);

    // A meter without a journal configured has no such series.
    let (provider, exporter) = pipeline(Temporality::Cumulative);
    let meter = TokenMeter::builder().with_meter_provider(provider.clone()).build();
    otlp_workload::run(&meter);
    assert!(find(&collect(&meter, &exporter), JOURNAL_DROPPED).is_none());
}
