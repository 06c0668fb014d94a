//! `tokenmeter summary` over the Claude Code fixture: every figure, windows, groupings, stable JSON, exit
//! codes.
#![cfg(feature = "cli")]

use crate::cli_support;

use cli_support::{NOW, Transcript, cc, close, fixture, run, usage_line};

#[test]
fn summary_json_has_every_figure() {
    let v = cc(&["summary", "--group-by", "day", "--format", "json"]).json();
    let s = &v["summary"];
    assert_eq!(s["calls"], 13);
    assert_eq!(s["metered_calls"], 13);
    assert_eq!(s["failed_calls"], 1, "the <synthetic> API error");
    let t = &s["tokens"];
    assert_eq!(
        (&t["input"], &t["output"], &t["cache_read"], &t["cache_write_5m"], &t["cache_write_1h"], &t["total"]),
        (&6298.into(), &2407.into(), &205_100.into(), &14_500.into(), &6000.into(), &234_305.into())
    );
    assert_eq!(s["cost_picos"], 371_530_000_000u64);
    close(s["cost_usd"].as_f64().unwrap(), 0.37153);
    assert_eq!(s["unpriced"]["calls"], 1);
    assert_eq!(s["unpriced"]["models"][0], "claude-fable-9");
    assert_eq!(s["time_zone"], "UTC");

    let days: Vec<(String, u64, f64)> = v["groups"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["calls"].as_u64().unwrap() > 0)
        .map(|g| {
            (g["key"].as_str().unwrap()[..10].to_owned(), g["calls"].as_u64().unwrap(), g["cost_usd"].as_f64().unwrap())
        })
        .collect();
    assert_eq!(days.len(), 3);
    assert_eq!((days[0].0.as_str(), days[0].1), ("2025-10-01", 5));
    close(days[0].2, 0.040902);
    assert_eq!((days[1].0.as_str(), days[1].1), ("2025-10-02", 3));
    close(days[1].2, 0.292825);
    assert_eq!((days[2].0.as_str(), days[2].1), ("2025-10-03", 5));
    close(days[2].2, 0.037803);
    let d2 = &v["groups"]["groups"][1]["tokens"];
    assert_eq!(
        (&d2["input"], &d2["output"], &d2["cache_read"], &d2["cache_creation"]),
        (&5150.into(), &1280.into(), &200_000.into(), &11_500.into())
    );

    let src = &v["source"];
    assert_eq!(src["kind"], "claude_code");
    assert_eq!(src["files"], 5);
    assert_eq!(src["calls"], 13);
    assert_eq!(src["skipped_lines"], 4);
    assert_eq!(src["transcripts"]["duplicate_lines"], 5);
    assert_eq!(src["transcripts"]["sidechain_replays"], 2);
}

#[test]
fn group_by_dimensions() {
    let rows = |by: &str| -> Vec<(String, f64)> {
        cc(&["summary", "--group-by", by, "--format", "json"]).json()["groups"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| (g["key"].as_str().unwrap().to_owned(), g["cost_usd"].as_f64().unwrap()))
            .collect()
    };
    let sessions = rows("session");
    let names: Vec<&str> = sessions.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["sess-beta-1", "sess-alpha-1", "sess-beta-2", "sess-gamma-1"]);
    close(sessions[0].1, 0.291909);
    close(sessions[1].1, 0.041977);
    close(sessions[2].1, 0.0375);
    close(sessions[3].1, 0.000144);
    let projects = rows("project");
    assert_eq!(projects[0].0, "-home-dev-beta");
    close(projects[0].1, 0.329409);
    let agents = rows("agent");
    assert_eq!(agents.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["main", "subagent"]);
    close(agents[1].1, 0.001812);
    let models = rows("model");
    assert_eq!(models[0].0, "claude-sonnet-4-5");
    close(models[0].1, 0.009630 + 0.029460 + 0.241500 + 0.000093 + 0.000051);
    let weeks = rows("week");
    assert_eq!(weeks[0].0, "2025-09-29T00:00:00+00:00");
    close(weeks[0].1, 0.37153);
    // `--week-start`: US weeks start the Sunday before; a Wednesday start is the fixture's first day.
    for (day, start) in [("sunday", "2025-09-28"), ("Sun", "2025-09-28"), ("wed", "2025-10-01")] {
        let v = cc(&["summary", "--group-by", "week", "--week-start", day, "--format", "json"]).json();
        assert_eq!(v["groups"]["groups"][0]["key"], format!("{start}T00:00:00+00:00"), "{day}");
    }
    let err = cc(&["summary", "--week-start", "caturday"]);
    assert_eq!(err.code, 2);
    assert!(err.stderr.contains("unknown day `caturday`"), "{}", err.stderr);
    assert_eq!(rows("month")[0].0, "2025-10-01T00:00:00+00:00");
}

#[test]
fn windows() {
    let one_day = cc(&["summary", "--since", "2025-10-02", "--until", "2025-10-02", "--format", "json"]).json();
    assert_eq!(one_day["summary"]["calls"], 3);
    close(one_day["summary"]["cost_usd"].as_f64().unwrap(), 0.292825);
    let since = cc(&["summary", "--since", "20251003", "--format", "json"]).json();
    assert_eq!(since["summary"]["calls"], 5);
    // Bounds inside the ledger's day buckets (the fixture is days old at --now): the calls are cut exactly,
    // not by bucket. Open start: the first two days' 8 calls, as with the start given.
    let until = cc(&["summary", "--until", "2025-10-02", "--format", "json"]).json();
    assert_eq!(until["summary"]["calls"], 8);
    close(until["summary"]["cost_usd"].as_f64().unwrap(), 0.040902 + 0.292825);
    assert_eq!(cc(&["summary", "--until", "2025-10-01", "--format", "json"]).json()["summary"]["calls"], 5);
    // One of 2025-10-01's five calls (09:00-09:10) is before 09:05.
    let mid = cc(&["summary", "--since", "2025-10-01T09:05:00Z", "--format", "json"]).json();
    assert_eq!(mid["summary"]["calls"], 12);
    assert_eq!(mid["summary"]["window"]["from"], "2025-10-01T09:05:00Z");
    let points = mid["summary"]["time_series"]["points"].as_array().unwrap();
    assert_eq!(points[0]["timestamp"], "2025-10-01T00:00:00Z", "the series starts at the day holding --since");
    // --now earlier than some calls: those have not happened yet, and are named.
    let at = |now: &str, args: &[&str]| {
        let dir = fixture("claude_code");
        let mut all = vec!["--claude-code", dir.as_str(), "--now", now];
        all.extend_from_slice(args);
        run(&all)
    };
    let early = at("2025-10-02T00:00:00Z", &["summary", "--format", "json"]);
    assert!(early.stderr.contains("left out 8 calls stamped after --now"), "{}", early.stderr);
    let early = early.json();
    assert_eq!((&early["summary"]["calls"], &early["source"]["after_now"]), (&5.into(), &8.into()));
    // The last 24 local hours before 2025-10-04T00:00Z: the 2025-10-03 calls.
    let day = cc(&["summary", "--period", "24h", "--format", "json"]).json();
    assert_eq!(day["summary"]["calls"], 5);
    close(day["summary"]["cost_usd"].as_f64().unwrap(), 0.037803);
    // Days in another time zone: 2025-10-01T09:00Z is still 2025-10-01 in Tokyo (18:00), and the
    // 2025-10-02 calls at 10:00 and 11:00 UTC too, but 14:00 UTC is 23:00: day boundaries move.
    let tokyo = cc(&["--tz", "Asia/Tokyo", "summary", "--group-by", "day", "--format", "json"]).json();
    assert_eq!(tokyo["summary"]["time_zone"], "Asia/Tokyo");
    let first = &tokyo["groups"]["groups"][0];
    // Keyed by the local day's start at the zone's offset: the same instant as 2025-09-30T15:00:00Z.
    assert_eq!(first["key"], "2025-10-01T00:00:00+09:00");
}

#[test]
fn table_is_plain_unless_asked() {
    let out = cc(&["summary"]);
    let text = out.ok();
    assert!(text.starts_with("Usage summary, 2025-10-01 00:00 to 2025-10-04 00:01 (UTC)"), "{text}");
    for needle in ["$0.3715", "6,298", "205,100", "claude-sonnet-4-5", "By day", "2025-10-02", "claude-fable-9"] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
    assert!(!text.contains('\x1b'), "no colour when not a terminal");
    assert!(out.stderr.contains("skipped 4 unreadable lines"), "{}", out.stderr);
    assert!(out.stderr.contains("sess-alpha-1.jsonl:10: not a JSON object"), "{}", out.stderr);
    let coloured = cc(&["--color", "always", "summary"]);
    assert!(coloured.ok().contains("\x1b["));
    let quiet = cc(&["--quiet", "summary"]);
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
}

#[test]
fn json_is_stable() {
    let args = ["summary", "--group-by", "session", "--format", "json"];
    let (a, b) = (cc(&args), cc(&args));
    assert_eq!(a.ok(), b.ok());
    // The same each run, and the fixture's: its sessions by cost, largest first, with their calls and costs.
    let v = a.json();
    let rows: Vec<(&str, u64, f64)> = v["groups"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["key"].as_str().unwrap(), g["calls"].as_u64().unwrap(), g["cost_usd"].as_f64().unwrap()))
        .collect();
    let keys: Vec<(&str, u64)> = rows.iter().map(|&(key, calls, _)| (key, calls)).collect();
    assert_eq!(keys, [("sess-beta-1", 3), ("sess-alpha-1", 6), ("sess-beta-2", 1), ("sess-gamma-1", 3)]);
    for (&(key, _, cost), expected) in rows.iter().zip([0.291909, 0.041977, 0.0375, 0.000144]) {
        assert!((cost - expected).abs() < 1e-9, "{key}: {cost} != {expected}");
    }
    let totals = &v["groups"]["totals"];
    assert_eq!((&totals["calls"], &totals["tokens"]["total"]), (&13.into(), &234_305.into()));
    close(totals["cost_usd"].as_f64().unwrap(), 0.37153);
}

#[test]
fn bad_arguments_exit_2() {
    cc(&["summary", "--group-by", "fortnight"]).fails(2, "fortnight");
    cc(&["summary", "--since", "yesterday"]).fails(2, "not a date");
    // chrono's largest date: two days on overflowed (a panic, exit 101).
    cc(&["summary", "--since", "+262142-12-31"]).fails(2, "out of range");
    cc(&["summary", "--since", "2025-10-03", "--until", "2025-10-01"]).fails(2, "must be before");
    cc(&["summary", "--since", "2025-10-03", "--until", "2025-10-02"])
        .fails(2, "must be before --until (2025-10-02, which ends at 2025-10-03T00:00:00+00:00)");
    cc(&["summary", "--since", "2030-01-01"]).fails(2, "--since (2030-01-01T00:00:00+00:00) is after the last record");
    // Inside the minute after now (the open end reaches a minute past now): in the future all the same.
    cc(&["summary", "--since", "2025-10-04T00:00:50Z"]).fails(2, "is after the last record and now");
    cc(&["summary", "--until", "1900-01-01"]).fails(2, "out of range");
    // The bounds named are the last record and now, not a minute past them.
    cc(&["summary", "--since", "2030-01-01"]).fails(2, "the last record and now (2025-10-04T00:00:00+00:00)");
    for now in ["0001-01-01", "9999-12-31", "2262-04-12", "1969-12-31T23:00:00Z"] {
        run(&["--claude-code", &fixture("claude_code"), "--now", now, "summary"]).fails(2, "out of range");
    }
    cc(&["summary", "--period", "2d"]).fails(2, "not a period");
    cc(&["summary", "--period", "7d", "--since", "2025-10-01"]).fails(2, "cannot be used with");
    cc(&["summary", "--format", "yaml"]).fails(2, "yaml");
    cc(&["--tz", "Mars/Olympus", "summary"]).fails(2, "unknown time zone");
    cc(&["frobnicate"]).fails(2, "frobnicate");
}

#[test]
fn one_call_reads_in_the_singular() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    cli_support::write_journal(&journal);
    let mut days: Vec<_> = std::fs::read_dir(&journal).unwrap().map(|e| e.unwrap().path()).collect();
    days.sort();
    let first = std::fs::read_to_string(&days[0]).unwrap().lines().next().unwrap().to_owned();
    let one = dir.path().join("one.jsonl");
    std::fs::write(&one, format!("{first}\n")).unwrap();
    let one = one.to_str().unwrap();
    let text = run(&["--records", one, "--now", NOW, "summary"]).ok().to_owned();
    assert!(text.lines().next().unwrap().ends_with("(1 call read)"), "{text}");
    let md = run(&["--records", one, "--now", NOW, "report", "--type", "executive"]).ok().to_owned();
    assert!(md.contains(", 1 call read from 1 file. Generated"), "{md}");
    let text = run(&["--records", one, "--now", NOW, "optimize"]).ok().to_owned();
    assert!(text.contains("   1 call, $"), "{text}");
    let text = run(&["--records", one, "--now", "2025-10-02T12:00:00Z", "forecast"]).ok().to_owned();
    assert!(text.lines().next().unwrap().ends_with(" the mean of 1 full day of history"), "{text}");
    run(&["--records", one, "--now", NOW, "show", "nope"]).fails(1, "(1 session in the source, e.g. sess-alpha-1)");
}

#[test]
fn a_window_without_calls_has_no_empty_table_of_rows() {
    // The last hour before --now holds no call: the rows table (all of its grains empty) is left out, not
    // drawn with a header and no rows.
    let text = cc(&["summary", "--period", "1h"]).ok().to_owned();
    assert!(text.contains("│ total ┆     0 ┆"), "{text}");
    assert!(!text.contains("By minute") && !text.contains("By hour") && !text.contains("╞═══╪"), "{text}");
    let text = cc(&["summary", "--period", "1h", "--group-by", "day"]).ok().to_owned();
    assert!(!text.contains("By day"), "{text}");
}

#[test]
fn calls_left_out_after_now_are_counted_with_separators() {
    let rec = r#"{"timestamp":"2025-10-05T10:00:00Z","duration_us":5,"tokens":{"input":1,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":1,"reasoning":0},"metered":true,"outcome":{"status":"ok"},"dimensions":{}}"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, format!("{rec}\n").repeat(1_200)).unwrap();
    let text = run(&["--records", file.to_str().unwrap(), "--now", NOW, "summary"]).ok().to_owned();
    assert!(text.contains("(1,200 calls read, 1,200 after --now left out)"), "{text}");
}

#[test]
fn a_journal_day_file_read_as_records_skips_its_task_tool_and_alert_lines_quietly() {
    let rec = r#"{"timestamp":"2025-10-03T10:00:00Z","duration_us":5,"tokens":{"input":1,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":1,"reasoning":0},"metered":true,"outcome":{"status":"ok"},"dimensions":{}}"#;
    let alert = r#"{"v":1,"budget_alert":{"budget":"monthly","alert":{"event":"threshold_crossed","percent":50},"unit":"usd","limit_units":10,"period_start":"2025-10-01T00:00:00Z","at":"2025-10-03T10:00:00Z"}}"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokenmeter-2025-10-03.jsonl");
    let task = r#"{"v":1,"task":{"timestamp":"2025-10-03T10:00:00Z","duration_us":9,"task":"triage","dimensions":{},"calls":1,"unpriced_calls":0,"failed_calls":0,"tokens":{"input":1,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":1,"reasoning":0},"cost":0,"outcome":{"status":"ok"}}}"#;
    let tool = r#"{"v":1,"tool":{"timestamp":"2025-10-03T10:00:00Z","duration_us":9,"tool":"search","outcome":{"status":"ok"},"dimensions":{"task":"triage"}}}"#;
    std::fs::write(&file, format!("{{\"v\":1,\"call\":{rec}}}\n{alert}\n{tool}\n{task}\n")).unwrap();
    let out = run(&["--records", file.to_str().unwrap(), "--now", NOW, "summary", "--format", "json"]);
    let json = out.json();
    assert_eq!(json["source"]["calls"], 1, "{json}");
    assert_eq!(json["source"]["skipped_lines"], 0, "{json}");
}

#[test]
fn a_call_stamped_far_ahead_of_the_clock_counts_now_in_every_window() {
    // Without `--now`, a call stamped a month ahead (a skewed clock) is counted in the current minute, as the ledger
    // counts it. Windows filtered by its stamp: `--since` today left it out while the day's own breakdown had it,
    // and the open end reached a month ahead.
    let now = chrono::Utc::now();
    let record = |t: chrono::DateTime<chrono::Utc>| {
        serde_json::json!({
            "timestamp": t.to_rfc3339(), "duration_us": 1_000, "model": "claude-haiku-4-5", "metered": true,
            "outcome": {"status": "ok"}, "dimensions": {}, "tokens": {"input": 1_000, "output": 10}
        })
        .to_string()
    };
    let records =
        cli_support::Records::new(&[record(now - chrono::Duration::days(1)), record(now + chrono::Duration::days(30))]);
    let run = |args: &[&str]| cli_support::run(&[&["-q", "--records", records.path.as_str()][..], args].concat());
    let today = now.date_naive().to_string();
    let v = run(&["summary", "--since", &today, "--format", "json"]).json();
    assert_eq!(v["summary"]["calls"], 1, "{v}");
    let to: chrono::DateTime<chrono::Utc> = v["summary"]["window"]["to"].as_str().unwrap().parse().unwrap();
    assert!(to <= now + chrono::Duration::minutes(2), "the window ends now, not a month ahead: {to}");
    let v = run(&["summary", "--since", &today, "--until", &today, "--format", "json"]).json();
    assert_eq!(v["summary"]["calls"], 1, "{v}");
    let v = run(&["summary", "--format", "json"]).json();
    assert_eq!(v["summary"]["calls"], 2, "{v}");
    let tomorrow = (now + chrono::Duration::days(1)).date_naive().to_string();
    run(&["summary", "--since", &tomorrow]).fails(2, "is after the last record and now");
    // Said without `-q`: a meter replaying the same records leaves that call out until its clock reaches it.
    let said = cli_support::run(&["--records", records.path.as_str(), "summary"]);
    assert!(
        said.stderr.contains("note: 1 call stamped more than an hour after now (the latest ends "),
        "{}",
        said.stderr
    );
    assert!(said.stderr.contains("counted now; a meter replaying them leaves them out"), "{}", said.stderr);
}

#[test]
fn run_rate_of_a_window_reaching_past_now_counts_its_elapsed_part() {
    // On 2025-10-04 the month's window holds 3 days of spend, not 31: its run-rate is the one of those days.
    let all = cc(&["summary", "--format", "json"]).json();
    let month = cc(&["summary", "--since", "2025-10-01", "--until", "2025-10-31", "--format", "json"]).json();
    assert_eq!(month["summary"]["days"], 31.0);
    close(month["summary"]["monthly_projection_usd"].as_f64().unwrap(), 0.37153 / (3.0 + 1.0 / 1440.0) * 31.0);
    close(
        month["summary"]["monthly_projection_usd"].as_f64().unwrap(),
        all["summary"]["monthly_projection_usd"].as_f64().unwrap(),
    );
    // A past window keeps its whole length.
    let day = cc(&["summary", "--since", "2025-10-02", "--until", "2025-10-02", "--format", "json"]).json();
    close(day["summary"]["monthly_projection_usd"].as_f64().unwrap(), 0.292825 * 31.0);
}

#[test]
fn an_open_start_is_where_the_whole_window_starts() {
    // `--until` alone started a minute before the first record (2025-10-01T08:59): its days and run-rate were not
    // those of the same records without a window, which starts at the first record's local midnight.
    let all = cc(&["summary", "--format", "json"]).json();
    assert_eq!(all["summary"]["window"]["from"], "2025-10-01T00:00:00Z");
    let until = cc(&["summary", "--until", "2025-10-05", "--format", "json"]).json();
    assert_eq!(until["summary"]["window"]["from"], "2025-10-01T00:00:00Z");
    assert_eq!(until["summary"]["days"], 5.0);
    close(
        until["summary"]["monthly_projection_usd"].as_f64().unwrap(),
        all["summary"]["monthly_projection_usd"].as_f64().unwrap(),
    );
    // A past end: 3 whole days.
    let past = cc(&["summary", "--until", "2025-10-03", "--format", "json"]).json();
    assert_eq!(
        past["summary"]["window"],
        serde_json::json!({"from": "2025-10-01T00:00:00Z", "to": "2025-10-04T00:00:00Z"})
    );
    assert_eq!(past["summary"]["days"], 3.0);
    close(past["summary"]["monthly_projection_usd"].as_f64().unwrap(), 0.37153 / 3.0 * 31.0);
    // Local midnight in --tz (2025-10-01T09:00Z is 05:00 in New York), and in every command's heading.
    let ny = cc(&["--tz", "America/New_York", "summary", "--until", "2025-10-05", "--format", "json"]).json();
    assert_eq!(ny["summary"]["window"]["from"], "2025-10-01T04:00:00Z");
    let text = cc(&["cache-report", "--until", "2025-10-03"]).ok().to_owned();
    assert!(text.starts_with("Prompt cache, 2025-10-01 00:00 to 2025-10-04 00:00 (UTC)"), "{text}");
}

#[test]
fn the_whole_window_starts_on_the_first_records_day_however_old() {
    // The ledger keeps records older than 35 days in month buckets; the window used to start at the month's
    // start then (2025-08-01), moving the days and the run-rate as the records aged.
    let rec = r#"{"timestamp":"2025-08-15T10:00:00Z","duration_us":5,"model":"claude-haiku-4-5","tokens":{"input":1000000,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":0,"reasoning":0},"metered":true,"outcome":{"status":"ok"},"dimensions":{}}"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, format!("{rec}\n")).unwrap();
    for now in ["2025-08-20T00:00:00Z", NOW] {
        let v = run(&["--records", file.to_str().unwrap(), "--now", now, "summary", "--format", "json"]).json();
        let s = &v["summary"];
        assert_eq!(s["window"]["from"], "2025-08-15T00:00:00Z", "--now {now}");
        assert_eq!(s["calls"], 1);
        // $1 over the days from 2025-08-15 to now (and the minute now is in).
        let days = s["days"].as_f64().unwrap();
        let expected = (chrono::DateTime::parse_from_rfc3339(now).unwrap().timestamp() + 60
            - chrono::DateTime::parse_from_rfc3339("2025-08-15T00:00:00Z").unwrap().timestamp())
            as f64
            / 86_400.0;
        close(days, expected);
    }
}

#[test]
fn an_until_before_the_first_record_is_an_empty_report() {
    // `--since A --until B` before the records is an empty report; so is `--until B` alone (it was exit 2,
    // "nothing to report"). Its window is --until's last local day.
    for args in [&["--until", "2025-09-15"][..], &["--since", "2025-09-01", "--until", "2025-09-15"]] {
        let v = cc(&[&["summary", "--format", "json"][..], args].concat()).json();
        assert_eq!(v["summary"]["calls"], 0, "{args:?}");
        assert_eq!(v["summary"]["window"]["to"], "2025-09-16T00:00:00Z");
    }
    let v = cc(&["summary", "--until", "2025-09-15", "--format", "json"]).json();
    assert_eq!(v["summary"]["window"]["from"], "2025-09-15T00:00:00Z");
    // In --tz, and for a time: back to the start of the local day it is in.
    let v = cc(&["--tz", "America/New_York", "summary", "--until", "2025-09-15", "--format", "json"]).json();
    assert_eq!(
        v["summary"]["window"],
        serde_json::json!({"from": "2025-09-15T04:00:00Z", "to": "2025-09-16T04:00:00Z"})
    );
    let v = cc(&["summary", "--until", "2025-09-15T12:00:00Z", "--format", "json"]).json();
    assert_eq!(
        v["summary"]["window"],
        serde_json::json!({"from": "2025-09-15T00:00:00Z", "to": "2025-09-15T12:00:00Z"})
    );
    let text = cc(&["summary", "--until", "2025-09-15"]).ok().to_owned();
    assert!(text.starts_with("Usage summary, 2025-09-15 00:00 to 2025-09-16 00:00 (UTC)"), "{text}");
    for command in ["report", "cache-report", "optimize"] {
        cc(&[command, "--until", "2025-09-15"]).ok();
    }
    // Without records, before now: the same.
    let empty = tempfile::tempdir().unwrap();
    let file = empty.path().join("none.jsonl");
    std::fs::write(&file, "").unwrap();
    let v = run(&[
        "--records",
        file.to_str().unwrap(),
        "--now",
        NOW,
        "summary",
        "--until",
        "2020-01-01",
        "--format",
        "json",
    ])
    .json();
    assert_eq!(
        (v["summary"]["calls"].as_u64(), v["summary"]["window"]["from"].as_str()),
        (Some(0), Some("2020-01-01T00:00:00Z"))
    );
}

#[test]
fn a_call_streamed_across_midnight_is_dated_by_its_first_copy() {
    // Two copies of one response (one message id, one request id): the first at 23:59:50 with 10 output tokens,
    // the last, kept for its tokens, at 00:00:20 with 500. The call began on the 2nd.
    let t = Transcript::new(&[
        usage_line("2025-10-02T23:59:50Z", "claude-sonnet-4-5", "m1", 100, 10),
        usage_line("2025-10-03T00:00:20Z", "claude-sonnet-4-5", "m1", 100, 500),
    ]);
    let v = t.run(&["summary", "--group-by", "day", "--format", "json"]).json();
    assert_eq!(v["summary"]["calls"], 1);
    assert_eq!(v["summary"]["tokens"]["output"], 500);
    let days: Vec<(&str, u64)> = v["groups"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["calls"].as_u64() > Some(0))
        .map(|g| (g["key"].as_str().unwrap(), g["tokens"]["output"].as_u64().unwrap()))
        .collect();
    assert_eq!(days, [("2025-10-02T00:00:00+00:00", 500)]);
    // `--until` the day it began keeps it, with the kept copy's tokens.
    let v = t.run(&["summary", "--until", "2025-10-02", "--format", "json"]).json();
    assert_eq!((v["summary"]["calls"].as_u64(), v["summary"]["tokens"]["output"].as_u64()), (Some(1), Some(500)));
    let v = t.run(&["summary", "--since", "2025-10-03", "--format", "json"]).json();
    assert_eq!(v["summary"]["calls"], 0);
}

#[test]
fn days_are_local_by_default_from_tz() {
    let zone = |tz: &str, extra: &[&str]| {
        let dir = fixture("claude_code");
        let mut args = vec!["--claude-code", dir.as_str(), "--now", NOW];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["summary", "--format", "json"]);
        let v = cli_support::run_env(&args, &[("TZ", tz)]).json();
        v["summary"]["time_zone"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(zone("America/Los_Angeles", &[]), "America/Los_Angeles");
    // glibc's forms: a leading colon, a path into the zone database.
    assert_eq!(zone(":Asia/Tokyo", &[]), "Asia/Tokyo");
    assert_eq!(zone("/usr/share/zoneinfo/Europe/Paris", &[]), "Europe/Paris");
    // tzdata's `posix/` and `right/` copies of a zone, by path or relative to the database.
    assert_eq!(zone("/usr/share/zoneinfo/posix/Asia/Tokyo", &[]), "Asia/Tokyo");
    assert_eq!(zone(":right/Europe/Paris", &[]), "Europe/Paris");
    // UTC under its other names, and an empty TZ (UTC for the C library too).
    assert_eq!(zone("Etc/UTC", &[]), "UTC");
    assert_eq!(zone("", &[]), "UTC");
    // --tz wins.
    assert_eq!(zone("Asia/Tokyo", &["--tz", "Europe/Paris"]), "Europe/Paris");

    // The days follow: at UTC+14 the fixture's calls after 10:00 UTC are the next day's.
    let days = |tz: &str| {
        let v = cli_support::run_env(
            &[
                "--claude-code",
                &fixture("claude_code"),
                "--now",
                NOW,
                "summary",
                "--group-by",
                "day",
                "--format",
                "json",
            ],
            &[("TZ", tz)],
        )
        .json();
        v["groups"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["calls"].as_u64().unwrap() > 0)
            .map(|g| (g["key"].as_str().unwrap().to_owned(), g["calls"].as_u64().unwrap()))
            .collect::<Vec<_>>()
    };
    let utc = days("UTC");
    assert_eq!(utc.iter().map(|d| d.1).collect::<Vec<_>>(), [5, 3, 5], "{utc:?}");
    // Local days start at 10:00 UTC the day before: the 2nd's three calls and the 3rd's two before 10:00 UTC
    // are on the local 3rd, the 3rd's other three on the local 4th.
    let kiritimati = days("Pacific/Kiritimati");
    assert_eq!(kiritimati.iter().map(|d| d.1).collect::<Vec<_>>(), [5, 5, 3], "{kiritimati:?}");
    assert_eq!(kiritimati[0].0, "2025-10-01T00:00:00+14:00");
}

#[test]
fn a_window_ending_inside_a_day_bucket_keeps_its_own_length() {
    // `--until` at noon of a day the ledger keeps as one bucket: the ledger's summary covers the bucket whole (to
    // the next midnight), and the run-rate was divided by those 12 empty hours too.
    let dir = fixture("claude_code");
    let args = ["--claude-code", dir.as_str(), "--now", "2025-10-20T00:00:00Z", "summary", "--format", "json"];
    let half = run(&[&args[..], &["--since", "2025-10-02", "--until", "2025-10-02T12:00:00Z"]].concat()).json();
    let s = &half["summary"];
    assert_eq!(s["window"], serde_json::json!({"from": "2025-10-02T00:00:00Z", "to": "2025-10-02T12:00:00Z"}));
    assert_eq!(s["days"], 0.5);
    let cost = s["cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0, "{s}");
    close(s["monthly_projection_usd"].as_f64().unwrap(), cost / 0.5 * 31.0);
    for p in s["time_series"]["points"].as_array().unwrap() {
        assert!(p["timestamp"].as_str().unwrap() < "2025-10-02T12:00:00Z", "{p}");
    }
}

#[test]
fn a_forecast_with_nothing_to_go_on_says_so() {
    // No full day of history and 30 minutes of today: the forecast read "$0.00" a day, a projected month total of
    // the spend so far, and a budget "not reached this month", as if those were forecasts.
    let dir = tempfile::tempdir().unwrap();
    let record = serde_json::json!({
        "timestamp": "2026-03-10T00:10:00Z", "duration_us": 1_000_000, "model": "claude-haiku-4-5",
        "provider": "anthropic", "metered": true, "outcome": {"status": "ok"}, "dimensions": {},
        "tokens": {"input": 1_000_000, "cache_read": 0, "cache_write_5m": 0, "cache_write_1h": 0, "output": 0,
                   "reasoning": 0}
    });
    let file = dir.path().join("r.jsonl");
    std::fs::write(&file, format!("{record}\n")).unwrap();
    let args = ["--records", file.to_str().unwrap(), "--now", "2026-03-10T00:30:00Z", "forecast", "--budget", "5"];
    let text = run(&args).ok().to_owned();
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with("from nothing yet: no full day of history, and less than an hour of today (no days forecast)"),
        "{text}"
    );
    // No empty table of days ahead.
    assert!(!text.contains("Next days"), "{text}");
    let row = |name: &str| text.lines().find(|l| l.contains(name)).unwrap_or_default().to_owned();
    assert!(row("daily average").contains(" - "), "{text}");
    assert!(row("projected month total").contains(" - "), "{text}");
    assert!(row("month to date").contains("$1.00"), "{text}");
    assert!(row("budget reached").contains("not so far; nothing to project yet"), "{text}");
    let v = run(&[&args[..], &["--format", "json"]].concat()).json();
    assert_eq!(v["forecast"]["basis"], "insufficient", "{v}");
    assert_eq!(v["forecast"]["days"].as_array().map(Vec::len), Some(0));
    // The report's forecast line likewise: it read a daily average of $0.00 and the spend so far as a projection.
    let report = run(&["--records", file.to_str().unwrap(), "--now", "2026-03-10T00:30:00Z", "report"]).ok().to_owned();
    assert!(
        report.contains("Month to date $1.00, projected month total -, daily average -; from nothing yet"),
        "{report}"
    );
}

#[test]
fn a_window_whose_only_metered_call_is_unpriced_reads_unpriced_in_its_total_row() {
    // One unpriced call with usage and one failed call without: the total's cost read "$0.00 + unpriced" (counted
    // against all calls) beside the run-rate's "unpriced" (against the metered ones); so did `show`'s totals,
    // `summary`'s group rows and the reports' cost, and each model row (a model's calls are all priced or none).
    let dir = tempfile::tempdir().unwrap();
    let call = |ts: &str, metered: bool, outcome: serde_json::Value| {
        serde_json::json!({
            "timestamp": ts, "duration_us": 1_000, "model": "claude-fable-9", "provider": "anthropic",
            "metered": metered, "outcome": outcome, "dimensions": {"session": "s1"},
            "tokens": {"input": if metered { 100 } else { 0 }, "cache_read": 0, "cache_write_5m": 0,
                       "cache_write_1h": 0, "output": 0, "reasoning": 0}
        })
    };
    let ok = call("2026-03-10T10:00:00Z", true, serde_json::json!({"status": "ok"}));
    let failed =
        call("2026-03-10T10:05:00Z", false, serde_json::json!({"status": "error", "error_type": "overloaded_error"}));
    let file = dir.path().join("r.jsonl");
    std::fs::write(&file, format!("{ok}\n{failed}\n")).unwrap();
    let text = run(&["--records", file.to_str().unwrap(), "--now", "2026-03-10T12:00:00Z", "summary"]).ok().to_owned();
    let total = text.lines().find(|l| l.starts_with("│ total ")).expect("a total row");
    assert!(total.trim_end_matches(['│', ' ']).ends_with("┆ unpriced"), "{text}");
    let run_rate = text.lines().find(|l| l.contains("monthly run-rate")).expect("a run-rate row");
    assert!(run_rate.trim_end_matches(['│', ' ']).ends_with("┆ unpriced"), "{text}");
    let base = ["--records", file.to_str().unwrap(), "--now", "2026-03-10T12:00:00Z"];
    let grouped = run(&[&base[..], &["summary", "--group-by", "session"]].concat()).ok().to_owned();
    let row = grouped.lines().find(|l| l.starts_with("│ s1 ")).expect("the session's row");
    assert!(row.trim_end_matches(['│', ' ']).ends_with("┆ unpriced"), "{grouped}");
    let show = run(&[&base[..], &["show", "s1"]].concat()).ok().to_owned();
    assert!(show.contains("┆ unpriced │"), "{show}");
    assert!(!show.contains("+ unpriced"), "{show}");
    let report = run(&[&base[..], &["report"]].concat()).ok().to_owned();
    assert!(report.contains("| Cost | unpriced |"), "{report}");
    assert!(report.contains("| claude-fable-9 | 2 | 100 | unpriced |"), "{report}");
}

#[test]
fn two_local_days_are_rows_per_hour_when_one_of_them_has_25_hours() {
    // New York's clocks went back on 2025-11-02: Nov 1 and 2 there are 49 hours. Two days of any other week (48
    // hours) were rows per hour, these were rows per day.
    let days = ["2025-11-01T15:00:00Z", "2025-11-02T15:00:00Z", "2025-11-08T15:00:00Z"];
    let records = cli_support::Records::new(&days.map(|ts| cli_support::haiku_record(ts, 1_000)));
    let file = records.path.as_str();
    let args = |since, until| {
        let tz = ["--records", file, "--now", "2025-11-20T00:00:00Z", "--tz", "America/New_York"];
        let mut a = tz.to_vec();
        a.extend(["summary", "--since", since, "--until", until]);
        run(&a).ok().to_owned()
    };
    for (since, until) in [("2025-11-01", "2025-11-02"), ("2025-11-08", "2025-11-09")] {
        let text = args(since, until);
        assert!(text.contains("By hour") && !text.contains("By day"), "{since}..{until}: {text}");
    }
    let text = args("2025-11-01", "2025-11-02");
    assert!(text.contains("2025-11-01 11:00") && text.contains("2025-11-02 10:00"), "{text}");
    // Three days are rows per day.
    assert!(args("2025-11-01", "2025-11-03").contains("By day"));
}

#[test]
fn a_date_the_zone_skipped_ends_the_day_before_where_the_next_begins() {
    // Pacific/Apia went from 2011-12-29 (UTC-10) to 2011-12-31 (UTC+14) at 10:00 UTC on the 30th.
    let records = cli_support::Records::new(&[cli_support::haiku_record("2011-12-30T05:00:00Z", 1_000)]);
    let v = run(&[
        "--records",
        &records.path,
        "--now",
        "2012-01-02T00:00:00Z",
        "--tz",
        "Pacific/Apia",
        "summary",
        "--since",
        "2011-12-29",
        "--until",
        "2011-12-29",
        "--format",
        "json",
    ])
    .json();
    // The 29th runs to the jump: the call at 05:00 UTC (19:00 on the 29th there) is in it. Its end was read as
    // 00:00 UTC, before the call.
    assert_eq!(v["summary"]["window"]["to"], "2011-12-30T10:00:00Z", "{v}");
    assert_eq!(v["summary"]["calls"], 1, "{v}");
}

#[test]
fn the_run_rate_is_the_same_whatever_the_window_reaches_back_before_the_data() {
    // $0.30 an hour from 2025-09-28 00:00 to the end of 2025-10-03 (haiku-4-5 output, $5 a million tokens). A
    // window that reaches back before the data counts its rate from where the data begins, as `all` does: the
    // CLI's cut to `--since` read 9.07 days and $246.11 where `all` read 10 days and $223.18 (a review).
    let lines: Vec<String> = (0..6 * 24)
        .map(|h| {
            let t = chrono::DateTime::parse_from_rfc3339("2025-09-28T00:00:00Z").unwrap() + chrono::Duration::hours(h);
            format!(
                r#"{{"timestamp":"{}","duration_us":5,"model":"claude-haiku-4-5","tokens":{{"input":0,"output":60000}},"metered":true,"outcome":{{"status":"ok"}},"dimensions":{{}}}}"#,
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        })
        .collect();
    let records = cli_support::Records::new(&lines);
    let rate = |args: &[&str]| {
        let mut all = vec!["--tz", "UTC", "summary", "--format", "json"];
        all.extend_from_slice(args);
        let v = records.run(&all).json();
        (v["summary"]["run_rate_days"].as_f64().unwrap(), v["summary"]["monthly_projection_usd"].as_f64().unwrap())
    };
    let (days, monthly) = rate(&["--period", "all"]);
    // 2025-09-28 00:00 to 2025-10-04 00:01 (the end of the current minute): 6 days and a minute.
    close(days, 6.0 + 1.0 / 1_440.0);
    close(monthly, 0.30 * 24.0 * 6.0 / days * 31.0);
    for since in ["2025-08-05T09:05:00Z", "2025-09-20T09:05:00Z", "2025-09-27T23:00:00Z"] {
        let (d, m) = rate(&["--since", since]);
        close(d, days);
        close(m, monthly);
    }
    // A start inside the data counts from there.
    let (d, _) = rate(&["--since", "2025-10-01T12:00:00Z"]);
    close(d, 2.5 + 1.0 / 1_440.0);
}

#[test]
fn transcripts_have_no_average_duration_to_show() {
    // Claude Code's transcripts carry no call durations: the average read 0.0 ms, a made-up figure that would pull
    // any average of latencies down. Records with durations still have one.
    let v = cc(&["summary", "--format", "json"]).json();
    assert!(v["summary"]["calls"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["summary"]["averages"]["duration_ms_per_call"], serde_json::Value::Null, "{v}");
    let timed = r#"{"timestamp":"2025-10-03T10:00:00Z","duration_us":2500000,"model":"claude-haiku-4-5","tokens":{"input":10,"output":1},"metered":true,"outcome":{"status":"ok"}}"#;
    let untimed = timed.replace("2500000", "0");
    let records = cli_support::Records::new(&[timed, untimed.as_str()]);
    let v = records.run(&["summary", "--format", "json"]).json();
    assert_eq!(v["summary"]["averages"]["duration_ms_per_call"], 1250.0, "{v}");
}

#[test]
fn hour_rows_are_labelled_with_their_own_minute_where_an_offset_changes_by_half_an_hour() {
    // Lord Howe Island goes back half an hour at 02:00 local on 2027-04-04 (15:00 UTC): the hour after starts at
    // 01:30 local, and a `:00` label named the hour before.
    let t = Transcript::new(&[
        usage_line("2027-04-03T14:10:00Z", "claude-haiku-4-5", "m1", 100, 10),
        usage_line("2027-04-03T15:10:00Z", "claude-haiku-4-5", "m2", 100, 10),
    ]);
    let args = ["--claude-code", t.root.as_str(), "--now", "2027-04-03T17:00:00Z", "--tz", "Australia/Lord_Howe"];
    let summary = |format: &str| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["summary", "--group-by", "hour", "--format", format]);
        run(&all)
    };
    let v = summary("json").json();
    let keys: Vec<&str> = v["groups"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["calls"].as_u64().unwrap() > 0)
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["2027-04-04T01:00:00+11:00", "2027-04-04T01:30:00+10:30"]);
    let text = summary("table").ok().to_owned();
    assert!(text.contains("2027-04-04 01:30 (+10:30)"), "{text}");
}

#[test]
fn a_tz_that_names_no_zone_is_said_unless_tz_is_given() {
    let dir = fixture("claude_code");
    let run = cli_support::run_env(&["--claude-code", dir.as_str(), "--now", NOW, "summary"], &[("TZ", "JST-9")]);
    assert!(run.stderr.contains("note: TZ=JST-9 is not a time zone name (a POSIX rule?)"), "{}", run.stderr);
    let run = cli_support::run_env(
        &["--claude-code", dir.as_str(), "--now", NOW, "--tz", "Asia/Tokyo", "summary"],
        &[("TZ", "JST-9")],
    );
    assert!(!run.stderr.contains("TZ=JST-9"), "{}", run.stderr);
}

#[test]
fn a_call_stamped_in_1970_is_said() {
    // A device's clock not set yet: the window over everything starts in 1970 and the run-rate shrinks to nothing.
    let t = Transcript::new(&[
        usage_line("1970-01-01T00:00:05Z", "claude-haiku-4-5", "m0", 100, 10),
        usage_line("2025-10-02T10:00:00Z", "claude-haiku-4-5", "m1", 100, 10),
    ]);
    let run = t.run(&["summary"]);
    assert!(
        run.stderr.contains(
            "warning: 1 call is stamped before 2020 (the first at 1970-01-01T00:00:05Z): a clock that was not set yet?"
        ),
        "{}",
        run.stderr
    );
    assert!(!t.run(&["--since", "2020-01-01", "summary"]).stderr.contains("stamped before 2020"));
}
