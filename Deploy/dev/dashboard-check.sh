#!/usr/bin/env bash
# Opens the gateway's dashboard in headless Chromium against a whole local mesh and checks
# that the page loads without a console error and shows a freshly created agent; then takes
# a screenshot:
#   Deploy/dev/dashboard-check.sh [screenshot.png]      (default: .mesh-dashboard.png)
# Needs Debian's chromium (apt-get install chromium) and curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
screenshot=${1:-.mesh-dashboard.png}
case "$screenshot" in /*) ;; *) screenshot="$PWD/$screenshot" ;; esac
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "chromium not found: apt-get install chromium" >&2; exit 1; }
source Deploy/dev/setup.sh
swift build >&2
bin=$(swift build --show-bin-path)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
state=$(mktemp -d /tmp/mesh-dashboard-XXXXXX)
chmod 755 "$state"
gateway_port=$(free_port)
cleanup() { "$bin/meshctl" down --state-dir "$state" >/dev/null 2>&1 || true; rm -rf "$state"; }
trap cleanup EXIT
"$bin/meshctl" up --detach --state-dir "$state" --no-metrics-ports \
  --nats-port "$(free_port)" --nats-monitor-port "$(free_port)" --postgres-port "$(free_port)" --gateway-port "$gateway_port" >&2
key=$(cat "$state/gateway-admin.key")
url="http://127.0.0.1:$gateway_port"
agent="dashboard-probe-$RANDOM"
curl -sf -o /dev/null -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d "{\"id\":\"$agent\",\"kind\":\"echo\",\"labels\":{\"team\":\"dashboard\"}}" "$url/api/v1/agents"

profile="$state/chromium"
chrome() {
  "$browser" --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$profile" \
    --enable-logging=stderr --v=0 --virtual-time-budget=6000 --window-size=1400,1000 "$@"
}
# The key goes in the URL fragment, which the browser never sends to the server.
chrome --dump-dom "$url/#key=$key" >"$state/dom.html" 2>"$state/console.log" || true
status=0
if ! grep -q "$agent" "$state/dom.html"; then
  echo "FAIL: the agent $agent is not on the page" >&2; status=1
fi
if grep -E 'CONSOLE|Uncaught' "$state/console.log" | grep -Eiq 'error|uncaught'; then
  echo "FAIL: console errors:" >&2; grep -E 'CONSOLE|Uncaught' "$state/console.log" >&2; status=1
fi
chrome --screenshot="$screenshot" "$url/#key=$key" >/dev/null 2>&1 || true
[ -f "$screenshot" ] && echo "screenshot: $screenshot"
[ "$status" -eq 0 ] && echo "dashboard ok: loads without console errors and lists $agent"
exit "$status"
