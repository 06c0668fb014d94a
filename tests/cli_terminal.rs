//! Tables printed to a terminal: a pseudo-terminal whose size nobody set (0x0, as CI runners and `docker run
//! -t` give) prints whole tables instead of one character per column.
#![cfg(all(feature = "cli", unix))]

mod cli_support;

use std::process::{Command, Stdio};

use cli_support::{NOW, fixture};

/// Runs `tokenmeter args…` on a pseudo-terminal of 0 columns and 0 rows, through util-linux `script`;
/// `None` where `script` is not installed.
fn on_unsized_pty(args: &[&str]) -> Option<(i32, String)> {
    let mut line = format!("stty cols 0 rows 0; exec '{}'", env!("CARGO_BIN_EXE_tokenmeter"));
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("NO_COLOR", "1")
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
    let Some((code, text)) = on_unsized_pty(&["-q", "--claude-code", &dir, "--now", NOW, "cache-report"]) else {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    };
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("calls reading the cache") && text.contains("6 of 13"), "wrapped table:\n{text}");
}
