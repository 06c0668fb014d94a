//! `TokenMeter::erase`: a user's (tenant's, session's) values leave a running meter's journal and memory, and what
//! the meter then shows under a name is what a restart, replaying the erased journal, would show.

use std::path::Path;

use chrono::{TimeZone, Utc};
use tokenmeter::budget::{Budget, BudgetLimit, BudgetPeriod, BudgetScope};
use tokenmeter::journal::{Erasure, FsyncPolicy, JournalConfig};
use tokenmeter::ledger::{Dimension, GroupBy, Query, Window};
use tokenmeter::{JournalError, ManualClock, Money, TokenMeter};
use tracing::info_span;
use tracing_subscriber::prelude::*;

const HAIKU: &str = "claude-haiku-4-5";

/// A meter on `clock`, journaling into `dir` when given, with a budget of $1 a day for each user, one of $5 for
/// alice alone and one of $10 for everything.
fn meter(dir: Option<&Path>, clock: &ManualClock) -> TokenMeter {
    let day = |name: &str, usd: f64, scope: BudgetScope| {
        Budget::new(name, BudgetLimit::usd(usd).unwrap()).with_scope(scope).with_period(BudgetPeriod::Day)
    };
    let mut b = TokenMeter::builder()
        .with_clock(clock.clone())
        .with_budget(day("per-user", 1.0, BudgetScope::each_user()))
        .with_budget(day("vip", 5.0, BudgetScope::user("alice")))
        .with_budget(day("all", 10.0, BudgetScope::everything()));
    if let Some(dir) = dir {
        b = b.with_journal(JournalConfig::new(dir).with_fsync(FsyncPolicy::EveryRecord));
    }
    b.try_build().unwrap()
}

/// One claude-haiku-4-5 call costing `micros` micro-USD by `user` of `tenant` in `session`, inside a task, and a
/// tool execution beside it.
fn work(meter: &TokenMeter, tenant: &str, user: &str, session: &str, micros: u64) {
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        let _request =
            info_span!("request", tenant.id = tenant, user.id = user, session.id = session, project = "site").entered();
        let _task = info_span!("task", task = "answer").entered();
        drop(info_span!("chat", gen_ai.request.model = HAIKU, input_tokens = micros).entered());
        drop(info_span!("execute_tool", gen_ai.operation.name = "execute_tool", gen_ai.tool.name = "search").entered());
    });
}

fn clock() -> ManualClock {
    ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap())
}

/// Alice's and bob's work, over two days.
fn two_days(m: &TokenMeter, clock: &ManualClock) {
    work(m, "acme", "alice", "s-a1", 600_000);
    work(m, "acme", "bob", "s-b1", 100_000);
    clock.set(Utc.with_ymd_and_hms(2026, 3, 15, 9, 0, 0).unwrap());
    work(m, "acme", "bob", "s-b2", 200_000);
    work(m, "globex", "alice", "s-a2", 100_000);
    work(m, "globex", "carol", "s-c1", 300_000);
}

/// Every report, query and budget state the meter gives, as JSON.
fn everything(m: &TokenMeter) -> String {
    let mut out = Vec::new();
    let mut add = |v: serde_json::Value| out.push(v.to_string());
    for d in Dimension::ALL {
        let q = Query::new(Window::All).group_by(GroupBy::Dimension(d));
        add(serde_json::to_value(m.query(&q).unwrap()).unwrap());
        if d != Dimension::Tool {
            add(serde_json::to_value(m.efficiency_report(Window::All, d).unwrap()).unwrap());
        }
        for child in Dimension::ALL {
            if let Ok(tree) = m.breakdown_tree(Window::All, d, child) {
                add(serde_json::to_value(tree).unwrap());
            }
        }
    }
    add(serde_json::to_value(m.usage_summary(Window::All).unwrap()).unwrap());
    add(serde_json::to_value(m.cache_report(Window::All).unwrap()).unwrap());
    add(serde_json::to_value(m.time_of_day(Window::All).unwrap()).unwrap());
    add(serde_json::to_value(m.anomalies(Window::All).unwrap()).unwrap());
    add(serde_json::to_value(m.budget_status()).unwrap());
    out.join("\n")
}

/// `(key, calls, exact cost)` of each row of `dimension` over everything.
fn rows(m: &TokenMeter, dimension: Dimension) -> Vec<(String, u64, Money)> {
    let q = Query::new(Window::All).group_by(GroupBy::Dimension(dimension));
    let mut rows: Vec<_> = m.query(&q).unwrap().groups.into_iter().map(|g| (g.key, g.calls, g.cost_picos)).collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

/// `micros` micro-USD.
fn usd_micros(micros: u128) -> Money {
    Money::from_picos(micros * 1_000_000)
}

fn total(m: &TokenMeter) -> (u64, Money) {
    let t = m.query(&Query::new(Window::All)).unwrap().totals;
    (t.calls, t.cost_picos)
}

/// `(budget, value, spent)` of every budget state.
fn spent(m: &TokenMeter) -> Vec<(String, Option<String>, String)> {
    let mut states: Vec<_> = m
        .budget_status()
        .into_iter()
        .map(|s| (s.budget.to_string(), s.member.as_deref().map(str::to_owned), format!("{:?}", s.spent)))
        .collect();
    states.sort();
    states
}

#[test]
fn a_users_figures_leave_the_running_meter_as_a_restart_would_find_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let m = meter(Some(dir.path()), &clock);
    two_days(&m, &clock);
    let before = everything(&m);
    for name in ["alice", "s-a1", "s-a2"] {
        assert!(before.contains(&format!("\"{name}\"")), "{name} is shown before");
    }
    let (calls_before, cost_before) = total(&m);

    let erased = m.erase(&Erasure::new().user("alice")).unwrap();
    let journal = erased.journal.as_ref().expect("the meter's journal was erased");
    assert_eq!((journal.calls, journal.tasks, journal.tools), (2, 2, 2), "{erased:?}");
    assert_eq!(erased.sessions_found, 2, "her two sessions, found in her lines: {erased:?}");
    // Her user rows and her sessions' rows and pairs, in the buckets of each tier they reached.
    assert!(erased.ledger_entries >= 8, "{erased:?}");
    assert_eq!(erased.budget_accounts, 2, "her account in `per-user`, and `alice`: {erased:?}");
    assert!(erased.journal_flush.is_none() && !erased.dry_run);

    let after = everything(&m);
    for name in ["alice", "s-a1", "s-a2"] {
        assert!(!after.contains(&format!("\"{name}\"")), "{name} is still shown:\n{after}");
    }
    assert!(after.contains("\"bob\"") && after.contains("\"s-c1\""), "the others stay");
    // The totals keep her spend, as calls of no user.
    assert_eq!(total(&m), (calls_before, cost_before));

    m.shutdown().unwrap();
    let restarted = meter(Some(dir.path()), &clock);
    let named = |m: &TokenMeter, d| rows(m, d).into_iter().filter(|r| r.0 != "(none)").collect::<Vec<_>>();
    for d in [Dimension::User, Dimension::Session] {
        assert_eq!(named(&m, d), named(&restarted, d), "the {d} rows a restart finds");
        // Her calls are the live meter's calls of no user (and no session).
        let none = rows(&m, d).into_iter().find(|r| r.0 == "(none)").map(|r| (r.1, r.2));
        assert_eq!(none, Some((2, usd_micros(700_000))), "{d}");
    }
    let budgets = |m: &TokenMeter| spent(m).into_iter().filter(|s| s.0 != "all").collect::<Vec<_>>();
    assert_eq!(budgets(&m), budgets(&restarted), "every budget but the one over everything");
    let (calls, cost) = total(&restarted);
    assert_eq!(calls + 2, calls_before, "a restart no longer counts her two calls");
    assert_eq!(cost + usd_micros(700_000), cost_before);
    assert!(!everything(&restarted).contains("\"alice\""));
}

#[test]
fn a_tenants_series_are_filed_under_no_tenant_and_every_other_breakdown_stays() {
    let clock = clock();
    let m = meter(None, &clock);
    two_days(&m, &clock);
    let keep = [Dimension::Model, Dimension::Project, Dimension::Task, Dimension::Tool, Dimension::User];
    let before: Vec<_> = keep.iter().map(|d| rows(&m, *d)).collect();
    let (calls, cost) = total(&m);
    let tenants = rows(&m, Dimension::Tenant);
    assert_eq!(tenants.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["acme", "globex"]);

    let erased = m.erase(&Erasure::new().tenant("acme")).unwrap();
    assert!(erased.journal.is_none() && erased.sessions_found == 0, "no journal: {erased:?}");
    assert!(erased.ledger_entries > 0 && erased.budget_accounts == 0, "{erased:?}");

    let tenants = rows(&m, Dimension::Tenant);
    assert_eq!(tenants.iter().filter(|r| r.0 == "acme").count(), 0, "{tenants:?}");
    let globex = tenants.iter().find(|r| r.0 == "globex").expect("globex stays");
    assert_eq!((globex.1, globex.2), (2, usd_micros(400_000)));
    assert!(!everything(&m).contains("\"acme\""));
    assert_eq!(total(&m), (calls, cost));
    let after: Vec<_> = keep.iter().map(|d| rows(&m, *d)).collect();
    assert_eq!(before, after, "each breakdown by another dimension is as it was");
}

#[test]
fn a_dry_run_counts_what_the_erasure_then_forgets_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let m = meter(Some(dir.path()), &clock);
    two_days(&m, &clock);
    m.flush().unwrap();
    let shown = everything(&m);
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    let bytes = |dir: &Path| -> Vec<Vec<u8>> {
        let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        paths.sort();
        paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
    };
    let journal = bytes(dir.path());

    let erasure = Erasure::new().user("alice").session("s-b2");
    let dry = m.erase(&erasure.clone().with_dry_run(true)).unwrap();
    assert!(dry.dry_run && dry.ledger_entries > 0 && dry.budget_accounts == 2, "{dry:?}");
    assert_eq!(everything(&m), shown, "a dry run changes nothing the meter shows");
    assert_eq!((std::fs::read_dir(dir.path()).unwrap().count(), bytes(dir.path())), (files, journal));

    let done = m.erase(&erasure).unwrap();
    assert_eq!(
        (done.sessions_found, done.ledger_entries, done.cache_histories, done.budget_accounts),
        (dry.sessions_found, dry.ledger_entries, dry.cache_histories, dry.budget_accounts),
        "the dry run counted what the erasure did"
    );
    assert_eq!(done.journal.as_ref().map(|j| j.lines()), dry.journal.as_ref().map(|j| j.lines()));
    assert!(!everything(&m).contains("\"s-b2\""));
}

#[test]
fn a_pending_cache_write_of_an_erased_user_is_filed_without_her_when_it_expires() {
    let clock = clock();
    let m = meter(None, &clock);
    let subscriber = tracing_subscriber::registry().with(m.layer());
    tracing::subscriber::with_default(subscriber, || {
        let _s = info_span!("request", user.id = "alice", session.id = "s-cache").entered();
        drop(
            info_span!(
                "chat",
                gen_ai.request.model = HAIKU,
                input_tokens = 10u64,
                cache_creation_input_tokens = 20_000u64,
                output_tokens = 5u64
            )
            .entered(),
        );
    });
    // Her session only: its caching history stays, and the write it waits on is cleared of her.
    let erased = m.erase(&Erasure::new().user("alice")).unwrap();
    assert_eq!(erased.cache_histories, 1, "{erased:?}");
    assert!(!everything(&m).contains("\"alice\""));
    // Never read: past its lifetime it is filed as waste, under her session and no user.
    clock.advance(chrono::Duration::hours(1));
    let shown = everything(&m);
    assert!(!shown.contains("\"alice\""), "the expired write brought her back:\n{shown}");
    let unread = m.cache_report(Window::All).unwrap().unread_cache_writes;
    assert_eq!((unread.writes, unread.tokens), (1, 20_000), "the write was filed: {unread:?}");
}

#[test]
fn a_value_account_opens_again_with_its_next_call_alone() {
    let clock = clock();
    let m = meter(None, &clock);
    work(&m, "acme", "alice", "s-a1", 600_000);
    m.erase(&Erasure::new().user("alice")).unwrap();
    work(&m, "acme", "alice", "s-a3", 100_000);
    // As a meter that saw only her next call, but for the budget over everything.
    let fresh = meter(None, &clock);
    work(&fresh, "acme", "alice", "s-a3", 100_000);
    let hers = |m: &TokenMeter| spent(m).into_iter().filter(|s| s.0 != "all").collect::<Vec<_>>();
    assert_eq!(hers(&m), hers(&fresh));
    assert_eq!(hers(&m).len(), 2, "her own budget and her account in `per-user`: {:?}", hers(&m));
}

#[test]
fn an_erasure_without_a_value_is_refused_and_erases_nothing() {
    let clock = clock();
    let m = meter(None, &clock);
    work(&m, "acme", "alice", "s-a1", 600_000);
    let shown = everything(&m);
    for bad in [Erasure::new(), Erasure::new().user(""), Erasure::new().dimension("", "alice")] {
        assert!(matches!(m.erase(&bad), Err(JournalError::InvalidErasure(_))), "{bad:?}");
    }
    assert_eq!(everything(&m), shown);
}

#[test]
fn a_tenants_erasure_forgets_every_session_its_journal_lines_were_in() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let m = meter(Some(dir.path()), &clock);
    // Fewer than a minute bucket keeps sessions of (64): past them, the last would be filed under `(other)`.
    for i in 0..50 {
        work(&m, "acme", &format!("u-{i}"), &format!("s-acme-{i}"), 1_000);
    }
    work(&m, "globex", "carol", "s-globex", 1_000);
    let erased = m.erase(&Erasure::new().tenant("acme")).unwrap();
    assert_eq!(erased.sessions_found, 50, "{erased:?}");
    let sessions: Vec<String> = rows(&m, Dimension::Session).into_iter().map(|r| r.0).collect();
    assert_eq!(sessions, ["(none)", "s-globex"]);
    // Its users are not linked to the tenant in memory: only its sessions' rows go with it.
    assert_eq!(rows(&m, Dimension::User).len(), 51);
    let shown = everything(&m);
    assert!(!shown.contains("acme") && !shown.contains("s-acme-"), "{shown}");
}

#[test]
fn a_dry_run_counts_what_the_journal_queue_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let m = meter(Some(dir.path()), &clock);
    work(&m, "acme", "bob", "s-b1", 100_000);
    m.flush().unwrap();
    // The day file's lock held: alice's lines wait in the queue (a slow disk, another process's erasure).
    let day_file = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).next().unwrap();
    let held = std::fs::OpenOptions::new().read(true).write(true).open(&day_file).unwrap();
    held.lock().unwrap();
    work(&m, "acme", "alice", "s-a1", 600_000);
    let releases = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        held.unlock().unwrap();
    });
    let dry = m.erase(&Erasure::new().user("alice").with_dry_run(true)).unwrap();
    releases.join().unwrap();
    let done = m.erase(&Erasure::new().user("alice")).unwrap();
    let counts = |e: &tokenmeter::Erased| {
        (e.journal.as_ref().unwrap().lines(), e.sessions_found, e.ledger_entries, e.cache_histories, e.budget_accounts)
    };
    assert_eq!(counts(&dry), counts(&done));
    let calls = |e: &tokenmeter::Erased| e.journal.as_ref().map(|j| (j.calls, j.tasks, j.tools));
    assert_eq!((calls(&dry), calls(&done)), (Some((1, 1, 1)), Some((1, 1, 1))), "the queued call counted");
}

#[cfg(feature = "http")]
#[test]
fn the_http_apis_session_tenants_forget_an_erased_session_and_an_erased_tenants_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let tenants = tokenmeter::http::SessionTenants::default();
    let m = TokenMeter::builder()
        .with_clock(clock.clone())
        .with_journal(JournalConfig::new(dir.path()))
        .with_sink(tenants.clone())
        .try_build()
        .unwrap();
    work(&m, "acme", "alice", "s-a1", 600_000);
    work(&m, "acme", "bob", "s-b1", 100_000);
    work(&m, "globex", "carol", "s-c1", 100_000);
    assert_eq!(tenants.len(), 3);
    m.erase(&Erasure::new().user("alice")).unwrap();
    assert_eq!((tenants.tenant_of("s-a1"), tenants.tenant_of("s-b1").as_deref()), (None, Some("acme")));
    m.erase(&Erasure::new().tenant("acme")).unwrap();
    assert_eq!((tenants.tenant_of("s-b1"), tenants.tenant_of("s-c1").as_deref()), (None, Some("globex")));
    assert_eq!(tenants.len(), 1);
}

#[test]
fn a_value_longer_than_the_meter_keeps_is_erased_as_it_was_cut() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let m = meter(Some(dir.path()), &clock);
    let long = format!("alice@{}.example", "x".repeat(200));
    work(&m, "acme", &long, "s-a1", 600_000);
    let erased = m.erase(&Erasure::new().user(long.clone())).unwrap();
    assert_eq!(erased.journal.as_ref().map(|j| j.calls), Some(1), "{erased:?}");
    assert!(rows(&m, Dimension::User).iter().all(|r| r.0 == "(none)"), "{:?}", rows(&m, Dimension::User));
}

#[test]
fn the_results_debug_counts_the_sessions_found_without_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let m = meter(Some(dir.path()), &clock);
    work(&m, "acme", "alice", "s-alice-secret", 600_000);
    let erased = m.erase(&Erasure::new().user("alice")).unwrap();
    let shown = format!("{erased:?}");
    assert!(!shown.contains("s-alice-secret") && shown.contains("1 sessions"), "{shown}");
}

#[test]
fn a_tenants_series_filed_again_in_a_full_bucket_keep_their_projects() {
    let clock = clock();
    let m = TokenMeter::builder().with_clock(clock.clone()).build();
    let subscriber = tracing_subscriber::registry().with(m.layer());
    tracing::subscriber::with_default(subscriber, || {
        let one = |tenant: &str, project: &str, task: Option<&str>| {
            let _r = info_span!("request", tenant.id = tenant, project = project).entered();
            let _t = task.map(|t| info_span!("task", task = t).entered());
            drop(info_span!("chat", gen_ai.request.model = HAIKU, input_tokens = 1_000u64).entered());
        };
        // A minute bucket's 64 series, and three more in its reserve.
        one("acme", "P", None);
        for i in 0..63 {
            one("globex", &format!("p{i:02}"), None);
        }
        for i in 0..3 {
            one("globex", &format!("p{i:02}"), Some("t"));
        }
    });
    let before = rows(&m, Dimension::Project);
    m.erase(&Erasure::new().tenant("acme")).unwrap();
    assert_eq!(rows(&m, Dimension::Project), before, "the breakdown by project stays as it was");
}
