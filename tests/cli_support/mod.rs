//! Running the built `tokenmeter` binary in the CLI tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The time the fixture reports treat as now: the day after the fixture's last call.
pub const NOW: &str = "2025-10-04T00:00:00Z";

/// A finished run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "exit {}\nstdout:\n{}\nstderr:\n{}", self.code, self.stdout, self.stderr);
        &self.stdout
    }

    /// Asserts success and parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// Asserts the exit status and that stderr mentions `needle`.
    #[track_caller]
    pub fn fails(&self, code: i32, needle: &str) {
        assert_eq!(self.code, code, "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}:\n{}", self.stderr);
    }
}

pub fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name).to_string_lossy().into_owned()
}

/// Runs `tokenmeter args…` with a clean environment (no colour, no Claude or journal variables, HOME in an
/// empty temporary directory unless `env` sets it).
pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenmeter"));
    clean_env(cmd.args(args), home.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run tokenmeter");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// No colour, no Claude or journal variables, `HOME` (and Windows' `USERPROFILE`) at `home`, no standard input,
/// and UTC (`TZ`) as the local zone, whatever the machine's: what every CLI test runs in.
pub fn clean_env<'c>(cmd: &'c mut Command, home: &Path) -> &'c mut Command {
    cmd.env("TZ", "UTC")
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("TOKENMETER_JOURNAL")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", home)
        .env("USERPROFILE", home)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
}

pub fn run(args: &[&str]) -> Run {
    run_env(args, &[])
}

/// `tokenmeter --claude-code <fixture> --now NOW args…`.
pub fn cc(args: &[&str]) -> Run {
    let dir = fixture("claude_code");
    let mut all = vec!["--claude-code", dir.as_str(), "--now", NOW];
    all.extend_from_slice(args);
    run(&all)
}

/// `n` record lines (at most 10), one call each on models `model-0`, `model-1`, … (none priced), on 2025-10-03
/// from 10:00 an hour apart, each with 10 input tokens fewer than the one before (1,000 first).
pub fn one_call_per_model(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"timestamp":"2025-10-03T1{i}:00:00Z","duration_us":5,"model":"model-{i}","tokens":{{"input":{},"output":10}},"metered":true,"outcome":{{"status":"ok"}},"dimensions":{{}}}}"#,
                1_000 - i * 10
            )
        })
        .collect()
}

/// A record line: one priced call on `claude-haiku-4-5` at `ts`, with `input` uncached input tokens and nothing else.
pub fn haiku_record(ts: &str, input: u64) -> String {
    format!(
        r#"{{"timestamp":"{ts}","duration_us":5,"model":"claude-haiku-4-5","tokens":{{"input":{input},"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":0,"reasoning":0}},"metered":true,"outcome":{{"status":"ok"}},"dimensions":{{}}}}"#
    )
}

/// A records file (`--records`: one `CallRecord` JSON object a line) in a temporary directory.
pub struct Records {
    _dir: tempfile::TempDir,
    pub path: String,
}

impl Records {
    /// The file holding `lines`, one record each.
    pub fn new<S: AsRef<str>>(lines: &[S]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.jsonl");
        let text: String = lines.iter().map(|l| format!("{}\n", l.as_ref())).collect();
        std::fs::write(&path, text).unwrap();
        Records { path: path.to_str().unwrap().to_owned(), _dir: dir }
    }

    /// `tokenmeter --records <file> --now NOW args…`.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut all = vec!["--records", self.path.as_str(), "--now", NOW];
        all.extend_from_slice(args);
        run(&all)
    }
}

/// Writes the fixture's calls (read with the library) as a tokenmeter journal in `dir`: one file per UTC day,
/// `{"v":1,"call":{…}}` lines. Returns the number of records.
pub fn write_journal(dir: &Path) -> usize {
    use std::io::Write;
    let files = tokenmeter::transcripts::discover(Path::new(&fixture("claude_code"))).unwrap();
    let load = tokenmeter::transcripts::TranscriptLoader::new(tokenmeter::PriceBook::builtin()).load(&files);
    for call in &load.calls {
        let path: PathBuf = dir.join(format!("tokenmeter-{}.jsonl", call.timestamp.format("%Y-%m-%d")));
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        let line = serde_json::json!({"v": 1, "call": call});
        writeln!(f, "{line}").unwrap();
    }
    load.calls.len()
}

/// Float equality to 1e-9 relative.
#[track_caller]
pub fn close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-9 * b.abs().max(1e-12), "{a} != {b}");
}

/// One Claude Code session in a temporary `projects/-home-dev-app/` folder: its lines as given, each followed by a
/// newline.
pub struct Transcript {
    _dir: tempfile::TempDir,
    /// The config dir to pass to `--claude-code` (it holds `projects/`).
    pub root: String,
    /// The session's file.
    pub file: PathBuf,
}

impl Transcript {
    pub fn new<S: AsRef<str>>(lines: &[S]) -> Self {
        let text: String = lines.iter().map(|l| format!("{}\n", l.as_ref())).collect();
        Self::with_text(&text)
    }

    /// The session file holding exactly `text`.
    pub fn with_text(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("projects").join("-home-dev-app");
        std::fs::create_dir_all(&project).unwrap();
        let file = project.join("sess-1.jsonl");
        std::fs::write(&file, text).unwrap();
        Transcript { root: dir.path().to_str().unwrap().to_owned(), file, _dir: dir }
    }

    /// `tokenmeter --claude-code <root> --now NOW args…`.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut all = vec!["--claude-code", self.root.as_str(), "--now", NOW];
        all.extend_from_slice(args);
        run(&all)
    }
}

/// A Claude Code assistant line with usage: message `id`, request `req-<id>`, `input` and `output` tokens.
pub fn usage_line(ts: &str, model: &str, id: &str, input: u64, output: u64) -> String {
    serde_json::json!({
        "type": "assistant",
        "timestamp": ts,
        "sessionId": "sess-1",
        "requestId": format!("req-{id}"),
        "message": {"id": id, "model": model, "usage": {"input_tokens": input, "output_tokens": output}}
    })
    .to_string()
}
