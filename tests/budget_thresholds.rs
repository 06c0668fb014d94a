//! Budget alerts: each threshold fires exactly once per period, a projected overrun fires once, and alerts
//! reach callbacks and `tracing`.

use crate::common;

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use common::{BudgetEvents, Harness};
use parking_lot::Mutex;
use tokenmeter::budget::{AlertKind, Budget, BudgetAlert, BudgetAmount, BudgetLimit, BudgetPeriod, BudgetScope};
use tokenmeter::{Money, TokenMeterBuilder};
use tracing::info_span;

/// One call on claude-haiku-4-5 ($1 per million input tokens): `micros` input tokens cost `micros` micro-USD.
fn spend(h: &Harness, user: &str, micros: u64) {
    h.run(|| {
        let _user = info_span!("request", user.id = user).entered();
        let _call =
            info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = micros, output_tokens = 0u64)
                .entered();
    });
}

fn usd(micros: u128) -> BudgetAmount {
    BudgetAmount::Usd(Money::from_picos(micros * 1_000_000))
}

type Alerts = Arc<Mutex<Vec<BudgetAlert>>>;

fn with_alerts(budget: Budget) -> (Harness, Alerts) {
    let alerts: Alerts = Arc::default();
    let sink = alerts.clone();
    let h = Harness::with(|b: TokenMeterBuilder| {
        b.with_budget(budget).with_budget_alert_callback(move |a| sink.lock().push(a.clone()))
    });
    (h, alerts)
}

fn thresholds_fired(alerts: &Alerts) -> Vec<u32> {
    alerts
        .lock()
        .iter()
        .filter_map(|a| match a.kind {
            AlertKind::ThresholdCrossed { percent } => Some(percent),
            _ => None,
        })
        .collect()
}

#[test]
fn each_threshold_fires_exactly_once() {
    let budget = Budget::new("alice-monthly", BudgetLimit::usd(1.0).unwrap()).with_scope(BudgetScope::user("alice"));
    let (h, alerts) = with_alerts(budget);

    spend(&h, "alice", 300_000); // $0.30: 30%
    assert_eq!(thresholds_fired(&alerts), Vec::<u32>::new());
    spend(&h, "alice", 300_000); // $0.60
    assert_eq!(thresholds_fired(&alerts), [50]);
    spend(&h, "bob", 5_000_000); // out of scope
    assert_eq!(thresholds_fired(&alerts), [50]);
    spend(&h, "alice", 300_000); // $0.90: one call crosses two thresholds
    assert_eq!(thresholds_fired(&alerts), [50, 75, 90]);
    spend(&h, "alice", 100_000); // $1.00 exactly: 100% reached
    assert_eq!(thresholds_fired(&alerts), [50, 75, 90, 100]);
    for _ in 0..5 {
        spend(&h, "alice", 300_000);
    }
    assert_eq!(thresholds_fired(&alerts), [50, 75, 90, 100], "no threshold fires twice in a period");
    assert_eq!(h.meter.alert_stats().fired, alerts.lock().len() as u64);

    let fifty = alerts.lock()[0].clone();
    assert_eq!(&*fifty.budget, "alice-monthly");
    assert_eq!(fifty.scope, BudgetScope::user("alice"));
    assert_eq!(fifty.spent, usd(600_000));
    assert_eq!(fifty.limit, usd(1_000_000));
    assert!((fifty.utilization - 0.6).abs() < 1e-12);
    assert_eq!(fifty.resets_at, Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap());
    assert!(fifty.to_string().contains("50% threshold crossed: spent $0.60 of $1.00 (60%)"), "{fifty}");

    let state = &h.meter.budget_status()[0];
    assert_eq!(state.thresholds_crossed, [50, 75, 90, 100]);
    assert!(state.over_budget);
    assert_eq!(state.spent, usd(2_500_000));
    assert_eq!(state.remaining, usd(0));
    assert_eq!(state.calls, 9);
}

#[test]
fn thresholds_fire_again_in_the_next_period() {
    let budget = Budget::new("daily", BudgetLimit::usd(1.0).unwrap()).with_period(BudgetPeriod::Day);
    let (h, alerts) = with_alerts(budget);
    spend(&h, "alice", 800_000);
    assert_eq!(thresholds_fired(&alerts), [50, 75]);
    spend(&h, "alice", 100_000);
    assert_eq!(thresholds_fired(&alerts), [50, 75, 90]);

    h.clock.advance(Duration::days(1));
    assert_eq!(h.meter.budget_status()[0].spent, usd(0), "a new day starts from zero");
    assert!(h.meter.budget_status()[0].thresholds_crossed.is_empty());
    spend(&h, "alice", 500_000);
    assert_eq!(thresholds_fired(&alerts), [50, 75, 90, 50]);
}

#[test]
fn token_budgets_count_billed_tokens() {
    let budget = Budget::new("tokens", BudgetLimit::tokens(1_000)).with_thresholds([10, 100]);
    let (h, alerts) = with_alerts(budget);
    h.run(|| {
        let _call = info_span!(
            "chat",
            gen_ai.request.model = "some-unpriced-model",
            input_tokens = 50u64,
            cache_read_input_tokens = 40u64,
            output_tokens = 20u64,
        )
        .entered();
    });
    assert_eq!(thresholds_fired(&alerts), [10]);
    assert_eq!(h.meter.budget_status()[0].spent, BudgetAmount::Tokens(110));
}

#[test]
fn an_alert_says_how_many_calls_it_could_not_count() {
    // Two calls on a model without a price count $0 in the spend an alert reports: the alert says so.
    let budget = Budget::new("team", BudgetLimit::usd(1.0).unwrap()).with_thresholds([50]);
    let (h, alerts) = with_alerts(budget);
    h.run(|| {
        for _ in 0..2 {
            let _call = info_span!("chat", gen_ai.request.model = "gpt-9-preview", input_tokens = 600_000u64).entered();
        }
    });
    assert!(alerts.lock().is_empty());
    spend(&h, "alice", 600_000);
    let alert = alerts.lock()[0].clone();
    assert_eq!((alert.spent, alert.unpriced_calls), (usd(600_000), 2));
    let text = alert.to_string();
    assert!(
        text.contains("spent $0.60 of $1.00 (60%), projected $1.39; 2 calls without a price counted at $0; resets"),
        "{text}"
    );
    assert_eq!(alert.to_json()["unpriced_calls"], 2);
}

#[test]
fn alerts_delivered_while_the_clock_ran_ahead_are_not_delivered_again_when_it_comes_back() {
    // $0.60 today fires 50%; a day ahead, $0.80 fires 50% and 75% of that day; back today, the day holds $1.41
    // and its alerts are those delivered in either: 90% and 100% fire, not 50% and 75% again.
    let budget = Budget::new("daily", BudgetLimit::usd(1.0).unwrap()).with_period(BudgetPeriod::Day);
    let (h, alerts) = with_alerts(budget);
    let t = Utc.with_ymd_and_hms(2026, 3, 14, 14, 0, 0).unwrap();
    h.clock.set(t);
    spend(&h, "alice", 600_000);
    h.clock.set(t + Duration::days(1));
    spend(&h, "alice", 800_000);
    assert_eq!(thresholds_fired(&alerts), [50, 50, 75]);
    h.clock.set(t + Duration::minutes(11));
    spend(&h, "alice", 10_000);
    assert_eq!(thresholds_fired(&alerts), [50, 50, 75, 90, 100]);
    let state = &h.meter.budget_status()[0];
    assert_eq!((state.spent, state.calls), (usd(1_410_000), 3));
    assert_eq!(state.thresholds_crossed, [50, 75, 90, 100]);
}

#[test]
fn projected_overrun_fires_once_per_period() {
    let budget = Budget::new("team", BudgetLimit::usd(10.0).unwrap()).with_thresholds([90]);
    let (h, alerts) = with_alerts(budget);
    // Four days into a 31-day March (13%: enough of the month to alert on its pace).
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 5, 0, 0, 0).unwrap());
    spend(&h, "alice", 2_000_000);
    let fired: Vec<AlertKind> = alerts.lock().iter().map(|a| a.kind).collect();
    assert_eq!(fired, [AlertKind::ProjectedOverrun]);
    let projected = alerts.lock()[0].projected;
    // $2 in 4 days of 31: $15.50.
    assert_eq!(projected, Some(usd(15_500_000)));

    let state = &h.meter.budget_status()[0];
    assert_eq!(state.time_to_limit, Some(std::time::Duration::from_secs(16 * 86_400)), "$8 more at $2 per 4 days");
    spend(&h, "alice", 1_000_000);
    assert_eq!(alerts.lock().len(), 1, "the projected overrun alert fires once per period");
}

#[test]
fn the_projected_overrun_alert_waits_for_evidence() {
    // Thresholds low enough to fire early, to show the projection alert is decided apart from them.
    let budget = Budget::new("team", BudgetLimit::usd(10.0).unwrap()).with_thresholds([5]);
    let (h, alerts) = with_alerts(budget);
    let kinds = || -> Vec<AlertKind> { alerts.lock().iter().map(|a| a.kind).collect() };
    // Half a day into a 31-day March, $0.60 projects $37.20, but half a day is not a month's pace.
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap());
    spend(&h, "alice", 600_000);
    assert_eq!(kinds(), [AlertKind::ThresholdCrossed { percent: 5 }]);
    assert_eq!(h.meter.budget_status()[0].projected, Some(usd(37_200_000)), "the projection is shown all the same");
    // The burst is over: four days in (13% of the month), $0.90 projects $6.975, under the limit.
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 5, 0, 0, 0).unwrap());
    spend(&h, "alice", 300_000);
    assert_eq!(kinds().len(), 1);
    // Mid-month, a real overrun: $5.90 in 15 days projects $12.19. That is the warning.
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 16, 0, 0, 0).unwrap());
    spend(&h, "alice", 5_000_000);
    assert_eq!(kinds(), [AlertKind::ThresholdCrossed { percent: 5 }, AlertKind::ProjectedOverrun]);
    // Early, but a quarter of the limit spent: evidence enough (a daily budget, an hour in).
    let daily = Budget::new("daily", BudgetLimit::usd(1.0).unwrap()).with_period(BudgetPeriod::Day).with_thresholds([]);
    let (h, alerts) = with_alerts(daily);
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0).unwrap());
    spend(&h, "alice", 200_000);
    assert!(alerts.lock().is_empty(), "20% in an hour projects $4.80, but an hour is not 10% of the day");
    spend(&h, "alice", 100_000);
    assert_eq!(alerts.lock().iter().map(|a| a.kind).collect::<Vec<_>>(), [AlertKind::ProjectedOverrun]);
}

#[test]
fn no_projection_before_one_percent_of_the_period() {
    let budget = Budget::new("team", BudgetLimit::usd(10.0).unwrap()).with_thresholds([]);
    let (h, alerts) = with_alerts(budget);
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 1, 0, 10, 0).unwrap());
    spend(&h, "alice", 1_000_000);
    assert!(alerts.lock().is_empty());
    let state = &h.meter.budget_status()[0];
    assert_eq!(state.projected, None);
    assert_eq!(state.time_to_limit, None);
}

#[test]
fn a_panicking_callback_is_counted_and_contained() {
    let h = Harness::with(|b| {
        b.with_budget(Budget::new("b", BudgetLimit::usd(1.0).unwrap()))
            .with_budget_alert_callback(|_| panic!("user callback bug"))
    });
    spend(&h, "alice", 600_000); // 50%, and a projected overrun
    assert_eq!(h.meter.alert_stats().callback_panics, 2);
    assert_eq!(h.meter.total_usage().calls, 1);
}

#[test]
fn an_alert_callback_finds_the_call_that_crossed_its_threshold_in_the_ledger() {
    // Alerts were delivered before the call reached the ledger and the sinks: a callback that read the usage
    // for its message missed the call that crossed the threshold.
    let cell: Arc<std::sync::OnceLock<tokenmeter::TokenMeter>> = Arc::default();
    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let (meter_cell, sink) = (cell.clone(), seen.clone());
    let h = Harness::with(|b| {
        b.with_budget(Budget::new("b", BudgetLimit::usd(1.0).unwrap()).with_thresholds([50]))
            .with_budget_alert_callback(move |_| {
                let q = tokenmeter::ledger::Query::new(tokenmeter::ledger::Window::All);
                sink.lock().push(meter_cell.get().unwrap().query(&q).unwrap().totals.calls);
            })
    });
    cell.set(h.meter.clone()).ok().unwrap();
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 31, 12, 0, 0).unwrap());
    spend(&h, "alice", 400_000);
    spend(&h, "alice", 200_000); // 60%: the alert
    assert_eq!(*seen.lock(), [2]);
}

#[test]
fn build_logs_every_budget_that_can_count_nothing() {
    use tracing_subscriber::prelude::*;
    // Two bad budgets (a dimension no call fills, a USD budget on a model without a price): `build` logged the
    // first; the second counted $0 for ever, and as a `Block` budget never blocked, without a word.
    let events = BudgetEvents::default();
    let subscriber = tracing_subscriber::registry().with(events.clone());
    tracing::subscriber::with_default(subscriber, || {
        tokenmeter::TokenMeter::builder()
            .with_budget(
                Budget::new("a", BudgetLimit::usd(1.0).unwrap())
                    .with_scope(tokenmeter::budget::BudgetScope::dimension("tennant", "acme")),
            )
            .with_budget(
                Budget::new("b", BudgetLimit::usd(1.0).unwrap())
                    .with_scope(tokenmeter::budget::BudgetScope::model("claude-sonet-4-5")),
            )
            .build()
    });
    let events = events.0.lock().clone();
    assert_eq!(events.len(), 2, "{events:#?}");
    assert!(events[0].1.contains("`a`") && events[0].1.contains("tennant"), "{events:#?}");
    assert!(events[1].1.contains("`b`") && events[1].1.contains("claude-sonet-4-5"), "{events:#?}");
}

#[test]
fn alerts_are_tracing_events() {
    use tracing_subscriber::prelude::*;

    let h =
        Harness::with(|b| b.with_budget(Budget::new("org", BudgetLimit::usd(1.0).unwrap()).with_thresholds([50, 100])));
    // Late in the month, so that $0.60 does not also project an overrun.
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 31, 12, 0, 0).unwrap());
    let events = BudgetEvents::default();
    let subscriber = tracing_subscriber::registry().with(h.meter.layer()).with(events.clone());
    tracing::subscriber::with_default(subscriber, || {
        let _request = info_span!("request").entered();
        for _ in 0..2 {
            let _call =
                info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 600_000u64).entered();
        }
    });
    let events = events.0.lock().clone();
    assert_eq!(events.len(), 2, "{events:#?}");
    // Root events: inside the application's `request` span, an ERROR event would mark it failed (as
    // `tracing-opentelemetry` reads error events) and logs would show the alert as the request's.
    assert!(events.iter().all(|e| e.2), "{events:#?}");
    assert_eq!(events[0].0, tracing::Level::WARN);
    assert_eq!(events[1].0, tracing::Level::ERROR, "reaching the limit is an error");
    for needle in ["budget=org", "event=\"threshold_crossed\"", "spent=$0.60", "limit=$1.00", "scope=everything"] {
        assert!(events[0].1.contains(needle), "{needle} missing from {}", events[0].1);
    }
}

#[test]
fn what_a_callback_logs_is_not_read_back_as_the_next_calls_failure_or_usage() {
    // A long-lived span carrying two calls: the first crosses the budget, and its alert fires while the span
    // (now holding the second call) is entered. The callback logs the alert the way `#[instrument(err)]` logs
    // errors, and logs usage fields too.
    let h = Harness::with(|b| {
        b.with_budget(Budget::new("b", BudgetLimit::tokens(1_000)).with_thresholds([100])).with_budget_alert_callback(
            |a| {
                tracing::error!(error = %a);
                tracing::info!(input_tokens = 999_999u64, "alert");
            },
        )
    });
    h.run(|| {
        let span = info_span!(
            "agent",
            gen_ai.request.model = "claude-haiku-4-5",
            gen_ai.response.id = tracing::field::Empty,
            input_tokens = tracing::field::Empty,
        );
        let _in = span.enter();
        span.record("gen_ai.response.id", "msg_a");
        span.record("input_tokens", 5_000u64);
        span.record("gen_ai.response.id", "msg_b");
        span.record("input_tokens", 10u64);
    });
    assert_eq!(h.meter.alert_stats().fired, 1, "the first call crossed the budget");
    let calls = h.seen.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].request_id.as_deref(), Some("msg_b"));
    assert!(!calls[1].outcome.is_error(), "the second call succeeded: {:?}", calls[1].outcome);
    assert_eq!(calls[1].tokens.input, 10);
}

#[test]
fn a_usd_budget_says_once_that_calls_without_a_price_count_nothing() {
    use tracing_subscriber::prelude::*;

    // A block budget of $1: three calls on a model the price book does not have count $0 and are not stopped.
    let h = Harness::with(|b| {
        b.with_budget(
            Budget::new("org", BudgetLimit::usd(1.0).unwrap()).with_action(tokenmeter::budget::BudgetAction::Block),
        )
        .with_budget(Budget::new("tokens", BudgetLimit::tokens(1_000_000_000)))
    });
    let events = BudgetEvents::default();
    let subscriber = tracing_subscriber::registry().with(h.meter.layer()).with(events.clone());
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..3 {
            let _call = info_span!("chat", gen_ai.request.model = "gpt-9-preview", input_tokens = 600_000u64).entered();
        }
    });
    let events = events.0.lock().clone();
    assert_eq!(events.len(), 1, "once, and only for the USD budget: {events:#?}");
    let (level, fields, root) = &events[0];
    assert_eq!((*level, *root), (tracing::Level::WARN, true));
    for needle in ["budget=org", "event=\"unpriced_calls\"", "model=gpt-9-preview", "count $0"] {
        assert!(fields.contains(needle), "{needle} missing from {fields}");
    }
    assert_eq!(h.meter.budget_status()[0].unpriced_calls, 3);
}

#[test]
fn a_rolling_threshold_counts_a_call_recorded_after_a_later_one() {
    // Two threads finish calls a moment apart across a bucket boundary (a minute, for a 1h window), and the
    // earlier one is recorded second. Read at its own end, the window left out the later call's bucket: each
    // saw $9.80 of $10.10, and the 100% alert waited for the next call.
    let budget = Budget::new("hourly", BudgetLimit::usd(10.0).unwrap())
        .with_period(BudgetPeriod::Rolling(std::time::Duration::from_secs(3600)))
        .with_thresholds([100]);
    let (h, alerts) = with_alerts(budget);
    let start = h.meter.now();
    spend(&h, "alice", 9_500_000);
    // Past a minute boundary (buckets are a sixtieth of the window), both calls opened together.
    let minute = |offset_ms: i64| {
        let t = start + Duration::minutes(30);
        let t = t - Duration::nanoseconds(t.timestamp_nanos_opt().unwrap().rem_euclid(60_000_000_000));
        t + Duration::milliseconds(offset_ms)
    };
    h.run(|| {
        let model = "claude-haiku-4-5";
        let earlier = info_span!("chat", gen_ai.request.model = model, input_tokens = 300_000u64, output_tokens = 0u64);
        let later = info_span!("chat", gen_ai.request.model = model, input_tokens = 300_000u64, output_tokens = 0u64);
        h.clock.set(minute(1));
        drop(later);
        assert_eq!(thresholds_fired(&alerts), Vec::<u32>::new(), "$9.80 so far");
        h.clock.set(minute(-1));
        drop(earlier);
    });
    assert_eq!(thresholds_fired(&alerts), [100], "$10.10 once both are counted");
    assert_eq!(alerts.lock()[0].spent, usd(10_100_000));
}

#[test]
fn a_layer_that_panics_on_the_alerts_log_event_does_not_reach_the_application() {
    // The alert's log event is dispatched from inside the call span's close: another layer's panic on it came
    // out of the application's `drop(span)`, before the callbacks ran (the threshold already marked alerted, so
    // they never heard of it) and before the journal and the sinks had the call.
    struct PanicsOnTokenmeterEvents;
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PanicsOnTokenmeterEvents {
        fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            if event.metadata().target().starts_with("tokenmeter") {
                panic!("a layer's panic on tokenmeter's own event");
            }
        }
    }
    let (h, alerts) = with_alerts(Budget::new("small", BudgetLimit::usd(0.001).unwrap()).with_thresholds([50]));
    let subscriber = {
        use tracing_subscriber::prelude::*;
        tracing_subscriber::registry().with(h.meter.layer()).with(PanicsOnTokenmeterEvents)
    };
    let closed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tracing::subscriber::with_default(subscriber, || {
            let _call = info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 600u64).entered();
        })
    }));
    assert!(closed.is_ok(), "the panic reached the application");
    assert_eq!(thresholds_fired(&alerts), [50]);
    assert_eq!(h.seen.calls().len(), 1);
}
