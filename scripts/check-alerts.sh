#!/usr/bin/env bash
# Checks the Prometheus rules in alerts/: `promtool check rules` and `promtool test rules` (unit tests in
# alerts/tests/, each alert firing and not firing). promtool comes from scripts/otlp-stack.sh install.
set -euo pipefail
cd "$(dirname "$0")/.."
PROMTOOL="${PROMTOOL:-.tools/otlp-stack/root/usr/bin/promtool}"
[ -x "$PROMTOOL" ] || ./scripts/otlp-stack.sh install
"$PROMTOOL" check rules alerts/tokenmeter-recording.yml alerts/tokenmeter-alerts.yml
# Without group_eval_order promtool evaluates the groups in a random order, and a test whose alert reads a
# recording rule of the same step passes or fails by chance (CI once failed that way).
for t in alerts/tests/*.yml; do
    grep -q '^group_eval_order: \[tokenmeter-recording, tokenmeter-alerts\]' "$t" || {
        echo "check-alerts: $t does not set group_eval_order: [tokenmeter-recording, tokenmeter-alerts]" >&2
        exit 1
    }
done
PROMTOOL_ABS="$(cd "$(dirname "$PROMTOOL")" && pwd)/$(basename "$PROMTOOL")"
(cd alerts/tests && "$PROMTOOL_ABS" test rules ./*.yml)
