//! The journal: one JSONL file per UTC day with a schema version, replayed on start so that a restarted meter
//! reports what the one before it did; torn and foreign lines are skipped and reported; retention; drops.

use crate::common;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, TimeZone, Utc};
use parking_lot::Mutex;
use tokenmeter::budget::{AlertKind, Budget, BudgetAction, BudgetAlert, BudgetLimit, BudgetPeriod, RequestScope};
use tokenmeter::journal::{FsyncPolicy, JournalConfig, JournalError, SkipReason};
use tokenmeter::{BuildError, CallRecord, Clock, ManualClock, RecordSink, TokenMeter, TokenMeterBuilder};
use tracing::info_span;
use tracing_subscriber::prelude::*;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn journal(dir: &Path) -> JournalConfig {
    JournalConfig::new(dir).with_fsync(FsyncPolicy::EveryRecord)
}

fn meter(
    dir: &Path,
    clock: &ManualClock,
    configure: impl FnOnce(TokenMeterBuilder) -> TokenMeterBuilder,
) -> TokenMeter {
    configure(TokenMeter::builder().with_clock(clock.clone()).with_journal(journal(dir))).try_build().unwrap()
}

/// One claude-haiku-4-5 call costing `micros` micro-USD, by user alice.
fn spend(meter: &TokenMeter, micros: u64) {
    spend_as(meter, "alice", micros);
}

fn journal_file(dir: &Path, day: &str) -> PathBuf {
    dir.join(format!("tokenmeter-{day}.jsonl"))
}

type Alerts = Arc<Mutex<Vec<BudgetAlert>>>;

fn budget_with_alerts(alerts: &Alerts) -> impl FnOnce(TokenMeterBuilder) -> TokenMeterBuilder {
    budget_of(10.0, alerts)
}

fn thresholds(alerts: &Alerts) -> Vec<u32> {
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
fn a_restarted_meter_reports_the_same_month_to_date_spend() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 2, 27, 12, 0));
    let alerts: Alerts = Arc::default();
    let before = meter(dir.path(), &clock, budget_with_alerts(&alerts));
    spend(&before, 3_000_000); // February: not in March's spend
    clock.set(utc(2026, 3, 2, 9, 0));
    spend(&before, 2_000_000);
    clock.set(utc(2026, 3, 10, 18, 30));
    spend(&before, 2_500_000);
    clock.set(utc(2026, 3, 14, 9, 0));
    spend(&before, 1_000_000); // $5.50 this month: 50% crossed
    assert_eq!(thresholds(&alerts), [50]);
    before.flush().unwrap();
    let stats = before.journal_stats().unwrap();
    assert_eq!((stats.enqueued, stats.written, stats.synced, stats.dropped), (4, 4, 4, 0));
    let status = before.budget_status();
    let totals = before.total_usage();
    let models = before.model_usage();
    drop(before);

    let alerts_after: Alerts = Arc::default();
    let after = meter(dir.path(), &clock, budget_with_alerts(&alerts_after));
    assert_eq!(after.budget_status(), status, "the same month-to-date spend, calls and crossed thresholds");
    assert_eq!(after.budget_status()[0].spent.to_string(), "$5.50");
    assert_eq!(after.total_usage(), totals);
    assert_eq!(after.model_usage(), models);
    assert!(alerts_after.lock().is_empty(), "replay never fires alerts again");
    let replay = after.journal_stats().unwrap().replay;
    assert_eq!((replay.files, replay.records, replay.skipped_lines), (4, 4, 0));

    spend(&after, 2_000_000); // $7.50: only 75% is new
    assert_eq!(thresholds(&alerts_after), [75]);
}

/// A meter with a $10 monthly budget spends $5.50 (its 50% alert fires) and stops, its journal flushed.
fn spend_past_half_of_ten_dollars(dir: &Path, clock: &ManualClock) {
    let alerts: Alerts = Arc::default();
    let before = meter(dir, clock, budget_of(10.0, &alerts));
    spend(&before, 5_500_000);
    assert_eq!(thresholds(&alerts), [50]);
    before.flush().unwrap();
}

fn budget_of(limit_usd: f64, alerts: &Alerts) -> impl FnOnce(TokenMeterBuilder) -> TokenMeterBuilder {
    let sink = alerts.clone();
    move |b| {
        b.with_budget(Budget::new("monthly", BudgetLimit::usd(limit_usd).unwrap()))
            .with_budget_alert_callback(move |a| sink.lock().push(a.clone()))
    }
}

#[test]
fn the_journal_keeps_which_alerts_were_delivered_and_reading_it_back_skips_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    spend_past_half_of_ten_dollars(dir.path(), &clock);
    let text = std::fs::read_to_string(journal_file(dir.path(), "2026-03-14")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // The call, its 50% alert and the projection's (at this rate, $12 by the end of March).
    assert_eq!(lines.len(), 3, "{text}");
    let alert: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(alert["v"], 1);
    assert_eq!(alert["budget_alert"]["budget"], "monthly");
    assert_eq!(alert["budget_alert"]["alert"], serde_json::json!({"event": "threshold_crossed", "percent": 50}));
    assert_eq!(alert["budget_alert"]["period_start"], "2026-03-01T00:00:00Z");
    // Reading the journal without a meter sees the call only.
    let mut calls = 0;
    let report = tokenmeter::journal::read(dir.path(), |_| calls += 1).unwrap();
    assert_eq!((calls, report.records, report.budget_alerts, report.skipped_lines), (1, 1, 2, 0));
}

#[test]
fn a_limit_lowered_across_a_restart_alerts_at_its_new_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    spend_past_half_of_ten_dollars(dir.path(), &clock); // 55% of $10

    // Restarted with $6: the same $5.50 is 92% of it. Those thresholds were never alerted: they fire with the
    // first call, budget check or status read after the build (not inside it: the application's subscriber is
    // usually installed after the meter is built, and would not hear them).
    let after_alerts: Alerts = Arc::default();
    let after = meter(dir.path(), &clock, budget_of(6.0, &after_alerts));
    assert_eq!(thresholds(&after_alerts), Vec::<u32>::new(), "nothing inside the build");
    spend(&after, 100_000); // $5.60
    assert_eq!(thresholds(&after_alerts), [50, 75, 90]);
    let spent: Vec<String> = after_alerts
        .lock()
        .iter()
        .filter(|a| matches!(a.kind, AlertKind::ThresholdCrossed { .. }))
        .map(|a| a.spent.to_string())
        .collect();
    assert_eq!(spent, ["$5.50"; 3], "as the build left them, before the call that delivered them");
    assert_eq!(after.budget_status()[0].thresholds_crossed, [50, 75, 90]);
    spend(&after, 500_000); // $6.10
    assert_eq!(thresholds(&after_alerts), [50, 75, 90, 100]);
    after.flush().unwrap();
    drop(after);

    // Journaled as delivered: the next restart fires none of them again.
    let again: Alerts = Arc::default();
    let _again = meter(dir.path(), &clock, budget_of(6.0, &again));
    assert_eq!(thresholds(&again), Vec::<u32>::new());
}

#[cfg(feature = "otlp")]
#[test]
fn alerts_owed_after_a_restart_are_not_delivered_on_the_exporters_thread() {
    // The exporter reads budget states at each collection (`tokenmeter.budget.*` gauges): after a restart that read
    // delivered the owed alerts, so the application's callbacks and alert events ran on the exporter's thread,
    // before its subscriber was perhaps even installed.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    spend_past_half_of_ten_dollars(dir.path(), &clock);
    let exporter = opentelemetry_sdk::metrics::InMemoryMetricExporter::default();
    let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(exporter.clone()).build();
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().with_reader(reader).build();
    let alerts: Alerts = Arc::default();
    let after = meter(dir.path(), &clock, |b| budget_of(6.0, &alerts)(b.with_meter_provider(provider.clone())));
    after.flush_metrics().unwrap();
    assert!(!exporter.get_finished_metrics().unwrap().is_empty(), "collected");
    assert_eq!(thresholds(&alerts), Vec::<u32>::new(), "not on the exporter's thread");
    assert_eq!(after.budget_status()[0].thresholds_crossed, [50, 75, 90]);
    assert_eq!(thresholds(&alerts), [50, 75, 90], "with the application's own status read");
}

#[test]
fn a_block_budget_over_a_lowered_limit_alerts_with_its_first_check_though_it_refuses_every_call() {
    // $5.50 spent, then restarted with a $5 limit that blocks: every request is refused, so no call comes to
    // fire the 100% alert; it fires with the first budget check.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    spend_past_half_of_ten_dollars(dir.path(), &clock);
    let alerts: Alerts = Arc::default();
    let sink = alerts.clone();
    let after = meter(dir.path(), &clock, move |b| {
        b.with_budget(Budget::new("monthly", BudgetLimit::usd(5.0).unwrap()).with_action(BudgetAction::Block))
            .with_budget_alert_callback(move |a| sink.lock().push(a.clone()))
    });
    assert_eq!(thresholds(&alerts), Vec::<u32>::new(), "nothing inside the build");
    assert!(after.check_budget(&RequestScope::new()).is_err());
    assert_eq!(thresholds(&alerts), [50, 75, 90, 100], "with the first check, which refuses");
    assert!(after.check_budget(&RequestScope::new()).is_err());
    assert_eq!(thresholds(&alerts).len(), 4, "once");
    // Journaled then: a restart does not deliver them again.
    after.flush().unwrap();
    drop(after);
    let again: Alerts = Arc::default();
    let sink = again.clone();
    let restarted = meter(dir.path(), &clock, move |b| {
        b.with_budget(Budget::new("monthly", BudgetLimit::usd(5.0).unwrap()).with_action(BudgetAction::Block))
            .with_budget_alert_callback(move |a| sink.lock().push(a.clone()))
    });
    assert!(restarted.check_budget(&RequestScope::new()).is_err());
    assert_eq!(thresholds(&again), Vec::<u32>::new());
}

#[test]
fn an_alert_of_a_budget_whose_period_changed_does_not_count_for_the_new_one() {
    // June 2026 starts on a Monday: the month and the week begin at the same instant.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 6, 1, 9, 0));
    spend_past_half_of_ten_dollars(dir.path(), &clock);

    let weekly: Alerts = Arc::default();
    let sink = weekly.clone();
    let after = meter(dir.path(), &clock, move |b| {
        b.with_budget(Budget::new("monthly", BudgetLimit::usd(10.0).unwrap()).with_period(BudgetPeriod::Week))
            .with_budget_alert_callback(move |a| sink.lock().push(a.clone()))
    });
    spend(&after, 100_000);
    assert_eq!(thresholds(&weekly), [50]);
}

#[test]
fn a_budget_added_at_a_restart_alerts_at_the_thresholds_spend_already_passed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let before = meter(dir.path(), &clock, |b| b);
    spend(&before, 8_000_000);
    before.flush().unwrap();
    drop(before);

    let alerts: Alerts = Arc::default();
    let after = meter(dir.path(), &clock, budget_of(10.0, &alerts));
    spend(&after, 100_000); // $8.10 of $10
    assert_eq!(thresholds(&alerts), [50, 75]);
    after.flush().unwrap();
    drop(after);

    // Delivered once: the next restart remembers both.
    let again: Alerts = Arc::default();
    let third = meter(dir.path(), &clock, budget_of(10.0, &again));
    spend(&third, 100_000);
    assert!(again.lock().is_empty(), "{:?}", again.lock());
    // 50%, 75% and the projected overrun.
    assert_eq!(third.journal_stats().unwrap().replay.budget_alerts, 3);
}

/// A $10 budget over a rolling hour alerting at `thresholds`, its alerts pushed to `alerts`.
fn hourly_budget(
    alerts: &Alerts,
    thresholds: &'static [u32],
) -> impl FnOnce(TokenMeterBuilder) -> TokenMeterBuilder + use<> {
    let sink = alerts.clone();
    move |b: TokenMeterBuilder| {
        b.with_budget(
            Budget::new("hourly", BudgetLimit::usd(10.0).unwrap())
                .with_period(BudgetPeriod::Rolling(Duration::from_secs(3_600)))
                .with_thresholds(thresholds.iter().copied()),
        )
        .with_budget_alert_callback(move |a| sink.lock().push(a.clone()))
    }
}

#[test]
fn a_rolling_budget_remembers_its_alerts_inside_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let rolling = |alerts: &Alerts| hourly_budget(alerts, &tokenmeter::budget::DEFAULT_THRESHOLDS);
    let alerts: Alerts = Arc::default();
    let before = meter(dir.path(), &clock, rolling(&alerts));
    spend(&before, 6_000_000);
    assert_eq!(thresholds(&alerts), [50]);
    before.flush().unwrap();
    drop(before);

    // Half an hour later the call is still in the window: its alert is not delivered again.
    clock.set(utc(2026, 3, 14, 9, 30));
    let again: Alerts = Arc::default();
    let after = meter(dir.path(), &clock, rolling(&again));
    spend(&after, 100_000);
    assert!(again.lock().is_empty(), "{:?}", again.lock());
    drop(after);

    // Past the window the spend is gone, and so is the alert: reaching 50% again alerts again.
    clock.set(utc(2026, 3, 14, 11, 0));
    let later: Alerts = Arc::default();
    let third = meter(dir.path(), &clock, rolling(&later));
    spend(&third, 6_000_000);
    assert_eq!(thresholds(&later), [50]);
}

#[test]
fn a_rolling_budgets_alert_holds_while_spend_stays_over_its_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let rolling = |alerts: &Alerts| hourly_budget(alerts, &[50]);
    // 09:00 $6 alerts at 50%; 09:45 $6 more: $12 in the window, nothing new.
    let alerts: Alerts = Arc::default();
    let before = meter(dir.path(), &clock, rolling(&alerts));
    spend(&before, 6_000_000);
    clock.set(utc(2026, 3, 14, 9, 45));
    spend(&before, 6_000_000);
    assert_eq!(thresholds(&alerts), [50]);
    before.flush().unwrap();
    drop(before);

    // 10:30: the 09:00 call left the window, but the 09:45 one keeps spend over 50% as it has been since 09:00.
    // A meter that had kept running would not alert again; the restarted one alerted at its first call.
    clock.set(utc(2026, 3, 14, 10, 30));
    let again: Alerts = Arc::default();
    let after = meter(dir.path(), &clock, rolling(&again));
    spend(&after, 10_000);
    assert!(again.lock().is_empty(), "{:?}", again.lock());
    drop(after);

    // Spend that fell under the threshold between the alert and the restart, as a call saw it, re-armed the
    // threshold: 11:00 $6 alerts, 12:10 $6 alerts again (the 11:00 call had left the window). When the 12:10
    // alert's line is lost (a full queue, a crash before the writer's round), the 11:00 line alone must not
    // mark it delivered: the restarted meter delivers it again (at least once).
    clock.set(utc(2026, 3, 14, 11, 0));
    let dir = tempfile::tempdir().unwrap();
    let first: Alerts = Arc::default();
    let before = meter(dir.path(), &clock, rolling(&first));
    spend(&before, 6_000_000);
    clock.set(utc(2026, 3, 14, 12, 10));
    spend(&before, 6_000_000);
    assert_eq!(thresholds(&first), [50, 50]);
    before.flush().unwrap();
    drop(before);
    let file = journal_file(dir.path(), "2026-03-14");
    let text = std::fs::read_to_string(&file).unwrap();
    let kept: Vec<&str> = text.lines().filter(|l| !(l.contains("budget_alert") && l.contains("T12:10"))).collect();
    assert_eq!(kept.len(), text.lines().count() - 1, "the 12:10 alert's line");
    std::fs::write(&file, kept.join("\n") + "\n").unwrap();
    clock.set(utc(2026, 3, 14, 12, 20));
    let later: Alerts = Arc::default();
    let after = meter(dir.path(), &clock, rolling(&later));
    spend(&after, 10_000);
    assert_eq!(thresholds(&later), [50], "the 12:10 alert, whose line was lost, is delivered again");
}

#[test]
fn a_rolling_budgets_alert_holds_after_retention_deleted_the_day_it_fired() {
    // A rolling hour over 50% from 09:00 on the 14th to the 17th: one alert, on the 14th. A restart on the 17th
    // with a journal that keeps two days deletes the 14th's file, and the alert's line with it; the restarted
    // meter delivered the alert again. The first call of each day writes the alerts still held again.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let two_days = || journal(dir.path()).with_max_age(Some(Duration::from_secs(2 * 86_400)));
    let build = |alerts: &Alerts| {
        hourly_budget(alerts, &[50])(TokenMeter::builder().with_clock(clock.clone()).with_journal(two_days()))
            .try_build()
            .unwrap()
    };
    let alerts: Alerts = Arc::default();
    let before = build(&alerts);
    while clock.now() <= utc(2026, 3, 17, 9, 0) {
        spend(&before, 6_000_000);
        clock.advance(chrono::Duration::minutes(30));
    }
    assert_eq!(thresholds(&alerts), [50]);
    before.flush().unwrap();
    drop(before);
    let restated = std::fs::read_to_string(journal_file(dir.path(), "2026-03-16")).unwrap();
    assert_eq!(restated.lines().filter(|l| l.contains(r#""restated":true"#)).count(), 1, "{restated}");

    let again: Alerts = Arc::default();
    let after = build(&again);
    assert!(!journal_file(dir.path(), "2026-03-14").exists(), "retention deleted the day the alert fired");
    spend(&after, 10_000);
    assert!(again.lock().is_empty(), "{:?}", again.lock());
    // Spend that falls under the threshold re-arms it, and the next day restates nothing.
    clock.advance(chrono::Duration::days(1));
    spend(&after, 10_000);
    after.flush().unwrap();
    let next = std::fs::read_to_string(journal_file(dir.path(), "2026-03-18")).unwrap();
    assert!(!next.contains("budget_alert"), "{next}");
}

#[test]
fn tasks_and_tool_executions_come_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let before = meter(dir.path(), &clock, |b| b);
    let subscriber = tracing_subscriber::registry().with(before.layer());
    tracing::subscriber::with_default(subscriber, || {
        let _task = info_span!("triage", task = "triage", session.id = "s1").entered();
        for _ in 0..2 {
            let _call =
                info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 1_000u64).entered();
        }
        let _tool = info_span!("tool", gen_ai.operation.name = "execute_tool", gen_ai.tool.name = "search").entered();
    });
    let (tools, summary) = (before.tool_usage(), before.usage_summary(tokenmeter::Window::Last24Hours).unwrap());
    assert_eq!((summary.tasks, summary.calls, tools.len()), (1, 2, 1));
    before.flush().unwrap();
    assert_eq!(before.journal_stats().unwrap().written, 4, "two calls, a tool execution and a task");
    drop(before);

    let mut kinds = Vec::new();
    let report = tokenmeter::journal::read_entries(dir.path(), |e| {
        kinds.push(match e {
            tokenmeter::journal::JournalEntry::Call(_) => "call",
            tokenmeter::journal::JournalEntry::Task(t) => {
                assert_eq!((&*t.task, t.calls), ("triage", 2));
                "task"
            }
            tokenmeter::journal::JournalEntry::Tool(_) => "tool",
            _ => "other",
        })
    })
    .unwrap();
    assert_eq!(kinds, ["call", "call", "tool", "task"]);
    assert_eq!((report.records, report.tasks, report.tools, report.skipped_lines), (2, 1, 1, 0));

    let after = meter(dir.path(), &clock, |b| b);
    assert_eq!(after.tool_usage(), tools);
    assert_eq!(after.usage_summary(tokenmeter::Window::Last24Hours).unwrap(), summary);
    let replay = after.journal_stats().unwrap().replay;
    assert_eq!((replay.records, replay.tasks, replay.tools), (2, 1, 1));
    // Capture statistics stay this process's own.
    assert_eq!(after.capture_stats().tasks, 0);
}

#[test]
fn a_replayed_call_stamped_a_little_after_the_clock_counts_now_not_in_a_later_period() {
    let daily = |b: TokenMeterBuilder| {
        b.with_budget(
            Budget::new("daily", BudgetLimit::usd(10.0).unwrap())
                .with_period(BudgetPeriod::Day)
                .with_action(BudgetAction::Block),
        )
    };
    // A process on a host whose clock runs 40 minutes fast shares the journal, past midnight on its clock.
    let dir = tempfile::tempdir().unwrap();
    let fast = ManualClock::new(utc(2026, 3, 15, 0, 10));
    let other = meter(dir.path(), &fast, daily);
    spend(&other, 1_000_000);
    other.flush().unwrap();
    drop(other);

    // Its call counts today, as the ledger counts it; it does not move the budget into tomorrow, where today's
    // calls were not counted at all and the block budget never refused.
    let clock = ManualClock::new(utc(2026, 3, 14, 23, 30));
    let m = meter(dir.path(), &clock, daily);
    spend(&m, 9_000_000);
    let status = &m.budget_status()[0];
    assert_eq!((status.period_start, status.resets_at), (utc(2026, 3, 14, 0, 0), utc(2026, 3, 15, 0, 0)));
    assert_eq!((status.spent.to_string(), status.calls), ("$10.00".to_owned(), 2));
    assert!(m.check_budget(&RequestScope::new()).is_err());
    assert_eq!(m.journal_stats().unwrap().replay.ahead_of_clock, 0);
}

#[test]
fn records_stamped_far_after_the_clock_are_left_out_of_every_restart_and_reported() {
    let monthly = |b: TokenMeterBuilder| b.with_budget(Budget::new("monthly", BudgetLimit::usd(10.0).unwrap()));
    // A clock that jumped months ahead wrote $3 into a day file of next March; then it was set right.
    let dir = tempfile::tempdir().unwrap();
    let wrong = ManualClock::new(utc(2027, 3, 14, 10, 0));
    let skewed = meter(dir.path(), &wrong, monthly);
    spend(&skewed, 3_000_000);
    skewed.flush().unwrap();
    drop(skewed);

    // Restarts in December and in January: the $3 was spent at a time no one knows, and counted "now" it would
    // land in each restart's month again. It is left out of the budgets, the totals and the ledger, and said.
    for now in [utc(2026, 12, 5, 12, 0), utc(2027, 1, 9, 12, 0)] {
        let clock = ManualClock::new(now);
        let m = meter(dir.path(), &clock, monthly);
        spend(&m, 1_000_000);
        let status = &m.budget_status()[0];
        assert_eq!((status.spent.to_string(), status.calls), ("$1.00".to_owned(), 1), "{now}");
        // January also replays December's own call.
        let earlier = u64::from(now.year() == 2027);
        assert_eq!(m.total_usage().calls, 1 + earlier);
        let replay = m.journal_stats().unwrap().replay;
        assert_eq!((replay.records, replay.ahead_of_clock), (1 + earlier, 1), "{now}");
        assert!(replay.latest_ahead.is_some_and(|t| t >= utc(2027, 3, 14, 10, 0)), "{replay:?}");
        m.flush().unwrap();
    }
}

#[test]
fn one_file_per_utc_day_each_line_versioned() {
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<CallRecord>>>);
    impl RecordSink for Seen {
        fn on_call(&self, record: &CallRecord) {
            self.0.lock().push(record.clone());
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 23, 59));
    let seen = Seen::default();
    let m = meter(dir.path(), &clock, |b| b.with_sink(seen.clone()));
    spend(&m, 10);
    clock.set(utc(2026, 3, 15, 0, 1));
    spend(&m, 20);
    m.flush().unwrap();

    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["tokenmeter-2026-03-14.jsonl", "tokenmeter-2026-03-15.jsonl"]);

    let seen = seen.0.lock().clone();
    assert_eq!(seen.len(), 2, "one call a day");
    for (day, record) in ["2026-03-14", "2026-03-15"].iter().zip(&seen) {
        let text = std::fs::read_to_string(journal_file(dir.path(), day)).unwrap();
        assert!(text.starts_with("{\"v\":1,\"call\":{"), "{text}");
        assert_eq!(text.lines().count(), 1);
        let line: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(line["v"], 1);
        let decoded: CallRecord = serde_json::from_value(line["call"].clone()).unwrap();
        assert_eq!(&decoded, record, "the journal holds the record exactly as sinks saw it");
    }
}

#[test]
fn a_journal_reads_back_without_a_meter() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 23, 59));
    let m = meter(dir.path(), &clock, |b| b);
    spend(&m, 1_000);
    clock.advance(chrono::Duration::minutes(2));
    spend(&m, 2_000);
    spend(&m, 3_000);
    m.flush().unwrap();
    let totals = m.total_usage();
    drop(m);
    // A damaged line in the middle of a file.
    OpenOptions::new().append(true).open(journal_file(dir.path(), "2026-03-15")).unwrap().write_all(b"oops\n").unwrap();

    let mut calls = Vec::new();
    let report = tokenmeter::journal::read(dir.path(), |c| calls.push(c)).unwrap();
    assert_eq!((report.files, report.records, report.skipped_lines), (2, 3, 1));
    assert!(matches!(report.skipped[0].reason, SkipReason::Corrupt { .. }), "{:?}", report.skipped[0]);
    // Oldest file first; the records are the meter's, to the picodollar.
    let inputs: Vec<u64> = calls.iter().map(|c| c.tokens.input).collect();
    assert_eq!(inputs, [1_000, 2_000, 3_000]);
    let cost = calls.iter().fold(tokenmeter::Money::ZERO, |sum, c| sum + c.cost_or_zero());
    assert_eq!((calls.len() as u64, cost), (totals.calls, totals.cost));
    assert!(calls.iter().all(|c| c.dimensions.user.as_deref() == Some("alice")));

    assert!(tokenmeter::journal::read(dir.path().join("missing"), |_| {}).is_err());
}

#[test]
fn a_torn_last_line_is_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let first = meter(dir.path(), &clock, |b| b);
    for _ in 0..3 {
        spend(&first, 1_000);
    }
    first.flush().unwrap();
    drop(first);

    // What a process killed in the middle of a write leaves behind.
    let path = journal_file(dir.path(), "2026-03-14");
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"v\":1,\"call\":{\"timestamp\":\"2026-03-")
        .unwrap();

    let second = meter(dir.path(), &clock, |b| b);
    let replay = second.journal_stats().unwrap().replay;
    assert_eq!((replay.records, replay.skipped_lines), (3, 1));
    assert_eq!(replay.skipped[0].path, path);
    assert_eq!(replay.skipped[0].line, 4);
    assert_eq!(replay.skipped[0].reason, SkipReason::TornTail);
    assert_eq!(second.total_usage().calls, 3);

    // The next writer ends the torn line before appending, so later records stay readable.
    spend(&second, 1_000);
    second.flush().unwrap();
    drop(second);
    let third = meter(dir.path(), &clock, |b| b);
    let replay = third.journal_stats().unwrap().replay;
    assert_eq!((replay.records, replay.skipped_lines), (4, 1));
    assert_eq!(replay.skipped[0].line, 4);
    assert!(matches!(replay.skipped[0].reason, SkipReason::Corrupt { .. }), "{:?}", replay.skipped[0]);
    assert_eq!(third.total_usage().calls, 4);
}

#[test]
fn an_overlong_line_is_skipped_without_losing_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let line = |minute: u32| {
        format!(
            r#"{{"v":1,"call":{{"timestamp":"2026-03-14T08:{minute:02}:00Z","duration_us":1,"tokens":{{"input":5}},"metered":true,"outcome":{{"status":"ok"}}}}}}"#
        )
    };
    // Damage no writer makes: 17 MiB of zeros (a crashed file system's tail) between two records.
    let mut text = line(0).into_bytes();
    text.push(b'\n');
    text.extend(std::iter::repeat_n(0u8, 17 << 20));
    text.push(b'\n');
    text.extend(line(1).into_bytes());
    text.push(b'\n');
    std::fs::write(journal_file(dir.path(), "2026-03-14"), text).unwrap();

    let mut minutes = Vec::new();
    let report = tokenmeter::journal::read(dir.path(), |c| minutes.push(c.timestamp.format("%M").to_string())).unwrap();
    assert_eq!(minutes, ["00", "01"]);
    assert_eq!((report.records, report.skipped_lines), (2, 1), "{report:#?}");
    assert_eq!(report.skipped[0].line, 2);
    assert_eq!(report.skipped[0].reason, SkipReason::Corrupt { message: "a line longer than 16 MiB".into() });
}

#[test]
fn lines_of_a_newer_schema_are_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let first = meter(dir.path(), &clock, |b| b);
    spend(&first, 1_000);
    first.flush().unwrap();
    drop(first);
    let path = journal_file(dir.path(), "2026-03-14");
    OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"v\":2,\"call2\":{\"new\":true}}\n").unwrap();

    let second = meter(dir.path(), &clock, |b| b);
    let replay = second.journal_stats().unwrap().replay;
    assert_eq!((replay.records, replay.skipped_lines), (1, 1));
    assert_eq!(replay.skipped[0].reason, SkipReason::UnsupportedVersion { version: 2 });
}

#[test]
fn lines_from_other_versions_of_the_same_schema_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        // The fewest fields a call line needs: no dimensions, token kinds left out (0), no cost.
        r#"{"v":1,"call":{"timestamp":"2026-03-14T08:00:00Z","duration_us":1,"tokens":{"input":5,"output":2},"metered":true,"outcome":{"status":"ok"}}}"#,
        // A field a newer version added, and a cost without the flags and savings (false and 0).
        r#"{"v":1,"call":{"timestamp":"2026-03-14T08:01:00Z","duration_us":1,"model":"claude-haiku-4-5","tokens":{"input":10},"metered":true,"outcome":{"status":"ok"},"dimensions":{"project":"p"},"future":{"x":1},"cost":{"total":10000000,"input":10000000,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":0,"priced_as":"claude-haiku-4-5"}}}"#,
        // A line kind a newer version added at this schema version: left out quietly (with a time of its own too).
        r#"{"v":1,"usage_limit":{"window":"5h"}}"#,
        r#"{"v":1,"usage_limit":{"window":"5h"},"timestamp":"2026-03-14T08:03:00Z"}"#,
        // Not versions any tokenmeter writes.
        r#"{"v":0,"call":{}}"#,
        r#"{"v":4294967296,"call":{}}"#,
        // Damage, not a new kind: nothing besides the known keys.
        r#"{"v":1}"#,
        r#"{"v":1,"call":null}"#,
        // A bare record given a `v` (hand-made): its call was left out as a new kind, unsaid.
        r#"{"v":1,"timestamp":"2026-03-14T08:02:00Z","duration_us":5,"tokens":{"input":1},"metered":true,"outcome":{"status":"ok"}}"#,
    ];
    std::fs::write(journal_file(dir.path(), "2026-03-14"), lines.join("\n") + "\n").unwrap();
    let mut calls = Vec::new();
    let report = tokenmeter::journal::read(dir.path(), |c| calls.push(c)).unwrap();
    assert_eq!((report.records, report.other_lines, report.skipped_lines), (2, 2, 5), "{report:#?}");
    assert!(report.skipped[2..].iter().all(|s| matches!(s.reason, SkipReason::Corrupt { .. })), "{report:#?}");
    assert!(matches!(&report.skipped[0].reason, SkipReason::Corrupt { message } if message.contains("version 0")));
    assert_eq!(report.skipped[1].reason, SkipReason::UnsupportedVersion { version: u32::MAX });
    assert_eq!((calls[0].tokens.input, calls[0].tokens.output, calls[0].tokens.reasoning), (5, 2, 0));
    assert_eq!(calls[0].dimensions, tokenmeter::Dimensions::default());
    let cost = calls[1].cost.as_ref().unwrap();
    assert_eq!((cost.total.picos(), cost.batch, cost.fast, cost.cache_savings.picos()), (10_000_000, false, false, 0));
    assert_eq!(calls[1].dimensions.project.as_deref(), Some("p"));
}

#[test]
fn retention_deletes_by_age_then_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let blank = vec![b'\n'; 1_000];
    for day in ["2025-01-01", "2026-02-01", "2026-03-01", "2026-03-13", "2026-03-14"] {
        std::fs::write(journal_file(dir.path(), day), &blank).unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), b"not ours").unwrap();

    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let m = TokenMeter::builder()
        .with_clock(clock)
        .with_journal(
            journal(dir.path()).with_max_age(Some(Duration::from_secs(90 * 86_400))).with_max_total_bytes(Some(2_500)),
        )
        .try_build()
        .unwrap();
    assert_eq!(m.journal_stats().unwrap().files_removed, 3);
    let mut left: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    // 2025-01-01 is past 90 days; then the oldest go until 2,500 bytes remain; yesterday and today always stay.
    assert_eq!(left, ["notes.txt", "tokenmeter-2026-03-13.jsonl", "tokenmeter-2026-03-14.jsonl"]);

    // An age past the end of the calendar (a million years, for "keep everything") keeps everything.
    let million_years = Duration::from_secs(1_000_000 * 366 * 86_400);
    let m = TokenMeter::builder()
        .with_clock(ManualClock::new(utc(2026, 3, 14, 9, 0)))
        .with_journal(journal(dir.path()).with_max_age(Some(million_years)))
        .try_build()
        .unwrap();
    assert_eq!(m.journal_stats().unwrap().files_removed, 0);
}

#[test]
fn retention_ages_files_to_the_newest_ones_day_not_to_a_clock_far_ahead() {
    // A clock that jumped 200 days ahead found every file past 90 days old and deleted the whole journal: a
    // restart then replayed nothing, and block budgets opened at $0.
    let dir = tempfile::tempdir().unwrap();
    let blank = vec![b'\n'; 10];
    for day in ["2025-11-01", "2026-01-10", "2026-03-13", "2026-03-14"] {
        std::fs::write(journal_file(dir.path(), day), &blank).unwrap();
    }
    let ninety_days = Some(Duration::from_secs(90 * 86_400));
    let m = TokenMeter::builder()
        .with_clock(ManualClock::new(utc(2026, 9, 30, 9, 0)))
        .with_journal(journal(dir.path()).with_max_age(ninety_days))
        .try_build()
        .unwrap();
    // Only the file past 90 days before 2026-03-14 (the newest) goes.
    assert_eq!(m.journal_stats().unwrap().files_removed, 1);
    let mut left: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left, ["tokenmeter-2026-01-10.jsonl", "tokenmeter-2026-03-13.jsonl", "tokenmeter-2026-03-14.jsonl"]);
}

#[test]
fn a_size_round_stops_at_a_file_it_cannot_delete() {
    // The oldest file is locked: deleting a newer one in its place would take spend the budgets still need.
    let dir = tempfile::tempdir().unwrap();
    for day in ["2026-03-01", "2026-03-02", "2026-03-14"] {
        std::fs::write(journal_file(dir.path(), day), vec![b'\n'; 1_000]).unwrap();
    }
    let held = std::fs::OpenOptions::new().append(true).open(journal_file(dir.path(), "2026-03-01")).unwrap();
    held.lock().unwrap();
    let m = TokenMeter::builder()
        .with_clock(ManualClock::new(utc(2026, 3, 14, 9, 0)))
        .with_journal(journal(dir.path()).with_max_total_bytes(Some(2_000)))
        .try_build()
        .unwrap();
    assert_eq!(m.journal_stats().unwrap().files_removed, 0);
    assert!(journal_file(dir.path(), "2026-03-02").exists());
    held.unlock().unwrap();
}

#[test]
fn retention_leaves_a_file_another_process_is_appending_to() {
    // Retention deleted a file whatever held it: another process appending to it at that moment wrote into a
    // deleted file. It now deletes a file only while holding its lock, and leaves a locked one for later.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(journal_file(dir.path(), "2025-01-01"), b"\n").unwrap();
    // Ages run to the newest file's day: today's.
    std::fs::write(journal_file(dir.path(), "2026-03-14"), b"\n").unwrap();
    let appending = std::fs::OpenOptions::new().append(true).open(journal_file(dir.path(), "2025-01-01")).unwrap();
    appending.lock().unwrap();
    let build = || {
        TokenMeter::builder()
            .with_clock(ManualClock::new(utc(2026, 3, 14, 9, 0)))
            .with_journal(journal(dir.path()))
            .try_build()
            .unwrap()
    };
    assert_eq!(build().journal_stats().unwrap().files_removed, 0);
    assert!(journal_file(dir.path(), "2025-01-01").exists());
    appending.unlock().unwrap();
    assert_eq!(build().journal_stats().unwrap().files_removed, 1);
    assert!(!journal_file(dir.path(), "2025-01-01").exists());
}

#[cfg(unix)]
#[test]
fn the_journal_is_private_unless_its_directory_lets_a_group_read() {
    // Day files name users, sessions and tenants; made `0644` in a `0755` directory (the umask's usual 022),
    // any local user could read them, and hold a day file's lock so that this process could not append.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let root = tempfile::tempdir().unwrap();
    // What the process's umask takes away from a new file's mode (022 usually; 077 would make `0640` `0600`).
    let probe = root.path().join("probe");
    std::fs::write(&probe, b"").unwrap();
    let masked = !mode(&probe) & 0o666;
    std::fs::remove_file(&probe).unwrap();
    let dir = root.path().join("usage").join("journal");
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let m = meter(&dir, &clock, |b| b);
    spend(&m, 1_000);
    m.flush().unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&root.path().join("usage")), 0o700, "a parent the meter made");
    assert_eq!(mode(&journal_file(&dir, "2026-03-14")), 0o600);
    // An operator who wants a group to read the journal opens the directory to it; the next day's file follows.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    clock.set(utc(2026, 3, 15, 9, 0));
    spend(&m, 1_000);
    m.flush().unwrap();
    assert_eq!(mode(&journal_file(&dir, "2026-03-15")), 0o640 & !masked);
    assert_eq!(mode(&journal_file(&dir, "2026-03-14")), 0o600, "a file already made keeps its mode");
    // A directory others may read (`mkdir -p` under the usual umask) gives them nothing of the day files.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    clock.set(utc(2026, 3, 16, 9, 0));
    spend(&m, 1_000);
    m.flush().unwrap();
    assert_eq!(mode(&journal_file(&dir, "2026-03-16")), 0o640 & !masked);
}

#[test]
fn a_day_file_or_directory_deleted_while_open_is_created_again() {
    let dir = tempfile::tempdir().unwrap();
    // With the sticky bit, which no umask gives a new directory (a umask only takes bits away from 0777).
    #[cfg(unix)]
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o1750)).unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let m = meter(dir.path(), &clock, |b| b);
    spend(&m, 10);
    m.flush().unwrap();
    // Someone clears the journal while the application runs.
    std::fs::remove_file(journal_file(dir.path(), "2026-03-14")).unwrap();
    spend(&m, 20);
    m.flush().unwrap();
    let mut seen = Vec::new();
    tokenmeter::journal::read(dir.path(), |call| seen.push(call.tokens.input)).unwrap();
    assert_eq!(seen, [20], "written to a new file, not to the deleted one");
    // And the whole directory.
    std::fs::remove_dir_all(dir.path()).unwrap();
    spend(&m, 30);
    m.flush().unwrap();
    seen.clear();
    tokenmeter::journal::read(dir.path(), |call| seen.push(call.tokens.input)).unwrap();
    assert_eq!(seen, [30]);
    assert_eq!(m.journal_stats().unwrap().failed_records, 0);
    #[cfg(unix)]
    {
        // With the permissions it had, not the umask's (commonly 0755).
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o1750, "{mode:o}");
    }
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let m = TokenMeter::builder()
        .with_clock(clock.clone())
        .with_journal(journal(dir.path()).with_queue_capacity(4))
        .try_build()
        .unwrap();
    // Another process holding the file's lock stalls the writer (as a slow disk would).
    let path = journal_file(dir.path(), "2026-03-14");
    let holder = OpenOptions::new().create(true).append(true).open(&path).unwrap();
    holder.lock().unwrap();
    spend(&m, 1);
    // Let the writer take that first record and block on the lock (it wakes within 100 ms; on a loaded machine
    // it may not have yet, and then the queue holds that record too: one fewer queued below).
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    for _ in 0..99 {
        spend(&m, 1);
    }
    assert!(started.elapsed() < Duration::from_secs(2), "recording never waits for the journal");
    let stats = m.journal_stats().unwrap();
    // The queue's 4, plus the one the writer holds when it took it; the rest dropped, nothing written.
    assert!(matches!(stats.enqueued, 4 | 5), "{stats:?}");
    assert_eq!((stats.enqueued + stats.dropped, stats.written), (100, 0), "{stats:?}");
    assert_eq!(m.total_usage().calls, 100, "the meter itself counts every call");

    holder.unlock().unwrap();
    // The flush writes what was queued, and says what was not.
    let err = m.flush().unwrap_err();
    assert!(
        matches!(err, tokenmeter::journal::JournalError::Dropped { records } if records == stats.dropped),
        "{err:?}, {stats:?}"
    );
    assert!(err.to_string().starts_with(&format!("{} records were dropped since the last flush", stats.dropped)));
    m.flush().expect("nothing dropped since");
    let queued = stats.enqueued;
    let stats = m.journal_stats().unwrap();
    assert_eq!((stats.written, stats.synced), (queued, queued));
    drop(m);
    let again = meter(dir.path(), &clock, |b| b);
    assert_eq!(again.journal_stats().unwrap().replay.records, queued);
}

#[test]
fn the_interval_policy_syncs_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let m = TokenMeter::builder()
        .with_clock(clock)
        .with_journal(JournalConfig::new(dir.path()).with_fsync(FsyncPolicy::Interval(Duration::from_millis(50))))
        .try_build()
        .unwrap();
    spend(&m, 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.journal_stats().unwrap().synced < 1 {
        assert!(Instant::now() < deadline, "not synced: {:?}", m.journal_stats());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn replayed_calls_reach_sinks_through_their_replay_hook() {
    #[derive(Clone, Default)]
    struct Counts(Arc<Mutex<(u64, u64)>>);
    impl RecordSink for Counts {
        fn on_call(&self, _: &CallRecord) {
            self.0.lock().0 += 1;
        }
        fn on_replayed_call(&self, _: &CallRecord) {
            self.0.lock().1 += 1;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let first = meter(dir.path(), &clock, |b| b);
    spend(&first, 1);
    spend(&first, 1);
    first.flush().unwrap();
    drop(first);
    let counts = Counts::default();
    let _second = meter(dir.path(), &clock, |b| b.with_sink(counts.clone()));
    assert_eq!(*counts.0.lock(), (0, 2));
}

#[test]
fn an_unusable_directory_is_a_build_error() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let dir = file.path().join("journal");
    let err = TokenMeter::builder().with_journal(JournalConfig::new(&dir)).try_build().unwrap_err();
    let BuildError::Journal(JournalError::Io { path, .. }) = &err else { panic!("unexpected {err:?}") };
    assert_eq!(path, &dir);
    assert!(err.to_string().contains(&dir.display().to_string()), "{err}");

    // A file where the directory should be is named as such, not as "File exists".
    let err = TokenMeter::builder().with_journal(JournalConfig::new(file.path())).try_build().unwrap_err();
    let BuildError::Journal(JournalError::Io { source, .. }) = &err else { panic!("unexpected {err:?}") };
    assert_eq!(source.kind(), std::io::ErrorKind::NotADirectory);
    assert!(err.to_string().contains(": a file is there, not a directory"), "{err}");

    // An empty path (an unset setting) is refused, not read as the working directory.
    let err = TokenMeter::builder().with_journal(JournalConfig::new("")).try_build().unwrap_err();
    let BuildError::Journal(JournalError::Io { source, .. }) = &err else { panic!("unexpected {err:?}") };
    assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("the path is empty"), "{err}");

    // `build` keeps going without a journal.
    let m = TokenMeter::builder().with_journal(JournalConfig::new(&dir)).build();
    assert!(m.journal_stats().is_none());
    assert_eq!(m.flush().ok(), Some(()));
}

/// One claude-haiku-4-5 call costing `micros` micro-USD, by `user`.
fn spend_as(meter: &TokenMeter, user: &str, micros: u64) {
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        let _user = info_span!("request", user.id = user).entered();
        let _call = info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = micros).entered();
    });
}

fn team_budget(user: &'static str, alerts: &Alerts) -> impl FnOnce(TokenMeterBuilder) -> TokenMeterBuilder {
    let sink = alerts.clone();
    move |b| {
        b.with_budget(
            Budget::new("team", BudgetLimit::usd(10.0).unwrap())
                .with_scope(tokenmeter::budget::BudgetScope::user(user))
                .with_thresholds([50]),
        )
        .with_budget_alert_callback(move |a| sink.lock().push(a.clone()))
    }
}

/// Alice spends $6 of the $10 `team` budget on 2026-03-28 (its 50% alert fires); the journal is flushed.
fn alice_spends_six_of_ten(dir: &Path, clock: &ManualClock) {
    let alerts: Alerts = Arc::default();
    let before = meter(dir, clock, team_budget("alice", &alerts));
    spend_as(&before, "alice", 6_000_000);
    assert_eq!(thresholds(&alerts), [50]);
    before.flush().unwrap();
}

#[test]
fn an_alert_delivered_under_another_scope_does_not_silence_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 28, 9, 0));
    alice_spends_six_of_ten(dir.path(), &clock);
    let line = std::fs::read_to_string(journal_file(dir.path(), "2026-03-28")).unwrap();
    assert!(line.contains(r#""scope":"user=alice""#), "{line}");

    // The same budget name, now over bob's spend: alice's alert is not bob's.
    let after_alerts: Alerts = Arc::default();
    let after = meter(dir.path(), &clock, team_budget("bob", &after_alerts));
    spend_as(&after, "bob", 6_000_000);
    assert_eq!(thresholds(&after_alerts), [50]);
    assert_eq!(after.budget_status()[0].thresholds_crossed, [50]);
}

#[test]
fn a_threshold_alerted_before_a_restart_shows_as_crossed_when_spend_reaches_it() {
    // The alert's line survived, its call's did not (a full queue dropped it): the spend comes back lower.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 28, 9, 0));
    alice_spends_six_of_ten(dir.path(), &clock);
    let file = journal_file(dir.path(), "2026-03-28");
    let text = std::fs::read_to_string(&file).unwrap();
    let kept: Vec<&str> = text.lines().filter(|l| !l.contains(r#""call""#)).collect();
    std::fs::write(&file, kept.join("\n") + "\n").unwrap();

    let after_alerts: Alerts = Arc::default();
    let after = meter(dir.path(), &clock, team_budget("alice", &after_alerts));
    assert_eq!(after.budget_status()[0].thresholds_crossed, Vec::<u32>::new());
    spend_as(&after, "alice", 6_000_000);
    assert!(after_alerts.lock().is_empty(), "delivered once this period already: {:?}", after_alerts.lock());
    assert_eq!(after.budget_status()[0].thresholds_crossed, [50], "but crossed");
}

#[test]
fn alert_lines_lost_to_a_failed_write_are_counted() {
    // The day's file cannot be opened (a directory is in its place): the call and its alert lines are lost, and
    // `alerts_dropped` says the alert will be delivered again after a restart.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 28, 9, 0));
    std::fs::create_dir(journal_file(dir.path(), "2026-03-28")).unwrap();
    let alerts: Alerts = Arc::default();
    let m = meter(dir.path(), &clock, team_budget("alice", &alerts));
    spend_as(&m, "alice", 6_000_000);
    assert_eq!(thresholds(&alerts), [50]);
    assert!(m.flush().is_err());
    let stats = m.journal_stats().unwrap();
    assert_eq!((stats.failed_records, stats.alerts_dropped), (1, 1), "{stats:?}");
    // That flush said so; the next one has nothing to report (no full queue dropped anything).
    std::fs::remove_dir(journal_file(dir.path(), "2026-03-28")).unwrap();
    m.flush().expect("reported once, by the flush after the failed write");
}

#[test]
fn a_call_journaled_unpriced_is_priced_at_replay_where_the_book_now_knows_its_model() {
    // A call on a model the book did not know is journaled without a cost. Restarted with a price for it, the
    // ledger priced it ($2.80) while the totals and a $1 budget kept $0 (never alerting, never stopping).
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 2, 9, 0));
    let before = meter(dir.path(), &clock, |b| b);
    let subscriber = tracing_subscriber::registry().with(before.layer());
    tracing::subscriber::with_default(subscriber, || {
        let _call = info_span!(
            "chat",
            gen_ai.request.model = "my-finetune",
            input_tokens = 1_000_000u64,
            output_tokens = 100_000u64
        )
        .entered();
    });
    before.flush().unwrap();
    assert_eq!(before.total_usage().unpriced_calls, 1);
    drop(before);

    let rates = tokenmeter::pricing::Rates::with_default_cache(2_000_000, 8_000_000);
    let book = tokenmeter::PriceBook::builtin().with_price("my-finetune", tokenmeter::pricing::ModelPrice::new(rates));
    let after = meter(dir.path(), &clock, |b| {
        b.with_price_book(book).with_budget(Budget::new("monthly", BudgetLimit::usd(1.0).unwrap()))
    });
    let totals = after.total_usage();
    assert_eq!((totals.calls, totals.unpriced_calls), (1, 0));
    assert_eq!(totals.cost.to_string(), "$2.80");
    assert_eq!(after.budget_status()[0].spent.to_string(), "$2.80");
    let summary = after.ledger().usage_summary(tokenmeter::ledger::Window::Last24Hours).unwrap();
    assert_eq!(summary.cost_usd, 2.8);
}

#[test]
fn shutdown_writes_and_syncs_the_journal() {
    // `shutdown()` is what README says to call once before exit; it only stopped OTLP, and a meter held by a
    // global subscriber is never dropped: records still queued, or written but not synced, could be lost.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let config = JournalConfig::new(dir.path()).with_fsync(FsyncPolicy::Interval(Duration::from_secs(3_600)));
    let meter = TokenMeter::builder().with_clock(clock).with_journal(config).try_build().unwrap();
    spend(&meter, 1_000);
    meter.shutdown().unwrap();
    let stats = meter.journal_stats().unwrap();
    assert_eq!((stats.written, stats.synced), (1, 1));
}

#[test]
fn a_huge_queue_capacity_is_capped_not_allocated() {
    // `usize::MAX` slots of ~520 bytes could not be allocated: building the meter aborted the process.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let m = TokenMeter::builder()
        .with_clock(clock)
        .with_journal(journal(dir.path()).with_queue_capacity(usize::MAX))
        .try_build()
        .unwrap();
    spend(&m, 1);
    m.flush().unwrap();
    assert_eq!(m.journal_stats().unwrap().written, 1);
}

#[test]
fn a_journal_that_forgets_before_a_budget_period_ends_is_refused() {
    use tokenmeter::budget::{Budget, BudgetLimit, BudgetPeriod};
    let dir = tempfile::tempdir().unwrap();
    let rolling = Budget::new("half-year", BudgetLimit::usd(100.0).unwrap())
        .with_period(BudgetPeriod::Rolling(Duration::from_secs(180 * 86_400)));
    // The default 90 days would replay half of it after a restart.
    let err =
        TokenMeter::builder().with_journal(journal(dir.path())).with_budget(rolling.clone()).try_build().unwrap_err();
    assert!(matches!(err, tokenmeter::BuildError::JournalRetention { needed_days: 184, .. }), "{err:?}");
    assert!(
        err.to_string().contains("budget `half-year` (rolling 180d) needs the journal's files for 184 days"),
        "{err}"
    );
    // 180 days, the sixtieth a window reaches past them (3 days), and a day for time zones.
    let short = journal(dir.path()).with_max_age(Some(Duration::from_secs(183 * 86_400)));
    assert!(TokenMeter::builder().with_journal(short).with_budget(rolling.clone()).try_build().is_err());
    let kept = journal(dir.path()).with_max_age(Some(Duration::from_secs(184 * 86_400)));
    assert!(TokenMeter::builder().with_journal(kept).with_budget(rolling.clone()).try_build().is_ok());
    let forever = journal(dir.path()).with_max_age(None);
    assert!(TokenMeter::builder().with_journal(forever).with_budget(rolling).try_build().is_ok());
    // A month needs 32 days.
    let month = Budget::new("monthly", BudgetLimit::usd(100.0).unwrap());
    let short = journal(dir.path()).with_max_age(Some(Duration::from_secs(31 * 86_400)));
    assert!(TokenMeter::builder().with_journal(short.clone()).with_budget(month.clone()).try_build().is_err());
    // Without replay nothing comes back anyway; a day is covered by the two files never deleted.
    let no_replay = short.clone().with_replay(false);
    assert!(TokenMeter::builder().with_journal(no_replay).with_budget(month).try_build().is_ok());
    let hour = journal(dir.path()).with_max_age(Some(Duration::from_secs(3_600)));
    let daily = Budget::new("daily", BudgetLimit::usd(1.0).unwrap()).with_period(BudgetPeriod::Day);
    assert!(TokenMeter::builder().with_journal(hour).with_budget(daily).try_build().is_ok());
}

#[test]
fn a_record_stamped_past_what_a_ledger_holds_is_skipped_at_replay() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let m = meter(dir.path(), &clock, |b| b);
    spend(&m, 1_000);
    m.flush().unwrap();
    drop(m);
    // The same line, stamped in the year 9999 (a hand-edited or damaged file).
    let path = journal_file(dir.path(), "2026-03-14");
    let line = std::fs::read_to_string(&path).unwrap();
    let far = line.replacen("\"timestamp\":\"2026-03-14T09:00:00Z\"", "\"timestamp\":\"9999-12-31T23:59:59Z\"", 1);
    assert_ne!(far, line, "{line}");
    OpenOptions::new().append(true).open(&path).unwrap().write_all(far.as_bytes()).unwrap();

    let again = meter(dir.path(), &clock, |b| b);
    let replay = again.journal_stats().unwrap().replay;
    assert_eq!((replay.records, replay.skipped_lines), (1, 1), "{replay:?}");
    assert!(
        matches!(&replay.skipped[0].reason, SkipReason::Corrupt { message } if message.contains("out of range")),
        "{:?}",
        replay.skipped[0]
    );
    assert_eq!(again.total_usage().calls, 1);
}

#[test]
fn a_call_counted_in_the_period_it_raced_into_comes_back_there() {
    // Two threads finish calls on either side of New York's midnight (04:00 UTC in March 2026's daylight
    // time, so both in one UTC day file), the later
    // one accounted first: the live meter counts both in the new day, and so must replay (it skipped the
    // earlier one: the day after a restart started lower than it was).
    let ny: tokenmeter::budget::Tz = "America/New_York".parse().unwrap();
    let daily = move |b: TokenMeterBuilder| {
        b.with_budget(
            Budget::new("daily", BudgetLimit::usd(10.0).unwrap()).with_period(BudgetPeriod::Day).with_time_zone(ny),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 14, 4, 0, 1).unwrap());
    let live = meter(dir.path(), &clock, daily);
    spend(&live, 1_000_000);
    clock.set(Utc.with_ymd_and_hms(2026, 3, 14, 3, 59, 59).unwrap());
    spend(&live, 2_000_000);
    let spent = live.budget_status()[0].spent;
    live.flush().unwrap();
    drop(live);
    clock.set(Utc.with_ymd_and_hms(2026, 3, 14, 6, 0, 0).unwrap());
    let again = meter(dir.path(), &clock, daily);
    assert_eq!(again.budget_status()[0].spent, spent);
    assert_eq!(spent.to_string(), "$3.00");
}

/// `n` call lines of day `day`, request ids `{day}-{i}` in order, priced by nobody (no cost).
fn write_day(dir: &Path, day: &str, n: usize) {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            r#"{{"v":1,"call":{{"timestamp":"{day}T08:00:00Z","duration_us":{i},"request_id":"{day}-{i}","tokens":{{"input":5}},"metered":true,"outcome":{{"status":"ok"}}}}}}"#
        ));
        text.push('\n');
    }
    std::fs::write(journal_file(dir, day), text).unwrap();
}

#[test]
fn replay_hands_over_every_record_in_the_files_order_across_its_decoding_batches() {
    // Records are decoded on a thread of their own and handed over in batches of 256: 1,000 lines in each of
    // three days arrive all, in order, on the calling thread.
    let dir = tempfile::tempdir().unwrap();
    let days = ["2026-03-01", "2026-03-02", "2026-03-03"];
    days.iter().for_each(|day| write_day(dir.path(), day, 1_000));
    let caller = std::thread::current().id();
    let mut ids = Vec::new();
    let report = tokenmeter::journal::read(dir.path(), |c| {
        assert_eq!(std::thread::current().id(), caller);
        ids.push(c.request_id.unwrap().to_string());
    })
    .unwrap();
    let expected: Vec<String> = days.iter().flat_map(|day| (0..1_000).map(move |i| format!("{day}-{i}"))).collect();
    assert_eq!((report.files, report.records, report.skipped_lines), (3, 3_000, 0));
    assert_eq!(ids, expected);
}

#[test]
fn a_replay_callback_that_panics_ends_the_replay_with_its_panic() {
    // The decoding thread, blocked handing over a batch nobody takes, stops: the panic reaches the caller
    // instead of the replay hanging.
    let dir = tempfile::tempdir().unwrap();
    write_day(dir.path(), "2026-03-01", 20_000);
    let mut seen = 0;
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tokenmeter::journal::read(dir.path(), |_| {
            seen += 1;
            assert!(seen < 300, "the caller gives up");
        })
    }))
    .expect_err("the callback's panic");
    let message = panic.downcast_ref::<&str>().copied().or(panic.downcast_ref::<String>().map(String::as_str));
    assert_eq!(message, Some("the caller gives up"));
    assert_eq!(seen, 300);
}

/// The messages of the WARN events of target `tokenmeter::journal` emitted while `f` runs on this thread.
fn journal_warnings<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    journal_events(tracing::Level::WARN, f)
}

/// The messages of the events of target `tokenmeter::journal` at `level` emitted while `f` runs on this thread.
fn journal_events<R>(level: tracing::Level, f: impl FnOnce() -> R) -> (R, Vec<String>) {
    #[derive(Clone)]
    struct Messages(Arc<Mutex<Vec<String>>>, tracing::Level);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Messages {
        fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            struct Message<'a>(&'a mut String);
            impl tracing::field::Visit for Message<'_> {
                fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                    if field.name() == "message" {
                        *self.0 = format!("{value:?}");
                    }
                }
            }
            let m = event.metadata();
            if m.target() == "tokenmeter::journal" && *m.level() == self.1 {
                let mut text = String::new();
                event.record(&mut Message(&mut text));
                self.0.lock().push(text);
            }
        }
    }
    let messages = Messages(Arc::default(), level);
    let out = tracing::subscriber::with_default(tracing_subscriber::registry().with(messages.clone()), f);
    let seen = messages.0.lock().clone();
    (out, seen)
}

/// Run as a child process (see below): builds a meter whose size limit deletes a day file its monthly budget
/// needs, with no subscriber set. Ignored, so that it is never counted as a test that passed.
#[test]
#[ignore = "a child process of the test below, not a test"]
fn size_retention_at_build_child() {
    let Some(dir) = std::env::var_os("TOKENMETER_SIZE_RETENTION_CHILD") else { return };
    let clock = ManualClock::new(utc(2026, 3, 15, 9, 0));
    let _meter = TokenMeter::builder()
        .with_clock(clock)
        .with_budget(Budget::new("team", BudgetLimit::usd(100.0).unwrap()))
        .with_journal(journal(Path::new(&dir)).with_max_total_bytes(Some(10)))
        .build();
}

#[test]
fn a_size_limit_that_deletes_needed_files_at_build_says_so_on_stderr() {
    // The build's retention round warned only through `tracing`, before any subscriber was installed: nobody
    // heard that the budget would restart lower.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(journal_file(dir.path(), "2026-03-02"), "\n".repeat(1000)).unwrap();
    std::fs::write(journal_file(dir.path(), "2026-03-14"), "").unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            &common::test_path(module_path!(), "size_retention_at_build_child"),
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TOKENMETER_SIZE_RETENTION_CHILD", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!journal_file(dir.path(), "2026-03-02").exists(), "{stderr}");
    assert!(
        stderr.contains(
            "tokenmeter: the journal's size limit (JournalConfig::with_max_total_bytes) deleted 1 day file(s), the \
             newest of 2026-03-02, that budget `team` (month) needs"
        ),
        "{stderr}"
    );
}

#[test]
fn a_size_limit_that_deletes_files_a_budget_needs_is_warned_about() {
    // `with_max_total_bytes` is not checked against the budgets at build (it depends on the traffic): a round
    // that deletes a file inside the longest budget's period says so, since a restart will count less spend.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 1, 20, 9, 0));
    let before = meter(dir.path(), &clock, |b| b);
    for day in [utc(2026, 1, 20, 9, 0), utc(2026, 3, 2, 9, 0), utc(2026, 3, 10, 9, 0), utc(2026, 3, 14, 9, 0)] {
        clock.set(day);
        spend(&before, 1_000_000);
    }
    before.flush().unwrap();
    drop(before);
    let size = |day: &str| std::fs::metadata(journal_file(dir.path(), day)).unwrap().len();
    clock.set(utc(2026, 3, 15, 9, 0));
    let monthly = |limit: u64| {
        let config = journal(dir.path()).with_max_total_bytes(Some(limit));
        move |b: TokenMeterBuilder| {
            b.with_budget(Budget::new("team", BudgetLimit::usd(100.0).unwrap())).with_journal(config)
        }
    };

    // Room for all but January's file: only it goes, outside March, and nothing is said.
    let limit = size("2026-03-02") + size("2026-03-10") + size("2026-03-14");
    let (m, warned) = journal_warnings(|| meter(dir.path(), &clock, monthly(limit)));
    assert_eq!(m.journal_stats().unwrap().files_removed, 1);
    assert_eq!(warned, Vec::<String>::new());
    drop(m);

    // Room for yesterday's file alone (never deleted): March 2 and 10 go, which the monthly budget needs.
    let (m, warned) = journal_warnings(|| meter(dir.path(), &clock, monthly(size("2026-03-14"))));
    assert_eq!(m.journal_stats().unwrap().files_removed, 2);
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        warned[0].starts_with(
            "the journal's size limit (JournalConfig::with_max_total_bytes) deleted 2 day file(s), the newest of \
             2026-03-10, that budget `team` (month) needs"
        ),
        "{warned:?}"
    );
    // What replay brought back is the spend that was left: $1 of March's $3.
    assert_eq!(m.budget_status()[0].spent.to_string(), "$1.00");
}

#[test]
fn a_rolling_period_shows_in_days_unless_whole_weeks_and_its_alerts_hold_in_either_form() {
    // A rolling 30-day budget showed as `rolling 4w2d` (status, alerts, the OTLP `period` attribute); the
    // journal's alert lines name the period as shown, so lines written in that form must still hold.
    let thirty = BudgetPeriod::Rolling(Duration::from_secs(30 * 86_400));
    assert_eq!(thirty.to_string(), "rolling 30d");
    assert_eq!(BudgetPeriod::Rolling(Duration::from_secs(14 * 86_400)).to_string(), "rolling 2w");
    assert_eq!(BudgetPeriod::Rolling(Duration::from_secs(8 * 86_400 + 3_600)).to_string(), "rolling 8d1h");
    assert_eq!("rolling 4w2d".parse::<BudgetPeriod>().unwrap(), thirty);

    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let rolling = |alerts: &Alerts| {
        let sink = alerts.clone();
        move |b: TokenMeterBuilder| {
            b.with_budget(
                Budget::new("thirty", BudgetLimit::usd(10.0).unwrap()).with_period(thirty).with_thresholds([50]),
            )
            .with_budget_alert_callback(move |a| sink.lock().push(a.clone()))
        }
    };
    let alerts: Alerts = Arc::default();
    let before = meter(dir.path(), &clock, rolling(&alerts));
    spend(&before, 5_500_000);
    assert_eq!(thresholds(&alerts), [50]);
    before.flush().unwrap();
    drop(before);
    let file = journal_file(dir.path(), "2026-03-14");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(r#""period":"rolling 30d""#), "{text}");
    std::fs::write(&file, text.replace(r#""period":"rolling 30d""#, r#""period":"rolling 4w2d""#)).unwrap();

    let again: Alerts = Arc::default();
    let after = meter(dir.path(), &clock, rolling(&again));
    spend(&after, 100_000);
    assert_eq!(thresholds(&again), Vec::<u32>::new(), "the 50% alert was delivered before the restart");
    assert_eq!(after.budget_status()[0].thresholds_crossed, [50]);
}

#[test]
fn an_alerts_journal_line_is_queued_before_the_alert_is_delivered() {
    // Queued after the callbacks and the webhook, a mark could miss the journal when a callback stopped the
    // process (or it exited as the webhook posted): a restart then delivered the alert again. Here the callback
    // flushes the journal, as a shutdown it set off would, and looks for the alert's line.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let meter_cell: Arc<std::sync::OnceLock<TokenMeter>> = Arc::default();
    let marked_at_delivery: Arc<Mutex<Vec<bool>>> = Arc::default();
    let (cell, seen, path) = (meter_cell.clone(), marked_at_delivery.clone(), journal_file(dir.path(), "2026-03-14"));
    let meter = meter(dir.path(), &clock, move |b| {
        b.with_budget(Budget::new("monthly", BudgetLimit::usd(10.0).unwrap()).with_thresholds([50]))
            .with_budget_alert_callback(move |a| {
                let Some(meter) = cell.get() else { return };
                meter.flush().unwrap();
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let event = match a.kind {
                    AlertKind::ThresholdCrossed { .. } => "threshold_crossed",
                    AlertKind::ProjectedOverrun => "projected_overrun",
                    _ => "other",
                };
                seen.lock().push(text.contains(&format!(r#""event":"{event}""#)));
            })
    });
    let _ = meter_cell.set(meter.clone());
    spend(&meter, 5_500_000); // 55%: the 50% alert (and the projection's)
    let seen = marked_at_delivery.lock().clone();
    assert!(!seen.is_empty() && seen.iter().all(|&marked| marked), "{seen:?}");
}

#[cfg(unix)]
#[test]
fn a_link_planted_in_the_journal_directory_is_not_followed() {
    // In a directory others can write, a link under today's day file name sent the records into any file this
    // process may write (replay, which lists regular files only, never read them), and one under the build's
    // probe name (`.tokenmeter-probe-<pid>` then; now also named by the time, and created new) had it truncated.
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("precious.txt");
    std::fs::write(&target, "keep me\n").unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 10, 0));
    std::os::unix::fs::symlink(&target, journal_file(dir.path(), "2026-03-14")).unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join(format!(".tokenmeter-probe-{}", std::process::id()))).unwrap();
    let m = meter(dir.path(), &clock, |b| b);
    spend(&m, 1_000);
    assert!(m.flush().is_err(), "the record could not be written");
    let stats = m.journal_stats().unwrap();
    assert_eq!((stats.write_errors, stats.failed_records), (1, 1), "{stats:?}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
}

#[test]
fn owed_alerts_whose_callback_runs_past_midnight_leave_the_new_days_spend_in_it() {
    // After a restart, `check_budget` delivers the alerts the replayed spend owes, then checks. Its time was read
    // before the callbacks: one that ran past midnight and made a call of its own (which began the new day)
    // left the check reading 23:52, behind the new day, as a clock that stepped back: it re-opened yesterday
    // with the new day's spend in it, and the next read began the new day again at $0.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 23, 40));
    let before = meter(dir.path(), &clock, |b| b);
    spend(&before, 600_000);
    before.flush().unwrap();
    drop(before);
    clock.set(utc(2026, 3, 14, 23, 52));
    let handle: Arc<std::sync::OnceLock<TokenMeter>> = Arc::default();
    let (in_callback, callback_clock) = (Arc::clone(&handle), clock.clone());
    let daily = Budget::new("daily", BudgetLimit::usd(1.0).unwrap())
        .with_period(BudgetPeriod::Day)
        .with_action(BudgetAction::Block)
        .with_thresholds([50]);
    let m = meter(dir.path(), &clock, |b| {
        b.with_budget(daily).with_budget_alert_callback(move |_| {
            callback_clock.set(utc(2026, 3, 15, 0, 10));
            if let Some(m) = in_callback.get() {
                spend(m, 200_000);
            }
        })
    });
    let _ = handle.set(m.clone());
    m.check_budget(&RequestScope::new()).unwrap();
    clock.set(utc(2026, 3, 15, 0, 11));
    let s = &m.budget_status()[0];
    assert_eq!(s.period_start, utc(2026, 3, 15, 0, 0));
    assert_eq!((s.spent.to_string(), s.calls), ("$0.20".to_owned(), 1), "{s:?}");
}

#[test]
fn alerts_of_the_day_before_a_restart_are_not_sent_again_when_the_clock_steps_back_into_it() {
    // A daily $1 budget alerted at 50, 75 and 90% on the 14th; the process restarted at 00:02 on the 15th, and
    // then the clock stepped back ten minutes (an NTP step). The 14th, kept for such a step, had its spend back
    // from the journal but not its delivered alerts: all three were sent again.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 18, 0));
    let daily = |alerts: &Alerts| {
        let sink = alerts.clone();
        move |b: TokenMeterBuilder| {
            b.with_budget(Budget::new("daily", BudgetLimit::usd(1.0).unwrap()).with_period(BudgetPeriod::Day))
                .with_budget_alert_callback(move |a| sink.lock().push(a.clone()))
        }
    };
    let before_alerts: Alerts = Arc::default();
    let before = meter(dir.path(), &clock, daily(&before_alerts));
    spend(&before, 950_000);
    assert_eq!(thresholds(&before_alerts), [50, 75, 90]);
    before.flush().unwrap();
    drop(before);

    clock.set(utc(2026, 3, 15, 0, 2));
    let after_alerts: Alerts = Arc::default();
    let after = meter(dir.path(), &clock, daily(&after_alerts));
    assert_eq!(after.budget_status()[0].spent, tokenmeter::budget::BudgetAmount::Usd(tokenmeter::Money::ZERO));
    clock.set(utc(2026, 3, 14, 23, 52));
    let state = &after.budget_status()[0];
    assert_eq!(state.period_start, utc(2026, 3, 14, 0, 0), "the 14th again: {state:?}");
    assert_eq!(state.thresholds_crossed, [50, 75, 90], "{state:?}");
    spend(&after, 10_000);
    assert!(after_alerts.lock().is_empty(), "delivered before the restart: {:?}", thresholds(&after_alerts));
}

#[test]
fn a_cost_part_a_later_version_adds_keeps_the_calls_spend() {
    // A later version prices a fee this one does not know (as `web_search` was added, `v` staying 1): its lines
    // carry the part and a total that includes it. The sum check refused them, and a rollback (or an older CLI)
    // dropped those calls' whole spend from budgets and reports.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let m = meter(dir.path(), &clock, |b| b);
    spend(&m, 100);
    m.shutdown().unwrap();
    let path = journal_file(dir.path(), "2026-03-14");
    let text = std::fs::read_to_string(&path).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let total = line["call"]["cost"]["total"].as_u64().unwrap();
    assert_eq!(total, 100_000_000, "$0.0001");
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut l = line.clone();
        edit(&mut l["call"]["cost"]);
        l.to_string()
    };
    let lines = [
        // A new part, in the total.
        with(&|c| {
            c["code_execution"] = 50_000_000u64.into();
            c["total"] = (total + 50_000_000).into();
        }),
        // A new number that is not money (a rate): the total is the known parts'.
        with(&|c| c["rate_percent"] = 110u64.into()),
        // A new part and a note: the note is not counted.
        with(&|c| {
            c["code_execution"] = 7u64.into();
            c["code_execution_note"] = "containers".into();
            c["total"] = (total + 7).into();
        }),
        // A total that is neither: damage, skipped as before.
        with(&|c| {
            c["code_execution"] = 7u64.into();
            c["total"] = (total + 8).into();
        }),
    ];
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let mut totals = Vec::new();
    let report = tokenmeter::journal::read(dir.path(), |call| totals.push(call.cost.unwrap().total.picos())).unwrap();
    assert_eq!(totals, [150_000_000, 100_000_000, 100_000_007]);
    assert_eq!(report.skipped_lines, 1, "{report:?}");
    assert!(format!("{:?}", report.skipped[0]).contains("not the sum of its parts"), "{report:?}");
    // A meter's replay counts the whole of it.
    let m = meter(dir.path(), &clock, |b| b);
    assert_eq!(m.total_usage().cost.picos(), 350_000_007);
}

#[cfg(unix)]
#[test]
fn a_day_file_that_is_a_symbolic_link_is_reported_not_read() {
    // A day file restored as a link to an archive counted nothing, and nothing said so.
    let dir = tempfile::tempdir().unwrap();
    let archive = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let m = meter(dir.path(), &clock, |b| b);
    spend(&m, 100);
    m.shutdown().unwrap();
    let real = archive.path().join("2026-03-14.jsonl");
    std::fs::rename(journal_file(dir.path(), "2026-03-14"), &real).unwrap();
    std::os::unix::fs::symlink(&real, journal_file(dir.path(), "2026-03-14")).unwrap();
    let report = tokenmeter::journal::read(dir.path(), |_| {}).unwrap();
    assert_eq!((report.files, report.records, report.unreadable_files, report.skipped_lines), (1, 0, 1, 1));
    assert!(
        matches!(&report.skipped[0].reason, SkipReason::Unreadable { message } if message.contains("symbolic link"))
    );
    assert_eq!(report.skipped[0].path, journal_file(dir.path(), "2026-03-14"));
}

#[test]
fn retention_says_which_day_files_it_deleted() {
    // Deletions were seen only as a count in `files_removed`: a clock that was wrong left no trace of the days
    // it cost.
    let dir = tempfile::tempdir().unwrap();
    for day in ["2025-10-01", "2025-10-02", "2025-10-03", "2026-03-10", "2026-03-13"] {
        std::fs::write(journal_file(dir.path(), day), b"\n").unwrap();
    }
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let (m, infos) = journal_events(tracing::Level::INFO, || {
        meter(dir.path(), &clock, |b| {
            b.with_journal(
                journal(dir.path()).with_max_age(Some(Duration::from_secs(90 * 86_400))).with_max_total_bytes(Some(1)),
            )
        })
    });
    assert_eq!(m.journal_stats().unwrap().files_removed, 4);
    assert_eq!(
        infos,
        [
            "journal retention deleted 3 day file(s) older than the age limit of 90 day(s) (2025-10-01 to 2025-10-03)",
            "journal retention deleted 1 day file(s) to keep the journal under 1 bytes (2026-03-10)"
        ]
    );
}

#[test]
fn a_tasks_figures_with_its_subtasks_come_back_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let meter = meter(dir.path(), &clock, |b| b);
    tracing::subscriber::with_default(tracing_subscriber::registry().with(meter.layer()), || {
        let _run = info_span!("run", task = "run-1").entered();
        let _sub = info_span!("sub", task = "lookup").entered();
        let _call = info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 1_000u64).entered();
    });
    meter.flush().unwrap();
    let mut read = Vec::new();
    tokenmeter::journal::read_entries(dir.path(), |e| {
        if let tokenmeter::journal::JournalEntry::Task(t) = e {
            read.push((t.task.to_string(), t.calls, t.with_subtasks.map(|w| (w.subtasks, w.calls, w.tokens.input))));
        }
    })
    .unwrap();
    assert_eq!(read, [("lookup".to_owned(), 1, None), ("run-1".to_owned(), 0, Some((1, 1, 1_000)))]);
}

#[test]
fn a_skipped_lines_reason_never_quotes_the_text_it_held() {
    // The reason goes into the build's WARN and the CLI's warning: a count holding text quoted the text.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tokenmeter-2026-03-14.jsonl"),
        concat!(
            r#"{"v":1,"call":{"timestamp":"2026-03-14T09:00:00Z","duration_us":1,"tokens":{"input":"Jane Roe's results"},"#,
            r#""metered":true,"outcome":{"status":"ok"}}}"#,
            "\n"
        ),
    )
    .unwrap();
    let report = tokenmeter::journal::read(dir.path(), |_| {}).unwrap();
    assert_eq!(report.skipped_lines, 1);
    let SkipReason::Corrupt { message } = &report.skipped[0].reason else { panic!("{:?}", report.skipped[0]) };
    assert!(!message.contains("Jane"), "{message}");
    assert!(message.contains("string of 18 characters"), "{message}");
}

#[test]
fn the_ledger_forgets_what_the_journal_no_longer_keeps() {
    // The journal deleted day files past its `max_age` (90 days by default), and a restart forgot them; the running
    // meter's ledger kept them, in month and archive buckets, for the life of the process.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(utc(2026, 3, 14, 9, 0));
    let forgets = meter(dir.path(), &clock, |b| b);
    let other = tempfile::tempdir().unwrap();
    let keeps = meter(other.path(), &clock, |b| {
        b.with_ledger_config(tokenmeter::ledger::LedgerConfig::default().with_retention(None))
    });
    for m in [&forgets, &keeps] {
        spend_as(m, "alice", 1_000);
    }
    clock.set(utc(2026, 7, 1, 9, 0)); // 109 days later
    for m in [&forgets, &keeps] {
        spend_as(m, "bob", 1_000);
    }
    let calls = |m: &TokenMeter| m.usage_summary(tokenmeter::Window::All).unwrap().calls;
    assert_eq!(calls(&forgets), 1, "alice's call is past the journal's 90 days");
    assert_eq!(calls(&keeps), 2, "a ledger retention set (to none) wins");
}

#[test]
fn a_shutdown_guard_writes_and_syncs_the_journal_when_main_ends_in_a_panic() {
    // A meter held by a global subscriber is never dropped, and a panic (or an early `?` return) skips a
    // `meter.shutdown()` at the end of main: the records still queued were lost.
    let dir = tempfile::tempdir().unwrap();
    let meter = TokenMeter::builder().with_journal(JournalConfig::new(dir.path())).try_build().unwrap();
    // As a global subscriber would, this dispatch holds the meter's layer past the end of "main".
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(meter.layer()));
    let main = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _shutdown = meter.shutdown_guard();
        tracing::dispatcher::with_default(&dispatch, || {
            for _ in 0..50 {
                let _call =
                    info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 10u64).entered();
            }
        });
        panic!("the application fails");
    }));
    assert!(main.is_err());
    let stats = meter.journal_stats().unwrap();
    assert_eq!((stats.written, stats.synced, stats.dropped), (50, 50, 0));
    drop(dispatch);
}
