//! The built-in price table.

use super::{ModelPrice, Rates};

/// Rates in micro-USD per million tokens (input, output, 5m write, 1h write, read).
const fn r(input: u64, output: u64, w5: u64, w1: u64, read: u64) -> Rates {
    Rates::per_mtok_micros(input, output, w5, w1, read)
}

/// One dollar per million tokens, in micro-USD per million tokens.
const D: u64 = 1_000_000;

const HAIKU_3: Rates = r(D / 4, 5 * D / 4, 3 * D / 10, D / 2, 3 * D / 100);
const OPUS_3: Rates = r(15 * D, 75 * D, 18_750_000, 30 * D, 1_500_000);
const HAIKU_3_5: Rates = r(800_000, 4 * D, D, 1_600_000, 80_000);
const SONNET_3: Rates = r(3 * D, 15 * D, 3_750_000, 6 * D, 300_000);
const SONNET_4_LONG: Rates = r(6 * D, 22_500_000, 7_500_000, 12 * D, 600_000);
const HAIKU_4_5: Rates = r(D, 5 * D, 1_250_000, 2 * D, 100_000);
const OPUS_4_5: Rates = r(5 * D, 25 * D, 6_250_000, 10 * D, 500_000);
const SONNET_5: Rates = r(2 * D, 10 * D, 2_500_000, 4 * D, 200_000);
const OPUS_5_5: Rates = r(4 * D, 20 * D, 5 * D, 8 * D, 200_000);
const SONNET_5_5: Rates = r(2 * D, 10 * D, 2_500_000, 4 * D, 100_000);
const HAIKU_5_5: Rates = r(100_000, 500_000, 125_000, 200_000, 10_000);
/// Claude Fable 5 and Mythos 5 (the same model, Mythos with some safeguards off for approved organizations).
const FABLE_5: Rates = r(10 * D, 50 * D, 12_500_000, 20 * D, D);
/// Claude Fable 5.1 and Mythos 5.1: Fable 5's rates with a cache read at 0.025x input.
const FABLE_5_1: Rates = r(10 * D, 50 * D, 12_500_000, 20 * D, D / 4);
/// Claude Haiku 5.5 over a 100,000-token prompt (its overview page: five times every rate).
const HAIKU_5_5_LONG: Rates = r(500_000, 2_500_000, 625_000, D, 50_000);

/// The built-in table as `(canonical id, price)`: the reference prices of DESIGN.md, plus the fast-mode
/// multipliers, minimum cacheable prompts, Claude Haiku 5.5's long-context band and the Claude Fable and Mythos
/// models (which DESIGN.md leaves out) documented on [`PriceBook::builtin`](super::PriceBook::builtin).
pub(super) fn builtin_prices() -> Vec<(&'static str, ModelPrice)> {
    let std = ModelPrice::new;
    vec![
        ("claude-3-haiku", std(HAIKU_3).with_min_cacheable_tokens(2_048)),
        ("claude-3-opus", std(OPUS_3).with_min_cacheable_tokens(1_024)),
        ("claude-opus-4", std(OPUS_3).with_min_cacheable_tokens(1_024)),
        ("claude-opus-4-1", std(OPUS_3).with_min_cacheable_tokens(1_024)),
        ("claude-3-5-haiku", std(HAIKU_3_5).with_min_cacheable_tokens(2_048)),
        ("claude-3-5-sonnet", std(SONNET_3).with_min_cacheable_tokens(1_024)),
        ("claude-3-7-sonnet", std(SONNET_3).with_min_cacheable_tokens(1_024)),
        ("claude-sonnet-4", std(SONNET_3).with_long_context(SONNET_4_LONG).with_min_cacheable_tokens(1_024)),
        ("claude-sonnet-4-5", std(SONNET_3).with_long_context(SONNET_4_LONG).with_min_cacheable_tokens(1_024)),
        ("claude-sonnet-4-6", std(SONNET_3).with_min_cacheable_tokens(1_024)),
        ("claude-haiku-4-5", std(HAIKU_4_5).with_min_cacheable_tokens(4_096)),
        ("claude-opus-4-5", std(OPUS_4_5).with_min_cacheable_tokens(4_096)),
        ("claude-opus-4-6", std(OPUS_4_5).with_fast_multiplier(6).with_min_cacheable_tokens(4_096)),
        ("claude-opus-4-7", std(OPUS_4_5).with_fast_multiplier(6)),
        ("claude-opus-4-8", std(OPUS_4_5).with_fast_multiplier(2).with_min_cacheable_tokens(1_024)),
        ("claude-opus-5", std(OPUS_4_5).with_fast_multiplier(2).with_min_cacheable_tokens(512)),
        ("claude-sonnet-5", std(SONNET_5).with_min_cacheable_tokens(1_024)),
        ("claude-opus-5-5", std(OPUS_5_5).with_fast_multiplier(2)),
        ("claude-sonnet-5-5", std(SONNET_5_5)),
        ("claude-haiku-5-5", std(HAIKU_5_5).with_long_context_over(100_000, HAIKU_5_5_LONG)),
        ("claude-fable-5", std(FABLE_5)),
        ("claude-mythos-5", std(FABLE_5)),
        ("claude-fable-5-1", std(FABLE_5_1)),
        ("claude-mythos-5-1", std(FABLE_5_1)),
    ]
}
