#!/usr/bin/env bash
# Checks the dashboards, the compose file and the alert rules. With the OTLP stack up (scripts/e2e.sh calls this
# after the e2e suites exported their workloads), every dashboard query must also return data from Prometheus.
#
# Usage: scripts/check-dashboards.sh [--require-prometheus] [scripts/check-dashboards.py args: --set job=my-service]
set -euo pipefail
cd "$(dirname "$0")/.."
PROM_URL="http://127.0.0.1:${TOKENMETER_PROMETHEUS_PORT:-9090}"
args=()
if [ "${1:-}" = "--require-prometheus" ]; then
    # From scripts/e2e.sh: the stack is meant to be up, and a Prometheus that is not must fail the run rather than
    # skip the queries' data check.
    shift
    curl -fsS --max-time 5 "$PROM_URL/-/ready" >/dev/null || {
        echo "[check-dashboards] Prometheus is not up at $PROM_URL, and --require-prometheus was given" >&2
        exit 1
    }
fi
if curl -fsS --max-time 5 "$PROM_URL/-/ready" >/dev/null 2>&1; then
    # Every query sets a 1m min step, so `$__rate_interval` is 4m, as Grafana would send it: the e2e suites'
    # meters have shut down by now, and that window still holds two of their samples.
    args+=(--prometheus "$PROM_URL")
else
    echo "[check-dashboards] Prometheus is not up at $PROM_URL: offline checks only" >&2
fi
# promtool checks every query's syntax: the same one check-alerts.sh uses, installed first when missing (run on its
# own, on a fresh clone, this failed with "promtool not found").
# A --promtool of the caller's wins (argparse takes the last), and then nothing is installed; an install that fails
# (offline) leaves the error to the checker, after its offline checks.
PROMTOOL="${PROMTOOL:-.tools/otlp-stack/root/usr/bin/promtool}"
case " $* " in
*" --promtool "* | *" --promtool="*) ;;
*) [ -x "$PROMTOOL" ] || ./scripts/otlp-stack.sh install || true ;;
esac
python3 scripts/check-dashboards.py --promtool "$PROMTOOL" "${args[@]}" "$@"
# After the queries: they need the e2e suites' samples within Prometheus's 5-minute lookback.
./scripts/check-alerts.sh
