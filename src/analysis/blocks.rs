//! Usage blocks: calls grouped into windows of a fixed length (5 hours by default), each opening at the whole UTC
//! hour of the first call made after the previous one closed: the shape of Claude's subscription usage windows,
//! as Claude Code users know them from ccusage's `blocks` report. Made from call records (a journal's, a
//! transcript load's), not from the ledger, whose older buckets are too coarse to place a call in a window.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};

use crate::ledger::QueryError;
use crate::pricing::Money;
use crate::record::{CallRecord, TokenUsage};

/// Minutes after an open block's first call before its rates are given: earlier, a call or two would be
/// projected across the whole block.
pub const MIN_RATE_MINUTES: i64 = 10;

/// A block's length unless asked otherwise, hours.
pub const DEFAULT_BLOCK_HOURS: u32 = 5;
/// The longest block, hours.
pub const MAX_BLOCK_HOURS: u32 = 24;

/// One block of calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageBlock {
    /// Its opening: the whole UTC hour of its first call.
    pub start: DateTime<Utc>,
    /// Its close: `start` plus the block length. Calls from then on open the next block.
    pub end: DateTime<Utc>,
    /// Its first call's time.
    pub first_call: DateTime<Utc>,
    /// Its last call's time.
    pub last_call: DateTime<Utc>,
    /// True while `now` is before `end`: the block is still open.
    pub active: bool,
    /// Calls, unmetered ones (without usage) included.
    pub calls: u64,
    /// Calls with usage on a model without a price: in its tokens, not in its cost.
    pub unpriced_calls: u64,
    /// Tokens by kind.
    pub tokens: TokenUsage,
    /// All of them.
    pub total_tokens: u64,
    /// Cost of its priced calls, USD.
    pub cost_usd: f64,
    /// The same, exact, in pico-USD.
    pub cost_picos: Money,
    /// The models its calls were priced as (the ids as reported for unpriced ones), sorted.
    pub models: Vec<String>,
}

/// The rates of the block open at `now`, and where they lead by its close.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockProjection {
    /// Minutes from the block's first call to now (at least [`MIN_RATE_MINUTES`]): idle time counts, so a pause
    /// lowers the rates.
    pub minutes_since_first_call: f64,
    /// Minutes from now to the block's close.
    pub minutes_left: f64,
    /// Tokens a minute: those of the calls after the first (the one that opened the block, at the start of the
    /// time measured) over `minutes_since_first_call`. A lone call projects nothing more.
    pub tokens_per_minute: f64,
    /// USD an hour, the same way, of the priced calls among them.
    pub usd_per_hour: f64,
    /// Calls after the first on a model without a price: in the token rate and projection, not in the dollar ones.
    pub unpriced_calls: u64,
    /// The block's tokens at its close if that rate holds.
    pub projected_tokens: u64,
    /// Its cost at its close if that rate holds, USD.
    pub projected_cost_usd: f64,
}

/// The calls' blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlocksReport {
    /// The time the report was made for: calls after it are left out.
    pub generated_at: DateTime<Utc>,
    /// The block length, hours.
    pub block_hours: u32,
    /// Every block, oldest first.
    pub blocks: Vec<UsageBlock>,
    /// The rates of the block still open, once [`MIN_RATE_MINUTES`] have passed since its first call.
    pub active: Option<BlockProjection>,
    /// Calls after `generated_at`, left out.
    pub calls_after_now: u64,
}

impl BlocksReport {
    /// The most tokens a closed block used: what a `max` token limit reads as ("as much as my biggest window").
    pub fn largest_closed_block_tokens(&self) -> Option<u64> {
        self.blocks.iter().filter(|b| !b.active).map(|b| b.total_tokens).max()
    }

    /// Keeps the blocks with a call at or after `from` (a block that opened earlier counts), and the open one
    /// whatever its calls; returns how many were left out.
    pub fn retain_since(&mut self, from: DateTime<Utc>) -> usize {
        let before = self.blocks.len();
        self.blocks.retain(|b| b.active || b.last_call >= from);
        before - self.blocks.len()
    }
}

/// Groups `records` into blocks of `block_hours` (1 to [`MAX_BLOCK_HOURS`]) as of `now`. A call belongs to the
/// block open at its time; the first call after a block closes opens the next at its own whole UTC hour (so idle
/// hours make no empty blocks). Records may come in any order.
pub fn usage_blocks(records: &[CallRecord], now: DateTime<Utc>, block_hours: u32) -> Result<BlocksReport, QueryError> {
    if !(1..=MAX_BLOCK_HOURS).contains(&block_hours) {
        return Err(QueryError::InvalidArgument {
            name: "block_hours",
            reason: format!("{block_hours} is out of range: blocks are 1 to {MAX_BLOCK_HOURS} hours"),
        });
    }
    let length = Duration::hours(i64::from(block_hours));
    let mut calls: Vec<&CallRecord> = records.iter().filter(|r| r.timestamp <= now).collect();
    let calls_after_now = (records.len() - calls.len()) as u64;
    calls.sort_by_key(|r| r.timestamp);

    let mut blocks: Vec<UsageBlock> = Vec::new();
    let mut models: BTreeSet<&str> = BTreeSet::new();
    // The last block's first call's tokens, cost and whether it was unpriced, left out of its rates.
    let mut opening: (u64, Money, u64) = (0, Money::default(), 0);
    for call in calls {
        let t = call.timestamp;
        if blocks.last().is_none_or(|b| t >= b.end) {
            if let Some(b) = blocks.last_mut() {
                b.models = std::mem::take(&mut models).into_iter().map(str::to_owned).collect();
            }
            // The whole hour: truncation to an hour cannot fail for a time chrono can hold.
            let start = t.duration_trunc(Duration::hours(1)).unwrap_or(t);
            opening = if call.metered {
                (
                    call.tokens.total(),
                    call.cost.as_ref().map(|c| c.total).unwrap_or_default(),
                    u64::from(call.cost.is_none()),
                )
            } else {
                (0, Money::default(), 0)
            };
            blocks.push(UsageBlock {
                start,
                end: start + length,
                first_call: t,
                last_call: t,
                active: false,
                calls: 0,
                unpriced_calls: 0,
                tokens: TokenUsage::default(),
                total_tokens: 0,
                cost_usd: 0.0,
                cost_picos: Money::default(),
                models: Vec::new(),
            });
        }
        let Some(b) = blocks.last_mut() else { continue };
        b.last_call = t;
        b.calls += 1;
        if call.metered {
            b.tokens.add(&call.tokens);
            match &call.cost {
                Some(cost) => b.cost_picos += cost.total,
                None => b.unpriced_calls += 1,
            }
        }
        if let Some(model) = call.cost.as_ref().map(|c| &*c.priced_as).or(call.model.as_deref()) {
            models.insert(model);
        }
    }
    if let Some(b) = blocks.last_mut() {
        b.models = models.into_iter().map(str::to_owned).collect();
        b.active = now < b.end;
    }
    for b in &mut blocks {
        b.total_tokens = b.tokens.total();
        b.cost_usd = b.cost_picos.as_usd();
    }
    let active =
        blocks.last().filter(|b| b.active && now - b.first_call >= Duration::minutes(MIN_RATE_MINUTES)).map(|b| {
            let minutes = |d: Duration| d.num_milliseconds() as f64 / 60_000.0;
            let since = minutes(now - b.first_call);
            let left = minutes(b.end - now).max(0.0);
            let tokens_per_minute = b.total_tokens.saturating_sub(opening.0) as f64 / since;
            let usd_per_minute = b.cost_picos.saturating_sub(opening.1).as_usd() / since;
            BlockProjection {
                minutes_since_first_call: since,
                minutes_left: left,
                tokens_per_minute,
                usd_per_hour: usd_per_minute * 60.0,
                unpriced_calls: b.unpriced_calls.saturating_sub(opening.2),
                projected_tokens: (b.total_tokens as f64 + tokens_per_minute * left).round() as u64,
                projected_cost_usd: b.cost_usd + usd_per_minute * left,
            }
        });
    Ok(BlocksReport { generated_at: now, block_hours, blocks, active, calls_after_now })
}
