//! A minimal instrumented Claude client: real HTTP calls to the Messages API, metered by tokenmeter.
//!
//! ```text
//! ANTHROPIC_API_KEY=sk-ant-... cargo run --example claude_http
//! ```
//!
//! It makes one ordinary call and one streamed call, then prints what the meter recorded. Settings:
//!
//! - `ANTHROPIC_API_KEY` (required): without it the example only explains what to set, and sends nothing.
//! - `ANTHROPIC_BASE_URL` (default `https://api.anthropic.com`): any server that speaks the Messages API.
//! - `ANTHROPIC_MODEL` (default `claude-haiku-4-5`).
//! - `RUST_LOG` (default `info`): the fmt layer prints each call span to stderr when it closes, with every
//!   field recorded into it. The span carries counts, ids and model names, never the prompt or the answer.
//!
//! The client lives in `examples/claude_http/client.rs`; the tests run it against a local server.

#[path = "claude_http/client.rs"]
mod client;

use std::io::Write;
use std::process::ExitCode;

use client::{ClaudeClient, Request};
use tokenmeter::TokenMeter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::prelude::*;

const DEFAULT_MODEL: &str = "claude-haiku-4-5";

fn main() -> ExitCode {
    if std::env::var("ANTHROPIC_API_KEY").map_or(true, |k| k.trim().is_empty()) {
        println!(
            "claude_http: a minimal instrumented Messages API client.\n\n\
             Set ANTHROPIC_API_KEY to make two small real calls (one plain, one streamed) and see them metered:\n\n\
             \x20   ANTHROPIC_API_KEY=sk-ant-... cargo run --example claude_http\n\n\
             Optional: ANTHROPIC_BASE_URL (default {}), ANTHROPIC_MODEL (default {DEFAULT_MODEL}), RUST_LOG.\n\
             Nothing was sent.",
            client::DEFAULT_BASE_URL
        );
        return ExitCode::SUCCESS;
    }

    let meter = TokenMeter::builder().build();
    // The fmt layer gets its own filter, so RUST_LOG never hides call spans from the meter; beside it the meter's
    // layer has its own too (`filtered_layer`), or the `trace!` callsites fmt's filter turns off (hyper's,
    // reqwest's) would be made and dispatched for the whole process.
    let fmt_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_span_events(FmtSpan::CLOSE)
                .with_filter(fmt_filter),
        )
        .with(meter.filtered_layer())
        .init();

    let client = match ClaudeClient::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("claude_http: {e}");
            return ExitCode::FAILURE;
        }
    };
    let model = std::env::var("ANTHROPIC_MODEL").unwrap_or_else(|_| DEFAULT_MODEL.to_owned());
    let mut failures = 0;

    println!("1. create_message ({model})");
    let request = Request::user(&model, 200, "In one sentence: what does prompt caching save?");
    match client.create_message(&request) {
        Ok(reply) => println!("   {}\n   {}\n", reply.text.trim(), describe(&reply)),
        Err(e) => {
            failures += 1;
            eprintln!("   failed: {e}\n");
        }
    }

    println!("2. stream_message ({model})");
    let request = Request::user(&model, 200, "Name three uses of a tracing span, one line each.");
    print!("   ");
    let streamed = client.stream_message(&request, |text| {
        print!("{}", text.replace('\n', "\n   "));
        let _ = std::io::stdout().flush();
    });
    match streamed {
        Ok(reply) => println!("\n   {}\n", describe(&reply)),
        Err(e) => {
            failures += 1;
            eprintln!("\n   failed: {e}\n");
            if let client::ClientError::Stream { partial_text, .. } = &e {
                eprintln!("   ({} bytes of text arrived before the stream ended)\n", partial_text.len());
            }
        }
    }

    println!("What tokenmeter recorded:");
    for m in meter.model_usage() {
        let t = &m.totals;
        let cost = if m.priced { t.cost.to_string() } else { String::from("unpriced") };
        println!(
            "   {}: {} call(s) ({} failed, {} without usage), input {}, cache read {}, cache write {}, output {}, cost {cost}",
            m.model,
            t.calls,
            t.failed_calls,
            t.unmetered_calls,
            t.tokens.input,
            t.tokens.cache_read,
            t.tokens.cache_write(),
            t.tokens.output,
        );
    }
    let stats = meter.capture_stats();
    println!("   capture: {} calls, {} rejected values", stats.calls, stats.rejected_values);

    if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// One line about a reply: what the API said about it, as the client returned it.
fn describe(reply: &client::Reply) -> String {
    let u = &reply.usage;
    format!(
        "[{} from {}, stop: {}; usage: input {}, cache read {}, cache write {}, output {}]",
        reply.id.as_deref().unwrap_or("?"),
        reply.model.as_deref().unwrap_or("?"),
        reply.stop_reason.as_deref().unwrap_or("?"),
        u.input_tokens.unwrap_or(0),
        u.cache_read_input_tokens.unwrap_or(0),
        u.cache_creation_input_tokens.unwrap_or(0),
        u.output_tokens.unwrap_or(0),
    )
}
