#!/usr/bin/env bash
# End-to-end suites: starts the real OTLP pipeline (scripts/otlp-stack.sh: rotel -> vmagent -> Prometheus on
# 127.0.0.1), runs every tests/e2e_*.rs binary's ignored tests against it, and stops the stack it started whatever
# happens (set TOKENMETER_E2E_KEEP_STACK=1 to leave it running for a look at Prometheus on :9090).
#
# Usage: scripts/e2e.sh [test-binary args, passed after `--`: e.g. a test name filter]
set -euo pipefail
cd "$(dirname "$0")/.."

# A stack already running before (`./scripts/otlp-stack.sh start`, as the quickstart suggests) is the user's:
# used, and left running. One a run of this script started and never stopped (killed with SIGKILL, its trap never
# ran: the marker holds its pid, no longer alive) is not: stopped at the end as if this run had started it. One
# that another run still going started is that run's to stop. `otlp-stack.sh stop` removes the marker.
owned=.tools/otlp-stack/run/started-by-e2e
already_running=0
if ./scripts/otlp-stack.sh status >/dev/null 2>&1; then
    already_running=1
    if [ -e "$owned" ] && { [ ! -s "$owned" ] || ! kill -0 "$(cat "$owned")" 2>/dev/null; }; then
        already_running=0
    fi
fi

stop_stack() {
    local rc=$?
    if [ "${TOKENMETER_E2E_KEEP_STACK:-0}" = 1 ]; then
        echo "[e2e] leaving the stack running (scripts/otlp-stack.sh stop to stop it)" >&2
        rm -f "$owned"
    elif [ "$already_running" = 1 ]; then
        echo "[e2e] leaving the stack running: it was running before" >&2
    else
        ./scripts/otlp-stack.sh stop || true
    fi
    if [ "$rc" -ne 0 ]; then
        echo "[e2e] failed (exit $rc); stack logs are in .tools/logs/" >&2
    fi
    exit "$rc"
}
trap stop_stack EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$already_running" = 0 ]; then
    mkdir -p "$(dirname "$owned")"
    echo $$ >"$owned"
fi
./scripts/otlp-stack.sh start

suites=()
for f in tests/e2e_*.rs; do
    [ -e "$f" ] || continue
    suites+=(--test "$(basename "$f" .rs)")
done
if [ "${#suites[@]}" -eq 0 ]; then
    echo "[e2e] no tests/e2e_*.rs suites" >&2
    exit 1
fi

# Test binaries run one after another (a suite that restarts the collector never overlaps another suite);
# tests inside one binary run in parallel and keep apart by their own Prometheus `job`.
TOKENMETER_E2E=1 cargo test --all-features "${suites[@]}" -- --ignored "$@"

# Dashboards and alert rules (issue 7): schema, units, promtool, and every dashboard query non-empty against
# the Prometheus the suites above exported into (tests/e2e_dashboards.rs also checks figures exactly).
./scripts/check-dashboards.sh --require-prometheus
