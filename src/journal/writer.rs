//! The journal's writer thread and the recording side of its queue.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use parking_lot::Mutex;

use super::line::QueuedCall;
use super::{FsyncPolicy, JournalConfig, JournalError, JournalStats, ReplayReport, SCHEMA_VERSION, files};
use crate::budget::AlertMark;
use crate::clock::Clock;
use crate::record::{CallRecord, TaskRecord, ToolRecord};

/// Records taken off the queue per batch at most.
const MAX_BATCH: usize = 1024;
/// Files kept open at once (today's and yesterday's, usually).
const MAX_OPEN_FILES: usize = 2;
/// At most one warning of failing writes a minute after the first (the counters keep every failure).
const WARN_EVERY: Duration = Duration::from_secs(60);
/// The writer's sleep after a round that found records, so that the next round finds a batch.
const IDLE_MIN: Duration = Duration::from_millis(2);
/// The writer's longest sleep: while the queue stays empty the sleep doubles from `IDLE_MIN` up to this, so a
/// record waits at most this long before it is written (a queue half full wakes the writer at once).
const IDLE_MAX: Duration = Duration::from_millis(100);
/// After a round that wrote records, the writer rests this many times as long as the round's work took (the thread's
/// CPU time taking the records, encoding them and in `write`, not the sync; waiting on the disk is not work), whatever
/// the recording side's wake-ups say (it does not rest while a flush waits or the meter drops): under overload it takes
/// at most a quarter of one core, and the application the rest. At real rates a round takes microseconds and so does
/// its rest. It caps what the journal keeps up with at about a quarter of what the writer could do flat out (~400,000
/// records a second here), where the overload past that is dropped and counted instead of taken from the application's
/// threads.
const REST_PER_WORK: u32 = 3;
/// The longest rest where the work is measured in wall time (systems without a per-thread CPU clock): a `write`
/// blocked on a slow disk would otherwise buy a rest three times as long.
const MAX_WALL_REST: Duration = Duration::from_millis(20);
/// The longest rest where the work is the thread's CPU time (a round that scanned a large directory for
/// retention, say).
const MAX_CPU_REST: Duration = Duration::from_millis(100);
/// Past half full, the queue wakes the writer once every this many sends (and drops).
const WAKE_EVERY: u64 = 256;
/// The lock timeout for a day file whose lock was held past the whole timeout, until it is taken again.
const STUCK_LOCK_TIMEOUT: Duration = Duration::from_millis(100);
/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3_600);
/// The writer thread's nice value for [`WriterPriority::Background`](super::WriterPriority::Background): the
/// lowest.
#[cfg(target_os = "linux")]
const BACKGROUND_NICE: i32 = 19;

// Boxing the record would cost an allocation per call on the recording thread; flushes are rare.
#[allow(clippy::large_enum_variant)]
enum Command {
    Call(QueuedCall),
    Task(TaskRecord),
    Tool(ToolRecord),
    Alert(AlertMark),
    Flush(Reply),
}

/// One flush's answer, from the writer to the flushing thread. A flush with a time limit that gives up marks it
/// abandoned under the lock the writer answers under, so the writer knows whether its answer was heard: an error
/// nobody heard goes to the next flush.
#[derive(Default)]
struct ReplySlot {
    state: Mutex<ReplyState>,
    ready: parking_lot::Condvar,
}

#[derive(Default)]
struct ReplyState {
    answer: Option<Result<(), String>>,
    /// The flush stopped waiting.
    abandoned: bool,
    /// The writer dropped the request unanswered (its thread ended).
    unanswered: bool,
}

/// Why a flush got no answer.
enum NoAnswer {
    TimedOut,
    Stopped,
}

impl ReplySlot {
    /// Waits for the answer, until `deadline` if there is one (then the flush is abandoned).
    fn wait(&self, deadline: Option<Instant>) -> Result<Result<(), String>, NoAnswer> {
        let mut state = self.state.lock();
        loop {
            if let Some(answer) = state.answer.take() {
                return Ok(answer);
            }
            if state.unanswered {
                return Err(NoAnswer::Stopped);
            }
            match deadline {
                None => self.ready.wait(&mut state),
                Some(deadline) => {
                    if self.ready.wait_until(&mut state, deadline).timed_out() {
                        if let Some(answer) = state.answer.take() {
                            return Ok(answer);
                        }
                        state.abandoned = true;
                        return Err(NoAnswer::TimedOut);
                    }
                }
            }
        }
    }
}

/// The writer's end of a [`ReplySlot`]; dropped unanswered, it tells the flush the writer is gone.
struct Reply(Arc<ReplySlot>);

impl Reply {
    /// Answers; returns whether the flush was still waiting for it.
    fn answer(&self, outcome: Result<(), String>) -> bool {
        let mut state = self.0.state.lock();
        if state.abandoned {
            return false;
        }
        state.answer = Some(outcome);
        self.0.ready.notify_all();
        true
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        if state.answer.is_none() {
            state.unanswered = true;
            self.0.ready.notify_all();
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    enqueued: AtomicU64,
    /// Records the writer has taken off the queue (updated every 64 records and at the end of a round).
    taken: AtomicU64,
    dropped: AtomicU64,
    written: AtomicU64,
    synced: AtomicU64,
    write_errors: AtomicU64,
    failed_records: AtomicU64,
    files_removed: AtomicU64,
    /// Alert lines dropped because the queue was full.
    alerts_dropped: AtomicU64,
    /// Times the recording side (or a flush, or drop) unparked the writer.
    wakes: AtomicU64,
    /// Flushes waiting for their answer: while any does, the writer does not rest.
    pending_flushes: AtomicUsize,
    /// The meter is dropping the writer: it does not rest either.
    closing: AtomicBool,
    /// Rests that slept, for tests.
    #[cfg(test)]
    rests: AtomicU64,
    /// Times the journal directory was synced (once after each day file created).
    dir_syncs: AtomicU64,
    /// Alert lines a full queue dropped (a part of `alerts_dropped`, which also counts failed writes).
    alerts_queue_full: AtomicU64,
    /// `dropped + alerts_queue_full` as the last flush reported it.
    dropped_reported: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// The writer thread's id, for tests to read its priority from `/proc`.
    #[cfg(all(test, target_os = "linux"))]
    tid: std::sync::atomic::AtomicI32,
}

/// The meter's end of the journal.
pub(crate) struct JournalWriter {
    tx: Option<SyncSender<Command>>,
    thread: Option<JoinHandle<()>>,
    /// Disconnected when the writer thread ends (however it ends): the drop waits on it with a time limit.
    /// (A `Mutex` only to make the writer `Sync`: a `Receiver` is not; the drop takes it with `&mut`.)
    ended: Mutex<Option<Receiver<()>>>,
    /// How long the drop waits for the thread ([`super::drop_wait`]).
    drop_wait: Duration,
    /// Records the queue holds.
    capacity: u64,
    counters: Arc<Counters>,
    replay: ReplayReport,
    /// The directory (absolute, as the build resolved it).
    dir: std::path::PathBuf,
}

impl std::fmt::Debug for JournalWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalWriter").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl JournalWriter {
    pub(super) fn start(
        config: JournalConfig,
        clock: Arc<dyn Clock>,
        replay: ReplayReport,
        files_removed: u64,
        retention_as_of: DateTime<Utc>,
    ) -> Result<Self, JournalError> {
        let config_capacity = config.queue_capacity;
        let (tx, rx) = sync_channel(config_capacity);
        let counters = Arc::new(Counters::default());
        counters.files_removed.store(files_removed, Ordering::Relaxed);
        let drop_wait = super::drop_wait(config.lock_timeout);
        let dir = config.dir.clone();
        let mut thread = WriterThread::new(config, clock, counters.clone());
        thread.retention_base = (retention_as_of, Instant::now());
        let (ended_tx, ended) = sync_channel::<()>(0);
        let handle = std::thread::Builder::new()
            .name("tokenmeter-journal".into())
            .spawn(move || {
                // Dropped when the thread ends (also by a panic), after the writer and its files: declared first.
                let _ended = ended_tx;
                let mut thread = thread;
                thread.run(rx)
            })
            .map_err(JournalError::Spawn)?;
        Ok(JournalWriter {
            tx: Some(tx),
            thread: Some(handle),
            ended: Mutex::new(Some(ended)),
            drop_wait,
            capacity: config_capacity as u64,
            counters,
            replay,
            dir,
        })
    }

    /// The directory it writes.
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Queues a copy of `record` (see [`QueuedCall`]); never blocks. A full queue drops it (counted).
    pub(crate) fn append(&self, record: &CallRecord) {
        self.send_record(|| Command::Call(QueuedCall::new(record)));
    }

    /// Sends the command `make` builds for one record, unless the queue is full (then drops it, counted).
    #[inline(always)]
    fn send_record(&self, make: impl FnOnce() -> Command) {
        let Some(tx) = &self.tx else { return };
        let c = &self.counters;
        // Records queued and not yet taken: an upper bound, since the writer publishes what it took every 64
        // records and at the end of each round.
        let taken = c.taken.load(Ordering::Relaxed);
        let queued = c.enqueued.load(Ordering::Relaxed).saturating_sub(taken);
        if queued >= self.capacity {
            // Full: drop without building the copy (under overload, dropping is what the recording thread does
            // most, so it must be cheap).
            if c.dropped.fetch_add(1, Ordering::Relaxed).is_multiple_of(WAKE_EVERY) {
                self.wake();
            }
            return;
        }
        // Counted before the send (and taken back if it fails): counted after, the writer could write the record
        // first, and `journal_stats()` read then showed more records written than queued.
        let queued = (c.enqueued.fetch_add(1, Ordering::Relaxed) + 1).saturating_sub(taken);
        match tx.try_send(make()) {
            Ok(()) => {
                // Wake the writer as the queue passes half full, then every `WAKE_EVERY` records while it stays
                // above (not on every send: the writer's parker is a cache line every recording thread writes).
                let half = self.capacity / 2;
                if queued > half && (queued - half) % WAKE_EVERY == 1 {
                    self.wake();
                }
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                c.enqueued.fetch_sub(1, Ordering::Relaxed);
                c.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Queues a task record (a clone: tasks close far less often than calls); never blocks. A full queue drops
    /// it (counted with the calls).
    pub(crate) fn append_task(&self, record: &TaskRecord) {
        self.send_record(|| Command::Task(record.clone()));
    }

    /// Queues a tool record, as [`append_task`](Self::append_task).
    pub(crate) fn append_tool(&self, record: &ToolRecord) {
        self.send_record(|| Command::Tool(record.clone()));
    }

    /// Queues a line saying a budget alert was delivered; never blocks. A full queue drops it, and a restarted
    /// meter delivers that alert again (at least once, never lost).
    pub(crate) fn append_alert(&self, mark: AlertMark) {
        if let Some(tx) = &self.tx
            && tx.try_send(Command::Alert(mark)).is_err()
        {
            self.counters.alerts_dropped.fetch_add(1, Ordering::Relaxed);
            self.counters.alerts_queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits for the writer to write and sync everything queued before this call: for ever with `limit` `None`,
    /// else at most `limit` ([`JournalError::TimedOut`]; the flush then still happens, unobserved).
    pub(super) fn flush(&self, limit: Option<Duration>) -> Result<(), JournalError> {
        if self.on_writer_thread() {
            return Err(JournalError::OnWriterThread);
        }
        // A limit past what an `Instant` holds (`Duration::MAX`) is no limit.
        let deadline = limit.and_then(|limit| Instant::now().checked_add(limit));
        let timed_out = || JournalError::TimedOut { waited: limit.unwrap_or_default() };
        // Drops are counted when they happen, on the recording thread: what was dropped before this call, and what
        // flushes had reported before it (another flush answered in the same round must not take this one's report).
        let reported = self.counters.dropped_reported.load(Ordering::Relaxed);
        let dropped = self.queue_full_drops();
        let tx = self.tx.as_ref().ok_or(JournalError::Stopped)?;
        let slot = Arc::new(ReplySlot::default());
        // Counted before the send: a full queue blocks the send until the writer takes from it, and the writer
        // must not rest meanwhile. The writer counts it down when it answers (or finds the reply unwanted).
        self.counters.pending_flushes.fetch_add(1, Ordering::SeqCst);
        self.wake();
        let sent = match deadline {
            None => tx.send(Command::Flush(Reply(slot.clone()))).map_err(|_| JournalError::Stopped),
            Some(deadline) => match send_before(tx, Command::Flush(Reply(slot.clone())), deadline, || self.wake()) {
                Ok(()) => Ok(()),
                Err(true) => Err(timed_out()),
                Err(false) => Err(JournalError::Stopped),
            },
        };
        if let Err(e) = sent {
            self.counters.pending_flushes.fetch_sub(1, Ordering::SeqCst);
            return Err(e);
        }
        self.wake();
        let reply = slot.wait(deadline).map_err(|e| match e {
            NoAnswer::TimedOut => timed_out(),
            NoAnswer::Stopped => JournalError::Stopped,
        });
        match reply? {
            Ok(()) => self.report_drops(reported, dropped),
            Err(message) => Err(JournalError::Write(message)),
        }
    }

    /// Whether the calling thread is this journal's writer (a subscriber there reacting to its warning): a flush or
    /// join there would wait for itself. Another meter's writer thread may flush this one.
    fn on_writer_thread(&self) -> bool {
        self.thread.as_ref().is_some_and(|h| h.thread().id() == std::thread::current().id())
    }

    /// Records and alert lines a full queue dropped, so far.
    fn queue_full_drops(&self) -> u64 {
        let c = &self.counters;
        c.dropped.load(Ordering::Relaxed) + c.alerts_queue_full.load(Ordering::Relaxed)
    }

    /// Drops up to `dropped` that no flush had reported when this one began (`reported`): "everything recorded so
    /// far is on disk" would not be true. Two flushes at once both say so (a shutdown's beside a periodic one:
    /// reported to the first answered only, the shutdown returned `Ok`). (Lines lost to a failed write are that
    /// flush's `Write` error, not counted here.)
    fn report_drops(&self, reported: u64, dropped: u64) -> Result<(), JournalError> {
        self.counters.dropped_reported.fetch_max(dropped, Ordering::Relaxed);
        match dropped.checked_sub(reported) {
            Some(records @ 1..) => Err(JournalError::Dropped { records }),
            _ => Ok(()),
        }
    }

    fn wake(&self) {
        self.counters.wakes.fetch_add(1, Ordering::Relaxed);
        if let Some(handle) = &self.thread {
            handle.thread().unpark();
        }
    }

    /// Records lost (queue full) and lost to failed writes, once the writer has written what it holds: it is
    /// dropped first (which waits for that, within its limit).
    #[cfg(feature = "otlp")]
    /// Records dropped (queue full), records lost to failed writes, and budget alert lines lost, once the
    /// writer has stopped.
    pub(crate) fn final_losses(self) -> (u64, u64, u64) {
        let counters = Arc::clone(&self.counters);
        drop(self);
        (
            counters.dropped.load(Ordering::Relaxed),
            counters.failed_records.load(Ordering::Relaxed),
            counters.alerts_dropped.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn stats(&self) -> JournalStats {
        let c = &self.counters;
        JournalStats {
            enqueued: c.enqueued.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            written: c.written.load(Ordering::Relaxed),
            synced: c.synced.load(Ordering::Relaxed),
            write_errors: c.write_errors.load(Ordering::Relaxed),
            failed_records: c.failed_records.load(Ordering::Relaxed),
            files_removed: c.files_removed.load(Ordering::Relaxed),
            alerts_dropped: c.alerts_dropped.load(Ordering::Relaxed),
            last_error: c.last_error.lock().clone(),
            replay: self.replay.clone(),
        }
    }
}

impl Drop for JournalWriter {
    /// Closes the queue and waits for the writer to write and sync what it holds, at most [`DROP_WAIT`]
    /// (`super::DROP_WAIT`); past that the thread is left to finish on its own.
    fn drop(&mut self) {
        self.counters.closing.store(true, Ordering::SeqCst);
        drop(self.tx.take());
        self.wake();
        // On the writer thread itself (a subscriber there dropping the last handle) a join would wait for ever;
        // the closed queue ends the thread once this returns. Elsewhere the wait has a limit: the thread may
        // be stuck on a hung disk, or waiting, in its own warning, for a lock the dropping thread holds (a
        // `reload` layer's, while it replaces this meter's layer).
        let on_writer = self.on_writer_thread();
        if let (Some(handle), Some(ended)) = (self.thread.take(), self.ended.get_mut().take())
            && !on_writer
        {
            match ended.recv_timeout(self.drop_wait) {
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = handle.join();
                }
                _ => eprintln!(
                    "tokenmeter: the journal writer did not finish within {:?} of the meter's drop (a slow or hung \
                     disk, another process holding a journal file's lock, or the meter's last handle dropped inside \
                     a `reload` swap); what it still holds is written only if the process lives on. Call \
                     TokenMeter::shutdown() before the drop to wait and see the outcome",
                    self.drop_wait
                ),
            }
        }
    }
}

/// Sends `command` on the bounded queue, retrying while it is full, until `deadline`; `wake` nudges the writer
/// (a full queue is the writer's to empty). `Err(true)`: still full at the deadline; `Err(false)`: the writer
/// is gone.
fn send_before(tx: &SyncSender<Command>, mut command: Command, deadline: Instant, wake: impl Fn()) -> Result<(), bool> {
    let mut pause = Duration::from_micros(50);
    loop {
        match tx.try_send(command) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                command = back;
                wake();
                std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Err(TrySendError::Full(_)) => return Err(true),
            Err(TrySendError::Disconnected(_)) => return Err(false),
        }
    }
}

/// The CPU time the calling thread has used (user and system), where the system keeps it: Linux (`None` if the
/// call is refused, a seccomp filter say: the writer then measures wall time).
fn thread_cpu_time() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        use rustix::time::{ClockId, DynamicClockId, clock_gettime_dynamic};
        let t = clock_gettime_dynamic(DynamicClockId::Known(ClockId::ThreadCPUTime)).ok()?;
        Some(Duration::new(u64::try_from(t.tv_sec).ok()?, u32::try_from(t.tv_nsec).ok()?))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// A flush is waiting, or the meter is dropping the writer: no rest.
fn wanted(counters: &Counters) -> bool {
    counters.pending_flushes.load(Ordering::SeqCst) > 0 || counters.closing.load(Ordering::SeqCst)
}

/// Sleeps `rest` on the writer thread, unless a flush or the meter's drop wants the writer (the recording
/// side's wake-ups do not cut it short: see [`REST_PER_WORK`]).
fn rest(counters: &Counters, rest: Duration) {
    let until = Instant::now() + rest;
    #[cfg(test)]
    let mut counted = false;
    while !wanted(counters) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        #[cfg(test)]
        if !std::mem::replace(&mut counted, true) {
            counters.rests.fetch_add(1, Ordering::Relaxed);
        }
        std::thread::park_timeout(left);
    }
}

/// Lines of one UTC day waiting to be written.
struct DayBatch {
    day: NaiveDate,
    bytes: Vec<u8>,
    records: u64,
    /// Budget alert lines (not records).
    alerts: u64,
    /// The first and last of its lines in the order the writer took them ([`WriterThread::taken`]): which of a
    /// round's flushes a failed append concerns.
    first: u64,
    last: u64,
}

impl WriterThread {
    fn new(config: JournalConfig, clock: Arc<dyn Clock>, counters: Arc<Counters>) -> Self {
        let now = clock.now();
        WriterThread {
            dir_mode: dir_mode(&config.dir),
            dir: config.dir.clone(),
            config,
            clock,
            counters,
            open: Vec::new(),
            batch: Vec::new(),
            waiters: Vec::new(),
            taken: 0,
            round_failures: Vec::new(),
            unsynced: 0,
            closed_sync_error: None,
            dir_unsynced: false,
            dirty: false,
            stuck: Vec::new(),
            last_warning: None,
            failed_since_ok: 0,
            unflushed_error: None,
            last_sync: Instant::now(),
            last_retention: Instant::now(),
            retention_base: (now, Instant::now()),
        }
    }
}

struct WriterThread {
    dir: PathBuf,
    /// The directory's permission bits when the writer started: a directory deleted while running is made again
    /// with them, not with the umask's (a journal kept in a `0700` directory was recreated readable by all).
    dir_mode: Option<u32>,
    config: JournalConfig,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
    open: Vec<(NaiveDate, File)>,
    batch: Vec<DayBatch>,
    /// The flushes waiting, each with its place in the order of what was taken ([`taken`](Self::taken)).
    waiters: Vec<(Reply, u64)>,
    /// Commands taken so far (lines and flushes), in order.
    taken: u64,
    /// This round's failed appends: the first and last of their lines taken, and the error. A flush is answered
    /// with one only when lines queued before it failed; lines queued after the round's last flush failing are
    /// the next flush's error. (One error for the round went to its flushes: a flush whose own lines were written
    /// got another thread's error, and that thread's next flush, whose line was lost, got `Ok`.)
    round_failures: Vec<(u64, u64, String)>,
    /// Records written since the last sync.
    unsynced: u64,
    /// A sync that failed when a file was closed (to make room, or after a failed write): the sync at the end
    /// of that round reports it, so the records written since the last one are not counted as synced.
    closed_sync_error: Option<std::io::Error>,
    /// A day file was created since the last sync: its directory entry is synced with the next sync (syncing
    /// the file does not make the entry durable, so a crash could lose the whole file).
    dir_unsynced: bool,
    dirty: bool,
    /// Day files whose lock was still held by another process when the lock timeout ran out: until a lock on
    /// one is taken again, it gets [`STUCK_LOCK_TIMEOUT`] instead, so that a queue of many rounds (at exit, or
    /// a flush) is not held the full timeout per round.
    stuck: Vec<NaiveDate>,
    /// When the last warning was logged: on a disk that stays full, rounds fail hundreds of times a second,
    /// and a warning each would flood the log (often on that same disk); one a minute says it goes on.
    last_warning: Option<Instant>,
    /// Records whose append failed since the last append that succeeded: the next that does says writes work again.
    failed_since_ok: u64,
    /// The first error since the last flush was answered, for the next flush's waiters: a round that fails
    /// without a flush waiting must still fail the next flush, whose records it lost.
    unflushed_error: Option<String>,
    last_sync: Instant,
    last_retention: Instant,
    /// The time the build's retention round measured ages to (the clock's, or the end of the newest file's day
    /// when earlier), and when: a later round measures them to no later than that time plus the time since. A
    /// wall clock that jumps months ahead (a restored VM, a bad clock at boot) stamps the next call months ahead,
    /// and its day file became the newest, to which ages ran: every older file expired within the hour, and with
    /// them the spend the budgets replay. After a journal sat idle, pruning runs that much behind until the next
    /// restart (files written meanwhile count as today's, which neither age nor size removes).
    retention_base: (DateTime<Utc>, Instant),
}

impl WriterThread {
    /// Drains the queue in rounds. Between rounds the writer sleeps (parked) instead of blocking on the queue:
    /// a receiver blocked on a channel makes every send a futex wake-up on the recording thread, and a writer
    /// woken per record writes per record (six system calls each). Sleeping lets records gather into batches;
    /// the recording side unparks the writer only when the queue is half full, and `flush` and drop unpark it
    /// at once.
    fn run(&mut self, rx: Receiver<Command>) {
        self.set_priority();
        let mut idle = IDLE_MIN;
        loop {
            let (started, cpu_at_start) = (Instant::now(), thread_cpu_time());
            let (mut taken, mut records, mut counted) = (0, 0, 0);
            let mut disconnected = false;
            while taken < MAX_BATCH {
                match rx.try_recv() {
                    Ok(command) => {
                        records += u64::from(self.take(command));
                        taken += 1;
                        // The recording side sees the queue's fill from this count: keep it close.
                        if records - counted >= 64 {
                            self.counters.taken.fetch_add(records - counted, Ordering::Relaxed);
                            counted = records;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                }
            }
            self.counters.taken.fetch_add(records - counted, Ordering::Relaxed);
            self.write_batch();
            // The round's work, up to the sync (a sync once a second can take milliseconds of CPU writing back a
            // second of pages: counted, it would rest the writer long enough to drop records at 100,000 calls a
            // second): the thread's CPU time where the system keeps it (waiting on the disk in `write` takes no
            // CPU from anyone), else wall time.
            let (wall, cpu) = (started.elapsed(), thread_cpu_time());
            self.after_batch();
            if disconnected {
                break;
            }
            let rest_for = match (cpu_at_start, cpu) {
                (Some(start), Some(end)) => end.saturating_sub(start).saturating_mul(REST_PER_WORK).min(MAX_CPU_REST),
                _ => wall.saturating_mul(REST_PER_WORK).min(MAX_WALL_REST),
            };
            // A wake-up that came during the rest (the queue half full, a flush) was used up by it: the idle sleep
            // below must not wait it out.
            let wakes = self.counters.wakes.load(Ordering::Relaxed);
            if records > 0 {
                rest(&self.counters, rest_for);
            }
            let woken = wanted(&self.counters) || self.counters.wakes.load(Ordering::Relaxed) != wakes;
            match taken {
                0 => {
                    std::thread::park_timeout(idle.min(self.next_wakeup()));
                    idle = (idle * 2).min(IDLE_MAX);
                }
                MAX_BATCH => {}
                _ => {
                    idle = IDLE_MIN;
                    if !woken {
                        std::thread::park_timeout(IDLE_MIN.min(self.next_wakeup()));
                    }
                }
            }
        }
        self.write_batch();
        self.sync_all();
    }

    /// Lowers this thread's priority for [`Background`](super::WriterPriority::Background) (Linux: nice 19 for
    /// this thread alone). A system that refuses (a seccomp filter) leaves it at the application's, with one
    /// warning.
    fn set_priority(&self) {
        #[cfg(target_os = "linux")]
        {
            let tid = rustix::thread::gettid();
            #[cfg(test)]
            self.counters.tid.store(tid.as_raw_nonzero().get(), Ordering::Relaxed);
            if self.config.writer_priority == super::WriterPriority::Background
                && let Err(e) = rustix::process::setpriority_process(Some(tid), BACKGROUND_NICE)
            {
                tracing::warn!(
                    target: "tokenmeter::journal",
                    error = %e,
                    "cannot lower the journal writer's priority; it runs at the application's"
                );
            }
        }
    }

    fn next_wakeup(&self) -> Duration {
        let retention = RETENTION_EVERY.saturating_sub(self.last_retention.elapsed());
        match self.config.fsync {
            FsyncPolicy::Interval(every) if self.dirty => every.saturating_sub(self.last_sync.elapsed()).min(retention),
            _ => retention,
        }
    }

    /// Takes one command; true for a record.
    fn take(&mut self, command: Command) -> bool {
        // Lines and flushes in the order the writer takes them, which is the order they were queued in.
        self.taken += 1;
        match command {
            Command::Call(record) => {
                let batch = self.day_batch(record.day());
                record.write_json(SCHEMA_VERSION, &mut batch.bytes);
                batch.bytes.push(b'\n');
                batch.records += 1;
                true
            }
            Command::Task(record) => {
                if let Some(batch) = self.serde_line(record.timestamp.date_naive(), "task", &record) {
                    batch.records += 1;
                }
                true
            }
            Command::Tool(record) => {
                if let Some(batch) = self.serde_line(record.timestamp.date_naive(), "tool", &record) {
                    batch.records += 1;
                }
                true
            }
            Command::Alert(mark) => {
                if let Some(batch) = self.serde_line(mark.at.date_naive(), "budget_alert", &mark) {
                    batch.alerts += 1;
                }
                false
            }
            Command::Flush(reply) => {
                self.waiters.push((reply, self.taken));
                false
            }
        }
    }

    /// Adds the line `{"v":…,"<key>":value}` to day `day`'s batch (serde's JSON of `value`), and returns the
    /// batch for the caller to count the line in.
    fn serde_line<T: serde::Serialize>(&mut self, day: NaiveDate, key: &str, value: &T) -> Option<&mut DayBatch> {
        let batch = self.day_batch(day);
        let start = batch.bytes.len();
        // Writing into a `Vec` cannot fail; only serializing could.
        let _ = write!(batch.bytes, "{{\"v\":{SCHEMA_VERSION},\"{key}\":");
        if serde_json::to_writer(&mut batch.bytes, value).is_ok() {
            batch.bytes.extend_from_slice(b"}\n");
            Some(batch)
        } else {
            // Serializing these plain values cannot fail; were it to, the line is left out whole.
            batch.bytes.truncate(start);
            None
        }
    }

    /// The batch of lines for day file `day`.
    fn day_batch(&mut self, day: NaiveDate) -> &mut DayBatch {
        let idx = match self.batch.iter().position(|b| b.day == day) {
            Some(i) => i,
            None => {
                let first = self.taken;
                self.batch.push(DayBatch {
                    day,
                    bytes: Vec::with_capacity(4096),
                    records: 0,
                    alerts: 0,
                    first,
                    last: 0,
                });
                self.batch.len() - 1
            }
        };
        let batch = &mut self.batch[idx];
        batch.last = self.taken;
        batch
    }

    /// Writes the pending lines, one locked append per day file.
    fn write_batch(&mut self) {
        for batch in std::mem::take(&mut self.batch) {
            if batch.records == 0 && batch.alerts == 0 {
                continue;
            }
            let path = files::path_for(&self.dir, batch.day);
            let stuck = self.stuck.contains(&batch.day);
            let timeout =
                if stuck { self.config.lock_timeout.min(STUCK_LOCK_TIMEOUT) } else { self.config.lock_timeout };
            let mut result =
                self.file(batch.day, &path).and_then(|file| append_locked(file, &path, &batch.bytes, timeout));
            if result.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
                // The file was deleted (the journal cleared by hand, another process's retention) or moved away (a
                // rotation, `mv` to an archive): a new one, else every later record would go with it.
                self.close(batch.day);
                result = self.file(batch.day, &path).and_then(|file| append_locked(file, &path, &batch.bytes, timeout));
            }
            match result {
                Ok(()) => {
                    if stuck {
                        self.stuck.retain(|d| *d != batch.day);
                    }
                    self.counters.written.fetch_add(batch.records, Ordering::Relaxed);
                    self.unsynced += batch.records;
                    self.dirty = true;
                    if self.failed_since_ok > 0 {
                        // The failures were warned about (once a minute at most): that they ended is said once.
                        tracing::info!(
                            target: "tokenmeter::journal",
                            failed_records = self.failed_since_ok,
                            "journal writes work again"
                        );
                        self.failed_since_ok = 0;
                    }
                }
                Err(e) => {
                    if e.kind() == std::io::ErrorKind::TimedOut {
                        // The handle is fine: keep it (and what it holds unsynced), and wait less next time.
                        if !stuck {
                            self.stuck.push(batch.day);
                        }
                    } else {
                        // Reopen next time: the file may have been deleted or the handle broken.
                        self.close(batch.day);
                    }
                    self.counters.alerts_dropped.fetch_add(batch.alerts, Ordering::Relaxed);
                    let message = format!("cannot append to {}: {e}", path.display());
                    self.fail(batch.records, message.clone());
                    self.round_failures.push((batch.first, batch.last, message));
                }
            }
        }
    }

    /// Closes day file `day` if it is open, syncing it first: records written to it since the last sync are
    /// counted as synced by the next [`sync_all`](Self::sync_all), which no longer sees this handle.
    fn close(&mut self, day: NaiveDate) {
        if let Some(i) = self.open.iter().position(|(d, _)| *d == day) {
            let (_, f) = self.open.remove(i);
            if let Err(e) = f.sync_data() {
                self.closed_sync_error = Some(e);
            }
        }
    }

    /// Syncs per policy, answers flush waiters, runs retention when due.
    fn after_batch(&mut self) {
        let sync_due = match self.config.fsync {
            FsyncPolicy::EveryRecord => true,
            FsyncPolicy::Interval(every) => self.last_sync.elapsed() >= every,
            FsyncPolicy::Never => false,
        };
        // A close whose sync failed is reported in its own round: kept for a later sync, it failed that one, and
        // records a healthy round had synced were not acknowledged.
        if !self.waiters.is_empty() || (self.dirty && sync_due) || self.closed_sync_error.is_some() {
            self.sync_all();
        }
        let failures = std::mem::take(&mut self.round_failures);
        if !self.waiters.is_empty() {
            // An error from an earlier round, or a sync's (which covers every line), is every waiter's.
            let everyone = self.unflushed_error.take();
            // Counted down before they are answered: a flush that has returned is no longer pending (its
            // caller, reading the counter next, saw it still pending).
            self.counters.pending_flushes.fetch_sub(self.waiters.len(), Ordering::SeqCst);
            let (mut heard, mut last_heard, mut unheard_error) = (0, 0, None);
            for (waiter, at) in self.waiters.drain(..) {
                let own = failures.iter().find(|(first, _, _)| *first < at).map(|(_, _, e)| e);
                let outcome = match everyone.as_ref().or(own) {
                    Some(e) => Err(e.clone()),
                    None => Ok(()),
                };
                if waiter.answer(outcome.clone()) {
                    heard += 1;
                    last_heard = last_heard.max(at);
                } else if let Err(e) = outcome {
                    unheard_error.get_or_insert(e);
                }
            }
            // Lines queued after the last flush heard failed: the next flush's error. So does an error no waiter
            // heard (every one gave up: a flush with a time limit).
            let later = failures.iter().find(|(_, last, _)| *last > last_heard).map(|(_, _, e)| e.clone());
            self.unflushed_error = if heard == 0 { everyone.or(unheard_error).or(later) } else { later };
        } else if let Some((_, _, e)) = failures.into_iter().next() {
            self.unflushed_error.get_or_insert(e);
        }
        if self.last_retention.elapsed() >= RETENTION_EVERY {
            self.last_retention = Instant::now();
            self.retention_round();
        }
    }

    /// The time ages are measured to in a round: the clock's, at most the build's retention time plus the time
    /// elapsed since (a monotonic clock, which wall-clock steps do not move).
    fn retention_now(&self) -> DateTime<Utc> {
        let (base, since) = self.retention_base;
        let bound = chrono::Duration::from_std(since.elapsed()).ok().and_then(|d| base.checked_add_signed(d));
        let now = self.clock.now();
        bound.map_or(now, |bound| now.min(bound))
    }

    /// Deletes the files past the age or size limits.
    fn retention_round(&mut self) {
        let now = self.retention_now();
        match files::enforce_retention(&self.dir, now, self.config.max_age, self.config.max_total_bytes) {
            Ok(retention) => {
                self.counters.files_removed.fetch_add(retention.removed, Ordering::Relaxed);
                super::warn_size_deletions(
                    self.config.budget_reach.as_ref(),
                    now.date_naive(),
                    &retention.by_size,
                    false,
                );
                retention.log(self.config.max_age, self.config.max_total_bytes);
                // Deleted files may still be open here.
                self.open.retain(|(_, f)| f.metadata().is_ok_and(|m| m.nlink_or_one() > 0));
            }
            Err(e) => {
                tracing::warn!(target: "tokenmeter::journal", error = %e, "journal retention failed");
            }
        }
    }

    fn sync_all(&mut self) {
        self.last_sync = Instant::now();
        let mut failed = self.closed_sync_error.take();
        if !self.dirty && failed.is_none() {
            return;
        }
        for (_, file) in &self.open {
            if let Err(e) = file.sync_data() {
                failed = Some(e);
            }
        }
        if self.dir_unsynced {
            match sync_dir(&self.dir) {
                Ok(()) => {
                    self.dir_unsynced = false;
                    self.counters.dir_syncs.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            None => {
                self.counters.synced.fetch_add(self.unsynced, Ordering::Relaxed);
            }
            Some(e) => {
                // The data may or may not be on disk; it is not acknowledged.
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                self.note_error(format!("cannot sync the journal: {e}"));
            }
        }
        self.unsynced = 0;
        self.dirty = false;
    }

    fn file(&mut self, day: NaiveDate, path: &Path) -> std::io::Result<&File> {
        // A file deleted behind the writer's back (the journal cleared by hand, another process's retention) is
        // found under the append's lock ([`append_locked`]), which has `write_batch` close it and come back here.
        if let Some(i) = self.open.iter().position(|(d, _)| *d == day) {
            return Ok(&self.open[i].1);
        }
        let open = || {
            let mut options = OpenOptions::new();
            options.read(true).append(true).create(true);
            // Readable by its owner, and by those the directory lets read (a `0750` directory's files are `0640`):
            // a day file names users, sessions and tenants, and another user who could open it could also hold its
            // lock and keep this process from appending.
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, file_mode(dir_mode(&self.dir)));
            // Not through a symbolic link: one planted in a directory others can write would have records appended
            // to any file this process may write, in a file replay never reads (it lists regular files only).
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NOFOLLOW);
            options.open(path)
        };
        let file = match open() {
            // The directory itself was deleted (cleared by hand): make it again, as the meter did at start.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let gone = !self.dir.exists();
                create_dir_synced(&self.dir)?;
                if gone && let Err(e) = restore_dir_mode(&self.dir, self.dir_mode) {
                    // The records still go; the directory keeps the mode it was made with, which may let others in.
                    tracing::warn!(
                        target: "tokenmeter::journal",
                        dir = %self.dir.display(),
                        error = %e,
                        "the journal directory was made again, but not with the permissions it had"
                    );
                }
                open()?
            }
            other => other?,
        };
        if self.open.len() >= MAX_OPEN_FILES {
            // Records of an older day are rare (calls that started before midnight): close the oldest.
            // Anything written to it is synced before it is closed.
            if let Some(oldest) = self.open.iter().map(|(d, _)| *d).min() {
                self.close(oldest);
            }
        }
        // Also for a file another process created: it may not have synced the directory (a `Never` policy,
        // or it died), and records synced here would be lost with the file's name.
        self.dir_unsynced = true;
        self.open.push((day, file));
        Ok(&self.open[self.open.len() - 1].1)
    }

    /// Counts and logs a failed append; [`write_batch`](Self::write_batch) keeps it for the flushes it concerns.
    fn fail(&mut self, records: u64, message: String) {
        self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
        self.counters.failed_records.fetch_add(records, Ordering::Relaxed);
        self.failed_since_ok += records;
        self.log_error(message);
    }

    fn log_error(&mut self, message: String) {
        *self.counters.last_error.lock() = Some(message.clone());
        if warning_due(&mut self.last_warning, Instant::now()) {
            tracing::warn!(target: "tokenmeter::journal", error = %message, "journal write failed");
        }
    }

    /// A failure that concerns every line so far (a sync): the next flush's error.
    fn note_error(&mut self, message: String) {
        self.log_error(message.clone());
        self.unflushed_error.get_or_insert(message);
    }
}

/// Whether a failure at `now` is warned about: the first failure, then at most one each [`WARN_EVERY`] after the
/// last warning, whose time (`last_warning`) becomes `now` when it is.
fn warning_due(last_warning: &mut Option<Instant>, now: Instant) -> bool {
    if last_warning.is_none_or(|t| now.saturating_duration_since(t) >= WARN_EVERY) {
        *last_warning = Some(now);
        return true;
    }
    false
}

/// Appends whole lines under an exclusive advisory lock, ending a torn line a dead writer left first. A write
/// that fails part way (a full disk) is cut off again, so that a failed batch leaves none of
/// its lines behind: not a torn line, nor records counted as failed that a replay would bring back.
fn append_locked(file: &File, path: &Path, bytes: &[u8], timeout: Duration) -> std::io::Result<()> {
    lock_within(file, timeout)?;
    let mut before = None;
    let result = (|| {
        let meta = file.metadata()?;
        // Retention (this process's or another's) deletes a file only while it holds the file's lock: a file
        // deleted before this lock was taken is gone, and lines appended to it would be lost.
        if meta.nlink_or_one() == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "the day file was deleted"));
        }
        // A file renamed (logrotate, `mv` to an archive) still has its link: lines appended to it would be in a file
        // replay never reads (`tokenmeter-2026-03-14.jsonl.1`), while flushes said they were written.
        if !std::fs::metadata(path).is_ok_and(|at_path| same_file(&meta, &at_path)) {
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "the day file was moved or replaced"));
        }
        let len = meta.len();
        before = Some(len);
        if len > 0 {
            let mut last = [0u8; 1];
            let mut reader = file;
            reader.seek(SeekFrom::Start(len - 1))?;
            reader.read_exact(&mut last)?;
            if last[0] != b'\n' {
                (&*file).write_all(b"\n")?;
            }
        }
        (&*file).write_all(bytes)
    })();
    let result = match (result, before) {
        (Err(e), Some(len)) => match file.set_len(len) {
            Ok(()) => Err(e),
            // Nothing of the batch reached the file (an immutable file refuses both): nothing to cut.
            Err(_) if file.metadata().is_ok_and(|m| m.len() == len) => Err(e),
            // The batch's whole lines stay in the file: say so, since they are counted as lost.
            Err(cut) => Err(std::io::Error::new(
                e.kind(),
                format!("{e}; cutting the batch back failed too ({cut}), so its whole lines may come back on replay"),
            )),
        },
        (result, _) => result,
    };
    let _ = file.unlock();
    result
}

/// Takes `file`'s exclusive lock, waiting at most `timeout` (another process appending holds it for the moment
/// of its write; one that stopped holding it must not stall this writer for good).
pub(super) fn lock_within(file: &File, timeout: Duration) -> std::io::Result<()> {
    // `Duration::MAX` (wait for good) would overflow the instant.
    let deadline = Instant::now().checked_add(timeout);
    let mut pause = Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
            Err(std::fs::TryLockError::WouldBlock) if deadline.is_some_and(|d| Instant::now() >= d) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the file stayed locked by another process for {timeout:?}"),
                ));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
        }
    }
}

/// Creates `dir` and its missing ancestors, and syncs the parent of each one created, so that a journal
/// directory made at start survives a crash with the records synced into it (syncing the directory itself
/// only keeps its own entries). Returns how many parents were synced; failing to sync one (a parent this
/// process may write but not read) is not an error.
pub(super) fn create_dir_synced(dir: &Path) -> std::io::Result<usize> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|p| !p.as_os_str().is_empty() && !p.exists()).collect();
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    // Private (`0700`) where the platform has modes: see [`file_mode`].
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let mut synced = 0;
    // Deepest first: each parent's new entry.
    for created in missing {
        let parent = match created.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        synced += usize::from(sync_dir(parent).is_ok());
    }
    Ok(synced)
}

/// The permission bits of `dir`, where the platform has them.
fn dir_mode(dir: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(dir).ok().map(|m| m.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// The permission bits a new day file is made with: read and write for its owner, and read for the group where
/// the directory, `dir_mode`, gives the group read (the meter makes the directory `0700`; an operator who wants a
/// group to read the journal makes it `0750`); never for others. Other users' read followed the directory too, and
/// a directory made by `mkdir -p` under the usual umask (`0755`) made every day file, with its user, session and
/// tenant ids, readable by any local user. The process's umask may take more away.
#[cfg_attr(not(unix), allow(dead_code))]
fn file_mode(dir_mode: Option<u32>) -> u32 {
    0o600 | (dir_mode.unwrap_or(0) & 0o040)
}

/// Gives a directory made again the permission bits it had.
fn restore_dir_mode(dir: &Path, mode: Option<u32>) -> std::io::Result<()> {
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (dir, mode);
    Ok(())
}

/// Makes the directory's entries (a day file just created) durable. A file system that cannot sync a directory
/// (`EINVAL`, `EBADF`: some network and FUSE file systems, which PostgreSQL ignores there too; `ENOTSUP`, `ENOTTY`:
/// macOS on SMB and ZFS) keeps its entries its own way: that is not a failure, or every later sync would fail
/// again.
#[cfg(unix)]
pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match File::open(dir)?.sync_all() {
        Err(e) if dir_sync_unsupported(&e) => Ok(()),
        result => result,
    }
}

#[cfg(unix)]
fn dir_sync_unsupported(e: &std::io::Error) -> bool {
    // By number: std gives `ENOTSUP` the kind `Unsupported` only where it equals `EOPNOTSUPP` (Linux), not on
    // macOS, whose `F_FULLFSYNC` answers `ENOTSUP` on SMB and `ENOTTY` on ZFS.
    matches!(e.kind(), std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported)
        || e.raw_os_error().is_some_and(|code| {
            [libc::EBADF, libc::EINVAL, libc::ENOTSUP, libc::EOPNOTSUPP, libc::ENOTTY].contains(&code)
        })
}

/// Directories cannot be opened as files here; their entries are the file system's to keep.
#[cfg(not(unix))]
pub(super) fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Whether two metadata are of one file (device and inode; elsewhere, only that the path still has a file).
#[cfg(unix)]
pub(super) fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
pub(super) fn same_file(_a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    b.is_file()
}

/// Link count where the platform has one.
trait LinkCount {
    fn nlink_or_one(&self) -> u64;
}

impl LinkCount for std::fs::Metadata {
    #[cfg(unix)]
    fn nlink_or_one(&self) -> u64 {
        std::os::unix::fs::MetadataExt::nlink(self)
    }
    #[cfg(not(unix))]
    fn nlink_or_one(&self) -> u64 {
        1
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn a_drop_waits_past_the_lock_timeout_within_bounds() {
        assert_eq!(super::super::drop_wait(Duration::ZERO), super::super::DROP_WAIT);
        assert_eq!(super::super::drop_wait(Duration::from_secs(5)), Duration::from_secs(6));
        assert_eq!(super::super::drop_wait(Duration::MAX), Duration::from_secs(60));
    }

    #[test]
    fn a_flush_limit_of_duration_max_waits_instead_of_overflowing() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(JournalConfig::new(dir.path()));
        writer.append(&record(Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap()));
        writer.flush(Some(Duration::MAX)).unwrap();
        assert_eq!(writer.stats().written, 1);
    }

    fn record(at: chrono::DateTime<Utc>) -> CallRecord {
        CallRecord { timestamp: at, metered: true, ..super::super::line::tests::bare() }
    }

    /// The test's instant.
    fn at() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap()
    }

    /// A writer on `config`, its clock at [`at`].
    fn writer(config: JournalConfig) -> JournalWriter {
        JournalWriter::start(config, Arc::new(ManualClock::new(at())), ReplayReport::default(), 0, at()).unwrap()
    }

    #[test]
    fn a_failed_sync_at_close_is_reported_in_its_round_not_a_later_one() {
        // The sync of a file closed after a failed write failed; nothing else was written that round, so no
        // sync ran, and the error waited for the next round that wrote: its records, synced, were not counted
        // as synced, and its flush got the old error.
        let dir = tempfile::tempdir().unwrap();
        let counters = Arc::new(Counters::default());
        let config = JournalConfig::new(dir.path()).with_fsync(FsyncPolicy::Interval(Duration::from_secs(3600)));
        let mut t = WriterThread::new(config, Arc::new(ManualClock::new(at())), counters.clone());
        t.unsynced = 3;
        t.closed_sync_error = Some(std::io::Error::other("EIO"));
        t.after_batch();
        assert_eq!(counters.write_errors.load(Ordering::Relaxed), 1);
        assert_eq!(counters.synced.load(Ordering::Relaxed), 0, "what the failed file held is not acknowledged");
        assert!(t.unflushed_error.take().is_some_and(|e| e.contains("EIO")));
        // A later healthy round: its records are synced and counted, and no error is charged to it.
        t.unsynced = 5;
        t.dirty = true;
        t.sync_all();
        assert_eq!(counters.write_errors.load(Ordering::Relaxed), 1);
        assert_eq!(counters.synced.load(Ordering::Relaxed), 5);
        assert!(t.unflushed_error.is_none());
    }

    #[test]
    fn a_clock_that_jumps_ahead_mid_run_does_not_expire_the_journal() {
        // Day files up to 2026-03-14 and a 90-day age; the wall clock then steps to October (a restored VM) and
        // the next call makes October's file. Ages ran to the newest file's day, October's: every file up to
        // July expired in the next hourly round, and with them March's spend.
        let dir = tempfile::tempdir().unwrap();
        for day in ["2026-01-05", "2026-02-10", "2026-03-13", "2026-03-14"] {
            std::fs::write(dir.path().join(format!("tokenmeter-{day}.jsonl")), b"\n").unwrap();
        }
        let clock = ManualClock::new(at());
        let config = JournalConfig::new(dir.path()).with_max_age(Some(Duration::from_secs(90 * 86_400)));
        let mut t = WriterThread::new(config, Arc::new(clock.clone()), Arc::new(Counters::default()));
        clock.set(Utc.with_ymd_and_hms(2026, 10, 1, 9, 0, 0).unwrap());
        std::fs::write(dir.path().join("tokenmeter-2026-10-01.jsonl"), b"\n").unwrap();
        assert!(t.retention_now() < Utc.with_ymd_and_hms(2026, 3, 15, 0, 0, 0).unwrap());
        t.retention_round();
        assert_eq!(t.counters.files_removed.load(Ordering::Relaxed), 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 5);
        // Time that did pass counts, the clock still in October: 32 days after the base (to 2026-04-15) January's
        // file is past 90 days old, and only it.
        t.retention_base = (at(), Instant::now() - Duration::from_secs(32 * 86_400));
        t.retention_round();
        assert_eq!(t.counters.files_removed.load(Ordering::Relaxed), 1);
        assert!(!dir.path().join("tokenmeter-2026-01-05.jsonl").exists());
    }

    /// The nice value of thread `tid` of this process, from `/proc`.
    #[cfg(target_os = "linux")]
    fn nice_of(tid: i32) -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        // Fields after the command name (in parentheses, which may hold spaces): the 3rd onwards; nice is the 19th.
        let rest = &stat[stat.rfind(')').unwrap() + 1..];
        rest.split_whitespace().nth(19 - 3).unwrap().parse().unwrap()
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_writer_thread_alone_runs_at_the_lowest_priority_when_asked_for_background() {
        use super::super::WriterPriority::{Background, Normal};
        let ours = nice_of(rustix::thread::gettid().as_raw_nonzero().get());
        for (priority, expected) in [(None, ours), (Some(Background), 19), (Some(Normal), ours)] {
            let dir = tempfile::tempdir().unwrap();
            let config = JournalConfig::new(dir.path());
            let writer = writer(match priority {
                Some(p) => config.with_writer_priority(p),
                None => config,
            });
            // A flush is answered by the writer's loop, which starts after the priority is set.
            writer.flush(None).unwrap();
            let tid = writer.counters.tid.load(Ordering::Relaxed);
            assert_ne!(tid, 0);
            assert_eq!(nice_of(tid), expected, "{priority:?}");
            assert_eq!(nice_of(rustix::thread::gettid().as_raw_nonzero().get()), ours, "this thread's is unchanged");
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_rounds_work_is_cpu_time_so_waiting_is_not_work() {
        // A `write` blocked on a slow disk waits as this sleep does: the rest after it stays short.
        let before = thread_cpu_time().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let slept = thread_cpu_time().unwrap().saturating_sub(before);
        assert!(slept < Duration::from_millis(100), "{slept:?} of CPU time over a 200 ms sleep");
        // Work counts: spin until the clock has moved (bounded, in wall time, so the test cannot hang).
        let (start, wall) = (thread_cpu_time().unwrap(), Instant::now());
        while thread_cpu_time().unwrap().saturating_sub(start) < Duration::from_millis(20) {
            assert!(wall.elapsed() < Duration::from_secs(60), "the thread's CPU clock does not move");
        }
    }

    #[test]
    fn the_writers_rest_ignores_the_recording_sides_wakes_but_not_a_flush_or_the_drop() {
        let counters = Arc::new(Counters::default());
        let resting = |rest_for: Duration| {
            let counters = Arc::clone(&counters);
            std::thread::spawn(move || {
                let start = Instant::now();
                rest(&counters, rest_for);
                start.elapsed()
            })
        };
        // Unparked over and over (the queue passing half full), it still rests its whole time.
        let t = resting(Duration::from_millis(200));
        for _ in 0..20 {
            t.thread().unpark();
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(t.join().unwrap() >= Duration::from_millis(200));
        // A pending flush, then the meter's drop, unpark it: the rest ends there.
        let flush = |c: &Counters| c.pending_flushes.store(1, Ordering::SeqCst);
        let drop_meter = |c: &Counters| {
            c.pending_flushes.store(0, Ordering::SeqCst);
            c.closing.store(true, Ordering::SeqCst);
        };
        let cases: [&dyn Fn(&Counters); 2] = [&flush, &drop_meter];
        for wanted in cases {
            let t = resting(Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(20));
            wanted(&counters);
            t.thread().unpark();
            assert!(t.join().unwrap() < Duration::from_secs(5), "the rest ran on past the flush or drop");
        }
    }

    /// A flush behind several rounds' records: the writer rests after none of them (a flag cleared each round
    /// let it rest after every round but the first, the flush waiting out each rest).
    #[test]
    fn a_pending_flush_keeps_the_writer_from_resting_until_it_is_answered() {
        let dir = tempfile::tempdir().unwrap();
        let at = at();
        let (writer, holder) = stalled(dir.path(), 4 * MAX_BATCH);
        let writer = Arc::new(writer);
        let deadline = Instant::now() + Duration::from_secs(10);
        // Stalled on the lock with one record: three rounds' worth queue behind it, then a flush.
        for _ in 0..3 * MAX_BATCH {
            writer.append(&record(at));
        }
        let flushing = {
            let writer = Arc::clone(&writer);
            std::thread::spawn(move || writer.flush(None))
        };
        while writer.counters.pending_flushes.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the flush never began");
            std::thread::sleep(Duration::from_millis(1));
        }
        let rests = writer.counters.rests.load(Ordering::Relaxed);
        holder.unlock().unwrap();
        flushing.join().unwrap().unwrap();
        assert_eq!(writer.counters.rests.load(Ordering::Relaxed), rests, "the writer rested with a flush waiting");
        assert_eq!(writer.counters.pending_flushes.load(Ordering::SeqCst), 0);
        assert_eq!(writer.stats().written, 1 + 3 * MAX_BATCH as u64);
    }

    #[test]
    fn the_largest_queue_stays_under_70_mb() {
        let slot = std::mem::size_of::<Command>();
        assert!(JournalConfig::MAX_QUEUE_CAPACITY * slot <= 70 << 20, "{slot} bytes a slot");
    }

    #[test]
    #[cfg(unix)]
    fn a_created_directory_is_synced_into_each_new_parent() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a").join("journal");
        // `a` into the temporary directory, `journal` into `a`.
        assert_eq!(create_dir_synced(&dir).unwrap(), 2);
        assert!(dir.is_dir());
        assert_eq!(create_dir_synced(&dir).unwrap(), 0, "nothing new, nothing to sync");
    }

    #[cfg(unix)]
    #[test]
    fn an_append_to_a_file_deleted_before_its_lock_fails_as_not_found() {
        // Another process's retention deleted it between the writer's check of the handle and its lock: the
        // lines went into a file no one would read, and were counted written.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.jsonl");
        let file = OpenOptions::new().read(true).append(true).create(true).open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let err = append_locked(&file, &path, b"{}\n", Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(file.metadata().unwrap().len(), 0, "nothing appended");
    }

    #[test]
    fn an_append_that_wrote_nothing_does_not_say_lines_may_come_back() {
        // A file that refuses both the write and the cut (here one opened read-only; an immutable file does the
        // same): the error said "its whole lines may come back on replay", though none were written.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenmeter-2026-03-14.jsonl");
        std::fs::write(&path, b"{}\n").unwrap();
        let file = File::open(&path).unwrap();
        let err = append_locked(&file, &path, b"{\"a\":1}\n", Duration::from_secs(1)).unwrap_err();
        assert!(!err.to_string().contains("come back"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
    }

    #[cfg(unix)]
    #[test]
    fn a_file_system_that_cannot_sync_a_directory_is_not_failing() {
        // Some network and FUSE file systems answer a directory's fsync with EINVAL: a failure kept `dir_unsynced`
        // set, so every later sync failed and no flush was ever acknowledged.
        for code in [libc::EINVAL, libc::EBADF, libc::ENOTSUP, libc::EOPNOTSUPP, libc::ENOTTY] {
            assert!(dir_sync_unsupported(&std::io::Error::from_raw_os_error(code)), "errno {code}");
        }
        assert!(!dir_sync_unsupported(&std::io::Error::from_raw_os_error(5)), "EIO is a failure");
    }

    #[test]
    fn a_clock_wrong_at_the_build_does_not_expire_the_journal_either() {
        // The clock reads October at the build (a bad clock at boot); the newest day file is 2026-03-14. The
        // build's round measures ages to the end of that day, and the writer's rounds start from there: measured
        // from October, the first call's October file made every older one expire within the hour.
        let dir = tempfile::tempdir().unwrap();
        for day in ["2026-01-05", "2026-02-10", "2026-03-14"] {
            std::fs::write(dir.path().join(format!("tokenmeter-{day}.jsonl")), b"\n").unwrap();
        }
        let october = Utc.with_ymd_and_hms(2026, 10, 1, 9, 0, 0).unwrap();
        let age = Some(Duration::from_secs(90 * 86_400));
        let built = files::enforce_retention(dir.path(), october, age, None).unwrap();
        assert_eq!((built.removed, built.as_of), (0, Utc.with_ymd_and_hms(2026, 3, 15, 0, 0, 0).unwrap()));
        let clock = ManualClock::new(october);
        let config = JournalConfig::new(dir.path()).with_max_age(age);
        let mut t = WriterThread::new(config, Arc::new(clock), Arc::new(Counters::default()));
        t.retention_base = (built.as_of, Instant::now());
        std::fs::write(dir.path().join("tokenmeter-2026-10-01.jsonl"), b"\n").unwrap();
        t.retention_round();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4, "nothing expired");
    }

    #[test]
    fn a_failed_append_is_the_error_of_the_flushes_queued_after_its_lines_only() {
        // One round: thread A's record and flush, then thread B's record, whose append fails (its day file's path
        // is a directory). A's flush got B's error, and B's flush after the round got `Ok` for a lost record.
        let dir = tempfile::tempdir().unwrap();
        let counters = Arc::new(Counters::default());
        let mut t = WriterThread::new(JournalConfig::new(dir.path()), Arc::new(ManualClock::new(at())), counters);
        let later = at() + chrono::Duration::days(1);
        std::fs::create_dir(files::path_for(dir.path(), later.date_naive())).unwrap();
        let flush = |t: &mut WriterThread| {
            let slot = Arc::new(ReplySlot::default());
            t.counters.pending_flushes.fetch_add(1, Ordering::SeqCst);
            t.take(Command::Flush(Reply(slot.clone())));
            slot
        };
        t.take(Command::Call(QueuedCall::new(&record(at()))));
        let a = flush(&mut t);
        t.take(Command::Call(QueuedCall::new(&record(later))));
        t.write_batch();
        t.after_batch();
        assert_eq!(a.wait(None).ok(), Some(Ok(())), "A's record was written");
        let b = flush(&mut t);
        t.write_batch();
        t.after_batch();
        assert!(b.wait(None).ok().is_some_and(|r| r.is_err_and(|e| e.contains("cannot append"))), "B's was lost");
        // Answered once: the flush after that is fine again.
        let c = flush(&mut t);
        t.write_batch();
        t.after_batch();
        assert_eq!(c.wait(None).ok(), Some(Ok(())));
        // A flush queued after the failed lines gets the error.
        t.take(Command::Call(QueuedCall::new(&record(later))));
        let d = flush(&mut t);
        t.write_batch();
        t.after_batch();
        assert!(d.wait(None).ok().is_some_and(|r| r.is_err()));
    }

    #[test]
    fn a_day_file_moved_away_is_made_again_for_the_next_records() {
        // logrotate renamed today's file to `….jsonl.1`: the writer kept appending to its open handle, into a file
        // replay never reads, and flushes said the records were written.
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(JournalConfig::new(dir.path()));
        writer.append(&record(at()));
        writer.flush(None).unwrap();
        let path = files::path_for(dir.path(), at().date_naive());
        let rotated = dir.path().join("rotated.jsonl.1");
        std::fs::rename(&path, &rotated).unwrap();
        writer.append(&record(at()));
        writer.flush(None).unwrap();
        let lines = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
        assert_eq!(lines(&rotated), 1);
        assert_eq!(lines(&path), 1, "the second record is in a new day file");
        assert_eq!(writer.stats().written, 2);
    }

    /// Today's day file under `dir`, locked as another process appending would hold it.
    fn hold_lock(dir: &Path) -> File {
        let holder =
            OpenOptions::new().create(true).append(true).open(files::path_for(dir, at().date_naive())).unwrap();
        holder.lock().unwrap();
        holder
    }

    /// With the writer stalled on the day file's lock (held here, as another process would), the queue's fill
    /// is exact, so the wake-ups the recording side sends can be counted: one as the queue passes half full,
    /// one at the first drop, none for the records in between.
    #[test]
    fn the_recording_side_wakes_the_writer_past_half_full_and_at_the_first_drop() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, seen) = wakes_while_stalled(dir.path(), 8, 10);
        // Queued 1..=8 (half is 4: the 5th wakes), then two drops (the first wakes).
        assert_eq!(seen, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]);
        let stats = writer.stats();
        assert_eq!((stats.enqueued, stats.dropped), (9, 2));
        assert!(matches!(writer.flush(None), Err(JournalError::Dropped { records: 2 })));
        assert_eq!(writer.stats().written, 9);
    }

    #[test]
    fn two_flushes_at_once_both_report_the_drops_before_them() {
        // Both began before either reported (a shutdown's flush beside a periodic one, answered in the same
        // round): the first to report took the drops, and the other, the shutdown's, said `Ok`.
        let dir = tempfile::tempdir().unwrap();
        let (writer, _) = wakes_while_stalled(dir.path(), 8, 10);
        let reported = writer.counters.dropped_reported.load(Ordering::Relaxed);
        let dropped = writer.queue_full_drops();
        assert!(matches!(writer.report_drops(reported, dropped), Err(JournalError::Dropped { records: 2 })));
        assert!(matches!(writer.report_drops(reported, dropped), Err(JournalError::Dropped { records: 2 })));
        // A flush that begins after they reported them has nothing new to say.
        assert!(writer.flush(None).is_ok());
    }

    #[test]
    fn a_queue_of_one_wakes_the_writer_as_it_fills() {
        // Half of one rounded up to one: the queue never passed it, so only the writer's timer ran it.
        let dir = tempfile::tempdir().unwrap();
        let (_writer, seen) = wakes_while_stalled(dir.path(), 1, 2);
        assert_eq!(seen, [1, 2]);
    }

    /// A writer with a queue of `capacity` that has taken a first record and is stalled on the day file's lock,
    /// held here as another process would (the `File` holds it).
    fn stalled(dir: &Path, capacity: usize) -> (JournalWriter, File) {
        let writer = writer(JournalConfig::new(dir).with_queue_capacity(capacity));
        let holder = hold_lock(dir);
        writer.append(&record(at()));
        writer.wake();
        let deadline = Instant::now() + Duration::from_secs(10);
        while writer.counters.taken.load(Ordering::Relaxed) < 1 {
            assert!(Instant::now() < deadline, "the writer never took the first record");
            std::thread::sleep(Duration::from_millis(5));
        }
        (writer, holder)
    }

    /// The wake-ups counted after each of `appends` records sent to a writer with a queue of `capacity`, once it
    /// has taken a first record and stalled on the day file's lock (held here, as another process would), so
    /// that the queue's fill is exact. The lock is let go before it returns.
    fn wakes_while_stalled(dir: &Path, capacity: usize, appends: usize) -> (JournalWriter, Vec<u64>) {
        let at = at();
        let (writer, holder) = stalled(dir, capacity);
        // Taken and stalled on the lock: from here on, queued = records appended since.
        let wakes = || writer.counters.wakes.load(Ordering::Relaxed);
        let before = wakes();
        let mut seen = Vec::new();
        for _ in 0..appends {
            writer.append(&record(at));
            seen.push(wakes() - before);
        }
        holder.unlock().unwrap();
        (writer, seen)
    }

    /// A day file locked by another process that never lets go (stopped mid-append): the batch fails after the
    /// lock timeout, counted, and the writer (and the meter's drop) goes on.
    #[test]
    fn a_lock_held_for_good_fails_the_batch_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let at = at();
        let writer = writer(JournalConfig::new(dir.path()).with_lock_timeout(Duration::from_millis(200)));
        let holder = hold_lock(dir.path());
        writer.append(&record(at));
        let started = Instant::now();
        let err = writer.flush(None).expect_err("the batch could not be written");
        assert!(err.to_string().contains("locked by another process"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let stats = writer.stats();
        assert_eq!((stats.written, stats.failed_records), (0, 1));
        // Once the lock is free, records are written again.
        holder.unlock().unwrap();
        writer.append(&record(at));
        writer.flush(None).unwrap();
        assert_eq!(writer.stats().written, 1);
    }

    /// A day file created is made durable with its directory entry, once: syncing a new file does not keep
    /// its name in the directory through a crash.
    #[test]
    fn the_directory_is_synced_once_after_each_day_file_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let at = at();
        let writer = writer(JournalConfig::new(dir.path()).with_fsync(crate::journal::FsyncPolicy::EveryRecord));
        let dir_syncs = || writer.counters.dir_syncs.load(Ordering::Relaxed);
        writer.append(&record(at));
        writer.flush(None).unwrap();
        assert_eq!(dir_syncs(), 1, "the first day file");
        writer.append(&record(at));
        writer.flush(None).unwrap();
        assert_eq!(dir_syncs(), 1, "the same file again");
        writer.append(&record(at + chrono::Duration::days(1)));
        writer.flush(None).unwrap();
        assert_eq!(dir_syncs(), 2, "the next day's file");
        assert_eq!(writer.stats().synced, 3);
    }

    /// Another process made today's file and may never have synced the directory (a `Never` policy, or it
    /// died): records this writer syncs into it need the file's name to be durable too.
    #[test]
    fn the_directory_is_synced_for_a_day_file_another_process_created() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(files::path_for(dir.path(), at().date_naive()), b"").unwrap();
        let writer = writer(JournalConfig::new(dir.path()).with_fsync(crate::journal::FsyncPolicy::EveryRecord));
        writer.append(&record(at()));
        writer.flush(None).unwrap();
        assert_eq!(writer.counters.dir_syncs.load(Ordering::Relaxed), 1);
    }

    /// After one batch waited the whole lock timeout, later batches for that file wait at most
    /// `STUCK_LOCK_TIMEOUT`: a full queue at exit is several batches, and each waited the whole timeout.
    #[test]
    fn after_one_lock_timeout_the_same_file_waits_briefly_until_its_lock_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let timeout = Duration::from_secs(3);
        let writer = writer(JournalConfig::new(dir.path()).with_lock_timeout(timeout));
        let holder = hold_lock(dir.path());
        writer.append(&record(at()));
        let started = Instant::now();
        writer.flush(None).expect_err("locked out");
        assert!(started.elapsed() >= timeout, "the first batch waits the whole timeout");
        writer.append(&record(at()));
        let started = Instant::now();
        writer.flush(None).expect_err("still locked out");
        let second = started.elapsed();
        assert!(second < timeout / 2, "the second batch waited {second:?}");
        holder.unlock().unwrap();
        writer.append(&record(at()));
        writer.flush(None).unwrap();
        // Taken again: the next lock held by another process gets the whole timeout once more.
        let holder = hold_lock(dir.path());
        writer.append(&record(at()));
        let started = Instant::now();
        writer.flush(None).expect_err("locked out again");
        assert!(started.elapsed() >= timeout);
        drop(holder);
        assert_eq!(writer.stats().failed_records, 3);
    }

    #[test]
    fn failing_writes_warn_at_the_first_then_once_a_minute() {
        let start = Instant::now();
        let secs = |s: u64| start + Duration::from_secs(s);
        let mut last = None;
        assert!(warning_due(&mut last, start), "the first failure");
        assert!(!warning_due(&mut last, secs(1)));
        assert!(!warning_due(&mut last, secs(59)), "no second warning within the minute");
        assert!(!warning_due(&mut last, start + Duration::from_millis(59_999)));
        assert!(warning_due(&mut last, secs(60)), "a second warning a minute after the first");
        assert!(!warning_due(&mut last, secs(119)), "a minute after the last warning, not the first");
        assert!(warning_due(&mut last, secs(120)));
        assert_eq!(last, Some(secs(120)));
    }

    #[test]
    fn a_lock_timeout_of_duration_max_waits_instead_of_overflowing() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(JournalConfig::new(dir.path()).with_lock_timeout(Duration::MAX));
        writer.append(&record(at()));
        writer.flush(None).unwrap();
        assert_eq!(writer.stats().written, 1);
    }
}
