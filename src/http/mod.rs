//! The HTTP JSON API (feature `http`): an axum [`Router`] the application mounts ([`router`]), and a one-call
//! server for applications without one ([`serve`]).
//!
//! Responses are the library's own report structs as snake_case JSON. Query parameters also accept the
//! camelCase spellings older clients use (`startDate`, `groupBy`, `includeTools`, …). A bad parameter gets
//! `400 {"error", "detail", "param"}`, an unknown session `404`.
//!
//! Security: [`serve`] binds `127.0.0.1` unless told otherwise; API keys ([`HttpConfig::with_api_key`]) are
//! read from `x-api-key` or `Authorization: Bearer` and compared in constant time; a key bound to a tenant
//! ([`HttpConfig::with_tenant_key`]) sees that tenant's data only (every report is narrowed to it); requests have a size and a time limit;
//! [`serve`] bounds the time to send headers and the number of open connections; CORS headers are sent only for
//! configured origins.
//!
//! ```no_run
//! let meter = tokenmeter::TokenMeter::builder().build();
//! let config = tokenmeter::http::HttpConfig::new().with_api_key("admin-key-5b8e17c4a9f3");
//! let server = tokenmeter::http::serve(meter, config).unwrap();
//! println!("listening on http://{}", server.local_addr());
//! server.shutdown();
//! ```

mod handlers;
mod openapi;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::{Mutex, RwLock};

use crate::meter::{RecordSink, TokenMeter};
use crate::record::CallRecord;

/// The axum version [`router`] is built with (0.8): mount it in an application on the same axum.
pub use axum;
pub use handlers::SessionMetrics;
pub use openapi::openapi_document;

/// One API key and, optionally, the tenant it is bound to.
#[derive(Clone)]
struct ApiKey {
    key: Vec<u8>,
    /// The key's digest under the config's `key_digest` (see [`authenticate`]).
    digest: [u8; 8],
    tenant: Option<String>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey").field("key", &"<redacted>").field("tenant", &self.tenant).finish()
    }
}

/// Settings of the HTTP API.
#[derive(Debug, Clone)]
#[must_use]
pub struct HttpConfig {
    addr: SocketAddr,
    keys: Vec<ApiKey>,
    /// A per-process random SipHash key: presented and configured keys are compared as digests of it, so the
    /// comparison's time says nothing of a key's length.
    key_digest: std::hash::RandomState,
    max_request_bytes: usize,
    timeout: Duration,
    header_read_timeout: Duration,
    max_connections: usize,
    cors_origins: Vec<String>,
    session_tenants: Option<SessionTenants>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8787),
            keys: Vec::new(),
            key_digest: std::hash::RandomState::new(),
            max_request_bytes: 16 * 1024,
            timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 256,
            cors_origins: Vec::new(),
            session_tenants: None,
        }
    }
}

impl HttpConfig {
    /// Defaults: `127.0.0.1:8787`, no API keys (every request from this machine is allowed: see [`router`]), 16 KiB
    /// request limit, 10 s time
    /// limit, 10 s to send a request's headers, at most 256 connections at once ([`serve`]), no CORS.
    pub fn new() -> Self {
        Self::default()
    }

    /// The address [`serve`] binds (port 0 picks a free port; see [`ServerHandle::local_addr`]).
    pub fn with_addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// The port [`serve`] binds (on `127.0.0.1` unless [`with_addr`](Self::with_addr) named another address).
    pub fn with_port(mut self, port: u16) -> Self {
        self.addr.set_port(port);
        self
    }

    /// Adds an API key that sees every tenant's data. Once any key is added, every `/api/v1` request
    /// except the OpenAPI document needs one. An empty key (an unset environment variable read with
    /// `unwrap_or_default`, say) matches no request, and [`serve`] refuses it, as it refuses a key shorter than
    /// 16 bytes (a mounted [`router`] logs a warning): nothing slows down wrong guesses.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.push_key(key.into(), None);
        self
    }

    /// Adds an API key that sees the data of `tenant` (`tenant.id`) only: every report it reads is narrowed
    /// to that tenant's records (the efficiency and cache reports with [`ReportFilter::tenant`]). Bind keys
    /// to real tenant ids: `(none)` and `(other)` are the ledger's labels for calls without a tenant and for
    /// its overflow entries.
    ///
    /// [`ReportFilter::tenant`]: crate::analysis::ReportFilter::tenant
    pub fn with_tenant_key(mut self, key: impl Into<String>, tenant: impl Into<String>) -> Self {
        self.push_key(key.into(), Some(tenant.into()));
        self
    }

    fn push_key(&mut self, key: String, tenant: Option<String>) {
        let key = key.into_bytes();
        let digest = key_digest(&self.key_digest, &key);
        self.keys.push(ApiKey { key, digest, tenant });
    }

    /// The largest request (headers plus body) accepted, in bytes (default 16 KiB); larger ones get 413.
    /// [`serve`] refuses less than 128 bytes, and buffers at most 1 MiB of a connection's headers whatever this is.
    pub fn with_max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes;
        self
    }

    /// The time limit of one request (default 10 s); slower ones get 503. It bounds waiting: a report (CPU
    /// under the ledger's lock, milliseconds) runs on tokio's blocking pool, and one already computing runs to
    /// its end there.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long [`serve`] waits for a request's headers (default 10 s), from the moment it starts reading the
    /// request, or waits for the next request on a kept-alive connection; then it closes the connection. A
    /// client that sends half a request and goes quiet (or opens connections and sends nothing) holds one only
    /// that long. A response write that makes no progress that long (a client that stops reading) also closes
    /// the connection.
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// The most connections [`serve`] keeps open at once (default 256; at least 1), so that the application's
    /// file descriptors stay bounded. Past it, a new connection takes the place of the oldest one not answering a
    /// request (waiting for or reading a request's headers, or idle between requests), which is closed; when every
    /// one is answering a request, the new one looks again as each request ends, for at most the header-read
    /// timeout, and is then answered `503` and closed.
    pub fn with_max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    /// Allows cross-origin reads from `origin` (for example `https://admin.example.com`; `*` for any).
    pub fn with_cors_origin(mut self, origin: impl Into<String>) -> Self {
        self.cors_origins.push(origin.into());
        self
    }

    /// Which tenant each session belongs to, for tenant-bound keys on the session endpoints and the
    /// efficiency report's breakdown by session (the ledger does not keep sessions' tenants). Without it a
    /// tenant-bound key gets 404 for every session, and an empty breakdown by session.
    pub fn with_session_tenants(mut self, tenants: SessionTenants) -> Self {
        self.session_tenants = Some(tenants);
        self
    }
}

/// A [`RecordSink`] that remembers each session's tenant (up to a bound), so tenant-bound API keys can read
/// their own sessions. Add it to the meter with `with_sink` and to the config with
/// [`HttpConfig::with_session_tenants`].
///
/// A session whose calls carry two different tenants belongs to neither from then on (no tenant-bound key
/// sees it), so a session id shared by two tenants never shows one tenant the other's calls. Calls replayed
/// from the journal when the meter is built count as live ones do, so a restart keeps each tenant's sessions.
///
/// Near its bound (nine tenths full) it forgets the sessions the ledger no longer holds (their calls aged out
/// or were folded into `(other)`): the HTTP API checks on a tenant-bound request, at most once a minute. A
/// session the ledger still holds is never forgotten, so a forgotten one that comes back under another tenant
/// shows that tenant only calls it made itself. Sessions that arrive while it is full are queued (up to 10,000)
/// and learned at the next check; past that queue, every session the ledger holds that it does not know is
/// denied to tenant-bound keys rather than guessed.
///
/// A recording thread never waits for it: a call that finds the map locked (a sweep running, or another
/// thread adding a session) leaves its session and tenant in a side list, which the next holder of the lock
/// (a call, a sweep, or a lookup of the HTTP API) learns first.
#[derive(Clone)]
pub struct SessionTenants {
    inner: Arc<RwLock<TenantMap>>,
    deferred: Arc<Deferred>,
    max: usize,
    /// Set when a meter is built with it as a sink (the build asks every sink [`RecordSink::before_ledger`]):
    /// one given to the HTTP config alone never learns a session.
    sink: Arc<std::sync::atomic::AtomicBool>,
}

/// Its size, not its sessions: `HttpConfig`'s `Debug` in a log line wrote up to 100,000 session ids and tenants.
impl std::fmt::Debug for SessionTenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTenants").field("sessions", &self.len()).field("max", &self.max).finish()
    }
}

/// (session, tenant) pairs in order, each once: a busy session's every call would otherwise add it again. Kept
/// whole and hashed with a keyed hasher: a session id is the caller's to choose, and with pairs told apart by an
/// unkeyed hash alone, one made to collide with a pair already held was dropped (its session then stayed its
/// first tenant's, though another tenant's calls were in it).
#[derive(Debug, Default)]
struct PairList {
    pairs: indexmap::IndexSet<(String, String)>,
}

/// A pair looked up without allocating: hashes as `(String, String)` does.
#[derive(Hash)]
struct PairRef<'a>(&'a str, &'a str);

impl indexmap::Equivalent<(String, String)> for PairRef<'_> {
    fn equivalent(&self, key: &(String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

impl PairList {
    /// Adds the pair unless it is there (then it costs a hash and no allocation).
    fn push_once(&mut self, s: &str, t: &str) {
        if !self.contains(s, t) {
            self.pairs.insert((s.to_owned(), t.to_owned()));
        }
    }

    fn contains(&self, s: &str, t: &str) -> bool {
        self.pairs.contains(&PairRef(s, t))
    }
}

/// Sessions and tenants of calls that found the map locked.
#[derive(Debug, Default)]
struct Deferred {
    pairs: Mutex<PairList>,
    /// Set after a pair is added: lookups learn the pairs first.
    any: std::sync::atomic::AtomicBool,
}

/// The sessions' tenants and what the next sweep needs.
#[derive(Debug, Default)]
struct TenantMap {
    sessions: HashMap<String, Tenant>,
    /// Bumped when a sweep starts; every call stamps its session with it, so that the sweep keeps the sessions
    /// seen while it read the ledger.
    generation: AtomicU64,
    /// Sessions and tenants that arrived while full, in order, each once (a busy session's every call while
    /// full would otherwise take the write lock and queue it again); `None` once more than [`MAX_QUEUED`] did.
    queued: Option<PairList>,
    /// When the last sweep ran.
    swept: Option<std::time::Instant>,
}

/// One session's tenant.
#[derive(Debug)]
struct Tenant {
    /// `None` once the session was seen under two tenants.
    owner: Option<String>,
    /// The generation of its last call.
    seen: AtomicU64,
}

/// Sessions queued while the map is full, at most.
const MAX_QUEUED: usize = 10_000;
/// Sweeps run at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl TenantMap {
    /// Applies one call's (session, tenant), or queues it (once) while full.
    fn learn_or_queue(&mut self, s: &str, t: &str, max: usize) {
        if !self.learn(s, t, max) {
            if self.queued.as_ref().is_some_and(|q| q.pairs.len() >= MAX_QUEUED) {
                self.queued = None;
            } else if let Some(q) = self.queued.as_mut() {
                q.push_once(s, t);
            }
        }
    }

    /// Applies one call's (session, tenant); false when there is no room for a new session.
    fn learn(&mut self, session: &str, tenant: &str, max: usize) -> bool {
        let (generation, len) = (*self.generation.get_mut(), self.sessions.len());
        match self.sessions.get_mut(session) {
            Some(known) => {
                if known.owner.as_deref().is_some_and(|owner| owner != tenant) {
                    known.owner = None;
                }
                *known.seen.get_mut() = generation;
            }
            None if len < max => {
                let seen = AtomicU64::new(generation);
                self.sessions.insert(session.to_owned(), Tenant { owner: Some(tenant.to_owned()), seen });
            }
            None => return false,
        }
        true
    }
}

impl Default for SessionTenants {
    fn default() -> Self {
        Self::new(100_000)
    }
}

/// The ledger's own row labels, which a session id may spell too: calls without a session, and sessions
/// folded past a bucket's cap.
fn is_ledger_label(session: &str) -> bool {
    session == crate::ledger::Dimension::Session.none_label() || session == "(other)"
}

impl SessionTenants {
    /// Remembers at most `max_sessions` sessions (see the type's docs for what happens near the bound). The
    /// sessions of calls replayed from the journal count too: size it for the sessions the ledger holds plus
    /// those to come.
    pub fn new(max_sessions: usize) -> Self {
        SessionTenants {
            inner: Arc::new(RwLock::new(TenantMap { queued: Some(PairList::default()), ..Default::default() })),
            deferred: Arc::default(),
            max: max_sessions,
            sink: Arc::default(),
        }
    }

    /// Whether a meter was built with it as a sink ([`TokenMeterBuilder::with_sink`](crate::TokenMeterBuilder)).
    fn is_sink(&self) -> bool {
        self.sink.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The tenant of `session`, if known and unique. Never for `(none)` or `(other)`: a ledger query for a session
    /// of that name reads the ledger's own rows (calls without a session, sessions past a bucket's cap) of
    /// every tenant, so a session whose id is one of those labels belongs to no tenant.
    pub fn tenant_of(&self, session: &str) -> Option<String> {
        if is_ledger_label(session) {
            return None;
        }
        self.learn_deferred();
        self.inner.read().sessions.get(session).and_then(|t| t.owner.clone())
    }

    /// How many sessions it remembers.
    pub fn len(&self) -> usize {
        self.learn_deferred();
        self.inner.read().sessions.len()
    }

    /// Learns the pairs of calls that found the map locked, waiting for the lock (not on a recording thread).
    fn learn_deferred(&self) {
        if self.deferred.any.load(Ordering::Acquire) {
            let mut map = self.inner.write();
            self.take_deferred(&mut map);
        }
    }

    /// Learns the deferred pairs into `map` (its write lock held).
    fn take_deferred(&self, map: &mut TenantMap) {
        if !self.deferred.any.swap(false, Ordering::AcqRel) {
            return;
        }
        let PairList { pairs } = std::mem::take(&mut *self.deferred.pairs.lock());
        for (s, t) in pairs {
            map.learn_or_queue(&s, &t, self.max);
        }
    }

    /// Leaves a pair for the next holder of the lock (a pair already left costs a hash and no allocation: a
    /// busy session's calls during a sweep leave it once).
    fn defer(&self, s: &str, t: &str) {
        self.deferred.pairs.lock().push_once(s, t);
        self.deferred.any.store(true, Ordering::Release);
    }

    /// Whether it remembers no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remembers the tenant of a call's, task's or tool execution's session (see the type's docs for a session
    /// under two tenants): the ledger keeps all three by session, so all three say whose a session is.
    ///
    /// A call without a tenant counts under the ledger's label for none, `(none)`: a session with calls of a
    /// tenant and calls without one is shared (a tenant key read the others' calls in its figures). A task or a
    /// tool execution without a tenant says nothing (the tenant is often recorded on the call spans only, below
    /// the task's span).
    fn learn(&self, dimensions: &crate::Dimensions, tenantless_counts: bool) {
        if let Some(s) = dimensions.session.as_deref()
            && !is_ledger_label(s)
        {
            let none = tenantless_counts.then(|| crate::ledger::Dimension::Tenant.none_label());
            if let Some(t) = dimensions.tenant.as_deref().or(none) {
                self.learn_pair(s, t);
            }
        }
    }

    /// Remembers that `s` ran under tenant `t`, or queues it (once) while full; defers it when the map is locked.
    fn learn_pair(&self, s: &str, t: &str) {
        {
            // Nothing to change: only the stamp, under the shared lock.
            let Some(map) = self.inner.try_read() else { return self.defer(s, t) };
            match map.sessions.get(s) {
                Some(known) if known.owner.as_deref().is_none_or(|owner| owner == t) => {
                    known.seen.store(map.generation.load(Ordering::Relaxed), Ordering::Relaxed);
                    return;
                }
                // A known session under another tenant: the write below marks it shared.
                Some(_) => {}
                // Unknown and queued already, or the queue overflowed (the sweep denies what it lost): the
                // write lock would change nothing.
                None if map.queued.as_ref().is_none_or(|q| q.contains(s, t)) => return,
                None => {}
            }
        }
        let Some(mut map) = self.inner.try_write() else { return self.defer(s, t) };
        self.take_deferred(&mut map);
        map.learn_or_queue(s, t, self.max);
    }

    /// Forgets the sessions `meter`'s ledger no longer holds, when nine tenths full and a minute after the
    /// last sweep; then learns the queued sessions. Run by the HTTP API before it looks a tenant up.
    pub(crate) fn sweep_if_due(&self, meter: &TokenMeter) {
        {
            let map = self.inner.read();
            let queued = !map.queued.as_ref().is_some_and(|q| q.pairs.is_empty());
            let near_full = map.sessions.len() >= self.max - self.max / 10;
            if !(near_full || queued) || map.swept.is_some_and(|t| t.elapsed() < SWEEP_EVERY) {
                return;
            }
        }
        let before = self.begin_sweep();
        // Read without holding the lock: recording threads learn meanwhile.
        let held = meter.ledger().held_sessions();
        let held: HashSet<&str> = held.iter().map(|s| &**s).collect();
        self.sweep(&held, before);
    }

    /// Starts a sweep: the generation the calls from now on stamp their sessions with.
    fn begin_sweep(&self) -> u64 {
        self.inner.read().generation.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Keeps the sessions in `held` (the ledger's) and those seen since [`begin_sweep`](Self::begin_sweep)
    /// returned `since`, then learns the queued ones; if the queue overflowed, denies every held session it
    /// does not know. (A session learned just before the sweep began, whose call was not in the ledger yet when
    /// `held` was read, is learned again once it is: `RecordSink::after_ledger`.)
    fn sweep(&self, held: &HashSet<&str>, since: u64) {
        let mut map = self.inner.write();
        map.swept = Some(std::time::Instant::now());
        map.sessions.retain(|s, t| *t.seen.get_mut() >= since || held.contains(s.as_str()));
        // `None`: more sessions arrived while full than the queue kept.
        let queued = map.queued.replace(PairList::default());
        let mut lost = queued.is_none();
        for (s, t) in queued.into_iter().flat_map(|q| q.pairs) {
            // Full again: this session's calls may be in the ledger, so it must not be learned later from a
            // later call alone.
            lost |= !map.learn(&s, &t, self.max);
        }
        if lost {
            let generation = *map.generation.get_mut();
            for s in held {
                let denied = || Tenant { owner: None, seen: AtomicU64::new(generation) };
                map.sessions.entry((*s).to_owned()).or_insert_with(denied);
            }
        }
        // The calls that found the map locked meanwhile (this sweep holding it): seen now.
        self.take_deferred(&mut map);
    }
}

impl RecordSink for SessionTenants {
    fn on_call(&self, record: &CallRecord) {
        self.learn(&record.dimensions, true);
    }

    /// A call of a second tenant in a session is known here before the ledger holds it: heard of after, a read
    /// of the session between the two by the first tenant's key showed the second tenant's call.
    fn before_ledger(&self) -> bool {
        // Asked of every sink when a meter is built: this one is a sink of it.
        self.sink.store(true, std::sync::atomic::Ordering::Relaxed);
        true
    }

    /// Learned again once the ledger holds the call: a sweep that read the ledger's sessions between `on_call`
    /// and the ledger taking the call in forgot a session it had just learned, and a later call of another
    /// tenant in it was learned as that tenant's alone (and shown the first tenant's call).
    fn after_ledger(&self, dimensions: &crate::Dimensions, call: bool) {
        self.learn(dimensions, call);
    }

    /// A session's tasks and tool executions show on its endpoints too: another tenant's in the same session
    /// id makes it shared, as its calls would.
    fn on_task(&self, record: &crate::TaskRecord) {
        self.learn(&record.dimensions, false);
    }

    fn on_tool(&self, record: &crate::ToolRecord) {
        self.learn(&record.dimensions, false);
    }

    /// An erased session, and every session of an erased tenant, is forgotten (a session another tenant shared
    /// stays shared: no tenant's key reads it).
    fn on_erase(&self, values: &[(String, String)]) {
        let of = |dim: &str| -> std::collections::HashSet<&str> {
            values.iter().filter(|(d, _)| d == dim).map(|(_, v)| v.as_str()).collect()
        };
        let (sessions, tenants) = (of("session"), of("tenant"));
        if sessions.is_empty() && tenants.is_empty() {
            return;
        }
        let mut map = self.inner.write();
        self.take_deferred(&mut map);
        map.sessions.retain(|s, t| {
            !sessions.contains(s.as_str()) && !t.owner.as_deref().is_some_and(|owner| tenants.contains(owner))
        });
        if let Some(queued) = map.queued.as_mut() {
            queued.pairs.retain(|(s, t)| !sessions.contains(s.as_str()) && !tenants.contains(t.as_str()));
        }
    }

    /// The ledger rebuilds its sessions from the journal at start; their tenants must come back with them.
    fn on_replayed_call(&self, record: &CallRecord) {
        self.learn(&record.dimensions, true);
    }

    fn on_replayed_task(&self, record: &crate::TaskRecord) {
        self.learn(&record.dimensions, false);
    }

    fn on_replayed_tool(&self, record: &crate::ToolRecord) {
        self.learn(&record.dimensions, false);
    }
}

/// An error starting the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The address could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The server's runtime or thread could not be started.
    #[error("cannot start the server: {0}")]
    Start(std::io::Error),
    /// The settings are unusable (an empty API key).
    #[error("invalid HTTP API settings: {0}")]
    Config(String),
}

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) meter: TokenMeter,
    pub(crate) config: Arc<HttpConfig>,
    /// Reports computing or queued to compute at once ([`REPORTS_AT_ONCE`]): a request waits for a permit before
    /// its report is queued, so a request abandoned meanwhile (its client gone, its time limit past) queues
    /// nothing.
    pub(crate) reports: Arc<tokio::sync::Semaphore>,
    /// Each caller's reports queued or computing at once ([`PER_CALLER`]), so that one key cannot take every
    /// report's turn: the admin keys share one, each tenant has its own.
    pub(crate) callers: Arc<HashMap<Caller, Arc<tokio::sync::Semaphore>>>,
}

/// Reports computed at once per router: they take the ledger's lock one at a time anyway.
const REPORTS_AT_ONCE: usize = 4;

/// Reports one caller has queued or computing at once, each turn held until its report ends; the rest wait their
/// turn (within the request's time limit). One tenant's key sending 200 heavy reports at once had the admin's
/// summary wait 1.6-1.8 s, or fail with `503` after the 10 s limit: with one caller below the reports' slots,
/// another caller's report computes beside its two (two such callers still fill them).
pub(crate) const PER_CALLER: usize = REPORTS_AT_ONCE / 2;

/// Who is asking: every tenant, or one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Caller {
    All,
    Tenant(String),
}

/// The router of the API: mount it in your axum application (it carries its own state). Without an API key it
/// answers clients on this machine only, and must know where each client is: serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`, or every request gets `403` saying so.
pub fn router(meter: TokenMeter, config: HttpConfig) -> Router {
    // `serve` refuses these; a router has no error to return, so it says so.
    if let Some(problem) = config_problem(&config) {
        tracing::warn!(target: "tokenmeter::http", "{problem}");
    }
    let reports = Arc::new(tokio::sync::Semaphore::new(REPORTS_AT_ONCE));
    let callers = std::iter::once(Caller::All)
        .chain(config.keys.iter().filter_map(|k| k.tenant.clone().map(Caller::Tenant)))
        .map(|c| (c, Arc::new(tokio::sync::Semaphore::new(PER_CALLER))))
        .collect();
    let state = AppState { meter, config: Arc::new(config), reports, callers: Arc::new(callers) };
    let api = Router::new()
        .route("/api/v1/analytics/token-efficiency", get(handlers::token_efficiency))
        .route("/api/v1/analytics/cache-performance", get(handlers::cache_performance))
        .route("/api/v1/analytics/tokens", get(handlers::tokens))
        .route("/api/v1/token-usage/summary", get(handlers::usage_summary))
        .route("/api/v1/token-usage/{session_id}", get(handlers::session_usage))
        .route("/api/v1/token-usage/{session_id}/metrics", get(handlers::session_metrics))
        .route("/api/v1/budgets", get(handlers::budgets))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/api/v1/openapi.json", get(handlers::openapi))
        .merge(api)
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), limits))
        .with_state(state)
}

/// What makes a configuration answer no request as meant, or unsafely, wherever it is served: an empty, short or
/// shared key, a request limit below a request's headers, a zero timeout, a [`SessionTenants`] no meter records
/// into.
fn config_problem(config: &HttpConfig) -> Option<String> {
    if let Some(k) = config.keys.iter().find(|k| k.key.is_empty()) {
        let which = k.tenant.as_ref().map_or_else(|| "an API key".to_owned(), |t| format!("the key of tenant `{t}`"));
        return Some(format!("{which} is empty (an unset environment variable?)"));
    }
    if let Some(k) = config.keys.iter().find(|k| k.key.len() < MIN_KEY_BYTES) {
        let which = k.tenant.as_ref().map_or_else(|| "an API key".to_owned(), |t| format!("the key of tenant `{t}`"));
        return Some(format!(
            "{which} is {} bytes: a key needs at least {MIN_KEY_BYTES} (`openssl rand -hex 16` makes one of 32); a \
             short key is guessed, and nothing slows down wrong guesses",
            k.key.len()
        ));
    }
    if let Some((first, second)) = duplicate_key(&config.keys) {
        return Some(format!(
            "{first} and {second} are the same secret: each caller needs a key of its own (one copied into two \
             environment variables?)"
        ));
    }
    if config.max_request_bytes < MIN_REQUEST_BYTES {
        return Some(format!(
            "`with_max_request_bytes({})` is smaller than a request's headers: at least {MIN_REQUEST_BYTES}",
            config.max_request_bytes
        ));
    }
    if config.timeout.is_zero() {
        return Some("a zero timeout would end every request at once".to_owned());
    }
    if config.session_tenants.as_ref().is_some_and(|t| !t.is_sink()) {
        return Some(
            "the `SessionTenants` given to `with_session_tenants` is not a sink of any meter: add it to the meter \
             with `with_sink` too, or it never learns a session's tenant and tenant-bound keys get 404 for every \
             session"
                .to_owned(),
        );
    }
    None
}

/// The error body: `{error, detail, param}`.
pub(crate) fn error(status: StatusCode, error: &str, detail: impl Into<String>, param: Option<&str>) -> Response {
    let body = serde_json::json!({ "error": error, "detail": detail.into(), "param": param });
    json_response(status, &body)
}

pub(crate) fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut r = (status, Body::from(bytes)).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => {
            let mut r = (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{{\"error\":\"internal\",\"detail\":{:?},\"param\":null}}", e.to_string()),
            )
                .into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
    }
}

/// The key a request presents: `X-API-Key`, else `Authorization: Bearer <key>` (an empty `X-API-Key`, as a
/// client template with an unset variable sends, does not hide a bearer token; the scheme is followed by one or
/// more spaces, as RFC 9110 has it, or a tab).
fn presented_key(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(v) = headers.get("x-api-key").map(HeaderValue::as_bytes).filter(|v| !v.trim_ascii().is_empty()) {
        return Some(v);
    }
    let auth = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = auth.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || !rest.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
        return None;
    }
    Some(rest.trim_ascii_start())
}

fn key_digest(state: &std::hash::RandomState, key: &[u8]) -> [u8; 8] {
    use std::hash::BuildHasher;
    state.hash_one(key).to_le_bytes()
}

/// Finds the key in constant time over every configured key (no early exit). Keys are compared as keyed
/// digests first (a slice comparison returns early on a length difference, which would time a key's length),
/// then as bytes. An empty key never matches, presented or configured.
fn authenticate(config: &HttpConfig, presented: &[u8]) -> Option<Caller> {
    use subtle::ConstantTimeEq;
    if presented.is_empty() {
        return None;
    }
    let theirs = key_digest(&config.key_digest, presented);
    let mut found: Option<Caller> = None;
    let mut conflict = false;
    for k in &config.keys {
        let same_digest: bool = k.digest.ct_eq(&theirs).into();
        // Equal digests mean equal lengths but for a 2^-64 chance: the byte comparison then leaks nothing.
        let eq = same_digest && !k.key.is_empty() && bool::from(k.key.ct_eq(presented));
        if eq {
            let caller = k.tenant.clone().map_or(Caller::All, Caller::Tenant);
            conflict |= found.as_ref().is_some_and(|f| *f != caller);
            found.get_or_insert(caller);
        }
    }
    // One secret configured for two callers ([`serve`] refuses it; a router mounted elsewhere is not checked):
    // whichever came first was served, so a tenant's key could read every tenant. Neither is.
    if conflict { None } else { found }
}

/// The first API key configured for two callers, as the callers it was given to, for the error (the same key
/// twice for one caller is one caller).
fn duplicate_key(keys: &[ApiKey]) -> Option<(String, String)> {
    let name =
        |k: &ApiKey| k.tenant.as_ref().map_or_else(|| "the admin key".to_owned(), |t| format!("tenant `{t}`'s key"));
    keys.iter().enumerate().find_map(|(i, a)| {
        keys[..i].iter().find(|b| b.key == a.key && b.tenant != a.tenant).map(|b| (name(b), name(a)))
    })
}

async fn auth(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let caller = if state.config.keys.is_empty() {
        // Without keys the API is for this machine only. A web page can point its own name at 127.0.0.1 (DNS
        // rebinding) and have the browser read every tenant's usage; its requests carry its name as `Host`.
        // Over HTTP/2 the name comes as `:authority`, which lands in the URI, not in a `Host` header.
        let host = req.headers().get(header::HOST).map(|h| h.to_str().unwrap_or("?").to_owned());
        let host = host.or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()));
        if let Some(host) = host.filter(|h| !crate::net::is_loopback_host(h)) {
            return error(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "without an API key configured this API answers requests to localhost only (Host: {host}); \
                     configure a key to serve other names"
                ),
                None,
            );
        }
        // Nor does a `Host` header say where the client is (a router mounted on 0.0.0.0 answers anyone who sends
        // `Host: localhost`): the peer must be on this machine too. `serve` records it; a mounted router needs
        // `into_make_service_with_connect_info::<SocketAddr>()`.
        let peer = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        match peer {
            Some(ip) if ip.to_canonical().is_loopback() => {}
            Some(ip) => {
                return error(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "without an API key configured this API answers clients on this machine only (peer {ip}); \
                         configure a key to serve others"
                    ),
                    None,
                );
            }
            None => {
                return error(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "without an API key configured this API answers clients on this machine only, and this server \
                     does not say where the client is: serve the router with \
                     `into_make_service_with_connect_info::<SocketAddr>()` (`serve` does), or configure a key",
                    None,
                );
            }
        }
        Caller::All
    } else {
        let Some(presented) = presented_key(req.headers()) else {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "an API key is required: send `x-api-key` or `Authorization: Bearer`",
                None,
            );
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        };
        match authenticate(&state.config, presented) {
            Some(c) => c,
            None => {
                let mut r = error(StatusCode::UNAUTHORIZED, "unauthorized", "the API key is not valid", None);
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return r;
            }
        }
    };
    req.extensions_mut().insert(caller);
    // Read leniently, a `%FF` became U+FFFD and `%ZZ` stayed as written: a user id that matched nobody, answered
    // with a 200 and $0. A path segment so encoded is a 400 already.
    if let Some(detail) = req.uri().query().and_then(query_encoding_problem) {
        return error(StatusCode::BAD_REQUEST, "invalid_query", detail, None);
    }
    next.run(req).await
}

/// Why a query string is not percent-encoded UTF-8, if it is not: a `%` without two hex digits after it, or bytes
/// that are not UTF-8 once decoded (`+` is a space, as forms write it).
fn query_encoding_problem(query: &str) -> Option<String> {
    let bytes = query.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => decoded.push(b),
                    None => {
                        let shown: String = query[i..].chars().take(3).collect();
                        return Some(format!(
                            "the query string has `{shown}`, which is not percent-encoding (`%` and two hex digits; a \
                             `%` itself is `%25`)"
                        ));
                    }
                }
                i += 3;
            }
            b => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    match std::str::from_utf8(&decoded) {
        Ok(_) => None,
        Err(_) => {
            Some("the query string is not UTF-8 once percent-decoded (a `%FF`, or a character cut short)".to_owned())
        }
    }
}

fn cors_origin(config: &HttpConfig, headers: &HeaderMap) -> Option<HeaderValue> {
    if config.cors_origins.is_empty() {
        return None;
    }
    let origin = headers.get(header::ORIGIN)?;
    // Without a key, any page in a local browser could read every tenant through `*`: `serve` refuses it, and a
    // router mounted in the application's own server drops the wildcard (the origins named beside it still
    // match; they answered nothing).
    if config.cors_origins.iter().any(|o| o == "*") && !config.keys.is_empty() {
        return Some(HeaderValue::from_static("*"));
    }
    config.cors_origins.iter().any(|o| o != "*" && o.as_bytes() == origin.as_bytes()).then(|| origin.clone())
}

/// Size and time limits, CORS.
async fn limits(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let config = &state.config;
    let header_bytes: usize =
        req.uri().to_string().len() + req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>();
    let body_bytes = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let allow = cors_origin(config, req.headers());
    if header_bytes.saturating_add(body_bytes) > config.max_request_bytes {
        // With CORS headers, so that a browser shows the 413 rather than a CORS failure.
        let mut r = error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("requests are limited to {} bytes", config.max_request_bytes),
            None,
        );
        add_cors(r.headers_mut(), allow, !config.cors_origins.is_empty());
        no_store(r.headers_mut());
        return r;
    }
    if req.method() == Method::OPTIONS && allow.is_some() {
        let mut r = StatusCode::NO_CONTENT.into_response();
        add_cors(r.headers_mut(), allow, true);
        no_store(r.headers_mut());
        return r;
    }
    let mut r = match tokio::time::timeout(config.timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "timeout", "the request took too long", None),
    };
    add_cors(r.headers_mut(), allow, !config.cors_origins.is_empty());
    no_store(r.headers_mut());
    r
}

/// No cache keeps a response: a shared cache (a proxy in front of the API) that stored one made for a request
/// with an `x-api-key` (HTTP's caching rules single out `Authorization` only) could hand one tenant's figures to
/// the next request for the same URL, keyed or not.
fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.append(header::VARY, HeaderValue::from_static("authorization, x-api-key"));
}

/// CORS headers for an allowed origin. With CORS configured, every response varies by `Origin` (allowed or
/// not): a shared cache must not hand the copy made for one origin, without the allow header, to another.
fn add_cors(h: &mut HeaderMap, allow: Option<HeaderValue>, configured: bool) {
    if configured {
        h.append(header::VARY, HeaderValue::from_static("origin"));
    }
    if let Some(o) = allow {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, OPTIONS"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, x-api-key"));
        // `/api/v1/budgets`' next page: a page's script reads only the safelisted headers unless told.
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("link"));
    }
}

/// How long [`ServerHandle::shutdown`] lets in-flight requests finish before it drops their connections.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A running server ([`serve`]); dropping it shuts the server down too.
#[derive(Debug)]
#[must_use = "dropping the handle shuts the server down"]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, lets in-flight requests finish (at most [`SHUTDOWN_GRACE`]; connections
    /// still open then are dropped) and joins the server thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Serves [`router`] on `config`'s address (default `127.0.0.1:8787`) from its own thread and runtime, so
/// synchronous applications can use it. HTTP/1.1, with [`HttpConfig::with_header_read_timeout`] and
/// [`HttpConfig::with_max_connections`] applied.
pub fn serve(meter: TokenMeter, config: HttpConfig) -> Result<ServerHandle, HttpError> {
    if let Some(problem) = config_problem(&config) {
        return Err(HttpError::Config(problem));
    }
    let addr = config.addr;
    if config.keys.is_empty() && !addr.ip().is_loopback() {
        return Err(HttpError::Config(format!(
            "serving {addr} without an API key would let anyone who can reach it read every tenant's usage: add \
             `with_api_key`, or bind a loopback address"
        )));
    }
    if config.keys.is_empty() && config.cors_origins.iter().any(|o| o == "*") {
        return Err(HttpError::Config(
            "`with_cors_origin(\"*\")` without an API key would let any web page open in a browser on this machine \
             read every tenant's usage: add `with_api_key`, or name the origins allowed"
                .to_owned(),
        ));
    }
    if config.max_connections == 0 {
        return Err(HttpError::Config("`with_max_connections(0)` would accept no connection".to_owned()));
    }
    if config.header_read_timeout.is_zero() {
        return Err(HttpError::Config("a zero timeout would end every request at once".to_owned()));
    }
    // "No limit" written as the largest value: tokio's semaphore holds fewer permits, and a deadline past what
    // an `Instant` holds panics in the timers (on the server's thread, after `serve` returned).
    let mut config = config;
    config.max_connections = config.max_connections.min(tokio::sync::Semaphore::MAX_PERMITS);
    config.header_read_timeout = config.header_read_timeout.min(LONGEST_TIMEOUT);
    config.timeout = config.timeout.min(LONGEST_TIMEOUT);
    let std_listener = std::net::TcpListener::bind(addr).map_err(|source| HttpError::Bind { addr, source })?;
    std_listener.set_nonblocking(true).map_err(HttpError::Start)?;
    let local = std_listener.local_addr().map_err(HttpError::Start)?;
    // Reports run on the blocking pool (they take the ledger's lock one at a time): a few threads are plenty.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()
        .map_err(HttpError::Start)?;
    let limits = ConnectionLimits {
        header_read_timeout: config.header_read_timeout,
        max: config.max_connections,
        // Twice the request limit: past the limit and up to this, the middleware answers 413 with its JSON body;
        // past this, hyper answers 431 itself, having buffered no more (its default is ~400 KiB a connection).
        // At most 1 MiB: "no limit" (`usize::MAX`) let each connection buffer headers for the whole read timeout.
        max_buf: config.max_request_bytes.saturating_mul(2).clamp(8192, MAX_READ_BUFFER),
    };
    let app = router(meter, config);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
    let thread = std::thread::Builder::new()
        .name("tokenmeter-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => {
                        let _ = ready_tx.send(Ok(()));
                        l
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                accept_loop(listener, app, limits, rx).await;
            });
        })
        .map_err(HttpError::Start)?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(ServerHandle { addr: local, stop: Some(tx), thread: Some(thread) }),
        Ok(Err(e)) => Err(HttpError::Start(e)),
        Err(_) => Err(HttpError::Start(std::io::Error::other("the server thread ended early"))),
    }
}

/// What [`serve`] bounds per connection and in all.
#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    header_read_timeout: Duration,
    max: usize,
    /// hyper's read buffer per connection, in bytes (at least 8,192, hyper's least).
    max_buf: usize,
}

/// The shortest API key [`serve`] takes: a two-byte key was found in 394 guesses, 0.2 s on one connection.
const MIN_KEY_BYTES: usize = 16;

/// The least [`HttpConfig::with_max_request_bytes`] [`serve`] takes: below it, even `/healthz` is refused.
const MIN_REQUEST_BYTES: usize = 128;

/// The most a connection buffers while reading a request's headers.
const MAX_READ_BUFFER: usize = 1 << 20;

/// The longest timeout [`serve`] uses: a longer one (`Duration::MAX` for "none") is this.
const LONGEST_TIMEOUT: Duration = Duration::from_secs(365 * 86_400);

/// One open connection of [`accept_loop`]: whether a request is being answered on it, and how to close it.
#[derive(Debug, Default)]
struct OpenConnection {
    /// Requests in progress, from their headers to their response's last byte (hyper's HTTP/1 answers one at a
    /// time: 0 or 1).
    busy: std::sync::atomic::AtomicUsize,
    /// Output the socket did not take yet (its last write or flush was pending): a response still being written
    /// after its body was handed over.
    writing: std::sync::atomic::AtomicBool,
    /// Asked to close (at most once).
    closing: std::sync::atomic::AtomicBool,
    close: tokio::sync::Notify,
}

impl OpenConnection {
    /// Neither answering a request nor writing a response: waiting for or reading a request's headers, or kept
    /// alive between requests. Closed at once when asked.
    fn idle(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.busy.load(Ordering::Acquire) == 0 && !self.writing.load(Ordering::Acquire)
    }
}

/// A connection's socket, noting whether output is waiting on it ([`OpenConnection::writing`]).
struct Watched<T> {
    io: std::pin::Pin<Box<T>>,
    conn: Arc<OpenConnection>,
    open: Arc<OpenConnections>,
}

impl<T> Watched<T> {
    /// Notes a write's or flush's outcome; output that was waiting and went says so to a newcomer at the cap.
    fn note<R>(&self, poll: std::task::Poll<R>) -> std::task::Poll<R> {
        let was = self.conn.writing.swap(poll.is_pending(), std::sync::atomic::Ordering::AcqRel);
        if was && poll.is_ready() {
            self.open.freed.notify_one();
        }
        poll
    }
}

impl<T: tokio::io::AsyncRead> tokio::io::AsyncRead for Watched<T> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.get_mut().io.as_mut().poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite> tokio::io::AsyncWrite for Watched<T> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = this.io.as_mut().poll_write(cx, buf);
        this.note(poll)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let poll = this.io.as_mut().poll_flush(cx);
        this.note(poll)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.get_mut().io.as_mut().poll_shutdown(cx)
    }
}

/// The open connections, oldest first, and a signal that one may have become idle or closed.
#[derive(Debug, Default)]
struct OpenConnections {
    list: parking_lot::Mutex<std::collections::VecDeque<Arc<OpenConnection>>>,
    /// A request ended or a connection closed: a new connection waiting at the cap looks again.
    freed: tokio::sync::Notify,
}

impl OpenConnections {
    fn add(&self) -> Arc<OpenConnection> {
        let conn = Arc::new(OpenConnection::default());
        self.list.lock().push_back(Arc::clone(&conn));
        conn
    }

    fn remove(&self, conn: &Arc<OpenConnection>) {
        self.list.lock().retain(|c| !Arc::ptr_eq(c, conn));
        self.freed.notify_one();
    }

    fn is_empty(&self) -> bool {
        self.list.lock().is_empty()
    }

    /// Asks the oldest [idle](OpenConnection::idle) connection to close (a request whose headers arrive meanwhile
    /// is answered first), unless an idle one was asked already and is closing: its slot is on its way, and a
    /// second would close a connection for nothing. Nothing when every connection is answering a request.
    fn close_oldest_idle(&self) {
        use std::sync::atomic::Ordering;
        let list = self.list.lock();
        let mut idle = list.iter().filter(|c| c.idle());
        if idle.clone().any(|c| c.closing.load(Ordering::Acquire)) {
            return;
        }
        if let Some(c) = idle.find(|c| !c.closing.load(Ordering::Acquire)) {
            c.closing.store(true, Ordering::Release);
            c.close.notify_one();
        }
    }

    /// Asks every connection to close gracefully (the server is stopping).
    fn close_all(&self) {
        for c in self.list.lock().iter() {
            c.closing.store(true, std::sync::atomic::Ordering::Release);
            c.close.notify_one();
        }
    }
}

/// A response's body, counting its request in progress until hyper has written it all (and drops it).
struct Answering {
    body: axum::body::Body,
    _busy: Busy,
}

impl hyper::body::Body for Answering {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Counts a request in progress on its connection while it lives: from its headers to its response's last byte.
struct Busy(Arc<OpenConnection>, Arc<OpenConnections>);

impl Busy {
    fn new(conn: &Arc<OpenConnection>, open: &Arc<OpenConnections>) -> Self {
        conn.busy.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Busy(Arc::clone(conn), Arc::clone(open))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        self.1.freed.notify_one();
    }
}

/// What a connection that found every slot taken by requests in progress, for the whole header-read timeout,
/// is told before it is closed: `503` with the API's error body.
fn no_slot_response() -> Vec<u8> {
    let body = r#"{"error":"unavailable","detail":"every connection is answering a request","param":null}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Accepts connections until `stop` fires, at most `limits.max` open at once, each served by hyper's HTTP/1
/// with a header-read timeout and, as long, a write timeout (`axum::serve` sets no timer, so hyper's own 30 s
/// default never applies there). At the cap, a new connection takes the place of the oldest one not answering a
/// request (waiting for or reading its headers, or idle between requests), which is closed; when every one is
/// answering, it looks again as each request ends, for at most the header-read timeout, and is then answered
/// `503` and closed. Waiting for a free slot before accepting, 256 connections that sent nothing held the server
/// for good, renewed as the timeout closed them, and nobody else was answered (a security review: 0 of 10 requests
/// with 900 such sockets).
/// On `stop`: no more accepts, idle connections close, in-flight requests get [`SHUTDOWN_GRACE`], and the
/// connections still open then are dropped with the runtime.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).max_buf_size(limits.max_buf);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max));
    let open = Arc::new(OpenConnections::default());
    let mut stop = std::pin::pin!(stop);
    'accept: loop {
        let (mut stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: not this client's fault, and it passes.
                    if !is_per_connection_error(&e) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(tokio::sync::TryAcquireError::Closed) => break,
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                let deadline = tokio::time::Instant::now() + limits.header_read_timeout;
                loop {
                    if let Ok(slot) = Arc::clone(&slots).try_acquire_owned() {
                        break slot;
                    }
                    open.close_oldest_idle();
                    tokio::select! {
                        biased;
                        slot = Arc::clone(&slots).acquire_owned() => match slot {
                            Ok(slot) => break slot,
                            Err(_) => break 'accept,
                        },
                        // A request ended: its connection may be idle now.
                        () = open.freed.notified() => {}
                        () = tokio::time::sleep_until(deadline) => {
                            use tokio::io::AsyncWriteExt;
                            let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&no_slot_response())).await;
                            continue 'accept;
                        }
                        _ = &mut stop => break 'accept,
                    }
                }
            }
        };
        // A client that stops reading (pipelined requests, then a full socket) would block the response's write,
        // and hold its slot, for ever: hyper has no write timeout. A write that makes no progress for the
        // header-read timeout fails, and the connection closes.
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.header_read_timeout));
        let conn_state = open.add();
        // The peer's address, for the keyless loopback check (as `into_make_service_with_connect_info` gives it),
        // put in each request's extensions (re-layering the router for each connection cost ~100 allocations).
        let router = hyper_util::service::TowerToHyperService::new(app.clone());
        let (busy_of, open_of) = (Arc::clone(&conn_state), Arc::clone(&open));
        let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let busy = Busy::new(&busy_of, &open_of);
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            let answer = hyper::service::Service::call(&router, req);
            async move { answer.await.map(|response| response.map(|body| Answering { body, _busy: busy })) }
        });
        let watched = Watched { io: Box::pin(stream), conn: Arc::clone(&conn_state), open: Arc::clone(&open) };
        let conn = http.serve_connection(TokioIo::new(watched), service);
        let open = Arc::clone(&open);
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let mut asked = false;
            loop {
                tokio::select! {
                    _ = conn.as_mut() => break,
                    // Idle, or reading a request's headers (a client that sends them a byte at a time): closed now.
                    // Answering a request: closed once its response is written.
                    () = conn_state.close.notified(), if !asked => {
                        asked = true;
                        if conn_state.idle() {
                            break;
                        }
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(slot);
            open.remove(&conn_state);
        });
    }
    drop(listener);
    open.close_all();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while !open.is_empty() {
            let _ = tokio::time::timeout(Duration::from_millis(20), open.freed.notified()).await;
        }
    })
    .await;
}

/// Accept errors that concern one connection only (it was reset before it was accepted), as opposed to the
/// process running out of something.
fn is_per_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_given_to_two_callers_authenticates_neither() {
        // The same secret as the admin key and a tenant's key: whichever was configured first was served, so the
        // tenant read every tenant.
        let twice = HttpConfig::new().with_api_key("s-0123456789").with_tenant_key("s-0123456789", "acme");
        assert_eq!(authenticate(&twice, b"s-0123456789"), None);
        let config = twice.with_tenant_key("g-0123456789", "globex");
        assert_eq!(authenticate(&config, b"g-0123456789"), Some(Caller::Tenant("globex".into())));
        // The same key twice for the same caller is one caller.
        let same = HttpConfig::new().with_tenant_key("a-0123456789", "acme").with_tenant_key("a-0123456789", "acme");
        assert_eq!(authenticate(&same, b"a-0123456789"), Some(Caller::Tenant("acme".into())));
    }

    #[test]
    fn a_bearer_token_is_read_past_an_empty_api_key_header_and_extra_spaces() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer \tk-1"));
        assert_eq!(presented_key(&headers), Some(&b"k-1"[..]));
        headers.insert("x-api-key", HeaderValue::from_static(""));
        assert_eq!(presented_key(&headers), Some(&b"k-1"[..]));
        headers.insert("x-api-key", HeaderValue::from_static("k-2"));
        assert_eq!(presented_key(&headers), Some(&b"k-2"[..]));
        headers.remove("x-api-key");
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearerk-1"));
        assert_eq!(presented_key(&headers), None);
    }

    #[test]
    fn every_origin_is_allowed_only_behind_a_key() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        let keyless = HttpConfig::new().with_cors_origin("*");
        assert_eq!(cors_origin(&keyless, &headers), None, "a router mounted without a key");
        let keyed = HttpConfig::new().with_cors_origin("*").with_api_key("k-0123456789");
        assert_eq!(cors_origin(&keyed, &headers), Some(HeaderValue::from_static("*")));
    }

    #[test]
    fn pairs_are_found_by_borrowed_strings_and_told_apart_in_full() {
        let mut pairs = PairList::default();
        pairs.push_once("s-1", "acme");
        pairs.push_once("s-1", "acme");
        pairs.push_once("s-1", "globex");
        // Same bytes, split elsewhere: a pair is its two strings, not their concatenation.
        pairs.push_once("s-1a", "cme");
        assert!(pairs.contains("s-1", "acme") && pairs.contains("s-1", "globex") && pairs.contains("s-1a", "cme"));
        assert!(!pairs.contains("s-1", "acm") && !pairs.contains("s-2", "acme"));
        let order: Vec<_> = pairs.pairs.iter().map(|(s, t)| format!("{s}/{t}")).collect();
        assert_eq!(order, ["s-1/acme", "s-1/globex", "s-1a/cme"]);
    }

    fn held<'a>(sessions: &[&'a str]) -> HashSet<&'a str> {
        sessions.iter().copied().collect()
    }

    #[test]
    fn keys_match_whole_never_empty() {
        // The router (mountable without `serve`'s check) with an empty key configured beside a real one.
        let config = HttpConfig::new().with_api_key("").with_api_key("admin-key").with_tenant_key("acme-key", "acme");
        assert!(authenticate(&config, b"").is_none());
        assert!(matches!(authenticate(&config, b"admin-key"), Some(Caller::All)));
        assert!(matches!(authenticate(&config, b"acme-key"), Some(Caller::Tenant(t)) if t == "acme"));
        for wrong in [&b"admin-ke"[..], b"admin-key ", b"acme-key-", b"x"] {
            assert!(authenticate(&config, wrong).is_none(), "{wrong:?}");
        }
    }

    #[test]
    fn a_sweep_keeps_held_sessions_and_learns_the_queued_ones() {
        let tenants = SessionTenants::new(2);
        tenants.learn_pair("s-1", "acme");
        tenants.learn_pair("s-2", "globex");
        tenants.learn_pair("s-3", "acme"); // full: queued
        assert_eq!(tenants.tenant_of("s-3"), None);
        let before = tenants.begin_sweep();
        tenants.sweep(&held(&["s-2", "s-3"]), before);
        assert_eq!(tenants.tenant_of("s-1"), None, "no longer in the ledger: forgotten");
        assert_eq!(tenants.tenant_of("s-2").as_deref(), Some("globex"));
        assert_eq!(tenants.tenant_of("s-3").as_deref(), Some("acme"), "learned from the queue");
        assert_eq!(tenants.len(), 2);
    }

    #[test]
    fn a_call_never_waits_for_a_sweep_and_is_learned_after_it() {
        // A sweep holds the write lock for its whole pass over the map (milliseconds at 100,000 sessions):
        // recording threads waited for it.
        let tenants = SessionTenants::new(10);
        tenants.learn_pair("s-1", "acme");
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let held = tenants.inner.write();
        let recording = tenants.clone();
        let thread = std::thread::spawn(move || {
            recording.learn_pair("s-1", "globex");
            recording.learn_pair("s-2", "acme");
            done_tx.send(()).unwrap();
        });
        let waited = done_rx.recv_timeout(Duration::from_secs(10)).is_err();
        drop(held);
        thread.join().unwrap();
        assert!(!waited, "the recording thread waited for the lock");
        assert_eq!(tenants.tenant_of("s-1"), None, "seen under globex too: shared");
        assert_eq!(tenants.tenant_of("s-2").as_deref(), Some("acme"));
        // A sweep learns them too, as seen during it.
        let held = tenants.inner.write();
        let recording = tenants.clone();
        std::thread::spawn(move || recording.learn_pair("s-3", "acme")).join().unwrap();
        drop(held);
        let before = tenants.begin_sweep();
        tenants.sweep(&HashSet::new(), before);
        assert_eq!(tenants.inner.read().sessions.get("s-3").and_then(|t| t.owner.clone()).as_deref(), Some("acme"));
    }

    #[test]
    fn a_busy_session_is_queued_once_while_full() {
        // Each call of one session queued it again: 10,001 calls overflowed the queue, and the sweep then denied
        // every session it did not know, this one included.
        let tenants = SessionTenants::new(1);
        tenants.learn_pair("s-1", "acme");
        for _ in 0..=MAX_QUEUED {
            tenants.learn_pair("busy", "acme");
        }
        assert_eq!(tenants.inner.read().queued.as_ref().map(|q| q.pairs.len()), Some(1));
        let before = tenants.begin_sweep();
        tenants.sweep(&held(&["busy"]), before);
        assert_eq!(tenants.tenant_of("busy").as_deref(), Some("acme"));
        // A known session seen under a second tenant is still marked shared (the shortcut is for unknown ones).
        tenants.learn_pair("busy", "globex");
        assert_eq!(tenants.tenant_of("busy"), None);
    }

    #[test]
    fn a_session_learned_while_the_ledger_was_read_is_kept() {
        let tenants = SessionTenants::new(10);
        tenants.learn_pair("old", "acme");
        let before = tenants.begin_sweep();
        tenants.learn_pair("new", "acme"); // after the ledger was read: not in `held`
        tenants.sweep(&held(&[]), before);
        assert_eq!(tenants.tenant_of("old"), None);
        assert_eq!(tenants.tenant_of("new").as_deref(), Some("acme"));
    }

    #[test]
    fn a_session_forgotten_before_its_call_reached_the_ledger_is_learned_again() {
        // This sink hears of a call before the ledger: a sweep that read the ledger's sessions in between forgot
        // the session, and a later call of another tenant in it was learned as that tenant's alone.
        let tenants = SessionTenants::new(10);
        let mut call = crate::journal::line::tests::bare();
        call.dimensions.session = Some("x".into());
        call.dimensions.tenant = Some("acme".into());
        tenants.on_call(&call);
        let before = tenants.begin_sweep();
        tenants.sweep(&held(&[]), before); // the ledger did not hold `x` yet
        assert_eq!(tenants.tenant_of("x"), None, "forgotten by the sweep");
        tenants.after_ledger(&call.dimensions, true); // now it does
        assert_eq!(tenants.tenant_of("x").as_deref(), Some("acme"));
        tenants.learn_pair("x", "globex");
        assert_eq!(tenants.tenant_of("x"), None, "shared: neither tenant's");
        // A tool run's session the same way.
        let mut tool = call.dimensions.clone();
        tool.session = Some("t".into());
        tenants.learn(&tool, false); // as `on_tool` learns it
        let before = tenants.begin_sweep();
        tenants.sweep(&held(&[]), before);
        assert_eq!(tenants.tenant_of("t"), None);
        tenants.after_ledger(&tool, false);
        assert_eq!(tenants.tenant_of("t").as_deref(), Some("acme"));
    }

    #[test]
    fn a_known_session_called_again_while_the_ledger_was_read_is_kept() {
        // Its new call may be in the ledger after the read, under its own id: forgetting the session would let
        // another tenant's later call on the same id claim it.
        let tenants = SessionTenants::new(10);
        tenants.learn_pair("s", "acme");
        let before = tenants.begin_sweep();
        tenants.learn_pair("s", "acme");
        tenants.sweep(&held(&[]), before);
        assert_eq!(tenants.tenant_of("s").as_deref(), Some("acme"));
        tenants.learn_pair("s", "globex");
        assert_eq!(tenants.tenant_of("s"), None);
    }

    #[test]
    fn a_conflict_during_the_read_is_kept_as_a_conflict() {
        let tenants = SessionTenants::new(10);
        tenants.learn_pair("s", "acme");
        let before = tenants.begin_sweep();
        tenants.learn_pair("s", "globex");
        tenants.sweep(&held(&[]), before);
        assert_eq!(tenants.len(), 1, "changed after the read: kept");
        tenants.learn_pair("s", "acme");
        assert_eq!(tenants.tenant_of("s"), None, "still belongs to neither");
    }

    #[test]
    fn when_the_queue_overflows_every_unknown_held_session_is_denied() {
        let tenants = SessionTenants::new(1);
        tenants.learn_pair("s-1", "acme");
        for i in 0..=MAX_QUEUED {
            tenants.learn_pair(&format!("q-{i}"), "globex");
        }
        assert!(tenants.inner.read().queued.is_none(), "overflowed");
        let before = tenants.begin_sweep();
        tenants.sweep(&held(&["s-1", "q-5", "q-9000"]), before);
        assert_eq!(tenants.tenant_of("s-1").as_deref(), Some("acme"));
        assert_eq!(tenants.len(), 3, "s-1 and two denied entries");
        // A denied session is not learned from a later call: some of its calls may be another tenant's.
        tenants.learn_pair("q-5", "globex");
        assert_eq!(tenants.tenant_of("q-5"), None);
        assert_eq!(tenants.inner.read().queued.as_ref().map(|q| q.pairs.len()), Some(0), "the queue starts again");
    }

    #[test]
    fn a_queued_session_with_no_room_at_the_sweep_is_denied() {
        let tenants = SessionTenants::new(1);
        tenants.learn_pair("s-1", "acme");
        tenants.learn_pair("s-2", "globex"); // queued
        let before = tenants.begin_sweep();
        tenants.sweep(&held(&["s-1", "s-2"]), before); // both still held: no room for s-2
        assert_eq!(tenants.tenant_of("s-1").as_deref(), Some("acme"));
        assert_eq!(tenants.tenant_of("s-2"), None);
        assert!(tenants.inner.read().sessions.contains_key("s-2"), "denied, not unknown");
        tenants.learn_pair("s-2", "globex");
        assert_eq!(tenants.tenant_of("s-2"), None);
    }
}
