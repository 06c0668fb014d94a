//! Budgets: spend limits per period, threshold alerts, and enforcement before a request.
//!
//! # Concepts
//!
//! A [`Budget`] has a name, a [scope](BudgetScope) (everything; one dimension = value: user, tenant,
//! project, agent, model, or any other dimension; or each value of a dimension on its own, `user=*`:
//! [`BudgetScope::each_user`]), a [limit](BudgetLimit) in USD or in tokens, a
//! [period](BudgetPeriod) (calendar day, week or month in a configurable time zone, or a rolling duration),
//! alert thresholds in percent of the limit (default 50, 75, 90, 100) and an [action](BudgetAction): `Warn`
//! only alerts, `Block` also makes [`TokenMeter::check_budget`](crate::TokenMeter::check_budget) refuse
//! requests once the limit is reached.
//!
//! ```
//! use tokenmeter::budget::{Budget, BudgetAction, BudgetLimit, BudgetPeriod, BudgetScope, RequestScope};
//!
//! let meter = tokenmeter::TokenMeter::builder()
//!     .with_budget(
//!         Budget::new("acme-monthly", BudgetLimit::usd(500.0).unwrap())
//!             .with_scope(BudgetScope::tenant("acme"))
//!             .with_period(BudgetPeriod::Month)
//!             .with_time_zone("America/New_York".parse().unwrap())
//!             .with_action(BudgetAction::Block),
//!     )
//!     .with_budget_alert_callback(|alert| eprintln!("{alert}"))
//!     .build();
//!
//! // Before a request: refuse it when a block budget of its scope is exhausted.
//! meter.check_budget(&RequestScope::new().with_tenant("acme")).expect("within budget");
//! for state in meter.budget_status() {
//!     println!("{}: {} of {} ({:.0}%)", state.budget, state.spent, state.limit, state.utilization * 100.0);
//! }
//! ```
//!
//! # What counts
//!
//! Every call record whose dimensions match a budget's scope adds its priced cost (USD budgets) or its billed
//! tokens ([`TokenUsage::total`](crate::TokenUsage::total), token budgets) at the moment the call ended (its
//! timestamp plus its duration). Unpriced calls (unknown model) add nothing to a USD budget and are counted in
//! [`BudgetState::unpriced_calls`] instead. A model scope matches the canonical model id, so dated and
//! provider-specific ids of one model share its budget.
//!
//! # Periods
//!
//! Calendar periods start at local midnight in the budget's time zone (weeks on Monday unless
//! [`Budget::with_week_start`] says otherwise, months on the 1st),
//! so a New York monthly budget rolls over at 05:00 UTC (04:00 in summer). When a zone skips midnight, the
//! period starts at the first local time that exists. A rolling budget counts the spend of the last
//! `duration`, in buckets of `duration / 60`: the bucket holding now and the 60 before it, so a call counts
//! for at least `duration` (and at most a sixtieth longer), never less.
//!
//! # Alerts
//!
//! Each threshold fires once per period per budget, when spend first reaches it (several at once when one
//! call crosses several). On a rolling budget a threshold re-arms when spend falls back below it by a twentieth
//! of the limit (at most half the threshold), so spend hovering at a threshold alerts once. A calendar
//! budget also fires one *projected overrun* alert per period when the spend rate so far projects past the
//! limit before the period ends, measured over at least 10% of the period (or sooner once a quarter of the
//! limit is spent, from 1% of the period). Alerts go, in order, to a
//! `tracing` event with target `tokenmeter::budget` (WARN, ERROR at 100% and above), to callbacks
//! ([`TokenMeterBuilder::with_budget_alert_callback`](crate::TokenMeterBuilder::with_budget_alert_callback),
//! run on the recording thread), and to the webhook when the `webhook` feature is on (off the recording
//! thread). With a journal, each alert delivered is journaled too (for the webhook: when it fires, so call
//! [`TokenMeter::flush_webhook`](crate::TokenMeter::flush_webhook) before exiting): when the meter replays its
//! journal at start, spend comes back, nothing fires, and the alerts the journal holds for the current period
//! are not delivered again. A threshold spend reached before the restart that was never alerted (the limit was
//! lowered, the budget is new) fires with the first call, budget check or status read after the build (with the
//! next call under the budget only, a `Block` budget already over its limit would never fire it: it refuses
//! every call).
//!
//! # Enforcement
//!
//! Capture never blocks or refuses anything. The application asks before a request:
//! [`TokenMeter::check_budget`](crate::TokenMeter::check_budget) with the request's [`RequestScope`], or wraps
//! the call in [`TokenMeter::guard`](crate::TokenMeter::guard). Both refuse only for `Block` budgets whose
//! scope the request matches and whose spend has reached the limit; the error names the budget, spend, limit
//! and reset time.
//!
//! # Cost model
//!
//! Each budget keeps its period's account behind its own small lock. A call costs one scope comparison per
//! budget, and for each matching budget one lock (shared by every recording thread whose calls it matches: a
//! budget on everything is one lock for all of them), an integer add and one compare per threshold (a rolling
//! budget also walks its 61 buckets, three times). Alert delivery happens after the lock is released, and
//! only when a threshold is crossed.
//!
//! # File format
//!
//! [`TokenMeterBuilder::with_budgets_file`](crate::TokenMeterBuilder::with_budgets_file) reads budgets from
//! TOML (see [`parse_budgets_toml`]):
//!
//! ```toml
//! [budgets.org-monthly]
//! limit_usd = 500            # or limit_tokens = 20_000_000
//! period = "month"           # "day", "week", "month", or "rolling 24h" (s, m, h, d, w units)
//! time_zone = "America/New_York"   # IANA name; default "UTC"
//! week_start = "sunday"      # the day a "week" period starts on; default "monday"
//! scope = "everything"       # default; or a table with one key: { tenant = "acme" }, { model = "claude-opus-4-5" },
//!                            # or { user = "*" } for each user on their own
//! max_members = 10_000       # with a scope of each value: how many values it keeps at once (default as shown)
//! thresholds = [50, 75, 90, 100]   # percent; default as shown
//! action = "block"           # or "warn" (default)
//! ```
//!
//! Every error names the file, the 1-based line and the dotted field path.
//!
//! A budget without `time_zone` follows UTC; [`parse_budgets_toml_with_time_zone`] and
//! [`load_budgets_file_with_time_zone`] take another default (the `tokenmeter` command line passes its `--tz`).

mod alert;
mod file;
mod handle;
mod period;
mod tracker;
#[cfg(feature = "webhook")]
mod webhook;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};

pub use alert::{AlertKind, AlertStats, BudgetAlert, WebhookStats};
pub use chrono_tz::Tz;
pub use file::{
    load_budgets_file, load_budgets_file_with_time_zone, parse_budgets_toml, parse_budgets_toml_with_time_zone,
};
#[cfg(feature = "webhook")]
pub use webhook::WebhookConfig;

pub(crate) use tracker::{AlertMark, BudgetSetup, BudgetTracker};

use crate::capture::fields::{DimensionName, dimension_name};
use crate::pricing::{Money, normalize_model_id};
use crate::record::Dimensions;

/// The thresholds a budget alerts at unless told otherwise, in percent of its limit.
pub const DEFAULT_THRESHOLDS: [u32; 4] = [50, 75, 90, 100];

/// The most thresholds one budget keeps.
pub const MAX_THRESHOLDS: usize = 64;

/// How many values a budget for each value of a dimension ([`BudgetScope::Each`]) keeps an account for at once,
/// unless [`Budget::with_max_members`] says otherwise.
pub const DEFAULT_MAX_MEMBERS: usize = 10_000;

/// Pico-USD in one micro-USD.
const PICOS_PER_MICRO: u128 = 1_000_000;

// === impl BudgetLimit ===

/// How much a budget allows per period. Serialized as a [`BudgetAmount`] (`{"usd": 10.0, "picos": 10000000000000}`
/// or `{"tokens": 2000000}`), and read back from either dollar form, as [`BudgetLimit::usd`] reads dollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetLimit {
    /// Priced cost, exactly.
    Usd(Money),
    /// Billed tokens ([`TokenUsage::total`](crate::TokenUsage::total): uncached input, cache reads and writes,
    /// output).
    Tokens(u64),
}

impl BudgetLimit {
    /// A limit in US dollars, rounded to a whole micro-USD. Errors for a negative, NaN or infinite amount, one
    /// over $1e12, and a positive one that rounds to $0.
    pub fn usd(dollars: f64) -> Result<Self, BudgetError> {
        let reason = if dollars.is_nan() || dollars.is_infinite() {
            Some("it is not a finite number")
        } else if dollars < 0.0 {
            Some("it is negative")
        } else if dollars > 1e12 {
            Some("it is more than 1e12 USD")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(BudgetError::InvalidLimit { value: dollars, reason });
        }
        let micros = (dollars * 1e6).round() as u128;
        if micros == 0 && dollars > 0.0 {
            // $0 blocks everything: a positive limit must not become one.
            let reason = "it rounds to $0 (limits are whole micro-USD: at least 0.000001)";
            return Err(BudgetError::InvalidLimit { value: dollars, reason });
        }
        Ok(BudgetLimit::Usd(Money::from_picos(micros * PICOS_PER_MICRO)))
    }

    /// A limit in billed tokens.
    pub fn tokens(tokens: u64) -> Self {
        BudgetLimit::Tokens(tokens)
    }

    /// What the limit is counted in.
    pub fn unit(&self) -> BudgetUnit {
        match self {
            BudgetLimit::Usd(_) => BudgetUnit::Usd,
            BudgetLimit::Tokens(_) => BudgetUnit::Tokens,
        }
    }

    /// The limit as an amount.
    pub fn amount(&self) -> BudgetAmount {
        match *self {
            BudgetLimit::Usd(m) => BudgetAmount::Usd(m),
            BudgetLimit::Tokens(t) => BudgetAmount::Tokens(t),
        }
    }

    /// The limit in its accounting unit: pico-USD or tokens.
    fn units(&self) -> u128 {
        match *self {
            BudgetLimit::Usd(m) => m.picos(),
            BudgetLimit::Tokens(t) => u128::from(t),
        }
    }
}

impl fmt::Display for BudgetLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.amount().fmt(f)
    }
}

impl Serialize for BudgetLimit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.amount().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for BudgetLimit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match BudgetAmount::deserialize(deserializer)? {
            BudgetAmount::Tokens(t) => Ok(BudgetLimit::Tokens(t)),
            BudgetAmount::Usd(m) if m.picos() > 1_000_000_000_000 * 1_000_000_000_000 => {
                Err(serde::de::Error::custom(format_args!("a limit of {m} is more than 1e12 USD")))
            }
            BudgetAmount::Usd(m) => Ok(BudgetLimit::Usd(m)),
        }
    }
}

/// What a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetUnit {
    /// US dollars (exact pico-USD inside).
    Usd,
    /// Billed tokens.
    Tokens,
}

impl BudgetUnit {
    /// `"usd"` or `"tokens"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            BudgetUnit::Usd => "usd",
            BudgetUnit::Tokens => "tokens",
        }
    }
}

/// An amount of spend in a budget's unit.
///
/// Serialized as `{"usd": 0.1044, "picos": 104400000000}` (dollars to read, and the exact amount in pico-USD,
/// as reports give `cost_usd` and `cost_picos`) or `{"tokens": 35600}`. Deserializing takes `picos` when
/// present, else `usd` (rounded to a micro-USD, as [`BudgetLimit::usd`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BudgetAmount {
    /// US dollars.
    Usd(Money),
    /// Tokens.
    Tokens(u64),
}

impl BudgetAmount {
    /// The amount as a float: US dollars or tokens (for display and export edges only).
    pub fn as_f64(&self) -> f64 {
        match *self {
            BudgetAmount::Usd(m) => m.as_usd(),
            BudgetAmount::Tokens(t) => t as f64,
        }
    }

    /// What the amount is counted in.
    pub fn unit(&self) -> BudgetUnit {
        match self {
            BudgetAmount::Usd(_) => BudgetUnit::Usd,
            BudgetAmount::Tokens(_) => BudgetUnit::Tokens,
        }
    }

    /// An amount of accounting units (pico-USD or tokens), saturating.
    pub(crate) fn from_units(unit: BudgetUnit, units: u128) -> Self {
        match unit {
            BudgetUnit::Usd => BudgetAmount::Usd(Money::from_picos(units)),
            BudgetUnit::Tokens => BudgetAmount::Tokens(u64::try_from(units).unwrap_or(u64::MAX)),
        }
    }
}

impl Serialize for BudgetAmount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match *self {
            BudgetAmount::Usd(m) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("usd", &m.as_usd())?;
                map.serialize_entry("picos", &m)?;
                map.end()
            }
            BudgetAmount::Tokens(t) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("tokens", &t)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for BudgetAmount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Repr {
            usd: Option<f64>,
            picos: Option<Money>,
            tokens: Option<u64>,
        }
        match Repr::deserialize(deserializer)? {
            Repr { tokens: Some(t), usd: None, picos: None } => Ok(BudgetAmount::Tokens(t)),
            Repr { tokens: None, picos: Some(m), .. } => Ok(BudgetAmount::Usd(m)),
            Repr { tokens: None, usd: Some(usd), picos: None } => {
                BudgetLimit::usd(usd).map(|l| l.amount()).map_err(D::Error::custom)
            }
            _ => Err(D::Error::custom(r#"a budget amount is {"usd": …, "picos": …} or {"tokens": …}"#)),
        }
    }
}

impl fmt::Display for BudgetAmount {
    /// `$12.50` or `1200 tokens`; a precision applies to dollars.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetAmount::Usd(m) => fmt::Display::fmt(m, f),
            BudgetAmount::Tokens(t) => write!(f, "{t} tokens"),
        }
    }
}

// === impl BudgetScope ===

/// Which calls a budget counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum BudgetScope {
    /// Every call.
    #[default]
    Everything,
    /// Calls whose dimension `name` (as in [`Dimensions::get`]: `user`, `tenant`, `project`, `agent`,
    /// `session`, `operation`, `task`, or a user-named dimension) equals `value`.
    Dimension {
        /// The dimension's name.
        name: Arc<str>,
        /// The value it must have.
        value: Arc<str>,
    },
    /// Calls on one model, by canonical id (see [`normalize_model_id`]).
    Model(Arc<str>),
    /// Each value of the dimension `name` on its own (written `user=*`): one account per value the calls bring,
    /// as if a budget `name=value` had been configured for each (every user's own $5 a day, each session's own
    /// 200,000 tokens). `name` is a dimension, as in [`dimension`](Self::dimension), or `model` (each model on
    /// its own). A call without a value for it is not counted. Its states, alerts and refusals name the value
    /// (`user=alice`, with [`BudgetState::member`] set); see [`Budget::with_max_members`] for how many values
    /// it keeps, and the `(other)` account past them.
    Each {
        /// The dimension, or `model`.
        name: Arc<str>,
    },
}

impl BudgetScope {
    /// Every call.
    pub fn everything() -> Self {
        BudgetScope::Everything
    }

    /// Calls of one user (`user.id` / `enduser.id`).
    pub fn user(value: impl Into<Arc<str>>) -> Self {
        Self::dimension("user", value)
    }

    /// Calls of one tenant (`tenant.id`).
    pub fn tenant(value: impl Into<Arc<str>>) -> Self {
        Self::dimension("tenant", value)
    }

    /// Calls of one project (`project`).
    pub fn project(value: impl Into<Arc<str>>) -> Self {
        Self::dimension("project", value)
    }

    /// Calls of one agent (`gen_ai.agent.name` / `agent`).
    pub fn agent(value: impl Into<Arc<str>>) -> Self {
        Self::dimension("agent", value)
    }

    /// Calls whose dimension `name` equals `value`. `name` is a dimension (`user`, `tenant`, `project`, `agent`,
    /// `session`, `operation`, `task`, or one of the meter's extra dimensions); a span field that fills one names
    /// it (`tenant.id` is `tenant`, `gen_ai.conversation.id` is `session`), and `model` (or a model field) is
    /// [`model`](Self::model). A meter refuses a budget on a dimension it does not capture
    /// ([`TokenMeterBuilder::try_build`](crate::TokenMeterBuilder::try_build)).
    ///
    /// The value `*` means each value on its own: `dimension("user", "*")` is [`each`](Self::each)`("user")`.
    pub fn dimension(name: impl Into<Arc<str>>, value: impl Into<Arc<str>>) -> Self {
        let name: Arc<str> = name.into();
        let value: Arc<str> = value.into();
        if &*value == "*" {
            return Self::each(name);
        }
        // A span field that fills a dimension names that dimension (`tenant.id` is `tenant`): it would otherwise
        // match no call, and a blocking budget would never block.
        match dimension_name(&name) {
            DimensionName::Model => Self::model(&value),
            DimensionName::Builtin(d) => BudgetScope::Dimension { name: Arc::from(d.name()), value },
            DimensionName::Other => BudgetScope::Dimension { name, value },
        }
    }

    /// Calls on one model; the id is normalized, so `claude-sonnet-4-5-20250929` means `claude-sonnet-4-5`.
    /// `model("*")` is [`each`](Self::each)`("model")`.
    pub fn model(id: &str) -> Self {
        if id == "*" {
            return Self::each("model");
        }
        BudgetScope::Model(Arc::from(normalize_model_id(id)))
    }

    /// Each value of a dimension on its own ([`BudgetScope::Each`], written `user=*`): a span field that fills a
    /// dimension names it, as in [`dimension`](Self::dimension) (`tenant.id` is `tenant`), and `model` (or a model
    /// field) is each model.
    pub fn each(name: impl Into<Arc<str>>) -> Self {
        let name: Arc<str> = name.into();
        let name = match dimension_name(&name) {
            DimensionName::Model => Arc::from("model"),
            DimensionName::Builtin(d) => Arc::from(d.name()),
            DimensionName::Other => name,
        };
        BudgetScope::Each { name }
    }

    /// Each user on their own (`user=*`).
    pub fn each_user() -> Self {
        Self::each("user")
    }

    /// Each tenant on its own (`tenant=*`).
    pub fn each_tenant() -> Self {
        Self::each("tenant")
    }

    /// Each session on its own (`session=*`): a cap on what any one session (an agent's run, a conversation) may
    /// spend.
    pub fn each_session() -> Self {
        Self::each("session")
    }

    /// The scope of one value of an [`Each`](Self::Each) scope (`user=alice`); any other scope as it is.
    pub(crate) fn member(&self, value: &str) -> BudgetScope {
        match self {
            BudgetScope::Each { name } if &**name == "model" => BudgetScope::Model(Arc::from(value)),
            BudgetScope::Each { name } => BudgetScope::Dimension { name: Arc::clone(name), value: Arc::from(value) },
            other => other.clone(),
        }
    }

    /// Whether a request of this scope falls under the budget. A request that does not name the budget's
    /// dimension (or model) does not.
    fn covers(&self, request: &RequestScope) -> bool {
        match self {
            BudgetScope::Everything => true,
            BudgetScope::Dimension { name, value } => request.get(name) == Some(&**value),
            BudgetScope::Model(model) => request.model.as_deref() == Some(&**model),
            BudgetScope::Each { name } => request.get(name).is_some(),
        }
    }
}

impl fmt::Display for BudgetScope {
    /// `everything`, `tenant=acme`, `model=claude-sonnet-4-5`, `user=*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetScope::Everything => f.write_str("everything"),
            BudgetScope::Dimension { name, value } => write!(f, "{name}={value}"),
            BudgetScope::Model(m) => write!(f, "model={m}"),
            BudgetScope::Each { name } => write!(f, "{name}=*"),
        }
    }
}

impl Serialize for BudgetScope {
    /// As its display form (`tenant=acme`).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl std::str::FromStr for BudgetScope {
    type Err = BudgetError;

    /// The display form back: `everything`, `model=claude-sonnet-4-5`, `tenant=acme`, `user=*` (through
    /// [`dimension`](Self::dimension) and [`model`](Self::model), so names and ids are normalized).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "everything" {
            return Ok(BudgetScope::Everything);
        }
        match s.split_once('=') {
            Some(("model", id)) if !id.is_empty() => Ok(BudgetScope::model(id)),
            // An empty name is refused by `try_build`, but `build` keeps the budget and shows it as `=value`.
            Some((name, value)) => Ok(BudgetScope::dimension(name, value)),
            _ => Err(BudgetError::InvalidText { expected: "`everything` or `dimension=value`", found: s.to_owned() }),
        }
    }
}

impl<'de> Deserialize<'de> for BudgetScope {
    /// From its display form (`tenant=acme`), as the HTTP API's `/api/v1/budgets` writes it.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

// === impl BudgetPeriod ===

/// The longest rolling period, 366 days (longer spans are what the calendar periods are for).
pub const MAX_ROLLING: Duration = Duration::from_secs(366 * 86_400);

/// How long a budget's limit lasts before it starts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BudgetPeriod {
    /// A calendar day, from local midnight.
    Day,
    /// A calendar week, from local midnight on Monday or the budget's [week start](Budget::with_week_start).
    Week,
    /// A calendar month, from local midnight on the 1st.
    #[default]
    Month,
    /// The last `duration`, sliding (at least one second; buckets of `duration / 60`: a call counts for at
    /// least `duration` and at most a sixtieth longer).
    Rolling(Duration),
}

impl BudgetPeriod {
    /// True for [`BudgetPeriod::Rolling`].
    pub fn is_rolling(&self) -> bool {
        matches!(self, BudgetPeriod::Rolling(_))
    }
}

impl fmt::Display for BudgetPeriod {
    /// `day`, `week`, `month`, `rolling 1d2h` (the file syntax; weeks only for a whole number of weeks).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetPeriod::Day => f.write_str("day"),
            BudgetPeriod::Week => f.write_str("week"),
            BudgetPeriod::Month => f.write_str("month"),
            BudgetPeriod::Rolling(d) => {
                f.write_str("rolling ")?;
                let mut secs = d.as_secs();
                if secs == 0 {
                    return f.write_str("0s");
                }
                // Weeks only for a whole number of them: `rolling 30d` reads as written, not `rolling 4w2d`.
                let weeks = if secs % 604_800 == 0 { 604_800 } else { u64::MAX };
                for (unit, size) in [("w", weeks), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
                    if secs >= size {
                        write!(f, "{}{unit}", secs / size)?;
                        secs %= size;
                    }
                }
                Ok(())
            }
        }
    }
}

impl Serialize for BudgetPeriod {
    /// As its display form (`month`, `rolling 24h`).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What a period may be written as, for error messages.
const PERIOD_SYNTAX: &str =
    "\"day\", \"week\", \"month\" or \"rolling <duration>\" from 1s to 366d (e.g. \"rolling 24h\")";

impl std::str::FromStr for BudgetPeriod {
    type Err = BudgetError;

    /// `day`, `week`, `month`, or `rolling <duration>` from 1s to [`MAX_ROLLING`] (`rolling 24h`, `rolling
    /// 1d2h`): the display form, and the budget file's syntax.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let period = match s.trim() {
            "day" => Some(BudgetPeriod::Day),
            "week" => Some(BudgetPeriod::Week),
            "month" => Some(BudgetPeriod::Month),
            other => {
                // `rolling`, a space, the duration (`rolling24h` is not one).
                let duration = other
                    .strip_prefix("rolling")
                    .filter(|d| d.starts_with(char::is_whitespace))
                    .and_then(|d| file::parse_duration(d.trim()));
                duration.map(BudgetPeriod::Rolling)
            }
        };
        period.ok_or_else(|| BudgetError::InvalidText { expected: PERIOD_SYNTAX, found: s.to_owned() })
    }
}

impl<'de> Deserialize<'de> for BudgetPeriod {
    /// From its display form (`month`, `rolling 24h`).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What a budget does once its limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetAction {
    /// Alert only.
    #[default]
    Warn,
    /// Alert, and make [`TokenMeter::check_budget`](crate::TokenMeter::check_budget) refuse requests in scope.
    Block,
}

// === impl Budget ===

/// One budget's configuration. Build it with [`Budget::new`] and the `with_*` methods; add it with
/// [`TokenMeterBuilder::with_budget`](crate::TokenMeterBuilder::with_budget).
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct Budget {
    name: Arc<str>,
    limit: BudgetLimit,
    scope: BudgetScope,
    period: BudgetPeriod,
    time_zone: Tz,
    week_start: chrono::Weekday,
    thresholds: Vec<u32>,
    action: BudgetAction,
    /// An [`Each`](BudgetScope::Each) budget's most values with an account at once.
    max_members: usize,
    /// Where a budget read from a file had its scope written, for the builder's errors.
    scope_at: DefinedAt,
    /// A rolling period asked for outside one second to [`MAX_ROLLING`] (`period` holds the nearest), for the
    /// builder's error.
    period_asked: AskedPeriod,
}

/// A period a budget was asked to count and does not (see [`Budget::with_period`]). Not part of what the budget
/// is, as [`DefinedAt`] is not: two budgets that count the same period are equal.
#[derive(Debug, Clone, Copy, Default)]
struct AskedPeriod(Option<Duration>);

impl PartialEq for AskedPeriod {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Where a budget read from a file had a setting written (`budgets.toml:7`). Not part of what the budget is:
/// two budgets alike but for it are equal.
#[derive(Debug, Clone, Default)]
struct DefinedAt(Option<Arc<str>>);

impl PartialEq for DefinedAt {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Budget {
    /// A budget over everything, per calendar month in UTC, alerting at [`DEFAULT_THRESHOLDS`], warn only.
    pub fn new(name: impl Into<Arc<str>>, limit: BudgetLimit) -> Self {
        Budget {
            name: name.into(),
            limit,
            scope: BudgetScope::Everything,
            period: BudgetPeriod::Month,
            time_zone: Tz::UTC,
            week_start: chrono::Weekday::Mon,
            thresholds: DEFAULT_THRESHOLDS.to_vec(),
            action: BudgetAction::Warn,
            max_members: DEFAULT_MAX_MEMBERS,
            scope_at: DefinedAt::default(),
            period_asked: AskedPeriod(None),
        }
    }

    /// Counts only calls in `scope`.
    pub fn with_scope(mut self, scope: BudgetScope) -> Self {
        // A variant built directly is normalized as the constructors do: a model id that is not canonical, or a
        // span field's name (`tenant.id`), would match no call, and a blocking budget would never block.
        self.scope = match scope {
            BudgetScope::Model(id) => BudgetScope::model(&id),
            BudgetScope::Dimension { name, value } => BudgetScope::dimension(name, value),
            BudgetScope::Each { name } => BudgetScope::each(name),
            everything => everything,
        };
        // Not the scope a file wrote any more.
        self.scope_at = DefinedAt::default();
        self
    }

    /// Sets the period; a rolling duration is taken in whole seconds, from one second to [`MAX_ROLLING`]:
    /// `try_build` refuses one outside (`BuildError::BudgetPeriod`), and `build` logs it and takes the nearest.
    pub fn with_period(mut self, period: BudgetPeriod) -> Self {
        self.period_asked = AskedPeriod(None);
        self.period = match period {
            // Whole seconds, as the period is written (`rolling 90s`) and read back.
            BudgetPeriod::Rolling(d) => {
                let whole = Duration::from_secs(d.as_secs());
                if whole < Duration::from_secs(1) || whole > MAX_ROLLING {
                    self.period_asked = AskedPeriod(Some(d));
                }
                BudgetPeriod::Rolling(whole.clamp(Duration::from_secs(1), MAX_ROLLING))
            }
            other => other,
        };
        self
    }

    /// The rolling period [`with_period`](Self::with_period) was given when it was outside one second to
    /// [`MAX_ROLLING`].
    pub(crate) fn period_out_of_range(&self) -> Option<Duration> {
        self.period_asked.0
    }

    /// Sets the time zone calendar periods follow (default UTC). Parse one from its IANA name:
    /// `"Europe/Berlin".parse::<Tz>()`.
    pub fn with_time_zone(mut self, time_zone: Tz) -> Self {
        self.time_zone = time_zone;
        self
    }

    /// Sets the day a [`BudgetPeriod::Week`] starts on, at local midnight (default Monday, as ISO 8601 weeks;
    /// `Weekday::Sun` for weeks as the US calendar counts them). Other periods ignore it.
    pub fn with_week_start(mut self, day: chrono::Weekday) -> Self {
        self.week_start = day;
        self
    }

    /// For a budget of each value of a dimension ([`BudgetScope::Each`]): how many values it keeps an account for
    /// at once (default [`DEFAULT_MAX_MEMBERS`], at least 1). An account is ~250 bytes (~2.7 KB on a rolling
    /// budget). When a new value comes and the accounts are full, those whose period has ended (a rolling window:
    /// whose spend has left it) are dropped; if none has, the new value's calls count in one shared account,
    /// `(other)` (its states and alerts read `user=(other)`), under the same limit: never uncounted, so a `Block`
    /// budget refuses those values together once they have spent the limit between them. A WARN says so (once a
    /// day), and [`TokenMeter::budget_members_overflow`](crate::TokenMeter::budget_members_overflow) counts those
    /// calls. Set it above the number of values that spend in one period. Other scopes ignore it.
    pub fn with_max_members(mut self, max: usize) -> Self {
        self.max_members = max.max(1);
        self
    }

    /// See [`with_max_members`](Self::with_max_members).
    pub fn max_members(&self) -> usize {
        self.max_members
    }

    /// Sets the alert thresholds, in percent of the limit (above 100 allowed). Zeros and repeats are dropped,
    /// the rest sorted, and at most [`MAX_THRESHOLDS`] kept; none means no threshold alerts.
    pub fn with_thresholds(mut self, percents: impl IntoIterator<Item = u32>) -> Self {
        let mut t: Vec<u32> = percents.into_iter().filter(|p| *p > 0).collect();
        t.sort_unstable();
        t.dedup();
        t.truncate(MAX_THRESHOLDS);
        self.thresholds = t;
        self
    }

    /// Sets what happens at the limit (default [`BudgetAction::Warn`]).
    pub fn with_action(mut self, action: BudgetAction) -> Self {
        self.action = action;
        self
    }

    /// The budget's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limit per period.
    pub fn limit(&self) -> BudgetLimit {
        self.limit
    }

    /// Which calls count.
    pub fn scope(&self) -> &BudgetScope {
        &self.scope
    }

    /// For a budget read from a file with a `scope`, where the scope is written: ``budgets.toml:7: field
    /// `budgets.team.scope` ``, as the reader's errors say it. `None` for a budget built in code.
    pub fn scope_written_at(&self) -> Option<&str> {
        self.scope_at.0.as_deref()
    }

    /// Records where the scope was written (the budgets file reader).
    pub(crate) fn with_scope_written_at(mut self, at: String) -> Self {
        self.scope_at = DefinedAt(Some(at.into()));
        self
    }

    /// The period.
    pub fn period(&self) -> BudgetPeriod {
        self.period
    }

    /// The time zone of calendar periods.
    pub fn time_zone(&self) -> Tz {
        self.time_zone
    }

    /// The day a weekly period starts on.
    pub fn week_start(&self) -> chrono::Weekday {
        self.week_start
    }

    /// When the period holding `at` began: local midnight of its day, week (from [`week_start`](Self::week_start))
    /// or month in [`time_zone`](Self::time_zone), or for a rolling budget the start of the window ending at `at`
    /// (at the latest: the window [`BudgetState::period_start`] reports moves with the newest spend). Calls that
    /// ended before it do not count in the period.
    pub fn period_start(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let at = period::to_nanos(at);
        let start = match self.period {
            BudgetPeriod::Rolling(duration) => period::RollingBuckets::new(duration).window_start(at),
            calendar => period::calendar_bounds(calendar, self.time_zone, self.week_start, at).0,
        };
        period::to_utc(start)
    }

    /// Alert thresholds, in percent, ascending.
    pub fn thresholds(&self) -> &[u32] {
        &self.thresholds
    }

    /// What happens at the limit.
    pub fn action(&self) -> BudgetAction {
        self.action
    }
}

// === impl RequestScope ===

/// The dimensions of a request about to be made, for [`TokenMeter::check_budget`](crate::TokenMeter::check_budget).
///
/// A budget applies to the request when its scope is everything, or names a dimension (or model) that the
/// request carries with the same value.
///
/// Values set with the `with_*` methods are as the application's spans would carry them: the meter treats them
/// as capture treats span fields before comparing (cut at
/// [`with_max_dimension_len`](crate::TokenMeterBuilder::with_max_dimension_len), passed through
/// [`with_dimension_filter`](crate::TokenMeterBuilder::with_dimension_filter)), so `with_user("alice")` finds the
/// account a pseudonymising filter keeps alice's calls under. Values taken from a record or
/// [`current_dimensions`](crate::TokenMeter::current_dimensions) ([`from_dimensions`](Self::from_dimensions)) are
/// already as recorded, and are compared as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct RequestScope {
    /// Name, value, and whether the value is as recorded (from a record's dimensions) rather than as written.
    dims: Vec<(Arc<str>, Arc<str>, bool)>,
    model: Option<String>,
}

impl RequestScope {
    /// A request with no dimensions: only budgets over everything apply.
    pub fn new() -> Self {
        RequestScope::default()
    }

    /// The dimensions of a record (or of the span context a request will run in). A model is not a dimension:
    /// add [`with_model`](Self::with_model) for the budgets on a model.
    pub fn from_dimensions(dims: &Dimensions) -> Self {
        let mut scope = RequestScope::new();
        for name in ["session", "user", "tenant", "project", "agent", "operation", "task"] {
            if let Some(v) = dims.get(name) {
                scope = scope.with_dimension(name, v);
            }
        }
        for (k, v) in &dims.extra {
            scope = scope.with_dimension(k.clone(), v.clone());
        }
        for dim in &mut scope.dims {
            dim.2 = true;
        }
        scope
    }

    /// Sets the session (`session.id`).
    pub fn with_session(self, value: impl Into<Arc<str>>) -> Self {
        self.with_dimension("session", value)
    }

    /// Sets the user.
    pub fn with_user(self, value: impl Into<Arc<str>>) -> Self {
        self.with_dimension("user", value)
    }

    /// Sets the tenant.
    pub fn with_tenant(self, value: impl Into<Arc<str>>) -> Self {
        self.with_dimension("tenant", value)
    }

    /// Sets the project.
    pub fn with_project(self, value: impl Into<Arc<str>>) -> Self {
        self.with_dimension("project", value)
    }

    /// Sets the agent.
    pub fn with_agent(self, value: impl Into<Arc<str>>) -> Self {
        self.with_dimension("agent", value)
    }

    /// Sets the model the request will use (any accepted id form).
    pub fn with_model(mut self, id: &str) -> Self {
        self.model = Some(normalize_model_id(id));
        self
    }

    /// Sets any dimension by name (`model`, or a model field, sets the model); a span field that fills a
    /// dimension names it, as in [`BudgetScope::dimension`] (`tenant.id` is `tenant`).
    pub fn with_dimension(mut self, name: impl Into<Arc<str>>, value: impl Into<Arc<str>>) -> Self {
        let mut name: Arc<str> = name.into();
        let value: Arc<str> = value.into();
        match dimension_name(&name) {
            DimensionName::Model => return self.with_model(&value),
            DimensionName::Builtin(d) => name = Arc::from(d.name()),
            DimensionName::Other => {}
        }
        match self.dims.iter_mut().find(|(k, _, _)| *k == name) {
            Some(slot) => (slot.1, slot.2) = (value, false),
            None => self.dims.push((name, value, false)),
        }
        self
    }

    /// The scope as the meter compares it: each value set as written passed through `keep` (the meter's cut and
    /// filter; `None` drops the value), values from a record as they are. Borrowed when nothing changes.
    pub(crate) fn as_recorded(
        &self,
        keep: impl Fn(&str, &Arc<str>) -> Option<Arc<str>>,
    ) -> std::borrow::Cow<'_, RequestScope> {
        let changed = |(name, value, recorded): &(Arc<str>, Arc<str>, bool)| {
            !*recorded && keep(name, value).is_none_or(|kept| !Arc::ptr_eq(&kept, value))
        };
        if !self.dims.iter().any(changed) {
            return std::borrow::Cow::Borrowed(self);
        }
        let dims = self
            .dims
            .iter()
            .filter_map(|(name, value, recorded)| match recorded {
                true => Some((name.clone(), value.clone(), true)),
                false => keep(name, value).map(|kept| (name.clone(), kept, true)),
            })
            .collect();
        std::borrow::Cow::Owned(RequestScope { dims, model: self.model.clone() })
    }

    /// A dimension's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        if name == "model" {
            return self.model.as_deref();
        }
        self.dims.iter().find(|(k, _, _)| &**k == name).map(|(_, v, _)| &**v)
    }
}

// === impl BudgetState ===

/// One budget's state in its current period: what [`TokenMeter::budget_status`](crate::TokenMeter::budget_status)
/// returns, and (as JSON) what the HTTP API's `/api/v1/budgets` lists: it reads back with `serde_json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetState {
    /// The budget's name.
    pub budget: Arc<str>,
    /// Which calls count: for a budget of each value of a dimension, this value's (`user=alice`).
    pub scope: BudgetScope,
    /// For a budget of each value of a dimension ([`BudgetScope::Each`], `user=*`), the value this state is for
    /// (`alice`); `None` for other budgets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<Arc<str>>,
    /// The period.
    pub period: BudgetPeriod,
    /// Warn or block.
    pub action: BudgetAction,
    /// When the current period started (a rolling budget: the start of its window).
    pub period_start: DateTime<Utc>,
    /// When the period ends and spend starts over (a rolling budget: when the oldest spend in the window
    /// leaves it).
    pub resets_at: DateTime<Utc>,
    /// Spent in the current period.
    pub spent: BudgetAmount,
    /// The limit.
    pub limit: BudgetAmount,
    /// Limit minus spent, zero when over.
    pub remaining: BudgetAmount,
    /// Spent / limit (1.0 = the whole limit; above 1.0 when over; 1.0 for a zero limit).
    pub utilization: f64,
    /// Projected spend at the period's end at the rate so far; `None` until at least 1% of the period has
    /// passed. For a rolling budget, the current window's spend (the rate it holds).
    pub projected: Option<BudgetAmount>,
    /// Time until the limit is reached at the current rate: zero when it already is; `None` when the rate
    /// is unknown or does not reach the limit before the period resets. Serialized as seconds (a float).
    #[serde(serialize_with = "serialize_opt_secs", deserialize_with = "deserialize_opt_secs")]
    pub time_to_limit: Option<Duration>,
    /// True once spend has reached the limit.
    pub over_budget: bool,
    /// Thresholds (percent) already crossed this period.
    pub thresholds_crossed: Vec<u32>,
    /// Calls counted this period.
    pub calls: u64,
    /// Calls in scope this period with no price (a USD budget cannot count them).
    pub unpriced_calls: u64,
}

fn deserialize_opt_secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Option::<f64>::deserialize(d)?
        .map(|secs| Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom))
        .transpose()
}

fn serialize_opt_secs<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

// === errors ===

/// A request refused because a `Block` budget in its scope is exhausted.
///
/// Its message names the budget, its scope and period, the spend, the limit and when the budget resets:
/// ``budget `acme-monthly` (tenant=acme, month) is exhausted: spent $10.20 of $10.00; it resets at
/// 2026-04-01T04:00:00Z``.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "budget `{}` ({}, {}) is exhausted: spent {} of {}; it resets at {}",
    crate::redact::Printable(&.0.budget), crate::redact::Printable(&.0.scope.to_string()), .0.period, .0.spent, .0.limit,
    .0.resets_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
)]
pub struct BudgetExceeded(Box<Exceeded>);

#[derive(Debug, Clone, PartialEq)]
struct Exceeded {
    budget: Arc<str>,
    scope: BudgetScope,
    period: BudgetPeriod,
    spent: BudgetAmount,
    limit: BudgetAmount,
    resets_at: DateTime<Utc>,
}

impl BudgetExceeded {
    pub(crate) fn new(
        budget: Arc<str>,
        scope: BudgetScope,
        period: BudgetPeriod,
        spent: BudgetAmount,
        limit: BudgetAmount,
        resets_at: DateTime<Utc>,
    ) -> Self {
        BudgetExceeded(Box::new(Exceeded { budget, scope, period, spent, limit, resets_at }))
    }

    /// The exhausted budget's name.
    pub fn budget(&self) -> &str {
        &self.0.budget
    }

    /// Its scope.
    pub fn scope(&self) -> &BudgetScope {
        &self.0.scope
    }

    /// Its period.
    pub fn period(&self) -> BudgetPeriod {
        self.0.period
    }

    /// Spent in the current period.
    pub fn spent(&self) -> BudgetAmount {
        self.0.spent
    }

    /// The limit.
    pub fn limit(&self) -> BudgetAmount {
        self.0.limit
    }

    /// When spend starts over.
    pub fn resets_at(&self) -> DateTime<Utc> {
        self.0.resets_at
    }
}

/// Errors configuring budgets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// A budget file could not be read.
    #[error("cannot read budget file {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A budget file is not valid TOML.
    #[error("{origin}:{line}:{column}: {message}")]
    Syntax {
        /// The file (or other origin) of the text.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// A budget file is valid TOML but a field is wrong, unknown or missing.
    #[error("{origin}:{line}: field `{field}`: {message}")]
    Field {
        /// The file (or other origin) of the text.
        origin: String,
        /// 1-based line of the offending key, value or table.
        line: usize,
        /// Dotted path of the field, e.g. `budgets.org-monthly.period`.
        field: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A limit given to [`BudgetLimit::usd`] is not usable.
    #[error("invalid budget limit {value} USD: {reason}; give a finite, non-negative number of dollars")]
    InvalidLimit {
        /// The value given.
        value: f64,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A budget scope or period given as text ([`BudgetScope`]'s or [`BudgetPeriod`]'s `FromStr`) is not one.
    #[error("expected {expected}, found {found:?}")]
    InvalidText {
        /// What the text should have been.
        expected: &'static str,
        /// The text given.
        found: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_periods_given_as_text_fail_with_an_error_type() {
        // `?` into a boxed error (anyhow's, too) needs a `std::error::Error`: a `String` was none.
        fn read(
            scope: &str,
            period: &str,
        ) -> Result<(BudgetScope, BudgetPeriod), Box<dyn std::error::Error + Send + Sync>> {
            Ok((scope.parse()?, period.parse()?))
        }
        assert!(read("tenant=acme", "rolling 24h").is_ok());
        let err = read("acme", "day").unwrap_err();
        assert_eq!(err.to_string(), r#"expected `everything` or `dimension=value`, found "acme""#);
        let err = read("everything", "fortnight").unwrap_err();
        assert!(err.to_string().starts_with(r#"expected "day", "week", "month""#), "{err}");
        assert!(matches!(
            "fortnight".parse::<BudgetPeriod>(),
            Err(BudgetError::InvalidText { found, .. }) if found == "fortnight"
        ));
    }

    #[test]
    fn limits_serialize_as_amounts_and_read_back() {
        // They serialized as `{"usd": <picos>}`, a form nothing read back from dollars.
        let ten = BudgetLimit::usd(10.0).unwrap();
        let json = serde_json::to_string(&ten).unwrap();
        assert_eq!(json, r#"{"usd":10.0,"picos":10000000000000}"#);
        assert_eq!(serde_json::from_str::<BudgetLimit>(&json).unwrap(), ten);
        assert_eq!(serde_json::from_str::<BudgetLimit>(r#"{"usd":10}"#).unwrap(), ten);
        let tokens = BudgetLimit::tokens(2_000_000);
        assert_eq!(serde_json::to_string(&tokens).unwrap(), r#"{"tokens":2000000}"#);
        assert_eq!(serde_json::from_str::<BudgetLimit>(r#"{"tokens":2000000}"#).unwrap(), tokens);
        let err = serde_json::from_str::<BudgetLimit>(r#"{"picos":1000000000000000000000001}"#).unwrap_err();
        assert!(err.to_string().contains("more than 1e12 USD"), "{err}");
        assert!(serde_json::from_str::<BudgetLimit>(r#"{"usd":-1}"#).is_err());
    }

    #[test]
    fn amounts_serialize_dollars_beside_exact_picos_and_read_back() {
        let usd = BudgetAmount::Usd(Money::from_picos(104_400_000_000));
        let json = serde_json::to_string(&usd).unwrap();
        assert_eq!(json, r#"{"usd":0.1044,"picos":104400000000}"#);
        assert_eq!(serde_json::from_str::<BudgetAmount>(&json).unwrap(), usd);
        // Picos win over a rounded dollar figure; dollars alone are read to the micro-USD.
        let exact: BudgetAmount = serde_json::from_str(r#"{"usd":0.1,"picos":104400000001}"#).unwrap();
        assert_eq!(exact, BudgetAmount::Usd(Money::from_picos(104_400_000_001)));
        let dollars: BudgetAmount = serde_json::from_str(r#"{"usd":12.5}"#).unwrap();
        assert_eq!(dollars, BudgetAmount::Usd(Money::from_picos(12_500_000_000_000)));
        let tokens = BudgetAmount::Tokens(35_600);
        assert_eq!(serde_json::to_string(&tokens).unwrap(), r#"{"tokens":35600}"#);
        assert_eq!(serde_json::from_str::<BudgetAmount>(r#"{"tokens":35600}"#).unwrap(), tokens);
        for bad in [r#"{}"#, r#"{"usd":1,"tokens":2}"#, r#"{"usd":-1}"#, r#"{"dollars":1}"#] {
            assert!(serde_json::from_str::<BudgetAmount>(bad).is_err(), "{bad}");
        }
    }
}
