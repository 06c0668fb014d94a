//! The report as one self-contained HTML page: inline CSS, inline SVG charts (cost over time, cost by model,
//! cache hit rate), no scripts, nothing fetched.

use std::fmt::Write as _;

use super::Report;
use crate::render::{count, int, pct, priced_usd, share_cost};

const CSS: &str = "body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1000px;\
color:#1d2430;padding:0 1rem}h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;\
border-bottom:1px solid #dde2ea;padding-bottom:.3rem}.muted{color:#5f6b7a}.cards{display:flex;flex-wrap:wrap;gap:.8rem;\
margin:1rem 0}.card{border:1px solid #dde2ea;border-radius:8px;padding:.6rem .9rem;min-width:9rem}.card b{display:block;\
font-size:1.25rem}table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}th,td{padding:.3rem .5rem;\
border-bottom:1px solid #eceff4;text-align:left;vertical-align:top}td.n,th.n{text-align:right;font-variant-numeric:\
tabular-nums}.green{color:#1a7f37}.amber{color:#9a6700}.red{color:#cf222e}svg{max-width:100%;height:auto}\
svg text{font:11px system-ui,sans-serif;fill:#5f6b7a}";

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A "nice" axis maximum and tick step for values up to `max`.
fn axis(max: f64) -> (f64, f64) {
    if !(max.is_finite() && max > 0.0) {
        return (1.0, 0.25);
    }
    let raw = max / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

/// Show every n-th x label so that labels of `chars` characters do not overlap in slots `slot` wide.
fn label_step(chars: usize, slot: f64) -> usize {
    let width = chars as f64 * 6.6 + 10.0;
    if slot <= 0.0 { 1 } else { (width / slot).ceil().max(1.0) as usize }
}

/// Dollars for an axis whose ticks are `step` apart: as many decimals as the step needs.
fn axis_usd(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        usize::from(step.fract() != 0.0)
    } else {
        ((-step.log10()).ceil() as usize).saturating_add(1).min(6)
    };
    let s = format!("{v:.decimals$}");
    format!("${s}")
}

const W: f64 = 760.0;
const H: f64 = 240.0;
const LEFT: f64 = 64.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 12.0;

/// Vertical bars, one per label, each with its tooltip text.
fn bar_chart(title: &str, labels: &[String], values: &[f64], tips: &[String]) -> String {
    let mut s = format!("<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">", esc(title));
    let max = values.iter().copied().fold(0.0, f64::max);
    let (top, step) = axis(max);
    let plot_h = H - BOTTOM - TOP;
    let plot_w = W - LEFT - 8.0;
    grid(&mut s, top, step, &|v| axis_usd(v, step));
    let n = values.len().max(1) as f64;
    let slot = plot_w / n;
    let every = label_step(labels.iter().map(|l| l.chars().count()).max().unwrap_or(0), slot);
    for (i, ((label, v), tip)) in labels.iter().zip(values).zip(tips).enumerate() {
        let h = if top > 0.0 { v / top * plot_h } else { 0.0 };
        let x = LEFT + i as f64 * slot + slot * 0.12;
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#3b82f6\"><title>{}: {}</title></rect>",
            TOP + plot_h - h,
            (slot * 0.76).max(1.0),
            esc(label),
            esc(tip)
        );
        if i % every == 0 {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + slot * 0.38,
                H - 10.0,
                esc(label)
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// Horizontal grid lines with value labels.
fn grid(s: &mut String, top: f64, step: f64, fmt: &dyn Fn(f64) -> String) {
    let plot_h = H - BOTTOM - TOP;
    let mut v = 0.0;
    while v <= top + step * 0.001 {
        let y = TOP + plot_h - v / top * plot_h;
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eceff4\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - 8.0,
            LEFT - 6.0,
            y + 4.0,
            esc(&fmt(v))
        );
        v += step;
    }
}

/// Horizontal bars, one per label, largest first as given.
fn hbar_chart(title: &str, labels: &[String], values: &[f64], texts: &[String]) -> String {
    let row = 26.0;
    let label_w = 200.0;
    let h = row * labels.len().max(1) as f64 + 8.0;
    let max = values.iter().copied().fold(0.0, f64::max);
    let plot_w = W - label_w - 110.0;
    let mut s = format!("<svg viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"{}\">", esc(title));
    for (i, ((label, v), text)) in labels.iter().zip(values).zip(texts).enumerate() {
        let y = 4.0 + i as f64 * row;
        let w = if max > 0.0 { v / max * plot_w } else { 0.0 };
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><rect x=\"{label_w}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#8b5cf6\"><title>{}: {}</title></rect><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            label_w - 8.0,
            y + row * 0.6,
            esc(label),
            w.max(1.0),
            row * 0.7,
            esc(label),
            esc(text),
            label_w + w + 6.0,
            y + row * 0.6,
            esc(text)
        );
    }
    s.push_str("</svg>");
    s
}

/// A line over 0-100%, broken where a rate is `None` (a period with nothing to measure: no point, not a 0%).
fn rate_chart(title: &str, labels: &[String], rates: &[Option<f64>]) -> String {
    let mut s = format!("<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">", esc(title));
    grid(&mut s, 1.0, 0.25, &|v| format!("{:.0}%", v * 100.0));
    let plot_h = H - BOTTOM - TOP;
    // Room on the right for the last label, centred on its point.
    let plot_w = W - LEFT - 44.0;
    let n = rates.len();
    let x = |i: usize| LEFT + 4.0 + if n > 1 { i as f64 / (n - 1) as f64 * plot_w } else { plot_w / 2.0 };
    let y = |r: f64| TOP + plot_h - r.clamp(0.0, 1.0) * plot_h;
    // One line per run of measured periods.
    let mut run: Vec<String> = Vec::new();
    for (i, r) in rates.iter().enumerate().map(|(i, r)| (i, *r)).chain([(n, None)]) {
        match r {
            Some(r) => run.push(format!("{:.1},{:.1}", x(i), y(r))),
            None if run.len() > 1 => {
                let _ = write!(
                    s,
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"#10b981\" stroke-width=\"2\"/>",
                    run.join(" ")
                );
                run.clear();
            }
            None => run.clear(),
        }
    }
    let slot = if n > 1 { plot_w / (n - 1) as f64 } else { plot_w };
    let every = label_step(labels.iter().map(|l| l.chars().count()).max().unwrap_or(0), slot);
    for (i, (label, r)) in labels.iter().zip(rates).enumerate() {
        if let Some(r) = *r {
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"#10b981\"><title>{}: {}</title></circle>",
                x(i),
                y(r),
                esc(label),
                pct(r)
            );
        }
        if i % every == 0 {
            let _ =
                write!(s, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>", x(i), H - 10.0, esc(label));
        }
    }
    s.push_str("</svg>");
    s
}

/// An HTML table; `right` marks numeric columns.
fn table(out: &mut String, header: &[&str], right: &[bool], rows: &[Vec<String>]) {
    table_with(out, header, right, rows, None);
}

/// [`table`] whose column `raw` holds pre-built HTML (band-coloured spans); every other cell is escaped. The
/// column is the caller's to say: no marker inside a cell, which a dimension value could forge.
fn table_with(out: &mut String, header: &[&str], right: &[bool], rows: &[Vec<String>], raw: Option<usize>) {
    let class = |i: usize| if right.get(i).copied().unwrap_or(false) { " class=\"n\"" } else { "" };
    out.push_str("<table><thead><tr>");
    for (i, h) in header.iter().enumerate() {
        let _ = write!(out, "<th{}>{}</th>", class(i), esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            if raw == Some(i) {
                let _ = write!(out, "<td{}>{c}</td>", class(i));
            } else {
                let _ = write!(out, "<td{}>{}</td>", class(i), esc(c));
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

/// Chart axis labels: without the year when every label starts with the same one.
fn chart_labels(labels: Vec<String>) -> Vec<String> {
    let year = |l: &str| {
        l.get(..5).filter(|y| y.as_bytes()[..4].iter().all(u8::is_ascii_digit) && y.ends_with('-')).map(str::to_owned)
    };
    let first = labels.first().and_then(|l| year(l));
    match first {
        Some(y) if labels.iter().all(|l| l.starts_with(&y)) => labels.iter().map(|l| l[5..].to_owned()).collect(),
        _ => labels,
    }
}

pub(super) fn render(r: &Report<'_>) -> String {
    let s = &r.summary;
    let e = &r.efficiency.efficiency_scores;
    let mut b = String::new();
    let _ = write!(
        b,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{CSS}</style></head><body>",
        esc(r.title())
    );
    let _ = write!(
        b,
        "<h1>{}</h1><p class=\"muted\">{} to {} ({}) · {} from {} · generated {}</p>",
        esc(r.title()),
        esc(&r.datetime(s.period_start)),
        esc(&r.datetime(s.period_end)),
        esc(&r.time_zone),
        count(r.source.calls, "call"),
        count(r.source.files, "file"),
        esc(&r.datetime(r.generated_at))
    );
    b.push_str("<div class=\"cards\">");
    let mut card = |label: &str, value: String, class: &str| {
        let _ = write!(
            b,
            "<div class=\"card\"><span class=\"muted\">{}</span><b class=\"{class}\">{}</b></div>",
            esc(label),
            esc(&value)
        );
    };
    card("Cost", share_cost(s.cost_usd, s.metered_calls, s.unpriced.calls), "");
    card("Calls", int(s.calls), "");
    card("Tokens", int(s.tokens.total), "");
    let (score, hit_rate) = r.score_and_hit_rate();
    card("Efficiency score", score, if s.metered_calls > 0 { e.band.name() } else { "" });
    card("Cache hit rate", hit_rate, "");
    card("Cache savings", priced_usd(s.cache_savings_usd, s.unpriced.calls, Some(s.metered_calls)), "");
    if let Some(f) = &r.forecast {
        let projected =
            r.projected_month_total().map_or_else(|| "-".to_owned(), |v| priced_usd(v, f.unpriced_calls, None));
        card(&format!("Projected total of {}", super::projected_month(f)), projected, "");
    }
    if s.unpriced.calls > 0 {
        card("Unpriced calls", format!("{} ({})", int(s.unpriced.calls), s.unpriced.models.join(", ")), "");
    }
    b.push_str("</div>");

    let labels = chart_labels(r.periods.groups.iter().map(|g| r.period_label(&g.key)).collect());
    let costs: Vec<f64> = r.periods.groups.iter().map(|g| g.cost_usd).collect();
    // A period's tooltip says when its bar leaves calls out, as its table row does.
    let tips: Vec<String> =
        r.periods.groups.iter().map(|g| share_cost(g.cost_usd, g.calls, g.unpriced_calls)).collect();
    let _ = write!(b, "<h2>Cost by {}</h2>", r.period_grain());
    b.push_str(&bar_chart("Cost over time", &labels, &costs, &tips));

    let models: Vec<_> = s.by_model.iter().take(10).collect();
    b.push_str("<h2>Cost by model</h2>");
    b.push_str(&hbar_chart(
        "Cost by model",
        &models.iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
        &models.iter().map(|m| m.cost_usd).collect::<Vec<_>>(),
        &models.iter().map(|m| crate::render::model_cost(m)).collect::<Vec<_>>(),
    ));

    let cache_labels: Vec<String> = r
        .cache
        .time_series
        .iter()
        .map(|p| {
            crate::commands::row_label(
                &p.timestamp.to_rfc3339(),
                Some(tokenmeter::ledger::GroupBy::Time(r.cache.grain)),
                r.tz(),
            )
        })
        .collect();
    let rates: Vec<Option<f64>> = r.cache.time_series.iter().map(|p| r.point_hit_rate(p)).collect();
    let _ = write!(b, "<h2>Cache hit rate by {}</h2>", r.cache.grain.name());
    b.push_str(&rate_chart("Cache hit rate", &cache_labels, &rates));

    if let Some(t) = r.suggestions_table() {
        b.push_str("<h2>Suggestions</h2>");
        table(&mut b, t.headers, t.right, &t.rows);
    }

    b.push_str("<h2>By model</h2>");
    let t = r.models_table(if r.executive() { 5 } else { usize::MAX });
    table(&mut b, t.headers, t.right, &t.rows);

    if let Some((line, t)) = r.forecast_table() {
        let _ = write!(b, "<h2>Forecast</h2><p>{}</p>", esc(&line));
        if !r.executive() {
            table(&mut b, t.headers, t.right, &t.rows);
        }
    }

    if !r.executive() {
        let _ = write!(b, "<h2>By {}</h2>", r.period_grain());
        let t = r.periods_table();
        table(&mut b, t.headers, t.right, &t.rows);

        b.push_str("<h2>Efficiency</h2>");
        if let Some(line) = r.nothing_to_score() {
            let _ = write!(b, "<p>{}</p>", esc(line));
        }
        if s.metered_calls > 0 {
            let rows: Vec<Vec<String>> = e
                .components
                .iter()
                .map(|c| {
                    let (value, weight, points) =
                        (format!("{:.2}", c.value), format!("{:.0}", c.weight), format!("{:.1}", c.points));
                    vec![c.name.clone(), value, weight, points]
                })
                .collect();
            table(&mut b, &["Component", "Value", "Weight", "Points"], &[false, true, true, true], &rows);
        }
        let rows: Vec<Vec<String>> = r
            .efficiency
            .breakdowns
            .iter()
            .map(|x| {
                vec![
                    x.category.clone(),
                    int(x.calls),
                    int(x.total_tokens),
                    crate::render::share_cost(x.cost_usd, x.calls, x.unpriced_calls),
                    r.row_score(x).map_or_else(
                        || "-".to_owned(),
                        |(score, band)| format!("<span class=\"{}\">{score:.1}</span>", band.name()),
                    ),
                ]
            })
            .collect();
        let (headers, right) = (["Project", "Calls", "Tokens", "Cost", "Score"], [false, true, true, true, true]);
        table_with(&mut b, &headers, &right, &rows, Some(4));
        if r.efficiency.breakdowns_omitted > 0 {
            let _ = write!(b, "<p>{}</p>", esc(&r.omitted_projects()));
        }

        b.push_str("<h2>Prompt cache</h2>");
        let t = r.cache_table();
        table(&mut b, t.headers, t.right, &t.rows);
    }
    if let Some(t) = &r.projects {
        b.push_str("<h2>Projects and sessions</h2>");
        let t = super::tree_table(t, &["Project", "Session", "Calls", "Tokens", "Cost", "Share"]);
        table(&mut b, t.headers, t.right, &t.rows);
    }
    if let Some(t) = &r.agents {
        b.push_str("<h2>Agents and models</h2>");
        let t = super::tree_table(t, &["Agent", "Model", "Calls", "Tokens", "Cost", "Share"]);
        table(&mut b, t.headers, t.right, &t.rows);
    }
    if let Some((zone, t)) = r.time_of_day_table() {
        let _ = write!(b, "<h2>Time of day ({})</h2>", esc(&zone));
        table(&mut b, t.headers, t.right, &t.rows);
    }
    if let Some(t) = r.anomalies_table() {
        b.push_str("<h2>Anomalies</h2>");
        if t.rows.is_empty() {
            let _ = write!(b, "<p>{}</p>", esc(super::NO_ANOMALIES));
        } else {
            table(&mut b, t.headers, t.right, &t.rows);
        }
    }
    b.push_str("<p class=\"muted\">Made by tokenmeter from the library's reports; costs are exact to the pico-dollar before rounding for display.</p></body></html>\n");
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_is_nice() {
        assert_eq!(axis(0.0), (1.0, 0.25));
        assert_eq!(axis(9.3), (10.0, 2.5));
        assert_eq!(axis(173.0), (200.0, 50.0));
        assert_eq!(esc("<a&\"b\">"), "&lt;a&amp;&quot;b&quot;&gt;");
    }

    #[test]
    fn charts_are_svg() {
        let labels = vec!["a".to_owned(), "b<".to_owned()];
        let tips = vec![crate::render::usd(1.0), format!("{} + unpriced", crate::render::usd(2.0))];
        let svg = bar_chart("t", &labels, &[1.0, 2.0], &tips);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>") && svg.contains("b&lt;"));
        assert!(svg.contains("<title>b&lt;: $2.00 + unpriced</title>"), "{svg}");
        assert!(rate_chart("r", &labels, &[Some(0.5), Some(0.9)]).contains("<polyline"));
        // A period with nothing to measure is a gap: no point, and the line stops on either side of it.
        let labels: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).into();
        let svg = rate_chart("r", &labels, &[Some(0.5), None, Some(0.2), Some(0.9), None]);
        assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 1, "{svg}");
        assert!(!svg.contains("<title>b:") && !svg.contains("<title>e:"), "{svg}");
        assert!(hbar_chart("h", &labels, &[0.0, 0.0], &labels).contains("<rect"));
        assert_eq!(chart_labels(vec!["2025-10-01".into(), "2025-10-02".into()]), ["10-01", "10-02"]);
        assert_eq!(chart_labels(vec!["2025-12".into(), "2026-01".into()]), ["2025-12", "2026-01"]);
        assert_eq!(axis_usd(0.3, 0.1), "$0.30");
        assert_eq!(axis_usd(0.0075, 0.0025), "$0.0075");
        assert_eq!(axis_usd(150.0, 50.0), "$150");
    }
}
