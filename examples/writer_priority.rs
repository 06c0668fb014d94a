//! How many records a second the journal writer keeps up with while the application keeps every core busy, at
//! each [`WriterPriority`]: the README's figures for both.
//!
//! For each priority and rate: one spinning thread per core (the application's other work, at the process's
//! priority), and this thread recording the bench's LLM call (`benches/support/pipeline.rs`, full pipeline
//! with the journal) at the rate asked, paced a millisecond at a time, for a few seconds. Then it flushes, the
//! cores still busy, and prints how many of the records reached the journal, how many the full queue dropped,
//! and how long that flush took.
//!
//! The writer's share, and so the rate `Background` keeps up with, falls with more busy threads per core and
//! with a slower disk; `written` includes what the final flush drains, so the sustained rate is a little lower
//! than a row's total shows.
//!
//! Usage: `cargo run --release --example writer_priority -- [SECONDS] [RATE ...]` (default 3 s at 1,000,
//! 10,000, 30,000 and 100,000 calls a second).

#[path = "../benches/support/pipeline.rs"]
mod pipeline;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pipeline::{Parts, llm_call, meter_with, session_span_of};
use tokenmeter::journal::WriterPriority;
use tracing_subscriber::prelude::*;

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: u64 = match args.next().map(|s| s.parse()) {
        None => 3,
        Some(Ok(s)) if s > 0 => s,
        Some(_) => {
            eprintln!("usage: writer_priority [SECONDS] [RATE ...]  (SECONDS and RATE: whole numbers above 0)");
            std::process::exit(2);
        }
    };
    let mut rates: Vec<u64> = Vec::new();
    for a in args {
        match a.parse() {
            Ok(r) if r > 0 => rates.push(r),
            _ => {
                eprintln!("writer_priority: RATE must be a whole number above 0, not {a:?}");
                std::process::exit(2);
            }
        }
    }
    if rates.is_empty() {
        rates = vec![1_000, 10_000, 30_000, 100_000];
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("{cores} spinning threads, {secs} s per row\n");
    println!("| writer priority | calls a second asked | recorded | written | dropped | final flush |");
    println!("|---|---|---|---|---|---|");
    for priority in [WriterPriority::Normal, WriterPriority::Background] {
        for &rate in &rates {
            let dir = std::env::temp_dir().join(format!("tokenmeter-writer-priority-{}", std::process::id()));
            let meter = meter_with(Parts { writer: priority, ..Parts::FULL }, &dir);
            let stop = Arc::new(AtomicBool::new(false));
            let spinners: Vec<_> = (0..cores)
                .map(|_| {
                    let stop = Arc::clone(&stop);
                    std::thread::spawn(move || {
                        let mut x = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                        }
                    })
                })
                .collect();
            let recorded =
                tracing::subscriber::with_default(tracing_subscriber::registry().with(meter.layer()), || {
                    let session = session_span_of("sess-priority");
                    let _s = session.enter();
                    paced(rate, Duration::from_secs(secs))
                });
            // The flush that writes what is queued, while the cores are still busy. Its `Dropped` error, when
            // the queue overflowed, is what the table's last columns count.
            let flush_started = Instant::now();
            let _ = meter.flush();
            let flush = flush_started.elapsed();
            stop.store(true, Ordering::Relaxed);
            for s in spinners {
                let _ = s.join();
            }
            let j = meter.journal_stats().unwrap_or_default();
            println!(
                "| {priority:?} | {rate} | {recorded} | {} ({:.1}%) | {} | {:.1} ms |",
                j.written,
                100.0 * j.written as f64 / recorded.max(1) as f64,
                j.dropped,
                flush.as_secs_f64() * 1e3
            );
            drop(meter);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Records calls at `rate` a second for `length`, a millisecond's worth at a time (catching up after a slow
/// spell); returns how many.
fn paced(rate: u64, length: Duration) -> u64 {
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < length {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while done < due {
            llm_call();
            done += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    done
}
