#!/usr/bin/env bash
# Fuzzes the HTTP API (feature `http`) with schemathesis against its own OpenAPI document: starts
# examples/http_server.rs (a simulated workload, an API key for every tenant and one bound to tenant acme),
# runs schemathesis once with each key, fails on any 5xx or any response that does not match the document.
# Builds into $CARGO_TARGET_DIR when set (cargo's default target directory otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.tools/venv
if [ ! -x "$VENV/bin/schemathesis" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet -c scripts/python-constraints.txt --upgrade pip
    "$VENV/bin/pip" install --quiet -c scripts/python-constraints.txt schemathesis
fi

KEY=schemathesis-key
TENANT_KEY=schemathesis-acme-key
cargo build --quiet --features http --example http_server
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
OUT=$(mktemp)
"$TARGET_DIR/debug/examples/http_server" 0 "$KEY" "$TENANT_KEY" >"$OUT" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; rm -f "$OUT"' EXIT
for _ in $(seq 1 300); do
    [ -s "$OUT" ] && break
    sleep 0.1
done
BASE=$(head -n1 "$OUT")
case "$BASE" in
    http://*) echo "server at $BASE" ;;
    *) echo "schemathesis: examples/http_server did not print its address within 30 s:" >&2; cat "$OUT" >&2; exit 1 ;;
esac

for key in "$KEY" "$TENANT_KEY"; do
    echo "== with API key $key"
    "$VENV/bin/schemathesis" run "$BASE/api/v1/openapi.json" \
        --url "$BASE" \
        --header "x-api-key: $key" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
        --max-examples "${SCHEMATHESIS_EXAMPLES:-200}" \
        --phases examples,coverage,fuzzing \
        --mode all \
        --seed 1 \
        --suppress-health-check too_slow,filter_too_much \
        --no-color
done
echo "schemathesis: no 5xx, no schema violations (every tenant's key and a tenant-bound key)"
