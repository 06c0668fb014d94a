//! Time, injected: every timestamp and duration tokenmeter records comes from a [`Clock`], so windows, budgets
//! and forecasts can be tested without sleeping. Not the pacing of its background work, which is real time: the
//! journal writer's sleeps, syncs and hourly retention rounds (whose ages run no further than the build's clock
//! plus the real time elapsed since), webhook retries and OTLP export intervals. A simulation that advances a
//! [`ManualClock`] by months sees the journal pruned by age only when a meter is built.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time as nanoseconds since the Unix epoch (what the hot path reads: no calendar math).
    fn unix_nanos(&self) -> i64;

    /// The current time, UTC.
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.unix_nanos())
    }

    /// A reading for measuring how long something took: nanoseconds from an arbitrary start, which a step of the
    /// wall clock (NTP correcting a VM's time, `date -s`) does not move. A call's duration is the difference of
    /// two readings, and its start timestamp is its end's [`unix_nanos`](Self::unix_nanos) less that duration.
    ///
    /// The default is [`unix_nanos`](Self::unix_nanos): a clock that only moves when told to ([`ManualClock`])
    /// has no steps to hide. [`SystemClock`] reads the monotonic clock ([`std::time::Instant`]; on Linux it does
    /// not count a suspend). A clock that wraps another (an offset, say) forwards this too, or its durations are
    /// the wall clock's again.
    fn monotonic_nanos(&self) -> i64 {
        self.unix_nanos()
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn unix_nanos(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }

    #[inline]
    fn monotonic_nanos(&self) -> i64 {
        // The process's first reading is the start (an `Instant` has no number of its own).
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let start = START.get_or_init(std::time::Instant::now);
        i64::try_from(start.elapsed().as_nanos()).unwrap_or(i64::MAX)
    }
}

/// A clock that only moves when told to: for tests and simulations. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    nanos: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock stopped at `start` (a time outside the nanosecond range, 1677-09-21 to 2262-04-11, is held at its
    /// nearer end).
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock { nanos: Arc::new(AtomicI64::new(saturating_nanos(start))) }
    }

    /// Moves the clock forward (or back, for a negative duration), stopping at the ends of the nanosecond range.
    pub fn advance(&self, by: Duration) {
        // Beyond ~292 years there is no nanosecond count: past either end from anywhere in the range.
        let end = if by < Duration::zero() { i64::MIN } else { i64::MAX };
        let delta = by.num_nanoseconds();
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(delta.map_or(end, |d| n.saturating_add(d))));
    }

    /// Sets the clock to `to` (held at the nearer end of the nanosecond range, as in [`new`](Self::new)).
    pub fn set(&self, to: DateTime<Utc>) {
        self.nanos.store(saturating_nanos(to), Ordering::SeqCst);
    }
}

/// Nanoseconds since the Unix epoch, held at `i64`'s ends (a time past 2262 read as 1970 before).
fn saturating_nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 { i64::MIN } else { i64::MAX })
}

impl Clock for ManualClock {
    fn unix_nanos(&self) -> i64 {
        self.nanos.load(Ordering::SeqCst)
    }
}

/// Microseconds from `start` to `end` (nanosecond readings of one clock), zero if the clock went backwards.
pub(crate) fn micros_between(start: i64, end: i64) -> u64 {
    (end.saturating_sub(start).max(0) / 1_000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_manual_clock_stops_at_the_ends_of_its_range() {
        let c = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 14, 0, 0, 0).unwrap());
        // Beyond 292 years has no nanosecond count: it used to read as a jump forward to 2262.
        c.advance(Duration::days(-200_000));
        assert_eq!(c.unix_nanos(), i64::MIN);
        c.advance(Duration::days(400_000));
        c.advance(Duration::days(400_000));
        assert_eq!(c.unix_nanos(), i64::MAX);
        // Past 2262 used to read as 1970.
        c.set(Utc.with_ymd_and_hms(2300, 1, 1, 0, 0, 0).unwrap());
        assert_eq!(c.unix_nanos(), i64::MAX);
        assert_eq!(ManualClock::new(Utc.with_ymd_and_hms(1600, 1, 1, 0, 0, 0).unwrap()).unix_nanos(), i64::MIN);
    }
}
