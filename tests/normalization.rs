//! The inclusive-vs-uncached input rule and its correction counter.

use crate::common;

use common::Harness;
use tracing::info_span;

#[test]
fn inclusive_input_smaller_than_cache_parts_is_taken_as_uncached_and_counted() {
    let h = Harness::new();
    h.run(|| {
        // A client that put Anthropic's uncached `input_tokens` into the semconv (inclusive) field.
        let _s = info_span!(
            "chat",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.usage.input_tokens = 50u64,
            gen_ai.usage.cache_read.input_tokens = 20_000u64,
            gen_ai.usage.output_tokens = 10u64,
        );
    });
    let t = h.seen.only_call().tokens;
    assert_eq!((t.input, t.cache_read), (50, 20_000));
    assert_eq!(h.meter.capture_stats().normalization_corrections, 1);
}

#[test]
fn consistent_inclusive_input_needs_no_correction() {
    let h = Harness::new();
    h.run(|| {
        let _s = info_span!(
            "chat",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.usage.input_tokens = 20_050u64,
            gen_ai.usage.cache_read.input_tokens = 20_000u64,
        );
    });
    assert_eq!(h.seen.only_call().tokens.input, 50);
    assert_eq!(h.meter.capture_stats().normalization_corrections, 0);
}

#[test]
fn uncached_field_wins_over_inclusive_when_both_are_given() {
    let h = Harness::new();
    h.run(|| {
        let _s = info_span!(
            "chat",
            model = "claude-sonnet-4-5",
            gen_ai.usage.input_tokens = 20_050u64,
            input_tokens = 50u64,
            cache_read_input_tokens = 20_000u64,
        );
    });
    assert_eq!(h.seen.only_call().tokens.input, 50);
    assert_eq!(h.meter.capture_stats().normalization_corrections, 0);
}
