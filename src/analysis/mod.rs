//! Reports computed at query time from the [`ledger`](crate::ledger)'s sums: typed structs that serialize
//! to snake_case JSON, the same ones the HTTP API, the CLI and the quickstart print.
//!
//! | report | method | answers |
//! |---|---|---|
//! | [`UsageSummary`] | [`Ledger::usage_summary`] | calls, tokens by kind, cost, averages, by model and provider, a time series, unpriced calls, distributions, monthly run-rate |
//! | [`EfficiencyReport`] | [`Ledger::efficiency_report`], [`Ledger::efficiency_report_for`] | the efficiency score, per-group scores, priced suggestions |
//! | [`CacheReport`] | [`Ledger::cache_report`], [`Ledger::cache_report_for`] | cache hits, misses, hit rate, tokens and dollars saved, writes never read |
//! | [`BreakdownTree`] | [`Ledger::breakdown_tree`] | agent > operation, project > session, … with shares |
//! | [`TimeOfDayReport`] | [`Ledger::time_of_day`] | tokens by local hour of day, peak and low hours |
//! | [`AnomalyReport`] | [`Ledger::anomalies`] | days and hours far above their trailing average, and what spiked |
//! | [`Forecast`] | [`Ledger::forecast`] | the next days' spend with a band, the month's total, when a limit is reached |
//! | [`Comparison`] | [`Ledger::compare_periods`], [`Ledger::compare_values`] | a period against the previous one, or one value against another |
//! | [`BlocksReport`] | [`usage_blocks`] (over call records, not the ledger) | calls in 5-hour blocks (Claude's usage windows), the open block's rate and projection |
//!
//! The efficiency and cache reports can be narrowed to some records ([`ReportFilter`], for example one
//! tenant's): every figure is then computed from those records' own sums, and the report carries a
//! [`ReportScope`] saying what it was narrowed to and what could not be narrowed exactly.
//!
//! Money stays exact ([`Money`](crate::Money), pico-USD) until a report field turns it into a float of USD:
//! the fields ending in `_usd`, and three named before that rule, `CacheMetrics::cost_saved`,
//! `CachePoint::cost_saved` and `Suggestion::potential_savings` (which has its exact twin,
//! `potential_savings_picos`).
//!
//! # The efficiency score
//!
//! A number from 0 to 100, the weighted sum of four components, each from 0 to 1 and each moving the right
//! way (more cache reuse, less waste, right-sized models score higher):
//!
//! | component | weight | value |
//! |---|---|---|
//! | `cache_reuse` | 40 | context reuse rate: of the prompt tokens that repeated the previous turn of the same session and model (a cacheable prefix, within 5 minutes: at least the model's minimum cacheable prompt, or read from the cache), the share read from the cache; 1 when nothing was reusable |
//! | `waste` | 25 | 1 − the share of spend burnt on failures: the larger of the cost of failed calls and of failed tasks |
//! | `right_sizing` | 20 | 1 − the share of spend on small calls (prompt ≤ 2,000, output ≤ 500 tokens) sent to a premium model (input ≥ $4 / Mtok) |
//! | `cache_write_use` | 15 | 1 − the share of cache-written tokens never read (by the session's calls on the same model) before they expired; 1 when nothing was written |
//!
//! `overall = 40 × cache_reuse + 25 × waste + 20 × right_sizing + 15 × cache_write_use`, rounded to one
//! decimal. Bands: **green** at 80 and above, **amber** from 50 to 79.9, **red** below 50 ([`Band`]).
//!
//! The report also gives, unweighted: `cache_hit_rate` (cache reads over all prompt tokens),
//! `input_output_ratio` (prompt tokens per output token) and `tokens_per_task`.
//!
//! # Suggestions
//!
//! Each is priced per call at ingest from the price book, summed exactly, and reported with the dollars it
//! would have saved over the window and an impact level by its share of the window's spend (**high** at
//! 10% or more, **medium** from 2%, **low** below):
//!
//! - `prompt_caching`: calls in a session whose prompt repeated the previous turn's prompt on the same model
//!   (within 5 minutes, at least the model's minimum cacheable prompt: see
//!   [`LedgerConfig::with_min_cacheable_tokens`](crate::ledger::LedgerConfig::with_min_cacheable_tokens)) without
//!   reading it from the cache. Saving: those tokens at the input rate minus the cache-read rate, less the 5-minute
//!   write premium for writing the growing prefix once.
//! - `model_right_sizing`: small calls on a premium model, priced again on the right-size target
//!   (`claude-haiku-4-5` by default) at the same service tier.
//! - `batch_api`: calls marked non-interactive (the `operation` is `batch`, `background`, `offline`, `eval`,
//!   … or an `interactive` dimension is `false`) billed at standard rates; batch halves every rate.
//! - `unread_cache_writes`: cache writes in a session that expired without a later call of the session on the same
//!   model (the prompt cache is per model) reading the cache; saving: the write premium over the input rate, at the
//!   rates the writing call would have after its right-sizing, trimming or batch saving (none when the right-size
//!   target would not cache a prompt that short).
//! - `long_context_threshold`: calls billed at long-context rates whose prompt is at most 20,000 tokens over
//!   the model's line (200,000; 100,000 on Haiku 5.5); saving: the same tokens at standard rates.
//! - `failed_calls`: the cost of calls that ended in an error (retries pay again).

mod anomalies;
mod blocks;
mod cache;
mod compare;
mod efficiency;
mod forecast;
mod handle;
mod scope;
mod summary;
mod time_of_day;
mod tree;

pub use anomalies::{Anomaly, AnomalyMetric, AnomalyReport, Granularity, MAX_ANOMALIES, Spike};
pub use blocks::{
    BlockProjection, BlocksReport, DEFAULT_BLOCK_HOURS, MAX_BLOCK_HOURS, MIN_RATE_MINUTES, UsageBlock, usage_blocks,
};
pub use cache::{CacheMetrics, CachePoint, CacheReport, UnreadCacheWrites};
pub use compare::{Comparison, ComparisonDeltas, ComparisonKind, ComparisonSide};
#[cfg(feature = "http")]
pub(crate) use efficiency::PAST_SESSION_CAP_NOTE;
pub use efficiency::{
    Band, EfficiencyBreakdown, EfficiencyReport, EfficiencyScores, Impact, MAX_BREAKDOWN_ROWS, ScoreComponent,
    Suggestion, SuggestionType,
};
pub use forecast::{
    FORECAST_HISTORY_DAYS, Forecast, ForecastBasis, ForecastDay, LimitForecast, MAX_FORECAST_DAYS, Trend,
    WEEKLY_PATTERN_MIN_DAYS, WeekdayEffects,
};
pub use scope::{ReportFilter, ReportScope};
pub use summary::{Averages, Distributions, Percentiles, SeriesPoint, Share, TimeSeries, UnpricedUsage, UsageSummary};
pub use time_of_day::{HourOfDay, TimeOfDayReport};
pub use tree::{BreakdownTree, TreeNode};

#[cfg(doc)]
use crate::ledger::Ledger;

/// A relative change in percent, `None` when the base is zero.
pub(crate) fn pct_change(base: f64, new: f64) -> Option<f64> {
    (base != 0.0 && base.is_finite() && new.is_finite()).then(|| millionths((new - base) / base * 100.0))
}

/// `x` to six decimal places: a change of 13.4% read `13.399999999999991` in JSON (a spreadsheet showed the
/// tail), and no figure it is a change of has that precision.
pub(crate) fn millionths(x: f64) -> f64 {
    let rounded = (x * 1e6).round() / 1e6;
    if rounded.is_finite() { rounded } else { x }
}

/// `a / b`, `None` when `b` is zero.
pub(crate) fn per(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_kept_to_six_decimal_places() {
        // (1.134 - 1) / 1 x 100 is 13.399999999999991 in floating point.
        assert_eq!(pct_change(1.0, 1.134), Some(13.4));
        assert_eq!(pct_change(3.0, 1.0), Some(-66.666667));
        assert_eq!(pct_change(0.0, 1.0), None);
        assert_eq!(millionths(f64::MAX), f64::MAX, "past what rounding can hold, as it is");
    }
}
