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

/// One claude-haiku-4-5 call of alice alone (no task, no tool execution), of `tokens` input tokens, in `session`
/// when given.
fn alice_call(m: &TokenMeter, session: Option<&str>, tokens: u64) {
    let subscriber = tracing_subscriber::registry().with(m.layer());
    tracing::subscriber::with_default(subscriber, || {
        let _request = info_span!("request", user.id = "alice", session.id = session).entered();
        drop(info_span!("chat", gen_ai.request.model = HAIKU, input_tokens = tokens).entered());
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

/// A sink heard before the ledger that holds alice's calls until released, saying when one arrives.
struct Hold {
    arrived: std::sync::mpsc::SyncSender<()>,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl tokenmeter::RecordSink for Hold {
    fn before_ledger(&self) -> bool {
        true
    }
    fn on_call(&self, call: &tokenmeter::CallRecord) {
        if call.dimensions.user.as_deref() == Some("alice") {
            self.arrived.send(()).unwrap();
            self.release.lock().unwrap().recv().unwrap();
        }
    }
}

#[test]
fn a_call_finishing_as_the_erasure_begins_is_waited_for_and_then_forgotten() {
    // Alice's call is journaled and counted in the budgets, and held before the ledger has it, when the erasure
    // starts. Without waiting for it, the erasure forgot her everywhere and the call then put her back in the
    // ledger.
    let dir = tempfile::tempdir().unwrap();
    let (arrived_tx, arrived) = std::sync::mpsc::sync_channel(1);
    let (release, release_rx) = std::sync::mpsc::channel();
    let hold = Hold { arrived: arrived_tx, release: std::sync::Mutex::new(release_rx) };
    let clock = clock();
    let m = TokenMeter::builder()
        .with_clock(clock.clone())
        .with_sink(hold)
        .with_budget(Budget::new("per-user", BudgetLimit::usd(1.0).unwrap()).with_scope(BudgetScope::each_user()))
        .with_journal(JournalConfig::new(dir.path()).with_fsync(FsyncPolicy::EveryRecord))
        .try_build()
        .unwrap();
    work(&m, "acme", "bob", "s-b1", 100_000);
    std::thread::scope(|s| {
        // A call alone: a task or tool execution of hers finishing after it could come after the erasure ended.
        let call = s.spawn(|| alice_call(&m, Some("s-a1"), 600_000));
        arrived.recv().unwrap();
        let erase = s.spawn(|| m.erase(&Erasure::new().user("alice")).unwrap());
        // The erasure waits for the call (up to 10 s): it has not finished 300 ms on.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let waited = !erase.is_finished();
        release.send(()).unwrap();
        call.join().unwrap();
        let erased = erase.join().unwrap();
        assert!(waited, "the erasure did not wait for the call finishing");
        assert_eq!(erased.in_flight_left, 0, "{erased:?}");
        assert_eq!(erased.journal.as_ref().unwrap().calls, 1, "her call's line, written before the erasure");
    });
    let after = everything(&m);
    assert!(!after.contains("\"alice\"") && !after.contains("\"s-a1\""), "{after}");
    // Her call stays in the totals, as a call of no user.
    assert_eq!(total(&m), (2, usd_micros(700_000)));
    m.shutdown().unwrap();
    let journal = std::fs::read_dir(dir.path()).unwrap().map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap());
    assert!(!journal.collect::<String>().contains("alice"));
}

/// A sink that records a call of alice when it hears of an erasure: a call finishing while the erasure runs.
struct CallsDuringErasure(std::sync::Arc<std::sync::OnceLock<TokenMeter>>);

impl tokenmeter::RecordSink for CallsDuringErasure {
    fn on_call(&self, _call: &tokenmeter::CallRecord) {}
    fn on_erase(&self, _values: &[(String, String)]) {
        work(self.0.get().unwrap(), "acme", "alice", "s-a9", 50_000);
    }
}

#[test]
fn a_call_finishing_while_the_erasure_runs_is_kept_without_the_values_and_not_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let cell = std::sync::Arc::new(std::sync::OnceLock::new());
    let clock = clock();
    let m = TokenMeter::builder()
        .with_clock(clock.clone())
        .with_sink(CallsDuringErasure(cell.clone()))
        .with_journal(JournalConfig::new(dir.path()).with_fsync(FsyncPolicy::EveryRecord))
        .try_build()
        .unwrap();
    cell.set(m.clone()).unwrap();
    work(&m, "acme", "alice", "s-a1", 600_000);
    let erased = m.erase(&Erasure::new().user("alice")).unwrap();
    assert_eq!(erased.in_flight_left, 0);
    let after = everything(&m);
    assert!(!after.contains("\"alice\"") && !after.contains("\"s-a1\""), "{after}");
    // The call during the erasure counts, of no user and no session (the erasure would not find its session).
    assert_eq!(total(&m), (2, usd_micros(650_000)));
    assert!(!rows(&m, Dimension::Session).iter().any(|r| r.0 == "s-a9"));
    m.flush().unwrap();
    let journal: String =
        std::fs::read_dir(dir.path()).unwrap().map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap()).collect();
    assert!(!journal.contains("alice") && !journal.contains("s-a9"), "{journal}");
    // Once it is over, her calls are recorded as before.
    work(&m, "acme", "alice", "s-a10", 1);
    assert!(rows(&m, Dimension::User).iter().any(|r| r.0 == "alice"));
}

/// A sink that erases alice from inside her call: the erasure must not wait for the call it runs in.
struct ErasesFromInside(std::sync::Arc<std::sync::OnceLock<TokenMeter>>, std::sync::Mutex<Option<tokenmeter::Erased>>);

impl tokenmeter::RecordSink for ErasesFromInside {
    fn on_call(&self, call: &tokenmeter::CallRecord) {
        if call.dimensions.user.as_deref() == Some("alice") {
            let erased = self.0.get().unwrap().erase(&Erasure::new().user("alice")).unwrap();
            *self.1.lock().unwrap() = Some(erased);
        }
    }
}

#[test]
fn an_erasure_from_inside_a_finishing_call_does_not_wait_for_that_call() {
    let cell = std::sync::Arc::new(std::sync::OnceLock::new());
    let sink = std::sync::Arc::new(ErasesFromInside(cell.clone(), std::sync::Mutex::new(None)));
    struct Shared(std::sync::Arc<ErasesFromInside>);
    impl tokenmeter::RecordSink for Shared {
        fn on_call(&self, call: &tokenmeter::CallRecord) {
            self.0.on_call(call)
        }
    }
    let m = TokenMeter::builder().with_sink(Shared(sink.clone())).build();
    cell.set(m.clone()).unwrap();
    let started = std::time::Instant::now();
    work(&m, "acme", "alice", "s-a1", 1);
    // Well under the 10 s it waits for others' calls.
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(sink.1.lock().unwrap().as_ref().map(|e| e.in_flight_left), Some(0));
}

/// A sink that erases bob when it hears alice erased.
struct ErasesOnErase(std::sync::Arc<std::sync::OnceLock<TokenMeter>>);

impl tokenmeter::RecordSink for ErasesOnErase {
    fn on_call(&self, _call: &tokenmeter::CallRecord) {}
    fn on_erase(&self, values: &[(String, String)]) {
        if values.iter().any(|(_, v)| v == "alice") {
            self.0.get().unwrap().erase(&Erasure::new().user("bob")).unwrap();
        }
    }
}

#[test]
fn an_erasure_from_inside_an_erasure_runs_without_waiting_for_it() {
    let cell = std::sync::Arc::new(std::sync::OnceLock::new());
    let m = TokenMeter::builder().with_sink(ErasesOnErase(cell.clone())).build();
    cell.set(m.clone()).unwrap();
    work(&m, "acme", "alice", "s-a1", 1);
    work(&m, "acme", "bob", "s-b1", 1);
    // On a thread of its own, so that a deadlock fails the test rather than hanging it.
    let (done, finished) = std::sync::mpsc::channel();
    let erasing = m.clone();
    std::thread::spawn(move || done.send(erasing.erase(&Erasure::new().user("alice")).map(|_| ())).unwrap());
    finished.recv_timeout(std::time::Duration::from_secs(30)).expect("the erasures finish").unwrap();
    let users: Vec<String> = rows(&m, Dimension::User).into_iter().map(|r| r.0).collect();
    assert_eq!(users, ["(none)"]);
    // The gate is open again: calls are recorded as they come.
    work(&m, "acme", "carol", "s-c1", 1);
    assert!(rows(&m, Dimension::User).iter().any(|r| r.0 == "carol"));
}

/// A sink that erases alice from another meter when it hears her call.
struct ErasesElsewhere(TokenMeter, std::sync::mpsc::Sender<tokenmeter::Erased>);

impl tokenmeter::RecordSink for ErasesElsewhere {
    fn on_call(&self, call: &tokenmeter::CallRecord) {
        if call.dimensions.user.as_deref() == Some("alice") {
            self.1.send(self.0.erase(&Erasure::new().user("alice")).unwrap()).unwrap();
        }
    }
}

#[test]
fn an_erasure_from_inside_another_meters_call_still_waits_for_its_own_meters_calls() {
    // The thread's own finishing call (of meter a) is not one of meter b's: b's erasure waits for b's call held on
    // another thread, as it would from anywhere else.
    let (arrived_tx, arrived) = std::sync::mpsc::sync_channel(1);
    let (release, release_rx) = std::sync::mpsc::channel();
    let b = TokenMeter::builder()
        .with_sink(Hold { arrived: arrived_tx, release: std::sync::Mutex::new(release_rx) })
        .build();
    let (erased_tx, erased) = std::sync::mpsc::channel();
    let a = TokenMeter::builder().with_sink(ErasesElsewhere(b.clone(), erased_tx)).build();
    let alice_on = |m: &TokenMeter| alice_call(m, Some("s-a1"), 10);
    std::thread::scope(|s| {
        let held = s.spawn(|| alice_on(&b));
        arrived.recv().unwrap();
        let erasing = s.spawn(|| alice_on(&a));
        std::thread::sleep(std::time::Duration::from_millis(300));
        let waited = !erasing.is_finished();
        release.send(()).unwrap();
        held.join().unwrap();
        erasing.join().unwrap();
        assert!(waited, "b's erasure did not wait for b's call");
    });
    assert_eq!(erased.recv().unwrap().in_flight_left, 0);
    assert!(!everything(&b).contains("\"alice\""));
}

/// A sink that, hearing alice erased, erases her from another meter too.
struct ForwardsErasure(TokenMeter);

impl tokenmeter::RecordSink for ForwardsErasure {
    fn on_call(&self, _call: &tokenmeter::CallRecord) {}
    fn on_erase(&self, values: &[(String, String)]) {
        if values.iter().any(|(_, v)| v == "alice") {
            self.0.erase(&Erasure::new().user("alice")).unwrap();
        }
    }
}

#[test]
fn an_erasure_forwarded_to_another_meter_waits_for_that_meters_calls() {
    // b's erasure, run from inside a's, is not nested in one of b's: it takes b's gate and waits for b's call.
    let (arrived_tx, arrived) = std::sync::mpsc::sync_channel(1);
    let (release, release_rx) = std::sync::mpsc::channel();
    let b = TokenMeter::builder()
        .with_sink(Hold { arrived: arrived_tx, release: std::sync::Mutex::new(release_rx) })
        .build();
    let a = TokenMeter::builder().with_sink(ForwardsErasure(b.clone())).build();
    std::thread::scope(|s| {
        let held = s.spawn(|| alice_call(&b, Some("s-a1"), 10));
        arrived.recv().unwrap();
        let erasing = s.spawn(|| a.erase(&Erasure::new().user("alice")).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(300));
        let waited = !erasing.is_finished();
        release.send(()).unwrap();
        held.join().unwrap();
        erasing.join().unwrap();
        assert!(waited, "b's erasure did not wait for b's call");
    });
    assert!(!everything(&b).contains("\"alice\""));
}

/// A sink that records a call through a second meter, whose own sink erases alice from that second meter.
struct RecordsThrough(TokenMeter);

impl tokenmeter::RecordSink for RecordsThrough {
    fn on_call(&self, call: &tokenmeter::CallRecord) {
        if call.dimensions.user.as_deref() == Some("alice") {
            alice_call(&self.0, None, 10);
        }
    }
}

#[test]
fn an_erasure_inside_a_call_of_its_meter_inside_another_meters_call_does_not_wait_for_it() {
    let cell = std::sync::Arc::new(std::sync::OnceLock::new());
    let sink = std::sync::Arc::new(ErasesFromInside(cell.clone(), std::sync::Mutex::new(None)));
    struct Shared(std::sync::Arc<ErasesFromInside>);
    impl tokenmeter::RecordSink for Shared {
        fn on_call(&self, call: &tokenmeter::CallRecord) {
            self.0.on_call(call)
        }
    }
    let b = TokenMeter::builder().with_sink(Shared(sink.clone())).build();
    cell.set(b.clone()).unwrap();
    let a = TokenMeter::builder().with_sink(RecordsThrough(b.clone())).build();
    let started = std::time::Instant::now();
    work(&a, "acme", "alice", "s-a1", 1);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(sink.1.lock().unwrap().as_ref().map(|e| e.in_flight_left), Some(0));
}
