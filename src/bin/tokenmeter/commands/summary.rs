//! `summary`: the usage summary, optionally with rows per time grain or per dimension value.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use tokenmeter::UsageSummary;
use tokenmeter::ledger::{GroupBy, GroupRow, Query, QueryResult, TimeGrain, Window};

use super::{heading, window};
use crate::cli::{RowsFormat, SummaryArgs};
use crate::render::{Style, count, int, num, pct, priced_usd, push_table, share_cost, usd};
use crate::source::{Context, Source, SourceInfo};
use crate::{CliResult, print_out};

/// `summary --format json`.
#[derive(Debug, Serialize)]
struct SummaryOutput<'a> {
    source: &'a SourceInfo,
    summary: UsageSummary,
    /// Rows per `--group-by` value (absent without `--group-by`).
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<QueryResult>,
}

pub(super) fn run(source: &Source, ctx: &Context, style: &Style, args: &SummaryArgs) -> CliResult {
    let scope = window(&args.window, ctx, source, Window::All)?;
    let ledger = scope.ledger(ctx);
    let window = scope.window(&ledger)?;
    let mut summary = ledger.usage_summary(window)?;
    let mut groups = args.group_by.map(|g| ledger.query(&Query::new(window).group_by(g))).transpose()?;
    scope.restore_summary(&mut summary);
    if let Some(g) = groups.as_mut() {
        scope.restore_rows(g);
    }
    if args.format == RowsFormat::Json {
        return print_out(&crate::render::json(&SummaryOutput { source: &source.info, summary, groups })?);
    }
    // Without --group-by, rows per a grain that suits the window's length.
    let rows = match groups {
        Some(g) => g,
        None => {
            let mut g = ledger.query(&Query::new(window).group_by(GroupBy::Time(default_grain(&summary))))?;
            scope.restore_rows(&mut g);
            g
        }
    };
    match args.format {
        RowsFormat::Csv => print_out(&csv(&rows, ctx.time_zone)),
        _ => print_out(&table(source, ctx, style, &summary, &rows)),
    }
}

/// The rows as CSV: a period's start, end and whether the window holds only part of it (the first period of a
/// `--since` in its middle, the period in progress), or the dimension value; then the row's figures. Every row,
/// those without calls too (as in the JSON). Exact dollars.
pub(crate) fn csv(rows: &QueryResult, tz: Tz) -> String {
    use crate::sheet::{Sheet, local, local_key, money, ratio, text};
    let grain = match rows.group_by {
        Some(GroupBy::Time(g)) => Some(g),
        _ => None,
    };
    let mut header: Vec<String> = match rows.group_by {
        Some(GroupBy::Dimension(d)) => vec![d.to_string()],
        _ => ["period_start", "period_end", "partial"].map(String::from).to_vec(),
    };
    header.extend(
        [
            "calls",
            "input",
            "output",
            "cache_read",
            "cache_write_5m",
            "cache_write_1h",
            "total_tokens",
            "cost_usd",
            "unpriced_calls",
            "failed_calls",
            "unmetered_calls",
            "reasoning",
            "cost_share",
        ]
        .map(String::from),
    );
    let mut out = Sheet::new(&header);
    let window = &rows.window;
    for g in &rows.groups {
        let mut row = match grain {
            Some(grain) => {
                let start = DateTime::parse_from_rfc3339(&g.key).ok().map(|t| t.to_utc());
                let end = start.map(|start| grain.end_of(start, tz));
                let partial = start.zip(end).map(|(start, end)| start < window.from || end > window.to);
                vec![
                    local_key(&g.key, tz),
                    end.map(|e| local(e, tz)).unwrap_or_default(),
                    partial.map(|p| p.to_string()).unwrap_or_default(),
                ]
            }
            None => vec![text(&g.key)],
        };
        let t = &g.tokens;
        row.extend([
            g.calls.to_string(),
            t.input.to_string(),
            t.output.to_string(),
            t.cache_read.to_string(),
            t.cache_write_5m.to_string(),
            t.cache_write_1h.to_string(),
            t.total.to_string(),
            money(g.cost_picos),
            g.unpriced_calls.to_string(),
            g.failed_calls.to_string(),
            g.unmetered_calls.to_string(),
            t.reasoning.to_string(),
            ratio(g.cost_share),
        ]);
        out.row(row);
    }
    out.finish()
}

/// Hours up to 2 days (49 hours: two local days with a 25-hour one), days up to 45, weeks up to 200, months beyond.
fn default_grain(s: &UsageSummary) -> TimeGrain {
    match s.days {
        d if d <= crate::commands::HOURLY_ROWS_UP_TO_DAYS => TimeGrain::Hour,
        d if d <= 45.0 => TimeGrain::Day,
        d if d <= 200.0 => TimeGrain::Week,
        _ => TimeGrain::Month,
    }
}

/// A group row's key for people: a local date or hour for time grains, the value itself otherwise.
pub(crate) fn row_label(key: &str, group: Option<GroupBy>, tz: Tz) -> String {
    let Some(GroupBy::Time(grain)) = group else { return key.to_owned() };
    let Ok(t) = DateTime::parse_from_rfc3339(key) else { return key.to_owned() };
    let utc = t.with_timezone(&Utc);
    let local = utc.with_timezone(&tz);
    match grain {
        // The hour a clock is set back comes twice: each with its UTC offset, so the two rows read apart.
        // `%M`, not `:00`: an hour's row starts at :30 or :45 in a zone of a half- or quarter-hour offset change
        // (Lord Howe, Chatham), and `:00` named the hour before.
        TimeGrain::Hour => crate::render::local_time(utc, tz, "%Y-%m-%d %H:%M"),
        TimeGrain::Day => local.format("%Y-%m-%d").to_string(),
        TimeGrain::Week => local.format("week of %Y-%m-%d").to_string(),
        TimeGrain::Month => local.format("%Y-%m").to_string(),
    }
}

fn table(source: &Source, ctx: &Context, style: &Style, s: &UsageSummary, rows: &QueryResult) -> String {
    let mut out = heading(source, "Usage summary", s.period_start, s.period_end, ctx.time_zone);
    out.push('\n');

    let mut t = style.table([
        "",
        "calls",
        "input",
        "output",
        "cache read",
        "cache write 5m",
        "cache write 1h",
        "total tokens",
        "cost",
    ]);
    let tk = &s.tokens;
    t.add_row(vec![
        comfy_table::Cell::new("total"),
        num(int(s.calls)),
        num(int(tk.input)),
        num(int(tk.output)),
        num(int(tk.cache_read)),
        num(int(tk.cache_write_5m)),
        num(int(tk.cache_write_1h)),
        num(int(tk.total)),
        // Calls on models without a price are counted above but not in the cost: say so, as the rows do.
        // Of the metered calls, as the figures below: calls without usage have no price to lack.
        num(share_cost(s.cost_usd, s.metered_calls, s.unpriced.calls)),
    ]);
    push_table(&mut out, "", &t, style);

    let a = &s.averages;
    let mut t = style.table(["figure", "value"]);
    let opt = |v: Option<f64>, f: fn(f64) -> String| v.map_or_else(|| "-".to_owned(), f);
    t.add_row(vec![
        "cache savings (reads vs. input rate)".into(),
        num(priced_usd(s.cache_savings_usd, s.unpriced.calls, Some(s.metered_calls))),
    ]);
    // Over the priced calls: said so when some had no price (the cost beside it reads `+ unpriced`).
    let per_call = if s.unpriced.calls > 0 { "cost per priced call" } else { "cost per call" };
    t.add_row(vec![per_call.into(), num(opt(a.cost_per_call_usd, usd))]);
    t.add_row(vec!["tokens per call".into(), num(opt(a.tokens_per_call, |v| int(v.round() as u64)))]);
    t.add_row(vec!["output tokens per call".into(), num(opt(a.output_tokens_per_call, |v| int(v.round() as u64)))]);
    t.add_row(vec!["failed calls".into(), num(int(s.failed_calls))]);
    t.add_row(vec!["unpriced calls".into(), num(int(s.unpriced.calls))]);
    t.add_row(vec![
        "monthly run-rate".into(),
        num(priced_usd(s.monthly_projection_usd, s.unpriced.calls, Some(s.metered_calls))),
    ]);
    push_table(&mut out, "", &t, style);

    if !s.by_model.is_empty() {
        let mut t = style.table(["model", "calls", "tokens", "cost", "share of cost"]);
        for m in &s.by_model {
            t.add_row(vec![
                m.name.clone().into(),
                num(int(m.calls)),
                num(int(m.tokens)),
                num(crate::render::model_cost(m)),
                num(pct(m.cost_share)),
            ]);
        }
        push_table(&mut out, "By model", &t, style);
    }

    // Empty grains are in the JSON; a table shows the rows with calls, and no table without any.
    if rows.groups.iter().any(|r| r.calls > 0) {
        let title = match rows.group_by {
            Some(GroupBy::Time(g)) => format!("By {g}"),
            Some(GroupBy::Dimension(d)) => format!("By {d}"),
            None => String::new(),
        };
        let mut t = style.table(["", "calls", "input", "output", "cache read", "cache write", "total tokens", "cost"]);
        for r in rows.groups.iter().filter(|r| r.calls > 0) {
            t.add_row(group_row(r, rows.group_by, ctx.time_zone));
        }
        push_table(&mut out, &title, &t, style);
    }

    if s.unpriced.calls > 0 {
        out.push_str(&format!(
            "Not in the cost: {} ({} tokens) on models without a price: {}\n",
            count(s.unpriced.calls, "call"),
            int(s.unpriced.tokens),
            s.unpriced.models.join(", ")
        ));
    }
    out
}

fn group_row(r: &GroupRow, g: Option<GroupBy>, tz: Tz) -> Vec<comfy_table::Cell> {
    vec![
        comfy_table::Cell::new(row_label(&r.key, g, tz)),
        num(int(r.calls)),
        num(int(r.tokens.input)),
        num(int(r.tokens.output)),
        num(int(r.tokens.cache_read)),
        num(int(r.tokens.cache_creation)),
        num(int(r.tokens.total)),
        num(share_cost(r.cost_usd, r.calls.saturating_sub(r.unmetered_calls), r.unpriced_calls)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hour_a_clock_is_set_back_reads_twice_with_its_offset() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let hour = Some(GroupBy::Time(TimeGrain::Hour));
        // 2025-11-02: 01:00-02:00 local comes first at -04:00 (05:00Z), then at -05:00 (06:00Z).
        assert_eq!(row_label("2025-11-02T05:00:00+00:00", hour, tz), "2025-11-02 01:00 (-04:00)");
        assert_eq!(row_label("2025-11-02T06:00:00+00:00", hour, tz), "2025-11-02 01:00 (-05:00)");
        assert_eq!(row_label("2025-11-02T07:00:00+00:00", hour, tz), "2025-11-02 02:00");
        assert_eq!(row_label("2025-11-02T05:00:00+00:00", Some(GroupBy::Time(TimeGrain::Day)), tz), "2025-11-02");
    }
}
