//! `tokenmeter mcp`: a Model Context Protocol server over stdio with one tool, `token_usage`.
//!
//! Built on the official Rust SDK (`rmcp`): the SDK speaks the protocol (initialize, version negotiation,
//! `tools/list`, `tools/call`, cancellation); this module lists the tool and answers calls with the same
//! library reports the other commands print (see `answer`).
//!
//! # Freshness
//!
//! Every `tools/call` reads the source again (the journal, the Claude Code transcripts or the records file)
//! and builds a new ledger from it, at the current time (or at `--now`). A journal or transcript that grows
//! while the server runs is therefore always answered in full, at the cost of one read per call; reading is
//! the same fast path the other commands use. The work runs on Tokio's blocking pool, so the protocol loop
//! keeps answering (and can cancel) while a large source is read. A `--budgets` file is read once, at start.
//!
//! # Output
//!
//! Stdout carries protocol messages only. Notes (skipped lines, a source that cannot be read, the start-up
//! line) go to stderr, which MCP clients keep in their logs; `--quiet` silences the notes.
//!
//! # Errors
//!
//! A bad argument, or a source that cannot be read, is a tool error result (`isError: true`) whose text says
//! what is wrong and what is allowed: the agent sees it and can correct its call. Only a call to an unknown
//! tool, or a `tools/call` whose params are not a call (no `name`, `arguments` not an object), is a JSON-RPC
//! error (-32602).

mod answer;
mod tool;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, CustomRequest, CustomResult, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use tokenmeter::Budget;

use crate::cli::{McpArgs, SourceArgs};
use crate::source::Context;
use crate::{CliError, CliResult};

/// Budgets loaded from `--budgets`.
#[derive(Debug)]
struct BudgetFile {
    budgets: Vec<Budget>,
}

/// What every call works from.
#[derive(Debug)]
struct ServerState {
    source: SourceArgs,
    ctx: Context,
    budgets: Option<BudgetFile>,
    /// True once the first read has printed its notes.
    noted: AtomicBool,
    /// Answers being computed (each reads the whole source): at most [`MAX_ANSWERS`] at once, the other calls
    /// wait their turn, so a client sending many calls at once cannot have the source read into memory that
    /// many times.
    answers: Arc<tokio::sync::Semaphore>,
}

/// Tool calls answered at once.
const MAX_ANSWERS: usize = 2;

/// The server: one tool over one source.
#[derive(Debug, Clone)]
struct TokenUsageServer {
    state: Arc<ServerState>,
    tool: Tool,
}

/// Runs the server until the client closes stdin.
pub(crate) fn run(source: &SourceArgs, ctx: &Context, args: &McpArgs) -> CliResult {
    let budgets = match &args.budgets {
        Some(path) => Some(load_budgets(path, ctx.time_zone)?),
        None => None,
    };
    if let Some(b) = &budgets {
        // What a `budget` command would refuse (a dollar budget on a model without a price) stops the server
        // here, as a bad file does, not every `track` call later; quietly (no record to check dimensions on).
        crate::commands::budget::remove_left_private_dirs(false);
        crate::commands::budget::evaluate(b.budgets.clone(), &[], &ctx.with(ctx.now, true))?;
    }
    let state = ServerState {
        source: SourceArgs {
            journal: source.journal.clone(),
            claude_code: source.claude_code.clone(),
            records: source.records.clone(),
        },
        ctx: ctx.with(ctx.now, ctx.quiet),
        budgets,
        noted: AtomicBool::new(false),
        answers: Arc::new(tokio::sync::Semaphore::new(MAX_ANSWERS)),
    };
    ctx.note(&format!(
        "tokenmeter mcp: serving the {} tool over stdio, reading {} on each call",
        tool::TOOL_NAME,
        describe_source(&state.source)
    ));
    let server = TokenUsageServer { state: Arc::new(state), tool: tool::tool() };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::data(format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(async move {
        let service = match server.serve(rmcp::transport::stdio()).await {
            Ok(service) => service,
            // The client closed stdin before the session began (it started the server and changed its mind, or
            // probed it): a normal end, as closing it later is.
            Err(rmcp::service::ServerInitializeError::ConnectionClosed(_)) => return Ok(()),
            Err(e) => return Err(CliError::data(format!("MCP session did not start: {e}"))),
        };
        service.waiting().await.map_err(|e| CliError::data(format!("MCP session failed: {e}")))?;
        Ok(())
    });
    // On stdin's end the SDK sends the answers ready within 5 s; a call still reading a large source after that
    // is abandoned, not waited for.
    runtime.shutdown_timeout(Duration::from_millis(200));
    // A `track` call abandoned mid-evaluation leaves its private copy of the records: removed here (one killed
    // by a signal is removed by the next `mcp --budgets` or `budget` run).
    if args.budgets.is_some() {
        crate::commands::budget::remove_left_private_dirs(true);
    }
    result
}

/// The budgets of `path`; `time_zone` (`--tz`) for those whose table has no `time_zone`.
fn load_budgets(path: &std::path::Path, time_zone: chrono_tz::Tz) -> CliResult<BudgetFile> {
    if !path.exists() {
        return Err(CliError::data(format!(
            "budgets file {} does not exist (format in the tokenmeter::budget docs)",
            path.display()
        )));
    }
    let budgets = tokenmeter::budget::load_budgets_file_with_time_zone(path, time_zone)
        .map_err(|e| CliError::data(e.to_string()))?;
    Ok(BudgetFile { budgets })
}

fn describe_source(s: &SourceArgs) -> String {
    let show = |p: &PathBuf| p.display().to_string();
    if let Some(f) = &s.records {
        format!("the records file {}", show(f))
    } else if let Some(d) = &s.claude_code {
        if d.as_os_str().is_empty() {
            "the Claude Code transcripts".to_owned()
        } else {
            format!("the Claude Code transcripts in {}", show(d))
        }
    } else if let Some(d) = &s.journal {
        format!("the journal in {}", show(d))
    } else {
        match crate::source::default_journal_dir() {
            Some(d) => format!("the journal in {}", show(&d)),
            None => "the journal".to_owned(),
        }
    }
}

/// The client-to-server requests MCP defines (the SDK reads each into its own type when its params fit).
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
];

fn tool_error(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

// === impl ServerHandler ===

impl ServerHandler for TokenUsageServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("tokenmeter", env!("CARGO_PKG_VERSION"))
                    .with_title("tokenmeter")
                    .with_description("Claude token usage and cost, from tracing spans or Claude Code transcripts"),
            )
            .with_instructions(
                "One tool, token_usage: call it with operation analyze (usage, efficiency, breakdowns by agent, \
                 operation, model, project, session, cost or time), optimize (savings, optionally against \
                 optimization_target percent), track (spend, rate, budgets), forecast (next days, the month to date \
                 and the month's total), compare (against the previous period) or blocks (the 5-hour usage blocks: \
                 what the open one has used and has left), and a timeframe of 1h, 6h, 24h (default), 7d, 30d or all.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![self.tool.clone()]))
    }

    /// The SDK hands over as "custom" every request it cannot read as one it knows: a method it does not know
    /// (-32601, as the SDK answers), but also a `tools/call` whose params do not fit (no `name`, `arguments`
    /// that are not an object, no params). That is -32602 Invalid params (JSON-RPC 2.0, and MCP for
    /// `tools/call`), not "method not found".
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        if request.method == "tools/call" {
            let reason = match request.params_as::<CallToolRequestParams>() {
                Err(e) => e.to_string(),
                Ok(None) => "missing params".to_owned(),
                Ok(Some(_)) => "unreadable params".to_owned(),
            };
            return Err(ErrorData::invalid_params(format!("invalid params for tools/call: {reason}"), None));
        }
        // Any other method MCP defines reaches here only when its params did not fit: invalid params too.
        if KNOWN_METHODS.contains(&request.method.as_str()) {
            return Err(ErrorData::invalid_params(format!("invalid params for {}", request.method), None));
        }
        Err(ErrorData::new(
            rmcp::model::ErrorCode::METHOD_NOT_FOUND,
            format!("Method not found: {}", request.method),
            None,
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        (name == tool::TOOL_NAME).then(|| self.tool.clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name != tool::TOOL_NAME {
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{}`: this server has one tool, {}", request.name, tool::TOOL_NAME),
                None,
            ));
        }
        let req = match tool::TokenUsageRequest::parse(request.arguments.as_ref()) {
            Ok(r) => r,
            Err(e) => return Ok(tool_error(e.0).into()),
        };
        let state = Arc::clone(&self.state);
        // The permit goes with the answer: a call the client gives up on still holds it until its read ends.
        // (Acquiring fails only on a closed semaphore, and nothing closes this one.)
        let Ok(permit) = Arc::clone(&self.state.answers).acquire_owned().await else {
            return Err(ErrorData::internal_error("the token_usage queue is closed", None));
        };
        let outcome = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            answer::answer(&state, &req)
        })
        .await;
        let result = match outcome {
            Ok(Ok(answer)) => {
                // The summary for people and models; the JSON again as text for clients that ignore
                // structured content (the MCP specification asks for it).
                let json = answer.structured.to_string();
                let mut r = CallToolResult::structured(answer.structured);
                r.content = vec![ContentBlock::text(answer.summary), ContentBlock::text(json)];
                r
            }
            Ok(Err(message)) => {
                self.state.ctx.note(&format!("tokenmeter mcp: {message}"));
                tool_error(message)
            }
            // A bug in answering is this call's failure, a tool result like any other (the protocol's errors
            // are for unknown tools and unreadable parameters).
            Err(e) if e.is_panic() => {
                let message = "the token_usage call failed (a bug in tokenmeter: please report it)".to_owned();
                self.state.ctx.note(&format!("tokenmeter mcp: {message}"));
                tool_error(message)
            }
            Err(e) => {
                return Err(ErrorData::internal_error(format!("the token_usage call did not finish: {e}"), None));
            }
        };
        Ok(result.into())
    }
}
