//! Per-session state for the analyses that need a call's predecessor: the cacheable prefix the previous turn
//! left, and cache writes waiting to be read. Both are kept per model within a session: a model reads only
//! what the same model cached (the prompt cache holds a model's own computation of the prefix), so a session
//! that mixes models (a small model for side tasks, a large one for the conversation) has one history each.
//!
//! Sessions are kept in stripes chosen by the session id's hash, each behind its own lock, so two recording
//! threads contend only when they record calls of sessions in the same stripe at the same moment (held for a
//! few dozen nanoseconds). The number of tracked sessions is capped; idle sessions are swept.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rustc_hash::{FxHashMap as HashMap, FxHasher};
use smallvec::SmallVec;

use super::After;
use crate::record::{CallRecord, Dimensions};

/// Number of lock stripes.
const STRIPES: usize = 64;
/// Pending cache writes kept per session and model (a call that writes both lifetimes keeps two); past this one counts
/// as never read before its time: one whose lifetime is over if there is one (only a reader that started
/// before it ended and arrives late could still read it), else the oldest.
const MAX_PENDING_WRITES: usize = 8;
/// Models with a cache history of their own kept per session; past this the one idle longest is given up,
/// its pending writes counted as never read.
const MAX_MODELS: usize = 8;
/// A session idle this long is dropped from tracking (its pending writes have all expired by then).
const IDLE_NS: i64 = 2 * 3_600 * 1_000_000_000;
/// A full stripe is swept at most this often (record time).
const SWEEP_EVERY_NS: i64 = 60 * 1_000_000_000;
/// How far ahead of the clock a record's time is taken as it is (the store's rule).
const FUTURE_TOLERANCE_NS: i64 = super::store::FUTURE_TOLERANCE * 1_000_000_000;
/// The 5-minute cache lifetime.
const TTL_5M_NS: i64 = 5 * 60 * 1_000_000_000;
/// The 1-hour cache lifetime.
const TTL_1H_NS: i64 = 3_600 * 1_000_000_000;
/// How long after a write's lifetime ends it still waits for a reader before it counts as never read. Records
/// are stamped when a call starts and arrive when it ends: a call that started within the lifetime and read the
/// cache may arrive minutes after it (a long generation), behind a query (which sweeps by the clock) or a
/// shorter call of the same session that started after the lifetime.
pub(crate) const LATE_READ_GRACE_NS: i64 = 10 * 60 * 1_000_000_000;

/// The call that wrote to the cache, kept until the write is read or expires.
#[derive(Debug, Clone)]
pub(crate) struct WriterInfo {
    pub(crate) ts: i64,
    pub(crate) model: Option<Arc<str>>,
    pub(crate) provider: Option<Arc<str>>,
    pub(crate) dims: Dimensions,
    pub(crate) service_tier: Option<Arc<str>>,
    pub(crate) speed: Option<Arc<str>>,
    /// Billed at the regional rates (1.1x, `CallCost::regional`).
    pub(crate) regional: bool,
    pub(crate) prompt_total: u64,
    pub(crate) write_5m: u64,
    pub(crate) write_1h: u64,
    /// Whether this write counts as a write of its own among those never read: the hour's part of a call that
    /// wrote both lifetimes does not (its 5-minute part, which expires first, counts the call once).
    pub(crate) counts_write: bool,
    /// The rates the writing call's own suggestions would leave it at.
    pub(crate) after: After,
}

impl WriterInfo {
    /// Overwrites a box with `rec`'s writer facts. Labels are replaced only when their text differs: no reference
    /// counting, and no allocation, on the usual path where each call reads the previous one's write and writes its
    /// own.
    fn refill(
        &mut self,
        ts_ns: i64,
        model: Option<&Arc<str>>,
        rec: &CallRecord,
        prompt: u64,
        after: After,
        regional: bool,
    ) {
        self.ts = ts_ns.div_euclid(1_000_000_000);
        self.after = after;
        self.regional = regional;
        set_label(&mut self.model, model);
        set_label(&mut self.provider, rec.provider.as_ref());
        set_label(&mut self.service_tier, rec.service_tier.as_ref());
        set_label(&mut self.speed, rec.speed.as_ref());
        for (old, new) in label_pairs(&mut self.dims, &rec.dimensions) {
            set_label(old, new.as_ref());
        }
        self.prompt_total = prompt;
        self.write_5m = rec.tokens.cache_write_5m;
        self.write_1h = rec.tokens.cache_write_1h;
        self.counts_write = true;
    }
}

impl WriterInfo {
    /// Holds the session's id, and the labels equal to those of `previous` (the latest write pending in the
    /// session), by the same `Arc`s. A call's labels are its own allocations when its dimensions came from a span
    /// of its own (a span per request): a write that read nothing kept a copy of each, up to eight models' eight
    /// pending writes per session (with 128-byte values, ~1.4 KB a write instead of ~300 bytes).
    fn share_labels(&mut self, session_id: &Arc<str>, previous: Option<&WriterInfo>) {
        fn share(slot: &mut Option<Arc<str>>, from: Option<&Arc<str>>) {
            if let (Some(mine), Some(from)) = (slot.as_mut(), from)
                && !Arc::ptr_eq(mine, from)
                && **mine == **from
            {
                *mine = Arc::clone(from);
            }
        }
        share(&mut self.dims.session, Some(session_id));
        let Some(p) = previous else { return };
        share(&mut self.model, p.model.as_ref());
        share(&mut self.provider, p.provider.as_ref());
        share(&mut self.service_tier, p.service_tier.as_ref());
        share(&mut self.speed, p.speed.as_ref());
        // The session's slot holds `session_id` already, as `previous`'s does: equal pointers, left alone.
        for (mine, theirs) in label_pairs(&mut self.dims, &p.dims) {
            share(mine, theirs.as_ref());
        }
    }
}

/// A label slot to fill, beside the label it may take.
type LabelPair<'a> = (&'a mut Option<Arc<str>>, &'a Option<Arc<str>>);

/// The built-in dimensions' slots of `mine` beside `theirs`'.
fn label_pairs<'a>(mine: &'a mut Dimensions, theirs: &'a Dimensions) -> [LabelPair<'a>; 7] {
    [
        (&mut mine.session, &theirs.session),
        (&mut mine.user, &theirs.user),
        (&mut mine.tenant, &theirs.tenant),
        (&mut mine.project, &theirs.project),
        (&mut mine.agent, &theirs.agent),
        (&mut mine.operation, &theirs.operation),
        (&mut mine.task, &theirs.task),
    ]
}

/// The dimensions an unread write's row is filed under (`writer_keys`): the built-in ones. A user-named
/// dimension is no key of the ledger's maps, and kept here it held up to 16 values more in every write pending.
fn labels_of(d: &Dimensions) -> Dimensions {
    Dimensions {
        session: d.session.clone(),
        user: d.user.clone(),
        tenant: d.tenant.clone(),
        project: d.project.clone(),
        agent: d.agent.clone(),
        operation: d.operation.clone(),
        task: d.task.clone(),
        extra: Vec::new(),
    }
}

/// Keeps the slot's `Arc` when it holds the same text: a call whose labels are allocations of its own (a span per
/// request) leaves the write it refills holding the labels it shared (see [`WriterInfo::share_labels`]).
fn set_label(slot: &mut Option<Arc<str>>, value: Option<&Arc<str>>) {
    let same = match (slot.as_ref(), value) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || **a == **b,
        (None, None) => true,
        _ => false,
    };
    if !same {
        *slot = value.cloned();
    }
}

#[derive(Debug)]
struct Pending {
    expires_ns: i64,
    written_ns: i64,
    writer: Box<WriterInfo>,
}

impl Pending {
    /// Never read, as seen at `t`: its lifetime and the [`LATE_READ_GRACE_NS`] a late reader has are over.
    fn unread_at(&self, t: i64) -> bool {
        self.expires_ns.saturating_add(LATE_READ_GRACE_NS) < t
    }
}

#[derive(Debug, Default)]
struct SessionState {
    /// The session id: the table is keyed by its 64-bit hash, and ids that collide (FxHash is not built to
    /// resist chosen ones: ids may come from request headers) must not share a history.
    id: Arc<str>,
    /// The session's latest call, of any model: what the idle sweep goes by.
    last_ns: i64,
    /// One cache history per model the session called (most sessions: one, held inline).
    models: SmallVec<[ModelHistory; 1]>,
}

impl SessionState {
    /// The index in `models` of the history of `model` at `provider` (each provider's cache is its own), made if
    /// the session has none.
    /// A session holding [`MAX_MODELS`] gives one up first: the one idle longest among those waiting on no
    /// write, else the one idle longest (its pending writes go to `unread`). Model ids are interned per
    /// thread, so two calls of one model may hold different `Arc`s: compared by pointer first, then by text.
    fn history(
        models: &mut SmallVec<[ModelHistory; 1]>,
        model: Option<&Arc<str>>,
        provider: Option<&Arc<str>>,
        unread: &mut Vec<WriterInfo>,
    ) -> usize {
        fn same(a: &Option<Arc<str>>, b: Option<&Arc<str>>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || **a == **b,
                (None, None) => true,
                _ => false,
            }
        }
        // A call that names no provider is taken as the same provider (an application may tag only some calls);
        // a history made without one takes the first provider a call of its model names.
        let same_provider = |h: &Option<Arc<str>>| h.is_none() || provider.is_none() || same(h, provider);
        if let Some(i) = models.iter().position(|h| same(&h.model, model) && same_provider(&h.provider)) {
            let h = &mut models[i];
            if h.provider.is_none() {
                h.provider = provider.cloned();
            }
            return i;
        }
        if models.len() >= MAX_MODELS
            && let Some(i) = (0..models.len()).min_by_key(|&i| (!models[i].pending.is_empty(), models[i].last_ns))
        {
            unread.extend(models.remove(i).pending.into_iter().map(|p| *p.writer));
        }
        models.push(ModelHistory {
            model: model.cloned(),
            provider: provider.cloned(),
            last_ns: i64::MIN,
            read_starts: [i64::MIN; READS_KEPT],
            ..ModelHistory::default()
        });
        models.len() - 1
    }

    /// Moves every pending write that `unread_at(t)` to `out`.
    fn take_unread(&mut self, t: i64, out: &mut Vec<WriterInfo>) {
        for h in &mut self.models {
            let mut i = 0;
            while i < h.pending.len() {
                if h.pending[i].unread_at(t) {
                    out.push(*h.pending.remove(i).writer);
                } else {
                    i += 1;
                }
            }
        }
    }

    fn has_pending(&self) -> bool {
        self.models.iter().any(|h| !h.pending.is_empty())
    }
}

/// A session's history with one model: the prompt its previous call sent, and its writes not yet read.
#[derive(Debug, Default)]
struct ModelHistory {
    model: Option<Arc<str>>,
    provider: Option<Arc<str>>,
    last_ns: i64,
    last_prompt: u64,
    written_upto: u64,
    pending: SmallVec<[Pending; 1]>,
    /// The starts of the latest calls that read the cache ([`READS_KEPT`] of them, in no order; `i64::MIN` for
    /// none): a write that started before one and was still alive then was read, though it is seen after it (two
    /// threads: the writer streamed for a minute and ended after the readers). Queued, it came out as never read;
    /// with the latest read alone, so did one whose only readers within its lifetime were followed by another
    /// read past it before it ended (a 20-minute call writing a 5-minute entry, read at 2 and 12 minutes).
    read_starts: [i64; READS_KEPT],
}

/// Cache reads a model's history remembers the starts of (see [`ModelHistory::read_starts`]).
const READS_KEPT: usize = 4;

impl ModelHistory {
    /// Adds a write made at `ts_ns` that lives `ttl`; a full list first gives up one write as never read (see
    /// [`MAX_PENDING_WRITES`]).
    fn add_pending(&mut self, ts_ns: i64, ttl: i64, writer: Box<WriterInfo>, unread: &mut Vec<WriterInfo>) {
        let expires = ts_ns.saturating_add(ttl);
        if self.read_starts.iter().any(|&r| r > ts_ns && r <= expires) {
            return;
        }
        if self.pending.len() >= MAX_PENDING_WRITES {
            let i = self.pending.iter().position(|p| p.expires_ns < ts_ns).unwrap_or(0);
            unread.push(*self.pending.remove(i).writer);
        }
        self.pending.push(Pending { expires_ns: ts_ns.saturating_add(ttl), written_ns: ts_ns, writer });
    }
}

#[derive(Debug, Default)]
struct Stripe {
    map: HashMap<u64, SessionState>,
    last_sweep_ns: i64,
}

/// How [`Sessions::observe`] records a call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observe<'a> {
    /// The call's time.
    pub(crate) ts_ns: i64,
    /// A call follows the previous one of its session within this.
    pub(crate) reuse_window_ns: i64,
    /// The shortest prefix the call's model could have cached.
    pub(crate) min_reusable: u64,
    /// The shortest prefix worth a caching suggestion: the call's model's minimum, or the right-size target's
    /// for a call also right-sized.
    pub(crate) min_cacheable: u64,
    /// The fewest repeated tokens sent uncached worth a suggestion.
    pub(crate) min_missed: u64,
    /// The model id the call is filed under (its cost's, or the one the ledger priced it as).
    pub(crate) model: Option<&'a Arc<str>>,
    /// The rates the call's own suggestions would leave it at (kept with its cache write).
    pub(crate) after: After,
    /// Whether the call gets suggestions (priced, not failed): only such a call pays the caching suggestion's
    /// write premium, so only it moves the prefix written so far.
    pub(crate) billed: bool,
    /// Whether the call was billed at the regional rates (`CallCost::regional`): its cache write's premium is
    /// priced at them.
    pub(crate) regional: bool,
}

/// What a call's session history says about it.
#[derive(Debug, Default)]
pub(crate) struct SessionFacts {
    /// Prompt tokens repeating the previous turn's prompt, when at least the model's minimum cacheable prompt
    /// or read from the cache (else 0: a shorter prefix could not have been cached).
    pub(crate) reusable: u64,
    /// Of those, read from the cache.
    pub(crate) reused: u64,
    /// Tokens of the repeated prefix sent as uncached input, when the prefix is at least the suggestion's
    /// minimum cacheable size (else 0; it may be more than `reusable` when that minimum is below the model's).
    pub(crate) missed: u64,
    /// Prompt tokens that caching the session would have written for this call.
    pub(crate) write_delta: u64,
    /// Earlier cache writes of the session now known never to have been read.
    pub(crate) unread: Vec<WriterInfo>,
}

/// The session table.
#[derive(Debug)]
pub(crate) struct Sessions {
    stripes: Box<[crate::shards::Padded<Mutex<Stripe>>]>,
    per_stripe: usize,
    untracked: AtomicU64,
    /// How long a session stays tracked without a call: [`IDLE_NS`], or the cache reuse window when longer.
    idle_ns: i64,
}

/// A session id and its hash, which keys the session table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionKey<'a> {
    pub(crate) id: &'a str,
    pub(crate) hash: u64,
}

impl<'a> SessionKey<'a> {
    pub(crate) fn of(id: &'a str) -> Self {
        let mut h = FxHasher::default();
        id.hash(&mut h);
        SessionKey { id, hash: h.finish() }
    }
}

impl Sessions {
    pub(crate) fn new(max_sessions: usize) -> Self {
        Sessions {
            stripes: (0..STRIPES).map(|_| crate::shards::Padded(Mutex::new(Stripe::default()))).collect(),
            per_stripe: max_sessions.div_ceil(STRIPES).max(1),
            untracked: AtomicU64::new(0),
            idle_ns: IDLE_NS,
        }
    }

    /// Keeps an idle session at least `ns`: a cache reuse window longer than [`IDLE_NS`] needs the previous call
    /// of a session that long (swept at two hours, a window of four never saw a call follow one three hours on).
    pub(crate) fn idle_at_least(mut self, ns: i64) -> Self {
        self.idle_ns = self.idle_ns.max(ns);
        self
    }

    /// Most sessions tracked at once.
    pub(crate) fn capacity(&self) -> usize {
        self.per_stripe.saturating_mul(STRIPES)
    }

    /// Records `rec` (metered, in `session`) and returns its facts. `now_ns` reads the clock (see below).
    pub(crate) fn observe(
        &self,
        session: SessionKey<'_>,
        rec: &CallRecord,
        how: Observe<'_>,
        now_ns: impl FnOnce() -> i64,
    ) -> SessionFacts {
        let Observe { ts_ns, reuse_window_ns, min_reusable, min_cacheable, min_missed, model, after, billed, regional } =
            how;
        let SessionKey { id: session, hash: h } = session;
        let mut facts = SessionFacts::default();
        let stripe = &self.stripes[(h as usize) & (STRIPES - 1)].0;
        let mut stripe = stripe.lock();
        let stripe = &mut *stripe;
        // A record stamped far ahead (a skewed client clock, replayed from its journal) would move the stripe's
        // sweep and its session's last call into the future: the stripe would stop sweeping, the session never
        // expire, and its correctly stamped calls never follow it again. As the store does, a record more than
        // `FUTURE_TOLERANCE` ahead of the clock is taken as now. The clock is read only when a record is a
        // minute or more past the stripe's last sweep (at most once a minute per stripe in live use), which
        // bounds every other record to a minute past a time so checked.
        let mut ts_ns = ts_ns;
        if ts_ns.saturating_sub(stripe.last_sweep_ns) >= SWEEP_EVERY_NS {
            let now = now_ns();
            if ts_ns > now.saturating_add(FUTURE_TOLERANCE_NS) {
                ts_ns = now;
            }
        }
        // Idle sessions are swept once a minute (record time), full or not, so the table holds the sessions
        // of the last two hours rather than growing to its cap; a full stripe that swept recently refuses new
        // sessions instead.
        if ts_ns.saturating_sub(stripe.last_sweep_ns) >= SWEEP_EVERY_NS {
            stripe.last_sweep_ns = ts_ns;
            let cutoff = ts_ns.saturating_sub(self.idle_ns);
            stripe.map.retain(|_, st| {
                if st.last_ns >= cutoff {
                    return true;
                }
                for h in &mut st.models {
                    facts.unread.extend(h.pending.drain(..).map(|p| *p.writer));
                }
                false
            });
            // Give back what a burst of sessions grew the table to.
            if stripe.map.capacity() > 4 * stripe.map.len() + 64 {
                stripe.map.shrink_to_fit();
            }
        }
        if stripe.map.len() >= self.per_stripe && !stripe.map.contains_key(&h) {
            self.untracked.fetch_add(1, Ordering::Relaxed);
            return facts;
        }
        let st = match stripe.map.entry(h) {
            std::collections::hash_map::Entry::Occupied(o) if *o.get().id != *session => {
                // Another session with the same hash holds the slot: this call is not tracked.
                self.untracked.fetch_add(1, Ordering::Relaxed);
                return facts;
            }
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(SessionState { id: Arc::from(session), last_ns: i64::MIN, ..Default::default() })
            }
        };
        let tokens = &rec.tokens;
        let prompt = tokens.prompt_total();

        // Writes past their lifetime and the grace a late-arriving reader has were never read (of any model).
        st.take_unread(ts_ns, &mut facts.unread);
        st.last_ns = st.last_ns.max(ts_ns);
        // The rest is the history of the call's model (at its provider): a read finds only that model's writes,
        // and a prompt repeats only that model's previous call (another model's prefix is not in its cache).
        let SessionState { id: session_id, models, .. } = st;
        let at = SessionState::history(models, model, rec.provider.as_ref(), &mut facts.unread);
        let st = &mut models[at];
        // A read reads every write made before it and still alive when it started. One of their boxes is kept
        // for this call's own write.
        let mut spare = None;
        if tokens.cache_read > 0 {
            // In place of the earliest kept, when later than it.
            if let Some(earliest) = st.read_starts.iter_mut().min()
                && *earliest < ts_ns
            {
                *earliest = ts_ns;
            }
            let mut i = 0;
            while i < st.pending.len() {
                let p = &st.pending[i];
                if p.written_ns > ts_ns || p.expires_ns < ts_ns {
                    i += 1;
                } else {
                    spare = Some(st.pending.remove(i).writer);
                }
            }
        }

        let follows =
            st.last_ns != i64::MIN && ts_ns >= st.last_ns && ts_ns.saturating_sub(st.last_ns) <= reuse_window_ns;
        let repeated = if follows { st.last_prompt.min(prompt) } else { 0 };
        // A repeated prefix shorter than the model's minimum could not have been cached: it is not reusable
        // (the reuse rate would blame the session for it), unless the call read it from the cache.
        if repeated > 0 && (repeated >= min_reusable || tokens.cache_read > 0) {
            facts.reusable = repeated;
            facts.reused = tokens.cache_read.min(facts.reusable);
        }
        if follows {
            // Against the suggestion's minimum (the right-size target's, for a call also right-sized), which
            // may be lower than the model's own.
            let missed = (repeated - tokens.cache_read.min(repeated)).min(tokens.input);
            // The model's minimum is the cached prefix's (a repeated prefix that long could have been cached
            // whole); a few uncached tokens after a cached prefix are not worth a suggestion.
            if missed >= min_missed.max(1) && repeated >= min_cacheable {
                facts.missed = missed;
                // A failed or unpriced call pays no premium (it has no caching suggestion): the prefix up to it
                // is left for the next billed call to write. Moved on here, that call paid only for what came
                // after, and the saving counted a write no call had paid for.
                if billed {
                    facts.write_delta = prompt.saturating_sub(st.written_upto);
                    st.written_upto = prompt;
                }
            }
        } else if ts_ns >= st.last_ns {
            st.written_upto = 0;
        }
        if ts_ns >= st.last_ns {
            st.last_ns = ts_ns;
            st.last_prompt = prompt;
        }

        // A failed call's whole cost is in `failed_calls` (in no other suggestion): its cache write is not
        // waited on to be read either.
        if tokens.cache_write() > 0 && !rec.outcome.is_error() {
            let mut writer = match spare {
                Some(mut w) => {
                    w.refill(ts_ns, model, rec, prompt, after, regional);
                    w
                }
                None => {
                    let mut w = Box::new(WriterInfo {
                        ts: ts_ns.div_euclid(1_000_000_000),
                        model: model.cloned(),
                        provider: rec.provider.clone(),
                        dims: labels_of(&rec.dimensions),
                        service_tier: rec.service_tier.clone(),
                        speed: rec.speed.clone(),
                        regional,
                        prompt_total: prompt,
                        write_5m: tokens.cache_write_5m,
                        write_1h: tokens.cache_write_1h,
                        counts_write: true,
                        after,
                    });
                    // A write pending of this model (its latest), else of another.
                    let previous = models[at].pending.last().or_else(|| models.iter().find_map(|h| h.pending.last()));
                    w.share_labels(session_id, previous.map(|p| &*p.writer));
                    w
                }
            };
            let st = &mut models[at];
            // Each lifetime's part of the write waits on its own: a call caching its tools for an hour and the
            // conversation for 5 minutes has a 5-minute part that a read 20 minutes later did not find.
            if tokens.cache_write_5m > 0 && tokens.cache_write_1h > 0 {
                let mut short = writer.clone();
                short.write_1h = 0;
                writer.write_5m = 0;
                writer.counts_write = false;
                st.add_pending(ts_ns, TTL_5M_NS, short, &mut facts.unread);
            }
            let ttl = if writer.write_1h > 0 { TTL_1H_NS } else { TTL_5M_NS };
            st.add_pending(ts_ns, ttl, writer, &mut facts.unread);
        }
        facts
    }

    /// Hands `f` every pending write whose lifetime ended more than [`LATE_READ_GRACE_NS`] before `now_ns`
    /// (never read), one at a time (a month of sessions can hold a hundred thousand), and drops sessions idle
    /// for two hours.
    pub(crate) fn take_expired(&self, now_ns: i64, mut f: impl FnMut(WriterInfo)) {
        let cutoff = now_ns.saturating_sub(self.idle_ns);
        let mut expired = Vec::new();
        for stripe in self.stripes.iter() {
            // Taken under the stripe's lock, handed to `f` (pricing, the store) after it: recording threads
            // whose sessions live in this stripe wait for the sweep only.
            let mut stripe = stripe.0.lock();
            stripe.map.retain(|_, st| {
                st.take_unread(now_ns, &mut expired);
                st.last_ns >= cutoff || st.has_pending()
            });
            drop(stripe);
            for w in expired.drain(..) {
                f(w);
            }
        }
    }

    /// The ids of the sessions tracked (at most the capacity). Each stripe's ids are taken under its lock (a
    /// reference count each) and handed to `f` after it: `f` (the HTTP API's tenant sweep: a lookup and an
    /// allocation per session) ran with the lock held, and recording threads whose sessions fall in that stripe
    /// waited for it.
    #[cfg(feature = "http")]
    pub(crate) fn ids(&self, mut f: impl FnMut(&Arc<str>)) {
        let mut ids: Vec<Arc<str>> = Vec::new();
        for stripe in self.stripes.iter() {
            ids.clear();
            ids.extend(stripe.0.lock().map.values().map(|state| state.id.clone()));
            for id in &ids {
                f(id);
            }
        }
    }

    /// Drops the history of each session `forget` names, and clears the values it names from the dimensions of
    /// the other sessions' pending writes (their never-read waste is then filed without them). Returns the
    /// sessions and writes that named a value (in a dry run, counted only).
    pub(crate) fn forget(&self, forget: &crate::erase::Forget) -> u64 {
        let mut found = 0;
        for stripe in self.stripes.iter() {
            let mut stripe = stripe.0.lock();
            stripe.map.retain(|_, st| {
                if forget.names("session", &st.id) {
                    found += 1;
                    return forget.dry_run;
                }
                for h in &mut st.models {
                    for p in &mut h.pending {
                        found += u64::from(p.writer.dims.forget(forget));
                    }
                }
                true
            });
        }
        found
    }

    /// Sessions tracked now.
    pub(crate) fn tracked(&self) -> usize {
        self.stripes.iter().map(|s| s.0.lock().map.len()).sum()
    }

    /// Sessions not tracked because the table was full.
    pub(crate) fn untracked(&self) -> u64 {
        self.untracked.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
pub(in crate::ledger) mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::record::{Outcome, TokenUsage};

    pub(in crate::ledger) fn call(model: &str, agent: &str, cache_read: u64, write_5m: u64) -> CallRecord {
        CallRecord {
            timestamp: Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap(),
            duration_us: 0,
            time_to_first_token_us: None,
            model: Some(model.into()),
            provider: Some("anthropic".into()),
            operation: None,
            request_id: None,
            streaming: None,
            service_tier: None,
            speed: None,
            inference_geo: None,
            tokens: TokenUsage { input: 10, cache_read, cache_write_5m: write_5m, ..TokenUsage::default() },
            web_search_requests: 0,
            metered: true,
            outcome: Outcome::Ok,
            dimensions: Dimensions { session: Some("s".into()), agent: Some(agent.into()), ..Dimensions::default() },
            cost: None,
        }
    }

    /// How the tests observe calls: a 60 s reuse window, writers filed under no model unless a test says.
    fn at(ts_ns: i64, min_cacheable: u64) -> Observe<'static> {
        Observe {
            ts_ns,
            reuse_window_ns: 60_000_000_000,
            min_reusable: min_cacheable,
            min_cacheable,
            min_missed: min_cacheable,
            model: None,
            after: After::default(),
            billed: true,
            regional: false,
        }
    }

    /// A clock the tests' records are never ahead of.
    const NO_CLOCK: fn() -> i64 = || i64::MAX;

    #[test]
    fn pending_writes_of_a_session_hold_its_labels_once() {
        // Each call's dimensions are allocations of its own (a span per request); writes that read nothing kept a
        // copy of each: 64 pending writes a session, 5.8 GB at the caps with 128-byte values.
        let sessions = Sessions::new(16);
        let s = 1_000_000_000;
        for (n, model) in ["claude-a", "claude-a", "claude-b"].into_iter().enumerate() {
            let mut rec = call(model, &"agent-".repeat(20), 0, 2_000);
            rec.dimensions.user = Some("user-".repeat(20).into());
            let model: Arc<str> = model.into();
            let how = Observe { model: Some(&model), ..at(n as i64 * s, 1) };
            sessions.observe(SessionKey::of("s"), &rec, how, NO_CLOCK);
        }
        let stripe = sessions.stripes.iter().find(|st| !st.0.lock().map.is_empty()).unwrap().0.lock();
        let state = stripe.map.values().next().unwrap();
        let writes: Vec<&WriterInfo> = state.models.iter().flat_map(|h| h.pending.iter().map(|p| &*p.writer)).collect();
        assert_eq!(writes.len(), 3);
        let first = writes[0];
        for w in &writes {
            assert!(Arc::ptr_eq(w.dims.session.as_ref().unwrap(), &state.id), "the session's own id");
            assert!(Arc::ptr_eq(w.dims.agent.as_ref().unwrap(), first.dims.agent.as_ref().unwrap()));
            assert!(Arc::ptr_eq(w.dims.user.as_ref().unwrap(), first.dims.user.as_ref().unwrap()));
            assert!(Arc::ptr_eq(w.provider.as_ref().unwrap(), first.provider.as_ref().unwrap()));
        }
        let shared_agent = Arc::clone(first.dims.agent.as_ref().unwrap());
        drop(stripe);
        // A call that reads a write and makes its own refills the box it read, keeping the labels it holds.
        let mut rec = call("claude-a", &"agent-".repeat(20), 500, 2_000);
        rec.dimensions.user = Some("user-".repeat(20).into());
        let model: Arc<str> = "claude-a".into();
        sessions.observe(SessionKey::of("s"), &rec, Observe { model: Some(&model), ..at(4 * s, 1) }, NO_CLOCK);
        let stripe = sessions.stripes.iter().find(|st| !st.0.lock().map.is_empty()).unwrap().0.lock();
        let state = stripe.map.values().next().unwrap();
        let refilled = &state.models[0].pending.last().unwrap().writer;
        assert_eq!(refilled.ts, 4, "the read call's own write");
        assert!(Arc::ptr_eq(refilled.dims.agent.as_ref().unwrap(), &shared_agent));
        assert!(Arc::ptr_eq(refilled.dims.session.as_ref().unwrap(), &state.id));
        // Equal values only: another agent's write keeps its own.
        drop(stripe);
        let other = call("claude-a", "someone-else", 0, 2_000);
        let model: Arc<str> = "claude-a".into();
        sessions.observe(SessionKey::of("s"), &other, Observe { model: Some(&model), ..at(5 * s, 1) }, NO_CLOCK);
        let stripe = sessions.stripes.iter().find(|st| !st.0.lock().map.is_empty()).unwrap().0.lock();
        let state = stripe.map.values().next().unwrap();
        let last = state.models[0].pending.last().unwrap();
        assert_eq!(last.writer.dims.agent.as_deref(), Some("someone-else"));
    }

    #[test]
    fn a_record_stamped_far_ahead_is_taken_as_now() {
        let sessions = Sessions::new(16);
        let s = 1_000_000_000;
        let now = 100 * s;
        let year_2099 = 4_070_908_800 * s;
        sessions.observe(SessionKey::of("s"), &call("claude-a", "x", 0, 1_000), at(year_2099, 1), || now);
        // The next call, a second later by the clock, follows it: its prompt repeats the previous one.
        let f = sessions.observe(SessionKey::of("s"), &call("claude-a", "x", 1_000, 0), at(now + s, 1), || now);
        assert_eq!((f.reusable, f.reused), (1_010, 1_000));
        // Idle for good by the clock, it is let go (its last call is not in 2099).
        sessions.take_expired(now + 3 * IDLE_NS, |_| {});
        assert_eq!(sessions.tracked(), 0);
    }

    #[test]
    fn a_reuse_window_past_the_idle_time_keeps_the_session_that_long() {
        // A 4-hour window: a call 3 hours after its session's last follows it, though another session's call
        // swept the stripes in between (at two hours idle, the session was dropped and the call followed nothing).
        let h = 3_600 * 1_000_000_000;
        let sessions = Sessions::new(16).idle_at_least(4 * h);
        let how = |ts| Observe { reuse_window_ns: 4 * h, ..at(ts, 1) };
        sessions.observe(SessionKey::of("s"), &call("claude-a", "x", 0, 1_000), how(0), NO_CLOCK);
        sessions.take_expired(2 * h + 60_000_000_000, |_| {});
        let f = sessions.observe(SessionKey::of("s"), &call("claude-a", "x", 1_000, 0), how(3 * h), NO_CLOCK);
        assert_eq!((f.reusable, f.reused), (1_010, 1_000));
        // The default keeps two hours.
        let sessions = Sessions::new(16);
        sessions.observe(SessionKey::of("s"), &call("claude-a", "x", 0, 1_000), how(0), NO_CLOCK);
        sessions.take_expired(2 * h + 60_000_000_000, |_| {});
        assert_eq!(sessions.tracked(), 0);
    }

    #[test]
    fn ids_whose_hashes_collide_do_not_share_a_history() {
        let sessions = Sessions::new(16);
        let s = 1_000_000_000;
        // "a" writes 1,000 tokens; "b", with the same hash, reads 1,000 a second later: had it shared a's
        // history, a's write would count as read and b's prompt as reusable.
        sessions.observe(SessionKey { id: "a", hash: 7 }, &call("claude-a", "x", 0, 1_000), at(s, 1), NO_CLOCK);
        let f =
            sessions.observe(SessionKey { id: "b", hash: 7 }, &call("claude-a", "x", 1_000, 0), at(2 * s, 1), NO_CLOCK);
        assert_eq!((f.reusable, f.reused), (0, 0));
        assert_eq!(sessions.untracked.load(Ordering::Relaxed), 1, "b's call is counted as untracked");
        let mut unread = Vec::new();
        sessions.take_expired(2 * s + TTL_5M_NS + LATE_READ_GRACE_NS + 1, |w| unread.push(w));
        assert_eq!(unread.len(), 1, "a's write was never read");
        // "a" itself still follows its own history.
        let f = sessions.observe(SessionKey { id: "a", hash: 7 }, &call("claude-a", "x", 0, 0), at(3 * s, 1), NO_CLOCK);
        assert_eq!(f.reusable, 10);
    }

    #[test]
    fn a_write_read_by_a_call_that_arrives_after_its_lifetime_is_read() {
        let s = 1_000_000_000;
        let m = 60 * s;
        // W writes at 12:00 (t = 0); R starts at 4:30, within W's lifetime, reads it, and ends at 6:00.
        let writer = call("claude-a", "w", 0, 4_000);
        let reader = call("claude-a", "r", 4_000, 0);
        // A table where W has been written.
        let written = || {
            let sessions = Sessions::new(16);
            sessions.observe(SessionKey::of("s"), &writer, at(0, 1024), NO_CLOCK);
            sessions
        };
        // A query sweeps at 5:30 while R is still running: W is not yet counted as never read.
        let sessions = written();
        let mut unread = Vec::new();
        sessions.take_expired(5 * m + 30 * s, |w| unread.push(w));
        assert!(unread.is_empty(), "swept while its reader ran");
        let f = sessions.observe(SessionKey::of("s"), &reader, at(4 * m + 30 * s, 1024), NO_CLOCK);
        assert!(f.unread.is_empty());
        sessions.take_expired(60 * m, |w| unread.push(w));
        assert!(unread.is_empty(), "R read W");
        // A shorter call of the session that started after W's lifetime arrives before R: the same.
        let sessions = written();
        let f =
            sessions.observe(SessionKey::of("s"), &call("claude-a", "p", 10, 0), at(5 * m + 10 * s, 1024), NO_CLOCK);
        assert!(f.unread.is_empty(), "{:?}", f.unread);
        let f = sessions.observe(SessionKey::of("s"), &reader, at(4 * m + 30 * s, 1024), NO_CLOCK);
        assert!(f.unread.is_empty());
        sessions.take_expired(60 * m, |w| unread.push(w));
        assert!(unread.is_empty(), "R read W");
        // A read that starts after W's lifetime does not read it: W is never read, once its grace is over.
        let sessions = written();
        let f = sessions.observe(SessionKey::of("s"), &reader, at(6 * m, 1024), NO_CLOCK);
        assert!(f.unread.is_empty());
        sessions.take_expired(5 * m + LATE_READ_GRACE_NS, |w| unread.push(w));
        assert!(unread.is_empty(), "still in its grace");
        sessions.take_expired(5 * m + LATE_READ_GRACE_NS + 1, |w| unread.push(w));
        assert_eq!(unread.len(), 1);
    }

    #[test]
    fn a_write_seen_after_the_call_that_read_it_is_read() {
        // W starts at 0 and writes 4,000 tokens, streaming for a minute; R starts at 5 s, reads them and ends at
        // 8 s, so R is accounted first (another thread). W was queued after R had passed, and came out as never
        // read ten minutes later.
        let s = 1_000_000_000;
        let sessions = Sessions::new(16);
        sessions.observe(SessionKey::of("s"), &call("claude-a", "r", 4_000, 0), at(5 * s, 1024), NO_CLOCK);
        let f = sessions.observe(SessionKey::of("s"), &call("claude-a", "w", 0, 4_000), at(0, 1024), NO_CLOCK);
        assert!(f.unread.is_empty());
        let mut unread = Vec::new();
        sessions.take_expired(3_600 * s, |w| unread.push(w));
        assert!(unread.is_empty(), "R read W: {unread:?}");
        // Nor when a later read, past its lifetime, came in before it too: R at 2 minutes and R2 at 12 (a
        // 20-minute call writing a 5-minute entry). With the latest read alone, R2's, W was never read.
        let m = 60 * s;
        let sessions = Sessions::new(16);
        for read_at in [2 * m, 12 * m] {
            sessions.observe(SessionKey::of("s"), &call("claude-a", "r", 4_000, 0), at(read_at, 1024), NO_CLOCK);
        }
        sessions.observe(SessionKey::of("s"), &call("claude-a", "w", 0, 4_000), at(0, 1024), NO_CLOCK);
        let mut unread = Vec::new();
        sessions.take_expired(3_600 * s, |w| unread.push(w));
        assert!(unread.is_empty(), "R read W: {unread:?}");
        // A read that started before the write (or after its lifetime) did not read it.
        for read_at in [0, 6 * 60 * s] {
            let sessions = Sessions::new(16);
            sessions.observe(SessionKey::of("s"), &call("claude-a", "r", 4_000, 0), at(read_at, 1024), NO_CLOCK);
            sessions.observe(SessionKey::of("s"), &call("claude-a", "w", 0, 4_000), at(5 * s, 1024), NO_CLOCK);
            let mut unread = Vec::new();
            sessions.take_expired(3_600 * s, |w| unread.push(w));
            assert_eq!(unread.len(), 1, "a read at {read_at}");
        }
    }

    #[test]
    fn a_reused_writer_box_carries_the_new_writes_facts() {
        let sessions = Sessions::new(16);
        let s = 1_000_000_000;
        // Call 1 writes; call 2 reads it (its box is reused) and writes its own, with other labels.
        let first = call("claude-b", "first", 0, 1_000);
        let how = Observe { model: first.model.as_ref(), ..at(s, 1024) };
        let f = sessions.observe(SessionKey::of("s"), &first, how, NO_CLOCK);
        assert!(f.unread.is_empty());
        let mut second = call("claude-b", "second", 1_000, 300);
        second.service_tier = Some("priority".into());
        second.dimensions.extra = vec![("team".into(), "blue".into())];
        let right_sized = After { rates: crate::ledger::AfterRates::RightSized, batch: true };
        let how = Observe { model: second.model.as_ref(), after: right_sized, ..at(2 * s, 1024) };
        let f = sessions.observe(SessionKey::of("s"), &second, how, NO_CLOCK);
        assert!(f.unread.is_empty(), "a read write is not unread: {:?}", f.unread);
        let mut unread = Vec::new();
        sessions.take_expired(2 * s + TTL_5M_NS + LATE_READ_GRACE_NS + 1, |w| unread.push(w));
        assert_eq!(unread.len(), 1);
        let w = &unread[0];
        assert_eq!((w.ts, w.prompt_total, w.write_5m, w.write_1h), (2, 1_310, 300, 0));
        assert_eq!((w.model.as_deref(), w.service_tier.as_deref()), (Some("claude-b"), Some("priority")));
        assert_eq!(w.after, right_sized);
        assert_eq!(w.dims.agent.as_deref(), Some("second"));
        assert!(w.dims.extra.is_empty(), "no key of the ledger's maps: not kept");
    }

    #[test]
    fn a_write_of_both_lifetimes_waits_for_each_part_on_its_own() {
        // A at 09:00 caches its tools for an hour (8,000) and the conversation for 5 minutes (3,000); B at 09:20
        // reads the hour's part. The 5-minute part expired unread at 09:05: it was kept for the hour with the
        // rest, and B's read counted it as read.
        let sessions = Sessions::new(16);
        let m = 60 * 1_000_000_000;
        let mut a = call("claude-a", "x", 0, 3_000);
        a.tokens.cache_write_1h = 8_000;
        let f = sessions.observe(SessionKey::of("s"), &a, at(0, 1), NO_CLOCK);
        assert!(f.unread.is_empty());
        let f = sessions.observe(SessionKey::of("s"), &call("claude-a", "x", 8_000, 0), at(20 * m, 1), NO_CLOCK);
        let parts: Vec<(u64, u64)> = f.unread.iter().map(|w| (w.write_5m, w.write_1h)).collect();
        assert_eq!(parts, [(3_000, 0)], "the 5-minute part, never read");
        let mut unread = Vec::new();
        sessions.take_expired(3 * 60 * m, |w| unread.push(w));
        assert!(unread.is_empty(), "the hour's part was read: {unread:?}");
    }

    #[test]
    fn a_full_list_of_writes_gives_up_one_whose_lifetime_is_over_first() {
        // One 1-hour write, then seven 5-minute writes a minute apart, none read; at 13 minutes (the 5-minute
        // writes over, still in their grace) a ninth write: the list is full, and the write it gives up is the
        // first 5-minute one (over), not the hour's (alive, and the oldest), which a read at 20 minutes finds.
        let sessions = Sessions::new(16);
        let m = 60 * 1_000_000_000;
        let mut hour = call("claude-a", "x", 0, 0);
        hour.tokens.cache_write_1h = 5_000;
        sessions.observe(SessionKey::of("s"), &hour, at(0, 1), NO_CLOCK);
        for i in 1..=7 {
            let f = sessions.observe(SessionKey::of("s"), &call("claude-a", "x", 0, 100), at(i * m, 1), NO_CLOCK);
            assert!(f.unread.is_empty(), "write {i}");
        }
        let f = sessions.observe(SessionKey::of("s"), &call("claude-a", "x", 0, 100), at(13 * m, 1), NO_CLOCK);
        let given_up: Vec<(i64, u64, u64)> = f.unread.iter().map(|w| (w.ts, w.write_5m, w.write_1h)).collect();
        assert_eq!(given_up, [(60, 100, 0)], "the first 5-minute write, whose lifetime is over");
        let f = sessions.observe(SessionKey::of("s"), &call("claude-a", "x", 5_000, 0), at(20 * m, 1), NO_CLOCK);
        assert!(f.unread.iter().all(|w| w.write_1h == 0), "the hour's write was read: {:?}", f.unread);
        let mut unread = Vec::new();
        sessions.take_expired(3 * 60 * m, |w| unread.push(w));
        assert!(unread.iter().all(|w| w.write_1h == 0), "{unread:?}");
    }

    #[test]
    fn a_model_reads_only_its_own_writes_and_repeats_only_its_own_prompt() {
        let m = 60 * 1_000_000_000;
        let main = |read, write| call("claude-main", "main", read, write);
        let side = |read, write| call("claude-side", "side", read, write);
        let sessions = Sessions::new(16);
        let observe = |id: &str, rec: &CallRecord, t: i64| {
            let how = Observe { model: rec.model.as_ref(), reuse_window_ns: 5 * m, ..at(t, 1) };
            sessions.observe(SessionKey::of(id), rec, how, NO_CLOCK)
        };
        let unread_after_grace = |t: i64| {
            let mut unread = Vec::new();
            sessions.take_expired(t + TTL_5M_NS + LATE_READ_GRACE_NS + 1, |w| unread.push(w));
            unread.iter().map(|w| (w.model.as_deref().unwrap_or_default().to_owned(), w.write_5m)).collect::<Vec<_>>()
        };
        // Session s: the main model writes 4,000 tokens at 09:00; a side model writes 1,000 of its own at 09:01
        // and reads them at 09:02; the main model reads its 4,000 at 09:03. Each call follows its own model's
        // previous call: the main model's second prompt repeats its first (4,010), not the side call's (1,010).
        assert_eq!(observe("s", &main(0, 4_000), 0).reusable, 0);
        assert_eq!(observe("s", &side(0, 1_000), m).reusable, 0, "the side model's first call repeats nothing");
        let f = observe("s", &side(1_000, 0), 2 * m);
        assert_eq!((f.reusable, f.reused), (1_010, 1_000));
        let f = observe("s", &main(4_000, 0), 3 * m);
        assert_eq!((f.reusable, f.reused), (4_010, 4_000), "follows the main model's own previous call");
        assert_eq!(unread_after_grace(3 * m), [], "each write was read by its own model");
        // Session t: the main model writes at 09:00 and never returns; a side call reads the cache at 09:01.
        // The side call read its own model's cache, not the main model's write, which stays never read.
        observe("t", &main(0, 4_000), 0);
        observe("t", &side(1_000, 0), m);
        assert_eq!(unread_after_grace(m), [("claude-main".to_owned(), 4_000)]);
        // Session u: the other way round.
        observe("u", &side(0, 700), 0);
        observe("u", &main(700, 0), m);
        assert_eq!(unread_after_grace(m), [("claude-side".to_owned(), 700)]);
        // Session v: the same model at another provider (its own cache) neither reads the write nor repeats it.
        observe("v", &main(0, 4_000), 0);
        let mut elsewhere = main(4_000, 0);
        elsewhere.provider = Some("aws.bedrock".into());
        assert_eq!(observe("v", &elsewhere, m).reusable, 0);
        assert_eq!(unread_after_grace(m), [("claude-main".to_owned(), 4_000)]);
        // Session w: a call that names no provider is taken as the one its model's history has (an application
        // that tags some calls only), and reads its write.
        observe("w", &main(0, 4_000), 0);
        let mut untagged = main(4_000, 0);
        untagged.provider = None;
        assert_eq!(observe("w", &untagged, m).reused, 4_000);
        assert_eq!(unread_after_grace(m), []);
    }

    #[test]
    fn a_session_keeps_at_most_max_models_histories() {
        let sessions = Sessions::new(16);
        let m = 60 * 1_000_000_000;
        let observe = |id: &str, rec: &CallRecord, t: i64| {
            let how = Observe { model: rec.model.as_ref(), ..at(t, 1) };
            sessions.observe(SessionKey::of(id), rec, how, NO_CLOCK).unread
        };
        // Nine models each write once, a minute apart: the first model's history, idle longest, is given up and
        // its write counted as never read at once; the others wait, each counted once when it expires.
        let names: Vec<String> = (0..=MAX_MODELS).map(|i| format!("claude-{i}")).collect();
        let mut given_up = Vec::new();
        for (i, name) in names.iter().enumerate() {
            given_up.extend(observe("s", &call(name, "x", 0, 100), i as i64 * m));
        }
        let models: Vec<Option<&str>> = given_up.iter().map(|w| w.model.as_deref()).collect();
        assert_eq!(models, [Some("claude-0")]);
        let mut unread = Vec::new();
        sessions.take_expired(MAX_MODELS as i64 * m + TTL_5M_NS + LATE_READ_GRACE_NS + 1, |w| unread.push(w));
        let mut models: Vec<&str> = unread.iter().filter_map(|w| w.model.as_deref()).collect();
        models.sort_unstable();
        assert_eq!(models, names[1..].iter().map(String::as_str).collect::<Vec<_>>());

        // A history waiting on a write is given up only when every other one is too: the main model's hour
        // write at 09:00, then seven models that write nothing, then an eighth: the first of the seven goes.
        assert!(observe("t", &call("claude-main", "x", 0, 0), 0).is_empty());
        let mut hour = call("claude-main", "x", 0, 0);
        hour.tokens.cache_write_1h = 5_000;
        assert!(observe("t", &hour, 0).is_empty());
        for (i, name) in names[1..].iter().enumerate() {
            assert!(observe("t", &call(name, "x", 0, 0), (i as i64 + 1) * m).is_empty(), "{name}");
        }
        // The main model reads its write at 09:20: nothing was given up.
        assert!(observe("t", &call("claude-main", "x", 5_000, 0), 20 * m).is_empty());
        let mut unread = Vec::new();
        sessions.take_expired(3 * 60 * m, |w| unread.push(w));
        assert!(unread.is_empty(), "{unread:?}");
    }

    #[test]
    fn a_repeat_shorter_than_the_models_minimum_is_not_reusable_unless_read() {
        // Prompts of 500, 600 and 700 tokens a second apart, on a model that caches 1,024 or more: the second
        // repeats 500 tokens that could not have been cached (not reusable: the reuse rate would count them as
        // missed); the third reads 300 from the cache, and a repeat the call read from the cache counts (the
        // real API caches nothing shorter than the minimum, so there it is at least that long).
        let sessions = Sessions::new(16);
        let s = 1_000_000_000;
        let prompt = |input, read| {
            let mut c = call("claude-a", "x", read, 0);
            c.tokens.input = input;
            c
        };
        let f = sessions.observe(SessionKey::of("s"), &prompt(500, 0), at(s, 1_024), NO_CLOCK);
        assert_eq!((f.reusable, f.reused), (0, 0));
        let f = sessions.observe(SessionKey::of("s"), &prompt(600, 0), at(2 * s, 1_024), NO_CLOCK);
        assert_eq!((f.reusable, f.reused, f.missed), (0, 0, 0));
        let f = sessions.observe(SessionKey::of("s"), &prompt(400, 300), at(3 * s, 1_024), NO_CLOCK);
        assert_eq!((f.reusable, f.reused), (600, 300));
        // A model whose own minimum is 4,096, right-sized to one whose minimum is 1,024: a 2,000-token repeat is
        // not reusable on the model called, but the caching suggestion on the target still counts it as missed.
        let how = |t| Observe { min_reusable: 4_096, ..at(t, 1_024) };
        let f = sessions.observe(SessionKey::of("r"), &prompt(2_000, 0), how(s), NO_CLOCK);
        assert_eq!(f.reusable, 0);
        let f = sessions.observe(SessionKey::of("r"), &prompt(2_500, 0), how(2 * s), NO_CLOCK);
        assert_eq!((f.reusable, f.missed, f.write_delta), (0, 2_000, 2_500));
    }
}
