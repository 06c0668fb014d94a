//! Window edges, aging across tiers, time-zone day boundaries, and invalid queries as error values.

use crate::ledger_common;

use chrono::{Datelike, Duration, Timelike};
use ledger_common::*;
use tokenmeter::LedgerConfig;
use tokenmeter::ledger::{Dimension, Filter, GroupBy, Query, QueryError, TimeGrain, Window};

const SONNET: &str = "claude-sonnet-4-5";

fn calls(rig: &Rig, w: Window) -> u64 {
    rig.ledger.query(&Query::new(w)).unwrap().totals.calls
}

#[test]
fn last_hour_is_the_current_minute_and_the_59_before() {
    let now = at(2026, 3, 14, 10, 30, 30);
    let rig = Rig::new(now);
    rig.add(Call::new(at(2026, 3, 14, 9, 30, 59), SONNET).io(1, 1)); // 9:30 minute: out
    rig.add(Call::new(at(2026, 3, 14, 9, 31, 0), SONNET).io(1, 1)); // 9:31 minute: in
    rig.add(Call::new(at(2026, 3, 14, 10, 30, 29), SONNET).io(1, 1)); // current minute: in
    assert_eq!(calls(&rig, Window::LastHour), 2);
    let w = rig.ledger.query(&Query::new(Window::LastHour)).unwrap().window;
    assert_eq!((w.from, w.to), (at(2026, 3, 14, 9, 31, 0), at(2026, 3, 14, 10, 31, 0)));
}

#[test]
fn rolling_windows_align_to_hours_and_days() {
    let now = at(2026, 3, 14, 10, 30, 0);
    let rig = Rig::new(now);
    // 24h: the current hour and the 23 before it, from 2026-03-13 11:00.
    rig.add(Call::new(at(2026, 3, 13, 10, 59, 59), SONNET).io(1, 1));
    rig.add(Call::new(at(2026, 3, 13, 11, 0, 0), SONNET).io(1, 1));
    // 6h: from 05:00.
    rig.add(Call::new(at(2026, 3, 14, 4, 59, 0), SONNET).io(1, 1));
    rig.add(Call::new(at(2026, 3, 14, 5, 0, 0), SONNET).io(1, 1));
    // 7d: today and the 6 days before, from 2026-03-08 00:00.
    rig.add(Call::new(at(2026, 3, 7, 23, 59, 0), SONNET).io(1, 1));
    rig.add(Call::new(at(2026, 3, 8, 0, 0, 0), SONNET).io(1, 1));
    // 30d: from 2026-02-13 00:00.
    rig.add(Call::new(at(2026, 2, 12, 23, 0, 0), SONNET).io(1, 1));
    rig.add(Call::new(at(2026, 2, 13, 0, 0, 0), SONNET).io(1, 1));
    assert_eq!(calls(&rig, Window::Last6Hours), 1);
    assert_eq!(calls(&rig, Window::Last24Hours), 3);
    assert_eq!(calls(&rig, Window::Last7Days), 5);
    assert_eq!(calls(&rig, Window::Last30Days), 7);
    assert_eq!(calls(&rig, Window::All), 8);
}

#[test]
fn range_is_half_open() {
    let rig = Rig::new(at(2026, 3, 14, 12, 0, 0));
    let from = at(2026, 3, 14, 11, 0, 0);
    let to = at(2026, 3, 14, 11, 10, 0);
    rig.add(Call::new(from, SONNET).io(1, 1));
    rig.add(Call::new(to - Duration::seconds(1), SONNET).io(1, 1));
    rig.add(Call::new(to, SONNET).io(1, 1));
    assert_eq!(calls(&rig, Window::range(from, to)), 2);
    let parsed: Window = format!("{}..{}", from.to_rfc3339(), to.to_rfc3339()).parse().unwrap();
    assert_eq!(parsed, Window::range(from, to));
}

#[test]
fn aging_keeps_totals_and_coarsens_buckets() {
    let start = at(2026, 1, 1, 0, 0, 0);
    let rig = Rig::new(start);
    for i in 0..600 {
        rig.add(Call::new(start + mins(i), SONNET).io(100, 10).session(&format!("s{}", i % 7)).agent("a"));
    }
    let before = rig.ledger.usage_summary(Window::All).unwrap();
    assert_eq!(before.calls, 600);
    // Step through every tier: minutes age into hours after 2h, days after 48h, months after 35 days, the
    // archive after 400 days.
    for step in [Duration::hours(3), Duration::hours(50), Duration::days(40), Duration::days(420)] {
        rig.clock.advance(step);
        let s = rig.ledger.usage_summary(Window::All).unwrap();
        assert_eq!((s.calls, s.cost_picos, s.tokens), (600, before.cost_picos, before.tokens), "after {step}");
        let by_session =
            rig.ledger.query(&Query::new(Window::All).group_by(GroupBy::Dimension(Dimension::Session))).unwrap();
        assert_eq!(by_session.groups.len(), 7);
        assert_eq!(by_session.groups.iter().map(|g| g.calls).sum::<u64>(), 600);
    }
    let stats = rig.ledger.stats();
    assert_eq!(
        (stats.buckets.minute, stats.buckets.hour, stats.buckets.day, stats.buckets.month, stats.buckets.archive),
        (0, 0, 0, 0, 1)
    );
}

#[test]
fn days_follow_the_configured_zone() {
    let tz = chrono_tz::America::New_York;
    let rig = Rig::with(at(2026, 3, 20, 12, 0, 0), LedgerConfig::default().with_time_zone(tz));
    // 03:30 UTC on the 14th is 23:30 on the 13th in New York; 04:30 UTC is 00:30 on the 14th.
    rig.add(Call::new(at(2026, 3, 14, 3, 30, 0), SONNET).io(100, 0));
    rig.add(Call::new(at(2026, 3, 14, 4, 30, 0), SONNET).io(200, 0));
    rig.add(Call::new(at(2026, 3, 14, 5, 30, 0), SONNET).io(400, 0));
    let q = Query::new(Window::Last7Days).group_by(GroupBy::Time(TimeGrain::Day));
    let r = rig.ledger.query(&q).unwrap();
    // The window starts at local midnight of March 14 (04:00 UTC): the 23:30 call is out.
    assert_eq!(r.window.from, at(2026, 3, 14, 4, 0, 0));
    // Keyed at the zone's offset: the same instant, its local date readable.
    assert_eq!(r.groups[0].key, "2026-03-14T00:00:00-04:00");
    assert_eq!(chrono::DateTime::parse_from_rfc3339(&r.groups[0].key).unwrap(), at(2026, 3, 14, 4, 0, 0));
    assert_eq!(r.groups[0].tokens.input, 600);
    assert_eq!(r.groups.len(), 7);
    let q = Query::new(Window::Last30Days).filter(Dimension::Model, SONNET).group_by(GroupBy::Time(TimeGrain::Day));
    let r = rig.ledger.query(&q).unwrap();
    let mar13 = r.groups.iter().find(|g| g.key == "2026-03-13T00:00:00-04:00").unwrap();
    assert_eq!(mar13.tokens.input, 100);

    // The same calls in UTC all fall on March 14.
    let utc = Rig::new(at(2026, 3, 20, 12, 0, 0));
    utc.add(Call::new(at(2026, 3, 14, 3, 30, 0), SONNET).io(100, 0));
    utc.add(Call::new(at(2026, 3, 14, 4, 30, 0), SONNET).io(200, 0));
    let r = utc.ledger.query(&Query::new(Window::Last7Days).group_by(GroupBy::Time(TimeGrain::Day))).unwrap();
    assert_eq!(r.groups[0].key, at(2026, 3, 14, 0, 0, 0).to_rfc3339());
    assert_eq!(r.groups[0].tokens.input, 300);
}

#[test]
fn weeks_start_on_monday_and_months_on_the_first() {
    let rig = Rig::new(at(2026, 3, 20, 12, 0, 0));
    rig.add(Call::new(at(2026, 3, 15, 12, 0, 0), SONNET).io(1, 0)); // Sunday
    rig.add(Call::new(at(2026, 3, 16, 12, 0, 0), SONNET).io(2, 0)); // Monday
    rig.add(Call::new(at(2026, 2, 28, 12, 0, 0), SONNET).io(4, 0));
    let r = rig.ledger.query(&Query::new(Window::Last30Days).group_by(GroupBy::Time(TimeGrain::Week))).unwrap();
    let week = |d: u32| r.groups.iter().find(|g| g.key == at(2026, 3, d, 0, 0, 0).to_rfc3339()).unwrap().tokens.input;
    assert_eq!((week(9), week(16)), (1, 2));
    let r = rig.ledger.query(&Query::new(Window::Last30Days).group_by(GroupBy::Time(TimeGrain::Month))).unwrap();
    let inputs: Vec<u64> = r.groups.iter().map(|g| g.tokens.input).collect();
    assert_eq!(inputs, [4, 3]);
}

#[test]
fn weeks_start_on_the_configured_day_at_local_midnight_across_a_dst_change() {
    // US weeks in New York, around the spring change (2026-03-08, a Sunday: 23 hours).
    let ny = chrono_tz::America::New_York;
    let config = LedgerConfig::default().with_time_zone(ny).with_week_start(chrono::Weekday::Sun);
    let rig = Rig::with(at(2026, 3, 20, 12, 0, 0), config);
    rig.add(Call::new(at(2026, 3, 8, 4, 59, 0), SONNET).io(1, 0)); // Saturday 23:59 in New York (EST)
    rig.add(Call::new(at(2026, 3, 8, 5, 0, 0), SONNET).io(2, 0)); // Sunday 00:00 EST: the new week's first minute
    rig.add(Call::new(at(2026, 3, 15, 3, 59, 0), SONNET).io(4, 0)); // Saturday 23:59 EDT
    rig.add(Call::new(at(2026, 3, 15, 4, 0, 0), SONNET).io(8, 0)); // Sunday 00:00 EDT
    let r = rig.ledger.query(&Query::new(Window::Last30Days).group_by(GroupBy::Time(TimeGrain::Week))).unwrap();
    let rows: Vec<(&str, u64)> =
        r.groups.iter().filter(|g| g.tokens.input > 0).map(|g| (g.key.as_str(), g.tokens.input)).collect();
    assert_eq!(
        rows,
        [("2026-03-01T00:00:00-05:00", 1), ("2026-03-08T00:00:00-05:00", 6), ("2026-03-15T00:00:00-04:00", 8)]
    );
    // Every row starts on a Sunday at local midnight, and each is 7 local days (the one over the change 167 hours).
    for g in &r.groups {
        let start = chrono::DateTime::parse_from_rfc3339(&g.key).unwrap().with_timezone(&ny);
        assert_eq!((start.weekday(), start.hour(), start.minute()), (chrono::Weekday::Sun, 0, 0), "{}", g.key);
    }
    // The default stays ISO weeks: the same calls by Monday weeks.
    let rig = Rig::with(at(2026, 3, 20, 12, 0, 0), LedgerConfig::default().with_time_zone(ny));
    for (ts, n) in [(at(2026, 3, 8, 5, 0, 0), 2), (at(2026, 3, 9, 4, 0, 0), 8)] {
        rig.add(Call::new(ts, SONNET).io(n, 0));
    }
    let r = rig.ledger.query(&Query::new(Window::Last30Days).group_by(GroupBy::Time(TimeGrain::Week))).unwrap();
    let rows: Vec<(&str, u64)> =
        r.groups.iter().filter(|g| g.tokens.input > 0).map(|g| (g.key.as_str(), g.tokens.input)).collect();
    assert_eq!(rows, [("2026-03-02T00:00:00-05:00", 2), ("2026-03-09T00:00:00-04:00", 8)]);
}

#[test]
fn invalid_queries_are_errors() {
    let rig = Rig::new(t0());
    let from = t0();
    let err = rig.ledger.query(&Query::new(Window::range(from, from - Duration::hours(1)))).unwrap_err();
    assert!(matches!(err, QueryError::InvalidWindow { .. }), "{err}");
    assert!(err.to_string().contains("earlier"), "{err}");
    assert!(matches!(rig.ledger.query(&Query::new(Window::range(from, from))), Err(QueryError::InvalidWindow { .. })));
    assert!(matches!("2d".parse::<Window>(), Err(QueryError::UnknownWindow(_))));
    assert!(matches!("colour".parse::<GroupBy>(), Err(QueryError::UnknownGroupBy(_))));
    assert!(matches!("colour".parse::<Dimension>(), Err(QueryError::UnknownDimension(_))));
    assert!(matches!("model".parse::<Filter>(), Err(QueryError::InvalidArgument { .. })));
    let q = Query::new(Window::All).filter(Dimension::Agent, "a").filter(Dimension::Agent, "b");
    assert_eq!(rig.ledger.query(&q).unwrap_err(), QueryError::DuplicateFilter(Dimension::Agent));
    let q = Query::new(Window::All).filter(Dimension::Session, "s").filter(Dimension::Agent, "a");
    assert!(matches!(rig.ledger.query(&q), Err(QueryError::Unsupported(_))));
    let q = Query::new(Window::All).filter(Dimension::Agent, "a").group_by(GroupBy::Dimension(Dimension::User));
    assert!(matches!(rig.ledger.query(&q), Err(QueryError::Unsupported(_))));
    assert!(matches!(rig.ledger.forecast(0, None), Err(QueryError::InvalidArgument { name: "days", .. })));
    assert!(matches!(rig.ledger.forecast(7, Some(f64::NAN)), Err(QueryError::InvalidArgument { .. })));
    // An anomaly rule no report can apply is refused when the meter is built: every `anomalies()` failed later,
    // and trailing days outside 1-365 were clamped without a word.
    for (rule, field) in [
        (tokenmeter::ledger::AnomalyRule { cost_factor: f64::NAN, ..Default::default() }, "cost_factor"),
        (tokenmeter::ledger::AnomalyRule { trailing_days: 0, ..Default::default() }, "trailing_days"),
        (tokenmeter::ledger::AnomalyRule { trailing_days: 400, ..Default::default() }, "trailing_days"),
    ] {
        let config = LedgerConfig::default().with_anomaly_rule(rule);
        let err = tokenmeter::TokenMeter::builder().with_ledger_config(config).try_build().unwrap_err();
        assert!(matches!(err, tokenmeter::BuildError::AnomalyRule { field: f, .. } if f == field), "{err:?}");
    }
    assert!(rig.ledger.efficiency_report(Window::All, Dimension::Tool).is_err());
    // Filtered series keep hours for 48 hours: ten days ago is a day bucket. Unfiltered hourly totals are kept
    // 35 days: a 60-day hourly series cannot be answered either way.
    let long = Window::range(t0() - Duration::days(60), t0());
    let q = Query::new(long).filter(Dimension::Agent, "a").group_by(GroupBy::Time(TimeGrain::Hour));
    rig.add(Call::new(t0() - Duration::days(10), SONNET).io(1, 1).agent("a"));
    assert!(matches!(rig.ledger.query(&q), Err(QueryError::ResolutionUnavailable { .. })));
    let q = Query::new(long).group_by(GroupBy::Time(TimeGrain::Hour));
    assert!(matches!(rig.ledger.query(&q), Err(QueryError::ResolutionUnavailable { .. })));
}

#[test]
fn records_arriving_late_land_in_the_right_tier() {
    let rig = Rig::new(at(2026, 3, 14, 12, 0, 0));
    // Replayed from disk: one call five days ago and one a year ago.
    rig.add(Call::new(at(2026, 3, 9, 9, 0, 0), SONNET).io(10, 0));
    rig.add(Call::new(at(2025, 1, 7, 9, 0, 0), SONNET).io(20, 0));
    rig.add(Call::new(at(2026, 3, 14, 11, 59, 0), SONNET).io(40, 0));
    let s = rig.ledger.stats();
    assert_eq!((s.buckets.minute, s.buckets.day, s.buckets.archive), (1, 1, 1));
    assert_eq!(rig.ledger.usage_summary(Window::Last7Days).unwrap().tokens.input, 50);
    assert_eq!(rig.ledger.usage_summary(Window::All).unwrap().tokens.input, 70);
    // Over everything, the daily rows (from the daily totals, as the archive fits no grain) hold the
    // archived call's day too: the window starts at that day's start, not at the call's minute.
    let all = rig.ledger.query(&Query::new(Window::All).group_by(GroupBy::Time(TimeGrain::Day))).unwrap();
    assert_eq!(all.window.from, at(2025, 1, 7, 0, 0, 0));
    assert_eq!(all.groups.iter().map(|g| g.tokens.input).sum::<u64>(), 70);
    assert_eq!(all.groups[0].tokens.input, 20);
    let s = rig.ledger.usage_summary(Window::All).unwrap();
    assert_eq!(s.time_series.points.iter().map(|p| p.calls).sum::<u64>(), 3);
}

#[test]
fn reports_over_a_range_say_the_span_their_figures_cover() {
    // Five days old: a day bucket. The efficiency report, the breakdown tree and a comparison of two values over
    // a range starting at 09:05 that day echoed 09:05 while counting only the buckets that start in it (none);
    // they widen the range to its buckets' edges, as the summary and the cache report do, and count the day.
    let rig = Rig::new(at(2026, 3, 14, 12, 0, 0));
    rig.add(Call::new(at(2026, 3, 9, 9, 0, 0), SONNET).io(1, 1).project("a"));
    rig.add(Call::new(at(2026, 3, 9, 10, 0, 0), SONNET).io(1, 1).project("b"));
    let w = Window::range(at(2026, 3, 9, 9, 5, 0), at(2026, 3, 10, 0, 0, 0));
    let day = (at(2026, 3, 9, 0, 0, 0), at(2026, 3, 10, 0, 0, 0));
    let e = rig.ledger.efficiency_report(w, Dimension::Project).unwrap();
    assert_eq!(((e.window.from, e.window.to), e.calls), (day, 2));
    let t = rig.ledger.breakdown_tree(w, Dimension::Project, Dimension::Model).unwrap();
    assert_eq!(((t.window.from, t.window.to), t.calls), (day, 2));
    let c = rig.ledger.compare_values(w, Dimension::Project, "a", "b").unwrap();
    assert_eq!(((c.a.window.from, c.a.window.to), c.a.calls, c.b.calls), (day, 1, 1));
}

#[test]
fn covering_widens_a_range_to_the_bucket_its_start_falls_in() {
    let now = at(2026, 3, 14, 12, 0, 0);
    let rig = Rig::new(now);
    // Five days old: a day bucket (00:00 UTC). A range from 09:05 that day takes no bucket that starts in it
    // before the next day; `covering` says which span a report sees whole.
    rig.add(Call::new(at(2026, 3, 9, 9, 0, 0), SONNET).io(1, 1));
    rig.add(Call::new(at(2026, 3, 9, 10, 0, 0), SONNET).io(1, 1));
    let (from, to) = (at(2026, 3, 9, 9, 5, 0), at(2026, 3, 10, 0, 0, 0));
    assert_eq!(calls(&rig, Window::range(from, to)), 0, "the day bucket starts before the range");
    let wide = rig.ledger.covering(Window::range(from, to)).unwrap();
    assert_eq!((wide.from, wide.to), (at(2026, 3, 9, 0, 0, 0), to));
    assert_eq!(calls(&rig, Window::range(wide.from, wide.to)), 2);
    // Within two hours: minute buckets, so only the seconds go.
    let recent = Window::range(at(2026, 3, 14, 11, 30, 20), now);
    assert_eq!(rig.ledger.covering(recent).unwrap().from, at(2026, 3, 14, 11, 30, 0));
    assert!(rig.ledger.covering(Window::range(to, from)).is_err());
}

#[test]
fn an_hourly_series_inside_a_day_bucket_reads_the_hourly_totals_or_is_refused() {
    // Three days old: a day bucket. A range inside that day, grouped by hour, had no bucket starting in it, so
    // the check that every bucket fits the grain passed on none: 14 rows of zeros, where the hourly totals hold
    // both calls (and a filtered query, which cannot read them, answered zeros instead of saying so).
    let rig = Rig::new(at(2026, 3, 14, 12, 0, 0));
    rig.add(Call::new(at(2026, 3, 11, 12, 0, 0), SONNET).io(1, 1));
    rig.add(Call::new(at(2026, 3, 11, 15, 30, 0), SONNET).io(1, 1));
    let w = Window::range(at(2026, 3, 11, 10, 0, 0), at(2026, 3, 12, 0, 0, 0));
    let r = rig.ledger.query(&Query::new(w).group_by(GroupBy::Time(TimeGrain::Hour))).unwrap();
    assert_eq!(r.totals.calls, 2);
    let busy: Vec<&str> = r.groups.iter().filter(|g| g.calls > 0).map(|g| g.key.as_str()).collect();
    assert_eq!(busy, ["2026-03-11T12:00:00+00:00", "2026-03-11T15:00:00+00:00"]);
    let filtered = Query::new(w).filter(Dimension::Model, SONNET).group_by(GroupBy::Time(TimeGrain::Hour));
    assert!(matches!(rig.ledger.query(&filtered), Err(QueryError::ResolutionUnavailable { .. })));
}

#[test]
fn rolling_hour_windows_align_across_a_half_hour_dst_change() {
    // Lord Howe turns its clocks back 30 minutes at 15:00 UTC on 2027-04-03 (02:00 +11 -> 01:30 +10:30). A
    // call every 10 minutes for two days, read at 01:10 UTC on the 4th: the 24h window is the current local
    // hour and the 23 before it (the 30-minute hour at the change counts as one), starting on an hour the
    // ledger keeps, so it holds exactly the calls stamped in it. It used to start at 01:30 UTC, inside the
    // 01:00 hour bucket, which it left out.
    let tz = chrono_tz::Australia::Lord_Howe;
    let now = at(2027, 4, 4, 1, 10, 0);
    let rig = Rig::with(at(2027, 4, 2, 0, 0, 0), LedgerConfig::default().with_time_zone(tz));
    let mut stamps = Vec::new();
    let mut t = at(2027, 4, 2, 0, 5, 0);
    while t <= now {
        rig.clock.set(t);
        rig.add(Call::new(t, SONNET).io(10, 1));
        stamps.push(t);
        t += Duration::minutes(10);
    }
    for (w, from, hours) in
        [(Window::Last24Hours, at(2027, 4, 3, 2, 0, 0), 24), (Window::Last6Hours, at(2027, 4, 3, 19, 30, 0), 6)]
    {
        let q = rig.ledger.query(&Query::new(w).group_by(GroupBy::Time(TimeGrain::Hour))).unwrap();
        assert_eq!(q.window.from, from, "{w}");
        let expected = stamps.iter().filter(|s| **s >= q.window.from && **s < q.window.to).count() as u64;
        assert_eq!(q.totals.calls, expected, "{w}");
        assert_eq!(q.groups.len(), hours, "{w}");
        assert_eq!(q.groups.iter().map(|g| g.calls).sum::<u64>(), expected, "{w}");
    }
    // The 30-minute hour at the change is its own row, keyed by its start.
    let q = rig.ledger.query(&Query::new(Window::Last24Hours).group_by(GroupBy::Time(TimeGrain::Hour))).unwrap();
    // 15:00 UTC, after the clocks went back to +10:30.
    let change = q.groups.iter().find(|g| g.key == "2027-04-04T01:30:00+10:30").unwrap();
    assert_eq!(change.calls, 3);
}

#[test]
fn a_none_session_or_user_filter_keeps_the_calls_without_one() {
    // Grouped by session, the calls without a session are a `(none)` row; filtering on that row's key used
    // to find nothing (the session map holds only calls that have a session). It keeps those calls, as a
    // `(none)` filter does for every other dimension.
    let now = at(2026, 3, 14, 10, 30, 0);
    let rig = Rig::new(now);
    rig.add(Call::new(now - mins(5), SONNET).io(100, 10).session("s1").user("u1"));
    rig.add(Call::new(now - mins(4), SONNET).io(200, 20));
    rig.add(Call::new(at(2026, 3, 12, 9, 0, 0), SONNET).io(300, 30).session("s2"));
    rig.add(Call::new(at(2026, 3, 12, 9, 5, 0), SONNET).io(400, 40).user("u2"));
    for (d, calls, tokens) in [(Dimension::Session, 2, 660), (Dimension::User, 2, 550)] {
        let grouped = rig.ledger.query(&Query::new(Window::Last7Days).group_by(GroupBy::Dimension(d))).unwrap();
        let none = grouped.groups.iter().find(|g| g.key == "(none)").unwrap();
        assert_eq!((none.calls, none.tokens.total), (calls, tokens), "{d}");
        let q = rig.ledger.query(&Query::new(Window::Last7Days).filter(d, "(none)")).unwrap();
        assert_eq!((q.totals.calls, q.totals.tokens.total), (calls, tokens), "{d}");
        let by_day = rig
            .ledger
            .query(&Query::new(Window::Last7Days).filter(d, "(none)").group_by(GroupBy::Time(TimeGrain::Day)))
            .unwrap();
        assert_eq!(by_day.groups.iter().map(|g| g.calls).sum::<u64>(), calls, "{d}");
    }
    let c = rig.ledger.compare_values(Window::Last7Days, Dimension::Session, "(none)", "s1").unwrap();
    assert_eq!((c.a.calls, c.b.calls), (2, 1));
}

#[test]
fn a_project_and_none_session_filter_keeps_the_projects_calls_without_a_session() {
    // The project > session tree lists a project's calls without a session as its `(none)` session; the
    // filter project=P, session=(none) found none of them.
    let now = at(2026, 3, 14, 10, 30, 0);
    let rig = Rig::new(now);
    rig.add(Call::new(now - mins(5), SONNET).io(100, 10).project("p").session("s1"));
    rig.add(Call::new(now - mins(4), SONNET).io(200, 20).project("p"));
    rig.add(Call::new(now - mins(3), SONNET).io(300, 30).project("q"));
    let q = Query::new(Window::Last24Hours).filter(Dimension::Project, "p").filter(Dimension::Session, "(none)");
    let r = rig.ledger.query(&q).unwrap();
    assert_eq!((r.totals.calls, r.totals.tokens.total), (1, 220));
    let tree = rig.ledger.breakdown_tree(Window::Last24Hours, Dimension::Project, Dimension::Session).unwrap();
    let p = tree.nodes.iter().find(|n| n.name == "p").unwrap();
    assert_eq!(p.children.iter().find(|c| c.name == "(none)").map(|c| c.calls), Some(r.totals.calls));
}

#[test]
fn an_unread_cache_write_of_absurd_size_does_not_overflow() {
    // Capture caps each count at 1e12; a record handed to the ledger directly is not capped.
    let rig = Rig::new(t0());
    rig.add(Call::new(t0(), "claude-sonnet-4-5").io(10, 10).cache(0, u64::MAX - 5).write_1h(10).session("s"));
    rig.clock.set(t0() + Duration::hours(2));
    let r = rig.ledger.query(&Query::new(Window::All)).unwrap();
    assert_eq!(r.totals.calls, 1);
}

#[test]
fn rows_by_time_add_up_to_the_total_where_the_buckets_are_coarser_than_the_grain() {
    // Days back, the calls sit in day buckets, and an hourly breakdown reads the hourly totals. The window
    // starts inside 03-11's day bucket: the total used to take whole buckets starting in the window (03-12's,
    // with a call after the window's end) while the rows had the hours of both days: 2 against 3.
    let rig = Rig::new(at(2026, 3, 14, 12, 0, 0));
    for t in [
        at(2026, 3, 11, 8, 0, 0), // before the window
        at(2026, 3, 11, 12, 0, 0),
        at(2026, 3, 11, 15, 30, 0),
        at(2026, 3, 12, 9, 0, 0),
        at(2026, 3, 12, 23, 0, 0), // after it
    ] {
        rig.add(Call::new(t, SONNET).io(1, 1));
    }
    let w = Window::range(at(2026, 3, 11, 10, 0, 0), at(2026, 3, 12, 22, 0, 0));
    let r = rig.ledger.query(&Query::new(w).group_by(GroupBy::Time(TimeGrain::Hour))).unwrap();
    assert_eq!(r.groups.len(), 36);
    assert_eq!(r.groups.iter().map(|g| g.calls).sum::<u64>(), 3);
    assert_eq!(r.totals.calls, 3, "{:?}", r.totals);
    let shares: f64 = r.groups.iter().map(|g| g.cost_share).sum();
    assert!((shares - 1.0).abs() < 1e-9, "{shares}");
}

#[test]
fn windows_at_the_edges_of_time_answer_without_panicking() {
    // At chrono's first instant a zone west of UTC has no local time: making one panicked.
    let tz = chrono_tz::America::New_York;
    let rig = Rig::with(at(2026, 3, 20, 12, 0, 0), LedgerConfig::default().with_time_zone(tz));
    rig.add(Call::new(at(2026, 3, 20, 11, 0, 0), SONNET).io(1, 1));
    let all_time = Window::range(chrono::DateTime::<chrono::Utc>::MIN_UTC, at(2026, 3, 21, 0, 0, 0));
    assert_eq!(rig.ledger.query(&Query::new(all_time)).unwrap().totals.calls, 1);
    assert!(rig.ledger.covering(all_time).is_ok());
    // The reports that take the day or hour a window starts inside whole: that day's start, read at the
    // clamped edge, lay past the window's end.
    let first_hour = chrono::DateTime::<chrono::Utc>::MIN_UTC;
    let edge = Window::range(first_hour, first_hour + Duration::hours(1));
    assert!(rig.ledger.anomalies(edge).unwrap().anomalies.is_empty());
    assert_eq!(rig.ledger.time_of_day(edge).unwrap().hours.iter().map(|h| h.calls).sum::<u64>(), 0);
    assert_eq!(rig.ledger.anomalies(all_time).unwrap().anomalies.len(), 0);
    // Rows by day from the year -262143: more than a series holds, refused (the rows kept used to be the
    // oldest 100,000, all empty, without the call).
    let by_day = rig.ledger.query(&Query::new(all_time).group_by(GroupBy::Time(TimeGrain::Day)));
    assert!(matches!(by_day, Err(QueryError::Unsupported(ref m)) if m.contains("more than 100000")), "{by_day:?}");
    // Ten years of days is fine, and holds the call.
    let ten_years = Window::range(at(2016, 3, 21, 0, 0, 0), at(2026, 3, 21, 0, 0, 0));
    let r = rig.ledger.query(&Query::new(ten_years).group_by(GroupBy::Time(TimeGrain::Month))).unwrap();
    assert_eq!(r.groups.iter().map(|g| g.calls).sum::<u64>(), 1);
}

#[test]
fn a_bound_in_a_tiers_newest_bucket_widens_to_where_the_next_tier_begins() {
    // A call at noon every day since January 1; the clock reads March 10, 12:00. Day buckets begin on
    // February 4 (the first day starting within 35 days), hour buckets at 12:00 on March 8 (48 hours): the
    // February month bucket holds February 1..3 only, the March 8 day bucket the hours before noon only.
    let rig = Rig::new(at(2026, 3, 10, 12, 0, 0));
    let mut t = at(2026, 1, 1, 12, 0, 0);
    while t < at(2026, 3, 10, 12, 0, 0) {
        rig.add(Call::new(t, SONNET).io(100, 10));
        t += Duration::days(1);
    }
    let aligned = |from, to| match rig.ledger.aligned(Window::range(from, to)).unwrap() {
        Window::Range { from, to } => (from, to),
        w => panic!("{w:?}"),
    };
    // The end falls in the February bucket: its edge is February 4, not March 1 (26 days not asked for).
    let (from, to) = aligned(at(2026, 1, 15, 0, 0, 0), at(2026, 2, 3, 0, 0, 0));
    assert_eq!((from, to), (at(2026, 1, 1, 0, 0, 0), at(2026, 2, 4, 0, 0, 0)));
    assert_eq!(calls(&rig, Window::range(from, to)), 34);
    // The end falls in March 8's day bucket, which ends where the hour buckets begin.
    let (from, to) = aligned(at(2026, 3, 8, 0, 0, 0), at(2026, 3, 8, 6, 0, 0));
    assert_eq!((from, to), (at(2026, 3, 8, 0, 0, 0), at(2026, 3, 8, 12, 0, 0)));
    assert_eq!(calls(&rig, Window::range(from, to)), 0);
    // At 12:30 the minute buckets begin at 10:30: the 10:00 hour bucket ends there.
    rig.clock.advance(Duration::minutes(30));
    let (_, to) = aligned(at(2026, 3, 10, 9, 0, 0), at(2026, 3, 10, 10, 10, 0));
    assert_eq!(to, at(2026, 3, 10, 10, 30, 0));
}

#[test]
fn a_bound_late_in_the_minute_two_hours_back_is_in_the_hour_bucket() {
    // At 12:20:30 the minute buckets begin at 10:21: the call at 10:20:45 is in the 10:00 hour bucket. A window
    // from 10:20:40 was aligned to a 10:20 minute bucket that does not exist, and counted nothing.
    let rig = Rig::new(at(2026, 3, 14, 12, 20, 30));
    rig.add(Call::new(at(2026, 3, 14, 10, 20, 45), SONNET).io(100, 10));
    let w = rig.ledger.aligned(Window::range(at(2026, 3, 14, 10, 20, 40), at(2026, 3, 14, 11, 0, 0))).unwrap();
    let Window::Range { from, .. } = w else { panic!("{w:?}") };
    assert_eq!(from, at(2026, 3, 14, 10, 0, 0));
    assert_eq!(calls(&rig, w), 1);
}

#[test]
fn time_of_day_starts_at_the_first_hour_its_totals_still_hold() {
    // Forty days of one call an hour at :10; at 00:20 the hourly totals begin with the hour after 35 days back
    // (01:00), whose calls the report counts: it said it began an hour earlier, at an hour already dropped.
    let now = at(2026, 3, 14, 0, 20, 0);
    let rig = Rig::new(now);
    let mut t = now - Duration::days(40) - mins(10);
    let mut since_01 = 0;
    while t < now {
        rig.add(Call::new(t, SONNET).io(100, 10));
        since_01 += u64::from(t >= at(2026, 2, 7, 1, 0, 0));
        t += Duration::hours(1);
    }
    let r = rig.ledger.time_of_day(Window::All).unwrap();
    assert_eq!(r.window.from, at(2026, 2, 7, 1, 0, 0));
    assert_eq!(r.hours.iter().map(|h| h.calls).sum::<u64>(), since_01);
    assert_eq!(since_01, 840);
}

#[test]
fn rows_by_time_from_the_totals_stop_at_the_windows_end() {
    // A window from days back (day buckets: the rows come from the hourly totals) to 14:10 today, inside the
    // minute buckets: the 14:00 row took the whole hour's total, 14:30's call too, which the window's total
    // (the buckets starting before 14:10) leaves out.
    let rig = Rig::new(at(2026, 3, 14, 15, 0, 0));
    for t in
        [at(2026, 1, 20, 9, 0, 0), at(2026, 3, 11, 12, 0, 0), at(2026, 3, 14, 14, 5, 0), at(2026, 3, 14, 14, 30, 0)]
    {
        rig.add(Call::new(t, SONNET).io(1, 1));
    }
    let w = Window::range(at(2026, 3, 11, 0, 0, 0), at(2026, 3, 14, 14, 10, 0));
    assert_eq!(rig.ledger.query(&Query::new(w)).unwrap().totals.calls, 2);
    for grain in [TimeGrain::Hour, TimeGrain::Day] {
        let r = rig.ledger.query(&Query::new(w).group_by(GroupBy::Time(grain))).unwrap();
        assert_eq!(r.groups.iter().map(|g| g.calls).sum::<u64>(), 2, "{grain:?}: {:?}", r.groups);
        assert_eq!(r.totals.calls, 2, "{grain:?}");
    }
    // A summary from January (a month bucket: its daily rows come from the daily totals) to 12:00 today, an hour
    // bucket's start: today's row held the 14:05 and 14:30 calls.
    let summary = rig.ledger.usage_summary(Window::range(at(2026, 1, 1, 0, 0, 0), at(2026, 3, 14, 12, 0, 0))).unwrap();
    let points: u64 = summary.time_series.points.iter().map(|p| p.calls).sum();
    assert_eq!((summary.calls, points), (2, 2), "{:?}", summary.time_series.points);
}

#[test]
fn a_none_row_is_sorted_with_the_others() {
    // Most of the spend has no session: the `(none)` row, added after the rows were sorted, came last though
    // it cost the most (rows are by cost, then calls).
    let now = at(2026, 3, 14, 10, 30, 0);
    let rig = Rig::new(now);
    rig.add(Call::new(now - mins(5), SONNET).io(100, 10).session("s1"));
    rig.add(Call::new(now - mins(4), SONNET).io(10_000, 1_000));
    rig.add(Call::new(now - mins(3), SONNET).io(200, 20).session("s2"));
    let r =
        rig.ledger.query(&Query::new(Window::Last24Hours).group_by(GroupBy::Dimension(Dimension::Session))).unwrap();
    let keys: Vec<&str> = r.groups.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys, ["(none)", "s2", "s1"]);
}

#[test]
fn rows_by_the_hour_never_take_a_whole_day_bucket_into_one_row() {
    // A window to 00:30 of a day in the day buckets: its 00:00 row read the buckets starting before 00:30, that
    // day's bucket whole, the 12:00 call with it.
    let rig = Rig::new(at(2026, 3, 14, 12, 0, 0));
    for t in [at(2026, 3, 10, 9, 0, 0), at(2026, 3, 11, 0, 10, 0), at(2026, 3, 11, 12, 0, 0)] {
        rig.add(Call::new(t, SONNET).io(1, 1));
    }
    let w = Window::range(at(2026, 3, 10, 0, 0, 0), at(2026, 3, 11, 0, 30, 0));
    let r = rig.ledger.query(&Query::new(w).group_by(GroupBy::Time(TimeGrain::Hour))).unwrap();
    let midnight = r.groups.iter().find(|g| g.key == "2026-03-11T00:00:00+00:00").unwrap();
    assert_eq!(midnight.calls, 1, "{:?}", r.groups);
    assert_eq!(r.groups.iter().map(|g| g.calls).sum::<u64>(), 2, "{:?}", r.groups);
}

#[test]
fn series_from_the_totals_to_the_end_of_time_answer_without_panicking() {
    // A guard for the totals path, which reads the bucket holding the window's end: an all-time window's end is
    // near chrono's last instant, where a zone east or west of UTC has no local time (it is read only for the hour
    // or day holding the end, one with data).
    for tz in [chrono_tz::America::New_York, chrono_tz::Asia::Tokyo] {
        let rig = Rig::with(at(2026, 3, 20, 12, 0, 0), LedgerConfig::default().with_time_zone(tz));
        rig.add(Call::new(at(2025, 6, 1, 9, 0, 0), SONNET).io(1, 1));
        rig.add(Call::new(at(2026, 3, 20, 11, 0, 0), SONNET).io(1, 1));
        let end_of_time = chrono::DateTime::<chrono::Utc>::MAX_UTC;
        for w in [Window::All, Window::range(at(2025, 1, 1, 0, 0, 0), end_of_time)] {
            for grain in [TimeGrain::Day, TimeGrain::Week, TimeGrain::Month] {
                if let Ok(r) = rig.ledger.query(&Query::new(w).group_by(GroupBy::Time(grain))) {
                    assert_eq!(r.groups.iter().map(|g| g.calls).sum::<u64>(), 2, "{tz} {grain:?}");
                }
            }
        }
    }
}

#[test]
fn an_unfiltered_range_inside_an_old_bucket_is_counted_from_the_daily_totals() {
    // Past 400 days the archive is one bucket starting at its oldest day: `query` over a month of it read 0
    // calls (the bucket does not start in the range), with nothing to say so. Inside a month bucket, likewise.
    let rig = Rig::new(at(2025, 2, 21, 0, 0, 0));
    rig.add(Call::new(at(2025, 1, 5, 9, 0, 0), SONNET).io(1, 0));
    rig.add(Call::new(at(2025, 2, 10, 9, 0, 0), SONNET).io(10, 0));
    rig.add(Call::new(at(2025, 2, 20, 9, 0, 0), SONNET).io(100, 0));
    let input = |from, to| rig.ledger.query(&Query::new(Window::range(from, to))).unwrap().totals.tokens.input;
    rig.clock.advance(Duration::days(60));
    assert_eq!(rig.ledger.stats().buckets.month, 2);
    assert_eq!(input(at(2025, 2, 15, 0, 0, 0), at(2025, 2, 25, 0, 0, 0)), 100, "inside the February bucket");
    rig.clock.advance(Duration::days(400));
    assert_eq!(rig.ledger.stats().buckets.archive, 1);
    assert_eq!(input(at(2025, 2, 1, 0, 0, 0), at(2025, 3, 1, 0, 0, 0)), 110, "February, in the archive");
    assert_eq!(input(at(2025, 1, 1, 0, 0, 0), at(2025, 2, 15, 0, 0, 0)), 11);
    // Filtered, the buckets are all there is: the archive counts whole when it starts in the range.
    let q =
        Query::new(Window::range(at(2025, 2, 1, 0, 0, 0), at(2025, 3, 1, 0, 0, 0))).filter(Dimension::Model, SONNET);
    assert_eq!(rig.ledger.query(&q).unwrap().totals.tokens.input, 0);
    // A window reaching back past the daily totals' 10 years, with nothing that old: still the daily totals.
    let (from, to) = (at(2000, 1, 1, 0, 0, 0), at(2025, 2, 15, 0, 0, 0));
    assert_eq!(input(from, to), 11);
    // With calls that old, the buckets: those days read as empty in the daily totals.
    rig.add(Call::new(at(2014, 1, 5, 9, 0, 0), SONNET).io(1_000, 0));
    let (from, to) = (at(2013, 1, 1, 0, 0, 0), at(2025, 1, 10, 0, 0, 0));
    let by_model = Query::new(Window::range(from, to)).group_by(GroupBy::Dimension(Dimension::Model));
    let buckets = rig.ledger.query(&by_model).unwrap().totals.tokens.input;
    assert_eq!((input(from, to), buckets), (1_111, 1_111), "the archive, whole");
}

#[test]
fn a_partitions_rows_add_up_to_its_total_in_picos() {
    // $0.10 on the 13th and $0.20 on the 14th (haiku-4-5 output at $5 / Mtok): the rows' `cost_usd` floats add up
    // to 0.30000000000000004, not the total's 0.3; their `cost_picos` add up to the total's exactly.
    let rig = Rig::new(at(2026, 3, 15, 12, 0, 0));
    rig.add(Call::new(at(2026, 3, 13, 12, 0, 0), "claude-haiku-4-5").io(0, 20_000));
    rig.add(Call::new(at(2026, 3, 14, 12, 0, 0), "claude-haiku-4-5").io(0, 40_000));
    let r = rig.ledger.query(&Query::new(Window::Last7Days).group_by(GroupBy::Time(TimeGrain::Day))).unwrap();
    let picos: u128 = r.groups.iter().map(|g| g.cost_picos.picos()).sum();
    assert_eq!(picos, r.totals.cost_picos.picos());
    assert_eq!(r.totals.cost_picos.picos(), 300_000_000_000);
    assert_eq!(r.totals.cost_usd, 0.3);
    assert_ne!(r.groups.iter().map(|g| g.cost_usd).sum::<f64>(), 0.3, "the floats were expected not to add up");
    let day = r.groups.iter().find(|g| g.key == "2026-03-14T00:00:00+00:00").unwrap();
    let json = serde_json::to_value(day).unwrap();
    assert_eq!((json["cost_picos"].as_u64(), json["cost_usd"].as_f64()), (Some(200_000_000_000), Some(0.2)), "{json}");
}
