//! `tokenmeter watch`: refreshes (re-reading a journal that grows between them), alerts past the threshold.
#![cfg(feature = "cli")]

use crate::cli_support;

use std::io::{BufRead, Write};

use cli_support::{run, write_journal};

#[test]
fn watch_refreshes_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path());
    let j = dir.path().to_str().unwrap();
    let out = run(&[
        "--journal",
        j,
        "--now",
        "2025-10-04T00:00:00Z",
        "watch",
        "--period",
        "7d",
        "--threshold",
        "0.25",
        "--interval",
        "0.05",
        "--iterations",
        "2",
        "--format",
        "json",
    ]);
    let lines: Vec<serde_json::Value> = out.ok().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["over_threshold"], true);
    assert_eq!(lines[0]["threshold_usd"], 0.25);
    assert_eq!(lines[0]["summary"]["calls"], 13);
    // The alert fires once, when spend first passes the threshold.
    assert_eq!(out.stderr.matches("ALERT").count(), 1, "{}", out.stderr);
    // Standard error is a pipe here: no terminal bell in what may be a log file.
    assert!(!out.stderr.contains('\x07'), "{:?}", out.stderr);

    let table = run(&[
        "--journal",
        j,
        "--now",
        "2025-10-04T00:00:00Z",
        "watch",
        "--period",
        "24h",
        "--threshold",
        "1",
        "--iterations",
        "1",
    ]);
    let text = table.ok();
    assert!(text.starts_with("tokenmeter watch: last 24h at 2025-10-04 00:00:00 +00:00 (UTC)"), "{text}");
    assert!(text.contains("$1.00 (at most $0.9622 left)"), "{text}");
    assert!(!table.stderr.contains("ALERT"));
}

#[test]
fn watch_fails_fast_on_a_missing_journal() {
    run(&["--journal", "/nonexistent/journal", "watch", "--iterations", "1"]).fails(1, "does not exist");
    run(&["--journal", "/tmp", "watch", "--interval", "0"]).fails(2, "seconds");
    // A negative number is a value to check, not an unknown flag.
    run(&["--journal", "/tmp", "watch", "--threshold", "-1"]).fails(2, "give a positive amount");
    run(&["--journal", "/tmp", "watch", "--interval", "-1"]).fails(2, "between 0.05 and 86400 seconds");
    // No refresh at all is not a way to watch: 0 is refused rather than taken as 1.
    run(&["--journal", "/tmp", "watch", "--iterations", "0"]).fails(2, "give 1 or more refreshes");
    run(&["--journal", "/tmp", "watch", "--iterations", "-1"]).fails(2, "give 1 or more refreshes");
}

#[test]
fn watching_everything_recorded_says_so() {
    let out = cli_support::cc(&["watch", "--period", "all", "--threshold", "0.1", "--iterations", "1"]);
    let text = out.ok();
    assert!(text.starts_with("tokenmeter watch: everything recorded at 2025-10-04 00:00:00 +00:00 (UTC)"), "{text}");
    assert!(
        out.stderr.contains("ALERT: $0.3715 + unpriced spent over everything recorded passes the threshold"),
        "{}",
        out.stderr
    );
}

#[test]
fn watch_stops_when_its_reader_goes() {
    // `tokenmeter watch | head -1`: once the pipe's reader has gone, watch ends (it ran on forever). With an hour
    // between refreshes it ended only at the next write, an hour later: it now sees the reader go while it waits.
    use std::io::BufRead;
    use std::time::{Duration, Instant};
    let dir = cli_support::fixture("claude_code");
    for interval in ["0.05", "3600"] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tokenmeter"))
            .env("TZ", "UTC")
            .args(["-q", "--claude-code", &dir, "--now", cli_support::NOW, "watch", "--interval", interval])
            .args(["--format", "json"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("{\"time\":"), "{line}");
        drop(out);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "{status}");
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("watch --interval {interval} kept running after its reader went");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_bounded_watch_ends_even_when_its_source_goes() {
    // The journal is removed after the first refresh: the refreshes that cannot read count toward
    // --iterations, and the last one's error is the exit status (it waited forever). Under --quiet too, a
    // refresh that cannot read says so (it was a note, and --quiet hid it: a broken source looked like flat
    // spend).
    use std::io::BufRead;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    write_journal(&journal);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tokenmeter"))
        .env("TZ", "UTC")
        .args(["-q", "--journal", journal.to_str().unwrap(), "--now", cli_support::NOW, "watch", "--format", "json"])
        .args(["--interval", "1", "--iterations", "3"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    // Each line says what it read, as every command's JSON does.
    let first: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(first["source"]["calls"].as_u64().is_some_and(|n| n > 0), "{first}");
    std::fs::remove_dir_all(&journal).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(1));
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watch --iterations 3 kept running after its journal went");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("warning: cannot refresh:") && err.contains("error:") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn a_window_without_calls_has_no_hit_rate() {
    let out = cli_support::cc(&["watch", "--period", "1h", "--iterations", "1"]);
    let row = out.ok().lines().find(|l| l.starts_with("│     0 ┆")).unwrap_or_default().to_owned();
    assert!(row.contains("┆              - ┆"), "{}", out.stdout);
}

#[test]
fn a_refresh_reads_what_was_appended_since_the_last() {
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path());
    let home = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tokenmeter"));
    cli_support::clean_env(&mut cmd, home.path());
    let mut child = cmd
        .args(["--journal", dir.path().to_str().unwrap(), "--now", "2025-10-04T00:00:00Z", "watch"])
        .args(["--period", "7d", "--threshold", "0.5", "--interval", "5", "--iterations", "2", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!((first["summary"]["calls"].as_u64(), first["over_threshold"].as_bool()), (Some(13), Some(false)));

    // After the first refresh (the next comes 5 s later, room for a loaded machine to append first): one more
    // call, of $1, on the last fixture day's file.
    let day = dir.path().join("tokenmeter-2025-10-03.jsonl");
    let template = std::fs::read_to_string(&day).unwrap();
    let mut call: serde_json::Value = serde_json::from_str(template.lines().next().unwrap()).unwrap();
    // (A cost whose total is its parts' sum: a reader refuses any other.)
    let cost = &mut call["call"]["cost"];
    for part in ["cache_read", "cache_write_5m", "cache_write_1h", "output", "web_search"] {
        cost[part] = serde_json::json!(0);
    }
    cost["input"] = serde_json::json!(1_000_000_000_000u64);
    cost["total"] = serde_json::json!(1_000_000_000_000u64);
    let mut f = std::fs::OpenOptions::new().append(true).open(&day).unwrap();
    writeln!(f, "{call}").unwrap();
    drop(f);

    let second: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(second["summary"]["calls"].as_u64(), Some(14), "{second:#}");
    let added = second["summary"]["cost_usd"].as_f64().unwrap() - first["summary"]["cost_usd"].as_f64().unwrap();
    assert!((added - 1.0).abs() < 1e-9, "{added}");
    // The spend passed the threshold with that call: the alert comes with the second refresh.
    assert_eq!(second["over_threshold"].as_bool(), Some(true));
    assert_eq!(stderr.matches("ALERT").count(), 1, "{stderr}");
}

#[test]
fn a_recent_window_reads_only_the_journal_days_it_can_hold() {
    let dir = tempfile::tempdir().unwrap();
    let total = write_journal(dir.path());
    // An old day file, unreadable: a watch of the last 24h never opens it, so never warns about it.
    std::fs::write(dir.path().join("tokenmeter-2025-06-01.jsonl"), "not json\n").unwrap();
    let recent: usize = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.as_bytes() >= b"tokenmeter-2025-10-02.jsonl".as_slice()))
        .map(|e| std::fs::read_to_string(e.path()).unwrap().lines().count())
        .sum();
    assert!(recent < total, "the fixture spans more than the window: {recent} of {total}");
    let j = dir.path().to_str().unwrap();
    let out = run(&["--journal", j, "--now", "2025-10-04T00:00:00Z", "watch", "--period", "24h", "--iterations", "1"]);
    let text = out.ok();
    assert!(text.contains(&format!(", {recent} calls read")), "{text}");
    assert!(!out.stderr.contains("unreadable"), "{}", out.stderr);
    // `all` reads every file, the old one included.
    let all = run(&["--journal", j, "--now", "2025-10-04T00:00:00Z", "watch", "--period", "all", "--iterations", "1"]);
    assert!(all.ok().contains(&format!(", {total} calls read")), "{}", all.stdout);
    assert!(all.stderr.contains("skipped 1 unreadable line"), "{}", all.stderr);
}

#[test]
fn the_watch_screen_sums_the_models_past_its_eighth() {
    // Ten models: the screen listed eight and dropped the other two's calls and cost without a word.
    let records = cli_support::Records::new(&cli_support::one_call_per_model(10));
    let text = records.run(&["--color", "never", "watch", "--period", "7d", "--iterations", "1"]).ok().to_owned();
    let rest = text.lines().find(|l| l.contains("(2 other models)")).unwrap_or_else(|| panic!("{text}"));
    assert!(rest.contains("┆     2 ┆  1,850 ┆ unpriced"), "{rest}");
    assert!(!text.contains("model-8") && !text.contains("model-9"), "{text}");
}

#[test]
fn the_watch_header_says_what_now_left_out() {
    // As every other command's heading: "1 call read" beside a screen of 0 calls said nothing of why.
    let rec = r#"{"timestamp":"2025-10-03T12:00:00Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{"input":10,"output":1},"metered":true,"outcome":{"status":"ok"},"dimensions":{}}"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.jsonl");
    std::fs::write(&file, format!("{rec}\n")).unwrap();
    let args = ["--records", file.to_str().unwrap(), "--now", "2025-10-03T06:00:00Z", "watch", "--iterations", "1"];
    let text = cli_support::run(&args).ok().to_owned();
    let first = text.lines().next().unwrap_or_default();
    assert!(first.ends_with(", 1 call read, 1 after --now left out"), "{text}");
}
