#!/usr/bin/env bash
# Builds the mesh (release) and runs it locally: nats-server, PostgreSQL and all five
# services as child processes under .mesh/, until Ctrl-C. Installs what is missing first.
#   Deploy/dev/run.sh [meshctl up options]
set -euo pipefail
cd "$(dirname "$0")/../.."
source Deploy/dev/setup.sh
swift build -c release
exec "$(swift build -c release --show-bin-path)/meshctl" up "$@"
