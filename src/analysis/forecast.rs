//! Spend forecast: a linear trend over the recent days, with day-of-week effects when they are there, and a
//! prediction band.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ledger::calendar::{self, Grain};
use crate::ledger::{Ledger, QueryError};
use crate::pricing::Money;

/// Full local days of history the trend is fitted on (fewer when the ledger is younger).
pub const FORECAST_HISTORY_DAYS: i64 = 28;
/// Most days a forecast looks ahead.
pub const MAX_FORECAST_DAYS: u32 = 366;
/// The two-sided 90% quantile of the normal distribution: the band's multiplier when its spread is a stated
/// guess rather than an estimate (under 3 days of history, or today's run rate).
const Z_90: f64 = 1.645;

/// Student's t quantile for a two-sided 90% prediction interval, by degrees of freedom (1 to 30): with the
/// spread estimated from n points (n − 2 degrees of freedom), z alone would make a "90%" band of 3 days
/// cover about 65%.
const T_90: [f64; 30] = [
    6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812, 1.796, 1.782, 1.771, 1.761, 1.753, 1.746,
    1.740, 1.734, 1.729, 1.725, 1.721, 1.717, 1.714, 1.711, 1.708, 1.706, 1.703, 1.701, 1.699, 1.697,
];

/// The band's multiplier for a spread estimated with `df` degrees of freedom (0: a stated guess).
fn t_90(df: usize) -> f64 {
    match df {
        0 => Z_90,
        d => T_90.get(d - 1).copied().unwrap_or(Z_90),
    }
}

/// Direction of the trend: its change over a week against the daily average (10% either way is flat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    /// Growing by more than 10% of the daily average per week.
    Rising,
    /// Shrinking by more than 10% of the daily average per week.
    Falling,
    /// Neither.
    Flat,
}

/// What a forecast is made from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForecastBasis {
    /// A least-squares line over 3 or more full days, with its 90% prediction band; from 14 days on, with
    /// day-of-week effects when the days of the week differ by more than chance would make
    /// ([`Forecast::weekday_effects_usd`]).
    #[default]
    Trend,
    /// The mean of one or two full days, half of it as the spread.
    Mean,
    /// No full day yet: today's run rate, once an hour of it has passed, half of it as the spread.
    RunRate,
    /// No full day and less than an hour of today seen: nothing to forecast from. `days` is empty, and the
    /// month's projection is its spend so far.
    Insufficient,
}

/// One forecast day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastDay {
    /// The local date.
    pub date: NaiveDate,
    /// Its start.
    pub start: DateTime<Utc>,
    /// Expected spend, USD.
    pub cost_usd: f64,
    /// Lower end of the 90% band, USD (never below 0).
    pub lower_usd: f64,
    /// Upper end of the 90% band, USD.
    pub upper_usd: f64,
    /// Expected tokens: the expected spend at the history's tokens per dollar, so the two move together (the
    /// tokens' own trend when nothing in the history was priced).
    pub tokens: u64,
}

/// When a monthly limit would be reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitForecast {
    /// The limit for the current local month, USD.
    pub limit_usd: f64,
    /// Spent this month so far, USD.
    pub spent_usd: f64,
    /// True when the limit is already reached.
    pub reached: bool,
    /// The local date the limit is (or was) reached at the forecast rate; `null` when not within the month.
    pub reached_on: Option<NaiveDate>,
    /// Days from today to `reached_on` (0 when reached today or before).
    pub days_until: Option<i64>,
}

/// The spend forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// When it was made.
    pub generated_at: DateTime<Utc>,
    /// The time zone of the days.
    pub time_zone: String,
    /// Full days of history the trend was fitted on.
    pub history_days: u32,
    /// What the forecast is made from. Absent (`trend`) in forecasts written before it was added.
    #[serde(default)]
    pub basis: ForecastBasis,
    /// The trend's direction.
    pub trend: Trend,
    /// The trend's slope, USD per day per day (with a weekly pattern, the slope of the line under it).
    pub slope_usd_per_day: f64,
    /// With a weekly pattern (from [`WEEKLY_PATTERN_MIN_DAYS`] full days of history, kept when the days of the week
    /// differ by more than chance would make: an F test at 1%, or a weekend step, a t test at 1%), what each day of the
    /// week adds to the trend line; `null` for a plain line. Absent (`null`) in forecasts written before it was added.
    #[serde(default)]
    pub weekday_effects_usd: Option<WeekdayEffects>,
    /// Average daily spend over the history, USD.
    pub daily_average_usd: f64,
    /// The next days, tomorrow first.
    pub days: Vec<ForecastDay>,
    /// Spent this local month so far, USD.
    pub month_to_date_usd: f64,
    /// This month's spend so far plus the forecast for the rest of it, USD.
    pub projected_month_total_usd: f64,
    /// The limit asked about, if any.
    pub limit: Option<LimitForecast>,
    /// Calls on models without a price in the days the forecast reads (the history its trend is fitted on, and
    /// this month so far, today included): their cost is in none of the dollar figures above, which count
    /// priced calls only. Absent (0) in forecasts written before it was added.
    #[serde(default)]
    pub unpriced_calls: u64,
}

/// Full days of history from which a forecast may fit day-of-week effects: two weeks, each weekday seen twice.
pub const WEEKLY_PATTERN_MIN_DAYS: usize = 14;

/// F(6, d) at 99%, for d = 6 to 20 (the residual degrees of freedom of a weekly fit over 14 to 28 days): the
/// day-of-week effects are kept when they explain more than chance would (an F test at the 1% level), or when
/// weekends alone differ ([`T995`]).
const F99_6: [f64; 15] =
    [8.466, 7.191, 6.371, 5.802, 5.386, 5.069, 4.821, 4.620, 4.456, 4.318, 4.202, 4.102, 4.015, 3.939, 3.871];

/// Student's t at 99.5%, for d = 11 to 25 (the residual degrees of freedom of a line with a weekend step over 14
/// to 28 days): a weekend differing from the weekdays beyond chance (a two-sided test at 1%) keeps the weekly
/// pattern too. Most weekly patterns are a weekend's, and one degree of freedom finds them with fewer days: with
/// weekends at half the weekdays and a 30% day-to-day spread, 28 days found it 97% of the time, against 86% for
/// the six-effect test at 5%, while on spend with no weekly pattern a forecast made every day for 120 days took up
/// a spurious pattern in 40% of series (73% at 5%) and changed its mind 1.3 times (2.8).
const T995: [f64; 15] =
    [3.106, 3.055, 3.012, 2.977, 2.947, 2.921, 2.898, 2.878, 2.861, 2.845, 2.831, 2.819, 2.807, 2.797, 2.787];

/// Columns of a line with a weekend step (level, slope, Saturday or Sunday): the test of [`T995`] only. (Past
/// the tables' last row, a longer history than [`FORECAST_HISTORY_DAYS`], their last value is a stricter line.)
const WEEKEND_PARAMS: usize = 3;

/// What each local day of the week adds to the trend line (or takes from it) in a forecast fitted with a
/// weekly pattern, USD; the seven sum to zero.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WeekdayEffects {
    /// Monday.
    pub mon: f64,
    /// Tuesday.
    pub tue: f64,
    /// Wednesday.
    pub wed: f64,
    /// Thursday.
    pub thu: f64,
    /// Friday.
    pub fri: f64,
    /// Saturday.
    pub sat: f64,
    /// Sunday.
    pub sun: f64,
}

impl WeekdayEffects {
    /// The effect of `day`.
    pub fn of(&self, day: chrono::Weekday) -> f64 {
        use chrono::Weekday::*;
        match day {
            Mon => self.mon,
            Tue => self.tue,
            Wed => self.wed,
            Thu => self.thu,
            Fri => self.fri,
            Sat => self.sat,
            Sun => self.sun,
        }
    }
}

/// Coefficients of a fit: the level at the history's middle, the slope, and six day-of-week effects (effect
/// coding: Sunday's is minus the sum of the others) when the fit has a weekly pattern.
const MAX_PARAMS: usize = 8;

/// A least-squares fit through `(i, ys[i])`, a line or a line with day-of-week effects, with its prediction
/// interval.
struct Fit {
    beta: [f64; MAX_PARAMS],
    /// 2 for a line, 8 with day-of-week effects.
    params: usize,
    /// `(XᵀX)⁻¹`, for the prediction band (zero for a flat guess: its spread is stated, not estimated).
    inv: [[f64; MAX_PARAMS]; MAX_PARAMS],
    sigma: f64,
    /// The band's multiplier: t for the residual's degrees of freedom, z for a guessed spread.
    quantile: f64,
    xbar: f64,
    mean: f64,
    /// The day of the week of x = 0, Monday 0.
    first_weekday: u32,
}

impl Fit {
    /// A line through `ys` (days from x = 0, whose weekday is `first_weekday`), with day-of-week effects from
    /// [`WEEKLY_PATTERN_MIN_DAYS`] on when they explain more than chance would; under 3 days their mean.
    fn new(ys: &[f64], first_weekday: chrono::Weekday) -> Fit {
        let first_weekday = first_weekday.num_days_from_monday();
        let n = ys.len();
        if n == 0 {
            // No history: a flat $0 whose stated spread, half of it, is no band.
            return Fit::flat(0.0);
        }
        let mean = ys.iter().sum::<f64>() / n as f64;
        // Two points make a line through both: $1 then $10 projected $28 tomorrow and $4,000 for the month. Under
        // 3 days the history's mean, with the stated spread.
        if n < 3 {
            return Fit::flat(mean);
        }
        let xbar = (n as f64 - 1.0) / 2.0;
        let Some((line, sse_line)) = Fit::least_squares(ys, 2, xbar, first_weekday) else {
            return Fit::flat(mean);
        };
        let mut best = (line, sse_line);
        if n >= WEEKLY_PATTERN_MIN_DAYS
            && let Some((weekly, sse_weekly)) = Fit::least_squares(ys, MAX_PARAMS, xbar, first_weekday)
        {
            // Residuals within rounding of none: a line that fits exactly needs no pattern, and a pattern that
            // fits exactly where the line does not is one.
            let tiny = 1e-12 * ys.iter().map(|y| y * y).sum::<f64>();
            let df = n - MAX_PARAMS;
            let significant = if sse_line <= tiny {
                false
            } else if sse_weekly <= tiny {
                true
            } else {
                let f = ((sse_line - sse_weekly) / 6.0) / (sse_weekly / df as f64);
                let weekend = Fit::least_squares(ys, WEEKEND_PARAMS, xbar, first_weekday).is_some_and(|(w, sse)| {
                    // The weekend step's t: its coefficient over its standard error.
                    let df = n - WEEKEND_PARAMS;
                    let se = (sse / df as f64 * w.inv[2][2]).sqrt();
                    se > 0.0
                        && T995.get(df - 11).or(T995.last()).is_some_and(|critical| (w.beta[2] / se).abs() > *critical)
                });
                weekend || F99_6.get(df - 6).or(F99_6.last()).is_some_and(|critical| f > *critical)
            };
            if significant {
                best = (weekly, sse_weekly);
            }
        }
        let (mut fit, sse) = best;
        let df = n - fit.params;
        fit.sigma = if sse > 0.0 { (sse / df as f64).sqrt() } else { 0.0 };
        fit.quantile = t_90(df);
        fit.mean = mean;
        fit
    }

    /// Ordinary least squares with `params` columns (2: level and slope; 3: and a weekend step; 8: and six
    /// day-of-week effects), and
    /// its sum of squared residuals; `None` when the columns are not independent.
    fn least_squares(ys: &[f64], params: usize, xbar: f64, first_weekday: u32) -> Option<(Fit, f64)> {
        let mut fit = Fit {
            beta: [0.0; MAX_PARAMS],
            params,
            inv: [[0.0; MAX_PARAMS]; MAX_PARAMS],
            sigma: 0.0,
            quantile: Z_90,
            xbar,
            mean: 0.0,
            first_weekday,
        };
        let mut xtx = [[0.0; MAX_PARAMS]; MAX_PARAMS];
        let mut xty = [0.0; MAX_PARAMS];
        for (i, y) in ys.iter().enumerate() {
            let r = fit.row(i as f64);
            for a in 0..params {
                xty[a] += r[a] * y;
                for b in 0..params {
                    xtx[a][b] += r[a] * r[b];
                }
            }
        }
        fit.inv = invert(&xtx, params)?;
        for a in 0..params {
            fit.beta[a] = (0..params).map(|b| fit.inv[a][b] * xty[b]).sum();
        }
        let sse = ys.iter().enumerate().map(|(i, y)| (y - fit.line(i as f64)).powi(2)).sum();
        Some((fit, sse))
    }

    /// A flat line at `rate` with half of it as the spread (the band is then ±0.82 × rate).
    fn flat(rate: f64) -> Fit {
        let mut beta = [0.0; MAX_PARAMS];
        beta[0] = rate;
        // No `(XᵀX)⁻¹`: the spread is a stated guess, not an estimate from samples.
        Fit {
            beta,
            params: 2,
            inv: [[0.0; MAX_PARAMS]; MAX_PARAMS],
            sigma: rate * 0.5,
            quantile: Z_90,
            xbar: 0.0,
            mean: rate,
            first_weekday: 0,
        }
    }

    /// The columns of day `x`: 1, its distance from the history's middle, and its day of the week's effect coding
    /// (or, for the weekend test, 1 on a Saturday or Sunday).
    fn row(&self, x: f64) -> [f64; MAX_PARAMS] {
        let mut r = [0.0; MAX_PARAMS];
        r[0] = 1.0;
        r[1] = x - self.xbar;
        let weekday = (i64::from(self.first_weekday) + x.round() as i64).rem_euclid(7) as usize;
        match self.params {
            MAX_PARAMS if weekday == 6 => r[2..].fill(-1.0),
            MAX_PARAMS => r[2 + weekday] = 1.0,
            WEEKEND_PARAMS => r[2] = f64::from(u8::from(weekday >= 5)),
            _ => {}
        }
        r
    }

    fn slope(&self) -> f64 {
        self.beta[1]
    }

    /// The day-of-week effects, when the fit has them.
    fn weekday_effects(&self) -> Option<WeekdayEffects> {
        (self.params == MAX_PARAMS).then(|| {
            let s = &self.beta[2..];
            WeekdayEffects {
                mon: s[0],
                tue: s[1],
                wed: s[2],
                thu: s[3],
                fri: s[4],
                sat: s[5],
                sun: -s.iter().sum::<f64>(),
            }
        })
    }

    fn at(&self, x: f64) -> f64 {
        self.line(x).max(0.0)
    }

    /// The fitted line itself, below zero where a falling trend crosses it (the band is around the line, and
    /// only then clamped to zero).
    fn line(&self, x: f64) -> f64 {
        let r = self.row(x);
        (0..self.params).map(|a| r[a] * self.beta[a]).sum()
    }

    fn band(&self, x: f64) -> f64 {
        let r = self.row(x);
        let lever: f64 =
            (0..self.params).map(|a| (0..self.params).map(|b| r[a] * self.inv[a][b] * r[b]).sum::<f64>()).sum();
        self.quantile * self.sigma * (1.0 + lever.max(0.0)).sqrt()
    }
}

/// The inverse of the top-left `n` × `n` of `m` (Gauss-Jordan with partial pivoting); `None` when singular.
fn invert(m: &[[f64; MAX_PARAMS]; MAX_PARAMS], n: usize) -> Option<[[f64; MAX_PARAMS]; MAX_PARAMS]> {
    let mut a = *m;
    let mut inv = [[0.0; MAX_PARAMS]; MAX_PARAMS];
    for (i, row) in inv.iter_mut().enumerate().take(n) {
        row[i] = 1.0;
    }
    let scale = (0..n).map(|i| a[i][i].abs()).fold(0.0, f64::max);
    for col in 0..n {
        let pivot = (col..n).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].is_nan() || a[pivot][col].abs() <= 1e-12 * scale {
            return None;
        }
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let p = a[col][col];
        for k in 0..n {
            a[col][k] /= p;
            inv[col][k] /= p;
        }
        for r in 0..n {
            if r != col {
                let factor = a[r][col];
                if factor != 0.0 {
                    for k in 0..n {
                        a[r][k] -= factor * a[col][k];
                        inv[r][k] -= factor * inv[col][k];
                    }
                }
            }
        }
    }
    Some(inv)
}

impl Ledger {
    /// Forecasts the next `days` days of spend from a linear trend over the last 28 full local days (fewer when the
    /// ledger is younger; from [`WEEKLY_PATTERN_MIN_DAYS`] on, with day-of-week effects when the days of the week
    /// differ by more than chance would make; under 3 days their mean, with half of it as the spread; with no full day
    /// yet, today's run rate since midnight or since the meter started today, once an hour of it has passed, with the
    /// same spread; before that, no forecast days: [`ForecastBasis::Insufficient`]), with a 90% band, this month's
    /// projected total, and, given a monthly `limit_usd`, the day this month's spend would reach it (a limit of 0 by
    /// the first spend).
    pub fn forecast(&self, days: u32, limit_usd: Option<f64>) -> Result<Forecast, QueryError> {
        if days == 0 || days > MAX_FORECAST_DAYS {
            return Err(QueryError::InvalidArgument {
                name: "days",
                reason: format!("{days} is out of range: forecast 1 to {MAX_FORECAST_DAYS} days"),
            });
        }
        if let Some(l) = limit_usd
            && !(l.is_finite() && l >= 0.0)
        {
            return Err(QueryError::InvalidArgument {
                name: "limit_usd",
                reason: format!("{l} must be a non-negative number"),
            });
        }
        self.read(|store, now| {
            let tz = store.tz;
            let today_date = calendar::local(tz, now).date();
            let today = calendar::start_of_date(tz, today_date);
            // The first day only when it was seen whole (a meter started at 18:00 saw a quarter of it).
            let first_day = store.first_full_day(now);
            let day_of = |k: i64| calendar::start_of_date(tz, calendar::add_days(today_date, k));
            let daily = |d: i64| store.daily.get(&d).map(|a| a.core).unwrap_or_default();
            // History: full days before today, from the first day seen whole.
            let mut hist_cost = Vec::new();
            let mut hist_tokens = Vec::new();
            for k in (1..=FORECAST_HISTORY_DAYS).rev() {
                let d = day_of(-k);
                if first_day.is_some_and(|f| d >= f) {
                    let c = daily(d);
                    hist_cost.push(c.cost.as_usd());
                    hist_tokens.push(c.tokens.total() as f64);
                }
            }
            // Today's part the ledger saw: from the meter's start when it started today and saw nothing before
            // (spend since 17:00 over the hours since midnight read as a tenth of the rate at 19:00).
            let seen_from = match store.first_ts {
                Some(first) if store.created > today && first >= store.created => store.created.min(now),
                // Made today and nothing seen yet: the minutes since it was made (from midnight, 18 hours of
                // nothing read as $0 a day, certain, ten minutes after a start at 18:00).
                None if store.created > today => store.created.min(now),
                _ => today,
            };
            let elapsed = (now - seen_from) as f64 / 86_400.0;
            let run_rate = hist_cost.is_empty() && elapsed >= 1.0 / 24.0;
            let (cost_fit, token_fit) = if run_rate {
                // No full day yet: today's run rate, once it has an hour behind it.
                let t = daily(today);
                (Fit::flat(t.cost.as_usd() / elapsed), Fit::flat(t.tokens.total() as f64 / elapsed))
            } else {
                // The history's first day is x = 0; today is x = n.
                let first = calendar::add_days(today_date, -(hist_cost.len() as i64)).weekday();
                (Fit::new(&hist_cost, first), Fit::new(&hist_tokens, first))
            };
            // Tokens follow the spend at the history's tokens per dollar: two separate fits on a few days
            // drifted apart (spend flat while tokens fell to 0).
            let (spent_hist, tokens_hist) = if hist_cost.is_empty() {
                let t = daily(today);
                (t.cost.as_usd(), t.tokens.total() as f64)
            } else {
                (hist_cost.iter().sum::<f64>(), hist_tokens.iter().sum::<f64>())
            };
            let tokens_per_usd = (spent_hist > 0.0).then(|| tokens_hist / spent_hist);
            let n = hist_cost.len() as f64;
            let basis = match hist_cost.len() {
                0 if run_rate => ForecastBasis::RunRate,
                // Less than an hour of today and no full day: an empty fit would read as $0 a day, certain.
                0 => ForecastBasis::Insufficient,
                1 | 2 => ForecastBasis::Mean,
                _ => ForecastBasis::Trend,
            };
            let horizon = if basis == ForecastBasis::Insufficient { 0 } else { i64::from(days) };
            // History is x = 0..n-1, so today is x = n and day k ahead is n + k.
            let forecast_days: Vec<ForecastDay> = (1..=horizon)
                .map(|k| {
                    let x = n + k as f64;
                    let cost = cost_fit.at(x);
                    let line = cost_fit.line(x);
                    let band = cost_fit.band(x);
                    let date = calendar::add_days(today_date, k);
                    ForecastDay {
                        date,
                        start: calendar::utc(day_of(k)),
                        cost_usd: cost,
                        lower_usd: (line - band).max(0.0),
                        upper_usd: (line + band).max(0.0),
                        tokens: match tokens_per_usd {
                            Some(per_usd) => (cost * per_usd).round() as u64,
                            None => token_fit.at(x).round() as u64,
                        },
                    }
                })
                .collect();

            let month_start = calendar::month_start(tz, now);
            let month_end = calendar::grain_end(tz, Grain::Month, month_start);
            // Exact: summed as floats, $0.70 and $0.10 made $0.7999999999999999, short of a $0.80 limit.
            let month_days: Vec<(i64, Money)> =
                store.daily.range(month_start..month_end).map(|(k, a)| (*k, a.core.cost)).collect();
            let spent_exact = month_days.iter().fold(Money::default(), |a, (_, c)| a + *c);
            let spent = spent_exact.as_usd();
            // The day's expected spend over what is left of it. Not the expected day less today's spend so far:
            // after a quiet morning that read the whole day's spend into its last hour ($22 expected between 23:00
            // and midnight at $1 an hour), and under the run rate today's spend covers only the part since the
            // meter started.
            // A fitted day is a calendar day, whatever its length (23 or 25 hours on a day the clocks change):
            // the part of today's own length left. The run rate is per 24 hours of elapsed time.
            let day_len = if run_rate { 86_400.0 } else { (day_of(1) - today).max(1) as f64 };
            let today_rest = cost_fit.at(n) * (day_of(1) - now).max(0) as f64 / day_len;
            // Remaining full days of the month after today.
            let mut rest: Vec<(NaiveDate, f64)> = Vec::new();
            let mut k = 1;
            while day_of(k) < month_end && k <= 31 {
                rest.push((calendar::add_days(today_date, k), cost_fit.at(n + k as f64)));
                k += 1;
            }
            let projected = spent + today_rest + rest.iter().map(|(_, c)| c).sum::<f64>();
            // Calls the dollar figures leave out: those of the days read above (history, the month, today).
            let history_from = day_of(-FORECAST_HISTORY_DAYS);
            let read = |d: i64| {
                d >= month_start || d == today || (d >= history_from && d < today && first_day.is_some_and(|f| d >= f))
            };
            let unpriced_calls: u64 = store
                .daily
                .range(history_from.min(month_start)..day_of(1))
                .filter(|(d, _)| read(**d))
                .map(|(_, a)| a.core.unpriced_calls)
                .sum();

            let limit = limit_usd.map(|limit| {
                // A limit of $0 is reached by the first spend, not by none (it read as reached on the 1st).
                let hits = |c: f64| c >= limit && c > 0.0;
                // The days spent, in exact amounts against the limit in picodollars (saturating: any limit past
                // $3.4e26 is never reached).
                let limit_picos = (limit * 1e12).round() as u128;
                let mut spent_so_far = Money::default();
                let mut reached_on = None;
                for (d, c) in &month_days {
                    spent_so_far += *c;
                    if spent_so_far.picos() >= limit_picos && !spent_so_far.is_zero() && reached_on.is_none() {
                        reached_on = Some(calendar::local(tz, *d).date());
                    }
                }
                let reached = reached_on.is_some();
                if !reached {
                    let mut cumulative = spent + today_rest;
                    if hits(cumulative) {
                        reached_on = Some(today_date);
                    } else {
                        for (d, c) in &rest {
                            cumulative += c;
                            if hits(cumulative) {
                                reached_on = Some(*d);
                                break;
                            }
                        }
                    }
                }
                LimitForecast {
                    limit_usd: limit,
                    spent_usd: spent,
                    reached,
                    reached_on,
                    days_until: reached_on.map(|d| (d - today_date).num_days().max(0)),
                }
            });
            let trend = if cost_fit.mean <= 0.0 || (cost_fit.slope() * 7.0).abs() < 0.1 * cost_fit.mean {
                Trend::Flat
            } else if cost_fit.slope() > 0.0 {
                Trend::Rising
            } else {
                Trend::Falling
            };
            Ok(Forecast {
                generated_at: calendar::utc(now),
                time_zone: tz.name().to_owned(),
                history_days: hist_cost.len() as u32,
                basis,
                trend,
                slope_usd_per_day: cost_fit.slope(),
                weekday_effects_usd: cost_fit.weekday_effects(),
                daily_average_usd: cost_fit.mean,
                days: forecast_days,
                month_to_date_usd: spent,
                projected_month_total_usd: projected,
                limit,
                unpriced_calls,
            })
        })
    }
}
