//! Budget periods: calendar periods roll over at local midnight in the budget's zone; rolling windows slide.

use crate::common;

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::Harness;
use parking_lot::Mutex;
use tokenmeter::Money;
use tokenmeter::budget::{AlertKind, Budget, BudgetAlert, BudgetAmount, BudgetLimit, BudgetPeriod, BudgetState, Tz};
use tracing::info_span;

fn spend(h: &Harness, micros: u64) {
    h.run(|| {
        let _call = info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = micros).entered();
    });
}

fn usd(micros: u128) -> BudgetAmount {
    BudgetAmount::Usd(Money::from_picos(micros * 1_000_000))
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn state<'a>(states: &'a [BudgetState], name: &str) -> &'a BudgetState {
    states.iter().find(|s| &*s.budget == name).unwrap()
}

type Alerts = Arc<Mutex<Vec<BudgetAlert>>>;

fn harness(budgets: Vec<Budget>) -> (Harness, Alerts) {
    let alerts: Alerts = Arc::default();
    let sink = alerts.clone();
    let h = Harness::with(move |mut b| {
        for budget in budgets {
            b = b.with_budget(budget);
        }
        b.with_budget_alert_callback(move |a| sink.lock().push(a.clone()))
    });
    (h, alerts)
}

fn fired_for(alerts: &Alerts, budget: &str) -> Vec<u32> {
    alerts
        .lock()
        .iter()
        .filter(|a| &*a.budget == budget)
        .filter_map(|a| match a.kind {
            AlertKind::ThresholdCrossed { percent } => Some(percent),
            _ => None,
        })
        .collect()
}

#[test]
fn month_rolls_over_at_local_midnight_in_new_york() {
    let ny: Tz = "America/New_York".parse().unwrap();
    let limit = BudgetLimit::usd(1.0).unwrap();
    let (h, alerts) = harness(vec![
        Budget::new("ny", limit).with_time_zone(ny).with_thresholds([50]),
        Budget::new("utc", limit).with_thresholds([50]),
    ]);

    // 23:30 on March 31 in New York is already 03:30 on April 1 in UTC.
    h.clock.set(utc("2026-04-01T03:30:00Z"));
    spend(&h, 600_000);
    let states = h.meter.budget_status();
    let ny_state = state(&states, "ny");
    // March 1 is still standard time (UTC-5); April 1 is daylight time (UTC-4).
    assert_eq!(ny_state.period_start, utc("2026-03-01T05:00:00Z"));
    assert_eq!(ny_state.resets_at, utc("2026-04-01T04:00:00Z"));
    assert_eq!(ny_state.spent, usd(600_000));
    assert_eq!(state(&states, "utc").period_start, utc("2026-04-01T00:00:00Z"));
    assert_eq!(fired_for(&alerts, "ny"), [50]);
    assert_eq!(fired_for(&alerts, "utc"), [50]);

    // 00:30 on April 1 in New York: a new month there, the same month in UTC.
    h.clock.set(utc("2026-04-01T04:30:00Z"));
    let states = h.meter.budget_status();
    let ny_state = state(&states, "ny");
    assert_eq!(ny_state.spent, usd(0));
    assert_eq!(ny_state.period_start, utc("2026-04-01T04:00:00Z"));
    assert_eq!(ny_state.resets_at, utc("2026-05-01T04:00:00Z"));
    assert!(ny_state.thresholds_crossed.is_empty());
    assert_eq!(state(&states, "utc").spent, usd(600_000), "UTC's April began four hours earlier");

    spend(&h, 600_000);
    assert_eq!(fired_for(&alerts, "ny"), [50, 50], "the new period fires its threshold again");
    assert_eq!(fired_for(&alerts, "utc"), [50], "still the same UTC month");
    assert_eq!(state(&h.meter.budget_status(), "utc").spent, usd(1_200_000));
}

#[test]
fn month_rolls_over_in_a_zone_ahead_of_utc() {
    let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
    let (h, _) = harness(vec![Budget::new("jp", BudgetLimit::usd(5.0).unwrap()).with_time_zone(tokyo)]);
    h.clock.set(utc("2026-04-30T14:59:00Z")); // 23:59 on April 30 in Tokyo
    spend(&h, 1_000_000);
    assert_eq!(h.meter.budget_status()[0].resets_at, utc("2026-04-30T15:00:00Z"));
    h.clock.set(utc("2026-04-30T15:00:00Z")); // midnight, May 1, in Tokyo; still April in UTC
    let s = &h.meter.budget_status()[0];
    assert_eq!((s.spent, s.period_start), (usd(0), utc("2026-04-30T15:00:00Z")));
    assert_eq!(s.resets_at, utc("2026-05-31T15:00:00Z"));
}

#[test]
fn a_call_counts_when_it_ends() {
    let (h, _) = harness(vec![Budget::new("d", BudgetLimit::usd(5.0).unwrap()).with_period(BudgetPeriod::Day)]);
    h.clock.set(utc("2026-03-14T23:59:30Z"));
    h.run(|| {
        let call = info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 1_000_000u64);
        h.clock.advance(Duration::minutes(1));
        drop(call);
    });
    let s = &h.meter.budget_status()[0];
    assert_eq!(s.period_start, utc("2026-03-15T00:00:00Z"));
    assert_eq!(s.spent, usd(1_000_000), "a call that ends after midnight counts in the new day");
}

#[test]
fn weeks_start_on_monday_in_the_budget_zone() {
    let berlin: Tz = "Europe/Berlin".parse().unwrap();
    let (h, _) = harness(vec![
        Budget::new("w", BudgetLimit::usd(5.0).unwrap()).with_period(BudgetPeriod::Week).with_time_zone(berlin),
    ]);
    // Saturday 2026-03-14.
    let s = &h.meter.budget_status()[0];
    assert_eq!(s.period_start, utc("2026-03-08T23:00:00Z"), "Monday 00:00 CET");
    assert_eq!(s.resets_at, utc("2026-03-15T23:00:00Z"));
    // Berlin moves to summer time on 2026-03-29: the week after starts at 22:00 UTC.
    h.clock.set(utc("2026-03-31T12:00:00Z"));
    assert_eq!(h.meter.budget_status()[0].period_start, utc("2026-03-29T22:00:00Z"));
}

#[test]
fn weeks_can_start_on_sunday() {
    let (h, _) = harness(vec![
        Budget::new("us", BudgetLimit::usd(5.0).unwrap())
            .with_period(BudgetPeriod::Week)
            .with_week_start(chrono::Weekday::Sun),
        Budget::new("iso", BudgetLimit::usd(5.0).unwrap()).with_period(BudgetPeriod::Week),
    ]);
    // Saturday 2026-03-14, late: both weeks hold the call.
    h.clock.set(utc("2026-03-14T23:00:00Z"));
    spend(&h, 1_000_000);
    let states = h.meter.budget_status();
    assert_eq!(state(&states, "us").period_start, utc("2026-03-08T00:00:00Z"));
    assert_eq!(state(&states, "us").resets_at, utc("2026-03-15T00:00:00Z"));
    // Sunday: the Sunday week starts again, the ISO week goes on.
    h.clock.set(utc("2026-03-15T01:00:00Z"));
    spend(&h, 500_000);
    let states = h.meter.budget_status();
    assert_eq!(state(&states, "us").spent, usd(500_000));
    assert_eq!(state(&states, "iso").spent, usd(1_500_000));
}

#[test]
fn a_call_that_ended_a_moment_earlier_does_not_rearm_an_alert_just_fired() {
    // Two threads: A's call ends at 10:01:00 (a new minute bucket) and crosses 50%; B's ended at 10:00:59 but is
    // accounted after A's. Re-arming at B's instant summed the window without A's bucket, found spend under
    // 50%, and cleared the alert: the next call fired it again.
    let (h, alerts) = harness(vec![
        Budget::new("hourly", BudgetLimit::usd(1.0).unwrap())
            .with_period(BudgetPeriod::Rolling(std::time::Duration::from_secs(3_600)))
            .with_thresholds([50]),
    ]);
    h.clock.set(utc("2026-03-14T10:00:00Z"));
    spend(&h, 300_000);
    h.clock.set(utc("2026-03-14T10:01:00Z"));
    spend(&h, 300_000);
    assert_eq!(fired_for(&alerts, "hourly"), [50]);
    h.clock.set(utc("2026-03-14T10:00:59Z"));
    spend(&h, 10_000);
    h.clock.set(utc("2026-03-14T10:02:00Z"));
    spend(&h, 10_000);
    assert_eq!(fired_for(&alerts, "hourly"), [50], "spend never fell under 50%");
}

#[test]
fn a_call_accounted_a_moment_late_leaves_the_newer_spend_in_its_own_bucket() {
    // The same race: B's call (10:00:59) accounted after A's (10:01:00). Within a bucket's width that is two
    // threads, not a clock that stepped back: A's spend stays in the 10:01 bucket. Moved back into B's (as a step
    // back would), it left the window a minute early.
    let (h, _) = harness(vec![
        Budget::new("hourly", BudgetLimit::usd(1.0).unwrap())
            .with_period(BudgetPeriod::Rolling(std::time::Duration::from_secs(3_600))),
    ]);
    h.clock.set(utc("2026-03-14T10:01:00Z"));
    spend(&h, 300_000);
    h.clock.set(utc("2026-03-14T10:00:59Z"));
    spend(&h, 10_000);
    h.clock.set(utc("2026-03-14T11:01:30Z"));
    assert_eq!(state(&h.meter.budget_status(), "hourly").spent, usd(300_000), "10:00's bucket has left, 10:01's not");
}

#[test]
fn a_status_read_between_a_call_and_its_accounting_does_not_rearm_its_alerts() {
    // A read at 11:01:00, after the 10:00 spend left the window, re-armed 50/75/90%; a call that ended at
    // 11:00:59 and was accounted after the read, read at its own end where the 10:00 spend was still in the window,
    // fired all three again at 96% (new ids: the window's start had moved).
    let (h, alerts) = harness(vec![
        Budget::new("hourly", BudgetLimit::usd(1.0).unwrap())
            .with_period(BudgetPeriod::Rolling(std::time::Duration::from_secs(3_600)))
            .with_thresholds([50, 75, 90]),
    ]);
    h.clock.set(utc("2026-03-14T10:00:00Z"));
    spend(&h, 950_000);
    assert_eq!(fired_for(&alerts, "hourly"), [50, 75, 90]);
    h.clock.set(utc("2026-03-14T11:01:00Z"));
    let s = &h.meter.budget_status()[0];
    assert_eq!((s.spent, s.thresholds_crossed.len()), (usd(0), 0), "the 10:00 spend left the window");
    h.clock.set(utc("2026-03-14T11:00:59Z"));
    spend(&h, 10_000);
    assert_eq!(fired_for(&alerts, "hourly"), [50, 75, 90], "no threshold was crossed again");
    // The next call, with the 10:00 spend gone, re-arms them; spend that reaches them again fires them again.
    h.clock.set(utc("2026-03-14T11:02:00Z"));
    spend(&h, 600_000);
    assert_eq!(fired_for(&alerts, "hourly"), [50, 75, 90, 50]);
}

#[test]
fn rolling_window_forgets_old_spend_and_rearms_thresholds() {
    let (h, alerts) = harness(vec![
        Budget::new("hourly", BudgetLimit::usd(1.0).unwrap())
            .with_period(BudgetPeriod::Rolling(std::time::Duration::from_secs(3_600)))
            .with_thresholds([50]),
    ]);
    let start = Utc.with_ymd_and_hms(2026, 3, 14, 10, 0, 0).unwrap();
    h.clock.set(start);
    spend(&h, 400_000);
    h.clock.set(start + Duration::minutes(30));
    spend(&h, 200_000);
    assert_eq!(fired_for(&alerts, "hourly"), [50]);
    let s = &h.meter.budget_status()[0];
    assert_eq!(s.spent, usd(600_000));
    // When the oldest spend leaves the window: a window is the minute-wide bucket holding now and the 60 before
    // it, so a call counts for at least the hour (here, at the start of its minute, for 61 minutes).
    assert_eq!(s.resets_at, start + Duration::minutes(61), "when the oldest spend leaves the window");
    h.clock.set(start + Duration::minutes(60) + Duration::seconds(59));
    assert_eq!(h.meter.budget_status()[0].spent, usd(600_000), "an hour later the 10:00 call still counts");

    h.clock.set(start + Duration::minutes(61));
    let s = &h.meter.budget_status()[0];
    assert_eq!(s.spent, usd(200_000), "the first call left the window");
    assert_eq!(s.period_start, start + Duration::minutes(1));

    // Below 50% now: the threshold re-arms and fires again when crossed.
    spend(&h, 400_000);
    assert_eq!(fired_for(&alerts, "hourly"), [50, 50]);
    h.clock.set(start + Duration::hours(3));
    assert_eq!(h.meter.budget_status()[0].spent, usd(0));
}

#[test]
fn steady_spend_near_a_rolling_threshold_alerts_once() {
    // A call a minute for three hours, averaging $0.015: the hour's window holds about $0.90, a few thousandths
    // either side as calls leave it and join it. Re-armed the moment spend dipped under 90%, the threshold fired
    // again whenever the next call crossed back: an alert (and a webhook POST) every few minutes.
    let (h, alerts) = harness(vec![
        Budget::new("hourly", BudgetLimit::usd(1.0).unwrap())
            .with_period(BudgetPeriod::Rolling(std::time::Duration::from_secs(3_600)))
            .with_thresholds([90]),
    ]);
    let start = utc("2026-03-14T10:00:00Z");
    let pattern = [13_000, 14_000, 15_000, 16_000, 17_000, 15_000, 15_000];
    let mut dipped = 0;
    for minute in 0..180 {
        h.clock.set(start + Duration::minutes(minute));
        let state = &h.meter.budget_status()[0];
        if matches!(state.spent, BudgetAmount::Usd(m) if m.picos() < 900_000_000_000) && minute > 61 {
            dipped += 1;
            // Under 90% the threshold is not crossed, though it stays alerted until spend is 5% lower.
            assert!(state.thresholds_crossed.is_empty(), "minute {minute}: {state:?}");
        }
        spend(&h, pattern[minute as usize % pattern.len()]);
    }
    assert!(dipped >= 10, "the window's spend went under 90% {dipped} times: the test would not show a storm");
    assert_eq!(fired_for(&alerts, "hourly"), [90]);
    // Spend that falls well under the threshold (5% of the limit under it) re-arms it.
    h.clock.set(start + Duration::minutes(180 + 61));
    assert_eq!(h.meter.budget_status()[0].spent, usd(0));
    spend(&h, 950_000);
    assert_eq!(fired_for(&alerts, "hourly"), [90, 90]);
}

#[test]
fn budget_states_read_back_from_their_json() {
    // What `/api/v1/budgets` serves reads back into the crate's own types (they were serialize-only).
    let (h, _alerts) = harness(vec![
        Budget::new("monthly", BudgetLimit::usd(1.0).unwrap()),
        Budget::new("rolling", BudgetLimit::tokens(10_000))
            // Taken in whole seconds, as it is written: 1.5 s more read back as nothing.
            .with_period(BudgetPeriod::Rolling(std::time::Duration::from_millis(93_785_500)))
            .with_scope(tokenmeter::budget::BudgetScope::model("claude-haiku-4-5-20251001")),
        Budget::new("weekly", BudgetLimit::usd(0.5).unwrap())
            .with_period(BudgetPeriod::Week)
            .with_scope(tokenmeter::budget::BudgetScope::tenant("a=b")),
    ]);
    h.clock.set(utc("2026-03-14T10:00:00Z"));
    spend(&h, 400_000);
    h.clock.set(utc("2026-03-14T11:00:00Z"));
    let states = h.meter.budget_status();
    assert!(states.iter().any(|s| s.time_to_limit.is_some()), "a time to limit to read back: {states:?}");
    let json = serde_json::to_string(&states).unwrap();
    let back: Vec<BudgetState> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, states, "{json}");
    assert!(json.contains(r#""period":"rolling 1d2h3m5s""#) && json.contains(r#""scope":"tenant=a=b""#), "{json}");
    let unnamed: tokenmeter::budget::BudgetScope = "=x".parse().unwrap();
    assert_eq!(unnamed.to_string(), "=x", "what `build` keeps (and logs) reads back too");
    let err = serde_json::from_str::<BudgetPeriod>(r#""fortnight""#).unwrap_err().to_string();
    assert!(err.contains("expected \"day\""), "{err}");
}

#[test]
fn a_rolling_period_outside_one_second_to_366_days_is_a_build_error() {
    // It was taken as the nearest without a word: a 400-day `Block` budget counted 366 days and let more through.
    let year_and_more = std::time::Duration::from_secs(400 * 86_400);
    for (asked, taken) in [(year_and_more, "rolling 366d"), (std::time::Duration::from_millis(500), "rolling 1s")] {
        let budget = || Budget::new("long", BudgetLimit::usd(5.0).unwrap()).with_period(BudgetPeriod::Rolling(asked));
        let err = tokenmeter::TokenMeter::builder().with_budget(budget()).try_build().unwrap_err();
        assert!(matches!(err, tokenmeter::BuildError::BudgetPeriod { asked: a, .. } if a == asked), "{err:?}");
        assert!(err.to_string().contains(&format!("it would count `{taken}` instead")), "{err}");
        // `build` logs it and counts the nearest.
        let meter = tokenmeter::TokenMeter::builder().with_budget(budget()).build();
        assert_eq!(meter.budget_status()[0].period.to_string(), taken);
    }
    // A later `with_period` in range replaces the one out of it; the bounds themselves are in range.
    let year = std::time::Duration::from_secs(366 * 86_400);
    for period in [std::time::Duration::from_secs(1), year, year + std::time::Duration::from_millis(500)] {
        let budget = Budget::new("b", BudgetLimit::usd(5.0).unwrap())
            .with_period(BudgetPeriod::Rolling(year_and_more))
            .with_period(BudgetPeriod::Rolling(period));
        assert!(tokenmeter::TokenMeter::builder().with_budget(budget).try_build().is_ok());
    }
    // What was asked is not part of what the budget is: both count 366 days.
    let of = |d| Budget::new("b", BudgetLimit::usd(5.0).unwrap()).with_period(BudgetPeriod::Rolling(d));
    assert_eq!(of(year_and_more), of(year));
}

#[test]
fn a_budgets_period_start_is_the_one_its_state_reports() {
    let ny: Tz = "America/New_York".parse().unwrap();
    let budgets = [
        Budget::new("day", BudgetLimit::usd(1.0).unwrap()).with_period(BudgetPeriod::Day).with_time_zone(ny),
        Budget::new("week", BudgetLimit::usd(1.0).unwrap())
            .with_period(BudgetPeriod::Week)
            .with_week_start(chrono::Weekday::Sun)
            .with_time_zone(ny),
        Budget::new("month", BudgetLimit::usd(1.0).unwrap()).with_period(BudgetPeriod::Month).with_time_zone(ny),
        Budget::new("rolling", BudgetLimit::usd(1.0).unwrap())
            .with_period(BudgetPeriod::Rolling(std::time::Duration::from_secs(7 * 3_600))),
    ];
    let (h, _) = harness(budgets.to_vec());
    // Tuesday 2026-03-10, 01:30 in New York (EDT since the 8th): that day, the week from Sunday the 8th (whose
    // midnight was still EST), March.
    let now = utc("2026-03-10T05:30:00Z");
    h.clock.set(now);
    let states = h.meter.budget_status();
    for b in &budgets {
        assert_eq!(b.period_start(now), state(&states, b.name()).period_start, "{}", b.name());
    }
    assert_eq!(budgets[0].period_start(now), utc("2026-03-10T04:00:00Z"));
    assert_eq!(budgets[1].period_start(now), utc("2026-03-08T05:00:00Z"), "before the DST change");
}
