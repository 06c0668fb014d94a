//! Inference kept in one geography is billed at 1.1x every token rate: the Messages API's US-only inference
//! (`inference_geo = "us"`, on Claude Opus 4.6, Sonnet 4.6 and later), read from spans, from a Messages API
//! response and from Claude Code transcripts; and the regional endpoints of Amazon Bedrock (an inference profile
//! of one geography, read from the model id) and Google Vertex AI (`server.address`), on Claude Sonnet 4.5 and
//! later.

use crate::common;

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
        assert!(call.cost.as_ref().unwrap().regional, "{field}");
        assert_eq!(total(&call) * 10, GLOBAL * 11, "{field}");
    }
}

#[test]
fn modifiers_in_any_case_are_recorded_as_the_rules_read_them() {
    let h = Harness::new();
    h.run(|| {
        drop(
            info_span!(
                "chat",
                gen_ai.request.model = "claude-opus-4-6",
                input_tokens = 10_000u64,
                output_tokens = 1_000u64,
                inference_geo = " US ",
                service_tier = "Batch",
                speed = "FAST",
            )
            .entered(),
        );
    });
    let call = h.seen.only_call();
    let labels = (call.inference_geo.as_deref(), call.service_tier.as_deref(), call.speed.as_deref());
    assert_eq!(labels, (Some("us"), Some("batch"), Some("fast")));
    let cost = call.cost.as_ref().unwrap();
    assert!(cost.regional && cost.batch && cost.fast, "{cost:?}");
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

/// 10,000 input and 1,000 output tokens on Sonnet 4.5 ($3 / $15 per Mtok): $0.045, in pico-USD.
const SONNET_GLOBAL: u128 = 10_000 * 3_000_000 + 1_000 * 15_000_000;

#[test]
fn a_call_on_a_bedrock_regional_profile_costs_a_tenth_more() {
    // The request names the inference profile; the response's model is the bare id, which says nothing of it.
    let h = Harness::new();
    h.run(|| {
        for profile in [
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "eu.anthropic.claude-sonnet-4-20250514-v1:0",
        ] {
            let _call = info_span!(
                "chat",
                gen_ai.provider.name = "aws.bedrock",
                gen_ai.request.model = profile,
                gen_ai.response.model = "claude-sonnet-4-5-20250929",
                input_tokens = 10_000u64,
                output_tokens = 1_000u64,
            );
        }
    });
    let got: Vec<(Option<String>, bool, u128)> = h
        .seen
        .calls()
        .iter()
        .map(|c| (c.inference_geo.as_deref().map(str::to_owned), c.cost.as_ref().unwrap().regional, total(c)))
        .collect();
    assert_eq!(
        got,
        [
            (Some("us".to_owned()), true, SONNET_GLOBAL * 11 / 10),
            (Some("global".to_owned()), false, SONNET_GLOBAL),
            // Priced as the response's model says (Sonnet 4.5), in the EU: regional.
            (Some("eu".to_owned()), true, SONNET_GLOBAL * 11 / 10),
        ]
    );
}

#[test]
fn older_models_on_a_regional_profile_keep_their_price() {
    // "Older models (Claude Sonnet 4, Opus 4, and earlier) maintain their existing pricing structures."
    let h = Harness::new();
    h.run(|| {
        let _call = info_span!(
            "chat",
            gen_ai.request.model = "us.anthropic.claude-sonnet-4-20250514-v1:0",
            input_tokens = 10_000u64,
            output_tokens = 1_000u64,
        );
    });
    let call = h.seen.only_call();
    assert_eq!(call.inference_geo.as_deref(), Some("us"));
    assert!(!call.cost.as_ref().unwrap().regional);
    assert_eq!(total(&call), SONNET_GLOBAL);
}

#[test]
fn a_vertex_ai_regional_endpoint_is_read_from_server_address() {
    let h = Harness::new();
    h.run(|| {
        for host in ["us-east5-aiplatform.googleapis.com", "aiplatform.googleapis.com", "api.anthropic.com"] {
            let _call = info_span!(
                "chat",
                gen_ai.provider.name = "gcp.vertex_ai",
                gen_ai.request.model = "claude-sonnet-4-5@20250929",
                server.address = host,
                input_tokens = 10_000u64,
                output_tokens = 1_000u64,
            );
        }
        // The span's own `inference_geo` is its word over the host's.
        let _call = info_span!(
            "chat",
            gen_ai.request.model = "claude-sonnet-4-5@20250929",
            server.address = "us-east5-aiplatform.googleapis.com",
            inference_geo = "global",
            input_tokens = 10_000u64,
            output_tokens = 1_000u64,
        );
    });
    let got: Vec<(Option<String>, u128)> =
        h.seen.calls().iter().map(|c| (c.inference_geo.as_deref().map(str::to_owned), total(c))).collect();
    assert_eq!(
        got,
        [
            (Some("us-east5".to_owned()), SONNET_GLOBAL * 11 / 10),
            (Some("global".to_owned()), SONNET_GLOBAL),
            (None, SONNET_GLOBAL),
            (Some("global".to_owned()), SONNET_GLOBAL),
        ]
    );
}

#[test]
fn a_claude_code_transcript_on_a_bedrock_profile_is_priced_at_its_geography() {
    let line = |id: &str, model: &str| {
        format!(
            r#"{{"type":"assistant","timestamp":"2026-08-24T10:00:00Z","sessionId":"s1","requestId":"{id}","message":{{"id":"{id}","model":"{model}","usage":{{"input_tokens":10000,"output_tokens":1000}}}}}}"#
        ) + "\n"
    };
    // Claude Code writes `"inference_geo":""` on such lines: it says nothing, and the profile decides.
    let unstated = line("req_eu", "eu.anthropic.claude-sonnet-4-5-20250929-v1:0")
        .replace(r#""output_tokens":1000"#, r#""output_tokens":1000,"inference_geo":"""#);
    let load = load_transcript(
        &(line("req_us", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
            + &line("req_global", "global.anthropic.claude-sonnet-4-5-20250929-v1:0")
            + &unstated),
    );
    let got: Vec<(Option<&str>, Option<&str>, u128)> =
        load.calls.iter().map(|c| (c.request_id.as_deref(), c.inference_geo.as_deref(), total(c))).collect();
    assert_eq!(
        got,
        [
            (Some("req_us"), Some("us"), SONNET_GLOBAL * 11 / 10),
            (Some("req_global"), Some("global"), SONNET_GLOBAL),
            (Some("req_eu"), Some("eu"), SONNET_GLOBAL * 11 / 10),
        ]
    );
}

#[test]
fn a_span_whose_geography_says_nothing_takes_its_bedrock_profiles() {
    // `claude_span` declares `inference_geo`, and a model that does not take the parameter reports
    // `not_available`: on a Bedrock profile that is no geography, and the profile's is the call's.
    let h = Harness::new();
    h.run(|| {
        let _call = info_span!(
            "chat",
            gen_ai.request.model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            inference_geo = "not_available",
            input_tokens = 10_000u64,
            output_tokens = 1_000u64,
        );
    });
    let call = h.seen.only_call();
    assert_eq!(call.inference_geo.as_deref(), Some("us"));
    assert_eq!(total(&call), SONNET_GLOBAL * 11 / 10);
}

#[test]
fn server_address_can_still_name_a_dimension_of_your_own() {
    // Read for a Vertex AI call's geography, `server.address` is also a name an application may give a dimension
    // (which gateway a call went through); the meter builds with it and fills both.
    assert!(tokenmeter::TokenMeter::builder().with_dimension("server.address").try_build().is_ok());
    let h = Harness::with(|b| b.with_dimension("server.address"));
    h.run(|| {
        let _call = info_span!(
            "chat",
            gen_ai.request.model = "claude-sonnet-4-5@20250929",
            server.address = "us-east5-aiplatform.googleapis.com",
            input_tokens = 10_000u64,
            output_tokens = 1_000u64,
        );
    });
    let call = h.seen.only_call();
    assert_eq!(call.dimensions.get("server.address"), Some("us-east5-aiplatform.googleapis.com"));
    assert_eq!(call.inference_geo.as_deref(), Some("us-east5"));
    assert_eq!(total(&call), SONNET_GLOBAL * 11 / 10);
}

#[test]
fn a_server_address_that_is_no_host_is_not_counted_rejected() {
    // `server.address` is optional: a `Url` recorded with `?`, or a flag, is not read, and not a rejected value.
    #[derive(Debug)]
    #[allow(dead_code)]
    struct Url {
        scheme: &'static str,
        host: &'static str,
    }
    let h = Harness::new();
    h.run(|| {
        let url = Url { scheme: "https", host: "us-east5-aiplatform.googleapis.com" };
        let _call = info_span!(
            "chat",
            gen_ai.request.model = "claude-sonnet-4-5@20250929",
            server.address = ?url,
            input_tokens = 10_000u64,
            output_tokens = 1_000u64,
        );
        let _call = info_span!(
            "chat",
            gen_ai.request.model = "claude-sonnet-4-5@20250929",
            server.address = true,
            input_tokens = 10_000u64,
            output_tokens = 1_000u64,
        );
    });
    assert_eq!(h.meter.capture_stats().rejected_values, 0);
    assert!(h.seen.calls().iter().all(|c| c.inference_geo.is_none() && total(c) == SONNET_GLOBAL));
}
