//! Every token field convention of the capture contract normalizes to the same internal form.

use crate::common;

use common::Harness;
use tokenmeter::TokenUsage;
use tracing::info_span;

#[test]
fn otel_semconv_fields() {
    let h = Harness::new();
    h.run(|| {
        let _s = info_span!(
            "chat claude-sonnet-4-5",
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = "anthropic",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.response.model = "claude-sonnet-4-5-20250929",
            gen_ai.response.id = "msg_01",
            gen_ai.usage.input_tokens = 10_000u64,
            gen_ai.usage.cache_read.input_tokens = 7_000u64,
            gen_ai.usage.cache_creation.input_tokens = 2_000u64,
            gen_ai.usage.output_tokens = 500u64,
            gen_ai.usage.reasoning.output_tokens = 120u64,
        );
    });
    let call = h.seen.only_call();
    assert_eq!(
        call.tokens,
        TokenUsage {
            input: 1_000,
            cache_read: 7_000,
            cache_write_5m: 2_000,
            cache_write_1h: 0,
            output: 500,
            reasoning: 120
        }
    );
    assert_eq!(call.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    assert_eq!(call.provider.as_deref(), Some("anthropic"));
    assert_eq!(call.operation.as_deref(), Some("chat"));
    assert_eq!(call.request_id.as_deref(), Some("msg_01"));
    assert!(call.metered);
    assert!(call.outcome == tokenmeter::Outcome::Ok);
    assert_eq!(h.meter.capture_stats().normalization_corrections, 0);
}

#[test]
fn anthropic_usage_object_names_with_their_prefix() {
    // The response's `usage` object flattened with its name: `usage.input_tokens`, `usage.cache_creation.…`.
    let h = Harness::new();
    h.run(|| {
        let _s = info_span!(
            "messages",
            model = "claude-sonnet-4-5",
            usage.input_tokens = 20u64,
            usage.cache_read_input_tokens = 4_000u64,
            usage.cache_creation_input_tokens = 500u64,
            usage.cache_creation.ephemeral_5m_input_tokens = 0u64,
            usage.cache_creation.ephemeral_1h_input_tokens = 500u64,
            usage.output_tokens = 400u64,
            usage.output_tokens_details.thinking_tokens = 150u64,
        );
    });
    let call = h.seen.only_call();
    let t = &call.tokens;
    assert_eq!((t.input, t.cache_read, t.cache_write_5m, t.cache_write_1h, t.output), (20, 4_000, 0, 500, 400));
    assert_eq!(t.reasoning, 150);
}

#[test]
fn the_usage_objects_service_tier_and_speed_with_their_prefix() {
    // `service_tier` and `speed` sit in the same `usage` object: a batch call flattened so was billed in full.
    let h = Harness::new();
    h.run(|| {
        drop(info_span!(
            "messages",
            model = "claude-sonnet-4-5",
            usage.input_tokens = 100_000u64,
            usage.output_tokens = 0u64,
            usage.service_tier = "batch",
        ));
        drop(info_span!(
            "messages",
            model = "claude-opus-4-6",
            usage.input_tokens = 100_000u64,
            usage.output_tokens = 0u64,
            usage.speed = "fast",
        ));
    });
    let calls = h.seen.calls();
    assert_eq!(calls[0].service_tier.as_deref(), Some("batch"));
    assert_eq!(calls[0].cost_or_zero().as_usd(), 0.15, "half the $3 per million input rate");
    assert_eq!(calls[1].speed.as_deref(), Some("fast"));
    assert_eq!(calls[1].cost_or_zero().as_usd(), 3.0, "six times the $5 per million input rate");
}

#[test]
fn anthropic_raw_fields_with_ttl_split() {
    let h = Harness::new();
    h.run(|| {
        let _s = info_span!(
            "messages",
            gen_ai.system = "anthropic",
            model = "claude-opus-4-1",
            input_tokens = 25u64,
            cache_read_input_tokens = 40_000u64,
            cache_creation_input_tokens = 3_000u64,
            cache_creation.ephemeral_5m_input_tokens = 1_000u64,
            cache_creation.ephemeral_1h_input_tokens = 2_000u64,
            output_tokens = 800u64,
            output_tokens_details.thinking_tokens = 300u64,
        );
    });
    let call = h.seen.only_call();
    assert_eq!(
        call.tokens,
        TokenUsage {
            input: 25,
            cache_read: 40_000,
            cache_write_5m: 1_000,
            cache_write_1h: 2_000,
            output: 800,
            reasoning: 300
        }
    );
    assert_eq!(
        call.provider.as_deref(),
        Some("anthropic"),
        "gen_ai.system is the provider when gen_ai.provider.name is absent"
    );
    assert_eq!(call.model.as_deref(), Some("claude-opus-4-1"));
}

#[test]
fn anthropic_raw_write_total_without_split_is_5m() {
    let h = Harness::new();
    h.run(|| {
        let _s = info_span!(
            "messages",
            model = "claude-haiku-4-5",
            input_tokens = 5u64,
            cache_creation_input_tokens = 900u64,
            output_tokens = 1u64
        );
    });
    let t = h.seen.only_call().tokens;
    assert_eq!((t.input, t.cache_write_5m, t.cache_write_1h), (5, 900, 0));
}

#[test]
fn legacy_semconv_prompt_and_completion() {
    let h = Harness::new();
    h.run(|| {
        let _s = info_span!(
            "completion",
            gen_ai.request.model = "claude-3-5-haiku-20241022",
            gen_ai.usage.prompt_tokens = 1_234u64,
            gen_ai.usage.completion_tokens = 56u64,
        );
    });
    let t = h.seen.only_call().tokens;
    assert_eq!((t.input, t.output, t.cache_read), (1_234, 56, 0));
}

#[test]
fn openllmetry_cache_fields() {
    // OpenLLMetry's spelling of the cache counts, beside an inclusive input: ignored, all 10,000 tokens were
    // priced as uncached input.
    let h = Harness::new();
    h.run(|| {
        let _s = info_span!(
            "anthropic.chat",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.usage.input_tokens = 10_000u64,
            gen_ai.usage.cache_read_input_tokens = 8_000u64,
            gen_ai.usage.cache_creation_input_tokens = 1_500u64,
            gen_ai.usage.output_tokens = 100u64,
        );
    });
    let t = h.seen.only_call().tokens;
    assert_eq!((t.input, t.cache_read, t.cache_write_5m, t.output), (500, 8_000, 1_500, 100));
}

#[test]
fn openai_style_fields() {
    let h = Harness::new();
    h.run(|| {
        let _s = info_span!(
            "openai",
            gen_ai.provider.name = "openai",
            model = "gpt-4o",
            prompt_tokens = 300u64,
            completion_tokens = 70u64
        );
    });
    let call = h.seen.only_call();
    assert_eq!((call.tokens.input, call.tokens.output), (300, 70));
    assert!(call.is_unpriced(), "an unknown model is unpriced, never $0: {call:?}");
    assert_eq!(h.meter.total_usage().unpriced_calls, 1);
}

#[test]
fn openai_style_cached_and_reasoning_details() {
    // Claude behind an OpenAI-compatible gateway: the cached part of `prompt_tokens` is a cache read (priced at
    // a tenth of input), and reasoning is a part of the completion. They used to be ignored: 10,000 input.
    let h = Harness::new();
    h.run(|| {
        let _s = info_span!(
            "gateway",
            model = "claude-sonnet-4-5",
            prompt_tokens = 10_000u64,
            prompt_tokens_details.cached_tokens = 8_000u64,
            completion_tokens = 100u64,
            completion_tokens_details.reasoning_tokens = 40u64,
        );
    });
    let t = h.seen.only_call().tokens;
    assert_eq!((t.input, t.cache_read, t.output, t.reasoning), (2_000, 8_000, 100, 40));
}

#[test]
fn response_model_is_preferred_over_request_model() {
    let h = Harness::new();
    h.run(|| {
        let _s = info_span!(
            "chat",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.response.model = "claude-haiku-4-5",
            model = "something-else",
            gen_ai.usage.input_tokens = 1u64,
        );
    });
    assert_eq!(h.seen.only_call().model.as_deref(), Some("claude-haiku-4-5"));
}

#[test]
fn stream_ttft_tier_and_speed() {
    let h = Harness::new();
    h.run(|| {
        let _s = info_span!(
            "chat",
            gen_ai.request.model = "claude-opus-4-6",
            gen_ai.request.stream = true,
            gen_ai.response.time_to_first_chunk = 0.4375f64,
            service_tier = "batch",
            speed = "fast",
            input_tokens = 10u64,
            output_tokens = 10u64,
        );
    });
    let call = h.seen.only_call();
    assert_eq!(call.streaming, Some(true));
    assert_eq!(call.time_to_first_token_us, Some(437_500));
    assert_eq!(call.service_tier.as_deref(), Some("batch"));
    assert_eq!(call.speed.as_deref(), Some("fast"));
}

#[test]
fn outcome_from_error_type_and_status_code() {
    let h = Harness::new();
    h.run(|| {
        let _a = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64, error.type = "overloaded_error");
        let _b = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64, otel.status_code = "ERROR");
        let _c = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64, otel.status_code = "OK");
        // A flag says "failed" (or not) without a type; an HTTP status as an integer is the type.
        let _d = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64, error.type = true);
        let _e = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64, error.type = false);
        let _f = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64, error.type = 529u64);
    });
    let labels: Vec<String> = h.seen.calls().iter().map(|c| c.outcome.label().to_string()).collect();
    // Spans close in reverse order of creation here (locals drop last-first).
    assert_eq!(labels, ["529", "ok", "error", "ok", "error", "overloaded_error"]);
    assert_eq!(h.meter.total_usage().failed_calls, 4);
    assert_eq!(h.meter.capture_stats().rejected_values, 0);
}

#[test]
fn duration_runs_from_creation_to_close() {
    let h = Harness::new();
    h.run(|| {
        let s = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64);
        h.clock.advance(chrono::Duration::milliseconds(1_250));
        drop(s);
    });
    let call = h.seen.only_call();
    assert_eq!(call.duration_us, 1_250_000);
    assert_eq!(call.timestamp, common::t0());
}

#[derive(Debug)]
struct ApiError(&'static str);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A client function the usual way: `#[instrument(err)]`, usage declared and recorded when there is some.
#[tracing::instrument(
    err,
    skip_all,
    fields(gen_ai.request.model = "claude-sonnet-4-5", gen_ai.usage.input_tokens = tracing::field::Empty)
)]
fn send(fail: Option<&'static str>) -> Result<(), ApiError> {
    match fail {
        Some(message) => Err(ApiError(message)),
        None => {
            tracing::Span::current().record("gen_ai.usage.input_tokens", 1_000u64);
            Ok(())
        }
    }
}

#[test]
fn instrument_err_marks_the_call_failed() {
    let h = Harness::new();
    h.run(|| {
        send(None).unwrap();
        send(Some("overloaded: the prompt was 'secret text'")).unwrap_err();
    });
    let calls = h.seen.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].outcome, tokenmeter::Outcome::Ok);
    assert!(calls[0].metered);
    assert_eq!(calls[1].outcome.label(), "error");
    assert!(!calls[1].metered, "the failed call is counted, unmetered");
    assert_eq!(h.meter.total_usage().failed_calls, 1);
    // The error's text is never read.
    let json = serde_json::to_string(&calls).unwrap();
    assert!(!json.contains("secret") && !json.contains("overloaded"), "{json}");
}

#[test]
fn only_the_instrument_err_event_in_the_call_span_itself_fails_it() {
    let h = Harness::new();
    h.run(|| {
        // An explicit error type wins over the event's plain "error".
        let a = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64, error.type = "overloaded_error");
        a.in_scope(|| tracing::error!(error = %ApiError("x")));
        drop(a);
        // A helper inside the call that failed (and was retried): not the call's failure.
        let b = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 2u64);
        b.in_scope(|| info_span!("read_file").in_scope(|| tracing::error!(error = %ApiError("x"))));
        drop(b);
        // Not the shape `#[instrument(err)]` emits: a logged error with a message, or at another level.
        let c = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 3u64);
        c.in_scope(|| {
            tracing::error!(error = %ApiError("x"), "retrying");
            tracing::warn!(error = %ApiError("x"));
        });
        drop(c);
        // Outside any call span: nothing to fail.
        tracing::error!(error = %ApiError("x"));
    });
    let outcomes: Vec<(u64, String)> =
        h.seen.calls().iter().map(|c| (c.tokens.input, c.outcome.label().to_string())).collect();
    assert_eq!(outcomes, [(1, "overloaded_error".into()), (2, "ok".into()), (3, "ok".into())]);
}

#[test]
fn an_error_type_error_event_in_the_call_span_fails_it() {
    let h = Harness::new();
    h.run(|| {
        let a = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 1u64);
        // Only the type is read: not the message, nor another field of the contract (the app's own request id).
        a.in_scope(
            || tracing::error!(error.type = "overloaded_error", request_id = "app-7", "the API said no: 'prompt text'"),
        );
        drop(a);
        // A retry logged on the way (a warning), or an error in a child span (the HTTP layer's, retried): not
        // the call's failure.
        let b = info_span!("chat", model = "claude-haiku-4-5", input_tokens = 2u64);
        b.in_scope(|| {
            tracing::warn!(error.type = "overloaded_error", "retrying");
            info_span!("http").in_scope(|| tracing::error!(error.type = 529u64));
        });
        drop(b);
        // A tool span fails as a call span does.
        let t = info_span!("tool", gen_ai.operation.name = "execute_tool", gen_ai.tool.name = "grep");
        t.in_scope(|| tracing::error!(error.type = "tool_error"));
        drop(t);
        // Outside any span: nothing to fail, and not usage.
        tracing::error!(error.type = "overloaded_error");
    });
    let calls = h.seen.calls();
    let outcomes: Vec<(u64, String)> = calls.iter().map(|c| (c.tokens.input, c.outcome.label().to_string())).collect();
    assert_eq!(outcomes, [(1, "overloaded_error".into()), (2, "ok".into())]);
    assert_eq!(calls[0].request_id, None);
    assert_eq!(h.meter.capture_stats().orphan_usage_events, 0);
    let tools = h.meter.tool_usage();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].errors, 1, "{tools:?}");
    let json = serde_json::to_string(&calls).unwrap();
    assert!(!json.contains("prompt text"), "{json}");
}

#[test]
fn a_usage_event_fails_the_call_only_as_an_error_in_the_call_span() {
    // Usage events carrying `error.type`: the same rule as error events without usage. Their usage counts
    // wherever they are; their error only as an ERROR event in the call span itself.
    let h = Harness::new();
    h.run(|| {
        let a = info_span!("chat", model = "claude-haiku-4-5", output_tokens = tracing::field::Empty);
        a.in_scope(|| tracing::warn!(output_tokens = 12u64, error.type = "overloaded_error", "retrying"));
        drop(a);
        let b = info_span!("chat", model = "claude-haiku-4-5", output_tokens = tracing::field::Empty);
        b.in_scope(|| {
            info_span!("attempt").in_scope(
                || tracing::error!(output_tokens = 13u64, error.type = "overloaded_error", otel.status_code = "ERROR"),
            )
        });
        drop(b);
        let c = info_span!("chat", model = "claude-haiku-4-5", output_tokens = tracing::field::Empty);
        c.in_scope(|| tracing::error!(output_tokens = 14u64, error.type = "overloaded_error"));
        drop(c);
    });
    let outcomes: Vec<(u64, String)> =
        h.seen.calls().iter().map(|c| (c.tokens.output, c.outcome.label().to_string())).collect();
    assert_eq!(outcomes, [(12, "ok".into()), (13, "ok".into()), (14, "overloaded_error".into())]);
}

/// A call shaped as rig (`rig-core`) records one: target `rig::completions`, every usage field declared empty and
/// recorded after the response, Anthropic's own (uncached) input count under `gen_ai.usage.input_tokens`.
fn rig_shaped_call(provider: &str, input: u64) {
    let span = tracing::info_span!(
        target: "rig::completions",
        "chat",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = provider,
        gen_ai.request.model = "claude-sonnet-4-5",
        gen_ai.response.id = tracing::field::Empty,
        gen_ai.response.model = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        gen_ai.usage.cache_read.input_tokens = tracing::field::Empty,
        gen_ai.usage.cache_creation.input_tokens = tracing::field::Empty,
        gen_ai.usage.reasoning_tokens = tracing::field::Empty,
    );
    span.record("gen_ai.response.id", "msg_rig");
    span.record("gen_ai.response.model", "claude-sonnet-4-5-20250929");
    span.record("gen_ai.usage.input_tokens", input);
    span.record("gen_ai.usage.output_tokens", 400u64);
    span.record("gen_ai.usage.cache_read.input_tokens", 0u64);
    span.record("gen_ai.usage.cache_creation.input_tokens", 3_000u64);
}

#[test]
fn an_uncached_input_under_the_semconv_name_is_read_short_without_a_rule() {
    // 5,000 uncached tokens beside a 3,000-token cache write: read as an inclusive 5,000, less the write.
    let h = Harness::new();
    h.run(|| rig_shaped_call("anthropic", 5_000));
    let call = h.seen.only_call();
    assert_eq!((call.tokens.input, call.tokens.cache_write_5m), (2_000, 3_000));
    assert_eq!(h.meter.capture_stats().capture_rule_calls, 0);
}

#[test]
fn a_capture_rule_reads_the_input_of_the_calls_it_names_as_uncached() {
    use tokenmeter::capture::CaptureRule;
    let h = Harness::with(|b| {
        b.with_capture_rule(CaptureRule::new().target("rig").provider("anthropic").input_is_uncached())
    });
    h.run(|| {
        rig_shaped_call("anthropic", 5_000);
        // The same target through an OpenAI-compatible provider: its input includes the cache, the rule does not
        // name it.
        rig_shaped_call("openrouter", 5_000);
        // A call of another target, Anthropic's provider: not named either.
        let _s = tracing::info_span!(
            "chat",
            gen_ai.provider.name = "anthropic",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.usage.input_tokens = 5_000u64,
            gen_ai.usage.cache_creation.input_tokens = 3_000u64,
            gen_ai.usage.output_tokens = 400u64,
        );
    });
    let calls = h.seen.calls();
    let inputs: Vec<u64> = calls.iter().map(|c| c.tokens.input).collect();
    assert_eq!(inputs, [5_000, 2_000, 2_000]);
    assert!(calls.iter().all(|c| c.tokens.cache_write_5m == 3_000 && c.tokens.output == 400));
    let stats = h.meter.capture_stats();
    assert_eq!((stats.capture_rule_calls, stats.normalization_corrections), (1, 0));
    // Priced on the uncached 5,000: $3 per million input, $3.75 a million written, $15 a million out.
    let total = calls[0].cost.as_ref().map(|c| c.total.picos());
    assert_eq!(total, Some(32_250_000_000)); // $0.015 + $0.01125 + $0.006
}

#[test]
fn an_uncached_input_field_wins_over_a_rule() {
    use tokenmeter::capture::CaptureRule;
    let h = Harness::with(|b| b.with_capture_rule(CaptureRule::new().input_is_uncached()));
    h.run(|| {
        let _s = tracing::info_span!(
            "messages",
            model = "claude-sonnet-4-5",
            input_tokens = 700u64,
            gen_ai.usage.input_tokens = 9_000u64,
            cache_read_input_tokens = 8_000u64,
            output_tokens = 10u64,
        );
    });
    assert_eq!(h.seen.only_call().tokens.input, 700);
    assert_eq!(h.meter.capture_stats().capture_rule_calls, 0);
}

#[test]
fn rigs_reasoning_name_is_read_as_reasoning() {
    let h = Harness::new();
    h.run(|| {
        let _s = tracing::info_span!(
            target: "rig::completions",
            "chat",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.usage.input_tokens = 100u64,
            gen_ai.usage.output_tokens = 900u64,
            gen_ai.usage.reasoning_tokens = 600u64,
        );
    });
    let call = h.seen.only_call();
    assert_eq!((call.tokens.output, call.tokens.reasoning), (900, 600));
}

#[test]
fn rig_0_33s_cached_tokens_are_cache_reads_inside_the_inclusive_input() {
    // Rig 0.33 (PR #1497) recorded cache reads as `gen_ai.usage.cached_tokens` beside an inclusive input: read
    // as another cache read name, 8,000 of the 10,000 prompt tokens are reads, 2,000 uncached.
    let h = Harness::new();
    h.run(|| {
        let _s = tracing::info_span!(
            target: "rig::completions",
            "chat",
            gen_ai.provider.name = "openai",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.usage.input_tokens = 10_000u64,
            gen_ai.usage.output_tokens = 500u64,
            gen_ai.usage.cached_tokens = 8_000u64,
        );
    });
    let t = h.seen.only_call().tokens;
    assert_eq!((t.input, t.cache_read, t.output), (2_000, 8_000, 500));
}

#[test]
fn sentrys_cache_names_are_the_semconv_ones() {
    // Sentry's conventions name `gen_ai.usage.input_tokens.cached` and `.cache_write` as aliases of the semconv
    // cache fields, both a part of `gen_ai.usage.input_tokens`.
    let h = Harness::new();
    h.run(|| {
        let _s = tracing::info_span!(
            "chat",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.usage.input_tokens = 10_000u64,
            gen_ai.usage.input_tokens.cached = 6_000u64,
            gen_ai.usage.input_tokens.cache_write = 3_000u64,
            gen_ai.usage.output_tokens = 500u64,
        );
    });
    let t = h.seen.only_call().tokens;
    assert_eq!((t.input, t.cache_read, t.cache_write_5m, t.output), (1_000, 6_000, 3_000, 500));
}

/// A call as genai (`rust-genai`, `otel` feature) records one: a `genai.chat` span in its `genai::otel::span`
/// module, the semconv names, the inclusive input (Anthropic's input plus cache reads and writes), one write total.
fn genai_shaped_call() {
    let span = tracing::info_span!(
        target: "genai::otel::span",
        "genai.chat",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = "anthropic",
        gen_ai.request.model = "claude-sonnet-4-5",
        server.address = tracing::field::Empty,
        gen_ai.response.id = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        gen_ai.usage.cache_read.input_tokens = tracing::field::Empty,
        gen_ai.usage.cache_creation.input_tokens = tracing::field::Empty,
    );
    span.record("server.address", "api.anthropic.com");
    span.record("gen_ai.response.id", "msg_genai");
    span.record("gen_ai.usage.input_tokens", 9_000i64);
    span.record("gen_ai.usage.output_tokens", 300i64);
    span.record("gen_ai.usage.cache_read.input_tokens", 5_000i64);
    span.record("gen_ai.usage.cache_creation.input_tokens", 3_000i64);
}

#[test]
fn a_genai_shaped_call_is_read_by_the_contract_and_a_rule_can_make_its_writes_one_hour() {
    use tokenmeter::capture::CaptureRule;
    let h = Harness::new();
    h.run(genai_shaped_call);
    let t = h.seen.only_call().tokens;
    assert_eq!((t.input, t.cache_read, t.cache_write_5m, t.cache_write_1h, t.output), (1_000, 5_000, 3_000, 0, 300));

    let h = Harness::with(|b| b.with_capture_rule(CaptureRule::new().target("genai").cache_writes_are_1h()));
    h.run(genai_shaped_call);
    let t = h.seen.only_call().tokens;
    assert_eq!((t.input, t.cache_read, t.cache_write_5m, t.cache_write_1h), (1_000, 5_000, 0, 3_000));
    assert_eq!(h.meter.capture_stats().capture_rule_calls, 1);
}

#[test]
fn a_capture_rule_reads_an_unsplit_write_total_as_one_hour_writes() {
    use tokenmeter::capture::CaptureRule;
    let rule = CaptureRule::new().target("rig").provider("anthropic").input_is_uncached().cache_writes_are_1h();
    let h = Harness::with(|b| b.with_capture_rule(rule));
    h.run(|| {
        rig_shaped_call("anthropic", 5_000);
        // A total with its split keeps the split's reading.
        let _s = tracing::info_span!(
            target: "rig::completions",
            "chat",
            gen_ai.provider.name = "anthropic",
            gen_ai.request.model = "claude-sonnet-4-5",
            input_tokens = 10u64,
            cache_creation_input_tokens = 3_000u64,
            cache_creation.ephemeral_5m_input_tokens = 1_000u64,
            output_tokens = 1u64,
        );
    });
    let calls = h.seen.calls();
    let writes: Vec<(u64, u64)> = calls.iter().map(|c| (c.tokens.cache_write_5m, c.tokens.cache_write_1h)).collect();
    assert_eq!(writes, [(0, 3_000), (3_000, 0)]);
    assert_eq!(calls[0].tokens.input, 5_000);
    assert_eq!(h.meter.capture_stats().capture_rule_calls, 1);
    // $0.015 input + 3,000 one-hour writes at $6 a million ($0.018) + $0.006 output.
    assert_eq!(calls[0].cost.as_ref().map(|c| c.total.picos()), Some(39_000_000_000));
}

#[test]
fn a_capture_rule_that_changes_no_reading_is_left_out() {
    use tokenmeter::capture::CaptureRule;
    let h = Harness::with(|b| b.with_capture_rule(CaptureRule::new().target("rig")));
    h.run(|| rig_shaped_call("anthropic", 5_000));
    assert_eq!(h.seen.only_call().tokens.input, 2_000);
    assert_eq!(h.meter.capture_stats().capture_rule_calls, 0);
}
