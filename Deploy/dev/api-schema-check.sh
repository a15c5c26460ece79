#!/usr/bin/env bash
# Property-based checks of the gateway against its own OpenAPI document with schemathesis
# (PyPI, pinned in versions.env): generated requests to every operation, with an admin
# key, against a fresh local mesh. Fails on any 5xx answer or any answer that does not
# match the document.
#   Deploy/dev/api-schema-check.sh [max examples per operation, default 20]
# The endless live event stream (/api/v1/events) is left out.
set -euo pipefail
cd "$(dirname "$0")/../.."
examples=${1:-20}
source Deploy/dev/setup.sh
schemathesis_dir="$MESH_TOOLS_DIR/schemathesis-$SCHEMATHESIS_VERSION"
_mesh_pip_target schemathesis "$SCHEMATHESIS_VERSION" "$schemathesis_dir"
bin=$(cd "$PWD" && swift build --show-bin-path)
[ -x "$bin/meshctl" ] && [ -x "$bin/mesh-gateway" ] || swift build >&2

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
state=$(mktemp -d /tmp/mesh-schema-XXXXXX)
chmod 755 "$state"
gateway_port=$(free_port)
cleanup() { "$bin/meshctl" down --state-dir "$state" >/dev/null 2>&1 || true; rm -rf "$state"; }
trap cleanup EXIT
"$bin/meshctl" up --detach --state-dir "$state" --log-level warning --no-metrics-ports \
  --nats-port "$(free_port)" --nats-monitor-port "$(free_port)" --postgres-port "$(free_port)" --gateway-port "$gateway_port" >&2
key=$(cat "$state/gateway-admin.key")
# Run from the state directory: schemathesis keeps its own files in the working directory.
cd "$state"
PYTHONPATH="$schemathesis_dir" "$schemathesis_dir/bin/st" run "http://127.0.0.1:$gateway_port/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance \
  --exclude-path /api/v1/events \
  --max-examples "$examples" --generation-deterministic --request-timeout 20 --no-color
