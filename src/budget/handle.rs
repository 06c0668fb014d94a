//! Budget methods on the builder and the handle.

use std::future::Future;
use std::path::Path;

use super::alert::BudgetAlert;
use super::period::to_nanos;
use super::{AlertStats, Budget, BudgetError, BudgetExceeded, BudgetState, RequestScope, load_budgets_file};
use crate::meter::{TokenMeter, TokenMeterBuilder};

// === impl TokenMeterBuilder ===

impl TokenMeterBuilder {
    /// Adds a budget (replacing an earlier one of the same name). See [`crate::budget`].
    pub fn with_budget(mut self, budget: Budget) -> Self {
        self.budget_setup.add(budget);
        self
    }

    /// Adds the budgets of a TOML file (format in [`crate::budget`]). A bad file is an error that names the
    /// file, the line and the field.
    pub fn with_budgets_file(mut self, path: impl AsRef<Path>) -> Result<Self, BudgetError> {
        for budget in load_budgets_file(path)? {
            self.budget_setup.add(budget);
        }
        Ok(self)
    }

    /// Calls `f` with every budget alert, on the thread that recorded the call that caused it (so `f` must be
    /// quick; a panic in it is caught and counted in [`AlertStats::callback_panics`]).
    pub fn with_budget_alert_callback(mut self, f: impl Fn(&BudgetAlert) + Send + Sync + 'static) -> Self {
        self.budget_setup.callbacks.push(Box::new(f));
        self
    }

    /// POSTs every budget alert to a webhook, from a delivery thread (see [`WebhookConfig`](super::WebhookConfig)).
    #[cfg(feature = "webhook")]
    pub fn with_webhook(mut self, webhook: super::WebhookConfig) -> Self {
        self.budget_setup.webhook = Some(webhook);
        self
    }
}

// === impl TokenMeter ===

impl TokenMeter {
    /// Delivers the alerts a restart left owed, if any, and returns the time after their callbacks ran (they may
    /// take minutes: a call of their own). A time read before them, once behind a period another call began
    /// meanwhile, read as a clock that stepped back: the period before was re-opened, and the spend counted in the
    /// new one left it when the next call came.
    fn now_after_owed_alerts(&self) -> i64 {
        let now = to_nanos(self.inner.clock.now());
        if !self.inner.budgets.owes() {
            return now;
        }
        self.inner.deliver_owed_alerts(now);
        to_nanos(self.inner.clock.now())
    }

    /// `scope` as the budgets compare it: values written with `RequestScope::with_*` cut and filtered as capture
    /// records them ([`RequestScope::as_recorded`]).
    fn as_recorded<'s>(&self, scope: &'s RequestScope) -> std::borrow::Cow<'s, RequestScope> {
        scope.as_recorded(|name, value| self.inner.as_recorded(name, value))
    }

    /// Every budget's state now, in the order the budgets were added. A budget of each value of a dimension
    /// ([`BudgetScope::Each`](crate::budget::BudgetScope::Each), `user=*`) gives one state per value with calls in
    /// its current period, ordered by value, each with [`BudgetState::member`] set; none before its first call.
    pub fn budget_status(&self) -> Vec<BudgetState> {
        let now = self.now_after_owed_alerts();
        let states = self.inner.budgets.status(now, &*self.inner.clock);
        if !self.inner.budgets.owes() {
            return states;
        }
        // The read re-opened a period the clock came back into: its alerts, then the states they changed.
        self.inner.deliver_owed_alerts(now);
        self.inner.budgets.status(now, &*self.inner.clock)
    }

    /// [`budget_status`](Self::budget_status) without delivering the alerts a restart left owed: for the OTLP
    /// exporter's thread, where the application's callbacks must not run (they run on the application's threads:
    /// its next call, budget check or status read).
    #[cfg(feature = "otlp")]
    pub(crate) fn budget_status_leaving_owed_alerts(&self) -> Vec<BudgetState> {
        self.inner.budgets.status(to_nanos(self.inner.clock.now()), &*self.inner.clock)
    }

    /// The states of the budgets `take` takes (the others' accounts are not read), without delivering the alerts a
    /// restart left owed: for the HTTP server's threads, where the application's callbacks must not run.
    #[cfg(feature = "http")]
    pub(crate) fn budget_status_where_leaving_owed_alerts(
        &self,
        take: impl Fn(&super::Budget) -> bool,
    ) -> Vec<BudgetState> {
        self.inner.budgets.status_where(take, to_nanos(self.inner.clock.now()), &*self.inner.clock)
    }

    /// The budgets' names and scopes, in the order they were added.
    #[cfg(feature = "http")]
    pub(crate) fn budget_scopes(&self) -> Vec<(std::sync::Arc<str>, super::BudgetScope)> {
        self.inner.budgets.budgets().map(|b| (b.name.clone(), b.scope.clone())).collect()
    }

    /// Checks a request about to be made against the `Block` budgets that cover its scope: an error names
    /// the first exhausted one (its spend, limit and reset time). `Warn` budgets never refuse.
    ///
    /// ```
    /// use tokenmeter::budget::{Budget, BudgetAction, BudgetLimit, RequestScope};
    ///
    /// let meter = tokenmeter::TokenMeter::builder()
    ///     .with_budget(Budget::new("freeze", BudgetLimit::tokens(0)).with_action(BudgetAction::Block))
    ///     .build();
    /// let err = meter.check_budget(&RequestScope::new()).unwrap_err();
    /// assert_eq!(err.budget(), "freeze");
    /// ```
    pub fn check_budget(&self, scope: &RequestScope) -> Result<(), BudgetExceeded> {
        let now = self.now_after_owed_alerts();
        let checked = self.inner.budgets.check(&self.as_recorded(scope), now, &*self.inner.clock);
        // The check re-opened a period the clock came back into: the alerts its spend reached.
        self.inner.deliver_owed_alerts(now);
        checked
    }

    /// Runs `call` only if [`check_budget`](Self::check_budget) allows a request of `scope`; otherwise
    /// returns its error without polling `call`. Works with any async runtime.
    ///
    /// A refused `call` is dropped unpolled, and a call span it owns (made before the check, as
    /// `client.send(req).instrument(span)` does) closes then, or later if the caller holds a clone: it is not
    /// counted as a call (nothing was sent), only in
    /// [`CaptureStats::unsent_calls`](crate::CaptureStats::unsent_calls). A task or tool span it owns is not
    /// counted either.
    ///
    /// ```
    /// # async fn example(meter: tokenmeter::TokenMeter) -> Result<(), Box<dyn std::error::Error>> {
    /// use tokenmeter::budget::RequestScope;
    ///
    /// let scope = RequestScope::new().with_tenant("acme").with_model("claude-sonnet-4-5");
    /// let answer = meter.guard(&scope, async { "call the API here" }).await?;
    /// # let _ = answer; Ok(()) }
    /// ```
    pub async fn guard<F: Future>(&self, scope: &RequestScope, call: F) -> Result<F::Output, BudgetExceeded> {
        if let Err(refused) = self.check_budget(scope) {
            crate::capture::drop_unsent(call);
            return Err(refused);
        }
        Ok(call.await)
    }

    /// [`budget_status_for`](Self::budget_status_for) without delivering the alerts a restart left owed (see
    /// [`budget_status_leaving_owed_alerts`](Self::budget_status_leaving_owed_alerts)).
    #[cfg(feature = "http")]
    pub(crate) fn budget_status_for_leaving_owed_alerts(&self, scope: &RequestScope) -> Vec<BudgetState> {
        self.inner.budgets.status_for(&self.as_recorded(scope), to_nanos(self.inner.clock.now()), &*self.inner.clock)
    }

    /// The states of the budgets a request of this scope falls under, in the order the budgets were added: what
    /// [`check_budget`](Self::check_budget) reads, for telling a user what is left (`$3.20 of your $5 today`)
    /// without listing every budget. Of a budget of each value of a dimension
    /// ([`BudgetScope::Each`](crate::budget::BudgetScope::Each)), the request's value's state, with nothing spent
    /// when that value has not spent in the period; a budget whose dimension the request does not name is left
    /// out, as `check_budget` leaves it.
    pub fn budget_status_for(&self, scope: &RequestScope) -> Vec<BudgetState> {
        let now = self.now_after_owed_alerts();
        let scope = &*self.as_recorded(scope);
        let states = self.inner.budgets.status_for(scope, now, &*self.inner.clock);
        if !self.inner.budgets.owes() {
            return states;
        }
        self.inner.deliver_owed_alerts(now);
        self.inner.budgets.status_for(scope, now, &*self.inner.clock)
    }

    /// For each budget of each value of a dimension that found its accounts full
    /// ([`Budget::with_max_members`](crate::budget::Budget::with_max_members)): its name and how many calls were
    /// counted in its `(other)` account (replayed ones too), where the values it had no room for share one limit.
    /// Empty when none was full.
    pub fn budget_members_overflow(&self) -> Vec<(std::sync::Arc<str>, u64)> {
        self.inner.budgets.members_overflow()
    }

    /// Alert counters: alerts fired, callback panics, webhook delivery.
    pub fn alert_stats(&self) -> AlertStats {
        self.inner.budgets.alerts.stats()
    }

    /// Waits until every alert queued for the webhook is delivered or given up (retries included), at most
    /// `timeout`; true when none is left (at once without a webhook). Call it before the process exits: the
    /// delivery thread does not hold the process open, and the journal marks an alert as delivered when it
    /// fires, so an alert lost at exit is not sent again after a restart. Blocks the calling thread (never
    /// call it from a record sink or alert callback). On the delivery thread itself (a subscriber reacting to
    /// its warning) it does not wait: nothing is delivered while that thread waits.
    #[cfg(feature = "webhook")]
    #[must_use = "false means alerts were still queued when the wait ended"]
    pub fn flush_webhook(&self, timeout: std::time::Duration) -> bool {
        self.inner.budgets.alerts.flush_webhook(timeout)
    }
}
