//! Normalization of raw token fields to [`TokenUsage`].

use crate::record::TokenUsage;

use super::values::RawTokens;

/// Which normalization rules had to correct what a source said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Corrections {
    /// An "inclusive" input smaller than its own cache parts: the source meant uncached input.
    pub(crate) inclusive_input_was_uncached: bool,
    /// Reasoning tokens larger than output: the source counted reasoning outside output.
    pub(crate) reasoning_outside_output: bool,
}

impl Corrections {
    pub(crate) fn count(&self) -> u64 {
        self.inclusive_input_was_uncached as u64 + self.reasoning_outside_output as u64
    }
}

/// Turns raw fields of any convention into tokenmeter's disjoint kinds.
///
/// - Cache writes: the 5m / 1h split when given; a total without a split (or the part of a total the split does
///   not cover) is a 5-minute write, Anthropic's default lifetime.
/// - Input: Anthropic's raw `input_tokens` is already uncached. A semconv / OpenAI-style input includes cache
///   reads and writes, so they are subtracted; when it is *smaller* than those parts it cannot have included
///   them, so it is taken as uncached and the correction is counted.
/// - Reasoning is a part of output; when a source reports more reasoning than output, its output excluded
///   reasoning, so the two are added and the correction is counted.
pub(crate) fn normalize(raw: &RawTokens) -> (TokenUsage, Corrections) {
    let mut fixes = Corrections::default();
    let cache_read = raw.cache_read.unwrap_or(0);
    let (mut w5, w1) = match (raw.cache_write_5m, raw.cache_write_1h) {
        (None, None) => (raw.cache_write.unwrap_or(0), 0),
        (a, b) => (a.unwrap_or(0), b.unwrap_or(0)),
    };
    if let Some(total) = raw.cache_write {
        let split = w5.saturating_add(w1);
        if total > split {
            w5 = w5.saturating_add(total - split);
        }
    }
    let cache_parts = cache_read.saturating_add(w5).saturating_add(w1);
    let input = match (raw.uncached_input, raw.inclusive_input) {
        (Some(uncached), _) => uncached,
        (None, Some(inclusive)) if inclusive >= cache_parts => inclusive - cache_parts,
        (None, Some(inclusive)) => {
            fixes.inclusive_input_was_uncached = true;
            inclusive
        }
        (None, None) => 0,
    };
    let reasoning = raw.reasoning.unwrap_or(0);
    let mut output = raw.output.unwrap_or(0);
    if reasoning > output {
        fixes.reasoning_outside_output = true;
        // Each count is at most `MAX_TOKENS_PER_FIELD`, and so is their sum: the journal's readers reject a
        // larger one, so a call counted live would be lost at the next replay.
        output = output.saturating_add(reasoning).min(super::values::MAX_TOKENS_PER_FIELD);
    }
    (TokenUsage { input, cache_read, cache_write_5m: w5, cache_write_1h: w1, output, reasoning }, fixes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawTokens {
        RawTokens::default()
    }

    #[test]
    fn semconv_input_includes_cache() {
        let (u, fix) = normalize(&RawTokens {
            inclusive_input: Some(1_000),
            cache_read: Some(600),
            cache_write: Some(300),
            output: Some(50),
            ..raw()
        });
        assert_eq!(
            u,
            TokenUsage { input: 100, cache_read: 600, cache_write_5m: 300, output: 50, ..Default::default() }
        );
        assert_eq!(fix.count(), 0);
    }

    #[test]
    fn inclusive_smaller_than_parts_is_uncached_and_counted() {
        let (u, fix) = normalize(&RawTokens { inclusive_input: Some(100), cache_read: Some(600), ..raw() });
        assert_eq!(u.input, 100);
        assert!(fix.inclusive_input_was_uncached);
    }

    #[test]
    fn anthropic_split_and_remainder() {
        let (u, _) = normalize(&RawTokens {
            uncached_input: Some(10),
            cache_write: Some(500),
            cache_write_1h: Some(200),
            ..raw()
        });
        assert_eq!((u.input, u.cache_write_5m, u.cache_write_1h), (10, 300, 200));
    }

    #[test]
    fn reasoning_beyond_output_is_added() {
        let (u, fix) = normalize(&RawTokens { output: Some(10), reasoning: Some(30), ..raw() });
        assert_eq!((u.output, u.reasoning), (40, 30));
        assert!(fix.reasoning_outside_output);
        // Two counts capture accepts make no output the journal's readers reject.
        let max = super::super::values::MAX_TOKENS_PER_FIELD;
        let (u, _) = normalize(&RawTokens { output: Some(max - 1), reasoning: Some(max), ..raw() });
        assert_eq!((u.output, u.reasoning), (max, max));
    }
}
