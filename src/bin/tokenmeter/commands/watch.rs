//! `watch`: re-reads the source every interval, prints the window's usage summary, alerts past a threshold.

use std::io::IsTerminal;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokenmeter::UsageSummary;

use crate::cli::{Format, SourceArgs, WatchArgs};
use crate::render::{Style, count, int, num, pct, push_table, usd};
use crate::source::{Context, Source};
use crate::{CliResult, print_out_open};

/// One refresh, as a JSON line.
#[derive(Debug, Serialize)]
struct Refresh<'a> {
    time: DateTime<Utc>,
    threshold_usd: Option<f64>,
    over_threshold: bool,
    summary: &'a UsageSummary,
}

pub(super) fn run(source_args: &SourceArgs, ctx: &Context, style: &Style, args: &WatchArgs) -> CliResult {
    let clear = args.format == Format::Table && std::io::stdout().is_terminal();
    let mut was_over = false;
    let mut n: u64 = 0;
    let mut quiet_ctx: Option<Context> = None;
    loop {
        let now = if ctx.pinned_now { ctx.now } else { Utc::now() };
        // Notes about skipped lines are printed on the first read only.
        let this_ctx = match &quiet_ctx {
            Some(q) => q,
            None => ctx,
        };
        let source = match Source::load(source_args, this_ctx) {
            Ok(s) => s,
            Err(e) if n == 0 => return Err(e),
            Err(e) => {
                // A refresh that could not read counts toward --iterations, so that a bounded watch ends.
                n += 1;
                if args.iterations.is_some_and(|max| n >= max) {
                    return Err(e);
                }
                ctx.note(&format!("tokenmeter: warning: {e}"));
                std::thread::sleep(Duration::from_secs_f64(args.interval));
                continue;
            }
        };
        let run_ctx = ctx.with(now, ctx.quiet);
        let ledger = source.ledger(&run_ctx);
        let summary = ledger.usage_summary(args.period)?;
        let hit_rate = ledger.cache_report(args.period)?.cache_metrics.hit_rate;
        let over = args.threshold.is_some_and(|t| summary.cost_usd > t);
        if over && !was_over {
            let t = args.threshold.unwrap_or_default();
            eprintln!(
                "{}",
                style.alert(&format!(
                    "tokenmeter: ALERT: {} spent over {} passes the threshold of {}\x07",
                    usd(summary.cost_usd),
                    span(args.period, true),
                    usd(t)
                ))
            );
        }
        was_over = over;
        let open = match args.format {
            Format::Json => {
                let line = serde_json::to_string(&Refresh {
                    time: now,
                    threshold_usd: args.threshold,
                    over_threshold: over,
                    summary: &summary,
                })
                .map_err(|e| crate::CliError::data(e.to_string()))?;
                print_out_open(&format!("{line}\n"))?
            }
            Format::Table => {
                let mut out = String::new();
                if clear {
                    out.push_str("\x1b[2J\x1b[H");
                }
                out.push_str(&screen(&run_ctx, style, &summary, hit_rate, args, over, &source));
                print_out_open(&out)?
            }
        };
        n += 1;
        // Nobody reads any more (`watch | head`): stop, as a pipeline expects.
        if !open {
            return Ok(());
        }
        if args.iterations.is_some_and(|max| n >= max) {
            return Ok(());
        }
        if quiet_ctx.is_none() {
            quiet_ctx = Some(ctx.with(ctx.now, true));
        }
        std::thread::sleep(Duration::from_secs_f64(args.interval));
    }
}

/// The watched window in words: "(the) last 24h", or "everything recorded" for `all`.
fn span(period: tokenmeter::ledger::Window, article: bool) -> String {
    match period {
        tokenmeter::ledger::Window::All => "everything recorded".to_owned(),
        p if article => format!("the last {p}"),
        p => format!("last {p}"),
    }
}

fn screen(
    ctx: &Context,
    style: &Style,
    s: &UsageSummary,
    hit_rate: f64,
    args: &WatchArgs,
    over: bool,
    source: &Source,
) -> String {
    let tz = ctx.time_zone;
    let mut out = format!(
        "tokenmeter watch: {} at {} ({tz}), refreshing every {}s, {} read\n\n",
        span(args.period, false),
        ctx.now.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S"),
        args.interval,
        count(source.info.calls, "call")
    );
    let mut t = style.table(["calls", "tokens", "cache hit rate", "cost", "per hour", "threshold"]);
    let hours = (s.period_end - s.period_start).num_seconds() as f64 / 3600.0;
    t.add_row(vec![
        num(int(s.calls)),
        num(int(s.tokens.total)),
        // No metered call, no rate (not a measured 0%).
        num(if s.metered_calls > 0 { pct(hit_rate) } else { "-".to_owned() }),
        num(usd(s.cost_usd)),
        num(if hours > 0.0 { usd(s.cost_usd / hours) } else { "-".to_owned() }),
        num(match args.threshold {
            Some(th) if over => style.alert(&format!("OVER {}", usd(th))),
            Some(th) => format!("{} ({} left)", usd(th), usd(th - s.cost_usd)),
            None => "-".to_owned(),
        }),
    ]);
    push_table(&mut out, "", &t, style);
    if !s.by_model.is_empty() {
        let mut t = style.table(["model", "calls", "tokens", "cost"]);
        for m in s.by_model.iter().take(8) {
            t.add_row(vec![
                m.name.clone().into(),
                num(int(m.calls)),
                num(int(m.tokens)),
                num(crate::render::share_cost(m.cost_usd, m.calls, m.unpriced_calls)),
            ]);
        }
        push_table(&mut out, "", &t, style);
    }
    out
}
