//! CSV output, shared by `report --format csv` and the terminal commands' `--format csv`: one table, written with
//! the `csv` crate (RFC 4180 quoting), plain decimals without float noise, instants in the report's time zone, and
//! names guarded against spreadsheet formulas (see [`text`]).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A CSV table being written: a header, then rows of as many fields.
pub(crate) struct Sheet {
    out: csv::Writer<Vec<u8>>,
    columns: usize,
}

impl Sheet {
    /// A table with these column names.
    pub(crate) fn new<S: AsRef<str>>(header: &[S]) -> Self {
        // Flexible: a row of another count (a bug, caught below in tests) is still written whole, where the strict
        // writer wrote its fields, then refused its line's end.
        let out = csv::WriterBuilder::new().flexible(true).from_writer(Vec::new());
        let mut sheet = Sheet { out, columns: header.len() };
        sheet.row(header.iter().map(|h| h.as_ref().to_owned()));
        sheet
    }

    /// One row, of as many fields as the header has: a row of another count is a bug, caught here in tests.
    pub(crate) fn row(&mut self, fields: impl IntoIterator<Item = String>) {
        let fields: Vec<String> = fields.into_iter().collect();
        debug_assert_eq!(
            fields.len(),
            self.columns,
            "a CSV row of {} fields under {} columns",
            fields.len(),
            self.columns
        );
        // Writing to memory fails only on an I/O error, which a `Vec` never has.
        let _ = self.out.write_record(fields);
    }

    /// The table's text.
    pub(crate) fn finish(self) -> String {
        let bytes = self.out.into_inner().unwrap_or_default();
        // Every field is a `String`: the bytes are UTF-8.
        String::from_utf8(bytes).unwrap_or_default()
    }
}

/// A record's tokens by kind, as the columns of the CSVs that list calls or blocks of them.
pub(crate) const TOKEN_COLUMNS: [&str; 6] =
    ["input", "output", "cache_read", "cache_write_5m", "cache_write_1h", "reasoning"];

/// The cells of [`TOKEN_COLUMNS`].
pub(crate) fn token_cells(t: &tokenmeter::TokenUsage) -> [String; 6] {
    [t.input, t.output, t.cache_read, t.cache_write_5m, t.cache_write_1h, t.reasoning].map(|n| n.to_string())
}

/// A name as a CSV cell: one starting with `=`, `+`, `-`, `@`, a tab or a carriage return would be read as a
/// formula by spreadsheet programs (a session id `=HYPERLINK(…)` from a request header, say; and Claude Code's
/// project names, `-home-dev-app`, which Excel shows as `#NAME?`), so it gets a leading `'` (OWASP's advice for
/// CSV injection). So does one that starts with `'` itself, so that a reader can always strip one.
pub(crate) fn text(name: &str) -> String {
    if name.starts_with(['=', '+', '-', '@', '\t', '\r', '\'']) { format!("'{name}") } else { name.to_owned() }
}

/// An optional name: empty when absent.
pub(crate) fn opt_text(name: Option<&str>) -> String {
    name.map(text).unwrap_or_default()
}

/// Dollars as a plain decimal, to the pico-dollar the ledger counts in and no further (`1.1986194`, where
/// `f64`'s own rendering gives `1.1986194000000001`), and to the 15 significant digits an `f64` holds (at $10,000
/// and more, 12 decimals asked for digits it does not have: `12346.604880000001`).
pub(crate) fn usd(v: f64) -> String {
    let int_digits = if v.abs() >= 1.0 { v.abs().log10().floor() as usize + 1 } else { 1 };
    let decimals = 12.min(15usize.saturating_sub(int_digits));
    let s = format!("{v:.decimals$}");
    // Trailing zeros of the decimals only (at 15 digits and more there are none, nor a point).
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    if s == "-0" { "0".to_owned() } else { s.to_owned() }
}

/// An optional amount in dollars: empty when absent.
pub(crate) fn opt_usd(v: Option<f64>) -> String {
    v.map(usd).unwrap_or_default()
}

/// An exact amount as a plain decimal in dollars: every pico-dollar, however large (`123456789.000000000001`).
pub(crate) fn money(m: tokenmeter::Money) -> String {
    // `Money`'s own exact rendering (`$0.037803`, `$12.00`), without the sign and the padding to cents.
    let shown = m.to_string();
    let decimal = shown.trim_start_matches('$');
    decimal.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A ratio or score as a plain decimal to 6 places, trailing zeros dropped (`0.3`, where `f64`'s own rendering
/// of a computed value can give `0.30000000000000004`); empty for a value that is not a number.
pub(crate) fn ratio(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".to_owned() } else { s.to_owned() }
}

/// An optional ratio: empty when absent.
pub(crate) fn opt_ratio(v: Option<f64>) -> String {
    v.map(ratio).unwrap_or_default()
}

/// An instant in the report's time zone (`2025-09-30T00:00:00+02:00` for a Paris day), as the rows are cut.
pub(crate) fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).to_rfc3339()
}

/// A row key that is an RFC 3339 instant, in the report's time zone; any other key as it is.
pub(crate) fn local_key(key: &str, tz: Tz) -> String {
    DateTime::parse_from_rfc3339(key).map_or_else(|_| key.to_owned(), |t| local(t.to_utc(), tz))
}

#[cfg(test)]
mod tests {
    use super::{Sheet, money, ratio, text, usd};

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

    #[test]
    fn exact_amounts_keep_every_pico_dollar() {
        let m = tokenmeter::Money::from_picos;
        assert_eq!(money(m(0)), "0");
        assert_eq!(money(m(1)), "0.000000000001");
        assert_eq!(money(m(37_803_000_000)), "0.037803");
        assert_eq!(money(m(12_000_000_000_000)), "12");
        // Past an f64's 15 digits.
        assert_eq!(money(m(123_456_789_000_000_000_001)), "123456789.000000000001");
    }

    #[test]
    fn quotes_when_needed() {
        let mut s = Sheet::new(&["a", "b", "c", "d"]);
        s.row(["a", "a,b", "say \"hi\"", "two\nlines"].map(String::from));
        assert_eq!(s.finish(), "a,b,c,d\na,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\"\n");
    }

    #[test]
    #[should_panic(expected = "a CSV row of 2 fields under 3 columns")]
    fn a_row_of_another_count_is_a_bug() {
        Sheet::new(&["a", "b", "c"]).row(["1", "2"].map(String::from));
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
