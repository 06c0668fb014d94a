//! [`StreamAccumulator`]: reads a Messages API event stream and records its usage into the call span as it
//! arrives.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tracing::Span;

use crate::capture::fields::{RESPONSE_ID, RESPONSE_MODEL, TIME_TO_FIRST_CHUNK};
use crate::clock::Clock;

use super::sse::{MAX_EVENT_BYTES, SseDecoder, SseEvent};
use super::usage::{ErrorResponse, MessageResponse, Usage, lenient};
use super::{INCOMPLETE_STREAM, record_error};

/// How a stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamOutcome {
    /// `message_stop` arrived: the message is whole.
    Completed,
    /// The API sent an `error` event (for example `overloaded_error`), or the caller reported one with
    /// [`StreamAccumulator::fail`].
    Error {
        /// The error type, as recorded in `error.type`.
        error_type: String,
    },
    /// The stream ended (or was dropped) before `message_stop`, with no error event: recorded as
    /// `error.type = "stream_incomplete"` ([`INCOMPLETE_STREAM`]).
    Incomplete,
}

/// What a stream said, once it is over. Holds no text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    /// How the stream ended.
    pub outcome: StreamOutcome,
    /// The message id from `message_start`.
    pub response_id: Option<String>,
    /// The model from `message_start`.
    pub model: Option<String>,
    /// The stop reason from the last `message_delta`.
    pub stop_reason: Option<String>,
    /// The usage as last reported (cumulative values, later replacing earlier).
    pub usage: Usage,
    /// Time from the accumulator's creation to the first `content_block_delta`.
    pub time_to_first_token: Option<Duration>,
    /// Events seen.
    pub events: u64,
    /// Events whose data was not the JSON their type calls for, and lines or events dropped for size.
    pub malformed_events: u64,
}

impl StreamSummary {
    /// True when the stream reached `message_stop` without an error.
    pub fn is_complete(&self) -> bool {
        self.outcome == StreamOutcome::Completed
    }
}

/// Where time to first token is measured from.
#[derive(Debug)]
enum Stopwatch {
    Monotonic(Instant),
    Clock { clock: Arc<dyn Clock>, start_nanos: i64 },
}

impl Stopwatch {
    fn elapsed(&self) -> Duration {
        match self {
            Stopwatch::Monotonic(start) => start.elapsed(),
            Stopwatch::Clock { clock, start_nanos } => {
                let nanos = clock.monotonic_nanos().saturating_sub(*start_nanos).max(0);
                Duration::from_nanos(nanos as u64)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Open,
    Completed,
    Failed(String),
}

/// Reads a Messages API event stream (`"stream": true`) and records into the call span, as values arrive:
///
/// | event | recorded |
/// |---|---|
/// | `message_start` | `gen_ai.response.id`, `gen_ai.response.model`, the usage it carries (input, cache reads and writes, output so far, service tier) |
/// | first `content_block_delta` | `gen_ai.response.time_to_first_chunk` (seconds since the accumulator was made) |
/// | `message_delta` | the usage it carries: cumulative, so each value *replaces* the earlier one (except a `0` for an input, cache or web search count already reported as more, which some Anthropic-compatible gateways send: it is ignored) |
/// | `error` | `error.type` (e.g. `overloaded_error`) and `otel.status_code = "ERROR"` |
/// | `message_stop` | nothing: marks the stream complete |
///
/// When the accumulator is finished ([`finish`](Self::finish)) or dropped before `message_stop` and without an
/// error, the stream was cut off: it records `error.type = "stream_incomplete"`, so the call is counted as
/// failed with whatever usage had arrived (or as an unmetered call if none had).
///
/// Make it just before sending the request, so time to first token includes the request's round trip. It
/// never panics on malformed input: bad lines, non-JSON data and `null`s are counted and skipped. It keeps
/// no prompt or response text (its `Debug` shows counts and state, never the bytes its decoder holds).
///
/// ```
/// use tokenmeter::instrument::{StreamAccumulator, claude_span};
///
/// let span = claude_span("chat", "claude-haiku-4-5", true);
/// let mut stream = StreamAccumulator::new(&span);
/// stream.push_bytes(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\
///     \"model\":\"claude-haiku-4-5\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n");
/// stream.push_bytes(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n");
/// stream.push_bytes(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
/// let summary = stream.finish();
/// assert!(summary.is_complete());
/// assert_eq!(summary.usage.output_tokens, Some(15));
/// ```
pub struct StreamAccumulator {
    span: Span,
    stopwatch: Stopwatch,
    decoder: SseDecoder,
    state: State,
    response_id: Option<String>,
    model: Option<String>,
    stop_reason: Option<String>,
    usage: Usage,
    ttft: Option<Duration>,
    events: u64,
    malformed: u64,
    finished: bool,
    /// What the body began with: an event stream, or (`{` first) one JSON body sent as `text/event-stream` (a
    /// gateway that ignored `"stream": true` but kept the header), kept up to [`MAX_EVENT_BYTES`] and read as
    /// [`whole_response`](Self::whole_response) reads one once it is whole (or at the end). Decoded as events,
    /// it gave none: the call ended as `stream_incomplete`, its usage lost.
    body: Body,
}

/// See [`StreamAccumulator::body`].
enum Body {
    /// Nothing but white space (or a byte-order mark) yet.
    Unknown,
    Events,
    /// A JSON body coming in: the bytes so far, and where the scan for its end has got to.
    Json(Vec<u8>, JsonEnd),
    /// A JSON body past [`MAX_EVENT_BYTES`]: not read.
    TooLarge,
    /// A JSON body read whole; what follows it is not read.
    Read,
}

/// Finds where a JSON body's top-level object ends, a chunk at a time, so that each byte is looked at once (a
/// parse of the whole body on every chunk that ended in `}` took quadratic time on a body trickled in small
/// chunks whose every `}` sat inside a string).
#[derive(Default)]
struct JsonEnd {
    /// Bytes of the body already scanned.
    scanned: usize,
    /// Open objects and arrays.
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// The top-level value has closed (or the scan gave up): nothing more to look for.
    done: bool,
}

impl JsonEnd {
    /// Scans `body`'s new bytes; true when the top-level object closed in them.
    fn closes(&mut self, body: &[u8]) -> bool {
        if self.done {
            return false;
        }
        for (i, &b) in body.iter().enumerate().skip(self.scanned) {
            if self.in_string {
                match b {
                    _ if self.escaped => self.escaped = false,
                    b'\\' => self.escaped = true,
                    b'"' => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        self.done = true;
                        self.scanned = i + 1;
                        return true;
                    }
                }
                _ => {}
            }
        }
        self.scanned = body.len();
        false
    }
}

/// The parts of stream event payloads read here; everything else (text deltas included) is skipped.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Payload {
    #[serde(rename = "type", deserialize_with = "lenient")]
    kind: Option<String>,
    #[serde(deserialize_with = "lenient")]
    message: Option<MessageResponse>,
    #[serde(deserialize_with = "lenient")]
    usage: Option<Usage>,
    #[serde(deserialize_with = "lenient")]
    delta: Option<MessageDelta>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MessageDelta {
    #[serde(deserialize_with = "lenient")]
    stop_reason: Option<String>,
}

impl StreamAccumulator {
    /// An accumulator recording into `span`, measuring time to first token from now on a monotonic clock.
    pub fn new(span: &Span) -> Self {
        Self::with_stopwatch(span, Stopwatch::Monotonic(Instant::now()))
    }

    /// An accumulator measuring time to first token on `clock` (a [`ManualClock`](crate::ManualClock) in
    /// tests), from its current time.
    pub fn with_clock(span: &Span, clock: impl Clock) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(clock);
        let start_nanos = clock.monotonic_nanos();
        Self::with_stopwatch(span, Stopwatch::Clock { clock, start_nanos })
    }

    fn with_stopwatch(span: &Span, stopwatch: Stopwatch) -> Self {
        StreamAccumulator {
            span: span.clone(),
            stopwatch,
            decoder: SseDecoder::new(),
            state: State::Open,
            response_id: None,
            model: None,
            stop_reason: None,
            usage: Usage::default(),
            ttft: None,
            events: 0,
            malformed: 0,
            finished: false,
            body: Body::Unknown,
        }
    }

    /// Whether `chunk` goes to the event decoder (false: it was kept as part of a JSON body).
    fn is_events(&mut self, chunk: &[u8]) -> bool {
        if let Body::Unknown = self.body {
            let start = super::sse::strip_bom(chunk).iter().find(|b| !b.is_ascii_whitespace());
            match start {
                None => return true,
                Some(b'{') => self.body = Body::Json(Vec::new(), JsonEnd::default()),
                Some(_) => self.body = Body::Events,
            }
        }
        match &mut self.body {
            Body::Json(kept, end) if kept.len() + chunk.len() <= MAX_EVENT_BYTES => {
                kept.extend_from_slice(chunk);
                // Read as soon as it is whole: the caller's loop sees `is_complete()` and stops reading, and a
                // `fail("timeout")` from a gateway that kept the connection open after the body no longer loses
                // a call that was answered and billed. Parsed once, when its object closes (a body that is not
                // JSON after all is left to the end of the stream, as one cut short is).
                if end.closes(kept)
                    && serde_json::from_slice::<serde::de::IgnoredAny>(super::sse::strip_bom(kept)).is_ok()
                {
                    let body = std::mem::take(kept);
                    self.body = Body::Read;
                    self.whole_response(&body);
                }
                false
            }
            Body::Json(..) | Body::TooLarge => {
                self.body = Body::TooLarge;
                false
            }
            Body::Read => false,
            Body::Unknown | Body::Events => true,
        }
    }

    /// Feeds raw bytes of the response body, in chunks of any size. For callers that also need the events
    /// (to show the text), [`push_events`](Self::push_events).
    pub fn push_bytes(&mut self, chunk: &[u8]) {
        if !self.is_events(chunk) {
            return;
        }
        for event in self.decoder.push(chunk) {
            self.observe(&event);
        }
        self.stop_before_its_blank_line();
    }

    /// Completes the stream on a `message_stop` whose data line has ended, before the blank line that dispatches
    /// it: the stream's last event carries nothing more, and a proxy that holds the connection open without
    /// sending that blank line left `is_done` false until the read timed out, and the call failed as `timeout`
    /// minutes after it was answered.
    fn stop_before_its_blank_line(&mut self) {
        if self.state == State::Open
            && let Some(("message_stop", data)) = self.decoder.pending()
            && serde_json::from_str::<serde::de::IgnoredAny>(data).is_ok()
        {
            self.state = State::Completed;
        }
    }

    /// As [`push_bytes`](Self::push_bytes), and returns the events the chunk completed, in order, for the
    /// caller to read (the text of `content_block_delta` events, to show the user). Events dropped for size
    /// count in [`StreamSummary::malformed_events`]. A `message_stop` completes the stream once its data line has
    /// ended, before the blank line that ends the event, which is returned only when that line comes: a relay
    /// that forwards the events and stops at [`is_done`](Self::is_done) sends its own end.
    pub fn push_events(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        if !self.is_events(chunk) {
            return Vec::new();
        }
        let events = self.decoder.push(chunk);
        for event in &events {
            self.observe(event);
        }
        self.stop_before_its_blank_line();
        events
    }

    /// Reads one event decoded elsewhere (by the caller's own [`SseDecoder`]). What that decoder dropped for
    /// size is not seen here, so not counted in [`StreamSummary::malformed_events`]; [`push_events`](Self::push_events)
    /// decodes and counts both.
    pub fn observe(&mut self, event: &SseEvent) {
        self.events += 1;
        // The SSE event name says what the event is; the data's `type` is read only when the name is missing,
        // so text deltas are never parsed.
        let named = !event.event.is_empty() && event.event != "message";
        // Keep-alives and OpenAI's end marker, which some Anthropic-compatible gateways send: not malformed.
        if !named && matches!(event.data.trim(), "" | "[DONE]") {
            return;
        }
        let wants_payload = !named || matches!(&*event.event, "message_start" | "message_delta");
        let mut payload = None;
        if wants_payload {
            match serde_json::from_str::<Payload>(&event.data) {
                Ok(p) => payload = Some(p),
                Err(_) => {
                    self.malformed += 1;
                    return;
                }
            }
        }
        let data_kind = payload.as_mut().and_then(|p| p.kind.take());
        let kind = match (named, data_kind.as_deref()) {
            (true, _) => &*event.event,
            (false, Some(kind)) => kind,
            // An object without a type (`{}` as a keep-alive): nothing to read, nothing wrong; any other JSON
            // (an array, a number) is not an event.
            (false, None) => {
                self.malformed += u64::from(!event.data.trim_start().starts_with('{'));
                return;
            }
        };
        match kind {
            "message_start" => {
                let Some(message) = payload.and_then(|p| p.message) else { return };
                // The id goes in before any usage: capture reads a new id on a span that already holds usage as
                // the start of another call.
                if let Some(id) = message.id.filter(|s| !s.is_empty()) {
                    self.span.record(RESPONSE_ID, id.as_str());
                    self.response_id = Some(id);
                }
                if let Some(model) = message.model.filter(|s| !s.is_empty()) {
                    self.span.record(RESPONSE_MODEL, model.as_str());
                    self.model = Some(model);
                }
                if let Some(usage) = message.usage {
                    self.apply_usage(&usage);
                }
            }
            "message_delta" => {
                let Some(p) = payload else { return };
                if let Some(reason) = p.delta.and_then(|d| d.stop_reason) {
                    self.stop_reason = Some(reason);
                }
                if let Some(usage) = p.usage {
                    self.apply_usage(&usage);
                }
            }
            // Not for an event recovered at the end (its closing blank line never came): when its data arrived
            // is not known, and the end may be a read timeout minutes later.
            "content_block_delta" if self.ttft.is_none() && !self.finished => {
                let ttft = self.stopwatch.elapsed();
                self.span.record(TIME_TO_FIRST_CHUNK, ttft.as_secs_f64());
                self.ttft = Some(ttft);
            }
            "error" => {
                // An error event fails the call even when its body is unreadable.
                let error_type = match serde_json::from_str::<ErrorResponse>(&event.data) {
                    Ok(body) => body.error_type().unwrap_or("error").to_owned(),
                    Err(_) => {
                        self.malformed += 1;
                        String::from("error")
                    }
                };
                self.fail(&error_type);
            }
            "message_stop" if self.state == State::Open => self.state = State::Completed,
            // ping, content_block_start / _stop, later deltas, and event types added later.
            _ => {}
        }
    }

    fn apply_usage(&mut self, usage: &Usage) {
        let mut usage = usage.clone();
        ignore_zero_restatements(&mut usage, &self.usage);
        self.usage.update(&usage);
        // The whole usage so far, not this event's part: a `message_delta` carrying the compaction iterations
        // but no input count adds them to the `message_start`'s input, not to nothing.
        self.usage.record_into(&self.span);
    }

    /// Records that the call failed (a transport error, a status the caller treats as failure): `error.type`
    /// and `otel.status_code = "ERROR"`. The first failure wins: later ones, and the "stream_incomplete" of
    /// [`finish`](Self::finish), do not replace it. After `message_stop` the call is complete and this does
    /// nothing.
    pub fn fail(&mut self, error_type: &str) {
        if self.state != State::Open {
            return;
        }
        let error_type = if error_type.is_empty() { "error" } else { error_type };
        record_error(&self.span, error_type);
        self.state = State::Failed(error_type.to_owned());
    }

    /// Reads a reply that is not an event stream: a streaming request answered with one JSON body (a gateway
    /// that ignores `"stream": true`, or an error body sent with a 2xx status). Check the response's
    /// `content-type` (`text/event-stream` for a stream) and hand anything else here whole: pushed as bytes,
    /// it would decode to no events and end as `stream_incomplete`, its usage and error type lost.
    ///
    /// A message body is recorded as [`record_response`](super::record_response) records it, and completes
    /// the stream; an error body fails it with its error type. A body that is an event stream after all (a
    /// proxy that dropped or rewrote the `content-type`: it starts with an `event:`, `data:`, `id:`, `retry:`
    /// or comment line) is read as pushed bytes; anything else fails the stream as `invalid_response`. After the
    /// stream has completed or failed this does nothing.
    pub fn whole_response(&mut self, body: &[u8]) {
        if self.state != State::Open {
            return;
        }
        // A byte-order mark is not part of the JSON (serde_json refuses it).
        let Ok(response) = serde_json::from_slice::<MessageResponse>(super::sse::strip_bom(body)) else {
            if looks_like_event_stream(body) {
                self.push_bytes(body);
            } else {
                self.fail("invalid_response");
            }
            return;
        };
        if let Some(error_type) = response.error_type() {
            self.fail(error_type);
            return;
        }
        super::record_response(&self.span, &response);
        self.response_id = response.id.filter(|s| !s.is_empty());
        self.model = response.model.filter(|s| !s.is_empty());
        self.stop_reason = response.stop_reason;
        if let Some(usage) = response.usage {
            self.usage.update(&usage);
        }
        self.state = State::Completed;
    }

    /// True once `message_stop` has arrived without an error.
    pub fn is_complete(&self) -> bool {
        self.state == State::Completed
    }

    /// True once the stream has completed or failed (an `error` event, an error body, [`fail`](Self::fail)):
    /// nothing read after it changes the call, so a read loop can stop (a proxy that holds the connection open
    /// would otherwise keep it, and the call's duration, waiting for the read timeout).
    pub fn is_done(&self) -> bool {
        self.state != State::Open
    }

    /// The usage as last reported.
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    /// Time to first token, once the first `content_block_delta` has arrived.
    pub fn time_to_first_token(&self) -> Option<Duration> {
        self.ttft
    }

    /// Ends the stream: records `error.type = "stream_incomplete"` if it never completed or failed, and returns
    /// what it said. Dropping the accumulator does the same, without the summary.
    pub fn finish(mut self) -> StreamSummary {
        self.conclude();
        StreamSummary {
            outcome: match &self.state {
                State::Completed => StreamOutcome::Completed,
                State::Failed(t) if t == INCOMPLETE_STREAM => StreamOutcome::Incomplete,
                State::Failed(t) => StreamOutcome::Error { error_type: t.clone() },
                State::Open => StreamOutcome::Incomplete,
            },
            response_id: self.response_id.take(),
            model: self.model.take(),
            stop_reason: self.stop_reason.take(),
            usage: std::mem::take(&mut self.usage),
            time_to_first_token: self.ttft,
            events: self.events,
            malformed_events: self.malformed + self.decoder.dropped(),
        }
    }

    fn conclude(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        // A body cut short (the connection dropped mid-body) is incomplete, as a stream cut short is, not invalid.
        if let Body::Json(body, _) = std::mem::replace(&mut self.body, Body::Events)
            && !serde_json::from_slice::<serde::de::IgnoredAny>(super::sse::strip_bom(&body)).is_err_and(|e| e.is_eof())
        {
            self.whole_response(&body);
        }
        // An event whose closing blank line never came (the connection closed right after its last `data:`
        // line): read it when its data is whole JSON, for the usage it carries (`message_delta`) or the end it
        // marks (`message_stop`); data cut short is left unread, except an `error` event's: the stream ended on
        // an error (a proxy's `502` page as its data), not merely early.
        if let Some(event) = self.decoder.finish()
            && (event.event == "error" || serde_json::from_str::<serde::de::IgnoredAny>(&event.data).is_ok())
        {
            self.observe(&event);
        }
        if self.state == State::Open {
            self.fail(INCOMPLETE_STREAM);
        }
    }
}

impl std::fmt::Debug for StreamAccumulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamAccumulator")
            .field("span", &self.span)
            .field("state", &self.state)
            .field("response_id", &self.response_id)
            .field("model", &self.model)
            .field("usage", &self.usage)
            .field("time_to_first_token", &self.ttft)
            .field("events", &self.events)
            .field("malformed", &self.malformed)
            .field("decoder", &self.decoder)
            .finish_non_exhaustive()
    }
}

impl Drop for StreamAccumulator {
    fn drop(&mut self) {
        self.conclude();
    }
}

/// Input and cache counts are fixed when the request starts: a later `0` for one already reported as more is
/// not a correction but a gateway leaving it out (some Anthropic-compatible gateways send `input_tokens: 0` in
/// `message_delta`), and would zero the call's input cost. Such zeros are dropped; any other later value still
/// replaces the earlier one. Web searches, which only grow during a response, are kept the same way.
fn ignore_zero_restatements(newer: &mut Usage, known: &Usage) {
    fn keep(slot: &mut Option<u64>, known: Option<u64>) {
        if *slot == Some(0) && known.is_some_and(|k| k > 0) {
            *slot = None;
        }
    }
    keep(&mut newer.input_tokens, known.input_tokens);
    keep(&mut newer.cache_creation_input_tokens, known.cache_creation_input_tokens);
    keep(&mut newer.cache_read_input_tokens, known.cache_read_input_tokens);
    if let (Some(n), Some(k)) = (&mut newer.cache_creation, &known.cache_creation) {
        keep(&mut n.ephemeral_5m_input_tokens, k.ephemeral_5m_input_tokens);
        keep(&mut n.ephemeral_1h_input_tokens, k.ephemeral_1h_input_tokens);
    }
    if let (Some(n), Some(k)) = (&mut newer.server_tool_use, &known.server_tool_use) {
        keep(&mut n.web_search_requests, k.web_search_requests);
    }
}

/// Whether a body starts as an event stream does: an `event:`, `data:`, `id:`, `retry:` or comment line (after a
/// byte-order mark and any blank lines, which a stream may open with), which no JSON body does.
fn looks_like_event_stream(body: &[u8]) -> bool {
    let body = super::sse::strip_bom(body);
    let body = &body[body.iter().position(|b| !matches!(b, b'\r' | b'\n')).unwrap_or(body.len())..];
    [&b"event:"[..], b"data:", b"id:", b"retry:", b":"].iter().any(|p| body.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::claude_span;
    use crate::{CallRecord, ManualClock, TokenMeter};
    use chrono::{Duration as ChronoDuration, TimeZone, Utc};
    use parking_lot::Mutex;
    use tracing_subscriber::prelude::*;

    const START: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\
        \"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5-20250929\",\
        \"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"cache_read_input_tokens\":\
        1000,\"output_tokens\":1,\"service_tier\":\"standard\"}}}\n\n";
    const BLOCK_START: &str = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\
        \"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
    const PING: &str = "event: ping\ndata: {\"type\": \"ping\"}\n\n";
    const DELTA_TEXT: &str = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\
        \"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n";
    const MESSAGE_DELTA: &str = "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":\
        {\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n";
    const STOP: &str = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    /// Runs `f` under a meter with a manual clock; returns the one call it recorded.
    fn one_call(f: impl FnOnce(&ManualClock)) -> CallRecord {
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let sink = calls.clone();
        let meter =
            TokenMeter::builder().with_clock(clock.clone()).on_call(move |c| sink.lock().push(c.clone())).build();
        let subscriber = tracing_subscriber::registry().with(meter.layer());
        tracing::subscriber::with_default(subscriber, || f(&clock));
        let mut calls = calls.lock();
        assert_eq!(calls.len(), 1, "{calls:#?}");
        calls.pop().unwrap()
    }

    /// One streamed call on claude-sonnet-4-5: `feed` drives its accumulator; its summary and the call recorded.
    fn streamed(feed: impl FnOnce(&mut StreamAccumulator, &ManualClock)) -> (StreamSummary, CallRecord) {
        let mut summary = None;
        let call = one_call(|clock| {
            let span = claude_span("chat", "claude-sonnet-4-5", true);
            let mut acc = StreamAccumulator::new(&span);
            feed(&mut acc, clock);
            summary = Some(acc.finish());
        });
        (summary.unwrap(), call)
    }

    #[test]
    fn events_without_a_name_are_read_by_their_data_type() {
        // Bedrock's event-stream frames decoded by the caller: the JSON of each chunk, no SSE event name.
        let (summary, call) = streamed(|acc, _| {
            for sse in [START, DELTA_TEXT, MESSAGE_DELTA, STOP] {
                let data = sse.lines().find_map(|l| l.strip_prefix("data: ")).unwrap().to_owned();
                acc.observe(&SseEvent { event: String::new(), data });
            }
        });
        assert!(summary.is_complete());
        assert!(summary.time_to_first_token.is_some());
        assert_eq!(summary.malformed_events, 0);
        assert_eq!((call.tokens.input, call.tokens.cache_read, call.tokens.output), (472, 1000, 15));
        assert_eq!(call.request_id.as_deref(), Some("msg_01"));
    }

    #[test]
    fn a_whole_json_reply_completes_or_fails_the_stream() {
        let whole = |body: &str| {
            streamed(|acc, _| {
                acc.whole_response(body.as_bytes());
                // Once complete or failed, nothing more changes it.
                acc.whole_response(br#"{"type":"error","error":{"type":"api_error"}}"#);
            })
        };
        let message = r#"{"type":"message","id":"msg_w","model":"claude-sonnet-4-5-20250929","stop_reason":"end_turn",
            "usage":{"input_tokens":10,"cache_read_input_tokens":20,"output_tokens":5}}"#;
        // With a byte-order mark before it too (serde_json refuses one: the call read as `invalid_response`).
        let (summary, call) = whole(&format!("\u{feff}{message}"));
        assert!(summary.is_complete() && !call.outcome.is_error(), "{:?}", call.outcome);
        assert_eq!((call.tokens.input, call.tokens.output), (10, 5));
        let (summary, call) = whole(message);
        assert!(summary.is_complete());
        assert_eq!(summary.response_id.as_deref(), Some("msg_w"));
        assert_eq!(summary.stop_reason.as_deref(), Some("end_turn"));
        assert_eq!(summary.usage.output_tokens, Some(5));
        assert_eq!((call.tokens.input, call.tokens.cache_read, call.tokens.output), (10, 20, 5));
        assert!(!call.outcome.is_error() && call.metered);

        let (summary, call) = whole(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#);
        assert_eq!(summary.outcome, StreamOutcome::Error { error_type: "overloaded_error".into() });
        assert_eq!(call.outcome.label(), "overloaded_error");
        assert!(!call.metered);
        for bad in ["<html>502</html>", "{}", "[]"] {
            let (summary, call) = whole(bad);
            assert_eq!(summary.outcome, StreamOutcome::Error { error_type: "invalid_response".into() }, "{bad}");
            assert_eq!(call.outcome.label(), "invalid_response");
        }

        // A message (id, usage) that also carries an empty `error` object, as some gateways add: billed, so
        // metered and not failed.
        let (summary, call) = whole(&message.replace(r#""type":"message","#, r#""type":"message","error":{},"#));
        assert!(summary.is_complete());
        assert_eq!((call.tokens.input, call.tokens.output), (10, 5));
        assert!(!call.outcome.is_error() && call.metered);
    }

    #[test]
    fn a_first_delta_recovered_at_the_end_gives_no_time_to_first_token() {
        // The first delta's data line came, its blank line did not, and the read timed out 600 s later: the
        // end is not when the first token arrived.
        let mut summary = None;
        let call = one_call(|clock| {
            let span = claude_span("chat", "claude-sonnet-4-5", true);
            let mut acc = StreamAccumulator::with_clock(&span, clock.clone());
            acc.push_bytes(START.as_bytes());
            acc.push_bytes(BLOCK_START.as_bytes());
            acc.push_bytes(DELTA_TEXT.trim_end_matches('\n').as_bytes());
            clock.advance(ChronoDuration::seconds(600));
            acc.fail("timeout");
            summary = Some(acc.finish());
        });
        let summary = summary.unwrap();
        assert_eq!(summary.time_to_first_token, None);
        assert_eq!(summary.events, 3, "the recovered delta is still counted as an event");
        assert_eq!(call.time_to_first_token_us, None);
        assert_eq!(call.outcome.label(), "timeout");
    }

    #[test]
    fn a_json_body_sent_as_an_event_stream_completes_once_whole() {
        // A gateway that ignored `"stream": true`, kept `text/event-stream` and the connection open: the body
        // completes the stream as soon as it is whole, so a caller's read loop stops, and a later
        // `fail("timeout")` does not lose a call that was answered (and billed).
        let message = r#"{"type":"message","id":"msg_j","model":"claude-sonnet-4-5-20250929","stop_reason":"end_turn",
            "usage":{"input_tokens":10,"output_tokens":5}}"#;
        let (summary, call) = streamed(|acc, _| {
            let (a, b) = message.as_bytes().split_at(60);
            acc.push_bytes(a);
            assert!(!acc.is_complete());
            acc.push_bytes(b);
            assert!(acc.is_complete());
            acc.push_bytes(b"\r\n");
            acc.fail("timeout");
        });
        assert!(summary.is_complete(), "{:?}", summary.outcome);
        assert_eq!((call.tokens.input, call.tokens.output), (10, 5));
        assert!(!call.outcome.is_error() && call.metered);
        // Nor does a byte-order mark before it keep it from completing (serde_json refuses the mark).
        let (summary, call) = streamed(|acc, _| {
            acc.push_bytes(format!("\u{feff}{message}").as_bytes());
            assert!(acc.is_complete());
            acc.fail("timeout");
        });
        assert!(summary.is_complete(), "{:?}", summary.outcome);
        assert_eq!(call.tokens.output, 5);
        // An error body so sent ends the stream too: `is_done` stops a read loop.
        let (summary, _) = streamed(|acc, _| {
            acc.push_bytes(br#"{"type":"error","error":{"type":"overloaded_error"}}"#);
            assert!(acc.is_done() && !acc.is_complete());
        });
        assert_eq!(summary.outcome, StreamOutcome::Error { error_type: "overloaded_error".into() });
        // A `}` inside a string does not end it early.
        let (summary, call) = streamed(|acc, _| {
            let (a, b) = message.as_bytes().split_at(message.find("end_turn").unwrap());
            acc.push_bytes(a);
            acc.push_bytes(b"x}");
            assert!(!acc.is_complete());
            acc.push_bytes(&b[1..]);
        });
        assert!(summary.is_complete(), "{:?}", summary.outcome);
        assert_eq!(call.tokens.output, 5);
    }

    #[test]
    fn a_json_body_trickled_a_byte_at_a_time_completes_at_its_last_byte() {
        // Its end is found by one scan of the bytes: braces and brackets inside strings, escaped quotes and
        // escaped backslashes do not end it, and it completes with the byte that closes it, not later.
        let message = r#"{"type":"message","id":"msg_\\","content":[{"type":"text","text":"}]\"}{ \\"}],
            "model":"claude-sonnet-4-5-20250929","usage":{"input_tokens":10,"output_tokens":5}}"#;
        let (summary, call) = streamed(|acc, _| {
            let bytes = message.as_bytes();
            for (i, b) in bytes.iter().enumerate() {
                assert!(!acc.is_done(), "done before byte {i} of {}", bytes.len());
                acc.push_bytes(std::slice::from_ref(b));
            }
            assert!(acc.is_complete());
            acc.fail("timeout");
        });
        assert!(summary.is_complete(), "{:?}", summary.outcome);
        assert_eq!((call.tokens.input, call.tokens.output), (10, 5));
        assert_eq!(summary.response_id.as_deref(), Some("msg_\\"));
        // A body with a byte-order mark, cut short: incomplete, as without the mark (it read as invalid).
        let (summary, call) = streamed(|acc, _| acc.push_bytes(format!("\u{feff}{}", &message[..40]).as_bytes()));
        assert_eq!(summary.outcome, StreamOutcome::Incomplete);
        assert_eq!(call.outcome.label(), "stream_incomplete");
    }

    #[test]
    fn a_json_body_sent_as_an_event_stream_is_read_whole() {
        // A gateway that ignored `"stream": true` but answered with `text/event-stream`: the caller pushed the
        // body as stream bytes, which decode to no event, and the call ended as `stream_incomplete`, its usage lost.
        let message = r#"{"type":"message","id":"msg_j","model":"claude-sonnet-4-5-20250929","stop_reason":"end_turn",
            "usage":{"input_tokens":10,"output_tokens":5}}"#;
        let (summary, call) = streamed(|acc, _| {
            let (a, b) = message.as_bytes().split_at(40);
            acc.push_bytes(b"\r\n");
            assert!(acc.push_events(a).is_empty());
            acc.push_bytes(b);
        });
        assert!(summary.is_complete(), "{:?}", summary.outcome);
        assert_eq!((call.tokens.input, call.tokens.output), (10, 5));
        assert_eq!(summary.response_id.as_deref(), Some("msg_j"));
        // An error body so sent fails the call with its type.
        let (summary, call) =
            streamed(|acc, _| acc.push_bytes(br#"{"type":"error","error":{"type":"overloaded_error"}}"#));
        assert_eq!(summary.outcome, StreamOutcome::Error { error_type: "overloaded_error".into() });
        assert_eq!(call.outcome.label(), "overloaded_error");
        // Cut short (the connection dropped mid-body): incomplete, as a stream cut short is, not invalid.
        let (summary, call) = streamed(|acc, _| acc.push_bytes(&message.as_bytes()[..40]));
        assert_eq!(summary.outcome, StreamOutcome::Incomplete);
        assert_eq!(call.outcome.label(), "stream_incomplete");
    }

    #[test]
    fn an_event_stream_handed_over_whole_is_read_as_one() {
        // A proxy rewrote the content type: the caller routed the stream to `whole_response`.
        let (summary, call) = streamed(|acc, _| {
            // A byte-order mark and a blank line before the first event, as a stream may open.
            let body: String = [START, BLOCK_START, DELTA_TEXT, MESSAGE_DELTA, STOP].concat();
            acc.whole_response(format!("\u{feff}\r\n{body}").as_bytes());
        });
        assert!(summary.is_complete());
        assert_eq!(summary.malformed_events, 0);
        assert_eq!((call.tokens.input, call.tokens.cache_read, call.tokens.output), (472, 1000, 15));
        assert!(!call.outcome.is_error());
    }

    #[test]
    fn message_stop_ends_the_stream_before_its_blank_line() {
        // A proxy that holds the connection open and never sends the last blank line: the read loop waited for
        // its timeout, and the answered call failed as `timeout`.
        let (summary, call) = streamed(|acc, _| {
            acc.push_bytes(START.as_bytes());
            acc.push_bytes(MESSAGE_DELTA.as_bytes());
            acc.push_bytes(b"event: message_stop\r\ndata: {\"type\":\"message_");
            assert!(!acc.is_done(), "its data line has not ended");
            acc.push_bytes(b"stop\"}\r\n");
            assert!(acc.is_complete());
            acc.fail("timeout");
        });
        assert!(summary.is_complete(), "{:?}", summary.outcome);
        assert!(!call.outcome.is_error());
        // Another event's data line does not end it.
        let (summary, _) = streamed(|acc, _| {
            acc.push_bytes(START.as_bytes());
            acc.push_bytes(b"event: message_delta\ndata: {\"type\":\"message_delta\"}\n");
            assert!(!acc.is_done());
        });
        assert_eq!(summary.outcome, StreamOutcome::Incomplete);
    }

    #[test]
    fn keep_alives_and_an_end_marker_are_not_malformed() {
        let (summary, call) = streamed(|acc, _| {
            acc.push_bytes(START.as_bytes());
            for keep_alive in ["data: {}\n\n", "data: \n\n", "data: keepalive\n\n"] {
                acc.push_bytes(keep_alive.as_bytes());
            }
            acc.push_bytes(MESSAGE_DELTA.as_bytes());
            acc.push_bytes(STOP.as_bytes());
            acc.push_bytes(b"data: [DONE]\n\n");
        });
        assert!(summary.is_complete());
        // `keepalive` is not JSON: the one malformed event.
        assert_eq!(summary.malformed_events, 1);
        assert_eq!(call.tokens.output, 15);
    }

    #[test]
    fn full_stream_records_cumulative_usage_and_ttft() {
        let mut summary = None;
        let call = one_call(|clock| {
            let span = claude_span("chat", "claude-sonnet-4-5", true);
            let mut acc = StreamAccumulator::with_clock(&span, clock.clone());
            acc.push_bytes(START.as_bytes());
            acc.push_bytes(BLOCK_START.as_bytes());
            acc.push_bytes(PING.as_bytes());
            clock.advance(ChronoDuration::milliseconds(350));
            acc.push_bytes(DELTA_TEXT.as_bytes());
            clock.advance(ChronoDuration::milliseconds(900));
            acc.push_bytes(DELTA_TEXT.as_bytes());
            acc.push_bytes(MESSAGE_DELTA.replace("15", "120").as_bytes());
            acc.push_bytes(MESSAGE_DELTA.replace("15", "480").as_bytes());
            acc.push_bytes(STOP.as_bytes());
            summary = Some(acc.finish());
        });
        let summary = summary.unwrap();
        assert!(summary.is_complete());
        assert_eq!(summary.time_to_first_token, Some(Duration::from_millis(350)));
        assert_eq!(summary.stop_reason.as_deref(), Some("end_turn"));
        assert_eq!(summary.usage.output_tokens, Some(480));
        assert_eq!(summary.malformed_events, 0);
        assert_eq!(summary.events, 8);

        assert_eq!(call.time_to_first_token_us, Some(350_000));
        assert_eq!((call.tokens.input, call.tokens.cache_read, call.tokens.output), (472, 1000, 480));
        assert_eq!(call.request_id.as_deref(), Some("msg_01"));
        assert_eq!(call.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
        assert_eq!(call.streaming, Some(true));
        assert_eq!(call.service_tier.as_deref(), Some("standard"));
        assert!(!call.outcome.is_error());
        assert!(call.metered);
    }

    #[test]
    fn a_last_event_without_its_blank_line_still_counts() {
        // The connection closed right after the final `data:` lines (a proxy dropping the last blank line).
        let (summary, call) = streamed(|acc, _| {
            acc.push_bytes(START.as_bytes());
            acc.push_bytes(MESSAGE_DELTA.replace("15", "480").trim_end_matches('\n').as_bytes());
        });
        assert_eq!(summary.usage.output_tokens, Some(480));
        assert_eq!(call.tokens.output, 480);
        assert_eq!(call.outcome.label(), "stream_incomplete", "no message_stop: incomplete, with its usage");
        let call = one_call(|_| {
            let span = claude_span("chat", "claude-sonnet-4-5", true);
            let mut acc = StreamAccumulator::new(&span);
            acc.push_bytes(START.as_bytes());
            acc.push_bytes(MESSAGE_DELTA.as_bytes());
            acc.push_bytes(STOP.trim_end_matches('\n').as_bytes());
        });
        assert!(!call.outcome.is_error(), "message_stop came, if without its blank line: {:?}", call.outcome);
        // Data cut short is not read (nor counted malformed: the stream just ended).
        let (summary, _) = streamed(|acc, _| {
            acc.push_bytes(START.as_bytes());
            acc.push_bytes(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_");
        });
        assert_eq!(summary.malformed_events, 0);
        // An error event without its blank line fails the call, whatever its data: the stream ended on an error.
        for data in ["{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}", "<html>502 Bad Gateway</html>"] {
            let call = one_call(|_| {
                let span = claude_span("chat", "claude-sonnet-4-5", true);
                let mut acc = StreamAccumulator::new(&span);
                acc.push_bytes(START.as_bytes());
                acc.push_bytes(format!("event: error\ndata: {data}").as_bytes());
            });
            let expected = if data.starts_with('{') { "overloaded_error" } else { "error" };
            assert_eq!(call.outcome.label(), expected, "{data}");
        }
    }

    #[test]
    fn streamed_web_searches_are_recorded_and_a_later_zero_does_not_erase_them() {
        // The searches arrive in `message_delta` (cumulative, as the rest of its usage); a gateway restating
        // the usage with `web_search_requests: 0` afterwards is leaving it out, not undoing the searches.
        let delta = |searches: u64| {
            format!(
                "event: message_delta\ndata: {{\"type\":\"message_delta\",\"usage\":{{\"output_tokens\":15,\
                 \"server_tool_use\":{{\"web_search_requests\":{searches}}}}}}}\n\n"
            )
        };
        let call = one_call(|_| {
            let span = claude_span("chat", "claude-sonnet-4-5", true);
            let mut acc = StreamAccumulator::new(&span);
            acc.push_bytes(START.as_bytes());
            acc.push_bytes(delta(1).as_bytes());
            acc.push_bytes(delta(3).as_bytes());
            acc.push_bytes(delta(0).as_bytes());
            acc.push_bytes(STOP.as_bytes());
        });
        assert_eq!(call.web_search_requests, 3);
        assert_eq!(call.cost.unwrap().web_search.picos(), 3 * crate::pricing::DEFAULT_WEB_SEARCH_FEE.picos());
    }

    #[test]
    fn a_compaction_in_the_final_delta_adds_to_the_start_s_input() {
        // Server-side compaction: `message_delta` carries the iterations (the summary's sampling step is billed and
        // left out of the top-level counts) and no input count. Recording that event alone set the input to the
        // compaction's 180,000, dropping the message's 472.
        const DELTA: &str = "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15,\
            \"iterations\":[{\"type\":\"compaction\",\"input_tokens\":180000,\"output_tokens\":3500},\
            {\"type\":\"message\",\"input_tokens\":472,\"output_tokens\":15}]}}\n\n";
        let call = one_call(|_| {
            let span = claude_span("chat", "claude-sonnet-4-5", true);
            let mut acc = StreamAccumulator::new(&span);
            for event in [START, DELTA, STOP] {
                acc.push_bytes(event.as_bytes());
            }
        });
        let t = call.tokens;
        assert_eq!((t.input, t.cache_read, t.output), (180_472, 1_000, 3_515));
    }

    #[test]
    fn later_usage_replaces_earlier_even_when_smaller() {
        let call = one_call(|_| {
            let span = claude_span("chat", "claude-sonnet-4-5", true);
            let mut acc = StreamAccumulator::new(&span);
            acc.push_bytes(START.as_bytes());
            acc.push_bytes(MESSAGE_DELTA.replace("15", "40").as_bytes());
            // A later event correcting input (as newer API versions send in message_delta) replaces it too.
            acc.push_bytes(
                b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":470,\"output_tokens\":41}}\n\n",
            );
            acc.push_bytes(STOP.as_bytes());
        });
        assert_eq!((call.tokens.input, call.tokens.output), (470, 41));
        assert!(!call.outcome.is_error());
    }

    #[test]
    fn a_gateways_zero_input_in_message_delta_keeps_the_input_of_message_start() {
        let call = one_call(|_| {
            let span = claude_span("chat", "claude-sonnet-4-5", true);
            let mut acc = StreamAccumulator::new(&span);
            acc.push_bytes(START.as_bytes());
            acc.push_bytes(
                b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":0,\
                  \"cache_read_input_tokens\":0,\"cache_creation_input_tokens\":0,\"output_tokens\":41}}\n\n",
            );
            acc.push_bytes(STOP.as_bytes());
            let usage = acc.usage();
            assert_eq!((usage.input_tokens, usage.cache_read_input_tokens), (Some(472), Some(1000)));
        });
        assert_eq!((call.tokens.input, call.tokens.cache_read, call.tokens.output), (472, 1000, 41));
    }

    #[test]
    fn cut_off_stream_is_a_failed_call_with_the_usage_so_far() {
        let (summary, call) = streamed(|acc, _| {
            acc.push_bytes(START.as_bytes());
            acc.push_bytes(DELTA_TEXT.as_bytes());
            // The connection drops in the middle of the next event.
            acc.push_bytes(&MESSAGE_DELTA.as_bytes()[..40]);
        });
        assert_eq!(summary.outcome, StreamOutcome::Incomplete);
        assert!(summary.time_to_first_token.is_some());
        assert_eq!(summary.usage.output_tokens, Some(1));
        assert_eq!(call.outcome.label(), INCOMPLETE_STREAM);
        assert!(call.metered);
        assert_eq!((call.tokens.input, call.tokens.output), (472, 1));
    }

    #[test]
    fn dropping_an_unfinished_accumulator_marks_the_call_incomplete() {
        let call = one_call(|_| {
            let span = claude_span("chat", "claude-sonnet-4-5", true);
            let acc = StreamAccumulator::new(&span);
            drop(acc);
        });
        assert_eq!(call.outcome.label(), INCOMPLETE_STREAM);
        assert!(!call.metered);
        assert_eq!(call.time_to_first_token_us, None);
    }

    #[test]
    fn error_event_sets_the_outcome_and_is_not_overridden() {
        let (summary, call) = streamed(|acc, _| {
            acc.push_bytes(START.as_bytes());
            acc.push_bytes(
                b"event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
            );
        });
        assert_eq!(summary.outcome, StreamOutcome::Error { error_type: "overloaded_error".into() });
        assert_eq!(call.outcome.label(), "overloaded_error");
        assert!(call.metered);
    }

    #[test]
    fn push_events_returns_the_events_and_counts_what_the_decoder_dropped() {
        let mut texts = Vec::new();
        let (summary, call) = streamed(|acc, _| {
            let name = b"event: content_block_start\n";
            let mut oversized = [&name[..], b"data: "].concat();
            oversized.resize(name.len() + crate::instrument::MAX_LINE_BYTES + 1, b'x');
            oversized.extend_from_slice(b"\n\n");
            for chunk in
                [START.as_bytes(), &oversized, DELTA_TEXT.as_bytes(), MESSAGE_DELTA.as_bytes(), STOP.as_bytes()]
            {
                for event in acc.push_events(chunk) {
                    if event.event == "content_block_delta" {
                        texts.push(event.data);
                    }
                }
            }
        });
        assert!(summary.is_complete());
        assert_eq!(texts.len(), 1);
        assert!(texts[0].contains("Hello"));
        // The oversized event never reached the caller, and the summary says so.
        assert_eq!(summary.malformed_events, 1);
        assert_eq!(summary.events, 4);
        assert_eq!((call.tokens.input, call.tokens.output), (472, 15));
    }

    #[test]
    fn debug_shows_no_response_text_held_between_chunks() {
        let span = claude_span("chat", "claude-sonnet-4-5", true);
        let mut acc = StreamAccumulator::new(&span);
        acc.push_bytes(b"event: content_block_delta\ndata: {\"delta\":{\"text\":\"a secret answer\"}}\n");
        let shown = format!("{acc:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("buffered_data_bytes"), "{shown}");
    }

    #[test]
    fn malformed_input_is_counted_and_skipped() {
        let (summary, call) = streamed(|acc, _| {
            for junk in [
                "event: message_start\ndata: not json\n\n",
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":null}\n\n",
                "event: message_delta\ndata: {\"usage\": null}\n\n",
                "event: message_delta\ndata: {\"usage\": {\"output_tokens\": -3, \"input_tokens\": \"x\"}}\n\n",
                "data: [1, 2]\n\n",
                "data:\n\n",
                "event: error\ndata: <html>502</html>\n\n",
                ":comment only\n\n",
                "\u{0}\u{1}garbage\r\n\r\n",
            ] {
                acc.push_bytes(junk.as_bytes());
            }
            acc.push_bytes(START.as_bytes());
            // Unnamed events are recognized by their data's type.
            acc.push_bytes(b"data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\n\n");
            acc.push_bytes(b"data: {\"type\":\"message_stop\"}\n\n");
        });
        // The `error` event with HTML data still failed the call, with a generic type.
        assert_eq!(summary.outcome, StreamOutcome::Error { error_type: "error".into() });
        // Not JSON, an array, and the HTML error; `data:` with nothing is a keep-alive.
        assert_eq!(summary.malformed_events, 3);
        assert_eq!(call.outcome.label(), "error");
        assert_eq!((call.tokens.input, call.tokens.output), (472, 9));
    }

    #[test]
    fn a_failure_after_message_stop_does_not_undo_the_completed_call() {
        let call = one_call(|_| {
            let span = claude_span("chat", "claude-sonnet-4-5", true);
            let mut acc = StreamAccumulator::new(&span);
            acc.push_bytes(START.as_bytes());
            acc.push_bytes(MESSAGE_DELTA.as_bytes());
            acc.push_bytes(STOP.as_bytes());
            acc.fail("transport_error");
            assert!(acc.is_complete());
        });
        assert!(!call.outcome.is_error());
        assert_eq!(call.tokens.output, 15);
    }

    #[test]
    fn fail_before_any_event_wins_over_incomplete() {
        let call = one_call(|_| {
            let span = claude_span("chat", "claude-sonnet-4-5", true);
            let mut acc = StreamAccumulator::new(&span);
            acc.fail("rate_limit_error");
            acc.fail("later_error");
        });
        assert_eq!(call.outcome.label(), "rate_limit_error");
        assert!(!call.metered);
    }
}
