//! The instrumented HTTP client of `examples/claude_http` against a local server that answers like the Messages
//! API (response and stream shapes as Anthropic documents them, in `tests/fixtures/anthropic/`): every call
//! becomes one `CallRecord`, checked field by field.

use crate::common;

// The example's own client code. `from_env` and its defaults serve the example, not these tests.
#[allow(dead_code)]
#[path = "../examples/claude_http/client.rs"]
mod client;

use std::io;
use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::Value;
use tokenmeter::CallRecord;
use tokenmeter::instrument::INCOMPLETE_STREAM;
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use client::{ClaudeClient, ClientError, Reply, Request};
use common::Harness;

const PLAIN: &str = include_str!("fixtures/anthropic/message_plain.json");
const CACHE: &str = include_str!("fixtures/anthropic/message_cache.json");
const CACHE_TTL: &str = include_str!("fixtures/anthropic/message_cache_ttl.json");
const BATCH: &str = include_str!("fixtures/anthropic/message_batch.json");
const FAST: &str = include_str!("fixtures/anthropic/message_fast.json");
const OVERLOADED: &str = include_str!("fixtures/anthropic/error_overloaded.json");
const STREAM_FULL: &str = include_str!("fixtures/anthropic/stream_full.sse");
const STREAM_ERROR: &str = include_str!("fixtures/anthropic/stream_error.sse");

const PROMPT: &str = "PROMPT-TEXT-4b1d: summarize the guide";
const API_KEY: &str = "sk-ant-test-key";

// === the local Messages API ===

/// How the server ends an event stream.
#[derive(Clone, Copy, Debug)]
enum End {
    /// Sends the whole body and ends it normally.
    Whole,
    /// Sends the first `n` bytes, then drops the connection mid-body.
    DropAfter(usize),
    /// Sends the first `n` bytes, then ends the body normally (a clean close before `message_stop`).
    CloseAfter(usize),
    /// Sends the first `n` bytes, then sends nothing for five seconds, then ends the body normally.
    StallAfter(usize),
}

#[derive(Clone, Debug)]
enum Answer {
    Json {
        status: u16,
        body: &'static str,
    },
    /// A 307 to the same path (with a 307 a client that follows sends the body, and the key, again).
    Redirect,
    Sse {
        body: &'static str,
        first_delta_delay: Duration,
        end: End,
    },
}

/// What the server saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    api_key: Option<String>,
    version: Option<String>,
    content_type: Option<String>,
    body: Value,
}

struct ServerState {
    answer: Answer,
    seen: Mutex<Vec<Seen>>,
}

/// A Messages API on 127.0.0.1 that gives one answer to every `POST /v1/messages`. Stops when dropped.
struct MockApi {
    url: String,
    state: Arc<ServerState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MockApi {
    fn start(answer: Answer) -> Self {
        let listener = StdListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let state = Arc::new(ServerState { answer, seen: Mutex::new(Vec::new()) });
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new().route("/v1/messages", post(messages)).with_state(state.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        MockApi { url, state, shutdown: Some(shutdown), thread: Some(thread) }
    }

    fn only_request(&self) -> Seen {
        let seen = self.state.seen.lock();
        assert_eq!(seen.len(), 1, "expected one request, got {seen:#?}");
        seen[0].clone()
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn messages(State(state): State<Arc<ServerState>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    state.seen.lock().push(Seen {
        api_key: header("x-api-key"),
        version: header("anthropic-version"),
        content_type: header("content-type"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let response = Response::builder().header("request-id", "req_011CSHoEeqs5C35K2UUqR7Fy");
    match state.answer.clone() {
        Answer::Redirect => response
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header("location", "/v1/messages")
            .body(Body::empty())
            .expect("response"),
        Answer::Json { status, body } => response
            .status(StatusCode::from_u16(status).expect("status"))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("response"),
        Answer::Sse { body, first_delta_delay, end } => {
            let (sent, drop_connection) = match end {
                End::Whole => (body, false),
                End::DropAfter(n) => (&body[..n], true),
                End::CloseAfter(n) | End::StallAfter(n) => (&body[..n], false),
            };
            let stall = matches!(end, End::StallAfter(_));
            // One chunk per event, as the API sends them; a pause before the first text delta.
            let mut first_delta = true;
            let chunks: Vec<(Duration, Bytes)> = sent
                .split_inclusive("\n\n")
                .map(|chunk| {
                    let delay = if first_delta && chunk.contains("content_block_delta") {
                        first_delta = false;
                        first_delta_delay
                    } else {
                        Duration::ZERO
                    };
                    (delay, Bytes::copy_from_slice(chunk.as_bytes()))
                })
                .collect();
            let events = futures_util::stream::iter(chunks).then(|(delay, chunk)| async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok::<Bytes, io::Error>(chunk)
            });
            // Dropping the connection: a body error makes the server abort it. The pause first lets what was
            // sent reach the client, as on a real connection that dies mid-stream.
            let tail = futures_util::stream::iter(drop_connection.then_some(())).then(|()| async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(io::Error::new(io::ErrorKind::ConnectionReset, "connection dropped"))
            });
            let pause = futures_util::stream::iter(stall.then_some(())).then(|()| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<Bytes, io::Error>(Bytes::new())
            });
            let stream = events.chain(tail).chain(pause);
            response
                .status(StatusCode::OK)
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(stream))
                .expect("response")
        }
    }
}

// === helpers ===

fn json(status: u16, body: &'static str) -> Answer {
    Answer::Json { status, body }
}

fn sse(body: &'static str, end: End) -> Answer {
    Answer::Sse { body, first_delta_delay: Duration::from_millis(40), end }
}

fn request(model: &str) -> Request {
    Request::user(model, 1024, PROMPT)
}

/// Makes one call through the example's client inside the harness; returns its result and its record.
fn call(api: &MockApi, model: &str, stream: bool) -> (Result<Reply, ClientError>, CallRecord, String) {
    let h = Harness::new();
    let mut streamed = String::new();
    let result = h.run(|| {
        let client = ClaudeClient::new(&api.url, API_KEY).expect("client");
        if stream {
            client.stream_message(&request(model), |t| streamed.push_str(t))
        } else {
            client.create_message(&request(model))
        }
    });
    (result, h.seen.only_call(), streamed)
}

/// `(input, cache_read, cache_write_5m, cache_write_1h, output)`.
fn tokens(c: &CallRecord) -> (u64, u64, u64, u64, u64) {
    let t = c.tokens;
    (t.input, t.cache_read, t.cache_write_5m, t.cache_write_1h, t.output)
}

fn cost(c: &CallRecord) -> String {
    c.cost.as_ref().map(|c| c.total.to_string()).unwrap_or_else(|| "unpriced".into())
}

fn assert_anthropic_chat(c: &CallRecord, streaming: bool) {
    assert_eq!(c.provider.as_deref(), Some("anthropic"));
    assert_eq!(c.operation.as_deref(), Some("chat"));
    assert_eq!(c.streaming, Some(streaming));
}

// === non-streaming ===

#[test]
fn plain_response_is_one_metered_call() {
    let api = MockApi::start(json(200, PLAIN));
    let (reply, c, _) = call(&api, "claude-sonnet-4-5", false);
    let reply = reply.expect("reply");
    assert_eq!(reply.text, "Hi! My name is Claude.");
    assert_eq!(reply.id.as_deref(), Some("msg_013Zva2CMHLNnXjNJJKqJ2EF"));
    assert_eq!(reply.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    assert_eq!(reply.stop_reason.as_deref(), Some("end_turn"));

    assert_anthropic_chat(&c, false);
    assert_eq!(c.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    assert_eq!(c.request_id.as_deref(), Some("msg_013Zva2CMHLNnXjNJJKqJ2EF"));
    assert_eq!(tokens(&c), (2095, 0, 0, 0, 503));
    assert_eq!(c.tokens.reasoning, 0);
    assert!(c.metered);
    assert!(!c.outcome.is_error());
    assert_eq!(c.time_to_first_token_us, None);
    assert_eq!(c.service_tier, None);
    assert_eq!(c.speed, None);
    // 2,095 x $3/M + 503 x $15/M
    assert_eq!(cost(&c), "$0.01383");

    let seen = api.only_request();
    assert_eq!(seen.api_key.as_deref(), Some(API_KEY));
    assert_eq!(seen.version.as_deref(), Some("2023-06-01"));
    assert_eq!(seen.content_type.as_deref(), Some("application/json"));
    assert_eq!(seen.body["model"], "claude-sonnet-4-5");
    assert_eq!(seen.body["max_tokens"], 1024);
    assert_eq!(seen.body["stream"], false);
    assert_eq!(seen.body["messages"][0]["role"], "user");
    assert_eq!(seen.body["messages"][0]["content"], PROMPT);
}

#[test]
fn cache_read_and_write_are_split_out_of_input() {
    let api = MockApi::start(json(200, CACHE));
    let (reply, c, _) = call(&api, "claude-sonnet-4-5", false);
    assert_eq!(reply.expect("reply").usage.cache_read_input_tokens, Some(18_000));

    assert_anthropic_chat(&c, false);
    assert_eq!(c.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    assert_eq!(c.request_id.as_deref(), Some("msg_01HCDu5LRGeP2o7s2xGmxyx8"));
    assert_eq!(tokens(&c), (50, 18_000, 1_200, 0, 300));
    assert_eq!(c.service_tier.as_deref(), Some("standard"));
    assert!(c.metered && !c.outcome.is_error());
    // 50 x $3 + 18,000 x $0.30 + 1,200 x $3.75 + 300 x $15, per million
    assert_eq!(cost(&c), "$0.01455");
    let cc = c.cost.as_ref().expect("priced");
    // 18,000 reads at $0.30 instead of $3
    assert_eq!(cc.cache_savings.to_string(), "$0.0486");
    assert!(!cc.batch && !cc.fast && !cc.long_context);
}

#[test]
fn cache_writes_keep_their_5m_and_1h_split() {
    let api = MockApi::start(json(200, CACHE_TTL));
    let (reply, c, _) = call(&api, "claude-opus-4-6", false);
    reply.expect("reply");

    assert_anthropic_chat(&c, false);
    assert_eq!(c.model.as_deref(), Some("claude-opus-4-6"));
    assert_eq!(c.request_id.as_deref(), Some("msg_01Aq9w938a90dw8q"));
    assert_eq!(tokens(&c), (8, 40_000, 1_000, 2_000, 250));
    assert!(c.metered && !c.outcome.is_error());
    // 8 x $5 + 40,000 x $0.50 + 1,000 x $6.25 + 2,000 x $10 + 250 x $25, per million
    assert_eq!(cost(&c), "$0.05254");
    let cc = c.cost.as_ref().expect("priced");
    assert_eq!(cc.cache_write_5m.to_string(), "$0.00625");
    assert_eq!(cc.cache_write_1h.to_string(), "$0.02");
}

#[test]
fn batch_tier_is_billed_at_half_price() {
    let api = MockApi::start(json(200, BATCH));
    let (reply, c, _) = call(&api, "claude-haiku-4-5", false);
    assert_eq!(reply.expect("reply").text, "Category: billing");

    assert_anthropic_chat(&c, false);
    assert_eq!(c.model.as_deref(), Some("claude-haiku-4-5-20251001"));
    assert_eq!(c.request_id.as_deref(), Some("msg_01FqfsLoHwgeFbguDgpz48m7"));
    assert_eq!(tokens(&c), (1_200, 0, 0, 0, 80));
    assert_eq!(c.service_tier.as_deref(), Some("batch"));
    assert!(c.metered && !c.outcome.is_error());
    // (1,200 x $1 + 80 x $5) / 2, per million
    assert_eq!(cost(&c), "$0.0008");
    assert!(c.cost.as_ref().is_some_and(|cc| cc.batch));
}

#[test]
fn fast_mode_speed_is_recorded_and_priced() {
    let api = MockApi::start(json(200, FAST));
    let (reply, c, _) = call(&api, "claude-opus-4-6", false);
    reply.expect("reply");

    assert_eq!(c.speed.as_deref(), Some("fast"));
    assert_eq!(tokens(&c), (1_000, 0, 0, 0, 2_000));
    // (1,000 x $5 + 2,000 x $25) x 6, per million
    assert_eq!(cost(&c), "$0.33");
    assert!(c.cost.as_ref().is_some_and(|cc| cc.fast));
}

#[test]
fn a_redirect_is_not_followed() {
    // reqwest follows redirects by default and keeps `x-api-key` on one to another host: the client refuses
    // them, and the call fails.
    let api = MockApi::start(Answer::Redirect);
    let (reply, c, _) = call(&api, "claude-sonnet-4-5", false);
    assert!(matches!(reply, Err(ClientError::Api { status: 307, .. })), "{reply:?}");
    assert_eq!(api.state.seen.lock().len(), 1, "followed the redirect");
    assert!(c.outcome.is_error() && !c.metered);
}

#[test]
fn the_clients_debug_never_shows_the_prompt_or_the_answer() {
    let request = request("claude-sonnet-4-5");
    let reply = Reply { text: "the secret answer".into(), ..Reply::default() };
    let error = ClientError::Stream { error_type: "overloaded_error".into(), partial_text: "the secret answer".into() };
    for text in [format!("{request:?}"), format!("{reply:?}"), format!("{error:?}")] {
        assert!(!text.contains(PROMPT) && !text.contains("secret"), "{text}");
    }
    assert!(format!("{request:?}").contains(&format!("content_bytes: {}", PROMPT.len())));
}

#[test]
fn overloaded_error_is_an_unmetered_failed_call() {
    let api = MockApi::start(json(529, OVERLOADED));
    let (reply, c, _) = call(&api, "claude-sonnet-4-5", false);
    match reply {
        Err(ClientError::Api { status, error_type, message, request_id }) => {
            assert_eq!(status, 529);
            assert_eq!(error_type, "overloaded_error");
            assert_eq!(message.as_deref(), Some("Overloaded"));
            assert_eq!(request_id.as_deref(), Some("req_011CSHoEeqs5C35K2UUqR7Fy"));
        }
        other => panic!("expected an API error, got {other:?}"),
    }

    assert_anthropic_chat(&c, false);
    assert_eq!(c.outcome.label(), "overloaded_error");
    assert!(!c.metered);
    assert_eq!(c.tokens, Default::default());
    // The requested model: no response named another.
    assert_eq!(c.model.as_deref(), Some("claude-sonnet-4-5"));
    assert_eq!(c.request_id, None);
    assert_eq!(c.cost, None);
    assert!(!c.is_unpriced());
}

#[test]
fn error_status_without_a_readable_body_uses_the_documented_type() {
    let api = MockApi::start(json(429, "<html>Too Many Requests</html>"));
    let (reply, c, _) = call(&api, "claude-sonnet-4-5", false);
    assert!(matches!(reply, Err(ClientError::Api { status: 429, .. })));
    assert_eq!(c.outcome.label(), "rate_limit_error");
    assert!(!c.metered);
}

#[test]
fn a_body_after_a_byte_order_mark_is_still_a_metered_call() {
    // A proxy that puts a byte-order mark before the body (serde_json refuses one): the answer was billed.
    let api = MockApi::start(json(200, concat!("\u{feff}", include_str!("fixtures/anthropic/message_plain.json"))));
    let (reply, c, _) = call(&api, "claude-sonnet-4-5", false);
    assert_eq!(reply.expect("reply").text, "Hi! My name is Claude.");
    assert!(c.metered && !c.outcome.is_error());
    assert_eq!(tokens(&c), (2095, 0, 0, 0, 503));
}

#[test]
fn a_success_status_with_a_body_that_is_not_a_message_is_a_failed_call() {
    let api = MockApi::start(json(200, "not json"));
    let (reply, c, _) = call(&api, "claude-sonnet-4-5", false);
    assert!(matches!(reply, Err(ClientError::InvalidResponse(_))));
    assert_eq!(c.outcome.label(), "invalid_response");
    assert!(!c.metered);
}

#[test]
fn a_success_status_with_json_that_is_not_a_message_is_a_failed_call() {
    // A gateway's error body under a 200, and JSON that says nothing: neither is a successful call.
    let api =
        MockApi::start(json(200, r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#));
    let (reply, c, _) = call(&api, "claude-sonnet-4-5", false);
    assert_eq!(c.outcome.label(), "overloaded_error");
    assert!(!c.metered);
    // The request fails too, with the body's error (it returned an empty reply).
    match reply {
        Err(ClientError::Api { status: 200, error_type, message, .. }) => {
            assert_eq!((error_type.as_str(), message.as_deref()), ("overloaded_error", Some("Overloaded")));
        }
        other => panic!("an error body under a 200 is an API error: {other:?}"),
    }
    for body in ["{}", "[]"] {
        let api = MockApi::start(json(200, body));
        let (reply, c, _) = call(&api, "claude-sonnet-4-5", false);
        assert_eq!(c.outcome.label(), "invalid_response", "{body}");
        assert!(matches!(reply, Err(ClientError::InvalidResponse(_))), "{body}: {reply:?}");
    }
}

#[test]
fn unreachable_server_is_a_failed_call() {
    // A port that was just free: nothing listens there.
    let port = StdListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let h = Harness::new();
    let result = h.run(|| {
        let client = ClaudeClient::new(&format!("http://127.0.0.1:{port}"), API_KEY).expect("client");
        client.create_message(&request("claude-sonnet-4-5"))
    });
    assert!(matches!(result, Err(ClientError::Transport(_))));
    let c = h.seen.only_call();
    assert_eq!(c.outcome.label(), "connect_error");
    assert!(!c.metered);
}

// === streaming ===

#[test]
fn full_stream_records_cumulative_usage_and_time_to_first_token() {
    let api = MockApi::start(sse(STREAM_FULL, End::Whole));
    let (reply, c, streamed) = call(&api, "claude-sonnet-4-5", true);
    let reply = reply.expect("reply");
    assert_eq!(streamed, "Hello!");
    assert_eq!(reply.text, "Hello!");
    assert_eq!(reply.id.as_deref(), Some("msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"));
    assert_eq!(reply.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    assert_eq!(reply.stop_reason.as_deref(), Some("end_turn"));
    assert_eq!(reply.usage.output_tokens, Some(15));

    assert_anthropic_chat(&c, true);
    assert_eq!(c.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    assert_eq!(c.request_id.as_deref(), Some("msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"));
    // message_start said output 1; message_delta's cumulative 15 replaced it.
    assert_eq!(tokens(&c), (22, 9_000, 0, 1_500, 15));
    assert_eq!(c.service_tier.as_deref(), Some("standard"));
    assert!(c.metered && !c.outcome.is_error());
    // The server paused 40 ms before the first text delta.
    let ttft = c.time_to_first_token_us.expect("time to first token");
    assert!((40_000..10_000_000).contains(&ttft), "ttft {ttft} us");
    // 22 x $3 + 9,000 x $0.30 + 1,500 x $6 + 15 x $15, per million
    assert_eq!(cost(&c), "$0.011991");

    let seen = api.only_request();
    assert_eq!(seen.body["stream"], true);
    assert_eq!(seen.api_key.as_deref(), Some(API_KEY));
    assert_eq!(seen.version.as_deref(), Some("2023-06-01"));
}

/// The byte offset of the middle of the stream's `message_delta` event: everything before it arrives.
fn middle_of_message_delta() -> usize {
    STREAM_FULL.find("event: message_delta").expect("message_delta") + 30
}

#[test]
fn stream_dropped_midway_is_a_failed_call_with_the_usage_so_far() {
    let api = MockApi::start(sse(STREAM_FULL, End::DropAfter(middle_of_message_delta())));
    let (reply, c, streamed) = call(&api, "claude-sonnet-4-5", true);
    match reply {
        Err(ClientError::Stream { error_type, partial_text }) => {
            assert_eq!(error_type, INCOMPLETE_STREAM);
            assert_eq!(partial_text, "Hello!");
        }
        other => panic!("expected a stream error, got {other:?}"),
    }
    assert_eq!(streamed, "Hello!");

    assert_anthropic_chat(&c, true);
    assert_eq!(c.outcome.label(), INCOMPLETE_STREAM);
    assert_eq!(c.request_id.as_deref(), Some("msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"));
    assert_eq!(c.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    // Only message_start's usage arrived: the prompt side is known, the output only as far as it said.
    assert!(c.metered);
    assert_eq!(tokens(&c), (22, 9_000, 0, 1_500, 1));
    let ttft = c.time_to_first_token_us.expect("time to first token");
    assert!((40_000..10_000_000).contains(&ttft), "ttft {ttft} us");
    // 22 x $3 + 9,000 x $0.30 + 1,500 x $6 + 1 x $15, per million
    assert_eq!(cost(&c), "$0.011781");
}

#[test]
fn stream_that_stalls_past_the_read_timeout_is_a_timeout() {
    // The server sends message_start and the first text, then nothing for longer than the client waits for a
    // read: the call fails as `timeout` (not `stream_incomplete`), with the usage so far.
    let cut = STREAM_FULL.find("event: content_block_stop").expect("block stop");
    let api = MockApi::start(sse(STREAM_FULL, End::StallAfter(cut)));
    let h = Harness::new();
    let mut streamed = String::new();
    let reply = h.run(|| {
        // 1 s: reqwest's timeout also bounds the wait for the headers, which a loaded machine can slow.
        let client = ClaudeClient::with_read_timeout(&api.url, API_KEY, Duration::from_secs(1)).expect("client");
        client.stream_message(&request("claude-sonnet-4-5"), |t| streamed.push_str(t))
    });
    match reply {
        Err(ClientError::Stream { error_type, partial_text }) => {
            assert_eq!((error_type.as_str(), partial_text.as_str()), ("timeout", "Hello!"));
        }
        other => panic!("expected a timed-out stream, got {other:?}"),
    }
    assert_eq!(streamed, "Hello!");
    let c = h.seen.only_call();
    assert_eq!(c.outcome.label(), "timeout");
    assert!(c.metered);
    assert_eq!(tokens(&c), (22, 9_000, 0, 1_500, 1));
}

#[test]
fn a_stream_ends_at_message_stop_whatever_the_connection_does_after() {
    // A proxy holds the connection open after `message_stop` (here 5 s, then it closes): the client kept reading,
    // so the call returned, and its span closed, only then, its duration counting the wait.
    let api = MockApi::start(sse(STREAM_FULL, End::StallAfter(STREAM_FULL.len())));
    let h = Harness::new();
    let started = std::time::Instant::now();
    let reply = h.run(|| {
        let client = ClaudeClient::with_read_timeout(&api.url, API_KEY, Duration::from_secs(30)).expect("client");
        client.stream_message(&request("claude-sonnet-4-5"), |_| {})
    });
    assert!(reply.is_ok(), "{reply:?}");
    // Far under the 5 s the server holds on (a loaded machine takes some of the margin).
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    let c = h.seen.only_call();
    assert!(!c.outcome.is_error() && c.metered);
    assert!(c.duration_us < 4_000_000, "{}", c.duration_us);
}

#[test]
fn stream_closed_cleanly_before_message_stop_is_incomplete_too() {
    let cut = STREAM_FULL.find("event: content_block_delta").expect("delta");
    let api = MockApi::start(sse(STREAM_FULL, End::CloseAfter(cut)));
    let (reply, c, streamed) = call(&api, "claude-sonnet-4-5", true);
    assert!(matches!(reply, Err(ClientError::Stream { .. })));
    assert_eq!(streamed, "");
    assert_eq!(c.outcome.label(), INCOMPLETE_STREAM);
    assert!(c.metered);
    assert_eq!(tokens(&c), (22, 9_000, 0, 1_500, 1));
    assert_eq!(c.time_to_first_token_us, None);
}

#[test]
fn stream_cut_before_message_start_is_unmetered() {
    let api = MockApi::start(sse(STREAM_FULL, End::DropAfter(60)));
    let (reply, c, _) = call(&api, "claude-sonnet-4-5", true);
    assert!(matches!(reply, Err(ClientError::Stream { .. })));
    assert_eq!(c.outcome.label(), INCOMPLETE_STREAM);
    assert!(!c.metered);
    assert_eq!(c.model.as_deref(), Some("claude-sonnet-4-5"));
    assert_eq!(c.request_id, None);
}

#[test]
fn error_event_mid_stream_fails_the_call_and_keeps_its_usage() {
    let api = MockApi::start(sse(STREAM_ERROR, End::Whole));
    let (reply, c, streamed) = call(&api, "claude-opus-4-6", true);
    match reply {
        Err(ClientError::Stream { error_type, .. }) => assert_eq!(error_type, "overloaded_error"),
        other => panic!("expected a stream error, got {other:?}"),
    }
    assert_eq!(streamed, "Let me");

    assert_anthropic_chat(&c, true);
    assert_eq!(c.outcome.label(), "overloaded_error");
    assert_eq!(c.request_id.as_deref(), Some("msg_01Ge9V8yWnU3yMAXoT3qKnPn"));
    assert!(c.metered);
    assert_eq!(tokens(&c), (310, 0, 0, 0, 1));
    let ttft = c.time_to_first_token_us.expect("time to first token");
    assert!((40_000..10_000_000).contains(&ttft), "ttft {ttft} us");
}

#[test]
fn streaming_request_answered_with_an_error_status() {
    let api = MockApi::start(json(529, OVERLOADED));
    let (reply, c, _) = call(&api, "claude-sonnet-4-5", true);
    assert!(matches!(reply, Err(ClientError::Api { status: 529, .. })));
    assert_anthropic_chat(&c, true);
    // The API's error type, not "stream_incomplete": no stream ever started.
    assert_eq!(c.outcome.label(), "overloaded_error");
    assert!(!c.metered);
    assert_eq!(c.time_to_first_token_us, None);
}

#[test]
fn streaming_request_answered_with_one_json_message() {
    // A gateway that ignores "stream": true: one JSON body. Pushed into the event decoder it made no events and
    // ended as "stream_incomplete", its usage lost.
    let api = MockApi::start(json(200, PLAIN));
    let (reply, c, streamed) = call(&api, "claude-sonnet-4-5", true);
    let reply = reply.expect("reply");
    assert_eq!(reply.text, "Hi! My name is Claude.");
    assert_eq!(reply.stop_reason.as_deref(), Some("end_turn"));
    assert_eq!(streamed, "", "nothing streamed");
    assert_anthropic_chat(&c, true);
    assert!(!c.outcome.is_error(), "{:?}", c.outcome);
    assert!(c.metered);
    assert_eq!(tokens(&c), (2095, 0, 0, 0, 503));
    assert_eq!(c.request_id.as_deref(), Some("msg_013Zva2CMHLNnXjNJJKqJ2EF"));
    assert_eq!(cost(&c), "$0.01383");
}

#[test]
fn a_json_message_sent_as_an_event_stream_on_a_held_connection() {
    // A gateway that ignores "stream": true but keeps `text/event-stream`, and holds the connection open after
    // the body (5 s): the client read until its read timeout and failed an answered, billed call as "timeout",
    // with no text.
    let api = MockApi::start(sse(PLAIN, End::StallAfter(PLAIN.len())));
    let h = Harness::new();
    let started = std::time::Instant::now();
    let reply = h.run(|| {
        let client = ClaudeClient::with_read_timeout(&api.url, API_KEY, Duration::from_secs(2)).expect("client");
        client.stream_message(&request("claude-sonnet-4-5"), |_| {})
    });
    let reply = reply.expect("reply");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(reply.text, "Hi! My name is Claude.");
    let c = h.seen.only_call();
    assert!(!c.outcome.is_error() && c.metered, "{:?}", c.outcome);
    assert_eq!(tokens(&c), (2095, 0, 0, 0, 503));
}

#[test]
fn an_error_body_sent_as_an_event_stream_on_a_held_connection_returns_at_once() {
    // The stream failed at once, but the read loop waited for `is_complete()`, which an error never sets: the
    // call returned after the read timeout, its duration counting the wait.
    let api = MockApi::start(sse(OVERLOADED, End::StallAfter(OVERLOADED.len())));
    let h = Harness::new();
    let started = std::time::Instant::now();
    let reply = h.run(|| {
        let client = ClaudeClient::with_read_timeout(&api.url, API_KEY, Duration::from_secs(2)).expect("client");
        client.stream_message(&request("claude-sonnet-4-5"), |_| {})
    });
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(
        matches!(&reply, Err(ClientError::Stream { error_type, .. }) if error_type == "overloaded_error"),
        "{reply:?}"
    );
    assert_eq!(h.seen.only_call().outcome.label(), "overloaded_error");
}

#[test]
fn streaming_request_answered_with_an_error_body_and_a_success_status() {
    let api = MockApi::start(json(200, OVERLOADED));
    let (reply, c, _) = call(&api, "claude-sonnet-4-5", true);
    assert!(
        matches!(&reply, Err(ClientError::Stream { error_type, .. }) if error_type == "overloaded_error"),
        "{reply:?}"
    );
    assert_eq!(c.outcome.label(), "overloaded_error");
    assert!(!c.metered);
}

// === attribution and privacy ===

#[test]
fn calls_inherit_dimensions_from_the_enclosing_span() {
    let api = MockApi::start(json(200, CACHE));
    let h = Harness::new();
    h.run(|| {
        let _conversation = tracing::info_span!("conversation", session.id = "sess-42", user.id = "u-7").entered();
        let client = ClaudeClient::new(&api.url, API_KEY).expect("client");
        client.create_message(&request("claude-sonnet-4-5")).expect("reply");
    });
    let c = h.seen.only_call();
    assert_eq!(c.dimensions.session.as_deref(), Some("sess-42"));
    assert_eq!(c.dimensions.user.as_deref(), Some("u-7"));
}

/// A layer that keeps every field value any span or event recorded, as text.
#[derive(Clone, Default)]
struct FieldSpy(Arc<Mutex<Vec<String>>>);

struct SpyVisitor<'a>(&'a mut Vec<String>);

impl Visit for SpyVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push(format!("{}={value}", field.name()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push(format!("{}={value:?}", field.name()));
    }
}

impl<S: Subscriber> Layer<S> for FieldSpy {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        attrs.record(&mut SpyVisitor(&mut self.0.lock()));
    }
    fn on_record(&self, _id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        values.record(&mut SpyVisitor(&mut self.0.lock()));
    }
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        event.record(&mut SpyVisitor(&mut self.0.lock()));
    }
}

#[test]
fn no_prompt_or_response_text_reaches_any_span_or_record() {
    let plain = MockApi::start(json(200, PLAIN));
    let streamed = MockApi::start(sse(STREAM_FULL, End::Whole));
    let h = Harness::new();
    let spy = FieldSpy::default();
    let subscriber = tracing_subscriber::registry().with(h.meter.layer()).with(spy.clone());
    tracing::subscriber::with_default(subscriber, || {
        let client = ClaudeClient::new(&plain.url, API_KEY).expect("client");
        client.create_message(&request("claude-sonnet-4-5")).expect("reply");
        let client = ClaudeClient::new(&streamed.url, API_KEY).expect("client");
        client.stream_message(&request("claude-sonnet-4-5"), |_| {}).expect("reply");
    });

    let recorded = spy.0.lock().clone();
    assert!(recorded.iter().any(|v| v.starts_with("output_tokens=")), "{recorded:#?}");
    assert!(recorded.iter().any(|v| v == "otel.name=chat claude-sonnet-4-5"), "{recorded:#?}");
    let records = serde_json::to_string(&h.seen.calls()).expect("json");
    for text in [PROMPT, "My name is Claude", "Hello", API_KEY] {
        assert!(!recorded.iter().any(|v| v.contains(text)), "{text:?} in {recorded:#?}");
        assert!(!records.contains(text), "{text:?} in {records}");
    }
    assert_eq!(h.seen.calls().len(), 2);
}
