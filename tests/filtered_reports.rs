//! The efficiency and cache reports narrowed to one tenant (`efficiency_report_for`, `cache_report_for`)
//! against hand-computed figures of that tenant's calls only.
//!
//! Rates (pico-USD per token, built-in price book): claude-sonnet-4-5 input 3,000,000, output 15,000,000,
//! 5-minute write 3,750,000, read 300,000; claude-opus-4-5 input 5,000,000, output 25,000,000;
//! claude-haiku-4-5 input 1,000,000, output 5,000,000.

use crate::ledger_common;

use ledger_common::*;
use tokenmeter::analysis::{Band, ReportFilter, SuggestionType};
use tokenmeter::ledger::{Dimension, Filter, GroupBy, Query, QueryError, TimeGrain, Window};

const SONNET: &str = "claude-sonnet-4-5";
const OPUS: &str = "claude-opus-4-5";

// acme's calls, in picos.
const A1: u128 = 10_000 * 3_000_000 + 500 * 15_000_000; // 37.5e9
const A2: u128 = 100 * 3_000_000 + 8_000 * 300_000 + 200 * 15_000_000; // 5.7e9
const A3: u128 = 1_000 * 5_000_000 + 100 * 25_000_000; // 7.5e9, small on a premium model
const A3_ON_HAIKU: u128 = 1_000 * 1_000_000 + 100 * 5_000_000; // 1.5e9
const A4: u128 = 5_000 * 3_000_000; // 15e9, failed
const ACME: u128 = A1 + A2 + A3 + A4; // 65.7e9
// globex's calls.
const G1: u128 = 20_000 * 3_000_000 + 8_000 * 3_750_000 + 1_000 * 15_000_000; // 105e9
const G2: u128 = 5_000 * 3_000_000 + 1_000 * 15_000_000; // 30e9

fn usd(picos: u128) -> f64 {
    picos as f64 / 1e12
}

/// Two tenants between 12:00 and 12:05 on 2026-03-14; the clock reads 12:30.
fn workload() -> Rig {
    let rig = Rig::new(t0() + mins(30));
    let t = |m: i64| t0() + mins(m);
    // acme: session A sends a 10,000-token prompt, then reads 8,000 of it from the cache.
    rig.add(Call::new(t(0), SONNET).io(10_000, 500).session("A").tenant("acme").project("p1").agent("a1"));
    rig.add(Call::new(t(1), SONNET).io(100, 200).cache(8_000, 0).session("A").tenant("acme").project("p1").agent("a1"));
    // acme: a small call on a premium model, and a failed call.
    rig.add(Call::new(t(2), OPUS).io(1_000, 100).tenant("acme").project("p2").agent("a1"));
    rig.add(Call::new(t(2), SONNET).io(5_000, 0).tenant("acme").project("p2").agent("a2").failed());
    // globex: a cache write that is never read, then 5,000 tokens of the prompt re-sent uncached (over sonnet-4-5's
    // 1,024-token minimum cacheable prompt; on the same model: another model's prompt is not in this one's cache).
    rig.add(Call::new(t(3), SONNET).io(20_000, 1_000).cache(0, 8_000).session("G").tenant("globex").project("p1"));
    rig.add(Call::new(t(4), SONNET).io(5_000, 1_000).session("G").tenant("globex").project("p1"));
    rig
}

#[test]
fn tenant_efficiency_report_counts_that_tenants_calls_only() {
    let rig = workload();
    let acme = ReportFilter::tenant("acme");
    let r = rig.ledger.efficiency_report_for(Window::Last24Hours, Dimension::Model, &acme).unwrap();
    assert_eq!(r.calls, 4);
    close(r.cost_usd, usd(ACME));

    // The score from acme's sums: 8,100 reusable prompt tokens in session A (the second call's prompt
    // repeats the first's), 8,000 of them read; failures 15e9 of 65.7e9; small premium calls 7.5e9; nothing
    // written to the cache.
    let s = &r.efficiency_scores;
    let reuse = 8_000.0 / 8_100.0;
    let waste = 1.0 - A4 as f64 / ACME as f64;
    let right = 1.0 - A3 as f64 / ACME as f64;
    close(s.context_reuse_rate, reuse);
    let points: Vec<f64> = s.components.iter().map(|c| c.points).collect();
    close(points[0], 40.0 * reuse);
    close(points[1], 25.0 * waste);
    close(points[2], 20.0 * right);
    close(points[3], 15.0);
    let overall = ((40.0 * reuse + 25.0 * waste + 20.0 * right + 15.0) * 10.0_f64).round() / 10.0;
    close(s.overall, overall);
    assert_eq!(s.overall, 91.5);
    assert_eq!(s.band, Band::Green);
    close(s.cache_hit_rate, 8_000.0 / (10_000.0 + 8_100.0 + 1_000.0 + 5_000.0));
    close(s.input_output_ratio.unwrap(), 24_100.0 / 800.0);

    // By model, acme's only: three sonnet calls (globex's two are not in it) and one opus call.
    let rows: Vec<(&str, u64, f64)> = r.breakdowns.iter().map(|b| (b.category.as_str(), b.calls, b.cost_usd)).collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].0, rows[0].1), (SONNET, 3));
    close(rows[0].2, usd(A1 + A2 + A4));
    assert_eq!((rows[1].0, rows[1].1), (OPUS, 1));
    close(rows[1].2, usd(A3));

    // acme's suggestions: its failed call and its small opus call; none of globex's (unread write, caching).
    let kinds: Vec<SuggestionType> = r.optimization_suggestions.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [SuggestionType::FailedCalls, SuggestionType::ModelRightSizing]);
    assert_eq!(r.optimization_suggestions[0].potential_savings_picos.picos(), A4);
    assert_eq!(r.optimization_suggestions[1].potential_savings_picos.picos(), A3 - A3_ON_HAIKU);
    assert!(r.optimization_suggestions[1].description.contains(OPUS), "{}", r.optimization_suggestions[1].description);

    let scope = r.scope.as_ref().expect("a filtered report says so");
    assert_eq!(scope.filters, [Filter::new(Dimension::Tenant, "acme")]);
    assert_eq!(scope.unattributed_calls, 0);
    assert!(scope.notes.is_empty(), "{:?}", scope.notes);

    // The two tenants add up to the whole; the unfiltered report carries no scope.
    let globex =
        rig.ledger.efficiency_report_for(Window::Last24Hours, Dimension::Model, &ReportFilter::tenant("globex"));
    let globex = globex.unwrap();
    assert_eq!(globex.calls, 2);
    close(globex.cost_usd, usd(G1 + G2));
    let kinds: Vec<SuggestionType> = globex.optimization_suggestions.iter().map(|s| s.kind).collect();
    assert!(kinds.contains(&SuggestionType::UnreadCacheWrites) && kinds.contains(&SuggestionType::PromptCaching));
    let all = rig.ledger.efficiency_report(Window::Last24Hours, Dimension::Model).unwrap();
    assert_eq!(all.calls, 6);
    close(all.cost_usd, usd(ACME + G1 + G2));
    assert!(all.scope.is_none());
    let unfiltered = rig.ledger.efficiency_report_for(Window::Last24Hours, Dimension::Model, &ReportFilter::new());
    assert_eq!(unfiltered.unwrap(), all);
}

#[test]
fn tenant_breakdowns_by_project_agent_and_session() {
    let rig = workload();
    let acme = ReportFilter::tenant("acme");
    let cats = |d: Dimension, f: &ReportFilter| {
        let r = rig.ledger.efficiency_report_for(Window::Last24Hours, d, f).unwrap();
        let rows: Vec<(String, u64)> = r.breakdowns.iter().map(|b| (b.category.clone(), b.calls)).collect();
        (rows, r.scope.unwrap().notes)
    };
    // p1 holds acme's session A and globex's session G: acme sees its 2 calls there.
    let (rows, notes) = cats(Dimension::Project, &acme);
    assert_eq!(rows, [("p1".to_owned(), 2), ("p2".to_owned(), 2)]);
    assert!(notes.is_empty());
    let (rows, _) = cats(Dimension::Agent, &acme);
    assert_eq!(rows, [("a1".to_owned(), 3), ("a2".to_owned(), 1)]);

    // By session: the ledger cannot tell sessions' tenants; without help the breakdown is empty and says so.
    let (rows, notes) = cats(Dimension::Session, &acme);
    assert!(rows.is_empty(), "{rows:?}");
    assert_eq!(notes.len(), 1);
    assert!(notes[0].contains("breakdowns by session cannot be narrowed"), "{notes:?}");
    // Told which sessions are acme's, it lists those, and never globex's.
    let told = acme.clone().with_sessions(|s| s == "A");
    let (rows, notes) = cats(Dimension::Session, &told);
    // With a `(none)` row of acme's calls without a session: the rows add up to its 4 calls (they were in no row).
    assert_eq!(rows, [("A".to_owned(), 2), ("(none)".to_owned(), 2)]);
    assert!(notes[0].contains("sessions the caller attributes to the filters"), "{notes:?}");
    // A caller that attributes globex's session G too: its rows hold calls acme has not, and no `(none)` row is
    // made of a difference cut at zero (it would have read 0 calls of acme's 2 without a session).
    let (rows, notes) = cats(Dimension::Session, &acme.clone().with_sessions(|s| s == "A" || s == "G"));
    assert_eq!(rows, [("G".to_owned(), 2), ("A".to_owned(), 2)]);
    assert!(notes[0].contains("holds calls the filters leave out"), "{notes:?}");

    // A project filter narrows sessions exactly (the ledger keeps project > session pairs).
    let (rows, notes) = cats(Dimension::Session, &ReportFilter::new().filter(Dimension::Project, "p1"));
    assert_eq!(rows, [("G".to_owned(), 2), ("A".to_owned(), 2)]);
    assert!(notes.is_empty());

    // Filters the ledger cannot combine are an error, as in queries.
    let bad = ReportFilter::tenant("acme").filter(Dimension::Session, "A");
    assert!(matches!(
        rig.ledger.efficiency_report_for(Window::Last24Hours, Dimension::Model, &bad),
        Err(QueryError::Unsupported(_))
    ));
    assert!(matches!(rig.ledger.cache_report_for(Window::Last24Hours, &bad), Err(QueryError::Unsupported(_))));
}

#[test]
fn tenant_cache_report_counts_that_tenants_calls_only() {
    let rig = workload();
    let r = rig.ledger.cache_report_for(Window::Last24Hours, &ReportFilter::tenant("acme")).unwrap();
    let m = &r.cache_metrics;
    assert_eq!((m.total_cache_hits, m.total_cache_misses), (1, 3));
    assert_eq!(m.tokens_saved, 8_000);
    close(m.cost_saved, usd(8_000 * (3_000_000 - 300_000)));
    close(m.hit_rate, 8_000.0 / 24_100.0);
    close(m.call_hit_rate, 0.25);
    assert_eq!(m.cache_creation_tokens, 0);
    assert_eq!((m.reusable_tokens, m.reused_tokens), (8_100, 8_000));
    // globex's unread write is globex's.
    assert_eq!((r.unread_cache_writes.writes, r.unread_cache_writes.tokens), (0, 0));
    // The 12:00 hour holds all of it.
    assert_eq!(r.grain, tokenmeter::ledger::TimeGrain::Hour);
    assert_eq!(r.time_series.len(), 24);
    let noon: Vec<_> = r.time_series.iter().filter(|p| p.tokens_saved > 0).collect();
    assert_eq!(noon.len(), 1);
    assert_eq!(noon[0].timestamp, t0());
    close(noon[0].hit_rate, 8_000.0 / 24_100.0);
    assert_eq!(r.scope.as_ref().unwrap().unattributed_calls, 0);

    let g = rig.ledger.cache_report_for(Window::Last24Hours, &ReportFilter::tenant("globex")).unwrap();
    assert_eq!((g.cache_metrics.total_cache_hits, g.cache_metrics.total_cache_misses), (0, 2));
    assert_eq!(g.cache_metrics.cache_creation_tokens, 8_000);
    assert_eq!((g.unread_cache_writes.writes, g.unread_cache_writes.tokens), (1, 8_000));
    close(g.unread_cache_writes.wasted_usd, usd(8_000 * (3_750_000 - 3_000_000)));

    let all = rig.ledger.cache_report(Window::Last24Hours).unwrap();
    assert_eq!(all.cache_metrics.total_cache_hits + all.cache_metrics.total_cache_misses, 6);
    assert!(all.scope.is_none());
    assert_eq!(rig.ledger.cache_report_for(Window::Last24Hours, &ReportFilter::new()).unwrap(), all);
}

#[test]
fn a_filtered_cache_series_over_old_data_takes_a_coarser_grain_and_says_so() {
    let rig = workload();
    // Three days later the 12:00 hour is a day bucket: a 48-hour window reaching back to it is by day.
    rig.clock.advance(chrono::Duration::days(3));
    let from = t0() - chrono::Duration::hours(12);
    let w = Window::range(from, from + chrono::Duration::hours(48));
    let r = rig.ledger.cache_report_for(w, &ReportFilter::tenant("acme")).unwrap();
    assert_eq!(r.grain, tokenmeter::ledger::TimeGrain::Day);
    assert_eq!(r.cache_metrics.tokens_saved, 8_000);
    assert_eq!(r.time_series.iter().map(|p| p.tokens_saved).sum::<u64>(), 8_000);
    let notes = &r.scope.unwrap().notes;
    assert!(notes[0].starts_with("time_series is by day, not hour"), "{notes:?}");
}

#[test]
fn calls_folded_past_the_series_cap_are_reported_as_unattributed() {
    let rig = Rig::new(t0() + mins(30));
    // 64 series fill the minute bucket's cap; acme's call then folds into the per-model overflow series,
    // where its tenant is `(other)`.
    for i in 0..64 {
        rig.add(Call::new(t0(), SONNET).io(100, 10).tenant("big").agent(&format!("agent-{i}")));
    }
    rig.add(Call::new(t0(), SONNET).io(100, 10).tenant("acme").agent("new"));
    let r = rig.ledger.efficiency_report_for(Window::Last24Hours, Dimension::Model, &ReportFilter::tenant("acme"));
    let r = r.unwrap();
    assert_eq!(r.calls, 0);
    assert_eq!(r.scope.unwrap().unattributed_calls, 1);
    let c = rig.ledger.cache_report_for(Window::Last24Hours, &ReportFilter::tenant("big")).unwrap();
    assert_eq!(c.cache_metrics.total_cache_misses, 64);
    assert_eq!(c.scope.unwrap().unattributed_calls, 1);
    // An Opus call folds into Opus's overflow series: it may be acme's, but it is not Sonnet's, so a report
    // of acme's Sonnet calls does not count it as possibly theirs.
    rig.add(Call::new(t0(), OPUS).io(100, 10).tenant("other-co").agent("new"));
    let acme = ReportFilter::tenant("acme");
    let r = rig.ledger.efficiency_report_for(Window::Last24Hours, Dimension::Model, &acme).unwrap();
    assert_eq!(r.scope.unwrap().unattributed_calls, 2);
    let acme_sonnet = ReportFilter::tenant("acme").filter(Dimension::Model, SONNET);
    let r = rig.ledger.efficiency_report_for(Window::Last24Hours, Dimension::Model, &acme_sonnet).unwrap();
    assert_eq!(r.scope.unwrap().unattributed_calls, 1);
}

#[test]
fn a_filtered_query_counts_the_calls_it_may_have_left_out() {
    let rig = Rig::new(t0() + mins(30));
    for i in 0..64 {
        rig.add(Call::new(t0(), SONNET).io(100, 10).tenant("big").agent(&format!("agent-{i}")));
    }
    rig.add(Call::new(t0(), SONNET).io(100, 10).tenant("acme").agent("new"));
    let q = Query::new(Window::Last24Hours).filter(Dimension::Tenant, "acme");
    let r = rig.ledger.query(&q).unwrap();
    assert_eq!((r.totals.calls, r.unattributed_calls), (0, Some(1)));
    let by_hour = rig.ledger.query(&q.clone().group_by(GroupBy::Time(TimeGrain::Hour))).unwrap();
    assert_eq!(by_hour.unattributed_calls, Some(1));
    assert_eq!(serde_json::to_value(&r).unwrap()["unattributed_calls"], 1);
    // Without filters nothing can be left out: the field is absent.
    let all = rig.ledger.query(&Query::new(Window::Last24Hours)).unwrap();
    assert_eq!((all.totals.calls, all.unattributed_calls), (65, None));
    assert!(serde_json::to_value(&all).unwrap().get("unattributed_calls").is_none());
}

#[test]
fn reports_narrowed_to_a_tool_are_refused() {
    // A tool's sums count its executions, with no tokens or cost: the reports read 40 "calls", a score of 100,
    // $0 a call and 40 cache misses.
    let rig = workload();
    for _ in 0..4 {
        rig.ledger.ingest_tool(&tool(t0(), "search", false));
    }
    let search = ReportFilter::new().filter(Dimension::Tool, "search");
    for err in [
        rig.ledger.efficiency_report_for(Window::Last24Hours, Dimension::Model, &search).map(|_| ()),
        rig.ledger.cache_report_for(Window::Last24Hours, &search).map(|_| ()),
        rig.ledger.compare_values(Window::Last24Hours, Dimension::Tool, "search", "fetch").map(|_| ()),
    ] {
        let err = err.expect_err("a tool has no tokens to report on");
        assert!(matches!(err, QueryError::Unsupported(_)), "{err:?}");
        assert!(err.to_string().contains("tool executions carry no tokens"), "{err}");
    }
}

#[test]
fn a_right_sizing_suggestion_for_one_session_names_no_empty_model_list() {
    // A session filter cannot be grouped by model: the text read "went to a premium model () and cost".
    let rig = Rig::new(t0() + mins(30));
    rig.add(Call::new(t0(), OPUS).io(1_000, 100).session("S"));
    let s = ReportFilter::new().filter(Dimension::Session, "S");
    let r = rig.ledger.efficiency_report_for(Window::Last24Hours, Dimension::Model, &s).unwrap();
    let right = r.optimization_suggestions.iter().find(|x| x.kind == SuggestionType::ModelRightSizing);
    let right = right.expect("a small call on a premium model");
    assert!(right.description.contains("went to a premium model and cost"), "{}", right.description);
    // Grouped by model, the model is named.
    let r = rig.ledger.efficiency_report(Window::Last24Hours, Dimension::Model).unwrap();
    let right = r.optimization_suggestions.iter().find(|x| x.kind == SuggestionType::ModelRightSizing).unwrap();
    assert!(right.description.contains(&format!("premium model ({OPUS})")), "{}", right.description);
}
