//! Every report's numbers against hand-computed values on one constructed workload.
//!
//! Rates (pico-USD per token, from the built-in price book): claude-sonnet-4-5 input 3,000,000, output
//! 15,000,000, 5-minute write 3,750,000, read 300,000, long-context input 6,000,000 and output 22,500,000;
//! claude-opus-4-5 input 5,000,000, output 25,000,000; claude-haiku-4-5 input 1,000,000, output 5,000,000.

use crate::ledger_common;

use std::collections::BTreeSet;

use chrono::{Duration, TimeZone};
use ledger_common::*;
use tokenmeter::analysis::{Band, Granularity, Impact, SuggestionType, Trend};
use tokenmeter::ledger::{Dimension, GroupBy, LedgerConfig, Query, TimeGrain, Window};
use tokenmeter::{Money, PriceBook};

const SONNET: &str = "claude-sonnet-4-5";
const OPUS: &str = "claude-opus-4-5";
const G: u128 = 1_000_000_000; // picos in a milli-cent… 1e9 picos = $0.001

fn picos(m: f64) -> u128 {
    (m * 1e12).round() as u128
}

/// The workload, all on 2026-03-14 between 12:00 and 12:10 UTC; the clock reads 12:30.
fn workload() -> Rig {
    let rig = Rig::new(t0() + mins(30));
    let t = |m: i64| t0() + mins(m);
    // Session A: a growing prompt sent uncached (call 2 repeats call 1's 10,000-token prompt).
    rig.add(Call::new(t(0), SONNET).io(10_000, 500).session("A").project("p1").agent("a1").op("chat").user("u1"));
    rig.add(Call::new(t(1), SONNET).io(12_000, 500).session("A").project("p1").agent("a1").op("chat").user("u1"));
    // Session B: cached properly; call 4 reads call 3's write, and its own 200-token write is never read.
    rig.add(
        Call::new(t(2), SONNET)
            .io(100, 200)
            .cache(0, 8_000)
            .session("B")
            .project("p1")
            .agent("a2")
            .op("chat")
            .user("u2"),
    );
    rig.add(
        Call::new(t(3), SONNET)
            .io(100, 200)
            .cache(8_000, 200)
            .session("B")
            .project("p1")
            .agent("a2")
            .op("chat")
            .user("u2"),
    );
    // A small call on a premium model.
    rig.add(Call::new(t(4), OPUS).io(1_000, 100).agent("a1").op("classify").project("p2"));
    // A non-interactive call at standard rates.
    rig.add(Call::new(t(5), SONNET).io(20_000, 1_000).agent("a2").op("background").project("p2"));
    // A failed call.
    rig.add(Call::new(t(6), SONNET).io(5_000, 0).agent("a1").op("chat").project("p1").failed());
    // A prompt just over the 200k line.
    rig.add(Call::new(t(7), SONNET).io(205_000, 1_000).agent("a3").project("p2"));
    // An unknown model, and a call without usage.
    rig.add(Call::new(t(8), "mystery-model").io(100, 10).agent("a3"));
    rig.add(Call::new(t(9), SONNET).unmetered().failed().agent("a1").op("chat"));
    // Two tasks: one ok, one failed.
    rig.ledger.ingest_task(&task(t(4), "triage", 1_100, Money::from_picos(75 * G / 10), false));
    rig.ledger.ingest_task(&task(t(6), "fix", 5_000, Money::from_picos(15 * G), true));
    rig.ledger.ingest_tool(&tool(t(5), "grep", false));
    rig.ledger.ingest_tool(&tool(t(5), "grep", true));
    rig
}

// Per-call costs in picos.
const C1: u128 = 10_000 * 3_000_000 + 500 * 15_000_000; // 37.5e9
const C2: u128 = 12_000 * 3_000_000 + 500 * 15_000_000; // 43.5e9
const C3: u128 = 100 * 3_000_000 + 8_000 * 3_750_000 + 200 * 15_000_000; // 33.3e9
const C4: u128 = 100 * 3_000_000 + 8_000 * 300_000 + 200 * 3_750_000 + 200 * 15_000_000; // 6.45e9
const C5: u128 = 1_000 * 5_000_000 + 100 * 25_000_000; // 7.5e9
const C6: u128 = 20_000 * 3_000_000 + 1_000 * 15_000_000; // 75e9
const C7: u128 = 5_000 * 3_000_000; // 15e9
const C8: u128 = 205_000 * 6_000_000 + 1_000 * 22_500_000; // 1252.5e9
const TOTAL: u128 = C1 + C2 + C3 + C4 + C5 + C6 + C7 + C8;

#[test]
fn usage_summary_numbers() {
    let rig = workload();
    let s = rig.ledger.usage_summary(Window::Last24Hours).unwrap();
    assert_eq!(TOTAL, 1_470_750_000_000);
    assert_eq!(s.cost_picos, Money::from_picos(TOTAL));
    close(s.cost_usd, 1.47075);
    assert_eq!(s.calls, 10);
    assert_eq!(s.metered_calls, 9);
    assert_eq!(s.unmetered_calls, 1);
    assert_eq!(s.failed_calls, 2);
    assert_eq!(s.tasks, 2);
    assert_eq!(s.unpriced.calls, 1);
    assert_eq!(s.unpriced.tokens, 110);
    assert_eq!(s.unpriced.models, vec!["mystery-model".to_owned()]);
    let input = 10_000 + 12_000 + 100 + 100 + 1_000 + 20_000 + 5_000 + 205_000 + 100;
    let output = 500 + 500 + 200 + 200 + 100 + 1_000 + 1_000 + 10;
    assert_eq!(s.tokens.input, input);
    assert_eq!(s.tokens.output, output);
    assert_eq!(s.tokens.cache_read, 8_000);
    assert_eq!(s.tokens.cache_creation, 8_200);
    assert_eq!(s.tokens.total, input + output + 8_000 + 8_200);
    close(s.cache_savings_usd, 8_000.0 * 2_700_000.0 / 1e12);
    close(s.averages.tokens_per_call.unwrap(), s.tokens.total as f64 / 9.0);
    close(s.averages.cost_per_call_usd.unwrap(), 1.47075 / 8.0);
    close(s.averages.tokens_per_task.unwrap(), 6_100.0 / 2.0);
    close(s.averages.cost_per_task_usd.unwrap(), 0.0225 / 2.0);
    // By model: sonnet first, opus, then the unpriced model at $0.
    let names: Vec<&str> = s.by_model.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, [SONNET, OPUS, "mystery-model"]);
    assert_eq!(s.by_model[0].calls, 8);
    close(s.by_model[1].cost_share, C5 as f64 / TOTAL as f64);
    assert_eq!(s.by_provider.len(), 1);
    close(s.by_provider[0].cost_share, 1.0);
    // 24 hourly points, all the spend in the 12:00 hour.
    assert_eq!(s.time_series.points.len(), 24);
    let last = s.time_series.points.last().unwrap();
    assert_eq!(last.timestamp, t0());
    assert_eq!(last.calls, 10);
    close(s.time_series.points.iter().map(|p| p.cost_usd).sum(), 1.47075);
    // Monthly run-rate: the window's daily rate times March's 31 days, over its part from where the data begins
    // (the local midnight of the first record's day: today's, as the ledger holds nothing older) to the end of
    // the current minute: 00:00 to 12:31, 751 minutes. Over the whole 24 hours it read half as much.
    close(s.run_rate_days, 751.0 / 1_440.0);
    close(s.monthly_projection_usd, 1.47075 / (751.0 / 1_440.0) * 31.0);
    // A window reaching past now (the rest of the day) is a rate over its elapsed part, up to the end of the
    // current minute: 12:00 to 12:31, not diluted by the 11.5 hours to come.
    let ahead = Window::range(t0(), t0() + Duration::hours(12));
    let s = rig.ledger.usage_summary(ahead).unwrap();
    assert_eq!(s.days, 0.5);
    close(s.monthly_projection_usd, 1.47075 / (31.0 / 1440.0) * 31.0);
    let d = s.distributions.unwrap();
    assert_eq!(d.input_tokens.as_ref().unwrap().count, 9);
    assert_eq!(d.duration_ms.as_ref().unwrap().count, 10);
    // Two significant digits: the largest output (1,000) reads back within 1%.
    assert!((1_000..=1_010).contains(&d.output_tokens.as_ref().unwrap().max));
}

#[test]
fn efficiency_scores_and_suggestions() {
    let rig = workload();
    let r = rig.ledger.efficiency_report(Window::Last24Hours, Dimension::Agent).unwrap();
    let e = &r.efficiency_scores;
    // Context reuse: call 2 could reuse 10,000 (read 0), call 4 could reuse 8,100 (read 8,000).
    close(e.context_reuse_rate, 8_000.0 / 18_100.0);
    close(e.cache_hit_rate, 8_000.0 / 269_500.0);
    close(e.input_output_ratio.unwrap(), 269_500.0 / 3_510.0);
    close(e.tokens_per_task.unwrap(), 3_050.0);
    let reuse = 8_000.0 / 18_100.0;
    let waste = 1.0 - C7 as f64 / TOTAL as f64; // failed calls 15e9 = failed task 15e9
    let right = 1.0 - C5 as f64 / TOTAL as f64;
    let write_use = 1.0 - 200.0 / 8_200.0;
    let overall = 40.0 * reuse + 25.0 * waste + 20.0 * right + 15.0 * write_use;
    close(e.overall, (overall * 10.0).round() / 10.0);
    assert_eq!(e.overall, 77.0);
    assert_eq!(e.band, Band::Amber);

    let s: Vec<(SuggestionType, u128, Impact)> =
        r.optimization_suggestions.iter().map(|s| (s.kind, s.potential_savings_picos.picos(), s.impact)).collect();
    assert_eq!(
        s,
        vec![
            // All of the long-context call's tokens at standard rates: 615e9 + 15e9.
            (SuggestionType::LongContextThreshold, C8 - 630 * G, Impact::High),
            // Batch halves: 75e9 / 2.
            (SuggestionType::BatchApi, C6 / 2, Impact::Medium),
            // 10,000 tokens read instead of input (2.7e6 each) less writing the 12,000-token prefix (0.75e6).
            (SuggestionType::PromptCaching, 10_000 * 2_700_000 - 12_000 * 750_000, Impact::Low),
            (SuggestionType::FailedCalls, C7, Impact::Low),
            // On claude-haiku-4-5: 1,000 × 1e6 + 100 × 5e6.
            (SuggestionType::ModelRightSizing, C5 - 1_500_000_000, Impact::Low),
            // Call 4's 200-token write, at the write premium of 0.75e6 each.
            (SuggestionType::UnreadCacheWrites, 200 * 750_000, Impact::Low),
        ]
    );
    let first = &r.optimization_suggestions[0];
    close(first.potential_savings, 0.6225);
    assert!(first.description.contains("long-context"), "{}", first.description);
    // One call: "was … bills it", not "were … bills them".
    let batch = &r.optimization_suggestions[1];
    assert!(
        batch.description.starts_with("1 non-interactive call was billed at standard rates ($0.0750, after")
            && batch.description.contains("bills it at half price ($0.0375)"),
        "{}",
        batch.description
    );

    // Per-agent breakdowns: a3 (the long-context call) first.
    let cats: Vec<&str> = r.breakdowns.iter().map(|b| b.category.as_str()).collect();
    assert_eq!(cats, ["a3", "a2", "a1"]);
    let a2 = &r.breakdowns[1];
    assert_eq!(a2.input_tokens, 20_200);
    assert_eq!(a2.cache_creation_tokens, 8_200);
    assert_eq!(a2.cache_read_tokens, 8_000);
    assert_eq!(a2.output_tokens, 1_400);
    assert_eq!(a2.total_tokens, 20_200 + 8_200 + 8_000 + 1_400);
    // a2: reuse 8,000/8,100; no failures; no premium calls; 200 of 8,200 written never read.
    let a2_score: f64 = 40.0 * (8_000.0 / 8_100.0) + 25.0 + 20.0 + 15.0 * (1.0 - 200.0 / 8_200.0);
    close(a2.efficiency_score, (a2_score * 10.0).round() / 10.0);
    assert_eq!(a2.band, Band::Green);
    // The mystery-model call is a3's: its cost is not in a3's cost_usd, and both the row and the report say so.
    assert_eq!(r.unpriced_calls, 1);
    let unpriced: Vec<(&str, u64)> = r.breakdowns.iter().map(|b| (b.category.as_str(), b.unpriced_calls)).collect();
    assert_eq!(unpriced, [("a3", 1), ("a2", 0), ("a1", 0)]);
    close(r.breakdowns[0].cost_usd, C8 as f64 / 1e12);
}

#[test]
fn cache_report_numbers() {
    let rig = workload();
    let r = rig.ledger.cache_report(Window::Last24Hours).unwrap();
    let m = &r.cache_metrics;
    assert_eq!(m.total_cache_hits, 1);
    assert_eq!(m.total_cache_misses, 8);
    close(m.hit_rate, 8_000.0 / 269_500.0);
    close(m.call_hit_rate, 1.0 / 9.0);
    assert_eq!(m.tokens_saved, 8_000);
    close(m.cost_saved, picos_to_usd(8_000 * 2_700_000));
    assert_eq!(r.unread_cache_writes.writes, 1);
    assert_eq!(r.unread_cache_writes.tokens, 200);
    close(r.unread_cache_writes.wasted_usd, picos_to_usd(200 * 750_000));
    let noon = r.time_series.iter().find(|p| p.timestamp == t0()).unwrap();
    assert_eq!(noon.tokens_saved, 8_000);
    close(noon.hit_rate, m.hit_rate);
}

fn picos_to_usd(p: u128) -> f64 {
    Money::from_picos(p).as_usd()
}

#[test]
fn children_of_a_parent_without_cost_share_its_calls() {
    // A parent without a priced cost (an unknown model): its children's shares are of its calls, adding up to
    // 1 (each read 1.0 before).
    let rig = Rig::new(t0());
    for op in ["a", "b", "b", "c"] {
        rig.add(Call::new(t0(), "mystery-model").io(10, 1).op(op));
    }
    let tree = rig.ledger.breakdown_tree(Window::Last24Hours, Dimension::Model, Dimension::Operation).unwrap();
    let shares: Vec<f64> = tree.nodes[0].children.iter().map(|c| c.share_of_parent).collect();
    assert_eq!(shares, [0.5, 0.25, 0.25]);
}

#[test]
fn a_tree_by_model_has_no_task_only_model() {
    // Agent a1's five calls on Sonnet and one task: tasks have no model, so a1 has one child, Sonnet; an
    // `unknown` model with the task and no calls was listed beside it.
    let rig = Rig::new(t0() + mins(30));
    for i in 0..5 {
        rig.add(Call::new(t0() + mins(i), SONNET).io(1_000, 100).agent("a1"));
    }
    let mut t = task(t0() + mins(6), "triage", 5_500, Money::ZERO, false);
    t.dimensions.agent = Some("a1".into());
    rig.ledger.ingest_task(&t);
    let tree = rig.ledger.breakdown_tree(Window::Last24Hours, Dimension::Agent, Dimension::Model).unwrap();
    let a1 = tree.nodes.iter().find(|n| n.name == "a1").unwrap();
    let kids: Vec<(&str, u64)> = a1.children.iter().map(|c| (c.name.as_str(), c.calls)).collect();
    assert_eq!(kids, [(SONNET, 5)]);
    assert_eq!((a1.calls, a1.tasks), (5, 1));
    // Models as parents: no task-only node either.
    let tree = rig.ledger.breakdown_tree(Window::Last24Hours, Dimension::Model, Dimension::Agent).unwrap();
    let names: Vec<&str> = tree.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, [SONNET]);
}

#[test]
fn breakdown_trees() {
    let rig = workload();
    let tree = rig.ledger.breakdown_tree(Window::Last24Hours, Dimension::Agent, Dimension::Operation).unwrap();
    let a1 = tree.nodes.iter().find(|n| n.name == "a1").unwrap();
    let kids: Vec<(&str, u64)> = a1.children.iter().map(|c| (c.name.as_str(), c.calls)).collect();
    assert_eq!(kids, [("chat", 4), ("classify", 1)]);
    close(a1.cost_share, (C1 + C2 + C7 + C5) as f64 / TOTAL as f64);
    close(a1.children[0].share_of_parent, (C1 + C2 + C7) as f64 / (C1 + C2 + C7 + C5) as f64);
    assert_eq!(tree.nodes[0].name, "a3");

    let tree = rig.ledger.breakdown_tree(Window::Last24Hours, Dimension::Project, Dimension::Session).unwrap();
    let p1 = tree.nodes.iter().find(|n| n.name == "p1").unwrap();
    let kids: Vec<&str> = p1.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(kids, ["A", "B", "(none)"]);
    close(p1.children[0].cost_usd, picos_to_usd(C1 + C2));
    // Calls without a session count in their project, as a `(none)` session: p1's failed call 7, p2's calls
    // 5, 6 and 8, and the two calls with neither under project `(none)`. The nodes add up to the window.
    assert_eq!(p1.calls, 5);
    assert_eq!((p1.children[2].calls, p1.children[2].cost_usd), (1, picos_to_usd(C7)));
    let p2 = tree.nodes.iter().find(|n| n.name == "p2").expect("p2, whose calls have no session");
    let kids: Vec<(&str, u64)> = p2.children.iter().map(|c| (c.name.as_str(), c.calls)).collect();
    assert_eq!(kids, [("(none)", 3)]);
    assert_eq!(tree.nodes.iter().map(|n| n.calls).sum::<u64>(), tree.calls);

    let err = rig.ledger.breakdown_tree(Window::Last24Hours, Dimension::User, Dimension::Session).unwrap_err();
    assert!(err.to_string().contains("project > session"), "{err}");
}

#[test]
fn time_of_day_in_zone() {
    let rig =
        Rig::with(t0() + mins(30), tokenmeter::LedgerConfig::default().with_time_zone(chrono_tz::America::New_York));
    // 12:00 UTC is 08:00 in New York (EDT since March 8); 23:30 UTC the day before is 19:30.
    rig.add(Call::new(t0(), SONNET).io(1_000, 0));
    rig.add(Call::new(t0() - mins(750), SONNET).io(3_000, 0));
    rig.ledger.ingest_task(&task(t0(), "t", 500, Money::ZERO, false));
    let r = rig.ledger.time_of_day(Window::Last7Days).unwrap();
    assert_eq!(r.time_zone, "America/New_York");
    assert_eq!(r.hours[8].tokens, 1_000);
    assert_eq!(r.hours[19].tokens, 3_000);
    close(r.hours[19].share, 0.75);
    assert_eq!(r.hours[8].avg_tokens_per_task, Some(500.0));
    assert_eq!(r.peak_hour, Some(19));
    assert_eq!(r.low_hour, Some(0));
}

#[test]
fn cache_and_time_of_day_reports_count_the_unpriced_calls_their_dollars_leave_out() {
    // The workload's "mystery-model" call has no price: its tokens are counted, its cost is not.
    let rig = workload();
    let cache = rig.ledger.cache_report(Window::Last24Hours).unwrap();
    assert_eq!(cache.cache_metrics.unpriced_calls, 1);
    let hours = rig.ledger.time_of_day(Window::Last24Hours).unwrap();
    assert_eq!(hours.unpriced_calls, 1);
    assert_eq!(serde_json::to_value(&hours).unwrap()["unpriced_calls"], 1);
    // Without it, nothing is left out.
    let rig = Rig::new(t0() + mins(30));
    rig.add(Call::new(t0(), SONNET).io(1_000, 100).cache(500, 0));
    assert_eq!(rig.ledger.cache_report(Window::Last24Hours).unwrap().cache_metrics.unpriced_calls, 0);
    assert_eq!(rig.ledger.time_of_day(Window::Last24Hours).unwrap().unpriced_calls, 0);
}

#[test]
fn time_of_day_over_token_counts_past_u64_saturates() {
    // Records ingested by hand are not capped as captured ones are: the hours' sum saturates, not overflows.
    let rig = Rig::new(t0() + mins(90));
    rig.add(Call::new(t0(), SONNET).io(u64::MAX, 0));
    rig.add(Call::new(t0() + mins(60), SONNET).io(1, 0));
    let r = rig.ledger.time_of_day(Window::Last24Hours).unwrap();
    assert_eq!(r.hours.iter().map(|h| h.calls).sum::<u64>(), 2);
    assert_eq!(r.peak_hour, Some(12));
}

#[test]
fn a_window_starting_inside_an_hour_takes_that_hour_whole() {
    // 100 calls at 09:30, read at 10:05:30: the last hour (09:06..10:06) starts inside the 09:00 hour, which
    // the hourly totals hold whole. It was left out: 0 calls, against the summary's 100.
    let rig = Rig::new(at(2026, 3, 14, 10, 5, 30));
    for _ in 0..100 {
        rig.add(Call::new(at(2026, 3, 14, 9, 30, 0), SONNET).io(1_000, 100));
    }
    let r = rig.ledger.time_of_day(Window::LastHour).unwrap();
    assert_eq!(r.hours[9].calls, 100);
    assert_eq!(r.peak_hour, Some(9));
    assert_eq!(r.window.from, at(2026, 3, 14, 9, 0, 0));
    assert_eq!(rig.ledger.usage_summary(Window::LastHour).unwrap().calls, 100);
    // With a week of one call at 09:30 before it, the 09:00 hour is an anomaly of the last hour too.
    for d in 1..=7 {
        rig.add(Call::new(at(2026, 3, 14, 9, 30, 0) - Duration::days(d), SONNET).io(1_000, 100));
    }
    let r = rig.ledger.anomalies(Window::LastHour).unwrap();
    let hours: Vec<_> = r.anomalies.iter().map(|a| (a.granularity, a.start)).collect();
    assert!(hours.contains(&(tokenmeter::analysis::Granularity::Hour, at(2026, 3, 14, 9, 0, 0))), "{hours:?}");
}

#[test]
fn time_of_day_of_a_range_ending_inside_an_hour_takes_the_hour_and_says_so() {
    // At 12:00, the range 09:00-09:30: the hourly totals hold 09:00-10:00 whole, the call at 09:45 with it,
    // so the report's window ends at 10:00 (it said 09:30, with the 09:45 call counted). A rolling window
    // keeps its end at the current minute.
    let rig = Rig::new(at(2026, 3, 14, 12, 0, 0));
    rig.add(Call::new(at(2026, 3, 14, 9, 10, 0), SONNET).io(1_000, 0));
    rig.add(Call::new(at(2026, 3, 14, 9, 45, 0), SONNET).io(2_000, 0));
    let r = rig.ledger.time_of_day(Window::range(at(2026, 3, 14, 9, 0, 0), at(2026, 3, 14, 9, 30, 0))).unwrap();
    assert_eq!((r.window.from, r.window.to), (at(2026, 3, 14, 9, 0, 0), at(2026, 3, 14, 10, 0, 0)));
    assert_eq!((r.hours[9].calls, r.hours[9].tokens), (2, 3_000));
    let r = rig.ledger.time_of_day(Window::Last6Hours).unwrap();
    assert_eq!(r.window.to, at(2026, 3, 14, 12, 1, 0));
}

#[test]
fn time_of_day_of_a_window_older_than_the_hourly_totals_is_empty_at_its_end() {
    let rig = Rig::new(t0());
    rig.add(Call::new(t0() - chrono::Duration::days(55), SONNET).io(1_000, 0));
    let (from, to) = (t0() - chrono::Duration::days(60), t0() - chrono::Duration::days(50));
    let r = rig.ledger.time_of_day(Window::range(from, to)).unwrap();
    assert_eq!((r.window.from, r.window.to), (to, to));
    assert!(r.hours.iter().all(|h| h.calls == 0 && h.tokens == 0));
    assert_eq!((r.peak_hour, r.low_hour), (None, None));
}

#[test]
fn an_unbounded_ledger_keeps_every_session_a_bounded_one_folds_past_its_cap() {
    use tokenmeter::ledger::LedgerConfig;
    for (config, rows, other) in
        [(LedgerConfig::default(), 448, Some(553)), (LedgerConfig::default().with_unbounded_breakdowns(), 1_000, None)]
    {
        let unbounded = other.is_none();
        let rig = Rig::with(t0(), config);
        // Ten days back: every call lands in one day bucket.
        for i in 0..1_000 {
            rig.add(
                Call::new(t0() - chrono::Duration::days(10) + mins(i % 600), SONNET)
                    .io(100, 10)
                    .session(&format!("s{i}")),
            );
        }
        let q = Query::new(Window::Last30Days).group_by(GroupBy::Dimension(Dimension::Session));
        let r = rig.ledger.query(&q).unwrap();
        assert_eq!(r.groups.len(), rows, "unbounded: {unbounded}");
        assert_eq!(r.groups.iter().find(|g| g.key == "(other)").map(|g| g.calls), other);
        assert_eq!(r.groups.iter().map(|g| g.calls).sum::<u64>(), 1_000);
        assert_eq!(rig.ledger.stats().series_limit == usize::MAX, unbounded);
    }
}

#[test]
fn an_all_time_window_lists_the_days_of_its_data() {
    // `0001-01-01..9999-12-31`, a common "all time" range, is ~2.9M days: the summary and the cache report failed
    // ("day rows over this window would be more than 100000"), though their figures need no row per day.
    let rig = Rig::new(at(2026, 3, 8, 12, 0, 0));
    rig.add(Call::new(at(2026, 3, 1, 10, 0, 0), SONNET).io(1_000, 100));
    rig.add(Call::new(at(2026, 3, 5, 10, 0, 0), SONNET).io(1_000, 100).cache(5_000, 0));
    let all = Window::range(
        chrono::Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
        chrono::Utc.with_ymd_and_hms(9999, 12, 31, 0, 0, 0).unwrap(),
    );
    let s = rig.ledger.usage_summary(all).unwrap();
    assert_eq!(s.calls, 2);
    let days: Vec<_> = s.time_series.points.iter().map(|p| (p.timestamp, p.calls)).collect();
    assert_eq!(days.len(), 8, "March 1 to March 8 (today): {days:?}");
    assert_eq!((days[0].0, days[0].1), (at(2026, 3, 1, 0, 0, 0), 1));
    assert_eq!(days[4].1, 1);
    let cache = rig.ledger.cache_report(all).unwrap();
    assert_eq!(cache.cache_metrics.total_cache_hits, 1);
}

#[test]
fn anomalies_name_the_spike() {
    // Seven quiet days of 10 calls, then a day with 40 calls, 30 of them from agent "spiky".
    let start = at(2026, 3, 1, 10, 0, 0);
    let rig = Rig::new(at(2026, 3, 8, 23, 0, 0));
    for day in 0..7 {
        for i in 0..10 {
            rig.add(Call::new(start + chrono::Duration::days(day) + mins(i), SONNET).io(1_000, 100).agent("steady"));
        }
    }
    let spike_day = start + chrono::Duration::days(7);
    for i in 0..10 {
        rig.add(Call::new(spike_day + mins(i), SONNET).io(1_000, 100).agent("steady"));
    }
    for i in 0..30 {
        rig.add(Call::new(spike_day + mins(30 + i), SONNET).io(1_000, 100).agent("spiky"));
    }
    let r = rig.ledger.anomalies(Window::Last7Days).unwrap();
    let day: Vec<_> = r.anomalies.iter().filter(|a| a.granularity == tokenmeter::analysis::Granularity::Day).collect();
    let metrics: Vec<_> = day.iter().map(|a| a.metric).collect();
    use tokenmeter::analysis::AnomalyMetric::*;
    assert_eq!(metrics, [Tokens, Cost, Calls]);
    let calls = day[2];
    assert_eq!(calls.value, 40.0);
    assert_eq!(calls.baseline, 10.0);
    assert_eq!(calls.ratio, 4.0);
    assert_eq!(calls.start, at(2026, 3, 8, 0, 0, 0));
    let spike = calls.spiked_by.as_ref().unwrap();
    assert_eq!((spike.dimension, spike.value.as_str()), (Dimension::Agent, "spiky"));
    assert_eq!((spike.observed, spike.baseline), (30.0, 0.0));
    // The hour of the spike is 4x its hour on the previous days too (10:00), and 10:30 had nothing before.
    assert!(r.anomalies.iter().any(|a| a.granularity == tokenmeter::analysis::Granularity::Hour));
}

/// The report's anomaly of one granularity and metric.
fn anomaly(
    r: &tokenmeter::analysis::AnomalyReport,
    granularity: tokenmeter::analysis::Granularity,
    metric: tokenmeter::analysis::AnomalyMetric,
) -> Option<&tokenmeter::analysis::Anomaly> {
    r.anomalies.iter().find(|a| a.granularity == granularity && a.metric == metric)
}

#[test]
fn an_hours_spike_baseline_covers_only_the_hours_it_reads() {
    // One call an hour from agent "steady" for a week, and one from "other"; then at 01:00 on March 8, ten
    // from "steady". The hour's baseline range starts at 01:00 on March 1, inside a day bucket the breakdown
    // cannot read: the spike's baseline is "steady"'s calls per hour over the hours read, one, not 145 calls
    // over 168 hours.
    let rig = Rig::new(at(2026, 3, 8, 2, 30, 0));
    let mut t = at(2026, 3, 1, 0, 0, 0);
    while t < at(2026, 3, 8, 1, 0, 0) {
        rig.add(Call::new(t + mins(5), SONNET).io(1_000, 100).agent("steady"));
        rig.add(Call::new(t + mins(6), SONNET).io(1_000, 100).agent("other"));
        t += Duration::hours(1);
    }
    for i in 0..10 {
        rig.add(Call::new(at(2026, 3, 8, 1, 10 + i, 0), SONNET).io(1_000, 100).agent("steady"));
    }
    rig.add(Call::new(at(2026, 3, 8, 1, 30, 0), SONNET).io(1_000, 100).agent("other"));
    let r = rig.ledger.anomalies(Window::Last24Hours).unwrap();
    use tokenmeter::analysis::{AnomalyMetric, Granularity};
    let hour = anomaly(&r, Granularity::Hour, AnomalyMetric::Calls).expect("the 01:00 hour is an anomaly");
    assert_eq!(hour.start, at(2026, 3, 8, 1, 0, 0));
    assert_eq!((hour.value, hour.baseline), (11.0, 2.0));
    let spike = hour.spiked_by.as_ref().unwrap();
    assert_eq!((spike.dimension, spike.value.as_str()), (Dimension::Agent, "steady"));
    assert_eq!(spike.observed, 10.0);
    close(spike.baseline, 1.0);
}

#[test]
fn an_anomaly_is_never_blamed_on_the_overflow_row() {
    // One call an hour for a week, then 400 calls from 400 new sessions in one hour: the hour bucket keeps 256
    // sessions, and the other 144 fold into `(other)`, which held the most excess and was named the cause. It
    // gathers unrelated sessions: a real one (each spiked alike) is named instead.
    let rig = Rig::new(at(2026, 3, 8, 5, 0, 0));
    let mut t = at(2026, 3, 1, 0, 0, 0);
    while t < at(2026, 3, 8, 1, 0, 0) {
        rig.add(Call::new(t + mins(5), SONNET).io(1_000, 100).agent("steady").session("regular"));
        t += Duration::hours(1);
    }
    for i in 0..400 {
        let name = format!("burst-{i:03}");
        rig.add(
            Call::new(at(2026, 3, 8, 1, 0, 0) + mins(i / 10), SONNET).io(1_000, 100).agent("steady").session(&name),
        );
    }
    let r = rig.ledger.anomalies(Window::Last24Hours).unwrap();
    use tokenmeter::analysis::{AnomalyMetric, Granularity};
    let hour = anomaly(&r, Granularity::Hour, AnomalyMetric::Calls).expect("the 01:00 hour is an anomaly");
    assert_eq!((hour.start, hour.value), (at(2026, 3, 8, 1, 0, 0), 400.0));
    let spike = hour.spiked_by.as_ref().unwrap();
    assert_eq!(spike.dimension, Dimension::Session, "{spike:?}");
    assert!(spike.value.starts_with("burst-"), "{spike:?}");
}

#[test]
fn a_days_spike_reads_its_baseline_from_the_day_buckets_when_it_starts_in_a_month_bucket() {
    // Agent "support" spends 100k tokens a day from January 1, all in project "helpdesk"; on February 9 a new
    // agent "batch" adds 400k in that project. The clock reads March 10 12:00: February 9's trailing week
    // starts on February 2, in the February month bucket (day buckets begin on February 4). The spike is
    // "batch", read against February 4..8; an empty baseline named the biggest value, the project.
    let rig = Rig::new(at(2026, 3, 10, 12, 0, 0));
    let mut t = at(2026, 1, 1, 12, 0, 0);
    while t < at(2026, 3, 10, 0, 0, 0) {
        rig.add(Call::new(t, SONNET).io(90_000, 10_000).agent("support").project("helpdesk"));
        t += Duration::days(1);
    }
    rig.add(Call::new(at(2026, 2, 9, 13, 0, 0), SONNET).io(360_000, 40_000).agent("batch").project("helpdesk"));
    let r = rig.ledger.anomalies(Window::Last30Days).unwrap();
    use tokenmeter::analysis::{AnomalyMetric, Granularity};
    let day = anomaly(&r, Granularity::Day, AnomalyMetric::Tokens).expect("February 9 is an anomaly");
    assert_eq!((day.start, day.value, day.baseline), (at(2026, 2, 9, 0, 0, 0), 500_000.0, 100_000.0));
    let spike = day.spiked_by.as_ref().unwrap();
    assert_eq!((spike.dimension, spike.value.as_str()), (Dimension::Agent, "batch"));
    assert_eq!((spike.observed, spike.baseline), (400_000.0, 0.0));
}

#[test]
fn a_days_spike_baseline_reads_the_newest_month_bucket_whole() {
    // Agents "support" and "other" spend 100k tokens a day each; on February 5 "support" spends 500k. Clock
    // March 10 12:00: day buckets begin February 4, the February month bucket holds February 1..3. The
    // trailing week (January 29..February 4) is read from February 1: the month bucket and February 4, four
    // days (the month bucket was counted but not read: a baseline of 25k).
    let rig = Rig::new(at(2026, 3, 10, 12, 0, 0));
    let mut t = at(2026, 1, 1, 12, 0, 0);
    while t < at(2026, 3, 10, 0, 0, 0) {
        let support = if t.date_naive() == at(2026, 2, 5, 0, 0, 0).date_naive() { 450_000 } else { 90_000 };
        rig.add(Call::new(t, SONNET).io(support, support / 9).agent("support"));
        rig.add(Call::new(t, SONNET).io(90_000, 10_000).agent("other"));
        t += Duration::days(1);
    }
    let r = rig.ledger.anomalies(Window::range(at(2026, 2, 5, 0, 0, 0), at(2026, 2, 6, 0, 0, 0))).unwrap();
    use tokenmeter::analysis::{AnomalyMetric, Granularity};
    let day = anomaly(&r, Granularity::Day, AnomalyMetric::Tokens).expect("February 5 is an anomaly");
    assert_eq!(day.start, at(2026, 2, 5, 0, 0, 0));
    let spike = day.spiked_by.as_ref().unwrap();
    assert_eq!((spike.dimension, spike.value.as_str()), (Dimension::Agent, "support"));
    assert_eq!((spike.observed, spike.baseline), (500_000.0, 100_000.0));
}

#[test]
fn forecast_trend_month_and_limit() {
    // March 1..10: $1, $2, … $10 a day (haiku-4-5 output at $5 / Mtok: 200,000 tokens = $1). Today is March 11.
    let rig = Rig::new(at(2026, 3, 11, 9, 0, 0));
    for d in 1..=10u32 {
        rig.add(Call::new(at(2026, 3, d, 12, 0, 0), "claude-haiku-4-5").io(0, 200_000 * u64::from(d)));
    }
    let f = rig.ledger.forecast(3, Some(100.0)).unwrap();
    assert_eq!(f.history_days, 10);
    assert_eq!(f.trend, Trend::Rising);
    close(f.slope_usd_per_day, 1.0);
    close(f.daily_average_usd, 5.5);
    let days: Vec<f64> = f.days.iter().map(|d| d.cost_usd).collect();
    for (got, want) in days.iter().zip([12.0, 13.0, 14.0]) {
        close(*got, want);
    }
    // A perfect line has no residual: the band is the point.
    close(f.days[0].upper_usd, 12.0);
    assert_eq!(f.days[0].date, chrono::NaiveDate::from_ymd_opt(2026, 3, 12).unwrap());
    close(f.month_to_date_usd, 55.0);
    // 55 spent + the 15 hours left of today's expected 11 + 12 + 13 + … + 31 for March 12..31 (today's part was
    // the expected day less its spend so far, whatever the hour).
    close(f.projected_month_total_usd, 55.0 + 11.0 * 15.0 / 24.0 + (12..=31).sum::<u32>() as f64);
    let l = f.limit.unwrap();
    assert!(!l.reached);
    // 55 + 6.875 = 61.875, + 12 = 73.875, + 13 = 86.875, + 14 = 100.875 on March 14.
    assert_eq!(l.reached_on, chrono::NaiveDate::from_ymd_opt(2026, 3, 14));
    assert_eq!(l.days_until, Some(3));
    // Tokens follow the spend: 200,000 a dollar.
    let tokens: Vec<u64> = f.days.iter().map(|d| d.tokens).collect();
    assert_eq!(tokens, [2_400_000, 2_600_000, 2_800_000]);
}

#[test]
fn forecast_expects_the_rest_of_today_from_the_hours_left() {
    // Nine days at $1 an hour, then today quiet after 02:00; at 23:00 an hour of today is left: $1 of it, not the
    // $22 the expected $24 less today's $2 left for that hour.
    let rig = Rig::new(at(2026, 3, 1, 0, 0, 0));
    let dollar = |t| {
        rig.clock.set(t);
        rig.add(Call::new(t, "claude-haiku-4-5").io(0, 200_000));
    };
    for d in 1..=9 {
        for h in 0..24 {
            dollar(at(2026, 3, d, h, 0, 0));
        }
    }
    dollar(at(2026, 3, 10, 0, 0, 0));
    dollar(at(2026, 3, 10, 1, 0, 0));
    rig.clock.set(at(2026, 3, 10, 23, 0, 0));
    let f = rig.ledger.forecast(1, None).unwrap();
    assert_eq!(f.basis, tokenmeter::analysis::ForecastBasis::Trend);
    close(f.month_to_date_usd, 218.0);
    // 218 spent, 1 for the hour left, 24 a day for March 11..31.
    close(f.projected_month_total_usd, 218.0 + 1.0 + 21.0 * 24.0);
}

#[test]
fn forecast_expects_a_part_of_todays_own_length_on_a_dst_day() {
    // New York's clocks go back on 2026-11-01: a 25-hour day. Nine days at $24 a day (a dollar an hour); at 00:30 on
    // the 1st, 24.5 of its 25 hours are left: 24 x 24.5 / 25 of the day's expected $24, not 24 x 24.5 / 24.
    let tz = chrono_tz::America::New_York;
    let start = tz.with_ymd_and_hms(2026, 10, 23, 0, 0, 0).unwrap().with_timezone(&chrono::Utc);
    let rig = Rig::with(start, tokenmeter::LedgerConfig::default().with_time_zone(tz));
    let mut t = start;
    let now = tz.with_ymd_and_hms(2026, 11, 1, 0, 30, 0).unwrap().with_timezone(&chrono::Utc);
    while t < tz.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap().with_timezone(&chrono::Utc) {
        rig.clock.set(t);
        rig.add(Call::new(t, "claude-haiku-4-5").io(0, 200_000));
        t += Duration::hours(1);
    }
    rig.clock.set(now);
    let f = rig.ledger.forecast(1, None).unwrap();
    close(f.month_to_date_usd, 0.0);
    close(f.projected_month_total_usd, 24.0 * 24.5 / 25.0 + 29.0 * 24.0);
}

#[test]
fn forecast_counts_the_unpriced_calls_its_dollars_leave_out() {
    // Today is March 11; February 8 is before the 28 days of history, March 1 in the month and the history, and
    // today in both the month and today's part of the projection.
    let rig = Rig::new(at(2026, 3, 11, 9, 0, 0));
    rig.add(Call::new(at(2026, 2, 8, 12, 0, 0), "gpt-4o").io(100, 10));
    rig.add(Call::new(at(2026, 2, 8, 12, 0, 0), "claude-haiku-4-5").io(0, 200_000));
    rig.add(Call::new(at(2026, 2, 20, 12, 0, 0), "gpt-4o").io(100, 10));
    rig.add(Call::new(at(2026, 3, 1, 12, 0, 0), "gpt-4o").io(100, 10));
    rig.add(Call::new(at(2026, 3, 2, 12, 0, 0), "claude-haiku-4-5").io(0, 200_000));
    rig.add(Call::new(at(2026, 3, 11, 8, 0, 0), "gpt-4o").io(100, 10));
    let f = rig.ledger.forecast(3, None).unwrap();
    // February 20, March 1 and today; not February 8, which no figure reads.
    assert_eq!(f.unpriced_calls, 3);
    close(f.month_to_date_usd, 1.0);
    let json = serde_json::to_value(&f).unwrap();
    assert_eq!(json["unpriced_calls"], 3);

    // Only unpriced calls: $0 everywhere, and the count says why.
    let rig = Rig::new(at(2026, 3, 11, 9, 0, 0));
    rig.add(Call::new(at(2026, 3, 10, 12, 0, 0), "gpt-4o").io(100, 10));
    let f = rig.ledger.forecast(3, None).unwrap();
    assert_eq!((f.month_to_date_usd, f.unpriced_calls), (0.0, 1));
}

#[test]
fn a_falling_forecasts_band_is_around_its_line_not_the_zero_it_is_clamped_to() {
    // $19, $18, … $10 a day for 10 days, with noise: the line crosses zero 8 days ahead. The band was drawn
    // around the clamped $0 (an upper end growing while the line fell further below zero).
    let rig = Rig::new(at(2026, 3, 11, 9, 0, 0));
    let noise = [0.3, -0.2, 0.1, -0.3, 0.2, -0.1, 0.3, -0.2, 0.1, -0.2];
    for d in 1..=10u32 {
        let usd = 20.0 - f64::from(d) + noise[(d - 1) as usize];
        rig.add(Call::new(at(2026, 3, d, 12, 0, 0), "claude-haiku-4-5").io(0, (usd * 200_000.0) as u64));
    }
    let f = rig.ledger.forecast(12, None).unwrap();
    assert_eq!(f.trend, Trend::Falling);
    // The least-squares line through the ten days, worked out here (history x = 0..9, tomorrow x = 11).
    let ys: Vec<f64> = (0..10).map(|i| 19.0 - f64::from(i) + noise[i as usize]).collect();
    let ybar = ys.iter().sum::<f64>() / 10.0;
    let slope = (0..10).map(|i| (f64::from(i) - 4.5) * (ys[i as usize] - ybar)).sum::<f64>()
        / (0..10).map(|i| (f64::from(i) - 4.5).powi(2)).sum::<f64>();
    let intercept = ybar - slope * 4.5;
    close(f.slope_usd_per_day, slope);
    let line = |k: usize| intercept + slope * (11 + k) as f64;
    assert!(line(0) > 0.0, "the first day is above zero: {f:#?}");
    let mut widths = Vec::new();
    for (k, d) in f.days.iter().enumerate() {
        let raw = line(k);
        assert!(d.upper_usd >= d.lower_usd && d.lower_usd >= 0.0);
        if raw > 0.0 {
            close(d.cost_usd, raw);
            widths.push(d.upper_usd - raw);
        } else {
            // Past zero the forecast is $0, and the upper end is the line plus its band, clamped: never more
            // than the band width at the last day above zero.
            assert_eq!(d.cost_usd, 0.0);
            let band = widths.last().copied().unwrap_or(f64::MAX) * 1.5;
            assert!(d.upper_usd <= (raw + band).max(0.0) + 1e-9, "day {k}: {d:?} (line {raw})");
        }
    }
    assert!(f.days.last().unwrap().upper_usd < widths[0], "{f:#?}");
}

#[test]
fn forecast_tokens_move_with_the_spend() {
    // $2 a day, flat: a cheap model's token-heavy share falling while an expensive model's rises. Fitted apart,
    // the tokens fell to 0 within days while the spend stayed at $2.
    let rig = Rig::new(at(2026, 3, 11, 9, 0, 0));
    for d in 1..=10u64 {
        rig.add(Call::new(at(2026, 3, d as u32, 12, 0, 0), "claude-haiku-4-5").io(0, 400_000 - 36_000 * d));
        rig.add(Call::new(at(2026, 3, d as u32, 13, 0, 0), "claude-opus-4-1").io(0, 2_400 * d));
    }
    let f = rig.ledger.forecast(30, None).unwrap();
    assert_eq!(f.trend, Trend::Flat);
    assert_eq!(f.days.len(), 30);
    // History: 2,152,000 tokens for $20, 107,600 a dollar.
    for d in &f.days {
        close(d.cost_usd, 2.0);
        assert_eq!(d.tokens, 215_200, "{d:?}");
    }
}

/// A rig whose history is five weeks of `usd(date)` a day (one call at noon), today being `today` at 09:00.
fn daily_spend(today: chrono::NaiveDate, usd: impl Fn(chrono::NaiveDate) -> f64) -> Rig {
    let noon = |d: chrono::NaiveDate| d.and_hms_opt(12, 0, 0).unwrap().and_utc();
    let rig = Rig::new(today.and_hms_opt(9, 0, 0).unwrap().and_utc());
    for back in 1..=35 {
        let d = today - Duration::days(back);
        // haiku-4-5 output at $5 / Mtok: 200,000 tokens = $1.
        rig.add(Call::new(noon(d), "claude-haiku-4-5").io(0, (usd(d) * 200_000.0).round() as u64));
    }
    rig
}

/// Small noise that repeats every 11 days (not a weekly pattern of its own), ±$0.30 at most.
fn wobble(d: chrono::NaiveDate) -> f64 {
    [0.3, -0.2, 0.1, -0.3, 0.2, -0.1, 0.25, -0.15, 0.05, -0.25, 0.1][d.num_days_from_ce() as usize % 11]
}

use chrono::Datelike;

#[test]
fn a_weekday_workloads_forecast_keeps_its_weekends_whatever_the_day() {
    // $10 a weekday and $0.50 a weekend day, with noise (March 2026: about $224.50). A straight line through it
    // read $5.66 to $8.88 for tomorrow, a band about ±$8 wide, a slope from -$0.105 to +$0.103 a day (a Monday's
    // trend "falling") and a month of $155 to $272, by the day of the week it was made. With day-of-week effects:
    // Saturday $0.50, Monday $10, flat, a band of under a dollar, a month of $219 to $224.
    let weekday = |d: chrono::NaiveDate| {
        let base = if d.weekday().num_days_from_monday() >= 5 { 0.5 } else { 10.0 };
        base + wobble(d)
    };
    for today in 9..=15 {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 3, today).unwrap();
        let f = daily_spend(today, weekday).ledger.forecast(14, None).unwrap();
        assert_eq!((f.history_days, f.trend), (28, Trend::Flat), "{today}: {f:#?}");
        assert!(f.slope_usd_per_day.abs() < 0.02, "{today}: {}", f.slope_usd_per_day);
        let e = f.weekday_effects_usd.unwrap_or_else(|| panic!("{today}: no weekly pattern: {f:#?}"));
        let sum = e.mon + e.tue + e.wed + e.thu + e.fri + e.sat + e.sun;
        assert!(sum.abs() < 1e-9, "{e:?}");
        // Weekdays 19/7 above the line ($7.29), weekend days 47.5/7 below it, within the noise.
        for (got, want) in [(e.mon, 9.5 * 2.0 / 7.0), (e.sat, -9.5 * 5.0 / 7.0), (e.sun, -9.5 * 5.0 / 7.0)] {
            assert!((got - want).abs() < 0.3, "{today}: {e:?}");
        }
        for d in &f.days {
            let want = if d.date.weekday().num_days_from_monday() >= 5 { 0.5 } else { 10.0 };
            assert!((d.cost_usd - want).abs() < 0.4, "{today}: {d:?}");
            assert!(d.lower_usd <= d.cost_usd && d.cost_usd <= d.upper_usd, "{d:?}");
            assert!(d.upper_usd - d.lower_usd < 1.5, "{today}: a wide band: {d:?}");
        }
        // The effects agree with the days: Saturday's forecast is the line plus Saturday's effect.
        let sat = f.days.iter().find(|d| d.date.weekday() == chrono::Weekday::Sat).unwrap();
        let line = f.daily_average_usd;
        assert!((sat.cost_usd - (line + e.of(chrono::Weekday::Sat)).max(0.0)).abs() < 0.1, "{sat:?} {line}");
    }
}

#[test]
fn a_weekly_pattern_needs_two_weeks_and_more_than_chance() {
    // Steady $10 a day with noise: no day of the week differs beyond chance, so a plain line.
    let f = daily_spend(chrono::NaiveDate::from_ymd_opt(2026, 3, 11).unwrap(), |d| 10.0 + wobble(d))
        .ledger
        .forecast(7, None)
        .unwrap();
    assert_eq!((f.history_days, f.weekday_effects_usd), (28, None), "{f:#?}");
    assert_eq!(f.trend, Trend::Flat);

    // Weekends a little lower ($8.50 against $10) under noise five times as wide (±$1.50): the six day-of-week
    // effects explain too little for an F test (2.21, where 2.60 is the 5% line and 3.87 the 1% one), while the
    // weekend step alone is plain (t = 3.04, past the 1% line at 2.79): a weekly pattern.
    let f = daily_spend(chrono::NaiveDate::from_ymd_opt(2026, 3, 11).unwrap(), |d| {
        (if d.weekday().num_days_from_monday() >= 5 { 8.5 } else { 10.0 }) + 5.0 * wobble(d)
    })
    .ledger
    .forecast(7, None)
    .unwrap();
    let e = f.weekday_effects_usd.unwrap_or_else(|| panic!("no weekly pattern: {f:#?}"));
    assert!(e.sat < -0.5 && e.sun < -0.5 && e.wed > 0.0, "{e:?}");
    // A Monday at $16 and every other day at $10: no weekend step (t = 1.3), the six effects plain (F = 466).
    let f = daily_spend(chrono::NaiveDate::from_ymd_opt(2026, 3, 11).unwrap(), |d| {
        (if d.weekday() == chrono::Weekday::Mon { 16.0 } else { 10.0 }) + wobble(d)
    })
    .ledger
    .forecast(7, None)
    .unwrap();
    let e = f.weekday_effects_usd.unwrap_or_else(|| panic!("no weekly pattern: {f:#?}"));
    assert!((e.mon - 6.0 * 6.0 / 7.0).abs() < 0.3, "{e:?}");
    let monday = f.days.iter().find(|d| d.date.weekday() == chrono::Weekday::Mon).unwrap();
    assert!((monday.cost_usd - 16.0).abs() < 0.4, "{monday:?}");

    // A weekday workload seen for 13 full days (the ledger's first call 13 days back): a line, too few days to
    // see each weekday twice. From 14 days on, its pattern.
    let pattern = |d: chrono::NaiveDate| if d.weekday().num_days_from_monday() >= 5 { 0.0 } else { 10.0 };
    for (days, weekly) in [(13, false), (14, true)] {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 3, 11).unwrap();
        let rig = Rig::new(today.and_hms_opt(9, 0, 0).unwrap().and_utc());
        for back in 1..=days {
            let d = today - Duration::days(back);
            let usd = pattern(d) + 1.0 + wobble(d);
            rig.add(
                Call::new(d.and_hms_opt(12, 0, 0).unwrap().and_utc(), "claude-haiku-4-5")
                    .io(0, (usd * 200_000.0) as u64),
            );
        }
        let f = rig.ledger.forecast(7, None).unwrap();
        assert_eq!(f.history_days, days as u32);
        assert_eq!(f.weekday_effects_usd.is_some(), weekly, "{days} days: {f:#?}");
    }

    // An exact weekly pattern with no noise at all: its residuals are nothing, the pattern is kept, the band is
    // the point.
    let f =
        daily_spend(chrono::NaiveDate::from_ymd_opt(2026, 3, 11).unwrap(), pattern).ledger.forecast(7, None).unwrap();
    assert!(f.weekday_effects_usd.is_some(), "{f:#?}");
    for d in &f.days {
        close(d.cost_usd, pattern(d.date));
        assert!(d.upper_usd - d.lower_usd < 1e-6, "{d:?}");
    }
}

#[test]
fn compare_periods_and_values() {
    let rig = workload();
    // The window before the last 24 hours: one call of a1 at $0.0375 on 2026-03-13 06:00.
    rig.add(Call::new(t0() - chrono::Duration::hours(30), SONNET).io(10_000, 500).agent("a1"));
    let c = rig.ledger.compare_periods(Window::Last24Hours).unwrap();
    assert_eq!(c.a.calls, 1);
    assert_eq!(c.b.calls, 10);
    // At 12:30 the current window is 13:00 to 12:31 (1,411 minutes), the previous 13:00 to 12:00 the day
    // before; the ledger (made at 12:30, after its records) has seen calls since that one, its first record, so
    // the previous side counts from 06:00 (360 minutes): before it, spend is unknown. Its rates also take 31
    // minutes of its matching hour, 12:00 to 13:00 the day before (no calls), as the current side holds 31 of
    // its own: 391 minutes. The rates compare.
    assert_eq!((c.a.window.from, c.a.window.to), (at(2026, 3, 12, 13, 0, 0), at(2026, 3, 13, 12, 0, 0)));
    assert_eq!((c.b.window.from, c.b.window.to), (at(2026, 3, 13, 13, 0, 0), at(2026, 3, 14, 12, 31, 0)));
    assert_eq!((c.a.compared_seconds, c.b.compared_seconds), (391 * 60, 1_411 * 60));
    close_pct(c.deltas.calls_pct.unwrap(), (10.0 / 1_411.0) / (1.0 / 391.0) * 100.0 - 100.0);
    close_pct(c.deltas.cost_pct.unwrap(), (TOTAL as f64 / 1_411.0) / (C1 as f64 / 391.0) * 100.0 - 100.0);
    assert_eq!(c.deltas.cost_per_task_pct, None);
    // The mystery model's call has no price: counted as a call, not in the cost, not in the cost per call
    // (which divides by the 8 priced calls: 10 less it and the call without usage).
    assert_eq!((c.a.unpriced_calls, c.b.unpriced_calls), (0, 1));
    close(c.b.cost_per_call_usd.unwrap(), picos_to_usd(TOTAL) / 8.0);
    close(c.a.cost_per_call_usd.unwrap(), picos_to_usd(C1));

    let c = rig.ledger.compare_values(Window::Last24Hours, Dimension::Agent, "a1", "a2").unwrap();
    assert_eq!(c.a.calls, 5);
    assert_eq!(c.b.calls, 3);
    close(c.a.cost_usd, picos_to_usd(C1 + C2 + C5 + C7));
    close(c.b.cost_usd, picos_to_usd(C3 + C4 + C6));
    close_pct(c.deltas.cost_pct.unwrap(), ((C3 + C4 + C6) as f64 / (C1 + C2 + C5 + C7) as f64 - 1.0) * 100.0);
    close(c.b.cache_hit_rate.unwrap(), 8_000.0 / (20_200.0 + 16_200.0));

    // A side whose calls all have no price has no cost to compare: not a 100% drop.
    let c = rig.ledger.compare_values(Window::Last24Hours, Dimension::Model, SONNET, "mystery-model").unwrap();
    assert_eq!((c.b.calls, c.b.unpriced_calls, c.b.cost_usd), (1, 1, 0.0));
    assert_eq!(c.deltas.cost_pct, None);
    let c = rig.ledger.compare_values(Window::Last24Hours, Dimension::Model, "mystery-model", SONNET).unwrap();
    assert_eq!(c.deltas.cost_pct, None);
}

/// Tasks have no model or provider: grouped by either, their failed cost fell into the `(none)` row, which
/// also holds calls without a provider, and scored those calls' waste (a task of Anthropic calls failing cost
/// the provider-less row 25 points). Rows by model or provider score their calls alone.
#[test]
fn failed_tasks_do_not_score_the_model_or_provider_rows() {
    let scores = |with_task: bool, by: Dimension| {
        let rig = Rig::new(t0() + mins(30));
        rig.add(Call::new(t0(), SONNET).io(100_000, 1_000));
        let mut bare = Call::new(t0() + mins(1), SONNET).io(50_000, 500);
        bare.0.provider = None;
        rig.add(bare);
        if with_task {
            rig.ledger.ingest_task(&task(t0() + mins(2), "fix", 5_000, Money::from_picos(5_000_000_000_000), true));
        }
        let r = rig.ledger.efficiency_report(Window::LastHour, by).unwrap();
        r.breakdowns.iter().map(|b| (b.category.clone(), b.efficiency_score)).collect::<Vec<_>>()
    };
    // By provider only: a call without a model has no price, so a model's `(none)` row has no cost for a
    // task's failures to be a share of (the rows by model are cleared the same way).
    let without = scores(false, Dimension::Provider);
    // The two calls' rows: Anthropic's, and the provider-less call's.
    let mut rows: Vec<&str> = without.iter().map(|(category, _)| category.as_str()).collect();
    rows.sort_unstable();
    assert_eq!(rows, ["anthropic", "unknown"], "{without:?}");
    assert_eq!(scores(true, Dimension::Provider), without);
    assert!(without.iter().all(|(_, s)| *s > 90.0), "{without:?}");
}

#[test]
fn compare_periods_counts_each_side_from_where_the_data_begins() {
    // $0.0045 an hour from 2026-03-05 00:00 to 03-14 12:30: the last 7 days against the 7 before, of which only
    // the last 2.5 hold data (the ledger began on the 5th). Counted over their whole length, the previous side
    // read as a third of the spend rate (+160%); from where the data begins, both are the same rate.
    let now = at(2026, 3, 14, 12, 30, 0);
    let rig = Rig::new(now);
    let mut t = at(2026, 3, 5, 0, 0, 0);
    while t < now {
        rig.add(Call::new(t, SONNET).io(1_000, 100));
        t += Duration::hours(1);
    }
    let c = rig.ledger.compare_periods(Window::Last7Days).unwrap();
    assert_eq!(c.a.window.from, at(2026, 3, 1, 0, 0, 0));
    assert!(c.deltas.cost_pct.unwrap().abs() < 1.0, "{:?}", c.deltas);
    assert!(c.deltas.calls_pct.unwrap().abs() < 1.0, "{:?}", c.deltas);

    // A live meter made at 06:00, one call an hour from 08:00, compared over 24 hours the next day at 12:30.
    // The previous side (13:00 the day before to 12:00) is counted from 06:00, when the meter began to watch:
    // 4 calls in 6 hours, its two quiet hours zero spend. Not from midnight (12 hours), not from the first
    // call (4 hours). The current side: 13:00 to 12:31, 24 calls. The previous side's rates take 31 minutes'
    // share of its matching hour (12:00 to 13:00, one call) as well.
    let made = at(2026, 3, 13, 6, 0, 0);
    let now = at(2026, 3, 14, 12, 30, 0);
    let rig = Rig::new(made);
    let mut t = at(2026, 3, 13, 8, 0, 0);
    while t < now {
        rig.clock.set(t);
        rig.add(Call::new(t, SONNET).io(1_000, 100));
        t += Duration::hours(1);
    }
    rig.clock.set(now);
    let c = rig.ledger.compare_periods(Window::Last24Hours).unwrap();
    assert_eq!((c.a.calls, c.b.calls), (4, 24));
    let share = 31.0 / 60.0;
    close_pct(c.deltas.calls_pct.unwrap(), (24.0 / 1_411.0) / ((4.0 + share) / 391.0) * 100.0 - 100.0);
}

#[test]
fn compare_periods_matches_the_hours_of_the_day_on_both_sides() {
    // Ten calls every hour and a hundred in the 12:00 hour, the same every day. At 12:59 the current `24h` holds
    // 23 whole hours and 59 minutes of today's 12:00 hour; the previous side ends at 12:00 yesterday (the ledger
    // keeps that day by the hour). Its rates take 59 minutes' share of yesterday's 12:00 hour: without it, the
    // same day read +37% (a statistics review).
    let now = at(2026, 3, 10, 12, 59, 0);
    let rig = Rig::new(now);
    let mut hour = at(2026, 1, 5, 0, 0, 0);
    while hour < now {
        let n = if hour.format("%H").to_string() == "12" { 100 } else { 10 };
        for k in 0..n {
            let t = hour + Duration::seconds(k * 3_600 / n);
            if t < now {
                rig.add(Call::new(t, SONNET).io(1_000, 100));
            }
        }
        hour += Duration::hours(1);
    }
    let c = rig.ledger.compare_periods(Window::Last24Hours).unwrap();
    assert_eq!((c.a.calls, c.b.calls), (230, 23 * 10 + 99));
    assert_eq!((c.a.compared_seconds, c.b.compared_seconds), (23 * 3_600 + 3_600, 24 * 3_600));
    // 230 + 100 in 24 hours against 329: -0.3%, not +37%.
    close_pct(c.deltas.calls_pct.unwrap(), 329.0 / 330.0 * 100.0 - 100.0);
    // So do the windows a day or more long (`6h` compares other hours of the day: the busy hour against quiet ones).
    for w in [Window::Last7Days, Window::Last30Days] {
        let c = rig.ledger.compare_periods(w).unwrap();
        assert!(c.deltas.calls_pct.unwrap().abs() < 1.0, "{w}: {:?}", c.deltas);
    }
}

#[test]
fn the_all_window_starts_at_its_first_records_day_however_old_the_data() {
    let daily = |from: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>| {
        let rig = Rig::new(now);
        let mut t = from;
        while t < now {
            rig.add(Call::new(t, SONNET).io(1_000, 100));
            t += Duration::hours(6);
        }
        rig.ledger.usage_summary(Window::All).unwrap()
    };
    // Fresh data in minute and hour buckets, and the same spend kept in day buckets (over 48 hours old) and in
    // month buckets (over 35 days): the window starts on the first record's day each time, so its length and
    // run-rate do not change as the data ages (they moved to the month's start: 28% low).
    for (from, now) in [
        (at(2026, 3, 10, 18, 0, 0), at(2026, 3, 11, 12, 30, 0)),
        (at(2026, 3, 10, 18, 0, 0), at(2026, 3, 14, 12, 30, 0)),
        (at(2026, 1, 20, 12, 0, 0), at(2026, 3, 11, 12, 30, 0)),
    ] {
        let s = daily(from, now);
        let day = from.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
        assert_eq!(s.period_start, day, "{from}..{now}");
        assert_eq!(s.window.from, day);
        let elapsed = (now + Duration::minutes(1) - day).num_seconds() as f64 / 86_400.0;
        close(s.days, elapsed);
        close(s.monthly_projection_usd, s.cost_usd / elapsed * 31.0);
        // And so does its series (month-old data listed 19 empty days before it), which holds all the spend.
        assert_eq!(s.time_series.points.first().map(|p| p.timestamp), Some(day), "{from}..{now}");
        close(s.time_series.points.iter().map(|p| p.cost_usd).sum(), s.cost_usd);
    }
    // "All time" as a range, on a ledger without records: an empty summary (it said the window was too wide), and
    // so with a filter.
    let rig = Rig::new(at(2026, 3, 11, 12, 30, 0));
    let all_time = Window::range(at(1, 1, 1, 0, 0, 0), at(9999, 12, 31, 0, 0, 0));
    let s = rig.ledger.usage_summary(all_time).unwrap();
    assert_eq!((s.calls, s.time_series.points.len()), (0, 0));
    assert!(rig.ledger.cache_report(all_time).unwrap().time_series.is_empty());
    let acme = tokenmeter::analysis::ReportFilter::new().filter(Dimension::Project, "acme");
    assert!(rig.ledger.cache_report_for(all_time, &acme).unwrap().time_series.is_empty());
    // With records, a filtered cache report over it lists the data's days (it too said the window was too wide).
    rig.add(Call::new(at(2026, 3, 10, 18, 0, 0), SONNET).io(1_000, 100).project("acme"));
    let r = rig.ledger.cache_report_for(all_time, &acme).unwrap();
    assert_eq!(r.time_series.first().map(|p| p.timestamp), Some(at(2026, 3, 10, 0, 0, 0)));
}

#[test]
fn a_ledger_started_mid_day_does_not_read_its_first_day_as_a_drop() {
    // A meter started at 18:00, then one identical call an hour. Its first day holds 6 calls: as history it made
    // the next days a rising trend ($20.09 projected for the month instead of ~$3.35) and flagged the first
    // full day as a 4x anomaly.
    let start = at(2026, 3, 1, 18, 0, 0);
    let now = at(2026, 3, 4, 12, 0, 0);
    let rig = Rig::new(start);
    let mut t = start;
    while t < now {
        rig.clock.set(t);
        rig.add(Call::new(t, SONNET).io(1_000, 100));
        t += chrono::Duration::hours(1);
    }
    rig.clock.set(now);
    let f = rig.ledger.forecast(3, None).unwrap();
    assert_eq!(f.history_days, 2, "March 2 and 3: the 1st was seen from 18:00 only");
    assert_eq!(f.trend, Trend::Flat);
    close(f.slope_usd_per_day, 0.0);
    let per_day = 24.0 * (1_000.0 * 3.0 + 100.0 * 15.0) / 1e6;
    assert_eq!(f.days.len(), 3);
    for d in &f.days {
        close(d.cost_usd, per_day);
    }
    let r = rig.ledger.anomalies(Window::Last7Days).unwrap();
    assert!(r.anomalies.is_empty(), "{:#?}", r.anomalies);

    // Records from before the ledger was made (a journal replayed, the CLI's records) do not say when their
    // history began: a first day whose first call came hours later in the day than the next days' first calls is
    // left out once three whole days follow it. Counted whole from 18:00, it made steady spend a rising trend (a
    // statistics review: the CLI's month at $374.33 for a steady $4.32 a day).
    let replayed = |now: chrono::DateTime<chrono::Utc>| {
        let rig = Rig::new(now);
        let mut t = start;
        while t < now {
            rig.add(Call::new(t, SONNET).io(1_000, 100));
            t += chrono::Duration::hours(1);
        }
        rig
    };
    let rig = replayed(at(2026, 3, 6, 12, 0, 0));
    let f = rig.ledger.forecast(3, None).unwrap();
    assert_eq!(f.history_days, 4, "March 2 to 5: the 1st's calls begin at 18:00, the others' at midnight");
    assert_eq!(f.trend, Trend::Flat);
    close(f.slope_usd_per_day, 0.0);
    let r = rig.ledger.anomalies(Window::Last7Days).unwrap();
    assert!(r.anomalies.is_empty(), "{:#?}", r.anomalies);
    // Fewer whole days after it: a short history keeps what it has.
    assert_eq!(replayed(now).ledger.forecast(3, None).unwrap().history_days, 3);
    // A job that runs at 18:00 every day begins its first day no later than the others: kept.
    let rig = Rig::new(at(2026, 3, 6, 20, 0, 0));
    for d in 1..=6 {
        rig.add(Call::new(at(2026, 3, d, 18, 0, 0), SONNET).io(1_000, 100));
    }
    assert_eq!(rig.ledger.forecast(3, None).unwrap().history_days, 5);
    // So is one at 09:00 in New York across the clocks' change on March 8th, when 09:00 is 8 hours after
    // midnight, not 9 (compared in seconds since midnight, the first day read as an hour late and was left out).
    let tz = chrono_tz::America::New_York;
    let local = |d: u32, h: u32| tz.with_ymd_and_hms(2026, 3, d, h, 0, 0).unwrap().with_timezone(&chrono::Utc);
    let rig = Rig::with(local(11, 12), tokenmeter::LedgerConfig::default().with_time_zone(tz));
    for d in 6..=10 {
        rig.add(Call::new(local(d, 9), SONNET).io(1_000, 100));
    }
    assert_eq!(rig.ledger.forecast(3, None).unwrap().history_days, 5);
}

#[test]
fn the_forecast_band_widens_with_fewer_days_of_history() {
    // Spend alternating $1 and $3 a day: the same spread each time, so the band's multiplier is what changes:
    // Student's t for n - 2 degrees of freedom (2.353 for 5 days, 1.708 for 27), not z (1.645) for both.
    let band = |days: u32| {
        let now = at(2026, 3, 1, 0, 0, 0) + chrono::Duration::days(i64::from(days));
        let rig = Rig::new(now);
        for d in 0..days {
            let day = at(2026, 3, 1, 0, 0, 0) + chrono::Duration::days(i64::from(d));
            // haiku-4-5 output: $5 a million tokens.
            let out = if d % 2 == 0 { 200_000 } else { 600_000 };
            rig.add(Call::new(day, "claude-haiku-4-5").io(0, out));
        }
        let f = rig.ledger.forecast(1, None).unwrap();
        assert_eq!(f.history_days, days);
        f.days[0].upper_usd - f.days[0].cost_usd
    };
    // History $1, $3, $1, $3, $1: the line 1.8 + 0 x, s = 1.2649 (3 degrees of freedom), tomorrow at x = 6;
    // t(0.95, 3) = 2.353 makes the half-band 2.353 × s × √(1 + 1/5 + 16/10) = 4.9804 (z would give 3.4818).
    close(band(5), 4.980_362_267_947_986);
    // With 27 days t is 1.708, near z.
    assert!(band(27) < band(5));
}

#[test]
fn one_calls_savings_never_add_up_to_more_than_it_cost() {
    // A failed, small, non-interactive call on a premium model: its failure, right-sizing and batching each
    // counted its whole cost (2.3x the spend, summed).
    let rig = Rig::new(t0());
    rig.add(Call::new(t0(), "claude-opus-4-5").io(1_000, 100).op("batch").failed());
    // The same, succeeding: right-sized to haiku-4-5 ($0.0015), then batched (half of that).
    rig.add(Call::new(t0(), "claude-opus-4-5").io(1_000, 100).op("batch"));
    let r = rig.ledger.efficiency_report(Window::Last24Hours, Dimension::Agent).unwrap();
    let picos = |kind: SuggestionType| {
        r.optimization_suggestions.iter().find(|s| s.kind == kind).map_or(0, |s| s.potential_savings_picos.picos())
    };
    let cost = 7_500_000_000u128; // 1,000 × $5 + 100 × $25 per million
    assert_eq!(picos(SuggestionType::FailedCalls), cost);
    assert_eq!(picos(SuggestionType::ModelRightSizing), cost - 1_500_000_000);
    assert_eq!(picos(SuggestionType::BatchApi), 750_000_000);
    let total: u128 = r.optimization_suggestions.iter().map(|s| s.potential_savings_picos.picos()).sum();
    assert!(total <= 2 * cost, "{total} of {}", 2 * cost);
}

#[test]
fn web_search_fees_are_in_the_cost_and_in_no_saving() {
    // Calls that made web searches ($0.01 each): right-sizing, batching and trimming under the long-context line
    // change what their tokens cost, never their searches, so no saving counts the fees. Each case on a ledger
    // of its own: (call, the saving it should show, the kind, its tokens' cost).
    const FEE: u128 = 10_000_000_000;
    let saving = |call: Call, kind: SuggestionType| {
        let rig = Rig::new(t0());
        rig.add(call);
        let summary = rig.ledger.usage_summary(Window::Last24Hours).unwrap();
        let r = rig.ledger.efficiency_report(Window::Last24Hours, Dimension::Agent).unwrap();
        let found = r.optimization_suggestions.iter().find(|s| s.kind == kind).map(|s| s.potential_savings_picos);
        (summary.cost_picos.picos(), found.map_or(0, |m| m.picos()))
    };
    // A small, non-interactive call on a premium model: 1,000 × $5 + 100 × $25 per million; on haiku-4-5
    // 1,000 × $1 + 100 × $5; batched, half that.
    let small = || Call::new(t0(), OPUS).io(1_000, 100).op("batch").searches(3);
    assert_eq!(saving(small(), SuggestionType::ModelRightSizing), (7_500_000_000 + 3 * FEE, 6_000_000_000));
    assert_eq!(saving(small(), SuggestionType::BatchApi), (7_500_000_000 + 3 * FEE, 750_000_000));
    // A non-interactive call at standard rates: 20,000 × $3 + 1,000 × $15 per million, batched half that.
    let batch = Call::new(t0(), SONNET).io(20_000, 1_000).op("batch").searches(2);
    assert_eq!(saving(batch, SuggestionType::BatchApi), (75_000_000_000 + 2 * FEE, 37_500_000_000));
    // Just over the long-context line: 205,000 × $6 + 1,000 × $22.50 per million, at standard rates
    // 205,000 × $3 + 1,000 × $15.
    let long = Call::new(t0(), SONNET).io(205_000, 1_000).searches(1);
    assert_eq!(
        saving(long, SuggestionType::LongContextThreshold),
        (1_252_500_000_000 + FEE, 1_252_500_000_000 - 630_000_000_000)
    );
    // The suggestion's figures are the call's cost and the cost after it, each with the fee.
    let rig = Rig::new(t0());
    rig.add(Call::new(t0(), SONNET).io(20_000, 1_000).op("batch").searches(2));
    let r = rig.ledger.efficiency_report(Window::Last24Hours, Dimension::Agent).unwrap();
    let text = &r.optimization_suggestions.iter().find(|s| s.kind == SuggestionType::BatchApi).unwrap().description;
    assert!(text.contains("($0.0950,") && text.contains("($0.0575)"), "{text}");
}

#[test]
fn the_caching_saving_is_measured_after_right_sizing_and_batching() {
    // A loop of small calls on a premium model repeating a 2,000-token prompt uncached, in one session, as a
    // nightly job: right-sizing, batching and caching each apply. Caching was measured at opus-4-5's own rates,
    // so the three added up to 141% of what the calls cost. (A 2,000-token prefix is under haiku-4-5's minimum
    // cacheable prompt, 4,096: the ledger's minimum is set for every model here.)
    let rig = Rig::with(t0(), LedgerConfig::default().with_min_cacheable_tokens(1_024));
    let n = 10u128;
    for i in 0..n as i64 {
        let t = t0() + chrono::Duration::seconds(30 * i);
        rig.clock.set(t);
        rig.add(Call::new(t, "claude-opus-4-5").io(2_000, 300).session("loop").op("nightly"));
    }
    let r = rig.ledger.efficiency_report(Window::Last24Hours, Dimension::Agent).unwrap();
    let picos = |kind: SuggestionType| {
        r.optimization_suggestions.iter().find(|s| s.kind == kind).map_or(0, |s| s.potential_savings_picos.picos())
    };
    // Each call: 2,000 × $5 + 300 × $25 per million = $0.0175; on haiku-4-5 2,000 × $1 + 300 × $5 = $0.0035;
    // batched, half that.
    let cost = 17_500_000_000u128;
    assert_eq!(picos(SuggestionType::ModelRightSizing), n * (cost - 3_500_000_000));
    assert_eq!(picos(SuggestionType::BatchApi), n * 1_750_000_000);
    // The 9 later calls each sent the 2,000 tokens again: at haiku-4-5's batch rates ($0.50 input, $0.05 cache
    // read per million) that is 2,000 × $0.45 per million = $0.0009 a call, less writing the prefix once at the
    // 5-minute premium (2,000 × $0.125 per million = $0.00025).
    assert_eq!(picos(SuggestionType::PromptCaching), 9 * 900_000_000 - 250_000_000);
    let total: u128 = r.optimization_suggestions.iter().map(|s| s.potential_savings_picos.picos()).sum();
    assert!(total <= n * cost, "{total} of {}", n * cost);
}

/// The cost of `call` priced in `book` (asserted to be `expected` pico-USD), and the batch suggestion's saving
/// once a ledger on `book` has it.
fn batch_saving_of(book: &PriceBook, call: Call, expected: u128) -> (u128, u128) {
    let call = call.op("nightly").priced(book);
    let cost = call.0.cost.as_ref().expect("priced").total.picos();
    assert_eq!(cost, expected);
    let clock = std::sync::Arc::new(tokenmeter::ManualClock::new(t0()));
    let ledger = tokenmeter::ledger::Ledger::new(tokenmeter::ledger::LedgerConfig::default(), clock, book.clone());
    ledger.ingest_call(&call.0);
    let r = ledger.efficiency_report(Window::Last24Hours, Dimension::Agent).unwrap();
    let batch = r.optimization_suggestions.iter().find(|s| s.kind == SuggestionType::BatchApi).expect("batch");
    (cost, batch.potential_savings_picos.picos())
}

#[test]
fn a_fast_multiplier_of_zero_is_one_in_the_suggestions_too() {
    // `ModelPrice` reads a fast multiplier of 0 as 1, and the call is billed so; the ledger's figures used it
    // as 0, so batching a fast, non-interactive call claimed its whole cost as the saving.
    let rates = tokenmeter::pricing::Rates::per_mtok_micros(5_000_000, 25_000_000, 6_250_000, 10_000_000, 500_000);
    let price = tokenmeter::pricing::ModelPrice::new(rates).with_fast_multiplier(0);
    let book = PriceBook::builtin().with_price("turbo-model", price);
    // 1,000 × $5 + 1,000 × $25 per million, times 1.
    let call = Call::new(t0(), "turbo-model").io(1_000, 1_000).speed("fast");
    let (cost, saving) = batch_saving_of(&book, call, 30_000_000_000);
    assert_eq!(saving, cost / 2);
}

#[test]
fn the_suggestions_price_a_us_only_call_at_its_own_rates() {
    // Batching a US-only call saves half of what it cost at 1.1x; priced at the global rates after batching, the
    // saving read 1.1 - 0.5 = 0.6 of the global cost instead of 0.55.
    // 10,000 × $5 + 1,000 × $25 per million, times 1.1.
    let call = Call::new(t0(), "claude-opus-4-6").io(10_000, 1_000).geo("us");
    let (cost, saving) = batch_saving_of(&PriceBook::builtin(), call, 82_500_000_000);
    assert_eq!(saving, cost / 2);
}

#[test]
fn a_write_of_both_lifetimes_never_read_is_one_write() {
    // One call caches 8,000 tokens for an hour and 3,000 for 5 minutes; nothing reads them. Each part waits on
    // its own, but the report counts writes by call: one write of 11,000 tokens, one call concerned.
    let rig = Rig::new(t0());
    rig.add(Call::new(t0(), SONNET).io(100, 10).cache(0, 3_000).write_1h(8_000).session("s"));
    rig.clock.set(t0() + mins(90));
    let c = rig.ledger.cache_report(Window::Last24Hours).unwrap();
    assert_eq!((c.unread_cache_writes.writes, c.unread_cache_writes.tokens), (1, 11_000));
    // The premiums over input ($3 a million): 3,000 × $0.75 and 8,000 × $3.
    close(c.unread_cache_writes.wasted_usd, picos_to_usd(3_000 * 750_000 + 8_000 * 3_000_000));
    let r = rig.ledger.efficiency_report(Window::Last24Hours, Dimension::Agent).unwrap();
    let unread = r.optimization_suggestions.iter().find(|s| s.kind == SuggestionType::UnreadCacheWrites).unwrap();
    assert_eq!(unread.calls, 1);
}

#[test]
fn a_failed_calls_cache_write_is_not_also_an_unread_write() {
    // A call that wrote 50,000 tokens to the cache and then failed: its cost is in `failed_calls`; once its
    // lifetime and the late reader's grace were over, its write also counted as never read ($0.0375 more at
    // sonnet-4-5's 5-minute premium).
    let rig = Rig::new(t0());
    rig.add(Call::new(t0(), SONNET).io(10, 100).cache(0, 50_000).session("s").failed());
    rig.clock.set(t0() + chrono::Duration::minutes(16));
    rig.add(Call::new(t0() + chrono::Duration::minutes(16), SONNET).io(1_000, 100).session("s"));
    let r = rig.ledger.efficiency_report(Window::Last24Hours, Dimension::Agent).unwrap();
    let kinds: Vec<SuggestionType> = r.optimization_suggestions.iter().map(|s| s.kind).collect();
    assert!(kinds.contains(&SuggestionType::FailedCalls), "{kinds:?}");
    assert!(!kinds.contains(&SuggestionType::UnreadCacheWrites), "{kinds:?}");
}

#[test]
fn an_unread_write_of_a_record_the_ledger_prices_is_filed_under_its_calls_model() {
    // A record read back without a cost, under a dated model id: the call is filed under the price book's id,
    // its never-read write was filed under the dated one (a phantom 0-call model row, and the call's row with a
    // perfect cache-write score).
    let rig = Rig::new(t0());
    rig.add(Call::new(t0(), "claude-sonnet-4-5-20250929").io(10, 100).cache(0, 10_000).session("s"));
    // Past the 5-minute lifetime and the 10 minutes a late reader has.
    rig.clock.set(t0() + chrono::Duration::minutes(16));
    let q = Query::new(Window::Last24Hours).group_by(GroupBy::Dimension(Dimension::Model));
    let rows: Vec<String> = rig.ledger.query(&q).unwrap().groups.into_iter().map(|g| g.key).collect();
    assert_eq!(rows, [SONNET]);
    let r = rig.ledger.efficiency_report(Window::Last24Hours, Dimension::Model).unwrap();
    assert_eq!(r.breakdowns.len(), 1);
    let kinds: Vec<SuggestionType> = r.optimization_suggestions.iter().map(|s| s.kind).collect();
    assert!(kinds.contains(&SuggestionType::UnreadCacheWrites), "{kinds:?}");
    assert!(r.breakdowns[0].efficiency_score < 100.0, "{:?}", r.breakdowns[0]);
}

#[test]
fn an_unread_write_is_priced_at_the_rates_the_calls_other_suggestions_leave_it_at() {
    // 1,500 tokens written on claude-opus-4-1 ($18.75 a million, input $15), 10 output tokens ($75), never read:
    // a $0.028875 call. Right-sized to claude-haiku-4-5, whose minimum cacheable prompt is 4,096 tokens, the
    // 1,500 tokens are uncached input there ($1 a million) and the output $5: $0.00155, a $0.027325 saving (at
    // haiku's write rate, $1.25, it read $0.001925 and $0.02695). Its never-read write's premium was priced at
    // opus's rates (1,500 × $3.75 a million, $0.005625): savings of $0.032575 on a $0.028875 call. On
    // haiku-4-5 the write would not be made: nothing more to save.
    let rig = Rig::new(t0());
    rig.add(Call::new(t0(), "claude-opus-4-1").io(0, 10).cache(0, 1_500).session("s"));
    // A nightly (non-interactive) sonnet call: its premium (1,500 × $0.75 a million) is halved, as batch would.
    rig.add(Call::new(t0(), SONNET).io(0, 10).cache(0, 1_500).session("n").op("nightly"));
    rig.clock.set(t0() + mins(16));
    let r = rig.ledger.efficiency_report(Window::Last24Hours, Dimension::Agent).unwrap();
    let saving =
        |kind| r.optimization_suggestions.iter().find(|s| s.kind == kind).map(|s| s.potential_savings_picos.picos());
    assert_eq!(saving(SuggestionType::ModelRightSizing), Some(27_325_000_000));
    assert_eq!(saving(SuggestionType::UnreadCacheWrites), Some(1_500 * 750_000 / 2));
    // What was paid for the writes is what the cache report calls wasted.
    let c = rig.ledger.cache_report(Window::Last24Hours).unwrap();
    close(c.unread_cache_writes.wasted_usd, picos_to_usd(1_500 * 3_750_000 + 1_500 * 750_000));

    // Where haiku-4-5 is taken to cache 1,500 tokens, the opus write's premium is priced at its rates
    // (1,500 × $0.25 a million): savings of $0.027325 on the $0.028875 call.
    let rig = Rig::with(t0(), LedgerConfig::default().with_min_cacheable_tokens(1_024));
    rig.add(Call::new(t0(), "claude-opus-4-1").io(0, 10).cache(0, 1_500).session("s"));
    rig.clock.set(t0() + mins(16));
    let r = rig.ledger.efficiency_report(Window::Last24Hours, Dimension::Agent).unwrap();
    let unread = r.optimization_suggestions.iter().find(|s| s.kind == SuggestionType::UnreadCacheWrites).unwrap();
    assert_eq!(unread.potential_savings_picos.picos(), 1_500 * 250_000);
    let d = &unread.description;
    assert!(d.starts_with("1 cache write (1.5k tokens) expired without being read: its write"), "{d}");
}

#[test]
fn a_right_sized_call_is_not_also_counted_as_trimmed() {
    // Small calls up to 250,000 prompt tokens, Sonnet counted as premium: a 205,000-token Sonnet call (long-context
    // rates, $1.24125) was claimed by right-sizing ($1.03375) and long-context trimming ($0.61875) both, 133% of
    // what it cost.
    let config =
        LedgerConfig::default().with_small_call_limits(250_000, 1_000).with_premium_min_input_usd_per_mtok(3.0);
    let rig = Rig::with(t0(), config);
    rig.add(Call::new(t0(), SONNET).io(205_000, 500).session("s"));
    rig.clock.set(t0() + mins(16));
    let r = rig.ledger.efficiency_report(Window::Last24Hours, Dimension::Agent).unwrap();
    let kinds: Vec<SuggestionType> = r.optimization_suggestions.iter().map(|s| s.kind).collect();
    assert!(kinds.contains(&SuggestionType::ModelRightSizing), "{kinds:?}");
    assert!(!kinds.contains(&SuggestionType::LongContextThreshold), "{kinds:?}");
    let claimed: u128 = r.optimization_suggestions.iter().map(|s| s.potential_savings_picos.picos()).sum();
    assert!(claimed <= 1_241_250_000_000, "{claimed}");
}

#[test]
fn an_unread_writes_saving_is_never_more_than_its_premium() {
    // A price file that makes opus-4-1's 5-minute write cost what input does (no premium): the write, priced
    // at haiku-4-5's rates after right-sizing, would show a premium that was never paid.
    let mut book = PriceBook::builtin();
    book.merge_toml_str("[models.\"claude-opus-4-1\"]\ninput = 15\noutput = 75\ncache_write_5m = 15\n", "p.toml")
        .unwrap();
    let clock = tokenmeter::ManualClock::new(t0());
    let config = LedgerConfig::default().with_min_cacheable_tokens(1_024);
    let ledger = tokenmeter::ledger::Ledger::new(config, std::sync::Arc::new(clock.clone()), book);
    ledger.ingest_call(&Call::new(t0(), "claude-opus-4-1").io(0, 10).cache(0, 1_500).session("s").0);
    clock.set(t0() + mins(10));
    let r = ledger.efficiency_report(Window::Last24Hours, Dimension::Agent).unwrap();
    let kinds: Vec<SuggestionType> = r.optimization_suggestions.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [SuggestionType::ModelRightSizing]);
}

#[test]
fn the_minimum_cacheable_prompt_is_the_repeated_prefixs() {
    // claude-haiku-4-5 (minimum 4,096): a 5,000-token prompt, then one reading 1,500 of it from the cache and
    // sending 3,500 again uncached. The 5,000-token prefix could have been cached whole: 3,500 × ($1 − $0.10) a
    // million, less writing 5,000 at the 5-minute premium ($0.25 a million).
    let rig = Rig::new(t0() + mins(5));
    rig.add(Call::new(t0(), "claude-haiku-4-5").io(5_000, 600).session("h"));
    rig.add(Call::new(t0() + mins(1), "claude-haiku-4-5").io(3_500, 600).cache(1_500, 0).session("h"));
    let r = rig.ledger.efficiency_report(Window::Last24Hours, Dimension::Agent).unwrap();
    let caching = r.optimization_suggestions.iter().find(|s| s.kind == SuggestionType::PromptCaching);
    let caching = caching.expect("a caching suggestion");
    assert_eq!((caching.calls, caching.tokens), (1, 3_500));
    assert_eq!(caching.potential_savings_picos.picos(), 3_500 * 900_000 - 5_000 * 250_000);
}

#[test]
fn no_caching_saving_is_claimed_under_the_minimum_cacheable_prompt() {
    // Three sessions, each re-sending a prompt uncached a minute later: 3,000 tokens on claude-sonnet-4-5
    // (minimum cacheable prompt 1,024: caching would have worked), 3,000 on claude-haiku-4-5 (4,096: it would
    // not), and a small 2,000-token call on claude-opus-4-1 (1,024), whose saving is measured right-sized to
    // claude-haiku-4-5 (4,096: not there either).
    let add = |rig: &Rig| {
        for (session, model, input, output) in
            [("a", SONNET, 3_000, 600), ("b", "claude-haiku-4-5", 3_000, 600), ("c", "claude-opus-4-1", 2_000, 100)]
        {
            for m in 0..2 {
                rig.add(Call::new(t0() + mins(m), model).io(input, output).session(session));
            }
        }
    };
    let caching_calls = |rig: &Rig| {
        let r = rig.ledger.efficiency_report(Window::Last24Hours, Dimension::Agent).unwrap();
        assert!(r.optimization_suggestions.iter().any(|s| s.kind == SuggestionType::ModelRightSizing));
        r.optimization_suggestions.iter().find(|s| s.kind == SuggestionType::PromptCaching).map_or(0, |s| s.calls)
    };
    let rig = Rig::new(t0() + mins(5));
    add(&rig);
    assert_eq!(caching_calls(&rig), 1, "sonnet's second call only");
    // The ledger's minimum, when set, is every model's.
    let rig = Rig::with(t0() + mins(5), LedgerConfig::default().with_min_cacheable_tokens(1_024));
    add(&rig);
    assert_eq!(caching_calls(&rig), 3);
}

/// A ledger made at `start` with one claude-haiku-4-5 call costing `usd` (output at $5 a million) at each of
/// `spend`'s times, the clock following them.
fn haiku_spend(start: chrono::DateTime<chrono::Utc>, spend: &[(chrono::DateTime<chrono::Utc>, f64)]) -> Rig {
    let rig = Rig::new(start);
    for &(t, usd) in spend {
        rig.clock.set(t);
        rig.add(Call::new(t, "claude-haiku-4-5").io(0, (usd * 200_000.0).round() as u64));
    }
    rig
}

#[test]
fn under_three_days_of_history_the_forecast_is_their_mean() {
    // $1 then $10: the line through both projected $19 today, $28 tomorrow and thousands for the month.
    let rig =
        haiku_spend(at(2026, 3, 1, 0, 0, 0), &[(at(2026, 3, 1, 12, 0, 0), 1.0), (at(2026, 3, 2, 12, 0, 0), 10.0)]);
    rig.clock.set(at(2026, 3, 3, 0, 30, 0));
    let f = rig.ledger.forecast(2, None).unwrap();
    assert_eq!(f.history_days, 2);
    close(f.slope_usd_per_day, 0.0);
    assert_eq!(f.days.len(), 2);
    for d in &f.days {
        close(d.cost_usd, 5.5);
        // The stated spread: half the rate, z for 90%.
        close(d.upper_usd - d.cost_usd, 1.645 * 2.75);
    }
}

#[test]
fn a_meter_started_this_afternoon_runs_at_the_rate_since_it_started() {
    // Started at 17:00, $1 an hour: at 19:00 the run rate divided $2 by the 19 hours since midnight ($2.53 a
    // day, not $24).
    let rig =
        haiku_spend(at(2026, 3, 10, 17, 0, 0), &[(at(2026, 3, 10, 17, 0, 0), 1.0), (at(2026, 3, 10, 18, 0, 0), 1.0)]);
    rig.clock.set(at(2026, 3, 10, 19, 0, 0));
    let f = rig.ledger.forecast(1, Some(8.0)).unwrap();
    assert_eq!(f.history_days, 0);
    close(f.days[0].cost_usd, 24.0);
    // The rest of today is that rate over its 5 hours left ($5, not $24 less the $2 spent): $2 + $5 + 21 days
    // at $24, and an $8 limit is reached tomorrow, not today.
    close(f.projected_month_total_usd, 2.0 + 5.0 + 21.0 * 24.0);
    let limit = f.limit.expect("a limit");
    assert_eq!(limit.reached_on, chrono::NaiveDate::from_ymd_opt(2026, 3, 11));
}

#[test]
fn a_monthly_limit_of_zero_is_reached_by_the_first_spend() {
    // Nothing spent: it read as not reached, yet reached today. Spent only on the 5th: reached on the 1st.
    let rig = haiku_spend(at(2026, 3, 1, 0, 0, 0), &[]);
    rig.clock.set(at(2026, 3, 8, 12, 0, 0));
    let limit = rig.ledger.forecast(1, Some(0.0)).unwrap().limit.expect("a limit");
    assert_eq!((limit.reached, limit.reached_on, limit.days_until), (false, None, None));
    // A call costing nothing on the 1st (its day has an entry at $0), the first spend on the 5th.
    let rig = haiku_spend(at(2026, 3, 1, 0, 0, 0), &[(at(2026, 3, 1, 12, 0, 0), 0.0), (at(2026, 3, 5, 12, 0, 0), 1.0)]);
    rig.clock.set(at(2026, 3, 8, 12, 0, 0));
    let limit = rig.ledger.forecast(1, Some(0.0)).unwrap().limit.expect("a limit");
    assert!(limit.reached);
    assert_eq!(limit.reached_on, chrono::NaiveDate::from_ymd_opt(2026, 3, 5));
}

#[test]
fn a_limit_the_month_reaches_exactly_is_reached() {
    // $0.70 then $0.10 against $0.80: summed as floats, 0.7999999999999999, short of it.
    let rig = haiku_spend(at(2026, 3, 1, 0, 0, 0), &[(at(2026, 3, 1, 12, 0, 0), 0.7), (at(2026, 3, 2, 12, 0, 0), 0.1)]);
    rig.clock.set(at(2026, 3, 3, 12, 0, 0));
    let f = rig.ledger.forecast(1, Some(0.8)).unwrap();
    assert_eq!(f.month_to_date_usd, 0.8);
    let limit = f.limit.expect("a limit");
    assert!(limit.reached);
    assert_eq!(limit.reached_on, chrono::NaiveDate::from_ymd_opt(2026, 3, 2));
    assert_eq!(limit.spent_usd, 0.8);
}

#[test]
fn anomalies_wait_for_three_periods_of_baseline() {
    // One call at 03:00 on the first day, ten on the second: "10x the trailing average" of one day (ten calls
    // where one is the rate are no chance: the count alone does not wait).
    let day = |d: u32| at(2026, 3, d, 3, 0, 0);
    let mut spend: Vec<_> = vec![(day(1), 0.01)];
    spend.extend([(day(2), 0.01); 10]);
    let rig = haiku_spend(at(2026, 3, 1, 0, 0, 0), &spend);
    rig.clock.set(at(2026, 3, 2, 23, 0, 0));
    let r = rig.ledger.anomalies(Window::Last7Days).unwrap();
    assert!(r.anomalies.is_empty(), "{:#?}", r.anomalies);
    // With three days of one call each, the fourth day's ten calls stand out.
    let mut spend: Vec<_> = (1..=3).map(|d| (day(d), 0.01)).collect();
    spend.extend([(day(4), 0.01); 10]);
    let rig = haiku_spend(at(2026, 3, 1, 0, 0, 0), &spend);
    rig.clock.set(at(2026, 3, 4, 23, 0, 0));
    let r = rig.ledger.anomalies(Window::Last7Days).unwrap();
    assert!(!r.anomalies.is_empty());
    assert!(r.anomalies.iter().all(|a| a.start.date_naive() == day(4).date_naive()), "{:#?}", r.anomalies);
}

#[test]
fn steady_low_volume_traffic_is_not_an_anomaly_and_a_real_spike_is() {
    // One call an hour on average (Poisson, a fixed seed), three weeks: some hours have 3 or 4 calls by chance,
    // which read as 2x tokens and cost against a baseline of one: 19 hours of the week flagged, none of them a
    // change (a statistics review). Past its factor, a metric now needs calls more than the baseline's rate makes
    // likely (one in a thousand) or calls bigger by the factor.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut uniform = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut poisson = |mean: f64| {
        // Knuth's: multiply uniforms until the product drops under e^-mean.
        let (limit, mut k, mut p) = ((-mean).exp(), 0u32, 1.0);
        loop {
            p *= uniform();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    };
    let start = at(2026, 3, 1, 0, 0, 0);
    let now = at(2026, 3, 22, 0, 0, 0);
    let rig = Rig::new(start);
    let mut hour = start;
    let mut flagged_before = 0;
    while hour < now {
        let n = poisson(1.0);
        flagged_before += u32::from(n >= 3);
        for k in 0..n {
            let t = hour + Duration::seconds(i64::from(k) * 3_600 / i64::from(n.max(1)));
            rig.clock.set(t);
            rig.add(Call::new(t, "claude-haiku-4-5").io(4_000, 200));
        }
        hour += Duration::hours(1);
    }
    rig.clock.set(now);
    assert!(flagged_before > 20, "hours of 3 calls or more in three weeks: {flagged_before}");
    let r = rig.ledger.anomalies(Window::Last7Days).unwrap();
    assert!(r.anomalies.is_empty(), "{:#?}", r.anomalies);
    // A fivefold day on top (96 calls more on the 21st: 120 against 24) is one: its calls are far past chance.
    for k in 0..96 {
        let t = at(2026, 3, 21, 0, 0, 0) + Duration::minutes(15 * k);
        rig.add(Call::new(t, "claude-haiku-4-5").io(4_000, 200));
    }
    let r = rig.ledger.anomalies(Window::Last7Days).unwrap();
    let days: BTreeSet<_> = r.anomalies.iter().filter(|a| a.granularity == Granularity::Day).map(|a| a.start).collect();
    assert_eq!(days, BTreeSet::from([at(2026, 3, 21, 0, 0, 0)]), "{:#?}", r.anomalies);
    // One call ten times the usual size in a quiet hour is one too: bigger calls, not more.
    rig.add(Call::new(at(2026, 3, 20, 5, 30, 0), "claude-haiku-4-5").io(40_000, 2_000));
    let r = rig.ledger.anomalies(Window::Last7Days).unwrap();
    assert!(
        r.anomalies.iter().any(|a| a.granularity == Granularity::Hour && a.start == at(2026, 3, 20, 5, 0, 0)),
        "{:#?}",
        r.anomalies
    );
}

#[test]
fn anomalies_wait_for_three_periods_with_calls() {
    // A call at 03:00 on March 1st, none at that hour for six days, ten on March 8th: the hour's baseline was
    // 1/7 of a call, and 03:00 on the 8th was a 70x spike in tokens, cost and calls. Noon has one call a day,
    // then ten on the 8th: that hour's baseline has seven days with calls, and it is one.
    let mut spend = vec![(at(2026, 3, 1, 3, 0, 0), 0.01)];
    spend.extend((1..=7).map(|d| (at(2026, 3, d, 12, 0, 0), 0.01)));
    spend.extend([(at(2026, 3, 8, 3, 0, 0), 0.01); 10]);
    spend.extend([(at(2026, 3, 8, 12, 0, 0), 0.01); 10]);
    let rig = haiku_spend(at(2026, 3, 1, 0, 0, 0), &spend);
    rig.clock.set(at(2026, 3, 8, 23, 0, 0));
    let r = rig.ledger.anomalies(Window::Last24Hours).unwrap();
    let hours: BTreeSet<_> =
        r.anomalies.iter().filter(|a| a.granularity == Granularity::Hour).map(|a| a.start).collect();
    assert_eq!(hours, BTreeSet::from([at(2026, 3, 8, 12, 0, 0)]), "{:#?}", r.anomalies);
    // Days likewise: one call on March 1st and ten on the 8th was a 70x day (and hour) too.
    let mut spend = vec![(at(2026, 3, 1, 3, 0, 0), 0.01)];
    spend.extend([(at(2026, 3, 8, 3, 0, 0), 0.01); 10]);
    let rig = haiku_spend(at(2026, 3, 1, 0, 0, 0), &spend);
    rig.clock.set(at(2026, 3, 8, 23, 0, 0));
    let r = rig.ledger.anomalies(Window::Last24Hours).unwrap();
    assert!(r.anomalies.is_empty(), "{:#?}", r.anomalies);
}

/// One identical sonnet call every 10 minutes from `start` to `now` in zone `tz`, the clock at `now`.
fn every_ten_minutes(
    tz: chrono_tz::Tz,
    start: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> Rig {
    let rig = Rig::with(start, tokenmeter::LedgerConfig::default().with_time_zone(tz));
    let mut t = start;
    while t <= now {
        rig.clock.set(t);
        rig.add(Call::new(t, SONNET).io(1_000, 100));
        t += chrono::Duration::minutes(10);
    }
    rig.clock.set(now);
    rig
}

#[test]
fn a_steady_workload_compares_flat_with_the_period_before() {
    // One identical call every 10 minutes since January 1st; now is March 20th, 09:29:30. The previous window
    // used to be `from - (to - from)`, starting inside a bucket whose calls it left out (+16.7%, +4.3%, +66.7%
    // for no change at all); then the whole units before the current window's first: 7 whole days against 6
    // and today's 9 and a half hours (-8.6%). It is the same stretch one period earlier, to the hour, and the
    // rates compare.
    let rig = every_ten_minutes(chrono_tz::UTC, at(2026, 1, 1, 0, 0, 0), at(2026, 3, 20, 9, 29, 30));
    for (window, calls, prev_calls, prev) in [
        // 23 whole hours and 09:00-09:30 (3 calls), against the 23 hours from 10:00 two days ago.
        (Window::Last24Hours, 141, 138, (at(2026, 3, 18, 10, 0, 0), at(2026, 3, 19, 9, 0, 0))),
        (Window::Last7Days, 6 * 144 + 57, 6 * 144 + 54, (at(2026, 3, 7, 0, 0, 0), at(2026, 3, 13, 9, 0, 0))),
        // From January 20th (inside January's month bucket) to February 18th, 09:00 (inside a day bucket).
        (Window::Last30Days, 29 * 144 + 57, 29 * 144 + 54, (at(2026, 1, 20, 0, 0, 0), at(2026, 2, 18, 9, 0, 0))),
    ] {
        let c = rig.ledger.compare_periods(window).unwrap();
        assert_eq!((c.a.calls, c.b.calls), (prev_calls, calls), "{window}");
        assert_eq!((c.a.window.from, c.a.window.to), prev, "{window}");
        close(c.deltas.calls_pct.expect("calls"), 0.0);
        close(c.deltas.cost_pct.expect("cost"), 0.0);
        close(c.deltas.tokens_pct.expect("tokens"), 0.0);
    }
    // `1h`: the 60 minutes before, as long as the current hour.
    let c = rig.ledger.compare_periods(Window::LastHour).unwrap();
    assert_eq!((c.a.calls, c.b.calls), (6, 6));
    assert_eq!(c.deltas.calls_pct, Some(0.0));
}

#[test]
fn a_week_across_a_clock_change_compares_flat() {
    // New York moved its clocks on 2026-03-08: the current week holds a 23-hour day. Local days and hours on
    // both sides: 152.5 hours against 153, the same rate.
    let tz = chrono_tz::America::New_York;
    let now = tz.with_ymd_and_hms(2026, 3, 10, 9, 29, 30).unwrap().with_timezone(&chrono::Utc);
    let rig = every_ten_minutes(tz, at(2026, 2, 1, 0, 0, 0), now);
    let local = |d: u32, h: u32| tz.with_ymd_and_hms(2026, 3, d, h, 0, 0).unwrap().with_timezone(&chrono::Utc);
    let c = rig.ledger.compare_periods(Window::Last7Days).unwrap();
    assert_eq!(c.b.window.from, local(4, 0));
    assert_eq!(
        (c.a.window.from, c.a.window.to),
        (tz.with_ymd_and_hms(2026, 2, 25, 0, 0, 0).unwrap().with_timezone(&chrono::Utc), local(3, 9))
    );
    assert_eq!((c.a.calls, c.b.calls), (153 * 6, 152 * 6 + 3));
    close(c.deltas.calls_pct.expect("calls"), 0.0);
}

#[test]
fn a_range_of_hours_days_back_compares_exactly() {
    // A range from 10:00 to 16:00 the next day, twelve days back, lies inside day buckets: its total took the
    // whole day bucket starting in it (24 hours, not 30). In New York the range across the DST change is 29.
    for tz in [chrono_tz::UTC, chrono_tz::America::New_York] {
        let rig = every_ten_minutes(tz, at(2026, 3, 1, 0, 0, 0), at(2026, 3, 20, 12, 0, 0));
        let local = |d: u32, h: u32| tz.with_ymd_and_hms(2026, 3, d, h, 0, 0).unwrap().with_timezone(&chrono::Utc);
        let (from, to) = (local(7, 10), local(8, 16));
        let hours = (to - from).num_hours();
        assert_eq!(hours, if tz == chrono_tz::UTC { 30 } else { 29 });
        let c = rig.ledger.compare_periods(Window::range(from, to)).unwrap();
        assert_eq!((c.a.window.from, c.a.window.to), (from - (to - from), from), "{tz}");
        assert_eq!((c.a.calls, c.b.calls), (hours as u64 * 6, hours as u64 * 6), "{tz}");
        assert_eq!(c.deltas.calls_pct, Some(0.0), "{tz}");
        // Inside one day: 10:00 to 16:00 against 04:00 to 10:00, hours only.
        let c = rig.ledger.compare_periods(Window::range(local(5, 10), local(5, 16))).unwrap();
        assert_eq!((c.a.calls, c.b.calls), (36, 36), "{tz}");
    }
}

#[test]
fn query_filters_and_groups() {
    let rig = workload();
    let q =
        Query::new(Window::Last24Hours).filter(Dimension::Project, "p1").group_by(GroupBy::Dimension(Dimension::Agent));
    let r = rig.ledger.query(&q).unwrap();
    assert_eq!(r.totals.calls, 5);
    let rows: Vec<(&str, u64)> = r.groups.iter().map(|g| (g.key.as_str(), g.calls)).collect();
    assert_eq!(rows, [("a1", 3), ("a2", 2)]);
    close(r.groups.iter().map(|g| g.cost_share).sum(), 1.0);

    let r = rig.ledger.query(&Query::new(Window::Last24Hours).group_by(GroupBy::Dimension(Dimension::Tool))).unwrap();
    assert_eq!((r.groups[0].key.as_str(), r.groups[0].calls, r.groups[0].failed_calls), ("grep", 2, 1));

    // Calls without a session are a `(none)` row: the rows add up to the total.
    let r =
        rig.ledger.query(&Query::new(Window::Last24Hours).group_by(GroupBy::Dimension(Dimension::Session))).unwrap();
    let none = r.groups.iter().find(|g| g.key == "(none)").expect("a (none) row");
    assert_eq!(r.groups.iter().map(|g| g.calls).sum::<u64>(), r.totals.calls);
    assert_eq!(
        none.calls,
        r.totals.calls - r.groups.iter().filter(|g| g.key != "(none)").map(|g| g.calls).sum::<u64>()
    );
    close(r.groups.iter().map(|g| g.cost_usd).sum(), r.totals.cost_usd);
    let r = rig.ledger.query(&Query::new(Window::Last24Hours).filter(Dimension::Session, "B")).unwrap();
    assert_eq!(r.totals.calls, 2);
    assert_eq!(r.totals.cost_usd, picos_to_usd(C3 + C4));
    // The calls without a session by project: none is in a (project, session) pair, and all of them made one
    // `(other)` row, the label of values past a cap. Refused, naming the report that has them.
    let q = Query::new(Window::Last24Hours)
        .filter(Dimension::Session, "(none)")
        .group_by(GroupBy::Dimension(Dimension::Project));
    match rig.ledger.query(&q) {
        Err(tokenmeter::ledger::QueryError::Unsupported(why)) => assert!(why.contains("breakdown_tree"), "{why}"),
        other => panic!("{other:?}"),
    }

    let r = rig
        .ledger
        .query(
            &Query::new(Window::Last24Hours)
                .filter(Dimension::Project, "p1")
                .group_by(GroupBy::Dimension(Dimension::Session)),
        )
        .unwrap();
    let rows: Vec<&str> = r.groups.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(rows, ["A", "B", "(none)"], "p1's failed call has no session");

    let by_user = rig.ledger.query(&Query::new(Window::Last24Hours).group_by("user".parse().unwrap())).unwrap();
    let users: Vec<(&str, u64)> = by_user.groups.iter().map(|g| (g.key.as_str(), g.calls)).collect();
    assert_eq!(users.len(), 3, "{users:?}");
    assert_eq!(users.iter().map(|u| u.1).sum::<u64>(), by_user.totals.calls);
    let _ = PriceBook::builtin();
    let _ = picos(0.0);
}

#[test]
fn a_short_window_older_than_the_hourly_totals_is_summarized_by_day() {
    // One call on 2028-03-01, read two months later: the window is one day long, but hourly totals are kept
    // 35 days, so its series is by day (it used to fail with ResolutionUnavailable).
    let rig = Rig::new(at(2028, 3, 1, 10, 0, 0));
    rig.add(Call::new(at(2028, 3, 1, 10, 0, 0), "claude-sonnet-4-5").io(1_000, 100));
    rig.clock.set(at(2028, 5, 1, 0, 0, 0));
    let day = Window::range(at(2028, 3, 1, 0, 0, 0), at(2028, 3, 2, 0, 0, 0));
    let s = rig.ledger.usage_summary(day).unwrap();
    assert_eq!(s.calls, 1);
    assert_eq!(s.time_series.grain, TimeGrain::Day);
    // March is kept in a month bucket by then (up to where the day buckets begin, March 27): the window is
    // that bucket's span, the series its days, and the two agree.
    let span = rig.ledger.aligned(day).unwrap();
    assert_eq!(span, Window::range(at(2028, 3, 1, 0, 0, 0), at(2028, 3, 27, 0, 0, 0)));
    assert_eq!((s.window.from, s.window.to), (at(2028, 3, 1, 0, 0, 0), at(2028, 3, 27, 0, 0, 0)));
    let calls: Vec<u64> = s.time_series.points.iter().map(|p| p.calls).collect();
    assert_eq!((calls.len(), calls[0], calls.iter().sum::<u64>()), (26, 1, 1));
    let c = rig.ledger.cache_report(day).unwrap();
    assert_eq!(c.grain, TimeGrain::Day);
    assert_eq!(c.time_series.len(), 26);
    // Within the 35 days the same window is still by hour.
    let rig2 = Rig::new(at(2028, 3, 1, 10, 0, 0));
    rig2.add(Call::new(at(2028, 3, 1, 10, 0, 0), "claude-sonnet-4-5").io(1_000, 100));
    rig2.clock.set(at(2028, 3, 20, 0, 0, 0));
    assert_eq!(rig2.ledger.usage_summary(day).unwrap().time_series.grain, TimeGrain::Hour);
}

#[test]
fn two_local_days_with_a_25_hour_one_are_summarized_by_hour() {
    // Where clocks go back, two local days are 49 hours: by hour, as two days of any other week (48 hours) are.
    let rig = Rig::new(at(2028, 3, 1, 10, 0, 0));
    rig.add(Call::new(at(2028, 3, 1, 10, 0, 0), "claude-sonnet-4-5").io(1_000, 100));
    rig.clock.set(at(2028, 3, 4, 0, 0, 0));
    let grain = |hours| {
        let w = Window::range(at(2028, 3, 1, 0, 0, 0), at(2028, 3, 1, 0, 0, 0) + chrono::Duration::hours(hours));
        (rig.ledger.usage_summary(w).unwrap().time_series.grain, rig.ledger.cache_report(w).unwrap().grain)
    };
    assert_eq!(grain(49), (TimeGrain::Hour, TimeGrain::Hour));
    assert_eq!(grain(50), (TimeGrain::Day, TimeGrain::Day));
}

#[test]
fn hourly_anomalies_compare_the_same_local_hour_across_a_dst_change() {
    // Ten calls in each hour from 09:00 to 17:00 New York time, every day; clocks spring forward on
    // 2028-03-12. No hour stands out, but the baseline of 09:00 EDT used to be taken 24 hours back, which
    // before the change is 08:00 EST, a quiet hour: a week of false anomalies after each DST change.
    let tz = chrono_tz::America::New_York;
    let rig = Rig::with(at(2028, 3, 1, 0, 0, 0), tokenmeter::LedgerConfig::default().with_time_zone(tz));
    for day in 1..=14 {
        for hour in 9..17 {
            let start = tz.with_ymd_and_hms(2028, 3, day, hour, 10, 0).unwrap().with_timezone(&chrono::Utc);
            for i in 0..10 {
                rig.clock.set(start + mins(i));
                rig.add(Call::new(start + mins(i), "claude-sonnet-4-5").io(1_000, 100));
            }
        }
    }
    rig.clock.set(at(2028, 3, 14, 23, 0, 0));
    let r = rig.ledger.anomalies(Window::Last7Days).unwrap();
    assert!(r.anomalies.is_empty(), "{:#?}", r.anomalies);
}

#[test]
fn project_session_tree_adds_up_past_the_series_cap() {
    // 70 agents of one project in one minute: past the minute's 64 compound series, 6 calls fold into the
    // per-model series whose project is `(other)`, while their (project, session) pairs keep them under `p`.
    // Those calls used to be counted twice: under `p`'s sessions and as the `(other)` project's `(none)`.
    let now = at(2026, 3, 14, 12, 0, 0);
    let rig = Rig::new(now);
    for i in 0..70 {
        let call = Call::new(now, "claude-sonnet-4-5").io(100, 10).project("p").agent(&format!("agent-{i}"));
        rig.add(call.session(&format!("s{}", i % 5)));
    }
    for i in 0..3 {
        rig.add(Call::new(now, "claude-sonnet-4-5").io(100, 10).project("p").agent(&format!("agent-{i}")));
    }
    let t = rig.ledger.breakdown_tree(Window::LastHour, Dimension::Project, Dimension::Session).unwrap();
    assert_eq!(t.calls, 73);
    assert_eq!(t.nodes.iter().map(|n| n.calls).sum::<u64>(), 73, "{:#?}", t.nodes);
    assert_eq!(t.nodes.iter().map(|n| n.tokens).sum::<u64>(), t.tokens);
    let p = t.nodes.iter().find(|n| n.name == "p").unwrap();
    assert_eq!(p.children.iter().filter(|c| c.name.starts_with('s')).map(|c| c.calls).sum::<u64>(), 70);
    // The calls without a session are all under a `(none)` session; where the cap hid their project, under
    // the `(other)` project's.
    let sessionless: u64 =
        t.nodes.iter().flat_map(|n| &n.children).filter(|c| c.name == "(none)").map(|c| c.calls).sum();
    assert_eq!(sessionless, 3);
}

#[test]
fn project_session_tree_takes_each_minutes_rest_on_its_own() {
    // Minute 1: 64 agents of project q fill the minute's compound series, so p's call in session s1 folds into
    // the `(other)` project of the series while its (p, s1) pair keeps it. Minute 2: p's call in s2 and p's
    // call without a session. Taken over the whole window, p's series (minute 2 only) less p's pairs (both
    // minutes) read 0 calls and 1,000 tokens: the sessionless call went missing from p, and 1,000 tokens
    // from the tree. Minute by minute, p's rest is its sessionless call.
    let now = at(2026, 3, 14, 12, 0, 0);
    let rig = Rig::new(now);
    for i in 0..64 {
        rig.add(Call::new(now, SONNET).io(100, 10).project("q").agent(&format!("agent-{i}")));
    }
    rig.add(Call::new(now, SONNET).io(900, 100).project("p").agent("late").session("s1"));
    rig.clock.set(now + mins(1));
    rig.add(Call::new(now + mins(1), SONNET).io(9, 1).project("p").session("s2"));
    rig.add(Call::new(now + mins(1), SONNET).io(1_900, 100).project("p"));
    rig.clock.set(now + mins(2));
    let t = rig.ledger.breakdown_tree(Window::LastHour, Dimension::Project, Dimension::Session).unwrap();
    assert_eq!((t.calls, t.tokens), (67, 64 * 110 + 1_000 + 10 + 2_000));
    assert_eq!(t.nodes.iter().map(|n| n.calls).sum::<u64>(), t.calls, "{:#?}", t.nodes);
    assert_eq!(t.nodes.iter().map(|n| n.tokens).sum::<u64>(), t.tokens, "{:#?}", t.nodes);
    let p = t.nodes.iter().find(|n| n.name == "p").expect("project p");
    let kids: Vec<(&str, u64, u64)> = p.children.iter().map(|c| (c.name.as_str(), c.calls, c.tokens)).collect();
    assert_eq!(kids, [("(none)", 1, 2_000), ("s1", 1, 1_000), ("s2", 1, 10)]);
    let q = t.nodes.iter().find(|n| n.name == "q").expect("project q");
    assert_eq!((q.calls, q.children.len()), (64, 1));
    assert!(t.nodes.iter().all(|n| n.name != "(other)"), "{:#?}", t.nodes);
}

#[test]
fn a_parent_with_tasks_and_no_calls_shares_out_its_tasks() {
    // Agent planner ran a task in the window and made no call there: its one child holds all of it.
    let rig = Rig::new(t0() + mins(30));
    rig.add(Call::new(t0(), SONNET).io(1_000, 100).agent("coder").op("chat"));
    let mut t = task(t0() + mins(1), "plan", 500, Money::ZERO, false);
    t.dimensions.agent = Some("planner".into());
    rig.ledger.ingest_task(&t);
    let tree = rig.ledger.breakdown_tree(Window::Last24Hours, Dimension::Agent, Dimension::Operation).unwrap();
    let planner = tree.nodes.iter().find(|n| n.name == "planner").expect("planner, for its task");
    assert_eq!((planner.calls, planner.tasks), (0, 1));
    let shares: Vec<(&str, f64)> = planner.children.iter().map(|c| (c.name.as_str(), c.share_of_parent)).collect();
    assert_eq!(shares, [("(none)", 1.0)]);
}

#[test]
fn forecast_of_a_month_without_spend_reads_zero_not_minus_zero() {
    // On the first of the month before any call (or on an empty ledger), month to date is 0, and its JSON
    // reads 0.0: summing no days gave -0.0.
    let rig = Rig::new(at(2026, 4, 1, 9, 0, 0));
    let f = rig.ledger.forecast(3, Some(10.0)).unwrap();
    assert!(f.month_to_date_usd.is_sign_positive() && f.month_to_date_usd == 0.0);
    let json = serde_json::to_value(&f).unwrap();
    assert_eq!(json["month_to_date_usd"].to_string(), "0.0");
    assert_eq!(json["limit"]["spent_usd"].to_string(), "0.0");
}

#[test]
fn an_hourly_anomaly_ends_with_its_local_hour() {
    // Lord Howe turns its clocks back 30 minutes at 15:00 UTC on 2027-04-03: the local hour that starts then
    // (01:30 to 02:00, standard time) lasts 30 minutes. A spike in it is reported as ending at 15:30 UTC (it
    // read 16:00, an hour after its start, and the spike's breakdown took in the next hour's calls).
    let tz = chrono_tz::Australia::Lord_Howe;
    let rig = Rig::with(at(2027, 3, 26, 0, 0, 0), tokenmeter::LedgerConfig::default().with_time_zone(tz));
    let mut t = at(2027, 3, 26, 0, 5, 0);
    while t < at(2027, 4, 3, 17, 0, 0) {
        rig.clock.set(t);
        rig.add(Call::new(t, "claude-sonnet-4-5").io(1_000, 100).agent("steady"));
        if t >= at(2027, 4, 3, 15, 0, 0) && t < at(2027, 4, 3, 15, 30, 0) {
            for _ in 0..10 {
                rig.add(Call::new(t, "claude-sonnet-4-5").io(1_000, 100).agent("burst"));
            }
        }
        t += mins(10);
    }
    let r = rig.ledger.anomalies(Window::Last24Hours).unwrap();
    let hour = r
        .anomalies
        .iter()
        .find(|a| a.granularity == tokenmeter::analysis::Granularity::Hour && a.start == at(2027, 4, 3, 15, 0, 0))
        .unwrap_or_else(|| panic!("{:#?}", r.anomalies));
    assert_eq!(hour.end, at(2027, 4, 3, 15, 30, 0));
}

#[test]
fn a_right_sizing_target_without_a_price_is_refused() {
    // It used to be taken: no call could be priced against it, so the `model_right_sizing` suggestion never
    // appeared and the right-sizing part of the efficiency score read as perfect.
    let config = LedgerConfig::default().with_right_size_target("claude-haiku-9");
    let err = tokenmeter::TokenMeter::builder()
        .with_ledger_config(config.clone())
        .try_build()
        .map(|_| ())
        .expect_err("claude-haiku-9 has no price");
    assert!(matches!(&err, tokenmeter::BuildError::RightSizeTarget { model } if model == "claude-haiku-9"), "{err}");
    let dated = LedgerConfig::default().with_right_size_target("claude-haiku-4-5-20251001");
    assert!(tokenmeter::TokenMeter::builder().with_ledger_config(dated).try_build().is_ok(), "any id form");
    let rates = tokenmeter::pricing::Rates::with_default_cache(500_000, 2_000_000);
    let book = PriceBook::builtin().with_price("claude-haiku-9", tokenmeter::pricing::ModelPrice::new(rates));
    let priced = tokenmeter::TokenMeter::builder().with_price_book(book).with_ledger_config(config);
    assert!(priced.try_build().is_ok(), "priced by the meter's own price book");
    // The default target is not checked: a book of other models has no use for it.
    let others = PriceBook::empty().with_price("gpt-4o", tokenmeter::pricing::ModelPrice::new(rates));
    assert!(tokenmeter::TokenMeter::builder().with_price_book(others).try_build().is_ok(), "default target");
}

#[test]
fn cost_per_task_leaves_out_tasks_with_an_unpriced_call() {
    // Task "a" cost $1.00, all priced; task "b"'s one call had no price, so its cost ($0) leaves that call
    // out. Counted, the average read $0.50, and a comparison read a model gone unpriced as a cheaper task.
    let rig = Rig::new(t0() + mins(30));
    rig.ledger.ingest_task(&task(t0(), "a", 1_000, Money::from_picos(1_000 * G), false));
    let mut b = task(t0() + mins(1), "b", 1_000, Money::ZERO, false);
    b.unpriced_calls = 1;
    rig.ledger.ingest_task(&b);
    let s = rig.ledger.usage_summary(Window::Last24Hours).unwrap();
    assert_eq!(s.tasks, 2);
    assert_eq!(s.averages.cost_per_task_usd, Some(1.0));
    assert_eq!(s.unpriced.tasks, 1);
    let c = rig.ledger.compare_periods(Window::Last24Hours).unwrap();
    assert_eq!((c.b.cost_per_task_usd, c.b.unpriced_tasks), (Some(1.0), 1));
    // Only unpriced tasks: no average, not $0.
    let rig = Rig::new(t0() + mins(30));
    rig.ledger.ingest_task(&b);
    let s = rig.ledger.usage_summary(Window::Last24Hours).unwrap();
    assert_eq!((s.averages.cost_per_task_usd, s.unpriced.tasks), (None, 1));
}

#[test]
fn a_range_whose_start_falls_inside_a_day_bucket_is_one_span_for_totals_series_and_rate() {
    // One call an hour from 2026-03-17 on, read at 03-20 12:00: 03-17 and 03-18 are day buckets by then. The
    // range 03-17 20:00 .. 03-19 12:00 took the buckets starting in it for its totals (from 03-18) and the
    // hourly totals from 20:00 for its series: the series held 4 hours of calls more than the totals, and the
    // run-rate divided 36 hours of cost by 40 hours.
    let now = at(2026, 3, 20, 12, 0, 0);
    let rig = Rig::new(now);
    for h in 0..84 {
        rig.add(Call::new(at(2026, 3, 17, 0, 0, 0) + mins(60 * h), SONNET).io(1_000, 100).cache(2_000, 0));
    }
    let range = Window::range(at(2026, 3, 17, 20, 0, 0), at(2026, 3, 19, 12, 0, 0));
    let s = rig.ledger.usage_summary(range).unwrap();
    let series_calls: u64 = s.time_series.points.iter().map(|p| p.calls).sum();
    assert_eq!(series_calls, s.calls);
    let hours = (s.window.to - s.window.from).num_hours() as u64;
    assert_eq!(s.calls, hours, "one call an hour over the span the report says it covers");
    close(s.monthly_projection_usd, s.cost_usd / (hours as f64 / 24.0) * 31.0);
    let c = rig.ledger.cache_report(range).unwrap();
    assert_eq!(c.window, s.window);
    assert_eq!(c.time_series.iter().map(|p| p.tokens_saved).sum::<u64>(), c.cache_metrics.tokens_saved);
}

#[test]
fn an_old_range_and_its_previous_period_never_share_days() {
    // $ flat: one call an hour for 70 days, read at 03-20 12:00. The range 02-10 06:00 .. 02-20 06:00 is
    // older than the hourly totals: its current side took the day buckets from 02-14 (where they begin) and
    // its previous side the February month bucket whole (02-01 .. 02-14), days of the current range among
    // them, and both were divided by 10 days: -46% on flat spend.
    let now = at(2026, 3, 20, 12, 0, 0);
    let rig = Rig::new(now);
    let start = at(2026, 1, 9, 0, 0, 0);
    for h in 0..(70 * 24) {
        rig.add(Call::new(start + mins(60 * h), SONNET).io(1_000, 100));
    }
    let c = rig.ledger.compare_periods(Window::range(at(2026, 2, 10, 6, 0, 0), at(2026, 2, 20, 6, 0, 0))).unwrap();
    assert!(c.a.window.to <= c.b.window.from, "{:?} then {:?}", c.a.window, c.b.window);
    let rate = |side: &tokenmeter::analysis::ComparisonSide| {
        side.calls as f64 / (side.window.to - side.window.from).num_hours() as f64
    };
    close(rate(&c.a), 1.0);
    close(rate(&c.b), 1.0);
    let calls = c.deltas.calls_pct.expect("both sides have a rate");
    assert!(calls.abs() < 1e-9, "flat spend compares flat: {calls}%");
}

#[test]
fn time_of_day_ranks_hours_by_tokens_per_hour_the_window_holds() {
    // A 100-token call at 10:00 and a 110-token one at 15:00 every day. At 12:30 on the 8th, `7d` holds hour 10
    // seven times (700 tokens) and hour 15 six (660): by totals the peak was 10. By the hour it is 15.
    let rig = Rig::new(at(2026, 3, 1, 0, 0, 0));
    for d in 1..=8 {
        rig.clock.set(at(2026, 3, d, 10, 0, 0));
        rig.add(Call::new(at(2026, 3, d, 10, 0, 0), "claude-haiku-4-5").io(0, 100));
        if d < 8 {
            rig.clock.set(at(2026, 3, d, 15, 0, 0));
            rig.add(Call::new(at(2026, 3, d, 15, 0, 0), "claude-haiku-4-5").io(0, 110));
        }
    }
    rig.clock.set(at(2026, 3, 8, 12, 30, 0));
    let r = rig.ledger.time_of_day(Window::Last7Days).unwrap();
    assert_eq!((r.hours[10].tokens, r.hours[15].tokens), (700, 660));
    assert_eq!(r.peak_hour, Some(15), "{r:#?}");
    // From March 2nd 00:00 (`7d` takes whole days) to 12:31: hour 10 seven times, hour 15 six, hour 12 six and a
    // half minute.
    assert_eq!((r.hours[10].covered_hours, r.hours[15].covered_hours), (7.0, 6.0));
    close(r.hours[12].covered_hours, 6.0 + 31.0 / 60.0);
    // `6h` at 12:30 holds 07:00 to 12:31: the low hour is one of those, not midnight, which it does not hold.
    let r = rig.ledger.time_of_day(Window::Last6Hours).unwrap();
    assert_eq!(
        r.hours.iter().filter(|h| h.covered_hours > 0.0).map(|h| h.hour).collect::<Vec<_>>(),
        (7..=12).collect::<Vec<_>>()
    );
    assert_eq!((r.peak_hour, r.low_hour), (Some(10), Some(7)), "{r:#?}");
    // Today's range at 12:30 holds hours 13 to 23 still to come: none is the low hour.
    let today = Window::range(at(2026, 3, 8, 0, 0, 0), at(2026, 3, 9, 0, 0, 0));
    let r = rig.ledger.time_of_day(today).unwrap();
    assert!(r.hours[13..].iter().all(|h| h.covered_hours == 0.0), "{r:#?}");
    assert_eq!((r.peak_hour, r.low_hour), (Some(10), Some(0)), "{r:#?}");

    // A minute into an hour, its first call is not read at 60 times its rate: 1,000 tokens at 08:30, 50 at 09:00:10.
    let rig = Rig::new(at(2026, 3, 1, 0, 0, 0));
    for (t, tokens) in [(at(2026, 3, 8, 8, 30, 0), 1_000), (at(2026, 3, 8, 9, 0, 10), 50)] {
        rig.clock.set(t);
        rig.add(Call::new(t, "claude-haiku-4-5").io(0, tokens));
    }
    rig.clock.set(at(2026, 3, 8, 9, 0, 30));
    let r = rig.ledger.time_of_day(Window::LastHour).unwrap();
    // Hour 8 is the one whole hour covered: the peak, and no low hour beside it.
    assert_eq!((r.peak_hour, r.low_hour), (Some(8), None), "{r:#?}");
    // Before the ledger's making (and its first call) nothing was seen: a meter made at 08:30 covers half of hour 8
    // and none of the 23 hours before it, whose zero spend is unknown, not low.
    let rig = Rig::new(at(2026, 3, 8, 8, 30, 0));
    rig.add(Call::new(at(2026, 3, 8, 8, 40, 0), "claude-haiku-4-5").io(0, 1_000));
    rig.clock.set(at(2026, 3, 8, 10, 30, 0));
    let r = rig.ledger.time_of_day(Window::Last24Hours).unwrap();
    let covered: Vec<(u32, f64)> =
        r.hours.iter().filter(|h| h.covered_hours > 0.0).map(|h| (h.hour, h.covered_hours)).collect();
    assert_eq!(covered, [(8, 0.5), (9, 1.0), (10, 31.0 / 60.0)], "{r:#?}");
    assert_eq!((r.peak_hour, r.low_hour), (Some(8), Some(9)), "{r:#?}");
}

#[test]
fn time_of_day_names_no_peak_when_no_hour_has_tokens() {
    // A call three hours back that closed without usage: every hour has 0 tokens, and hour 0 was named peak
    // and low.
    let rig = Rig::new(t0() + mins(30));
    rig.add(Call::new(t0() - mins(3 * 60), SONNET).unmetered());
    let r = rig.ledger.time_of_day(Window::Last7Days).unwrap();
    assert_eq!(r.hours.iter().map(|h| h.calls).sum::<u64>(), 1);
    assert_eq!((r.peak_hour, r.low_hour), (None, None));
}

#[test]
fn a_session_named_none_is_one_row_with_the_calls_without_a_session() {
    // A session literally named `(none)` beside a call without one: the tree's `(none)` row was the rest alone
    // (the named session's call replaced), so its nodes added up to 1 call of 2.
    let rig = Rig::new(t0() + mins(5));
    rig.add(Call::new(t0(), SONNET).io(1_000, 100).project("x").session("(none)"));
    rig.add(Call::new(t0() + mins(1), SONNET).io(1_000, 100).project("x"));
    rig.add(Call::new(t0() + mins(2), SONNET).io(1_000, 100).session("(none)"));
    rig.add(Call::new(t0() + mins(3), SONNET).io(1_000, 100));
    let tree = rig.ledger.breakdown_tree(Window::LastHour, Dimension::Project, Dimension::Session).unwrap();
    let leaves: Vec<(&str, &str, u64)> = tree
        .nodes
        .iter()
        .flat_map(|p| p.children.iter().map(move |c| (p.name.as_str(), c.name.as_str(), c.calls)))
        .collect();
    assert_eq!(tree.calls, 4);
    assert_eq!(tree.nodes.iter().map(|n| n.calls).sum::<u64>(), 4, "{leaves:?}");
    assert_eq!(leaves.iter().map(|n| n.2).sum::<u64>(), 4, "{leaves:?}");
    assert!(leaves.contains(&("x", "(none)", 2)), "{leaves:?}");
}

#[test]
fn a_failed_call_in_a_sessions_prefix_chain_leaves_the_write_to_the_next_billed_call() {
    // 10,000, then 12,000 (failed: no suggestion, no premium paid), then 14,000 tokens, a minute apart, all
    // uncached. The failed call moved the prefix written so far to 12,000, so the third paid the premium for
    // 2,000 tokens only and the saving counted a write no call paid for ($0.0309 instead of $0.0219).
    let rig = Rig::new(t0() + mins(10));
    let sonnet = "claude-sonnet-4-5";
    rig.add(Call::new(t0(), sonnet).io(10_000, 10).session("s"));
    rig.add(Call::new(t0() + mins(1), sonnet).io(12_000, 10).session("s").failed());
    rig.add(Call::new(t0() + mins(2), sonnet).io(14_000, 10).session("s"));
    let r = rig.ledger.efficiency_report(Window::Last24Hours, Dimension::Agent).unwrap();
    let caching = r.optimization_suggestions.iter().find(|s| s.kind == SuggestionType::PromptCaching).unwrap();
    // 12,000 tokens read instead of input ($2.70 a million less) less writing the 14,000-token prefix once
    // ($0.75 a million more).
    assert_eq!(caching.potential_savings_picos.picos(), 12_000 * 2_700_000 - 14_000 * 750_000);
}
