#!/usr/bin/env bash
# Instructions per LLM call on the recording thread, by part of the pipeline, counted by callgrind: the steady
# measure of a change's cost, which wall-clock benches on a shared machine cannot resolve below ~100 ns.
#
# Runs examples/profile.rs under `valgrind --tool=callgrind` with 20,000 and 40,000 calls for each set of parts
# and prints (Ir(40,000) - Ir(20,000)) / 20,000, so that start-up and shutdown cancel out. The journal is left
# out: callgrind runs one thread at a time, so its writer's work would be counted by chance.
#
# Usage: ./scripts/callgrind.sh [PARTS...]   (default: bare floor capture ledger otlp budgets full; ~3 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing valgrind (apt)" >&2
        apt-get update -qq >/dev/null && apt-get install -y -qq valgrind >/dev/null
    else
        echo "scripts/callgrind.sh needs valgrind (Debian/Ubuntu: apt-get install valgrind)" >&2
        exit 1
    fi
fi

parts=("$@")
if [ ${#parts[@]} -eq 0 ]; then
    parts=(bare floor capture ledger otlp budgets full)
fi

echo "==> cargo build --release --example profile" >&2
cargo build --quiet --release --example profile
bin="${CARGO_TARGET_DIR:-target}/release/examples/profile"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# valgrind prints its count for a run that failed too (an unknown part, a panic): the run's status decides.
refs() {
    if ! valgrind --tool=callgrind --error-exitcode=0 --callgrind-out-file="$out/cg.$1.$2" "$bin" "$2" "$1" \
        2>"$out/log.$1.$2" >/dev/null; then
        return 1
    fi
    awk '/ refs:/ { gsub(",", "", $NF); print $NF }' "$out/log.$1.$2"
}

echo
echo "| parts | instructions per call |"
echo "|---|---|"
for p in "${parts[@]}"; do
    small="$(refs "$p" 20000)" || small=""
    large="$(refs "$p" 40000)" || large=""
    if [ -z "$small" ] || [ -z "$large" ]; then
        echo "callgrind gave no count for $p:" >&2
        cat "$out/log.$p.20000" "$out/log.$p.40000" >&2
        exit 1
    fi
    echo "| $p | $(((large - small) / 20000)) |"
done
