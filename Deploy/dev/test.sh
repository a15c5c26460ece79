#!/usr/bin/env bash
# Runs every check and test of the mesh on this machine, installing what is missing first:
#   Deploy/dev/test.sh [extra swift test arguments]
# Under CI=true a test that needs nats-server or PostgreSQL fails rather than skips.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Deploy/dev/setup.sh

echo "== wire contract: committed protoc-c output is current" >&2
Shared/Proto/generate.sh --check

echo "== deployment files validate" >&2
Deploy/dev/validate-deploy.sh

echo "== swift build" >&2
swift build --build-tests

# Tests run one at a time: the integration and system tests start real servers and
# processes, and the unit tests of deadlines and mailboxes must not compete with them
# for the two cores. Unit tests first (seconds), then integration and system tests.
unit='MeshCoreTests|MeshBenchTests|MeshSupervisionTests|AgentSDKTests|AgentWorkerTests|MeshProtoTests|GatewayTests|MetricsCollectorTests'
if [ "$#" -gt 0 ]; then
  swift test --skip-build --no-parallel "$@"
else
  echo "== unit tests" >&2
  swift test --skip-build --no-parallel --filter "$unit"
  echo "== integration and system tests" >&2
  swift test --skip-build --no-parallel --skip "$unit"
  echo "== gateway API against its OpenAPI document (schemathesis)" >&2
  Deploy/dev/api-schema-check.sh
  echo "== Prometheus rules, scrape jobs and Grafana queries in a real Prometheus" >&2
  Deploy/dev/prometheus-check.sh
fi
