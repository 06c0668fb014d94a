#!/usr/bin/env bash
# Every check the project makes, in the order a reviewer would want them to fail:
# formatting, lints, docs, unit + integration + doc tests, the oracles (money, reports, budgets), the examples, then the end-to-end
# suites.
# Installs what it needs (project-local, cached under .tools/) and stops whatever it started.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-always}"
export RUSTFLAGS="${RUSTFLAGS:-}"
# Every check, whatever the caller's shell holds: these would skip tests (TOKENMETER_SKIP_PTY), fuzz less
# (SCHEMATHESIS_EXAMPLES), leave the OTLP stack running (TOKENMETER_E2E_KEEP_STACK), check with other tools
# (PROMTOOL, TOKENMETER_GRAFANA_SCHEMA) or fail pip's project-local installs (PIP_REQUIRE_VIRTUALENV), and "all
# checks passed" would not mean all of them. The servers the checks start are local: never through a proxy.
unset TOKENMETER_SKIP_PTY SCHEMATHESIS_EXAMPLES TOKENMETER_E2E_KEEP_STACK PROMTOOL TOKENMETER_GRAFANA_SCHEMA \
    PIP_REQUIRE_VIRTUALENV
export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}" NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
# A clean clone (CI) gains nothing from incremental compilation and it takes ~2 GB of target/.
if [ "${CI:-}" = true ]; then
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi

step "cargo fmt --check"
cargo fmt --all -- --check
# The oracle's driver is a crate of its own (tests/oracle, not a member): --all does not reach it.
cargo fmt --manifest-path tests/oracle/Cargo.toml -- --check

# --all-targets: the benches and examples are checked here too. The benches are not built in the bench profile
# (`cargo bench --no-run`): in a clean clone that took 0.74 GB of target/ and 205 s for what this check shows.
step "cargo clippy (all targets, all features, -D warnings)"
cargo clippy --all-targets --all-features -- -D warnings

step "cargo doc (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features

step "cargo doc as docs.rs builds it (Cargo.toml's features, --cfg docsrs; nightly-only attributes allowed)"
docsrs_features="$(sed -n '/^\[package.metadata.docs.rs\]/,/^\[/s/^features = \[\(.*\)\]/\1/p' Cargo.toml | tr -d '" ')"
[ -n "$docsrs_features" ] || { echo "no features in Cargo.toml's [package.metadata.docs.rs]" >&2; exit 1; }
CARGO_TARGET_DIR=target/docsrs RUSTC_BOOTSTRAP=1 RUSTDOCFLAGS="--cfg docsrs -D warnings" \
    cargo doc --quiet --no-deps --features "$docsrs_features"
# Its own target dir (RUSTC_BOOTSTRAP would rebuild the main one's dependencies): 0.3 GB a clean clone needs no more.
if [ "${CI:-}" = true ]; then
    rm -rf target/docsrs
fi

step "feature combinations build (clippy, -D warnings: code used only under some features warns without them)"
# The tests too (--all-targets): `cargo test` with the default features is what a contributor runs first, and a test
# file that needs a feature must say so (`#![cfg(feature = "cli")]`) or that build fails.
cargo clippy --quiet --all-targets -- -D warnings
cargo clippy --quiet --no-default-features --all-targets -- -D warnings
cargo clippy --quiet --no-default-features --features cli --all-targets -- -D warnings
# Each optional feature on its own (another crate in a build may turn on one alone).
for feature in webhook http otlp-tls; do
    cargo clippy --quiet --no-default-features --features "$feature" --all-targets -- -D warnings
done
# The oracle's driver (its own workspace; into target/, where scripts/oracle.sh builds it).
cargo clippy --quiet --locked --manifest-path tests/oracle/Cargo.toml --target-dir target -- -D warnings

step "tests (unit, integration, doc)"
# What the tests run besides cargo, installed with apt when missing (as root on Debian/Ubuntu), else named.
# apt_install CHECK PACKAGES WHO: installs PACKAGES unless the command CHECK succeeds; WHO needs them.
apt_install() {
    if sh -c "$1" >/dev/null 2>&1; then
        return
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing $2 (apt)"
        # shellcheck disable=SC2086 # a list of packages
        apt-get update -qq >/dev/null && apt-get install -y -qq $2 >/dev/null
    else
        echo "$3 needs $2 (Debian/Ubuntu: apt-get install $2)" >&2
        exit 1
    fi
}
# The Python checks (dashboards, HTTP samples, schemathesis) make virtual environments: Debian's python3 needs
# python3-venv for that (a pyenv or distribution python with ensurepip has it).
# scripts/otlp-stack.sh installs rotel with `python3 -m pip`, which python3-venv alone does not bring.
apt_install "python3 -c 'import ensurepip, venv' && python3 -m pip --version" "python3-venv python3-pip" \
    "the Python checks"
# curl: the OTLP stack's readiness checks and the HTTP samples; CA certificates: the OTLP TLS tests' gRPC
# client loads the platform's roots.
apt_install "command -v curl && test -s /etc/ssl/certs/ca-certificates.crt" "curl ca-certificates" \
    "the end-to-end checks"
# tests/readme_samples.rs runs README's CLI samples, one of which pipes into jq.
apt_install "command -v jq" jq tests/readme_samples.rs
# tests/cli_terminal.rs runs the CLI on a pseudo-terminal through util-linux `script` (bsdutils on Debian); its
# tests fail without it (TOKENMETER_SKIP_PTY=1 skips them instead).
apt_install "command -v script" bsdutils tests/cli_terminal.rs
# scripts/otlp-stack.sh fetches Prometheus, vmagent and promtool from Debian and checks them with Debian's archive
# key (Ubuntu does not ship it; its universe has the package).
apt_install "test -r /usr/share/keyrings/debian-archive-keyring.gpg" debian-archive-keyring scripts/otlp-stack.sh
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --all-features --no-fail-fast
    cargo test --doc --all-features
else
    cargo test --all-features --no-fail-fast
fi

# Random and edge-case calls priced from README's written rules (exact fractions, fixed seeds) against the crate's
# records: spans, `instrument` responses, SSE streams, a price file, Claude Code transcripts, the journal read back.
# Through bash, as the end-to-end step: a lost executable bit must fail here, not skip the check.
step "oracles: money, reports, budgets (scripts/oracle.sh)"
bash scripts/oracle.sh

step "examples"
quickstart_out="$(mktemp -t tokenmeter-quickstart.XXXXXX)"
trap 'rm -f "$quickstart_out"' EXIT
# Not to the caller's collector: an OTLP endpoint in the shell would export the simulated spend there (and an
# https:// one, without the otlp-tls feature, is said and skipped).
env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_METRICS_ENDPOINT \
    cargo run --quiet --example quickstart >"$quickstart_out"
# The simulated morning is fixed (a manual clock, fixed traffic): its total row is known. A changed figure is a
# changed price, capture or ledger, to explain in the CHANGELOG before updating this line.
grep -Eq 'TOTAL +┆ +126 ┆ 632,283 ┆ +572,392 ┆ +181,868 ┆ 65,654 ┆ \$5\.6682 ┆ +\$1\.7615 ┆' "$quickstart_out" || {
    echo "quickstart's TOTAL row is not the known one:" >&2
    grep TOTAL "$quickstart_out" >&2 || cat "$quickstart_out" >&2
    exit 1
}
echo "quickstart ok ($(wc -l <"$quickstart_out") lines)"
rm -f "$quickstart_out"
# Without ANTHROPIC_API_KEY the HTTP example explains what to set, sends nothing and exits 0 (its client code is
# exercised against a local server by tests/instrument_http.rs).
env -u ANTHROPIC_API_KEY cargo run --quiet --example claude_http | grep -q "Nothing was sent."

step "documentation samples (HTTP)"
# README.md's and docs/http.md's curl samples against the example server they were captured from. (The CLI
# samples are checked by tests/readme_samples.rs.)
./scripts/check-http-samples.py

# Run through bash: a lost executable bit must fail here, not skip the end-to-end suites, the dashboards' queries
# and the alert rules' tests.
step "end-to-end"
bash scripts/e2e.sh

step "HTTP API fuzzing (schemathesis)"
./scripts/schemathesis.sh

step "all checks passed"
