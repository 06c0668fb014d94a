//! Where records come from: the journal (default or --journal), Claude Code transcripts (--claude-code [DIR],
//! CLAUDE_CONFIG_DIR, ~/.config/claude, ~/.claude), a file of records; and the errors for bad paths.
#![cfg(feature = "cli")]

use crate::cli_support;

use cli_support::{NOW, Records, Transcript, cc, fixture, run, run_env, usage_line, write_journal};

/// The reasons of the skipped lines the JSON output lists.
fn skipped_reasons(out: &cli_support::Run) -> Vec<String> {
    out.json()["source"]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reason"].as_str().unwrap().to_owned())
        .collect()
}

fn calls(out: &cli_support::Run) -> u64 {
    out.json()["summary"]["calls"].as_u64().unwrap()
}

#[test]
fn journal_lines_of_a_later_versions_kind_are_counted_and_noted() {
    // Left out, as a meter's replay leaves them, but the CLI said nothing of them (`source` had no count).
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(write_journal(dir.path()), 13);
    let newest = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).max().unwrap();
    let mut text = std::fs::read_to_string(&newest).unwrap();
    text.push_str("{\"v\":1,\"usage_limit\":{\"window\":\"5h\"}}\n");
    std::fs::write(&newest, text).unwrap();
    let j = dir.path().to_str().unwrap();
    let out = run(&["--journal", j, "--now", NOW, "summary", "--format", "json"]);
    assert_eq!(calls(&out), 13);
    assert_eq!(
        (out.json()["source"]["other_lines"].as_u64(), out.json()["source"]["skipped_lines"].as_u64()),
        (Some(1), Some(0))
    );
    assert!(
        out.stderr
            .contains("1 journal line of a kind this version does not read (written by a later tokenmeter) left out"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_records_line_with_a_call_and_a_task_keeps_the_call_as_replay_does() {
    // Hand-made: `--records` skipped the whole line as a task line, where the journal's replay keeps the call.
    let call = r#"{"timestamp":"2025-10-03T12:00:00Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{"input":7},"metered":true,"outcome":{"status":"ok"}}"#;
    let line = format!(r#"{{"v":1,"call":{call},"task":{{"name":"t"}}}}"#);
    let out = Records::new(&[line]).run(&["summary", "--format", "json"]);
    assert_eq!(calls(&out), 1, "{}", out.stderr);
    assert_eq!(out.json()["summary"]["tokens"]["input"], 7);
}

#[test]
fn journal_directory() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(write_journal(dir.path()), 13);
    let j = dir.path().to_str().unwrap();
    let out = run(&["--journal", j, "--now", NOW, "summary", "--format", "json"]);
    assert_eq!(calls(&out), 13);
    assert_eq!(out.json()["source"]["kind"], "journal");
    assert_eq!(out.json()["source"]["files"], 3);
    // The same through TOKENMETER_JOURNAL, and through XDG_DATA_HOME/tokenmeter/journal.
    assert_eq!(calls(&run_env(&["--now", NOW, "summary", "--format", "json"], &[("TOKENMETER_JOURNAL", j)])), 13);
    let data = tempfile::tempdir().unwrap();
    let jdir = data.path().join("tokenmeter/journal");
    std::fs::create_dir_all(&jdir).unwrap();
    write_journal(&jdir);
    let xdg =
        run_env(&["--now", NOW, "summary", "--format", "json"], &[("XDG_DATA_HOME", data.path().to_str().unwrap())]);
    assert_eq!(calls(&xdg), 13);
    // A torn last line and a line from a newer schema are skipped and reported, not fatal.
    let f = dir.path().join("tokenmeter-2025-10-03.jsonl");
    let mut text = std::fs::read_to_string(&f).unwrap();
    text.push_str("{\"v\":7,\"call\":{}}\n{\"v\":1,\"call\":{\"timest");
    std::fs::write(&f, text).unwrap();
    let out = run(&["--journal", j, "--now", NOW, "summary", "--format", "json"]);
    assert_eq!(calls(&out), 13);
    assert_eq!(out.json()["source"]["skipped_lines"], 2);
    assert!(out.stderr.contains("newer tokenmeter"), "{}", out.stderr);
    let reasons = skipped_reasons(&out);
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("schema version 7") && reasons[1].starts_with("torn last line"), "{reasons:?}");
    // An empty journal is not an error.
    let empty = tempfile::tempdir().unwrap();
    let out = run(&["--journal", empty.path().to_str().unwrap(), "summary", "--format", "json"]);
    assert_eq!(calls(&out), 0);
    assert!(out.stderr.contains("holds no records yet"));
}

#[test]
fn an_empty_records_file_is_a_report_with_a_note() {
    // A cron job's export that wrote nothing: a $0 report and exit 0, as before, and now a note saying why.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("empty.jsonl");
    std::fs::write(&file, "").unwrap();
    let out = run(&["--records", file.to_str().unwrap(), "--now", NOW, "summary", "--format", "json"]);
    assert_eq!(calls(&out), 0);
    assert!(out.stderr.contains("holds no records"), "{}", out.stderr);
    // The date bound's message names both limits.
    run(&["--records", file.to_str().unwrap(), "--now", "2262-04-12T00:00:00Z", "summary"])
        .fails(2, "give a date from 1970-01-01 to 2262-04-09, or a time up to 2262-04-11T23:47:16Z");
}

#[test]
fn records_file() {
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path());
    // JSON Lines of bare records, and a JSON array.
    let mut records = Vec::new();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        for line in std::fs::read_to_string(e.unwrap().path()).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            records.push(v["call"].clone());
        }
    }
    let jsonl = dir.path().join("records.jsonl");
    std::fs::write(&jsonl, records.iter().map(|r| format!("{r}\n")).collect::<String>()).unwrap();
    let out = run(&["--records", jsonl.to_str().unwrap(), "--now", NOW, "summary", "--format", "json"]);
    assert_eq!(calls(&out), 13);
    assert_eq!(out.json()["source"]["kind"], "records");
    assert_eq!(out.json()["summary"]["cost_picos"], 371_530_000_000u64);
    let array = dir.path().join("records.json");
    std::fs::write(&array, serde_json::to_string(&records).unwrap()).unwrap();
    assert_eq!(calls(&run(&["--records", array.to_str().unwrap(), "summary", "--format", "json"])), 13);
    std::fs::write(&array, "[{\"nope\":1}]").unwrap();
    run(&["--records", array.to_str().unwrap(), "summary"]).fails(1, "not a JSON array of call records");

    // A token count capture would reject (over 10^12 of a kind) is a skipped line with its reason, not a sum.
    let mut huge = records[0].clone();
    huge["tokens"]["cache_read"] = serde_json::json!(1_000_000_000_001u64);
    std::fs::write(&jsonl, format!("{huge}\n{}\n", records[1])).unwrap();
    let out = run(&["--records", jsonl.to_str().unwrap(), "summary", "--format", "json"]);
    assert_eq!(calls(&out), 1);
    assert_eq!(out.json()["source"]["skipped_lines"], 1);
    assert!(out.stderr.contains(":1: not a call record: tokens.cache_read = 1000000000001 is over"), "{}", out.stderr);
    // The journal reader applies the same cap.
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    let lines = [serde_json::json!({"v": 1, "call": huge}), serde_json::json!({"v": 1, "call": records[1]})];
    std::fs::write(journal.join("tokenmeter-2025-10-01.jsonl"), format!("{}\n{}\n", lines[0], lines[1])).unwrap();
    let out = run(&["--journal", journal.to_str().unwrap(), "summary", "--format", "json"]);
    assert_eq!(calls(&out), 1);
    assert!(out.stderr.contains("is over the 1000000000000 tokens"), "{}", out.stderr);

    // And a cost pricing could not have made: a total that is not its parts' sum, or over $10^12 (a hand-made
    // u128::MAX saturated every sum it reached), in both readers.
    let with_cost = |cost: &str| {
        let mut r = records[1].clone();
        r.as_object_mut().unwrap().remove("cost");
        let text = r.to_string();
        format!("{},\"cost\":{cost}}}", &text[..text.len() - 1])
    };
    let parts = |total: &str, input: &str| {
        format!(
            r#"{{"total":{total},"input":{input},"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":0,"priced_as":"claude-haiku-4-5"}}"#
        )
    };
    let max = u128::MAX.to_string();
    let bad = [with_cost(&parts("8", "7")), with_cost(&parts(&max, &max)), with_cost(&parts("7", "7"))];
    std::fs::write(&jsonl, bad.join("\n")).unwrap();
    let out = run(&["--records", jsonl.to_str().unwrap(), "summary", "--format", "json"]);
    assert_eq!(calls(&out), 1);
    assert_eq!(out.json()["summary"]["cost_picos"], 7);
    assert!(out.stderr.contains(":1: not a call record: cost.total = 8 picodollars is not the sum of its parts (7)"));
    assert!(out.stderr.contains(&format!(":2: not a call record: cost.total = {max} picodollars is over the $1e12")));
    let lines: Vec<String> = bad.iter().map(|c| format!(r#"{{"v":1,"call":{c}}}"#)).collect();
    std::fs::write(journal.join("tokenmeter-2025-10-01.jsonl"), lines.join("\n")).unwrap();
    let out = run(&["--journal", journal.to_str().unwrap(), "summary", "--format", "json"]);
    assert_eq!(calls(&out), 1);
    assert_eq!(out.json()["summary"]["cost_picos"], 7);
    assert!(out.stderr.contains("is not the sum of its parts"), "{}", out.stderr);

    // So is a time no ledger can hold (it made `summary` fail with day rows past any limit), in both readers.
    let mut far = records[0].clone();
    far["timestamp"] = serde_json::json!("9999-12-31T23:59:59Z");
    std::fs::write(&jsonl, format!("{far}\n{}\n", records[1])).unwrap();
    let out = run(&["--records", jsonl.to_str().unwrap(), "summary", "--format", "json"]);
    assert_eq!(calls(&out), 1);
    assert!(
        out.stderr.contains(":1: not a call record: timestamp 9999-12-31T23:59:59+00:00 is out of range"),
        "{}",
        out.stderr
    );
    let lines = [serde_json::json!({"v": 1, "call": far}), serde_json::json!({"v": 1, "call": records[1]})];
    std::fs::write(journal.join("tokenmeter-2025-10-01.jsonl"), format!("{}\n{}\n", lines[0], lines[1])).unwrap();
    let out = run(&["--journal", journal.to_str().unwrap(), "summary", "--format", "json"]);
    assert_eq!(calls(&out), 1);
    assert!(out.stderr.contains("is out of range"), "{}", out.stderr);
}

#[test]
fn claude_code_defaults() {
    let fx = fixture("claude_code");
    // --claude-code without a value reads CLAUDE_CONFIG_DIR (several, comma-separated: a call in both counts once).
    let env = format!("{fx},{fx}");
    let out = run_env(&["--claude-code", "--now", NOW, "summary", "--format", "json"], &[("CLAUDE_CONFIG_DIR", &env)]);
    assert_eq!(calls(&out), 13);
    // Two separate copies (a config dir copied to another path, not one path given twice, which is listed once):
    // the calls in both count once, by their message and request ids.
    let copies = tempfile::tempdir().unwrap();
    let (a, b) = (copies.path().join("a"), copies.path().join("b"));
    copy_dir(std::path::Path::new(&fx), &a);
    copy_dir(std::path::Path::new(&fx), &b);
    let env = format!("{},{}", a.display(), b.display());
    let out = run_env(&["--claude-code", "--now", NOW, "summary", "--format", "json"], &[("CLAUDE_CONFIG_DIR", &env)]);
    assert_eq!(calls(&out), 13);
    // Given before the command, a bare --claude-code does not swallow the command's name.
    let out = run_env(&["--now", NOW, "--claude-code", "summary", "--format", "json"], &[("CLAUDE_CONFIG_DIR", &fx)]);
    assert_eq!(calls(&out), 13);
    // An entry that does not exist (a config dir since deleted) is warned about and left out while another
    // exists; with none that exists, it is an error naming them.
    let tmp = tempfile::tempdir().unwrap();
    let gone = tmp.path().join("gone");
    let env = format!("{fx},{}", gone.display());
    let out = run_env(&["--claude-code", "--now", NOW, "summary", "--format", "json"], &[("CLAUDE_CONFIG_DIR", &env)]);
    assert_eq!(calls(&out), 13);
    assert!(
        out.stderr.contains(&format!("warning: cannot read {}: no such directory", gone.display())),
        "{}",
        out.stderr
    );
    let unreadable = &out.json()["source"]["transcripts"]["unreadable_files"];
    assert_eq!(unreadable[0]["path"], gone.display().to_string(), "{unreadable}");
    let env = format!("{0},{0}2", gone.display());
    run_env(&["--claude-code", "--now", NOW, "summary"], &[("CLAUDE_CONFIG_DIR", &env)])
        .fails(1, "CLAUDE_CONFIG_DIR lists");
    // One that exists without a `projects/` folder was walked whole (plugins, caches), any `.jsonl` in it read
    // as a transcript: left out with a warning, and an error when it is all there is.
    let bare = tmp.path().join("bare");
    std::fs::create_dir_all(bare.join("plugins")).unwrap();
    std::fs::copy(format!("{fx}/projects/-home-dev-alpha/sess-alpha-1.jsonl"), bare.join("plugins/cache.jsonl"))
        .unwrap();
    let env = format!("{fx},{}", bare.display());
    let out = run_env(&["--claude-code", "--now", NOW, "summary", "--format", "json"], &[("CLAUDE_CONFIG_DIR", &env)]);
    assert_eq!(calls(&out), 13);
    assert!(
        out.stderr.contains(&format!("warning: cannot read {}: no projects/ folder", bare.display())),
        "{}",
        out.stderr
    );
    run_env(&["--claude-code", "--now", NOW, "summary"], &[("CLAUDE_CONFIG_DIR", &bare.display().to_string())])
        .fails(1, "none of them has a projects/ folder");
    // Else ~/.config/claude and ~/.claude.
    let home = tempfile::tempdir().unwrap();
    let dot = home.path().join(".claude");
    std::fs::create_dir_all(&dot).unwrap();
    copy_dir(&std::path::Path::new(&fx).join("projects"), &dot.join("projects"));
    let out = run_env(&["summary", "--claude-code", "--format", "json"], &[("HOME", home.path().to_str().unwrap())]);
    assert_eq!(calls(&out), 13);
    let empty = tempfile::tempdir().unwrap();
    run_env(&["summary", "--claude-code"], &[("HOME", empty.path().to_str().unwrap())])
        .fails(1, "no Claude Code data found");
    // A config dir without projects/ holds no transcripts: its history.jsonl was read as a project, and the
    // rest of it (plugins, caches) walked.
    let bare = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(bare.path().join(".claude")).unwrap();
    std::fs::write(bare.path().join(".claude/history.jsonl"), "{\"display\":\"hello\"}\n").unwrap();
    let home = bare.path().display();
    run_env(&["summary", "--claude-code"], &[("HOME", bare.path().to_str().unwrap())])
        .fails(1, &format!("neither {home}/.config/claude nor {home}/.claude has a projects/ folder"));
}

#[test]
fn without_default_claude_code_data_the_error_names_where_it_looked() {
    // It said "neither ~/.config/claude nor ~/.claude" whatever was searched.
    let home = tempfile::tempdir().unwrap();
    let config = tempfile::tempdir().unwrap();
    let (h, x) = (home.path().to_str().unwrap(), config.path().to_str().unwrap());
    // XDG_CONFIG_HOME moves the first one.
    run_env(&["summary", "--claude-code"], &[("HOME", h), ("XDG_CONFIG_HOME", x)])
        .fails(1, &format!("neither {x}/claude nor {h}/.claude has a projects/ folder"));
    // A CLAUDE_CONFIG_DIR that lists no directory is what to fix, not a variable to set.
    for value in [",", " , "] {
        let out = run_env(&["summary", "--claude-code"], &[("HOME", h), ("CLAUDE_CONFIG_DIR", value)]);
        out.fails(1, &format!("CLAUDE_CONFIG_DIR is set ({value:?}) but lists no directory"));
        assert!(!out.stderr.contains("has a projects/ folder"), "{}", out.stderr);
    }
}

#[test]
#[cfg(target_os = "linux")]
fn transcripts_none_of_which_can_be_read_are_an_error() {
    // Every transcript file failing to read made a $0 report, exit 0 (a journal whose every day file fails to
    // read is exit 1). `chmod 000` does not stop root, who runs the tests in CI; a read of /proc/self/mem's
    // address 0 (never mapped) fails for anyone, with EIO: transcripts linked to it cannot be read.
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("projects").join("-home-dev-app");
    std::fs::create_dir_all(&project).unwrap();
    std::os::unix::fs::symlink("/proc/self/mem", project.join("sess-1.jsonl")).unwrap();
    let root = dir.path().to_str().unwrap();
    let out = run(&["-q", "--claude-code", root, "--now", NOW, "summary"]);
    out.fails(1, &format!("no readable records in {root}: the 1 transcript file found could not be read"));
    assert!(out.stderr.contains("sess-1.jsonl: Input/output error"), "{}", out.stderr);
    // Without -q, the warning names the file too; the JSON is not printed either.
    let out = run(&["--claude-code", root, "--now", NOW, "summary", "--format", "json"]);
    out.fails(1, "warning: cannot read");
    assert_eq!(out.stdout, "");
    // Two of them (two names /proc does not take for one file).
    std::os::unix::fs::symlink("/proc/thread-self/mem", project.join("sess-2.jsonl")).unwrap();
    run(&["-q", "--claude-code", root, "--now", NOW, "summary"])
        .fails(1, "none of the 2 transcript files found could be read (first: ");
    // One readable file beside them, even without a call, is a report, with the warnings.
    std::fs::write(project.join("sess-3.jsonl"), "{\"type\":\"user\",\"message\":{\"content\":\"hi\"}}\n").unwrap();
    let out = run(&["--claude-code", root, "--now", NOW, "summary", "--format", "json"]);
    assert_eq!(out.json()["summary"]["calls"], 0);
    assert!(out.stderr.contains("warning: cannot read"), "{}", out.stderr);
    std::fs::write(
        project.join("sess-3.jsonl"),
        format!("{}\n", usage_line("2025-10-02T10:00:00Z", "claude-sonnet-4-5", "m1", 100, 10)),
    )
    .unwrap();
    let out = run(&["--claude-code", root, "--now", NOW, "summary", "--format", "json"]);
    assert_eq!(out.json()["summary"]["calls"], 1);
    assert_eq!(out.json()["source"]["transcripts"]["unreadable_files"].as_array().map(Vec::len), Some(2));
}

/// `tokenmeter args…` as `run` runs it, as the user `nobody` when the tests run as root (whom `chmod 000`
/// does not stop; CI runs them as root).
#[cfg(unix)]
fn run_unprivileged(args: &[&str]) -> cli_support::Run {
    run_unprivileged_env(args, &[])
}

#[cfg(unix)]
fn run_unprivileged_env(args: &[&str], env: &[(&str, &str)]) -> cli_support::Run {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tokenmeter"));
    cli_support::clean_env(cmd.args(args), home.path());
    cmd.envs(env.iter().copied());
    if std::fs::metadata(home.path()).unwrap().uid() == 0 {
        cmd.uid(65_534).gid(65_534);
    }
    let out = cmd.output().expect("run tokenmeter");
    cli_support::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
#[cfg(unix)]
fn a_config_dir_whose_projects_cannot_be_read_is_left_out_beside_one_that_can() {
    use std::os::unix::fs::PermissionsExt;
    // A root-owned `~/.config/claude/projects` (after `sudo claude`) beside a readable `~/.claude`: the whole
    // load stopped with "cannot read …/projects: Permission denied", and no report.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (locked, open) = (dir.path().join("locked"), dir.path().join("open"));
    std::fs::create_dir_all(locked.join("projects")).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(locked.join("projects"), std::fs::Permissions::from_mode(0o700)).unwrap();
    copy_dir(std::path::Path::new(&fixture("claude_code")), &open);
    let env = format!("{},{}", locked.display(), open.display());
    let args = ["--claude-code", "--now", NOW, "summary", "--format", "json"];
    let out = run_unprivileged_env(&args, &[("CLAUDE_CONFIG_DIR", &env)]);
    assert_eq!(calls(&out), 13, "{}", out.stderr);
    let projects = locked.join("projects").display().to_string();
    assert!(out.stderr.contains(&format!("warning: cannot read {projects}: ")), "{}", out.stderr);
    let unreadable = &out.json()["source"]["transcripts"]["unreadable_files"];
    assert_eq!(unreadable[0]["path"], projects, "{unreadable}");
    // With nothing readable, the error names it.
    run_unprivileged_env(&args, &[("CLAUDE_CONFIG_DIR", &locked.display().to_string())])
        .fails(1, &format!("cannot read {projects}: Permission denied"));
}

#[test]
#[cfg(unix)]
fn journal_files_that_cannot_be_read_are_files_not_lines() {
    use std::os::unix::fs::PermissionsExt;
    // A day file that could not be read was "1 unreadable line" (at line 0), and a journal of them "all 14 lines
    // read were unreadable".
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let j = dir.path().to_str().unwrap();
    for day in ["2025-09-20", "2025-09-21"] {
        let path = dir.path().join(format!("tokenmeter-{day}.jsonl"));
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    run_unprivileged(&["-q", "--journal", j, "--now", NOW, "summary"])
        .fails(1, &format!("no readable records in {j}: none of its 2 files could be read (first: "));
    // Beside an empty one: 2 of its 3.
    std::fs::write(dir.path().join("tokenmeter-2025-09-22.jsonl"), "").unwrap();
    run_unprivileged(&["-q", "--journal", j, "--now", NOW, "summary"])
        .fails(1, &format!("no readable records in {j}: 2 of its 3 files could not be read (first: "));
    // Beside readable ones: a report, warning of 2 files, not lines.
    assert_eq!(write_journal(dir.path()), 13);
    let out = run_unprivileged(&["--journal", j, "--now", NOW, "summary", "--format", "json"]);
    assert_eq!(calls(&out), 13, "{}", out.stderr);
    assert!(out.stderr.contains("warning: skipped 2 unreadable files, first at:"), "{}", out.stderr);
    assert!(out.stderr.contains("tokenmeter-2025-09-20.jsonl: cannot read the file:"), "{}", out.stderr);
    let source = &out.json()["source"];
    assert_eq!((source["skipped_lines"].as_u64(), source["unreadable_files"].as_u64()), (Some(0), Some(2)));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn bad_paths_exit_1_bad_combinations_exit_2() {
    run(&["--claude-code", "/nonexistent/claude", "summary"]).fails(1, "no such file or directory");
    let empty = tempfile::tempdir().unwrap();
    run(&["--claude-code", empty.path().to_str().unwrap(), "summary"]).fails(1, "no Claude Code transcripts");
    // A single file that is not a transcript is a mistake to name, not a transcript of unreadable lines.
    let toml = fixture("claude_code/budgets.toml");
    run(&[&format!("--claude-code={toml}"), "summary"]).fails(2, &format!("--claude-code {toml}: not a Claude Code"));
    // A pipe or device (`--claude-code /dev/stdin` from a pipe) was walked as a folder: "Not a directory".
    run(&["--claude-code", "/dev/null", "summary"]).fails(2, "--claude-code /dev/null: a pipe or device");
    run(&["--records", "-", "summary"]).fails(2, "--records -: standard input is not read");
    run(&["--journal", "/nonexistent/journal", "summary"]).fails(1, "does not exist");
    run(&["--records", "/nonexistent/records.jsonl", "summary"]).fails(1, "no such file");
    run(&["--records", empty.path().to_str().unwrap(), "summary"]).fails(1, "is a directory");
    // Nothing readable is an error, not a $0 report a cron job would pass on.
    let garbage = empty.path().join("garbage.jsonl");
    std::fs::write(&garbage, "not json\n{\"neither\": 1}\n").unwrap();
    run(&["--records", garbage.to_str().unwrap(), "summary"]).fails(1, "all 2 lines read were unreadable");
    std::fs::write(&garbage, "not json\n").unwrap();
    run(&["--records", garbage.to_str().unwrap(), "summary"]).fails(1, "the 1 line read was unreadable");
    // The default journal (under the empty HOME) does not exist.
    run(&["summary"]).fails(1, "does not exist");
    run(&["--journal", "/tmp", "--records", "/tmp/x", "summary"]).fails(2, "cannot be used with");
    run(&["--prices", "/nonexistent/prices.toml", "--claude-code", &fixture("claude_code"), "summary"])
        .fails(1, "price file");
}

#[test]
fn price_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let prices = dir.path().join("prices.toml");
    let p = prices.to_str().unwrap();
    let journal = tempfile::tempdir().unwrap();
    write_journal(journal.path());
    let (cc, j) = (fixture("claude_code"), journal.path().to_str().unwrap().to_owned());
    // `summary --format json` over a source, with the price file or without.
    let summary = |source: &[&str], with_prices: bool| {
        let mut args: Vec<&str> = if with_prices { vec!["--prices", p] } else { Vec::new() };
        args.extend_from_slice(source);
        args.extend(["--now", NOW, "summary", "--format", "json"]);
        run(&args).json()
    };
    let (transcripts, journal) = (["--claude-code", cc.as_str()], ["--journal", j.as_str()]);

    std::fs::write(&prices, "[models.\"claude-fable-9\"]\ninput = 1\noutput = 2\n").unwrap();
    // A Claude id the built-in book lacks is named: a model of the file's own, or a misspelt one.
    let out = run(&["--prices", p, "--claude-code", cc.as_str(), "--now", NOW, "summary"]);
    assert!(out.stderr.contains("adds `claude-fable-9`, not in the built-in price book"), "{}", out.stderr);
    assert!(!out.stderr.contains("replaces the whole built-in price"), "{}", out.stderr);
    let v = summary(&transcripts, true);
    assert_eq!(v["summary"]["unpriced"]["calls"], 0);
    // G1: 100 input × $1 + 100 output × $2 per Mtok = 300 µUSD.
    assert_eq!(v["summary"]["cost_picos"], 371_830_000_000u64);

    // A journal carries the cost its application priced each call at; --prices prices them again, the
    // same as the transcripts they came from (the fixture's journal was priced with the built-in book).
    assert_eq!(summary(&journal, false)["summary"]["cost_picos"], 371_530_000_000u64, "recorded costs");
    std::fs::write(&prices, "[models.\"claude-sonnet-4-5\"]\ninput = 100\noutput = 100\n").unwrap();
    // The entry replaces Sonnet 4.5's whole price, long-context rates included: a note says so.
    let out = run(&["--prices", p, "--claude-code", cc.as_str(), "--now", NOW, "summary"]);
    assert!(
        out.stderr.contains("replaces the whole built-in price of `claude-sonnet-4-5` (no long_context)"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("not in the built-in price book"), "{}", out.stderr);
    let (via_transcripts, via_journal) = (summary(&transcripts, true), summary(&journal, true));
    assert_ne!(via_journal["summary"]["cost_picos"], 371_530_000_000u64);
    assert_eq!(via_journal["summary"]["cost_picos"], via_transcripts["summary"]["cost_picos"]);
    // The file's own model's calls: the five Sonnet 4.5 calls (the other models keep their recorded costs, here
    // the built-in rates the transcripts are priced at too).
    assert_eq!(via_journal["source"]["repriced"], 5);

    // A model the file does not name keeps the cost its application recorded (its own price for it): a file
    // adding one fine-tune priced every call of a journal or records file again at the built-in rates.
    let rec = r#"{"timestamp":"2025-10-03T12:00:00Z","duration_us":5,"model":"claude-haiku-4-5","tokens":{"input":1000,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":0,"reasoning":0},"metered":true,"outcome":{"status":"ok"},"dimensions":{},"cost":{"total":7,"input":7,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":0,"priced_as":"claude-haiku-4-5"}}"#;
    let records = dir.path().join("records.jsonl");
    std::fs::write(&records, format!("{rec}\n")).unwrap();
    std::fs::write(&prices, "[models.\"claude-fable-9\"]\ninput = 1\noutput = 2\n").unwrap();
    let v = summary(&["--records", records.to_str().unwrap()], true);
    assert_eq!(v["summary"]["cost_picos"].as_u64(), Some(7), "{v}");
    assert_eq!(v["source"]["repriced"], serde_json::Value::Null, "none repriced: left out of the JSON");
    // Named by the file, it is priced again: 1000 input tokens at $1 per Mtok.
    std::fs::write(&prices, "[models.\"claude-haiku-4-5\"]\ninput = 1\noutput = 2\n").unwrap();
    let v = summary(&["--records", records.to_str().unwrap()], true);
    assert_eq!(v["summary"]["cost_picos"].as_u64(), Some(1_000_000_000), "{v}");
    assert_eq!(v["source"]["repriced"].as_u64(), Some(1), "{v}");
    // A file that sets only its web-search fee reprices the calls that made searches: 1000 input tokens at the
    // built-in $1 per Mtok and 2 searches at $20 per 1,000.
    let searched = rec.replace(r#""metered":true"#, r#""metered":true,"web_search_requests":2"#);
    std::fs::write(&records, format!("{searched}\n")).unwrap();
    std::fs::write(&prices, "web_search_per_1k = 20\n").unwrap();
    let v = summary(&["--records", records.to_str().unwrap()], true);
    assert_eq!(v["summary"]["cost_picos"].as_u64(), Some(41_000_000_000), "{v}");
    assert_eq!(v["source"]["repriced"].as_u64(), Some(1), "{v}");
    // At the default's own $10 too: the file sets it, against the $0 the application priced searches at (its
    // recorded cost above counts no search fee).
    std::fs::write(&prices, "web_search_per_1k = 10\n").unwrap();
    let v = summary(&["--records", records.to_str().unwrap()], true);
    assert_eq!(v["summary"]["cost_picos"].as_u64(), Some(21_000_000_000), "{v}");
    assert_eq!(v["source"]["repriced"].as_u64(), Some(1), "{v}");
}

#[test]
fn control_characters_in_names_never_reach_the_output() {
    // A session id taken from a request header can carry an escape sequence (here one that retitles the terminal
    // and one that clears it): it must not reach the terminal through a table, nor a file through CSV.
    let rec = r#"{"timestamp":"2025-10-03T12:00:00Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{"input":1000,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":500,"reasoning":0},"metered":true,"outcome":{"status":"ok"},"dimensions":{"session":"s\u001b]0;pwned\u0007-1","project":"p\u001b[2J\r\n"}}"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, format!("{rec}\n")).unwrap();
    let base = ["--records", file.to_str().unwrap(), "--now", NOW];
    for args in [
        &["show", "s"][..],
        &["summary", "--group-by", "session"],
        &["summary", "--group-by", "project"],
        &["report", "--type", "detailed"],
        &["report", "--type", "detailed", "--format", "csv"],
        &["report", "--type", "detailed", "--format", "html"],
    ] {
        let out = run(&[&base[..], args].concat());
        let text = out.ok();
        assert!(!text.contains(['\u{1b}', '\u{7}', '\r']), "{args:?}: {text:?}");
        // Markdown escapes the brackets as well.
        let shown = [
            r"s\u{1b}]0;pwned\u{7}-1",
            r"p\u{1b}[2J\u{d}\u{a}",
            r"s\\u{1b}\]0;pwned\\u{7}-1",
            r"p\\u{1b}\[2J\\u{d}\\u{a}",
        ];
        assert!(shown.iter().any(|v| text.contains(v)), "{args:?}: {text}");
        assert!(out.stderr.contains("1 call carried control characters"), "{}", out.stderr);
    }
    // JSON keeps the scrubbed value too (it escaped control characters already).
    let v = run(&[&base[..], &["show", "s", "--format", "json"]].concat()).json();
    assert_eq!(v["calls"][0]["dimensions"]["project"], r"p\u{1b}[2J\u{d}\u{a}");
}

#[test]
fn a_journal_brings_its_tasks_and_tool_executions() {
    use tracing::info_span;
    use tracing_subscriber::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let clock = tokenmeter::ManualClock::new("2025-10-03T10:00:00Z".parse().unwrap());
    let meter = tokenmeter::TokenMeter::builder()
        .with_clock(clock)
        .with_journal(tokenmeter::journal::JournalConfig::new(dir.path()))
        .try_build()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(meter.layer()), || {
        let _task = info_span!("triage", task = "triage", session.id = "s1").entered();
        for _ in 0..2 {
            let _call =
                info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 1_000u64).entered();
        }
        for error in [None, Some("timeout")] {
            let tool = info_span!("tool", gen_ai.operation.name = "execute_tool", gen_ai.tool.name = "search", error.type = tracing::field::Empty);
            if let Some(e) = error {
                tool.record("error.type", e);
            }
        }
    });
    meter.flush().unwrap();
    drop(meter);
    let j = dir.path().to_str().unwrap();
    let v = run(&["--journal", j, "--now", NOW, "summary", "--format", "json"]).json();
    assert_eq!(
        (&v["source"]["calls"], &v["source"]["tasks"], &v["source"]["tools"]),
        (&2.into(), &1.into(), &2.into())
    );
    assert_eq!(v["summary"]["tasks"], 1, "{v}");
    assert!(v["summary"]["averages"]["cost_per_task_usd"].as_f64().unwrap() > 0.0, "{v}");
    let v = run(&["--journal", j, "--now", NOW, "show", "s1", "--include-tools", "--format", "json"]).json();
    assert_eq!(v["tools"], serde_json::json!([{"tool": "search", "uses": 2, "errors": 1}]), "{v}");
    // Prices of one's own reprice the calls, not the tasks' recorded sums: a note says so.
    let prices = dir.path().join("prices.toml");
    std::fs::write(&prices, "[models.\"claude-haiku-4-5\"]\ninput = 2\noutput = 10\n").unwrap();
    let out = run(&["--prices", prices.to_str().unwrap(), "--journal", j, "--now", NOW, "summary"]);
    assert!(out.stderr.contains("task costs (cost per task) stay as the application recorded them"), "{}", out.stderr);
    // Before --now, the task has not happened yet.
    let v = run(&["--journal", j, "--now", "2025-10-03T09:00:00Z", "summary", "--format", "json"]).json();
    assert_eq!((v["summary"]["tasks"].as_u64(), v["source"]["tasks"].as_u64()), (Some(0), None), "{v}");
}

#[test]
fn a_records_file_follows_the_journals_compatibility_rule() {
    let call = r#"{"timestamp":"2025-10-03T10:00:00Z","duration_us":5,"model":"claude-haiku-4-5","tokens":{"input":1000,"output":100},"metered":true,"outcome":{"status":"ok"}}"#;
    let lines = [
        format!(r#"{{"v":1,"call":{call}}}"#),
        call.to_owned(),
        // A kind a newer tokenmeter added at this version: left out quietly, as the journal's replay does.
        r#"{"v":1,"usage_limit":{"window":"5h"}}"#.to_owned(),
        // With a time of its own: still a kind (a bare record has `tokens` beside its `timestamp`).
        r#"{"v":1,"usage_limit":{"window":"5h"},"timestamp":"2025-10-03T10:00:00Z"}"#.to_owned(),
        // Version 0 is no version; one past u32 is a newer one, not damage.
        format!(r#"{{"v":0,"call":{call}}}"#),
        format!(r#"{{"v":4294967296,"call":{call}}}"#),
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = run(&["--records", file.to_str().unwrap(), "--now", NOW, "summary", "--format", "json"]);
    assert_eq!(calls(&out), 2);
    let reasons = skipped_reasons(&out);
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("version 0"), "{reasons:?}");
    assert!(reasons[1].contains("newer tokenmeter (schema version 4294967296)"), "{reasons:?}");
}

#[test]
fn a_transcript_time_a_ledger_cannot_hold_is_a_bad_line() {
    // Before 1970 or past 2262: the summary failed (day rows over 8,000 years) or reported from 1900.
    let t = Transcript::new(&[
        usage_line("2025-10-02T10:00:00Z", "claude-sonnet-4-5", "m1", 10, 5),
        usage_line("9999-12-31T23:59:59Z", "claude-sonnet-4-5", "m2", 10, 5),
        usage_line("1900-01-01T00:00:00Z", "claude-sonnet-4-5", "m3", 10, 5),
    ]);
    for args in [&["summary", "--format", "json"][..], &["--now", "2025-10-04", "summary", "--format", "json"]] {
        let out = run(&[&["--claude-code", t.root.as_str()][..], args].concat());
        let v = out.json();
        assert_eq!(v["summary"]["calls"], 1, "{v}");
        assert_eq!(v["source"]["calls"], 1);
        assert_eq!(v["source"]["skipped_lines"], 2);
        assert_eq!(v["summary"]["window"]["from"], "2025-10-02T00:00:00Z");
        assert!(out.stderr.contains(":2: timestamp \"9999-12-31T23:59:59Z\" is out of range"), "{}", out.stderr);
        assert!(out.stderr.contains(":3: timestamp \"1900-01-01T00:00:00Z\" is out of range"), "{}", out.stderr);
    }
}

#[test]
fn readable_lines_without_calls_beside_an_unreadable_one_make_an_empty_report() {
    // A session with no answer yet: three user lines, and one line that is garbage. Not "every line was
    // unreadable" (exit 1): a warning with the right counts, and an empty report.
    let user =
        |n: u32| format!(r#"{{"type":"user","timestamp":"2025-10-02T10:00:0{n}Z","message":{{"content":"hi"}}}}"#);
    let t = Transcript::new(&[user(1), user(2), user(3), "garbage".to_owned()]);
    let out = t.run(&["summary", "--format", "json"]);
    assert_eq!(out.json()["summary"]["calls"], 0);
    assert!(
        out.stderr.contains("warning: no calls in")
            && out.stderr.contains("1 of the 4 lines read was unreadable, and the other 3 hold no call"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("error"), "{}", out.stderr);
    // Quiet: no note, the same report.
    let quiet = t.run(&["-q", "summary"]);
    assert_eq!((quiet.ok().contains("0 calls read"), quiet.stderr.as_str()), (true, ""));
    // Every line unreadable is still an error.
    let bad = Transcript::new(&["garbage", "{not json"]);
    bad.run(&["summary"]).fails(1, "no readable records in");
    bad.run(&["summary"]).fails(1, "all 2 lines read were unreadable");

    // A records file: a journal's budget alert line holds no call, and is no unreadable line.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, "{\"v\":1,\"budget_alert\":{}}\nnot json\nnot json either\n").unwrap();
    // An empty JSON summary of the source, with the warning that counts its lines.
    let empty_with = |source: &str, path: &std::path::Path, warning: &str| {
        let out = run(&[source, path.to_str().unwrap(), "summary", "--format", "json"]);
        assert_eq!(out.json()["summary"]["calls"], 0);
        assert!(out.stderr.contains(warning), "{}", out.stderr);
    };
    empty_with("--records", &file, "2 of the 3 lines read were unreadable, and the other 1 holds no call");
    // The journal: the same, with a line of a kind a newer tokenmeter writes (left out quietly, not unreadable).
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    std::fs::write(journal.join("tokenmeter-2025-10-01.jsonl"), "{\"v\":1,\"usage_limit\":{\"x\":1}}\nnot json\n")
        .unwrap();
    empty_with("--journal", &journal, "1 of the 2 lines read was unreadable, and the other 1 holds no call");
}

#[test]
fn claude_code_dot_from_inside_a_project_names_the_project() {
    // `--claude-code .` run from a project's folder: the project was named `.`.
    let project = fixture("claude_code/projects/-home-dev-alpha");
    let home = tempfile::tempdir().unwrap();
    let projects_of = |dir: &str, source: &str| -> Vec<String> {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tokenmeter"));
        cmd.args(["--claude-code", source, "--now", NOW, "summary", "--group-by", "project", "--format", "json"]);
        let out = cli_support::clean_env(cmd.current_dir(dir), home.path()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["groups"]["groups"].as_array().unwrap().iter().map(|g| g["key"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(projects_of(&project, "."), ["-home-dev-alpha"]);
    assert_eq!(projects_of(&project, "./sess-alpha-1.jsonl"), ["-home-dev-alpha"]);
    // A session's folder: its project, not `subagents`.
    assert_eq!(projects_of(&format!("{project}/sess-alpha-1"), "."), ["-home-dev-alpha"]);
}

#[test]
fn an_unfinished_last_line_is_left_out_with_a_note() {
    // The last line without its newline, an object begun but not whole: Claude Code is writing it. Not a bad
    // line, but the call it holds is not in the report: a note says so (the JSON counted it alone).
    let whole = usage_line("2025-10-02T10:00:00Z", "claude-sonnet-4-5", "m1", 10, 5);
    let torn = usage_line("2025-10-02T10:01:00Z", "claude-sonnet-4-5", "m2", 10, 5);
    let t = Transcript::with_text(&format!("{whole}\n{}", &torn[..60]));
    let out = t.run(&["summary", "--format", "json"]);
    let v = out.json();
    assert_eq!((v["summary"]["calls"].as_u64(), v["source"]["skipped_lines"].as_u64()), (Some(1), Some(0)));
    assert_eq!(v["source"]["transcripts"]["unfinished_lines"], 1);
    assert!(
        out.stderr.contains(
            "note: left out 1 unfinished last line of a transcript being written (the next read has it whole)"
        ),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    // -q: no notes.
    assert_eq!(t.run(&["-q", "summary"]).stderr, "");
}

#[test]
fn hostile_text_in_tools_warnings_budgets_and_direction_overrides_never_reaches_the_terminal() {
    let clean = |text: &str| {
        assert!(!text.contains(['\u{1b}', '\u{7}', '\u{202E}']), "{text:?}");
    };
    // A transcript whose tool (an MCP server's, named by whoever wrote its config) carries an escape sequence.
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("projects").join("-home-dev-evil");
    std::fs::create_dir_all(&project).unwrap();
    let tool = "mcp__evil__\u{1b}]0;PWNED\u{7}\u{1b}[2JTOOL\u{202E}exe.txt";
    let assistant = serde_json::json!({
        "type": "assistant", "sessionId": "sess-evil", "timestamp": "2025-10-03T10:00:00Z", "requestId": "req-1",
        "message": {"id": "msg_1", "model": "claude-sonnet-4-5", "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": tool, "input": {}}],
            "usage": {"input_tokens": 10, "output_tokens": 5}}
    });
    std::fs::write(project.join("sess-evil.jsonl"), format!("{assistant}\n")).unwrap();
    let cc = format!("--claude-code={}", dir.path().display());
    let out = run(&[&cc, "--now", NOW, "--color", "never", "show", "sess-evil", "--include-tools"]);
    clean(out.ok());
    assert!(out.stdout.contains(r"mcp__evil__\u{1b}]0;PWNED\u{7}\u{1b}[2JTOOL\u{202e}exe.txt"), "{}", out.stdout);

    // A records line whose bad value serde quotes in the skipped line's reason, on stderr (serde_json escapes it;
    // an unknown outcome status, quoted raw, is read now: an error of that type, scrubbed like any other name).
    let rec = r#"{"timestamp":"2025-10-03T12:00:00Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{"input":1,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":1,"reasoning":0},"metered":"\u001b]0;PWNED\u0007ok","outcome":{"status":"ok"},"dimensions":{"session":"sess\u202egnp.exe"}}"#;
    let ok = rec.replace(r#""\u001b]0;PWNED\u0007ok""#, "true");
    let records = cli_support::Records::new(&[rec.to_owned(), ok]);
    let out = records.run(&["summary", "--group-by", "session"]);
    clean(out.ok());
    clean(&out.stderr);
    assert!(out.stderr.contains("records.jsonl:1: not a call record: invalid type: string"), "{}", out.stderr);
    assert!(out.stdout.contains(r"sess\u{202e}gnp.exe"), "{}", out.stdout);
    assert!(out.stderr.contains("1 call carried control characters or direction overrides"), "{}", out.stderr);

    // A budgets file's name, in the table and the over-budget line.
    let budgets = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        budgets.path(),
        "[budgets.\"evil\\u001b]0;PWNED\\u0007name\"]\nlimit_usd = 0.000001\nperiod = \"month\"\n",
    )
    .unwrap();
    let out = records.run(&["budget", "--file", budgets.path().to_str().unwrap()]);
    let text = format!("{}{}", out.stdout, out.stderr);
    clean(&text);
    assert!(text.contains(r"evil\u{1b}]0;PWNED\u{7}name"), "{text}");

    // A price file's model id, quoted in the `--prices` note.
    let prices = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(prices.path(), "[models.\"claude-\\u001b]0;PWNED\\u0007x\"]\ninput = 1\noutput = 2\n").unwrap();
    let out = records.run(&["--prices", prices.path().to_str().unwrap(), "summary"]);
    clean(&out.stderr);
    // (Model ids are read in lower case.)
    assert!(out.stderr.contains(r"adds `claude-\u{1b}]0;pwned\u{7}x`"), "{}", out.stderr);
}

#[test]
fn a_hostile_inference_geography_is_scrubbed_like_the_other_labels() {
    // `inference_geo` is a label a record carries: it went out of `show --format json` as it came.
    let rec = r#"{"timestamp":"2025-10-03T12:00:00Z","duration_us":5,"model":"claude-opus-4-6","inference_geo":"us\u202egnp.exe","tokens":{"input":1,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":1,"reasoning":0},"metered":true,"outcome":{"status":"ok"},"dimensions":{"session":"s1"}}"#;
    let records = cli_support::Records::new(&[rec.to_owned()]);
    let out = records.run(&["show", "s1", "--format", "json"]);
    assert!(!out.ok().contains('\u{202E}'), "{}", out.stdout);
    assert!(out.stdout.contains(r#""us\\u{202e}gnp.exe""#), "{}", out.stdout);
    assert!(out.stderr.contains("1 call carried control characters or direction overrides"), "{}", out.stderr);
}

#[cfg(unix)]
#[test]
fn json_output_over_a_path_that_is_not_utf8_writes_it_lossily() {
    // serde refuses a path that is not UTF-8: every `--format json` output failed with "cannot write JSON: path
    // contains invalid UTF-8 characters" (exit 1) over a records file or transcript folder so named.
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let run_os = |args: &[&OsStr]| {
        let home = tempfile::tempdir().unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tokenmeter"));
        let out = cli_support::clean_env(&mut cmd, home.path()).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v
    };
    let dir = tempfile::tempdir().unwrap();
    let name = OsStr::from_bytes(b"r\xff.jsonl");
    let records = dir.path().join(name);
    let line = r#"{"timestamp":"2025-10-03T10:00:00Z","duration_us":5,"model":"claude-haiku-4-5","tokens":{"input":1000,"output":100},"metered":true,"outcome":{"status":"ok"},"dimensions":{"session":"s1"}}"#;
    std::fs::write(&records, format!("{line}\nnot json\n")).unwrap();
    let shown = format!("{}/r\u{fffd}.jsonl", dir.path().to_str().unwrap());
    let source = [OsStr::new("--records"), records.as_os_str(), OsStr::new("--now"), OsStr::new(NOW)];
    for command in [
        &["summary"][..],
        &["report"],
        &["report", "--type", "detailed"],
        &["cache-report"],
        &["optimize"],
        &["forecast"],
        &["compare"],
        &["show", "s1"],
    ] {
        let args: Vec<&OsStr> = source
            .iter()
            .copied()
            .chain(command.iter().map(OsStr::new))
            .chain(["--format", "json"].map(OsStr::new))
            .collect();
        let v = run_os(&args);
        assert_eq!(v["source"]["paths"], serde_json::json!([shown]), "{command:?}");
        assert_eq!(v["source"]["skipped"][0]["path"], shown.as_str(), "{command:?}");
        assert_eq!(v["source"]["skipped"][0]["line"], 2, "{command:?}");
    }
    // A transcript folder so named: the bad line's place in the transcripts' figures too.
    let t = Transcript::new(&[usage_line("2025-10-03T10:00:00Z", "claude-haiku-4-5", "m1", 10, 5), "garbage".into()]);
    let project = std::path::Path::new(&t.root).join("projects");
    let renamed = project.join(OsStr::from_bytes(b"-home-dev-\xff"));
    std::fs::rename(project.join("-home-dev-app"), &renamed).unwrap();
    let args = [OsStr::new("--claude-code"), OsStr::new(&t.root), OsStr::new("--now"), OsStr::new(NOW)];
    let json = ["summary", "--format", "json"].map(OsStr::new);
    let v = run_os(&[&args[..], &json[..]].concat());
    let file = format!("{}/projects/-home-dev-\u{fffd}/sess-1.jsonl", t.root);
    assert_eq!(v["source"]["skipped"][0]["path"], file.as_str(), "{v}");
    assert_eq!(v["source"]["transcripts"]["bad_line_places"][0]["path"], file.as_str(), "{v}");
    assert_eq!(v["summary"]["calls"], 1);
}

#[test]
fn web_searches_are_priced_when_records_are_priced_again() {
    // One Sonnet 4.5 call with 1,000 input and 100 output tokens ($0.0045) and 3 web searches, recorded
    // without a cost: priced here at the built-in fee ($10 per 1,000), and with `--prices` at the file's.
    let rec = r#"{"timestamp":"2025-10-03T12:00:00Z","duration_us":5,"model":"claude-sonnet-4-5","tokens":{"input":1000,"output":100},"web_search_requests":3,"metered":true,"outcome":{"status":"ok"}}"#;
    let records = Records::new(&[rec]);
    let cost = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["summary", "--format", "json"]);
        records.run(&all).json()["summary"]["cost_picos"].as_u64().unwrap()
    };
    assert_eq!(cost(&[]), 4_500_000_000 + 3 * 10_000_000_000);
    let dir = tempfile::tempdir().unwrap();
    let prices = dir.path().join("prices.toml");
    std::fs::write(&prices, "web_search_per_1k = 25\n").unwrap();
    assert_eq!(cost(&["--prices", prices.to_str().unwrap()]), 4_500_000_000 + 3 * 25_000_000_000);
}

#[test]
#[cfg(target_os = "linux")]
fn no_transcripts_found_says_which_folders_could_not_be_read() {
    // Only folders that could not be listed: "no transcripts" without the reason sent one looking at the wrong
    // thing. Root lists any folder it owns whatever its mode (and /proc/1/map_files, used here before, whenever it
    // has CAP_SYS_ADMIN, when this test skipped itself): a link to itself can be listed by no one.
    let dir = tempfile::tempdir().unwrap();
    let projects = dir.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    let looped = projects.join("-home-dev-app");
    std::os::unix::fs::symlink(&looped, &looped).unwrap();
    let reason = std::fs::read_dir(&looped).expect_err("a link to itself cannot be listed").to_string();
    let reason = reason.split(" (os error").next().unwrap_or_default().to_owned();
    let root = dir.path().to_str().unwrap();
    run(&["--claude-code", root, "--now", NOW, "summary"]).fails(
        1,
        &format!(
            "no Claude Code transcripts (.jsonl files) under {root}; 1 folder or file below could not be read: \
             {}/-home-dev-app: {reason}",
            projects.display()
        ),
    );
}

#[test]
fn a_journal_given_to_claude_code_is_an_error_not_an_empty_report() {
    // Its lines are whole JSON objects with no usage line among them: read as transcripts, a $0 report, exit 0.
    let journal = tempfile::tempdir().unwrap();
    assert!(write_journal(journal.path()) > 0);
    let dir = journal.path().to_str().unwrap();
    run(&["--claude-code", dir, "summary"]).fails(1, "holds tokenmeter journal lines, not a Claude Code transcript");
    let file = std::fs::read_dir(journal.path()).unwrap().next().unwrap().unwrap().path();
    run(&["--claude-code", file.to_str().unwrap(), "summary"]).fails(1, "read it with --journal DIR");
    // Other JSON lines without a transcript's `type`: an error too.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("x.jsonl"), "{\"a\": 1}\n{\"b\": 2}\n").unwrap();
    run(&["--claude-code", other.path().to_str().unwrap(), "summary"])
        .fails(1, "none of the lines read is a Claude Code transcript line");
    // A session with no answer yet (a user line only) is a transcript: an empty report.
    let waiting = Transcript::new(&[serde_json::json!({
        "type": "user", "timestamp": "2026-03-14T10:00:00Z", "sessionId": "sess-1", "message": {"role": "user"}
    })
    .to_string()]);
    let out = waiting.run(&["summary", "--format", "json"]).json();
    assert_eq!(
        (out["summary"]["calls"].as_u64(), out["source"]["transcripts"]["lines"].as_u64()),
        (Some(0), Some(1)),
        "{out}"
    );
}

#[test]
fn a_newcomers_slips_get_errors_that_say_what_to_do() {
    let cc_dir = fixture("claude_code");
    // `optimize --group-by day`: the list of dimensions named `tool`, which the flag then refuses.
    let r = cc(&["optimize", "--group-by", "day"]);
    r.fails(2, "unknown dimension `day` to score by: give session, project");
    assert!(!r.stderr.contains("tool,"), "{}", r.stderr);
    // A date of the right shape that is no day: not "not a date (YYYY-MM-DD)".
    cc(&["summary", "--since", "2025-13-01"]).fails(2, "`2025-13-01` is no day of the calendar");
    cc(&["summary", "--since", "20250230"]).fails(2, "is no day of the calendar");
    // A transcript given as records: serde's "missing field" four times, and no word of --claude-code.
    let transcript = format!("{cc_dir}/projects/-home-dev-beta/sess-beta-1.jsonl");
    run(&["--records", &transcript, "--now", NOW, "summary"]).fails(1, "read them with --claude-code");
    // A Claude Code directory given as the journal: an empty report, and a note that says where it goes.
    let r = run(&["--journal", &cc_dir, "--now", NOW, "summary"]);
    r.ok();
    assert!(r.stderr.contains(&format!("give --claude-code {cc_dir}")), "{}", r.stderr);
    // A report written to a file whose extension names no format: markdown, said.
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("r.pdf");
    let r = cc(&["report", "-o", pdf.to_str().unwrap()]);
    r.ok();
    assert!(r.stderr.contains("writing markdown to") && r.stderr.contains("`.pdf` names no format"), "{}", r.stderr);
}

#[test]
fn a_budget_on_a_value_no_call_has_is_warned_about() {
    // `project = "-home-dev-zzz"` (misspelt): $0.00, 0.0%, without a word.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("budgets.toml");
    std::fs::write(
        &file,
        "[budgets.beta]\nlimit_usd = 1\nscope = { project = \"-home-dev-zzz\" }\n\n\
         [budgets.alpha]\nlimit_usd = 1\nscope = { project = \"-home-dev-alpha\" }\n",
    )
    .unwrap();
    let r = cc(&["budget", "--file", file.to_str().unwrap()]);
    r.ok();
    assert!(r.stderr.contains("budget `beta`: no call in the source has project=-home-dev-zzz"), "{}", r.stderr);
    assert!(!r.stderr.contains("budget `alpha`"), "{}", r.stderr);
}

#[test]
fn names_that_differ_only_in_control_characters_stay_apart_and_are_found_as_written() {
    // With one replacement character for every control character, these three sessions were one row of 3 calls,
    // `show` of any of them found none, and a budget of the user with the escape sequence counted $0.
    let line = |session: &str, user: &str| {
        serde_json::json!({"timestamp": "2025-10-03T12:00:00Z", "duration_us": 5, "model": "claude-haiku-4-5",
            "tokens": {"input": 1_000_000}, "metered": true, "outcome": {"status": "ok"},
            "dimensions": {"session": session, "user": user}})
        .to_string()
    };
    let evil = "e\u{1b}[31mvil";
    let records = cli_support::Records::new(&[line("a\nb", evil), line("a\tb", "bob"), line("a\u{1b}b", "bob")]);
    let v = records.run(&["summary", "--group-by", "session", "--format", "json"]).json();
    let mut keys: Vec<&str> =
        v["groups"]["groups"].as_array().unwrap().iter().map(|g| g["key"].as_str().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, [r"a\u{1b}b", r"a\u{9}b", r"a\u{a}b"]);
    let shown = records.run(&["show", "a\nb", "--format", "json"]).json();
    assert_eq!(shown["session"], r"a\u{a}b");
    let compared = records
        .run(&["compare", "--period", "all", "--a", "session=a\tb", "--b", "session=a\u{1b}b", "--format", "json"])
        .json();
    assert_eq!(
        (compared["comparison"]["a"]["calls"].as_u64(), compared["comparison"]["b"]["calls"].as_u64()),
        (Some(1), Some(1)),
        "{compared}"
    );

    let budgets = tempfile::NamedTempFile::new().unwrap();
    let toml = "[budgets.evil]\nlimit_usd = 2\nperiod = \"month\"\nscope = { user = \"e\\u001b[31mvil\" }\n";
    std::fs::write(budgets.path(), toml).unwrap();
    let out = records.run(&["budget", "--file", budgets.path().to_str().unwrap(), "--format", "json"]);
    let v = out.json();
    assert_eq!(v["budgets"][0]["spent"]["usd"], 1.0, "{v}");
    assert_eq!(v["budgets"][0]["scope"], r"user=e\u{1b}[31mvil");
    assert!(!out.stderr.contains("no call in the source"), "{}", out.stderr);
}

#[test]
fn a_budget_scope_longer_than_values_are_recorded_says_so() {
    let records = cli_support::Records::new(&[cli_support::haiku_record("2025-10-03T12:00:00Z", 10)]);
    let budgets = tempfile::NamedTempFile::new().unwrap();
    let long = "あ".repeat(50);
    std::fs::write(
        budgets.path(),
        format!("[budgets.long]\nlimit_usd = 2\nperiod = \"month\"\nscope = {{ user = \"{long}\" }}\n"),
    )
    .unwrap();
    let out = records.run(&["budget", "--file", budgets.path().to_str().unwrap()]);
    out.ok();
    assert!(out.stderr.contains(&format!("no call in the source has user={long} (values match exactly, case included; the value is 150 bytes, and a meter records values cut at its dimension length, 128 bytes")), "{}", out.stderr);
}
