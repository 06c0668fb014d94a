//! The cache-performance report.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::per;
use super::scope::{ReportFilter, ReportScope};
use crate::ledger::calendar;
use crate::ledger::{Agg, HOURLY_SERIES_UP_TO_SECS, Ledger, QueryError, Selection, TimeGrain, Window, WindowBounds};

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
    /// What those reads saved against the input rate, USD (exact per call, from the price book). Gross: the cache
    /// writes' premium over the input rate (25% for 5-minute writes, 100% for 1-hour ones) is not taken off, so
    /// writes read once or never can cost more than this saves.
    pub cost_saved: f64,
    /// Metered calls on a model the price book does not know: their reads are in `tokens_saved` but not in
    /// `cost_saved`, which is short by what they saved (0: `cost_saved` is whole).
    /// Absent (0) in reports written before it was added.
    #[serde(default)]
    pub unpriced_calls: u64,
    /// Tokens written to the cache (both lifetimes).
    pub cache_creation_tokens: u64,
    /// Prompt tokens that repeated the previous turn of their session on the same model (when at least the
    /// model's minimum cacheable prompt, or read from the cache).
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
            unpriced_calls: c.unpriced_calls,
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
    /// Token hit rate in the grain, 0-1 (0 when `prompt_tokens` is: nothing measured, no rate).
    pub hit_rate: f64,
    /// Prompt tokens in the grain (uncached input, cache reads and writes): the hit rate's denominator. A
    /// grain without any has no hit rate to draw, where 0 with prompt tokens is a measured miss.
    /// Absent (0) in reports written before it was added.
    #[serde(default)]
    pub prompt_tokens: u64,
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
    /// `hour` for windows up to 49 hours, two local days with a 25-hour one (`day` when such a window reaches back
    /// past the 35 days hourly totals are kept), else `day`; in a filtered report whose window reaches back past
    /// what the ledger keeps at that grain for filtered figures, the finest grain it keeps (`day` or `month`, said
    /// in [`ReportScope::notes`]).
    pub grain: TimeGrain,
    /// Hit rate and savings over time, oldest first.
    pub time_series: Vec<CachePoint>,
    /// Cache writes never read (only writes in a session are tracked; writes still within their lifetime
    /// are not counted yet).
    pub unread_cache_writes: UnreadCacheWrites,
    /// How the report was narrowed: present only in a filtered report ([`Ledger::cache_report_for`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ReportScope>,
}

impl Ledger {
    /// The cache-performance report over `window`.
    pub fn cache_report(&self, window: Window) -> Result<CacheReport, QueryError> {
        self.cache_report_for(window, &ReportFilter::new())
    }

    /// The cache-performance report over `window` of the records `filter` keeps (for example one
    /// tenant's). Without filters it is [`Ledger::cache_report`]. Every figure, the time series and the
    /// unread cache writes come from the filtered records' own sums.
    pub fn cache_report_for(&self, window: Window, filter: &ReportFilter) -> Result<CacheReport, QueryError> {
        let sel = filter.selection(&self.inner.prices)?;
        self.read(|store, now| {
            // A `FROM..TO` window's edges move to its buckets' edges: its totals (the buckets starting in it) and its
            // series (hours or days from `from`, where the buckets are coarser) then cover the same span.
            let (from, to) = window.aligned_bounds(store, now)?;
            let total = sel.total(store, from, to);
            let wanted = if to - from <= HOURLY_SERIES_UP_TO_SECS { TimeGrain::Hour } else { TimeGrain::Day };
            let mut notes = Vec::new();
            let (grain, points) = if sel == Selection::All {
                sel.report_series(store, now, from, to)?
            } else {
                // Filtered figures live in the buckets only (no totals-only series): take the finest grain
                // the window's buckets allow.
                let mut found = None;
                for g in [TimeGrain::Hour, TimeGrain::Day, TimeGrain::Month].into_iter().filter(|g| *g >= wanted) {
                    match sel.series_within_data(store, now, from, to, g) {
                        Ok(p) => {
                            found = Some((g, p));
                            break;
                        }
                        Err(QueryError::ResolutionUnavailable { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                match found {
                    Some((g, p)) => {
                        if g != wanted {
                            notes.push(format!(
                                "time_series is by {g}, not {wanted}: filtered figures are kept by hour for 48 \
                                 hours and by day for 35 days, and this window reaches further back"
                            ));
                        }
                        (g, p)
                    }
                    None => {
                        notes.push(
                            "time_series is empty: part of the window is older than 400 days, where the ledger \
                             keeps filtered figures as one archive bucket (they are in cache_metrics)"
                                .to_owned(),
                        );
                        (wanted, Vec::new())
                    }
                }
            };
            let time_series = points
                .into_iter()
                .map(|(t, a)| CachePoint {
                    timestamp: calendar::utc(t),
                    hit_rate: per(a.core.tokens.cache_read as f64, a.core.tokens.prompt_total() as f64).unwrap_or(0.0),
                    prompt_tokens: a.core.tokens.prompt_total(),
                    tokens_saved: a.core.tokens.cache_read,
                    cost_saved: a.core.cache_savings.as_usd(),
                })
                .collect();
            let o = total.opportunities();
            let scope = (!filter.is_empty()).then(|| ReportScope {
                filters: filter.filters().to_vec(),
                unattributed_calls: sel.unattributed(store, from, to),
                notes,
            });
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
                scope,
            })
        })
    }
}
