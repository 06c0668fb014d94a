//! A deterministic workload for the OTLP tests: calls on several models and agents (a dated model id, cache reads
//! and writes of both lifetimes, reasoning, streams with a time to first chunk), a failed call, an unmetered
//! call, an unpriced model, web searches, tasks (one failed) and tool executions (one failed).
#![allow(dead_code)]

use tokenmeter::TokenMeter;
use tracing::field::Empty;
use tracing::info_span;
use tracing_subscriber::prelude::*;

/// Calls one round of [`run`] makes.
pub const CALLS_PER_ROUND: u64 = 9;
/// Failed calls per round.
pub const FAILED_PER_ROUND: u64 = 2;
/// Tasks per round.
pub const TASKS_PER_ROUND: u64 = 2;
/// Tool executions per round.
pub const TOOLS_PER_ROUND: u64 = 3;
/// Web searches per round (all on one claude-sonnet-4-5 call of agent `triage`).
pub const WEB_SEARCHES_PER_ROUND: u64 = 2;

/// Runs one round of the workload through `meter`'s layer, as the thread's default subscriber.
pub fn run(meter: &TokenMeter) {
    let subscriber = tracing_subscriber::registry().with(meter.layer());
    tracing::subscriber::with_default(subscriber, workload);
}

fn workload() {
    let _session = info_span!("conversation", session.id = "s-e2e", project = "helpdesk").entered();
    {
        let _agent = info_span!("agent", gen_ai.agent.name = "triage").entered();
        let _task = info_span!("task", task = "summarize", error.type = Empty).entered();
        for i in 0..3u64 {
            let _call = info_span!(
                "chat claude-sonnet-4-5",
                gen_ai.provider.name = "anthropic",
                gen_ai.operation.name = "chat",
                gen_ai.request.model = "claude-sonnet-4-5",
                input_tokens = 1_200u64 + i,
                cache_read_input_tokens = 20_000u64,
                cache_creation.ephemeral_5m_input_tokens = 1_000u64,
                cache_creation.ephemeral_1h_input_tokens = if i == 0 { 2_000u64 } else { 0 },
                output_tokens = 450u64,
                output_tokens_details.thinking_tokens = 120u64,
            )
            .entered();
        }
        // A dated id: priced and exported as the canonical model. It made two web searches ($0.01 each).
        let _dated = info_span!(
            "chat",
            gen_ai.provider.name = "anthropic",
            gen_ai.operation.name = "chat",
            gen_ai.response.model = "claude-sonnet-4-5-20250929",
            gen_ai.usage.input_tokens = 5_000u64,
            gen_ai.usage.output_tokens = 700u64,
            server_tool_use.web_search_requests = WEB_SEARCHES_PER_ROUND,
        )
        .entered();
    }
    {
        let _agent = info_span!("agent", gen_ai.agent.name = "writer").entered();
        for _ in 0..2 {
            let _stream = info_span!(
                "chat claude-haiku-4-5",
                gen_ai.provider.name = "anthropic",
                gen_ai.operation.name = "chat",
                gen_ai.request.model = "claude-haiku-4-5",
                gen_ai.request.stream = true,
                gen_ai.response.time_to_first_chunk = 0.35f64,
                input_tokens = 3_000u64,
                output_tokens = 800u64,
            )
            .entered();
        }
        let _failed = info_span!(
            "chat claude-haiku-4-5",
            gen_ai.provider.name = "anthropic",
            gen_ai.operation.name = "chat",
            gen_ai.request.model = "claude-haiku-4-5",
            input_tokens = 900u64,
            output_tokens = 10u64,
            error.type = "overloaded_error",
        )
        .entered();
    }
    {
        let task = info_span!("task", task = "draft", error.type = Empty);
        let _t = task.enter();
        // Closed without usage (a dropped stream): an unmetered call, never a silent zero.
        let _unmetered = info_span!(
            "chat claude-opus-4-5",
            gen_ai.provider.name = "anthropic",
            gen_ai.operation.name = "chat",
            gen_ai.request.model = "claude-opus-4-5",
            gen_ai.usage.input_tokens = Empty,
            error.type = "timeout",
        )
        .entered();
        drop(_unmetered);
        // Not in the price book: counted, tokens exported, never $0.
        let _unpriced = info_span!(
            "chat mystery",
            gen_ai.provider.name = "acme",
            gen_ai.operation.name = "chat",
            gen_ai.request.model = "mystery-model-1",
            input_tokens = 2_500u64,
            output_tokens = 300u64,
        )
        .entered();
        drop(_unpriced);
        let _ = task.record("error.type", "gave_up");
    }
    for (tool, error) in [("web_search", None), ("web_search", Some("timeout")), ("read_file", None)] {
        let span = info_span!(
            "execute_tool",
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = tool,
            error.type = Empty,
        );
        if let Some(e) = error {
            span.record("error.type", e);
        }
    }
}
