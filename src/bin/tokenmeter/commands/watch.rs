//! `watch`: reads the source again every interval (transcripts only where they changed), prints the window's usage summary, alerts past a threshold.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokenmeter::UsageSummary;

use comfy_table::{Attribute, Color};

use super::window;
use crate::cli::{Format, SourceArgs, WatchArgs, WindowArgs};
use crate::render::{Style, int, num, pct, priced_usd, push_table, share_cost, usd};
use crate::source::{Context, Source, SourceInfo};
use crate::{CliResult, print_out_open};

/// Models the screen lists by name; the rest share one row.
const WATCH_MODELS: usize = 8;

/// One refresh, as a JSON line.
#[derive(Debug, Serialize)]
struct Refresh<'a> {
    time: DateTime<Utc>,
    /// What this refresh read, as every command's JSON says it.
    source: &'a SourceInfo,
    threshold_usd: Option<f64>,
    over_threshold: bool,
    summary: &'a UsageSummary,
}

pub(super) fn run(source_args: &SourceArgs, ctx: &Context, style: &Style, args: &WatchArgs) -> CliResult {
    let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
    let clear = args.format == Format::Table && std::io::stdout().is_terminal() && !dumb;
    // The alert's line goes to standard error, coloured only when that is a terminal too; while the screen is
    // redrawn on the same terminal, it is written into the screen instead (a line on standard error would be
    // cleared with the next redraw, at once), and stays there while the spend stays over.
    let err_terminal = std::io::stderr().is_terminal();
    let err_style = Style { color: style.color && err_terminal, terminal: err_terminal };
    let alert_in_screen = clear && err_terminal;
    let mut alert_line: Option<String> = None;
    // On a redrawn screen, the first read's notes (skipped lines, say) are shown on every screen; printed on
    // stderr, the first redraw would clear them at once.
    let (noting_ctx, first_notes) = ctx.keeping_notes();
    let first_ctx = if clear { &noting_ctx } else { ctx };
    let mut was_over = false;
    let mut n: u64 = 0;
    let mut quiet_ctx: Option<Context> = None;
    // Refreshes keep to the interval's schedule: sleeping a whole interval after each refresh made the period
    // the refresh's work plus the interval. A refresh that takes longer than the interval starts the next at once
    // and the schedule restarts from then (no burst of refreshes to catch up).
    let interval = Duration::from_secs_f64(args.interval);
    let mut next = std::time::Instant::now();
    // True when standard output is a pipe whose reader has gone (`watch --interval 3600 | head -1`): found while
    // waiting, not an hour later at the next write.
    let wait = |next: &mut std::time::Instant| match schedule(next, interval, std::time::Instant::now()) {
        Some(left) => sleep_watching_stdout(left),
        None => false,
    };
    loop {
        let now = if ctx.pinned_now { ctx.now } else { Utc::now() };
        // Notes about skipped lines are printed on the first read only.
        let this_ctx = match &quiet_ctx {
            Some(q) => q,
            None => first_ctx,
        };
        // A journal is read from the window's first day on (its older day files cannot hold the window's calls),
        // so that a refresh costs the window, not the whole history.
        let source = match Source::load_since(source_args, this_ctx, first_day(args.period, now)) {
            Ok(s) => s,
            Err(e) if n == 0 => {
                // Nothing will be drawn: the notes kept for the screen go out before the error.
                for note in first_notes.lock().drain(..) {
                    let _ = writeln!(std::io::stderr(), "{note}");
                }
                return Err(e);
            }
            Err(e) => {
                // A refresh that could not read counts toward --iterations, so that a bounded watch ends.
                n += 1;
                if args.iterations.is_some_and(|max| n >= max) {
                    return Err(e);
                }
                // Not a note: `--quiet` silences notes, and a source that cannot be read must still be seen (the
                // JSON stream only misses a line).
                let msg = format!("tokenmeter: warning: cannot refresh: {e}");
                let _ = writeln!(std::io::stderr(), "{}", crate::render::sanitize(&msg, true));
                if wait(&mut next) {
                    return Ok(());
                }
                continue;
            }
        };
        let run_ctx = ctx.with(now, ctx.quiet);
        // The window as `summary` takes it (for `all`: from the first record's local midnight, not from a
        // month bucket's start once records are 35 days old, which would understate the per-hour rate).
        let window_args = WindowArgs { period: Some(args.period), since: None, until: None };
        let scope = window(&window_args, &run_ctx, &source, args.period)?;
        let ledger = scope.ledger(&run_ctx);
        let period = scope.window(&ledger)?;
        let mut summary = ledger.usage_summary(period)?;
        scope.restore_summary(&mut summary);
        let hit_rate = ledger.cache_report(period)?.cache_metrics.hit_rate;
        let over = args.threshold.is_some_and(|t| summary.cost_usd > t);
        if over && !was_over {
            let text = format!(
                "tokenmeter: ALERT: {} spent over {} passes the threshold of {}",
                priced_usd(summary.cost_usd, summary.unpriced.calls, Some(summary.metered_calls)),
                span(args.period, true),
                usd(args.threshold.unwrap_or_default())
            );
            if alert_in_screen {
                alert_line = Some(text);
                out_bell();
            } else {
                // A closed standard error (`2>&-`, a reader gone) must not end the watch.
                // The bell only on a terminal: in a log file it is a stray control character.
                let bell = if err_terminal { "\x07" } else { "" };
                let _ = writeln!(std::io::stderr(), "{}", err_style.alert(&format!("{text}{bell}")));
            }
        }
        if !over {
            alert_line = None;
        }
        was_over = over;
        let open = match args.format {
            Format::Json => {
                let line = serde_json::to_string(&Refresh {
                    time: now,
                    source: &source.info,
                    threshold_usd: args.threshold,
                    over_threshold: over,
                    summary: &summary,
                })
                .map_err(|e| crate::CliError::data(e.to_string()))?;
                print_out_open(&format!("{line}\n"))?
            }
            Format::Table => {
                let mut out = String::new();
                if clear {
                    out.push_str("\x1b[2J\x1b[H");
                }
                if let Some(line) = &alert_line {
                    out.push_str(&style.alert(line));
                    out.push_str("\n\n");
                }
                let notes = first_notes.lock();
                if !notes.is_empty() {
                    // Said of the first read (a journal that held no records then may hold some now).
                    out.push_str("notes from the first read:\n");
                    out.push_str(&notes.join("\n"));
                    out.push_str("\n\n");
                }
                out.push_str(&screen(&run_ctx, style, &summary, hit_rate, args, over, &source));
                print_out_open(&out)?
            }
        };
        n += 1;
        // Nobody reads any more (`watch | head`): stop, as a pipeline expects.
        if !open {
            return Ok(());
        }
        if args.iterations.is_some_and(|max| n >= max) {
            return Ok(());
        }
        if quiet_ctx.is_none() {
            quiet_ctx = Some(ctx.with(ctx.now, true));
        }
        if wait(&mut next) {
            return Ok(());
        }
    }
}

/// Sleeps `left`; returns early, true, when standard output is a pipe whose reader has closed it (its write end
/// reports an error to `poll`; a terminal or a file never does).
fn sleep_watching_stdout(left: Duration) -> bool {
    #[cfg(target_os = "linux")]
    {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let stdout = std::io::stdout();
        let deadline = std::time::Instant::now() + left;
        loop {
            let Some(rest) = deadline.checked_duration_since(std::time::Instant::now()).filter(|d| !d.is_zero()) else {
                return false;
            };
            let Ok(timeout) = Timespec::try_from(rest) else {
                std::thread::sleep(rest);
                return false;
            };
            let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) if fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL) => return true,
                // Woken early (a signal): the rest of the wait.
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => {
                    std::thread::sleep(rest);
                    return false;
                }
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        std::thread::sleep(left);
        false
    }
}

/// Moves `next` (when the refresh just done was due) on by `interval`, and says how long to sleep from `now`
/// until then; `None` when it is already past (a refresh that took longer than the interval): the next starts at
/// once, and the schedule restarts from `now`.
fn schedule(next: &mut std::time::Instant, interval: Duration, now: std::time::Instant) -> Option<Duration> {
    *next += interval;
    let left = next.checked_duration_since(now).filter(|d| !d.is_zero());
    if left.is_none() {
        *next = now;
    }
    left
}

/// The earliest UTC day a call in `period` at `now` can have (a day early: the window's days are local), or
/// `None` for everything.
fn first_day(period: tokenmeter::ledger::Window, now: DateTime<Utc>) -> Option<chrono::NaiveDate> {
    use tokenmeter::ledger::Window;
    let back = match period {
        Window::LastHour | Window::Last6Hours | Window::Last24Hours => chrono::Duration::days(1),
        Window::Last7Days => chrono::Duration::days(7),
        Window::Last30Days => chrono::Duration::days(30),
        Window::Range { from, .. } => now.signed_duration_since(from).max(chrono::Duration::zero()),
        Window::All => return None,
    };
    (now - back).date_naive().pred_opt()
}

/// The terminal's bell, on standard output (the screen's terminal), with the alert written into the screen.
fn out_bell() {
    let mut out = std::io::stdout();
    let _ = out.write_all(b"\x07").and_then(|()| out.flush());
}

/// The watched window in words: "(the) last 24h", or "everything recorded" for `all`.
fn span(period: tokenmeter::ledger::Window, article: bool) -> String {
    match period {
        tokenmeter::ledger::Window::All => "everything recorded".to_owned(),
        p if article => format!("the last {p}"),
        p => format!("last {p}"),
    }
}

fn screen(
    ctx: &Context,
    style: &Style,
    s: &UsageSummary,
    hit_rate: f64,
    args: &WatchArgs,
    over: bool,
    source: &Source,
) -> String {
    let tz = ctx.time_zone;
    let mut out = format!(
        "tokenmeter watch: {} at {} ({tz}), refreshing every {}s, {}\n\n",
        span(args.period, false),
        // With its offset: in the hour a clock is set back, the same local time comes twice.
        ctx.now.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %:z"),
        args.interval,
        super::calls_read(source)
    );
    let mut t = style.table(["calls", "tokens", "cache hit rate", "cost", "per hour", "threshold"]);
    let hours = (s.period_end - s.period_start).num_seconds() as f64 / 3600.0;
    // Calls on models without a price are not in the dollars: each figure made from them says so.
    let unpriced = s.unpriced.calls;
    t.add_row(vec![
        num(int(s.calls)),
        num(int(s.tokens.total)),
        // No metered call, no rate (not a measured 0%).
        num(if s.metered_calls > 0 { pct(hit_rate) } else { "-".to_owned() }),
        num(share_cost(s.cost_usd, s.metered_calls, unpriced)),
        num(if hours > 0.0 { priced_usd(s.cost_usd / hours, unpriced, Some(s.metered_calls)) } else { "-".to_owned() }),
        // Coloured through the table, not with escape codes in the text: the table measures a cell's text, and
        // would count the codes as columns.
        match args.threshold {
            Some(th) if over => {
                let cell = num(format!("OVER {}", usd(th)));
                if style.color { cell.fg(Color::Red).add_attribute(Attribute::Bold) } else { cell }
            }
            // The unpriced calls' cost, unknown, is spent too: what is left is at most the priced remainder.
            Some(th) if unpriced > 0 => num(format!("{} (at most {} left)", usd(th), usd(th - s.cost_usd))),
            Some(th) => num(format!("{} ({} left)", usd(th), usd(th - s.cost_usd))),
            None => num("-".to_owned()),
        },
    ]);
    push_table(&mut out, "", &t, style);
    if !s.by_model.is_empty() {
        let mut t = style.table(["model", "calls", "tokens", "cost"]);
        // The rest in one row, so that every call of the window is in the table.
        for (m, cost) in crate::render::models_with_costs(&s.by_model, WATCH_MODELS) {
            t.add_row(vec![m.name.into(), num(int(m.calls)), num(int(m.tokens)), num(cost)]);
        }
        push_table(&mut out, "", &t, style);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_keep_to_the_intervals_schedule() {
        // A refresh of 300 ms at a 1 s interval sleeps 700 ms, not 1 s: the period is the interval, not the
        // refresh's work plus the interval.
        let second = Duration::from_secs(1);
        let start = std::time::Instant::now();
        let mut next = start;
        let ms = |n: u64| Duration::from_millis(n);
        assert_eq!(schedule(&mut next, second, start + ms(300)), Some(ms(700)));
        assert_eq!(next, start + second);
        // The next refresh, done at 1.2 s, sleeps until 2 s.
        assert_eq!(schedule(&mut next, second, start + ms(1_200)), Some(ms(800)));
        // One that ran past its turn (done at 3.5 s, due at 3 s): the next starts at once, and the schedule
        // restarts from then (no burst of refreshes to catch up).
        assert_eq!(schedule(&mut next, second, start + ms(3_500)), None);
        assert_eq!(next, start + ms(3_500));
        assert_eq!(schedule(&mut next, second, start + ms(3_600)), Some(ms(900)));
    }
}
