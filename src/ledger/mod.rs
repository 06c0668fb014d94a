//! The ledger: rolling, bounded aggregates of every call, task and tool execution, from which the
//! [`analysis`](crate::analysis) reports are computed at query time.
//!
//! A [`TokenMeter`](crate::TokenMeter) feeds its own ledger ([`TokenMeter::ledger`](crate::TokenMeter::ledger));
//! a ledger can also be built on its own ([`Ledger::new`]) and fed records read back from disk
//! ([`Ledger::ingest_call`], [`Ledger::ingest_task`], [`Ledger::ingest_tool`]).
//!
//! # What is kept
//!
//! Sums only (calls, tokens by kind, exact [`Money`] in pico-USD, failures, tasks, and the
//! "what it would have cost otherwise" figures the suggestions need, priced per call from the
//! [`PriceBook`] at ingest), in time buckets that coarsen with age:
//!
//! | tier | bucket | holds data aged |
//! |---|---|---|
//! | minute | 1 minute | under 2 hours |
//! | hour | 1 local hour | 2 hours to 48 hours |
//! | day | 1 local day | 48 hours to 35 days |
//! | month | 1 local month | 35 days to 400 days |
//! | archive | one bucket | older |
//!
//! Every bucket keeps: totals; *compound series* keyed by the low-cardinality dimensions together (model,
//! provider, project, agent, operation, task, tenant), so any combination of them can be filtered and
//! grouped exactly; one map per high-cardinality dimension (session, user) and one for (project, session)
//! pairs; tool executions, by tool and by (session, tool) pair; and hdrhistogram distributions (prompt and output tokens per call, duration, time
//! to first token, output tokens per second; 2 significant digits). Beside the buckets, totals-only series by
//! local hour (kept 35 days) and local day (kept 10 years) answer time-of-day patterns, hourly anomalies and
//! long daily series.
//!
//! Local hours, days, weeks (Monday first unless [`LedgerConfig::with_week_start`] says) and months are in the
//! configured time zone ([`LedgerConfig::with_time_zone`], default UTC).
//!
//! # Caps
//!
//! Each map of each bucket has a cardinality cap; past it, values share one overflow entry keyed `(other)`,
//! so totals stay exact while the breakdown loses detail. Compound series past their cap first fold their task
//! alone (a task named per run must not take the agents and projects with it), then into a per-model overflow
//! series (model and provider kept, the rest `(other)`; 64 slots for both kinds), so per-model figures stay
//! exact; then into one all-`(other)` series. (Project, session) pairs fold per project likewise,
//! and (session, tool) pairs per session (so each session's tool counts stay exact).
//!
//! | tier | compound series | sessions | users | project > session | tools | session > tool |
//! |---|---|---|---|---|---|---|
//! | minute | 64 | 64 | 64 | 64 | 32 | 64 |
//! | hour | 256 | 256 | 256 | 256 | 128 | 256 |
//! | day, month, archive | 383 | 447 | 447 | 383 | 128 | 383 |
//!
//! The day-tier caps sit just under a hash table's power-of-two capacity: 447 entries plus the overflow
//! entry fill a 512-slot table to its 7/8 load limit, where 512 would double it to 1,024 slots (for the
//! series, 383 plus the 64 reserved overflow slots plus one). Day buckets hold most of a month's entries,
//! and this halves their tables for 12.5% fewer rows.
//!
//! With at most 127 minute (two hours, and up to 5 minutes stamped ahead of the clock), 50 hour, 37 day, 16 month buckets and one archive (plus up to 8 pending minutes per
//! recording shard), the ledger holds at most [`LedgerStats::series_limit`] entries whatever the number of calls: about
//! 408,000 with 8 shards (four per core). An entry costs ~670 bytes measured (a 256-byte aggregate in its table slot, a
//! 168-byte block of optimization figures when it has any, the key, table slack), so a ledger with every map full would
//! hold ~273 MB; a month of 1M calls over 100k sessions holds about 69,000 entries (~46 MB; `examples/memory.rs`).
//! Merging into a coarser bucket brings entries in most expensive first, so where the caps bind, the costliest values
//! keep their own rows. Session history for the caching analyses is capped at
//! [`LedgerConfig::with_max_tracked_sessions`] sessions (default 65,536); sessions idle for 2 hours (or the cache
//! reuse window, when longer) are swept (each stripe once a minute).
//!
//! Records stamped more than 5 minutes ahead of the clock are counted in the current minute; records older
//! than a tier's span go straight to the tier their age calls for (a journal replay fills the ledger as if it
//! had been running).
//!
//! # Windows and edges
//!
//! A bucket belongs to a window when its start lies in the window, so a window's edges resolve to the bucket
//! width at that age: a minute within 2 hours, a local hour within 48 hours, a local day within 35 days, a
//! month beyond. The rolling windows are aligned so that they are exact: `1h` is the current minute and the
//! 59 before it, `6h` and `24h` the current local hour and the 5 or 23 before it, `7d` and `30d` today and
//! the 6 or 29 local days before it.
//!
//! # Implementation details
//!
//! Ingest runs on the recording thread, inside span close. It takes one lock of a per-thread shard (no other
//! thread takes it except a query, for the moment it takes the shard's finished minutes), and, for calls in a
//! session, one lock of one of 64 session stripes. A shard holds only its recent minute buckets; when a call
//! starts a new minute, the shard hands its finished minutes to the aged store with `try_lock` (never
//! waiting; if a query holds the store, they wait in the shard, and past 8 minutes the oldest two are
//! merged). Queries lock the store, take every shard's minutes, age the buckets, and compute from the sums.
//! Ingest never panics on any record and allocates only on a new series entry, a cache write in a session,
//! or the first distribution sample of a minute.

mod agg;
mod bucket;
pub(crate) mod calendar;
mod query;
mod session;
mod store;

pub use query::{
    Dimension, Filter, GroupBy, GroupRow, Query, QueryError, QueryResult, TimeGrain, Window, WindowBounds,
};

pub use query::TokenFigures;

pub(crate) use agg::{Agg, Core, Histograms, OTHER, Opportunities};
pub(crate) use bucket::{Bucket, Tier};
pub(crate) use query::{HOURLY_SERIES_UP_TO_SECS, Selection, add_rest, histograms, ratio, sort_rows};
pub(crate) use store::Store;

/// The first instant of local date `date` in `tz`, where the ledger's days (and a budget's) begin: midnight, the
/// earlier one when the clocks go back over it, the first time after it when they skip it, and where the next date
/// begins for a date the zone skipped whole (Pacific/Apia's 2011-12-30). For windows over local days.
///
/// ```
/// use chrono::NaiveDate;
///
/// let tz: chrono_tz::Tz = "America/Santiago".parse().unwrap();
/// let day = NaiveDate::from_ymd_opt(2026, 9, 6).unwrap(); // clocks skip from 00:00 to 01:00
/// assert_eq!(tokenmeter::ledger::local_day_start(tz, day).to_rfc3339(), "2026-09-06T04:00:00+00:00");
/// ```
pub fn local_day_start(tz: Tz, date: chrono::NaiveDate) -> chrono::DateTime<chrono::Utc> {
    calendar::utc(calendar::start_of_date(tz, date))
}

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono_tz::Tz;
use parking_lot::Mutex;
use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::meter::RecordSink;
use crate::pricing::{CallCost, Money, PriceBook, PricedModel, Rates};
use crate::record::{CallRecord, TaskRecord, TokenUsage, ToolRecord};
use crate::shards::Shards;

use agg::{Sample, ToolAgg};
use bucket::Keys;
use session::{Sessions, WriterInfo};

/// Buckets a shard keeps before merging its oldest two (only while a query holds the store).
const MAX_PENDING: usize = 8;
/// Model resolutions cached per shard.
const MAX_MODELS_PER_SHARD: usize = 1024;

// === impl LedgerConfig ===

/// The smallest prefix counted as worth caching on a model whose price names no minimum cacheable prompt
/// (Anthropic's minimum on most Sonnet and older Opus models).
pub const DEFAULT_MIN_CACHEABLE_TOKENS: u64 = 1_024;

/// The model small premium calls are priced against unless [`LedgerConfig::with_right_size_target`] names one.
const DEFAULT_RIGHT_SIZE_TARGET: &str = "claude-haiku-4-5";

/// The ledger's settings. Start from [`LedgerConfig::default`] and change what you need with the `with_*`
/// methods.
#[derive(Debug, Clone)]
#[must_use]
pub struct LedgerConfig {
    pub(crate) enabled: bool,
    pub(crate) time_zone: Tz,
    /// The first day of a week grain's weeks.
    pub(crate) week_start: chrono::Weekday,
    pub(crate) max_tracked_sessions: usize,
    pub(crate) cache_reuse_window_secs: i64,
    /// Set by `with_min_cacheable_tokens`: every model's minimum.
    pub(crate) min_cacheable_tokens: Option<u64>,
    /// Set by [`with_right_size_target`](Self::with_right_size_target); `None`: the default target.
    pub(crate) right_size_target: Option<String>,
    pub(crate) premium_min_input_rate: u64,
    pub(crate) small_call_max_prompt: u64,
    pub(crate) small_call_max_output: u64,
    pub(crate) non_interactive_operations: Vec<String>,
    pub(crate) long_context_margin: u64,
    pub(crate) anomaly: AnomalyRule,
    pub(crate) bounded: bool,
    /// [`with_retention`](Self::with_retention), in seconds; set from the journal's `max_age` when the meter has
    /// one and this is not set.
    pub(crate) retention: Option<i64>,
    pub(crate) retention_set: bool,
}

/// When a day or hour is an anomaly: its tokens or cost exceed `token_factor` / `cost_factor` times, or its
/// calls `call_factor` times, the average of the trailing `trailing_days` days.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnomalyRule {
    /// Default 2.
    pub token_factor: f64,
    /// Default 2.
    pub cost_factor: f64,
    /// Default 3.
    pub call_factor: f64,
    /// Default 7.
    pub trailing_days: u32,
}

impl AnomalyRule {
    /// Why this rule cannot be applied: a factor that is not a positive number, or trailing days outside 1-365.
    pub(crate) fn problem(&self) -> Option<(&'static str, String)> {
        for (name, f) in
            [("token_factor", self.token_factor), ("cost_factor", self.cost_factor), ("call_factor", self.call_factor)]
        {
            if !f.is_finite() || f <= 0.0 {
                return Some((name, format!("{f} must be a positive number")));
            }
        }
        if !(1..=365).contains(&self.trailing_days) {
            return Some(("trailing_days", format!("{} must be from 1 to 365", self.trailing_days)));
        }
        None
    }
}

impl Default for AnomalyRule {
    fn default() -> Self {
        AnomalyRule { token_factor: 2.0, cost_factor: 2.0, call_factor: 3.0, trailing_days: 7 }
    }
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            enabled: true,
            time_zone: Tz::UTC,
            week_start: chrono::Weekday::Mon,
            max_tracked_sessions: 65_536,
            cache_reuse_window_secs: 300,
            min_cacheable_tokens: None,
            right_size_target: None,
            premium_min_input_rate: 4_000_000,
            small_call_max_prompt: 2_000,
            small_call_max_output: 500,
            non_interactive_operations: ["batch", "background", "offline", "eval", "evaluation", "backfill", "nightly"]
                .map(str::to_owned)
                .to_vec(),
            long_context_margin: 20_000,
            anomaly: AnomalyRule::default(),
            bounded: true,
            retention: None,
            retention_set: false,
        }
    }
}

impl LedgerConfig {
    /// A ledger that records nothing (every report is empty), for meters that want only the capture totals
    /// and budgets and not the ledger's ingest cost on the recording thread.
    pub fn disabled() -> Self {
        LedgerConfig { enabled: false, ..LedgerConfig::default() }
    }

    /// False for [`LedgerConfig::disabled`].
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The zone of local hours, days, weeks and months (default UTC).
    pub fn with_time_zone(mut self, tz: Tz) -> Self {
        self.time_zone = tz;
        self
    }

    /// The zone in use.
    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    /// The day a week grain's weeks start on (default Monday, ISO weeks): `Weekday::Sun` for US weeks. Rows of
    /// [`TimeGrain::Week`] start on that day at local midnight.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc, Weekday};
    /// use tokenmeter::ledger::{GroupBy, LedgerConfig, Query, TimeGrain, Window};
    ///
    /// let config = LedgerConfig::default().with_week_start(Weekday::Sun);
    /// let meter = tokenmeter::TokenMeter::builder().with_ledger_config(config).build();
    /// let from = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    /// let to = Utc.with_ymd_and_hms(2026, 3, 15, 0, 0, 0).unwrap();
    /// let r = meter.query(&Query::new(Window::range(from, to)).group_by(GroupBy::Time(TimeGrain::Week))).unwrap();
    /// // 2026-03-01 is a Sunday: two whole weeks.
    /// let keys: Vec<&str> = r.groups.iter().map(|g| g.key.as_str()).collect();
    /// assert_eq!(keys, ["2026-03-01T00:00:00+00:00", "2026-03-08T00:00:00+00:00"]);
    /// ```
    pub fn with_week_start(mut self, day: chrono::Weekday) -> Self {
        self.week_start = day;
        self
    }

    /// The day weeks start on.
    pub fn week_start(&self) -> chrono::Weekday {
        self.week_start
    }

    /// Forgets what is older than `keep` (`None`, the default: keeps aged data for the life of the process, in
    /// coarser buckets). Whole buckets go once they end before `now - keep`: an hour bucket past its end, a month
    /// bucket at the end of its month, so data is kept up to a bucket's width longer. A meter with a journal whose
    /// files are deleted after `max_age` ([`JournalConfig::with_max_age`](crate::journal::JournalConfig::with_max_age))
    /// forgets at that age too, unless this is set: what a restart would no longer replay is not kept in memory
    /// either. Reports over a window reaching further back show only what is kept.
    pub fn with_retention(mut self, keep: Option<std::time::Duration>) -> Self {
        self.retention = keep.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.retention_set = true;
        self
    }

    /// How long aged data is kept (`None`: for the life of the process).
    pub fn retention(&self) -> Option<std::time::Duration> {
        self.retention.map(|s| std::time::Duration::from_secs(u64::try_from(s).unwrap_or(0)))
    }

    /// The journal's `max_age` as the retention, unless one was set.
    pub(crate) fn with_default_retention(mut self, keep: Option<std::time::Duration>) -> Self {
        if !self.retention_set {
            self.retention = keep.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        }
        self
    }

    /// Lifts the per-bucket caps (module docs, "Caps"): every session, user, tool and series keeps its own row,
    /// the unfiltered hourly totals are kept for all time (not 35 days), and memory grows with the data. For
    /// offline reports over records already in memory (the CLI builds its ledgers this way); a long-running
    /// meter keeps the caps.
    pub fn with_unbounded_breakdowns(mut self) -> Self {
        self.bounded = false;
        self
    }

    /// Most sessions whose history is kept for the caching analyses (default 65,536; at least 64).
    pub fn with_max_tracked_sessions(mut self, n: usize) -> Self {
        self.max_tracked_sessions = n.max(64);
        self
    }

    /// How close a call must follow the previous call of its session for the previous prompt to count as a
    /// cacheable prefix (default 5 minutes, the default cache lifetime), in whole seconds (at least one, at most
    /// 366 days). A session is kept tracked that long without a call, two hours at least (within
    /// [`with_max_tracked_sessions`](Self::with_max_tracked_sessions)).
    pub fn with_cache_reuse_window(mut self, window: std::time::Duration) -> Self {
        const MAX_SECS: u64 = 366 * 86_400;
        self.cache_reuse_window_secs = window.as_secs().clamp(1, MAX_SECS) as i64;
        self
    }

    /// The smallest prefix worth caching, for every model. By default each model's own minimum cacheable
    /// prompt, from its price ([`ModelPrice::min_cacheable_tokens`](crate::pricing::ModelPrice); 4,096 on
    /// `claude-opus-4-5` and `claude-haiku-4-5`, 1,024 on `claude-sonnet-4-5`: see
    /// [`PriceBook::builtin`](crate::pricing::PriceBook::builtin)), and
    /// [`DEFAULT_MIN_CACHEABLE_TOKENS`] for a model whose price names none. A shorter prefix cannot be cached,
    /// so sending it uncached is no missed saving.
    pub fn with_min_cacheable_tokens(mut self, tokens: u64) -> Self {
        self.min_cacheable_tokens = Some(tokens.max(1));
        self
    }

    /// The model that small calls on premium models are priced against (default `claude-haiku-4-5`). One set
    /// here must have a price: a meter's [`try_build`](crate::TokenMeterBuilder::try_build) refuses one that
    /// has none. (The default without a price, in a price book of other models, leaves right-sizing out.)
    pub fn with_right_size_target(mut self, model: impl Into<String>) -> Self {
        self.right_size_target = Some(model.into());
        self
    }

    /// The model small premium calls are priced against.
    pub(crate) fn right_size_target(&self) -> &str {
        self.right_size_target.as_deref().unwrap_or(DEFAULT_RIGHT_SIZE_TARGET)
    }

    /// Models whose standard input rate is at least this many USD per million tokens are premium (default 4,
    /// which takes in every Opus and no Sonnet or Haiku). A negative, NaN or infinite value is ignored.
    pub fn with_premium_min_input_usd_per_mtok(mut self, usd: f64) -> Self {
        if usd.is_finite() && usd >= 0.0 {
            self.premium_min_input_rate = (usd * 1e6).round() as u64;
        }
        self
    }

    /// A call is small when its prompt is at most `prompt` tokens and its output at most `output` (default
    /// 2,000 and 500).
    pub fn with_small_call_limits(mut self, prompt: u64, output: u64) -> Self {
        self.small_call_max_prompt = prompt;
        self.small_call_max_output = output;
        self
    }

    /// Values of the `operation` dimension that mark a call non-interactive, compared ASCII
    /// case-insensitively (default `batch`, `background`, `offline`, `eval`, `evaluation`, `backfill`,
    /// `nightly`). A call is also non-interactive when an extra dimension named `interactive` is `false`,
    /// `no` or `0`.
    pub fn with_non_interactive_operations(mut self, ops: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.non_interactive_operations = ops.into_iter().map(Into::into).collect();
        self
    }

    /// How far over the model's long-context line (200,000 prompt tokens; 100,000 on Haiku 5.5) a prompt may be
    /// to count as "just over" (default 20,000 tokens).
    pub fn with_long_context_margin(mut self, tokens: u64) -> Self {
        self.long_context_margin = tokens;
        self
    }

    /// The anomaly rule.
    pub fn with_anomaly_rule(mut self, rule: AnomalyRule) -> Self {
        self.anomaly = rule;
        self
    }
}

// === impl Ledger ===

/// The ledger handle: cheap to clone (an `Arc`), `Send + Sync`. See the [module docs](self).
///
/// Queries and reports compute under the ledger's lock, one at a time: milliseconds of CPU over a month of
/// calls (a 30-day summary over a million calls in ~3-14 ms). From async code, run them with
/// `tokio::task::spawn_blocking` rather than on a worker. Recording never waits for them.
///
/// ```
/// use std::sync::Arc;
/// use tokenmeter::ledger::{Ledger, LedgerConfig, Window};
/// use tokenmeter::{ManualClock, PriceBook};
///
/// let clock = ManualClock::new(chrono::Utc::now());
/// let ledger = Ledger::new(LedgerConfig::default(), Arc::new(clock), PriceBook::builtin());
/// // ledger.ingest_call(&record) for each record read back from a journal…
/// let summary = ledger.usage_summary(Window::Last24Hours).unwrap();
/// assert_eq!(summary.calls, 0);
/// ```
#[derive(Clone)]
pub struct Ledger {
    pub(crate) inner: Arc<LedgerInner>,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger").field("time_zone", &self.inner.config.time_zone).finish_non_exhaustive()
    }
}

pub(crate) struct LedgerInner {
    pub(crate) config: LedgerConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) prices: PriceBook,
    pub(crate) target: Option<PricedModel>,
    shards: Shards<Shard>,
    pub(crate) store: Mutex<Store>,
    sessions: Sessions,
    forced_merges: AtomicU64,
}

#[derive(Debug)]
struct PendingBucket {
    bucket: Bucket,
    first_ts: i64,
    last_ts: i64,
}

#[derive(Debug, Default)]
struct Shard {
    pending: Vec<PendingBucket>,
    models: HashMap<Box<str>, Option<PricedModel>>,
}

/// Ledger size and health figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerStats {
    /// Buckets per tier.
    pub buckets: TierCounts,
    /// Entries per map kind, over every bucket.
    pub series: SeriesCounts,
    /// The most entries the ledger can hold (from the caps and bucket counts in the module docs; `usize::MAX`
    /// with [`LedgerConfig::with_unbounded_breakdowns`]).
    pub series_limit: usize,
    /// Points of the totals-only hourly series.
    pub hourly_points: usize,
    /// Points of the totals-only daily series.
    pub daily_points: usize,
    /// Additions that went to an overflow entry because a cap was reached.
    pub overflowed: u64,
    /// Sessions whose history is tracked now.
    pub tracked_sessions: usize,
    /// The most sessions tracked at once.
    pub max_tracked_sessions: usize,
    /// Calls of sessions not tracked because the session table was full (or, rarely, because another
    /// session's id has the same 64-bit hash and holds its slot).
    pub untracked_session_calls: u64,
    /// Times a shard merged two minutes because the store was busy (a query held it while a thread recorded
    /// calls of more than 8 different minutes: a backfill). Two minutes that land in one bucket and one point
    /// of each totals series anyway are merged first, which loses nothing (one local hour more than two hours
    /// old, one local day more than 35 days old); then two of one local day more than 48 hours old (the hourly
    /// totals lose which hour); failing that, the two closest in time, the older's calls filed under the
    /// newer's minute (a backfill of more than 8 days held up that long moves a day's calls to the next).
    pub forced_merges: u64,
}

/// Buckets per tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierCounts {
    /// Minute buckets.
    pub minute: usize,
    /// Hour buckets.
    pub hour: usize,
    /// Day buckets.
    pub day: usize,
    /// Month buckets.
    pub month: usize,
    /// The archive bucket (0 or 1).
    pub archive: usize,
}

/// Entries per map kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesCounts {
    /// Compound series.
    pub compound: usize,
    /// Session entries.
    pub sessions: usize,
    /// User entries.
    pub users: usize,
    /// (Project, session) entries.
    pub project_sessions: usize,
    /// Tool entries.
    pub tools: usize,
    /// (Session, tool) entries.
    #[serde(default)]
    pub session_tools: usize,
    /// All of them.
    pub total: usize,
}

/// The rates a call's own suggestions would leave it at (see [`LedgerInner::after`]); kept with its cache
/// write, whose premium, if never read, is priced at them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct After {
    pub(crate) rates: AfterRates,
    /// Moved to the batch API.
    pub(crate) batch: bool,
}

/// See [`After`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum AfterRates {
    /// The rates it was billed at.
    #[default]
    Billed,
    /// The right-size target's.
    RightSized,
    /// Standard rather than long-context.
    Standard,
}

/// What the call cost under the rates it was billed at.
struct Billing<'a> {
    priced: &'a PricedModel,
    rates: Rates,
    fast: Option<u32>,
    /// Inference kept in one geography (1.1x, `CallCost::regional`).
    regional: bool,
    batch: bool,
}

/// Prices `tokens` at `rates` exactly as [`PricedModel::cost_in_geo`] does per kind: times the fast multiplier,
/// times 1.1 for regional inference, halved for batch (rounding half up).
pub(crate) fn cost_at(tokens: &TokenUsage, rates: &Rates, fast: Option<u32>, regional: bool, batch: bool) -> Money {
    let kind = |count: u64, rate: u64| -> Money {
        Money::from_picos(crate::pricing::billed_picos(count, rate, fast, regional, batch))
    };
    kind(tokens.input, rates.input)
        + kind(tokens.cache_read, rates.cache_read)
        + kind(tokens.cache_write_5m, rates.cache_write_5m)
        + kind(tokens.cache_write_1h, rates.cache_write_1h)
        + kind(tokens.output, rates.output)
}

fn is_batch(tier: Option<&str>) -> bool {
    tier.is_some_and(|t| t.trim().eq_ignore_ascii_case("batch"))
}

fn is_fast(speed: Option<&str>) -> bool {
    speed.is_some_and(|s| s.trim().eq_ignore_ascii_case("fast"))
}

impl<'a> Billing<'a> {
    fn of(
        priced: &'a PricedModel,
        tokens: &TokenUsage,
        tier: Option<&str>,
        speed: Option<&str>,
        regional: bool,
    ) -> Self {
        let price = priced.price();
        let long = tokens.prompt_total() > price.long_context_threshold();
        let rates = match price.long_context {
            Some(l) if long => l,
            _ => price.standard,
        };
        // As `PricedModel::cost` reads it: a multiplier of 0 is 1 (fast mode never costs less than standard).
        let fast = if is_fast(speed) { price.fast_multiplier.map(|m| m.max(1)) } else { None };
        Billing { priced, rates, fast, regional, batch: is_batch(tier) }
    }

    fn cost(&self, tokens: &TokenUsage) -> Money {
        cost_at(tokens, &self.rates, self.fast, self.regional, self.batch)
    }

    /// What `tokens` input tokens would cost as uncached input minus as `other` kind.
    fn kind_delta(&self, tokens: u64, other: fn(u64) -> TokenUsage) -> (Money, Money) {
        (self.cost(&TokenUsage { input: tokens, ..TokenUsage::default() }), self.cost(&other(tokens)))
    }
}

impl LedgerInner {
    fn shard(&self) -> &Mutex<Shard> {
        self.shards.mine()
    }

    pub(crate) fn now_secs(&self) -> i64 {
        self.clock.unix_nanos().div_euclid(1_000_000_000)
    }

    fn non_interactive(&self, rec: &CallRecord) -> bool {
        let ops = &self.config.non_interactive_operations;
        if let Some(op) = rec.dimensions.operation.as_deref()
            && ops.iter().any(|o| o.eq_ignore_ascii_case(op.trim()))
        {
            return true;
        }
        rec.dimensions
            .get("interactive")
            .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "false" | "no" | "0"))
    }

    /// The suggestions of one metered, priced call that its session history plays no part in (right-sizing,
    /// long-context trimming, batch), and the rates they would leave it at.
    fn suggestions(&self, rec: &CallRecord, cost: &CallCost, billing: &Billing<'_>) -> (Opportunities, After) {
        let t = &rec.tokens;
        let mut o = Opportunities::default();
        let total = cost.total;
        // The web search fee is the same after every suggestion here (right-sizing, trimming, batching change
        // token rates only): each alternative below pays it too, so no saving counts it.
        let fee = cost.web_search;
        let price = billing.priced.price();
        // Small calls on a premium model, against the right-size target at the same tier.
        // On the target, a prompt shorter than the shortest it caches is all uncached input (priced at its cache
        // rates, a 1,950-token prompt of cache reads on Haiku 4.5, which caches from 4,096, claimed 7.8x the
        // saving).
        let on_target = |target: &PricedModel| {
            if t.prompt_total() < self.min_cacheable(Some(target), None) {
                TokenUsage { input: t.prompt_total(), cache_read: 0, cache_write_5m: 0, cache_write_1h: 0, ..*t }
            } else {
                *t
            }
        };
        if let Some(target) = &self.target
            && price.standard.input >= self.config.premium_min_input_rate
            && target.canonical() != billing.priced.canonical()
            && t.prompt_total() <= self.config.small_call_max_prompt
            && t.output <= self.config.small_call_max_output
        {
            let alt = target.cost(&on_target(target), rec.service_tier.as_deref(), None).total + fee;
            if alt < total {
                o.small_premium_calls = 1;
                o.small_premium_tokens = t.total();
                o.small_premium_cost = total;
                o.small_premium_at_target = alt;
            }
        }
        // Just over the long-context line (unless the call is to move to the right-size target: its saving counts
        // there, and both claimed the same dollars, 133% of a call's cost).
        let line = price.long_context_threshold();
        if o.small_premium_calls == 0
            && cost.long_context
            && t.prompt_total() <= line.saturating_add(self.config.long_context_margin)
        {
            o.long_ctx_calls = 1;
            o.long_ctx_tokens = t.total();
            o.long_ctx_cost = total;
            o.long_ctx_at_standard = cost_at(t, &price.standard, billing.fast, billing.regional, billing.batch) + fee;
        }
        // Non-interactive calls at standard rates: the batch saving is measured after the right-sizing or the
        // trimming above (half of what the call would cost then), so the savings of one call never add up to
        // more than it cost.
        if !billing.batch && self.non_interactive(rec) {
            o.batch_calls = 1;
            o.batch_tokens = t.total();
            (o.batch_cost, o.batch_at_batch) = if o.small_premium_calls > 0
                && let Some(target) = &self.target
            {
                (o.small_premium_at_target, target.cost(&on_target(target), Some("batch"), None).total + fee)
            } else if o.long_ctx_calls > 0 {
                (o.long_ctx_at_standard, cost_at(t, &price.standard, billing.fast, billing.regional, true) + fee)
            } else {
                (total, cost_at(t, &billing.rates, billing.fast, billing.regional, true) + fee)
            };
        }
        let rates = if o.small_premium_calls > 0 {
            AfterRates::RightSized
        } else if o.long_ctx_calls > 0 {
            AfterRates::Standard
        } else {
            AfterRates::Billed
        };
        (o, After { rates, batch: o.batch_calls > 0 })
    }

    /// The shortest prefix a call on `priced` could have cached: the model's own minimum, or the right-size
    /// target's when the call is to move there (its caching saving is measured on the target).
    fn min_cacheable(&self, priced: Option<&PricedModel>, after: Option<After>) -> u64 {
        if let Some(n) = self.config.min_cacheable_tokens {
            return n;
        }
        let model = match (&self.target, after) {
            (Some(target), Some(After { rates: AfterRates::RightSized, .. })) => Some(target),
            _ => priced,
        };
        model.and_then(|p| p.price().min_cacheable_tokens).unwrap_or(DEFAULT_MIN_CACHEABLE_TOKENS)
    }

    /// The billing a call billed as `billing` would have after its suggestions (`after`): the right-size
    /// target's rates at the call's tier and not fast (as `small_premium_at_target` prices it), or standard
    /// rather than long-context rates, and batch. What is left to save on the call (prompt caching, a cache
    /// write never read) is priced at these, so that one call's savings add up to at most its cost.
    fn after<'a>(
        &'a self,
        after: After,
        billing: &Billing<'a>,
        tokens: &TokenUsage,
        tier: Option<&str>,
    ) -> Billing<'a> {
        let batch = billing.batch || after.batch;
        match (&self.target, after.rates) {
            (Some(target), AfterRates::RightSized) => {
                Billing { batch, ..Billing::of(target, tokens, tier, None, false) }
            }
            (_, AfterRates::Standard) => Billing { rates: billing.priced.price().standard, batch, ..*billing },
            _ => Billing { batch, ..*billing },
        }
    }

    /// Adds the prompt-caching suggestion of a call that sent a cacheable prefix uncached (`facts`), measured,
    /// like the batch saving, at the rates the call would have after the suggestions above.
    fn add_prompt_caching(
        &self,
        o: &mut Opportunities,
        rec: &CallRecord,
        billing: &Billing<'_>,
        after: After,
        facts: &session::SessionFacts,
    ) {
        if facts.missed == 0 {
            return;
        }
        let after = self.after(after, billing, &rec.tokens, rec.service_tier.as_deref());
        let (as_input, as_read) =
            after.kind_delta(facts.missed, |n| TokenUsage { cache_read: n, ..TokenUsage::default() });
        let (w_input, w_write) =
            after.kind_delta(facts.write_delta, |n| TokenUsage { cache_write_5m: n, ..TokenUsage::default() });
        o.cache_calls = 1;
        o.cache_missed_tokens = facts.missed;
        o.cache_gain = as_input.saturating_sub(as_read);
        o.cache_write_premium = w_write.saturating_sub(w_input);
    }

    /// The sums of a cache write found never read.
    fn unread_write(&self, w: &WriterInfo, resolve: &mut dyn FnMut(&str) -> Option<PricedModel>) -> Opportunities {
        let tokens = TokenUsage {
            cache_write_5m: w.write_5m,
            cache_write_1h: w.write_1h,
            // Only the prompt size matters for the long-context decision.
            input: w.prompt_total.saturating_sub(w.write_5m.saturating_add(w.write_1h)),
            ..TokenUsage::default()
        };
        let mut o = Opportunities {
            unread_writes: u64::from(w.counts_write),
            unread_write_tokens: w.write_5m.saturating_add(w.write_1h),
            ..Default::default()
        };
        if let Some(priced) = w.model.as_deref().and_then(resolve) {
            let billed = Billing::of(&priced, &tokens, w.service_tier.as_deref(), w.speed.as_deref(), w.regional);
            let written = TokenUsage { cache_write_5m: w.write_5m, cache_write_1h: w.write_1h, ..Default::default() };
            let as_input = TokenUsage { input: o.unread_write_tokens, ..Default::default() };
            let premium = |b: &Billing<'_>| b.cost(&written).saturating_sub(b.cost(&as_input));
            o.unread_write_premium = premium(&billed);
            // The saving: at the rates the writing call would have after its own suggestions; none where the
            // right-size target would not have cached a prompt that short (the write would not be made there).
            let after = self.after(w.after, &billed, &tokens, w.service_tier.as_deref());
            let cacheable = w.after.rates != AfterRates::RightSized
                || w.prompt_total >= self.min_cacheable(Some(&priced), Some(w.after));
            if cacheable {
                o.unread_write_saving = premium(&after).min(o.unread_write_premium);
            }
        }
        o
    }
}

fn writer_keys(w: &WriterInfo) -> Keys<'_> {
    Keys {
        model: w.model.as_ref(),
        provider: w.provider.as_ref(),
        project: w.dims.project.as_ref(),
        agent: w.dims.agent.as_ref(),
        operation: w.dims.operation.as_ref(),
        task: w.dims.task.as_ref(),
        tenant: w.dims.tenant.as_ref(),
        session: w.dims.session.as_ref(),
        user: w.dims.user.as_ref(),
    }
}

impl Shard {
    fn resolve(&mut self, id: &str, prices: &PriceBook) -> Option<PricedModel> {
        if let Some(p) = self.models.get(id) {
            return p.clone();
        }
        let p = prices.resolve(id).map(|p| p.detached());
        if self.models.len() < MAX_MODELS_PER_SHARD {
            self.models.insert(Box::from(id), p.clone());
        }
        p
    }

    /// The pending bucket of `minute`, handing finished minutes to the store when one starts.
    fn bucket(&mut self, ts: i64, inner: &LedgerInner) -> &mut Bucket {
        let minute = ts.div_euclid(60) * 60;
        if let Some(i) = self.pending.iter().position(|p| p.bucket.start == minute) {
            let p = &mut self.pending[i];
            p.first_ts = p.first_ts.min(ts);
            p.last_ts = p.last_ts.max(ts);
            return &mut self.pending[i].bucket;
        }
        if !self.pending.is_empty()
            && let Some(mut store) = inner.store.try_lock()
        {
            let now = inner.now_secs();
            for p in self.pending.drain(..) {
                store.absorb(p.bucket, now, p.first_ts, p.last_ts);
            }
            store.compact(now);
        }
        if self.pending.len() >= MAX_PENDING {
            // Full while a query holds the store (a backfill racing a report): two adjacent pending minutes
            // merge, the older into the newer, whose start the merged data takes. The pair is the one that
            // costs least: two that land in one bucket and one point of each totals series anyway lose nothing
            // (one local hour past the minute buckets' two hours; one local day past the hourly totals' 35
            // days); one local day of day buckets loses only the hour in the hourly totals; else the pair
            // closest in time, so data moves as little as it can. (Always the oldest into the next moved a
            // replayed call once per merge, up to weeks late, while a report held the store.)
            self.pending.sort_by_key(|p| p.bucket.start);
            let (tz, now) = (inner.config.time_zone, inner.now_secs());
            let hours_kept_from = if inner.config.bounded { now - store::HOURLY_TOTALS_SPAN } else { i64::MIN };
            let cost = |a: i64, b: i64| {
                let (same_hour, same_day) = (
                    calendar::hour_start(tz, a) == calendar::hour_start(tz, b),
                    calendar::day_start(tz, a) == calendar::day_start(tz, b),
                );
                if (same_hour && b < now - store::MINUTE_SPAN) || (same_day && b < hours_kept_from) {
                    (0, 0)
                } else if same_day && b < now - store::HOUR_SPAN {
                    (1, 0)
                } else {
                    (2, b - a)
                }
            };
            let at = (1..self.pending.len())
                .min_by_key(|&i| cost(self.pending[i - 1].bucket.start, self.pending[i].bucket.start))
                .unwrap_or(1);
            let older = self.pending.remove(at - 1);
            let next = &mut self.pending[at - 1];
            next.first_ts = next.first_ts.min(older.first_ts);
            next.bucket.absorb(older.bucket);
            inner.forced_merges.fetch_add(1, Ordering::Relaxed);
        }
        self.pending.push(PendingBucket {
            bucket: Bucket::new(minute, Tier::Minute, inner.config.bounded),
            first_ts: ts,
            last_ts: ts,
        });
        let last = self.pending.len() - 1;
        &mut self.pending[last].bucket
    }
}

impl Ledger {
    /// A ledger on its own: `clock` decides what "now" is for rolling windows and aging, `prices` prices
    /// records that arrive without a cost and every suggestion.
    pub fn new(config: LedgerConfig, clock: Arc<dyn Clock>, prices: PriceBook) -> Ledger {
        let target = prices.resolve(config.right_size_target());
        Ledger {
            inner: Arc::new(LedgerInner {
                store: Mutex::new(
                    Store::new(config.time_zone, config.bounded, clock.unix_nanos().div_euclid(1_000_000_000))
                        .with_retention(config.retention)
                        .with_week_start(config.week_start),
                ),
                sessions: Sessions::new(config.max_tracked_sessions)
                    .idle_at_least(config.cache_reuse_window_secs.saturating_mul(1_000_000_000)),
                config,
                clock,
                prices,
                target,
                shards: Shards::new(crate::shards::per_core_count(), Shard::default),
                forced_merges: AtomicU64::new(0),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LedgerConfig {
        &self.inner.config
    }

    /// The time zone of local hours, days, weeks and months.
    pub fn time_zone(&self) -> Tz {
        self.inner.config.time_zone
    }

    /// The price book suggestions are priced with.
    pub fn price_book(&self) -> &PriceBook {
        &self.inner.prices
    }

    /// Adds one call. A metered call without a cost is priced with the ledger's price book (records read
    /// back from disk); a call whose model the book does not know stays unpriced.
    pub fn ingest_call(&self, rec: &CallRecord) {
        let inner = &*self.inner;
        if !inner.config.enabled {
            return;
        }
        let ts = rec.timestamp.timestamp();
        let ts_ns = rec.timestamp.timestamp_nanos_opt().unwrap_or_else(|| ts.saturating_mul(1_000_000_000));
        // Priced first: a call's cache write is kept in the session table with the rates its suggestions would
        // leave it at (its premium, if the write is never read, is priced at those). The shard's lock is held
        // while the session table takes a stripe's (nothing takes them the other way round).
        let mut guard = inner.shard().lock();
        let shard = &mut *guard;
        let model_id = rec.cost.as_ref().map(|c| &*c.priced_as).or(rec.model.as_deref());
        let priced = model_id.and_then(|id| shard.resolve(id, &inner.prices));
        let computed;
        let cost = match (&rec.cost, &priced) {
            (Some(c), _) => Some(c),
            (None, Some(p)) if rec.metered => {
                computed = p.price_call(rec);
                Some(&computed)
            }
            _ => None,
        };
        let failed = rec.outcome.is_error();
        // A failed call's whole cost is the failed-calls saving: no other suggestion counts it again.
        let billed = match (cost, &priced) {
            (Some(c), Some(p)) if rec.metered && !failed => {
                let billing =
                    Billing::of(p, &rec.tokens, rec.service_tier.as_deref(), rec.speed.as_deref(), c.regional);
                let (opp, after) = inner.suggestions(rec, c, &billing);
                Some((billing, opp, after))
            }
            _ => None,
        };
        // Filed under the price book's id whenever the book knows the model (a record read back from disk has no
        // cost of its own; a failed call without usage has none either, and under its raw id a model filter, which
        // reads any id as the book's, never found it), and its cache write with it.
        let model_key =
            cost.map(|c| &c.priced_as).or(priced.as_ref().map(|p| p.canonical_arc())).or(rec.model.as_ref());
        let facts = match rec.dimensions.session.as_deref() {
            Some(s) if rec.metered => {
                let min_cacheable = inner.min_cacheable(priced.as_ref(), billed.as_ref().map(|b| b.2));
                inner.sessions.observe(
                    session::SessionKey::of(s),
                    rec,
                    session::Observe {
                        ts_ns,
                        reuse_window_ns: inner.config.cache_reuse_window_secs.saturating_mul(1_000_000_000),
                        min_reusable: inner.min_cacheable(priced.as_ref(), None),
                        min_cacheable,
                        // At least 1,024 tokens (or the model's minimum, when lower) of the prefix went uncached.
                        min_missed: min_cacheable
                            .min(inner.config.min_cacheable_tokens.unwrap_or(DEFAULT_MIN_CACHEABLE_TOKENS)),
                        model: model_key,
                        after: billed.as_ref().map(|b| b.2).unwrap_or_default(),
                        billed: billed.is_some(),
                        regional: cost.is_some_and(|c| c.regional),
                    },
                    || inner.clock.unix_nanos(),
                )
            }
            _ => session::SessionFacts::default(),
        };
        let total = cost.map(|c| c.total).unwrap_or_default();
        let core = Core {
            calls: 1,
            unmetered_calls: u64::from(!rec.metered),
            failed_calls: u64::from(failed),
            unpriced_calls: u64::from(rec.metered && cost.is_none()),
            unpriced_tokens: if rec.metered && cost.is_none() { rec.tokens.total() } else { 0 },
            cache_hit_calls: u64::from(rec.metered && rec.tokens.cache_read > 0),
            tokens: rec.tokens,
            cost: total,
            cache_savings: cost.map(|c| c.cache_savings).unwrap_or_default(),
            failed_cost: if failed { total } else { Money::ZERO },
            failed_tokens: if failed { rec.tokens.total() } else { 0 },
            duration_us: rec.duration_us,
            reusable_tokens: facts.reusable,
            reused_tokens: facts.reused,
            ..Core::default()
        };
        let opp = match billed {
            Some((billing, mut opp, after)) => {
                inner.add_prompt_caching(&mut opp, rec, &billing, after, &facts);
                opp
            }
            None => Opportunities::default(),
        };
        let d = &rec.dimensions;
        let keys = Keys {
            model: model_key,
            provider: rec.provider.as_ref(),
            project: d.project.as_ref(),
            agent: d.agent.as_ref(),
            operation: d.operation.as_ref(),
            task: d.task.as_ref(),
            tenant: d.tenant.as_ref(),
            session: d.session.as_ref(),
            user: d.user.as_ref(),
        };
        let sample = sample_of(rec);
        let bucket = shard.bucket(ts, inner);
        bucket.add(&keys, &core, (!opp.is_empty()).then_some(&opp));
        bucket.record_sample(&sample);

        for w in &facts.unread {
            let o = inner.unread_write(w, &mut |id| shard.resolve(id, &inner.prices));
            shard.bucket(w.ts, inner).add(&writer_keys(w), &Core::default(), Some(&o));
        }
    }

    /// Adds one task.
    pub fn ingest_task(&self, rec: &TaskRecord) {
        let inner = &*self.inner;
        if !inner.config.enabled {
            return;
        }
        let failed = rec.outcome.is_error();
        let core = Core {
            tasks: 1,
            failed_tasks: u64::from(failed),
            task_tokens: rec.tokens.total(),
            task_cost: rec.cost,
            failed_task_cost: if failed { rec.cost } else { Money::ZERO },
            unpriced_tasks: u64::from(rec.unpriced_calls > 0),
            unpriced_task_cost: if rec.unpriced_calls > 0 { rec.cost } else { Money::ZERO },
            ..Core::default()
        };
        let d = &rec.dimensions;
        let keys = Keys {
            project: d.project.as_ref(),
            agent: d.agent.as_ref(),
            operation: d.operation.as_ref(),
            task: Some(&rec.task),
            tenant: d.tenant.as_ref(),
            session: d.session.as_ref(),
            user: d.user.as_ref(),
            ..Keys::default()
        };
        let mut shard = inner.shard().lock();
        shard.bucket(rec.timestamp.timestamp(), inner).add(&keys, &core, None);
    }

    /// Adds one tool execution (by tool, and by (session, tool) when it ran inside a session).
    pub fn ingest_tool(&self, rec: &ToolRecord) {
        let inner = &*self.inner;
        if !inner.config.enabled {
            return;
        }
        let t = ToolAgg { invocations: 1, errors: u64::from(rec.outcome.is_error()), duration_us: rec.duration_us };
        let mut shard = inner.shard().lock();
        let bucket = shard.bucket(rec.timestamp.timestamp(), inner);
        bucket.add_tool(&rec.tool, &t);
        if let Some(session) = &rec.dimensions.session {
            bucket.add_session_tool(session, &rec.tool, &t);
        }
    }

    /// Every session id the ledger holds, whatever holds it: a session's own totals, a (project, session) pair,
    /// a (session, tool) pair (a session whose calls were folded past the session cap may keep its tools), or
    /// the caching analyses' history of the session (its last prompt, its unread cache writes).
    #[cfg(feature = "http")]
    pub(crate) fn held_sessions(&self) -> std::collections::HashSet<Arc<str>> {
        let mut held = self.read(|store, _| {
            let mut held = std::collections::HashSet::new();
            for b in store.buckets(i64::MIN, i64::MAX) {
                held.extend(b.sessions.keys().cloned());
                held.extend(b.project_sessions.values().map(|e| e.session.clone()));
                held.extend(b.session_tools.values().map(|e| e.session.clone()));
            }
            held
        });
        self.inner.sessions.ids(|id| {
            if !held.contains(id) {
                held.insert(Arc::clone(id));
            }
        });
        held
    }

    /// Moves every recording shard's buckets into the store.
    fn absorb_shards(&self, store: &mut Store, now: i64) {
        for shard in self.inner.shards.iter() {
            let pending = std::mem::take(&mut shard.lock().pending);
            for p in pending {
                store.absorb(p.bucket, now, p.first_ts, p.last_ts);
            }
        }
    }

    /// Forgets the values `forget` names (see [`TokenMeter::erase`](crate::TokenMeter::erase)): in every bucket
    /// ([`Bucket::forget`](bucket::Bucket::forget)), and in the sessions' caching history. Returns the bucket
    /// entries and the histories that named a value.
    pub(crate) fn forget(&self, forget: &crate::erase::Forget) -> (u64, u64) {
        let now = self.inner.clock.unix_nanos().div_euclid(1_000_000_000);
        // Under the store's lock, which a read takes before it takes expired cache writes: none of the value's
        // writes is on its way to the store meanwhile. Recording threads go on (a write one of them gives up now
        // lands in its shard: absorbed after the histories are cleared).
        let mut store = self.inner.store.lock();
        self.absorb_shards(&mut store, now);
        let histories = self.inner.sessions.forget(forget);
        self.absorb_shards(&mut store, now);
        (store.forget_values(forget), histories)
    }

    /// Runs `f` on the store after taking every shard's minutes, resolving expired cache writes and aging
    /// the buckets.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Store, i64) -> R) -> R {
        let inner = &*self.inner;
        let now_ns = inner.clock.unix_nanos();
        let now = now_ns.div_euclid(1_000_000_000);
        let mut store = inner.store.lock();
        self.absorb_shards(&mut store, now);
        // Gathered into one bucket per minute and absorbed once each: a bucket made and absorbed per write took
        // ~3 us a write, 13 s with the store's lock held when four million writes expired at once (every session
        // at its cap of never-read writes). Unbounded: the store's merge, most expensive first, is the only cap
        // (a bounded bucket kept the first 64 sessions come, and filed the rest under `(other)` though the store
        // had rows of their own calls for them). It holds no more than the writes taken.
        // Their models resolved once each, as a recording shard does (resolving normalizes the id: a third of the
        // time per write).
        let mut minutes: std::collections::BTreeMap<i64, (Bucket, i64, i64)> = std::collections::BTreeMap::new();
        let mut models: HashMap<Box<str>, Option<PricedModel>> = HashMap::default();
        let mut resolve = |id: &str| {
            if let Some(p) = models.get(id) {
                return p.clone();
            }
            let p = inner.prices.resolve(id).map(|p| p.detached());
            if models.len() < MAX_MODELS_PER_SHARD {
                models.insert(Box::from(id), p.clone());
            }
            p
        };
        inner.sessions.take_expired(now_ns, |w| {
            let o = inner.unread_write(&w, &mut resolve);
            let start = w.ts.div_euclid(60) * 60;
            let (b, first, last) =
                minutes.entry(start).or_insert_with(|| (Bucket::new(start, Tier::Minute, false), w.ts, w.ts));
            b.add(&writer_keys(&w), &Core::default(), Some(&o));
            (*first, *last) = ((*first).min(w.ts), (*last).max(w.ts));
        });
        for (b, first, last) in minutes.into_values() {
            store.absorb(b, now, first, last);
        }
        store.compact(now);
        f(&store, now)
    }

    /// The caps of a bucket of `tier` in this ledger.
    fn caps(&self, tier: Tier) -> bucket::Caps {
        if self.inner.config.bounded { tier.caps() } else { bucket::Caps::UNBOUNDED }
    }

    /// Size and health figures.
    pub fn stats(&self) -> LedgerStats {
        let shards = self.inner.shards.len();
        let (buckets, entries, overflowed, hourly, daily) = self.read(|store, _| {
            let mut overflowed = 0;
            for b in store.buckets(i64::MIN, i64::MAX) {
                overflowed += b.overflowed;
            }
            (store.bucket_counts(), store.entries(), overflowed, store.hourly.len(), store.daily.len())
        });
        let limit: usize = [Tier::Minute, Tier::Hour, Tier::Day, Tier::Month, Tier::Archive]
            .iter()
            .map(|t| store::max_buckets(*t).saturating_mul(self.caps(*t).max_entries()))
            .fold(0usize, usize::saturating_add)
            .saturating_add((shards * MAX_PENDING).saturating_mul(self.caps(Tier::Minute).max_entries()));
        LedgerStats {
            buckets: TierCounts {
                minute: buckets[0],
                hour: buckets[1],
                day: buckets[2],
                month: buckets[3],
                archive: buckets[4],
            },
            series: SeriesCounts {
                compound: entries.series,
                sessions: entries.sessions,
                users: entries.users,
                project_sessions: entries.project_sessions,
                tools: entries.tools,
                session_tools: entries.session_tools,
                total: entries.total(),
            },
            series_limit: limit,
            hourly_points: hourly,
            daily_points: daily,
            overflowed,
            tracked_sessions: self.inner.sessions.tracked(),
            max_tracked_sessions: self.inner.sessions.capacity(),
            untracked_session_calls: self.inner.sessions.untracked(),
            forced_merges: self.inner.forced_merges.load(Ordering::Relaxed),
        }
    }
}

fn sample_of(rec: &CallRecord) -> Sample {
    let t = &rec.tokens;
    let ttft = rec.time_to_first_token_us;
    let output_tps = if rec.metered && t.output > 0 {
        let gen_us = match ttft {
            Some(f) if f < rec.duration_us => rec.duration_us - f,
            _ => rec.duration_us,
        };
        (gen_us > 0).then(|| u64::try_from(u128::from(t.output) * 1_000_000 / u128::from(gen_us)).unwrap_or(u64::MAX))
    } else {
        None
    };
    Sample {
        input_tokens: rec.metered.then(|| t.prompt_total()),
        output_tokens: rec.metered.then_some(t.output),
        duration_ms: rec.duration_us / 1_000,
        ttft_ms: ttft.map(|us| us / 1_000),
        output_tps,
    }
}

impl RecordSink for Ledger {
    fn on_call(&self, record: &CallRecord) {
        self.ingest_call(record);
    }

    fn on_task(&self, record: &TaskRecord) {
        self.ingest_task(record);
    }

    fn on_tool(&self, record: &ToolRecord) {
        self.ingest_tool(record);
    }

    fn on_replayed_call(&self, record: &CallRecord) {
        self.ingest_call(record);
    }

    fn on_replayed_task(&self, record: &TaskRecord) {
        self.ingest_task(record);
    }

    fn on_replayed_tool(&self, record: &ToolRecord) {
        self.ingest_tool(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use chrono::Duration;

    #[test]
    fn a_forced_merge_keeps_old_minutes_in_their_own_hour() {
        // A backfill five hours back, one call a minute from 10:57 to 11:08, while a query holds the store: the
        // pending minutes fill and merge. Merging the oldest into the next moved 10:59 into 11:00's bucket.
        let now: chrono::DateTime<chrono::Utc> = "2026-03-14T16:00:00Z".parse().unwrap();
        let ledger = Ledger::new(LedgerConfig::default(), Arc::new(ManualClock::new(now)), PriceBook::builtin());
        let held = ledger.inner.store.lock();
        let start: chrono::DateTime<chrono::Utc> = "2026-03-14T10:57:00Z".parse().unwrap();
        for m in 0..12 {
            let mut rec = session::tests::call("claude-sonnet-4-5", "a", 0, 0);
            rec.timestamp = start + Duration::minutes(m);
            ledger.ingest_call(&rec);
        }
        drop(held);
        assert!(ledger.stats().forced_merges > 0);
        let q = Query::new(Window::range(start - Duration::hours(1), start + Duration::hours(2)))
            .group_by(GroupBy::Time(TimeGrain::Hour));
        let rows = ledger.query(&q).unwrap().groups;
        let calls = |hour: &str| rows.iter().find(|r| r.key.starts_with(hour)).map_or(0, |r| r.calls);
        assert_eq!((calls("2026-03-14T10:00"), calls("2026-03-14T11:00")), (3, 9), "{rows:?}");
    }

    #[test]
    fn expired_writes_count_in_their_sessions_own_rows_past_a_buckets_caps() {
        // 100 sessions each write to the cache once in one minute, never read: the minute's bucket keeps 64
        // sessions' rows (the rest fold into `(other)`). When the writes expire (gathered per minute by the read
        // that finds them), each counts in its session's row when there is one, and all 100 in the totals.
        let at: chrono::DateTime<chrono::Utc> = "2026-11-23T09:00:30Z".parse().unwrap();
        let clock = ManualClock::new(at);
        let ledger = Ledger::new(LedgerConfig::default(), Arc::new(clock.clone()), PriceBook::builtin());
        for n in 0..100 {
            let mut rec = session::tests::call("claude-sonnet-4-5", "a", 0, 2_000);
            rec.dimensions.session = Some(format!("s{n}").into());
            ledger.ingest_call(&rec);
        }
        clock.set(at + Duration::minutes(30));
        assert_eq!(ledger.cache_report(Window::All).unwrap().unread_cache_writes.writes, 100);
        let (mut own_rows, mut counted) = (0, 0);
        for n in 0..100 {
            let filter = crate::analysis::ReportFilter::new().filter(Dimension::Session, format!("s{n}"));
            let report = ledger.cache_report_for(Window::All, &filter).unwrap();
            if report.cache_metrics.cache_creation_tokens > 0 {
                own_rows += 1;
                counted += report.unread_cache_writes.writes;
            }
        }
        assert!(own_rows >= 60, "{own_rows}");
        assert_eq!(counted, own_rows, "every session with a row of its own has its unread write in it");
    }

    #[test]
    fn forced_merges_of_a_replay_keep_each_call_in_its_own_day() {
        // A journal replayed while a report holds the store: one call every 2 hours over 7 days, three weeks
        // back. No two pending minutes shared an old hour, so the oldest merged into the next, again and again:
        // the calls replayed meanwhile ended up in one minute, days late. Now pending minutes of one day merge,
        // and up to 8 days keep their own (past that, held that long, the closest days merge).
        let now: chrono::DateTime<chrono::Utc> = "2026-03-14T16:00:00Z".parse().unwrap();
        let ledger = Ledger::new(LedgerConfig::default(), Arc::new(ManualClock::new(now)), PriceBook::builtin());
        let start: chrono::DateTime<chrono::Utc> = "2026-02-20T00:00:00Z".parse().unwrap();
        let held = ledger.inner.store.lock();
        for h in 0..(7 * 12) {
            let mut rec = session::tests::call("claude-sonnet-4-5", "a", 0, 0);
            rec.timestamp = start + Duration::hours(2 * h);
            ledger.ingest_call(&rec);
        }
        drop(held);
        assert!(ledger.stats().forced_merges > 0);
        let q = Query::new(Window::range(start, start + Duration::days(7))).group_by(GroupBy::Time(TimeGrain::Day));
        let rows = ledger.query(&q).unwrap().groups;
        assert_eq!(rows.len(), 7, "{rows:?}");
        assert!(rows.iter().all(|r| r.calls == 12), "{:?}", rows.iter().map(|r| r.calls).collect::<Vec<_>>());
    }
}
