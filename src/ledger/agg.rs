//! The aggregates a bucket keeps per series: sums only, so merging is addition and reports are computed at
//! query time.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use hdrhistogram::{Counter, Histogram};
use rustc_hash::FxHasher;

use crate::pricing::Money;
use crate::record::TokenUsage;

/// The key standing for every value past a cardinality cap.
pub(crate) const OTHER: &str = "(other)";

/// Plain sums over calls and tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Core {
    pub(crate) calls: u64,
    pub(crate) unmetered_calls: u64,
    pub(crate) failed_calls: u64,
    pub(crate) unpriced_calls: u64,
    /// Tokens of the unpriced calls.
    pub(crate) unpriced_tokens: u64,
    /// Metered calls that read from the prompt cache.
    pub(crate) cache_hit_calls: u64,
    pub(crate) tokens: TokenUsage,
    pub(crate) cost: Money,
    pub(crate) cache_savings: Money,
    /// Cost of calls that ended in an error.
    pub(crate) failed_cost: Money,
    /// Tokens of calls that ended in an error.
    pub(crate) failed_tokens: u64,
    pub(crate) duration_us: u64,
    pub(crate) tasks: u64,
    pub(crate) failed_tasks: u64,
    pub(crate) task_tokens: u64,
    pub(crate) task_cost: Money,
    pub(crate) failed_task_cost: Money,
    /// Tasks with a call on a model without a price: their `task_cost` leaves that call out.
    pub(crate) unpriced_tasks: u64,
    /// The `task_cost` of those tasks (their priced calls).
    pub(crate) unpriced_task_cost: Money,
    /// Prompt tokens that repeated the previous turn of the same session and model (a cacheable prefix).
    pub(crate) reusable_tokens: u64,
    /// Of those, tokens served from the cache.
    pub(crate) reused_tokens: u64,
}

impl Core {
    pub(crate) fn add(&mut self, o: &Core) {
        self.calls += o.calls;
        self.unmetered_calls += o.unmetered_calls;
        self.failed_calls += o.failed_calls;
        self.unpriced_calls += o.unpriced_calls;
        self.unpriced_tokens = self.unpriced_tokens.saturating_add(o.unpriced_tokens);
        self.cache_hit_calls += o.cache_hit_calls;
        self.tokens.add(&o.tokens);
        self.cost += o.cost;
        self.cache_savings += o.cache_savings;
        self.failed_cost += o.failed_cost;
        self.failed_tokens = self.failed_tokens.saturating_add(o.failed_tokens);
        self.duration_us = self.duration_us.saturating_add(o.duration_us);
        self.tasks += o.tasks;
        self.failed_tasks += o.failed_tasks;
        self.task_tokens = self.task_tokens.saturating_add(o.task_tokens);
        self.task_cost += o.task_cost;
        self.failed_task_cost += o.failed_task_cost;
        self.unpriced_tasks += o.unpriced_tasks;
        self.unpriced_task_cost += o.unpriced_task_cost;
        self.reusable_tokens = self.reusable_tokens.saturating_add(o.reusable_tokens);
        self.reused_tokens = self.reused_tokens.saturating_add(o.reused_tokens);
    }

    /// What `self` holds beyond `part` (a sum of some of its calls): field by field, never below zero.
    pub(crate) fn less(&self, part: &Core) -> Core {
        let t = &self.tokens;
        let p = &part.tokens;
        Core {
            calls: self.calls.saturating_sub(part.calls),
            unmetered_calls: self.unmetered_calls.saturating_sub(part.unmetered_calls),
            failed_calls: self.failed_calls.saturating_sub(part.failed_calls),
            unpriced_calls: self.unpriced_calls.saturating_sub(part.unpriced_calls),
            unpriced_tokens: self.unpriced_tokens.saturating_sub(part.unpriced_tokens),
            cache_hit_calls: self.cache_hit_calls.saturating_sub(part.cache_hit_calls),
            tokens: TokenUsage {
                input: t.input.saturating_sub(p.input),
                cache_read: t.cache_read.saturating_sub(p.cache_read),
                cache_write_5m: t.cache_write_5m.saturating_sub(p.cache_write_5m),
                cache_write_1h: t.cache_write_1h.saturating_sub(p.cache_write_1h),
                output: t.output.saturating_sub(p.output),
                reasoning: t.reasoning.saturating_sub(p.reasoning),
            },
            cost: self.cost.saturating_sub(part.cost),
            cache_savings: self.cache_savings.saturating_sub(part.cache_savings),
            failed_cost: self.failed_cost.saturating_sub(part.failed_cost),
            failed_tokens: self.failed_tokens.saturating_sub(part.failed_tokens),
            duration_us: self.duration_us.saturating_sub(part.duration_us),
            tasks: self.tasks.saturating_sub(part.tasks),
            failed_tasks: self.failed_tasks.saturating_sub(part.failed_tasks),
            task_tokens: self.task_tokens.saturating_sub(part.task_tokens),
            task_cost: self.task_cost.saturating_sub(part.task_cost),
            failed_task_cost: self.failed_task_cost.saturating_sub(part.failed_task_cost),
            unpriced_tasks: self.unpriced_tasks.saturating_sub(part.unpriced_tasks),
            unpriced_task_cost: self.unpriced_task_cost.saturating_sub(part.unpriced_task_cost),
            reusable_tokens: self.reusable_tokens.saturating_sub(part.reusable_tokens),
            reused_tokens: self.reused_tokens.saturating_sub(part.reused_tokens),
        }
    }

    /// Metered calls.
    pub(crate) fn metered_calls(&self) -> u64 {
        self.calls - self.unmetered_calls.min(self.calls)
    }

    /// USD per task whose calls all had a price (a task with an unpriced call has a cost that leaves it out:
    /// counted, it would read as a cheaper task); `None` without such tasks.
    pub(crate) fn cost_per_priced_task(&self) -> Option<f64> {
        let tasks = self.tasks.saturating_sub(self.unpriced_tasks);
        (tasks > 0).then(|| self.task_cost.saturating_sub(self.unpriced_task_cost).as_usd() / tasks as f64)
    }
}

/// What calls could have cost done differently: each pair is (what was paid, what the alternative would have
/// cost), priced per call at ingest from the price book.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Opportunities {
    /// Calls whose cacheable prefix was sent uncached (at least the minimum cacheable size).
    pub(crate) cache_calls: u64,
    pub(crate) cache_missed_tokens: u64,
    /// What reading the missed prefix from the cache would have saved.
    pub(crate) cache_gain: Money,
    /// What writing that prefix to the cache would have added.
    pub(crate) cache_write_premium: Money,
    /// Small calls on a premium model.
    pub(crate) small_premium_calls: u64,
    pub(crate) small_premium_tokens: u64,
    pub(crate) small_premium_cost: Money,
    pub(crate) small_premium_at_target: Money,
    /// Non-interactive calls at standard (non-batch) rates.
    pub(crate) batch_calls: u64,
    pub(crate) batch_tokens: u64,
    pub(crate) batch_cost: Money,
    pub(crate) batch_at_batch: Money,
    /// Calls billed at long-context rates with a prompt just over the line.
    pub(crate) long_ctx_calls: u64,
    pub(crate) long_ctx_tokens: u64,
    pub(crate) long_ctx_cost: Money,
    pub(crate) long_ctx_at_standard: Money,
    /// Cache writes that expired unread.
    pub(crate) unread_writes: u64,
    pub(crate) unread_write_tokens: u64,
    /// The write premium paid for them (write rate minus input rate).
    pub(crate) unread_write_premium: Money,
    /// That premium at the rates their calls' other suggestions (right-sizing, trimming, batch) would leave
    /// them at: what dropping the writes saves beyond those suggestions.
    pub(crate) unread_write_saving: Money,
}

impl Opportunities {
    /// Field by field, saturating (only the full form of [`StoredOpp`] adds these; aggregates add the compact one).
    pub(crate) fn add(&mut self, o: &Opportunities) {
        *self = self.zip(o, u64::saturating_add, u128::saturating_add);
    }

    pub(crate) fn is_empty(&self) -> bool {
        *self == Opportunities::default()
    }

    /// What `self` holds beyond `part` (a sum of some of its calls): field by field, never below zero.
    pub(crate) fn less(&self, part: &Opportunities) -> Opportunities {
        self.zip(part, u64::saturating_sub, u128::saturating_sub)
    }

    /// `counts(a, b)` on each pair of counts and `money(a, b)` on each pair of pico-USD sums.
    fn zip(&self, o: &Opportunities, counts: fn(u64, u64) -> u64, money: fn(u128, u128) -> u128) -> Opportunities {
        let ((ac, am), (bc, bm)) = (self.split(), o.split());
        Opportunities::join(std::array::from_fn(|i| counts(ac[i], bc[i])), std::array::from_fn(|i| money(am[i], bm[i])))
    }
}

impl Opportunities {
    /// The ten counts and the ten sums of money, in one order ([`Opportunities::join`] reads it back).
    fn split(&self) -> ([u64; 10], [u128; 10]) {
        (
            [
                self.cache_calls,
                self.cache_missed_tokens,
                self.small_premium_calls,
                self.small_premium_tokens,
                self.batch_calls,
                self.batch_tokens,
                self.long_ctx_calls,
                self.long_ctx_tokens,
                self.unread_writes,
                self.unread_write_tokens,
            ],
            [
                self.cache_gain.picos(),
                self.cache_write_premium.picos(),
                self.small_premium_cost.picos(),
                self.small_premium_at_target.picos(),
                self.batch_cost.picos(),
                self.batch_at_batch.picos(),
                self.long_ctx_cost.picos(),
                self.long_ctx_at_standard.picos(),
                self.unread_write_premium.picos(),
                self.unread_write_saving.picos(),
            ],
        )
    }

    fn join(counts: [u64; 10], money: [u128; 10]) -> Opportunities {
        let m = |i: usize| Money::from_picos(money[i]);
        Opportunities {
            cache_calls: counts[0],
            cache_missed_tokens: counts[1],
            cache_gain: m(0),
            cache_write_premium: m(1),
            small_premium_calls: counts[2],
            small_premium_tokens: counts[3],
            small_premium_cost: m(2),
            small_premium_at_target: m(3),
            batch_calls: counts[4],
            batch_tokens: counts[5],
            batch_cost: m(4),
            batch_at_batch: m(5),
            long_ctx_calls: counts[6],
            long_ctx_tokens: counts[7],
            long_ctx_cost: m(6),
            long_ctx_at_standard: m(7),
            unread_writes: counts[8],
            unread_write_tokens: counts[9],
            unread_write_premium: m(8),
            unread_write_saving: m(9),
        }
    }
}

/// [`Opportunities`] as an aggregate keeps them, on the heap: the sums of money in 64-bit pico-USD while each
/// fits (up to $18.4 million), 168 bytes against [`Opportunities`]' 240 (most entries of a busy ledger have
/// some); past that, the whole figure in full (`wide`), so nothing is ever cut off.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoredOpp {
    counts: [u64; 10],
    money: [u64; 10],
    wide: Option<Box<Opportunities>>,
}

/// Equal when they hold the same figures, whichever form holds them.
impl PartialEq for StoredOpp {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for StoredOpp {}

impl StoredOpp {
    pub(crate) fn get(&self) -> Opportunities {
        match &self.wide {
            Some(w) => **w,
            None => Opportunities::join(self.counts, self.money.map(u128::from)),
        }
    }

    pub(crate) fn add(&mut self, o: &Opportunities) {
        if let Some(w) = &mut self.wide {
            w.add(o);
            return;
        }
        let (counts, money) = o.split();
        let mut sums = [0u64; 10];
        for (i, sum) in sums.iter_mut().enumerate() {
            match u128::from(self.money[i]).checked_add(money[i]).and_then(|v| u64::try_from(v).ok()) {
                Some(v) => *sum = v,
                None => {
                    let mut full = self.get();
                    full.add(o);
                    self.wide = Some(Box::new(full));
                    return;
                }
            }
        }
        self.money = sums;
        for (c, n) in self.counts.iter_mut().zip(counts) {
            *c = c.saturating_add(n);
        }
    }
}

/// The sums of one series in one bucket. Opportunities are boxed and allocated only when a call had one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Agg {
    pub(crate) core: Core,
    pub(crate) opp: Option<Box<StoredOpp>>,
}

impl Agg {
    pub(crate) fn add(&mut self, core: &Core, opp: Option<&Opportunities>) {
        self.core.add(core);
        if let Some(o) = opp {
            self.opp.get_or_insert_with(Default::default).add(o);
        }
    }

    pub(crate) fn merge(&mut self, other: &Agg) {
        self.add(&other.core, other.opp().as_ref());
    }

    /// The opportunities, if any call had one.
    pub(crate) fn opp(&self) -> Option<Opportunities> {
        self.opp.as_deref().map(StoredOpp::get)
    }

    /// The opportunities, zero when none were recorded.
    pub(crate) fn opportunities(&self) -> Opportunities {
        self.opp().unwrap_or_default()
    }

    /// What `self` holds beyond `part` (a sum of some of its calls), never below zero.
    pub(crate) fn less(&self, part: &Agg) -> Agg {
        let opp = self.opportunities().less(&part.opportunities());
        let stored = (!opp.is_empty()).then(|| {
            let mut s = Box::<StoredOpp>::default();
            s.add(&opp);
            s
        });
        Agg { core: self.core.less(&part.core), opp: stored }
    }
}

/// Tool executions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ToolAgg {
    pub(crate) invocations: u64,
    pub(crate) errors: u64,
    pub(crate) duration_us: u64,
}

impl ToolAgg {
    pub(crate) fn add(&mut self, o: &ToolAgg) {
        self.invocations += o.invocations;
        self.errors += o.errors;
        self.duration_us = self.duration_us.saturating_add(o.duration_us);
    }
}

/// The low-cardinality dimensions that together key a compound series, so any combination of them can be
/// filtered and grouped exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct SeriesKey {
    pub(crate) model: Option<Arc<str>>,
    pub(crate) provider: Option<Arc<str>>,
    pub(crate) project: Option<Arc<str>>,
    pub(crate) agent: Option<Arc<str>>,
    pub(crate) operation: Option<Arc<str>>,
    pub(crate) task: Option<Arc<str>>,
    pub(crate) tenant: Option<Arc<str>>,
}

/// Borrowed form of a [`SeriesKey`], for lookups that must not clone.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SeriesRef<'a> {
    pub(crate) model: Option<&'a str>,
    pub(crate) provider: Option<&'a str>,
    pub(crate) project: Option<&'a str>,
    pub(crate) agent: Option<&'a str>,
    pub(crate) operation: Option<&'a str>,
    pub(crate) task: Option<&'a str>,
    pub(crate) tenant: Option<&'a str>,
}

/// String equality that skips the byte comparison when both sides are the same string: a call's labels are
/// interned, so a series key and the call that finds it share one allocation (callgrind: -83 a call with the
/// ledger alone, -125 with the full pipeline).
pub(crate) fn same_str(a: &str, b: &str) -> bool {
    a.len() == b.len() && (std::ptr::eq(a.as_ptr(), b.as_ptr()) || a == b)
}

pub(crate) fn same_opt(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same_str(a, b),
        (None, None) => true,
        _ => false,
    }
}

impl PartialEq for SeriesRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.fields().into_iter().zip(other.fields()).all(|(a, b)| same_opt(a, b))
    }
}

impl Eq for SeriesRef<'_> {}

fn hash_opt(h: &mut FxHasher, v: Option<&str>) {
    match v {
        None => h.write_u8(0),
        Some(s) => {
            h.write_u8(1);
            s.hash(h);
        }
    }
}

impl<'a> SeriesRef<'a> {
    pub(crate) fn hash64(&self) -> u64 {
        let mut h = FxHasher::default();
        for v in self.fields() {
            hash_opt(&mut h, v);
        }
        h.finish()
    }

    fn fields(&self) -> [Option<&str>; 7] {
        [self.model, self.provider, self.project, self.agent, self.operation, self.task, self.tenant]
    }

    /// The key past the cap: model and provider kept (so per-model figures stay exact), the rest folded.
    pub(crate) fn partial_overflow(self) -> SeriesRef<'a> {
        SeriesRef {
            model: self.model,
            provider: self.provider,
            project: Some(OTHER),
            agent: Some(OTHER),
            operation: Some(OTHER),
            task: Some(OTHER),
            tenant: Some(OTHER),
        }
    }
}

impl SeriesKey {
    pub(crate) fn as_ref(&self) -> SeriesRef<'_> {
        SeriesRef {
            model: self.model.as_deref(),
            provider: self.provider.as_deref(),
            project: self.project.as_deref(),
            agent: self.agent.as_deref(),
            operation: self.operation.as_deref(),
            task: self.task.as_deref(),
            tenant: self.tenant.as_deref(),
        }
    }
}

/// Hash of a (project, session) pair.
pub(crate) fn pair_hash(project: Option<&str>, session: &str) -> u64 {
    let mut h = FxHasher::default();
    hash_opt(&mut h, project);
    session.hash(&mut h);
    h.finish()
}

/// Clamp for recorded token counts (10 million).
pub(crate) const MAX_TOKENS_RECORDED: u64 = 10_000_000;
/// Clamp for recorded durations in milliseconds (about 2.8 hours).
pub(crate) const MAX_MILLIS_RECORDED: u64 = 10_000_000;
/// Clamp for recorded output tokens per second.
pub(crate) const MAX_TPS_RECORDED: u64 = 1_000_000;

/// A minute, hour or day bucket's distribution: 32-bit counts per value bin, half the memory of 64-bit ones. A
/// bin saturates (hdrhistogram adds saturating) at 4.29 billion calls of one value, within 1%, in one bucket: a
/// day's at most, 50,000 such calls a second. Month and archive buckets, and a window's merge, count in 64 bits
/// ([`BucketHist`], [`Histograms::widen`]).
pub(crate) type Dist = Histogram<u32>;

/// Distributions per bucket (32-bit counts) or merged over a window or a month (`Histograms<u64>`): 2 significant
/// digits (1% value resolution), auto-resizing up to the clamps above, so one bucket's 32-bit histogram stays
/// under about 9 KiB.
#[derive(Debug, Clone)]
pub(crate) struct Histograms<T: Counter = u32> {
    pub(crate) input_tokens: Histogram<T>,
    pub(crate) output_tokens: Histogram<T>,
    pub(crate) duration_ms: Histogram<T>,
    pub(crate) ttft_ms: Histogram<T>,
    pub(crate) output_tps: Histogram<T>,
}

impl<T: Counter> Histograms<T> {
    /// Empty histograms (`None` only if hdrhistogram rejected its own valid configuration).
    pub(crate) fn new() -> Option<Self> {
        Some(Histograms {
            input_tokens: Histogram::new(2).ok()?,
            output_tokens: Histogram::new(2).ok()?,
            duration_ms: Histogram::new(2).ok()?,
            ttft_ms: Histogram::new(2).ok()?,
            output_tps: Histogram::new(2).ok()?,
        })
    }

    /// Adds another of the same width.
    pub(crate) fn merge(&mut self, o: &Histograms<T>) {
        let _ = self.input_tokens.add(&o.input_tokens);
        let _ = self.output_tokens.add(&o.output_tokens);
        let _ = self.duration_ms.add(&o.duration_ms);
        let _ = self.ttft_ms.add(&o.ttft_ms);
        let _ = self.output_tps.add(&o.output_tps);
    }
}

impl Histograms<u64> {
    /// Adds 32-bit distributions, bin by bin into 64-bit counts.
    pub(crate) fn widen(&mut self, o: &Histograms) {
        fn add(into: &mut Histogram<u64>, from: &Dist) {
            for v in from.iter_recorded() {
                let _ = into.record_n(v.value_iterated_to(), u64::from(v.count_at_value()));
            }
        }
        add(&mut self.input_tokens, &o.input_tokens);
        add(&mut self.output_tokens, &o.output_tokens);
        add(&mut self.duration_ms, &o.duration_ms);
        add(&mut self.ttft_ms, &o.ttft_ms);
        add(&mut self.output_tps, &o.output_tps);
    }
}

/// A bucket's distributions: 32-bit counts in minute, hour and day buckets, 64-bit in month and archive
/// buckets (each holds what dozens of day buckets held).
#[derive(Debug, Clone)]
pub(crate) enum BucketHist {
    Narrow(Box<Histograms>),
    Wide(Box<Histograms<u64>>),
}

impl BucketHist {
    /// Empty distributions of the width a bucket needs.
    pub(crate) fn new(wide: bool) -> Option<Self> {
        Some(match wide {
            true => BucketHist::Wide(Box::new(Histograms::new()?)),
            false => BucketHist::Narrow(Box::new(Histograms::new()?)),
        })
    }

    pub(crate) fn record(&mut self, s: &Sample) {
        match self {
            BucketHist::Narrow(h) => h.record(s),
            BucketHist::Wide(h) => h.record(s),
        }
    }

    /// These distributions at least as wide as `wide` asks.
    pub(crate) fn at_width(self, wide: bool) -> Self {
        match self {
            BucketHist::Narrow(h) if wide => match Histograms::<u64>::new() {
                Some(mut w) => {
                    w.widen(&h);
                    BucketHist::Wide(Box::new(w))
                }
                None => BucketHist::Narrow(h),
            },
            other => other,
        }
    }

    /// These distributions with another bucket's (a finer tier's, rolled up) added.
    pub(crate) fn absorb(self, o: &BucketHist) -> BucketHist {
        let mut me = match o {
            BucketHist::Wide(_) => self.at_width(true),
            BucketHist::Narrow(_) => self,
        };
        match (&mut me, o) {
            (BucketHist::Narrow(m), BucketHist::Narrow(o)) => m.merge(o),
            (BucketHist::Wide(m), BucketHist::Narrow(o)) => m.widen(o),
            (BucketHist::Wide(m), BucketHist::Wide(o)) => m.merge(o),
            (BucketHist::Narrow(_), BucketHist::Wide(_)) => {} // hdrhistogram refused a new histogram: kept as is
        }
        me
    }

    /// Adds these distributions to a window's.
    pub(crate) fn widen_into(&self, out: &mut Histograms<u64>) {
        match self {
            BucketHist::Narrow(h) => out.widen(h),
            BucketHist::Wide(h) => out.merge(h),
        }
    }
}

/// One call's sample for the distributions.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sample {
    /// Prompt tokens (uncached input, cache reads and writes), when metered.
    pub(crate) input_tokens: Option<u64>,
    pub(crate) output_tokens: Option<u64>,
    pub(crate) duration_ms: u64,
    pub(crate) ttft_ms: Option<u64>,
    pub(crate) output_tps: Option<u64>,
}

impl<T: Counter> Histograms<T> {
    pub(crate) fn record(&mut self, s: &Sample) {
        if let Some(v) = s.input_tokens {
            let _ = self.input_tokens.record(v.min(MAX_TOKENS_RECORDED));
        }
        if let Some(v) = s.output_tokens {
            let _ = self.output_tokens.record(v.min(MAX_TOKENS_RECORDED));
        }
        let _ = self.duration_ms.record(s.duration_ms.min(MAX_MILLIS_RECORDED));
        if let Some(v) = s.ttft_ms {
            let _ = self.ttft_ms.record(v.min(MAX_MILLIS_RECORDED));
        }
        if let Some(v) = s.output_tps {
            let _ = self.output_tps.record(v.min(MAX_TPS_RECORDED));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opp(calls: u64, picos: u128) -> Opportunities {
        let (counts, _) = Opportunities::default().split();
        Opportunities::join(counts.map(|_| calls), [picos; 10])
    }

    #[test]
    fn every_opportunity_field_keeps_its_place_through_split_and_join() {
        let m = Money::from_picos;
        let o = Opportunities {
            cache_calls: 1,
            cache_missed_tokens: 2,
            cache_gain: m(3),
            cache_write_premium: m(4),
            small_premium_calls: 5,
            small_premium_tokens: 6,
            small_premium_cost: m(7),
            small_premium_at_target: m(8),
            batch_calls: 9,
            batch_tokens: 10,
            batch_cost: m(11),
            batch_at_batch: m(12),
            long_ctx_calls: 13,
            long_ctx_tokens: 14,
            long_ctx_cost: m(15),
            long_ctx_at_standard: m(16),
            unread_writes: 17,
            unread_write_tokens: 18,
            unread_write_premium: m(19),
            unread_write_saving: m(20),
        };
        let (counts, money) = o.split();
        assert_eq!(Opportunities::join(counts, money), o);
        let mut stored = StoredOpp::default();
        stored.add(&o);
        assert_eq!(stored.get(), o);
        let mut twice = o;
        twice.add(&o);
        assert_eq!((twice.batch_calls, twice.unread_write_saving), (18, m(40)));
        assert_eq!(twice.less(&o), o);
    }

    #[test]
    fn stored_opportunities_read_back_what_was_added_and_widen_past_64_bits() {
        assert!(std::mem::size_of::<StoredOpp>() < std::mem::size_of::<Opportunities>());
        let mut stored = StoredOpp::default();
        let mut plain = Opportunities::default();
        for o in [opp(1, 7), opp(2, 1_000_000_000_000), opp(3, u128::from(u64::MAX) - 1_000_000_000_007)] {
            stored.add(&o);
            plain.add(&o);
        }
        assert_eq!(stored.get(), plain);
        assert!(stored.wide.is_none(), "every sum still fits in 64 bits: {stored:?}");
        assert_eq!(stored.get().unread_write_saving.picos(), u128::from(u64::MAX));

        // One more pico-dollar on each sum: past 64 bits, kept in full, and exact from then on.
        for o in [opp(1, 1), opp(1, u128::from(u64::MAX) * 3)] {
            stored.add(&o);
            plain.add(&o);
        }
        assert!(stored.wide.is_some());
        assert_eq!(stored.get(), plain);
        let mut wide = StoredOpp { wide: Some(Box::new(opp(1, 7))), ..StoredOpp::default() };
        let mut compact = StoredOpp::default();
        compact.add(&opp(1, 7));
        assert_eq!(wide, compact, "the same figures in either form");
        wide.add(&opp(1, 1));
        assert_ne!(wide, compact);
        assert_eq!(stored.get().cache_gain.picos(), u128::from(u64::MAX) * 4 + 1);
        assert_eq!(stored.get().batch_calls, 8);
    }

    /// A day's distributions with a full bin: u32::MAX + 1 calls of 1.5 s, one of 9 s.
    fn full_day() -> Histograms {
        let mut day = Histograms::new().expect("histograms");
        day.duration_ms.record_n(1_500, u32::MAX).expect("in range");
        day.record(&Sample { duration_ms: 1_500, ..Sample::default() });
        day.record(&Sample { duration_ms: 9_000, ..Sample::default() });
        day
    }

    #[test]
    fn a_day_bucket_bin_saturates_and_months_and_windows_count_past_it() {
        let day = full_day();
        assert_eq!(day.duration_ms.count_at(1_500), u32::MAX, "a day bucket's bin stays full, no panic");

        // A month bucket rolls two such days up in 64 bits, and keeps every count.
        let month = BucketHist::new(true).expect("histograms");
        let month = month.absorb(&BucketHist::Narrow(Box::new(day.clone())));
        let month = month.absorb(&BucketHist::Narrow(Box::new(day.clone())));
        let BucketHist::Wide(m) = &month else { panic!("a month bucket is 64-bit") };
        assert_eq!(m.duration_ms.count_at(1_500), 2 * u64::from(u32::MAX));

        // A window over that month and one more day: 64-bit counts, and percentiles that read them (a 32-bit
        // merge's median read 0: its 64-bit total outran the saturated bin).
        let mut window = Histograms::<u64>::new().expect("histograms");
        month.widen_into(&mut window);
        BucketHist::Narrow(Box::new(day)).widen_into(&mut window);
        let d = &window.duration_ms;
        assert_eq!(d.count_at(1_500), 3 * u64::from(u32::MAX));
        assert_eq!(d.count_at(9_000), 3);
        assert_eq!(d.len(), 3 * u64::from(u32::MAX) + 3);
        assert_eq!(d.value_at_quantile(0.5), d.highest_equivalent(1_500));
        assert_eq!(d.max(), d.highest_equivalent(9_000));
    }

    #[test]
    fn a_narrow_bucket_absorbing_a_wide_one_becomes_wide() {
        let wide = BucketHist::new(true).expect("histograms").absorb(&BucketHist::Narrow(Box::new(full_day())));
        let narrow = BucketHist::Narrow(Box::new(full_day())).absorb(&wide);
        let BucketHist::Wide(h) = &narrow else { panic!("widened") };
        assert_eq!(h.duration_ms.count_at(1_500), 2 * u64::from(u32::MAX));
        let kept = BucketHist::Narrow(Box::new(full_day())).at_width(false);
        assert!(matches!(kept, BucketHist::Narrow(_)), "no widening asked");
    }
}
