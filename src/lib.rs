//! # tokenmeter
//!
//! Live token and cost metering for Claude (and other LLM APIs) from the `tracing` spans your code already
//! emits.
//!
//! ## Concepts
//!
//! - **Capture** ([`capture`]): a `tracing_subscriber` layer that recognizes *LLM call spans* by their fields
//!   (OTel GenAI semconv, Anthropic's raw `usage` names, OpenAI-style names) and turns each into one
//!   [`CallRecord`] when the span closes. Attribution dimensions (session, user, tenant, project, agent,
//!   operation, task) are inherited from the nearest ancestor span that has them.
//! - **Money** ([`pricing`]): a [`PriceBook`] prices each call exactly, in integer pico-USD, with Anthropic's
//!   cache, batch, long-context, fast-mode and regional-inference rules (US-only, Bedrock and Vertex AI regional
//!   endpoints), plus the per-search fee of web searches.
//!   Unknown models are *unpriced*, never $0.
//! - **Read-out**: [`TokenMeter`] is the cheap, clonable handle: totals by model, tools, capture health; and
//!   [`RecordSink`]s receive every record.
//!
//! ## Quickstart
//!
//! ```
//! use tracing_subscriber::prelude::*;
//!
//! let meter = tokenmeter::TokenMeter::builder().build();
//! let subscriber = tracing_subscriber::registry().with(meter.layer());
//! tracing::subscriber::with_default(subscriber, || {
//!     let _session = tracing::info_span!("conversation", session.id = "s-1").entered();
//!     let _call = tracing::info_span!(
//!         "chat claude-sonnet-4-5",
//!         gen_ai.provider.name = "anthropic",
//!         gen_ai.request.model = "claude-sonnet-4-5",
//!         input_tokens = 20u64,               // Anthropic raw: uncached input
//!         cache_read_input_tokens = 10_000u64,
//!         output_tokens = 400u64,
//!     )
//!     .entered();
//! });
//! let usage = meter.model_usage();
//! assert_eq!(&*usage[0].model, "claude-sonnet-4-5");
//! assert_eq!(usage[0].totals.cost.to_string(), "$0.00906");
//! ```
//!
//! ## Cost model
//!
//! Spans and events that carry none of the contract's fields are recognized per callsite and ignored (the layer
//! never filters: other layers see them as before), so the layer costs them one per-thread hash lookup (and a span
//! lookup at close and a thread-local flag read at each exit). An LLM
//! call costs one boxed span extension, the record's strings, and one uncontended per-thread-shard lock at
//! close for capture and pricing; then what is on: the ledger (on by default: a per-thread shard, and a
//! session stripe's lock for a call in a session), a short lock per matching budget, the OTLP series' shard,
//! and a non-blocking push onto the journal's queue. About 1.5 µs a call with everything on, on the machine the
//! crate README's "Performance" section measured.
//!
//! ## Feature flags
//!
//! - `otlp` (default): OTLP metrics export ([`export::otlp`]) through the OpenTelemetry SDK.
//! - `otlp-tls`: `https://` collector endpoints (rustls).
//! - `webhook`: budget alerts by webhook (JSON POST off the recording thread).
//! - `cli`: the `tokenmeter` command-line tool.
//! - `http`: the HTTP JSON API (the `tokenmeter::http` module, built with this feature): an axum router and a
//!   one-call server.
//!
//! Capture, pricing, the ledger, budgets and the journal are always built.
//! So is [`transcripts`], the Claude Code transcript reader the CLI uses (it needs no extra dependency).
//!
//! ## MSRV
//!
//! Rust 1.95.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
// docs.rs builds with `--cfg docsrs` (Cargo.toml's `package.metadata.docs.rs`): items behind a feature say which.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod analysis;
pub mod budget;
pub mod capture;
pub mod clock;
mod erase;
pub mod export;
#[cfg(feature = "http")]
pub mod http;
pub mod instrument;
pub mod journal;
pub mod ledger;
mod lossy_path;
mod meter;
#[cfg(any(feature = "http", feature = "otlp", feature = "webhook"))]
mod net;
pub mod pricing;
pub mod record;
mod redact;
mod shards;
mod toml_spans;
pub mod transcripts;

pub use analysis::{Band, EfficiencyReport, UsageSummary};
pub use budget::{
    Budget, BudgetAction, BudgetAlert, BudgetError, BudgetExceeded, BudgetLimit, BudgetPeriod, BudgetScope,
    BudgetState, RequestScope,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use erase::Erased;
#[cfg(feature = "otlp")]
pub use export::otlp::{ExportStatus, MetricAttributes, OtlpConfig, OtlpError};
pub use journal::{FsyncPolicy, JournalConfig, JournalError, JournalStats, WriterPriority};
pub use ledger::{Dimension, GroupBy, Ledger, LedgerConfig, Query, QueryError, Window};
pub use meter::{BuildError, SHUTDOWN_JOURNAL_WAIT, SHUTDOWN_WEBHOOK_WAIT, ShutdownError, ShutdownGuard};
pub use meter::{
    CaptureStats, DEFAULT_MAX_DIMENSION_LEN, MAX_EXTRA_DIMENSIONS, ModelUsage, RecordSink, TokenMeter,
    TokenMeterBuilder, ToolUsage, UsageTotals,
};
pub use pricing::{CallCost, Money, PriceBook, PriceBookError};
pub use record::{CallRecord, Dimensions, Outcome, TaskRecord, TaskTotals, TokenUsage, ToolRecord};
