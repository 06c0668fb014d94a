//! `statusline`: one line for Claude Code's status line (its `statusLine` command setting): the session's cost,
//! today's, the open usage block's with its rate and time left, and optionally the most used budget.
//!
//! Claude Code runs the command each time the conversation changes, with the session's details as JSON on
//! standard input, and shows the first line it prints. So it reads only the transcripts written lately: those
//! modified in the last two days (the whole of each, and always the session's own), which hold every call of the
//! last two days. The open block is placed by the calls before it (each block opens at the first call after the
//! last one closed), so that is enough only when those calls include a pause of a block's length before the open
//! block; when they do not (work without such a pause for two days), the files of 8 and 32 days, then all of
//! them, are read. With `--budgets`, the calls are read back to the start of the budgets' earliest period at least
//! (a month's), and the most used budget is shown.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tokenmeter::CallRecord;
use tokenmeter::analysis::{BlockProjection, UsageBlock, usage_blocks};
use tokenmeter::budget::{BudgetState, load_budgets_file_with_time_zone};
use tokenmeter::pricing::Money;

use crate::cli::{LineFormat, SourceArgs, StatuslineArgs};
use crate::render::{Style, priced_usd, sanitize, time_left};
use crate::source::{Context, Source, load_claude_code_where};
use crate::{CliError, CliResult, print_out};

/// How far back the calls are read, in turn, until the open block is placed for certain; then all of them. The
/// first reaches past local midnight (today's figure) and two blocks of the longest length.
const LOOKBACKS: [Duration; 3] = [Duration::days(2), Duration::days(8), Duration::days(32)];

/// A transcript is read when it was modified at most this long before the lookback starts: a call's line is
/// written as it ends, so a file holding a call from the lookback was modified after it; the margin covers a
/// line written late.
const MODIFIED_MARGIN: Duration = Duration::hours(1);

/// The most of standard input read: Claude Code's status JSON is a few hundred bytes.
const MAX_INPUT: u64 = 1 << 20;

/// How long standard input may stay open: Claude Code writes its JSON and closes it at once.
const INPUT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What Claude Code writes to a status line command's standard input (the fields read here; the rest is
/// ignored).
#[derive(Debug, Default, Deserialize)]
struct Input {
    session_id: Option<String>,
    transcript_path: Option<PathBuf>,
    model: Option<InputModel>,
}

#[derive(Debug, Default, Deserialize)]
struct InputModel {
    id: Option<String>,
    display_name: Option<String>,
}

/// `statusline --format json`: what the line is made from.
#[derive(Debug, Serialize)]
struct Out {
    generated_at: DateTime<Utc>,
    /// The model Claude Code named (its display name, else its id).
    model: Option<String>,
    /// The session Claude Code named.
    session_id: Option<String>,
    /// That session's calls, whenever made (absent without a session id).
    session: Option<Spend>,
    /// The calls since local midnight (in `--tz`).
    today: Spend,
    /// The block open now, if one is.
    block: Option<UsageBlock>,
    /// Its rates and projection, from 10 minutes after its first call.
    block_rate: Option<BlockProjection>,
    /// The budgets of `--budgets`, in the file's order (absent without it); the line shows the most used.
    #[serde(skip_serializing_if = "Option::is_none")]
    budgets: Option<Vec<BudgetState>>,
    /// How far back the calls were read, hours (`null`: all of them).
    read_back_hours: Option<i64>,
    /// Files read.
    files: u64,
}

/// Calls and their cost.
#[derive(Debug, Default, Serialize)]
struct Spend {
    calls: u64,
    /// Calls with usage on a model without a price: in `tokens`, not in the cost.
    unpriced_calls: u64,
    tokens: u64,
    cost_usd: f64,
    cost_picos: Money,
}

impl Spend {
    fn of<'a>(calls: impl Iterator<Item = &'a CallRecord>) -> Spend {
        let mut s = Spend::default();
        for c in calls {
            s.calls += 1;
            s.tokens = s.tokens.saturating_add(c.tokens.total());
            s.unpriced_calls += u64::from(c.is_unpriced());
            if let Some(cost) = &c.cost {
                s.cost_picos += cost.total;
            }
        }
        s.cost_usd = s.cost_picos.as_usd();
        s
    }

    fn text(&self) -> String {
        priced_usd(self.cost_usd, self.unpriced_calls, Some(self.calls))
    }
}

pub(super) fn run(source: &SourceArgs, ctx: &Context, style: &Style, args: &StatuslineArgs) -> CliResult {
    let input = read_input(ctx);
    match (figures(source, ctx, args, &input), args.format) {
        (Ok(out), LineFormat::Json) => print_out(&crate::render::json(&out)?),
        (Ok(out), LineFormat::Line) => print_out(&format!("{}\n", line(&out, ctx, style))),
        (Err(e), _) => failed(args, e),
    }
}

/// `text`, a failure's reason, as the status line: one line, control characters replaced.
pub(crate) fn print_failure_line(text: &str) -> CliResult {
    print_out(&format!("{}\n", crate::render::sanitize(text, false)))
}

/// A failure, before the figures (an unreadable `--prices` file) or making them: with `--format line`, the reason is
/// the line and the exit status 0, for Claude Code shows what the command prints, and nothing when it fails.
pub(super) fn failed(args: &StatuslineArgs, e: CliError) -> CliResult {
    match args.format {
        LineFormat::Line => print_failure_line(&format!("tokenmeter: {e}")),
        LineFormat::Json => Err(e),
    }
}

/// Claude Code's status JSON, when standard input is not a terminal; a warning and none when it is not JSON, or
/// not closed within [`INPUT_WAIT`] (a pipe nothing writes to would hold the line for good).
fn read_input(ctx: &Context) -> Input {
    if std::io::stdin().is_terminal() {
        return Input::default();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    // Left blocked on a pipe that never closes: the process ends without it.
    let _ = std::thread::Builder::new().name("stdin".into()).spawn(move || {
        let mut text = String::new();
        let read = std::io::stdin().lock().take(MAX_INPUT).read_to_string(&mut text).map(|_| text);
        let _ = tx.send(read);
    });
    let text = match rx.recv_timeout(INPUT_WAIT) {
        Ok(Ok(text)) => text,
        Ok(Err(e)) => {
            ctx.note(&format!("tokenmeter: warning: cannot read standard input: {e}"));
            return Input::default();
        }
        Err(_) => {
            ctx.note(&format!(
                "tokenmeter: warning: standard input was not closed within {} s; left out",
                INPUT_WAIT.as_secs()
            ));
            return Input::default();
        }
    };
    if text.trim().is_empty() {
        return Input::default();
    }
    serde_json::from_str(&text).unwrap_or_else(|e| {
        ctx.note(&format!("tokenmeter: warning: standard input is not Claude Code's status JSON ({e}); left out"));
        Input::default()
    })
}

fn figures(source_args: &SourceArgs, ctx: &Context, args: &StatuslineArgs, input: &Input) -> CliResult<Out> {
    let now = ctx.now;
    let budgets = match &args.budgets {
        Some(file) if !file.exists() => {
            return Err(CliError::data(format!("budgets file {} does not exist", file.display())));
        }
        Some(file) => {
            Some(load_budgets_file_with_time_zone(file, ctx.time_zone).map_err(|e| CliError::data(e.to_string()))?)
        }
        None => None,
    };
    // A budget's period may begin before the calls of two days (a month's): the calls are read back to it at least.
    let budgets_from = budgets.iter().flatten().map(|b| b.period_start(now)).min();
    let block_length = Duration::hours(i64::from(args.hours));
    // A records file is read whole whatever the lookback: once.
    let whole = source_args.records.is_some();
    let mut lookbacks = LOOKBACKS
        .into_iter()
        .map(Some)
        .chain([None])
        .skip_while(|l| whole || l.zip(budgets_from).is_some_and(|(l, from)| now - l > from));
    let (source, lookback, notes) = loop {
        let lookback = lookbacks.next().flatten();
        // Only the last read's notes are printed: each read says what the one before said, and more.
        let (quiet, notes) = ctx.keeping_notes();
        let source = load(source_args, &quiet, lookback.map(|l| now - l), input)?;
        // Reading further back leaves a placed block placed: a budget's longer read needs no second look.
        let settled = match lookback {
            Some(l) => placed(&source.records, now, now - l, block_length),
            None => true,
        };
        if settled {
            break (source, lookback, notes);
        }
    };
    for note in notes.lock().iter() {
        ctx.note(note);
    }
    let states = match budgets {
        Some(b) => {
            super::budget::remove_left_private_dirs(false);
            // Only the calls that ended in a period are replayed (a month of calls, not all of them).
            let from = budgets_from.and_then(|f| f.timestamp_nanos_opt()).unwrap_or(i64::MIN);
            let recent: Vec<CallRecord> =
                source.records.iter().filter(|r| r.ended_at_unix_nanos() >= from).cloned().collect();
            Some(super::budget::evaluate(b, &recent, ctx)?)
        }
        None => None,
    };
    let report = usage_blocks(&source.records, now, args.hours)?;
    let midnight = super::local_midnight(ctx.time_zone, now.with_timezone(&ctx.time_zone).date_naive());
    let until_now = |c: &&CallRecord| c.timestamp <= now;
    let session = input.session_id.as_deref().filter(|s| !s.is_empty()).map(|id| {
        Spend::of(source.records.iter().filter(until_now).filter(|c| c.dimensions.session.as_deref() == Some(id)))
    });
    let today = Spend::of(source.records.iter().filter(until_now).filter(|c| c.timestamp >= midnight));
    let model = input.model.as_ref().and_then(|m| m.display_name.clone().or_else(|| m.id.clone()));
    Ok(Out {
        generated_at: now,
        model: model.map(|m| sanitize(&m, false).into_owned()),
        session_id: input.session_id.clone(),
        session,
        today,
        block: report.blocks.iter().find(|b| b.active).cloned(),
        block_rate: report.active,
        budgets: states,
        read_back_hours: lookback.map(|l| l.num_hours()),
        files: source.info.files,
    })
}

/// The calls from `from` on (all of them without it): a journal's day files from that UTC day; the transcripts
/// modified since, and the session's own (its file, `transcript_path`, and its sub-agents' files), whenever
/// modified; a records file whole.
fn load(args: &SourceArgs, ctx: &Context, from: Option<DateTime<Utc>>, input: &Input) -> CliResult<Source> {
    if args.records.is_some() || args.journal.is_some() {
        return Source::load_since(args, ctx, from.map(|f| f.date_naive()));
    }
    let dir = args.claude_code.clone().unwrap_or_default();
    let cutoff = from.map(|f| std::time::SystemTime::from(f - MODIFIED_MARGIN));
    let session = input.session_id.as_deref().filter(|s| !s.is_empty());
    let source = load_claude_code_where(&dir, ctx, &|f| {
        let Some(cutoff) = cutoff else { return true };
        // A file whose time cannot be read is read.
        let modified = std::fs::metadata(&f.path).and_then(|m| m.modified()).map_or(true, |t| t >= cutoff);
        modified || input.transcript_path.as_deref() == Some(&*f.path) || session == Some(&*f.session)
    })?;
    Source::checked(source, ctx)
}

/// Whether the block open at `now` (or that none is) is certain from `records`, which hold every call from `from`
/// on but maybe not all before: a block opens at the first call after the previous one closed, so blocks are
/// placed for certain from a call made at least a block's length after `from` with no call in the block's length
/// before it (whatever came earlier, the previous block had closed by then). Without such a call, no block is open
/// when no call was made from a block's length after `from` on (`now` at least two blocks after `from`).
fn placed(records: &[CallRecord], now: DateTime<Utc>, from: DateTime<Utc>, length: Duration) -> bool {
    let mut times: Vec<DateTime<Utc>> = records.iter().map(|c| c.timestamp).filter(|t| *t <= now).collect();
    times.sort_unstable();
    let mut previous: Option<DateTime<Utc>> = None;
    let mut late_call = false;
    for t in times {
        if t >= from + length {
            late_call = true;
            if previous.is_none_or(|p| t - p >= length) {
                return true;
            }
        }
        previous = Some(t);
    }
    !late_call
}

/// `Opus 4.5 | session $1.23 | today $4.56 | block $2.10 at $1.05/h, 2h 13m left`.
/// With colour (`--color always`: Claude Code's status line shows it), the budget's share green, amber from 75%,
/// and the budget red when over, as the `budget` table colours them.
fn line(o: &Out, ctx: &Context, style: &Style) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = &o.model {
        parts.push(m.clone());
    }
    if let Some(s) = &o.session {
        parts.push(format!("session {}", s.text()));
    }
    parts.push(format!("today {}", o.today.text()));
    parts.push(match &o.block {
        Some(b) => {
            let cost = priced_usd(b.cost_usd, b.unpriced_calls, Some(b.calls));
            let left = time_left(b.end - ctx.now);
            match &o.block_rate {
                Some(r) => {
                    format!("block {cost} at {}/h, {left} left", priced_usd(r.usd_per_hour, r.unpriced_calls, None))
                }
                None => format!("block {cost}, {left} left"),
            }
        }
        None => "no open block".to_owned(),
    });
    let most_used = o.budgets.iter().flatten().max_by(|a, b| a.utilization.total_cmp(&b.utilization));
    if let Some(b) = most_used {
        use super::budget::{amount, priced_amount};
        let name = super::budget::label(b);
        parts.push(if b.over_budget {
            style.alert(&format!("{name} OVER: {} of {}", priced_amount(&b.spent, b), amount(&b.limit)))
        } else {
            let band = if b.utilization >= 0.75 { tokenmeter::Band::Amber } else { tokenmeter::Band::Green };
            format!("{name} {} of {}", style.band(&crate::render::pct(b.utilization), band), amount(&b.limit))
        });
    }
    parts.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(t: &str) -> CallRecord {
        serde_json::from_value(serde_json::json!({
            "timestamp": t, "duration_us": 1, "tokens": {"input": 1}, "metered": true, "outcome": {"status": "ok"}
        }))
        .unwrap()
    }

    fn at(t: &str) -> DateTime<Utc> {
        t.parse().unwrap()
    }

    #[test]
    fn blocks_are_placed_from_a_pause_of_a_blocks_length() {
        let (now, from, five) = (at("2026-03-10T12:00:00Z"), at("2026-03-08T12:00:00Z"), Duration::hours(5));
        // A pause of 6 hours before 09:00 on the 10th: placed.
        let paused = [call("2026-03-08T11:00:00Z"), call("2026-03-10T03:00:00Z"), call("2026-03-10T09:00:00Z")];
        assert!(placed(&paused, now, from, five));
        // Calls every 4 hours from before `from` until now: the chain may begin anywhere before.
        let busy: Vec<CallRecord> =
            (0..14).map(|i| call(&(at("2026-03-08T08:00:00Z") + Duration::hours(4 * i)).to_rfc3339())).collect();
        assert!(!placed(&busy, now, from, five));
        // Nothing from `from` + 5h on: no block can be open.
        assert!(placed(&[call("2026-03-08T13:00:00Z")], now, from, five));
        assert!(placed(&[], now, from, five));
        // Calls that begin less than a block after `from` prove nothing: one at 11:00, before `from`, would have
        // opened 11:00-14:00, and 14:30 the next block, where without it 13:00 opens 13:00-16:00.
        let three = Duration::hours(3);
        let early = [call("2026-03-08T13:00:00Z"), call("2026-03-08T14:30:00Z"), call("2026-03-08T16:00:00Z")];
        assert!(!placed(&early, now, from, three));
        // The same with a pause of 3 hours after them: placed from the call after it.
        let later = [&early[..], &[call("2026-03-08T19:00:00Z")]].concat();
        assert!(placed(&later, now, from, three));
        // Calls after now do not count: the busy chain with a call after a 6-hour pause, later than now, is not
        // placed by it.
        let after_now = [&busy[..], &[call("2026-03-10T18:00:00Z")]].concat();
        assert!(!placed(&after_now, now, from, five));
    }
}
