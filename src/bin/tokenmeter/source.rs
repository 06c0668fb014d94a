//! Where records come from: the journal, Claude Code transcripts, or a file of records; and the ledger they
//! are fed to.

use std::io::{BufRead, IsTerminal, Read as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokenmeter::journal::{JournalEntry, SkipReason};
use tokenmeter::ledger::{Ledger, LedgerConfig};
use tokenmeter::transcripts::{self, LoadStats, TranscriptCache, TranscriptFile, TranscriptLoader};
use tokenmeter::{CallRecord, ManualClock, Money, PriceBook, PriceBookError, TaskRecord, ToolRecord};

use crate::cli::{Bound, CommonArgs, SourceArgs};
use crate::{CliError, CliResult};

/// Bad-line places reported.
const MAX_PLACES: usize = 5;

/// What every command works from: settings and the records.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) time_zone: Tz,
    /// `--week-start`: the first day of week rows.
    pub(crate) week_start: chrono::Weekday,
    pub(crate) now: DateTime<Utc>,
    /// True when `--now` fixed the time.
    pub(crate) pinned_now: bool,
    pub(crate) prices: PriceBook,
    /// The `--prices` file's own models (an empty book merged with it): journal and records calls of these
    /// models are priced again; the rest keep the cost their application recorded.
    pub(crate) file_prices: Option<PriceBook>,
    /// The `--prices` file sets `web_search_per_1k`: journal and records calls that made searches are priced
    /// again, whatever their model.
    pub(crate) own_search_fee: bool,
    pub(crate) quiet: bool,
    /// Notes are kept here instead of printed (a screen that is redrawn shows them; printed, it would clear
    /// them with its first redraw).
    pub(crate) kept_notes: Option<Arc<parking_lot::Mutex<Vec<String>>>>,
    /// Transcripts read before, shared by every context made from this one: `watch` and the MCP server read
    /// again only the files that changed.
    pub(crate) transcript_cache: Arc<parking_lot::Mutex<TranscriptCache>>,
}

impl Context {
    pub(crate) fn new(common: &CommonArgs) -> CliResult<Self> {
        let mut prices = PriceBook::builtin();
        let mut file_prices = None;
        let mut own_search_fee = false;
        if let Some(path) = &common.prices {
            // Read once: every book below is merged from the same text.
            let text = std::fs::read_to_string(path)
                .map_err(|source| CliError::data(PriceBookError::Io { path: path.clone(), source }.to_string()))?;
            let origin = path.display().to_string();
            let merge =
                |book: &mut PriceBook| book.merge_toml_str(&text, &origin).map_err(|e| CliError::data(e.to_string()));
            merge(&mut prices)?;
            let mut own = PriceBook::empty();
            merge(&mut own)?;
            // Whether the file sets `web_search_per_1k` (at any fee, the default's $10 too): merged into a book at
            // another fee, the two agree only if the file set it.
            let mut free = PriceBook::empty().with_web_search_fee(Money::ZERO);
            merge(&mut free)?;
            own_search_fee = free.web_search_fee() == own.web_search_fee();
            file_prices = Some(own);
            // A Claude id the built-in book does not know is a model of the file's own, or a misspelt one (which
            // leaves the model meant at its built-in rates, silently): say which.
            let builtin = PriceBook::builtin();
            let added: Vec<String> = prices
                .models()
                .map(|(id, _)| id)
                .filter(|id| id.starts_with("claude") && builtin.resolve(id).is_none())
                .map(|id| format!("`{id}`"))
                .collect();
            // The notes quote the file's ids: written as every note is, without escape sequences.
            let note = |text: String| {
                if !common.quiet {
                    use std::io::Write;
                    let _ = writeln!(std::io::stderr(), "{}", crate::render::sanitize(&text, true));
                }
            };
            if !added.is_empty() {
                note(format!(
                    "tokenmeter: note: {} adds {}, not in the built-in price book (a misspelt id leaves the model \
                     meant at its built-in rates)",
                    path.display(),
                    added.join(", ")
                ));
            }
            // An entry replaces a built-in model's whole price: the long-context rates or fast-mode multiplier it
            // leaves out are gone, and those calls are priced at its standard rates. Say which.
            let dropped: Vec<String> = prices
                .models()
                .filter_map(|(id, price)| {
                    let (_, was) = builtin.models().find(|(b, _)| *b == id)?;
                    let lost = price.rules_lost_from(was);
                    (!lost.is_empty()).then(|| format!("`{id}` (no {})", lost.join(", no ")))
                })
                .collect();
            if !dropped.is_empty() {
                note(format!(
                    "tokenmeter: note: {} replaces the whole built-in price of {}: calls over the long-context line \
                     (200k prompt tokens; 100k on Haiku 5.5) or in fast mode are priced at its standard rates unless \
                     its entry gives them",
                    path.display(),
                    dropped.join(", ")
                ));
            }
        }
        // `--tz` given (as `--tz ZONE` or `--tz=ZONE`) overrides `$TZ`, and nothing needs saying.
        // (`args_os`: an argument that is not UTF-8, a path, made `args` panic.)
        let tz_given = std::env::args_os().any(|a| a == "--tz" || a.as_encoded_bytes().starts_with(b"--tz="));
        if let Some(tz) = crate::cli::unnamed_tz_env().filter(|_| !tz_given && !common.quiet) {
            use std::io::Write;
            let text = format!(
                "tokenmeter: note: TZ={tz} is not a time zone name (a POSIX rule?): days are counted in {} here; pass \
                 --tz with an IANA name (Asia/Tokyo, Europe/Paris) or set TZ to one",
                common.time_zone
            );
            let _ = writeln!(std::io::stderr(), "{}", crate::render::sanitize(&text, true));
        }
        Ok(Context {
            time_zone: common.time_zone,
            week_start: common.week_start,
            now: match common.now {
                Some(Bound::Date(d)) => crate::commands::local_midnight(common.time_zone, d),
                Some(Bound::Time(t)) => t,
                None => Utc::now(),
            },
            pinned_now: common.now.is_some(),
            prices,
            file_prices,
            own_search_fee,
            quiet: common.quiet,
            kept_notes: None,
            transcript_cache: Arc::default(),
        })
    }

    /// A ledger holding `records`, `tasks` and `tools` (a journal's), with "now" at [`Context::now`].
    pub(crate) fn ledger(&self, records: &[CallRecord], tasks: &[TaskRecord], tools: &[ToolRecord]) -> Ledger {
        let ledger = Ledger::new(
            LedgerConfig::default()
                .with_time_zone(self.time_zone)
                .with_week_start(self.week_start)
                .with_unbounded_breakdowns(),
            Arc::new(ManualClock::new(self.now)),
            self.prices.clone(),
        );
        for r in records {
            ledger.ingest_call(r);
        }
        for t in tasks {
            ledger.ingest_task(t);
        }
        for t in tools {
            ledger.ingest_tool(t);
        }
        ledger
    }

    /// The same settings at another time, or quieter.
    pub(crate) fn with(&self, now: DateTime<Utc>, quiet: bool) -> Context {
        Context {
            now,
            quiet,
            prices: self.prices.clone(),
            file_prices: self.file_prices.clone(),
            own_search_fee: self.own_search_fee,
            kept_notes: self.kept_notes.clone(),
            transcript_cache: Arc::clone(&self.transcript_cache),
            ..*self
        }
    }

    /// The same settings, keeping its notes (unless `--quiet`) in the returned list instead of printing them.
    pub(crate) fn keeping_notes(&self) -> (Context, Arc<parking_lot::Mutex<Vec<String>>>) {
        let notes: Arc<parking_lot::Mutex<Vec<String>>> = Arc::default();
        let mut ctx = self.with(self.now, self.quiet);
        ctx.kept_notes = Some(Arc::clone(&notes));
        (ctx, notes)
    }

    /// Prints a note on stderr unless `--quiet` (or keeps it, see [`Context::keeping_notes`]). A closed
    /// standard error is no reason to fail. A note may quote what was read (a bad line's value, a path):
    /// escape sequences and direction overrides in it are replaced.
    pub(crate) fn note(&self, msg: &str) {
        if self.quiet {
            return;
        }
        let msg = &*crate::render::sanitize(msg, true);
        match &self.kept_notes {
            Some(kept) => kept.lock().push(msg.to_owned()),
            None => {
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "{msg}");
            }
        }
    }
}

/// The kind of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SourceKind {
    /// The tokenmeter journal.
    Journal,
    /// Claude Code transcripts.
    ClaudeCode,
    /// A file of call records.
    Records,
}

/// A line skipped while reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SkippedLine {
    #[serde(serialize_with = "lossy_path")]
    pub(crate) path: PathBuf,
    pub(crate) line: u64,
    pub(crate) reason: String,
}

/// What was read, for the reports' `source` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SourceInfo {
    pub(crate) kind: SourceKind,
    /// The directories or file read.
    #[serde(serialize_with = "lossy_paths")]
    pub(crate) paths: Vec<PathBuf>,
    /// Files read.
    pub(crate) files: u64,
    /// Call records obtained.
    pub(crate) calls: u64,
    /// Task records obtained (a journal's).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) tasks: u64,
    /// Tool execution records obtained (a journal's).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) tools: u64,
    /// Lines skipped as unreadable.
    pub(crate) skipped_lines: u64,
    /// Journal files that could not be read (or not to their end; not lines: listed in `skipped` at line 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) unreadable_files: u64,
    /// Journal lines of a kind this version does not read (a later version's), left out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) other_lines: u64,
    /// Calls priced again with `--prices` (journal and records files carry their own cost).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) repriced: u64,
    /// Calls left out because they are stamped after `--now`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) after_now: u64,
    /// The first few of them.
    pub(crate) skipped: Vec<SkippedLine>,
    /// Lines read, the skipped ones included (blank lines and a transcript's unfinished last line are not).
    #[serde(skip)]
    pub(crate) lines_read: u64,
    /// For Claude Code transcripts: what reading them met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) transcripts: Option<LoadStats>,
}

/// A path as a JSON string, lossily: serde refuses one that is not valid UTF-8 (a `\xff` byte in a file or folder
/// name), which failed every `--format json` output over it. The bytes that are not UTF-8 read U+FFFD; any other
/// path is written as serde writes it.
fn lossy_path<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

/// [`lossy_path`] for a list.
fn lossy_paths<S: serde::Serializer>(paths: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(paths.iter().map(|p| p.to_string_lossy()))
}

/// Writes control characters and direction overrides ([`crate::render::is_unsafe_char`]) in every name and id a
/// record carries as escapes (`\u{1b}`); true when there were any.
/// Session ids and the like may come from outside the application (a request header): an escape sequence in one
/// would otherwise reach the terminal through a table (or a page through the HTML and markdown reports).
fn scrub(r: &mut CallRecord) -> bool {
    let mut any = false;
    for v in [
        &mut r.model,
        &mut r.provider,
        &mut r.operation,
        &mut r.request_id,
        &mut r.service_tier,
        &mut r.speed,
        &mut r.inference_geo,
    ]
    .into_iter()
    .flatten()
    {
        any |= clean(v);
    }
    any |= scrub_dimensions(&mut r.dimensions) | scrub_outcome(&mut r.outcome);
    if let Some(cost) = &mut r.cost {
        any |= clean(&mut cost.priced_as);
    }
    any
}

/// [`scrub`] for a task record.
fn scrub_task(t: &mut TaskRecord) -> bool {
    clean(&mut t.task) | scrub_dimensions(&mut t.dimensions) | scrub_outcome(&mut t.outcome)
}

/// [`scrub`] for a tool record.
fn scrub_tool(t: &mut ToolRecord) -> bool {
    clean(&mut t.tool) | scrub_dimensions(&mut t.dimensions) | scrub_outcome(&mut t.outcome)
}

fn clean(v: &mut Arc<str>) -> bool {
    match crate::render::sanitize(v, false) {
        std::borrow::Cow::Borrowed(_) => false,
        std::borrow::Cow::Owned(clean) => {
            *v = clean.into();
            true
        }
    }
}

fn scrub_dimensions(d: &mut tokenmeter::Dimensions) -> bool {
    let mut any = false;
    for v in [&mut d.session, &mut d.user, &mut d.tenant, &mut d.project, &mut d.agent, &mut d.operation, &mut d.task]
        .into_iter()
        .flatten()
    {
        any |= clean(v);
    }
    for (name, value) in &mut d.extra {
        any |= clean(name) | clean(value);
    }
    any
}

fn scrub_outcome(o: &mut tokenmeter::Outcome) -> bool {
    match o {
        tokenmeter::Outcome::Error { error_type } => clean(error_type),
        _ => false,
    }
}

/// Prices a metered call with `prices` when they know its model; true when they did. A model they do not
/// know keeps the cost it was recorded with (its application may have had its own price for it).
fn reprice(r: &mut CallRecord, prices: &PriceBook) -> bool {
    if !r.metered {
        return false;
    }
    let Some(model) = r.model.as_deref().or(r.cost.as_ref().map(|c| &*c.priced_as)) else { return false };
    match prices.resolve(model) {
        Some(priced) => {
            r.cost = Some(priced.price_call(r));
            true
        }
        None => false,
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The records of a source.
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) records: Vec<CallRecord>,
    /// A journal's task records (other sources have none).
    pub(crate) tasks: Vec<TaskRecord>,
    /// A journal's tool execution records (other sources have none; transcripts' tool uses are read apart).
    pub(crate) tools: Vec<ToolRecord>,
    pub(crate) info: SourceInfo,
    /// The transcript files, for a Claude Code source.
    pub(crate) transcript_files: Vec<TranscriptFile>,
}

impl Source {
    /// A ledger of every record of the source (calls, and a journal's tasks and tool executions).
    pub(crate) fn ledger(&self, ctx: &Context) -> Ledger {
        ctx.ledger(&self.records, &self.tasks, &self.tools)
    }

    /// Reads the source the arguments name.
    pub(crate) fn load(args: &SourceArgs, ctx: &Context) -> CliResult<Source> {
        Self::load_since(args, ctx, None)
    }

    /// [`Source::load`], reading a journal's day files from UTC day `since` on only (when given): what a
    /// report of a recent window needs from a long journal. Other sources are read whole.
    pub(crate) fn load_since(args: &SourceArgs, ctx: &Context, since: Option<NaiveDate>) -> CliResult<Source> {
        let source = if let Some(file) = &args.records {
            load_records_file(file, ctx)?
        } else if let Some(dir) = &args.claude_code {
            load_claude_code(dir, ctx)?
        } else {
            let dir = match &args.journal {
                Some(d) => d.clone(),
                None => default_journal_dir().ok_or_else(|| {
                    CliError::data("no journal directory: set TOKENMETER_JOURNAL or HOME, or pass --journal DIR")
                })?,
            };
            load_journal(&dir, ctx, since)?
        };
        Self::checked(source, ctx)
    }

    /// A source as read, checked as every command's is: its skipped lines reported, an error when nothing in it
    /// could be read, control characters in names replaced, calls without a cost priced (and with `--prices`
    /// repriced), and with `--now` the calls after it left out.
    pub(crate) fn checked(mut source: Source, ctx: &Context) -> CliResult<Source> {
        source.report_skips(ctx);
        // Transcripts of which not one file could be read: an error too, as a journal whose every day file is
        // unreadable is (each counts as an unreadable line there). The files found are all in the unreadable list
        // then; the first one's reason is given, as `-q` leaves out the warnings that name them all.
        if let Some(t) = &source.info.transcripts
            && t.files == 0
            && !source.transcript_files.is_empty()
        {
            let paths: Vec<String> = source.info.paths.iter().map(|p| p.display().to_string()).collect();
            let found = &source.transcript_files;
            let why = t
                .unreadable_files
                .iter()
                .find(|u| found.iter().any(|f| f.path == u.path))
                .map(|u| format!("{}: {}", u.path.display(), u.error))
                .unwrap_or_default();
            let files = match found.len() {
                1 => format!("the 1 transcript file found could not be read ({why})"),
                n => format!(
                    "none of the {} transcript files found could be read (first: {why})",
                    crate::render::int(n as u64)
                ),
            };
            return Err(CliError::data(format!("no readable records in {}: {files}", paths.join(", "))));
        }
        // A journal none of whose day files could be read.
        if source.records.is_empty() && source.info.unreadable_files > 0 && source.info.lines_read == 0 {
            let paths: Vec<String> = source.info.paths.iter().map(|p| p.display().to_string()).collect();
            let why =
                source.info.skipped.iter().find(|s| s.line == 0).map(|s| format!("{}: {}", s.path.display(), s.reason));
            let why = why.unwrap_or_default();
            let files = match (source.info.unreadable_files, source.info.files) {
                (1, 1) => format!("its 1 file could not be read ({why})"),
                (n, all) if n == all => {
                    format!("none of its {} files could be read (first: {why})", crate::render::int(n))
                }
                (n, all) => format!(
                    "{} of its {} files could not be read (first: {why}), and the others hold no records",
                    crate::render::int(n),
                    crate::render::int(all)
                ),
            };
            return Err(CliError::data(format!("no readable records in {}: {files}", paths.join(", "))));
        }
        if source.records.is_empty() && source.info.skipped_lines > 0 {
            let paths: Vec<String> = source.info.paths.iter().map(|p| p.display().to_string()).collect();
            let (skipped, read) = (source.info.skipped_lines, source.info.lines_read.max(source.info.skipped_lines));
            // Nothing readable at all is an error, not a $0 report a cron job would pass on; lines that were
            // fine but hold no call (a session with no answer yet) make an empty report.
            if skipped == read {
                let lines = match skipped {
                    1 => "the 1 line read was unreadable".to_owned(),
                    n => format!("all {n} lines read were unreadable"),
                };
                // Claude Code transcript lines given as records or a journal: say where they go.
                let hint = if source.info.kind != SourceKind::ClaudeCode
                    && source.info.skipped.iter().any(|s| transcript_line_at(&s.path, s.line))
                {
                    " (they are Claude Code transcript lines: read them with --claude-code)"
                } else {
                    ""
                };
                return Err(CliError::data(format!("no readable records in {}: {lines}{hint}", paths.join(", "))));
            }
            let others = read - skipped;
            ctx.note(&format!(
                "tokenmeter: warning: no calls in {}: {} of the {} lines read {} unreadable, and the other {} {} no \
                 call",
                paths.join(", "),
                crate::render::int(skipped),
                crate::render::int(read),
                if skipped == 1 { "was" } else { "were" },
                crate::render::int(others),
                if others == 1 { "holds" } else { "hold" }
            ));
        }
        // A call stamped before any of these APIs existed is a clock that was not set yet (a device that booted at
        // 1970): counted as it is, it stretches every window over the whole source (`everything` from 1970-01-01)
        // to decades, and the run-rate and the forecast's daily average with it, to nearly nothing.
        let early: Vec<&CallRecord> = source.records.iter().filter(|r| r.timestamp < api_epoch()).collect();
        if let Some(first) = early.iter().min_by_key(|r| r.timestamp) {
            ctx.note(&format!(
                "tokenmeter: warning: {} stamped before 2020 (the first at {}): a clock that was not set yet? It \
                 stretches the window over everything and the run-rate and forecast with it; --since leaves it out",
                match early.len() {
                    1 => "1 call is".to_owned(),
                    n => format!("{} calls are", crate::render::int(n as u64)),
                },
                first.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
        }
        let scrubbed = source.records.iter_mut().map(|r| u64::from(scrub(r))).sum::<u64>();
        if scrubbed > 0 {
            ctx.note(&format!(
                "tokenmeter: note: {} carried control characters or direction overrides in a name or id (shown escaped, as \\u{{1b}})",
                crate::render::count(scrubbed, "call")
            ));
        }
        let scrubbed = source.tasks.iter_mut().map(|t| u64::from(scrub_task(t))).sum::<u64>()
            + source.tools.iter_mut().map(|t| u64::from(scrub_tool(t))).sum::<u64>();
        if scrubbed > 0 {
            ctx.note(&format!(
                "tokenmeter: note: {} carried control characters or direction overrides in a name or id (shown escaped, as \\u{{1b}})",
                crate::render::count(scrubbed, "task or tool record")
            ));
        }
        if let Some(own) = ctx.file_prices.as_ref().filter(|_| source.info.kind != SourceKind::ClaudeCode) {
            // Journal and records carry the cost their application priced them at; `--prices` asks for its
            // file's prices instead for the models it names (transcripts are priced with them as they are
            // read). A model the file does not name keeps its recorded cost: repriced at the built-in rates, a
            // file adding one fine-tune replaced every call's cost the application had priced its own way.
            let mut repriced = 0;
            // A file that sets its own web-search fee reprices the calls that made searches, whatever their model.
            let own_fee = ctx.own_search_fee;
            for r in source.records.iter_mut() {
                let named = r.model.as_deref().or(r.cost.as_ref().map(|c| &*c.priced_as));
                let in_file = named.is_some_and(|m| own.resolve(m).is_some()) || (own_fee && r.web_search_requests > 0);
                // A call recorded without a cost is priced as without `--prices` (by the merged book), and is not
                // counted as repriced unless the file names its model.
                if in_file || r.cost.is_none() {
                    let priced = reprice(r, &ctx.prices);
                    repriced += u64::from(priced && in_file);
                }
            }
            source.info.repriced = repriced;
            if source.info.repriced > 0 && !source.tasks.is_empty() {
                // A task record carries the sum of its calls' costs, not the calls themselves.
                ctx.note(
                    "tokenmeter: note: --prices reprices calls; task costs (cost per task) stay as the \
                     application recorded them",
                );
            }
        } else {
            // A record without a cost is priced here as the ledger prices it when it ingests it, so that the
            // record's own cost (`show`'s calls) agrees with the totals.
            for r in source.records.iter_mut().filter(|r| r.cost.is_none()) {
                reprice(r, &ctx.prices);
            }
        }
        if ctx.pinned_now {
            // `--now` is the time the reports are made at: calls after it have not happened yet.
            let read = source.records.len();
            source.records.retain(|r| r.timestamp <= ctx.now);
            source.info.after_now = (read - source.records.len()) as u64;
            source.tasks.retain(|t| t.timestamp <= ctx.now);
            source.tools.retain(|t| t.timestamp <= ctx.now);
            (source.info.tasks, source.info.tools) = (source.tasks.len() as u64, source.tools.len() as u64);
            if source.info.after_now > 0 {
                ctx.note(&format!(
                    "tokenmeter: note: left out {} stamped after --now ({})",
                    crate::render::count(source.info.after_now, "call"),
                    ctx.now.to_rfc3339()
                ));
            }
        } else {
            // Stamped by a clock that ran ahead: the reports count them now, where a meter replaying the same
            // journal leaves them out (and warns) until its clock reaches them. Said, so the two can be told apart.
            let allowed = tokenmeter::journal::ReplayReport::AHEAD_OF_CLOCK_LIMIT.as_nanos() as i64;
            let limit = ctx.now.timestamp_nanos_opt().unwrap_or(i64::MAX).saturating_add(allowed);
            let (ahead, latest) = source
                .records
                .iter()
                .map(CallRecord::ended_at_unix_nanos)
                .filter(|ended| *ended > limit)
                .fold((0u64, i64::MIN), |(n, latest), ended| (n + 1, latest.max(ended)));
            if ahead > 0 {
                ctx.note(&format!(
                    "tokenmeter: note: {} stamped more than an hour after now (the latest ends {}) counted now; a \
                     meter replaying them leaves them out until its clock reaches them",
                    crate::render::count(ahead, "call"),
                    chrono::DateTime::from_timestamp_nanos(latest).to_rfc3339()
                ));
            }
        }
        Ok(source)
    }

    fn report_skips(&self, ctx: &Context) {
        let info = &self.info;
        if let Some(t) = &info.transcripts {
            for u in &t.unreadable_files {
                ctx.note(&format!("tokenmeter: warning: cannot read {}: {}", u.path.display(), u.error));
            }
            // A last line cut short with no newline after it is one Claude Code is writing now: not a bad line
            // (the next read has it whole), but a call it may hold is not in this report.
            if t.unfinished_lines > 0 {
                let (of, them) = if t.unfinished_lines == 1 { ("a transcript", "it") } else { ("transcripts", "them") };
                ctx.note(&format!(
                    "tokenmeter: note: left out {} of {of} being written (the next read has {them} whole)",
                    crate::render::count(t.unfinished_lines, "unfinished last line"),
                ));
            }
        }
        if info.skipped_lines > 0 || info.unreadable_files > 0 {
            let places: Vec<String> = info
                .skipped
                .iter()
                .map(|s| match s.line {
                    0 => format!("{}: {}", s.path.display(), s.reason),
                    line => format!("{}:{line}: {}", s.path.display(), s.reason),
                })
                .collect();
            let what: Vec<String> =
                [(info.skipped_lines, "unreadable line"), (info.unreadable_files, "unreadable file")]
                    .into_iter()
                    .filter(|(n, _)| *n > 0)
                    .map(|(n, what)| crate::render::count(n, what))
                    .collect();
            ctx.note(&format!(
                "tokenmeter: warning: skipped {}{}",
                what.join(" and "),
                if places.is_empty() { String::new() } else { format!(", first at:\n  {}", places.join("\n  ")) }
            ));
        }
    }
}

/// `$TOKENMETER_JOURNAL`, else `$XDG_DATA_HOME/tokenmeter/journal`, else `~/.local/share/tokenmeter/journal`.
pub(crate) fn default_journal_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("TOKENMETER_JOURNAL").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(d).join("tokenmeter").join("journal"));
    }
    std::env::home_dir().map(|h| h.join(".local").join("share").join("tokenmeter").join("journal"))
}

fn progress_bar(ctx: &Context, total: u64, what: &str) -> Option<ProgressBar> {
    if ctx.quiet || !std::io::stderr().is_terminal() || total < 8 << 20 {
        return None;
    }
    let pb = ProgressBar::new(total);
    let style = ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_message(what.to_owned());
    Some(pb)
}

// === Claude Code ===

/// Why [`transcripts::default_claude_code_dirs`] found nothing, naming what it looked at: a `CLAUDE_CONFIG_DIR`
/// that lists no directory (`,`), or the two config dirs it looked in (`$XDG_CONFIG_HOME/claude` when that is set).
fn no_default_claude_code_dir() -> CliError {
    if let Some(raw) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|v| !v.is_empty()) {
        return CliError::data(format!(
            "no Claude Code data found: CLAUDE_CONFIG_DIR is set ({:?}) but lists no directory; list one (several \
             comma-separated) or pass --claude-code DIR",
            raw.to_string_lossy()
        ));
    }
    let Some([config, home]) = transcripts::standard_claude_code_dirs() else {
        let home = if cfg!(windows) { "USERPROFILE" } else { "HOME" };
        return CliError::data(format!(
            "no Claude Code data found: no home directory ({home} is not set); set CLAUDE_CONFIG_DIR or pass \
             --claude-code DIR"
        ));
    };
    CliError::data(format!(
        "no Claude Code data found: neither {} nor {} has a projects/ folder; set CLAUDE_CONFIG_DIR or pass \
         --claude-code DIR",
        config.display(),
        home.display()
    ))
}

fn load_claude_code(dir: &Path, ctx: &Context) -> CliResult<Source> {
    load_claude_code_where(dir, ctx, &|_| true)
}

/// [`load_claude_code`], reading only the transcript files `keep` keeps of those found (`statusline` reads the
/// files written lately). Finding none at all is still an error; keeping none reads nothing.
pub(crate) fn load_claude_code_where(
    dir: &Path,
    ctx: &Context,
    keep: &dyn Fn(&TranscriptFile) -> bool,
) -> CliResult<Source> {
    // Entries of CLAUDE_CONFIG_DIR that do not exist (a config dir since deleted): warned about and left out, as
    // long as another one exists.
    let mut missing = Vec::new();
    let dirs = if dir.as_os_str().is_empty() {
        let dirs = transcripts::default_claude_code_dirs();
        if dirs.is_empty() {
            return Err(no_default_claude_code_dir());
        }
        let (found, gone): (Vec<_>, Vec<_>) = dirs.into_iter().partition(|d| d.exists());
        if found.is_empty() {
            let list: Vec<String> = gone.iter().map(|d| d.display().to_string()).collect();
            return Err(CliError::data(format!(
                "no Claude Code data found: CLAUDE_CONFIG_DIR lists {}, and none of them exists",
                list.join(", ")
            )));
        }
        // A config dir holds its transcripts in `projects/` (or the entry is that folder): one without it was
        // walked whole, plugins and caches included, and any `.jsonl` below read as a transcript.
        let (found, bare): (Vec<_>, Vec<_>) = found
            .into_iter()
            .partition(|d| d.join("projects").is_dir() || d.file_name().is_some_and(|n| n == "projects"));
        if found.is_empty() {
            let list: Vec<String> = bare.iter().map(|d| d.display().to_string()).collect();
            return Err(CliError::data(format!(
                "no Claude Code data found: CLAUDE_CONFIG_DIR lists {}, and none of them has a projects/ folder",
                list.join(", ")
            )));
        }
        let left_out = |path: PathBuf, why: &str| transcripts::UnreadableFile {
            path,
            error: format!("{why} (listed in CLAUDE_CONFIG_DIR; left out)"),
        };
        missing = gone.into_iter().map(|p| left_out(p, "no such directory")).collect();
        missing.extend(bare.into_iter().map(|p| left_out(p, "no projects/ folder")));
        found
    } else {
        // A pipe or a device (`--claude-code /dev/stdin`, `<(cat s.jsonl)`) was walked as a folder: "Not a
        // directory".
        if std::fs::metadata(dir).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            return Err(CliError::usage(format!(
                "--claude-code {}: a pipe or device, not a file or directory (standard input is not read); give a \
                 .jsonl file or a directory",
                dir.display()
            )));
        }
        // A single file is read as one transcript only when it is one: anything else would be read line by
        // line and every line skipped, with exit status 0.
        if dir.is_file() && dir.extension().is_none_or(|e| e != "jsonl") {
            return Err(CliError::usage(format!(
                "--claude-code {}: not a Claude Code transcript; give a .jsonl file or a directory",
                dir.display()
            )));
        }
        vec![dir.to_owned()]
    };
    // A folder that cannot be read (one root-owned project) is reported with the unreadable files, not fatal.
    let (files, unreadable_dirs) =
        transcripts::discover_all_reporting(&dirs).map_err(|e| CliError::data(e.to_string()))?;
    if files.is_empty() {
        let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        let mut message = format!("no Claude Code transcripts (.jsonl files) under {}", list.join(", "));
        // The folders left out may be why: say so here, since no report (and no warning under it) follows.
        if let Some(first) = unreadable_dirs.first() {
            let n = unreadable_dirs.len();
            let (folders, more) = if n == 1 {
                ("folder or file", String::new())
            } else {
                ("folders or files", format!(" (first of {n})"))
            };
            message.push_str(&format!(
                "; {n} {folders} below could not be read{more}: {}: {}",
                first.path.display(),
                first.error
            ));
        }
        return Err(CliError::data(message));
    }
    let mut files = files;
    files.retain(|f| keep(f));
    let total: u64 = files.iter().map(|f| f.len).sum();
    let pb = progress_bar(ctx, total, "reading transcripts");
    let loader = TranscriptLoader::new(ctx.prices.clone()).with_max_bad_places(MAX_PLACES);
    let load = loader.load_cached(&files, &mut ctx.transcript_cache.lock(), &|n| {
        if let Some(pb) = &pb {
            pb.inc(n);
        }
    });
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let mut stats = load.stats;
    if stats.usage_lines == 0 && stats.lines > stats.bad_lines {
        not_transcripts(&files)?;
    }
    stats.unreadable_files.splice(0..0, missing.into_iter().chain(unreadable_dirs));
    let info = SourceInfo {
        kind: SourceKind::ClaudeCode,
        paths: dirs,
        files: stats.files,
        calls: stats.calls,
        tasks: 0,
        tools: 0,
        skipped_lines: stats.bad_lines,
        // Transcript files that could not be read are in `transcripts.unreadable_files`.
        unreadable_files: 0,
        other_lines: 0,
        after_now: 0,
        repriced: 0,
        lines_read: stats.lines,
        skipped: stats
            .bad_line_places
            .iter()
            .map(|b| SkippedLine { path: b.path.clone(), line: b.line, reason: b.reason.clone() })
            .collect(),
        transcripts: Some(stats),
    };
    Ok(Source { records: load.calls, tasks: Vec::new(), tools: Vec::new(), info, transcript_files: files })
}

/// Lines were read and not one was an assistant line with usage: an error when the files are not Claude Code
/// transcripts at all, none of the first lines read having a transcript line's `type` (a tokenmeter journal or
/// records file given to `--claude-code` made a $0 report, exit status 0). A transcript whose session has no
/// answer yet (user lines only) still makes an empty report.
fn not_transcripts(files: &[TranscriptFile]) -> CliResult<()> {
    const FILES: usize = 20;
    const LINES: usize = 5;
    let mut journal_like = None;
    for file in files.iter().take(FILES) {
        let lines = first_lines(&file.path).filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()));
        for object in lines.take(LINES).filter_map(|l| json_object(&l)) {
            if is_transcript_line(&object) {
                return Ok(());
            }
            if journal_like.is_none() && object.contains_key("v") {
                journal_like = Some(file.path.clone());
            }
        }
    }
    let what = match journal_like {
        Some(path) => format!(
            "{} holds tokenmeter journal lines, not a Claude Code transcript: read it with --journal DIR (its \
             folder) or --records FILE",
            path.display()
        ),
        None => "none of the lines read is a Claude Code transcript line (each has a `type`)".to_owned(),
    };
    Err(CliError::data(format!("no Claude Code usage found: {what}")))
}

/// Whether line `line` (1-based) of `path` is a Claude Code transcript line with a `sessionId`.
fn transcript_line_at(path: &Path, line: u64) -> bool {
    let text = first_lines(path).nth(line.saturating_sub(1) as usize);
    text.and_then(|t| json_object(&t)).is_some_and(|o| is_transcript_line(&o) && o.contains_key("sessionId"))
}

/// `path`'s lines from its first 16 MiB only (a torn file of NUL bytes is one line of any length); none when it
/// cannot be opened.
fn first_lines(path: &Path) -> impl Iterator<Item = Vec<u8>> {
    let file = std::fs::File::open(path).ok();
    let reader = file.map(|f| std::io::BufReader::new(std::io::Read::take(f, 16 << 20)));
    reader.into_iter().flat_map(|r| r.split(b'\n').map_while(Result::ok))
}

/// `line` as a JSON object, if it is one.
fn json_object(line: &[u8]) -> Option<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_slice(line) {
        Ok(serde_json::Value::Object(object)) => Some(object),
        _ => None,
    }
}

/// Whether a JSON object is a Claude Code transcript line: every one has a string `type` (a tokenmeter journal's
/// and records file's lines have none).
fn is_transcript_line(object: &serde_json::Map<String, serde_json::Value>) -> bool {
    object.get("type").is_some_and(serde_json::Value::is_string)
}

// === records files and the journal ===

/// A journal line: `{"v":1,"call":{…}}`.
#[derive(Deserialize)]
struct JournalLine {
    // Wider than any version written, so that any integer reads as a version (as the library reads them).
    v: u64,
    call: CallRecord,
}

/// A journal line that is not a call: `{"v":1,"task":{…}}`, `"tool"`, or `"budget_alert"` (an alert the
/// application delivered).
#[derive(Deserialize)]
struct JournalOtherLine {
    v: u64,
    #[serde(default)]
    task: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    tool: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    budget_alert: Option<serde::de::IgnoredAny>,
}

/// Just a journal line's version.
#[derive(Deserialize)]
struct VersionOnly {
    v: u64,
}

/// A journal line holding none of the kinds this version reads, and something else besides `v`; not a bare
/// record's fields (`timestamp` and `tokens`), as the library's replay tells them apart.
fn other_kind(line: &[u8]) -> bool {
    const KNOWN: [&str; 5] = ["v", "call", "task", "tool", "budget_alert"];
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(line).is_ok_and(|m| {
        let bare_record = m.contains_key("timestamp") && m.contains_key("tokens");
        let known_kind = m.keys().any(|k| KNOWN[1..].contains(&k.as_str()));
        !known_kind && !bare_record && m.keys().any(|k| !KNOWN.contains(&k.as_str()))
    })
}

fn newer(v: u64) -> String {
    format!("written by a newer tokenmeter (schema version {v})")
}

/// The journal's own line format version this build reads.
const JOURNAL_SCHEMA: u32 = tokenmeter::journal::SCHEMA_VERSION;

/// Reads records from one file, streamed (memory holds the records, not the file): a JSON array, or JSON Lines of
/// journal lines or bare records.
fn parse_records(path: &Path, mut reader: impl BufRead, out: &mut Vec<CallRecord>, info: &mut SourceInfo) -> CliResult {
    // A UTF-8 byte order mark (Windows editors and PowerShell write one) is not part of the JSON.
    let mut head = Vec::with_capacity(3);
    while head.len() < 3 {
        let buf = reader.fill_buf().map_err(|e| read_error(path, e))?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len().min(3 - head.len());
        head.extend_from_slice(&buf[..n]);
        reader.consume(n);
    }
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&head);
    parse_stream(path, head.chain(reader), out, info)
}

fn read_error(path: &Path, e: std::io::Error) -> CliError {
    CliError::data(format!("cannot read {}: {e}", path.display()))
}

/// The longest line read into memory: the journal replay's.
const MAX_LINE: u64 = tokenmeter::journal::MAX_LINE_BYTES;

fn parse_stream(path: &Path, mut reader: impl BufRead, out: &mut Vec<CallRecord>, info: &mut SourceInfo) -> CliResult {
    let fail = |e: std::io::Error| read_error(path, e);
    // The whitespace before the first value is skipped to find what it is; its newlines are counted, so line
    // numbers stay the file's.
    let mut lines_before = 0u64;
    let first = loop {
        let buf = reader.fill_buf().map_err(fail)?;
        if buf.is_empty() {
            break None;
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                // Back to the start of that line: whitespace before a value on its line is the line's.
                let line_start = buf[..i].iter().rposition(|&b| b == b'\n').map_or(0, |n| n + 1);
                lines_before += buf[..line_start].iter().filter(|&&b| b == b'\n').count() as u64;
                let first = buf[i];
                reader.consume(line_start);
                break Some(first);
            }
            None => {
                lines_before += buf.iter().filter(|&&b| b == b'\n').count() as u64;
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    if first == Some(b'[') {
        let records: Vec<CallRecord> = serde_json::from_reader(reader).map_err(|e| {
            // The reader starts after the blank lines skipped above: the error's line is the file's from there.
            let said = e.to_string();
            let what = said.rsplit_once(" at line ").map_or(said.as_str(), |(what, _)| what);
            let at = if e.line() > 0 {
                format!(" at line {} column {}", e.line() as u64 + lines_before, e.column())
            } else {
                String::new()
            };
            CliError::data(format!("{}: not a JSON array of call records: {what}{at}", path.display()))
        })?;
        info.lines_read += records.len() as u64;
        out.extend(records);
        return Ok(());
    }
    let skip = |line: u64, reason: String, info: &mut SourceInfo| {
        info.skipped_lines += 1;
        if info.skipped.len() < MAX_PLACES {
            info.skipped.push(SkippedLine { path: path.to_owned(), line, reason });
        }
    };
    // A journal's task, tool and budget alert lines hold no call (this tool reads calls only).
    let other_record = |line: &[u8]| {
        serde_json::from_slice::<JournalOtherLine>(line).is_ok_and(|l| {
            (1..=u64::from(JOURNAL_SCHEMA)).contains(&l.v)
                && (l.task.is_some() || l.tool.is_some() || l.budget_alert.is_some())
        })
    };
    let mut buf = Vec::new();
    let mut line_no = lines_before;
    loop {
        buf.clear();
        // At most 16 MiB a line, as the journal's replay reads it: a longer one (a tail of zeros) is skipped
        // without being held whole.
        if std::io::Read::take(&mut reader, MAX_LINE + 1).read_until(b'\n', &mut buf).map_err(fail)? == 0 {
            break;
        }
        line_no += 1;
        if buf.len() as u64 > MAX_LINE && buf.last() != Some(&b'\n') {
            info.lines_read += 1;
            skip(line_no, format!("a line longer than {} MiB", MAX_LINE >> 20), info);
            reader.skip_until(b'\n').map_err(fail)?;
            continue;
        }
        let line = buf.trim_ascii();
        if line.is_empty() {
            continue;
        }
        info.lines_read += 1;
        // The journal writes these keys compactly: such a line is not tried as a call, unless it has a `call` too
        // (hand-made: replay keeps the call, and so does this reader).
        if [&b"\"task\":{"[..], b"\"tool\":{", b"\"budget_alert\":{"]
            .iter()
            .any(|key| memchr::memmem::find(line, key).is_some())
            && memchr::memmem::find(line, b"\"call\"").is_none()
            && other_record(line)
        {
            continue;
        }
        // A journal line wraps the record in `call` (and a record has no such field); a bare record is tried
        // when a line with the text `"call"` is not a journal line after all.
        let bare = || serde_json::from_slice::<CallRecord>(line).map(|c| (u64::from(JOURNAL_SCHEMA), c));
        let parsed = if memchr::memmem::find(line, b"\"call\"").is_some() {
            serde_json::from_slice::<JournalLine>(line).map(|l| (l.v, l.call)).or_else(|e| bare().map_err(|_| e))
        } else {
            bare()
        };
        // A newer schema may change the record itself: its version alone says why the line is skipped.
        let version = || serde_json::from_slice::<VersionOnly>(line).ok().map(|v| v.v);
        match parsed {
            Ok((v, _)) if v > u64::from(JOURNAL_SCHEMA) => skip(line_no, newer(v), info),
            Ok((0, _)) => skip(line_no, "schema version 0 (versions start at 1)".to_owned(), info),
            Ok((_, call)) => out.push(call),
            Err(e) => match version() {
                Some(v) if v > u64::from(JOURNAL_SCHEMA) => skip(line_no, newer(v), info),
                // Written by other tools with spaces (`"task": {`): still a task, tool or alert line.
                Some(_) if other_record(line) => {}
                // A journal line of a kind this version does not know (`{"v":1,"usage_limit":…}`, from a newer
                // tokenmeter): left out quietly, as the library's replay leaves it out.
                Some(v) if v >= 1 && other_kind(line) => {}
                _ => skip(line_no, format!("not a call record: {e}"), info),
            },
        }
    }
    Ok(())
}

fn open_file(path: &Path) -> CliResult<std::io::BufReader<std::fs::File>> {
    std::fs::File::open(path).map(|f| std::io::BufReader::with_capacity(256 * 1024, f)).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CliError::data(format!("{}: no such file", path.display())),
        _ => read_error(path, e),
    })
}

fn load_records_file(path: &Path, ctx: &Context) -> CliResult<Source> {
    if path == Path::new("-") {
        return Err(CliError::usage("--records -: standard input is not read; give a file"));
    }
    if path.is_dir() {
        return Err(CliError::data(format!(
            "{} is a directory: --records takes a file (use --journal DIR for a journal)",
            path.display()
        )));
    }
    let reader = open_file(path)?;
    let mut info = empty_info(SourceKind::Records, vec![path.to_owned()]);
    let mut records = Vec::new();
    let size = reader.get_ref().metadata().map_or(0, |m| m.len());
    match progress_bar(ctx, size, "reading records") {
        Some(pb) => {
            let reader = std::io::BufReader::with_capacity(256 * 1024, pb.wrap_read(reader.into_inner()));
            let parsed = parse_records(path, reader, &mut records, &mut info);
            pb.finish_and_clear();
            parsed?;
        }
        None => parse_records(path, reader, &mut records, &mut info)?,
    }
    info.files = 1;
    // An empty file (a cron job's export that wrote nothing) makes a $0 report: said, as an empty journal is.
    if info.lines_read == 0 {
        ctx.note(&format!("tokenmeter: note: the records file {} holds no records", path.display()));
    }
    Ok(finish(records, info))
}

fn load_journal(dir: &Path, ctx: &Context, since: Option<NaiveDate>) -> CliResult<Source> {
    let meta = std::fs::metadata(dir).map_err(|_| {
        CliError::data(format!(
            "journal directory {} does not exist (pass --journal DIR, --claude-code [DIR] or --records FILE)",
            dir.display()
        ))
    })?;
    if !meta.is_dir() {
        return Err(CliError::data(format!(
            "{} is not a directory (--journal takes the journal's directory)",
            dir.display()
        )));
    }
    // Day files sort by name as by day: those of `since` and later are the names from its file's on.
    let first = since.map_or_else(String::new, |d| format!("tokenmeter-{}.jsonl", d.format("%Y-%m-%d")));
    let total: u64 = std::fs::read_dir(dir)
        .map_err(|e| CliError::data(format!("cannot read {}: {e}", dir.display())))?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("tokenmeter-") && n.ends_with(".jsonl") && n >= first.as_str())
        })
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    // Read the way a meter replays it: a batch a live writer is appending is waited for (its lock), not
    // mistaken for a torn line.
    let pb = progress_bar(ctx, total, "reading journal");
    if let Some(pb) = &pb {
        pb.set_style(
            ProgressStyle::with_template("{msg} {pos} records").unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
    }
    let (mut records, mut tasks, mut tools) = (Vec::new(), Vec::new(), Vec::new());
    let each = |entry| {
        match entry {
            JournalEntry::Call(r) => records.push(r),
            JournalEntry::Task(t) => tasks.push(t),
            JournalEntry::Tool(t) => tools.push(t),
            // A kind of line this build does not read (the enum is non-exhaustive).
            _ => {}
        }
        if let Some(pb) = &pb {
            pb.inc(1);
        }
    };
    let report = match since {
        Some(day) => tokenmeter::journal::read_entries_since(dir, day, each),
        None => tokenmeter::journal::read_entries(dir, each),
    }
    .map_err(|e| CliError::data(format!("cannot read {}: {e}", dir.display())))?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let mut info = empty_info(SourceKind::Journal, vec![dir.to_owned()]);
    info.files = report.files;
    // A day file that could not be read is one skipped "line" of the replay's (at line 0): a file here.
    info.unreadable_files = report.unreadable_files;
    info.other_lines = report.other_lines;
    if report.other_lines > 0 {
        ctx.note(&format!(
            "tokenmeter: note: {} journal line{} of a kind this version does not read (written by a later tokenmeter) \
             left out",
            report.other_lines,
            if report.other_lines == 1 { "" } else { "s" }
        ));
    }
    info.skipped_lines = report.skipped_lines.saturating_sub(report.unreadable_files);
    info.lines_read =
        report.records + report.tasks + report.tools + report.budget_alerts + report.other_lines + info.skipped_lines;
    info.skipped = report
        .skipped
        .into_iter()
        .take(MAX_PLACES)
        .map(|s| SkippedLine { reason: skip_reason(&s.reason), path: s.path, line: s.line })
        .collect();
    if report.files == 0 {
        match since {
            Some(day) => {
                ctx.note(&format!("tokenmeter: note: the journal {} holds no records since {day}", dir.display()))
            }
            // A Claude Code directory (`~/.claude`, with its `projects/`) given as the journal.
            None if dir.join("projects").is_dir() => ctx.note(&format!(
                "tokenmeter: note: the journal {} holds no records; it has a projects/ folder: for Claude Code \
                 transcripts, give --claude-code {}",
                dir.display(),
                dir.display()
            )),
            None => ctx.note(&format!("tokenmeter: note: the journal {} holds no records yet", dir.display())),
        }
    }
    let mut source = finish(records, info);
    tasks.sort_by_key(|t: &TaskRecord| t.timestamp);
    tools.sort_by_key(|t: &ToolRecord| t.timestamp);
    (source.info.tasks, source.info.tools) = (tasks.len() as u64, tools.len() as u64);
    (source.tasks, source.tools) = (tasks, tools);
    Ok(source)
}

/// A journal line's skip reason, worded as the other sources word theirs.
fn skip_reason(reason: &SkipReason) -> String {
    match reason {
        SkipReason::TornTail => "torn last line (its writer stopped mid-line)".to_owned(),
        SkipReason::Corrupt { message } => format!("not a call record: {message}"),
        SkipReason::UnsupportedVersion { version } => newer(u64::from(*version)),
        SkipReason::Unreadable { message } => format!("cannot read the file: {message}"),
        other => format!("{other:?}"),
    }
}

fn empty_info(kind: SourceKind, paths: Vec<PathBuf>) -> SourceInfo {
    SourceInfo {
        kind,
        paths,
        files: 0,
        calls: 0,
        tasks: 0,
        tools: 0,
        skipped_lines: 0,
        unreadable_files: 0,
        other_lines: 0,
        after_now: 0,
        repriced: 0,
        skipped: Vec::new(),
        lines_read: 0,
        transcripts: None,
    }
}

fn finish(mut records: Vec<CallRecord>, mut info: SourceInfo) -> Source {
    records.sort_by_key(|r| r.timestamp);
    info.calls = records.len() as u64;
    Source { records, tasks: Vec::new(), tools: Vec::new(), info, transcript_files: Vec::new() }
}

/// 2020-01-01T00:00:00Z: no LLM API call this tool reads was made before it, so a call stamped earlier had a
/// clock that was wrong.
fn api_epoch() -> chrono::DateTime<Utc> {
    chrono::DateTime::from_timestamp(1_577_836_800, 0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_journal_lines_bare_records_and_skips_the_rest() {
        let rec = r#"{"timestamp":"2025-10-01T10:00:00Z","duration_us":5,"tokens":{"input":1,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":2,"reasoning":0},"metered":true,"outcome":{"status":"ok"},"dimensions":{}}"#;
        let text = format!("{{\"v\":1,\"call\":{rec}}}\n{rec}\n\n{{\"v\":9,\"call\":{rec}}}\nnot json\n");
        let mut info = empty_info(SourceKind::Records, vec![]);
        let mut out = Vec::new();
        parse_records(Path::new("r.jsonl"), text.as_bytes(), &mut out, &mut info).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(info.skipped_lines, 2);
        assert_eq!(info.skipped[0].line, 4);
        assert!(info.skipped[0].reason.contains("newer"));
        assert_eq!(info.skipped[1].line, 5);

        let mut out = Vec::new();
        parse_records(Path::new("r.json"), format!(" [{rec},{rec}]").as_bytes(), &mut out, &mut info).unwrap();
        assert_eq!(out.len(), 2);
        assert!(parse_records(Path::new("r.json"), &b"[{]"[..], &mut out, &mut info).is_err());
        // The error names the file's line, blank lines before the array counted.
        let err = parse_records(Path::new("r.json"), &b"\n\n[\n{]"[..], &mut out, &mut info).unwrap_err();
        assert!(err.to_string().contains(" at line 4 column 2"), "{err}");

        // A byte order mark before a JSON array or the first JSON line.
        let mut info = empty_info(SourceKind::Records, vec![]);
        let mut out = Vec::new();
        parse_records(Path::new("r.json"), format!("\u{feff}[{rec}]").as_bytes(), &mut out, &mut info).unwrap();
        parse_records(Path::new("r.jsonl"), format!("\u{feff}{rec}\n{rec}\n").as_bytes(), &mut out, &mut info).unwrap();
        assert_eq!((out.len(), info.skipped_lines), (3, 0));
    }

    #[test]
    fn a_line_over_16_mib_is_skipped_and_the_next_one_read() {
        let rec = r#"{"timestamp":"2025-10-01T10:00:00Z","duration_us":5,"tokens":{"input":1,"output":2},"metered":true,"outcome":{"status":"ok"},"dimensions":{}}"#;
        let mut text = format!("{rec}\n").into_bytes();
        text.extend(std::iter::repeat_n(b'0', (16 << 20) + 1));
        text.extend(format!("\n{rec}\n").bytes());
        let mut info = empty_info(SourceKind::Records, vec![]);
        let mut out = Vec::new();
        parse_records(Path::new("r.jsonl"), &text[..], &mut out, &mut info).unwrap();
        assert_eq!((out.len(), info.skipped_lines, info.lines_read), (2, 1, 3));
        assert_eq!((info.skipped[0].line, info.skipped[0].reason.as_str()), (2, "a line longer than 16 MiB"));
        // A line of exactly 16 MiB is read (and is no record).
        let mut text = vec![b'0'; 16 << 20];
        text.extend(format!("\n{rec}\n").bytes());
        let mut info = empty_info(SourceKind::Records, vec![]);
        let mut out = Vec::new();
        parse_records(Path::new("r.jsonl"), &text[..], &mut out, &mut info).unwrap();
        assert_eq!(out.len(), 1);
        assert_ne!(info.skipped[0].reason, "a line longer than 16 MiB");
    }

    /// A reader that hands out one byte at a time: every line and the byte order mark cross a buffer's end.
    struct OneByte<'a>(&'a [u8]);

    impl std::io::Read for OneByte<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some((&b, rest)) = self.0.split_first() else { return Ok(0) };
            buf[0] = b;
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn a_records_file_is_read_as_a_stream_with_the_files_line_numbers() {
        // `--records` read the whole file into memory; and a journal task, tool or alert line written with
        // spaces (Python's `json.dumps`) was counted as an unreadable call.
        let rec = r#"{"timestamp":"2025-10-01T10:00:00Z","duration_us":5,"tokens":{"input":1,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":2,"reasoning":0},"metered":true,"outcome":{"status":"ok"},"dimensions":{}}"#;
        let task = r#"{"v": 1, "task": {"timestamp": "2025-10-01T10:00:00Z"}}"#;
        let alert = r#"{"v": 1, "budget_alert": {"budget": "b"}}"#;
        let text = format!("\u{feff}\n  \n{rec}\n{task}\n{alert}\n   not json\n{rec}");
        for one_byte in [false, true] {
            let mut info = empty_info(SourceKind::Records, vec![]);
            let mut out = Vec::new();
            let bytes = text.as_bytes();
            let result = if one_byte {
                parse_records(
                    Path::new("r.jsonl"),
                    std::io::BufReader::with_capacity(1, OneByte(bytes)),
                    &mut out,
                    &mut info,
                )
            } else {
                parse_records(Path::new("r.jsonl"), bytes, &mut out, &mut info)
            };
            result.unwrap();
            assert_eq!(out.len(), 2, "one byte at a time: {one_byte}");
            assert_eq!(info.skipped_lines, 1, "{:?}", info.skipped);
            assert_eq!(info.skipped[0].line, 6, "the file's own line number");
            let mut out = Vec::new();
            let array = format!("\u{feff}\n [{rec},\n{rec}]");
            parse_records(
                Path::new("r.json"),
                std::io::BufReader::with_capacity(1, OneByte(array.as_bytes())),
                &mut out,
                &mut info,
            )
            .unwrap();
            assert_eq!(out.len(), 2);
        }
    }
}
