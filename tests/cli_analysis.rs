//! `cache-report`, `optimize`, `forecast`, `compare` over the fixture: the library's reports, as tables and
//! as JSON.
#![cfg(feature = "cli")]

use crate::cli_support;

use serde_json::json;

use cli_support::{Records, Transcript, cc, close, haiku_record, usage_line};

#[test]
fn cache_report() {
    let v = cc(&["cache-report", "--format", "json"]).json();
    let m = &v["cache"]["cache_metrics"];
    assert_eq!(m["tokens_saved"], 205_100);
    assert_eq!(m["cache_creation_tokens"], 20_500);
    // Calls reading the cache: A1, A2, S2, B1, B2, G2.
    assert_eq!(m["total_cache_hits"], 6);
    assert_eq!(m["total_cache_misses"], 7);
    // 205,100 of 6,298 + 205,100 + 20,500 prompt tokens.
    close(m["hit_rate"].as_f64().unwrap(), 205_100.0 / 231_898.0);
    let text = cc(&["cache-report"]).ok().to_owned();
    assert!(text.starts_with("Prompt cache,"), "{text}");
    assert!(text.contains("205,100") && text.contains("cache writes never read"), "{text}");
}

#[test]
fn cache_report_rates_only_what_was_measured() {
    // October 1: a call reading half its prompt from the cache; October 2: none; October 3: a call reading
    // nothing, a measured 0% that the table left out with the empty day.
    let rec = |ts: &str, read: u64| {
        format!(
            r#"{{"timestamp":"{ts}","duration_us":5,"model":"claude-sonnet-4-5","tokens":{{"input":1000,"cache_read":{read},"output":100}},"metered":true,"outcome":{{"status":"ok"}},"dimensions":{{}}}}"#
        )
    };
    let records = cli_support::Records::new(&[rec("2025-10-01T10:00:00Z", 1000), rec("2025-10-03T10:00:00Z", 0)]);
    let text = records.run(&["--color", "never", "cache-report", "--since", "2025-10-01"]).ok().to_owned();
    let by_day = text.split("By day").nth(1).unwrap_or_else(|| panic!("{text}"));
    assert!(by_day.contains("2025-10-01 ┆    50.0%"), "{text}");
    assert!(by_day.contains("2025-10-03 ┆     0.0%"), "{text}");
    assert!(!by_day.contains("2025-10-02"), "{text}");
    // No call repeated a previous turn (no sessions): no reuse rate, not a 100% one.
    let reuse = text.lines().find(|l| l.contains("context reuse rate")).unwrap();
    assert!(reuse.ends_with(" - │"), "{text}");
    let md = records.run(&["report", "--since", "2025-10-01"]).ok().to_owned();
    assert!(md.contains("\n| Context reuse rate | - |\n"), "{md}");
    // `optimize` printed the score's placeholder, 100.0%.
    let optimize = records.run(&["--color", "never", "optimize", "--since", "2025-10-01"]).ok().to_owned();
    assert!(optimize.contains("   context reuse -   "), "{optimize}");
    let row = optimize.lines().find(|l| l.contains("cache_reuse")).unwrap_or_else(|| panic!("{optimize}"));
    assert!(row.contains("┆     - ┆"), "{optimize}");
    let v = records.run(&["optimize", "--since", "2025-10-01", "--format", "json"]).json();
    assert_eq!(v["efficiency"]["efficiency_scores"]["reusable_tokens"], 0);
    let v = records.run(&["cache-report", "--since", "2025-10-01", "--format", "json"]).json();
    let prompts: Vec<u64> =
        v["cache"]["time_series"].as_array().unwrap().iter().map(|p| p["prompt_tokens"].as_u64().unwrap()).collect();
    assert_eq!(&prompts[..3], [2_000, 0, 1_000]);
}

#[test]
fn optimize() {
    let v = cc(&["optimize", "--format", "json"]).json();
    let e = &v["efficiency"];
    assert_eq!(e["group_by"], "project");
    let score = e["efficiency_scores"]["overall"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&score));
    let band = e["efficiency_scores"]["band"].as_str().unwrap();
    assert!(["green", "amber", "red"].contains(&band));
    assert_eq!(e["breakdowns"].as_array().unwrap().len(), 3);
    for s in e["optimization_suggestions"].as_array().unwrap() {
        assert!(s["potential_savings"].as_f64().unwrap() > 0.0);
    }
    let by_session = cc(&["optimize", "--group-by", "session", "--format", "json"]).json();
    assert_eq!(by_session["efficiency"]["breakdowns"].as_array().unwrap().len(), 4);
    let text = cc(&["optimize"]).ok().to_owned();
    assert!(text.contains("Efficiency score:") && text.contains("component"), "{text}");
    let coloured = cc(&["--color", "always", "optimize"]).ok().to_owned();
    let code = match band {
        "green" => "\x1b[32m",
        "amber" => "\x1b[33m",
        _ => "\x1b[31m",
    };
    assert!(coloured.contains(code), "traffic-light colour {code:?} missing:\n{coloured}");
    cc(&["optimize", "--group-by", "colour"]).fails(2, "unknown dimension");
    // Accepted by the dimension parser, refused by the report: refused up front, as a usage error.
    cc(&["optimize", "--group-by", "tool"]).fails(2, "tool executions carry no tokens to score");
}

#[test]
fn forecast() {
    let v = cc(&["forecast", "--days", "5", "--budget", "1", "--format", "json"]).json();
    let f = &v["forecast"];
    assert_eq!(f["days"].as_array().unwrap().len(), 5);
    assert_eq!(f["days"][0]["date"], "2025-10-05");
    close(f["month_to_date_usd"].as_f64().unwrap(), 0.37153);
    assert_eq!(f["limit"]["limit_usd"], 1.0);
    let text = cc(&["forecast"]).ok().to_owned();
    assert!(text.contains("Next days") && text.contains("projected month total"), "{text}");
    cc(&["forecast", "--days", "0"]).fails(2, "0");
    cc(&["forecast", "--budget=-5"]).fails(2, "positive");
    cc(&["forecast", "--budget", "lots"]).fails(2, "not an amount");
    // A negative number is a value to check, not an unknown flag.
    cc(&["forecast", "--days", "-1"]).fails(2, "not in 1..=366");
    cc(&["forecast", "--budget", "-5"]).fails(2, "give a positive amount");
    // Past 1e12 the amount printed would be rounded off (1e18 showed as $184,467,440,737,095,516.15).
    cc(&["forecast", "--budget", "1e18"]).fails(2, "give at most 1e12 USD");
}

#[test]
fn a_forecast_over_a_weekday_workload_shows_its_weekly_pattern() {
    // Five weeks of $10 a weekday and $0.50 a weekend day (haiku-4-5 input at $1 / Mtok), read on Saturday
    // 2025-10-04: Sunday is forecast at cents and Monday at $10, and the table and report say why.
    let lines: Vec<String> = (1..=35)
        .map(|back| {
            let day = chrono::NaiveDate::from_ymd_opt(2025, 10, 4).unwrap() - chrono::Duration::days(back);
            let weekend = chrono::Datelike::weekday(&day).num_days_from_monday() >= 5;
            let input: u64 = if weekend { 500_000 } else { 10_000_000 } + [0, 150_000, 60_000][back as usize % 3];
            haiku_record(&format!("{day}T12:00:00Z"), input)
        })
        .collect();
    let records = Records::new(&lines);
    let v = records.run(&["forecast", "--days", "2", "--format", "json"]).json();
    let f = &v["forecast"];
    let effects = &f["weekday_effects_usd"];
    assert!(effects["sat"].as_f64().unwrap() < -6.0 && effects["mon"].as_f64().unwrap() > 2.0, "{f}");
    let (sunday, monday) = (f["days"][0]["cost_usd"].as_f64().unwrap(), f["days"][1]["cost_usd"].as_f64().unwrap());
    assert!(sunday < 1.0 && (monday - 10.0).abs() < 0.5, "{f}");
    let text = records.run(&["forecast", "--days", "2"]).ok().to_owned();
    assert!(text.contains("with a weekly pattern") && text.contains("Sat -$6."), "{text}");
    let md = records.run(&["report", "--format", "markdown"]).ok().to_owned();
    assert!(md.contains("By day of the week, against the trend: Mon +$2."), "{md}");
    // Every call priced: "cost per call" (with calls without a price, "cost per priced call", as the README's
    // samples over the fixture show).
    let summary = records.run(&["summary"]).ok().to_owned();
    assert!(summary.contains("│ cost per call ") && !summary.contains("cost per priced call"), "{summary}");
}

/// `tokenmeter --claude-code <fixture> --now AT args…`.
fn cc_at(at: &str, args: &[&str]) -> serde_json::Value {
    let dir = cli_support::fixture("claude_code");
    let mut all = vec!["--claude-code", dir.as_str(), "--now", at];
    all.extend_from_slice(args);
    cli_support::run(&all).json()
}

#[test]
fn blocks_of_five_hours_with_the_open_ones_projection_and_a_limit() {
    // The fixture's calls: 2025-10-01 09:xx-10:xx, 2025-10-02 10:xx-12:xx, 2025-10-03 08:00 and 09:00 (before now,
    // 10:30) and later that day (after it).
    let v = cc_at("2025-10-03T10:30:00Z", &["blocks", "--format", "json", "--token-limit", "max"]);
    let r = &v["blocks"];
    let starts: Vec<&str> = r["blocks"].as_array().unwrap().iter().map(|b| b["start"].as_str().unwrap()).collect();
    assert_eq!(starts, ["2025-10-01T09:00:00Z", "2025-10-02T10:00:00Z", "2025-10-03T08:00:00Z"], "{v}");
    let open = &r["blocks"][2];
    assert_eq!(
        (&open["active"], &open["calls"], &open["total_tokens"]),
        (&json!(true), &json!(2), &json!(3513)),
        "{v}"
    );
    // 3,500 tokens after its first call's 13, in the 150 minutes since, 150 minutes left: 3,500 more by its close.
    assert_eq!(r["active"]["projected_tokens"], 7013, "{v}");
    // `max`: the largest closed block, the 2nd's 217,930 tokens.
    assert_eq!(
        (&v["token_limit"]["tokens"], &v["token_limit"]["basis"]),
        (&json!(217_930), &json!("largest_closed_block"))
    );
    // The blocks' tokens are the summary's over the same calls.
    let summary = cc_at("2025-10-03T10:30:00Z", &["summary", "--format", "json"]);
    let total: u64 = r["blocks"].as_array().unwrap().iter().map(|b| b["total_tokens"].as_u64().unwrap()).sum();
    assert_eq!(json!(total), summary["summary"]["tokens"]["total"], "{summary}");

    let active = cc_at("2025-10-03T10:30:00Z", &["blocks", "--active", "--format", "json"]);
    assert_eq!((active["blocks"]["blocks"].as_array().unwrap().len(), &active["blocks_not_shown"]), (1, &json!(2)));
    let text = cc(&["blocks", "--active"]).ok().to_owned();
    assert!(text.contains("No block is open now (the last closed at 2025-10-03 13:00)"), "{text}");
    let dir = cli_support::fixture("claude_code");
    let text =
        cli_support::run(&["--claude-code", &dir, "--now", "2025-10-03T10:30:00Z", "blocks", "--token-limit", "3000"])
            .ok()
            .to_owned();
    assert!(text.contains("open, 2h 30m left") && text.contains("233.8% of the 3,000-token limit: past it"), "{text}");
    let recent = cc_at("2025-10-03T10:30:00Z", &["blocks", "--since", "2025-10-02", "--format", "json"]);
    assert_eq!(recent["blocks_not_shown"], 1);
    // A window that starts after the open block opened still shows it, with its rates (it hid the block and kept
    // its projection: `"blocks": []` beside `"active": {…}`).
    let later = cc_at("2025-10-03T10:30:00Z", &["blocks", "--since", "2025-10-03T09:30:00Z", "--format", "json"]);
    // A block opened before `--since` with a call after it is in the window: the 2nd's (10:00-15:00, calls to
    // 12:xx) from 11:00 on; it was left out for opening at 10:00.
    let overlap = cc_at("2025-10-04T00:00:00Z", &["blocks", "--since", "2025-10-02T11:00:00Z", "--format", "json"]);
    let starts: Vec<&str> =
        overlap["blocks"]["blocks"].as_array().unwrap().iter().map(|b| b["start"].as_str().unwrap()).collect();
    assert_eq!(starts, ["2025-10-02T10:00:00Z", "2025-10-03T08:00:00Z"], "{overlap}");
    assert_eq!((later["blocks"]["blocks"].as_array().unwrap().len(), &later["blocks_not_shown"]), (1, &json!(2)));
    assert!(later["blocks"]["blocks"][0]["active"] == json!(true) && later["blocks"]["active"].is_object(), "{later}");
    // With no block open, a window after the last one: not "No calls.".
    let text = cli_support::run(&[
        "--claude-code",
        &dir,
        "--now",
        "2025-10-04T00:00:00Z",
        "blocks",
        "--since",
        "2025-10-03T20:00:00Z",
    ])
    .ok()
    .to_owned();
    assert!(text.contains("No block opened in the window asked for (3 earlier)."), "{text}");
    // Ten minutes after the block's first call, not before, its rates.
    let text = cli_support::run(&["--claude-code", &dir, "--now", "2025-10-03T08:05:00Z", "blocks", "--active"])
        .ok()
        .to_owned();
    assert!(text.contains("Open block: its rate is given from 10 minutes after its first call, at 08:00."), "{text}");

    cc(&["blocks", "--hours", "0"]).fails(2, "0 is not in 1..=24");
    cc(&["blocks", "--token-limit", "lots"]).fails(2, "give a positive number of tokens");
    cc(&["blocks", "--active", "--recent"]).fails(2, "cannot be used with");
}

#[test]
fn compare_all_is_everything_from_the_first_records_day() {
    // Calls on Aug 20 and 25 and Sep 20, read on Oct 15: August is a month bucket. `all` compared from the
    // ledger's oldest bucket, Aug 1, and values over the first record's day alone left August's calls out.
    let rec = |day: &str, agent: &str| {
        format!(
            r#"{{"timestamp":"2025-{day}T12:00:00Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{{"input":1000,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":100,"reasoning":0}},"metered":true,"outcome":{{"status":"ok"}},"dimensions":{{"agent":"{agent}"}}}}"#
        )
    };
    let records = Records::new(&[rec("08-20", "a"), rec("08-25", "b"), rec("09-20", "a")]);
    let v = records.run(&["compare", "--period", "all", "--format", "json"]).json();
    let c = &v["comparison"];
    assert_eq!((&c["b"]["window"]["from"], &c["b"]["calls"]), (&json!("2025-08-20T00:00:00Z"), &json!(3)), "{v}");
    assert_eq!((&c["a"]["window"]["to"], &c["a"]["calls"]), (&json!("2025-08-20T00:00:00Z"), &json!(0)), "{v}");
    let v = records.run(&["compare", "--a", "agent=a", "--b", "agent=b", "--period", "all", "--format", "json"]).json();
    let c = &v["comparison"];
    assert_eq!((&c["a"]["calls"], &c["b"]["calls"]), (&json!(2), &json!(1)), "{v}");
    assert_eq!(c["a"]["window"]["from"], "2025-08-20T00:00:00Z", "{v}");
}

#[test]
fn compare_says_over_what_lengths_the_change_was_worked_out() {
    // One call a minute from 11:30 to 12:59, compared at 12:59:30 over 1h: 30 calls before against 60 now is
    // no change as a rate (the records begin at 11:30), but the note spoke of the windows' own lengths (1 hour
    // each) and so said nothing, and the JSON did not say what was compared.
    let lines: Vec<String> = (0..90)
        .map(|m| {
            let (h, mi) = (11 + (30 + m) / 60, (30 + m) % 60);
            format!(
                r#"{{"timestamp":"2025-10-03T{h:02}:{mi:02}:00Z","duration_us":5,"model":"claude-haiku-4-5","tokens":{{"input":100,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":10,"reasoning":0}},"metered":true,"outcome":{{"status":"ok"}},"dimensions":{{}}}}"#
            )
        })
        .collect();
    let records = Records::new(&lines);
    let run = |format: &str| {
        cli_support::run(&[
            "--records",
            &records.path,
            "--now",
            "2025-10-03T12:59:30Z",
            "compare",
            "--period",
            "1h",
            "--format",
            format,
        ])
    };
    let v = run("json").json();
    let c = &v["comparison"];
    assert_eq!((&c["a"]["calls"], &c["b"]["calls"]), (&json!(30), &json!(60)), "{v}");
    assert_eq!((&c["a"]["compared_seconds"], &c["b"]["compared_seconds"]), (&json!(1800), &json!(3600)), "{v}");
    assert_eq!(c["deltas"]["calls_pct"], json!(0.0), "{v}");
    let text = run("table").ok().to_owned();
    assert!(
        text.contains(
            "The sides are not equally long (1.00 hours against 0.50, the previous counted from the first record)"
        ),
        "{text}"
    );
}

#[test]
fn compare() {
    // Period against the previous one: the last 7 days hold everything, the 7 before nothing.
    let v = cc(&["compare", "--period", "7d", "--format", "json"]).json();
    let c = &v["comparison"];
    assert_eq!(c["kind"], "periods");
    assert_eq!(c["b"]["label"], "current");
    assert_eq!(c["b"]["calls"], 13);
    assert_eq!(c["a"]["calls"], 0);
    // Main conversation against sub-agents.
    let v =
        cc(&["compare", "--a", "agent=main", "--b", "agent=subagent", "--period", "all", "--format", "json"]).json();
    let c = &v["comparison"];
    assert_eq!(c["kind"], "values");
    assert_eq!(c["dimension"], "agent");
    assert_eq!((&c["a"]["calls"], &c["b"]["calls"]), (&11.into(), &2.into()));
    close(c["b"]["cost_usd"].as_f64().unwrap(), 0.001812);
    // The fixture's one call of an unknown model ran in the main conversation: its cost is marked, not $0.
    assert_eq!((&c["a"]["unpriced_calls"], &c["b"]["unpriced_calls"]), (&1.into(), &0.into()));
    let text = cc(&["compare", "--a", "agent=main", "--b", "agent=subagent", "--period", "all"]).ok().to_owned();
    assert!(text.starts_with("Comparison: agent main against agent subagent"), "{text}");
    assert!(text.contains("+ unpriced") && text.contains("1 call of main has no price"), "{text}");
    // A side without calls has no score and no hit rate (not a perfect 100 and 0%), so no change in points.
    let v = cc(&["compare", "--a", "agent=main", "--b", "agent=nobody", "--format", "json"]).json();
    let c = &v["comparison"];
    assert_eq!((&c["b"]["efficiency_score"], &c["b"]["cache_hit_rate"]), (&json!(null), &json!(null)));
    assert_eq!(
        (&c["deltas"]["efficiency_score_points"], &c["deltas"]["cost_per_call_pct"]),
        (&json!(null), &json!(null))
    );
    close(c["a"]["efficiency_score"].as_f64().unwrap(), 86.4);
    let v = cc(&["compare", "--period", "7d", "--format", "json"]).json();
    assert_eq!(v["comparison"]["a"]["efficiency_score"], json!(null), "the week before holds no calls");
    let text = cc(&["optimize", "--period", "1h"]).ok().to_owned();
    assert!(text.contains("No calls in this window") && !text.contains("100.0"), "{text}");
    cc(&["compare", "--a", "agent=main"]).fails(2, "--b");
    cc(&["compare", "--a", "agent=main", "--b", "model=x"]).fails(2, "same dimension");
    cc(&["compare", "--a", "main", "--b", "x"]).fails(2, "dimension=value");
    // A value no call has is most often a typo: a note says so (the table alone read as a -100% change).
    let r = cc(&["compare", "--a", "model=claude-fable-9", "--b", "model=nonexistent", "--period", "all"]);
    r.ok();
    assert!(r.stderr.contains("note: no call in the source has model=nonexistent"), "{}", r.stderr);
    assert!(!r.stderr.contains("model=claude-fable-9"), "{}", r.stderr);
    let r = cc(&["compare", "--a", "agent=main", "--b", "agent=subagent", "--period", "1h"]);
    assert!(r.stderr.contains("note: no call of agent=main in this window"), "{}", r.stderr);
    cc(&["compare", "--a", "tool=Bash", "--b", "tool=Read"]).fails(2, "tool executions carry no tokens");
    let bare = cli_support::run(&["--claude-code", &cli_support::fixture("claude_code"), "compare", "--a", "agent"]);
    bare.fails(2, "`agent` is not of the form dimension=value");
    assert!(!bare.stderr.contains("`filter`"), "the library's argument name leaked: {}", bare.stderr);
}

#[test]
fn cache_report_counts_one_unread_write_in_the_singular() {
    let rec = r#"{"timestamp":"2025-10-03T12:00:00Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{"input":1000,"cache_read":0,"cache_write_5m":100,"cache_write_1h":0,"output":500,"reasoning":0},"metered":true,"outcome":{"status":"ok"},"dimensions":{"session":"s1"}}"#;
    let text = cli_support::Records::new(&[rec]).run(&["cache-report"]).ok().to_owned();
    assert!(text.contains("1 write, 100 tokens,"), "{text}");
}

#[test]
fn compare_models_by_the_ids_show_prints() {
    // `show` prints the transcripts' dated ids; the ledger keys priced calls by the canonical id.
    let v = cc(&[
        "compare",
        "--a",
        "model=claude-sonnet-4-5-20250929",
        "--b",
        "model=anthropic.claude-haiku-4-5-20251001-v1:0",
        "--period",
        "all",
        "--format",
        "json",
    ])
    .json();
    let c = &v["comparison"];
    assert_eq!((&c["a"]["calls"], &c["b"]["calls"]), (&5.into(), &3.into()));
    assert_eq!((&c["a"]["label"], &c["b"]["label"]), (&"claude-sonnet-4-5".into(), &"claude-haiku-4-5".into()));
    // A model the price book does not know is compared under the id given.
    let v = cc(&["compare", "--a", "model=claude-fable-9", "--b", "model=gpt-x", "--format", "json"]).json();
    assert_eq!(v["comparison"]["a"]["calls"], 1);
}

#[test]
fn cache_report_of_a_window_without_calls_says_so() {
    // The last hour before --now holds no call: no rates (a 0% hit rate beside a 100% reuse rate).
    let text = cc(&["cache-report", "--period", "1h"]).ok().to_owned();
    assert!(text.contains("No calls in this window: no cache to measure.") && !text.contains("100.0%"), "{text}");
    let md = cc(&["report", "--period", "1h"]).ok().to_owned();
    assert!(md.contains("| Token hit rate | - |") && md.contains("| Context reuse rate | - |"), "{md}");
    // The JSON keeps the library's report.
    let v = cc(&["cache-report", "--period", "1h", "--format", "json"]).json();
    assert_eq!(v["cache"]["cache_metrics"]["total_cache_misses"], 0);
}

#[test]
fn optimize_over_calls_without_usage_scores_nothing() {
    // Every call of the window failed before its usage came: no score (it read 100.0, green).
    let rec = r#"{"timestamp":"2025-10-03T12:00:00Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{"input":0,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":0,"reasoning":0},"metered":false,"outcome":{"status":"error","error_type":"overloaded_error"},"dimensions":{"session":"s1"}}"#;
    let text = cli_support::Records::new(&[rec]).run(&["optimize"]).ok().to_owned();
    assert!(text.contains("1 call in this window, none with usage") && !text.contains("100.0"), "{text}");
}

#[test]
fn cache_report_over_calls_without_usage_counts_them() {
    // Two calls in the window, both failed before their usage came: it said "No calls in this window".
    let rec = r#"{"timestamp":"2025-10-03T12:00:00Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{"input":0,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":0,"reasoning":0},"metered":false,"outcome":{"status":"error","error_type":"overloaded_error"},"dimensions":{"session":"s1"}}"#;
    let text = cli_support::Records::new(&[rec, rec]).run(&["cache-report"]).ok().to_owned();
    assert!(
        text.contains(
            "2 calls in this window, none with usage (failed or cut off before it came): no cache to measure."
        ) && !text.contains("No calls")
            && !text.contains('%'),
        "{text}"
    );
}

#[test]
fn every_dollar_figure_that_leaves_out_unpriced_calls_says_so() {
    // Calls on a model the price book does not know only: every dollar figure is $0 of priced calls, and must
    // not read as "nothing was spent".
    let t = Transcript::new(&[
        usage_line("2025-10-02T10:00:00Z", "gpt-4o", "m1", 1_000, 200),
        usage_line("2025-10-03T10:00:00Z", "gpt-4o", "m2", 1_000, 200),
    ]);
    let text = t.run(&["-q", "forecast"]).ok().to_owned();
    for figure in ["daily average", "month to date", "projected month total"] {
        let line = text.lines().find(|l| l.contains(figure)).unwrap_or_else(|| panic!("{figure}: {text}"));
        assert!(line.contains("$0.00 + unpriced"), "{line}\n{text}");
    }
    assert!(text.contains("Not in the cost: 2 calls"), "{text}");
    // Two days of history: their mean, whose band is a stated ±82%, not a 90% prediction band (read as one).
    assert!(text.contains("from the mean of 2 full days") && text.contains("band (stated ±82%)"), "{text}");
    assert!(!text.contains("90% band"), "{text}");
    let f = t.run(&["forecast", "--format", "json"]).json();
    assert_eq!(f["forecast"]["unpriced_calls"], 2);

    let text = t.run(&["-q", "summary"]).ok().to_owned();
    let total = text.lines().find(|l| l.starts_with("│ total")).unwrap();
    assert!(total.trim_end_matches(['│', ' ']).ends_with("unpriced"), "{total}");
    // A figure made of unpriced calls only has no dollar part (a forecast, whose history is not counted by
    // call, keeps its $0.00 + unpriced above).
    let rate = text.lines().find(|l| l.contains("monthly run-rate")).unwrap();
    assert!(rate.trim_end_matches(['│', ' ']).ends_with("┆ unpriced"), "{rate}");
    let saved = text.lines().find(|l| l.contains("cache savings")).unwrap();
    assert!(saved.trim_end_matches(['│', ' ']).ends_with("┆ unpriced"), "{saved}");

    let md = t.run(&["-q", "report", "--type", "executive"]).ok().to_owned();
    assert!(
        md.contains("| Cost | unpriced |") && md.contains("| Projected total of 2025-10 | $0.00 + unpriced |"),
        "{md}"
    );
    assert!(md.contains("Month to date $0.00 + unpriced"), "{md}");

    // Priced and unpriced calls: the priced part, marked; the alert says so too.
    let fx = cc(&["-q", "watch", "--period", "7d", "--threshold", "0.25", "--iterations", "1"]);
    assert!(fx.stderr.contains("ALERT: $0.3715 + unpriced spent"), "{}", fx.stderr);
    let row = fx.ok().lines().find(|l| l.contains("234,305")).unwrap().to_owned();
    assert!(row.contains("$0.3715 + unpriced") && row.contains("$0.0026 + unpriced"), "{row}");
    let under = cc(&["-q", "watch", "--period", "7d", "--threshold", "5", "--iterations", "1"]).ok().to_owned();
    assert!(under.contains("$5.00 (at most $4.63 left)"), "{under}");
    let text = cc(&["-q", "forecast"]).ok().to_owned();
    assert!(text.contains("$3.17 + unpriced"), "{text}");
    assert_eq!(cc(&["forecast", "--format", "json"]).json()["forecast"]["unpriced_calls"], 1);
}
