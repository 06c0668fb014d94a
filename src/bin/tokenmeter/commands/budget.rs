//! `budget`: budgets from a TOML file, evaluated against the source's records.
//!
//! The budget state comes from the library's own budget accounting: a [`TokenMeter`] built with the budgets
//! and a journal holding the records, which it replays at build exactly as a restarted application would
//! (periods, spend and crossed thresholds come back; an alert owed after the replay fires, unheard, when the
//! status is read, into that journal). The journal is a private temporary
//! copy, so the source itself is never written to.

use std::io::Write;

use serde::Serialize;
use tokenmeter::budget::{BudgetAmount, BudgetState, load_budgets_file_with_time_zone};
use tokenmeter::journal::{JournalConfig, SCHEMA_VERSION};
use tokenmeter::{CallRecord, ManualClock, TokenMeter};

use crate::cli::{BudgetArgs, RowsFormat};
use crate::render::{Style, num, pct, push_table, sanitize};
use crate::source::{Context, Source, SourceInfo};
use crate::{CliError, CliResult, print_out};

#[derive(Debug, Serialize)]
struct BudgetOutput<'a> {
    source: &'a SourceInfo,
    budgets: Vec<BudgetState>,
}

pub(super) fn run(source_args: &crate::cli::SourceArgs, ctx: &Context, style: &Style, args: &BudgetArgs) -> CliResult {
    if !args.file.exists() {
        return Err(CliError::data(format!(
            "budgets file {} does not exist (pass --file FILE; format in the tokenmeter::budget docs)",
            args.file.display()
        )));
    }
    // `--tz` is the time zone of a budget whose table has no `time_zone` (as it is of every other command's days).
    let budgets =
        load_budgets_file_with_time_zone(&args.file, ctx.time_zone).map_err(|e| CliError::data(e.to_string()))?;
    let source = Source::load(source_args, ctx)?;
    remove_left_private_dirs(false);
    // A budget of each value of a dimension has no state before a value spends: the table says so.
    let each: Vec<(String, String)> = budgets
        .iter()
        .filter(|b| matches!(b.scope(), tokenmeter::budget::BudgetScope::Each { .. }))
        .map(|b| (b.name().to_owned(), b.scope().to_string()))
        .collect();
    let configured = budgets.len();
    let states = evaluate(budgets, &source.records, ctx)?;
    match args.format {
        RowsFormat::Json => print_out(&crate::render::json(&BudgetOutput { source: &source.info, budgets: states })?),
        RowsFormat::Csv => print_out(&csv(&states, ctx.time_zone)),
        RowsFormat::Table => print_out(&table(&states, configured, &each, ctx, style)),
    }
}

/// The budgets' states as CSV, one row each (a budget of each value of a dimension: one per value that has
/// spent). Amounts are in `unit`: exact dollars (`usd`) or tokens; `time_to_limit_s` is empty where the rate does
/// not reach the limit in the period, `thresholds_crossed` the percentages crossed, space-separated.
fn csv(states: &[BudgetState], tz: chrono_tz::Tz) -> String {
    use crate::sheet::{Sheet, local, money, opt_text, ratio, text};
    let value = |a: &BudgetAmount| match a {
        BudgetAmount::Usd(m) => money(*m),
        BudgetAmount::Tokens(t) => t.to_string(),
    };
    let mut out = Sheet::new(&[
        "budget",
        "scope",
        "member",
        "period",
        "action",
        "unit",
        "spent",
        "limit",
        "remaining",
        "utilization",
        "projected",
        "period_start",
        "resets_at",
        "time_to_limit_s",
        "over_budget",
        "thresholds_crossed",
        "calls",
        "unpriced_calls",
    ]);
    for s in states {
        // A budgets file may come with a repository: its names never carry an escape sequence out.
        let clean = |v: &str| text(&sanitize(v, false));
        out.row([
            clean(&s.budget),
            clean(&s.scope.to_string()),
            opt_text(s.member.as_deref().map(|m| sanitize(m, false)).as_deref()),
            s.period.to_string(),
            format!("{:?}", s.action).to_lowercase(),
            match s.limit {
                BudgetAmount::Usd(_) => "usd",
                BudgetAmount::Tokens(_) => "tokens",
            }
            .to_owned(),
            value(&s.spent),
            value(&s.limit),
            value(&s.remaining),
            ratio(s.utilization),
            s.projected.as_ref().map(value).unwrap_or_default(),
            local(s.period_start, tz),
            local(s.resets_at, tz),
            s.time_to_limit.map(|d| ratio(d.as_secs_f64())).unwrap_or_default(),
            s.over_budget.to_string(),
            s.thresholds_crossed.iter().map(u32::to_string).collect::<Vec<_>>().join(" "),
            s.calls.to_string(),
            s.unpriced_calls.to_string(),
        ]);
    }
    out.finish()
}

pub(crate) fn evaluate(
    budgets: Vec<tokenmeter::Budget>,
    records: &[CallRecord],
    ctx: &Context,
) -> CliResult<Vec<BudgetState>> {
    // Records without a cost (Claude Code transcripts, hand-made files) are priced from the price book first,
    // as the ledger behind every other command prices them, so that budgets agree with the reports.
    let now_ns = ctx.now.timestamp_nanos_opt().unwrap_or(i64::MAX);
    let mut priced: Vec<CallRecord> = records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if r.cost.is_none() && r.metered {
                r.cost = r.model.as_deref().and_then(|m| ctx.prices.resolve(m)).map(|p| p.price_call(&r));
            }
            // A call ending after now (stamped by a clock ahead of this one: with `--now`, such calls are not
            // in the source) counts now, in the current period, as the other commands count it in the current
            // minute. The journal's replay would leave out one more than an hour ahead, and say so on stderr.
            if r.ended_at_unix_nanos() > now_ns {
                let duration_ns = i64::try_from(r.duration_us).unwrap_or(i64::MAX / 1_000).saturating_mul(1_000);
                let start = now_ns.saturating_sub(duration_ns);
                if start >= 0 {
                    r.timestamp = chrono::DateTime::from_timestamp_nanos(start);
                } else {
                    // A duration reaching back before 1970 (a corrupt one): the replay refuses such a start, so
                    // the call is made to start and end now.
                    r.timestamp = ctx.now;
                    r.duration_us = 0;
                }
            }
            r
        })
        .collect();
    // A budget counts a call when it ended, so it reads them in that order. Sorted by start, a call that ended
    // after midnight opened the new day before one that started later but ended before midnight, and the budget
    // took that one for a call racing another thread's over midnight: it counted in the new day.
    priced.sort_by_key(CallRecord::ended_at_unix_nanos);
    let dir = private_dir()?;
    let dir = &dir.0;
    (|| {
        write_journal(dir, &priced)?;
        let mut builder = TokenMeter::builder()
            .with_clock(ManualClock::new(ctx.now))
            .with_price_book(ctx.prices.clone())
            // Scope values as long as the records' (a Claude Code project folder's name passes the default 128
            // bytes); nothing is captured here, so nothing is cut.
            .with_max_dimension_len(usize::MAX)
            .with_journal(JournalConfig::new(dir).with_max_age(None));
        for b in budgets {
            // A scope's value as the records' were read (control characters written escaped), or a value with an
            // escape sequence would match none of its calls.
            let b = match b.scope() {
                tokenmeter::budget::BudgetScope::Dimension { name, value } => {
                    match crate::render::sanitize(value, false) {
                        std::borrow::Cow::Owned(shown) => {
                            let scope = tokenmeter::budget::BudgetScope::dimension(name.to_string(), shown);
                            b.with_scope(scope)
                        }
                        std::borrow::Cow::Borrowed(_) => b,
                    }
                }
                _ => b,
            };
            // A budget on a dimension of the application's own (`with_dimension` there) reads it from the
            // records; one that no record carries is most likely misspelt.
            let own = |name: &str| !tokenmeter::capture::fields::BUILTIN_DIMENSIONS.contains(&name);
            let scoped = match b.scope() {
                tokenmeter::budget::BudgetScope::Dimension { name, value } => Some((name, Some(value))),
                tokenmeter::budget::BudgetScope::Each { name } if &**name != "model" => Some((name, None)),
                _ => None,
            };
            if let Some((name, value)) = scoped {
                let at = b.scope_written_at().map(|at| format!("{at}: ")).unwrap_or_default();
                if own(name) && !records.iter().any(|r| r.dimensions.extra.iter().any(|(k, _)| k == name)) {
                    ctx.note(&format!(
                        "tokenmeter: warning: {at}budget `{}`: no call in the source has the dimension `{name}` \
                         (dimensions: {})",
                        b.name(),
                        tokenmeter::capture::fields::BUILTIN_DIMENSIONS.join(", ")
                    ));
                } else if value.is_none() && !records.iter().any(|r| r.dimensions.get(name).is_some()) {
                    ctx.note(&format!(
                        "tokenmeter: warning: {at}budget `{}`: no call in the source has a {name}, so it counts none",
                        b.name()
                    ));
                } else if let Some(value) = value
                    && !records.iter().any(|r| r.dimensions.get(name) == Some(&**value))
                {
                    // A misspelt value (`-home-dev-zzz`) spent $0.00 without a word, as `compare` does not.
                    let long = if value.len() > tokenmeter::DEFAULT_MAX_DIMENSION_LEN {
                        format!(
                            "; the value is {} bytes, and a meter records values cut at its dimension length, {} \
                             bytes unless the application set another (its meter refuses a longer scope)",
                            value.len(),
                            tokenmeter::DEFAULT_MAX_DIMENSION_LEN
                        )
                    } else {
                        String::new()
                    };
                    ctx.note(&format!(
                        "tokenmeter: warning: {at}budget `{}`: no call in the source has {name}={value} (values \
                         match exactly, case included{long})",
                        b.name()
                    ));
                }
                if own(name) {
                    builder = builder.with_dimension(name.to_string());
                }
            }
            builder = builder.with_budget(b);
        }
        let meter = builder.try_build().map_err(|e| match e {
            // The library's advice (`PriceBook::set`) is the application's; here the price book is `--prices`.
            tokenmeter::BuildError::BudgetModelUnpriced { at, budget, model } => CliError::data(format!(
                "{at}budget `{budget}` counts dollars on model `{model}`, which the price book has no price for: its \
                 calls would count $0; fix the model id, or pass --prices with a price file that gives it one (the \
                 one the application uses)"
            )),
            e => CliError::data(e.to_string()),
        })?;
        let states = meter.budget_status();
        // Past a budget's `max_members`, further values share its `(other)` row: as the application would count
        // them, but a row per value was expected.
        for (budget, calls) in meter.budget_members_overflow() {
            ctx.note(&format!(
                "tokenmeter: note: budget `{budget}` holds at most its max_members values at once: {} of further \
                 values count together in its `(other)` row, as the application's meter counts them (raise \
                 max_members in the file to see each)",
                crate::render::count(calls, "call")
            ));
        }
        Ok(states)
    })()
}

/// A directory of the process's own, removed when dropped (also when the evaluation returns early or panics),
/// holding an exclusive lock on its [`LOCK_FILE`] while it lives: [`remove_left_private_dirs`] removes another
/// process's directory only when it can take that lock, i.e. when that process is gone.
struct PrivateDir(std::path::PathBuf, Option<std::fs::File>);

/// The lock file inside a private directory.
const LOCK_FILE: &str = ".lock";

impl Drop for PrivateDir {
    fn drop(&mut self) {
        // The lock file closed first: a file open in it keeps a directory from being removed on some systems.
        drop(self.1.take());
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A new directory of this process's own under the temporary directory (never one that already exists), that
/// only its owner can read: it holds the source's records (sessions, users, projects, costs).
fn private_dir() -> CliResult<PrivateDir> {
    let base = std::env::temp_dir();
    let mut last = None;
    for n in 0..100 {
        let dir = base.join(format!("tokenmeter-budget-{}-{n}", std::process::id()));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        match builder.create(&dir) {
            Ok(()) => {
                // A file system without locks (some network ones) leaves the directory unlocked: another run
                // then removes it only once it is an hour old.
                let lock = std::fs::File::create(dir.join(LOCK_FILE)).ok().filter(|f| f.lock().is_ok());
                return Ok(PrivateDir(dir, lock));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(CliError::data(format!("cannot create {}: {e}", dir.display()))),
        }
    }
    Err(CliError::data(format!(
        "cannot create a temporary directory in {}: {}",
        base.display(),
        last.map_or_else(String::new, |e| e.to_string())
    )))
}

/// Removes the private directories [`evaluate`] left behind: this process's own (`own`: an MCP server stopping
/// while a `track` call it abandoned was still evaluating), and those of processes that no longer run (killed
/// mid-evaluation: a client stops an MCP server with SIGTERM), told by their lock. Only directories named as
/// [`private_dir`] names them and owned by this user; errors are ignored (another process may be removing them).
pub(crate) fn remove_left_private_dirs(own: bool) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    let me = std::process::id();
    // This process's effective user, who owns what it creates (`/proc/self`, read before, is Linux's alone: on
    // macOS no other process's directory was ever removed).
    #[cfg(unix)]
    // SAFETY: `geteuid` takes nothing, cannot fail and touches no memory.
    let uid = Some(unsafe { libc::geteuid() });
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("tokenmeter-budget-")) else { continue };
        let Some((pid, n)) = rest.split_once('-') else { continue };
        let (Ok(pid), true) = (pid.parse::<u32>(), !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) else {
            continue;
        };
        // Another process's: when its lock can be taken (the lock goes with the process, in any PID namespace or
        // on any host sharing the directory), or, without a lock file, an hour after it was last changed.
        let gone = if pid == me {
            own
        } else {
            match std::fs::File::open(entry.path().join(LOCK_FILE)) {
                Ok(f) => f.try_lock().is_ok(),
                Err(_) => entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > std::time::Duration::from_secs(3_600))),
            }
        };
        // Another process's directory only when this user owns it.
        #[cfg(unix)]
        let mine = {
            use std::os::unix::fs::MetadataExt;
            entry.metadata().is_ok_and(|m| m.is_dir() && (pid == me || uid == Some(m.uid())))
        };
        #[cfg(not(unix))]
        let mine = pid == me && entry.metadata().is_ok_and(|m| m.is_dir());
        if gone && mine {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Writes `records` as one journal file in `dir`.
fn write_journal(dir: &std::path::Path, records: &[CallRecord]) -> CliResult {
    #[derive(Serialize)]
    struct Line<'a> {
        v: u32,
        call: &'a CallRecord,
    }
    let path = dir.join("tokenmeter-2000-01-01.jsonl");
    let io = |e: std::io::Error| CliError::data(format!("cannot write {}: {e}", path.display()));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io)?);
    for call in records {
        serde_json::to_writer(&mut f, &Line { v: SCHEMA_VERSION, call }).map_err(|e| CliError::data(e.to_string()))?;
        f.write_all(b"\n").map_err(io)?;
    }
    f.flush().map_err(io)
}

pub(crate) fn amount(a: &BudgetAmount) -> String {
    match a {
        BudgetAmount::Usd(m) => crate::render::usd(m.as_usd()),
        BudgetAmount::Tokens(t) => format!("{} tokens", crate::render::int(*t)),
    }
}

/// A budget's spend or projection: dollars marked `+ unpriced` (`unpriced` alone when none of its calls had a
/// price) when calls in its scope had no price; tokens as they are (every call's count).
pub(crate) fn priced_amount(a: &BudgetAmount, s: &BudgetState) -> String {
    match a {
        BudgetAmount::Usd(m) => crate::render::share_cost(m.as_usd(), s.calls, s.unpriced_calls),
        BudgetAmount::Tokens(_) => amount(a),
    }
}

/// A budget's name as a line of text shows it, with the value's scope for one value of a budget of each value
/// (`per-user (user=alice)`), without escape sequences.
pub(crate) fn label(s: &BudgetState) -> String {
    match &s.member {
        Some(_) => format!("{} ({})", sanitize(&s.budget, false), sanitize(&s.scope.to_string(), false)),
        None => sanitize(&s.budget, false).into_owned(),
    }
}

/// `each`: the budgets of each value of a dimension, by name and scope (`user=*`).
fn table(states: &[BudgetState], configured: usize, each: &[(String, String)], ctx: &Context, style: &Style) -> String {
    let tz = ctx.time_zone;
    let mut out = format!("Budgets at {} ({tz})\n\n", crate::render::local_time(ctx.now, tz, "%Y-%m-%d %H:%M"));
    if configured == 0 {
        // An empty table would read as "nothing over budget".
        out.push_str(
            "The budgets file holds no budgets: add a `[budgets.<name>]` table (format in tokenmeter::budget).\n",
        );
        return out;
    }
    let mut t = style.table(["budget", "scope", "period", "spent", "limit", "used", "projected", "resets", "action"]);
    for s in states {
        let band = match s.utilization {
            u if u >= 1.0 => tokenmeter::Band::Red,
            u if u >= 0.75 => tokenmeter::Band::Amber,
            _ => tokenmeter::Band::Green,
        };
        t.add_row(vec![
            // A budgets file may come with a repository: its names never carry an escape sequence out.
            comfy_table::Cell::new(sanitize(&s.budget, false)),
            comfy_table::Cell::new(sanitize(&s.scope.to_string(), false)),
            comfy_table::Cell::new(s.period.to_string()),
            // Spend on models the price book does not know is not in the figure: say so, as other commands do.
            num(priced_amount(&s.spent, s)),
            num(amount(&s.limit)),
            crate::render::band_cell(pct(s.utilization), band),
            // Nor in the projection made from it.
            num(s.projected.as_ref().map_or_else(|| "-".to_owned(), |p| priced_amount(p, s))),
            comfy_table::Cell::new(crate::render::local_time(s.resets_at, tz, "%Y-%m-%d %H:%M")),
            comfy_table::Cell::new(format!("{:?}", s.action).to_lowercase()),
        ]);
    }
    if !states.is_empty() {
        push_table(&mut out, "", &t, style);
    }
    for (name, scope) in each {
        if !states.iter().any(|s| s.budget.as_ref() == name.as_str()) {
            let (dimension, _) = scope.split_once('=').unwrap_or((scope.as_str(), ""));
            out.push_str(&format!(
                "`{}` ({}): no {} has spent in its current period.\n",
                sanitize(name, false),
                sanitize(scope, false),
                sanitize(dimension, false)
            ));
        }
    }
    let over: Vec<_> = states.iter().filter(|s| s.over_budget).map(label).collect();
    if !over.is_empty() {
        out.push_str(&style.alert(&format!("Over budget: {}", over.join(", "))));
        out.push('\n');
    }
    out
}
