//! The endpoint handlers.
// The error responses are built on cold paths and returned once per request: their size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::Extension;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{OriginalUri, Path, Query as QueryParams, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{AppState, Caller, error, json_response};
use crate::analysis::{CacheMetrics, ReportFilter};
use crate::budget::{BudgetScope, BudgetState};
use crate::ledger::calendar;
use crate::ledger::{Dimension, GroupBy, GroupRow, Query, QueryError, Selection, TimeGrain, Window, WindowBounds};
use crate::meter::ToolUsage;

type Raw = Result<QueryParams<Vec<(String, String)>>, QueryRejection>;
/// The `{session_id}` path segment, or why axum could not decode it (not UTF-8 once percent-decoded).
type SessionPath = Result<Path<String>, PathRejection>;

/// The session id of the path, or the documented `400 {error, detail, param}` (axum's own rejection is
/// `text/plain`).
fn session_id(path: SessionPath) -> Result<String, Response> {
    path.map(|Path(session)| session)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_parameter", e.body_text(), Some("session_id")))
}

/// The query string, by snake_case name (a camelCase name is read as its snake_case spelling).
struct Params(HashMap<String, String>);

impl Params {
    /// The parameters of an endpoint that takes those named in `takes` (snake_case). Refuses a parameter it
    /// does not take (another endpoint's, a misspelt one: ignored, it would answer another question than the
    /// one asked), and one given twice, under either spelling: which one would win is not for us to guess.
    fn of(raw: Raw, takes: &[&str]) -> Result<Self, Response> {
        let pairs = match raw {
            Ok(QueryParams(pairs)) => pairs,
            Err(e) => return Err(error(StatusCode::BAD_REQUEST, "invalid_query", e.body_text(), None)),
        };
        let mut map = HashMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            let key = snake(&name);
            if !takes.contains(&key.as_str()) {
                let detail = if takes.is_empty() {
                    format!("unknown parameter `{name}`: this endpoint takes no query parameters")
                } else {
                    format!("unknown parameter `{name}`: this endpoint takes {}", takes.join(", "))
                };
                return Err(error(StatusCode::BAD_REQUEST, "invalid_parameter", detail, Some(&name)));
            }
            if map.contains_key(&key) {
                let detail = format!("`{key}` is given more than once (snake_case and camelCase name the same one)");
                return Err(error(StatusCode::BAD_REQUEST, "invalid_parameter", detail, Some(&key)));
            }
            map.insert(key, value);
        }
        Ok(Params(map))
    }

    /// The value of `snake`, empty strings read as absent.
    fn get(&self, snake: &'static str) -> Option<&str> {
        self.0.get(snake).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    /// The option named by `snake` (see [`one_of`]), or `default` when the parameter is absent.
    fn choice<T: Copy>(&self, snake: &'static str, default: T, options: &[(&str, T)]) -> Result<T, Response> {
        self.get(snake).map_or(Ok(default), |v| one_of(snake, v, options))
    }
}

/// `timeRange` as `time_range`; a snake_case name as it is.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn bad(param: &'static str, detail: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_parameter", detail, Some(param))
}

fn query_error(e: QueryError, param: Option<&'static str>) -> Response {
    let param = match &e {
        QueryError::InvalidArgument { name, .. } => Some(*name),
        _ => param,
    };
    error(StatusCode::BAD_REQUEST, "invalid_parameter", e.to_string(), param)
}

fn one_of<T: Copy>(param: &'static str, value: &str, options: &[(&str, T)]) -> Result<T, Response> {
    let v = value.to_ascii_lowercase();
    options.iter().find(|(n, _)| *n == v).map(|(_, t)| *t).ok_or_else(|| {
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        bad(param, format!("unknown value `{value}`: expected one of {}", names.join(", ")))
    })
}

/// The most time points one response may hold.
const MAX_POINTS: i64 = 10_000;

fn seconds(grain: TimeGrain) -> i64 {
    match grain {
        TimeGrain::Hour => 3_600,
        TimeGrain::Day => 86_400,
        TimeGrain::Week => 7 * 86_400,
        TimeGrain::Month => 28 * 86_400,
    }
}

/// Refuses a range that would make more than [`MAX_POINTS`] points of `grain`.
fn check_points(window: &Window, grain: TimeGrain, param: &'static str) -> Result<(), Response> {
    if let Window::Range { from, to } = window {
        let points = (to.timestamp() - from.timestamp()) / seconds(grain);
        if points > MAX_POINTS {
            return Err(bad(
                param,
                format!(
                    "the window holds {points} {grain}s; at most {MAX_POINTS} per request: narrow it or use a coarser grain"
                ),
            ));
        }
    }
    Ok(())
}

/// What to add to a bad time's message when it holds a space: most likely a `+` offset sent unescaped, which a
/// query string reads as a space.
fn plus_hint(value: &str) -> &'static str {
    if value.contains(' ') {
        " (a `+` in a query string is read as a space: send an offset like +01:00 as %2B01:00)"
    } else {
        ""
    }
}

/// The window `param` names (else `default`); with `series`, the report has a daily time series, whose points
/// are bounded (the efficiency report has none: a range of 30 years is as cheap as `all`).
fn window_param(
    state: &AppState,
    p: &Params,
    param: &'static str,
    default: Window,
    series: bool,
) -> Result<Window, Response> {
    let w = match p.get(param) {
        None => default,
        Some(s) => s.parse::<Window>().map_err(|e| bad(param, format!("{e}{}", plus_hint(s))))?,
    };
    if series {
        check_points(&w, TimeGrain::Day, param)?;
    }
    aligned(state, w, param)
}

/// A `FROM..TO` window widened to the edges of the ledger's buckets its bounds fall in
/// ([`Ledger::aligned`](crate::ledger::Ledger::aligned)): the window the figures are of, which the response's
/// `window` shows. Its bounds keep to the years 0000-9999, as RFC 3339 times have them: `to=9999-12-31` (its
/// end the midnight after), an offset past either end, or a bucket widened past it was echoed as
/// `+10000-01-01T00:00:00Z`, which no `date-time` reader parses.
fn aligned(state: &AppState, window: Window, param: &'static str) -> Result<Window, Response> {
    let window = state.meter.ledger().aligned(window).map_err(|e| query_error(e, Some(param)))?;
    if let Window::Range { from, to } = window {
        let four_digits = |t: DateTime<Utc>| (0..=9999).contains(&chrono::Datelike::year(&t));
        if !four_digits(from) || !four_digits(to) {
            return Err(bad(
                param,
                format!(
                    "the window {}..{} (widened to the ledger's buckets) is outside the years 0000-9999",
                    from.to_rfc3339(),
                    to.to_rfc3339()
                ),
            ));
        }
    }
    Ok(window)
}

/// An RFC 3339 time or a `YYYY-MM-DD` date: local midnight in the meter's time zone, the zone of the ledger's
/// days (with `end`, the midnight after it).
fn time_param(state: &AppState, p: &Params, param: &'static str, end: bool) -> Result<Option<DateTime<Utc>>, Response> {
    let Some(s) = p.get(param) else { return Ok(None) };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    // Four-digit years only, as RFC 3339 has them: `+99999-01-01` was taken, and echoed in `window` as a time no
    // `date-time` reader parses.
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && (0..=9999).contains(&chrono::Datelike::year(&d))
    {
        let d = if end { d.succ_opt() } else { Some(d) };
        let tz = state.meter.ledger().time_zone();
        if let Some(t) = d.and_then(|d| DateTime::from_timestamp(calendar::start_of_date(tz, d), 0)) {
            return Ok(Some(t));
        }
    }
    Err(bad(param, format!("invalid time `{s}`: expected YYYY-MM-DD or an RFC 3339 time{}", plus_hint(s))))
}

fn bool_param(p: &Params, param: &'static str) -> Result<bool, Response> {
    match p.get(param).map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(v) => Err(bad(param, format!("invalid boolean `{v}`: expected true or false"))),
    }
}

fn now(state: &AppState) -> DateTime<Utc> {
    state.meter.inner.clock.now()
}

/// The end of the current minute (the rolling windows' end).
fn minute_end(now: DateTime<Utc>) -> DateTime<Utc> {
    let s = now.timestamp().div_euclid(60) * 60 + 60;
    DateTime::from_timestamp(s, 0).unwrap_or(now)
}

/// The window of the two bounds (`param` names the start), each defaulting when absent: the end to `default_to`,
/// the start to `days` days before the end (the end given, else the default one), at the same local time, moved
/// on to the first bucket edge when that keeps at least half the length (an implied start widened back to its
/// bucket's start made `range=week` at 10:03 7 days and 10 hours long, 8 daily rows). A start given at or after
/// the end is refused, blaming the start.
fn range(
    state: &AppState,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    days: i64,
    default_to: DateTime<Utc>,
    param: &'static str,
) -> Result<Window, Response> {
    let to = to.unwrap_or(default_to);
    let from = match from {
        Some(from) => from,
        None => {
            let tz = state.meter.ledger().time_zone();
            // An end at a day's start (a date's end is the next day's start) goes back whole days: where clocks skip
            // midnight, the same local time `days` back is an hour into a day, or a time that never was.
            let back = calendar::same_local_time_or_day_start(tz, to.timestamp(), -days);
            // Near chrono's first day there is no `days` before the end: the window starts at the first instant.
            let back = back
                .and_then(|t| DateTime::from_timestamp(t, 0))
                .or_else(|| to.checked_sub_signed(Duration::days(days)))
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            // Only while that keeps most of the length: where `to` falls in a coarse bucket too (a day, days
            // back; a month, months back), the next edge may be that bucket's start, and the window (which
            // `aligned` ends at that bucket's end) would hold little of the length asked for and mostly what
            // follows `to`. Then, and where no edge falls before `to`, the start widens back to its bucket's.
            Some(state.meter.ledger().edge_at_or_after(back))
                .filter(|edge| *edge < to && (*edge - back) * 2 <= to - back)
                .unwrap_or(back)
        }
    };
    if from >= to {
        let detail = format!("the start {} is not before the end {}", from.to_rfc3339(), to.to_rfc3339());
        return Err(bad(param, detail));
    }
    Ok(Window::range(from, to))
}

/// The efficiency and cache reports' filter for `caller`: a tenant's own records, and (for the breakdown by
/// session, which the ledger cannot narrow to a tenant) the sessions [`SessionTenants`](super::SessionTenants)
/// attributes to that tenant.
fn report_filter(state: &AppState, caller: &Caller) -> ReportFilter {
    match caller {
        Caller::All => ReportFilter::new(),
        Caller::Tenant(t) => {
            let filter = ReportFilter::tenant(t.clone());
            match &state.config.session_tenants {
                Some(tenants) => {
                    tenants.sweep_if_due(&state.meter);
                    let (tenants, t) = (tenants.clone(), t.clone());
                    filter.with_sessions(move |s| tenants.tenant_of(s).is_some_and(|owner| owner == t))
                }
                None => filter,
            }
        }
    }
}

fn with_tenant(q: Query, caller: &Caller) -> Query {
    match caller {
        Caller::All => q,
        Caller::Tenant(t) => q.filter(Dimension::Tenant, t.clone()),
    }
}

// === handlers ===

pub(super) async fn healthz() -> Response {
    json_response(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

pub(super) async fn openapi(raw: Raw) -> Response {
    if let Err(r) = Params::of(raw, &[]) {
        return r;
    }
    // Built and serialized once per process (~25 KB, hundreds of allocations): the document needs no key, and
    // requests for it ran on the server's only async thread.
    static DOCUMENT: std::sync::OnceLock<axum::body::Bytes> = std::sync::OnceLock::new();
    let document = DOCUMENT.get_or_init(|| serde_json::to_vec(&super::openapi_document()).unwrap_or_default().into());
    let mut r = axum::response::IntoResponse::into_response((StatusCode::OK, axum::body::Body::from(document.clone())));
    r.headers_mut().insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
    r
}

pub(super) async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such endpoint: see /api/v1/openapi.json", None)
}

pub(super) async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "only GET is supported", None)
}

/// Runs a handler's report on tokio's blocking pool: a report is milliseconds of CPU under the ledger's lock
/// (a 30-day report over a million calls, ~3-14 ms), which on an async worker would stall every other request
/// on it, and which the request's time limit could not interrupt (it cannot fire during synchronous work).
///
/// At most [`REPORTS_AT_ONCE`](super::REPORTS_AT_ONCE) are queued or running: a request waits for a permit
/// first, so one abandoned while it waits (the client gone, the time limit past) queues nothing. One abandoned
/// after that still runs to its end (a blocking task cannot be stopped), holding its permit.
async fn blocking(state: &AppState, caller: &Caller, report: impl FnOnce() -> Response + Send + 'static) -> Response {
    // The caller's turn first ([`PER_CALLER`](super::PER_CALLER)), held until the report ends: released with the
    // request, a caller could drop requests whose reports kept computing and start more.
    let turn = match state.callers.get(caller) {
        Some(turns) => std::sync::Arc::clone(turns).acquire_owned().await.ok(),
        None => None,
    };
    let Ok(permit) = state.reports.clone().acquire_owned().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the server is stopping", None);
    };
    let report = move || {
        let response = report();
        drop(permit);
        drop(turn);
        response
    };
    match tokio::task::spawn_blocking(report).await {
        Ok(response) => response,
        Err(e) => {
            // The panic's text stays in the log: it may name what the caller may not see.
            tracing::error!(target: "tokenmeter::http", error = %e, "a report failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the report failed", None)
        }
    }
}

/// `GET /api/v1/analytics/token-efficiency`.
pub(super) async fn token_efficiency(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    raw: Raw,
) -> Response {
    let app = state.clone();
    let who = caller.clone();
    let run = move || -> Result<Response, Response> {
        let p = Params::of(raw, &["time_range", "group_by", "efficiency_metric"])?;
        let window = window_param(&state, &p, "time_range", Window::Last7Days, false)?;
        let group_by = p.choice(
            "group_by",
            Dimension::Session,
            &[
                ("session", Dimension::Session),
                ("project", Dimension::Project),
                ("model", Dimension::Model),
                ("agent", Dimension::Agent),
                ("operation", Dimension::Operation),
            ],
        )?;
        if let Some(m) = p.get("efficiency_metric") {
            one_of("efficiency_metric", m, &[("tokens_per_task", ()), ("cache_hit_rate", ()), ("reuse_rate", ())])?;
        }
        let filter = report_filter(&state, &caller);
        let mut report = state
            .meter
            .efficiency_report_for(window, group_by, &filter)
            .map_err(|e| query_error(e, Some("time_range")))?;
        if let Some(scope) = report.scope.as_mut() {
            hide_other_tenants(scope, &caller);
        }
        Ok(json_response(StatusCode::OK, &report))
    };
    blocking(&app, &who, move || run().unwrap_or_else(|r| r)).await
}

/// `GET /api/v1/analytics/cache-performance`.
pub(super) async fn cache_performance(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    raw: Raw,
) -> Response {
    let app = state.clone();
    let who = caller.clone();
    let run = move || -> Result<Response, Response> {
        let p = Params::of(raw, &["time_range"])?;
        let window = window_param(&state, &p, "time_range", Window::Last7Days, true)?;
        let filter = report_filter(&state, &caller);
        let mut report =
            state.meter.cache_report_for(window, &filter).map_err(|e| query_error(e, Some("time_range")))?;
        if let Some(scope) = report.scope.as_mut() {
            hide_other_tenants(scope, &caller);
        }
        Ok(json_response(StatusCode::OK, &report))
    };
    blocking(&app, &who, move || run().unwrap_or_else(|r| r)).await
}

/// `GET /api/v1/analytics/tokens`.
pub(super) async fn tokens(State(state): State<AppState>, Extension(caller): Extension<Caller>, raw: Raw) -> Response {
    let app = state.clone();
    let who = caller.clone();
    let run = move || -> Result<Response, Response> {
        let p = Params::of(raw, &["range", "from", "to", "model", "aggregation"])?;
        let (days, default_grain) = p.choice(
            "range",
            (7, TimeGrain::Day),
            &[
                ("day", (1, TimeGrain::Hour)),
                ("week", (7, TimeGrain::Day)),
                ("month", (30, TimeGrain::Day)),
                ("year", (365, TimeGrain::Month)),
            ],
        )?;
        let grain = p.choice(
            "aggregation",
            default_grain,
            &[
                ("hourly", TimeGrain::Hour),
                ("daily", TimeGrain::Day),
                ("weekly", TimeGrain::Week),
                ("monthly", TimeGrain::Month),
            ],
        )?;
        let from = time_param(&state, &p, "from", false)?;
        let to = time_param(&state, &p, "to", true)?;
        let window = range(&state, from, to, days, minute_end(now(&state)), "from")?;
        // A bound the window is too long or too far for: the start given, else the end (`to=1990-01-01` alone
        // blamed `from`, which was not sent).
        let bound = if from.is_none() && to.is_some() { "to" } else { "from" };
        let window = aligned(&state, window, bound)?;
        check_points(&window, grain, if p.get("aggregation").is_some() { "aggregation" } else { bound })?;
        let mut q = Query::new(window).group_by(GroupBy::Time(grain));
        if let Some(m) = p.get("model") {
            // The ledger keeps the calls of a model the book knows under its id: a dated, Bedrock or Vertex id names
            // the same model (the ledger reads it so too; resolved here for the echoed filter). An id the price book
            // does not know is kept as the calls reported it.
            let model = state.meter.price_book().resolve(m).map_or_else(|| m.to_owned(), |p| p.canonical().to_owned());
            q = q.filter(Dimension::Model, model);
        }
        let q = with_tenant(q, &caller);
        let asked = p.get("aggregation").is_some();
        // Not asked for, a grain no bucket of the window keeps is the window's fault: the bound given, else `range`.
        let blame = ["aggregation", "from", "to"].into_iter().find(|k| p.get(k).is_some()).unwrap_or("range");
        let mut result = query_by_time(&state, q, grain, asked, blame)?;
        hide_unattributed(&mut result, &caller);
        Ok(json_response(StatusCode::OK, &result))
    };
    blocking(&app, &who, move || run().unwrap_or_else(|r| r)).await
}

/// `GET /api/v1/token-usage/summary`.
pub(super) async fn usage_summary(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    raw: Raw,
) -> Response {
    let app = state.clone();
    let who = caller.clone();
    let run = move || -> Result<Response, Response> {
        let p = Params::of(raw, &["start_date", "end_date", "group_by"])?;
        let grain = p.choice(
            "group_by",
            TimeGrain::Day,
            &[("day", TimeGrain::Day), ("week", TimeGrain::Week), ("month", TimeGrain::Month)],
        )?;
        let from = time_param(&state, &p, "start_date", false)?;
        let to = time_param(&state, &p, "end_date", true)?;
        let window = if from.is_none() && to.is_none() {
            Window::Last30Days
        } else {
            let bound = if from.is_none() { "end_date" } else { "start_date" };
            aligned(&state, range(&state, from, to, 30, minute_end(now(&state)), "start_date")?, bound)?
        };
        check_points(&window, grain, if from.is_none() && to.is_some() { "end_date" } else { "start_date" })?;
        let q = with_tenant(Query::new(window).group_by(GroupBy::Time(grain)), &caller);
        let asked = p.get("group_by").is_some();
        let blame =
            ["group_by", "start_date", "end_date"].into_iter().find(|k| p.get(k).is_some()).unwrap_or("start_date");
        let mut result = query_by_time(&state, q, grain, asked, blame)?;
        hide_unattributed(&mut result, &caller);
        Ok(json_response(StatusCode::OK, &result))
    };
    blocking(&app, &who, move || run().unwrap_or_else(|r| r)).await
}

/// Runs `q` grouped by time at `grain`. A filtered query (a tenant-bound key's, a model's) has only the buckets,
/// not the unfiltered hourly and daily totals: where its window's buckets are coarser than `grain`, a grain the
/// caller did not ask for (the endpoint's default) moves to the next coarser one that works, which the result's
/// `group_by` names (the same request answered 200 unfiltered and 400 filtered, naming a parameter never sent);
/// a grain asked for is a 400 naming `param`.
fn query_by_time(
    state: &AppState,
    q: Query,
    grain: TimeGrain,
    asked: bool,
    param: &'static str,
) -> Result<crate::ledger::QueryResult, Response> {
    let mut tried = None;
    for g in [TimeGrain::Hour, TimeGrain::Day, TimeGrain::Week, TimeGrain::Month].into_iter().filter(|g| *g >= grain) {
        match state.meter.query(&q.clone().group_by(GroupBy::Time(g))) {
            Err(e @ crate::ledger::QueryError::ResolutionUnavailable { .. }) if !asked => {
                tried.get_or_insert(e);
            }
            r => return r.map_err(|e| query_error(e, Some(param))),
        }
    }
    Err(query_error(tried.unwrap_or(crate::ledger::QueryError::Unsupported("no grain".into())), Some(param)))
}

/// What a tenant-bound key is told of the calls past the ledger's caps: nothing counted. Those calls are every
/// tenant's (an overflow entry folds the tenant, or the session, to `(other)`), so their count would tell one
/// tenant of the others' traffic. The note is the same whether there are any or not.
const TENANT_UNATTRIBUTED_NOTE: &str = "calls the ledger folded past its cardinality caps (if any) are left out \
    uncounted: their count spans every tenant, so a tenant-bound key is not shown it";

/// For a tenant-bound key: no count of calls past the caps (see [`TENANT_UNATTRIBUTED_NOTE`]).
fn hide_unattributed(result: &mut crate::ledger::QueryResult, caller: &Caller) {
    if let Caller::Tenant(_) = caller {
        result.unattributed_calls = None;
    }
}

/// For a tenant-bound key: no count of calls past the caps, in the figure or in a note.
fn hide_other_tenants(scope: &mut crate::analysis::ReportScope, caller: &Caller) {
    if let Caller::Tenant(_) = caller {
        scope.unattributed_calls = 0;
        scope.notes.retain(|n| !n.starts_with(crate::analysis::PAST_SESSION_CAP_NOTE));
        scope.notes.push(TENANT_UNATTRIBUTED_NOTE.to_owned());
    }
}

fn session_visible(state: &AppState, caller: &Caller, session: &str) -> bool {
    match caller {
        Caller::All => true,
        Caller::Tenant(t) => state.config.session_tenants.as_ref().is_some_and(|tenants| {
            tenants.sweep_if_due(&state.meter);
            tenants.tenant_of(session).is_some_and(|owner| &owner == t)
        }),
    }
}

fn no_session(session: &str) -> Response {
    error(StatusCode::NOT_FOUND, "not_found", format!("no session `{session}` in the ledger"), Some("session_id"))
}

fn session_query(state: &AppState, session: &str) -> Result<crate::ledger::QueryResult, Response> {
    let q = Query::new(Window::All).filter(Dimension::Session, session);
    let r = state.meter.query(&q).map_err(|e| query_error(e, Some("session_id")))?;
    if r.totals.calls == 0 && r.totals.tasks == 0 {
        // A session whose calls were folded past the session cap may keep its tool runs (kept apart): it is
        // there, with tools and no calls.
        let (from, to) = (r.window.from.timestamp(), r.window.to.timestamp());
        let sel = Selection::Session(session.to_owned());
        let tools = state.meter.ledger().read(|store, _| sel.grouped(store, from, to, Dimension::Tool));
        if !tools.is_ok_and(|rows| rows.iter().any(|(_, a)| a.core.calls > 0)) {
            return Err(no_session(session));
        }
    }
    Ok(r)
}

/// `GET /api/v1/token-usage/{session_id}`.
pub(super) async fn session_usage(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: SessionPath,
    raw: Raw,
) -> Response {
    let session = match session_id(path).and_then(|s| Params::of(raw, &[]).map(|_| s)) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let app = state.clone();
    let who = caller.clone();
    blocking(&app, &who, move || {
        if !session_visible(&state, &caller, &session) {
            return no_session(&session);
        }
        match session_query(&state, &session) {
            Ok(mut r) => {
                hide_unattributed(&mut r, &caller);
                json_response(StatusCode::OK, &r)
            }
            Err(r) => r,
        }
    })
    .await
}

/// The metrics of one session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionMetrics {
    /// The session id.
    pub session_id: String,
    /// The window the ledger holds.
    pub window: WindowBounds,
    /// The session's totals.
    pub totals: GroupRow,
    /// Cache metrics (with `include_cache=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheMetrics>,
    /// The usage added in each hour with activity, over the session's own span (by day when the session
    /// reaches back past the hourly buckets, 48 hours; by month past the daily ones, 35 days), with
    /// `include_differential=true`. Read after the totals, in a read of their own: a call recorded in between is
    /// in these rows and not in the totals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differential: Option<Vec<GroupRow>>,
    /// The tool executions that ran inside the session, by tool, most used first (with
    /// `include_tools=true`). Past the ledger's cap of tools per session and bucket, the rest are counted
    /// under the tool `(other)`, so the session's totals stay exact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolUsage>>,
}

/// `GET /api/v1/token-usage/{session_id}/metrics`.
pub(super) async fn session_metrics(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: SessionPath,
    raw: Raw,
) -> Response {
    let app = state.clone();
    let who = caller.clone();
    let run = move || -> Result<Response, Response> {
        let session = session_id(path)?;
        let p = Params::of(raw, &["include_tools", "include_cache", "include_differential"])?;
        let include_tools = bool_param(&p, "include_tools")?;
        let include_cache = bool_param(&p, "include_cache")?;
        let include_differential = bool_param(&p, "include_differential")?;
        if !session_visible(&state, &caller, &session) {
            return Err(no_session(&session));
        }
        let r = session_query(&state, &session)?;
        let (from, to) = (r.window.from.timestamp(), r.window.to.timestamp());
        let sel = Selection::Session(session.clone());
        let (agg, tool_rows) = state.meter.ledger().read(|store, _| {
            let tools = if include_tools { sel.grouped(store, from, to, Dimension::Tool).ok() } else { None };
            (sel.total(store, from, to), tools)
        });
        let cache = include_cache.then(|| CacheMetrics::of(&agg));
        let tools = include_tools.then(|| {
            let mut tools: Vec<ToolUsage> = tool_rows
                .unwrap_or_default()
                .into_iter()
                .map(|(tool, a)| ToolUsage {
                    tool: tool.into(),
                    invocations: a.core.calls,
                    errors: a.core.failed_calls,
                    total_duration_us: a.core.duration_us,
                })
                .collect();
            tools.sort_by(|a, b| b.invocations.cmp(&a.invocations).then_with(|| a.tool.cmp(&b.tool)));
            tools
        });
        let differential = if include_differential {
            // Over the session's own span (its first to its last active bucket), not the whole ledger: a
            // filtered series is refused when any bucket of its window is coarser than its grain, so older data
            // of other sessions would leave a recent session without its hours.
            let span = state.meter.ledger().read(|store, _| sel.active_span(store));
            let mut rows = None;
            if let Some((first, last)) = span {
                let window = Window::range(calendar::utc(first), calendar::utc(last + 60));
                for grain in [TimeGrain::Hour, TimeGrain::Day, TimeGrain::Month] {
                    let q =
                        Query::new(window).filter(Dimension::Session, session.clone()).group_by(GroupBy::Time(grain));
                    if let Ok(res) = state.meter.query(&q) {
                        rows = Some(res.groups.into_iter().filter(|g| g.calls > 0 || g.tasks > 0).collect());
                        break;
                    }
                }
            }
            Some(rows.unwrap_or_default())
        } else {
            None
        };
        let m = SessionMetrics {
            session_id: session.clone(),
            window: r.window,
            // From the read the cache figures and tools come from (not `r`'s earlier one): a call recorded in
            // between would make them exceed the totals.
            totals: GroupRow::of("total".into(), &agg.core, &agg.core),
            cache,
            differential,
            tools,
        };
        Ok(json_response(StatusCode::OK, &m))
    };
    blocking(&app, &who, move || run().unwrap_or_else(|r| r)).await
}

/// The most budget states one page of `/api/v1/budgets` may hold (`limit`).
const MAX_BUDGET_PAGE: usize = 10_000;

/// `GET /api/v1/budgets`.
pub(super) async fn budgets(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    OriginalUri(uri): OriginalUri,
    raw: Raw,
) -> Response {
    // The query as sent, for the next page's link (the same parameters, `after` moved on).
    let sent: Vec<(String, String)> = raw.as_ref().map(|q| q.0.clone()).unwrap_or_default();
    let params = match Params::of(raw, &["user", "session", "tenant", "budget", "min_utilization", "limit", "after"]) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let [user, session, tenant] = ["user", "session", "tenant"].map(|name| params.get(name).map(str::to_owned));
    // A tenant key asks of its own tenant only: another's is not found, as its sessions are not.
    if let (Caller::Tenant(t), Some(asked)) = (&caller, tenant.as_deref())
        && asked != t.as_str()
    {
        return error(StatusCode::NOT_FOUND, "not_found", format!("no tenant `{asked}` for this key"), Some("tenant"));
    }
    let limit = match params.get("limit").map(|v| (v, v.parse::<usize>())) {
        None => None,
        Some((_, Ok(n))) if (1..=MAX_BUDGET_PAGE).contains(&n) => Some(n),
        Some((v, _)) => return bad("limit", format!("`{v}` is not a whole number from 1 to {MAX_BUDGET_PAGE}")),
    };
    let min_utilization = match params.get("min_utilization").map(|v| (v, v.parse::<f64>())) {
        None => None,
        Some((_, Ok(u))) if u.is_finite() && u >= 0.0 => Some(u),
        Some((v, _)) => {
            return bad("min_utilization", format!("`{v}` is not a number of 0 or more (1 is the whole limit)"));
        }
    };
    let order: Vec<std::sync::Arc<str>> = state
        .meter
        .budget_scopes()
        .into_iter()
        .filter_map(|(name, scope)| sees(&caller, &scope).then_some(name))
        .collect();
    let position = move |name: &str| order.iter().position(|b| &**b == name);
    let budget = params.get("budget").map(str::to_owned);
    if let Some(b) = &budget
        && position(b).is_none()
    {
        let known = state.meter.budget_scopes().into_iter().filter(|(_, scope)| sees(&caller, scope));
        let known = known.map(|(b, _)| format!("`{b}`")).collect::<Vec<_>>().join(", ");
        let known = if known.is_empty() { "none".to_owned() } else { known };
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no budget `{b}`; the budgets: {known}"),
            Some("budget"),
        );
    }
    let after = match params.get("after").map(|v| (v, BudgetCursor::parse(v))) {
        None => None,
        Some((_, Some(c))) if position(&c.budget).is_some() => Some(c),
        Some((v, Some(c))) => {
            let detail = format!("the cursor `{v}` names the budget `{}`, which is not configured", c.budget);
            return bad("after", detail);
        }
        Some((v, None)) => {
            return bad("after", format!("`{v}` is not a cursor this API gave: follow the `link` header's next page"));
        }
    };
    let (app, who) = (state.clone(), caller.clone());
    // On the blocking pool, as the reports: the status reads every account of every budget (~0.2 s at 100,000 values
    // of a budget of each user) and the JSON is as long, which on an async worker held up every other request on it
    // (the application's own, where the router is mounted in its server).
    let run = move || {
        let start = after.as_ref().and_then(|c| position(&c.budget));
        // Where the cursor is in the answer's order (by budget, then by value), and whether a state comes after it.
        let cursor = after.as_ref().map(|c| (start, c.member.as_deref()));
        let past = |s: &BudgetState| cursor.is_none_or(|c| (position(&s.budget), s.member.as_deref()) > c);
        let mut states: Vec<BudgetState> = if user.is_none() && session.is_none() && tenant.is_none() {
            // The budgets before the cursor's, not the one asked for, or not the caller's, are not read.
            state.meter.budget_status_where_leaving_owed_alerts(|b| {
                position(b.name()).is_some_and(|p| start.is_none_or(|s| p >= s))
                    && budget.as_deref().is_none_or(|name| b.name() == name)
            })
        } else {
            // The budgets a request of these values falls under: one user's own state of a budget of each user.
            let mut scope = crate::budget::RequestScope::new();
            for (name, value) in [("user", &user), ("session", &session), ("tenant", &tenant)] {
                if let Some(v) = value {
                    scope = scope.with_dimension(name, v.as_str());
                }
            }
            state.meter.budget_status_for_leaving_owed_alerts(&scope)
        };
        states.retain(|s| {
            position(&s.budget).is_some()
                && sees(&caller, &s.scope)
                && budget.as_deref().is_none_or(|b| &*s.budget == b)
                && min_utilization.is_none_or(|u| s.utilization >= u)
                && past(s)
        });
        let next = match limit {
            Some(n) if states.len() > n => {
                states.truncate(n);
                states.last().map(BudgetCursor::after)
            }
            _ => None,
        };
        let mut response = json_response(StatusCode::OK, &states);
        if let Some(cursor) = next {
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (name, value) in sent.iter().filter(|(name, _)| snake(name) != "after") {
                query.append_pair(name, value);
            }
            query.append_pair("after", &cursor);
            let link = format!("<{}?{}>; rel=\"next\"", uri.path(), query.finish());
            if let Ok(value) = axum::http::HeaderValue::from_str(&link) {
                response.headers_mut().insert(axum::http::header::LINK, value);
            }
        }
        response
    };
    blocking(&app, &who, run).await
}

/// Whether `caller` sees a budget (or a budget's state) of `scope`: a tenant key, those of its tenant and of each
/// tenant (its own state).
fn sees(caller: &Caller, scope: &BudgetScope) -> bool {
    match caller {
        Caller::Tenant(t) => match scope {
            BudgetScope::Dimension { name, value } => &**name == "tenant" && &**value == t.as_str(),
            BudgetScope::Each { name } => &**name == "tenant",
            _ => false,
        },
        _ => true,
    }
}

/// Where a page of `/api/v1/budgets` ends: the last state's budget and value, each in lowercase hex, joined by `.`
/// (opaque to clients, which follow the `link` header; hex, so that any name travels in a URL as it is).
struct BudgetCursor {
    budget: String,
    member: Option<std::sync::Arc<str>>,
}

impl BudgetCursor {
    /// The cursor after `state`.
    fn after(state: &BudgetState) -> String {
        let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        match &state.member {
            Some(member) => format!("{}.{}", hex(&state.budget), hex(member)),
            None => hex(&state.budget),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        fn unhex(s: &str) -> Option<String> {
            if !s.len().is_multiple_of(2) || !s.is_ascii() {
                return None;
            }
            let bytes = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok());
            String::from_utf8(bytes.collect::<Option<Vec<u8>>>()?).ok()
        }
        let (budget, member) = match text.split_once('.') {
            Some((budget, member)) => (budget, Some(member)),
            None => (text, None),
        };
        let budget = unhex(budget).filter(|b| !b.is_empty())?;
        let member = match member {
            Some(m) => Some(std::sync::Arc::from(unhex(m)?)),
            None => None,
        };
        Some(BudgetCursor { budget, member })
    }
}
