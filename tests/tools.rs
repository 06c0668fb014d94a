//! Semconv tool-execution spans are counted per tool and linked to the session/task they ran in.

use crate::common;

use common::Harness;
use tracing::info_span;

#[test]
fn tools_are_counted_per_name_with_errors_and_duration() {
    let h = Harness::new();
    h.run(|| {
        let _s = info_span!("conv", session.id = "s7").entered();
        let _t = info_span!("task", task = "research").entered();
        for i in 0..3u64 {
            let span = info_span!(
                "execute_tool web_search",
                gen_ai.operation.name = "execute_tool",
                gen_ai.tool.name = "web_search",
                error.type = tracing::field::Empty,
            );
            h.clock.advance(chrono::Duration::milliseconds(100));
            if i == 2 {
                span.record("error.type", "timeout");
            }
        }
        let _other = info_span!("execute_tool", gen_ai.operation.name = "execute_tool", gen_ai.tool.name = "read_file")
            .entered();
        // A chat span that names a tool is not a tool execution.
        let _not_tool = info_span!("chat", gen_ai.operation.name = "chat", gen_ai.tool.name = "web_search").entered();
    });
    let usage = h.meter.tool_usage();
    assert_eq!(usage.len(), 2);
    let ws = usage.iter().find(|t| &*t.tool == "web_search").unwrap();
    assert_eq!((ws.invocations, ws.errors, ws.total_duration_us), (3, 1, 300_000));
    let records = h.seen.tools.lock().clone();
    assert_eq!(records.len(), 4);
    assert!(records.iter().all(|r| r.dimensions.session.as_deref() == Some("s7")));
    assert!(records.iter().all(|r| r.dimensions.task.as_deref() == Some("research")));
    assert!(h.seen.calls().is_empty(), "tool spans are not LLM calls");
}

#[test]
fn a_tool_span_with_token_fields_is_still_a_tool_execution() {
    // A sub-agent run as a tool, its span declaring token fields for the totals it records at the end: it was
    // taken for a call only (a roll-up of the calls inside it, so counted nowhere), and no tool was counted.
    let h = Harness::new();
    h.run(|| {
        let _s = info_span!("conv", session.id = "s7").entered();
        let tool = info_span!(
            "execute_tool research",
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = "research",
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
        );
        tool.in_scope(|| {
            let _call = info_span!(
                "chat",
                gen_ai.request.model = "claude-haiku-4-5",
                gen_ai.usage.input_tokens = 100u64,
                gen_ai.usage.output_tokens = 10u64,
            )
            .entered();
        });
        tool.record("gen_ai.usage.input_tokens", 100u64);
        tool.record("gen_ai.usage.output_tokens", 10u64);
        drop(tool);
        // Alone, with no call inside: a call (it recorded usage) and a tool execution.
        let _alone = info_span!(
            "execute_tool summarize",
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = "summarize",
            gen_ai.request.model = "claude-haiku-4-5",
            gen_ai.usage.input_tokens = 50u64,
            gen_ai.usage.output_tokens = 5u64,
        )
        .entered();
    });
    let usage = h.meter.tool_usage();
    let mut names: Vec<&str> = usage.iter().map(|t| &*t.tool).collect();
    names.sort_unstable();
    assert_eq!(names, ["research", "summarize"]);
    assert_eq!(h.seen.tools.lock().len(), 2);
    let calls = h.seen.calls();
    assert_eq!(calls.len(), 2, "the chat call inside research, and summarize's own: {calls:?}");
    assert_eq!(calls.iter().map(|c| c.tokens.input).sum::<u64>(), 150, "research's totals are not counted again");
}
