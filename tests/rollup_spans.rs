//! Spans whose usage rolls up the calls inside them (an `invoke_agent` span carrying its agent's totals, as the
//! GenAI agent-span conventions allow) are not counted again; the calls inside them are.

use crate::common;

use common::Harness;
use tracing::field::Empty;
use tracing::info_span;

fn chat(model: &str, input: u64, output: u64) {
    let span = info_span!(
        "chat",
        gen_ai.operation.name = "chat",
        gen_ai.request.model = model,
        gen_ai.usage.input_tokens = input,
        gen_ai.usage.output_tokens = output,
    );
    drop(span);
}

/// An agent span as the conventions describe it: `invoke_agent`, a model, and the sum of its calls' usage.
fn agent_span(name: &str) -> tracing::Span {
    info_span!(
        "invoke_agent",
        gen_ai.operation.name = "invoke_agent",
        gen_ai.agent.name = name,
        gen_ai.request.model = "claude-sonnet-4-5",
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
    )
}

#[test]
fn an_agent_span_with_its_calls_totals_is_not_counted_again() {
    let h = Harness::new();
    h.run(|| {
        let session = info_span!("session", session.id = "s1");
        let _s = session.enter();
        let agent = agent_span("planner");
        agent.in_scope(|| {
            chat("claude-sonnet-4-5", 2_000, 100);
            chat("claude-sonnet-4-5", 3_000, 200);
        });
        agent.record("gen_ai.usage.input_tokens", 5_000u64);
        agent.record("gen_ai.usage.output_tokens", 300u64);
    });
    let calls = h.seen.calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert!(calls.iter().all(|c| c.dimensions.agent.as_deref() == Some("planner")));
    let total = h.meter.total_usage();
    assert_eq!((total.calls, total.tokens.input, total.tokens.output), (2, 5_000, 300));
    // Sonnet 4.5: $3 in, $15 out per million: 5,000 x 3 + 300 x 15 = 19,500 micro-USD.
    assert_eq!(total.cost.to_string(), "$0.0195");
    let stats = h.meter.capture_stats();
    assert_eq!((stats.calls, stats.rollup_spans, stats.unmetered_calls), (2, 1, 0));
}

#[test]
fn an_agent_span_that_reports_tokens_only_itself_is_the_call() {
    // No call spans inside: the agent span's usage is all there is (an agent that reports only its totals).
    let h = Harness::new();
    h.run(|| {
        let agent = agent_span("solo");
        agent.record("gen_ai.usage.input_tokens", 1_000u64);
        agent.record("gen_ai.usage.output_tokens", 50u64);
    });
    let call = h.seen.only_call();
    assert_eq!((call.tokens.input, call.tokens.output), (1_000, 50));
    assert_eq!(call.operation.as_deref(), Some("invoke_agent"));
    assert_eq!(h.meter.capture_stats().rollup_spans, 0);
}

#[test]
fn an_agent_span_that_never_got_usage_is_not_an_unmetered_call() {
    // Declared usage fields left empty around real calls: without the rule it was one extra, unmetered call.
    let h = Harness::new();
    h.run(|| {
        agent_span("planner").in_scope(|| chat("claude-haiku-4-5", 100, 10));
    });
    let call = h.seen.only_call();
    assert_eq!(call.model.as_deref(), Some("claude-haiku-4-5"));
    let stats = h.meter.capture_stats();
    assert_eq!((stats.calls, stats.unmetered_calls, stats.rollup_spans), (1, 0, 1));
}

#[test]
fn nested_agents_count_each_model_call_once() {
    // invoke_agent > (chat, invoke_agent > chat): both agent spans carry totals; only the chats count.
    let h = Harness::new();
    h.run(|| {
        let outer = agent_span("lead");
        outer.in_scope(|| {
            chat("claude-opus-4-1", 1_000, 100);
            let inner = agent_span("researcher");
            inner.in_scope(|| chat("claude-haiku-4-5", 4_000, 400));
            inner.record("gen_ai.usage.input_tokens", 4_000u64);
            inner.record("gen_ai.usage.output_tokens", 400u64);
        });
        outer.record("gen_ai.usage.input_tokens", 5_000u64);
        outer.record("gen_ai.usage.output_tokens", 500u64);
    });
    let calls = h.seen.calls();
    let models: Vec<_> = calls.iter().map(|c| (c.model.as_deref().unwrap(), c.dimensions.agent.as_deref())).collect();
    assert_eq!(models, [("claude-opus-4-1", Some("lead")), ("claude-haiku-4-5", Some("researcher"))]);
    assert_eq!(h.meter.total_usage().tokens.input, 5_000);
    assert_eq!(h.meter.capture_stats().rollup_spans, 2);
}

#[test]
fn an_agent_span_whose_only_calls_are_in_a_nested_agent_is_still_a_rollup() {
    // The outer span has no call of its own directly inside: the skipped inner roll-up still marks it.
    let h = Harness::new();
    h.run(|| {
        let outer = agent_span("lead");
        outer.in_scope(|| {
            let inner = agent_span("worker");
            inner.in_scope(|| chat("claude-sonnet-4-5", 700, 70));
            inner.record("gen_ai.usage.input_tokens", 700u64);
        });
        outer.record("gen_ai.usage.input_tokens", 700u64);
    });
    assert_eq!(h.seen.only_call().tokens.input, 700);
    assert_eq!(h.meter.capture_stats().rollup_spans, 2);
}

#[test]
fn a_model_request_span_with_calls_inside_is_still_a_call() {
    // A `chat` span is one model request whatever runs inside it (a tool that calls a model while the outer
    // response streams): both are counted.
    let h = Harness::new();
    h.run(|| {
        let outer = info_span!(
            "chat",
            gen_ai.operation.name = "chat",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.usage.input_tokens = 900u64,
            gen_ai.usage.output_tokens = 90u64,
        );
        outer.in_scope(|| chat("claude-haiku-4-5", 100, 10));
    });
    let calls = h.seen.calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(h.meter.total_usage().tokens.input, 1_000);
    assert_eq!(h.meter.capture_stats().rollup_spans, 0);
}

#[test]
fn a_streamed_chat_span_as_rig_names_it_is_a_model_request_too() {
    // rig (`rig-core`) names a streamed request's operation `chat_streaming`.
    let h = Harness::new();
    h.run(|| {
        let outer = info_span!(
            target: "rig::completions",
            "chat_streaming",
            gen_ai.operation.name = "chat_streaming",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.usage.input_tokens = 900u64,
            gen_ai.usage.output_tokens = 90u64,
        );
        outer.in_scope(|| chat("claude-haiku-4-5", 100, 10));
    });
    assert_eq!(h.seen.calls().len(), 2);
    assert_eq!(h.meter.total_usage().tokens.input, 1_000);
    assert_eq!(h.meter.capture_stats().rollup_spans, 0);
}

#[test]
fn a_rollup_inside_a_task_leaves_the_task_its_calls() {
    let h = Harness::new();
    h.run(|| {
        let task = info_span!("task", task = "triage");
        task.in_scope(|| {
            let agent = agent_span("triager");
            agent.in_scope(|| {
                chat("claude-sonnet-4-5", 1_000, 10);
                chat("claude-sonnet-4-5", 1_000, 10);
            });
            agent.record("gen_ai.usage.input_tokens", 2_000u64);
            agent.record("gen_ai.usage.output_tokens", 20u64);
        });
    });
    let tasks = h.seen.tasks.lock().clone();
    assert_eq!(tasks.len(), 1);
    assert_eq!((tasks[0].calls, tasks[0].tokens.input, tasks[0].tokens.output), (2, 2_000, 20));
}

#[test]
fn usage_events_outside_any_call_span_are_counted() {
    let h = Harness::new();
    h.run(|| {
        tracing::info!(input_tokens = 10u64, output_tokens = 1u64, "usage with no span");
        info_span!("handler").in_scope(|| {
            tracing::info!(input_tokens = 10u64, output_tokens = -1i64, "usage in a plain span");
        });
    });
    assert!(h.seen.calls().is_empty());
    let stats = h.meter.capture_stats();
    assert_eq!((stats.orphan_usage_events, stats.rejected_values, stats.calls), (2, 1, 0));
}

#[test]
fn a_span_with_the_only_usage_of_unmetered_calls_inside_is_counted() {
    // The application records the usage on its own span; the client's span inside declares usage fields it
    // never records (as some do for streams). Skipping the outer span as a roll-up lost the call's tokens and
    // cost: one unmetered call, $0.
    let h = Harness::new();
    h.run(|| {
        let outer = info_span!("llm", model = "claude-sonnet-4-5", input_tokens = Empty, output_tokens = Empty);
        outer.in_scope(|| {
            let client = info_span!(
                "chat",
                gen_ai.operation.name = "chat",
                gen_ai.request.model = "claude-sonnet-4-5",
                gen_ai.usage.input_tokens = Empty,
                gen_ai.usage.output_tokens = Empty,
            );
            drop(client);
        });
        outer.record("input_tokens", 1_000u64);
        outer.record("output_tokens", 100u64);
    });
    let total = h.meter.total_usage();
    assert_eq!((total.tokens.input, total.tokens.output), (1_000, 100));
    // Sonnet 4.5: 1,000 x $3 + 100 x $15 per million.
    assert_eq!(total.cost.to_string(), "$0.0045");
    let stats = h.meter.capture_stats();
    assert_eq!((stats.calls, stats.unmetered_calls, stats.rollup_spans), (2, 1, 0));
}

#[test]
fn an_agent_span_around_an_agent_with_metered_calls_is_a_rollup() {
    // The inner agent span never got usage (skipped), but the call inside it did: the outer totals are theirs.
    let h = Harness::new();
    h.run(|| {
        let outer = agent_span("lead");
        outer.in_scope(|| agent_span("worker").in_scope(|| chat("claude-sonnet-4-5", 700, 70)));
        outer.record("gen_ai.usage.input_tokens", 700u64);
        outer.record("gen_ai.usage.output_tokens", 70u64);
    });
    assert_eq!(h.seen.only_call().tokens.input, 700);
    assert_eq!(h.meter.total_usage().tokens.input, 700);
    assert_eq!(h.meter.capture_stats().rollup_spans, 2);
}
