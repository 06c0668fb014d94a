//! Field values as capture keeps them, and the visitor that fills them.
//!
//! Bad values (negative, fractional, NaN, infinite, implausibly large, text where a number belongs) are
//! rejected and counted, never coerced into a wrong figure.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use tracing_core::Field;
use tracing_core::field::Visit;

use super::fields::{CallsitePlan, DIM_COUNT, Role, TokenField};

/// A token count above this is not a real call's usage: it is rejected (a corrupted or sentinel value such as
/// `u64::MAX` would otherwise poison every sum after it).
pub const MAX_TOKENS_PER_FIELD: u64 = 1_000_000_000_000;

/// A web search count above this is not a real call's (each search is a tool round trip inside one response; at
/// the default fee this many would be $1,000): it is rejected, as a token count over [`MAX_TOKENS_PER_FIELD`] is.
pub const MAX_WEB_SEARCHES_PER_CALL: u64 = 100_000;

/// The longest model / provider / id string kept, in bytes; longer values are cut at a character boundary.
pub const MAX_LABEL_LEN: usize = 256;

/// Raw token fields as the span gave them, before normalization.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RawTokens {
    pub(crate) inclusive_input: Option<u64>,
    pub(crate) uncached_input: Option<u64>,
    pub(crate) output: Option<u64>,
    pub(crate) cache_read: Option<u64>,
    pub(crate) cache_write: Option<u64>,
    pub(crate) cache_write_5m: Option<u64>,
    pub(crate) cache_write_1h: Option<u64>,
    pub(crate) reasoning: Option<u64>,
    /// Web searches (`server_tool_use.web_search_requests`): billed per search, not a token kind.
    pub(crate) web_search_requests: Option<u64>,
}

impl RawTokens {
    fn slot(&mut self, kind: TokenField) -> &mut Option<u64> {
        match kind {
            TokenField::InclusiveInput => &mut self.inclusive_input,
            TokenField::UncachedInput => &mut self.uncached_input,
            TokenField::Output => &mut self.output,
            TokenField::CacheRead => &mut self.cache_read,
            TokenField::CacheWrite => &mut self.cache_write,
            TokenField::CacheWrite5m => &mut self.cache_write_5m,
            TokenField::CacheWrite1h => &mut self.cache_write_1h,
            TokenField::Reasoning => &mut self.reasoning,
            TokenField::WebSearchRequests => &mut self.web_search_requests,
        }
    }

    pub(crate) fn any(&self) -> bool {
        *self != RawTokens::default()
    }

    /// Later values replace earlier ones, field by field (streamed usage is cumulative, never summed).
    pub(crate) fn replace_with(&mut self, newer: &RawTokens) {
        macro_rules! take {
            ($($f:ident),*) => { $( if newer.$f.is_some() { self.$f = newer.$f; } )* };
        }
        take!(
            inclusive_input,
            uncached_input,
            output,
            cache_read,
            cache_write,
            cache_write_5m,
            cache_write_1h,
            reasoning,
            web_search_requests
        );
    }
}

/// Contract fields of a call or tool span (or a usage event), as recorded so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct CallFields {
    pub(crate) tokens: RawTokens,
    pub(crate) response_model: Option<Arc<str>>,
    pub(crate) request_model: Option<Arc<str>>,
    pub(crate) model: Option<Arc<str>>,
    pub(crate) provider_name: Option<Arc<str>>,
    pub(crate) system: Option<Arc<str>>,
    pub(crate) operation_name: Option<Arc<str>>,
    pub(crate) response_id: Option<Arc<str>>,
    /// `request_id`, kept apart from `gen_ai.response.id`: a span may carry both for one call.
    pub(crate) request_id: Option<Arc<str>>,
    pub(crate) stream: Option<bool>,
    pub(crate) ttft_us: Option<u64>,
    pub(crate) service_tier: Option<Arc<str>>,
    pub(crate) speed: Option<Arc<str>>,
    pub(crate) inference_geo: Option<Arc<str>>,
    /// `server.address`: where a call went, read for a cloud endpoint's geography.
    pub(crate) server_address: Option<Arc<str>>,
    pub(crate) error_type: Option<Arc<str>>,
    /// `Some(true)` when `otel.status_code` said `ERROR`, `Some(false)` for any other status.
    pub(crate) status_error: Option<bool>,
    pub(crate) tool_name: Option<Arc<str>>,
    /// A panic unwound through the span's guard: the call was left by a panic, caught later or not.
    pub(crate) unwound: bool,
    /// Exited while a request [`TokenMeter::guard`](crate::TokenMeter::guard) refused was dropped (an
    /// `Instrumented` future enters its span to drop what it holds): the span belonged to that request, whose
    /// caller may hold it open past the drop.
    pub(crate) entered_unsent: bool,
}

impl CallFields {
    /// Applies newer values over these: each field the newer set holds replaces this one's.
    pub(crate) fn replace_with(&mut self, newer: CallFields) {
        self.tokens.replace_with(&newer.tokens);
        macro_rules! take {
            ($($f:ident),*) => { $( if newer.$f.is_some() { self.$f = newer.$f; } )* };
        }
        take!(
            response_model,
            request_model,
            model,
            provider_name,
            system,
            operation_name,
            response_id,
            request_id,
            stream,
            ttft_us,
            service_tier,
            speed,
            inference_geo,
            server_address,
            error_type,
            status_error,
            tool_name
        );
    }

    /// Forgets the fields that belong to one call (usage, id, timing, outcome), keeping the ones that describe
    /// the span (request model, provider, operation), for a span that carries several calls in turn. The
    /// response model, service tier, speed, inference geography and stream flag go back to what the span declared
    /// when it was created: recorded later, they described the call they were recorded for (a batch call's
    /// `service_tier` would otherwise price the next call at half price).
    pub(crate) fn reset_per_call(&mut self, declared: &DeclaredPerCall) {
        self.tokens = RawTokens::default();
        self.response_id = None;
        self.request_id = None;
        self.ttft_us = None;
        self.error_type = None;
        self.status_error = None;
        self.unwound = false;
        self.response_model.clone_from(&declared.response_model);
        self.service_tier.clone_from(&declared.service_tier);
        self.speed.clone_from(&declared.speed);
        self.inference_geo.clone_from(&declared.inference_geo);
        self.stream = declared.stream;
    }
}

/// The fields a call span declares when it is created that a later call may restate for itself: each call of a
/// long-lived span starts from these (see [`CallFields::reset_per_call`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct DeclaredPerCall {
    response_model: Option<Arc<str>>,
    service_tier: Option<Arc<str>>,
    speed: Option<Arc<str>>,
    inference_geo: Option<Arc<str>>,
    stream: Option<bool>,
}

impl DeclaredPerCall {
    /// What `fields` declare of these; `None` when none (most spans: the default already says so).
    pub(crate) fn of(fields: &CallFields) -> Option<Self> {
        let any = fields.response_model.is_some()
            || fields.service_tier.is_some()
            || fields.speed.is_some()
            || fields.inference_geo.is_some()
            || fields.stream.is_some();
        any.then(|| DeclaredPerCall {
            response_model: fields.response_model.clone(),
            service_tier: fields.service_tier.clone(),
            speed: fields.speed.clone(),
            inference_geo: fields.inference_geo.clone(),
            stream: fields.stream,
        })
    }
}

/// Dimension values of one span.
#[derive(Debug, Clone, Default)]
pub(crate) struct DimValues {
    pub(crate) builtin: [Option<Arc<str>>; DIM_COUNT],
    /// Extra dimensions by their index in the meter's list.
    pub(crate) extra: Vec<(u8, Arc<str>)>,
    /// `gen_ai.conversation.id`: the session when no span of the call's has `session.id`.
    pub(crate) conversation: Option<Arc<str>>,
}

impl DimValues {
    pub(crate) fn replace_with(&mut self, newer: DimValues) {
        for (slot, value) in self.builtin.iter_mut().zip(newer.builtin) {
            if value.is_some() {
                *slot = value;
            }
        }
        if newer.conversation.is_some() {
            self.conversation = newer.conversation;
        }
        for (idx, value) in newer.extra {
            match self.extra.iter_mut().find(|(i, _)| *i == idx) {
                Some(slot) => slot.1 = value,
                None => self.extra.push((idx, value)),
            }
        }
    }
}

/// What a visit rejected.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rejections {
    pub(crate) values: u32,
}

/// Fills [`CallFields`] and [`DimValues`] in place from one set of values, using the callsite's plan.
pub(crate) struct FieldVisitor<'a> {
    pub(crate) plan: &'static CallsitePlan,
    pub(crate) extra_names: &'a [Arc<str>],
    pub(crate) max_dim_len: usize,
    pub(crate) call: &'a mut CallFields,
    pub(crate) dims: &'a mut DimValues,
    pub(crate) rejected: Rejections,
    /// Leave values shown through `Debug`/`Display` for a visit with no lock held ([`RenderedOnly`]): rendering
    /// runs the application's code, which may log, and a layer reading the span for that event would wait on the
    /// span's lock for good. `deferred` says one was left.
    pub(crate) defer_rendering: bool,
    pub(crate) deferred: bool,
}

/// Visits only the values a [`FieldVisitor`] renders (`%value`, `?value`): those a visit with
/// `defer_rendering` left.
pub(crate) struct RenderedOnly<'a>(pub(crate) FieldVisitor<'a>);

impl Visit for RenderedOnly<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.record_debug(field, value);
    }
    fn record_u64(&mut self, _: &Field, _: u64) {}
    fn record_i64(&mut self, _: &Field, _: i64) {}
    fn record_u128(&mut self, _: &Field, _: u128) {}
    fn record_i128(&mut self, _: &Field, _: i128) {}
    fn record_f64(&mut self, _: &Field, _: f64) {}
    fn record_bool(&mut self, _: &Field, _: bool) {}
    fn record_str(&mut self, _: &Field, _: &str) {}
    fn record_error(&mut self, _: &Field, _: &(dyn std::error::Error + 'static)) {}
}

impl fmt::Debug for FieldVisitor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldVisitor").finish_non_exhaustive()
    }
}

/// Cuts a string to at most `max` bytes at a character boundary.
pub(crate) fn capped(value: &str, max: usize) -> &str {
    if value.len() <= max {
        return value;
    }
    let mut end = max;
    while end > 0 && !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

enum Num {
    Int(u64),
    Float(f64),
    Bad,
}

impl<'a> FieldVisitor<'a> {
    pub(crate) fn new(
        plan: &'static CallsitePlan,
        extra_names: &'a [Arc<str>],
        max_dim_len: usize,
        call: &'a mut CallFields,
        dims: &'a mut DimValues,
    ) -> Self {
        let rejected = Rejections::default();
        FieldVisitor { plan, extra_names, max_dim_len, call, dims, rejected, defer_rendering: false, deferred: false }
    }

    fn reject(&mut self) {
        self.rejected.values = self.rejected.values.saturating_add(1);
    }

    fn number(&mut self, role: Role, value: Num) {
        match role {
            Role::Token(kind) => {
                let max = match kind {
                    TokenField::WebSearchRequests => MAX_WEB_SEARCHES_PER_CALL,
                    _ => MAX_TOKENS_PER_FIELD,
                };
                let tokens = match value {
                    Num::Int(v) if v <= max => Some(v),
                    Num::Float(f) if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f <= max as f64 => Some(f as u64),
                    _ => None,
                };
                match tokens {
                    Some(v) => *self.call.tokens.slot(kind) = Some(v),
                    None => self.reject(),
                }
            }
            Role::TimeToFirstChunk => {
                let secs = match value {
                    Num::Int(v) => Some(v as f64),
                    Num::Float(f) => Some(f),
                    Num::Bad => None,
                };
                match secs {
                    // A day is far beyond any real first token; beyond it the value is garbage.
                    Some(s) if s.is_finite() && (0.0..=86_400.0).contains(&s) => {
                        self.call.ttft_us = Some((s * 1_000_000.0).round() as u64)
                    }
                    _ => self.reject(),
                }
            }
            Role::Other => {}
            // Numbers for text fields (ids, dimensions) are kept as their decimal text.
            role => match value {
                Num::Int(v) => self.text(role, itoa_buf(v).as_str()),
                _ => self.reject(),
            },
        }
    }

    fn text(&mut self, role: Role, value: &str) {
        // Low-cardinality labels (models, providers, operations, tiers, error types) are interned per thread;
        // ids are not, since each is new.
        let label = || -> Option<Arc<str>> {
            let v = capped(value, MAX_LABEL_LEN);
            if v.is_empty() { None } else { Some(intern(v)) }
        };
        match role {
            Role::Token(_) | Role::TimeToFirstChunk => {
                // An `Option` recorded with `?` (the SDKs' usage fields are optional): `Some(n)` is n, `None` is
                // no value.
                let v = value.trim();
                if v == "None" {
                    return;
                }
                let v = v.strip_prefix("Some(").and_then(|v| v.strip_suffix(')')).unwrap_or(v).trim();
                match v.parse::<u64>() {
                    Ok(n) => self.number(role, Num::Int(n)),
                    Err(_) => match v.parse::<f64>() {
                        Ok(f) => self.number(role, Num::Float(f)),
                        Err(_) => self.reject(),
                    },
                }
            }
            Role::ResponseModel => self.call.response_model = label(),
            Role::RequestModel => self.call.request_model = label(),
            Role::Model => self.call.model = label(),
            Role::ProviderName => self.call.provider_name = label(),
            Role::System => self.call.system = label(),
            Role::OperationName => self.call.operation_name = label(),
            Role::ResponseId | Role::RequestId => {
                let v = capped(value, MAX_LABEL_LEN);
                let id = (!v.is_empty()).then(|| Arc::from(v));
                match role {
                    Role::ResponseId => self.call.response_id = id,
                    _ => self.call.request_id = id,
                }
            }
            Role::ServiceTier => self.call.service_tier = label(),
            Role::Speed => self.call.speed = label(),
            Role::InferenceGeo => self.call.inference_geo = label(),
            Role::ServerAddress => self.call.server_address = label(),
            Role::ToolName => self.call.tool_name = label(),
            // A flag rendered as text (`error.type = ?failed`, `?Some(false)`): as `record_bool` reads it.
            Role::ErrorType if value.trim().eq_ignore_ascii_case("false") => {}
            Role::ErrorType if value.trim().eq_ignore_ascii_case("true") => {
                self.call.error_type = Some(Arc::from("error"))
            }
            Role::ErrorType => {
                // A type, never a message: `error.type = %err` hands over the error's whole text, which may
                // quote the prompt. An empty one still says "this failed".
                let kind = error_type_label(value);
                self.call.error_type = Some(if kind.is_empty() { Arc::from("error") } else { intern(kind) })
            }
            Role::StatusCode => self.call.status_error = Some(value.trim().eq_ignore_ascii_case("error")),
            Role::Stream => match value.trim() {
                v if v.eq_ignore_ascii_case("true") => self.call.stream = Some(true),
                v if v.eq_ignore_ascii_case("false") => self.call.stream = Some(false),
                _ => self.reject(),
            },
            Role::Dim(dim) => {
                let v = capped(value, self.max_dim_len);
                if !v.is_empty() {
                    self.dims.builtin[dim as usize] = Some(Arc::from(v));
                }
            }
            Role::Conversation => {
                let v = capped(value, self.max_dim_len);
                if !v.is_empty() {
                    self.dims.conversation = Some(Arc::from(v));
                }
            }
            Role::Other => {}
        }
    }

    /// An integer outside `u64` (a negative one, a `u128` id such as a UUID's): no count or time, but a text
    /// field's value like any other number.
    fn wide_integer(&mut self, field: &Field, decimal: &str) {
        match self.plan.role(field) {
            Role::Other => self.other_text(field, decimal),
            role @ (Role::Token(_) | Role::TimeToFirstChunk) => self.number(role, Num::Bad),
            role => self.text(role, decimal),
        }
    }

    /// `server.address`: a host for the call's geography, and the value of an extra dimension of that name, if the
    /// meter has one. Out of line: most spans never record it, and `record_str` is on every call's path.
    #[inline(never)]
    fn server_address(&mut self, field: &Field, value: &str) {
        self.text(Role::ServerAddress, value);
        self.other_text(field, value);
    }

    fn other_text(&mut self, field: &Field, value: &str) {
        if self.extra_names.is_empty() {
            return;
        }
        if let Some(idx) = self.extra_names.iter().position(|n| &**n == field.name()) {
            let v = capped(value, self.max_dim_len);
            if !v.is_empty() {
                let idx = idx as u8;
                match self.dims.extra.iter_mut().find(|(i, _)| *i == idx) {
                    Some(slot) => slot.1 = Arc::from(v),
                    None => self.dims.extra.push((idx, Arc::from(v))),
                }
            }
        }
    }
}

/// Distinct labels one thread keeps interned; past this the cache starts over (a flood of distinct values costs
/// allocations, never unbounded memory).
const MAX_INTERNED_PER_THREAD: usize = 512;

/// Slots of the per-thread front cache, keyed by the value's address (string literals at a callsite keep theirs).
const FRONT_SLOTS: usize = 64;

struct Labels {
    /// Direct-mapped by address; a hit is confirmed by comparing the bytes, so a reused address never returns a
    /// stale label.
    front: [Option<(usize, Arc<str>)>; FRONT_SLOTS],
    by_value: FxHashMap<Box<str>, Arc<str>>,
}

thread_local! {
    static LABELS: RefCell<Labels> = const {
        RefCell::new(Labels { front: [const { None }; FRONT_SLOTS], by_value: FxHashMap::with_hasher(rustc_hash::FxBuildHasher) })
    };
}

/// A shared copy of a low-cardinality label, allocated once per thread.
pub(super) fn intern(value: &str) -> Arc<str> {
    let addr = value.as_ptr() as usize;
    let slot = (addr >> 3) % FRONT_SLOTS;
    LABELS
        .try_with(|cell| {
            let mut labels = cell.try_borrow_mut().ok()?;
            if let Some((a, v)) = &labels.front[slot]
                && *a == addr
                && **v == *value
            {
                return Some(v.clone());
            }
            let v = match labels.by_value.get(value) {
                Some(v) => v.clone(),
                None => {
                    if labels.by_value.len() >= MAX_INTERNED_PER_THREAD {
                        labels.by_value.clear();
                    }
                    let v: Arc<str> = Arc::from(value);
                    labels.by_value.insert(Box::from(value), v.clone());
                    v
                }
            };
            labels.front[slot] = Some((addr, v.clone()));
            Some(v)
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| Arc::from(value))
}

/// A stack buffer holding an integer's decimal text.
struct ItoaBuf {
    buf: [u8; 20],
    start: usize,
}

impl ItoaBuf {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or("")
    }
}

fn itoa_buf(mut v: u64) -> ItoaBuf {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    ItoaBuf { buf, start: i }
}

impl Visit for FieldVisitor<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match self.plan.role(field) {
            Role::Other => self.other_text(field, itoa_buf(value).as_str()),
            role => self.number(role, Num::Int(value)),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        match u64::try_from(value) {
            Ok(v) => self.record_u64(field, v),
            // A negative count or time is impossible, but a negative id is an id (a Telegram group chat as the
            // session): text fields keep it as its decimal text, as they keep positive numbers.
            Err(_) => self.wide_integer(field, itoa::Buffer::new().format(value)),
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match u64::try_from(value) {
            Ok(v) => self.record_u64(field, v),
            Err(_) => self.wide_integer(field, itoa::Buffer::new().format(value)),
        }
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        match u64::try_from(value) {
            Ok(v) => self.record_u64(field, v),
            Err(_) => self.wide_integer(field, itoa::Buffer::new().format(value)),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        match self.plan.role(field) {
            // An extra dimension given as a number (`score = 0.5`): its text, as integers and strings are kept.
            Role::Other if !self.extra_names.is_empty() => self.other_text(field, &value.to_string()),
            // Not a host: `server.address` is read for a geography only, and never counted rejected.
            Role::Other | Role::ServerAddress => {}
            role @ (Role::Token(_) | Role::TimeToFirstChunk) => self.number(role, Num::Float(value)),
            // A dimension given as a number keeps its text (`project = 3.0` as `?3.0` is kept, and integers are).
            role @ (Role::Dim(_) | Role::Conversation) => self.text(role, &value.to_string()),
            _ => self.reject(),
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        match self.plan.role(field) {
            Role::Other => self.other_text(field, if value { "true" } else { "false" }),
            Role::ServerAddress => {}
            role @ (Role::Dim(_) | Role::Conversation) => self.text(role, if value { "true" } else { "false" }),
            Role::Stream => self.call.stream = Some(value),
            // `error.type = true` says "this failed" without a type; `false` says nothing.
            Role::ErrorType => {
                if value {
                    self.call.error_type = Some(Arc::from("error"));
                }
            }
            _ => self.reject(),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match self.plan.role(field) {
            Role::Other => self.other_text(field, value),
            Role::ServerAddress => self.server_address(field, value),
            role => self.text(role, value),
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        match self.plan.role(field) {
            // The error's type, never its message (which may quote prompt text).
            Role::ErrorType => self.call.error_type = Some(Arc::from("error")),
            Role::Other | Role::ServerAddress => {}
            _ => {
                let _ = value;
                self.reject()
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let role = self.plan.role(field);
        if role == Role::Other && self.extra_names.is_empty() {
            return;
        }
        if role == Role::Other && !self.extra_names.iter().any(|n| &**n == field.name()) {
            return;
        }
        if self.defer_rendering {
            self.deferred = true;
            return;
        }
        // `%value` and `?value` arrive here; render once, bounded.
        // Room for `Some("` and `")` around a value of the longest kept length.
        let mut text = BoundedString::new(MAX_LABEL_LEN.max(self.max_dim_len).saturating_add(8));
        let _ = fmt::write(&mut text, format_args!("{value:?}"));
        // An `Option` recorded with `?` (`#[instrument]` records an `Option<String>` argument so) is its value:
        // `None` is no value, `Some("acme")` is `acme`. Left as text, `error.type = ?None` failed the call and
        // `project = ?Some("acme")` named a project `Some("acme")` that no budget scope matches.
        let Some((s, quoted)) = debug_option(&text.0) else { return };
        // A string's `Debug` escapes `\` and `"`: `?Some(r"C:\work")` is the project `C:\work`, not `C:\\work`
        // (which no budget scope or filter names).
        // Text that is no string's rendering (an `OsStr`'s `\xFF`, a `Display` of JSON's `\b`) stays as it came.
        let unescaped = if quoted && s.contains('\\') { unescape_debug(s) } else { None };
        let s = unescaped.as_deref().unwrap_or(s);
        // A label is an identifier. A struct's `Debug` (`model = ?spec`, where the spec holds a system prompt, as
        // `#[instrument]` records an argument) or a sentence is not one, and would put that text in every record,
        // the journal and the metrics. (Checked here only: a `&str` recorded as it is costs no scan.)
        let is_label = matches!(
            role,
            Role::ResponseModel
                | Role::RequestModel
                | Role::Model
                | Role::ProviderName
                | Role::System
                | Role::OperationName
                | Role::ServiceTier
                | Role::Speed
                | Role::InferenceGeo
                | Role::ServerAddress
                | Role::ToolName
        );
        // A dimension takes a string as it is (a session id, a project path, a `%name` with spaces: `%` arrives
        // here too, unquoted), but not a struct's or a collection's rendering: `#[instrument]` records
        // `agent: &Agent` as `agent = ?agent`, and the agent's `Debug` (its instructions, a message history)
        // became the agent dimension in every record.
        // Only a value holding a `{`, `(` or `[` (as every struct's, tuple's and collection's rendering does) is
        // rendered twice: not a plain `%id`, and not an `Option`'s own `Some(..)` around a number (`s` is what it
        // holds), whose alternate form spreads over lines too.
        // An id likewise (it keeps a `\` a label may not hold): `gen_ai.response.id = ?response` put the message's
        // text in the record's id, and a rendering that changed between records split the span into calls.
        let structured = matches!(
            role,
            Role::Dim(_) | Role::Conversation | Role::Other | Role::ServerAddress | Role::ResponseId | Role::RequestId
        ) && !quoted
            && s.contains(['{', '(', '['])
            && {
                // A derived or builder-made `Debug` spreads over lines in its alternate form (`{:#?}`); text shown
                // with `%` (a `Display`) ignores the flag.
                let mut alternate = BoundedString::new(MAX_LABEL_LEN.max(self.max_dim_len).saturating_add(8));
                let _ = fmt::write(&mut alternate, format_args!("{value:#?}"));
                alternate.0.contains('\n') && !text.0.contains('\n')
            };
        match role {
            // A `Url` recorded with `?` is no host: not read, and not counted rejected (the field is optional).
            Role::ServerAddress if structured => {}
            _ if structured => self.reject(),
            Role::Other => self.other_text(field, s),
            // A host is a label; the same text may fill a dimension of your own named `server.address`.
            Role::ServerAddress => {
                if label_text(s.trim()) {
                    self.text(role, s);
                }
                self.other_text(field, s);
            }
            _ if is_label && !label_text(s.trim()) => self.reject(),
            role => self.text(role, s),
        }
    }
}

/// A `Debug` rendering's value, and whether it was a quoted string: `None` is none, `Some(x)` is `x`, and a
/// string's quotes go.
fn debug_option(rendered: &str) -> Option<(&str, bool)> {
    let s = rendered.trim();
    if s == "None" {
        return None;
    }
    // The rendering is bounded: a long value may have lost its closing `)` and `"`.
    let s = match s.strip_prefix("Some(") {
        Some(inner) => inner.strip_suffix(')').unwrap_or(inner).trim(),
        None => s,
    };
    Some(match s.strip_prefix('"') {
        Some(inner) => (inner.strip_suffix('"').unwrap_or(inner), true),
        None => (s, false),
    })
}

/// A string's `Debug` rendering (without its quotes) read back: `\\`, `\"`, `\'`, `\n`, `\r`, `\t`, `\0` and
/// `\u{…}` undone. `None` for any other escape (not a string's rendering). An escape cut off at the end (the
/// rendering is bounded) ends the text there.
fn unescape_debug(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else { break };
        out.push(match e {
            '\\' | '"' | '\'' => e,
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            '0' => '\0',
            'u' => {
                let rest = chars.as_str();
                let Some(hex) = rest.strip_prefix('{') else { return rest.is_empty().then_some(out) };
                let Some(end) = hex.find('}') else { return Some(out) };
                let c = u32::from_str_radix(&hex[..end], 16).ok().and_then(char::from_u32)?;
                chars = hex[end + 1..].chars();
                c
            }
            _ => return None,
        });
    }
    Some(out)
}

/// Whether `s` can be a model id, provider, operation, tier, speed or tool name: no whitespace, control
/// characters, quotes, brackets, braces, commas or semicolons (what a `Debug` rendering or prose has).
fn label_text(s: &str) -> bool {
    s.bytes().all(|b| {
        b > b' '
            && b != 0x7f
            && !matches!(b, b'{' | b'}' | b'"' | b'\'' | b'(' | b')' | b'[' | b']' | b',' | b';' | b'\\')
    })
}

/// Longest `error.type` kept.
const MAX_ERROR_TYPE_LEN: usize = 64;

/// The type label at the front of an `error.type` value: its leading run of ASCII letters, digits and
/// `_ . : - /` (`overloaded_error`, `429`, `std::io::Error`, `Error` of `Error { .. }`), cut before a `": "`
/// and without trailing punctuation, at most 64 bytes; empty when the value starts otherwise. What follows (an
/// error message, which may quote prompt text) is never kept, and neither is a first word that is the start of
/// a message rather than a type: a run followed by more text (`Summarize the … was rejected`) is kept only when
/// it is a number (`429 Too Many Requests`) or what follows opens with `:`, `(`, `{`, `[`, `- ` or a new line; a run
/// with a `/` never: a URL, with or without its scheme, or a file path (`/home/…`, `docs/…`, `C:/…`), nor a host
/// and port (`api.example.com:443`). A bare file name (`merger.pdf: not found`) cannot be told from a dotted type
/// name (`requests.exceptions.ConnectionError`) and is kept.
///
/// A first word before more text must also look like a type ([`looks_like_a_type`]): `JaneRoe: prompt contains …`
/// kept a name, which `error.type` exports as a metric label. A number is a code only up to 5 digits, alone or not:
/// `4111111111111111 card declined` kept a card number.
pub(crate) fn error_type_label(value: &str) -> &str {
    let v = value.trim_start();
    let mut end = 0;
    for (i, b) in v.bytes().enumerate() {
        let label_byte = b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-' | b'/');
        if !label_byte || i == MAX_ERROR_TYPE_LEN {
            break;
        }
        end = i + 1;
    }
    let run = &v[..end];
    let label = run.trim_end_matches(['.', ':', '-', '/']);
    let rest = &v[end..];
    // Cut at the length cap: a long type name, not a message.
    let whole = rest.is_empty() || end == MAX_ERROR_TYPE_LEN;
    let next = rest.trim_start_matches([' ', '\t']);
    let number = !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit());
    if number {
        return if label.len() <= MAX_CODE_DIGITS { label } else { "" };
    }
    let a_type = whole
        // `Io(Custom { … })`: a variant as `Debug` writes it, no space before its fields.
        || rest.starts_with(['(', '{', '['])
        || looks_like_a_type(label)
            && (run.len() > label.len() && run[label.len()..].starts_with(':')
                || next.starts_with(['(', '{', '[', '\n', '\r'])
                || next.starts_with("- "));
    // A URL or a file path (`/home/…: not found`, `docs/merger.pdf: not found`) is a place, not a type, and so
    // is a host and port (`api.example.com:443: connection reset`).
    let host_port = label
        .rsplit_once(':')
        .is_some_and(|(host, port)| host.contains('.') && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    if !a_type || label.contains('/') || host_port {
        return "";
    }
    label
}

/// Longest number read as an error code (`429`, `10054`); a longer one may be a card, phone or account number.
const MAX_CODE_DIGITS: usize = 5;

/// Whether a word before an error message names a type rather than someone or something: `snake_case`, a dotted
/// or `::` path, or a word ending as error kinds do (`RateLimitError`, `Timeout`, `overloaded`).
fn looks_like_a_type(word: &str) -> bool {
    const ENDINGS: [&str; 22] = [
        "error",
        "exception",
        "err",
        "timeout",
        "fault",
        "failure",
        "failed",
        "denied",
        "refused",
        "overloaded",
        "unavailable",
        "invalid",
        "exceeded",
        "expired",
        "closed",
        "reset",
        "aborted",
        "cancelled",
        "canceled",
        "limited",
        "forbidden",
        "unauthorized",
    ];
    let lower = word.to_ascii_lowercase();
    word.contains(['_', '.']) || word.contains("::") || ENDINGS.iter().any(|e| lower.ends_with(e))
}

/// A `fmt::Write` that keeps at most `cap` bytes and drops the rest (a 10 KB `Debug` value costs no 10 KB copy).
struct BoundedString(String, usize);

impl BoundedString {
    fn new(cap: usize) -> Self {
        BoundedString(String::new(), cap)
    }
}

impl fmt::Write for BoundedString {
    /// Fails once full, which ends the rendering: a derived `Debug` stops at the first error, so a value holding a
    /// long message history is not rendered to its end (while the span's extensions are locked) to keep 264 bytes.
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let kept = capped(s, self.1.saturating_sub(self.0.len()));
        self.0.push_str(kept);
        if kept.len() < s.len() { Err(fmt::Error) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_debug_rendering_reads_back_as_its_string() {
        for value in ["plain", r"C:\work", "o\"neil", "tab\there\n\r\0", "bell\u{7}é🦀", "'quoted'", "\\"] {
            let rendered = format!("{value:?}");
            assert_eq!(unescape_debug(&rendered[1..rendered.len() - 1]).as_deref(), Some(value), "{rendered}");
        }
        // A rendering cut inside an escape ends there; an escape no string's `Debug` writes is not one.
        assert_eq!(unescape_debug(r"ab\").as_deref(), Some("ab"));
        assert_eq!(unescape_debug(r"ab\u").as_deref(), Some("ab"));
        assert_eq!(unescape_debug(r"ab\u{1F9").as_deref(), Some("ab"));
        assert_eq!(unescape_debug(r"ab\x41"), None);
        assert_eq!(unescape_debug(r"ab\u{110000}x"), None);
    }

    #[test]
    fn capped_respects_char_boundaries() {
        assert_eq!(capped("héllo", 2), "h");
        assert_eq!(capped("abc", 10), "abc");
        assert_eq!(capped("", 0), "");
    }

    #[test]
    fn error_types_keep_the_label_never_the_message() {
        for (value, label) in [
            ("overloaded_error", "overloaded_error"),
            ("  429 Too Many Requests", "429"),
            ("std::io::Error", "std::io::Error"),
            ("overloaded: the prompt was 'SECRET'", "overloaded"),
            ("Error { kind: Timeout, message: \"SECRET\" }", "Error"),
            ("rate_limit_error.", "rate_limit_error"),
            ("'SECRET' was refused", ""),
            // A message's first word is not a type, nor is a URL.
            ("Summarize the quarterly report was rejected", ""),
            ("connection reset by peer", ""),
            ("https://api.example.com/v1/messages/SECRET: connection reset", ""),
            ("timeout (after 30s)", "timeout"),
            ("io::Error: broken pipe", "io::Error"),
            ("Timeout", "Timeout"),
            ("RateLimitError - too many requests", "RateLimitError"),
            ("overloaded_error\n\nCaused by:\n    SECRET", "overloaded_error"),
            ("/home/alice/acme_merger.pdf: not found", ""),
            ("docs/acme_merger.pdf: not found", ""),
            ("./clients/acme/merger_terms.docx: permission denied", ""),
            ("api.example.com/v1/files/SECRET: connection reset", ""),
            ("C:/Users/alice/acme.pdf: not found", ""),
            // A name or a long number before a message is not a type (an `error.type` is a metric label).
            ("JaneRoe: prompt contains disallowed content", ""),
            ("alice: rejected", ""),
            ("JaneRoe (patient) was refused", ""),
            ("4111111111111111 card declined for alice", ""),
            ("4111111111111111", ""),
            ("10054 connection reset", "10054"),
            ("Io(Custom { kind: Other })", "Io"),
            ("Overloaded: try again", "Overloaded"),
            ("RateLimited - slow down", "RateLimited"),
            ("api.example.com:443: connection reset", ""),
            ("10.0.0.7:5432: connection refused", ""),
            ("http.client.RemoteDisconnected: closed", "http.client.RemoteDisconnected"),
            ("", ""),
            ("é", ""),
        ] {
            assert_eq!(error_type_label(value), label, "{value}");
        }
        assert_eq!(error_type_label(&"a".repeat(100)).len(), MAX_ERROR_TYPE_LEN);
    }

    #[test]
    fn itoa_renders() {
        assert_eq!(itoa_buf(0).as_str(), "0");
        assert_eq!(itoa_buf(u64::MAX).as_str(), "18446744073709551615");
    }

    #[test]
    fn later_tokens_replace_earlier() {
        let mut a = RawTokens { output: Some(5), cache_read: Some(10), ..Default::default() };
        a.replace_with(&RawTokens { output: Some(50), ..Default::default() });
        assert_eq!(a.output, Some(50));
        assert_eq!(a.cache_read, Some(10));
    }
}
