#!/usr/bin/env bash
# Validates deployment files offline: docker-compose.yml against the Compose
# specification schema (check-jsonschema, pinned in versions.env), then Deploy/prometheus
# and Deploy/grafana (validate-observability.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
source Deploy/dev/versions.env
tools="${MESH_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agent-mesh}/check-jsonschema-$CHECK_JSONSCHEMA_VERSION"
if [ ! -f "$tools/.complete" ]; then
  rm -rf "$tools"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-warn-script-location \
    --target "$tools" "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" >&2 \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages --no-warn-script-location \
      --target "$tools" "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" >&2
  touch "$tools/.complete"
fi
PYTHONPATH="$tools" python3 -m check_jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
# Prometheus scrape config and alert rules, Grafana provisioning and dashboards: parsed,
# and every metric they use checked against the metrics the mesh exports.
PYTHONPATH="$tools" python3 Deploy/dev/validate-observability.py .
