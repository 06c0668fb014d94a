//! The report's main table as CSV: headline figures (executive), rows per period (summary), or rows per
//! project and session (detailed). Cells are written as every CSV of the command line's is (`crate::sheet`).

use super::Report;
use crate::sheet::{Sheet, local, ratio, text, usd};

pub(super) fn render(r: &Report<'_>) -> String {
    let s = &r.summary;
    let tz = r.tz();
    if r.executive() {
        let mut out = Sheet::new(&["metric", "value"]);
        let e = &r.efficiency.efficiency_scores;
        let scored = |v: String| if s.metered_calls > 0 { v } else { String::new() };
        let mut rows: Vec<(&str, String)> = vec![
            ("period_start", local(s.period_start, tz)),
            ("period_end", local(s.period_end, tz)),
            ("calls", s.calls.to_string()),
            ("tokens", s.tokens.total.to_string()),
            ("cost_usd", usd(s.cost_usd)),
            ("cache_savings_usd", usd(s.cache_savings_usd)),
            // Empty in a window without metered calls: nothing to score.
            ("efficiency_score", scored(ratio(e.overall))),
            ("efficiency_band", scored(e.band.to_string())),
            ("cache_hit_rate", scored(ratio(e.cache_hit_rate))),
            ("unpriced_calls", s.unpriced.calls.to_string()),
        ];
        if let Some(f) = &r.forecast {
            // The month of now, whatever the window: named beside the figure.
            rows.push(("projected_month", super::projected_month(f)));
            // Empty with nothing to forecast from. A projection, not a sum of prices: to a hundredth of a cent (its
            // float's 12 decimals were noise).
            let projected = r.projected_month_total().map(|v| usd((v * 1e4).round() / 1e4));
            rows.push(("projected_month_total_usd", projected.unwrap_or_default()));
        }
        for (k, v) in rows {
            out.row([k.into(), v]);
        }
        out.finish()
    } else if let Some(tree) = r.projects.as_ref().filter(|_| r.detailed()) {
        let mut out =
            Sheet::new(&["project", "session", "calls", "tokens", "cost_usd", "cost_share", "unpriced_calls"]);
        for p in &tree.nodes {
            for c in &p.children {
                out.row([
                    text(&p.name),
                    text(&c.name),
                    c.calls.to_string(),
                    c.tokens.to_string(),
                    usd(c.cost_usd),
                    ratio(c.cost_share),
                    c.unpriced_calls.to_string(),
                ]);
            }
        }
        out.finish()
    } else {
        // The summary's rows, as `summary --format csv` writes them.
        crate::commands::summary_csv(&r.periods, tz)
    }
}
