//! Tables and numbers for people: comfy-table, traffic-light colours when stdout is a terminal.

use std::fmt::Write as _;
use std::io::IsTerminal;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Attribute, Cell, CellAlignment, Color, ContentArrangement, Table};
use serde::Serialize;
use tokenmeter::analysis::{Band, Impact, Share};

use crate::cli::ColorChoice;
use crate::{CliError, CliResult};

/// Table width when stdout is not a terminal.
const PLAIN_WIDTH: u16 = 150;

/// How to draw.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    /// Colours and bold (a terminal, or `--color always`).
    pub(crate) color: bool,
    /// Fit tables to the terminal's width.
    pub(crate) terminal: bool,
}

impl Style {
    pub(crate) fn new(choice: ColorChoice) -> Self {
        let terminal = std::io::stdout().is_terminal();
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                terminal
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::env::var("TERM").map_or(true, |t| t != "dumb")
            }
        };
        Style { color, terminal }
    }

    /// A table with a header row.
    pub(crate) fn table<I, S>(&self, header: I) -> Table
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut t = Table::new();
        t.load_style(UTF8_FULL_CONDENSED.with_rounded_corners());
        // Not a terminal: no width to discover, so wrap long text at a width that reads well in a file. A
        // terminal of unknown or zero width (a pty nobody sized, as in CI and containers): fitting the table to
        // 0 columns would print one character per column, so it is not wrapped at all.
        let width = if self.terminal { t.width().filter(|&w| w > 0) } else { Some(PLAIN_WIDTH) };
        if let Some(w) = width {
            t.set_width(w).set_content_arrangement(ContentArrangement::Dynamic);
        }
        // comfy-table styles cells whenever stdout is a terminal; `--color never` and NO_COLOR say otherwise.
        if self.color {
            t.enforce_styling();
        } else {
            t.force_no_tty();
        }
        t.set_header(header.into_iter().map(|h| Cell::new(h.into()).add_attribute(Attribute::Bold)));
        t
    }

    /// `text` in the band's colour.
    pub(crate) fn band(&self, text: &str, band: Band) -> String {
        if self.color { format!("\x1b[{}m{text}\x1b[0m", band.ansi_code()) } else { text.to_owned() }
    }

    /// `text` in bold.
    pub(crate) fn bold(&self, text: &str) -> String {
        if self.color { format!("\x1b[1m{text}\x1b[0m") } else { text.to_owned() }
    }

    /// `text` in red (alerts).
    pub(crate) fn alert(&self, text: &str) -> String {
        if self.color { format!("\x1b[1;31m{text}\x1b[0m") } else { text.to_owned() }
    }
}

/// A right-aligned cell.
pub(crate) fn num(text: impl Into<String>) -> Cell {
    Cell::new(text.into()).set_alignment(CellAlignment::Right)
}

/// A cell in a band's colour.
pub(crate) fn band_cell(text: impl Into<String>, band: Band) -> Cell {
    let color = match band {
        Band::Green => Color::Green,
        Band::Amber => Color::Yellow,
        Band::Red => Color::Red,
    };
    Cell::new(text.into()).fg(color).set_alignment(CellAlignment::Right)
}

/// A cell coloured by impact.
pub(crate) fn impact_cell(impact: Impact) -> Cell {
    let (text, color) = match impact {
        Impact::High => ("high", Color::Red),
        Impact::Medium => ("medium", Color::Yellow),
        Impact::Low => ("low", Color::Green),
    };
    Cell::new(text).fg(color)
}

/// `1234567` as `1,234,567`.
pub(crate) fn int(n: u64) -> String {
    int_wide(u128::from(n))
}

/// [`int`] for `u128`.
fn int_wide(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// USD: `$1,234.57`, or 4 decimals under a dollar (`$0.0123`).
pub(crate) fn usd(v: f64) -> String {
    if !v.is_finite() {
        return "-".to_owned();
    }
    let a = v.abs();
    // The amount in picodollars, rounded from the float: the exact amount it was made from while that is under
    // ~$2,000 (the float's error is then under half a picodollar), so cents and ten-thousandths round half up as
    // `Money` does. Rounding the float itself took $1.005 (1.00499999…) to `$1.00`.
    let picos = (a < 2_000.0).then(|| (a * 1e12).round() as u128);
    let ten_thousandths = picos.map(|p| (p + 50_000_000) / 100_000_000);
    // The sign of what is shown: a value that rounds to zero is no negative amount (`$0.0000`, not `-$0.0000`).
    // A value that rounds to a dollar at four decimals ($0.99996) is shown as dollars (`$1.00`, not `$1.0000`).
    let (text, zero) = match ten_thousandths {
        Some(t) if a < 1.0 && a != 0.0 && t < 10_000 => (format!("$0.{t:04}"), t == 0),
        _ => {
            // u128 cents: exact to $3.4e36, far past any spend (u64 would saturate at $1.8e17 and print a wrong
            // sum).
            let cents = match picos {
                Some(p) => (p + 5_000_000_000) / 10_000_000_000,
                None => (a * 100.0).round() as u128,
            };
            (format!("${}.{:02}", int_wide(cents / 100), cents % 100), cents == 0)
        }
    };
    // A cost too small for four decimals is still a cost: `<$0.0001`, not a `$0.0000` that reads as free.
    if v > 0.0 && zero {
        return "<$0.0001".to_owned();
    }
    if v < 0.0 && !zero { format!("-{text}") } else { text }
}

/// The cost of a group's calls: `unpriced` when none of them had a price, the priced part and a mark when
/// some did not: never a silent $0 ([`priced_usd`] over the group's calls: its metered ones where the row
/// knows them, as calls without usage have no price to miss).
pub(crate) fn share_cost(cost_usd: f64, calls: u64, unpriced_calls: u64) -> String {
    priced_usd(cost_usd, unpriced_calls, Some(calls))
}

/// One model's cost. A model's calls are all priced or none, so a model with unpriced calls is `unpriced` (its
/// row counts failed calls without usage too, which read `$0.00 + unpriced`). The summed row of the models past
/// a table's limit ([`other_models`]) may mix priced models with unpriced ones: a [`share_cost`].
pub(crate) fn model_cost(m: &Share) -> String {
    if m.unpriced_calls > 0 {
        return "unpriced".to_owned();
    }
    share_cost(m.cost_usd, m.calls, m.unpriced_calls)
}

/// The first `shown` models with their [`model_cost`], then the rest summed ([`other_models`]) with its
/// [`share_cost`].
pub(crate) fn models_with_costs(models: &[Share], shown: usize) -> Vec<(Share, String)> {
    let mut rows: Vec<(Share, String)> = models.iter().take(shown).map(|m| (m.clone(), model_cost(m))).collect();
    if let Some(o) = other_models(models, shown) {
        let cost = share_cost(o.cost_usd, o.calls, o.unpriced_calls);
        rows.push((o, cost));
    }
    rows
}

pub(crate) fn other_models(models: &[Share], shown: usize) -> Option<Share> {
    let rest = models.get(shown..).filter(|r| !r.is_empty())?;
    let sum = |f: fn(&Share) -> u64| rest.iter().map(f).sum::<u64>();
    let sum_f = |f: fn(&Share) -> f64| rest.iter().map(f).sum::<f64>();
    Some(Share {
        name: format!("({} other model{})", rest.len(), if rest.len() == 1 { "" } else { "s" }),
        calls: sum(|m| m.calls),
        unpriced_calls: sum(|m| m.unpriced_calls),
        tokens: sum(|m| m.tokens),
        cost_usd: sum_f(|m| m.cost_usd),
        cost_share: sum_f(|m| m.cost_share),
        token_share: sum_f(|m| m.token_share),
    })
}

/// A dollar figure made from priced calls only (a total, a rate, a projection): `$x + unpriced` when
/// `unpriced_calls` calls on models without a price are left out of it, as [`share_cost`] marks a row's cost;
/// `unpriced` alone when they are all of its `calls` (the metered calls it is made from, where known: a
/// forecast's history is not counted by call), since its `$0.00` would be no measurement.
pub(crate) fn priced_usd(v: f64, unpriced_calls: u64, calls: Option<u64>) -> String {
    match unpriced_calls {
        0 => usd(v),
        n if calls.is_some_and(|c| n >= c) => "unpriced".to_owned(),
        _ => format!("{} + unpriced", usd(v)),
    }
}

/// For a period comparison whose two windows are not equally long (the current one ends in the current
/// minute, the previous one on an hour), what its changes mean.
pub(crate) fn length_note(c: &tokenmeter::analysis::Comparison) -> Option<String> {
    // The lengths the change was worked out over: each side from where the records begin, when that is later
    // than its start (the windows' own lengths said nothing of a previous side that held 30 minutes of 60).
    let hours = |s: &tokenmeter::analysis::ComparisonSide| s.compared_seconds as f64 / 3_600.0;
    let (a, b) = (hours(&c.a), hours(&c.b));
    (c.kind == tokenmeter::analysis::ComparisonKind::Periods && c.a.compared_seconds != c.b.compared_seconds).then(
        || {
            if c.a.compared_seconds == 0 {
                return "The records begin after the previous window: calls, tokens and cost have no change to show."
                    .to_owned();
            }
            let from_first = (c.a.window.to - c.a.window.from).num_seconds() > c.a.compared_seconds;
            format!(
                "The sides are not equally long ({b:.2} hours against {a:.2}{}): calls, tokens and cost change as \
                 rates per hour.",
                if from_first { ", the previous counted from the first record" } else { "" }
            )
        },
    )
}

/// `n thing` or `n things`.
pub(crate) fn count(n: u64, thing: &str) -> String {
    format!("{} {thing}{}", int(n), if n == 1 { "" } else { "s" })
}

/// How far off a day is, from today: `today`, `in 1 day`, `in 3 days`.
pub(crate) fn days_from_today(n: i64) -> String {
    match n {
        ..=0 => "today".to_owned(),
        n => format!("in {}", count(n.unsigned_abs(), "day")),
    }
}

/// An optional USD amount.
pub(crate) fn opt_usd(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), usd)
}

/// A ratio as a percentage: `0.1234` as `12.3%`.
pub(crate) fn pct(ratio: f64) -> String {
    if ratio.is_finite() { format!("{:.1}%", ratio * 100.0) } else { "-".to_owned() }
}

/// A signed percentage change: `+12.3%`, or `-` when unknown.
pub(crate) fn delta_pct(p: Option<f64>) -> String {
    match p {
        Some(p) if p.is_finite() => format!("{p:+.1}%"),
        _ => "-".to_owned(),
    }
}

/// A number with one decimal, or `-`.
pub(crate) fn opt_f1(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.1}"),
        _ => "-".to_owned(),
    }
}

/// A character that must not reach a terminal or a page as it is: a control character (an escape sequence
/// retitles or clears a terminal), or a bidirectional override or isolate, which makes `sess\u{202E}gnp.exe`
/// read as `sessexe.png`.
pub(crate) fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with each [`is_unsafe_char`] written as its escape (`\u{1b}`, as the library's log lines write it), line
/// breaks kept when `keep_lines` (a note of several lines); borrowed when there is none. Each character has its own
/// escape, so that names that differ only there stay apart (with one replacement character for all, the sessions
/// `a\nb` and `a\tb` were counted as one).
pub(crate) fn sanitize(text: &str, keep_lines: bool) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| is_unsafe_char(c) && !(keep_lines && c == '\n');
    if !text.chars().any(bad) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if bad(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `t` in `tz` as `format` writes it, with the UTC offset after it in the hour a clock set back shows twice
/// (`2026-11-01 01:30 (-04:00)`, then `(-05:00)`): two labels that read the same would name two times.
pub(crate) fn local_time(t: chrono::DateTime<chrono::Utc>, tz: chrono_tz::Tz, format: &str) -> String {
    use chrono::TimeZone as _;
    let local = t.with_timezone(&tz);
    let text = local.format(format).to_string();
    match tz.from_local_datetime(&local.naive_local()) {
        chrono::LocalResult::Ambiguous(..) => format!("{text} ({})", local.format("%:z")),
        _ => text,
    }
}

/// Pretty JSON with a trailing newline.
pub(crate) fn json<T: Serialize>(value: &T) -> CliResult<String> {
    let mut s = serde_json::to_string_pretty(value).map_err(|e| CliError::data(format!("cannot write JSON: {e}")))?;
    s.push('\n');
    Ok(s)
}

/// Appends a table, then a blank line.
pub(crate) fn push_table(out: &mut String, title: &str, table: &Table, style: &Style) {
    if !title.is_empty() {
        let _ = writeln!(out, "{}", style.bold(title));
    }
    let mut table = table.clone();
    cut_wide_cells(&mut table);
    keep_figures_whole(&mut table);
    let _ = writeln!(out, "{table}\n");
}

/// The most columns a line of a cell shows: comfy-table keeps widths in `u16`, and a name or id of ~65,000
/// columns (a damaged file's model id) overflowed them (a panic in debug builds, a garbled table in release).
const MAX_CELL_WIDTH: usize = 1_000;

/// Cuts each line of a cell wider than [`MAX_CELL_WIDTH`] to that width, ending it with `…` (such a cell
/// loses its colour and alignment; no real name or figure comes near it).
fn cut_wide_cells(table: &mut Table) {
    let too_wide = |c: &Cell| c.content().lines().any(|l| width(l) > MAX_CELL_WIDTH);
    for row in table.row_iter_mut() {
        if !row.cell_iter().any(too_wide) {
            continue;
        }
        let cells: Vec<Cell> = row
            .cell_iter()
            .map(|c| if too_wide(c) { Cell::new(cut_lines(&c.content(), MAX_CELL_WIDTH)) } else { c.clone() })
            .collect();
        *row = comfy_table::Row::from(cells);
    }
}

/// Each line of `text` at most `max` columns wide, a cut one ending with `…`.
fn cut_lines(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4 + 8));
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if width(line) <= max {
            out.push_str(line);
            continue;
        }
        let mut used = 0;
        for c in line.chars() {
            let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
            if used + w > max - 1 {
                break;
            }
            used += w;
            out.push(c);
        }
        out.push('…');
    }
    out
}

/// Without ANSI colour codes.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // `ESC [ … m`: up to and including the final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A figure (a count, an amount, a share, a date or time): digits and the marks around them, no letters.
fn is_figure(word: &str) -> bool {
    word.chars().any(|c| c.is_ascii_digit())
        && word.chars().all(|c| c.is_ascii_digit() || ",.$%+-−:()x/~<>=".contains(c))
}

/// Columns `text` takes on a terminal, as comfy-table counts them (a CJK character or an emoji takes two).
fn width(text: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(text)
}

/// Words longer than this may break inside a column fitted to a narrow terminal (a dated model id such as
/// `claude-sonnet-4-5-20250929`); shorter ones, headers' included, are kept whole.
const WHOLE_WORD: usize = 16;

/// Fitted to a narrow terminal, a dynamic table wrapped every column, figures and words included: `234,305`
/// read `234,30` over `5`, `$0.3715 + unpriced` `$0.371` over `5 +`, a header `outpu` over `t`, and a model id
/// ran down a column two characters wide. Each column is kept at least as wide as the widest figure in it and
/// its longest word (up to [`WHOLE_WORD`] characters), header included: it wraps between words; the table may
/// come out wider than the terminal.
fn keep_figures_whole(table: &mut Table) {
    // A table that fits as it is gets no bounds: comfy-table fixes a column at its lower bound whenever that is
    // more than the average width left, so a model id column bounded at 16 wrapped in a table that fitted.
    let Some(limit) = table.width() else { return };
    let words = |text: &str| text.split_whitespace().map(|w| width(w).min(WHOLE_WORD)).max().unwrap_or(0);
    // Per column, in one pass: its natural width (its widest line) and its lower bound.
    let (mut natural, mut lower) = (Vec::new(), Vec::new());
    let rows = table.header().into_iter().map(|r| (true, r)).chain(table.row_iter().map(|r| (false, r)));
    for (header, row) in rows {
        for (i, cell) in row.cell_iter().enumerate() {
            if natural.len() <= i {
                natural.resize(i + 1, 0);
                lower.resize(i + 1, 0);
            }
            let text = plain(&cell.content());
            let widest_line = text.lines().map(width).max().unwrap_or(0);
            // A header's words; a cell of figures alone (a date and a time, `10-01 12:30:00 (-04:00)`) whole; in a
            // cell with words, each figure and word.
            let bound = if header {
                words(&text)
            } else if text.split_whitespace().all(is_figure) {
                widest_line
            } else {
                text.split_whitespace().filter(|w| is_figure(w)).map(width).max().unwrap_or(0).max(words(&text))
            };
            natural[i] = natural[i].max(widest_line);
            lower[i] = lower[i].max(bound);
        }
    }
    let padding: usize =
        (0..natural.len()).filter_map(|i| table.column(i)).map(|c| usize::from(c.padding_width())).sum();
    // The widths, their padding and a border before each column and after the last.
    let borders = natural.len() + 1;
    if natural.iter().sum::<usize>() + padding + borders <= usize::from(limit) {
        return;
    }
    for (i, w) in lower.into_iter().enumerate() {
        if let (true, Some(column)) = (w > 0, table.column_mut(i)) {
            // The boundary counts the column's padding.
            let w = u16::try_from(w).unwrap_or(u16::MAX).saturating_add(column.padding_width());
            column.set_constraint(comfy_table::ColumnConstraint::LowerBoundary(comfy_table::Width::Fixed(w)));
        }
    }
}

/// Time left, in whole minutes rounded up: "2h 13m", "1m" (30 seconds left is not "0m").
pub(crate) fn time_left(d: chrono::Duration) -> String {
    let minutes = (d.num_seconds().max(0) + 59) / 60;
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m}m"),
        (h, m) => format!("{h}h {m:02}m"),
    }
}

/// What a forecast is made from, as a phrase: "a trend over 9 days of history", "today's run rate (…)".
pub(crate) fn forecast_basis(f: &tokenmeter::analysis::Forecast) -> String {
    use tokenmeter::analysis::ForecastBasis;
    match f.basis {
        ForecastBasis::Trend if f.weekday_effects_usd.is_some() => {
            format!("a trend over {} of history, with a weekly pattern", count(u64::from(f.history_days), "day"))
        }
        ForecastBasis::Trend => format!("a trend over {} of history", count(u64::from(f.history_days), "day")),
        ForecastBasis::Mean => format!("the mean of {} of history", count(u64::from(f.history_days), "full day")),
        ForecastBasis::RunRate => "today's run rate (no full day of history yet)".to_owned(),
        ForecastBasis::Insufficient => {
            "nothing yet: no full day of history, and less than an hour of today (no days forecast)".to_owned()
        }
    }
}

/// A weekly pattern's day-of-week effects, Monday first: "Mon +$2.71, …, Sun -$6.79"; `None` for a plain line.
pub(crate) fn weekday_effects(f: &tokenmeter::analysis::Forecast) -> Option<String> {
    let e = f.weekday_effects_usd?;
    let days = [
        ("Mon", e.mon),
        ("Tue", e.tue),
        ("Wed", e.wed),
        ("Thu", e.thu),
        ("Fri", e.fri),
        ("Sat", e.sat),
        ("Sun", e.sun),
    ];
    // An effect that rounds to nothing has no sign (`$0.0000` beside `+$1.00` read oddly, `+<$0.0001` too).
    let signed = |v: f64| match usd(v) {
        _ if v.abs() < 0.00005 => "$0.00".to_owned(),
        text if v < 0.0 => text,
        text => format!("+{text}"),
    };
    Some(days.iter().map(|(name, v)| format!("{name} {}", signed(*v))).collect::<Vec<_>>().join(", "))
}

/// The forecast days' band column: a 90% prediction band over a trend; over a mean or a run rate, a stated ±82%,
/// not one measured from the history (a reviewer read both as "90% band").
pub(crate) fn forecast_band_header(f: &tokenmeter::analysis::Forecast) -> &'static str {
    match f.basis {
        tokenmeter::analysis::ForecastBasis::Trend => "90% band",
        _ => "band (stated ±82%)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekday_effects_that_round_to_nothing_have_no_sign() {
        // A Mon→Sun pattern of $1..$7 has Thursday at the line: it read `Thu $0.0000` beside `+$1.00`.
        let mut f: tokenmeter::analysis::Forecast = serde_json::from_value(serde_json::json!({
            "generated_at": "2026-03-14T12:30:00Z", "time_zone": "UTC", "history_days": 28, "trend": "flat",
            "slope_usd_per_day": 0.0, "daily_average_usd": 4.0, "days": [], "month_to_date_usd": 0.0,
            "projected_month_total_usd": 0.0, "limit": null,
        }))
        .unwrap();
        assert_eq!(weekday_effects(&f), None);
        f.weekday_effects_usd = Some(tokenmeter::analysis::WeekdayEffects {
            mon: -3.0,
            tue: -2.0,
            wed: -1.0,
            thu: 2e-15,
            fri: 1.0,
            sat: 0.25,
            sun: 4.75,
        });
        assert_eq!(
            weekday_effects(&f).unwrap(),
            "Mon -$3.00, Tue -$2.00, Wed -$1.00, Thu $0.00, Fri +$1.00, Sat +$0.2500, Sun +$4.75"
        );
    }

    #[test]
    fn a_cell_of_a_name_65536_columns_wide_is_cut_not_a_panic() {
        // comfy-table's u16 widths overflowed (a debug build's panic) on a damaged file's model id.
        let name = "m".repeat(65_536);
        let mut t = Table::new();
        t.set_header(["model", "calls"]);
        t.add_row(vec![Cell::new(&name), num("1")]);
        let mut out = String::new();
        push_table(&mut out, "", &t, &Style { color: false, terminal: false });
        let widest = out.lines().map(width).max().unwrap();
        assert!((MAX_CELL_WIDTH..MAX_CELL_WIDTH + 20).contains(&widest), "{widest}");
        assert!(out.contains(&format!("{}…", "m".repeat(MAX_CELL_WIDTH - 1))));
        assert_eq!(cut_lines("ab\n日本語", 4), "ab\n日…");
    }

    #[test]
    fn days_ahead_read_well() {
        assert_eq!(days_from_today(0), "today");
        assert_eq!(days_from_today(1), "in 1 day");
        assert_eq!(days_from_today(3), "in 3 days");
        assert_eq!(days_from_today(1_000), "in 1,000 days");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(int(0), "0");
        assert_eq!(int(1_234), "1,234");
        assert_eq!(int(1_234_567), "1,234,567");
        assert_eq!(usd(1234.567), "$1,234.57");
        assert_eq!(usd(0.01234), "$0.0123");
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(usd(-2.5), "-$2.50");
        // What rounds to zero has no sign; very large sums are exact, not saturated.
        assert_eq!(usd(-1e-7), "$0.0000");
        assert_eq!(usd(-0.00004), "$0.0000");
        assert_eq!(usd(-0.0001), "-$0.0001");
        assert_eq!(usd(0.0000015), "<$0.0001");
        assert_eq!(usd(0.00005), "$0.0001");
        // Four decimals that round to a dollar are a dollar, in the dollar format.
        assert_eq!(usd(0.99996), "$1.00");
        assert_eq!(usd(-0.99996), "-$1.00");
        assert_eq!(usd(0.99994), "$0.9999");
        assert_eq!(usd(2e17), "$200,000,000,000,000,000.00");
        // Exact halves round up, as `Money` does, though the float is a hair under them (1.00499999…).
        let exact = |picos: u128| tokenmeter::Money::from_picos(picos).as_usd();
        assert_eq!(usd(exact(1_005_000_000_000)), "$1.01");
        assert_eq!(usd(exact(9_995_000_000_000)), "$10.00");
        assert_eq!(usd(exact(1_999_995_000_000_000)), "$2,000.00");
        assert_eq!(usd(exact(150_000_000)), "$0.0002");
        assert_eq!(usd(exact(50_000_000)), "$0.0001");
        assert_eq!(usd(-exact(1_005_000_000_000)), "-$1.01");
        assert_eq!(format!("{:.2}", tokenmeter::Money::from_picos(1_005_000_000_000)), "$1.01");
        assert_eq!(pct(0.1234), "12.3%");
        assert_eq!(delta_pct(Some(-3.26)), "-3.3%");
        assert_eq!(delta_pct(None), "-");
        // A figure that leaves out calls says so; a group whose every call is unpriced has no figure.
        assert_eq!(priced_usd(0.0, 1, None), "$0.00 + unpriced");
        assert_eq!(priced_usd(0.5, 1, Some(2)), "$0.5000 + unpriced");
        assert_eq!(priced_usd(0.0, 2, Some(2)), "unpriced");
        assert_eq!(priced_usd(3.84, 0, Some(2)), "$3.84");
        assert_eq!(share_cost(0.0, 2, 2), "unpriced");
        assert_eq!(share_cost(0.5, 2, 1), "$0.5000 + unpriced");
        // One model: its calls are all priced or none, whatever its calls without usage. The summed row of other
        // models may hold a model priced at $0 beside an unpriced one.
        let row = |name: &str| Share {
            name: name.to_owned(),
            calls: 2,
            unpriced_calls: 1,
            tokens: 10,
            cost_usd: 0.0,
            cost_share: 0.0,
            token_share: 1.0,
        };
        assert_eq!(model_cost(&row("claude-fable-9")), "unpriced");
        let mut priced_at_zero = row("synthetic");
        priced_at_zero.unpriced_calls = 0;
        let rows = models_with_costs(&[row("claude-fable-9"), priced_at_zero, row("claude-fable-8")], 1);
        let costs: Vec<&str> = rows.iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(costs, ["unpriced", "$0.00 + unpriced"]);
    }

    #[test]
    fn escapes_and_direction_overrides_never_pass() {
        assert_eq!(sanitize("plain name", false), "plain name");
        assert!(matches!(sanitize("plain name", false), std::borrow::Cow::Borrowed(_)));
        assert_eq!(sanitize("a\u{1b}]0;PWNED\u{7}b", false), r"a\u{1b}]0;PWNED\u{7}b");
        assert_eq!(sanitize("sess\u{202E}gnp.exe", false), r"sess\u{202e}gnp.exe");
        assert_eq!(sanitize("x\u{2066}y\u{2069}", false), r"x\u{2066}y\u{2069}");
        assert_eq!(sanitize("first\nsecond\r", true), "first\nsecond\\u{d}");
        assert_eq!(sanitize("first\nsecond", false), r"first\u{a}second");
        // Each character its own escape: names that differ there stay apart.
        assert_ne!(sanitize("a\nb", false), sanitize("a\tb", false));
    }

    #[test]
    fn a_time_in_the_repeated_hour_says_its_offset() {
        use chrono::TimeZone as _;
        let tz = chrono_tz::America::New_York;
        let f = |h, m| local_time(chrono::Utc.with_ymd_and_hms(2026, 11, 1, h, m, 0).unwrap(), tz, "%Y-%m-%d %H:%M");
        // 05:30 and 06:30 UTC are both 01:30 in New York on the day the clock goes back.
        assert_eq!(f(5, 30), "2026-11-01 01:30 (-04:00)");
        assert_eq!(f(6, 30), "2026-11-01 01:30 (-05:00)");
        assert_eq!(f(7, 30), "2026-11-01 02:30");
        assert_eq!(f(4, 30), "2026-11-01 00:30");
    }
}
