//! Erasing a user's (session's, tenant's) records from the journal: every line naming the value goes, every other
//! line stays byte for byte, a restarted meter no longer knows the value, and a meter writing meanwhile loses
//! nothing.

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use tokenmeter::budget::{Budget, BudgetLimit, BudgetPeriod, BudgetScope};
use tokenmeter::journal::{self, Erasure, FsyncPolicy, JournalConfig, JournalEntry};
use tokenmeter::{JournalError, ManualClock, TokenMeter};
use tracing::info_span;
use tracing_subscriber::prelude::*;

const HAIKU: &str = "claude-haiku-4-5";

/// A meter journaling into `dir` on `clock`, with a budget of $1 a day for each user.
fn meter(dir: &Path, clock: &ManualClock) -> TokenMeter {
    TokenMeter::builder()
        .with_clock(clock.clone())
        .with_journal(JournalConfig::new(dir).with_fsync(FsyncPolicy::EveryRecord))
        .with_budget(
            Budget::new("per-user", BudgetLimit::usd(1.0).unwrap())
                .with_scope(BudgetScope::each_user())
                .with_period(BudgetPeriod::Day),
        )
        .try_build()
        .unwrap()
}

/// One claude-haiku-4-5 call by `user` in `session` costing `micros` micro-USD, inside a task, and a tool execution
/// beside it.
fn work(meter: &TokenMeter, user: &str, session: &str, micros: u64) {
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        let _user = info_span!("request", user.id = user, session.id = session, project = "site").entered();
        let _task = info_span!("task", task = "answer").entered();
        drop(info_span!("chat", gen_ai.request.model = HAIKU, input_tokens = micros).entered());
        drop(info_span!("execute_tool", gen_ai.operation.name = "execute_tool", gen_ai.tool.name = "search").entered());
    });
}

/// Every day file's lines, in order, by file.
fn lines(dir: &Path) -> Vec<(PathBuf, Vec<String>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let lines = text.lines().map(str::to_owned).collect();
            (p, lines)
        })
        .collect()
}

/// Whether a journal line is a record or alert of user `user`, read with `serde_json` alone.
fn of_user(line: &str, user: &str) -> bool {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    ["call", "task", "tool"].iter().any(|k| v[k]["dimensions"]["user"] == user)
        || v["budget_alert"]["scope"] == format!("user={user}")
}

/// Two days of alice's and bob's work, and alice's 50% alert on the first; the meter dropped.
fn two_days(dir: &Path) -> ManualClock {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap());
    let m = meter(dir, &clock);
    work(&m, "alice", "s-a1", 600_000);
    work(&m, "bob", "s-b1", 100_000);
    clock.set(Utc.with_ymd_and_hms(2026, 3, 15, 9, 0, 0).unwrap());
    work(&m, "bob", "s-b2", 200_000);
    work(&m, "alice", "s-a2", 100_000);
    m.flush().unwrap();
    clock
}

#[test]
fn a_users_lines_go_and_every_other_line_stays_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let clock = two_days(dir.path());
    let before = lines(dir.path());
    assert_eq!(before.len(), 2, "two day files");
    let alice_lines: usize = before.iter().map(|(_, l)| l.iter().filter(|l| of_user(l, "alice")).count()).sum();
    // Two calls, two tasks, two tools and the 50% alert (restated with the second day's first call of hers).
    assert!(alice_lines >= 7, "{alice_lines}");

    // A dry run counts and changes nothing.
    let dry = journal::erase(dir.path(), &Erasure::new().user("alice").with_dry_run(true)).unwrap();
    assert!(dry.dry_run);
    assert_eq!(lines(dir.path()), before);
    assert_eq!((dry.files, dry.files_rewritten, dry.calls, dry.tasks, dry.tools), (2, 2, 2, 2, 2));
    assert_eq!(dry.lines() as usize, alice_lines);

    let report = journal::erase(dir.path(), &Erasure::new().user("alice")).unwrap();
    let mut expected = dry.clone();
    expected.dry_run = false;
    assert_eq!(report, expected);
    assert_eq!(report.alerts as usize, alice_lines - 6);
    let after = lines(dir.path());
    for ((path, was), (path_after, now)) in before.iter().zip(&after) {
        assert_eq!(path, path_after);
        let expected: Vec<&String> = was.iter().filter(|l| !of_user(l, "alice")).collect();
        assert_eq!(now.iter().collect::<Vec<_>>(), expected, "{}", path.display());
        assert!(!now.iter().any(|l| l.contains("alice")), "{}", path.display());
    }
    let bytes: u64 = after.iter().map(|(p, _)| std::fs::metadata(p).unwrap().len()).sum();
    assert_eq!(bytes, report.bytes_after);
    // Nothing else was left in the directory (the rewritten files' temporary names).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);

    // A restarted meter knows bob alone.
    let restarted = meter(dir.path(), &clock);
    let states = restarted.budget_status();
    let members: Vec<_> = states.iter().filter_map(|s| s.member.as_deref()).collect();
    assert_eq!(members, ["bob"]);
    assert_eq!(restarted.total_usage().calls, 2);
    let mut users = Vec::new();
    journal::read_entries(dir.path(), |e| match e {
        JournalEntry::Call(c) => users.push(c.dimensions.user.unwrap().to_string()),
        JournalEntry::Task(t) => users.push(t.dimensions.user.unwrap().to_string()),
        JournalEntry::Tool(t) => users.push(t.dimensions.user.unwrap().to_string()),
        _ => {}
    })
    .unwrap();
    assert_eq!(users, ["bob"; 6]);

    // Erasing again finds nothing and rewrites nothing.
    let again = journal::erase(dir.path(), &Erasure::new().user("alice")).unwrap();
    assert_eq!((again.lines(), again.files_rewritten, again.files), (0, 0, 2));
}

#[test]
fn a_session_a_project_and_several_values_at_once() {
    let dir = tempfile::tempdir().unwrap();
    two_days(dir.path());
    let report = journal::erase(dir.path(), &Erasure::new().session("s-b1").session("s-a2")).unwrap();
    assert_eq!((report.calls, report.tasks, report.tools, report.alerts), (2, 2, 2, 0));
    let left: Vec<String> = lines(dir.path())
        .into_iter()
        .flat_map(|(_, l)| l)
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            v["call"]["dimensions"]["session"].as_str().map(str::to_owned)
        })
        .collect();
    assert_eq!(left, ["s-a1", "s-b2"]);
    // A project, by its dimension name; a value of another dimension is not matched ("alice" is no project).
    let none = journal::erase(dir.path(), &Erasure::new().dimension("project", "alice")).unwrap();
    assert_eq!(none.lines(), 0);
    let all = journal::erase(dir.path(), &Erasure::new().dimension("project", "site")).unwrap();
    assert_eq!((all.calls, all.tasks, all.tools), (2, 2, 2));
    // A task by its own name too.
    let dir = tempfile::tempdir().unwrap();
    two_days(dir.path());
    let tasks = journal::erase(dir.path(), &Erasure::new().dimension("task", "answer")).unwrap();
    assert_eq!((tasks.calls, tasks.tasks, tasks.tools), (4, 4, 4), "calls and tools inside it, and the task lines");
}

#[test]
fn a_meter_writing_meanwhile_loses_nothing() {
    const ROUNDS: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap());
    let m = meter(dir.path(), &clock);
    // Alice and bob take turns while alice is erased over and over: each erasure rewrites the file the writer is
    // appending to, so bob's lines written meanwhile must land in the new file.
    let (erased, rewrites) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for i in 0..ROUNDS {
                work(&m, "alice", "s-a", 1_000);
                work(&m, "bob", "s-b", 1_000);
                if i % 10 == 0 {
                    m.flush().unwrap();
                }
            }
            m.flush().unwrap();
        });
        let (mut erased, mut rewrites) = (0, 0);
        while !writer.is_finished() {
            let report = journal::erase(dir.path(), &Erasure::new().user("alice")).unwrap();
            erased += report.calls;
            rewrites += report.files_rewritten;
        }
        writer.join().unwrap();
        (erased, rewrites)
    });
    let last = journal::erase(dir.path(), &Erasure::new().user("alice")).unwrap();
    assert!(rewrites >= 2, "the erasures overlapped the writes ({rewrites} rewrites)");
    assert_eq!(erased + last.calls, ROUNDS, "each of alice's calls erased once");
    let stats = m.journal_stats().unwrap();
    assert_eq!((stats.written, stats.dropped, stats.failed_records), (ROUNDS * 6, 0, 0));
    let mut bob = 0;
    let report = journal::read(dir.path(), |c| {
        assert_eq!(c.dimensions.user.as_deref(), Some("bob"));
        bob += 1;
    })
    .unwrap();
    assert_eq!((bob, report.skipped_lines), (ROUNDS, 0));
}

#[test]
fn a_file_locked_past_the_timeout_is_left_as_it_was_and_named() {
    let dir = tempfile::tempdir().unwrap();
    two_days(dir.path());
    let before = lines(dir.path());
    let held = std::fs::OpenOptions::new().read(true).write(true).open(&before[1].0).unwrap();
    held.lock().unwrap();
    let erasure = Erasure::new().user("alice").with_lock_timeout(std::time::Duration::from_millis(100));
    let report = journal::erase(dir.path(), &erasure).unwrap();
    // The other day's file is rewritten all the same, and the report says which failed and why.
    assert_eq!(report.files_rewritten, 1);
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].path, before[1].0);
    assert!(report.failed[0].error.contains("stayed locked by another process for 100ms"), "{report:?}");
    // The first day's file was rewritten before it; the locked one is as it was, and no temporary file is left.
    let after = lines(dir.path());
    assert!(!after[0].1.iter().any(|l| l.contains("alice")));
    assert_eq!(after[1], before[1]);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    held.unlock().unwrap();
    let rest = journal::erase(dir.path(), &erasure).unwrap();
    assert_eq!((rest.files_rewritten, rest.calls), (1, 1));
}

#[test]
fn unreadable_lines_naming_the_value_go_and_others_stay_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenmeter-2026-03-14.jsonl");
    let kept = [
        r#"{"v":1,"call":{"timestamp":"2026-03-14T09:00:00Z","duration_us":1,"model":"claude-haiku-4-5","tokens":{"input":5},"metered":true,"outcome":{"status":"ok"},"dimensions":{"user":"bob","project":"alice"}}}"#,
        r#"{"v":9,"later_kind":{"who":"bob"}}"#,
        "not json at all",
    ];
    let erased = [
        r#"{"v":1,"call":{"timestamp":"2026-03-14T09:00:00Z","duration_us":1,"model":"claude-haiku-4-5","tokens":{"input":5},"metered":true,"outcome":{"status":"ok"},"dimensions":{"user":"alice"}}}"#,
        r#"{"v":9,"later_kind":{"who":"alice"}}"#,
    ];
    let torn_of_alice = r#"{"v":1,"call":{"timestamp":"2026-03-14T09:00:00Z","dimensions":{"user":"alice""#;
    let text = format!("{}\n{}\n{}\n{}\n{}\n{torn_of_alice}", kept[0], erased[0], kept[1], erased[1], kept[2]);
    std::fs::write(&path, &text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let report = journal::erase(dir.path(), &Erasure::new().user("alice")).unwrap();
    // The project named "alice" is not the user; a later schema's line holding the value cannot be told apart.
    assert_eq!((report.calls, report.unreadable), (1, 2));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}\n{}\n{}\n", kept[0], kept[1], kept[2]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
    }

    // A torn last line of someone else stays, without a newline added.
    std::fs::write(&path, format!("{}\n{}\n{}", kept[0], erased[0], &erased[0][..40])).unwrap();
    journal::erase(dir.path(), &Erasure::new().user("alice")).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{}\n{}", kept[0], &erased[0][..40]));
}

#[test]
fn nothing_to_erase_and_no_directory_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for erasure in [Erasure::new(), Erasure::new().user(""), Erasure::new().dimension("", "x")] {
        let err = journal::erase(dir.path(), &erasure).unwrap_err();
        assert!(matches!(&err, JournalError::InvalidErasure(_)), "{err:?}");
    }
    let missing = dir.path().join("missing");
    let err = journal::erase(&missing, &Erasure::new().user("alice")).unwrap_err();
    assert!(
        matches!(&err, JournalError::Io { path, source } if path == &missing && source.kind() == std::io::ErrorKind::NotFound)
    );
}

#[test]
fn values_spelt_with_escapes_overlong_lines_and_field_names_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenmeter-2026-03-14.jsonl");
    let call = |user: &str| {
        format!(
            r#"{{"v":1,"call":{{"timestamp":"2026-03-14T09:00:00Z","duration_us":1,"tokens":{{"input":5}},"metered":true,"outcome":{{"status":"ok"}},"dimensions":{{"user":"{user}"}}}}}}"#
        )
    };
    // Another program's JSON may escape any character; tokenmeter reads it as alice.
    let escaped = call(r"\u0061lice");
    let bob_escaped = call(r"b\u006fb");
    // Damage over the 16 MiB line limit: one naming alice (as the journal writes a value), one not.
    let long = |user: &str| format!("{{\"v\":1,\"pad\":\"{}\",\"user\":\"{user}\"}}", "x".repeat(17 << 20));
    let text = [escaped, bob_escaped.clone(), long("alice"), long("bob"), call("bob")].join("\n") + "\n";
    std::fs::write(&path, &text).unwrap();
    let report = journal::erase(dir.path(), &Erasure::new().dimension("user.id", "alice")).unwrap();
    assert_eq!((report.calls, report.unreadable), (1, 1), "{report:?}");
    let kept = std::fs::read_to_string(&path).unwrap();
    assert_eq!(kept, [bob_escaped, long("bob"), call("bob")].join("\n") + "\n");
}

#[test]
fn a_killed_erasures_leftover_is_deleted_and_links_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    two_days(dir.path());
    // What an erasure killed half-way leaves: a copy of a day file's other lines, bob's among them.
    let day = lines(dir.path())[0].0.clone();
    let leftover = dir.path().join(".tokenmeter-2026-03-14.jsonl.erasing-2147483000");
    std::fs::copy(&day, &leftover).unwrap();
    let dry = journal::erase(dir.path(), &Erasure::new().user("bob").with_dry_run(true)).unwrap();
    assert_eq!(dry.leftovers_removed, 1);
    assert!(leftover.exists(), "a dry run deletes nothing");
    #[cfg(unix)]
    {
        // A backup made with `ln`, and a symbolic link named as a day file.
        std::fs::hard_link(&day, dir.path().join("backup.jsonl")).unwrap();
        std::os::unix::fs::symlink(&day, dir.path().join("tokenmeter-2026-03-16.jsonl")).unwrap();
    }
    let report = journal::erase(dir.path(), &Erasure::new().user("bob")).unwrap();
    assert_eq!(report.leftovers_removed, 1);
    assert!(!leftover.exists());
    #[cfg(unix)]
    {
        assert_eq!(report.linked_elsewhere, std::slice::from_ref(&day));
        assert_eq!(report.links_not_followed, [dir.path().join("tokenmeter-2026-03-16.jsonl")]);
        assert!(std::fs::read_to_string(dir.path().join("backup.jsonl")).unwrap().contains("\"bob\""));
    }
}
