//! Budgets of each value of a dimension (`user=*`): one account per value, enforced, alerted and restored after a
//! restart per value, and bounded in how many values they keep.

use crate::common;

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use common::Harness;
use parking_lot::Mutex;
use tokenmeter::budget::{
    AlertKind, Budget, BudgetAction, BudgetAlert, BudgetAmount, BudgetLimit, BudgetPeriod, BudgetScope, RequestScope,
};
use tokenmeter::journal::{FsyncPolicy, JournalConfig};
use tokenmeter::{BuildError, ManualClock, Money, TokenMeter, TokenMeterBuilder};
use tracing::info_span;
use tracing_subscriber::prelude::*;

const HAIKU: &str = "claude-haiku-4-5";

/// One claude-haiku-4-5 call by `user` in `session` costing `micros` micro-USD ($1 per million input tokens).
fn call(meter: &TokenMeter, user: &str, session: &str, micros: u64) {
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        let _user = info_span!("request", user.id = user, session.id = session).entered();
        let _call = info_span!("chat", gen_ai.request.model = HAIKU, input_tokens = micros).entered();
    });
}

type Alerts = Arc<Mutex<Vec<BudgetAlert>>>;

/// $1 a day for each user, blocking, alerts collected.
fn per_user_daily(alerts: &Alerts) -> impl FnOnce(TokenMeterBuilder) -> TokenMeterBuilder {
    let sink = alerts.clone();
    move |b| {
        b.with_budget(
            Budget::new("per-user", BudgetLimit::usd(1.0).unwrap())
                .with_scope(BudgetScope::each_user())
                .with_period(BudgetPeriod::Day)
                .with_action(BudgetAction::Block),
        )
        .with_budget_alert_callback(move |a| sink.lock().push(a.clone()))
    }
}

fn usd(micros: u128) -> BudgetAmount {
    BudgetAmount::Usd(Money::from_picos(micros * 1_000_000))
}

/// `(scope, percent)` of each threshold alert, in order.
fn thresholds(alerts: &Alerts) -> Vec<(String, u32)> {
    alerts
        .lock()
        .iter()
        .filter_map(|a| match a.kind {
            AlertKind::ThresholdCrossed { percent } => Some((a.scope.to_string(), percent)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_scope_is_written_name_star() {
    assert_eq!(BudgetScope::each_user().to_string(), "user=*");
    assert_eq!("user=*".parse::<BudgetScope>().unwrap(), BudgetScope::each_user());
    // A span field that fills a dimension names it, as for one value; `*` in any constructor means each value.
    assert_eq!(BudgetScope::dimension("tenant.id", "*"), BudgetScope::each_tenant());
    assert_eq!(BudgetScope::each("gen_ai.conversation.id"), BudgetScope::each_session());
    assert_eq!(BudgetScope::model("*"), BudgetScope::Each { name: "model".into() });
    assert_eq!("model=*".parse::<BudgetScope>().unwrap().to_string(), "model=*");
}

#[test]
fn each_user_has_their_own_limit_checks_and_alerts() {
    let alerts = Alerts::default();
    let h = Harness::with(per_user_daily(&alerts));
    assert!(h.meter.budget_status().is_empty(), "no user has spent yet");
    assert_eq!(h.meter.check_budget(&RequestScope::new().with_user("alice")), Ok(()));

    call(&h.meter, "alice", "s1", 600_000);
    call(&h.meter, "bob", "s2", 300_000);
    call(&h.meter, "alice", "s1", 600_000);

    let err = h.meter.check_budget(&RequestScope::new().with_user("alice")).unwrap_err();
    assert_eq!(err.budget(), "per-user");
    assert_eq!(err.scope(), &BudgetScope::user("alice"));
    assert_eq!(err.spent(), usd(1_200_000));
    assert_eq!(
        err.to_string(),
        "budget `per-user` (user=alice, day) is exhausted: spent $1.20 of $1.00; it resets at 2026-03-15T00:00:00Z"
    );
    // Bob's $0.30 is his own; a user who never called, and a request naming no user, are not refused.
    assert_eq!(h.meter.check_budget(&RequestScope::new().with_user("bob")), Ok(()));
    assert_eq!(h.meter.check_budget(&RequestScope::new().with_user("carol")), Ok(()));
    assert_eq!(h.meter.check_budget(&RequestScope::new()), Ok(()));

    let status = h.meter.budget_status();
    let rows: Vec<_> = status.iter().map(|s| (s.scope.to_string(), s.member.as_deref(), s.spent, s.calls)).collect();
    assert_eq!(
        rows,
        [
            ("user=alice".to_owned(), Some("alice"), usd(1_200_000), 2),
            ("user=bob".to_owned(), Some("bob"), usd(300_000), 1)
        ]
    );
    assert!(status[0].over_budget && !status[1].over_budget);
    assert_eq!(status[0].thresholds_crossed, [50, 75, 90, 100]);

    // Alice's thresholds fire once each, as hers; Bob's 30% reaches none.
    let alice: Vec<_> =
        ["50", "75", "90", "100"].iter().map(|p| ("user=alice".to_owned(), p.parse().unwrap())).collect();
    assert_eq!(thresholds(&alerts), alice);
    assert!(alerts.lock().iter().all(|a| a.member.as_deref() == Some("alice")));
    // The webhook's body names the value too.
    let body = alerts.lock()[0].to_json();
    assert_eq!((body["scope"].as_str(), body["member"].as_str()), (Some("user=alice"), Some("alice")));
    call(&h.meter, "alice", "s1", 100_000);
    assert_eq!(thresholds(&alerts).len(), 4, "each threshold once per period");
    call(&h.meter, "bob", "s2", 300_000);
    assert_eq!(thresholds(&alerts).last().unwrap(), &("user=bob".to_owned(), 50));

    // One user's state without listing everyone's: what is left for them, zero spent for a user not seen yet.
    let mine = |user: &str| h.meter.budget_status_for(&RequestScope::new().with_user(user));
    let alice = mine("alice");
    assert_eq!((alice.len(), alice[0].member.as_deref(), alice[0].spent), (1, Some("alice"), usd(1_300_000)));
    let carol = mine("carol");
    assert_eq!((carol[0].scope.to_string(), carol[0].spent, carol[0].calls), ("user=carol".to_owned(), usd(0), 0));
    assert_eq!(carol[0].remaining, usd(1_000_000));
    assert_eq!(carol[0].resets_at, Utc.with_ymd_and_hms(2026, 3, 15, 0, 0, 0).unwrap());
    assert!(h.meter.budget_status_for(&RequestScope::new()).is_empty(), "a request naming no user");

    // The JSON form names the value (and reads back).
    let json = serde_json::to_value(&h.meter.budget_status()[1]).unwrap();
    assert_eq!((json["scope"].as_str(), json["member"].as_str()), (Some("user=bob"), Some("bob")));
    let back: tokenmeter::budget::BudgetState = serde_json::from_value(json).unwrap();
    assert_eq!(back.member.as_deref(), Some("bob"));
}

#[test]
fn each_value_starts_over_with_its_period() {
    let alerts = Alerts::default();
    let h = Harness::with(per_user_daily(&alerts));
    call(&h.meter, "alice", "s1", 1_100_000);
    assert!(h.meter.check_budget(&RequestScope::new().with_user("alice")).is_err());
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 15, 0, 0, 1).unwrap());
    assert_eq!(h.meter.check_budget(&RequestScope::new().with_user("alice")), Ok(()), "a new day");
    assert!(h.meter.budget_status().is_empty(), "no user has spent today: {:?}", h.meter.budget_status());
    call(&h.meter, "bob", "s2", 100_000);
    let status = h.meter.budget_status();
    assert_eq!(status.len(), 1);
    assert_eq!((status[0].member.as_deref(), status[0].spent), (Some("bob"), usd(100_000)));
}

#[test]
fn a_session_cap_on_a_rolling_window_and_a_token_budget_for_each_model() {
    let h = Harness::with(|b| {
        b.with_budget(
            Budget::new("session-hour", BudgetLimit::usd(0.5).unwrap())
                .with_scope(BudgetScope::each_session())
                .with_period(BudgetPeriod::Rolling(std::time::Duration::from_secs(3_600)))
                .with_action(BudgetAction::Block),
        )
        .with_budget(Budget::new("per-model", BudgetLimit::tokens(1_000_000)).with_scope(BudgetScope::model("*")))
    });
    call(&h.meter, "alice", "s1", 400_000);
    call(&h.meter, "alice", "s2", 200_000);
    h.clock.advance(Duration::minutes(10));
    call(&h.meter, "alice", "s1", 200_000);
    let session = |id: &str| RequestScope::new().with_dimension("session", id);
    assert_eq!(h.meter.check_budget(&session("s1")).unwrap_err().scope(), &BudgetScope::dimension("session", "s1"));
    assert_eq!(h.meter.check_budget(&session("s2")), Ok(()));
    // An hour after its first call, s1's first $0.40 has left the window.
    h.clock.advance(Duration::minutes(52));
    assert_eq!(h.meter.check_budget(&session("s1")), Ok(()));

    let per_model: Vec<_> =
        h.meter.budget_status().into_iter().filter(|s| &*s.budget == "per-model").map(|s| (s.scope, s.spent)).collect();
    assert_eq!(per_model, [(BudgetScope::model(HAIKU), BudgetAmount::Tokens(800_000))]);
}

#[test]
fn full_accounts_drop_values_whose_period_ended_and_count_new_ones_together_while_none_has() {
    let alerts = Alerts::default();
    let sink = alerts.clone();
    let h = Harness::with(|b| {
        b.with_budget(
            Budget::new("per-user", BudgetLimit::usd(1.0).unwrap())
                .with_scope(BudgetScope::each_user())
                .with_period(BudgetPeriod::Day)
                .with_action(BudgetAction::Block)
                .with_max_members(2),
        )
        .with_budget_alert_callback(move |a| sink.lock().push(a.clone()))
    });
    call(&h.meter, "alice", "s1", 1_000_000);
    call(&h.meter, "bob", "s2", 100_000);
    // Two users hold spend today: carol and dave have no account of their own, and share `(other)`'s $1.
    call(&h.meter, "carol", "s3", 600_000);
    assert_eq!(h.meter.check_budget(&RequestScope::new().with_user("dave")), Ok(()));
    call(&h.meter, "dave", "s4", 500_000);
    assert_eq!(h.meter.budget_members_overflow(), [(Arc::from("per-user"), 2)]);
    let err = h.meter.check_budget(&RequestScope::new().with_user("erin")).unwrap_err();
    assert_eq!(err.scope().to_string(), "user=(other)", "a new user is refused with those it shares an account with");
    assert!(h.meter.check_budget(&RequestScope::new().with_user("alice")).is_err(), "alice is still held");
    assert_eq!(h.meter.check_budget(&RequestScope::new().with_user("bob")), Ok(()));
    let rows: Vec<_> = h.meter.budget_status().into_iter().map(|s| (s.scope.to_string(), s.spent)).collect();
    assert_eq!(
        rows,
        [
            ("user=(other)".to_owned(), usd(1_100_000)),
            ("user=alice".to_owned(), usd(1_000_000)),
            ("user=bob".to_owned(), usd(100_000)),
        ]
    );
    assert!(thresholds(&alerts).contains(&("user=(other)".to_owned(), 100)), "{:?}", thresholds(&alerts));
    assert_eq!(h.meter.total_usage().calls, 4, "capture counts every call");

    // From the next day's first instant, yesterday's accounts are dropped for new users.
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 15, 0, 0, 0).unwrap());
    call(&h.meter, "carol", "s3", 1_000_000);
    call(&h.meter, "dave", "s4", 100_000);
    assert_eq!(h.meter.budget_members_overflow(), [(Arc::from("per-user"), 2)], "no more in (other)");
    assert!(h.meter.check_budget(&RequestScope::new().with_user("carol")).is_err());
    let members: Vec<_> = h.meter.budget_status().into_iter().map(|s| s.member.unwrap().to_string()).collect();
    assert_eq!(members, ["carol", "dave"]);
}

#[test]
fn on_a_rolling_window_an_account_is_dropped_only_once_its_last_spend_has_left_the_window() {
    // A value's account on a rolling hour is idle from when its newest spend leaves the window, not before: taken
    // for idle early, alice's account was dropped for bob while she still held the window's spend.
    let h = Harness::with(|b| {
        b.with_budget(
            Budget::new("per-user", BudgetLimit::usd(1.0).unwrap())
                .with_scope(BudgetScope::each_user())
                .with_period(BudgetPeriod::Rolling(std::time::Duration::from_secs(3_600)))
                .with_max_members(1),
        )
    });
    let start = common::t0();
    call(&h.meter, "alice", "s1", 600_000);
    h.clock.set(start + Duration::minutes(59));
    call(&h.meter, "bob", "s2", 100_000);
    assert_eq!(h.meter.budget_members_overflow(), [(Arc::from("per-user"), 1)], "bob shares (other)");
    let spent: Vec<_> = h.meter.budget_status().into_iter().map(|s| (s.scope.to_string(), s.spent)).collect();
    assert_eq!(spent, [("user=(other)".to_owned(), usd(100_000)), ("user=alice".to_owned(), usd(600_000))]);
    // Past the hour (and the bucket alice's spend fell in), her account is dropped for carol.
    h.clock.set(start + Duration::minutes(62));
    call(&h.meter, "carol", "s3", 200_000);
    assert_eq!(h.meter.budget_members_overflow(), [(Arc::from("per-user"), 1)], "carol has her own");
    let members: Vec<_> = h.meter.budget_status().into_iter().filter_map(|s| s.member.map(|m| m.to_string())).collect();
    assert!(members.contains(&"carol".to_owned()) && !members.contains(&"alice".to_owned()), "{members:?}");
}

#[test]
fn a_restart_restores_each_values_spend_and_delivered_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap());
    let build = |alerts: &Alerts| {
        per_user_daily(alerts)(
            TokenMeter::builder()
                .with_clock(clock.clone())
                .with_journal(JournalConfig::new(dir.path()).with_fsync(FsyncPolicy::EveryRecord)),
        )
        .try_build()
        .unwrap()
    };
    let before_alerts = Alerts::default();
    let before = build(&before_alerts);
    call(&before, "alice", "s1", 600_000);
    call(&before, "bob", "s2", 1_000_000);
    assert_eq!(thresholds(&before_alerts).len(), 5, "alice's 50, bob's 50 to 100");
    before.flush().unwrap();
    drop(before);

    let after_alerts = Alerts::default();
    let after = build(&after_alerts);
    let spent: Vec<_> = after.budget_status().into_iter().map(|s| (s.member.unwrap().to_string(), s.spent)).collect();
    assert_eq!(spent, [("alice".to_owned(), usd(600_000)), ("bob".to_owned(), usd(1_000_000))]);
    assert!(after.check_budget(&RequestScope::new().with_user("bob")).is_err(), "bob stays refused");
    call(&after, "alice", "s1", 200_000);
    // Alice's 50% was delivered before the restart: only her 75% fires.
    assert_eq!(thresholds(&after_alerts), [("user=alice".to_owned(), 75)]);
    after.flush().unwrap();
    drop(after);

    // Restarted with the limit halved: the thresholds the spend already passed fire with the first check, each
    // user's own (the alerts before were of another limit).
    let sink = Alerts::default();
    let alerts = sink.clone();
    let lowered = TokenMeter::builder()
        .with_clock(clock.clone())
        .with_journal(JournalConfig::new(dir.path()))
        .with_budget(
            Budget::new("per-user", BudgetLimit::usd(0.5).unwrap())
                .with_scope(BudgetScope::each_user())
                .with_period(BudgetPeriod::Day),
        )
        .with_budget_alert_callback(move |a| sink.lock().push(a.clone()))
        .try_build()
        .unwrap();
    assert_eq!(lowered.check_budget(&RequestScope::new()), Ok(()));
    let mut fired = thresholds(&alerts);
    fired.sort();
    let expected: Vec<_> =
        ["user=alice", "user=bob"].into_iter().flat_map(|u| [50, 75, 90, 100].map(|p| (u.to_owned(), p))).collect();
    assert_eq!(fired, expected);
}

#[test]
fn a_budget_for_each_value_of_a_dimension_the_meter_does_not_capture_is_refused() {
    let each = || Budget::new("per-customer", BudgetLimit::usd(1.0).unwrap()).with_scope(BudgetScope::each("customer"));
    let err = TokenMeter::builder().with_budget(each()).try_build().unwrap_err();
    assert!(matches!(err, BuildError::BudgetDimension { ref dimension, .. } if dimension == "customer"), "{err}");
    let meter = TokenMeter::builder().with_dimension("customer").with_budget(each()).try_build().unwrap();
    assert!(meter.budget_status().is_empty());
}

#[test]
fn a_zero_limit_refuses_a_value_that_has_not_spent_yet() {
    let h = Harness::with(|b| {
        b.with_budget(
            Budget::new("no-trial-users", BudgetLimit::usd(0.0).unwrap())
                .with_scope(BudgetScope::dimension("user", "*"))
                .with_action(BudgetAction::Block),
        )
    });
    let err = h.meter.check_budget(&RequestScope::new().with_user("trial-42")).unwrap_err();
    assert_eq!(err.scope(), &BudgetScope::user("trial-42"));
    assert_eq!(h.meter.check_budget(&RequestScope::new()), Ok(()), "a request naming no user is not in its scope");
}

#[test]
fn each_values_delivered_alerts_are_written_again_with_its_own_first_call_of_a_day() {
    // Restating every value's alerts with the day's first call wrote 10,000 lines at once at 5,000 alerted users,
    // past the journal's queue. Each value's are written again with its own first call of the day.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap());
    let meter = TokenMeter::builder()
        .with_clock(clock.clone())
        .with_journal(JournalConfig::new(dir.path()).with_fsync(FsyncPolicy::EveryRecord))
        .with_budget(Budget::new("per-user", BudgetLimit::usd(1.0).unwrap()).with_scope(BudgetScope::each_user()))
        .try_build()
        .unwrap();
    call(&meter, "alice", "s1", 600_000);
    call(&meter, "bob", "s2", 600_000);
    clock.set(Utc.with_ymd_and_hms(2026, 3, 15, 9, 0, 0).unwrap());
    call(&meter, "carol", "s3", 100_000);
    call(&meter, "alice", "s1", 100_000);
    call(&meter, "alice", "s1", 100_000);
    meter.flush().unwrap();
    let text = std::fs::read_to_string(dir.path().join("tokenmeter-2026-03-15.jsonl")).unwrap();
    let restated: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["budget_alert"]["restated"] == true)
        .map(|v| format!("{} {}", v["budget_alert"]["scope"].as_str().unwrap(), v["budget_alert"]["alert"]["event"]))
        .collect();
    // Alice's 50% (and her projected overrun) once, with her first call of the day; not Bob's, who made none.
    assert_eq!(restated.iter().filter(|r| r.starts_with("user=alice")).count(), restated.len(), "{restated:?}");
    assert!(restated.contains(&"user=alice \"threshold_crossed\"".to_owned()), "{restated:?}");
    assert_eq!(restated.iter().filter(|r| r.as_str() == "user=alice \"threshold_crossed\"").count(), 1);
}

#[test]
fn a_check_names_the_value_as_the_application_writes_it_and_finds_it_filtered_and_cut() {
    // A pseudonymising filter keeps alice's calls under `h-…`, and capture cuts values at 128 bytes: a check with
    // `with_user("alice")` (or the whole long id) found no account, and an exhausted user went through.
    let long = "u".repeat(151);
    let h = Harness::with(|b| {
        b.with_dimension_filter(|dim, value| match dim {
            "user" if value.starts_with('u') => Some(value.to_owned()),
            "user" => Some(format!("h-{}", value.len())),
            _ => Some(value.to_owned()),
        })
        .with_budget(
            Budget::new("per-user", BudgetLimit::usd(1.0).unwrap())
                .with_scope(BudgetScope::each_user())
                .with_action(BudgetAction::Block),
        )
    });
    call(&h.meter, "alice", "s1", 2_000_000);
    call(&h.meter, &long, "s2", 2_000_000);
    let members: Vec<String> =
        h.meter.budget_status().into_iter().map(|s| s.member.unwrap().len().to_string()).collect();
    assert_eq!(members, ["3", "128"], "alice as h-5, the long id cut");
    let err = h.meter.check_budget(&RequestScope::new().with_user("alice")).unwrap_err();
    assert_eq!(err.scope(), &BudgetScope::user("h-5"));
    assert!(
        h.meter.check_budget(&RequestScope::new().with_user(long.as_str())).is_err(),
        "the long id, cut as captured"
    );
    assert_eq!(h.meter.budget_status_for(&RequestScope::new().with_user("alice"))[0].member.as_deref(), Some("h-5"));
    // Values from a record are as recorded already: not filtered a second time.
    let recorded =
        RequestScope::from_dimensions(&tokenmeter::Dimensions { user: Some("h-5".into()), ..Default::default() });
    assert!(h.meter.check_budget(&recorded).is_err());
    assert_eq!(h.meter.check_budget(&RequestScope::new().with_session("s1")), Ok(()));
}

#[test]
fn values_sent_to_other_are_said_once_a_day() {
    // The WARN was once per process: after a restart (or a day later) a full budget went quiet.
    let h = Harness::with(|b| {
        b.with_budget(
            Budget::new("per-user", BudgetLimit::usd(1.0).unwrap())
                .with_scope(BudgetScope::each_user())
                .with_period(BudgetPeriod::Day)
                .with_max_members(1),
        )
    });
    let warns = common::BudgetEvents::default();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(h.meter.layer()).with(warns.clone()));
    let spend = |user: &str| {
        tracing::dispatcher::with_default(&dispatch, || {
            let _user = info_span!("request", user.id = user).entered();
            let _call = info_span!("chat", gen_ai.request.model = HAIKU, input_tokens = 100_000u64).entered();
        })
    };
    spend("alice");
    spend("bob");
    spend("carol");
    // (Copies: a failing assertion that locked again for its message would wait on itself.)
    let members_full = || -> Vec<String> {
        let events = warns.0.lock();
        events.iter().filter(|(_, fields, _)| fields.contains("event=\"members_full\"")).map(|e| e.1.clone()).collect()
    };
    let said = members_full();
    assert_eq!(said.len(), 1, "once on the day: {said:?}");
    assert!(said[0].contains("calls=1"), "{said:?}");
    // The next day, alice spends first and keeps her account: bob goes to `(other)` again, and it is said again.
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 15, 9, 0, 0).unwrap());
    spend("alice");
    spend("bob");
    let said = members_full();
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(said[1].contains("calls=3"), "{said:?}");
}

#[test]
fn a_value_with_an_escape_sequence_reaches_logs_and_messages_escaped() {
    // A user id from a request header, with an escape sequence that would recolour (or retitle) the terminal that
    // shows the application's log.
    let evil = "e\u{1b}[31mvil\u{202e}";
    let alerts = Alerts::default();
    let h = Harness::with(|b| per_user_daily(&alerts)(b));
    let events = common::BudgetEvents::default();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(h.meter.layer()).with(events.clone()));
    tracing::dispatcher::with_default(&dispatch, || {
        let _user = info_span!("request", user.id = evil).entered();
        let _call = info_span!("chat", gen_ai.request.model = HAIKU, input_tokens = 1_000_000u64).entered();
    });
    let logged: Vec<String> = events.0.lock().iter().map(|e| e.1.clone()).collect();
    assert!(!logged.is_empty());
    for fields in &logged {
        assert!(!fields.contains('\u{1b}') && !fields.contains('\u{202e}'), "{fields:?}");
        assert!(fields.contains(r"scope=user=e\u{1b}[31mvil\u{202e}"), "{fields}");
    }
    let alert = alerts.lock()[0].clone();
    // The alert itself keeps the value as it is (a program reads it); its text is escaped.
    assert_eq!(alert.member.as_deref(), Some(evil));
    assert!(alert.to_string().starts_with(r"budget `per-user` (user=e\u{1b}[31mvil\u{202e}, day): "), "{alert}");
    let refused = h.meter.check_budget(&RequestScope::new().with_user(evil)).unwrap_err();
    assert!(
        refused.to_string().starts_with(r"budget `per-user` (user=e\u{1b}[31mvil\u{202e}, day) is exhausted"),
        "{refused}"
    );
}

#[test]
fn the_status_of_many_values_lists_each_once_by_value_while_calls_go_on() {
    // More values than one hold of the budget's lock reads (256): the status reads them a chunk at a time.
    const USERS: u64 = 2_000;
    let alerts = Alerts::default();
    let h = Harness::with(per_user_daily(&alerts));
    h.run(|| {
        for i in 0..USERS {
            let _user = info_span!("request", user.id = format!("u{i:04}").as_str()).entered();
            let _call = info_span!("chat", gen_ai.request.model = HAIKU, input_tokens = 1_000 + i).entered();
        }
    });
    let status = h.meter.budget_status();
    assert_eq!(status.len(), USERS as usize);
    for (i, s) in status.iter().enumerate() {
        assert_eq!(s.member.as_deref(), Some(format!("u{i:04}").as_str()), "ordered by value, each once");
        assert_eq!(s.spent, usd(1_000 + i as u128), "{:?}", s.member);
        assert_eq!(s.calls, 1);
    }
    // Reads beside calls of the same budget, of its values and of new ones (each new value's account moves the
    // others in the map): every call counted, every read whole, no value twice.
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let status = h.meter.budget_status();
                assert!(status.windows(2).all(|w| w[0].member < w[1].member), "sorted, no value twice");
                let listed: std::collections::HashSet<&str> =
                    status.iter().filter_map(|s| s.member.as_deref()).collect();
                let missing = (0..USERS).map(|i| format!("u{i:04}")).filter(|u| !listed.contains(u.as_str())).count();
                assert_eq!(missing, 0, "every value that has spent is listed");
            }
        });
        h.run(|| {
            for i in 0..USERS {
                for user in [format!("u{i:04}"), format!("v{i:04}")] {
                    let _user = info_span!("request", user.id = user.as_str()).entered();
                    let _call = info_span!("chat", gen_ai.request.model = HAIKU, input_tokens = 1u64).entered();
                }
            }
        });
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap();
    });
    let status = h.meter.budget_status();
    assert_eq!(status.len(), 2 * USERS as usize);
    assert!(status[..USERS as usize].iter().all(|s| s.calls == 2), "each value's second call counted");
    assert_eq!(status[5].spent, usd(1_000 + 5 + 1));
    assert_eq!(status[USERS as usize].member.as_deref(), Some("v0000"));
}
