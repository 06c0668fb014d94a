#!/usr/bin/env python3
"""Budgets, alerts, enforcement and the journal's restart, against README.md's written rules ("Budgets, alerts and
the journal": Budgets, A budget for each user, Reading budget state, Alerts, Enforcement, The journal).

Random budgets (USD and tokens; everything, one dimension value, a model, each user / tenant; day, week, month in
zones with DST and odd offsets, other week starts, rolling windows) and random calls at ManualClock times go
through the driver (`oracle-driver budgets`); figures here are computed with exact fractions and zoneinfo:

  - "A call counts in every budget whose scope it matches, at the moment it ended, with its exact priced cost";
    "Calendar periods start at local midnight in the budget's zone"; weeks from Monday or `with_week_start`;
  - "Each threshold fires once per period per budget, when spend first reaches it; one expensive call can cross
    several at once, and each fires"; a calendar budget's one projected-overrun alert per period "once there is
    evidence for that rate: 10% of the period passed, or a quarter of the limit spent once 1% of the period has
    passed"; a rolling threshold "re-arms when spend falls back below it by 5% of the limit (at most half the
    threshold)";
  - rolling: "a call counts for at least the duration and at most a sixtieth longer" (event times are drawn so
    that no call's age falls in that band: the spend is then exact);
  - `check_budget` refuses when a Block budget covering the request "is exhausted" ("refuses once the limit is
    reached ... the call that crosses it ... still go[es] through");
  - each value: "one state per value that has spent in its current period, ordered by value"; `budget_status_for`
    gives "$0 spent if she has not spent this period";
  - restart: "Budget periods and crossed thresholds come back as they were"; "Replay itself delivers no alert; it
    marks delivered those the journal holds for a budget of the same name, unit, period, limit and scope in the
    same period"; "A threshold that replayed spend has reached but that was never alerted (the limit was lowered,
    the budget or threshold is new ...) fires with the first call, check_budget or budget_status after the build".

  python3 budget_test.py DRIVER SEEDS N      SEEDS like 1-6, N events per seed before and after the restart
"""
import json
import random
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo

UTC = timezone.utc
# USD per million tokens: uncached input, output, cache read (DESIGN.md's table; prompts kept under 200,000).
PRICES = {
    "claude-sonnet-4-5": (3, 15, Fraction(3, 10)),
    "claude-haiku-4-5": (1, 5, Fraction(1, 10)),
    "claude-opus-4-6": (5, 25, Fraction(1, 2)),
}
ZONES = ["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "America/Havana",
         "America/Santiago", "Asia/Kathmandu", "Pacific/Chatham"]
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
USERS = ["alice", "bob", "carol", "dave", "Alice", "émile"]
TENANTS = ["acme", "globex", "initech"]
PROJECTS = ["p1", "p2"]
AGENTS = ["a1", "a2", "a3"]
ROLLING = [3600, 5400, 86400, 7 * 86400, 600]
# Anchors near DST changes of the zones above (2026).
ANCHORS = ["2026-03-05", "2026-03-26", "2026-04-02", "2026-09-01", "2026-10-01", "2026-10-22", "2026-02-20"]


def iso(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")[:26] + "+00:00" if "." in s else s.replace("Z", "+00:00"))


def pt(s):
    # RFC 3339 with up to nanoseconds, to a datetime (microseconds are enough: the driver's times are whole ms)
    s = s.replace("Z", "")
    if "." in s:
        a, b = s.split(".")
        s = a + "." + (b + "000000")[:6]
    return datetime.fromisoformat(s).replace(tzinfo=UTC)


def local_midnight(d, tz):
    """The first instant of local date d in tz (a midnight skipped by DST: the instant the day begins)."""
    naive = datetime(d.year, d.month, d.day)
    t = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    # a nonexistent 00:00 read with the offset before the gap is the gap's instant: the day's first
    # check the instant's local date is d; else step forward minute by minute (never needed for the zones here)
    while t.astimezone(tz).date() < d:
        t += timedelta(minutes=1)
    # ambiguous midnight: the first occurrence (fold=0) is the earlier instant
    return t


def calendar_period(b, t):
    tz = ZoneInfo(b["tz"])
    d = t.astimezone(tz).date()
    if b["period"] == "day":
        s, e = d, d + timedelta(days=1)
    elif b["period"] == "week":
        ws = WEEKDAYS.index(b.get("week_start", "Mon"))
        s = d - timedelta(days=(d.weekday() - ws) % 7)
        e = s + timedelta(days=7)
    else:
        s = d.replace(day=1)
        e = (s + timedelta(days=32)).replace(day=1)
    return local_midnight(s, tz), local_midnight(e, tz)


def cost_picos(c):
    i, o, r = PRICES[c["model"]]
    return (c["input"] * i + c["output"] * o + c["cache_read"] * r) * 10**6


def units(b, c):
    return cost_picos(c) if "limit_micros" in b else c["input"] + c["output"] + c["cache_read"]


def limit_units(b):
    return b["limit_micros"] * 10**6 if "limit_micros" in b else b["limit_tokens"]


def member_of(b, dims, model):
    """None: the call (or request) is not in scope; "" the budget's one account; else the value's account."""
    sc = b["scope"]
    if not sc:
        return ""
    if "each" in sc:
        v = dims.get(sc["each"])
        return v if v else None
    if "model" in sc:
        return "" if model == sc["model"] else None
    return "" if dims.get(sc["dim"]) == sc["value"] else None


def scope_str(b, member):
    sc = b["scope"]
    if not sc:
        return "everything"
    if "each" in sc:
        return f"{sc['each']}={member}"
    if "model" in sc:
        return f"model={sc['model']}"
    return f"{sc['dim']}={sc['value']}"


def rolling(b):
    return isinstance(b["period"], dict)


def rearm_level(b, p):
    # spend must fall below (p - min(5, p/2))% of the limit
    return Fraction(p, 100) * limit_units(b) - min(Fraction(5, 100), Fraction(p, 200)) * limit_units(b)


def amt(b, v):
    return {"usd": str(v)} if "limit_micros" in b else {"tokens": str(v)}


def unamt(a):
    return int(a["usd"] if "usd" in a else a["tokens"])


class Model:
    """The expected state of one budget configuration, from every call so far (the journal keeps them all).
    `mode` chooses when a rolling threshold re-arms: "before" a call is added (the spend the call finds) or "after"."""

    def __init__(self, budgets, mode):
        self.budgets = budgets
        self.mode = mode
        self.calls = []  # (t, dims, model, call)
        # (budget name, member, period key) -> set of thresholds held (fired, not re-armed)
        self.fired = {}
        self.projected = {}  # (name, member, period start) -> fired
        self.delivered = []  # alerts delivered: dicts for the journal

    def spend(self, b, member, t):
        """(units, calls, oldest call time) of the account at t."""
        tot, n, oldest = 0, 0, None
        if rolling(b):
            D = b["period"]["rolling"]
            for (tc, dims, model, c) in self.calls:
                if member_of(b, dims, model) == member and timedelta(0) <= t - tc < timedelta(seconds=D):
                    tot += units(b, c)
                    n += 1
                    oldest = tc if oldest is None else min(oldest, tc)
        else:
            s, e = calendar_period(b, t)
            for (tc, dims, model, c) in self.calls:
                if member_of(b, dims, model) == member and s <= tc <= t:
                    tot += units(b, c)
                    n += 1
        return tot, n, oldest

    def key(self, b, member, t):
        return (b["name"], member, None if rolling(b) else calendar_period(b, t)[0])

    def members(self, b, t):
        ms = set()
        for (tc, dims, model, c) in self.calls:
            m = member_of(b, dims, model)
            if m is not None:
                ms.add(m)
        return sorted(m for m in ms if self.spend(b, m, t)[1] > 0)

    def rearm(self, b, member, t):
        if not rolling(b):
            return
        held = self.fired.get(self.key(b, member, t))
        if not held:
            return
        sp = self.spend(b, member, t)[0]
        for p in list(held):
            if sp < rearm_level(b, p):
                held.discard(p)

    def alerts_at(self, b, member, t, owed_only=False):
        """Threshold alerts due now for the account (after its spend changed, or after a build)."""
        out = []
        sp = self.spend(b, member, t)[0]
        held = self.fired.setdefault(self.key(b, member, t), set())
        L = limit_units(b)
        for p in b.get("thresholds", [50, 75, 90, 100]):
            if p not in held and sp * 100 >= p * L:
                held.add(p)
                out.append(("t", p, b["name"], member, sp))
        return out

    def projected_due(self, b, member, t):
        """True: must fire; False: must not; None: either (a figure at the edge, or the limit already reached)."""
        if rolling(b):
            return False
        s, e = calendar_period(b, t)
        k = (b["name"], member, s)
        if self.projected.get(k):
            return False
        sp = self.spend(b, member, t)[0]
        L = limit_units(b)
        el = Fraction(int((t - s).total_seconds() * 10**6), 10**6)
        ln = Fraction(int((e - s).total_seconds()), 1)
        evidence = el * 10 >= ln or (el * 100 >= ln and sp * 4 >= L)
        if not evidence or sp == 0:
            if el * 10 >= ln * Fraction(99, 100) and el * 10 <= ln * Fraction(101, 100):
                return None
            if el * 100 >= ln * Fraction(99, 100) and el * 100 <= ln * Fraction(101, 100) and sp * 4 >= L:
                return None
            return False
        proj = sp * ln / el
        if abs(proj - L) <= L * Fraction(1, 1000) + 1 or sp >= L:
            return None
        return proj > L

    def call(self, t, dims, model, c):
        """Adds a call; returns (threshold alerts expected, [(budget, member, projected due)])."""
        pre = []
        for b in self.budgets:
            m = member_of(b, dims, model)
            if m is not None and rolling(b) and self.mode == "before":
                self.rearm(b, m, t)
        self.calls.append((t, dims, model, c))
        out, proj = [], []
        for b in self.budgets:
            m = member_of(b, dims, model)
            if m is None:
                continue
            if rolling(b) and self.mode == "after":
                self.rearm(b, m, t)
            out += self.alerts_at(b, m, t)
            proj.append((b, m))
        return out, proj


def gen_budgets(rng):
    bs = []
    n = rng.randint(6, 10)
    kinds = ["everything", "tenant", "user", "each_user", "each_tenant", "project", "agent", "model", "each_session"]
    for i in range(n):
        k = kinds[i] if i < len(kinds) else rng.choice(kinds)
        b = {"name": f"b{i}-{k}"}
        if k == "everything":
            b["scope"] = {}
        elif k.startswith("each_"):
            b["scope"] = {"each": k[5:]}
        elif k == "model":
            b["scope"] = {"model": rng.choice(list(PRICES))}
        else:
            pool = {"tenant": TENANTS, "user": USERS, "project": PROJECTS, "agent": AGENTS}[k]
            b["scope"] = {"dim": k, "value": rng.choice(pool)}
        per = rng.choice(["day", "week", "month", "rolling", "day", "week"])
        if per == "rolling":
            b["period"] = {"rolling": rng.choice(ROLLING)}
        else:
            b["period"] = per
            b["tz"] = rng.choice(ZONES)
            if per == "week" and rng.random() < 0.7:
                b["week_start"] = rng.choice(WEEKDAYS)
        scale = {"day": 1, "week": 4, "month": 10}.get(per, 1)
        if rng.random() < 0.5:
            b["limit_micros"] = rng.randint(5_000, 60_000) * scale
        else:
            b["limit_tokens"] = rng.randint(3_000, 30_000) * scale
        if rng.random() < 0.5:
            b["thresholds"] = sorted(rng.sample([10, 25, 33, 50, 60, 75, 80, 90, 95, 100, 120, 150], rng.randint(1, 5)))
        if rng.random() < 0.6:
            b["action"] = "block"
        bs.append(b)
    return bs


def budgets_toml(bs):
    out = []
    for b in bs:
        out.append(f'[budgets."{b["name"]}"]')
        if "limit_micros" in b:
            out.append(f'limit_usd = {b["limit_micros"] / 1e6!r}')
        else:
            out.append(f'limit_tokens = {b["limit_tokens"]}')
        p = b["period"]
        if isinstance(p, dict):
            s = p["rolling"]
            parts = []
            for u, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
                if s >= n:
                    parts.append(f"{s // n}{u}")
                    s %= n
            out.append(f'period = "rolling {"".join(parts)}"')
        else:
            out.append(f'period = "{p}"')
            out.append(f'time_zone = "{b["tz"]}"')
            if "week_start" in b:
                full = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
                out.append(f'week_start = "{full[WEEKDAYS.index(b["week_start"])]}"')
        sc = b["scope"]
        if "each" in sc:
            out.append(f'scope = {{ {sc["each"]} = "*" }}')
        elif "model" in sc:
            out.append(f'scope = {{ model = "{sc["model"]}" }}')
        elif sc:
            out.append(f'scope = {{ {sc["dim"]} = "{sc["value"]}" }}')
        if "thresholds" in b:
            out.append(f'thresholds = {b["thresholds"]}')
        if b.get("action") == "block":
            out.append('action = "block"')
        out.append("")
    return "\n".join(out)


def rand_dims(rng):
    d = {}
    if rng.random() < 0.9:
        d["user"] = rng.choice(USERS)
    if rng.random() < 0.85:
        d["tenant"] = rng.choice(TENANTS)
    if rng.random() < 0.7:
        d["project"] = rng.choice(PROJECTS)
    if rng.random() < 0.7:
        d["agent"] = rng.choice(AGENTS)
    if rng.random() < 0.5:
        d["session"] = f"s{rng.randint(1, 6)}"
    return d


def rand_call(rng):
    return {"model": rng.choice(list(PRICES)), "input": rng.randint(1, 3000), "output": rng.randint(0, 1500),
            "cache_read": rng.choice([0, 0, rng.randint(0, 5000)])}


def gen_times(rng, budgets, start, n, call_times):
    """n event times from start, in bursts, with the calendar budgets' midnights among them; no previous call's age
    within a second of a rolling window's uncertain band [D, D*61/60]."""
    Ds = sorted({b["period"]["rolling"] for b in budgets if rolling(b)})
    bounds = set()
    for b in budgets:
        if not rolling(b):
            t = start
            for _ in range(60):
                s, e = calendar_period(b, t)
                bounds.add(e)
                t = e + timedelta(seconds=1)
    times = []
    t = start
    while len(times) < n:
        r = rng.random()
        if r < 0.1:
            t += timedelta(seconds=rng.randint(1, 120))
        elif r < 0.55:
            t += timedelta(seconds=rng.randint(30, 1800))
        elif r < 0.85:
            t += timedelta(seconds=rng.randint(1800, 6 * 3600))
        else:
            t += timedelta(seconds=rng.randint(6 * 3600, 3 * 86400))
        # sometimes exactly at (or a second either side of) a period boundary just passed
        near = [x for x in bounds if t - timedelta(hours=12) < x <= t]
        if near and rng.random() < 0.4:
            t = max(t - timedelta(hours=12), min(near) + timedelta(seconds=rng.choice([-1, 0, 0, 1])))
            if times and t <= times[-1]:
                t = times[-1] + timedelta(seconds=1)
        for _ in range(200):
            if all(not (timedelta(seconds=D - 1) <= t - tc <= timedelta(seconds=D * 61 / 60 + 1))
                   for D in Ds for tc in call_times):
                break
            t += timedelta(seconds=rng.randint(1, 300))
        times.append(t)
        call_times.append(t)  # every event may become a call: keep them all clear
    return times


class Run:
    def __init__(self, seed, n, driver):
        self.seed = seed
        self.rng = random.Random(seed)
        self.n = n
        self.driver = driver
        self.fails = []
        self.notes = []
        self.stats = {"calls": 0, "status": 0, "checks": 0, "alerts": 0, "refusals": 0}

    def fail(self, msg):
        self.fails.append(f"seed {self.seed}: {msg}")


def compare_state(run, b, model, member, t, got, label):
    sp, n, oldest = model.spend(b, member, t)
    L = limit_units(b)
    where = f"{label} {b['name']}[{member}] at {iso(t)}"
    if unamt(got["spent"]) != sp:
        run.fail(f"{where}: spent {unamt(got['spent'])}, expected {sp}")
        return
    if got["calls"] != n:
        run.fail(f"{where}: calls {got['calls']}, expected {n}")
    if unamt(got["limit"]) != L:
        run.fail(f"{where}: limit {got['limit']}, expected {L}")
    if unamt(got["remaining"]) != max(0, L - sp):
        run.fail(f"{where}: remaining {got['remaining']}, expected {max(0, L - sp)}")
    if got["over"] != (sp >= L):
        run.fail(f"{where}: over_budget {got['over']} at {sp} of {L}")
    if got["scope"] != scope_str(b, member):
        run.fail(f"{where}: scope {got['scope']!r}, expected {scope_str(b, member)!r}")
    ths = b.get("thresholds", [50, 75, 90, 100])
    reached = sorted(p for p in ths if sp * 100 >= p * L)
    if rolling(b):
        D = b["period"]["rolling"]
        ps, ra = pt(got["period_start"]), pt(got["resets_at"])
        if not (t - timedelta(seconds=D * 61 / 60) <= ps <= t - timedelta(seconds=D) + timedelta(seconds=1)):
            run.fail(f"{where}: rolling period_start {got['period_start']} not within [t-D*61/60, t-D]")
        if oldest is not None and not (oldest + timedelta(seconds=D) <= ra <= oldest + timedelta(seconds=D * 61 / 60)):
            run.fail(f"{where}: rolling resets_at {got['resets_at']}, oldest spend in window at {iso(oldest)}, "
                     f"D={D}s: expected within [oldest+D, oldest+D*61/60]")
        ttl = got["time_to_limit"]
        if (ttl is not None and not (sp >= L and ttl == 0)) or (sp >= L and ttl != 0):
            run.fail(f"{where}: rolling time_to_limit {ttl} at {sp} of {L} (README 2157: only 0 once over)")
        if got["projected"] is not None and unamt(got["projected"]) != sp:
            run.fail(f"{where}: rolling projected {got['projected']}, expected the window's spend {sp}")
        held = sorted(model.fired.get(model.key(b, member, t), set()))
        if got["crossed"] not in (reached, held, sorted(set(reached) | set(held))):
            run.fail(f"{where}: thresholds_crossed {got['crossed']}, reached {reached}, held {held}")
    else:
        s, e = calendar_period(b, t)
        if pt(got["period_start"]) != s or pt(got["resets_at"]) != e:
            run.fail(f"{where} ({b['period']} {b['tz']} {b.get('week_start', '')}): period "
                     f"{got['period_start']}..{got['resets_at']}, expected {iso(s)}..{iso(e)}")
        if got["crossed"] != reached:
            run.fail(f"{where}: thresholds_crossed {got['crossed']}, expected {reached}")
        el, ln = (t - s).total_seconds(), (e - s).total_seconds()
        pj = got["projected"]
        if sp == 0:
            if pj is not None and unamt(pj) != 0:
                run.fail(f"{where}: projected {pj} with nothing spent")
        elif el < ln / 100 * 0.999:
            if pj is not None:
                run.fail(f"{where}: projected {pj} before 1% of the period passed")
        elif el > ln / 100 * 1.001:
            want = sp * ln / el
            if pj is None or abs(unamt(pj) - want) > want * 1e-6 + 2:
                run.fail(f"{where}: projected {pj}, expected ~{want:.0f} ({sp} over {el:.0f}s of {ln:.0f}s)")
            ttl = got["time_to_limit"]
            if sp >= L:
                if ttl != 0:
                    run.fail(f"{where}: time_to_limit {ttl} when over")
            else:
                w = (L - sp) * el / sp
                if abs(el + w - ln) > 2:
                    if (w < ln - el) != (ttl is not None) or (ttl is not None and abs(ttl - w) > w * 1e-6 + 1):
                        run.fail(f"{where}: time_to_limit {ttl}, expected {w if w < ln - el else None} "
                                 f"({sp} of {L} after {el:.0f}s of {ln:.0f}s)")


def expect_alerts(run, b_by_name, got, expected, t, label, proj_expect, model):
    """got: alerts the driver heard; expected: threshold tuples; proj_expect: [(b, member, due)]."""
    gt = sorted((a["budget"], a["member"] or "", a["kind"]) for a in got if a["kind"] != "projected")
    et = sorted((e[2], e[3], e[1]) for e in expected)
    if gt != et:
        run.fail(f"{label} at {iso(t)}: threshold alerts {gt}, expected {et}")
    for a in got:
        b = b_by_name.get(a["budget"])
        if b is None:
            continue
        m = a["member"] or ""
        if a["scope"] != scope_str(b, m):
            run.fail(f"{label}: alert scope {a['scope']!r}, expected {scope_str(b, m)!r}")
        sp = model.spend(b, m, t)[0]
        if unamt(a["spent"]) != sp:
            run.fail(f"{label}: alert {a['budget']}[{m}] {a['kind']} spent {a['spent']}, expected {sp}")
        if pt(a["at"]) != t:
            run.fail(f"{label}: alert at {a['at']}, expected {iso(t)}")
        if not rolling(b):
            s, e = calendar_period(b, t)
            if pt(a["period_start"]) != s or pt(a["resets_at"]) != e:
                run.fail(f"{label}: alert period {a['period_start']}..{a['resets_at']}, expected {iso(s)}..{iso(e)}")
    gp = {(a["budget"], a["member"] or "") for a in got if a["kind"] == "projected"}
    for (b, m, due) in proj_expect:
        k = (b["name"], m)
        if due is True and k not in gp:
            run.fail(f"{label} at {iso(t)}: no projected_overrun for {b['name']}[{m}] "
                     f"(spent {model.spend(b, m, t)[0]} of {limit_units(b)}, {b['period']} {b.get('tz')})")
        if due is False and k in gp:
            run.fail(f"{label} at {iso(t)}: unexpected projected_overrun for {b['name']}[{m}] "
                     f"(spent {model.spend(b, m, t)[0]} of {limit_units(b)}, {b['period']} {b.get('tz')})")
        if k in gp and not rolling(b):
            model.projected[(b["name"], m, calendar_period(b, t)[0])] = True
    for k in gp:
        if k not in {(b["name"], m) for (b, m, _) in proj_expect}:
            run.fail(f"{label} at {iso(t)}: projected_overrun for {k} not at a call in its scope")


def drive(driver, cmds):
    inp = "".join(json.dumps(c) + "\n" for c in cmds)
    r = subprocess.run([driver, "budgets"], input=inp, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"driver failed: {r.stderr[-3000:]}")
    return [json.loads(x) for x in r.stdout.splitlines()]


def scenario(run, jdir):
    rng = run.rng
    budgets = gen_budgets(rng)
    start = datetime.fromisoformat(rng.choice(ANCHORS)).replace(tzinfo=UTC) + timedelta(hours=rng.randint(0, 23))
    call_times = []
    times1 = gen_times(rng, budgets, start, run.n, call_times)
    # the events: ops with their inputs
    events = []
    for t in times1:
        r = rng.random()
        if r < 0.7:
            events.append(("call", t, rand_dims(rng), rand_call(rng)))
        elif r < 0.82:
            events.append(("status", t))
        elif r < 0.95:
            events.append(("check", t, rand_dims(rng), rng.choice(list(PRICES))))
        else:
            events.append(("status_for", t, rand_dims(rng)))
    # restart: the budgets changed a little (a threshold added, a limit changed, a new budget)
    budgets2 = [dict(b) for b in budgets]
    changed = {}
    i = rng.randrange(len(budgets2))
    budgets2[i]["thresholds"] = sorted(set(budgets2[i].get("thresholds", [50, 75, 90, 100])) | {5, 15, 40})
    changed[budgets2[i]["name"]] = "thresholds"
    j = rng.randrange(len(budgets2))
    if j != i:
        if "limit_micros" in budgets2[j]:
            budgets2[j]["limit_micros"] = budgets2[j]["limit_micros"] * 2 // 3 + 1
        else:
            budgets2[j]["limit_tokens"] = budgets2[j]["limit_tokens"] * 2 // 3 + 1
        changed[budgets2[j]["name"]] = "limit"
    nb = dict(rng.choice(budgets))
    nb["name"] = "new-" + nb["name"]
    budgets2.append(nb)
    changed[nb["name"]] = "new"
    t_restart = times1[-1] + timedelta(seconds=rng.choice([1, 60, 3600, 86400, 3 * 86400]))
    for _ in range(200):
        if all(not (timedelta(seconds=D - 1) <= t_restart - tc <= timedelta(seconds=D * 61 / 60 + 1))
               for D in {b["period"]["rolling"] for b in budgets2 if rolling(b)} for tc in call_times):
            break
        t_restart += timedelta(seconds=rng.randint(1, 300))
    call_times.append(t_restart)
    times2 = gen_times(rng, budgets2, t_restart + timedelta(seconds=1), run.n // 2, call_times)
    events2 = []
    for t in times2:
        r = rng.random()
        if r < 0.75:
            events2.append(("call", t, rand_dims(rng), rand_call(rng)))
        elif r < 0.88:
            events2.append(("status", t))
        else:
            events2.append(("check", t, rand_dims(rng), rng.choice(list(PRICES))))

    use_file = run.seed % 2 == 0
    cmds = [{"op": "build", "t": iso(start), "budgets": budgets, "journal": str(jdir)}]
    for e in events:
        cmds.append(op_cmd(e))
    cmds.append({"op": "shutdown"})
    b2 = {"op": "build", "t": iso(t_restart), "journal": str(jdir)}
    if use_file:
        f = jdir.parent / "budgets.toml"
        f.write_text(budgets_toml(budgets2))
        b2["budgets_file"] = str(f)
    else:
        b2["budgets"] = budgets2
    cmds.append(b2)
    cmds.append({"op": "status", "t": iso(t_restart)})
    for e in events2:
        cmds.append(op_cmd(e))
    outs = drive(run.driver, cmds)

    # the models: one per re-arm reading; a rolling budget's alerts must agree with one of them throughout
    results = {}
    for mode in ("before", "after"):
        sub = Run(run.seed, run.n, run.driver)
        sub.stats = run.stats if mode == "before" else dict(run.stats)
        check_all(sub, mode, budgets, budgets2, changed, events, events2, outs, t_restart, use_file)
        results[mode] = sub
    a, b = results["before"], results["after"]
    best = a if len(a.fails) <= len(b.fails) else b
    run.fails += best.fails
    run.notes += best.notes
    if run.stats is not a.stats:
        run.stats.update(a.stats)
    return len(budgets2)


def op_cmd(e):
    if e[0] == "call":
        return {"op": "call", "t": iso(e[1]), "dims": e[2], **e[3]}
    if e[0] == "status":
        return {"op": "status", "t": iso(e[1])}
    if e[0] == "check":
        return {"op": "check", "t": iso(e[1]), "scope": {**e[2], "model": e[3]}}
    return {"op": "status_for", "t": iso(e[1]), "scope": e[2]}


def check_status(run, model, budgets, t, got, label, ordered=True):
    exp = []
    for b in budgets:
        if "each" in b["scope"]:
            for m in model.members(b, t):
                exp.append((b["name"], m))
        else:
            exp.append((b["name"], ""))
    gk = [(s["budget"], s["member"] or "") for s in got]
    if (gk if ordered else sorted(gk)) != (exp if ordered else sorted(exp)):
        extra = [k for k in gk if k not in exp]
        missing = [k for k in exp if k not in gk]
        if extra or missing:
            run.fail(f"{label} at {iso(t)}: states extra {extra[:5]}, missing {missing[:5]}")
        else:
            run.fail(f"{label} at {iso(t)}: states in order {gk[:8]}, expected {exp[:8]}")
    byname = {b["name"]: b for b in budgets}
    for s in got:
        b = byname.get(s["budget"])
        if b is not None and ((s["budget"], s["member"] or "") in exp):
            compare_state(run, b, model, s["member"] or "", t, s, label)


def check_request(run, model, budgets, t, dims, mdl, got, label):
    exhausted = []
    for b in budgets:
        if b.get("action") != "block":
            continue
        m = member_of(b, dims, mdl)
        if m is None:
            continue
        if model.spend(b, m, t)[0] >= limit_units(b):
            exhausted.append(b["name"])
    if got == "ok":
        if exhausted:
            run.fail(f"{label} at {iso(t)} {dims} {mdl}: allowed, but {exhausted} exhausted")
    else:
        run.stats["refusals"] += 1
        if not exhausted:
            run.fail(f"{label} at {iso(t)} {dims} {mdl}: refused by {got['budget']} (spent {got['spent']} of "
                     f"{got['limit']}), expected allowed")
        elif got["budget"] != exhausted[0]:
            run.fail(f"{label}: refused by {got['budget']}, the first exhausted is {exhausted[0]}")


def check_all(run, mode, budgets, budgets2, changed, events, events2, outs, t_restart, use_file):
    model = Model(budgets, mode)
    byname = {b["name"]: b for b in budgets}
    k = 1  # outs[0] is the build
    for e in events:
        o = outs[k]
        k += 1
        run_event(run, model, budgets, byname, e, o, "phase 1", True)
    k += 1  # shutdown
    # the restart: the same calls, the second configuration; alerts the journal holds stay delivered
    model2 = Model(budgets2, mode)
    model2.calls = list(model.calls)
    for b in budgets2:
        old = byname.get(b["name"])
        same = old is not None and changed.get(b["name"]) != "limit"
        for (key, held) in model.fired.items():
            if key[0] == b["name"] and same:
                model2.fired[key] = set(held)
        if same:
            for (key, v) in model.projected.items():
                if key[0] == b["name"]:
                    model2.projected[key] = v
    k += 1  # build
    o = outs[k]
    k += 1
    t = t_restart
    exp = []
    for b in budgets2:
        if "each" in b["scope"]:
            ms = model2.members(b, t)
        else:
            ms = [""] if model2.spend(b, "", t)[1] else []
        for m in ms:
            if mode == "before" or True:
                model2.rearm(b, m, t)
            exp += model2.alerts_at(b, m, t)
    byname2 = {b["name"]: b for b in budgets2}
    expect_alerts(run, byname2, [a for a in o["alerts"] if a["kind"] != "projected"], exp, t,
                  "first status after the restart", [], model2)
    for a in o["alerts"]:
        if a["kind"] == "projected" and changed.get(a["budget"]) not in ("new", "limit"):
            run.fail(f"first status after the restart: projected_overrun re-fired for unchanged {a['budget']}")
    check_status(run, model2, budgets2, t, o["states"], "status after the restart", ordered=not use_file)
    for e in events2:
        o = outs[k]
        k += 1
        run_event(run, model2, budgets2, byname2, e, o, "phase 2", True, changed)


def run_event(run, model, budgets, byname, e, o, label, strict, changed=None):
    t = e[1]
    if e[0] == "call":
        run.stats["calls"] += 1
        exp, proj = model.call(t, e[2], e[3]["model"], e[3])
        pe = []
        for (b, m) in proj:
            due = model.projected_due(b, m, t)
            if changed and changed.get(b["name"]) in ("new", "limit") and due is False:
                due = None  # not delivered before under this configuration: README silent on owed projections
            pe.append((b, m, due))
        run.stats["alerts"] += len(o["alerts"])
        expect_alerts(run, byname, o["alerts"], exp, t, f"{label} call", pe, model)
    elif e[0] == "status":
        run.stats["status"] += 1
        if o["alerts"]:
            run.fail(f"{label} status at {iso(t)}: alerts {[(a['budget'], a['kind']) for a in o['alerts']]}")
        check_status(run, model, budgets, t, o["states"], f"{label} status")
    elif e[0] == "check":
        run.stats["checks"] += 1
        if o["alerts"]:
            run.fail(f"{label} check at {iso(t)}: alerts {[(a['budget'], a['kind']) for a in o['alerts']]}")
        check_request(run, model, budgets, t, e[2], e[3], o["check"], f"{label} check")
    else:
        dims = e[2]
        exp = []
        for b in budgets:
            m = member_of(b, dims, None)
            if m is None or "model" in b["scope"]:
                continue
            exp.append((b, m))
        got = o["states"]
        if [(s["budget"], s["member"] or "") for s in got] != [(b["name"], m) for (b, m) in exp]:
            run.fail(f"{label} status_for {dims} at {iso(t)}: states "
                     f"{[(s['budget'], s['member']) for s in got]}, expected {[(b['name'], m) for (b, m) in exp]}")
        else:
            for (b, m), s in zip(exp, got):
                compare_state(run, b, model, m, t, s, f"{label} status_for")


def T(s):
    return datetime.fromisoformat(s).replace(tzinfo=UTC)


def B(name, period, limit_tokens=1000, **kw):
    b = {"name": name, "limit_tokens": limit_tokens, "scope": {}, "period": period}
    if not isinstance(period, dict):
        b.setdefault("tz", "UTC")
    b.update(kw)
    return b


def C(t, n, dims=None):
    """A call of n billed tokens (haiku, output only)."""
    return {"op": "call", "t": t, "dims": dims or {"user": "u"}, "model": "claude-haiku-4-5", "input": 1,
            "output": n - 1}


def st(t):
    return {"op": "status", "t": t}


def spent_of(out, name, member=None):
    for s in out["states"]:
        if s["budget"] == name and (s["member"] or None) == member:
            return int(s["spent"]["tokens"]), s
    return None, None


def directed(driver, fails):
    """Fixed cases for the rules a random run rarely reaches. Each: (what, README line, commands, check)."""
    n = [0]

    def case(what, cmds, check):
        n[0] += 1
        with tempfile.TemporaryDirectory() as d:
            cmds = [dict(c, journal=str(Path(d) / "j")) if c["op"] == "build" and c.get("journal") else c for c in cmds]
            outs = drive(driver, cmds)
        msg = check(outs)
        if msg:
            fails.append(f"directed: {what}: {msg}")

    # Havana skips 00:00 on 2026-03-08 (00:00 -> 01:00): the day starts 05:00Z
    b = B("hav", "day", tz="America/Havana")
    case("a day whose local midnight does not exist (America/Havana 2026-03-08)",
         [{"op": "build", "t": "2026-03-08T04:00:00Z", "budgets": [b]}, C("2026-03-08T04:59:59Z", 10),
          C("2026-03-08T05:00:00Z", 20), st("2026-03-08T05:00:01Z")],
         lambda o: None if (spent_of(o[3], "hav")[0] == 20 and spent_of(o[3], "hav")[1]["period_start"].startswith(
             "2026-03-08T05:00:00")) else f"state {spent_of(o[3], 'hav')[1]}")
    # Santiago: 2026-09-06 00:00 -> 01:00
    b = B("scl", "day", tz="America/Santiago")
    exp_s = local_midnight(datetime(2026, 9, 6).date(), ZoneInfo("America/Santiago"))
    case("a day whose local midnight does not exist (America/Santiago 2026-09-06)",
         [{"op": "build", "t": "2026-09-06T03:00:00Z", "budgets": [b]}, C(iso(exp_s), 20),
          st(iso(exp_s + timedelta(seconds=1)))],
         lambda o: None if (spent_of(o[2], "scl")[0] == 20 and pt(spent_of(o[2], "scl")[1]["period_start"]) == exp_s)
         else f"state {spent_of(o[2], 'scl')[1]}, expected period_start {iso(exp_s)}")
    # a week starting on Sunday, whose midnight Havana skips on 2026-03-08
    b = B("havw", "week", tz="America/Havana", week_start="Sun")
    case("a week from a Sunday whose local midnight does not exist (America/Havana 2026-03-08)",
         [{"op": "build", "t": "2026-03-08T04:00:00Z", "budgets": [b]}, C("2026-03-08T04:59:59Z", 10),
          C("2026-03-08T05:00:00Z", 20), st("2026-03-08T05:00:01Z")],
         lambda o: None if (spent_of(o[3], "havw")[0] == 20 and spent_of(o[3], "havw")[1]["period_start"].startswith(
             "2026-03-08T05:00:00") and spent_of(o[3], "havw")[1]["resets_at"].startswith("2026-03-15T04:00:00"))
         else f"state {spent_of(o[3], 'havw')[1]}")
    # exactly the limit: refused; one token under: allowed (README 2001, 2265, 2311)
    b = B("blk", "day", action="block")
    case("check_budget at exactly the limit",
         [{"op": "build", "t": "2026-05-01T00:00:00Z", "budgets": [b]}, C("2026-05-01T01:00:00Z", 999),
          {"op": "check", "t": "2026-05-01T01:00:01Z", "scope": {}}, C("2026-05-01T01:00:02Z", 1),
          {"op": "check", "t": "2026-05-01T01:00:03Z", "scope": {}},
          {"op": "check", "t": "2026-05-02T00:00:00Z", "scope": {}}],
         lambda o: None if (o[2]["check"] == "ok" and o[4]["check"] != "ok" and o[5]["check"] == "ok")
         else f"checks {o[2]['check']}, {o[4]['check']}, {o[5]['check']}")
    # a limit of 0 refuses a value with no spend; a request without the dimension is not covered (README 2102, 2109)
    b = {"name": "zero", "limit_tokens": 0, "scope": {"each": "user"}, "period": "day", "tz": "UTC", "action": "block"}
    case("each-user limit 0",
         [{"op": "build", "t": "2026-05-01T00:00:00Z", "budgets": [b]},
          {"op": "check", "t": "2026-05-01T00:00:01Z", "scope": {"user": "zed"}},
          {"op": "check", "t": "2026-05-01T00:00:01Z", "scope": {"tenant": "acme"}},
          {"op": "status_for", "t": "2026-05-01T00:00:01Z", "scope": {"user": "zed"}}, st("2026-05-01T00:00:01Z")],
         lambda o: None if (o[1]["check"] != "ok" and o[2]["check"] == "ok" and len(o[3]["states"]) == 1
                            and o[3]["states"][0]["member"] == "zed" and o[4]["states"] == [])
         else f"check zed {o[1]['check']}, check no user {o[2]['check']}, status_for {o[3]['states']}, "
              f"status {o[4]['states']}")
    # rolling re-arm: 90% of 1000 re-arms under 850; the spend falls to 0 when the call leaves the window (README 2174)
    b = B("roll", {"rolling": 3600}, thresholds=[90])
    case("rolling threshold re-arms once the spend left the window",
         [{"op": "build", "t": "2026-05-01T00:00:00Z", "budgets": [b]}, C("2026-05-01T00:00:00Z", 900),
          C("2026-05-01T01:02:00Z", 860), C("2026-05-01T01:02:01Z", 50)],
         lambda o: None if ([a["kind"] for a in o[1]["alerts"]] == [90] and o[2]["alerts"] == []
                            and [a["kind"] for a in o[3]["alerts"]] == [90])
         else f"alerts {[a['kind'] for a in o[1]['alerts']]}, {[a['kind'] for a in o[2]['alerts']]}, "
              f"{[a['kind'] for a in o[3]['alerts']]} (expected [90], [], [90])")
    # rolling window bounds: counted until t+D at least, gone after t+D*61/60 (README 1999)
    b = B("rw", {"rolling": 600})
    case("rolling window bounds",
         [{"op": "build", "t": "2026-05-01T00:00:00Z", "budgets": [b]}, C("2026-05-01T00:00:07Z", 100),
          st("2026-05-01T00:10:06.999Z"), st("2026-05-01T00:10:17.001Z")],
         lambda o: None if (spent_of(o[2], "rw")[0] == 100 and spent_of(o[3], "rw")[0] == 0)
         else f"spent {spent_of(o[2], 'rw')[0]} at t+D-1ms (expected 100), {spent_of(o[3], 'rw')[0]} at t+D*61/60+1ms "
              "(expected 0)")
    # a call ending up to 5 minutes before the period began counts in the current one (README 1999)
    bu, bn = B("dayutc", "day"), B("dayny", "day", tz="America/New_York")
    case("a call 2 minutes before midnight, after the new period began",
         [{"op": "build", "t": "2026-05-02T00:00:00Z", "budgets": [bu]}, C("2026-05-02T00:00:30Z", 100),
          C("2026-05-01T23:58:00Z", 10), st("2026-05-02T00:01:00Z")],
         lambda o: None if spent_of(o[3], "dayutc")[0] == 110 else f"spent {spent_of(o[3], 'dayutc')[0]}, expected 110")
    # ... and so after a restart when both calls are in one day file (New York: midnight at 04:00Z)
    case("replay: a call 2 minutes before a New York midnight, both in one UTC day file",
         [{"op": "build", "t": "2026-05-02T04:00:00Z", "budgets": [bn, bu], "journal": True},
          C("2026-05-02T04:00:30Z", 100), C("2026-05-02T03:58:00Z", 10), st("2026-05-02T04:01:00Z"),
          {"op": "shutdown"}, {"op": "build", "t": "2026-05-02T04:02:00Z", "budgets": [bn, bu], "journal": True},
          st("2026-05-02T04:02:00Z")],
         lambda o: None if (spent_of(o[3], "dayny")[0] == 110 and spent_of(o[6], "dayny")[0] == 110)
         else f"New York day spent {spent_of(o[3], 'dayny')[0]} live, {spent_of(o[6], 'dayny')[0]} after replay "
              "(expected 110, 110)")
    case("replay: across UTC midnight the earlier call counts in its own day",
         [{"op": "build", "t": "2026-05-02T00:00:00Z", "budgets": [bu], "journal": True},
          C("2026-05-02T00:00:30Z", 100), C("2026-05-01T23:58:00Z", 10), {"op": "shutdown"},
          {"op": "build", "t": "2026-05-02T00:02:00Z", "budgets": [bu], "journal": True}, st("2026-05-02T00:02:00Z")],
         lambda o: None if spent_of(o[5], "dayutc")[0] == 100 else f"spent {spent_of(o[5], 'dayutc')[0]}, expected 100")
    # the clock ran ahead a day, then stepped back: the period left is restored with what was counted ahead
    case("clock ahead a day then back: the left period restored with the spend counted ahead",
         [{"op": "build", "t": "2026-05-01T10:00:00Z", "budgets": [dict(bu, action="block", thresholds=[50, 100])]},
          C("2026-05-01T10:00:00Z", 300), C("2026-05-02T10:00:00Z", 300), st("2026-05-01T10:05:00Z"),
          C("2026-05-01T10:06:00Z", 500), {"op": "check", "t": "2026-05-01T10:07:00Z", "scope": {}}],
         lambda o: None if (spent_of(o[3], "dayutc")[0] == 600
                            and spent_of(o[3], "dayutc")[1]["period_start"].startswith("2026-05-01T00:00:00")
                            and [a["kind"] for a in o[3]["alerts"]] == [50] and o[5]["check"] != "ok")
         else f"status {spent_of(o[3], 'dayutc')[0]} from {(spent_of(o[3], 'dayutc')[1] or {}).get('period_start')} "
              f"alerts {[a['kind'] for a in o[3]['alerts']]} (expected 600 from 05-01, [50]); check {o[5]['check']}")
    # built while the clock ran ahead: back in a period never held, a Block budget filled ahead refuses until its end
    case("built ahead, filled, clock back: refuses until the end of the real period",
         [{"op": "build", "t": "2026-05-03T10:00:00Z", "budgets": [dict(bu, action="block")]},
          C("2026-05-03T10:00:00Z", 1000), {"op": "check", "t": "2026-05-02T12:00:00Z", "scope": {}}],
         lambda o: None if (o[2]["check"] != "ok" and o[2]["check"]["resets_at"].startswith("2026-05-03T00:00:00"))
         else f"check {o[2]['check']} (expected refused, resets 2026-05-03T00:00:00Z)")
    # rolling: spend stamped ahead moves into the current bucket once the clock is a bucket behind it
    case("rolling minute, clock 90 s back",
         [{"op": "build", "t": "2026-05-01T10:00:00Z", "budgets": [B("rmin", {"rolling": 60})]},
          C("2026-05-01T10:00:00Z", 100), st("2026-05-01T09:58:30Z")],
         lambda o: None if spent_of(o[2], "rmin")[0] == 100 else f"spent {spent_of(o[2], 'rmin')[0]}, expected 100")
    # replay: a record up to an hour after the clock counts now; more than an hour after is left out (README 2489)
    for back, want in ((30, 100), (120, 0)):
        case(f"replay with the clock {back} min behind the journal's last record",
             [{"op": "build", "t": "2026-05-01T10:00:00Z", "budgets": [B("w", {"rolling": 86400})], "journal": True},
              C("2026-05-01T12:00:00Z", 100), {"op": "shutdown"},
              {"op": "build", "t": iso(T("2026-05-01T12:00:00") - timedelta(minutes=back)),
               "budgets": [B("w", {"rolling": 86400})], "journal": True},
              st(iso(T("2026-05-01T12:00:00") - timedelta(minutes=back)))],
             lambda o, want=want: None if spent_of(o[4], "w")[0] == want
             else f"spent {spent_of(o[4], 'w')[0]}, expected {want}")
    # restart: a lowered limit is a new alert key, every reached threshold fires again at the first status
    case("restart: same budget keeps its alerts, a lowered limit fires again, a new threshold fires once",
         [{"op": "build", "t": "2026-05-01T10:00:00Z", "budgets": [bu, B("m2", "month")], "journal": True},
          C("2026-05-01T10:00:00Z", 800), {"op": "shutdown"},
          {"op": "build", "t": "2026-05-01T11:00:00Z", "journal": True,
           "budgets": [dict(bu, thresholds=[50, 75, 80]), B("m2", "month", limit_tokens=900)]},
          st("2026-05-01T11:00:00Z"), st("2026-05-01T11:00:01Z"), C("2026-05-01T11:01:00Z", 1)],
         lambda o: None if (sorted((a["budget"], a["kind"]) for a in o[4]["alerts"] if a["kind"] != "projected")
                            == [("dayutc", 80), ("m2", 50), ("m2", 75)] and o[5]["alerts"] == []
                            and [a for a in o[6]["alerts"] if a["kind"] != "projected"] == [])
         else f"alerts at first status {[(a['budget'], a['kind']) for a in o[4]['alerts']]} (expected dayutc 80, "
              f"m2 50 75), then {[(a['budget'], a['kind']) for a in o[5]['alerts'] + o[6]['alerts']]}")
    return n[0]


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    driver, seeds, n = argv[1], argv[2], int(argv[3])
    lo, _, hi = seeds.partition("-")
    total = {"calls": 0, "status": 0, "checks": 0, "alerts": 0, "refusals": 0}
    fails, nbudgets = [], 0
    ndirected = directed(driver, fails)
    for seed in range(int(lo), int(hi or lo) + 1):
        run = Run(seed, n, driver)
        with tempfile.TemporaryDirectory() as d:
            jdir = Path(d) / "journal"
            nbudgets += scenario(run, jdir)
        fails += run.fails
        for x in total:
            total[x] += run.stats[x]
    print(f"budgets: {int(hi or lo) - int(lo) + 1} seeds, {nbudgets} budgets, {total['calls']} calls, "
          f"{total['status']} status reads, {total['checks']} checks ({total['refusals']} refused), "
          f"{total['alerts']} alerts, 1 restart a seed; {ndirected} fixed cases: {len(fails)} disagreement(s)")
    for f in fails[:40]:
        print("  " + f)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
