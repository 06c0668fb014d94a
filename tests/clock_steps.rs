//! Durations come from the monotonic clock: a step of the wall clock during a call (NTP correcting a VM's time,
//! `date -s`) moves neither a call's duration nor its start off the wall clock's time at its end.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};
use common::{Collected, t0};
use tokenmeter::{Clock, TokenMeter};
use tracing::field::Empty;
use tracing::info_span;
use tracing_subscriber::prelude::*;

/// A wall clock and a monotonic clock that move apart: `pass` moves both, `step` the wall clock alone.
#[derive(Debug, Clone)]
struct SteppedClock {
    wall: Arc<AtomicI64>,
    mono: Arc<AtomicI64>,
}

impl SteppedClock {
    fn new(start: DateTime<Utc>) -> Self {
        let wall = Arc::new(AtomicI64::new(start.timestamp_nanos_opt().unwrap()));
        SteppedClock { wall, mono: Arc::new(AtomicI64::new(1_000)) }
    }
    fn pass(&self, by: Duration) {
        let nanos = by.num_nanoseconds().unwrap();
        self.wall.fetch_add(nanos, Ordering::SeqCst);
        self.mono.fetch_add(nanos, Ordering::SeqCst);
    }
    fn step(&self, by: Duration) {
        self.wall.fetch_add(by.num_nanoseconds().unwrap(), Ordering::SeqCst);
    }
    fn wall(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.wall.load(Ordering::SeqCst))
    }
}

impl Clock for SteppedClock {
    fn unix_nanos(&self) -> i64 {
        self.wall.load(Ordering::SeqCst)
    }
    fn monotonic_nanos(&self) -> i64 {
        self.mono.load(Ordering::SeqCst)
    }
}

/// The records of what `f` does under a meter on `clock`.
fn record(clock: &SteppedClock, f: impl FnOnce()) -> Collected {
    let seen = Collected::default();
    let meter = TokenMeter::builder().with_clock(clock.clone()).with_sink(seen.clone()).build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(meter.layer()), f);
    seen
}

fn chat() -> tracing::Span {
    info_span!(
        "chat",
        gen_ai.request.model = "claude-haiku-4-5",
        gen_ai.response.id = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
    )
}

#[test]
fn a_wall_clock_step_during_a_call_does_not_change_its_duration() {
    for step in [Duration::hours(-1), Duration::minutes(10)] {
        let clock = SteppedClock::new(t0());
        let seen = record(&clock, || {
            let span = chat();
            clock.pass(Duration::milliseconds(1_500));
            clock.step(step);
            clock.pass(Duration::milliseconds(500));
            span.record("gen_ai.usage.input_tokens", 100u64);
            span.record("gen_ai.usage.output_tokens", 10u64);
        });
        let call = seen.only_call();
        // From the wall clock, a step back an hour read 0 s (clamped) and a step forward ten minutes 602 s.
        assert_eq!(call.duration_us, 2_000_000, "stepped {step}");
        assert_eq!(call.timestamp, clock.wall() - Duration::seconds(2), "stepped {step}");
    }
}

#[test]
fn each_call_of_a_long_lived_span_and_a_tool_span_time_on_the_monotonic_clock() {
    let clock = SteppedClock::new(t0());
    let (mut first_end, mut second_end) = (t0(), t0());
    let seen = record(&clock, || {
        let span = chat();
        span.record("gen_ai.response.id", "msg_1");
        span.record("gen_ai.usage.input_tokens", 100u64);
        clock.pass(Duration::seconds(1));
        clock.step(Duration::hours(-2));
        clock.pass(Duration::seconds(1));
        // The next call's id finishes the first call (2 s) and starts the second.
        first_end = clock.wall();
        span.record("gen_ai.response.id", "msg_2");
        span.record("gen_ai.usage.input_tokens", 200u64);
        clock.pass(Duration::seconds(3));
        clock.step(Duration::hours(1));
        second_end = clock.wall();
        drop(span);
        let tool = info_span!("execute_tool grep", gen_ai.operation.name = "execute_tool", gen_ai.tool.name = "grep");
        clock.pass(Duration::milliseconds(250));
        clock.step(Duration::seconds(-30));
        drop(tool);
    });
    let calls = seen.calls();
    let durations: Vec<u64> = calls.iter().map(|c| c.duration_us).collect();
    assert_eq!(durations, [2_000_000, 3_000_000]);
    assert_eq!(calls[0].timestamp, first_end - Duration::seconds(2));
    assert_eq!(calls[1].timestamp, second_end - Duration::seconds(3));
    let tools = seen.tools.lock().clone();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].duration_us, 250_000);
    assert_eq!(tools[0].timestamp, clock.wall() - Duration::milliseconds(250));
}

#[test]
fn a_task_times_on_the_monotonic_clock() {
    let clock = SteppedClock::new(t0());
    let seen = record(&clock, || {
        let _task = info_span!("review", task = "review").entered();
        clock.pass(Duration::seconds(4));
        clock.step(Duration::minutes(-5));
        clock.pass(Duration::seconds(1));
    });
    let tasks = seen.tasks.lock().clone();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].duration_us, 5_000_000);
    assert_eq!(tasks[0].timestamp, clock.wall() - Duration::seconds(5));
}

#[test]
fn the_system_clocks_monotonic_reading_moves_forward() {
    let clock = tokenmeter::SystemClock;
    let a = clock.monotonic_nanos();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let b = clock.monotonic_nanos();
    assert!(b - a >= 2_000_000, "{a} then {b}");
    // Its own reading, not the wall clock's (the trait's default): counted from the process's first reading, it
    // is years short of the nanoseconds since 1970.
    let year = 365 * 24 * 3_600 * 1_000_000_000i64;
    assert!(clock.unix_nanos() - b > 50 * year, "{b} against {}", clock.unix_nanos());
}
