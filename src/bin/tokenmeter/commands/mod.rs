//! One function per command: read the source, ask the ledger for the library's reports, print them.

mod analysis;
mod blocks;
pub(crate) mod budget;
mod erase;
mod show;
mod statusline;
mod summary;
mod watch;

pub(crate) use analysis::compare_periods;
pub(crate) use statusline::print_failure_line;
pub(crate) use summary::{csv as summary_csv, row_label};

use chrono::{DateTime, Duration, DurationRound, NaiveDate, Utc};
use chrono_tz::Tz;
use tokenmeter::UsageSummary;
use tokenmeter::analysis::CacheReport;
use tokenmeter::ledger::{GroupBy, Ledger, QueryResult, Window, WindowBounds};
use tokenmeter::{CallRecord, TaskRecord, ToolRecord};

use crate::cli::{Bound, Cli, Command, WindowArgs};
use crate::render::Style;
use crate::source::{Context, Source};
use crate::{CliError, CliResult};

/// The longest window, in days, whose rows are hours: two local days, one of them 25 hours long where the clocks go
/// back (two days in any other week are 48 hours, and were rows per hour where these were rows per day).
pub(crate) const HOURLY_ROWS_UP_TO_DAYS: f64 = 49.0 / 24.0;

/// Runs the parsed command line.
pub(crate) fn run(cli: Cli) -> CliResult {
    let ctx = match (Context::new(&cli.common), &cli.command) {
        (Ok(ctx), _) => ctx,
        (Err(e), Command::Statusline(args)) => return statusline::failed(args, e),
        (Err(e), _) => return Err(e),
    };
    let style = Style::new(cli.common.color);
    match &cli.command {
        Command::Watch(args) => watch::run(&cli.source, &ctx, &style, args),
        Command::Budget(args) => budget::run(&cli.source, &ctx, &style, args),
        Command::Mcp(args) => crate::mcp::run(&cli.source, &ctx, args),
        Command::Erase(args) => erase::run(&cli.source, &ctx, args),
        Command::Statusline(args) => statusline::run(&cli.source, &ctx, &style, args),
        command => {
            let source = Source::load(&cli.source, &ctx)?;
            match command {
                Command::Summary(args) => summary::run(&source, &ctx, &style, args),
                Command::Show(args) => show::run(&source, &ctx, &style, args),
                Command::Report(args) => crate::report::run(&source, &ctx, args),
                Command::CacheReport(args) => analysis::cache_report(&source, &ctx, &style, args),
                Command::Optimize(args) => analysis::optimize(&source, &ctx, &style, args),
                Command::Forecast(args) => analysis::forecast(&source, &ctx, &style, args),
                Command::Compare(args) => analysis::compare(&source, &ctx, &style, args),
                Command::Blocks(args) => blocks::run(&source, &ctx, &style, args),
                Command::Watch(_)
                | Command::Budget(_)
                | Command::Mcp(_)
                | Command::Statusline(_)
                | Command::Erase(_) => Ok(()),
            }
        }
    }
}

/// Whether `args`, a command line clap refused, ask for `statusline`'s line (not `--format json`): as clap parses
/// them when told to ignore their errors or, where that finds no command (an unknown option before it), as their
/// words read.
pub(crate) fn statusline_line(args: &[std::ffi::OsString]) -> bool {
    use crate::cli::LineFormat;
    use clap::CommandFactory;
    let matches = Cli::command().ignore_errors(true).try_get_matches_from(args);
    match matches.as_ref().ok().and_then(|m| m.subcommand()) {
        Some(("statusline", sub)) => sub.try_get_one::<LineFormat>("format").ok().flatten() != Some(&LineFormat::Json),
        Some(_) => false,
        None => {
            let json = args.windows(2).any(|w| w[0] == "--format" && w[1] == "json")
                || args.iter().any(|a| a == "--format=json");
            args.iter().skip(1).any(|a| a == "statusline") && !json
        }
    }
}

/// What a windowed command reports on: the ledger's window, the records it may hold, and the window the user
/// asked for.
pub(crate) struct Scope<'a> {
    /// The records in the asked window (all of them without `--since`/`--until`).
    pub(crate) records: std::borrow::Cow<'a, [CallRecord]>,
    /// A journal's tasks and tool executions in the asked window.
    tasks: std::borrow::Cow<'a, [TaskRecord]>,
    tools: std::borrow::Cow<'a, [ToolRecord]>,
    window: Window,
    asked: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// The end of now's minute: a run-rate counts the window up to there.
    now_end: DateTime<Utc>,
}

impl Scope<'_> {
    /// A ledger of the scope's records (calls, and a journal's tasks and tool executions).
    pub(crate) fn ledger(&self, ctx: &Context) -> Ledger {
        ctx.ledger(&self.records, &self.tasks, &self.tools)
    }

    /// The window to ask `ledger` (built from [`Scope::records`]) for.
    ///
    /// The ledger keeps older calls in hour, day and month buckets, and a `FROM..TO` window takes the buckets
    /// that start in it: `--since 09:05` would leave out the whole day bucket that starts at 00:00. So the
    /// records are cut to the asked window here, exactly, and the ledger is asked for the window widened to
    /// the bucket its start falls in ([`Ledger::covering`]); [`Scope::restore`] puts the asked bounds back.
    pub(crate) fn window(&self, ledger: &Ledger) -> CliResult<Window> {
        Ok(self.wide_window(ledger)?)
    }

    /// [`Scope::window`], with the ledger's error.
    pub(crate) fn wide_window(&self, ledger: &Ledger) -> Result<Window, tokenmeter::ledger::QueryError> {
        if self.asked.is_none() {
            return Ok(self.window);
        }
        let wide = ledger.covering(self.window)?;
        Ok(Window::range(wide.from, wide.to))
    }

    /// Puts the asked bounds on a report's window (its figures are the asked window's already).
    pub(crate) fn restore(&self, bounds: &mut WindowBounds) {
        if let Some((from, to)) = self.asked {
            *bounds = WindowBounds { from, to };
        }
    }

    /// [`Scope::restore`] for a usage summary: its span, its days and the run-rate over their elapsed part
    /// (as the ledger counts it), and its time series without the empty points outside the asked window (the
    /// ledger's summary also moves the end to the edge of the bucket it falls in).
    pub(crate) fn restore_summary(&self, s: &mut UsageSummary) {
        let Some((from, to)) = self.asked else { return };
        let end = to.min(self.now_end);
        // The ledger's run-rate is over the widened window's part up to now, from where the data begins when that is
        // later: its start is `run_rate_days` before that end. The asked window's is from the later of the two.
        let wide_end = s.window.to.min(self.now_end);
        let rate_start = wide_end - chrono::Duration::milliseconds((s.run_rate_days * 86_400_000.0).round() as i64);
        let days = (end - from.max(rate_start)).num_seconds().max(0) as f64 / 86_400.0;
        self.restore(&mut s.window);
        (s.period_start, s.period_end) = (s.window.from, s.window.to);
        s.days = (s.window.to - s.window.from).num_seconds() as f64 / 86_400.0;
        s.monthly_projection_usd = if days > 0.0 { s.monthly_projection_usd * s.run_rate_days / days } else { 0.0 };
        s.run_rate_days = days;
        drop_before(&mut s.time_series.points, from, |p| Some(p.timestamp));
        s.time_series.points.retain(|p| p.timestamp < to);
    }

    /// [`Scope::restore`] for query rows: per time grain, without the empty rows before the asked start.
    pub(crate) fn restore_rows(&self, q: &mut QueryResult) {
        let Some((from, _)) = self.asked else { return };
        self.restore(&mut q.window);
        if matches!(q.group_by, Some(GroupBy::Time(_))) {
            drop_before(&mut q.groups, from, |r| DateTime::parse_from_rfc3339(&r.key).ok().map(|t| t.to_utc()));
        }
    }

    /// [`Scope::restore`] for a cache report and its time series.
    pub(crate) fn restore_cache(&self, c: &mut CacheReport) {
        let Some((from, to)) = self.asked else { return };
        self.restore(&mut c.window);
        drop_before(&mut c.time_series, from, |p| Some(p.timestamp));
        c.time_series.retain(|p| p.timestamp < to);
    }
}

/// Drops the points of a series (oldest first) that start before the one holding `from`.
fn drop_before<T>(points: &mut Vec<T>, from: DateTime<Utc>, start: impl Fn(&T) -> Option<DateTime<Utc>>) {
    let n = points.iter().take_while(|p| start(p).is_some_and(|t| t <= from)).count();
    points.drain(..n.saturating_sub(1));
}

/// The window the arguments ask for (`default` when none). `--since`/`--until` dates are whole local days
/// in the context's time zone; an open start reaches back to where the whole window starts ([`everything`]: the
/// first record's local midnight), an open end to the last record (or now).
pub(crate) fn window<'a>(
    args: &WindowArgs,
    ctx: &Context,
    source: &'a Source,
    default: Window,
) -> CliResult<Scope<'a>> {
    use std::borrow::Cow;
    let records = &source.records[..];
    let minute_end = |t: DateTime<Utc>| t.duration_trunc(Duration::minutes(1)).unwrap_or(t) + Duration::minutes(1);
    let now_end = minute_end(ctx.now);
    // Every record: the ledger's window, and the bounds to report when asked for.
    let all = |window, asked| {
        Ok(Scope {
            records: Cow::Borrowed(records),
            tasks: Cow::Borrowed(&source.tasks[..]),
            tools: Cow::Borrowed(&source.tools[..]),
            window,
            asked,
            now_end,
        })
    };
    let last = records.iter().map(|r| counted_at(r.timestamp, ctx)).max();
    let unbounded = args.since.is_none() && args.until.is_none();
    if args.period.unwrap_or(default) == Window::All && unbounded {
        let (from, to) = everything(records, ctx);
        return all(Window::range(from, to), Some((from, to)));
    }
    if let Some(p) = args.period {
        return all(p, None);
    }
    if unbounded {
        return all(default, None);
    }
    let tz = ctx.time_zone;
    let from = match args.since {
        Some(Bound::Date(d)) => local_midnight(tz, d),
        Some(Bound::Time(t)) => t,
        // Where the whole window starts (the first record's local midnight): `--until` alone after the records
        // has the days and run-rate of `summary` without a window.
        None => everything(records, ctx).0,
    };
    let to = match args.until {
        Some(Bound::Date(d)) => local_midnight(tz, d + Duration::days(1)),
        Some(Bound::Time(t)) => t,
        None => last.unwrap_or(ctx.now).max(ctx.now) + Duration::minutes(1),
    };
    // `--until` alone before the first record's day (or now's, without records): the window asked for is there,
    // it only holds no record, as `--since A --until B` before the records does: an empty report, not an error.
    // Its open start, which would reach back to the first record's day, then reaches back to the start of
    // `--until`'s (last) local day.
    let from = if from >= to && args.since.is_none() {
        local_midnight(tz, (to - Duration::nanoseconds(1)).with_timezone(&tz).date_naive())
    } else {
        from
    };
    // `--since` alone after the last record and now: a window in the future, even where it starts inside the
    // minute the open end reaches to.
    let future = args.until.is_none() && from > last.unwrap_or(ctx.now).max(ctx.now);
    if from >= to || future {
        let msg = if args.until.is_some() {
            // A date --until ends with its day: say so, or `--until 2025-10-02` reads as 2025-10-03.
            format!(
                "--since ({}) must be before --until ({})",
                from.to_rfc3339(),
                match args.until {
                    Some(Bound::Date(d)) => format!("{d}, which ends at {}", to.to_rfc3339()),
                    _ => to.to_rfc3339(),
                }
            )
        } else {
            // The open end reaches a minute past the last record or now: the message names the record or now
            // itself. A window that starts after both is in the future, not merely empty.
            format!(
                "--since ({}) is after the last record and now ({}): nothing to report",
                from.to_rfc3339(),
                last.unwrap_or(ctx.now).max(ctx.now).to_rfc3339()
            )
        };
        return Err(CliError::usage(msg));
    }
    // Where the ledger counts a call: one stamped far ahead of the clock in the current minute (it was counted
    // there by the ledger and left out of a window of its own day, and stretched the open end a month ahead).
    let within = |t: DateTime<Utc>| {
        let t = counted_at(t, ctx);
        t >= from && t < to
    };
    let kept: Vec<CallRecord> = records.iter().filter(|r| within(r.timestamp)).cloned().collect();
    Ok(Scope {
        records: Cow::Owned(kept),
        tasks: Cow::Owned(source.tasks.iter().filter(|t| within(t.timestamp)).cloned().collect()),
        tools: Cow::Owned(source.tools.iter().filter(|t| within(t.timestamp)).cloned().collect()),
        window: Window::range(from, to),
        asked: Some((from, to)),
        now_end,
    })
}

/// Local midnight of `date` in `tz` (the first instant of that day when midnight does not exist).
/// The bounds of "everything" in `records`: from the local midnight of the first record's day, as the ledger's
/// day buckets start, but not from a month bucket's start once the records are 35 days old (`Window::All` would
/// start there): the window, its days and the run-rate over them do not change as the records age. (A whole
/// first day keeps the run-rate of a source whose first call was minutes ago from extrapolating those minutes.)
/// To the end of the current minute, or of the last record's if later.
pub(crate) fn everything(records: &[CallRecord], ctx: &Context) -> (DateTime<Utc>, DateTime<Utc>) {
    let minute_end = |t: DateTime<Utc>| t.duration_trunc(Duration::minutes(1)).unwrap_or(t) + Duration::minutes(1);
    let now_end = minute_end(ctx.now);
    let first = records.iter().map(|r| r.timestamp).min();
    let last = records.iter().map(|r| counted_at(r.timestamp, ctx)).max();
    let first_day = first.unwrap_or(ctx.now).min(ctx.now).with_timezone(&ctx.time_zone).date_naive();
    let from = local_midnight(ctx.time_zone, first_day);
    (from, now_end.max(last.map_or(now_end, minute_end)))
}

/// When the ledger counts a call stamped at `t`: at `t`, unless its minute starts more than 5 minutes after the
/// clock (`ctx.now`), which is counted in the current minute (the ledger's rule, which files calls by minute).
/// Calls after a `--now` given are left out before.
pub(crate) fn counted_at(t: DateTime<Utc>, ctx: &Context) -> DateTime<Utc> {
    if counted_now(t.timestamp(), ctx.now.timestamp()) { ctx.now } else { t }
}

/// Whether the ledger counts a call stamped at `ts` (Unix seconds) at `now` instead: its minute starts more than
/// 5 minutes after `now`.
pub(crate) fn counted_now(ts: i64, now: i64) -> bool {
    ts.div_euclid(60) * 60 > now + 300
}

/// Where local date `date` begins in `tz`, as the ledger's days do (a skipped midnight, a skipped date).
pub(crate) fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    tokenmeter::ledger::local_day_start(tz, date)
}

/// A heading line for tables: what was read, and the window.
pub(crate) fn heading(source: &Source, what: &str, from: DateTime<Utc>, to: DateTime<Utc>, tz: Tz) -> String {
    let kind = match source.info.kind {
        crate::source::SourceKind::Journal => "journal",
        crate::source::SourceKind::ClaudeCode => "Claude Code transcripts",
        crate::source::SourceKind::Records => "records file",
    };
    let fmt = |t: DateTime<Utc>| crate::render::local_time(t, tz, "%Y-%m-%d %H:%M");
    format!("{what}, {} to {} ({tz}), from the {kind} ({})\n", fmt(from), fmt(to), calls_read(source))
}

/// `12 calls read`, and `, 3 after --now left out` when `--now` left calls out.
pub(crate) fn calls_read(source: &Source) -> String {
    let read = crate::render::count(source.info.calls, "call");
    match source.info.after_now {
        0 => format!("{read} read"),
        n => format!("{read} read, {} after --now left out", crate::render::int(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::counted_now;

    #[test]
    fn a_call_counts_now_when_its_minute_starts_more_than_five_minutes_ahead() {
        // The ledger's rule, by minute: now 12:00:30; a call at 12:05:45 is in the 12:05 minute, 4:30 ahead, and
        // keeps its stamp (judged by its stamp, 5:15 ahead, it was moved to now and fell out of `--since`
        // windows the ledger counted it in); one at 12:06:00 starts a minute 5:30 ahead.
        let now = 12 * 3_600 + 30;
        assert!(!counted_now(12 * 3_600 + 5 * 60 + 45, now));
        assert!(counted_now(12 * 3_600 + 6 * 60, now));
        assert!(!counted_now(now - 86_400, now));
    }
}
