//! One time bucket: totals, compound series, the high-cardinality maps, tools and distributions, each map
//! with a cardinality cap and an overflow entry.

use std::sync::{Arc, LazyLock};

use rustc_hash::FxHashMap as HashMap;

use super::agg::{
    Agg, BucketHist, Core, OTHER, Opportunities, Sample, SeriesKey, SeriesRef, ToolAgg, pair_hash, same_opt, same_str,
};
use crate::erase::Forget;

/// Storage tiers, finest first. A bucket's tier sets its width and its caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Tier {
    Minute,
    Hour,
    Day,
    Month,
    Archive,
}

/// Cardinality caps of one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caps {
    pub(crate) series: usize,
    pub(crate) sessions: usize,
    pub(crate) users: usize,
    pub(crate) project_sessions: usize,
    pub(crate) tools: usize,
    pub(crate) session_tools: usize,
}

impl Caps {
    /// No cap: a ledger built with [`LedgerConfig::with_unbounded_breakdowns`](super::LedgerConfig::with_unbounded_breakdowns).
    pub(crate) const UNBOUNDED: Caps = Caps {
        series: usize::MAX,
        sessions: usize::MAX,
        users: usize::MAX,
        project_sessions: usize::MAX,
        tools: usize::MAX,
        session_tools: usize::MAX,
    };

    /// Most entries a bucket with these caps can hold, overflow entries included (`usize::MAX` unbounded).
    pub(crate) fn max_entries(&self) -> usize {
        [
            self.series,
            OVERFLOW_RESERVE + 1,
            self.sessions,
            1,
            self.users,
            1,
            self.project_sessions,
            OVERFLOW_RESERVE + 1,
            // The `(project, (other))` entries of the projects the series keep, past the reserve (`add_pair`).
            self.series,
            self.tools,
            1,
            self.session_tools,
            OVERFLOW_RESERVE + 1,
            // The `(session, (other))` entries past the reserve, as many as the bucket keeps sessions.
            self.sessions,
        ]
        .into_iter()
        .fold(0usize, usize::saturating_add)
    }
}

impl Tier {
    /// The caps of a bucket of this tier (documented in the module docs).
    pub(crate) const fn caps(self) -> Caps {
        match self {
            Tier::Minute => {
                Caps { series: 64, sessions: 64, users: 64, project_sessions: 64, tools: 32, session_tools: 64 }
            }
            Tier::Hour => {
                Caps { series: 256, sessions: 256, users: 256, project_sessions: 256, tools: 128, session_tools: 256 }
            }
            Tier::Day | Tier::Month | Tier::Archive => {
                Caps { series: 383, sessions: 447, users: 447, project_sessions: 383, tools: 128, session_tools: 383 }
            }
        }
    }
}

/// Slots past the series (project>session, session>tool) cap kept for the per-model (per-project,
/// per-session) overflow keys.
pub(crate) const OVERFLOW_RESERVE: usize = 64;

static OTHER_ARC: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(OTHER));

pub(crate) fn other() -> Arc<str> {
    OTHER_ARC.clone()
}

/// The dimension values of one record, borrowed from it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Keys<'a> {
    pub(crate) model: Option<&'a Arc<str>>,
    pub(crate) provider: Option<&'a Arc<str>>,
    pub(crate) project: Option<&'a Arc<str>>,
    pub(crate) agent: Option<&'a Arc<str>>,
    pub(crate) operation: Option<&'a Arc<str>>,
    pub(crate) task: Option<&'a Arc<str>>,
    pub(crate) tenant: Option<&'a Arc<str>>,
    pub(crate) session: Option<&'a Arc<str>>,
    pub(crate) user: Option<&'a Arc<str>>,
}

impl<'a> Keys<'a> {
    pub(crate) fn series(&self) -> SeriesRef<'a> {
        SeriesRef {
            model: self.model.map(|s| &**s),
            provider: self.provider.map(|s| &**s),
            project: self.project.map(|s| &**s),
            agent: self.agent.map(|s| &**s),
            operation: self.operation.map(|s| &**s),
            task: self.task.map(|s| &**s),
            tenant: self.tenant.map(|s| &**s),
        }
    }

    fn series_key(&self) -> SeriesKey {
        SeriesKey {
            model: self.model.cloned(),
            provider: self.provider.cloned(),
            project: self.project.cloned(),
            agent: self.agent.cloned(),
            operation: self.operation.cloned(),
            task: self.task.cloned(),
            tenant: self.tenant.cloned(),
        }
    }
}

fn partial_key(model: Option<Arc<str>>, provider: Option<Arc<str>>) -> SeriesKey {
    SeriesKey {
        model,
        provider,
        project: Some(other()),
        agent: Some(other()),
        operation: Some(other()),
        task: Some(other()),
        tenant: Some(other()),
    }
}

fn full_overflow_key() -> SeriesKey {
    partial_key(Some(other()), Some(other()))
}

/// The hash of [`full_overflow_key`], without building it (computed once: FxHash is unseeded).
fn full_overflow_hash() -> u64 {
    static HASH: LazyLock<u64> = LazyLock::new(|| {
        let o = Some(OTHER);
        SeriesRef { model: o, provider: o, project: o, agent: o, operation: o, task: o, tenant: o }.hash64()
    });
    *HASH
}

/// The hash of the last overflow pair, `((other), (other))`, of the (project, session) and (session, tool) maps.
static FULL_PAIR_HASH: LazyLock<u64> = LazyLock::new(|| pair_hash(Some(OTHER), OTHER));

/// How far [`Bucket::add_series`] folded a series' key past the caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Folded {
    /// Its own series.
    Not,
    /// Its task folded to `(other)`, every other dimension kept.
    Task,
    /// Its project and everything but the model and provider folded (or everything).
    Whole,
}

/// A compound series: its key and sums.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) key: SeriesKey,
    pub(crate) agg: Agg,
}

/// A (project, session) pair and its sums.
#[derive(Debug, Clone)]
pub(crate) struct PairEntry {
    pub(crate) project: Option<Arc<str>>,
    pub(crate) session: Arc<str>,
    pub(crate) agg: Agg,
}

/// A (session, tool) pair and its executions.
#[derive(Debug, Clone)]
pub(crate) struct SessionToolEntry {
    pub(crate) session: Arc<str>,
    pub(crate) tool: Arc<str>,
    pub(crate) agg: ToolAgg,
}

/// One time bucket.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    /// Start, Unix seconds.
    pub(crate) start: i64,
    pub(crate) tier: Tier,
    /// The tier's caps apply (false: none, for an offline ledger that must keep every value).
    pub(crate) bounded: bool,
    pub(crate) totals: Agg,
    pub(crate) series: HashMap<u64, Series>,
    pub(crate) sessions: HashMap<Arc<str>, Agg>,
    pub(crate) users: HashMap<Arc<str>, Agg>,
    pub(crate) project_sessions: HashMap<u64, PairEntry>,
    pub(crate) tools: HashMap<Arc<str>, ToolAgg>,
    /// Tool executions by (session, tool): only those that ran inside a session.
    pub(crate) session_tools: HashMap<u64, SessionToolEntry>,
    pub(crate) hist: Option<BucketHist>,
    /// Additions routed to an overflow entry because a cap was reached.
    pub(crate) overflowed: u64,
}

/// Entry counts of a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Entries {
    pub(crate) series: usize,
    pub(crate) sessions: usize,
    pub(crate) users: usize,
    pub(crate) project_sessions: usize,
    pub(crate) tools: usize,
    pub(crate) session_tools: usize,
}

impl Entries {
    pub(crate) fn add(&mut self, o: &Entries) {
        self.series += o.series;
        self.sessions += o.sessions;
        self.users += o.users;
        self.project_sessions += o.project_sessions;
        self.tools += o.tools;
        self.session_tools += o.session_tools;
    }

    pub(crate) fn total(&self) -> usize {
        self.series + self.sessions + self.users + self.project_sessions + self.tools + self.session_tools
    }
}

fn add_keyed(
    map: &mut HashMap<Arc<str>, Agg>,
    key: &Arc<str>,
    core: &Core,
    opp: Option<&Opportunities>,
    cap: usize,
) -> bool {
    if let Some(a) = map.get_mut(&**key) {
        a.add(core, opp);
        return false;
    }
    if map.len() < cap {
        map.entry(key.clone()).or_default().add(core, opp);
        return false;
    }
    map.entry(other()).or_default().add(core, opp);
    true
}

fn by_cost(map: HashMap<Arc<str>, Agg>) -> Vec<(Arc<str>, Agg)> {
    let mut v: Vec<(Arc<str>, Agg)> = map.into_iter().collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1.core.cost));
    v
}

impl Bucket {
    /// An empty bucket; `bounded` false lifts its caps (see [`Caps::UNBOUNDED`]).
    pub(crate) fn new(start: i64, tier: Tier, bounded: bool) -> Self {
        Bucket {
            start,
            tier,
            bounded,
            totals: Agg::default(),
            series: HashMap::default(),
            sessions: HashMap::default(),
            users: HashMap::default(),
            project_sessions: HashMap::default(),
            tools: HashMap::default(),
            session_tools: HashMap::default(),
            hist: None,
            overflowed: 0,
        }
    }

    /// Month and archive buckets count their distributions in 64 bits (see [`BucketHist`]).
    fn wide(&self) -> bool {
        matches!(self.tier, Tier::Month | Tier::Archive)
    }

    fn caps(&self) -> Caps {
        if self.bounded { self.tier.caps() } else { Caps::UNBOUNDED }
    }

    /// Adds one record's sums under its keys.
    pub(crate) fn add(&mut self, keys: &Keys<'_>, core: &Core, opp: Option<&Opportunities>) {
        let caps = self.caps();
        self.totals.add(core, opp);
        let folded = self.add_series(
            keys.series(),
            &|| keys.series_key(),
            &|| partial_key(keys.model.cloned(), keys.provider.cloned()),
            core,
            opp,
            caps,
        );
        self.overflowed += u64::from(folded != Folded::Not);
        if let Some(session) = keys.session {
            let o = add_keyed(&mut self.sessions, session, core, opp, caps.sessions);
            self.overflowed += u64::from(o);
            let o = self.add_pair(keys.project, session, core, opp, caps, folded != Folded::Whole);
            self.overflowed += u64::from(o);
        }
        if let Some(user) = keys.user {
            let o = add_keyed(&mut self.users, user, core, opp, caps.users);
            self.overflowed += u64::from(o);
        }
    }

    /// Adds a call's distribution sample.
    pub(crate) fn record_sample(&mut self, sample: &Sample) {
        if self.hist.is_none() {
            self.hist = BucketHist::new(self.wide());
        }
        if let Some(h) = &mut self.hist {
            h.record(sample);
        }
    }

    /// Adds one tool execution.
    pub(crate) fn add_tool(&mut self, tool: &Arc<str>, t: &ToolAgg) {
        let cap = self.caps().tools;
        if let Some(a) = self.tools.get_mut(&**tool) {
            a.add(t);
        } else if self.tools.len() < cap {
            self.tools.insert(tool.clone(), *t);
        } else {
            self.overflowed += 1;
            self.tools.entry(other()).or_default().add(t);
        }
    }

    /// Adds one tool execution that ran inside `session`.
    pub(crate) fn add_session_tool(&mut self, session: &Arc<str>, tool: &Arc<str>, t: &ToolAgg) {
        let cap = self.caps().session_tools;
        let o = self.add_session_tool_capped(session, tool, t, cap);
        self.overflowed += u64::from(o);
    }

    /// Past the cap, a pair folds into its session's `(other)` tool (so per-session counts stay exact): the cap's
    /// reserve and as many more such entries as the bucket keeps sessions; past those, into `((other), (other))`.
    /// (Folded whole past the reserve alone, a session's tool runs were listed under no session: an hour of 256
    /// sessions running 2 tools each showed 64 of them with none.) True when it overflowed.
    fn add_session_tool_capped(&mut self, session: &Arc<str>, tool: &Arc<str>, t: &ToolAgg, cap: usize) -> bool {
        let h = pair_hash(Some(&**session), tool);
        let len = self.session_tools.len();
        match self.session_tools.get_mut(&h) {
            Some(e) if *e.session == **session && *e.tool == **tool => {
                e.agg.add(t);
                return false;
            }
            Some(_) => {}
            // The last overflow entry's slot is reserved (see `add_pair`).
            None if len < cap && h != *FULL_PAIR_HASH => {
                let entry = SessionToolEntry { session: session.clone(), tool: tool.clone(), agg: *t };
                self.session_tools.insert(h, entry);
                return false;
            }
            None => {}
        }
        let hp = pair_hash(Some(&**session), OTHER);
        let len = self.session_tools.len();
        // Past the reserve, as many more as the bucket keeps sessions: whether it keeps this one is not known yet
        // when its runs come before its calls (a merge minute by minute, a run in another thread's shard).
        let room = len < cap.saturating_add(OVERFLOW_RESERVE).saturating_add(self.caps().sessions);
        match self.session_tools.get_mut(&hp) {
            Some(e) if *e.session == **session && &*e.tool == OTHER => {
                e.agg.add(t);
                return true;
            }
            Some(_) => {}
            None if room && hp != *FULL_PAIR_HASH => {
                self.session_tools.insert(hp, SessionToolEntry { session: session.clone(), tool: other(), agg: *t });
                return true;
            }
            None => {}
        }
        self.session_tools
            .entry(*FULL_PAIR_HASH)
            .or_insert_with(|| SessionToolEntry { session: other(), tool: other(), agg: ToolAgg::default() })
            .agg
            .add(t);
        true
    }

    /// Adds sums to the series `r` when the bucket holds it, or makes it (`key` builds its key) while the bucket
    /// holds fewer than `limit` series; false when neither (a 64-bit hash collision counts as neither: the
    /// newcomer overflows). The all-`(other)` series' slot is reserved (see `add_pair`).
    #[inline]
    fn add_to_series(
        &mut self,
        r: SeriesRef<'_>,
        key: &dyn Fn() -> SeriesKey,
        core: &Core,
        opp: Option<&Opportunities>,
        limit: usize,
    ) -> bool {
        let h = r.hash64();
        let len = self.series.len();
        match self.series.get_mut(&h) {
            Some(s) if s.key.as_ref() == r => {
                s.agg.add(core, opp);
                true
            }
            Some(_) => false,
            None if len < limit && h != full_overflow_hash() => {
                let mut agg = Agg::default();
                agg.add(core, opp);
                self.series.insert(h, Series { key: key(), agg });
                true
            }
            None => false,
        }
    }

    /// Adds sums under the series `r` (`own` builds its key); past the cap, under `r` with its task folded to
    /// `(other)` (a task named per run makes a series of every run: folding the rest too lost the agents' and
    /// projects' breakdowns to `(other)`), then, past the reserve too, under its model and provider alone
    /// (`partial`), and last under the all-`(other)` series.
    fn add_series(
        &mut self,
        r: SeriesRef<'_>,
        own: &dyn Fn() -> SeriesKey,
        partial: &dyn Fn() -> SeriesKey,
        core: &Core,
        opp: Option<&Opportunities>,
        caps: Caps,
    ) -> Folded {
        if self.add_to_series(r, own, core, opp, caps.series) {
            return Folded::Not;
        }
        let reserve = caps.series.saturating_add(OVERFLOW_RESERVE);
        let task_folded = || SeriesKey { task: Some(other()), ..own() };
        if r.task.is_some_and(|t| t != OTHER)
            && self.add_to_series(SeriesRef { task: Some(OTHER), ..r }, &task_folded, core, opp, reserve)
        {
            return Folded::Task;
        }
        if self.add_to_series(r.partial_overflow(), partial, core, opp, reserve) {
            return Folded::Whole;
        }
        let full = full_overflow_key();
        let hf = full_overflow_hash();
        self.series.entry(hf).or_insert_with(|| Series { key: full, agg: Agg::default() }).agg.add(core, opp);
        Folded::Whole
    }

    /// Adds a call (or a merged pair) under its (project, session) pair; past the caps under `(project,
    /// (other))`, and past the reserve under `((other), (other))`, unless `project_kept`: the call's series kept
    /// its project, and a project's calls without a session are read as its series less its pairs, so its
    /// sessions must stay in its pairs (folded whole, a session's call was read as the project's without one,
    /// and the project > session tree counted it twice). Bounded: past the reserve, at most as many more such
    /// entries as the bucket keeps series (counted in [`Caps::max_entries`]). A merge passes it only while no series
    /// folded (see [`absorb`](Self::absorb)).
    fn add_pair(
        &mut self,
        project: Option<&Arc<str>>,
        session: &Arc<str>,
        core: &Core,
        opp: Option<&Opportunities>,
        caps: Caps,
        project_kept: bool,
    ) -> bool {
        let h = pair_hash(project.map(|p| &**p), session);
        // The slot of the last overflow entry, `((other), (other))`, is reserved: a pair whose hash is its (a
        // session id made to collide, FxHash being unkeyed) took it, and every fully folded call after it was added
        // to that pair.
        let len = self.project_sessions.len();
        match self.project_sessions.get_mut(&h) {
            Some(e) if same_opt(e.project.as_deref(), project.map(|p| &**p)) && same_str(&e.session, session) => {
                e.agg.add(core, opp);
                return false;
            }
            Some(_) => {}
            None if len < caps.project_sessions && h != *FULL_PAIR_HASH => {
                let mut agg = Agg::default();
                agg.add(core, opp);
                self.project_sessions.insert(h, PairEntry { project: project.cloned(), session: session.clone(), agg });
                return false;
            }
            None => {}
        }
        let hp = pair_hash(project.map(|p| &**p), OTHER);
        let len = self.project_sessions.len();
        match self.project_sessions.get_mut(&hp) {
            Some(e) if e.project.as_deref() == project.map(|p| &**p) && &*e.session == OTHER => {
                e.agg.add(core, opp);
                return true;
            }
            Some(_) => {}
            None if hp != *FULL_PAIR_HASH && {
                let reserve = caps.project_sessions.saturating_add(OVERFLOW_RESERVE);
                len < reserve || project_kept && len < reserve.saturating_add(caps.series)
            } =>
            {
                let mut agg = Agg::default();
                agg.add(core, opp);
                self.project_sessions.insert(hp, PairEntry { project: project.cloned(), session: other(), agg });
                return true;
            }
            None => {}
        }
        self.project_sessions
            .entry(*FULL_PAIR_HASH)
            .or_insert_with(|| PairEntry { project: Some(other()), session: other(), agg: Agg::default() })
            .agg
            .add(core, opp);
        true
    }

    /// Merges `other` (finer or of the same width) into this bucket, under this bucket's caps. Its entries
    /// come in most expensive first, so when the caps bind, the costliest values keep their own entries.
    pub(crate) fn absorb(&mut self, other: Bucket) {
        let caps = self.caps();
        self.totals.merge(&other.totals);
        let mut overflowed = other.overflowed;
        let mut series: Vec<Series> = other.series.into_values().collect();
        series.sort_by_key(|s| std::cmp::Reverse(s.agg.core.cost));
        for s in series {
            let key = &s.key;
            let o = self.add_series(
                key.as_ref(),
                &|| key.clone(),
                &|| partial_key(key.model.clone(), key.provider.clone()),
                &s.agg.core,
                s.agg.opp().as_ref(),
                caps,
            );
            overflowed += u64::from(o != Folded::Not);
        }
        for (k, a) in by_cost(other.sessions) {
            overflowed += u64::from(add_keyed(&mut self.sessions, &k, &a.core, a.opp().as_ref(), caps.sessions));
        }
        for (k, a) in by_cost(other.users) {
            overflowed += u64::from(add_keyed(&mut self.users, &k, &a.core, a.opp().as_ref(), caps.users));
        }
        // Past the reserve only when no series folded, here or in `other` (whose folded series came in as
        // `(other)` projects): then every call of every pair is in its project's series, as `add` tells of one
        // call. Otherwise a merged pair's calls may be of a model whose series lost its project, which a merge
        // cannot tell. (Hour, day and month buckets are made by merges alone: with `false` always, an aged hour
        // of 100 projects, every series kept, folded the sessions past 320 pairs whole, and read them back as
        // their projects' calls without a session, counted twice in the project > session tree.)
        let projects_kept = !self.series.values().any(|s| s.key.project.as_deref() == Some(OTHER));
        let mut pairs: Vec<PairEntry> = other.project_sessions.into_values().collect();
        pairs.sort_by_key(|e| std::cmp::Reverse(e.agg.core.cost));
        for e in pairs {
            let (core, opp) = (&e.agg.core, e.agg.opp());
            let o = self.add_pair(e.project.as_ref(), &e.session, core, opp.as_ref(), caps, projects_kept);
            overflowed += u64::from(o);
        }
        // Most used first, as the others go by cost: past the cap, the rarest tools fold into `(other)`.
        let mut tools: Vec<(Arc<str>, ToolAgg)> = other.tools.into_iter().collect();
        tools.sort_by(|a, b| b.1.invocations.cmp(&a.1.invocations).then_with(|| a.0.cmp(&b.0)));
        for (k, t) in tools {
            self.add_tool(&k, &t);
        }
        let mut pairs: Vec<SessionToolEntry> = other.session_tools.into_values().collect();
        pairs.sort_by_key(|e| std::cmp::Reverse(e.agg.invocations));
        for e in pairs {
            overflowed += u64::from(self.add_session_tool_capped(&e.session, &e.tool, &e.agg, caps.session_tools));
        }
        if let Some(h) = other.hist {
            self.hist = Some(match self.hist.take() {
                Some(mine) => mine.absorb(&h),
                None => h.at_width(self.wide()),
            });
        }
        self.overflowed += overflowed;
    }

    /// Forgets the values `forget` names (see [`TokenMeter::erase`](crate::TokenMeter::erase)): a user's and a
    /// session's rows and the session's pairs are dropped, and a series or pair naming a tenant, project, agent,
    /// operation or task is filed again without it (merged into the entry that names none, or an entry of its own:
    /// never folded to `(other)`, its own removal having made the room). The totals and distributions stay as they
    /// are. Returns the entries that named a value (in a dry run, counted
    /// only).
    pub(crate) fn forget(&mut self, forget: &Forget) -> u64 {
        fn drop_named<K, V>(map: &mut HashMap<K, V>, dry: bool, named: impl Fn(&V, &K) -> bool) -> u64 {
            let before = map.len();
            if dry {
                return map.iter().filter(|(k, v)| named(v, k)).count() as u64;
            }
            map.retain(|k, v| !named(v, k));
            (before - map.len()) as u64
        }
        let dry = forget.dry_run;
        let mut found = 0;
        found += drop_named(&mut self.users, dry, |_, k| forget.names("user", k));
        found += drop_named(&mut self.sessions, dry, |_, k| forget.names("session", k));
        found += drop_named(&mut self.session_tools, dry, |e, _| forget.names("session", &e.session));
        found += drop_named(&mut self.project_sessions, dry, |e, _| forget.names("session", &e.session));
        let series_named = |k: &SeriesKey| {
            forget.names_opt("project", k.project.as_ref())
                || forget.names_opt("agent", k.agent.as_ref())
                || forget.names_opt("operation", k.operation.as_ref())
                || forget.names_opt("task", k.task.as_ref())
                || forget.names_opt("tenant", k.tenant.as_ref())
        };
        let series: Vec<u64> = self.series.iter().filter(|(_, s)| series_named(&s.key)).map(|(h, _)| *h).collect();
        let pairs: Vec<u64> = self
            .project_sessions
            .iter()
            .filter(|(_, e)| forget.names_opt("project", e.project.as_ref()) && !forget.names("session", &e.session))
            .map(|(h, _)| *h)
            .collect();
        found += (series.len() + pairs.len()) as u64;
        if dry {
            return found;
        }
        // Re-filed under the caps the bucket had room under: each entry goes back in the place it left (merged
        // into an entry of the same key, or its own), never to `(other)` past a cap its own removal made room under.
        let caps = Caps { series: usize::MAX, project_sessions: usize::MAX, ..self.caps() };
        for h in series {
            let Some(Series { mut key, agg }) = self.series.remove(&h) else { continue };
            for (name, slot) in [
                ("project", &mut key.project),
                ("agent", &mut key.agent),
                ("operation", &mut key.operation),
                ("task", &mut key.task),
                ("tenant", &mut key.tenant),
            ] {
                if forget.names_opt(name, slot.as_ref()) {
                    *slot = None;
                }
            }
            let (model, provider) = (key.model.clone(), key.provider.clone());
            let folded = self.add_series(
                key.as_ref(),
                &|| key.clone(),
                &|| partial_key(model.clone(), provider.clone()),
                &agg.core,
                agg.opp().as_ref(),
                caps,
            );
            self.overflowed += u64::from(folded != Folded::Not);
        }
        // As a merge does (see `absorb`): pairs may pass the reserve only while no series folded.
        let projects_kept = !self.series.values().any(|s| s.key.project.as_deref() == Some(OTHER));
        for h in pairs {
            let Some(e) = self.project_sessions.remove(&h) else { continue };
            let o = self.add_pair(None, &e.session, &e.agg.core, e.agg.opp().as_ref(), caps, projects_kept);
            self.overflowed += u64::from(o);
        }
        found
    }

    pub(crate) fn entries(&self) -> Entries {
        Entries {
            series: self.series.len(),
            sessions: self.sessions.len(),
            users: self.users.len(),
            project_sessions: self.project_sessions.len(),
            tools: self.tools.len(),
            session_tools: self.session_tools.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core(calls: u64) -> Core {
        Core { calls, ..Core::default() }
    }

    #[test]
    fn series_cap_overflows_keeping_model() {
        let mut b = Bucket::new(0, Tier::Minute, true);
        let model: Arc<str> = Arc::from("m");
        let names: Vec<Arc<str>> = (0..200).map(|i| Arc::from(format!("agent-{i}"))).collect();
        for n in &names {
            b.add(&Keys { model: Some(&model), agent: Some(n), ..Keys::default() }, &core(1), None);
        }
        assert_eq!(b.totals.core.calls, 200);
        assert_eq!(b.series.len(), 65);
        let sum: u64 =
            b.series.values().filter(|s| s.key.model.as_deref() == Some("m")).map(|s| s.agg.core.calls).sum();
        assert_eq!(sum, 200, "per-model totals stay exact past the cap");
        assert_eq!(b.overflowed, 136);
    }

    #[test]
    fn session_cap_has_one_overflow_entry() {
        let mut b = Bucket::new(0, Tier::Minute, true);
        let names: Vec<Arc<str>> = (0..300).map(|i| Arc::from(format!("s-{i}"))).collect();
        for n in &names {
            b.add(&Keys { session: Some(n), ..Keys::default() }, &core(1), None);
        }
        assert_eq!(b.sessions.len(), 65);
        assert_eq!(b.sessions[OTHER].core.calls, 236);
        let mut coarse = Bucket::new(0, Tier::Hour, true);
        coarse.absorb(b);
        assert_eq!(coarse.sessions.values().map(|a| a.core.calls).sum::<u64>(), 300);
    }

    #[test]
    fn the_pairs_kept_for_their_projects_are_counted_in_max_entries() {
        // 64 projects whose series are kept and 64 whose series fold, each with sessions past the pair cap: the
        // kept ones get a `(project, (other))` each past the reserve, which `max_entries` (and so
        // `series_limit`) did not count: 192 pairs against 129.
        let mut b = Bucket::new(0, Tier::Minute, true);
        let name = |p: &str, i: usize, s: usize| {
            (Arc::<str>::from(format!("{p}{i}")), Arc::<str>::from(format!("{p}{i}-{s}")))
        };
        for s in 0..4 {
            for p in ["k", "q"] {
                for i in 0..64 {
                    let (project, session) = name(p, i, s);
                    b.add(
                        &Keys { project: Some(&project), session: Some(&session), ..Keys::default() },
                        &core(1),
                        None,
                    );
                }
            }
        }
        let e = b.entries();
        assert!(e.project_sessions > 129, "the case: pairs past the reserve ({})", e.project_sessions);
        // What `max_entries` leaves for the pairs once every other map is full.
        let c = b.caps();
        let others = (c.series + OVERFLOW_RESERVE + 1)
            + (c.sessions + 1)
            + (c.users + 1)
            + (c.tools + 1)
            + (c.session_tools + OVERFLOW_RESERVE + 1);
        assert!(
            e.project_sessions <= c.max_entries() - others,
            "{} pairs against {}",
            e.project_sessions,
            c.max_entries() - others
        );
    }

    #[test]
    fn merges_keep_the_costliest_entries() {
        let names: Vec<Arc<str>> = (0..80).map(|i| Arc::from(format!("s-{i:02}"))).collect();
        let mut target = Bucket::new(0, Tier::Minute, true);
        for n in &names[..40] {
            target.add(&Keys { session: Some(n), ..Keys::default() }, &core(1), None);
        }
        let mut incoming = Bucket::new(0, Tier::Minute, true);
        for (i, n) in names[40..].iter().enumerate() {
            let c = Core { calls: 1, cost: crate::pricing::Money::from_picos(i as u128), ..Core::default() };
            incoming.add(&Keys { session: Some(n), ..Keys::default() }, &c, None);
        }
        target.absorb(incoming);
        // 24 slots were left: the 24 most expensive newcomers (s-56 .. s-79) took them.
        let kept: Vec<&str> =
            names[40..].iter().filter(|n| target.sessions.contains_key(&***n)).map(|n| &**n).collect();
        assert_eq!(kept.len(), 24);
        assert_eq!(kept.first().copied(), Some("s-56"));
        assert_eq!(target.sessions[OTHER].core.calls, 16);
    }

    #[test]
    fn merges_keep_the_most_used_tools() {
        // Tools were merged in hash order: which kept a row past the cap did not follow how often they ran.
        let mut target = Bucket::new(0, Tier::Hour, true);
        let mut incoming = Bucket::new(0, Tier::Minute, false);
        let names: Vec<Arc<str>> = (0..200).map(|i| Arc::from(format!("tool-{i:03}"))).collect();
        for (i, n) in names.iter().enumerate() {
            for _ in 0..=i {
                incoming.add_tool(n, &ToolAgg { invocations: 1, ..ToolAgg::default() });
            }
        }
        target.absorb(incoming);
        assert_eq!(target.tools.len(), 129, "128 tools and (other)");
        // The 128 most used (tool-072 .. tool-199) kept theirs.
        assert!(names[72..].iter().all(|n| target.tools.contains_key(&**n)));
        let folded: u64 = (1..=72).sum();
        assert_eq!(target.tools[OTHER].invocations, folded);
    }

    #[test]
    fn month_and_archive_buckets_count_distributions_in_64_bits() {
        let sample = Sample { duration_ms: 1_500, ..Sample::default() };
        let mut day = Bucket::new(0, Tier::Day, true);
        day.record_sample(&sample);
        assert!(matches!(day.hist, Some(BucketHist::Narrow(_))), "day buckets are 32-bit");
        for tier in [Tier::Month, Tier::Archive] {
            let mut rolled = Bucket::new(0, tier, true);
            rolled.absorb(day.clone());
            assert!(matches!(rolled.hist, Some(BucketHist::Wide(_))), "{tier:?} bucket absorbing a day");
            let mut direct = Bucket::new(0, tier, true);
            direct.record_sample(&sample);
            assert!(matches!(direct.hist, Some(BucketHist::Wide(_))), "{tier:?} bucket recording a call");
        }
    }
}
