//! The token-efficiency report: the score, per-group scores, priced suggestions.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::per;
use super::scope::{ReportFilter, ReportScope};
use crate::ledger::{Agg, Dimension, Ledger, OTHER, QueryError, Selection, Window, WindowBounds};
use crate::pricing::Money;

/// How the note on sessions past the ledger's session cap begins (the count after it spans every filter value).
pub(crate) const PAST_SESSION_CAP_NOTE: &str = "breakdowns by session, sessions past the cap";

/// Most rows in [`EfficiencyReport::breakdowns`] (the most expensive first).
pub const MAX_BREAKDOWN_ROWS: usize = 100;

/// Weights of the score's components (they sum to 100).
const W_CACHE_REUSE: f64 = 40.0;
const W_WASTE: f64 = 25.0;
const W_RIGHT_SIZING: f64 = 20.0;
const W_WRITE_USE: f64 = 15.0;

/// Traffic-light band of a score: green at 80 and above, amber from 50, red below 50.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// 80 and above.
    Green,
    /// 50 to 79.9.
    Amber,
    /// Below 50.
    Red,
}

impl Band {
    /// The band of a score.
    pub fn of(score: f64) -> Band {
        if score >= 80.0 {
            Band::Green
        } else if score >= 50.0 {
            Band::Amber
        } else {
            Band::Red
        }
    }

    /// The snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            Band::Green => "green",
            Band::Amber => "amber",
            Band::Red => "red",
        }
    }

    /// The ANSI SGR colour code for terminals (32 green, 33 yellow, 31 red).
    pub const fn ansi_code(self) -> u8 {
        match self {
            Band::Green => 32,
            Band::Amber => 33,
            Band::Red => 31,
        }
    }
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One weighted component of the score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreComponent {
    /// `cache_reuse`, `waste`, `right_sizing` or `cache_write_use`.
    pub name: String,
    /// The component's value, 0-1 (1 is best).
    pub value: f64,
    /// Its weight in the overall score (the weights sum to 100).
    pub weight: f64,
    /// `value × weight`: its points in the overall score.
    pub points: f64,
}

/// The efficiency scores of a set of calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EfficiencyScores {
    /// 0-100, one decimal. A window without metered calls has nothing to score and reads 100 (every
    /// component perfect): check [`EfficiencyReport::calls`] before showing it (the CLI shows `-`, the OTLP
    /// gauges leave such windows out).
    pub overall: f64,
    /// The overall score's band.
    pub band: Band,
    /// Tokens of the window's tasks per task; `null` without tasks.
    pub tokens_per_task: Option<f64>,
    /// Cache reads over all prompt tokens (uncached input, cache reads and writes), 0-1.
    pub cache_hit_rate: f64,
    /// Prompt tokens per output token; `null` without output.
    pub input_output_ratio: Option<f64>,
    /// Of the prompt tokens that repeated the previous turn of their session on the same model (when at least
    /// the model's minimum cacheable prompt, or read from the cache), the share read from the
    /// cache, 0-1 (1 when nothing was reusable: check [`reusable_tokens`](Self::reusable_tokens) before showing
    /// it as a measured rate).
    pub context_reuse_rate: f64,
    /// The prompt tokens that repeated the previous turn of their session (the rate's denominator): 0 when
    /// nothing was reusable. Absent (0) in reports written before it was added.
    #[serde(default)]
    pub reusable_tokens: u64,
    /// The weighted components.
    pub components: Vec<ScoreComponent>,
}

fn share(part: Money, whole: Money) -> f64 {
    if whole.is_zero() { 0.0 } else { (part.picos() as f64 / whole.picos() as f64).min(1.0) }
}

impl EfficiencyScores {
    pub(crate) fn of(a: &Agg) -> Self {
        let c = &a.core;
        let o = a.opportunities();
        let prompt = c.tokens.prompt_total();
        let reuse =
            if c.reusable_tokens == 0 { 1.0 } else { (c.reused_tokens as f64 / c.reusable_tokens as f64).min(1.0) };
        let waste = 1.0 - share(c.failed_cost.max(c.failed_task_cost), c.cost);
        let right = 1.0 - share(o.small_premium_cost, c.cost);
        let written = c.tokens.cache_write();
        let write_use = if written == 0 { 1.0 } else { 1.0 - (o.unread_write_tokens as f64 / written as f64).min(1.0) };
        let components: Vec<ScoreComponent> = [
            ("cache_reuse", reuse, W_CACHE_REUSE),
            ("waste", waste, W_WASTE),
            ("right_sizing", right, W_RIGHT_SIZING),
            ("cache_write_use", write_use, W_WRITE_USE),
        ]
        .into_iter()
        .map(|(name, value, weight)| ScoreComponent { name: name.into(), value, weight, points: value * weight })
        .collect();
        let overall = (components.iter().map(|c| c.points).sum::<f64>() * 10.0).round() / 10.0;
        EfficiencyScores {
            overall,
            band: Band::of(overall),
            tokens_per_task: per(c.task_tokens as f64, c.tasks as f64),
            cache_hit_rate: per(c.tokens.cache_read as f64, prompt as f64).unwrap_or(0.0),
            input_output_ratio: per(prompt as f64, c.tokens.output as f64),
            context_reuse_rate: reuse,
            reusable_tokens: c.reusable_tokens,
            components,
        }
    }
}

/// One group's tokens and score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EfficiencyBreakdown {
    /// The group's value (a session id, project, model, agent or operation).
    pub category: String,
    /// Calls.
    pub calls: u64,
    /// Calls that reported usage. A row without any (its calls failed, or were cut off before usage came) has
    /// nothing to score: its `efficiency_score` of 100 is a placeholder, to be shown as no score.
    /// Absent (0) in reports written before it was added.
    #[serde(default)]
    pub metered_calls: u64,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache-write tokens (both lifetimes).
    pub cache_creation_tokens: u64,
    /// Cache-read tokens.
    pub cache_read_tokens: u64,
    /// Every billed token.
    pub total_tokens: u64,
    /// Cost in USD, of the priced calls.
    pub cost_usd: f64,
    /// The same, exact, in pico-USD (absent, 0, in reports written before it was added).
    #[serde(default)]
    pub cost_picos: Money,
    /// Metered calls of a model the price book does not know: their tokens count above, their cost is not in
    /// `cost_usd` (never guessed).
    pub unpriced_calls: u64,
    /// The group's overall score, 0-100.
    pub efficiency_score: f64,
    /// Its band.
    pub band: Band,
}

/// What a suggestion is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SuggestionType {
    /// Cache the growing prompt of multi-turn sessions.
    PromptCaching,
    /// Send small calls to a smaller model.
    ModelRightSizing,
    /// Use the batch API for non-interactive calls.
    BatchApi,
    /// Stop writing cache entries that are never read.
    UnreadCacheWrites,
    /// Trim prompts just over the model's long-context line (200k; 100k on Haiku 5.5).
    LongContextThreshold,
    /// Stop paying for failed and retried calls.
    FailedCalls,
}

/// How much a suggestion matters, by its saving's share of the window's spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    /// Under 2% of spend.
    Low,
    /// 2% to 10%.
    Medium,
    /// 10% or more.
    High,
}

impl Impact {
    fn of(share: f64) -> Impact {
        if share >= 0.10 {
            Impact::High
        } else if share >= 0.02 {
            Impact::Medium
        } else {
            Impact::Low
        }
    }
}

/// One priced optimization suggestion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// What it is about.
    #[serde(rename = "type")]
    pub kind: SuggestionType,
    /// Dollars it would have saved over the window.
    pub potential_savings: f64,
    /// The same, exact, in pico-USD.
    pub potential_savings_picos: Money,
    /// What to do and why, with the figures.
    pub description: String,
    /// By share of spend.
    pub impact: Impact,
    /// The saving's share of the window's spend, 0-1.
    pub share_of_spend: f64,
    /// Calls concerned.
    pub calls: u64,
    /// Tokens concerned.
    pub tokens: u64,
}

/// The token-efficiency report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EfficiencyReport {
    /// The window.
    pub window: WindowBounds,
    /// What `breakdowns` groups by.
    pub group_by: Dimension,
    /// Calls in the window.
    pub calls: u64,
    /// Spend in the window, USD, of the priced calls.
    pub cost_usd: f64,
    /// The same, exact, in pico-USD (absent, 0, in reports written before it was added).
    #[serde(default)]
    pub cost_picos: Money,
    /// Metered calls in the window with no price: not in `cost_usd`.
    pub unpriced_calls: u64,
    /// The scores of the whole window.
    pub efficiency_scores: EfficiencyScores,
    /// Per group, most expensive first, at most [`MAX_BREAKDOWN_ROWS`].
    pub breakdowns: Vec<EfficiencyBreakdown>,
    /// Groups left out of `breakdowns`.
    pub breakdowns_omitted: usize,
    /// Suggestions with a saving, largest first.
    pub optimization_suggestions: Vec<Suggestion>,
    /// How the report was narrowed: present only in a filtered report
    /// ([`Ledger::efficiency_report_for`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ReportScope>,
}

fn fmt_tokens(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.2}M", n as f64 / 1e6),
    }
}

fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn names(rows: &[(String, Agg)], pick: impl Fn(&Agg) -> bool) -> String {
    let list: Vec<&str> = rows.iter().filter(|(_, a)| pick(a)).map(|(k, _)| k.as_str()).take(3).collect();
    list.join(", ")
}

pub(crate) fn suggestions(total: &Agg, by_model: &[(String, Agg)], target: &str) -> Vec<Suggestion> {
    let c = &total.core;
    let o = total.opportunities();
    let spend = c.cost;
    let mut out = Vec::new();
    let mut push = |kind, saving: Money, calls, tokens, description: String| {
        if saving.is_zero() {
            return;
        }
        let s = share(saving, spend);
        out.push(Suggestion {
            kind,
            potential_savings: saving.as_usd(),
            potential_savings_picos: saving,
            description,
            impact: Impact::of(s),
            share_of_spend: s,
            calls,
            tokens,
        });
    };
    let caching = o.cache_gain.saturating_sub(o.cache_write_premium);
    push(
        SuggestionType::PromptCaching,
        caching,
        o.cache_calls,
        o.cache_missed_tokens,
        format!(
            "{} in multi-turn sessions re-sent {} tokens of the previous turn's prompt uncached. Mark the \
             stable prefix (system prompt, history) with cache_control so later turns read it at the cache-read \
             rate: saves {:.4} after {:.4} of cache-write premium.",
            count(o.cache_calls, "call", "calls"),
            fmt_tokens(o.cache_missed_tokens),
            caching,
            o.cache_write_premium
        ),
    );
    let right = o.small_premium_cost.saturating_sub(o.small_premium_at_target);
    // Under a filter that cannot be grouped by model (one session) no model is named.
    let premium = match names(by_model, |a| a.opportunities().small_premium_calls > 0) {
        m if m.is_empty() => m,
        m => format!(" ({m})"),
    };
    push(
        SuggestionType::ModelRightSizing,
        right,
        o.small_premium_calls,
        o.small_premium_tokens,
        format!(
            "{} (short prompt and output) went to a premium model{premium} and cost {:.4}; on {target} they \
             would have cost {:.4}.",
            count(o.small_premium_calls, "small call", "small calls"),
            o.small_premium_cost,
            o.small_premium_at_target
        ),
    );
    let batch = o.batch_cost.saturating_sub(o.batch_at_batch);
    push(
        SuggestionType::BatchApi,
        batch,
        o.batch_calls,
        o.batch_tokens,
        format!(
            "{} billed at standard rates ({:.4}, after the right-sizing and trimming suggested here); the Message \
             Batches API bills {} at half price ({:.4}).",
            count(o.batch_calls, "non-interactive call was", "non-interactive calls were"),
            o.batch_cost,
            if o.batch_calls == 1 { "it" } else { "them" },
            o.batch_at_batch
        ),
    );
    // Past the other suggestions' savings, the premium is priced at the rates they would leave the calls at.
    let beyond = if o.unread_write_saving == o.unread_write_premium {
        String::new()
    } else {
        format!(" ({:.4} of it beyond the right-sizing, trimming or batch suggested here)", o.unread_write_saving)
    };
    push(
        SuggestionType::UnreadCacheWrites,
        o.unread_write_saving,
        o.unread_writes,
        o.unread_write_tokens,
        format!(
            "{} ({} tokens) expired without being read: {} write premium of {:.4}{beyond} bought nothing. \
             Drop cache_control from prompts that are not reused, or use the 5-minute lifetime.",
            count(o.unread_writes, "cache write", "cache writes"),
            fmt_tokens(o.unread_write_tokens),
            if o.unread_writes == 1 { "its" } else { "their" },
            o.unread_write_premium
        ),
    );
    let long = o.long_ctx_cost.saturating_sub(o.long_ctx_at_standard);
    push(
        SuggestionType::LongContextThreshold,
        long,
        o.long_ctx_calls,
        o.long_ctx_tokens,
        format!(
            "{} had prompts just over their model's long-context line (200,000 prompt tokens; 100,000 on Haiku \
             5.5), so every token was billed at long-context rates ({:.4}); trimmed under the line they would have \
             cost {:.4}.",
            count(o.long_ctx_calls, "call", "calls"),
            o.long_ctx_cost,
            o.long_ctx_at_standard
        ),
    );
    push(
        SuggestionType::FailedCalls,
        c.failed_cost,
        c.failed_calls,
        c.failed_tokens,
        format!(
            "{} ended in an error after burning {} tokens ({:.4}); retries pay again. Check timeouts, \
             max_tokens and validation before the call.",
            count(c.failed_calls, "call", "calls"),
            fmt_tokens(c.failed_tokens),
            c.failed_cost
        ),
    );
    out.sort_by_key(|s| std::cmp::Reverse(s.potential_savings_picos));
    out
}

impl Ledger {
    /// The efficiency report over `window`, with per-group scores by `group_by` (session, project, model,
    /// agent, operation, or any other dimension but tool). A `FROM..TO` window is widened to the edges of the
    /// buckets its bounds fall in ([`Ledger::aligned`]): the report's `window` is the span its figures cover.
    pub fn efficiency_report(&self, window: Window, group_by: Dimension) -> Result<EfficiencyReport, QueryError> {
        self.efficiency_report_for(window, group_by, &ReportFilter::new())
    }

    /// The efficiency report over `window` of the records `filter` keeps (for example one tenant's), with
    /// per-group scores by `group_by`. Without filters it is [`Ledger::efficiency_report`].
    ///
    /// Every figure (calls, cost, scores, suggestions, unread cache writes) is computed from the filtered
    /// records' own sums. Breakdowns the ledger's series cannot narrow to the filters (by session under a
    /// tenant filter, for example) use [`ReportFilter::with_sessions`] when given, else are left empty;
    /// either way [`ReportScope::notes`] says so. An invalid filter is an error, as in
    /// [`Ledger::query`].
    pub fn efficiency_report_for(
        &self,
        window: Window,
        group_by: Dimension,
        filter: &ReportFilter,
    ) -> Result<EfficiencyReport, QueryError> {
        if group_by == Dimension::Tool {
            return Err(QueryError::Unsupported(
                "tools have no tokens: group the efficiency report by another dimension".into(),
            ));
        }
        let sel = filter.selection(&self.inner.prices)?;
        let target = self.inner.config.right_size_target().to_owned();
        self.read(|store, now| {
            let (from, to) = window.aligned_bounds(store, now)?;
            let total = sel.total_for(store, from, to, Some(group_by));
            let mut notes = Vec::new();
            let mut rows = match sel.grouped(store, from, to, group_by) {
                // Sessions and users are kept in their own maps, which hold only the calls that have one: the
                // rest is a `(none)` row (for one session's projects, `(other)`), so that the rows add up to the
                // report's calls (as in `Ledger::query`).
                Ok(mut rows) => {
                    if let Some(label) = sel.rest_label(group_by) {
                        crate::ledger::add_rest(&mut rows, &total, label);
                    }
                    rows
                }
                Err(QueryError::Unsupported(_)) if group_by == Dimension::Session && filter.knows_sessions() => {
                    let all = Selection::All.grouped(store, from, to, Dimension::Session)?;
                    let past_cap: u64 = all.iter().filter(|(k, _)| k == OTHER).map(|(_, a)| a.core.calls).sum();
                    let mut rows: Vec<(String, Agg)> =
                        all.into_iter().filter(|(k, _)| k != OTHER && filter.session_belongs(k)).collect();
                    // The rest of the filtered calls, so that the rows add up to the report's calls as unfiltered:
                    // the filtered total less the listed sessions', exact when each listed session holds filtered
                    // calls only (as the sessions the HTTP API attributes to a tenant do; a caller's predicate may
                    // attribute one that holds others' calls, which the ledger cannot see). Left out when some
                    // field of the listed sessions passes the total: a difference cut at zero reads as figures.
                    let mut listed = Agg::default();
                    rows.iter().for_each(|(_, a)| listed.merge(a));
                    let mut whole = total.less(&listed);
                    whole.merge(&listed);
                    let rest = whole.core == total.core;
                    if rest {
                        crate::ledger::add_rest(&mut rows, &total, Dimension::Session.none_label());
                    }
                    notes.push(format!(
                        "breakdowns by session: the ledger keeps sessions apart from the filtered dimensions, so the \
                         rows are the sessions the caller attributes to the filters, with all of each session's \
                         calls in the window{}",
                        if rest {
                            ", and a `(none)` row: the filtered calls less the listed sessions' (those without a \
                             session, in a session not attributed to the filters, or past the session cap; exact \
                             when each listed session holds filtered calls only)"
                        } else {
                            "; a listed session holds calls the filters leave out, so the filtered calls the \
                             sessions leave are in no row"
                        }
                    ));
                    if past_cap > 0 {
                        notes.push(format!(
                            "{PAST_SESSION_CAP_NOTE}: {past_cap} calls of sessions past the ledger's session cap \
                             (`(other)`, any filter value) are not listed{}",
                            if rest { " (the filtered ones among them are in the `(none)` row)" } else { "" }
                        ));
                    }
                    rows
                }
                Err(QueryError::Unsupported(why)) => {
                    notes.push(format!(
                        "breakdowns by {group_by} cannot be narrowed to these filters, so they are left empty \
                         ({why}); group by a dimension the filters can narrow{}",
                        if group_by == Dimension::Session {
                            ", or say which sessions belong to the filters (ReportFilter::with_sessions)"
                        } else {
                            ""
                        }
                    ));
                    Vec::new()
                }
                Err(e) => return Err(e),
            };
            // Rows of tasks only (no calls) have no tokens to score.
            rows.retain(|(_, a)| a.core.calls > 0);
            // Tasks have no model or provider: grouped by either, their figures land in the row of calls without
            // one, whose waste their failed cost would score. Those rows score their calls alone.
            if matches!(group_by, Dimension::Model | Dimension::Provider) {
                for (_, a) in &mut rows {
                    a.core.failed_task_cost = Money::ZERO;
                }
            }
            crate::ledger::sort_rows(&mut rows);
            let by_model = if group_by == Dimension::Model {
                rows.clone()
            } else {
                // Only used to name models in a suggestion: a selection that cannot be grouped by model
                // (a session filter) names none.
                let mut m = sel.grouped(store, from, to, Dimension::Model).unwrap_or_default();
                crate::ledger::sort_rows(&mut m);
                m
            };
            let omitted = rows.len().saturating_sub(MAX_BREAKDOWN_ROWS);
            let breakdowns = rows
                .iter()
                .take(MAX_BREAKDOWN_ROWS)
                .map(|(k, a)| {
                    let s = EfficiencyScores::of(a);
                    let t = &a.core.tokens;
                    EfficiencyBreakdown {
                        category: k.clone(),
                        calls: a.core.calls,
                        metered_calls: a.core.metered_calls(),
                        input_tokens: t.input,
                        output_tokens: t.output,
                        cache_creation_tokens: t.cache_write(),
                        cache_read_tokens: t.cache_read,
                        total_tokens: t.total(),
                        cost_usd: a.core.cost.as_usd(),
                        cost_picos: a.core.cost,
                        unpriced_calls: a.core.unpriced_calls,
                        efficiency_score: s.overall,
                        band: s.band,
                    }
                })
                .collect();
            let scope = (!filter.is_empty()).then(|| ReportScope {
                filters: filter.filters().to_vec(),
                unattributed_calls: sel.unattributed(store, from, to),
                notes,
            });
            Ok(EfficiencyReport {
                window: WindowBounds::of(from, to),
                group_by,
                calls: total.core.calls,
                cost_usd: total.core.cost.as_usd(),
                cost_picos: total.core.cost,
                unpriced_calls: total.core.unpriced_calls,
                efficiency_scores: EfficiencyScores::of(&total),
                breakdowns,
                breakdowns_omitted: omitted,
                optimization_suggestions: suggestions(&total, &by_model, &target),
                scope,
            })
        })
    }
}
