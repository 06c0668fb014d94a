//! US-only inference (`inference_geo = "us"`, on Claude Opus 4.6, Sonnet 4.6 and later) is billed at 1.1x every
//! token rate: read from spans, from a Messages API response and from Claude Code transcripts.

mod common;

use common::{Harness, load_transcript};
use tokenmeter::CallRecord;
use tokenmeter::instrument::{MessageResponse, claude_span, record_response};
use tracing::field::Empty;
use tracing::info_span;

/// 10,000 input and 1,000 output tokens on Opus 4.6 ($5 / $25 per Mtok): $0.075, in pico-USD.
const GLOBAL: u128 = 10_000 * 5_000_000 + 1_000 * 25_000_000;

fn total(call: &CallRecord) -> u128 {
    call.cost.as_ref().expect("priced").total.picos()
}

#[test]
fn a_span_reporting_us_only_inference_costs_a_tenth_more() {
    for field in ["inference_geo", "usage.inference_geo"] {
        let h = Harness::new();
        h.run(|| {
            let span = info_span!(
                "chat",
                gen_ai.request.model = "claude-opus-4-6",
                input_tokens = 10_000u64,
                output_tokens = 1_000u64,
                inference_geo = Empty,
                usage.inference_geo = Empty,
            );
            span.record(field, "us");
        });
        let call = h.seen.only_call();
        assert_eq!(call.inference_geo.as_deref(), Some("us"), "{field}");
        assert!(call.cost.as_ref().unwrap().us_only, "{field}");
        assert_eq!(total(&call) * 10, GLOBAL * 11, "{field}");
    }
}

#[test]
fn a_long_lived_spans_next_call_does_not_inherit_the_last_calls_geography() {
    let h = Harness::new();
    h.run(|| {
        let span = info_span!(
            "agent loop",
            gen_ai.request.model = "claude-opus-4-6",
            gen_ai.response.id = Empty,
            input_tokens = Empty,
            output_tokens = Empty,
            inference_geo = Empty,
        );
        for (id, geo) in [("msg_1", Some("us")), ("msg_2", None)] {
            span.record("gen_ai.response.id", id);
            span.record("input_tokens", 10_000u64);
            span.record("output_tokens", 1_000u64);
            if let Some(geo) = geo {
                span.record("inference_geo", geo);
            }
        }
    });
    let totals: Vec<(Option<String>, u128)> =
        h.seen.calls().iter().map(|c| (c.inference_geo.as_deref().map(str::to_owned), total(c))).collect();
    assert_eq!(totals, [(Some("us".to_owned()), GLOBAL * 11 / 10), (None, GLOBAL)]);
}

#[test]
fn a_messages_api_response_carries_its_geography_to_the_price() {
    let body = r#"{"id":"msg_g1","model":"claude-opus-4-6","usage":{"input_tokens":10000,"output_tokens":1000,
        "inference_geo":"us"}}"#;
    let response: MessageResponse = serde_json::from_str(body).unwrap();
    assert_eq!(response.usage.as_ref().and_then(|u| u.inference_geo.as_deref()), Some("us"));
    let h = Harness::new();
    h.run(|| record_response(&claude_span("chat", "claude-opus-4-6", false), &response));
    let call = h.seen.only_call();
    assert_eq!(total(&call), GLOBAL * 11 / 10);
}

#[test]
fn a_claude_code_transcript_line_in_the_us_is_priced_so() {
    let line = |id: &str, geo: &str| {
        format!(
            r#"{{"type":"assistant","timestamp":"2026-08-24T10:00:00Z","sessionId":"s1","requestId":"{id}","message":{{"id":"{id}","model":"claude-opus-4-6","usage":{{"input_tokens":10000,"output_tokens":1000,"inference_geo":"{geo}"}}}}}}"#
        ) + "\n"
    };
    let load = load_transcript(&(line("req_us", "us") + &line("req_global", "global")));
    let got: Vec<(Option<&str>, u128)> = load.calls.iter().map(|c| (c.request_id.as_deref(), total(c))).collect();
    assert_eq!(got, [(Some("req_us"), GLOBAL * 11 / 10), (Some("req_global"), GLOBAL)]);
}
