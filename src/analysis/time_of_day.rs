//! Usage by local hour of day.

use serde::{Deserialize, Serialize};

use super::per;
use crate::ledger::calendar;
use crate::ledger::{Core, Ledger, QueryError, Window, WindowBounds, ratio};

/// One hour of the day, summed over the days of the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourOfDay {
    /// Local hour, 0-23.
    pub hour: u32,
    /// Calls.
    pub calls: u64,
    /// Billed tokens.
    pub tokens: u64,
    /// USD, of the priced calls.
    pub cost_usd: f64,
    /// Calls on a model the price book does not know: in `calls` and `tokens`, not in `cost_usd`.
    /// Absent (0) in reports written before it was added.
    #[serde(default)]
    pub unpriced_calls: u64,
    /// Share of the window's tokens, 0-1.
    pub share: f64,
    /// How many hours of the window were this hour of the day, counting only the part the ledger saw (from its
    /// first call, or its making when earlier) up to now (the current hour in part; a repeated hour at a DST
    /// change twice, a skipped one not at all): a rolling `7d` holds some hours seven times and the rest six.
    /// Peak and low hours are ranked by tokens per hour covered (a part of an hour counting as a whole one; the
    /// low hour among those covered for a whole hour at least). Absent (0) in reports written before it was
    /// added.
    #[serde(default)]
    pub covered_hours: f64,
    /// Tasks that started in this hour.
    pub tasks: u64,
    /// Tokens per task of those tasks; `null` without tasks.
    pub avg_tokens_per_task: Option<f64>,
}

/// When in the day tokens are spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeOfDayReport {
    /// The window (its start is no earlier than 35 days back: hourly totals are kept that long; a window that
    /// ended before that is empty, `from` = `to`).
    pub window: WindowBounds,
    /// The time zone of the hours.
    pub time_zone: String,
    /// 24 rows, hour 0 first.
    pub hours: Vec<HourOfDay>,
    /// The hour with the most tokens per hour it covers (`null` when no hour has any).
    pub peak_hour: Option<u32>,
    /// Of the hours the window covers, the one with the fewest tokens per hour it covers, never the peak hour
    /// (`null` when no hour has any, or when only the peak hour is covered for a whole hour).
    pub low_hour: Option<u32>,
    /// Calls on a model the price book does not know: their tokens are in the hours, their cost is not.
    /// Absent (0) in reports written before it was added.
    #[serde(default)]
    pub unpriced_calls: u64,
}

impl Ledger {
    /// Tokens, cost and tasks by local hour of day over `window` (at most the last 35 days), in whole hours:
    /// a window starting inside an hour takes that hour whole, and its `window` starts there; one ending
    /// inside an hour that is over takes that hour whole too, and its `window` ends there.
    pub fn time_of_day(&self, window: Window) -> Result<TimeOfDayReport, QueryError> {
        self.read(|store, now| {
            let tz = store.tz;
            let (from, to) = window.bounds(store, now)?;
            // Likewise a window ending inside an hour that is over (a range ending at 09:30, at noon) takes that
            // hour whole, and says so. A rolling window ends in the current hour, at the end of this minute,
            // which stays its end: the rest of the hour holds no calls yet.
            let now_end = now.div_euclid(60) * 60 + 60;
            let to = calendar::grain_start_at_or_after(tz, calendar::Grain::Hour, to).min(to.max(now_end));
            // A window that ended before the hourly totals begin covers nothing: it is empty at its end.
            let kept = store.hourly_from(now);
            // The hourly totals are by the hour: a window starting inside one (`1h`, `all`) takes it whole, and
            // says so.
            let from = calendar::hour_start(tz, from);
            // The first hour the totals still hold whole: the one starting at or after `kept`.
            let first_kept = || calendar::grain_start_at_or_after(tz, calendar::Grain::Hour, kept);
            let from = if kept == i64::MIN { from } else { from.max(first_kept()) }.min(to);
            let mut hours = [Core::default(); 24];
            for (t, a) in store.hourly.range(from..to) {
                hours[calendar::hour_of_day(tz, *t) as usize].add(&a.core);
            }
            // Each hour of the day's part of the window the ledger saw, in seconds: from its first call (or its
            // making, when earlier) to now at most. Hours outside a short window, still to come or before the
            // ledger are no low hour, and an hour a rolling window holds once more than the rest is no peak for it.
            let mut covered = [0i64; 24];
            if let Some(seen) = store.observed_from() {
                let mut t = from.max(seen);
                let end = to.min(now_end);
                while t < end {
                    let next = calendar::grain_end(tz, calendar::Grain::Hour, t).max(t + 1);
                    covered[calendar::hour_of_day(tz, t) as usize] += next.min(end) - t;
                    t = next;
                }
            }
            let total = hours.iter().fold(0u64, |t, c| t.saturating_add(c.tokens.total()));
            let rows: Vec<HourOfDay> = hours
                .iter()
                .enumerate()
                .map(|(h, c)| HourOfDay {
                    hour: h as u32,
                    calls: c.calls,
                    tokens: c.tokens.total(),
                    cost_usd: c.cost.as_usd(),
                    unpriced_calls: c.unpriced_calls,
                    share: ratio(c.tokens.total() as f64, total as f64),
                    covered_hours: covered[h] as f64 / 3_600.0,
                    tasks: c.tasks,
                    avg_tokens_per_task: per(c.task_tokens as f64, c.tasks as f64),
                })
                .collect();
            // Hours are ranked by tokens: calls without usage (or tasks alone) tie every hour at 0, and hour 0
            // would be named both peak and low.
            let has_data = rows.iter().any(|r| r.tokens > 0);
            // By tokens per hour covered, an hour covered in part counting as a whole one: the current hour a
            // minute in would read its first call at 60 times its rate. The low hour is one covered for a whole
            // hour at least (a few minutes of an hour without calls say little), when there is one. Ties go to the
            // earliest hour.
            let rate = |r: &HourOfDay| r.tokens as f64 / r.covered_hours.max(1.0);
            let covered = || rows.iter().filter(|r| r.covered_hours > 0.0);
            let whole = rows.iter().any(|r| r.covered_hours >= 1.0);
            let peak = covered().rev().max_by(|a, b| rate(a).total_cmp(&rate(b))).map(|r| r.hour);
            // Never the peak hour itself (a `1h` window covers one whole hour): no low hour then.
            let low = covered()
                .filter(|r| (!whole || r.covered_hours >= 1.0) && Some(r.hour) != peak)
                .min_by(|a, b| rate(a).total_cmp(&rate(b)))
                .map(|r| r.hour);
            Ok(TimeOfDayReport {
                window: WindowBounds::of(from, to),
                time_zone: tz.name().to_owned(),
                hours: rows,
                peak_hour: peak.filter(|_| has_data),
                low_hour: low.filter(|_| has_data),
                unpriced_calls: hours.iter().map(|c| c.unpriced_calls).sum(),
            })
        })
    }
}
