//! The oracle's driver: reads call cases (JSONL, from oracle.py) on stdin, emits each into a tokenmeter layer as
//! tracing spans, `instrument` responses or an SSE stream, and writes every CallRecord the meter hands its sink, per
//! case, as JSONL on stdout; then the meter's totals on stderr. The expected figures are computed elsewhere
//! (oracle.py), from the written rules only.
//!
//! `oracle-driver [--prices FILE] [--journal DIR --readback FILE] < cases.jsonl`: FILE a price file merged over the
//! built-in book; the journal's records are read back into the readback file after shutdown.
//! `oracle-driver --ledger < plan.jsonl`: see ledger.rs.
//! `oracle-driver budgets < commands.jsonl`: see budgets.rs.
//! `oracle-driver --transcripts DIR`: the calls of the Claude Code transcripts under DIR, one JSON line each.
use serde_json::{Map, Value, json};
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use tokenmeter::CallRecord;
use tracing::field::Empty;
use tracing_subscriber::prelude::*;

mod budgets;
mod ledger;

fn u(m: &Map<String, Value>, k: &str) -> Option<u64> {
    m.get(k).and_then(Value::as_u64)
}
fn s<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

fn rec_out(r: &CallRecord) -> Value {
    let t = &r.tokens;
    let cost = r.cost.as_ref().map(|c| {
        json!({
            "total": c.total.picos().to_string(), "input": c.input.picos().to_string(),
            "cache_read": c.cache_read.picos().to_string(), "cache_write_5m": c.cache_write_5m.picos().to_string(),
            "cache_write_1h": c.cache_write_1h.picos().to_string(), "output": c.output.picos().to_string(),
            "web_search": c.web_search.picos().to_string(), "priced_as": &*c.priced_as,
            "long_context": c.long_context, "batch": c.batch, "fast": c.fast, "regional": c.regional,
        })
    });
    json!({
        "model": r.model.as_deref(), "service_tier": r.service_tier.as_deref(), "speed": r.speed.as_deref(),
        "inference_geo": r.inference_geo.as_deref(), "metered": r.metered,
        "tokens": [t.input, t.cache_read, t.cache_write_5m, t.cache_write_1h, t.output, t.reasoning],
        "web_search_requests": r.web_search_requests, "cost": cost,
    })
}

fn record_later(span: &tracing::Span, rec: &[Value]) {
    for pair in rec {
        let name = pair[0].as_str().unwrap();
        let v = &pair[1];
        let kind = pair.get(2).and_then(Value::as_str).unwrap_or("u");
        match v {
            Value::Number(n) => match kind {
                "i" => {
                    span.record(name, n.as_u64().unwrap() as i64);
                }
                "f" => {
                    span.record(name, n.as_f64().unwrap());
                }
                "neg" => {
                    span.record(name, -(n.as_u64().unwrap() as i64));
                }
                "s" => {
                    span.record(name, n.to_string().as_str());
                }
                _ => {
                    span.record(name, n.as_u64().unwrap());
                }
            },
            Value::String(t) => {
                span.record(name, t.as_str());
            }
            _ => panic!("bad value {v}"),
        }
    }
}

/// Shape "semconv": semconv and OpenAI-style names.
fn semconv_span(c: &Map<String, Value>) -> tracing::Span {
    tracing::info_span!(
        "chat",
        gen_ai.usage.input_tokens = u(c, "gen_ai.usage.input_tokens"),
        gen_ai.usage.prompt_tokens = u(c, "gen_ai.usage.prompt_tokens"),
        prompt_tokens = u(c, "prompt_tokens"),
        gen_ai.usage.output_tokens = u(c, "gen_ai.usage.output_tokens"),
        gen_ai.usage.completion_tokens = u(c, "gen_ai.usage.completion_tokens"),
        completion_tokens = u(c, "completion_tokens"),
        gen_ai.usage.cache_read.input_tokens = u(c, "gen_ai.usage.cache_read.input_tokens"),
        prompt_tokens_details.cached_tokens = u(c, "prompt_tokens_details.cached_tokens"),
        gen_ai.usage.cache_read_input_tokens = u(c, "gen_ai.usage.cache_read_input_tokens"),
        gen_ai.usage.input_tokens.cached = u(c, "gen_ai.usage.input_tokens.cached"),
        gen_ai.usage.cached_tokens = u(c, "gen_ai.usage.cached_tokens"),
        gen_ai.usage.cache_creation.input_tokens = u(c, "gen_ai.usage.cache_creation.input_tokens"),
        gen_ai.usage.cache_creation_input_tokens = u(c, "gen_ai.usage.cache_creation_input_tokens"),
        gen_ai.usage.input_tokens.cache_write = u(c, "gen_ai.usage.input_tokens.cache_write"),
        gen_ai.usage.reasoning.output_tokens = u(c, "gen_ai.usage.reasoning.output_tokens"),
        completion_tokens_details.reasoning_tokens = u(c, "completion_tokens_details.reasoning_tokens"),
        gen_ai.usage.reasoning_tokens = u(c, "gen_ai.usage.reasoning_tokens"),
        gen_ai.response.model = s(c, "gen_ai.response.model"),
        gen_ai.request.model = s(c, "gen_ai.request.model"),
        model = s(c, "model"),
        gen_ai.provider.name = s(c, "gen_ai.provider.name"),
        gen_ai.operation.name = s(c, "gen_ai.operation.name"),
        service_tier = s(c, "service_tier"),
        speed = s(c, "speed"),
        inference_geo = s(c, "inference_geo"),
        server.address = s(c, "server.address"),
        server_tool_use.web_search_requests = u(c, "server_tool_use.web_search_requests"),
        gen_ai.response.id = s(c, "gen_ai.response.id"),
    )
}

/// Shape "raw": Anthropic's usage names, with and without `usage.`, and the semconv ones for mixing.
fn raw_span(c: &Map<String, Value>) -> tracing::Span {
    tracing::info_span!(
        "claude",
        input_tokens = u(c, "input_tokens"),
        usage.input_tokens = u(c, "usage.input_tokens"),
        output_tokens = u(c, "output_tokens"),
        usage.output_tokens = u(c, "usage.output_tokens"),
        cache_read_input_tokens = u(c, "cache_read_input_tokens"),
        usage.cache_read_input_tokens = u(c, "usage.cache_read_input_tokens"),
        cache_creation_input_tokens = u(c, "cache_creation_input_tokens"),
        usage.cache_creation_input_tokens = u(c, "usage.cache_creation_input_tokens"),
        cache_creation.ephemeral_5m_input_tokens = u(c, "cache_creation.ephemeral_5m_input_tokens"),
        cache_creation.ephemeral_1h_input_tokens = u(c, "cache_creation.ephemeral_1h_input_tokens"),
        usage.cache_creation.ephemeral_5m_input_tokens = u(c, "usage.cache_creation.ephemeral_5m_input_tokens"),
        usage.cache_creation.ephemeral_1h_input_tokens = u(c, "usage.cache_creation.ephemeral_1h_input_tokens"),
        output_tokens_details.thinking_tokens = u(c, "output_tokens_details.thinking_tokens"),
        server_tool_use.web_search_requests = u(c, "server_tool_use.web_search_requests"),
        usage.server_tool_use.web_search_requests = u(c, "usage.server_tool_use.web_search_requests"),
        gen_ai.response.model = s(c, "gen_ai.response.model"),
        gen_ai.request.model = s(c, "gen_ai.request.model"),
        model = s(c, "model"),
        gen_ai.system = s(c, "gen_ai.system"),
        service_tier = s(c, "service_tier"),
        usage.service_tier = s(c, "usage.service_tier"),
        speed = s(c, "speed"),
        usage.speed = s(c, "usage.speed"),
        inference_geo = s(c, "inference_geo"),
        usage.inference_geo = s(c, "usage.inference_geo"),
        server.address = s(c, "server.address"),
        gen_ai.response.id = s(c, "gen_ai.response.id"),
        gen_ai.usage.input_tokens = u(c, "gen_ai.usage.input_tokens"),
        gen_ai.usage.cache_read.input_tokens = u(c, "gen_ai.usage.cache_read.input_tokens"),
        gen_ai.usage.cache_creation.input_tokens = u(c, "gen_ai.usage.cache_creation.input_tokens"),
        request_id = Empty,
    )
}

/// Streamed usage: cumulative events inside the call span.
fn stream_event(e: &Map<String, Value>) {
    tracing::info!(
        input_tokens = u(e, "input_tokens"),
        cache_read_input_tokens = u(e, "cache_read_input_tokens"),
        cache_creation_input_tokens = u(e, "cache_creation_input_tokens"),
        cache_creation.ephemeral_5m_input_tokens = u(e, "cache_creation.ephemeral_5m_input_tokens"),
        cache_creation.ephemeral_1h_input_tokens = u(e, "cache_creation.ephemeral_1h_input_tokens"),
        output_tokens = u(e, "output_tokens"),
        server_tool_use.web_search_requests = u(e, "server_tool_use.web_search_requests"),
    );
}

macro_rules! rig_span {
    ($target:literal, $c:expr) => {{
        let c = $c;
        tracing::info_span!(
            target: $target,
            "chat",
            gen_ai.usage.input_tokens = u(c, "gen_ai.usage.input_tokens"),
            gen_ai.usage.output_tokens = u(c, "gen_ai.usage.output_tokens"),
            gen_ai.usage.cache_read.input_tokens = u(c, "gen_ai.usage.cache_read.input_tokens"),
            gen_ai.usage.cached_tokens = u(c, "gen_ai.usage.cached_tokens"),
            gen_ai.usage.cache_creation.input_tokens = u(c, "gen_ai.usage.cache_creation.input_tokens"),
            cache_creation.ephemeral_5m_input_tokens = u(c, "cache_creation.ephemeral_5m_input_tokens"),
            cache_creation.ephemeral_1h_input_tokens = u(c, "cache_creation.ephemeral_1h_input_tokens"),
            input_tokens = u(c, "input_tokens"),
            gen_ai.provider.name = s(c, "gen_ai.provider.name"),
            gen_ai.system = s(c, "gen_ai.system"),
            gen_ai.request.model = s(c, "gen_ai.request.model"),
            gen_ai.response.model = s(c, "gen_ai.response.model"),
            service_tier = s(c, "service_tier"),
        )
    }};
}

fn rig_span(target: &str, c: &Map<String, Value>) -> tracing::Span {
    match target {
        "rig" => rig_span!("rig", c),
        "rig::providers::anthropic" => rig_span!("rig::providers::anthropic", c),
        "rigging::x" => rig_span!("rigging::x", c),
        "genai::chat" => rig_span!("genai::chat", c),
        "genaix" => rig_span!("genaix", c),
        "app::llm" => rig_span!("app::llm", c),
        t => panic!("target {t}"),
    }
}

/// The value after `--name` on the command line.
fn option(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .map(|i| args.get(i + 1).unwrap_or_else(|| panic!("{name} needs a value")).clone())
}

fn transcripts(dir: &str) {
    let files = tokenmeter::transcripts::discover(std::path::Path::new(dir)).expect("discover");
    let load = tokenmeter::transcripts::TranscriptLoader::new(tokenmeter::PriceBook::builtin()).load(&files);
    for c in &load.calls {
        let mut v = rec_out(c);
        v["request_id"] = json!(c.request_id.as_deref());
        println!("{v}");
    }
    eprintln!("{:?}", load.stats);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--ledger") {
        ledger::run();
        return;
    }
    if args.get(1).map(String::as_str) == Some("budgets") {
        budgets::run();
        return;
    }
    if let Some(dir) = option(&args, "--transcripts") {
        transcripts(&dir);
        return;
    }
    use tokenmeter::capture::CaptureRule;
    let mut builder = tokenmeter::TokenMeter::builder()
        .with_capture_rule(CaptureRule::new().target("rig").provider("anthropic").input_is_uncached())
        .with_capture_rule(CaptureRule::new().target("genai").cache_writes_are_1h());
    let journal_dir = option(&args, "--journal");
    if let Some(dir) = &journal_dir {
        builder = builder.with_journal(tokenmeter::JournalConfig::new(dir));
    }
    if let Some(file) = option(&args, "--prices") {
        builder = builder.with_prices_file(&file).expect("price file");
    }
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = seen.clone();
    let meter = builder.on_call(move |r| sink.lock().unwrap().push(rec_out(r))).build();
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    let out = std::io::stdout();
    let mut out = out.lock();
    tracing::subscriber::with_default(subscriber, || {
        for line in std::io::stdin().lock().lines() {
            let line = line.unwrap();
            if line.trim().is_empty() {
                continue;
            }
            let case: Value = serde_json::from_str(&line).unwrap();
            let empty = Map::new();
            let create = case.get("create").and_then(Value::as_object).unwrap_or(&empty);
            let rec = case.get("record").and_then(Value::as_array).cloned().unwrap_or_default();
            match case["shape"].as_str().unwrap() {
                "semconv" | "raw" => {
                    let span = if case["shape"] == "semconv" { semconv_span(create) } else { raw_span(create) };
                    {
                        let _g = span.enter();
                        for e in case.get("events").and_then(Value::as_array).into_iter().flatten() {
                            stream_event(e.as_object().unwrap());
                        }
                    }
                    record_later(&span, &rec);
                    // shared span: several calls, each begun by its own response id, then its usage
                    for call in case.get("calls").and_then(Value::as_array).into_iter().flatten() {
                        record_later(&span, call.as_array().unwrap());
                    }
                    drop(span);
                }
                "rig" => {
                    let span = rig_span(case["target"].as_str().unwrap(), create);
                    record_later(&span, &rec);
                    drop(span);
                }
                "sse" => {
                    let model = case["request_model"].as_str().unwrap();
                    let span = tokenmeter::instrument::claude_span("chat", model, true);
                    let mut acc = tokenmeter::instrument::StreamAccumulator::new(&span);
                    let body = case["body"].as_str().unwrap().as_bytes();
                    // feed in chunks of the given size
                    let n = case["chunk"].as_u64().unwrap_or(1 << 20) as usize;
                    for chunk in body.chunks(n.max(1)) {
                        acc.push_bytes(chunk);
                    }
                    let _ = acc.finish();
                    drop(span);
                }
                "response" => {
                    let model = case["request_model"].as_str().unwrap();
                    let span = tokenmeter::instrument::claude_span("chat", model, false);
                    let msg: tokenmeter::instrument::MessageResponse =
                        serde_json::from_value(case["response"].clone()).unwrap();
                    tokenmeter::instrument::record_response(&span, &msg);
                    drop(span);
                }
                other => panic!("shape {other}"),
            }
            let recs: Vec<Value> = std::mem::take(&mut *seen.lock().unwrap());
            writeln!(out, "{}", json!({"id": case["id"], "records": recs})).unwrap();
        }
    });
    let stats = meter.capture_stats();
    let t = meter.total_usage();
    let tokens =
        [t.tokens.input, t.tokens.cache_read, t.tokens.cache_write_5m, t.tokens.cache_write_1h, t.tokens.output];
    let totals = json!({
        "total_cost": t.cost.picos().to_string(), "web_search_cost": t.web_search_cost.picos().to_string(),
        "calls": t.calls, "unpriced": t.unpriced_calls, "web_search_requests": t.web_search_requests, "tokens": tokens,
    });
    eprintln!("{totals}");
    eprintln!("{stats:?}");
    if let Some(dir) = journal_dir {
        meter.shutdown().expect("shutdown");
        let readback = option(&args, "--readback").expect("--journal needs --readback FILE");
        let mut f = std::io::BufWriter::new(std::fs::File::create(readback).unwrap());
        let report = tokenmeter::journal::read(&dir, |c| writeln!(f, "{}", rec_out(&c)).unwrap()).unwrap();
        eprintln!("{report:?}");
    }
}
