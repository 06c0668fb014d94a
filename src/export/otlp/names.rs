//! Metric and attribute names, with the Prometheus names they arrive under through a standard OTLP→Prometheus
//! translation (OpenTelemetry's compatibility spec, as `vmagent -opentelemetry.usePrometheusNaming` and the
//! collector's Prometheus exporters implement it: dots to `_`, the unit as a suffix, `_total` on counters,
//! `_ratio` for unit `1`). The end-to-end test checks every Prometheus name against a real Prometheus.
//!
//! Dashboards and alert rules should use the `PROM_*` names.

/// Semconv histogram of tokens per call, `{token}`, by `gen_ai.token.type` = `input` (all prompt tokens, cache
/// reads and writes included, as semconv counts them) | `output`.
pub const TOKEN_USAGE: &str = "gen_ai.client.token.usage";
/// Semconv histogram of call duration, `s`.
pub const OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
/// Semconv histogram of time to the first chunk of a streamed response, `s`.
pub const TIME_TO_FIRST_CHUNK: &str = "gen_ai.client.operation.time_to_first_chunk";
/// Counter of tokens, `{token}`, by `gen_ai.token.type` = `input` (uncached) | `output` | `cache_read` |
/// `cache_write_5m` | `cache_write_1h` | `reasoning` (a part of output, never add it to output).
pub const TOKENS: &str = "tokenmeter.tokens";
/// Counter of the cost of priced calls, `USD`.
pub const COST: &str = "tokenmeter.cost";
/// Counter of what cache reads saved against the input rate, `USD`.
pub const CACHE_SAVINGS: &str = "tokenmeter.cache.savings";
/// Counter of web searches (Anthropic's server-side `web_search` tool), `{request}`, by call attributes.
pub const WEB_SEARCH_REQUESTS: &str = "tokenmeter.web_search.requests";
/// Counter of the web search fees of priced calls, `USD` (a part of [`COST`]).
pub const WEB_SEARCH_COST: &str = "tokenmeter.web_search.cost";
/// Counter of calls, `{call}`, by `tokenmeter.outcome` (and `error.type` on errors).
pub const CALLS: &str = "tokenmeter.calls";
/// Counter of calls whose span closed without any token value, `{call}`.
pub const CALLS_UNMETERED: &str = "tokenmeter.calls.unmetered";
/// Counter of metered calls whose model has no price, `{call}` (their cost is not in [`COST`]).
pub const CALLS_UNPRICED: &str = "tokenmeter.calls.unpriced";
/// Counter of tasks, `{task}`, by `task` and `tokenmeter.outcome`.
pub const TASKS: &str = "tokenmeter.tasks";
/// Counter of tool executions, `{invocation}`, by `gen_ai.tool.name` and `tokenmeter.outcome`.
pub const TOOL_INVOCATIONS: &str = "tokenmeter.tool.invocations";
/// Counter of budget alerts fired, `{alert}`, by `tokenmeter.budget`, `tokenmeter.alert` and
/// `tokenmeter.alert.threshold`.
pub const BUDGET_ALERTS: &str = "tokenmeter.budget.alerts";
/// Counter of capture corrections, `{correction}`, by `tokenmeter.correction` = `normalization` |
/// `rejected_value` | `shared_span_split` | `rollup_span` | `orphan_usage_event` | `unsent_call` |
/// `unread_usage_declaration`.
pub const CAPTURE_CORRECTIONS: &str = "tokenmeter.capture.corrections";
/// Counter of journal records lost, `{record}`, by `tokenmeter.reason` = `queue_full` | `write_failed`, and of
/// budget alert lines lost, `alert_lost` (only with a journal); or, alone, `journal_disabled`: the records captured
/// since `build` ran without the journal it was configured with.
pub const JOURNAL_DROPPED: &str = "tokenmeter.journal.dropped";
/// Counter of failed exports, `{export}` (only for a pipeline tokenmeter owns, see
/// [`TokenMeterBuilder::with_otlp`](crate::TokenMeterBuilder::with_otlp)).
pub const EXPORT_FAILURES: &str = "tokenmeter.export.failures";
/// Gauge of the Unix time, `s`, from which the exporter's counters count (they start from zero when the meter's
/// export starts, and a restarted process starts new series): the rules and dashboards tell a process Prometheus
/// watched from its start (count its first sample in full) from one it first saw long after (count only what it
/// saw grow).
pub const START_TIME: &str = "tokenmeter.start_time";
/// Gauge of the efficiency score, 0–100, `{score}`, by `tokenmeter.window`.
pub const EFFICIENCY_SCORE: &str = "tokenmeter.efficiency.score";
/// Gauge of the prompt-cache hit rate (cache reads over all prompt tokens), 0–1, unit `1`, by
/// `tokenmeter.window`.
pub const CACHE_HIT_RATE: &str = "tokenmeter.cache.hit_rate";
/// Gauge of a USD budget's spend in its current period, `USD`, by `tokenmeter.budget` and
/// `tokenmeter.budget.period`.
pub const BUDGET_SPENT: &str = "tokenmeter.budget.spent";
/// Gauge of a budget's limit, `USD`.
pub const BUDGET_LIMIT: &str = "tokenmeter.budget.limit";
/// Gauge of a budget's remaining amount (never below zero), `USD`.
pub const BUDGET_REMAINING: &str = "tokenmeter.budget.remaining";
/// Gauge of a token budget's spend in its current period, `{token}`, by `tokenmeter.budget`.
pub const BUDGET_TOKENS_SPENT: &str = "tokenmeter.budget.tokens.spent";
/// Gauge of a token budget's limit, `{token}`.
pub const BUDGET_TOKENS_LIMIT: &str = "tokenmeter.budget.tokens.limit";
/// Gauge of a token budget's remaining tokens (never below zero), `{token}`.
pub const BUDGET_TOKENS_REMAINING: &str = "tokenmeter.budget.tokens.remaining";
/// Gauge of a token budget's projected spend by the end of its period, `{token}`.
pub const BUDGET_TOKENS_PROJECTED: &str = "tokenmeter.budget.tokens.projected";
/// Gauge of the time until a budget's limit is reached at the current rate, `s` (absent when the rate does not
/// reach it before the period resets).
pub const BUDGET_TIME_TO_LIMIT: &str = "tokenmeter.budget.time_to_limit";
/// Gauge of a budget's spend over its limit, unit `1` (1 = the limit is reached), USD and token budgets alike.
pub const BUDGET_UTILIZATION: &str = "tokenmeter.budget.utilization";
/// Gauge of a budget's projected spend by the end of its period at the current rate, `USD`.
pub const BUDGET_PROJECTED: &str = "tokenmeter.budget.projected";

/// Prometheus name of [`TOKEN_USAGE`] (a histogram: `_bucket`, `_sum`, `_count` series).
pub const PROM_TOKEN_USAGE: &str = "gen_ai_client_token_usage";
/// Prometheus name of [`OPERATION_DURATION`] (a histogram).
pub const PROM_OPERATION_DURATION: &str = "gen_ai_client_operation_duration_seconds";
/// Prometheus name of [`TIME_TO_FIRST_CHUNK`] (a histogram).
pub const PROM_TIME_TO_FIRST_CHUNK: &str = "gen_ai_client_operation_time_to_first_chunk_seconds";
/// Prometheus name of [`TOKENS`].
pub const PROM_TOKENS: &str = "tokenmeter_tokens_total";
/// Prometheus name of [`COST`].
pub const PROM_COST: &str = "tokenmeter_cost_USD_total";
/// Prometheus name of [`CACHE_SAVINGS`].
pub const PROM_CACHE_SAVINGS: &str = "tokenmeter_cache_savings_USD_total";
/// Prometheus name of [`WEB_SEARCH_REQUESTS`].
pub const PROM_WEB_SEARCH_REQUESTS: &str = "tokenmeter_web_search_requests_total";
/// Prometheus name of [`WEB_SEARCH_COST`].
pub const PROM_WEB_SEARCH_COST: &str = "tokenmeter_web_search_cost_USD_total";
/// Prometheus name of [`CALLS`].
pub const PROM_CALLS: &str = "tokenmeter_calls_total";
/// Prometheus name of [`CALLS_UNMETERED`].
pub const PROM_CALLS_UNMETERED: &str = "tokenmeter_calls_unmetered_total";
/// Prometheus name of [`CALLS_UNPRICED`].
pub const PROM_CALLS_UNPRICED: &str = "tokenmeter_calls_unpriced_total";
/// Prometheus name of [`TASKS`].
pub const PROM_TASKS: &str = "tokenmeter_tasks_total";
/// Prometheus name of [`TOOL_INVOCATIONS`].
pub const PROM_TOOL_INVOCATIONS: &str = "tokenmeter_tool_invocations_total";
/// Prometheus name of [`BUDGET_ALERTS`].
pub const PROM_BUDGET_ALERTS: &str = "tokenmeter_budget_alerts_total";
/// Prometheus name of [`CAPTURE_CORRECTIONS`].
pub const PROM_CAPTURE_CORRECTIONS: &str = "tokenmeter_capture_corrections_total";
/// Prometheus name of [`JOURNAL_DROPPED`].
pub const PROM_JOURNAL_DROPPED: &str = "tokenmeter_journal_dropped_total";
/// Prometheus name of [`EXPORT_FAILURES`].
pub const PROM_EXPORT_FAILURES: &str = "tokenmeter_export_failures_total";
/// Prometheus name of [`START_TIME`].
pub const PROM_START_TIME: &str = "tokenmeter_start_time_seconds";
/// Prometheus name of [`EFFICIENCY_SCORE`].
pub const PROM_EFFICIENCY_SCORE: &str = "tokenmeter_efficiency_score";
/// Prometheus name of [`CACHE_HIT_RATE`].
pub const PROM_CACHE_HIT_RATE: &str = "tokenmeter_cache_hit_rate_ratio";
/// Prometheus name of [`BUDGET_SPENT`].
pub const PROM_BUDGET_SPENT: &str = "tokenmeter_budget_spent_USD";
/// Prometheus name of [`BUDGET_LIMIT`].
pub const PROM_BUDGET_LIMIT: &str = "tokenmeter_budget_limit_USD";
/// Prometheus name of [`BUDGET_REMAINING`].
pub const PROM_BUDGET_REMAINING: &str = "tokenmeter_budget_remaining_USD";
/// Prometheus name of [`BUDGET_TOKENS_SPENT`].
pub const PROM_BUDGET_TOKENS_SPENT: &str = "tokenmeter_budget_tokens_spent";
/// Prometheus name of [`BUDGET_TOKENS_LIMIT`].
pub const PROM_BUDGET_TOKENS_LIMIT: &str = "tokenmeter_budget_tokens_limit";
/// Prometheus name of [`BUDGET_TOKENS_REMAINING`].
pub const PROM_BUDGET_TOKENS_REMAINING: &str = "tokenmeter_budget_tokens_remaining";
/// Prometheus name of [`BUDGET_TOKENS_PROJECTED`].
pub const PROM_BUDGET_TOKENS_PROJECTED: &str = "tokenmeter_budget_tokens_projected";
/// Prometheus name of [`BUDGET_TIME_TO_LIMIT`].
pub const PROM_BUDGET_TIME_TO_LIMIT: &str = "tokenmeter_budget_time_to_limit_seconds";
/// Prometheus name of [`BUDGET_UTILIZATION`].
pub const PROM_BUDGET_UTILIZATION: &str = "tokenmeter_budget_utilization_ratio";
/// Prometheus name of [`BUDGET_PROJECTED`].
pub const PROM_BUDGET_PROJECTED: &str = "tokenmeter_budget_projected_USD";

/// Attribute: the kind of token (`input`, `output`, `cache_read`, `cache_write_5m`, `cache_write_1h`,
/// `reasoning`). Prometheus label `gen_ai_token_type`.
pub const ATTR_TOKEN_TYPE: &str = "gen_ai.token.type";

/// The attribute keys tokenmeter's metrics set themselves (and every `tokenmeter.*` key): a metric dimension of
/// the same name is refused at build, since the two would be one attribute and one of them lost.
pub const RESERVED_ATTRIBUTES: [&str; 8] = [
    ATTR_TOKEN_TYPE,
    ATTR_MODEL,
    ATTR_PROVIDER,
    ATTR_OPERATION,
    ATTR_ERROR_TYPE,
    ATTR_TASK,
    ATTR_TOOL,
    "otel.metric.overflow",
];
/// Attribute: the model, canonical id when the price book knows it (dated and provider-specific ids merge),
/// else as reported. Prometheus label `gen_ai_request_model`.
pub const ATTR_MODEL: &str = "gen_ai.request.model";
/// Attribute: `gen_ai.provider.name`. Prometheus label `gen_ai_provider_name`.
pub const ATTR_PROVIDER: &str = "gen_ai.provider.name";
/// Attribute: `gen_ai.operation.name`. Prometheus label `gen_ai_operation_name`.
pub const ATTR_OPERATION: &str = "gen_ai.operation.name";
/// Attribute: the error type of a failed call, task or tool execution. Prometheus label `error_type`.
pub const ATTR_ERROR_TYPE: &str = "error.type";
/// Attribute: `ok` or `error`. Prometheus label `tokenmeter_outcome`.
pub const ATTR_OUTCOME: &str = "tokenmeter.outcome";
/// Attribute: the task name on [`TASKS`]. Prometheus label `task`.
pub const ATTR_TASK: &str = "task";
/// Attribute: the tool name on [`TOOL_INVOCATIONS`]. Prometheus label `gen_ai_tool_name`.
pub const ATTR_TOOL: &str = "gen_ai.tool.name";
/// Attribute: the kind of capture correction. Prometheus label `tokenmeter_correction`.
pub const ATTR_CORRECTION: &str = "tokenmeter.correction";
/// Attribute: the budget's name. Prometheus label `tokenmeter_budget`.
pub const ATTR_BUDGET: &str = "tokenmeter.budget";
/// Attribute: the budget's period (`day`, `month`, …). Prometheus label `tokenmeter_budget_period`.
pub const ATTR_BUDGET_PERIOD: &str = "tokenmeter.budget.period";
/// Attribute: for a budget of each value of a dimension (`user=*`), the value a budget gauge's series is for
/// (`alice`); absent on other budgets' series. Prometheus label `tokenmeter_budget_member`.
pub const ATTR_BUDGET_MEMBER: &str = "tokenmeter.budget.member";
/// Attribute: the kind of budget alert, `threshold_crossed` | `projected_overrun`. Prometheus label
/// `tokenmeter_alert`.
pub const ATTR_ALERT: &str = "tokenmeter.alert";
/// Attribute: the threshold, in percent of the limit, a `threshold_crossed` alert fired at (e.g. `80`).
/// Prometheus label `tokenmeter_alert_threshold`.
pub const ATTR_ALERT_THRESHOLD: &str = "tokenmeter.alert.threshold";
/// Attribute: why journal records were lost, `queue_full` | `write_failed` | `alert_lost` | `journal_disabled`.
/// Prometheus label
/// `tokenmeter_reason`.
pub const ATTR_REASON: &str = "tokenmeter.reason";
/// Attribute: the rolling window a gauge covers (`1h`, `24h`). Prometheus label `tokenmeter_window`.
pub const ATTR_WINDOW: &str = "tokenmeter.window";

/// Semconv bucket boundaries of [`TOKEN_USAGE`].
pub const TOKEN_USAGE_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
    67108864.0,
];
/// Semconv bucket boundaries of [`OPERATION_DURATION`] and [`TIME_TO_FIRST_CHUNK`], seconds.
pub const DURATION_BUCKETS: [f64; 14] =
    [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
