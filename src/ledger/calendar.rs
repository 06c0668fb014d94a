//! Calendar arithmetic in the ledger's time zone, on Unix seconds.
//!
//! Buckets are aligned to the configured zone's local hours, days, weeks (from the configured day) and months, so a
//! "day" is a local day (23 or 25 hours across a DST change) and grouping by day is exact.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// A grain of calendar time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Grain {
    Hour,
    Day,
    /// Weeks starting on the day this many days after Monday (0: Monday, 6: Sunday).
    Week(u8),
    Month,
}

/// The UTC instant of `ts` (Unix seconds), clamped into chrono's range less a day at each end, so that any
/// zone's local time of it exists too (at chrono's very first instant, a zone west of UTC has no local time,
/// and chrono panics making one).
pub(crate) fn utc(ts: i64) -> DateTime<Utc> {
    const DAY: i64 = 86_400;
    let (lo, hi) = (DateTime::<Utc>::MIN_UTC.timestamp() + DAY, DateTime::<Utc>::MAX_UTC.timestamp() - DAY);
    DateTime::from_timestamp(ts.clamp(lo, hi), 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The zone's offset from UTC at `ts`, in seconds.
pub(crate) fn offset_secs(tz: Tz, ts: i64) -> i64 {
    // UTC, the default zone, needs no lookup (chrono-tz searches the zone's transitions).
    if tz == Tz::UTC {
        return 0;
    }
    i64::from(tz.offset_from_utc_datetime(&utc(ts).naive_utc()).fix().local_minus_utc())
}

/// The local wall-clock time at `ts`.
pub(crate) fn local(tz: Tz, ts: i64) -> NaiveDateTime {
    utc(ts).with_timezone(&tz).naive_local()
}

/// `date` moved by `days` (saturating at chrono's date range).
pub(crate) fn add_days(date: NaiveDate, days: i64) -> NaiveDate {
    date.checked_add_signed(Duration::days(days)).unwrap_or(if days < 0 { NaiveDate::MIN } else { NaiveDate::MAX })
}

/// The first instant of local date `date` (midnight, or the first valid time after a midnight DST gap). A date
/// the zone skipped whole (Pacific/Apia went from 2011-12-29 to 2011-12-31) starts where the next one does: it
/// holds no instant, and the day before it ends there.
pub(crate) fn start_of_date(tz: Tz, date: NaiveDate) -> i64 {
    // A zone skips one date at most; the first of the two that has an instant in its first four hours.
    for date in [Some(date), date.succ_opt()].into_iter().flatten() {
        let midnight = date.and_time(chrono::NaiveTime::MIN);
        for step in 0..=16 {
            let Some(candidate) = midnight.checked_add_signed(Duration::minutes(15 * step)) else { break };
            match tz.from_local_datetime(&candidate) {
                LocalResult::Single(t) => return t.timestamp(),
                LocalResult::Ambiguous(a, _) => return a.timestamp(),
                LocalResult::None => continue,
            }
        }
    }
    // Unreachable for any zone; the UTC reading of local midnight.
    date.and_time(chrono::NaiveTime::MIN).and_utc().timestamp()
}

/// The start of the local hour containing `ts`.
pub(crate) fn hour_start(tz: Tz, ts: i64) -> i64 {
    let offset = offset_secs(tz, ts);
    let start = ts - (ts + offset).rem_euclid(3600);
    if offset_secs(tz, start) == offset {
        return start;
    }
    // The offset changed by a fraction of an hour within this local hour (Lord Howe's 30 minutes): the hour
    // began at the change, the first instant of `(start, ts]` with `ts`'s offset. Whole-hour changes fall on
    // an hour's start and never get here.
    let (mut before, mut after) = (start, ts);
    while after - before > 1 {
        let mid = before + (after - before) / 2;
        if offset_secs(tz, mid) == offset {
            after = mid;
        } else {
            before = mid;
        }
    }
    after
}

/// The start of the local hour `n` hours before the one containing `ts` (hours of 30 minutes at a
/// half-hour DST change count as one).
pub(crate) fn hours_back(tz: Tz, ts: i64, n: u32) -> i64 {
    let mut t = hour_start(tz, ts);
    for _ in 0..n {
        t = hour_start(tz, t - 1);
    }
    t
}

/// The start of the local day containing `ts`.
pub(crate) fn day_start(tz: Tz, ts: i64) -> i64 {
    start_of_date(tz, local(tz, ts).date())
}

/// The start of the local week containing `ts`, weeks starting `first` days after Monday (0: ISO weeks).
pub(crate) fn week_start(tz: Tz, ts: i64, first: u8) -> i64 {
    let date = local(tz, ts).date();
    let back = (i64::from(date.weekday().num_days_from_monday()) - i64::from(first % 7)).rem_euclid(7);
    start_of_date(tz, add_days(date, -back))
}

/// The start of the local month containing `ts`.
pub(crate) fn month_start(tz: Tz, ts: i64) -> i64 {
    let date = local(tz, ts).date();
    start_of_date(tz, date.with_day(1).unwrap_or(date))
}

/// The start of the grain containing `ts`.
pub(crate) fn grain_start(tz: Tz, grain: Grain, ts: i64) -> i64 {
    match grain {
        Grain::Hour => hour_start(tz, ts),
        Grain::Day => day_start(tz, ts),
        Grain::Week(first) => week_start(tz, ts, first),
        Grain::Month => month_start(tz, ts),
    }
}

/// The first start of a `grain` at or after `ts`: `ts` itself when a grain starts there.
pub(crate) fn grain_start_at_or_after(tz: Tz, grain: Grain, ts: i64) -> i64 {
    let start = grain_start(tz, grain, ts);
    if start >= ts { start } else { grain_end(tz, grain, start) }
}

/// The start of the grain after the one starting at `start`.
pub(crate) fn grain_end(tz: Tz, grain: Grain, start: i64) -> i64 {
    match grain {
        // A local hour is 3600 s except across a DST change: the next local hour start is an hour of real time
        // later for whole-hour shifts, or a partial hour starts in between (Chatham's +12:45 to +13:45 makes a
        // 15-minute hour): the start of the hour holding the instant before that one.
        Grain::Hour => {
            let next = hour_start(tz, start + 3600);
            let inner = hour_start(tz, next - 1);
            if inner > start { inner } else { next }
        }
        Grain::Day => {
            let date = local(tz, start).date();
            start_of_date(tz, date.succ_opt().unwrap_or(date))
        }
        Grain::Week(_) => {
            let date = local(tz, start).date();
            start_of_date(tz, add_days(date, 7))
        }
        Grain::Month => {
            let date = local(tz, start).date();
            let next = if date.month() == 12 {
                NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)
            };
            start_of_date(tz, next.unwrap_or(date))
        }
    }
}

/// The instant `days` days from `ts` at the same local wall-clock time (across a DST change that is not
/// `days` × 24 hours away); the earlier one when that time occurs twice, `None` when it does not occur.
pub(crate) fn same_local_time(tz: Tz, ts: i64, days: i64) -> Option<i64> {
    if tz == Tz::UTC {
        return Some(ts.saturating_add(days.saturating_mul(86_400)));
    }
    let l = local(tz, ts);
    match tz.from_local_datetime(&add_days(l.date(), days).and_time(l.time())) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.timestamp()),
        LocalResult::None => None,
    }
}

/// [`same_local_time`], except that a date's first instant goes to the first instant of the date `days` away: in a
/// zone whose clocks skip midnight (Santiago springs from 00:00 to 01:00), the day that begins at 01:00 and the
/// days around it that begin at 00:00 are whole days each, where the same local time would cut an hour off one of
/// them or land on a time that does not occur.
#[cfg_attr(not(feature = "http"), allow(dead_code))] // the HTTP API's implied starts
pub(crate) fn same_local_time_or_day_start(tz: Tz, ts: i64, days: i64) -> Option<i64> {
    let date = local(tz, ts).date();
    if ts == start_of_date(tz, date) {
        return Some(start_of_date(tz, add_days(date, days)));
    }
    same_local_time(tz, ts, days)
}

/// The local hour of day (0-23) at `ts`.
pub(crate) fn hour_of_day(tz: Tz, ts: i64) -> u32 {
    local(tz, ts).hour()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap().timestamp()
    }

    #[test]
    fn a_skipped_date_starts_where_the_next_one_does() {
        // Pacific/Apia went from 2011-12-29 23:59:59 (UTC-10) to 2011-12-31 00:00 (UTC+14), at 10:00 UTC on
        // the 30th: the 29th ends there, the 30th is empty, the 31st starts there.
        let tz = chrono_tz::Pacific::Apia;
        let date = |d| NaiveDate::from_ymd_opt(2011, 12, d).unwrap();
        let jump = ts(2011, 12, 30, 10, 0);
        assert_eq!(start_of_date(tz, date(30)), jump);
        assert_eq!(start_of_date(tz, date(31)), jump);
        assert_eq!(start_of_date(tz, date(29)), ts(2011, 12, 29, 10, 0));
        // A call at 05:00 UTC on the 30th was on the 29th there, whose day now ends after it.
        assert_eq!(local(tz, ts(2011, 12, 30, 5, 0)).date(), date(29));
        assert_eq!(grain_end(tz, Grain::Day, start_of_date(tz, date(29))), jump);
    }

    #[test]
    fn a_day_start_moves_to_the_day_start_days_away() {
        // Santiago springs from 00:00 to 01:00 on 2026-09-06 (UTC-4 to UTC-3): that day starts at 04:00 UTC.
        let tz = chrono_tz::America::Santiago;
        let sep6 = ts(2026, 9, 6, 4, 0);
        assert_eq!(start_of_date(tz, NaiveDate::from_ymd_opt(2026, 9, 6).unwrap()), sep6);
        // From that 01:00 start, a week back is the start of Aug 30 (00:00, UTC-4), not its 01:00.
        assert_eq!(same_local_time_or_day_start(tz, sep6, -7), Some(ts(2026, 8, 30, 4, 0)));
        assert_eq!(same_local_time(tz, sep6, -7), Some(ts(2026, 8, 30, 5, 0)));
        // From the start of Sep 7 (00:00, UTC-3), a day back is Sep 6's 01:00 start; 00:00 that day never was.
        let sep7 = ts(2026, 9, 7, 3, 0);
        assert_eq!(same_local_time_or_day_start(tz, sep7, -1), Some(sep6));
        assert_eq!(same_local_time(tz, sep7, -1), None);
        // Any other time keeps its local time.
        assert_eq!(same_local_time_or_day_start(tz, sep7 + 1800, -1), same_local_time(tz, sep7 + 1800, -1));
        assert_eq!(same_local_time_or_day_start(Tz::UTC, ts(2026, 3, 2, 0, 0), -1), Some(ts(2026, 3, 1, 0, 0)));
    }

    #[test]
    fn chathams_fifteen_minute_hour_is_an_hour_of_its_own() {
        // 2026-09-26, Pacific/Chatham springs from +12:45 to +13:45 at 02:45 local: local hours start at 13:15,
        // 14:00 (03:45, a 15-minute hour) and 14:15 UTC. The 14:00 hour was skipped, merged into the one before.
        let tz = chrono_tz::Pacific::Chatham;
        let h = hour_start(tz, ts(2026, 9, 26, 13, 30));
        assert_eq!(h, ts(2026, 9, 26, 13, 15));
        assert_eq!(grain_end(tz, Grain::Hour, h), ts(2026, 9, 26, 14, 0));
        assert_eq!(grain_end(tz, Grain::Hour, ts(2026, 9, 26, 14, 0)), ts(2026, 9, 26, 14, 15));
        assert_eq!(grain_end(tz, Grain::Hour, ts(2026, 9, 26, 14, 15)), ts(2026, 9, 26, 15, 15));
        // Every hour of a year's grain_end chain is the next hour_start, in zones with odd shifts too.
        for tz in [chrono_tz::Pacific::Chatham, chrono_tz::Australia::Lord_Howe, chrono_tz::America::New_York] {
            let mut h = hour_start(tz, ts(2026, 1, 1, 0, 0));
            while h < ts(2027, 1, 1, 0, 0) {
                let next = grain_end(tz, Grain::Hour, h);
                assert!(next > h && next - h <= 3600, "{tz}: {h} -> {next}");
                assert_eq!(hour_start(tz, next - 1), h, "{tz}: an hour start between {h} and {next}");
                assert_eq!(hour_start(tz, next), next, "{tz}: {next} starts an hour");
                h = next;
            }
        }
    }

    #[test]
    fn utc_shortcuts_agree_with_the_zone_lookup() {
        // `Etc/UTC` is the same zone without the shortcut.
        let etc: Tz = "Etc/UTC".parse().unwrap();
        let start = ts(2027, 12, 31, 22, 7);
        for i in 0..500 {
            let t = start + i * 7_919;
            assert_eq!(offset_secs(Tz::UTC, t), offset_secs(etc, t));
            assert_eq!(hour_start(Tz::UTC, t), hour_start(etc, t));
            for days in [-30, -1, 1, 29] {
                assert_eq!(same_local_time(Tz::UTC, t, days), same_local_time(etc, t, days), "{t} {days}");
            }
        }
    }

    #[test]
    fn utc_grains() {
        let tz = Tz::UTC;
        let t = ts(2026, 3, 14, 9, 26);
        assert_eq!(hour_start(tz, t), ts(2026, 3, 14, 9, 0));
        assert_eq!(day_start(tz, t), ts(2026, 3, 14, 0, 0));
        assert_eq!(week_start(tz, t, 0), ts(2026, 3, 9, 0, 0)); // Monday
        assert_eq!(week_start(tz, t, 6), ts(2026, 3, 8, 0, 0)); // Sunday
        assert_eq!(week_start(tz, ts(2026, 3, 8, 0, 0), 6), ts(2026, 3, 8, 0, 0)); // a Sunday starts its own
        assert_eq!(month_start(tz, t), ts(2026, 3, 1, 0, 0));
        assert_eq!(grain_end(tz, Grain::Month, ts(2026, 12, 1, 0, 0)), ts(2027, 1, 1, 0, 0));
    }

    #[test]
    fn new_york_days_and_dst() {
        let tz: Tz = chrono_tz::America::New_York;
        // 2026-03-08 is the spring-forward day: 23 hours long.
        let d = day_start(tz, ts(2026, 3, 8, 12, 0));
        assert_eq!(d, ts(2026, 3, 8, 5, 0));
        assert_eq!(grain_end(tz, Grain::Day, d), ts(2026, 3, 9, 4, 0));
        // 03:30 UTC on the 9th is still the 8th in New York.
        assert_eq!(day_start(tz, ts(2026, 3, 9, 3, 30)), d);
        assert_eq!(hour_of_day(tz, ts(2026, 3, 9, 3, 30)), 23);
    }

    #[test]
    fn half_hour_zone_hours() {
        let tz: Tz = chrono_tz::Asia::Kolkata;
        assert_eq!(hour_start(tz, ts(2026, 1, 1, 10, 45)), ts(2026, 1, 1, 10, 30));
        assert_eq!(hour_start(tz, ts(2026, 1, 1, 10, 15)), ts(2026, 1, 1, 9, 30));
        assert_eq!(day_start(tz, ts(2026, 1, 1, 20, 0)), ts(2026, 1, 1, 18, 30));
    }

    #[test]
    fn half_hour_dst_change_hours() {
        // Lord Howe: 02:00 (+11) goes back to 01:30 (+10:30) at 15:00 UTC on 2027-04-03, and 02:00 (+10:30)
        // goes forward to 02:30 (+11) at 15:30 UTC on 2027-10-02. The 30-minute hour at each change starts at
        // the change, and every hour start is its own hour's start.
        let tz: Tz = chrono_tz::Australia::Lord_Howe;
        assert_eq!(hour_start(tz, ts(2027, 4, 3, 14, 59)), ts(2027, 4, 3, 14, 0));
        assert_eq!(hour_start(tz, ts(2027, 4, 3, 15, 0)), ts(2027, 4, 3, 15, 0));
        assert_eq!(hour_start(tz, ts(2027, 4, 3, 15, 20)), ts(2027, 4, 3, 15, 0));
        assert_eq!(hour_start(tz, ts(2027, 4, 3, 15, 40)), ts(2027, 4, 3, 15, 30));
        assert_eq!(grain_end(tz, Grain::Hour, ts(2027, 4, 3, 15, 0)), ts(2027, 4, 3, 15, 30));
        assert_eq!(hour_start(tz, ts(2027, 10, 2, 15, 10)), ts(2027, 10, 2, 14, 30));
        assert_eq!(hour_start(tz, ts(2027, 10, 2, 15, 40)), ts(2027, 10, 2, 15, 30));
        assert_eq!(hour_of_day(tz, hour_start(tz, ts(2027, 10, 2, 15, 40))), 2);
        for t in (ts(2027, 4, 3, 10, 0)..ts(2027, 4, 3, 20, 0)).step_by(600) {
            assert_eq!(hour_start(tz, hour_start(tz, t)), hour_start(tz, t));
        }
        assert_eq!(hours_back(tz, ts(2027, 4, 4, 1, 10), 23), ts(2027, 4, 3, 2, 0));
        let ny: Tz = chrono_tz::America::New_York;
        assert_eq!(hours_back(ny, ts(2026, 3, 9, 12, 10), 23), ts(2026, 3, 8, 13, 0));
    }

    #[test]
    fn midnight_gap_zone() {
        // Santiago springs forward at local midnight: the day starts at 01:00.
        let tz: Tz = chrono_tz::America::Santiago;
        let date = NaiveDate::from_ymd_opt(2026, 9, 6).unwrap();
        let start = start_of_date(tz, date);
        assert_eq!(local(tz, start).hour(), 1);
    }
}
