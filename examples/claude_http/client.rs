//! A minimal Claude Messages API client over blocking `reqwest`, instrumented for tokenmeter.
//!
//! Each call opens one [`claude_span`] and records into it what the API answers: the response id and model,
//! the usage (as a stream's events arrive, when streaming), or the error. The span closes when the call
//! returns, and the meter's layer turns it into one `CallRecord`. No prompt or response text goes into the
//! span.
//!
//! This file is shared: `examples/claude_http.rs` uses it against the real API, and `tests/instrument_http.rs`
//! runs it against a local server that answers like the API.

use std::fmt;
use std::io::{ErrorKind, Read};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokenmeter::instrument::{
    self, ErrorResponse, INCOMPLETE_STREAM, MessageResponse, StreamAccumulator, StreamOutcome, Usage,
};

/// Where requests go unless `ANTHROPIC_BASE_URL` says otherwise.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The `anthropic-version` header sent with every request.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// One Messages API request (the subset this example needs). Its `Debug` shows sizes, never the prompt's text.
#[derive(Clone, Serialize)]
pub struct Request {
    /// The model to call.
    pub model: String,
    /// The most output tokens to generate.
    pub max_tokens: u32,
    /// An optional system prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The conversation so far.
    pub messages: Vec<Turn>,
}

/// One turn of a conversation. Its `Debug` shows the role and the text's size.
#[derive(Clone, Serialize)]
pub struct Turn {
    /// `user` or `assistant`.
    pub role: String,
    /// The turn's text.
    pub content: String,
}

impl Request {
    /// A single user message.
    pub fn user(model: &str, max_tokens: u32, text: &str) -> Self {
        Request {
            model: model.to_owned(),
            max_tokens,
            system: None,
            messages: vec![Turn { role: "user".into(), content: text.to_owned() }],
        }
    }
}

/// What a call returned. Its `Debug` shows the text's size, not the text.
#[derive(Clone, Default)]
pub struct Reply {
    /// The message id (`msg_…`).
    pub id: Option<String>,
    /// The model that answered.
    pub model: Option<String>,
    /// The text blocks of the answer, concatenated.
    pub text: String,
    /// Why generation stopped.
    pub stop_reason: Option<String>,
    /// The usage as the API reported it.
    pub usage: Usage,
}

/// Why a call failed. Every failure is also recorded on the call's span as `error.type`. Its `Debug` is its
/// `Display`: a stream's partial text is never in either.
pub enum ClientError {
    /// `ANTHROPIC_API_KEY` is not set.
    MissingApiKey,
    /// The key cannot be sent as a header (a control character, say).
    InvalidApiKey,
    /// The request could not be sent or the response not read (`error.type` is `timeout`, `connect_error` or
    /// `transport_error`).
    Transport(reqwest::Error),
    /// The response's body could not be read whole (`error.type` is `timeout` or `transport_error`).
    Read(std::io::Error),
    /// The API answered with an error status.
    Api {
        /// The HTTP status.
        status: u16,
        /// The API's error type (`overloaded_error`, …).
        error_type: String,
        /// The API's message.
        message: Option<String>,
        /// The API's request id, for support.
        request_id: Option<String>,
    },
    /// A successful status with a body that is not a message (`error.type = "invalid_response"`).
    InvalidResponse(serde_json::Error),
    /// A stream that sent an `error` event, or ended before `message_stop` (`stream_incomplete`).
    Stream {
        /// The error type recorded.
        error_type: String,
        /// The text received before the stream ended.
        partial_text: String,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::MissingApiKey => f.write_str("ANTHROPIC_API_KEY is not set"),
            ClientError::InvalidApiKey => f.write_str("the API key holds a character no header can carry"),
            ClientError::Transport(e) => write!(f, "transport error: {e}"),
            ClientError::Read(e) => write!(f, "reading the response failed: {e}"),
            ClientError::Api { status, error_type, message, request_id } => {
                write!(f, "API error {status} {error_type}")?;
                if let Some(m) = message {
                    write!(f, ": {m}")?;
                }
                if let Some(id) = request_id {
                    write!(f, " (request id {id})")?;
                }
                Ok(())
            }
            ClientError::InvalidResponse(e) => write!(f, "the response is not a message: {e}"),
            ClientError::Stream { error_type, .. } if error_type == INCOMPLETE_STREAM => {
                f.write_str("the stream ended before message_stop")
            }
            ClientError::Stream { error_type, .. } => write!(f, "the stream reported {error_type}"),
        }
    }
}

impl fmt::Debug for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The inner errors too (a refused connection's cause), which hold no prompt or answer text.
        match self {
            ClientError::Transport(e) => write!(f, "ClientError({self}: {e:?})"),
            ClientError::Read(e) => write!(f, "ClientError({self}: {e:?})"),
            _ => write!(f, "ClientError({self})"),
        }
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("model", &self.model)
            .field("max_tokens", &self.max_tokens)
            .field("system_bytes", &self.system.as_ref().map(String::len))
            .field("messages", &self.messages)
            .finish()
    }
}

impl fmt::Debug for Turn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Turn").field("role", &self.role).field("content_bytes", &self.content.len()).finish()
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("id", &self.id)
            .field("model", &self.model)
            .field("text_bytes", &self.text.len())
            .field("stop_reason", &self.stop_reason)
            .field("usage", &self.usage)
            .finish()
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Transport(e) => Some(e),
            ClientError::Read(e) => Some(e),
            ClientError::InvalidResponse(e) => Some(e),
            _ => None,
        }
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        ClientError::Transport(e)
    }
}

impl From<serde_json::Error> for ClientError {
    fn from(e: serde_json::Error) -> Self {
        ClientError::InvalidResponse(e)
    }
}

/// The `error.type` of a transport failure.
fn transport_error_type(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect_error"
    } else {
        "transport_error"
    }
}

/// A Messages API client. Cheap to clone.
#[derive(Clone)]
pub struct ClaudeClient {
    http: reqwest::blocking::Client,
    messages_url: String,
    /// Marked sensitive: kept out of reqwest's and hyper's `Debug` output.
    api_key: reqwest::header::HeaderValue,
}

impl fmt::Debug for ClaudeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("ClaudeClient").field("messages_url", &self.messages_url).finish_non_exhaustive()
    }
}

impl ClaudeClient {
    /// A client for `base_url` (`https://api.anthropic.com`, or any server that speaks the Messages API).
    pub fn new(base_url: &str, api_key: &str) -> Result<Self, ClientError> {
        // Per read: a non-streaming answer arrives only when generation is done.
        Self::with_read_timeout(base_url, api_key, Duration::from_secs(600))
    }

    /// As [`new`](Self::new), with `read_timeout` instead of 600 s for each read of the response (a read that
    /// waits longer fails the call as `timeout`).
    pub fn with_read_timeout(base_url: &str, api_key: &str, read_timeout: Duration) -> Result<Self, ClientError> {
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(read_timeout)
            // No redirects: reqwest keeps `x-api-key` on a redirect to another host (it strips only
            // `Authorization` and cookies), and a 307 or 308 sends the body again. A 3xx fails the call.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ClientError::Transport)?;
        let mut api_key = reqwest::header::HeaderValue::from_str(api_key).map_err(|_| ClientError::InvalidApiKey)?;
        api_key.set_sensitive(true);
        Ok(ClaudeClient { http, messages_url: format!("{}/v1/messages", base_url.trim_end_matches('/')), api_key })
    }

    /// A client configured by `ANTHROPIC_API_KEY` (required) and `ANTHROPIC_BASE_URL` (default
    /// [`DEFAULT_BASE_URL`]).
    pub fn from_env() -> Result<Self, ClientError> {
        let key = std::env::var("ANTHROPIC_API_KEY").ok().filter(|k| !k.trim().is_empty());
        let key = key.ok_or(ClientError::MissingApiKey)?;
        let base = std::env::var("ANTHROPIC_BASE_URL").ok().filter(|u| !u.trim().is_empty());
        Self::new(base.as_deref().unwrap_or(DEFAULT_BASE_URL), key.trim())
    }

    fn send(&self, request: &Request, stream: bool) -> reqwest::Result<reqwest::blocking::Response> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(flatten)]
            request: &'a Request,
            stream: bool,
        }
        let body = serde_json::to_vec(&Body { request, stream }).unwrap_or_default();
        self.http
            .post(&self.messages_url)
            .header("x-api-key", self.api_key.clone())
            .header("anthropic-version", ANTHROPIC_VERSION)
            .header("content-type", "application/json")
            .body(body)
            .send()
    }

    /// Sends a request and waits for the whole answer.
    pub fn create_message(&self, request: &Request) -> Result<Reply, ClientError> {
        let span = instrument::claude_span("chat", &request.model, false);
        let _entered = span.enter();
        let fail = |error_type: &str| instrument::record_error(&span, error_type);

        let mut response = self.send(request, false).inspect_err(|e| fail(transport_error_type(e)))?;
        let status = response.status().as_u16();
        let request_id = request_id_of(&response);
        if !(200..300).contains(&status) {
            // Read as the streaming call reads it: a body that cannot be read leaves the status's error type.
            let error = api_error(status, &read_body(&mut response).unwrap_or_default(), request_id);
            if let ClientError::Api { error_type, .. } = &error {
                fail(error_type);
            }
            return Err(error);
        }
        let body = read_body(&mut response).inspect_err(|e| fail(read_error_type(e))).map_err(ClientError::Read)?;
        // A byte-order mark before the body (a proxy's; serde_json refuses it) does not make a billed answer invalid.
        let json = body.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&body);
        let meta: MessageResponse = serde_json::from_slice(json).inspect_err(|_| fail("invalid_response"))?;
        instrument::record_response(&span, &meta);
        // A 2xx status with an error body (some gateways send them), or a body that is not a message: the call
        // is recorded as failed, and so is the request.
        if let Some(error_type) = meta.error_type() {
            return Err(match &meta.error {
                Some(error) => ClientError::Api {
                    status,
                    error_type: error_type.to_owned(),
                    message: error.message.clone(),
                    request_id,
                },
                None => ClientError::InvalidResponse(serde::de::Error::custom("a 2xx body that is not a message")),
            });
        }
        let content: Content = serde_json::from_slice(json).unwrap_or_default();
        Ok(Reply {
            text: content.text(),
            id: meta.id,
            model: meta.model,
            stop_reason: meta.stop_reason,
            usage: meta.usage.unwrap_or_default(),
        })
    }

    /// Sends a streaming request (`"stream": true`), calling `on_text` with each text delta as it arrives.
    pub fn stream_message(&self, request: &Request, mut on_text: impl FnMut(&str)) -> Result<Reply, ClientError> {
        let span = instrument::claude_span("chat", &request.model, true);
        let _entered = span.enter();
        // Made before sending, so time to first token includes the round trip.
        let mut stream = StreamAccumulator::new(&span);

        let mut response = self.send(request, true).inspect_err(|e| stream.fail(transport_error_type(e)))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let request_id = request_id_of(&response);
            let body = read_body(&mut response).unwrap_or_default();
            let error = api_error(status, &body, request_id);
            if let ClientError::Api { error_type, .. } = &error {
                stream.fail(error_type);
            }
            return Err(error);
        }

        let mut text = String::new();
        let mut text_cut = false;
        if !is_event_stream(&response) {
            // One JSON body instead of a stream (a gateway that ignored "stream": true, or an error body with a
            // 2xx status): read whole, for its usage or its error type.
            let body =
                read_body(&mut response).inspect_err(|e| stream.fail(read_error_type(e))).map_err(ClientError::Read)?;
            stream.whole_response(&body);
            text = serde_json::from_slice::<Content>(&body).unwrap_or_default().text();
        } else {
            let mut buf = [0u8; 8 * 1024];
            // A JSON body sent as `text/event-stream` (a gateway that ignored "stream": true but kept the type):
            // the accumulator reads its usage; its text is read here, as the other branch reads it.
            let mut json_body: Option<Vec<u8>> = None;
            let mut started = false;
            loop {
                let n = match response.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    // The read timed out: a failure of its own, not merely a stream cut short. (reqwest's blocking
                    // reads report it as an `Other` error wrapping a `reqwest::Error` whose `is_timeout` holds.)
                    Err(e) if is_timeout(&e) => {
                        stream.fail("timeout");
                        break;
                    }
                    // The connection dropped: the accumulator reports the stream as incomplete.
                    Err(_) => break,
                };
                let chunk = &buf[..n];
                if !started && !chunk.trim_ascii().is_empty() {
                    started = true;
                    let first = chunk.strip_prefix("\u{feff}".as_bytes()).unwrap_or(chunk).trim_ascii_start();
                    json_body = first.starts_with(b"{").then(Vec::new);
                }
                // Kept up to 4 MiB; past that its text is not read (a copy with a gap in it would not parse, or would
                // parse to the wrong text).
                match json_body.as_mut() {
                    Some(body) if body.len() + n <= 4 << 20 => body.extend_from_slice(chunk),
                    Some(_) => json_body = None,
                    None => {}
                }
                // The accumulator reads the usage; the events come back for the text.
                for event in stream.push_events(chunk) {
                    if event.event == "content_block_delta"
                        && let Some(delta) = text_delta(&event.data)
                    {
                        on_text(&delta);
                        // Kept up to the body cap, then no more (an answer is bounded by `max_tokens`; a server sending
                        // more is not held whole, and a later small delta must not splice on after a gap).
                        if !text_cut && text.len() + delta.len() <= MAX_BODY_BYTES as usize {
                            text.push_str(&delta);
                        } else {
                            text_cut = true;
                        }
                    }
                }
                // `message_stop` (or an error) ends the message: a proxy that holds the connection open afterwards
                // would keep the call (and its recorded duration) waiting for the read timeout.
                if stream.is_done() {
                    break;
                }
            }
            if let Some(body) = json_body {
                text = serde_json::from_slice::<Content>(&body).unwrap_or_default().text();
            }
        }
        let summary = stream.finish();
        match summary.outcome {
            StreamOutcome::Completed => Ok(Reply {
                id: summary.response_id,
                model: summary.model,
                text,
                stop_reason: summary.stop_reason,
                usage: summary.usage,
            }),
            StreamOutcome::Error { error_type } => Err(ClientError::Stream { error_type, partial_text: text }),
            // `Incomplete`, or an outcome a later tokenmeter adds (the enum is non-exhaustive): not a whole reply.
            _ => Err(ClientError::Stream { error_type: INCOMPLETE_STREAM.to_owned(), partial_text: text }),
        }
    }
}

/// The most of a response body read: a larger one is cut there (and then fails to parse as `invalid_response`),
/// so a misbehaving server cannot exhaust memory. A message's answer is bounded by its `max_tokens`.
const MAX_BODY_BYTES: u64 = 32 << 20;

/// Reads a response body whole, up to [`MAX_BODY_BYTES`].
fn read_body(response: &mut reqwest::blocking::Response) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    response.take(MAX_BODY_BYTES).read_to_end(&mut body)?;
    Ok(body)
}

/// The `error.type` of a failed read of a body.
fn read_error_type(e: &std::io::Error) -> &'static str {
    if is_timeout(e) { "timeout" } else { "transport_error" }
}

/// Whether a read of a response body failed because it timed out.
fn is_timeout(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::TimedOut
        || e.get_ref().and_then(|inner| inner.downcast_ref::<reqwest::Error>()).is_some_and(reqwest::Error::is_timeout)
}

/// Whether a 2xx answer to a streaming request is an event stream (`text/event-stream`).
fn is_event_stream(response: &reqwest::blocking::Response) -> bool {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/event-stream"))
}

fn request_id_of(response: &reqwest::blocking::Response) -> Option<String> {
    response.headers().get("request-id").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The error an error status means: the body's error type when it has one, else the documented type for the
/// status.
fn api_error(status: u16, body: &[u8], header_request_id: Option<String>) -> ClientError {
    let body = body.strip_prefix("\u{feff}".as_bytes()).unwrap_or(body);
    let parsed: ErrorResponse = serde_json::from_slice(body).unwrap_or_default();
    let error_type = match parsed.error_type() {
        Some(t) => t.to_owned(),
        None => instrument::error_type_for_status(status).into_owned(),
    };
    ClientError::Api {
        status,
        error_type,
        message: parsed.error.and_then(|e| e.message),
        request_id: parsed.request_id.or(header_request_id),
    }
}

/// The content of a response, for the caller (never recorded).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Content {
    content: Vec<Block>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

impl Content {
    fn text(self) -> String {
        self.content.into_iter().filter(|b| b.kind == "text").filter_map(|b| b.text).collect()
    }
}

/// The text of a `content_block_delta` event's `text_delta`, if it is one.
fn text_delta(data: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Event {
        delta: Delta,
    }
    #[derive(Deserialize)]
    struct Delta {
        #[serde(rename = "type")]
        kind: String,
        text: Option<String>,
    }
    let event: Event = serde_json::from_str(data).ok()?;
    (event.delta.kind == "text_delta").then_some(event.delta.text).flatten()
}
