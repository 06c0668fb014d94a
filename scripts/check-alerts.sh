#!/usr/bin/env bash
# Checks the Prometheus rules in alerts/: `promtool check rules` and `promtool test rules` (unit tests in
# alerts/tests/, each alert firing and not firing). promtool comes from scripts/otlp-stack.sh install.
set -euo pipefail
cd "$(dirname "$0")/.."
PROMTOOL="${PROMTOOL:-.tools/otlp-stack/root/usr/bin/promtool}"
[ -x "$PROMTOOL" ] || ./scripts/otlp-stack.sh install
"$PROMTOOL" check rules alerts/tokenmeter-recording.yml alerts/tokenmeter-alerts.yml
PROMTOOL_ABS="$(cd "$(dirname "$PROMTOOL")" && pwd)/$(basename "$PROMTOOL")"
(cd alerts/tests && "$PROMTOOL_ABS" test rules ./*.yml)
