//! The report as Markdown.

use std::fmt::Write as _;

use super::Report;
use crate::render::{count, int, pct, priced_usd, share_cost};

/// A table cell's text as Markdown shows it literally: names come from the data (a model `<synthetic>`, an agent
/// `<b>x</b>`, a project `p*1*`), so the punctuation Markdown reads (and `|`, which ends a cell) is escaped
/// with a backslash, and a line break becomes a space. An underscore inside a word is left alone: it is
/// never emphasis.
fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let word = |j: Option<usize>| j.and_then(|j| chars.get(j)).is_some_and(|c| c.is_alphanumeric());
        match c {
            // Inside a word (`cache_control`) an underscore is never emphasis: left as written.
            '_' if word(i.checked_sub(1)) && word(Some(i + 1)) => out.push(c),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A Markdown table; `right` marks right-aligned columns.
fn table(out: &mut String, header: &[&str], right: &[bool], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | "));
    let _ = writeln!(
        out,
        "|{}|",
        header
            .iter()
            .enumerate()
            .map(|(i, _)| if right.get(i).copied().unwrap_or(false) { "---:" } else { "---" })
            .collect::<Vec<_>>()
            .join("|")
    );
    for r in rows {
        let _ = writeln!(out, "| {} |", r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | "));
    }
    out.push('\n');
}

pub(super) fn render(r: &Report<'_>) -> String {
    let s = &r.summary;
    let e = &r.efficiency.efficiency_scores;
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", r.title());
    let _ = writeln!(
        out,
        "{} to {} ({}), {} read from {}. Generated {}.\n",
        r.datetime(s.period_start),
        r.datetime(s.period_end),
        r.time_zone,
        count(r.source.calls, "call"),
        count(r.source.files, "file"),
        r.datetime(r.generated_at)
    );

    let (score, hit_rate) = r.score_and_hit_rate();
    let mut head = vec![
        vec!["Cost".to_owned(), share_cost(s.cost_usd, s.metered_calls, s.unpriced.calls)],
        vec!["Calls".to_owned(), int(s.calls)],
        vec!["Tokens".to_owned(), int(s.tokens.total)],
        vec!["Efficiency score".to_owned(), score],
        vec!["Cache hit rate".to_owned(), hit_rate],
        vec!["Cache savings".to_owned(), priced_usd(s.cache_savings_usd, s.unpriced.calls, Some(s.metered_calls))],
    ];
    if let Some(f) = &r.forecast {
        let projected =
            r.projected_month_total().map_or_else(|| "-".to_owned(), |v| priced_usd(v, f.unpriced_calls, None));
        head.push(vec![format!("Projected total of {}", super::projected_month(f)), projected]);
    }
    if s.unpriced.calls > 0 {
        head.push(vec![
            "Unpriced calls".to_owned(),
            format!("{} ({})", int(s.unpriced.calls), s.unpriced.models.join(", ")),
        ]);
    }
    table(&mut out, &["Figure", "Value"], &[false, true], &head);

    if let Some(t) = r.suggestions_table() {
        let _ = writeln!(out, "## Suggestions\n");
        table(&mut out, t.headers, t.right, &t.rows);
    }

    let _ = writeln!(out, "## By model\n");
    let t = r.models_table(if r.executive() { 5 } else { usize::MAX });
    table(&mut out, t.headers, t.right, &t.rows);

    if let Some((line, t)) = r.forecast_table() {
        let _ = writeln!(out, "## Forecast\n\n{line}\n");
        if !r.executive() {
            table(&mut out, t.headers, t.right, &t.rows);
        }
    }
    if r.executive() {
        return out;
    }

    let _ = writeln!(out, "## By {}\n", r.period_grain());
    let t = r.periods_table();
    table(&mut out, t.headers, t.right, &t.rows);

    let _ = writeln!(out, "## Efficiency\n");
    if let Some(line) = r.nothing_to_score() {
        let _ = writeln!(out, "{line}\n");
    }
    let rows: Vec<Vec<String>> = e
        .components
        .iter()
        .map(|c| {
            vec![c.name.clone(), format!("{:.2}", c.value), format!("{:.0}", c.weight), format!("{:.1}", c.points)]
        })
        .collect();
    if s.metered_calls > 0 {
        table(&mut out, &["Component", "Value", "Weight", "Points"], &[false, true, true, true], &rows);
    }
    let rows: Vec<Vec<String>> = r
        .efficiency
        .breakdowns
        .iter()
        .map(|b| {
            vec![
                b.category.clone(),
                int(b.calls),
                int(b.total_tokens),
                crate::render::share_cost(b.cost_usd, b.calls, b.unpriced_calls),
                r.row_score(b).map_or_else(|| "-".to_owned(), |(score, band)| format!("{score:.1} ({band})")),
            ]
        })
        .collect();
    table(&mut out, &["Project", "Calls", "Tokens", "Cost", "Score"], &[false, true, true, true, true], &rows);
    if r.efficiency.breakdowns_omitted > 0 {
        let _ = writeln!(out, "{}\n", r.omitted_projects());
    }

    let _ = writeln!(out, "## Prompt cache\n");
    let t = r.cache_table();
    table(&mut out, t.headers, t.right, &t.rows);

    if let Some(t) = &r.projects {
        let _ = writeln!(out, "## Projects and sessions\n");
        let mut rows = Vec::new();
        for p in &t.nodes {
            rows.push(vec![
                p.name.clone(),
                String::new(),
                int(p.calls),
                int(p.tokens),
                crate::render::share_cost(p.cost_usd, p.calls, p.unpriced_calls),
                pct(p.cost_share),
            ]);
            for c in &p.children {
                rows.push(vec![
                    String::new(),
                    c.name.clone(),
                    int(c.calls),
                    int(c.tokens),
                    crate::render::share_cost(c.cost_usd, c.calls, c.unpriced_calls),
                    pct(c.cost_share),
                ]);
            }
        }
        table(
            &mut out,
            &["Project", "Session", "Calls", "Tokens", "Cost", "Share"],
            &[false, false, true, true, true, true],
            &rows,
        );
    }
    if let Some(t) = &r.agents {
        let _ = writeln!(out, "## Agents and models\n");
        let t = super::tree_table(t, &["Agent", "Model", "Calls", "Tokens", "Cost", "Share"]);
        table(&mut out, t.headers, t.right, &t.rows);
    }
    if let Some((zone, t)) = r.time_of_day_table() {
        let _ = writeln!(out, "## Time of day ({zone})\n");
        table(&mut out, t.headers, t.right, &t.rows);
    }
    if let Some(t) = r.anomalies_table() {
        let _ = writeln!(out, "## Anomalies\n");
        if t.rows.is_empty() {
            let _ = writeln!(out, "{}\n", super::NO_ANOMALIES);
        } else {
            table(&mut out, t.headers, t.right, &t.rows);
        }
    }
    out
}
