//! Helpers for the ledger and analysis tests: a ledger on a manual clock, and a call-record builder.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use tokenmeter::ledger::{Ledger, LedgerConfig};
use tokenmeter::{CallRecord, Dimensions, ManualClock, Money, Outcome, PriceBook, TaskRecord, TokenUsage, ToolRecord};

/// 2026-03-14 12:00:00 UTC, a Saturday.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 14, 12, 0, 0).unwrap()
}

pub fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

pub fn mins(n: i64) -> Duration {
    Duration::minutes(n)
}

pub struct Rig {
    pub ledger: Ledger,
    pub clock: ManualClock,
}

impl Rig {
    pub fn new(now: DateTime<Utc>) -> Self {
        Self::with(now, LedgerConfig::default())
    }

    pub fn with(now: DateTime<Utc>, config: LedgerConfig) -> Self {
        let clock = ManualClock::new(now);
        let ledger = Ledger::new(config, Arc::new(clock.clone()), PriceBook::builtin());
        Rig { ledger, clock }
    }

    pub fn add(&self, c: Call) {
        self.ledger.ingest_call(&c.0);
    }
}

/// Picos of a whole number of micro-USD.
pub fn micros(n: u128) -> Money {
    Money::from_picos(n * 1_000_000)
}

/// A call-record builder: `Call::new(ts, model).tokens(..)…`.
pub struct Call(pub CallRecord);

fn s(v: &str) -> Option<Arc<str>> {
    Some(Arc::from(v))
}

impl Call {
    pub fn new(ts: DateTime<Utc>, model: &str) -> Self {
        Call(CallRecord {
            timestamp: ts,
            duration_us: 1_000_000,
            time_to_first_token_us: None,
            model: s(model),
            provider: s("anthropic"),
            operation: s("chat"),
            request_id: None,
            streaming: None,
            service_tier: None,
            speed: None,
            inference_geo: None,
            tokens: TokenUsage::default(),
            web_search_requests: 0,
            metered: true,
            outcome: Outcome::Ok,
            dimensions: Dimensions::default(),
            cost: None,
        })
    }

    pub fn io(mut self, input: u64, output: u64) -> Self {
        self.0.tokens.input = input;
        self.0.tokens.output = output;
        self
    }

    pub fn cache(mut self, read: u64, write_5m: u64) -> Self {
        self.0.tokens.cache_read = read;
        self.0.tokens.cache_write_5m = write_5m;
        self
    }

    pub fn searches(mut self, n: u64) -> Self {
        self.0.web_search_requests = n;
        self
    }

    pub fn write_1h(mut self, n: u64) -> Self {
        self.0.tokens.cache_write_1h = n;
        self
    }

    pub fn session(mut self, v: &str) -> Self {
        self.0.dimensions.session = s(v);
        self
    }

    pub fn user(mut self, v: &str) -> Self {
        self.0.dimensions.user = s(v);
        self
    }

    pub fn project(mut self, v: &str) -> Self {
        self.0.dimensions.project = s(v);
        self
    }

    pub fn agent(mut self, v: &str) -> Self {
        self.0.dimensions.agent = s(v);
        self
    }

    pub fn op(mut self, v: &str) -> Self {
        self.0.dimensions.operation = s(v);
        self
    }

    pub fn task(mut self, v: &str) -> Self {
        self.0.dimensions.task = s(v);
        self
    }

    pub fn tenant(mut self, v: &str) -> Self {
        self.0.dimensions.tenant = s(v);
        self
    }

    pub fn failed(mut self) -> Self {
        self.0.outcome = Outcome::Error { error_type: Arc::from("overloaded_error") };
        self
    }

    pub fn unmetered(mut self) -> Self {
        self.0.metered = false;
        self.0.tokens = TokenUsage::default();
        self
    }

    pub fn tier(mut self, v: &str) -> Self {
        self.0.service_tier = s(v);
        self
    }

    pub fn speed(mut self, v: &str) -> Self {
        self.0.speed = s(v);
        self
    }

    pub fn geo(mut self, v: &str) -> Self {
        self.0.inference_geo = s(v);
        self
    }

    pub fn timing(mut self, duration_ms: u64, ttft_ms: Option<u64>) -> Self {
        self.0.duration_us = duration_ms * 1_000;
        self.0.time_to_first_token_us = ttft_ms.map(|t| t * 1_000);
        self
    }

    pub fn priced(mut self, book: &PriceBook) -> Self {
        self.0.cost = book.resolve(self.0.model.as_deref().unwrap_or("")).map(|p| p.price_call(&self.0));
        self
    }
}

pub fn task(ts: DateTime<Utc>, name: &str, tokens: u64, cost: Money, failed: bool) -> TaskRecord {
    TaskRecord {
        timestamp: ts,
        duration_us: 1_000_000,
        task: Arc::from(name),
        dimensions: Dimensions { task: s(name), ..Dimensions::default() },
        calls: 1,
        unpriced_calls: 0,
        failed_calls: 0,
        tokens: TokenUsage { input: tokens, ..TokenUsage::default() },
        cost,
        outcome: if failed { Outcome::Error { error_type: Arc::from("error") } } else { Outcome::Ok },
        with_subtasks: None,
    }
}

pub fn tool(ts: DateTime<Utc>, name: &str, failed: bool) -> ToolRecord {
    ToolRecord {
        timestamp: ts,
        duration_us: 250_000,
        tool: Arc::from(name),
        outcome: if failed { Outcome::Error { error_type: Arc::from("error") } } else { Outcome::Ok },
        dimensions: Dimensions::default(),
    }
}

/// A change in percent, as reports give it (to six decimal places), against the unrounded `b`.
#[track_caller]
pub fn close_pct(a: f64, b: f64) {
    assert_eq!(a, (a * 1e6).round() / 1e6, "{a} is not to six decimal places");
    assert!((a - b).abs() <= 5e-7 + 1e-12 * b.abs(), "{a} != {b}");
}

/// Float equality to 1e-9 relative.
#[track_caller]
pub fn close(a: f64, b: f64) {
    let tol = 1e-9 * a.abs().max(b.abs()).max(1.0);
    assert!((a - b).abs() <= tol, "{a} != {b}");
}
