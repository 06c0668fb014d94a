//! `tokenmeter mcp`: the built binary spoken to as an MCP client would, in raw JSON-RPC lines over its stdin
//! and stdout: the handshake, the tool's schemas, every operation's figures against the library's own
//! reports over the same records, bad arguments as tool errors, and a journal that grows between calls.
#![cfg(feature = "cli")]

use crate::cli_support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokenmeter::ledger::{Dimension, GroupBy, Ledger, LedgerConfig, Query, TimeGrain, Window};
use tokenmeter::{CallRecord, ManualClock, PriceBook};

use cli_support::close;

/// The time the server and the library treat as now.
const NOW: &str = "2025-10-15T12:00:00Z";

/// How long any one answer may take.
const TIMEOUT: Duration = Duration::from_secs(60);

// === fixture ===

/// Calls spread so that every timeframe holds a different set: the last hour, 6 hours, 24 hours, 7 days (and
/// the 7 days before, for compare), 30 days, and older. A premium model on a small call (right-sizing), a
/// batch operation at standard rates (batch API), a failed call, an unpriced model.
fn records() -> Vec<CallRecord> {
    #[allow(clippy::too_many_arguments)]
    fn call(
        ts: &str,
        model: &str,
        agent: &str,
        operation: &str,
        input: u64,
        output: u64,
        cache_read: u64,
        cache_write_5m: u64,
        failed: bool,
    ) -> Value {
        json!({
            "timestamp": ts,
            "duration_us": 1_500_000,
            "model": model,
            "provider": "anthropic",
            "tokens": {"input": input, "cache_read": cache_read, "cache_write_5m": cache_write_5m,
                       "cache_write_1h": 0, "output": output, "reasoning": 0},
            "metered": true,
            "outcome": if failed { json!({"status": "error", "error_type": "overloaded_error"}) }
                       else { json!({"status": "ok"}) },
            "dimensions": {"agent": agent, "operation": operation, "project": "helpdesk"}
        })
    }
    let values = [
        call("2025-10-15T11:40:00Z", "claude-sonnet-4-5", "support-bot", "chat", 3_000, 800, 20_000, 0, false),
        call("2025-10-15T09:10:00Z", "claude-opus-4-1", "support-bot", "classify", 300, 50, 0, 0, false),
        call("2025-10-15T01:00:00Z", "claude-sonnet-4-5", "reporter", "batch", 50_000, 4_000, 0, 0, false),
        call("2025-10-14T20:00:00Z", "claude-haiku-4-5", "reporter", "chat", 2_000, 300, 0, 0, true),
        call("2025-10-14T18:30:00Z", "claude-fable-9", "reporter", "chat", 500, 100, 0, 0, false),
        call("2025-10-12T10:00:00Z", "claude-sonnet-4-5", "support-bot", "chat", 10_000, 2_000, 0, 5_000, false),
        call("2025-10-08T12:00:00Z", "claude-sonnet-4-5", "support-bot", "chat", 8_000, 1_000, 0, 0, false),
        call("2025-09-20T10:00:00Z", "claude-opus-4-1", "reporter", "batch", 20_000, 3_000, 0, 0, false),
        call("2025-08-01T10:00:00Z", "claude-sonnet-4-5", "support-bot", "chat", 1_000, 100, 0, 0, false),
    ];
    let prices = PriceBook::builtin();
    let mut recs: Vec<CallRecord> =
        values.into_iter().map(|v| serde_json::from_value(v).expect("a call record")).collect();
    // Priced as the meter prices them when it records, but for the 2025-10-12 call: a record without a cost
    // is priced when read.
    for r in recs.iter_mut().filter(|r| r.timestamp.format("%m-%d").to_string() != "10-12") {
        r.cost = r.model.as_deref().and_then(|m| prices.resolve(m)).map(|p| p.cost(&r.tokens, None, None));
    }
    recs
}

fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

/// The library's ledger over the same records, at the same time, with the same prices.
fn ledger() -> Ledger {
    let mut recs = records();
    recs.sort_by_key(|r| r.timestamp);
    let ledger = Ledger::new(LedgerConfig::default(), Arc::new(ManualClock::new(now())), PriceBook::builtin());
    for r in &recs {
        ledger.ingest_call(r);
    }
    ledger
}

/// `x` as the server's JSON text carries it: serialized, then parsed as the answers are (serde_json's float
/// parsing is not always the exact inverse of its printing, so both sides take the same path).
fn v<T: serde::Serialize>(x: T) -> Value {
    serde_json::from_str(&serde_json::to_string(&x).unwrap()).unwrap()
}

/// Writes the records as JSON Lines in `dir`; returns the file's path.
fn write_records(dir: &Path) -> String {
    let path = dir.join("records.jsonl");
    let mut text = String::new();
    for r in records() {
        text.push_str(&serde_json::to_string(&r).unwrap());
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

const BUDGETS: &str = r#"
[budgets.monthly]
limit_usd = 5.0
period = "month"

[budgets.reporter]
limit_usd = 0.05
period = "month"
scope = { agent = "reporter" }
"#;

// === the client ===

/// A running `tokenmeter … mcp` and the lines it wrote to stdout.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    next_id: u64,
    _home: tempfile::TempDir,
}

impl Client {
    /// Starts `tokenmeter <args…>` (which include `mcp`) with a clean environment.
    fn start(args: &[&str]) -> Client {
        let home = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tokenmeter"))
            .args(args)
            .env_remove("CLAUDE_CONFIG_DIR")
            .env_remove("TOKENMETER_JOURNAL")
            .env_remove("XDG_DATA_HOME")
            .env("HOME", home.path())
            .env("NO_COLOR", "1")
            .env("TZ", "UTC")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tokenmeter mcp");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Client { child, stdin, lines, next_id: 1, _home: home }
    }

    /// Starts the server over the fixture records at `now` (`after`: the arguments after `mcp`) and
    /// initializes.
    fn over_records(dir: &Path, now: &str, after: &[&str]) -> Client {
        let file = write_records(dir);
        let mut args = vec!["--records", file.as_str(), "--now", now, "mcp"];
        args.extend_from_slice(after);
        let mut c = Client::start(&args);
        c.initialize("2025-06-18");
        c
    }

    fn send(&mut self, msg: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{msg}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next line from stdout: every one must be a JSON-RPC 2.0 message.
    fn receive(&mut self) -> Value {
        let line = match self.lines.recv_timeout(TIMEOUT) {
            Ok(l) => l,
            Err(RecvTimeoutError::Timeout) => panic!("no answer from the server within {TIMEOUT:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the server closed stdout"),
        };
        let msg: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"));
        assert_eq!(msg["jsonrpc"], "2.0", "not a JSON-RPC 2.0 message: {line}");
        msg
    }

    /// Sends a request and returns its response (the whole message), skipping notifications.
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let msg = self.receive();
            if msg.get("id") == Some(&json!(id)) {
                return msg;
            }
            assert!(msg.get("method").is_some(), "a response to no request of ours: {msg}");
        }
    }

    fn initialize(&mut self, version: &str) -> Value {
        let r = self.request(
            "initialize",
            json!({"protocolVersion": version, "capabilities": {},
                   "clientInfo": {"name": "cli_mcp", "version": "1.0"}}),
        );
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        r
    }

    /// Calls `token_usage`; returns the call's result.
    fn call(&mut self, arguments: Value) -> Value {
        let r = self.request("tools/call", json!({"name": "token_usage", "arguments": arguments}));
        assert!(r.get("error").is_none(), "protocol error: {r}");
        r["result"].clone()
    }

    /// Calls `token_usage` and expects success; returns the structured content, after checking it against
    /// the output schema and that the text summary comes first.
    fn ok(&mut self, arguments: Value) -> (Value, String) {
        let result = self.call(arguments.clone());
        assert_eq!(result["isError"], false, "{arguments} failed: {result}");
        let structured = result["structuredContent"].clone();
        assert!(structured.is_object(), "no structured content: {result}");
        let content = result["content"].as_array().expect("content");
        assert_eq!(content.len(), 2, "{result}");
        assert_eq!(content[0]["type"], "text");
        let summary = content[0]["text"].as_str().unwrap().to_owned();
        // The second block is the same JSON, for clients that ignore structured content.
        let echoed: Value = serde_json::from_str(content[1]["text"].as_str().unwrap()).unwrap();
        assert_eq!(echoed, structured);
        (structured, summary)
    }

    /// Calls `token_usage` and expects a tool error; returns its message.
    fn fails(&mut self, arguments: Value) -> String {
        let result = self.call(arguments.clone());
        assert_eq!(result["isError"], true, "{arguments} should fail: {result}");
        assert!(result.get("structuredContent").is_none(), "{result}");
        result["content"][0]["text"].as_str().expect("an error text").to_owned()
    }

    /// Closes stdin and waits for the server to exit; returns its status code.
    fn finish(mut self) -> i32 {
        drop(self.stdin.take());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(start.elapsed() < TIMEOUT, "the server did not exit after stdin closed");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks a structured result against the tool's output schema: required keys, and the JSON type of every
/// top-level property.
fn conforms(schema: &Value, value: &Value) {
    for key in schema["required"].as_array().unwrap() {
        assert!(value.get(key.as_str().unwrap()).is_some(), "required `{key}` missing: {value}");
    }
    let props = schema["properties"].as_object().unwrap();
    for (k, x) in value.as_object().unwrap() {
        let p = props.get(k).unwrap_or_else(|| panic!("`{k}` is not in the output schema"));
        let types: Vec<&str> = match &p["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
            _ => continue,
        };
        let actual = match x {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let ok = types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
        assert!(ok, "`{k}` is {actual}, the schema says {types:?}");
    }
}

fn output_schema(c: &mut Client) -> Value {
    c.request("tools/list", json!({}))["result"]["tools"][0]["outputSchema"].clone()
}

// === tests ===

#[test]
fn handshake_lists_one_tool_with_its_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_records(dir.path());
    let mut c = Client::start(&["--records", &file, "--now", NOW, "mcp"]);
    let init = c.initialize("2025-06-18");
    let r = &init["result"];
    assert_eq!(r["protocolVersion"], "2025-06-18", "{init}");
    assert_eq!(r["serverInfo"]["name"], "tokenmeter");
    assert!(r["capabilities"]["tools"].is_object(), "{init}");
    assert!(r["instructions"].as_str().unwrap().contains("token_usage"));
    // Every operation is named there (`blocks` was not: a model reading the instructions first never picked it).
    for op in ["analyze", "optimize", "track", "forecast", "compare", "blocks"] {
        assert!(r["instructions"].as_str().unwrap().contains(&format!(" {op} ")), "{op}: {r}");
    }

    let list = c.request("tools/list", json!({}));
    let tools = list["result"]["tools"].as_array().expect("tools");
    assert_eq!(tools.len(), 1, "{list}");
    let t = &tools[0];
    assert_eq!(t["name"], "token_usage");
    assert_eq!(t["annotations"]["readOnlyHint"], true);
    let input = &t["inputSchema"];
    assert_eq!(input["type"], "object");
    assert_eq!(input["required"], json!(["operation"]));
    assert_eq!(input["additionalProperties"], false);
    let p = &input["properties"];
    assert_eq!(p["operation"]["enum"], json!(["analyze", "optimize", "track", "forecast", "compare", "blocks"]));
    assert_eq!(p["timeframe"]["enum"], json!(["1h", "6h", "24h", "7d", "30d", "all"]));
    // No `default`: clients that fill in defaults would send 24h, which makes forecast's horizon one day.
    assert!(p["timeframe"].get("default").is_none(), "{}", p["timeframe"]);
    assert!(p["timeframe"]["description"].as_str().unwrap().contains("Default 24h"));
    assert_eq!(p["breakdown_type"]["type"], "string");
    for kind in ["agent", "operation", "model", "cost", "time"] {
        assert!(p["breakdown_type"]["description"].as_str().unwrap().contains(kind));
    }
    assert_eq!(p["optimization_target"]["type"], "number");
    assert_eq!(p["optimization_target"]["exclusiveMinimum"], 0);
    assert_eq!(p["optimization_target"]["maximum"], 100);
    let output = &t["outputSchema"];
    assert_eq!(output["type"], "object");
    for key in ["operation", "timeframe", "now", "time_zone", "source"] {
        assert!(output["required"].as_array().unwrap().contains(&json!(key)), "{key}");
    }
    for key in ["summary", "efficiency", "target", "spend", "rate", "budgets", "forecast", "comparison", "breakdowns"] {
        assert!(output["properties"].get(key).is_some(), "{key} not in the output schema");
    }

    // The newest protocol version with an initialize handshake is accepted too.
    let mut c2 = Client::start(&["--records", &file, "--now", NOW, "mcp"]);
    assert_eq!(c2.initialize("2025-11-25")["result"]["protocolVersion"], "2025-11-25");

    assert_eq!(c.finish(), 0, "the server should exit cleanly when the client closes stdin");
}

#[test]
fn analyze_is_the_usage_summary_efficiency_and_breakdowns() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Client::over_records(dir.path(), NOW, &[]);
    let schema = output_schema(&mut c);
    let l = ledger();

    for (tf, window) in [
        ("1h", Window::LastHour),
        ("6h", Window::Last6Hours),
        ("24h", Window::Last24Hours),
        ("7d", Window::Last7Days),
        ("30d", Window::Last30Days),
        ("all", Window::All),
    ] {
        let (s, text) = c.ok(json!({"operation": "analyze", "timeframe": tf}));
        conforms(&schema, &s);
        assert_eq!(s["operation"], "analyze");
        assert_eq!(s["timeframe"], tf);
        assert_eq!(s["now"], NOW);
        assert_eq!(s["time_zone"], "UTC");
        assert_eq!(s["source"]["kind"], "records");
        assert_eq!(s["source"]["calls"], 9);
        let summary = l.usage_summary(window).unwrap();
        assert_eq!(s["summary"], v(&summary), "{tf}");
        assert_eq!(s["window"], v(summary.window));
        assert_eq!(s["efficiency_scores"], v(l.efficiency_report(window, Dimension::Model).unwrap().efficiency_scores));
        assert_eq!(s["cache"], v(l.cache_report(window).unwrap().cache_metrics));
        assert_eq!(s["breakdowns"], json!({}));
        assert!(text.contains(&format!("{} call", summary.calls)), "{tf}: {text}");
    }
    // Every timeframe holds a different number of calls.
    let calls: Vec<u64> = ["1h", "6h", "24h", "7d", "30d", "all"]
        .iter()
        .map(|tf| c.ok(json!({"operation": "analyze", "timeframe": tf})).0["summary"]["calls"].as_u64().unwrap())
        .collect();
    assert_eq!(calls, vec![1, 2, 5, 6, 8, 9]);

    // The default timeframe is 24h.
    let (s, text) = c.ok(json!({"operation": "analyze"}));
    assert_eq!(s["timeframe"], "24h");
    assert_eq!(s["summary"], v(l.usage_summary(Window::Last24Hours).unwrap()));
    assert!(text.starts_with("Over the last 24 hours (2025-10-14 13:00 to 2025-10-15 12:01 UTC): 5 calls"), "{text}");
    assert!(text.contains("Not in the cost: 1 call on models without a price (claude-fable-9)"), "{text}");

    // Breakdowns: the ledger's own query results, each once.
    let (s, text) = c.ok(
        json!({"operation": "analyze", "timeframe": "7d", "breakdown_type": "agent, time,operation,model,cost,agent"}),
    );
    let b = s["breakdowns"].as_object().unwrap();
    let mut keys: Vec<&str> = b.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["agent", "cost", "model", "operation", "time"]);
    assert_eq!(text.matches("Top model:").count(), 1, "{text}");
    let w = Window::Last7Days;
    for (name, d) in [("agent", Dimension::Agent), ("operation", Dimension::Operation), ("model", Dimension::Model)] {
        let expected = l.query(&Query::new(w).group_by(GroupBy::Dimension(d))).unwrap();
        assert_eq!(b[name], v(&expected), "{name}");
    }
    let by_day = l.query(&Query::new(w).group_by(GroupBy::Time(TimeGrain::Day))).unwrap();
    assert_eq!(b["time"], v(&by_day));
    assert!(text.contains("Top agent: reporter"), "{text}");
    assert!(text.contains("Costliest day: 2025-10-15,"), "{text}");

    // Cost: by token kind from each call's priced cost, summing to the summary's cost; by model as the
    // summary has it.
    let summary = l.usage_summary(w).unwrap();
    let cost = &b["cost"];
    assert_eq!(cost["by_model"], v(&summary.by_model));
    assert_eq!(cost["total_usd"], json!(summary.cost_usd));
    assert_eq!(cost["unpriced_calls"], 1);
    let kinds: Vec<&str> = cost["by_kind"].as_array().unwrap().iter().map(|k| k["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["input", "cache_read", "cache_write_5m", "cache_write_1h", "output", "web_search"]);
    let sum: f64 = cost["by_kind"].as_array().unwrap().iter().map(|k| k["cost_usd"].as_f64().unwrap()).sum();
    close(sum, summary.cost_usd);
    let shares: f64 = cost["by_kind"].as_array().unwrap().iter().map(|k| k["share"].as_f64().unwrap()).sum();
    close(shares, 1.0);
    // Output of the 7d calls, by hand: sonnet 4-5 at $15/Mtok (800 + 4,000 + 2,000), opus 4.1 at $75/Mtok
    // (50), haiku 4.5 at $5/Mtok (300).
    let output = cost["by_kind"][4]["cost_usd"].as_f64().unwrap();
    close(output, 6_800.0 * 15e-6 + 50.0 * 75e-6 + 300.0 * 5e-6);
    assert!(text.contains("Largest cost by token kind: input"), "{text}");
}

#[test]
fn optimize_measures_suggestions_against_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Client::over_records(dir.path(), NOW, &[]);
    let schema = output_schema(&mut c);
    let report = ledger().efficiency_report(Window::Last30Days, Dimension::Model).unwrap();
    let spend = report.cost_usd;
    let sugg = &report.optimization_suggestions;
    assert!(sugg.len() >= 3, "the fixture should give several suggestions: {sugg:?}");
    let total: f64 = sugg.iter().map(|s| s.potential_savings).sum();
    let first_pct = sugg[0].potential_savings / spend * 100.0;

    // Without a target: the report, and the total.
    let (s, _) = c.ok(json!({"operation": "optimize", "timeframe": "30d"}));
    conforms(&schema, &s);
    assert_eq!(s["efficiency"], v(&report));
    assert_eq!(s["target"], Value::Null);
    close(s["total_savings_usd"].as_f64().unwrap(), total);
    close(s["total_savings_percent"].as_f64().unwrap(), total / spend * 100.0);

    // A target the largest suggestion reaches alone.
    let (s, text) = c.ok(json!({"operation": "optimize", "timeframe": "30d", "optimization_target": first_pct / 2.0}));
    let t = &s["target"];
    assert_eq!(t["reachable"], true, "{t}");
    assert_eq!(t["suggestions"].as_array().unwrap().len(), 1);
    assert_eq!(t["suggestions"][0]["type"], v(sugg[0].kind));
    close(t["usd"].as_f64().unwrap(), spend * first_pct / 200.0);
    close(t["savings_usd"].as_f64().unwrap(), sugg[0].potential_savings);
    assert_eq!(t["shortfall_usd"], 0.0);
    assert!(text.contains("reachable with"), "{text}");

    // A target that needs the two largest.
    let two = (sugg[0].potential_savings + sugg[1].potential_savings) / spend * 100.0;
    let (s, _) =
        c.ok(json!({"operation": "optimize", "timeframe": "30d", "optimization_target": (first_pct + two) / 2.0}));
    let t = &s["target"];
    assert_eq!(t["reachable"], true, "{t}");
    let kinds: Vec<Value> = t["suggestions"].as_array().unwrap().iter().map(|x| x["type"].clone()).collect();
    assert_eq!(kinds, vec![v(sugg[0].kind), v(sugg[1].kind)]);
    close(
        t["suggestions"][1]["cumulative_savings_usd"].as_f64().unwrap(),
        sugg[0].potential_savings + sugg[1].potential_savings,
    );
    assert!(s["notes"][0].as_str().unwrap().contains("overstates"), "{s}");

    // A target beyond every suggestion together.
    let (s, text) = c.ok(json!({"operation": "optimize", "timeframe": "30d", "optimization_target": 100}));
    let t = &s["target"];
    assert_eq!(t["reachable"], false, "{t}");
    assert_eq!(t["suggestions"].as_array().unwrap().len(), sugg.len());
    close(t["savings_usd"].as_f64().unwrap(), total);
    close(t["shortfall_usd"].as_f64().unwrap(), spend - total);
    assert!(text.contains("not reachable"), "{text}");

    // The per-group scores follow the first per-value breakdown asked for; the breakdowns come along.
    let (s, _) = c.ok(json!({"operation": "optimize", "timeframe": "30d", "breakdown_type": "cost,agent"}));
    assert_eq!(s["efficiency"], v(ledger().efficiency_report(Window::Last30Days, Dimension::Agent).unwrap()));
    assert!(s["breakdowns"]["cost"].is_object() && s["breakdowns"]["agent"].is_object());

    // An hour without calls has nothing to save: the target is not reachable.
    let mut empty = Client::over_records(dir.path(), "2026-06-01T00:00:00Z", &[]);
    let (s, text) = empty.ok(json!({"operation": "optimize", "timeframe": "1h", "optimization_target": 10}));
    assert_eq!(s["target"]["reachable"], false);
    assert!(text.contains("nothing was spent"), "{text}");

    // A target under a picodollar: the largest suggestion reaches it (none did: "reachable with ").
    let (s, text) = c.ok(json!({"operation": "optimize", "timeframe": "30d", "optimization_target": 1e-12}));
    assert_eq!(s["target"]["suggestions"].as_array().unwrap().len(), 1, "{s}");
    assert!(!text.contains("reachable with  "), "{text}");
    // The text gives the target to two decimals at most (it wrote 1e-12 out as 0.000000000001, 1e-300 in 300
    // digits); the structured result keeps it as sent.
    assert!(text.contains(" Target <0.01% ("), "{text}");
    assert_eq!(s["target"]["percent"], 1e-12, "{s}");
    let (_, text) = c.ok(json!({"operation": "optimize", "timeframe": "30d", "optimization_target": 100.0 / 3.0}));
    assert!(text.contains(" Target 33.33% ("), "{text}");

    // Calls on models without a price only: the spend has no price, not "nothing was spent".
    let unpriced = tempfile::tempdir().unwrap();
    let file = unpriced.path().join("unpriced.jsonl");
    std::fs::write(
        &file,
        r#"{"timestamp":"2025-10-15T10:00:00Z","duration_us":5,"model":"claude-fable-9","tokens":{"input":1000,"output":10},"metered":true,"outcome":{"status":"ok"},"dimensions":{}}"#
            .to_owned()
            + "\n"
            // A failed call without usage: nothing to price, so not "$0.00 + unpriced" either.
            + r#"{"timestamp":"2025-10-15T10:05:00Z","duration_us":5,"model":"claude-fable-9","tokens":{"input":0,"output":0},"metered":false,"outcome":{"status":"error","error_type":"overloaded_error"},"dimensions":{}}"#
            + "\n",
    )
    .unwrap();
    let mut c = Client::start(&["--records", file.to_str().unwrap(), "--now", NOW, "mcp"]);
    c.initialize("2025-06-18");
    let (_, text) = c.ok(json!({"operation": "optimize", "timeframe": "all", "optimization_target": 10}));
    assert!(text.contains("has no price") && !text.contains("nothing was spent"), "{text}");
    for op in ["analyze", "track"] {
        let (_, text) = c.ok(json!({"operation": op, "timeframe": "all"}));
        assert!(text.contains("unpriced") && !text.contains("+ unpriced"), "{op}: {text}");
    }
}

#[test]
fn a_budgets_file_the_budget_command_refuses_stops_the_server_at_start() {
    // A dollar budget on a model without a price parsed, and then failed every `track` call.
    let dir = tempfile::tempdir().unwrap();
    let file = write_records(dir.path());
    let budgets = dir.path().join("budgets.toml");
    std::fs::write(&budgets, "[budgets.fable]\nlimit_usd = 1.0\nscope = { model = \"claude-fable-9\" }\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokenmeter"))
        .args(["--records", &file, "--now", NOW, "mcp", "--budgets", budgets.to_str().unwrap()])
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("budget `fable` counts dollars on model `claude-fable-9`"), "{stderr}");
}

#[test]
fn track_reports_spend_rate_and_budgets() {
    let dir = tempfile::tempdir().unwrap();
    let budgets = dir.path().join("budgets.toml");
    std::fs::write(&budgets, BUDGETS).unwrap();
    let budgets = budgets.to_string_lossy().into_owned();
    let mut c = Client::over_records(dir.path(), NOW, &["--budgets", &budgets]);
    let schema = output_schema(&mut c);
    let summary = ledger().usage_summary(Window::Last24Hours).unwrap();

    let (s, text) = c.ok(json!({"operation": "track"}));
    conforms(&schema, &s);
    assert_eq!(s["timeframe"], "24h");
    let spend = &s["spend"];
    assert_eq!(spend["calls"], summary.calls);
    assert_eq!(spend["failed_calls"], 1);
    assert_eq!(spend["unpriced_calls"], 1);
    assert_eq!(spend["tokens"], v(summary.tokens));
    assert_eq!(spend["cost_usd"], json!(summary.cost_usd));
    let hours = (summary.period_end - summary.period_start).num_seconds() as f64 / 3_600.0;
    close(s["rate"]["window_hours"].as_f64().unwrap(), hours);
    close(s["rate"]["usd_per_hour"].as_f64().unwrap(), summary.cost_usd / hours);
    close(s["rate"]["calls_per_hour"].as_f64().unwrap(), summary.calls as f64 / hours);
    assert_eq!(s["monthly_projection_usd"], json!(summary.monthly_projection_usd));
    assert_eq!(s["by_model"], v(&summary.by_model));

    // The budgets: the library's budget accounting, as `tokenmeter budget` prints it.
    let file = write_records(dir.path());
    let expected =
        cli_support::run(&["--records", &file, "--now", NOW, "budget", "--file", &budgets, "--format", "json"]).json();
    assert_eq!(s["budgets"], expected["budgets"]);
    assert_eq!(s["budgets"].as_array().unwrap().len(), 2);
    assert_eq!(s["over_budget"], json!(["reporter"]), "{}", s["budgets"]);
    assert!(text.contains("Budgets: monthly") && text.contains("OVER"), "{text}");
    // Dollars of priced calls say so (the window has a call on claude-fable-9), and the run-rate is named as one:
    // the forecast's projected month total is another figure.
    // (The exact amount rounded half up: the float's `{:.4}` shows $0.2487 for $0.24875, a hair under it.)
    assert!(text.starts_with(&format!("Spent {:.4} + unpriced over", summary.cost_picos)), "{text}");
    assert!(text.contains(" a day; monthly run-rate $") && text.contains("Not in the cost: 1 call"), "{text}");
    assert!(!text.contains("projects to"), "{text}");
    assert!(text.contains("reporter $") && text.contains(" + unpriced of $0.0500"), "{text}");

    // --tz is the time zone of budgets without their own, as for `tokenmeter budget`.
    let mut zoned = Client::over_records(dir.path(), NOW, &["--budgets", &budgets, "--tz", "Asia/Tokyo"]);
    let (s, _) = zoned.ok(json!({"operation": "track"}));
    assert_eq!(s["budgets"][0]["period_start"], "2025-09-30T15:00:00Z", "{}", s["budgets"]);

    // Without --budgets: null, and the text says how to add them.
    let mut plain = Client::over_records(dir.path(), NOW, &[]);
    let (s, text) = plain.ok(json!({"operation": "track", "timeframe": "7d", "breakdown_type": "model"}));
    assert_eq!(s["budgets"], Value::Null);
    assert!(text.contains("--budgets"), "{text}");
    let by_model =
        ledger().query(&Query::new(Window::Last7Days).group_by(GroupBy::Dimension(Dimension::Model))).unwrap();
    assert_eq!(s["breakdowns"]["model"], v(&by_model));
}

#[test]
fn forecast_is_the_library_forecast() {
    let dir = tempfile::tempdir().unwrap();
    let l = ledger();
    let mut c = Client::over_records(dir.path(), NOW, &[]);
    let schema = output_schema(&mut c);
    let (s, text) = c.ok(json!({"operation": "forecast"}));
    conforms(&schema, &s);
    assert_eq!(s["timeframe"], "7d");
    assert_eq!(s["horizon_days"], 7);
    assert_eq!(s["monthly_limit_usd"], Value::Null);
    assert_eq!(s["forecast"], v(l.forecast(7, None).unwrap()));
    assert!(s.get("window").is_none());
    assert!(text.contains("projected month total"), "{text}");
    // The history holds a call on claude-fable-9: counted in the JSON, and the text's dollars say so.
    assert_eq!(s["forecast"]["unpriced_calls"], 1);
    assert!(text.contains("month to date $") && text.contains(" + unpriced, projected month total $"), "{text}");
    assert!(text.contains("(the month to date plus the forecast"), "{text}");
    assert!(text.contains("from a trend over 28 days of history"), "{text}");

    for (tf, days) in [("1h", 1), ("24h", 1), ("30d", 30), ("all", 30)] {
        let (s, _) = c.ok(json!({"operation": "forecast", "timeframe": tf}));
        assert_eq!(s["forecast"], v(l.forecast(days, None).unwrap()), "{tf}");
    }

    // With budgets, the monthly budget over everything is the limit.
    let budgets = dir.path().join("budgets.toml");
    std::fs::write(&budgets, BUDGETS).unwrap();
    let mut c = Client::over_records(dir.path(), NOW, &["--budgets", budgets.to_str().unwrap()]);
    let (s, text) = c.ok(json!({"operation": "forecast", "timeframe": "30d", "breakdown_type": "agent"}));
    assert_eq!(s["monthly_limit_usd"], 5.0);
    assert_eq!(s["forecast"], v(l.forecast(30, Some(5.0)).unwrap()));
    assert!(text.contains("Monthly budget $5.00"), "{text}");
    assert!(s["notes"][0].as_str().unwrap().contains("breakdown_type"), "{s}");
}

#[test]
fn a_forecast_with_nothing_to_go_on_states_no_figure() {
    // 40 minutes into the first record's day, nothing before it: the text read "about $0.00 over the next 7
    // days" and "not reached this month", as if forecast.
    let dir = tempfile::tempdir().unwrap();
    let budgets = dir.path().join("budgets.toml");
    std::fs::write(&budgets, BUDGETS).unwrap();
    let budgets = budgets.to_string_lossy().into_owned();
    let mut c = Client::over_records(dir.path(), "2025-08-01T00:40:00Z", &["--budgets", &budgets]);
    let (s, text) = c.ok(json!({"operation": "forecast"}));
    assert_eq!(s["forecast"]["basis"], "insufficient", "{s}");
    assert!(!text.contains("over the next"), "{text}");
    assert!(text.contains("from nothing yet: no full day of history"), "{text}");
    assert!(text.contains(": not reached so far; nothing to project yet."), "{text}");
}

#[test]
fn blocks_are_the_library_blocks_with_calls_in_the_timeframe() {
    // Now is 2025-10-15 12:00: the 09:10 and 11:40 calls are the open block (09:00-14:00); the 01:00 call is a
    // block of its own, as are 2025-10-14's 18:30 and 20:00 (18:00-23:00), and the older ones.
    let dir = tempfile::tempdir().unwrap();
    let mut c = Client::over_records(dir.path(), NOW, &[]);
    let schema = output_schema(&mut c);
    let (s, text) = c.ok(json!({"operation": "blocks"}));
    conforms(&schema, &s);
    assert_eq!(s["timeframe"], "24h");
    let mut all = tokenmeter::analysis::usage_blocks(&records(), now(), 5).unwrap();
    let largest = all.largest_closed_block_tokens();
    assert_eq!(s["largest_closed_block_tokens"], json!(largest));
    let older = all.blocks.len() - 3;
    all.blocks.drain(..older);
    assert_eq!(s["blocks"], v(&all), "{s}");
    assert_eq!(s["blocks_not_shown"], older);
    let starts: Vec<&str> =
        s["blocks"]["blocks"].as_array().unwrap().iter().map(|b| b["start"].as_str().unwrap()).collect();
    assert_eq!(starts, ["2025-10-14T18:00:00Z", "2025-10-15T01:00:00Z", "2025-10-15T09:00:00Z"]);
    assert_eq!(s["window"]["from"], "2025-10-14T12:00:00Z");
    // The open block's rate: the 11:40 call's 23,800 tokens over the 170 minutes since 09:10.
    assert_eq!(s["blocks"]["active"]["tokens_per_minute"], json!(23_800.0 / 170.0));
    assert!(text.contains("The open block, since 2025-10-15 09:00 (2h 00m left): 2 calls"), "{text}");
    assert!(text.contains("75.8% of the most any closed block of the source used (54,000 tokens"), "{text}");

    // The last hour: no block opened in it, the open one still shown; breakdowns are not for blocks.
    let (s, text) = c.ok(json!({"operation": "blocks", "timeframe": "1h", "breakdown_type": "agent"}));
    assert_eq!(s["blocks"]["blocks"].as_array().unwrap().len(), 1, "{s}");
    assert!(s["notes"][0].as_str().unwrap().contains("ignored by blocks"), "{s}");
    assert!(text.contains("with calls in the last hour (UTC): 0 closed."), "{text}");
    // The last 6 hours (from 06:00): the 01:00 block's one call is before them; the open block's 09:10 call in.
    let (s, _) = c.ok(json!({"operation": "blocks", "timeframe": "6h"}));
    assert_eq!(s["blocks"]["blocks"].as_array().unwrap().len(), 1, "{s}");
}

#[test]
fn project_and_session_breakdowns_and_long_block_lists_keep_the_most_expensive_and_the_most_recent() {
    // 60 calls 6 hours apart: 60 sessions (3 projects) and 60 blocks. An answer listing them all grew with the
    // history (a month of blocks was 77,000 characters of JSON).
    let dir = tempfile::tempdir().unwrap();
    let start: DateTime<Utc> = "2025-09-01T00:00:00Z".parse().unwrap();
    let mut text = String::new();
    for i in 0..60u64 {
        let ts = start + chrono::Duration::hours(6 * i as i64);
        let line = json!({
            "timestamp": ts, "duration_us": 1_000_000, "model": "claude-haiku-4-5", "provider": "anthropic",
            "tokens": {"input": 1_000 + i * 100, "output": 10}, "metered": true, "outcome": {"status": "ok"},
            "dimensions": {"session": format!("s{i:02}"), "project": format!("p{}", i % 3)}
        });
        text.push_str(&format!("{line}\n"));
    }
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, text).unwrap();
    let mut c = Client::start(&["--records", file.to_str().unwrap(), "--now", "2025-10-20T00:00:00Z", "mcp"]);
    c.initialize("2025-06-18");
    let schema = output_schema(&mut c);

    let (s, text) = c.ok(json!({"operation": "analyze", "timeframe": "all", "breakdown_type": "project,session"}));
    conforms(&schema, &s);
    let keys = |b: &str| -> Vec<String> {
        s["breakdowns"][b]["groups"].as_array().unwrap().iter().map(|g| g["key"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(keys("project").len(), 3);
    let sessions = keys("session");
    // The 20 most expensive: the latest sessions have the most input.
    assert_eq!(sessions.len(), 20);
    assert_eq!((sessions[0].as_str(), sessions[19].as_str()), ("s59", "s40"));
    assert_eq!(s["breakdowns"]["values_not_shown"], json!({"session": 40}));
    assert_eq!(s["breakdowns"]["session"]["totals"]["calls"], 60, "the totals are the whole window's");
    assert!(text.contains("Top session: s59") && text.contains("40 session values past the 20 listed."), "{text}");

    let (s, text) = c.ok(json!({"operation": "blocks", "timeframe": "all"}));
    conforms(&schema, &s);
    let blocks = s["blocks"]["blocks"].as_array().unwrap();
    assert_eq!((blocks.len(), s["blocks_not_shown"].as_u64()), (48, Some(12)));
    assert_eq!(blocks[47]["start"], "2025-09-15T18:00:00Z", "the most recent kept");
    assert!(
        text.contains("60 closed") && text.contains("The 48 most recent blocks are listed, the 12 before"),
        "{text}"
    );
}

#[test]
fn compare_is_the_library_period_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let l = ledger();
    let mut c = Client::over_records(dir.path(), NOW, &[]);
    let schema = output_schema(&mut c);
    for (tf, w) in [("24h", Window::Last24Hours), ("7d", Window::Last7Days), ("30d", Window::Last30Days)] {
        let (s, text) = c.ok(json!({"operation": "compare", "timeframe": tf}));
        conforms(&schema, &s);
        let expected = l.compare_periods(w).unwrap();
        assert_eq!(s["comparison"], v(&expected), "{tf}");
        assert_eq!(s["window"], v(expected.b.window));
        assert!(text.contains(") against the period before ("), "{text}");
    }
    // 7d: the week holds 6 calls; the same stretch a week before, 2025-10-02 to 2025-10-08 12:00, none (its one
    // call came at 12:00, the hour the current window has only begun).
    let (s, _) = c.ok(json!({"operation": "compare", "timeframe": "7d", "optimization_target": 5}));
    assert_eq!(s["comparison"]["b"]["calls"], 6);
    assert_eq!(s["comparison"]["a"]["calls"], 0);
    assert_eq!(s["comparison"]["a"]["window"]["to"], "2025-10-08T12:00:00Z");
    assert!(s["notes"][0].as_str().unwrap().contains("optimization_target"), "{s}");
}

#[test]
fn a_line_that_is_not_json_gets_no_reply_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Client::over_records(dir.path(), NOW, &[]);
    let stdin = c.stdin.as_mut().unwrap();
    // rmcp ignores unparsable lines on purpose (no -32700 reply: two peers could bounce parse errors forever),
    // and answers well-formed JSON that is not a message with -32600. The first reply is that one.
    writeln!(stdin, "this is not json").unwrap();
    writeln!(stdin, "{{\"foo\":1}}").unwrap();
    stdin.flush().unwrap();
    let reply = c.receive();
    assert_eq!(reply["error"]["code"], -32600, "{reply}");
    let tools = c.request("tools/list", json!({}));
    assert_eq!(tools["result"]["tools"][0]["name"], "token_usage", "{tools}");
    assert_eq!(c.finish(), 0);
}

#[test]
fn bad_arguments_are_tool_errors_that_say_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Client::over_records(dir.path(), NOW, &[]);
    let ops = "analyze, optimize, track, forecast, compare, blocks";
    let cases: Vec<(Value, String)> = vec![
        (json!({}), format!("missing argument `operation`: give one of {ops}")),
        (json!({"operation": null}), format!("missing argument `operation`: give one of {ops}")),
        (json!({"operation": "summarize"}), format!("unknown operation \"summarize\": expected one of {ops}")),
        (json!({"operation": 7}), format!("`operation` must be a string, one of {ops}; got a number (7)")),
        (
            json!({"operation": "track", "timeframe": "2w"}),
            "unknown timeframe \"2w\": expected one of 1h, 6h, 24h, 7d, 30d, all".into(),
        ),
        (
            json!({"operation": "track", "timeframe": 24}),
            "`timeframe` must be a string, one of 1h, 6h, 24h, 7d, 30d, all; got a number (24)".into(),
        ),
        (
            json!({"operation": "analyze", "breakdown_type": "agent,region"}),
            "unknown breakdown type \"region\" in `breakdown_type`: expected a comma-separated list of agent, \
             operation, model, project, session, cost, time"
                .into(),
        ),
        (
            json!({"operation": "analyze", "breakdown_type": ["agent", "model"]}),
            "`breakdown_type` must be a string of comma-separated names from agent, operation, model, project, \
             session, cost, time (e.g. \"agent,cost\"); got an array"
                .into(),
        ),
        (
            json!({"operation": "optimize", "optimization_target": 0}),
            "`optimization_target` 0 is out of range: give a percentage of the timeframe's spend, greater than 0 \
             and at most 100"
                .into(),
        ),
        (
            json!({"operation": "optimize", "optimization_target": 150}),
            "`optimization_target` 150 is out of range: give a percentage of the timeframe's spend, greater than \
             0 and at most 100"
                .into(),
        ),
        (
            json!({"operation": "optimize", "optimization_target": -5.5}),
            "`optimization_target` -5.5 is out of range: give a percentage of the timeframe's spend, greater than \
             0 and at most 100"
                .into(),
        ),
        (
            json!({"operation": "optimize", "optimization_target": "20%"}),
            "`optimization_target` must be a number, a percentage greater than 0 and at most 100 (e.g. 20); got a \
             string (\"20%\")"
                .into(),
        ),
        (
            json!({"operation": "track", "window": "7d"}),
            "unknown argument `window`: the arguments are operation, timeframe, breakdown_type, optimization_target"
                .into(),
        ),
    ];
    for (args, message) in cases {
        assert_eq!(c.fails(args.clone()), message, "{args}");
    }
    // A huge bad value is quoted in part, with its length, not echoed whole.
    let huge = "x".repeat(1 << 20);
    let message = c.fails(json!({"operation": huge}));
    assert!(message.starts_with(&format!("unknown operation \"{}\"… (1048576 bytes): ", "x".repeat(64))), "{message}");
    assert!(message.len() < 300, "{} bytes", message.len());
    let message = c.fails(json!({"operation": "track", huge.clone(): 1}));
    assert!(message.starts_with(&format!("unknown argument \"{}\"… (1048576 bytes): ", "x".repeat(64))), "{message}");
    // No arguments at all.
    let r = c.request("tools/call", json!({"name": "token_usage"}));
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert!(r["result"]["content"][0]["text"].as_str().unwrap().contains("missing argument `operation`"));

    // An unknown tool is a protocol error (invalid params), and the server goes on.
    let r = c.request("tools/call", json!({"name": "token_spend", "arguments": {"operation": "track"}}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("token_usage"), "{r}");
    let (s, _) = c.ok(json!({"operation": "track"}));
    assert_eq!(s["operation"], "track");

    // Params that are not a tools/call at all are invalid params too (the SDK took them for an unknown
    // method, -32601); a method nobody knows stays -32601.
    for params in [json!({}), json!({"name": "token_usage", "arguments": [1]}), json!(null)] {
        let r = c.request("tools/call", params.clone());
        assert_eq!(r["error"]["code"], -32602, "{params}: {r}");
        assert!(r["error"]["message"].as_str().unwrap().starts_with("invalid params for tools/call: "), "{r}");
    }
    let r = c.request("tools/frobnicate", json!({}));
    assert_eq!(r["error"]["code"], -32601, "{r}");
    assert_eq!(r["error"]["message"], "Method not found: tools/frobnicate", "{r}");
    // So are the params of any other method MCP defines that do not fit it.
    let r = c.request("initialize", json!({"protocolVersion": 5}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert_eq!(r["error"]["message"], "invalid params for initialize", "{r}");
    let (s, _) = c.ok(json!({"operation": "track"}));
    assert_eq!(s["operation"], "track");
}

#[test]
fn a_source_that_cannot_be_read_is_a_tool_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-journal");
    let mut c = Client::start(&["--journal", missing.to_str().unwrap(), "--now", NOW, "mcp"]);
    c.initialize("2025-06-18");
    let msg = c.fails(json!({"operation": "track"}));
    assert!(msg.starts_with("cannot read the source: journal directory") && msg.contains("does not exist"), "{msg}");
    // The flags it names are the server's, not the tool's arguments.
    assert!(msg.ends_with("in the MCP client's configuration: this tool's arguments cannot change it)"), "{msg}");
    // Once the journal exists, the same server answers.
    std::fs::create_dir(&missing).unwrap();
    let (s, _) = c.ok(json!({"operation": "track"}));
    assert_eq!(s["spend"]["calls"], 0);
    assert_eq!(c.finish(), 0);
}

#[test]
fn every_call_reads_the_journal_again() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    let file = journal.join("tokenmeter-2025-10-15.jsonl");
    let line = |r: &CallRecord| format!("{}\n", json!({"v": 1, "call": r}));
    let recs = records();
    std::fs::write(&file, line(&recs[0])).unwrap();
    let mut c = Client::start(&["--journal", journal.to_str().unwrap(), "--now", NOW, "mcp"]);
    c.initialize("2025-06-18");
    let (s, _) = c.ok(json!({"operation": "track", "timeframe": "24h"}));
    assert_eq!(s["spend"]["calls"], 1);
    assert_eq!(s["source"]["kind"], "journal");

    // The application appends two calls while the server runs.
    let mut f = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
    f.write_all(line(&recs[1]).as_bytes()).unwrap();
    f.write_all(line(&recs[2]).as_bytes()).unwrap();
    drop(f);
    let (s, _) = c.ok(json!({"operation": "track", "timeframe": "24h"}));
    assert_eq!(s["spend"]["calls"], 3);
    assert_eq!(s["source"]["calls"], 3);
}

#[test]
fn all_is_everything_the_source_holds_as_the_cli_counts_it() {
    // The oldest call is 56 days old, mid-August: the ledger keeps it in a month bucket starting 2025-08-01, and
    // `all` read from there (19 empty days more, a run-rate 20% lower than the CLI's `--period all`).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.jsonl");
    let mut recs = records();
    recs.retain(|r| r.timestamp.format("%m-%d").to_string() != "08-01");
    recs[0].timestamp = "2025-08-20T10:00:00Z".parse().unwrap();
    recs.sort_by_key(|r| r.timestamp);
    let text: String = recs.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
    std::fs::write(&file, text).unwrap();
    let file = file.to_string_lossy().into_owned();
    let mut c = Client::start(&["--records", &file, "--now", NOW, "mcp"]);
    c.initialize("2025-06-18");
    let (s, text) = c.ok(json!({"operation": "track", "timeframe": "all"}));
    assert_eq!(s["window"]["from"], "2025-08-20T00:00:00Z", "{s}");
    assert!(text.contains("2025-08-20 00:00"), "{text}");
    let cli = Command::new(env!("CARGO_BIN_EXE_tokenmeter"))
        .args(["--records", &file, "--now", NOW, "summary", "--period", "all", "--format", "json"])
        .env("NO_COLOR", "1")
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(cli["summary"]["window"]["from"], s["window"]["from"], "{cli}");
    // Every call counted, and the same run-rate: the month bucket holding August starts before the window, and
    // `all` asked the ledger for the window as it is, which took no bucket starting before it: August's calls
    // were left out.
    assert_eq!(s["spend"]["calls"], cli["summary"]["calls"], "{s}");
    assert_eq!(s["spend"]["calls"].as_u64(), Some(recs.len() as u64), "{s}");
    assert_eq!(s["monthly_projection_usd"], cli["summary"]["monthly_projection_usd"], "{s}");
    // And so does `compare`'s current window, over every call.
    let (s, _) = c.ok(json!({"operation": "compare", "timeframe": "all"}));
    assert_eq!(s["window"]["from"], "2025-08-20T00:00:00Z", "{s}");
    assert_eq!(s["comparison"]["b"]["calls"].as_u64(), Some(recs.len() as u64), "{s}");
}

#[test]
fn calls_sent_at_once_are_all_answered_two_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let records = write_records(dir.path());
    let mut c = Client::start(&["--records", &records, "--now", NOW, "mcp"]);
    c.initialize("2025-06-18");
    let (alone, _) = c.ok(json!({"operation": "track", "timeframe": "24h"}));
    assert!(alone["spend"]["calls"].as_u64() > Some(0), "{alone}");
    // Eight calls before reading any answer: the server computes two at a time (each reads the whole source)
    // and queues the rest; every one is answered, with what the call alone answered.
    let ids: Vec<u64> = (0..8).map(|i| 1_000 + i).collect();
    for id in &ids {
        c.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                       "params": {"name": "token_usage", "arguments": {"operation": "track", "timeframe": "24h"}}}));
    }
    let mut answered = std::collections::BTreeMap::new();
    while answered.len() < ids.len() {
        let msg = c.receive();
        if let Some(id) = msg.get("id").and_then(Value::as_u64) {
            assert_eq!(msg["result"]["isError"], false, "{msg}");
            answered.insert(id, msg["result"]["structuredContent"]["spend"].clone());
        }
    }
    assert_eq!(answered.keys().copied().collect::<Vec<_>>(), ids);
    assert!(answered.values().all(|spend| *spend == alone["spend"]), "{answered:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn at_most_two_calls_read_the_source_at_once() {
    // The records file is a FIFO this test holds open and writes nothing to: a call reading it waits there, the
    // FIFO open, until the test closes its end. The server's open descriptors of the FIFO (in /proc) are the
    // calls reading the source at that moment.
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("records.jsonl");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    // Open to read and write, it waits for no reader, and the server's reads do not wait for a writer to open.
    let held = std::fs::OpenOptions::new().read(true).write(true).open(&fifo).unwrap();
    let meta = std::fs::metadata(&fifo).unwrap();
    let mut c = Client::start(&["--records", fifo.to_str().unwrap(), "--now", NOW, "mcp"]);
    c.initialize("2025-06-18");
    let fds = format!("/proc/{}/fd", c.child.id());
    let reading = || {
        let open = std::fs::read_dir(&fds)
            .expect("the server's open files")
            .filter_map(|fd| std::fs::metadata(fd.ok()?.path()).ok());
        open.filter(|m| (m.dev(), m.ino()) == (meta.dev(), meta.ino())).count()
    };
    let ids: Vec<u64> = (0..8).map(|i| 1_000 + i).collect();
    for id in &ids {
        c.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                       "params": {"name": "token_usage", "arguments": {"operation": "track", "timeframe": "24h"}}}));
    }
    // Two calls read at once; the other six wait for them, however long they read (a call past the bound would
    // be reading within the second).
    let start = Instant::now();
    while reading() < 2 {
        assert!(start.elapsed() < TIMEOUT, "{} calls reading the source after {TIMEOUT:?}", reading());
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut most = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        most = most.max(reading());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(most, 2, "the most calls reading the source at once");
    // The records file in the FIFO's place, then the FIFO's end closed: the two calls reading it read nothing,
    // and the six that waited read the records.
    let file = tempfile::tempdir_in(dir.path()).unwrap();
    std::fs::rename(write_records(file.path()), &fifo).unwrap();
    drop(held);
    let mut calls = Vec::new();
    while calls.len() < ids.len() {
        let msg = c.receive();
        if msg.get("id").and_then(Value::as_u64).is_some_and(|id| ids.contains(&id)) {
            assert_eq!(msg["result"]["isError"], false, "{msg}");
            calls.push(msg["result"]["structuredContent"]["spend"]["calls"].as_u64().expect("a count of calls"));
        }
    }
    calls.sort_unstable();
    assert_eq!(calls[..2], [0, 0], "{calls:?}");
    assert!(calls[2] > 0 && calls[2..].iter().all(|&n| n == calls[2]), "{calls:?}");
}

// === the documents' samples ===

/// Every leaf the document's (abridged) JSON shows is in the answer, with the same value: arrays the document
/// cut keep their first elements, and the second content block (the same JSON as text) is cut to `…`.
fn shows_only_what_it_answers(doc: &str, shown: &Value, answered: &Value, path: &str) {
    match (shown, answered) {
        (Value::Object(s), Value::Object(a)) => {
            for (k, v) in s {
                let Some(got) = a.get(k) else { panic!("{doc}: {path}.{k} is not in the answer") };
                shows_only_what_it_answers(doc, v, got, &format!("{path}.{k}"));
            }
        }
        (Value::Array(s), Value::Array(a)) => {
            for (i, v) in s.iter().enumerate() {
                if path == ".result.content" && i == 1 {
                    continue;
                }
                let Some(got) = a.get(i) else { panic!("{doc}: {path}[{i}] is not in the answer") };
                shows_only_what_it_answers(doc, v, got, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(shown, answered, "{doc}: {path}"),
    }
}

/// The sample exchange's answer (the ```` ```json ```` block after the `printf` sample) and the other
/// operations' summaries (the ```` ```text ```` block of `track 7d:` …, one paragraph per operation, its
/// label in the first 14 columns) in README.md and docs/mcp.md are what the server answers over the fixture
/// transcripts. They were captured by hand and drifted before.
#[test]
fn the_documents_samples_are_what_the_server_answers() {
    let source = ["-q", "--claude-code", "tests/fixtures/claude_code", "--now", "2025-10-04T00:00:00Z", "mcp"];
    let mut plain = Client::start(&source);
    plain.initialize("2025-06-18");
    let mut args = source.to_vec();
    args.extend(["--budgets", "tests/fixtures/claude_code/budgets.toml"]);
    let mut with_budgets = Client::start(&args);
    with_budgets.initialize("2025-06-18");
    let optimize = plain.request(
        "tools/call",
        json!({"name": "token_usage", "arguments": {"operation": "optimize", "timeframe": "all",
                                                    "optimization_target": 25}}),
    );
    let operations: [(&str, Value); 4] = [
        ("track 7d:", json!({"operation": "track", "timeframe": "7d"})),
        ("forecast:", json!({"operation": "forecast"})),
        ("compare 7d:", json!({"operation": "compare", "timeframe": "7d"})),
        ("analyze all, cost:", json!({"operation": "analyze", "timeframe": "all", "breakdown_type": "cost"})),
    ];
    let summaries: Vec<String> = operations.iter().map(|(_, a)| with_budgets.ok(a.clone()).1).collect();

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for doc in ["README.md", "docs/mcp.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // The answer to the sample exchange's `tools/call`.
        let start = (0..lines.len())
            .find(|&i| lines[i] == "```json" && lines.get(i + 3).is_some_and(|l| l.trim() == r#""id": 2,"#))
            .unwrap_or_else(|| panic!("{doc}: no sample answer"));
        let end = start + 1 + lines[start + 1..].iter().position(|l| *l == "```").unwrap();
        let shown: Value = serde_json::from_str(&lines[start + 1..end].join("\n")).expect("the sample is JSON");
        shows_only_what_it_answers(doc, &shown, &optimize, "");
        // The summaries: a paragraph starts where the label column holds text, unless the label before it
        // ended with a comma (`analyze all,` then `cost:`).
        let first = lines.iter().position(|l| l.starts_with("track 7d:")).expect("the summaries block");
        let mut paragraphs: Vec<(String, String)> = Vec::new();
        for l in lines[first..].iter().take_while(|l| **l != "```") {
            let split = l.char_indices().nth(14).map_or(l.len(), |(i, _)| i);
            let (label, rest) = l.split_at(split);
            let (label, rest) = (label.trim(), rest.trim());
            match paragraphs.last_mut() {
                Some((l, p)) if label.is_empty() || l.ends_with(',') => {
                    if !label.is_empty() {
                        l.push(' ');
                        l.push_str(label);
                    }
                    p.push(' ');
                    p.push_str(rest);
                }
                _ => paragraphs.push((label.to_owned(), rest.to_owned())),
            }
        }
        let labels: Vec<&str> = paragraphs.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, operations.iter().map(|(l, _)| *l).collect::<Vec<_>>(), "{doc}");
        for ((label, shown), answered) in paragraphs.iter().zip(&summaries) {
            assert_eq!(shown, answered, "{doc}: {label}");
        }
    }
}

#[test]
fn a_client_that_closes_before_initializing_ends_the_server_cleanly() {
    // Started and closed before `initialize` (a client probing the server, or changing its mind): exit status
    // 1, "MCP session did not start: connection closed", where closing after it exits 0.
    let dir = tempfile::tempdir().unwrap();
    let file = write_records(dir.path());
    let client = Client::start(&["--records", file.as_str(), "--now", "2025-10-04T00:00:00Z", "mcp"]);
    assert_eq!(client.finish(), 0);
}
