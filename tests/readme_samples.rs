//! README.md's command-line samples are what the binary prints: every ```` ```text ```` block whose commands are
//! `$ tokenmeter …` is run again (from the crate root, as the README's relative paths assume) and its output,
//! standard error and standard output in the order they were written, must be the block's text, byte for byte.
//! A `$ echo $?` line after a command checks its exit status. Paths under `/tmp/` (the `-o` samples) are
//! redirected into a temporary directory, where a block may first copy a fixture (`$ cp -r tests/fixtures/…`). A block with any other command (`curl`, `scripts/…`) is not a
//! CLI sample and is left to the tests of what it shows. Output piped into `jq` may instead be the same JSON
//! with numbers written another way: jq 1.6 prints the binary's `0.0` as `0`, jq 1.7 keeps `0.0`.
#![cfg(feature = "cli")]

use crate::cli_support;

use std::path::Path;
use std::process::Command;

use cli_support::clean_env;

/// One `$ tokenmeter …` command of a block, what it printed, and the exit status the block shows for it.
#[derive(Debug)]
struct Sample {
    line: usize,
    command: String,
    output: String,
    status: Option<i32>,
}

/// A sample's set-up command: a fixture copied to `/tmp/` (the tokenmeter commands after it change the copy).
const FIXTURE_COPY: &str = "cp -r tests/fixtures/";

/// The README's samples: blocks of `$ tokenmeter` commands (with their `\` continuations) and `$ echo $?`.
fn samples(readme: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut lines = readme.lines().enumerate().peekable();
    while let Some((_, line)) = lines.next() {
        if line != "```text" {
            continue;
        }
        let mut block = Vec::new();
        for (n, l) in lines.by_ref() {
            if l == "```" {
                break;
            }
            block.push((n + 1, l));
        }
        let commands: Vec<&str> =
            block.iter().filter_map(|(_, l)| l.strip_prefix("$ ")).filter(|c| *c != "echo $?").collect();
        let setup = |c: &str| c.starts_with(FIXTURE_COPY);
        if commands.is_empty() || !commands.iter().all(|c| c.starts_with("tokenmeter ") || setup(c)) {
            continue;
        }
        let mut i = 0;
        while i < block.len() {
            let (n, l) = block[i];
            i += 1;
            let Some(first) = l.strip_prefix("$ ") else { continue };
            if first == "echo $?" {
                let status = block.get(i).and_then(|(_, s)| s.trim().parse().ok());
                let last: &mut Sample = out.last_mut().expect("`echo $?` follows a command");
                last.status = Some(status.expect("`echo $?` is followed by a number"));
                i += 1;
                continue;
            }
            let mut command = first.to_owned();
            while command.ends_with('\\') && i < block.len() {
                command.pop();
                command.push(' ');
                command.push_str(block[i].1.trim());
                i += 1;
            }
            let mut output = Vec::new();
            while i < block.len() && !block[i].1.starts_with("$ ") {
                output.push(block[i].1);
                i += 1;
            }
            out.push(Sample { line: n, command, output: output.join("\n"), status: None });
        }
    }
    out
}

/// Both texts are one JSON document each, equal with every number compared by value (`0` and `0.0` alike).
fn same_json(printed: &str, expected: &str) -> bool {
    fn eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value as V;
        match (a, b) {
            (V::Number(x), V::Number(y)) => x == y || x.as_f64().is_some_and(|x| y.as_f64() == Some(x)),
            (V::Array(x), V::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| eq(a, b)),
            (V::Object(x), V::Object(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|((ka, a), (kb, b))| ka == kb && eq(a, b))
            }
            _ => a == b,
        }
    }
    match (serde_json::from_str(printed), serde_json::from_str(expected)) {
        (Ok(a), Ok(b)) => eq(&a, &b),
        _ => false,
    }
}

#[test]
fn every_cli_sample_in_the_readme_is_what_the_binary_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let samples = samples(&readme);
    assert!(samples.len() >= 15, "found only {} CLI samples in README.md: {samples:#?}", samples.len());

    let home = tempfile::tempdir().expect("tempdir");
    let files = tempfile::tempdir().expect("tempdir");
    let files_dir = format!("{}/", files.path().display());
    let bin = env!("CARGO_BIN_EXE_tokenmeter");
    let mut failures = Vec::new();
    for s in &samples {
        // The binary's path is put in last: it may itself be under /tmp.
        let command = match s.command.strip_prefix("tokenmeter") {
            Some(args) => format!("{bin}{}", args.replace("/tmp/", &files_dir)),
            None => s.command.replace("/tmp/", &files_dir),
        };
        if command.contains("| jq") && !Command::new("jq").arg("--version").output().is_ok_and(|o| o.status.success()) {
            panic!("README.md:{}: the sample pipes into jq, which is not installed (apt-get install jq)", s.line);
        }
        // One stream, as a terminal shows it: standard error and output in the order they were written.
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(format!("{{ {command}\n}} 2>&1")).current_dir(root);
        let out = clean_env(&mut sh, home.path()).output().expect("run sh");
        let printed = String::from_utf8_lossy(&out.stdout).replace(&files_dir, "/tmp/");
        let expected = s.output.trim_end_matches('\n');
        let piped_to_jq = command.contains("| jq");
        if printed.trim_end_matches('\n') != expected && !(piped_to_jq && same_json(&printed, expected)) {
            failures.push(format!(
                "README.md:{}: `{}` printed something else.\n--- README\n{expected}\n--- printed\n{printed}",
                s.line, s.command
            ));
        }
        let status = out.status.code().unwrap_or(-1);
        match s.status {
            Some(want) if want != status => {
                failures.push(format!("README.md:{}: `{}` exited {status}, the README says {want}", s.line, s.command))
            }
            None if status != 0 => {
                failures.push(format!("README.md:{}: `{}` exited {status}: {printed}", s.line, s.command))
            }
            _ => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} samples differ:\n\n{}",
        failures.len(),
        samples.len(),
        failures.join("\n\n")
    );
    // The `-o` samples wrote their files.
    for name in ["report.html", "report.xlsx"] {
        let len = std::fs::metadata(files.path().join(name)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "{name} was written ({len} bytes)");
    }
}

#[test]
fn the_sample_parser_reads_commands_continuations_and_exit_statuses() {
    let readme = "text\n```text\n$ tokenmeter a \\\n    | jq .x\n1\n2\n$ tokenmeter b\n$ echo $?\n2\n```\n\
                  ```text\n$ curl x\ny\n```\n```rust\n$ tokenmeter c\n```\n\
                  ```text\n$ cp -r tests/fixtures/j /tmp/j\n$ tokenmeter d\n```\n\
                  ```text\n$ cp -r /etc /tmp/j\n$ tokenmeter e\n```\n";
    let s = samples(readme);
    assert_eq!(s.len(), 4, "{s:#?}");
    assert_eq!((s[2].command.as_str(), s[3].command.as_str()), ("cp -r tests/fixtures/j /tmp/j", "tokenmeter d"));
    assert_eq!((s[0].command.as_str(), s[0].output.as_str(), s[0].status), ("tokenmeter a  | jq .x", "1\n2", None));
    assert_eq!((s[1].command.as_str(), s[1].output.as_str(), s[1].status), ("tokenmeter b", "", Some(2)));
    assert_eq!(s[0].line, 3);
}

#[test]
fn jq_output_compares_numbers_by_value() {
    assert!(same_json("{\"a\": [0.0, 1.5]}\n", "{\"a\": [0, 1.5]}"));
    assert!(!same_json("{\"a\": [0.1, 1.5]}", "{\"a\": [0, 1.5]}"));
    assert!(!same_json("{\"a\": 0, \"b\": 1}", "{\"a\": 0}"));
    assert!(!same_json("{\"a\": \"0\"}", "{\"a\": 0}"));
    assert!(!same_json("not json", "not json"));
}
