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
/// # Ok::<(), tokenmeter::JournalError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Erasure {
    values: Vec<(String, String)>,
    lock_timeout: Duration,
    dry_run: bool,
}

impl Default for Erasure {
    fn default() -> Self {
        Erasure { values: Vec::new(), lock_timeout: super::DEFAULT_LOCK_TIMEOUT, dry_run: false }
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
    pub fn dimension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.values.push((name.into(), value.into()));
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
}

impl ErasureReport {
    /// Lines erased, of every kind.
    pub fn lines(&self) -> u64 {
        self.calls + self.tasks + self.tools + self.alerts + self.unreadable
    }
}

/// Erases from the journal in `dir` every line that names one of `erasure`'s values, rewriting only the day
/// files that hold one (see [`Erasure`] for what is matched). Other lines stay byte for byte as they were, the
/// file's permissions and owner too.
///
/// Safe beside a meter writing the directory (it waits for this lock, then appends to the rewritten file), but
/// a running meter keeps the erased values' figures in its memory (ledger, budgets) until it restarts, and
/// journals their new calls: stop it first, or erase again after. Erasing with no values is an error; a
/// directory that does not exist is one too.
///
/// # Errors
///
/// [`JournalError::Io`] naming the directory or the day file that could not be listed, read, locked within the
/// timeout, or replaced. Files rewritten before the failure stay rewritten; the failing file is left as it was.
pub fn erase(dir: impl AsRef<Path>, erasure: &Erasure) -> Result<ErasureReport, JournalError> {
    let dir = dir.as_ref();
    let io = |path: &Path, source| JournalError::Io { path: path.to_path_buf(), source };
    if erasure.values.is_empty() {
        return Err(io(dir, std::io::Error::new(std::io::ErrorKind::InvalidInput, "no dimension value to erase")));
    }
    if let Some((name, _)) = erasure.values.iter().find(|(name, value)| name.is_empty() || value.is_empty()) {
        let what = if name.is_empty() { "a dimension name is empty" } else { "a value to erase is empty" };
        return Err(io(dir, std::io::Error::new(std::io::ErrorKind::InvalidInput, what)));
    }
    let matcher = Matcher::new(&erasure.values);
    let day_files = files::list(dir).map_err(|e| io(dir, e))?;
    let mut report = ErasureReport { files: day_files.len() as u64, dry_run: erasure.dry_run, ..Default::default() };
    for day_file in &day_files {
        // Most files name none of the values: a search of the bytes tells, without reading a line.
        if !matcher.file_may_match(&day_file.path).map_err(|e| io(&day_file.path, e))? {
            continue;
        }
        let outcome = if erasure.dry_run {
            count(&day_file.path, &matcher)
        } else {
            rewrite(dir, day_file, &matcher, erasure.lock_timeout)
        };
        let Some(tally) = outcome.map_err(|e| io(&day_file.path, e))? else { continue };
        if tally.lines() > 0 {
            report.files_rewritten += 1;
            report.calls += tally.calls;
            report.tasks += tally.tasks;
            report.tools += tally.tools;
            report.alerts += tally.alerts;
            report.unreadable += tally.unreadable;
            report.bytes_before += tally.bytes_before;
            report.bytes_after += tally.bytes_after;
        }
    }
    Ok(report)
}

/// The values as the lines hold them.
struct Matcher<'a> {
    values: &'a [(String, String)],
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
    fn new(values: &'a [(String, String)]) -> Self {
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
        Matcher { values, needles, scopes }
    }

    fn holds_a_value(&self, bytes: &[u8]) -> bool {
        self.needles.iter().any(|n| n.find(bytes).is_some())
    }

    /// Whether the file holds one of the values as a JSON string anywhere (read in pieces that overlap by a
    /// needle's length, so that one across two pieces is found).
    fn file_may_match(&self, path: &Path) -> std::io::Result<bool> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            // Deleted meanwhile (retention): nothing left to erase.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let overlap = self.needles.iter().map(|n| n.needle().len()).max().unwrap_or(0).saturating_sub(1);
        let mut buf = vec![0u8; (1 << 20) + overlap];
        let mut kept = 0;
        loop {
            let n = file.read(&mut buf[kept..])?;
            if n == 0 {
                return Ok(false);
            }
            let filled = kept + n;
            if self.holds_a_value(&buf[..filled]) {
                return Ok(true);
            }
            kept = overlap.min(filled);
            buf.copy_within(filled - kept..filled, 0);
        }
    }

    fn verdict(&self, line: &[u8]) -> Verdict {
        if !self.holds_a_value(line) {
            return Verdict::Keep;
        }
        let Ok(probe) = serde_json::from_slice::<Probe>(line) else { return Verdict::Unreadable };
        let names = |d: &Dimensioned, task_name: bool| {
            self.values.iter().any(|(name, value)| {
                d.dimensions.get(name) == Some(value.as_str())
                    || (task_name && name == "task" && d.task.as_ref().and_then(|t| t.as_str()) == Some(value.as_str()))
            })
        };
        match probe {
            Probe { call: Some(d), .. } if names(&d, false) => Verdict::Call,
            Probe { task: Some(d), .. } if names(&d, true) => Verdict::Task,
            Probe { tool: Some(d), .. } if names(&d, false) => Verdict::Tool,
            Probe { budget_alert: Some(Scoped { scope: Some(scope) }), .. } if self.scopes.contains(&scope) => {
                Verdict::Alert
            }
            Probe { call: None, task: None, tool: None, budget_alert: None } => Verdict::Unreadable,
            _ => Verdict::Keep,
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

/// Reads lines from `reader`, handing each kept one to `keep`, and returns the bytes read as whole lines. With
/// `whole_lines_only` it stops before a last line without its newline (a writer may be appending it) and before a
/// line longer than [`MAX_LINE_BYTES`]: those are left to the read that holds the lock. Without it, a last line
/// without a newline (a torn line a dead writer left) is judged as any other, and an overlong line (damage: no
/// record comes near it) is kept without being held whole.
fn filter_lines(
    reader: impl Read,
    whole_lines_only: bool,
    matcher: &Matcher<'_>,
    tally: &mut Tally,
    mut keep: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let mut line = Vec::new();
    let mut consumed = 0u64;
    loop {
        line.clear();
        let n = (&mut reader).take(MAX_LINE_BYTES).read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(consumed);
        }
        let whole = line.last() == Some(&b'\n');
        if !whole && whole_lines_only {
            return Ok(consumed);
        }
        consumed += n as u64;
        tally.bytes_before += n as u64;
        if !whole && n as u64 == MAX_LINE_BYTES {
            // The rest of an overlong line goes through as it is.
            keep(&line)?;
            tally.bytes_after += n as u64;
            loop {
                let chunk = reader.fill_buf()?;
                if chunk.is_empty() {
                    break;
                }
                let end = memchr::memchr(b'\n', chunk).map_or(chunk.len(), |i| i + 1);
                keep(&chunk[..end])?;
                consumed += end as u64;
                tally.bytes_before += end as u64;
                tally.bytes_after += end as u64;
                let done = chunk[end - 1] == b'\n';
                reader.consume(end);
                if done {
                    break;
                }
            }
            continue;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let verdict = matcher.verdict(text);
        tally.add(verdict);
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
    filter_lines(&file, false, matcher, &mut tally, |_| Ok(()))?;
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
            // Replaced meanwhile (by another erasure): that file is not the one read.
            Ok(_) => Err(std::io::Error::other("the day file was replaced while it was being read; erase again")),
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
    let read = filter_lines((&file).take(settled), true, matcher, &mut tally, |line| out.write_all(line))?;
    out.flush()?;
    // Most of the bytes go to the disk now, so that the sync under the lock has little left to write.
    temp.file.sync_data()?;
    let rest = locked(&file, path, timeout, |meta| {
        if meta.len() < read {
            return Err(std::io::Error::other("the day file was cut short while it was being read; erase again"));
        }
        (&file).seek(SeekFrom::Start(read))?;
        filter_lines(&file, false, matcher, &mut tally, |line| out.write_all(line))?;
        out.flush()?;
        if tally.lines() == 0 {
            // Named only outside the dimensions (a model or request id that equals the value): left as it was.
            return Ok(Some(()));
        }
        temp.file.sync_all()?;
        temp.replace(path)?;
        sync_dir(dir)?;
        Ok(Some(()))
    })?;
    Ok(rest.map(|()| tally))
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
        let path = dir.join(format!(".{name}.erasing-{}", std::process::id()));
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
                            "cannot give the rewritten file the day file's owner ({}:{}): {e}; run as that user",
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
