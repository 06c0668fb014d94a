//! The normalized records capture produces: one [`CallRecord`] per LLM call, one [`TaskRecord`] per task span,
//! one [`ToolRecord`] per tool-execution span.
//!
//! Records are made once, when their span closes, and are read by everything downstream (the read-out, sinks
//! registered on the builder). Nothing downstream re-reads span fields.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::pricing::{CallCost, Money};

/// Tokens of one call (or a sum of calls), by kind, in tokenmeter's internal form.
///
/// The five billed kinds are disjoint: `input` is *uncached* input only (cache reads and writes are not part of
/// it), and the two cache-write kinds split writes by cache lifetime. `reasoning` is informational: it is a part
/// of `output`, never added to it.
// A kind missing from a record (written before the kind existed, or by another tool) reads as 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenUsage {
    /// Uncached input tokens.
    pub input: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the prompt cache with the 5-minute lifetime.
    pub cache_write_5m: u64,
    /// Input tokens written to the prompt cache with the 1-hour lifetime.
    pub cache_write_1h: u64,
    /// Output tokens (reasoning included).
    pub output: u64,
    /// Reasoning ("thinking") tokens: a part of `output`.
    pub reasoning: u64,
}

impl TokenUsage {
    /// All prompt-side tokens: uncached input, cache reads and cache writes.
    pub fn prompt_total(&self) -> u64 {
        self.input.saturating_add(self.cache_read).saturating_add(self.cache_write())
    }

    /// Cache writes of both lifetimes.
    pub fn cache_write(&self) -> u64 {
        self.cache_write_5m.saturating_add(self.cache_write_1h)
    }

    /// Every billed token: prompt side plus output (reasoning is inside output, so not added again).
    pub fn total(&self) -> u64 {
        self.prompt_total().saturating_add(self.output)
    }

    /// Adds another usage to this one, saturating at `u64::MAX` per kind.
    pub fn add(&mut self, other: &TokenUsage) {
        self.input = self.input.saturating_add(other.input);
        self.cache_read = self.cache_read.saturating_add(other.cache_read);
        self.cache_write_5m = self.cache_write_5m.saturating_add(other.cache_write_5m);
        self.cache_write_1h = self.cache_write_1h.saturating_add(other.cache_write_1h);
        self.output = self.output.saturating_add(other.output);
        self.reasoning = self.reasoning.saturating_add(other.reasoning);
    }
}

/// How a call, task or tool execution ended.
///
/// Read back, a `status` this version does not know (one a later version writes) is an error of that type
/// (`error_type`, when given, wins): the record, its tokens and its cost are kept, where an unknown variant made
/// the whole line unreadable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Outcome {
    /// Succeeded (or did not say otherwise).
    Ok,
    /// Failed: `error_type` is the span's `error.type`, or `"error"` when only `otel.status_code = "ERROR"` said so.
    Error {
        /// The error type as recorded.
        error_type: Arc<str>,
    },
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Outcome;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#"an outcome ({"status":"ok"} or {"status":"error","error_type":...})"#)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Outcome, A::Error> {
                use serde::de::Error;
                let (mut status, mut error_type): (Option<Status>, Option<Arc<str>>) = (None, None);
                while let Some(key) = map.next_key::<OutcomeKey>()? {
                    match key {
                        OutcomeKey::Status if status.is_some() => return Err(A::Error::duplicate_field("status")),
                        OutcomeKey::Status => status = Some(map.next_value()?),
                        OutcomeKey::ErrorType if error_type.is_some() => {
                            return Err(A::Error::duplicate_field("error_type"));
                        }
                        OutcomeKey::ErrorType => error_type = Some(map.next_value()?),
                        OutcomeKey::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                match status.ok_or_else(|| A::Error::missing_field("status"))? {
                    Status::Ok => Ok(Outcome::Ok),
                    Status::Error => Ok(Outcome::Error {
                        error_type: error_type.ok_or_else(|| A::Error::missing_field("error_type"))?,
                    }),
                    Status::Unknown(status) => Ok(Outcome::Error { error_type: error_type.unwrap_or(status) }),
                }
            }
            /// A format that writes a struct as its fields in order: the tag, then `error_type` (as the derived
            /// reader took it).
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Outcome, A::Error> {
                use serde::de::Error;
                let status: Status = seq.next_element()?.ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let error_type: Option<Arc<str>> = match status {
                    Status::Ok => None,
                    _ => seq.next_element()?,
                };
                match status {
                    Status::Ok => Ok(Outcome::Ok),
                    Status::Error => {
                        Ok(Outcome::Error { error_type: error_type.ok_or_else(|| A::Error::invalid_length(1, &self))? })
                    }
                    Status::Unknown(status) => Ok(Outcome::Error { error_type: error_type.unwrap_or(status) }),
                }
            }
        }
        // `any`, as the derived (internally tagged) reader asked: a format that writes structs as arrays gives a
        // sequence.
        deserializer.deserialize_any(V)
    }
}

/// An outcome's `status`, read without an allocation unless this version does not know it.
enum Status {
    Ok,
    Error,
    Unknown(Arc<str>),
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(StrVisitor("a status", |v| match v {
            "ok" => Status::Ok,
            "error" => Status::Error,
            other => Status::Unknown(Arc::from(other)),
        }))
    }
}

/// A visitor of a string (a value or a field name, borrowed or not) mapped by a function: the small readers of
/// this module's hand-written `Deserialize`s, which read their keywords without allocating.
struct StrVisitor<T>(&'static str, fn(&str) -> T);

impl<T> serde::de::Visitor<'_> for StrVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E>(self, v: &str) -> Result<T, E> {
        Ok((self.1)(v))
    }
}

/// An outcome's keys, read without an allocation.
enum OutcomeKey {
    Status,
    ErrorType,
    Other,
}

impl<'de> Deserialize<'de> for OutcomeKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(StrVisitor("a field name", |v| match v {
            "status" => OutcomeKey::Status,
            "error_type" => OutcomeKey::ErrorType,
            _ => OutcomeKey::Other,
        }))
    }
}

impl Outcome {
    /// True for [`Outcome::Error`].
    pub fn is_error(&self) -> bool {
        matches!(self, Outcome::Error { .. })
    }

    /// `"ok"` or the error type.
    pub fn label(&self) -> &str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error { error_type } => error_type,
        }
    }
}

/// The attribution dimensions of a record, each taken from the record's own span or its nearest ancestor that
/// has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dimensions {
    /// `session.id`, else `gen_ai.conversation.id` (a `session.id` further up wins over a nearer conversation).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "arc_str::option")]
    pub session: Option<Arc<str>>,
    /// `user.id` or `enduser.id`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "arc_str::option")]
    pub user: Option<Arc<str>>,
    /// `tenant.id`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "arc_str::option")]
    pub tenant: Option<Arc<str>>,
    /// `project`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "arc_str::option")]
    pub project: Option<Arc<str>>,
    /// `gen_ai.agent.name` or `agent`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "arc_str::option")]
    pub agent: Option<Arc<str>>,
    /// `operation`: the application's own name for the kind of work (not `gen_ai.operation.name`).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "arc_str::option")]
    pub operation: Option<Arc<str>>,
    /// `task`: the nearest enclosing task span's task name.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "arc_str::option")]
    pub task: Option<Arc<str>>,
    /// User-named extra dimensions (see [`TokenMeterBuilder::with_dimension`](crate::TokenMeterBuilder::with_dimension)),
    /// as `(name, value)` in the order the builder named them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<(Arc<str>, Arc<str>)>,
}

impl Dimensions {
    /// The value of a dimension by its name: `session`, `user`, `tenant`, `project`, `agent`, `operation`,
    /// `task`, or an extra dimension's name.
    pub fn get(&self, name: &str) -> Option<&str> {
        match name {
            "session" => self.session.as_deref(),
            "user" => self.user.as_deref(),
            "tenant" => self.tenant.as_deref(),
            "project" => self.project.as_deref(),
            "agent" => self.agent.as_deref(),
            "operation" => self.operation.as_deref(),
            "task" => self.task.as_deref(),
            other => self.extra.iter().find(|(k, _)| &**k == other).map(|(_, v)| &**v),
        }
    }
}

/// One LLM call, normalized: the one record everything downstream reads.
///
/// Never holds prompt or response text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// When the call started (its span was created), UTC: the wall-clock time at its end less its duration.
    #[serde(serialize_with = "serialize_timestamp", deserialize_with = "deserialize_timestamp")]
    pub timestamp: DateTime<Utc>,
    /// Elapsed time from span creation to close (or to the moment the next call on the same span began), in
    /// microseconds, on the meter's monotonic clock ([`Clock::monotonic_nanos`](crate::Clock::monotonic_nanos)).
    pub duration_us: u64,
    /// Time to first token (`gen_ai.response.time_to_first_chunk`), in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_first_token_us: Option<u64>,
    /// The model that served the call: `gen_ai.response.model`, else `gen_ai.request.model`, else `model`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "arc_str::option")]
    pub model: Option<Arc<str>>,
    /// `gen_ai.provider.name` or `gen_ai.system`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "arc_str::option")]
    pub provider: Option<Arc<str>>,
    /// `gen_ai.operation.name` (`chat`, `text_completion`, …).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "arc_str::option")]
    pub operation: Option<Arc<str>>,
    /// `gen_ai.response.id` (or a provider request id).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "arc_str::option")]
    pub request_id: Option<Arc<str>>,
    /// `gen_ai.request.stream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<bool>,
    /// `service_tier` as recorded (`standard`, `batch`, `priority`, …).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "arc_str::option")]
    pub service_tier: Option<Arc<str>>,
    /// `speed` as recorded (`fast` for fast mode).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "arc_str::option")]
    pub speed: Option<Arc<str>>,
    /// Where inference ran: `inference_geo` as recorded (`us` for the Messages API's US-only inference; `global`),
    /// else the geography of a Bedrock inference profile in the model id (`us` for `us.anthropic.claude-…`) or the
    /// region of a Vertex AI endpoint in `server.address` (`us-east5`). A geography is billed at 1.1x on Claude
    /// Sonnet 4.5 and later ([`CallCost::regional`](crate::pricing::CallCost::regional)).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "arc_str::option")]
    pub inference_geo: Option<Arc<str>>,
    /// Tokens by kind, normalized. Read back (from the journal or a records file), a count above
    /// [`MAX_TOKENS_PER_FIELD`](crate::capture::MAX_TOKENS_PER_FIELD) is an error, as capture rejects it.
    #[serde(deserialize_with = "deserialize_call_tokens")]
    pub tokens: TokenUsage,
    /// Web searches the call made through Anthropic's server-side `web_search` tool
    /// (`server_tool_use.web_search_requests`), each billed at the price book's
    /// [`web_search_fee`](crate::PriceBook::web_search_fee). Absent from a serialized record when 0.
    /// Read back, a count above [`MAX_WEB_SEARCHES_PER_CALL`](crate::capture::MAX_WEB_SEARCHES_PER_CALL) is an
    /// error, as capture rejects it.
    #[serde(default, skip_serializing_if = "is_zero_u64", deserialize_with = "deserialize_web_searches")]
    pub web_search_requests: u64,
    /// False when the call's span closed without any token value (an error response, a dropped stream): the
    /// call happened, but its usage is unknown.
    pub metered: bool,
    /// How the call ended.
    pub outcome: Outcome,
    /// Attribution dimensions.
    #[serde(default)]
    pub dimensions: Dimensions,
    /// The priced cost, or `None` when the model is not in the price book (an *unpriced* call: never $0).
    /// Read back, a cost whose total is not the sum of its parts (counting the whole-number fields this version
    /// does not know, a later version's fee, when that makes the sum), or over $10^12, is an error.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "deserialize_call_cost")]
    pub cost: Option<CallCost>,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

impl CallRecord {
    /// True when the call has usage but no price (its model is unknown to the price book).
    pub fn is_unpriced(&self) -> bool {
        self.metered && self.cost.is_none()
    }

    /// The call's cost, zero when unpriced or unmetered.
    pub fn cost_or_zero(&self) -> Money {
        self.cost.as_ref().map(|c| c.total).unwrap_or_default()
    }

    /// When the call ended (`timestamp` plus `duration_us`), in Unix nanoseconds, saturating: the instant budgets
    /// count it at.
    pub fn ended_at_unix_nanos(&self) -> i64 {
        ended_at_nanos(self.timestamp, self.duration_us)
    }
}

/// When a record stamped `start` and lasting `duration_us` ended, in Unix nanoseconds, saturating (a start
/// outside what nanoseconds hold reads as 0: replay skips such lines as corrupt).
pub(crate) fn ended_at_nanos(start: DateTime<Utc>, duration_us: u64) -> i64 {
    let start = start.timestamp_nanos_opt().unwrap_or(0);
    start.saturating_add(i64::try_from(duration_us).unwrap_or(i64::MAX / 1_000).saturating_mul(1_000))
}

/// One task: a span with a `task` field, closed. Sums the calls made under it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// When the task span was created, UTC (the wall-clock time at its close less its duration).
    #[serde(serialize_with = "serialize_timestamp", deserialize_with = "deserialize_timestamp")]
    pub timestamp: DateTime<Utc>,
    /// Elapsed time of the task span, in microseconds, on the monotonic clock (as [`CallRecord::duration_us`]).
    pub duration_us: u64,
    /// The task's name (the `task` field).
    #[serde(deserialize_with = "arc_str::plain")]
    pub task: Arc<str>,
    /// Dimensions of the task span (inherited like a call's).
    #[serde(default)]
    pub dimensions: Dimensions,
    /// Calls made under the task (nearest enclosing task only).
    pub calls: u64,
    /// Calls under the task whose model is not priced.
    pub unpriced_calls: u64,
    /// Calls under the task that failed.
    pub failed_calls: u64,
    /// Tokens of those calls.
    pub tokens: TokenUsage,
    /// Cost of the priced calls.
    pub cost: Money,
    /// How the task ended: a failed task's tokens are waste.
    pub outcome: Outcome,
    /// The task with every task that ran inside it, at any depth (an agent run with its sub-agents' runs): what
    /// the whole run cost, where `calls`, `tokens` and `cost` count the calls whose nearest task it is. `None` when
    /// no task ran inside it (the figures above are the whole), and in records written before it was added. Each
    /// task still has its own record: summing these over tasks counts the nested ones again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_subtasks: Option<TaskTotals>,
}

/// A task's figures with the tasks inside it ([`TaskRecord::with_subtasks`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskTotals {
    /// Tasks that ran inside it, at any depth.
    pub subtasks: u64,
    /// Calls under it or any of them.
    pub calls: u64,
    /// Of those, calls whose model is not priced.
    pub unpriced_calls: u64,
    /// Of those, calls that failed.
    pub failed_calls: u64,
    /// Tokens of those calls.
    pub tokens: TokenUsage,
    /// Cost of the priced ones.
    pub cost: Money,
}

impl TaskTotals {
    /// Adds a task inside this one: `inner` is its own figures with its subtasks'.
    pub(crate) fn add_subtask(&mut self, inner: &TaskTotals) {
        self.add(inner);
        self.subtasks = self.subtasks.saturating_add(1);
    }

    /// Adds `other`'s figures, its subtask count included.
    pub(crate) fn add(&mut self, other: &TaskTotals) {
        self.subtasks = self.subtasks.saturating_add(other.subtasks);
        self.calls = self.calls.saturating_add(other.calls);
        self.unpriced_calls = self.unpriced_calls.saturating_add(other.unpriced_calls);
        self.failed_calls = self.failed_calls.saturating_add(other.failed_calls);
        self.tokens.add(&other.tokens);
        self.cost += other.cost;
    }
}

/// One tool execution: a span with `gen_ai.operation.name = "execute_tool"` and `gen_ai.tool.name`, closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolRecord {
    /// When the tool span was created, UTC (the wall-clock time at its close less its duration).
    #[serde(serialize_with = "serialize_timestamp", deserialize_with = "deserialize_timestamp")]
    pub timestamp: DateTime<Utc>,
    /// Elapsed time of the tool span, in microseconds, on the monotonic clock (as [`CallRecord::duration_us`]).
    pub duration_us: u64,
    /// `gen_ai.tool.name`.
    #[serde(deserialize_with = "arc_str::plain")]
    pub tool: Arc<str>,
    /// How the execution ended.
    pub outcome: Outcome,
    /// Dimensions (session, task, …) of the context the tool ran in.
    #[serde(default)]
    pub dimensions: Dimensions,
}

/// Reads `Arc<str>` fields straight from the text the deserializer hands over: serde's own impl builds a `String`
/// and copies it into the `Arc` (two allocations, two copies, a free), and replay reads ~12 of them a record.
mod arc_str {
    use std::fmt;
    use std::sync::Arc;

    use serde::de::{Deserializer, Visitor};

    struct Plain;

    impl Visitor<'_> for Plain {
        type Value = Arc<str>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Arc<str>, E> {
            Ok(Arc::from(v))
        }

        // As serde's `String` does: formats that hand strings over as bytes (MessagePack's `bin`), if UTF-8.
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Arc<str>, E> {
            match std::str::from_utf8(v) {
                Ok(s) => Ok(Arc::from(s)),
                Err(_) => Err(E::invalid_value(serde::de::Unexpected::Bytes(v), &self)),
            }
        }
    }

    struct Optional;

    impl<'de> Visitor<'de> for Optional {
        type Value = Option<Arc<str>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or null")
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            plain(deserializer).map(Some)
        }
    }

    pub(super) fn plain<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<str>, D::Error> {
        deserializer.deserialize_str(Plain)
    }

    pub(super) fn option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Arc<str>>, D::Error> {
        deserializer.deserialize_option(Optional)
    }
}

/// Reads a call's tokens, refusing a count capture would have rejected: one corrupted or hand-made line with
/// `u64::MAX` would otherwise poison every sum the ledger makes from it.
fn deserialize_call_tokens<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<TokenUsage, D::Error> {
    use crate::capture::MAX_TOKENS_PER_FIELD;
    let t = TokenUsage::deserialize(deserializer)?;
    let kinds = [
        ("input", t.input),
        ("cache_read", t.cache_read),
        ("cache_write_5m", t.cache_write_5m),
        ("cache_write_1h", t.cache_write_1h),
        ("output", t.output),
        ("reasoning", t.reasoning),
    ];
    match kinds.into_iter().find(|&(_, n)| n > MAX_TOKENS_PER_FIELD) {
        Some((kind, n)) => Err(serde::de::Error::custom(format_args!(
            "tokens.{kind} = {n} is over the {MAX_TOKENS_PER_FIELD} tokens a call can have (capture rejects it too)"
        ))),
        None => Ok(t),
    }
}

/// The most a call's cost (or its cache savings) can be read back as: $10^12, the largest budget limit. A call of
/// 10^12 tokens of each kind (the most capture accepts) at $75 a million, six times over for fast mode, costs
/// ~$2.3×10^9.
const MAX_CALL_COST: Money = Money::from_picos(1_000_000_000_000 * 1_000_000_000_000);

/// Reads a call's cost, refusing one pricing could not have made: a total that is not the sum of its parts (a
/// corrupted digit), or one over [`MAX_CALL_COST`] (a hand-made `u128::MAX` would saturate every total and
/// budget it reached, and a `Block` budget would refuse every request after a restart).
///
/// A part this version does not know (a fee a later version prices, as `web_search` was added) counts towards the
/// sum: the total is checked against the known parts, or against them and some of the unknown whole-number fields
/// (a later version's fee is a part; a count or a rate beside it is not). The call keeps its whole total; its
/// breakdown lacks the unknown part. Refusing it, as the check first did, dropped the whole call's spend from
/// budgets and reports when an older version read a newer one's journal (a rollback, or an older CLI).
fn deserialize_call_cost<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<CallCost>, D::Error> {
    let Some(CostRead { cost: c, unknown_parts }) = Option::<CostRead>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let parts = [c.input, c.cache_read, c.cache_write_5m, c.cache_write_1h, c.output, c.web_search];
    let sum = parts.into_iter().fold(Money::default(), |a, m| a + m);
    let rest = c.total.picos().checked_sub(sum.picos());
    if rest.is_none_or(|rest| rest != 0 && !some_sum_is(&unknown_parts, rest)) {
        return Err(serde::de::Error::custom(format_args!(
            "cost.total = {} picodollars is not the sum of its parts ({})",
            c.total.picos(),
            sum.picos()
        )));
    }
    if let Some((name, m)) =
        [("total", c.total), ("cache_savings", c.cache_savings)].into_iter().find(|(_, m)| *m > MAX_CALL_COST)
    {
        return Err(serde::de::Error::custom(format_args!(
            "cost.{name} = {} picodollars is over the $1e12 a call can cost",
            m.picos()
        )));
    }
    Ok(Some(c))
}

/// Whether some of `numbers` (one or more) add up to `target`: all of them, or some of the first 8 (a later
/// version's cost has a few new fields: a fee, and perhaps a count or a rate beside it, which are not parts; at most
/// 255 sums tried for a line).
fn some_sum_is(numbers: &[u128], target: u128) -> bool {
    if numbers.iter().try_fold(0u128, |a, n| a.checked_add(*n)) == Some(target) {
        return true;
    }
    let numbers = &numbers[..numbers.len().min(8)];
    (1u32..1 << numbers.len()).any(|mask| {
        let mut picked = numbers.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0);
        picked.try_fold(0u128, |a, (_, n)| a.checked_add(*n)) == Some(target)
    })
}

/// A journal line's cost as read back: [`CallCost`] and its whole-number fields this version does not know.
struct CostRead {
    cost: CallCost,
    unknown_parts: Vec<u128>,
}

impl<'de> Deserialize<'de> for CostRead {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct("CallCost", &COST_KEYS, CostVisitor)
    }
}

struct CostVisitor;

impl<'de> serde::de::Visitor<'de> for CostVisitor {
    type Value = CostRead;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a call's cost")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<CostRead, A::Error> {
        use serde::de::Error;
        let mut money: [Option<Money>; 8] = [None; 8];
        let mut priced_as: Option<Arc<str>> = None;
        // `long_context`, `batch`, `fast`, `regional` (or `us_only`, its earlier name).
        let mut flags: [Option<bool>; 4] = [None; 4];
        let mut unknown = Vec::new();
        while let Some(CostKey(key)) = map.next_key()? {
            match key {
                Some(i) if i < money.len() => {
                    if money[i].is_some() {
                        return Err(A::Error::duplicate_field(COST_KEYS[i]));
                    }
                    money[i] = Some(map.next_value()?);
                }
                Some(8) if priced_as.is_some() => return Err(A::Error::duplicate_field("priced_as")),
                Some(8) => priced_as = Some(map.next_value()?),
                Some(i) => {
                    let f = (i - 9).min(3);
                    if flags[f].is_some() {
                        return Err(A::Error::duplicate_field(COST_KEYS[9 + f]));
                    }
                    flags[f] = Some(map.next_value()?);
                }
                None => unknown.extend(map.next_value::<WholeNumber>()?.0),
            }
        }
        let required = |i: usize| money[i].ok_or_else(|| A::Error::missing_field(COST_KEYS[i]));
        let cost = CallCost {
            total: required(0)?,
            input: required(1)?,
            cache_read: required(2)?,
            cache_write_5m: required(3)?,
            cache_write_1h: required(4)?,
            output: required(5)?,
            web_search: money[6].unwrap_or_default(),
            cache_savings: money[7].unwrap_or_default(),
            priced_as: priced_as.ok_or_else(|| A::Error::missing_field("priced_as"))?,
            long_context: flags[0].unwrap_or_default(),
            batch: flags[1].unwrap_or_default(),
            fast: flags[2].unwrap_or_default(),
            regional: flags[3].unwrap_or_default(),
        };
        Ok(CostRead { cost, unknown_parts: unknown })
    }

    /// A format that writes a struct as its fields in order (as the derived reader took it).
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<CostRead, A::Error> {
        use serde::de::Error;
        let mut money = [Money::default(); 8];
        for (i, m) in money.iter_mut().enumerate() {
            match seq.next_element()? {
                Some(v) => *m = v,
                None if i < 6 => return Err(A::Error::invalid_length(i, &self)),
                None => {}
            }
        }
        let priced_as = seq.next_element()?.ok_or_else(|| A::Error::invalid_length(8, &self))?;
        let mut flags = [false; 4];
        for f in &mut flags {
            *f = seq.next_element()?.unwrap_or_default();
        }
        let [total, input, cache_read, cache_write_5m, cache_write_1h, output, web_search, cache_savings] = money;
        let [long_context, batch, fast, regional] = flags;
        let cost = CallCost {
            total,
            input,
            cache_read,
            cache_write_5m,
            cache_write_1h,
            output,
            web_search,
            cache_savings,
            priced_as,
            long_context,
            batch,
            fast,
            regional,
        };
        Ok(CostRead { cost, unknown_parts: Vec::new() })
    }
}

/// A cost's key: its place in [`COST_KEYS`], `None` for one this version does not know. Read without an allocation
/// (replay reads a cost per line).
struct CostKey(Option<usize>);

/// A cost's keys: the eight amounts in `CostVisitor`'s order, then the rest (`us_only` is `regional`'s earlier name).
const COST_KEYS: [&str; 14] = [
    "total",
    "input",
    "cache_read",
    "cache_write_5m",
    "cache_write_1h",
    "output",
    "web_search",
    "cache_savings",
    "priced_as",
    "long_context",
    "batch",
    "fast",
    "regional",
    "us_only",
];

impl<'de> Deserialize<'de> for CostKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_identifier(StrVisitor("a field name", |v| CostKey(COST_KEYS.iter().position(|k| *k == v))))
    }
}

/// Any value, read as `Some` when it is a whole number of at most `u64::MAX` (what a self-describing format gives
/// whole; serde_json hands a larger one over as a float).
struct WholeNumber(Option<u128>);

impl<'de> Deserialize<'de> for WholeNumber {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = WholeNumber;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any value")
            }
            fn visit_u64<E>(self, v: u64) -> Result<WholeNumber, E> {
                Ok(WholeNumber(Some(u128::from(v))))
            }
            fn visit_u128<E>(self, v: u128) -> Result<WholeNumber, E> {
                Ok(WholeNumber(Some(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<WholeNumber, E> {
                Ok(WholeNumber(u128::try_from(v).ok()))
            }
            fn visit_f64<E>(self, _: f64) -> Result<WholeNumber, E> {
                Ok(WholeNumber(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<WholeNumber, E> {
                Ok(WholeNumber(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<WholeNumber, E> {
                Ok(WholeNumber(None))
            }
            fn visit_unit<E>(self) -> Result<WholeNumber, E> {
                Ok(WholeNumber(None))
            }
            fn visit_none<E>(self) -> Result<WholeNumber, E> {
                Ok(WholeNumber(None))
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<WholeNumber, D::Error> {
                WholeNumber::deserialize(d)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<WholeNumber, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(WholeNumber(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<WholeNumber, A::Error> {
                while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(WholeNumber(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Reads a call's web search count, refusing one capture would have rejected: priced at the fee, one
/// hand-made `u64::MAX` would put ~$1.8e17 into every total and budget.
fn deserialize_web_searches<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    use crate::capture::MAX_WEB_SEARCHES_PER_CALL;
    let n = u64::deserialize(deserializer)?;
    if n > MAX_WEB_SEARCHES_PER_CALL {
        return Err(serde::de::Error::custom(format_args!(
            "web_search_requests = {n} is over the {MAX_WEB_SEARCHES_PER_CALL} searches a call can have (capture \
             rejects it too)"
        )));
    }
    Ok(n)
}

/// The instants a ledger can hold: Unix nanoseconds in an `i64`, from 1970 on.
pub(crate) fn representable(t: DateTime<Utc>) -> bool {
    t.timestamp() >= 0 && t.timestamp_nanos_opt().is_some()
}

/// Reads a record's timestamp, refusing one no ledger can hold (before 1970, or past 2262-04-11, where Unix
/// nanoseconds leave an `i64`): a corrupted or hand-made `9999-12-31` line would stretch every window made from
/// the records (day rows past any limit), as a `u64::MAX` token count would poison every sum.
fn deserialize_timestamp<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let t = DateTime::<Utc>::deserialize(deserializer)?;
    if !representable(t) {
        return Err(serde::de::Error::custom(format_args!(
            "timestamp {} is out of range (a record's time is from 1970 to 2262-04-11)",
            t.to_rfc3339()
        )));
    }
    Ok(t)
}

/// Serializes a timestamp exactly as chrono's `Serialize` does (RFC 3339, `Z`, the sub-second digits in groups
/// of 3/6/9 as needed), but as one string written from a stack buffer: chrono's own impl goes through
/// `collect_str`, which escapes the text piece by piece and was ~40% of the journal writer's time per record.
fn serialize_timestamp<S: serde::Serializer>(ts: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 30];
    match timestamp_text(ts, &mut buf) {
        Some(text) => serializer.serialize_str(text),
        // Years chrono writes with a sign or more digits, and leap seconds: chrono's own text.
        None => serde::Serialize::serialize(ts, serializer),
    }
}

/// The text chrono's `Serialize` writes for `ts`, written into `buf`; `None` for the cases left to chrono (years
/// outside 0..=9999, leap seconds).
pub(crate) fn timestamp_text<'b>(ts: &DateTime<Utc>, buf: &'b mut [u8; 30]) -> Option<&'b str> {
    use chrono::{Datelike, Timelike};
    let (year, nanos) = (ts.year(), ts.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return None;
    }
    let mut put = |at: usize, value: u32, digits: usize| {
        let mut v = value;
        for i in (0..digits).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year as u32, 4);
    put(5, ts.month(), 2);
    put(8, ts.day(), 2);
    put(11, ts.hour(), 2);
    put(14, ts.minute(), 2);
    put(17, ts.second(), 2);
    let mut len = 19;
    let frac = if nanos == 0 {
        None
    } else if nanos % 1_000_000 == 0 {
        Some((nanos / 1_000_000, 3))
    } else if nanos % 1_000 == 0 {
        Some((nanos / 1_000, 6))
    } else {
        Some((nanos, 9))
    };
    if let Some((value, digits)) = frac {
        put(20, value, digits);
        buf[19] = b'.';
        len = 20 + digits;
    }
    for (at, sep) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        buf[at] = sep;
    }
    buf[len] = b'Z';
    // Only ASCII digits and separators were written.
    std::str::from_utf8(&buf[..=len]).ok()
}

#[cfg(test)]
mod timestamp_tests {
    use chrono::TimeZone;

    use super::*;

    #[derive(Serialize)]
    struct Fast(#[serde(serialize_with = "serialize_timestamp")] DateTime<Utc>);

    #[test]
    fn timestamps_serialize_exactly_as_chrono_does() {
        let base = Utc.with_ymd_and_hms(2026, 11, 23, 9, 5, 7).unwrap();
        let mut cases = vec![
            base,
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(12, 2, 29, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-44, 3, 15, 12, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
        ];
        for nanos in [1, 10, 999, 1_000, 120_000, 999_999, 1_000_000, 5_000_000, 123_456_789, 999_999_999, 500] {
            cases.push(base + chrono::Duration::nanoseconds(nanos));
        }
        // A leap second (nanosecond field past 1e9).
        cases.push(
            chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
                .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
                .unwrap()
                .and_utc(),
        );
        for ts in cases {
            let ours = serde_json::to_string(&Fast(ts)).unwrap();
            let chrono = serde_json::to_string(&ts).unwrap();
            assert_eq!(ours, chrono, "{ts:?}");
        }
    }
}
