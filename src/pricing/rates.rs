//! Rates, model prices, and the pricing of one call.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{LONG_CONTEXT_THRESHOLD, Money, PriceBookError};
use crate::record::{CallRecord, TokenUsage};

/// Per-token prices in pico-USD per token, which is the same number as micro-USD per million tokens
/// ($3 / Mtok is `3_000_000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Cache writes with the 5-minute lifetime.
    pub cache_write_5m: u64,
    /// Cache writes with the 1-hour lifetime.
    pub cache_write_1h: u64,
    /// Cache reads (hits and refreshes).
    pub cache_read: u64,
}

impl Rates {
    /// Rates from micro-USD per million tokens: input, output, 5-minute write, 1-hour write, read
    /// (`per_mtok_micros(3_000_000, 15_000_000, 3_750_000, 6_000_000, 300_000)` is Sonnet 4.5).
    pub const fn per_mtok_micros(
        input: u64,
        output: u64,
        cache_write_5m: u64,
        cache_write_1h: u64,
        cache_read: u64,
    ) -> Rates {
        Rates { input, output, cache_write_5m, cache_write_1h, cache_read }
    }

    /// Rates from USD per million tokens: input, output, 5-minute write, 1-hour write, read.
    ///
    /// Each value must be finite, non-negative, at most about 1.8e13, and a whole number of micro-USD per
    /// million tokens (6 decimals), allowing for the float's own representation error (1e-9 of a micro-USD,
    /// or 4 ulps of the scaled value if larger): `0.3` is accepted, `0.1234567` is rejected with
    /// [`PriceBookError::InvalidRate`].
    pub fn from_usd_per_mtok(
        input: f64,
        output: f64,
        cache_write_5m: f64,
        cache_write_1h: f64,
        cache_read: f64,
    ) -> Result<Rates, PriceBookError> {
        Ok(Rates {
            input: usd_per_mtok_to_micros("input", input)?,
            output: usd_per_mtok_to_micros("output", output)?,
            cache_write_5m: usd_per_mtok_to_micros("cache_write_5m", cache_write_5m)?,
            cache_write_1h: usd_per_mtok_to_micros("cache_write_1h", cache_write_1h)?,
            cache_read: usd_per_mtok_to_micros("cache_read", cache_read)?,
        })
    }

    /// Rates from input and output alone, with Anthropic's usual cache multipliers: 5-minute write 1.25x
    /// input, 1-hour write 2x, read 0.1x (each rounded half up to a whole pico-USD per token).
    pub const fn with_default_cache(input: u64, output: u64) -> Rates {
        Rates {
            input,
            output,
            cache_write_5m: default_cache_write_5m(input),
            cache_write_1h: input.saturating_mul(2),
            cache_read: default_cache_read(input),
        }
    }
}

/// 1.25x, rounded half up.
pub(super) const fn default_cache_write_5m(input: u64) -> u64 {
    let x = input as u128 * 5;
    let q = x / 4 + if x % 4 >= 2 { 1 } else { 0 };
    if q > u64::MAX as u128 { u64::MAX } else { q as u64 }
}

/// 0.1x, rounded half up.
pub(super) const fn default_cache_read(input: u64) -> u64 {
    input / 10 + if input % 10 >= 5 { 1 } else { 0 }
}

/// USD per million tokens as a float to micro-USD per million tokens, exactly or not at all.
fn usd_per_mtok_to_micros(field: &str, value: f64) -> Result<u64, PriceBookError> {
    let invalid = |reason: &'static str| PriceBookError::InvalidRate { field: field.to_owned(), value, reason };
    if value.is_nan() {
        return Err(invalid("not a number"));
    }
    if value.is_infinite() {
        return Err(invalid("infinite"));
    }
    if value < 0.0 {
        return Err(invalid("negative"));
    }
    let scaled = value * 1e6;
    let rounded = scaled.round();
    let tolerance = 1e-9_f64.max(scaled * 4.0 * f64::EPSILON);
    if (scaled - rounded).abs() > tolerance {
        return Err(invalid("more precise than 0.000001 USD per million tokens"));
    }
    // 2^64: the first value that does not fit.
    if rounded >= 18_446_744_073_709_551_616.0 {
        return Err(invalid("too large"));
    }
    Ok(rounded as u64)
}

/// The price of one model: standard rates, optional long-context rates, optional fast-mode multiplier, and
/// the shortest prompt prefix the model caches (where known; it decides where a caching saving is claimed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPrice {
    /// Rates of ordinary calls.
    pub standard: Rates,
    /// Rates of every token of a call whose prompt exceeds the model's
    /// [`long_context_threshold`](Self::long_context_threshold), for models that have them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_context: Option<Rates>,
    /// The prompt size (input + cache writes + cache reads) above which [`long_context`](Self::long_context)
    /// applies, where it is not [`LONG_CONTEXT_THRESHOLD`] (200,000): Claude Haiku 5.5's is 100,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_context_over: Option<u64>,
    /// Multiplier on all rates for `speed = "fast"` calls, for models that have fast mode. Fast mode never
    /// costs less than standard: 0 is read as 1 (price files refuse it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_multiplier: Option<u32>,
    /// The shortest prompt prefix, in tokens, the model caches: a shorter `cache_control` prefix is sent as
    /// uncached input without an error. `None` where not known: the ledger then uses
    /// [`DEFAULT_MIN_CACHEABLE_TOKENS`](crate::ledger::DEFAULT_MIN_CACHEABLE_TOKENS) (and
    /// [`with_min_cacheable_tokens`](crate::ledger::LedgerConfig::with_min_cacheable_tokens), when set,
    /// replaces every model's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cacheable_tokens: Option<u64>,
}

impl ModelPrice {
    /// A price with standard rates only.
    pub fn new(standard: Rates) -> Self {
        ModelPrice {
            standard,
            long_context: None,
            long_context_over: None,
            fast_multiplier: None,
            min_cacheable_tokens: None,
        }
    }

    /// The prompt size above which the long-context rates apply: [`long_context_over`](Self::long_context_over),
    /// or [`LONG_CONTEXT_THRESHOLD`] (200,000).
    pub fn long_context_threshold(&self) -> u64 {
        self.long_context_over.unwrap_or(LONG_CONTEXT_THRESHOLD)
    }

    /// The pricing rules `earlier` had and this price lacks, by their price-file keys (`long_context`,
    /// `fast_multiplier`): what a price replacing `earlier` leaves those calls priced without (at its standard
    /// rates).
    pub fn rules_lost_from(&self, earlier: &ModelPrice) -> Vec<&'static str> {
        [
            ("long_context", earlier.long_context.is_some() && self.long_context.is_none()),
            ("fast_multiplier", earlier.fast_multiplier.is_some() && self.fast_multiplier.is_none()),
        ]
        .into_iter()
        .filter_map(|(key, lost)| lost.then_some(key))
        .collect()
    }

    /// Adds long-context rates, for prompts over [`LONG_CONTEXT_THRESHOLD`] (200,000 tokens).
    pub fn with_long_context(mut self, rates: Rates) -> Self {
        self.long_context = Some(rates);
        self
    }

    /// Adds long-context rates for prompts over `threshold` tokens (Claude Haiku 5.5: 100,000).
    pub fn with_long_context_over(mut self, threshold: u64, rates: Rates) -> Self {
        self.long_context = Some(rates);
        self.long_context_over = Some(threshold);
        self
    }

    /// Adds a fast-mode multiplier (0 is read as 1: a fast call is never priced at $0).
    pub fn with_fast_multiplier(mut self, multiplier: u32) -> Self {
        self.fast_multiplier = Some(multiplier);
        self
    }

    /// Sets the shortest prompt prefix the model caches.
    pub fn with_min_cacheable_tokens(mut self, tokens: u64) -> Self {
        self.min_cacheable_tokens = Some(tokens);
        self
    }
}

/// A call's priced cost with its per-kind breakdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCost {
    /// The sum of the five kinds and the web search fee.
    pub total: Money,
    /// Uncached input.
    pub input: Money,
    /// Cache reads.
    pub cache_read: Money,
    /// Cache writes, 5-minute lifetime.
    pub cache_write_5m: Money,
    /// Cache writes, 1-hour lifetime.
    pub cache_write_1h: Money,
    /// Output (reasoning included).
    pub output: Money,
    /// The web search fee: the call's [`web_search_requests`](crate::record::CallRecord::web_search_requests)
    /// times the book's [`web_search_fee`](crate::PriceBook::web_search_fee). Flat: batch, fast mode and long
    /// context change token rates only. Absent from a serialized cost when zero.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub web_search: Money,
    /// What the cache reads saved: cache_read tokens × (input rate − read rate) at the rates this call was
    /// billed at (0 if read rate >= input rate).
    #[serde(default)]
    pub cache_savings: Money,
    /// Canonical model id the call was priced as, e.g. `"claude-sonnet-4-5"`.
    pub priced_as: Arc<str>,
    /// Billed at long-context rates.
    #[serde(default)]
    pub long_context: bool,
    /// Billed at batch rates (half price).
    #[serde(default)]
    pub batch: bool,
    /// Billed at fast-mode rates.
    #[serde(default)]
    pub fast: bool,
    /// Billed at the rates of inference kept in one geography ([`REGIONAL_MULTIPLIER`], 1.1x): the Messages
    /// API's US-only inference (`inference_geo = "us"`), or a regional endpoint on Amazon Bedrock
    /// (`us.anthropic.claude-…`) or Google Vertex AI, on Claude Sonnet 4.5 and later models
    /// ([`PricedModel::bills_regional`]). Absent from a serialized cost when false; read back, `us_only` (its
    /// earlier name) is the same flag.
    #[serde(default, skip_serializing_if = "is_false", alias = "us_only")]
    pub regional: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The multiplier on every token rate of a call whose inference was kept in one geography, as a fraction:
/// 11/10 is 1.1x. Anthropic bills the Messages API's US-only inference (`inference_geo = "us"`, which the API
/// takes on Claude Opus 4.6, Sonnet 4.6 and later) so, and Amazon Bedrock and Google Vertex AI bill their
/// regional endpoints so (Claude Sonnet 4.5 and later; their global endpoints have no premium). The web search
/// fee is flat.
pub const REGIONAL_MULTIPLIER: (u128, u128) = (11, 10);

/// Canonical ids of the models Bedrock's and Vertex AI's regional premium leaves at their earlier prices
/// ("Claude Sonnet 4, Opus 4, and earlier"; Opus 4.1 came before Sonnet 4.5): every other Claude model, a newer
/// one or one a price file adds under a `claude-…` id, pays it.
const BEFORE_REGIONAL_PREMIUM: &[&str] = &["claude-opus-4", "claude-opus-4-1", "claude-sonnet-4"];

/// Whether `canonical` is billed the regional premium when its inference stays in one geography: a Claude
/// model (Vertex AI's regional hosts serve other vendors' models too, without Anthropic's premium) from Sonnet 4.5
/// on.
fn has_regional_premium(canonical: &str) -> bool {
    if !canonical.starts_with("claude-") {
        return false;
    }
    let older = canonical.starts_with("claude-3")
        || canonical.starts_with("claude-2")
        || canonical.starts_with("claude-instant")
        || BEFORE_REGIONAL_PREMIUM.contains(&canonical);
    !older
}

fn is_zero(money: &Money) -> bool {
    money.is_zero()
}

impl CallCost {
    /// Adds `searches` web searches at `fee` each (saturating) to the web search fee and the total.
    fn add_web_searches(&mut self, searches: u64, fee: Money) {
        let amount = Money::from_picos(u128::from(searches).saturating_mul(fee.picos()));
        self.web_search = self.web_search.saturating_add(amount);
        self.total = self.total.saturating_add(amount);
    }

    /// What the call's tokens cost: [`total`](Self::total) without the web search fee.
    pub fn tokens_total(&self) -> Money {
        self.total.saturating_sub(self.web_search)
    }
}

/// A model id resolved against a price book: cheap to clone, prices calls without further lookups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedModel {
    canonical: Arc<str>,
    price: ModelPrice,
    web_search_fee: Money,
}

impl PricedModel {
    pub(super) fn new(canonical: Arc<str>, price: ModelPrice, web_search_fee: Money) -> Self {
        PricedModel { canonical, price, web_search_fee }
    }

    /// A copy with its own allocation of the canonical id. Per-thread caches keep these, so that the
    /// reference count every priced call's [`CallCost::priced_as`] bumps is not one cache line shared by all
    /// recording threads.
    pub(crate) fn detached(&self) -> Self {
        PricedModel {
            canonical: Arc::from(&*self.canonical),
            price: self.price.clone(),
            web_search_fee: self.web_search_fee,
        }
    }

    /// The canonical model id.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// [`canonical`](Self::canonical), shared.
    pub(crate) fn canonical_arc(&self) -> &Arc<str> {
        &self.canonical
    }

    /// The model's price.
    pub fn price(&self) -> &ModelPrice {
        &self.price
    }

    /// The fee of one web search, from the book the model was resolved in.
    pub fn web_search_fee(&self) -> Money {
        self.web_search_fee
    }

    /// Prices one call record: its tokens as [`cost_in_geo`](Self::cost_in_geo) prices them, at the record's
    /// service tier, speed and inference geography (its `inference_geo`, else the geography of a Bedrock
    /// inference-profile id in its `model`: `us` for `us.anthropic.claude-…`), plus its web searches at the
    /// [`web_search_fee`](Self::web_search_fee).
    pub fn price_call(&self, record: &CallRecord) -> CallCost {
        let mut cost = self.cost_in_geo(
            &record.tokens,
            record.service_tier.as_deref(),
            record.speed.as_deref(),
            call_geography(record.inference_geo.as_deref(), record.model.as_deref()),
        );
        if record.web_search_requests > 0 {
            cost.add_web_searches(record.web_search_requests, self.web_search_fee);
        }
        cost
    }

    /// Prices one call's tokens (a record's web searches too: [`price_call`](Self::price_call)).
    ///
    /// - Long context: when `input + cache_write_5m + cache_write_1h + cache_read` exceeds the model's
    ///   [`long_context_threshold`](ModelPrice::long_context_threshold) and the model has long-context rates,
    ///   every token of the call, output included, is billed at those rates.
    /// - Fast: `speed` equal to `"fast"` (ASCII case-insensitive) on a model with a fast multiplier multiplies
    ///   every rate; on other models the call is billed at standard speed (`fast: false`).
    /// - Batch: `service_tier` equal to `"batch"` (ASCII case-insensitive) halves every rate.
    ///
    /// Per kind, the cost is `tokens × rate × fast multiplier` in exact `u128` pico-USD (saturating), then
    /// halved for batch. When that halving is not exact (an odd number of picos, possible only with an odd
    /// rate and multiplier) it rounds half up, i.e. up by half a pico-USD; with the built-in rates, which
    /// are all even, it is always exact. Cache savings go through the same steps with the rate
    /// `input − cache_read`.
    ///
    /// Inference kept in one geography (US-only, or a cloud's regional endpoint) is priced by
    /// [`cost_in_geo`](Self::cost_in_geo).
    pub fn cost(&self, tokens: &TokenUsage, service_tier: Option<&str>, speed: Option<&str>) -> CallCost {
        self.cost_in_geo(tokens, service_tier, speed, None)
    }

    /// [`cost`](Self::cost), with where inference ran: a geography ([`bills_regional`](Self::bills_regional):
    /// `us`, a Bedrock geography such as `eu`, or a cloud region such as `us-east5`) multiplies every token rate
    /// by [`REGIONAL_MULTIPLIER`] (1.1x) on Claude Sonnet 4.5 and later models, after the fast multiplier; batch
    /// then halves. The two divisions (by 10, and by 2 for batch) are one, rounded half up to the pico-USD:
    /// exact with the built-in rates, which are multiples of 10 pico-USD a token. `global`, `not_available` and
    /// no geography are the standard rates.
    pub fn cost_in_geo(
        &self,
        tokens: &TokenUsage,
        service_tier: Option<&str>,
        speed: Option<&str>,
        inference_geo: Option<&str>,
    ) -> CallCost {
        let batch = service_tier.is_some_and(|t| t.trim().eq_ignore_ascii_case("batch"));
        let regional = self.bills_regional(inference_geo);
        let fast_multiplier = match (speed, self.price.fast_multiplier) {
            (Some(s), Some(m)) if s.trim().eq_ignore_ascii_case("fast") => Some(m.max(1)),
            _ => None,
        };
        let prompt = u128::from(tokens.input)
            + u128::from(tokens.cache_write_5m)
            + u128::from(tokens.cache_write_1h)
            + u128::from(tokens.cache_read);
        let (rates, long_context) = match self.price.long_context {
            Some(long) if prompt > u128::from(self.price.long_context_threshold()) => (long, true),
            _ => (self.price.standard, false),
        };

        let kind = |count: u64, rate: u64| -> Money {
            Money::from_picos(billed_picos(count, rate, fast_multiplier, regional, batch))
        };

        let input = kind(tokens.input, rates.input);
        let cache_read = kind(tokens.cache_read, rates.cache_read);
        let cache_write_5m = kind(tokens.cache_write_5m, rates.cache_write_5m);
        let cache_write_1h = kind(tokens.cache_write_1h, rates.cache_write_1h);
        let output = kind(tokens.output, rates.output);
        let cache_savings = kind(tokens.cache_read, rates.input.saturating_sub(rates.cache_read));
        CallCost {
            total: input + cache_read + cache_write_5m + cache_write_1h + output,
            input,
            cache_read,
            cache_write_5m,
            cache_write_1h,
            output,
            web_search: Money::ZERO,
            cache_savings,
            priced_as: Arc::clone(&self.canonical),
            long_context,
            batch,
            fast: fast_multiplier.is_some(),
            regional,
        }
    }

    /// Whether a call of this model whose inference ran in `inference_geo` pays the regional premium
    /// ([`REGIONAL_MULTIPLIER`]): the geography is one ([`is_regional_geography`]) and the model is a Claude
    /// model from Sonnet 4.5 on (by its canonical id: a `claude-…` id a price file adds pays it too; Claude
    /// Sonnet 4, Opus 4, Opus 4.1 and the Claude 3 models do not, nor any other vendor's model).
    pub fn bills_regional(&self, inference_geo: Option<&str>) -> bool {
        inference_geo.is_some() && has_regional_premium(&self.canonical) && is_regional_geography(inference_geo)
    }
}

/// Whether `inference_geo` names a geography inference was kept in (ASCII case ignored, whitespace trimmed):
/// the Messages API's `us`, a Bedrock inference profile's geography (`us`, `eu`, `apac`, `jp`, `au`, `ca`,
/// `us-gov`, …), or a cloud region (Google Cloud's `us-east5` and `europe-west1`, AWS's `us-east-1`). Not
/// `global`, not the API's `not_available`, not an empty value, and not anything else (a value that names no
/// geography is not guessed to cost more).
pub fn is_regional_geography(inference_geo: Option<&str>) -> bool {
    let Some(geo) = inference_geo.map(str::trim).filter(|g| !g.is_empty()) else { return false };
    if geo.eq_ignore_ascii_case("global") {
        return false;
    }
    super::normalize::REGION_PREFIXES.iter().any(|p| p.eq_ignore_ascii_case(geo)) || is_cloud_region(geo)
}

/// A cloud region's name: words of letters joined by `-`, then a number that ends the last word (Google
/// Cloud's `us-east5`, `northamerica-northeast1`) or stands after two or more words (AWS's `us-east-1`,
/// `us-gov-west-1`). `gpt-4`, `v-2` and `not_available` are not.
fn is_cloud_region(geo: &str) -> bool {
    let letters = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphabetic());
    let digits = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit());
    let Some((words, last)) = geo.rsplit_once('-') else { return false };
    let count = words.split('-').count();
    if !words.split('-').all(letters) {
        return false;
    }
    let number_at = last.bytes().position(|b| b.is_ascii_digit()).unwrap_or(last.len());
    let (word, number) = last.split_at(number_at);
    match (word.is_empty(), digits(number)) {
        (true, true) => count >= 2,
        (false, true) => letters(word),
        _ => false,
    }
}

/// Whether a recorded `inference_geo` says where inference ran: not empty, and not the API's `not_available`
/// (a model that does not take the parameter; Claude Code writes an empty value). One that does not leaves the
/// geography to the model id or the host.
pub(crate) fn geography_stated(inference_geo: &str) -> bool {
    let g = inference_geo.trim();
    !g.is_empty() && !g.eq_ignore_ascii_case("not_available")
}

/// Where a call's inference ran, for pricing: its `inference_geo` when it says ([`geography_stated`]), else the
/// geography of a Bedrock inference-profile id in its model (`us` for `us.anthropic.claude-…`).
pub(crate) fn call_geography<'a>(inference_geo: Option<&'a str>, model: Option<&str>) -> Option<&'a str> {
    inference_geo
        .filter(|g| geography_stated(g))
        .or_else(|| model.and_then(super::normalize::bedrock_geography))
        .or(inference_geo)
}

/// `count × rate` pico-USD, times the fast multiplier, times 1.1 when inference was kept in one geography,
/// halved for batch (saturating; the divisions made once, rounded half up): the one formula every price of a
/// token kind goes through.
pub(crate) fn billed_picos(count: u64, rate: u64, fast: Option<u32>, regional: bool, batch: bool) -> u128 {
    let mut picos = u128::from(count) * u128::from(rate);
    if let Some(m) = fast {
        picos = picos.saturating_mul(u128::from(m));
    }
    let mut divisor = 1;
    if regional {
        // Saturated, it stays the most there is (as a global call's would), not a tenth of it.
        match picos.checked_mul(REGIONAL_MULTIPLIER.0) {
            Some(p) => (picos, divisor) = (p, REGIONAL_MULTIPLIER.1),
            None => picos = u128::MAX,
        }
    }
    if batch {
        divisor *= 2;
    }
    if divisor == 1 { picos } else { picos / divisor + u128::from(picos % divisor * 2 >= divisor) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_usd_per_mtok_exact() {
        assert_eq!(
            Rates::from_usd_per_mtok(3.0, 15.0, 3.75, 6.0, 0.3).unwrap(),
            Rates::per_mtok_micros(3_000_000, 15_000_000, 3_750_000, 6_000_000, 300_000)
        );
        assert_eq!(
            Rates::from_usd_per_mtok(0.1, 0.5, 0.125, 0.2, 0.01).unwrap(),
            Rates::per_mtok_micros(100_000, 500_000, 125_000, 200_000, 10_000)
        );
        assert_eq!(
            Rates::from_usd_per_mtok(0.000001, 123456.789012, 0.0, -0.0, 0.3 + 0.6).unwrap(),
            Rates::per_mtok_micros(1, 123_456_789_012, 0, 0, 900_000)
        );
        // 16.1 × 1e6 is 16,100,000.000000002 as a float: more than 1e-9 off, within 4 ulps, so still exact.
        assert_eq!(
            Rates::from_usd_per_mtok(16.1, 32.2, 16.4, 16.6, 16.01).unwrap(),
            Rates::per_mtok_micros(16_100_000, 32_200_000, 16_400_000, 16_600_000, 16_010_000)
        );
    }

    #[test]
    fn from_usd_per_mtok_rejects() {
        let check = |rates: Result<Rates, PriceBookError>, field: &str, reason: &str| match rates {
            Err(PriceBookError::InvalidRate { field: f, reason: r, .. }) => {
                assert_eq!(f, field);
                assert!(r.contains(reason), "{r}");
            }
            other => panic!("expected InvalidRate, got {other:?}"),
        };
        check(Rates::from_usd_per_mtok(-1.0, 1.0, 1.0, 1.0, 1.0), "input", "negative");
        check(Rates::from_usd_per_mtok(1.0, f64::NAN, 1.0, 1.0, 1.0), "output", "not a number");
        check(Rates::from_usd_per_mtok(1.0, 1.0, f64::INFINITY, 1.0, 1.0), "cache_write_5m", "infinite");
        check(Rates::from_usd_per_mtok(1.0, 1.0, 1.0, 0.1234567, 1.0), "cache_write_1h", "more precise");
        check(Rates::from_usd_per_mtok(1.0, 1.0, 1.0, 1.0, 1e14), "cache_read", "too large");
        let err = Rates::from_usd_per_mtok(1.0, 1.0, 1.0, 1.0, -2.5).unwrap_err();
        assert_eq!(err.to_string(), "invalid rate `cache_read` = -2.5 USD per million tokens: negative");
    }

    #[test]
    fn default_cache_multipliers() {
        assert_eq!(
            Rates::with_default_cache(3_000_000, 15_000_000),
            Rates::per_mtok_micros(3_000_000, 15_000_000, 3_750_000, 6_000_000, 300_000)
        );
        // 1.25 × 3 = 3.75 → 4 (half up); 0.1 × 5 = 0.5 → 1; 0.1 × 4 = 0.4 → 0.
        assert_eq!(default_cache_write_5m(3), 4);
        assert_eq!(default_cache_write_5m(1), 1);
        assert_eq!(default_cache_write_5m(u64::MAX), u64::MAX);
        assert_eq!(default_cache_read(5), 1);
        assert_eq!(default_cache_read(4), 0);
        assert_eq!(default_cache_read(u64::MAX), 1_844_674_407_370_955_162);
    }

    #[test]
    fn odd_batch_halving_rounds_half_up() {
        let model = PricedModel::new("odd".into(), ModelPrice::new(Rates::with_default_cache(3, 1)), Money::ZERO);
        let tokens = TokenUsage { input: 1, output: 3, ..TokenUsage::default() };
        let cost = model.cost(&tokens, Some("batch"), None);
        // 1 × 3 = 3 picos → 1.5 → 2; 3 × 1 = 3 → 2.
        assert_eq!(cost.input.picos(), 2);
        assert_eq!(cost.output.picos(), 2);
        assert_eq!(cost.total.picos(), 4);
    }
}
