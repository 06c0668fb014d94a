//! The bench's LLM call in a loop, for counting instructions under callgrind: `scripts/callgrind.sh` runs it.
//!
//! Each call is the span of `benches/capture.rs`' `llm_call` row (seven fields declared, the response id and
//! four token counts recorded later, closed) inside a long-lived session span, through a registry with the
//! meter's layer and the parts asked for on. Pricing and the per-model totals are always on.
//!
//! Parts: `full` (ledger, OTLP instruments on an SDK meter provider that does not export during the run, two
//! budgets: the bench's full pipeline without the journal, whose writer thread callgrind would run on the same
//! core), `capture` (nothing else), `ledger`, `otlp`, `budgets` (that part alone), `bare` (no tokenmeter: the
//! registry alone), and `journal` (the full pipeline plus the journal, into `$TMPDIR`; for `perf`, not
//! callgrind: the writer thread's work is counted there only when it gets scheduled).
//!
//! A count per call is the difference of two runs' totals divided by the difference of their calls, so that
//! start-up and shutdown cancel out: `(Ir(40,000) - Ir(20,000)) / 20,000`.
//!
//! Usage: `cargo run --release --example profile -- CALLS [full|capture|ledger|otlp|budgets|bare|journal]`

use std::time::Duration;

use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use tokenmeter::TokenMeter;
use tokenmeter::budget::{Budget, BudgetLimit, BudgetPeriod, BudgetScope};
use tokenmeter::journal::JournalConfig;
use tokenmeter::ledger::LedgerConfig;
use tracing::field::Empty;
use tracing_subscriber::prelude::*;

fn llm_call() {
    let span = tracing::info_span!(
        "chat claude-sonnet-4-5",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = "anthropic",
        gen_ai.request.model = "claude-sonnet-4-5",
        gen_ai.response.id = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.cache_read.input_tokens = Empty,
        gen_ai.usage.cache_creation.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
    );
    let _e = span.enter();
    span.record("gen_ai.response.id", "msg_01XFDUDYJgAACzvnptvVoYEL");
    span.record("gen_ai.usage.input_tokens", 12_000u64);
    span.record("gen_ai.usage.cache_read.input_tokens", 10_000u64);
    span.record("gen_ai.usage.cache_creation.input_tokens", 1_000u64);
    span.record("gen_ai.usage.output_tokens", 500u64);
}

fn calls(n: u64) {
    let session = tracing::info_span!("session", gen_ai.conversation.id = "sess-7f3a9c", project = "bench");
    let _s = session.enter();
    for _ in 0..n {
        llm_call();
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = match args.next().map(|s| s.parse()) {
        Some(Ok(n)) => n,
        _ => {
            eprintln!("usage: profile CALLS [full|capture|ledger|otlp|budgets|bare|journal]");
            std::process::exit(2);
        }
    };
    let parts = args.next().unwrap_or_else(|| "full".into());
    let on = |part: &str| parts == part || ((parts == "full" || parts == "journal") && part != "journal");
    if !["full", "capture", "ledger", "otlp", "budgets", "bare", "journal"].contains(&parts.as_str()) {
        eprintln!("unknown parts {parts:?}: full, capture, ledger, otlp, budgets, bare or journal");
        std::process::exit(2);
    }
    if parts == "bare" {
        tracing::subscriber::with_default(tracing_subscriber::registry(), || calls(n));
        return;
    }

    let mut b = TokenMeter::builder();
    if !on("ledger") {
        b = b.with_ledger_config(LedgerConfig::disabled());
    }
    if on("otlp") {
        let reader =
            PeriodicReader::builder(InMemoryMetricExporter::default()).with_interval(Duration::from_secs(3600)).build();
        b = b.with_meter_provider(SdkMeterProvider::builder().with_reader(reader).build());
    }
    if on("budgets") {
        b = b
            .with_budget(
                Budget::new("monthly", BudgetLimit::usd(1e12).expect("limit")).with_period(BudgetPeriod::Month),
            )
            .with_budget(
                Budget::new("bench-project", BudgetLimit::tokens(u64::MAX / 4))
                    .with_scope(BudgetScope::project("bench"))
                    .with_period(BudgetPeriod::Day),
            );
    }
    let dir = std::env::temp_dir().join(format!("tokenmeter-profile-{}", std::process::id()));
    if on("journal") {
        b = b.with_journal(JournalConfig::new(&dir));
    }
    let meter = b.build();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(meter.layer()), || calls(n));
    let _ = meter.shutdown();
    let totals = meter.total_usage();
    eprintln!("{} calls recorded, {} priced", totals.calls, totals.calls - totals.unpriced_calls);
    if let Some(j) = meter.journal_stats() {
        eprintln!("journal: {} written, {} dropped", j.written, j.dropped);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
