//! A small Server-Sent Events decoder: bytes in, events out.
//!
//! It follows the WHATWG event-stream rules that matter for the Messages API: lines end in `\n`, `\r\n` or
//! `\r` (also when a chunk boundary falls between `\r` and `\n`); `event:` names the event, `data:` lines are
//! joined with `\n`; a blank line dispatches; lines starting with `:` are comments; one space after the colon
//! is dropped; a leading byte-order mark is skipped. An event not closed by a blank line when the stream ends is
//! what [`SseDecoder::finish`] returns (a browser discards it; it may carry the last usage): call it at the end of
//! the body. Invalid UTF-8 is replaced, never an error.
//!
//! Memory is bounded: an event with a line longer than [`MAX_LINE_BYTES`], or whose data grows past
//! [`MAX_EVENT_BYTES`], is dropped whole and counted (never delivered cut short), so a misbehaving server cannot
//! grow the buffer without limit. A comment line that long is skipped alone (the event around it is kept), and a
//! line buffer grown past [`KEPT_LINE_CAPACITY`] by a long line is freed once that line ends.

/// The longest line kept, in bytes; the event with a longer line is dropped (and counted in
/// [`SseDecoder::dropped`]). The Messages API puts each event's data on one line, so this is
/// [`MAX_EVENT_BYTES`] plus room for the `data: ` before it.
pub const MAX_LINE_BYTES: usize = MAX_EVENT_BYTES + 16;

/// The most data one event may carry, in bytes; a larger event is dropped (and counted).
pub const MAX_EVENT_BYTES: usize = 4 << 20;

/// The line buffer's capacity kept between lines, in bytes; a longer line's buffer is freed when it ends, so one
/// large event does not hold megabytes for the rest of a long stream.
pub const KEPT_LINE_CAPACITY: usize = 64 << 10;

/// One decoded event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The event name (`message_start`, `content_block_delta`, …); `"message"` when the stream gave none.
    pub event: String,
    /// The event's data lines, joined with `\n`.
    pub data: String,
}

/// Turns a byte stream into [`SseEvent`]s, whatever the chunking.
///
/// ```
/// use tokenmeter::instrument::SseDecoder;
///
/// let mut decoder = SseDecoder::new();
/// let mut events = decoder.push(b"event: ping\r\ndata: {\"type\": \"pi");
/// assert!(events.is_empty());
/// events = decoder.push(b"ng\"}\r\n\r\n");
/// assert_eq!(events[0].event, "ping");
/// assert_eq!(events[0].data, r#"{"type": "ping"}"#);
/// ```
///
/// Its `Debug` shows sizes and counts, never the buffered bytes (which hold response text between chunks).
#[derive(Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    /// The current line passed [`MAX_LINE_BYTES`]: drop the rest of it (and its event).
    skipping_line: bool,
    /// The previous chunk ended in `\r`: a `\n` starting the next one belongs to that line ending.
    after_cr: bool,
    /// At least one line has been seen (a BOM is skipped only before the first).
    started: bool,
    event: String,
    data: String,
    has_data: bool,
    /// The current event's data passed [`MAX_EVENT_BYTES`]: drop the event.
    event_too_large: bool,
    dropped: u64,
}

impl std::fmt::Debug for SseDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseDecoder")
            .field("buffered_line_bytes", &self.line.len())
            .field("buffered_data_bytes", &self.data.len())
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

impl SseDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        SseDecoder::default()
    }

    /// Feeds the next chunk of the stream; returns the events it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let mut rest = chunk;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(i) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.append(&rest[..i]);
            let was_cr = rest[i] == b'\r';
            rest = &rest[i + 1..];
            if was_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
            self.end_line(&mut out);
        }
        self.append(rest);
        out
    }

    /// Ends the stream and returns the event it left pending: one whose last line or closing blank line never
    /// came (a proxy that drops the final blank line, a connection closed right after the last `data:` line).
    /// A browser discards it; a meter would lose the usage it carries, so the caller decides (the data may
    /// also be cut short). The decoder starts afresh after it.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let mut out = Vec::new();
        if !self.line.is_empty() || self.skipping_line {
            self.end_line(&mut out);
        }
        self.dispatch(&mut out);
        *self = SseDecoder { dropped: self.dropped, ..SseDecoder::default() };
        out.pop()
    }

    /// The event being read, once its last line so far has ended: its name and data. `None` mid-line, before
    /// any data, or for an event being dropped for size.
    pub(super) fn pending(&self) -> Option<(&str, &str)> {
        let whole_lines = self.line.is_empty() && !self.skipping_line && !self.event_too_large;
        (whole_lines && self.has_data).then_some((&self.event, &self.data))
    }

    /// Lines and events dropped so far for exceeding [`MAX_LINE_BYTES`] or [`MAX_EVENT_BYTES`].
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn append(&mut self, part: &[u8]) {
        if self.skipping_line || part.is_empty() {
            return;
        }
        if self.line.len() + part.len() > MAX_LINE_BYTES {
            let comment = self.starts_comment(part);
            self.line = Vec::new();
            self.skipping_line = true;
            // The event loses a line: it is dropped whole at its blank line (counted once, here), not
            // delivered without it. A comment is no part of the event: skipping it loses nothing.
            if !comment && !self.event_too_large {
                self.event_too_large = true;
                self.data.clear();
                self.dropped += 1;
            }
            return;
        }
        self.line.extend_from_slice(part);
    }

    /// Whether the line being read (what is buffered, then `part`) is a comment: its first byte, after a
    /// byte-order mark on the stream's first line, is `:`.
    fn starts_comment(&self, part: &[u8]) -> bool {
        let head: &[u8] = if self.line.is_empty() { part } else { &self.line };
        let head = if self.started { head } else { strip_bom(head) };
        head.first() == Some(&b':')
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        if std::mem::take(&mut self.skipping_line) {
            self.line.clear();
            return;
        }
        let mut line = std::mem::take(&mut self.line);
        self.read_line(&line, out);
        // A buffer a long line grew is freed; a small one is kept for the next line.
        if line.capacity() <= KEPT_LINE_CAPACITY {
            line.clear();
            self.line = line;
        }
    }

    fn read_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        let mut bytes: &[u8] = line;
        if !self.started {
            self.started = true;
            bytes = strip_bom(bytes);
        }
        if bytes.is_empty() {
            self.dispatch(out);
        } else if bytes[0] != b':' {
            let text = String::from_utf8_lossy(bytes);
            let (field, value) = match text.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (&*text, ""),
            };
            match field {
                "event" => {
                    self.event.clear();
                    self.event.push_str(value);
                }
                "data" if !self.event_too_large => {
                    // The `\n` joining it to earlier data lines counts; none goes before the first.
                    if self.data.len() + usize::from(self.has_data) + value.len() > MAX_EVENT_BYTES {
                        self.event_too_large = true;
                        self.data.clear();
                        self.dropped += 1;
                    } else {
                        if self.has_data {
                            self.data.push('\n');
                        }
                        self.data.push_str(value);
                        self.has_data = true;
                    }
                }
                // `id`, `retry` and unknown fields do not matter here.
                _ => {}
            }
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        let has_data = std::mem::take(&mut self.has_data);
        if std::mem::take(&mut self.event_too_large) || !has_data {
            return;
        }
        let event = if event.is_empty() { String::from("message") } else { event };
        out.push(SseEvent { event, data });
    }
}

/// `bytes` without a leading UTF-8 byte-order mark.
pub(super) fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        chunks.iter().flat_map(|c| d.push(c)).collect()
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent { event: event.into(), data: data.into() }
    }

    #[test]
    fn finish_returns_the_event_a_missing_blank_line_left_pending() {
        let mut d = SseDecoder::new();
        assert!(d.push(b"event: a\ndata: 1\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n").len() == 1);
        assert_eq!(d.finish(), Some(ev("message_stop", r#"{"type":"message_stop"}"#)));
        assert_eq!(d.finish(), None, "nothing pending any more");
        // Without even the last line's ending.
        d.push(b"data: 2");
        assert_eq!(d.finish(), Some(ev("message", "2")));
        // A whole stream leaves nothing.
        d.push(b"data: 3\n\n");
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn line_endings_and_chunk_boundaries() {
        let stream = b"event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\revent: c\ndata: 3\n\n";
        let whole = decode_all(&[stream]);
        assert_eq!(whole, vec![ev("a", "1"), ev("b", "2"), ev("c", "3")]);
        // Every split point, including between \r and \n, gives the same events.
        for cut in 0..stream.len() {
            assert_eq!(decode_all(&[&stream[..cut], &stream[cut..]]), whole, "cut at {cut}");
        }
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_all(&bytewise), whole);
    }

    #[test]
    fn multi_line_data_comments_bom_and_defaults() {
        let events = decode_all(&[b"\xEF\xBB\xBF: keep-alive\ndata: a\ndata:b\nid: 7\nretry: 10\nbogus\n\n"]);
        assert_eq!(events, vec![ev("message", "a\nb")]);
    }

    #[test]
    fn events_without_data_or_blank_line_are_not_dispatched() {
        assert!(decode_all(&[b"event: ping\n\n"]).is_empty());
        // A stream cut before the blank line: the partial event is discarded.
        assert!(decode_all(&[b"event: message_delta\ndata: {\"usage\":{}}"]).is_empty());
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let events = decode_all(&[b"event: x\xFF\ndata: \xC3\x28\n\n"]);
        assert_eq!(events, vec![ev("x\u{FFFD}", "\u{FFFD}(")]);
    }

    #[test]
    fn oversized_lines_are_dropped_and_counted() {
        let mut d = SseDecoder::new();
        let big = vec![b'x'; MAX_LINE_BYTES + 10];
        assert!(d.push(b"data: ").is_empty());
        assert!(d.push(&big).is_empty());
        assert!(d.push(&big).is_empty());
        let events = d.push(b"\n\nevent: ok\ndata: 1\n\n");
        assert_eq!(events, vec![ev("ok", "1")]);
        assert_eq!(d.dropped(), 1);
    }

    #[test]
    fn an_event_with_an_oversized_line_is_dropped_whole_not_cut_short() {
        let mut d = SseDecoder::new();
        let mut big = b"data: ".to_vec();
        big.resize(MAX_LINE_BYTES + 10, b'x');
        assert!(d.push(b"event: content_block_start\ndata: {\"a\":\n").is_empty());
        assert!(d.push(&big).is_empty());
        // The event's first data line alone is not delivered as if it were the event.
        assert_eq!(d.push(b"\n\n"), vec![]);
        assert_eq!(d.dropped(), 1);
        assert_eq!(d.push(b"event: ok\ndata: 1\n\n"), vec![ev("ok", "1")]);
    }

    #[test]
    fn a_single_line_event_up_to_the_event_limit_is_kept() {
        // The Messages API writes each event's data on one line: a large one (a server tool's result) must
        // not fall to a line limit below the event limit.
        let mut d = SseDecoder::new();
        // Exactly the limit is kept (the `\n` that joins data lines was counted before the first one too).
        let value = "y".repeat(MAX_EVENT_BYTES);
        let events = d.push(format!("event: content_block_start\ndata: {value}\n\n").as_bytes());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data.len(), MAX_EVENT_BYTES);
        assert_eq!(d.dropped(), 0);
        // One byte more is dropped, and so is a two-line event one byte past it with its joining `\n`.
        let over = "y".repeat(MAX_EVENT_BYTES + 1);
        assert_eq!(d.push(format!("event: big\ndata: {over}\n\n").as_bytes()), vec![]);
        let half = "y".repeat(MAX_EVENT_BYTES / 2);
        assert_eq!(d.push(format!("event: two\ndata: {half}\ndata: {half}\n\n").as_bytes()), vec![]);
        assert_eq!(d.dropped(), 2);
    }

    #[test]
    fn an_oversized_comment_is_skipped_alone() {
        // A padding comment between an event's lines is no part of it: the event is delivered.
        let mut d = SseDecoder::new();
        let mut big = b":".to_vec();
        big.resize(MAX_LINE_BYTES + 10, b' ');
        assert!(d.push(b"event: message_delta\ndata: {\"usage\":{\"output_tokens\":7}}\n").is_empty());
        assert!(d.push(&big[..10]).is_empty());
        assert!(d.push(&big[10..]).is_empty());
        let events = d.push(b"\n\n");
        assert_eq!(events, vec![ev("message_delta", r#"{"usage":{"output_tokens":7}}"#)]);
        assert_eq!(d.dropped(), 0);
        // Also as the stream's first line, behind a byte-order mark.
        let mut d = SseDecoder::new();
        let mut first = "\u{feff}".as_bytes().to_vec();
        first.extend_from_slice(&big);
        assert!(d.push(&first).is_empty());
        assert_eq!(d.push(b"\ndata: 1\n\n"), vec![ev("message", "1")]);
        assert_eq!(d.dropped(), 0);
    }

    #[test]
    fn a_long_lines_buffer_is_freed_when_it_ends() {
        let mut d = SseDecoder::new();
        let value = "y".repeat(1 << 20);
        // Pushed in pieces, so the line is buffered across chunks.
        assert!(d.push(b"event: content_block_start\ndata: ").is_empty());
        assert!(d.push(value.as_bytes()).is_empty());
        assert!(d.line.capacity() >= 1 << 20);
        assert_eq!(d.push(b"\n\n").len(), 1);
        assert!(d.line.capacity() <= KEPT_LINE_CAPACITY, "{}", d.line.capacity());
        // A short line's buffer is kept for the next one.
        assert!(d.push(b"data: 1").is_empty());
        assert_eq!(d.push(b"\n\n"), vec![ev("message", "1")]);
        assert!(d.line.capacity() > 0);
    }

    #[test]
    fn debug_shows_no_buffered_text() {
        let mut d = SseDecoder::new();
        assert!(d.push(b"event: content_block_delta\ndata: {\"delta\":{\"text\":\"secret\"}}\n").is_empty());
        let shown = format!("{d:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("buffered_data_bytes"), "{shown}");
    }
}
