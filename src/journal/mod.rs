//! The journal: a durable, append-only JSON Lines log of every call, task and tool record, and its replay at
//! start.
//!
//! # Format
//!
//! A directory of files, one per UTC day of the records' timestamps, named `tokenmeter-YYYY-MM-DD.jsonl`.
//! Each line is one record:
//!
//! ```json
//! {"v":1,"call":{"timestamp":"2026-03-14T09:26:53Z","duration_us":1200000,"model":"claude-sonnet-4-5",…}}
//! {"v":1,"tool":{"timestamp":"2026-03-14T09:26:55Z","duration_us":40000,"tool":"search",…}}
//! {"v":1,"task":{"timestamp":"2026-03-14T09:26:50Z","duration_us":9000000,"task":"triage","dimensions":{…},…}}
//! ```
//!
//! `v` is the schema version ([`SCHEMA_VERSION`]) and `call` a [`CallRecord`] as serde writes it: tokens,
//! cost, model, dimensions, timing and outcome, never prompt or response text; `task` a [`TaskRecord`],
//! `tool` a [`ToolRecord`]. A line `{"v":1,"budget_alert":{…}}` after a call says a budget alert was
//! delivered for it (budget name, kind, unit, period kind, limit, period start, time), so that a restarted
//! meter does not deliver it again. Lines of a newer version are skipped (and reported) by older readers;
//! unknown fields are ignored, and lines of an unknown kind at this version are counted
//! ([`ReplayReport::other_lines`]) and left out (not a line with a bare record's `timestamp` and `tokens` at its
//! top: that is damage, skipped and reported). Amounts are integers of picodollars (see [`Money`](crate::Money)).
//!
//! # Writing
//!
//! The recording thread only puts a copy of the record on a bounded queue ([`JournalConfig::with_queue_capacity`]);
//! a record that finds the queue full is dropped and counted ([`JournalStats::dropped`]), so a slow disk never
//! slows the application. The copy shares nothing with the recording thread (plain numbers and the strings'
//! bytes, no reference counts), and the writer encodes each line by hand, byte for byte what `serde_json` writes.
//! The writer drains the queue in rounds and sleeps between them (2 ms after a busy round, up to 100 ms when idle), so
//! a record reaches the file within about 100 ms; a half-full queue wakes it from that sleep, [`TokenMeter::flush`] and
//! dropping the meter from any. After a round that wrote records it also rests three times as long as the round's work
//! (its CPU time, on Linux), except while a flush waits or the meter drops: under an overload the writer takes at most
//! about a quarter of one core (keeping up with ~400,000 records a second when it has a core to itself) and the queue
//! drops the rest, counted. A writer thread appends records in batches, each batch one `write` of whole lines to a file
//! opened with `O_APPEND`, under an exclusive advisory lock (`flock`), so several processes can share a directory
//! without interleaving lines. If a process died mid-line, the next writer ends that torn line first.
//!
//! The [`FsyncPolicy`] says when data reaches the disk: every second by default, after every batch with
//! [`FsyncPolicy::EveryRecord`] (a record counts in [`JournalStats::synced`] only once it is on disk), or
//! only on [`TokenMeter::flush`]. Call `flush` before the process exits: a meter installed in a global
//! subscriber is never dropped, and records still queued would be lost.
//!
//! # Retention
//!
//! At start and every hour the writer deletes files whose whole day is older than
//! [`JournalConfig::with_max_age`] (90 days by default), then the oldest files while the directory holds more
//! than [`JournalConfig::with_max_total_bytes`] (no limit by default). Today's and yesterday's files are kept.
//! A round that deletes files logs which days and why (INFO, target `tokenmeter::journal`).
//!
//! # Replay
//!
//! [`TokenMeterBuilder::build`](crate::TokenMeterBuilder::build) replays every journal file before it returns:
//! each call goes back into the meter's model totals, into the budgets (their current periods and crossed
//! thresholds come back; nothing fires during replay, and the alerts the journal's `budget_alert` lines say were
//! delivered are not delivered again: see README "The journal") and to
//! [`RecordSink::on_replayed_call`](crate::RecordSink::on_replayed_call). Each tool execution goes back into
//! the per-tool totals and to [`RecordSink::on_replayed_tool`](crate::RecordSink::on_replayed_tool), each
//! task to [`RecordSink::on_replayed_task`](crate::RecordSink::on_replayed_task) (the ledger's task figures
//! and cost per task come back). Capture statistics count this process's own records only.
//! A record that ended after the meter's clock counts in the budgets' current period.
//! A line that cannot be read (a torn last line after a crash, a corrupt line, a newer schema) is skipped and
//! reported in [`JournalStats::replay`] and as a WARN event with target `tokenmeter::journal`; it is never
//! fatal. With several processes on one directory, each replays what all of them wrote. [`read`] reads a
//! directory the same way without a meter.
//!
//! ```
//! use tokenmeter::journal::{FsyncPolicy, JournalConfig};
//!
//! # let dir = std::env::temp_dir().join(format!("tokenmeter-doc-{}", std::process::id()));
//! let meter = tokenmeter::TokenMeter::builder()
//!     .with_journal(JournalConfig::new(&dir).with_fsync(FsyncPolicy::EveryRecord))
//!     .try_build()?;
//! // ... record calls ...
//! meter.flush()?;
//! println!("{:?}", meter.journal_stats());
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod erase;
mod files;
pub(crate) mod line;
mod replay;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub use erase::{Erasure, ErasureReport, FailedFile, erase};
pub(crate) use writer::JournalWriter;

use replay::Replayed;

use crate::meter::{TokenMeter, TokenMeterBuilder};
use crate::record::{CallRecord, TaskRecord, ToolRecord};

/// How long a writer waits for a day file's lock by default.
pub(crate) const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// The journal line format's version.
pub const SCHEMA_VERSION: u32 = 1;

/// The longest line replay reads into memory, 16 MiB. No line tokenmeter writes comes near it with dimension
/// values capped (128 bytes by default; `with_max_dimension_len` lifted past megabytes could); a longer one is
/// damage (a file's tail of zeros after a crash, another program's output), skipped as corrupt without being
/// held whole.
pub const MAX_LINE_BYTES: u64 = 16 << 20;

/// When journal writes are forced to disk (`fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FsyncPolicy {
    /// After every batch of records: a record is acknowledged ([`JournalStats::synced`]) only once it is on
    /// disk. Costs one `fsync` per batch on the writer thread.
    EveryRecord,
    /// At most this long after a write (the default: one second).
    Interval(Duration),
    /// Only on [`TokenMeter::flush`] and when the meter is dropped (within [`DROP_WAIT`]); otherwise when the
    /// OS decides.
    Never,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Interval(Duration::from_secs(1))
    }
}

/// How the journal's writer thread competes for the CPU with the application's threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WriterPriority {
    /// The priority of the thread that builds the meter (the default): the writer competes with the
    /// application's threads as an equal, taking the CPU it needs to write every record it can. At real call
    /// rates that is well under 1% of a core.
    #[default]
    Normal,
    /// The lowest, for an application that would rather keep its CPU than its journal under overload: on
    /// Linux the writer thread alone runs at nice 19, so when every core is busy the application's threads
    /// run first and the writer gets what they leave. Against one busy thread at nice 0 that is ~1.4% of the
    /// core (the scheduler's weights, 15 against 1,024), which kept up with ~20,000 records a second on the
    /// machine `examples/writer_priority.rs` measured; the share divides by the number of busy threads a core
    /// runs, and counts only against the threads of the same scheduling group (autogroup, cgroup CPU weights),
    /// not other processes'. A sustained load past it fills the queue, and records are dropped (counted in
    /// [`JournalStats::dropped`]; after a restart, budgets replay without their spend), and
    /// [`TokenMeter::flush`](crate::TokenMeter::flush), `shutdown()` and the meter's drop wait longer while the
    /// cores stay busy: the queue drains at that share (a full default queue took ~370 ms there; a larger
    /// queue takes longer in proportion). While a core is idle the writer runs at full speed either way. A
    /// meter built on a real-time thread (`SCHED_FIFO`, `SCHED_RR`) gets a real-time writer, which ignores
    /// nice. On other systems this is the same as `Normal` (their `setpriority` sets the whole process's
    /// priority).
    Background,
}

/// Where and how the journal is kept. Add it with [`TokenMeterBuilder::with_journal`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct JournalConfig {
    dir: PathBuf,
    fsync: FsyncPolicy,
    max_age: Option<Duration>,
    max_total_bytes: Option<u64>,
    queue_capacity: usize,
    replay: bool,
    lock_timeout: Duration,
    writer_priority: WriterPriority,
    /// The budget whose period reaches furthest back, set by the builder: files deleted for size inside it are
    /// spend a restart will not count.
    pub(crate) budget_reach: Option<BudgetReach>,
}

/// How far back a budget's spend needs the journal's files (see [`JournalConfig::with_max_age`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BudgetReach {
    /// The budget's name.
    pub(crate) budget: String,
    /// Its period as written (`month`, `rolling 180d`).
    pub(crate) period: String,
    /// The UTC days of files it needs, today's included.
    pub(crate) days: u64,
}

/// Warns when a size round deleted files that `reach`'s budget still needs: its spend would come back lower
/// after a restart.
///
/// `at_build`: the meter is being built, usually before the subscriber that would hear the event is installed, so
/// the warning also goes to standard error while no subscriber is set (as `build`'s other warnings do).
pub(super) fn warn_size_deletions(
    reach: Option<&BudgetReach>,
    today: NaiveDate,
    deleted: &[NaiveDate],
    at_build: bool,
) {
    let Some(reach) = reach else { return };
    let needed_since =
        today.checked_sub_days(chrono::Days::new(reach.days.saturating_sub(1))).unwrap_or(NaiveDate::MIN);
    let inside: Vec<&NaiveDate> = deleted.iter().filter(|d| **d >= needed_since).collect();
    if let Some(newest) = inside.last() {
        let message = format!(
            "the journal's size limit (JournalConfig::with_max_total_bytes) deleted {} day file(s), the newest of \
             {newest}, that budget `{}` ({}) needs: a restart will count less spend than was made; raise the \
             limit (or None)",
            inside.len(),
            reach.budget,
            reach.period,
        );
        tracing::warn!(
            target: "tokenmeter::journal",
            budget = %reach.budget,
            period = %reach.period,
            files = inside.len(),
            newest = %newest,
            "{message}"
        );
        if at_build {
            crate::meter::unheard(|| message);
        }
    }
}

impl JournalConfig {
    /// The default queue capacity, in records.
    pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;

    /// The largest queue [`with_queue_capacity`](Self::with_queue_capacity) takes: 131,072 records, ~0.15 s
    /// of recording at full speed on one core, allocated up front.
    pub const MAX_QUEUE_CAPACITY: usize = 1 << 17;

    /// A journal in `dir` (created if missing): fsync every second, files kept 90 days, no size limit, a
    /// queue of [`DEFAULT_QUEUE_CAPACITY`](Self::DEFAULT_QUEUE_CAPACITY) records, replayed at start. An empty
    /// path is an error when the meter is built (`"."` is the working directory).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JournalConfig {
            dir: dir.into(),
            fsync: FsyncPolicy::default(),
            max_age: Some(Duration::from_secs(90 * 86_400)),
            max_total_bytes: None,
            queue_capacity: Self::DEFAULT_QUEUE_CAPACITY,
            replay: true,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            writer_priority: WriterPriority::Normal,
            budget_reach: None,
        }
    }

    /// Sets when writes are forced to disk.
    pub fn with_fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }

    /// Deletes files whose whole day is older than this (`None`: keep forever). It must reach a day past the
    /// longest budget period (a month: 32 days; `rolling 180d`: 184, its window reaching a sixtieth past the
    /// 180 days), or restarts would forget spend:
    /// [`try_build`](crate::TokenMeterBuilder::try_build) refuses a shorter one
    /// ([`BuildError::JournalRetention`](crate::BuildError::JournalRetention)).
    pub fn with_max_age(mut self, max_age: Option<Duration>) -> Self {
        self.max_age = max_age;
        self
    }

    /// How long files are kept (`None`: forever).
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// Whether the meter reads the journal back when it is built.
    pub(crate) fn replays(&self) -> bool {
        self.replay
    }

    /// Deletes the oldest files while the journal is larger than this (`None`: no limit).
    pub fn with_max_total_bytes(mut self, bytes: Option<u64>) -> Self {
        self.max_total_bytes = bytes;
        self
    }

    /// Sets how many records may wait for the writer, from 1 to [`MAX_QUEUE_CAPACITY`](Self::MAX_QUEUE_CAPACITY)
    /// (a value outside is taken as the nearest); more are dropped and counted. The queue's slots (544 bytes
    /// each on 64-bit Linux) are allocated when the meter is built: the default takes ~2 MB, the maximum ~71 MB.
    pub fn with_queue_capacity(mut self, records: usize) -> Self {
        self.queue_capacity = records.clamp(1, Self::MAX_QUEUE_CAPACITY);
        self
    }

    /// How long the writer waits for a day file's lock, which another process appending to the same journal
    /// holds for the moment of its write (default 5 s). A batch still locked out after it fails, counted in
    /// [`JournalStats::failed_records`], rather than stall the writer (and the meter's drop, which waits for
    /// it) behind a process that holds the lock and stopped. Once a file's lock timed out, later batches for
    /// it wait at most 100 ms until its lock is taken again, so a full queue at exit is not held a timeout
    /// per batch. `Duration::MAX` waits for good.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// How the writer thread competes for the CPU with the application's (default
    /// [`WriterPriority::Normal`]).
    pub fn with_writer_priority(mut self, priority: WriterPriority) -> Self {
        self.writer_priority = priority;
        self
    }

    /// Whether the meter replays the journal when built (default true).
    pub fn with_replay(mut self, replay: bool) -> Self {
        self.replay = replay;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Why a journal line was not replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
#[non_exhaustive]
pub enum SkipReason {
    /// The file's last line is incomplete: the writing process died mid-write.
    TornTail,
    /// The line is not a journal record (a torn line that later writes were appended after, or damage).
    Corrupt {
        /// What the parser said.
        message: String,
    },
    /// The line was written by a newer tokenmeter.
    UnsupportedVersion {
        /// Its schema version.
        version: u32,
    },
    /// The file could not be read.
    Unreadable {
        /// The I/O error.
        message: String,
    },
}

/// One line replay skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedLine {
    /// The file (in JSON, lossily: a name that is not UTF-8 has U+FFFD in place of its other bytes).
    #[serde(serialize_with = "crate::lossy_path::serialize")]
    pub path: PathBuf,
    /// 1-based line number (0 for a whole unreadable file).
    pub line: u64,
    /// Why.
    pub reason: SkipReason,
}

/// What replay found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayReport {
    /// Journal files read.
    pub files: u64,
    /// Call records replayed.
    pub records: u64,
    /// Task records replayed.
    #[serde(default)]
    pub tasks: u64,
    /// Tool records replayed.
    #[serde(default)]
    pub tools: u64,
    /// Budget alert lines read: alerts delivered before the restart, not delivered again (an alert held for days
    /// has a line a day: the first call of each UTC day writes the held ones again).
    #[serde(default)]
    pub budget_alerts: u64,
    /// Lines of this schema version holding none of the kinds this version reads (`call`, `task`, `tool`,
    /// `budget_alert`): a kind a newer tokenmeter added. Left out quietly, as unknown fields are; not skipped
    /// lines.
    #[serde(default)]
    pub other_lines: u64,
    /// Lines skipped.
    pub skipped_lines: u64,
    /// Files that could not be read (or not to their end): each is also one of `skipped_lines`, listed at line 0
    /// with [`SkipReason::Unreadable`]. Absent (0) in reports written before it was added.
    #[serde(default)]
    pub unreadable_files: u64,
    /// The first [`MAX_REPORTED_SKIPS`](ReplayReport::MAX_REPORTED_SKIPS) skipped lines, in file order.
    pub skipped: Vec<SkippedLine>,
    /// Call, task and tool records (counted in `records`, `tasks` and `tools`) a meter's replay left out because
    /// they ended more than [`AHEAD_OF_CLOCK_LIMIT`](ReplayReport::AHEAD_OF_CLOCK_LIMIT) after its clock: written
    /// while a clock ran far ahead, at a time no one knows. Counted at "now", every restart would add them to
    /// its own current period again (a month budget a month later, a year later), and their files are kept
    /// until their day comes. [`read`] and [`read_entries`] hand every record over and leave this 0.
    #[serde(default)]
    pub ahead_of_clock: u64,
    /// When the latest of those ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ahead: Option<DateTime<Utc>>,
}

impl ReplayReport {
    /// The most skipped lines listed individually.
    pub const MAX_REPORTED_SKIPS: usize = 100;

    /// How far after the replaying meter's clock a record may end and still count (at "now", as the ledger and
    /// budgets count a record from a clock a little ahead): one hour.
    pub const AHEAD_OF_CLOCK_LIMIT: std::time::Duration = std::time::Duration::from_secs(3_600);
}

/// The journal's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalStats {
    /// Records queued for writing (calls, tasks and tool executions).
    pub enqueued: u64,
    /// Records dropped because the queue was full (or the writer had stopped).
    pub dropped: u64,
    /// Records written (handed to the OS).
    pub written: u64,
    /// Records known to be on disk (after an `fsync`). With [`FsyncPolicy::EveryRecord`], the records the
    /// journal has acknowledged.
    pub synced: u64,
    /// Failed writes or syncs.
    pub write_errors: u64,
    /// Records lost to failed writes. A batch whose write fails part way (a full disk) is cut off again, so
    /// none of these records is in the journal, and none comes back on replay (unless cutting it off failed
    /// too: [`last_error`](Self::last_error) then says so).
    pub failed_records: u64,
    /// Files deleted by retention.
    pub files_removed: u64,
    /// Budget alert lines lost: dropped because the queue was full, or in a batch whose write failed. After a
    /// restart, those alerts are delivered again.
    #[serde(default)]
    pub alerts_dropped: u64,
    /// The last write error, if any.
    pub last_error: Option<String>,
    /// What replay found at start.
    pub replay: ReplayReport,
}

/// Errors opening or flushing the journal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The journal directory cannot be created, read or written.
    #[error("cannot use journal directory {}: {source} (check that it exists or can be created, and is writable)", .path.display())]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An erasure ([`erase`]) that names nothing to erase: no value, or an empty name or value.
    #[error("nothing to erase: {0}")]
    InvalidErasure(String),
    /// The writer thread could not be started.
    #[error("cannot start the journal writer thread: {0}")]
    Spawn(std::io::Error),
    /// A write or sync failed since the last flush (the records are counted in
    /// [`JournalStats::failed_records`]).
    #[error("journal write failed: {0} (see JournalStats::failed_records)")]
    Write(String),
    /// Records were dropped since the last flush because the queue was full (the writer could not keep up, or
    /// waited on a lock): they are not in the journal. Counted in [`JournalStats::dropped`] and
    /// [`JournalStats::alerts_dropped`].
    #[error(
        "{records} records were dropped since the last flush because the journal's queue was full; they are not \
         in the journal (raise JournalConfig::with_queue_capacity or, if WriterPriority::Background is set, \
         use Normal; see JournalStats::dropped)"
    )]
    Dropped {
        /// Call, task, tool and alert lines dropped since the previous flush.
        records: u64,
    },
    /// The writer thread is gone; records are being dropped.
    #[error("the journal writer thread has stopped; records are not being written")]
    Stopped,
    /// A flush was called on the journal's writer thread (by a subscriber reacting to the writer's own warning,
    /// say), where it would wait for itself for ever.
    #[error(
        "flush or shutdown called on the journal writer thread (from a subscriber reacting to its warning, say), \
         where it would wait for itself: call it from another thread"
    )]
    OnWriterThread,
    /// A flush with a time limit ([`TokenMeter::flush_timeout`], [`TokenMeter::shutdown`]) gave up waiting: the
    /// disk is slow or hung, or the writer is held up. What is queued is still written once the writer can.
    #[error("the journal was not written and synced within {waited:?} (a slow or hung disk?); it goes on writing")]
    TimedOut {
        /// How long the flush waited.
        waited: Duration,
    },
}

/// How long dropping a meter's last handle waits for its journal writer to write and sync what is queued, at
/// least. The wait is the journal's [`JournalConfig::with_lock_timeout`] plus a second (6 s with the default
/// 5 s), so that a batch waiting on another process's lock is written or failed first, at least this and at most
/// a minute. Past that the writer
/// finishes on its own thread (what it still holds is lost if the process exits first), and the drop says so
/// on stderr (not as a tracing event: the dropping thread may hold a `reload` layer's lock, which the event
/// would wait for). [`TokenMeter::shutdown`] waits longer ([`crate::SHUTDOWN_JOURNAL_WAIT`]) and returns
/// whether it finished.
pub const DROP_WAIT: Duration = Duration::from_secs(5);

/// The most a drop waits, whatever the lock timeout.
const MAX_DROP_WAIT: Duration = Duration::from_secs(60);

/// How long a meter's drop waits for a writer with this lock timeout (see [`DROP_WAIT`]).
pub(crate) fn drop_wait(lock_timeout: Duration) -> Duration {
    lock_timeout.saturating_add(Duration::from_secs(1)).clamp(DROP_WAIT, MAX_DROP_WAIT)
}

// === impl TokenMeterBuilder ===

impl TokenMeterBuilder {
    /// Journals every call record to a directory and replays it when the meter is built (see
    /// [`crate::journal`]). Use [`try_build`](TokenMeterBuilder::try_build) to get an error when the directory
    /// is unusable; [`build`](TokenMeterBuilder::build) then logs the error and builds a meter without a journal.
    pub fn with_journal(mut self, config: JournalConfig) -> Self {
        self.journal_config = Some(config);
        self
    }
}

// === impl TokenMeter ===

impl TokenMeter {
    /// The journal's counters, or `None` without a journal.
    pub fn journal_stats(&self) -> Option<JournalStats> {
        self.inner.journal.get().map(JournalWriter::stats)
    }

    /// Waits until every record recorded before this call is written and synced to disk, whatever the
    /// [`FsyncPolicy`]. Returns at once without a journal. Blocks the calling thread (never call it from
    /// a record sink or alert callback). Fails when a write or sync failed since the previous flush
    /// ([`JournalError::Write`]), or when a full queue dropped records since then ([`JournalError::Dropped`]):
    /// what is queued is written either way. On the writer thread itself (a subscriber reacting to its warning)
    /// it returns [`JournalError::OnWriterThread`] instead of waiting for itself.
    pub fn flush(&self) -> Result<(), JournalError> {
        match self.inner.journal.get() {
            Some(writer) => writer.flush(None),
            None => Ok(()),
        }
    }

    /// [`flush`](Self::flush), waiting at most `limit`: past it, [`JournalError::TimedOut`] (the writer goes on,
    /// and the next flush reports what this one would have). For a shutdown path that must not hang on a hung
    /// disk.
    pub fn flush_timeout(&self, limit: Duration) -> Result<(), JournalError> {
        match self.inner.journal.get() {
            Some(writer) => writer.flush(Some(limit)),
            None => Ok(()),
        }
    }
}

/// Reads a journal directory without a meter, as replay does at start: files oldest first, each call record
/// to `each` (tasks and tool executions too: [`read_entries`]); a line being written by a live process is
/// waited for briefly (its writer's lock), and a torn, corrupt or newer-schema line is skipped and reported,
/// never fatal. Only listing the directory can fail. `each` runs on the calling thread, in the files' order,
/// while a `tokenmeter-replay` thread decodes the lines ahead of it (on the calling thread alone where a
/// thread cannot be started).
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("tokenmeter-read-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let mut cost = tokenmeter::Money::ZERO;
/// let report = tokenmeter::journal::read(&dir, |call| cost += call.cost_or_zero())?;
/// println!("{} records in {} files, {} lines skipped: {cost}", report.records, report.files, report.skipped_lines);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn read(dir: impl AsRef<Path>, mut each: impl FnMut(CallRecord)) -> std::io::Result<ReplayReport> {
    replay::replay(dir.as_ref(), |line| {
        if let Replayed::Call(record) = line {
            each(record);
        }
    })
}

/// One record read back from the journal by [`read_entries`].
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum JournalEntry {
    /// A call.
    Call(CallRecord),
    /// A task span that closed.
    Task(TaskRecord),
    /// A tool execution.
    Tool(ToolRecord),
}

/// Reads every record in `dir` like [`read`], tasks and tool executions included, in file order (in a day file a
/// task's line follows its calls'; each line is filed under its record's UTC day, so a task that started
/// before midnight comes before the calls it made after it). Budget alert lines are counted in the report, not
/// handed over.
pub fn read_entries(dir: impl AsRef<Path>, mut each: impl FnMut(JournalEntry)) -> std::io::Result<ReplayReport> {
    replay::replay(dir.as_ref(), |line| match line {
        Replayed::Call(r) => each(JournalEntry::Call(r)),
        Replayed::Task(r) => each(JournalEntry::Task(r)),
        Replayed::Tool(r) => each(JournalEntry::Tool(r)),
        Replayed::Alert(_) => {}
    })
}

/// Reads like [`read_entries`], but only the files of UTC day `since` and later (each record is filed under the
/// UTC day of its timestamp, so the records of earlier days are all in files left unread). For readers that
/// want a recent window of a long journal: a live view re-reading it, say.
pub fn read_entries_since(
    dir: impl AsRef<Path>,
    since: chrono::NaiveDate,
    mut each: impl FnMut(JournalEntry),
) -> std::io::Result<ReplayReport> {
    replay::replay_since(dir.as_ref(), Some(since), |line| match line {
        Replayed::Call(r) => each(JournalEntry::Call(r)),
        Replayed::Task(r) => each(JournalEntry::Task(r)),
        Replayed::Tool(r) => each(JournalEntry::Tool(r)),
        Replayed::Alert(_) => {}
    })
}

/// [`ReplayReport::AHEAD_OF_CLOCK_LIMIT`] in nanoseconds.
const AHEAD_LIMIT_NANOS: i64 = ReplayReport::AHEAD_OF_CLOCK_LIMIT.as_nanos() as i64;

/// Opens the journal for a just-built meter: applies retention, replays the files into the meter, then starts
/// the writer. With `read_only_fallback` (`build`, which runs on without a journal it cannot open), a directory
/// that can be read but not written to (a read-only mount, no inodes left, another user's) is still replayed,
/// so that budgets keep their spend, before the error is returned: nothing new is journaled.
pub(crate) fn attach(
    meter: &TokenMeter,
    mut config: JournalConfig,
    read_only_fallback: bool,
) -> Result<(), JournalError> {
    // Resolved once: the writer opens day files for as long as the meter lives, and an application that
    // changes its working directory later must not move the journal (nor have retention clean another one).
    if !config.dir.as_os_str().is_empty()
        && let Ok(absolute) = std::path::absolute(&config.dir)
    {
        config.dir = absolute;
    }
    let dir = config.dir.clone();
    let io = |source| JournalError::Io { path: dir.clone(), source };
    if dir.as_os_str().is_empty() {
        // Most likely an unset setting; it would journal into the working directory.
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path is empty (an unset setting?); give \".\" for the working directory",
        )));
    }
    if dir.is_file() {
        // `create_dir_all` would say "File exists".
        return Err(io(std::io::Error::new(std::io::ErrorKind::NotADirectory, "a file is there, not a directory")));
    }
    if let Err(e) = writable(&dir) {
        if read_only_fallback && config.replay && dir.is_dir() {
            let now = meter.inner.clock.now();
            // From the files retention would keep for their age (it cannot delete the older ones here), as a
            // restart that could write would: a rolling budget would count the older ones' spend too.
            let since = files::oldest_kept_by_age(&dir, now, config.max_age).unwrap_or(None);
            let report = match replay_into(meter, &dir, now, since) {
                Ok(report) => report,
                // The error that stopped the journal is the one to return; this one is said.
                Err(replay) => {
                    tracing::error!(target: "tokenmeter::journal", error = %replay, "journal replay failed");
                    crate::meter::unheard(|| format!("journal replay failed: {replay}"));
                    return Err(io(e));
                }
            };
            tracing::warn!(
                target: "tokenmeter::journal",
                dir = %dir.display(),
                error = %e,
                records = report.records,
                "journal directory cannot be written to: its records were replayed (budgets keep their spend), but \
                 nothing new is journaled"
            );
            crate::meter::unheard(|| {
                format!(
                    "journal directory {} cannot be written to ({e}): replayed {} records, nothing new is journaled",
                    dir.display(),
                    report.records
                )
            });
            meter.inner.budgets.mark_owed();
        }
        return Err(io(e));
    }
    let now = meter.inner.clock.now();
    let retention = files::enforce_retention(&dir, now, config.max_age, config.max_total_bytes).map_err(io)?;
    warn_size_deletions(config.budget_reach.as_ref(), now.date_naive(), &retention.by_size, true);
    retention.log(config.max_age, config.max_total_bytes);
    let files_removed = retention.removed;
    let report = if config.replay { replay_into(meter, &dir, now, None)? } else { ReplayReport::default() };
    let replayed = config.replay;
    // The writer's rounds measure ages to at most the time this build's round measured them to (the clock's, or
    // the end of the newest file's day when that is earlier) plus the time elapsed since. Not the clock's: a
    // clock months ahead at boot made the first call's day file the newest, and the first hourly round expired
    // every older file. After a journal sat idle, pruning runs that much behind (until the next restart): a
    // delay, never a loss.
    let writer = JournalWriter::start(config, meter.inner.clock.clone(), report, files_removed, retention.as_of)?;
    // `attach` runs once, inside `build`; a second writer would only be dropped.
    let _ = meter.inner.journal.set(writer);
    // Thresholds the replayed spend reached that no line marked delivered fire with the first call, budget check
    // or status read (not here: no subscriber is listening yet, usually), and are journaled then.
    if replayed {
        meter.inner.budgets.mark_owed();
    }
    Ok(())
}

/// Creates the directory if need be, and surfaces a read-only or foreign directory now rather than on the first
/// write, and one whose files cannot be locked (NFS without its lock service): every append takes the day file's
/// lock.
fn writable(dir: &std::path::Path) -> std::io::Result<()> {
    writer::create_dir_synced(dir)?;
    // A new file, never one already there: `File::create` followed a link planted under the probe's name (a
    // guessable `.tokenmeter-probe-<pid>`) and truncated its target. Named by the process, the time and a count,
    // so that two meters (two processes of one pid, in two containers sharing the directory) do not meet.
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let probe = dir.join(format!(".tokenmeter-probe-{}-{nanos}-{n}", std::process::id()));
    let created = std::fs::OpenOptions::new().write(true).create_new(true).open(&probe);
    let made = created.is_ok();
    let probed = created.and_then(|file| match file.try_lock() {
        Ok(()) | Err(std::fs::TryLockError::WouldBlock) => Ok(()),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(std::io::Error::new(e.kind(), format!("its files cannot be locked ({e}), and every append locks one")))
        }
    });
    if made {
        let _ = std::fs::remove_file(&probe);
    }
    probed
}

/// Replays the journal's files (of `since` and later UTC days) into a just-built meter, leaving out records
/// stamped more than [`ReplayReport::AHEAD_OF_CLOCK_LIMIT`] after `now`, and warns of what it skipped.
fn replay_into(
    meter: &TokenMeter,
    dir: &std::path::Path,
    now: DateTime<Utc>,
    since: Option<chrono::NaiveDate>,
) -> Result<ReplayReport, JournalError> {
    let io = |source| JournalError::Io { path: dir.to_path_buf(), source };
    let report = {
        // Alerts are marked once every call is back: a budget's period is the one its last call put it in.
        let mut alerts = Vec::new();
        let limit = now.timestamp_nanos_opt().unwrap_or(i64::MAX).saturating_add(AHEAD_LIMIT_NANOS);
        let (mut ahead, mut latest_ahead) = (0u64, i64::MIN);
        let mut keep = |ended: i64| {
            if ended > limit {
                ahead += 1;
                latest_ahead = latest_ahead.max(ended);
            }
            ended <= limit
        };
        let mut report = replay::replay_since(dir, since, |line| match line {
            Replayed::Call(mut record) => {
                if keep(record.ended_at_unix_nanos()) {
                    meter.inner.replay_call(&mut record);
                }
            }
            Replayed::Task(record) => {
                if keep(crate::record::ended_at_nanos(record.timestamp, record.duration_us)) {
                    meter.inner.replay_task(&record);
                }
            }
            Replayed::Tool(record) => {
                if keep(crate::record::ended_at_nanos(record.timestamp, record.duration_us)) {
                    meter.inner.replay_tool(&record);
                }
            }
            Replayed::Alert(mark) => alerts.push(mark),
        })
        .map_err(io)?;
        meter.inner.budgets.replay_alerts(&alerts, now);
        report.ahead_of_clock = ahead;
        report.latest_ahead = (ahead > 0).then(|| DateTime::from_timestamp_nanos(latest_ahead));
        report
    };
    if report.skipped_lines > 0 {
        let first = report.skipped.first();
        tracing::warn!(
            target: "tokenmeter::journal",
            dir = %dir.display(),
            skipped_lines = report.skipped_lines,
            unreadable_files = report.unreadable_files,
            first_path = first.map(|s| s.path.display().to_string()),
            first_line = first.map(|s| s.line),
            first_reason = first.map(|s| format!("{:?}", s.reason)),
            "journal replay skipped unreadable lines or files"
        );
        crate::meter::unheard(|| {
            // A file that could not be read is one of the skipped lines, at line 0: said apart.
            let lines = report.skipped_lines - report.unreadable_files.min(report.skipped_lines);
            let what: Vec<String> = [(lines, "line"), (report.unreadable_files, "file")]
                .into_iter()
                .filter(|(n, _)| *n > 0)
                .map(|(n, what)| format!("{n} unreadable {what}{}", if n == 1 { "" } else { "s" }))
                .collect();
            format!("journal replay skipped {} in {}", what.join(" and "), dir.display())
        });
    }
    if let Some(latest) = report.latest_ahead {
        tracing::warn!(
            target: "tokenmeter::journal",
            dir = %dir.display(),
            records = report.ahead_of_clock,
            latest = %latest.to_rfc3339(),
            now = %now.to_rfc3339(),
            "journal replay left out records stamped more than an hour after the clock: either this clock is \
             behind (check the system time; they count again at the first start with it right), or a clock that \
             ran ahead wrote them (in the day files dated after today)"
        );
        crate::meter::unheard(|| {
            format!(
                "journal replay left out {} records stamped after the clock (the latest {}) in {}",
                report.ahead_of_clock,
                latest.to_rfc3339(),
                dir.display()
            )
        });
    }
    Ok(report)
}
