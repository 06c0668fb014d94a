//! The report's main table as CSV: headline figures (executive), rows per period (summary), or rows per
//! project and session (detailed). Written with the `csv` crate (RFC 4180 quoting); names, which may come
//! from outside the application, are guarded against spreadsheet formulas (see [`text`]).

use super::Report;

/// A name as a CSV cell: one starting with `=`, `+`, `-`, `@`, a tab or a carriage return would be read as a
/// formula by spreadsheet programs (a session id `=HYPERLINK(…)` from a request header, say; and Claude Code's
/// project names, `-home-dev-app`, which Excel shows as `#NAME?`), so it gets a leading `'` (OWASP's advice for
/// CSV injection). So does one that starts with `'` itself, so that a reader can always strip one.
fn text(name: &str) -> String {
    if name.starts_with(['=', '+', '-', '@', '\t', '\r', '\'']) { format!("'{name}") } else { name.to_owned() }
}

/// Dollars as a plain decimal, to the pico-dollar the ledger counts in and no further (`1.1986194`, where
/// `f64`'s own rendering gives `1.1986194000000001`), and to the 15 significant digits an `f64` holds (at $10,000
/// and more, 12 decimals asked for digits it does not have: `12346.604880000001`).
fn usd(v: f64) -> String {
    let int_digits = if v.abs() >= 1.0 { v.abs().log10().floor() as usize + 1 } else { 1 };
    let decimals = 12.min(15usize.saturating_sub(int_digits));
    let s = format!("{v:.decimals$}");
    // Trailing zeros of the decimals only (at 15 digits and more there are none, nor a point).
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    if s == "-0" { "0".to_owned() } else { s.to_owned() }
}

/// A ratio or score as a plain decimal to 6 places, trailing zeros dropped (`0.3`, where `f64`'s own rendering
/// of a computed value can give `0.30000000000000004`).
fn ratio(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".to_owned() } else { s.to_owned() }
}

/// An instant in the report's time zone (`2025-09-30T00:00:00+02:00` for a Paris day), as the rows are cut.
fn local(t: chrono::DateTime<chrono::Utc>, tz: chrono_tz::Tz) -> String {
    t.with_timezone(&tz).to_rfc3339()
}

/// A row key that is an RFC 3339 instant, in the report's time zone; any other key as it is.
fn local_key(key: &str, tz: chrono_tz::Tz) -> String {
    chrono::DateTime::parse_from_rfc3339(key).map_or_else(|_| key.to_owned(), |t| local(t.to_utc(), tz))
}

fn line(out: &mut csv::Writer<Vec<u8>>, fields: &[String]) {
    // Writing to memory fails only on an I/O error, which a `Vec` never has.
    let _ = out.write_record(fields);
}

pub(super) fn render(r: &Report<'_>) -> String {
    let mut out = csv::WriterBuilder::new().from_writer(Vec::new());
    let s = &r.summary;
    let tz = r.tz();
    if r.executive() {
        line(&mut out, &["metric".into(), "value".into()]);
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
                        usd(c.cost_usd),
                        ratio(c.cost_share),
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
                "period_end",
                "partial",
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
        let window = &r.periods.window;
        let grain = r.grain();
        for g in &r.periods.groups {
            let t = &g.tokens;
            // Where the period ends, and whether the window holds only part of it (the first period of a
            // `--since` in its middle; the period in progress): its figures are not the whole period's.
            let start = chrono::DateTime::parse_from_rfc3339(&g.key).ok().map(|t| t.to_utc());
            let end = start.zip(grain).map(|(start, grain)| grain.end_of(start, tz));
            let partial = start.zip(end).map(|(start, end)| start < window.from || end > window.to);
            line(
                &mut out,
                &[
                    local_key(&g.key, tz),
                    end.map(|e| local(e, tz)).unwrap_or_default(),
                    partial.map(|p| p.to_string()).unwrap_or_default(),
                    g.calls.to_string(),
                    t.input.to_string(),
                    t.output.to_string(),
                    t.cache_read.to_string(),
                    t.cache_write_5m.to_string(),
                    t.cache_write_1h.to_string(),
                    t.total.to_string(),
                    usd(g.cost_usd),
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
    use super::{line, ratio, text, usd};

    #[test]
    fn dollars_without_float_noise() {
        assert_eq!(usd(1.1986194000000001), "1.1986194");
        assert_eq!(usd(0.037803), "0.037803");
        assert_eq!(usd(0.0), "0");
        assert_eq!(usd(12.0), "12");
        assert_eq!(usd(0.000000000001), "0.000000000001");
        // No digits past what an f64 holds: 12 decimals of 12346.60488 gave 12346.604880000001.
        assert_eq!(usd(12_346.604_88), "12346.60488");
        assert_eq!(usd(12_366.779_860_5), "12366.7798605");
        assert_eq!(usd(-12_346.604_88), "-12346.60488");
        assert_eq!(usd(1e17), "100000000000000000");
    }

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
    fn ratios_have_no_float_noise() {
        assert_eq!(ratio(0.1 + 0.2), "0.3");
        assert_eq!(ratio(1.0), "1");
        assert_eq!(ratio(0.0), "0");
        assert_eq!(ratio(-1e-9), "0");
        assert_eq!(ratio(85.04999999), "85.05");
        assert_eq!(ratio(f64::NAN), "");
    }

    #[test]
    fn names_that_spreadsheets_would_run_are_text() {
        for name in [
            "=HYPERLINK(\"http://x\")",
            "+1",
            "-2+3",
            "-cmd|' /C calc'!A0",
            "@SUM(A1)",
            "\tx",
            "\rx",
            "-home-dev-app",
            "'quoted",
        ] {
            assert_eq!(text(name), format!("'{name}"));
        }
        for name in ["sess-1", "proj=a", "a+b", "(none)", "home-dev-app"] {
            assert_eq!(text(name), name);
        }
    }
}
