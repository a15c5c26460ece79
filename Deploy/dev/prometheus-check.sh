#!/usr/bin/env bash
# Runs Deploy/prometheus and Deploy/grafana in a real Prometheus (run by the test command):
#   Deploy/dev/prometheus-check.sh
# 1. promtool: alerts.yml parses, its unit tests (alerts.test.yml) pass, prometheus.yml is valid;
# 2. prometheus-live.py: a whole local mesh scraped by Prometheus with those files — every
#    target up, every rule evaluating, every dashboard query evaluating with series behind
#    it, and node_down firing when a worker is killed.
# Prometheus is Debian's package (bookworm: 2.42), unpacked into the tools directory rather
# than installed, so no daemon is started and nothing system-wide changes. The compose
# profile runs the image pinned in versions.env; these files use nothing 3.x changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
source Deploy/dev/setup.sh

tools="$MESH_TOOLS_DIR/check-jsonschema-$CHECK_JSONSCHEMA_VERSION" # brings ruamel.yaml
_mesh_pip_target check-jsonschema "$CHECK_JSONSCHEMA_VERSION" "$tools"

prometheus_dir="$MESH_TOOLS_DIR/prometheus-debian"
if [ ! -f "$prometheus_dir/.complete" ]; then
  rm -rf "$prometheus_dir" && mkdir -p "$prometheus_dir"
  echo "prometheus-check: unpacking Debian's prometheus into $prometheus_dir" >&2
  if ! (cd "$prometheus_dir" && apt-get download prometheus >/dev/null 2>&1); then
    $([ "$(id -u)" -ne 0 ] && echo sudo) apt-get update -qq
    (cd "$prometheus_dir" && apt-get download prometheus >/dev/null 2>&1)
  fi
  dpkg-deb -x "$prometheus_dir"/prometheus_*.deb "$prometheus_dir"
  touch "$prometheus_dir/.complete"
fi
prometheus="$prometheus_dir/usr/bin/prometheus"
promtool="$prometheus_dir/usr/bin/promtool"
echo "prometheus-check: $("$prometheus" --version 2>&1 | head -n 1)" >&2

"$promtool" check rules Deploy/prometheus/alerts.yml
"$promtool" test rules Deploy/prometheus/alerts.test.yml
"$promtool" check config --syntax-only Deploy/prometheus/prometheus.yml

bin=$(swift build --show-bin-path)
[ -x "$bin/meshctl" ] || swift build >&2
PYTHONPATH="$tools" python3 Deploy/dev/prometheus-live.py "$bin/meshctl" "$prometheus"
