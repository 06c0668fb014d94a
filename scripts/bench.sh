#!/usr/bin/env bash
# Every performance figure of issue 8 in one table: runs the benches (benches/capture.rs: paired rounds of each
# configuration against its baseline; benches/reports.rs: criterion), then the memory example under
# /usr/bin/time -v, and prints one markdown table with the machine it ran on. Ratios are always against a
# baseline run in the same process (or, for memory, the same binary in its baseline mode), so a noisy machine
# moves both sides.
#
# Usage: ./scripts/bench.sh            (about 5 minutes on 2 cores, after the release build)
#        QUICK=1 ./scripts/bench.sh    (shorter criterion runs of the reports bench; rougher figures)
set -euo pipefail
cd "$(dirname "$0")/.."

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
crit_args=()
if [ "${QUICK:-}" = 1 ]; then
    crit_args=(--warm-up-time 1 --measurement-time 1)
fi

if [ ! -x /usr/bin/time ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing GNU time (apt)" >&2
        apt-get update -qq >/dev/null && apt-get install -y -qq time >/dev/null
    else
        echo "scripts/bench.sh needs GNU time at /usr/bin/time (Debian/Ubuntu: apt-get install time)" >&2
        exit 1
    fi
fi

echo "==> cargo bench --bench capture (paired rounds)" >&2
# The table's capture rows come from the bench's paired rounds; its criterion groups are skipped here (run
# `cargo bench --bench capture` for them).
TOKENMETER_BENCH_PAIRED_ONLY=1 cargo bench --quiet --bench capture >"$out/capture.txt" 2>"$out/capture.err" || {
    cat "$out/capture.err" >&2
    exit 1
}
echo "==> cargo bench --bench reports" >&2
cargo bench --quiet --bench reports -- "${crit_args[@]}" >"$out/reports.txt" 2>"$out/reports.err" || {
    cat "$out/reports.err" >&2
    exit 1
}

echo "==> cargo bench --bench filtering (filtered_layer against layer, child processes)" >&2
cargo bench --quiet --bench filtering >"$out/filtering.txt" 2>"$out/filtering.err" || {
    cat "$out/filtering.err" >&2
    exit 1
}

echo "==> cargo bench --bench replay (a restart over a month of journal)" >&2
cargo bench --quiet --bench replay >"$out/replay.txt" 2>"$out/replay.err" || {
    cat "$out/replay.err" >&2
    exit 1
}

echo "==> cargo bench --bench budget_status (calls beside budget_status() at 100,000 values)" >&2
cargo bench --quiet --bench budget_status >"$out/budget_status.txt" 2>"$out/budget_status.err" || {
    cat "$out/budget_status.err" >&2
    exit 1
}

echo "==> peak memory: 1M calls over 100k sessions (examples/memory.rs)" >&2
cargo build --quiet --release --example memory
target_dir="${CARGO_TARGET_DIR:-target}"
# A failed run (a panic, an OOM kill) still gets a "Maximum resident set size" from GNU time, and `set -e` does
# not reach inside `$(...)`: the run's status and its figure are checked here, so a failure is never "met".
peak_kib() {
    if ! /usr/bin/time -v "$target_dir/release/examples/memory" "$1" >"$out/memory-$1.txt" 2>"$out/memory-$1.time"; then
        echo "scripts/bench.sh: examples/memory $1 failed:" >&2
        cat "$out/memory-$1.time" >&2
        return 1
    fi
    local kib
    kib="$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$out/memory-$1.time")"
    [ -n "$kib" ] && [ "$kib" -gt 0 ] || { echo "scripts/bench.sh: no peak RSS for examples/memory $1" >&2; return 1; }
    echo "$kib"
}
bare_kib="$(peak_kib bare)" || exit 1
tm_kib="$(peak_kib tokenmeter)" || exit 1

cpu="$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)"
echo
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($cpu), $(free -g 2>/dev/null | awk '/Mem:/ { print $2 " GiB" }'), $(rustc --version | cut -d' ' -f1-2), release profile."
echo
echo "| bench | baseline | figure | ratio | target |"
echo "|---|---|---|---|---|"
grep -h '^| ' "$out/capture.txt" "$out/reports.txt" "$out/filtering.txt" "$out/replay.txt" "$out/budget_status.txt" |
    grep -v '^| bench |' || true
# /usr/bin/time reports KiB; the target is read as 64 MB = 64,000,000 bytes (the stricter reading: 61.04 MiB).
awk -v b="$bare_kib" -v t="$tm_kib" 'BEGIN {
    mb = 1024 / 1e6;
    verdict = (t * mb <= 64) ? "met" : "MISSED";
    row = "| peak RSS, 1M calls over 100k sessions | %.1f MB (bare registry) | %.1f MB (%.1f MiB) | +%.1f MB "
    printf row "| <= 64 MB: %s |\n", b * mb, t * mb, t / 1024, (t - b) * mb, verdict
}'
grep -h -e '^journal writer at' "$out/capture.err" | sed 's/^/note: /' || true
grep -h '^ingest:' "$out/reports.txt" | sed 's/^/note: ledger /' || true
grep -h '^budget_status()' "$out/budget_status.txt" | sed 's/^/note: /' || true
grep -h '^30-day summary over the ledger the layer fed' "$out/memory-tokenmeter.txt" | sed 's/^/note: /' || true
