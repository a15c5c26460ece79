#!/usr/bin/env bash
# HTTP benchmarks of the gateway with wrk, release build, against a whole local mesh
# (nats-server, PostgreSQL, registry, supervisor, one worker, gateway — all on this machine):
#   Deploy/dev/bench-gateway.sh [seconds per scenario, default 10] [connections, default 64]
# Scenarios: GET /health; GET an agent (auth + registry request over NATS); POST an echo
# action (auth + action over NATS to the worker and back). Rate limiting is off for the run.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
connections=${2:-64}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl not found: apt-get install curl" >&2; exit 1; }
source Deploy/dev/setup.sh
swift build -c release >&2
bin=$(swift build -c release --show-bin-path)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
state=$(mktemp -d /tmp/mesh-bench-XXXXXX)
chmod 755 "$state"
gateway_port=$(free_port)
cleanup() { "$bin/meshctl" down --state-dir "$state" >/dev/null 2>&1 || true; rm -rf "$state"; }
trap cleanup EXIT
MESH_GATEWAY_RATE_LIMIT=0 "$bin/meshctl" up --detach --state-dir "$state" --log-level warning --no-metrics-ports \
  --nats-port "$(free_port)" --nats-monitor-port "$(free_port)" --postgres-port "$(free_port)" --gateway-port "$gateway_port" >&2
key=$(cat "$state/gateway-admin.key")
url="http://127.0.0.1:$gateway_port"
curl -sf -o /dev/null -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d '{"id":"bench-echo","kind":"echo","mailbox_capacity":65536}' "$url/api/v1/agents"
for _ in $(seq 1 100); do
  curl -sf -o /dev/null -H "Authorization: Bearer $key" -d '{"x":1}' "$url/api/v1/agents/bench-echo/actions/echo" && break
  sleep 0.2
done

post=$(mktemp /tmp/mesh-bench-XXXXXX.lua)
trap 'cleanup; rm -f "$post"' EXIT
cat > "$post" <<LUA
wrk.method = "POST"
wrk.body = '{"x":1}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA

echo "== one action answer before the load (status and body):"
curl -s -w ' HTTP %{http_code}\n' -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d '{"x":1}' \
  "$url/api/v1/agents/bench-echo/actions/echo"

echo "== GET /health (${seconds}s, ${connections} connections)"
wrk -t2 -c"$connections" -d"${seconds}s" --latency "$url/health"
echo "== GET /api/v1/agents/bench-echo"
wrk -t2 -c"$connections" -d"${seconds}s" --latency -H "Authorization: Bearer $key" "$url/api/v1/agents/bench-echo"
echo "== POST /api/v1/agents/bench-echo/actions/echo"
wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$post" "$url/api/v1/agents/bench-echo/actions/echo"
echo "== POST an echo action, 4 connections (latency at a moderate rate)"
wrk -t1 -c4 -d"${seconds}s" --latency -s "$post" "$url/api/v1/agents/bench-echo/actions/echo"
echo "== one action answer after the load:"
curl -s -w ' HTTP %{http_code}\n' -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -d '{"x":1}' \
  "$url/api/v1/agents/bench-echo/actions/echo"
