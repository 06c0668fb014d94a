//! The report's main table as CSV: headline figures (executive), rows per period (summary), or rows per
//! project and session (detailed).

use super::Report;

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

fn line(out: &mut String, fields: &[String]) {
    out.push_str(&fields.iter().map(|f| field(f)).collect::<Vec<_>>().join(","));
    out.push('\n');
}

pub(super) fn render(r: &Report<'_>) -> String {
    let mut out = String::new();
    let s = &r.summary;
    if r.executive() {
        line(&mut out, &["metric".into(), "value".into()]);
        let e = &r.efficiency.efficiency_scores;
        let scored = |v: String| if s.metered_calls > 0 { v } else { String::new() };
        let mut rows: Vec<(&str, String)> = vec![
            ("period_start", s.period_start.to_rfc3339()),
            ("period_end", s.period_end.to_rfc3339()),
            ("calls", s.calls.to_string()),
            ("tokens", s.tokens.total.to_string()),
            ("cost_usd", s.cost_usd.to_string()),
            ("cache_savings_usd", s.cache_savings_usd.to_string()),
            // Empty in a window without metered calls: nothing to score.
            ("efficiency_score", scored(e.overall.to_string())),
            ("efficiency_band", scored(e.band.to_string())),
            ("cache_hit_rate", scored(e.cache_hit_rate.to_string())),
            ("unpriced_calls", s.unpriced.calls.to_string()),
        ];
        if let Some(f) = &r.forecast {
            rows.push(("projected_month_total_usd", f.projected_month_total_usd.to_string()));
        }
        for (k, v) in rows {
            line(&mut out, &[k.into(), v]);
        }
    } else if let Some(tree) = r.projects.as_ref().filter(|_| r.detailed()) {
        line(
            &mut out,
            &["project", "session", "calls", "tokens", "cost_usd", "cost_share", "unpriced_calls"].map(String::from),
        );
        for p in &tree.nodes {
            for c in &p.children {
                line(
                    &mut out,
                    &[
                        p.name.clone(),
                        c.name.clone(),
                        c.calls.to_string(),
                        c.tokens.to_string(),
                        c.cost_usd.to_string(),
                        c.cost_share.to_string(),
                        c.unpriced_calls.to_string(),
                    ],
                );
            }
        }
    } else {
        line(
            &mut out,
            &[
                "period_start",
                "calls",
                "input",
                "output",
                "cache_read",
                "cache_write_5m",
                "cache_write_1h",
                "total_tokens",
                "cost_usd",
                "unpriced_calls",
            ]
            .map(String::from),
        );
        for g in &r.periods.groups {
            let t = &g.tokens;
            line(
                &mut out,
                &[
                    g.key.clone(),
                    g.calls.to_string(),
                    t.input.to_string(),
                    t.output.to_string(),
                    t.cache_read.to_string(),
                    t.cache_write_5m.to_string(),
                    t.cache_write_1h.to_string(),
                    t.total.to_string(),
                    g.cost_usd.to_string(),
                    g.unpriced_calls.to_string(),
                ],
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn quotes_when_needed() {
        assert_eq!(field("a"), "a");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
