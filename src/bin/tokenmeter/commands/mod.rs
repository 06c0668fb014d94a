//! One function per command: read the source, ask the ledger for the library's reports, print them.

mod analysis;
pub(crate) mod budget;
mod show;
mod summary;
mod watch;

pub(crate) use summary::row_label;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use tokenmeter::CallRecord;
use tokenmeter::ledger::Window;

use crate::cli::{Bound, Cli, Command, WindowArgs};
use crate::render::Style;
use crate::source::{Context, Source};
use crate::{CliError, CliResult};

/// Runs the parsed command line.
pub(crate) fn run(cli: Cli) -> CliResult {
    let ctx = Context::new(&cli.common)?;
    let style = Style::new(cli.common.color);
    match &cli.command {
        Command::Watch(args) => watch::run(&cli.source, &ctx, &style, args),
        Command::Budget(args) => budget::run(&cli.source, &ctx, &style, args),
        Command::Mcp(args) => crate::mcp::run(&cli.source, &ctx, args),
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
                Command::Watch(_) | Command::Budget(_) | Command::Mcp(_) => Ok(()),
            }
        }
    }
}

/// The window the arguments ask for (`default` when none). `--since`/`--until` dates are whole local days
/// in the context's time zone; an open end reaches the first or last record (or now).
pub(crate) fn window(args: &WindowArgs, ctx: &Context, records: &[CallRecord], default: Window) -> CliResult<Window> {
    if let Some(p) = args.period {
        return Ok(p);
    }
    if args.since.is_none() && args.until.is_none() {
        return Ok(default);
    }
    let tz = ctx.time_zone;
    let first = records.first().map(|r| r.timestamp);
    let last = records.last().map(|r| r.timestamp);
    let from = match args.since {
        Some(Bound::Date(d)) => local_midnight(tz, d),
        Some(Bound::Time(t)) => t,
        None => first.unwrap_or(ctx.now).min(ctx.now) - Duration::minutes(1),
    };
    let to = match args.until {
        Some(Bound::Date(d)) => local_midnight(tz, d + Duration::days(1)),
        Some(Bound::Time(t)) => t,
        None => last.unwrap_or(ctx.now).max(ctx.now) + Duration::minutes(1),
    };
    if from >= to {
        return Err(CliError::usage(format!(
            "--since ({}) must be before --until ({})",
            from.to_rfc3339(),
            to.to_rfc3339()
        )));
    }
    Ok(Window::range(from, to))
}

/// Local midnight of `date` in `tz` (the first instant of that day when midnight does not exist).
fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let naive = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        chrono::LocalResult::None => tz
            .from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
            .map_or_else(|| naive.and_utc(), |t| t.with_timezone(&Utc)),
    }
}

/// A heading line for tables: what was read, and the window.
pub(crate) fn heading(source: &Source, what: &str, from: DateTime<Utc>, to: DateTime<Utc>, tz: Tz) -> String {
    let kind = match source.info.kind {
        crate::source::SourceKind::Journal => "journal",
        crate::source::SourceKind::ClaudeCode => "Claude Code transcripts",
        crate::source::SourceKind::Records => "records file",
    };
    let fmt = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
    format!("{what}, {} to {} ({tz}), from the {kind} ({} calls read)\n", fmt(from), fmt(to), source.info.calls)
}
