#!/usr/bin/env bash
# Agreement and speed against ccusage, the tool Claude Code users already run.
#
#   scripts/ccusage-compare.sh [--lines N] [--runs N] [--data DIR] [--now TIME]
#
# (--now: tokenmeter's time for the generated data, after its last call; default 2025-11-01T00:00:00Z, past the
# generator's last call. ccusage has no such cut: a --now before the data's last call makes them disagree.)
#
# 1. Installs ccusage 20.0.24 from npm into .tools/ccusage (project-local) and builds tokenmeter (release,
#    feature `cli`).
# 2. Runs `ccusage claude daily|session --json --offline --mode calculate -z UTC` and tokenmeter's
#    `summary --group-by day|session --format json` over the fixture transcripts (tests/fixtures/claude_code)
#    and over generated transcripts (scripts/gen-transcripts.py, ~100,000 lines, ~170 MB), and compares:
#    the same tokens of every kind for every day and session; for days and sessions without a call over
#    200k prompt tokens, the same cost to 1e-9 relative. Days and sessions with such a call differ by
#    design (tokenmeter bills the whole call at the long-context rates, as Anthropic does; ccusage prices
#    each token type against the threshold on its own), and so do the days of a response streamed across
#    midnight (tokenmeter dates it by its first copy, ccusage by the copy it keeps): both figures are printed.
#    The totals must agree. Also `ccusage claude blocks` against `tokenmeter blocks`: the same 5-hour blocks at
#    the same hours, except where a response streamed across an hour opens one (dated by different copies, as
#    for days); tokenmeter's blocks must hold ccusage's daily total of tokens (ccusage's blocks count sidechain
#    replays again: their total is printed).
# 3. Times both on the generated data (best of --runs, warm cache) and prints the times and the ratio.
#
# Exits 1 if any figure disagrees outside the documented differences. Needs node/npm, python3 and cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=100000
RUNS=3
DATA=""
NOW=2025-11-01T00:00:00Z
while [ $# -gt 0 ]; do
    case "$1" in
        --lines) LINES="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --data) DATA="$2"; shift 2 ;;
        --now) NOW="$2"; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

CCUSAGE_VERSION=20.0.24
TOOLS=.tools/ccusage
TARGET="${CARGO_TARGET_DIR:-target}"
DATA="${DATA:-.tools/transcripts-${LINES}}"

step() { printf '\n==> %s\n' "$*"; }

step "ccusage $CCUSAGE_VERSION (npm, project-local in $TOOLS)"
if [ "$(node -p "try{require('./$TOOLS/node_modules/ccusage/package.json').version}catch(e){''}" 2>/dev/null)" != "$CCUSAGE_VERSION" ]; then
    mkdir -p "$TOOLS"
    [ -f "$TOOLS/package.json" ] || echo '{"name":"ccusage-compare","private":true}' >"$TOOLS/package.json"
    npm install --prefix "$TOOLS" --no-audit --no-fund --loglevel=error "ccusage@$CCUSAGE_VERSION"
fi
# ccusage 20 is a native binary behind a node launcher; time the binary itself (the launcher only adds
# node's start-up), falling back to the launcher where the platform package is missing.
CCUSAGE=""
for p in "$TOOLS"/node_modules/@ccusage/ccusage-*/bin/ccusage; do
    [ -f "$p" ] && chmod +x "$p" && CCUSAGE="$p"
done
[ -n "$CCUSAGE" ] || CCUSAGE="$TOOLS/node_modules/.bin/ccusage"
"$CCUSAGE" --version

step "tokenmeter (cargo build --release --features cli)"
cargo build --quiet --release --no-default-features --features cli --bin tokenmeter
TOKENMETER="$TARGET/release/tokenmeter"
"$TOKENMETER" --version

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# run_both NAME DIR NOW: JSON of both tools' daily and session reports over DIR.
run_both() {
    local name="$1" dir="$2" now="$3"
    CLAUDE_CONFIG_DIR="$dir" "$CCUSAGE" claude daily --json --offline --mode calculate -z UTC >"$WORK/$name.cc-daily.json"
    CLAUDE_CONFIG_DIR="$dir" "$CCUSAGE" claude session --json --offline --mode calculate -z UTC >"$WORK/$name.cc-session.json"
    "$TOKENMETER" --quiet --tz UTC --claude-code "$dir" --now "$now" summary --group-by day --format json \
        >"$WORK/$name.tm-daily.json"
    "$TOKENMETER" --quiet --tz UTC --claude-code "$dir" --now "$now" summary --group-by session --format json \
        >"$WORK/$name.tm-session.json"
    CLAUDE_CONFIG_DIR="$dir" "$CCUSAGE" claude blocks --json --offline --mode calculate -z UTC >"$WORK/$name.cc-blocks.json"
    "$TOKENMETER" --quiet --tz UTC --claude-code "$dir" --now "$now" blocks --format json >"$WORK/$name.tm-blocks.json"
}

# compare NAME DIR: checks agreement, prints a table; exit status 1 on disagreement.
compare() {
    python3 - "$WORK" "$1" "$2" <<'PY'
import glob, json, os, sys

work, name, root = sys.argv[1], sys.argv[2], sys.argv[3]
load = lambda s: json.load(open(os.path.join(work, f"{name}.{s}.json")))
cc_daily, cc_session = load("cc-daily"), load("cc-session")
tm_daily, tm_session = load("tm-daily"), load("tm-session")

# Days and sessions holding a call over 200k prompt tokens on a model with long-context rates (Sonnet 4 and
# 4.5): found independently of both tools, by reading the usage lines.
LONG = ("claude-sonnet-4-2", "claude-sonnet-4-5")
long_days, long_sessions = set(), set()
for path in glob.glob(os.path.join(root, "projects", "**", "*.jsonl"), recursive=True):
    rel = os.path.relpath(path, os.path.join(root, "projects")).split(os.sep)
    session = rel[-1][:-6] if len(rel) == 2 else (rel[-3] if rel[-2] == "subagents" and len(rel) >= 4 else rel[-2])
    for line in open(path, encoding="utf-8", errors="replace"):
        if '"usage"' not in line:
            continue
        try:
            d = json.loads(line)
            u, m = d["message"]["usage"], d["message"].get("model") or ""
            prompt = u["input_tokens"] + u.get("cache_read_input_tokens", 0) + u.get("cache_creation_input_tokens", 0)
        except Exception:
            continue
        if prompt > 200_000 and m.startswith(LONG):
            long_days.add(d["timestamp"][:10])
            long_sessions.add(session)

# Responses streamed across midnight: copies of one (message id, request id) on two dates. tokenmeter dates the
# call by its earliest copy, ccusage 20.0.24 by the copy it keeps (the largest token total; on a tie, the first
# read): their tokens are moved from ccusage's day to tokenmeter's before the days' tokens are compared, and those
# days' costs are printed, not compared (the totals still must agree).
copies = {}
for path in sorted(glob.glob(os.path.join(root, "projects", "**", "*.jsonl"), recursive=True)):
    for line in open(path, encoding="utf-8", errors="replace"):
        if '"usage"' not in line or '"requestId"' not in line:
            continue
        try:
            d = json.loads(line)
            u = d["message"]["usage"]
            tokens = (u["input_tokens"], u["output_tokens"], u.get("cache_creation_input_tokens", 0),
                      u.get("cache_read_input_tokens", 0))
            copies.setdefault((d["message"]["id"], d["requestId"]), []).append((d["timestamp"], tokens))
        except Exception:
            continue
moved = {}  # day -> tokens to add to ccusage's figures
for found in copies.values():
    if len({ts[:10] for ts, _ in found}) < 2:
        continue
    kept_ts, kept = max(found, key=lambda c: sum(c[1]))  # max() keeps the first of equal totals
    first_day, cc_day = min(ts for ts, _ in found)[:10], kept_ts[:10]
    if first_day != cc_day:
        for day, sign in ((first_day, 1), (cc_day, -1)):
            old = moved.get(day, (0, 0, 0, 0))
            moved[day] = tuple(o + sign * t for o, t in zip(old, kept))
midnight_days = set(moved)

def cc_tokens(r):
    return (r["inputTokens"], r["outputTokens"], r["cacheCreationTokens"], r["cacheReadTokens"])

def tm_tokens(g):
    t = g["tokens"]
    return (t["input"], t["output"], t["cache_write_5m"] + t["cache_write_1h"], t["cache_read"])

def check(kind, cc_rows, tm_rows, long_keys, midnight_keys=frozenset()):
    bad = 0
    keys = sorted(set(cc_rows) | set(tm_rows))
    agree_tokens = agree_cost = by_design = 0
    zero_cc = {"inputTokens": 0, "outputTokens": 0, "cacheCreationTokens": 0, "cacheReadTokens": 0, "totalCost": 0.0}
    zero_tm = {"tokens": {"input": 0, "output": 0, "cache_write_5m": 0, "cache_write_1h": 0, "cache_read": 0},
               "cost_usd": 0.0}
    for k in keys:
        c, t = cc_rows.get(k), tm_rows.get(k)
        if k in midnight_keys:
            # A day that holds only a response one tool dates elsewhere has no row in that tool.
            c, t = c or zero_cc, t or zero_tm
        if c is None or t is None:
            print(f"  {kind} {k}: only in {'tokenmeter' if c is None else 'ccusage'}")
            bad += 1
            continue
        shift = moved.get(k, (0, 0, 0, 0)) if k in midnight_keys else (0, 0, 0, 0)
        cc_moved = tuple(a + b for a, b in zip(cc_tokens(c), shift))
        if cc_moved != tm_tokens(t):
            print(f"  {kind} {k}: tokens differ: ccusage {cc_moved} tokenmeter {tm_tokens(t)}")
            bad += 1
        else:
            agree_tokens += 1
        cc_cost, tm_cost = c["totalCost"], t["cost_usd"]
        rel = abs(cc_cost - tm_cost) / max(abs(tm_cost), 1e-300) if (cc_cost or tm_cost) else 0.0
        if k in midnight_keys:
            by_design += 1
            print(f"  {kind} {k}: response(s) streamed across midnight: tokenmeter ${tm_cost:.6f} (dated by the first "
                  f"copy), ccusage ${cc_cost:.6f} (by the copy kept); same tokens once moved")
        elif k in long_keys:
            by_design += 1
            print(f"  {kind} {k}: long-context call(s): tokenmeter ${tm_cost:.6f} (whole call at long-context rates), "
                  f"ccusage ${cc_cost:.6f} (per token type)")
        elif rel > 1e-9:
            print(f"  {kind} {k}: cost differs: ccusage {cc_cost!r} tokenmeter {tm_cost!r} (relative {rel:.2e})")
            bad += 1
        else:
            agree_cost += 1
    print(f"  {kind}s: {len(keys)}; same tokens: {agree_tokens}; same cost (<= 1e-9 relative): {agree_cost}; "
          f"by design (long context, across midnight): {by_design}")
    return bad

cc_days = {r["date"]: r for r in cc_daily["daily"]}
tm_days = {g["key"][:10]: g for g in tm_daily["groups"]["groups"] if g["calls"] > 0}
cc_sess = {r["sessionId"]: r for r in cc_session["sessions"]}
tm_sess = {g["key"]: g for g in tm_session["groups"]["groups"] if g["calls"] > 0}
bad = check("day", cc_days, tm_days, long_days, midnight_days) + check("session", cc_sess, tm_sess, long_sessions)

ct, ts = cc_daily["totals"], tm_daily["summary"]
tt = ts["tokens"]
print(f"  totals: ccusage {cc_tokens(ct)} ${ct['totalCost']:.6f}; "
      f"tokenmeter {(tt['input'], tt['output'], tt['cache_creation'], tt['cache_read'])} ${ts['cost_usd']:.6f}")
if (tt["input"], tt["output"], tt["cache_creation"], tt["cache_read"]) != cc_tokens(ct):
    print("  totals: tokens differ")
    bad += 1
# The total cost differs by the long-context sessions' differences and by nothing else (sessions, unlike days, are
# not moved by a response streamed across midnight).
explained = sum(
    tm_sess[k]["cost_usd"] - cc_sess[k]["totalCost"] for k in long_sessions if k in tm_sess and k in cc_sess
)
gap = ts["cost_usd"] - ct["totalCost"]
if abs(gap - explained) > 1e-6 * max(1.0, abs(ts["cost_usd"])):
    print(f"  totals: cost differs by ${gap:.6f}, of which the long-context sessions explain ${explained:.6f}")
    bad += 1
# Blocks of 5 hours: the same blocks, opening at the same hours, except where a response streamed across a whole
# hour opens one (tokenmeter dates it by its first copy, ccusage by the copy it keeps, as for days). ccusage's gap
# rows are left out. The tokens of all tokenmeter's blocks are its daily totals, ccusage's own daily totals (ccusage's
# blocks count sidechain replays again at their own time, so theirs are printed, not compared).
from datetime import datetime, timedelta, timezone
hour = lambda ts: datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(timezone.utc).replace(
    minute=0, second=0, microsecond=0)
instant = lambda ts: datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(timezone.utc)
cc_blocks = [b for b in load("cc-blocks")["blocks"] if not b["isGap"]]
tm_blocks = load("tm-blocks")["blocks"]["blocks"]
tm_first_calls = {instant(b["first_call"]) for b in tm_blocks}
# (tokenmeter's hour, ccusage's hour) of each response streamed across an hour that opens a block of tokenmeter's.
apart = set()
for found in copies.values():
    try:
        first, kept = instant(min(ts for ts, _ in found)), instant(max(found, key=lambda c: sum(c[1]))[0])
    except ValueError:  # a copy whose time is not one (both tools skip its line)
        continue
    if hour(first.isoformat()) != hour(kept.isoformat()) and first in tm_first_calls:
        apart.add((hour(first.isoformat()), hour(kept.isoformat())))
cc_starts = {hour(b["startTime"]) for b in cc_blocks}
tm_starts = {hour(b["start"]) for b in tm_blocks}
only_tm, only_cc = tm_starts - cc_starts, cc_starts - tm_starts
unexplained = sorted(s for s in only_tm if not any(t == s and c in only_cc for t, c in apart)) + sorted(
    s for s in only_cc if not any(c == s and t in only_tm for t, c in apart))
for s in unexplained:
    side = "tokenmeter" if s in only_tm else "ccusage"
    print(f"  block at {s.isoformat()}: only in {side}, and no response streamed across an hour opens it")
    bad += 1
tm_block_tokens = sum(b["total_tokens"] for b in tm_blocks)
cc_block_tokens = sum(b["totalTokens"] for b in cc_blocks)
if tm_block_tokens != sum(cc_tokens(ct)):
    print(f"  blocks: tokenmeter's blocks hold {tm_block_tokens} tokens, not ccusage's daily total {sum(cc_tokens(ct))}")
    bad += 1
print(f"  blocks: ccusage {len(cc_blocks)}, tokenmeter {len(tm_blocks)}; same start hour: {len(cc_starts & tm_starts)}; "
      f"opening at another hour by a response streamed across one: {len(only_tm - set(unexplained))}; tokens: "
      f"tokenmeter {tm_block_tokens} (= ccusage's daily total), ccusage's blocks {cc_block_tokens}")
print(f"  {name}: {'AGREE' if bad == 0 else f'{bad} DISAGREEMENT(S)'}")
sys.exit(1 if bad else 0)
PY
}

status=0

step "fixtures: tests/fixtures/claude_code"
run_both fixtures tests/fixtures/claude_code 2025-10-04T00:00:00Z
compare fixtures tests/fixtures/claude_code || status=1

step "generated transcripts: $DATA ($LINES lines)"
# Data an older generator made (or made with other arguments) is made again, not compared as if it were this one's.
version="$(sed -n 's/^GENERATOR_VERSION = //p' scripts/gen-transcripts.py)"
want="gen-transcripts v$version --lines $LINES --seed 7 --long-context 5"
# Only data the generator made is made again: a folder given with --data without the generator's stamp (a copy
# of real transcripts) is compared as it is, never deleted.
made="$(cat "$DATA/.generator" 2>/dev/null || true)"
ours=false
{ [ -n "$made" ] || [[ "$DATA" == .tools/transcripts-* ]]; } && ours=true
if [ -d "$DATA/projects" ] && [ "$made" != "$want" ] && $ours; then
    echo "  $DATA was made by another generator or with other arguments: making it again"
    rm -rf "$DATA"
fi
if [ ! -d "$DATA/projects" ]; then
    # Never into a folder of one's own (`--data ~/.claude/projects` would get fake transcripts that Claude Code's
    # tools, and tokenmeter, would read as real usage).
    if ! $ours && [ -e "$DATA" ]; then
        echo "$DATA has no projects/ folder and was not made by scripts/gen-transcripts.py: give a Claude Code" \
            "config dir, or a new folder to generate into" >&2
        exit 2
    fi
    python3 scripts/gen-transcripts.py "$DATA" --lines "$LINES" --long-context 5
fi
du -sh "$DATA" | cut -f1 | sed 's/^/  size: /'
# A --now after the data's last call (2025-10-31 00:21): calls stamped after --now have not happened yet
# and are left out, while ccusage has no such cut.
run_both generated "$DATA" "$NOW"
compare generated "$DATA" || status=1

step "speed: best of $RUNS runs each, warm cache, $(nproc) cores"
best() { sort -n | head -1; }
time_cmd() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
find "$DATA" -name '*.jsonl' -exec cat {} + >/dev/null  # warm the page cache
cc_times=(); tm_times=()
for _ in $(seq "$RUNS"); do
    cc_times+=("$(time_cmd env CLAUDE_CONFIG_DIR="$DATA" "$CCUSAGE" claude daily --json --offline --mode calculate -z UTC)")
    tm_times+=("$(time_cmd "$TOKENMETER" --quiet --tz UTC --claude-code "$DATA" --now "$NOW" \
        summary --group-by day --format json)")
done
cc_best=$(printf '%s\n' "${cc_times[@]}" | best)
tm_best=$(printf '%s\n' "${tm_times[@]}" | best)
printf '  ccusage %s claude daily:          %s s  (runs: %s)\n' "$CCUSAGE_VERSION" "$cc_best" "${cc_times[*]}"
printf '  tokenmeter summary --group-by day: %s s  (runs: %s)\n' "$tm_best" "${tm_times[*]}"
awk -v c="$cc_best" -v t="$tm_best" 'BEGIN { printf "  ratio (ccusage / tokenmeter):       %.2fx\n", c / t }'

exit $status
