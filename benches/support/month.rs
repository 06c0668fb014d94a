//! A month of agent traffic as spans, shared by `examples/memory.rs` (peak memory) and `benches/replay.rs` (a
//! restart over its journal): sessions one after another, ten turns each, 5,000 users, 50 projects, 10 agents,
//! 3 models, prompt caching (each turn reads the previous turn's prompt from the cache and writes the rest).

use tokenmeter::ManualClock;
use tracing::field::Empty;

/// The models the sessions rotate through.
pub const MODELS: [&str; 3] = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"];

/// Records `calls` LLM calls over `sessions` sessions through the current dispatcher, advancing `clock` by
/// `step` after each call; `after(n)` runs after the `n`th call (1-based). Returns the calls made.
pub fn record_month(
    clock: &ManualClock,
    calls: u64,
    sessions: u64,
    step: chrono::Duration,
    mut after: impl FnMut(u64),
) -> u64 {
    let turns = calls.div_ceil(sessions.max(1)).max(1);
    let mut done = 0u64;
    'outer: for s in 0..sessions {
        let session_id = format!("session-{s:06}");
        let user = format!("user-{}", s % 5_000);
        let project = format!("project-{}", s % 50);
        let agent = format!("agent-{}", s % 10);
        let session = tracing::info_span!(
            "agent_session",
            session.id = session_id.as_str(),
            user.id = user.as_str(),
            project = project.as_str(),
            gen_ai.agent.name = agent.as_str(),
        );
        let _s = session.enter();
        for t in 0..turns {
            if done == calls {
                break 'outer;
            }
            let span = tracing::info_span!(
                "chat",
                gen_ai.operation.name = "chat",
                gen_ai.provider.name = "anthropic",
                gen_ai.request.model = MODELS[(s % 3) as usize],
                gen_ai.response.id = Empty,
                gen_ai.usage.input_tokens = Empty,
                gen_ai.usage.cache_read.input_tokens = Empty,
                gen_ai.usage.cache_creation.input_tokens = Empty,
                gen_ai.usage.output_tokens = Empty,
            );
            let _e = span.enter();
            let id = format!("msg_{done:012}");
            span.record("gen_ai.response.id", id.as_str());
            let prompt = 2_000 + 1_500 * t;
            let cached = if t == 0 { 0 } else { 2_000 + 1_500 * (t - 1) };
            span.record("gen_ai.usage.input_tokens", prompt);
            span.record("gen_ai.usage.cache_read.input_tokens", cached);
            span.record("gen_ai.usage.cache_creation.input_tokens", prompt - cached - 200);
            span.record("gen_ai.usage.output_tokens", 300 + (done % 700));
            drop(_e);
            drop(span);
            clock.advance(step);
            done += 1;
            after(done);
        }
    }
    done
}
