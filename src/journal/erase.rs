//! Erasing the records that name a dimension value (a user, a session, a tenant) from a journal's day files.
//!
//! Each day file that names a value is rewritten without those lines: its other lines are copied byte for byte
//! into a new file beside it, which is synced and renamed over the old one while this process holds the old
//! one's lock. A meter writing to the directory meanwhile waits for that lock, finds the file replaced and
//! appends to the new one (as it does after a rotation), so nothing it writes is lost.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::files::{self, DayFile};
use super::writer::{lock_within, same_file, sync_dir};
use super::{JournalError, MAX_LINE_BYTES};
use crate::record::Dimensions;

/// What [`erase`] removes: every call, task and tool line whose dimensions name one of the values, and every
/// budget alert line of one of them (a budget of `user=alice`, or alice's own account in a budget of each user).
///
/// Values are matched exactly as the journal holds them: after the meter's
/// [`with_dimension_filter`](crate::TokenMeterBuilder::with_dimension_filter) and its cut at the dimension length
/// (a filter that hashes user ids wrote the hash, and the hash is what to erase).
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("tokenmeter-erase-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// use tokenmeter::journal::{self, Erasure};
///
/// let report = journal::erase(&dir, &Erasure::new().user("alice"))?;
/// println!("{} calls erased from {} day files", report.calls, report.files_rewritten);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Erasure {
    values: Vec<(String, String)>,
    lock_timeout: Duration,
    dry_run: bool,
    /// Gather the sessions of the lines erased ([`ErasureReport::sessions`]): a meter's own erasure forgets them
    /// too; the CLI's has no use for them.
    collect_sessions: bool,
}

impl Default for Erasure {
    fn default() -> Self {
        Erasure {
            values: Vec::new(),
            lock_timeout: super::DEFAULT_LOCK_TIMEOUT,
            dry_run: false,
            collect_sessions: false,
        }
    }
}

impl Erasure {
    /// Nothing to erase yet: add values with [`user`](Self::user), [`dimension`](Self::dimension), ….
    pub fn new() -> Self {
        Self::default()
    }

    /// Erase the records of this `user` (`user.id`).
    pub fn user(self, value: impl Into<String>) -> Self {
        self.dimension("user", value)
    }

    /// Erase the records of this `session` (`session.id`).
    pub fn session(self, value: impl Into<String>) -> Self {
        self.dimension("session", value)
    }

    /// Erase the records of this `tenant` (`tenant.id`).
    pub fn tenant(self, value: impl Into<String>) -> Self {
        self.dimension("tenant", value)
    }

    /// Erase the records whose dimension `name` (`session`, `user`, `tenant`, `project`, `agent`, `operation`,
    /// `task`, or one of the builder's own dimensions) holds `value`. Records of any of the values given are
    /// erased.
    /// The span field that fills a dimension names it too (`user.id` is `user`, `gen_ai.conversation.id` is
    /// `session`), as in a budget's scope.
    pub fn dimension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name: String = name.into();
        let name = match crate::capture::fields::dimension_name(&name) {
            crate::capture::fields::DimensionName::Builtin(d) => d.name().to_owned(),
            _ => name,
        };
        self.values.push((name, value.into()));
        self
    }

    /// How long to wait for a day file's lock, held by a writer for the moment of each append (default 5 s, the
    /// journal's own default).
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Count what would be erased, changing nothing.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// The `(dimension, value)` pairs to erase.
    pub fn values(&self) -> &[(String, String)] {
        &self.values
    }

    /// Whether this is a dry run ([`with_dry_run`](Self::with_dry_run)).
    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// The erasure a meter runs on its own journal: each value cut where the meter cuts what it captures (at
    /// `max_len` bytes, a character's boundary), and the sessions of the lines erased gathered.
    pub(crate) fn for_meter(&self, max_len: usize) -> Erasure {
        let values = self
            .values
            .iter()
            .map(|(name, value)| (name.clone(), crate::capture::capped(value, max_len).to_owned()))
            .collect();
        Erasure { values, collect_sessions: true, ..self.clone() }
    }

    /// [`JournalError::InvalidErasure`] for no values, or an empty name or value.
    pub(crate) fn check(&self) -> Result<(), JournalError> {
        if self.values.is_empty() {
            return Err(JournalError::InvalidErasure("no dimension value to erase".to_owned()));
        }
        if let Some((name, _)) = self.values.iter().find(|(name, value)| name.is_empty() || value.is_empty()) {
            let what = if name.is_empty() { "a dimension name is empty" } else { "a value to erase is empty" };
            return Err(JournalError::InvalidErasure(what.to_owned()));
        }
        Ok(())
    }
}

/// What [`erase`] did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ErasureReport {
    /// The journal's day files.
    pub files: u64,
    /// Day files rewritten without the erased lines (in a dry run: that would be).
    pub files_rewritten: u64,
    /// Call lines erased.
    pub calls: u64,
    /// Task lines erased.
    pub tasks: u64,
    /// Tool execution lines erased.
    pub tools: u64,
    /// Budget alert lines erased.
    pub alerts: u64,
    /// Lines that could not be read as records (a torn last line, a newer schema's line) and held one of the
    /// values (or its budget scope, `user=alice`) as a JSON string: erased too, since what they say cannot be
    /// told.
    pub unreadable: u64,
    /// Bytes of the rewritten files before and after.
    pub bytes_before: u64,
    /// See [`bytes_before`](Self::bytes_before).
    pub bytes_after: u64,
    /// Whether this was a dry run (nothing changed).
    pub dry_run: bool,
    /// Day files that could not be rewritten (locked past the timeout, not writable, …), each left as it was,
    /// with the error; the others were rewritten all the same. Erase again once the cause is gone.
    pub failed: Vec<FailedFile>,
    /// Symbolic links named as day files: not followed (the writer and replay never follow one either), so
    /// whatever they point to still holds its lines.
    #[serde(serialize_with = "crate::lossy_path::serialize_each")]
    pub links_not_followed: Vec<PathBuf>,
    /// Day files rewritten whose old copy has another hard link (a backup made with `ln`, say): that copy
    /// still holds the erased lines.
    #[serde(serialize_with = "crate::lossy_path::serialize_each")]
    pub linked_elsewhere: Vec<PathBuf>,
    /// Temporary files of an erasure that did not finish (killed), each a copy of a day file's other lines:
    /// deleted (in a dry run: found).
    pub leftovers_removed: u64,
    /// The sessions of the call, task and tool lines erased, for a meter's own erasure
    /// ([`TokenMeter::erase`](crate::TokenMeter::erase)), which forgets their figures too. Not in the report's JSON,
    /// nor in its `Debug` (a log line of the report would name them).
    #[serde(skip)]
    pub(crate) sessions: SessionIds,
}

/// Session ids, shown in `Debug` by their count alone.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct SessionIds(pub(crate) std::collections::BTreeSet<String>);

impl std::fmt::Debug for SessionIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} sessions", self.0.len())
    }
}

/// A day file [`erase`] could not rewrite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FailedFile {
    /// The day file.
    #[serde(serialize_with = "crate::lossy_path::serialize")]
    pub path: PathBuf,
    /// Why.
    pub error: String,
}

impl ErasureReport {
    /// Lines erased, of every kind.
    pub fn lines(&self) -> u64 {
        self.calls + self.tasks + self.tools + self.alerts + self.unreadable
    }
}

/// Erases from the journal in `dir` every line that names one of `erasure`'s values, rewriting only the day files that
/// hold one (see [`Erasure`] for what is matched). Other lines stay byte for byte as they were, the file's permissions
/// and owner too.
///
/// Safe beside a meter writing the directory (the day file's lock is held only to settle its length and for the end;
/// the writer then appends to the rewritten file), but a running meter keeps the erased values' figures in its memory
/// (ledger, budgets) until it restarts: in the process that runs it, erase through the meter instead
/// ([`TokenMeter::erase`](crate::TokenMeter::erase): its journal and its memory), or stop it first. A day file that
/// cannot be rewritten is listed in [`ErasureReport::failed`], left as it was, and the others are rewritten all the
/// same.
///
/// # Errors
///
/// [`JournalError::InvalidErasure`] for no values, or an empty name or value; [`JournalError::Io`] when the
/// directory cannot be listed (it does not exist, say).
pub fn erase(dir: impl AsRef<Path>, erasure: &Erasure) -> Result<ErasureReport, JournalError> {
    let dir = dir.as_ref();
    erasure.check()?;
    let matcher = Matcher::new(&erasure.values, erasure.collect_sessions);
    let (day_files, links) =
        files::list_all(dir).map_err(|source| JournalError::Io { path: dir.to_path_buf(), source })?;
    let mut report = ErasureReport {
        files: day_files.len() as u64,
        dry_run: erasure.dry_run,
        links_not_followed: links.into_iter().map(|(_, path)| path).collect(),
        leftovers_removed: leftovers(dir, erasure.dry_run),
        ..Default::default()
    };
    for day_file in &day_files {
        match erase_file(dir, day_file, &matcher, erasure) {
            Ok(None) => {}
            Ok(Some(mut tally)) => {
                if tally.lines() == 0 {
                    continue;
                }
                report.files_rewritten += 1;
                report.calls += tally.calls;
                report.tasks += tally.tasks;
                report.tools += tally.tools;
                report.alerts += tally.alerts;
                report.unreadable += tally.unreadable;
                report.sessions.0.append(&mut tally.sessions);
                report.bytes_before += tally.bytes_before;
                report.bytes_after += tally.bytes_after;
                if tally.linked_elsewhere {
                    report.linked_elsewhere.push(day_file.path.clone());
                }
            }
            Err(e) => report.failed.push(FailedFile { path: day_file.path.clone(), error: e.to_string() }),
        }
    }
    Ok(report)
}

/// One day file: counted (a dry run) or rewritten, `None` when it names none of the values or is gone.
fn erase_file(
    dir: &Path,
    day_file: &DayFile,
    matcher: &Matcher<'_>,
    erasure: &Erasure,
) -> std::io::Result<Option<Tally>> {
    // Most files name none of the values: a search of the bytes tells, without reading a line.
    if !matcher.file_may_match(&day_file.path)? {
        return Ok(None);
    }
    if erasure.dry_run {
        return count(&day_file.path, matcher);
    }
    // Another erasure (another process) may replace the file while this one reads it: read the new one.
    let mut attempts = 0;
    loop {
        match rewrite(dir, day_file, matcher, erasure.lock_timeout) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted && attempts < 3 => attempts += 1,
            result => return result,
        }
    }
}

/// The temporary files of erasures whose process is gone (`.tokenmeter-….jsonl.erasing-PID`), deleted unless
/// `dry_run`; how many. One of a live process (another erasure now) is left to it.
fn leftovers(dir: &Path, dry_run: bool) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut found = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(pid) = temp_pid(name) else { continue };
        if process_alive(pid) {
            continue;
        }
        if dry_run || std::fs::remove_file(entry.path()).is_ok() {
            found += 1;
        }
    }
    found
}

/// What comes before the process id in a temporary file's name (`.tokenmeter-2026-03-14.jsonl.erasing-4242`).
const ERASING: &str = ".erasing-";

/// The name of the temporary file beside the day file named `day_name`, of process `pid`.
fn temp_name(day_name: &str, pid: u32) -> String {
    format!(".{day_name}{ERASING}{pid}")
}

/// The process id in a temporary file's name ([`temp_name`]), if it is one.
fn temp_pid(name: &str) -> Option<u32> {
    let (day_name, pid) = name.strip_prefix('.')?.rsplit_once(ERASING)?;
    files::day_of(day_name)?;
    pid.parse().ok()
}

/// Whether a process of this id is running (this one is).
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
        // Signal 0 checks only: `ESRCH` says no such process; `EPERM` that it exists (another user's).
        // SAFETY: `kill` with signal 0 sends nothing.
        let sent = unsafe { libc::kill(pid, 0) };
        sent == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    true
}

/// The values as the lines hold them.
struct Matcher<'a> {
    values: &'a [(String, String)],
    /// Tell the session of each line erased ([`Erasure::collect_sessions`]).
    sessions: bool,
    /// Each value and each scope as a JSON string (`"alice"`, `"user=alice"`), as the journal writes them.
    needles: Vec<memchr::memmem::Finder<'static>>,
    /// Each value's budget scope (`user=alice`).
    scopes: Vec<String>,
}

/// What a line is to an erasure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Keep,
    Call,
    Task,
    Tool,
    Alert,
    Unreadable,
}

/// The parts of a line an erasure reads.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    call: Option<Dimensioned>,
    #[serde(default)]
    task: Option<Dimensioned>,
    #[serde(default)]
    tool: Option<Dimensioned>,
    #[serde(default)]
    budget_alert: Option<Scoped>,
}

#[derive(Deserialize)]
struct Dimensioned {
    #[serde(default)]
    dimensions: Dimensions,
    /// A task line's own name (a call or tool line has no such field; read loosely all the same, so that a line
    /// is never misread as damage for it).
    #[serde(default)]
    task: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Scoped {
    #[serde(default)]
    scope: Option<String>,
}

impl<'a> Matcher<'a> {
    fn new(values: &'a [(String, String)], sessions: bool) -> Self {
        let scopes: Vec<String> = values.iter().map(|(name, value)| format!("{name}={value}")).collect();
        // A record names a value as a JSON string of its own; an alert line names its scope.
        let needles = values
            .iter()
            .map(|(_, value)| value)
            .chain(&scopes)
            .map(|text| {
                let quoted = serde_json::to_string(text).unwrap_or_default();
                memchr::memmem::Finder::new(quoted.as_bytes()).into_owned()
            })
            .collect();
        Matcher { values, sessions, needles, scopes }
    }

    fn holds_a_value(&self, bytes: &[u8]) -> bool {
        self.needles.iter().any(|n| n.find(bytes).is_some())
    }

    /// Whether `bytes` may name a value: it holds one as the journal writes it, or a `\u` escape, which could
    /// spell one otherwise (`"\u0061lice"`, as another program may write the same string).
    fn may_name_a_value(&self, bytes: &[u8]) -> bool {
        self.holds_a_value(bytes) || memchr::memmem::find(bytes, b"\\u").is_some()
    }

    /// Whether the file may name a value anywhere (read in pieces that overlap by a needle's length, so that one
    /// across two pieces is found).
    fn file_may_match(&self, path: &Path) -> std::io::Result<bool> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            // Deleted meanwhile (retention): nothing left to erase.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let mut found = false;
        self.scan(&mut file, &mut found)?;
        Ok(found)
    }

    /// The bytes a piece of a file keeps from the one before, so that a value across the two is found.
    fn overlap(&self) -> usize {
        self.needles.iter().map(|n| n.needle().len()).max().unwrap_or(0).max(2) - 1
    }

    /// Reads `reader` to its end, setting `found` when the bytes may name a value (see
    /// [`may_name_a_value`](Self::may_name_a_value)).
    fn scan(&self, reader: &mut impl Read, found: &mut bool) -> std::io::Result<()> {
        let overlap = self.overlap();
        let mut buf = vec![0u8; (1 << 16) + overlap];
        let mut kept = 0;
        loop {
            let n = reader.read(&mut buf[kept..])?;
            if n == 0 {
                return Ok(());
            }
            let filled = kept + n;
            *found |= self.may_name_a_value(&buf[..filled]);
            kept = overlap.min(filled);
            buf.copy_within(filled - kept..filled, 0);
        }
    }

    /// What `line` is to the erasure, and the session of a call, task or tool line it erases.
    fn verdict(&self, line: &[u8]) -> (Verdict, Option<String>) {
        let named = self.holds_a_value(line);
        if !named && memchr::memmem::find(line, b"\\u").is_none() {
            return (Verdict::Keep, None);
        }
        let Ok(probe) = serde_json::from_slice::<Probe>(line) else {
            return (if named { Verdict::Unreadable } else { Verdict::Keep }, None);
        };
        let names = |d: &Dimensioned, task_name: bool| {
            self.values.iter().any(|(name, value)| {
                d.dimensions.get(name) == Some(value.as_str())
                    || (task_name && name == "task" && d.task.as_ref().and_then(|t| t.as_str()) == Some(value.as_str()))
            })
        };
        let session = |d: Dimensioned| d.dimensions.session.filter(|_| self.sessions).map(|s| s.to_string());
        match probe {
            Probe { call: Some(d), .. } if names(&d, false) => (Verdict::Call, session(d)),
            Probe { task: Some(d), .. } if names(&d, true) => (Verdict::Task, session(d)),
            Probe { tool: Some(d), .. } if names(&d, false) => (Verdict::Tool, session(d)),
            Probe { budget_alert: Some(Scoped { scope: Some(scope) }), .. } if self.scopes.contains(&scope) => {
                (Verdict::Alert, None)
            }
            Probe { call: None, task: None, tool: None, budget_alert: None } if named => (Verdict::Unreadable, None),
            _ => (Verdict::Keep, None),
        }
    }
}

/// One file's erased lines.
#[derive(Debug, Default)]
struct Tally {
    calls: u64,
    tasks: u64,
    tools: u64,
    alerts: u64,
    unreadable: u64,
    bytes_before: u64,
    bytes_after: u64,
    /// The file replaced had another hard link.
    linked_elsewhere: bool,
    /// The sessions of the call, task and tool lines erased.
    sessions: std::collections::BTreeSet<String>,
}

impl Tally {
    fn lines(&self) -> u64 {
        self.calls + self.tasks + self.tools + self.alerts + self.unreadable
    }

    fn add(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Keep => {}
            Verdict::Call => self.calls += 1,
            Verdict::Task => self.tasks += 1,
            Verdict::Tool => self.tools += 1,
            Verdict::Alert => self.alerts += 1,
            Verdict::Unreadable => self.unreadable += 1,
        }
    }
}

/// Reads the lines of `file` from byte `from`, up to byte `limit` when given, handing each kept one to `keep`,
/// and returns where the lines read end. With a `limit` it stops before a last line without its newline (a
/// writer may be appending it): that is left to the read that holds the lock. Without one, a last line without
/// a newline (a torn line a dead writer left) is judged as any other. A line longer than [`MAX_LINE_BYTES`]
/// (damage: no record comes near it) is not held whole: it is searched for the values first, then erased as
/// unreadable when it may name one, else copied as it is.
fn filter_lines(
    file: &File,
    from: u64,
    limit: Option<u64>,
    matcher: &Matcher<'_>,
    tally: &mut Tally,
    mut keep: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 16, file);
    reader.seek(SeekFrom::Start(from))?;
    let mut at = from;
    let mut line = Vec::new();
    loop {
        let room = limit.map_or(u64::MAX, |l| l.saturating_sub(at));
        line.clear();
        let n = (&mut reader).take(MAX_LINE_BYTES.min(room)).read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(at);
        }
        let whole = line.last() == Some(&b'\n');
        if !whole && (n as u64) < MAX_LINE_BYTES {
            if limit.is_some() {
                return Ok(at);
            }
        } else if !whole {
            // An overlong line: searched to its end for the values as the journal writes them first (it cannot
            // be read as JSON), then erased or copied.
            let overlap = matcher.overlap();
            let mut found = matcher.holds_a_value(&line);
            let mut tail = line[line.len().saturating_sub(overlap)..].to_vec();
            let (mut len, mut ended) = (n as u64, false);
            while !ended && len < room {
                let chunk = reader.fill_buf()?;
                if chunk.is_empty() {
                    break;
                }
                let chunk = &chunk[..chunk.len().min(usize::try_from(room - len).unwrap_or(usize::MAX))];
                let end = memchr::memchr(b'\n', chunk).map_or(chunk.len(), |i| i + 1);
                tail.extend_from_slice(&chunk[..end]);
                found |= matcher.holds_a_value(&tail);
                tail.drain(..tail.len().saturating_sub(overlap));
                ended = chunk[end - 1] == b'\n';
                len += end as u64;
                reader.consume(end);
            }
            if !ended && limit.is_some() {
                return Ok(at);
            }
            tally.bytes_before += len;
            if found {
                tally.add(Verdict::Unreadable);
            } else {
                reader.seek(SeekFrom::Start(at))?;
                let mut copy = (&mut reader).take(len);
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let k = copy.read(&mut buf)?;
                    if k == 0 {
                        break;
                    }
                    keep(&buf[..k])?;
                }
                tally.bytes_after += len;
            }
            at += len;
            continue;
        }
        at += n as u64;
        tally.bytes_before += n as u64;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let (verdict, session) = matcher.verdict(text);
        tally.add(verdict);
        tally.sessions.extend(session);
        if verdict == Verdict::Keep {
            keep(&line)?;
            tally.bytes_after += n as u64;
        }
    }
}

/// A dry run's count for one file (`None`: deleted meanwhile).
fn count(path: &Path, matcher: &Matcher<'_>) -> std::io::Result<Option<Tally>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut tally = Tally::default();
    filter_lines(&file, 0, None, matcher, &mut tally, |_| Ok(()))?;
    Ok(Some(tally))
}

/// Runs `f` holding `file`'s exclusive lock (taken within `timeout`), once `file` is known to be the one at
/// `path` still (`None` when nothing is there any more: retention deletes a file only under its lock).
fn locked<T>(
    file: &File,
    path: &Path,
    timeout: Duration,
    f: impl FnOnce(&std::fs::Metadata) -> std::io::Result<Option<T>>,
) -> std::io::Result<Option<T>> {
    lock_within(file, timeout)?;
    let result = (|| {
        let meta = file.metadata()?;
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Ok(at_path) if same_file(&meta, &at_path) => f(&meta),
            // Replaced meanwhile (by another erasure): that file is not the one read; the caller reads the new one.
            Ok(_) => Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "the day file was replaced while it was being read (by another erasure?); erase again",
            )),
            Err(e) => Err(e),
        }
    })();
    let _ = file.unlock();
    result
}

/// Rewrites one day file without the matched lines (`None`: deleted meanwhile). The file's lock is held only
/// for a moment at the start (to know where the whole lines end) and for the end: what was appended meanwhile,
/// and the rename. A writer waits for that lock at most its `lock_timeout` (5 s by default) before it counts
/// its records as failed, so the bulk of a large file is read and written without it.
fn rewrite(dir: &Path, day_file: &DayFile, matcher: &Matcher<'_>, timeout: Duration) -> std::io::Result<Option<Tally>> {
    let path = &day_file.path;
    let mut options = OpenOptions::new();
    // Read and write: an exclusive lock needs write access on NFS and Windows.
    options.read(true).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // Under the lock no writer is half-way through a batch: the bytes up to this length stay as they are (a
    // writer whose append fails cuts the file back to where its own batch began, never before).
    let Some(meta) = locked(&file, path, timeout, |meta| Ok(Some(meta.clone())))? else { return Ok(None) };
    let settled = meta.len();
    let mut temp = TempFile::create(dir, path, &meta)?;
    let mut tally = Tally::default();
    let mut out = BufWriter::with_capacity(1 << 16, temp.file.try_clone()?);
    let read = filter_lines(&file, 0, Some(settled), matcher, &mut tally, |line| out.write_all(line))?;
    out.flush()?;
    // Most of the bytes go to the disk now, so that the sync under the lock has little left to write.
    temp.file.sync_data()?;
    let rest = locked(&file, path, timeout, |meta| {
        if meta.len() < read {
            return Err(std::io::Error::other("the day file was cut short while it was being read; erase again"));
        }
        filter_lines(&file, read, None, matcher, &mut tally, |line| out.write_all(line))?;
        out.flush()?;
        if tally.lines() == 0 {
            // Named only outside the dimensions (a model or request id that equals the value): left as it was.
            return Ok(Some(()));
        }
        temp.file.sync_all()?;
        tally.linked_elsewhere = link_count(meta) > 1;
        temp.replace(path)?;
        sync_dir(dir)?;
        Ok(Some(()))
    })?;
    Ok(rest.map(|()| tally))
}

/// How many names the file has (1 where the platform does not say).
fn link_count(meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    return std::os::unix::fs::MetadataExt::nlink(meta);
    #[cfg(not(unix))]
    {
        let _ = meta;
        1
    }
}

/// The new file beside a day file, deleted unless it replaced it.
struct TempFile {
    path: PathBuf,
    file: File,
    replaced: bool,
}

impl TempFile {
    /// A new file beside `day` (a name replay never reads), with its permissions and (where this process may
    /// give it) its owner.
    fn create(dir: &Path, day: &Path, meta: &std::fs::Metadata) -> std::io::Result<Self> {
        let name = day.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let path = dir.join(temp_name(&name, std::process::id()));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            options.mode(meta.permissions().mode() & 0o777).custom_flags(libc::O_NOFOLLOW);
        }
        let file = match options.open(&path) {
            Ok(file) => file,
            // Left by an erasure that died: its lines are all in the day file still.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::remove_file(&path)?;
                options.open(&path)?
            }
            Err(e) => return Err(e),
        };
        let temp = TempFile { path, file, replaced: false };
        #[cfg(unix)]
        {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            // The mode again (the umask took from it), and the owner: a journal erased by root must stay writable
            // by the service that writes it.
            temp.file.set_permissions(std::fs::Permissions::from_mode(meta.permissions().mode() & 0o777))?;
            let now = temp.file.metadata()?;
            if (now.uid(), now.gid()) != (meta.uid(), meta.gid()) {
                std::os::unix::fs::fchown(&temp.file, Some(meta.uid()), Some(meta.gid())).map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!(
                            "cannot give the rewritten file the day file's owner and group (uid {}, gid {}): {e}; run \
                             as root, or as that user in that group",
                            meta.uid(),
                            meta.gid()
                        ),
                    )
                })?;
            }
        }
        #[cfg(not(unix))]
        let _ = meta;
        Ok(temp)
    }

    fn replace(&mut self, day: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, day)?;
        self.replaced = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.replaced {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_file_replaced_after_it_was_opened_is_told_apart_as_interrupted() {
        // Another erasure renamed its rewrite over the file this one had opened: `locked` says so as `Interrupted`,
        // which `erase_file` retries on (the retry itself needs a replacement between the two locks, which this
        // test cannot time). It used to be an error that failed the file with "erase again".
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenmeter-2026-03-14.jsonl");
        std::fs::write(&path, "{}\n").unwrap();
        let opened = File::open(&path).unwrap();
        let other = dir.path().join("other");
        std::fs::write(&other, "{}\n").unwrap();
        std::fs::rename(&other, &path).unwrap();
        let err = locked(&opened, &path, Duration::from_secs(1), |_| Ok(Some(()))).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::Interrupted);
        let same = File::open(&path).unwrap();
        assert_eq!(locked(&same, &path, Duration::from_secs(1), |_| Ok(Some(7))).unwrap(), Some(7));
    }
}
