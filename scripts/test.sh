#!/usr/bin/env bash
# Every check the project makes, in the order a reviewer would want them to fail:
# formatting, lints, docs, unit + integration + doc tests, the examples, then the end-to-end suites.
# Installs what it needs (project-local, cached under .tools/) and stops whatever it started.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-always}"
export RUSTFLAGS="${RUSTFLAGS:-}"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, -D warnings)"
cargo clippy --all-targets --all-features -- -D warnings

step "cargo doc (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features

step "feature combinations build (clippy, -D warnings: code used only under some features warns without them)"
cargo clippy --quiet --no-default-features --lib -- -D warnings
cargo clippy --quiet --no-default-features --features cli --all-targets -- -D warnings

step "tests (unit, integration, doc)"
# The Python checks (dashboards, HTTP samples, schemathesis) make virtual environments: Debian's python3 needs
# python3-venv for that (a pyenv or distribution python with ensurepip has it).
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing python3-venv and python3-pip (apt)"
        apt-get update -qq >/dev/null && apt-get install -y -qq python3-venv python3-pip >/dev/null
    else
        echo "the Python checks need python3 with venv and ensurepip (Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    fi
fi
# tests/readme_samples.rs runs README's CLI samples, one of which pipes into jq (Debian ships it; installed
# when missing).
if ! command -v jq >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing jq (apt)"
        apt-get update -qq >/dev/null && apt-get install -y -qq jq >/dev/null
    else
        echo "tests/readme_samples.rs needs jq (Debian/Ubuntu: apt-get install jq)" >&2
        exit 1
    fi
fi
# tests/cli_terminal.rs runs the CLI on a pseudo-terminal through util-linux `script` (bsdutils on Debian).
if ! command -v script >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing script (apt: bsdutils)"
        apt-get update -qq >/dev/null && apt-get install -y -qq bsdutils >/dev/null
    else
        echo "tests/cli_terminal.rs needs util-linux script (Debian/Ubuntu: apt-get install bsdutils)" >&2
        exit 1
    fi
fi
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --all-features --no-fail-fast
    cargo test --doc --all-features
else
    cargo test --all-features --no-fail-fast
fi

step "examples"
quickstart_out="$(mktemp -t tokenmeter-quickstart.XXXXXX)"
cargo run --quiet --example quickstart >"$quickstart_out"
grep -q "TOTAL" "$quickstart_out"
echo "quickstart ok ($(wc -l <"$quickstart_out") lines)"
rm -f "$quickstart_out"
# Without ANTHROPIC_API_KEY the HTTP example explains what to set and exits 0 (its client code is exercised
# against a local server by tests/instrument_http.rs).
env -u ANTHROPIC_API_KEY cargo run --quiet --example claude_http >/dev/null

step "documentation samples (HTTP)"
# README.md's and docs/http.md's curl samples against the example server they were captured from. (The CLI
# samples are checked by tests/readme_samples.rs.)
./scripts/check-http-samples.py

step "benches compile"
cargo bench --no-run --quiet

if [ -x scripts/e2e.sh ]; then
    step "end-to-end"
    ./scripts/e2e.sh
fi

step "HTTP API fuzzing (schemathesis)"
./scripts/schemathesis.sh

step "all checks passed"
