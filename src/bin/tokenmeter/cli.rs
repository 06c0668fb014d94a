//! The command line: arguments, parsed by `clap`.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokenmeter::ledger::{Dimension, Filter, GroupBy, Window};

/// Token and cost reports over the tokenmeter journal, Claude Code transcripts or a file of call records.
///
/// Every command prints the same typed reports the tokenmeter library makes, as a table (coloured when the
/// output is a terminal) or as JSON. Exit status: 0 on success, 1 for a missing path or unreadable data,
/// 2 for bad arguments (`statusline` prints any failure, bad arguments too, as its line, with 0).
#[derive(Debug, Parser)]
#[command(name = "tokenmeter", version, max_term_width = 110)]
pub(crate) struct Cli {
    #[command(flatten, next_help_heading = "Source (one of)")]
    pub(crate) source: SourceArgs,
    #[command(flatten, next_help_heading = "Global options")]
    pub(crate) common: CommonArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Where the call records come from (one of these; the journal by default).
#[derive(Debug, Args)]
pub(crate) struct SourceArgs {
    /// Read the tokenmeter journal in DIR [default: $TOKENMETER_JOURNAL, else
    /// $XDG_DATA_HOME/tokenmeter/journal, else ~/.local/share/tokenmeter/journal]
    #[arg(long, global = true, value_name = "DIR", conflicts_with_all = ["claude_code", "records"])]
    pub(crate) journal: Option<PathBuf>,
    /// Read Claude Code transcripts: a config dir, its projects/ folder, a project folder or one .jsonl file
    /// [default: $CLAUDE_CONFIG_DIR, else ~/.config/claude and ~/.claude]. Give DIR as --claude-code=DIR
    /// or after the command's own arguments.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        num_args = 0..=1,
        default_missing_value = "",
        value_parser = clap::builder::OsStringValueParser::new().map(PathBuf::from),
        conflicts_with = "records"
    )]
    pub(crate) claude_code: Option<PathBuf>,
    /// Read call records from FILE: JSON Lines of records (journal lines or bare records) or a JSON array
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) records: Option<PathBuf>,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct CommonArgs {
    /// Merge prices from a TOML price file over the built-in price book (see tokenmeter::pricing)
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) prices: Option<PathBuf>,
    /// Time zone of days, weeks and months (IANA name), also of budgets whose file entry has no time_zone
    /// [default: the local zone: $TZ when it names one, else the system's, else UTC]
    #[arg(long = "tz", global = true, value_name = "ZONE", default_value_t = local_zone(), hide_default_value = true,
        value_parser = parse_tz)]
    pub(crate) time_zone: Tz,
    /// The day weeks start on in week rows (`summary --group-by week`, `report`): monday (ISO weeks) or sunday,
    /// any day by name or its first three letters. Budgets keep their own (week_start in the budgets file)
    #[arg(long, global = true, value_name = "DAY", default_value = "monday", value_parser = parse_weekday)]
    pub(crate) week_start: chrono::Weekday,
    /// The time reports treat as now, RFC 3339 or YYYY-MM-DD (local midnight in --tz) [default: the current
    /// time]; calls stamped after it are left out
    #[arg(long, global = true, value_name = "TIME", value_parser = parse_bound)]
    pub(crate) now: Option<Bound>,
    /// When to colour tables
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub(crate) color: ColorChoice,
    /// No progress bar and no notes on stderr (errors are still printed)
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
}

/// When to colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    /// When stdout is a terminal and NO_COLOR is not set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Calls, tokens by kind, cost, averages, shares by model and provider, over time
    Summary(SummaryArgs),
    /// One session: its totals and every call
    Show(ShowArgs),
    /// A report file: markdown, csv, json, xlsx or html (with charts)
    Report(ReportArgs),
    /// Prompt-cache performance: hits, misses, hit rate, tokens and dollars saved, writes never read
    CacheReport(CacheReportArgs),
    /// The efficiency score and suggestions with the dollars they would save
    Optimize(OptimizeArgs),
    /// The next days' spend with an uncertainty band, the month's total, when a budget runs out
    Forecast(ForecastArgs),
    /// Budgets from a TOML file against the recorded spend
    Budget(BudgetArgs),
    /// A period against the previous one, or one dimension value against another
    Compare(CompareArgs),
    /// Usage in 5-hour blocks (Claude's usage windows): each block's tokens and cost, the open one's rate
    Blocks(BlocksArgs),
    /// One line for Claude Code's status line: the session's cost, today's, the open 5-hour block's and its rate
    /// (reads Claude Code's transcripts unless --journal or --records is given)
    Statusline(StatuslineArgs),
    /// Follow the source live: refresh a summary, alert past a spend threshold
    Watch(WatchArgs),
    /// Serve the token_usage tool to AI agents: a Model Context Protocol server over stdio
    Mcp(McpArgs),
    /// Erase a user's, session's or tenant's records from the journal (says what it would erase without --yes)
    Erase(EraseArgs),
}

/// Output format of the terminal commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum Format {
    /// Tables for people.
    #[default]
    Table,
    /// JSON (stable: the library's report types, snake_case).
    Json,
}

/// Output format of the report commands: `summary`, `show`, `blocks`, `compare`, `budget`, `cache-report`,
/// `optimize`, `forecast`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum RowsFormat {
    /// Tables for people.
    #[default]
    Table,
    /// JSON (stable: the library's report types, snake_case).
    Json,
    /// CSV: the command's rows as one table, for spreadsheets and scripts (README "CSV columns").
    Csv,
}

/// The window of a report.
#[derive(Debug, Clone, Args)]
pub(crate) struct WindowArgs {
    /// Window ending now, in whole units: 1h (minutes), 6h or 24h (local hours, the current one included), 7d or
    /// 30d (local days, today included), or all
    #[arg(long, value_name = "PERIOD", value_parser = parse_period, conflicts_with_all = ["since", "until"])]
    pub(crate) period: Option<Window>,
    /// First day included (YYYY-MM-DD, in --tz) or an RFC 3339 time
    #[arg(long, value_name = "DATE", value_parser = parse_bound)]
    pub(crate) since: Option<Bound>,
    /// Last day included (YYYY-MM-DD, in --tz) or an RFC 3339 time (excluded)
    #[arg(long, value_name = "DATE", value_parser = parse_bound)]
    pub(crate) until: Option<Bound>,
}

/// A `--since` / `--until` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// A local date.
    Date(NaiveDate),
    /// An instant.
    Time(DateTime<Utc>),
}

/// `summary`.
#[derive(Debug, Args)]
pub(crate) struct SummaryArgs {
    #[command(flatten)]
    pub(crate) window: WindowArgs,
    /// Rows per day, week or month (or per model, project, session, agent, …)
    #[arg(long, value_name = "GROUP", value_parser = parse_group_by)]
    pub(crate) group_by: Option<GroupBy>,
    /// Output format
    #[arg(long, default_value = "table")]
    pub(crate) format: RowsFormat,
}

/// `show`.
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The session id (a unique prefix is enough)
    pub(crate) session: String,
    /// Output format
    #[arg(long, default_value = "table")]
    pub(crate) format: RowsFormat,
    /// List the tools the session used (Claude Code transcripts: from its tool_use blocks; a journal: its tool
    /// execution records)
    #[arg(long)]
    pub(crate) include_tools: bool,
    /// Add cache columns: reads, 5m and 1h writes, hit rate per call
    #[arg(long)]
    pub(crate) include_cache: bool,
}

/// Format of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// Markdown.
    Markdown,
    /// CSV: the report's main table.
    Csv,
    /// JSON.
    Json,
    /// An Excel workbook, one sheet per table (needs --output).
    Xlsx,
    /// One self-contained HTML page with SVG charts.
    Html,
}

/// Depth of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum ReportType {
    /// Headline figures, the score, the top suggestions and the forecast.
    Executive,
    /// Usage, models, days, efficiency and cache.
    #[default]
    Summary,
    /// Everything: plus projects and sessions, agents, time of day, anomalies, all suggestions.
    Detailed,
}

/// `report`.
#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    pub(crate) window: WindowArgs,
    /// Write to FILE instead of stdout (its extension picks the format when --format is not given)
    #[arg(long, short, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Output format [default: from --output's extension, else markdown]
    #[arg(long)]
    pub(crate) format: Option<ReportFormat>,
    /// How much the report says
    #[arg(long = "type", default_value = "summary")]
    pub(crate) kind: ReportType,
}

/// `cache-report`.
#[derive(Debug, Args)]
pub(crate) struct CacheReportArgs {
    #[command(flatten)]
    pub(crate) window: WindowArgs,
    /// Output format
    #[arg(long, default_value = "table")]
    pub(crate) format: RowsFormat,
}

/// `optimize`.
#[derive(Debug, Args)]
pub(crate) struct OptimizeArgs {
    #[command(flatten)]
    pub(crate) window: WindowArgs,
    /// Score breakdown per session, project, model, agent or operation (or provider, task, user, tenant)
    #[arg(long, value_name = "DIMENSION", default_value = "project", value_parser = parse_score_dimension)]
    pub(crate) group_by: Dimension,
    /// Output format
    #[arg(long, default_value = "table")]
    pub(crate) format: RowsFormat,
}

/// `forecast`.
#[derive(Debug, Args)]
pub(crate) struct ForecastArgs {
    /// Days to forecast (1-366)
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u32).range(1..=366), allow_negative_numbers = true)]
    pub(crate) days: u32,
    /// A monthly budget in USD: when it would be reached
    #[arg(long, value_name = "USD", value_parser = parse_usd, allow_negative_numbers = true)]
    pub(crate) budget: Option<f64>,
    /// Output format
    #[arg(long, default_value = "table")]
    pub(crate) format: RowsFormat,
}

/// `blocks`.
#[derive(Debug, Args)]
pub(crate) struct BlocksArgs {
    /// Block length in hours (1-24)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=24), allow_negative_numbers = true)]
    pub(crate) hours: u32,
    /// Only the block open now, with its rate and projection
    #[arg(long, conflicts_with_all = ["recent", "since"])]
    pub(crate) active: bool,
    /// Only blocks with a call in the last 3 days (and the open one)
    #[arg(long, conflicts_with = "since")]
    pub(crate) recent: bool,
    /// Only blocks with a call on or after this day (YYYY-MM-DD, in --tz) or RFC 3339 time (and the open one)
    #[arg(long, value_name = "DATE", value_parser = parse_bound)]
    pub(crate) since: Option<Bound>,
    /// Tokens a block may use: a number, or `max` for the most a closed block used; each block's share is
    /// shown, and a warning when the open block is projected past it
    #[arg(long, value_name = "TOKENS|max", value_parser = parse_token_limit)]
    pub(crate) token_limit: Option<TokenLimit>,
    /// Output format
    #[arg(long, default_value = "table")]
    pub(crate) format: RowsFormat,
}

/// `statusline`.
#[derive(Debug, Args)]
pub(crate) struct StatuslineArgs {
    /// Block length in hours (1-24)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=24), allow_negative_numbers = true)]
    pub(crate) hours: u32,
    /// Also show the most used budget of this budgets file (TOML, as `budget --file` reads)
    #[arg(long, value_name = "FILE")]
    pub(crate) budgets: Option<PathBuf>,
    /// Output format
    #[arg(long, default_value = "line")]
    pub(crate) format: LineFormat,
}

/// Output format of `statusline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum LineFormat {
    /// One line of text.
    #[default]
    Line,
    /// JSON (the figures the line is made from).
    Json,
}

/// A `--token-limit` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenLimit {
    /// This many tokens.
    Tokens(u64),
    /// The most a closed block used.
    Max,
}

fn parse_token_limit(s: &str) -> Result<TokenLimit, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("max") {
        return Ok(TokenLimit::Max);
    }
    match t.replace(['_', ','], "").parse::<u64>() {
        Ok(n) if n > 0 => Ok(TokenLimit::Tokens(n)),
        _ => Err(format!("`{s}`: give a positive number of tokens, or `max` for the most a closed block used")),
    }
}

/// `budget`.
#[derive(Debug, Args)]
pub(crate) struct BudgetArgs {
    /// The budgets file (TOML, see tokenmeter::budget)
    #[arg(long, value_name = "FILE", default_value = "budgets.toml")]
    pub(crate) file: PathBuf,
    /// Output format
    #[arg(long, default_value = "table")]
    pub(crate) format: RowsFormat,
}

/// `compare`.
#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// The window: with --a/--b, both sides' window; alone, compared with the same stretch one period before
    /// it (to the hour) [default: 30d]
    #[arg(long, value_name = "PERIOD", value_parser = parse_period)]
    pub(crate) period: Option<Window>,
    /// One side: dimension=value (e.g. agent=main)
    #[arg(long, value_name = "DIM=VALUE", value_parser = parse_filter, requires = "b")]
    pub(crate) a: Option<Filter>,
    /// The other side: the same dimension, another value
    #[arg(long, value_name = "DIM=VALUE", value_parser = parse_filter, requires = "a")]
    pub(crate) b: Option<Filter>,
    /// Output format
    #[arg(long, default_value = "table")]
    pub(crate) format: RowsFormat,
}

/// `watch`.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// Alert when the spend over --period passes this many USD
    #[arg(long, value_name = "USD", value_parser = parse_usd, allow_negative_numbers = true)]
    pub(crate) threshold: Option<f64>,
    /// The window watched
    #[arg(long, value_name = "PERIOD", default_value = "24h", value_parser = parse_period)]
    pub(crate) period: Window,
    /// Seconds between refreshes
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, value_parser = parse_interval, allow_negative_numbers = true)]
    pub(crate) interval: f64,
    /// Stop after N refreshes, 1 or more (for scripts and tests) [default: run until interrupted]
    #[arg(long, value_name = "N", value_parser = parse_iterations, allow_negative_numbers = true)]
    pub(crate) iterations: Option<u64>,
    /// Output format of each refresh (json: one object per line)
    #[arg(long, default_value = "table")]
    pub(crate) format: Format,
}

/// `mcp`.
#[derive(Debug, Args)]
pub(crate) struct McpArgs {
    /// Budgets (TOML, see tokenmeter::budget) for the track operation; its monthly USD budget over
    /// everything is the limit forecast projects against. Read once, at start
    #[arg(long, value_name = "FILE")]
    pub(crate) budgets: Option<PathBuf>,
}

/// `erase`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("values").required(true).multiple(true)))]
pub(crate) struct EraseArgs {
    /// The records of this user (its `user.id` as the journal holds it: after the application's dimension filter)
    #[arg(long, value_name = "ID", group = "values")]
    pub(crate) user: Vec<String>,
    /// The records of this session (the whole id, not a prefix)
    #[arg(long, value_name = "ID", group = "values")]
    pub(crate) session: Vec<String>,
    /// The records of this tenant
    #[arg(long, value_name = "ID", group = "values")]
    pub(crate) tenant: Vec<String>,
    /// The records whose dimension NAME holds VALUE (project, agent, operation, task, or one of the application's
    /// own)
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_dimension_value, group = "values")]
    pub(crate) dimension: Vec<(String, String)>,
    /// Erase them: without it, only say what would be erased
    #[arg(long)]
    pub(crate) yes: bool,
    /// Output format
    #[arg(long, default_value = "table")]
    pub(crate) format: Format,
}

// === value parsers ===

/// `NAME=VALUE`, both non-empty (the value may hold `=`).
fn parse_dimension_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() && !value.is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("`{s}`: give NAME=VALUE, e.g. project=website")),
    }
}

/// The zone days are counted in without `--tz`, as `date` would show them: `$TZ` when it names an IANA zone
/// (`Europe/Paris`, `:Europe/Paris`, or a path into a zoneinfo folder, its `posix/` and `right/` too), else the system's (`/etc/localtime`),
/// else UTC. Names of UTC itself (`Etc/UTC`, `Zulu`, …) are UTC, and so is an empty `$TZ`, as for the C library.
pub(crate) fn local_zone() -> Tz {
    let from_env =
        std::env::var("TZ").ok().and_then(|tz| if tz.trim().is_empty() { Some(Tz::UTC) } else { zone_named(&tz) });
    // Unset, or a POSIX rule (`CET-1CEST,M3.5.0,M10.5.0/3`) that is not a zone's name: the system's zone.
    from_env.or_else(|| iana_time_zone::get_timezone().ok().and_then(|name| zone_named(&name))).unwrap_or(Tz::UTC)
}

/// `$TZ` when it is set to something that names no zone (a POSIX rule such as `JST-9`), which [`local_zone`]
/// passes over for the system's zone: `date` follows it, and a report that does not would cut days elsewhere
/// without a word.
pub(crate) fn unnamed_tz_env() -> Option<String> {
    let tz = std::env::var("TZ").ok()?;
    (!tz.trim().is_empty() && zone_named(&tz).is_none()).then_some(tz)
}

/// The zone a `$TZ` value or a zoneinfo path names, if any.
fn zone_named(name: &str) -> Option<Tz> {
    {
        let name = name.trim().trim_start_matches(':');
        // `TZ=:/usr/share/zoneinfo/Europe/Paris`, or `/etc/localtime`'s target when read by hand.
        let name = name.rsplit_once("zoneinfo/").map_or(name, |(_, zone)| zone);
        // tzdata's `posix/` copies are the zones themselves; its `right/` ones count leap seconds, which civil
        // days here do not (27 s apart since 2017).
        let name = name.strip_prefix("posix/").or_else(|| name.strip_prefix("right/")).unwrap_or(name);
        match name.parse::<Tz>().ok()? {
            Tz::Etc__UTC | Tz::Etc__UCT | Tz::Etc__Universal | Tz::Etc__Zulu | Tz::UCT | Tz::Universal | Tz::Zulu => {
                Some(Tz::UTC)
            }
            tz => Some(tz),
        }
    }
}

fn parse_weekday(s: &str) -> Result<chrono::Weekday, String> {
    s.trim()
        .parse::<chrono::Weekday>()
        .map_err(|_| format!("unknown day `{s}`: give monday, sunday or another day's name"))
}

fn parse_tz(s: &str) -> Result<Tz, String> {
    s.parse::<Tz>().map_err(|_| format!("unknown time zone `{s}`: give an IANA name such as UTC or Europe/Paris"))
}

/// The instants the ledger can hold: Unix nanoseconds in an `i64`, from 1970 on.
fn representable(t: DateTime<Utc>) -> bool {
    t.timestamp() >= 0 && t.timestamp_nanos_opt().is_some()
}

fn parse_bound(s: &str) -> Result<Bound, String> {
    let s = s.trim();
    let out_of_range = || {
        format!(
            "`{s}` is out of range: give a date from 1970-01-01 to 2262-04-09, or a time up to 2262-04-11T23:47:16Z"
        )
    };
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").or_else(|_| NaiveDate::parse_from_str(s, "%Y%m%d"));
    if let Ok(d) = date {
        // A day later still representable, for `--until DATE` (the day's end) in any time zone.
        let ok = [Some(d), d.checked_add_days(chrono::Days::new(2))]
            .iter()
            .all(|d| d.and_then(|d| d.and_hms_opt(0, 0, 0)).is_some_and(|t| representable(t.and_utc())));
        return if ok { Ok(Bound::Date(d)) } else { Err(out_of_range()) };
    }
    // Written as a date and no such day (`2025-13-01`, `2025-02-30`): said so, not that it is not YYYY-MM-DD.
    let shaped = |pattern: &[bool]| {
        s.len() == pattern.len() && s.bytes().zip(pattern).all(|(b, &digit)| b.is_ascii_digit() == digit)
    };
    let (d, h) = (true, false);
    if shaped(&[d, d, d, d, h, d, d, h, d, d]) && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-' || shaped(&[d; 8])
    {
        return Err(format!("`{s}` is no day of the calendar: check its month (01-12) and day"));
    }
    let t = DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD) or an RFC 3339 time (2025-10-01T12:00:00Z)"))?;
    if representable(t) { Ok(Bound::Time(t)) } else { Err(out_of_range()) }
}

fn parse_period(s: &str) -> Result<Window, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1h" | "6h" | "24h" | "7d" | "30d" | "all" => {
            s.parse().map_err(|e: tokenmeter::ledger::QueryError| e.to_string())
        }
        _ => Err(format!("`{s}` is not a period: give 1h, 6h, 24h, 7d, 30d or all")),
    }
}

fn parse_group_by(s: &str) -> Result<GroupBy, String> {
    let g: GroupBy = s.parse().map_err(|e: tokenmeter::ledger::QueryError| e.to_string())?;
    if g == GroupBy::Dimension(Dimension::Tool) {
        return Err("grouping by tool is not supported here: the rows are calls, and tools are no dimension of a \
                    call (`show SESSION --include-tools` lists a session's tool executions)"
            .into());
    }
    Ok(g)
}

fn parse_dimension(s: &str) -> Result<Dimension, String> {
    s.parse().map_err(|e: tokenmeter::ledger::QueryError| e.to_string())
}

fn parse_filter(s: &str) -> Result<Filter, String> {
    s.parse().map_err(|e: tokenmeter::ledger::QueryError| match e {
        // The library names the argument (`filter`); here the flag does.
        tokenmeter::ledger::QueryError::InvalidArgument { reason, .. } => reason,
        e => e.to_string(),
    })
}

/// `optimize --group-by`: what the efficiency breakdown can group by (tools carry no tokens).
fn parse_score_dimension(s: &str) -> Result<Dimension, String> {
    const SCORED: &str = "give session, project, model, agent, operation, provider, task, user or tenant";
    match parse_dimension(s) {
        Ok(Dimension::Tool) => Err(format!("`{s}`: tool executions carry no tokens to score: {SCORED}")),
        Ok(d) => Ok(d),
        // The library's list names `tool` too, which this flag refuses.
        Err(_) => Err(format!("unknown dimension `{s}` to score by: {SCORED}")),
    }
}

/// The largest amount taken (as budgets take it): past it, the amounts printed would be rounded off.
const MAX_USD: f64 = 1e12;

fn parse_usd(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().trim_start_matches('$').parse().map_err(|_| format!("`{s}` is not an amount in USD"))?;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("`{s}`: give a positive amount in USD"));
    }
    if v > MAX_USD {
        return Err(format!("`{s}`: give at most 1e12 USD"));
    }
    Ok(v)
}

fn parse_interval(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !v.is_finite() || !(0.05..=86_400.0).contains(&v) {
        return Err(format!("`{s}`: give between 0.05 and 86400 seconds"));
    }
    Ok(v)
}

fn parse_iterations(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}`: give 1 or more refreshes, or leave --iterations out to run until interrupted")),
    }
}

/// Rewrites a bare `--claude-code` followed by a command name to `--claude-code=` so that the command name is
/// not taken for the directory (`tokenmeter --claude-code summary`). The names are clap's own, `help` with them.
pub(crate) fn preprocess(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    use clap::CommandFactory;
    let command = Cli::command();
    let is_command = |name: &str| name == "help" || command.find_subcommand(name).is_some();
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.into_iter().peekable();
    while let Some(a) = it.next() {
        if a == "--claude-code"
            && let Some(next) = it.peek()
            && let Some(next) = next.to_str()
            && is_command(next)
        {
            out.push("--claude-code=".into());
            continue;
        }
        out.push(a);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_bare_claude_code_before_any_command_is_not_its_directory() {
        // `blocks` and `statusline` were missing from a list of the names kept by hand.
        for command in Cli::command().get_subcommands().map(|c| c.get_name().to_owned()) {
            let args = preprocess(["tokenmeter", "--claude-code", &command].map(Into::into).to_vec());
            assert_eq!(args, ["tokenmeter", "--claude-code=", &command], "{command}");
        }
        let dir = preprocess(["tokenmeter", "--claude-code", "transcripts", "summary"].map(Into::into).to_vec());
        assert_eq!(dir, ["tokenmeter", "--claude-code", "transcripts", "summary"]);
    }
}
