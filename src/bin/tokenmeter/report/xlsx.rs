//! The report as an Excel workbook: one sheet per table, numbers as numbers (dollars, percentages formatted).

use rust_xlsxwriter::{Format, Workbook, XlsxError};

use super::{Report, snake};

/// A cell value.
enum X {
    /// No value (nothing to score, no hit rate): an empty cell, which sums, averages and pivots skip, where a `-`
    /// would make the column text.
    Empty,
    Text(String),
    Int(u64),
    Usd(f64),
    Pct(f64),
    Num(f64),
}

struct Formats {
    header: Format,
    usd: Format,
    pct: Format,
    int: Format,
}

/// The most UTF-16 units a cell's text may have (Excel's limit; the writer refuses longer strings, which would
/// lose the whole workbook to one long name).
const MAX_CELL_UNITS: usize = 32_767;

/// `s`, cut to fit a cell (ending in `…`) when longer.
fn fit_cell(s: &str) -> std::borrow::Cow<'_, str> {
    if s.len() <= MAX_CELL_UNITS || s.encode_utf16().count() <= MAX_CELL_UNITS {
        return std::borrow::Cow::Borrowed(s);
    }
    let (mut units, mut end) = (0, 0);
    for (i, c) in s.char_indices() {
        // Room for the `…` (one unit).
        if units + c.len_utf16() > MAX_CELL_UNITS - 1 {
            break;
        }
        units += c.len_utf16();
        end = i + c.len_utf8();
    }
    std::borrow::Cow::Owned(format!("{}…", &s[..end]))
}

fn sheet(wb: &mut Workbook, f: &Formats, name: &str, header: &[&str], rows: &[Vec<X>]) -> Result<(), XlsxError> {
    let ws = wb.add_worksheet();
    ws.set_name(name)?;
    for (c, h) in header.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *h, &f.header)?;
    }
    for (r, row) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        for (c, v) in row.iter().enumerate() {
            let c = c as u16;
            match v {
                X::Empty => continue,
                X::Text(s) => ws.write_string(r, c, fit_cell(s))?,
                X::Int(n) => ws.write_number_with_format(r, c, *n as f64, &f.int)?,
                X::Usd(x) => ws.write_number_with_format(r, c, *x, &f.usd)?,
                X::Pct(x) => ws.write_number_with_format(r, c, *x, &f.pct)?,
                X::Num(x) => ws.write_number(r, c, *x)?,
            };
        }
    }
    ws.set_freeze_panes(1, 0)?;
    ws.autofit();
    Ok(())
}

/// The workbook's bytes.
pub(super) fn render(r: &Report<'_>) -> Result<Vec<u8>, XlsxError> {
    let f = Formats {
        header: Format::new().set_bold(),
        usd: Format::new().set_num_format("$#,##0.00##"),
        pct: Format::new().set_num_format("0.0%"),
        int: Format::new().set_num_format("#,##0"),
    };
    let mut wb = Workbook::new();
    let s = &r.summary;
    let e = &r.efficiency.efficiency_scores;
    let t = |s: &str| X::Text(s.to_owned());
    let mut head = vec![
        vec![t("period start"), X::Text(r.datetime(s.period_start))],
        vec![t("period end"), X::Text(r.datetime(s.period_end))],
        vec![t("time zone"), X::Text(r.time_zone.clone())],
        vec![t("calls"), X::Int(s.calls)],
        vec![t("input tokens (uncached)"), X::Int(s.tokens.input)],
        vec![t("output tokens"), X::Int(s.tokens.output)],
        vec![t("cache read tokens"), X::Int(s.tokens.cache_read)],
        vec![t("cache write tokens, 5m"), X::Int(s.tokens.cache_write_5m)],
        vec![t("cache write tokens, 1h"), X::Int(s.tokens.cache_write_1h)],
        vec![t("total tokens"), X::Int(s.tokens.total)],
        vec![t("cost"), X::Usd(s.cost_usd)],
        vec![t("cache savings"), X::Usd(s.cache_savings_usd)],
        // Empty in a window without metered calls: nothing to score.
        vec![t("efficiency score"), if s.metered_calls > 0 { X::Num(e.overall) } else { X::Empty }],
        vec![t("efficiency band"), if s.metered_calls > 0 { X::Text(e.band.to_string()) } else { X::Empty }],
        vec![t("cache hit rate"), if s.metered_calls > 0 { X::Pct(r.cache.cache_metrics.hit_rate) } else { X::Empty }],
        vec![t("unpriced calls"), X::Int(s.unpriced.calls)],
    ];
    if let Some(f) = &r.forecast {
        // Empty with nothing to forecast from.
        head.push(vec![
            t(&format!("projected total of {}", super::projected_month(f))),
            r.projected_month_total().map_or(X::Empty, X::Usd),
        ]);
    }
    sheet(&mut wb, &f, "Summary", &["figure", "value"], &head)?;

    let exec = r.executive();
    if !exec {
        let rows: Vec<Vec<X>> = r
            .periods
            .groups
            .iter()
            .map(|g| {
                vec![
                    X::Text(r.period_label(&g.key)),
                    X::Int(g.calls),
                    X::Int(g.tokens.input),
                    X::Int(g.tokens.output),
                    X::Int(g.tokens.cache_read),
                    X::Int(g.tokens.cache_write_5m),
                    X::Int(g.tokens.cache_write_1h),
                    X::Int(g.tokens.total),
                    X::Usd(g.cost_usd),
                    X::Int(g.unpriced_calls),
                ]
            })
            .collect();
        sheet(
            &mut wb,
            &f,
            "By period",
            &[
                r.period_grain(),
                "calls",
                "input",
                "output",
                "cache read",
                "cache write 5m",
                "cache write 1h",
                "total tokens",
                "cost",
                "unpriced calls",
            ],
            &rows,
        )?;
    }

    // An executive workbook is the executive report's tables: the five costliest models (the rest in one row),
    // the top three suggestions, no period, cache, efficiency or forecast sheets.
    let shown = if exec { 5 } else { usize::MAX };
    let other = crate::render::other_models(&s.by_model, shown);
    let rows: Vec<Vec<X>> = s
        .by_model
        .iter()
        .take(shown)
        .chain(other.as_ref())
        .map(|m| {
            vec![
                X::Text(m.name.clone()),
                X::Int(m.calls),
                X::Int(m.tokens),
                X::Usd(m.cost_usd),
                X::Pct(m.cost_share),
                X::Int(m.unpriced_calls),
            ]
        })
        .collect();
    sheet(&mut wb, &f, "By model", &["model", "calls", "tokens", "cost", "share of cost", "unpriced calls"], &rows)?;

    let rows: Vec<Vec<X>> = r
        .efficiency
        .optimization_suggestions
        .iter()
        .take(if exec { 3 } else { usize::MAX })
        .map(|g| {
            vec![
                X::Text(snake(&g.kind)),
                X::Text(snake(&g.impact)),
                X::Usd(g.potential_savings),
                X::Int(g.calls),
                X::Text(g.description.clone()),
            ]
        })
        .collect();
    sheet(&mut wb, &f, "Suggestions", &["suggestion", "impact", "saves", "calls", "what to do"], &rows)?;
    if exec {
        return wb.save_to_buffer();
    }
    let rows: Vec<Vec<X>> = r
        .cache
        .time_series
        .iter()
        .map(|p| {
            // Empty for a period without prompt tokens: no hit rate, not a measured 0%.
            let rate = r.point_hit_rate(p).map_or(X::Empty, X::Pct);
            vec![X::Text(r.datetime(p.timestamp)), rate, X::Int(p.tokens_saved), X::Usd(p.cost_saved)]
        })
        .collect();
    sheet(&mut wb, &f, "Cache", &["start", "hit rate", "tokens read", "saved"], &rows)?;

    let mut rows: Vec<Vec<X>> = r
        .efficiency
        .breakdowns
        .iter()
        .map(|b| {
            // Empty for a project without metered calls: nothing to score.
            let (score, band) = match r.row_score(b) {
                Some((score, band)) => (X::Num(score), X::Text(band.to_string())),
                None => (X::Empty, X::Empty),
            };
            vec![
                X::Text(b.category.clone()),
                X::Int(b.calls),
                X::Int(b.total_tokens),
                X::Usd(b.cost_usd),
                score,
                band,
                X::Int(b.unpriced_calls),
            ]
        })
        .collect();
    if r.efficiency.breakdowns_omitted > 0 {
        rows.push(vec![X::Text(r.omitted_projects())]);
    }
    sheet(
        &mut wb,
        &f,
        "Efficiency",
        &["project", "calls", "tokens", "cost", "score", "band", "unpriced calls"],
        &rows,
    )?;

    if let Some(tree) = &r.projects {
        let mut rows = Vec::new();
        for p in &tree.nodes {
            for c in &p.children {
                rows.push(vec![
                    X::Text(p.name.clone()),
                    X::Text(c.name.clone()),
                    X::Int(c.calls),
                    X::Int(c.tokens),
                    X::Usd(c.cost_usd),
                    X::Pct(c.cost_share),
                    X::Int(c.unpriced_calls),
                ]);
            }
        }
        let header = ["project", "session", "calls", "tokens", "cost", "share of cost", "unpriced calls"];
        sheet(&mut wb, &f, "Sessions", &header, &rows)?;
    }
    if let Some(fc) = &r.forecast {
        let rows: Vec<Vec<X>> = fc
            .days
            .iter()
            .map(|d| {
                vec![
                    X::Text(d.date.to_string()),
                    X::Usd(d.cost_usd),
                    X::Usd(d.lower_usd),
                    X::Usd(d.upper_usd),
                    X::Int(d.tokens),
                ]
            })
            .collect();
        sheet(&mut wb, &f, "Forecast", &["day", "cost", "low (90%)", "high (90%)", "tokens"], &rows)?;
    }
    wb.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_to_a_cell() {
        assert_eq!(fit_cell("short"), "short");
        let exact = "a".repeat(MAX_CELL_UNITS);
        assert_eq!(fit_cell(&exact), exact.as_str());
        let cut = fit_cell(&"a".repeat(MAX_CELL_UNITS + 1)).into_owned();
        assert_eq!(cut.encode_utf16().count(), MAX_CELL_UNITS);
        assert!(cut.ends_with('…'));
        // Characters outside the BMP take two units each and are never split.
        let wide = fit_cell(&"😀".repeat(MAX_CELL_UNITS)).into_owned();
        assert!(wide.encode_utf16().count() <= MAX_CELL_UNITS && wide.ends_with('…'));
    }
}
