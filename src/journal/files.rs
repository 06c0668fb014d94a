//! Journal files: one per UTC day, named `tokenmeter-YYYY-MM-DD.jsonl`; listing and retention.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

const PREFIX: &str = "tokenmeter-";
const SUFFIX: &str = ".jsonl";

/// The file a record of UTC day `day` goes to.
pub(super) fn path_for(dir: &Path, day: NaiveDate) -> PathBuf {
    dir.join(format!("{PREFIX}{}{SUFFIX}", day.format("%Y-%m-%d")))
}

/// The UTC day a journal file holds, from its name; `None` for any other file.
fn day_of(name: &str) -> Option<NaiveDate> {
    let date = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()
}

/// One journal file.
#[derive(Debug, Clone)]
pub(super) struct DayFile {
    pub(super) day: NaiveDate,
    pub(super) path: PathBuf,
    pub(super) len: u64,
}

/// The journal files in `dir`, oldest first. Other files are left alone.
pub(super) fn list(dir: &Path) -> std::io::Result<Vec<DayFile>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(day) = entry.file_name().to_str().and_then(day_of) else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() {
            files.push(DayFile { day, path: entry.path(), len: meta.len() });
        }
    }
    files.sort_by_key(|f| f.day);
    Ok(files)
}

/// What a retention round deleted.
#[derive(Debug, Default)]
pub(super) struct Retention {
    /// Files deleted, for age or size.
    pub(super) removed: u64,
    /// The days of the files deleted for size, oldest first.
    pub(super) by_size: Vec<NaiveDate>,
    /// The time ages were measured to: `now`, or the end of the newest file's day when that is earlier.
    pub(super) as_of: DateTime<Utc>,
}

/// Deletes journal files past the age or size limits, as of `now`; returns what it deleted.
///
/// A file goes when its whole day is older than `max_age`, and, oldest first, while all files together are
/// larger than `max_total_bytes`. Today's and yesterday's files are never deleted (other processes may still
/// be appending to them, and calls that started before midnight land in yesterday's). Ages run to the end of
/// the newest file's day at most: a clock that jumps months ahead would otherwise find every file old and
/// delete the whole journal (and with it the spend budgets replay); the writer's later rounds pass a `now`
/// bounded by the time elapsed since the build as well (a day file written under a clock that jumped ahead
/// mid-run is the newest). A file that cannot be deleted (locked by a
/// writer, no permission) stops the size round: a newer file does not go in its place.
pub(super) fn enforce_retention(
    dir: &Path,
    now: DateTime<Utc>,
    max_age: Option<Duration>,
    max_total_bytes: Option<u64>,
) -> std::io::Result<Retention> {
    let files = list(dir)?;
    let newest_end = files.last().and_then(|f| f.day.succ_opt()).and_then(|d| d.and_hms_opt(0, 0, 0));
    let now = newest_end.map_or(now, |end| now.min(end.and_utc()));
    let today = now.date_naive();
    let protected = |f: &DayFile| today.signed_duration_since(f.day).num_days() <= 1;
    let mut removed = 0;
    let mut by_size = Vec::new();
    let mut kept = Vec::with_capacity(files.len());
    for f in files {
        let day_end = f.day.succ_opt().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|d| d.and_utc());
        let too_old = match (max_age, day_end) {
            // An age past the end of the calendar keeps every file (`+` would panic).
            (Some(age), Some(end)) => chrono::Duration::from_std(age)
                .is_ok_and(|age| end.checked_add_signed(age).is_some_and(|expiry| expiry <= now)),
            _ => false,
        };
        if too_old && !protected(&f) && remove(&f.path) {
            removed += 1;
        } else {
            kept.push(f);
        }
    }
    if let Some(max) = max_total_bytes {
        let mut total: u64 = kept.iter().map(|f| f.len).sum();
        for f in &kept {
            if total <= max || protected(f) {
                break;
            }
            if !remove(&f.path) {
                break;
            }
            total -= f.len;
            removed += 1;
            by_size.push(f.day);
        }
    }
    Ok(Retention { removed, by_size, as_of: now })
}

/// Deletes `path` while holding its exclusive lock, so that no writer (of any process) is appending to it at that
/// moment: writers check, under the lock, that their file still exists. A file locked now is left for the next
/// round.
fn remove(path: &Path) -> bool {
    let Ok(file) = std::fs::OpenOptions::new().read(true).open(path) else { return false };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return false,
        // A filesystem without locks: the build refuses such a directory; delete as before.
        Err(std::fs::TryLockError::Error(_)) => {}
    }
    match std::fs::remove_file(path) {
        Ok(()) => true,
        // Another process sharing the directory got there first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            tracing::warn!(target: "tokenmeter::journal", path = %path.display(), error = %e, "cannot delete an expired journal file");
            false
        }
    }
}
