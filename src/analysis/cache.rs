//! The cache-performance report.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::per;
use crate::ledger::calendar;
use crate::ledger::{Agg, Ledger, QueryError, Selection, TimeGrain, Window, WindowBounds};

/// Cache figures over the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheMetrics {
    /// Metered calls that read from the cache.
    pub total_cache_hits: u64,
    /// Metered calls that did not.
    pub total_cache_misses: u64,
    /// Cache reads over all prompt tokens (uncached input, cache reads and writes), 0-1.
    pub hit_rate: f64,
    /// Hits over metered calls, 0-1.
    pub call_hit_rate: f64,
    /// Tokens served from the cache instead of processed as input (the cache reads).
    pub tokens_saved: u64,
    /// What those reads saved against the input rate, USD (exact per call, from the price book).
    pub cost_saved: f64,
    /// Tokens written to the cache (both lifetimes).
    pub cache_creation_tokens: u64,
    /// Prompt tokens that repeated the previous turn of their session.
    pub reusable_tokens: u64,
    /// Of those, tokens read from the cache.
    pub reused_tokens: u64,
    /// `reused_tokens / reusable_tokens` (1 when nothing was reusable).
    pub context_reuse_rate: f64,
}

impl CacheMetrics {
    pub(crate) fn of(a: &Agg) -> Self {
        let c = &a.core;
        let metered = c.metered_calls();
        CacheMetrics {
            total_cache_hits: c.cache_hit_calls,
            total_cache_misses: metered - c.cache_hit_calls.min(metered),
            hit_rate: per(c.tokens.cache_read as f64, c.tokens.prompt_total() as f64).unwrap_or(0.0),
            call_hit_rate: per(c.cache_hit_calls as f64, metered as f64).unwrap_or(0.0),
            tokens_saved: c.tokens.cache_read,
            cost_saved: c.cache_savings.as_usd(),
            cache_creation_tokens: c.tokens.cache_write(),
            reusable_tokens: c.reusable_tokens,
            reused_tokens: c.reused_tokens,
            context_reuse_rate: per(c.reused_tokens as f64, c.reusable_tokens as f64).unwrap_or(1.0),
        }
    }
}

/// One point of the cache time series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachePoint {
    /// Start of the grain.
    pub timestamp: DateTime<Utc>,
    /// Token hit rate in the grain, 0-1.
    pub hit_rate: f64,
    /// Cache-read tokens in the grain.
    pub tokens_saved: u64,
    /// USD saved in the grain.
    pub cost_saved: f64,
}

/// Cache writes that expired before any later call of their session read the cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnreadCacheWrites {
    /// Writes.
    pub writes: u64,
    /// Tokens written.
    pub tokens: u64,
    /// The write premium paid for them over the input rate, USD.
    pub wasted_usd: f64,
}

/// The cache-performance report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheReport {
    /// The window.
    pub window: WindowBounds,
    /// The figures.
    pub cache_metrics: CacheMetrics,
    /// `hour` for windows up to 48 hours, else `day`.
    pub grain: TimeGrain,
    /// Hit rate and savings over time, oldest first.
    pub time_series: Vec<CachePoint>,
    /// Cache writes never read (only writes in a session are tracked; writes still within their lifetime
    /// are not counted yet).
    pub unread_cache_writes: UnreadCacheWrites,
}

impl Ledger {
    /// The cache-performance report over `window`.
    pub fn cache_report(&self, window: Window) -> Result<CacheReport, QueryError> {
        self.read(|store, now| {
            let (from, to) = window.bounds(store, now)?;
            let total = Selection::All.total(store, from, to);
            let grain = if to - from <= 48 * 3_600 { TimeGrain::Hour } else { TimeGrain::Day };
            let time_series = Selection::All
                .series(store, now, from, to, grain)?
                .into_iter()
                .map(|(t, a)| CachePoint {
                    timestamp: calendar::utc(t),
                    hit_rate: per(a.core.tokens.cache_read as f64, a.core.tokens.prompt_total() as f64).unwrap_or(0.0),
                    tokens_saved: a.core.tokens.cache_read,
                    cost_saved: a.core.cache_savings.as_usd(),
                })
                .collect();
            let o = total.opportunities();
            Ok(CacheReport {
                window: WindowBounds::of(from, to),
                cache_metrics: CacheMetrics::of(&total),
                grain,
                time_series,
                unread_cache_writes: UnreadCacheWrites {
                    writes: o.unread_writes,
                    tokens: o.unread_write_tokens,
                    wasted_usd: o.unread_write_premium.as_usd(),
                },
            })
        })
    }
}
