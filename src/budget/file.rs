//! The TOML budget file (format in the [module docs](super)).

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{Budget, BudgetAction, BudgetError, BudgetLimit, BudgetPeriod, BudgetScope, MAX_THRESHOLDS, Tz};
use crate::pricing::Money;
use crate::toml_spans::{entries, line_col, path_key};

/// Keys a budget table may hold.
const BUDGET_KEYS: &str =
    "limit_usd, limit_tokens, period, time_zone, week_start, scope, thresholds, action, max_members";

/// Reads budgets from a TOML file; errors name the file, the line and the field. A budget without
/// `time_zone` follows UTC.
pub fn load_budgets_file(path: impl AsRef<Path>) -> Result<Vec<Budget>, BudgetError> {
    load_budgets_file_with_time_zone(path, Tz::UTC)
}

/// [`load_budgets_file`], with `default_time_zone` for the budgets whose table has no `time_zone` (a
/// command line's `--tz`, say); a budget's own `time_zone` still wins.
pub fn load_budgets_file_with_time_zone(
    path: impl AsRef<Path>,
    default_time_zone: Tz,
) -> Result<Vec<Budget>, BudgetError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| BudgetError::Io { path: path.to_owned(), source })?;
    parse_budgets_toml_with_time_zone(&text, &path.display().to_string(), default_time_zone)
}

/// Parses budgets from TOML text (format in the [module docs](super)); `origin` names the text in errors
/// (usually its path). Budgets come back in file order; nothing is returned unless the whole text is valid.
///
/// ```
/// let budgets = tokenmeter::budget::parse_budgets_toml(
///     r#"
///     [budgets.daily-tokens]
///     limit_tokens = 2_000_000
///     period = "day"
///     scope = { user = "alice" }
///     "#,
///     "budgets.toml",
/// )
/// .unwrap();
/// assert_eq!(budgets[0].name(), "daily-tokens");
///
/// let err = tokenmeter::budget::parse_budgets_toml("[budgets.x]\nlimit_usd = 5\nperiod = \"fortnight\"\n", "budgets.toml")
///     .unwrap_err();
/// assert!(err.to_string().starts_with("budgets.toml:3: field `budgets.x.period`"));
/// ```
///
/// A budget without `time_zone` follows UTC; [`parse_budgets_toml_with_time_zone`] sets another default.
pub fn parse_budgets_toml(text: &str, origin: &str) -> Result<Vec<Budget>, BudgetError> {
    parse_budgets_toml_with_time_zone(text, origin, Tz::UTC)
}

/// [`parse_budgets_toml`], with `default_time_zone` for the budgets whose table has no `time_zone`; a budget's
/// own `time_zone` still wins.
///
/// ```
/// use tokenmeter::budget::{Tz, parse_budgets_toml_with_time_zone};
///
/// let text = "[budgets.a]\nlimit_usd = 5\n\n[budgets.b]\nlimit_usd = 5\ntime_zone = \"UTC\"\n";
/// let budgets = parse_budgets_toml_with_time_zone(text, "budgets.toml", Tz::Europe__Paris).unwrap();
/// assert_eq!(budgets[0].time_zone(), Tz::Europe__Paris);
/// assert_eq!(budgets[1].time_zone(), Tz::UTC);
/// ```
pub fn parse_budgets_toml_with_time_zone(
    text: &str,
    origin: &str,
    default_time_zone: Tz,
) -> Result<Vec<Budget>, BudgetError> {
    let src = Source { text, origin };
    let root = DeTable::parse(text).map_err(|e| {
        let (line, column) = line_col(text, e.span().map_or(0, |s| s.start));
        BudgetError::Syntax { origin: origin.to_owned(), line, column, message: e.message().trim().to_owned() }
    })?;
    let mut budgets = Vec::new();
    for (key, value) in entries(root.get_ref()) {
        let name: &str = key.get_ref();
        if name != "budgets" {
            return Err(src.error(
                &key.span(),
                &path_key(name),
                "unknown key; a budget file holds only `[budgets.<name>]` tables",
            ));
        }
        let DeValue::Table(table) = value.get_ref() else {
            return Err(src.error(
                &value.span(),
                "budgets",
                format!("expected a table of budgets, found {}", src.describe(value)),
            ));
        };
        for (name_key, body) in entries(table) {
            let name: &str = name_key.get_ref();
            let path = format!("budgets.{}", path_key(name));
            if name.trim().is_empty() {
                return Err(src.error(&name_key.span(), &path, "empty budget name"));
            }
            let DeValue::Table(fields) = body.get_ref() else {
                return Err(src.error(
                    &body.span(),
                    &path,
                    format!(
                        "expected a table with at least `limit_usd` or `limit_tokens`, found {}",
                        src.describe(body)
                    ),
                ));
            };
            budgets.push(budget(&src, name, fields, &body.span(), &path, default_time_zone)?);
        }
    }
    Ok(budgets)
}

/// One `[budgets.<name>]` table.
fn budget(
    src: &Source<'_>,
    name: &str,
    table: &DeTable<'_>,
    span: &Range<usize>,
    path: &str,
    default_time_zone: Tz,
) -> Result<Budget, BudgetError> {
    let mut limit: Option<(BudgetLimit, &str)> = None;
    let mut period = BudgetPeriod::Month;
    let mut time_zone = default_time_zone;
    let mut week_start: Option<(chrono::Weekday, Range<usize>, String)> = None;
    // Where `time_zone` was written: a rolling window has no midnight for it to move.
    let mut time_zone_at: Option<(Range<usize>, String)> = None;
    let mut scope = BudgetScope::Everything;
    let mut scope_line = None;
    let mut thresholds: Option<Vec<u32>> = None;
    let mut action = BudgetAction::Warn;
    let mut max_members: Option<(usize, Range<usize>, String)> = None;
    for (key, value) in entries(table) {
        let k: &str = key.get_ref();
        let field = format!("{path}.{}", path_key(k));
        match k {
            "limit_usd" | "limit_tokens" => {
                if let Some((_, other)) = limit {
                    return Err(src.error(
                        &key.span(),
                        &field,
                        format!("a budget has one limit, and `{other}` is already set; keep one of the two"),
                    ));
                }
                let parsed = if k == "limit_usd" {
                    BudgetLimit::Usd(usd(src, value, &field)?)
                } else {
                    BudgetLimit::Tokens(whole_number(src, value, &field, "a whole number of tokens")?)
                };
                limit = Some((parsed, if k == "limit_usd" { "limit_usd" } else { "limit_tokens" }));
            }
            "period" => period = parse_period(src, value, &field)?,
            "time_zone" => {
                time_zone_at = Some((key.span(), field.clone()));
                let text = string(src, value, &field, "an IANA time zone name such as \"Europe/Berlin\"")?;
                time_zone = text.parse().map_err(|_| {
                    src.error(
                        &value.span(),
                        &field,
                        format!(
                            "unknown time zone {text:?}; expected an IANA name such as \"America/New_York\" or \"UTC\""
                        ),
                    )
                })?;
            }
            "week_start" => {
                let text = string(src, value, &field, "a day of the week such as \"sunday\"")?;
                let day = text.parse::<chrono::Weekday>().map_err(|_| {
                    src.error(
                        &value.span(),
                        &field,
                        format!("expected a day of the week such as \"sunday\", found {text:?}"),
                    )
                })?;
                week_start = Some((day, key.span(), field));
            }
            "scope" => {
                scope = parse_scope(src, value, &field)?;
                scope_line = Some(line_col(src.text, value.span().start).0);
            }
            "thresholds" => thresholds = Some(parse_thresholds(src, value, &field)?),
            "action" => {
                action = match string(src, value, &field, "\"warn\" or \"block\"")? {
                    "warn" => BudgetAction::Warn,
                    "block" => BudgetAction::Block,
                    other => {
                        return Err(src.error(
                            &value.span(),
                            &field,
                            format!("expected \"warn\" or \"block\", found {other:?}"),
                        ));
                    }
                }
            }
            "max_members" => {
                let n = whole_number(src, value, &field, "a whole number of values, at least 1")?;
                if n == 0 {
                    return Err(src.error(
                        &value.span(),
                        &field,
                        "expected a whole number of values, at least 1, found 0",
                    ));
                }
                max_members = Some((usize::try_from(n).unwrap_or(usize::MAX), key.span(), field));
            }
            _ => return Err(src.error(&key.span(), &field, format!("unknown key; expected one of {BUDGET_KEYS}"))),
        }
    }
    let Some((limit, _)) = limit else {
        return Err(src.error(
            span,
            path,
            "missing `limit_usd` (USD per period) or `limit_tokens` (tokens per period)",
        ));
    };
    let mut budget =
        Budget::new(name, limit).with_period(period).with_time_zone(time_zone).with_scope(scope).with_action(action);
    if let Some((day, span, field)) = week_start {
        if period != BudgetPeriod::Week {
            return Err(src.error(
                &span,
                &field,
                format!("`week_start` applies to period = \"week\", not \"{period}\""),
            ));
        }
        budget = budget.with_week_start(day);
    }
    if let (Some((span, field)), BudgetPeriod::Rolling(_)) = (time_zone_at, period) {
        return Err(src.error(
            &span,
            &field,
            format!(
                "`time_zone` applies to calendar periods (day, week, month), not \"{period}\": a rolling window has \
                 no midnight to move"
            ),
        ));
    }
    if let Some(t) = thresholds {
        budget = budget.with_thresholds(t);
    }
    if let Some((n, span, field)) = max_members {
        if !matches!(budget.scope(), BudgetScope::Each { .. }) {
            return Err(src.error(
                &span,
                &field,
                format!(
                    "`max_members` applies to a budget of each value of a dimension, such as scope = {{ user = \"*\" }}, \
                     not to scope \"{}\"",
                    budget.scope()
                ),
            ));
        }
        budget = budget.with_max_members(n);
    }
    if let Some(line) = scope_line {
        budget = budget.with_scope_written_at(format!("{}:{line}: field `{path}.scope`", src.origin));
    }
    Ok(budget)
}

fn parse_period(src: &Source<'_>, value: &Spanned<DeValue<'_>>, field: &str) -> Result<BudgetPeriod, BudgetError> {
    let text = string(src, value, field, super::PERIOD_SYNTAX)?;
    text.parse().map_err(|e: BudgetError| src.error(&value.span(), field, e.to_string()))
}

/// `24h`, `7d`, `1h30m`, `90s`, `2w`: at least one second, at most [`MAX_ROLLING`](crate::budget::MAX_ROLLING).
pub(super) fn parse_duration(text: &str) -> Option<Duration> {
    // Numbers with a unit each, largest unit first, each unit once (`1d2h`, `1d 2h`, `90 m`): `1 0m` (10m), `30m1h`
    // and `1h1h` were read as some window, a typo turned into another window than the one meant.
    let mut total: u64 = 0;
    let mut last_unit = u64::MAX;
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut digits = String::new();
        while let Some(c) = chars.next_if(char::is_ascii_digit) {
            digits.push(c);
        }
        let n: u64 = digits.parse().ok()?;
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let unit = match chars.next()? {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        if unit >= last_unit {
            return None;
        }
        last_unit = unit;
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    (total > 0 && total <= crate::budget::MAX_ROLLING.as_secs()).then(|| Duration::from_secs(total))
}

fn parse_scope(src: &Source<'_>, value: &Spanned<DeValue<'_>>, field: &str) -> Result<BudgetScope, BudgetError> {
    const EXPECTED: &str = "\"everything\" or a table with one dimension, e.g. { tenant = \"acme\" } (user, tenant, project, agent, model, …; \"*\" for each value on its own)";
    match value.get_ref() {
        DeValue::String(s) if s.as_ref() == "everything" => Ok(BudgetScope::Everything),
        DeValue::Table(t) => {
            let mut entries = entries(t);
            if entries.len() != 1 {
                return Err(src.error(
                    &value.span(),
                    field,
                    format!("expected exactly one dimension in the scope table, found {}", entries.len()),
                ));
            }
            let (key, v) = entries.remove(0);
            let name: &str = key.get_ref();
            let inner = format!("{field}.{}", path_key(name));
            let text = string(src, v, &inner, "a string value")?;
            if name.is_empty() || text.is_empty() {
                return Err(src.error(&key.span(), &inner, "the dimension name and its value must not be empty"));
            }
            Ok(BudgetScope::dimension(name, text))
        }
        _ => Err(src.error(&value.span(), field, format!("expected {EXPECTED}, found {}", src.describe(value)))),
    }
}

fn parse_thresholds(src: &Source<'_>, value: &Spanned<DeValue<'_>>, field: &str) -> Result<Vec<u32>, BudgetError> {
    let DeValue::Array(items) = value.get_ref() else {
        return Err(src.error(
            &value.span(),
            field,
            format!("expected an array of percentages such as [50, 90, 100], found {}", src.describe(value)),
        ));
    };
    if items.len() > MAX_THRESHOLDS {
        return Err(src.error(&value.span(), field, format!("at most {MAX_THRESHOLDS} thresholds")));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let n = whole_number(src, item, &format!("{field}[{i}]"), "a whole percentage from 1 to 10000")?;
            u32::try_from(n).ok().filter(|p| (1..=10_000).contains(p)).ok_or_else(|| {
                src.error(
                    &item.span(),
                    &format!("{field}[{i}]"),
                    format!("expected a whole percentage from 1 to 10000, found {n}"),
                )
            })
        })
        .collect()
}

/// A USD amount, exactly from its decimal text: a whole number of micro-USD at most.
fn usd(src: &Source<'_>, value: &Spanned<DeValue<'_>>, field: &str) -> Result<Money, BudgetError> {
    const EXPECTED: &str = "a non-negative number of US dollars with at most 6 decimals (e.g. 250 or 99.95)";
    let text = match value.get_ref() {
        DeValue::Integer(i) if i.radix() == 10 => i.as_str(),
        DeValue::Float(f) => f.as_str(),
        _ => {
            return Err(src.error(&value.span(), field, format!("expected {EXPECTED}, found {}", src.describe(value))));
        }
    };
    if let Some(micros) = decimal_micros(text) {
        return Ok(Money::from_picos(u128::from(micros) * 1_000_000));
    }
    // Say why the number was refused: "non-negative, at most 6 decimals" is no help for 1e300 or 1e3.
    let found = src.describe(value);
    let amount = text.replace('_', "").parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0);
    let message = match amount {
        Some(v) if v > MAX_USD_MICROS as f64 / 1e6 => {
            format!("too large: a budget holds at most {} US dollars (1e12), found {found}", MAX_USD_MICROS / 1_000_000)
        }
        Some(_) if text.contains(['e', 'E']) => {
            format!("expected {EXPECTED}, written without an exponent (1000, not 1e3), found {found}")
        }
        _ => format!("expected {EXPECTED}, found {found}"),
    };
    Err(src.error(&value.span(), field, message))
}

/// The largest USD amount [`decimal_micros`] reads, in micro-USD: what [`BudgetLimit::usd`] takes, $1e12.
const MAX_USD_MICROS: u64 = 1_000_000_000_000 * 1_000_000;

/// Plain decimal text (`250`, `99.95`, `1_000.5`) as micro-units; `None` when negative, exponent form, too
/// precise or too large.
fn decimal_micros(text: &str) -> Option<u64> {
    let text: String = text.chars().filter(|c| *c != '_').collect();
    let text = text.strip_prefix('+').unwrap_or(&text);
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 6 {
        return None;
    }
    let whole: u64 = int.parse().ok()?;
    let frac_micros: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse().ok()? };
    whole.checked_mul(1_000_000)?.checked_add(frac_micros).filter(|micros| *micros <= MAX_USD_MICROS)
}

fn whole_number(
    src: &Source<'_>,
    value: &Spanned<DeValue<'_>>,
    field: &str,
    expected: &str,
) -> Result<u64, BudgetError> {
    let n = match value.get_ref() {
        DeValue::Integer(i) => i128::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok(),
        _ => None,
    };
    n.and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| src.error(&value.span(), field, format!("expected {expected}, found {}", src.describe(value))))
}

fn string<'v>(
    src: &Source<'_>,
    value: &'v Spanned<DeValue<'_>>,
    field: &str,
    expected: &str,
) -> Result<&'v str, BudgetError> {
    match value.get_ref() {
        DeValue::String(s) => Ok(s.as_ref()),
        _ => Err(src.error(&value.span(), field, format!("expected {expected}, found {}", src.describe(value)))),
    }
}

/// Where the text came from, for error messages.
struct Source<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Source<'_> {
    fn error(&self, span: &Range<usize>, field: &str, message: impl Into<String>) -> BudgetError {
        BudgetError::Field {
            origin: self.origin.to_owned(),
            line: line_col(self.text, span.start).0,
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// A short description of a value as written, for "found …".
    fn describe(&self, value: &Spanned<DeValue<'_>>) -> String {
        match value.get_ref() {
            DeValue::Table(_) => "a table".to_owned(),
            DeValue::Array(_) => "an array".to_owned(),
            DeValue::String(s) => format!("string {s:?}"),
            other => match self.text.get(value.span()).map(str::trim).filter(|s| !s.is_empty() && !s.contains('\n')) {
                Some(raw) if raw.chars().count() <= 40 => format!("{} {raw}", other.type_str()),
                _ => other.type_str().to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("2w"), Some(Duration::from_secs(1_209_600)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("12"), None);
        assert_eq!(parse_duration("3y"), None);
        assert_eq!(parse_duration(""), None);
        // Spaces between a number and its unit or between parts; not inside a number, and each unit once,
        // largest first: a typo was read as another window.
        assert_eq!(parse_duration("1d 2h"), Some(Duration::from_secs(93_600)));
        assert_eq!(parse_duration("90 m"), Some(Duration::from_secs(5_400)));
        for typo in ["1 0m", "1 h 3 0m", "30m1h", "1h1h", "h", "1h 2"] {
            assert_eq!(parse_duration(typo), None, "{typo}");
        }
        assert!("rolling24h".parse::<crate::budget::BudgetPeriod>().is_err());
        assert!("rolling 24h".parse::<crate::budget::BudgetPeriod>().is_ok());
    }

    #[test]
    fn dollars_exactly() {
        assert_eq!(decimal_micros("99.95"), Some(99_950_000));
        assert_eq!(decimal_micros("1_000"), Some(1_000_000_000));
        assert_eq!(decimal_micros("0.000001"), Some(1));
        assert_eq!(decimal_micros("0.0000001"), None);
        assert_eq!(decimal_micros("-1"), None);
        assert_eq!(decimal_micros("1e3"), None);
        assert_eq!(decimal_micros("inf"), None);
        assert_eq!(decimal_micros("1000000000000"), Some(MAX_USD_MICROS));
        assert_eq!(decimal_micros("1000000000000.000001"), None);
        assert_eq!(decimal_micros("18446744073709.551616"), None);
    }
}
