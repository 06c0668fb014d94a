#!/usr/bin/env bash
# A real OTLP metrics pipeline on 127.0.0.1, for the end-to-end tests and for trying tokenmeter by hand:
#
#   app --OTLP gRPC :4317 / HTTP :4318--> rotel (collector, from PyPI)
#       --OTLP HTTP--> vmagent :8429 (Debian trixie's victoria-metrics; -opentelemetry.usePrometheusNaming)
#       --remote write--> Prometheus :9090 (Debian trixie's prometheus 2.53; --web.enable-remote-write-receiver)
#
# Debian's Prometheus builds have their own OTLP receiver patched out, which is why vmagent sits in between.
# vmagent turns the `service_name` label (from the OTLP resource) into `job`, and `service_instance_id` into
# `instance`, as Prometheus' own OTLP receiver would.
#
# Usage: scripts/otlp-stack.sh start|stop|restart|status|install|env [rotel|vmagent|prometheus]
#   install   fetch and unpack everything into .tools/ (once; cached), start nothing
#   start     install if needed, then start the components (all, or the one named) and wait until ready;
#             a component already running is left alone
#   stop      stop the components (all, or the one named) that this script started
#   env       print the endpoints as shell variables
#
# Everything lives under .tools/ (gitignored): .tools/otlp-stack/{apt,debs,root,rotel,run} and .tools/logs.
# The .deb files come from `apt-get download` with a private sources list and state directory; the system's
# apt configuration and package database are not touched. Ports can be moved with TOKENMETER_OTLP_GRPC_PORT,
# TOKENMETER_OTLP_HTTP_PORT, TOKENMETER_VMAGENT_PORT and TOKENMETER_PROMETHEUS_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT_DIR="$PWD"

ROTEL_VERSION="0.0.1a15"
DEBIAN_SUITE="trixie"
DEBIAN_MIRROR="${TOKENMETER_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_KEYRING="/usr/share/keyrings/debian-archive-keyring.gpg"

GRPC_PORT="${TOKENMETER_OTLP_GRPC_PORT:-4317}"
HTTP_PORT="${TOKENMETER_OTLP_HTTP_PORT:-4318}"
VMAGENT_PORT="${TOKENMETER_VMAGENT_PORT:-8429}"
PROM_PORT="${TOKENMETER_PROMETHEUS_PORT:-9090}"

TOOLS="$ROOT_DIR/.tools"
STACK="$TOOLS/otlp-stack"
LOGS="$TOOLS/logs"
RUN="$STACK/run"
PKGROOT="$STACK/root"
ROTEL_DIR="$STACK/rotel"
APT_DIR="$STACK/apt"

ROTEL_BIN="$ROTEL_DIR/rotel/rotel-agent"
VMAGENT_BIN="$PKGROOT/usr/bin/vmagent"
PROM_BIN="$PKGROOT/usr/bin/prometheus"
PROMTOOL_BIN="$PKGROOT/usr/bin/promtool"

COMPONENTS=(prometheus vmagent rotel) # start order: downstream first

log() { printf '[otlp-stack] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# === install ===

apt_private() {
    apt-get \
        -o Dir::Etc::SourceList="$APT_DIR/sources.list" \
        -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::Etc::Preferences=/dev/null \
        -o Dir::Etc::PreferencesParts=/dev/null \
        -o Dir::State="$APT_DIR/state" \
        -o Dir::State::status="$APT_DIR/state/status" \
        -o Dir::Cache="$APT_DIR/cache" \
        -o Debug::NoLocking=1 \
        -o APT::Sandbox::User=root \
        -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
        -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false \
        -o Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false \
        -o Acquire::Languages=none \
        -o APT::Architecture=amd64 \
        -o APT::Architectures::=amd64 \
        "$@"
}

install_debs() {
    if [ -x "$VMAGENT_BIN" ] && [ -x "$PROM_BIN" ] && [ -x "$PROMTOOL_BIN" ]; then
        return 0
    fi
    command -v apt-get >/dev/null || die "apt-get not found: the stack needs a Debian-based machine"
    command -v dpkg >/dev/null || die "dpkg not found: the stack needs a Debian-based machine"
    [ "$(dpkg --print-architecture)" = amd64 ] || die "only amd64 is supported (Debian packages are fetched for amd64)"
    [ -r "$DEBIAN_KEYRING" ] || die "$DEBIAN_KEYRING missing: install the debian-archive-keyring package"
    log "fetching victoria-metrics, prometheus and promtool from Debian $DEBIAN_SUITE (private apt state in $APT_DIR)"
    mkdir -p "$APT_DIR/state/lists/partial" "$APT_DIR/cache/archives/partial" "$STACK/debs"
    : >"$APT_DIR/state/status"
    echo "deb [signed-by=$DEBIAN_KEYRING] $DEBIAN_MIRROR $DEBIAN_SUITE main" >"$APT_DIR/sources.list"
    apt_private -qq update >"$LOGS/apt-update.log" 2>&1 || {
        cat "$LOGS/apt-update.log" >&2
        die "apt-get update (private list) failed"
    }
    rm -f "$STACK/debs"/*.deb
    (cd "$STACK/debs" && apt_private -qq download victoria-metrics prometheus promtool) >"$LOGS/apt-download.log" 2>&1 || {
        cat "$LOGS/apt-download.log" >&2
        die "apt-get download failed"
    }
    rm -rf "$PKGROOT.tmp"
    mkdir -p "$PKGROOT.tmp"
    for deb in "$STACK/debs"/*.deb; do
        dpkg -x "$deb" "$PKGROOT.tmp"
        log "unpacked $(basename "$deb")"
    done
    # Keep the three binaries the stack runs; the rest of victoria-metrics (server, vmalert, vmbackup, ...) is
    # a few hundred MB nobody here uses.
    find "$PKGROOT.tmp/usr/bin" -type f ! -name vmagent ! -name prometheus ! -name promtool -delete
    rm -rf "$PKGROOT"
    mv "$PKGROOT.tmp" "$PKGROOT"
    rm -rf "$STACK/debs" "$APT_DIR/state/lists" "$APT_DIR/cache"
    [ -x "$VMAGENT_BIN" ] && [ -x "$PROM_BIN" ] && [ -x "$PROMTOOL_BIN" ] || die "the packages did not contain vmagent, prometheus and promtool"
}

install_rotel() {
    if [ -x "$ROTEL_BIN" ]; then
        return 0
    fi
    local py
    py="$(command -v python3 || true)"
    [ -n "$py" ] || die "python3 not found: rotel is installed from PyPI with pip"
    log "installing rotel==$ROTEL_VERSION from PyPI into $ROTEL_DIR"
    rm -rf "$ROTEL_DIR.tmp"
    "$py" -m pip install --quiet --disable-pip-version-check --no-input --no-deps \
        --target "$ROTEL_DIR.tmp" "rotel==$ROTEL_VERSION" >"$LOGS/pip-rotel.log" 2>&1 || {
        cat "$LOGS/pip-rotel.log" >&2
        die "pip install rotel failed"
    }
    rm -rf "$ROTEL_DIR"
    mv "$ROTEL_DIR.tmp" "$ROTEL_DIR"
    chmod +x "$ROTEL_BIN" || die "the rotel wheel has no rotel-agent binary"
}

write_configs() {
    mkdir -p "$RUN/prometheus-data" "$RUN/vmagent-data"
    cat >"$RUN/prometheus.yml" <<EOF
# Written by scripts/otlp-stack.sh. Samples arrive by remote write from vmagent; nothing is scraped.
global:
  evaluation_interval: 15s
EOF
    cat >"$RUN/vmagent-relabel.yml" <<'EOF'
# Written by scripts/otlp-stack.sh: the OTLP resource's service.name becomes `job` and service.instance.id
# becomes `instance`, as with Prometheus' own OTLP receiver, so dashboards can select a service with
# {job="..."} and replicas of one service stay apart.
- action: replace
  source_labels: [service_name]
  regex: (.+)
  target_label: job
- action: replace
  source_labels: [service_instance_id]
  regex: (.+)
  target_label: instance
EOF
}

do_install() {
    mkdir -p "$STACK" "$LOGS" "$RUN"
    install_debs
    install_rotel
    write_configs
}

# === processes ===

pidfile() { echo "$RUN/$1.pid"; }

running() {
    local pf pid
    pf="$(pidfile "$1")"
    [ -f "$pf" ] || return 1
    pid="$(cat "$pf")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # Guard against a recycled pid: the process must still be the binary we started.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(binary_of "$1")"
}

binary_of() {
    case "$1" in
    rotel) echo "$ROTEL_BIN" ;;
    vmagent) echo "$VMAGENT_BIN" ;;
    prometheus) echo "$PROM_BIN" ;;
    esac
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ready() {
    case "$1" in
    prometheus) curl -fsS --max-time 5 "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null 2>&1 ;;
    vmagent) curl -fsS --max-time 5 "http://127.0.0.1:$VMAGENT_PORT/health" >/dev/null 2>&1 ;;
    rotel) port_open "$GRPC_PORT" && port_open "$HTTP_PORT" ;;
    esac
}

launch() {
    local name="$1"
    shift
    # setsid: own session and process group, so the daemon outlives this script and stops as one group.
    setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$(pidfile "$name")"
}

start_one() {
    local name="$1"
    if running "$name"; then
        log "$name already running (pid $(cat "$(pidfile "$name")"))"
        return 0
    fi
    case "$name" in
    prometheus)
        port_open "$PROM_PORT" && die "127.0.0.1:$PROM_PORT is taken by another process (set TOKENMETER_PROMETHEUS_PORT)"
        launch prometheus "$PROM_BIN" \
            --config.file="$RUN/prometheus.yml" \
            --storage.tsdb.path="$RUN/prometheus-data" \
            --web.listen-address="127.0.0.1:$PROM_PORT" \
            --web.enable-remote-write-receiver \
            --web.enable-lifecycle \
            --storage.tsdb.retention.time=7d
        ;;
    vmagent)
        port_open "$VMAGENT_PORT" && die "127.0.0.1:$VMAGENT_PORT is taken by another process (set TOKENMETER_VMAGENT_PORT)"
        launch vmagent "$VMAGENT_BIN" \
            -httpListenAddr="127.0.0.1:$VMAGENT_PORT" \
            -opentelemetry.usePrometheusNaming \
            -remoteWrite.url="http://127.0.0.1:$PROM_PORT/api/v1/write" \
            -remoteWrite.relabelConfig="$RUN/vmagent-relabel.yml" \
            -remoteWrite.tmpDataPath="$RUN/vmagent-data" \
            -remoteWrite.flushInterval=1s \
            -loggerOutput=stderr
        ;;
    rotel)
        port_open "$GRPC_PORT" && die "127.0.0.1:$GRPC_PORT is taken by another process (set TOKENMETER_OTLP_GRPC_PORT)"
        port_open "$HTTP_PORT" && die "127.0.0.1:$HTTP_PORT is taken by another process (set TOKENMETER_OTLP_HTTP_PORT)"
        launch rotel "$ROTEL_BIN" start \
            --otlp-grpc-endpoint "127.0.0.1:$GRPC_PORT" \
            --otlp-http-endpoint "127.0.0.1:$HTTP_PORT" \
            --otlp-receiver-traces-disabled \
            --otlp-receiver-logs-disabled \
            --exporter otlp \
            --otlp-exporter-endpoint "http://127.0.0.1:$VMAGENT_PORT/opentelemetry" \
            --otlp-exporter-metrics-endpoint "http://127.0.0.1:$VMAGENT_PORT/opentelemetry/v1/metrics" \
            --otlp-exporter-protocol http \
            --otlp-exporter-compression none \
            --metrics-batch-timeout 100ms \
            --pid-file "$RUN/rotel-agent.pid" \
            --log-file "$LOGS/rotel-agent.log"
        ;;
    *) die "unknown component '$name' (rotel, vmagent, prometheus)" ;;
    esac
    local i
    for i in $(seq 1 150); do
        if ready "$name"; then
            log "$name ready (pid $(cat "$(pidfile "$name")"), log $LOGS/$name.log)"
            return 0
        fi
        # Alive is enough here: `running` also checks the process's command line, which for a moment after
        # `launch` is still this script's (the child has not exec'd yet), and on a busy machine that read as
        # "exited during start-up". The pid was just started, so it cannot be a recycled one.
        if ! kill -0 "$(cat "$(pidfile "$name")")" 2>/dev/null; then
            tail -n 30 "$LOGS/$name.log" >&2 || true
            die "$name exited during start-up"
        fi
        sleep 0.2
    done
    tail -n 30 "$LOGS/$name.log" >&2 || true
    die "$name not ready after 30s"
}

stop_one() {
    local name="$1" pf pid i
    pf="$(pidfile "$name")"
    if ! running "$name"; then
        rm -f "$pf"
        return 0
    fi
    pid="$(cat "$pf")"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not stop in 10s; killing it"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pf"
    log "$name stopped"
}

selected() {
    if [ -n "${1:-}" ]; then
        case "$1" in
        rotel | vmagent | prometheus) echo "$1" ;;
        *) die "unknown component '$1' (rotel, vmagent, prometheus)" ;;
        esac
    else
        echo "${COMPONENTS[@]}"
    fi
}

print_env() {
    cat <<EOF
OTLP_GRPC_ENDPOINT=http://127.0.0.1:$GRPC_PORT
OTLP_HTTP_ENDPOINT=http://127.0.0.1:$HTTP_PORT
VMAGENT_URL=http://127.0.0.1:$VMAGENT_PORT
PROMETHEUS_URL=http://127.0.0.1:$PROM_PORT
PROMTOOL=$PROMTOOL_BIN
EOF
}

cmd="${1:-}"
what="${2:-}"
# Checked here, not inside the loops' `$(selected ...)`: `die` in a command substitution ends only the subshell,
# so a misspelt component started nothing and the script still exited 0.
case "$cmd" in
start | stop | restart | status) selected "$what" >/dev/null ;;
esac
mkdir -p "$LOGS" "$RUN"
case "$cmd" in
install) do_install ;;
start)
    command -v curl >/dev/null || die "curl not found"
    do_install
    for c in $(selected "$what"); do start_one "$c"; done
    ;;
stop)
    # Reverse order: the collector first, so nothing is left queued downstream of a stopped component.
    for c in $(selected "$what" | tr ' ' '\n' | tac); do stop_one "$c"; done
    # What scripts/e2e.sh marked as its own is stopped: a stack started next is the user's. Not for one component
    # (the end-to-end suites stop and restart the collector mid-run).
    if [ -z "$what" ]; then
        rm -f "$RUN/started-by-e2e"
    fi
    ;;
restart)
    for c in $(selected "$what" | tr ' ' '\n' | tac); do stop_one "$c"; done
    do_install
    for c in $(selected "$what"); do start_one "$c"; done
    ;;
status)
    rc=0
    for c in $(selected "$what"); do
        if running "$c" && ready "$c"; then
            echo "$c: running (pid $(cat "$(pidfile "$c")"))"
        else
            echo "$c: stopped"
            rc=1
        fi
    done
    exit $rc
    ;;
env) print_env ;;
*)
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
