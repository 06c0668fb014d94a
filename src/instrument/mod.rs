//! Instrumenting your own Claude calls: a call span that declares every field capture reads, and the helpers
//! that record Anthropic's responses into it.
//!
//! If your Claude client crate already emits OpenTelemetry GenAI spans, you need none of this: add the meter's
//! layer and it reads those spans. This module is for code that calls the Messages API itself.
//!
//! # The call span
//!
//! [`claude_span`] opens an `info` span following the OTel GenAI conventions: `gen_ai.operation.name`,
//! `gen_ai.provider.name = "anthropic"`, `gen_ai.request.model`, `gen_ai.request.stream`, and every field filled
//! later (response id and model, time to first chunk, Anthropic's raw usage fields, service tier, speed,
//! inference geography, `error.type`, `otel.status_code`) declared as [`Empty`], since `tracing` can only record
//! fields a span declared when it was made.
//!
//! The conventions name a client span `{gen_ai.operation.name} {gen_ai.request.model}` (`chat
//! claude-sonnet-4-5`). A `tracing` span's name is fixed at its callsite, so the span is named `claude` and
//! carries the conventional name in `otel.name`, which `tracing-opentelemetry` exports as the span name; it also
//! sets `otel.kind = "client"`. tokenmeter itself never reads span names.
//!
//! # Recording
//!
//! | when | call | records |
//! |---|---|---|
//! | a response arrived | [`record_response`] | `gen_ai.response.id`, `gen_ai.response.model`, the usage ([`Usage::record_into`]) |
//! | the API or the transport failed | [`record_error`] | `error.type`, `otel.status_code = "ERROR"` |
//! | streaming | [`StreamAccumulator`] | the same, as the events arrive, plus time to first token |
//!
//! Nothing here records prompt or response text: the types read ids, model names, counts and error types, and
//! skip content.
//!
//! # Example
//!
//! ```
//! use tokenmeter::instrument::{MessageResponse, claude_span, record_response};
//! use tracing_subscriber::prelude::*;
//!
//! let meter = tokenmeter::TokenMeter::builder().build();
//! let subscriber = tracing_subscriber::registry().with(meter.layer());
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = claude_span("chat", "claude-sonnet-4-5", false);
//!     // ... send the request inside `span` ...
//!     let body = r#"{"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
//!         "model": "claude-sonnet-4-5-20250929", "content": [{"type": "text", "text": "Hello!"}],
//!         "stop_reason": "end_turn", "stop_sequence": null,
//!         "usage": {"input_tokens": 12, "cache_read_input_tokens": 10000, "output_tokens": 6}}"#;
//!     let response: MessageResponse = serde_json::from_str(body).unwrap();
//!     record_response(&span, &response);
//! }); // the span closes: one CallRecord
//! let usage = meter.model_usage();
//! assert_eq!(usage[0].totals.tokens.cache_read, 10_000);
//! assert_eq!(usage[0].totals.cost.to_string(), "$0.003126");
//! ```

mod sse;
mod stream;
mod usage;

use std::borrow::Cow;

use tracing::Span;
use tracing::field::Empty;

use crate::capture::fields::{ERROR_TYPE, RESPONSE_ID, RESPONSE_MODEL, STATUS_CODE};

pub use sse::{KEPT_LINE_CAPACITY, MAX_EVENT_BYTES, MAX_LINE_BYTES, SseDecoder, SseEvent};
pub use stream::{StreamAccumulator, StreamOutcome, StreamSummary};
pub use usage::{
    ApiError, CacheCreation, ErrorResponse, MessageResponse, OutputTokensDetails, ServerToolUse, Usage, UsageIteration,
};

/// The `gen_ai.provider.name` of Anthropic's API.
pub const PROVIDER: &str = "anthropic";

/// The `error.type` recorded for a stream that ended before `message_stop` without an error event.
pub const INCOMPLETE_STREAM: &str = "stream_incomplete";

/// Opens an `info`-level span for one Claude call, following the OTel GenAI conventions.
///
/// `operation` is the `gen_ai.operation.name` (`chat` for the Messages API), `model` the requested model, and
/// `stream` whether the request streams. Every other field capture reads is declared empty, to be recorded with
/// [`record_response`], [`record_error`], [`Usage::record_into`] or a [`StreamAccumulator`]. The span's name is
/// `claude`; `otel.name` holds the conventional `"{operation} {model}"` (see the [module docs](self)).
///
/// Its target is `tokenmeter::instrument` and its level `INFO`: a global filter that turns that off (`warn`, or
/// `my_app=info` alone) disables the span, and the call is not metered. Filter the layers that print instead
/// (`fmt::layer().with_filter(...)`), or let `tokenmeter::instrument=info` through.
///
/// The span is a call to meter when it closes: keep it open (entered, or held) for the whole request,
/// including the reading of a streamed body, and drop it after the last record.
pub fn claude_span(operation: &str, model: &str, stream: bool) -> Span {
    let otel_name = format!("{operation} {model}");
    tracing::info_span!(
        "claude",
        otel.name = otel_name.as_str(),
        otel.kind = "client",
        otel.status_code = Empty,
        gen_ai.operation.name = operation,
        gen_ai.provider.name = PROVIDER,
        gen_ai.request.model = model,
        gen_ai.request.stream = stream,
        gen_ai.response.model = Empty,
        gen_ai.response.id = Empty,
        gen_ai.response.time_to_first_chunk = Empty,
        input_tokens = Empty,
        cache_read_input_tokens = Empty,
        cache_creation_input_tokens = Empty,
        cache_creation.ephemeral_5m_input_tokens = Empty,
        cache_creation.ephemeral_1h_input_tokens = Empty,
        output_tokens = Empty,
        output_tokens_details.thinking_tokens = Empty,
        server_tool_use.web_search_requests = Empty,
        service_tier = Empty,
        speed = Empty,
        inference_geo = Empty,
        error.type = Empty,
    )
}

/// Records a (non-streaming) Messages API response into the call span: id, served model, and usage.
///
/// The id is recorded before the usage, as capture expects (a new id arriving on a span that already holds
/// usage starts another call there). A body that is not a message fails the call, as
/// [`record_error`] would: an error body (`"type": "error"`, which some gateways send with a 2xx status) with
/// its error type, and anything else without an id or usage (`{}`, `[]`) as `invalid_response`.
///
/// [`MessageResponse::error_type`] tells the caller the same: check it to fail the request too.
pub fn record_response(span: &Span, response: &MessageResponse) {
    if let Some(error_type) = response.error_type() {
        record_error(span, error_type);
        return;
    }
    if let Some(id) = response.id.as_deref().filter(|s| !s.is_empty()) {
        span.record(RESPONSE_ID, id);
    }
    if let Some(model) = response.model.as_deref().filter(|s| !s.is_empty()) {
        span.record(RESPONSE_MODEL, model);
    }
    if let Some(usage) = &response.usage {
        usage.record_into(span);
    }
}

/// Records that the call failed: `error.type = error_type` (the API's error type such as `overloaded_error`,
/// or your own for a transport failure) and `otel.status_code = "ERROR"`. The call is counted as failed, and
/// as unmetered if no usage was recorded.
pub fn record_error(span: &Span, error_type: &str) {
    span.record(ERROR_TYPE, if error_type.is_empty() { "error" } else { error_type });
    span.record(STATUS_CODE, "ERROR");
}

/// The Anthropic error type the API documents for an HTTP status, for when an error body is missing or
/// unreadable: `invalid_request_error` (400), `authentication_error` (401), `billing_error` (402),
/// `permission_error` (403), `not_found_error` (404), `request_too_large` (413), `rate_limit_error` (429),
/// `api_error` (500), `timeout_error` (504), `overloaded_error` (529). Any other status is returned as its
/// number, as the OTel HTTP conventions do for `error.type`.
pub fn error_type_for_status(status: u16) -> Cow<'static, str> {
    Cow::Borrowed(match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        500 => "api_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        other => return Cow::Owned(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;
    use tracing_subscriber::prelude::*;

    use super::*;
    use crate::{CallRecord, TokenMeter};

    fn calls_of(f: impl FnOnce()) -> Vec<CallRecord> {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let sink = calls.clone();
        let meter = TokenMeter::builder().on_call(move |c| sink.lock().push(c.clone())).build();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(meter.layer()), f);
        calls.lock().clone()
    }

    #[test]
    fn span_declares_the_contract_and_a_response_fills_it() {
        let calls = calls_of(|| {
            let span = claude_span("chat", "claude-haiku-4-5", false);
            let response: MessageResponse = serde_json::from_str(
                r#"{"id": "msg_1", "model": "claude-haiku-4-5-20251001", "usage": {"input_tokens": 10,
                    "cache_creation_input_tokens": 300, "cache_creation": {"ephemeral_5m_input_tokens": 100,
                    "ephemeral_1h_input_tokens": 200}, "cache_read_input_tokens": 50, "output_tokens": 70,
                    "output_tokens_details": {"thinking_tokens": 30}, "service_tier": "batch", "speed": "standard"}}"#,
            )
            .unwrap();
            record_response(&span, &response);
        });
        let [call] = &calls[..] else { panic!("{calls:#?}") };
        assert_eq!(call.provider.as_deref(), Some(PROVIDER));
        assert_eq!(call.operation.as_deref(), Some("chat"));
        assert_eq!(call.model.as_deref(), Some("claude-haiku-4-5-20251001"));
        assert_eq!(call.request_id.as_deref(), Some("msg_1"));
        assert_eq!(call.streaming, Some(false));
        assert_eq!(call.service_tier.as_deref(), Some("batch"));
        assert_eq!(call.speed.as_deref(), Some("standard"));
        let t = call.tokens;
        assert_eq!(
            (t.input, t.cache_read, t.cache_write_5m, t.cache_write_1h, t.output, t.reasoning),
            (10, 50, 100, 200, 70, 30)
        );
        assert!(call.metered && !call.outcome.is_error());
        assert!(call.cost.as_ref().is_some_and(|c| c.batch));
    }

    #[test]
    fn an_error_without_usage_is_an_unmetered_failed_call() {
        let calls = calls_of(|| {
            let span = claude_span("chat", "claude-opus-4-6", false);
            record_error(&span, "overloaded_error");
        });
        let [call] = &calls[..] else { panic!("{calls:#?}") };
        assert!(!call.metered);
        assert_eq!(call.outcome.label(), "overloaded_error");
        assert_eq!(call.model.as_deref(), Some("claude-opus-4-6"));
    }

    #[test]
    fn status_codes_map_to_documented_error_types() {
        assert_eq!(error_type_for_status(529), "overloaded_error");
        assert_eq!(error_type_for_status(429), "rate_limit_error");
        assert_eq!(error_type_for_status(418), "418");
    }
}
