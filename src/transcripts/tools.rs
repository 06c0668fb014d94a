//! Tool use in transcripts: which tools a session called, from its `tool_use` and `tool_result` blocks.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;

use memchr::memmem;
use serde::{Deserialize, Serialize};

use super::TranscriptFile;
use crate::record::CallRecord;

/// How often one tool was called.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolUses {
    /// The tool's name (`Read`, `Bash`, an MCP tool's name, …).
    pub tool: String,
    /// Calls (distinct `tool_use` ids).
    pub uses: u64,
    /// Calls whose `tool_result` said `is_error: true`.
    pub errors: u64,
}

// Typed and borrowed: only the blocks' type, ids, name and error flag are read; everything else (the tool's
// input, its output, message text) is skipped unread, so a lone surrogate escape or a stray invalid byte in it
// (Claude Code can cut an emoji in half when it truncates output) does not lose the line.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    message: Option<Message<'a>>,
    #[serde(borrow, default, deserialize_with = "super::parse::opt_str")]
    timestamp: Option<Cow<'a, str>>,
    #[serde(rename = "sessionId", borrow, default, deserialize_with = "super::parse::opt_str")]
    session_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default, deserialize_with = "super::parse::opt_str")]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Option<Blocks<'a>>,
}

/// A message's content blocks; a content that is not an array (a plain string) has none.
struct Blocks<'a>(Vec<Block<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for Blocks<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Blocks<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("content blocks")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<Block<'a>>()? {
                    out.push(b);
                }
                Ok(Blocks(out))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Blocks(Vec::new()))
            }
            fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Self::Value, E> {
                Ok(Blocks(Vec::new()))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Blocks(Vec::new()))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "super::parse::opt_str")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::parse::opt_str")]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::parse::opt_str")]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::parse::opt_str")]
    tool_use_id: Option<Cow<'a, str>>,
    is_error: Option<bool>,
}

/// Counts the tool calls in `files`, most used first (then by name). Unlike call loading, this reads the
/// content blocks of every line that has any, so it is meant for a few files (one session), not thousands.
/// Unreadable files and lines are skipped.
pub fn tool_uses(files: &[TranscriptFile]) -> Vec<ToolUses> {
    tool_uses_until(files, None)
}

/// [`tool_uses`] of the lines stamped at or before `until` (with `None`, all): a report made as of a past
/// instant leaves out the tool calls and results that had not happened yet, as it leaves out the calls.
pub fn tool_uses_until(files: &[TranscriptFile], until: Option<chrono::DateTime<chrono::Utc>>) -> Vec<ToolUses> {
    count_tool_uses(files, None, until)
}

/// [`tool_uses_until`] of one session's calls, filed as the loader filed them: a tool use belongs to the session
/// its message's call was filed in (`calls`: the loaded calls, [`TranscriptLoad::calls`](super::TranscriptLoad),
/// whose `request_id` is the message's id). A resumed session's file copies the earlier session's lines under
/// that session's id, and its calls are the earlier session's while that session's file exists, the resumed
/// one's once it is gone. A line whose message is not among the calls goes by its file: a file's lines are its
/// session's, except a sub-agent's file, whose lines belong to the session they name (an `agent-<id>.jsonl`
/// beside the sessions, as Claude Code wrote them before 2.1.2, names its parent session only there). Give it
/// the session's files and the sub-agent files that may belong to it.
pub fn session_tool_uses_until(
    files: &[TranscriptFile],
    session: &str,
    calls: &[CallRecord],
    until: Option<chrono::DateTime<chrono::Utc>>,
) -> Vec<ToolUses> {
    // An id filed in two sessions (a relay that gives every response one message id: the loader keeps a call of
    // it per session) tells nothing: its lines go by their file, as they did.
    let mut filed: HashMap<&str, Option<&str>> = HashMap::default();
    for c in calls {
        if let (Some(id), Some(s)) = (c.request_id.as_deref(), c.dimensions.session.as_deref()) {
            filed.entry(id).and_modify(|f| *f = f.filter(|f| *f == s)).or_insert(Some(s));
        }
    }
    count_tool_uses(files, Some((session, &filed)), until)
}

fn count_tool_uses(
    files: &[TranscriptFile],
    session: Option<(&str, &HashMap<&str, Option<&str>>)>,
    until: Option<chrono::DateTime<chrono::Utc>>,
) -> Vec<ToolUses> {
    let marker = memmem::Finder::new(b"\"tool_");
    // tool_use id -> tool name; and the ids whose result was an error.
    let mut calls: BTreeMap<String, String> = BTreeMap::new();
    let mut failed: Vec<String> = Vec::new();
    let mut buf = Vec::new();
    for file in files {
        // Read a line at a time: a session's transcript can be hundreds of megabytes. A file that cannot be read
        // now was read by the loader a moment ago (which reports one it cannot); it is left out here.
        let Ok(f) = std::fs::File::open(&file.path) else { continue };
        let mut reader = std::io::BufReader::with_capacity(256 * 1024, f);
        loop {
            buf.clear();
            match std::io::BufRead::read_until(&mut reader, b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = buf.as_slice();
            if marker.find(line).is_none() {
                continue;
            }
            let Ok(Line { message: Some(Message { id, content: Some(Blocks(blocks)) }), timestamp, session_id }) =
                serde_json::from_slice::<Line>(line)
            else {
                continue;
            };
            // Whether the line's tool uses are the session's: filed where the loader filed the message's call; a
            // line of no call as the file's lines are. A tool result counts with its use, wherever its line is.
            let mine = session.is_none_or(|(session, filed)| {
                let filed = id.as_deref().and_then(|id| filed.get(id).copied().flatten());
                filed.unwrap_or_else(|| file.session_of(session_id.as_deref())) == session
            });
            let after = |until| {
                let at = timestamp.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                at.is_some_and(|at| at > until)
            };
            if until.is_some_and(after) {
                continue;
            }
            for block in &blocks {
                match block.kind.as_deref() {
                    Some("tool_use") if mine => {
                        if let (Some(id), Some(name)) = (&block.id, &block.name) {
                            calls.entry(id.to_string()).or_insert_with(|| name.to_string());
                        }
                    }
                    Some("tool_result") if block.is_error == Some(true) => {
                        if let Some(id) = &block.tool_use_id {
                            failed.push(id.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    let mut by_tool: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for name in calls.values() {
        by_tool.entry(name).or_default().0 += 1;
    }
    failed.sort();
    failed.dedup();
    for id in &failed {
        if let Some(name) = calls.get(id) {
            by_tool.entry(name).or_default().1 += 1;
        }
    }
    let mut out: Vec<ToolUses> =
        by_tool.into_iter().map(|(tool, (uses, errors))| ToolUses { tool: tool.to_owned(), uses, errors }).collect();
    out.sort_by(|a, b| b.uses.cmp(&a.uses).then_with(|| a.tool.cmp(&b.tool)));
    out
}
