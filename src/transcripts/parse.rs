//! Reading one transcript file into raw calls: the only part that touches every byte, so the one made fast.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use memchr::memmem;
use serde::Deserialize;

use crate::capture::{MAX_TOKENS_PER_FIELD, MAX_WEB_SEARCHES_PER_CALL};
use crate::record::TokenUsage;

/// The model Claude Code gives the messages it makes itself.
pub(super) const SYNTHETIC_MODEL: &str = "<synthetic>";

/// Longest bad timestamp quoted in a reason (an RFC 3339 time with nanoseconds and an offset is 35).
const MAX_QUOTED_TIMESTAMP: usize = 40;

/// Longest reason kept for a bad line.
const MAX_REASON_LEN: usize = 160;

/// One usage line of a file, before duplicates are resolved. Strings live in the file's arena or table.
#[derive(Debug, Clone)]
pub(super) struct RawCall {
    pub(super) timestamp: DateTime<Utc>,
    pub(super) tokens: TokenUsage,
    pub(super) web_search_requests: u64,
    pub(super) message_id: Option<Range<u32>>,
    pub(super) request_id: Option<Range<u32>>,
    pub(super) line_session: Option<Range<u32>>,
    pub(super) model: Option<u16>,
    pub(super) service_tier: Option<u16>,
    pub(super) speed: Option<u16>,
    pub(super) inference_geo: Option<u16>,
    /// The input, cache read and cache write counts of the response's top-level usage, without its compaction
    /// steps: what every copy of one response repeats (a copy without the `iterations` has no compaction).
    pub(super) prompt: (u64, u64, u64),
    pub(super) sidechain: bool,
    pub(super) synthetic: bool,
    pub(super) api_error: bool,
    /// The advisor tool's sub-inferences (`advisor_message` iterations), each billed at its model's rates and
    /// left out of the top-level usage; empty (no allocation) for nearly every line.
    pub(super) advisor: Box<[AdvisorPart]>,
}

/// One advisor sub-inference of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AdvisorPart {
    /// The iteration's model, else the line's `advisorModel`, in the file's table.
    pub(super) model: Option<u16>,
    pub(super) tokens: TokenUsage,
}

/// Everything read from one file.
#[derive(Debug, Default)]
pub(super) struct FileCalls {
    pub(super) calls: Vec<RawCall>,
    /// Message, request and session ids, back to back.
    pub(super) arena: String,
    /// Models, service tiers, speeds and inference geographies (few distinct values), interned.
    pub(super) table: Vec<Arc<str>>,
    pub(super) bytes: u64,
    pub(super) lines: u64,
    pub(super) usage_lines: u64,
    pub(super) bad_lines: u64,
    /// A last line without its newline that is not (yet) whole JSON: one Claude Code is still writing.
    pub(super) unfinished_lines: u64,
    /// The first few bad lines: 1-based line number and reason.
    pub(super) bad_places: Vec<(u64, String)>,
    /// Why the file could not be read.
    pub(super) error: Option<String>,
}

impl FileCalls {
    pub(super) fn str(&self, range: &Range<u32>) -> &str {
        self.arena.get(range.start as usize..range.end as usize).unwrap_or("")
    }

    fn push_str(&mut self, s: &str) -> Option<Range<u32>> {
        let start = u32::try_from(self.arena.len()).ok()?;
        let end = u32::try_from(self.arena.len() + s.len()).ok()?;
        self.arena.push_str(s);
        Some(start..end)
    }

    fn intern(&mut self, s: &str) -> Option<u16> {
        if let Some(i) = self.table.iter().position(|t| &**t == s) {
            return u16::try_from(i).ok();
        }
        let i = u16::try_from(self.table.len()).ok()?;
        self.table.push(Arc::from(s));
        Some(i)
    }

    fn bad(&mut self, line: u64, reason: impl FnOnce() -> String, max_places: usize) {
        self.bad_lines += 1;
        if self.bad_places.len() < max_places {
            let mut reason = reason();
            if reason.len() > MAX_REASON_LEN {
                let mut cut = MAX_REASON_LEN;
                while !reason.is_char_boundary(cut) {
                    cut -= 1;
                }
                reason.truncate(cut);
                reason.push('…');
            }
            self.bad_places.push((line, reason));
        }
    }
}

// === line schema ===
//
// Borrowed: ids and timestamps are slices of the file's bytes (`Cow` only for the rare escaped string), and
// every field not named here (prompt and response text above all) is skipped without being stored.

/// An optional string borrowed from the line when it has no escapes. `#[serde(borrow)]` borrows a bare
/// `Cow<str>` field, but inside an `Option` serde's `Cow` impl always copies (serde-rs/serde#1497): every id,
/// timestamp and model of every usage line was an allocation.
pub(super) fn opt_str<'de: 'a, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'a>>::deserialize(d)?.map(|b| b.0))
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "opt_str")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_str")]
    timestamp: Option<Cow<'a, str>>,
    #[serde(rename = "sessionId", borrow, default, deserialize_with = "opt_str")]
    session_id: Option<Cow<'a, str>>,
    #[serde(rename = "requestId", borrow, default, deserialize_with = "opt_str")]
    request_id: Option<Cow<'a, str>>,
    #[serde(rename = "isSidechain")]
    is_sidechain: Option<bool>,
    #[serde(rename = "isApiErrorMessage")]
    is_api_error: Option<bool>,
    /// The advisor tool's model (`/advisor`), for advisor iterations that do not name their own.
    #[serde(rename = "advisorModel", borrow, default, deserialize_with = "opt_str")]
    advisor_model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Message<'a>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default, deserialize_with = "opt_str")]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_str")]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    usage: Option<Usage<'a>>,
}

#[derive(Deserialize)]
struct Usage<'a> {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation: Option<CacheCreation>,
    server_tool_use: Option<ServerToolUse>,
    #[serde(borrow, default, deserialize_with = "opt_str")]
    service_tier: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_str")]
    speed: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_str")]
    inference_geo: Option<Cow<'a, str>>,
    /// The response's sampling iterations: server-side compaction's (`compaction`) and the advisor tool's
    /// (`advisor_message`, another model's sub-inference) are billed and left out of the top-level counts.
    #[serde(default)]
    iterations: Option<Vec<Iteration<'a>>>,
}

#[derive(Deserialize)]
struct Iteration<'a> {
    #[serde(borrow, default, rename = "type", deserialize_with = "opt_str")]
    kind: Option<Cow<'a, str>>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation: Option<CacheCreation>,
    /// An advisor iteration's model.
    #[serde(borrow, default, deserialize_with = "opt_str")]
    model: Option<Cow<'a, str>>,
}

impl Iteration<'_> {
    /// The iteration's tokens by kind, as a top-level usage's are read.
    fn tokens(&self) -> TokenUsage {
        tokens_of(
            self.input_tokens.unwrap_or(0),
            self.output_tokens.unwrap_or(0),
            self.cache_read_input_tokens.unwrap_or(0),
            self.cache_creation_input_tokens.unwrap_or(0),
            self.cache_creation.as_ref(),
        )
    }
}

#[derive(Deserialize)]
struct ServerToolUse {
    web_search_requests: Option<u64>,
}

#[derive(Deserialize)]
struct CacheCreation {
    ephemeral_5m_input_tokens: Option<u64>,
    ephemeral_1h_input_tokens: Option<u64>,
}

/// A usage's tokens by kind: a cache-write split that falls short of the total counts the rest at the 5-minute
/// rate, and a total without a split is all 5-minute writes.
fn tokens_of(input: u64, output: u64, read: u64, flat_write: u64, split: Option<&CacheCreation>) -> TokenUsage {
    let (mut write_5m, write_1h) = match split {
        Some(split) => (split.ephemeral_5m_input_tokens.unwrap_or(0), split.ephemeral_1h_input_tokens.unwrap_or(0)),
        None => (flat_write, 0),
    };
    write_5m = write_5m.saturating_add(flat_write.saturating_sub(write_5m.saturating_add(write_1h)));
    TokenUsage { input, cache_read: read, cache_write_5m: write_5m, cache_write_1h: write_1h, output, reasoning: 0 }
}

/// Reads one file, a line at a time through a 1 MiB buffer: memory stays at the buffer plus the longest line
/// however large the file. Never fails: an unreadable file is reported in [`FileCalls::error`], without calls.
pub(super) fn read_file(path: &std::path::Path, max_places: usize) -> FileCalls {
    let read = std::fs::File::open(path)
        .and_then(|file| parse_reader(std::io::BufReader::with_capacity(READ_BUFFER, file), max_places));
    read.unwrap_or_else(|e| FileCalls { error: Some(e.to_string()), ..FileCalls::default() })
}

/// The read buffer of [`read_file`].
const READ_BUFFER: usize = 1 << 20;

/// Parses a whole file's bytes.
#[cfg(test)]
pub(super) fn parse_bytes(bytes: &[u8], max_places: usize) -> FileCalls {
    let whole = parse_reader(bytes, max_places).unwrap_or_default();
    // The same bytes through a reader that hands them over a few at a time: lines cut across its buffer's
    // edges read the same.
    let cut = parse_reader(std::io::BufReader::with_capacity(7, bytes), max_places).unwrap_or_default();
    assert_eq!(format!("{whole:?}"), format!("{cut:?}"), "a line cut by the read buffer read differently");
    whole
}

/// The longest transcript line read: 64 MiB, far past any line with a call's usage in it (a response of 128k
/// output tokens is ~0.5 MB), though a user's message of many pasted images may be longer (passed over: it has
/// no usage). A damaged file of one line (hundreds of MB of NUL bytes after a crash) was held whole.
const MAX_LINE_BYTES: usize = 64 << 20;

/// Parses what `reader` holds, line by line. A line that lies whole in the reader's buffer is parsed there;
/// one cut by the buffer's end is put together in a buffer of its own first.
fn parse_reader(mut reader: impl std::io::BufRead, max_places: usize) -> std::io::Result<FileCalls> {
    let mut out = FileCalls::default();
    let usage_key = memmem::Finder::new(b"\"usage\"");
    let mut line_no: u64 = 0;
    let mut carried: Vec<u8> = Vec::new();
    let mut first = true;
    // The line being read is past [`MAX_LINE_BYTES`]: the rest of it is passed over, not held.
    let mut overlong = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break;
        }
        let (taken, whole) = match memchr::memchr(b'\n', available) {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        out.bytes += taken as u64;
        let part = &available[..taken - usize::from(whole)];
        if !overlong && carried.len() + part.len() > MAX_LINE_BYTES {
            overlong = true;
            carried = Vec::new();
        }
        if overlong {
            if whole {
                line_no += 1;
                out.lines += 1;
                first = false;
                out.bad(line_no, || format!("a line over {} MiB: not read", MAX_LINE_BYTES >> 20), max_places);
                overlong = false;
            }
            reader.consume(taken);
            continue;
        }
        let line = if whole && carried.is_empty() {
            part
        } else {
            carried.extend_from_slice(part);
            &carried[..]
        };
        if whole {
            line_no += 1;
            let line = if std::mem::take(&mut first) { strip_bom(line) } else { line };
            one_line(line, line_no, true, &usage_key, &mut out, max_places);
            carried.clear();
        }
        reader.consume(taken);
    }
    if overlong {
        out.lines += 1;
        out.bad(line_no + 1, || format!("a line over {} MiB: not read", MAX_LINE_BYTES >> 20), max_places);
    } else if !carried.is_empty() {
        line_no += 1;
        let line = if first { strip_bom(&carried) } else { &carried[..] };
        one_line(line, line_no, false, &usage_key, &mut out, max_places);
    }
    Ok(out)
}

fn strip_bom(line: &[u8]) -> &[u8] {
    line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
}

/// One line, `ended` when a newline follows it.
fn one_line(
    line: &[u8],
    line_no: u64,
    ended: bool,
    usage_key: &memmem::Finder<'_>,
    out: &mut FileCalls,
    max_places: usize,
) {
    let line = trim(line);
    if line.is_empty() {
        return;
    }
    // The file's last line, without its newline, an object begun but not whole JSON: Claude Code is writing it
    // now (the CLI read the file mid-append). Not a bad line: the next read has it whole.
    if !ended && line[0] == b'{' && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_err() {
        out.unfinished_lines += 1;
        return;
    }
    out.lines += 1;
    if usage_key.find(line).is_none() {
        // Not parsed (nothing to count in it), only checked to be one whole object: a line cut short or garbage
        // still shows up as bad.
        if line[0] != b'{' || line[line.len() - 1] != b'}' {
            out.bad(line_no, || "not a JSON object".to_owned(), max_places);
        }
        return;
    }
    parse_line(line, line_no, out, max_places);
}

fn trim(mut line: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = line
        && first.is_ascii_whitespace()
    {
        line = rest;
    }
    while let [rest @ .., last] = line
        && last.is_ascii_whitespace()
    {
        line = rest;
    }
    line
}

fn parse_line(line: &[u8], line_no: u64, out: &mut FileCalls, max_places: usize) {
    let parsed: Line<'_> = match serde_json::from_slice(line) {
        Ok(l) => l,
        Err(e) => {
            // Only an assistant line's shape matters: a progress or system line whose `message` is a string (and
            // that mentions "usage" somewhere) is no bad line, as it would not be without that word.
            #[derive(Deserialize)]
            struct Kind<'a> {
                #[serde(rename = "type", borrow, default, deserialize_with = "opt_str")]
                kind: Option<Cow<'a, str>>,
            }
            if let Ok(Kind { kind: Some(kind) }) = serde_json::from_slice::<Kind<'_>>(line)
                && kind != "assistant"
            {
                return;
            }
            // Valid JSON whose field has the wrong type (`"output_tokens":100.0`) is not "invalid JSON".
            let what = match e.classify() {
                serde_json::error::Category::Data => "a field of an unexpected type or value",
                _ => "invalid JSON",
            };
            // Never the value itself: a field of the wrong type may hold text (serde quotes it).
            out.bad(
                line_no,
                || format!("{what}: {}", crate::redact::without_quoted_values(&e.to_string())),
                max_places,
            );
            return;
        }
    };
    let Some(message) = parsed.message else { return };
    let Some(usage) = message.usage else { return };
    if parsed.kind.as_deref().is_some_and(|k| k != "assistant") {
        return;
    }
    out.usage_lines += 1;
    let (Some(input), Some(output)) = (usage.input_tokens, usage.output_tokens) else {
        // Name what is missing: a line with input_tokens alone lacks output_tokens, not both.
        let missing = match (usage.input_tokens, usage.output_tokens) {
            (None, None) => "input_tokens and output_tokens",
            (None, Some(_)) => "input_tokens",
            (Some(_), _) => "output_tokens",
        };
        out.bad(line_no, || format!("usage without {missing}"), max_places);
        return;
    };
    let Some(raw_ts) = parsed.timestamp else {
        out.bad(line_no, || "usage line without a timestamp".to_owned(), max_places);
        return;
    };
    let Ok(timestamp) = DateTime::parse_from_rfc3339(&raw_ts) else {
        // Quoted while it can be a timestamp (`"soon"`, `"2025-13-01"`); a longer one may be text.
        out.bad(
            line_no,
            || match raw_ts.chars().count() {
                n if n > MAX_QUOTED_TIMESTAMP => format!("invalid timestamp (a string of {n} characters)"),
                _ => format!("invalid timestamp {raw_ts:?}"),
            },
            max_places,
        );
        return;
    };
    let timestamp = timestamp.with_timezone(&Utc);
    // A time a ledger cannot hold (before 1970, or past what Unix nanoseconds in an `i64` reach, 2262-04-11) would
    // stretch every window made from the calls (a report from 1900, day rows past any limit): a bad line too.
    if !crate::record::representable(timestamp) {
        out.bad(
            line_no,
            || format!("timestamp {raw_ts:?} is out of range (a call's time is from 1970 to 2262-04-11)"),
            max_places,
        );
        return;
    }

    // A count capture would reject (a corrupted line) would otherwise poison every sum made from it, as a
    // journal or records line with such a count would (those are refused when read back too).
    let split = usage.cache_creation.as_ref();
    let counts = [
        ("input_tokens", Some(input)),
        ("output_tokens", Some(output)),
        ("cache_read_input_tokens", usage.cache_read_input_tokens),
        ("cache_creation_input_tokens", usage.cache_creation_input_tokens),
        ("cache_creation.ephemeral_5m_input_tokens", split.and_then(|c| c.ephemeral_5m_input_tokens)),
        ("cache_creation.ephemeral_1h_input_tokens", split.and_then(|c| c.ephemeral_1h_input_tokens)),
    ];
    if let Some((field, Some(n))) = counts.into_iter().find(|(_, n)| n.is_some_and(|n| n > MAX_TOKENS_PER_FIELD)) {
        out.bad(
            line_no,
            || format!("usage.{field} = {n} is over the {MAX_TOKENS_PER_FIELD} tokens a call can have (capture rejects it too)"),
            max_places,
        );
        return;
    }
    let web_search_requests = usage.server_tool_use.and_then(|s| s.web_search_requests).unwrap_or(0);
    if web_search_requests > MAX_WEB_SEARCHES_PER_CALL {
        out.bad(
            line_no,
            || format!("usage.server_tool_use.web_search_requests = {web_search_requests} is over the {MAX_WEB_SEARCHES_PER_CALL} searches a call can have (capture rejects it too)"),
            max_places,
        );
        return;
    }

    let top = tokens_of(
        input,
        output,
        usage.cache_read_input_tokens.unwrap_or(0),
        usage.cache_creation_input_tokens.unwrap_or(0),
        usage.cache_creation.as_ref(),
    );
    let prompt = (top.input, top.cache_read, top.cache_write());
    let mut tokens = top;
    // Server-side compaction's summary iterations are billed and left out of the top-level counts.
    for it in usage.iterations.iter().flatten().filter(|i| i.kind.as_deref() == Some("compaction")) {
        let more = it.tokens();
        tokens = TokenUsage {
            input: tokens.input.saturating_add(more.input),
            cache_read: tokens.cache_read.saturating_add(more.cache_read),
            cache_write_5m: tokens.cache_write_5m.saturating_add(more.cache_write_5m),
            cache_write_1h: tokens.cache_write_1h.saturating_add(more.cache_write_1h),
            output: tokens.output.saturating_add(more.output),
            reasoning: 0,
        };
    }
    // The advisor tool's sub-inferences: another model's calls, records of their own.
    let advisor: Vec<(Option<&str>, TokenUsage)> = usage
        .iterations
        .iter()
        .flatten()
        .filter(|i| i.kind.as_deref() == Some("advisor_message"))
        .map(|it| {
            let own = it.model.as_deref().filter(|m| !m.is_empty());
            let model = own.or(parsed.advisor_model.as_deref().filter(|m| !m.is_empty()));
            (model, it.tokens())
        })
        .collect();
    let kinds = [tokens.input, tokens.cache_read, tokens.cache_write_5m, tokens.cache_write_1h, tokens.output];
    let advisor_kinds =
        advisor.iter().flat_map(|(_, t)| [t.input, t.cache_read, t.cache_write_5m, t.cache_write_1h, t.output]);
    if advisor_kinds.into_iter().any(|n| n > MAX_TOKENS_PER_FIELD) {
        let reason =
            || format!("an advisor iteration is over the {MAX_TOKENS_PER_FIELD} tokens a call can have of a kind");
        out.bad(line_no, reason, max_places);
        return;
    }
    if kinds.iter().any(|&n| n > MAX_TOKENS_PER_FIELD) {
        let reason = || {
            format!(
                "usage with its compaction iterations is over the {MAX_TOKENS_PER_FIELD} tokens a call can have of a kind"
            )
        };
        out.bad(line_no, reason, max_places);
        return;
    }

    let synthetic = message.model.as_deref() == Some(SYNTHETIC_MODEL);
    let model = match message.model.as_deref() {
        Some(m) if !synthetic && !m.is_empty() => out.intern(m),
        _ => None,
    };
    let call = RawCall {
        timestamp,
        tokens,
        web_search_requests,
        message_id: message.id.as_deref().filter(|s| !s.is_empty()).and_then(|s| out.push_str(s)),
        request_id: parsed.request_id.as_deref().filter(|s| !s.is_empty()).and_then(|s| out.push_str(s)),
        line_session: parsed.session_id.as_deref().filter(|s| !s.is_empty()).and_then(|s| out.push_str(s)),
        model,
        service_tier: usage.service_tier.as_deref().and_then(|s| out.intern(s)),
        speed: usage.speed.as_deref().and_then(|s| out.intern(s)),
        inference_geo: usage.inference_geo.as_deref().and_then(|s| out.intern(s)),
        prompt,
        sidechain: parsed.is_sidechain == Some(true),
        synthetic,
        api_error: parsed.is_api_error == Some(true),
        advisor: match synthetic {
            true => Box::default(),
            false => advisor
                .into_iter()
                .map(|(m, tokens)| AdvisorPart { model: m.and_then(|m| out.intern(m)), tokens })
                .collect(),
        },
    };
    out.calls.push(call);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lines_strings_are_borrowed_from_the_file() {
        let line = concat!(
            r#"{"type":"assistant","timestamp":"2025-01-01T00:00:01Z","sessionId":"s","requestId":"r1","#,
            r#""message":{"id":"m1","model":"claude-sonnet-4-5","usage":{"input_tokens":3,"output_tokens":5,"#,
            r#""service_tier":"standard"}}}"#
        )
        .as_bytes();
        let parsed: Line<'_> = serde_json::from_slice(line).unwrap();
        let borrowed = |c: &Option<Cow<'_, str>>| matches!(c, Some(Cow::Borrowed(_)));
        let m = parsed.message.as_ref().unwrap();
        assert!(borrowed(&parsed.kind) && borrowed(&parsed.timestamp) && borrowed(&parsed.session_id));
        assert!(borrowed(&parsed.request_id) && borrowed(&m.id) && borrowed(&m.model));
        // An escaped string is copied, unescaped; null and absent are None.
        let line = br#"{"type":"assistant","sessionId":null,"message":{"model":"claude\u002dsonnet-4-5"}}"#;
        let parsed: Line<'_> = serde_json::from_slice(line).unwrap();
        let m = parsed.message.as_ref().unwrap();
        assert!(matches!(&m.model, Some(Cow::Owned(s)) if s == "claude-sonnet-4-5"), "{:?}", m.model);
        assert!(parsed.session_id.is_none() && parsed.timestamp.is_none() && m.id.is_none());
    }

    #[test]
    fn reads_usage_and_skips_the_rest() {
        let text = concat!(
            r#"{"type":"user","message":{"role":"user","content":"hi"},"timestamp":"2025-01-01T00:00:00Z"}"#,
            "\n\n",
            r#"{"type":"assistant","timestamp":"2025-01-01T00:00:01.500Z","sessionId":"s","requestId":"r1","message":{"id":"m1","model":"claude-sonnet-4-5","content":[{"type":"text","text":"a \"usage\": {}"}],"usage":{"input_tokens":3,"output_tokens":5,"cache_read_input_tokens":7,"cache_creation_input_tokens":11,"cache_creation":{"ephemeral_5m_input_tokens":4,"ephemeral_1h_input_tokens":6},"service_tier":"standard"}}}"#,
            "\r\n",
            r#"{"type":"assistant","timestamp":"#,
            "\n",
        );
        let f = parse_bytes(text.as_bytes(), 5);
        assert_eq!(f.lines, 3);
        assert_eq!(f.usage_lines, 1);
        assert_eq!(f.bad_lines, 1);
        assert_eq!(f.bad_places, vec![(4, "not a JSON object".to_owned())]);
        let c = &f.calls[0];
        assert_eq!(
            c.tokens,
            TokenUsage { input: 3, output: 5, cache_read: 7, cache_write_5m: 5, cache_write_1h: 6, reasoning: 0 }
        );
        assert_eq!(f.str(c.message_id.as_ref().unwrap()), "m1");
        assert_eq!(f.str(c.request_id.as_ref().unwrap()), "r1");
        assert_eq!(&*f.table[c.model.unwrap() as usize], "claude-sonnet-4-5");
        assert_eq!(&*f.table[c.service_tier.unwrap() as usize], "standard");
        assert_eq!(c.timestamp.to_rfc3339(), "2025-01-01T00:00:01.500+00:00");
    }

    #[test]
    fn a_line_of_another_type_that_mentions_usage_is_not_a_bad_line() {
        // A progress or system line whose `message` is a string failed to parse as an assistant line's shape:
        // a bad line, only for containing the word "usage".
        let text = concat!(
            r#"{"type":"system","message":"compacting","data":{"usage":1}}"#,
            "\n",
            r#"{"type":"progress","message":["usage"],"data":{}}"#,
            "\n",
            r#"{"type":"assistant","message":"usage"}"#,
            "\n",
            r#"{"message":7,"usage":1}"#,
            "\n",
        );
        let f = parse_bytes(text.as_bytes(), 5);
        assert_eq!((f.lines, f.bad_lines), (4, 2), "{:?}", f.bad_places);
        assert_eq!(f.bad_places.iter().map(|p| p.0).collect::<Vec<_>>(), [3, 4], "assistant lines, or untyped ones");
    }

    #[test]
    fn a_line_of_valid_json_with_a_field_of_the_wrong_type_says_so() {
        // `100.0` where a count goes was reported as "invalid JSON", though the line parses.
        let text = concat!(
            r#"{"type":"assistant","timestamp":"2025-01-01T00:00:01Z","message":{"id":"m1","usage":{"input_tokens":3,"output_tokens":100.0}}}"#,
            "\n",
            r#"{"type":"assistant","timestamp":"2025-01-01T00:00:01Z","message":{"id":"m2","usage":{"input_tokens":3,"#,
            "\n",
        );
        let f = parse_bytes(text.as_bytes(), 5);
        assert_eq!(f.bad_lines, 2, "{:?}", f.bad_places);
        assert!(
            f.bad_places[0].1.starts_with("a field of an unexpected type or value: invalid type: floating point"),
            "{:?}",
            f.bad_places
        );
        assert!(f.bad_places[1].1.starts_with("invalid JSON: EOF"), "{:?}", f.bad_places);
    }

    #[test]
    fn a_bad_lines_reason_never_quotes_text_it_held() {
        // The reason is printed as a warning: a count holding a patient's note quoted the note.
        let note = "Patient John Doe, SSN 123-45-6789, please draft the letter";
        let text = format!(
            "{}\n{}\n",
            format_args!(
                r#"{{"type":"assistant","timestamp":"2025-01-01T00:00:01Z","message":{{"id":"m1","usage":{{"input_tokens":3,"output_tokens":"{note}"}}}}}}"#
            ),
            format_args!(
                r#"{{"type":"assistant","timestamp":"{note}","message":{{"id":"m2","usage":{{"input_tokens":3,"output_tokens":1}}}}}}"#
            ),
        );
        let f = parse_bytes(text.as_bytes(), 5);
        assert_eq!(f.bad_lines, 2, "{:?}", f.bad_places);
        for (_, reason) in &f.bad_places {
            assert!(!reason.contains("John"), "{reason}");
        }
        assert!(
            f.bad_places[0].1.contains("invalid type: string of 58 characters, expected u64"),
            "{:?}",
            f.bad_places
        );
        assert_eq!(f.bad_places[1].1, "invalid timestamp (a string of 58 characters)");
    }

    #[test]
    fn a_line_over_the_limit_is_passed_over_not_held() {
        // A crash left hundreds of MB of NUL bytes and no newline: the line was held whole (632 MB for 600 MB).
        let whole = r#"{"type":"assistant","timestamp":"2025-01-01T00:00:01Z","requestId":"r1","message":{"id":"m1","usage":{"input_tokens":3,"output_tokens":5}}}"#;
        let mut bytes = vec![0u8; MAX_LINE_BYTES + 1];
        bytes.push(b'\n');
        bytes.extend_from_slice(whole.as_bytes());
        bytes.push(b'\n');
        bytes.extend(std::iter::repeat_n(b' ', MAX_LINE_BYTES + 1));
        let f = parse_reader(std::io::BufReader::with_capacity(1 << 20, &bytes[..]), 5).unwrap();
        assert_eq!((f.lines, f.usage_lines, f.bad_lines, f.calls.len()), (3, 1, 2, 1), "{:?}", f.bad_places);
        assert_eq!(
            f.bad_places,
            [(1, "a line over 64 MiB: not read".to_owned()), (3, "a line over 64 MiB: not read".to_owned())]
        );
        assert_eq!(f.bytes, bytes.len() as u64);
    }

    #[test]
    fn a_last_line_still_being_written_is_not_a_bad_line() {
        // Read while Claude Code appends: the last line has no newline yet and is cut mid-object. It was a bad
        // line ("skipped 1 unreadable line" on every run during a session); the same cut with its newline is.
        let whole = r#"{"type":"assistant","timestamp":"2025-01-01T00:00:01Z","requestId":"r1","message":{"id":"m1","usage":{"input_tokens":3,"output_tokens":5}}}"#;
        let cut = r#"{"type":"assistant","timestamp":"2025-01-01T00:00:02Z","message":{"usa"#;
        let f = parse_bytes(format!("{whole}\n{cut}").as_bytes(), 5);
        assert_eq!((f.lines, f.usage_lines, f.bad_lines, f.unfinished_lines), (1, 1, 0, 1));
        assert_eq!(f.calls.len(), 1);
        let f = parse_bytes(format!("{whole}\n{cut}\n").as_bytes(), 5);
        assert_eq!((f.lines, f.bad_lines, f.unfinished_lines), (2, 1, 0));
        // A whole last line without its newline is read as usual.
        let f = parse_bytes(whole.as_bytes(), 5);
        assert_eq!((f.usage_lines, f.calls.len(), f.unfinished_lines), (1, 1, 0));
    }

    #[test]
    fn bad_usage_lines_are_counted_with_reasons() {
        let text = concat!(
            r#"{"type":"assistant","message":{"usage":{"input_tokens":1,"output_tokens":1}}}"#,
            "\n",
            r#"{"type":"assistant","timestamp":"yesterday","message":{"usage":{"input_tokens":1,"output_tokens":1}}}"#,
            "\n",
            r#"{"type":"assistant","timestamp":"2025-01-01T00:00:00Z","message":{"usage":{"input_tokens":-1}}}"#,
            "\n",
            r#"{"type":"assistant","timestamp":"2025-01-01T00:00:00Z","message":{"usage":{"output_tokens":1}}}"#,
            "\n",
            "\u{feff}",
        );
        let f = parse_bytes(text.as_bytes(), 2);
        assert_eq!(f.bad_lines, 5);
        assert_eq!(f.bad_places.len(), 2);
        assert_eq!(f.bad_places[0], (1, "usage line without a timestamp".to_owned()));
        assert_eq!(f.bad_places[1], (2, "invalid timestamp \"yesterday\"".to_owned()));
        assert!(f.calls.is_empty());
    }

    #[test]
    fn times_a_ledger_cannot_hold_are_bad_lines() {
        let line = |ts: &str| {
            format!(
                r#"{{"type":"assistant","timestamp":"{ts}","message":{{"usage":{{"input_tokens":1,"output_tokens":1}}}}}}"#
            )
        };
        let text = [
            line("9999-12-31T23:59:59Z"),
            line("1900-01-01T00:00:00Z"),
            line("1969-12-31T23:59:59Z"),
            line("2262-04-11T23:47:16.854775808Z"),
            line("1970-01-01T00:00:00Z"),
            line("2262-04-11T23:47:16.854775807Z"),
        ]
        .join("\n");
        let f = parse_bytes(text.as_bytes(), 5);
        assert_eq!((f.bad_lines, f.calls.len()), (4, 2));
        assert_eq!(
            f.bad_places[0],
            (
                1,
                r#"timestamp "9999-12-31T23:59:59Z" is out of range (a call's time is from 1970 to 2262-04-11)"#
                    .to_owned()
            )
        );
        assert_eq!(f.bad_places.iter().map(|p| p.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    }

    #[test]
    fn token_counts_over_the_capture_cap_are_bad_lines() {
        let line = |usage: &str| {
            format!(r#"{{"type":"assistant","timestamp":"2025-01-01T00:00:00Z","message":{{"usage":{{{usage}}}}}}}"#)
        };
        let text = [
            line(r#""input_tokens":18446744073709551615,"output_tokens":1"#),
            line(r#""input_tokens":1,"output_tokens":1,"cache_creation":{"ephemeral_1h_input_tokens":1000000000001}"#),
            line(r#""input_tokens":1000000000000,"output_tokens":1,"cache_read_input_tokens":1000000000000"#),
        ]
        .join("\n");
        let f = parse_bytes(text.as_bytes(), 5);
        assert_eq!(f.bad_lines, 2);
        assert_eq!(
            f.bad_places,
            vec![
                (
                    1,
                    "usage.input_tokens = 18446744073709551615 is over the 1000000000000 tokens a call can have \
                     (capture rejects it too)"
                        .to_owned()
                ),
                (
                    2,
                    "usage.cache_creation.ephemeral_1h_input_tokens = 1000000000001 is over the 1000000000000 \
                     tokens a call can have (capture rejects it too)"
                        .to_owned()
                ),
            ]
        );
        // At the cap is allowed.
        assert_eq!(f.calls.len(), 1);
        assert_eq!(f.calls[0].tokens.cache_read, 1_000_000_000_000);
    }

    #[test]
    fn a_usage_line_without_token_counts_names_the_missing_ones() {
        let line = |usage: &str| {
            format!(r#"{{"type":"assistant","timestamp":"2025-01-01T00:00:00Z","message":{{"usage":{{{usage}}}}}}}"#)
        };
        let text = [line(r#""input_tokens":1"#), line(r#""output_tokens":1"#), line(r#""cache_read_input_tokens":1"#)];
        let f = parse_bytes(text.join("\n").as_bytes(), 5);
        let reasons: Vec<&str> = f.bad_places.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "usage without output_tokens",
                "usage without input_tokens",
                "usage without input_tokens and output_tokens"
            ]
        );
    }

    #[test]
    fn never_panics_on_junk() {
        // Each is one bad line, or none (blank lines; a message whose usage is null has no call to count):
        // counted, never a call. (An object begun on the last line without its newline counts as unfinished,
        // not bad: see above.)
        for (junk, bad) in [
            (&b"\"usage\""[..], 1),
            (b"{\"usage\"", 1),
            (b"\xff\xfe\"usage\"}", 1),
            (b"}", 1),
            (b"{", 1),
            (b"\n\n\r\n", 0),
            (b"{\"message\":{\"usage\":null}}", 0),
        ] {
            let calls = parse_bytes(junk, 5);
            assert!(calls.calls.is_empty(), "{junk:?}");
            assert_eq!(calls.bad_lines + calls.unfinished_lines, bad, "{junk:?}: {:?}", calls.bad_places);
            let ended = parse_bytes(&[junk, b"\n"].concat(), 5);
            assert_eq!(ended.bad_lines, bad, "{junk:?} with its newline: {:?}", ended.bad_places);
        }
    }
}
