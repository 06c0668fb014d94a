//! `tokenmeter report`: every format and type over the fixture.
#![cfg(feature = "cli")]

use crate::cli_support;

use cli_support::{cc, close, run};

#[test]
fn json_report_types() {
    let s = cc(&["report", "--format", "json"]).json();
    assert_eq!(s["type"], "summary");
    assert_eq!(s["summary"]["calls"], 13);
    assert_eq!(s["generated_at"], "2025-10-04T00:00:00Z");
    // A summary report is the executive one and more: the forecast is in it too.
    assert!(s.get("cache").is_some() && s.get("forecast").is_some() && s.get("projects").is_none());
    assert_eq!(s["periods"]["group_by"], serde_json::json!({"time": "day"}));
    let e = cc(&["report", "--format", "json", "--type", "executive"]).json();
    assert!(e.get("forecast").is_some() && e.get("anomalies").is_none());
    let d = cc(&["report", "--format", "json", "--type", "detailed"]).json();
    for k in ["projects", "agents", "time_of_day", "anomalies", "forecast", "cache", "efficiency"] {
        assert!(d.get(k).is_some(), "detailed lacks {k}");
    }
    assert_eq!(d["projects"]["nodes"][0]["name"], "-home-dev-beta");
    close(d["projects"]["nodes"][0]["cost_usd"].as_f64().unwrap(), 0.329409);
}

#[test]
fn markdown() {
    let md = cc(&["report"]).ok().to_owned();
    assert!(md.starts_with("# Token spend report\n"), "{md}");
    for needle in [
        "| Cost | $0.3715 + unpriced |",
        "## By model",
        "## By day",
        "| 2025-10-02 |",
        "## Prompt cache",
        "## Efficiency",
        "## Forecast",
        "90% band",
    ] {
        assert!(md.contains(needle), "missing {needle}:\n{md}");
    }
    let exec = cc(&["report", "--type", "executive"]).ok().to_owned();
    assert!(
        exec.starts_with("# Token spend: executive summary")
            && exec.contains("## Forecast")
            && !exec.contains("## By day")
    );
    let detailed = cc(&["report", "--type", "detailed", "--format", "markdown"]).ok().to_owned();
    for needle in ["## Projects and sessions", "sess-beta-1", "## Agents and models", "## Time of day", "## Anomalies"]
    {
        assert!(detailed.contains(needle), "missing {needle}");
    }
}

#[test]
fn markdown_shows_names_from_the_data_literally() {
    // A model named `<synthetic>` (Claude Code's own) would be dropped as an unknown HTML tag.
    let detailed = cc(&["report", "--type", "detailed"]).ok().to_owned();
    assert!(detailed.contains("\n| \\<synthetic\\> | 1 | 0 | $0.00 | 0.0% |\n"), "{detailed}");
    assert!(detailed.contains("long_context_threshold"), "an underscore inside a word stays as written");
    let rec = |agent: &str, project: &str| {
        format!(
            r#"{{"timestamp":"2025-10-03T12:00:00Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{{"input":1000,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":100,"reasoning":0}},"metered":true,"outcome":{{"status":"ok"}},"dimensions":{{"session":"s1","agent":"{agent}","project":"{project}"}}}}"#
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, format!("{}\n", rec("<b>x</b>", "p*1*_a_"))).unwrap();
    let md = run(&["--records", file.to_str().unwrap(), "--now", cli_support::NOW, "report", "--type", "detailed"])
        .ok()
        .to_owned();
    assert!(md.contains("| \\<b\\>x\\</b\\> |"), "{md}");
    assert!(md.contains("| p\\*1\\*\\_a\\_ |"), "{md}");
    assert!(!md.contains("<b>") && !md.contains("p*1*"), "{md}");
}

#[test]
fn the_executive_model_table_adds_up_to_the_headline() {
    // Five models shown, the other two in one row: the calls column sums to the 13 calls of the headline.
    let exec = cc(&["report", "--type", "executive"]).ok().to_owned();
    assert!(exec.contains("| Calls | 13 |"), "{exec}");
    assert!(exec.contains("\n| (2 other models) | 2 | 200 | $0.00 + unpriced | 0.0% |\n"), "{exec}");
    let section = exec.split("## By model").nth(1).unwrap().split("##").next().unwrap();
    let calls: u64 = section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| Model"))
        .map(|l| l.split('|').nth(2).unwrap().trim().replace(',', "").parse::<u64>().unwrap())
        .sum();
    assert_eq!(calls, 13);
}

#[test]
fn csv_periods_start_in_the_reports_time_zone() {
    let csv = cc(&["--tz", "Europe/Paris", "report", "--format", "csv"]).ok().to_owned();
    let keys: Vec<&str> = csv.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(keys[0], "2025-10-01T00:00:00+02:00", "{csv}");
    // Costs are plain decimals, to the pico-dollar at most.
    for l in csv.lines().skip(1) {
        let cost = l.split(',').nth(10).unwrap();
        assert!(cost.split('.').nth(1).is_none_or(|d| d.len() <= 12), "{cost}");
    }
}

#[test]
fn csv() {
    let csv = cc(&["report", "--format", "csv"]).ok().to_owned();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "period_start,period_end,partial,calls,input,output,cache_read,cache_write_5m,cache_write_1h,total_tokens,\
         cost_usd,unpriced_calls,failed_calls,unmetered_calls,reasoning,cost_share"
    );
    // 2025-10-03 holds the unpriced call: its cost is the priced calls', and the row says one is left out.
    assert!(
        lines[3].starts_with("2025-10-03T00:00:00+00:00,2025-10-04T00:00:00+00:00,false,5,")
            && lines[3].ends_with(",0.037803,1,0,0,0,0.10175"),
        "{}",
        lines[3]
    );
    assert!(
        lines[1].starts_with("2025-10-01T00:00:00+00:00,2025-10-02T00:00:00+00:00,false,5,42,510,5000,3000,4000,"),
        "{}",
        lines[1]
    );
    // The day in progress (now is its first instant) is a part of a day.
    assert!(lines[4].starts_with("2025-10-04T00:00:00+00:00,2025-10-05T00:00:00+00:00,true,0,"), "{}", lines[4]);
    // A window from the middle of a day: its first row is a part of that day, the next a whole one.
    let since = cc(&["report", "--format", "csv", "--since", "2025-09-20T12:00:00Z"]).ok().to_owned();
    let rows: Vec<&str> = since.lines().skip(1).take(2).collect();
    assert!(rows[0].starts_with("2025-09-20T00:00:00+00:00,2025-09-21T00:00:00+00:00,true,"), "{since}");
    assert!(rows[1].starts_with("2025-09-21T00:00:00+00:00,2025-09-22T00:00:00+00:00,false,"), "{since}");
    let detailed = cc(&["report", "--format", "csv", "--type", "detailed"]).ok().to_owned();
    assert!(
        detailed.starts_with(
            "project,session,calls,tokens,cost_usd,cost_share,unpriced_calls\n'-home-dev-beta,sess-beta-1,3,"
        ),
        "{detailed}"
    );
    assert!(detailed.contains("\n'-home-dev-gamma,sess-gamma-1,3,310,0.000144,"), "{detailed}");
    assert!(detailed.trim_end().ends_with(",1"), "{detailed}");
    let exec = cc(&["report", "--format", "csv", "--type", "executive"]).ok().to_owned();
    assert!(exec.starts_with("metric,value\n") && exec.contains("\ncalls,13\n"), "{exec}");
}

#[test]
fn csv_names_a_spreadsheet_would_run_as_formulas_are_text() {
    let rec = |session: &str| {
        format!(
            r#"{{"timestamp":"2025-10-03T10:00:00Z","duration_us":5,"model":"claude-haiku-4-5","tokens":{{"input":1000,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":100,"reasoning":0}},"metered":true,"outcome":{{"status":"ok"}},"dimensions":{{"project":"-home-dev-app","session":{}}}}}"#,
            serde_json::to_string(session).unwrap()
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, format!("{}\n{}\n", rec("=HYPERLINK(\"http://x\",\"y\")"), rec("sess-1"))).unwrap();
    let args = ["--records", file.to_str().unwrap(), "--now", cli_support::NOW];
    let csv =
        cli_support::run(&[&args[..], &["report", "--format", "csv", "--type", "detailed"]].concat()).ok().to_owned();
    assert!(csv.contains("\n'-home-dev-app,\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",1,"), "{csv}");
    assert!(csv.contains("\n'-home-dev-app,sess-1,1,"), "{csv}");
}

#[test]
fn html_has_three_charts_and_no_external_resources() {
    let html = cc(&["report", "--format", "html", "--type", "detailed"]).ok().to_owned();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<svg").count(), 3, "cost over time, cost by model, cache hit rate");
    for needle in ["Cost by day", "Cost by model", "Cache hit rate", "<polyline", "claude-sonnet-4-5", "sess-beta-1"] {
        assert!(html.contains(needle), "missing {needle}");
    }
    // The same sections as the markdown of the same type.
    let md = cc(&["report", "--type", "detailed"]).ok().to_owned();
    for heading in md.lines().filter_map(|l| l.strip_prefix("## ")) {
        assert!(html.contains(&format!("<h2>{heading}</h2>")), "the html lacks {heading}");
    }
    let exec = cc(&["report", "--format", "html", "--type", "executive"]).ok().to_owned();
    assert!(exec.contains("<h2>Forecast</h2>") && exec.contains("projected month total"), "{exec}");
    assert!(
        !html.contains("<script") && !html.contains("http://") && !html.contains("https://") && !html.contains("src=")
    );
}

#[test]
fn output_files_and_xlsx() {
    let dir = tempfile::tempdir().unwrap();
    let xlsx = dir.path().join("r.xlsx");
    let out = cc(&["report", "--output", xlsx.to_str().unwrap(), "--type", "detailed"]);
    out.ok();
    let bytes = std::fs::read(&xlsx).unwrap();
    assert_eq!(&bytes[..2], b"PK", "an xlsx is a zip");
    assert!(out.stderr.contains("wrote"));
    // The extension picks the format; --format overrides it.
    let html = dir.path().join("r.html");
    cc(&["report", "-o", html.to_str().unwrap()]).ok();
    assert!(std::fs::read_to_string(&html).unwrap().starts_with("<!DOCTYPE html>"));
    let md = dir.path().join("r.txt");
    cc(&["report", "-o", md.to_str().unwrap(), "--format", "json"]).ok();
    assert!(std::fs::read_to_string(&md).unwrap().starts_with('{'));
    cc(&["report", "--format", "xlsx"]).fails(2, "--output");
    cc(&["report", "--format", "pdf"]).fails(2, "pdf");
    cc(&["report", "-o", "/nonexistent-dir/r.md"]).fails(1, "cannot write");
    cc(&["report", "-o", dir.path().to_str().unwrap()]).fails(1, "is a directory");
}

#[cfg(unix)]
#[test]
fn output_to_a_pipe_or_device_writes_into_it() {
    // `-o /dev/stdout` or `-o >(gzip > r.gz)`: the report went to a temporary file renamed over the target, which
    // fails beside a device (or, as root, puts a regular file in `/dev/null`'s place).
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo (coreutils) made the pipe");
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    cc(&["report", "-o", fifo.to_str().unwrap(), "--format", "json"]).ok();
    // Before the reader is joined: a pipe replaced by a file is never written, and its reader waits for ever.
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "still the pipe");
    let text = reader.join().unwrap();
    assert!(text.starts_with('{'), "{text:.200}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
}

#[test]
fn output_to_dev_stdout_appends_where_stdout_goes() {
    // `report -o /dev/stdout >> run.log`: /dev/stdout resolves to run.log, a regular file, and the report was
    // renamed over it, losing what the log held.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    std::fs::write(&log, "earlier line\n").unwrap();
    let appending = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let home = tempfile::tempdir().unwrap();
    let fixture = cli_support::fixture("claude_code");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tokenmeter"));
    cli_support::clean_env(&mut cmd, home.path());
    let status = cmd
        .args(["-q", "--claude-code", &fixture, "--now", cli_support::NOW, "report", "--format", "json"])
        .args(["-o", "/dev/stdout"])
        .stdout(appending)
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("earlier line\n{"), "{text:.200}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
}

#[test]
fn output_to_dev_stdout_whose_reader_has_gone_is_no_error() {
    // `report -o /dev/stdout | head -c 100`: the closed pipe made exit status 1 ("cannot write /dev/stdout:
    // Broken pipe"), where `-o -` exits 0.
    let home = tempfile::tempdir().unwrap();
    let fixture = cli_support::fixture("claude_code");
    for target in ["/dev/stdout", "-"] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tokenmeter"));
        cli_support::clean_env(&mut cmd, home.path());
        let out = cmd
            .args(["-q", "--claude-code", &fixture, "--now", cli_support::NOW, "report", "--format", "json"])
            .args(["-o", target])
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.is_empty(), "-o {target}: {:?} {stderr}", out.status);
    }
}

#[test]
fn unpriced_calls_are_marked_in_every_cost_column() {
    // claude-fable-9 has no price: a row holding its call never reads as a plain dollar amount.
    let md = cc(&["report", "--type", "detailed"]).ok().to_owned();
    for needle in [
        "| 2025-10-03 | 5 | 1,106 | 617 | 100 | 2,000 | $0.0378 + unpriced |",
        "| -home-dev-gamma | 3 | 310 | $0.0001 + unpriced | 100.0 (green) |",
        "| -home-dev-gamma |  | 3 | 310 | $0.0001 + unpriced |",
        "|  | sess-gamma-1 | 3 | 310 | $0.0001 + unpriced |",
        "| main | claude-fable-9 | 1 | 200 | unpriced |",
        // The hour holding the call, and the cache saving, a figure of the priced calls only.
        "| 12:00 | 3 | 310 | $0.0001 + unpriced | 0.1% |",
        "| Cache savings | $1.17 + unpriced |",
    ] {
        assert!(md.contains(needle), "missing {needle}:\n{md}");
    }
    let html = cc(&["report", "--type", "detailed", "--format", "html"]).ok().to_owned();
    let agent_row =
        r#"<td>main</td><td>claude-fable-9</td><td class="n">1</td><td class="n">200</td><td class="n">unpriced</td>"#;
    assert!(html.contains("$0.0378 + unpriced") && html.contains(agent_row), "{html}");
    // The cost chart's tooltip for that day, and the cache savings card.
    assert!(html.contains("<title>10-03: $0.0378 + unpriced</title>"), "{html}");
    assert!(html.contains(r#"Cache savings</span><b class="">$1.17 + unpriced</b>"#), "{html}");
    let v = cc(&["report", "--type", "detailed", "--format", "json"]).json();
    let main = v["agents"]["nodes"].as_array().unwrap().iter().find(|n| n["name"] == "main").unwrap();
    assert_eq!(main["unpriced_calls"], 1);
}

#[test]
fn time_of_day_share_is_named_for_what_it_shares() {
    // The hour's share is of the window's tokens (HourOfDay::share), not of its cost like every other
    // `Share` column: 11:00 holds 206,000 of 234,305 tokens (87.9%) but $0.2415 of $0.3715 (65.0%).
    let md = cc(&["report", "--type", "detailed"]).ok().to_owned();
    assert!(md.contains("| Hour | Calls | Tokens | Cost | Share of tokens |"), "{md}");
    assert!(md.contains("| 11:00 | 1 | 206,000 | $0.2415 | 87.9% |"), "{md}");
}

#[test]
fn anomalies_read_in_their_metric_units() {
    // Three days of one claude-haiku-4-5 call (1,000 input, 100 output: $0.0015), then a day of 20 of them:
    // tokens 22,000 against 1,100, cost $0.0300 against $0.0015 (not "0.03" against "0.00", which would round
    // a cent-sized spike away).
    let line = |ts: &str| {
        format!(
            r#"{{"timestamp":"{ts}","duration_us":5,"model":"claude-haiku-4-5","tokens":{{"input":1000,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":100,"reasoning":0}},"metered":true,"outcome":{{"status":"ok"}},"dimensions":{{}}}}"#
        )
    };
    let mut text = String::new();
    for day in ["2025-09-30", "2025-10-01", "2025-10-02"] {
        text += &line(&format!("{day}T10:00:00Z"));
        text.push('\n');
    }
    for _ in 0..20 {
        text += &line("2025-10-03T10:00:00Z");
        text.push('\n');
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, text).unwrap();
    let args = ["--records", file.to_str().unwrap(), "--now", cli_support::NOW, "report", "--type", "detailed"];
    let md = cli_support::run(&args).ok().to_owned();
    assert!(md.contains("| 2025-10-03 00:00 | day | tokens | 22,000 | 1,100 | 20.0x |"), "{md}");
    assert!(md.contains("| 2025-10-03 00:00 | day | cost | $0.0300 | $0.0015 | 20.0x |"), "{md}");
}

#[test]
fn time_of_day_and_hourly_rows_cover_old_records_too() {
    // A meter's ledger keeps hourly totals 35 days; the CLI's holds records already read, and keeps them all:
    // the time of day covers the whole report, and hourly rows of a day two months back are there.
    let rec = |ts: &str| {
        format!(
            r#"{{"timestamp":"{ts}","duration_us":5,"model":"claude-haiku-4-5","tokens":{{"input":1000,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":100,"reasoning":0}},"metered":true,"outcome":{{"status":"ok"}},"dimensions":{{}}}}"#
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, format!("{}\n{}\n", rec("2025-08-01T10:00:00Z"), rec("2025-10-03T10:00:00Z"))).unwrap();
    let source = ["--records", file.to_str().unwrap(), "--now", cli_support::NOW];
    let args = [&source[..], &["report", "--type", "detailed"]].concat();
    let md = cli_support::run(&args).ok().to_owned();
    assert!(md.contains("## Time of day (UTC)\n"), "{md}");
    assert!(md.contains("| 10:00 | 2 | 2,200 |"), "{md}");
    let old = [&args[..], &["--since", "2025-08-01", "--until", "2025-08-05"]].concat();
    let md = cli_support::run(&old).ok().to_owned();
    assert!(md.contains("## Time of day (UTC)\n") && md.contains("| 10:00 | 1 | 1,100 |"), "{md}");
    // It used to fail: "hour resolution is not available for this window".
    let hours = [&source[..], &["summary", "--group-by", "hour", "--since", "2025-08-01", "--until", "2025-08-01"]];
    let v = cli_support::run(&[&hours.concat()[..], &["--format", "json"]].concat()).json();
    let rows: Vec<(&str, u64)> = v["groups"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["calls"].as_u64() > Some(0))
        .map(|g| (g["key"].as_str().unwrap(), g["calls"].as_u64().unwrap()))
        .collect();
    assert_eq!(rows, [("2025-08-01T10:00:00+00:00", 1)]);
}

#[test]
fn the_forecast_of_a_report_over_part_of_the_records_reads_them_all() {
    // The forecast is of the days after now and of this month: a window (--since/--until) narrows the rest of
    // the report, not what the month has cost so far.
    let whole = cc(&["report", "--format", "json"]).json();
    for window in [&["--until", "2025-10-01"][..], &["--since", "2025-10-03"][..]] {
        let part = cc(&[&["report", "--format", "json"][..], window].concat()).json();
        assert_eq!(part["forecast"], whole["forecast"], "{window:?}");
        close(part["forecast"]["month_to_date_usd"].as_f64().unwrap(), 0.37153);
    }
}

#[test]
fn a_window_without_calls_has_no_score() {
    // The last hour before --now holds no call: no efficiency score (not a perfect 100) and no hit rate, as
    // `optimize` and `compare` say.
    let md = cc(&["report", "--period", "1h"]).ok().to_owned();
    assert!(md.contains("| Efficiency score | - |") && md.contains("| Cache hit rate | - |"), "{md}");
    assert!(md.contains("No calls in this window: nothing to score.") && !md.contains("| cache_reuse |"), "{md}");
    let html = cc(&["report", "--period", "1h", "--format", "html"]).ok().to_owned();
    assert!(html.contains(r#"Efficiency score</span><b class="">-</b>"#) && !html.contains("100.0 green"), "{html}");
    let csv = cc(&["report", "--period", "1h", "--type", "executive", "--format", "csv"]).ok().to_owned();
    assert!(csv.contains("\nefficiency_score,\n") && csv.contains("\ncache_hit_rate,\n"), "{csv}");
    // With calls, the figures are there.
    let md = cc(&["report"]).ok().to_owned();
    assert!(md.contains("| Efficiency score | 87.0 (green) |") && md.contains("| Cache hit rate | 88.4% |"), "{md}");
}

#[test]
fn html_escapes_every_value_from_the_records() {
    // A value starting with U+0001 (the marker the page used for its own pre-built cells) was written raw:
    // a session id or project name could put a script into the page.
    let rec = r#"{"timestamp":"2025-10-03T12:00:00Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{"input":1000,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":100,"reasoning":0},"metered":true,"outcome":{"status":"ok"},"dimensions":{"session":"\u0001<script>alert(1)</script>","project":"\u0001<img src=x onerror=alert(2)>","agent":"\u0001<b>a</b>"}}"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.jsonl");
    // A model name goes into the model tables, the chart's labels and their tooltips.
    let model = rec.replace(r#""model":"claude-sonnet-4-5""#, r#""model":"<i>m'\"&</i>""#);
    std::fs::write(&file, format!("{rec}\n{model}\n")).unwrap();
    let html = cli_support::run(&[
        "--records",
        file.to_str().unwrap(),
        "--now",
        cli_support::NOW,
        "report",
        "--type",
        "detailed",
        "--format",
        "html",
    ])
    .ok()
    .to_owned();
    assert!(html.contains("&lt;i&gt;m&#39;&quot;&amp;&lt;/i&gt;"), "the model, escaped:\n{html}");
    for raw in ["<script", "<img", "<b>a</b>", "<i>"] {
        assert!(!html.contains(raw), "{raw} written raw:\n{html}");
    }
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
    // The page's own score cells are still coloured spans.
    let html = cc(&["report", "--format", "html"]).ok().to_owned();
    assert!(html.contains(r#"<td class="n"><span class="green">85.0</span></td>"#), "{html}");
}

#[test]
fn output_dash_is_standard_output_and_a_mismatched_extension_is_noted() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = cli_support::fixture("claude_code");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokenmeter"))
        .args(["-q", "--claude-code", &fixture, "--now", cli_support::NOW, "report", "-o", "-"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("# Token spend report\n"));
    assert!(!dir.path().join("-").exists(), "a file named `-` was written");
    cc(&["report", "--format", "xlsx", "-o", "-"]).fails(2, "give --output FILE.xlsx");

    let file = dir.path().join("out.xlsx");
    let r = cc(&["report", "--format", "csv", "-o", file.to_str().unwrap()]);
    r.ok();
    assert!(r.stderr.contains("writing csv to") && r.stderr.contains("whose extension says xlsx"), "{}", r.stderr);
    let r = cc(&["report", "--format", "csv", "-o", dir.path().join("out.csv").to_str().unwrap()]);
    assert!(!r.stderr.contains("extension"), "{}", r.stderr);
}

#[test]
fn an_xlsx_report_survives_a_name_longer_than_a_cell() {
    // Excel's cells hold 32,767 UTF-16 units; the writer refuses more, which lost the whole workbook.
    let session = "s".repeat(40_000);
    let line = format!(
        r#"{{"timestamp":"2025-10-03T10:00:00Z","duration_us":5,"model":"claude-haiku-4-5","tokens":{{"input":1000,"output":100}},"metered":true,"outcome":{{"status":"ok"}},"dimensions":{{"project":"p","session":"{session}"}}}}"#
    );
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records.jsonl");
    std::fs::write(&records, format!("{line}\n")).unwrap();
    let xlsx = dir.path().join("r.xlsx");
    let args = ["--records", records.to_str().unwrap(), "--now", cli_support::NOW, "report", "--type", "detailed"];
    cli_support::run(&[&args[..], &["-o", xlsx.to_str().unwrap()]].concat()).ok();
    // The session's cell holds the name cut to the cell's limit, ending in `…`.
    let mut book = zip::ZipArchive::new(std::fs::File::open(&xlsx).unwrap()).unwrap();
    let mut strings = String::new();
    std::io::Read::read_to_string(&mut book.by_name("xl/sharedStrings.xml").unwrap(), &mut strings).unwrap();
    assert!(strings.contains(&format!(">{}…<", "s".repeat(32_766))), "the cut name is in the workbook");
    assert!(!strings.contains(&"s".repeat(32_767)), "no longer than a cell holds");
}

#[test]
fn an_xlsx_figure_there_is_none_of_is_an_empty_cell_not_a_dash() {
    // A window without metered calls (no score, band or hit rate) wrote the text `-` into the Summary sheet's value
    // column: pandas read it as text, and Excel's sums and pivots stumbled.
    let unmetered = r#"{"timestamp":"2025-10-03T10:00:00Z","duration_us":5,"model":"claude-haiku-4-5","tokens":{"input":0,"output":0},"metered":false,"outcome":{"status":"ok"}}"#;
    let records = cli_support::Records::new(&[unmetered]);
    let dir = tempfile::tempdir().unwrap();
    let xlsx = dir.path().join("r.xlsx");
    records.run(&["report", "--type", "detailed", "-o", xlsx.to_str().unwrap()]).ok();
    let cells = xlsx_cells(&xlsx, 1);
    let value = |label: &str| {
        let n = (2..40).find(|n| cells.get(&format!("A{n}")).is_some_and(|a| a == label)).expect(label);
        cells.get(&format!("B{n}")).cloned()
    };
    assert_eq!(value("calls"), Some("1".to_owned()));
    for label in ["efficiency score", "efficiency band", "cache hit rate"] {
        assert_eq!(value(label), None, "{label}");
    }
}

#[test]
fn the_output_never_replaces_the_source_and_is_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("calls.jsonl");
    let line = r#"{"timestamp":"2025-10-03T10:00:00Z","duration_us":5,"model":"claude-haiku-4-5","tokens":{"input":1000,"output":100},"metered":true,"outcome":{"status":"ok"}}"#;
    std::fs::write(&records, format!("{line}\n")).unwrap();
    let r = records.to_str().unwrap();
    // `-o` naming the records being read (no known extension: markdown) would have written over them.
    cli_support::run(&["--records", r, "--now", cli_support::NOW, "report", "-o", r])
        .fails(2, "would write over the source being read");
    assert_eq!(std::fs::read_to_string(&records).unwrap(), format!("{line}\n"));
    // Nor a journal's day file (a live application appends to it), new or not.
    let journal = tempfile::tempdir().unwrap();
    cli_support::write_journal(journal.path());
    let jd = journal.path().to_str().unwrap();
    for day in ["tokenmeter-2025-10-03.jsonl", "tokenmeter-2099-01-01.jsonl"] {
        let target = journal.path().join(day);
        let before = std::fs::read(&target).ok();
        let args = ["--journal", jd, "--now", cli_support::NOW, "report", "--format", "json"];
        cli_support::run(&[&args[..], &["-o", target.to_str().unwrap()]].concat())
            .fails(2, "would write over the source being read");
        assert_eq!(std::fs::read(&target).ok(), before);
    }
    // Nor through a link to a day file not written yet (the report follows it).
    #[cfg(unix)]
    {
        let link = dir.path().join("out.jsonl");
        std::os::unix::fs::symlink(journal.path().join("tokenmeter-2099-01-02.jsonl"), &link).unwrap();
        let args = ["--journal", jd, "--now", cli_support::NOW, "report", "--format", "json"];
        cli_support::run(&[&args[..], &["-o", link.to_str().unwrap()]].concat())
            .fails(2, "would write over the source being read");
        assert!(!journal.path().join("tokenmeter-2099-01-02.jsonl").exists());
        std::fs::remove_file(&link).unwrap();
    }
    // A report is written beside its path and renamed over it: no temporary file is left.
    let out = dir.path().join("r.md");
    cli_support::run(&["--records", r, "--now", cli_support::NOW, "report", "-o", out.to_str().unwrap()]).ok();
    assert!(std::fs::read_to_string(&out).unwrap().starts_with('#'));
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // Through a symbolic link, to the file it names, which keeps its permissions.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let real = dir.path().join("real.md");
        std::fs::write(&real, "old").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.md");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        cli_support::run(&["--records", r, "--now", cli_support::NOW, "report", "-o", link.to_str().unwrap()]).ok();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link is still a link");
        assert!(std::fs::read_to_string(&real).unwrap().starts_with('#'));
        assert_eq!(std::fs::metadata(&real).unwrap().permissions().mode() & 0o777, 0o640);
        // A link (relative, through a second link) to a file not written yet: the file is made and the links
        // stay. The rename replaced the first link with a regular file.
        let (first, second) = (dir.path().join("current.md"), dir.path().join("latest.md"));
        std::os::unix::fs::symlink("latest.md", &first).unwrap();
        std::os::unix::fs::symlink("reports/2025-10.md", &second).unwrap();
        std::fs::create_dir(dir.path().join("reports")).unwrap();
        cli_support::run(&["--records", r, "--now", cli_support::NOW, "report", "-o", first.to_str().unwrap()]).ok();
        for link in [&first, &second] {
            assert!(std::fs::symlink_metadata(link).unwrap().file_type().is_symlink(), "{} is a link", link.display());
        }
        assert!(std::fs::read_to_string(dir.path().join("reports/2025-10.md")).unwrap().starts_with('#'));
        // A link into a directory that does not exist fails, as the shell's `>` would, naming the directory.
        let dangling = dir.path().join("dangling.md");
        std::os::unix::fs::symlink("nowhere/x.md", &dangling).unwrap();
        cli_support::run(&["--records", r, "--now", cli_support::NOW, "report", "-o", dangling.to_str().unwrap()])
            .fails(1, "nowhere does not exist");
        assert!(std::fs::symlink_metadata(&dangling).unwrap().file_type().is_symlink());
    }
}

#[test]
fn a_cut_efficiency_breakdown_says_how_many_projects_it_leaves_out() {
    // The breakdown keeps the 100 costliest projects; the markdown and HTML tables said nothing of the rest.
    let lines: Vec<String> = (0..103)
        .map(|i| {
            format!(
                r#"{{"timestamp":"2025-10-03T12:00:00Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{{"input":{},"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":10,"reasoning":0}},"metered":true,"outcome":{{"status":"ok"}},"dimensions":{{"project":"p-{i:03}"}}}}"#,
                1_000 + i
            )
        })
        .collect();
    let records = cli_support::Records::new(&lines);
    for format in ["markdown", "html"] {
        let out = records.run(&["report", "--format", format]).ok().to_owned();
        assert!(out.contains("3 projects not listed (only the 100 costliest are)."), "{format}: {out}");
    }
}

#[cfg(unix)]
#[test]
fn a_link_planted_at_the_old_temporary_name_is_never_written_through() {
    // The report went to `.{name}.tmp-{pid}` beside the output, opened with `std::fs::write`: a symbolic link
    // planted at that name made it overwrite the file the link names, and the link was then renamed over the
    // output. The records are read from a FIFO, so the test knows the pid before the report is written.
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let victim = elsewhere.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    let fifo = dir.path().join("records.jsonl");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let out = dir.path().join("r.md");
    let home = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tokenmeter"));
    cli_support::clean_env(&mut cmd, home.path());
    let mut child = cmd
        .args(["-q", "--records", fifo.to_str().unwrap(), "--now", cli_support::NOW, "report", "-o"])
        .arg(&out)
        .spawn()
        .unwrap();
    let planted = dir.path().join(format!(".r.md.tmp-{}", child.id()));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    // The child waits on the FIFO until it is opened for writing.
    let line = r#"{"timestamp":"2025-10-03T10:00:00Z","duration_us":5,"model":"claude-haiku-4-5","tokens":{"input":1000,"output":100},"metered":true,"outcome":{"status":"ok"}}"#;
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    writeln!(w, "{line}").unwrap();
    drop(w);
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me", "written through the planted link");
    let meta = std::fs::symlink_metadata(&out).unwrap();
    assert!(meta.file_type().is_file(), "the output is a regular file, not the planted link");
    assert!(std::fs::read_to_string(&out).unwrap().starts_with("# Token spend report\n"));
    assert!(std::fs::symlink_metadata(&planted).unwrap().file_type().is_symlink(), "the planted link is left alone");
    let names = sorted_names(dir.path());
    assert_eq!(names.len(), 3, "no temporary file is left: {names:?}");
}

#[cfg(unix)]
#[test]
fn report_files_get_the_permissions_new_files_get_and_a_failed_write_leaves_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let records = cli_support::Records::new(&[
        r#"{"timestamp":"2025-10-03T10:00:00Z","duration_us":5,"model":"claude-haiku-4-5","tokens":{"input":1000,"output":100},"metered":true,"outcome":{"status":"ok"}}"#,
    ]);
    let dir = tempfile::tempdir().unwrap();
    // A new report file: the mode any new file gets here (0666 less the umask), not the temporary file's 0600.
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "").unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for name in ["r.md", "r.xlsx"] {
        let out = dir.path().join(name);
        records.run(&["report", "-o", out.to_str().unwrap()]).ok();
        assert_eq!(mode(&out), mode(&plain), "{name}");
    }
    // An output naming a directory: the rename fails, and the temporary file beside it is removed.
    let sub = dir.path().join("sub.md");
    std::fs::create_dir(&sub).unwrap();
    records.run(&["report", "-o", sub.to_str().unwrap()]).fails(1, "cannot write");
    let names = sorted_names(dir.path());
    assert_eq!(names, ["plain", "r.md", "r.xlsx", "sub.md"]);
}

/// The sheets of an xlsx workbook, in its order.
fn xlsx_sheet_names(path: &std::path::Path) -> Vec<String> {
    use std::io::Read;
    let mut workbook = String::new();
    zip::ZipArchive::new(std::fs::File::open(path).unwrap())
        .unwrap()
        .by_name("xl/workbook.xml")
        .unwrap()
        .read_to_string(&mut workbook)
        .unwrap();
    workbook.split("<sheet name=\"").skip(1).map(|s| s.split('"').next().unwrap().to_owned()).collect()
}

/// The cells of an xlsx sheet (1-based, in the workbook's order) by reference (`E2`): a shared string's text,
/// a number as written; a cell with no value is absent.
fn xlsx_cells(path: &std::path::Path, sheet: usize) -> std::collections::HashMap<String, String> {
    use std::io::Read;
    let mut book = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut read = |name: &str| {
        let mut s = String::new();
        book.by_name(name).unwrap().read_to_string(&mut s).unwrap();
        s
    };
    let shared = read("xl/sharedStrings.xml");
    let strings: Vec<String> = shared
        .split("<si>")
        .skip(1)
        .map(|si| {
            si.split("<t").nth(1).and_then(|t| t.split_once('>')).unwrap().1.split("</t>").next().unwrap().to_owned()
        })
        .collect();
    let xml = read(&format!("xl/worksheets/sheet{sheet}.xml"));
    let mut cells = std::collections::HashMap::new();
    for c in xml.split("<c r=\"").skip(1) {
        let (reference, rest) = c.split_once('"').unwrap();
        let head = rest.split('>').next().unwrap();
        let Some(v) = rest.split("<v>").nth(1).map(|v| v.split("</v>").next().unwrap()) else { continue };
        let value = if head.contains("t=\"s\"") { strings[v.parse::<usize>().unwrap()].clone() } else { v.to_owned() };
        cells.insert(reference.to_owned(), value);
    }
    cells
}

#[test]
fn a_project_without_metered_calls_has_no_score() {
    // A project whose only call failed before any usage came has nothing to score: its row said 100.0 (green),
    // and a window of only such calls said "No calls in this window" above it.
    let rec = |ts: &str, project: &str, metered: bool| {
        let (tokens, outcome) = if metered {
            (r#"{"input":1000,"output":100}"#, r#"{"status":"ok"}"#)
        } else {
            (r#"{"input":0,"output":0}"#, r#"{"status":"error","error_type":"overloaded_error"}"#)
        };
        format!(
            r#"{{"timestamp":"{ts}","duration_us":5,"model":"claude-sonnet-4-5","tokens":{tokens},"metered":{metered},"outcome":{outcome},"dimensions":{{"project":"{project}"}}}}"#
        )
    };
    let only_failed = cli_support::Records::new(&[rec("2025-10-03T10:00:00Z", "broken", false)]);
    let md = only_failed.run(&["report"]).ok().to_owned();
    assert!(md.contains("\nNo metered calls in this window: nothing to score.\n"), "{md}");
    assert!(md.contains("\n| broken | 1 | 0 | $0.00 | - |\n") && !md.contains("100.0"), "{md}");

    let mixed = cli_support::Records::new(&[
        rec("2025-10-03T10:00:00Z", "app", true),
        rec("2025-10-03T11:00:00Z", "broken", false),
    ]);
    let md = mixed.run(&["report"]).ok().to_owned();
    assert!(!md.contains("nothing to score"), "{md}");
    assert!(md.contains("\n| broken | 1 | 0 | $0.00 | - |\n"), "{md}");
    assert!(md.contains("\n| app | 1 | 1,100 | $0.0045 | 100.0 (green) |\n"), "{md}");
    let html = mixed.run(&["report", "--format", "html"]).ok().to_owned();
    assert!(
        html.contains(
            r#"<td>broken</td><td class="n">1</td><td class="n">0</td><td class="n">$0.00</td><td class="n">-</td>"#
        ),
        "{html}"
    );
    assert!(html.contains(r#"<td class="n"><span class="green">100.0</span></td>"#), "{html}");
    // The xlsx's Efficiency sheet (the sixth): score and band empty cells, as its Summary sheet has them.
    let dir = tempfile::tempdir().unwrap();
    let xlsx = dir.path().join("r.xlsx");
    mixed.run(&["report", "-o", xlsx.to_str().unwrap()]).ok();
    let cells = xlsx_cells(&xlsx, 6);
    let row = |category: &str| {
        let n = (2..=3).find(|n| cells[&format!("A{n}")] == category).unwrap();
        (cells.get(&format!("E{n}")).cloned(), cells.get(&format!("F{n}")).cloned())
    };
    assert_eq!(row("broken"), (None, None));
    assert_eq!(row("app"), (Some("100".to_owned()), Some("green".to_owned())));
    // `optimize`'s table the same way; the JSON says why (`metered_calls`).
    let text = mixed.run(&["--color", "never", "optimize", "--group-by", "project"]).ok().to_owned();
    let broken = text.lines().find(|l| l.contains(" broken ")).unwrap();
    assert!(broken.ends_with("┆     - │"), "{text}");
    let v = mixed.run(&["optimize", "--group-by", "project", "--format", "json"]).json();
    let rows = v["efficiency"]["breakdowns"].as_array().unwrap();
    let metered = |name: &str| rows.iter().find(|r| r["category"] == name).unwrap()["metered_calls"].clone();
    assert_eq!((metered("broken"), metered("app")), (0.into(), 1.into()));
}

#[test]
fn a_period_without_prompt_tokens_has_no_cache_hit_rate() {
    // The HTML chart and the xlsx Cache sheet plotted a day without calls as a measured 0.0% hit rate.
    let rec = |ts: &str| {
        format!(
            r#"{{"timestamp":"{ts}","duration_us":5,"model":"claude-sonnet-4-5","tokens":{{"input":1000,"cache_read":1000,"output":100}},"metered":true,"outcome":{{"status":"ok"}},"dimensions":{{}}}}"#
        )
    };
    // Days of October 1, 2 (none), 3 and 4 (now's, none): a day grain.
    let records = cli_support::Records::new(&[rec("2025-10-01T10:00:00Z"), rec("2025-10-03T10:00:00Z")]);
    let html = records.run(&["report", "--format", "html"]).ok().to_owned();
    let chart = html.split("<h2>Cache hit rate by day</h2>").nth(1).unwrap().split("</svg>").next().unwrap();
    assert!(chart.contains("<title>2025-10-01: 50.0%</title>") && chart.contains("<title>2025-10-03: 50.0%</title>"));
    assert_eq!(chart.matches("<circle").count(), 2, "{chart}");
    assert!(!chart.contains("<title>2025-10-02") && !chart.contains(": 0.0%"), "{chart}");
    // No line across the gap.
    assert!(!chart.contains("<polyline"), "{chart}");
    let dir = tempfile::tempdir().unwrap();
    let xlsx = dir.path().join("r.xlsx");
    records.run(&["report", "-o", xlsx.to_str().unwrap()]).ok();
    // The Cache sheet (the fifth): start, hit rate, tokens read, saved.
    let cells = xlsx_cells(&xlsx, 5);
    // A day without prompt tokens has an empty cell (it wrote `-`, text in a number column).
    let rates: Vec<(String, Option<String>)> =
        (2..=5).map(|n| (cells[&format!("A{n}")].clone(), cells.get(&format!("B{n}")).cloned())).collect();
    assert_eq!(
        rates,
        [
            ("2025-10-01 00:00".to_owned(), Some("0.5".to_owned())),
            ("2025-10-02 00:00".to_owned(), None),
            ("2025-10-03 00:00".to_owned(), Some("0.5".to_owned())),
            ("2025-10-04 00:00".to_owned(), None),
        ]
    );
    assert!(!cells.contains_key("A6"));
}

/// A markdown table cell's text as written: the backslashes `markdown::cell` puts before punctuation removed.
fn md_text(cell: &str) -> String {
    let mut out = String::new();
    let mut chars = cell.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// An HTML fragment's text: tags dropped, the entities `html::esc` writes read back.
fn html_text(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}

/// A table: its header and rows, cells as written.
type MdTable = (Vec<String>, Vec<Vec<String>>);
/// A report's parts: the headline's rows (label, value), then per section its heading and tables.
type Parts = (Vec<Vec<String>>, Vec<(String, Vec<MdTable>)>);

/// A markdown report's parts: the headline table's rows, and its `## ` sections.
fn md_sections(md: &str) -> Parts {
    let tables = |text: &str| -> Vec<MdTable> {
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::new();
        let mut i = 0;
        let cells = |l: &str| -> Vec<String> {
            l.trim().strip_prefix("| ").unwrap().strip_suffix(" |").unwrap().split(" | ").map(md_text).collect()
        };
        while i + 1 < lines.len() {
            if lines[i].starts_with("| ") && lines[i + 1].starts_with("|---") {
                let header = cells(lines[i]);
                let mut rows = Vec::new();
                i += 2;
                while i < lines.len() && lines[i].starts_with("| ") {
                    rows.push(cells(lines[i]));
                    i += 1;
                }
                out.push((header, rows));
            } else {
                i += 1;
            }
        }
        out
    };
    let mut parts = md.split("\n## ");
    let head = tables(parts.next().unwrap()).remove(0).1;
    let sections = parts.map(|p| (p.lines().next().unwrap().to_owned(), tables(p))).collect();
    (head, sections)
}

/// An HTML page's parts: its headline cards (label, value), then per `<h2>` section its heading and tables.
fn html_sections(html: &str) -> Parts {
    let cards = html
        .split("<div class=\"card\">")
        .skip(1)
        .map(|c| {
            let label = c.split("<span class=\"muted\">").nth(1).unwrap().split("</span>").next().unwrap();
            let value = c.split("<b").nth(1).unwrap().split_once('>').unwrap().1.split("</b>").next().unwrap();
            vec![html_text(label), html_text(value)]
        })
        .collect();
    let sections = html
        .split("<h2>")
        .skip(1)
        .map(|s| {
            let (heading, body) = s.split_once("</h2>").unwrap();
            let tables = body
                .split("<table>")
                .skip(1)
                .map(|t| {
                    let t = t.split("</table>").next().unwrap();
                    let (head, body) = t.split_once("</thead>").unwrap();
                    // Each cell up to its closing tag, its own tag's `>` and the text after it.
                    let cells = |row: &str, close: &str| -> Vec<String> {
                        let mut cells: Vec<&str> = row.split(close).collect();
                        cells.pop();
                        cells
                            .iter()
                            .map(|c| html_text(c.rsplit_once("<t").unwrap().1.split_once('>').unwrap().1))
                            .collect()
                    };
                    let header = cells(head, "</th>");
                    let rows = body.split("</tr>").filter(|r| r.contains("</td>")).map(|r| cells(r, "</td>")).collect();
                    (header, rows)
                })
                .collect();
            (html_text(heading), tables)
        })
        .collect();
    (cards, sections)
}

#[test]
fn the_html_headline_has_the_markdown_rows() {
    // The markdown's "Unpriced calls" row (how many, and on which models) was missing from the HTML cards, and
    // its "Projected month total" was "Projected month" there.
    for kind in ["executive", "summary", "detailed"] {
        let (md_head, _) = md_sections(cc(&["report", "--type", kind]).ok());
        let (cards, _) = html_sections(cc(&["report", "--type", kind, "--format", "html"]).ok());
        assert_eq!(md_head, cards, "{kind}");
    }
    let html = cc(&["report", "--format", "html"]).ok().to_owned();
    assert!(html.contains(r#"Unpriced calls</span><b class="">1 (claude-fable-9)</b>"#), "{html}");
    // Model names come from the data: escaped.
    let rec = r#"{"timestamp":"2025-10-03T12:00:00Z","duration_us":5,"model":"<i>x</i>","tokens":{"input":10,"output":1},"metered":true,"outcome":{"status":"ok"},"dimensions":{}}"#;
    let html = cli_support::Records::new(&[rec.to_owned()]).run(&["report", "--format", "html"]).ok().to_owned();
    assert!(html.contains(r#"Unpriced calls</span><b class="">1 (&lt;i&gt;x&lt;/i&gt;)</b>"#), "{html}");
}

/// The HTML report has every part of the markdown one of the same type: each headline row as a card, each
/// `## ` section as an `<h2>` of the same text holding tables of the same columns and rows. Two differences
/// are the formats' own: a score cell is coloured by its band in the HTML, where the markdown names the band,
/// and the markdown's projects table has a total row per project, where the HTML repeats the project per
/// session.
fn assert_html_has_the_markdown_parts(what: &str, md: &str, html: &str) {
    let (md_head, md_sections) = md_sections(md);
    let (cards, html_sections) = html_sections(html);
    for row in &md_head {
        assert!(cards.contains(row), "{what}: the html lacks the headline's {row:?}; its cards: {cards:?}");
    }
    for (heading, tables) in &md_sections {
        let Some((_, html_tables)) = html_sections.iter().find(|(h, _)| h == heading) else {
            let headings: Vec<&String> = html_sections.iter().map(|(h, _)| h).collect();
            panic!("{what}: the html lacks the section {heading}; its sections: {headings:?}");
        };
        assert_eq!(
            tables.iter().map(|t| &t.0).collect::<Vec<_>>(),
            html_tables.iter().map(|t| &t.0).collect::<Vec<_>>(),
            "{what}: the columns of {heading}"
        );
        if heading == "Projects and sessions" {
            continue;
        }
        for ((header, rows), (_, html_rows)) in tables.iter().zip(html_tables) {
            let score = header.iter().position(|h| h == "Score");
            let rows: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    if let Some(i) = score {
                        r[i] = r[i].split(" (").next().unwrap().to_owned();
                    }
                    r
                })
                .collect();
            assert_eq!(&rows, html_rows, "{what}: the rows of {heading}");
        }
    }
}

#[test]
fn html_has_the_markdown_sections_columns_and_rows_of_each_type() {
    // The HTML's efficiency section had the projects only, under another heading: not the score's components
    // (each one's value, weight and points), nor the line saying there is nothing to score.
    for kind in ["executive", "summary", "detailed"] {
        let md = cc(&["report", "--type", kind]).ok().to_owned();
        let html = cc(&["report", "--type", kind, "--format", "html"]).ok().to_owned();
        assert_html_has_the_markdown_parts(kind, &md, &html);
    }
    let html = cc(&["report", "--type", "detailed", "--format", "html"]).ok().to_owned();
    let components = r#"<h2>Efficiency</h2><table><thead><tr><th>Component</th><th class="n">Value</th><th class="n">Weight</th><th class="n">Points</th></tr>"#;
    assert!(html.contains(components), "{html}");
    let row = r#"<td>cache_write_use</td><td class="n">0.15</td><td class="n">15</td><td class="n">2.2</td>"#;
    assert!(html.contains(row), "{html}");
    let exec = cc(&["report", "--type", "executive", "--format", "html"]).ok().to_owned();
    assert!(!exec.contains("<h2>Efficiency</h2>") && !exec.contains("<th>Component</th>"), "{exec}");
    // Nothing to score: the markdown's line, and no components.
    let rec = r#"{"timestamp":"2025-10-03T10:00:00Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{"input":0,"output":0},"metered":false,"outcome":{"status":"error","error_type":"overloaded_error"},"dimensions":{}}"#;
    let records = cli_support::Records::new(&[rec]);
    let (md, html) =
        (records.run(&["report"]).ok().to_owned(), records.run(&["report", "--format", "html"]).ok().to_owned());
    assert_html_has_the_markdown_parts("nothing to score", &md, &html);
    let line = "<h2>Efficiency</h2><p>No metered calls in this window: nothing to score.</p><table><thead><tr><th>Project</th>";
    assert!(html.contains(line), "{html}");
}
#[test]
fn html_anomalies_have_the_markdown_columns() {
    // A spike of tokens, cost and calls on October 3, and one of a project: the HTML had start, grain, metric
    // and ratio only, not the value, its baseline or what spiked.
    let line = |ts: &str, project: &str| {
        format!(
            r#"{{"timestamp":"{ts}","duration_us":5,"model":"claude-haiku-4-5","tokens":{{"input":1000,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":100,"reasoning":0}},"metered":true,"outcome":{{"status":"ok"}},"dimensions":{{"project":"{project}"}}}}"#
        )
    };
    let mut lines: Vec<String> =
        ["2025-09-30", "2025-10-01", "2025-10-02"].iter().map(|d| line(&format!("{d}T10:00:00Z"), "a")).collect();
    lines.extend((0..20).map(|_| line("2025-10-03T10:00:00Z", "<b>")));
    let records = cli_support::Records::new(&lines);
    let md = records.run(&["report", "--type", "detailed"]).ok().to_owned();
    let html = records.run(&["report", "--type", "detailed", "--format", "html"]).ok().to_owned();
    assert!(md.contains("| 2025-10-03 00:00 | day | tokens | 22,000 | 1,100 | 20.0x |"), "{md}");
    assert_html_has_the_markdown_parts("anomalies", &md, &html);
    let header = r#"<th>Start</th><th>Grain</th><th>Metric</th><th class="n">Value</th><th class="n">Baseline</th><th class="n">Ratio</th><th>Spiked by</th>"#;
    assert!(html.contains(header), "{html}");
    for row in [
        r#"<td>2025-10-03 00:00</td><td>day</td><td>tokens</td><td class="n">22,000</td><td class="n">1,100</td><td class="n">20.0x</td>"#,
        r#"<td>2025-10-03 00:00</td><td>day</td><td>cost</td><td class="n">$0.0300</td><td class="n">$0.0015</td><td class="n">20.0x</td>"#,
        r#"<td>2025-10-03 00:00</td><td>day</td><td>calls</td><td class="n">20</td><td class="n">1</td><td class="n">20.0x</td>"#,
    ] {
        assert!(html.contains(row), "missing {row}:\n{html}");
    }
    // What spiked, a name from the records, escaped as every other value.
    assert!(html.contains("project &lt;b&gt;</td>") && !html.contains("<b>"), "{html}");
}

#[test]
fn the_readme_names_the_xlsx_sheets_with_an_unpriced_calls_column() {
    // README said every sheet with costs per row has the column; the Cache and Forecast sheets have dollars per
    // row and none (the library keeps no count per cache period or forecast day).
    let dir = tempfile::tempdir().unwrap();
    let xlsx = dir.path().join("r.xlsx");
    cc(&["report", "--type", "detailed", "-o", xlsx.to_str().unwrap()]).ok();
    let names = xlsx_sheet_names(&xlsx);
    assert!(names.iter().any(|n| n == "Cache") && names.iter().any(|n| n == "Forecast"), "{names:?}");
    let with_column: Vec<&str> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            let cells = xlsx_cells(&xlsx, i + 1);
            cells.iter().any(|(at, v)| at.ends_with('1') && at.len() == 2 && v == "unpriced calls")
        })
        .map(|(_, n)| n.as_str())
        .collect();
    assert_eq!(with_column, ["By period", "By model", "Efficiency", "Sessions"]);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    let (last, rest) = with_column.split_last().unwrap();
    let sentence = format!("the {} and {last} sheets have an `unpriced calls` column", rest.join(", "));
    assert!(readme.contains(&sentence), "README lacks: {sentence}");
    assert!(!readme.contains("a sheet with costs per row has an `unpriced calls` column"));
}

#[test]
fn a_long_output_name_of_wide_characters_is_written() {
    // 62 four-byte characters and `.md`: 251 bytes, a valid name. The temporary file's name kept 64 characters
    // of it, 256 bytes, more than a name may have, and the report failed to write.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("{}.md", "\u{1D4B3}".repeat(62)));
    cc(&["report", "-o", out.to_str().unwrap()]).ok();
    assert!(std::fs::read_to_string(&out).unwrap().starts_with("# "));
}

/// The names in `dir`, sorted.
fn sorted_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn an_executive_workbook_holds_the_executive_reports_tables() {
    // `--type executive` wrote the summary workbook: every model and suggestion, periods, cache and efficiency.
    let records = cli_support::Records::new(&cli_support::one_call_per_model(7));
    let dir = tempfile::tempdir().unwrap();
    let sheets = |kind: &str| {
        let xlsx = dir.path().join(format!("{kind}.xlsx"));
        records.run(&["report", "--type", kind, "-o", xlsx.to_str().unwrap()]).ok();
        let names = xlsx_sheet_names(&xlsx);
        (xlsx, names)
    };
    let (xlsx, names) = sheets("executive");
    assert_eq!(names, ["Summary", "By model", "Suggestions"]);
    // Five models by name, the other two in one row.
    let models = xlsx_cells(&xlsx, 2);
    assert_eq!(models.get("A7").map(String::as_str), Some("(2 other models)"), "{models:?}");
    assert_eq!(models.get("B7").map(String::as_str), Some("2"));
    assert!(!models.contains_key("A8"));
    let (_, names) = sheets("summary");
    assert_eq!(names, ["Summary", "By period", "By model", "Suggestions", "Cache", "Efficiency", "Forecast"]);
}

#[test]
fn a_projection_with_nothing_to_forecast_from_is_not_shown_as_one() {
    // Twenty minutes of calls: the forecast has no basis, and its projected month total is the month to date.
    // The headline showed that ($4.50) as the projection, in every format, where the forecast's line says `-`.
    let call = |t: &str| {
        format!(
            r#"{{"timestamp":"2025-10-05T00:{t}:00Z","duration_us":5,"model":"claude-opus-4-1","tokens":{{"input":100000,"output":10000}},"metered":true,"outcome":{{"status":"ok"}}}}"#
        )
    };
    let records = cli_support::Records::new(&[&call("10"), &call("20")]);
    let now = ["-q", "--records", records.path.as_str(), "--now", "2025-10-05T00:30:00Z"];
    let md = cli_support::run(&[&now[..], &["report", "--type", "executive"]].concat()).ok().to_owned();
    assert!(md.contains("| Projected total of 2025-10 | - |"), "{md}");
    assert!(md.contains("projected month total -"), "{md}");
    let csv =
        cli_support::run(&[&now[..], &["report", "--type", "executive", "--format", "csv"]].concat()).ok().to_owned();
    assert!(csv.lines().any(|l| l == "projected_month_total_usd,"), "{csv}");
    let html =
        cli_support::run(&[&now[..], &["report", "--type", "executive", "--format", "html"]].concat()).ok().to_owned();
    assert!(html.contains(r#"Projected total of 2025-10</span><b class="">-</b>"#), "{html}");
    // With a day behind it, the projection is shown.
    let now = ["-q", "--records", records.path.as_str(), "--now", "2025-10-06T12:00:00Z"];
    let md = cli_support::run(&[&now[..], &["report", "--type", "executive"]].concat()).ok().to_owned();
    let line = md.lines().find(|l| l.starts_with("| Projected total of 2025-10 |")).unwrap();
    assert!(line.contains('$'), "{line}");
    // The month projected is that of now, whatever the window, and each format names it: a September report read
    // in October said "Projected month total" of October's figure, which read as September's.
    let september =
        [&now[..], &["report", "--type", "executive", "--since", "2025-09-01", "--until", "2025-09-30"]].concat();
    let md = cli_support::run(&september).ok().to_owned();
    assert!(md.lines().any(|l| l.starts_with("| Projected total of 2025-10 | $")), "{md}");
    let csv = cli_support::run(&[&september[..], &["--format", "csv"]].concat()).ok().to_owned();
    let rows: Vec<&str> = csv.lines().filter(|l| l.starts_with("projected_month")).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert_eq!(rows[0], "projected_month,2025-10");
    assert!(rows[1].starts_with("projected_month_total_usd,"), "{csv}");
    // To a hundredth of a cent: the fixtures' `3.166660333333` was a float's noise.
    let fixtures = format!("--claude-code={}/tests/fixtures/claude_code", env!("CARGO_MANIFEST_DIR"));
    let at = ["-q", fixtures.as_str(), "--now", "2025-10-04T00:00:00Z", "--tz", "UTC"];
    let csv =
        cli_support::run(&[&at[..], &["report", "--type", "executive", "--format", "csv"]].concat()).ok().to_owned();
    assert!(csv.lines().any(|l| l == "projected_month_total_usd,3.1667"), "{csv}");
}
