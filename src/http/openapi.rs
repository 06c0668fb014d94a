//! The OpenAPI 3.0 document of the API, built in code.

use serde_json::{Value, json};

fn param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn window_param(name: &str) -> Value {
    param(
        name,
        "Window: 1h, 6h, 24h, 7d, 30d, all, or FROM..TO with RFC 3339 times (camelCase alias accepted). Default 7d.",
        json!({ "type": "string" }),
    )
}

fn time_param(name: &str, description: &str) -> Value {
    param(name, description, json!({ "type": "string", "description": "YYYY-MM-DD or an RFC 3339 time" }))
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
        "400": err("A bad query parameter: `param` names it."),
        "401": err("No API key, or a wrong one."),
        "413": err("The request is larger than the configured limit."),
        "503": err("The request took longer than the configured limit."),
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

/// The OpenAPI 3.0.3 document of every route of [`router`](super::router), as served at
/// `GET /api/v1/openapi.json`.
pub fn openapi_document() -> Value {
    let tenant403 = ("403", "The API key is bound to a tenant and this report covers every tenant.");
    let session_path = json!({ "name": "session_id", "in": "path", "required": true, "schema": { "type": "string" }, "example": "s-1" });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "tokenmeter HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Token usage, cost, cache and efficiency reports of a tokenmeter ledger. Query parameters also accept their camelCase spellings."
        },
        "security": [ { "apiKey": [] }, { "bearer": [] } ],
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Liveness", "operationId": "healthz", "security": [],
                    "responses": {
                        "200": ok("Up.", json!({ "type": "object", "required": ["status"], "properties": { "status": { "type": "string", "enum": ["ok"] } } })),
                        "413": err("The request is larger than the configured limit."),
                    }
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document", "operationId": "openapi", "security": [],
                    "responses": {
                        "200": ok("The OpenAPI document.", json!({ "type": "object" })),
                        "413": err("The request is larger than the configured limit."),
                    }
                }
            },
            "/api/v1/analytics/token-efficiency": get(
                "The efficiency report (`TokenMeter::efficiency_report`)",
                "tokenEfficiency",
                vec![
                    window_param("time_range"),
                    param("group_by", "Grouping of the per-group scores (default session).", json!({ "type": "string", "enum": ["session", "project", "model", "agent", "operation"] })),
                    param("efficiency_metric", "Accepted for compatibility; the report carries every metric.", json!({ "type": "string", "enum": ["tokens_per_task", "cache_hit_rate", "reuse_rate"] })),
                ],
                responses(ok("The efficiency report.", reference("EfficiencyReport")), &[tenant403]),
            ),
            "/api/v1/analytics/cache-performance": get(
                "The cache report (`TokenMeter::cache_report`)",
                "cachePerformance",
                vec![window_param("time_range")],
                responses(ok("The cache report.", reference("CacheReport")), &[tenant403]),
            ),
            "/api/v1/analytics/tokens": get(
                "Token usage over time (`TokenMeter::query` grouped by a time grain)",
                "tokens",
                vec![
                    param("range", "The window ending now when `from`/`to` are not given (default week).", json!({ "type": "string", "enum": ["day", "week", "month", "year"] })),
                    time_param("from", "Start (inclusive)."),
                    time_param("to", "End (exclusive; a date means the end of that day)."),
                    param("model", "Only this model.", json!({ "type": "string" })),
                    param("aggregation", "The time grain (default: hourly for a day, monthly for a year, daily otherwise).", json!({ "type": "string", "enum": ["hourly", "daily", "weekly", "monthly"] })),
                ],
                responses(ok("A query result grouped by time.", reference("QueryResult")), &[]),
            ),
            "/api/v1/token-usage/summary": get(
                "Usage by day, week or month (`TokenMeter::query` grouped by a time grain)",
                "usageSummary",
                vec![
                    time_param("start_date", "Start (inclusive); default 30 days back."),
                    time_param("end_date", "End (a date includes that day); default now."),
                    param("group_by", "The time grain (default day).", json!({ "type": "string", "enum": ["day", "week", "month"] })),
                ],
                responses(ok("A query result grouped by time.", reference("QueryResult")), &[]),
            ),
            "/api/v1/token-usage/{session_id}": {
                "get": {
                    "summary": "One session's usage (`TokenMeter::query` filtered by session)",
                    "operationId": "sessionUsage",
                    "parameters": [session_path.clone()],
                    "responses": responses(ok("A query result for the session.", reference("QueryResult")), &[("404", "No such session (or one of another tenant).")]),
                }
            },
            "/api/v1/token-usage/{session_id}/metrics": {
                "get": {
                    "summary": "One session's metrics",
                    "operationId": "sessionMetrics",
                    "parameters": [
                        session_path,
                        bool_param("include_tools", "Accepted for compatibility: the ledger does not attribute tool executions to sessions."),
                        bool_param("include_cache", "Adds `cache`."),
                        bool_param("include_differential", "Adds `differential`: the usage added in each hour with activity."),
                    ],
                    "responses": responses(ok("The session's metrics.", reference("SessionMetrics")), &[("404", "No such session (or one of another tenant).")]),
                }
            },
            "/api/v1/budgets": get(
                "Every budget's state (`TokenMeter::budget_status`); a tenant key sees its tenant's budgets",
                "budgets",
                vec![],
                responses(ok("Budget states.", json!({ "type": "array", "items": reference("BudgetState") })), &[]),
            ),
        },
        "components": {
            "securitySchemes": {
                "apiKey": { "type": "apiKey", "in": "header", "name": "x-api-key" },
                "bearer": { "type": "http", "scheme": "bearer" }
            },
            "schemas": {
                "Error": {
                    "type": "object", "required": ["error", "detail", "param"],
                    "properties": { "error": { "type": "string" }, "detail": { "type": "string" }, "param": { "type": "string", "nullable": true } }
                },
                "WindowBounds": { "type": "object", "required": ["from", "to"], "properties": { "from": time(), "to": time() } },
                "TokenFigures": {
                    "type": "object",
                    "required": ["input", "output", "cache_read", "cache_write_5m", "cache_write_1h", "cache_creation", "reasoning", "total"],
                    "properties": {
                        "input": int(), "output": int(), "cache_read": int(), "cache_write_5m": int(), "cache_write_1h": int(),
                        "cache_creation": int(), "reasoning": int(), "total": int()
                    }
                },
                "GroupRow": {
                    "type": "object",
                    "required": ["key", "calls", "failed_calls", "unmetered_calls", "unpriced_calls", "tasks", "tokens", "cost_usd", "cost_share", "token_share"],
                    "properties": {
                        "key": { "type": "string" }, "calls": int(), "failed_calls": int(), "unmetered_calls": int(), "unpriced_calls": int(),
                        "tasks": int(), "tokens": reference("TokenFigures"), "cost_usd": num(), "cost_share": num(), "token_share": num()
                    }
                },
                "QueryResult": {
                    "type": "object", "required": ["window", "filters", "totals", "groups"],
                    "properties": {
                        "window": reference("WindowBounds"),
                        "filters": { "type": "array", "items": { "type": "object", "required": ["dimension", "value"], "properties": { "dimension": { "type": "string" }, "value": { "type": "string" } } } },
                        "group_by": { "type": "object", "nullable": true },
                        "totals": reference("GroupRow"),
                        "groups": { "type": "array", "items": reference("GroupRow") }
                    }
                },
                "CacheMetrics": {
                    "type": "object",
                    "required": ["total_cache_hits", "total_cache_misses", "hit_rate", "call_hit_rate", "tokens_saved", "cost_saved", "cache_creation_tokens", "reusable_tokens", "reused_tokens", "context_reuse_rate"],
                    "properties": {
                        "total_cache_hits": int(), "total_cache_misses": int(), "hit_rate": num(), "call_hit_rate": num(), "tokens_saved": int(),
                        "cost_saved": num(), "cache_creation_tokens": int(), "reusable_tokens": int(), "reused_tokens": int(), "context_reuse_rate": num()
                    }
                },
                "CacheReport": {
                    "type": "object", "required": ["window", "cache_metrics", "grain", "time_series", "unread_cache_writes"],
                    "properties": {
                        "window": reference("WindowBounds"),
                        "cache_metrics": reference("CacheMetrics"),
                        "grain": { "type": "string", "enum": ["hour", "day", "week", "month"] },
                        "time_series": { "type": "array", "items": {
                            "type": "object", "required": ["timestamp", "hit_rate", "tokens_saved", "cost_saved"],
                            "properties": { "timestamp": time(), "hit_rate": num(), "tokens_saved": int(), "cost_saved": num() }
                        } },
                        "unread_cache_writes": {
                            "type": "object", "required": ["writes", "tokens", "wasted_usd"],
                            "properties": { "writes": int(), "tokens": int(), "wasted_usd": num() }
                        }
                    }
                },
                "EfficiencyReport": {
                    "type": "object", "required": ["window", "breakdowns"],
                    "properties": {
                        "window": reference("WindowBounds"),
                        "breakdowns": { "type": "array", "items": {
                            "type": "object",
                            "required": ["category", "calls", "input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens", "total_tokens", "cost_usd", "efficiency_score", "band"],
                            "properties": {
                                "category": { "type": "string" }, "calls": int(), "input_tokens": int(), "output_tokens": int(),
                                "cache_creation_tokens": int(), "cache_read_tokens": int(), "total_tokens": int(), "cost_usd": num(),
                                "efficiency_score": num(), "band": { "type": "string" }
                            }
                        } }
                    }
                },
                "SessionMetrics": {
                    "type": "object", "required": ["session_id", "window", "totals"],
                    "properties": {
                        "session_id": { "type": "string" },
                        "window": reference("WindowBounds"),
                        "totals": reference("GroupRow"),
                        "cache": reference("CacheMetrics"),
                        "differential": { "type": "array", "items": reference("GroupRow") }
                    }
                },
                "BudgetState": {
                    "type": "object", "required": ["budget", "scope", "period", "action", "period_start", "resets_at", "spent", "limit", "remaining"],
                    "properties": {
                        "budget": { "type": "string" }, "period_start": time(), "resets_at": time()
                    }
                }
            }
        }
    })
}
