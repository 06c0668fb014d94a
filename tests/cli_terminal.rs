//! Tables printed to a terminal: a pseudo-terminal whose size nobody set (0x0, as CI runners and `docker run
//! -t` give) prints whole tables instead of one character per column; no colour or bold when colour is off.
// util-linux `script -qec`: BSD `script` (macOS) takes other arguments.
#![cfg(all(feature = "cli", target_os = "linux"))]

use crate::cli_support;

use std::process::{Command, Stdio};

use cli_support::{NOW, fixture};

/// Set to `1`, skips the tests here where util-linux `script` cannot be run (they fail otherwise).
const SKIP_PTY: &str = "TOKENMETER_SKIP_PTY";

/// Runs `tokenmeter args…` (with NO_COLOR set) on a pseudo-terminal of `cols` columns, through util-linux
/// `script` (`scripts/test.sh` installs it). Where `script` cannot be run the test fails, so that a check skipped
/// is never taken for a pass, unless `TOKENMETER_SKIP_PTY=1` asks to skip it: then `None`, and a note says why.
fn on_pty(cols: u16, args: &[&str]) -> Option<(i32, String)> {
    let ran = pty_run(cols, args);
    if ran.is_none() {
        assert!(
            std::env::var_os(SKIP_PTY).is_some_and(|v| v == "1"),
            "util-linux `script` could not be run (Debian: apt-get install bsdutils); {SKIP_PTY}=1 skips the \
             pseudo-terminal tests"
        );
        eprintln!("skipped: util-linux `script` could not be run, and {SKIP_PTY}=1");
    }
    ran
}

fn pty_run(cols: u16, args: &[&str]) -> Option<(i32, String)> {
    let mut line = format!("stty cols {cols} rows 0; exec '{}'", env!("CARGO_BIN_EXE_tokenmeter"));
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("NO_COLOR", "1")
        .env("TZ", "UTC")
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("TOKENMETER_JOURNAL")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    Some((out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned()))
}

#[test]
fn a_terminal_of_zero_width_gets_unwrapped_tables() {
    let dir = fixture("claude_code");
    let Some((code, text)) = on_pty(0, &["-q", "--claude-code", &dir, "--now", NOW, "cache-report"]) else { return };
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("calls reading the cache") && text.contains("6 of 13"), "wrapped table:\n{text}");
}

#[test]
fn a_large_records_file_shows_a_progress_bar_on_a_terminal() {
    // Transcripts and journals showed one past 8 MiB; a records file (110 MB read in seconds) showed none.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.jsonl");
    let rec = r#"{"timestamp":"2025-10-03T12:00:00Z","duration_us":5,"model":"claude-haiku-4-5","tokens":{"input":1000,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":0,"reasoning":0},"metered":true,"outcome":{"status":"ok"},"dimensions":{"session":"s"}}"#;
    std::fs::write(&file, format!("{rec}\n").repeat(9 * (1 << 20) / rec.len() + 1)).unwrap();
    let path = file.to_str().unwrap();
    let Some((code, text)) = on_pty(120, &["--records", path, "--now", NOW, "summary"]) else { return };
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("reading records"), "{text}");
    let Some((code, text)) = on_pty(120, &["-q", "--records", path, "--now", NOW, "summary"]) else { return };
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("reading records"), "quiet: no bar");
}

#[test]
fn colour_off_means_no_styling_on_a_terminal_either() {
    let dir = fixture("claude_code");
    for colour in [&[][..], &["--color", "never"][..]] {
        let mut args = vec!["-q", "--claude-code", &dir, "--now", NOW];
        args.extend_from_slice(colour);
        args.push("optimize");
        let Some((code, text)) = on_pty(120, &args) else { return };
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("long_context_threshold"), "{text}");
        assert!(!text.contains('\x1b'), "{colour:?}: escape sequences with colour off:\n{text:?}");
    }
}

#[test]
fn a_narrow_terminal_wraps_names_and_headers_never_figures() {
    // At 80 columns the summary's total row read `234,30` over `5`, and its cost `$0.371` over `5 +`.
    let dir = fixture("claude_code");
    for cols in [80, 60] {
        let Some((code, text)) = on_pty(cols, &["-q", "--claude-code", &dir, "--now", NOW, "summary"]) else {
            return;
        };
        assert_eq!(code, 0, "{text}");
        let total = text.lines().find(|l| l.contains(" 13 ┆")).unwrap_or_else(|| panic!("{text}"));
        for figure in ["6,298", "2,407", "205,100", "14,500", "6,000", "234,305", "$0.3715"] {
            assert!(total.contains(&format!(" {figure} ")), "{cols} columns, {figure} cut:\n{text}");
        }
        // Words too, up to 16 characters: the header read `outpu` over `t`, and the cost `+ unpri` over `ced`.
        assert!(text.contains(" output ") && text.contains(" unpriced "), "{cols} columns:\n{text}");
    }
    // A session's calls: the model column was two characters wide, its ids ran down 13 lines each (91 lines for
    // 6 calls), and `agent` down the header.
    let Some((code, text)) =
        on_pty(80, &["-q", "--claude-code", &dir, "--now", NOW, "show", "sess-alpha-1", "--include-cache"])
    else {
        return;
    };
    assert_eq!(code, 0, "{text}");
    assert!(text.lines().count() < 40, "{text}");
    for word in [" agent ", " subagent ", " <synthetic> ", " claude-haiku-4-5"] {
        assert!(text.contains(word), "{word} cut:\n{text}");
    }
}

/// `text` without ANSI escape sequences (`ESC [ … letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn watch_on_a_terminal_keeps_the_alert_on_screen_and_its_table_aligned() {
    let dir = fixture("claude_code");
    let args = ["--claude-code", &dir, "--now", NOW, "--color", "always", "watch", "--period", "7d"];
    let mut args = args.to_vec();
    args.extend_from_slice(&["--threshold", "0.25", "--iterations", "1"]);
    let Some((code, text)) = on_pty(120, &args) else { return };
    assert_eq!(code, 0, "{text}");
    // What stays on screen is what follows the last clear: the alert must be there, not before it.
    let screen = text.rsplit("\x1b[2J\x1b[H").next().unwrap_or_default();
    assert!(strip_ansi(screen).contains("ALERT: $0.3715 + unpriced spent over the last 7d"), "{text:?}");
    // The coloured OVER cell is styled by the table, so every line of the first table is equally wide.
    let plain = strip_ansi(screen);
    let table: Vec<&str> = plain
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .skip_while(|l| !l.starts_with('╭'))
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(table.iter().any(|l| l.contains("OVER $0.2500")), "{plain}");
    let widths: Vec<usize> = table.iter().map(|l| l.chars().count()).collect();
    assert!(widths.windows(2).all(|w| w[0] == w[1]), "ragged table {widths:?}:\n{}", table.join("\n"));
}

#[test]
fn watch_on_a_terminal_keeps_the_first_reads_notes_on_screen() {
    let dir = tempfile::tempdir().unwrap();
    cli_support::write_journal(dir.path());
    let day = dir.path().join("tokenmeter-2025-10-03.jsonl");
    let mut text = std::fs::read_to_string(&day).unwrap();
    text.push_str("not a record\n");
    std::fs::write(&day, text).unwrap();
    let j = dir.path().to_str().unwrap();
    let Some((code, out)) =
        on_pty(120, &["--journal", j, "--now", NOW, "watch", "--period", "7d", "--iterations", "1"])
    else {
        return;
    };
    assert_eq!(code, 0, "{out}");
    // Printed before the screen, the note would be cleared with it; it is part of the screen instead.
    let screen = out.rsplit("\x1b[2J\x1b[H").next().unwrap_or_default();
    assert!(screen.contains("skipped 1 unreadable line"), "{out:?}");
}
