//! Claude Code transcripts → call records, over the fixtures in `tests/fixtures/claude_code/` (written in
//! Claude Code's on-disk format): every figure checked against hand-computed values.
//!
//! The fixture holds, on purpose: streamed copies of one response with growing output (kept once, the
//! largest); the same response copied into a second session file (kept once, in the first file); a sub-agent
//! file under `<session>/subagents/` replaying a main-conversation message under a new request id (dropped)
//! and making calls of its own; an in-file sidechain replay (dropped); a `<synthetic>` API-error line (tokens,
//! no model, $0); 5-minute and 1-hour cache writes, with and without the `cache_creation` split; a call over
//! 200k prompt tokens on a model with long-context rates; a model the price book does not know; a user line
//! whose tool result carries a `usage` object (not a call); and four bad lines (torn, garbage, bad timestamp,
//! usage without output tokens).

use std::path::{Path, PathBuf};

use tokenmeter::transcripts::{TranscriptLoader, discover, tool_uses};
use tokenmeter::{CallRecord, Outcome, PriceBook, TokenUsage};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn load(name: &str) -> tokenmeter::transcripts::TranscriptLoad {
    let files = discover(&fixture(name)).expect("fixture exists");
    TranscriptLoader::new(PriceBook::builtin()).with_threads(2).load(&files)
}

fn by_id<'a>(calls: &'a [CallRecord], id: &str) -> &'a CallRecord {
    calls.iter().find(|c| c.request_id.as_deref() == Some(id)).unwrap_or_else(|| panic!("no call {id}"))
}

fn tokens(input: u64, output: u64, cache_read: u64, w5: u64, w1: u64) -> TokenUsage {
    TokenUsage { input, output, cache_read, cache_write_5m: w5, cache_write_1h: w1, reasoning: 0 }
}

/// A priced call's cost in pico-USD (a price of $X per million tokens is X µUSD per token: 9,630 µUSD is
/// 9,630,000,000 pico-USD).
fn picos(c: &CallRecord) -> u128 {
    c.cost.as_ref().expect("priced").total.picos()
}

#[test]
fn discovery_finds_nested_and_subagent_files() {
    let files = discover(&fixture("claude_code")).unwrap();
    let seen: Vec<(String, String, bool)> =
        files.iter().map(|f| (f.project.to_string(), f.session.to_string(), f.subagent)).collect();
    assert_eq!(
        seen,
        vec![
            ("-home-dev-alpha".into(), "sess-alpha-1".into(), false),
            ("-home-dev-alpha".into(), "sess-alpha-1".into(), true),
            ("-home-dev-beta".into(), "sess-beta-1".into(), false),
            ("-home-dev-beta".into(), "sess-beta-2".into(), false),
            ("-home-dev-gamma".into(), "sess-gamma-1".into(), false),
        ]
    );
    // The same files from the projects/ folder, and one project's folder on its own.
    assert_eq!(discover(&fixture("claude_code/projects")).unwrap(), files);
    let alpha = discover(&fixture("claude_code/projects/-home-dev-alpha")).unwrap();
    assert_eq!(alpha, files[..2].to_vec());
    // A single file.
    let one = discover(&fixture("claude_code/projects/-home-dev-beta/sess-beta-1.jsonl")).unwrap();
    assert_eq!((&*one[0].project, &*one[0].session), ("-home-dev-beta", "sess-beta-1"));
    // A nested file on its own belongs where the walk puts it (not to a project named after its folder).
    for i in [1, 3] {
        assert_eq!(discover(&files[i].path).unwrap(), [files[i].clone()]);
    }
    assert!(matches!(discover(&fixture("no-such-dir")), Err(tokenmeter::transcripts::TranscriptError::NotFound(_))));
}

#[test]
fn a_folder_or_file_given_is_named_by_its_real_path() {
    let alpha = discover(&fixture("claude_code/projects/-home-dev-alpha")).unwrap();
    let named = |files: &[tokenmeter::transcripts::TranscriptFile]| -> Vec<(String, String, bool)> {
        files.iter().map(|f| (f.project.to_string(), f.session.to_string(), f.subagent)).collect()
    };
    // `..` (or `.`, run from inside the folder) has no name of its own: the project was named `..`.
    let up = discover(&fixture("claude_code/projects/-home-dev-alpha/sess-alpha-1/..")).unwrap();
    assert_eq!(named(&up), named(&alpha));
    // A session's folder, its `subagents/` folder and a file in it: the project above, not `subagents`.
    let sub = [("-home-dev-alpha".to_owned(), "sess-alpha-1".to_owned(), true)];
    for p in ["sess-alpha-1/subagents", "sess-alpha-1/subagents/agent-7f3a.jsonl"] {
        let files = discover(&fixture(&format!("claude_code/projects/-home-dev-alpha/{p}"))).unwrap();
        assert_eq!(named(&files), sub, "{p}");
        // Read at the path given, not at the real one.
        let given = fixture(&format!("claude_code/projects/-home-dev-alpha/{p}"));
        assert!(files[0].path.starts_with(&given), "{}", files[0].path.display());
    }
    // The session's folder is the whole session: its own transcript beside the folder too, as in the project.
    let session = discover(&fixture("claude_code/projects/-home-dev-alpha/sess-alpha-1")).unwrap();
    assert_eq!(named(&session), named(&alpha)[..2], "{session:?}");
    assert_eq!(session[0].path.file_name(), alpha[0].path.file_name());
    // Its sub-agents are still read at the path given.
    let given = fixture("claude_code/projects/-home-dev-alpha/sess-alpha-1");
    assert!(session[1].path.starts_with(&given), "{}", session[1].path.display());
    // So is the session's own transcript given alone: its sub-agents' folder beside it is the rest of it (the
    // session was read without them, its cost short).
    let main = discover(&fixture("claude_code/projects/-home-dev-alpha/sess-alpha-1.jsonl")).unwrap();
    assert_eq!(main, session);
    // Outside any `projects/` folder (a project copied elsewhere): the same from the folders' own names.
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("myproj");
    std::fs::create_dir_all(project.join("sess-alpha-1/subagents")).unwrap();
    std::fs::copy(&alpha[1].path, project.join("sess-alpha-1/subagents/agent-7f3a.jsonl")).unwrap();
    let sub = [("myproj".to_owned(), "sess-alpha-1".to_owned(), true)];
    for p in ["sess-alpha-1", "sess-alpha-1/subagents", "sess-alpha-1/subagents/agent-7f3a.jsonl"] {
        assert_eq!(named(&discover(&project.join(p)).unwrap()), sub, "{p}");
    }
    // A project's folder under `projects/` holding only a session's folder (its main transcripts cleaned up): the
    // session's folder was taken for the project, and `subagents` for the session.
    let (dir, project) = project_dir("-home-u-proj");
    std::fs::create_dir_all(project.join("sess1/subagents")).unwrap();
    std::fs::copy(&alpha[1].path, project.join("sess1/subagents/agent-1.jsonl")).unwrap();
    let sub = [("-home-u-proj".to_owned(), "sess1".to_owned(), true)];
    assert_eq!(named(&discover(&project).unwrap()), sub);
    assert_eq!(named(&discover(dir.path()).unwrap()), sub, "as from the config dir");
    // A copy of a `projects` folder kept in a `projects` folder of one's own (`~/projects/claude-backup`): its
    // folders are still the projects.
    let own = tempfile::tempdir().unwrap();
    let backup = own.path().join("projects").join("claude-backup");
    std::fs::create_dir_all(backup.join("-home-u-web")).unwrap();
    std::fs::copy(&alpha[0].path, backup.join("-home-u-web").join("s1.jsonl")).unwrap();
    let web = [("-home-u-web".to_owned(), "s1".to_owned(), false)];
    assert_eq!(named(&discover(&backup).unwrap()), web);
    // So is one of its files given alone, and the same from the `projects` folder above (it read as project
    // `claude-backup`, session `-home-u-web`).
    assert_eq!(named(&discover(&backup.join("-home-u-web").join("s1.jsonl")).unwrap()), web);
    assert_eq!(named(&discover(&own.path().join("projects")).unwrap()), web);
    // A link to a session's transcript (`latest.jsonl`): its sub-agents are beside the real file, not the link.
    #[cfg(unix)]
    {
        let (_dir, project) = project_dir("-home-u-proj");
        std::fs::create_dir_all(project.join("sess1/subagents")).unwrap();
        std::fs::copy(&alpha[0].path, project.join("sess1.jsonl")).unwrap();
        std::fs::copy(&alpha[1].path, project.join("sess1/subagents/agent-1.jsonl")).unwrap();
        let link = own.path().join("latest.jsonl");
        std::os::unix::fs::symlink(project.join("sess1.jsonl"), &link).unwrap();
        let both = [
            ("-home-u-proj".to_owned(), "sess1".to_owned(), false),
            ("-home-u-proj".to_owned(), "sess1".to_owned(), true),
        ];
        let mut got = named(&discover(&link).unwrap());
        got.sort();
        assert_eq!(got, both);
    }
}

#[test]
fn every_call_and_figure() {
    let load = load("claude_code");
    let s = &load.stats;
    assert_eq!(s.files, 5);
    assert_eq!(s.lines, 32);
    // Assistant usage lines: alpha 6 + bad-timestamp 1, sub-agent 4, beta 3, chat 2, gamma 6 (incl. the one
    // without output tokens).
    assert_eq!(s.usage_lines, 7 + 4 + 3 + 2 + 6);
    assert_eq!(s.calls, 13);
    assert_eq!(s.duplicate_lines, 5, "A1, A2, S1 copies, B3 in a second file, G2 copy");
    assert_eq!(s.sidechain_replays, 2, "A2 in the sub-agent file, G3 in-file");
    assert_eq!(s.synthetic_calls, 1);
    assert_eq!(s.unpriced_calls, 1);
    assert_eq!(s.bad_lines, 4);
    let places: Vec<(String, u64, &str)> = s
        .bad_line_places
        .iter()
        .map(|b| (b.path.file_name().unwrap().to_string_lossy().into_owned(), b.line, b.reason.as_str()))
        .collect();
    assert_eq!(
        places,
        vec![
            ("sess-alpha-1.jsonl".into(), 10, "not a JSON object"),
            ("sess-alpha-1.jsonl".into(), 11, "not a JSON object"),
            ("sess-alpha-1.jsonl".into(), 13, "invalid timestamp \"soon\""),
            ("sess-gamma-1.jsonl".into(), 7, "usage without output_tokens"),
        ]
    );
    assert!(s.unreadable_files.is_empty());

    let c = &load.calls;
    // Sorted by time.
    assert!(c.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));

    // A1: the streamed copy with the larger output is kept. Sonnet 4.5: 10×3 + 120×15 + 1000×0.3 + 2000×3.75.
    let a1 = by_id(c, "msg_A1");
    assert_eq!(a1.tokens, tokens(10, 120, 1000, 2000, 0));
    assert_eq!(picos(a1), 9_630_000_000);
    assert_eq!(a1.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    // At the time of its first copy (09:00:00), not of the copy kept (09:00:01).
    assert_eq!(a1.timestamp.to_rfc3339(), "2025-10-01T09:00:00+00:00");
    assert_eq!(a1.dimensions.session.as_deref(), Some("sess-alpha-1"));
    assert_eq!(a1.dimensions.project.as_deref(), Some("-home-dev-alpha"));
    assert_eq!(a1.dimensions.agent.as_deref(), Some("main"));
    assert_eq!(a1.service_tier.as_deref(), Some("standard"));
    assert_eq!(a1.provider.as_deref(), Some("anthropic"));
    assert!(a1.metered && a1.outcome == Outcome::Ok);
    // A2: a 1-hour write, 20×3 + 300×15 + 3000×0.3 + 4000×6; its sub-agent replay is dropped.
    let a2 = by_id(c, "msg_A2");
    assert_eq!(a2.tokens, tokens(20, 300, 3000, 0, 4000));
    assert_eq!(picos(a2), 29_460_000_000);
    assert_eq!(a2.dimensions.agent.as_deref(), Some("main"));
    assert_eq!(c.iter().filter(|x| x.request_id.as_deref() == Some("msg_A2")).count(), 1);
    // The <synthetic> API error: no model, zero tokens, $0, a failed call.
    let syn = c
        .iter()
        .find(|x| x.model.is_none() && x.cost.as_ref().is_some_and(|k| &*k.priced_as == "<synthetic>"))
        .unwrap();
    assert_eq!(syn.tokens, TokenUsage::default());
    assert_eq!(picos(syn), 0);
    assert!(syn.outcome.is_error());
    // A3: Haiku 4.5, 50×1 + 80×5 + 500×1.25.
    let a3 = by_id(c, "msg_A3");
    assert_eq!(a3.tokens, tokens(50, 80, 0, 500, 0));
    assert_eq!(picos(a3), 1_075_000_000);
    // Sub-agent calls: S1 keeps its larger copy; both are `subagent`, in the parent's session.
    let s1 = by_id(c, "msg_S1");
    assert_eq!(s1.tokens, tokens(5, 60, 0, 1000, 0));
    assert_eq!(picos(s1), 1_555_000_000);
    assert_eq!(s1.dimensions.agent.as_deref(), Some("subagent"));
    assert_eq!(s1.dimensions.session.as_deref(), Some("sess-alpha-1"));
    let s2 = by_id(c, "msg_S2");
    assert_eq!(s2.tokens, tokens(7, 30, 1000, 0, 0));
    assert_eq!(picos(s2), 257_000_000);
    // B1: no split, all writes are 5-minute. Opus 4.1: 100×15 + 200×75 + 10000×1.5 + 1000×18.75.
    let b1 = by_id(c, "msg_B1");
    assert_eq!(b1.tokens, tokens(100, 200, 10_000, 1000, 0));
    assert_eq!(picos(b1), 50_250_000_000);
    assert_eq!(b1.service_tier, None);
    // B2: 205,000 prompt tokens on Sonnet 4.5: the whole call at long-context rates.
    let b2 = by_id(c, "msg_B2");
    assert_eq!(b2.tokens, tokens(5000, 1000, 190_000, 10_000, 0));
    assert!(b2.cost.as_ref().unwrap().long_context);
    assert_eq!(picos(b2), 241_500_000_000);
    // B3: copied into sess-beta-2's file too; counted once, in the first file (sess-beta-1).
    let b3 = by_id(c, "msg_B3");
    assert_eq!(b3.tokens, tokens(3, 10, 0, 0, 0));
    assert_eq!(picos(b3), 159_000_000);
    assert_eq!(b3.dimensions.session.as_deref(), Some("sess-beta-1"));
    // C1 in a nested folder: session from the folder.
    let c1 = by_id(c, "msg_C1");
    assert_eq!(c1.tokens, tokens(1000, 500, 0, 0, 2000));
    assert_eq!(picos(c1), 37_500_000_000);
    assert_eq!(c1.dimensions.session.as_deref(), Some("sess-beta-2"));
    // G1: unknown model: tokens counted, unpriced (never $0).
    let g1 = by_id(c, "msg_G1");
    assert_eq!(g1.tokens, tokens(100, 100, 0, 0, 0));
    assert!(g1.is_unpriced());
    // G2: no requestId; two copies at the same time: one call, the larger.
    let g2 = by_id(c, "msg_G2");
    assert_eq!(g2.tokens, tokens(1, 4, 100, 0, 0));
    assert_eq!(picos(g2), 93_000_000);
    // G3: its in-file sidechain replay is dropped.
    let g3 = by_id(c, "msg_G3");
    assert_eq!(picos(g3), 51_000_000);
    assert_eq!(g3.dimensions.agent.as_deref(), Some("main"));

    // Totals.
    let mut total = TokenUsage::default();
    let mut cost = 0u128;
    for x in c {
        total.add(&x.tokens);
        cost += x.cost_or_zero().picos();
    }
    assert_eq!(total, tokens(6298, 2407, 205_100, 14_500, 6000));
    assert_eq!(cost, 371_530_000_000);
}

#[test]
fn edge_cases_that_ccusage_counts_differently() {
    // Documented differences (docs/cli.md): a response without requestId written twice at different times is
    // one call; a sidechain replay is dropped whatever its timestamp.
    let load = load("claude_code_edge");
    assert_eq!(load.stats.calls, 2);
    assert_eq!(load.stats.duplicate_lines, 1);
    assert_eq!(load.stats.sidechain_replays, 1);
    let mut total = TokenUsage::default();
    for x in &load.calls {
        total.add(&x.tokens);
    }
    assert_eq!(total, tokens(11, 24, 1100, 0, 0));
}

#[test]
fn threads_do_not_change_the_result() {
    let files = discover(&fixture("claude_code")).unwrap();
    let one = TranscriptLoader::new(PriceBook::builtin()).with_threads(1).load(&files);
    let four = TranscriptLoader::new(PriceBook::builtin()).with_threads(4).load(&files);
    assert_eq!(one.calls.len(), 13, "the fixture's calls");
    assert_eq!(one.calls, four.calls);
    assert_eq!(one.stats, four.stats);
}

#[test]
fn unreadable_files_are_reported_not_fatal() {
    let mut files = discover(&fixture("claude_code")).unwrap();
    let mut gone = files[0].clone();
    gone.path = fixture("claude_code/projects/-home-dev-alpha/vanished.jsonl");
    files.push(gone);
    let load = TranscriptLoader::new(PriceBook::builtin()).load(&files);
    assert_eq!(load.stats.files, 5);
    assert_eq!(load.stats.unreadable_files.len(), 1);
    assert_eq!(load.stats.calls, 13);
}

#[test]
fn tools_of_the_fixture_session() {
    let files: Vec<_> =
        discover(&fixture("claude_code")).unwrap().into_iter().filter(|f| &*f.session == "sess-alpha-1").collect();
    let got: Vec<(String, u64, u64)> = tool_uses(&files).into_iter().map(|t| (t.tool, t.uses, t.errors)).collect();
    assert_eq!(got, vec![("Bash".into(), 1, 1), ("Grep".into(), 1, 0), ("Read".into(), 1, 0)]);
}

#[test]
fn tools_of_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t1","name":"Read","input":{}}]}}"#,
            "\n",
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t1","name":"Read","input":{}}]}}"#,
            "\n",
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t2","name":"Bash","input":{}},{"type":"tool_use","id":"t3","name":"Read","input":{}}]}}"#,
            "\n",
            r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t2","is_error":true,"content":"boom"}]}}"#,
            "\n",
            "garbage \"tool_\n",
        ),
    )
    .unwrap();
    let files = discover(&path).unwrap();
    let tools = tool_uses(&files);
    let got: Vec<(&str, u64, u64)> = tools.iter().map(|t| (t.tool.as_str(), t.uses, t.errors)).collect();
    assert_eq!(got, vec![("Read", 2, 0), ("Bash", 1, 1)]);
}

/// A relay that answers every response with the same message id and no `requestId`: each response is a call
/// (its prompt counts differ), where the whole session was one call; copies of one response (same prompt,
/// growing output) are still one. A sidechain line with that id replays only a main message with its prompt.
#[test]
fn a_relay_reusing_one_message_id_without_request_ids_is_not_one_call() {
    let (dir, project) = project_dir("-home-dev-relay");
    let line = |session: &str, time: &str, input: u64, output: u64, sidechain: bool| {
        format!(
            r#"{{"type":"assistant","timestamp":"2026-08-24T{time}Z","sessionId":"{session}","isSidechain":{sidechain},"message":{{"id":"ocgo","model":"claude-sonnet-4-5","usage":{{"input_tokens":{input},"output_tokens":{output}}}}}}}"#
        ) + "\n"
    };
    let main = [line("s1", "10:00:00", 1000, 40, false), line("s1", "10:00:01", 1000, 100, false)];
    std::fs::write(project.join("s1.jsonl"), main.concat() + &line("s1", "10:05:00", 900, 80, false)).unwrap();
    // Another session's sidechain: one line replaying a main message (its prompt), one a call of its own.
    let side = [line("s2", "10:06:00", 900, 80, true), line("s2", "10:07:00", 700, 60, true)];
    std::fs::write(project.join("s2.jsonl"), side.concat()).unwrap();
    let load = TranscriptLoader::new(PriceBook::builtin()).load(&discover(dir.path()).unwrap());
    assert_eq!(
        (load.stats.calls, load.stats.duplicate_lines, load.stats.sidechain_replays),
        (3, 1, 1),
        "{:#?}",
        load.calls
    );
    let got: Vec<(u64, u64)> = load.calls.iter().map(|c| (c.tokens.input, c.tokens.output)).collect();
    assert_eq!(got, vec![(1000, 100), (900, 80), (700, 60)]);
}

/// A resumed session copies the conversation into a new file under its own session id (same message and
/// request ids: one call). A sidechain of the original session that replays one of those messages is a replay
/// whichever copy is kept, the original's or the resumed session's.
#[test]
fn a_sidechain_replay_is_dropped_when_the_resumed_copy_of_its_message_is_kept() {
    let (dir, project) = project_dir("-home-dev-resumed");
    let line = |session: &str, request: &str, sidechain: bool| {
        format!(
            r#"{{"type":"assistant","timestamp":"2025-10-01T10:00:00Z","sessionId":"{session}","requestId":"{request}","isSidechain":{sidechain},"message":{{"id":"msg_M","model":"claude-sonnet-4-5","usage":{{"input_tokens":100,"output_tokens":10}}}}}}"#
        ) + "\n"
    };
    std::fs::write(project.join("orig.jsonl"), line("orig", "req_1", false) + &line("orig", "req_2", true)).unwrap();
    std::fs::write(project.join("resumed.jsonl"), line("resumed", "req_1", false)).unwrap();
    let files = discover(dir.path()).unwrap();
    assert_eq!(files.len(), 2);
    for files in [files.clone(), files.into_iter().rev().collect()] {
        let first = files[0].session.clone();
        let load = TranscriptLoader::new(PriceBook::builtin()).load(&files);
        assert_eq!(
            (load.stats.calls, load.stats.duplicate_lines, load.stats.sidechain_replays),
            (1, 1, 1),
            "kept the copy of {first}: {:?}",
            load.stats
        );
    }
}

/// A resumed session's file carries a copy of the earlier session's message under that session's id; a
/// sidechain of the resumed session replaying it under a new request id is a replay too (it was counted: the
/// message was known as the earlier session's only).
#[test]
fn a_sidechain_of_a_resumed_session_replaying_a_copied_message_is_dropped() {
    let (dir, project) = project_dir("-home-dev-resumed");
    let sidechain = r#"{"type":"assistant","timestamp":"2025-10-01T10:05:00Z","sessionId":"bbbb","requestId":"req_X","isSidechain":true,"message":{"id":"msg_M","model":"claude-sonnet-4-5","usage":{"input_tokens":100,"output_tokens":10}}}"#;
    std::fs::write(project.join("aaaa.jsonl"), line_of("aaaa", "msg_M", "req_M", 100)).unwrap();
    std::fs::write(project.join("bbbb.jsonl"), line_of("aaaa", "msg_M", "req_M", 100) + sidechain + "\n").unwrap();
    let load = TranscriptLoader::new(PriceBook::builtin()).load(&discover(dir.path()).unwrap());
    assert_eq!((load.stats.calls, load.stats.sidechain_replays), (1, 1), "{:?}", load.stats);
    assert_eq!(load.calls[0].tokens.input, 100);
}

/// A temporary Claude Code config dir with one project folder: (the dir, the project's folder).
fn project_dir(project: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("projects").join(project);
    std::fs::create_dir_all(&folder).unwrap();
    (dir, folder)
}

/// An assistant line of `session` with message `msg` and request `req`.
fn line_of(session: &str, msg: &str, req: &str, input: u64) -> String {
    format!(
        r#"{{"type":"assistant","timestamp":"2025-10-01T10:00:00Z","sessionId":"{session}","requestId":"{req}","message":{{"id":"{msg}","model":"claude-sonnet-4-5","usage":{{"input_tokens":{input},"output_tokens":10}}}}}}"#
    ) + "\n"
}

fn sessions_of(load: &tokenmeter::transcripts::TranscriptLoad) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = load
        .calls
        .iter()
        .map(|c| {
            (
                c.dimensions.session.as_deref().unwrap_or("-").to_owned(),
                c.request_id.as_deref().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_copy_of_an_earlier_sessions_line_stays_with_that_session() {
    // A resumed session's file holds a copy of the original's line under its original id: whichever file sorts
    // first, the call is the original session's.
    let (dir, project) = project_dir("p");
    std::fs::write(project.join("ffff-orig.jsonl"), line_of("ffff-orig", "msg_1", "req_1", 1_000)).unwrap();
    let resumed = line_of("ffff-orig", "msg_1", "req_1", 1_000) + &line_of("1111-resumed", "msg_2", "req_2", 10);
    std::fs::write(project.join("1111-resumed.jsonl"), resumed).unwrap();
    let load = TranscriptLoader::new(PriceBook::builtin()).load(&discover(dir.path()).unwrap());
    assert_eq!(
        sessions_of(&load),
        [("1111-resumed".to_owned(), "msg_2".to_owned()), ("ffff-orig".to_owned(), "msg_1".to_owned())]
    );
}

#[test]
fn an_agent_file_beside_the_sessions_belongs_to_the_session_its_lines_name() {
    // Claude Code before 2.1.2 wrote sub-agent transcripts as `agent-<id>.jsonl` next to the session files.
    let (dir, project) = project_dir("-home-u-proj");
    std::fs::write(project.join("aaaa-sess.jsonl"), line_of("aaaa-sess", "msg_1", "req_1", 100)).unwrap();
    std::fs::write(project.join("agent-a2271d1.jsonl"), line_of("aaaa-sess", "msg_S", "req_S", 50)).unwrap();
    let files = discover(dir.path()).unwrap();
    let agent_file = files.iter().find(|f| f.path.ends_with("agent-a2271d1.jsonl")).unwrap();
    assert!(agent_file.subagent);
    let load = TranscriptLoader::new(PriceBook::builtin()).load(&files);
    assert_eq!(
        sessions_of(&load),
        [("aaaa-sess".to_owned(), "msg_1".to_owned()), ("aaaa-sess".to_owned(), "msg_S".to_owned())]
    );
    let sub = by_id(&load.calls, "msg_S");
    assert_eq!(sub.dimensions.agent.as_deref(), Some("subagent"));
}

#[cfg(unix)]
#[test]
fn symlinked_folders_are_read_once() {
    // Three links back up used to make 3^16 folder listings (a hang); one made every file count 16 times.
    let (dir, project) = project_dir("p");
    std::fs::write(project.join("s.jsonl"), line_of("s", "msg_1", "req_1", 100)).unwrap();
    // A line without ids is never deduplicated: read twice, it would count twice.
    std::fs::write(project.join("noid.jsonl"), r#"{"type":"assistant","timestamp":"2025-10-01T10:00:00Z","message":{"model":"claude-sonnet-4-5","usage":{"input_tokens":1,"output_tokens":1}}}"#.to_owned() + "\n").unwrap();
    for name in ["a", "b", "c"] {
        std::os::unix::fs::symlink(".", project.join(name)).unwrap();
    }
    let files = discover(dir.path()).unwrap();
    assert_eq!(files.len(), 2, "{files:?}");
    // A second folder linked to the first (`~/.config/claude` -> `~/.claude`): each file once.
    let other = tempfile::tempdir().unwrap();
    let link = other.path().join("claude");
    std::os::unix::fs::symlink(dir.path(), &link).unwrap();
    let both = tokenmeter::transcripts::discover_all(&[link, dir.path().to_owned()]).unwrap();
    assert_eq!(both.len(), 2);
    assert_eq!(TranscriptLoader::new(PriceBook::builtin()).load(&both).calls.len(), 2);
    // A path given that is not there is still the error it is alone (an unreadable one is left out beside a
    // readable one).
    let gone = other.path().join("gone");
    assert!(matches!(
        tokenmeter::transcripts::discover_all(&[dir.path().to_owned(), gone]),
        Err(tokenmeter::transcripts::TranscriptError::NotFound(_))
    ));
}

#[test]
fn tool_counts_survive_a_cut_emoji_in_a_tools_input_or_output() {
    // Claude Code can cut an emoji in half when it truncates output: a lone surrogate escape, or raw bytes that
    // are not UTF-8. Those lines' tool blocks used to be dropped (the whole line was read into a JSON value).
    let (dir, project) = project_dir("p");
    let tool_use = |id: &str, input: &str| {
        format!(
            r#"{{"type":"assistant","sessionId":"s4","message":{{"content":[{{"type":"tool_use","id":"{id}","name":"Bash","input":{{"command":"{input}"}}}}]}}}}"#
        )
        .into_bytes()
    };
    let mut bytes = Vec::new();
    for (id, input) in [("t1", "ls"), ("t2", "echo \\ud83d"), ("t3", "cat")] {
        bytes.extend(tool_use(id, input));
        bytes.push(b'\n');
    }
    let mut raw = tool_use("t4", "echo XX");
    let at = raw.windows(2).position(|w| w == b"XX").unwrap();
    raw[at] = 0xff;
    raw[at + 1] = 0xfe;
    bytes.extend(raw);
    bytes.push(b'\n');
    bytes.extend(
        br#"{"type":"user","sessionId":"s4","message":{"content":[{"type":"tool_result","tool_use_id":"t2","is_error":true,"content":"bad \ud83d"}]}}"#,
    );
    bytes.extend(b"\n{\"type\":\"user\",\"message\":{\"content\":\"plain text, no blocks: tool_\"}}\n");
    std::fs::write(project.join("s4.jsonl"), bytes).unwrap();
    let uses = tool_uses(&discover(dir.path()).unwrap());
    assert_eq!(uses.len(), 1, "{uses:?}");
    assert_eq!((uses[0].tool.as_str(), uses[0].uses, uses[0].errors), ("Bash", 4, 1));
}

/// `load_cached` reads only files whose size or modification time changed, and its result is always the
/// uncached load's: calls resolved across every file (a copy in one file and its original in another), files
/// gone forgotten.
#[test]
fn a_cached_load_reads_only_changed_files_and_equals_a_fresh_load() {
    use std::io::Write;
    use tokenmeter::transcripts::TranscriptCache;
    let (dir, folder) = project_dir("-home-dev-cache");
    let (a, b) = (folder.join("sess-a.jsonl"), folder.join("sess-b.jsonl"));
    std::fs::write(&a, line_of("sess-a", "msg_1", "req_1", 100) + &line_of("sess-a", "msg_2", "req_2", 200)).unwrap();
    std::fs::write(&b, line_of("sess-b", "msg_3", "req_3", 300)).unwrap();
    let loader = TranscriptLoader::new(PriceBook::builtin()).with_threads(2);
    let mut cache = TranscriptCache::new();
    let same = |cache: &mut TranscriptCache| {
        let files = discover(dir.path()).unwrap();
        let cached = loader.load_cached(&files, cache, &|_| {});
        let fresh = loader.load(&files);
        assert_eq!(serde_json::to_value(&cached.calls).unwrap(), serde_json::to_value(&fresh.calls).unwrap());
        assert_eq!(format!("{:?}", cached.stats), format!("{:?}", fresh.stats));
        (sessions_of(&cached), cache.reused())
    };
    let first = same(&mut cache);
    assert_eq!(first.1, 0);
    assert_eq!(first.0.len(), 3);
    assert_eq!(same(&mut cache), (first.0.clone(), 2), "nothing changed: both files from the cache");

    // Claude Code appends to a running session; the other file is not read again.
    let mut f = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
    f.write_all(line_of("sess-a", "msg_4", "req_4", 400).as_bytes()).unwrap();
    drop(f);
    let (sessions, reused) = same(&mut cache);
    assert_eq!((sessions.len(), reused), (4, 1));

    // A copy of a's response in b with a larger total: kept from b now, though a was not read again.
    let mut f = std::fs::OpenOptions::new().append(true).open(&b).unwrap();
    f.write_all(line_of("sess-b", "msg_1", "req_1", 150).as_bytes()).unwrap();
    drop(f);
    let (sessions, reused) = same(&mut cache);
    assert_eq!(reused, 1);
    assert!(sessions.contains(&("sess-b".to_owned(), "msg_1".to_owned())), "{sessions:?}");

    std::fs::remove_file(&b).unwrap();
    let (sessions, reused) = same(&mut cache);
    assert_eq!((sessions.len(), reused, cache.len()), (3, 1, 1));
}
