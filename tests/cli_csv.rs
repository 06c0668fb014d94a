//! `--format csv` of `summary`, `show`, `blocks`, `compare` and `budget`: every row agrees with the command's own
//! JSON, money exact to the pico-dollar, names guarded against spreadsheet formulas, one table only.
#![cfg(feature = "cli")]

use std::collections::HashMap;

use crate::cli_support;

use cli_support::{Records, cc, fixture, haiku_record, run};

/// The CSV's header and its rows as maps of column to cell.
fn parse(text: &str) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let mut r = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header: Vec<String> = r.headers().expect("header").iter().map(str::to_owned).collect();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap_or_else(|e| panic!("bad CSV row ({e}):\n{text}"));
            header.iter().cloned().zip(rec.iter().map(str::to_owned)).collect()
        })
        .collect();
    (header, rows)
}

/// Pico-dollars from a CSV's plain decimal (`0.037803`): exact, no float.
fn picos(cell: &str) -> u128 {
    let (whole, frac) = cell.split_once('.').unwrap_or((cell, ""));
    assert!(frac.len() <= 12, "more decimals than pico-dollars: {cell}");
    whole.parse::<u128>().unwrap() * 1_000_000_000_000 + format!("{frac:0<12}").parse::<u128>().unwrap()
}

fn u(v: &serde_json::Value) -> String {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}")).to_string()
}

#[test]
fn summary_rows_per_dimension_are_the_jsons_rows() {
    for by in ["model", "project", "session", "agent"] {
        let json = cc(&["summary", "--group-by", by, "--format", "json"]).json();
        let (header, rows) = parse(cc(&["summary", "--group-by", by, "--format", "csv"]).ok());
        assert_eq!(header[0], by);
        assert_eq!(
            header[1..],
            [
                "calls",
                "input",
                "output",
                "cache_read",
                "cache_write_5m",
                "cache_write_1h",
                "total_tokens",
                "cost_usd",
                "unpriced_calls",
                "failed_calls",
                "unmetered_calls",
                "reasoning",
                "cost_share"
            ]
        );
        let groups = json["groups"]["groups"].as_array().unwrap();
        assert_eq!(rows.len(), groups.len(), "{by}");
        let mut total = 0u128;
        for (row, g) in rows.iter().zip(groups) {
            // Claude Code's project names start with `-`: a formula to a spreadsheet, so written as text.
            let key = g["key"].as_str().unwrap();
            let expected = if key.starts_with('-') { format!("'{key}") } else { key.to_owned() };
            assert_eq!(row[by], expected);
            assert_eq!(row["calls"], u(&g["calls"]));
            assert_eq!(row["unpriced_calls"], u(&g["unpriced_calls"]));
            assert_eq!(row["failed_calls"], u(&g["failed_calls"]));
            for (col, key) in [("input", "input"), ("output", "output"), ("cache_read", "cache_read")] {
                assert_eq!(row[col], u(&g["tokens"][key]), "{by} {col}");
            }
            assert_eq!(row["total_tokens"], u(&g["tokens"]["total"]));
            assert_eq!(picos(&row["cost_usd"]), u128::from(g["cost_picos"].as_u64().unwrap()), "{by}");
            total += picos(&row["cost_usd"]);
        }
        // The rows of a partition add up to the summary's cost exactly.
        assert_eq!(total, u128::from(json["summary"]["cost_picos"].as_u64().unwrap()), "{by}");
    }
}

#[test]
fn summary_rows_per_day_say_which_days_are_partial() {
    let (header, rows) = parse(cc(&["--tz", "Europe/Paris", "summary", "--group-by", "day", "--format", "csv"]).ok());
    assert_eq!(header[..4], ["period_start", "period_end", "partial", "calls"]);
    // Paris days, from the first record's; the last one, now's, holds only its first two hours (now is
    // midnight UTC), every row written, those without calls too.
    assert_eq!(rows[0]["period_start"], "2025-10-01T00:00:00+02:00");
    assert_eq!(rows[0]["period_end"], "2025-10-02T00:00:00+02:00");
    let last = rows.last().unwrap();
    assert_eq!(last["period_start"], "2025-10-04T00:00:00+02:00");
    assert_eq!(last["partial"], "true");
    assert_eq!(rows[0]["partial"], "false");
    let calls: u64 = rows.iter().map(|r| r["calls"].parse::<u64>().unwrap()).sum();
    assert_eq!(calls, 13);
    // Without --group-by: rows per the grain the table would use (hours up to two days).
    let (header, _) = parse(cc(&["summary", "--period", "24h", "--format", "csv"]).ok());
    assert_eq!(header[0], "period_start");
}

#[test]
fn report_csv_is_the_summarys() {
    let report = cc(&["report", "--format", "csv"]).ok().to_owned();
    let summary = cc(&["summary", "--group-by", "day", "--format", "csv"]).ok().to_owned();
    assert_eq!(report, summary);
}

#[test]
fn show_writes_one_row_per_call() {
    let json = cc(&["show", "sess-alpha-1", "--format", "json"]).json();
    let (header, rows) = parse(cc(&["show", "sess-alpha-1", "--format", "csv"]).ok());
    assert_eq!(header[..3], ["timestamp", "session", "model"]);
    let calls = json["calls"].as_array().unwrap();
    assert_eq!(rows.len(), calls.len());
    assert_eq!(rows.len(), 6);
    for (row, c) in rows.iter().zip(calls) {
        assert_eq!(row["session"], "sess-alpha-1");
        assert_eq!(row["request_id"], c["request_id"].as_str().unwrap_or_default());
        assert_eq!(row["agent"], c["dimensions"]["agent"].as_str().unwrap());
        assert_eq!(row["output"], u(&c["tokens"]["output"]));
        assert_eq!(row["duration_us"], u(&c["duration_us"]));
        match c["cost"]["total"].as_u64() {
            Some(p) => {
                assert_eq!(picos(&row["cost_usd"]), u128::from(p));
                assert_eq!(row["priced"], "true");
            }
            None => assert_eq!(row["cost_usd"], ""),
        }
        let ts = chrono::DateTime::parse_from_rfc3339(&row["timestamp"]).unwrap();
        assert_eq!(ts.to_utc().to_rfc3339(), c["timestamp"].as_str().unwrap().replace('Z', "+00:00"));
    }
    assert_eq!(rows[0]["project"], "'-home-dev-alpha", "a formula to a spreadsheet, written as text");
    // The unpriced model's call, and the failed one.
    let (_, gamma) = parse(cc(&["show", "sess-gamma-1", "--format", "csv"]).ok());
    let fable = gamma.iter().find(|r| r["model"] == "claude-fable-9").expect("the unpriced call");
    assert_eq!((fable["priced"].as_str(), fable["cost_usd"].as_str()), ("false", ""));
    // Tools are a second table: CSV holds one.
    cc(&["show", "sess-alpha-1", "--include-tools", "--format", "csv"]).fails(2, "--include-tools");
}

#[test]
fn a_failed_call_is_a_row_with_its_error() {
    let ok =
        haiku_record("2025-10-03T10:00:00Z", 100).replace("\"dimensions\":{}", "\"dimensions\":{\"session\":\"s\"}");
    let failed = ok
        .replace("10:00:00", "11:00:00")
        .replace("{\"status\":\"ok\"}", "{\"status\":\"error\",\"error_type\":\"overloaded_error\"}");
    let rec = Records::new(&[ok, failed]);
    let (_, rows) = parse(rec.run(&["show", "s", "--format", "csv"]).ok());
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0]["status"].as_str(), rows[0]["error_type"].as_str()), ("ok", ""));
    assert_eq!((rows[1]["status"].as_str(), rows[1]["error_type"].as_str()), ("error", "overloaded_error"));
    // 100 input tokens of Haiku 4.5 at $1/Mtok.
    assert_eq!(rows[0]["cost_usd"], "0.0001");
}

#[test]
fn blocks_rows_are_the_jsons_blocks() {
    let json = cc(&["blocks", "--token-limit", "100000", "--format", "json"]).json();
    let (header, rows) = parse(cc(&["blocks", "--token-limit", "100000", "--format", "csv"]).ok());
    assert_eq!(header[..3], ["start", "end", "active"]);
    let blocks = json["blocks"]["blocks"].as_array().unwrap();
    assert!(!blocks.is_empty());
    assert_eq!(rows.len(), blocks.len());
    for (row, b) in rows.iter().zip(blocks) {
        assert_eq!(row["calls"], u(&b["calls"]));
        assert_eq!(row["total_tokens"], u(&b["total_tokens"]));
        assert_eq!(picos(&row["cost_usd"]), u128::from(b["cost_picos"].as_u64().unwrap()));
        let share: f64 = row["of_limit"].parse().unwrap();
        assert!((share - b["total_tokens"].as_f64().unwrap() / 100_000.0).abs() < 1e-6, "{share}");
        assert_eq!(row["active"], b["active"].as_bool().unwrap().to_string());
    }
    // Without a limit the column is there, empty.
    let (_, rows) = parse(cc(&["blocks", "--format", "csv"]).ok());
    assert!(rows.iter().all(|r| r["of_limit"].is_empty()));
}

#[test]
fn compare_is_one_row_per_figure() {
    let json = cc(&["compare", "--period", "7d", "--format", "json"]).json();
    let (header, rows) = parse(cc(&["compare", "--period", "7d", "--format", "csv"]).ok());
    assert_eq!(header, ["metric", "a", "b", "change", "change_unit"]);
    let row = |m: &str| rows.iter().find(|r| r["metric"] == m).unwrap_or_else(|| panic!("no {m} row"));
    let c = &json["comparison"];
    assert_eq!(row("label")["a"], c["a"]["label"].as_str().unwrap());
    assert_eq!(row("calls")["b"], u(&c["b"]["calls"]));
    assert_eq!(row("tokens")["b"], u(&c["b"]["tokens"]));
    // The previous 7 days are empty: a change from nothing has no percentage, and says no unit.
    assert_eq!(row("calls")["a"], "0");
    assert_eq!((row("calls")["change"].as_str(), row("calls")["change_unit"].as_str()), ("", ""));
    // Values against values: the change is there, in percent, as the JSON's.
    let args = [
        "compare",
        "--a",
        "model=claude-sonnet-4-5-20250929",
        "--b",
        "model=claude-haiku-4-5-20251001",
        "--period",
        "all",
    ];
    let json = cc(&[&args[..], &["--format", "json"]].concat()).json();
    let (_, rows) = parse(cc(&[&args[..], &["--format", "csv"]].concat()).ok());
    let calls = rows.iter().find(|r| r["metric"] == "calls").unwrap();
    let expected = json["comparison"]["deltas"]["calls_pct"].as_f64().unwrap();
    assert_eq!(calls["change_unit"], "percent");
    assert!((calls["change"].parse::<f64>().unwrap() - expected).abs() < 1e-6, "{calls:?} against {expected}");
    // A rate's change is in percentage points, as the JSON's.
    let hit = rows.iter().find(|r| r["metric"] == "cache_hit_rate").unwrap();
    let expected = json["comparison"]["deltas"]["cache_hit_rate_points"].as_f64().unwrap();
    assert_eq!(hit["change_unit"], "points");
    assert!((hit["change"].parse::<f64>().unwrap() - expected).abs() < 1e-6, "{hit:?} against {expected}");
    assert_eq!(rows.iter().find(|r| r["metric"] == "label").unwrap()["a"], "claude-sonnet-4-5");
}

#[test]
fn budget_rows_say_their_unit() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("budgets.toml");
    std::fs::write(
        &file,
        "[budgets.monthly]\nlimit_usd = 1.0\nperiod = \"month\"\n\n\
         [budgets.tokens]\nlimit_tokens = 1000000\nperiod = \"day\"\nscope = { project = \"*\" }\n",
    )
    .unwrap();
    let claude = fixture("claude_code");
    let args = ["--claude-code", &claude, "--now", "2025-10-03T23:00:00Z", "budget", "--file", file.to_str().unwrap()];
    let json = run(&[&args[..], &["--format", "json"]].concat()).json();
    let (_, rows) = parse(run(&[&args[..], &["--format", "csv"]].concat()).ok());
    let states = json["budgets"].as_array().unwrap();
    assert_eq!(rows.len(), states.len());
    assert!(rows.len() >= 2, "{rows:?}");
    for (row, s) in rows.iter().zip(states) {
        assert_eq!(row["budget"], s["budget"].as_str().unwrap());
        assert_eq!(row["calls"], u(&s["calls"]));
        match row["unit"].as_str() {
            "usd" => {
                assert_eq!(row["limit"], "1");
                assert_eq!(row["member"], "");
                assert_eq!(picos(&row["spent"]), u128::from(s["spent"]["picos"].as_u64().unwrap()));
            }
            "tokens" => {
                assert_eq!(row["limit"], "1000000");
                assert_eq!(row["spent"], u(&s["spent"]["tokens"]));
                assert!(!row["member"].is_empty(), "a budget of each project names its project");
            }
            other => panic!("unit {other}"),
        }
        let utilization: f64 = row["utilization"].parse().unwrap();
        assert!((utilization - s["utilization"].as_f64().unwrap()).abs() < 1e-6);
    }
}

#[test]
fn names_are_quoted_escaped_and_never_formulas() {
    let line = haiku_record("2025-10-03T10:00:00Z", 100).replace(
        "\"dimensions\":{}",
        r#""dimensions":{"session":"a\u001bb","project":"=1+1","user":"x,y\"z","tenant":"@acme"}"#,
    );
    let rec = Records::new(&[line]);
    let (_, rows) = parse(rec.run(&["show", "a", "--format", "csv"]).ok());
    assert_eq!(rows[0]["session"], "a\\u{1b}b", "a control character is written as its escape");
    assert_eq!(rows[0]["project"], "'=1+1", "a formula is text");
    assert_eq!(rows[0]["user"], "x,y\"z", "quoted, and read back whole");
    assert_eq!(rows[0]["tenant"], "'@acme");
    let (_, rows) = parse(rec.run(&["summary", "--group-by", "project", "--format", "csv"]).ok());
    assert_eq!(rows[0]["project"], "'=1+1");
}

#[test]
fn cache_report_optimize_and_forecast_write_their_rows() {
    // cache-report: the time series, a row per day, as the JSON's.
    let json = cc(&["cache-report", "--format", "json"]).json();
    let (header, rows) = parse(cc(&["cache-report", "--format", "csv"]).ok());
    assert_eq!(header, ["period_start", "hit_rate", "prompt_tokens", "tokens_saved", "cost_saved_usd"]);
    let series = json["cache"]["time_series"].as_array().unwrap();
    assert_eq!(rows.len(), series.len());
    for (row, p) in rows.iter().zip(series) {
        assert_eq!(row["prompt_tokens"], u(&p["prompt_tokens"]));
        assert_eq!(row["tokens_saved"], u(&p["tokens_saved"]));
        if p["prompt_tokens"] == 0 {
            assert_eq!(row["hit_rate"], "", "nothing measured: no rate");
        } else {
            assert!((row["hit_rate"].parse::<f64>().unwrap() - p["hit_rate"].as_f64().unwrap()).abs() < 1e-6);
        }
    }
    // optimize: the suggestions, exact savings.
    let json = cc(&["optimize", "--format", "json"]).json();
    let (_, rows) = parse(cc(&["optimize", "--format", "csv"]).ok());
    let suggestions = json["efficiency"]["optimization_suggestions"].as_array().unwrap();
    assert!(!suggestions.is_empty());
    assert_eq!(rows.len(), suggestions.len());
    for (row, s) in rows.iter().zip(suggestions) {
        assert_eq!(row["type"], s["type"].as_str().unwrap());
        assert_eq!(row["impact"], s["impact"].as_str().unwrap());
        assert_eq!(picos(&row["potential_savings_usd"]), u128::from(s["potential_savings_picos"].as_u64().unwrap()));
        assert_eq!(row["description"], s["description"].as_str().unwrap());
    }
    // forecast: the days, to a hundredth of a cent.
    let json = cc(&["forecast", "--days", "3", "--format", "json"]).json();
    let (header, rows) = parse(cc(&["forecast", "--days", "3", "--format", "csv"]).ok());
    assert_eq!(header, ["date", "cost_usd", "lower_usd", "upper_usd", "tokens"]);
    let days = json["forecast"]["days"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for (row, d) in rows.iter().zip(days) {
        assert_eq!(row["date"], d["date"].as_str().unwrap());
        assert_eq!(row["tokens"], u(&d["tokens"]));
        for (col, key) in [("cost_usd", "cost_usd"), ("lower_usd", "lower_usd"), ("upper_usd", "upper_usd")] {
            let v: f64 = row[col].parse().unwrap();
            assert!((v - d[key].as_f64().unwrap()).abs() <= 0.00005, "{col}: {v} against {}", d[key]);
            assert!(row[col].split('.').nth(1).is_none_or(|f| f.len() <= 4), "{}", row[col]);
        }
    }
}
