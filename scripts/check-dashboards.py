#!/usr/bin/env python3
"""Checks the Grafana dashboards, the alert rules and the compose file.

  scripts/check-dashboards.py [--prometheus URL] [--promtool PATH] [--set var=value ...] [--time T]

Offline (always):
  - every dashboards/*.json validates against ../shared/grafana-schema/dashboard.jsonschema.json
    (Draft7Validator, zero errors);
  - every panel has a title, a description and a unit listed in units.jsonschema.json;
  - every PromQL query (panel targets and label_values() variables), with Grafana variables substituted,
    parses (`promtool promql format --experimental`);
  - deploy/docker-compose.yml parses and every path it mounts exists; the provisioning files parse.
With --prometheus URL:
  - every query returns status success and non-empty data from that Prometheus (run it after a workload was
    exported).
Variables default to: $__range=1h ($__range_s follows it), $__rate_interval=1m, $__interval=1m ($__interval_ms follows it), $job/$model/$provider/$agent/$project=.*;
override with --set job=my-service, --set __range=5m, etc. --print-query DASHBOARD_UID:PANEL_TITLE prints the
substituted queries of one panel (one per line) and exits.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SHARED_SCHEMA = os.path.join(ROOT, "..", "shared", "grafana-schema")
# The shared design folder when it is there (a development checkout), else the vendored copy
# under tests/fixtures/grafana-schema (a clean clone in CI).
SCHEMA_DIR = os.environ.get(
    "TOKENMETER_GRAFANA_SCHEMA",
    _SHARED_SCHEMA if os.path.isdir(_SHARED_SCHEMA) else os.path.join(ROOT, "tests", "fixtures", "grafana-schema"),
)
VENV = os.path.join(ROOT, ".tools", "venv")


def ensure_deps():
    try:
        import jsonschema  # noqa: F401
        import yaml  # noqa: F401
        return
    except ImportError:
        pass
    py = os.path.join(VENV, "bin", "python")
    if os.environ.get("TOKENMETER_CHECK_IN_VENV") != "1":
        if not os.path.exists(py):
            subprocess.check_call([sys.executable, "-m", "venv", VENV])
        constraints = os.path.join(ROOT, "scripts", "python-constraints.txt")
        subprocess.check_call([py, "-m", "pip", "install", "-q", "-c", constraints, "jsonschema", "pyyaml"])
        env = dict(os.environ, TOKENMETER_CHECK_IN_VENV="1")
        env.pop("PYTHONPATH", None)
        os.execve(py, [py] + sys.argv, env)
    sys.exit("jsonschema / pyyaml missing even in .tools/venv")


ensure_deps()
import jsonschema  # noqa: E402
import yaml  # noqa: E402

DEFAULT_VARS = {
    "__range": "1h",
    "__rate_interval": "1m",
    "__interval": "1m",
    "job": ".*",
    "model": ".*",
    "provider": ".*",
    "agent": ".*",
    "project": ".*",
}


def substitute(expr, variables):
    def repl(m):
        name = m.group(1) or m.group(2)
        if name == "__interval_ms" and name not in variables:
            # Grafana's `$__interval_ms`: `$__interval` in milliseconds.
            return str(int(seconds(variables["__interval"]) * 1000))
        if name not in variables:
            raise KeyError(f"unknown Grafana variable ${name} in {expr}")
        return variables[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", repl, expr)


def dashboards():
    for path in sorted(glob.glob(os.path.join(ROOT, "dashboards", "*.json"))):
        with open(path) as f:
            yield path, json.load(f)


def panels(dash):
    for p in dash.get("panels", []):
        if p.get("type") == "row":
            yield from p.get("panels", [])
        else:
            yield p


SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(duration):
    """A Prometheus duration (`1m30s`, `500ms`, `1h`) in seconds."""
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a duration: {duration!r}")
    return sum(int(n) * SECONDS[u] for n, u in parts)


def duration(secs):
    return f"{int(secs * 1000)}ms" if secs != int(secs) else f"{int(secs)}s"


def with_min_step(variables, target):
    """The variables Grafana sends for a target with a min step ("interval"): $__interval at least the step, and
    $__rate_interval = max($__interval + step, 4 x step), the step standing for the scrape interval."""
    step = target.get("interval")
    if not step:
        return variables
    step_s = seconds(step)
    interval = max(seconds(variables["__interval"]), step_s)
    return {**variables, "__interval": duration(interval), "__rate_interval": duration(max(interval + step_s, 4 * step_s))}


def queries(dash):
    """(where, expr, target) for every PromQL query of a dashboard."""
    for p in panels(dash):
        for t in p.get("targets", []):
            yield f"{dash['uid']}:{p['title']}:{t.get('refId')}", t["expr"], t
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q)
            if not m:
                raise ValueError(f"{dash['uid']}: variable {v['name']}: unexpected query {q}")
            # The series query Grafana sends for label_values(selector, label).
            yield f"{dash['uid']}:variable {v['name']}", f"count by ({m.group(2)}) ({m.group(1)})", {}


def unit_list():
    with open(os.path.join(SCHEMA_DIR, "units.jsonschema.json")) as f:
        units = json.load(f)
    found = set()

    def walk(x):
        if isinstance(x, dict):
            if "const" in x and isinstance(x["const"], str):
                found.add(x["const"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(units)
    return found


def check_schema(errors):
    with open(os.path.join(SCHEMA_DIR, "dashboard.jsonschema.json")) as f:
        schema = json.load(f)
    validator = jsonschema.Draft7Validator(schema)
    units = unit_list()
    n_panels = 0
    for path, dash in dashboards():
        name = os.path.relpath(path, ROOT)
        errs = list(validator.iter_errors(dash))
        for e in errs:
            errors.append(f"{name}: schema: {'/'.join(map(str, e.absolute_path))}: {e.message[:300]}")
        for p in panels(dash):
            n_panels += 1
            where = f"{name}: panel {p.get('title')!r}"
            if not p.get("title"):
                errors.append(f"{where}: no title")
            if len(p.get("description", "")) < 20:
                errors.append(f"{where}: no description")
            unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
            if unit not in units:
                errors.append(f"{where}: unit {unit!r} is not in units.jsonschema.json")
            if not p.get("targets"):
                errors.append(f"{where}: no query")
        print(f"[check-dashboards] {name}: {len(errs)} schema errors")
    return n_panels


def check_syntax(promtool, items, errors):
    for where, expr in items:
        r = subprocess.run([promtool, "promql", "format", "--experimental", expr], capture_output=True, text=True)
        if r.returncode != 0:
            errors.append(f"{where}: promtool: {r.stderr.strip() or r.stdout.strip()}\n    {expr}")


def prom_query(base, expr, time=None):
    params = {"query": expr}
    if time:
        params["time"] = time
    url = f"{base}/api/v1/query?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=20) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def check_prometheus(base, items, time, errors):
    empty = 0
    for where, expr in items:
        body = prom_query(base, expr, time)
        if body.get("status") != "success":
            errors.append(f"{where}: Prometheus: {body.get('errorType')}: {body.get('error')}\n    {expr}")
            continue
        result = body["data"]["result"]
        if not result:
            empty += 1
            errors.append(f"{where}: no data from Prometheus\n    {expr}")
    return empty


def check_compose(errors):
    compose_path = os.path.join(ROOT, "deploy", "docker-compose.yml")
    with open(compose_path) as f:
        compose = yaml.safe_load(f)
    n = 0
    for sname, svc in compose.get("services", {}).items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source")
            if src.startswith(".") or src.startswith("/"):
                n += 1
                p = os.path.normpath(os.path.join(os.path.dirname(compose_path), src))
                if not os.path.exists(p):
                    errors.append(f"deploy/docker-compose.yml: service {sname}: {src} does not exist ({p})")
    for path in glob.glob(os.path.join(ROOT, "dashboards", "provisioning", "**", "*.yml"), recursive=True) + glob.glob(
        os.path.join(ROOT, "deploy", "*.yml")
    ):
        with open(path) as f:
            yaml.safe_load(f)
    print(f"[check-dashboards] deploy/docker-compose.yml: parses, {n} mounted paths checked")


def check_born_series(promtool, errors):
    """The "Budget alerts fired" bars count a counter series born inside a bar: its first export is its first
    sample, and an alert fired before it made that sample 1, which `increase()` alone counts as nothing. Run with
    promtool's expression tests on the panel's own query (one-hour bars)."""
    expr = None
    for _, dash in dashboards():
        for p in panels(dash):
            if p["title"] == "Budget alerts fired":
                expr = substitute(p["targets"][0]["expr"], dict(DEFAULT_VARS, __interval="1h"))
    if expr is None:
        errors.append("no \"Budget alerts fired\" panel to check")
        return
    labels = 'job="bot", tokenmeter_budget="daily", tokenmeter_alert="threshold_crossed"'
    series = "tokenmeter_budget_alerts_total{" + labels + "}"
    out = "{" + labels + "}"
    test = {
        "evaluation_interval": "1m",
        "tests": [
            # Born at 1h30m with one alert already fired, another at 2h40m; a bar at 2h holds the first alert,
            # the bar at 3h the second.
            {"interval": "1m", "input_series": [{"series": series, "values": "_x90 1x69 2x30"}],
             "promql_expr_test": [
                 {"expr": expr, "eval_time": "2h", "exp_samples": [{"labels": out, "value": 1}]},
                 {"expr": expr, "eval_time": "3h", "exp_samples": [{"labels": out, "value": 1}]},
             ]},
        ],
    }
    failed = promtool_test(promtool, test)
    if failed:
        errors.append(f"\"Budget alerts fired\" does not count an alert exported in a series' first sample: {failed}")


def check_unwatched_processes(promtool, errors):
    """"Total cost" over a day counts a series born inside the range from zero, but not the running total of a
    process that started more than a day before the range and that Prometheus first saw inside it: that process's
    spend before the range was never seen, and only what it gained while watched counts. Run with promtool's
    expression tests on the panel's own query."""
    expr = None
    for _, dash in dashboards():
        if dash["uid"] != "tokenmeter-overview":
            continue
        for p in panels(dash):
            if p["title"] == "Total cost":
                expr = substitute(p["targets"][0]["expr"], dict(DEFAULT_VARS, __range="1d", __range_s="86400"))
    if expr is None:
        errors.append("no overview \"Total cost\" panel to check")
        return
    cost = 'tokenmeter_cost_USD_total{job="%s", instance="%s"}'
    model_cost = 'tokenmeter_cost_USD_total{job="%s", instance="%s", gen_ai_request_model="%s"}'
    start = 'tokenmeter_start_time_seconds{job="%s", instance="%s"}'
    test = {
        "evaluation_interval": "1h",
        "tests": [
            # "old" started at time 0 and was first seen an hour into day 3 at 100 USD, 1 an hour since: the day
            # to day 4 holds what it gained, 23 (24: `increase()` extrapolates to the range's start, an hour
            # before its first sample). "young" started on day 3.5 and exported 5 USD once: all 5 count; so do the
            # 7 of "cron", in "old"'s job but its own instance, which started half a day before the range and
            # exported once inside it. "watched", seen from its start, gains 24 on one model and begins another
            # inside the range at 4: 28. "pod" (a fixed instance id) was first seen like "old", gained 10, restarted
            # at day 3.5 and gained 12 (22.96 with the extrapolation), not the 12 of its last run. 86.96; counting
            # "old" and "pod" as born made 175.
            {"interval": "1h", "input_series": [
                {"series": cost % ("old", "a"), "values": "_x73 100+1x23"},
                {"series": start % ("old", "a"), "values": "_x73 0x23"},
                {"series": cost % ("old", "c"), "values": "_x78 7"},
                {"series": start % ("old", "c"), "values": "_x78 216000"},
                {"series": cost % ("young", "b"), "values": "_x84 5x12"},
                {"series": start % ("young", "b"), "values": "_x84 302400x12"},
                {"series": model_cost % ("watched", "w", "m1"), "values": "0+1x96"},
                {"series": model_cost % ("watched", "w", "m2"), "values": "_x84 4x12"},
                {"series": start % ("watched", "w"), "values": "0x96"},
                {"series": cost % ("pod", "pod-1"), "values": "_x73 100+1x10 0+1x12"},
                {"series": start % ("pod", "pod-1"), "values": "_x73 0x10 302400x12"},
            ],
             "promql_expr_test": [
                 {"expr": f"round({expr}, 0.01)", "eval_time": "4d", "exp_samples": [{"labels": "{}", "value": 86.96}]},
             ]},
        ],
    }
    failed = promtool_test(promtool, test)
    if failed:
        errors.append(f"\"Total cost\" counts the running total of a process first seen inside the range: {failed}")


def promtool_test(promtool, test):
    """Runs one promtool rule-test file (a dict); what promtool printed when it failed, else None."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "dashboard_test.yml")
        with open(path, "w") as f:
            yaml.safe_dump(test, f)
        run = subprocess.run([promtool, "test", "rules", path], capture_output=True, text=True)
    return (run.stdout + run.stderr).strip() if run.returncode != 0 else None


def check_generated(errors):
    """The checked-in dashboards are what dashboards/generate.py makes: an edit to a JSON file alone would be
    undone by the next run of the generator."""
    import shutil
    import subprocess
    import tempfile

    src = os.path.join(ROOT, "dashboards")
    with tempfile.TemporaryDirectory() as tmp:
        work = os.path.join(tmp, "dashboards")
        shutil.copytree(src, work)
        run = subprocess.run([sys.executable, os.path.join(work, "generate.py")], capture_output=True, text=True)
        if run.returncode != 0:
            errors.append(f"dashboards/generate.py failed: {run.stderr.strip()}")
            return
        # Generated into the copy: a board the generator no longer makes is still there, so the names it makes
        # are what it printed.
        made = sorted(os.path.basename(line.strip()) for line in run.stdout.splitlines() if line.strip())
        present = sorted(n for n in os.listdir(src) if n.endswith(".json"))
        if made != present:
            errors.append(f"dashboards/*.json ({', '.join(present)}) are not the boards dashboards/generate.py makes "
                          f"({', '.join(made)})")
        for name in made:
            if not os.path.exists(os.path.join(src, name)):
                continue
            with open(os.path.join(src, name), "rb") as a, open(os.path.join(work, name), "rb") as b:
                if a.read() != b.read():
                    errors.append(f"dashboards/{name} differs from what dashboards/generate.py makes: edit the "
                                  "generator and run it")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prometheus")
    ap.add_argument("--promtool", default=os.path.join(ROOT, ".tools/otlp-stack/root/usr/bin/promtool"))
    ap.add_argument("--set", action="append", default=[], metavar="VAR=VALUE")
    ap.add_argument("--time", help="evaluation time for Prometheus queries (unix seconds)")
    ap.add_argument("--print-query", metavar="UID:TITLE")
    args = ap.parse_args()
    variables = dict(DEFAULT_VARS)
    for s in args.set:
        k, _, v = s.partition("=")
        variables[k] = v
    # Grafana's `$__range_s`: the range in seconds, following `$__range` unless set itself.
    variables.setdefault("__range_s", str(int(seconds(variables["__range"]))))

    if args.print_query:
        uid, _, title = args.print_query.partition(":")
        for _, dash in dashboards():
            if dash["uid"] != uid:
                continue
            for p in panels(dash):
                if p["title"] == title:
                    for t in p["targets"]:
                        print(substitute(t["expr"], with_min_step(variables, t)))
                    return 0
        sys.exit(f"no panel {title!r} in {uid}")

    errors = []
    n_panels = check_schema(errors)
    items = []
    for _, dash in dashboards():
        for where, expr, target in queries(dash):
            try:
                items.append((where, substitute(expr, with_min_step(variables, target))))
            except KeyError as e:
                errors.append(f"{where}: {e}")
    if not os.access(args.promtool, os.X_OK):
        errors.append(f"promtool not found at {args.promtool} (scripts/otlp-stack.sh install)")
    else:
        check_syntax(args.promtool, items, errors)
        check_born_series(args.promtool, errors)
        check_unwatched_processes(args.promtool, errors)
    print(f"[check-dashboards] {n_panels} panels, {len(items)} queries checked with promtool")
    if args.prometheus:
        empty = check_prometheus(args.prometheus.rstrip("/"), items, args.time, errors)
        print(f"[check-dashboards] {len(items)} queries run against {args.prometheus}: {len(items) - empty} non-empty")
    check_compose(errors)
    check_generated(errors)
    for e in errors:
        print(f"[check-dashboards] FAIL {e}", file=sys.stderr)
    if errors:
        print(f"[check-dashboards] {len(errors)} problems", file=sys.stderr)
        return 1
    print("[check-dashboards] ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
