//! `tokenmeter`: token and cost reports in a terminal, a file or a cron job.
//!
//! Reads call records from the tokenmeter journal, from Claude Code transcripts or from a file of records,
//! feeds them to a [`tokenmeter::ledger::Ledger`] and prints the library's own reports. Documented in
//! README.md, section "The `tokenmeter` command line".

mod cli;
mod commands;
mod mcp;
mod render;
mod report;
mod sheet;
mod source;

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

/// An error that ends the program, with its exit status.
#[derive(Debug)]
pub(crate) enum CliError {
    /// A bad argument or combination of arguments: exit 2.
    Usage(String),
    /// A missing path, unreadable data, a failed write: exit 1.
    Data(String),
}

impl CliError {
    pub(crate) fn usage(msg: impl Into<String>) -> Self {
        CliError::Usage(msg.into())
    }

    pub(crate) fn data(msg: impl Into<String>) -> Self {
        CliError::Data(msg.into())
    }

    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Data(_) => 1,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Data(m) => f.write_str(m),
        }
    }
}

impl From<tokenmeter::ledger::QueryError> for CliError {
    fn from(e: tokenmeter::ledger::QueryError) -> Self {
        use tokenmeter::ledger::QueryError as Q;
        match e {
            Q::ResolutionUnavailable { .. } => CliError::Data(e.to_string()),
            _ => CliError::Usage(e.to_string()),
        }
    }
}

/// Result of a command.
pub(crate) type CliResult<T = ()> = Result<T, CliError>;

fn main() -> ExitCode {
    let args = cli::preprocess(std::env::args_os().collect());
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return bad_arguments(&args, e),
    };
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // An error may quote what was read (a budgets file's value, a path): never an escape sequence.
            let text = e.to_string();
            let _ = writeln!(std::io::stderr(), "tokenmeter: error: {}", render::sanitize(&text, true));
            ExitCode::from(e.exit_code())
        }
    }
}

/// A command line clap refused: its error on stderr and exit status 2, as clap does (help and version print and exit
/// 0). For `statusline` that is not asked for JSON, the error is also its line, and the exit status 0: Claude Code
/// shows nothing for a command that fails, and a misspelt option in its setting would leave a blank line.
fn bad_arguments(args: &[std::ffi::OsString], e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) || !commands::statusline_line(args) {
        e.exit();
    }
    let _ = e.print();
    let text = e.render().to_string();
    // clap's first line (`error: unexpected argument '--budget' found`), and what it adds before the usage: a tip
    // (`a similar argument exists: '--budgets'`) or the possible values.
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("bad arguments");
    let mut line = format!("tokenmeter statusline: {}", first.strip_prefix("error: ").unwrap_or(first));
    if let Some(next) = lines.next()
        && !next.starts_with("Usage:")
        && !next.starts_with("For more information")
    {
        line = format!("{line}; {}", next.strip_prefix("tip: ").unwrap_or(next));
    }
    match commands::print_failure_line(&line) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(2),
    }
}

/// Writes the whole of `text` to stdout. A closed pipe (`tokenmeter summary | head`) is not an error.
pub(crate) fn print_out(text: &str) -> CliResult {
    print_out_open(text).map(|_| ())
}

/// [`print_out`], saying whether stdout is still open: false once its reader has gone (a closed pipe), so
/// that a command that keeps writing (`watch | head`) can stop.
pub(crate) fn print_out_open(text: &str) -> CliResult<bool> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(CliError::data(format!("cannot write to stdout: {e}"))),
    }
}
