//! `report`: the library's reports gathered into one document, written as markdown, csv, json, xlsx or html.

mod csv;
mod html;
mod markdown;
mod xlsx;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokenmeter::Band;
use tokenmeter::UsageSummary;
use tokenmeter::analysis::{
    AnomalyReport, BreakdownTree, CachePoint, CacheReport, EfficiencyBreakdown, EfficiencyReport, Forecast,
    TimeOfDayReport,
};
use tokenmeter::ledger::{Dimension, GroupBy, Query, QueryResult, TimeGrain, Window};

use crate::cli::{ReportArgs, ReportFormat, ReportType};
use crate::commands::{Scope, window};
use crate::render::{int, pct, priced_usd, usd};
use crate::source::{Context, Source, SourceInfo};
use crate::{CliError, CliResult, print_out};

/// Forecast length in reports, days.
const FORECAST_DAYS: u32 = 14;

/// Everything a report holds: the library's own report types, by section. Sections a report type leaves out
/// are absent from the JSON.
#[derive(Debug, Serialize)]
pub(crate) struct Report<'a> {
    /// `executive`, `summary` or `detailed`.
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    /// The time the report treats as now.
    pub(crate) generated_at: DateTime<Utc>,
    /// The time zone of days and hours.
    pub(crate) time_zone: String,
    /// What was read.
    pub(crate) source: &'a SourceInfo,
    /// Usage summary.
    pub(crate) summary: UsageSummary,
    /// Rows per day (week or month for long windows).
    pub(crate) periods: QueryResult,
    /// Efficiency score, per-project breakdown, suggestions.
    pub(crate) efficiency: EfficiencyReport,
    /// Prompt cache.
    pub(crate) cache: CacheReport,
    /// Forecast of the next days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) forecast: Option<Forecast>,
    /// Project > session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) projects: Option<BreakdownTree>,
    /// Agent > model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) agents: Option<BreakdownTree>,
    /// Tokens by hour of day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) time_of_day: Option<TimeOfDayReport>,
    /// Days and hours far above their trailing average.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) anomalies: Option<AnomalyReport>,
}

impl Report<'_> {
    pub(crate) fn title(&self) -> &'static str {
        match self.kind {
            "executive" => "Token spend: executive summary",
            "detailed" => "Token spend: detailed report",
            _ => "Token spend report",
        }
    }

    pub(crate) fn detailed(&self) -> bool {
        self.kind == "detailed"
    }

    pub(crate) fn executive(&self) -> bool {
        self.kind == "executive"
    }

    /// The efficiency score and cache hit rate for the headline: `-` for both in a window without metered
    /// calls (nothing to score, not a perfect 100), as `optimize` and `compare` say.
    pub(crate) fn score_and_hit_rate(&self) -> (String, String) {
        let e = &self.efficiency.efficiency_scores;
        if self.summary.metered_calls == 0 {
            return ("-".to_owned(), "-".to_owned());
        }
        (format!("{:.1} ({})", e.overall, e.band), pct(self.cache.cache_metrics.hit_rate))
    }

    /// The headline's sentence when there is nothing to score: no calls, or calls none of which has usage.
    pub(crate) fn nothing_to_score(&self) -> Option<&'static str> {
        match (self.summary.calls, self.summary.metered_calls) {
            (_, 1..) => None,
            (0, _) => Some("No calls in this window: nothing to score."),
            _ => Some("No metered calls in this window: nothing to score."),
        }
    }

    /// An efficiency row's score and band; `None` for a row without metered calls (nothing to score, not a
    /// perfect 100), shown `-` as the headline shows it.
    pub(crate) fn row_score(&self, b: &EfficiencyBreakdown) -> Option<(f64, Band)> {
        (b.metered_calls > 0).then_some((b.efficiency_score, b.band))
    }

    /// A cache time-series point's hit rate; `None` for a period without prompt tokens (nothing measured, not
    /// a 0% hit rate).
    pub(crate) fn point_hit_rate(&self, p: &CachePoint) -> Option<f64> {
        (p.prompt_tokens > 0).then_some(p.hit_rate)
    }

    /// A date and time in the report's time zone.
    pub(crate) fn datetime(&self, t: DateTime<Utc>) -> String {
        crate::render::local_time(t, self.tz(), "%Y-%m-%d %H:%M")
    }

    pub(crate) fn tz(&self) -> chrono_tz::Tz {
        self.time_zone.parse().unwrap_or(chrono_tz::UTC)
    }

    /// A period row's label.
    pub(crate) fn period_label(&self, key: &str) -> String {
        crate::commands::row_label(key, self.periods.group_by, self.tz())
    }

    /// The line under a cut efficiency breakdown: how many rows are not listed.
    pub(crate) fn omitted_projects(&self) -> String {
        let shown = self.efficiency.breakdowns.len();
        format!(
            "{} not listed (only the {shown} costliest are).",
            crate::render::count(self.efficiency.breakdowns_omitted as u64, "project")
        )
    }

    /// The grain of the period rows.
    pub(crate) fn grain(&self) -> Option<TimeGrain> {
        match self.periods.group_by {
            Some(GroupBy::Time(g)) => Some(g),
            _ => None,
        }
    }

    /// "by day" / "by week" / "by month".
    pub(crate) fn period_grain(&self) -> &'static str {
        self.grain().map_or("period", TimeGrain::name)
    }
}

/// Builds the report of `kind` over the scope's window.
pub(crate) fn build<'a>(
    source: &'a Source,
    ctx: &Context,
    scope: &Scope<'_>,
    kind: ReportType,
) -> CliResult<Report<'a>> {
    let ledger = scope.ledger(ctx);
    let window = scope.window(&ledger)?;
    let mut summary = ledger.usage_summary(window)?;
    scope.restore_summary(&mut summary);
    let grain = match summary.days {
        d if d <= crate::commands::HOURLY_ROWS_UP_TO_DAYS => TimeGrain::Hour,
        d if d <= 62.0 => TimeGrain::Day,
        d if d <= 200.0 => TimeGrain::Week,
        _ => TimeGrain::Month,
    };
    let mut periods = ledger.query(&Query::new(window).group_by(GroupBy::Time(grain)))?;
    scope.restore_rows(&mut periods);
    let mut efficiency = ledger.efficiency_report(window, Dimension::Project)?;
    scope.restore(&mut efficiency.window);
    let mut cache = ledger.cache_report(window)?;
    scope.restore_cache(&mut cache);
    let detailed = kind == ReportType::Detailed;
    let tree = |parent, child| -> CliResult<_> {
        let mut t = ledger.breakdown_tree(window, parent, child)?;
        scope.restore(&mut t.window);
        Ok(t)
    };
    Ok(Report {
        kind: match kind {
            ReportType::Executive => "executive",
            ReportType::Summary => "summary",
            ReportType::Detailed => "detailed",
        },
        generated_at: ctx.now,
        time_zone: ctx.time_zone.name().to_owned(),
        source: &source.info,
        summary,
        periods,
        efficiency,
        cache,
        // The forecast looks ahead from now over the month: it reads every record, not only the window's.
        forecast: Some(if scope.records.len() == source.records.len() {
            ledger.forecast(FORECAST_DAYS, None)?
        } else {
            source.ledger(ctx).forecast(FORECAST_DAYS, None)?
        }),
        projects: detailed.then(|| tree(Dimension::Project, Dimension::Session)).transpose()?,
        agents: detailed.then(|| tree(Dimension::Agent, Dimension::Model)).transpose()?,
        time_of_day: detailed
            .then(|| {
                ledger.time_of_day(window).map(|mut t| {
                    scope.restore(&mut t.window);
                    t
                })
            })
            .transpose()?,
        anomalies: detailed
            .then(|| {
                ledger.anomalies(window).map(|mut a| {
                    scope.restore(&mut a.window);
                    a
                })
            })
            .transpose()?,
    })
}

/// The format `--format` names, else the one `--output`'s extension suggests, else markdown.
fn format_of(args: &ReportArgs) -> ReportFormat {
    args.format.or_else(|| format_of_path(args.output.as_deref()?)).unwrap_or(ReportFormat::Markdown)
}

/// The format a file's extension names, if any.
fn format_of_path(path: &Path) -> Option<ReportFormat> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref()? {
        "md" | "markdown" => Some(ReportFormat::Markdown),
        "csv" => Some(ReportFormat::Csv),
        "json" => Some(ReportFormat::Json),
        "xlsx" => Some(ReportFormat::Xlsx),
        "html" | "htm" => Some(ReportFormat::Html),
        _ => None,
    }
}

/// The name of a format as `--format` spells it.
fn format_name(f: ReportFormat) -> String {
    use clap::ValueEnum;
    f.to_possible_value().map_or_else(String::new, |v| v.get_name().to_owned())
}

pub(crate) fn run(source: &Source, ctx: &Context, args: &ReportArgs) -> CliResult {
    let format = format_of(args);
    // `-o -` is standard output, as for most tools.
    let to_stdout = args.output.as_deref().is_none_or(|p| p == Path::new("-"));
    if format == ReportFormat::Xlsx && to_stdout {
        return Err(CliError::usage("--format xlsx writes a binary file: give --output FILE.xlsx"));
    }
    // A file whose extension names another format than the one written is most likely a slip.
    if let Some(path) = args.output.as_deref().filter(|_| !to_stdout)
        && let Some(implied) = format_of_path(path)
        && implied != format
    {
        ctx.note(&format!(
            "tokenmeter: note: writing {} to {}, whose extension says {}",
            format_name(format),
            path.display(),
            format_name(implied)
        ));
    }
    // An extension no format has (`r.pdf`): markdown, said, not written there silently.
    if let Some(path) = args.output.as_deref().filter(|_| !to_stdout && args.format.is_none())
        && let Some(ext) = path.extension()
        && format_of_path(path).is_none()
    {
        ctx.note(&format!(
            "tokenmeter: note: writing markdown to {}: `.{}` names no format this command writes (md, csv, json, \
             xlsx, html; or give --format)",
            path.display(),
            ext.to_string_lossy()
        ));
    }
    if let Some(path) = args.output.as_deref().filter(|_| !to_stdout)
        && let Some(input) = reads_from(source, path)
    {
        return Err(CliError::usage(format!(
            "--output {} would write over the source being read ({})",
            path.display(),
            input.display()
        )));
    }
    let scope = window(&args.window, ctx, source, Window::All)?;
    let report = build(source, ctx, &scope, args.kind)?;
    if format == ReportFormat::Xlsx {
        let path = args.output.as_deref().unwrap_or(Path::new("report.xlsx"));
        let bytes =
            xlsx::render(&report).map_err(|e| CliError::data(format!("cannot write {}: {e}", path.display())))?;
        replace_file(path, &bytes)?;
        ctx.note(&format!("wrote {}", path.display()));
        return Ok(());
    }
    let text = match format {
        ReportFormat::Markdown => markdown::render(&report),
        ReportFormat::Csv => csv::render(&report),
        ReportFormat::Json => crate::render::json(&report)?,
        ReportFormat::Html => html::render(&report),
        ReportFormat::Xlsx => String::new(),
    };
    match args.output.as_ref().filter(|_| !to_stdout) {
        Some(path) => {
            replace_file(path, text.as_bytes())?;
            ctx.note(&format!("wrote {}", path.display()));
            Ok(())
        }
        None => print_out(&text),
    }
}

/// The source `path` would write over, if any: the records file being read (`--records FILE -o FILE`), or a
/// `.jsonl` file inside a journal or transcript directory being read (a journal day file a live application
/// appends to would be replaced, and its later records lost).
fn reads_from<'s>(source: &'s Source, path: &Path) -> Option<&'s Path> {
    let out = match std::fs::canonicalize(path) {
        Ok(p) => p,
        // A new file (or a link to one, which `replace_file` follows): where it would go.
        Err(_) => {
            let path = link_target(path).ok().flatten().unwrap_or_else(|| path.to_path_buf());
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            std::fs::canonicalize(dir).ok()?.join(path.file_name()?)
        }
    };
    let jsonl = out.extension().is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    source
        .info
        .paths
        .iter()
        .map(PathBuf::as_path)
        .find(|p| std::fs::canonicalize(p).is_ok_and(|p| p == out || (jsonl && p.is_dir() && out.starts_with(&p))))
}

/// The path a chain of symbolic links at `path` ends at (relative targets read from each link's directory), when
/// `path` is a link; `None` when it is not.
fn link_target(path: &Path) -> std::io::Result<Option<std::path::PathBuf>> {
    let mut at = path.to_path_buf();
    // Linux's own limit on links followed in one lookup.
    for _ in 0..40 {
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&at)?;
                at = match at.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok((at != path).then_some(at)),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// Writes `bytes` to `path`: into a new temporary file of a random name beside it (created, never opened if
/// something is already there, so a link planted at a name guessed in advance is never written through), synced,
/// then renamed over `path`. A write that fails part way leaves the earlier file (or none), never a cut one, and
/// no temporary file. What is there and not a regular file (`/dev/null`, a pipe such as `>(gzip)`'s) is written to as
/// it is: a rename would put a regular file in the device's place (as root), or fail; so are the process's own
/// descriptors (`/dev/stdout`, `/dev/fd/N`), whatever they are redirected to.
fn replace_file(path: &Path, bytes: &[u8]) -> CliResult {
    use std::io::Write as _;
    let shown = path;
    let fail = |e: std::io::Error| CliError::data(format!("cannot write {}: {e}", shown.display()));
    // A pipe whose reader has gone (`-o /dev/stdout | head`, `-o >(head -c 10)`) is no error, as with `-o -`.
    let write_into = |mut to: Box<dyn std::io::Write>| match to.write_all(bytes).and_then(|()| to.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written.map_err(fail),
    };
    // The process's own standard output or error, whatever it is redirected to: `-o /dev/stdout >> run.log`
    // resolves to `run.log`, a regular file, which the rename below would replace (losing what it held).
    let names = |std: &str, fd: u8| [format!("/dev/{std}"), format!("/dev/fd/{fd}"), format!("/proc/self/fd/{fd}")];
    if names("stdout", 1).iter().any(|n| path == Path::new(n)) {
        return write_into(Box::new(std::io::stdout().lock()));
    }
    if names("stderr", 2).iter().any(|n| path == Path::new(n)) {
        return write_into(Box::new(std::io::stderr().lock()));
    }
    // Another descriptor of this process (`/dev/fd/3`): appended to, never renamed over or rewritten from its
    // start.
    if path.starts_with("/dev/fd") || path.starts_with("/proc/self/fd") {
        return write_into(Box::new(std::fs::OpenOptions::new().append(true).open(path).map_err(fail)?));
    }
    // Through a symbolic link to the file it names (a rename would replace the link itself), keeping that
    // file's permissions.
    // A link whose file does not exist yet is followed too (`canonicalize` fails on it): the rename replaced the
    // link with a regular file, and the file it names was never written.
    let resolved = match std::fs::canonicalize(path) {
        Ok(p) => Some(p),
        Err(_) => link_target(path).map_err(fail)?,
    };
    let path = resolved.as_deref().unwrap_or(path);
    let existing = std::fs::metadata(path).ok();
    if let Some(meta) = &existing
        && !meta.is_file()
    {
        if meta.is_dir() {
            return Err(fail(std::io::Error::new(std::io::ErrorKind::IsADirectory, "it is a directory")));
        }
        return write_into(Box::new(std::fs::OpenOptions::new().write(true).open(path).map_err(fail)?));
    }
    let keep = existing.map(|m| m.permissions());
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // The name's start only, at most 64 bytes (whole characters): a long name and the random part would pass
    // the 255 bytes a name may have.
    let name: String = path
        .file_name()
        .map(|n| {
            let full = n.to_string_lossy();
            full[..full.floor_char_boundary(64)].to_owned()
        })
        .unwrap_or_default();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    // The temporary file is the owner's only (0600) while it is written when it replaces a file, whose
    // permissions it then takes; a new file gets the permissions any new file gets (0666 less the umask), as
    // the report will have them.
    #[cfg(unix)]
    if keep.is_none() {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(fail(std::io::Error::other(format!("{} is not a directory", dir.display())))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let missing = format!("the directory {} does not exist", dir.display());
            return Err(fail(std::io::Error::new(std::io::ErrorKind::NotFound, missing)));
        }
        Err(e) => return Err(fail(std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))),
    }
    // Dropped on an error: the temporary file is removed.
    let mut tmp = builder.tempfile_in(dir).map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    if let Some(permissions) = keep {
        let _ = tmp.as_file().set_permissions(permissions);
    }
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// The name of a suggestion type, as the JSON spells it.
pub(crate) fn snake<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// A table the markdown and html writers both print: header, right-aligned columns, rows of display text.
pub(crate) struct Table {
    pub(crate) headers: &'static [&'static str],
    pub(crate) right: &'static [bool],
    pub(crate) rows: Vec<Vec<String>>,
}

impl Report<'_> {
    /// The optimization suggestions (the top three in an executive report); `None` when there are none.
    pub(crate) fn suggestions_table(&self) -> Option<Table> {
        let sugs = &self.efficiency.optimization_suggestions;
        if sugs.is_empty() {
            return None;
        }
        let n = if self.executive() { 3 } else { sugs.len() };
        let rows = sugs
            .iter()
            .take(n)
            .map(|g| vec![snake(&g.kind), snake(&g.impact), usd(g.potential_savings), g.description.clone()])
            .collect();
        Some(Table {
            headers: &["Suggestion", "Impact", "Saves", "What to do"],
            right: &[false, false, true, false],
            rows,
        })
    }

    /// Spend by model, at most `limit` rows.
    pub(crate) fn models_table(&self, limit: usize) -> Table {
        let rows: Vec<Vec<String>> = crate::render::models_with_costs(&self.summary.by_model, limit)
            .into_iter()
            .map(|(m, cost)| vec![m.name, int(m.calls), int(m.tokens), cost, pct(m.cost_share)])
            .collect();
        Table { headers: &["Model", "Calls", "Tokens", "Cost", "Share"], right: &[false, true, true, true, true], rows }
    }

    /// Tokens and cost per period (day, week or month).
    pub(crate) fn periods_table(&self) -> Table {
        let rows = self
            .periods
            .groups
            .iter()
            .map(|g| {
                vec![
                    self.period_label(&g.key),
                    int(g.calls),
                    int(g.tokens.input),
                    int(g.tokens.output),
                    int(g.tokens.cache_read),
                    int(g.tokens.cache_creation),
                    crate::render::share_cost(g.cost_usd, g.calls, g.unpriced_calls),
                ]
            })
            .collect();
        Table {
            headers: &["Period", "Calls", "Input", "Output", "Cache read", "Cache write", "Cost"],
            right: &[false, true, true, true, true, true, true],
            rows,
        }
    }
}

impl Report<'_> {
    /// The forecast's projected month total, `None` when there was nothing to forecast from (the figure is then
    /// the month to date, which would read as a projection): the headline's, as the forecast's line reads it.
    pub(crate) fn projected_month_total(&self) -> Option<f64> {
        let f = self.forecast.as_ref()?;
        (f.basis != tokenmeter::analysis::ForecastBasis::Insufficient).then_some(f.projected_month_total_usd)
    }

    /// The forecast's line (month to date, projected total, daily average) and its days with the 90% band.
    pub(crate) fn forecast_table(&self) -> Option<(String, Table)> {
        let f = self.forecast.as_ref()?;
        // Of priced calls: `+ unpriced` when calls on models without a price are left out.
        let priced = |v: f64| priced_usd(v, f.unpriced_calls, None);
        // Nothing to forecast from: no projection or average (their $0.00 or spend so far would read as one).
        let insufficient = f.basis == tokenmeter::analysis::ForecastBasis::Insufficient;
        let unknown = |v: f64| if insufficient { "-".to_owned() } else { priced(v) };
        let mut line = format!(
            "Month to date {}, projected month total {}, daily average {}; from {}.",
            priced(f.month_to_date_usd),
            unknown(f.projected_month_total_usd),
            unknown(f.daily_average_usd),
            crate::render::forecast_basis(f)
        );
        if let Some(effects) = crate::render::weekday_effects(f) {
            line.push_str(&format!(" By day of the week, against the trend: {effects}."));
        }
        let rows = f
            .days
            .iter()
            .map(|d| {
                vec![d.date.to_string(), priced(d.cost_usd), format!("{} – {}", usd(d.lower_usd), usd(d.upper_usd))]
            })
            .collect();
        // A 90% prediction band over a trend; over a mean or a run rate, a stated ±82%.
        let headers: &'static [&'static str] = match f.basis {
            tokenmeter::analysis::ForecastBasis::Trend => &["Day", "Cost", "90% band"],
            _ => &["Day", "Cost", "Band (stated ±82%)"],
        };
        Some((line, Table { headers, right: &[false, true, true], rows }))
    }

    /// The prompt cache's figures.
    pub(crate) fn cache_table(&self) -> Table {
        let c = &self.cache;
        let m = &c.cache_metrics;
        // Rates of a window without calls are `-`, not a 0% hit rate beside a 100% reuse rate.
        let rate = |v: f64| if m.total_cache_hits + m.total_cache_misses > 0 { pct(v) } else { "-".to_owned() };
        let rows = vec![
            vec!["Token hit rate".to_owned(), rate(m.hit_rate)],
            vec![
                "Calls reading the cache".to_owned(),
                format!("{} of {}", int(m.total_cache_hits), int(m.total_cache_hits + m.total_cache_misses)),
            ],
            vec!["Tokens read from the cache".to_owned(), int(m.tokens_saved)],
            vec![
                "Saved against the input rate".to_owned(),
                priced_usd(m.cost_saved, m.unpriced_calls, Some(m.total_cache_hits + m.total_cache_misses)),
            ],
            vec!["Tokens written to the cache".to_owned(), int(m.cache_creation_tokens)],
            // Of the prompt tokens that repeated the previous turn: with none, no rate (the library's 1 is a
            // placeholder).
            vec![
                "Context reuse rate".to_owned(),
                if m.reusable_tokens > 0 { pct(m.context_reuse_rate) } else { "-".to_owned() },
            ],
            vec![
                "Cache writes never read".to_owned(),
                format!(
                    "{} tokens, {} wasted",
                    int(c.unread_cache_writes.tokens),
                    usd(c.unread_cache_writes.wasted_usd)
                ),
            ],
        ];
        Table { headers: &["Figure", "Value"], right: &[false, true], rows }
    }

    /// Calls per local hour (hours with calls), with the zone for the heading. The CLI's ledgers keep hourly
    /// totals for all time, so the hours cover the report's whole window.
    pub(crate) fn time_of_day_table(&self) -> Option<(String, Table)> {
        let t = self.time_of_day.as_ref()?;
        let label = t.time_zone.clone();
        let rows = t
            .hours
            .iter()
            .filter(|h| h.calls > 0)
            .map(|h| {
                let cost = crate::render::share_cost(h.cost_usd, h.calls, h.unpriced_calls);
                vec![format!("{:02}:00", h.hour), int(h.calls), int(h.tokens), cost, pct(h.share)]
            })
            .collect();
        let table = Table {
            headers: &["Hour", "Calls", "Tokens", "Cost", "Share of tokens"],
            right: &[false, true, true, true, true],
            rows,
        };
        Some((label, table))
    }
}

/// An anomaly's value or baseline in its metric's unit: dollars, or tokens and calls (a baseline is an
/// average, so calls keep a decimal).
fn amount(metric: tokenmeter::analysis::AnomalyMetric, v: f64) -> String {
    use tokenmeter::analysis::AnomalyMetric as M;
    match metric {
        M::Cost => usd(v),
        M::Tokens => int(v.round() as u64),
        M::Calls if v.fract() == 0.0 => int(v as u64),
        M::Calls => format!("{v:.1}"),
    }
}

/// The line of an anomalies section without any.
pub(crate) const NO_ANOMALIES: &str = "None: no day or hour exceeded its trailing average by the rule's factors.";

impl Report<'_> {
    /// The anomalies (`detailed` only): when each started, its grain and metric, its value and the trailing
    /// baseline in the metric's unit, the ratio, and the dimension value that spiked; no rows when there are
    /// none.
    pub(crate) fn anomalies_table(&self) -> Option<Table> {
        let a = self.anomalies.as_ref()?;
        let rows = a
            .anomalies
            .iter()
            .map(|x| {
                vec![
                    self.datetime(x.start),
                    snake(&x.granularity),
                    snake(&x.metric),
                    amount(x.metric, x.value),
                    amount(x.metric, x.baseline),
                    format!("{:.1}x", x.ratio),
                    x.spiked_by.as_ref().map_or_else(String::new, |s| format!("{} {}", s.dimension, s.value)),
                ]
            })
            .collect();
        Some(Table {
            headers: &["Start", "Grain", "Metric", "Value", "Baseline", "Ratio", "Spiked by"],
            right: &[false, false, false, true, true, true, false],
            rows,
        })
    }
}

/// A two-level breakdown as one row per child, its parent's name repeated in the first column.
pub(crate) fn tree_table(tree: &BreakdownTree, headers: &'static [&'static str]) -> Table {
    let rows = tree
        .nodes
        .iter()
        .flat_map(|p| {
            p.children.iter().map(move |c| {
                vec![
                    p.name.clone(),
                    c.name.clone(),
                    int(c.calls),
                    int(c.tokens),
                    crate::render::share_cost(c.cost_usd, c.calls, c.unpriced_calls),
                    pct(c.cost_share),
                ]
            })
        })
        .collect();
    Table { headers, right: &[false, false, true, true, true, true], rows }
}

/// The month `f`'s projected total is of, `2025-12`: the month of the report's now in its time zone, whatever the
/// window (a report of October read in December projects December). Its label is `Projected total of 2025-12`.
pub(crate) fn projected_month(f: &tokenmeter::analysis::Forecast) -> String {
    let tz: chrono_tz::Tz = f.time_zone.parse().unwrap_or(chrono_tz::UTC);
    f.generated_at.with_timezone(&tz).format("%Y-%m").to_string()
}
