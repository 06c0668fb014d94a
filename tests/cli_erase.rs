//! `tokenmeter erase`: says what it would erase, erases with `--yes`, and refuses sources it must not touch.
#![cfg(feature = "cli")]

use crate::cli_support;

use cli_support::run;

/// A copy of the fixture journal: three calls on 2025-10-03, alice's two (sessions s-1 and s-2) and bob's one (s-3).
fn journal() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let name = "tokenmeter-2025-10-03.jsonl";
    std::fs::copy(std::path::Path::new(&cli_support::fixture("journal_erase")).join(name), dir.path().join(name))
        .unwrap();
    let path = dir.path().to_str().unwrap().to_owned();
    (dir, path)
}

fn day_file(dir: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(dir).join("tokenmeter-2025-10-03.jsonl")).unwrap()
}

#[test]
fn without_yes_it_says_what_it_would_erase_and_changes_nothing() {
    let (_dir, path) = journal();
    let before = day_file(&path);
    let out = run(&["erase", "--journal", &path, "--user", "alice"]).ok().to_owned();
    assert_eq!(
        out,
        format!(
            "Would erase from {path}: 2 calls naming user=alice, in 1 of 1 day file ({} of {} bytes).\nNothing was \
             changed: run again with --yes to erase them.\n",
            before.lines().filter(|l| l.contains("alice")).map(|l| l.len() + 1).sum::<usize>(),
            before.len()
        )
    );
    assert_eq!(day_file(&path), before);
}

#[test]
fn with_yes_it_erases_and_the_reports_no_longer_see_the_user() {
    let (_dir, path) = journal();
    let v =
        run(&["erase", "--journal", &path, "--user", "alice", "--session", "s-3", "--yes", "--format", "json"]).json();
    assert_eq!(v["calls"], 3);
    assert_eq!(v["files_rewritten"], 1);
    assert_eq!(v["dry_run"], false);
    assert_eq!(
        v["values"],
        serde_json::json!([{"dimension": "user", "value": "alice"}, {"dimension": "session", "value": "s-3"}])
    );
    assert_eq!(day_file(&path), "");

    let (_dir, path) = journal();
    let erased = run(&["erase", "--journal", &path, "--dimension", "session=s-2", "--yes"]);
    assert!(erased.ok().starts_with(&format!("Erased from {path}: 1 call naming session=s-2, in 1 of 1 day file")));
    assert!(erased.stderr.contains("keeps their figures in memory"), "{}", erased.stderr);
    let summary = run(&[
        "--journal",
        &path,
        "--now",
        "2025-10-04T00:00:00Z",
        "summary",
        "--group-by",
        "session",
        "--format",
        "json",
    ])
    .json();
    let sessions: Vec<&str> =
        summary["groups"]["groups"].as_array().unwrap().iter().map(|g| g["key"].as_str().unwrap()).collect();
    assert_eq!(sessions, ["s-1", "s-3"]);
    let none = run(&["erase", "--journal", &path, "--user", "carol"]).ok().to_owned();
    assert!(none.starts_with(&format!("No line in {path} (1 day file) names user=carol.")), "{none}");
}

#[test]
fn other_sources_no_value_and_no_journal_are_refused() {
    let (_dir, path) = journal();
    run(&["erase", "--journal", &path]).fails(2, "--user");
    run(&["erase", "--journal", &path, "--dimension", "project"]).fails(2, "give NAME=VALUE");
    run(&["erase", "--journal", &path, "--user", ""]).fails(2, "nothing to erase: a value to erase is empty");
    run(&["erase", "--claude-code", &cli_support::fixture("claude_code"), "--user", "a"])
        .fails(2, "Claude Code's transcripts are its own files");
    let missing = format!("{path}/missing");
    run(&["erase", "--journal", &missing, "--user", "a"]).fails(1, "no journal at");
}

#[test]
fn a_span_fields_name_names_its_dimension() {
    let (_dir, path) = journal();
    let v = run(&["erase", "--journal", &path, "--dimension", "user.id=alice", "--format", "json"]).json();
    assert_eq!((v["calls"].as_u64(), v["values"][0]["dimension"].as_str()), (Some(2), Some("user")), "{v}");
}
