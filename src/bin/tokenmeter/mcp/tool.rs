//! The `token_usage` tool: its arguments, how they are checked, and its input and output JSON schemas.
//!
//! Arguments are checked here, by hand, rather than deserialized into a typed struct: a typed parse would
//! turn a wrong argument into a JSON-RPC protocol error, which MCP clients show as an opaque failure. Every
//! problem found here becomes a tool error result (`isError: true`) whose text says what is wrong and what
//! is allowed, so that the agent can correct its call.

use std::fmt;
use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};
use tokenmeter::ledger::{Dimension, Window};

/// The tool's name.
pub(super) const TOOL_NAME: &str = "token_usage";

/// The argument names, in the order the schema lists them.
const ARGUMENTS: [&str; 4] = ["operation", "timeframe", "breakdown_type", "optimization_target"];

/// What the caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operation {
    /// Usage summary, efficiency scores, cache figures, breakdowns.
    Analyze,
    /// The efficiency report's suggestions, measured against a saving target.
    Optimize,
    /// Spend so far in the timeframe, its rate, budgets.
    Track,
    /// The library's forecast.
    Forecast,
    /// The timeframe against the same stretch one period before it (to the hour).
    Compare,
    /// Calls in 5-hour blocks (Claude's usage windows), the open block's rate and projection.
    Blocks,
}

impl Operation {
    const ALL: [Operation; 6] = [
        Operation::Analyze,
        Operation::Optimize,
        Operation::Track,
        Operation::Forecast,
        Operation::Compare,
        Operation::Blocks,
    ];

    pub(super) const fn name(self) -> &'static str {
        match self {
            Operation::Analyze => "analyze",
            Operation::Optimize => "optimize",
            Operation::Track => "track",
            Operation::Forecast => "forecast",
            Operation::Compare => "compare",
            Operation::Blocks => "blocks",
        }
    }
}

/// A rolling window ending now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timeframe {
    LastHour,
    Last6Hours,
    Last24Hours,
    Last7Days,
    Last30Days,
    All,
}

impl Timeframe {
    const ALL: [Timeframe; 6] = [
        Timeframe::LastHour,
        Timeframe::Last6Hours,
        Timeframe::Last24Hours,
        Timeframe::Last7Days,
        Timeframe::Last30Days,
        Timeframe::All,
    ];

    /// The timeframe when none is given (every operation but `forecast`).
    pub(super) const DEFAULT: Timeframe = Timeframe::Last24Hours;

    pub(super) const fn name(self) -> &'static str {
        match self {
            Timeframe::LastHour => "1h",
            Timeframe::Last6Hours => "6h",
            Timeframe::Last24Hours => "24h",
            Timeframe::Last7Days => "7d",
            Timeframe::Last30Days => "30d",
            Timeframe::All => "all",
        }
    }

    /// For sentences: `the last 24 hours`.
    pub(super) const fn phrase(self) -> &'static str {
        match self {
            Timeframe::LastHour => "the last hour",
            Timeframe::Last6Hours => "the last 6 hours",
            Timeframe::Last24Hours => "the last 24 hours",
            Timeframe::Last7Days => "the last 7 days",
            Timeframe::Last30Days => "the last 30 days",
            Timeframe::All => "everything recorded",
        }
    }

    pub(super) const fn window(self) -> Window {
        match self {
            Timeframe::LastHour => Window::LastHour,
            Timeframe::Last6Hours => Window::Last6Hours,
            Timeframe::Last24Hours => Window::Last24Hours,
            Timeframe::Last7Days => Window::Last7Days,
            Timeframe::Last30Days => Window::Last30Days,
            Timeframe::All => Window::All,
        }
    }
}

/// One kind of breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BreakdownType {
    Agent,
    Operation,
    Model,
    Project,
    Session,
    Cost,
    Time,
}

impl BreakdownType {
    const ALL: [BreakdownType; 7] = [
        BreakdownType::Agent,
        BreakdownType::Operation,
        BreakdownType::Model,
        BreakdownType::Project,
        BreakdownType::Session,
        BreakdownType::Cost,
        BreakdownType::Time,
    ];

    pub(super) const fn name(self) -> &'static str {
        match self {
            BreakdownType::Agent => "agent",
            BreakdownType::Operation => "operation",
            BreakdownType::Model => "model",
            BreakdownType::Project => "project",
            BreakdownType::Session => "session",
            BreakdownType::Cost => "cost",
            BreakdownType::Time => "time",
        }
    }

    /// The ledger dimension of a per-value breakdown.
    pub(super) const fn dimension(self) -> Option<Dimension> {
        match self {
            BreakdownType::Agent => Some(Dimension::Agent),
            BreakdownType::Operation => Some(Dimension::Operation),
            BreakdownType::Model => Some(Dimension::Model),
            BreakdownType::Project => Some(Dimension::Project),
            BreakdownType::Session => Some(Dimension::Session),
            BreakdownType::Cost | BreakdownType::Time => None,
        }
    }
}

/// A checked `token_usage` call.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TokenUsageRequest {
    pub(super) operation: Operation,
    /// `None` when the caller gave none.
    pub(super) timeframe: Option<Timeframe>,
    /// In the order given, without repeats.
    pub(super) breakdowns: Vec<BreakdownType>,
    /// Percent of the timeframe's spend, `0 < x <= 100`.
    pub(super) optimization_target: Option<f64>,
}

/// A bad argument: the text of the tool error the caller sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ArgumentError(pub(super) String);

impl fmt::Display for ArgumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> String {
    let v: Vec<&str> = all.iter().map(|x| name(*x)).collect();
    v.join(", ")
}

/// The most characters of a caller's value a message repeats.
const SHOWN_CHARS: usize = 64;

/// A caller's string as a message quotes it: Rust-escaped, and cut after [`SHOWN_CHARS`] characters with its
/// length (an agent that sends a megabyte by mistake does not get it back in every error).
fn shown(s: &str) -> String {
    match s.char_indices().nth(SHOWN_CHARS) {
        None => format!("{s:?}"),
        Some((end, _)) => format!("{:?}… ({} bytes)", &s[..end], s.len()),
    }
}

/// What a JSON value is, for messages: `a number (5)`, `an array`, ….
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) => format!("a string ({})", shown(s)),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

impl TokenUsageRequest {
    /// Checks a call's arguments. `null` counts as absent for the optional ones.
    pub(super) fn parse(arguments: Option<&JsonObject>) -> Result<Self, ArgumentError> {
        let empty = JsonObject::new();
        let args = arguments.unwrap_or(&empty);
        let err = |msg: String| Err(ArgumentError(msg));
        for key in args.keys() {
            if !ARGUMENTS.contains(&key.as_str()) {
                let key = match key.chars().any(char::is_control) || key.chars().nth(SHOWN_CHARS).is_some() {
                    true => shown(key),
                    false => format!("`{key}`"),
                };
                return err(format!("unknown argument {key}: the arguments are {}", ARGUMENTS.join(", ")));
            }
        }
        let operations = names(&Operation::ALL, Operation::name);
        let operation = match args.get("operation") {
            None | Some(Value::Null) => {
                return err(format!("missing argument `operation`: give one of {operations}"));
            }
            Some(Value::String(s)) => {
                let t = s.trim().to_ascii_lowercase();
                match Operation::ALL.into_iter().find(|o| o.name() == t) {
                    Some(o) => o,
                    None => return err(format!("unknown operation {}: expected one of {operations}", shown(s))),
                }
            }
            Some(v) => return err(format!("`operation` must be a string, one of {operations}; got {}", describe(v))),
        };

        let timeframes = names(&Timeframe::ALL, Timeframe::name);
        let timeframe = match args.get("timeframe") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                let t = s.trim().to_ascii_lowercase();
                match Timeframe::ALL.into_iter().find(|x| x.name() == t) {
                    Some(x) => Some(x),
                    None => return err(format!("unknown timeframe {}: expected one of {timeframes}", shown(s))),
                }
            }
            Some(v) => return err(format!("`timeframe` must be a string, one of {timeframes}; got {}", describe(v))),
        };

        let kinds = names(&BreakdownType::ALL, BreakdownType::name);
        let breakdowns = match args.get("breakdown_type") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => {
                let mut out = Vec::new();
                // ASCII whitespace only, as `breakdown_pattern` says to clients.
                for part in s.split(',').map(str::trim_ascii).filter(|p| !p.is_empty()) {
                    let t = part.to_ascii_lowercase();
                    match BreakdownType::ALL.into_iter().find(|b| b.name() == t) {
                        Some(b) if !out.contains(&b) => out.push(b),
                        Some(_) => {}
                        None => {
                            return err(format!(
                                "unknown breakdown type {} in `breakdown_type`: expected a comma-separated list \
                                 of {kinds}",
                                shown(part)
                            ));
                        }
                    }
                }
                out
            }
            Some(v) => {
                return err(format!(
                    "`breakdown_type` must be a string of comma-separated names from {kinds} (e.g. \"agent,cost\"); \
                     got {}",
                    describe(v)
                ));
            }
        };

        let optimization_target = match args.get("optimization_target") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) if x > 0.0 && x <= 100.0 => Some(x),
                _ => {
                    return err(format!(
                        "`optimization_target` {n} is out of range: give a percentage of the timeframe's spend, \
                         greater than 0 and at most 100"
                    ));
                }
            },
            Some(v) => {
                return err(format!(
                    "`optimization_target` must be a number, a percentage greater than 0 and at most 100 (e.g. 20); \
                     got {}",
                    describe(v)
                ));
            }
        };

        Ok(TokenUsageRequest { operation, timeframe, breakdowns, optimization_target })
    }
}

// === schemas ===

/// The schema's `pattern` for `breakdown_type`: exactly the strings [`TokenUsageRequest::parse`] accepts (a
/// comma-separated list of names in any ASCII case, ASCII whitespace around each, empty items allowed), so a
/// client that validates against the schema sends nothing the server rejects. ECMA-262 syntax, no flags.
fn breakdown_pattern() -> String {
    let name = |n: &str| -> String {
        n.chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                } else {
                    c.to_string()
                }
            })
            .collect()
    };
    let names: Vec<String> = BreakdownType::ALL.iter().map(|b| name(b.name())).collect();
    let item = format!("[ \\t\\n\\f\\r]*(?:{})?[ \\t\\n\\f\\r]*", names.join("|"));
    format!("^{item}(?:,{item})*$")
}

fn object(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => Arc::new(JsonObject::new()),
    }
}

/// The JSON schema of the arguments.
pub(super) fn input_schema() -> Arc<JsonObject> {
    let operations: Vec<&str> = Operation::ALL.iter().map(|o| o.name()).collect();
    let timeframes: Vec<&str> = Timeframe::ALL.iter().map(|t| t.name()).collect();
    object(json!({
        "type": "object",
        "properties": {
            "operation": {
                "type": "string",
                "enum": operations,
                "description": "analyze: usage summary, efficiency score, cache figures and the requested breakdowns. \
                    optimize: suggestions with the dollars each would have saved; with optimization_target, which of \
                    them reach that saving and whether it is reachable. track: spend so far in the timeframe, its \
                    rate, and budgets when the server has any. forecast: the next days' spend with a 90% band and \
                    the month's projected total. compare: the timeframe against the same stretch one period before it \
                    (to the hour); calls, tokens and cost change as rates when the two differ in length. blocks: the \
                    calls in 5-hour blocks (Claude's usage windows, as ccusage's blocks) opened in the timeframe, and \
                    the block open now: its time left, its rate and its tokens and cost by its close."
            },
            "timeframe": {
                "type": "string",
                "enum": timeframes,
                // No `default` keyword: forecast's default (7 days) is not 24h, and clients that fill in
                // schema defaults would send 24h, a one-day forecast.
                "description": "Rolling window ending now (1h, 6h, 24h: whole minutes or local hours; 7d, 30d: \
                    whole local days; all: everything recorded). Default 24h. For forecast it is the horizon: \
                    1h to 24h forecast the next day, 7d the next 7 days, 30d and all the next 30 days; default 7 days. For \
                    blocks, the blocks with a call in the window, to the minute (24h at 10:30 is from 10:30 \
                    yesterday), and the open one."
            },
            "breakdown_type": {
                "type": "string",
                "pattern": breakdown_pattern(),
                "description": "Comma-separated breakdowns to add (analyze, optimize, track): agent, operation, \
                    model, project, session (calls, tokens by kind, cost and shares per value, most expensive first; \
                    project and session list the 20 most expensive), cost (spend by token kind, web search fees and \
                    by model), time (per local hour up to 24h, per local day beyond). Example: \"project,cost\"."
            },
            "optimization_target": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": 100,
                "description": "For optimize: the saving wanted, in percent of the timeframe's spend (e.g. 20)."
            }
        },
        "required": ["operation"],
        "additionalProperties": false
    }))
}

/// The JSON schema of the structured result. Which properties are present depends on the operation; the
/// nested objects are the tokenmeter library's report types in snake_case.
pub(super) fn output_schema() -> Arc<JsonObject> {
    object(json!({
        "type": "object",
        "properties": {
            "operation": { "type": "string", "description": "The operation answered." },
            "timeframe": { "type": "string", "description": "The timeframe used (the default when none was given)." },
            "now": { "type": "string", "description": "The time the figures were computed at (RFC 3339)." },
            "time_zone": { "type": "string", "description": "Time zone of local hours, days and months." },
            "window": {
                "type": "object",
                "description": "The resolved window, {from, to} (RFC 3339, to excluded; blocks counts a call \
                    stamped at now too, as every call up to now); for compare, the current period.",
                "properties": { "from": { "type": "string" }, "to": { "type": "string" } },
                "required": ["from", "to"]
            },
            "source": {
                "type": "object",
                "description": "What was read: kind (journal, claude_code, records), paths, files, calls, skipped \
                    lines."
            },
            "notes": {
                "type": "array",
                "items": { "type": "string" },
                "description": "Remarks on the answer: arguments an operation does not use, caveats."
            },
            "summary": { "type": "object", "description": "analyze: the library's UsageSummary." },
            "efficiency_scores": {
                "type": "object",
                "description": "analyze: EfficiencyScores (overall 0-100, band, components, cache_hit_rate, ...)."
            },
            "cache": { "type": "object", "description": "analyze: CacheMetrics of the timeframe." },
            "breakdowns": {
                "type": "object",
                "description": "The requested breakdowns: agent, operation, model, project, session and time are \
                    ledger query results (totals and groups); cost is {window, total_usd, by_kind, unpriced_calls, \
                    by_model}; values_not_shown counts the values past the 20 listed, by breakdown."
            },
            "efficiency": {
                "type": "object",
                "description": "optimize: the library's EfficiencyReport, with optimization_suggestions."
            },
            "total_savings_usd": { "type": "number", "description": "optimize: every suggestion's saving, summed." },
            "total_savings_percent": {
                "type": "number",
                "description": "optimize: that sum in percent of the timeframe's spend."
            },
            "target": {
                "type": ["object", "null"],
                "description": "optimize: the optimization_target's evaluation, or null without one."
            },
            "spend": { "type": "object", "description": "track: calls, tokens by kind, cost in the timeframe." },
            "rate": { "type": "object", "description": "track: spend, tokens and calls per hour over the timeframe." },
            "monthly_projection_usd": {
                "type": "number",
                "description": "track: the timeframe's daily spend over the whole current month."
            },
            "by_model": { "type": "array", "description": "track: spend per model, most expensive first." },
            "budgets": {
                "type": ["array", "null"],
                "description": "track: BudgetState of each budget given with --budgets, or null without a budgets \
                    file."
            },
            "over_budget": {
                "type": "array",
                "items": { "type": "string" },
                "description": "track: budgets over their limit."
            },
            "forecast": { "type": "object", "description": "forecast: the library's Forecast." },
            "horizon_days": { "type": "integer", "description": "forecast: days forecast." },
            "monthly_limit_usd": {
                "type": ["number", "null"],
                "description": "forecast: the monthly USD budget over everything that the forecast projects \
                    against, if any."
            },
            "comparison": {
                "type": "object",
                "description": "compare: the library's Comparison (a: previous, b: current)."
            },
            "blocks": {
                "type": "object",
                "description": "blocks: the library's BlocksReport (block_hours, blocks opened in the timeframe and \
                    the open one, active: the open block's rates and projection, or null)."
            },
            "blocks_not_shown": {
                "type": "integer",
                "description": "blocks: earlier blocks left out (before the timeframe, or past the 48 most recent)."
            },
            "largest_closed_block_tokens": {
                "type": ["integer", "null"],
                "description": "blocks: the most tokens a closed block used, of all the calls read."
            }
        },
        "required": ["operation", "timeframe", "now", "time_zone", "source"]
    }))
}

/// The tool as `tools/list` shows it.
pub(super) fn tool() -> Tool {
    Tool::new(
        TOOL_NAME,
        "Token usage and cost of Claude calls, from the tokenmeter journal, Claude Code transcripts or a file of \
         call records: analyze usage and efficiency, find savings, track spend and budgets, forecast the month, \
         compare with the previous period, follow the 5-hour usage blocks. Returns the tokenmeter library's reports as structured JSON, with a \
         short summary in text.",
        input_schema(),
    )
    .with_title("Token usage and cost")
    .with_raw_output_schema(output_schema())
    .with_annotations(
        ToolAnnotations::with_title("Token usage and cost")
            .read_only(true)
            .destructive(false)
            .idempotent(true)
            .open_world(false),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<TokenUsageRequest, ArgumentError> {
        match v {
            Value::Object(m) => TokenUsageRequest::parse(Some(&m)),
            _ => TokenUsageRequest::parse(None),
        }
    }

    #[test]
    fn reads_good_arguments() {
        let r = parse(json!({"operation": " Optimize", "timeframe": "7D", "breakdown_type": "agent, cost,agent,,",
            "optimization_target": 12.5}))
        .unwrap();
        assert_eq!(r.operation, Operation::Optimize);
        assert_eq!(r.timeframe, Some(Timeframe::Last7Days));
        assert_eq!(r.breakdowns, vec![BreakdownType::Agent, BreakdownType::Cost]);
        assert_eq!(r.optimization_target, Some(12.5));
        let r = parse(json!({"operation": "track", "timeframe": null, "optimization_target": 100})).unwrap();
        assert_eq!((r.timeframe, r.optimization_target), (None, Some(100.0)));
    }

    /// The schema's pattern and the handler agree on every string: the names in any case, separators,
    /// whitespace (ASCII, and characters `str::trim` would take but the pattern does not), and near misses.
    #[test]
    fn the_breakdown_pattern_accepts_what_the_handler_accepts() {
        let schema = input_schema();
        let pattern = schema["properties"]["breakdown_type"]["pattern"].as_str().unwrap();
        let re = regex::Regex::new(pattern).unwrap();
        let parts = [
            "agent",
            "Agent",
            "OPERATION",
            "model",
            "cost",
            "time",
            "tIMe",
            "region",
            "agents",
            "agen",
            "",
            " ",
            "\t",
            "\n",
            "\r",
            "\x0c",
            "\u{a0}",
            "\u{85}",
            "\u{feff}",
            ",",
            ",,",
            " agent ",
            "co st",
            "model\n",
            "x",
        ];
        let mut checked = 0;
        for a in parts {
            for b in parts {
                for sep in ["", ","] {
                    let s = format!("{a}{sep}{b}");
                    let accepted = parse(json!({"operation": "track", "breakdown_type": s})).is_ok();
                    assert_eq!(re.is_match(&s), accepted, "{s:?}: pattern and handler disagree");
                    checked += usize::from(accepted);
                }
            }
        }
        assert!(checked > 100, "only {checked} accepted strings");
    }

    #[test]
    fn says_what_is_wrong() {
        let msg = |v: Value| parse(v).unwrap_err().0;
        assert!(msg(json!(null)).contains("missing argument `operation`"));
        assert!(msg(json!({"operation": "guess"})).contains("expected one of analyze, optimize, track, forecast"));
        assert!(msg(json!({"operation": 3})).contains("got a number (3)"));
        assert!(msg(json!({"operation": "track", "timeframe": "2w"})).contains("1h, 6h, 24h, 7d, 30d, all"));
        assert!(msg(json!({"operation": "track", "breakdown_type": "agent,region"})).contains("\"region\""));
        assert!(msg(json!({"operation": "track", "breakdown_type": ["agent"]})).contains("got an array"));
        assert!(msg(json!({"operation": "optimize", "optimization_target": 0})).contains("out of range"));
        assert!(msg(json!({"operation": "optimize", "optimization_target": 100.5})).contains("out of range"));
        assert!(msg(json!({"operation": "optimize", "optimization_target": "20%"})).contains("must be a number"));
        assert!(msg(json!({"operation": "track", "time_frame": "1h"})).contains("unknown argument `time_frame`"));
    }
}
