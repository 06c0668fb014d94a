//! The HTTP JSON API against a real server on 127.0.0.1: each endpoint's figures equal the library's reports,
//! API-key refusals, tenant isolation, bad parameters, and every response matches the OpenAPI document.
#![cfg(feature = "http")]

use chrono::{Duration, TimeZone, Utc};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::Value;
use tokenmeter::analysis::ReportFilter;
use tokenmeter::budget::{Budget, BudgetLimit, BudgetScope};
use tokenmeter::http::{HttpConfig, ServerHandle, SessionTenants, serve};
use tokenmeter::ledger::{Dimension, GroupBy, Query, TimeGrain, Window};
use tokenmeter::{ManualClock, TokenMeter};
use tracing_subscriber::prelude::*;

const ADMIN: &str = "admin-key-0123456789";
const ACME: &str = "acme-key-0123456789";

struct Fixture {
    meter: TokenMeter,
    server: ServerHandle,
    client: Client,
}

impl Fixture {
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.server.local_addr(), path)
    }

    fn get_as(&self, key: Option<&str>, path: &str) -> (StatusCode, Value) {
        let mut req = self.client.get(self.url(path));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let resp = req.send().expect("request");
        let status = resp.status();
        let text = resp.text().expect("a body");
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"));
        (status, body)
    }

    #[track_caller]
    fn ok(&self, path: &str) -> Value {
        let (s, v) = self.get_as(Some(ADMIN), path);
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        v
    }

    #[track_caller]
    fn bad(&self, path: &str, param: &str) {
        let (s, v) = self.get_as(Some(ADMIN), path);
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert_eq!(v["param"], param, "{path}: {v}");
        assert!(v["error"].is_string() && v["detail"].is_string(), "{v}");
    }
}

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

/// A library report as a tenant-bound key is served it: no count of the calls past the caps (every tenant's).
fn as_tenant_sees<T: serde::Serialize>(v: &T) -> Value {
    let mut v = json(v);
    let o = v.as_object_mut().unwrap();
    if o.remove("unattributed_calls").is_none()
        && let Some(scope) = o.get_mut("scope").and_then(Value::as_object_mut)
    {
        scope.insert("unattributed_calls".into(), 0.into());
        let note = "calls the ledger folded past its cardinality caps (if any) are left out uncounted: their count \
                    spans every tenant, so a tenant-bound key is not shown it";
        scope["notes"].as_array_mut().unwrap().push(note.into());
    }
    v
}

/// One call of `session` under `tenant`.
fn call_in(session: &str, tenant: &str) {
    let _s = tracing::info_span!("conversation", session.id = session, tenant.id = tenant).entered();
    let _c = tracing::info_span!(
        "chat",
        gen_ai.request.model = "claude-haiku-4-5",
        input_tokens = 10u64,
        output_tokens = 1u64
    )
    .entered();
}

/// A meter with a `SessionTenants` sink, after `calls` ran under it.
fn meter_with_tenants(calls: impl FnOnce()) -> (TokenMeter, SessionTenants) {
    let tenants = SessionTenants::default();
    let meter = TokenMeter::builder().with_sink(tenants.clone()).build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(meter.layer()), calls);
    (meter, tenants)
}

/// Three sessions on a manual clock: two of tenant acme, one of globex.
fn fixture() -> Fixture {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap());
    let tenants = SessionTenants::default();
    let meter = TokenMeter::builder()
        .with_clock(clock.clone())
        .with_sink(tenants.clone())
        .with_budget(Budget::new("all", BudgetLimit::usd(10.0).unwrap()))
        .with_budget(Budget::new("acme", BudgetLimit::tokens(1_000_000)).with_scope(BudgetScope::tenant("acme")))
        .with_budget(Budget::new("globex", BudgetLimit::tokens(1_000_000)).with_scope(BudgetScope::tenant("globex")))
        .with_budget(Budget::new("per-tenant", BudgetLimit::usd(5.0).unwrap()).with_scope(BudgetScope::each_tenant()))
        .build();
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        for (session, tenant, model) in [
            ("s-1", "acme", "claude-sonnet-4-5"),
            ("s-2", "acme", "claude-haiku-4-5"),
            ("s-3", "globex", "claude-opus-4-5"),
        ] {
            let _s =
                tracing::info_span!("conversation", session.id = session, tenant.id = tenant, project = "helpdesk")
                    .entered();
            for turn in 0..3u64 {
                {
                    let _c = tracing::info_span!(
                        "chat",
                        gen_ai.provider.name = "anthropic",
                        gen_ai.request.model = model,
                        input_tokens = 200 + 100 * turn,
                        cache_read_input_tokens = 4_000 * turn,
                        cache_creation_input_tokens = if turn == 0 { 4_000u64 } else { 0 },
                        output_tokens = 300u64,
                    )
                    .entered();
                }
                // Each turn runs `search_docs` for 2 s; s-1 also runs `read_file` once, which fails.
                let tools: &[&str] =
                    if session == "s-1" && turn == 1 { &["search_docs", "read_file"] } else { &["search_docs"] };
                for tool in tools {
                    let failed = *tool == "read_file";
                    let _t = tracing::info_span!(
                        "execute_tool",
                        gen_ai.operation.name = "execute_tool",
                        gen_ai.tool.name = *tool,
                        error.type = if failed { Some("timeout") } else { None },
                    )
                    .entered();
                    clock.advance(Duration::seconds(2));
                }
                clock.advance(Duration::minutes(7) - Duration::seconds(2 * tools.len() as i64));
            }
        }
    });
    let config =
        HttpConfig::new().with_port(0).with_api_key(ADMIN).with_tenant_key(ACME, "acme").with_session_tenants(tenants);
    let server = serve(meter.clone(), config).expect("server");
    assert!(server.local_addr().ip().is_loopback());
    Fixture { meter, server, client: Client::new() }
}

#[test]
fn endpoints_equal_the_library_reports() {
    let f = fixture();
    let m = &f.meter;

    let v = f.ok("/api/v1/analytics/token-efficiency?time_range=24h&group_by=model&efficiency_metric=cache_hit_rate");
    assert_eq!(v, json(&m.efficiency_report(Window::Last24Hours, Dimension::Model).unwrap()));
    let v = f.ok("/api/v1/analytics/token-efficiency?timeRange=all&groupBy=session&efficiencyMetric=reuse_rate");
    assert_eq!(v, json(&m.efficiency_report(Window::All, Dimension::Session).unwrap()));
    assert_eq!(v["calls"], 9);

    let v = f.ok("/api/v1/analytics/cache-performance?time_range=6h");
    assert_eq!(v, json(&m.cache_report(Window::Last6Hours).unwrap()));
    let v = f.ok("/api/v1/analytics/cache-performance?timeRange=2026-03-14T00:00:00Z..2026-03-15T00:00:00Z");
    let day = Window::range(
        Utc.with_ymd_and_hms(2026, 3, 14, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 3, 15, 0, 0, 0).unwrap(),
    );
    assert_eq!(v, json(&m.cache_report(day).unwrap()));

    let v = f.ok("/api/v1/analytics/tokens?from=2026-03-14&to=2026-03-14&model=claude-opus-4-5&aggregation=hourly");
    let q = Query::new(day).filter(Dimension::Model, "claude-opus-4-5").group_by(GroupBy::Time(TimeGrain::Hour));
    assert_eq!(v, json(&m.query(&q).unwrap()));
    assert_eq!(v["totals"]["calls"], 3);
    let v = f.ok("/api/v1/analytics/tokens?range=day");
    assert_eq!(v["totals"]["calls"], 9);
    assert_eq!(v["group_by"], serde_json::json!({ "time": "hour" }));

    let v = f.ok("/api/v1/token-usage/summary?startDate=2026-03-01&endDate=2026-03-31&groupBy=week");
    let march = Window::range(
        Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap(),
    );
    assert_eq!(v, json(&m.query(&Query::new(march).group_by(GroupBy::Time(TimeGrain::Week))).unwrap()));
    let v = f.ok("/api/v1/token-usage/summary");
    assert_eq!(v, json(&m.query(&Query::new(Window::Last30Days).group_by(GroupBy::Time(TimeGrain::Day))).unwrap()));

    let v = f.ok("/api/v1/token-usage/s-2");
    assert_eq!(v, json(&m.query(&Query::new(Window::All).filter(Dimension::Session, "s-2")).unwrap()));
    assert_eq!(v["totals"]["calls"], 3);

    let v = f.ok("/api/v1/token-usage/s-1/metrics?include_cache=true&include_differential=true&include_tools=false");
    let s1 = m.query(&Query::new(Window::All).filter(Dimension::Session, "s-1")).unwrap();
    assert_eq!(v["totals"], json(&s1.totals));
    assert_eq!(v["cache"]["tokens_saved"], 12_000);
    assert_eq!(v["cache"]["total_cache_hits"], 2);
    let diff = v["differential"].as_array().unwrap();
    assert_eq!(diff.iter().map(|r| r["calls"].as_u64().unwrap()).sum::<u64>(), 3);
    let v = f.ok("/api/v1/token-usage/s-1/metrics");
    assert!(v.get("cache").is_none() && v.get("differential").is_none() && v.get("tools").is_none(), "{v}");

    // Tools of the session: 3 `search_docs` and 1 failed `read_file`, 2 s each.
    let v = f.ok("/api/v1/token-usage/s-1/metrics?includeTools=true");
    assert_eq!(
        v["tools"],
        serde_json::json!([
            { "tool": "search_docs", "invocations": 3, "errors": 0, "total_duration_us": 6_000_000 },
            { "tool": "read_file", "invocations": 1, "errors": 1, "total_duration_us": 2_000_000 },
        ])
    );
    let q = Query::new(Window::All).filter(Dimension::Session, "s-1").group_by(GroupBy::Dimension(Dimension::Tool));
    let lib: Vec<(String, u64, u64)> =
        m.query(&q).unwrap().groups.into_iter().map(|g| (g.key, g.calls, g.failed_calls)).collect();
    assert_eq!(lib, [("search_docs".to_owned(), 3, 0), ("read_file".to_owned(), 1, 1)]);
    let v = f.ok("/api/v1/token-usage/s-3/metrics?include_tools=true");
    assert_eq!(v["tools"][0]["invocations"], 3);
    assert_eq!(v["tools"].as_array().unwrap().len(), 1);

    // The budgets a request of one tenant (or user) falls under: that tenant's own state of the budget of each.
    let v = f.ok("/api/v1/budgets?tenant=globex");
    let scopes: Vec<&str> = v.as_array().unwrap().iter().map(|b| b["scope"].as_str().unwrap()).collect();
    assert_eq!(scopes, ["everything", "tenant=globex", "tenant=globex"]);
    assert_eq!(v, json(&m.budget_status_for(&tokenmeter::budget::RequestScope::new().with_tenant("globex"))));
    let v = f.ok("/api/v1/budgets?user=nobody");
    assert_eq!(v.as_array().unwrap().len(), 1, "the budget over everything: {v}");
    // Percent-encoded UTF-8 is read; an encoding that is not (read leniently, a user `\u{fffd}` or `%ZZ`, found
    // nowhere, with a 200) is a 400, after the key is checked.
    let v = f.ok("/api/v1/budgets?user=%E5%B1%B1%E7%94%B0");
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    for bad in [
        "/api/v1/budgets?user=%FF",
        "/api/v1/budgets?user=%E5%B1",
        "/api/v1/budgets?user=%ZZ",
        "/api/v1/token-usage/summary?period=24h%",
    ] {
        let (s, v) = f.get_as(Some(ADMIN), bad);
        assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_query")), "{bad}: {v}");
        assert_eq!(f.get_as(None, bad).0, StatusCode::UNAUTHORIZED, "{bad}");
    }

    let v = f.ok("/api/v1/budgets");
    assert_eq!(v, json(&m.budget_status()));
    let scopes: Vec<&str> = v.as_array().unwrap().iter().map(|b| b["scope"].as_str().unwrap()).collect();
    assert_eq!(scopes, ["everything", "tenant=acme", "tenant=globex", "tenant=acme", "tenant=globex"]);
    assert_eq!(v[3]["member"], "acme");

    assert_eq!(f.ok("/healthz"), serde_json::json!({ "status": "ok" }));
}

#[test]
fn openapi_document_lists_every_route() {
    let f = fixture();
    let (s, doc) = f.get_as(None, "/api/v1/openapi.json");
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths: Vec<&str> = doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    for p in [
        "/healthz",
        "/api/v1/openapi.json",
        "/api/v1/analytics/token-efficiency",
        "/api/v1/analytics/cache-performance",
        "/api/v1/analytics/tokens",
        "/api/v1/token-usage/summary",
        "/api/v1/token-usage/{session_id}",
        "/api/v1/token-usage/{session_id}/metrics",
        "/api/v1/budgets",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    assert_eq!(paths.len(), 9);
    // Every $ref resolves.
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &r[..r.find('"').unwrap()];
        assert!(doc["components"]["schemas"].get(name).is_some(), "dangling $ref {name}");
    }
}

#[test]
fn api_keys_are_required_and_checked() {
    let f = fixture();
    let path = "/api/v1/budgets";
    let (s, v) = f.get_as(None, path);
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["error"], "unauthorized");
    let (s, _) = f.get_as(Some("wrong-key"), path);
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = f.get_as(Some(&ADMIN[..ADMIN.len() - 1]), path);
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Bearer works too.
    let resp = f.client.get(f.url(path)).bearer_auth(ADMIN).send().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = f.client.get(f.url(path)).header("authorization", "Basic abc").send().unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Health and the document need no key.
    assert_eq!(f.get_as(None, "/healthz").0, StatusCode::OK);
}

#[test]
fn a_tenant_key_sees_its_tenant_only() {
    let f = fixture();
    let m = &f.meter;
    let (s, v) = f.get_as(Some(ACME), "/api/v1/token-usage/s-1");
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["totals"]["calls"], 3);
    let (s, v) = f.get_as(Some(ACME), "/api/v1/token-usage/s-3");
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, _) = f.get_as(Some(ACME), "/api/v1/token-usage/s-3/metrics?include_cache=true");
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The admin sees s-3.
    assert_eq!(f.get_as(Some(ADMIN), "/api/v1/token-usage/s-3").0, StatusCode::OK);

    let (s, v) = f.get_as(Some(ACME), "/api/v1/analytics/tokens?range=day");
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["totals"]["calls"], 6);
    let day = Window::range(
        Utc.with_ymd_and_hms(2026, 3, 14, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 3, 15, 0, 0, 0).unwrap(),
    );
    let (_, v) = f.get_as(Some(ACME), "/api/v1/token-usage/summary?start_date=2026-03-14&end_date=2026-03-14");
    let q = Query::new(day).filter(Dimension::Tenant, "acme").group_by(GroupBy::Time(TimeGrain::Day));
    assert_eq!(v, as_tenant_sees(&m.query(&q).unwrap()));

    let (s, v) = f.get_as(Some(ACME), "/api/v1/budgets");
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = v.as_array().unwrap().iter().map(|b| b["budget"].as_str().unwrap()).collect();
    // Its own budget, and its own value's state of the budget of each tenant (not globex's).
    assert_eq!(names, ["acme", "per-tenant"]);
    assert_eq!(v[1]["scope"], "tenant=acme");
    // Asked for its own tenant: the same; for another: not found.
    let (s, mine) = f.get_as(Some(ACME), "/api/v1/budgets?tenant=acme");
    assert_eq!((s, mine), (StatusCode::OK, v));
    let (s, _) = f.get_as(Some(ACME), "/api/v1/budgets?tenant=globex");
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[test]
fn a_tenant_key_gets_the_efficiency_and_cache_reports_of_its_tenant() {
    let f = fixture();
    let m = &f.meter;
    let acme = || ReportFilter::tenant("acme").with_sessions(|s| s == "s-1" || s == "s-2");

    // Equal to the library's tenant-filtered reports, for every grouping.
    for (group, dim) in [
        ("model", Dimension::Model),
        ("session", Dimension::Session),
        ("project", Dimension::Project),
        ("agent", Dimension::Agent),
        ("operation", Dimension::Operation),
    ] {
        let path = format!("/api/v1/analytics/token-efficiency?time_range=all&group_by={group}");
        let (s, v) = f.get_as(Some(ACME), &path);
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        assert_eq!(v, as_tenant_sees(&m.efficiency_report_for(Window::All, dim, &acme()).unwrap()), "{path}");
    }
    let (_, v) = f.get_as(Some(ACME), "/api/v1/analytics/cache-performance?time_range=24h");
    assert_eq!(v, as_tenant_sees(&m.cache_report_for(Window::Last24Hours, &acme()).unwrap()));

    // The figures are acme's: s-1 (sonnet) and s-2 (haiku), 3 calls each; none of globex's s-3 (opus).
    let (_, v) = f.get_as(Some(ACME), "/api/v1/analytics/token-efficiency?time_range=all&group_by=session");
    assert_eq!(v["calls"], 6);
    let sessions: Vec<&str> =
        v["breakdowns"].as_array().unwrap().iter().map(|b| b["category"].as_str().unwrap()).collect();
    assert_eq!(sessions, ["s-1", "s-2"]);
    let s12 = m.query(&Query::new(Window::All).filter(Dimension::Tenant, "acme")).unwrap();
    assert!((v["cost_usd"].as_f64().unwrap() - s12.totals.cost_usd).abs() < 1e-12);
    assert_eq!(v["scope"]["filters"], serde_json::json!([{ "dimension": "tenant", "value": "acme" }]));
    assert_eq!(v["scope"]["unattributed_calls"], 0);
    let (_, v) = f.get_as(Some(ACME), "/api/v1/analytics/token-efficiency?time_range=all&group_by=model");
    let models: Vec<&str> =
        v["breakdowns"].as_array().unwrap().iter().map(|b| b["category"].as_str().unwrap()).collect();
    assert_eq!(models, ["claude-sonnet-4-5", "claude-haiku-4-5"]);
    assert!(!v.to_string().contains("opus"), "{v}");
    let (_, v) = f.get_as(Some(ACME), "/api/v1/analytics/cache-performance?time_range=all");
    assert_eq!(v["cache_metrics"]["total_cache_hits"], 4);
    assert_eq!(v["cache_metrics"]["tokens_saved"], 24_000);
    assert_eq!(v["unread_cache_writes"]["writes"], 2);

    // The admin's reports are the unfiltered ones, without `scope`.
    let v = f.ok("/api/v1/analytics/token-efficiency?time_range=all");
    assert_eq!(v["calls"], 9);
    assert!(v.get("scope").is_none());
}

#[test]
fn a_session_seen_under_two_tenants_belongs_to_neither() {
    let (meter, tenants) = meter_with_tenants(|| {
        for tenant in ["acme", "globex"] {
            call_in("shared", tenant);
        }
    });
    assert_eq!(tenants.tenant_of("shared"), None);
    let config = HttpConfig::new().with_port(0).with_tenant_key(ACME, "acme").with_session_tenants(tenants);
    let server = serve(meter, config).expect("server");
    let url = format!("http://{}/api/v1/token-usage/shared", server.local_addr());
    let resp = Client::new().get(&url).header("x-api-key", ACME).send().unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    server.shutdown();
}

#[test]
fn calls_without_a_tenant_in_a_session_make_it_shared() {
    // acme's call in `s-1` and a call there without a tenant (another service, a span without `tenant.id`):
    // acme's key read both calls' tokens on `s-1`'s endpoints.
    let (meter, tenants) = meter_with_tenants(|| {
        call_in("s-1", "acme");
        call_in("s-2", "acme");
        let _s = tracing::info_span!("conversation", session.id = "s-1").entered();
        drop(tracing::info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 5u64).entered());
        drop(_s);
        // A task span above the calls that carry the tenant has none itself: it says nothing of the session.
        let _s = tracing::info_span!("conversation", session.id = "s-2").entered();
        let _task = tracing::info_span!("triage", task = "triage").entered();
        call_in("s-2", "acme");
    });
    assert_eq!(tenants.tenant_of("s-1"), None);
    assert_eq!(tenants.tenant_of("s-2").as_deref(), Some("acme"), "a task without a tenant does not share it");
    let config = HttpConfig::new().with_port(0).with_tenant_key(ACME, "acme").with_session_tenants(tenants);
    let server = serve(meter, config).expect("server");
    for (session, status) in [("s-1", StatusCode::NOT_FOUND), ("s-2", StatusCode::OK)] {
        let url = format!("http://{}/api/v1/token-usage/{session}", server.local_addr());
        let resp = Client::new().get(&url).header("x-api-key", ACME).send().unwrap();
        assert_eq!(resp.status(), status, "{session}");
    }
    server.shutdown();
}

#[test]
fn another_tenants_tools_or_tasks_in_a_session_make_it_shared() {
    // acme's calls in `s-1`, and only a tool run and a task of globex there: acme's key saw globex's tool names
    // and task counts on `s-1`'s endpoints (only calls said whose a session was).
    let (meter, tenants) = meter_with_tenants(|| {
        call_in("s-1", "acme");
        call_in("s-2", "acme");
        let _s = tracing::info_span!("conversation", session.id = "s-1", tenant.id = "globex").entered();
        drop(
            tracing::info_span!("tool", gen_ai.operation.name = "execute_tool", gen_ai.tool.name = "secret_tool")
                .entered(),
        );
    });
    assert_eq!(tenants.tenant_of("s-1"), None, "a tool run of globex's in it");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(meter.layer()), || {
        let _s = tracing::info_span!("conversation", session.id = "s-2", tenant.id = "globex").entered();
        drop(tracing::info_span!("triage", task = "globex-task").entered());
    });
    assert_eq!(tenants.tenant_of("s-2"), None, "a task of globex's in it");
    let config = HttpConfig::new().with_port(0).with_tenant_key(ACME, "acme").with_session_tenants(tenants);
    let server = serve(meter, config).expect("server");
    let url = format!("http://{}/api/v1/token-usage/s-1/metrics?include_tools=true", server.local_addr());
    let resp = Client::new().get(&url).header("x-api-key", ACME).send().unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    server.shutdown();
}

#[test]
fn a_tenant_key_still_sees_its_sessions_after_a_restart() {
    use tokenmeter::journal::JournalConfig;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap());
    let build = |tenants: &SessionTenants| {
        TokenMeter::builder()
            .with_clock(clock.clone())
            .with_sink(tenants.clone())
            .with_journal(JournalConfig::new(dir.path()))
            .try_build()
            .expect("a meter with a journal")
    };
    let before = build(&SessionTenants::default());
    let subscriber = tracing_subscriber::registry().with(before.layer());
    tracing::subscriber::with_default(subscriber, || {
        for (session, tenant) in [("s-1", "acme"), ("s-3", "globex")] {
            call_in(session, tenant);
        }
    });
    before.flush().unwrap();
    drop(before);

    // The restarted process: the ledger has both sessions back from the journal, and so must their tenants.
    let tenants = SessionTenants::default();
    let after = build(&tenants);
    assert_eq!(tenants.tenant_of("s-1").as_deref(), Some("acme"));
    let config = HttpConfig::new().with_port(0).with_tenant_key(ACME, "acme").with_session_tenants(tenants);
    let server = serve(after, config).expect("server");
    let get = |path: &str| {
        let url = format!("http://{}{path}", server.local_addr());
        Client::new().get(&url).header("x-api-key", ACME).send().unwrap()
    };
    let resp = get("/api/v1/token-usage/s-1");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = serde_json::from_str(&resp.text().unwrap()).unwrap();
    assert_eq!(body["totals"]["calls"], 1, "{body}");
    assert_eq!(get("/api/v1/token-usage/s-3").status(), StatusCode::NOT_FOUND);
    let report: Value =
        serde_json::from_str(&get("/api/v1/analytics/token-efficiency?group_by=session").text().unwrap()).unwrap();
    let sessions: Vec<&Value> = report["breakdowns"].as_array().unwrap().iter().map(|b| &b["category"]).collect();
    assert_eq!(sessions, ["s-1"], "{report}");
    server.shutdown();
}

#[test]
fn bad_parameters_get_400_and_unknown_sessions_404() {
    let f = fixture();
    f.bad("/api/v1/analytics/token-efficiency?time_range=fortnight", "time_range");
    f.bad("/api/v1/analytics/token-efficiency?timeRange=2026-03-15T00:00:00Z..2026-03-14T00:00:00Z", "time_range");
    f.bad("/api/v1/analytics/token-efficiency?group_by=planet", "group_by");
    // A year of five digits is no RFC 3339 year: it was echoed back in `window` as a time no reader parses.
    f.bad("/api/v1/analytics/tokens?to=%2B99999-01-01", "to");
    // Nor a window whose bound, as a UTC instant or widened to its bucket, leaves the years 0000-9999 (the end of
    // 9999-12-31 is 10000-01-01): echoed as `+10000-01-01T00:00:00Z`.
    f.bad("/api/v1/analytics/tokens?to=9999-12-31", "to");
    f.bad("/api/v1/analytics/tokens?to=9999-12-31T23:30:00-01:00", "to");
    f.bad(
        "/api/v1/analytics/cache-performance?time_range=9999-12-31T22:00:00-05:00..9999-12-31T23:00:00-05:00",
        "time_range",
    );
    f.bad(
        "/api/v1/analytics/token-efficiency?time_range=9999-12-31T22:00:00-05:00..9999-12-31T23:00:00-05:00",
        "time_range",
    );
    // Too many points for the end given alone: it is blamed, not the start that was not sent.
    f.bad("/api/v1/analytics/tokens?to=1990-01-01&range=day", "to");
    f.bad("/api/v1/token-usage/summary?end_date=1990-01-01", "end_date");
    // The efficiency report has no time series: 36 years are as cheap as `all`.
    f.ok("/api/v1/analytics/token-efficiency?time_range=1990-01-01T00:00:00Z..2026-01-01T00:00:00Z");
    // Bounds within one second: not an empty window.
    f.ok("/api/v1/analytics/tokens?from=2026-03-14T10:02:00.250Z&to=2026-03-14T10:02:00.750Z");
    f.bad("/api/v1/analytics/token-efficiency?efficiency_metric=vibes", "efficiency_metric");
    f.bad("/api/v1/analytics/cache-performance?time_range=0001-01-01T00:00:00Z..9999-01-01T00:00:00Z", "time_range");
    f.bad("/api/v1/analytics/tokens?range=decade", "range");
    f.bad("/api/v1/analytics/tokens?aggregation=secondly", "aggregation");
    f.bad("/api/v1/analytics/tokens?from=yesterday", "from");
    f.bad("/api/v1/analytics/tokens?from=2026-03-14&to=2026-03-01", "from");
    // A start alone after the default end (now).
    f.bad("/api/v1/analytics/tokens?from=2030-01-01", "from");
    f.bad("/api/v1/token-usage/summary?startDate=2030-01-01", "start_date");
    f.bad("/api/v1/analytics/tokens?from=1970-01-01&aggregation=hourly", "aggregation");
    f.bad("/api/v1/token-usage/summary?group_by=fortnight", "group_by");
    f.bad("/api/v1/token-usage/summary?startDate=2026-13-01", "start_date");
    f.bad("/api/v1/token-usage/s-1/metrics?includeCache=maybe", "include_cache");
    // One parameter twice, under either spelling: refused, not one silently picked.
    f.bad("/api/v1/analytics/token-efficiency?time_range=1h&timeRange=7d", "time_range");
    f.bad("/api/v1/analytics/token-efficiency?time_range=1h&time_range=7d", "time_range");
    // A parameter the endpoint does not take (another endpoint's, a misspelt one) is refused, by the name sent,
    // with the ones it takes: ignored, it would answer for another window than the one asked.
    for (path, param, takes) in [
        ("/api/v1/token-usage/summary?from=2026-03-01&to=2026-03-02", "from", "start_date, end_date, group_by"),
        ("/api/v1/analytics/tokens?timeRange=7d", "timeRange", "range, from, to, model, aggregation"),
        ("/api/v1/analytics/tokens?form=2026-03-01", "form", "range, from, to, model, aggregation"),
        ("/api/v1/analytics/cache-performance?group_by=model", "group_by", "time_range"),
        ("/api/v1/analytics/token-efficiency?metric=reuse_rate", "metric", "time_range, group_by, efficiency_metric"),
        ("/api/v1/token-usage/s-1/metrics?include_all=true", "include_all", "include_tools, include_cache"),
        ("/api/v1/token-usage/s-1?include_cache=true", "include_cache", "no query parameters"),
        ("/api/v1/budgets?window=1h", "window", "user, session, tenant"),
        ("/api/v1/openapi.json?v=2", "v", "no query parameters"),
    ] {
        f.bad(path, param);
        let detail = f.get_as(Some(ADMIN), path).1["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(takes), "{path}: {detail}");
    }
    // The names it takes, under either spelling, are answered.
    f.ok("/api/v1/token-usage/s-1/metrics?includeCache=true&include_tools=false");
    f.ok("/api/v1/token-usage/summary?startDate=2026-03-13&end_date=2026-03-14&groupBy=day");
    // A session id that is not UTF-8 once percent-decoded: the JSON error body, not axum's text/plain.
    f.bad("/api/v1/token-usage/%ff%fe", "session_id");
    f.bad("/api/v1/token-usage/%ff%fe/metrics", "session_id");
    // An offset's `+` sent unescaped arrives as a space: the message says so.
    for (path, param) in [
        ("/api/v1/analytics/tokens?from=2026-03-14T00:00:00+01:00", "from"),
        ("/api/v1/analytics/token-efficiency?time_range=2026-03-14T00:00:00+01:00..2026-03-15T00:00:00Z", "time_range"),
    ] {
        f.bad(path, param);
        let detail = f.get_as(Some(ADMIN), path).1["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains("%2B01:00"), "{path}: {detail}");
    }
    let detail = f.get_as(Some(ADMIN), "/api/v1/analytics/tokens?from=yesterday").1["detail"].clone();
    assert!(!detail.as_str().unwrap().contains("%2B"), "no hint without a space: {detail}");

    let (s, v) = f.get_as(Some(ADMIN), "/api/v1/token-usage/no-such-session");
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["param"], "session_id");
    let (s, _) = f.get_as(Some(ADMIN), "/api/v1/token-usage/no-such-session/metrics");
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = f.get_as(Some(ADMIN), "/api/v1/nothing-here");
    assert_eq!(s, StatusCode::NOT_FOUND);

    // An end on chrono's first day, whose default start would lie before it, panicked the handler; a date is now
    // a four-digit year, as in RFC 3339, so such an end is refused itself.
    f.bad("/api/v1/analytics/tokens?to=-262143-01-01", "to");
    f.bad("/api/v1/token-usage/summary?end_date=-262143-01-01", "end_date");

    // Oversized requests are refused.
    let resp = f.client.get(f.url("/healthz")).header("x-padding", "a".repeat(20_000)).send().unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// A meter in New York with one call late on 2026-03-11 local time (02:00 UTC on the 12th) and one on the 12th.
fn new_york_fixture() -> Fixture {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 12, 2, 0, 0).unwrap());
    let meter = TokenMeter::builder().with_clock(clock.clone()).with_time_zone(chrono_tz::America::New_York).build();
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..2 {
            let _c = tracing::info_span!(
                "chat",
                gen_ai.request.model = "claude-haiku-4-5",
                input_tokens = 1_000u64,
                output_tokens = 100u64,
            )
            .entered();
            drop(_c);
            clock.advance(Duration::hours(12));
        }
    });
    let server = serve(meter.clone(), HttpConfig::new().with_port(0).with_api_key(ADMIN)).expect("server");
    Fixture { meter, server, client: Client::new() }
}

#[test]
fn dates_are_local_days_of_the_meters_time_zone() {
    let f = new_york_fixture();
    // 2026-03-12 in New York (EDT, UTC-4): 04:00 UTC on the 12th to 04:00 UTC on the 13th, one call.
    let (from, to) =
        (Utc.with_ymd_and_hms(2026, 3, 12, 4, 0, 0).unwrap(), Utc.with_ymd_and_hms(2026, 3, 13, 4, 0, 0).unwrap());
    let lib = f.meter.query(&Query::new(Window::range(from, to)).group_by(GroupBy::Time(TimeGrain::Day))).unwrap();
    assert_eq!(lib.totals.calls, 1);
    for path in [
        "/api/v1/token-usage/summary?start_date=2026-03-12&end_date=2026-03-12",
        "/api/v1/analytics/tokens?from=2026-03-12&to=2026-03-12&aggregation=daily",
    ] {
        let v = f.ok(path);
        assert_eq!(v, json(&lib), "{path}");
        assert_eq!(v["groups"].as_array().map(Vec::len), Some(1), "{path}: {v}");
        assert_eq!(v["groups"][0]["key"], "2026-03-12T00:00:00-04:00", "{path}: {v}");
    }
}

#[test]
fn a_model_filter_takes_any_id_of_the_model() {
    let f = fixture();
    let canonical = f.ok("/api/v1/analytics/tokens?from=2026-03-14&model=claude-sonnet-4-5");
    assert_eq!(canonical["totals"]["calls"], 3, "{canonical}");
    for id in
        ["claude-sonnet-4-5-20250929", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic/claude-sonnet-4-5"]
    {
        let v = f.ok(&format!("/api/v1/analytics/tokens?from=2026-03-14&model={id}"));
        assert_eq!(v, canonical, "{id}");
    }
    // A model the price book does not know is matched as given: none here.
    let v = f.ok("/api/v1/analytics/tokens?from=2026-03-14&model=gpt-4o");
    assert_eq!(v["totals"]["calls"], 0, "{v}");
}

#[test]
fn a_sessions_differential_is_hourly_whatever_older_data_the_ledger_holds() {
    // A call 40 days ago (older than the daily buckets' 35 days: the ledger keeps it in a month bucket) in one
    // session, then a session active now: the new session's differential is by hour, over its own span.
    let now = Utc.with_ymd_and_hms(2026, 3, 14, 9, 20, 0).unwrap();
    let clock = ManualClock::new(now - Duration::days(40));
    let meter = TokenMeter::builder().with_clock(clock.clone()).build();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(meter.layer()));
    tracing::dispatcher::with_default(&dispatch, || {
        call_in("old", "acme");
        clock.set(now);
        call_in("recent", "acme");
        clock.advance(Duration::hours(1));
        call_in("recent", "acme");
    });
    let server = serve(meter.clone(), HttpConfig::new().with_port(0).with_api_key(ADMIN)).expect("server");
    let f = Fixture { meter, server, client: Client::new() };
    let v = f.ok("/api/v1/token-usage/recent/metrics?include_differential=true");
    let keys: Vec<&str> = v["differential"].as_array().unwrap().iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["2026-03-14T09:00:00+00:00", "2026-03-14T10:00:00+00:00"], "{v}");
    assert!(v["differential"].as_array().unwrap().iter().all(|r| r["calls"] == 1), "{v}");
    // The old session itself: by month, the only grain its bucket still has.
    let v = f.ok("/api/v1/token-usage/old/metrics?include_differential=true");
    let rows = v["differential"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v}");
    assert_eq!(rows[0]["key"], "2026-02-01T00:00:00+00:00", "{v}");
    assert_eq!(rows[0]["calls"], 1, "{v}");
}

#[test]
fn an_end_alone_ends_the_default_window() {
    // The fixture's clock is past 10:00 on 2026-03-14: a window given its end alone reaches back its default
    // length from that end, not from now.
    let f = fixture();
    let window = |path: &str| {
        let v = f.ok(path);
        (v["window"]["from"].as_str().unwrap().to_owned(), v["window"]["to"].as_str().unwrap().to_owned())
    };
    let day = window("/api/v1/analytics/tokens?range=day&to=2026-03-14T08:00:00Z");
    assert_eq!(day, ("2026-03-13T08:00:00Z".into(), "2026-03-14T08:00:00Z".into()));
    // Two weeks back: a week (the default range) before it, not a 400.
    let week = window("/api/v1/analytics/tokens?to=2026-02-28");
    assert_eq!(week, ("2026-02-22T00:00:00Z".into(), "2026-03-01T00:00:00Z".into()));
    // (Within the day buckets' 35 days: a start in a month bucket would widen to the month's start.)
    let summary = window("/api/v1/token-usage/summary?endDate=2026-03-10");
    assert_eq!(summary, ("2026-02-09T00:00:00Z".into(), "2026-03-11T00:00:00Z".into()));
    // And in the meter's time zone: 7 local days before the end, across the DST change of 2026-03-08.
    let ny = new_york_fixture();
    let v = ny.ok("/api/v1/analytics/tokens?to=2026-03-11");
    assert_eq!(v["window"]["from"], "2026-03-05T05:00:00Z", "{v}");
    assert_eq!(v["window"]["to"], "2026-03-12T04:00:00Z", "{v}");
}

#[test]
fn an_end_date_alone_reaches_back_whole_days_where_clocks_skip_midnight() {
    // Santiago springs from 00:00 to 01:00 on 2026-09-06 (UTC-4 to UTC-3). One call a day at 15:00 UTC from Aug 25
    // to Sep 6, read half an hour after the last.
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 8, 25, 15, 0, 0).unwrap());
    let meter = TokenMeter::builder().with_clock(clock.clone()).with_time_zone(chrono_tz::America::Santiago).build();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(meter.layer()));
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..13 {
            call_in("s", "acme");
            clock.advance(Duration::days(1));
        }
    });
    clock.set(Utc.with_ymd_and_hms(2026, 9, 6, 15, 30, 0).unwrap());
    let server = serve(meter.clone(), HttpConfig::new().with_port(0).with_api_key(ADMIN)).expect("server");
    let f = Fixture { meter, server, client: Client::new() };
    // A week to the end of Sep 5 (01:00 on Sep 6, the day's first instant): Aug 30 to Sep 5, 7 daily rows, from
    // Aug 30's midnight (UTC-4). The same local time a week back, Aug 30 01:00, moved on to the next day edge.
    let v = f.ok("/api/v1/analytics/tokens?range=week&to=2026-09-05&aggregation=daily");
    assert_eq!(v["window"]["from"], "2026-08-30T04:00:00Z", "{v}");
    assert_eq!(v["window"]["to"], "2026-09-06T04:00:00Z", "{v}");
    assert_eq!(v["totals"]["calls"], 7, "{v}");
    // A day to the end of Sep 6: from its first instant, 01:00 (04:00 UTC), not 23:00 the day before.
    let v = f.ok("/api/v1/analytics/tokens?range=day&to=2026-09-06");
    assert_eq!(v["window"]["from"], "2026-09-06T04:00:00Z", "{v}");
    assert_eq!(v["totals"]["calls"], 1, "{v}");
}

#[test]
fn bounds_inside_a_bucket_widen_to_its_edges_and_the_window_says_so() {
    // Five calls 09:10..09:50, read a day later: the ledger holds them in the hour bucket of 09:00.
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 13, 9, 10, 0).unwrap());
    let meter = TokenMeter::builder().with_clock(clock.clone()).build();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(meter.layer()));
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..5 {
            call_in("s", "acme");
            clock.advance(Duration::minutes(10));
        }
    });
    clock.set(Utc.with_ymd_and_hms(2026, 3, 14, 12, 0, 0).unwrap());
    let server = serve(meter.clone(), HttpConfig::new().with_port(0).with_api_key(ADMIN)).expect("server");
    let f = Fixture { meter, server, client: Client::new() };
    let (from, to) = ("2026-03-13T09:00:00Z", "2026-03-13T10:00:00Z");
    for path in [
        "/api/v1/analytics/tokens?from=2026-03-13T09:30:00Z&to=2026-03-13T09:40:00Z&aggregation=hourly",
        "/api/v1/token-usage/summary?start_date=2026-03-13T09:30:00Z&end_date=2026-03-13T09:40:00Z",
        "/api/v1/analytics/cache-performance?time_range=2026-03-13T09:30:00Z..2026-03-13T09:40:00Z",
        "/api/v1/analytics/token-efficiency?time_range=2026-03-13T09:30:00Z..2026-03-13T09:40:00Z",
    ] {
        let v = f.ok(path);
        assert_eq!((v["window"]["from"].as_str(), v["window"]["to"].as_str()), (Some(from), Some(to)), "{path}: {v}");
        if let Some(calls) = v.get("totals").map(|t| &t["calls"]) {
            assert_eq!(calls, 5, "{path}: {v}");
        }
    }
    // Bounds on the bucket's edges are kept as they are.
    let v = f.ok("/api/v1/analytics/tokens?from=2026-03-13T09:00:00Z&to=2026-03-13T10:00:00Z&aggregation=hourly");
    assert_eq!((v["window"]["from"].as_str(), v["window"]["to"].as_str()), (Some(from), Some(to)), "{v}");
    assert_eq!(v["totals"]["calls"], 5, "{v}");
    // Ten days on, the calls are in the day bucket of 2026-03-13: the window widens to that day.
    clock.set(Utc.with_ymd_and_hms(2026, 3, 23, 12, 0, 0).unwrap());
    let v = f.ok("/api/v1/analytics/tokens?from=2026-03-13T09:30:00Z&to=2026-03-13T09:40:00Z&aggregation=daily");
    let day = (Some("2026-03-13T00:00:00Z"), Some("2026-03-14T00:00:00Z"));
    assert_eq!((v["window"]["from"].as_str(), v["window"]["to"].as_str()), day, "{v}");
    assert_eq!(v["totals"]["calls"], 5, "{v}");
}

#[test]
fn cors_is_off_unless_configured() {
    let f = fixture();
    let resp = f.client.get(f.url("/healthz")).header("origin", "https://evil.example").send().unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());

    let meter = TokenMeter::builder().build();
    let server =
        serve(meter, HttpConfig::new().with_port(0).with_cors_origin("https://admin.example")).expect("server");
    let url = format!("http://{}/api/v1/budgets", server.local_addr());
    let resp = Client::new().get(&url).header("origin", "https://admin.example").send().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["access-control-allow-origin"], "https://admin.example");
    // A page's script may read the next page's `link` (a browser hides headers not exposed).
    assert_eq!(resp.headers()["access-control-expose-headers"], "link");
    let resp = Client::new().get(&url).header("origin", "https://evil.example").send().unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    assert!(resp.headers().get("access-control-expose-headers").is_none());
    // Every response varies by origin once CORS is on (a cache keyed without it would serve this copy, without
    // the allow header, to the admin origin); none does by origin while it is off. Every one varies by key.
    let vary = |resp: &reqwest::blocking::Response| -> Vec<String> {
        resp.headers().get_all("vary").iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    };
    assert_eq!(vary(&resp), ["origin", "authorization, x-api-key"]);
    assert_eq!(vary(&Client::new().get(&url).send().unwrap()), ["origin", "authorization, x-api-key"]);
    assert_eq!(vary(&f.client.get(f.url("/healthz")).send().unwrap()), ["authorization, x-api-key"]);
    server.shutdown();
    // A request over the size limit is refused with the CORS headers too (a browser showed a CORS failure).
    let meter = TokenMeter::builder().build();
    let config = HttpConfig::new().with_port(0).with_cors_origin("https://admin.example").with_max_request_bytes(200);
    let server = serve(meter, config).expect("server");
    let url = format!("http://{}/api/v1/budgets?{}", server.local_addr(), "x".repeat(300));
    let resp = Client::new().get(&url).header("origin", "https://admin.example").send().unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(resp.headers()["access-control-allow-origin"], "https://admin.example");
    server.shutdown();
}

#[test]
fn a_configs_debug_shows_no_session_and_no_key() {
    // `tracing::debug!(?config)` wrote every session id and tenant the table held (up to 100,000).
    let (_meter, tenants) = meter_with_tenants(|| call_in("s-secret-session", "acme"));
    assert_eq!(tenants.len(), 1);
    let shown = format!("{:?}", HttpConfig::new().with_api_key(ADMIN).with_session_tenants(tenants));
    assert!(shown.contains("sessions: 1"), "{shown}");
    assert!(!shown.contains("s-secret-session") && !shown.contains(ADMIN), "{shown}");
}

#[test]
fn an_empty_api_key_is_refused_and_never_matches() {
    // An empty key, as an unset variable read with `unwrap_or_default` gives, authenticated an empty header as
    // admin.
    let err = serve(TokenMeter::builder().build(), HttpConfig::new().with_port(0).with_api_key(ADMIN).with_api_key(""))
        .expect_err("an empty key");
    assert!(err.to_string().contains("an API key is empty"), "{err}");
    let err = serve(TokenMeter::builder().build(), HttpConfig::new().with_port(0).with_tenant_key("", "acme"))
        .expect_err("an empty key");
    assert!(err.to_string().contains("the key of tenant `acme` is empty"), "{err}");
    // A short key is guessed: two bytes took 394 tries, 0.2 s on one connection (a security review).
    let err = serve(TokenMeter::builder().build(), HttpConfig::new().with_port(0).with_tenant_key("k7", "acme"))
        .expect_err("a short key");
    assert!(err.to_string().contains("the key of tenant `acme` is 2 bytes: a key needs at least 16"), "{err}");
    let fifteen = "0123456789abcde";
    assert!(serve(TokenMeter::builder().build(), HttpConfig::new().with_port(0).with_api_key(fifteen)).is_err());
    let sixteen = "0123456789abcdef";
    serve(TokenMeter::builder().build(), HttpConfig::new().with_port(0).with_api_key(sixteen)).expect("16").shutdown();
    // One secret in two variables: a tenant would have read every tenant.
    let err = serve(
        TokenMeter::builder().build(),
        HttpConfig::new()
            .with_port(0)
            .with_api_key(ADMIN)
            .with_tenant_key(GLOBEX, "globex")
            .with_tenant_key(ADMIN, "acme"),
    )
    .expect_err("a key given twice");
    assert!(err.to_string().contains("the admin key and tenant `acme`'s key are the same secret"), "{err}");
    // The same key twice for one caller is one caller.
    let config = HttpConfig::new().with_port(0).with_tenant_key(ACME, "acme").with_tenant_key(ACME, "acme");
    serve(TokenMeter::builder().build(), config).expect("one caller").shutdown();
    let err = serve(TokenMeter::builder().build(), HttpConfig::new().with_port(0).with_max_request_bytes(0))
        .expect_err("no request fits");
    assert!(err.to_string().contains("at least 128"), "{err}");
    let f = fixture();
    for (name, value) in [("x-api-key", ""), ("authorization", "Bearer "), ("authorization", "bearer")] {
        let resp = f.client.get(f.url("/api/v1/budgets")).header(name, value).send().unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{name}: {value:?}");
    }
}

// === responses against the OpenAPI document ===

/// Checks `value` against an OpenAPI 3.0 schema (the subset the document uses: `$ref`, `type`, `nullable`,
/// `enum`, `minimum`, `required`, `properties`, `additionalProperties: false`, `items`, `oneOf`, `allOf`).
fn violations(doc: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        return violations(doc, &doc["components"]["schemas"][name], value, at, out);
    }
    if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
        return;
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            violations(doc, s, value, at, out);
        }
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = one
            .iter()
            .filter(|s| {
                let mut v = Vec::new();
                violations(doc, s, value, at, &mut v);
                v.is_empty()
            })
            .count();
        if matching != 1 {
            out.push(format!("{at}: matches {matching} of oneOf: {value}"));
        }
    }
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_u64() || value.is_i64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => false,
        };
        if !ok {
            out.push(format!("{at}: not of type {t}: {value}"));
            return;
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.contains(value)
    {
        out.push(format!("{at}: {value} not in {e:?}"));
    }
    if let (Some(min), Some(v)) = (schema.get("minimum").and_then(Value::as_f64), value.as_f64())
        && v < min
    {
        out.push(format!("{at}: {v} below {min}"));
    }
    if let Some(obj) = value.as_object() {
        for r in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            if !obj.contains_key(r.as_str().unwrap()) {
                out.push(format!("{at}: missing {r}"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, v) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => violations(doc, s, v, &format!("{at}.{k}"), out),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    out.push(format!("{at}: unexpected property {k}"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            violations(doc, items, v, &format!("{at}[{i}]"), out);
        }
    }
}

#[test]
fn every_response_matches_the_openapi_document() {
    let f = fixture();
    let (_, doc) = f.get_as(None, "/api/v1/openapi.json");
    let cases: &[(Option<&str>, &str, &str, u16)] = &[
        (None, "/healthz", "/healthz", 200),
        (Some(ADMIN), "/api/v1/analytics/token-efficiency?time_range=all", "/api/v1/analytics/token-efficiency", 200),
        (Some(ACME), "/api/v1/analytics/token-efficiency?time_range=all", "/api/v1/analytics/token-efficiency", 200),
        (Some(ACME), "/api/v1/analytics/token-efficiency?group_by=model", "/api/v1/analytics/token-efficiency", 200),
        (Some(ADMIN), "/api/v1/analytics/cache-performance?time_range=6h", "/api/v1/analytics/cache-performance", 200),
        (Some(ACME), "/api/v1/analytics/cache-performance?time_range=all", "/api/v1/analytics/cache-performance", 200),
        (Some(ADMIN), "/api/v1/analytics/tokens?range=day&model=claude-opus-4-5", "/api/v1/analytics/tokens", 200),
        (Some(ACME), "/api/v1/analytics/tokens?range=year", "/api/v1/analytics/tokens", 200),
        (Some(ADMIN), "/api/v1/token-usage/summary?group_by=week", "/api/v1/token-usage/summary", 200),
        (Some(ADMIN), "/api/v1/token-usage/s-3", "/api/v1/token-usage/{session_id}", 200),
        (
            Some(ACME),
            "/api/v1/token-usage/s-1/metrics?include_cache=1&include_differential=1&include_tools=1",
            "/api/v1/token-usage/{session_id}/metrics",
            200,
        ),
        (Some(ADMIN), "/api/v1/budgets", "/api/v1/budgets", 200),
        (Some(ACME), "/api/v1/budgets", "/api/v1/budgets", 200),
        (Some(ADMIN), "/api/v1/analytics/tokens?range=decade", "/api/v1/analytics/tokens", 400),
        (None, "/api/v1/openapi.json?v=2", "/api/v1/openapi.json", 400),
        (Some(ACME), "/api/v1/token-usage/s-3", "/api/v1/token-usage/{session_id}", 404),
        (Some("wrong"), "/api/v1/budgets", "/api/v1/budgets", 401),
    ];
    for (key, url, route, status) in cases {
        let (s, v) = f.get_as(*key, url);
        assert_eq!(s.as_u16(), *status, "{url}: {v}");
        let schema =
            &doc["paths"][*route]["get"]["responses"][status.to_string()]["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "{route} documents no {status}");
        let mut out = Vec::new();
        violations(&doc, schema, &v, "$", &mut out);
        assert!(out.is_empty(), "{url}:\n{}", out.join("\n"));
    }
    // The budget states exercise every part of their schema: a USD and a token budget.
    let (_, v) = f.get_as(Some(ADMIN), "/api/v1/budgets");
    let units: Vec<Vec<&str>> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["limit"].as_object().unwrap().keys().map(String::as_str).collect())
        .collect();
    assert!(units.contains(&vec!["picos", "usd"]) && units.contains(&vec!["tokens"]), "{units:?}");

    // The checker itself catches drift.
    let mut out = Vec::new();
    let mut tampered = f.ok("/api/v1/budgets");
    tampered[0]["surprise"] = Value::from(1);
    tampered[1]["calls"] = Value::from(-1);
    let schema = &doc["paths"]["/api/v1/budgets"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    violations(&doc, schema, &tampered, "$", &mut out);
    assert_eq!(out.len(), 2, "{out:?}");
}

const GLOBEX: &str = "globex-key-0123456789";

/// A meter whose `SessionTenants` (of 70) is near its bound, and a server with admin, acme and globex keys (a
/// dropped `ServerHandle` stops its server).
struct PastTheCap {
    clock: ManualClock,
    tenants: SessionTenants,
    meter: TokenMeter,
    dispatch: tracing::Dispatch,
    server: ServerHandle,
}

impl PastTheCap {
    fn get(&self, key: &str, path: &str) -> (StatusCode, String) {
        let url = format!("http://{}{path}", self.server.local_addr());
        let resp = Client::new().get(&url).header("x-api-key", key).send().unwrap();
        (resp.status(), resp.text().unwrap())
    }
}

/// 64 globex sessions fill the minute's session entries (its cap); acme's call in `x` comes after them, so the
/// ledger folds it into `(other)`: no per-session query can show it any more. `then` runs in the same minute.
fn past_the_session_cap(then: impl FnOnce()) -> PastTheCap {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap());
    let tenants = SessionTenants::new(70);
    let meter = TokenMeter::builder().with_clock(clock.clone()).with_sink(tenants.clone()).build();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(meter.layer()));
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..64 {
            call_in(&format!("f-{i}"), "globex");
        }
        call_in("x", "acme");
        call_in("y", "acme");
        then();
    });
    let config = HttpConfig::new()
        .with_port(0)
        .with_api_key(ADMIN)
        .with_tenant_key(ACME, "acme")
        .with_tenant_key(GLOBEX, "globex")
        .with_session_tenants(tenants.clone());
    let server = serve(meter.clone(), config).expect("server");
    PastTheCap { clock, tenants, meter, dispatch, server }
}

#[test]
fn near_its_bound_session_tenants_forgets_only_sessions_the_ledger_no_longer_holds() {
    let f = past_the_session_cap(|| {});
    let (clock, tenants, dispatch) = (&f.clock, &f.tenants, &f.dispatch);
    assert_eq!(tenants.len(), 66, "nine tenths of 70 reached");
    assert_eq!(tenants.tenant_of("x").as_deref(), Some("acme"));
    let held = f.meter.query(&Query::new(Window::All).group_by(GroupBy::Dimension(Dimension::Session))).unwrap();
    let keys: Vec<&str> = held.groups.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys.len(), 65, "the 64 sessions f-0 to f-63, and (other): {keys:?}");
    assert!(keys.contains(&"(other)") && !keys.contains(&"x"), "the ledger folded x into (other): {keys:?}");

    let get = |key: &str, path: &str| {
        let (status, text) = f.get(key, path);
        (status, serde_json::from_str::<Value>(&text).unwrap())
    };
    // The caching analyses keep each session's history for two hours idle (the ledger holds `x` until then).
    clock.advance(Duration::hours(3));
    // A tenant-bound request sweeps: `x` is forgotten, the sessions the ledger holds are kept.
    assert_eq!(get(GLOBEX, "/api/v1/token-usage/f-3").0, StatusCode::OK);
    assert_eq!((tenants.tenant_of("x"), tenants.tenant_of("y")), (None, None));
    assert_eq!(tenants.len(), 64);
    assert_eq!(tenants.tenant_of("f-63").as_deref(), Some("globex"));

    // `x` comes back under globex in the next minute: globex sees it, with its own call only; acme does not.
    clock.advance(Duration::minutes(1));
    tracing::dispatcher::with_default(dispatch, || call_in("x", "globex"));
    assert_eq!(tenants.tenant_of("x").as_deref(), Some("globex"));
    let (status, body) = get(GLOBEX, "/api/v1/token-usage/x");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["totals"]["calls"], 1, "only globex's call: acme's is in (other), {body}");
    assert_eq!(get(ACME, "/api/v1/token-usage/x").0, StatusCode::NOT_FOUND);
    // The count of calls past the caps is every tenant's: it was acme's calls here, shown to globex.
    assert!(body.get("unattributed_calls").is_none(), "{body}");
    for path in ["/api/v1/token-usage/summary", "/api/v1/analytics/tokens"] {
        let (status, body) = get(GLOBEX, path);
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("unattributed_calls").is_none(), "{path}: {body}");
    }
    for path in ["/api/v1/analytics/token-efficiency?time_range=all", "/api/v1/analytics/cache-performance"] {
        let (status, body) = get(GLOBEX, path);
        assert_eq!(status, StatusCode::OK, "{body}");
        let scope = &body["scope"];
        assert_eq!(scope["unattributed_calls"], 0, "{path}: {body}");
        let notes: Vec<&str> = scope["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
        assert!(notes.iter().all(|n| !n.contains("calls of sessions past")), "{path}: a count in {notes:?}");
        assert!(notes.iter().any(|n| n.contains("not shown it")), "{path}: {notes:?}");
    }
    // The admin key sees the count: acme's calls in `x` and `y`, folded into `(other)`.
    assert_eq!(get(ADMIN, "/api/v1/token-usage/x").1["unattributed_calls"], 2);
}

#[test]
fn a_folded_session_is_held_while_the_caching_analyses_keep_its_history() {
    // The caching analyses key a session's last prompt and unread writes by its id alone, for two idle hours:
    // a session forgotten meanwhile and reused by another tenant had its first call read as following the
    // earlier tenant's (its reusable tokens were the other tenant's last prompt).
    let f = past_the_session_cap(|| {});
    assert_eq!(f.get(GLOBEX, "/api/v1/token-usage/f-3").0, StatusCode::OK); // sweeps
    assert_eq!(f.tenants.tenant_of("x").as_deref(), Some("acme"));
    assert_eq!(f.tenants.len(), 66);
}

#[test]
fn a_session_whose_calls_were_folded_but_whose_tools_are_held_is_not_forgotten() {
    // `x`'s call was folded past the minute's session cap, but its tool run is held under `x`: the sweep forgot
    // `x` (it read the sessions' own rows only), and the next tenant to use the id `x` read acme's tool runs.
    let f = past_the_session_cap(|| {
        let _s = tracing::info_span!("conversation", session.id = "x", tenant.id = "acme").entered();
        drop(
            tracing::info_span!("tool", gen_ai.operation.name = "execute_tool", gen_ai.tool.name = "acme_tool")
                .entered(),
        );
    });
    let (clock, tenants, dispatch) = (&f.clock, &f.tenants, &f.dispatch);
    let get = |key: &str, path: &str| f.get(key, path);
    clock.advance(Duration::hours(3)); // past the caching analyses' two idle hours: only buckets hold sessions
    assert_eq!(get(GLOBEX, "/api/v1/token-usage/f-3").0, StatusCode::OK); // sweeps
    assert_eq!(tenants.tenant_of("y"), None, "a folded session without tools is forgotten: the sweep ran");
    assert_eq!(tenants.tenant_of("x").as_deref(), Some("acme"), "held by its tool run");
    clock.advance(Duration::minutes(1));
    tracing::dispatcher::with_default(dispatch, || call_in("x", "globex"));
    let (status, body) = get(GLOBEX, "/api/v1/token-usage/x/metrics?include_tools=true");
    assert_eq!(status, StatusCode::NOT_FOUND, "shared by two tenants: {body}");
    assert!(!body.contains("acme_tool"), "{body}");
}

#[test]
fn a_session_named_like_a_ledger_row_belongs_to_no_tenant() {
    // `(none)` and `(other)` are the ledger's own rows: every tenant's calls without a session, and sessions
    // past a bucket's cap. A tenant that names its session so must not read them through a session query.
    let tenants = SessionTenants::default();
    let meter = TokenMeter::builder().with_sink(tenants.clone()).build();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(meter.layer()));
    tracing::dispatcher::with_default(&dispatch, || {
        call_in("(none)", "acme");
        call_in("(other)", "acme");
        // globex's calls without a session.
        let _t = tracing::info_span!("request", tenant.id = "globex").entered();
        for _ in 0..3 {
            let _c = tracing::info_span!("chat", gen_ai.request.model = "claude-opus-4-5", input_tokens = 5_000u64)
                .entered();
        }
    });
    assert_eq!(tenants.tenant_of("(none)"), None);
    assert_eq!(tenants.tenant_of("(other)"), None);
    let config = HttpConfig::new().with_port(0).with_tenant_key(ACME, "acme").with_session_tenants(tenants);
    let server = serve(meter, config).expect("server");
    for path in ["/api/v1/token-usage/(none)", "/api/v1/token-usage/(other)", "/api/v1/token-usage/%28none%29"] {
        let url = format!("http://{}{path}", server.local_addr());
        let resp = Client::new().get(&url).header("x-api-key", ACME).send().unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}: {}", resp.text().unwrap());
    }
    server.shutdown();
}

#[test]
fn shutdown_does_not_wait_for_a_client_that_went_quiet_mid_request() {
    // Half a request line, then nothing: graceful shutdown waited for that connection for good, and with it
    // `shutdown()` (or the handle's drop) in the application. The header-read timeout, which would close the
    // connection anyway, is an hour here: only the shutdown's own grace can end the wait.
    use std::io::{Read, Write};
    let meter = TokenMeter::builder().build();
    let config = HttpConfig::new().with_port(0).with_header_read_timeout(std::time::Duration::from_secs(3600));
    let server = serve(meter, config).expect("server");
    let mut quiet = std::net::TcpStream::connect(server.local_addr()).unwrap();
    quiet.write_all(b"GET /api/v1/token-usage/summary HTTP/1.1\r\n").unwrap();
    // A whole request on a second connection, answered: the server (one thread, accepting in order) has
    // accepted the quiet connection before it got to this one (a connection hyper has accepted counts as busy
    // for graceful shutdown, whether or not it has read the half request yet).
    let mut whole = std::net::TcpStream::connect(server.local_addr()).unwrap();
    whole.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    whole
        .write_all(b"GET /api/v1/token-usage/summary HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    whole.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        server.shutdown();
        let _ = done_tx.send(());
    });
    let limit = tokenmeter::http::SHUTDOWN_GRACE + std::time::Duration::from_secs(5);
    assert!(done_rx.recv_timeout(limit).is_ok(), "shutdown still waiting after {limit:?}");
    drop(quiet);
}

/// Reads until the server closes the connection (`Ok(bytes read)`) or `limit` passes (`Err`).
fn read_until_closed(stream: &mut std::net::TcpStream, limit: std::time::Duration) -> Result<Vec<u8>, Vec<u8>> {
    use std::io::Read;
    let start = std::time::Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        stream.set_read_timeout(Some(std::time::Duration::from_millis(100))).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return Ok(got), // reset: closed too
        }
    }
    Err(got)
}

#[test]
fn a_client_that_never_finishes_its_headers_is_closed_after_the_header_read_timeout() {
    // Half a request line, then nothing (slowloris), and a connection that sends nothing at all: `axum::serve`
    // set no header-read timeout, so both held a connection and a file descriptor of the application for good.
    use std::io::Write;
    let meter = TokenMeter::builder().build();
    let config = HttpConfig::new().with_port(0).with_header_read_timeout(std::time::Duration::from_millis(300));
    let server = serve(meter, config).expect("server");
    let mut half = std::net::TcpStream::connect(server.local_addr()).unwrap();
    half.write_all(b"GET /api/v1/token-usage/summary HTTP/1.1\r\nHost: local").unwrap();
    let mut silent = std::net::TcpStream::connect(server.local_addr()).unwrap();
    let limit = std::time::Duration::from_secs(10);
    assert!(read_until_closed(&mut half, limit).is_ok(), "a half-sent request still open after {limit:?}");
    assert!(read_until_closed(&mut silent, limit).is_ok(), "a silent connection still open after {limit:?}");
    // A whole request within the limit is answered, and the kept-alive connection is closed once idle.
    let mut whole = std::net::TcpStream::connect(server.local_addr()).unwrap();
    whole.write_all(b"GET /api/v1/token-usage/summary HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let answer = read_until_closed(&mut whole, limit).expect("an idle kept-alive connection is closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.shutdown();
}

#[test]
fn a_client_that_stops_reading_its_responses_is_closed_after_the_timeout() {
    // Pipelined requests for the public OpenAPI document (~25 KB each), never read: hyper parsed each request
    // from its buffer (no header timeout then) and blocked writing to the full socket, with no write timeout.
    // Two such clients held both slots for good, without a key, and nobody else was answered.
    use std::io::Write;
    let meter = TokenMeter::builder().build();
    let config = HttpConfig::new()
        .with_port(0)
        .with_max_connections(2)
        .with_header_read_timeout(std::time::Duration::from_millis(500));
    let server = serve(meter, config).expect("server");
    let addr = server.local_addr();
    let mut stuck = Vec::new();
    for _ in 0..2 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_write_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        stuck.push(s.try_clone().unwrap());
        // Far more responses than the sockets' buffers hold (4,000 x 25 KB); the writes stop when the server
        // stops reading, so they run on their own thread, which ends when the connection is closed.
        std::thread::spawn(move || {
            let request = b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: localhost\r\n\r\n";
            for _ in 0..4_000 {
                if s.write_all(request).is_err() {
                    return;
                }
            }
        });
    }
    std::thread::sleep(std::time::Duration::from_millis(300)); // both accepted and writing
    let mut third = std::net::TcpStream::connect(addr).unwrap();
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let answer = read_until_closed(&mut third, std::time::Duration::from_secs(20)).expect("answered and closed");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    // The stuck clients had been answered, until the server closed them (not closed before they were served).
    let mut first = stuck.swap_remove(0);
    let served = read_until_closed(&mut first, std::time::Duration::from_secs(20)).expect("closed");
    assert!(String::from_utf8_lossy(&served).starts_with("HTTP/1.1 200"), "{} bytes", served.len());
    drop(stuck);
    server.shutdown();
}

#[test]
fn a_connection_past_the_cap_takes_the_place_of_the_oldest_idle_one() {
    // The server waited for a free slot before accepting: connections that sent nothing held every slot (each
    // for the header timeout, renewed as they closed), and nobody else was answered (a security review: 0 of 10
    // requests answered while 900 such sockets were kept open).
    use std::io::Write;
    let meter = TokenMeter::builder().build();
    let config = HttpConfig::new().with_port(0).with_max_connections(2);
    let server = serve(meter.clone(), config).expect("server");
    let addr = server.local_addr();
    // The oldest sends half a request's headers and goes quiet (hyper's graceful close waits for the rest of them,
    // the header timeout's 10 s: such a connection is closed at once); the newer sends nothing.
    let mut oldest = std::net::TcpStream::connect(addr).unwrap();
    oldest.write_all(b"GET /api/v1/budgets HTTP/1.1\r\nHost: local").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let mut newer = std::net::TcpStream::connect(addr).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100)); // both accepted
    let mut third = std::net::TcpStream::connect(addr).unwrap();
    third
        .write_all(b"GET /api/v1/token-usage/summary HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let answer = read_until_closed(&mut third, std::time::Duration::from_secs(5)).expect("answered and closed");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    // The oldest idle connection was closed for it; the newer one is still open.
    assert_eq!(read_until_closed(&mut oldest, std::time::Duration::from_secs(5)), Ok(Vec::new()), "closed");
    assert_eq!(read_until_closed(&mut newer, std::time::Duration::from_millis(300)), Err(Vec::new()), "open");
    server.shutdown();
    let err = serve(meter, HttpConfig::new().with_port(0).with_max_connections(0)).expect_err("no connections");
    assert!(err.to_string().contains("with_max_connections(0)"), "{err}");
}

#[test]
fn a_response_being_written_is_finished_before_its_connection_makes_room() {
    // Counted idle once its handler returned, a connection still writing a large response to a slow reader was
    // dropped for a new one, and its client reset mid-body (a review: 2,177,024 of 2,367,380 bytes). It is closed
    // gracefully now: the response in progress is written whole, then the connection closes.
    use std::io::Write;
    let meter = TokenMeter::builder().build();
    let server = serve(meter, HttpConfig::new().with_port(0).with_max_connections(1)).expect("server");
    let addr = server.local_addr();
    // A response of ~2.4 MB to a client with a 2 KB receive buffer that does not read for a while: the server is
    // still writing it when the newcomer comes.
    let big = b"GET /api/v1/analytics/tokens?range=year&aggregation=hourly HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(2_048).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut slow: std::net::TcpStream = socket.into();
    slow.write_all(big).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut newcomer = std::net::TcpStream::connect(addr).unwrap();
    newcomer.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let got = read_until_closed(&mut slow, std::time::Duration::from_secs(30)).expect("closed after its response");
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("a content length");
    assert!(length > 1_000_000, "{length}");
    assert!(got.len() - head_end >= length, "the body was cut: {} of {length} bytes", got.len() - head_end);
    let answer = read_until_closed(&mut newcomer, std::time::Duration::from_secs(10)).expect("answered and closed");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    server.shutdown();
}

#[test]
fn a_new_connection_gets_the_place_of_one_that_goes_idle_while_it_waits() {
    // Waiting at the cap while every connection answered a request, a new connection looked for an idle one only
    // once: the connection that then finished its request and stayed open (kept alive) kept its slot, and the
    // newcomer was closed unanswered after the header timeout (a review).
    use std::io::Write;
    let clock = GateClock::closed();
    let meter = TokenMeter::builder().with_clock(clock.clone()).build();
    let config = HttpConfig::new()
        .with_port(0)
        .with_max_connections(1)
        .with_header_read_timeout(std::time::Duration::from_secs(5));
    let server = serve(meter, config).expect("server");
    let addr = server.local_addr();
    let mut kept = std::net::TcpStream::connect(addr).unwrap();
    kept.write_all(b"GET /api/v1/token-usage/summary HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let (waiting, _) = clock.wait_until(std::time::Duration::from_secs(30), |g| g.waiting >= 1);
    assert_eq!(waiting, 1, "the kept-alive connection's request computing");
    let mut newcomer = std::net::TcpStream::connect(addr).unwrap();
    newcomer.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    clock.open();
    // Within 4 s, before the 5 s header timeout that closed it unanswered.
    let answer =
        read_until_closed(&mut newcomer, std::time::Duration::from_secs(4)).expect("answered before the timeout");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    // The kept-alive one had its answer, then was closed for the newcomer.
    let kept_answer = read_until_closed(&mut kept, std::time::Duration::from_secs(5)).expect("closed");
    assert!(String::from_utf8_lossy(&kept_answer).starts_with("HTTP/1.1 200"));
    server.shutdown();
}

#[test]
fn a_connection_answering_a_request_is_not_closed_for_a_new_one() {
    // Two requests held at the clock fill the cap: a third connection waits for one of them to finish.
    use std::io::Write;
    let clock = GateClock::closed();
    let meter = TokenMeter::builder().with_clock(clock.clone()).build();
    let server = serve(meter, HttpConfig::new().with_port(0).with_max_connections(2)).expect("server");
    let addr = server.local_addr();
    let request = b"GET /api/v1/token-usage/summary HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let mut busy: Vec<_> = (0..2)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(request).unwrap();
            s
        })
        .collect();
    let (waiting, _) = clock.wait_until(std::time::Duration::from_secs(30), |g| g.waiting >= 2);
    assert_eq!(waiting, 2, "both requests computing");
    let mut third = std::net::TcpStream::connect(addr).unwrap();
    third.write_all(request).unwrap();
    assert_eq!(read_until_closed(&mut third, std::time::Duration::from_millis(700)), Err(Vec::new()), "waits");
    clock.open();
    for s in busy.iter_mut().chain(std::iter::once(&mut third)) {
        let answer = read_until_closed(s, std::time::Duration::from_secs(10)).expect("answered and closed");
        assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    }
    server.shutdown();
}

#[test]
fn without_keys_only_requests_to_localhost_are_answered() {
    // DNS rebinding: a page whose name now points at 127.0.0.1 reads the API through the browser, which sends
    // the page's name as `Host`; without keys every request was admin.
    let meter = TokenMeter::builder().build();
    let server = serve(meter.clone(), HttpConfig::new().with_port(0)).expect("server");
    let url = format!("http://{}/api/v1/token-usage/summary", server.local_addr());
    let local = Client::new().get(&url).send().unwrap();
    assert_eq!(local.status(), StatusCode::OK);
    let rebound = Client::new().get(&url).header("host", "evil.example:8787").send().unwrap();
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    assert!(rebound.text().unwrap().contains("localhost only"));
    let named = Client::new().get(&url).header("host", "localhost:8787").send().unwrap();
    assert_eq!(named.status(), StatusCode::OK);
    // The name in the request target and no `Host` header (HTTP/1.0; HTTP/2 carries it as `:authority`, which
    // lands in the same place): the check was skipped.
    let status_of = |request: &str| {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(server.local_addr()).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.lines().next().unwrap_or_default().to_owned()
    };
    let target = "http://evil.example:8787/api/v1/token-usage/summary";
    assert!(status_of(&format!("GET {target} HTTP/1.0\r\n\r\n")).contains(" 403 "));
    let target = "http://localhost:8787/api/v1/token-usage/summary";
    assert!(status_of(&format!("GET {target} HTTP/1.0\r\n\r\n")).contains(" 200 "));
    server.shutdown();
    // With a key, any name is fine.
    let server = serve(meter.clone(), HttpConfig::new().with_port(0).with_api_key(ADMIN)).expect("server");
    let url = format!("http://{}/api/v1/token-usage/summary", server.local_addr());
    let keyed = Client::new().get(&url).header("host", "usage.internal").header("x-api-key", ADMIN).send().unwrap();
    assert_eq!(keyed.status(), StatusCode::OK);
    server.shutdown();
    // And a non-loopback address without a key is refused outright.
    let open = HttpConfig::new().with_addr("0.0.0.0:0".parse().unwrap());
    let err = serve(meter, open).expect_err("no key, every interface");
    assert!(err.to_string().contains("without an API key"), "{err}");
}

/// Serves `app` with `axum::serve` on its own thread (as an application mounting the router would), with or
/// without the peer's address.
fn mount(app: axum::Router, connect_info: bool) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = match connect_info {
                true => {
                    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
                    axum::serve(listener, app).await
                }
                false => axum::serve(listener, app).await,
            };
        });
    });
    addr
}

#[test]
fn without_keys_a_mounted_router_answers_only_peers_on_this_machine() {
    // A `Host: localhost` header is not where the client is: an application mounting the router on 0.0.0.0
    // without a key answered anyone who sent it, with every tenant's usage.
    let meter = TokenMeter::builder().build();
    let get = |addr: std::net::SocketAddr| {
        let url = format!("http://{addr}/api/v1/token-usage/summary");
        let resp = Client::new().get(url).header("host", "localhost").send().unwrap();
        (resp.status(), resp.text().unwrap())
    };
    let router = || tokenmeter::http::router(meter.clone(), HttpConfig::new());
    // The peer's address known and on this machine: answered.
    assert_eq!(get(mount(router(), true)).0, StatusCode::OK);
    // Not known (mounted without `into_make_service_with_connect_info`): refused, saying what to do.
    let (status, body) = get(mount(router(), false));
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("into_make_service_with_connect_info"), "{body}");
    // Another machine's (as a router on 0.0.0.0 would see it; set here, as this machine serves loopback only).
    let remote = std::net::SocketAddr::from(([203, 0, 113, 7], 40000));
    let app = router().layer(axum::Extension(axum::extract::ConnectInfo(remote)));
    let (status, body) = get(mount(app, false));
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("peer 203.0.113.7"), "{body}");
}

#[test]
fn session_tenants_know_a_call_before_the_ledger_holds_it() {
    // The ledger took a call in before `SessionTenants` heard of it: a read of a session by its first tenant's
    // key in between showed a second tenant's call. Whatever order the sinks were added in, by the time the
    // ledger holds a call its session's tenant is known. A sink added first (the default: after the ledger)
    // looks at both.
    /// The session's calls in the ledger, and its tenant, as each call reached the sink.
    type Seen = std::sync::Arc<parking_lot::Mutex<Vec<(u64, Option<String>)>>>;
    struct Look {
        meter: std::sync::Arc<std::sync::OnceLock<TokenMeter>>,
        tenants: SessionTenants,
        seen: Seen,
    }
    impl tokenmeter::RecordSink for Look {
        fn on_call(&self, _: &tokenmeter::CallRecord) {
            let q = tokenmeter::ledger::Query::new(tokenmeter::ledger::Window::All)
                .filter(tokenmeter::ledger::Dimension::Session, "s-1");
            let calls = self.meter.get().unwrap().query(&q).unwrap().totals.calls;
            self.seen.lock().push((calls, self.tenants.tenant_of("s-1")));
        }
    }
    let tenants = SessionTenants::default();
    let cell = std::sync::Arc::new(std::sync::OnceLock::new());
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let look = Look { meter: cell.clone(), tenants: tenants.clone(), seen: seen.clone() };
    let meter = TokenMeter::builder().with_sink(look).with_sink(tenants).build();
    cell.set(meter.clone()).unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(meter.layer()), || {
        call_in("s-1", "acme");
        call_in("s-1", "globex");
    });
    // With the second tenant's call in the ledger, the session belongs to neither.
    assert_eq!(*seen.lock(), [(1, Some("acme".to_owned())), (2, None)]);

    // A sink heard before the ledger hears again once the ledger holds the call (`SessionTenants` learns the
    // session again then: a sweep in between may have forgotten it).
    struct Twice {
        meter: std::sync::Arc<std::sync::OnceLock<TokenMeter>>,
        seen: std::sync::Arc<parking_lot::Mutex<Vec<(&'static str, u64)>>>,
    }
    impl Twice {
        fn note(&self, when: &'static str) {
            let calls =
                self.meter.get().unwrap().query(&tokenmeter::ledger::Query::new(tokenmeter::ledger::Window::All));
            self.seen.lock().push((when, calls.unwrap().totals.calls));
        }
    }
    impl tokenmeter::RecordSink for Twice {
        fn on_call(&self, _: &tokenmeter::CallRecord) {
            self.note("before");
        }
        fn before_ledger(&self) -> bool {
            true
        }
        fn after_ledger(&self, _: &tokenmeter::Dimensions, call: bool) {
            self.note(if call { "after" } else { "after a task or tool" });
        }
    }
    let cell = std::sync::Arc::new(std::sync::OnceLock::new());
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let meter = TokenMeter::builder().with_sink(Twice { meter: cell.clone(), seen: seen.clone() }).build();
    cell.set(meter.clone()).unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(meter.layer()), || {
        call_in("s-2", "acme");
        let _s = tracing::info_span!("conversation", session.id = "s-2", tenant.id = "acme").entered();
        drop(tracing::info_span!("tool", gen_ai.operation.name = "execute_tool", gen_ai.tool.name = "grep").entered());
    });
    assert_eq!(*seen.lock(), [("before", 0), ("after", 1), ("after a task or tool", 1)]);
}

#[test]
fn a_keyless_mounted_router_drops_only_the_wildcard_origin() {
    // `*` beside a named origin, no key: the wildcard is dropped (any local page could read every tenant), and
    // the named origin, which was refused with it, is allowed.
    let config = HttpConfig::new().with_cors_origin("*").with_cors_origin("https://admin.example");
    let addr = mount(tokenmeter::http::router(TokenMeter::builder().build(), config), true);
    let url = format!("http://{addr}/api/v1/budgets");
    let allowed = |origin: &str| {
        let resp = Client::new().get(&url).header("origin", origin).send().unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(allowed("https://admin.example").as_deref(), Some("https://admin.example"));
    assert_eq!(allowed("https://evil.example"), None);
}

#[test]
fn a_session_named_summary_is_read_percent_encoded() {
    let meter = TokenMeter::builder().build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(meter.layer()), || {
        call_in("summary", "acme");
        call_in("other", "acme");
    });
    let server = serve(meter, HttpConfig::new().with_port(0)).expect("server");
    let url = format!("http://{}/api/v1/token-usage/summar%79", server.local_addr());
    let resp = Client::new().get(&url).send().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = serde_json::from_str(&resp.text().unwrap()).unwrap();
    assert_eq!(v["totals"]["calls"], 1, "{v}");
    server.shutdown();
}

/// A clock that notes the name of each thread that reads it (reports read it for "now").
#[derive(Debug, Clone)]
struct ThreadNotingClock {
    inner: ManualClock,
    readers: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl tokenmeter::Clock for ThreadNotingClock {
    fn unix_nanos(&self) -> i64 {
        let name = std::thread::current().name().unwrap_or("unnamed").to_owned();
        self.readers.lock().unwrap().push(name);
        self.inner.unix_nanos()
    }
}

#[test]
fn reports_run_off_the_servers_async_thread() {
    // A report is milliseconds of CPU under the ledger's lock: on `serve`'s one async thread it held up every
    // other connection, and the request's time limit could not interrupt it.
    let clock = ThreadNotingClock {
        inner: ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap()),
        readers: Default::default(),
    };
    let meter = TokenMeter::builder().with_clock(clock.clone()).build();
    let server = serve(meter.clone(), HttpConfig::new().with_port(0)).expect("serve");
    let client = Client::new();
    for path in [
        "/api/v1/analytics/token-efficiency",
        "/api/v1/analytics/cache-performance",
        "/api/v1/analytics/tokens",
        "/api/v1/token-usage/summary",
        // Every account of every budget (~0.2 s at 100,000 values of a budget of each user), and their JSON.
        "/api/v1/budgets",
    ] {
        clock.readers.lock().unwrap().clear();
        let resp = client.get(format!("http://{}{path}", server.local_addr())).send().expect("request");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let readers = clock.readers.lock().unwrap().clone();
        assert!(!readers.is_empty(), "{path}: the report read the clock");
        assert!(!readers.iter().any(|r| r == "tokenmeter-http"), "{path}: read on {readers:?}");
    }
    server.shutdown();
}

/// A clock at which reports wait: a read on tokio's blocking pool (where reports run) waits while the gate is
/// shut, counted. A report reads the clock before anything else it does, so while the gate is shut the readers
/// waiting at it are the reports computing.
#[derive(Debug, Clone)]
struct GateClock {
    inner: ManualClock,
    gate: std::sync::Arc<(std::sync::Mutex<Gate>, std::sync::Condvar)>,
}

#[derive(Debug, Default)]
struct Gate {
    open: bool,
    /// Readers at the gate now, and the most at once.
    waiting: usize,
    most: usize,
}

impl GateClock {
    /// A gate closed until [`open`](Self::open), on 2026-03-14 09:00 UTC.
    fn closed() -> Self {
        GateClock {
            inner: ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap()),
            gate: Default::default(),
        }
    }

    /// Waits until `ready` holds of the gate, or `limit` passes; returns the gate's `(waiting, most)` then.
    fn wait_until(&self, limit: std::time::Duration, ready: impl Fn(&Gate) -> bool) -> (usize, usize) {
        let (lock, changed) = &*self.gate;
        let (gate, _) = changed.wait_timeout_while(lock.lock().unwrap(), limit, |g| !ready(g)).unwrap();
        (gate.waiting, gate.most)
    }

    fn open(&self) {
        let (lock, changed) = &*self.gate;
        lock.lock().unwrap().open = true;
        changed.notify_all();
    }
}

impl tokenmeter::Clock for GateClock {
    fn unix_nanos(&self) -> i64 {
        // The blocking pool's threads, as tokio names them (`tokio-rt-worker`; `tokio-runtime-worker` before):
        // `mount`'s async thread is unnamed, and never waits here.
        if std::thread::current().name().is_some_and(|n| n.starts_with("tokio-")) {
            let (lock, changed) = &*self.gate;
            let mut gate = lock.lock().unwrap();
            gate.waiting += 1;
            gate.most = gate.most.max(gate.waiting);
            changed.notify_all();
            gate = changed.wait_while(gate, |g| !g.open).unwrap();
            gate.waiting -= 1;
        }
        self.inner.unix_nanos()
    }
}

/// The gate's clock, a router on it (tokio's default blocking pool: `serve`'s has 4 threads, which would bound
/// the reports by itself) with an admin key and four tenants' (`t-0-key-0123456789` ... `t-3-...`), its summary's
/// URL, and a count of the requests that reached the router (waiting for their turn or computing).
fn gated_router() -> (GateClock, String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    gated_router_with(std::time::Duration::from_secs(60))
}

/// [`gated_router`] with the requests' time limit `timeout`.
fn gated_router_with(
    timeout: std::time::Duration,
) -> (GateClock, String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let clock = GateClock::closed();
    let meter = TokenMeter::builder().with_clock(clock.clone()).build();
    let arrived = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = arrived.clone();
    let config = (0..4).fold(HttpConfig::new().with_timeout(timeout).with_api_key(ADMIN), |c, t| {
        c.with_tenant_key(format!("t-{t}-key-0123456789"), format!("t-{t}"))
    });
    let app = tokenmeter::http::router(meter, config).layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            next.run(req)
        },
    ));
    (clock, format!("http://{}/api/v1/token-usage/summary", mount(app, true)), arrived)
}

/// `n` requests of `url` with `key`, each on its thread.
fn requests_of(url: &str, key: &str, n: usize) -> Vec<std::thread::JoinHandle<reqwest::Result<StatusCode>>> {
    (0..n)
        .map(|_| {
            let (url, key) = (url.to_owned(), key.to_owned());
            std::thread::spawn(move || Client::new().get(url).header("x-api-key", key).send().map(|r| r.status()))
        })
        .collect()
}

/// Waits until `n` requests reached the router.
fn arrived_at_least(arrived: &std::sync::atomic::AtomicUsize, n: usize) {
    let start = std::time::Instant::now();
    while arrived.load(std::sync::atomic::Ordering::SeqCst) < n {
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "{arrived:?} requests arrived of {n}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn at_most_four_reports_compute_at_once() {
    // Twelve requests at once, three from each of four tenants: four reports compute (`REPORTS_AT_ONCE`), the other
    // requests wait for their turn. Each report is held at the clock until all twelve requests are in.
    const AT_ONCE: usize = 4;
    let (clock, url, arrived) = gated_router();
    let requests: Vec<_> = (0..4).flat_map(|t| requests_of(&url, &format!("t-{t}-key-0123456789"), 3)).collect();
    let limit = std::time::Duration::from_secs(30);
    let (waiting, _) = clock.wait_until(limit, |g| g.waiting >= AT_ONCE);
    assert_eq!(waiting, AT_ONCE, "reports computing at once, after {limit:?}");
    arrived_at_least(&arrived, 12);
    // Every request in; a report past the bound would be at the gate by now.
    let (waiting, most) = clock.wait_until(std::time::Duration::from_millis(500), |g| g.most > AT_ONCE);
    assert_eq!((waiting, most), (AT_ONCE, AT_ONCE), "reports computing at once, and the most");
    clock.open();
    for r in requests {
        assert_eq!(r.join().unwrap().expect("a response"), StatusCode::OK);
    }
    let (_, most) = clock.wait_until(std::time::Duration::ZERO, |_| true);
    assert_eq!(most, AT_ONCE, "the most reports computing at once, all twelve done");
}

#[test]
fn a_callers_turn_is_held_until_its_report_ends_not_its_request() {
    // Released with the request, a turn let a caller whose requests passed their time limit (or whose client
    // left) start more reports while those still computed: one key could fill every report's turn.
    let (clock, url, _) = gated_router_with(std::time::Duration::from_millis(300));
    let first = requests_of(&url, "t-0-key-0123456789", 2);
    let (waiting, _) = clock.wait_until(std::time::Duration::from_secs(30), |g| g.waiting >= 2);
    assert_eq!(waiting, 2);
    for r in first {
        assert_eq!(r.join().unwrap().expect("a response"), StatusCode::SERVICE_UNAVAILABLE, "past the time limit");
    }
    // Their reports still compute (held at the gate): the caller's next two wait for their turn.
    let again = requests_of(&url, "t-0-key-0123456789", 2);
    let (waiting, most) = clock.wait_until(std::time::Duration::from_millis(500), |g| g.most > 2);
    assert_eq!((waiting, most), (2, 2), "the caller's reports computing at once, and the most");
    clock.open();
    for r in again {
        r.join().unwrap().expect("a response");
    }
}

#[test]
fn one_key_sending_many_reports_at_once_does_not_hold_up_another_callers() {
    // A tenant's key sending many heavy reports at once took every report's turn, and the admin's request queued
    // behind all of them (a security review: 1.6-1.8 s for 32 at once on a 300k-call ledger, `503` after the 10 s
    // limit for 200). Each caller has two requests in progress at most: the tenant's eight compute two at a time,
    // and the admin's computes beside them.
    let (clock, url, arrived) = gated_router();
    let tenant = requests_of(&url, "t-0-key-0123456789", 8);
    arrived_at_least(&arrived, 8);
    let (waiting, most) = clock.wait_until(std::time::Duration::from_millis(500), |g| g.most > 2);
    assert_eq!((waiting, most), (2, 2), "one caller's reports computing at once, and the most");
    let admin = requests_of(&url, ADMIN, 1);
    let (waiting, _) = clock.wait_until(std::time::Duration::from_secs(30), |g| g.waiting >= 3);
    assert_eq!(waiting, 3, "the admin's report computes beside the tenant's two");
    clock.open();
    for r in tenant.into_iter().chain(admin) {
        assert_eq!(r.join().unwrap().expect("a response"), StatusCode::OK);
    }
}

#[test]
fn an_implied_start_is_at_most_the_range_back() {
    // The start `range` back from the end fell inside a bucket and widened back to its start: a week at 10:03
    // was 7 days 10 hours (8 daily rows, the first a whole day before the week), a day 25 hourly rows.
    let f = fixture();
    for (path, days, rows) in [
        ("/api/v1/analytics/tokens", 7, 7),
        ("/api/v1/analytics/tokens?range=day", 1, 24),
        ("/api/v1/analytics/tokens?range=month", 30, 30),
    ] {
        let v = f.ok(path);
        let at = |k: &str| chrono::DateTime::parse_from_rfc3339(v["window"][k].as_str().unwrap()).unwrap();
        let span = at("to") - at("from");
        assert!(span <= Duration::days(days) && span > Duration::days(days) - Duration::days(1), "{path}: {span}");
        assert_eq!(v["groups"].as_array().unwrap().len(), rows, "{path}: {v}");
    }
}

#[test]
fn a_session_the_ledger_holds_only_tool_runs_of_is_found() {
    // `x`'s call was folded past the minute's session cap; its tool run is held under `x`. The session
    // endpoints answered 404 (they looked at calls and tasks only) while `tools` had a row for it.
    let f = past_the_session_cap(|| {
        let _s = tracing::info_span!("conversation", session.id = "x", tenant.id = "acme").entered();
        drop(
            tracing::info_span!("tool", gen_ai.operation.name = "execute_tool", gen_ai.tool.name = "acme_tool")
                .entered(),
        );
    });
    for key in [ADMIN, ACME] {
        let (status, body) = f.get(key, "/api/v1/token-usage/x/metrics?include_tools=true");
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["tools"][0]["tool"], "acme_tool", "{v}");
        assert_eq!(v["tools"][0]["invocations"], 1, "{v}");
    }
    assert_eq!(f.get(GLOBEX, "/api/v1/token-usage/x/metrics").0, StatusCode::NOT_FOUND);
    assert_eq!(f.get(ADMIN, "/api/v1/token-usage/nope/metrics").0, StatusCode::NOT_FOUND);
}

#[test]
fn a_filtered_query_takes_the_next_grain_its_buckets_keep_when_none_was_asked() {
    // Calls on 2026-03-11, read three days later: the ledger holds them in a day bucket. Unfiltered, that day's
    // hours come from the hourly totals; filtered (a tenant key, a model) only the buckets hold the figures:
    // the default grain was a 400 naming `aggregation`, a parameter the request never sent.
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 11, 9, 10, 0).unwrap());
    let meter = TokenMeter::builder().with_clock(clock.clone()).build();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(meter.layer()));
    tracing::dispatcher::with_default(&dispatch, || call_in("s", "acme"));
    clock.set(Utc.with_ymd_and_hms(2026, 3, 14, 12, 0, 0).unwrap());
    let config = HttpConfig::new().with_port(0).with_api_key(ADMIN).with_tenant_key(ACME, "acme");
    let server = serve(meter.clone(), config).expect("server");
    let f = Fixture { meter, server, client: Client::new() };
    let path = "/api/v1/analytics/tokens?range=day&to=2026-03-11";
    assert_eq!(f.ok(path)["group_by"], serde_json::json!({"time": "hour"}));
    for (key, path) in [(ACME, path.to_owned()), (ADMIN, format!("{path}&model=claude-haiku-4-5"))] {
        let (status, v) = f.get_as(Some(key), &path);
        assert_eq!(status, StatusCode::OK, "{path}: {v}");
        assert_eq!(v["group_by"], serde_json::json!({"time": "day"}), "{v}");
        assert_eq!(v["totals"]["calls"], 1, "{v}");
    }
    // Asked for, the grain is kept, and the 400 names it.
    let (status, v) = f.get_as(Some(ACME), &format!("{path}&aggregation=hourly"));
    assert_eq!((status, &v["param"]), (StatusCode::BAD_REQUEST, &serde_json::json!("aggregation")), "{v}");
}

#[test]
fn an_implied_start_never_leaves_most_of_the_range_behind() {
    // A `to` inside a coarse bucket: the next edge after `range` back can be that bucket's start, and the window
    // (ended at the bucket's end) held the hours after `to` and none of the day before it.
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 11, 9, 10, 0).unwrap());
    let meter = TokenMeter::builder().with_clock(clock.clone()).build();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(meter.layer()));
    tracing::dispatcher::with_default(&dispatch, || call_in("s", "acme"));
    clock.set(Utc.with_ymd_and_hms(2026, 3, 14, 12, 0, 0).unwrap());
    let server = serve(meter.clone(), HttpConfig::new().with_port(0).with_api_key(ADMIN)).expect("server");
    let f = Fixture { meter, server, client: Client::new() };
    let v = f.ok("/api/v1/analytics/tokens?range=day&to=2026-03-12T06:00:00Z");
    assert_eq!(v["totals"]["calls"], 1, "the day before 03-12 06:00 holds the call: {v}");
    assert_eq!(v["window"]["from"], "2026-03-11T00:00:00Z", "{v}");
    // Months later the call is in the March bucket: thirty days ending 04-01 are March, not April.
    clock.set(Utc.with_ymd_and_hms(2026, 9, 1, 12, 0, 0).unwrap());
    let v = f.ok("/api/v1/token-usage/summary?end_date=2026-04-01");
    assert_eq!(v["totals"]["calls"], 1, "{v}");
    assert_eq!(v["window"]["from"], "2026-03-01T00:00:00Z", "{v}");
}

#[test]
fn no_response_is_kept_by_a_shared_cache() {
    // A proxy in front of the API may store a response to a request with an `x-api-key` (HTTP singles out
    // `Authorization` only) and hand it to the next request for the URL: one tenant's figures to another.
    let f = fixture();
    for (key, path) in [
        (Some(ADMIN), "/api/v1/token-usage/summary"),
        (Some(ACME), "/api/v1/token-usage/summary"),
        (None, "/api/v1/token-usage/summary"),
        (Some(ADMIN), "/api/v1/token-usage/no-such-session"),
    ] {
        let mut req = f.client.get(f.url(path));
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        let resp = req.send().unwrap();
        assert_eq!(resp.headers()["cache-control"], "no-store", "{key:?} {path}: {}", resp.status());
        assert_eq!(resp.headers()["vary"], "authorization, x-api-key", "{key:?} {path}");
    }
}

#[test]
fn settings_that_would_expose_or_stop_the_server_are_refused_or_bounded() {
    // Without a key, `*` let any page in a browser on this machine read every tenant (loopback and `Host`
    // pass, and the allow header said yes).
    let err = serve(TokenMeter::builder().build(), HttpConfig::new().with_port(0).with_cors_origin("*"))
        .expect_err("keyless with every origin");
    assert!(err.to_string().contains("any web page"), "{err}");
    assert!(
        serve(TokenMeter::builder().build(), HttpConfig::new().with_port(0).with_cors_origin("*").with_api_key(ADMIN))
            .is_ok()
    );
    let err =
        serve(TokenMeter::builder().build(), HttpConfig::new().with_port(0).with_timeout(std::time::Duration::ZERO))
            .expect_err("a zero timeout");
    assert!(err.to_string().contains("zero timeout"), "{err}");
    // A `SessionTenants` given to the config but to no meter as a sink never learned a session: every tenant-bound
    // read of a session was 404, without a word.
    let tenants = SessionTenants::new(10);
    let config = HttpConfig::new().with_port(0).with_tenant_key(ACME, "acme").with_session_tenants(tenants.clone());
    let err = serve(TokenMeter::builder().build(), config).expect_err("a SessionTenants no meter records into");
    assert!(err.to_string().contains("not a sink of any meter"), "{err}");
    let meter = TokenMeter::builder().with_sink(tenants.clone()).build();
    let config = HttpConfig::new().with_port(0).with_tenant_key(ACME, "acme").with_session_tenants(tenants);
    serve(meter, config).expect("with the sink added").shutdown();
    // "No limit" as the largest value: the semaphore and the timers panicked on the server's thread, after
    // `serve` had returned Ok, and every connection was refused.
    let config = HttpConfig::new()
        .with_port(0)
        .with_api_key(ADMIN)
        .with_max_connections(usize::MAX)
        .with_header_read_timeout(std::time::Duration::MAX)
        .with_timeout(std::time::Duration::MAX);
    let server = serve(TokenMeter::builder().build(), config).expect("server");
    let url = format!("http://{}/api/v1/budgets", server.local_addr());
    let resp = Client::new().get(&url).header("x-api-key", ADMIN).send().expect("an answer");
    assert_eq!(resp.status(), StatusCode::OK);
    server.shutdown();
}

/// A page of `/api/v1/budgets` as `key` is served it, and its `link` header's next page (the path and query).
fn budget_page(f: &Fixture, key: &str, path: &str) -> (Value, Option<String>) {
    let resp = f.client.get(f.url(path)).header("x-api-key", key).send().expect("request");
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    let next = resp.headers().get("link").map(|l| {
        let l = l.to_str().expect("an ASCII link");
        let url = l.strip_prefix('<').and_then(|l| l.strip_suffix(">; rel=\"next\"")).expect("one next link");
        url.to_owned()
    });
    (serde_json::from_str(&resp.text().expect("a body")).expect("JSON"), next)
}

/// Every page from `path` on, following the `link` headers: the pages' lengths and their states, in order.
fn every_page(f: &Fixture, key: &str, path: &str) -> (Vec<usize>, Vec<Value>) {
    let (mut lengths, mut states, mut next) = (Vec::new(), Vec::new(), Some(path.to_owned()));
    while let Some(path) = next.take() {
        let (page, link) = budget_page(f, key, &path);
        let page = page.as_array().expect("an array").clone();
        assert!(link.is_none() || !page.is_empty(), "{path}: an empty page with a next one");
        lengths.push(page.len());
        states.extend(page);
        next = link;
        assert!(lengths.len() < 100, "the pages never end");
    }
    (lengths, states)
}

#[test]
fn budgets_are_served_in_pages_narrowed_to_a_budget_or_a_utilization() {
    let f = fixture();
    // A budget of each user on top of the fixture's, with users whose names a URL must encode (and one past it all).
    // A clock that stands still: a state's projection moves with the time it is read at.
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).unwrap());
    let meter = TokenMeter::builder()
        .with_clock(clock)
        .with_budget(Budget::new("all", BudgetLimit::tokens(1_000_000)))
        .with_budget(Budget::new("per user.daily", BudgetLimit::tokens(100)).with_scope(BudgetScope::each_user()))
        .with_budget(Budget::new("per-tenant", BudgetLimit::tokens(1_000)).with_scope(BudgetScope::each_tenant()))
        .build();
    let users: Vec<String> = (0..23)
        .map(|i| match i % 4 {
            0 => format!("user {i}"),
            1 => format!("ユーザー{i}"),
            2 => format!("u.{i}&x=1"),
            _ => format!("u{i}"),
        })
        .collect();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(meter.layer()), || {
        for (i, user) in users.iter().enumerate() {
            let tenant = if i % 2 == 0 { "acme" } else { "globex" };
            let _s = tracing::info_span!("conversation", user.id = user.as_str(), tenant.id = tenant).entered();
            // Spend from 10 to 120 tokens of a user's 100.
            let _c =
                tracing::info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 5 * i as u64)
                    .entered();
            drop(_c);
            let _c =
                tracing::info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 10u64).entered();
        }
    });
    let config = HttpConfig::new().with_port(0).with_api_key(ADMIN).with_tenant_key(ACME, "acme");
    let f = Fixture { server: serve(meter.clone(), config).expect("server"), meter, ..f };
    let all = json(&f.meter.budget_status());
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 1 + 23 + 2, "{all:?}");

    // Pages of 7, following the links, are the whole answer in its order; the last page has no link.
    let (lengths, states) = every_page(&f, ADMIN, "/api/v1/budgets?limit=7");
    assert_eq!(lengths, [7, 7, 7, 5]);
    assert_eq!(&states, all);
    // A page as long as what is left has no link; one state more than a page's length: a last page of one.
    assert_eq!(every_page(&f, ADMIN, "/api/v1/budgets?limit=26").0, [26]);
    assert_eq!(every_page(&f, ADMIN, "/api/v1/budgets?limit=25").0, [25, 1]);
    assert_eq!(every_page(&f, ADMIN, "/api/v1/budgets?limit=1").1, *all);

    // One budget; one budget by utilization, paged: the link keeps the other parameters (as they were spelt).
    let of = |name: &str, min: f64| -> Vec<Value> {
        all.iter().filter(|s| s["budget"] == name && s["utilization"].as_f64().unwrap() >= min).cloned().collect()
    };
    let (page, link) = budget_page(&f, ADMIN, "/api/v1/budgets?budget=per%20user.daily");
    assert_eq!((page.as_array().unwrap(), link), (&of("per user.daily", 0.0), None));
    let (lengths, states) = every_page(&f, ADMIN, "/api/v1/budgets?budget=per+user.daily&minUtilization=0.5&limit=4");
    let near = of("per user.daily", 0.5);
    assert!(near.len() > 8 && near.len() < 23, "{near:?}");
    assert_eq!(states, near);
    assert_eq!(lengths.iter().sum::<usize>(), near.len());
    let (_, link) = budget_page(&f, ADMIN, "/api/v1/budgets?budget=per+user.daily&minUtilization=0.5&limit=4");
    let link = link.unwrap();
    assert!(link.starts_with("/api/v1/budgets?budget=per+user.daily&minUtilization=0.5&limit=4&after="), "{link}");
    let over: Vec<Value> = all.iter().filter(|s| s["over_budget"] == true).cloned().collect();
    assert!(!over.is_empty());
    assert_eq!(f.ok("/api/v1/budgets?min_utilization=1"), Value::Array(over));

    // A tenant key pages through what it sees only: its tenant's state of the budget of each tenant.
    let (lengths, states) = every_page(&f, ACME, "/api/v1/budgets?limit=1");
    assert_eq!(lengths, [1]);
    assert_eq!(states, of("per-tenant", 0.0).into_iter().filter(|s| s["member"] == "acme").collect::<Vec<_>>());
    // A budget it does not see is as unknown as one that does not exist.
    let unknown = |key: &str, name: &str| {
        let (s, v) = f.get_as(Some(key), &format!("/api/v1/budgets?budget={name}"));
        assert_eq!((s, v["param"].as_str()), (StatusCode::NOT_FOUND, Some("budget")), "{name}: {v}");
        v["detail"].as_str().unwrap().replace(name, "NAME")
    };
    assert_eq!(unknown(ACME, "all"), unknown(ACME, "nope"));
    assert_eq!(unknown(ACME, "all"), "no budget `NAME`; the budgets: `per-tenant`");
    assert_eq!(unknown(ADMIN, "nope"), "no budget `NAME`; the budgets: `all`, `per user.daily`, `per-tenant`");

    // Bad values are a 400 naming the parameter.
    for (path, param) in [
        ("/api/v1/budgets?limit=0", "limit"),
        ("/api/v1/budgets?limit=10001", "limit"),
        ("/api/v1/budgets?limit=-1", "limit"),
        ("/api/v1/budgets?limit=ten", "limit"),
        ("/api/v1/budgets?min_utilization=-0.1", "min_utilization"),
        ("/api/v1/budgets?min_utilization=NaN", "min_utilization"),
        ("/api/v1/budgets?min_utilization=inf", "min_utilization"),
        ("/api/v1/budgets?after=zz", "after"),
        ("/api/v1/budgets?after=616", "after"),
        ("/api/v1/budgets?after=ff", "after"),
        // A cursor of a budget this meter does not have (`nope`), and one of a budget with no name.
        ("/api/v1/budgets?after=6e6f7065", "after"),
        ("/api/v1/budgets?after=.616c6c", "after"),
    ] {
        f.bad(path, param);
    }
    // A cursor names a position, not a state that must still exist: after a value no state has, the next ones.
    let after_u = "/api/v1/budgets?after=70657220757365722e6461696c79.75";
    let expected: Vec<Value> = all
        .iter()
        .skip(1)
        .filter(|s| s["budget"] != "per user.daily" || s["member"].as_str().unwrap() > "u")
        .cloned()
        .collect();
    assert_eq!(f.ok(after_u), Value::Array(expected));
}

#[test]
fn a_nested_routers_next_page_link_keeps_its_prefix() {
    let meter = TokenMeter::builder()
        .with_budget(Budget::new("a", BudgetLimit::tokens(10)))
        .with_budget(Budget::new("b", BudgetLimit::tokens(10)))
        .build();
    let app = axum::Router::new().nest("/usage", tokenmeter::http::router(meter, HttpConfig::new()));
    let addr = mount(app, true);
    let resp = Client::new().get(format!("http://{addr}/usage/api/v1/budgets?limit=1")).send().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // `61` is `a` in hex: the page ended after budget `a`.
    assert_eq!(resp.headers()["link"], "</usage/api/v1/budgets?limit=1&after=61>; rel=\"next\"");
    let resp = Client::new().get(format!("http://{addr}/usage/api/v1/budgets?limit=1&after=61")).send().unwrap();
    let page: Value = serde_json::from_str(&resp.text().unwrap()).unwrap();
    assert_eq!(page[0]["budget"], "b");
}
