//! The answer to one `token_usage` call: the library's reports as one JSON object, and a short text summary.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokenmeter::analysis::{
    BlocksReport, CacheMetrics, Comparison, DEFAULT_BLOCK_HOURS, EfficiencyReport, EfficiencyScores, Forecast,
    ForecastBasis, Share, Trend, usage_blocks,
};
use tokenmeter::budget::{BudgetAmount, BudgetLimit, BudgetPeriod, BudgetScope, BudgetState};
use tokenmeter::ledger::{
    Dimension, GroupBy, Ledger, Query, QueryError, QueryResult, TimeGrain, TokenFigures, WindowBounds,
};
use tokenmeter::{CallRecord, Money, PriceBook, UsageSummary};

use super::ServerState;
use super::tool::{BreakdownType, Operation, Timeframe, TokenUsageRequest};
use crate::render::{int, pct, priced_usd, share_cost, usd};
use crate::source::{Context, Source, SourceInfo};

/// A successful answer.
#[derive(Debug)]
pub(super) struct Answer {
    /// The structured content: a JSON object.
    pub(super) structured: Value,
    /// The text summary.
    pub(super) summary: String,
}

/// What every answer starts with.
#[derive(Debug, Serialize)]
struct Envelope<'a, B: Serialize> {
    operation: &'static str,
    timeframe: &'static str,
    now: DateTime<Utc>,
    time_zone: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<WindowBounds>,
    source: &'a SourceInfo,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
    #[serde(flatten)]
    body: B,
}

/// Why a call could not be answered, after its source was read.
#[derive(Debug)]
enum AnswerError {
    Report(QueryError),
    Budgets(String),
    Json(serde_json::Error),
}

impl From<QueryError> for AnswerError {
    fn from(e: QueryError) -> Self {
        AnswerError::Report(e)
    }
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerError::Report(e) => write!(f, "cannot compute the report: {e}"),
            AnswerError::Budgets(e) => write!(f, "cannot evaluate the budgets: {e}"),
            AnswerError::Json(e) => write!(f, "cannot write the answer as JSON: {e}"),
        }
    }
}

/// Reads the source afresh and answers `req` from the library's reports.
pub(super) fn answer(state: &ServerState, req: &TokenUsageRequest) -> Result<Answer, String> {
    let now = if state.ctx.pinned_now { state.ctx.now } else { Utc::now() };
    // Notes about skipped lines go to stderr on the first read only; `source` in every answer counts them.
    let quiet = state.ctx.quiet || state.noted.swap(true, std::sync::atomic::Ordering::Relaxed);
    let ctx = state.ctx.with(now, quiet);
    // The flags the error may name are the server's command line, not the tool's arguments: said so, an agent
    // would not try them as arguments.
    let source = Source::load(&state.source, &ctx).map_err(|e| {
        format!(
            "cannot read the source: {e} (the source is chosen on the server's command line, in the MCP client's \
             configuration: this tool's arguments cannot change it)"
        )
    })?;
    let ledger = source.ledger(&ctx);
    let everything = crate::cli::WindowArgs { period: Some(tokenmeter::Window::All), since: None, until: None };
    let all =
        crate::commands::window(&everything, &ctx, &source, tokenmeter::Window::All).map_err(|e| e.to_string())?;
    let call = Call { state, req, ctx: &ctx, source: &source, ledger: &ledger, all, notes: Vec::new() };
    call.run().map_err(|e| e.to_string())
}

/// One call being answered.
struct Call<'a> {
    state: &'a ServerState,
    req: &'a TokenUsageRequest,
    ctx: &'a Context,
    source: &'a Source,
    ledger: &'a Ledger,
    /// Timeframe `all`: everything the source holds, as the CLI's `--period all` has it.
    all: crate::commands::Scope<'a>,
    notes: Vec<String>,
}

impl Call<'_> {
    fn run(mut self) -> Result<Answer, AnswerError> {
        let tf = self.req.timeframe.unwrap_or(Timeframe::DEFAULT);
        let op = self.req.operation;
        if op != Operation::Optimize && self.req.optimization_target.is_some() {
            self.notes.push(format!("optimization_target is used by optimize only: ignored by {}", op.name()));
        }
        if matches!(op, Operation::Forecast | Operation::Compare | Operation::Blocks) && !self.req.breakdowns.is_empty()
        {
            self.notes
                .push(format!("breakdown_type is used by analyze, optimize and track only: ignored by {}", op.name()));
        }
        match op {
            Operation::Analyze => self.analyze(tf),
            Operation::Optimize => self.optimize(tf),
            Operation::Track => self.track(tf),
            Operation::Forecast => self.forecast(),
            Operation::Compare => self.compare(tf),
            Operation::Blocks => self.blocks(tf),
        }
    }

    fn finish<B: Serialize>(
        self,
        timeframe: &'static str,
        window: Option<WindowBounds>,
        body: B,
        summary: String,
    ) -> Result<Answer, AnswerError> {
        let envelope = Envelope {
            operation: self.req.operation.name(),
            timeframe,
            now: self.ctx.now,
            time_zone: self.ctx.time_zone.name(),
            window,
            source: &self.source.info,
            notes: self.notes,
            body,
        };
        let structured = serde_json::to_value(&envelope).map_err(AnswerError::Json)?;
        Ok(Answer { structured, summary })
    }

    /// The ledger window of `tf`: `all` is everything the source holds, bounded as the CLI's `--period all` is
    /// ([`crate::commands::everything`]), not from the ledger's oldest bucket (a month bucket's start once the
    /// records are 35 days old, which stretched the window and cut the run-rate), and widened to the bucket its
    /// start falls in, as the CLI asks it: a month bucket that starts before the first record's day would be left
    /// out, and its calls with it. The reports' windows are put back by [`Call::restore`] and its kin.
    fn window(&self, tf: Timeframe) -> Result<tokenmeter::Window, QueryError> {
        match tf {
            Timeframe::All => self.all.wide_window(self.ledger),
            other => Ok(other.window()),
        }
    }

    /// Puts `all`'s bounds back on a report's window (asked for widened, see [`Call::window`]).
    fn restore(&self, tf: Timeframe, bounds: &mut WindowBounds) {
        if tf == Timeframe::All {
            self.all.restore(bounds);
        }
    }

    /// [`Call::restore`] for a usage summary (its days and run-rate too).
    fn restore_summary(&self, tf: Timeframe, summary: &mut UsageSummary) {
        if tf == Timeframe::All {
            self.all.restore_summary(summary);
        }
    }

    /// [`Call::restore`] for query rows (per time grain, without the empty rows before the start).
    fn restore_rows(&self, tf: Timeframe, rows: &mut QueryResult) {
        if tf == Timeframe::All {
            self.all.restore_rows(rows);
        }
    }

    fn span(&self, w: &WindowBounds) -> String {
        let tz = self.ctx.time_zone;
        let f = |t: DateTime<Utc>| crate::render::local_time(t, tz, "%Y-%m-%d %H:%M");
        format!("{} to {} {tz}", f(w.from), f(w.to))
    }

    // === analyze ===

    fn analyze(self, tf: Timeframe) -> Result<Answer, AnswerError> {
        #[derive(Serialize)]
        struct Body {
            summary: UsageSummary,
            efficiency_scores: EfficiencyScores,
            cache: CacheMetrics,
            breakdowns: Breakdowns,
        }
        let w = self.window(tf)?;
        let mut summary = self.ledger.usage_summary(w)?;
        self.restore_summary(tf, &mut summary);
        let efficiency_scores = self.ledger.efficiency_report(w, Dimension::Model)?.efficiency_scores;
        let cache = self.ledger.cache_report(w)?.cache_metrics;
        let breakdowns = self.breakdowns(tf, &summary)?;

        let s = &summary;
        let mut text = format!(
            "Over {} ({}): {}, {} tokens, {}",
            tf.phrase(),
            self.span(&s.window),
            crate::render::count(s.calls, "call"),
            int(s.tokens.total),
            share_cost(s.cost_usd, s.metered_calls, s.unpriced.calls)
        );
        if s.cache_savings_usd > 0.0 {
            text.push_str(&format!(
                " (the cache saved {})",
                priced_usd(s.cache_savings_usd, s.unpriced.calls, Some(s.metered_calls))
            ));
        }
        if s.metered_calls > 0 {
            text.push_str(&format!(
                ". Efficiency score {:.1}/100 ({}), cache hit rate {}.",
                efficiency_scores.overall,
                efficiency_scores.band,
                pct(efficiency_scores.cache_hit_rate)
            ));
        } else {
            text.push_str(". No metered calls: nothing to score.");
        }
        if s.failed_calls > 0 {
            text.push_str(&format!(" {} failed.", crate::render::count(s.failed_calls, "call")));
        }
        if s.unpriced.calls > 0 {
            text.push_str(&format!(
                " Not in the cost: {} on models without a price ({}).",
                crate::render::count(s.unpriced.calls, "call"),
                s.unpriced.models.join(", ")
            ));
        }
        // The model breakdown, when asked for, says the same sentence.
        if let Some(m) = s.by_model.first().filter(|_| breakdowns.model.is_none()) {
            text.push_str(&format!(" Top model: {} {} ({}).", m.name, crate::render::model_cost(m), pct(m.cost_share)));
        }
        text.push_str(&breakdowns.text(self.ctx));
        let window = Some(summary.window);
        self.finish(tf.name(), window, Body { summary, efficiency_scores, cache, breakdowns }, text)
    }

    // === optimize ===

    fn optimize(mut self, tf: Timeframe) -> Result<Answer, AnswerError> {
        #[derive(Serialize)]
        struct Body {
            efficiency: EfficiencyReport,
            total_savings_usd: f64,
            total_savings_percent: f64,
            target: Option<TargetEvaluation>,
            #[serde(skip_serializing_if = "Breakdowns::is_empty")]
            breakdowns: Breakdowns,
        }
        let w = self.window(tf)?;
        // The per-group scores follow the first per-value breakdown asked for.
        let group = self.req.breakdowns.iter().find_map(|b| b.dimension()).unwrap_or(Dimension::Model);
        let mut efficiency = self.ledger.efficiency_report(w, group)?;
        self.restore(tf, &mut efficiency.window);
        let breakdowns = if self.req.breakdowns.is_empty() {
            Breakdowns::default()
        } else {
            let mut summary = self.ledger.usage_summary(w)?;
            self.restore_summary(tf, &mut summary);
            self.breakdowns(tf, &summary)?
        };
        let spend = efficiency.cost_usd;
        let percent_of = |v: f64| if spend > 0.0 { v / spend * 100.0 } else { 0.0 };
        let suggestions = &efficiency.optimization_suggestions;
        let total: f64 = suggestions.iter().map(|s| s.potential_savings).sum();
        let target = self.req.optimization_target.map(|percent| TargetEvaluation::of(percent, &efficiency));
        if target.as_ref().is_some_and(|t| t.suggestions.len() > 1) {
            self.notes.push(
                "each suggestion's saving is measured against the actual spend: where two touch the same calls, \
                 their sum overstates what doing both would save"
                    .to_owned(),
            );
        }

        let s = &efficiency.efficiency_scores;
        let score = match efficiency.calls {
            0 => "no calls to score".to_owned(),
            _ => format!("efficiency score {:.1}/100 ({})", s.overall, s.band),
        };
        let mut text = format!(
            "Over {} ({}): {score}, spend {}.",
            tf.phrase(),
            self.span(&efficiency.window),
            share_cost(spend, efficiency.calls, efficiency.unpriced_calls)
        );
        if suggestions.is_empty() {
            text.push_str(" No suggestions: nothing to save in this timeframe.");
        } else {
            let list: Vec<String> = suggestions
                .iter()
                .map(|g| format!("{} {} ({})", kind_name(g.kind), usd(g.potential_savings), impact_name(g.impact)))
                .collect();
            text.push_str(&format!(
                " {} would have saved {} ({:.1}%): {}.",
                crate::render::count(suggestions.len() as u64, "suggestion"),
                usd(total),
                percent_of(total),
                list.join(", ")
            ));
        }
        if let Some(t) = &target {
            let names: Vec<&str> = t.suggestions.iter().map(|x| kind_name(x.kind)).collect();
            if t.reachable {
                text.push_str(&format!(
                    " Target {}% ({}): reachable with {} (saves {}, {:.1}%).",
                    target_percent(t.percent),
                    usd(t.usd),
                    names.join(" + "),
                    usd(t.savings_usd),
                    t.savings_percent
                ));
            } else if spend <= 0.0 && efficiency.unpriced_calls > 0 {
                text.push_str(&format!(
                    " Target {}%: not reachable, the spend in this timeframe has no price (unpriced models).",
                    target_percent(t.percent)
                ));
            } else if spend <= 0.0 {
                text.push_str(&format!(
                    " Target {}%: not reachable, nothing was spent in this timeframe.",
                    target_percent(t.percent)
                ));
            } else {
                text.push_str(&format!(
                    " Target {}% ({}): not reachable, every suggestion together saves {} ({:.1}%), {} short.",
                    target_percent(t.percent),
                    usd(t.usd),
                    usd(t.savings_usd),
                    t.savings_percent,
                    usd(t.shortfall_usd)
                ));
            }
        }
        text.push_str(&breakdowns.text(self.ctx));
        let window = Some(efficiency.window);
        let body =
            Body { total_savings_usd: total, total_savings_percent: percent_of(total), efficiency, target, breakdowns };
        self.finish(tf.name(), window, body, text)
    }

    // === track ===

    fn track(self, tf: Timeframe) -> Result<Answer, AnswerError> {
        #[derive(Serialize)]
        struct Spend {
            calls: u64,
            metered_calls: u64,
            failed_calls: u64,
            unpriced_calls: u64,
            tokens: TokenFigures,
            cost_usd: f64,
            cache_savings_usd: f64,
        }
        #[derive(Serialize)]
        struct Rate {
            window_hours: f64,
            usd_per_hour: f64,
            usd_per_day: f64,
            tokens_per_hour: f64,
            calls_per_hour: f64,
        }
        #[derive(Serialize)]
        struct Body {
            spend: Spend,
            rate: Rate,
            monthly_projection_usd: f64,
            by_model: Vec<Share>,
            budgets: Option<Vec<BudgetState>>,
            over_budget: Vec<String>,
            #[serde(skip_serializing_if = "Breakdowns::is_empty")]
            breakdowns: Breakdowns,
        }
        let w = self.window(tf)?;
        let mut s = self.ledger.usage_summary(w)?;
        self.restore_summary(tf, &mut s);
        let breakdowns = self.breakdowns(tf, &s)?;
        let budgets = match &self.state.budgets {
            Some(b) => Some(
                crate::commands::budget::evaluate(b.budgets.clone(), &self.source.records, self.ctx)
                    .map_err(|e| AnswerError::Budgets(e.to_string()))?,
            ),
            None => None,
        };
        let over_budget: Vec<String> =
            budgets.iter().flatten().filter(|b| b.over_budget).map(crate::commands::budget::label).collect();
        let hours = (s.period_end - s.period_start).num_seconds() as f64 / 3_600.0;
        // Over the hours the run-rate is over (the window's part up to now, from where the data begins), so that
        // the three rates agree.
        let rate_hours = s.run_rate_days * 24.0;
        let per_hour = |v: f64| if rate_hours > 0.0 { v / rate_hours } else { 0.0 };
        let rate = Rate {
            window_hours: hours,
            usd_per_hour: per_hour(s.cost_usd),
            usd_per_day: per_hour(s.cost_usd) * 24.0,
            tokens_per_hour: per_hour(s.tokens.total as f64),
            calls_per_hour: per_hour(s.calls as f64),
        };

        // Dollars are of priced calls: each figure says `+ unpriced` when calls without a price are left out. The
        // run-rate is the window's pace over the month (the usage summary's), not the forecast's projection.
        let unpriced = s.unpriced.calls;
        let mut text = format!(
            "Spent {} over {} ({}): {}, {} tokens; {} an hour, {} a day; monthly run-rate {} (the window's daily \
             rate over the whole month, not the forecast's trend).",
            share_cost(s.cost_usd, s.metered_calls, unpriced),
            tf.phrase(),
            self.span(&s.window),
            crate::render::count(s.calls, "call"),
            int(s.tokens.total),
            priced_usd(rate.usd_per_hour, unpriced, Some(s.metered_calls)),
            priced_usd(rate.usd_per_day, unpriced, Some(s.metered_calls)),
            priced_usd(s.monthly_projection_usd, unpriced, Some(s.metered_calls))
        );
        if unpriced > 0 {
            text.push_str(&format!(
                " Not in the cost: {} on models without a price ({}).",
                crate::render::count(unpriced, "call"),
                s.unpriced.models.join(", ")
            ));
        }
        match &budgets {
            Some(list) if !list.is_empty() => {
                let parts: Vec<String> = list
                    .iter()
                    .map(|b| {
                        format!(
                            "{} {} of {} ({}{})",
                            crate::commands::budget::label(b),
                            spent(b),
                            amount(&b.limit),
                            pct(b.utilization),
                            if b.over_budget { ", OVER" } else { "" }
                        )
                    })
                    .collect();
                text.push_str(&format!(" Budgets: {}.", parts.join("; ")));
            }
            Some(_) => text.push_str(" The budgets file holds no budgets."),
            None => text.push_str(" No budgets (start the server with --budgets FILE to track them)."),
        }
        text.push_str(&breakdowns.text(self.ctx));
        let window = Some(s.window);
        let body = Body {
            spend: Spend {
                calls: s.calls,
                metered_calls: s.metered_calls,
                failed_calls: s.failed_calls,
                unpriced_calls: s.unpriced.calls,
                tokens: s.tokens,
                cost_usd: s.cost_usd,
                cache_savings_usd: s.cache_savings_usd,
            },
            rate,
            monthly_projection_usd: s.monthly_projection_usd,
            by_model: s.by_model,
            budgets,
            over_budget,
            breakdowns,
        };
        self.finish(tf.name(), window, body, text)
    }

    // === forecast ===

    fn forecast(self) -> Result<Answer, AnswerError> {
        #[derive(Serialize)]
        struct Body {
            horizon_days: u32,
            monthly_limit_usd: Option<f64>,
            forecast: Forecast,
        }
        let (timeframe, horizon_days) = match self.req.timeframe {
            None => ("7d", 7),
            Some(t @ (Timeframe::LastHour | Timeframe::Last6Hours | Timeframe::Last24Hours)) => (t.name(), 1),
            Some(t @ Timeframe::Last7Days) => (t.name(), 7),
            Some(t @ (Timeframe::Last30Days | Timeframe::All)) => (t.name(), 30),
        };
        let monthly_limit_usd = self.state.budgets.as_ref().and_then(|b| monthly_limit(&b.budgets));
        let f = self.ledger.forecast(horizon_days, monthly_limit_usd)?;

        let trend = match f.trend {
            Trend::Rising => "rising",
            Trend::Falling => "falling",
            Trend::Flat => "flat",
        };
        let next: f64 = f.days.iter().map(|d| d.cost_usd).sum();
        let priced = |v: f64| priced_usd(v, f.unpriced_calls, None);
        let insufficient = f.basis == ForecastBasis::Insufficient;
        let mut text = if insufficient {
            // No figure for the days ahead: "about $0" would read as a forecast.
            format!(
                "Forecast from {} ({}), from {}. Month to date {}.",
                crate::render::local_time(f.generated_at, self.ctx.time_zone, "%Y-%m-%d %H:%M"),
                f.time_zone,
                crate::render::forecast_basis(&f),
                priced(f.month_to_date_usd)
            )
        } else {
            format!(
                "Forecast from {} ({}), trend {trend}, from {}: about {} over the next {}; month to date {}, \
                 projected month total {} (the month to date plus the forecast for the rest of it).",
                crate::render::local_time(f.generated_at, self.ctx.time_zone, "%Y-%m-%d %H:%M"),
                f.time_zone,
                crate::render::forecast_basis(&f),
                priced(next),
                match horizon_days {
                    1 => "day".to_owned(),
                    n => crate::render::count(u64::from(n), "day"),
                },
                priced(f.month_to_date_usd),
                priced(f.projected_month_total_usd)
            )
        };
        if let Some(effects) = crate::render::weekday_effects(&f).filter(|_| !insufficient) {
            text.push_str(&format!(" By day of the week, against the trend: {effects}."));
        }
        if f.unpriced_calls > 0 {
            text.push_str(&format!(
                " Not in the cost: {} of the history or this month on models without a price.",
                crate::render::count(f.unpriced_calls, "call")
            ));
        }
        if let Some(l) = &f.limit {
            let when = match (l.reached, l.reached_on, l.days_until) {
                (true, _, _) => "already reached".to_owned(),
                (false, Some(d), Some(n)) => {
                    format!("reached on {d} ({})", crate::render::days_from_today(n))
                }
                _ if insufficient => "not reached so far; nothing to project yet".to_owned(),
                _ => "not reached this month".to_owned(),
            };
            text.push_str(&format!(" Monthly budget {}: {when}.", usd(l.limit_usd)));
        }
        self.finish(timeframe, None, Body { horizon_days, monthly_limit_usd, forecast: f }, text)
    }

    // === blocks ===

    fn blocks(self, tf: Timeframe) -> Result<Answer, AnswerError> {
        #[derive(Serialize)]
        struct Body {
            blocks: BlocksReport,
            blocks_not_shown: usize,
            largest_closed_block_tokens: Option<u64>,
        }
        let now = self.ctx.now;
        let mut report = usage_blocks(&self.source.records, now, DEFAULT_BLOCK_HOURS)?;
        report.calls_after_now = self.source.info.after_now;
        // The closed block that used the most tokens (of all the calls read, shown or not), and its start.
        let largest = report
            .blocks
            .iter()
            .filter(|b| !b.active)
            .max_by_key(|b| b.total_tokens)
            .map(|b| (b.total_tokens, b.start));
        let largest_closed_block_tokens = largest.map(|(n, _)| n);
        // Blocks with a call in the rolling window ending now (to the minute), and the open one.
        let from = match tf {
            Timeframe::LastHour => Some(now - chrono::Duration::hours(1)),
            Timeframe::Last6Hours => Some(now - chrono::Duration::hours(6)),
            Timeframe::Last24Hours => Some(now - chrono::Duration::hours(24)),
            Timeframe::Last7Days => Some(now - chrono::Duration::days(7)),
            Timeframe::Last30Days => Some(now - chrono::Duration::days(30)),
            Timeframe::All => None,
        };
        let last_close = report.blocks.last().map(|b| b.end);
        let blocks_not_shown = from.map_or(0, |from| report.retain_since(from));
        let tz = self.ctx.time_zone;
        let time = |t: DateTime<Utc>| crate::render::local_time(t, tz, "%Y-%m-%d %H:%M");
        let closed = report.blocks.iter().filter(|b| !b.active).count();
        let mut text =
            format!("{}-hour blocks with calls in {} ({tz}): {} closed", report.block_hours, tf.phrase(), closed);
        if let Some(b) = report.blocks.iter().filter(|b| !b.active).max_by_key(|b| b.total_tokens) {
            text.push_str(&format!(
                ", the largest from {} with {} tokens, {}",
                time(b.start),
                int(b.total_tokens),
                priced_usd(b.cost_usd, b.unpriced_calls, Some(b.calls))
            ));
        }
        text.push('.');
        match (report.blocks.iter().find(|b| b.active), &report.active) {
            (Some(b), active) => {
                text.push_str(&format!(
                    " The open block, since {} ({} left): {}, {} tokens, {}.",
                    time(b.start),
                    crate::render::time_left(b.end - now),
                    crate::render::count(b.calls, "call"),
                    int(b.total_tokens),
                    priced_usd(b.cost_usd, b.unpriced_calls, Some(b.calls))
                ));
                match active {
                    Some(p) => {
                        text.push_str(&format!(
                            " Since its first call (the calls after it; the first is left out of the rate): {} tokens \
                             a minute, {} an hour; at that rate {} tokens and {} by its close at {}",
                            int(p.tokens_per_minute.round() as u64),
                            priced_usd(p.usd_per_hour, p.unpriced_calls, Some(b.calls.saturating_sub(1))),
                            int(p.projected_tokens),
                            priced_usd(p.projected_cost_usd, b.unpriced_calls, Some(b.calls)),
                            crate::render::local_time(b.end, tz, "%H:%M")
                        ));
                        match largest.filter(|(n, _)| *n > 0) {
                            Some((n, start)) => {
                                let share = p.projected_tokens as f64 / n as f64;
                                text.push_str(&format!(
                                    ", {} of the most any closed block of the source used ({} tokens, the block from \
                                     {}){}.",
                                    pct(share),
                                    int(n),
                                    time(start),
                                    if share > 1.0 { ": past it" } else { "" }
                                ));
                            }
                            None => text.push('.'),
                        }
                    }
                    None => text.push_str(&format!(
                        " Its rate is given from {} minutes after its first call.",
                        tokenmeter::analysis::MIN_RATE_MINUTES
                    )),
                }
            }
            (None, _) => match last_close {
                None if self.source.info.after_now > 0 => text.push_str(&format!(
                    " No calls before now ({} after it).",
                    crate::render::count(self.source.info.after_now, "call")
                )),
                None => text.push_str(" No calls."),
                Some(end) => text.push_str(&format!(" No block is open (the last closed at {}).", time(end))),
            },
        }
        let window = from.map(|from| WindowBounds { from, to: now });
        // The text has told of every block in the timeframe; the list keeps the most recent.
        let older = report.blocks.len().saturating_sub(MAX_BLOCKS_LISTED);
        if older > 0 {
            report.blocks.drain(..older);
            text.push_str(&format!(
                " The {} most recent blocks are listed, the {} before them are not.",
                MAX_BLOCKS_LISTED,
                int(older as u64)
            ));
        }
        let blocks_not_shown = blocks_not_shown + older;
        let body = Body { blocks: report, blocks_not_shown, largest_closed_block_tokens };
        self.finish(tf.name(), window, body, text)
    }

    // === compare ===

    fn compare(self, tf: Timeframe) -> Result<Answer, AnswerError> {
        #[derive(Serialize)]
        struct Body {
            comparison: Comparison,
        }
        // `all` from the first record's day, as the other operations have it (not the ledger's oldest bucket).
        let c = match tf {
            Timeframe::All => crate::commands::compare_periods(self.ledger, &self.all)?,
            other => self.ledger.compare_periods(other.window())?,
        };
        let (a, b, d) = (&c.a, &c.b, &c.deltas);
        let change = |p: Option<f64>| p.map_or_else(|| "n/a".to_owned(), |p| crate::render::delta_pct(Some(p)));
        let points = |p: Option<f64>| p.map_or_else(|| "n/a".to_owned(), |p| format!("{p:+.1} points"));
        let score = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1}"));
        let text = format!(
            "{} ({}) against the period before ({}): cost {} vs {} ({}), calls {} vs {} ({}), \
             tokens {} vs {} ({}), cache hit rate {} vs {} ({}), efficiency score {} vs {} ({}).",
            capitalize(tf.phrase()),
            self.span(&b.window),
            self.span(&a.window),
            share_cost(b.cost_usd, b.calls, b.unpriced_calls),
            share_cost(a.cost_usd, a.calls, a.unpriced_calls),
            change(d.cost_pct),
            int(b.calls),
            int(a.calls),
            change(d.calls_pct),
            int(b.tokens),
            int(a.tokens),
            change(d.tokens_pct),
            b.cache_hit_rate.map_or_else(|| "n/a".to_owned(), pct),
            a.cache_hit_rate.map_or_else(|| "n/a".to_owned(), pct),
            points(d.cache_hit_rate_points),
            score(b.efficiency_score),
            score(a.efficiency_score),
            points(d.efficiency_score_points)
        );
        let unpriced: Vec<String> = [(b.unpriced_calls, "this period"), (a.unpriced_calls, "the one before")]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, side)| format!("{} of {side}", crate::render::count(*n, "call")))
            .collect();
        let text = match unpriced.len() {
            0 => text,
            _ => format!("{text} Costs count priced calls only: {} had no price.", unpriced.join(" and ")),
        };
        let text = match crate::render::length_note(&c) {
            Some(note) => format!("{text} {note}"),
            None => text,
        };
        let window = Some(b.window);
        self.finish(tf.name(), window, Body { comparison: c }, text)
    }

    // === breakdowns ===

    /// The requested breakdowns over the timeframe.
    fn breakdowns(&self, tf: Timeframe, summary: &UsageSummary) -> Result<Breakdowns, QueryError> {
        let mut out = Breakdowns::default();
        let by = |d: Dimension| {
            let mut rows = self.ledger.query(&Query::new(self.window(tf)?).group_by(GroupBy::Dimension(d)))?;
            self.restore_rows(tf, &mut rows);
            Ok::<_, QueryError>(rows)
        };
        for b in &self.req.breakdowns {
            match b {
                BreakdownType::Agent => out.agent = Some(by(Dimension::Agent)?),
                BreakdownType::Operation => out.operation = Some(by(Dimension::Operation)?),
                BreakdownType::Model => out.model = Some(by(Dimension::Model)?),
                BreakdownType::Project | BreakdownType::Session => {
                    let Some(d) = b.dimension() else { continue };
                    let mut rows = by(d)?;
                    // A source holds thousands of sessions: the most expensive are what an answer is for.
                    if rows.groups.len() > MAX_VALUES_LISTED {
                        out.values_not_shown.insert(b.name(), rows.groups.len() - MAX_VALUES_LISTED);
                        rows.groups.truncate(MAX_VALUES_LISTED);
                    }
                    match b {
                        BreakdownType::Project => out.project = Some(rows),
                        _ => out.session = Some(rows),
                    }
                }
                BreakdownType::Cost => out.cost = Some(CostBreakdown::of(summary, &self.source.records, self.ctx)),
                BreakdownType::Time => out.time = Some(self.by_time(tf)?),
            }
        }
        Ok(out)
    }

    /// The timeframe per local hour (up to 24h) or day; `all` falls back to weeks, then months, where days
    /// are no longer kept.
    fn by_time(&self, tf: Timeframe) -> Result<QueryResult, QueryError> {
        let grains: &[TimeGrain] = match tf {
            Timeframe::LastHour | Timeframe::Last6Hours | Timeframe::Last24Hours => &[TimeGrain::Hour],
            Timeframe::Last7Days | Timeframe::Last30Days => &[TimeGrain::Day],
            Timeframe::All => &[TimeGrain::Day, TimeGrain::Week, TimeGrain::Month],
        };
        let mut last = None;
        for g in grains {
            match self.ledger.query(&Query::new(self.window(tf)?).group_by(GroupBy::Time(*g))) {
                Ok(mut r) => {
                    self.restore_rows(tf, &mut r);
                    return Ok(r);
                }
                Err(e @ QueryError::ResolutionUnavailable { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| QueryError::Unsupported("no time grain answers this window".into())))
    }
}

/// An `optimization_target` as the text says it: to two decimals at most (`33.33`, `20`), `<0.01` below that,
/// not the number as sent (`1e-30` is 32 digits written out).
fn target_percent(p: f64) -> String {
    if p < 0.005 {
        return "<0.01".to_owned();
    }
    let s = format!("{p:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

/// The breakdowns asked for: ledger query results per value or per time grain, and the cost split.
#[derive(Debug, Default, Serialize)]
struct Breakdowns {
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<QueryResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    operation: Option<QueryResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<QueryResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<QueryResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<QueryResult>,
    /// Values past the [`MAX_VALUES_LISTED`] listed, by breakdown (project, session).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    values_not_shown: std::collections::BTreeMap<&'static str, usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cost: Option<CostBreakdown>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<QueryResult>,
}

impl Breakdowns {
    fn is_empty(&self) -> bool {
        self.agent.is_none()
            && self.operation.is_none()
            && self.model.is_none()
            && self.project.is_none()
            && self.session.is_none()
            && self.cost.is_none()
            && self.time.is_none()
    }

    /// One sentence per breakdown: its most expensive value.
    fn text(&self, ctx: &Context) -> String {
        let mut out = String::new();
        for (name, r) in [
            ("agent", &self.agent),
            ("operation", &self.operation),
            ("model", &self.model),
            ("project", &self.project),
            ("session", &self.session),
        ] {
            if let Some(top) = r.as_ref().and_then(|r| r.groups.first()) {
                let cost = share_cost(top.cost_usd, top.calls.saturating_sub(top.unmetered_calls), top.unpriced_calls);
                out.push_str(&format!(" Top {name}: {} {cost} ({}).", top.key, pct(top.cost_share)));
            }
        }
        for (name, n) in &self.values_not_shown {
            out.push_str(&format!(" {} {name} values past the {MAX_VALUES_LISTED} listed.", int(*n as u64)));
        }
        if let Some(c) = &self.cost
            && let Some(k) = c.by_kind.iter().max_by(|a, b| a.cost_usd.total_cmp(&b.cost_usd))
            && k.cost_usd > 0.0
        {
            out.push_str(&format!(
                " Largest cost by token kind: {} {} ({}).",
                k.kind,
                priced_usd(k.cost_usd, c.unpriced_calls, None),
                pct(k.share)
            ));
        }
        if let Some(r) = &self.time
            && let Some(GroupBy::Time(grain)) = r.group_by
            && let Some(top) =
                r.groups.iter().filter(|g| g.cost_usd > 0.0).max_by(|a, b| a.cost_usd.total_cmp(&b.cost_usd))
        {
            let when = crate::commands::row_label(&top.key, r.group_by, ctx.time_zone);
            let cost = share_cost(top.cost_usd, top.calls.saturating_sub(top.unmetered_calls), top.unpriced_calls);
            out.push_str(&format!(" Costliest {}: {when}, {cost}.", grain.name()));
        }
        out
    }
}

/// The values a project or session breakdown lists, most expensive first.
const MAX_VALUES_LISTED: usize = 20;

/// The blocks a `blocks` answer lists, the most recent (a month holds ~140, ~510 bytes each).
const MAX_BLOCKS_LISTED: usize = 48;

// === optimize: the target ===

/// One suggestion counted towards the target.
#[derive(Debug, Serialize)]
struct TargetStep {
    #[serde(rename = "type")]
    kind: tokenmeter::analysis::SuggestionType,
    potential_savings: f64,
    cumulative_savings_usd: f64,
    cumulative_percent: f64,
}

/// Whether the suggestions reach a saving of `percent` of the timeframe's spend.
#[derive(Debug, Serialize)]
struct TargetEvaluation {
    /// The target, percent of spend.
    percent: f64,
    /// The target in USD.
    usd: f64,
    /// True when the timeframe has spend and the suggestions' savings together reach the target.
    reachable: bool,
    /// The fewest suggestions, largest saving first, that reach the target; all of them when it is not
    /// reachable.
    suggestions: Vec<TargetStep>,
    /// What those suggestions save together.
    savings_usd: f64,
    savings_percent: f64,
    /// What is missing when not reachable (0 otherwise).
    shortfall_usd: f64,
}

impl TargetEvaluation {
    fn of(percent: f64, report: &EfficiencyReport) -> Self {
        let spend = report.cost_usd;
        let usd = spend * percent / 100.0;
        let pct_of = |v: f64| if spend > 0.0 { v / spend * 100.0 } else { 0.0 };
        // The suggestions come largest first, so the shortest prefix reaching the target is the fewest.
        let mut sorted: Vec<_> = report.optimization_suggestions.iter().collect();
        sorted.sort_by_key(|s| std::cmp::Reverse(s.potential_savings_picos));
        let mut suggestions = Vec::new();
        let mut cumulative = Money::ZERO;
        // A relative tolerance for the float target, and some saving at all: with a fixed one a target under
        // 1e-12 USD counted as reached by no suggestion ("reachable with ").
        let reached = |m: Money| !m.is_zero() && m.as_usd() >= usd * (1.0 - 1e-9);
        for s in sorted {
            if spend > 0.0 && reached(cumulative) {
                break;
            }
            cumulative = cumulative.saturating_add(s.potential_savings_picos);
            suggestions.push(TargetStep {
                kind: s.kind,
                potential_savings: s.potential_savings,
                cumulative_savings_usd: cumulative.as_usd(),
                cumulative_percent: pct_of(cumulative.as_usd()),
            });
        }
        let savings_usd = cumulative.as_usd();
        let reachable = spend > 0.0 && reached(cumulative);
        TargetEvaluation {
            percent,
            usd,
            reachable,
            suggestions,
            savings_usd,
            savings_percent: pct_of(savings_usd),
            shortfall_usd: if reachable { 0.0 } else { (usd - savings_usd).max(0.0) },
        }
    }
}

fn kind_name(kind: tokenmeter::analysis::SuggestionType) -> &'static str {
    use tokenmeter::analysis::SuggestionType as S;
    match kind {
        S::PromptCaching => "prompt_caching",
        S::ModelRightSizing => "model_right_sizing",
        S::BatchApi => "batch_api",
        S::UnreadCacheWrites => "unread_cache_writes",
        S::LongContextThreshold => "long_context_threshold",
        S::FailedCalls => "failed_calls",
        // A kind this build does not know yet (the enum is non-exhaustive).
        _ => "other",
    }
}

fn impact_name(impact: tokenmeter::analysis::Impact) -> &'static str {
    use tokenmeter::analysis::Impact as I;
    match impact {
        I::High => "high",
        I::Medium => "medium",
        I::Low => "low",
    }
}

// === cost breakdown ===

/// Spend of one token kind.
#[derive(Debug, Serialize)]
struct KindCost {
    kind: &'static str,
    cost_usd: f64,
    /// Share of the priced spend, 0-1.
    share: f64,
}

/// Where the money went: by token kind and by model.
#[derive(Debug, Serialize)]
struct CostBreakdown {
    window: WindowBounds,
    /// The timeframe's spend (the usage summary's `cost_usd`).
    total_usd: f64,
    /// Spend by kind: uncached input, cache reads, 5-minute and 1-hour cache writes, output (reasoning
    /// included), and web search fees. Each call's priced cost, per kind, summed over the window's calls.
    by_kind: Vec<KindCost>,
    /// Calls on models without a price: in no figure here.
    unpriced_calls: u64,
    /// Spend by model, most expensive first (the usage summary's `by_model`).
    by_model: Vec<Share>,
}

impl CostBreakdown {
    fn of(summary: &UsageSummary, records: &[CallRecord], ctx: &Context) -> Self {
        let kinds = cost_by_kind(records, &summary.window, ctx.now, &ctx.prices);
        let total: u128 = kinds.iter().map(|k| k.1.picos()).sum();
        let by_kind = kinds
            .into_iter()
            .map(|(kind, m)| KindCost {
                kind,
                cost_usd: m.as_usd(),
                share: if total > 0 { m.picos() as f64 / total as f64 } else { 0.0 },
            })
            .collect();
        CostBreakdown {
            window: summary.window,
            total_usd: summary.cost_usd,
            by_kind,
            unpriced_calls: summary.unpriced.calls,
            by_model: summary.by_model.clone(),
        }
    }
}

/// Each call's priced cost split by kind, summed over the calls the ledger counts in `window`: calls are
/// priced as the ledger prices them (their own cost, else the price book's), and calls stamped more than
/// 5 minutes after `now` count at `now`, as the ledger counts them.
fn cost_by_kind(
    records: &[CallRecord],
    window: &WindowBounds,
    now: DateTime<Utc>,
    prices: &PriceBook,
) -> [(&'static str, Money); 6] {
    let mut sums = [Money::ZERO; 6];
    let (from, to, now) = (window.from.timestamp(), window.to.timestamp(), now.timestamp());
    for r in records {
        let ts = r.timestamp.timestamp();
        let ts = if crate::commands::counted_now(ts, now) { now } else { ts };
        if ts < from || ts >= to {
            continue;
        }
        let cost = match &r.cost {
            Some(c) => Cow::Borrowed(c),
            None if r.metered => match r.model.as_deref().and_then(|m| prices.resolve(m)) {
                Some(p) => Cow::Owned(p.price_call(r)),
                None => continue,
            },
            None => continue,
        };
        for (sum, part) in sums.iter_mut().zip([
            cost.input,
            cost.cache_read,
            cost.cache_write_5m,
            cost.cache_write_1h,
            cost.output,
            cost.web_search,
        ]) {
            *sum = sum.saturating_add(part);
        }
    }
    let [input, cache_read, w5, w1, output, web_search] = sums;
    [
        ("input", input),
        ("cache_read", cache_read),
        ("cache_write_5m", w5),
        ("cache_write_1h", w1),
        ("output", output),
        ("web_search", web_search),
    ]
}

// === budgets ===

fn amount(a: &BudgetAmount) -> String {
    match a {
        BudgetAmount::Usd(m) => usd(m.as_usd()),
        BudgetAmount::Tokens(t) => format!("{} tokens", int(*t)),
    }
}

/// A budget's spend: dollars marked `+ unpriced` when calls in its scope had no price (as `tokenmeter budget`
/// shows them).
fn spent(b: &BudgetState) -> String {
    match b.spent {
        BudgetAmount::Usd(m) => share_cost(m.as_usd(), b.calls, b.unpriced_calls),
        BudgetAmount::Tokens(_) => amount(&b.spent),
    }
}

/// The first calendar-month USD budget over every call: the limit the forecast projects against.
fn monthly_limit(budgets: &[tokenmeter::Budget]) -> Option<f64> {
    budgets.iter().find_map(|b| match (b.period(), b.scope(), b.limit()) {
        (BudgetPeriod::Month, BudgetScope::Everything, BudgetLimit::Usd(m)) => Some(m.as_usd()),
        _ => None,
    })
}
