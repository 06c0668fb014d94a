//! `blocks`: the calls in blocks of 5 hours (or `--hours`), Claude's usage windows, with the open block's rate
//! and where it leads by the block's close.

use std::fmt::Write as _;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use tokenmeter::analysis::{BlocksReport, UsageBlock, usage_blocks};

use crate::cli::{BlocksArgs, Bound, RowsFormat, TokenLimit};
use crate::render::{Style, count, int, num, pct, priced_usd, push_table};
use crate::source::{Context, Source, SourceInfo};
use crate::{CliResult, print_out};

/// Blocks opened this long before now are `--recent`.
const RECENT_DAYS: i64 = 3;

/// `blocks --format json`.
#[derive(Debug, Serialize)]
struct BlocksOut<'a> {
    source: &'a SourceInfo,
    /// The report, its blocks cut to `--since`, `--recent` or `--active`.
    blocks: BlocksReport,
    /// Blocks left out by `--since`, `--recent` or `--active` (never the open one).
    blocks_not_shown: usize,
    token_limit: Option<LimitOut>,
    /// The close of the last block, shown or not.
    #[serde(skip)]
    last_close: Option<DateTime<Utc>>,
}

/// `--token-limit`, resolved.
#[derive(Debug, Serialize)]
struct LimitOut {
    /// Tokens a block may use.
    tokens: u64,
    /// `given`, or `largest_closed_block` for `max`.
    basis: &'static str,
    /// The open block's tokens over the limit (0-1 and past), if a block is open.
    active_share: Option<f64>,
    /// Its projected tokens at its close over the limit.
    projected_share: Option<f64>,
}

pub(super) fn run(source: &Source, ctx: &Context, style: &Style, args: &BlocksArgs) -> CliResult {
    let mut report = usage_blocks(&source.records, ctx.now, args.hours)?;
    // The source left out the calls after now already: its count is the one to show.
    report.calls_after_now = source.info.after_now;
    let limit = args.token_limit.and_then(|l| match l {
        TokenLimit::Tokens(n) => Some((n, "given")),
        TokenLimit::Max => report.largest_closed_block_tokens().filter(|n| *n > 0).map(|n| (n, "largest_closed_block")),
    });
    if args.token_limit == Some(TokenLimit::Max) && limit.is_none() {
        ctx.note(
            "tokenmeter: note: --token-limit max: no closed block used any tokens yet, so there is no limit to show",
        );
    }
    let from: Option<DateTime<Utc>> = match (args.since, args.recent) {
        (Some(Bound::Date(d)), _) => Some(super::local_midnight(ctx.time_zone, d)),
        (Some(Bound::Time(t)), _) => Some(t),
        (None, true) => Some(ctx.now - Duration::days(RECENT_DAYS)),
        (None, false) => None,
    };
    let last_close = report.blocks.last().map(|b| b.end);
    // The open block is kept whatever the window (as ccusage's `--recent` keeps it): its rates are reported.
    let before = report.blocks.len();
    if args.active {
        report.blocks.retain(|b| b.active);
    } else if let Some(from) = from {
        report.retain_since(from);
    }
    let shown = report.blocks.len();
    let open = report.blocks.iter().find(|b| b.active).map(|b| b.total_tokens);
    let token_limit = limit.map(|(tokens, basis)| LimitOut {
        tokens,
        basis,
        active_share: open.map(|t| t as f64 / tokens as f64),
        projected_share: report.active.as_ref().map(|p| p.projected_tokens as f64 / tokens as f64),
    });
    let out =
        BlocksOut { source: &source.info, blocks: report, blocks_not_shown: before - shown, token_limit, last_close };
    match args.format {
        RowsFormat::Json => print_out(&crate::render::json(&out)?),
        RowsFormat::Csv => print_out(&csv(&out, ctx.time_zone)),
        RowsFormat::Table => print_out(&table(&out, ctx, style, args)),
    }
}

/// The blocks as CSV, one row each, oldest first. `of_limit` is the block's tokens over `--token-limit` (empty
/// without one); the open block's rate and projection are in the JSON.
fn csv(o: &BlocksOut<'_>, tz: chrono_tz::Tz) -> String {
    use crate::sheet::{Sheet, TOKEN_COLUMNS, local, money, ratio, text, token_cells};
    let header = [
        &["start", "end", "active", "first_call", "last_call", "calls"][..],
        &TOKEN_COLUMNS,
        &["total_tokens", "of_limit", "cost_usd", "unpriced_calls", "models"],
    ]
    .concat();
    let mut out = Sheet::new(&header);
    for b in &o.blocks.blocks {
        let mut row = vec![
            local(b.start, tz),
            local(b.end, tz),
            b.active.to_string(),
            local(b.first_call, tz),
            local(b.last_call, tz),
            b.calls.to_string(),
        ];
        row.extend(token_cells(&b.tokens));
        row.extend([
            b.total_tokens.to_string(),
            o.token_limit.as_ref().map(|l| ratio(b.total_tokens as f64 / l.tokens as f64)).unwrap_or_default(),
            money(b.cost_picos),
            b.unpriced_calls.to_string(),
            // One cell, the models listed as the table lists them.
            text(&b.models.join(", ")),
        ]);
        out.row(row);
    }
    out.finish()
}

fn table(o: &BlocksOut<'_>, ctx: &Context, style: &Style, args: &BlocksArgs) -> String {
    let tz = ctx.time_zone;
    let r = &o.blocks;
    let time = |t: DateTime<Utc>| crate::render::local_time(t, tz, "%Y-%m-%d %H:%M");
    let mut out = format!(
        "Blocks of {} (each opens at the whole hour of the first call after the last one closed), times in {tz}: {}",
        count(u64::from(r.block_hours), "hour"),
        count(r.blocks.len() as u64, "block"),
    );
    if o.blocks_not_shown > 0 {
        let _ = write!(out, " shown, {} not", o.blocks_not_shown);
    }
    out.push_str("\n\n");
    let limit = o.token_limit.as_ref();
    let mut header = vec!["start", "end", "calls", "tokens"];
    if limit.is_some() {
        header.push("of limit");
    }
    header.extend(["cost", "models"]);
    let mut t = style.table(header);
    for b in &r.blocks {
        let mut row = vec![
            comfy_table::Cell::new(time(b.start)),
            comfy_table::Cell::new(if b.active {
                format!("open, {} left", crate::render::time_left(b.end - r.generated_at))
            } else {
                crate::render::local_time(b.end, tz, "%H:%M")
            }),
            num(int(b.calls)),
            num(int(b.total_tokens)),
        ];
        if let Some(l) = limit {
            row.push(num(pct(b.total_tokens as f64 / l.tokens as f64)));
        }
        row.push(num(cost(b)));
        row.push(comfy_table::Cell::new(b.models.join(", ")));
        t.add_row(row);
    }
    if !r.blocks.is_empty() {
        push_table(&mut out, "", &t, style);
    }
    match (r.blocks.iter().find(|b| b.active), &r.active) {
        (Some(b), None) => {
            let _ = writeln!(
                out,
                "Open block: its rate is given from {} minutes after its first call, at {}.",
                tokenmeter::analysis::MIN_RATE_MINUTES,
                crate::render::local_time(b.first_call, tz, "%H:%M")
            );
        }
        (Some(b), Some(p)) => {
            let _ = write!(
                out,
                "Open block: {} tokens a minute, {} an hour since its first call at {} (the calls after it).\nAt that \
                 rate, by its close at {}: {} tokens, {}",
                int(p.tokens_per_minute.round() as u64),
                priced_usd(p.usd_per_hour, p.unpriced_calls, Some(b.calls.saturating_sub(1))),
                crate::render::local_time(b.first_call, tz, "%H:%M"),
                crate::render::local_time(b.end, tz, "%H:%M"),
                int(p.projected_tokens),
                priced_usd(p.projected_cost_usd, b.unpriced_calls, Some(b.calls)),
            );
            match limit.and_then(|l| Some((l, l.projected_share?))) {
                Some((l, share)) if share > 1.0 => {
                    let _ = write!(
                        out,
                        ", {}.",
                        style.alert(&format!("{} of the {}-token limit: past it", pct(share), int(l.tokens)))
                    );
                }
                Some((l, share)) => {
                    let _ = write!(out, ", {} of the {}-token limit.", pct(share), int(l.tokens));
                }
                None => out.push('.'),
            }
            out.push('\n');
        }
        _ if args.active => {
            let _ = writeln!(
                out,
                "No block is open now{}.",
                match o.last_close {
                    Some(end) => format!(" (the last closed at {})", time(end)),
                    None => String::new(),
                }
            );
        }
        _ if r.blocks.is_empty() && o.blocks_not_shown > 0 => {
            let _ = writeln!(out, "No block opened in the window asked for ({} earlier).", o.blocks_not_shown);
        }
        _ if r.blocks.is_empty() => out.push_str("No calls.\n"),
        _ => {}
    }
    out
}

/// A block's cost: `+ unpriced` when some of its calls had no price, `unpriced` when none had one.
fn cost(b: &UsageBlock) -> String {
    priced_usd(b.cost_usd, b.unpriced_calls, Some(b.calls))
}
