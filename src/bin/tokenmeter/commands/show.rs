//! `show <session>`: one session's totals (from the ledger) and its calls.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;
use tokenmeter::CallRecord;
use tokenmeter::ledger::{Dimension, GroupBy, GroupRow, Query, Window};
use tokenmeter::transcripts::{ToolUses, session_tool_uses_until};

use crate::cli::{RowsFormat, ShowArgs};
use crate::render::{Style, count, int, num, pct, push_table, share_cost, usd};
use crate::source::{Context, Source, SourceInfo, SourceKind};
use crate::{CliError, CliResult, print_out};

/// `show --format json`.
#[derive(Debug, Serialize)]
struct ShowOutput<'a> {
    source: &'a SourceInfo,
    session: &'a str,
    projects: Vec<&'a str>,
    first_call: Option<chrono::DateTime<chrono::Utc>>,
    last_call: Option<chrono::DateTime<chrono::Utc>>,
    /// The ledger's totals for the session.
    totals: GroupRow,
    /// Every call, oldest first.
    calls: Vec<&'a CallRecord>,
    /// With `--include-tools`: tool calls by tool (Claude Code transcripts and journals).
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<ToolUses>>,
}

/// The session `wanted` names: itself, or the one session it is a unique prefix of.
fn resolve<'a>(sessions: &BTreeSet<&'a str>, wanted: &str) -> CliResult<&'a str> {
    if let Some(s) = sessions.get(wanted) {
        return Ok(s);
    }
    let matches: Vec<&str> = sessions.iter().copied().filter(|s| s.starts_with(wanted)).collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(CliError::data(format!(
            "no calls for session `{wanted}` ({} in the source{})",
            crate::render::count(sessions.len() as u64, "session"),
            match sessions.iter().take(3).copied().collect::<Vec<_>>() {
                v if v.is_empty() => String::new(),
                v => format!(", e.g. {}", v.join(", ")),
            }
        ))),
        many => Err(CliError::usage(format!(
            "`{wanted}` matches {} sessions ({}{}): give more of the id",
            many.len(),
            many.iter().take(5).copied().collect::<Vec<_>>().join(", "),
            if many.len() > 5 { ", …" } else { "" }
        ))),
    }
}

pub(super) fn run(source: &Source, ctx: &Context, style: &Style, args: &ShowArgs) -> CliResult {
    if args.format == RowsFormat::Csv && args.include_tools {
        // A CSV is one table: the calls'.
        return Err(CliError::usage(
            "--include-tools lists a second table, which CSV (one table: the calls) cannot hold: use --format json",
        ));
    }
    let sessions: BTreeSet<&str> = source.records.iter().filter_map(|r| r.dimensions.session.as_deref()).collect();
    // As the records' ids were read: control characters written escaped (`a\u{a}b` for a session id `a` newline `b`).
    let wanted = crate::render::sanitize(args.session.trim(), false);
    let wanted = &*wanted;
    if wanted.is_empty() {
        // An empty id is a prefix of every session: it named one only by chance (the only one there is).
        return Err(CliError::usage("`show` needs a session id or a prefix of one, not an empty one"));
    }
    let session = resolve(&sessions, wanted)?;
    let calls: Vec<&CallRecord> =
        source.records.iter().filter(|r| r.dimensions.session.as_deref() == Some(session)).collect();
    // A ledger of the session's calls alone: smaller than one of all the records, and exact whatever its
    // caps (the CLI's ledgers have none; a capped one folds sessions past a bucket's cap into `(other)`).
    let of_session = |d: &tokenmeter::Dimensions| d.session.as_deref() == Some(session);
    let tasks: Vec<_> = source.tasks.iter().filter(|t| of_session(&t.dimensions)).cloned().collect();
    let tool_runs: Vec<_> = source.tools.iter().filter(|t| of_session(&t.dimensions)).cloned().collect();
    let ledger = ctx.ledger(&calls.iter().map(|c| (*c).clone()).collect::<Vec<_>>(), &tasks, &tool_runs);
    let totals = ledger.query(&Query::new(Window::All).filter(Dimension::Session, session))?.totals;
    let projects: Vec<&str> =
        calls.iter().filter_map(|r| r.dimensions.project.as_deref()).collect::<BTreeSet<_>>().into_iter().collect();
    let tools = if !args.include_tools {
        None
    } else if source.info.kind == SourceKind::ClaudeCode {
        // The session's files (its `subagents/` folder's among them), and its projects' `agent-<id>.jsonl` files
        // beside the sessions (Claude Code before 2.1.2), which name their session only in their lines, as the
        // calls were filed. Not every other session's sub-agents: on a large project that was most of its data.
        let beside_the_sessions =
            |f: &tokenmeter::transcripts::TranscriptFile| f.path.parent().is_none_or(|p| !p.ends_with("subagents"));
        let files: Vec<_> = source
            .transcript_files
            .iter()
            .filter(|f| {
                &*f.session == session || (f.subagent && beside_the_sessions(f) && projects.contains(&&*f.project))
            })
            .cloned()
            .collect();
        // Tool names come from the transcripts (an MCP server's tool names among them): as every other name
        // read, never an escape sequence or a direction override.
        let mut uses = session_tool_uses_until(&files, session, &source.records, ctx.pinned_now.then_some(ctx.now));
        for u in &mut uses {
            if let std::borrow::Cow::Owned(clean) = crate::render::sanitize(&u.tool, false) {
                u.tool = clean;
            }
        }
        Some(uses)
    } else if source.info.kind == SourceKind::Journal {
        if tool_runs.is_empty() {
            ctx.note("tokenmeter: note: --include-tools: the journal holds no tool executions of this session");
        }
        // The session's ledger holds its tool executions: one row per tool.
        let q =
            Query::new(Window::All).filter(Dimension::Session, session).group_by(GroupBy::Dimension(Dimension::Tool));
        let mut uses: Vec<ToolUses> = ledger
            .query(&q)?
            .groups
            .into_iter()
            .map(|g| ToolUses { tool: g.key, uses: g.calls, errors: g.failed_calls })
            .collect();
        uses.sort_by(|a, b| b.uses.cmp(&a.uses).then_with(|| a.tool.cmp(&b.tool)));
        Some(uses)
    } else {
        ctx.note("tokenmeter: note: --include-tools: this source records calls, not tool executions");
        None
    };
    let out = ShowOutput {
        source: &source.info,
        session,
        projects,
        first_call: calls.first().map(|c| c.timestamp),
        last_call: calls.last().map(|c| c.timestamp),
        totals,
        calls,
        tools,
    };
    match args.format {
        RowsFormat::Json => print_out(&crate::render::json(&out)?),
        RowsFormat::Csv => print_out(&csv(&out, ctx.time_zone)),
        RowsFormat::Table => print_out(&table(&out, ctx, style, args.include_cache)),
    }
}

/// The session's calls as CSV, one row each, oldest first: the record's time, names, outcome, timings, tokens and
/// cost (its operation, service tier, speed, region and extra dimensions are in the JSON). `cost_usd` is empty for
/// a call without a price (`priced` false) or without usage (`metered` false).
fn csv(o: &ShowOutput<'_>, tz: chrono_tz::Tz) -> String {
    use crate::sheet::{Sheet, TOKEN_COLUMNS, local, money, opt_text, text, token_cells};
    let header = [
        &[
            "timestamp",
            "session",
            "model",
            "provider",
            "agent",
            "user",
            "tenant",
            "project",
            "task",
            "request_id",
            "status",
            "error_type",
            "duration_us",
            "time_to_first_token_us",
        ][..],
        &TOKEN_COLUMNS,
        &["web_search_requests", "metered", "priced", "cost_usd", "cache_savings_usd"],
    ]
    .concat();
    let mut out = Sheet::new(&header);
    for c in &o.calls {
        let d = &c.dimensions;
        let (status, error_type) = match &c.outcome {
            tokenmeter::Outcome::Error { error_type } => ("error", text(error_type)),
            _ => ("ok", String::new()),
        };
        let mut row = vec![
            local(c.timestamp, tz),
            text(o.session),
            // As the table names it: without a model, the name it was priced as.
            opt_text(c.model.as_deref().or(c.cost.as_ref().map(|k| &*k.priced_as))),
            opt_text(c.provider.as_deref()),
            opt_text(d.agent.as_deref()),
            opt_text(d.user.as_deref()),
            opt_text(d.tenant.as_deref()),
            opt_text(d.project.as_deref()),
            opt_text(d.task.as_deref()),
            opt_text(c.request_id.as_deref()),
            status.to_owned(),
            error_type,
            c.duration_us.to_string(),
            c.time_to_first_token_us.map(|v| v.to_string()).unwrap_or_default(),
        ];
        row.extend(token_cells(&c.tokens));
        row.extend([
            c.web_search_requests.to_string(),
            c.metered.to_string(),
            // A call without usage has nothing to price: neither priced nor unpriced.
            if c.metered { c.cost.is_some().to_string() } else { String::new() },
            c.cost.as_ref().map(|k| money(k.total)).unwrap_or_default(),
            c.cost.as_ref().map(|k| money(k.cache_savings)).unwrap_or_default(),
        ]);
        out.row(row);
    }
    out.finish()
}

fn table(o: &ShowOutput<'_>, ctx: &Context, style: &Style, include_cache: bool) -> String {
    let tz = ctx.time_zone;
    let fmt = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or_else(|| "-".to_owned(), |t| crate::render::local_time(t, tz, "%Y-%m-%d %H:%M:%S"))
    };
    let mut out = format!(
        "Session {} (project {}), {} to {} ({tz})\n\n",
        style.bold(o.session),
        if o.projects.is_empty() { "-".to_owned() } else { o.projects.join(", ") },
        fmt(o.first_call),
        fmt(o.last_call),
    );
    let t = &o.totals;
    let mut tt = style.table(["calls", "input", "output", "cache read", "cache write", "total tokens", "cost"]);
    tt.add_row(vec![
        num(int(t.calls)),
        num(int(t.tokens.input)),
        num(int(t.tokens.output)),
        num(int(t.tokens.cache_read)),
        num(int(t.tokens.cache_creation)),
        num(int(t.tokens.total)),
        num(share_cost(t.cost_usd, t.calls.saturating_sub(t.unmetered_calls), t.unpriced_calls)),
    ]);
    push_table(&mut out, "", &tt, style);

    let mut header = vec!["time", "model", "agent", "input", "output"];
    if include_cache {
        header.extend(["cache read", "write 5m", "write 1h", "hit rate"]);
    } else {
        header.extend(["cache read", "cache write"]);
    }
    // Web searches are billed per search: a column only when a call of the session made some.
    let searches = o.calls.iter().any(|c| c.web_search_requests > 0);
    if searches {
        header.push("searches");
    }
    header.push("cost");
    let mut ct = style.table(header);
    for c in &o.calls {
        let tk = &c.tokens;
        let mut row = vec![
            comfy_table::Cell::new(crate::render::local_time(c.timestamp, tz, "%m-%d %H:%M:%S")),
            // Without a model, the name it was priced as (Claude Code's own `<synthetic>` notices), as `summary`
            // names it.
            comfy_table::Cell::new(c.model.as_deref().or(c.cost.as_ref().map(|k| &*k.priced_as)).unwrap_or("-")),
            comfy_table::Cell::new(c.dimensions.agent.as_deref().unwrap_or("-")),
            num(int(tk.input)),
            num(int(tk.output)),
            num(int(tk.cache_read)),
        ];
        if include_cache {
            let prompt = tk.prompt_total();
            row.push(num(int(tk.cache_write_5m)));
            row.push(num(int(tk.cache_write_1h)));
            row.push(num(if prompt > 0 { pct(tk.cache_read as f64 / prompt as f64) } else { "-".to_owned() }));
        } else {
            row.push(num(int(tk.cache_write())));
        }
        if searches {
            row.push(num(int(c.web_search_requests)));
        }
        row.push(num(match &c.cost {
            Some(cost) => usd(cost.total.as_usd()),
            // A call that closed without usage (an error, a dropped stream) has nothing to price.
            None if !c.metered => "unmetered".to_owned(),
            None => "unpriced".to_owned(),
        }));
        ct.add_row(row);
    }
    push_table(&mut out, "Calls", &ct, style);
    // Failed calls are named under the table (a column would widen every row for what most sessions lack).
    let failed: Vec<String> = o
        .calls
        .iter()
        .filter_map(|c| match &c.outcome {
            tokenmeter::Outcome::Error { error_type } => {
                Some(format!("{} {error_type}", crate::render::local_time(c.timestamp, tz, "%m-%d %H:%M:%S")))
            }
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        const LISTED: usize = 10;
        let more = failed.len().saturating_sub(LISTED);
        let _ = write!(
            out,
            "{} failed: {}",
            count(failed.len() as u64, "call"),
            failed[..failed.len().min(LISTED)].join(", ")
        );
        if more > 0 {
            let _ = write!(out, ", and {more} more");
        }
        out.push_str("\n\n");
    }

    if let Some(tools) = &o.tools {
        let mut tt = style.table(["tool", "uses", "errors"]);
        for t in tools {
            tt.add_row(vec![comfy_table::Cell::new(&t.tool), num(int(t.uses)), num(int(t.errors))]);
        }
        push_table(&mut out, "Tools", &tt, style);
    }
    out
}
