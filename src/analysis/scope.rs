//! Narrowing a report to some records: [`ReportFilter`] in, [`ReportScope`] out.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ledger::{Dimension, Filter, QueryError, Selection};

/// Which sessions belong to a filter, for the session breakdowns the ledger cannot narrow by itself.
type SessionMembership = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// What a report is narrowed to: equality filters of the query API's shapes (any of model, provider,
/// project, agent, operation, task and tenant together; or session or user alone; or project with session;
/// a tool is refused: its executions carry no tokens), for [`Ledger::efficiency_report_for`](crate::ledger::Ledger::efficiency_report_for) and
/// [`Ledger::cache_report_for`](crate::ledger::Ledger::cache_report_for).
///
/// The ledger keeps sessions apart from the compound dimensions, so it cannot tell which sessions belong
/// to a tenant (or agent, …) by itself: a report filtered that way and broken down by session needs
/// [`ReportFilter::with_sessions`] to say which sessions belong to the filter; without it the breakdown is
/// left empty and the report says why ([`ReportScope::notes`]).
///
/// ```
/// use tokenmeter::analysis::ReportFilter;
/// use tokenmeter::ledger::Dimension;
///
/// let acme = ReportFilter::tenant("acme");
/// let acme_helpdesk = ReportFilter::new().filter(Dimension::Tenant, "acme").filter(Dimension::Project, "helpdesk");
/// # let _ = (acme, acme_helpdesk);
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct ReportFilter {
    filters: Vec<Filter>,
    sessions: Option<SessionMembership>,
}

impl fmt::Debug for ReportFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportFilter")
            .field("filters", &self.filters)
            .field("sessions", &self.sessions.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

impl ReportFilter {
    /// No filter: the whole ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// The records of one tenant (`tenant.id`).
    pub fn tenant(tenant: impl Into<String>) -> Self {
        Self::new().filter(Dimension::Tenant, tenant)
    }

    /// Adds `dimension == value`.
    pub fn filter(mut self, dimension: Dimension, value: impl Into<String>) -> Self {
        self.filters.push(Filter::new(dimension, value));
        self
    }

    /// Says which sessions belong to the filtered records, for a breakdown by session the ledger cannot
    /// narrow by itself (a session's calls are all listed, whatever their other dimensions).
    ///
    /// The predicate runs while the report holds the ledger's lock, once per session in the window: it must not
    /// read this ledger or its meter (a query, report or budget status from it would wait on that lock forever).
    /// Recording calls from it is safe (recording never waits on that lock). Look the answer up in state of your
    /// own, as the HTTP API's `SessionTenants` (feature `http`) does.
    pub fn with_sessions(mut self, belongs: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.sessions = Some(Arc::new(belongs));
        self
    }

    /// The filters.
    pub fn filters(&self) -> &[Filter] {
        &self.filters
    }

    /// True without filters.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// The ledger selection of the filters; a tool filter is refused (its sums count tool executions, which
    /// carry no tokens, cost or cache reads: a report over them reads 100 and $0).
    pub(crate) fn selection(&self, prices: &crate::PriceBook) -> Result<Selection, QueryError> {
        match Selection::from_filters(&self.filters, prices)? {
            Selection::Tool(_) => Err(no_tool_reports()),
            sel => Ok(sel),
        }
    }

    /// True when [`ReportFilter::with_sessions`] was given.
    pub(crate) fn knows_sessions(&self) -> bool {
        self.sessions.is_some()
    }

    pub(crate) fn session_belongs(&self, session: &str) -> bool {
        self.sessions.as_ref().is_some_and(|f| f(session))
    }
}

/// How a filtered report was narrowed (present only in filtered reports).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportScope {
    /// The filters every figure of the report is narrowed to.
    pub filters: Vec<Filter>,
    /// Calls in the window the ledger holds in overflow entries (past a cardinality cap) with the filtered
    /// dimension folded to `(other)`: they may match the filters but are not counted. The figures are exact
    /// when this is 0.
    pub unattributed_calls: u64,
    /// The parts of the report that could not be narrowed exactly, and how they were handled.
    pub notes: Vec<String>,
}

/// The error of a token report narrowed to one tool.
pub(crate) fn no_tool_reports() -> QueryError {
    QueryError::Unsupported(
        "tool executions carry no tokens, cost or cache reads: narrow the report by session, model, project, \
         agent, operation, task or tenant"
            .into(),
    )
}
