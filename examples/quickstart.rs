//! The quickstart: a realistic simulated Claude workload through the tokenmeter layer, then the read-out.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! The workload is simulated (no API key, no network to Anthropic) and time runs on a manual clock, a morning
//! of 2026-11-02 from 08:00, so the run takes well under a second and prints the same figures every time.
//! Nothing leaves the process unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._METRICS_ENDPOINT`) is set: then the
//! figures are exported over OTLP too, under that environment's `OTEL_SERVICE_NAME` (set one of its own, say
//! `tokenmeter-quickstart`, so its simulated spend is not filed under a real service).

use chrono::{Duration, TimeZone, Utc};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};
use parking_lot::Mutex;
use tokenmeter::budget::{Budget, BudgetAction, BudgetLimit, BudgetPeriod, BudgetScope};
use tokenmeter::{ManualClock, RequestScope, TokenMeter};
use tracing::field::Empty;
use tracing::{info, info_span};
use tracing_subscriber::prelude::*;

/// A small deterministic generator (SplitMix64) so every run prints the same figures.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The `all-monthly` budget's limit, which the forecast is also read against.
const MONTHLY_LIMIT_USD: f64 = 8.0;

fn main() {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).unwrap());
    // Three budgets: a monthly spend warning over everything, a daily hard stop for the code-review agent, and
    // each support user's own daily allowance (`user=*`: one account per user, no user configured in advance).
    let alerts = std::sync::Arc::new(Mutex::new(Vec::new()));
    let seen = alerts.clone();
    let builder = TokenMeter::builder()
        .with_clock(clock.clone())
        .with_budget(
            Budget::new("all-monthly", BudgetLimit::usd(MONTHLY_LIMIT_USD).expect("a valid limit"))
                .with_scope(BudgetScope::everything())
                .with_period(BudgetPeriod::Month),
        )
        .with_budget(
            Budget::new("reviewer-daily", BudgetLimit::usd(4.0).expect("a valid limit"))
                .with_scope(BudgetScope::agent("reviewer"))
                .with_period(BudgetPeriod::Day)
                .with_action(BudgetAction::Block),
        )
        .with_budget(
            Budget::new("per-user-daily", BudgetLimit::usd(0.75).expect("a valid limit"))
                .with_scope(BudgetScope::each_user())
                .with_period(BudgetPeriod::Day)
                .with_thresholds([80, 100]),
        )
        .with_budget_alert_callback(move |alert| seen.lock().push(alert.to_string()));
    // Exports over OTLP only when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._METRICS_ENDPOINT) is set (feature `otlp`,
    // on by default).
    // A setting it cannot use (an https:// endpoint without the `otlp-tls` feature, a bad port) is said, and the
    // morning is still simulated and reported, without export.
    #[cfg_attr(not(feature = "otlp"), allow(unused_mut))]
    let mut misconfigured = false;
    #[cfg(feature = "otlp")]
    let builder = match tokenmeter::export::otlp::OtlpConfig::from_env() {
        None => builder,
        Some(config) => match config.resolve() {
            Err(e) => {
                eprintln!("OTLP export is misconfigured, so the report below is not exported: {e}");
                misconfigured = true;
                builder
            }
            Ok(_) => builder.with_otlp(config).unwrap_or_else(|e| {
                eprintln!("OTLP export could not start: {e}");
                std::process::exit(2);
            }),
        },
    };
    let meter = builder.build();

    // The three lines an application adds to its subscriber (here beside a quiet fmt layer, logging the budget
    // alerts to stderr, coloured only on a terminal, so the report on stdout stays clean when piped).
    // No timestamps: the events happen on the simulated clock, and the wall clock's time would not match them.
    // Beside a layer with a per-layer filter, `filtered_layer()`: `layer()` would turn on every callsite that
    // filter turns off (README, "Add it to your subscriber").
    let log = tracing_subscriber::fmt::layer()
        .without_time()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(tracing_subscriber::filter::LevelFilter::WARN);
    let subscriber = tracing_subscriber::registry().with(log).with(meter.filtered_layer());
    eprintln!("(budget alerts of the simulated morning, as the application's log shows them:)");
    let refused = tracing::subscriber::with_default(subscriber, || simulate(&clock, &meter));

    print_report(&meter);
    print_analytics(&meter);
    print_budgets(&meter, &alerts.lock(), refused);

    // Once, before exit: with OTLP on, the last figures are exported (a collector that does not answer is waited
    // for up to twice the export timeout and 5 s more, ~25 s by default, then given up).
    #[cfg(feature = "otlp")]
    let exporting = meter.export_status().is_some();
    #[cfg(not(feature = "otlp"))]
    let exporting = false;
    if exporting {
        eprintln!(
            "\nexporting the last figures over OTLP (if the collector does not answer: up to twice the export timeout \
             and 5 s more)"
        );
    }
    if let Err(e) = meter.shutdown() {
        eprintln!("shutdown: {e}");
        if exporting {
            eprintln!(
                "(is a collector listening there? ./scripts/otlp-stack.sh start runs one on 127.0.0.1:4317 and :4318)"
            );
        }
    }
    #[cfg(feature = "otlp")]
    if let Some(status) = meter.export_status() {
        println!("\n{status}");
        return;
    }
    let endpoint_set = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| !v.trim().is_empty()));
    if misconfigured {
        println!("\n(OTLP export is off: its settings are misconfigured, as said above.)");
    } else if endpoint_set {
        println!(
            "\n(OTLP export is off: OTEL_SDK_DISABLED or OTEL_METRICS_EXPORTER=none turned it off, or the `otlp` \
             feature is not on.)"
        );
    } else {
        println!("\n(Set OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 to also export these figures over OTLP.)");
    }
}

/// The ledger's reports over the simulated morning: efficiency with its traffic-light band, the token breakdown per
/// agent, cache performance, the top suggestions priced from the price book, and the forecast.
fn print_analytics(meter: &TokenMeter) {
    use tokenmeter::analysis::ForecastBasis;
    use tokenmeter::ledger::{Dimension, Window};
    let window = Window::Last24Hours;
    let (eff, cache, forecast) = match (
        meter.efficiency_report(window, Dimension::Agent),
        meter.cache_report(window),
        // Against the monthly budget's limit: when this month's spend would reach it.
        meter.forecast(7, Some(MONTHLY_LIMIT_USD)),
    ) {
        (Ok(e), Ok(c), Ok(f)) => (e, c, f),
        (e, c, f) => {
            eprintln!("reports unavailable: {:?} {:?} {:?}", e.err(), c.err(), f.err());
            return;
        }
    };
    let color = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let paint = |band: tokenmeter::Band, text: String| {
        if color { format!("\x1b[{}m{text}\x1b[0m", band.ansi_code()) } else { text }
    };
    let s = &eff.efficiency_scores;
    println!(
        "\nEfficiency score {} (cache reuse {:.0}%, cache hit rate {:.0}%, {} tokens per task)",
        paint(s.band, format!("{:.1} {}", s.overall, s.band.name().to_uppercase())),
        s.context_reuse_rate * 100.0,
        s.cache_hit_rate * 100.0,
        s.tokens_per_task.map(|t| grouped(t.round() as u64)).unwrap_or_else(|| "n/a".into())
    );
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED).set_header(vec![
        "agent",
        "calls",
        "input",
        "cache read",
        "cache write",
        "output",
        "cost",
        "score",
    ]);
    for b in &eff.breakdowns {
        t.add_row(vec![
            Cell::new(&b.category),
            num(b.calls),
            num(b.input_tokens),
            num(b.cache_read_tokens),
            num(b.cache_creation_tokens),
            num(b.output_tokens),
            Cell::new(match b.unpriced_calls {
                // The exact figure, rounded as the model table above rounds it.
                0 => format!("{:.4}", b.cost_picos),
                n if n >= b.calls => "n/a".into(),
                _ => format!("{:.4} + n/a", b.cost_picos),
            })
            .set_alignment(CellAlignment::Right),
            Cell::new(paint(b.band, format!("{:.0}", b.efficiency_score))).set_alignment(CellAlignment::Right),
        ]);
    }
    println!("\nToken breakdown by agent\n{t}");
    let m = &cache.cache_metrics;
    println!(
        "\nCache: {} of {} calls read from it ({:.1}%), {:.1}% of prompt tokens; {} tokens served from cache, ${:.4} \
         saved on those reads against the input rate (before the premium the cache writes cost); {} cache writes \
         never read",
        m.total_cache_hits,
        m.total_cache_hits + m.total_cache_misses,
        m.call_hit_rate * 100.0,
        m.hit_rate * 100.0,
        grouped(m.tokens_saved),
        m.cost_saved,
        cache.unread_cache_writes.writes
    );
    println!("\nTop suggestions");
    for (i, x) in eff.optimization_suggestions.iter().take(3).enumerate() {
        let impact = format!("{:?}", x.impact).to_lowercase();
        println!("  {}. save ${:.4} [{impact}] {}", i + 1, x.potential_savings, x.description);
    }
    // Two month-end figures appear below: this one (the forecast's rate) and each budget's `projected` (its
    // spend so far at its pace since the period began). They differ when the traffic did not run all period.
    let basis = match forecast.basis {
        ForecastBasis::RunRate => "today's run rate: no full day of history yet".to_string(),
        ForecastBasis::Insufficient => "nothing yet: less than an hour of today and no full day".to_string(),
        ForecastBasis::Mean => format!("the mean of {} full days", forecast.history_days),
        _ => format!("trend over the last {} full days", forecast.history_days),
    };
    println!(
        "\nForecast (trend {}, {basis}): ${:.2}/day; this month ${:.2} so far, ${:.2} projected",
        format!("{:?}", forecast.trend).to_lowercase(),
        forecast.daily_average_usd,
        forecast.month_to_date_usd,
        forecast.projected_month_total_usd
    );
    for d in &forecast.days {
        println!("  {}  ${:.2}  (${:.2} to ${:.2})", d.date, d.cost_usd, d.lower_usd, d.upper_usd);
    }
    if let Some(day) = forecast.limit.as_ref().and_then(|l| l.reached_on) {
        println!("  at this rate the all-monthly budget's ${MONTHLY_LIMIT_USD:.2} would be reached on {day}");
    }
    println!(
        "  (the forecast runs this morning's rate on for every day left; the budgets' `projected` below spreads \
         the spend over the month so far, from Nov 1: hence two month-end figures)"
    );
}

fn print_budgets(meter: &TokenMeter, alerts: &[String], refused: u64) {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(vec![
        "budget",
        "scope",
        "action",
        "spent",
        "limit",
        "used",
        "projected",
        "resets",
        "over",
    ]);
    for s in meter.budget_status() {
        table.add_row(vec![
            Cell::new(&s.budget),
            Cell::new(s.scope.to_string()),
            Cell::new(format!("{:?}", s.action).to_lowercase()),
            Cell::new(format!("{:.2}", s.spent)).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.2}", s.limit)).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.0}%", s.utilization * 100.0)).set_alignment(CellAlignment::Right),
            Cell::new(s.projected.map(|p| format!("{p:.2}")).unwrap_or_else(|| "-".into()))
                .set_alignment(CellAlignment::Right),
            Cell::new(s.resets_at.format("%Y-%m-%d %H:%M UTC")),
            Cell::new(if s.over_budget { "OVER" } else { "" }),
        ]);
    }
    println!("\nBudgets (projected: the spend so far at its pace since the period began)");
    println!("{table}");
    println!("Alerts fired ({}):", alerts.len());
    for a in alerts {
        println!("  {a}");
    }
    println!("Code-review calls refused by the daily hard stop (`check_budget` before each call): {refused}");
    let review = RequestScope::new().with_agent("reviewer");
    match meter.check_budget(&review) {
        Ok(()) => println!("Next code-review request: allowed"),
        Err(refused) => println!("Next code-review request: refused: {refused}"),
    }
}

/// A morning of traffic: support conversations on Sonnet with prompt caching, code review tasks on Opus with tools,
/// a triage classifier on Haiku, a streamed answer, a failed call and a model the price book does not know.
/// Returns the code-review calls the reviewer's `Block` budget refused.
fn simulate(clock: &ManualClock, meter: &TokenMeter) -> u64 {
    let mut rng = Rng(42);
    let mut refused = 0;
    let tick = |ms: u64| clock.advance(Duration::milliseconds(ms as i64));

    // 1. Support bot: multi-turn sessions with a cache breakpoint on the newest message. Turn 1 writes the
    //    system prompt and the question; each later turn reads everything written before and writes what was
    //    added since: the previous answer and the new question.
    for s in 0..12 {
        let user = format!("user-{}", s % 5);
        let session = info_span!("conversation", session.id = %format!("sess-{s:03}"), user.id = %user,
            project = "helpdesk", gen_ai.agent.name = "support-bot");
        let _s = session.enter();
        let system_prompt = 6_000;
        // What the cache holds for this conversation, and the previous answer (not cached yet).
        let (mut cached, mut last_output) = (0u64, 0u64);
        for turn in 0..rng.range(3, 8) {
            let user_msg = rng.range(80, 600);
            let output = rng.range(150, 900);
            let call = info_span!(
                "chat claude-sonnet-4-5",
                gen_ai.operation.name = "chat",
                gen_ai.provider.name = "anthropic",
                gen_ai.request.model = "claude-sonnet-4-5",
                gen_ai.response.model = Empty,
                gen_ai.response.id = Empty,
                input_tokens = Empty,
                cache_read_input_tokens = Empty,
                cache_creation_input_tokens = Empty,
                output_tokens = Empty,
                server_tool_use.web_search_requests = Empty,
                operation = "answer"
            );
            tick(rng.range(2_000, 9_000));
            call.record("gen_ai.response.model", "claude-sonnet-4-5-20250929");
            call.record("gen_ai.response.id", format!("msg_{s}_{turn}").as_str());
            let written = if turn == 0 { system_prompt + user_msg } else { last_output + user_msg };
            call.record("cache_read_input_tokens", cached);
            call.record("cache_creation_input_tokens", written);
            cached += written;
            // Anthropic's `input_tokens` counts what follows the last breakpoint: a few framing tokens here.
            call.record("input_tokens", rng.range(3, 40));
            call.record("output_tokens", output);
            // Some answers look things up with Anthropic's web search tool: $0.01 a search, on top of tokens.
            if rng.range(0, 4) == 0 {
                call.record("server_tool_use.web_search_requests", rng.range(1, 4));
            }
            drop(call);
            last_output = output;
            tick(rng.range(20_000, 120_000));
        }
    }

    // 2. Code review: one task per pull request, on Opus, with tool calls between model calls. Each step sends
    //    the conversation so far plus the new diff; only the 12k-token instructions carry cache_control, so the
    //    history is re-sent uncached every step (what the top suggestion below finds).
    for pr in 0..6 {
        let task = info_span!("review", task = "code-review", project = "platform", gen_ai.agent.name = "reviewer",
            session.id = %format!("pr-{pr}"), error.type = Empty);
        let _t = task.enter();
        let mut history = 0u64;
        for step in 0..rng.range(2, 4) {
            // The application asks before each call: a `Block` budget that is spent refuses it (the layer
            // only records; enforcing is this call).
            if meter.check_budget(&RequestScope::new().with_agent("reviewer")).is_err() {
                refused += 1;
                // The review did not happen: its task failed.
                task.record("error.type", "budget_exceeded");
                continue;
            }
            {
                let _tool = info_span!(
                    "execute_tool read_diff",
                    gen_ai.operation.name = "execute_tool",
                    gen_ai.tool.name = "read_diff"
                )
                .entered();
                tick(rng.range(50, 400));
            }
            let call = info_span!(
                "chat claude-opus-4-6",
                gen_ai.operation.name = "chat",
                gen_ai.provider.name = "anthropic",
                gen_ai.request.model = "claude-opus-4-6",
                gen_ai.usage.input_tokens = Empty,
                gen_ai.usage.cache_read.input_tokens = Empty,
                gen_ai.usage.cache_creation.input_tokens = Empty,
                gen_ai.usage.output_tokens = Empty,
                operation = "review"
            );
            tick(rng.range(8_000, 30_000));
            let diff = rng.range(4_000, 30_000);
            let cached = if step == 0 { 0 } else { 12_000 };
            call.record("gen_ai.usage.cache_read.input_tokens", cached);
            call.record("gen_ai.usage.cache_creation.input_tokens", if step == 0 { 12_000u64 } else { 0 });
            let output = rng.range(800, 3_000);
            // Semconv input *includes* cache reads and writes.
            call.record("gen_ai.usage.input_tokens", 12_000 + history + diff);
            call.record("gen_ai.usage.output_tokens", output);
            history += diff + output;
        }
        if pr == 4 {
            task.record("error.type", "review_aborted");
        }
        tick(rng.range(600_000, 1_800_000));
    }

    // 3. Triage: a small classifier on every incoming ticket.
    for i in 0..40 {
        let _c = info_span!(
            "chat claude-haiku-4-5",
            gen_ai.provider.name = "anthropic",
            gen_ai.request.model = "claude-haiku-4-5",
            gen_ai.agent.name = "triage",
            project = "helpdesk",
            input_tokens = rng.range(300, 1_200),
            output_tokens = rng.range(5, 40),
            service_tier = if i % 2 == 0 { "batch" } else { "standard" }
        )
        .entered();
        tick(rng.range(300, 900));
    }

    // 4. A streamed answer: usage arrives in message_start and message_delta events, cumulative.
    {
        let call = info_span!(
            "chat claude-sonnet-4-5",
            gen_ai.provider.name = "anthropic",
            gen_ai.request.model = "claude-sonnet-4-5",
            gen_ai.request.stream = true,
            gen_ai.response.time_to_first_chunk = Empty,
            gen_ai.agent.name = "support-bot",
            session.id = "sess-stream",
            input_tokens = Empty,
            output_tokens = Empty
        );
        let _e = call.enter();
        info!(input_tokens = 2_400u64, output_tokens = 1u64, "message_start");
        tick(640);
        call.record("gen_ai.response.time_to_first_chunk", 0.64);
        for out in [120u64, 380, 655] {
            tick(900);
            info!(output_tokens = out, "message_delta");
        }
    }

    // 5. A failed call: the API answered 529 overloaded, no usage.
    {
        let call = info_span!("chat claude-opus-4-6", gen_ai.provider.name = "anthropic",
            gen_ai.request.model = "claude-opus-4-6", gen_ai.agent.name = "reviewer",
            input_tokens = Empty, output_tokens = Empty, error.type = Empty);
        tick(1_200);
        call.record("error.type", "overloaded_error");
    }

    // 6. A model the price book does not know: counted, flagged unpriced, never $0.
    {
        let _c = info_span!(
            "chat",
            gen_ai.provider.name = "openai",
            gen_ai.request.model = "gpt-4o",
            gen_ai.usage.input_tokens = 1_800u64,
            gen_ai.usage.output_tokens = 240u64,
            gen_ai.agent.name = "experiment"
        )
        .entered();
        tick(2_000);
    }
    refused
}

fn print_report(meter: &TokenMeter) {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(vec![
        "model",
        "calls",
        "input",
        "cache read",
        "cache write",
        "output",
        "cost",
        "saved on reads",
        "note",
    ]);
    for m in meter.model_usage() {
        let t = &m.totals;
        let note = match (m.priced, t.unmetered_calls, t.failed_calls) {
            (false, _, _) => format!("UNPRICED: {} call(s) not in the price book", t.unpriced_calls),
            (true, 0, 0) => String::new(),
            (true, u, f) => format!("{f} failed, {u} without usage"),
        };
        table.add_row(vec![
            Cell::new(&m.model),
            num(t.calls),
            num(t.tokens.input),
            num(t.tokens.cache_read),
            num(t.tokens.cache_write()),
            num(t.tokens.output),
            Cell::new(if m.priced { format!("{:.4}", t.cost) } else { "n/a".into() })
                .set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.4}", t.cache_savings)).set_alignment(CellAlignment::Right),
            Cell::new(note),
        ]);
    }
    let total = meter.total_usage();
    table.add_row(vec![
        Cell::new("TOTAL"),
        num(total.calls),
        num(total.tokens.input),
        num(total.tokens.cache_read),
        num(total.tokens.cache_write()),
        num(total.tokens.output),
        Cell::new(format!("{:.4}", total.cost)).set_alignment(CellAlignment::Right),
        Cell::new(format!("{:.4}", total.cache_savings)).set_alignment(CellAlignment::Right),
        Cell::new(format!("{} unpriced", total.unpriced_calls)),
    ]);
    println!("tokenmeter quickstart: a simulated morning of Claude traffic (2026-11-02 from 08:00)\n");
    println!("Cost by model");
    println!("{table}");
    if total.web_search_requests > 0 {
        println!(
            "Web searches: {} (${:.4} in search fees, included in the cost above)",
            total.web_search_requests,
            total.web_search_cost.as_usd()
        );
    }

    let mut tools = Table::new();
    tools.load_style(UTF8_FULL_CONDENSED).set_header(vec!["tool", "invocations", "errors", "total time"]);
    for t in meter.tool_usage() {
        tools.add_row(vec![
            Cell::new(&t.tool),
            num(t.invocations),
            num(t.errors),
            Cell::new(format!("{:.1} s", t.total_duration_us as f64 / 1e6)),
        ]);
    }
    println!("\nTools");
    println!("{tools}");

    let stats = meter.capture_stats();
    println!(
        "\nCapture: {} calls ({} without usage), {} tasks, {} tool executions, {} normalization corrections, {} rejected values",
        stats.calls,
        stats.unmetered_calls,
        stats.tasks,
        stats.tool_calls,
        stats.normalization_corrections,
        stats.rejected_values
    );
}

fn num(n: u64) -> Cell {
    Cell::new(grouped(n)).set_alignment(CellAlignment::Right)
}

/// `572392` as `572,392`, as the tables write counts.
fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
