//! A journal directory that can be read but no longer written to (a read-only mount, a full inode table, a
//! directory of another user's): `build()` runs on without a journal, and still replays what the directory
//! holds, so that budgets keep their spend across the restart; `try_build()` refuses it.
//!
//! The reading meter runs in a child process (this test binary run again with `READ_ONLY_CHILD_DIR` set, running
//! the ignored `read_only_child`): as an unprivileged user when the tests run as root, whom a mode of 0555 does
//! not stop.
#![cfg(unix)]

use crate::common;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use chrono::{TimeZone, Utc};
use tokenmeter::budget::{Budget, BudgetAction, BudgetLimit, RequestScope};
use tokenmeter::journal::JournalConfig;
use tokenmeter::{ManualClock, TokenMeter, TokenMeterBuilder};
use tracing::info_span;
use tracing_subscriber::prelude::*;

const CHILD_DIR: &str = "READ_ONLY_CHILD_DIR";

fn builder(dir: &Path) -> TokenMeterBuilder {
    TokenMeter::builder()
        .with_clock(ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap()))
        .with_budget(Budget::new("hard", BudgetLimit::usd(1.0).unwrap()).with_action(BudgetAction::Block))
        .with_journal(JournalConfig::new(dir).with_max_age(Some(std::time::Duration::from_secs(32 * 86_400))))
}

/// Prints what a meter built over the directory sees. Does nothing unless started by the test below.
#[test]
#[ignore = "a child process of the test below, not a test"]
fn read_only_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let dir = Path::new(&dir);
    match builder(dir).try_build() {
        Ok(_) => println!("try_build ok"),
        Err(e) => println!("try_build refused: {e}"),
    }
    let meter = builder(dir).build();
    println!("spent {}", meter.budget_status()[0].spent);
    println!(
        "check {}",
        meter.check_budget(&RequestScope::new()).map_or_else(|e| e.budget().to_owned(), |()| "ok".into())
    );
    println!("journal {}", meter.journal_stats().is_some());
    println!("calls {}", meter.total_usage().calls);
}

#[test]
fn a_journal_that_cannot_be_written_is_still_replayed_into_the_budgets() {
    let dir = tempfile::tempdir().unwrap();
    let writer = builder(dir.path()).try_build().unwrap();
    let subscriber = tracing_subscriber::registry().with(writer.layer());
    tracing::subscriber::with_default(subscriber, || {
        // $1.20 of claude-haiku-4-5 input: over the $1 block budget.
        let _call =
            info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 1_200_000u64).entered();
    });
    writer.flush().unwrap();
    drop(writer);
    // A day file older than the 32 days kept, which a restart that could write would delete before replaying.
    let line = std::fs::read_to_string(dir.path().join("tokenmeter-2026-03-14.jsonl")).unwrap();
    std::fs::write(dir.path().join("tokenmeter-2026-01-02.jsonl"), line.replace("2026-03-14", "2026-01-02")).unwrap();

    // The child runs as another user when this test runs as root: day files are never made readable by other
    // users, so an operator who wants one to read them opens them by hand.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::set_permissions(entry.unwrap().path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args([
            &common::test_path(module_path!(), "read_only_child"),
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path());
    if std::fs::metadata(dir.path()).unwrap().uid() == 0 {
        child.uid(65_534).gid(65_534);
    }
    let out = child.output().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The harness prints `test read_only_child ... ` before the child's first line.
    let from = stdout.find("try_build").unwrap_or_else(|| panic!("{stdout}\n{stderr}"));
    let lines: Vec<&str> = stdout[from..].lines().collect();
    assert!(lines[0].starts_with("try_build refused: ") && lines[0].contains("ermission denied"), "{stdout}");
    // Before, `build()` said "journal disabled" and every budget started again from $0.
    assert_eq!(lines[1..5], ["spent $1.20", "check hard", "journal false", "calls 1"], "{stdout}\n{stderr}");
    assert!(stderr.contains("cannot be written to") && stderr.contains("replayed 1 records"), "{stderr}");
}
