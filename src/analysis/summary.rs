//! The usage summary.

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::per;

use crate::ledger::calendar::{self, Grain};
use crate::ledger::{
    Dimension, Histograms, Ledger, QueryError, Selection, TimeGrain, TokenFigures, Window, WindowBounds, ratio,
    sort_rows,
};
use crate::pricing::Money;

/// Averages per call and per task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Averages {
    /// Billed tokens per metered call.
    pub tokens_per_call: Option<f64>,
    /// Prompt tokens (uncached input, cache reads and writes) per metered call. Named `input_tokens_per_call`
    /// before 0.1.0 (read under that name too), beside token figures whose `input` is the uncached input alone.
    #[serde(alias = "input_tokens_per_call")]
    pub prompt_tokens_per_call: Option<f64>,
    /// Output tokens per metered call.
    pub output_tokens_per_call: Option<f64>,
    /// USD per priced call.
    pub cost_per_call_usd: Option<f64>,
    /// Wall time per call, milliseconds; `null` when no call has a duration (Claude Code transcripts carry none).
    pub duration_ms_per_call: Option<f64>,
    /// Tokens per task.
    pub tokens_per_task: Option<f64>,
    /// USD per task whose calls all had a price (`unpriced.tasks` are left out); `null` without such tasks.
    pub cost_per_task_usd: Option<f64>,
}

/// One value's share of the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Share {
    /// The model or provider.
    pub name: String,
    /// Calls.
    pub calls: u64,
    /// Metered calls without a price.
    pub unpriced_calls: u64,
    /// Billed tokens.
    pub tokens: u64,
    /// USD.
    pub cost_usd: f64,
    /// Share of the window's cost, 0-1.
    pub cost_share: f64,
    /// Share of the window's tokens, 0-1.
    pub token_share: f64,
}

/// One point of a time series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Start of the grain.
    pub timestamp: DateTime<Utc>,
    /// Calls.
    pub calls: u64,
    /// Billed tokens.
    pub tokens: u64,
    /// USD.
    pub cost_usd: f64,
}

/// A time series over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeSeries {
    /// `hour` for windows up to 49 hours (two local days, one of them 25 hours long where clocks go back), unless
    /// they reach back past the 35 days hourly totals are kept, else `day`.
    pub grain: TimeGrain,
    /// Points, oldest first, empty grains included (a window of more days than a series has rows, 100,000,
    /// lists the days from its first record's to its last's or today).
    pub points: Vec<SeriesPoint>,
}

/// Calls the price book could not price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnpricedUsage {
    /// Metered calls without a price (their cost is not in `cost_usd`: never $0).
    pub calls: u64,
    /// Their tokens.
    pub tokens: u64,
    /// Their models.
    pub models: Vec<String>,
    /// Tasks with such a call: left out of `averages.cost_per_task_usd` (their cost is partly unknown).
    /// Absent (0) in reports written before it was added.
    #[serde(default)]
    pub tasks: u64,
}

/// Percentiles of one distribution (2 significant digits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest sample, to the same 2 significant digits as the percentiles: the top of its histogram bucket, up
    /// to 1% above the true value (clamped at the recording limit).
    pub max: u64,
    /// Mean of the histogram: each sample counted at its bucket's middle, so within the percentiles' precision
    /// (up to ~1% off; one call of 1,234 prompt tokens reads 1,236). [`Averages`] has the exact means of tokens
    /// and duration per call, from the window's sums.
    pub mean: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Option<Self> {
        (!h.is_empty()).then(|| Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
            mean: h.mean(),
        })
    }
}

/// Per-call distributions over the window (all calls; `null` where there were no samples).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distributions {
    /// Prompt tokens (uncached input, cache reads and writes) per metered call.
    pub input_tokens: Option<Percentiles>,
    /// Output tokens per metered call.
    pub output_tokens: Option<Percentiles>,
    /// Call duration, milliseconds.
    pub duration_ms: Option<Percentiles>,
    /// Time to first token, milliseconds.
    pub time_to_first_token_ms: Option<Percentiles>,
    /// Output tokens per second of generation (after the first token when known).
    pub output_tokens_per_second: Option<Percentiles>,
}

impl Distributions {
    pub(crate) fn of(h: &Histograms<u64>) -> Self {
        Distributions {
            input_tokens: Percentiles::of(&h.input_tokens),
            output_tokens: Percentiles::of(&h.output_tokens),
            duration_ms: Percentiles::of(&h.duration_ms),
            time_to_first_token_ms: Percentiles::of(&h.ttft_ms),
            output_tokens_per_second: Percentiles::of(&h.output_tps),
        }
    }
}

/// The usage summary of a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageSummary {
    /// The window.
    pub window: WindowBounds,
    /// The time zone of days and hours.
    pub time_zone: String,
    /// Start of the period (the window's start).
    pub period_start: DateTime<Utc>,
    /// End of the period (the window's end).
    pub period_end: DateTime<Utc>,
    /// Length of the period in days.
    pub days: f64,
    /// Calls.
    pub calls: u64,
    /// Calls with usage.
    pub metered_calls: u64,
    /// Calls whose span closed without usage.
    pub unmetered_calls: u64,
    /// Calls that ended in an error.
    pub failed_calls: u64,
    /// Tasks.
    pub tasks: u64,
    /// Tokens by kind.
    pub tokens: TokenFigures,
    /// USD of the priced calls.
    pub cost_usd: f64,
    /// The same, exact, in pico-USD.
    pub cost_picos: Money,
    /// What cache reads saved against the input rate, USD.
    pub cache_savings_usd: f64,
    /// Averages.
    pub averages: Averages,
    /// Per model, most expensive first.
    pub by_model: Vec<Share>,
    /// Per provider, most expensive first.
    pub by_provider: Vec<Share>,
    /// Calls, tokens and cost over time.
    pub time_series: TimeSeries,
    /// Calls that could not be priced.
    pub unpriced: UnpricedUsage,
    /// The window's daily spend rate (over [`run_rate_days`](Self::run_rate_days)) times the days of the current
    /// month, USD.
    pub monthly_projection_usd: f64,
    /// The days the run-rate is over: the window's part up to now (the end of the current minute), from the local
    /// midnight of the first record's day when that is later than the window's start (before it, spend is unknown,
    /// not zero). Absent (0) in reports written before it was added.
    #[serde(default)]
    pub run_rate_days: f64,
    /// Per-call distributions.
    pub distributions: Option<Distributions>,
}

impl Ledger {
    /// The usage summary over `window`.
    pub fn usage_summary(&self, window: Window) -> Result<UsageSummary, QueryError> {
        self.read(|store, now| {
            let tz = store.tz;
            // A `FROM..TO` window's edges move to its buckets' edges: its totals (the buckets starting in it) and its
            // series (hours or days from `from`, where the buckets are coarser) then cover the same span.
            let (from, to) = window.aligned_bounds(store, now)?;
            let total = Selection::All.total(store, from, to);
            let c = &total.core;
            let shares = |dim: Dimension| -> Result<Vec<Share>, QueryError> {
                let mut rows = Selection::All.grouped(store, from, to, dim)?;
                sort_rows(&mut rows);
                Ok(rows
                    .into_iter()
                    .map(|(name, a)| Share {
                        name,
                        calls: a.core.calls,
                        unpriced_calls: a.core.unpriced_calls,
                        tokens: a.core.tokens.total(),
                        cost_usd: a.core.cost.as_usd(),
                        cost_share: ratio(a.core.cost.picos() as f64, c.cost.picos() as f64),
                        token_share: ratio(a.core.tokens.total() as f64, c.tokens.total() as f64),
                    })
                    .collect())
            };
            let by_model = shares(Dimension::Model)?;
            let by_provider = shares(Dimension::Provider)?;
            // `All` takes every bucket, and its first may have aged into a month bucket that starts weeks before
            // the first record: its period, length, rate and series start at the first record's local midnight
            // instead, so they do not change as the data ages (the series listed empty days before it).
            let start = match window {
                Window::All => store.data_start().map_or(from, |d| d.min(to)),
                _ => from,
            };
            let (grain, points) = Selection::All.report_series(store, now, start, to)?;
            let points = points
                .into_iter()
                .map(|(t, a)| SeriesPoint {
                    timestamp: calendar::utc(t),
                    calls: a.core.calls,
                    tokens: a.core.tokens.total(),
                    cost_usd: a.core.cost.as_usd(),
                })
                .collect();
            let metered = c.metered_calls() as f64;
            let priced = (c.metered_calls() - c.unpriced_calls.min(c.metered_calls())) as f64;
            let days = (to - start) as f64 / 86_400.0;
            // The run-rate is the cost per day of the part of the window that has passed (up to the end of the
            // current minute, where a rolling window ends): the rest of a window reaching past now holds no
            // spend yet, and would dilute the rate. Likewise the part before the data begins (the local midnight of
            // the first record's day, as `all` starts): spend there is unknown, not zero (steady $4.32 a day from
            // two and a half days back read $11.35 a month over `30d`, $133.88 over `all`).
            let rate_start = store.data_start().map_or(start, |d| d.max(start));
            let elapsed_days = (to.min(now.div_euclid(60) * 60 + 60) - rate_start).max(0) as f64 / 86_400.0;
            let month_start = calendar::month_start(tz, now);
            let month_days = (calendar::grain_end(tz, Grain::Month, month_start) - month_start) as f64 / 86_400.0;
            Ok(UsageSummary {
                window: WindowBounds::of(start, to),
                time_zone: tz.name().to_owned(),
                period_start: calendar::utc(start),
                period_end: calendar::utc(to),
                days,
                calls: c.calls,
                metered_calls: c.metered_calls(),
                unmetered_calls: c.unmetered_calls,
                failed_calls: c.failed_calls,
                tasks: c.tasks,
                tokens: TokenFigures::from(&c.tokens),
                cost_usd: c.cost.as_usd(),
                cost_picos: c.cost,
                cache_savings_usd: c.cache_savings.as_usd(),
                averages: Averages {
                    tokens_per_call: per(c.tokens.total() as f64, metered),
                    prompt_tokens_per_call: per(c.tokens.prompt_total() as f64, metered),
                    output_tokens_per_call: per(c.tokens.output as f64, metered),
                    cost_per_call_usd: per(c.cost.as_usd(), priced),
                    // None when no call has a duration (Claude Code transcripts carry none): a made-up 0 ms
                    // would pull any average of latencies down.
                    duration_ms_per_call: (c.duration_us > 0)
                        .then(|| per(c.duration_us as f64 / 1_000.0, c.calls as f64))
                        .flatten(),
                    tokens_per_task: per(c.task_tokens as f64, c.tasks as f64),
                    cost_per_task_usd: c.cost_per_priced_task(),
                },
                unpriced: UnpricedUsage {
                    calls: c.unpriced_calls,
                    tokens: c.unpriced_tokens,
                    models: by_model.iter().filter(|s| s.unpriced_calls > 0).map(|s| s.name.clone()).collect(),
                    tasks: c.unpriced_tasks,
                },
                by_model,
                by_provider,
                time_series: TimeSeries { grain, points },
                monthly_projection_usd: per(c.cost.as_usd(), elapsed_days).unwrap_or(0.0) * month_days,
                run_rate_days: elapsed_days,
                distributions: crate::ledger::histograms(store, from, to).as_ref().map(Distributions::of),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_written_before_the_rename_are_read() {
        let old = r#"{"tokens_per_call":1.0,"input_tokens_per_call":2.0,"output_tokens_per_call":3.0,
            "cost_per_call_usd":null,"duration_ms_per_call":null,"tokens_per_task":null,"cost_per_task_usd":null}"#;
        let averages: Averages = serde_json::from_str(old).unwrap();
        assert_eq!(averages.prompt_tokens_per_call, Some(2.0));
        let new = serde_json::to_value(&averages).unwrap();
        assert_eq!(new["prompt_tokens_per_call"], 2.0);
        assert!(new.get("input_tokens_per_call").is_none());
    }
}
