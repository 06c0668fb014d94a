#!/usr/bin/env python3
"""Generates the tokenmeter Grafana dashboards (cost, cache, efficiency, budget, overview) as JSON.

Run `python3 dashboards/generate.py` after editing; the JSON files are what users import, and
scripts/check-dashboards.py validates them (schema, units, every query against Prometheus).
Queries use only tokenmeter's Prometheus names (see docs: OTLP metrics export) and the standard labels.
"""
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "prometheus", "uid": "${datasource}"}

# Selectors. Call metrics carry model/provider/agent/project; an absent label matches `.*`.
CALL = 'job=~"$job", gen_ai_request_model=~"$model", gen_ai_provider_name=~"$provider", gen_ai_agent_name=~"$agent", project=~"$project"'
JOB = 'job=~"$job"'
# Said by the panels of per-instance gauges on dashboards that have call-dimension variables.
ONLY_JOB = " Follows the Service variable only (an in-process gauge has no model, provider, agent or project label)."
# Task series carry the dimensions but not the model or provider.
TASK = 'job=~"$job", gen_ai_agent_name=~"$agent", project=~"$project"'
MIN_STEP = "1m"  # the default export interval: see Board.add

# `increase(X[$__range])` cannot see a series' first sample: a series born inside the range (a new model, agent,
# error type; a process restarted under a new instance id) would count only what it gained after its first
# export, and a burst that never recurs would not count at all. Every such increase is rewritten to count a
# series born inside the range (no sample in the day before the range's start) from zero: its last value. Series
# present before the start keep `increase()`; one with a single sample in a short range still counts nothing, as
# before. The presence test looks back a day rather than Prometheus's 5-minute lookback: after a gap in the
# exports (a collector down for half an hour) a series was taken for born and counted its whole running total.
# The same for the bars' `increase(X[$__interval])`: a process's first sample of a counter is its first export,
# a minute after it started, and an alert fired before then made that sample 1, which the bar did not count.
# A born series counts from zero unless its process started more than a day before the window and Prometheus did not
# see it in that day: then its counters hold what it spent before the window, which Prometheus never saw (a new
# Prometheus, a collector down since the process started, retention shorter than the range), and only what they gained
# while watched counts (`increase()`): a process up for 90 days, first seen today, showed 90 days of spend as today's.
RANGE_INCREASE = re.compile(r"increase\(([^()\[\]]+)\[\$(__range|__interval)\]\)")
START = "tokenmeter_start_time_seconds"
WINDOW_SECONDS = {"$__range": "$__range_s", "$__interval": "($__interval_ms / 1000)"}


def present_before(series, window="$__range"):
    return f"last_over_time({series}[1d] offset {window})"


def unwatched_processes(window):
    """The processes (job, instance) that started more than a day before the window and had no sample in that day
    (one that started in it and first exported inside the window, a job that exports once at exit, counts from
    zero: it spent at most the rest of that day before the window, and most often a minute or less). The earliest
    start in the window: a process restarted under a fixed instance id reports a later one after the restart."""
    start = f"{START}{{{JOB}}}"
    return (f"((min_over_time({start}[{window}]) < time() - {WINDOW_SECONDS[window]} - 86400) "
            f"unless {present_before(start, window)})")


def count_born_series(expr):
    def born(m):
        series, window = m[1], "$" + m[2]
        before = present_before(series, window)
        return (f"(((last_over_time({series}[{window}]) unless {before}) "
                f"unless on(job, instance) {unwatched_processes(window)}) "
                f"or increase({series}[{window}]))")
    return RANGE_INCREASE.sub(born, expr)

UIDS = {
    "overview": "tokenmeter-overview",
    "cost": "tokenmeter-cost",
    "cache": "tokenmeter-cache",
    "efficiency": "tokenmeter-efficiency",
    "budget": "tokenmeter-budget",
}
TITLES = {
    "overview": "tokenmeter / Overview",
    "cost": "tokenmeter / Cost",
    "cache": "tokenmeter / Cache",
    "efficiency": "tokenmeter / Efficiency",
    "budget": "tokenmeter / Budget",
}


def tokens(types, extra=""):
    return f'tokenmeter_tokens_total{{{CALL}, gen_ai_token_type=~"{types}"{extra}}}'


PROMPT_TYPES = "input|cache_read|cache_write_5m|cache_write_1h"


def variable_query(name, label, metric="tokenmeter_calls_total", sel=JOB, label_text=None, description=""):
    q = f"label_values({metric}{{{sel}}}, {label})" if sel else f"label_values({metric}, {label})"
    return {
        "type": "query",
        "name": name,
        "label": label_text or name,
        "description": description,
        "datasource": DS,
        "query": q,
        "definition": q,
        "refresh": 2,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "sort": 1,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
    }


def templating(key):
    """The variables: the budget board's panels follow only `job` (budget gauges carry no call dimensions)."""
    call_variables = [] if key == "budget" else [
        variable_query("model", "gen_ai_request_model", label_text="Model"),
        variable_query("provider", "gen_ai_provider_name", label_text="Provider"),
        variable_query("agent", "gen_ai_agent_name", label_text="Agent", description="Exported only with MetricAttributes::with_agent(); All matches series without it"),
        variable_query("project", "project", label_text="Project", description="Exported only with MetricAttributes::with_project(); All matches series without it"),
    ]
    return {
        "list": [
            {
                "type": "datasource",
                "name": "datasource",
                "label": "Prometheus",
                "query": "prometheus",
                "current": {"selected": False, "text": "Prometheus", "value": "prometheus"},
                "options": [],
                "refresh": 1,
                "regex": "",
            },
            variable_query("job", "job", sel="", label_text="Service (job)", description="service.name of the exporting application"),
            *call_variables,
        ]
    }


class Board:
    def __init__(self, key, description):
        self.key = key
        self.description = description
        self.panels = []
        self.y = 0
        self.x = 0
        self.row_h = 0
        self.next_id = 1

    def row(self, title):
        self.newline()
        self.panels.append({"type": "row", "title": title, "collapsed": False, "id": self.next_id, "panels": [],
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}})
        self.next_id += 1
        self.y += 1

    def newline(self):
        if self.x:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0

    def add(self, ptype, title, description, unit, targets, w=8, h=8, options=None, custom=None, thresholds=None,
            minmax=None, decimals=None, interval=MIN_STEP):
        if self.x + w > 24:
            self.newline()
        defaults = {"unit": unit, "color": {"mode": "thresholds" if thresholds else "palette-classic"}}
        defaults["thresholds"] = thresholds or {"mode": "absolute", "steps": [{"value": None, "color": "green"}]}
        if minmax:
            defaults["min"], defaults["max"] = minmax
        if decimals is not None:
            defaults["decimals"] = decimals
        if custom:
            defaults["custom"] = custom
        panel = {
            "type": ptype,
            "id": self.next_id,
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
            "targets": [
                {
                    "refId": chr(ord("A") + i),
                    "datasource": DS,
                    "expr": count_born_series(expr),
                    "legendFormat": legend,
                    # Min step: Grafana then takes $__rate_interval as at least 4 x this, whatever scrape interval
                    # the datasource states (15 s by default: one 60 s export per 1 m window, often none).
                    "interval": interval,
                    "range": ptype in ("timeseries", "barchart"),
                    "instant": ptype not in ("timeseries", "barchart"),
                    **({"format": "table"} if ptype in ("table", "bargauge") and False else {}),
                }
                for i, (expr, legend) in enumerate(targets)
            ],
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options or {},
        }
        self.panels.append(panel)
        self.next_id += 1
        self.x += w
        self.row_h = max(self.row_h, h)
        return panel

    # Panel kinds.
    def stat(self, title, description, unit, targets, w=6, h=5, **kw):
        opts = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value",
                "graphMode": "none", "textMode": "auto", "justifyMode": "auto", "orientation": "auto"}
        return self.add("stat", title, description, unit, targets, w=w, h=h, options=opts, **kw)

    def ts(self, title, description, unit, targets, w=12, h=9, stacked=False, bars=False, **kw):
        custom = {"drawStyle": "bars" if bars else "line", "fillOpacity": 60 if bars else 10, "lineWidth": 1,
                  "stacking": {"mode": "normal" if stacked else "none", "group": "A"}, "showPoints": "never"}
        opts = {"legend": {"showLegend": True, "displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
                "tooltip": {"mode": "multi", "sort": "desc"}}
        return self.add("timeseries", title, description, unit, targets, w=w, h=h, options=opts, custom=custom, **kw)

    def gauge(self, title, description, unit, targets, thresholds, minmax, w=6, h=7, **kw):
        opts = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "showThresholdLabels": False, "showThresholdMarkers": True}
        return self.add("gauge", title, description, unit, targets, w=w, h=h, options=opts, thresholds=thresholds,
                        minmax=minmax, **kw)

    def bargauge(self, title, description, unit, targets, w=12, h=9, **kw):
        opts = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True}
        return self.add("bargauge", title, description, unit, targets, w=w, h=h, options=opts, **kw)

    def table(self, title, description, unit, targets, w=12, h=9, **kw):
        opts = {"showHeader": True, "sortBy": [{"displayName": "Value", "desc": True}]}
        p = self.add("table", title, description, unit, targets, w=w, h=h, options=opts, **kw)
        for t in p["targets"]:
            t["format"] = "table"
        p["transformations"] = [{"id": "organize", "options": {"excludeByName": {"Time": True}}}]
        return p

    def render(self, links):
        return {
            "uid": UIDS[self.key],
            "title": TITLES[self.key],
            "description": self.description,
            "tags": ["tokenmeter", "llm", "genai"],
            "timezone": "browser",
            "editable": True,
            "graphTooltip": 1,
            "time": {"from": "now-24h", "to": "now"},
            "timepicker": {"refresh_intervals": ["30s", "1m", "5m", "15m", "1h"]},
            "refresh": "1m",
            "schemaVersion": 39,
            "version": 1,
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "weekStart": "",
            "links": links,
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
                "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}]},
            "templating": templating(self.key),
            "panels": self.panels,
        }


def links_for(key):
    """Every dashboard links to the others through the shared `tokenmeter` tag, keeping time and variables; the
    overview also has one link per dashboard."""
    direct = []
    if key == "overview":
        direct = [{"title": TITLES[k].split(" / ")[1], "type": "link", "icon": "dashboard",
                   "tooltip": f"Open the {TITLES[k]} dashboard", "url": f"/d/{UIDS[k]}", "tags": [],
                   "asDropdown": False, "targetBlank": False, "includeVars": True, "keepTime": True}
                  for k in ("cost", "cache", "efficiency", "budget")]
    return direct + [{"title": "tokenmeter dashboards", "type": "dashboards", "icon": "external link", "tooltip": "",
             "tags": ["tokenmeter"], "asDropdown": True, "targetBlank": False, "includeVars": True, "keepTime": True}]


TRAFFIC = {"mode": "absolute", "steps": [{"value": None, "color": "red"}, {"value": 50, "color": "#EAB839"},
                                         {"value": 80, "color": "green"}]}
TRAFFIC_RATIO = {"mode": "absolute", "steps": [{"value": None, "color": "red"}, {"value": 0.5, "color": "#EAB839"},
                                               {"value": 0.8, "color": "green"}]}
BUDGET = {"mode": "absolute", "steps": [{"value": None, "color": "green"}, {"value": 0.5, "color": "#EAB839"},
                                        {"value": 0.75, "color": "orange"}, {"value": 0.9, "color": "red"}]}
BAD_HIGH = {"mode": "absolute", "steps": [{"value": None, "color": "green"}, {"value": 0.05, "color": "#EAB839"},
                                          {"value": 0.2, "color": "red"}]}

COST = f"tokenmeter_cost_USD_total{{{CALL}}}"
CALLS = f"tokenmeter_calls_total{{{CALL}}}"
# The denominators of outcome ratios: calls past the series cap share one overflow series without an outcome,
# which would count in the denominator only (as calls that all succeeded).
NAMED = 'otel_metric_overflow=""'
PAST_CAP = " Calls past the exporter's series cap (its overflow series has no outcome) are left out of it."
PAST_CAP_TASKS = " Tasks past the exporter's series cap (its overflow series has no outcome) are left out of it."
SAVINGS = f"tokenmeter_cache_savings_USD_total{{{CALL}}}"
MONTH_S = 2592000  # 30 days


def total_cost_panel(b, w=6):
    return b.stat("Total cost", "LLM spend in USD over the selected time range, summed over every priced call of the selected "
                  "services, models, providers, agents and projects. Unpriced calls are not in it (see Unpriced calls): "
                  "if that count is above zero, add the model to the price book.",
                  "currencyUSD", [(f"sum(increase({COST}[$__range]))", "cost")], w=w, decimals=4)


def cost_board():
    b = Board("cost", "What LLM calls cost: totals, rates, projections, and who spends it.")
    b.row("Spend")
    total_cost_panel(b)
    b.stat("Cost rate", "Current spend per hour (rate over the last $__rate_interval, at least four export intervals, "
           "times 3600). A sudden jump means a new workload, a bigger model or a prompt loop: check Cost by model and "
           "Top spenders.",
           "currencyUSD", [(f"sum(rate({COST}[$__rate_interval])) * 3600", "USD/h")], decimals=4)
    b.stat("Projected month", "Spend over 30 days at the average rate of the selected range. Compare with your monthly "
           "budget; widen the range for a steadier projection.",
           "currencyUSD", [(f"sum(increase({COST}[$__range])) / $__range_s * {MONTH_S}", "USD / 30 days")], decimals=2)
    b.stat("Cost per call", "Average USD per priced call over the range (failed calls included; calls without usage "
           "or on models without a price are left out, as they are of the cost). Rising means longer prompts or pricier "
           "models: look at the token breakdown and the cache hit rate.",
           "currencyUSD", [(f"sum(increase({COST}[$__range])) / ((sum(increase({CALLS}[$__range]))"
                            f" - (sum(increase(tokenmeter_calls_unpriced_total{{{CALL}}}[$__range])) or vector(0))"
                            f" - (sum(increase(tokenmeter_calls_unmetered_total{{{CALL}}}[$__range])) or vector(0))) > 0)",
                            "USD/call")], decimals=5)
    b.row("Breakdown")
    b.ts("Cost rate by model", "USD per hour by model (canonical price-book id). Move high-volume, low-difficulty traffic "
         "to a cheaper model when one dominates.", "currencyUSD",
         [(f"sum by (gen_ai_request_model) (rate({COST}[$__rate_interval])) * 3600", "{{gen_ai_request_model}}")],
         stacked=True)
    b.bargauge("Cost by model", "Total USD per model over the range. The biggest bar is where optimisation pays most.",
               "currencyUSD", [(f"sort_desc(sum by (gen_ai_request_model) (increase({COST}[$__range])))",
                                "{{gen_ai_request_model}}")])
    b.bargauge("Cost by agent", "Total USD per agent (gen_ai.agent.name) over the range; calls outside any agent show "
               "with an empty name. Needs MetricAttributes::with_agent().", "currencyUSD",
               [(f"sort_desc(sum by (gen_ai_agent_name) (increase({COST}[$__range])))", "{{gen_ai_agent_name}}")])
    b.bargauge("Cost by provider", "Total USD per provider over the range.", "currencyUSD",
               [(f"sort_desc(sum by (gen_ai_provider_name) (increase({COST}[$__range])))", "{{gen_ai_provider_name}}")])
    b.table("Top spenders", "The 10 biggest (service, agent, project, model) combinations by spend over the range. "
            "Start cost reviews at the top row.", "currencyUSD",
            [(f"topk(10, sum by (job, gen_ai_agent_name, project, gen_ai_request_model) (increase({COST}[$__range])))", "")],
            w=24)
    b.row("Calls")
    b.ts("Token breakdown by type", "Tokens per minute by type, stacked: uncached input, output, cache reads, cache writes "
         "(5 min and 1 h). Reasoning is a part of output and is left out so the stack adds up. A tall input band with a "
         "thin cache_read band means prompts are not being cached.", "short",
         [(f"sum by (gen_ai_token_type) (rate({tokens('input|output|cache_read|cache_write_5m|cache_write_1h')}[$__rate_interval])) * 60",
           "{{gen_ai_token_type}}")], stacked=True, w=24)
    b.bargauge("Tokens by type", "Total tokens per type over the range: input (uncached), output, cache_read, "
               "cache_write_5m, cache_write_1h and reasoning (a part of output, never add it to output).", "short",
               [(f"sum by (gen_ai_token_type) (increase({tokens('.*')}[$__range]))", "{{gen_ai_token_type}}")], w=12)
    b.stat("Unpriced calls", "Metered calls on a model the price book does not know: their tokens are counted but they "
           "are NOT in the cost. Above zero: add the model with a price override.", "short",
           [(f"sum(increase(tokenmeter_calls_unpriced_total{{{CALL}}}[$__range]))", "unpriced")],
           thresholds={"mode": "absolute", "steps": [{"value": None, "color": "green"}, {"value": 1, "color": "red"}]},
           decimals=0)
    b.stat("Unmetered calls", "Calls whose span closed without token counts (dropped streams, missing usage fields): their "
           "cost is unknown. Above zero: record usage on those spans.", "short",
           [(f"sum(increase(tokenmeter_calls_unmetered_total{{{CALL}}}[$__range]))", "unmetered")],
           thresholds={"mode": "absolute", "steps": [{"value": None, "color": "green"}, {"value": 1, "color": "#EAB839"}]},
           decimals=0)
    b.stat("Web searches", "Searches made through Anthropic's server-side web_search tool. Each is billed per search "
           "($10 per 1,000 unless the price book says otherwise), on top of the tokens its results add to the prompt. "
           "No data: no call in the range searched.", "short",
           [(f"sum(increase(tokenmeter_web_search_requests_total{{{CALL}}}[$__range]))", "searches")], w=12, decimals=0)
    b.stat("Web search fees", "What the web searches cost (priced calls only): a part of Total cost, not in any token "
           "figure.", "currencyUSD",
           [(f"sum(increase(tokenmeter_web_search_cost_USD_total{{{CALL}}}[$__range]))", "fees")], w=12, decimals=4)
    return b


def cache_board():
    b = Board("cache", "Prompt caching: hit rate, what it saved, and cache writes that were not read.")
    b.row("Hit rate")
    b.stat("Cache hit rate", "Cache-read tokens over all prompt tokens (uncached input + cache reads + cache writes) over "
           "the range, from the token counters. Low: put the stable part of the prompt first and mark it cacheable.",
           "percentunit", [(f"sum(increase({tokens('cache_read')}[$__range])) / (sum(increase({tokens(PROMPT_TYPES)}[$__range])) > 0)",
                            "hit rate")], thresholds=TRAFFIC_RATIO, minmax=(0, 1), decimals=3)
    b.ts("Cache hit rate over time", "The same ratio per interval, by model. A sudden drop means the cached prefix changed "
         "(a new system prompt or tool list, a timestamp in the prefix) or the cache expired between calls.",
         "percentunit",
         [(f"sum by (gen_ai_request_model) (rate({tokens('cache_read')}[$__rate_interval])) / "
           f"(sum by (gen_ai_request_model) (rate({tokens(PROMPT_TYPES)}[$__rate_interval])) > 0)", "{{gen_ai_request_model}}")],
         w=18, minmax=(0, 1))
    b.row("Savings")
    b.stat("Dollars saved by the cache", "What cache reads saved against paying the full input rate for the same tokens, "
           "over the range: gross, before the premium paid for cache writes (see Cache write tokens; `tokenmeter "
           "cache-report` prices the writes never read).", "currencyUSD",
           [(f"sum(increase({SAVINGS}[$__range]))", "saved")], decimals=4)
    b.stat("Tokens served from cache", "Prompt tokens read from the cache over the range (billed at the cache-read rate).",
           "short", [(f"sum(increase({tokens('cache_read')}[$__range]))", "cache_read")])
    b.stat("Cache write tokens", "Prompt tokens written to the cache over the range (5 min and 1 h lifetimes), billed at a "
           "premium over input. Worth it only if they are read again.", "short",
           [(f"sum(increase({tokens('cache_write_5m|cache_write_1h')}[$__range]))", "cache writes")])
    b.stat("Cache writes never read (approx.)", "Approximation, tokenmeter exports no direct metric: cache-write tokens of "
           "models (per service) that had no cache reads at all in the range. Above zero: those writes paid the premium "
           "for nothing; drop the cache marker there or make the prefix stable.", "short",
           [(f"sum(sum by (job, gen_ai_request_model) (increase({tokens('cache_write_5m|cache_write_1h')}[$__range])) "
             f"unless on (job, gen_ai_request_model) (sum by (job, gen_ai_request_model) "
             f"(increase({tokens('cache_read')}[$__range])) > 0)) or vector(0)", "never read")],
           thresholds={"mode": "absolute", "steps": [{"value": None, "color": "green"}, {"value": 1, "color": "#EAB839"}]})
    b.ts("Dollars saved per hour", "Cache savings rate by model, USD per hour.", "currencyUSD",
         [(f"sum by (gen_ai_request_model) (rate({SAVINGS}[$__rate_interval])) * 3600", "{{gen_ai_request_model}}")])
    b.ts("Cache reads vs writes", "Cache-read and cache-write tokens per minute. Writes without matching reads are cache "
         "entries that expired unread.", "short",
         [(f"sum by (gen_ai_token_type) (rate({tokens('cache_read|cache_write_5m|cache_write_1h')}[$__rate_interval])) * 60",
           "{{gen_ai_token_type}}")])
    b.ts("In-process cache hit rate (1h / 24h windows)", "The hit rate tokenmeter computes in process over its own last "
         "hour and day (gauge tokenmeter.cache.hit_rate), per service (the lowest of its instances)." + ONLY_JOB, "percentunit",
         [(f"min by (job, tokenmeter_window) (tokenmeter_cache_hit_rate_ratio{{{JOB}}})", "{{job}} {{tokenmeter_window}}")],
         w=24, minmax=(0, 1))
    return b


def efficiency_board():
    b = Board("efficiency", "Efficiency score, latency, errors and waste.")
    b.row("Score")
    for window in ("1h", "24h"):
        b.gauge(f"Efficiency score ({window})", f"tokenmeter's efficiency score over the last {window} (0-100): green >= 80, "
                "amber 50-79, red < 50, lowest service shown. Red: open the in-process efficiency report "
                "(meter.efficiency_report) for the findings behind it." + ONLY_JOB, "none",
                [(f'min(tokenmeter_efficiency_score{{{JOB}, tokenmeter_window="{window}"}})', window)],
                TRAFFIC, (0, 100), decimals=0)
    b.gauge("Cache hit rate (1h)", "In-process cache hit rate over the last hour, lowest service: green >= 80%, amber "
            "50-79%, red < 50%." + ONLY_JOB, "percentunit",
            [(f'min(tokenmeter_cache_hit_rate_ratio{{{JOB}, tokenmeter_window="1h"}})', "1h")], TRAFFIC_RATIO, (0, 1))
    b.stat("Error rate", "Failed calls over all calls in the range. Above a few percent: look at errors by type below "
           "(rate limits, overload, timeouts) and add retries with backoff or a fallback model." + PAST_CAP, "percentunit",
           [(f'(sum(increase(tokenmeter_calls_total{{{CALL}, tokenmeter_outcome="error"}}[$__range])) or vector(0)) / '
             f"(sum(increase(tokenmeter_calls_total{{{CALL}, {NAMED}}}[$__range])) > 0)", "error rate")], thresholds=BAD_HIGH, decimals=3)
    b.row("Latency")
    b.ts("Call duration p50 / p95", "Client-side call duration percentiles from gen_ai.client.operation.duration. p95 far "
         "above p50: long outputs or provider slowdowns; consider streaming or a smaller max_tokens. The buckets end at "
         "81.92 s: a line flat at 81.92 means longer than that.", "s",
         [(f"histogram_quantile(0.5, sum by (le) (rate(gen_ai_client_operation_duration_seconds_bucket{{{CALL}}}[$__rate_interval])))", "p50"),
          (f"histogram_quantile(0.95, sum by (le) (rate(gen_ai_client_operation_duration_seconds_bucket{{{CALL}}}[$__rate_interval])))", "p95")])
    b.ts("Time to first token p50 / p95", "Time to the first streamed content as the application records it "
         "(gen_ai.client.operation.time_to_first_chunk; tokenmeter's StreamAccumulator times the first content "
         "delta, not message_start), streamed calls only. High: long prompts (cache them) or an overloaded "
         "provider.", "s",
         [(f"histogram_quantile(0.5, sum by (le) (rate(gen_ai_client_operation_time_to_first_chunk_seconds_bucket{{{CALL}}}[$__rate_interval])))", "p50"),
          (f"histogram_quantile(0.95, sum by (le) (rate(gen_ai_client_operation_time_to_first_chunk_seconds_bucket{{{CALL}}}[$__rate_interval])))", "p95")])
    b.row("Errors and waste")
    b.ts("Errors by type", "Failed calls per second by error.type. Rate-limit errors: spread load or raise limits; "
         "timeouts: raise the timeout or shrink the request.", "reqps",
         [(f'sum by (error_type) (rate(tokenmeter_calls_total{{{CALL}, tokenmeter_outcome="error"}}[$__rate_interval]))',
           "{{error_type}}")])
    b.stat("Waste rate", "Share of spend on calls that failed (their tokens were billed but the result was not used), "
           "over the range. Above zero: check the errors; retries of large prompts multiply it." + PAST_CAP, "percentunit",
           [(f'(sum(increase(tokenmeter_cost_USD_total{{{CALL}, tokenmeter_outcome="error"}}[$__range])) or vector(0)) / '
             f"(sum(increase(tokenmeter_cost_USD_total{{{CALL}, {NAMED}}}[$__range])) > 0)", "waste")], thresholds=BAD_HIGH, decimals=3)
    b.stat("Failed tasks", "Share of tasks (tokenmeter.tasks) that ended in error over the range: every call in them is "
           "likely waste." + PAST_CAP_TASKS, "percentunit",
           [(f'(sum(increase(tokenmeter_tasks_total{{{TASK}, tokenmeter_outcome="error"}}[$__range])) or vector(0)) / '
             f"(sum(increase(tokenmeter_tasks_total{{{TASK}, {NAMED}}}[$__range])) > 0)", "failed tasks")], thresholds=BAD_HIGH, decimals=3)
    b.stat("Export failures", "OTLP exports that failed (counted in process, they arrive with the next good export). Above "
           "zero: the collector was unreachable for a while; check its health.", "short",
           [(f"sum(increase(tokenmeter_export_failures_total{{{JOB}}}[$__range]))", "failures")],
           thresholds={"mode": "absolute", "steps": [{"value": None, "color": "green"}, {"value": 1, "color": "#EAB839"}]})
    return b


def budget_board():
    b = Board("budget", "In-process budgets as each instance sees them (spent, limit, remaining, time to limit).")
    b.row("Utilization")
    b.bargauge("Budget utilization", "Spent over limit per budget and service (1 = limit reached). Amber from 50%, orange "
               "from 75%, red from 90%: slow down, switch to a cheaper model, or raise the limit deliberately.",
               "percentunit", [(f"max by (job, tokenmeter_budget) (tokenmeter_budget_utilization_ratio{{{JOB}}})",
                                "{{job}} {{tokenmeter_budget}}")], thresholds=BUDGET, minmax=(0, 1), w=12)
    b.gauge("Highest utilization", "The most used budget of the selected services. Over 90%: act before the limit stops "
            "or alerts.", "percentunit", [(f"max(tokenmeter_budget_utilization_ratio{{{JOB}}})", "max")], BUDGET, (0, 1),
            w=6)
    b.stat("Budgets over 90%", "How many budgets are at 90% of their limit or more (each budget of each service once, "
           "however many replicas report it).", "short",
           [(f"count(max by (job, tokenmeter_budget) (tokenmeter_budget_utilization_ratio{{{JOB}}}) >= 0.9) or vector(0)",
             "over 90%")],
           thresholds={"mode": "absolute", "steps": [{"value": None, "color": "green"}, {"value": 1, "color": "red"}]},
           decimals=0)
    b.row("USD budgets")
    b.table("USD remaining", "USD left per budget and period before the limit (zero when over); of several "
            "instances, the one with least left, as utilization shows the most used.", "currencyUSD",
            [(f"min by (job, tokenmeter_budget, tokenmeter_budget_period) (tokenmeter_budget_remaining_USD{{{JOB}}})", "")])
    b.ts("USD spent vs projected", "Spent so far in the period and the projection at the period's end at the current rate. "
         "Projected above the limit: the budget will be exceeded unless spend slows.", "currencyUSD",
         [(f"max by (job, tokenmeter_budget) (tokenmeter_budget_spent_USD{{{JOB}}})", "{{job}} {{tokenmeter_budget}} spent"),
          (f"max by (job, tokenmeter_budget) (tokenmeter_budget_projected_USD{{{JOB}}})",
           "{{job}} {{tokenmeter_budget}} projected"),
          (f"max by (job, tokenmeter_budget) (tokenmeter_budget_limit_USD{{{JOB}}})", "{{job}} {{tokenmeter_budget}} limit")])
    b.row("Token budgets and time to limit")
    b.table("Tokens remaining", "Tokens left per token budget and period (the instance with least left).", "short",
            [(f"min by (job, tokenmeter_budget, tokenmeter_budget_period) (tokenmeter_budget_tokens_remaining{{{JOB}}})", "")])
    b.table("Time to limit", "At the current rate, time until each budget reaches its limit; listed only for budgets that "
            "will reach it before the period resets. Short: act now.", "s",
            [(f"min by (job, tokenmeter_budget) (tokenmeter_budget_time_to_limit_seconds{{{JOB}}})", "")])
    b.ts("Budget alerts fired", "In-process budget alerts by budget and kind (threshold_crossed, projected_overrun), one "
         "bar per interval of at least an hour (each bar counts its own interval only).", "short",
         [(f"sum by (job, tokenmeter_budget, tokenmeter_alert) (increase(tokenmeter_budget_alerts_total{{{JOB}}}[$__interval]))",
           "{{job}} {{tokenmeter_budget}} {{tokenmeter_alert}}")], w=24, bars=True, interval="1h")
    b.row("Budgets of each user, tenant or session")
    b.table("Values nearest their limits", "Budgets of each value of a dimension (a scope such as user=*, session=*): "
            "the 20 values with the highest utilization, by budget and value (label tokenmeter_budget_member; the "
            "panels above show each such budget's highest). Empty without such budgets.", "percentunit",
            [(f'topk(20, max by (job, tokenmeter_budget, tokenmeter_budget_member) '
              f'(tokenmeter_budget_utilization_ratio{{{JOB}, tokenmeter_budget_member!=""}}))', "")], w=24)
    return b


def overview_board():
    b = Board("overview", "tokenmeter at a glance; the linked dashboards (top right) go deeper.")
    b.row("Now")
    total_cost_panel(b, w=4)
    b.stat("Calls", "LLM calls over the range (all outcomes).", "short",
           [(f"sum(increase({CALLS}[$__range]))", "calls")], w=4, decimals=0)
    b.stat("Cost rate", "USD per hour now (rate over the last $__rate_interval, at least four export intervals). "
           "Details: Cost dashboard.", "currencyUSD",
           [(f"sum(rate({COST}[$__rate_interval])) * 3600", "USD/h")], w=4, decimals=4)
    b.stat("Cache hit rate", "Cache reads over all prompt tokens over the range. Details: Cache dashboard.", "percentunit",
           [(f"sum(increase({tokens('cache_read')}[$__range])) / (sum(increase({tokens(PROMPT_TYPES)}[$__range])) > 0)", "hit rate")],
           w=4, thresholds=TRAFFIC_RATIO, decimals=3)
    b.gauge("Efficiency score (1h)", "Lowest in-process efficiency score over the last hour: green >= 80, amber 50-79, "
            "red < 50. Details: Efficiency dashboard." + ONLY_JOB, "none",
            [(f'min(tokenmeter_efficiency_score{{{JOB}, tokenmeter_window="1h"}})', "1h")], TRAFFIC, (0, 100), w=4, h=5)
    b.gauge("Highest budget utilization", "The most used budget. Details: Budget dashboard." + ONLY_JOB, "percentunit",
            [(f"max(tokenmeter_budget_utilization_ratio{{{JOB}}})", "max")], BUDGET, (0, 1), w=4, h=5)
    b.row("Trends")
    b.ts("Cost rate by model", "USD per hour by model.", "currencyUSD",
         [(f"sum by (gen_ai_request_model) (rate({COST}[$__rate_interval])) * 3600", "{{gen_ai_request_model}}")],
         stacked=True)
    b.ts("Tokens by type", "Tokens per minute by type (reasoning left out, it is a part of output).", "short",
         [(f"sum by (gen_ai_token_type) (rate({tokens('input|output|cache_read|cache_write_5m|cache_write_1h')}[$__rate_interval])) * 60",
           "{{gen_ai_token_type}}")], stacked=True)
    b.stat("Unpriced calls", "Calls not in the cost because their model has no price. Above zero: add a price.", "short",
           [(f"sum(increase(tokenmeter_calls_unpriced_total{{{CALL}}}[$__range]))", "unpriced")], w=12, decimals=0,
           thresholds={"mode": "absolute", "steps": [{"value": None, "color": "green"}, {"value": 1, "color": "red"}]})
    b.stat("Error rate", "Failed calls over all calls in the range." + PAST_CAP, "percentunit",
           [(f'(sum(increase(tokenmeter_calls_total{{{CALL}, tokenmeter_outcome="error"}}[$__range])) or vector(0)) / '
             f"(sum(increase(tokenmeter_calls_total{{{CALL}, {NAMED}}}[$__range])) > 0)", "error rate")], w=12, thresholds=BAD_HIGH, decimals=3)
    return b


def main():
    for builder in (overview_board, cost_board, cache_board, efficiency_board, budget_board):
        b = builder()
        path = os.path.join(HERE, f"{b.key}.json")
        with open(path, "w") as f:
            json.dump(b.render(links_for(b.key)), f, indent=2)
            f.write("\n")
        print(path)


if __name__ == "__main__":
    main()
