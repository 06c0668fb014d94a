//! Crash safety against process death: a process killed with SIGKILL while journaling loses nothing its fsync
//! policy acknowledged and leaves a journal that replays; several processes appending to one directory do not
//! corrupt it. The kernel keeps a killed process's writes (its page cache survives), so this does not test the
//! syncs themselves against a power loss: that would take a file system that drops unsynced data.
//!
//! The writer processes are this test binary run again with `JOURNAL_CHILD_DIR` set, running the ignored
//! `journal_child_writer` (ignored: not a test of its own, so it is never counted as one that passed).

use crate::common;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use parking_lot::Mutex;
use tokenmeter::journal::{FsyncPolicy, JournalConfig, SkipReason};
use tokenmeter::{CallRecord, ManualClock, RecordSink, TokenMeter};
use tracing::info_span;
use tracing_subscriber::prelude::*;

const CHILD_DIR: &str = "JOURNAL_CHILD_DIR";
const CHILD_PREFIX: &str = "JOURNAL_CHILD_PREFIX";
const CHILD_COUNT: &str = "JOURNAL_CHILD_COUNT";

/// The writers' clock, and the reader's (retention judges files by the clock's date).
fn start() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap()
}

/// The writer process: records calls whose request ids are `<prefix>-<n>` with every-record fsync, and prints
/// `acked <synced> dropped <dropped>` each time the journal acknowledges more records. Does nothing unless
/// started by the tests below.
#[test]
#[ignore = "a child process of the tests below, not a test"]
fn journal_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let prefix = std::env::var(CHILD_PREFIX).unwrap();
    let count: u64 = std::env::var(CHILD_COUNT).ok().and_then(|c| c.parse().ok()).unwrap_or(u64::MAX);
    let clock = ManualClock::new(start());
    let meter = TokenMeter::builder()
        .with_clock(clock)
        .with_journal(JournalConfig::new(&dir).with_fsync(FsyncPolicy::EveryRecord).with_replay(false))
        .try_build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut acked = 0;
    for n in 0..count {
        let id = format!("{prefix}-{n}");
        let span = info_span!(
            "chat",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.response.id = id.as_str(),
            input_tokens = 1_000u64 + n,
            output_tokens = 100u64,
        );
        drop(span);
        // Keep the queue short, so no record is dropped and "acked N" means "records 0..N are on disk".
        loop {
            let stats = meter.journal_stats().unwrap();
            if stats.synced != acked {
                acked = stats.synced;
                println!("acked {} dropped {}", stats.synced, stats.dropped);
            }
            if stats.enqueued - stats.synced < 64 {
                break;
            }
            std::thread::yield_now();
        }
    }
    meter.flush().unwrap();
    let stats = meter.journal_stats().unwrap();
    println!("acked {} dropped {}", stats.synced, stats.dropped);
}

fn spawn_writer(dir: &Path, prefix: &str, count: Option<u64>) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        &common::test_path(module_path!(), "journal_child_writer"),
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_DIR, dir)
    .env(CHILD_PREFIX, prefix)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if let Some(count) = count {
        cmd.env(CHILD_COUNT, count.to_string());
    }
    cmd.spawn().unwrap()
}

/// Request ids of every record a fresh meter replays from `dir`, and its replay report.
fn replay(dir: &Path) -> (Vec<String>, tokenmeter::journal::ReplayReport) {
    #[derive(Clone, Default)]
    struct Ids(Arc<Mutex<Vec<String>>>);
    impl RecordSink for Ids {
        fn on_call(&self, _: &CallRecord) {}
        fn on_replayed_call(&self, record: &CallRecord) {
            self.0.lock().push(record.request_id.as_deref().unwrap_or("").to_owned());
        }
    }
    let ids = Ids::default();
    let meter = TokenMeter::builder()
        .with_clock(ManualClock::new(start()))
        .with_sink(ids.clone())
        .with_journal(JournalConfig::new(dir))
        .try_build()
        .unwrap();
    let report = meter.journal_stats().unwrap().replay;
    let ids = ids.0.lock().clone();
    (ids, report)
}

#[test]
fn sigkill_loses_nothing_acknowledged_and_the_journal_replays() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_writer(dir.path(), "k", None);
    // Read until the kill is seen: a pipe closed earlier could end the child first (its next `println!` panics).
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut acked = 0u64;
    for line in stdout.by_ref() {
        let line = line.unwrap();
        let Some(rest) = line.strip_prefix("acked ") else { continue };
        let (n, dropped) = rest.split_once(" dropped ").unwrap();
        assert_eq!(dropped, "0", "the child dropped records: acked counts would not be a prefix");
        acked = n.parse().unwrap();
        if acked >= 300 || Instant::now() > deadline {
            break;
        }
    }
    // Mid-stream: the writer is appending and syncing as fast as it can.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    drop(stdout);
    assert!(!status.success(), "the child was killed, not finished");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL, not ended otherwise: {status}");
    }
    assert!(acked >= 300, "the child acknowledged only {acked} records in 60 s");

    let (ids, report) = replay(dir.path());
    let present: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let lost: Vec<u64> = (0..acked).filter(|n| !present.contains(format!("k-{n}").as_str())).collect();
    assert!(lost.is_empty(), "acknowledged records lost: {lost:?}");
    assert!(report.records >= acked);
    assert!(report.skipped_lines <= 1, "{report:?}");
    assert!(report.skipped.iter().all(|s| s.reason == SkipReason::TornTail), "{report:?}");
    // Records are appended in order: what survived is a prefix of what was recorded.
    let expected: Vec<String> = (0..ids.len()).map(|n| format!("k-{n}")).collect();
    assert_eq!(ids, expected);
}

#[test]
fn processes_sharing_a_directory_do_not_corrupt_it() {
    let dir = tempfile::tempdir().unwrap();
    const EACH: u64 = 400;
    let children: Vec<Child> = ["a", "b", "c"].iter().map(|p| spawn_writer(dir.path(), p, Some(EACH))).collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let last =
            String::from_utf8(out.stdout).unwrap().lines().rev().find(|l| l.starts_with("acked ")).map(str::to_owned);
        assert_eq!(last.as_deref(), Some(format!("acked {EACH} dropped 0").as_str()));
    }

    let (ids, report) = replay(dir.path());
    assert_eq!((report.records, report.skipped_lines), (3 * EACH, 0), "{report:?}");
    for prefix in ["a", "b", "c"] {
        let mine: Vec<&String> = ids.iter().filter(|id| id.starts_with(&format!("{prefix}-"))).collect();
        let expected: Vec<String> = (0..EACH).map(|n| format!("{prefix}-{n}")).collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>(), "each process's records, complete and in order");
    }
}

const CHILD_FULL: &str = "JOURNAL_CHILD_FULL_DIR";
const CHILD_NO_FLUSH: &str = "JOURNAL_CHILD_NO_FLUSH";

/// The writer process of the full-disk test, started under a file size limit: records calls until the journal
/// reports failed records (flushing after each round of calls, or with `JOURNAL_CHILD_NO_FLUSH` set only waiting
/// for the writer to take them), flushes, and prints `written <written> failed <failed> flush <ok|error>`. Does
/// nothing unless started by the tests below.
#[test]
#[ignore = "a child process of the tests below, not a test"]
fn journal_child_full_disk() {
    let Ok(dir) = std::env::var(CHILD_FULL) else { return };
    let meter = TokenMeter::builder()
        .with_clock(ManualClock::new(start()))
        .with_journal(JournalConfig::new(&dir).with_fsync(FsyncPolicy::Never).with_replay(false))
        .try_build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    let _guard = tracing::subscriber::set_default(subscriber);
    for round in 0..50u64 {
        for n in 0..20u64 {
            let id = format!("full-{round}-{n}-{}", "x".repeat(200));
            drop(info_span!(
                "chat",
                gen_ai.request.model = "claude-sonnet-4-5",
                gen_ai.response.id = id.as_str(),
                input_tokens = 1_000u64,
                output_tokens = 100u64,
            ));
        }
        if std::env::var_os(CHILD_NO_FLUSH).is_some() {
            // Let the writer take this round's records without a flush waiting for them.
            let deadline = Instant::now() + Duration::from_secs(10);
            while {
                let stats = meter.journal_stats().unwrap();
                stats.written + stats.failed_records < stats.enqueued
            } {
                assert!(Instant::now() < deadline, "the writer did not take the records");
                std::thread::sleep(Duration::from_millis(2));
            }
        } else {
            let _ = meter.flush();
        }
        if meter.journal_stats().unwrap().failed_records > 0 {
            break;
        }
    }
    let flushed = if meter.flush().is_ok() { "ok" } else { "error" };
    let stats = meter.journal_stats().unwrap();
    println!("written {} failed {} flush {flushed}", stats.written, stats.failed_records);
}

/// A batch that fills the disk part way (here a file size limit: `ulimit -f`, with SIGXFSZ ignored so that the
/// write fails with EFBIG) leaves none of its lines in the file: what replays is exactly what was written.
#[cfg(unix)]
#[test]
fn a_batch_that_fills_the_disk_leaves_none_of_its_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (written, failed, flushed) = run_full_disk_child(dir.path(), false);
    assert!(failed > 0, "the limit was never reached");
    assert!(flushed, "nothing failed after the last flush");

    let (ids, report) = replay(dir.path());
    assert_eq!(report.skipped_lines, 0, "{report:?}");
    assert_eq!(ids.len() as u64, written, "replayed records are the written ones, not part of a failed batch");
}

/// A write that fails in a round no flush waits for (the application flushes only at shutdown) still fails the
/// next flush: the records it lost were recorded before that flush.
#[cfg(unix)]
#[test]
fn a_flush_after_a_failed_write_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, failed, flushed) = run_full_disk_child(dir.path(), true);
    assert!(failed > 0, "the limit was never reached");
    assert!(!flushed, "flush() returned Ok after {failed} records were lost");
}

/// Runs `journal_child_full_disk` under a file size limit; returns its written and failed counts, and whether
/// its last flush succeeded.
#[cfg(unix)]
fn run_full_disk_child(dir: &Path, no_flush: bool) -> (u64, u64, bool) {
    let exe = std::env::current_exe().unwrap();
    // 64 blocks of 512 bytes: a few batches of 20 lines of ~600 bytes fit, then one is cut mid-line.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("trap '' XFSZ; ulimit -f 64 && exec \"$0\" \"$1\" --exact --ignored --nocapture --test-threads=1")
        .arg(&exe)
        .arg(common::test_path(module_path!(), "journal_child_full_disk"))
        .env(CHILD_FULL, dir)
        .stderr(Stdio::null());
    if no_flush {
        cmd.env(CHILD_NO_FLUSH, "1");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    // The harness prints `test journal_child_full_disk ... ` on the same line.
    let line = stdout.lines().find_map(|l| l.split_once("written ").map(|(_, rest)| rest)).expect("the child's stats");
    let (written, rest) = line.split_once(" failed ").unwrap();
    let (failed, flush) = rest.split_once(" flush ").unwrap();
    (written.parse().unwrap(), failed.parse().unwrap(), flush == "ok")
}
