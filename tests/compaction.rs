//! Server-side compaction: its summary is a sampling step of its own, billed, and left out of the response's
//! top-level usage (`usage.iterations` lists it). The call counts it.

use crate::common;

use common::{Harness, load_transcript};
use tokenmeter::TokenUsage;
use tokenmeter::instrument::{MessageResponse, Usage, claude_span, record_response};

/// The usage of Anthropic's compaction page's example, with cache counts on the summary step.
const USAGE: &str = r#"{"input_tokens":45000,"output_tokens":1234,"cache_read_input_tokens":2000,
    "iterations":[
        {"type":"compaction","input_tokens":180000,"output_tokens":3500,"cache_read_input_tokens":10000,
         "cache_creation_input_tokens":600,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":600}},
        {"type":"message","input_tokens":45000,"output_tokens":1234,"cache_read_input_tokens":2000}]}"#;

/// What the call is billed: the top-level counts plus the compaction step's.
const BILLED: TokenUsage = TokenUsage {
    input: 225_000,
    cache_read: 12_000,
    cache_write_5m: 0,
    cache_write_1h: 600,
    output: 4_734,
    reasoning: 0,
};

#[test]
fn a_response_s_compaction_step_is_counted_in_its_call() {
    let body = format!(r#"{{"id":"msg_c1","model":"claude-opus-4-6","usage":{USAGE}}}"#);
    let response: MessageResponse = serde_json::from_str(&body).unwrap();
    let iterations = response.usage.as_ref().and_then(|u| u.iterations.as_ref()).map(Vec::len);
    assert_eq!(iterations, Some(2));
    let h = Harness::new();
    h.run(|| record_response(&claude_span("chat", "claude-opus-4-6", false), &response));
    let call = h.seen.only_call();
    assert_eq!(call.tokens, BILLED);
    // Opus 4.6: 225,000 × $5 + 12,000 × $0.50 + 600 × $10 + 4,734 × $25 per million.
    let picos = 225_000 * 5_000_000 + 12_000 * 500_000 + 600 * 10_000_000 + 4_734 * 25_000_000;
    assert_eq!(call.cost.unwrap().total.picos(), picos);
}

#[test]
fn without_a_compaction_the_iterations_change_nothing() {
    let plain: Usage = serde_json::from_str(r#"{"input_tokens":45000,"output_tokens":1234}"#).unwrap();
    let listed: Usage = serde_json::from_str(
        r#"{"input_tokens":45000,"output_tokens":1234,
            "iterations":[{"type":"message","input_tokens":45000,"output_tokens":1234}]}"#,
    )
    .unwrap();
    let tokens = |usage: &Usage| {
        let h = Harness::new();
        h.run(|| usage.record_into(&claude_span("chat", "claude-opus-4-6", false)));
        h.seen.only_call().tokens
    };
    assert_eq!(tokens(&listed), tokens(&plain));
    assert_eq!((tokens(&plain).input, tokens(&plain).output), (45_000, 1_234));
}

#[test]
fn a_transcript_line_s_compaction_step_is_counted_too() {
    let usage = USAGE.replace('\n', "").replace("    ", "");
    let line = format!(
        r#"{{"type":"assistant","timestamp":"2026-08-24T10:00:00Z","sessionId":"s1","requestId":"req_c1","message":{{"id":"msg_c1","model":"claude-opus-4-6","usage":{usage}}}}}"#
    );
    let load = load_transcript(&(line + "\n"));
    assert_eq!(load.calls.len(), 1, "{:?}", load.stats);
    assert_eq!(load.calls[0].tokens, BILLED);
}

#[test]
fn a_write_total_in_one_part_and_a_split_in_another_both_count() {
    // Summed kind by kind, a total given only at the top (1,000, all 5-minute) beside a compaction step's split
    // only (600 for an hour) recorded a total of 1,600 against a split of 600: the top's writes read as 400.
    let tokens = |json: &str| {
        let usage: Usage = serde_json::from_str(json).unwrap();
        let h = Harness::new();
        h.run(|| usage.record_into(&claude_span("chat", "claude-opus-4-6", false)));
        let t = h.seen.only_call().tokens;
        (t.cache_write_5m, t.cache_write_1h)
    };
    let top_total = r#"{"input_tokens":10,"output_tokens":5,"cache_creation_input_tokens":1000,
        "iterations":[{"type":"compaction","input_tokens":100,"output_tokens":50,
            "cache_creation":{"ephemeral_1h_input_tokens":600}}]}"#;
    assert_eq!(tokens(top_total), (1_000, 600));
    let top_split = r#"{"input_tokens":10,"output_tokens":5,"cache_creation":{"ephemeral_1h_input_tokens":1000},
        "iterations":[{"type":"compaction","input_tokens":100,"output_tokens":50,"cache_creation_input_tokens":200}]}"#;
    assert_eq!(tokens(top_split), (200, 1_000));
}

#[test]
fn streamed_copies_with_and_without_the_iterations_are_one_call() {
    // Claude Code writes a response once per content block, with the usage so far; without a request id the
    // copies are told apart by their prompt counts, which the compaction step must not change.
    let line = |time: &str, usage: &str| {
        format!(
            r#"{{"type":"assistant","timestamp":"2026-08-24T10:00:0{time}Z","sessionId":"s1","message":{{"id":"msg_c2","model":"claude-opus-4-6","usage":{usage}}}}}"#
        ) + "\n"
    };
    let early = line("0", r#"{"input_tokens":45000,"cache_read_input_tokens":2000,"output_tokens":1}"#);
    let last = line("1", &USAGE.replace('\n', "").replace("    ", ""));
    let load = load_transcript(&(early + &last));
    assert_eq!(load.calls.len(), 1, "{:#?}", load.calls);
    assert_eq!(load.calls[0].tokens, BILLED);
}
