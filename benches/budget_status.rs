//! How long a call waits while `budget_status()` reads a budget of each user with 100,000 users.
//!
//! `TokenMeter::budget_status()` reads every account of a budget of each value (`user=*`): the HTTP API's
//! `/api/v1/budgets` and every collection of the OTLP budget gauges call it. A call of that budget takes the same
//! budget's lock to count its spend. This bench fills such a budget with `USERS` users (one call each), then in
//! rotated rounds records `CALLS` calls of those users on one thread, timing each call alone:
//! - `beside a busy thread`: the baseline, while a second thread runs work that shares nothing with the calls (a
//!   loop in registers): what the machine does to a call when two threads are busy (on this 2-vCPU machine, shared
//!   with other work, the scheduler's time slices);
//! - `beside status`: while the second thread calls `budget_status()` over and over instead;
//! - `alone` (for reference): no second thread.
//!
//! It prints the longest call and the 99.9th percentile of each (medians over rounds), the ratios against the busy
//! thread, and how long one `budget_status()` took. There is no target in issue 8 for this; README "Budgets" and
//! "Performance" quote it.
//!
//! What it taught (2026-12-07): every account read under one hold of the budget's lock made the longest call wait
//! 69.9 ms. Collecting the 100,000 values under one hold first (an `Arc` count on a cold cache line each) still held
//! it ~10 ms. Reading 256 accounts a hold brought each hold under 0.45 ms, yet calls still waited 3-48 ms: a plain
//! unlock let the reader take the lock again for its next chunk before the woken call ran. Handing it over at each
//! chunk's end (`MutexGuard::unlock_fair`) brought the longest call to 0.9-2.0 ms.
//!
//! Run: `cargo bench --bench budget_status` (about a minute after the build).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokenmeter::TokenMeter;
use tokenmeter::budget::{Budget, BudgetLimit, BudgetPeriod, BudgetScope};
use tracing_subscriber::prelude::*;

const USERS: usize = 100_000;
const CALLS: usize = 20_000;
const ROUNDS: usize = 7;

fn call(user: &str) {
    let _request = tracing::info_span!("request", user.id = user).entered();
    let _call = tracing::info_span!("chat", gen_ai.request.model = "claude-haiku-4-5", input_tokens = 100u64).entered();
}

/// The longest call and the 99.9th percentile of `CALLS` calls of users spread over all of them, each timed alone.
fn record_calls(users: &[String], round: usize) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..CALLS)
        .map(|i| {
            let user = &users[(i * 7919 + round * 104_729) % users.len()];
            let start = Instant::now();
            call(user);
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    (times[times.len() - 1], times[times.len() * 999 / 1000])
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let meter = TokenMeter::builder()
        .with_budget(
            Budget::new("per-user", BudgetLimit::usd(1e6).expect("limit"))
                .with_scope(BudgetScope::each_user())
                .with_period(BudgetPeriod::Day)
                .with_max_members(USERS + 1),
        )
        .build();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(meter.layer()));
    let users: Vec<String> = (0..USERS).map(|i| format!("user-{i:06}")).collect();
    tracing::dispatcher::with_default(&dispatch, || users.iter().for_each(|u| call(u)));
    let states = meter.budget_status().len();
    assert_eq!(states, USERS, "every user has an account");

    // Per side: the longest call and the 99.9th percentile of each round.
    let mut sides: [(Vec<Duration>, Vec<Duration>); 3] = Default::default();
    let mut status_times = Vec::new();
    for round in 0..ROUNDS {
        for k in 0..3 {
            let side = (round + k) % 3;
            let done = AtomicBool::new(false);
            let (max, p999, reads) = std::thread::scope(|s| {
                let other = (side > 0).then(|| {
                    s.spawn(|| {
                        let mut reads = Vec::new();
                        while !done.load(Ordering::Relaxed) {
                            let start = Instant::now();
                            if side == 1 {
                                std::hint::black_box(busy());
                            } else {
                                std::hint::black_box(meter.budget_status());
                                reads.push(start.elapsed());
                            }
                        }
                        reads
                    })
                });
                // The other thread under way before the calls start.
                std::thread::sleep(Duration::from_millis(5));
                let (max, p999) = tracing::dispatcher::with_default(&dispatch, || record_calls(&users, round));
                done.store(true, Ordering::Relaxed);
                (max, p999, other.map(|t| t.join().expect("other thread")).unwrap_or_default())
            });
            sides[side].0.push(max);
            sides[side].1.push(p999);
            status_times.extend(reads);
        }
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let [alone, busy_side, status_side] = sides.map(|(max, p999)| (median(max), median(p999)));
    let reads = status_times.len();
    let status = median(status_times);
    println!(
        "budget_status() over a budget of each user, {USERS} users: {:.1} ms a read (median of {reads}); a call alone: \
         longest {:.1} us, 99.9th percentile {:.1} us (medians of {ROUNDS} rounds of {CALLS} calls)",
        us(status) / 1e3,
        us(alone.0),
        us(alone.1)
    );
    println!("| bench | baseline | figure | ratio | target |");
    println!("|---|---|---|---|---|");
    for (what, base, fig) in
        [("longest", busy_side.0, status_side.0), ("99.9th percentile", busy_side.1, status_side.1)]
    {
        println!(
            "| {what} of {CALLS} calls of a budget of each user ({USERS}): beside a busy thread vs beside budget_status() \
             | {:.1} us | {:.1} us | {:.2}x | (reference) |",
            us(base),
            us(fig),
            us(fig) / us(base)
        );
    }
}

/// Work that shares nothing with the calls: a loop in registers, about a millisecond.
fn busy() -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..1_000_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}
