//! Tool use in transcripts: which tools a session called, from its `tool_use` and `tool_result` blocks.

use std::collections::BTreeMap;

use memchr::memmem;
use serde::{Deserialize, Serialize};

use super::TranscriptFile;

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

#[derive(Deserialize)]
struct Line {
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    content: Option<serde_json::Value>,
}

/// Counts the tool calls in `files`, most used first (then by name). Unlike call loading, this reads the
/// content blocks of every line that has any, so it is meant for a few files (one session), not thousands.
/// Unreadable files and lines are skipped.
pub fn tool_uses(files: &[TranscriptFile]) -> Vec<ToolUses> {
    let marker = memmem::Finder::new(b"\"tool_");
    // tool_use id -> tool name; and the ids whose result was an error.
    let mut calls: BTreeMap<String, String> = BTreeMap::new();
    let mut failed: Vec<String> = Vec::new();
    for file in files {
        let Ok(bytes) = std::fs::read(&file.path) else { continue };
        for line in bytes.split(|&b| b == b'\n') {
            if marker.find(line).is_none() {
                continue;
            }
            let Ok(Line { message: Some(Message { content: Some(serde_json::Value::Array(blocks)) }) }) =
                serde_json::from_slice::<Line>(line)
            else {
                continue;
            };
            for block in &blocks {
                let field = |k: &str| block.get(k).and_then(serde_json::Value::as_str);
                match field("type") {
                    Some("tool_use") => {
                        if let (Some(id), Some(name)) = (field("id"), field("name")) {
                            calls.entry(id.to_owned()).or_insert_with(|| name.to_owned());
                        }
                    }
                    Some("tool_result") if block.get("is_error").and_then(serde_json::Value::as_bool) == Some(true) => {
                        if let Some(id) = field("tool_use_id") {
                            failed.push(id.to_owned());
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
