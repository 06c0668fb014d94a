//! `tokenmeter show <session>`: totals from the ledger, every call, tools and cache columns, exit codes.
#![cfg(feature = "cli")]

use crate::cli_support;

use cli_support::{cc, close, fixture, run, write_journal};

#[test]
fn show_json() {
    let v = cc(&["show", "sess-alpha-1", "--format", "json"]).json();
    assert_eq!(v["session"], "sess-alpha-1");
    assert_eq!(v["projects"], serde_json::json!(["-home-dev-alpha"]));
    // A1, A2, the <synthetic> line, A3 and the sub-agent's S1, S2.
    assert_eq!(v["totals"]["calls"], 6);
    close(v["totals"]["cost_usd"].as_f64().unwrap(), 0.041977);
    let t = &v["totals"]["tokens"];
    assert_eq!(
        (&t["input"], &t["output"], &t["cache_read"], &t["cache_creation"]),
        (&92.into(), &590.into(), &5000.into(), &7500.into())
    );
    let calls = v["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 6);
    assert_eq!(calls[0]["request_id"], "msg_A1");
    assert_eq!(calls[0]["tokens"]["output"], 120);
    assert_eq!(calls[0]["cost"]["total"], 9_630_000_000u64);
    let agents: Vec<&str> = calls.iter().map(|c| c["dimensions"]["agent"].as_str().unwrap()).collect();
    assert_eq!(agents, ["main", "main", "main", "subagent", "subagent", "main"]);
    // A1's first streamed copy (09:00:00; the copy kept for its tokens is of 09:00:01).
    assert_eq!(v["first_call"], "2025-10-01T09:00:00Z");
    assert_eq!(v["last_call"], "2025-10-02T14:00:00Z");
    assert!(v.get("tools").is_none());
}

#[test]
fn show_table_with_cache_columns_and_a_prefix() {
    let out = cc(&["show", "sess-gam", "--include-cache"]);
    let text = out.ok();
    assert!(text.starts_with("Session sess-gamma-1 (project -home-dev-gamma)"), "{text}");
    for needle in ["write 5m", "write 1h", "hit rate", "unpriced", "claude-fable-9", "99.0%"] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
}

#[test]
fn show_tools() {
    let v = cc(&["show", "sess-alpha-1", "--include-tools", "--format", "json"]).json();
    assert_eq!(
        v["tools"],
        serde_json::json!([
            {"tool": "Bash", "uses": 1, "errors": 1},
            {"tool": "Grep", "uses": 1, "errors": 0},
            {"tool": "Read", "uses": 1, "errors": 0},
        ])
    );
    let text = cc(&["show", "sess-alpha-1", "--include-tools"]).ok().to_owned();
    assert!(text.contains("Tools") && text.contains("Bash"), "{text}");
    // As of 09:02, Bash (09:05) and Grep had not run yet, as the calls after it had not been made.
    let dir = fixture("claude_code");
    let args = ["--claude-code", &dir, "--now", "2025-10-01T09:02:00Z", "show", "sess-alpha-1", "--include-tools"];
    let early = run(&[&args[..], &["--format", "json"]].concat()).json();
    assert_eq!(early["tools"], serde_json::json!([{"tool": "Read", "uses": 1, "errors": 0}]));
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path());
    let j = run(&["--journal", dir.path().to_str().unwrap(), "show", "sess-alpha-1", "--include-tools"]);
    assert!(j.stderr.contains("the journal holds no tool executions of this session"), "{}", j.stderr);
    assert!(j.ok().contains("Session sess-alpha-1"));
}

#[test]
fn show_tools_counts_an_old_layout_sub_agent_file_under_the_session_its_lines_name() {
    // Claude Code before 2.1.2 wrote a sub-agent's transcript as `agent-<id>.jsonl` beside the sessions: its
    // calls are the session's its lines name, and so are its tools (they were left out: the file's own
    // session is `agent-<id>`). Another session's sub-agent file beside it is not this session's.
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("projects").join("-home-u-proj");
    std::fs::create_dir_all(&project).unwrap();
    let line = |session: &str, n: u32, tool: &str| {
        format!(
            r#"{{"type":"assistant","timestamp":"2025-10-01T10:00:0{n}Z","sessionId":"{session}","requestId":"req_{n}","message":{{"id":"msg_{n}","model":"claude-sonnet-4-5","content":[{{"type":"tool_use","id":"toolu_{n}","name":"{tool}","input":{{}}}}],"usage":{{"input_tokens":100,"output_tokens":10}}}}}}"#
        ) + "\n"
    };
    std::fs::write(project.join("aaaa-sess.jsonl"), line("aaaa-sess", 1, "Read")).unwrap();
    std::fs::write(project.join("agent-a2271d1.jsonl"), line("aaaa-sess", 2, "Grep")).unwrap();
    std::fs::write(project.join("bbbb-sess.jsonl"), line("bbbb-sess", 3, "Edit")).unwrap();
    std::fs::write(project.join("agent-b0b.jsonl"), line("bbbb-sess", 4, "Bash")).unwrap();
    let root = dir.path().to_str().unwrap();
    let args = ["--claude-code", root, "--now", "2025-10-02T00:00:00Z", "show", "aaaa-sess", "--include-tools"];
    let v = run(&[&args[..], &["--format", "json"]].concat()).json();
    assert_eq!(v["totals"]["calls"], 2, "the session's call and its sub-agent's");
    assert_eq!(
        v["tools"],
        serde_json::json!([{"tool": "Grep", "uses": 1, "errors": 0}, {"tool": "Read", "uses": 1, "errors": 0}])
    );
    // A resumed session's file copies the earlier session's lines under that session's id: their tools were the
    // earlier session's (listed under the resumed one as well, beside calls filed under the earlier one).
    let resumed = line("aaaa-sess", 1, "Read") + &line("cccc-sess", 5, "Write");
    std::fs::write(project.join("cccc-sess.jsonl"), resumed).unwrap();
    let args = ["--claude-code", root, "--now", "2025-10-02T00:00:00Z", "show", "cccc-sess", "--include-tools"];
    let v = run(&[&args[..], &["--format", "json"]].concat()).json();
    assert_eq!(v["totals"]["calls"], 1);
    assert_eq!(v["tools"], serde_json::json!([{"tool": "Write", "uses": 1, "errors": 0}]));
    // Once the earlier session's file is gone (Claude Code's clean-up), the copied call is the resumed session's,
    // and so is its tool use (it was counted nowhere: the line names a session that no longer has calls).
    std::fs::remove_file(project.join("aaaa-sess.jsonl")).unwrap();
    std::fs::remove_file(project.join("agent-a2271d1.jsonl")).unwrap();
    let v = run(&[&args[..], &["--format", "json"]].concat()).json();
    assert_eq!(v["totals"]["calls"], 2);
    assert_eq!(
        v["tools"],
        serde_json::json!([{"tool": "Read", "uses": 1, "errors": 0}, {"tool": "Write", "uses": 1, "errors": 0}])
    );
}

#[test]
fn unknown_and_ambiguous_sessions() {
    cc(&["show", "nope"]).fails(1, "no calls for session `nope`");
    cc(&["show", "sess-beta"]).fails(2, "matches 2 sessions");
    cc(&["show"]).fails(2, "<SESSION>");
    // An empty id is a prefix of every session: with one session it showed that one.
    let rec = r#"{"timestamp":"2025-10-03T12:00:00Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{"input":10,"output":1},"metered":true,"outcome":{"status":"ok"},"dimensions":{"session":"s1"}}"#;
    let one = cli_support::Records::new(&[rec]);
    for empty in ["", "  "] {
        one.run(&["show", empty]).fails(2, "`show` needs a session id or a prefix of one, not an empty one");
    }
    one.run(&["show", "s"]).ok();
}

#[test]
fn calls_of_a_records_file_without_a_cost_are_priced_as_the_totals() {
    // Bare records carry no cost; the ledger prices them, and each call must read the same price.
    let rec = r#"{"timestamp":"2025-10-03T12:00:00Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{"input":1000,"cache_read":2000,"cache_write_5m":100,"cache_write_1h":0,"output":500,"reasoning":0},"metered":true,"outcome":{"status":"ok"},"dimensions":{"session":"s1"}}"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, format!("{rec}\n")).unwrap();
    let args = ["--records", file.to_str().unwrap(), "--now", cli_support::NOW, "show", "s1"];
    let v = run(&[&args[..], &["--format", "json"]].concat()).json();
    // 1,000 × $3 + 2,000 × $0.30 + 100 × $3.75 + 500 × $15 per million.
    close(v["totals"]["cost_usd"].as_f64().unwrap(), 0.011475);
    assert_eq!(v["calls"][0]["cost"]["total"], 11_475_000_000u64);
    let text = run(&args).ok().to_owned();
    assert!(!text.contains("unpriced"), "{text}");
    assert_eq!(text.matches("$0.0115").count(), 2, "{text}");
}

#[test]
fn a_call_without_usage_reads_unmetered_not_unpriced() {
    // The ledger counts an unmetered call (closed without usage) as no unpriced call; its row says so.
    let unmetered = r#"{"timestamp":"2025-10-03T12:00:00Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{"input":0,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":0,"reasoning":0},"metered":false,"outcome":{"status":"error","error_type":"overloaded_error"},"dimensions":{"session":"s1"}}"#;
    let records = cli_support::Records::new(&[unmetered]);
    assert_eq!(records.run(&["show", "s1", "--format", "json"]).json()["totals"]["unpriced_calls"], 0);
    let text = records.run(&["show", "s1"]).ok().to_owned();
    assert!(text.contains("unmetered") && !text.contains("unpriced"), "{text}");
}

#[test]
fn the_total_says_unpriced_and_failed_calls_are_named() {
    // sess-gamma-1 has a call on a model the price book does not know: its total is not the whole cost.
    let text = cc(&["show", "sess-gamma-1"]).ok().to_owned();
    let totals = text.lines().nth(5).unwrap_or_default();
    assert!(totals.contains("$0.0001 + unpriced"), "{text}");
    assert!(!text.contains("failed"), "no failed call, no note: {text}");
    // Claude Code's own API error notice has no model: it is named as `summary` names it.
    let text = cc(&["show", "sess-alpha-1"]).ok().to_owned();
    assert!(text.contains("│ 10-01 09:06:00 ┆ <synthetic> "), "{text}");
    assert!(text.contains("\n1 call failed: 10-01 09:06:00 api_error\n"), "{text}");

    let ok = r#"{"timestamp":"2025-10-03T12:00:00Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{"input":1000,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":100,"reasoning":0},"metered":true,"outcome":{"status":"ok"},"dimensions":{"session":"s1"}}"#;
    let failed = ok
        .replace("12:00:00", "12:00:05")
        .replace(r#"{"status":"ok"}"#, r#"{"status":"error","error_type":"overloaded_error"}"#);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, format!("{ok}\n{failed}\n")).unwrap();
    let text = run(&["--records", file.to_str().unwrap(), "--now", cli_support::NOW, "show", "s1"]).ok().to_owned();
    assert!(text.contains("\n1 call failed: 10-03 12:00:05 overloaded_error\n"), "{text}");
}

/// A records file of `n` sessions of one call each, in five days of August 2025 (two months before --now).
fn sessions_in_august(n: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let rec = |i: usize| {
        format!(
            r#"{{"timestamp":"2025-08-0{}T12:{:02}:{:02}Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{{"input":1000,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":100,"reasoning":0}},"metered":true,"outcome":{{"status":"ok"}},"dimensions":{{"session":"sess{i:04}"}}}}"#,
            1 + i % 5,
            i % 60,
            i % 59
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, (0..n).map(|i| rec(i) + "\n").collect::<String>()).unwrap();
    (dir, file)
}

#[test]
fn totals_of_a_session_among_more_than_a_bucket_holds() {
    // Month buckets of a capped ledger keep 447 sessions each and fold the rest into `(other)`, so the
    // session's totals must not come from such a ledger of every record.
    let (_dir, file) = sessions_in_august(1_200);
    for session in ["sess0000", "sess1199"] {
        let v =
            run(&["--records", file.to_str().unwrap(), "--now", cli_support::NOW, "show", session, "--format", "json"])
                .json();
        assert_eq!(v["totals"]["calls"], 1, "{session}");
        close(v["totals"]["cost_usd"].as_f64().unwrap(), 0.0045);
    }
}

#[test]
fn a_breakdown_by_session_keeps_every_session_past_the_ledgers_caps() {
    // A meter's ledger keeps 447 sessions a bucket and folds the rest into `(other)`; the CLI's ledgers hold
    // records already in memory and keep every session.
    let (_dir, file) = sessions_in_august(1_200);
    let args = ["--records", file.to_str().unwrap(), "--now", cli_support::NOW, "summary", "--group-by", "session"];
    let v = run(&[&args[..], &["--format", "json"]].concat()).json();
    let groups = v["groups"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1_200);
    assert!(groups.iter().all(|g| g["key"] != "(other)" && g["calls"] == 1));
}

#[test]
fn calls_in_the_hour_a_clock_goes_back_say_their_offset() {
    // 05:30 and 06:30 UTC on 2025-11-02 are both 01:30 in New York: the two rows read apart.
    let ok = r#"{"timestamp":"2025-11-02T05:30:00Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{"input":1000,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":100,"reasoning":0},"metered":true,"outcome":{"status":"ok"},"dimensions":{"session":"s1"}}"#;
    let failed = ok
        .replace("05:30:00", "06:30:00")
        .replace(r#"{"status":"ok"}"#, r#"{"status":"error","error_type":"overloaded_error"}"#);
    let records = cli_support::Records::new(&[ok.to_owned(), failed]);
    let text = run(&[
        "--records",
        records.path.as_str(),
        "--now",
        "2025-11-03T00:00:00Z",
        "--tz",
        "America/New_York",
        "show",
        "s1",
    ])
    .ok()
    .to_owned();
    assert!(text.contains("│ 11-02 01:30:00 (-04:00) ┆"), "{text}");
    assert!(text.contains("│ 11-02 01:30:00 (-05:00) ┆"), "{text}");
    assert!(text.contains("\n1 call failed: 11-02 01:30:00 (-05:00) overloaded_error\n"), "{text}");
}

#[test]
fn a_session_with_web_searches_shows_them_per_call_and_in_the_cost() {
    // 1,000 input and 100 output tokens on Sonnet 4.5 ($0.0045), one call with 3 searches ($0.01 each).
    let call = |second: u32, searches: u64| {
        format!(
            r#"{{"timestamp":"2025-10-03T12:00:{second:02}Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{{"input":1000,"output":100}},"web_search_requests":{searches},"metered":true,"outcome":{{"status":"ok"}},"dimensions":{{"session":"s1"}}}}"#
        )
    };
    let records = cli_support::Records::new(&[call(0, 0), call(1, 3)]);
    let v = records.run(&["show", "s1", "--format", "json"]).json();
    close(v["totals"]["cost_usd"].as_f64().unwrap(), 2.0 * 0.0045 + 0.03);
    assert_eq!(v["calls"][1]["web_search_requests"], 3);
    assert_eq!(v["calls"][1]["cost"]["web_search"], 30_000_000_000u64);
    let text = records.run(&["show", "s1"]).ok().to_owned();
    assert!(text.contains("searches"), "{text}");
    assert!(text.contains("$0.0345"), "{text}");
    // Without searches, no column.
    let records = cli_support::Records::new(&[call(0, 0)]);
    let text = records.run(&["show", "s1"]).ok().to_owned();
    assert!(!text.contains("searches"), "{text}");
}

#[test]
fn show_tools_of_a_relays_repeated_message_id_stay_with_each_session() {
    // A relay that gives every response one message id and no request id: the loader keeps a call of it in each
    // session, and the tool uses were filed by where the last of those calls went (the other session's dropped).
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("projects").join("-home-u-proj");
    std::fs::create_dir_all(&project).unwrap();
    let line = |session: &str, n: u32, tool: &str| {
        format!(
            r#"{{"type":"assistant","timestamp":"2025-10-01T10:00:0{n}Z","sessionId":"{session}","message":{{"id":"msg_relay","model":"claude-sonnet-4-5","content":[{{"type":"tool_use","id":"toolu_{n}","name":"{tool}","input":{{}}}}],"usage":{{"input_tokens":10{n},"output_tokens":10}}}}}}"#
        ) + "\n"
    };
    std::fs::write(project.join("aaaa-sess.jsonl"), line("aaaa-sess", 1, "Read")).unwrap();
    std::fs::write(project.join("bbbb-sess.jsonl"), line("bbbb-sess", 2, "Write")).unwrap();
    let root = dir.path().to_str().unwrap();
    for (session, tool) in [("aaaa-sess", "Read"), ("bbbb-sess", "Write")] {
        let args = ["--claude-code", root, "--now", "2025-10-02T00:00:00Z", "show", session, "--include-tools"];
        let v = run(&[&args[..], &["--format", "json"]].concat()).json();
        assert_eq!(v["totals"]["calls"], 1, "{session}");
        assert_eq!(v["tools"], serde_json::json!([{"tool": tool, "uses": 1, "errors": 0}]), "{session}");
    }
}
