//! A journal line: the record as the queue carries it ([`QueuedCall`]) and its JSON text.
//!
//! The recording thread copies a [`CallRecord`] into a [`QueuedCall`]: plain numbers and one inline byte buffer
//! for the strings. It takes no reference count: cloning the record's `Arc<str>`s would make the writer thread,
//! which drops them, bounce those counters' cache lines between cores on every call (that sharing, not the
//! copy, was most of the journal's cost on the recording thread). No allocation either, unless the strings
//! outgrow the inline buffer or the call has more than two extra dimensions (room for more in every queue slot
//! would cost each slot 112 bytes, ~460 KB for the default queue, for what few applications configure).
//!
//! The writer encodes the line by hand, byte for byte what `serde_json` writes for `{"v":…,"call":record}`
//! (tested against it): keys are literals, and only values are escaped.

use chrono::{DateTime, Utc};
use smallvec::SmallVec;

use crate::pricing::Money;
use crate::record::{CallRecord, Outcome, TokenUsage};

/// Inline bytes for a record's strings (model, provider, ids, dimensions): enough for a typical call.
const INLINE_TEXT: usize = 192;

/// The record's optional strings, in the order the line writes them.
#[derive(Clone, Copy)]
enum Slot {
    Model,
    Provider,
    Operation,
    RequestId,
    ServiceTier,
    Speed,
    InferenceGeo,
    ErrorType,
    Session,
    User,
    Tenant,
    Project,
    Agent,
    DimOperation,
    Task,
    PricedAs,
}

const SLOTS: usize = 16;

/// The dimension slots and their keys, in `Dimensions`' field order.
const DIM_KEYS: [(Slot, &str); 7] = [
    (Slot::Session, "session"),
    (Slot::User, "user"),
    (Slot::Tenant, "tenant"),
    (Slot::Project, "project"),
    (Slot::Agent, "agent"),
    (Slot::DimOperation, "operation"),
    (Slot::Task, "task"),
];

/// A call record as the journal queue carries it: owned, flat, sharing nothing with the recording thread.
pub(crate) struct QueuedCall {
    timestamp: DateTime<Utc>,
    duration_us: u64,
    ttft_us: Option<u64>,
    streaming: Option<bool>,
    tokens: TokenUsage,
    web_search_requests: u64,
    metered: bool,
    cost: Option<QueuedCost>,
    /// Bit `slot` set: that string is present (an error outcome is a present `ErrorType`, even when empty).
    present: u32,
    /// End offset in the text of each slot (absent ones are empty).
    ends: [u32; SLOTS],
    /// End offsets of each extra dimension's name and value, after the slots.
    extra_ends: SmallVec<[u32; 4]>,
    text: Text,
}

/// The strings' bytes, back to back: inline when they fit.
enum Text {
    Inline([u8; INLINE_TEXT]),
    Heap(Box<[u8]>),
}

impl Text {
    fn bytes(&self) -> &[u8] {
        match self {
            Text::Inline(b) => b,
            Text::Heap(b) => b,
        }
    }
}

struct QueuedCost {
    /// total, input, cache_read, cache_write_5m, cache_write_1h, output, cache_savings, web_search.
    amounts: [Money; 8],
    long_context: bool,
    batch: bool,
    fast: bool,
    regional: bool,
}

impl QueuedCall {
    pub(crate) fn new(record: &CallRecord) -> Self {
        let d = &record.dimensions;
        let error_type = match &record.outcome {
            Outcome::Error { error_type } => Some(&**error_type),
            Outcome::Ok => None,
        };
        let slots: [Option<&str>; SLOTS] = [
            record.model.as_deref(),
            record.provider.as_deref(),
            record.operation.as_deref(),
            record.request_id.as_deref(),
            record.service_tier.as_deref(),
            record.speed.as_deref(),
            record.inference_geo.as_deref(),
            error_type,
            d.session.as_deref(),
            d.user.as_deref(),
            d.tenant.as_deref(),
            d.project.as_deref(),
            d.agent.as_deref(),
            d.operation.as_deref(),
            d.task.as_deref(),
            record.cost.as_ref().map(|c| &*c.priced_as),
        ];
        let len = slots.iter().map(|s| s.map_or(0, str::len)).sum::<usize>()
            + d.extra.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>();
        let mut text = if len <= INLINE_TEXT {
            Text::Inline([0; INLINE_TEXT])
        } else {
            Text::Heap(vec![0; len].into_boxed_slice())
        };
        let buf: &mut [u8] = match &mut text {
            Text::Inline(b) => b,
            Text::Heap(b) => b,
        };
        let mut at = 0;
        let mut put = |s: &str| {
            buf[at..at + s.len()].copy_from_slice(s.as_bytes());
            at += s.len();
            at as u32
        };
        let (mut present, mut ends) = (0u32, [0u32; SLOTS]);
        let mut end = 0;
        for (i, value) in slots.into_iter().enumerate() {
            if let Some(v) = value {
                present |= 1 << i;
                end = put(v);
            }
            ends[i] = end;
        }
        let mut extra_ends = SmallVec::new();
        for (name, value) in &d.extra {
            extra_ends.push(put(name));
            extra_ends.push(put(value));
        }
        QueuedCall {
            timestamp: record.timestamp,
            duration_us: record.duration_us,
            ttft_us: record.time_to_first_token_us,
            streaming: record.streaming,
            tokens: record.tokens,
            web_search_requests: record.web_search_requests,
            metered: record.metered,
            cost: record.cost.as_ref().map(|c| QueuedCost {
                amounts: [
                    c.total,
                    c.input,
                    c.cache_read,
                    c.cache_write_5m,
                    c.cache_write_1h,
                    c.output,
                    c.cache_savings,
                    c.web_search,
                ],
                long_context: c.long_context,
                batch: c.batch,
                fast: c.fast,
                regional: c.regional,
            }),
            present,
            ends,
            extra_ends,
            text,
        }
    }

    /// The text between two end offsets: the bytes of one whole `&str` (so valid UTF-8, and not checked again:
    /// the encoder escapes bytes).
    fn text_between(&self, start: u32, end: u32) -> &[u8] {
        &self.text.bytes()[start as usize..end as usize]
    }

    fn get(&self, slot: Slot) -> Option<&[u8]> {
        let i = slot as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        (self.present & (1 << i) != 0).then(|| self.text_between(start, self.ends[i]))
    }

    /// The `n`th string after the slots (extra dimensions: name, value, name, value, …).
    fn extra(&self, n: usize) -> &[u8] {
        let start = if n == 0 { self.ends[SLOTS - 1] } else { self.extra_ends[n - 1] };
        self.text_between(start, self.extra_ends[n])
    }

    /// The UTC day the record's line is filed under.
    pub(crate) fn day(&self) -> chrono::NaiveDate {
        self.timestamp.date_naive()
    }

    /// Appends the line (without its newline) to `out`: exactly what `serde_json` writes for
    /// `{"v":version,"call":record}`.
    pub(crate) fn write_json(&self, version: u32, out: &mut Vec<u8>) {
        let mut w = Json { out };
        w.raw("{\"v\":");
        w.uint(u64::from(version));
        w.raw(",\"call\":{\"timestamp\":");
        w.timestamp(&self.timestamp);
        w.raw(",\"duration_us\":");
        w.uint(self.duration_us);
        if let Some(t) = self.ttft_us {
            w.raw(",\"time_to_first_token_us\":");
            w.uint(t);
        }
        for (slot, key) in [
            (Slot::Model, ",\"model\":"),
            (Slot::Provider, ",\"provider\":"),
            (Slot::Operation, ",\"operation\":"),
            (Slot::RequestId, ",\"request_id\":"),
        ] {
            if let Some(v) = self.get(slot) {
                w.raw(key);
                w.string(v);
            }
        }
        if let Some(s) = self.streaming {
            w.raw(",\"streaming\":");
            w.boolean(s);
        }
        for (slot, key) in [
            (Slot::ServiceTier, ",\"service_tier\":"),
            (Slot::Speed, ",\"speed\":"),
            (Slot::InferenceGeo, ",\"inference_geo\":"),
        ] {
            if let Some(v) = self.get(slot) {
                w.raw(key);
                w.string(v);
            }
        }
        let t = &self.tokens;
        for (key, count) in [
            (",\"tokens\":{\"input\":", t.input),
            (",\"cache_read\":", t.cache_read),
            (",\"cache_write_5m\":", t.cache_write_5m),
            (",\"cache_write_1h\":", t.cache_write_1h),
            (",\"output\":", t.output),
            (",\"reasoning\":", t.reasoning),
        ] {
            w.raw(key);
            w.uint(count);
        }
        w.raw("}");
        if self.web_search_requests != 0 {
            w.raw(",\"web_search_requests\":");
            w.uint(self.web_search_requests);
        }
        w.raw(",\"metered\":");
        w.boolean(self.metered);
        match self.get(Slot::ErrorType) {
            Some(error_type) => {
                w.raw(",\"outcome\":{\"status\":\"error\",\"error_type\":");
                w.string(error_type);
                w.raw("}");
            }
            None => w.raw(",\"outcome\":{\"status\":\"ok\"}"),
        }
        w.raw(",\"dimensions\":{");
        let mut first = true;
        for (slot, key) in DIM_KEYS {
            if let Some(v) = self.get(slot) {
                w.key(&mut first, key);
                w.string(v);
            }
        }
        if !self.extra_ends.is_empty() {
            w.key(&mut first, "extra");
            w.raw("[");
            for i in (0..self.extra_ends.len()).step_by(2) {
                if i > 0 {
                    w.raw(",");
                }
                w.raw("[");
                w.string(self.extra(i));
                w.raw(",");
                w.string(self.extra(i + 1));
                w.raw("]");
            }
            w.raw("]");
        }
        w.raw("}");
        if let Some(c) = &self.cost {
            const KEYS: [&str; 7] = [
                ",\"cost\":{\"total\":",
                ",\"input\":",
                ",\"cache_read\":",
                ",\"cache_write_5m\":",
                ",\"cache_write_1h\":",
                ",\"output\":",
                ",\"cache_savings\":",
            ];
            let [total, input, read, w5, w1, output, savings, web_search] = c.amounts;
            for (key, amount) in KEYS.into_iter().zip([total, input, read, w5, w1, output]) {
                w.raw(key);
                w.uint_wide(amount.picos());
            }
            // Serde's order: `web_search` (left out when zero) sits between `output` and `cache_savings`.
            if !web_search.is_zero() {
                w.raw(",\"web_search\":");
                w.uint_wide(web_search.picos());
            }
            w.raw(KEYS[6]);
            w.uint_wide(savings.picos());
            w.raw(",\"priced_as\":");
            w.string(self.get(Slot::PricedAs).unwrap_or_default());
            w.raw(",\"long_context\":");
            w.boolean(c.long_context);
            w.raw(",\"batch\":");
            w.boolean(c.batch);
            w.raw(",\"fast\":");
            w.boolean(c.fast);
            if c.regional {
                w.raw(",\"regional\":true");
            }
            w.raw("}");
        }
        w.raw("}}");
    }
}

struct Json<'a> {
    out: &'a mut Vec<u8>,
}

impl Json<'_> {
    fn raw(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    fn key(&mut self, first: &mut bool, key: &str) {
        if !std::mem::take(first) {
            self.raw(",");
        }
        self.string(key.as_bytes());
        self.raw(":");
    }

    fn uint(&mut self, v: u64) {
        let mut buf = itoa::Buffer::new();
        self.raw(buf.format(v));
    }

    /// Amounts are `u128` picodollars, nearly always within `u64` (18 million dollars), whose formatting
    /// avoids 128-bit divisions.
    fn uint_wide(&mut self, v: u128) {
        match u64::try_from(v) {
            Ok(small) => self.uint(small),
            Err(_) => {
                let mut buf = itoa::Buffer::new();
                self.raw(buf.format(v));
            }
        }
    }

    fn boolean(&mut self, v: bool) {
        self.raw(if v { "true" } else { "false" });
    }

    fn timestamp(&mut self, ts: &DateTime<Utc>) {
        let mut buf = [0u8; 30];
        match crate::record::timestamp_text(ts, &mut buf) {
            Some(text) => {
                self.raw("\"");
                self.raw(text);
                self.raw("\"");
            }
            // Years outside 0..=9999 and leap seconds: chrono's own text, as serde writes it.
            None => match serde_json::to_vec(ts) {
                Ok(bytes) => self.out.extend_from_slice(&bytes),
                Err(_) => self.raw("null"),
            },
        }
    }

    /// A JSON string, escaped as `serde_json` escapes it: `"` and `\`, control characters as `\b \t \n \f \r`
    /// or `\u00XX` (lowercase hex); everything else, non-ASCII included, as is.
    fn string(&mut self, bytes: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.out.push(b'"');
        // Most values need no escape: one pass that the compiler vectorizes, then one copy.
        if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
            self.out.extend_from_slice(bytes);
            self.out.push(b'"');
            return;
        }
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                0x08 => b"\\b",
                b'\t' => b"\\t",
                b'\n' => b"\\n",
                0x0c => b"\\f",
                b'\r' => b"\\r",
                0x00..=0x1f => &[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]],
                _ => continue,
            };
            self.out.extend_from_slice(&bytes[start..i]);
            self.out.extend_from_slice(escape);
            start = i + 1;
        }
        self.out.extend_from_slice(&bytes[start..]);
        self.out.push(b'"');
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;
    use serde::Serialize;

    use super::*;
    use crate::pricing::CallCost;
    use crate::record::Dimensions;

    #[derive(Serialize)]
    struct LineOut<'a> {
        v: u32,
        call: &'a CallRecord,
    }

    fn serde_line(record: &CallRecord) -> String {
        serde_json::to_string(&LineOut { v: 1, call: record }).unwrap()
    }

    fn ours(record: &CallRecord) -> String {
        let mut out = Vec::new();
        QueuedCall::new(record).write_json(1, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// A record with every optional field absent (also the writer tests' record).
    /// A record with nothing in it but its time (for tests across the crate).
    pub(crate) fn bare() -> CallRecord {
        CallRecord {
            timestamp: Utc.with_ymd_and_hms(2026, 11, 23, 9, 5, 7).unwrap(),
            duration_us: 0,
            time_to_first_token_us: None,
            model: None,
            provider: None,
            operation: None,
            request_id: None,
            streaming: None,
            service_tier: None,
            speed: None,
            inference_geo: None,
            tokens: TokenUsage::default(),
            web_search_requests: 0,
            metered: false,
            outcome: Outcome::Ok,
            dimensions: Dimensions::default(),
            cost: None,
        }
    }

    fn full() -> CallRecord {
        let s = |v: &str| Some(Arc::<str>::from(v));
        CallRecord {
            timestamp: Utc.with_ymd_and_hms(2026, 3, 14, 23, 59, 59).unwrap() + chrono::Duration::nanoseconds(120_000),
            duration_us: 1_200_000,
            time_to_first_token_us: Some(350_000),
            model: s("claude-sonnet-4-5"),
            provider: s("anthropic"),
            operation: s("chat"),
            request_id: s("msg_01XFDUDYJgAACzvnptvVoYEL"),
            streaming: Some(true),
            service_tier: s("batch"),
            speed: s("fast"),
            inference_geo: s("us"),
            tokens: TokenUsage {
                input: 12,
                cache_read: u64::MAX,
                cache_write_5m: 3,
                cache_write_1h: 4,
                output: 500,
                reasoning: 120,
            },
            web_search_requests: 7,
            metered: true,
            outcome: Outcome::Error { error_type: Arc::from("overloaded_error") },
            dimensions: Dimensions {
                session: s("sess-1"),
                user: s("ada"),
                tenant: s("acme"),
                project: s("search"),
                agent: s("planner"),
                operation: s("summarize"),
                task: s("weekly report"),
                extra: vec![(Arc::from("team"), Arc::from("core")), (Arc::from("region"), Arc::from("eu-west-1"))],
            },
            cost: Some(CallCost {
                total: Money::from_picos(u128::MAX),
                input: Money::from_picos(1),
                cache_read: Money::from_picos(0),
                cache_write_5m: Money::from_picos(3_750_000_000),
                cache_write_1h: Money::from_picos(10u128.pow(30)),
                output: Money::from_picos(7_500_000_000),
                web_search: Money::from_picos(70_000_000_000),
                cache_savings: Money::from_picos(27_000_000_000),
                priced_as: Arc::from("claude-sonnet-4-5"),
                long_context: true,
                batch: false,
                fast: true,
                regional: true,
            }),
        }
    }

    #[test]
    fn lines_are_what_serde_json_writes() {
        let mut cases = vec![bare(), full()];
        // Every optional field absent in turn, from the full record.
        for i in 0..19 {
            let mut r = full();
            match i {
                0 => r.time_to_first_token_us = None,
                1 => r.model = None,
                2 => r.provider = None,
                3 => r.operation = None,
                4 => r.request_id = None,
                5 => r.streaming = Some(false),
                6 => r.service_tier = None,
                7 => r.speed = None,
                8 => r.outcome = Outcome::Ok,
                9 => r.dimensions.session = None,
                10 => r.dimensions.extra.clear(),
                11 => r.dimensions = Dimensions { task: Some(Arc::from("t")), ..Dimensions::default() },
                12 => r.cost = None,
                13 => r.dimensions.extra.truncate(1),
                14 => r.metered = false,
                16 => r.inference_geo = None,
                17 => {
                    if let Some(c) = &mut r.cost {
                        c.regional = false;
                    }
                }
                15 => {
                    r.web_search_requests = 0;
                    if let Some(c) = &mut r.cost {
                        c.web_search = Money::ZERO;
                    }
                }
                _ => r.outcome = Outcome::Error { error_type: Arc::from("") },
            }
            cases.push(r);
        }
        // Only extra dimensions (the object's first key is "extra").
        let mut r = bare();
        r.dimensions.extra = vec![(Arc::from("k"), Arc::from("v"))];
        cases.push(r);
        // Text that needs escaping, non-ASCII, and strings longer than the inline buffer.
        let mut r = full();
        r.model = Some(Arc::from("quote\" back\\slash \u{1} \u{8}\u{c}\n\r\t \u{1f} \u{7f} é 日本 🎉 /"));
        r.dimensions.session = Some(Arc::from("s".repeat(1000)));
        r.dimensions.extra.push((Arc::from("na\"me"), Arc::from("va\nlue")));
        cases.push(r);
        // Timestamps: whole seconds, micro and nano precision, a leap second, years chrono writes its own way.
        for ts in [
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::nanoseconds(123_456_789),
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::nanoseconds(5_000),
            Utc.with_ymd_and_hms(-44, 3, 15, 12, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
            chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
                .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
                .unwrap()
                .and_utc(),
        ] {
            let mut r = full();
            r.timestamp = ts;
            cases.push(r);
        }
        for (i, record) in cases.iter().enumerate() {
            assert_eq!(ours(record), serde_line(record), "case {i}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Any text in every string field (escapes, every plane, lengths across the inline buffer's), any counts
        /// and any instant chrono writes: the hand-written line is serde_json's, byte for byte.
        #[test]
        fn any_record_is_written_as_serde_json_writes_it(
            texts in proptest::collection::vec(proptest::option::of("(?s).{0,80}|[\"\\\\\u{0}-\u{1f}é日🎉]{0,40}"), 13),
            counts in proptest::collection::vec(proptest::prelude::any::<u64>(), 8),
            picos in proptest::prelude::any::<u128>(),
            secs in -62_000_000_000i64..250_000_000_000,
            nanos in 0u32..2_000_000_000,
            flags in proptest::prelude::any::<[bool; 5]>(),
        ) {
            let a = |i: usize| texts[i].as_deref().map(Arc::<str>::from);
            let Some(timestamp) = DateTime::from_timestamp(secs, nanos) else { return Ok(()) };
            let mut r = full();
            r.timestamp = timestamp;
            r.duration_us = counts[0];
            r.time_to_first_token_us = flags[0].then_some(counts[1]);
            r.model = a(0);
            r.provider = a(1);
            r.operation = a(2);
            r.request_id = a(3);
            r.service_tier = a(4);
            r.speed = a(5);
            r.inference_geo = a(12);
            r.streaming = Some(flags[1]);
            r.metered = flags[2];
            r.tokens = TokenUsage {
                input: counts[2],
                cache_read: counts[3],
                cache_write_5m: counts[4],
                cache_write_1h: counts[5],
                output: counts[6],
                reasoning: counts[7],
            };
            r.web_search_requests = counts[1] % 100_001;
            r.outcome = match a(6) {
                Some(error_type) => Outcome::Error { error_type },
                None => Outcome::Ok,
            };
            r.dimensions.session = a(7);
            r.dimensions.user = a(8);
            r.dimensions.task = a(9);
            r.dimensions.extra = match (a(10), a(11)) {
                (Some(k), Some(v)) => vec![(k, v)],
                _ => Vec::new(),
            };
            if let Some(c) = &mut r.cost {
                c.total = Money::from_picos(picos);
                c.cache_read = Money::from_picos(picos / 3);
                c.long_context = flags[3];
                c.regional = flags[4];
            }
            if !flags[3] {
                r.cost = None;
            }
            proptest::prop_assert_eq!(ours(&r), serde_line(&r));
        }
    }

    #[test]
    fn every_control_character_is_escaped_as_serde_json_does() {
        for c in (0u8..0x80).map(char::from).chain(['\u{80}', '\u{2028}', '\u{fffd}']) {
            let mut r = bare();
            r.request_id = Some(Arc::from(format!("a{c}b").as_str()));
            assert_eq!(ours(&r), serde_line(&r), "{:?}", c);
        }
    }
}
