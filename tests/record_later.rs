//! Token and model fields declared `Empty` and recorded later with `Span::record` are captured.

use crate::common;

use common::Harness;
use tracing::field::Empty;
use tracing::info_span;

#[test]
fn values_recorded_after_creation() {
    let h = Harness::new();
    h.run(|| {
        let span = info_span!(
            "chat",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.response.model = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.usage.cache_read.input_tokens = Empty,
            error.type = Empty,
        );
        let _enter = span.enter();
        span.record("gen_ai.response.model", "claude-sonnet-4-5-20250929");
        span.record("gen_ai.usage.input_tokens", 5_000u64);
        span.record("gen_ai.usage.cache_read.input_tokens", 4_000u64);
        span.record("gen_ai.usage.output_tokens", 250u64);
    });
    let call = h.seen.only_call();
    assert_eq!((call.tokens.input, call.tokens.cache_read, call.tokens.output), (1_000, 4_000, 250));
    assert_eq!(call.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    // 1,000 x $3 + 4,000 x $0.30 + 250 x $15, per million: $0.00795.
    assert_eq!(call.cost.as_ref().map(|c| c.total.picos()), Some(7_950_000_000));
}

#[test]
fn a_later_record_replaces_an_earlier_one() {
    let h = Harness::new();
    h.run(|| {
        let span = info_span!("chat", model = "claude-haiku-4-5", output_tokens = 10u64, input_tokens = Empty);
        span.record("output_tokens", 99u64);
        span.record("input_tokens", 7u64);
    });
    let t = h.seen.only_call().tokens;
    assert_eq!((t.input, t.output), (7, 99));
}

#[test]
fn declared_but_never_recorded_is_an_unmetered_call() {
    let h = Harness::new();
    h.run(|| {
        let span = info_span!(
            "chat",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            error.type = Empty,
        );
        span.record("error.type", "timeout");
    });
    let call = h.seen.only_call();
    assert!(!call.metered);
    assert!(call.cost.is_none());
    assert!(!call.is_unpriced(), "unmetered is not the same as unpriced");
    assert_eq!(call.outcome.label(), "timeout");
    let totals = h.meter.total_usage();
    assert_eq!((totals.calls, totals.unmetered_calls, totals.failed_calls), (1, 1, 1));
}
