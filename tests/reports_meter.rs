//! The reports through the meter handle: calls captured from spans reach the ledger, from several threads,
//! and every report serializes with the field names the issue lists (snake_case JSON).

use crate::common;

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use common::Harness;
use serde_json::Value;
use tokenmeter::ledger::{Dimension, Query, Window};
use tokenmeter::{ManualClock, TokenMeter};
use tracing::field::Empty;
use tracing_subscriber::prelude::*;

fn meter() -> (TokenMeter, ManualClock) {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap());
    let meter = TokenMeter::builder().with_clock(clock.clone()).with_time_zone(chrono_tz::Europe::Paris).build();
    (meter, clock)
}

/// Three turns of a session on Sonnet (the second and third re-send the growing prompt uncached), then one
/// small Opus call.
fn workload(clock: &ManualClock) {
    let _s = tracing::info_span!("conversation", session.id = "s-1", project = "helpdesk", gen_ai.agent.name = "bot")
        .entered();
    for (turn, input) in [4_000u64, 6_000, 8_000].into_iter().enumerate() {
        let call = tracing::info_span!(
            "chat claude-sonnet-4-5",
            gen_ai.provider.name = "anthropic",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.response.id = Empty,
            input_tokens = Empty,
            output_tokens = Empty,
            operation = "answer",
        );
        call.record("gen_ai.response.id", format!("msg_{turn}").as_str());
        call.record("input_tokens", input);
        call.record("output_tokens", 300u64);
        drop(call);
        clock.advance(Duration::seconds(30));
    }
    let call = tracing::info_span!(
        "chat claude-opus-4-5",
        gen_ai.request.model = "claude-opus-4-5",
        input_tokens = 500u64,
        output_tokens = 50u64,
        operation = "classify",
    );
    drop(call);
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

#[track_caller]
fn has(v: &Value, fields: &[&str]) {
    let k = keys(v);
    for f in fields {
        assert!(k.iter().any(|x| x == f), "missing `{f}` in {k:?}");
    }
}

#[test]
fn captured_calls_reach_the_reports() {
    let (meter, clock) = meter();
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || workload(&clock));
    clock.advance(Duration::minutes(10));

    let total = meter.total_usage();
    let summary = meter.usage_summary(Window::Last24Hours).unwrap();
    assert_eq!(summary.calls, total.calls);
    assert_eq!(summary.cost_picos, total.cost);
    assert_eq!(summary.time_zone, "Europe/Paris");

    let eff = meter.efficiency_report(Window::Last24Hours, Dimension::Session).unwrap();
    // Turns 2 and 3 re-sent 4,000 and 6,000 tokens of the previous prompt uncached.
    assert_eq!(eff.efficiency_scores.context_reuse_rate, 0.0);
    let kinds: Vec<_> = eff.optimization_suggestions.iter().map(|s| s.kind).collect();
    use tokenmeter::analysis::SuggestionType::*;
    assert!(kinds.contains(&PromptCaching) && kinds.contains(&ModelRightSizing), "{kinds:?}");
    assert_eq!(eff.breakdowns[0].category, "s-1");

    let by_op = meter
        .query(&Query::new(Window::Last24Hours).group_by(tokenmeter::GroupBy::Dimension(Dimension::Operation)))
        .unwrap();
    let ops: Vec<&str> = by_op.groups.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(ops, ["answer", "classify"]);
}

#[test]
fn efficiency_rows_by_session_or_user_include_the_calls_without_one() {
    let (meter, clock) = meter();
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        {
            let _s = tracing::info_span!("conversation", session.id = "s-1", user.id = "u-1").entered();
            let _c = tracing::info_span!(
                "chat",
                model = "claude-haiku-4-5",
                input_tokens = 1_000u64,
                output_tokens = 100u64
            )
            .entered();
        }
        // A background call in no session: a small call on Opus ($0.005 + $0.0025).
        let _c =
            tracing::info_span!("chat", model = "claude-opus-4-5", input_tokens = 1_000u64, output_tokens = 100u64)
                .entered();
    });
    clock.advance(Duration::minutes(1));
    for dim in [Dimension::Session, Dimension::User] {
        let eff = meter.efficiency_report(Window::LastHour, dim).unwrap();
        assert_eq!(eff.calls, 2);
        let rows: Vec<(&str, u64, f64)> =
            eff.breakdowns.iter().map(|b| (b.category.as_str(), b.calls, b.efficiency_score)).collect();
        let named = if dim == Dimension::Session { "s-1" } else { "u-1" };
        // The (none) row is all small premium spend: right_sizing 0, so 100 - 20.
        assert_eq!(rows, [("(none)", 1, 80.0), (named, 1, 100.0)], "{dim}");
        assert_eq!(eff.breakdowns[0].cost_usd, 0.0075);
    }
}

#[test]
fn reports_serialize_with_the_issue_field_names() {
    let (meter, clock) = meter();
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || workload(&clock));
    clock.advance(Duration::minutes(10));
    let w = Window::Last24Hours;

    let s = serde_json::to_value(meter.usage_summary(w).unwrap()).unwrap();
    has(
        &s,
        &[
            "calls",
            "tokens",
            "cost_usd",
            "averages",
            "period_start",
            "period_end",
            "days",
            "by_model",
            "by_provider",
            "time_series",
            "unpriced",
            "monthly_projection_usd",
            "distributions",
        ],
    );
    has(&s["by_model"][0], &["name", "cost_share", "token_share"]);
    has(&s["distributions"]["input_tokens"], &["p50", "p90", "p95", "p99"]);

    let e = serde_json::to_value(meter.efficiency_report(w, Dimension::Project).unwrap()).unwrap();
    has(&e, &["efficiency_scores", "breakdowns", "optimization_suggestions"]);
    has(
        &e["efficiency_scores"],
        &["overall", "tokens_per_task", "cache_hit_rate", "input_output_ratio", "context_reuse_rate", "band"],
    );
    has(
        &e["breakdowns"][0],
        &[
            "category",
            "input_tokens",
            "output_tokens",
            "cache_creation_tokens",
            "cache_read_tokens",
            "total_tokens",
            "efficiency_score",
        ],
    );
    has(&e["optimization_suggestions"][0], &["type", "potential_savings", "description", "impact"]);
    assert!(e["optimization_suggestions"][0]["type"].is_string());

    let c = serde_json::to_value(meter.cache_report(w).unwrap()).unwrap();
    has(&c["cache_metrics"], &["total_cache_hits", "total_cache_misses", "hit_rate", "tokens_saved", "cost_saved"]);
    has(&c["time_series"][0], &["timestamp", "hit_rate", "tokens_saved"]);
    has(&c, &["unread_cache_writes"]);

    let t = serde_json::to_value(meter.breakdown_tree(w, Dimension::Agent, Dimension::Operation).unwrap()).unwrap();
    has(&t["nodes"][0], &["name", "cost_share", "token_share", "children"]);

    let d = serde_json::to_value(meter.time_of_day(w).unwrap()).unwrap();
    has(&d, &["hours", "peak_hour", "low_hour"]);
    has(&d["hours"][0], &["hour", "tokens", "share", "avg_tokens_per_task"]);

    let a = serde_json::to_value(meter.anomalies(Window::Last7Days).unwrap()).unwrap();
    has(&a, &["anomalies", "rule"]);

    // No full day and under an hour of today: nothing to forecast from (an empty fit read as $0 a day, certain).
    let early = serde_json::to_value(meter.forecast(7, Some(50.0)).unwrap()).unwrap();
    assert_eq!((early["basis"].as_str(), early["days"].as_array().map(Vec::len)), (Some("insufficient"), Some(0)));
    assert_eq!(early["projected_month_total_usd"], early["month_to_date_usd"]);
    clock.advance(Duration::hours(1));
    let f = serde_json::to_value(meter.forecast(7, Some(50.0)).unwrap()).unwrap();
    assert_eq!(f["basis"], "run_rate");
    has(&f, &["days", "basis", "trend", "projected_month_total_usd", "limit"]);
    has(&f["days"][0], &["date", "cost_usd", "lower_usd", "upper_usd"]);

    let p = serde_json::to_value(meter.compare_periods(w).unwrap()).unwrap();
    has(&p, &["a", "b", "deltas"]);
    has(&p["a"], &["cost_per_task_usd", "tokens_per_task", "cache_hit_rate"]);
    let v = serde_json::to_value(meter.compare_values(w, Dimension::Operation, "answer", "classify").unwrap()).unwrap();
    has(&v["deltas"], &["cost_pct", "tokens_per_task_pct", "cost_per_task_pct", "cache_hit_rate_pct"]);
}

#[test]
fn recording_threads_feed_one_ledger() {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap());
    let meter = TokenMeter::builder().with_clock(clock.clone()).build();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(meter.layer()));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let dispatch = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for i in 0..2_000u64 {
                        let _s =
                            tracing::info_span!("conversation", session.id = %format!("t{t}-s{}", i % 50)).entered();
                        let _c = tracing::info_span!(
                            "chat",
                            gen_ai.request.model = "claude-haiku-4-5",
                            input_tokens = 100u64 + i,
                            output_tokens = 10u64,
                        )
                        .entered();
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let total = meter.total_usage();
    let s = meter.usage_summary(Window::LastHour).unwrap();
    assert_eq!(s.calls, 8_000);
    assert_eq!(s.cost_picos, total.cost);
    assert_eq!(s.tokens.input, total.tokens.input);
    let by_session = meter
        .query(&Query::new(Window::LastHour).group_by(tokenmeter::GroupBy::Dimension(Dimension::Session)))
        .unwrap();
    assert_eq!(by_session.groups.iter().map(|g| g.calls).sum::<u64>(), 8_000);
    let _ = Arc::new(());
}

#[test]
fn a_meter_made_today_with_no_call_yet_has_nothing_to_forecast_from() {
    // Made at 18:00, asked at 18:10 with no call: the hours since midnight counted as seen, and the forecast
    // read $0 a day, certain. Ten minutes are not an hour of today; an hour on, $0 a day is what was seen.
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 14, 18, 0, 0).unwrap());
    let meter = TokenMeter::builder().with_clock(clock.clone()).build();
    clock.advance(Duration::minutes(10));
    assert_eq!(serde_json::to_value(meter.forecast(7, None).unwrap()).unwrap()["basis"], "insufficient");
    clock.advance(Duration::hours(1));
    assert_eq!(serde_json::to_value(meter.forecast(7, None).unwrap()).unwrap()["basis"], "run_rate");
}

#[test]
fn the_builders_time_zone_holds_whatever_the_order_of_a_ledger_config() {
    // A config set for its thresholds alone, after `with_time_zone`, put the reports back in UTC.
    let paris = chrono_tz::Europe::Paris;
    let config = || tokenmeter::LedgerConfig::default().with_small_call_limits(500, 200);
    for builder in [
        TokenMeter::builder().with_time_zone(paris).with_ledger_config(config()),
        TokenMeter::builder().with_ledger_config(config()).with_time_zone(paris),
    ] {
        assert_eq!(builder.build().ledger().time_zone(), paris);
    }
    // A config's own zone applies when the builder sets none.
    let meter = TokenMeter::builder().with_ledger_config(config().with_time_zone(paris)).build();
    assert_eq!(meter.ledger().time_zone(), paris);
}

#[test]
fn model_usage_reads_back_from_its_json() {
    // Its totals are flattened into it, and serde reads a flattened field through a buffer without 128-bit
    // integers: every `ModelUsage` failed to read back ("u128 is not supported"), a $0 one too.
    let h = Harness::new();
    h.run(|| {
        drop(tracing::info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1_000u64));
        // Past 64 bits of pico-USD ($18.4M): 10^12 output tokens of Opus 4.1 at $75 a million.
        drop(tracing::info_span!("chat", model = "claude-opus-4-1", output_tokens = 1_000_000_000_000u64));
    });
    let usage = h.meter.model_usage();
    assert_eq!(usage.len(), 2);
    let json = serde_json::to_string(&usage).unwrap();
    let back: Vec<tokenmeter::ModelUsage> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, usage);
    assert!(usage.iter().any(|u| u.totals.cost.to_string() == "$75000000.00"), "{usage:?}");
}

#[test]
fn a_model_filter_takes_any_id_of_the_model() {
    // The ledger files calls under the price book's id: a dated, Bedrock or Vertex id matched nothing.
    let (meter, clock) = meter();
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        workload(&clock);
        // A failed call without usage, on a dated id: no cost, filed under the book's id all the same.
        drop(tracing::info_span!(
            "chat",
            gen_ai.request.model = "claude-sonnet-4-5-20250929",
            error.type = "overloaded_error",
            input_tokens = Empty,
        ));
        // A model the book does not know.
        drop(tracing::info_span!("chat", gen_ai.request.model = "gpt-4o-2024-08-06", input_tokens = 10u64));
    });
    let calls = |id: &str| {
        meter.query(&Query::new(Window::Last24Hours).filter(Dimension::Model, id)).map(|r| r.totals.calls).unwrap()
    };
    for id in ["claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"] {
        assert_eq!(calls(id), 4, "{id}");
    }
    // An id the price book does not know is matched as given.
    assert_eq!((calls("gpt-4o-2024-08-06"), calls("gpt-4o")), (1, 0));
    // The comparison and the filtered reports take it too.
    let c =
        meter.compare_values(Window::Last24Hours, Dimension::Model, "claude-sonnet-4-5-20250929", "claude-opus-4-5");
    let c = c.unwrap();
    assert_eq!((c.a.calls, c.b.calls), (4, 1));
    let f = tokenmeter::analysis::ReportFilter::new().filter(Dimension::Model, "claude-sonnet-4-5@20250929");
    let r = meter.efficiency_report_for(Window::Last24Hours, Dimension::Project, &f).unwrap();
    assert_eq!(r.calls, 4);
}
