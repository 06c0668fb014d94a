//! The OpenAPI 3.0 document of the API, built in code.

use serde_json::{Value, json};

fn param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn window_param(name: &str) -> Value {
    param(
        name,
        "Window: 1h, 6h, 24h, 7d, 30d, all, or FROM..TO with RFC 3339 times (camelCase alias accepted). Default 7d. \
         FROM and TO inside a ledger bucket (data older than 2 hours) widen to its edges: `window` shows the bounds used.",
        json!({ "type": "string" }),
    )
}

fn time_param(name: &str, description: &str) -> Value {
    param(
        name,
        description,
        json!({
            "type": "string",
            "description": "YYYY-MM-DD (a local day of the meter's time zone) or an RFC 3339 time; a time inside a ledger \
                            bucket (data older than 2 hours) widens to its edge: the response's `window` shows the bounds used"
        }),
    )
}

fn bool_param(name: &str, description: &str) -> Value {
    param(name, description, json!({ "type": "boolean" }))
}

fn err(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn responses(success: Value, extra: &[(&str, &str)]) -> Value {
    let mut r = json!({
        "200": success,
        "400": err("A bad, repeated or unknown query parameter, or a bad path parameter: `param` names it; or a query string that is not percent-encoded UTF-8 (`invalid_query`)."),
        "401": err("No API key, or a wrong one."),
        "403": err(
            "No API key is configured, and the request is not addressed to localhost, or its client is not on this \
             machine (or the server does not say where the client is).",
        ),
        "413": err("The request is larger than the configured limit."),
        "503": err("The request took longer than the configured limit."),
        "500": err("The report could not be computed or written (a defect: the detail says what failed)."),
    });
    for (code, d) in extra {
        r[*code] = err(d);
    }
    r
}

fn get(summary: &str, op: &str, params: Vec<Value>, responses: Value) -> Value {
    json!({ "get": { "summary": summary, "operationId": op, "parameters": params, "responses": responses } })
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn num() -> Value {
    json!({ "type": "number" })
}

fn int() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

fn time() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn strings(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

fn nullable(schema: Value) -> Value {
    match schema {
        Value::Object(mut m) if !m.contains_key("$ref") => {
            m.insert("nullable".into(), Value::Bool(true));
            Value::Object(m)
        }
        other => json!({ "allOf": [other], "nullable": true }),
    }
}

/// An object with exactly these properties: every one required except `optional`, no others allowed (so
/// schemathesis' response conformance check catches any drift between the structs and this document).
fn object(props: &[(&str, Value)], optional: &[&str]) -> Value {
    let required: Vec<&str> = props.iter().map(|(n, _)| *n).filter(|n| !optional.contains(n)).collect();
    let properties: serde_json::Map<String, Value> = props.iter().map(|(n, v)| ((*n).to_owned(), v.clone())).collect();
    json!({ "type": "object", "required": required, "properties": properties, "additionalProperties": false })
}

const DIMENSIONS: [&str; 10] =
    ["model", "provider", "session", "project", "agent", "operation", "task", "tool", "user", "tenant"];
const GRAINS: [&str; 4] = ["hour", "day", "week", "month"];
const EFFICIENCY_GROUPS: [&str; 5] = ["session", "project", "model", "agent", "operation"];

/// The component schemas: one per report struct, matching its serde output.
fn schemas() -> Value {
    let band = strings(&["green", "amber", "red"]);
    json!({
        "Error": object(&[("error", string()), ("detail", string()), ("param", nullable(string()))], &[]),
        "Health": object(&[("status", strings(&["ok"]))], &[]),
        "WindowBounds": object(&[("from", time()), ("to", time())], &[]),
        "Filter": object(&[("dimension", strings(&DIMENSIONS)), ("value", string())], &[]),
        "GroupBy": {
            "oneOf": [
                object(&[("time", strings(&GRAINS))], &[]),
                object(&[("dimension", strings(&DIMENSIONS))], &[]),
            ]
        },
        "TokenFigures": object(
            &[
                ("input", int()), ("output", int()), ("cache_read", int()), ("cache_write_5m", int()),
                ("cache_write_1h", int()), ("cache_creation", int()), ("reasoning", int()), ("total", int()),
            ],
            &[],
        ),
        "GroupRow": object(
            &[
                ("key", string()), ("calls", int()), ("failed_calls", int()), ("unmetered_calls", int()),
                ("unpriced_calls", int()), ("tasks", int()), ("tokens", reference("TokenFigures")),
                ("cost_usd", num()), ("cost_picos", int()), ("cost_share", num()), ("token_share", num()),
            ],
            &[],
        ),
        "QueryResult": object(
            &[
                ("window", reference("WindowBounds")),
                ("filters", array(reference("Filter"))),
                ("group_by", nullable(reference("GroupBy"))),
                ("totals", reference("GroupRow")),
                ("groups", array(reference("GroupRow"))),
                ("unattributed_calls", int()),
            ],
            &["unattributed_calls"],
        ),
        "ReportScope": object(
            &[("filters", array(reference("Filter"))), ("unattributed_calls", int()), ("notes", array(string()))],
            &[],
        ),
        "CacheMetrics": object(
            &[
                ("total_cache_hits", int()), ("total_cache_misses", int()), ("hit_rate", num()),
                ("call_hit_rate", num()), ("tokens_saved", int()), ("cost_saved", num()),
                ("unpriced_calls", int()), ("cache_creation_tokens", int()), ("reusable_tokens", int()), ("reused_tokens", int()),
                ("context_reuse_rate", num()),
            ],
            &[],
        ),
        "CachePoint": object(
            &[
                ("timestamp", time()), ("hit_rate", num()), ("prompt_tokens", int()), ("tokens_saved", int()),
                ("cost_saved", num()),
            ],
            &[],
        ),
        "UnreadCacheWrites": object(&[("writes", int()), ("tokens", int()), ("wasted_usd", num())], &[]),
        "CacheReport": object(
            &[
                ("window", reference("WindowBounds")),
                ("cache_metrics", reference("CacheMetrics")),
                ("grain", strings(&GRAINS)),
                ("time_series", array(reference("CachePoint"))),
                ("unread_cache_writes", reference("UnreadCacheWrites")),
                ("scope", reference("ReportScope")),
            ],
            &["scope"],
        ),
        "ScoreComponent": object(
            &[
                ("name", strings(&["cache_reuse", "waste", "right_sizing", "cache_write_use"])),
                ("value", num()), ("weight", num()), ("points", num()),
            ],
            &[],
        ),
        "EfficiencyScores": object(
            &[
                ("overall", num()), ("band", band.clone()), ("tokens_per_task", nullable(num())),
                ("cache_hit_rate", num()), ("input_output_ratio", nullable(num())), ("context_reuse_rate", num()),
                ("reusable_tokens", int()), ("components", array(reference("ScoreComponent"))),
            ],
            &[],
        ),
        "EfficiencyBreakdown": object(
            &[
                ("category", string()), ("calls", int()), ("metered_calls", int()), ("input_tokens", int()),
                ("output_tokens", int()),
                ("cache_creation_tokens", int()), ("cache_read_tokens", int()), ("total_tokens", int()),
                ("cost_usd", num()), ("cost_picos", int()), ("unpriced_calls", int()), ("efficiency_score", num()),
                ("band", band),
            ],
            &[],
        ),
        "Suggestion": object(
            &[
                ("type", strings(&[
                    "prompt_caching", "model_right_sizing", "batch_api", "unread_cache_writes",
                    "long_context_threshold", "failed_calls",
                ])),
                ("potential_savings", num()), ("potential_savings_picos", int()), ("description", string()),
                ("impact", strings(&["low", "medium", "high"])), ("share_of_spend", num()), ("calls", int()),
                ("tokens", int()),
            ],
            &[],
        ),
        "EfficiencyReport": object(
            &[
                ("window", reference("WindowBounds")),
                ("group_by", strings(&EFFICIENCY_GROUPS)),
                ("calls", int()),
                ("cost_usd", num()),
                ("cost_picos", int()),
                ("unpriced_calls", int()),
                ("efficiency_scores", reference("EfficiencyScores")),
                ("breakdowns", array(reference("EfficiencyBreakdown"))),
                ("breakdowns_omitted", int()),
                ("optimization_suggestions", array(reference("Suggestion"))),
                ("scope", reference("ReportScope")),
            ],
            &["scope"],
        ),
        "ToolUsage": object(
            &[("tool", string()), ("invocations", int()), ("errors", int()), ("total_duration_us", int())],
            &[],
        ),
        "SessionMetrics": object(
            &[
                ("session_id", string()),
                ("window", reference("WindowBounds")),
                ("totals", reference("GroupRow")),
                ("cache", reference("CacheMetrics")),
                ("differential", array(reference("GroupRow"))),
                ("tools", array(reference("ToolUsage"))),
            ],
            &["cache", "differential", "tools"],
        ),
        "BudgetAmount": {
            "description": "US dollars (`usd`, with the exact amount in pico-USD in `picos`), or tokens (`tokens`).",
            "oneOf": [object(&[("usd", num()), ("picos", int())], &[]), object(&[("tokens", int())], &[])]
        },
        "BudgetState": object(
            &[
                ("budget", string()),
                ("scope", json!({ "type": "string", "description": "`everything`, `DIMENSION=VALUE` or `model=ID`; for a budget of each value of a dimension (`user=*`), the value's (`user=alice`)" })),
                ("member", json!({ "type": "string", "description": "For a budget of each value of a dimension, the value this state is for; absent for other budgets" })),
                ("period", json!({ "type": "string", "description": "`day`, `week`, `month` or `rolling 1d2h`" })),
                ("action", strings(&["warn", "block"])),
                ("period_start", time()),
                ("resets_at", time()),
                ("spent", reference("BudgetAmount")),
                ("limit", reference("BudgetAmount")),
                ("remaining", reference("BudgetAmount")),
                ("utilization", num()),
                ("projected", nullable(reference("BudgetAmount"))),
                ("time_to_limit", nullable(json!({ "type": "number", "minimum": 0, "description": "seconds" }))),
                ("over_budget", json!({ "type": "boolean" })),
                ("thresholds_crossed", array(int())),
                ("calls", int()),
                ("unpriced_calls", int()),
            ],
            &["member"],
        ),
    })
}

/// The OpenAPI 3.0.3 document of every route of [`router`](super::router), as served at
/// `GET /api/v1/openapi.json`.
pub fn openapi_document() -> Value {
    let not_found = ("404", "No such session (or, for a tenant-bound key, one of another tenant).");
    let session_path = json!({ "name": "session_id", "in": "path", "required": true, "schema": { "type": "string" }, "example": "s-1" });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "tokenmeter HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Token usage, cost, cache and efficiency reports of a tokenmeter ledger. Query parameters also accept their camelCase spellings; a parameter an operation does not list is a 400 naming it (`/healthz` takes anything). A key bound to a tenant sees that tenant's data only: every report is narrowed to its records (the efficiency and cache reports then carry `scope`)."
        },
        "security": [ { "apiKey": [] }, { "bearer": [] } ],
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Liveness", "operationId": "healthz", "security": [],
                    "responses": {
                        "200": ok("Up.", reference("Health")),
                        "413": err("The request is larger than the configured limit."),
                        "503": err("The request took longer than the configured limit."),
                    }
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document", "operationId": "openapi", "security": [],
                    "responses": {
                        "200": ok("The OpenAPI document.", json!({ "type": "object", "required": ["openapi", "info", "paths", "components"] })),
                        "400": err("A query parameter: this operation takes none; `param` names it."),
                        "413": err("The request is larger than the configured limit."),
                        "503": err("The request took longer than the configured limit."),
                    }
                }
            },
            "/api/v1/analytics/token-efficiency": get(
                "The efficiency report (`TokenMeter::efficiency_report`; for a tenant-bound key `efficiency_report_for` that tenant)",
                "tokenEfficiency",
                vec![
                    window_param("time_range"),
                    param("group_by", "Grouping of the per-group scores (default session).", strings(&EFFICIENCY_GROUPS)),
                    param("efficiency_metric", "Validated; the report carries every metric.", strings(&["tokens_per_task", "cache_hit_rate", "reuse_rate"])),
                ],
                responses(ok("The efficiency report.", reference("EfficiencyReport")), &[]),
            ),
            "/api/v1/analytics/cache-performance": get(
                "The cache report (`TokenMeter::cache_report`; for a tenant-bound key `cache_report_for` that tenant)",
                "cachePerformance",
                vec![window_param("time_range")],
                responses(ok("The cache report.", reference("CacheReport")), &[]),
            ),
            "/api/v1/analytics/tokens": get(
                "Token usage over time (`TokenMeter::query` grouped by a time grain)",
                "tokens",
                vec![
                    param("range", "The window's length when `from` is not given (default week): it ends at `to`, else now, and starts at the first edge of the ledger's buckets after that length back.", strings(&["day", "week", "month", "year"])),
                    time_param("from", "Start (inclusive); default `range` before the end."),
                    time_param("to", "End (exclusive; a date means the end of that day)."),
                    param("model", "Only this model (any id of it the price book knows; `filters` shows the canonical id).", string()),
                    param("aggregation", "The time grain (default: hourly for a day, monthly for a year, daily otherwise).", strings(&["hourly", "daily", "weekly", "monthly"])),
                ],
                responses(ok("A query result grouped by time.", reference("QueryResult")), &[]),
            ),
            "/api/v1/token-usage/summary": get(
                "Usage by day, week or month (`TokenMeter::query` grouped by a time grain)",
                "usageSummary",
                vec![
                    time_param("start_date", "Start (inclusive); default 30 days before the end."),
                    time_param("end_date", "End (a date includes that day); default now."),
                    param("group_by", "The time grain (default day).", strings(&["day", "week", "month"])),
                ],
                responses(ok("A query result grouped by time.", reference("QueryResult")), &[]),
            ),
            "/api/v1/token-usage/{session_id}": {
                "get": {
                    "summary": "One session's usage (`TokenMeter::query` filtered by session)",
                    "operationId": "sessionUsage",
                    "parameters": [session_path.clone()],
                    "responses": responses(ok("A query result for the session.", reference("QueryResult")), &[not_found]),
                }
            },
            "/api/v1/token-usage/{session_id}/metrics": {
                "get": {
                    "summary": "One session's metrics",
                    "operationId": "sessionMetrics",
                    "parameters": [
                        session_path,
                        bool_param("include_tools", "Adds `tools`: the tool executions that ran inside the session, by tool."),
                        bool_param("include_cache", "Adds `cache`."),
                        bool_param(
                            "include_differential",
                            "Adds `differential`: the usage added in each hour with activity (each day for a session reaching back past the 48 hours of hourly buckets, each month past the 35 days of daily ones).",
                        ),
                    ],
                    "responses": responses(ok("The session's metrics.", reference("SessionMetrics")), &[not_found]),
                }
            },
            "/api/v1/budgets": get(
                "Every budget's state (`TokenMeter::budget_status`); with `user`, `session` or `tenant`, the states of \
                 the budgets a request of those values falls under (`TokenMeter::budget_status_for`: one user's own \
                 state of a budget of each user). A tenant key sees its tenant's budgets; another tenant is 404. \
                 Narrowed by `budget` and `min_utilization`; with `limit`, in pages of at most that many states, the \
                 next one in the `link` header",
                "budgets",
                vec![
                    param("user", "A user id: the budgets a request of this user falls under.", json!({ "type": "string" })),
                    param("session", "A session id, as `user`.", json!({ "type": "string" })),
                    param("tenant", "A tenant, as `user` (a tenant key: its own only).", json!({ "type": "string" })),
                    param("budget", "A budget's name: its states only (404 when the caller has no such budget).", json!({ "type": "string" })),
                    param(
                        "min_utilization",
                        "The states whose `utilization` is at least this (1 = the whole limit spent).",
                        json!({ "type": "number", "minimum": 0 }),
                    ),
                    param(
                        "limit",
                        "At most this many states; when more follow, the `link` header names the next page.",
                        json!({ "type": "integer", "minimum": 1, "maximum": 10000 }),
                    ),
                    param(
                        "after",
                        "A cursor from a `link` header: the states after the page it ended (opaque).",
                        json!({ "type": "string" }),
                    ),
                ],
                {
                    let mut r = responses(
                        ok("Budget states: by budget in the order they were added, a budget of each value's by value.", array(reference("BudgetState"))),
                        &[("404", "A tenant-bound key named another tenant in `tenant`, or `budget` names no budget the caller has.")],
                    );
                    r["200"]["headers"] = json!({
                        "link": {
                            "description": "With `limit`, when more states follow: `<PATH?QUERY>; rel=\"next\"`, the same query with `after` moved on.",
                            "schema": { "type": "string" }
                        }
                    });
                    r
                },
            ),
        },
        "components": {
            "securitySchemes": {
                "apiKey": { "type": "apiKey", "in": "header", "name": "x-api-key" },
                "bearer": { "type": "http", "scheme": "bearer" }
            },
            "schemas": schemas()
        }
    })
}
