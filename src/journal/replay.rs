//! Reading the journal back.

use std::fs::{File, TryLockError};
use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::MAX_LINE_BYTES as MAX_LINE;
use super::files;
use super::{ReplayReport, SCHEMA_VERSION, SkipReason, SkippedLine};
use crate::budget::AlertMark;
use crate::record::{CallRecord, TaskRecord, ToolRecord};

/// How long replay waits for a writer's lock on a file.
const LOCK_PATIENCE: Duration = Duration::from_secs(2);
const LOCK_RETRY: Duration = Duration::from_millis(5);

#[derive(Deserialize)]
struct Line {
    // Wider than any version written, so that any integer is read as a version (not as damage).
    v: u64,
    #[serde(default)]
    call: Option<CallRecord>,
    #[serde(default)]
    task: Option<TaskRecord>,
    #[serde(default)]
    tool: Option<ToolRecord>,
    #[serde(default)]
    budget_alert: Option<AlertMark>,
}

/// One journal line read back.
// Each is built once and moved into the caller's closure: boxing the record would add an allocation per line.
#[allow(clippy::large_enum_variant)]
pub(super) enum Replayed {
    Call(CallRecord),
    Task(TaskRecord),
    Tool(ToolRecord),
    /// A budget alert delivered by the process that wrote the journal.
    Alert(AlertMark),
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u64,
}

/// A line with a key none of the kinds this version reads uses (nor `v`). Not one with a record's own fields at
/// the top of the line (`timestamp` and `tokens`: a bare record given a `v`): that is damage, and its call was
/// left out unsaid. A later kind with a `timestamp` of its own is still a kind.
fn other_kind(text: &[u8]) -> bool {
    const KNOWN: [&str; 5] = ["v", "call", "task", "tool", "budget_alert"];
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(text).is_ok_and(|m| {
        !(m.contains_key("timestamp") && m.contains_key("tokens")) && m.keys().any(|k| !KNOWN.contains(&k.as_str()))
    })
}

const VERSION_ZERO: &str = "schema version 0 (versions start at 1)";

/// A version number as [`SkipReason::UnsupportedVersion`] holds it.
fn version(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Reads every journal file in `dir`, oldest first, handing each record to `each`. Only listing the
/// directory can fail; unreadable files and lines are skipped and reported.
pub(super) fn replay(dir: &Path, each: impl FnMut(Replayed)) -> std::io::Result<ReplayReport> {
    replay_since(dir, None, each)
}

/// Records a decoding thread hands over at a time.
const BATCH: usize = 256;
/// Batches decoded ahead of the caller at most.
const BATCHES_AHEAD: usize = 8;

/// [`replay`], leaving out the files of UTC days before `since`.
///
/// The files are read and decoded on a thread of their own (`tokenmeter-replay`), in batches, while `each` runs
/// on the calling thread in the files' order: decoding a line costs more than what a meter does with the record
/// (`benches/replay.rs`), and on two cores the two overlap. Where a thread cannot be started, all of it runs on
/// the calling thread.
pub(super) fn replay_since(
    dir: &Path,
    since: Option<chrono::NaiveDate>,
    mut each: impl FnMut(Replayed),
) -> std::io::Result<ReplayReport> {
    let (listed, others) = files::list_all(dir)?;
    let files: Vec<PathBuf> = listed.into_iter().filter(|f| since.is_none_or(|d| f.day >= d)).map(|f| f.path).collect();
    let mut report = std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<Vec<Replayed>>(BATCHES_AHEAD);
        let files = &files;
        let decoder = std::thread::Builder::new().name("tokenmeter-replay".into()).spawn_scoped(scope, move || {
            let mut batch = Vec::with_capacity(BATCH);
            let report = decode_files(files, |record| {
                batch.push(record);
                if batch.len() < BATCH {
                    return ControlFlow::Continue(());
                }
                // The caller is gone (it panicked): stop reading.
                match tx.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(_) => ControlFlow::Break(()),
                }
            });
            let _ = tx.send(batch);
            report
        });
        match decoder {
            Ok(decoder) => {
                for record in rx.iter().flatten() {
                    each(record);
                }
                decoder.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }
            Err(_) => decode_files(files, |record| {
                each(record);
                ControlFlow::Continue(())
            }),
        }
    });
    // Links named as day files, not read: said, since a day file restored as a link to an archive counted nothing
    // without a word.
    for (_, path) in others.iter().filter(|(day, _)| since.is_none_or(|d| *day >= d)) {
        // A day file, not read: counted in both, as a file that fails to open is (the CLI says "1 of its 1 files
        // could not be read", not "of its 0").
        report.files += 1;
        report.unreadable_files += 1;
        let message = "a symbolic link, which replay does not follow: not read".into();
        skip(&mut report, path, 0, SkipReason::Unreadable { message });
    }
    Ok(report)
}

/// Reads `files` in order, handing each record to `each` until it says stop.
fn decode_files(files: &[PathBuf], mut each: impl FnMut(Replayed) -> ControlFlow<()>) -> ReplayReport {
    let mut report = ReplayReport::default();
    for path in files {
        report.files += 1;
        match replay_file(path, &mut report, &mut each) {
            Ok(ControlFlow::Continue(())) => {}
            Ok(ControlFlow::Break(())) => break,
            Err(e) => {
                report.unreadable_files += 1;
                skip(&mut report, path, 0, SkipReason::Unreadable { message: e.to_string() });
            }
        }
    }
    report
}

/// Windows' `ERROR_LOCK_VIOLATION`: there file locks are mandatory, and a read of a file whose writer holds its
/// lock for a batch fails with it (on Unix the locks are advisory, and reads go on).
const LOCK_VIOLATION: Option<i32> = if cfg!(windows) { Some(33) } else { None };

/// A file read that waits out a writer's lock ([`LOCK_VIOLATION`]): each read retries for up to
/// [`LOCK_PATIENCE`] (a batch holds the lock for milliseconds), then fails as before.
struct PatientReader<R> {
    inner: R,
    /// The OS error that means "locked, try again".
    retry_on: Option<i32>,
}

impl<R: Read> Read for PatientReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut deadline = None;
        loop {
            match self.inner.read(buf) {
                Err(e) if self.retry_on.is_some() && e.raw_os_error() == self.retry_on => {
                    let deadline = *deadline.get_or_insert_with(|| Instant::now() + LOCK_PATIENCE);
                    if Instant::now() >= deadline {
                        return Err(e);
                    }
                    std::thread::sleep(LOCK_RETRY);
                }
                result => return result,
            }
        }
    }
}

fn skip(report: &mut ReplayReport, path: &Path, line: u64, reason: SkipReason) {
    report.skipped_lines += 1;
    if report.skipped.len() < ReplayReport::MAX_REPORTED_SKIPS {
        report.skipped.push(SkippedLine { path: path.to_owned(), line, reason });
    }
}

fn replay_file(
    path: &Path,
    report: &mut ReplayReport,
    each: &mut impl FnMut(Replayed) -> ControlFlow<()>,
) -> std::io::Result<ControlFlow<()>> {
    let file = File::open(path)?;
    // Writers hold the exclusive lock for a whole batch, so the length seen under the shared lock ends at a
    // batch boundary: a line still being written by a live process is not mistaken for a torn one. A lock
    // held far longer than a batch takes (a stalled process) is not waited for.
    let deadline = Instant::now() + LOCK_PATIENCE;
    let len = loop {
        match file.try_lock_shared() {
            Ok(()) => {
                let len = file.metadata()?.len();
                let _ = file.unlock();
                break len;
            }
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => std::thread::sleep(LOCK_RETRY),
            Err(_) => break file.metadata()?.len(),
        }
    };
    let file = PatientReader { inner: file, retry_on: LOCK_VIOLATION };
    let mut reader = BufReader::with_capacity(1 << 16, file.take(len));
    let mut buf = Vec::with_capacity(1024);
    let mut line_no = 0u64;
    loop {
        buf.clear();
        if (&mut reader).take(MAX_LINE + 1).read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        if buf.len() as u64 > MAX_LINE && buf.last() != Some(&b'\n') {
            let reason = SkipReason::Corrupt { message: format!("a line longer than {} MiB", MAX_LINE >> 20) };
            skip(report, path, line_no, reason);
            buf.clear();
            reader.skip_until(b'\n')?;
            continue;
        }
        let complete = buf.last() == Some(&b'\n');
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Line>(text) {
            Ok(Line { v, .. }) if v > u64::from(SCHEMA_VERSION) => {
                skip(report, path, line_no, SkipReason::UnsupportedVersion { version: version(v) });
            }
            Ok(Line { v: 0, .. }) => {
                // Versions start at 1: a 0 is no line this or any tokenmeter wrote.
                skip(report, path, line_no, SkipReason::Corrupt { message: VERSION_ZERO.into() });
            }
            Ok(Line { call: Some(record), .. }) => {
                report.records += 1;
                if each(Replayed::Call(record)).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
            Ok(Line { task: Some(record), .. }) => {
                report.tasks += 1;
                if each(Replayed::Task(record)).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
            Ok(Line { tool: Some(record), .. }) => {
                report.tools += 1;
                if each(Replayed::Tool(record)).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
            Ok(Line { budget_alert: Some(mark), .. }) => {
                report.budget_alerts += 1;
                if each(Replayed::Alert(mark)).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
            // A kind a newer tokenmeter added at this version: left out, as unknown fields are. A line with
            // nothing besides the known keys (`{"v":1}`, `{"v":1,"call":null}`) is damage, not a new kind.
            Ok(Line { .. }) if other_kind(text) => report.other_lines += 1,
            Ok(Line { .. }) => {
                let message = "none of `call`, `task`, `tool`, `budget_alert` in the line".into();
                skip(report, path, line_no, SkipReason::Corrupt { message });
            }
            Err(e) => {
                let reason = match serde_json::from_slice::<VersionOnly>(text) {
                    Ok(VersionOnly { v }) if v > u64::from(SCHEMA_VERSION) => {
                        SkipReason::UnsupportedVersion { version: version(v) }
                    }
                    Ok(VersionOnly { v: 0 }) => SkipReason::Corrupt { message: VERSION_ZERO.into() },
                    _ if !complete => SkipReason::TornTail,
                    // Never the value itself: a field of the wrong type may hold text (serde quotes it).
                    _ => SkipReason::Corrupt { message: crate::redact::without_quoted_values(&e.to_string()) },
                };
                skip(report, path, line_no, reason);
            }
        }
    }
    Ok(ControlFlow::Continue(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails its first `locked` reads with `code`, then reads `data`.
    struct Locked {
        locked: usize,
        code: i32,
        data: std::io::Cursor<Vec<u8>>,
    }

    impl Read for Locked {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.locked > 0 {
                self.locked -= 1;
                return Err(std::io::Error::from_raw_os_error(self.code));
            }
            self.data.read(buf)
        }
    }

    #[test]
    fn a_read_waits_out_a_writers_mandatory_lock() {
        // On Windows a read of a day file while its writer holds the lock for a batch fails with
        // ERROR_LOCK_VIOLATION: the file was reported unreadable after some of its records had been handed out.
        let locked = Locked { locked: 3, code: 33, data: std::io::Cursor::new(b"one\ntwo\n".to_vec()) };
        let mut reader = BufReader::new(PatientReader { inner: locked, retry_on: Some(33) });
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, "one\ntwo\n");
        // Any other error fails the read at once, as does the lock error where locks are advisory (Unix).
        for (code, retry_on) in [(5, Some(33)), (33, None)] {
            let locked = Locked { locked: 1, code, data: std::io::Cursor::new(b"x\n".to_vec()) };
            let err = PatientReader { inner: locked, retry_on }.read(&mut [0; 8]).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(code));
        }
    }

    #[test]
    fn a_lock_held_past_the_patience_fails_the_read() {
        let locked = Locked { locked: usize::MAX, code: 33, data: std::io::Cursor::new(Vec::new()) };
        let started = Instant::now();
        let err = PatientReader { inner: locked, retry_on: Some(33) }.read(&mut [0; 8]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(33));
        assert!(started.elapsed() >= LOCK_PATIENCE, "gave up after {:?}", started.elapsed());
    }
}
