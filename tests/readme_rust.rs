//! The README's Rust samples (and docs/http.md's), each verbatim inside what it needs around it, so that they
//! compile against the crate as it is: a sample that drifts from the API fails this file's build, and one
//! changed in the README without being changed here fails `every_rust_sample_in_the_docs_is_here`.
//! The functions are compiled, not run (they install global subscribers, bind ports, call the API).
#![cfg(all(feature = "otlp", feature = "http", feature = "webhook"))]
#![allow(dead_code, unused_variables, unused_mut, unused_imports, clippy::all)]

/// This file, to find the samples in.
const SOURCE: &str = include_str!("readme_rust.rs");

/// The ```rust blocks of a Markdown file.
fn rust_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        // A fence indented under a list item too (its lines carry the same indent, taken off here): those were
        // never compiled.
        let indent = line.len() - line.trim_start().len();
        if line.trim_start().starts_with("```rust") {
            let body: Vec<&str> = lines
                .by_ref()
                .map(|(_, l)| l)
                .take_while(|l| !l.trim_start().starts_with("```"))
                .map(|l| l.get(indent..).filter(|_| l[..indent].trim().is_empty()).unwrap_or(l.trim_start()))
                .collect();
            blocks.push((n + 1, body.join("\n")));
        }
    }
    blocks
}

#[test]
fn every_rust_sample_in_the_docs_is_here() {
    let mut missing = Vec::new();
    let mut count = 0;
    for doc in ["README.md", "docs/http.md"] {
        let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(doc)).unwrap();
        for (line, block) in rust_blocks(&text) {
            count += 1;
            if !SOURCE.contains(&block) {
                missing.push(format!("{doc}:{line}"));
            }
        }
    }
    assert!(count >= 20, "only {count} samples found");
    assert!(
        missing.is_empty(),
        "samples not in tests/readme_rust.rs (copy them in, inside what they need): {missing:?}"
    );
}

type R = Result<(), Box<dyn std::error::Error>>;

#[rustfmt::skip]
mod samples {
use super::R;

/// README "Setup": swapping meters through a `reload` layer.
fn swap_meters() {
use tracing_subscriber::prelude::*;

let old = tokenmeter::TokenMeter::builder().build();
let (layer, handle) = tracing_subscriber::reload::Layer::new(old.layer());
let _subscriber = tracing_subscriber::registry().with(layer);
let new = tokenmeter::TokenMeter::builder().build();
handle.reload(new.layer()).expect("the subscriber is alive");
old.shutdown().expect("journal, webhook and OTLP finished"); // outside the lock
drop(old);
}

/// README "The capture contract", emitters whose fields mean something else: a capture rule for rig.
fn capture_rule() {
use tokenmeter::capture::CaptureRule;

let meter = tokenmeter::TokenMeter::builder()
    .with_capture_rule(CaptureRule::new().target("rig").provider("anthropic").input_is_uncached())
    .build();
}

/// README "Budgets", alerts: a callback, and a webhook (feature `webhook`).
#[cfg(feature = "webhook")]
fn alert_sinks() {
    use tokenmeter::TokenMeter;
    use tokenmeter::budget::{Budget, BudgetLimit};
    let budget = || Budget::new("acme-monthly", BudgetLimit::usd(500.0).unwrap());
    {
let budget = budget();
let meter = TokenMeter::builder()
    .with_budget(budget)
    .with_budget_alert_callback(|alert| eprintln!("{alert}"))
    .build();
// budget `acme-monthly` (tenant=acme, month): 90% threshold crossed: spent $452.10 of $500.00 (90%),
// projected $528.96; resets at 2026-04-01T04:00:00Z
    }
    {
let budget = budget();
use std::time::Duration;
use tokenmeter::budget::WebhookConfig;

let meter = TokenMeter::builder()
    .with_budget(budget)
    .with_webhook(
        WebhookConfig::new("https://hooks.example.com/budget")
            .with_header("Authorization", "Bearer …")
            .with_max_retries(5)
            .with_backoff(Duration::from_secs(1), Duration::from_secs(60)),
    )
    .build();
    }
}

mod quick_start {
use tracing_subscriber::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let meter = tokenmeter::TokenMeter::builder().build();
    // Shuts the meter down when main ends, by a `?` or a panic too: with a journal, webhook or OTLP, their last
    // records are written and sent (a meter held by the global subscriber is never dropped).
    let _shutdown = meter.shutdown_guard();
    tracing_subscriber::registry().with(tracing_subscriber::fmt::layer()).with(meter.layer()).init();
    // ... the application, its LLM calls in spans ...
    // Later, anywhere: calls, tokens by kind, cost, unpriced calls, per model.
    for m in meter.model_usage() {
        println!("{}: {} calls, {}", m.model, m.totals.calls, m.totals.cost);
    }
    Ok(())
}
}

pub fn subscriber() -> R {
use tracing_subscriber::prelude::*;

let meter = tokenmeter::TokenMeter::builder().build();
tracing_subscriber::registry()
    .with(tracing_subscriber::fmt::layer())
    .with(meter.layer())
    .init();

// ... make calls ...
for m in meter.model_usage() {
    println!("{}: {} calls, {}", m.model, m.totals.calls, m.totals.cost);
}
Ok(())
}

pub fn conversation(session_id: &str, user_id: &str) -> R {
let _conversation = tracing::info_span!("conversation", session.id = %session_id, user.id = %user_id).entered();
Ok(())
}

use tokenmeter::instrument::{self, ErrorResponse, MessageResponse};

fn create_message(
    http: &reqwest::blocking::Client,
    api_key: &str,
    request: &serde_json::Value, // {"model": ..., "max_tokens": ..., "messages": [...]}
) -> Result<MessageResponse, Box<dyn std::error::Error>> {
    let model = request["model"].as_str().unwrap_or_default();
    let span = instrument::claude_span("chat", model, false);
    let _entered = span.enter();

    let response = http
        .post("https://api.anthropic.com/v1/messages")
        .header("x-api-key", api_key)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(request.to_string())
        .send()
        .inspect_err(|_| instrument::record_error(&span, "transport_error"))?;
    let status = response.status().as_u16();
    // Every early return marks the call failed; a bare `?` would close the span as a success.
    let body = response.bytes().inspect_err(|_| instrument::record_error(&span, "transport_error"))?;
    if !(200..300).contains(&status) {
        let error: ErrorResponse = serde_json::from_slice(&body).unwrap_or_default();
        let error_type = match error.error_type() {
            Some(t) => t.to_owned(),
            None => instrument::error_type_for_status(status).into_owned(),
        };
        instrument::record_error(&span, &error_type); // e.g. overloaded_error for a 529
        return Err(format!("API error {status}: {error_type}").into());
    }
    let message: MessageResponse = serde_json::from_slice(&body)
        .inspect_err(|_| instrument::record_error(&span, "invalid_response"))?;
    instrument::record_response(&span, &message); // id, model, usage
    Ok(message)
    // the span closes here: one CallRecord
}

pub fn streaming(model: &str, send_streaming_request: impl FnOnce() -> Result<reqwest::blocking::Response, reqwest::Error>) -> R {
use std::io::Read;
use tokenmeter::instrument::{self, StreamAccumulator};

// `model` and `send_streaming_request()` are yours: the model id, and the request of the example above with
// "stream": true in its body (a `reqwest::blocking::Response`)
let span = instrument::claude_span("chat", model, true);
let _entered = span.enter();
// Made before sending, so time to first token includes the round trip.
let mut stream = StreamAccumulator::new(&span);
// As above, with "stream": true in the body; but inside a streamed call, failures go through `stream.fail`:
// the accumulator, dropped on the early return, would otherwise overwrite `record_error`'s type with
// "stream_incomplete".
let mut response = send_streaming_request().inspect_err(|_| stream.fail("transport_error"))?;
if !response.status().is_success() {
    stream.fail(&instrument::error_type_for_status(response.status().as_u16()));
    return Err("API error".into());
}
let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
if !content_type.to_ascii_lowercase().starts_with("text/event-stream") {
    // One JSON body, not a stream (a gateway that ignored "stream": true, or an error body with a 2xx status);
    // an event stream whose content type a proxy changed is still read as one
    let body = response.bytes().inspect_err(|_| stream.fail("transport_error"))?;
    stream.whole_response(&body); // its usage, or its error type
} else {
    let mut buf = [0u8; 8192];
    loop {
        let n = match response.read(&mut buf) {
            Ok(0) => break, // end of body
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // blocking reqwest reports a read timeout as `Other`, around a `reqwest::Error`
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut
                || e.get_ref().and_then(|i| i.downcast_ref::<reqwest::Error>()).is_some_and(|r| r.is_timeout()) =>
            {
                stream.fail("timeout");
                break;
            }
            Err(_) => break, // the connection dropped
        };
        // the accumulator reads the usage; the events come back for you to show their text
        for event in stream.push_events(&buf[..n]) {
            // show the text of `content_block_delta` events to your user here
        }
        if stream.is_done() {
            break; // message_stop or an error: done, even if a proxy holds the connection open
        }
    }
}
let summary = stream.finish(); // records "stream_incomplete" if message_stop never came
println!("complete: {}, ttft: {:?}", summary.is_complete(), summary.time_to_first_token);
Ok(())
}

pub fn prices() -> R {
use tokenmeter::pricing::{ModelPrice, Rates};
// $2 in / $8 out per million tokens (rates in micro-USD per million), cache rates derived
let prices = tokenmeter::PriceBook::builtin()
    .with_price("my-finetune", ModelPrice::new(Rates::with_default_cache(2_000_000, 8_000_000)));
let meter = tokenmeter::TokenMeter::builder()
    .with_price_book(prices)
    .with_prices_file("prices.toml")?          // merged over the book; errors name the file, the line and the field
    .build();
Ok(())
}

pub fn usage(meter: tokenmeter::TokenMeter) -> R {
for m in meter.model_usage() {          // most expensive first
    // `input` is uncached input only; `prompt_total()` adds cache reads and writes (what a client reports as
    // its prompt tokens)
    println!("{} {} calls, {} uncached in / {} prompt / {} out, {} ({} unpriced)",
        m.model, m.totals.calls, m.totals.tokens.input, m.totals.tokens.prompt_total(), m.totals.tokens.output,
        m.totals.cost, m.totals.unpriced_calls);
}
let all = meter.total_usage();           // UsageTotals over every model
let tools = meter.tool_usage();          // per tool: invocations, errors, total time
let health = meter.capture_stats();      // calls, unmetered, corrections, rejected values, roll-ups, unread usage
Ok(())
}

pub mod reports {
use tokenmeter::ledger::{Dimension, GroupBy, Query, Window};

fn main() -> Result<(), Box<dyn std::error::Error>> {
let meter = tokenmeter::TokenMeter::builder()
    // local hours, days, weeks, months (default UTC); `Tz` is chrono-tz's, re-exported: no dependency to add
    .with_time_zone(tokenmeter::budget::Tz::Europe__Paris)
    .build();
// ... install meter.layer(), run the application ...

let summary = meter.usage_summary(Window::Last30Days)?;          // calls, tokens, cost, by model, series
let report = meter.efficiency_report(Window::Last7Days, Dimension::Agent)?;
println!("efficiency {} ({})", report.efficiency_scores.overall, report.efficiency_scores.band);
for s in report.optimization_suggestions.iter().take(3) {
    println!("{:?}: save ${:.2} ({:?}) {}", s.kind, s.potential_savings, s.impact, s.description);
}

// Ad hoc: the support bot's spend last week, per model.
let q = Query::new(Window::Last7Days)
    .filter(Dimension::Agent, "support-bot")
    .group_by(GroupBy::Dimension(Dimension::Model));
for row in meter.query(&q)?.groups {
    println!("{:<24} {:>8} calls  ${:.4}  {:.0}%", row.key, row.calls, row.cost_usd, row.cost_share * 100.0);
}
Ok(())
}
}

pub fn ledger_alone(records: Vec<tokenmeter::CallRecord>) -> R {
use std::sync::Arc;
use tokenmeter::ledger::{Ledger, LedgerConfig, Window};

let ledger = Ledger::new(LedgerConfig::default(), Arc::new(tokenmeter::SystemClock), tokenmeter::PriceBook::builtin());
for record in records {             // CallRecords from disk; unpriced ones are priced with the book
    ledger.ingest_call(&record);
}
let json = serde_json::to_string_pretty(&ledger.cache_report(Window::All)?)?;
Ok(())
}

pub fn budgets() -> R {
use tokenmeter::budget::{Budget, BudgetAction, BudgetLimit, BudgetPeriod, BudgetScope};
use tokenmeter::TokenMeter;

let meter = TokenMeter::builder()
    .with_budget(
        Budget::new("acme-monthly", BudgetLimit::usd(500.0)?)
            .with_scope(BudgetScope::tenant("acme"))
            .with_period(BudgetPeriod::Month)
            .with_time_zone("America/New_York".parse()?)
            .with_action(BudgetAction::Block),
    )
    .with_budget(
        Budget::new("alice-daily-tokens", BudgetLimit::tokens(2_000_000))
            .with_scope(BudgetScope::user("alice"))
            .with_period(BudgetPeriod::Day)
            .with_thresholds([80, 100]),
    )
    .build();
Ok(())
}

pub fn budget_each() -> R {
use tokenmeter::budget::{Budget, BudgetAction, BudgetLimit, BudgetPeriod, BudgetScope, RequestScope};
use tokenmeter::TokenMeter;

let meter = TokenMeter::builder()
    .with_budget(
        Budget::new("per-user-daily", BudgetLimit::usd(5.0)?)
            .with_scope(BudgetScope::each_user())
            .with_period(BudgetPeriod::Day)
            .with_action(BudgetAction::Block),
    )
    .build();
// Refused once alice has spent $5 today; bob's spend is his own.
meter.check_budget(&RequestScope::new().with_user("alice"))?;
Ok(())
}

pub fn budget_status(meter: tokenmeter::TokenMeter) -> R {
for s in meter.budget_status() {
    println!(
        "{:<20} {:>10} of {:>10} ({:>3.0}%)  projected {:>10}  resets {}{}",
        s.budget,
        s.spent.to_string(),
        s.limit.to_string(),
        s.utilization * 100.0,
        s.projected.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
        s.resets_at.format("%Y-%m-%d %H:%M UTC"),
        if s.over_budget { "  OVER" } else { "" },
    );
}
Ok(())
}

pub fn check_budget(meter: tokenmeter::TokenMeter) -> R {
use tokenmeter::budget::RequestScope;

let scope = RequestScope::new().with_tenant("acme").with_user("alice").with_model("claude-sonnet-4-5");
if let Err(refused) = meter.check_budget(&scope) {
    // budget `acme-monthly` (tenant=acme, month) is exhausted: spent $500.20 of $500.00;
    // it resets at 2026-04-01T04:00:00Z
    return Err(refused.into());
}
Ok(())
}

/// README "Enforcement": the scope of the spans a request will run in.
pub fn current_scope(meter: tokenmeter::TokenMeter) -> R {
use tokenmeter::budget::RequestScope;
let here = meter.current_dimensions().unwrap_or_default(); // None outside any span
let scope = RequestScope::from_dimensions(&here).with_model("claude-sonnet-4-5");
meter.check_budget(&scope)?;
Ok(())
}

/// What `guard`'s sample calls: any client whose call is a future.
pub struct Client;
pub struct Messages;
impl Client { pub fn messages(&self) -> Messages { Messages } }
impl Messages { pub async fn create(&self, request: ()) -> Result<String, std::io::Error> { Ok(String::new()) } }

pub fn guard(meter: tokenmeter::TokenMeter, scope: tokenmeter::budget::RequestScope, client: Client, request: ()) -> R {
async fn inner(meter: tokenmeter::TokenMeter, scope: tokenmeter::budget::RequestScope, client: Client, request: ()) -> R {
let response = meter.guard(&scope, client.messages().create(request)).await??;
Ok(())
}
let _ = inner;
Ok(())
}

/// README "Personal data": erasing a user from a running meter.
pub fn meter_erase(meter: tokenmeter::TokenMeter) -> R {
use tokenmeter::journal::Erasure;

let erased = meter.erase(&Erasure::new().user("alice"))?;
if let Some(journal) = &erased.journal {
    println!("{} journal lines erased, {} day files failed", journal.lines(), journal.failed.len());
}
println!("{} ledger entries, {} budget accounts forgotten", erased.ledger_entries, erased.budget_accounts);
Ok(())
}

pub fn journal() -> R {
use tokenmeter::TokenMeter;
use tokenmeter::journal::JournalConfig;

let meter = TokenMeter::builder()
    .with_budgets_file("budgets.toml")?
    .with_journal(JournalConfig::new("/var/lib/myapp/tokenmeter"))
    .try_build()?;
// … at shutdown: the journal's last records written and synced (and the webhook's and OTLP's last sends)
meter.shutdown()?;
Ok(())
}

pub fn otlp() -> R {
use std::time::Duration;
use tokenmeter::export::otlp::{MetricAttributes, OtlpConfig, Protocol};

let meter = tokenmeter::TokenMeter::builder()
    .with_otlp(
        OtlpConfig::new()
            .with_endpoint("http://127.0.0.1:4317")   // a local collector
            .with_protocol(Protocol::Grpc)
            .with_interval(Duration::from_secs(15))
            .with_service_name("support-bot"),         // becomes the Prometheus `job`
    )?
    .with_metric_attributes(MetricAttributes::new().with_agent().with_project())
    .build();
// ... add meter.layer() to the subscriber, run ...
meter.shutdown()?; // once before exit: journal flushed, webhook queue sent, what is left exported
Ok(())
}

pub fn metric_attributes() -> R {
use tokenmeter::export::otlp::MetricAttributes;

let attributes = MetricAttributes::new()
    .with_agent()                      // gen_ai.agent.name
    .with_project()                    // project
    .with_named_dimension("team")      // a dimension added with TokenMeterBuilder::with_dimension("team")
    .with_max_series(500)              // attribute sets per metric family (default 500, at most 999)
    .with_max_value_len(128);          // bytes per attribute value (default 128)
Ok(())
}

pub fn http_serve() -> R {
use tokenmeter::http::{HttpConfig, SessionTenants};
use tracing_subscriber::prelude::*;

let tenants = SessionTenants::default(); // remembers each session's tenant, for tenant-bound keys
let meter = tokenmeter::TokenMeter::builder().with_sink(tenants.clone()).build();
tracing_subscriber::registry().with(meter.layer()).init(); // the layer first: `serve` takes the meter
let config = HttpConfig::new()                  // 127.0.0.1:8787 unless told otherwise
    .with_api_key(std::env::var("TOKENMETER_API_KEY").unwrap())
    .with_tenant_key(std::env::var("ACME_API_KEY").unwrap(), "acme")
    .with_session_tenants(tenants);
// Either: let app: tokenmeter::http::axum::Router = tokenmeter::http::router(meter.clone(), config.clone());
let server = tokenmeter::http::serve(meter, config).unwrap(); // keep `server`: dropping it stops the server
println!("http://{}", server.local_addr());
// …
server.shutdown();
Ok(())
}

pub fn tenant_reports() -> R {
use tokenmeter::analysis::ReportFilter;
use tokenmeter::ledger::{Dimension, Window};

let meter = tokenmeter::TokenMeter::builder().build();
let acme = ReportFilter::tenant("acme");
let efficiency = meter.efficiency_report_for(Window::Last7Days, Dimension::Model, &acme).unwrap();
let cache = meter.cache_report_for(Window::Last7Days, &acme).unwrap();
println!("{} calls, {} cache hits, {:?}", efficiency.calls, cache.cache_metrics.total_cache_hits, cache.scope);
Ok(())
}
}

/// The README's ```toml block that opens with `first`, up to its closing fence.
fn readme_toml(first: &str) -> &'static str {
    let readme = include_str!("../README.md");
    let opening = format!("```toml\n{first}");
    let start =
        readme.find(&opening).unwrap_or_else(|| panic!("no README toml block opens with {first}")) + "```toml\n".len();
    &readme[start..][..readme[start..].find("```").expect("its end")]
}

#[test]
fn the_readme_price_file_sample_parses() {
    let text = readme_toml("web_search_per_1k");
    // The fee starts away from the sample's $10 per 1,000 (the default), so that reading it shows.
    let mut book = tokenmeter::PriceBook::builtin().with_web_search_fee(tokenmeter::Money::ZERO);
    book.merge_toml_str(text, "README.md").expect("README's price file sample parses");
    let finetune = book.resolve("my-finetune").expect("added");
    assert_eq!((finetune.price().standard.input, finetune.price().min_cacheable_tokens), (2_000_000, Some(2_048)));
    assert_eq!(book.web_search_fee(), tokenmeter::Money::from_picos(10_000_000_000));
}

#[test]
fn the_readme_budgets_file_sample_parses() {
    let text = readme_toml("[budgets.acme-monthly]");
    let budgets =
        tokenmeter::budget::parse_budgets_toml(text, "README.md").expect("README's budgets file sample parses");
    let names: Vec<&str> = budgets.iter().map(|b| b.name()).collect();
    assert_eq!(names, ["acme-monthly", "alice-daily-tokens", "team-weekly"]);
    assert_eq!(budgets[2].week_start(), chrono::Weekday::Sun);
}

#[test]
fn the_readme_budget_for_each_session_parses() {
    let text = readme_toml("[budgets.session-cap]");
    let budgets = tokenmeter::budget::parse_budgets_toml(text, "README.md").expect("README's sample parses");
    assert_eq!(budgets[0].scope(), &tokenmeter::budget::BudgetScope::each_session());
    assert_eq!(budgets[0].max_members(), 50_000);
}
