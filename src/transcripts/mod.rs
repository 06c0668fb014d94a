//! Claude Code transcripts as call records: what a developer's own Claude Code sessions cost, read from the
//! JSONL transcripts Claude Code keeps on disk.
//!
//! # Where they are
//!
//! Claude Code writes one JSON Lines file per session under `<config dir>/projects/<project>/`:
//! `<session>.jsonl`, and in newer versions `<session>/subagents/<agent>.jsonl` for sub-agents and other
//! nested files. The config dir is `$CLAUDE_CONFIG_DIR` (one path, or several separated by commas) when set,
//! else `~/.config/claude` and `~/.claude` (both, when both exist: a call found in both is counted once).
//! [`default_claude_code_dirs`] finds them, [`discover`] lists the files under one of them.
//!
//! # What a call is
//!
//! Each line is one JSON object. A line with `"type": "assistant"` (or no `type`) whose `message` has a
//! `usage` object is one API response as Claude Code saw it; the fields read are `timestamp`, `sessionId`,
//! `requestId`, `isSidechain`, `isApiErrorMessage`, `advisorModel`, `message.id`, `message.model` and, in
//! `message.usage`, `input_tokens`, `output_tokens`, `cache_read_input_tokens`, `cache_creation_input_tokens`,
//! `cache_creation.ephemeral_5m_input_tokens` / `ephemeral_1h_input_tokens`, `service_tier`, `speed`,
//! `inference_geo` and `iterations` (server-side compaction's summary steps, added to the call's counts, and the
//! advisor tool's `advisor_message` sub-inferences, with their `model`: calls of their own).
//! Everything else (prompt and response text included) is skipped unread. The rules:
//!
//! - **One call per `(message.id, requestId)`**, and one more per advisor iteration of that response (at the advisor
//!   model's rates, with the executor's id and `:advisor:<n>` after it). Claude Code writes a response once per
//!   content block, and streamed lines repeat with growing output; of the copies, the one with the larger token total
//!   gives the call its tokens (a main-conversation copy is preferred to a sidechain copy), and the earliest copy its
//!   time (the response began then: a call streamed across midnight belongs to the day it began; ccusage 20.0.24
//!   dates it by the copy it keeps). Without a `requestId` the key is the message id within its session and prompt
//!   (input, cache read and cache write counts, which every copy of one response repeats: a relay that answers every
//!   response with the same id and no `requestId` is not one call a session); such a sidechain line is a replay only
//!   of a main message with its prompt. A line without a message id is a call of its own.
//! - **Sidechain replays are dropped.** A sidechain line (`isSidechain: true`, e.g. a `/btw` aside or a
//!   sub-agent) that repeats a message of a main conversation under a new request id replays the parent's
//!   usage; it is not a call (message ids are the API's, unique: a resumed session's file may hold the
//!   message under the earlier session's id). Sidechain lines with their own message ids are calls.
//! - **`<synthetic>` lines** (messages Claude Code makes itself, such as API error notices) count their
//!   tokens but have no model; they are not billed by Anthropic, so their cost is zero, priced as
//!   `<synthetic>`.
//! - **Cache writes** are split into 5-minute and 1-hour writes from `usage.cache_creation` when present;
//!   otherwise all of `cache_creation_input_tokens` are 5-minute writes. When the split sums to less than
//!   `cache_creation_input_tokens`, the rest is counted as 5-minute writes.
//! - **Project** is the folder under `projects/`, **session** the file name without `.jsonl` (for nested
//!   files, the folder that holds them: `projects/<project>/<session>/subagents/<agent>.jsonl` belongs to
//!   `<session>`). Sidechain lines and files under `subagents/` get the agent dimension `subagent`, the
//!   rest `main`. Calls are priced with the [`PriceBook`]: Anthropic's rules, long context included.
//! - **Bad lines** (not JSON, an assistant usage line without a valid `timestamp` or token counts, with a
//!   timestamp a ledger cannot hold (before 1970 or after 2262-04-11), or with a count over
//!   [`MAX_TOKENS_PER_FIELD`](crate::capture::MAX_TOKENS_PER_FIELD), a line cut short) are
//!   skipped and counted in [`LoadStats`], with the first few `file:line` places. Empty lines are ignored.
//!
//! A record's `duration_us` is 0: transcripts do not say how long a call took.
//!
//! # Implementation details
//!
//! Files are read through a 1 MiB buffer and split into lines with `memchr`; a line is parsed only if it contains
//! the bytes `"usage"`, into a borrowed struct that skips every other field without allocating; other lines are
//! only checked to look like one JSON object. Files are spread over up to
//! [`TranscriptLoader::with_threads`] threads (largest first), and duplicates are resolved after all files
//! are read, so the result does not depend on the order files finish in. A program that reads the same
//! transcripts again and again passes a [`TranscriptCache`] to [`TranscriptLoader::load_cached`]: files whose
//! size and modification time did not change are not read again.
//!
//! ```no_run
//! use tokenmeter::PriceBook;
//! use tokenmeter::transcripts::{TranscriptLoader, default_claude_code_dirs, discover_all};
//!
//! // Every default folder; a file reached from two of them (one linked to the other) is listed once.
//! let files = discover_all(&default_claude_code_dirs())?;
//! let load = TranscriptLoader::new(PriceBook::builtin()).load(&files);
//! println!("{} calls, {} bad lines", load.calls.len(), load.stats.bad_lines);
//! # Ok::<(), tokenmeter::transcripts::TranscriptError>(())
//! ```

mod discover;
mod load;
mod parse;
mod tools;

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use discover::{
    default_claude_code_dirs, discover, discover_all, discover_all_reporting, discover_reporting,
    standard_claude_code_dirs,
};
pub use load::{TranscriptCache, TranscriptLoader};
pub use tools::{ToolUses, session_tool_uses_until, tool_uses, tool_uses_until};

#[cfg(doc)]
use crate::PriceBook;
use crate::record::CallRecord;

/// One transcript file found by [`discover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptFile {
    /// The file.
    pub path: PathBuf,
    /// The project: the folder under `projects/`.
    pub project: Arc<str>,
    /// The session: the file name without `.jsonl`, or for nested files the folder that holds them.
    pub session: Arc<str>,
    /// True for a sub-agent's file: under a `subagents/` folder, or an `agent-<id>.jsonl` beside the sessions
    /// (Claude Code before 2.1.2); its lines name the session it belongs to.
    pub subagent: bool,
    /// Size in bytes when it was found.
    pub len: u64,
}

impl TranscriptFile {
    /// The session a line of this file belongs to, given the session the line names (`sessionId`): the file's,
    /// except in a sub-agent's file, whose lines belong to the session they name (an `agent-<id>.jsonl` beside
    /// the sessions has no other way to tell). The loader files calls by it, and tool counts follow.
    pub(crate) fn session_of<'a>(&'a self, named: Option<&'a str>) -> &'a str {
        match named.filter(|s| !s.is_empty()) {
            Some(s) if self.subagent => s,
            _ => &self.session,
        }
    }
}

/// The calls read from a set of transcripts, and what reading them met.
#[derive(Debug, Clone, Default)]
pub struct TranscriptLoad {
    /// One record per call, sorted by timestamp (then file, then line).
    pub calls: Vec<CallRecord>,
    /// Counts of lines read, merged, dropped and skipped.
    pub stats: LoadStats,
}

/// What reading transcripts met.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadStats {
    /// Files read.
    pub files: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Non-empty lines.
    pub lines: u64,
    /// Assistant lines with usage.
    pub usage_lines: u64,
    /// Calls kept: one per distinct response, and one per advisor sub-inference of a response
    /// ([`advisor_calls`](Self::advisor_calls)).
    pub calls: u64,
    /// Of [`calls`](Self::calls), the advisor tool's sub-inferences (`usage.iterations` entries of type
    /// `advisor_message`): each a record of its own at the advisor model's rates, which the response's top-level
    /// usage leaves out.
    #[serde(default)]
    pub advisor_calls: u64,
    /// Usage lines that repeated a response already counted (same `message.id` and `requestId`).
    pub duplicate_lines: u64,
    /// Sidechain lines dropped as replays of a main-conversation message.
    pub sidechain_replays: u64,
    /// Calls from `<synthetic>` lines (tokens counted, no model, zero cost).
    pub synthetic_calls: u64,
    /// Calls whose model the price book does not know (tokens counted, cost unknown).
    pub unpriced_calls: u64,
    /// Lines skipped as unreadable.
    pub bad_lines: u64,
    /// Last lines left out because they were still being written (no newline yet, not whole JSON); not bad
    /// lines: the next read has them whole.
    #[serde(default)]
    pub unfinished_lines: u64,
    /// The first few bad lines.
    pub bad_line_places: Vec<BadLine>,
    /// Files that could not be read, with the reason.
    pub unreadable_files: Vec<UnreadableFile>,
}

/// Where a bad line is and why it was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadLine {
    /// The file (in JSON, lossily: a name that is not UTF-8 has U+FFFD in place of its other bytes).
    #[serde(serialize_with = "crate::lossy_path::serialize")]
    pub path: PathBuf,
    /// 1-based line number.
    pub line: u64,
    /// Why it was skipped.
    pub reason: String,
}

/// A transcript file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableFile {
    /// The file (in JSON, lossily: a name that is not UTF-8 has U+FFFD in place of its other bytes).
    #[serde(serialize_with = "crate::lossy_path::serialize")]
    pub path: PathBuf,
    /// The error.
    pub error: String,
}

/// Errors finding transcripts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TranscriptError {
    /// The path does not exist.
    #[error("{}: no such file or directory (expected a Claude Code config dir, its projects/ folder, a project folder or a .jsonl transcript)", .0.display())]
    NotFound(PathBuf),
    /// A directory could not be listed.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}
