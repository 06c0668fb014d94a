//! Anthropic's `usage` object, and the response and error bodies that carry it, as the Messages API returns them.
//!
//! Every field is optional and read leniently: a missing field, a `null`, or a value of the wrong type (a
//! negative or fractional count, a string where a number belongs) leaves that one field `None` and never fails
//! the whole object. Fields the API adds later are ignored.

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use tracing::Span;

use crate::capture::fields::{
    ANTHROPIC_CACHE_READ, ANTHROPIC_CACHE_WRITE, ANTHROPIC_CACHE_WRITE_1H, ANTHROPIC_CACHE_WRITE_5M, ANTHROPIC_INPUT,
    ANTHROPIC_OUTPUT, ANTHROPIC_THINKING, ANTHROPIC_WEB_SEARCH_REQUESTS, INFERENCE_GEO, SERVICE_TIER, SPEED,
};

/// Reads one field leniently: any value that does not fit `T` (including `null`) is `None`.
///
/// Only a syntactically broken document fails; a wrong type in one field costs that field alone.
pub(crate) fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(T::deserialize(value).ok())
}

/// Token usage of one Messages API call, as the API reports it (`usage` in a response, in `message_start` and
/// in `message_delta` stream events).
///
/// Anthropic's `input_tokens` is *uncached* input only: cache reads and cache writes are reported beside it,
/// not inside it. In a stream, the counts are cumulative: a later event's value replaces an earlier one (see
/// [`Usage::update`]).
///
/// ```
/// use tokenmeter::instrument::Usage;
///
/// let usage: Usage = serde_json::from_str(
///     r#"{"input_tokens": 21, "cache_creation_input_tokens": 188086, "cache_read_input_tokens": null,
///         "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 188086},
///         "output_tokens": 393, "service_tier": "standard", "inference_geo": "us"}"#,
/// )
/// .unwrap();
/// assert_eq!(usage.input_tokens, Some(21));
/// assert_eq!(usage.cache_read_input_tokens, None);
/// assert_eq!(usage.cache_creation.unwrap().ephemeral_1h_input_tokens, Some(188086));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    /// Uncached input tokens.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Output tokens (thinking included).
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Input tokens written to the prompt cache, both lifetimes.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the prompt cache.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Cache writes split by cache lifetime.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<CacheCreation>,
    /// Server-side tool invocations (web search, web fetch).
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub server_tool_use: Option<ServerToolUse>,
    /// The tier that served the request: `standard`, `priority` or `batch` (half price).
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// The inference speed: `fast` for fast mode, `standard` otherwise.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub speed: Option<String>,
    /// Where inference ran: `us` for US-only inference (billed at 1.1x), `global`, or `not_available` on models
    /// without the choice.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub inference_geo: Option<String>,
    /// A breakdown of the output tokens.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub output_tokens_details: Option<OutputTokensDetails>,
    /// Each sampling iteration of the request, when server-side compaction ran during it: a `compaction`
    /// iteration (the summary, on the request's model) and the `message` ones. The top-level counts leave the
    /// compaction iterations out, though they are billed: [`record_into`](Self::record_into) adds them.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub iterations: Option<Vec<UsageIteration>>,
}

/// One sampling iteration of a request (`usage.iterations[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageIteration {
    /// `compaction` or `message` (other kinds are read and not added: their billing is not known here).
    #[serde(rename = "type", deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Uncached input tokens of the iteration.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Output tokens of the iteration.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Cache writes of the iteration, both lifetimes.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Cache reads of the iteration.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Cache writes of the iteration by lifetime.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<CacheCreation>,
}

impl UsageIteration {
    /// A `compaction` iteration: billed, and left out of the top-level counts.
    pub fn is_compaction(&self) -> bool {
        self.kind.as_deref() == Some("compaction")
    }
}

/// Cache writes by cache lifetime (`usage.cache_creation`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheCreation {
    /// Tokens written with the 5-minute lifetime (1.25x the input rate).
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub ephemeral_5m_input_tokens: Option<u64>,
    /// Tokens written with the 1-hour lifetime (2x the input rate).
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub ephemeral_1h_input_tokens: Option<u64>,
}

/// Server-side tool invocations (`usage.server_tool_use`). Web searches are billed per search, so
/// [`Usage::record_into`] records them (`server_tool_use.web_search_requests`); web fetches cost only the
/// tokens they bring, so they are read for the caller and not recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerToolUse {
    /// Web search requests made.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub web_search_requests: Option<u64>,
    /// Web fetch requests made.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub web_fetch_requests: Option<u64>,
}

/// A breakdown of output tokens (`usage.output_tokens_details`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutputTokensDetails {
    /// Thinking tokens: a part of `output_tokens`, not added to it.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub thinking_tokens: Option<u64>,
}

// === impl Usage ===

impl Usage {
    /// Records every value this usage holds into `span`, under the capture contract's Anthropic field names
    /// (`input_tokens`, `cache_creation.ephemeral_1h_input_tokens`, `service_tier`, …). Absent values are not
    /// recorded, so a partial usage (a `message_delta` that carries only `output_tokens`) leaves the others as
    /// they were. The [`iterations`](Self::iterations)' compaction steps are added to each kind: record a
    /// stream's usage merged so far ([`update`](Self::update) first), not an event's part, or an event carrying
    /// them without the input count records the compaction's input alone (as [`StreamAccumulator`] does).
    ///
    /// [`StreamAccumulator`]: super::StreamAccumulator
    ///
    /// The span must declare those fields (as [`claude_span`](super::claude_span) does); a field it does not
    /// declare is silently skipped by `tracing`.
    pub fn record_into(&self, span: &Span) {
        let count = |name: &str, value: Option<u64>| {
            if let Some(v) = value {
                span.record(name, v);
            }
        };
        // The compaction iterations' counts, added to each kind (the top-level counts leave them out).
        let compactions = || self.iterations.iter().flatten().filter(|i| i.is_compaction());
        let with = |top: Option<u64>, of: fn(&UsageIteration) -> Option<u64>| {
            compactions().filter_map(of).fold(top, |sum, n| Some(sum.unwrap_or(0).saturating_add(n)))
        };
        count(ANTHROPIC_INPUT, with(self.input_tokens, |i| i.input_tokens));
        count(ANTHROPIC_CACHE_READ, with(self.cache_read_input_tokens, |i| i.cache_read_input_tokens));
        let top = self.cache_creation.unwrap_or_default();
        if compactions().next().is_none() {
            count(ANTHROPIC_CACHE_WRITE, self.cache_creation_input_tokens);
            count(ANTHROPIC_CACHE_WRITE_5M, top.ephemeral_5m_input_tokens);
            count(ANTHROPIC_CACHE_WRITE_1H, top.ephemeral_1h_input_tokens);
        } else {
            // Each part's writes as the larger of its total and its split, so that a total given by one part and
            // a split by another both count (capture counts a total beyond the split as 5-minute writes).
            let writes = |total: Option<u64>, split: Option<CacheCreation>| {
                let split = split.unwrap_or_default();
                let parts = [split.ephemeral_5m_input_tokens, split.ephemeral_1h_input_tokens];
                let split_sum = parts.iter().flatten().fold(0u64, |a, &b| a.saturating_add(b));
                let any = total.is_some() || parts.iter().any(Option::is_some);
                any.then(|| total.unwrap_or(0).max(split_sum))
            };
            let total = compactions().map(|i| writes(i.cache_creation_input_tokens, i.cache_creation)).fold(
                writes(self.cache_creation_input_tokens, self.cache_creation),
                |sum, part| match (sum, part) {
                    (Some(a), Some(b)) => Some(a.saturating_add(b)),
                    (a, b) => a.or(b),
                },
            );
            count(ANTHROPIC_CACHE_WRITE, total);
            count(
                ANTHROPIC_CACHE_WRITE_5M,
                with(top.ephemeral_5m_input_tokens, |i| i.cache_creation?.ephemeral_5m_input_tokens),
            );
            count(
                ANTHROPIC_CACHE_WRITE_1H,
                with(top.ephemeral_1h_input_tokens, |i| i.cache_creation?.ephemeral_1h_input_tokens),
            );
        }
        count(ANTHROPIC_OUTPUT, with(self.output_tokens, |i| i.output_tokens));
        if let Some(d) = &self.output_tokens_details {
            count(ANTHROPIC_THINKING, d.thinking_tokens);
        }
        if let Some(s) = &self.server_tool_use {
            count(ANTHROPIC_WEB_SEARCH_REQUESTS, s.web_search_requests);
        }
        if let Some(tier) = self.service_tier.as_deref().filter(|t| !t.is_empty()) {
            span.record(SERVICE_TIER, tier);
        }
        if let Some(speed) = self.speed.as_deref().filter(|s| !s.is_empty()) {
            span.record(SPEED, speed);
        }
        if let Some(geo) = self.inference_geo.as_deref().filter(|g| !g.is_empty()) {
            span.record(INFERENCE_GEO, geo);
        }
    }

    /// Applies a later report of the same call's usage: each value `newer` holds replaces this one's; values it
    /// lacks are kept. Streamed usage is cumulative, so this is never a sum.
    pub fn update(&mut self, newer: &Usage) {
        fn take<T: Clone>(slot: &mut Option<T>, newer: &Option<T>) {
            if newer.is_some() {
                slot.clone_from(newer);
            }
        }
        take(&mut self.input_tokens, &newer.input_tokens);
        take(&mut self.output_tokens, &newer.output_tokens);
        take(&mut self.cache_creation_input_tokens, &newer.cache_creation_input_tokens);
        take(&mut self.cache_read_input_tokens, &newer.cache_read_input_tokens);
        if let Some(n) = &newer.cache_creation {
            let c = self.cache_creation.get_or_insert_with(CacheCreation::default);
            take(&mut c.ephemeral_5m_input_tokens, &n.ephemeral_5m_input_tokens);
            take(&mut c.ephemeral_1h_input_tokens, &n.ephemeral_1h_input_tokens);
        }
        if let Some(n) = &newer.server_tool_use {
            let s = self.server_tool_use.get_or_insert_with(ServerToolUse::default);
            take(&mut s.web_search_requests, &n.web_search_requests);
            take(&mut s.web_fetch_requests, &n.web_fetch_requests);
        }
        take(&mut self.service_tier, &newer.service_tier);
        take(&mut self.speed, &newer.speed);
        take(&mut self.inference_geo, &newer.inference_geo);
        take(&mut self.iterations, &newer.iterations);
        if let Some(n) = &newer.output_tokens_details {
            let d = self.output_tokens_details.get_or_insert_with(OutputTokensDetails::default);
            take(&mut d.thinking_tokens, &n.thinking_tokens);
        }
    }

    /// True when no token count, and no web search count, is present (an empty or all-`null` usage object).
    pub fn is_empty(&self) -> bool {
        let split = self.cache_creation.unwrap_or_default();
        let details = self.output_tokens_details.unwrap_or_default();
        let tools = self.server_tool_use.unwrap_or_default();
        [
            self.input_tokens,
            self.output_tokens,
            self.cache_creation_input_tokens,
            self.cache_read_input_tokens,
            split.ephemeral_5m_input_tokens,
            split.ephemeral_1h_input_tokens,
            details.thinking_tokens,
            tools.web_search_requests,
        ]
        .iter()
        .all(Option::is_none)
    }
}

// === response bodies ===

/// The parts of a Messages API response (a `message` object) that metering reads: id, model, stop reason,
/// usage. The content is not part of this type: deserializing a response into it skips the text.
///
/// The same shape is the `message` of a `message_start` stream event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageResponse {
    /// The object's type: `message`; `error` when a gateway answered a 2xx status with an error body, which
    /// [`record_response`](super::record_response) records as a failed call.
    #[serde(rename = "type", deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The error of such an error body.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    /// The message id (`msg_…`), recorded as `gen_ai.response.id`.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The model that served the request (often a dated id), recorded as `gen_ai.response.model`.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Why generation stopped (`end_turn`, `max_tokens`, `tool_use`, …).
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// Token usage.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl MessageResponse {
    /// The error type a body that is not a message fails its call with: an error body's type (`"type":
    /// "error"`, which some gateways send with a 2xx status, or an `error` object on a body with no message
    /// type, id or usage; `error` when it names none), or
    /// `invalid_response` for anything else without an id or usage (`{}`, `[]`); `None` for a message.
    /// [`record_response`](super::record_response) records it on the span; a client should fail the request
    /// too.
    pub fn error_type(&self) -> Option<&str> {
        // A message (its type, id or usage) with an `error` object beside it, as some gateways add, was billed.
        let message = self.kind.as_deref() == Some("message") || self.id.is_some() || self.usage.is_some();
        if self.kind.as_deref() == Some("error") || (self.error.is_some() && !message) {
            return Some(self.error.as_ref().and_then(|e| e.error_type.as_deref()).unwrap_or("error"));
        }
        if self.kind.as_deref() != Some("message") && self.id.is_none() && self.usage.is_none() {
            return Some("invalid_response");
        }
        None
    }
}

/// An error body: `{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
/// "request_id": "req_…"}`. Also the payload of an `error` stream event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorResponse {
    /// The error.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    /// The API's request id (`req_…`), for support requests.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The `error` object of an [`ErrorResponse`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiError {
    /// The error type (`invalid_request_error`, `rate_limit_error`, `overloaded_error`, …): recorded as
    /// `error.type`.
    #[serde(rename = "type", deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// A human-readable message. Never recorded on the span.
    #[serde(deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ErrorResponse {
    /// The error type, when the body names a non-empty one.
    pub fn error_type(&self) -> Option<&str> {
        self.error.as_ref().and_then(|e| e.error_type.as_deref()).filter(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Usage {
        serde_json::from_str(json).expect("usage parses")
    }

    #[test]
    fn full_usage_as_documented() {
        let u = parse(
            r#"{"input_tokens": 2095, "output_tokens": 503, "cache_creation_input_tokens": 2051,
                "cache_read_input_tokens": 0, "cache_creation": {"ephemeral_5m_input_tokens": 2051,
                "ephemeral_1h_input_tokens": 0}, "server_tool_use": {"web_search_requests": 1},
                "service_tier": "standard"}"#,
        );
        assert_eq!(u.input_tokens, Some(2095));
        assert_eq!(u.output_tokens, Some(503));
        assert_eq!(u.cache_creation_input_tokens, Some(2051));
        assert_eq!(u.cache_read_input_tokens, Some(0));
        assert_eq!(
            u.cache_creation,
            Some(CacheCreation { ephemeral_5m_input_tokens: Some(2051), ephemeral_1h_input_tokens: Some(0) })
        );
        assert_eq!(u.server_tool_use.unwrap().web_search_requests, Some(1));
        assert_eq!(u.service_tier.as_deref(), Some("standard"));
        assert_eq!(u.speed, None);
    }

    #[test]
    fn missing_fields_are_none() {
        let u = parse(r#"{"output_tokens": 15}"#);
        assert_eq!(u, Usage { output_tokens: Some(15), ..Usage::default() });
        assert_eq!(parse("{}"), Usage::default());
        assert!(parse("{}").is_empty());
    }

    #[test]
    fn nulls_are_none() {
        let u = parse(
            r#"{"input_tokens": null, "output_tokens": 3, "cache_creation_input_tokens": null,
                "cache_read_input_tokens": null, "cache_creation": null, "server_tool_use": null,
                "service_tier": null, "speed": null, "output_tokens_details": null}"#,
        );
        assert_eq!(u, Usage { output_tokens: Some(3), ..Usage::default() });
        let nested =
            parse(r#"{"cache_creation": {"ephemeral_5m_input_tokens": null, "ephemeral_1h_input_tokens": 7}}"#);
        assert_eq!(nested.cache_creation.unwrap().ephemeral_5m_input_tokens, None);
        assert_eq!(nested.cache_creation.unwrap().ephemeral_1h_input_tokens, Some(7));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let u = parse(
            r#"{"input_tokens": 1, "inference_geo": "not_available", "iterations": [{"input_tokens": 9}],
                "cache_creation": {"ephemeral_5m_input_tokens": 2, "ephemeral_24h_input_tokens": 5},
                "output_tokens_details": {"thinking_tokens": 40, "future": true}, "speed": "fast"}"#,
        );
        assert_eq!(u.input_tokens, Some(1));
        assert_eq!(u.cache_creation.unwrap().ephemeral_5m_input_tokens, Some(2));
        assert_eq!(u.output_tokens_details.unwrap().thinking_tokens, Some(40));
        assert_eq!(u.speed.as_deref(), Some("fast"));
    }

    #[test]
    fn a_wrong_type_costs_only_its_own_field() {
        let u = parse(
            r#"{"input_tokens": -5, "output_tokens": 2.5, "cache_read_input_tokens": "12",
                "cache_creation": 4, "service_tier": 1, "cache_creation_input_tokens": 30}"#,
        );
        assert_eq!(u, Usage { cache_creation_input_tokens: Some(30), ..Usage::default() });
    }

    #[test]
    fn update_replaces_never_sums() {
        let mut u = parse(
            r#"{"input_tokens": 472, "cache_read_input_tokens": 1000, "output_tokens": 1,
                "cache_creation": {"ephemeral_5m_input_tokens": 10}, "service_tier": "standard"}"#,
        );
        u.update(&parse(r#"{"output_tokens": 120}"#));
        u.update(&parse(
            r#"{"output_tokens": 480, "cache_creation": {"ephemeral_1h_input_tokens": 4}, "output_tokens_details": {"thinking_tokens": 90}}"#,
        ));
        assert_eq!(u.input_tokens, Some(472));
        assert_eq!(u.cache_read_input_tokens, Some(1000));
        assert_eq!(u.output_tokens, Some(480));
        assert_eq!(
            u.cache_creation,
            Some(CacheCreation { ephemeral_5m_input_tokens: Some(10), ephemeral_1h_input_tokens: Some(4) })
        );
        assert_eq!(u.output_tokens_details.unwrap().thinking_tokens, Some(90));
        assert_eq!(u.service_tier.as_deref(), Some("standard"));
    }

    #[test]
    fn response_and_error_bodies() {
        let r: MessageResponse = serde_json::from_str(
            r#"{"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
                "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 2, "output_tokens": 3}}"#,
        )
        .unwrap();
        assert_eq!(r.id.as_deref(), Some("msg_01"));
        assert_eq!(r.usage.unwrap().output_tokens, Some(3));
        let e: ErrorResponse = serde_json::from_str(
            r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}, "request_id": "req_1"}"#,
        )
        .unwrap();
        assert_eq!(e.error_type(), Some("overloaded_error"));
        let bare: ErrorResponse = serde_json::from_str(r#"{"error": {"type": ""}}"#).unwrap();
        assert_eq!(bare.error_type(), None);
    }
}
