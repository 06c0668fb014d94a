//! Two-level breakdown trees (agent > operation, project > session, …).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ledger::{Agg, Core, Dimension, Ledger, OTHER, QueryError, Selection, Window, WindowBounds, ratio};

/// One node of a breakdown tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeNode {
    /// The dimension value.
    pub name: String,
    /// Calls.
    pub calls: u64,
    /// Tasks.
    pub tasks: u64,
    /// Billed tokens.
    pub tokens: u64,
    /// USD, of the priced calls.
    pub cost_usd: f64,
    /// Metered calls with no price: not in `cost_usd`.
    #[serde(default)]
    pub unpriced_calls: u64,
    /// Share of the whole window's cost, 0-1.
    pub cost_share: f64,
    /// Share of the whole window's tokens, 0-1.
    pub token_share: f64,
    /// Share of the parent's cost, 0-1 (1 for top-level nodes; of the parent's calls when the parent has no
    /// priced cost, and of its tasks when it has no calls either, so that children still add up to 1).
    pub share_of_parent: f64,
    /// Child nodes, most expensive first (empty for leaves).
    pub children: Vec<TreeNode>,
}

/// A two-level breakdown of the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakdownTree {
    /// The window.
    pub window: WindowBounds,
    /// The top level's dimension.
    pub parent: Dimension,
    /// The second level's dimension.
    pub child: Dimension,
    /// Calls in the window.
    pub calls: u64,
    /// Tokens in the window.
    pub tokens: u64,
    /// USD in the window.
    pub cost_usd: f64,
    /// Top-level nodes, most expensive first.
    pub nodes: Vec<TreeNode>,
}

fn node(name: String, c: &Core, total: &Core, parent: Option<&Core>, children: Vec<TreeNode>) -> TreeNode {
    let share_of_parent = match parent {
        None => 1.0,
        Some(p) if p.cost.picos() > 0 => c.cost.picos() as f64 / p.cost.picos() as f64,
        Some(p) if p.calls > 0 => ratio(c.calls as f64, p.calls as f64),
        Some(p) => ratio(c.tasks as f64, p.tasks as f64),
    };
    TreeNode {
        name,
        calls: c.calls,
        tasks: c.tasks,
        tokens: c.tokens.total(),
        cost_usd: c.cost.as_usd(),
        unpriced_calls: c.unpriced_calls,
        cost_share: ratio(c.cost.picos() as f64, total.cost.picos() as f64),
        token_share: ratio(c.tokens.total() as f64, total.tokens.total() as f64),
        share_of_parent,
        children,
    }
}

fn order(a: &TreeNode, b: &TreeNode) -> std::cmp::Ordering {
    b.cost_usd.total_cmp(&a.cost_usd).then(b.calls.cmp(&a.calls)).then(a.name.cmp(&b.name))
}

impl Ledger {
    /// A `parent > child` breakdown over `window`: any two of model, provider, project, agent, operation,
    /// task and tenant, or project > session. A `FROM..TO` window is widened to the edges of the buckets its
    /// bounds fall in ([`Ledger::aligned`]), as the tree's `window` says.
    pub fn breakdown_tree(
        &self,
        window: Window,
        parent: Dimension,
        child: Dimension,
    ) -> Result<BreakdownTree, QueryError> {
        let pair_ok = parent != child
            && ((parent.is_compound() && child.is_compound())
                || (parent, child) == (Dimension::Project, Dimension::Session));
        if !pair_ok {
            return Err(QueryError::Unsupported(format!(
                "no {parent} > {child} tree: use two different dimensions among model, provider, project, agent, \
                 operation, task and tenant, or project > session"
            )));
        }
        self.read(|store, now| {
            let (from, to) = window.aligned_bounds(store, now)?;
            let total = Selection::All.total(store, from, to);
            let mut groups: BTreeMap<String, BTreeMap<String, Agg>> = BTreeMap::new();
            // Project > session: the (project, session) pairs hold only the calls that have a session; each
            // project's sums in the series, beyond its pairs, give the rest: a `(none)` session. Past the series
            // cap a project's calls fold into the `(other)` project of the series while its pairs keep them, so
            // the rests are taken bucket by bucket (where pairs and series hold the same calls), as
            // `Selection::total_for` does: a project's rest is at most what its series hold beyond its pairs,
            // and the `(other)` project's is what is left of the bucket's calls, so that the tree adds up to the
            // total.
            let mut rests: BTreeMap<String, Agg> = BTreeMap::new();
            let mut sessionless = Agg::default();
            for b in store.buckets(from, to) {
                if child == Dimension::Session {
                    let (mut pairs, mut all_pairs) = (BTreeMap::<String, Agg>::new(), Agg::default());
                    for e in b.project_sessions.values() {
                        let project = parent.label(e.project.as_deref());
                        let kids = groups.entry(project.clone()).or_default();
                        kids.entry(e.session.to_string()).or_default().merge(&e.agg);
                        pairs.entry(project).or_default().merge(&e.agg);
                        all_pairs.merge(&e.agg);
                    }
                    let mut wholes: BTreeMap<String, Agg> = BTreeMap::new();
                    for s in b.series.values() {
                        wholes.entry(parent.label(parent.of_key(&s.key))).or_default().merge(&s.agg);
                    }
                    wholes.remove(OTHER);
                    let mut left = b.totals.less(&all_pairs);
                    for (project, whole) in wholes {
                        let rest = pairs.get(&project).map_or_else(|| whole.clone(), |p| whole.less(p));
                        left = left.less(&rest);
                        rests.entry(project).or_default().merge(&rest);
                    }
                    sessionless.merge(&left);
                } else {
                    for s in b.series.values() {
                        groups
                            .entry(parent.label(parent.of_key(&s.key)))
                            .or_default()
                            .entry(child.label(child.of_key(&s.key)))
                            .or_default()
                            .merge(&s.agg);
                    }
                }
            }
            if child == Dimension::Session {
                for (project, rest) in rests {
                    if rest.core.calls > 0 || rest.core.tasks > 0 {
                        // Beside a session named `(none)` (the `(other)` project's row too): one row, as other
                        // groupings read them; inserted, the rest replaced that session's calls.
                        groups
                            .entry(project)
                            .or_default()
                            .entry(child.none_label().to_owned())
                            .or_default()
                            .merge(&rest);
                    } else {
                        // Tokens without a call (a fold within one bucket left them): not a row of their own,
                        // but still in the total.
                        sessionless.merge(&rest);
                    }
                }
                if sessionless.core.calls > 0 || sessionless.core.tasks > 0 {
                    let other = groups.entry(OTHER.to_owned()).or_default();
                    other.entry(child.none_label().to_owned()).or_default().merge(&sessionless);
                }
            }
            // A task has no model or provider: a task-only row of those would be a made-up `unknown` one (the
            // query leaves such rows out the same way); its tasks stay counted in the node above it.
            let taskless = |d: Dimension| matches!(d, Dimension::Model | Dimension::Provider);
            let (parent_taskless, child_taskless) = (taskless(parent), taskless(child));
            let tc = &total.core;
            let mut nodes: Vec<TreeNode> = groups
                .into_iter()
                .filter_map(|(name, kids)| {
                    let mut sum = Agg::default();
                    for a in kids.values() {
                        sum.merge(a);
                    }
                    if sum.core.calls == 0 && (parent_taskless || sum.core.tasks == 0) {
                        return None;
                    }
                    let mut children: Vec<TreeNode> = kids
                        .into_iter()
                        .filter(|(_, a)| a.core.calls > 0 || (!child_taskless && a.core.tasks > 0))
                        .map(|(k, a)| node(k, &a.core, tc, Some(&sum.core), Vec::new()))
                        .collect();
                    children.sort_by(order);
                    Some(node(name, &sum.core, tc, None, children))
                })
                .collect();
            nodes.sort_by(order);
            Ok(BreakdownTree {
                window: WindowBounds::of(from, to),
                parent,
                child,
                calls: tc.calls,
                tokens: tc.tokens.total(),
                cost_usd: tc.cost.as_usd(),
                nodes,
            })
        })
    }
}
