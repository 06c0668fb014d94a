//! The integration tests, as one test binary: each `tests/<name>.rs` declared below is a module of it, its tests
//! named `<name>::<test>` (`cargo nextest run --test integration -E 'test(/^cli_budget::/)'`, or
//! `cargo test --test integration cli_budget::`).
//!
//! One binary instead of one per file, because each test binary links the whole dependency graph. As 74 binaries
//! (77 executables with the unit tests') they took 2.4 GB of `target/` and 56-62 s to build again after a change
//! to the library, and a CI run's linker was killed by SIGBUS linking them, as it is when the disk fills up. As
//! 17 binaries (20 executables): 0.81 GB and 36 s (both measured in one clean clone, `CARGO_INCREMENTAL=0` as
//! CI builds).
//!
//! Each file that sets process-wide state (a global default subscriber, environment variables, the working
//! directory, callsite interest) stays a binary of its own, declared in Cargo.toml: `cargo test` runs a binary's
//! tests as threads of one process. So do the end-to-end suites, which `scripts/e2e.sh` runs one binary after
//! another. A new test file is a module here or a `[[test]]` there: `every_test_file_is_built` fails until it is
//! exactly one of them.

// Helpers shared with the test binaries of their own (which declare them as their modules).
#[cfg(feature = "cli")]
mod cli_support;
mod common;
mod ledger_common;
#[cfg(feature = "otlp-tls")]
mod otlp_stand_in;
#[cfg(feature = "otlp")]
mod otlp_workload;

mod advisor;
mod analysis_reports;
mod bad_input;
mod blocks;
mod budget_each;
mod budget_enforcement;
mod budget_file;
mod budget_periods;
mod budget_thresholds;
mod cli_analysis;
mod cli_budget;
mod cli_csv;
mod cli_erase;
mod cli_mcp;
mod cli_report;
mod cli_show;
mod cli_sources;
mod cli_statusline;
mod cli_summary;
mod cli_terminal;
mod cli_watch;
mod clock_steps;
mod compaction;
mod concurrency;
mod dimensions;
mod field_conventions;
mod filtered_layer;
mod filtered_reports;
mod http_api;
mod inference_geo;
mod instrument_http;
mod instrument_span;
mod journal_erase;
mod journal_read_only;
mod journal_restart;
mod journal_sigkill;
mod ledger_bounded;
mod ledger_windows;
mod meter_erase;
mod money_serde;
mod normalization;
mod other_layers_unchanged;
mod otlp_collector_down;
mod otlp_headers;
mod otlp_in_memory;
mod otlp_tls;
mod price_file_warnings;
mod readme_reports;
mod readme_rust;
mod readme_samples;
mod record_compat;
mod record_later;
mod reports_meter;
mod rollup_spans;
mod session_tools;
mod shared_span;
mod streaming;
mod tasks;
mod tools;
mod transcripts_claude_code;
mod unread_usage;
mod web_search;
mod webhook_delivery;

/// Cargo builds only the test targets Cargo.toml names (`autotests = false`): a file in `tests/` that is neither
/// a module above nor a `[[test]]` of its own would never run, and nothing would say so.
#[test]
fn every_test_file_is_built() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");
    let root = include_str!("integration.rs");
    let manifest = include_str!("../Cargo.toml");
    let (mut unbuilt, mut twice) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let module = root.lines().any(|line| line == format!("mod {name};"));
        let binary = manifest.contains(&format!("path = \"tests/{name}.rs\""));
        if name == "integration" {
            continue;
        }
        match (module, binary) {
            (false, false) => unbuilt.push(name),
            (true, true) => twice.push(name),
            _ => {}
        }
    }
    assert!(unbuilt.is_empty(), "test files that are not built: {unbuilt:?}");
    assert!(twice.is_empty(), "test files built twice (a module here and a [[test]]): {twice:?}");
}
