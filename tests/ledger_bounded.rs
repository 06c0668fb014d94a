//! Cardinality caps with overflow entries, and memory that stays bounded whatever the number of calls.

use crate::ledger_common;

use std::sync::Arc;

use chrono::Duration;
use ledger_common::*;
use tokenmeter::ledger::{Dimension, GroupBy, LedgerConfig, Query, Window};

const SONNET: &str = "claude-sonnet-4-5";

#[test]
fn sessions_past_the_cap_share_one_overflow_entry() {
    let rig = Rig::new(t0() + mins(1));
    for i in 0..300 {
        rig.add(Call::new(t0(), SONNET).io(100, 10).session(&format!("s-{i:03}")));
    }
    let r = rig.ledger.query(&Query::new(Window::LastHour).group_by(GroupBy::Dimension(Dimension::Session))).unwrap();
    // A minute bucket keeps 64 sessions; the other 236 share "(other)".
    assert_eq!(r.groups.len(), 65);
    let other = r.groups.iter().find(|g| g.key == "(other)").unwrap();
    assert_eq!(other.calls, 236);
    assert_eq!(r.groups.iter().map(|g| g.calls).sum::<u64>(), 300);
    assert_eq!(r.totals.calls, 300);
    assert!(rig.ledger.stats().overflowed >= 236);
}

#[test]
fn compound_overflow_keeps_per_model_figures_exact() {
    let rig = Rig::new(t0() + mins(1));
    for i in 0..400 {
        let model = if i % 4 == 0 { "claude-opus-4-5" } else { SONNET };
        rig.add(Call::new(t0(), model).io(100, 10).agent(&format!("agent-{i:03}")));
    }
    let by_agent =
        rig.ledger.query(&Query::new(Window::LastHour).group_by(GroupBy::Dimension(Dimension::Agent))).unwrap();
    // 64 agents keep their series; past the cap, one overflow series per model.
    assert_eq!(by_agent.groups.len(), 65);
    assert_eq!(by_agent.groups.iter().find(|g| g.key == "(other)").unwrap().calls, 336);
    let by_model =
        rig.ledger.query(&Query::new(Window::LastHour).group_by(GroupBy::Dimension(Dimension::Model))).unwrap();
    let rows: Vec<(&str, u64)> = by_model.groups.iter().map(|g| (g.key.as_str(), g.calls)).collect();
    assert_eq!(rows, [(SONNET, 300), ("claude-opus-4-5", 100)]);
    // Filtering on a model past the cap is exact too.
    let opus = rig.ledger.query(&Query::new(Window::LastHour).filter(Dimension::Model, "claude-opus-4-5")).unwrap();
    assert_eq!(opus.totals.calls, 100);
}

/// The series and the (project, session) pairs fold differently past their caps: a project's session rows
/// (from the pairs) added up to more than its total (from the series), with a cost share over 100%.
#[test]
fn a_projects_session_rows_never_add_up_to_more_than_its_total() {
    let rig = Rig::new(t0() + mins(1));
    // 64 series of project q fill the minute bucket's series cap; p's call then folds into the overflow
    // series (project `(other)`), while its (p, s1) pair keeps the project.
    for i in 0..64 {
        rig.add(Call::new(t0(), SONNET).io(100, 10).project("q").agent(&format!("agent-{i:03}")));
    }
    rig.add(Call::new(t0(), SONNET).io(100, 10).project("p").session("s1").agent("new"));
    let q =
        Query::new(Window::LastHour).filter(Dimension::Project, "p").group_by(GroupBy::Dimension(Dimension::Session));
    let r = rig.ledger.query(&q).unwrap();
    let rows: Vec<(&str, u64)> = r.groups.iter().map(|g| (g.key.as_str(), g.calls)).collect();
    assert_eq!(rows, [("s1", 1)]);
    assert_eq!(r.totals.calls, 1);
    assert!(r.groups.iter().all(|g| g.cost_share <= 1.0 + 1e-9), "{:?}", r.groups);
    let e = rig.ledger.efficiency_report_for(
        Window::LastHour,
        Dimension::Session,
        &tokenmeter::analysis::ReportFilter::new().filter(Dimension::Project, "p"),
    );
    let e = e.unwrap();
    assert_eq!(e.calls, 1);
}

/// One session's projects come from the pairs, its total from the session map; a day bucket keeps 447
/// sessions but 383 pairs, so a session whose pair folded had calls in its total and no project row.
#[test]
fn a_sessions_project_rows_add_up_to_its_total() {
    let start = t0() - Duration::days(3);
    let rig = Rig::new(t0());
    // One call a minute, each its own session and pair: 384 pairs in one day bucket, one past its cap.
    for i in 0..384 {
        let session = if i == 383 { "late".to_owned() } else { format!("s-{i:03}") };
        rig.add(Call::new(start + mins(i), SONNET).io(100, 10).project("p").session(&session));
    }
    let q = Query::new(Window::Last7Days)
        .filter(Dimension::Session, "late")
        .group_by(GroupBy::Dimension(Dimension::Project));
    let r = rig.ledger.query(&q).unwrap();
    assert_eq!(r.totals.calls, 1);
    assert_eq!(r.groups.iter().map(|g| g.calls).sum::<u64>(), 1, "{:?}", r.groups);
}

#[test]
fn tools_past_the_cap_overflow() {
    let rig = Rig::new(t0() + mins(1));
    for i in 0..100 {
        rig.ledger.ingest_tool(&tool(t0(), &format!("tool-{i}"), false));
    }
    let r = rig.ledger.query(&Query::new(Window::LastHour).group_by(GroupBy::Dimension(Dimension::Tool))).unwrap();
    assert_eq!(r.groups.len(), 33);
    assert_eq!(r.groups.iter().map(|g| g.calls).sum::<u64>(), 100);
}

/// 1M calls over 100k sessions (10 turns each, with cache writes), 5,000 users, 30 days, fed in time order
/// with the clock following.
fn million_calls(rig: &Rig) {
    let start = t0() - Duration::days(30);
    let sessions: Vec<Arc<str>> = (0..100_000).map(|i| Arc::from(format!("session-{i:06}"))).collect();
    let users: Vec<Arc<str>> = (0..5_000).map(|i| Arc::from(format!("user-{i}"))).collect();
    let agents: Vec<Arc<str>> = (0..10).map(|i| Arc::from(format!("agent-{i}"))).collect();
    let projects: Vec<Arc<str>> = (0..50).map(|i| Arc::from(format!("project-{i}"))).collect();
    let models = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-5"];
    let base = Call::new(start, SONNET).0;
    for i in 0..1_000_000u64 {
        let ts = start + Duration::milliseconds((i * 2_592) as i64);
        let mut c = base.clone();
        c.timestamp = ts;
        c.model = Some(Arc::from(models[(i % 3) as usize]));
        let turn = i % 10;
        c.tokens.input = 200 + turn * 50;
        c.tokens.cache_read = if turn > 0 { 2_000 + turn * 300 } else { 0 };
        c.tokens.cache_write_5m = 300;
        c.tokens.output = 300;
        let d = &mut c.dimensions;
        d.session = Some(sessions[(i / 10) as usize].clone());
        d.user = Some(users[(i / 10 % 5_000) as usize].clone());
        d.agent = Some(agents[(i % 10) as usize].clone());
        d.project = Some(projects[(i / 10 % 50) as usize].clone());
        rig.clock.set(ts);
        rig.ledger.ingest_call(&c);
    }
}

#[test]
fn memory_stays_bounded_after_a_million_calls() {
    let rig = Rig::new(t0() - Duration::days(30));
    million_calls(&rig);
    let stats = rig.ledger.stats();
    println!("{stats:#?}");
    assert!(stats.series.total <= stats.series_limit, "{} > {}", stats.series.total, stats.series_limit);
    // Far below the worst case in practice: the caps bind per bucket.
    assert!(stats.series.sessions <= 122 * 65 + 50 * 257 + 37 * 513 + 17 * 513);
    assert!(stats.buckets.minute <= 122 && stats.buckets.hour <= 50 && stats.buckets.day <= 37);
    assert!(stats.tracked_sessions <= stats.max_tracked_sessions);
    assert!(stats.hourly_points <= 35 * 24 + 2);
    assert!(stats.overflowed > 0, "100k sessions must overflow the session caps");
    let all = rig.ledger.usage_summary(Window::All).unwrap();
    assert_eq!(all.calls, 1_000_000);
    let by_session =
        rig.ledger.query(&Query::new(Window::All).group_by(GroupBy::Dimension(Dimension::Session))).unwrap();
    assert_eq!(by_session.groups.iter().map(|g| g.calls).sum::<u64>(), 1_000_000);
    // Ten more days of nothing: aged buckets are merged, nothing grows.
    rig.clock.advance(Duration::days(10));
    let later = rig.ledger.stats();
    assert!(later.series.total <= stats.series.total);
    assert_eq!(rig.ledger.usage_summary(Window::All).unwrap().calls, 1_000_000);
}

#[test]
fn future_timestamps_cannot_grow_the_store() {
    let rig = Rig::new(t0());
    for i in 0..5_000 {
        rig.add(Call::new(t0() + Duration::minutes(10 + i * 97), SONNET).io(10, 1));
    }
    let stats = rig.ledger.stats();
    assert!(stats.buckets.minute <= 2, "{stats:?}");
    assert!(stats.hourly_points <= 1 && stats.daily_points <= 1, "{stats:?}");
    assert_eq!(rig.ledger.usage_summary(Window::LastHour).unwrap().calls, 5_000);
}

#[test]
fn no_cap_on_tracked_sessions_reads_as_the_largest_count() {
    // `usize::MAX` overflowed the capacity's product: `stats()` panicked in debug builds.
    let rig = Rig::with(t0(), LedgerConfig::default().with_max_tracked_sessions(usize::MAX));
    rig.add(Call::new(t0(), "claude-haiku-4-5").io(10, 1));
    assert_eq!(rig.ledger.stats().max_tracked_sessions, usize::MAX);
}

#[test]
fn a_session_past_every_pair_cap_stays_with_its_project() {
    // One minute bucket: 64 (project, session) pairs and 64 `(project, (other))` slots. A session of project `z`
    // past both was folded to `((other), (other))`, losing its project: read back as `z`'s call without a
    // session (its series less its pairs), and counted twice in the project > session tree.
    let rig = Rig::new(t0() + mins(1));
    rig.add(Call::new(t0(), SONNET).io(100, 10).project("z"));
    for i in 0..64 {
        rig.add(Call::new(t0(), SONNET).io(100, 10).project("a").session(&format!("a-{i}")));
    }
    for i in 0..64 {
        rig.add(Call::new(t0(), SONNET).io(100, 10).project(&format!("p{i}")).session(&format!("p{i}-s")));
    }
    rig.add(Call::new(t0(), SONNET).io(100, 10).project("z").session("z-1"));
    let q =
        Query::new(Window::LastHour).filter(Dimension::Project, "z").group_by(GroupBy::Dimension(Dimension::Session));
    let r = rig.ledger.query(&q).unwrap();
    let rows: Vec<(&str, u64)> = r.groups.iter().map(|g| (g.key.as_str(), g.calls)).collect();
    assert!(rows.contains(&("(none)", 1)) && rows.contains(&("(other)", 1)), "{rows:?}");
    let tree = rig.ledger.breakdown_tree(Window::LastHour, Dimension::Project, Dimension::Session).unwrap();
    let nodes: u64 = tree.nodes.iter().map(|n| n.calls).sum();
    assert_eq!((nodes, tree.calls), (130, 130));
}

#[test]
fn an_aged_hour_keeps_every_session_with_its_project() {
    // 150 projects of 4 sessions in one hour, every series kept (150 of 256). The minutes merge into the hour
    // bucket once 2 hours old: past its 256 pairs and 64 `(project, (other))` slots, the merge folded the rest
    // to `((other), (other))` (a merge did not keep past the reserve), read back as their projects' calls
    // without a session, and counted twice in the project > session tree.
    let rig = Rig::new(t0() + Duration::hours(1));
    for p in 0..150 {
        for s in 0..4 {
            let call = Call::new(t0() + mins(p % 60), SONNET).io(100, 10);
            rig.add(call.project(&format!("p{p:03}")).session(&format!("p{p:03}-s{s}")));
        }
    }
    rig.clock.set(t0() + Duration::hours(3));
    rig.add(Call::new(t0() + Duration::hours(3), SONNET).io(100, 10));
    let window = Window::range(t0(), t0() + Duration::hours(1));
    let tree = rig.ledger.breakdown_tree(window, Dimension::Project, Dimension::Session).unwrap();
    let nodes: u64 = tree.nodes.iter().map(|n| n.calls).sum();
    assert_eq!((nodes, tree.calls), (600, 600));
    for p in (0..150).map(|i| format!("p{i:03}")) {
        let p = p.as_str();
        let q = Query::new(window).filter(Dimension::Project, p).group_by(GroupBy::Dimension(Dimension::Session));
        let rows: Vec<(String, u64)> =
            rig.ledger.query(&q).unwrap().groups.into_iter().map(|g| (g.key, g.calls)).collect();
        assert!(rows.iter().all(|(k, _)| k != "(none)"), "{p}: {rows:?}");
        assert_eq!(rows.iter().map(|(_, n)| n).sum::<u64>(), 4, "{p}: {rows:?}");
    }
}

/// A task named per run (`researcher-run-17`) makes a series of every run. Past the cap, the series folded into
/// the per-model overflow series, losing the agent and project with the task: by agent, 68 of 100 calls read
/// `(other)` and one agent was missing altogether. Now a series past the cap folds its task alone first.
#[test]
fn per_run_task_names_past_the_cap_keep_the_agents_and_projects() {
    let rig = Rig::new(t0() + mins(1));
    for agent in ["researcher", "writer"] {
        for i in 0..50 {
            let run = format!("{agent}-run-{i}");
            rig.add(Call::new(t0(), SONNET).io(100, 10).project("p").agent(agent).task(&run));
            let mut record = task(t0(), &run, 110, micros(450), false);
            record.dimensions.agent = Some(Arc::from(agent));
            record.dimensions.project = Some(Arc::from("p"));
            rig.ledger.ingest_task(&record);
        }
    }
    let by = |d: Dimension| {
        let r = rig.ledger.query(&Query::new(Window::LastHour).group_by(GroupBy::Dimension(d))).unwrap();
        r.groups.iter().map(|g| (g.key.clone(), g.calls)).collect::<Vec<_>>()
    };
    assert_eq!(by(Dimension::Agent), [("researcher".to_owned(), 50), ("writer".to_owned(), 50)]);
    assert_eq!(by(Dimension::Project), [("p".to_owned(), 100)]);
    let researcher = rig.ledger.query(&Query::new(Window::LastHour).filter(Dimension::Agent, "researcher")).unwrap();
    assert_eq!((researcher.totals.calls, researcher.unattributed_calls), (50, Some(0)));
    // The tasks themselves past the cap are `(other)`, and a filter on one of them says how many may be its.
    let by_task = by(Dimension::Task);
    assert_eq!(by_task.iter().map(|(_, n)| n).sum::<u64>(), 100);
    assert!(by_task.iter().any(|(k, n)| k == "(other)" && *n > 0), "{by_task:?}");
    let folded = rig.ledger.query(&Query::new(Window::LastHour).filter(Dimension::Task, "writer-run-49")).unwrap();
    assert!(folded.unattributed_calls.unwrap_or(0) > 0, "{folded:?}");

    // Aged into hour buckets (merged): still exact by agent.
    let rig = Rig::new(t0());
    for i in 0..400i64 {
        let agent = if i % 2 == 0 { "researcher" } else { "writer" };
        let ts = t0() + Duration::seconds(i * 18); // 400 runs over 2 hours, 3 or 4 a minute
        rig.add(Call::new(ts, SONNET).io(100, 10).agent(agent).task(&format!("{agent}-run-{i}")));
    }
    rig.clock.set(t0() + Duration::hours(5));
    let r = rig.ledger.query(&Query::new(Window::Last24Hours).group_by(GroupBy::Dimension(Dimension::Agent))).unwrap();
    let rows: Vec<(&str, u64)> = r.groups.iter().map(|g| (g.key.as_str(), g.calls)).collect();
    assert_eq!(rows, [("researcher", 200), ("writer", 200)]);
}

/// A retention forgets whole buckets once they end before it: the month tier kept 400 days and the archive
/// everything older, for the life of the process, whatever the journal kept (a compliance review found a user's
/// calls in the ledger 200 days after a journal with a 30-day `max_age` had deleted them).
#[test]
fn a_retention_forgets_what_is_older() {
    let keep = std::time::Duration::from_secs(30 * 86_400);
    let rig = Rig::with(t0(), LedgerConfig::default().with_retention(Some(keep)));
    let kept = Rig::new(t0());
    for r in [&rig, &kept] {
        r.add(Call::new(t0(), SONNET).io(100, 10).user("alice").session("s-alice"));
        // Read while alice's call is recent: the store holds it, and has seen records since then.
        assert_eq!(r.ledger.query(&Query::new(Window::All)).unwrap().window.from, t0());
        r.clock.set(t0() + Duration::days(200));
        r.add(Call::new(t0() + Duration::days(200), SONNET).io(100, 10).user("bob").session("s-bob"));
    }
    let users = |r: &Rig, w: Window| {
        let q = r.ledger.query(&Query::new(w).group_by(GroupBy::Dimension(Dimension::User))).unwrap();
        q.groups.iter().map(|g| (g.key.clone(), g.calls)).collect::<Vec<_>>()
    };
    assert_eq!(users(&rig, Window::All), [("bob".to_owned(), 1)]);
    assert_eq!(users(&kept, Window::All), [("alice".to_owned(), 1), ("bob".to_owned(), 1)], "no retention: kept");
    let alice = rig.ledger.query(&Query::new(Window::All).filter(Dimension::Session, "s-alice")).unwrap();
    assert_eq!(alice.totals.calls, 0);
    // The daily totals forget too (the long daily series of a summary), and all time begins with what is kept.
    let summary = rig.ledger.usage_summary(Window::All).unwrap();
    assert_eq!(summary.calls, 1);
    let all = rig.ledger.query(&Query::new(Window::All)).unwrap();
    assert!(all.window.from > t0() + Duration::days(150), "{:?}", all.window);
    assert_eq!(summary.time_series.points.iter().map(|p| p.calls).sum::<u64>(), 1);

    // Past the month tier (400 days), aged data goes to the archive bucket, which a retention forgets whole.
    let rig = Rig::with(t0(), LedgerConfig::default().with_retention(Some(keep)));
    rig.add(Call::new(t0(), SONNET).io(100, 10).user("alice"));
    rig.clock.set(t0() + Duration::days(500));
    rig.add(Call::new(t0() + Duration::days(500), SONNET).io(100, 10).user("bob"));
    assert_eq!(users(&rig, Window::All), [("bob".to_owned(), 1)]);

    // Within the retention nothing is forgotten, whatever tier holds it.
    let rig = Rig::with(t0(), LedgerConfig::default().with_retention(Some(keep)));
    rig.add(Call::new(t0(), SONNET).io(100, 10).user("alice"));
    rig.clock.set(t0() + Duration::days(29));
    assert_eq!(users(&rig, Window::All), [("alice".to_owned(), 1)]);
}
