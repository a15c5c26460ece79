#!/usr/bin/env bash
# Validates deployment files offline: docker-compose.yml against the Compose
# specification schema (check-jsonschema, pinned in versions.env), Deploy/nats/nats.conf
# with nats-server, then Deploy/prometheus
# and Deploy/grafana (validate-observability.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
source Deploy/dev/setup.sh
tools="$MESH_TOOLS_DIR/check-jsonschema-$CHECK_JSONSCHEMA_VERSION"
_mesh_pip_target check-jsonschema "$CHECK_JSONSCHEMA_VERSION" "$tools"
PYTHONPATH="$tools" python3 -m check_jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
# The NATS config the compose file mounts, parsed by the pinned nats-server.
"$MESH_NATS_SERVER" -t -c Deploy/nats/nats.conf
# Prometheus scrape config and alert rules, Grafana provisioning and dashboards: parsed,
# and every metric they use checked against the metrics the mesh exports.
PYTHONPATH="$tools" python3 Deploy/dev/validate-observability.py .
