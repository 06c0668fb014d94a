//! End to end: the collector goes away mid-run and comes back. The application keeps recording at full speed,
//! memory stays bounded (series and data points per export do not grow), flushing reports the outage, and once
//! the collector is back the cumulative series continue where they were: no reset, nothing recorded during the
//! outage lost. Over gRPC and HTTP at once.
//!
//! Needs the stack: `scripts/e2e.sh` starts it and runs this (`cargo test --test e2e_collector_restart --
//! --ignored`). It stops and restarts the stack's rotel, so it runs in its own test binary.
#![cfg(feature = "otlp")]

mod e2e_support;
mod otlp_workload;

use std::time::{Duration, Instant};

use e2e_support::{Prometheus, grpc_endpoint, http_endpoint, rss_kib, stack, unique_job};
use tokenmeter::TokenMeter;
use tokenmeter::export::otlp::names::*;
use tokenmeter::export::otlp::{MetricAttributes, OtlpConfig, Protocol};

const LANDING: Duration = Duration::from_secs(60);

struct Exporting {
    job: String,
    meter: TokenMeter,
}

fn exporting(protocol: Protocol) -> Exporting {
    let job = unique_job(&format!("restart-{}", protocol.as_str().replace('/', "-")));
    let endpoint = if protocol == Protocol::Grpc { grpc_endpoint() } else { http_endpoint() };
    let meter = TokenMeter::builder()
        .with_otlp(
            OtlpConfig::new()
                .with_endpoint(endpoint)
                .with_protocol(protocol)
                .with_interval(Duration::from_millis(500))
                .with_timeout(Duration::from_secs(2))
                .with_service_name(&job)
                .ignore_env(),
        )
        .expect("valid OTLP config")
        .with_metric_attributes(MetricAttributes::new().with_agent())
        .build();
    Exporting { job, meter }
}

/// Restarts rotel when dropped, so a failing test leaves the stack whole for the next one.
struct RestartCollector;

impl Drop for RestartCollector {
    fn drop(&mut self) {
        stack(&["start", "rotel"]);
    }
}

fn calls_query(job: &str) -> String {
    format!("sum({PROM_CALLS}{{job=\"{job}\"}})")
}

#[test]
#[ignore = "needs the OTLP stack: run scripts/e2e.sh"]
fn collector_outage_is_survived_and_cumulative_series_continue() {
    let prom = Prometheus::connect();
    let runs = [exporting(Protocol::Grpc), exporting(Protocol::HttpProtobuf)];
    for r in &runs {
        for _ in 0..2 {
            otlp_workload::run(&r.meter);
        }
        r.meter.flush_metrics().expect("collector up");
    }
    for r in &runs {
        prom.wait_for(&calls_query(&r.job), r.meter.total_usage().calls as f64, 0.0, LANDING).unwrap();
    }
    let points_before: Vec<usize> = runs.iter().map(|r| r.meter.export_status().unwrap().last_data_points).collect();

    // The collector goes away.
    let restart = RestartCollector;
    stack(&["stop", "rotel"]);
    let rss_before = rss_kib();
    let start = Instant::now();
    let rounds = 300;
    for _ in 0..rounds {
        for r in &runs {
            otlp_workload::run(&r.meter);
        }
    }
    let recording = start.elapsed();
    eprintln!(
        "{} calls recorded per meter in {recording:?} with the collector down",
        rounds * otlp_workload::CALLS_PER_ROUND
    );
    // Recording never waits on export: a call blocked on it would take the export timeout (2 s) at least, the
    // rounds' calls hours. A debug build records them in a few seconds here; 60 s leaves a loaded machine room.
    assert!(recording < Duration::from_secs(60), "recording took {recording:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    for r in &runs {
        while r.meter.export_status().unwrap().failures < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let status = r.meter.export_status().unwrap();
        eprintln!("while down: {status}");
        assert!(status.failures >= 2, "exports fail while the collector is down: {status}");
        assert!(status.last_error.is_some());
        assert!(r.meter.flush_metrics().is_err(), "flushing reports the outage");
    }
    let rss_after = rss_kib();
    eprintln!("RSS {rss_before} KiB before the outage's workload, {rss_after} KiB after");
    for (r, before) in runs.iter().zip(&points_before) {
        let now = r.meter.export_status().unwrap().last_data_points;
        // Series are bounded: the same workload makes the same series, whatever the number of calls or failed
        // exports (a few gauges may appear as time passes).
        assert!(now <= before + 8, "data points per export grew from {before} to {now}");
    }
    assert!(rss_after.saturating_sub(rss_before) < 64 * 1024, "memory grew by {} KiB", rss_after - rss_before);

    // The collector comes back: export resumes, and the cumulative series carry everything.
    drop(restart);
    for r in &runs {
        let want = r.meter.total_usage();
        assert_eq!(want.calls, (2 + rounds) * otlp_workload::CALLS_PER_ROUND);
        prom.wait_for(&calls_query(&r.job), want.calls as f64, 0.0, LANDING).unwrap();
        let sel = format!("job=\"{}\"", r.job);
        // Each waited for: the pipeline may deliver one export's series in more than one write.
        prom.wait_for(&format!("sum({PROM_COST}{{{sel}}})"), want.cost.as_usd(), 1e-6, LANDING).unwrap();
        let input = format!("sum({PROM_TOKENS}{{{sel}, gen_ai_token_type=\"input\"}})");
        prom.wait_for(&input, want.tokens.input as f64, 0.0, LANDING).unwrap();
        let resets = prom.value(&format!("sum(resets({PROM_CALLS}{{{sel}}}[10m]))"));
        assert_eq!(resets, Some(0.0), "the counter continued, never reset");
        let failures = prom.value(&format!("sum({PROM_EXPORT_FAILURES}{{{sel}}})")).unwrap_or(0.0);
        assert!(failures >= 2.0, "the outage is visible in Prometheus: {failures}");
        r.meter.shutdown().expect("shutdown flushes");
        eprintln!("after: {}", r.meter.export_status().unwrap());
    }
}
