//! Enforcement: block budgets refuse requests in their scope once exhausted; warn budgets never refuse; capture
//! itself never refuses anything.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{TimeZone, Utc};
use common::Harness;
use tokenmeter::Money;
use tokenmeter::budget::{Budget, BudgetAction, BudgetAmount, BudgetLimit, BudgetPeriod, BudgetScope, RequestScope};
use tracing::info_span;

fn spend(h: &Harness, tenant: &str, model: &str, micros: u64) {
    h.run(|| {
        let _tenant = info_span!("request", tenant.id = tenant).entered();
        let _call = info_span!("chat", gen_ai.request.model = model, input_tokens = micros).entered();
    });
}

const HAIKU: &str = "claude-haiku-4-5";

fn acme() -> RequestScope {
    RequestScope::new().with_tenant("acme").with_model(HAIKU)
}

#[test]
fn block_budgets_refuse_and_warn_budgets_do_not() {
    let h = Harness::with(|b| {
        b.with_budget(
            Budget::new("acme-hard", BudgetLimit::usd(1.0).unwrap())
                .with_scope(BudgetScope::tenant("acme"))
                .with_action(BudgetAction::Block),
        )
        .with_budget(Budget::new("everyone-soft", BudgetLimit::usd(0.5).unwrap()).with_action(BudgetAction::Warn))
    });
    assert_eq!(h.meter.check_budget(&acme()), Ok(()));

    spend(&h, "acme", HAIKU, 900_000);
    assert_eq!(h.meter.check_budget(&acme()), Ok(()), "90% of a block budget still allows requests");
    assert!(h.meter.budget_status()[1].over_budget, "the warn budget is over its limit");
    assert_eq!(h.meter.check_budget(&RequestScope::new()), Ok(()), "a warn budget never refuses");

    spend(&h, "acme", HAIKU, 300_000);
    let err = h.meter.check_budget(&acme()).unwrap_err();
    assert_eq!(err.budget(), "acme-hard");
    assert_eq!(err.spent(), BudgetAmount::Usd(Money::from_picos(1_200_000_000_000)));
    assert_eq!(err.limit(), BudgetAmount::Usd(Money::from_picos(1_000_000_000_000)));
    assert_eq!(err.resets_at(), Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap());
    assert_eq!(
        err.to_string(),
        "budget `acme-hard` (tenant=acme, month) is exhausted: spent $1.20 of $1.00; it resets at 2026-04-01T00:00:00Z"
    );

    // A request made in the same span context as a recorded call carries its dimensions.
    let context = RequestScope::from_dimensions(&h.seen.calls()[0].dimensions);
    assert_eq!(context.get("tenant"), Some("acme"));
    assert_eq!(h.meter.check_budget(&context).unwrap_err().budget(), "acme-hard");

    // Other tenants, and requests that do not name a tenant, are not in the budget's scope.
    assert_eq!(h.meter.check_budget(&RequestScope::new().with_tenant("globex")), Ok(()));
    assert_eq!(h.meter.check_budget(&RequestScope::new().with_user("alice")), Ok(()));

    // Capture never refuses: calls over the limit are still recorded.
    spend(&h, "acme", HAIKU, 300_000);
    assert_eq!(h.meter.total_usage().calls, 3);
    assert_eq!(h.meter.budget_status()[0].calls, 3);
}

#[test]
fn an_exhausted_block_budget_allows_requests_again_after_its_reset() {
    let h = Harness::with(|b| {
        b.with_budget(
            Budget::new("daily", BudgetLimit::usd(1.0).unwrap())
                .with_period(BudgetPeriod::Day)
                .with_action(BudgetAction::Block),
        )
    });
    spend(&h, "acme", HAIKU, 1_000_000);
    let err = h.meter.check_budget(&acme()).unwrap_err();
    h.clock.set(err.resets_at());
    assert_eq!(h.meter.check_budget(&acme()), Ok(()));
}

#[test]
fn model_budgets_match_any_form_of_the_model_id() {
    let h = Harness::with(|b| {
        b.with_budget(
            Budget::new("opus", BudgetLimit::tokens(1_000))
                .with_scope(BudgetScope::model("claude-opus-4-5-20251101"))
                .with_action(BudgetAction::Block),
        )
    });
    spend(&h, "acme", "us.anthropic.claude-opus-4-5-20251101-v1:0", 600);
    spend(&h, "acme", HAIKU, 5_000);
    spend(&h, "acme", "claude-opus-4-5", 600);
    assert_eq!(h.meter.budget_status()[0].spent, BudgetAmount::Tokens(1_200));
    let opus = RequestScope::new().with_model("claude-opus-4-5@20251101");
    assert_eq!(h.meter.check_budget(&opus).unwrap_err().budget(), "opus");
    assert_eq!(h.meter.check_budget(&RequestScope::new().with_model(HAIKU)), Ok(()));
}

#[test]
fn a_scope_variant_built_directly_is_normalized_like_the_constructors() {
    let direct = Budget::new("opus", BudgetLimit::tokens(1_000))
        .with_scope(BudgetScope::Model("claude-opus-4-5-20251101".into()))
        .with_action(BudgetAction::Block);
    assert_eq!(direct.scope(), &BudgetScope::model("claude-opus-4-5"));
    let field = Budget::new("acme", BudgetLimit::tokens(1))
        .with_scope(BudgetScope::Dimension { name: "tenant.id".into(), value: "acme".into() });
    assert_eq!(field.scope(), &BudgetScope::tenant("acme"));
    let h = Harness::with(|b| b.with_budget(direct));
    spend(&h, "acme", "claude-opus-4-5", 1_200);
    assert_eq!(h.meter.budget_status()[0].spent, BudgetAmount::Tokens(1_200));
    let opus = RequestScope::new().with_model("claude-opus-4-5");
    assert_eq!(h.meter.check_budget(&opus).unwrap_err().budget(), "opus", "the block budget blocks");
}

#[test]
fn unpriced_calls_are_counted_apart_in_usd_budgets() {
    let h = Harness::with(|b| b.with_budget(Budget::new("usd", BudgetLimit::usd(1.0).unwrap())));
    spend(&h, "acme", "my-finetune", 1_000_000);
    let s = &h.meter.budget_status()[0];
    assert_eq!((s.calls, s.unpriced_calls), (1, 1));
    assert_eq!(s.spent, BudgetAmount::Usd(Money::ZERO), "an unknown price is not $0 spent, it is not counted");
}

#[test]
fn a_zero_limit_block_budget_freezes_its_scope() {
    let h = Harness::with(|b| {
        b.with_budget(
            Budget::new("frozen", BudgetLimit::tokens(0))
                .with_scope(BudgetScope::project("legacy"))
                .with_action(BudgetAction::Block),
        )
    });
    assert!(h.meter.check_budget(&RequestScope::new().with_project("legacy")).is_err());
    assert_eq!(h.meter.check_budget(&RequestScope::new().with_project("new")), Ok(()));
}

/// A meter with a $1 `Block` budget on tenant acme, and a runtime to run `guard` on.
fn acme_hard_with_runtime() -> (Harness, tokio::runtime::Runtime) {
    let h = Harness::with(|b| {
        b.with_budget(
            Budget::new("acme-hard", BudgetLimit::usd(1.0).unwrap())
                .with_scope(BudgetScope::tenant("acme"))
                .with_action(BudgetAction::Block),
        )
    });
    (h, tokio::runtime::Builder::new_current_thread().build().unwrap())
}

#[test]
fn guard_runs_the_call_only_within_budget() {
    let (h, runtime) = acme_hard_with_runtime();

    let answer = runtime.block_on(h.meter.guard(&acme(), async { 42 }));
    assert_eq!(answer, Ok(42));

    spend(&h, "acme", HAIKU, 1_500_000);
    let polled = Arc::new(AtomicBool::new(false));
    let flag = polled.clone();
    let refused = runtime.block_on(h.meter.guard(&acme(), async move {
        flag.store(true, Ordering::SeqCst);
        42
    }));
    assert_eq!(refused.unwrap_err().budget(), "acme-hard");
    assert!(!polled.load(Ordering::SeqCst), "a refused call is never started");

    let other = RequestScope::new().with_tenant("globex");
    assert_eq!(runtime.block_on(h.meter.guard(&other, async { "ok" })), Ok("ok"));
}

#[test]
fn a_refused_future_that_owns_its_call_span_is_not_a_call() {
    use tracing::Instrument;
    let (h, runtime) = acme_hard_with_runtime();
    spend(&h, "acme", HAIKU, 1_500_000);
    let before = h.meter.capture_stats();
    assert_eq!((before.calls, before.unsent_calls), (1, 0));

    // The client made the call span before the check (`send(req).instrument(span)`): refused, it closes unpolled.
    let refused = h.run(|| {
        let _tenant = info_span!("request", tenant.id = "acme").entered();
        let call = info_span!("chat", gen_ai.request.model = HAIKU, input_tokens = tracing::field::Empty);
        let request = async {
            tracing::Span::current().record("input_tokens", 10_u64);
        }
        .instrument(call);
        runtime.block_on(h.meter.guard(&acme(), request))
    });
    assert_eq!(refused.unwrap_err().budget(), "acme-hard");
    let after = h.meter.capture_stats();
    assert_eq!((after.calls, after.unmetered_calls, after.unsent_calls), (1, 0, 1), "{after:?}");
    assert_eq!(h.seen.calls().len(), 1, "no record for the request never sent");

    // README's own pattern: the caller holds a clone (`fut.instrument(span.clone())`) and drops it after the
    // refusal. `Instrumented` enters its span to drop the future: the span is known as the refused request's.
    let held = h.run(|| {
        let call = info_span!("chat", gen_ai.request.model = HAIKU, input_tokens = tracing::field::Empty);
        let refused = runtime.block_on(h.meter.guard(&acme(), async {}.instrument(call.clone())));
        drop(call);
        refused
    });
    assert!(held.is_err());
    let last = h.meter.capture_stats();
    assert_eq!((last.calls, last.unmetered_calls, last.unsent_calls), (1, 0, 2), "{last:?}");
    // A task or tool span the refused request owned is no task or tool execution either.
    h.run(|| {
        let task = info_span!("review", task = "review");
        let tool = info_span!("execute_tool", gen_ai.operation.name = "execute_tool", gen_ai.tool.name = "grep");
        assert!(runtime.block_on(h.meter.guard(&acme(), async {}.instrument(task))).is_err());
        assert!(runtime.block_on(h.meter.guard(&acme(), async {}.instrument(tool))).is_err());
    });
    let tasks = h.meter.capture_stats();
    assert_eq!((tasks.tasks, tasks.tool_calls), (0, 0), "{tasks:?}");

    // Allowed, the same future is a call as ever.
    let other = RequestScope::new().with_tenant("globex");
    h.run(|| {
        let call = info_span!("chat", gen_ai.request.model = HAIKU, input_tokens = tracing::field::Empty);
        let request = async {
            tracing::Span::current().record("input_tokens", 10_u64);
        }
        .instrument(call);
        runtime.block_on(h.meter.guard(&other, request)).unwrap();
    });
    let allowed = h.meter.capture_stats();
    assert_eq!((allowed.calls, allowed.unsent_calls), (2, 2), "{allowed:?}");
    assert_eq!(h.seen.calls().last().unwrap().tokens.input, 10);
}

#[test]
fn a_scope_naming_the_span_field_means_its_dimension() {
    // `tenant.id` is the field that fills `tenant`: a budget written with it blocks like one written with `tenant`.
    assert_eq!(BudgetScope::dimension("tenant.id", "acme"), BudgetScope::tenant("acme"));
    assert_eq!(BudgetScope::dimension("gen_ai.conversation.id", "s1"), BudgetScope::dimension("session", "s1"));
    assert_eq!(BudgetScope::dimension("gen_ai.request.model", "claude-haiku-4-5-20251001"), BudgetScope::model(HAIKU));
    let budgets = tokenmeter::budget::parse_budgets_toml(
        "[budgets.acme]\nlimit_usd = 1\naction = \"block\"\nscope = { \"tenant.id\" = \"acme\" }\n",
        "budgets.toml",
    )
    .unwrap();
    let h = Harness::with(|b| budgets.into_iter().fold(b, |b, budget| b.with_budget(budget)));
    spend(&h, "acme", HAIKU, 1_200_000);
    assert_eq!(h.meter.check_budget(&acme()).unwrap_err().budget(), "acme");
    // A request scope naming the span field too: it asked for `tenant` and found nothing, so the block budget
    // let it through.
    let by_field = RequestScope::new().with_dimension("tenant.id", "acme");
    assert_eq!(by_field.get("tenant"), Some("acme"));
    assert_eq!(h.meter.check_budget(&by_field).unwrap_err().budget(), "acme");
    let by_model_field = RequestScope::new().with_dimension("gen_ai.request.model", "claude-haiku-4-5-20251001");
    assert_eq!(by_model_field.get("model"), Some(HAIKU));
}

#[test]
fn a_budget_on_a_dimension_the_meter_does_not_capture_is_refused() {
    let misspelt =
        || Budget::new("typo", BudgetLimit::usd(1.0).unwrap()).with_scope(BudgetScope::dimension("tennant", "acme"));
    let err = tokenmeter::TokenMeter::builder().with_budget(misspelt()).try_build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "budget `typo` is scoped to the dimension `tennant`, which this meter does not capture (dimensions: \
         session, user, tenant, project, agent, operation, task; extra dimensions: none)"
    );
    // An extra dimension the meter captures is fine.
    let team = Budget::new("team", BudgetLimit::usd(1.0).unwrap()).with_scope(BudgetScope::dimension("team", "a"));
    assert!(tokenmeter::TokenMeter::builder().with_dimension("team").with_budget(team).try_build().is_ok());
    // `build` logs the error and keeps going (as with an unusable journal).
    let meter = tokenmeter::TokenMeter::builder().with_budget(misspelt()).build();
    assert_eq!(meter.budget_status().len(), 1);

    // From a budgets file, the error says where the scope is written.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budgets.toml");
    std::fs::write(
        &path,
        "[budgets.ok]\nlimit_usd = 5\n\n[budgets.typo]\nlimit_usd = 1\nscope = { tennant = \"acme\" }\n",
    )
    .unwrap();
    let err = tokenmeter::TokenMeter::builder().with_budgets_file(&path).unwrap().try_build().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:6: field `budgets.typo.scope`: budget `typo` is scoped to the dimension `tennant`, which this meter \
             does not capture (dimensions: session, user, tenant, project, agent, operation, task; extra dimensions: \
             none)",
            path.display()
        )
    );
}

#[test]
fn a_clock_that_ran_ahead_and_stepped_back_does_not_blind_the_budget() {
    let h = Harness::with(|b| {
        b.with_budget(
            Budget::new("daily", BudgetLimit::usd(10.0).unwrap())
                .with_period(BudgetPeriod::Day)
                .with_action(BudgetAction::Block),
        )
    });
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 14, 10, 0, 0).unwrap());
    // A day ahead for one call, then back: the budget's period had moved to the 15th, and the calls of the
    // 14th ended before it began. They were skipped, so $15 against a $10 block budget was allowed.
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 15, 10, 0, 0).unwrap());
    spend(&h, "acme", HAIKU, 1_000_000);
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 14, 10, 1, 0).unwrap());
    spend(&h, "acme", HAIKU, 9_000_000);
    spend(&h, "acme", HAIKU, 5_000_000);
    let state = &h.meter.budget_status()[0];
    assert_eq!(state.spent, BudgetAmount::Usd(Money::from_picos(15_000_000_000_000)));
    assert_eq!(state.period_start, Utc.with_ymd_and_hms(2026, 3, 14, 0, 0, 0).unwrap());
    assert!(h.meter.check_budget(&acme()).is_err(), "$15 of $10: refused");
    // The next day starts afresh.
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 15, 0, 0, 1).unwrap());
    assert_eq!(h.meter.check_budget(&acme()), Ok(()));
}

/// A $1 daily budget with the default thresholds: $0.60 on the 14th (the 50% alert), $0.45 with the clock a
/// day ahead, then the clock back on the 14th at 14:11. Returns the harness and the thresholds alerted so far.
fn spent_ahead_and_back(action: BudgetAction) -> (Harness, Arc<parking_lot::Mutex<Vec<u32>>>) {
    let fired = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let sink = fired.clone();
    let h = Harness::with(|b| {
        b.with_budget(
            Budget::new("daily", BudgetLimit::usd(1.0).unwrap()).with_period(BudgetPeriod::Day).with_action(action),
        )
        .with_budget_alert_callback(move |alert| {
            if let tokenmeter::budget::AlertKind::ThresholdCrossed { percent } = alert.kind {
                sink.lock().push(percent);
            }
        })
    });
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 14, 14, 0, 0).unwrap());
    spend(&h, "acme", HAIKU, 600_000);
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 15, 14, 0, 0).unwrap());
    spend(&h, "acme", HAIKU, 450_000);
    assert_eq!(*fired.lock(), [50], "$0.45 of the 15th: under 50%");
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 14, 14, 11, 0).unwrap());
    (h, fired)
}

#[test]
fn a_period_re_opened_by_a_check_fires_the_thresholds_its_spend_reached() {
    // Back on the 14th, `check_budget` re-opened it with $1.05 and refused, but no alert fired for 75, 90 or
    // 100%: a refusing `Block` budget lets no call through to fire them, and the status said
    // `thresholds_crossed: [50]`.
    let (h, fired) = spent_ahead_and_back(BudgetAction::Block);
    assert!(h.meter.check_budget(&acme()).is_err(), "$1.05 of $1: refused");
    assert_eq!(*fired.lock(), [50, 75, 90, 100]);
    let state = &h.meter.budget_status()[0];
    assert_eq!(state.thresholds_crossed, [50, 75, 90, 100], "{state:?}");
    assert_eq!(*fired.lock(), [50, 75, 90, 100], "once");
}

#[test]
fn a_period_re_opened_by_a_status_read_fires_its_alerts_there() {
    let (h, fired) = spent_ahead_and_back(BudgetAction::Warn);
    let state = &h.meter.budget_status()[0];
    assert_eq!(state.thresholds_crossed, [50, 75, 90, 100], "{state:?}");
    assert_eq!(*fired.lock(), [50, 75, 90, 100]);
}

#[test]
fn a_clock_that_ran_ahead_and_stepped_back_does_not_blind_a_rolling_budget() {
    let fired = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = fired.clone();
    let h = Harness::with(|b| {
        b.with_budget(
            Budget::new("hourly", BudgetLimit::usd(1.0).unwrap())
                .with_period(BudgetPeriod::Rolling(std::time::Duration::from_secs(3_600)))
                .with_thresholds([50])
                .with_action(BudgetAction::Block),
        )
        .with_budget_alert_callback(move |_| {
            count.fetch_add(1, Ordering::SeqCst);
        })
    });
    let t = Utc.with_ymd_and_hms(2026, 3, 14, 10, 0, 0).unwrap();
    h.clock.set(t);
    spend(&h, "acme", HAIKU, 600_000); // $0.60: the 50% alert
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    // One call with the clock two hours ahead, then back: the window was read at that call's bucket, which
    // held almost nothing, so the 50% alert re-armed and fired again on every call.
    h.clock.set(t + chrono::Duration::hours(2));
    spend(&h, "acme", HAIKU, 1_000);
    h.clock.set(t + chrono::Duration::minutes(1));
    for _ in 0..3 {
        spend(&h, "acme", HAIKU, 1_000);
    }
    // Once more (re-armed while the clock ran ahead, the window then held $0.001), not once a call.
    assert_eq!(fired.load(Ordering::SeqCst), 2);
    // A call whose bucket shares a slot with the one stamped ahead (59 minutes on, a minute a bucket) was refused,
    // uncounted: $0.50 more let through a $1 block budget.
    h.clock.set(t + chrono::Duration::minutes(59));
    spend(&h, "acme", HAIKU, 500_000);
    let state = &h.meter.budget_status()[0];
    assert_eq!(state.spent, BudgetAmount::Usd(Money::from_picos(1_104_000_000_000)), "{state:?}");
    assert!(h.meter.check_budget(&acme()).is_err(), "$1.104 of $1: refused");
}

#[test]
fn a_clock_that_steps_back_less_than_five_minutes_does_not_blind_a_rolling_budget() {
    // A $1 rolling-minute block budget with $1.20 spent; the clock steps back 90 s (an NTP step). Only steps of
    // more than 5 minutes were undone: the hard stop read the minute ending 90 s ago, which held nothing, and let
    // calls through, and calls whose bucket shared a slot with one stamped before the step were dropped uncounted.
    let h = Harness::with(|b| {
        b.with_budget(
            Budget::new("minute", BudgetLimit::usd(1.0).unwrap())
                .with_period(BudgetPeriod::Rolling(std::time::Duration::from_secs(60)))
                .with_action(BudgetAction::Block),
        )
    });
    let t = Utc.with_ymd_and_hms(2026, 3, 14, 10, 0, 0).unwrap();
    for s in [0, 10, 20, 30] {
        h.clock.set(t + chrono::Duration::seconds(s));
        spend(&h, "acme", HAIKU, 300_000);
    }
    assert!(h.meter.check_budget(&acme()).is_err(), "$1.20 of $1");
    h.clock.set(t - chrono::Duration::seconds(60));
    assert!(h.meter.check_budget(&acme()).is_err(), "the $1.20 was spent within the last minute");
    spend(&h, "acme", HAIKU, 100_000);
    let state = &h.meter.budget_status()[0];
    assert_eq!(state.spent, BudgetAmount::Usd(Money::from_picos(1_300_000_000_000)), "{state:?}");

    // Less than a bucket (a second here) back, nothing moves; the check reads the window to the newest spend, as
    // alerts do, not the window ending before it.
    let h = Harness::with(|b| {
        b.with_budget(
            Budget::new("minute", BudgetLimit::usd(1.0).unwrap())
                .with_period(BudgetPeriod::Rolling(std::time::Duration::from_secs(60)))
                .with_action(BudgetAction::Block),
        )
    });
    h.clock.set(t + chrono::Duration::milliseconds(1_200));
    spend(&h, "acme", HAIKU, 1_200_000);
    h.clock.set(t + chrono::Duration::milliseconds(500));
    assert!(h.meter.check_budget(&acme()).is_err(), "$1.20 spent 0.7 s on");
}

#[test]
fn a_clock_that_ran_a_day_ahead_and_came_back_keeps_the_days_spend() {
    // A $1 daily block budget with $0.49 spent by 14:00; the clock runs a day ahead for one call (a resumed VM, an
    // NTP step) and comes back. Coming back re-opened today with the one call's $0.001: the $0.49 was gone for the
    // rest of the day, and about $0.50 more got through the block.
    let h = Harness::with(|b| {
        b.with_budget(
            Budget::new("daily", BudgetLimit::usd(1.0).unwrap())
                .with_period(BudgetPeriod::Day)
                .with_action(BudgetAction::Block),
        )
    });
    let t = Utc.with_ymd_and_hms(2026, 3, 14, 14, 0, 0).unwrap();
    h.clock.set(t);
    spend(&h, "acme", HAIKU, 490_000);
    h.clock.set(t + chrono::Duration::days(1));
    spend(&h, "acme", HAIKU, 1_000);
    h.clock.set(t + chrono::Duration::minutes(11));
    // Read back before any call: the hard stop and the status see today's spend again.
    let state = &h.meter.budget_status()[0];
    assert_eq!(state.spent, BudgetAmount::Usd(Money::from_picos(491_000_000_000)), "{state:?}");
    assert_eq!(state.period_start, Utc.with_ymd_and_hms(2026, 3, 14, 0, 0, 0).unwrap());
    spend(&h, "acme", HAIKU, 510_000);
    let state = &h.meter.budget_status()[0];
    assert_eq!(state.spent, BudgetAmount::Usd(Money::from_picos(1_001_000_000_000)), "{state:?}");
    assert!(h.meter.check_budget(&acme()).is_err(), "$1.001 of $1: refused");

    // The same with a call first when the clock is back (no read before it).
    let h = Harness::with(|b| {
        b.with_budget(Budget::new("daily", BudgetLimit::usd(1.0).unwrap()).with_period(BudgetPeriod::Day))
    });
    h.clock.set(t);
    spend(&h, "acme", HAIKU, 490_000);
    h.clock.set(t + chrono::Duration::days(1));
    spend(&h, "acme", HAIKU, 1_000);
    h.clock.set(t + chrono::Duration::minutes(11));
    spend(&h, "acme", HAIKU, 2_000);
    let state = &h.meter.budget_status()[0];
    assert_eq!(state.spent, BudgetAmount::Usd(Money::from_picos(493_000_000_000)), "{state:?}");
    assert_eq!(state.calls, 3);
}

#[test]
fn a_call_ending_just_before_the_period_counts_in_it() {
    // Two threads finish calls on either side of midnight, the later one accounted first: the earlier one is
    // not lost.
    let h = Harness::with(|b| {
        b.with_budget(Budget::new("daily", BudgetLimit::usd(10.0).unwrap()).with_period(BudgetPeriod::Day))
    });
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 15, 0, 0, 1).unwrap());
    spend(&h, "acme", HAIKU, 1_000_000);
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 14, 23, 59, 59).unwrap());
    spend(&h, "acme", HAIKU, 2_000_000);
    let state = &h.meter.budget_status()[0];
    assert_eq!(state.spent, BudgetAmount::Usd(Money::from_picos(3_000_000_000_000)));
    assert_eq!(state.period_start, Utc.with_ymd_and_hms(2026, 3, 15, 0, 0, 0).unwrap());
}

#[test]
fn a_scope_value_longer_than_the_dimension_cap_is_refused() {
    // Captured values are cut at 128 bytes by default: a budget on a 150-byte tenant id counted nothing, and a
    // block budget never blocked.
    let long = format!("urn:tenant:{}", "x".repeat(139));
    let budget = || {
        Budget::new("long", BudgetLimit::usd(1.0).unwrap())
            .with_action(BudgetAction::Block)
            .with_scope(BudgetScope::tenant(long.as_str()))
    };
    let err = tokenmeter::TokenMeter::builder().with_budget(budget()).try_build().unwrap_err();
    assert!(matches!(err, tokenmeter::BuildError::BudgetScopeTooLong { len: 150, max: 128, .. }), "{err:?}");
    assert!(err.to_string().contains("raise `with_max_dimension_len` to at least 150"), "{err}");
    // With the cap raised, the budget counts the tenant's calls and blocks.
    let h = Harness::with(|b| b.with_max_dimension_len(256).with_budget(budget()));
    spend(&h, &long, HAIKU, 1_200_000);
    let request = RequestScope::new().with_tenant(long.as_str());
    assert_eq!(h.meter.check_budget(&request).unwrap_err().budget(), "long");
}

#[test]
fn an_empty_scope_value_or_budget_name_is_refused() {
    // Capture keeps no empty value: a budget on `tenant("")` counted nothing and a block budget never blocked.
    let build = |budgets: Vec<Budget>| {
        budgets.into_iter().fold(tokenmeter::TokenMeter::builder(), |b, x| b.with_budget(x)).try_build().unwrap_err()
    };
    let limit = || BudgetLimit::tokens(100);
    for scope in [BudgetScope::tenant(""), BudgetScope::dimension("project", " "), BudgetScope::model("")] {
        let err = build(vec![Budget::new("b", limit()).with_scope(scope)]);
        assert!(matches!(err, tokenmeter::BuildError::BudgetScopeEmpty { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "budget `b` is scoped to an empty value, which no call carries: name the value it counts"
        );
    }
    // The budget file refuses an empty name; in code it was taken.
    let err = build(vec![Budget::new(" ", limit())]);
    assert!(matches!(err, tokenmeter::BuildError::BudgetNameEmpty), "{err:?}");
}

#[test]
fn a_dollar_budget_on_a_model_without_a_price_is_refused_at_build() {
    // A misspelt id: its calls (if any) count $0, so the budget is never reached and a `Block` never blocks.
    let misspelt = || {
        Budget::new("sonnet", BudgetLimit::usd(50.0).unwrap())
            .with_scope(BudgetScope::model("claude-sonet-4-5"))
            .with_action(BudgetAction::Block)
    };
    let err = tokenmeter::TokenMeter::builder().with_budget(misspelt()).try_build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "budget `sonnet` counts dollars on model `claude-sonet-4-5`, which the price book has no price for: its \
         calls would count $0 and the budget would never be reached; fix the model id, or give it a price \
         (PriceBook::set, a price file)"
    );
    // Any form of a priced id is fine, and a token budget may name any model.
    let dated = Budget::new("opus", BudgetLimit::usd(50.0).unwrap())
        .with_scope(BudgetScope::model("us.anthropic.claude-opus-4-5-20251101-v1:0"));
    let tokens = Budget::new("gpt", BudgetLimit::tokens(1_000)).with_scope(BudgetScope::model("gpt-4o"));
    assert!(tokenmeter::TokenMeter::builder().with_budget(dated).with_budget(tokens).try_build().is_ok());
    // `build()` logs it and keeps the budget, as for the other scope errors.
    let h = Harness::with(|b| b.with_budget(misspelt()));
    assert_eq!(h.meter.budget_status().len(), 1);
}

#[test]
fn a_block_budget_filled_while_the_clock_ran_ahead_refuses_until_the_real_periods_end() {
    // The first calls of the meter's life came with the clock a day ahead (a resumed VM) and filled a daily
    // `Block` budget on the 15th; then the clock was corrected to the 14th. A refusing budget lets no call
    // through to re-open the 14th, and `check_budget` read the 15th's spend and end: refused until the 16th,
    // through a 15th with nothing spent in it.
    let h = Harness::with(|b| {
        b.with_budget(
            Budget::new("daily", BudgetLimit::usd(1.0).unwrap())
                .with_period(BudgetPeriod::Day)
                .with_action(BudgetAction::Block),
        )
    });
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 15, 10, 0, 0).unwrap());
    spend(&h, "acme", HAIKU, 1_200_000);
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 14, 10, 0, 0).unwrap());
    let err = h.meter.check_budget(&acme()).unwrap_err();
    assert_eq!(err.spent(), BudgetAmount::Usd(Money::from_picos(1_200_000_000_000)), "the spend still counts");
    assert_eq!(err.resets_at(), Utc.with_ymd_and_hms(2026, 3, 15, 0, 0, 0).unwrap(), "{err}");
    let state = &h.meter.budget_status()[0];
    assert_eq!(state.period_start, Utc.with_ymd_and_hms(2026, 3, 14, 0, 0, 0).unwrap(), "{state:?}");
    // The real 15th starts afresh.
    h.clock.set(Utc.with_ymd_and_hms(2026, 3, 15, 0, 0, 1).unwrap());
    assert_eq!(h.meter.check_budget(&acme()), Ok(()));
    assert_eq!(h.meter.budget_status()[0].spent, BudgetAmount::Usd(Money::ZERO));
}
