//! The budget oracle's driver (`oracle-driver budgets`, run by budget_test.py): reads commands (JSONL) on stdin,
//! drives a TokenMeter on a ManualClock through them, and writes one JSON line per command on stdout: the alerts
//! its callback heard, budget states, check results. The expected figures are computed in budget_test.py, from the
//! README's written rules only.
//!
//! Commands (`op`): `build` {budgets: [spec], budgets_file, journal, t}; `call` {t, dims, model, input, output,
//! cache_read}; `status` {t}; `status_for` {t, scope}; `check` {t, scope, model}; `shutdown`.
use serde_json::{Map, Value, json};
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use tokenmeter::budget::{
    AlertKind, Budget, BudgetAction, BudgetAlert, BudgetAmount, BudgetLimit, BudgetPeriod, BudgetScope, BudgetState,
    RequestScope, Tz,
};
use tokenmeter::{ManualClock, TokenMeter};
use tracing_subscriber::prelude::*;

fn t_of(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().expect("t")).expect("rfc3339").with_timezone(&chrono::Utc)
}

fn amount(a: &BudgetAmount) -> Value {
    match a {
        BudgetAmount::Usd(m) => json!({"usd": m.picos().to_string()}),
        BudgetAmount::Tokens(t) => json!({"tokens": t.to_string()}),
        #[allow(unreachable_patterns)]
        _ => json!(null),
    }
}

fn ts(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn alert_out(a: &BudgetAlert) -> Value {
    let kind = match a.kind {
        AlertKind::ThresholdCrossed { percent } => json!(percent),
        AlertKind::ProjectedOverrun => json!("projected"),
        #[allow(unreachable_patterns)]
        _ => json!("other"),
    };
    json!({
        "kind": kind, "budget": &*a.budget, "member": a.member.as_deref(), "scope": a.scope.to_string(),
        "period": a.period.to_string(), "spent": amount(&a.spent), "limit": amount(&a.limit),
        "projected": a.projected.as_ref().map(amount), "period_start": ts(&a.period_start),
        "resets_at": ts(&a.resets_at), "at": ts(&a.at), "unpriced": a.unpriced_calls,
    })
}

fn state_out(s: &BudgetState) -> Value {
    json!({
        "budget": &*s.budget, "member": s.member.as_deref(), "scope": s.scope.to_string(),
        "period": s.period.to_string(), "period_start": ts(&s.period_start), "resets_at": ts(&s.resets_at),
        "spent": amount(&s.spent), "limit": amount(&s.limit), "remaining": amount(&s.remaining),
        "projected": s.projected.as_ref().map(amount), "over": s.over_budget,
        "time_to_limit": s.time_to_limit.map(|d| d.as_secs_f64()),
        "crossed": s.thresholds_crossed, "calls": s.calls, "unpriced": s.unpriced_calls,
    })
}

fn scope_of(v: &Value) -> BudgetScope {
    let m = v.as_object().expect("scope");
    if m.is_empty() {
        return BudgetScope::everything();
    }
    if let Some(d) = m.get("each").and_then(Value::as_str) {
        return BudgetScope::each(d.to_string());
    }
    if let Some(model) = m.get("model").and_then(Value::as_str) {
        return BudgetScope::model(model);
    }
    let dim = m["dim"].as_str().unwrap();
    let val = m["value"].as_str().unwrap();
    match dim {
        "user" => BudgetScope::user(val.to_string()),
        "tenant" => BudgetScope::tenant(val.to_string()),
        "project" => BudgetScope::project(val.to_string()),
        "agent" => BudgetScope::agent(val.to_string()),
        d => BudgetScope::dimension(d.to_string(), val.to_string()),
    }
}

fn budget_of(b: &Map<String, Value>) -> Budget {
    let limit = if let Some(m) = b.get("limit_micros").and_then(Value::as_u64) {
        BudgetLimit::usd(m as f64 / 1e6).expect("usd limit")
    } else {
        BudgetLimit::tokens(b["limit_tokens"].as_u64().unwrap())
    };
    let mut bud = Budget::new(b["name"].as_str().unwrap().to_string(), limit).with_scope(scope_of(&b["scope"]));
    let period = &b["period"];
    bud = bud.with_period(match period.as_str() {
        Some("day") => BudgetPeriod::Day,
        Some("week") => BudgetPeriod::Week,
        Some("month") => BudgetPeriod::Month,
        _ => BudgetPeriod::Rolling(std::time::Duration::from_secs(period["rolling"].as_u64().unwrap())),
    });
    if let Some(tz) = b.get("tz").and_then(Value::as_str) {
        bud = bud.with_time_zone(tz.parse::<Tz>().expect("tz"));
    }
    if let Some(ws) = b.get("week_start").and_then(Value::as_str) {
        bud = bud.with_week_start(ws.parse::<chrono::Weekday>().expect("weekday"));
    }
    if let Some(th) = b.get("thresholds").and_then(Value::as_array) {
        bud = bud.with_thresholds(th.iter().map(|x| x.as_u64().unwrap() as u32));
    }
    if b.get("action").and_then(Value::as_str) == Some("block") {
        bud = bud.with_action(BudgetAction::Block);
    }
    bud
}

fn request_scope(v: &Value) -> RequestScope {
    let mut r = RequestScope::new();
    for (k, val) in v.as_object().into_iter().flatten() {
        let val = val.as_str().unwrap().to_string();
        r = match k.as_str() {
            "user" => r.with_user(val),
            "tenant" => r.with_tenant(val),
            "project" => r.with_project(val),
            "agent" => r.with_agent(val),
            "session" => r.with_session(val),
            "model" => r.with_model(&val),
            d => r.with_dimension(d.to_string(), val),
        };
    }
    r
}

struct Live {
    meter: TokenMeter,
    _guard: tracing::subscriber::DefaultGuard,
}

pub fn run() {
    let clock = ManualClock::new(chrono::DateTime::from_timestamp(0, 0).unwrap());
    let heard: Arc<Mutex<Vec<Value>>> = Arc::default();
    let mut live: Option<Live> = None;
    let out = std::io::stdout();
    let mut out = out.lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        if line.trim().is_empty() {
            continue;
        }
        let cmd: Value = serde_json::from_str(&line).unwrap();
        if let Some(t) = cmd.get("t") {
            clock.set(t_of(t));
        }
        let mut res = json!({});
        match cmd["op"].as_str().unwrap() {
            "build" => {
                if let Some(l) = live.take() {
                    let _ = l.meter.shutdown();
                    drop(l);
                }
                let sink = heard.clone();
                let mut b = TokenMeter::builder()
                    .with_clock(clock.clone())
                    .with_budget_alert_callback(move |a| sink.lock().unwrap().push(alert_out(a)));
                for spec in cmd.get("budgets").and_then(Value::as_array).into_iter().flatten() {
                    b = b.with_budget(budget_of(spec.as_object().unwrap()));
                }
                if let Some(f) = cmd.get("budgets_file").and_then(Value::as_str) {
                    b = b.with_budgets_file(f).expect("budgets file");
                }
                if let Some(d) = cmd.get("journal").and_then(Value::as_str) {
                    b = b.with_journal(tokenmeter::JournalConfig::new(d));
                }
                let meter = b.try_build().expect("build");
                let subscriber = tracing_subscriber::registry().with(meter.layer());
                let guard = tracing::subscriber::set_default(subscriber);
                live = Some(Live { meter, _guard: guard });
            }
            "call" => {
                let d = cmd["dims"].as_object().cloned().unwrap_or_default();
                let g = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
                let (user, tenant, project, agent, session) =
                    (g("user"), g("tenant"), g("project"), g("agent"), g("session"));
                let parent = tracing::info_span!(
                    "request",
                    user.id = user.as_deref(),
                    tenant.id = tenant.as_deref(),
                    project = project.as_deref(),
                    agent = agent.as_deref(),
                    session.id = session.as_deref(),
                );
                let _p = parent.enter();
                let uncached = cmd["input"].as_u64().unwrap();
                let read = cmd["cache_read"].as_u64().unwrap_or(0);
                let span = tracing::info_span!(
                    "chat",
                    gen_ai.operation.name = "chat",
                    gen_ai.provider.name = "anthropic",
                    gen_ai.request.model = cmd["model"].as_str().unwrap(),
                    gen_ai.usage.input_tokens = uncached + read,
                    gen_ai.usage.cache_read.input_tokens = read,
                    gen_ai.usage.output_tokens = cmd["output"].as_u64().unwrap(),
                );
                drop(span);
            }
            "status" => {
                let st = live.as_ref().unwrap().meter.budget_status();
                res["states"] = Value::Array(st.iter().map(state_out).collect());
            }
            "status_for" => {
                let st = live.as_ref().unwrap().meter.budget_status_for(&request_scope(&cmd["scope"]));
                res["states"] = Value::Array(st.iter().map(state_out).collect());
            }
            "check" => {
                res["check"] = match live.as_ref().unwrap().meter.check_budget(&request_scope(&cmd["scope"])) {
                    Ok(()) => json!("ok"),
                    Err(e) => json!({"budget": e.budget(), "scope": e.scope().to_string(), "spent": amount(&e.spent()),
                        "limit": amount(&e.limit()), "resets_at": ts(&e.resets_at())}),
                };
            }
            "shutdown" => {
                if let Some(l) = live.take() {
                    l.meter.shutdown().expect("shutdown");
                    drop(l);
                }
            }
            other => panic!("op {other}"),
        }
        res["alerts"] = Value::Array(std::mem::take(&mut *heard.lock().unwrap()));
        writeln!(out, "{res}").unwrap();
    }
    if let Some(l) = live.take() {
        let _ = l.meter.shutdown();
    }
}
