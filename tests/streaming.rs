//! Usage carried by events inside a call span: streamed usage is cumulative, so later values replace earlier.

use crate::common;

use common::Harness;
use tracing::field::Empty;
use tracing::{info, info_span};

#[test]
fn cumulative_stream_events_replace_never_sum() {
    let h = Harness::new();
    h.run(|| {
        let span = info_span!(
            "chat claude-sonnet-4-5",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.request.stream = true,
            input_tokens = Empty,
            output_tokens = Empty,
        );
        let _e = span.enter();
        // message_start: input known, output 1
        info!(input_tokens = 2_000u64, cache_read_input_tokens = 18_000u64, output_tokens = 1u64, "message_start");
        // message_delta events: cumulative output
        info!(output_tokens = 120u64, "message_delta");
        info!(output_tokens = 480u64, "message_delta");
    });
    let t = h.seen.only_call().tokens;
    assert_eq!((t.input, t.cache_read, t.output), (2_000, 18_000, 480));
}

#[test]
fn events_in_a_child_span_reach_the_enclosing_call() {
    let h = Harness::new();
    h.run(|| {
        let call = info_span!("chat", model = "claude-haiku-4-5", input_tokens = Empty, output_tokens = Empty);
        let _c = call.enter();
        let chunk = info_span!("read_stream", chunk = 1u64);
        let _k = chunk.enter();
        info!(input_tokens = 10u64, output_tokens = 20u64);
    });
    let t = h.seen.only_call().tokens;
    assert_eq!((t.input, t.output), (10, 20));
}

#[test]
fn usage_event_outside_any_call_is_not_a_call() {
    let h = Harness::new();
    h.run(|| {
        info!(input_tokens = 10u64, output_tokens = 20u64, "stray usage");
        let _s = info_span!("session", session.id = "s1").entered();
        info!(input_tokens = 10u64, "still not inside a call");
    });
    assert!(h.seen.calls().is_empty());
}

#[test]
fn stream_cut_off_before_usage_is_an_unmetered_failed_call() {
    let h = Harness::new();
    h.run(|| {
        let span = info_span!("chat", model = "claude-sonnet-4-5", input_tokens = Empty, output_tokens = Empty, error.type = Empty);
        span.record("error.type", "stream_dropped");
    });
    let call = h.seen.only_call();
    assert!(!call.metered);
    assert_eq!(call.outcome.label(), "stream_dropped");
}
