//! The TOML price-override file.
//!
//! ```toml
//! [models."claude-sonnet-4-5"]
//! input = 3.0                 # USD per million tokens; integers and floats both accepted
//! output = 15.0
//! cache_write_5m = 3.75       # optional: defaults to 1.25x input
//! cache_write_1h = 6.0        # optional: defaults to 2x input
//! cache_read = 0.3            # optional: defaults to 0.1x input
//! fast_multiplier = 6         # optional: whole number ≥ 1
//! min_cacheable_tokens = 1024 # optional: the shortest prompt prefix the model caches
//!
//! [models."claude-sonnet-4-5".long_context]   # optional; same rate keys and defaults
//! input = 6.0
//! output = 22.5
//! threshold = 200000          # optional: prompt tokens above which these apply (default: the model's, else 200,000)
//! ```
//!
//! A top-level `web_search_per_1k = 10`, before the first table, sets the fee of web searches, in USD per
//! 1,000.
//!
//! Prices are parsed exactly from their decimal text (never through a float), so they must be whole
//! micro-USD per million tokens (at most 6 decimals). Every error names the origin, the 1-based line and the
//! dotted field path.

use std::collections::HashMap;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeInteger, DeTable, DeValue};

use super::rates::{default_cache_read, default_cache_write_5m};
use super::{ModelPrice, Money, PriceBookError, Rates, normalize_model_id};
use crate::toml_spans::{entries, line_col, path_key};

/// The five rate keys, in file order of the docs.
const RATE_KEYS: [&str; 5] = ["input", "output", "cache_write_5m", "cache_write_1h", "cache_read"];

/// Where the text came from, for error messages.
struct Source<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Source<'_> {
    fn line(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }

    fn field_error(&self, span: &Range<usize>, field: &str, message: impl Into<String>) -> PriceBookError {
        PriceBookError::Field {
            origin: self.origin.to_owned(),
            line: self.line(span),
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// A short description of a value as written, for "found …".
    fn describe(&self, value: &Spanned<DeValue<'_>>) -> String {
        let raw = self.text.get(value.span()).map(str::trim).filter(|s| !s.is_empty() && !s.contains('\n')).map(|s| {
            if s.chars().count() > 40 { format!("{}…", s.chars().take(40).collect::<String>()) } else { s.to_owned() }
        });
        match (value.get_ref(), raw) {
            (DeValue::Table(_), _) => "a table".to_owned(),
            (DeValue::Array(_), _) => "an array".to_owned(),
            (DeValue::String(s), _) => format!("string {s:?}"),
            (v, Some(raw)) => match v {
                DeValue::Integer(_) | DeValue::Float(_) => raw,
                other => format!("{} {raw}", other.type_str()),
            },
            (v, None) => v.type_str().to_owned(),
        }
    }
}

/// Why a number could not be a rate.
enum NumberError {
    NotNumber,
    Negative,
    NotFinite,
    TooPrecise,
    TooLarge,
}

/// Decimal text (`3`, `0.3`, `-1.5e2`, `inf`) to micro-USD, exactly.
fn decimal_to_micros(text: &str) -> Result<u64, NumberError> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if body == "inf" || body == "nan" {
        return Err(NumberError::NotFinite);
    }
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, ""),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty() || !all_digits(int_part) || !all_digits(frac_part) {
        return Err(NumberError::NotNumber);
    }
    let exponent: i64 = if exponent.is_empty() {
        0
    } else {
        let (neg, digits) = match exponent.as_bytes().first() {
            Some(b'-') => (true, &exponent[1..]),
            Some(b'+') => (false, &exponent[1..]),
            _ => (false, exponent),
        };
        if digits.is_empty() || !all_digits(digits) {
            return Err(NumberError::NotNumber);
        }
        // Anything beyond ±10^6 is far outside the representable range either way.
        let magnitude: i64 = digits.parse().unwrap_or(i64::MAX).min(1_000_000);
        if neg { -magnitude } else { magnitude }
    };

    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    if negative {
        return Err(NumberError::Negative);
    }
    let significant = digits.trim_end_matches('0');
    let trailing_zeros = (digits.len() - significant.len()) as i64;
    // value = significant × 10^shift micro-USD
    let shift = exponent - frac_part.len() as i64 + 6 + trailing_zeros;
    if shift < 0 {
        return Err(NumberError::TooPrecise);
    }
    if significant.len() as i64 + shift > 20 {
        return Err(NumberError::TooLarge);
    }
    let base: u128 = significant.parse().map_err(|_| NumberError::TooLarge)?;
    let value = 10u128.checked_pow(shift as u32).and_then(|p| base.checked_mul(p)).ok_or(NumberError::TooLarge)?;
    u64::try_from(value).map_err(|_| NumberError::TooLarge)
}

/// A TOML integer as an `i128`.
fn integer(value: &DeInteger<'_>) -> Option<i128> {
    i128::from_str_radix(value.as_str(), value.radix()).ok()
}

/// A whole number of at least 1 that fits `T`; else an error saying `expected`.
fn whole_number<T: TryFrom<i128>>(
    src: &Source<'_>,
    value: &Spanned<DeValue<'_>>,
    field: &str,
    expected: &str,
) -> Result<T, PriceBookError> {
    let n = match value.get_ref() {
        DeValue::Integer(i) => integer(i).filter(|n| *n >= 1).and_then(|n| T::try_from(n).ok()),
        _ => None,
    };
    n.ok_or_else(|| {
        src.field_error(&value.span(), field, format!("expected {expected}, found {}", src.describe(value)))
    })
}

/// A TOML number (integer or float) of dollars as micro-USD, exactly.
fn usd_micros(value: &DeValue<'_>) -> Result<u64, NumberError> {
    match value {
        DeValue::Integer(i) => match integer(i) {
            Some(n) if n < 0 => Err(NumberError::Negative),
            Some(n) => u64::try_from(n).ok().and_then(|n| n.checked_mul(1_000_000)).ok_or(NumberError::TooLarge),
            None => Err(NumberError::TooLarge),
        },
        DeValue::Float(f) => decimal_to_micros(f.as_str()),
        _ => Err(NumberError::NotNumber),
    }
}

/// A field of dollars per `unit` (a TOML integer or float) as micro-USD per `unit`, exactly; `example`, if any,
/// is shown after the expected form in the error.
fn usd_field(
    src: &Source<'_>,
    value: &Spanned<DeValue<'_>>,
    field: &str,
    unit: &str,
    example: &str,
) -> Result<u64, PriceBookError> {
    usd_micros(value.get_ref()).map_err(|e| {
        let found = src.describe(value);
        let message = match e {
            NumberError::NotNumber | NumberError::Negative | NumberError::NotFinite => {
                format!("expected a non-negative number of USD per {unit}{example}, found {found}")
            }
            NumberError::TooPrecise => format!("{found} is more precise than 0.000001 USD per {unit}"),
            NumberError::TooLarge => format!("{found} is too large (at most 18446744073709.551615 USD per {unit})"),
        };
        src.field_error(&value.span(), field, message)
    })
}

/// A rate value in micro-USD per million tokens.
fn rate_value(src: &Source<'_>, value: &Spanned<DeValue<'_>>, field: &str) -> Result<u64, PriceBookError> {
    usd_field(src, value, field, "million tokens", "")
}

/// A rates table's rates, `long_context` value, fast multiplier, minimum cacheable prompt and (a `long_context`
/// table's) threshold.
type TableParts<'t, 'i> = (Rates, Option<&'t Spanned<DeValue<'i>>>, Option<u32>, Option<u64>, Option<u64>);

/// Parses the rate keys of one table (`models.<id>` or `models.<id>.long_context`); `nested` tables allow
/// only rate keys and `threshold`. Returns the rates, the `long_context` value, the fast multiplier, the minimum
/// cacheable prompt and the threshold.
fn rates_table<'t, 'i>(
    src: &Source<'_>,
    table: &'t DeTable<'i>,
    table_span: &Range<usize>,
    path: &str,
    nested: bool,
) -> Result<TableParts<'t, 'i>, PriceBookError> {
    let mut values: [Option<u64>; 5] = [None; 5];
    let mut long_context = None;
    let mut fast_multiplier = None;
    let mut min_cacheable = None;
    let mut threshold = None;
    for (key, value) in entries(table) {
        let name: &str = key.get_ref();
        let field = format!("{path}.{}", path_key(name));
        if let Some(i) = RATE_KEYS.iter().position(|k| *k == name) {
            values[i] = Some(rate_value(src, value, &field)?);
        } else if name == "long_context" && !nested {
            if !matches!(value.get_ref(), DeValue::Table(_)) {
                return Err(src.field_error(
                    &value.span(),
                    &field,
                    format!("expected a table of long-context rates, found {}", src.describe(value)),
                ));
            }
            long_context = Some(value);
        } else if name == "fast_multiplier" && !nested {
            fast_multiplier =
                Some(whole_number(src, value, &field, "a whole-number multiplier of at least 1 (e.g. 6)")?);
        } else if name == "min_cacheable_tokens" && !nested {
            min_cacheable =
                Some(whole_number(src, value, &field, "a whole number of tokens of at least 1 (e.g. 4096)")?);
        } else if name == "threshold" && nested {
            threshold = Some(whole_number(
                src,
                value,
                &field,
                "a whole number of prompt tokens of at least 1 above which these rates apply (e.g. 200000)",
            )?);
        } else {
            let allowed = if nested {
                "input, output, cache_write_5m, cache_write_1h, cache_read, threshold"
            } else {
                "input, output, cache_write_5m, cache_write_1h, cache_read, fast_multiplier, min_cacheable_tokens, \
                 long_context"
            };
            return Err(src.field_error(&key.span(), &field, format!("unknown key; expected one of {allowed}")));
        }
    }
    let [input, output, w5, w1, read] = values;
    let missing: Vec<&str> = [("`input`", input.is_none()), ("`output`", output.is_none())]
        .into_iter()
        .filter(|(_, is_missing)| *is_missing)
        .map(|(key, _)| key)
        .collect();
    let (Some(input), Some(output)) = (input, output) else {
        return Err(src.field_error(
            table_span,
            path,
            format!("missing {} (USD per million tokens)", missing.join(" and ")),
        ));
    };
    let rates = Rates {
        input,
        output,
        cache_write_5m: w5.unwrap_or(default_cache_write_5m(input)),
        cache_write_1h: w1.unwrap_or(input.saturating_mul(2)),
        cache_read: read.unwrap_or(default_cache_read(input)),
    };
    Ok((rates, long_context, fast_multiplier, min_cacheable, threshold))
}

/// A parsed price file.
pub(super) struct PriceFile {
    /// `(model id as written, price)` pairs, in file order.
    pub(super) models: Vec<(String, ModelPrice)>,
    /// The top-level `web_search_per_1k`, as the fee of one search.
    pub(super) web_search_fee: Option<Money>,
}

/// `web_search_per_1k`: USD per 1,000 searches, exactly, as the fee of one search.
fn web_search_fee(src: &Source<'_>, value: &Spanned<DeValue<'_>>) -> Result<Money, PriceBookError> {
    // $x per 1,000 searches is x × 10^6 micro-USD per 1,000, and x × 10^12 / 1,000 = x × 10^9 pico-USD per
    // search: micro-USD per 1,000 times 1,000.
    let micros = usd_field(src, value, "web_search_per_1k", "1,000 web searches", " (e.g. 10)")?;
    Ok(Money::from_picos(u128::from(micros) * 1_000))
}

/// Parses a whole price file. Nothing is returned unless the whole file is valid.
pub(super) fn parse_price_file(text: &str, origin: &str) -> Result<PriceFile, PriceBookError> {
    let src = Source { text, origin };
    let root = DeTable::parse(text).map_err(|e| {
        let (line, column) = line_col(text, e.span().map_or(0, |s| s.start));
        PriceBookError::Syntax { origin: origin.to_owned(), line, column, message: e.message().to_owned() }
    })?;

    let mut prices = Vec::new();
    let mut fee = None;
    let mut seen: HashMap<String, (String, usize)> = HashMap::new();
    for (key, value) in entries(root.get_ref()) {
        let name: &str = key.get_ref();
        if name == "web_search_per_1k" {
            fee = Some(web_search_fee(&src, value)?);
            continue;
        }
        if name != "models" {
            return Err(src.field_error(
                &key.span(),
                &path_key(name),
                "unknown key; a price file holds `[models.\"<model id>\"]` tables and `web_search_per_1k`",
            ));
        }
        let DeValue::Table(models) = value.get_ref() else {
            return Err(src.field_error(
                &value.span(),
                "models",
                format!("expected a table of models, found {}", src.describe(value)),
            ));
        };
        for (model_key, model_value) in entries(models) {
            let id: &str = model_key.get_ref();
            let path = format!("models.{}", path_key(id));
            let canonical = normalize_model_id(id);
            if canonical.is_empty() {
                return Err(src.field_error(&model_key.span(), &path, "empty model id"));
            }
            let DeValue::Table(table) = model_value.get_ref() else {
                return Err(src.field_error(
                    &model_value.span(),
                    &path,
                    format!("expected a table with at least `input` and `output`, found {}", src.describe(model_value)),
                ));
            };
            let line = src.line(&model_value.span());
            if let Some((other, other_line)) = seen.get(&canonical) {
                return Err(src.field_error(
                    &model_value.span(),
                    &path,
                    format!("same model as `{other}` on line {other_line} (both are `{canonical}`)"),
                ));
            }
            seen.insert(canonical, (path.clone(), line));

            let (standard, long, fast, min_cacheable, _) = rates_table(&src, table, &model_value.span(), &path, false)?;
            let mut price = ModelPrice::new(standard);
            price.fast_multiplier = fast;
            price.min_cacheable_tokens = min_cacheable;
            if let Some(long) = long
                && let DeValue::Table(long_table) = long.get_ref()
            {
                let long_path = format!("{path}.long_context");
                let (rates, .., threshold) = rates_table(&src, long_table, &long.span(), &long_path, true)?;
                price.long_context = Some(rates);
                price.long_context_over = threshold;
            }
            prices.push((id.to_owned(), price));
        }
    }
    Ok(PriceFile { models: prices, web_search_fee: fee })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(text: &str) -> Option<u64> {
        decimal_to_micros(text).ok()
    }

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(micros("0.3"), Some(300_000));
        assert_eq!(micros("3.75"), Some(3_750_000));
        assert_eq!(micros("0.000001"), Some(1));
        assert_eq!(micros("22.500000000"), Some(22_500_000));
        assert_eq!(micros("1.5e1"), Some(15_000_000));
        assert_eq!(micros("125E-3"), Some(125_000));
        assert_eq!(micros("+0.01"), Some(10_000));
        assert_eq!(micros("-0.0"), Some(0));
        assert_eq!(micros("0e99999999999999999999"), Some(0));
        assert_eq!(micros("18446744073709.551615"), Some(u64::MAX));
        assert!(matches!(decimal_to_micros("18446744073709.551616"), Err(NumberError::TooLarge)));
        assert!(matches!(decimal_to_micros("1e99999999999999999999"), Err(NumberError::TooLarge)));
        assert!(matches!(decimal_to_micros("0.0000001"), Err(NumberError::TooPrecise)));
        assert!(matches!(decimal_to_micros("1e-99999999999"), Err(NumberError::TooPrecise)));
        assert!(matches!(decimal_to_micros("-0.5"), Err(NumberError::Negative)));
        assert!(matches!(decimal_to_micros("+inf"), Err(NumberError::NotFinite)));
        assert!(matches!(decimal_to_micros("nan"), Err(NumberError::NotFinite)));
        assert!(matches!(decimal_to_micros(""), Err(NumberError::NotNumber)));
        assert!(matches!(decimal_to_micros(".5"), Err(NumberError::NotNumber)));
    }

    #[test]
    fn line_and_column() {
        let text = "a\nbé = 1\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 2), (2, 1));
        assert_eq!(line_col(text, 5), (2, 3));
        assert_eq!(line_col(text, 1_000), (3, 1));
    }
}
