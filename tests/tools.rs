//! Semconv tool-execution spans are counted per tool and linked to the session/task they ran in.

mod common;

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
