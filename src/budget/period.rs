//! Period arithmetic: calendar periods in a time zone, and the buckets of a rolling window.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc, Weekday};
use chrono_tz::Tz;

use super::BudgetPeriod;

/// A rolling window's buckets are a sixtieth of its duration wide.
const BUCKETS_PER_DURATION: i64 = 60;

/// Buckets in a rolling window: one more than the duration holds, so that the window, the bucket holding now and
/// the 60 before it, never covers less than the duration (between 60 and 61 sixtieths of it). With 60 it covered
/// between 59 and 60, and a blocking budget let requests through up to a sixtieth early.
pub(super) const ROLLING_BUCKETS: usize = 61;

/// Nanoseconds since the Unix epoch to a UTC time.
pub(super) fn to_utc(nanos: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(nanos)
}

/// A UTC time to nanoseconds since the Unix epoch (saturating outside ±292 years).
pub(super) fn to_nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 { i64::MIN } else { i64::MAX })
}

/// The calendar period (`Day`, `Week` or `Month`) holding `at`, as `[start, end)` in Unix nanoseconds.
/// Weeks start on `week_start`.
///
/// Always holds `at`. Where the clock went back over midnight into the date before (St John's, Newfoundland, on
/// 2010-11-07: 00:01 back to 23:01), the next date has begun at its first midnight, and the repeated hour of the
/// evening before counts in it: the period of that evening's date ended at that midnight, before `at`, and each
/// call re-opened it.
pub(super) fn calendar_bounds(period: BudgetPeriod, tz: Tz, week_start: Weekday, at: i64) -> (i64, i64) {
    let local = to_utc(at).with_timezone(&tz).date_naive();
    match bounds_of_date(period, tz, week_start, local) {
        (_, end, Some(next)) if at >= end => {
            let (start, end, _) = bounds_of_date(period, tz, week_start, next);
            (start, end)
        }
        (start, end, _) => (start, end),
    }
}

/// The calendar period holding the local date `local`, and the date the next one starts on.
fn bounds_of_date(
    period: BudgetPeriod,
    tz: Tz,
    week_start: Weekday,
    local: NaiveDate,
) -> (i64, i64, Option<NaiveDate>) {
    let (start, end) = match period {
        BudgetPeriod::Day => (Some(local), local.checked_add_days(Days::new(1))),
        BudgetPeriod::Week => {
            let start = local.checked_sub_days(Days::new(u64::from(local.weekday().days_since(week_start))));
            (start, start.and_then(|s| s.checked_add_days(Days::new(7))))
        }
        BudgetPeriod::Month | BudgetPeriod::Rolling(_) => {
            let start = local.with_day(1);
            (start, start.and_then(|s| s.checked_add_months(Months::new(1))))
        }
    };
    match (start, end) {
        (Some(s), Some(e)) => (local_midnight(tz, s), local_midnight(tz, e), Some(e)),
        // Only at the ends of chrono's calendar (year ±262,000): one period for everything out there.
        _ => (i64::MIN, i64::MAX, None),
    }
}

/// The instant a local date starts in `tz`, in Unix nanoseconds: local midnight, the earlier one when the clock is
/// turned back over midnight, the first existing local time when midnight is skipped, and where the next date starts
/// for a date the zone skipped whole ([`start_of_date`](crate::ledger::calendar::start_of_date)).
fn local_midnight(tz: Tz, date: NaiveDate) -> i64 {
    crate::ledger::calendar::start_of_date(tz, date).saturating_mul(1_000_000_000)
}

/// The spend of a rolling window, in time buckets.
#[derive(Debug, Clone)]
pub(super) struct RollingBuckets {
    /// Bucket width, nanoseconds.
    width: i64,
    /// Bucket index (time / width) each slot holds.
    index: [i64; ROLLING_BUCKETS],
    units: [u128; ROLLING_BUCKETS],
    calls: [u64; ROLLING_BUCKETS],
    unpriced: [u64; ROLLING_BUCKETS],
    /// The newest bucket index spend was added to.
    newest: i64,
}

/// What a rolling window holds at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct WindowSum {
    pub(super) units: u128,
    pub(super) calls: u64,
    pub(super) unpriced: u64,
    /// Index of the oldest bucket in the window that holds anything.
    pub(super) oldest: Option<i64>,
}

impl RollingBuckets {
    pub(super) fn new(duration: std::time::Duration) -> Self {
        let nanos = i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX);
        let width = (nanos / BUCKETS_PER_DURATION).max(1) + i64::from(nanos % BUCKETS_PER_DURATION != 0);
        RollingBuckets {
            width,
            index: [i64::MIN; ROLLING_BUCKETS],
            units: [0; ROLLING_BUCKETS],
            calls: [0; ROLLING_BUCKETS],
            unpriced: [0; ROLLING_BUCKETS],
            newest: i64::MIN,
        }
    }

    /// Bucket width, nanoseconds.
    pub(super) fn width(&self) -> i64 {
        self.width
    }

    fn slot(&self, bucket: i64) -> usize {
        bucket.rem_euclid(ROLLING_BUCKETS as i64) as usize
    }

    /// Adds spend at `at`. Returns false (adding nothing) when `at` is already outside any window the
    /// buckets can hold.
    pub(super) fn add(&mut self, at: i64, units: u128, unpriced: bool) -> bool {
        let bucket = at.div_euclid(self.width);
        let slot = self.slot(bucket);
        if self.index[slot] > bucket {
            return false;
        }
        if self.index[slot] != bucket {
            self.index[slot] = bucket;
            self.units[slot] = 0;
            self.calls[slot] = 0;
            self.unpriced[slot] = 0;
        }
        self.units[slot] = self.units[slot].saturating_add(units);
        self.calls[slot] += 1;
        self.unpriced[slot] += u64::from(unpriced);
        self.newest = self.newest.max(bucket);
        true
    }

    /// The clock stepped back: spend was added more than `tolerance` after `at` (stamped while the clock ran
    /// ahead). That spend is moved into `at`'s bucket, as happening now under a wrong stamp, so that the window
    /// ending at `at` holds it and later calls are not refused for a future bucket holding their slot. Buckets the
    /// spend stamped ahead overwrote are gone. Returns whether anything moved.
    pub(super) fn step_back(&mut self, at: i64, tolerance: i64) -> bool {
        if self.newest == i64::MIN || self.newest.saturating_mul(self.width).saturating_sub(at) <= tolerance {
            return false;
        }
        let current = at.div_euclid(self.width);
        let (mut units, mut calls, mut unpriced) = (0u128, 0u64, 0u64);
        for slot in 0..ROLLING_BUCKETS {
            if self.index[slot] > current {
                units = units.saturating_add(self.units[slot]);
                calls += self.calls[slot];
                unpriced += self.unpriced[slot];
                (self.index[slot], self.units[slot], self.calls[slot], self.unpriced[slot]) = (i64::MIN, 0, 0, 0);
            }
        }
        let slot = self.slot(current);
        if self.index[slot] != current {
            (self.index[slot], self.units[slot], self.calls[slot], self.unpriced[slot]) = (current, 0, 0, 0);
        }
        self.units[slot] = self.units[slot].saturating_add(units);
        self.calls[slot] += calls;
        self.unpriced[slot] += unpriced;
        self.newest = current;
        true
    }

    /// `at`, or the start of the newest bucket spend was added to when that is later: a call accounted after
    /// another that ended a moment later (two threads) reads the window as it stands, not as it stood before.
    pub(super) fn latest(&self, at: i64) -> i64 {
        at.max(self.newest.saturating_mul(self.width))
    }

    /// The window ending at `at`: the bucket holding `at` and the 60 before it.
    pub(super) fn sum(&self, at: i64) -> WindowSum {
        let current = at.div_euclid(self.width);
        let first = current.saturating_sub(ROLLING_BUCKETS as i64 - 1);
        let mut sum = WindowSum::default();
        for slot in 0..ROLLING_BUCKETS {
            let b = self.index[slot];
            if b >= first && b <= current && (self.units[slot] > 0 || self.calls[slot] > 0) {
                sum.units = sum.units.saturating_add(self.units[slot]);
                sum.calls += self.calls[slot];
                sum.unpriced += self.unpriced[slot];
                if self.units[slot] > 0 {
                    sum.oldest = Some(sum.oldest.map_or(b, |o: i64| o.min(b)));
                }
            }
        }
        sum
    }

    /// The first instant every window ending then is empty: when the newest spend leaves it (`i64::MIN` with none).
    pub(super) fn empty_from(&self) -> i64 {
        if self.newest == i64::MIN {
            return i64::MIN;
        }
        self.newest.saturating_add(ROLLING_BUCKETS as i64).saturating_mul(self.width)
    }

    /// Start of the window ending at `at`.
    pub(super) fn window_start(&self, at: i64) -> i64 {
        (at.div_euclid(self.width) - (ROLLING_BUCKETS as i64 - 1)).saturating_mul(self.width)
    }

    /// When the spend in bucket `oldest` leaves the window (or, with nothing spent, the next bucket boundary).
    pub(super) fn resets_at(&self, at: i64, oldest: Option<i64>) -> i64 {
        match oldest {
            Some(b) => b.saturating_add(ROLLING_BUCKETS as i64).saturating_mul(self.width),
            None => at.div_euclid(self.width).saturating_add(1).saturating_mul(self.width),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> i64 {
        to_nanos(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
    }

    #[test]
    fn a_time_outside_the_nanosecond_range_saturates_on_its_own_side() {
        // i64 nanoseconds run from 1677-09-21 to 2262-04-11: later times are the last instant, earlier the first.
        assert_eq!(utc("3000-01-01T00:00:00Z"), i64::MAX);
        assert_eq!(utc("1000-01-01T00:00:00Z"), i64::MIN);
        assert_eq!(utc("2262-04-11T23:47:16.854775807Z"), i64::MAX);
        assert_eq!(utc("1970-01-01T00:00:01Z"), 1_000_000_000);
    }

    #[test]
    fn month_in_new_york() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let (s, e) = calendar_bounds(BudgetPeriod::Month, tz, Weekday::Mon, utc("2026-04-01T03:59:59Z"));
        assert_eq!((s, e), (utc("2026-03-01T05:00:00Z"), utc("2026-04-01T04:00:00Z")));
        let (s, _) = calendar_bounds(BudgetPeriod::Month, tz, Weekday::Mon, utc("2026-04-01T04:00:00Z"));
        assert_eq!(s, utc("2026-04-01T04:00:00Z"));
    }

    #[test]
    fn week_starts_monday() {
        // 2026-03-14 is a Saturday.
        let (s, e) = calendar_bounds(BudgetPeriod::Week, Tz::UTC, Weekday::Mon, utc("2026-03-14T12:00:00Z"));
        assert_eq!((s, e), (utc("2026-03-09T00:00:00Z"), utc("2026-03-16T00:00:00Z")));
    }

    #[test]
    fn week_starts_on_the_budgets_day() {
        // 2026-03-14 is a Saturday, 2026-03-15 a Sunday.
        let sunday = |at| calendar_bounds(BudgetPeriod::Week, Tz::UTC, Weekday::Sun, utc(at));
        assert_eq!(sunday("2026-03-14T23:59:59Z"), (utc("2026-03-08T00:00:00Z"), utc("2026-03-15T00:00:00Z")));
        assert_eq!(sunday("2026-03-15T00:00:00Z"), (utc("2026-03-15T00:00:00Z"), utc("2026-03-22T00:00:00Z")));
        // In a time zone: Sunday 2026-03-15 starts at 05:00 UTC in Bogotá (UTC-5).
        let tz: Tz = "America/Bogota".parse().unwrap();
        let (s, e) = calendar_bounds(BudgetPeriod::Week, tz, Weekday::Sun, utc("2026-03-15T04:59:59Z"));
        assert_eq!((s, e), (utc("2026-03-08T05:00:00Z"), utc("2026-03-15T05:00:00Z")));
    }

    #[test]
    fn skipped_midnight_starts_at_first_local_time() {
        // Chile (America/Santiago) moved clocks from 00:00 to 01:00 on 2024-09-08.
        let tz: Tz = "America/Santiago".parse().unwrap();
        let (s, _) = calendar_bounds(BudgetPeriod::Day, tz, Weekday::Mon, utc("2024-09-08T12:00:00Z"));
        assert_eq!(s, utc("2024-09-08T04:00:00Z"));
    }

    #[test]
    fn a_clock_turned_back_over_midnight_into_the_day_before_counts_the_repeated_evening_in_the_new_day() {
        // St John's went from 00:01 NDT on 2010-11-07 (02:31 UTC) back to 23:01 NST on the 6th: midnight came at
        // 02:30 and again at 03:30 UTC. A call at 03:00 UTC (23:30 on the 6th, the second time) was given the 6th,
        // which had ended at 02:30: a period that did not hold it.
        let tz: Tz = "America/St_Johns".parse().unwrap();
        for period in [BudgetPeriod::Day, BudgetPeriod::Week, BudgetPeriod::Month] {
            for at in ["2010-11-07T02:00:00Z", "2010-11-07T02:30:00Z", "2010-11-07T03:00:00Z", "2010-11-07T03:29:59Z"] {
                let (s, e) = calendar_bounds(period, tz, Weekday::Sun, utc(at));
                assert!(s <= utc(at) && utc(at) < e, "{period} at {at}: [{}, {})", to_utc(s), to_utc(e));
            }
        }
        let day = |at| calendar_bounds(BudgetPeriod::Day, tz, Weekday::Mon, utc(at));
        assert_eq!(day("2010-11-07T03:00:00Z"), (utc("2010-11-07T02:30:00Z"), utc("2010-11-08T03:30:00Z")));
        assert_eq!(day("2010-11-07T02:00:00Z").1, utc("2010-11-07T02:30:00Z"));
    }

    #[test]
    fn a_skipped_date_leaves_the_day_before_whole() {
        // Pacific/Apia skipped 2011-12-30, at 10:00 UTC that day: a call at 05:00 UTC was on the 29th there,
        // whose day runs to the jump. It ended at 00:00 UTC, before the call: every call reopened the period.
        let tz: Tz = "Pacific/Apia".parse().unwrap();
        let day = |at| calendar_bounds(BudgetPeriod::Day, tz, Weekday::Mon, utc(at));
        assert_eq!(day("2011-12-30T05:00:00Z"), (utc("2011-12-29T10:00:00Z"), utc("2011-12-30T10:00:00Z")));
        assert_eq!(day("2011-12-30T10:00:00Z"), (utc("2011-12-30T10:00:00Z"), utc("2011-12-31T10:00:00Z")));
    }

    #[test]
    fn a_rolling_window_never_covers_less_than_its_duration() {
        // An hour in minute-wide buckets; a call late in its minute.
        let mut b = RollingBuckets::new(std::time::Duration::from_secs(3_600));
        let at = 59_000_000_000;
        assert!(b.add(at, 1, false));
        let sum = b.sum(at + 3_599_000_000_000);
        assert_eq!(sum.units, 1, "59 min 59 s later, the last hour holds it");
        assert!(b.resets_at(at, sum.oldest) >= at + 3_600_000_000_000);
        assert_eq!(b.sum(at + 3_601_000_000_000).units, 0, "at most a minute longer");
    }

    #[test]
    fn a_rolling_window_counts_its_calls_and_unpriced_calls() {
        // A minute in one-second buckets: a priced call at 0 s, two unpriced calls (no spend) in the bucket at 10 s.
        let mut b = RollingBuckets::new(std::time::Duration::from_secs(60));
        assert!(b.add(0, 5, false));
        assert!(b.add(10_000_000_000, 0, true));
        assert!(b.add(10_500_000_000, 0, true));
        let sum = b.sum(20_000_000_000);
        assert_eq!((sum.units, sum.calls, sum.unpriced, sum.oldest), (5, 3, 2, Some(0)));
        // Second 0 has left the window: the unpriced calls are still in it, but no spend (so none to wait out).
        let sum = b.sum(61_000_000_000);
        assert_eq!((sum.units, sum.calls, sum.unpriced, sum.oldest), (0, 2, 2, None));
        assert_eq!(b.resets_at(61_000_000_000, sum.oldest), 62_000_000_000);
    }

    #[test]
    fn a_step_back_moves_calls_and_unpriced_calls_with_the_spend() {
        // A minute in one-second buckets: a call at 10.5 s, then two stamped 20 s ahead (one unpriced) before the
        // clock stepped back to 10.6 s. All three are in the bucket of 10 s now.
        let mut b = RollingBuckets::new(std::time::Duration::from_secs(60));
        assert!(b.add(10_500_000_000, 1, false));
        assert!(b.add(30_000_000_000, 5, false));
        assert!(b.add(31_000_000_000, 0, true));
        assert!(b.step_back(10_600_000_000, 1_000_000_000));
        let sum = b.sum(10_600_000_000);
        assert_eq!((sum.units, sum.calls, sum.unpriced, sum.oldest), (6, 3, 1, Some(10)));
    }

    #[test]
    fn rolling_window_forgets_old_buckets() {
        let mut b = RollingBuckets::new(std::time::Duration::from_secs(60));
        assert!(b.add(0, 5, false));
        assert!(b.add(30_000_000_000, 7, false));
        // A call counts for at least the window's 60 s: at 60 s the window still holds second 0.
        assert_eq!(b.sum(60_000_000_000).units, 12);
        assert_eq!(b.sum(61_000_000_000).units, 7);
        assert!(b.add(61_000_000_000, 1, false));
        assert!(!b.add(0, 1, false), "bucket 0's slot now holds bucket 61: a call that old is out of any window");
        assert_eq!(b.sum(61_000_000_000).units, 8);
        assert_eq!(b.sum(200_000_000_000).units, 0);
    }
}
