//! Comparisons: a period against the previous one, one dimension value against another.

use serde::{Deserialize, Serialize};

use super::efficiency::EfficiencyScores;
use super::{millionths, pct_change, per};
use crate::ledger::{Agg, Dimension, Filter, Ledger, QueryError, Selection, Window, WindowBounds, calendar};

/// What is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComparisonKind {
    /// The window (`b`) against the same stretch one period before it (`a`; see
    /// [`Ledger::compare_periods`]).
    Periods,
    /// One dimension value (`a`) against another (`b`) over the same window.
    Values,
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonSide {
    /// `previous` / `current`, or the dimension value.
    pub label: String,
    /// The side's window.
    pub window: WindowBounds,
    /// Calls.
    pub calls: u64,
    /// Tasks.
    pub tasks: u64,
    /// Billed tokens.
    pub tokens: u64,
    /// USD, of the priced calls.
    pub cost_usd: f64,
    /// Metered calls of a model the price book does not know: their tokens count above, their cost is not in
    /// `cost_usd` (never guessed), so where either side has some, the cost change compares priced calls only.
    pub unpriced_calls: u64,
    /// USD per task whose calls all had a price; `null` without such tasks.
    pub cost_per_task_usd: Option<f64>,
    /// Tasks with a call without a price: left out of `cost_per_task_usd` (their cost is partly unknown).
    /// Absent (0) in reports written before it was added.
    #[serde(default)]
    pub unpriced_tasks: u64,
    /// Tokens per task; `null` without tasks.
    pub tokens_per_task: Option<f64>,
    /// USD per priced call; `null` without priced calls.
    pub cost_per_call_usd: Option<f64>,
    /// Cache reads over prompt tokens, 0-1; `null` without prompt tokens.
    pub cache_hit_rate: Option<f64>,
    /// The efficiency score, 0-100; `null` without metered calls (nothing to score).
    pub efficiency_score: Option<f64>,
    /// The seconds calls, tokens and cost are compared over, as rates where the sides differ: the part of the
    /// window that has passed, and (comparing periods) from where the ledger began to see calls, where that is
    /// later than the window's start (before it, spend is unknown); a rolling window's previous side adds the share
    /// of its matching hour its rates take (see [`Ledger::compare_periods`]). Absent (0) in reports written before
    /// it was added.
    #[serde(default)]
    pub compared_seconds: i64,
}

/// `b` relative to `a`, in percent (`null` where `a` is zero).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonDeltas {
    /// Calls, as a rate over the part of each side's window that has passed (the totals' change where the two
    /// are equally long).
    pub calls_pct: Option<f64>,
    /// Tokens, as a rate like `calls_pct`.
    pub tokens_pct: Option<f64>,
    /// Cost, as a rate like `calls_pct`; `null` where a side's calls all lack a price (its cost is unknown).
    pub cost_pct: Option<f64>,
    /// Cost per priced call.
    pub cost_per_call_pct: Option<f64>,
    /// Cost per task.
    pub cost_per_task_pct: Option<f64>,
    /// Tokens per task.
    pub tokens_per_task_pct: Option<f64>,
    /// Cache hit rate (relative change of the rate).
    pub cache_hit_rate_pct: Option<f64>,
    /// Cache hit rate, difference in percentage points; `null` where a side has no rate.
    pub cache_hit_rate_points: Option<f64>,
    /// Efficiency score, difference in points; `null` where a side has no score.
    pub efficiency_score_points: Option<f64>,
}

/// A comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// What is compared.
    pub kind: ComparisonKind,
    /// For [`ComparisonKind::Values`], the dimension.
    pub dimension: Option<Dimension>,
    /// The baseline.
    pub a: ComparisonSide,
    /// The side compared with it.
    pub b: ComparisonSide,
    /// `b` against `a`.
    pub deltas: ComparisonDeltas,
}

fn side(label: String, from: i64, to: i64, a: &Agg) -> ComparisonSide {
    let c = &a.core;
    let priced = c.metered_calls() - c.unpriced_calls.min(c.metered_calls());
    ComparisonSide {
        label,
        window: WindowBounds::of(from, to),
        calls: c.calls,
        tasks: c.tasks,
        tokens: c.tokens.total(),
        cost_usd: c.cost.as_usd(),
        unpriced_calls: c.unpriced_calls,
        cost_per_task_usd: c.cost_per_priced_task(),
        unpriced_tasks: c.unpriced_tasks,
        tokens_per_task: per(c.task_tokens as f64, c.tasks as f64),
        cost_per_call_usd: per(c.cost.as_usd(), priced as f64),
        cache_hit_rate: per(c.tokens.cache_read as f64, c.tokens.prompt_total() as f64),
        efficiency_score: (c.metered_calls() > 0).then(|| EfficiencyScores::of(a).overall),
        compared_seconds: to - from,
    }
}

impl ComparisonSide {
    /// Every priced dollar of the side is missing: it has calls without a price and none with one.
    fn cost_unknown(&self) -> bool {
        self.unpriced_calls > 0 && self.cost_per_call_usd.is_none()
    }
}

fn opt_pct(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    pct_change(a?, b?)
}

/// The share of the hour after side `a`'s end that its rates take (see [`Ledger::compare_periods`]).
struct Share {
    /// The part of the hour, 0-1.
    part: f64,
    /// That part in seconds.
    seconds: i64,
    /// The hour's totals.
    totals: Agg,
}

/// `a` against `b`; `lengths` are the seconds of each side's window that have passed, over which calls, tokens
/// and cost are compared as rates (equal lengths compare their totals); `a`'s rates take `share` of the hour
/// after it too, and its `compared_seconds` that part's seconds.
fn compare(
    kind: ComparisonKind,
    dimension: Option<Dimension>,
    mut a: ComparisonSide,
    mut b: ComparisonSide,
    lengths: (i64, i64),
    share: Option<&Share>,
) -> Comparison {
    let lengths = (lengths.0 + share.map_or(0, |s| s.seconds), lengths.1);
    (a.compared_seconds, b.compared_seconds) = lengths;
    let (la, lb) = (lengths.0 as f64, lengths.1 as f64);
    // A side none of which has passed (a range in the future) has no rate.
    let rates = |x: f64, y: f64| match lengths {
        (a, b) if a == b => pct_change(x, y),
        (a, b) if a <= 0 || b <= 0 => None,
        _ => pct_change(x / la, y / lb),
    };
    // `a`'s figures with the share of the hour after it.
    let part = |of: fn(&Agg) -> f64| share.map_or(0.0, |s| s.part * of(&s.totals));
    let a_calls = a.calls as f64 + part(|t| t.core.calls as f64);
    let a_tokens = a.tokens as f64 + part(|t| t.core.tokens.total() as f64);
    let a_cost = a.cost_usd + part(|t| t.core.cost.as_usd());
    let deltas = ComparisonDeltas {
        calls_pct: rates(a_calls, b.calls as f64),
        tokens_pct: rates(a_tokens, b.tokens as f64),
        // A side whose calls all lack a price has no cost to compare (its $0 is not a measurement).
        cost_pct: if a.cost_unknown() || b.cost_unknown() { None } else { rates(a_cost, b.cost_usd) },
        cost_per_call_pct: opt_pct(a.cost_per_call_usd, b.cost_per_call_usd),
        cost_per_task_pct: opt_pct(a.cost_per_task_usd, b.cost_per_task_usd),
        tokens_per_task_pct: opt_pct(a.tokens_per_task, b.tokens_per_task),
        cache_hit_rate_pct: opt_pct(a.cache_hit_rate, b.cache_hit_rate),
        cache_hit_rate_points: a.cache_hit_rate.zip(b.cache_hit_rate).map(|(x, y)| millionths((y - x) * 100.0)),
        efficiency_score_points: a.efficiency_score.zip(b.efficiency_score).map(|(x, y)| millionths(y - x)),
    };
    Comparison { kind, dimension, a, b, deltas }
}

impl Ledger {
    /// `window` (side `b`, `current`) against the same stretch one period earlier (side `a`, `previous`): for
    /// the rolling windows, from the same whole units before its first (`7d`: 7 local days before) to the
    /// same local hour one period before now (`7d` at 09:20: 7 days ago at 09:00; older data is kept by the
    /// hour at best), counted exactly even where it is kept in coarser buckets; for `1h`, a range or `All`,
    /// the same length just before it. Calls, tokens and cost are compared as rates over the part of each
    /// window that has passed, so today's first hours are not a drop against a whole day; a rolling window's
    /// previous side also takes, for its rates only, the share of the hour after it (the one matching now's)
    /// that has passed of now's hour, so both sides hold the same hours of the day (its `compared_seconds`
    /// count that share; its calls, tokens and cost are its window's).
    pub fn compare_periods(&self, window: Window) -> Result<Comparison, QueryError> {
        self.read(|store, now| {
            let (from, to) = window.bounds(store, now)?;
            // Exact where an edge falls inside a coarser bucket (a range of hours days back); where the ledger
            // no longer holds what that needs, over the buckets the edges fall in, each side's rates over its
            // own span, and the previous period never reaching into the current one.
            let (cur, from, to) = Selection::total_all_exact(store, now, from, to, true);
            let (pf, pt) = window.previous_bounds(store.tz, now, from, to);
            let (prev, pf, pt) = Selection::total_all_exact(store, now, pf, pt.min(from), false);
            // A window reaching past now has passed up to the end of the current minute. Each side counts from
            // where the ledger began to see calls (its first record, or its making if earlier), when that is
            // later than the side's start: before it, spend is unknown, not zero (a meter started 9.5 days ago,
            // compared over 7 days against the 7 before, of which 2.5 hold data).
            let seen = store.observed_from().unwrap_or(i64::MIN);
            let length = |start: i64, end: i64| (end - start.max(seen)).max(0);
            let passed_end = to.min(now.div_euclid(60) * 60 + 60).max(from);
            let passed = length(from, passed_end);
            // A rolling window's previous side ends at the local hour one period before now's (older data is kept
            // by the hour at best), and the current side holds the part of now's hour that has passed: the
            // previous side's rates take the same share of its matching hour, the hour it ends at. Without it, a
            // day whose 12:00 hour is its busiest read +37% at 12:59 against an identical day. Only a rolling
            // window's previous side ends an hour or more before the current one starts (`1h`, a range and `all`
            // end where it begins).
            let hour = calendar::hour_start(store.tz, now);
            let hour_end = calendar::grain_end(store.tz, calendar::Grain::Hour, hour);
            let matching_end = calendar::grain_end(store.tz, calendar::Grain::Hour, pt);
            let share = if passed_end > hour && pt >= seen && matching_end <= from {
                let (matching, _, _) = Selection::total_all_exact(store, now, pt, matching_end, false);
                let part = (passed_end - hour) as f64 / (hour_end - hour) as f64;
                Some(Share { part, seconds: ((matching_end - pt) as f64 * part).round() as i64, totals: matching })
            } else {
                None
            };
            Ok(compare(
                ComparisonKind::Periods,
                None,
                side("previous".into(), pf, pt, &prev),
                side("current".into(), from, to, &cur),
                (length(pf, pt), passed),
                share.as_ref(),
            ))
        })
    }

    /// `dimension = a` against `dimension = b` over `window` (e.g. agent `a` against agent `b`); a `FROM..TO`
    /// window widened to the edges of the buckets its bounds fall in ([`Ledger::aligned`]).
    pub fn compare_values(
        &self,
        window: Window,
        dimension: Dimension,
        a: &str,
        b: &str,
    ) -> Result<Comparison, QueryError> {
        if dimension == Dimension::Tool {
            return Err(super::scope::no_tool_reports());
        }
        let sel_a = Selection::from_filters(&[Filter::new(dimension, a)], &self.inner.prices)?;
        let sel_b = Selection::from_filters(&[Filter::new(dimension, b)], &self.inner.prices)?;
        self.read(|store, now| {
            let (from, to) = window.aligned_bounds(store, now)?;
            let ta = sel_a.total(store, from, to);
            let tb = sel_b.total(store, from, to);
            Ok(compare(
                ComparisonKind::Values,
                Some(dimension),
                side(a.to_owned(), from, to, &ta),
                side(b.to_owned(), from, to, &tb),
                (to - from, to - from),
                None,
            ))
        })
    }
}
