//! Erasing dimension values (a user, a session, a tenant) from a running meter: its journal and its memory.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::TokenMeter;
use crate::journal::{Erasure, ErasureReport, JournalError};
use crate::ledger::OTHER;
use crate::record::Dimensions;

/// How long [`TokenMeter::erase`] waits for the journal to write what is queued before it erases.
const ERASE_FLUSH_WAIT: Duration = Duration::from_secs(30);

/// How long [`TokenMeter::erase`] waits for the calls (tasks, tool executions) that were finishing when it began
/// or changed what it erases: a sink that blocks would hold it up for ever.
const ERASE_DRAIN_WAIT: Duration = Duration::from_secs(10);

/// The calls, tasks and tool executions finishing (between capture and the last sink) while
/// [`TokenMeter::erase`] runs. Each record passes the gate as it starts finishing: while an erasure runs, a record
/// naming one of its values is cleared of them and left out of the journal, as the erasure leaves the records
/// before it. The erasure waits for the records that passed before it began (and before each change of its
/// values), so that none of them is added after it forgot what they name.
///
/// A generation counts every change: a record is counted finishing under its generation's parity, and a change
/// waits for the records of the generation before it (each change has waited for those of the ones before that,
/// so the other parity holds the new generation's records only).
#[derive(Debug)]
pub(crate) struct EraseGate {
    /// `generation << 1 | erasing`.
    state: AtomicU64,
    /// Records finishing, by thread slot and by the parity of the generation they passed in.
    finishing: crate::shards::PerThread<[AtomicU64; 2]>,
    /// The values erased, read by a record passing while `state` says an erasure runs.
    values: RwLock<Option<Arc<Forget>>>,
    /// One erasure at a time.
    running: Mutex<()>,
    /// The thread running an erasure ([`thread_token`]), 0 when none: an erasure of this meter called from inside
    /// it (a sink's `on_erase`) is nested in it, and must not wait for its lock.
    running_on: AtomicU64,
}

/// A number for the calling thread, unique for the life of the process (never 0).
fn thread_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static TOKEN: u64 = NEXT.fetch_add(1, SeqCst);
    }
    TOKEN.try_with(|t| *t).unwrap_or(u64::MAX)
}

thread_local! {
    /// This thread's records finishing through one gate (its address), by generation parity: an erasure called
    /// while one of them finishes (from a sink) does not wait for it.
    static MINE: Cell<(usize, [u64; 2])> = const { Cell::new((0, [0, 0])) };
    /// The same for the other gates a record finishes through while one of [`MINE`]'s gate does (a sink that
    /// records through a second meter).
    static MINE_ELSEWHERE: std::cell::RefCell<Vec<(usize, [u64; 2])>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Adds `delta` to this thread's count of records finishing through `gate` under `parity`.
fn count_mine_elsewhere(gate: usize, parity: usize, add: bool) {
    let _ = MINE_ELSEWHERE.try_with(|more| {
        let mut more = more.borrow_mut();
        let i = match more.iter().position(|(g, _)| *g == gate) {
            Some(i) => i,
            None => {
                more.push((gate, [0, 0]));
                more.len() - 1
            }
        };
        let n = &mut more[i].1[parity];
        *n = if add { *n + 1 } else { n.saturating_sub(1) };
        if more[i].1 == [0, 0] {
            more.swap_remove(i);
        }
    });
}

/// This thread's records finishing through `gate` under `parity`.
fn mine(gate: usize, parity: usize) -> u64 {
    let here = MINE.try_with(|m| m.get()).map_or(0, |(g, counts)| if g == gate { counts[parity] } else { 0 });
    let elsewhere = MINE_ELSEWHERE
        .try_with(|more| more.borrow().iter().find(|(g, _)| *g == gate).map_or(0, |(_, counts)| counts[parity]))
        .unwrap_or(0);
    here + elsewhere
}

/// A record finishing ([`EraseGate::pass`]); dropped when the last sink has it.
pub(crate) struct Passed<'g> {
    counter: &'g AtomicU64,
    parity: usize,
    /// Counted in [`MINE`] (else in [`MINE_ELSEWHERE`] under `gate`).
    mine: bool,
    gate: usize,
    /// The values of the erasure running as the record passed, if any.
    pub(crate) erasing: Option<Arc<Forget>>,
}

impl Drop for Passed<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, SeqCst);
        let parity = self.parity;
        if self.mine {
            let _ = MINE.try_with(|m| {
                let (gate, mut counts) = m.get();
                counts[parity] = counts[parity].saturating_sub(1);
                m.set((gate, counts));
            });
        } else {
            count_mine_elsewhere(self.gate, parity, false);
        }
    }
}

impl Passed<'_> {
    /// Clears `dims` of the running erasure's values, and of its session (the erasure forgets the sessions of the
    /// records it finds, and this one it would not find); true when it named one (the record is then not
    /// journaled).
    pub(crate) fn scrub(&self, dims: &mut Dimensions) -> bool {
        let named = self.erasing.as_ref().is_some_and(|forget| dims.forget(forget));
        if named {
            dims.session = None;
        }
        named
    }
}

impl EraseGate {
    pub(crate) fn new(slots: usize) -> Self {
        EraseGate {
            state: AtomicU64::new(0),
            finishing: crate::shards::PerThread::new(slots, Default::default),
            values: RwLock::new(None),
            running: Mutex::new(()),
            running_on: AtomicU64::new(0),
        }
    }

    /// A record starts finishing: counted until the returned value drops.
    #[inline]
    pub(crate) fn pass(&self) -> Passed<'_> {
        let slot = self.finishing.mine();
        loop {
            let state = self.state.load(SeqCst);
            let parity = ((state >> 1) & 1) as usize;
            slot[parity].fetch_add(1, SeqCst);
            // A change between the read and the count: its wait may have missed this record; pass again.
            if self.state.load(SeqCst) != state {
                slot[parity].fetch_sub(1, SeqCst);
                continue;
            }
            let me = std::ptr::from_ref(self) as usize;
            let mine = MINE
                .try_with(|m| {
                    let (gate, mut counts) = m.get();
                    let free = counts == [0, 0];
                    if gate == me || free {
                        counts[parity] += 1;
                        m.set((me, counts));
                    }
                    gate == me || free
                })
                .unwrap_or(true);
            if !mine {
                count_mine_elsewhere(me, parity, true);
            }
            let erasing = if state & 1 == 1 { self.values.read().clone() } else { None };
            return Passed { counter: &slot[parity], parity, mine, gate: me, erasing };
        }
    }

    /// Whether an erasure is running, and its values.
    fn erasing(&self) -> Option<Arc<Forget>> {
        if self.state.load(SeqCst) & 1 == 1 { self.values.read().clone() } else { None }
    }

    /// A new generation (erasing `values`, or no longer erasing with `None`); waits for the records that passed
    /// before it. Returns how many of them were still finishing after [`ERASE_DRAIN_WAIT`].
    fn advance(&self, values: Option<Arc<Forget>>) -> u64 {
        let erasing = values.is_some();
        if erasing {
            *self.values.write() = values;
        }
        let old = self.state.load(SeqCst);
        self.state.store((((old >> 1) + 1) << 1) | u64::from(erasing), SeqCst);
        let left = self.drain(((old >> 1) & 1) as usize);
        if !erasing {
            // After the wait: the records that passed under the erasure read its values.
            *self.values.write() = None;
        }
        left
    }

    fn drain(&self, parity: usize) -> u64 {
        let deadline = Instant::now() + ERASE_DRAIN_WAIT;
        let mine = mine(std::ptr::from_ref(self) as usize, parity);
        loop {
            let finishing: u64 = self.finishing.iter().map(|slot| slot[parity].load(SeqCst)).sum();
            let others = finishing.saturating_sub(mine);
            if others == 0 || Instant::now() >= deadline {
                return others;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// The values an erasure names, as the meter's memory is searched for them.
#[derive(Debug)]
pub(crate) struct Forget {
    /// The values by dimension, dimensions by their own names (`user`, `session`, …): a set, since a tenant's
    /// erasure may find thousands of its sessions, each looked up for every entry of every bucket.
    values: HashMap<String, HashSet<String>>,
    /// Count what would be forgotten, changing nothing.
    pub(crate) dry_run: bool,
}

impl Forget {
    fn new(values: impl IntoIterator<Item = (String, String)>, dry_run: bool) -> Self {
        let mut by_dimension: HashMap<String, HashSet<String>> = HashMap::default();
        for (dim, value) in values {
            by_dimension.entry(dim).or_default().insert(value);
        }
        Forget { values: by_dimension, dry_run }
    }

    /// Whether the erasure names `value` of dimension `dim` (never an overflow entry's `(other)`).
    pub(crate) fn names(&self, dim: &str, value: &str) -> bool {
        value != OTHER && self.values.get(dim).is_some_and(|values| values.contains(value))
    }

    /// [`names`](Self::names) of a value that may be absent.
    pub(crate) fn names_opt(&self, dim: &str, value: Option<&std::sync::Arc<str>>) -> bool {
        value.is_some_and(|v| self.names(dim, v))
    }

    /// Every (dimension, value) it names.
    fn pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.values.iter().flat_map(|(dim, values)| values.iter().map(move |v| (dim.clone(), v.clone())))
    }

    /// Whether the erasure names any value of dimension `dim`.
    pub(crate) fn has(&self, dim: &str) -> bool {
        self.values.contains_key(dim)
    }
}

impl Dimensions {
    /// Clears each dimension whose value `forget` names (unless it is a dry run); true when one does.
    pub(crate) fn forget(&mut self, forget: &Forget) -> bool {
        let mut found = false;
        let dry = forget.dry_run;
        for (name, slot) in [
            ("session", &mut self.session),
            ("user", &mut self.user),
            ("tenant", &mut self.tenant),
            ("project", &mut self.project),
            ("agent", &mut self.agent),
            ("operation", &mut self.operation),
            ("task", &mut self.task),
        ] {
            if forget.names_opt(name, slot.as_ref()) {
                found = true;
                if !dry {
                    *slot = None;
                }
            }
        }
        if self.extra.iter().any(|(name, value)| forget.names(name, value)) {
            found = true;
            if !dry {
                self.extra.retain(|(name, value)| !forget.names(name, value));
            }
        }
        found
    }
}

/// What [`TokenMeter::erase`] did (or, in a dry run, would do).
#[derive(Debug)]
#[non_exhaustive]
pub struct Erased {
    /// The journal's erasure ([`journal::erase`](crate::journal::erase) on the meter's directory), `None` for a
    /// meter without a journal.
    pub journal: Option<ErasureReport>,
    /// What the flush before the journal's erasure reported, when it was not `Ok`: records dropped by a full
    /// queue or lost to a failed write since the previous flush (what your own next [`flush`](TokenMeter::flush)
    /// would have returned; this one heard it instead). The erasure went on: what was queued was written first.
    pub journal_flush: Option<JournalError>,
    /// Sessions of the erased journal lines that the erasure did not name itself (a user's sessions, say):
    /// forgotten in memory too.
    pub sessions_found: u64,
    /// Entries of the ledger's breakdowns that named a value, in every time bucket: a user's or a session's row
    /// (and its (project, session) and (session, tool) pairs) dropped, a series of a tenant, project, agent,
    /// operation or task filed again under no value.
    pub ledger_entries: u64,
    /// Sessions whose caching history the ledger dropped, and cache writes still pending (not yet read or
    /// expired) whose dimensions named a value, cleared of it.
    pub cache_histories: u64,
    /// Budget accounts: a value's own account in a budget of each value of its dimension (`user=*`) dropped, and
    /// a budget of the value itself (`user=alice`) started over, as after a restart.
    pub budget_accounts: u64,
    /// Calls (tasks, tool executions) that were finishing when the erasure began, or when it found sessions, and
    /// were still finishing 10 s later (a sink or an alert callback that blocks): the erasure went on without
    /// them, and they may add what they name after it. 0 unless something blocks.
    pub in_flight_left: u64,
    /// Whether this was a dry run (nothing changed).
    pub dry_run: bool,
}

impl TokenMeter {
    /// Erases dimension values (a data subject's request: [`Erasure::new`]`().user("alice")`) from the meter's
    /// journal and from its memory, so that nothing the meter holds names them any more. Values are cut where
    /// the meter cuts what it captures ([`with_max_dimension_len`](crate::TokenMeterBuilder::with_max_dimension_len)).
    ///
    /// - The journal, with one: what is queued is written first, then every day file that names a value is
    ///   rewritten without those lines ([`journal::erase`](crate::journal::erase)), and the sessions of the lines
    ///   erased are forgotten below too, whole (other users' calls in them included; the journal keeps their
    ///   lines). Only sessions: a tenant's users are not found so; name them too.
    /// - The ledger: a user's and a session's rows are dropped from every time bucket, and a tenant's, project's,
    ///   agent's, operation's or task's series are filed again under no value, so the figures the reports show
    ///   under a name no longer include the value's calls, and no report, query or HTTP answer names it. The
    ///   figures of other values keep its spend, as calls without it: the totals, and its tenant's, project's and
    ///   model's rows (a restart, replaying the erased journal, would not count it at all).
    /// - Caching history: the value's sessions are dropped, and its pending cache writes cleared of it.
    /// - Budgets: a value's account in a budget of each value of its dimension is dropped (its next call opens a
    ///   new one), and a budget scoped to the value starts its period over, as a restart would find them; budgets
    ///   of other values keep its spend.
    /// - Record sinks hear [`RecordSink::on_erase`](crate::RecordSink::on_erase) (the HTTP API's
    ///   `SessionTenants` forgets the sessions, and an erased tenant's).
    ///
    /// Not erased: OTLP series already exported or held by the SDK (with user or session attributes turned on),
    /// what your own sinks keep unless they forget it in `on_erase`, logs, webhook bodies, and the calls the value
    /// makes after this returns. Calls (tasks, tool executions) that finish while this runs are kept as it leaves
    /// those before it: cleared of the values and of their session, and not journaled; it waits for those that were
    /// already finishing when it began (up to 10 s each time: see [`Erased::in_flight_left`]), except one this runs
    /// inside (from a sink). Run from inside another erasure of this meter (a sink's `on_erase`), it adds its values
    /// to that one's. A dry run ([`Erasure::with_dry_run`]) writes the journal's queue too, then counts and changes
    /// nothing.
    ///
    /// Blocks the calling thread for the journal's rewrite (about half a second for a 275 MB day file); the
    /// ledger and each budget are locked for a pass over their entries.
    ///
    /// ```
    /// use tokenmeter::journal::Erasure;
    ///
    /// # let meter = tokenmeter::TokenMeter::builder().build();
    /// let erased = meter.erase(&Erasure::new().user("alice"))?;
    /// println!("{} ledger entries and {} budget accounts forgotten", erased.ledger_entries, erased.budget_accounts);
    /// # Ok::<(), tokenmeter::JournalError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`JournalError::InvalidErasure`] for no values, or an empty name or value; with a journal,
    /// [`JournalError::TimedOut`] when its queue was not written within 30 s, [`JournalError::OnWriterThread`],
    /// [`JournalError::Stopped`], or [`JournalError::Io`] when its directory cannot be listed. Nothing is erased
    /// then, in the journal or in memory. Day files that could not be rewritten are in the report's
    /// [`failed`](ErasureReport::failed), and memory is erased all the same.
    pub fn erase(&self, erasure: &Erasure) -> Result<Erased, JournalError> {
        erasure.check()?;
        // Values as the meter holds them: cut where capture cuts them.
        let erasure = erasure.for_meter(self.inner.max_dim_len);
        let dry_run = erasure.is_dry_run();
        let mut values = erasure.values().to_vec();
        let gate = &self.inner.erase_gate;
        // An erasure of this meter run from inside another of it on this thread (a sink's `on_erase`) is nested in
        // it: it does not wait for the lock the outer one holds, and it adds its values to the outer one's gate.
        let me = thread_token();
        let nested = gate.running_on.load(SeqCst) == me;
        let _one_at_a_time = (!nested).then(|| {
            let lock = gate.running.lock();
            gate.running_on.store(me, SeqCst);
            // Dropped in this order: the thread forgotten before the lock is free for another.
            (RunningOn(gate), lock)
        });
        // From here on, records finishing are cleared of the values (not in a dry run); those already finishing are
        // waited for, so that none adds them back after the passes below. Ended however this returns, by the
        // erasure that started it.
        let mut in_flight_left = 0;
        let outer = gate.erasing();
        let gate_values = |values: &[(String, String)]| {
            let mut all: Vec<(String, String)> = values.to_vec();
            if let Some(outer) = &outer {
                all.extend(outer.pairs());
            }
            Arc::new(Forget::new(all, false))
        };
        if !dry_run {
            in_flight_left += gate.advance(Some(gate_values(&values)));
        }
        let _erasing = (!dry_run && outer.is_none()).then_some(Erasing(gate));
        let mut journal_flush = None;
        let mut sessions_found = 0;
        let journal = match self.inner.journal.get() {
            None => None,
            Some(writer) => {
                // Queued lines written after the rewrite would name the value again (and a dry run would not count
                // them).
                match self.flush_timeout(ERASE_FLUSH_WAIT) {
                    Ok(()) => {}
                    Err(e @ (JournalError::Dropped { .. } | JournalError::Write(_))) => journal_flush = Some(e),
                    Err(e) => return Err(e),
                }
                let report = crate::journal::erase(writer.dir(), &erasure)?;
                let named: HashSet<&str> =
                    values.iter().filter(|(d, _)| d == "session").map(|(_, v)| v.as_str()).collect();
                let found: Vec<String> =
                    report.sessions.0.iter().filter(|s| !named.contains(s.as_str())).cloned().collect();
                sessions_found = found.len() as u64;
                values.extend(found.into_iter().map(|s| ("session".to_owned(), s)));
                if sessions_found > 0 && !dry_run {
                    // The sessions found are gated too, from here on.
                    in_flight_left += gate.advance(Some(gate_values(&values)));
                }
                Some(report)
            }
        };
        if !dry_run {
            self.inner.tell_sinks_erased(&values);
        }
        let forget = Forget::new(values, dry_run);
        let (ledger_entries, cache_histories) = self.inner.ledger.forget(&forget);
        let budget_accounts = self.inner.budgets.forget(&forget);
        Ok(Erased {
            journal,
            journal_flush,
            sessions_found,
            ledger_entries,
            cache_histories,
            budget_accounts,
            in_flight_left,
            dry_run,
        })
    }
}

/// The erasure's thread, known to the gate while it lives.
struct RunningOn<'g>(&'g EraseGate);

impl Drop for RunningOn<'_> {
    fn drop(&mut self) {
        self.0.running_on.store(0, SeqCst);
    }
}

/// An erasure running: the gate goes back to letting records through unchanged when it drops.
struct Erasing<'g>(&'g EraseGate);

impl Drop for Erasing<'_> {
    fn drop(&mut self) {
        self.0.advance(None);
    }
}
