//! `instrument::claude_span` as a call through another provider: the provider recorded over the default.

use crate::common;

use common::Harness;
use tokenmeter::instrument::{MessageResponse, claude_span, record_response};

#[test]
fn a_call_through_bedrock_keeps_its_provider_and_its_price() {
    let body = r#"{"id":"msg_b1","model":"claude-sonnet-4-5","usage":{"input_tokens":1000,"output_tokens":100}}"#;
    let response: MessageResponse = serde_json::from_str(body).unwrap();
    let h = Harness::new();
    h.run(|| {
        let span = claude_span("chat", "claude-sonnet-4-5", false);
        span.record("gen_ai.provider.name", "aws.bedrock");
        record_response(&span, &response);
    });
    let call = h.seen.only_call();
    assert_eq!(call.provider.as_deref(), Some("aws.bedrock"));
    // 1,000 input and 100 output tokens at $3 / $15 per Mtok: $0.0045.
    assert_eq!(call.cost.unwrap().total.picos(), 1_000 * 3_000_000 + 100 * 15_000_000);
}
