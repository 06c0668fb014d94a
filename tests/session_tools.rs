//! Tool executions attributed to sessions: the ledger's (session, tool) pairs, queried as tool rows of a
//! session and session rows of a tool, bounded with a per-session overflow entry.

use crate::ledger_common;

use chrono::Duration;
use ledger_common::*;
use tokenmeter::ledger::{Dimension, GroupBy, Query, QueryError, Window};
use tokenmeter::record::ToolRecord;

fn in_session(mut r: ToolRecord, session: &str) -> ToolRecord {
    r.dimensions.session = Some(session.into());
    r
}

fn rows(rig: &Rig, filter: (Dimension, &str), by: Dimension) -> Vec<(String, u64, u64)> {
    let q = Query::new(Window::All).filter(filter.0, filter.1).group_by(GroupBy::Dimension(by));
    let r = rig.ledger.query(&q).unwrap();
    let mut rows: Vec<(String, u64, u64)> = r.groups.into_iter().map(|g| (g.key, g.calls, g.failed_calls)).collect();
    rows.sort();
    rows
}

#[test]
fn tools_are_counted_per_session() {
    let rig = Rig::new(t0() + mins(30));
    let l = &rig.ledger;
    l.ingest_tool(&in_session(tool(t0(), "grep", false), "A"));
    l.ingest_tool(&in_session(tool(t0() + mins(1), "grep", true), "A"));
    l.ingest_tool(&in_session(tool(t0() + mins(2), "read_file", false), "A"));
    l.ingest_tool(&in_session(tool(t0() + mins(3), "grep", false), "B"));
    // Outside any session: counted by tool, not by session.
    l.ingest_tool(&tool(t0() + mins(4), "grep", false));

    assert_eq!(
        rows(&rig, (Dimension::Session, "A"), Dimension::Tool),
        [("grep".to_owned(), 2, 1), ("read_file".to_owned(), 1, 0)]
    );
    assert_eq!(rows(&rig, (Dimension::Session, "B"), Dimension::Tool), [("grep".to_owned(), 1, 0)]);
    // The grep outside any session is the `(none)` row: the rows add up to grep's total.
    assert_eq!(
        rows(&rig, (Dimension::Tool, "grep"), Dimension::Session),
        [("(none)".to_owned(), 1, 0), ("A".to_owned(), 2, 1), ("B".to_owned(), 1, 0)]
    );
    assert!(rows(&rig, (Dimension::Session, "nobody"), Dimension::Tool).is_empty());
    // By tool alone, every execution: the session rows with `(none)` add up to it.
    assert_eq!(
        rows(&rig, (Dimension::Tool, "grep"), Dimension::Session).iter().map(|r| r.1).sum::<u64>(),
        l.query(&Query::new(Window::All).filter(Dimension::Tool, "grep")).unwrap().totals.calls
    );
    assert_eq!(l.stats().series.session_tools, 4);

    // Other shapes stay unsupported.
    let q = Query::new(Window::All).filter(Dimension::Tenant, "acme").group_by(GroupBy::Dimension(Dimension::Tool));
    assert!(matches!(l.query(&q), Err(QueryError::Unsupported(_))));
}

#[test]
fn session_tools_past_the_cap_fold_per_session() {
    let rig = Rig::new(t0() + mins(30));
    // A minute bucket keeps 64 (session, tool) pairs; 70 tools of session A in one minute.
    for i in 0..70 {
        rig.ledger.ingest_tool(&in_session(tool(t0(), &format!("tool-{i:02}"), false), "A"));
    }
    let r = rows(&rig, (Dimension::Session, "A"), Dimension::Tool);
    assert_eq!(r.len(), 65, "64 own rows and the session's (other)");
    assert_eq!(r.iter().map(|r| r.1).sum::<u64>(), 70, "the session's count stays exact");
    assert_eq!(r.iter().find(|r| r.0 == "(other)").map(|r| r.1), Some(6));
    let stats = rig.ledger.stats();
    assert!(stats.series.total <= stats.series_limit);
    assert!(stats.overflowed >= 6);

    // Aged into an hour bucket, the pairs are merged under the hour's larger cap, and still add up.
    rig.clock.advance(chrono::Duration::hours(3));
    let r = rows(&rig, (Dimension::Session, "A"), Dimension::Tool);
    assert_eq!(r.iter().map(|r| r.1).sum::<u64>(), 70);
}

#[test]
fn session_rows_of_a_tool_folded_in_the_tool_map_never_exceed_its_total() {
    // The tools map keeps 32 tools a minute, the (session, tool) pairs 64: session A's 40th tool of a minute was
    // `(other)` in the first and kept in the second. Grouped by session under a filter on that tool, the row read
    // 1 call against a total of 0.
    let rig = Rig::new(t0() + mins(30));
    for i in 0..40 {
        rig.ledger.ingest_tool(&in_session(tool(t0(), &format!("t{i:02}"), false), "A"));
    }
    let q = Query::new(Window::All).filter(Dimension::Tool, "t39").group_by(GroupBy::Dimension(Dimension::Session));
    let r = rig.ledger.query(&q).unwrap();
    let sum: u64 = r.groups.iter().map(|g| g.calls).sum();
    assert_eq!((r.totals.calls, sum), (1, 1), "{r:#?}");
    assert_eq!(r.groups[0].key, "A");
}

#[test]
fn an_aged_hour_keeps_every_sessions_tool_runs() {
    // One hour of 256 sessions, each with a call and 2 tool runs: 512 (session, tool) pairs past the hour's 256 and
    // its 64 `(session, (other))` slots. Past them the runs folded to `((other), (other))`: 64 sessions, each kept
    // in the hour's sessions, listed no tool runs (and while the room past the reserve was only for a session the
    // hour already kept, those whose runs came a minute before their calls).
    let rig = Rig::new(t0() + Duration::hours(1));
    for s in 0..256 {
        let at = t0() + mins(s % 59);
        let session = format!("s{s:03}");
        // The runs a minute before the session's call: the hour does not keep the session yet when they merge.
        for name in ["grep", "read"] {
            rig.ledger.ingest_tool(&in_session(tool(at, name, false), &session));
        }
        rig.add(Call::new(at + mins(1), "claude-sonnet-4-5").io(100, 10).session(&session));
    }
    rig.clock.set(t0() + Duration::hours(3));
    rig.add(Call::new(t0() + Duration::hours(3), "claude-sonnet-4-5").io(100, 10));
    let window = Window::range(t0(), t0() + Duration::hours(1));
    for s in 0..256 {
        let q = Query::new(window)
            .filter(Dimension::Session, format!("s{s:03}"))
            .group_by(GroupBy::Dimension(Dimension::Tool));
        let runs: u64 = rig.ledger.query(&q).unwrap().groups.iter().map(|g| g.calls).sum();
        assert_eq!(runs, 2, "session s{s:03}");
    }
}
