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

/// The UTC day a journal file holds, from its name; `None` for any other file. Only the name the writer gives
/// it: chrono's parser also takes `2025-10-2` and `+2025-10-02`, and a hand-made copy so named was read as a
/// second file of that day (its calls counted twice).
pub(super) fn day_of(name: &str) -> Option<NaiveDate> {
    let date = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let day = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    // As `path_for` writes it (a formatted day is a few bytes: a comparison, no allocation to speak of).
    (day.format("%Y-%m-%d").to_string() == date).then_some(day)
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
    list_all(dir).map(|(files, _)| files)
}

/// A symbolic link named as a day file: its day and path.
pub(super) type Link = (NaiveDate, PathBuf);

/// [`list`], and the symbolic links named as day files (not followed: the writer never writes through one
/// either), oldest first: replay reports them.
pub(super) fn list_all(dir: &Path) -> std::io::Result<(Vec<DayFile>, Vec<Link>)> {
    let (mut files, mut others) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(day) = entry.file_name().to_str().and_then(day_of) else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() {
            files.push(DayFile { day, path: entry.path(), len: meta.len() });
        } else if meta.file_type().is_symlink() {
            others.push((day, entry.path()));
        }
    }
    files.sort_by_key(|f| f.day);
    others.sort();
    Ok((files, others))
}

/// What a retention round deleted.
#[derive(Debug, Default)]
pub(super) struct Retention {
    /// Files deleted, for age or size.
    pub(super) removed: u64,
    /// The days of the files deleted for age, oldest first.
    pub(super) by_age: Vec<NaiveDate>,
    /// The days of the files deleted for size, oldest first.
    pub(super) by_size: Vec<NaiveDate>,
    /// The time ages were measured to: `now`, or the end of the newest file's day when that is earlier.
    pub(super) as_of: DateTime<Utc>,
}

/// Deletes journal files past the age or size limits, as of `now`; returns what it deleted.
///
/// A file goes when its whole day is older than `max_age`, and, oldest first, while all files together are
/// larger than `max_total_bytes`. Today's and yesterday's files are never deleted (other processes may still
/// be appending to them, and calls that started before midnight land in yesterday's); files dated after today
/// go by age never, by size only past the two newest files. Ages run to the end of
/// the newest file's day at most: a clock that jumps months ahead would otherwise find every file old and
/// delete the whole journal (and with it the spend budgets replay); the writer's later rounds pass a `now`
/// bounded by the time elapsed since the build as well (a day file written under a clock that jumped ahead
/// mid-run is the newest). A file that cannot be deleted (locked by a
/// writer, no permission) stops the size round: a newer file does not go in its place; one another process
/// deleted first does not.
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
    let mut by_age = Vec::new();
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
        if too_old && !protected(&f) && remove(&f.path) == Removal::Removed {
            by_age.push(f.day);
        } else {
            kept.push(f);
        }
    }
    if let Some(max) = max_total_bytes {
        // Today's and yesterday's stay; of the files dated after today, the two newest. Every later file stayed:
        // a clock behind the files' days (a device that booted at 1970 before its time was set: the writer's
        // rounds stay as far behind) made every file today's or later, so the size round deleted nothing for
        // the whole run and the disk filled.
        let second_newest = kept.len().checked_sub(2).map(|i| kept[i].day);
        let protected = |f: &DayFile| {
            let days = today.signed_duration_since(f.day).num_days();
            (0..=1).contains(&days) || days < 0 && second_newest.is_none_or(|d| f.day >= d)
        };
        by_size = size_round(&kept, max, protected, remove);
    }
    let removed = (by_age.len() + by_size.len()) as u64;
    Ok(Retention { removed, by_age, by_size, as_of: now })
}

impl Retention {
    /// Logs (INFO, target `tokenmeter::journal`) what the round deleted, if anything: otherwise a deleted day
    /// file shows only as a count in `JournalStats::files_removed`, and a clock that was wrong leaves no trace of
    /// which days it cost.
    pub(super) fn log(&self, max_age: Option<Duration>, max_total_bytes: Option<u64>) {
        let days = |d: &[NaiveDate]| match d {
            [] => String::new(),
            [one] => one.to_string(),
            [first, .., last] => format!("{first} to {last}"),
        };
        if !self.by_age.is_empty() {
            let age = match max_age {
                Some(a) if a.as_secs() % 86_400 == 0 => format!("{} day(s)", a.as_secs() / 86_400),
                Some(a) => format!("{a:?}"),
                None => String::new(),
            };
            tracing::info!(
                target: "tokenmeter::journal",
                files = self.by_age.len(),
                as_of = %self.as_of,
                "journal retention deleted {} day file(s) older than the age limit of {age} ({})",
                self.by_age.len(),
                days(&self.by_age),
            );
        }
        if !self.by_size.is_empty() {
            tracing::info!(
                target: "tokenmeter::journal",
                files = self.by_size.len(),
                "journal retention deleted {} day file(s) to keep the journal under {} bytes ({})",
                self.by_size.len(),
                max_total_bytes.unwrap_or(0),
                days(&self.by_size),
            );
        }
    }
}

/// The oldest day whose file [`enforce_retention`] would keep for its age at `now` (`None`: every day): what a
/// journal that cannot be written to, so not pruned, replays from.
pub(super) fn oldest_kept_by_age(
    dir: &Path,
    now: DateTime<Utc>,
    max_age: Option<Duration>,
) -> std::io::Result<Option<chrono::NaiveDate>> {
    let Some(age) = max_age.and_then(|a| chrono::Duration::from_std(a).ok()) else { return Ok(None) };
    let files = list(dir)?;
    let newest_end = files.last().and_then(|f| f.day.succ_opt()).and_then(|d| d.and_hms_opt(0, 0, 0));
    let now = newest_end.map_or(now, |end| now.min(end.and_utc()));
    // A file is too old when its day's end plus the age is at or before `now`: the day of `now - age` is the
    // first kept. Today's and yesterday's are kept whatever the age.
    let yesterday = now.date_naive().pred_opt();
    Ok(now.checked_sub_signed(age).map(|t| t.date_naive()).map(|d| yesterday.map_or(d, |y| d.min(y))))
}

/// Deletes `files` (oldest first) while they total more than `max` bytes, passing over protected ones, up to one
/// that cannot be deleted; returns the days deleted. (A protected file may be older than one that is not: today's,
/// under a clock behind the files' days.)
fn size_round(
    files: &[DayFile],
    max: u64,
    protected: impl Fn(&DayFile) -> bool,
    mut remove: impl FnMut(&Path) -> Removal,
) -> Vec<NaiveDate> {
    let mut total: u64 = files.iter().map(|f| f.len).sum();
    let mut deleted = Vec::new();
    for f in files {
        if total <= max {
            break;
        }
        if protected(f) {
            continue;
        }
        match remove(&f.path) {
            Removal::Removed => deleted.push(f.day),
            // Another process sharing the directory deleted it first: its bytes are gone all the same (the
            // round stopped there, and the journal stayed over its limit another hour).
            Removal::Gone => {}
            Removal::Kept => break,
        }
        total -= f.len;
    }
    deleted
}

/// What [`remove`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    Removed,
    /// Not there (another process sharing the directory deleted it first).
    Gone,
    /// Left: locked by a writer or reader now, or not deletable.
    Kept,
}

/// Deletes `path` while holding its exclusive lock, so that no writer (of any process) is appending to it at that
/// moment: writers check, under the lock, that their file still exists. A file locked now is left for the next
/// round. Opened for writing where it can be: NFS emulates `flock` with `fcntl` locks, whose exclusive lock needs
/// a file open for writing (opened read-only, the lock failed and the file was deleted unlocked, under a writer
/// on another host).
fn remove(path: &Path) -> Removal {
    // Read and write access: Windows' `LockFileEx` needs one of them (an append-only handle has neither).
    let opened = std::fs::OpenOptions::new().read(true).write(true).open(path);
    let file = match opened.or_else(|_| std::fs::File::open(path)) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Removal::Gone,
        Err(_) => return Removal::Kept,
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Removal::Kept,
        // A filesystem without locks: the build refuses such a directory; delete as before.
        Err(std::fs::TryLockError::Error(_)) => {}
    }
    // The path may name another file by now (another process deleted the one opened, and a writer made a new
    // one for a late record): that one is not what was locked, and holds records.
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Removal::Gone,
        Ok(now) if file.metadata().is_ok_and(|locked| same_file(&locked, &now)) => {}
        _ => return Removal::Kept,
    }
    match std::fs::remove_file(path) {
        Ok(()) => Removal::Removed,
        // Another process sharing the directory got there first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Removal::Gone,
        Err(e) => {
            tracing::warn!(target: "tokenmeter::journal", path = %path.display(), error = %e, "cannot delete an expired journal file");
            Removal::Kept
        }
    }
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day_file(dir: &Path, day: u32, len: u64) -> DayFile {
        let day = NaiveDate::from_ymd_opt(2026, 3, day).unwrap();
        DayFile { path: dir.join(format!("tokenmeter-{day}.jsonl")), day, len }
    }

    #[test]
    fn only_the_names_the_writer_gives_are_day_files() {
        let day = |name: &str| day_of(name).map(|d| d.to_string());
        assert_eq!(day("tokenmeter-2025-10-02.jsonl").as_deref(), Some("2025-10-02"));
        for name in [
            "tokenmeter-2025-10-2.jsonl",
            "tokenmeter-+2025-10-02.jsonl",
            "tokenmeter-2025-10-02.jsonl.1",
            "tokenmeter-02025-10-02.jsonl",
        ] {
            assert_eq!(day(name), None, "{name}");
        }
        let far = NaiveDate::from_ymd_opt(12_345, 1, 2).unwrap();
        let name = path_for(Path::new(""), far).to_string_lossy().into_owned();
        assert_eq!(day_of(&name), Some(far), "{name}");
    }

    #[test]
    fn a_file_another_process_deleted_first_does_not_stop_the_size_round() {
        let dir = Path::new("/nonexistent");
        let files: Vec<DayFile> = (1..=4).map(|d| day_file(dir, d, 100)).collect();
        // The first is gone when its turn comes: the round goes on to the second and third (400 bytes over a
        // 150-byte limit), where it stopped at the first and left the journal over its limit.
        let deleted = size_round(
            &files,
            150,
            |_| false,
            |p| {
                if p == files[0].path { Removal::Gone } else { Removal::Removed }
            },
        );
        assert_eq!(deleted, [files[1].day, files[2].day]);
        // A file kept (locked) stops it: a newer one does not go in its place.
        let deleted = size_round(
            &files,
            150,
            |_| false,
            |p| {
                if p == files[1].path { Removal::Kept } else { Removal::Removed }
            },
        );
        assert_eq!(deleted, [files[0].day]);
    }

    #[test]
    fn the_size_limit_holds_under_a_clock_behind_the_files() {
        // Rounds measured as of 1970 (a clock not yet set at the build, its records in 1970's file): every other
        // file is after "today", and was protected as today's or later; the size round kept all 11 (33 bytes) over
        // a limit of 3. Now today's (1970's, the oldest) and the two newest stay.
        let dir = tempfile::tempdir().unwrap();
        for d in 1..=10 {
            std::fs::write(day_file(dir.path(), d, 0).path, "{}\n").unwrap();
        }
        let epoch = DateTime::from_timestamp(0, 0).unwrap();
        std::fs::write(path_for(dir.path(), epoch.date_naive()), "{}\n").unwrap();
        let r = enforce_retention(dir.path(), epoch, Some(Duration::from_secs(86_400)), Some(3)).unwrap();
        let left: Vec<NaiveDate> = list(dir.path()).unwrap().into_iter().map(|f| f.day).collect();
        let (d9, d10) = (day_file(dir.path(), 9, 0).day, day_file(dir.path(), 10, 0).day);
        assert_eq!(left, [epoch.date_naive(), d9, d10]);
        assert_eq!((r.removed, r.by_size.len()), (8, 8), "by size alone: by age, nothing is old before its day");
        // With the clock right, 1970's goes, and yesterday's and today's stay as before, over the limit.
        let now = day_file(dir.path(), 10, 0).day.and_hms_opt(12, 0, 0).unwrap().and_utc();
        let r = enforce_retention(dir.path(), now, None, Some(1)).unwrap();
        assert_eq!(r.by_size, [epoch.date_naive()]);
        assert_eq!(list(dir.path()).unwrap().len(), 2);
        // Files dated after today (a clock that ran ahead wrote them) do not take today's and yesterday's place.
        let dir = tempfile::tempdir().unwrap();
        for d in 1..=10 {
            std::fs::write(day_file(dir.path(), d, 0).path, "{}\n").unwrap();
        }
        let now = day_file(dir.path(), 8, 0).day.and_hms_opt(12, 0, 0).unwrap().and_utc();
        enforce_retention(dir.path(), now, None, Some(1)).unwrap();
        let left: Vec<u32> = list(dir.path()).unwrap().into_iter().map(|f| chrono::Datelike::day(&f.day)).collect();
        assert_eq!(left, [7, 8, 9, 10]);
    }

    #[test]
    fn remove_tells_gone_from_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenmeter-2026-03-01.jsonl");
        assert_eq!(remove(&path), Removal::Gone);
        std::fs::write(&path, "{}\n").unwrap();
        let reader = std::fs::File::open(&path).unwrap();
        reader.lock_shared().unwrap();
        assert_eq!(remove(&path), Removal::Kept, "a reader holds its lock");
        drop(reader);
        assert_eq!(remove(&path), Removal::Removed);
        assert!(!path.exists());
    }
}
