//! `tokenmeter statusline`: the line for Claude Code's status line, from the status JSON on standard input and the
//! transcripts written lately.
#![cfg(feature = "cli")]

use crate::cli_support;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use cli_support::{Run, clean_env, usage_line};

const NOW: &str = "2025-10-03T12:00:00Z";

fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

/// A Claude Code config dir with sessions written as given.
struct Config {
    dir: tempfile::TempDir,
}

impl Config {
    fn new() -> Self {
        Config { dir: tempfile::tempdir().unwrap() }
    }

    fn root(&self) -> String {
        self.dir.path().to_str().unwrap().to_owned()
    }

    /// Writes session `id` in project `-home-dev-app` with `lines`, modified `hours_ago` hours before [`NOW`].
    fn session(&self, id: &str, lines: &[String], hours_ago: u64) -> std::path::PathBuf {
        let project = self.dir.path().join("projects/-home-dev-app");
        std::fs::create_dir_all(&project).unwrap();
        let path = project.join(format!("{id}.jsonl"));
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, text).unwrap();
        set_modified(&path, hours_ago);
        path
    }
}

fn set_modified(path: &Path, hours_ago: u64) {
    let at = SystemTime::from(now()) - Duration::from_secs(hours_ago * 3_600);
    std::fs::File::options().write(true).open(path).unwrap().set_modified(at).unwrap();
}

/// A call of `session` at `ts`: `input` uncached input tokens on Sonnet 4.5 ($3 a million).
fn call(session: &str, ts: &str, id: &str, input: u64) -> String {
    usage_line(ts, "claude-sonnet-4-5", id, input, 0).replace("\"sess-1\"", &format!("\"{session}\""))
}

/// `tokenmeter --claude-code=ROOT --now NOW statusline ARGS…` with `stdin` on standard input (none when `None`).
fn statusline(root: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenmeter"));
    clean_env(&mut cmd, home.path());
    cmd.arg(format!("--claude-code={root}")).args(["--now", NOW, "statusline"]).args(args);
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn status_json(session: &str, path: &Path) -> String {
    serde_json::json!({
        "hook_event_name": "Status",
        "session_id": session,
        "transcript_path": path,
        "model": {"id": "claude-sonnet-4-5", "display_name": "Sonnet 4.5"},
        "cost": {"total_cost_usd": 99.0}
    })
    .to_string()
}

#[test]
fn the_sessions_cost_todays_and_the_open_blocks_with_its_rate() {
    let c = Config::new();
    // Yesterday: 100k tokens in session a ($0.30). Today from 09:10: session a 10k tokens ($0.03), session b 20k at
    // 09:40 and 30k at 11:10 ($0.15).
    let a = c.session(
        "a",
        &[call("a", "2025-10-02T15:00:00Z", "m1", 100_000), call("a", "2025-10-03T09:10:00Z", "m2", 10_000)],
        2,
    );
    c.session(
        "b",
        &[call("b", "2025-10-03T09:40:00Z", "m3", 20_000), call("b", "2025-10-03T11:10:00Z", "m4", 30_000)],
        1,
    );
    let run = statusline(&c.root(), &[], Some(&status_json("a", &a)));
    // The block opened at 09:00 (the last one, 15:00-20:00 yesterday, had closed); its rate leaves out its first
    // call: 50k tokens ($0.15) over the 170 minutes since 09:10, $0.0529/h; it closes at 14:00.
    assert_eq!(run.ok(), "Sonnet 4.5 | session $0.3300 | today $0.1800 | block $0.1800 at $0.0529/h, 2h 00m left\n");
    let v = statusline(&c.root(), &["--format", "json"], Some(&status_json("a", &a))).json();
    assert_eq!(v["session"]["calls"], 2);
    assert_eq!(v["session"]["cost_picos"], 330_000_000_000u64);
    assert_eq!(v["today"]["tokens"], 60_000);
    assert_eq!(v["block"]["start"], "2025-10-03T09:00:00Z");
    assert_eq!(v["read_back_hours"], 48);
    assert_eq!(v["files"], 2);
}

#[test]
fn without_status_json_the_line_has_no_model_or_session() {
    let c = Config::new();
    c.session("a", &[call("a", "2025-10-03T11:55:00Z", "m1", 100_000)], 0);
    // Five minutes into the block: no rate yet.
    assert_eq!(statusline(&c.root(), &[], None).ok(), "today $0.3000 | block $0.3000, 4h 00m left\n");
    let run = statusline(&c.root(), &[], Some("not json"));
    assert_eq!(run.ok(), "today $0.3000 | block $0.3000, 4h 00m left\n");
    assert!(run.stderr.contains("standard input is not Claude Code's status JSON"), "{}", run.stderr);
}

#[test]
fn old_transcripts_are_not_read_but_the_sessions_own_is() {
    let c = Config::new();
    // Ten days old, and a resumed session whose file was last written ten days ago (Claude Code names it).
    c.session("old", &[call("old", "2025-09-23T10:00:00Z", "m1", 100_000)], 240);
    let resumed = c.session("resumed", &[call("resumed", "2025-09-23T11:00:00Z", "m2", 200_000)], 240);
    let v = statusline(&c.root(), &["--format", "json"], Some(&status_json("resumed", &resumed))).json();
    assert_eq!(v["files"], 1, "only the session's own file");
    assert_eq!(v["session"]["cost_usd"], 0.6);
    // Its sub-agents' files, as old, are the session's too.
    let agents = c.dir.path().join("projects/-home-dev-app/resumed/subagents");
    std::fs::create_dir_all(&agents).unwrap();
    let agent = agents.join("agent-a1.jsonl");
    std::fs::write(&agent, format!("{}\n", call("resumed", "2025-09-23T11:30:00Z", "m3", 50_000))).unwrap();
    set_modified(&agent, 240);
    let v = statusline(&c.root(), &["--format", "json"], Some(&status_json("resumed", &resumed))).json();
    assert_eq!((v["files"].as_u64(), v["session"]["calls"].as_u64()), (Some(2), Some(2)));
    assert_eq!(v["today"]["calls"], 0);
    assert!(v["block"].is_null());
    assert_eq!(statusline(&c.root(), &[], None).ok(), "today $0.00 | no open block\n");
}

#[test]
fn work_without_a_pause_reads_further_back_to_place_the_block() {
    let c = Config::new();
    // A call every 4 hours for 5 days up to 11:00 today: blocks of 5 hours chain from the first call, at every
    // other call, so which calls open one depends on where the chain began. The calls until 80 hours ago are in a
    // file last written then; the rest in one written an hour ago.
    let start = now() - chrono::Duration::hours(121);
    let (mut old, mut new) = (Vec::new(), Vec::new());
    for i in 0..31 {
        let t = start + chrono::Duration::hours(4 * i);
        let line = call("s", &t.to_rfc3339(), &format!("m{i}"), 10_000);
        if now() - t > chrono::Duration::hours(80) { old.push(line) } else { new.push(line) }
    }
    c.session("old", &old, 80);
    c.session("new", &new, 1);
    let v = statusline(&c.root(), &["--format", "json"], None).json();
    // The files of the last 48 hours hold no pause of 5 hours: those of 8 days are read.
    assert_eq!(v["read_back_hours"], 192);
    assert_eq!(v["files"], 2);
    // The same block as `blocks` over every file.
    let all = cli_support::run(&["--claude-code", &c.root(), "--now", NOW, "blocks", "--active", "--format", "json"]);
    let open = &all.json()["blocks"]["blocks"][0];
    assert_eq!(v["block"]["start"], open["start"]);
    assert_eq!(v["block"]["calls"], open["calls"]);
    // With the new file alone, the chain would begin at its first call, and place the open block otherwise.
    std::fs::remove_file(c.dir.path().join("projects/-home-dev-app/old.jsonl")).unwrap();
    let alone = statusline(&c.root(), &["--format", "json"], None).json();
    assert_ne!(alone["block"]["start"], open["start"], "the test's chain must depend on its origin");
}

#[test]
fn standard_input_left_open_does_not_hold_the_line() {
    let c = Config::new();
    c.session("a", &[call("a", "2025-10-03T11:55:00Z", "m1", 100_000)], 0);
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenmeter"));
    clean_env(&mut cmd, home.path());
    cmd.arg(format!("--claude-code={}", c.root())).args(["--now", NOW, "statusline"]);
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Held open, never written to, until the command has answered.
    let _held = child.stdin.take();
    let started = std::time::Instant::now();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        let _ = tx.send(text);
    });
    let answered = rx.recv_timeout(Duration::from_secs(20));
    let elapsed = started.elapsed();
    let _ = child.kill();
    let text = answered.expect("no answer within 20 s: the command waits on standard input");
    assert_eq!(text, "today $0.3000 | block $0.3000, 4h 00m left\n");
    assert!(elapsed < Duration::from_secs(10), "answered after {elapsed:?}: the wait is 2 s");
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("standard input was not closed"));
}

#[test]
fn the_most_used_budget_with_its_period_read_whole() {
    let c = Config::new();
    // $0.30 on the 1st, in a file last written then (58 hours before now: not among the last two days'), and
    // $0.03 today.
    c.session("early", &[call("early", "2025-10-01T01:00:00Z", "m1", 100_000)], 58);
    c.session("today", &[call("today", "2025-10-03T11:55:00Z", "m2", 10_000)], 0);
    // After `--now`: not made yet, counted nowhere (the budgets counted it now).
    c.session("later", &[call("later", "2025-10-03T13:00:00Z", "m3", 100_000)], 0);
    let file = c.dir.path().join("budgets.toml");
    let budgets = "[budgets.monthly]\nlimit_usd = 0.5\nperiod = \"month\"\n\n\
                   [budgets.daily]\nlimit_usd = 1.0\nperiod = \"day\"\n";
    std::fs::write(&file, budgets).unwrap();
    let args = ["--budgets", file.to_str().unwrap()];
    // The month's $0.33 of $0.50: the budget most used, read back to the 1st.
    let line = statusline(&c.root(), &args, None).ok().to_owned();
    assert_eq!(line, "today $0.0300 | block $0.0300, 4h 00m left | monthly 66.0% of $0.5000\n");
    let v = statusline(&c.root(), &[&args[..], &["--format", "json"]].concat(), None).json();
    assert_eq!(v["read_back_hours"], 192);
    let states = v["budgets"].as_array().unwrap();
    assert_eq!(states.len(), 2);
    assert_eq!(states[0]["budget"], "monthly");
    assert_eq!(states[0]["calls"], 2);
    assert_eq!(states[1]["calls"], 1, "the day's budget: today's call");
    // With colour: green, amber from 75%, red when over.
    let coloured = statusline(&c.root(), &["--budgets", file.to_str().unwrap(), "--color", "always"], None);
    assert!(coloured.ok().ends_with(" | monthly \x1b[32m66.0%\x1b[0m of $0.5000\n"), "{:?}", coloured.stdout);
    std::fs::write(&file, "[budgets.monthly]\nlimit_usd = 0.4\nperiod = \"month\"\n").unwrap();
    let coloured = statusline(&c.root(), &["--budgets", file.to_str().unwrap(), "--color", "always"], None);
    assert!(coloured.ok().ends_with(" | monthly \x1b[33m82.5%\x1b[0m of $0.4000\n"), "{:?}", coloured.stdout);
    // Over the limit.
    std::fs::write(&file, "[budgets.tight]\nlimit_usd = 0.1\nperiod = \"month\"\n").unwrap();
    let line = statusline(&c.root(), &args, None).ok().to_owned();
    assert!(line.ends_with(" | tight OVER: $0.3300 of $0.1000\n"), "{line}");
    let coloured = statusline(&c.root(), &["--budgets", file.to_str().unwrap(), "--color", "always"], None);
    assert!(coloured.ok().ends_with(" | \x1b[1;31mtight OVER: $0.3300 of $0.1000\x1b[0m\n"), "{:?}", coloured.stdout);
    // A budget of each session: the session nearest its limit, named.
    std::fs::write(&file, "[budgets.per-session]\nlimit_usd = 0.2\nperiod = \"month\"\nscope = { session = \"*\" }\n")
        .unwrap();
    let line = statusline(&c.root(), &args, None).ok().to_owned();
    assert!(line.ends_with(" | per-session (session=early) OVER: $0.3000 of $0.2000\n"), "{line}");
    // A file that does not exist is the line's error.
    let gone = statusline(&c.root(), &["--budgets", "/nonexistent/budgets.toml"], None);
    assert_eq!(gone.ok(), "tokenmeter: budgets file /nonexistent/budgets.toml does not exist\n");
}

#[test]
fn a_failure_is_the_line_itself_and_exits_0() {
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(empty.path().join("projects")).unwrap();
    let root = empty.path().to_str().unwrap();
    let run = statusline(root, &[], None);
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with("tokenmeter: no Claude Code transcripts"), "{}", run.stdout);
    // As JSON, the usual error and exit status.
    statusline(root, &["--format", "json"], None).fails(1, "no Claude Code transcripts");
}

#[test]
fn a_bad_setting_is_the_line_too() {
    // A misspelt option in Claude Code's `statusLine` command used to leave the line blank (clap's exit status 2),
    // and so did a price file that cannot be read: the command never ran.
    let dir = Config::new();
    dir.session("s1", &[call("s1", "2025-10-03T11:00:00Z", "m1", 1_000)], 1);
    let run = statusline(&dir.root(), &["--budget", "b.toml"], None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "tokenmeter statusline: unexpected argument '--budget' found; a similar argument exists: '--budgets'\n"
    );
    assert!(run.stderr.contains("Usage: tokenmeter statusline"), "clap's whole error on stderr: {}", run.stderr);
    let run = statusline(&dir.root(), &["--hours", "30"], None);
    assert_eq!((run.code, run.stdout.lines().count()), (0, 1), "{run:?}");
    assert!(run.stdout.starts_with("tokenmeter statusline: invalid value '30' for '--hours"), "{}", run.stdout);

    let home = tempfile::tempdir().unwrap();
    let prices = |format: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenmeter"));
        clean_env(&mut cmd, home.path());
        cmd.args(["--prices", "/nonexistent/prices.toml", &format!("--claude-code={}", dir.root())])
            .args(["statusline", "--format", format])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = prices("line");
    assert_eq!(out.status.code(), Some(0));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.starts_with("tokenmeter: cannot read price file /nonexistent/prices.toml"), "{line}");

    // An unknown option before the command (where clap parses no command at all): the line too.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenmeter"));
    clean_env(&mut cmd, home.path());
    let out = cmd.args(["--bogus", "statusline"]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.starts_with("tokenmeter statusline: unexpected argument '--bogus' found"), "{line}");

    // Asked for JSON, or another command: clap's exit status and the usual errors, nothing on stdout.
    let run = statusline(&dir.root(), &["--format", "json", "--hours", "30"], None);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""), "{run:?}");
    assert_eq!(prices("json").status.code(), Some(1));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenmeter"));
    clean_env(&mut cmd, home.path());
    let out = cmd.args(["summary", "--budget", "b.toml"]).output().unwrap();
    assert_eq!((out.status.code(), out.stdout.len()), (Some(2), 0));
}

#[test]
fn the_model_name_is_shown_without_control_characters() {
    let c = Config::new();
    c.session("a", &[call("a", "2025-10-03T11:55:00Z", "m1", 1_000)], 0);
    let input = r#"{"session_id":"a","model":{"display_name":"Opus\u001b[2J\nevil"}}"#;
    let line = statusline(&c.root(), &[], Some(input)).ok().to_owned();
    assert!(!line.contains('\u{1b}') && line.matches('\n').count() == 1, "{line:?}");
    assert!(line.starts_with("Opus"), "{line:?}");
}
