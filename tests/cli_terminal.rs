//! Tables printed to a terminal: a pseudo-terminal whose size nobody set (0x0, as CI runners and `docker run
//! -t` give) prints whole tables instead of one character per column; no colour or bold when colour is off.
#![cfg(all(feature = "cli", unix))]

mod cli_support;

use std::process::{Command, Stdio};

use cli_support::{NOW, fixture};

/// Runs `tokenmeter args…` (with NO_COLOR set) on a pseudo-terminal of `cols` columns, through util-linux
/// `script`; `None` where `script` is not installed.
fn on_pty(cols: u16, args: &[&str]) -> Option<(i32, String)> {
    let mut line = format!("stty cols {cols} rows 0; exec '{}'", env!("CARGO_BIN_EXE_tokenmeter"));
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
    let Some((code, text)) = on_pty(0, &["-q", "--claude-code", &dir, "--now", NOW, "cache-report"]) else {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    };
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("calls reading the cache") && text.contains("6 of 13"), "wrapped table:\n{text}");
}

#[test]
fn colour_off_means_no_styling_on_a_terminal_either() {
    let dir = fixture("claude_code");
    for colour in [&[][..], &["--color", "never"][..]] {
        let mut args = vec!["-q", "--claude-code", &dir, "--now", NOW];
        args.extend_from_slice(colour);
        args.push("optimize");
        let Some((code, text)) = on_pty(120, &args) else {
            eprintln!("skipped: util-linux `script` is not installed");
            return;
        };
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("long_context_threshold"), "{text}");
        assert!(!text.contains('\x1b'), "{colour:?}: escape sequences with colour off:\n{text:?}");
    }
}
