//! The aged store: buckets by tier, and the totals-only hourly and daily series.

use std::collections::BTreeMap;

use chrono_tz::Tz;

use super::agg::Agg;
use super::bucket::{Bucket, Entries, Tier};
use super::calendar;

/// Minute buckets cover the last 2 hours.
pub(crate) const MINUTE_SPAN: i64 = 2 * 3_600;
/// Hour buckets cover up to 48 hours back.
pub(crate) const HOUR_SPAN: i64 = 48 * 3_600;
/// Day buckets cover up to 35 days back.
pub(crate) const DAY_SPAN: i64 = 35 * 86_400;
/// Month buckets cover up to 400 days back; older data is in the archive bucket.
pub(crate) const MONTH_SPAN: i64 = 400 * 86_400;
/// The totals-only hourly series is kept 35 days.
pub(crate) const HOURLY_TOTALS_SPAN: i64 = 35 * 86_400;
/// The totals-only daily series is kept about 10 years.
pub(crate) const DAILY_TOTALS_SPAN: i64 = 3_660 * 86_400;

/// How far ahead of the clock a record may be stamped before it is counted in the current minute.
pub(crate) const FUTURE_TOLERANCE: i64 = 300;

/// Most buckets each tier can hold.
pub(crate) const fn max_buckets(tier: Tier) -> usize {
    match tier {
        // Records up to `FUTURE_TOLERANCE` ahead of the clock keep minute buckets of their own.
        Tier::Minute => (MINUTE_SPAN / 60) as usize + 2 + (FUTURE_TOLERANCE / 60) as usize,
        Tier::Hour => (HOUR_SPAN / 3_600) as usize + 2,
        Tier::Day => (DAY_SPAN / 86_400) as usize + 2,
        Tier::Month => (MONTH_SPAN / (28 * 86_400)) as usize + 2,
        Tier::Archive => 1,
    }
}

#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) tz: Tz,
    /// The first day of a week grain's weeks, in days after Monday.
    pub(crate) week_start: u8,
    /// Buckets keep their tier's caps (see [`LedgerConfig::with_unbounded_breakdowns`](super::LedgerConfig::with_unbounded_breakdowns)).
    pub(crate) bounded: bool,
    pub(crate) minutes: BTreeMap<i64, Bucket>,
    pub(crate) hours: BTreeMap<i64, Bucket>,
    pub(crate) days: BTreeMap<i64, Bucket>,
    pub(crate) months: BTreeMap<i64, Bucket>,
    pub(crate) archive: Option<Bucket>,
    /// Totals by local hour start.
    pub(crate) hourly: BTreeMap<i64, Agg>,
    /// Totals by local day start.
    pub(crate) daily: BTreeMap<i64, Agg>,
    /// Earliest and latest record timestamps seen (Unix seconds).
    pub(crate) first_ts: Option<i64>,
    pub(crate) last_ts: Option<i64>,
    /// The `now` of the last compaction.
    pub(crate) last_compaction: i64,
    /// Seconds of aged data kept ([`LedgerConfig::with_retention`](super::LedgerConfig::with_retention)).
    retention: Option<i64>,
    /// When the ledger was made (Unix seconds): records stamped from then on were seen as they came, so a
    /// first record after it on a day that began before it means that day was seen in part only.
    pub(crate) created: i64,
}

/// The whole days after a first day of records ingested from before the ledger was made whose first calls tell
/// whether it began late ([`Store::first_full_day`]).
const FIRST_DAY_SPARED: u32 = 3;

impl Store {
    pub(crate) fn new(tz: Tz, bounded: bool, created: i64) -> Self {
        Store {
            tz,
            week_start: 0,
            bounded,
            created,
            minutes: BTreeMap::new(),
            hours: BTreeMap::new(),
            days: BTreeMap::new(),
            months: BTreeMap::new(),
            archive: None,
            hourly: BTreeMap::new(),
            daily: BTreeMap::new(),
            first_ts: None,
            last_ts: None,
            last_compaction: i64::MIN,
            retention: None,
        }
    }

    pub(crate) fn with_retention(mut self, keep: Option<i64>) -> Self {
        self.retention = keep;
        self
    }

    pub(crate) fn with_week_start(mut self, day: chrono::Weekday) -> Self {
        self.week_start = day.num_days_from_monday() as u8;
        self
    }

    /// Drops every bucket, and every totals-series entry, that ends at or before `now - retention`: oldest first,
    /// so a compaction with nothing to forget looks at one entry per map.
    fn forget(&mut self, now: i64) {
        let Some(keep) = self.retention else { return };
        let cutoff = now.saturating_sub(keep);
        let tz = self.tz;
        /// Drops the entries that end at or before `cutoff`, oldest first; whether it dropped any.
        fn drop_ended<V>(map: &mut BTreeMap<i64, V>, end: impl Fn(i64) -> i64, cutoff: i64) -> bool {
            let mut dropped = false;
            while let Some((&start, _)) = map.first_key_value() {
                if end(start) > cutoff {
                    break;
                }
                map.pop_first();
                dropped = true;
            }
            dropped
        }
        let mut dropped = drop_ended(&mut self.minutes, |s| s + 60, cutoff);
        dropped |= drop_ended(&mut self.hours, |s| calendar::grain_end(tz, calendar::Grain::Hour, s), cutoff);
        dropped |= drop_ended(&mut self.days, |s| calendar::grain_end(tz, calendar::Grain::Day, s), cutoff);
        dropped |= drop_ended(&mut self.months, |s| calendar::grain_end(tz, calendar::Grain::Month, s), cutoff);
        // The archive holds what is older than the month tier.
        if self.archive.is_some() && self.tier_from(Tier::Month, now) <= cutoff {
            self.archive = None;
            dropped = true;
        }
        drop_ended(&mut self.hourly, |s| calendar::grain_end(tz, calendar::Grain::Hour, s), cutoff);
        drop_ended(&mut self.daily, |s| calendar::grain_end(tz, calendar::Grain::Day, s), cutoff);
        if dropped {
            // The records seen begin where what is kept begins (`Window::All` starts there).
            let oldest = self.buckets(i64::MIN, i64::MAX).next().map(|b| b.start);
            match oldest {
                Some(oldest) => self.first_ts = self.first_ts.map(|f| f.max(oldest)),
                None => (self.first_ts, self.last_ts) = (None, None),
            }
        }
    }

    /// The first local day the ledger saw whole: the first record's, unless the ledger was made during that day
    /// and saw no record from before (a meter started at 18:00 saw a quarter of its first day: as history, a
    /// forecast's trend or an anomaly's baseline, it would read as a drop). Records replayed or ingested from
    /// before the ledger was made (a journal, the CLI's sources) do not say when their history began: their first
    /// day is left out when its first call came an hour or more later in the day than the first call of each of
    /// the next [`FIRST_DAY_SPARED`] days with calls (steady spend from 18:00 on the CLI's records read as a
    /// rising trend, the month at 2.9x), and when those days are whole before `now`'s; a job that runs at noon
    /// every day, or a history of a few days, keeps its first day.
    pub(crate) fn first_full_day(&self, now: i64) -> Option<i64> {
        let first = self.first_ts?;
        let d = calendar::day_start(self.tz, first);
        let next = calendar::grain_end(self.tz, calendar::Grain::Day, d);
        let partial = if first >= self.created {
            self.created > d
        } else {
            self.starts_late(first, next, calendar::day_start(self.tz, now))
        };
        Some(if partial { next } else { d })
    }

    /// Whether a first day whose first record is stamped `first` began an hour or more later (by the local wall
    /// clock: across a DST change, 09:00 is 8 or 10 hours after midnight) than each of the [`FIRST_DAY_SPARED`]
    /// days from `next` on, all of them before `today` (by their hourly totals, which reach
    /// [`HOURLY_TOTALS_SPAN`] back: a first day older than that is kept).
    fn starts_late(&self, first: i64, next: i64, today: i64) -> bool {
        use chrono::Timelike;
        let clock_time = |t: i64| i64::from(calendar::local(self.tz, t).time().num_seconds_from_midnight());
        let mut day = next;
        let mut earliest: Option<i64> = None;
        for _ in 0..FIRST_DAY_SPARED {
            if day >= today {
                return false;
            }
            let end = calendar::grain_end(self.tz, calendar::Grain::Day, day);
            if let Some((&hour, _)) = self.hourly.range(day..end).find(|(_, a)| a.core.calls > 0) {
                let at = clock_time(hour);
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
            day = end;
        }
        earliest.is_some_and(|e| clock_time(first) >= e + 3_600)
    }

    /// The local midnight of the first record's day: where the ledger's data begins, for rates. Before it,
    /// spend is unknown, not zero; from it, the first day counts whole (a source whose first call was minutes
    /// ago does not extrapolate those minutes), as the CLI's `--period all` counts it. It does not move as the
    /// data ages into day or month buckets. `None` before any record.
    pub(crate) fn data_start(&self) -> Option<i64> {
        self.first_ts.map(|f| calendar::day_start(self.tz, f))
    }

    /// The minute from which the ledger has seen calls, as they came or replayed: the first record's, or the
    /// ledger's making when that was earlier (a meter that ran an hour before its first call saw that hour's
    /// zero spend). Before it, spend is unknown, not zero. `None` before any record.
    pub(crate) fn observed_from(&self) -> Option<i64> {
        self.first_ts.map(|f| f.min(self.created).div_euclid(60) * 60)
    }

    /// [`Store::first_full_day`] for local hours.
    pub(crate) fn first_full_hour(&self) -> Option<i64> {
        let first = self.first_ts?;
        let h = calendar::hour_start(self.tz, first);
        Some(if self.created > h && first >= self.created {
            calendar::grain_end(self.tz, calendar::Grain::Hour, h)
        } else {
            h
        })
    }

    /// The start of the bucket that holds data stamped `ts` at `now` (the archive's start for the archive).
    pub(crate) fn bucket_start(&self, ts: i64, now: i64) -> i64 {
        match self.slot(ts, now) {
            (Tier::Archive, start) => self.archive.as_ref().map_or(start, |a| a.start.min(start)),
            (_, start) => start,
        }
    }

    /// The first bucket edge at or after `ts` at `now`: `ts` when a bucket holding data stamped `ts` starts
    /// there, else the end of the bucket that holds it: its grain's end, or where the next finer tier begins
    /// when that is sooner (the newest day bucket holds the hours older than the hour buckets only), and for
    /// the archive, the first month bucket's start.
    pub(crate) fn bucket_edge_at_or_after(&self, ts: i64, now: i64) -> i64 {
        let tz = self.tz;
        let (grain, start, finer) = match self.slot(ts, now) {
            (Tier::Archive, _) => return self.tier_from(Tier::Month, now).max(ts),
            (_, start) if start == ts => return ts,
            (Tier::Minute, start) => return start + 60,
            (Tier::Hour, start) => (calendar::Grain::Hour, start, Tier::Minute),
            (Tier::Day, start) => (calendar::Grain::Day, start, Tier::Hour),
            (Tier::Month, start) => (calendar::Grain::Month, start, Tier::Day),
        };
        calendar::grain_end(tz, grain, start).min(self.tier_from(finer, now)).max(ts)
    }

    /// Where `tier`'s buckets begin at `now`: the first start of its grain at or after its span back (what
    /// [`Store::slot`] puts in it).
    fn tier_from(&self, tier: Tier, now: i64) -> i64 {
        let at_or_after = |grain, span| calendar::grain_start_at_or_after(self.tz, grain, now - span);
        match tier {
            // The first minute start at or after the span back.
            Tier::Minute => (now - MINUTE_SPAN + 59).div_euclid(60) * 60,
            Tier::Hour => at_or_after(calendar::Grain::Hour, HOUR_SPAN),
            Tier::Day => at_or_after(calendar::Grain::Day, DAY_SPAN),
            Tier::Month | Tier::Archive => at_or_after(calendar::Grain::Month, MONTH_SPAN),
        }
    }

    /// The tier and bucket start for data starting at `start`, given its age at `now`.
    fn slot(&self, start: i64, now: i64) -> (Tier, i64) {
        let tz = self.tz;
        // By the minute's start, as the buckets placed are: a time late in the minute that crossed into the
        // hour tier is in that hour's bucket, not in a minute bucket of its own.
        let minute = start.div_euclid(60) * 60;
        if minute >= now - MINUTE_SPAN {
            return (Tier::Minute, minute);
        }
        let h = calendar::hour_start(tz, start);
        if h >= now - HOUR_SPAN {
            return (Tier::Hour, h);
        }
        let d = calendar::day_start(tz, start);
        if d >= now - DAY_SPAN {
            return (Tier::Day, d);
        }
        let m = calendar::month_start(tz, start);
        if m >= now - MONTH_SPAN {
            return (Tier::Month, m);
        }
        // The archive starts at a local day's start, as every other tier's buckets start at their grain's:
        // the daily totals (keyed by day) of its first day lie in a window that starts with it.
        (Tier::Archive, calendar::day_start(tz, start))
    }

    /// Puts a bucket into the tier its age at `now` calls for, merging with what is there.
    fn place(&mut self, bucket: Bucket, now: i64) {
        let (tier, start) = self.slot(bucket.start, now);
        let map = match tier {
            Tier::Minute => &mut self.minutes,
            Tier::Hour => &mut self.hours,
            Tier::Day => &mut self.days,
            Tier::Month => &mut self.months,
            Tier::Archive => {
                match &mut self.archive {
                    Some(a) => {
                        a.start = a.start.min(start);
                        a.absorb(bucket);
                    }
                    None => {
                        let mut a = Bucket::new(start, Tier::Archive, self.bounded);
                        a.absorb(bucket);
                        self.archive = Some(a);
                    }
                }
                return;
            }
        };
        if bucket.tier == tier && bucket.start == start && !map.contains_key(&start) {
            map.insert(start, bucket);
            return;
        }
        let bounded = self.bounded;
        map.entry(start).or_insert_with(|| Bucket::new(start, tier, bounded)).absorb(bucket);
    }

    /// Takes a fresh minute bucket (from a recording shard): feeds the totals series, then places it. Data
    /// stamped more than [`FUTURE_TOLERANCE`] seconds ahead of `now` (a skewed clock) is counted in the current
    /// minute, so no stream of timestamps can grow the store.
    pub(crate) fn absorb(&mut self, mut bucket: Bucket, now: i64, first_ts: i64, last_ts: i64) {
        let tz = self.tz;
        let (first_ts, last_ts) = if bucket.start > now + FUTURE_TOLERANCE {
            bucket.start = now.div_euclid(60) * 60;
            (first_ts.min(now), now)
        } else {
            (first_ts, last_ts)
        };
        self.first_ts = Some(self.first_ts.map_or(first_ts, |f| f.min(first_ts)));
        self.last_ts = Some(self.last_ts.map_or(last_ts, |l| l.max(last_ts)));
        let h = calendar::hour_start(tz, bucket.start);
        if h >= self.hourly_from(now) {
            self.hourly.entry(h).or_default().merge(&bucket.totals);
        }
        let d = calendar::day_start(tz, bucket.start);
        if d >= now - DAILY_TOTALS_SPAN {
            self.daily.entry(d).or_default().merge(&bucket.totals);
        }
        self.place(bucket, now);
    }

    /// The first hour the totals-only hourly series keeps at `now`: 35 days back, or all time in an unbounded
    /// ledger (the CLI's, over records already in memory: a year of hours is ~8,800 entries).
    pub(crate) fn hourly_from(&self, now: i64) -> i64 {
        if self.bounded { now - HOURLY_TOTALS_SPAN } else { i64::MIN }
    }

    /// Moves buckets that have aged out of their tier into the next, and drops totals past retention.
    pub(crate) fn compact(&mut self, now: i64) {
        if now == self.last_compaction {
            return;
        }
        self.last_compaction = now;
        for tier in [Tier::Minute, Tier::Hour, Tier::Day, Tier::Month] {
            let (span, map) = match tier {
                Tier::Minute => (MINUTE_SPAN, &mut self.minutes),
                Tier::Hour => (HOUR_SPAN, &mut self.hours),
                Tier::Day => (DAY_SPAN, &mut self.days),
                _ => (MONTH_SPAN, &mut self.months),
            };
            let keep = map.split_off(&(now - span));
            let aged = std::mem::replace(map, keep);
            for (_, b) in aged {
                self.place(b, now);
            }
        }
        self.hourly = self.hourly.split_off(&self.hourly_from(now));
        self.daily = self.daily.split_off(&(now - DAILY_TOTALS_SPAN));
        self.forget(now);
    }

    /// Every bucket whose start lies in `[from, to)`, coarsest tier first.
    pub(crate) fn buckets(&self, from: i64, to: i64) -> impl Iterator<Item = &Bucket> {
        let range = from..to.max(from);
        self.archive
            .iter()
            .filter(move |a| a.start >= from && a.start < to)
            .chain(self.months.range(range.clone()).map(|(_, b)| b))
            .chain(self.days.range(range.clone()).map(|(_, b)| b))
            .chain(self.hours.range(range.clone()).map(|(_, b)| b))
            .chain(self.minutes.range(range).map(|(_, b)| b))
    }

    /// [`Bucket::forget`] on every bucket of every tier; the entries that named a value.
    pub(crate) fn forget_values(&mut self, forget: &crate::erase::Forget) -> u64 {
        let tiers = [&mut self.minutes, &mut self.hours, &mut self.days, &mut self.months];
        let buckets = tiers.into_iter().flat_map(|map| map.values_mut()).chain(self.archive.as_mut());
        buckets.map(|b| b.forget(forget)).sum()
    }

    /// Bucket counts by tier.
    pub(crate) fn bucket_counts(&self) -> [usize; 5] {
        [self.minutes.len(), self.hours.len(), self.days.len(), self.months.len(), usize::from(self.archive.is_some())]
    }

    /// Entry counts over every bucket.
    pub(crate) fn entries(&self) -> Entries {
        let mut e = Entries::default();
        for b in self.buckets(i64::MIN, i64::MAX) {
            e.add(&b.entries());
        }
        e
    }
}
