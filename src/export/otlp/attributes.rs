//! [`MetricAttributes`]: which attribution dimensions go on exported metrics, and the caps that keep the number
//! of series bounded.

use std::sync::Arc;

use opentelemetry::Key;

use crate::record::Dimensions;

/// The default cap on attribute sets per metric (see [`MetricAttributes::with_max_series`]).
pub const DEFAULT_MAX_SERIES: usize = 500;
/// The largest cap [`MetricAttributes::with_max_series`] accepts: below the OpenTelemetry SDK's own default
/// limit of 2000 attribute sets per instrument even for `gen_ai.client.token.usage`, which doubles every set.
pub const MAX_SERIES_LIMIT: usize = 999;
/// The default cap on an attribute value's length, in bytes.
pub const DEFAULT_MAX_VALUE_LEN: usize = 128;
/// The most dimensions [`MetricAttributes`] takes beyond the defaults.
pub const MAX_METRIC_DIMENSIONS: usize = 8;

/// An attribution dimension that may be put on metrics. None is by default: session and user ids in particular
/// multiply the number of series, so they are opt-in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetricDimension {
    /// The agent (`gen_ai.agent.name` or `agent`), exported as `gen_ai.agent.name`.
    Agent,
    /// `project`, exported as `project`.
    Project,
    /// `tenant.id`, exported as `tenant.id`.
    Tenant,
    /// `user.id` or `enduser.id`, exported as `user.id`.
    User,
    /// `session.id` or `gen_ai.conversation.id`, exported as `session.id`.
    Session,
    /// The application's own `operation`, exported as `operation`.
    Operation,
    /// The enclosing task's name, exported as `task` (tasks carry it anyway).
    Task,
    /// A user-named dimension (see [`TokenMeterBuilder::with_dimension`](crate::TokenMeterBuilder::with_dimension)),
    /// exported under its own name.
    Custom(Arc<str>),
}

impl MetricDimension {
    /// The attribute key it is exported under.
    pub fn attribute_key(&self) -> Key {
        match self {
            MetricDimension::Agent => Key::from_static_str("gen_ai.agent.name"),
            MetricDimension::Project => Key::from_static_str("project"),
            MetricDimension::Tenant => Key::from_static_str("tenant.id"),
            MetricDimension::User => Key::from_static_str("user.id"),
            MetricDimension::Session => Key::from_static_str("session.id"),
            MetricDimension::Operation => Key::from_static_str("operation"),
            MetricDimension::Task => Key::from_static_str("task"),
            MetricDimension::Custom(name) => Key::from(Arc::clone(name)),
        }
    }

    /// Its value in a record's dimensions.
    pub(crate) fn value<'a>(&self, d: &'a Dimensions) -> Option<&'a str> {
        match self {
            MetricDimension::Agent => d.agent.as_deref(),
            MetricDimension::Project => d.project.as_deref(),
            MetricDimension::Tenant => d.tenant.as_deref(),
            MetricDimension::User => d.user.as_deref(),
            MetricDimension::Session => d.session.as_deref(),
            MetricDimension::Operation => d.operation.as_deref(),
            MetricDimension::Task => d.task.as_deref(),
            MetricDimension::Custom(name) => d.extra.iter().find(|(k, _)| k == name).map(|(_, v)| &**v),
        }
    }
}

/// Which attributes tokenmeter's metrics carry, and the caps that bound them.
///
/// By default call metrics carry `gen_ai.request.model`, `gen_ai.provider.name`, `gen_ai.operation.name`,
/// `error.type` and `tokenmeter.outcome`; dimensions are added only when asked for here. Every metric keeps at most
/// [`max_series`](Self::with_max_series) attribute sets; further sets are counted in one overflow series with
/// the single attribute `otel.metric.overflow = true` (the OpenTelemetry SDK's convention), so totals stay
/// exact while memory stays bounded. Attribute values longer than
/// [`max_value_len`](Self::with_max_value_len) bytes are cut at a character boundary.
///
/// ```
/// use tokenmeter::export::otlp::MetricAttributes;
///
/// let attrs = MetricAttributes::new().with_agent().with_project().with_max_series(200);
/// assert_eq!(attrs.max_series(), 200);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct MetricAttributes {
    dimensions: Vec<MetricDimension>,
    max_series: usize,
    max_value_len: usize,
    /// The first dimension asked for past [`MAX_METRIC_DIMENSIONS`], for the meter's builder to refuse.
    past_cap: Option<MetricDimension>,
}

impl Default for MetricAttributes {
    fn default() -> Self {
        MetricAttributes {
            dimensions: Vec::new(),
            max_series: DEFAULT_MAX_SERIES,
            max_value_len: DEFAULT_MAX_VALUE_LEN,
            past_cap: None,
        }
    }
}

impl MetricAttributes {
    /// The defaults: no dimensions, [`DEFAULT_MAX_SERIES`], [`DEFAULT_MAX_VALUE_LEN`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a dimension to every call, task and tool metric; repeats are ignored. A [`MetricDimension::Custom`]
    /// naming a built-in dimension or the span field that fills one (`tenant`, `tenant.id`) is that built-in
    /// dimension, and one naming a model field adds nothing (every metric carries the model). A custom dimension
    /// must be one of the meter's extra dimensions, and at most [`MAX_METRIC_DIMENSIONS`] are taken:
    /// [`TokenMeterBuilder::try_build`](crate::TokenMeterBuilder::try_build) refuses others, which would never be
    /// exported.
    pub fn with_dimension(mut self, dimension: MetricDimension) -> Self {
        let dimension = match dimension {
            MetricDimension::Custom(name) => match named(&name) {
                Named::Builtin(builtin) => builtin,
                Named::Model | Named::Nothing => return self,
                Named::Custom => MetricDimension::Custom(name),
            },
            builtin => builtin,
        };
        if self.dimensions.contains(&dimension) {
            return self;
        }
        if self.dimensions.len() < MAX_METRIC_DIMENSIONS {
            self.dimensions.push(dimension);
        } else if self.past_cap.is_none() {
            self.past_cap = Some(dimension);
        }
        self
    }

    /// Adds the agent ([`MetricDimension::Agent`]).
    pub fn with_agent(self) -> Self {
        self.with_dimension(MetricDimension::Agent)
    }

    /// Adds the project ([`MetricDimension::Project`]).
    pub fn with_project(self) -> Self {
        self.with_dimension(MetricDimension::Project)
    }

    /// Adds the tenant ([`MetricDimension::Tenant`]).
    pub fn with_tenant(self) -> Self {
        self.with_dimension(MetricDimension::Tenant)
    }

    /// Adds the user id ([`MetricDimension::User`]): one series per user, up to the cap.
    pub fn with_user(self) -> Self {
        self.with_dimension(MetricDimension::User)
    }

    /// Adds the session id ([`MetricDimension::Session`]): one series per session, up to the cap. Rarely a good
    /// idea for a long-running service; the in-process reports answer per-session questions without it.
    pub fn with_session(self) -> Self {
        self.with_dimension(MetricDimension::Session)
    }

    /// Adds a dimension by name: one of the meter's extra dimensions (as given to
    /// [`TokenMeterBuilder::with_dimension`](crate::TokenMeterBuilder::with_dimension)), or a built-in one
    /// (`agent`, `project`, `tenant`, `user`, `session`, `operation`, `task`, or the span field that fills it:
    /// `tenant.id`, `gen_ai.agent.name`, …). See [`with_dimension`](Self::with_dimension).
    pub fn with_named_dimension(self, name: &str) -> Self {
        self.with_dimension(MetricDimension::Custom(Arc::from(name)))
    }

    /// Caps the attribute sets of each metric (default [`DEFAULT_MAX_SERIES`], at most [`MAX_SERIES_LIMIT`], at
    /// least 1). Sets beyond the cap share one overflow series.
    pub fn with_max_series(mut self, n: usize) -> Self {
        self.max_series = n.clamp(1, MAX_SERIES_LIMIT);
        self
    }

    /// Caps attribute values at `bytes` (default [`DEFAULT_MAX_VALUE_LEN`], at least 8).
    pub fn with_max_value_len(mut self, bytes: usize) -> Self {
        self.max_value_len = bytes.max(8);
        self
    }

    /// The dimensions added to the defaults, in order.
    pub fn dimensions(&self) -> &[MetricDimension] {
        &self.dimensions
    }

    /// The cap on attribute sets per metric.
    pub fn max_series(&self) -> usize {
        self.max_series
    }

    /// The cap on attribute value length, in bytes.
    pub fn max_value_len(&self) -> usize {
        self.max_value_len
    }

    /// The first dimension asked for past [`MAX_METRIC_DIMENSIONS`].
    pub(crate) fn past_cap(&self) -> Option<&MetricDimension> {
        self.past_cap.as_ref()
    }

    /// Leaves out the dimension of attribute key `key` (and forgets one past the cap of that key). Whether it
    /// was there.
    pub(crate) fn remove(&mut self, key: &str) -> bool {
        let before = self.dimensions.len();
        self.dimensions.retain(|d| d.attribute_key().as_str() != key);
        let past = self.past_cap.take_if(|d| d.attribute_key().as_str() == key).is_some();
        before != self.dimensions.len() || past
    }
}

/// What a dimension's name means on metrics.
enum Named {
    Builtin(MetricDimension),
    Model,
    Nothing,
    Custom,
}

/// `tenant` and `tenant.id` are the tenant; `gen_ai.request.model` is the model, on every metric already.
fn named(name: &str) -> Named {
    use crate::capture::fields::{Dim, DimensionName, dimension_name};
    if name.is_empty() {
        return Named::Nothing;
    }
    match dimension_name(name) {
        DimensionName::Model => Named::Model,
        DimensionName::Other => Named::Custom,
        DimensionName::Builtin(d) => Named::Builtin(match d {
            Dim::Agent => MetricDimension::Agent,
            Dim::Project => MetricDimension::Project,
            Dim::Tenant => MetricDimension::Tenant,
            Dim::User => MetricDimension::User,
            Dim::Session => MetricDimension::Session,
            Dim::Operation => MetricDimension::Operation,
            Dim::Task => MetricDimension::Task,
        }),
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_cuts_at_char_boundaries() {
        assert_eq!(truncate("claude-sonnet-4-5", 64), "claude-sonnet-4-5");
        assert_eq!(truncate("abcdef", 3), "abc");
        assert_eq!(truncate("ééé", 3), "é");
        assert_eq!(truncate("ééé", 4), "éé");
    }

    #[test]
    fn builder_caps_and_dedups() {
        let a = MetricAttributes::new().with_agent().with_agent().with_named_dimension("team").with_max_series(0);
        assert_eq!(a.dimensions(), &[MetricDimension::Agent, MetricDimension::Custom(Arc::from("team"))]);
        assert_eq!(a.max_series(), 1);
        assert_eq!(MetricAttributes::new().with_max_series(1_000_000).max_series(), MAX_SERIES_LIMIT);
        let mut many = MetricAttributes::new();
        for i in 0..20 {
            many = many.with_named_dimension(&format!("d{i}"));
        }
        assert_eq!(many.dimensions().len(), MAX_METRIC_DIMENSIONS);
    }
}
