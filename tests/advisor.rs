//! The advisor tool: its sub-inferences run on another model, billed at that model's rates, and the response's
//! top-level usage leaves them out (`usage.iterations` lists them as `advisor_message` entries). Claude Code's
//! transcripts carry them on the executor's line; each is a call of its own.

use crate::common;

use common::load_transcript;
use tokenmeter::TokenUsage;

/// A line of a session with `/advisor` on: the executor (Sonnet 4.6) asked the advisor once.
fn line(request: &str, iteration_model: Option<&str>, advisor_output: u64) -> String {
    let model = iteration_model.map(|m| format!(r#""model":"{m}","#)).unwrap_or_default();
    format!(
        r#"{{"type":"assistant","advisorModel":"claude-opus-4-7","timestamp":"2026-05-22T02:34:40Z","sessionId":"s1","requestId":"{request}","message":{{"id":"msg_{request}","model":"claude-sonnet-4-6","usage":{{"input_tokens":2,"output_tokens":491,"cache_read_input_tokens":226584,"cache_creation_input_tokens":7853,"iterations":[{{"type":"message","input_tokens":1,"output_tokens":45,"cache_read_input_tokens":109696,"cache_creation_input_tokens":7192}},{{"type":"advisor_message",{model}"input_tokens":159419,"output_tokens":{advisor_output}}}]}}}}}}"#
    ) + "\n"
}

/// The executor's top-level usage, priced at Sonnet 4.6: 2 × $3 + 491 × $15 + 226,584 × $0.30 + 7,853 × $3.75.
const EXECUTOR_PICOS: u128 = 2 * 3_000_000 + 491 * 15_000_000 + 226_584 * 300_000 + 7_853 * 3_750_000;

#[test]
fn an_advisor_iteration_is_a_call_at_the_advisor_models_rates() {
    let load = load_transcript(&line("r1", Some("claude-opus-4-7"), 7_805));
    assert_eq!(load.stats.calls, 2);
    assert_eq!(load.stats.advisor_calls, 1);
    let [executor, advisor] = &load.calls[..] else { panic!("{:?}", load.calls) };
    assert_eq!(executor.model.as_deref(), Some("claude-sonnet-4-6"));
    assert_eq!(executor.cost.as_ref().unwrap().total.picos(), EXECUTOR_PICOS);
    assert_eq!(advisor.model.as_deref(), Some("claude-opus-4-7"));
    assert_eq!(advisor.tokens, TokenUsage { input: 159_419, output: 7_805, ..TokenUsage::default() });
    // Opus 4.7: 159,419 × $5 + 7,805 × $25 per million.
    assert_eq!(advisor.cost.as_ref().unwrap().total.picos(), 159_419 * 5_000_000 + 7_805 * 25_000_000);
    assert_eq!(advisor.request_id.as_deref(), Some("msg_r1:advisor:1"));
    assert_eq!((advisor.timestamp, &advisor.dimensions), (executor.timestamp, &executor.dimensions));
}

#[test]
fn an_iteration_without_its_model_takes_the_lines_advisor_model() {
    let load = load_transcript(&line("r1", None, 7_805));
    assert_eq!(load.calls[1].model.as_deref(), Some("claude-opus-4-7"));
    assert!(load.calls[1].cost.is_some());
}

#[test]
fn a_response_written_several_times_has_its_advisor_counted_once() {
    // Claude Code writes a streamed response's copies as it goes: an early one before the advisor's usage is in
    // (no iterations), later ones with it; the copy with the most tokens, advisor included, is the call.
    let early = line("r1", Some("claude-opus-4-7"), 0)
        .replace(r#","iterations":[{"type":"message","input_tokens":1,"output_tokens":45,"cache_read_input_tokens":109696,"cache_creation_input_tokens":7192},{"type":"advisor_message","model":"claude-opus-4-7","input_tokens":159419,"output_tokens":0}]"#, "");
    assert!(!early.contains("iterations"));
    let full = line("r1", Some("claude-opus-4-7"), 7_805);
    let load = load_transcript(&(early + &full + &full));
    assert_eq!((load.stats.calls, load.stats.advisor_calls, load.stats.duplicate_lines), (2, 1, 2));
    assert_eq!(load.calls[1].tokens.output, 7_805);
}

#[test]
fn a_line_without_advisor_iterations_is_one_call() {
    let plain = r#"{"type":"assistant","timestamp":"2026-05-22T02:34:40Z","sessionId":"s1","requestId":"r1","message":{"id":"m1","model":"claude-sonnet-4-6","usage":{"input_tokens":2,"output_tokens":491,"iterations":[{"type":"message","input_tokens":2,"output_tokens":491}]}}}"#;
    let load = load_transcript(&(plain.to_owned() + "\n"));
    assert_eq!((load.stats.calls, load.stats.advisor_calls), (1, 0));
}

#[test]
fn an_empty_iteration_model_falls_back_to_the_lines_advisor_model() {
    let load = load_transcript(&line("r1", Some(""), 7_805));
    assert_eq!(load.calls[1].model.as_deref(), Some("claude-opus-4-7"));
}

#[test]
fn an_advisor_is_priced_in_its_own_geography_unless_the_line_states_one() {
    // The executor on a global Bedrock profile (its line's `inference_geo` empty, as Claude Code writes it), the
    // advisor on a US one: the advisor's profile decides its price, not the geography read from the executor's id.
    let global_executor = line("r1", Some("us.anthropic.claude-opus-4-7"), 7_805)
        .replace(r#""model":"claude-sonnet-4-6""#, r#""model":"global.anthropic.claude-sonnet-4-6""#)
        .replace(r#""output_tokens":491,"#, r#""output_tokens":491,"inference_geo":"","#);
    let load = load_transcript(&global_executor);
    let [executor, advisor] = &load.calls[..] else { panic!("{:?}", load.calls) };
    assert_eq!(executor.inference_geo.as_deref(), Some("global"));
    assert_eq!(advisor.inference_geo.as_deref(), Some("us"));
    assert!(advisor.cost.as_ref().unwrap().regional);
    // A geography the line states is the request's, advisor included.
    let stated = line("r1", Some("claude-opus-4-7"), 7_805)
        .replace(r#""output_tokens":491,"#, r#""output_tokens":491,"inference_geo":"us","#);
    let load = load_transcript(&stated);
    assert_eq!(load.calls[1].inference_geo.as_deref(), Some("us"));
}
