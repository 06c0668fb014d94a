//! Budgets from a TOML file; a malformed file is an error naming the file, the line and the field.

use std::io::Write;
use std::time::Duration;

use tokenmeter::TokenMeter;
use tokenmeter::budget::{
    Budget, BudgetAction, BudgetError, BudgetLimit, BudgetPeriod, BudgetScope, Tz, parse_budgets_toml,
};

const GOOD: &str = r#"
# Budgets for the support bot.
[budgets.org-monthly]
limit_usd = 500
period = "month"
time_zone = "America/New_York"
action = "block"

[budgets.alice-daily]
limit_tokens = 2_000_000
period = "day"
scope = { user = "alice" }
thresholds = [80, 100]

[budgets."opus hourly"]
limit_usd = 12.345678
period = "rolling 1h30m"
scope = { model = "claude-opus-4-5-20251101" }

[budgets.weekly]
limit_usd = 50
period = "week"
week_start = "Sunday"
"#;

#[test]
fn a_good_file_loads_every_field() {
    let budgets = parse_budgets_toml(GOOD, "budgets.toml").unwrap();
    let ny: Tz = "America/New_York".parse().unwrap();
    assert_eq!(
        budgets,
        vec![
            Budget::new("org-monthly", BudgetLimit::usd(500.0).unwrap())
                .with_time_zone(ny)
                .with_action(BudgetAction::Block),
            Budget::new("alice-daily", BudgetLimit::tokens(2_000_000))
                .with_period(BudgetPeriod::Day)
                .with_scope(BudgetScope::user("alice"))
                .with_thresholds([80, 100]),
            Budget::new("opus hourly", BudgetLimit::usd(12.345678).unwrap())
                .with_period(BudgetPeriod::Rolling(Duration::from_secs(5_400)))
                .with_scope(BudgetScope::model("claude-opus-4-5")),
            Budget::new("weekly", BudgetLimit::usd(50.0).unwrap())
                .with_period(BudgetPeriod::Week)
                .with_week_start(chrono::Weekday::Sun),
        ]
    );
    assert_eq!(budgets[3].week_start(), chrono::Weekday::Sun);
    assert_eq!(budgets[0].week_start(), chrono::Weekday::Mon);
}

#[test]
fn a_scope_of_each_value_and_its_cap() {
    let text = "[budgets.per-user]\nlimit_usd = 5\nscope = { \"user.id\" = \"*\" }\nmax_members = 300\n";
    let budgets = parse_budgets_toml(text, "budgets.toml").unwrap();
    assert_eq!(budgets[0].scope(), &BudgetScope::each_user());
    assert_eq!(budgets[0].max_members(), 300);
    field_error(
        "[budgets.b]\nlimit_usd = 5\nscope = { user = \"alice\" }\nmax_members = 3\n",
        4,
        "budgets.b.max_members",
        "`max_members` applies to a budget of each value of a dimension, such as scope = { user = \"*\" }, not to \
         scope \"user=alice\"",
    );
    field_error(
        "[budgets.b]\nlimit_usd = 5\nscope = { user = \"*\" }\nmax_members = 0\n",
        4,
        "budgets.b.max_members",
        "at least 1",
    );
}

#[test]
fn a_scope_set_in_code_is_not_the_files() {
    let budgets = parse_budgets_toml(GOOD, "budgets.toml").unwrap();
    let alice = &budgets[1];
    assert_eq!(alice.scope_written_at(), Some("budgets.toml:12: field `budgets.alice-daily.scope`"));
    assert_eq!(budgets[0].scope_written_at(), None, "no scope in the file");
    assert_eq!(alice.clone().with_scope(BudgetScope::user("bob")).scope_written_at(), None);
}

#[test]
fn the_builder_reads_a_budget_file() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(GOOD.as_bytes()).unwrap();
    let meter = TokenMeter::builder().with_budgets_file(file.path()).unwrap().build();
    let names: Vec<String> = meter.budget_status().iter().map(|s| s.budget.to_string()).collect();
    assert_eq!(names, ["org-monthly", "alice-daily", "opus hourly", "weekly"]);
    assert_eq!(meter.budget_status()[2].period.to_string(), "rolling 1h30m");
}

/// Parses `text` and expects a field error at `line` on `field`, whose message contains `says`.
fn field_error(text: &str, line: usize, field: &str, says: &str) {
    let err = parse_budgets_toml(text, "conf/budgets.toml").unwrap_err();
    let shown = err.to_string();
    match err {
        BudgetError::Field { origin, line: l, field: f, message } => {
            assert_eq!((origin.as_str(), l, f.as_str()), ("conf/budgets.toml", line, field), "{shown}");
            assert!(message.contains(says), "{message:?} should say {says:?}");
            assert!(shown.starts_with(&format!("conf/budgets.toml:{line}: field `{field}`: ")), "{shown}");
        }
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn malformed_files_name_file_line_and_field() {
    field_error(
        "[budgets.a]\nlimit_usd = 5\nperiod = \"fortnight\"\n",
        3,
        "budgets.a.period",
        "\"rolling <duration>\"",
    );
    // A rolling window past a year is a typo (calendar periods are for long spans), not a window to 2262.
    field_error("[budgets.a]\nlimit_usd = 5\nperiod = \"rolling 99999w\"\n", 3, "budgets.a.period", "from 1s to 366d");
    field_error("[budgets.a]\nlimit_usd = -5\n", 2, "budgets.a.limit_usd", "non-negative number of US dollars");
    field_error("[budgets.a]\nlimit_usd = 0.0000001\n", 2, "budgets.a.limit_usd", "at most 6 decimals");
    // Too large is said as such, with the maximum (it was "non-negative … at most 6 decimals").
    field_error(
        "[budgets.a]\nlimit_usd = 1e300\n",
        2,
        "budgets.a.limit_usd",
        "at most 1000000000000 US dollars (1e12)",
    );
    field_error("[budgets.a]\nlimit_usd = 20_000_000_000_000\n", 2, "budgets.a.limit_usd", "too large");
    // The most `BudgetLimit::usd` takes too (the file took up to ~$1.8e13).
    field_error("[budgets.a]\nlimit_usd = 1_000_000_000_000.01\n", 2, "budgets.a.limit_usd", "too large");
    assert!(parse_budgets_toml("[budgets.a]\nlimit_usd = 1_000_000_000_000\n", "b.toml").is_ok());
    // A time zone moves a calendar period's midnight; a rolling window has none (it was ignored).
    field_error(
        "[budgets.a]\nlimit_usd = 5\nperiod = \"rolling 24h\"\ntime_zone = \"Europe/Berlin\"\n",
        4,
        "budgets.a.time_zone",
        "`time_zone` applies to calendar periods (day, week, month), not \"rolling 1d\"",
    );
    field_error("[budgets.a]\nlimit_usd = 1e3\n", 2, "budgets.a.limit_usd", "without an exponent");
    field_error("[budgets.a]\nlimit_usd = \"5\"\n", 2, "budgets.a.limit_usd", "found string \"5\"");
    field_error("[budgets.a]\nlimit_usd = 5\nlimit_tokens = 9\n", 3, "budgets.a.limit_tokens", "one limit");
    field_error("\n\n[budgets.a]\nperiod = \"day\"\n", 3, "budgets.a", "missing `limit_usd`");
    field_error(
        "[budgets.a]\nlimit_usd = 5\ntime_zone = \"Mars/Olympus\"\n",
        3,
        "budgets.a.time_zone",
        "unknown time zone",
    );
    field_error("[budgets.a]\nlimit_usd = 5\nthresholds = [50, 0]\n", 3, "budgets.a.thresholds[1]", "from 1 to 10000");
    field_error("[budgets.a]\nlimit_usd = 5\nthresholds = 50\n", 3, "budgets.a.thresholds", "array of percentages");
    field_error("[budgets.a]\nlimit_usd = 5\naction = \"deny\"\n", 3, "budgets.a.action", "\"warn\" or \"block\"");
    field_error(
        "[budgets.a]\nlimit_usd = 5\nscope = { user = \"a\", tenant = \"b\" }\n",
        3,
        "budgets.a.scope",
        "exactly one",
    );
    field_error("[budgets.a]\nlimit_usd = 5\nscope = { user = 7 }\n", 3, "budgets.a.scope.user", "a string value");
    field_error("[budgets.a]\nlimit_usd = 5\nscope = \"all\"\n", 3, "budgets.a.scope", "\"everything\"");
    field_error(
        "[budgets.a]\nlimit_usd = 5\nperiod = \"week\"\nweek_start = \"sabbath\"\n",
        4,
        "budgets.a.week_start",
        "a day of the week",
    );
    field_error("[budgets.a]\nlimit_usd = 5\nweek_start = \"sun\"\n", 3, "budgets.a.week_start", "period = \"week\"");
    field_error("[budgets.a]\nlimit_usd = 5\nlimt = 3\n", 3, "budgets.a.limt", "unknown key");
    field_error("[budget.a]\nlimit_usd = 5\n", 1, "budget", "only `[budgets.<name>]`");
    field_error("budgets = 3\n", 1, "budgets", "a table of budgets");
}

#[test]
fn a_syntax_error_names_line_and_column() {
    let err = parse_budgets_toml("[budgets.a]\nlimit_usd = = 5\n", "b.toml").unwrap_err();
    match &err {
        BudgetError::Syntax { origin, line, .. } => assert_eq!((origin.as_str(), *line), ("b.toml", 2)),
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert!(err.to_string().starts_with("b.toml:2:"), "{err}");
}

#[test]
fn a_missing_file_names_the_path() {
    let err = TokenMeter::builder().with_budgets_file("/nonexistent/budgets.toml").unwrap_err();
    assert!(matches!(err, BudgetError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/budgets.toml"), "{err}");
}

#[test]
fn invalid_limits_are_refused_in_code() {
    for bad in [f64::NAN, -1.0, f64::INFINITY, 1.1e12] {
        let err = BudgetLimit::usd(bad).unwrap_err();
        assert!(matches!(err, BudgetError::InvalidLimit { .. }), "{err}");
    }
    // A positive limit that rounds to $0 would block everything (and fire every threshold at the first call).
    let err = BudgetLimit::usd(4e-7).unwrap_err();
    assert!(err.to_string().contains("it rounds to $0"), "{err}");
    assert!(BudgetLimit::usd(0.0).is_ok(), "an explicit $0 freezes spend");
    assert!(BudgetLimit::usd(6e-7).is_ok(), "rounds to one micro-USD");
}
