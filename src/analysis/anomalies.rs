//! Days and hours far above their trailing average, named by the dimension value that spiked.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};

use crate::ledger::calendar::{self, Grain};
use crate::ledger::{AnomalyRule, Core, Dimension, Ledger, OTHER, QueryError, Store, Tier, Window, WindowBounds};

/// Most anomalies reported (the latest first).
pub const MAX_ANOMALIES: usize = 200;

/// How unlikely a period's calls must be, at its baseline's rate, to be more than chance (one in a thousand: a
/// week's 168 hours of steady traffic pass with ~0.17 chance flags).
const SIGNIFICANCE: f64 = 0.001;

/// The chance of at least `n` events where `mean` are expected (Poisson's upper tail); 1 when `n` is not above the
/// mean (nothing to test), 0 for events where none are expected.
fn poisson_at_least(n: u64, mean: f64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    // Also a NaN mean.
    if mean.is_nan() || mean <= 0.0 {
        return 0.0;
    }
    if n as f64 <= mean {
        return 1.0;
    }
    // ln(k!) by Stirling's series past 20 (error under 1e-12), exactly below.
    let ln_factorial = |k: f64| {
        if k < 20.0 {
            (2..=k as u64).map(|i| (i as f64).ln()).sum::<f64>()
        } else {
            k * k.ln() - k + 0.5 * (2.0 * std::f64::consts::PI * k).ln() + 1.0 / (12.0 * k) - 1.0 / (360.0 * k.powi(3))
        }
    };
    let n = n as f64;
    let mut term = (n * mean.ln() - mean - ln_factorial(n)).exp();
    let mut sum = 0.0;
    let mut k = n;
    // Each term is `mean / (k + 1)` of the one before, under 1 past the mean: the tail converges.
    while term > 0.0 && term > sum * 1e-12 && k - n < 1e7 {
        sum += term;
        k += 1.0;
        term *= mean / k;
    }
    sum.min(1.0)
}

/// Day or hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// A local day against the average of the trailing days.
    Day,
    /// A local hour against the same hour of the trailing days.
    Hour,
}

/// What exceeded its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyMetric {
    /// Billed tokens.
    Tokens,
    /// Cost (USD).
    Cost,
    /// Calls.
    Calls,
}

impl AnomalyMetric {
    fn of(self, c: &Core) -> f64 {
        match self {
            AnomalyMetric::Tokens => c.tokens.total() as f64,
            AnomalyMetric::Cost => c.cost.as_usd(),
            AnomalyMetric::Calls => c.calls as f64,
        }
    }

    fn factor(self, rule: &AnomalyRule) -> f64 {
        match self {
            AnomalyMetric::Tokens => rule.token_factor,
            AnomalyMetric::Cost => rule.cost_factor,
            AnomalyMetric::Calls => rule.call_factor,
        }
    }
}

/// The dimension value that grew the most against its own baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spike {
    /// The dimension.
    pub dimension: Dimension,
    /// Its value.
    pub value: String,
    /// The value's metric in the anomalous period.
    pub observed: f64,
    /// Its average per period over the trailing days: for an hour, per hour of those days, every hour (the
    /// anomaly's own `baseline` is the same hour of each day, which the ledger's per-dimension data cannot
    /// give past 48 hours), so it reads low against a busy hour of the day. Trailing time the breakdowns
    /// cannot split at the range's start (the rest of a day kept as one bucket) is left out of both the sum
    /// and the count.
    pub baseline: f64,
}

/// One anomalous day or hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Day or hour.
    pub granularity: Granularity,
    /// Start of the period.
    pub start: DateTime<Utc>,
    /// End of the period.
    pub end: DateTime<Utc>,
    /// What exceeded its baseline.
    pub metric: AnomalyMetric,
    /// The metric in the period.
    pub value: f64,
    /// The trailing average (days with data history only).
    pub baseline: f64,
    /// `value / baseline`.
    pub ratio: f64,
    /// The factor it had to exceed.
    pub threshold: f64,
    /// The dimension value that spiked, when the ledger still holds the period's breakdown.
    pub spiked_by: Option<Spike>,
}

/// The anomalies of a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyReport {
    /// The window.
    pub window: WindowBounds,
    /// The rule applied.
    pub rule: AnomalyRule,
    /// Anomalies, latest first, at most [`MAX_ANOMALIES`].
    pub anomalies: Vec<Anomaly>,
}

const METRICS: [AnomalyMetric; 3] = [AnomalyMetric::Tokens, AnomalyMetric::Cost, AnomalyMetric::Calls];

/// Sums per (dimension, value), and the total. Keyed by the store's own strings: a `String` per entry per bucket
/// made a report of many anomalies allocate millions of times while holding the ledger.
type ByValue<'s> = (HashMap<(Dimension, Option<&'s str>), Core>, Core);

/// Adds the buckets starting in `[from, to)` no coarser than `coarsest` into `into`: every value when `insert`,
/// else only the values already there (a baseline needs only the values of the period it is for: summing all
/// of a week's sessions built maps of tens of thousands of entries per anomaly). False when no bucket is there.
fn add_by_value<'s>(
    store: &'s Store,
    from: i64,
    to: i64,
    coarsest: Tier,
    into: &mut ByValue<'s>,
    insert: bool,
) -> bool {
    let compound: Vec<Dimension> = Dimension::ALL.into_iter().filter(|d| d.is_compound()).collect();
    let (out, total) = into;
    let mut add = |key: (Dimension, Option<&'s str>), core: &Core| {
        if insert {
            out.entry(key).or_default().add(core);
        } else if let Some(sum) = out.get_mut(&key) {
            sum.add(core);
        }
    };
    let mut any = false;
    for b in store.buckets(from, to).filter(|b| b.tier <= coarsest) {
        any = true;
        total.add(&b.totals.core);
        for s in b.series.values() {
            for &d in &compound {
                // No value and the text `(none)` are one row, as the query's grouping shows them.
                add((d, Some(d.of_key(&s.key).unwrap_or(d.none_label()))), &s.agg.core);
            }
        }
        for (k, a) in &b.sessions {
            add((Dimension::Session, Some(&**k)), &a.core);
        }
        for (k, a) in &b.users {
            add((Dimension::User, Some(&**k)), &a.core);
        }
    }
    any
}

/// Which dimension names a spike when two values explain it equally (a new agent's calls are also a new
/// operation's and a new project's): the one people act on first.
fn priority(d: Dimension) -> u8 {
    match d {
        Dimension::Agent => 0,
        Dimension::Project => 1,
        Dimension::Operation => 2,
        Dimension::Model => 3,
        Dimension::Task => 4,
        Dimension::Tenant => 5,
        Dimension::User => 6,
        Dimension::Session => 7,
        Dimension::Provider => 8,
        Dimension::Tool => 9,
    }
}

#[derive(Debug, Clone, Copy)]
struct Period {
    granularity: Granularity,
    start: i64,
    end: i64,
    /// Trailing range for the breakdown baseline, and how many periods it spans.
    base_from: i64,
    base_periods: f64,
}

/// A period's breakdown and its baseline's, read once for every metric that flagged the period.
struct Breakdown<'s> {
    now: ByValue<'s>,
    before: ByValue<'s>,
    periods: f64,
}

impl<'s> Breakdown<'s> {
    fn of(store: &'s Store, p: &Period, at: i64) -> Option<Self> {
        let coarsest = match p.granularity {
            Granularity::Day => Tier::Day,
            Granularity::Hour => Tier::Hour,
        };
        let mut now = ByValue::default();
        if !add_by_value(store, p.start, p.end, coarsest, &mut now, true) {
            return None;
        }
        // The breakdown baseline reads the buckets that start inside the trailing range: where the range starts
        // inside a coarser bucket (an hour's range starting mid-day in the day tier), that bucket is left out, and
        // so are its periods (dividing by all of them read the baseline up to 23/24 of a day low per week).
        let from = store.bucket_edge_at_or_after(p.base_from, at).min(p.start);
        // Whole buckets of every tier from `from` on: the range has no partial bucket left to drop.
        let mut before: ByValue<'_> = (now.0.keys().map(|k| (*k, Core::default())).collect(), Core::default());
        add_by_value(store, from, p.start, Tier::Month, &mut before, false);
        let covered = (p.start - from) as f64 / (p.start - p.base_from).max(1) as f64 * p.base_periods;
        let periods = match p.granularity {
            Granularity::Day => covered.round(),
            Granularity::Hour => covered,
        }
        .max(1.0);
        Some(Breakdown { now, before, periods })
    }

    fn spike(&self, metric: AnomalyMetric) -> Option<Spike> {
        let ((now, now_total), (before, before_total), periods) = (&self.now, &self.before, self.periods);
        // The period's overall growth: a value that only kept its usual share (the one provider, the main model)
        // did not spike; the value whose metric exceeds its usual share of the period the most did.
        let growth = {
            let base = metric.of(before_total) / periods;
            if base > 0.0 { metric.of(now_total) / base } else { f64::INFINITY }
        };
        now.iter()
            // `(other)` gathers values past a cap, unrelated to one another: it names no cause.
            .filter(|((_, value), _)| *value != Some(OTHER))
            .map(|(k, c)| {
                let observed = metric.of(c);
                let baseline = before.get(k).map_or(0.0, |b| metric.of(b) / periods);
                let expected = if baseline > 0.0 && growth.is_finite() { baseline * growth } else { 0.0 };
                (*k, observed, baseline, observed - expected)
            })
            .filter(|(_, o, b, excess)| o > b && *excess > 0.0)
            .max_by(|a, b| {
                let tol = 1e-9 * a.3.abs().max(b.3.abs());
                let by_excess = if (a.3 - b.3).abs() > tol { a.3.total_cmp(&b.3) } else { std::cmp::Ordering::Equal };
                let (la, lb) = (a.0.1.unwrap_or_default(), b.0.1.unwrap_or_default());
                by_excess.then(priority(b.0.0).cmp(&priority(a.0.0))).then(lb.cmp(la))
            })
            .map(|((dimension, value), observed, baseline, _)| Spike {
                dimension,
                value: dimension.label(value),
                observed,
                baseline,
            })
    }
}

/// The fewest trailing periods (days, or the same hour of trailing days) a baseline is made of.
const MIN_BASELINE_PERIODS: i64 = 3;

impl Ledger {
    /// Days and hours `window` touches (one that begins before it is checked whole) whose tokens or cost exceed, or whose calls exceed, the configured factor
    /// times their trailing average ([`AnomalyRule`]; days against the trailing days, hours against the same
    /// local hour of the trailing days). Only days since the ledger's first record count toward a baseline,
    /// and a period is checked once its baseline has 3 of them (or all `trailing_days`, when fewer), at least as
    /// many of them with calls.
    /// Hours are checked within the 35 days of hourly totals.
    pub fn anomalies(&self, window: Window) -> Result<AnomalyReport, QueryError> {
        let rule = self.inner.config.anomaly;
        if let Some((name, reason)) = rule.problem() {
            return Err(QueryError::InvalidArgument { name, reason });
        }
        let n = i64::from(rule.trailing_days);
        // A baseline of one or two periods is not a pattern: a quiet hour going from 1 call to 4 on the second
        // day is not an anomaly. Checked once three are there (all of them when the rule trails fewer), and
        // three of them had calls: one call at 03:00 a week ago and one today is not a 7x spike at 03:00.
        let min_count = n.min(MIN_BASELINE_PERIODS);
        self.read(|store, now| {
            let tz = store.tz;
            let (from, to) = window.bounds(store, now)?;
            let Some(first) = store.first_ts else {
                return Ok(AnomalyReport { window: WindowBounds::of(from, to), rule, anomalies: Vec::new() });
            };
            // Baselines count whole days and hours only: the partial first one would read as a drop, and the
            // next (ordinary) one as a spike.
            let first_day = store.first_full_day(now).unwrap_or(first);
            let first_hour = store.first_full_hour().unwrap_or(first);
            let mut found: Vec<(Period, AnomalyMetric, f64, f64, f64)> = Vec::new();
            let check = |p: Period, value: &Core, base: &Core, count: i64, found: &mut Vec<_>| {
                // Past its factor, a metric is an anomaly when it is not chance: the period's calls are more than
                // the baseline's rate of calls makes likely ([`SIGNIFICANCE`], Poisson), or (tokens, cost) its
                // calls were bigger than the baseline's by the factor. One call an hour, steady, made 3 calls in
                // some hour most weeks: 19 hours of a week flagged as 2x tokens, none of them a change.
                // Worked out once, and only for a period past a factor (the tail's sum is up to thousands of terms).
                let mut tested: Option<bool> = None;
                let mut more_calls = || {
                    *tested.get_or_insert_with(|| {
                        poisson_at_least(value.calls, base.calls as f64 / count as f64) < SIGNIFICANCE
                    })
                };
                for m in METRICS {
                    let baseline = m.of(base) / count as f64;
                    let v = m.of(value);
                    let f = m.factor(&rule);
                    if baseline > 0.0 && v > f * baseline {
                        let bigger_calls = m != AnomalyMetric::Calls
                            && value.calls > 0
                            && base.calls > 0
                            && v / value.calls as f64 > f * (m.of(base) / base.calls as f64);
                        if bigger_calls || more_calls() {
                            found.push((p, m, v, baseline, f));
                        }
                    }
                }
            };
            // Days.
            let days: BTreeMap<i64, Core> = store.daily.iter().map(|(k, a)| (*k, a.core)).collect();
            // Every day and hour the window touches: one starting before `from` (a rolling window begins
            // mid-day, `1h` mid-hour) is checked whole.
            for (&d, value) in days.range(calendar::day_start(tz, from).min(from)..to.max(from)) {
                let date = calendar::local(tz, d).date();
                let mut base = Core::default();
                let (mut count, mut active) = (0, 0);
                let mut base_from = d;
                for k in 1..=n {
                    let dk = calendar::start_of_date(tz, calendar::add_days(date, -k));
                    if dk < first_day {
                        break;
                    }
                    count += 1;
                    base_from = dk;
                    if let Some(c) = days.get(&dk) {
                        base.add(c);
                        active += i64::from(c.calls > 0);
                    }
                }
                if count >= min_count && active >= min_count {
                    let end = calendar::grain_end(tz, Grain::Day, d);
                    let p =
                        Period { granularity: Granularity::Day, start: d, end, base_from, base_periods: count as f64 };
                    check(p, value, &base, count, &mut found);
                }
            }
            // Hours, against the same hour of the trailing days.
            for (&h, a) in store.hourly.range(calendar::hour_start(tz, from).min(from)..to.max(from)) {
                let mut base = Core::default();
                let (mut count, mut active) = (0, 0);
                let mut base_from = h;
                for k in 1..=n {
                    // The same local hour k days before: across a DST change it is not k × 24 hours back.
                    let Some(hk) = calendar::same_local_time(tz, h, -k).map(|t| calendar::hour_start(tz, t)) else {
                        continue;
                    };
                    if hk < first_hour || hk < store.hourly_from(now) {
                        break;
                    }
                    count += 1;
                    base_from = hk;
                    if let Some(c) = store.hourly.get(&hk) {
                        base.add(&c.core);
                        active += i64::from(c.core.calls > 0);
                    }
                }
                if count >= min_count && active >= min_count {
                    let p = Period {
                        granularity: Granularity::Hour,
                        start: h,
                        end: calendar::grain_end(tz, Grain::Hour, h),
                        base_from,
                        base_periods: ((h - base_from) / 3_600) as f64,
                    };
                    check(p, &a.core, &base, count, &mut found);
                }
            }
            found.sort_by(|a, b| {
                b.0.start.cmp(&a.0.start).then(a.0.granularity.cmp_key().cmp(&b.0.granularity.cmp_key()))
            });
            found.truncate(MAX_ANOMALIES);
            // The tokens, cost and calls of one period often all flag it: its breakdowns are read once. The list is
            // sorted by period, so the last one read is the only one kept (each holds two maps of sums).
            let mut last: Option<((i64, i64, u8), Option<Breakdown<'_>>)> = None;
            let anomalies = found
                .into_iter()
                .map(|(p, metric, value, baseline, threshold)| Anomaly {
                    granularity: p.granularity,
                    start: calendar::utc(p.start),
                    end: calendar::utc(p.end),
                    metric,
                    value,
                    baseline,
                    ratio: value / baseline,
                    threshold,
                    spiked_by: {
                        let key = (p.start, p.end, p.granularity.cmp_key());
                        if last.as_ref().is_none_or(|(k, _)| *k != key) {
                            last = Some((key, Breakdown::of(store, &p, now)));
                        }
                        last.as_ref().and_then(|(_, b)| b.as_ref()).and_then(|b| b.spike(metric))
                    },
                })
                .collect();
            Ok(AnomalyReport { window: WindowBounds::of(from, to), rule, anomalies })
        })
    }
}

impl Granularity {
    fn cmp_key(self) -> u8 {
        match self {
            Granularity::Day => 0,
            Granularity::Hour => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::poisson_at_least;

    #[test]
    fn poissons_upper_tail_matches_its_sums() {
        // P(X >= n) for Poisson(mean), summed in Python with `math.lgamma` (two ways: the tail, and one less the
        // head with `math.fsum`; they agree to 1e-12).
        for (n, mean, want) in [
            (4u64, 1.0, 0.018_988_156_876_153_812),
            (6, 1.0, 0.000_594_184_817_581_692_4),
            (40, 20.0, 0.000_053_202_025_112_462_42),
            (30, 20.0, 0.021_818_217_525_557_276),
            (1_100, 1_000.0, 0.000_962_630_405_866_280_4),
        ] {
            let got = poisson_at_least(n, mean);
            assert!((got - want).abs() <= want * 1e-6, "P(X >= {n}; {mean}) = {got}, want {want}");
        }
        assert_eq!(poisson_at_least(0, 3.0), 1.0);
        assert_eq!(poisson_at_least(2, 3.0), 1.0, "not above the mean");
        assert_eq!(poisson_at_least(1, 0.0), 0.0);
        assert_eq!(poisson_at_least(10_000, 1.0), 0.0, "underflows to nothing");
    }
}
