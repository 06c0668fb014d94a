//! Rules for emitters whose fields mean something other than the capture contract says.

use super::values::RawTokens;

/// How to read the fields of the calls a rule names, where an emitter's meaning differs from the capture
/// contract's. Given to [`TokenMeterBuilder::with_capture_rule`](crate::TokenMeterBuilder::with_capture_rule).
///
/// Two readings can be changed:
/// - [`input_is_uncached`](Self::input_is_uncached): the cache-inclusive input field (`gen_ai.usage.input_tokens`,
///   `gen_ai.usage.prompt_tokens`, `prompt_tokens`) holds an *uncached* count, Anthropic's own `input_tokens`.
///   Capture subtracts a call's cache reads and writes from an inclusive input; when the field is smaller than
///   them it takes it as uncached already (and counts a correction). An emitter that records the uncached count
///   there is therefore read right whenever the cache parts outweigh it, and short by them otherwise: 5,000
///   uncached tokens beside a 3,000-token cache write are read as 2,000.
/// - [`cache_writes_are_1h`](Self::cache_writes_are_1h): a cache-write total recorded without its 5m/1h split
///   (`gen_ai.usage.cache_creation.input_tokens`, `cache_creation_input_tokens`) is one-hour writes, not the
///   five-minute writes capture takes it for (a one-hour write costs 2x the input rate, a five-minute one 1.25x).
///
/// Rig (`rig-core`) from 0.34 (its PR #1572) records Anthropic's uncached count under the semantic conventions'
/// name for its Anthropic provider, whose spans have targets under `rig` and the provider `anthropic`, and records
/// cache writes as one total (with `with_automatic_caching_1h()` they are one-hour writes). Rig before 0.34, and
/// rig's later code (its `anthropic_usage_totals`), record the inclusive count: there the rule would count the
/// cache twice, so check what your rig records first. For a rig that records the uncached count:
///
/// ```
/// use tokenmeter::capture::CaptureRule;
///
/// let meter = tokenmeter::TokenMeter::builder()
///     .with_capture_rule(CaptureRule::new().target("rig").provider("anthropic").input_is_uncached())
///     .build();
/// assert_eq!(meter.capture_stats().capture_rule_calls, 0);
/// ```
///
/// A rule names a call when every condition it has holds; a rule without conditions names every call. A call
/// several rules name is read with all their readings. A call that also has an uncached input field (Anthropic's
/// `input_tokens`, `usage.input_tokens`) keeps reading that one, and a write total given with any part of its
/// split keeps the split's reading. The calls whose reading a rule changed are counted in
/// [`CaptureStats::capture_rule_calls`](crate::CaptureStats::capture_rule_calls).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureRule {
    target: Option<Box<str>>,
    provider: Option<Box<str>>,
    input_is_uncached: bool,
    cache_writes_are_1h: bool,
}

/// What the rules naming one call change in its reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Readings {
    pub(crate) input_is_uncached: bool,
    pub(crate) cache_writes_are_1h: bool,
}

impl CaptureRule {
    /// A rule that names every call and changes nothing, until conditions and readings are added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only calls whose span's target is `prefix` or a module under it: `rig` takes `rig` and
    /// `rig::completions`, not `rigging`. A trailing `::` is ignored; an empty prefix is no condition.
    #[must_use]
    pub fn target(mut self, prefix: impl Into<String>) -> Self {
        let prefix: String = prefix.into();
        let prefix = prefix.trim_end_matches("::");
        self.target = (!prefix.is_empty()).then(|| prefix.into());
        self
    }

    /// Only calls whose provider (`gen_ai.provider.name`, else `gen_ai.system`) is `name`, ASCII case ignored. A
    /// call that names no provider does not match. An empty name is no condition.
    #[must_use]
    pub fn provider(mut self, name: impl Into<String>) -> Self {
        let name: String = name.into();
        self.provider = (!name.is_empty()).then(|| name.into());
        self
    }

    /// Reads the cache-inclusive input field as uncached input.
    #[must_use]
    pub fn input_is_uncached(mut self) -> Self {
        self.input_is_uncached = true;
        self
    }

    /// Reads a cache-write total without its split as one-hour writes.
    #[must_use]
    pub fn cache_writes_are_1h(mut self) -> Self {
        self.cache_writes_are_1h = true;
        self
    }

    /// Whether the rule changes any reading.
    pub(crate) fn changes_anything(&self) -> bool {
        self.input_is_uncached || self.cache_writes_are_1h
    }

    /// Whether a call from a span with this target and this provider is named.
    pub(crate) fn matches(&self, target: &str, provider: Option<&str>) -> bool {
        let target_ok = self.target.as_deref().is_none_or(|prefix| {
            target.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        });
        let provider_ok =
            self.provider.as_deref().is_none_or(|want| provider.is_some_and(|p| p.eq_ignore_ascii_case(want)));
        target_ok && provider_ok
    }

    /// `raw` as the rules naming this call read it, or `None` when they change nothing.
    pub(crate) fn apply(
        rules: &[CaptureRule],
        target: &str,
        provider: Option<&str>,
        raw: &RawTokens,
    ) -> Option<RawTokens> {
        let r = Self::readings(rules, target, provider);
        let mut out = *raw;
        let mut changed = false;
        if r.input_is_uncached && out.uncached_input.is_none() && out.inclusive_input.is_some() {
            (out.uncached_input, out.inclusive_input) = (out.inclusive_input, None);
            changed = true;
        }
        if r.cache_writes_are_1h
            && out.cache_write.is_some()
            && out.cache_write_5m.is_none()
            && out.cache_write_1h.is_none()
        {
            (out.cache_write_1h, out.cache_write) = (out.cache_write, None);
            changed = true;
        }
        changed.then_some(out)
    }

    /// The readings of every rule in `rules` that names this call.
    pub(crate) fn readings(rules: &[CaptureRule], target: &str, provider: Option<&str>) -> Readings {
        let mut r = Readings::default();
        for rule in rules.iter().filter(|rule| rule.matches(target, provider)) {
            r.input_is_uncached |= rule.input_is_uncached;
            r.cache_writes_are_1h |= rule.cache_writes_are_1h;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::{CaptureRule, Readings};

    #[test]
    fn target_matches_the_module_and_those_under_it() {
        let rule = CaptureRule::new().target("rig");
        assert!(rule.matches("rig", None));
        assert!(rule.matches("rig::completions", None));
        assert!(!rule.matches("rigging", None));
        assert!(!rule.matches("app::rig", None));
        assert_eq!(CaptureRule::new().target("rig::"), rule);
        assert!(CaptureRule::new().target("rig::completions").matches("rig::completions", None));
        assert!(!CaptureRule::new().target("rig::completions").matches("rig::agent_chat", None));
    }

    #[test]
    fn provider_is_compared_without_ascii_case_and_must_be_named() {
        let rule = CaptureRule::new().provider("anthropic");
        assert!(rule.matches("app", Some("anthropic")));
        assert!(rule.matches("app", Some("Anthropic")));
        assert!(!rule.matches("app", Some("openai")));
        assert!(!rule.matches("app", None));
        let both = CaptureRule::new().target("rig").provider("anthropic");
        assert!(both.matches("rig::completions", Some("anthropic")));
        assert!(!both.matches("rig::completions", Some("openrouter")));
        assert!(!both.matches("app", Some("anthropic")));
    }

    #[test]
    fn empty_conditions_are_no_conditions() {
        assert!(CaptureRule::new().matches("anything", None));
        assert_eq!(CaptureRule::new().target("").provider(""), CaptureRule::new());
        assert_eq!(CaptureRule::new().target("::"), CaptureRule::new());
    }

    #[test]
    fn the_rules_naming_a_call_add_their_readings() {
        let rules = [
            CaptureRule::new().target("rig").input_is_uncached(),
            CaptureRule::new().provider("anthropic").cache_writes_are_1h(),
            CaptureRule::new().target("other").input_is_uncached().cache_writes_are_1h(),
        ];
        let both = Readings { input_is_uncached: true, cache_writes_are_1h: true };
        assert_eq!(CaptureRule::readings(&rules, "rig::completions", Some("anthropic")), both);
        let input = Readings { input_is_uncached: true, cache_writes_are_1h: false };
        assert_eq!(CaptureRule::readings(&rules, "rig::completions", Some("openai")), input);
        assert_eq!(CaptureRule::readings(&rules, "app", None), Readings::default());
        assert!(!CaptureRule::new().target("rig").changes_anything());
    }
}
