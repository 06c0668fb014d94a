//! The capture contract's field names and the per-callsite plan built from them. The README's "The capture
//! contract, in brief" says what each means, how values are normalized and which odd shapes are handled.
//!
//! A callsite's fields are classified once, when the callsite is first seen; the hot path then looks a field's
//! role up by its index in the callsite's field set instead of comparing names.

use std::cell::RefCell;

use parking_lot::RwLock;
use rustc_hash::FxHashMap as HashMap;
use tracing_core::callsite::Identifier;
use tracing_core::{Field, Metadata};

// === field names (DESIGN.md, "Capture contract") ===

/// The built-in dimensions' names, as records, budget scopes, reports and metric settings name them (a
/// dimension of the application's own, added with `with_dimension`, must not take one of these names).
pub const BUILTIN_DIMENSIONS: [&str; 7] = ["session", "user", "tenant", "project", "agent", "operation", "task"];

/// Semconv input tokens, cache reads and writes *included*.
pub const SEMCONV_INPUT: &str = "gen_ai.usage.input_tokens";
/// Semconv output tokens.
pub const SEMCONV_OUTPUT: &str = "gen_ai.usage.output_tokens";
/// Semconv cache-read input tokens.
pub const SEMCONV_CACHE_READ: &str = "gen_ai.usage.cache_read.input_tokens";
/// Semconv cache-creation input tokens (all lifetimes).
pub const SEMCONV_CACHE_WRITE: &str = "gen_ai.usage.cache_creation.input_tokens";
/// Semconv reasoning output tokens.
pub const SEMCONV_REASONING: &str = "gen_ai.usage.reasoning.output_tokens";
/// Reasoning tokens (a part of output) under the name rig (`rig-core`) records them.
pub const RIG_REASONING: &str = "gen_ai.usage.reasoning_tokens";
/// Cache-read input tokens (a part of the inclusive input) under the name rig 0.33 recorded them (rig PR #1497;
/// 0.34 moved to the semconv name).
pub const RIG_CACHED: &str = "gen_ai.usage.cached_tokens";
/// Cache-read input tokens (a part of the inclusive input) under Sentry's name, an alias of the semconv one in its
/// conventions.
pub const SENTRY_CACHED: &str = "gen_ai.usage.input_tokens.cached";
/// Cache-creation input tokens (a part of the inclusive input) under Sentry's name, an alias of the semconv one.
pub const SENTRY_CACHE_WRITE: &str = "gen_ai.usage.input_tokens.cache_write";
/// Legacy semconv prompt tokens (inclusive).
pub const LEGACY_PROMPT: &str = "gen_ai.usage.prompt_tokens";
/// Legacy semconv completion tokens.
pub const LEGACY_COMPLETION: &str = "gen_ai.usage.completion_tokens";
/// Cache-read input tokens as OpenLLMetry spells them (beside an inclusive `gen_ai.usage.input_tokens` or
/// `gen_ai.usage.prompt_tokens`).
pub const LEGACY_CACHE_READ: &str = "gen_ai.usage.cache_read_input_tokens";
/// Cache-creation input tokens as OpenLLMetry spells them.
pub const LEGACY_CACHE_WRITE: &str = "gen_ai.usage.cache_creation_input_tokens";
/// OpenAI-style prompt tokens (inclusive).
pub const OPENAI_PROMPT: &str = "prompt_tokens";
/// OpenAI-style completion tokens.
pub const OPENAI_COMPLETION: &str = "completion_tokens";
/// OpenAI-style cached prompt tokens (a part of `prompt_tokens`): cache reads.
pub const OPENAI_CACHED: &str = "prompt_tokens_details.cached_tokens";
/// OpenAI-style reasoning tokens (a part of `completion_tokens`).
pub const OPENAI_REASONING: &str = "completion_tokens_details.reasoning_tokens";
/// Anthropic raw input tokens: *uncached* input only.
pub const ANTHROPIC_INPUT: &str = "input_tokens";
/// Anthropic raw output tokens.
pub const ANTHROPIC_OUTPUT: &str = "output_tokens";
/// Anthropic raw cache-read tokens.
pub const ANTHROPIC_CACHE_READ: &str = "cache_read_input_tokens";
/// Anthropic raw cache-creation tokens (all lifetimes).
pub const ANTHROPIC_CACHE_WRITE: &str = "cache_creation_input_tokens";
/// Anthropic raw cache-creation tokens with the 5-minute lifetime.
pub const ANTHROPIC_CACHE_WRITE_5M: &str = "cache_creation.ephemeral_5m_input_tokens";
/// Anthropic raw cache-creation tokens with the 1-hour lifetime.
pub const ANTHROPIC_CACHE_WRITE_1H: &str = "cache_creation.ephemeral_1h_input_tokens";
/// Anthropic-style thinking tokens (a part of output).
pub const ANTHROPIC_THINKING: &str = "output_tokens_details.thinking_tokens";
/// Anthropic raw web searches (server-side `web_search` tool): not tokens, but billed per search.
pub const ANTHROPIC_WEB_SEARCH_REQUESTS: &str = "server_tool_use.web_search_requests";

/// The model that served the response (preferred for pricing).
pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
/// The model requested.
pub const REQUEST_MODEL: &str = "gen_ai.request.model";
/// A bare `model` field.
pub const MODEL: &str = "model";
/// Semconv provider name.
pub const PROVIDER_NAME: &str = "gen_ai.provider.name";
/// Older semconv provider field.
pub const SYSTEM: &str = "gen_ai.system";
/// Semconv operation name (`chat`, `execute_tool`, …).
pub const OPERATION_NAME: &str = "gen_ai.operation.name";
/// Response id.
pub const RESPONSE_ID: &str = "gen_ai.response.id";
/// A provider request id.
pub const REQUEST_ID: &str = "request_id";
/// Whether the request streamed.
pub const REQUEST_STREAM: &str = "gen_ai.request.stream";
/// Time to first chunk, seconds.
pub const TIME_TO_FIRST_CHUNK: &str = "gen_ai.response.time_to_first_chunk";
/// Service tier (`batch` is half price).
pub const SERVICE_TIER: &str = "service_tier";
/// Speed (`fast` for fast mode).
pub const SPEED: &str = "speed";
/// Where inference ran: `us` for the Messages API's US-only inference, a cloud region (`us-east5`), `global`.
/// A geography is priced at 1.1x on Claude Sonnet 4.5 and later ([`crate::pricing::REGIONAL_MULTIPLIER`]).
pub const INFERENCE_GEO: &str = "inference_geo";
/// The host the request went to: a Google Vertex AI regional endpoint's (`us-east5-aiplatform.googleapis.com`)
/// says where inference ran, when `inference_geo` does not. Unlike the other contract fields, it may also name
/// an extra dimension (`with_dimension("server.address")`), which then keeps the host.
pub const SERVER_ADDRESS: &str = "server.address";
/// Error type: its presence makes the outcome an error.
pub const ERROR_TYPE: &str = "error.type";
/// OTel status code: `ERROR` makes the outcome an error.
pub const STATUS_CODE: &str = "otel.status_code";
/// The one field of the event `#[tracing::instrument(err)]` emits when the function returns `Err` (an `ERROR`
/// event with no message): inside a call span, it marks the call failed (its text is never read).
pub const INSTRUMENT_ERR_FIELD: &str = "error";
/// Semconv tool name (on `execute_tool` spans).
pub const TOOL_NAME: &str = "gen_ai.tool.name";
/// The session (attribution dimensions, from here to [`TASK_FIELD`], are read on the call span or its nearest
/// ancestor that has them): `session.id`, or semconv's `gen_ai.conversation.id`. `session.id` on any of the
/// call's spans wins over a nearer `gen_ai.conversation.id`: a sub-agent's own conversation inside the user's
/// session is still that session's spend (its budget's, its reports').
pub const SESSION_FIELDS: [&str; 2] = [SESSION_ID, CONVERSATION_ID];
const SESSION_ID: &str = "session.id";
const CONVERSATION_ID: &str = "gen_ai.conversation.id";
/// The user: `user.id`, or OTel's `enduser.id`.
pub const USER_FIELDS: [&str; 2] = ["user.id", "enduser.id"];
/// The tenant.
pub const TENANT_FIELD: &str = "tenant.id";
/// The project.
pub const PROJECT_FIELD: &str = "project";
/// The agent: semconv's `gen_ai.agent.name`, or `agent`.
pub const AGENT_FIELDS: [&str; 2] = ["gen_ai.agent.name", "agent"];
/// The application's own operation (not `gen_ai.operation.name`).
pub const OPERATION_FIELD: &str = "operation";
/// The task: a span with this field is a task, whose close yields a `TaskRecord`.
pub const TASK_FIELD: &str = "task";
/// Anthropic's usage and tier fields are also read with this prefix (`usage.input_tokens`,
/// `usage.service_tier`), as the response's `usage` object nests them.
pub const USAGE_PREFIX: &str = "usage.";
/// The `gen_ai.operation.name` value of a tool-execution span.
pub const EXECUTE_TOOL: &str = "execute_tool";
/// The `gen_ai.operation.name` values of a single model request (semconv inference spans): a call span with one
/// of these is always a call, even when other call spans run inside it. Any other call span with call spans
/// inside it (`invoke_agent`, a workflow, a span without an operation) is a roll-up of them and not counted again,
/// unless it has no operation and a response or request id of its own none of them had.
/// `chat_streaming` is rig's name for a streamed chat request.
pub const INFERENCE_OPERATIONS: [&str; 4] = ["chat", "chat_streaming", "text_completion", "generate_content"];

/// The kinds of token field, before normalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenField {
    InclusiveInput,
    UncachedInput,
    Output,
    CacheRead,
    CacheWrite,
    CacheWrite5m,
    CacheWrite1h,
    Reasoning,
    /// Not tokens: web searches, billed per search. A usage field all the same (it makes a call span).
    WebSearchRequests,
}

/// The attribution dimensions every meter knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dim {
    Session = 0,
    User = 1,
    Tenant = 2,
    Project = 3,
    Agent = 4,
    Operation = 5,
    Task = 6,
}

/// How many built-in dimensions there are.
pub(crate) const DIM_COUNT: usize = 7;

impl Dim {
    /// Every built-in dimension, in order.
    pub(crate) const ALL: [Dim; DIM_COUNT] =
        [Dim::Session, Dim::User, Dim::Tenant, Dim::Project, Dim::Agent, Dim::Operation, Dim::Task];

    /// Its name in records, budgets, reports and metrics settings (`tenant`).
    pub(crate) fn name(self) -> &'static str {
        BUILTIN_DIMENSIONS[self as usize]
    }
}

/// What a dimension's name means where one is named (a budget scope, a request scope, a metric dimension).
pub(crate) enum DimensionName {
    /// A model field (`gen_ai.request.model`): the model.
    Model,
    /// A built-in dimension, by its name (`tenant`) or the span field that fills it (`tenant.id`): a scope
    /// naming the field would otherwise match nothing, and a blocking budget would never block.
    Builtin(Dim),
    /// Anything else (an extra dimension, or a typo).
    Other,
}

/// See [`DimensionName`].
pub(crate) fn dimension_name(name: &str) -> DimensionName {
    match classify(name) {
        Role::Model | Role::RequestModel | Role::ResponseModel => DimensionName::Model,
        Role::Dim(d) => DimensionName::Builtin(d),
        Role::Conversation => DimensionName::Builtin(Dim::Session),
        _ => Dim::ALL.into_iter().find(|d| d.name() == name).map_or(DimensionName::Other, DimensionName::Builtin),
    }
}

/// What a field means to capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Token(TokenField),
    ResponseModel,
    RequestModel,
    Model,
    ProviderName,
    System,
    OperationName,
    ResponseId,
    /// A provider request id: a second identity of the call, beside the response id.
    RequestId,
    Stream,
    TimeToFirstChunk,
    ServiceTier,
    Speed,
    InferenceGeo,
    ServerAddress,
    ErrorType,
    StatusCode,
    ToolName,
    Dim(Dim),
    /// `gen_ai.conversation.id`: the session when no span of the call's sets `session.id` (see
    /// [`SESSION_FIELDS`]).
    Conversation,
    /// Not part of the contract (may still be a user-named extra dimension).
    Other,
}

pub(crate) fn classify(name: &str) -> Role {
    use TokenField::*;
    // Anthropic's names as the response's `usage` object nests them (`usage.input_tokens`, `usage.service_tier`),
    // read as the bare ones.
    if let Some(bare) = name.strip_prefix(USAGE_PREFIX)
        && matches!(
            bare,
            ANTHROPIC_INPUT
                | ANTHROPIC_OUTPUT
                | ANTHROPIC_CACHE_READ
                | ANTHROPIC_CACHE_WRITE
                | ANTHROPIC_CACHE_WRITE_5M
                | ANTHROPIC_CACHE_WRITE_1H
                | ANTHROPIC_THINKING
                | ANTHROPIC_WEB_SEARCH_REQUESTS
                | SERVICE_TIER
                | SPEED
                | INFERENCE_GEO
        )
    {
        return classify(bare);
    }
    match name {
        SEMCONV_INPUT | LEGACY_PROMPT | OPENAI_PROMPT => Role::Token(InclusiveInput),
        ANTHROPIC_INPUT => Role::Token(UncachedInput),
        SEMCONV_OUTPUT | LEGACY_COMPLETION | OPENAI_COMPLETION | ANTHROPIC_OUTPUT => Role::Token(Output),
        SEMCONV_CACHE_READ | LEGACY_CACHE_READ | ANTHROPIC_CACHE_READ | OPENAI_CACHED | RIG_CACHED | SENTRY_CACHED => {
            Role::Token(CacheRead)
        }
        SEMCONV_CACHE_WRITE | LEGACY_CACHE_WRITE | ANTHROPIC_CACHE_WRITE | SENTRY_CACHE_WRITE => {
            Role::Token(CacheWrite)
        }
        ANTHROPIC_CACHE_WRITE_5M => Role::Token(CacheWrite5m),
        ANTHROPIC_CACHE_WRITE_1H => Role::Token(CacheWrite1h),
        SEMCONV_REASONING | RIG_REASONING | ANTHROPIC_THINKING | OPENAI_REASONING => Role::Token(Reasoning),
        ANTHROPIC_WEB_SEARCH_REQUESTS => Role::Token(WebSearchRequests),
        RESPONSE_MODEL => Role::ResponseModel,
        REQUEST_MODEL => Role::RequestModel,
        MODEL => Role::Model,
        PROVIDER_NAME => Role::ProviderName,
        SYSTEM => Role::System,
        OPERATION_NAME => Role::OperationName,
        RESPONSE_ID => Role::ResponseId,
        REQUEST_ID => Role::RequestId,
        REQUEST_STREAM => Role::Stream,
        TIME_TO_FIRST_CHUNK => Role::TimeToFirstChunk,
        SERVICE_TIER => Role::ServiceTier,
        SPEED => Role::Speed,
        INFERENCE_GEO => Role::InferenceGeo,
        SERVER_ADDRESS => Role::ServerAddress,
        ERROR_TYPE => Role::ErrorType,
        STATUS_CODE => Role::StatusCode,
        TOOL_NAME => Role::ToolName,
        SESSION_ID => Role::Dim(Dim::Session),
        CONVERSATION_ID => Role::Conversation,
        n if USER_FIELDS.contains(&n) => Role::Dim(Dim::User),
        TENANT_FIELD => Role::Dim(Dim::Tenant),
        PROJECT_FIELD => Role::Dim(Dim::Project),
        n if AGENT_FIELDS.contains(&n) => Role::Dim(Dim::Agent),
        OPERATION_FIELD => Role::Dim(Dim::Operation),
        TASK_FIELD => Role::Dim(Dim::Task),
        _ => Role::Other,
    }
}

/// Whether a field capture does not read is named as a count of tokens used, whose value would then be counted
/// nowhere. A name is a token count when one of its segments ends with `tokens` (or `token`, under a usage prefix)
/// or holds `token_count`, `tokencount` or `token_details` (`gen_ai.usage.input_token`, Gemini's `promptTokenCount`,
/// OpenInference's `llm.token_count.prompt`, LangChain's `usage_metadata.input_token_details.cache_read`), and its
/// last segment is not a limit, budget, estimate, window, unit, price, time or rate (`gen_ai.request.max_tokens`,
/// `thinking.budget_tokens`, `estimated_tokens`, `context_window_tokens`, `time_to_first_token`,
/// `output_tokens_per_second`). It is flagged under `gen_ai.usage.`, `llm.usage.` or a first
/// segment beginning with `usage`, or anywhere on a callsite that looks like an LLM call's (`llm_context`: token
/// fields, a model, a provider, or fields under `gen_ai.` or `llm.`): a rate limiter's `available_tokens` is not.
/// On a callsite whose token fields capture reads (`reads_tokens`), the same counts under other names are not
/// flagged: input, output, prompt, completion and total tokens (Vercel's `ai.usage.promptTokens` beside semconv's
/// `gen_ai.usage.input_tokens`), and reasoning (a part of output, informational); a total alone (an embedding's
/// `total_tokens`) is.
pub(crate) fn names_unread_usage(name: &str, llm_context: bool, reads_tokens: bool) -> bool {
    const NOT_USED: [&str; 13] = [
        "max",
        "limit",
        "budget",
        "remaining",
        "estimat",
        "context",
        "window",
        "unit",
        "cost",
        "price",
        "time",
        "per_",
        "first_token",
    ];
    const SAME_COUNTS: [&str; 12] = [
        "input",
        "inputtokens",
        "output",
        "outputtokens",
        "prompt",
        "prompttokens",
        "completion",
        "completiontokens",
        "total",
        "totaltokens",
        "reasoning",
        "reasoningtokens",
    ];
    let name = name.to_ascii_lowercase();
    let last = name.rsplit('.').next().unwrap_or_default();
    if NOT_USED.iter().any(|w| last.contains(w)) {
        return false;
    }
    let under_usage = name.starts_with("gen_ai.usage.") || name.starts_with("llm.usage.") || name.starts_with("usage");
    let counts_tokens = name.split('.').any(|s| {
        // One `token` (a misspelling) only under a usage prefix: `eos_token` and `page_token` are no counts.
        (under_usage && s.ends_with("token"))
            || s.ends_with("tokens")
            || s.contains("token_count")
            || s.contains("tokencount")
            || s.contains("token_details")
    });
    if !counts_tokens || (reads_tokens && SAME_COUNTS.contains(&last.replace('_', "").as_str())) {
        return false;
    }
    under_usage || llm_context
}

/// What capture does with one callsite, decided once.
#[derive(Debug)]
pub(crate) struct CallsitePlan {
    /// Role of each field, by `Field::index()`.
    pub(crate) roles: Box<[Role]>,
    /// Declares at least one token field: an LLM call span, or a usage event.
    pub(crate) has_tokens: bool,
    /// Declares `task`: a task span.
    pub(crate) has_task: bool,
    /// Declares `gen_ai.tool.name` and `gen_ai.operation.name`: a tool span when the latter is `execute_tool`.
    pub(crate) tool_candidate: bool,
    /// Capture reads this callsite whatever the meter's extra dimensions: a span with tokens, dimensions or a
    /// tool name, or an event with tokens.
    pub(crate) wanted: bool,
    /// A span with fields capture does not know, which a meter's extra dimensions may name.
    pub(crate) may_carry_extra: bool,
    /// The response-id and request-id fields of a callsite with token fields: a set of values holding one may
    /// start a new call on a long-lived span. Empty for any other callsite.
    pub(crate) id_fields: Box<[Field]>,
    /// An `ERROR` event whose only field is `error`: what `#[tracing::instrument(err)]` emits inside its span
    /// when the function returns `Err`. Inside a call span it marks the call failed.
    pub(crate) instrument_err: bool,
    /// An `ERROR` event without token fields that declares `error.type`: it fails its own span's call, task or
    /// tool execution with that type.
    pub(crate) error_event: bool,
    /// Fields named as usage counts that capture does not read (see [`names_unread_usage`]): their values are
    /// counted nowhere. Empty for nearly every callsite.
    pub(crate) unread_usage: Box<[&'static str]>,
}

impl CallsitePlan {
    fn new(meta: &Metadata<'_>) -> Self {
        let is_span = meta.is_span();
        let roles: Box<[Role]> = meta.fields().iter().map(|f| classify(f.name())).collect();
        let has_tokens = roles.iter().any(|r| matches!(r, Role::Token(_)));
        let has_dims = roles.iter().any(|r| matches!(r, Role::Dim(_) | Role::Conversation));
        let has_task = roles.contains(&Role::Dim(Dim::Task));
        let tool_candidate = roles.contains(&Role::ToolName) && roles.contains(&Role::OperationName);
        let wanted = has_tokens || (is_span && (has_dims || tool_candidate));
        // `server.address` is both a contract field (a cloud endpoint's geography) and a name an extra dimension
        // may take.
        let may_carry_extra = is_span && roles.iter().any(|r| matches!(r, Role::Other | Role::ServerAddress));
        // Only a call span (or a usage event) carries calls: a span of another kind recording ids again (a
        // conversation keeping its latest response id) is never split into calls.
        let id_fields = match has_tokens {
            true => meta
                .fields()
                .iter()
                .filter(|f| matches!(classify(f.name()), Role::ResponseId | Role::RequestId))
                .collect(),
            false => Box::default(),
        };
        let instrument_err = meta.is_event()
            && *meta.level() == tracing_core::Level::ERROR
            && meta.fields().len() == 1
            && meta.fields().field(INSTRUMENT_ERR_FIELD).is_some();
        let error_event = meta.is_event()
            && !has_tokens
            && *meta.level() == tracing_core::Level::ERROR
            && roles.contains(&Role::ErrorType);
        // Only asked of a callsite that looks like an LLM call's (below): a rate limiter's `available_tokens` is
        // not a usage field.
        let llm_context = has_tokens
            || roles.iter().any(|r| {
                matches!(r, Role::Model | Role::RequestModel | Role::ResponseModel | Role::ProviderName | Role::System)
            })
            || meta.fields().iter().any(|f| f.name().starts_with("gen_ai.") || f.name().starts_with("llm."));
        let unread_usage = meta
            .fields()
            .iter()
            .zip(roles.iter())
            .filter(|(f, r)| **r == Role::Other && names_unread_usage(f.name(), llm_context, has_tokens))
            .map(|(f, _)| f.name())
            .collect();
        CallsitePlan {
            roles,
            has_tokens,
            has_task,
            tool_candidate,
            wanted,
            may_carry_extra,
            id_fields,
            instrument_err,
            error_event,
            unread_usage,
        }
    }

    /// The role of a field of this callsite.
    #[inline]
    pub(crate) fn role(&self, field: &Field) -> Role {
        self.roles.get(field.index()).copied().unwrap_or(Role::Other)
    }
}

// === plan registry ===
//
// Plans do not depend on a meter's configuration, so one registry serves every meter. They are leaked: callsites
// are `'static` and finite, and so are their plans. Lookups go to a per-thread cache first, so the hot path takes
// no shared lock once a thread has seen a callsite.

static PLANS: RwLock<Option<HashMap<Identifier, &'static CallsitePlan>>> = RwLock::new(None);

thread_local! {
    static LOCAL_PLANS: RefCell<HashMap<Identifier, &'static CallsitePlan>> = RefCell::new(HashMap::default());
}

/// The plan of a callsite, computing it on first sight.
pub(crate) fn plan_for(meta: &Metadata<'_>) -> &'static CallsitePlan {
    let id = meta.callsite();
    let cached = LOCAL_PLANS.try_with(|local| local.try_borrow().ok().and_then(|m| m.get(&id).copied())).ok().flatten();
    if let Some(plan) = cached {
        return plan;
    }
    let plan = global_plan(id.clone(), meta);
    let _ = LOCAL_PLANS.try_with(|local| {
        if let Ok(mut m) = local.try_borrow_mut() {
            m.insert(id, plan);
        }
    });
    plan
}

fn global_plan(id: Identifier, meta: &Metadata<'_>) -> &'static CallsitePlan {
    if let Some(plan) = PLANS.read().as_ref().and_then(|m| m.get(&id).copied()) {
        return plan;
    }
    let mut guard = PLANS.write();
    let map = guard.get_or_insert_with(HashMap::default);
    map.entry(id).or_insert_with(|| Box::leak(Box::new(CallsitePlan::new(meta))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_names_capture_does_not_read() {
        // (name, looks like an LLM call's, reads token fields, flagged)
        for (name, llm_context, reads, unread) in [
            ("gen_ai.usage.input_token", false, false, true),
            ("gen_ai.usage.audio_input_tokens", false, false, true),
            ("gen_ai.usage.audio_input_tokens", true, true, true),
            ("llm.usage.prompt_tokens", false, false, true),
            ("llm.usage.prompt_tokens", true, true, false),
            ("usage.audio_tokens", false, false, true),
            ("usage_metadata.input_token_details.cache_read", false, false, true),
            ("usageMetadata.promptTokenCount", false, false, true),
            ("inputTokenCount", true, false, true),
            ("inputTokenCount", false, false, false),
            ("llm.token_count.prompt", true, false, true),
            ("llm.token_count.prompt", true, true, false),
            ("llm.token_count.prompt_details.cache_read", true, true, true),
            ("prompt_token_count", true, false, true),
            ("prompt_token_count", false, false, false),
            ("ai.usage.promptTokens", true, true, false),
            ("ai.usage.cachedInputTokens", true, true, true),
            ("gen_ai.usage.output_tokens.reasoning", true, true, false),
            ("prompt_tokens_details.audio_tokens", true, true, true),
            ("gen_ai.usage.total_tokens", true, true, false),
            ("gen_ai.usage.total_tokens", true, false, true),
            ("total_tokens", true, false, true),
            ("Gen_AI.Usage.Total_Tokens", false, true, false),
            ("available_tokens", false, false, false),
            ("tokens", false, false, false),
            ("gen_ai.request.max_tokens", true, true, false),
            ("thinking.budget_tokens", true, true, false),
            ("estimated_tokens", true, true, false),
            ("context_window_tokens", true, true, false),
            ("gen_ai.usage.cost", true, true, false),
            ("gen_ai.usage.model", true, true, false),
            ("usage.unit", true, true, false),
            ("usage.cpu_seconds", true, true, false),
            ("usage.server_tool_use.web_fetch_requests", true, true, false),
            ("message", true, false, false),
            ("time_to_first_token", true, true, false),
            ("gen_ai.server.time_per_output_token", true, true, false),
            ("output_tokens_per_second", true, true, false),
            ("eos_token", true, true, false),
            ("page_token", true, false, false),
            ("usage.input_token", false, false, true),
        ] {
            assert_eq!(
                names_unread_usage(name, llm_context, reads),
                unread,
                "{name} (LLM context: {llm_context}, reads tokens: {reads})"
            );
        }
    }

    #[test]
    fn every_contract_name_is_classified() {
        for name in [
            SEMCONV_INPUT,
            SEMCONV_OUTPUT,
            SEMCONV_CACHE_READ,
            SEMCONV_CACHE_WRITE,
            SEMCONV_REASONING,
            RIG_REASONING,
            RIG_CACHED,
            SENTRY_CACHED,
            SENTRY_CACHE_WRITE,
            LEGACY_PROMPT,
            LEGACY_COMPLETION,
            OPENAI_PROMPT,
            OPENAI_COMPLETION,
            ANTHROPIC_INPUT,
            ANTHROPIC_OUTPUT,
            ANTHROPIC_CACHE_READ,
            ANTHROPIC_CACHE_WRITE,
            ANTHROPIC_CACHE_WRITE_5M,
            ANTHROPIC_CACHE_WRITE_1H,
            ANTHROPIC_THINKING,
            ANTHROPIC_WEB_SEARCH_REQUESTS,
        ] {
            assert!(matches!(classify(name), Role::Token(_)), "{name}");
        }
        assert_eq!(classify("usage.server_tool_use.web_search_requests"), Role::Token(TokenField::WebSearchRequests));
        assert_eq!(classify("message"), Role::Other);
        assert_eq!(classify("session.id"), Role::Dim(Dim::Session));
    }
}
