//! The report's main table as CSV: headline figures (executive), rows per period (summary), or rows per
//! project and session (detailed). Written with the `csv` crate (RFC 4180 quoting); names, which may come
//! from outside the application, are guarded against spreadsheet formulas (see [`text`]).

use super::Report;

/// A name as a CSV cell: one starting with `=`, `+`, `@`, a tab or a carriage return would be run as a
/// formula by spreadsheet programs (a session id `=HYPERLINK(…)` from a request header, say), so it gets a
/// leading `'`, which they show as text (OWASP's advice for CSV injection). So does one starting with `-`,
/// unless it is path-like (letters, digits, `-`, `_`, `.`, `/` only): Claude Code names every project that
/// way (`-home-dev-app`), and such a name cannot call anything.
fn text(name: &str) -> String {
    let path_like = || name.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    let formula = name.starts_with(['=', '+', '@', '\t', '\r']) || (name.starts_with('-') && !path_like());
    if formula { format!("'{name}") } else { name.to_owned() }
}

fn line(out: &mut csv::Writer<Vec<u8>>, fields: &[String]) {
    // Writing to memory fails only on an I/O error, which a `Vec` never has.
    let _ = out.write_record(fields);
}

pub(super) fn render(r: &Report<'_>) -> String {
    let mut out = csv::WriterBuilder::new().from_writer(Vec::new());
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
                        text(&p.name),
                        text(&c.name),
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
    let bytes = out.into_inner().unwrap_or_default();
    // Every field is a `String`: the bytes are UTF-8.
    String::from_utf8(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{line, text};

    fn csv(fields: &[&str]) -> String {
        let mut out = csv::Writer::from_writer(Vec::new());
        line(&mut out, &fields.iter().map(|f| f.to_string()).collect::<Vec<_>>());
        String::from_utf8(out.into_inner().unwrap()).unwrap()
    }

    #[test]
    fn quotes_when_needed() {
        assert_eq!(csv(&["a", "a,b", "say \"hi\"", "two\nlines"]), "a,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\"\n");
    }

    #[test]
    fn names_that_spreadsheets_would_run_are_text() {
        for name in ["=HYPERLINK(\"http://x\")", "+1", "-2+3", "-cmd|' /C calc'!A0", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(text(name), format!("'{name}"));
        }
        for name in ["sess-1", "proj=a", "a+b", "(none)", "-home-dev-app", "-Users-me-my_app.v2"] {
            assert_eq!(text(name), name);
        }
    }
}
