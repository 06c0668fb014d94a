//! The ledger oracle's driver (`oracle-driver --ledger`, read by ledger_test.py): reads a plan (JSONL on stdin) of
//! clock moves, task spans, LLM call spans under dimension spans, and report queries; drives a meter on a
//! `ManualClock` and writes each query's answer (the report serialized as JSON, or its error) as a JSON line. The
//! expected figures are computed in ledger_test.py from README's written rules only.
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use tokenmeter::ledger::{Dimension, GroupBy, LedgerConfig, Query, Window};
use tokenmeter::{ManualClock, TokenMeter};
use tracing_subscriber::prelude::*;

fn at(v: &Value) -> chrono::DateTime<chrono::Utc> {
    let ms = (v.as_f64().unwrap() * 1000.0).round() as i64;
    chrono::DateTime::from_timestamp_millis(ms).unwrap()
}
fn st<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}
fn un(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(Value::as_u64)
}
fn win(v: &Value) -> Window {
    v["window"].as_str().unwrap().parse().unwrap()
}
fn dim(v: &Value, k: &str) -> Dimension {
    v[k].as_str().unwrap().parse().unwrap()
}
fn ans<T: serde::Serialize>(r: Result<T, tokenmeter::QueryError>) -> Value {
    match r {
        Ok(t) => json!({ "ok": serde_json::to_value(t).unwrap() }),
        Err(e) => json!({ "err": format!("{e:?}") }),
    }
}

fn call(c: &Value, clock: &ManualClock) {
    let d = c.get("dims").cloned().unwrap_or(json!({}));
    let ctx = tracing::info_span!(
        "ctx",
        session.id = st(&d, "session"),
        user.id = st(&d, "user"),
        tenant.id = st(&d, "tenant"),
        project = st(&d, "project"),
        agent = st(&d, "agent"),
        operation = st(&d, "operation"),
    );
    let _g = ctx.enter();
    clock.set(at(&c["at"]));
    let ttft = c.get("ttft").and_then(|v| v.as_f64());
    let span = tracing::info_span!(
        "chat",
        gen_ai.operation.name = "chat",
        gen_ai.request.model = st(c, "model"),
        gen_ai.provider.name = st(c, "provider"),
        input_tokens = un(c, "in"),
        cache_read_input_tokens = un(c, "cr"),
        cache_creation.ephemeral_5m_input_tokens = un(c, "cw5"),
        cache_creation.ephemeral_1h_input_tokens = un(c, "cw1"),
        output_tokens = un(c, "out"),
        gen_ai.response.time_to_first_chunk = ttft,
        error.type = st(c, "error"),
    );
    clock.advance(chrono::Duration::milliseconds(un(c, "dur_ms").unwrap_or(0) as i64));
    drop(span);
}

pub fn run() {
    let mut lines = std::io::stdin().lock().lines();
    let start: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let clock = ManualClock::new(at(&start["at"]));
    let tz: tokenmeter::budget::Tz = start["tz"].as_str().unwrap().parse().unwrap();
    let mut cfg = LedgerConfig::default();
    if start.get("unbounded").and_then(Value::as_bool) == Some(true) {
        cfg = cfg.with_unbounded_breakdowns();
    }
    let meter = TokenMeter::builder().with_clock(clock.clone()).with_ledger_config(cfg).with_time_zone(tz).build();
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut tasks: Vec<tracing::span::EnteredSpan> = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        for line in lines {
            let line = line.unwrap();
            if line.trim().is_empty() {
                continue;
            }
            let c: Value = serde_json::from_str(&line).unwrap();
            match c["op"].as_str().unwrap() {
                "clock" => clock.set(at(&c["at"])),
                "call" => call(&c, &clock),
                "task_open" => {
                    clock.set(at(&c["at"]));
                    tasks.push(
                        tracing::info_span!(
                            "task",
                            task = st(&c, "name").unwrap(),
                            otel.status_code = tracing::field::Empty
                        )
                        .entered(),
                    );
                }
                "task_close" => {
                    clock.set(at(&c["at"]));
                    let t = tasks.pop().unwrap();
                    if c.get("error").and_then(Value::as_bool) == Some(true) {
                        t.record("otel.status_code", "ERROR");
                    }
                    drop(t);
                }
                "query" => {
                    let m = &meter;
                    let r = match c["kind"].as_str().unwrap() {
                        "query" => {
                            let mut q = Query::new(win(&c));
                            for f in c.get("filters").and_then(Value::as_array).into_iter().flatten() {
                                let (k, v) = f.as_str().unwrap().split_once('=').unwrap();
                                q = q.filter(k.parse().unwrap(), v);
                            }
                            if let Some(g) = st(&c, "group_by") {
                                q = q.group_by(g.parse::<GroupBy>().unwrap());
                            }
                            ans(m.query(&q))
                        }
                        "usage_summary" => ans(m.usage_summary(win(&c))),
                        "efficiency_report" => ans(m.efficiency_report(win(&c), dim(&c, "dim"))),
                        "cache_report" => ans(m.cache_report(win(&c))),
                        "breakdown_tree" => ans(m.breakdown_tree(win(&c), dim(&c, "parent"), dim(&c, "child"))),
                        "time_of_day" => ans(m.time_of_day(win(&c))),
                        "compare_periods" => ans(m.compare_periods(win(&c))),
                        "compare_values" => {
                            ans(m.compare_values(win(&c), dim(&c, "dim"), st(&c, "a").unwrap(), st(&c, "b").unwrap()))
                        }
                        "ledger_stats" => json!({ "ok": serde_json::to_value(m.ledger_stats()).unwrap() }),
                        k => panic!("query kind {k}"),
                    };
                    writeln!(out, "{}", json!({ "id": c["id"], "r": r })).unwrap();
                }
                op => panic!("op {op}"),
            }
        }
    });
}
