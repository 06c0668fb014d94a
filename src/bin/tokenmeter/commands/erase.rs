//! `erase`: a user's, session's or tenant's records out of the journal.

use std::path::Path;

use serde::Serialize;
use tokenmeter::journal::{self, Erasure, ErasureReport};

use crate::cli::{EraseArgs, Format, SourceArgs};
use crate::render;
use crate::source::{Context, default_journal_dir};
use crate::{CliError, CliResult};

/// The JSON answer: the report, with what was asked of which journal.
#[derive(Serialize)]
struct Answer<'a> {
    journal: &'a Path,
    values: Vec<Value<'a>>,
    #[serde(flatten)]
    report: &'a ErasureReport,
}

#[derive(Serialize)]
struct Value<'a> {
    dimension: &'a str,
    value: &'a str,
}

pub(crate) fn run(source: &SourceArgs, ctx: &Context, args: &EraseArgs) -> CliResult {
    if source.claude_code.is_some() || source.records.is_some() {
        return Err(CliError::usage(
            "erase works on a tokenmeter journal (--journal DIR): Claude Code's transcripts are its own files, and a \
             records file is yours to edit",
        ));
    }
    let dir = match &source.journal {
        Some(d) => d.clone(),
        None => default_journal_dir().ok_or_else(|| {
            CliError::data("no journal directory: set TOKENMETER_JOURNAL or HOME, or pass --journal DIR")
        })?,
    };
    if !dir.is_dir() {
        return Err(CliError::data(format!("no journal at {}: not a directory", dir.display())));
    }
    let mut erasure = Erasure::new().with_dry_run(!args.yes);
    let named = [("user", &args.user), ("session", &args.session), ("tenant", &args.tenant)];
    for (name, values) in named {
        for value in values {
            erasure = erasure.dimension(name, value.as_str());
        }
    }
    for (name, value) in &args.dimension {
        erasure = erasure.dimension(name.as_str(), value.as_str());
    }
    let report = journal::erase(&dir, &erasure).map_err(|e| match e {
        journal::JournalError::InvalidErasure(_) => CliError::usage(e.to_string()),
        e => CliError::data(e.to_string()),
    })?;
    let values: Vec<Value<'_>> = erasure.values().iter().map(|(dimension, value)| Value { dimension, value }).collect();
    match args.format {
        Format::Json => {
            let answer = Answer { journal: &dir, values, report: &report };
            let text = serde_json::to_string_pretty(&answer).map_err(|e| CliError::data(e.to_string()))?;
            crate::print_out(&format!("{text}\n"))?;
        }
        Format::Table => {
            let names: Vec<String> = values.iter().map(|v| format!("{}={}", v.dimension, v.value)).collect();
            let text = describe(&dir, &names.join(", "), &report);
            crate::print_out(&render::sanitize(&text, true))?;
            if report.lines() > 0 && !report.dry_run {
                ctx.note(
                    "tokenmeter: note: a meter running on this journal keeps their figures in memory (its ledger and \
                     budgets) until it restarts or erases them itself (TokenMeter::erase), and journals their new calls",
                );
            }
        }
    }
    // Each of these may still hold what was to go: said even with -q.
    let warn = |text: String| eprintln!("{}", render::sanitize(&text, true));
    for link in &report.links_not_followed {
        warn(format!(
            "tokenmeter: warning: {} is a symbolic link named as a day file, not followed: erase in what it points to \
             by hand",
            link.display()
        ));
    }
    for path in &report.linked_elsewhere {
        warn(format!(
            "tokenmeter: warning: {} had another hard link (a backup made with `ln`?): that copy still holds the \
             erased lines",
            path.display()
        ));
    }
    if report.leftovers_removed > 0 {
        let what = render::count(report.leftovers_removed, "temporary file");
        warn(if report.dry_run {
            format!(
                "tokenmeter: warning: {what} of an erasure that did not finish (`.tokenmeter-*.erasing-*`, copies of \
                 day files' lines) found; --yes deletes them"
            )
        } else {
            format!("tokenmeter: note: deleted {what} of an erasure that did not finish (copies of day files' lines)")
        });
    }
    if report.failed.is_empty() {
        return Ok(());
    }
    let failed: Vec<String> = report.failed.iter().map(|f| format!("{}: {}", f.path.display(), f.error)).collect();
    Err(CliError::data(format!(
        "{} could not be rewritten, and {} left as {}; erase again once the cause is gone:\n  {}",
        render::count(report.failed.len() as u64, "day file"),
        if report.failed.len() == 1 { "is" } else { "are" },
        if report.failed.len() == 1 { "it was" } else { "they were" },
        failed.join("\n  ")
    )))
}

/// What the report says, in words.
fn describe(dir: &Path, names: &str, report: &ErasureReport) -> String {
    let files = render::count(report.files, "day file");
    if report.lines() == 0 {
        return format!(
            "No line in {} ({files}) names {names}.\nValues are matched exactly as the journal holds them: after the \
             application's dimension filter and the cut at its dimension length.\n",
            dir.display()
        );
    }
    let kinds: Vec<String> = [
        (report.calls, "call"),
        (report.tasks, "task"),
        (report.tools, "tool execution"),
        (report.alerts, "budget alert line"),
        (report.unreadable, "unreadable line"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| render::count(n, what))
    .collect();
    let what = match kinds.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    };
    let place = format!(
        "{what} naming {names}, in {} of {files} ({} of {} bytes)",
        render::int(report.files_rewritten),
        render::int(report.bytes_before - report.bytes_after),
        render::int(report.bytes_before),
    );
    if report.dry_run {
        format!(
            "Would erase from {}: {place}.\nNothing was changed: run again with --yes to erase them.\n",
            dir.display()
        )
    } else {
        format!("Erased from {}: {place}.\n", dir.display())
    }
}
