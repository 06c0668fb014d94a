//! Reading many transcripts in parallel, resolving duplicates and replays, pricing the calls.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap as HashMap;

use super::parse::{AdvisorPart, FileCalls, RawCall, SYNTHETIC_MODEL, read_file};
use super::{BadLine, LoadStats, TranscriptFile, TranscriptLoad, UnreadableFile};
use crate::pricing::{CallCost, Money, PriceBook, PricedModel};
use crate::record::{CallRecord, Dimensions, Outcome};

/// Bad-line places kept by default.
const DEFAULT_MAX_BAD_PLACES: usize = 5;

/// Reads Claude Code transcripts into priced [`CallRecord`]s (rules in the [module docs](super)).
#[derive(Debug, Clone)]
#[must_use]
pub struct TranscriptLoader {
    prices: PriceBook,
    threads: usize,
    max_bad_places: usize,
}

/// A kept call: which file, which line of that file's calls.
#[derive(Debug, Clone, Copy)]
struct Pick {
    file: u32,
    call: u32,
}

impl TranscriptLoader {
    /// A loader pricing calls with `prices`, on as many threads as the machine has cores (at most 8).
    pub fn new(prices: PriceBook) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
        TranscriptLoader { prices, threads, max_bad_places: DEFAULT_MAX_BAD_PLACES }
    }

    /// Reads on `threads` threads (at least 1).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Keeps the places of the first `n` bad lines (default 5).
    pub fn with_max_bad_places(mut self, n: usize) -> Self {
        self.max_bad_places = n;
        self
    }

    /// Reads `files`.
    pub fn load(&self, files: &[TranscriptFile]) -> TranscriptLoad {
        self.load_with_progress(files, &|_| {})
    }

    /// Reads `files`, calling `progress` with each file's size in bytes once it is read (from any of the
    /// reading threads).
    pub fn load_with_progress(&self, files: &[TranscriptFile], progress: &(dyn Fn(u64) + Sync)) -> TranscriptLoad {
        let parsed = self.read_all(files, None, progress);
        resolve(files, &parsed, &self.prices, self.max_bad_places)
    }

    /// Reads `files` as [`load_with_progress`](Self::load_with_progress) does, but only those whose size or
    /// modification time changed since `cache` last saw them (or that it never saw): the others' calls come
    /// from the cache. The result is the same as a load without the cache; what a refresh costs is the files
    /// that changed (Claude Code appends to the transcripts of the sessions running now) plus one `stat` per
    /// file. The cache keeps what it read from the files of this load only (a file deleted since is
    /// forgotten), and never a file it could not read.
    pub fn load_cached(
        &self,
        files: &[TranscriptFile],
        cache: &mut TranscriptCache,
        progress: &(dyn Fn(u64) + Sync),
    ) -> TranscriptLoad {
        let parsed = self.read_all(files, Some(cache), progress);
        resolve(files, &parsed, &self.prices, self.max_bad_places)
    }

    /// Parses every file (with a cache, every file it does not hold as it is now), largest first, on the
    /// loader's threads; the result is in `files` order.
    fn read_all(
        &self,
        files: &[TranscriptFile],
        mut cache: Option<&mut TranscriptCache>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Vec<Arc<FileCalls>> {
        let max_places = self.max_bad_places;
        let mut results: Vec<Option<Arc<FileCalls>>> = (0..files.len()).map(|_| None).collect();
        // Stamped before reading: a file that grows while it is read is read again next time.
        let stamps: Vec<Option<Stamp>> = match &cache {
            Some(_) => files.iter().map(|f| Stamp::of(&f.path, max_places)).collect(),
            None => Vec::new(),
        };
        if let Some(cache) = cache.as_deref_mut() {
            cache.reused = 0;
            for (i, file) in files.iter().enumerate() {
                if let (Some(stamp), Some(hit)) = (stamps[i], cache.files.get(&file.path))
                    && hit.stamp == stamp
                {
                    progress(file.len.max(hit.calls.bytes));
                    results[i] = Some(Arc::clone(&hit.calls));
                    cache.reused += 1;
                }
            }
        }
        let mut order: Vec<usize> = (0..files.len()).filter(|&i| results[i].is_none()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(files[i].len));
        let next = AtomicUsize::new(0);
        let work = || {
            let mut done = Vec::new();
            while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                let calls = read_file(&files[i].path, max_places);
                progress(files[i].len.max(calls.bytes));
                done.push((i, calls));
            }
            done
        };
        let threads = self.threads.min(order.len()).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
            let mut all = work();
            for h in handles {
                // A reading thread cannot panic short of a bug; its files then count as unreadable.
                all.extend(h.join().unwrap_or_default());
            }
            for (i, calls) in all {
                results[i] = Some(Arc::new(calls));
            }
        });
        let results: Vec<Arc<FileCalls>> = results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Arc::new(FileCalls { error: Some("not read".to_owned()), ..FileCalls::default() }))
            })
            .collect();
        if let Some(cache) = cache {
            let mut kept = HashMap::default();
            for ((file, stamp), calls) in files.iter().zip(&stamps).zip(&results) {
                if let Some(stamp) = stamp
                    && calls.error.is_none()
                {
                    kept.insert(file.path.clone(), Cached { stamp: *stamp, calls: Arc::clone(calls) });
                }
            }
            cache.files = kept;
        }
        results
    }
}

/// What a [`TranscriptLoader::load_cached`] read before: each file's calls as parsed, with the size and
/// modification time the file had when it was read. For `tokenmeter watch` and the MCP server, which read the
/// same transcripts again every refresh or question.
#[derive(Debug, Default)]
pub struct TranscriptCache {
    files: HashMap<PathBuf, Cached>,
    reused: usize,
}

impl TranscriptCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many files it holds.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when it holds no file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// How many files the last load took from the cache instead of reading them.
    pub fn reused(&self) -> usize {
        self.reused
    }
}

/// One file as the cache holds it.
#[derive(Debug)]
struct Cached {
    stamp: Stamp,
    calls: Arc<FileCalls>,
}

/// What says a file is unchanged: its size and modification time (and the loader setting that shapes what is
/// kept of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: SystemTime,
    max_places: usize,
}

impl Stamp {
    /// `None` when the file cannot be examined, or its file system keeps no modification times: it is read.
    fn of(path: &std::path::Path, max_places: usize) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Stamp { len: meta.len(), modified: meta.modified().ok()?, max_places })
    }
}

/// True when `a` is the copy of a response to keep over `b`: a main-conversation copy over a sidechain one, then the
/// larger token total (its advisor iterations' included), then the more web searches; on a tie, the copy its own
/// session wrote (its line's `sessionId` is its file's: a resumed session's file may carry copies of the earlier
/// session's lines under their old id), then the one already kept (`b`).
fn better(a: &RawCall, a_own: bool, b: &RawCall, b_own: bool) -> bool {
    if a.sidechain != b.sidechain {
        return !a.sidechain;
    }
    // A streamed response's earlier copies may not have its advisor iterations yet: they count toward the most.
    let total =
        |c: &RawCall| c.advisor.iter().fold(c.tokens.total(), |sum, part| sum.saturating_add(part.tokens.total()));
    let (ta, tb) = ((total(a), a.web_search_requests), (total(b), b.web_search_requests));
    ta > tb || (ta == tb && a_own && !b_own)
}

/// A call's input, cache read and cache write counts: what every copy of one response repeats.
type Prompt = (u64, u64, u64);

fn prompt(call: &RawCall) -> Prompt {
    call.prompt
}

/// Merges the files' calls into records.
fn resolve(
    files: &[TranscriptFile],
    parsed: &[Arc<FileCalls>],
    prices: &PriceBook,
    max_places: usize,
) -> TranscriptLoad {
    let mut stats = LoadStats::default();
    for (file, f) in files.iter().zip(parsed) {
        match &f.error {
            Some(error) => {
                stats.unreadable_files.push(UnreadableFile { path: file.path.clone(), error: error.clone() })
            }
            None => stats.files += 1,
        }
        stats.bytes += f.bytes;
        stats.lines += f.lines;
        stats.usage_lines += f.usage_lines;
        stats.bad_lines += f.bad_lines;
        stats.unfinished_lines += f.unfinished_lines;
        for (line, reason) in &f.bad_places {
            if stats.bad_line_places.len() < max_places {
                stats.bad_line_places.push(BadLine { path: file.path.clone(), line: *line, reason: reason.clone() });
            }
        }
    }

    let raw = |p: Pick| &parsed[p.file as usize].calls[p.call as usize];
    let scope_of = |p: Pick| {
        let f = &parsed[p.file as usize];
        match &raw(p).line_session {
            Some(r) => f.str(r),
            None => &files[p.file as usize].session,
        }
    };

    // Whether a call's line names its own file's session (or none).
    let own = |p: Pick| scope_of(p) == &*files[p.file as usize].session;

    // Pass 1: one call per (message id, request id); without a request id, per message id in its session and
    // prompt (the input, cache read and cache write counts: fixed when a request starts, so every copy of one
    // response repeats them, where a relay that answers every response with the same id and no request id gave
    // a whole session one call). The copy kept gives the call its tokens; the earliest copy its time (a
    // streamed response's copies are written as it goes on: the call began with the first, and one running
    // past midnight belongs to the day it began; ccusage 20.0.24 dates it by the copy it keeps).
    let mut kept: Vec<Option<Pick>> = Vec::new();
    let mut began: Vec<DateTime<Utc>> = Vec::new();
    let mut by_key: HashMap<(&str, &str, &str, Prompt), usize> = HashMap::default();
    for (fi, f) in parsed.iter().enumerate() {
        for ci in 0..f.calls.len() {
            let pick = Pick { file: fi as u32, call: ci as u32 };
            let call = &f.calls[ci];
            let Some(msg) = &call.message_id else {
                kept.push(Some(pick));
                began.push(call.timestamp);
                continue;
            };
            let key = match &call.request_id {
                Some(req) => (f.str(msg), f.str(req), "", Prompt::default()),
                None => (f.str(msg), "", scope_of(pick), prompt(call)),
            };
            match by_key.get(&key) {
                Some(&k) => {
                    stats.duplicate_lines += 1;
                    began[k] = began[k].min(call.timestamp);
                    if let Some(old) = kept[k]
                        && better(call, own(pick), raw(old), own(old))
                    {
                        kept[k] = Some(pick);
                    }
                }
                None => {
                    by_key.insert(key, kept.len());
                    kept.push(Some(pick));
                    began.push(call.timestamp);
                }
            }
        }
    }

    // Pass 2: a sidechain call repeating a main-conversation message is a replay. Every main line counts, not
    // only the copies kept: a resumed session copies the conversation under its own session id, and when that
    // copy is the one kept the original session still has the message its sidechains replay. Keyed by the
    // message id alone (the API's ids are unique): a resumed session's sidechain replaying a message its file
    // copied under the earlier session's id was counted as a call of its own. A sidechain line without a request
    // id replays only a message with its prompt counts (a relay's repeated ids, as in pass 1).
    let mut main_messages: HashMap<&str, Vec<Prompt>> = HashMap::default();
    for f in parsed {
        for call in &f.calls {
            if !call.sidechain
                && let Some(msg) = &call.message_id
            {
                let prompts = main_messages.entry(f.str(msg)).or_default();
                if !prompts.contains(&prompt(call)) {
                    prompts.push(prompt(call));
                }
            }
        }
    }
    for slot in &mut kept {
        if let Some(p) = *slot {
            let call = raw(p);
            if call.sidechain
                && let Some(msg) = &call.message_id
                && let Some(prompts) = main_messages.get(parsed[p.file as usize].str(msg))
                && (call.request_id.is_some() || prompts.contains(&prompt(call)))
            {
                stats.sidechain_replays += 1;
                *slot = None;
            }
        }
    }

    let mut picks: Vec<(Pick, DateTime<Utc>)> =
        kept.into_iter().zip(began).filter_map(|(p, t)| p.map(|p| (p, t))).collect();
    picks.sort_by_key(|&(a, t)| (t, a.file, a.call));

    let mut records = RecordMaker::new(prices);
    let mut calls: Vec<CallRecord> = Vec::with_capacity(picks.len());
    for &(p, t) in &picks {
        let (file, f, call) = (&files[p.file as usize], &parsed[p.file as usize], raw(p));
        let record = records.make(file, f, call, t);
        // Each advisor sub-inference is a call of its own, at the advisor model's rates, right after its executor.
        let advisors: Vec<CallRecord> =
            call.advisor.iter().enumerate().map(|(n, part)| records.advisor(f, call, &record, n + 1, part)).collect();
        stats.advisor_calls += advisors.len() as u64;
        calls.push(record);
        calls.extend(advisors);
    }
    stats.calls = calls.len() as u64;
    stats.synthetic_calls = records.synthetic;
    stats.unpriced_calls = records.unpriced;
    TranscriptLoad { calls, stats }
}

/// Builds records, sharing one `Arc` per distinct string and one price lookup per model.
struct RecordMaker<'p> {
    prices: &'p PriceBook,
    strings: HashMap<Arc<str>, ()>,
    models: HashMap<Arc<str>, Option<PricedModel>>,
    provider: Arc<str>,
    operation: Arc<str>,
    main: Arc<str>,
    subagent: Arc<str>,
    api_error: Arc<str>,
    synthetic_id: Arc<str>,
    synthetic: u64,
    unpriced: u64,
}

impl<'p> RecordMaker<'p> {
    fn new(prices: &'p PriceBook) -> Self {
        RecordMaker {
            prices,
            strings: HashMap::default(),
            models: HashMap::default(),
            provider: Arc::from("anthropic"),
            operation: Arc::from("chat"),
            main: Arc::from("main"),
            subagent: Arc::from("subagent"),
            api_error: Arc::from("api_error"),
            synthetic_id: Arc::from(SYNTHETIC_MODEL),
            synthetic: 0,
            unpriced: 0,
        }
    }

    fn shared_str(&mut self, s: &str) -> Arc<str> {
        if let Some((k, _)) = self.strings.get_key_value(s) {
            return Arc::clone(k);
        }
        let s: Arc<str> = Arc::from(s);
        self.strings.insert(Arc::clone(&s), ());
        s
    }

    fn shared(&mut self, s: &Arc<str>) -> Arc<str> {
        if let Some((k, _)) = self.strings.get_key_value(s) {
            return Arc::clone(k);
        }
        self.strings.insert(Arc::clone(s), ());
        Arc::clone(s)
    }

    /// The record of `call`, stamped `timestamp` (the earliest of its copies).
    fn make(&mut self, file: &TranscriptFile, f: &FileCalls, call: &RawCall, timestamp: DateTime<Utc>) -> CallRecord {
        let entry = |i: Option<u16>| i.and_then(|i| f.table.get(i as usize));
        let model = entry(call.model).map(|m| self.shared(m));
        let service_tier = entry(call.service_tier).map(|s| self.shared(s));
        let speed = entry(call.speed).map(|s| self.shared(s));
        // Claude Code on Bedrock names the inference profile (`us.anthropic.claude-…`): its geography, as capture
        // reads it, where the line's own says nothing (Claude Code writes `""`, or `not_available`).
        let inference_geo = self.geography(entry(call.inference_geo), model.as_deref());
        let cost = if call.synthetic {
            self.synthetic += 1;
            Some(CallCost {
                total: Money::ZERO,
                input: Money::ZERO,
                cache_read: Money::ZERO,
                cache_write_5m: Money::ZERO,
                cache_write_1h: Money::ZERO,
                output: Money::ZERO,
                web_search: Money::ZERO,
                cache_savings: Money::ZERO,
                priced_as: Arc::clone(&self.synthetic_id),
                long_context: false,
                batch: false,
                fast: false,
                regional: false,
            })
        } else {
            // Priced below, from the record.
            None
        };
        let id = call.message_id.as_ref().or(call.request_id.as_ref()).map(|r| Arc::from(f.str(r)));
        // A sub-agent's file belongs to the session its lines name (the parent's): under `subagents/` that is
        // the folder's session anyway; an `agent-<id>.jsonl` beside the sessions has no other way to tell.
        let session = match file.session_of(call.line_session.as_ref().map(|r| f.str(r))) {
            s if s == &*file.session => Arc::clone(&file.session),
            s => self.shared_str(s),
        };
        let agent = if call.sidechain || file.subagent { &self.subagent } else { &self.main };
        let mut record = CallRecord {
            timestamp,
            duration_us: 0,
            time_to_first_token_us: None,
            model,
            provider: Some(Arc::clone(&self.provider)),
            operation: Some(Arc::clone(&self.operation)),
            request_id: id,
            streaming: None,
            service_tier,
            speed,
            inference_geo,
            tokens: call.tokens,
            web_search_requests: call.web_search_requests,
            metered: true,
            outcome: if call.api_error {
                Outcome::Error { error_type: Arc::clone(&self.api_error) }
            } else {
                Outcome::Ok
            },
            dimensions: Dimensions {
                session: Some(session),
                project: Some(Arc::clone(&file.project)),
                agent: Some(Arc::clone(agent)),
                ..Dimensions::default()
            },
            cost,
        };
        if !call.synthetic {
            record.cost = record.model.as_ref().and_then(|m| self.priced(m)).map(|p| p.price_call(&record));
            self.unpriced += u64::from(record.cost.is_none());
        }
        record
    }

    /// The record of the `n`th advisor sub-inference of the response `executor` records (from the line `call`):
    /// the advisor model, its tokens, the executor's time, session, project, agent and service tier (not its
    /// speed: fast mode is the executor model's), the geography the line states (else the advisor model's own
    /// Bedrock profile's, not one read from the executor's model id), and the executor's id with `:advisor:<n>`
    /// after it.
    fn advisor(
        &mut self,
        f: &FileCalls,
        call: &RawCall,
        executor: &CallRecord,
        n: usize,
        part: &AdvisorPart,
    ) -> CallRecord {
        let model = part.model.and_then(|i| f.table.get(i as usize)).map(|m| self.shared(m));
        let request_id = executor.request_id.as_ref().map(|id| self.shared_str(&format!("{id}:advisor:{n}")));
        let stated = call.inference_geo.and_then(|i| f.table.get(i as usize));
        let inference_geo = self.geography(stated, model.as_deref());
        let mut record = CallRecord {
            model,
            request_id,
            inference_geo,
            speed: None,
            tokens: part.tokens,
            web_search_requests: 0,
            outcome: Outcome::Ok,
            cost: None,
            ..executor.clone()
        };
        record.cost = record.model.as_ref().and_then(|m| self.priced(m)).map(|p| p.price_call(&record));
        self.unpriced += u64::from(record.cost.is_none());
        record
    }

    /// A call's geography as pricing reads it ([`call_geography`](crate::pricing::call_geography)): the line's
    /// when it says one, else a Bedrock profile's in `model`, else the line's unstated value.
    fn geography(&mut self, line: Option<&Arc<str>>, model: Option<&str>) -> Option<Arc<str>> {
        crate::pricing::call_geography(line.map(|s| &**s), model).map(|g| self.shared_str(g))
    }

    /// The price of model `m` (resolved once per model id).
    fn priced(&mut self, m: &Arc<str>) -> Option<PricedModel> {
        if let Some(p) = self.models.get(m) {
            return p.clone();
        }
        let p = self.prices.resolve(m);
        self.models.insert(Arc::clone(m), p.clone());
        p
    }
}
