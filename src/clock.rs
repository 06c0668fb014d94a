//! Time, injected: every timestamp and duration tokenmeter takes comes from a [`Clock`], so windows, budgets
//! and forecasts can be tested without sleeping.

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
}

/// A clock that only moves when told to: for tests and simulations. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    nanos: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock { nanos: Arc::new(AtomicI64::new(start.timestamp_nanos_opt().unwrap_or(0))) }
    }

    /// Moves the clock forward (or back, for a negative duration).
    pub fn advance(&self, by: Duration) {
        let delta = by.num_nanoseconds().unwrap_or(i64::MAX);
        let _ = self.nanos.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| Some(n.saturating_add(delta)));
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: DateTime<Utc>) {
        self.nanos.store(to.timestamp_nanos_opt().unwrap_or(0), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn unix_nanos(&self) -> i64 {
        self.nanos.load(Ordering::SeqCst)
    }
}

/// Microseconds from `start` to `end` (Unix nanoseconds), zero if the clock went backwards.
pub(crate) fn micros_between(start: i64, end: i64) -> u64 {
    (end.saturating_sub(start).max(0) / 1_000) as u64
}
