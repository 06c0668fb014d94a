#!/usr/bin/env bash
# Checks the dashboards, the compose file and the alert rules. With the OTLP stack up (scripts/e2e.sh calls this
# after the e2e suites exported their workloads), every dashboard query must also return data from Prometheus.
#
# Usage: scripts/check-dashboards.sh [extra scripts/check-dashboards.py args, e.g. --set job=my-service]
set -euo pipefail
cd "$(dirname "$0")/.."
PROM_URL="http://127.0.0.1:${TOKENMETER_PROMETHEUS_PORT:-9090}"
args=()
if curl -fsS "$PROM_URL/-/ready" >/dev/null 2>&1; then
    # Every query sets a 1m min step, so `$__rate_interval` is 4m, as Grafana would send it: the e2e suites'
    # meters have shut down by now, and that window still holds two of their samples.
    args+=(--prometheus "$PROM_URL")
else
    echo "[check-dashboards] Prometheus is not up at $PROM_URL: offline checks only" >&2
fi
python3 scripts/check-dashboards.py "${args[@]}" "$@"
# After the queries: they need the e2e suites' samples within Prometheus's 5-minute lookback.
./scripts/check-alerts.sh
