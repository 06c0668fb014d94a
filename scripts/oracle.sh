#!/usr/bin/env bash
# The oracles (tests/oracle/): what the crate must answer, computed here from README's written rules, never from the
# code. Money: random and edge-case LLM calls priced with exact fractions ("Money: the price book", "The capture
# contract, in brief", "Claude Code transcripts") against the crate's records through spans, `instrument` responses,
# SSE streams, a price file, transcripts and a journal. Reports: the ledger's queries and reports over calls spread
# across time zones and tiers ("Analytics"). Budgets: spend, periods, alerts, refusals and a restart ("Budgets,
# alerts and the journal"). Fixed seeds: the same calls every run. One line per part; exits 1 on any disagreement
# (or, for money, a rule no call exercised).
# Usage: scripts/oracle.sh (python3, stdlib only; the driver builds offline once the crate's own build has fetched
# its dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."

# The driver is a crate of its own (tests/oracle/Cargo.toml, its own [workspace]), built into the crate's target/
# unless the caller chose another.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

# Its Cargo.lock must hold the versions the crate's holds: what the crate's build fetched is then all it needs.
lock_versions() { awk '/^name = /{name=$3} /^version = /{print name, $3}' "$1" | sort -u; }
drift="$(comm -23 <(lock_versions tests/oracle/Cargo.lock | grep -v '^"\(oracle-driver\|tokenmeter\)" ') \
    <(lock_versions Cargo.lock))"
if [ -n "$drift" ]; then
    echo "tests/oracle/Cargo.lock has versions Cargo.lock does not:" >&2
    echo "$drift" >&2
    echo "update it: cp Cargo.lock tests/oracle/ && cargo update --offline --workspace --manifest-path tests/oracle/Cargo.toml" >&2
    exit 1
fi

started=$SECONDS
cargo build --quiet --locked --manifest-path tests/oracle/Cargo.toml || {
    echo "if tests/oracle/Cargo.lock needs an update (a new dependency, the crate's version): cp Cargo.lock" \
        "tests/oracle/ && cargo update --offline --workspace --manifest-path tests/oracle/Cargo.toml" >&2
    exit 1
}
driver="$CARGO_TARGET_DIR/debug/oracle-driver"
built=$SECONDS
echo "oracle driver built in $((built - started)) s"

# Each part prints its summary line (and its first disagreements); every part runs even after one fails.
export PYTHONDONTWRITEBYTECODE=1
status=0
part() { python3 "$@" || status=1; }
part tests/oracle/oracle.py check "$driver" 1-12 5000
part tests/oracle/pricefile_test.py "$driver" 1-4 3000
part tests/oracle/transcripts_test.py "$driver" 1-4 5000
part tests/oracle/oracle.py journal "$driver" 1 5000
part tests/oracle/ledger_test.py "$driver" 1-9
part tests/oracle/budget_test.py "$driver" 1-8 200
echo "oracle ran in $((SECONDS - built)) s: $([ "$status" = 0 ] && echo "no disagreement" || echo FAILED)"
exit "$status"
