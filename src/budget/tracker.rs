//! The meter's budget state: one account per budget, fed by every finished call.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::alert::{AlertCallback, AlertKind, AlertRouter, BudgetAlert};
use super::period::{RollingBuckets, calendar_bounds, to_nanos, to_utc};
use super::{
    Budget, BudgetAction, BudgetAmount, BudgetExceeded, BudgetPeriod, BudgetScope, BudgetState, BudgetUnit,
    RequestScope,
};
use crate::clock::Clock;
use crate::pricing::normalize_model_id;
use crate::record::CallRecord;

/// What the builder collects for budgets.
#[derive(Default)]
pub(crate) struct BudgetSetup {
    pub(crate) budgets: Vec<Budget>,
    pub(super) callbacks: Vec<AlertCallback>,
    #[cfg(feature = "webhook")]
    pub(crate) webhook: Option<super::WebhookConfig>,
}

impl std::fmt::Debug for BudgetSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetSetup")
            .field("budgets", &self.budgets)
            .field("callbacks", &self.callbacks.len())
            .finish_non_exhaustive()
    }
}

impl BudgetSetup {
    /// Adds a budget, replacing an earlier one of the same name.
    pub(super) fn add(&mut self, budget: Budget) {
        match self.budgets.iter_mut().find(|b| b.name == budget.name) {
            Some(slot) => *slot = budget,
            None => self.budgets.push(budget),
        }
    }

    /// The runtime state; starts the webhook thread when one is configured.
    pub(crate) fn into_tracker(self) -> BudgetTracker {
        #[cfg(feature = "webhook")]
        let webhook = self.webhook.map(super::webhook::WebhookQueue::start);
        BudgetTracker {
            owed: std::sync::atomic::AtomicBool::new(false),
            restated_day: std::sync::atomic::AtomicI64::new(i64::MIN),
            slots: self.budgets.into_iter().map(BudgetSlot::new).collect(),
            alerts: AlertRouter::new(
                self.callbacks.into_boxed_slice(),
                #[cfg(feature = "webhook")]
                webhook,
            ),
        }
    }
}

/// Accounts of a budget of each value that [`BudgetTracker::status`] reads under one hold of the budget's lock: a
/// call of that budget waits behind this many reads at most (at 100,000 values a hold lasted up to ~0.45 ms, the
/// walk past the chunks read before included).
const STATUS_CHUNK: usize = 256;

/// Changes of a budget of each value's accounts during one [`BudgetTracker::status`] after which it reads them all
/// under one hold of the lock rather than start over again.
const STATUS_RESTARTS: u32 = 3;

/// Every budget's account, and where alerts go.
#[derive(Debug)]
pub(crate) struct BudgetTracker {
    /// Set after replay: alerts may be owed ([`collect_owed`](Self::collect_owed)), delivered with the first
    /// call, budget check or status read after the build, when the application's subscriber is listening.
    owed: std::sync::atomic::AtomicBool,
    /// The UTC day (Unix nanoseconds / a day) of the live call that last restated the delivered alerts
    /// ([`restate`](Self::restate)); `i64::MIN` before the first call after the build.
    restated_day: std::sync::atomic::AtomicI64,
    slots: Box<[BudgetSlot]>,
    pub(crate) alerts: AlertRouter,
}

#[derive(Debug)]
struct BudgetSlot {
    budget: Budget,
    unit: BudgetUnit,
    /// The limit in accounting units (pico-USD or tokens).
    limit: u128,
    /// Each threshold in accounting units, ascending like `budget.thresholds`.
    threshold_units: Box<[u128]>,
    /// A rolling budget's threshold re-arms when spend falls under this, [`REARM_MARGIN_DIVISOR`] of the limit
    /// (at most half the threshold) below it.
    rearm_units: Box<[u128]>,
    accounts: Accounts,
    /// A USD budget's first call on a model without a price was reported (once per process).
    unpriced_warned: std::sync::atomic::AtomicBool,
}

/// Where a budget keeps its spend: one account, or one for each value of a dimension ([`BudgetScope::Each`]).
#[derive(Debug)]
enum Accounts {
    One(Mutex<Account>),
    Each(Members),
}

/// The account a budget of each value of a dimension counts the calls of values in once its accounts are full
/// ([`Budget::with_max_members`](super::Budget::with_max_members)): their spend together, under one limit, as the
/// ledger's `(other)` row holds what its caps leave out.
pub(crate) const OTHER: &str = "(other)";

/// A budget of each value of a dimension: an account per value, at most `max` at once, and past that [`OTHER`].
#[derive(Debug)]
struct Members {
    /// The dimension, or `model`.
    name: Arc<str>,
    map: Mutex<MemberMap>,
    max: usize,
    /// Calls counted in [`OTHER`] (live and replayed).
    overflow: std::sync::atomic::AtomicU64,
    /// The UTC day (Unix nanoseconds / a day) a live call last went to [`OTHER`] and a WARN said so; `i64::MIN` before.
    warned_day: std::sync::atomic::AtomicI64,
}

/// The accounts of a budget of each value, by value.
#[derive(Debug, Default)]
struct MemberMap {
    accounts: std::collections::HashMap<Arc<str>, Account>,
    /// No account held when the map was last found full becomes idle before this instant: a full map is scanned
    /// for idle accounts again only from then (scanning on every new value, a call paid 0.7 ms at 100,000 daily
    /// accounts, and 28 ms at 100,000 rolling ones, under the budget's lock).
    next_sweep: i64,
    /// Counts the accounts made and the sweeps: a change in the map's layout between two holds of its lock, which
    /// [`BudgetTracker::status`] reads it across.
    layout: u64,
}

impl MemberMap {
    /// Accounts of values, [`OTHER`] left out.
    fn held(&self) -> usize {
        self.accounts.len() - usize::from(self.accounts.contains_key(OTHER))
    }
}

impl Members {
    /// Whether `value` has an account of its own or could get one now; otherwise its calls go to [`OTHER`].
    fn has_room(&self, map: &mut MemberMap, value: &str, at: i64) -> bool {
        if map.accounts.contains_key(value) {
            return true;
        }
        if map.held() >= self.max && at >= map.next_sweep {
            map.accounts.retain(|key, acct| &**key == OTHER || !acct.idle(at));
            map.layout = map.layout.wrapping_add(1);
            map.next_sweep = map
                .accounts
                .iter()
                .filter(|(key, _)| &***key != OTHER)
                .map(|(_, acct)| acct.idle_from())
                .min()
                .unwrap_or(i64::MIN);
        }
        map.held() < self.max
    }

    /// The account of `value`, made when it has none; [`OTHER`]'s when the accounts are full and none of them is
    /// idle at `at` (the second of the pair says so).
    fn get_or_make<'m>(
        &self,
        map: &'m mut MemberMap,
        value: &str,
        at: i64,
        slot: &BudgetSlot,
    ) -> Option<(&'m mut Account, bool)> {
        let key = if self.has_room(map, value, at) { value } else { OTHER };
        if !map.accounts.contains_key(key) {
            let key: Arc<str> = Arc::from(key);
            map.accounts.insert(Arc::clone(&key), slot.fresh_account(Some(key)));
            map.layout = map.layout.wrapping_add(1);
        }
        map.accounts.get_mut(key).map(|acct| (acct, key == OTHER))
    }

    /// The account a request of `value` reads: its own, [`OTHER`]'s when its calls would go there, or none yet.
    fn lookup<'m>(&self, map: &'m mut MemberMap, value: &str, at: i64) -> Option<&'m mut Account> {
        let key = if self.has_room(map, value, at) { value } else { OTHER };
        map.accounts.get_mut(key)
    }
}

/// One budget's current period (a budget of each value of a dimension: one value's).
#[derive(Debug)]
struct Account {
    /// The value of a budget of each value of a dimension this account is for; `None` for other budgets.
    member: Option<Arc<str>>,
    /// `[start, end)` of the current calendar period in Unix nanoseconds; `None` before the first call.
    period: Option<(i64, i64)>,
    /// What the period holds (a rolling budget: `crossed`, `alerted` and `projected_alerted` only; its spend is
    /// in `rolling`).
    n: Counts,
    rolling: Option<Box<RollingBuckets>>,
    /// A calendar budget's period before the current one, as it stood when a call moved the account past it:
    /// a clock that ran ahead (a resumed VM, an NTP step) opens a future period, and when it comes back the
    /// period it left is restored rather than counted again from nothing.
    previous: Option<Box<((i64, i64), Counts)>>,
    /// Rolling budgets: the last instant spend was seen under each threshold's re-arm level (re-arming it; see
    /// [`REARM_MARGIN_DIVISOR`]), `i64::MIN` if never. An alert delivered before a restart still holds if nothing
    /// re-armed its threshold after it.
    rearmed_at: Vec<i64>,
    /// A value's account: the UTC day its delivered alerts were last written to the journal again
    /// ([`BudgetSlot::restate`]), with its first live call of each day; `i64::MIN` before.
    restated_day: i64,
}

/// What an account's period holds.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    spent: u128,
    calls: u64,
    unpriced: u64,
    /// Bit `i` set: spend reached threshold `i` this period.
    crossed: u64,
    /// Bit `i` set: threshold `i`'s alert fired this period (here, or before a restart, as the journal says).
    /// Replayed spend sets `crossed` only: a threshold reached but never alerted (the limit was lowered, the
    /// budget is new) fires with the first call, check or status read after the build
    /// ([`BudgetTracker::take_owed`]).
    alerted: u64,
    projected_alerted: bool,
}

impl Account {
    /// Holds no spend that counts at `at`: a calendar period that has ended (or none opened), a rolling window
    /// that has emptied. A value whose account is dropped for it starts over as new.
    fn idle(&self, at: i64) -> bool {
        at >= self.idle_from()
    }

    /// The first instant the account is [`idle`](Self::idle) from, spend coming no more.
    fn idle_from(&self) -> i64 {
        match &self.rolling {
            Some(buckets) => buckets.empty_from(),
            None => self.period.map_or(i64::MIN, |(_, end)| end),
        }
    }
}

impl Counts {
    /// One call's spend.
    fn add(&mut self, units: u128, unpriced: bool) {
        self.spent = self.spent.saturating_add(units);
        self.calls += 1;
        self.unpriced += u64::from(unpriced);
    }
}

/// A point-in-time view of an account, taken under its lock.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    at: i64,
    start: i64,
    resets_at: i64,
    spent: u128,
    calls: u64,
    unpriced: u64,
    crossed: u64,
    projected: Option<u128>,
    time_to_limit: Option<u128>,
}

/// An alert decided under an account's lock, delivered after it.
struct Pending {
    slot: usize,
    kind: AlertKind,
    snapshot: Snapshot,
    member: Option<Arc<str>>,
}

/// One call for [`BudgetSlot::account`]: the slot's index, when it ended, what it adds, and the live meter's clock
/// (`None` in replay).
#[derive(Clone, Copy)]
struct Accounted<'c> {
    slot: usize,
    at: i64,
    units: u128,
    unpriced: bool,
    clock: Option<&'c dyn Clock>,
}

/// Projections need this share of a calendar period to have passed (1/100).
const MIN_ELAPSED_DIVISOR: i64 = 100;

/// The projected-overrun alert (one per period) needs more evidence than the projection shown: this share of the
/// period passed (1/10), or [`ALERT_SPENT_DIVISOR`]'s share of the limit spent. From a few hours of a month, a
/// morning's burst projects past the limit, and the period's one warning would be spent on it.
const ALERT_ELAPSED_DIVISOR: i64 = 10;

/// A rolling budget's threshold re-arms once spend falls a twentieth of the limit under it (5%; at most half the
/// threshold): re-armed the moment spend dipped under it, steady spend near a threshold made the window's oldest
/// minute leave and the next call cross again, an alert (and a webhook POST) a minute.
const REARM_MARGIN_DIVISOR: u128 = 20;

/// See [`ALERT_ELAPSED_DIVISOR`]: a quarter of the limit spent is evidence enough once there is a projection
/// ([`MIN_ELAPSED_DIVISOR`]'s share of the period passed).
const ALERT_SPENT_DIVISOR: u128 = 4;

impl BudgetSlot {
    fn new(budget: Budget) -> Self {
        let limit = budget.limit.units();
        let threshold_units: Box<[u128]> = budget.thresholds.iter().map(|p| percent_of(limit, *p)).collect();
        let rearm_units = threshold_units.iter().map(|t| t - (limit / REARM_MARGIN_DIVISOR).min(t / 2)).collect();
        let accounts = match &budget.scope {
            BudgetScope::Each { name } => Accounts::Each(Members {
                name: Arc::clone(name),
                map: Mutex::new(MemberMap::default()),
                max: budget.max_members(),
                overflow: std::sync::atomic::AtomicU64::new(0),
                warned_day: std::sync::atomic::AtomicI64::new(i64::MIN),
            }),
            _ => Accounts::One(Mutex::new(Self::new_account(&budget, None))),
        };
        BudgetSlot {
            unit: budget.limit.unit(),
            limit,
            threshold_units,
            rearm_units,
            accounts,
            unpriced_warned: std::sync::atomic::AtomicBool::new(false),
            budget,
        }
    }

    fn new_account(budget: &Budget, member: Option<Arc<str>>) -> Account {
        let rolling = match budget.period {
            BudgetPeriod::Rolling(d) => Some(Box::new(RollingBuckets::new(d))),
            _ => None,
        };
        Account {
            member,
            period: None,
            n: Counts::default(),
            previous: None,
            rearmed_at: if rolling.is_some() { vec![i64::MIN; budget.thresholds.len()] } else { Vec::new() },
            rolling,
            restated_day: i64::MIN,
        }
    }

    /// An empty account, for one value of a budget of each value of a dimension.
    fn fresh_account(&self, member: Option<Arc<str>>) -> Account {
        Self::new_account(&self.budget, member)
    }

    /// Runs `f` on every account the budget holds (one, or each value's), under its lock.
    fn for_each_account(&self, mut f: impl FnMut(&mut Account)) {
        match &self.accounts {
            Accounts::One(acct) => f(&mut acct.lock()),
            Accounts::Each(members) => members.map.lock().accounts.values_mut().for_each(f),
        }
    }

    /// The value a call brings to a budget of each value of a dimension, `None` when it has none (or the budget
    /// is of another scope). A model's is its canonical id, as [`matches`](Self::matches) reads it.
    fn member_of<'r>(&self, record: &'r CallRecord, model_key: &'r str) -> Option<std::borrow::Cow<'r, str>> {
        let Accounts::Each(members) = &self.accounts else { return None };
        if &*members.name == "model" {
            record.model.as_ref()?;
            return Some(if record.cost.is_none() && record.metered {
                std::borrow::Cow::Owned(normalize_model_id(model_key))
            } else {
                std::borrow::Cow::Borrowed(model_key)
            });
        }
        record.dimensions.get(&members.name).map(std::borrow::Cow::Borrowed)
    }

    /// Whether a finished call falls under this budget.
    fn matches(&self, record: &CallRecord, model_key: &str) -> bool {
        match &self.budget.scope {
            BudgetScope::Everything => true,
            BudgetScope::Dimension { name, value } => record.dimensions.get(name) == Some(&**value),
            // A priced call's key is its canonical id already; an unpriced one's is the id as reported.
            BudgetScope::Model(model) => {
                &**model == model_key
                    || (record.cost.is_none() && record.metered && normalize_model_id(model_key) == **model)
            }
            // Decided by `member_of`.
            BudgetScope::Each { .. } => true,
        }
    }

    /// What a call adds to this budget, in accounting units.
    fn units_of(&self, record: &CallRecord) -> u128 {
        match self.unit {
            BudgetUnit::Usd => record.cost_or_zero().picos(),
            BudgetUnit::Tokens => u128::from(record.tokens.total()),
        }
    }

    fn amount(&self, units: u128) -> BudgetAmount {
        BudgetAmount::from_units(self.unit, units)
    }

    /// A live call that ended before the account's period began: the clock stepped back (it ran ahead when an
    /// earlier call opened that period), or, within a few minutes, two threads finished calls on either side
    /// of the period's start. The first re-opens the period holding `at`, keeping what the account counted
    /// (that spend happened now, under a wrong stamp); the second counts in the current period. Either way the
    /// call counts: skipped, a clock that ran ahead for a minute would leave the budget blind (and a hard
    /// stop open) until the clock caught up.
    #[inline(always)]
    fn step_back(&self, acct: &mut Account, at: i64, clock: &dyn Clock) -> i64 {
        if acct.rolling.is_some() {
            Self::rolling_step_back(acct, clock.unix_nanos(), None);
        }
        if let Some((start, _)) = acct.period
            && acct.rolling.is_none()
            && start.saturating_sub(at) > STEP_BACK_NS
        {
            // The clock itself in the period (or past it): the call was accounted late (its thread stalled past
            // the period's start), not stamped by a clock that came back. It belongs to the period it ended in,
            // as replay counts it (its day file is read before the current period's), not to the current one;
            // `roll` refuses it and `account` adds it to that period's counts. Taken for a step back, it re-opened
            // the period before with the current one's spend, and the next call opened the current one again
            // empty (a block budget's spend gone).
            if start.saturating_sub(clock.unix_nanos()) <= STEP_BACK_NS {
                return at;
            }
            if !Self::restore_previous(acct, at) {
                acct.period = Some(self.bounds(at));
                acct.previous = None;
            }
            return at;
        }
        self.race_back(acct, at)
    }

    /// When the clock stepped back into the period the account left (see [`Account::previous`]): re-opens it
    /// with its own counts plus what was counted since under the later stamp (spend that happened, whatever
    /// its stamp), its alerts as delivered in either. Returns whether it did.
    fn restore_previous(acct: &mut Account, at: i64) -> bool {
        let Some(&((start, end), prev)) = acct.previous.as_deref() else { return false };
        if at < start || at >= end {
            return false;
        }
        acct.period = Some((start, end));
        let n = &mut acct.n;
        n.spent = prev.spent.saturating_add(n.spent);
        n.calls = prev.calls.saturating_add(n.calls);
        n.unpriced = prev.unpriced.saturating_add(n.unpriced);
        n.crossed |= prev.crossed;
        n.alerted |= prev.alerted;
        n.projected_alerted |= prev.projected_alerted;
        acct.previous = None;
        true
    }

    /// A rolling budget's [`step_back`](Self::step_back): spend stamped more than `tolerance` after `at` is moved
    /// to `at` ([`RollingBuckets::step_back`]). Left alone, the window read at the newest spend (see `rearm`) held
    /// almost nothing, so every reached threshold re-armed and fired again on each call, and a call whose bucket
    /// shared a slot with a future one was refused, uncounted. `tolerance` is `None` for the clock's time read
    /// under the account's lock (a call being accounted): a bucket's width, since a rolling window's buckets are
    /// far shorter than 5 minutes for windows under ~5 hours (a 90 s step back left a rolling minute's hard stop
    /// reading a minute that held nothing). A time read before the lock (a status read, a check, which may stall
    /// meanwhile) allows [`STEP_BACK_NS`]: those read the window to the newest spend anyway.
    fn rolling_step_back(acct: &mut Account, at: i64, tolerance: Option<i64>) {
        if let Some(buckets) = acct.rolling.as_mut()
            && buckets.step_back(at, tolerance.unwrap_or_else(|| STEP_BACK_NS.min(buckets.width())))
        {
            for t in &mut acct.rearmed_at {
                *t = (*t).min(at);
            }
        }
    }

    /// The calendar period holding `at`, in the budget's time zone, weeks from its week start.
    fn bounds(&self, at: i64) -> (i64, i64) {
        calendar_bounds(self.budget.period, self.budget.time_zone, self.budget.week_start(), at)
    }

    /// A call that ended at most [`STEP_BACK_NS`] before the account's period began: two threads finished
    /// calls on either side of the period's start, and it counts in the current period, live
    /// ([`step_back`](Self::step_back)) and at replay alike. Further back, replay leaves it to a period already
    /// over.
    fn race_back(&self, acct: &Account, at: i64) -> i64 {
        match acct.period {
            Some((start, _)) if acct.rolling.is_none() && at < start && start.saturating_sub(at) <= STEP_BACK_NS => {
                start
            }
            _ => at,
        }
    }

    /// Brings the account's period up to `at` (a new period resets it). Returns false when `at` lies before
    /// the current period: such a call belongs to a period already over.
    fn roll(&self, acct: &mut Account, at: i64) -> bool {
        if acct.rolling.is_some() {
            return true;
        }
        match acct.period {
            Some((start, _)) if at < start => false,
            Some((_, end)) if at < end => true,
            _ => {
                let left = std::mem::take(&mut acct.n);
                acct.previous = acct.period.map(|bounds| Box::new((bounds, left)));
                acct.period = Some(self.bounds(at));
                true
            }
        }
    }

    /// The account as seen at `at` (already rolled).
    fn snapshot(&self, acct: &Account, at: i64) -> Snapshot {
        if let Some(buckets) = &acct.rolling {
            // Read at the newest spend, as alerts read it: a check at `at` a moment before another thread's call
            // (or a clock a bucket behind) would leave that spend out.
            let read_at = buckets.latest(at);
            let sum = buckets.sum(read_at);
            let time_to_limit = (sum.units >= self.limit).then_some(0);
            // The thresholds this spend has reached: one whose spend left the window since the last call (which
            // re-arms them) is no longer crossed.
            let reached = self
                .threshold_units
                .iter()
                .enumerate()
                .filter(|(_, t)| sum.units >= **t)
                .fold(0u64, |bits, (k, _)| bits | 1u64 << k);
            return Snapshot {
                at,
                start: buckets.window_start(read_at),
                resets_at: buckets.resets_at(read_at, sum.oldest),
                spent: sum.units,
                calls: sum.calls,
                unpriced: sum.unpriced,
                crossed: acct.n.crossed & reached,
                projected: Some(sum.units),
                time_to_limit,
            };
        }
        let (start, end) = acct.period.unwrap_or_else(|| self.bounds(at));
        let n = if acct.period.is_some() { acct.n } else { Counts::default() };
        let spent = n.spent;
        let elapsed = at.saturating_sub(start).max(0);
        let length = end.saturating_sub(start).max(1);
        let rate_known = elapsed > 0 && elapsed >= length / MIN_ELAPSED_DIVISOR;
        let projected = if spent == 0 {
            Some(0)
        } else if rate_known {
            Some(spent.saturating_mul(length as u128) / elapsed as u128)
        } else {
            None
        };
        let time_to_limit = if spent >= self.limit {
            Some(0)
        } else if rate_known && spent > 0 {
            let nanos = (self.limit - spent).saturating_mul(elapsed as u128) / spent;
            (nanos < end.saturating_sub(at).max(0) as u128).then_some(nanos)
        } else {
            None
        };
        Snapshot {
            at,
            start,
            resets_at: end,
            spent,
            calls: n.calls,
            unpriced: n.unpriced,
            crossed: n.crossed,
            projected,
            time_to_limit,
        }
    }

    /// Whether a calendar account's end-of-period projection exceeds the limit, with evidence enough to alert
    /// ([`ALERT_ELAPSED_DIVISOR`]): `snapshot`'s `projected > limit`
    /// without its division (`spent * length / elapsed > limit` ⇔ `spent * length > limit * elapsed`, exact in
    /// integers up to rounding the quotient down, which the `>=` below accounts for).
    fn projects_over(&self, acct: &Account, at: i64) -> bool {
        let Some((start, end)) = acct.period else { return false };
        let (spent, elapsed, length) =
            (acct.n.spent, at.saturating_sub(start).max(0), end.saturating_sub(start).max(1));
        if spent == 0 || elapsed == 0 || elapsed < length / MIN_ELAPSED_DIVISOR {
            return false;
        }
        let evidence =
            elapsed >= length / ALERT_ELAPSED_DIVISOR || spent.saturating_mul(ALERT_SPENT_DIVISOR) >= self.limit;
        if !evidence {
            return false;
        }
        // floor(spent * length / elapsed) > limit  <=>  spent * length >= (limit + 1) * elapsed
        let lhs = spent.saturating_mul(length as u128);
        let rhs = self.limit.saturating_add(1).saturating_mul(elapsed as u128);
        lhs >= rhs
    }

    /// Reads the account at `at`, rolling it forward first. Also says whether it re-opened the period the clock
    /// came back into, whose spend may have reached thresholds no alert was delivered for (the spend counted
    /// while the clock ran ahead joins it).
    ///
    /// `clock` is read only when `at` lies more than [`STEP_BACK_NS`] before the account's period: whether the clock
    /// itself came back, or `at` was read before this thread stalled (as [`step_back`](Self::step_back) decides for
    /// a call).
    fn read(&self, acct: &mut Account, at: i64, clock: &dyn Clock) -> (Snapshot, bool) {
        let mut restored = false;
        if acct.period.is_some_and(|(_, end)| at >= end) {
            self.roll(acct, at);
        } else if let Some((start, _)) = acct.period
            && acct.rolling.is_none()
            && start.saturating_sub(at) > STEP_BACK_NS
        {
            // Not when the clock is in the period now: `at` was read before this thread stalled past the
            // period's start (a call then opened it), and re-opening the period before with this one's spend
            // would leave that spend there when the next call came (a `Block` budget's, gone).
            if start.saturating_sub(clock.unix_nanos()) > STEP_BACK_NS {
                // The clock came back from a run ahead: a hard stop reads the period it is in again.
                restored = Self::restore_previous(acct, at);
                // Back into a period the account never held (the run ahead opened its first period, or spanned
                // more than one): re-opened at `at` with what was counted under the later stamps, as a call
                // does. Left to the future period, a `Block` budget the run ahead filled (which refuses every
                // call, so no call re-opens it) read that period's spend and end: refused until the end of a
                // period not yet begun, and then through it, with nothing spent in it.
                if !restored {
                    acct.period = Some(self.bounds(at));
                    acct.previous = None;
                }
            }
        }
        Self::rolling_step_back(acct, at, Some(STEP_BACK_NS));
        // No re-arming here (the snapshot masks the thresholds crossed by the spend it reads): a read at `now`, a
        // moment after another thread's call ended and before it was accounted, re-armed the thresholds whose
        // spend had just left the window, and that call, read at its own end where the spend was still in it,
        // fired them all again. Calls re-arm, at the newest spend.
        (self.snapshot(acct, at), restored)
    }

    /// The thresholds the spend at `at` has reached in the current period and no alert was delivered for (after
    /// replay: the replayed spend, the journaled deliveries), marked delivered now, with the snapshot to send.
    /// Nothing without a call in the period: a zero limit is reached by no spend at all.
    fn owed(&self, acct: &mut Account, at: i64) -> Option<(Snapshot, Vec<usize>)> {
        if acct.period.is_some_and(|(_, end)| at >= end) {
            self.roll(acct, at);
        }
        Self::rolling_step_back(acct, at, Some(STEP_BACK_NS));
        // Not re-armed here either (see `read`).
        let at = acct.rolling.as_ref().map_or(at, |buckets| buckets.latest(at));
        let snap = self.snapshot(acct, at);
        if snap.calls == 0 {
            return None;
        }
        let mut owed = Vec::new();
        for (k, threshold) in self.threshold_units.iter().enumerate() {
            let bit = 1u64 << k;
            if snap.spent >= *threshold && acct.n.alerted & bit == 0 {
                acct.n.crossed |= bit;
                acct.n.alerted |= bit;
                owed.push(k);
            }
        }
        (!owed.is_empty()).then_some((snap, owed))
    }

    /// On a rolling budget, clears the thresholds that spend at `at` has fallen back below (no longer crossed),
    /// and re-arms those it has fallen below by a margin ([`REARM_MARGIN_DIVISOR`]; an alert fires when spend
    /// reaches a threshold not alerted). Never at an instant before the newest spend: a call that ended a moment
    /// before another thread's, accounted after it, would read the window without that spend and re-arm an
    /// alert just fired.
    fn rearm(&self, acct: &mut Account, at: i64) {
        let Some(buckets) = &acct.rolling else { return };
        let at = buckets.latest(at);
        let spent = buckets.sum(at).units;
        for (k, (threshold, rearm)) in self.threshold_units.iter().zip(self.rearm_units.iter()).enumerate() {
            if spent < *threshold {
                acct.n.crossed &= !(1u64 << k);
            }
            if spent < *rearm {
                acct.n.alerted &= !(1u64 << k);
                if let Some(t) = acct.rearmed_at.get_mut(k) {
                    *t = (*t).max(at);
                }
            }
        }
    }

    /// Accounts one call on one account (see [`BudgetTracker::account`]); the alerts it makes due go to
    /// `pending`.
    #[inline(always)]
    fn account(&self, acct: &mut Account, call: Accounted<'_>, pending: &mut Vec<Pending>) {
        let Accounted { slot: i, at, units, unpriced, clock } = call;
        let live = clock.is_some();
        let at = match clock {
            Some(clock) => self.step_back(acct, at, clock),
            None => self.race_back(acct, at),
        };
        if !self.roll(acct, at) {
            // A call of a period already over: counted in it when it is the one before (what a clock that
            // comes back into it would restore), never in the current one.
            if let Some(prev) = acct.previous.as_deref_mut()
                && (prev.0.0..prev.0.1).contains(&at)
            {
                prev.1.add(units, unpriced);
            }
            return;
        }
        self.rearm(acct, at);
        if let Some(buckets) = acct.rolling.as_mut() {
            if !buckets.add(at, units, unpriced) {
                return;
            }
        } else {
            acct.n.add(units, unpriced);
        }
        // A rolling window is read at the newest spend, as `rearm` reads it: a call that ended a moment before
        // another thread's, accounted after it, read at its own end would leave that spend's bucket out.
        let at = acct.rolling.as_ref().map_or(at, |buckets| buckets.latest(at));
        // The common case (no threshold newly crossed, no new projected overrun) decides from the spend
        // alone; the full snapshot (projection, time to limit: u128 divisions) is built only for an alert.
        let spent = match &acct.rolling {
            Some(buckets) => buckets.sum(at).units,
            None => acct.n.spent,
        };
        if !live {
            for (k, threshold) in self.threshold_units.iter().enumerate() {
                if spent >= *threshold {
                    acct.n.crossed |= 1u64 << k;
                }
            }
            return;
        }
        // Every threshold the spend reaches is crossed, alerted or not: one whose alert was delivered before
        // a restart is crossed again when the spend gets there again.
        // Thresholds are ascending: most calls stop at the first.
        let mut reached = 0u64;
        for (k, threshold) in self.threshold_units.iter().enumerate() {
            if spent < *threshold {
                break;
            }
            reached |= 1u64 << k;
        }
        acct.n.crossed |= reached;
        let newly_crossed = reached & !acct.n.alerted != 0;
        let may_overrun = acct.rolling.is_none() && !acct.n.projected_alerted && spent < self.limit;
        let alert_due = newly_crossed || (may_overrun && self.projects_over(acct, at));
        if !alert_due {
            return;
        }
        let snap = self.snapshot(acct, at);
        for (k, threshold) in self.threshold_units.iter().enumerate() {
            let bit = 1u64 << k;
            if snap.spent >= *threshold && acct.n.alerted & bit == 0 {
                acct.n.crossed |= bit;
                acct.n.alerted |= bit;
                let percent = self.budget.thresholds[k];
                let kind = AlertKind::ThresholdCrossed { percent };
                pending.push(Pending { slot: i, kind, snapshot: snap, member: acct.member.clone() });
            }
        }
        // The same test as `alert_due`'s (the projection shown in `snap` has no evidence rule).
        let overrun = acct.rolling.is_none() && snap.spent < self.limit && self.projects_over(acct, at);
        if overrun && !acct.n.projected_alerted {
            acct.n.projected_alerted = true;
            let kind = AlertKind::ProjectedOverrun;
            pending.push(Pending { slot: i, kind, snapshot: snap, member: acct.member.clone() });
        }
    }

    /// [`BudgetTracker::restate`] for one value's account, with its first live call of each UTC day (its
    /// alerts' marks are in the day files of the calls that crossed them, and retention deletes those only after
    /// the spend's own; a value that calls again has them written again, as every budget's are with the day's
    /// first call).
    fn restate_member(&self, acct: &mut Account, at: i64, marks: &mut Vec<AlertMark>) {
        let day = at.div_euclid(DAY_NS);
        if day > acct.restated_day {
            acct.restated_day = day;
            self.restate(acct, at, marks);
        }
    }

    /// [`BudgetTracker::restate`] for one account.
    fn restate(&self, acct: &mut Account, at: i64, marks: &mut Vec<AlertMark>) {
        let current = match &acct.rolling {
            Some(_) => true,
            None => acct.period.is_some_and(|(start, end)| (start..end).contains(&at)),
        };
        if !current {
            return;
        }
        // Spend that left the window since the last call re-arms, as this call's accounting would.
        self.rearm(acct, at);
        let kinds = self
            .budget
            .thresholds
            .iter()
            .enumerate()
            .filter(|(k, _)| acct.n.alerted & (1u64 << k) != 0)
            .map(|(_, &percent)| AlertKind::ThresholdCrossed { percent })
            .chain(acct.n.projected_alerted.then_some(AlertKind::ProjectedOverrun));
        let kinds: SmallVec<[AlertKind; 4]> = kinds.collect();
        if kinds.is_empty() {
            return;
        }
        let snap = self.snapshot(acct, at);
        for kind in kinds {
            let mut mark = AlertMark::of(&self.alert(kind, snap, acct.member.as_ref()), self);
            mark.restated = true;
            marks.push(mark);
        }
    }

    /// Marks one journaled alert on the account it was delivered for ([`BudgetTracker::replay_alerts`]).
    fn replay_mark(&self, acct: &mut Account, mark: &AlertMark, now: i64) {
        // No replayed call may have opened the current period (the call's line was lost, the alert's
        // was not): open it at `now`, so the mark is compared with the period it belongs to.
        if acct.rolling.is_none() && acct.period.is_none_or(|(_, end)| now >= end) {
            self.roll(acct, now);
        }
        let current = match &acct.rolling {
            // Decided per threshold below.
            Some(_) => true,
            None => acct.period.is_some_and(|(start, _)| start == to_nanos(mark.period_start)),
        };
        if !current {
            // The period before the current one, kept for a clock that steps back into it (see
            // `Account::previous`): its delivered alerts with it. Ignored, a restart just after a period's
            // start and a clock step back into the period before re-sent every alert its spend had reached.
            let start = to_nanos(mark.period_start);
            if let Some(((prev_start, _), prev)) = acct.previous.as_deref_mut()
                && *prev_start == start
            {
                match mark.alert {
                    AlertKind::ThresholdCrossed { percent } => {
                        if let Some(k) = self.budget.thresholds.iter().position(|p| *p == percent) {
                            prev.alerted |= 1u64 << k;
                        }
                    }
                    AlertKind::ProjectedOverrun => prev.projected_alerted = true,
                }
            }
            return;
        }
        match mark.alert {
            AlertKind::ThresholdCrossed { percent } => {
                if let Some(k) = self.budget.thresholds.iter().position(|p| *p == percent)
                    && acct.rearmed_at.get(k).is_none_or(|&t| to_nanos(mark.at) >= t)
                {
                    acct.n.alerted |= 1u64 << k;
                }
            }
            AlertKind::ProjectedOverrun => acct.n.projected_alerted = true,
        }
        self.rearm(acct, now);
    }

    /// The state of the account `snap` was taken of (`member`: its value in a budget of each value).
    fn state(&self, snap: Snapshot, member: Option<&Arc<str>>) -> BudgetState {
        let thresholds_crossed = self
            .budget
            .thresholds
            .iter()
            .enumerate()
            .filter(|(i, _)| snap.crossed & (1 << i) != 0)
            .map(|(_, p)| *p)
            .collect();
        BudgetState {
            budget: self.budget.name.clone(),
            scope: self.scope_of(member),
            member: member.cloned(),
            period: self.budget.period,
            action: self.budget.action,
            period_start: to_utc(snap.start),
            resets_at: to_utc(snap.resets_at),
            spent: self.amount(snap.spent),
            limit: self.amount(self.limit),
            remaining: self.amount(self.limit.saturating_sub(snap.spent)),
            utilization: utilization(snap.spent, self.limit),
            projected: snap.projected.map(|p| self.amount(p)),
            time_to_limit: snap.time_to_limit.map(|n| Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))),
            over_budget: snap.spent >= self.limit,
            thresholds_crossed,
            calls: snap.calls,
            unpriced_calls: snap.unpriced,
        }
    }

    /// The budget's scope, or one value's in a budget of each value (`user=alice`).
    fn scope_of(&self, member: Option<&Arc<str>>) -> BudgetScope {
        match member {
            Some(value) => self.budget.scope.member(value),
            None => self.budget.scope.clone(),
        }
    }

    fn alert(&self, kind: AlertKind, snap: Snapshot, member: Option<&Arc<str>>) -> BudgetAlert {
        BudgetAlert {
            kind,
            budget: self.budget.name.clone(),
            scope: self.scope_of(member),
            member: member.cloned(),
            period: self.budget.period,
            action: self.budget.action,
            spent: self.amount(snap.spent),
            limit: self.amount(self.limit),
            utilization: utilization(snap.spent, self.limit),
            projected: snap.projected.map(|p| self.amount(p)),
            period_start: to_utc(snap.start),
            resets_at: to_utc(snap.resets_at),
            at: to_utc(snap.at),
            unpriced_calls: snap.unpriced,
        }
    }
}

/// A UTC day, in nanoseconds.
const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// How far before its period's start a live call may end and still be read as a race between threads rather
/// than a clock that stepped back (see `BudgetSlot::step_back`).
const STEP_BACK_NS: i64 = 300 * 1_000_000_000;

/// What the journal keeps of a delivered alert: enough to know, after a restart, that it need not fire again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AlertMark {
    pub(crate) budget: Arc<str>,
    pub(crate) alert: AlertKind,
    pub(crate) unit: BudgetUnit,
    /// The budget's period as written (`month`, `rolling 1h`) when it fired.
    pub(crate) period: String,
    /// The limit in accounting units (pico-USD or tokens) when it fired.
    pub(crate) limit_units: u128,
    /// Start of the period it fired in (a rolling budget's window start).
    pub(crate) period_start: DateTime<Utc>,
    /// When the call that caused it ended.
    pub(crate) at: DateTime<Utc>,
    /// The budget's scope as written (`tenant=acme`) when it fired; absent in lines written before it was
    /// kept, which match any scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
    /// Written again on a later day ([`BudgetTracker::restate`]): the alert was delivered before `at`, and has
    /// not been re-armed since. Replay reads it as any other mark; the field is for a reader of the file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) restated: bool,
}

impl AlertMark {
    fn of(alert: &BudgetAlert, slot: &BudgetSlot) -> Self {
        AlertMark {
            budget: alert.budget.clone(),
            alert: alert.kind,
            unit: slot.unit,
            period: slot.budget.period.to_string(),
            limit_units: slot.limit,
            period_start: alert.period_start,
            at: alert.at,
            scope: Some(alert.scope.to_string()),
            restated: false,
        }
    }
}

/// `percent`% of `limit`, rounded up: a threshold is reached only when spend is at least that share.
fn percent_of(limit: u128, percent: u32) -> u128 {
    limit.saturating_mul(u128::from(percent)).div_ceil(100)
}

fn utilization(spent: u128, limit: u128) -> f64 {
    if limit == 0 {
        return 1.0;
    }
    spent as f64 / limit as f64
}

impl BudgetTracker {
    /// True when no budget is configured.
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every alert the budgets can raise: budget, kind (`threshold_crossed`, `projected_overrun`) and threshold
    /// percent. The alert counter is exported at 0 for each from the start, so a query's `increase` counts the
    /// first alert too (a series that first appears at 1 shows no increase).
    #[cfg(feature = "otlp")]
    pub(crate) fn alert_kinds(&self) -> Vec<(Arc<str>, &'static str, Option<u32>)> {
        let mut out = Vec::new();
        for slot in self.slots.iter() {
            for &percent in &slot.budget.thresholds {
                let kind = AlertKind::ThresholdCrossed { percent }.event_name();
                out.push((Arc::clone(&slot.budget.name), kind, Some(percent)));
            }
            if !slot.budget.period.is_rolling() {
                out.push((Arc::clone(&slot.budget.name), AlertKind::ProjectedOverrun.event_name(), None));
            }
        }
        out
    }

    /// Accounts a finished call and delivers any alerts it causes. `model_key` is the meter's key for the
    /// call's model (the canonical id when priced).
    ///
    /// Returns what the journal keeps of each alert delivered (empty, without allocating, when none was), so
    /// that a restarted meter does not deliver it again.
    /// `clock` is read only for a rolling budget: its buckets stamped more than a bucket ahead of the clock's
    /// time (not of the call's end, which a thread preempted between the two can leave seconds behind) are
    /// spend a clock that stepped back stamped ahead.
    /// Accounts a live call. Returns what the journal keeps of the alerts delivered (owed since the build) or
    /// due (this call's, for [`deliver`](Self::deliver) once the call is journaled and in the ledger and sinks).
    pub(crate) fn on_call(
        &self,
        record: &CallRecord,
        model_key: &str,
        clock: &dyn Clock,
    ) -> (Vec<AlertMark>, Vec<BudgetAlert>) {
        self.account(record, model_key, record.ended_at_unix_nanos(), Some(clock))
    }

    /// Delivers the alerts a call crossed ([`on_call`](Self::on_call)).
    pub(crate) fn deliver(&self, due: Vec<BudgetAlert>) {
        for alert in due {
            self.alerts.deliver(alert);
        }
    }

    /// Accounts a call replayed from the journal: the thresholds it reaches are marked reached, and nothing
    /// fires. Whether their alerts fired before the restart is the journal's alert lines' to say
    /// ([`replay_alerts`](Self::replay_alerts)); one that did not fires with the first call, check or status read
    /// after the build ([`take_owed`](Self::take_owed)). A call that ended
    /// after `now` (written by a process whose clock runs ahead) counts at `now`, as the ledger counts it: in
    /// its own, later period it would move the budget past the clock, and the calls made until the clock got
    /// there would not count.
    pub(crate) fn replay_call(&self, record: &CallRecord, model_key: &str, now: DateTime<Utc>) {
        self.account(record, model_key, record.ended_at_unix_nanos().min(to_nanos(now)), None);
    }

    /// Marks the alerts the journal says were delivered before a restart, after its calls were replayed: each
    /// applies to a budget of the same name, unit, period (as written: `rolling 24h` is not `rolling 1h`) and
    /// limit, in the same period. For a rolling budget, an alert whose threshold spend has not been seen under
    /// since (by the replayed calls, as the live meter saw it: at each call) and still reaches: an alert that
    /// fired at 09:00, with spend above its threshold ever since, holds at 10:30 though its call left the
    /// window. Others are ignored: a budget whose limit or period changed alerts again at its new thresholds.
    pub(crate) fn replay_alerts(&self, marks: &[AlertMark], now: DateTime<Utc>) {
        let now = to_nanos(now);
        for mark in marks {
            let Some(slot) = self.slots.iter().find(|s| s.budget.name == mark.budget) else { continue };
            if slot.unit != mark.unit
                || slot.limit != mark.limit_units
                || mark.period.parse::<BudgetPeriod>().ok().as_ref() != Some(&slot.budget.period)
                || (matches!(slot.accounts, Accounts::One(_))
                    && mark.scope.as_ref().is_some_and(|scope| *scope != slot.budget.scope.to_string()))
            {
                continue;
            }
            match &slot.accounts {
                Accounts::One(acct) => slot.replay_mark(&mut acct.lock(), mark, now),
                Accounts::Each(members) => {
                    // A mark names the value it fired for (`user=alice`); one without cannot be placed.
                    let Some((name, value)) = mark.scope.as_deref().and_then(|s| s.split_once('=')) else { continue };
                    if name != &*members.name || value == "*" {
                        continue;
                    }
                    let mut map = members.map.lock();
                    // A value without room has no account of its own to mark (its calls went to `OTHER`).
                    if (value == OTHER || members.has_room(&mut map, value, now))
                        && let Some((acct, _)) = members.get_or_make(&mut map, value, now, slot)
                    {
                        slot.replay_mark(acct, mark, now);
                    }
                }
            }
        }
    }

    /// After replay and [`replay_alerts`](Self::replay_alerts), or a read that re-opened a period: says alerts may
    /// be owed, for [`take_owed`](Self::take_owed).
    pub(crate) fn mark_owed(&self) {
        self.owed.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Once after [`mark_owed`](Self::mark_owed), at `now` (Unix nanoseconds): delivers what
    /// [`collect_owed`](Self::collect_owed) finds; afterwards nothing (one atomic load). Called by the first call,
    /// budget check or status read after the build: not inside the build, whose alert events no subscriber
    /// would hear yet (the meter is usually built before the subscriber is installed).
    pub(crate) fn take_owed(&self, now: i64) -> (Vec<AlertMark>, Vec<BudgetAlert>) {
        use std::sync::atomic::Ordering;
        if !self.owed.load(Ordering::Acquire) || !self.owed.swap(false, Ordering::AcqRel) {
            return Default::default();
        }
        self.collect_owed(now)
    }

    /// The alerts of the thresholds the replayed spend has reached in the current period that no journaled line
    /// marked delivered (the limit was lowered, the budget or threshold is new, the alert's line was lost). Left
    /// to the next call under the budget, a `Block` budget already over its limit would refuse every call, and no
    /// call would come to fire it. Returns what the journal keeps of each.
    ///
    /// Returned, not delivered: the caller journals the marks first, then [`deliver`](Self::deliver)s, so that a
    /// process stopped by an alert's callback (or exiting as its webhook is posted) has the mark on its way to
    /// disk before any of that runs, and a restart does not deliver the alert again.
    fn collect_owed(&self, now: i64) -> (Vec<AlertMark>, Vec<BudgetAlert>) {
        let (mut marks, mut alerts) = (Vec::new(), Vec::new());
        for slot in self.slots.iter() {
            slot.for_each_account(|acct| {
                let Some((snapshot, owed)) = slot.owed(acct, now) else { return };
                for k in owed {
                    let percent = slot.budget.thresholds[k];
                    let alert = slot.alert(AlertKind::ThresholdCrossed { percent }, snapshot, acct.member.as_ref());
                    marks.push(AlertMark::of(&alert, slot));
                    alerts.push(alert);
                }
            });
        }
        (marks, alerts)
    }

    /// With the first live call after the build and the first of each UTC day after it (by its end, at `at`),
    /// the marks of the alerts delivered in each budget's current period and not re-armed since, stamped `at`,
    /// for the journal to write again into the day's file. Retention deletes a day file by age alone: a rolling
    /// budget whose spend stayed over a threshold for longer than the journal keeps files lost the line of that
    /// alert, and a restart delivered it again. Before this call's own accounting and before the alerts owed since
    /// the build are marked delivered, so that each of those is marked once, by its own line. Otherwise one atomic
    /// load.
    fn restate(&self, at: i64, marks: &mut Vec<AlertMark>) {
        use std::sync::atomic::Ordering;
        let day = at.div_euclid(DAY_NS);
        // Only forward: a call accounted late (ended yesterday on a stalled thread) or a clock stepped back does not
        // move the day back, which had the next call of today restate again.
        if self.restated_day.load(Ordering::Relaxed) >= day
            || self.restated_day.fetch_max(day, Ordering::Relaxed) >= day
        {
            return;
        }
        // A budget of each value restates each value's account with its own first call of the day
        // (`BudgetSlot::restate_member`): all of them at once wrote 10,000 marks at 5,000 alerted values, more than
        // the journal's queue holds, and dropped calls' records with them.
        for slot in self.slots.iter() {
            if let Accounts::One(acct) = &slot.accounts {
                slot.restate(&mut acct.lock(), at, marks);
            }
        }
    }

    /// `clock` is the live meter's (a replayed call has none).
    fn account(
        &self,
        record: &CallRecord,
        model_key: &str,
        at: i64,
        clock: Option<&dyn Clock>,
    ) -> (Vec<AlertMark>, Vec<BudgetAlert>) {
        if self.slots.is_empty() {
            return Default::default();
        }
        let live = clock.is_some();
        // The alerts delivered before go first (restated before those owed since the build are marked
        // delivered, which have lines of their own), then the owed ones, older than what this call crosses.
        let mut restated = Vec::new();
        if live {
            self.restate(at, &mut restated);
        }
        let (mut owed, owed_alerts) = if live { self.take_owed(at) } else { Default::default() };
        if !restated.is_empty() {
            restated.append(&mut owed);
            owed = restated;
        }
        // A `Vec`, not a `SmallVec`: `Pending` holds an `Arc` (a value of a budget of each value), and dropping an
        // empty `SmallVec` of it was a call on every call; an empty `Vec`'s drop is a capacity test.
        let mut pending: Vec<Pending> = Vec::new();
        let mut unpriced_models: SmallVec<[(usize, String); 1]> = SmallVec::new();
        // Budgets of each value whose full accounts sent a live call to `OTHER` on a day not yet said.
        let mut overflowed: SmallVec<[usize; 1]> = SmallVec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            if !slot.matches(record, model_key) {
                continue;
            }
            let units = slot.units_of(record);
            let unpriced = slot.unit == BudgetUnit::Usd && record.is_unpriced();
            let call = Accounted { slot: i, at, units, unpriced, clock };
            match &slot.accounts {
                Accounts::One(acct) => slot.account(&mut acct.lock(), call, &mut pending),
                Accounts::Each(members) => {
                    let Some(value) = slot.member_of(record, model_key) else { continue };
                    let mut map = members.map.lock();
                    let Some((acct, folded)) = members.get_or_make(&mut map, &value, at, slot) else { continue };
                    if folded {
                        use std::sync::atomic::Ordering::Relaxed;
                        members.overflow.fetch_add(1, Relaxed);
                        let day = at.div_euclid(DAY_NS);
                        if live && members.warned_day.fetch_max(day, Relaxed) < day {
                            overflowed.push(i);
                        }
                    }
                    if live {
                        slot.restate_member(acct, at, &mut owed);
                    }
                    slot.account(acct, call, &mut pending);
                }
            }
            if unpriced && live && !slot.unpriced_warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                unpriced_models.push((i, model_key.to_owned()));
            }
        }
        for i in overflowed {
            let slot = &self.slots[i];
            if let Accounts::Each(members) = &slot.accounts {
                let overflow = members.overflow.load(std::sync::atomic::Ordering::Relaxed);
                self.alerts.warn_members_full(&slot.budget.name, &slot.budget.scope, members.max, overflow);
            }
        }
        if pending.is_empty() && unpriced_models.is_empty() {
            // Nearly every call: moving the two small vectors into their loops copies ~300 bytes.
            return (owed, owed_alerts);
        }
        for (i, model) in unpriced_models {
            let slot = &self.slots[i];
            self.alerts.warn_unpriced(&slot.budget.name, &slot.budget.scope.to_string(), &model);
        }
        let mut marks = owed;
        let mut due = owed_alerts;
        due.reserve(pending.len());
        for p in pending {
            let alert = self.slots[p.slot].alert(p.kind, p.snapshot, p.member.as_ref());
            marks.push(AlertMark::of(&alert, &self.slots[p.slot]));
            due.push(alert);
        }
        (marks, due)
    }

    /// Every budget's state at `now` (Unix nanoseconds), in configuration order.
    /// `clock` is read only to tell a clock that came back from a stalled reader ([`BudgetSlot::read`]).
    /// A budget of each value of a dimension gives one state per value with calls in its current period, by value.
    pub(crate) fn status(&self, now: i64, clock: &dyn Clock) -> Vec<BudgetState> {
        self.status_where(|_| true, now, clock)
    }

    /// [`status`](Self::status) of the budgets `take` takes: the others' accounts are not read.
    pub(crate) fn status_where(&self, take: impl Fn(&Budget) -> bool, now: i64, clock: &dyn Clock) -> Vec<BudgetState> {
        let mut out = Vec::with_capacity(self.slots.len());
        for slot in self.slots.iter().filter(|slot| take(&slot.budget)) {
            match &slot.accounts {
                Accounts::One(acct) => out.push(slot.state(self.read(slot, &mut acct.lock(), now, clock), None)),
                Accounts::Each(members) => {
                    let first = out.len();
                    let read = Self::read_members(members, |acct| self.read(slot, acct, now, clock));
                    out.extend(read.into_iter().map(|(snap, member)| slot.state(snap, member.as_ref())));
                    out[first..].sort_by(|a, b| a.member.cmp(&b.member));
                }
            }
        }
        out
    }

    /// The snapshots (`read` of each account) of a budget of each value's accounts that hold calls, with their
    /// values. Read [`STATUS_CHUNK`] accounts at a time, the lock released between: the budget's calls wait behind
    /// one chunk at most, where under one hold they waited behind every value (~70 ms at 100,000 values, at every
    /// collection of the OTLP budget gauges). A map whose layout changed between two holds (an account made, a
    /// sweep) may have moved its accounts: the reading starts over, and after [`STATUS_RESTARTS`] such changes reads
    /// them all under one hold.
    fn read_members(
        members: &Members,
        mut read: impl FnMut(&mut Account) -> Snapshot,
    ) -> Vec<(Snapshot, Option<Arc<str>>)> {
        let mut out = Vec::new();
        let (mut next, mut restarts, mut layout) = (0usize, 0u32, None);
        loop {
            let mut map = members.map.lock();
            if layout.is_some_and(|l| l != map.layout) {
                restarts += 1;
                next = 0;
                out.clear();
            }
            layout = Some(map.layout);
            let take = if restarts >= STATUS_RESTARTS { usize::MAX } else { STATUS_CHUNK };
            let mut n = 0;
            // Skipping the accounts read already walks the table's control bytes, not the accounts.
            for acct in map.accounts.values_mut().skip(next).take(take) {
                n += 1;
                let snap = read(acct);
                if snap.calls > 0 {
                    out.push((snap, acct.member.clone()));
                }
            }
            if n < take {
                return out;
            }
            next += n;
            // Handed to a call waiting for it, if any: released plainly, the lock was taken again by the next chunk
            // before the woken call ran, and calls waited behind dozens of chunks (3-48 ms at 100,000 values).
            parking_lot::MutexGuard::unlock_fair(map);
        }
    }

    /// The budgets, in configuration order.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn budgets(&self) -> impl Iterator<Item = &Budget> {
        self.slots.iter().map(|slot| &slot.budget)
    }

    /// The states of the budgets covering `request`, in configuration order: of a budget of each value of a
    /// dimension, the request's value's (nothing spent yet when it has no account).
    pub(crate) fn status_for(&self, request: &RequestScope, now: i64, clock: &dyn Clock) -> Vec<BudgetState> {
        let mut out = Vec::new();
        for slot in self.slots.iter().filter(|slot| slot.budget.scope.covers(request)) {
            if let Some((snap, member)) = self.read_for(slot, request, now, clock, false) {
                out.push(slot.state(snap, member.as_ref()));
            }
        }
        out
    }

    /// The account a request (of the budget's scope) reads, with the value it is for: the budget's one account, or
    /// in a budget of each value its value's own, [`OTHER`]'s when its calls would go there, or (unless
    /// `skip_unseen`) an empty one for a value that has none yet. `None` when the request names no value, or
    /// `skip_unseen` and its value has no account.
    fn read_for(
        &self,
        slot: &BudgetSlot,
        request: &RequestScope,
        now: i64,
        clock: &dyn Clock,
        skip_unseen: bool,
    ) -> Option<(Snapshot, Option<Arc<str>>)> {
        let members = match &slot.accounts {
            Accounts::One(acct) => return Some((self.read(slot, &mut acct.lock(), now, clock), None)),
            Accounts::Each(members) => members,
        };
        let value = request.get(&members.name)?;
        let mut map = members.map.lock();
        if let Some(acct) = members.lookup(&mut map, value, now) {
            return Some((self.read(slot, acct, now, clock), acct.member.clone()));
        }
        drop(map);
        if skip_unseen {
            return None;
        }
        let mut acct = slot.fresh_account(None);
        Some((self.read(slot, &mut acct, now, clock), Some(Arc::from(value))))
    }

    /// Forgets the values `forget` names (see [`TokenMeter::erase`](crate::TokenMeter::erase)): a value's account
    /// in a budget of each value of its dimension is dropped, and a budget of the value itself starts over with
    /// an empty account, as a restart replaying the erased journal would find them. Returns the accounts that
    /// named a value (in a dry run, counted only).
    pub(crate) fn forget(&self, forget: &crate::erase::Forget) -> u64 {
        let mut found = 0;
        for slot in self.slots.iter() {
            match (&slot.budget.scope, &slot.accounts) {
                (BudgetScope::Dimension { name, value }, Accounts::One(acct)) if forget.names(name, value) => {
                    found += 1;
                    if !forget.dry_run {
                        *acct.lock() = slot.fresh_account(None);
                    }
                }
                (_, Accounts::Each(members)) if &*members.name != "model" && forget.has(&members.name) => {
                    let mut map = members.map.lock();
                    let named = |key: &Arc<str>| forget.names(&members.name, key);
                    let n = map.accounts.keys().filter(|key| named(key)).count();
                    found += n as u64;
                    if n > 0 && !forget.dry_run {
                        map.accounts.retain(|key, _| !named(key));
                        map.layout = map.layout.wrapping_add(1);
                    }
                }
                _ => {}
            }
        }
        found
    }

    /// Calls of a budget of each value of a dimension counted in its [`OTHER`] account because its accounts were
    /// full ([`Budget::with_max_members`](super::Budget::with_max_members)), by budget, for the budgets with any.
    pub(crate) fn members_overflow(&self) -> Vec<(Arc<str>, u64)> {
        self.slots
            .iter()
            .filter_map(|slot| match &slot.accounts {
                Accounts::Each(members) => {
                    let n = members.overflow.load(std::sync::atomic::Ordering::Relaxed);
                    (n > 0).then(|| (Arc::clone(&slot.budget.name), n))
                }
                Accounts::One(_) => None,
            })
            .collect()
    }

    /// [`BudgetSlot::read`]; a period re-opened by the read owes the alerts its spend reached (a `Block` budget over
    /// its limit refuses every call, and no call would come to fire them), delivered by
    /// [`take_owed`](Self::take_owed) on the application's thread.
    fn read(&self, slot: &BudgetSlot, acct: &mut Account, now: i64, clock: &dyn Clock) -> Snapshot {
        let (snap, restored) = slot.read(acct, now, clock);
        if restored {
            self.mark_owed();
        }
        snap
    }

    /// Whether alerts may be owed ([`take_owed`](Self::take_owed) would look).
    pub(crate) fn owes(&self) -> bool {
        self.owed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The first exhausted `Block` budget covering `request`, as an error.
    pub(crate) fn check(&self, request: &RequestScope, now: i64, clock: &dyn Clock) -> Result<(), BudgetExceeded> {
        for slot in self.slots.iter() {
            if slot.budget.action != BudgetAction::Block || !slot.budget.scope.covers(request) {
                continue;
            }
            // A value whose calls go to `OTHER` (the accounts are full) is refused with it; one that has spent
            // nothing yet only by a zero limit.
            let Some((snap, member)) = self.read_for(slot, request, now, clock, slot.limit > 0) else { continue };
            if snap.spent >= slot.limit {
                return Err(BudgetExceeded::new(
                    slot.budget.name.clone(),
                    slot.scope_of(member.as_ref()),
                    slot.budget.period,
                    slot.amount(snap.spent),
                    slot.amount(slot.limit),
                    to_utc(snap.resets_at),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::budget::{Budget, BudgetLimit, BudgetPeriod};
    use crate::clock::ManualClock;
    use crate::record::TokenUsage;

    /// A daily budget of a million tokens, and the midnight the tests cross (2026-03-15, UTC).
    fn daily_tokens() -> (BudgetTracker, DateTime<Utc>) {
        let mut setup = BudgetSetup::default();
        setup.add(Budget::new("daily", BudgetLimit::tokens(1_000_000)).with_period(BudgetPeriod::Day));
        (setup.into_tracker(), Utc.with_ymd_and_hms(2026, 3, 15, 0, 0, 0).unwrap())
    }

    fn call_ending(at: DateTime<Utc>, input: u64) -> CallRecord {
        CallRecord {
            timestamp: at,
            model: Some("claude-haiku-4-5".into()),
            tokens: TokenUsage { input, ..TokenUsage::default() },
            metered: true,
            ..crate::journal::line::tests::bare()
        }
    }

    #[test]
    fn a_calendar_call_accounted_late_counts_in_the_period_it_ended_in() {
        // A call that ended at 23:50 accounted at 00:06 (its thread stalled): taken for a clock step back, it
        // re-opened yesterday with today's 9 in it, and the next call opened today again, empty. It is
        // yesterday's, as replay counts it.
        let (tracker, midnight) = daily_tokens();
        let clock = ManualClock::new(midnight - chrono::Duration::hours(1));
        tracker.on_call(&call_ending(midnight - chrono::Duration::hours(1), 4), "claude-haiku-4-5", &clock);
        clock.set(midnight + chrono::Duration::minutes(5));
        tracker.on_call(&call_ending(midnight + chrono::Duration::minutes(5), 9), "claude-haiku-4-5", &clock);
        clock.set(midnight + chrono::Duration::minutes(6));
        tracker.on_call(&call_ending(midnight - chrono::Duration::minutes(10), 1), "claude-haiku-4-5", &clock);
        tracker.on_call(&call_ending(midnight + chrono::Duration::minutes(6), 2), "claude-haiku-4-5", &clock);
        let status = tracker.status(to_nanos(midnight + chrono::Duration::minutes(7)), &clock);
        assert_eq!(status[0].spent, BudgetAmount::Tokens(11), "today's 9 and 2; the late call is yesterday's");
        assert_eq!(status[0].period_start, midnight);
        // Yesterday holds it: a clock that comes back there restores 4 + 1.
        clock.set(midnight - chrono::Duration::minutes(30));
        let status = tracker.status(to_nanos(midnight - chrono::Duration::minutes(30)), &clock);
        assert_eq!(status[0].spent, BudgetAmount::Tokens(5 + 11), "{:?}", status[0]);
    }

    #[test]
    fn a_read_stalled_past_the_periods_start_does_not_re_open_the_period_before() {
        // A status read took its time at 23:50 and stalled past midnight, where a call opened the new day.
        // Taken for a clock that came back, the day before was re-opened with the new day's spend, and the next
        // call left it there.
        let (tracker, midnight) = daily_tokens();
        let clock = ManualClock::new(midnight + chrono::Duration::minutes(5));
        tracker.on_call(&call_ending(midnight + chrono::Duration::minutes(5), 9), "claude-haiku-4-5", &clock);
        clock.set(midnight + chrono::Duration::minutes(6));
        let status = tracker.status(to_nanos(midnight - chrono::Duration::minutes(10)), &clock);
        assert_eq!(status[0].period_start, midnight, "{:?}", status[0]);
        tracker.on_call(&call_ending(midnight + chrono::Duration::minutes(7), 2), "claude-haiku-4-5", &clock);
        let status = tracker.status(to_nanos(midnight + chrono::Duration::minutes(8)), &clock);
        assert_eq!(status[0].spent, BudgetAmount::Tokens(11), "{:?}", status[0]);
        assert_eq!(status[0].period_start, midnight);
    }

    #[test]
    fn a_read_stalled_past_midnight_does_not_restore_the_day_before() {
        // A service running across midnight: yesterday is kept as the period before. A status read took its
        // time at 23:54 and stalled past 00:05, where a call opened today: taken for a clock that came back, it
        // restored yesterday with today's spend in it, and the next call left that spend in yesterday.
        let (tracker, midnight) = daily_tokens();
        let clock = ManualClock::new(midnight - chrono::Duration::hours(1));
        tracker.on_call(&call_ending(midnight - chrono::Duration::hours(1), 4), "claude-haiku-4-5", &clock);
        clock.set(midnight + chrono::Duration::minutes(5));
        tracker.on_call(&call_ending(midnight + chrono::Duration::minutes(5), 9), "claude-haiku-4-5", &clock);
        clock.set(midnight + chrono::Duration::minutes(6));
        let status = tracker.status(to_nanos(midnight - chrono::Duration::minutes(6)), &clock);
        assert_eq!(status[0].period_start, midnight, "{:?}", status[0]);
        tracker.on_call(&call_ending(midnight + chrono::Duration::minutes(7), 2), "claude-haiku-4-5", &clock);
        let status = tracker.status(to_nanos(midnight + chrono::Duration::minutes(8)), &clock);
        assert_eq!(status[0].spent, BudgetAmount::Tokens(11), "today's 9 and 2: {:?}", status[0]);
    }

    #[test]
    fn a_call_accounted_late_is_not_taken_for_a_clock_step_back() {
        // Thread A stamps its call's end at t, is preempted, and accounts it at t+3 s, after thread B's call that
        // ended at t+2.5 s. Judged against A's end, B's bucket was more than a bucket (a second, for a rolling
        // minute) ahead: taken for spend a clock stepped back from, it moved into A's bucket, and left the window
        // early. Against the clock's time nothing is ahead.
        let mut setup = BudgetSetup::default();
        setup.add(
            Budget::new("minute", BudgetLimit::tokens(1_000_000))
                .with_period(BudgetPeriod::Rolling(Duration::from_secs(60))),
        );
        let tracker = setup.into_tracker();
        let t = Utc.with_ymd_and_hms(2026, 3, 14, 10, 0, 0).unwrap();
        let clock = ManualClock::new(t + chrono::Duration::seconds(3));
        tracker.on_call(&call_ending(t + chrono::Duration::milliseconds(2_500), 100), "claude-haiku-4-5", &clock);
        tracker.on_call(&call_ending(t, 10), "claude-haiku-4-5", &clock);
        // 61.5 s on, the window's oldest second is t+1 s: A's call has left it, B's has not.
        let status = tracker.status(to_nanos(t + chrono::Duration::milliseconds(61_500)), &clock);
        assert_eq!(status[0].spent, BudgetAmount::Tokens(100), "{:?}", status[0]);
    }
}
