#!/usr/bin/env python3
"""The ledger oracle: calls spread over minutes, hours, days and weeks (fixed seeds) are fed through the driver
(`oracle-driver --ledger`, a meter on a ManualClock) and the in-process reports' figures are checked against what
README's written rules ("Analytics: ledger, reports, efficiency score", "Memory and cardinality caps", "Query API",
"Money") give, computed here from the calls themselves. Money exact (integer pico-USD); floats only where README makes
them floats, at the tolerances it states (cited where used).

Usage: ledger_test.py DRIVER [SEEDS]   (stdlib only)
"""
import json
import math
import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

# Pico-USD per token (README "Money: the price book": USD per Mtok x 10^6): input, output, write 5m, write 1h, read.
M = 10**6
PRICES = {
    "claude-sonnet-4-5": (3 * M, 15 * M, 3_750_000, 6 * M, 300_000),
    "claude-haiku-4-5": (1 * M, 5 * M, 1_250_000, 2 * M, 100_000),
    "claude-opus-4-1": (15 * M, 75 * M, 18_750_000, 30 * M, 1_500_000),
}
# request id -> canonical id (README: "the ledger files the calls of a model the price book knows under the book's id")
MODELS = {
    "claude-sonnet-4-5-20250929": "claude-sonnet-4-5",
    "claude-sonnet-4-5": "claude-sonnet-4-5",
    "claude-haiku-4-5": "claude-haiku-4-5",
    "claude-opus-4-1": "claude-opus-4-1",
    "mystery-model-x": "mystery-model-x",  # unpriced
}
DIMS = ["session", "user", "project", "agent", "operation", "tenant"]
VALUES = {
    "session": [f"s{i}" for i in range(12)],
    "user": [f"u{i}" for i in range(5)],
    "project": ["helpdesk", "search", "billing"],
    "agent": ["support-bot", "reporter", "triage"],
    "operation": ["answer", "summarize"],
    "tenant": ["acme", "globex"],
}
# per seed: a zone without DST, and one whose 7d/30d windows hold a 23-hour day
SETUPS = [("Asia/Tokyo", datetime(2026, 5, 20, 10, 37, 25)), ("Europe/Paris", datetime(2026, 4, 2, 14, 41, 7)),
          ("UTC", datetime(2026, 11, 3, 0, 12, 44))]
TZ, NOW = None, None


def setup(i):
    global TZ, NOW
    TZ, naive = SETUPS[i % len(SETUPS)]
    NOW = naive.replace(tzinfo=ZoneInfo(TZ)).astimezone(timezone.utc)

problems = []
notes = []  # where README is silent or ambiguous: printed, not failing
checked = [0]


def note(s):
    if s not in notes:
        notes.append(s)


def check(what, got, exp):
    checked[0] += 1
    if got != exp:
        problems.append(f"{what}: crate {got!r}, rules {exp!r}")


def close(what, got, exp, tol):
    checked[0] += 1
    if got is None or exp is None:
        if got != exp:
            problems.append(f"{what}: crate {got!r}, rules {exp!r}")
        return
    if abs(got - exp) > tol:
        problems.append(f"{what}: crate {got!r}, rules {exp!r} (tolerance {tol})")


def ts(dt):
    return dt.timestamp()


def parse(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


# ---- the workload -------------------------------------------------------------------------------------------------


def make_call(rng, t):
    model_req = rng.choice(list(MODELS))
    c = {"op": "call", "at": ts(t), "model": model_req, "provider": "acme" if model_req.startswith("mystery") else "anthropic"}
    dims = {}
    for d in DIMS:
        if rng.random() < 0.8:
            dims[d] = rng.choice(VALUES[d])
    c["dims"] = dims
    kind = rng.random()
    c["dur_ms"] = rng.randint(50, 9000)
    if kind < 0.05:  # unmetered: no usage, an error
        c["error"] = "overloaded_error"
        c["tokens"] = None
        return c
    small = rng.random() < 0.25
    tok = {
        "in": rng.randint(10, 1500) if small else rng.randint(1000, 60000),
        "cr": 0 if small or rng.random() < 0.5 else rng.randint(1000, 40000),
        "cw5": 0 if rng.random() < 0.6 else rng.randint(100, 5000),
        "cw1": 0 if rng.random() < 0.8 else rng.randint(100, 3000),
        "out": rng.randint(1, 400) if small else rng.randint(1, 3000),
    }
    if small:
        tok["cw5"] = tok["cw1"] = 0
    c["tokens"] = tok
    c.update({k: v for k, v in tok.items()})
    if rng.random() < 0.5:
        c["ttft"] = rng.randint(1, 24) / 8  # seconds, exact in ms
    if rng.random() < 0.07:
        c["error"] = "api_error"
    return c


def workload(seed):
    """Events in clock order: calls (some inside task spans), each starting at second 0-20 of its minute and ending
    within it (durations under 10 s), so start, end and task close share their minute, hour and day."""
    rng = random.Random(seed)
    ages = []  # minutes before NOW's minute
    ages += [rng.randint(0, 110) for _ in range(40)]  # minute tier (under 2 hours)
    ages += [rng.randint(130, 47 * 60) for _ in range(60)]  # hour tier
    ages += [rng.randint(50 * 60, 34 * 1440) for _ in range(90)]  # day tier
    ages += [rng.randint(36 * 1440, 70 * 1440) for _ in range(30)]  # month tier
    ages += [rng.randint(401 * 1440, 450 * 1440) for _ in range(5)]  # archive
    minute0 = NOW.replace(second=0, microsecond=0)
    starts = sorted(set(minute0 - timedelta(minutes=a) for a in ages))
    events, calls, tasks = [], [], []
    for m in starts:
        t = m + timedelta(seconds=rng.randint(0, 5))
        if t > NOW - timedelta(seconds=40):
            t = NOW - timedelta(seconds=40)
        if rng.random() < 0.2:  # a task of 1-3 calls
            name = rng.choice(["triage-ticket", "nightly-report", "classify"])
            task = {"name": name, "calls": [], "error": rng.random() < 0.2, "at": ts(t)}
            events.append({"op": "task_open", "at": ts(t), "name": name})
            for i in range(rng.randint(1, 3)):
                c = make_call(rng, t + timedelta(seconds=1 + 11 * i))
                c["dur_ms"] = min(c["dur_ms"], 9000)
                c["task"] = name
                events.append(c)
                calls.append(c)
                task["calls"].append(c)
            events.append({"op": "task_close", "at": ts(t + timedelta(seconds=36)), "error": task["error"]})
            tasks.append(task)
        else:
            c = make_call(rng, t)
            events.append(c)
            calls.append(c)
    return events, calls, tasks


# ---- the rules ----------------------------------------------------------------------------------------------------


def canon(c):
    return MODELS[c["model"]]


def cost(c):
    """Exact pico-USD of a metered priced call; None when unpriced or unmetered."""
    if c["tokens"] is None or canon(c) not in PRICES:
        return None
    p = PRICES[canon(c)]
    t = c["tokens"]
    return t["in"] * p[0] + t["out"] * p[1] + t["cw5"] * p[2] + t["cw1"] * p[3] + t["cr"] * p[4]


def toks(cs):
    r = {"input": 0, "cache_read": 0, "cache_write_5m": 0, "cache_write_1h": 0, "output": 0}
    for c in cs:
        t = c["tokens"] or {"in": 0, "cr": 0, "cw5": 0, "cw1": 0, "out": 0}
        r["input"] += t["in"]
        r["cache_read"] += t["cr"]
        r["cache_write_5m"] += t["cw5"]
        r["cache_write_1h"] += t["cw1"]
        r["output"] += t["out"]
    r["cache_creation"] = r["cache_write_5m"] + r["cache_write_1h"]
    r["reasoning"] = 0
    r["total"] = r["input"] + r["cache_read"] + r["cache_creation"] + r["output"]
    return r


def prompt(c):
    t = c["tokens"]
    return t["in"] + t["cr"] + t["cw5"] + t["cw1"]


def totals(cs):
    return {
        "calls": len(cs),
        "cost_picos": sum(cost(c) or 0 for c in cs),
        "tokens": toks(cs),
        "failed_calls": sum(1 for c in cs if c.get("error")),
        "unmetered_calls": sum(1 for c in cs if c["tokens"] is None),
        "unpriced_calls": sum(1 for c in cs if c["tokens"] is not None and canon(c) not in PRICES),
    }


def local(dt):
    return dt.astimezone(ZoneInfo(TZ))


def window_bounds(w):
    """README line 944: `1h` the current minute and the 59 before it, `6h`/`24h` the current local hour and the 5 or
    23 before it, `7d`/`30d` today and the 6 or 29 local days before it."""
    n = local(NOW)
    if w == "1h":
        return n.replace(second=0, microsecond=0) - timedelta(minutes=59)
    if w in ("6h", "24h"):
        return n.replace(minute=0, second=0, microsecond=0) - timedelta(hours=int(w[:-1]) - 1)
    if w in ("7d", "30d"):
        d = n.replace(hour=0, minute=0, second=0, microsecond=0)
        return (d - timedelta(days=int(w[:-1]) - 1)).replace(tzinfo=ZoneInfo(TZ))
    if w == "all":
        return datetime(1970, 1, 1, tzinfo=timezone.utc)
    raise ValueError(w)


def in_window(cs, w):
    lo = ts(window_bounds(w))
    return [c for c in cs if c["at"] >= lo]


def key_of(c, d):
    if d == "model":
        return canon(c)
    if d == "provider":
        return c["provider"]
    if d == "task":
        return c.get("task", "(none)")
    return c["dims"].get(d, "(none)")


def nearest_rank(vals, q):
    s = sorted(vals)
    return s[max(1, math.ceil(q * len(s))) - 1]


def hdr_top(v):
    """Top of v's hdrhistogram bucket at 2 significant digits (README line 1050-1051: "a percentile or `max` reads the
    top of its bucket, so one 1,000-token call reads 1003")."""
    if v < 256:
        return v
    shift = v.bit_length() - 8
    return ((v >> shift) << shift) + (1 << shift) - 1


# ---- the checks ---------------------------------------------------------------------------------------------------


def check_row(what, row, cs):
    e = totals(cs)
    check(f"{what} calls", row["calls"], e["calls"])
    check(f"{what} cost_picos", row["cost_picos"], e["cost_picos"])
    check(f"{what} tokens", row["tokens"], e["tokens"])
    check(f"{what} failed_calls", row["failed_calls"], e["failed_calls"])
    check(f"{what} unmetered_calls", row["unmetered_calls"], e["unmetered_calls"])
    check(f"{what} unpriced_calls", row["unpriced_calls"], e["unpriced_calls"])
    # README line 952-954: `_usd` floats made at the edge of the exact pico-USD figure
    close(f"{what} cost_usd", row["cost_usd"], e["cost_picos"] / 1e12, 1e-6)


def group_check(what, res, cs, d):
    # rows without calls: a task's own row (its span carries no dimension of its calls)
    rows = {r["key"]: r for r in res["groups"] if r["calls"]}
    exp = {}
    for c in cs:
        exp.setdefault(key_of(c, d), []).append(c)
    check(f"{what} keys", sorted(rows), sorted(exp))
    for k, v in exp.items():
        if k in rows:
            check_row(f"{what} [{k}]", rows[k], v)


def queries(calls, tasks):
    """(id, query op, checker) triples."""
    qs = []

    def q(kind, checker, **kw):
        qs.append(({"op": "query", "id": len(qs), "kind": kind, **kw}, checker))

    for w in ["1h", "6h", "24h", "7d", "30d", "all"]:
        cs = in_window(calls, w)

        def tot(r, w=w, cs=cs):
            check_row(f"query({w}) totals", r["totals"], cs)
            ntasks = sum(1 for t in tasks if t["at"] >= ts(window_bounds(w)))
            check(f"query({w}) totals tasks", r["totals"]["tasks"], ntasks)

        q("query", tot, window=w)
        for d in ["model", "provider", "session", "user", "project", "agent", "operation", "task", "tenant"]:
            def grp(r, w=w, cs=cs, d=d):
                check_row(f"query({w}, by {d}) totals", r["totals"], cs)
                group_check(f"query({w}, by {d})", r, cs, d)

            q("query", grp, window=w, group_by=d)
    # filters (README line 900: a filtered query's `unattributed_calls` 0 means exact; a model filter takes any id)
    for w in ["24h", "7d", "30d"]:
        for f, d, gb in [
            ("agent=support-bot", "agent", "model"),
            ("project=helpdesk", "project", "agent"),
            ("model=claude-sonnet-4-5-20250929", "model", "project"),
            ("tenant=acme", "tenant", "operation"),
            ("task=classify", "task", "agent"),
        ]:
            val = f.split("=", 1)[1]
            val = MODELS.get(val, val)
            cs = [c for c in in_window(calls, w) if key_of(c, d) == val]

            def flt(r, w=w, f=f, cs=cs, gb=gb):
                check(f"query({w}, {f}) unattributed_calls", r.get("unattributed_calls"), 0)
                check_row(f"query({w}, {f}) totals", r["totals"], cs)
                group_check(f"query({w}, {f}, by {gb})", r, cs, gb)

            q("query", flt, window=w, filters=[f], group_by=gb)
    # session filter alone, and with project (README Query API: "except project with session")
    for w in ["24h", "30d"]:
        cs = [c for c in in_window(calls, w) if key_of(c, "session") == "s3"]
        q("query", lambda r, w=w, cs=cs: check_row(f"query({w}, session=s3) totals", r["totals"], cs), window=w,
          filters=["session=s3"])
        cs2 = [c for c in cs if key_of(c, "project") == "search"]
        q("query", lambda r, w=w, cs=cs2: check_row(f"query({w}, session=s3, project=search) totals", r["totals"], cs),
          window=w, filters=["session=s3", "project=search"])
    # time grains: day over 30d, hour over 24h, month over all (unfiltered); day over 30d filtered
    for w, grain, fl in [("30d", "day", None), ("24h", "hour", None), ("all", "month", None), ("30d", "day", "agent=reporter"),
                         ("24h", "hour", "project=billing")]:
        cs = in_window(calls, w)
        if fl:
            d, v = fl.split("=")
            cs = [c for c in cs if key_of(c, d) == v]

        def grain_key(c, grain=grain):
            t = local(datetime.fromtimestamp(c["at"], timezone.utc))
            t = t.replace(minute=0, second=0, microsecond=0)
            if grain in ("day", "month"):
                t = t.replace(hour=0)
            if grain == "month":
                t = t.replace(day=1)
            return t

        def tg(r, w=w, grain=grain, fl=fl, cs=cs, grain_key=grain_key):
            what = f"query({w}, {fl or 'unfiltered'}, by {grain})"
            check_row(f"{what} totals", r["totals"], cs)
            exp = {}
            for c in cs:
                exp.setdefault(grain_key(c), []).append(c)
            got = {}
            for row in r["groups"]:
                k = parse(row["key"])
                # README line 1141-ish: keyed by their RFC 3339 start at the zone's offset then
                check(f"{what} key offset {row['key']}", k.utcoffset(), local(k).utcoffset())
                if row["calls"] or k in exp:
                    got[k] = row
            check(f"{what} non-empty keys", sorted(got), sorted(exp))
            for k, v in exp.items():
                if k in got:
                    check_row(f"{what} [{k.isoformat()}]", got[k], v)

        q("query", tg, window=w, group_by=grain, filters=[fl] if fl else [])
    # ranges aligned to local hours / days / minutes where each tier resolves them (README "Edges", line 1109-1111)
    n = local(NOW)
    h0 = n.replace(minute=0, second=0, microsecond=0)
    d0 = n.replace(hour=0, minute=0, second=0, microsecond=0)
    m0 = n.replace(second=0, microsecond=0)
    for lo, hi in [(m0 - timedelta(minutes=97), m0 - timedelta(minutes=13)),  # minute tier
                   (h0 - timedelta(hours=40), h0 - timedelta(hours=7)),  # hour tier
                   (d0 - timedelta(days=30), d0 - timedelta(days=4)),  # day tier
                   (h0 - timedelta(hours=30, minutes=30), h0 - timedelta(hours=5, minutes=30))]:  # hour tier, mid-hour
        rng_s = f"{lo.isoformat()}..{hi.isoformat()}"
        a, b = ts(lo), ts(hi)
        if lo.minute == 30:  # a bucket belongs to a window when its start lies in it: whole hours starting in [a, b)
            a, b = a + 1800, b + 1800
        cs = [c for c in calls if a <= c["at"] < b]
        for gb in [None, "model", "agent"]:
            q("query", lambda r, s=rng_s, cs=cs, gb=gb: (check_row(f"query({s}, by {gb}) totals", r["totals"], cs),
                                                         gb and group_check(f"query({s}, by {gb})", r, cs, gb)),
              window=rng_s, **({"group_by": gb} if gb else {}))

    # usage summary
    for w in ["1h", "24h", "7d", "30d"]:
        cs = in_window(calls, w)

        def us(r, w=w, cs=cs):
            e = totals(cs)
            what = f"usage_summary({w})"
            check(f"{what} calls", r["calls"], e["calls"])
            check(f"{what} cost_picos", r["cost_picos"], e["cost_picos"])
            check(f"{what} tokens", r["tokens"], e["tokens"])
            check(f"{what} failed_calls", r["failed_calls"], e["failed_calls"])
            check(f"{what} unmetered_calls", r["unmetered_calls"], e["unmetered_calls"])
            check(f"{what} metered_calls", r["metered_calls"], e["calls"] - e["unmetered_calls"])
            check(f"{what} unpriced.calls", r["unpriced"]["calls"], e["unpriced_calls"])
            check(f"{what} unpriced.models", r["unpriced"]["models"],
                  sorted({canon(c) for c in cs if c["tokens"] and canon(c) not in PRICES}))
            check(f"{what} unpriced.tokens", r["unpriced"]["tokens"],
                  toks([c for c in cs if c["tokens"] and canon(c) not in PRICES])["total"])
            check(f"{what} tasks", r["tasks"], sum(1 for t in tasks if t["at"] >= ts(window_bounds(w))))
            for side, d in [("by_model", "model"), ("by_provider", "provider")]:
                rows = {x["name"]: x for x in r[side]}
                exp = {}
                for c in cs:
                    exp.setdefault(key_of(c, d), []).append(c)
                check(f"{what} {side} names", sorted(rows), sorted(exp))
                for k, v in exp.items():
                    if k not in rows:
                        continue
                    ev = totals(v)
                    check(f"{what} {side}[{k}] calls", rows[k]["calls"], ev["calls"])
                    check(f"{what} {side}[{k}] tokens", rows[k]["tokens"], ev["tokens"]["total"])
                    close(f"{what} {side}[{k}] cost_usd", rows[k]["cost_usd"], ev["cost_picos"] / 1e12, 1e-6)
                    if e["cost_picos"]:
                        close(f"{what} {side}[{k}] cost_share", rows[k]["cost_share"], ev["cost_picos"] / e["cost_picos"], 1e-6)
                    close(f"{what} {side}[{k}] token_share", rows[k]["token_share"],
                          ev["tokens"]["total"] / e["tokens"]["total"], 1e-6)
            # averages are exact (README line 922: "`averages` are exact")
            av = r["averages"]
            close(f"{what} averages.duration_ms_per_call", av["duration_ms_per_call"],
                  sum(c["dur_ms"] for c in cs) / len(cs), 1e-6 * max(1, sum(c["dur_ms"] for c in cs) / len(cs)))
            # README "Reports", usage summary: "tokens per call over the metered calls, those whose usage was
            # recorded; cost per call over the priced metered calls; duration per call over every call"
            mc = e["calls"] - e["unmetered_calls"]
            close(f"{what} averages.tokens_per_call", av["tokens_per_call"], e["tokens"]["total"] / mc, 1e-3)
            close(f"{what} averages.output_tokens_per_call", av["output_tokens_per_call"], e["tokens"]["output"] / mc, 1e-3)
            close(f"{what} averages.prompt_tokens_per_call", av["prompt_tokens_per_call"],
                  (e["tokens"]["total"] - e["tokens"]["output"]) / mc, 1e-3)
            pc = sum(1 for c in cs if cost(c) is not None)
            close(f"{what} averages.cost_per_call_usd", av["cost_per_call_usd"], e["cost_picos"] / 1e12 / pc, 1e-6)
            # distributions: percentiles at 2 significant digits, read at the top of their bucket (README line
            # 1048-1051); the mean within ~1% (line 922)
            dist = r["distributions"]
            for name, vals in [
                ("duration_ms", [c["dur_ms"] for c in cs]),
                ("time_to_first_token_ms", [round(c["ttft"] * 1000) for c in cs if "ttft" in c]),
                ("input_tokens", [prompt(c) for c in cs if c["tokens"]]),
                ("output_tokens", [c["tokens"]["out"] for c in cs if c["tokens"]]),
            ]:
                dd = dist.get(name)
                if not vals:
                    continue
                if dd is None:
                    problems.append(f"{what} distributions.{name} missing")
                    continue
                check(f"{what} distributions.{name}.count", dd["count"], len(vals))
                check(f"{what} distributions.{name}.max", dd["max"], hdr_top(max(vals)))
                for p in [50, 90, 95, 99]:
                    check(f"{what} distributions.{name}.p{p}", dd[f"p{p}"], hdr_top(nearest_rank(vals, p / 100)))
                m = sum(vals) / len(vals)
                close(f"{what} distributions.{name}.mean", dd["mean"], m, 0.01 * m + 0.5)
            # run-rate (README lines 937-941): the window's cost per day times the days in this month, over the part up
            # to now (the sample's 24h at 12:30: 13:00..12:31, 0.979861 days)
            if w in ("24h", "7d", "30d"):
                end = NOW.replace(second=0, microsecond=0) + timedelta(minutes=1)
                rdays = (end - window_bounds(w)).total_seconds() / 86400
                close(f"{what} run_rate_days", r["run_rate_days"], rdays, 1e-6)
                n = local(NOW)
                nxt = (n.replace(day=28) + timedelta(days=4)).replace(day=1)
                dim_ = (nxt - timedelta(days=1)).day
                exp_p = e["cost_picos"] / 1e12 / rdays * dim_
                close(f"{what} monthly_projection_usd", r["monthly_projection_usd"], exp_p, 1e-6 * max(1, exp_p))
            # hourly series up to 49 hours, else daily (line 922)
            ser = r["time_series"]
            grain = "hour" if w in ("1h", "24h") else "day"
            check(f"{what} time_series.grain", ser["grain"], grain)
            exp = {}
            for c in cs:
                t = local(datetime.fromtimestamp(c["at"], timezone.utc)).replace(minute=0, second=0, microsecond=0)
                if grain == "day":
                    t = t.replace(hour=0)
                exp.setdefault(t, []).append(c)
            got = {parse(p["timestamp"]): p for p in ser["points"] if p["calls"]}
            check(f"{what} time_series non-empty points", sorted(got), sorted(exp))
            for k, v in exp.items():
                if k in got:
                    ev = totals(v)
                    check(f"{what} time_series[{k.isoformat()}] calls", got[k]["calls"], ev["calls"])
                    check(f"{what} time_series[{k.isoformat()}] tokens", got[k]["tokens"], ev["tokens"]["total"])
                    close(f"{what} time_series[{k.isoformat()}] cost_usd", got[k]["cost_usd"], ev["cost_picos"] / 1e12, 1e-6)

        q("usage_summary", us, window=w)

    # cache report (README line 924 and the efficiency score's cache_hit_rate definition, line 976)
    for w in ["24h", "7d", "30d"]:
        cs = in_window(calls, w)

        def cr(r, w=w, cs=cs):
            what = f"cache_report({w})"
            m = r["cache_metrics"]
            e = toks(cs)
            pr = e["input"] + e["cache_read"] + e["cache_creation"]
            close(f"{what} hit_rate", m["hit_rate"], e["cache_read"] / pr, 1e-6)
            check(f"{what} tokens_saved", m["tokens_saved"], e["cache_read"])
            check(f"{what} cache_creation_tokens", m["cache_creation_tokens"], e["cache_creation"])
            saved = sum(c["tokens"]["cr"] * (PRICES[canon(c)][0] - PRICES[canon(c)][4]) for c in cs
                        if c["tokens"] and canon(c) in PRICES)
            close(f"{what} cost_saved", m["cost_saved"], saved / 1e12, 1e-6)
            check(f"{what} unpriced_calls", m["unpriced_calls"],
                  sum(1 for c in cs if c["tokens"] and canon(c) not in PRICES))
            hits = sum(1 for c in cs if c["tokens"] and c["tokens"]["cr"] > 0)
            check(f"{what} total_cache_hits", m["total_cache_hits"], hits)

        q("cache_report", cr, window=w)

    # efficiency report: the unweighted figures and the rows' sums (README lines 960-990)
    for w, d in [("7d", "agent"), ("30d", "model"), ("24h", "project"), ("30d", "session")]:
        cs = in_window(calls, w)

        def ef(r, w=w, d=d, cs=cs, tasks=tasks):
            what = f"efficiency_report({w}, {d})"
            e = toks(cs)
            pr = e["input"] + e["cache_read"] + e["cache_creation"]
            s = r["efficiency_scores"]
            close(f"{what} cache_hit_rate", s.get("cache_hit_rate", r.get("cache_hit_rate")), e["cache_read"] / pr, 1e-6)
            io = r.get("input_output_ratio", s.get("input_output_ratio"))
            close(f"{what} input_output_ratio", io, pr / e["output"], 1e-3)
            rows = {x["category"]: x for x in r["breakdowns"]}
            # components the README defines from the calls alone (lines 966-969): waste, right_sizing
            comp = {x["name"]: x["value"] for x in s["components"]}
            total = sum(cost(c) or 0 for c in cs)
            failed = sum(cost(c) or 0 for c in cs if c.get("error"))
            ftasks = sum(cost(c) or 0 for t in tasks if t["error"] for c in t["calls"] if c in cs)
            close(f"{what} waste", comp["waste"], 1 - max(failed, ftasks) / total, 1e-6)
            # README "The efficiency score": right_sizing is the share of spend on small premium calls "that
            # succeeded (a failed call's cost is in `waste`, not counted twice)", over all spend
            premium = sum(cost(c) or 0 for c in cs if c["tokens"] and canon(c) in PRICES and PRICES[canon(c)][0] >= 4 * M
                          and prompt(c) <= 2000 and c["tokens"]["out"] <= 500 and not c.get("error"))
            close(f"{what} right_sizing", comp["right_sizing"], 1 - premium / total, 1e-6)
            exp = {}
            for c in cs:
                exp.setdefault(key_of(c, d), []).append(c)
            check(f"{what} breakdown keys", sorted(rows), sorted(exp))
            for k, v in exp.items():
                if k in rows:
                    ev = totals(v)
                    check(f"{what} [{k}] calls", rows[k]["calls"], ev["calls"])
                    close(f"{what} [{k}] cost_usd", rows[k]["cost_usd"], ev["cost_picos"] / 1e12, 1e-6)
                    check(f"{what} [{k}] unpriced_calls", rows[k]["unpriced_calls"], ev["unpriced_calls"])
                    check(f"{what} [{k}] metered_calls", rows[k]["metered_calls"], ev["calls"] - ev["unmetered_calls"])

        q("efficiency_report", ef, window=w, dim=d)

    # time of day over 7d: tokens and calls per local hour (README line 927)
    cs7 = in_window(calls, "7d")

    def tod(r, cs=cs7):
        exp = {}
        for c in cs:
            h = local(datetime.fromtimestamp(c["at"], timezone.utc)).hour
            exp.setdefault(h, []).append(c)
        hours = r.get("hours") or r.get("by_hour")
        got = {x["hour"]: x for x in hours if x["calls"]}
        check("time_of_day(7d) hours with calls", sorted(got), sorted(exp))
        for h, v in exp.items():
            if h in got:
                check(f"time_of_day(7d) [{h}] calls", got[h]["calls"], len(v))
                check(f"time_of_day(7d) [{h}] tokens", got[h]["tokens"], toks(v)["total"])

    q("time_of_day", tod, window="7d")

    # breakdown tree project > session (README line 926): calls without a session are their project's `(none)`
    cs = in_window(calls, "30d")

    def tree(r, cs=cs):
        check("breakdown_tree(30d, project, session) calls", r["calls"], len(cs))
        for node in r["nodes"]:
            pk = node.get("key", node.get("name"))
            pcs = [c for c in cs if key_of(c, "project") == pk]
            check(f"breakdown_tree [{pk}] calls", node["calls"], len(pcs))
            for ch in node.get("children", []):
                sk = ch.get("key", ch.get("name"))
                check(f"breakdown_tree [{pk}/{sk}] calls", ch["calls"],
                      sum(1 for c in pcs if key_of(c, "session") == sk))
        check("breakdown_tree project keys", sorted(n.get("key", n.get("name")) for n in r["nodes"]),
              sorted({key_of(c, "project") for c in cs}))

    q("breakdown_tree", tree, window="30d", parent="project", child="session")

    # compare_periods (README line 930): the previous side runs from one period before the window's first bucket
    # to one period before now's hour; its `calls` count that span (the share of the next hour goes to rates only)
    n = local(NOW)
    for w, span in [("24h", timedelta(hours=24)), ("7d", timedelta(days=7))]:
        lo = window_bounds(w)
        h0 = n.replace(minute=0, second=0, microsecond=0)
        prev = [c for c in calls if ts(lo - span) <= c["at"] < ts(h0 - span)]
        cur = in_window(calls, w)

        def cp(r, w=w, prev=prev, cur=cur, lo=lo, span=span, h0=h0):
            for side, v in [("a", prev), ("b", cur)]:
                check(f"compare_periods({w}) {side} calls", r[side]["calls"], len(v))
                check(f"compare_periods({w}) {side} tokens", r[side]["tokens"], toks(v)["total"])
                close(f"compare_periods({w}) {side} cost_usd", r[side]["cost_usd"], totals(v)["cost_picos"] / 1e12, 1e-6)
            check(f"compare_periods({w}) a.window.from", parse(r["a"]["window"]["from"]), lo - span)
            check(f"compare_periods({w}) a.window.to", parse(r["a"]["window"]["to"]), h0 - span)

        q("compare_periods", cp, window=w)

    # compare_values counts (README line 930)
    def cv(r, cs=in_window(calls, "24h")):
        for side, v in [("a", "support-bot"), ("b", "reporter")]:
            vs = [c for c in cs if key_of(c, "agent") == v]
            check(f"compare_values(24h, agent) {side} calls", r[side]["calls"], len(vs))
            check(f"compare_values(24h, agent) {side} tokens", r[side]["tokens"], toks(vs)["total"])
            close(f"compare_values(24h, agent) {side} cost_usd", r[side]["cost_usd"], totals(vs)["cost_picos"] / 1e12, 1e-6)

    q("compare_values", cv, window="24h", dim="agent", a="support-bot", b="reporter")
    return qs


def run(driver, start, events, qs):
    plan = [json.dumps(start)] + [json.dumps({k: v for k, v in e.items() if k not in ("tokens", "task")}) for e in events]
    plan.append(json.dumps({"op": "clock", "at": ts(NOW)}))
    plan += [json.dumps(q) for q, _ in qs]
    p = subprocess.run([driver, "--ledger"], input="\n".join(plan) + "\n", capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        print(p.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"driver failed ({p.returncode})")
    return {r["id"]: r["r"] for r in map(json.loads, p.stdout.splitlines())}


def scenario(driver, seed):
    setup(seed - 1)
    events, calls, tasks = workload(seed)
    qs = queries(calls, tasks)
    out = run(driver, {"at": events[0]["at"] - 60, "tz": TZ}, events, qs)
    for q, checker in qs:
        r = out[q["id"]]
        if "err" in r:
            problems.append(f"{q['kind']}({q.get('window')}, {q.get('filters', '')}, {q.get('group_by', q.get('dim', ''))}): error {r['err']}")
            continue
        try:
            checker(r["ok"])
        except (KeyError, TypeError) as e:
            problems.append(f"{q['kind']}({q.get('window')}) shape: {e!r}")
    return len(calls), len(qs)


def caps(driver):
    """Past a cap values share `(other)` and totals stay exact (README line 1054-1055); minute tier caps 64 sessions
    and 64 compound series (line 1068-1072); a filter on a folded value says how many calls may be its."""
    setup(0)
    t = NOW - timedelta(minutes=20)
    t = t.replace(second=0, microsecond=0)
    events, calls = [], []
    for i in range(100):  # 100 sessions and 100 projects in one minute, two models
        c = {"op": "call", "at": ts(t + timedelta(seconds=i * 0.5)), "model": "claude-haiku-4-5" if i % 2 else "claude-sonnet-4-5",
             "provider": "anthropic", "dims": {"session": f"cap-s{i}", "project": f"cap-p{i}", "agent": "capper"},
             "dur_ms": 10, "in": 1000 + i, "cr": 0, "cw5": 0, "cw1": 0, "out": 10 + i}
        c["tokens"] = {"in": c["in"], "cr": 0, "cw5": 0, "cw1": 0, "out": c["out"]}
        events.append(c)
        calls.append(c)
    qs = []

    def q(checker, **kw):
        qs.append(({"op": "query", "id": len(qs), "kind": "query", "window": "1h", **kw}, checker))

    def by(d):
        def f(r):
            check_row(f"caps query(1h, by {d}) totals", r["totals"], calls)
            keys = [g["key"] for g in r["groups"]]
            s = sum(g["calls"] for g in r["groups"])
            check(f"caps query(1h, by {d}) rows add up to calls", s, 100)
            check(f"caps query(1h, by {d}) rows add up to cost", sum(g["cost_picos"] for g in r["groups"]),
                  totals(calls)["cost_picos"])
            if d == "model":
                group_check(f"caps query(1h, by {d})", r, calls, d)
            elif d == "agent":
                # README "Memory and cardinality caps": "calls without a task have none to fold, so 100 projects in
                # one minute with no task still read 36 of 100 calls by agent as `(other)`" (64 series, the minute's
                # cap, keep theirs; the rest go to the per-model overflow)
                rows = {g["key"]: g["calls"] for g in r["groups"]}
                check(f"caps query(1h, by {d}) task-less calls past the cap", rows, {"capper": 64, "(other)": 36})
            else:
                check(f"caps query(1h, by {d}) has (other)", "(other)" in keys, True)
                named = [k for k in keys if k != "(other)"]
                check(f"caps query(1h, by {d}) named rows at the minute cap", len(named), 64)
                for g in r["groups"]:
                    if g["key"] != "(other)":
                        cs = [c for c in calls if key_of(c, d) == g["key"]]
                        check_row(f"caps query(1h, by {d}) [{g['key']}]", g, cs)
        return f

    for d in ["session", "project", "model", "agent"]:
        q(by(d), group_by=d)

    def folded(r):
        check("caps query(1h, session=cap-s99) unattributed_calls > 0", (r.get("unattributed_calls") or 0) > 0, True)

    q(folded, filters=["session=cap-s99"])
    q(folded, filters=["project=cap-p99"])
    out = run(driver, {"at": ts(t) - 60, "tz": TZ}, events, qs)
    for qq, checker in qs:
        r = out[qq["id"]]
        if "err" in r:
            problems.append(f"caps {qq}: error {r['err']}")
        else:
            checker(r["ok"])
    return len(calls), len(qs)


def cache_chain(driver):
    """One session on one model (README lines 966-969, 924): context reuse and cache-write use, hand-computed."""
    setup(2)
    t0 = ts(NOW) - 2400
    base = {"op": "call", "model": "claude-sonnet-4-5", "provider": "anthropic", "dims": {"session": "S", "agent": "x"},
            "dur_ms": 100, "cr": 0, "cw5": 0, "cw1": 0, "out": 100}
    calls = [
        {**base, "at": t0, "in": 5000, "cw5": 3000},  # writes 3000
        {**base, "at": t0 + 60, "in": 500, "cr": 3000, "cw5": 5000},  # reads them; previous prompt 8000 reusable
        {**base, "at": t0 + 1800, "in": 9000},  # 29 min later: nothing reusable; the 5000 expired unread
        {**base, "at": t0 + 1860, "in": 7000, "cw1": 2000},  # previous prompt 9000 reusable, none read; 1h write pending
    ]
    qs = [({"op": "query", "id": 0, "kind": "efficiency_report", "window": "6h", "dim": "agent"}, None),
          ({"op": "query", "id": 1, "kind": "cache_report", "window": "6h"}, None)]
    out = run(driver, {"at": t0 - 60, "tz": TZ}, calls, qs)
    sc = out[0]["ok"]["efficiency_scores"]
    comp = {x["name"]: x["value"] for x in sc["components"]}
    close("cache chain cache_reuse", comp["cache_reuse"], 3000 / 17000, 1e-9)
    check("cache chain reusable_tokens", sc["reusable_tokens"], 17000)
    # written 10,000; 5,000 expired unread; the 1h write has not expired: the share of those written (line 969)
    close("cache chain cache_write_use", comp["cache_write_use"], 1 - 5000 / 10000, 1e-9)
    overall = 40 * 3000 / 17000 + 25 + 20 + 15 * 0.5
    check("cache chain overall (rounded to 0.1)", sc["overall"], round(overall, 1))
    check("cache chain band", sc["band"], "amber")
    cm = out[1]["ok"]["cache_metrics"]
    check("cache chain reused_tokens", cm["reused_tokens"], 3000)
    close("cache chain hit_rate", cm["hit_rate"], 3000 / 34500, 1e-9)
    close("cache chain cost_saved", cm["cost_saved"], 3000 * (3 - 0.3) / 1e6, 1e-9)
    uw = out[1]["ok"]["unread_cache_writes"]
    check("cache chain unread writes", (uw["writes"], uw["tokens"]), (1, 5000))
    # README line 1021-1022: the cache report's "wasted" figure is the premium paid over the input rate
    close("cache chain unread wasted_usd", uw["wasted_usd"], 5000 * 0.75 / 1e6, 1e-9)
    return len(calls), len(qs)


def main():
    driver = sys.argv[1]
    seeds = sys.argv[2] if len(sys.argv) > 2 else "1-2"
    a, b = map(int, seeds.split("-"))
    n_calls = n_q = 0
    for seed in range(a, b + 1):
        c, qn = scenario(driver, seed)
        n_calls += c
        n_q += qn
    for part in (caps, cache_chain):
        c, qn = part(driver)
        n_calls += c
        n_q += qn
    print(f"ledger oracle: {n_calls} calls, {n_q} queries, {checked[0]} figures checked, {len(problems)} disagreements")
    for p in problems[:40]:
        print("  " + p)
    for n in notes:
        print("  note (README silent or ambiguous, not failing): " + n)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
