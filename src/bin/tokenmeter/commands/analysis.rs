//! `cache-report`, `optimize`, `forecast`, `compare`: one library report each.

use serde::Serialize;
use tokenmeter::analysis::{CacheReport, Comparison, EfficiencyReport, Forecast, ForecastBasis, Trend};
use tokenmeter::ledger::{Query, Window};

use super::{heading, window};
use crate::cli::{CacheReportArgs, CompareArgs, ForecastArgs, OptimizeArgs, RowsFormat};
use crate::render::{
    Style, band_cell, count, delta_pct, impact_cell, int, num, opt_f1, opt_usd, pct, priced_usd, push_table,
    share_cost, usd,
};
use crate::source::{Context, Source, SourceInfo};
use crate::{CliError, CliResult, print_out};

/// A report with the source it was made from: the JSON of every command below.
#[derive(Debug, Serialize)]
struct Output<'a, R: Serialize> {
    source: &'a SourceInfo,
    #[serde(flatten)]
    report: R,
}

#[derive(Debug, Serialize)]
struct CacheOut {
    cache: CacheReport,
}

#[derive(Debug, Serialize)]
struct OptimizeOut {
    efficiency: EfficiencyReport,
}

#[derive(Debug, Serialize)]
struct ForecastOut {
    forecast: Forecast,
}

#[derive(Debug, Serialize)]
struct CompareOut {
    comparison: Comparison,
}

/// Prints the report as `format` asks: its JSON, its tables, or its rows as CSV.
fn emit<R: Serialize>(
    source: &Source,
    format: RowsFormat,
    report: R,
    table: impl FnOnce(&R) -> String,
    csv: impl FnOnce(&R) -> String,
) -> CliResult {
    match format {
        RowsFormat::Json => print_out(&crate::render::json(&Output { source: &source.info, report })?),
        RowsFormat::Table => print_out(&table(&report)),
        RowsFormat::Csv => print_out(&csv(&report)),
    }
}

// === cache-report ===

pub(super) fn cache_report(source: &Source, ctx: &Context, style: &Style, args: &CacheReportArgs) -> CliResult {
    let scope = window(&args.window, ctx, source, Window::All)?;
    let ledger = scope.ledger(ctx);
    let w = scope.window(&ledger)?;
    let mut cache = ledger.cache_report(w)?;
    // The report counts metered calls only: calls that closed without usage (errors, cut-off streams) are told
    // apart from no calls at all, as `optimize` tells them.
    let calls = ledger.query(&Query::new(w))?.totals.calls;
    scope.restore_cache(&mut cache);
    emit(
        source,
        args.format,
        CacheOut { cache },
        |r| cache_table(source, ctx, style, &r.cache, calls),
        |r| cache_csv(&r.cache, ctx.time_zone),
    )
}

/// The cache report's time series as CSV, a row per period (every one, those without prompt tokens too: their
/// `hit_rate` is empty, nothing was measured). The headline figures are in the JSON.
fn cache_csv(r: &CacheReport, tz: chrono_tz::Tz) -> String {
    use crate::sheet::{Sheet, local, ratio, usd};
    let mut out = Sheet::new(&["period_start", "hit_rate", "prompt_tokens", "tokens_saved", "cost_saved_usd"]);
    for p in &r.time_series {
        out.row([
            local(p.timestamp, tz),
            if p.prompt_tokens > 0 { ratio(p.hit_rate) } else { String::new() },
            p.prompt_tokens.to_string(),
            p.tokens_saved.to_string(),
            usd(p.cost_saved),
        ]);
    }
    out.finish()
}

/// The cache report's tables; `calls` are the window's calls, those without usage included.
pub(crate) fn cache_table(source: &Source, ctx: &Context, style: &Style, r: &CacheReport, calls: u64) -> String {
    let mut out = heading(source, "Prompt cache", r.window.from, r.window.to, ctx.time_zone);
    out.push('\n');
    let m = &r.cache_metrics;
    if m.total_cache_hits + m.total_cache_misses == 0 {
        // Rates of nothing (a 0% hit rate beside a 100% reuse rate) would be read as measured.
        if calls == 0 {
            out.push_str("No calls in this window: no cache to measure.\n");
        } else {
            out.push_str(&format!(
                "{} in this window, none with usage (failed or cut off before it came): no cache to measure.\n",
                count(calls, "call")
            ));
        }
        return out;
    }
    let mut t = style.table(["figure", "value"]);
    let rows: [(&str, String); 10] = [
        ("token hit rate (cache reads / prompt tokens)", pct(m.hit_rate)),
        (
            "calls reading the cache",
            format!("{} of {}", int(m.total_cache_hits), int(m.total_cache_hits + m.total_cache_misses)),
        ),
        ("call hit rate", pct(m.call_hit_rate)),
        ("tokens read from the cache", int(m.tokens_saved)),
        (
            "saved against the input rate",
            priced_usd(m.cost_saved, m.unpriced_calls, Some(m.total_cache_hits + m.total_cache_misses)),
        ),
        ("tokens written to the cache", int(m.cache_creation_tokens)),
        ("reusable prompt tokens (repeating the previous turn)", int(m.reusable_tokens)),
        ("of which read from the cache", int(m.reused_tokens)),
        ("context reuse rate", if m.reusable_tokens > 0 { pct(m.context_reuse_rate) } else { "-".to_owned() }),
        (
            "cache writes never read",
            format!(
                "{}, {} tokens, {} wasted",
                count(r.unread_cache_writes.writes, "write"),
                int(r.unread_cache_writes.tokens),
                usd(r.unread_cache_writes.wasted_usd)
            ),
        ),
    ];
    for (k, v) in rows {
        t.add_row(vec![k.into(), num(v)]);
    }
    push_table(&mut out, "", &t, style);
    // Periods with prompt tokens: a day that read nothing from the cache is a measured 0%, one without calls
    // has no rate.
    let points: Vec<_> = r.time_series.iter().filter(|p| p.prompt_tokens > 0).collect();
    if !points.is_empty() {
        let mut t = style.table([r.grain.name(), "hit rate", "tokens read", "saved"]);
        let grain = tokenmeter::ledger::GroupBy::Time(r.grain);
        for p in points {
            t.add_row(vec![
                super::summary::row_label(&p.timestamp.to_rfc3339(), Some(grain), ctx.time_zone).into(),
                num(pct(p.hit_rate)),
                num(int(p.tokens_saved)),
                num(usd(p.cost_saved)),
            ]);
        }
        push_table(&mut out, &format!("By {}", r.grain.name()), &t, style);
    }
    out
}

// === optimize ===

pub(super) fn optimize(source: &Source, ctx: &Context, style: &Style, args: &OptimizeArgs) -> CliResult {
    let scope = window(&args.window, ctx, source, Window::All)?;
    let ledger = scope.ledger(ctx);
    let w = scope.window(&ledger)?;
    let mut efficiency = ledger.efficiency_report(w, args.group_by)?;
    // Calls that closed without usage (errors, cut-off streams) have nothing to score.
    let totals = ledger.query(&Query::new(w))?.totals;
    let metered = totals.calls.saturating_sub(totals.unmetered_calls);
    scope.restore(&mut efficiency.window);
    emit(
        source,
        args.format,
        OptimizeOut { efficiency },
        |r| optimize_table(source, ctx, style, &r.efficiency, metered),
        |r| optimize_csv(&r.efficiency),
    )
}

/// The suggestions as CSV, a row each, largest saving first: what each would save over the window (exact
/// dollars), its share of the spend, the calls and tokens it is about, and what to do. The score and the
/// breakdowns are in the JSON.
fn optimize_csv(r: &EfficiencyReport) -> String {
    use crate::sheet::{Sheet, money, ratio, text};
    let mut out =
        Sheet::new(&["type", "impact", "potential_savings_usd", "share_of_spend", "calls", "tokens", "description"]);
    let name = |v: serde_json::Result<serde_json::Value>| {
        v.ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    };
    for s in &r.optimization_suggestions {
        out.row([
            name(serde_json::to_value(s.kind)),
            name(serde_json::to_value(s.impact)),
            money(s.potential_savings_picos),
            ratio(s.share_of_spend),
            s.calls.to_string(),
            s.tokens.to_string(),
            text(&s.description),
        ]);
    }
    out.finish()
}

pub(crate) fn optimize_table(
    source: &Source,
    ctx: &Context,
    style: &Style,
    r: &EfficiencyReport,
    metered: u64,
) -> String {
    let mut out = heading(source, "Token efficiency", r.window.from, r.window.to, ctx.time_zone);
    if r.calls == 0 {
        out.push_str("\nNo calls in this window: nothing to score.\n");
        return out;
    }
    if metered == 0 {
        out.push_str(&format!(
            "\n{} in this window, none with usage (failed or cut off before it came): nothing to score.\n",
            count(r.calls, "call")
        ));
        return out;
    }
    let s = &r.efficiency_scores;
    out.push_str(&format!(
        "\nEfficiency score: {} ({})   cache hit rate {}   context reuse {}   {}, {}\n\n",
        style.band(&format!("{:.1}", s.overall), s.band),
        style.band(s.band.name(), s.band),
        pct(s.cache_hit_rate),
        // 1 when nothing was reusable: not a measured rate (as `cache-report` and `report` show it).
        if s.reusable_tokens > 0 { pct(s.context_reuse_rate) } else { "-".to_owned() },
        count(r.calls, "call"),
        share_cost(r.cost_usd, r.calls, r.unpriced_calls),
    ));
    let mut t = style.table(["component", "value", "weight", "points"]);
    for c in &s.components {
        // Full points when nothing was reusable, but no measured value (as the headline's `-`).
        let unmeasured = c.name == "cache_reuse" && s.reusable_tokens == 0;
        t.add_row(vec![
            c.name.clone().into(),
            num(if unmeasured { "-".to_owned() } else { format!("{:.2}", c.value) }),
            num(format!("{:.0}", c.weight)),
            num(format!("{:.1}", c.points)),
        ]);
    }
    push_table(&mut out, "Score", &t, style);

    if !r.optimization_suggestions.is_empty() {
        let mut t = style.table(["suggestion", "impact", "saves", "calls", "what to do"]);
        for sug in &r.optimization_suggestions {
            let kind =
                serde_json::to_value(sug.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            t.add_row(vec![
                kind.into(),
                impact_cell(sug.impact),
                num(usd(sug.potential_savings)),
                num(int(sug.calls)),
                sug.description.clone().into(),
            ]);
        }
        push_table(&mut out, "Suggestions (savings over the window)", &t, style);
    } else {
        out.push_str("No suggestions: nothing to save in this window.\n\n");
    }

    if !r.breakdowns.is_empty() {
        let mut t =
            style.table([r.group_by.name(), "calls", "input", "output", "cache read", "cache write", "cost", "score"]);
        for b in &r.breakdowns {
            t.add_row(vec![
                b.category.clone().into(),
                num(int(b.calls)),
                num(int(b.input_tokens)),
                num(int(b.output_tokens)),
                num(int(b.cache_read_tokens)),
                num(int(b.cache_creation_tokens)),
                num(share_cost(b.cost_usd, b.calls, b.unpriced_calls)),
                // A row without metered calls has nothing to score (its 100 is a placeholder).
                if b.metered_calls > 0 { band_cell(format!("{:.1}", b.efficiency_score), b.band) } else { num("-") },
            ]);
        }
        let more = if r.breakdowns_omitted > 0 {
            format!(" ({} more not shown)", r.breakdowns_omitted)
        } else {
            String::new()
        };
        push_table(&mut out, &format!("By {}{more}", r.group_by.name()), &t, style);
    }
    out
}

// === forecast ===

pub(super) fn forecast(source: &Source, ctx: &Context, style: &Style, args: &ForecastArgs) -> CliResult {
    let forecast = source.ledger(ctx).forecast(args.days, args.budget)?;
    emit(
        source,
        args.format,
        ForecastOut { forecast },
        |r| forecast_table(ctx, style, &r.forecast),
        |r| forecast_csv(&r.forecast),
    )
}

/// The forecast's days as CSV, a row each: the expected cost and its band (90% from a trend, a stated ±82%
/// otherwise: the JSON's `basis`), the expected tokens. The month's projection and the trend are in the JSON.
fn forecast_csv(f: &Forecast) -> String {
    use crate::sheet::{Sheet, usd};
    // Projections, not sums of prices: to a hundredth of a cent (as the report's projected month; the floats'
    // further decimals are noise).
    let cents = |v: f64| usd((v * 1e4).round() / 1e4);
    let mut out = Sheet::new(&["date", "cost_usd", "lower_usd", "upper_usd", "tokens"]);
    for d in &f.days {
        out.row([d.date.to_string(), cents(d.cost_usd), cents(d.lower_usd), cents(d.upper_usd), d.tokens.to_string()]);
    }
    out.finish()
}

pub(crate) fn forecast_table(ctx: &Context, style: &Style, f: &Forecast) -> String {
    let trend = match f.trend {
        Trend::Rising => "rising",
        Trend::Falling => "falling",
        Trend::Flat => "flat",
    };
    let mut out = format!(
        "Forecast from {} ({}), trend {trend} ({}/day per day), from {}\n\n",
        crate::render::local_time(f.generated_at, ctx.time_zone, "%Y-%m-%d %H:%M"),
        f.time_zone,
        usd(f.slope_usd_per_day),
        crate::render::forecast_basis(f)
    );
    // Every dollar figure is of priced calls: `+ unpriced` when calls on models without a price are left out.
    let priced = |v: f64| priced_usd(v, f.unpriced_calls, None);
    let insufficient = f.basis == ForecastBasis::Insufficient;
    // Nothing to forecast from: no average or projection ($0.00 would read as a forecast).
    let unknown = |v: f64| if insufficient { num("-") } else { num(priced(v)) };
    let mut t = style.table(["figure", "value"]);
    t.add_row(vec!["daily average".into(), unknown(f.daily_average_usd)]);
    t.add_row(vec!["month to date".into(), num(priced(f.month_to_date_usd))]);
    t.add_row(vec!["projected month total".into(), unknown(f.projected_month_total_usd)]);
    if let Some(effects) = crate::render::weekday_effects(f) {
        t.add_row(vec![comfy_table::Cell::new("day of the week, against the trend"), comfy_table::Cell::new(effects)]);
    }
    if let Some(l) = &f.limit {
        t.add_row(vec!["monthly budget".into(), num(usd(l.limit_usd))]);
        // Coloured through the table (escape codes in the text would count as columns).
        let when = match (l.reached, l.reached_on, l.days_until) {
            (true, _, _) if style.color => {
                num("already reached").fg(comfy_table::Color::Red).add_attribute(comfy_table::Attribute::Bold)
            }
            (true, _, _) => num("already reached"),
            (false, Some(d), Some(n)) => num(format!("on {d} ({})", crate::render::days_from_today(n))),
            _ if insufficient => num("not so far; nothing to project yet"),
            _ => num("not this month"),
        };
        t.add_row(vec!["budget reached".into(), when]);
    }
    push_table(&mut out, "", &t, style);
    let mut t = style.table(["day", "cost", crate::render::forecast_band_header(f), "tokens"]);
    for d in &f.days {
        t.add_row(vec![
            d.date.to_string().into(),
            num(priced(d.cost_usd)),
            num(format!("{} – {}", usd(d.lower_usd), usd(d.upper_usd))),
            num(int(d.tokens)),
        ]);
    }
    if !f.days.is_empty() {
        push_table(&mut out, "Next days", &t, style);
    }
    if f.unpriced_calls > 0 {
        out.push_str(&format!(
            "Not in the cost: {} of the history or this month on models without a price: the figures count \
             priced calls only.\n",
            count(f.unpriced_calls, "call")
        ));
    }
    out
}

// === compare ===

pub(super) fn compare(source: &Source, ctx: &Context, style: &Style, args: &CompareArgs) -> CliResult {
    let ledger = source.ledger(ctx);
    let w = args.period.unwrap_or(Window::Last30Days);
    // `all` is everything the source holds, from the first record's day, as every other report has it (the
    // ledger's own `All` starts at its oldest bucket: a month's start once the records are 35 days old, which
    // stretched the current window and moved the previous one).
    let scope = window(&crate::cli::WindowArgs { period: Some(w), since: None, until: None }, ctx, source, w)?;
    let comparison = match (&args.a, &args.b) {
        (Some(a), Some(b)) => {
            if a.dimension != b.dimension {
                return Err(CliError::usage(format!(
                    "--a and --b must name the same dimension (got {} and {})",
                    a.dimension, b.dimension
                )));
            }
            if a.dimension == tokenmeter::ledger::Dimension::Tool {
                return Err(CliError::usage(
                    "tool executions carry no tokens or cost to compare: give model, provider, session, project, \
                     agent, operation, task, user or tenant",
                ));
            }
            // The ledger keeps the calls of a model the book knows under its canonical id: a dated, Bedrock or Vertex
            // id (as `show` prints them) names the same model (the ledger reads it so too; resolved here for the
            // sides' labels). An id the price book does not know is kept as given.
            // Any other value as the records' were read: control characters written escaped.
            let value = |f: &tokenmeter::ledger::Filter| match ctx.prices.resolve(&f.value) {
                Some(p) if f.dimension == tokenmeter::ledger::Dimension::Model => p.canonical().to_owned(),
                _ => crate::render::sanitize(&f.value, false).into_owned(),
            };
            let (va, vb) = (value(a), value(b));
            // Both sides share the window: asked for widened to the bucket its start falls in (a month bucket
            // holding later days too), then given its own bounds back.
            let mut c = ledger.compare_values(scope.wide_window(&ledger)?, a.dimension, &va, &vb)?;
            scope.restore(&mut c.a.window);
            scope.restore(&mut c.b.window);
            // A side with no calls is most often a misspelt value: say whether the source has it at all.
            for (side, v) in [(&c.a, &va), (&c.b, &vb)] {
                if side.calls > 0 {
                    continue;
                }
                let anywhere = Query::new(Window::All).filter(a.dimension, v.as_str());
                let note = if ledger.query(&anywhere)?.totals.calls == 0 {
                    format!("tokenmeter: note: no call in the source has {}={v}", a.dimension)
                } else {
                    format!("tokenmeter: note: no call of {}={v} in this window", a.dimension)
                };
                ctx.note(&note);
            }
            c
        }
        _ => compare_periods(&ledger, &scope)?,
    };
    emit(
        source,
        args.format,
        CompareOut { comparison },
        |r| compare_table(ctx, style, &r.comparison),
        |r| compare_csv(ctx.time_zone, &r.comparison),
    )
}

/// The comparison as CSV, one row per figure as the table has them: its value on each side and the change, in
/// percent (a rate's where the windows differ in length, as the JSON's `*_pct`) or in points (`change_unit`). The
/// first rows name the sides and their windows.
fn compare_csv(tz: chrono_tz::Tz, c: &Comparison) -> String {
    use crate::sheet::{Sheet, local, opt_ratio, opt_usd, ratio, text, usd};
    let (a, b, d) = (&c.a, &c.b, &c.deltas);
    let mut out = Sheet::new(&["metric", "a", "b", "change", "change_unit"]);
    let mut row = |metric: &str, x: String, y: String, change: Option<f64>, unit: &str| {
        let change = change.map(ratio).unwrap_or_default();
        let unit = if change.is_empty() { String::new() } else { unit.to_owned() };
        out.row([metric.to_owned(), x, y, change, unit]);
    };
    // The labels are the --a/--b values as given: cleaned, as the table's are.
    let label = |s: &str| text(&crate::render::sanitize(s, false));
    row("label", label(&a.label), label(&b.label), None, "");
    row("window_start", local(a.window.from, tz), local(b.window.from, tz), None, "");
    row("window_end", local(a.window.to, tz), local(b.window.to, tz), None, "");
    let n = |v: u64| v.to_string();
    row("calls", n(a.calls), n(b.calls), d.calls_pct, "percent");
    row("tasks", n(a.tasks), n(b.tasks), None, "");
    row("tokens", n(a.tokens), n(b.tokens), d.tokens_pct, "percent");
    row("cost_usd", usd(a.cost_usd), usd(b.cost_usd), d.cost_pct, "percent");
    row("unpriced_calls", n(a.unpriced_calls), n(b.unpriced_calls), None, "");
    row(
        "cost_per_call_usd",
        opt_usd(a.cost_per_call_usd),
        opt_usd(b.cost_per_call_usd),
        d.cost_per_call_pct,
        "percent",
    );
    row(
        "cost_per_task_usd",
        opt_usd(a.cost_per_task_usd),
        opt_usd(b.cost_per_task_usd),
        d.cost_per_task_pct,
        "percent",
    );
    row(
        "tokens_per_task",
        opt_ratio(a.tokens_per_task),
        opt_ratio(b.tokens_per_task),
        d.tokens_per_task_pct,
        "percent",
    );
    row("cache_hit_rate", opt_ratio(a.cache_hit_rate), opt_ratio(b.cache_hit_rate), d.cache_hit_rate_points, "points");
    row(
        "efficiency_score",
        opt_ratio(a.efficiency_score),
        opt_ratio(b.efficiency_score),
        d.efficiency_score_points,
        "points",
    );
    out.finish()
}

/// [`Ledger::compare_periods`](tokenmeter::ledger::Ledger::compare_periods) over a scope of `--period` alone
/// ([`super::window`]), with `all` from the first record's day as every other report has it. The ledger's `All`
/// starts at its oldest bucket (a month's start once the records are 35 days old), and its calls cannot be split
/// at the first record's day: the counts are the ledger's (nothing precedes the first record, so the previous
/// side is empty either way), the windows are put back to the first record's day and the same length before it.
pub(crate) fn compare_periods(
    ledger: &tokenmeter::ledger::Ledger,
    scope: &super::Scope<'_>,
) -> Result<Comparison, tokenmeter::ledger::QueryError> {
    let Some((from, to)) = scope.asked else { return ledger.compare_periods(scope.window) };
    let mut c = ledger.compare_periods(Window::All)?;
    c.b.window = tokenmeter::ledger::WindowBounds { from, to };
    c.a.window = tokenmeter::ledger::WindowBounds { from: from - (to - from), to: from };
    Ok(c)
}

/// A difference in points, or `-`.
fn points(p: Option<f64>) -> String {
    p.map_or_else(|| "-".to_owned(), |p| format!("{p:+.1} points"))
}

/// An optional ratio as a percentage, or `-`.
fn opt_pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), pct)
}

pub(crate) fn compare_table(ctx: &Context, style: &Style, c: &Comparison) -> String {
    let tz = ctx.time_zone;
    let span = |w: &tokenmeter::ledger::WindowBounds| {
        format!(
            "{} to {}",
            crate::render::local_time(w.from, tz, "%Y-%m-%d %H:%M"),
            crate::render::local_time(w.to, tz, "%Y-%m-%d %H:%M")
        )
    };
    // The labels are the --a/--b values as given (a script may pass an id taken from the data): cleaned, as the
    // notes quoting them are.
    let (la, lb) = (crate::render::sanitize(&c.a.label, false), crate::render::sanitize(&c.b.label, false));
    let title = match c.dimension {
        Some(d) => format!("{d} {la} against {d} {lb}, {} ({tz})", span(&c.a.window)),
        None => format!("{lb} ({}) against {la} ({}) ({tz})", span(&c.b.window), span(&c.a.window)),
    };
    let mut out = format!("Comparison: {title}\n\n");
    let (a, b, d) = (&c.a, &c.b, &c.deltas);
    let mut t = style.table(["", &*la, &*lb, "change"]);
    let rows: [(&str, String, String, String); 8] = [
        ("calls", int(a.calls), int(b.calls), delta_pct(d.calls_pct)),
        ("tokens", int(a.tokens), int(b.tokens), delta_pct(d.tokens_pct)),
        (
            "cost",
            share_cost(a.cost_usd, a.calls, a.unpriced_calls),
            share_cost(b.cost_usd, b.calls, b.unpriced_calls),
            delta_pct(d.cost_pct),
        ),
        (
            // Over the priced calls: said so when either side had calls without a price.
            if a.unpriced_calls + b.unpriced_calls > 0 { "cost per priced call" } else { "cost per call" },
            opt_usd(a.cost_per_call_usd),
            opt_usd(b.cost_per_call_usd),
            delta_pct(d.cost_per_call_pct),
        ),
        ("cost per task", opt_usd(a.cost_per_task_usd), opt_usd(b.cost_per_task_usd), delta_pct(d.cost_per_task_pct)),
        ("tokens per task", opt_f1(a.tokens_per_task), opt_f1(b.tokens_per_task), delta_pct(d.tokens_per_task_pct)),
        ("cache hit rate", opt_pct(a.cache_hit_rate), opt_pct(b.cache_hit_rate), points(d.cache_hit_rate_points)),
        ("efficiency score", opt_f1(a.efficiency_score), opt_f1(b.efficiency_score), points(d.efficiency_score_points)),
    ];
    for (k, x, y, z) in rows {
        t.add_row(vec![k.into(), num(x), num(y), num(z)]);
    }
    push_table(&mut out, "", &t, style);
    let unpriced: Vec<String> = [a, b]
        .iter()
        .filter(|s| s.unpriced_calls > 0)
        .map(|s| format!("{} of {}", count(s.unpriced_calls, "call"), s.label))
        .collect();
    if !unpriced.is_empty() {
        let had = if unpriced.len() == 1 && a.unpriced_calls.max(b.unpriced_calls) == 1 { "has" } else { "have" };
        out.push_str(&format!("Costs count priced calls only: {} {had} no price.\n", unpriced.join(" and ")));
    }
    if let Some(note) = crate::render::length_note(c) {
        out.push_str(&note);
        out.push('\n');
    }
    out
}
