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

echo "== swift build and tests" >&2
swift build --build-tests
swift test --skip-build "$@"
