#!/usr/bin/env python3
"""Validates Deploy/prometheus and Deploy/grafana offline (no promtool, no Grafana):

- every YAML file parses; prometheus.yml has scrape jobs and loads alerts.yml; alerts.yml
  has groups of rules with alert, expr, for and a severity label;
- every dashboard JSON parses and has a uid, a title and panels whose targets have exprs;
- every metric name used in an alert or a panel is one the mesh exports: spelled as a
  swift-metrics label in the sources (`label: "mesh_..."`) or a collector metric constant,
  optionally as the collector's cluster family (mesh_cluster_<rest>) and with a histogram
  suffix (_bucket, _sum, _count);
- the Prometheus alerts are the collector's built-in rules (same names);
- the compose profile mounts these files and uses the image versions of versions.env.

Usage: validate-observability.py REPO_ROOT
"""
import json
import os
import re
import sys

try:
    from ruamel.yaml import YAML

    def load_yaml(path):
        with open(path) as handle:
            return YAML(typ="safe").load(handle)
except ImportError:  # PyYAML as a fallback
    import yaml

    def load_yaml(path):
        with open(path) as handle:
            return yaml.safe_load(handle)

root = sys.argv[1] if len(sys.argv) > 1 else "."
errors = []


def fail(message):
    errors.append(message)


def exported_metrics():
    names = set()
    pattern = re.compile(r'(?:label: |Metric = )"(mesh_[a-z0-9_]+)"')
    for folder in ("Shared", "Services"):
        for directory, _, files in os.walk(os.path.join(root, folder)):
            for name in files:
                if name.endswith(".swift"):
                    with open(os.path.join(directory, name), encoding="utf-8") as handle:
                        names.update(pattern.findall(handle.read()))
    return names


def builtin_rule_names():
    with open(os.path.join(root, "Services/MetricsCollector/Service/AlertRules.swift"), encoding="utf-8") as handle:
        text = handle.read()
    block = text[text.index("public static let defaults"):]
    block = block[: block.index("\n    ]\n")]
    return set(re.findall(r'AlertRule\(\s*name: "([a-z0-9_-]+)"', block))


exported = exported_metrics()
if len(exported) < 20:
    fail(f"found only {len(exported)} exported metric names in the sources")


def known(metric):
    candidates = {metric}
    for suffix in ("_bucket", "_sum", "_count"):
        if metric.endswith(suffix):
            candidates.add(metric[: -len(suffix)])
    for candidate in list(candidates):
        if candidate.startswith("mesh_cluster_"):
            candidates.add("mesh_" + candidate[len("mesh_cluster_"):])
    return bool(candidates & exported)


def check_expr(expr, where):
    if not isinstance(expr, str) or not expr.strip():
        fail(f"{where}: empty expression")
        return
    if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
        fail(f"{where}: unbalanced brackets in {expr!r}")
    metrics = set(re.findall(r"\b(mesh_[a-z0-9_]+)\b", expr))
    if not metrics:
        fail(f"{where}: uses no mesh metric: {expr!r}")
    for metric in sorted(metrics):
        if not known(metric):
            fail(f"{where}: {metric} is not a metric the mesh exports")


# Prometheus
prometheus = load_yaml(os.path.join(root, "Deploy/prometheus/prometheus.yml"))
jobs = [job.get("job_name") for job in prometheus.get("scrape_configs", [])]
if "mesh-collector" not in jobs or len(jobs) != len(set(jobs)):
    fail(f"prometheus.yml: scrape jobs {jobs} must be unique and include mesh-collector")
for service in ("registry", "supervisor", "agent-worker", "gateway"):
    if f"mesh-{service}" not in jobs:
        fail(f"prometheus.yml: no scrape job mesh-{service}")
if "/etc/prometheus/alerts.yml" not in prometheus.get("rule_files", []):
    fail("prometheus.yml: rule_files must load /etc/prometheus/alerts.yml")

alerts = load_yaml(os.path.join(root, "Deploy/prometheus/alerts.yml"))
alert_names = set()
for group in alerts.get("groups", []):
    for rule in group.get("rules", []):
        name = rule.get("alert")
        where = f"alerts.yml: {name}"
        if not name:
            fail("alerts.yml: a rule without `alert`")
            continue
        alert_names.add(name)
        check_expr(rule.get("expr"), where)
        if not re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))):
            fail(f"{where}: `for` must be a duration")
        if rule.get("labels", {}).get("severity") not in ("info", "warning", "critical"):
            fail(f"{where}: severity must be info, warning or critical")
builtin = builtin_rule_names()
if alert_names != builtin:
    fail(f"alerts.yml rules {sorted(alert_names)} differ from the collector's built-in rules {sorted(builtin)}")

# Grafana
load_yaml(os.path.join(root, "Deploy/grafana/provisioning/datasources/prometheus.yml"))
provider = load_yaml(os.path.join(root, "Deploy/grafana/provisioning/dashboards/mesh.yml"))
if provider.get("providers", [{}])[0].get("options", {}).get("path") != "/var/lib/grafana/dashboards":
    fail("grafana dashboard provider must read /var/lib/grafana/dashboards")
dashboards_dir = os.path.join(root, "Deploy/grafana/dashboards")
expected = {"system-overview.json", "agents.json", "tasks.json", "nats.json", "postgres.json"}
present = {name for name in os.listdir(dashboards_dir) if name.endswith(".json")}
if not expected <= present:
    fail(f"grafana dashboards missing: {sorted(expected - present)}")
uids = set()
for name in sorted(present):
    with open(os.path.join(dashboards_dir, name)) as handle:
        try:
            dashboard = json.load(handle)
        except json.JSONDecodeError as error:
            fail(f"{name}: not JSON: {error}")
            continue
    if not dashboard.get("uid") or not dashboard.get("title") or dashboard["uid"] in uids:
        fail(f"{name}: needs a unique uid and a title")
    uids.add(dashboard.get("uid"))
    panels = dashboard.get("panels", [])
    if not panels:
        fail(f"{name}: no panels")
    for panel in panels:
        targets = panel.get("targets", [])
        if not targets:
            fail(f"{name}: panel {panel.get('title')!r} has no targets")
        for target in targets:
            check_expr(target.get("expr"), f"{name}: {panel.get('title')}")

# Compose profile
with open(os.path.join(root, "docker-compose.yml")) as handle:
    compose_text = handle.read()
compose = load_yaml(os.path.join(root, "docker-compose.yml"))
versions = {}
with open(os.path.join(root, "Deploy/dev/versions.env")) as handle:
    for line in handle:
        if "=" in line and not line.startswith("#"):
            key, value = line.strip().split("=", 1)
            versions[key] = value
services = compose.get("services", {})
if services.get("prometheus", {}).get("image") != f"prom/prometheus:v{versions.get('PROMETHEUS_VERSION')}":
    fail("docker-compose.yml: prometheus image must be prom/prometheus:v$PROMETHEUS_VERSION")
if services.get("grafana", {}).get("image") != f"grafana/grafana:{versions.get('GRAFANA_VERSION')}":
    fail("docker-compose.yml: grafana image must be grafana/grafana:$GRAFANA_VERSION")
for mount in re.findall(r"\./(Deploy/(?:prometheus|grafana)/[^:]+):", compose_text):
    if not os.path.exists(os.path.join(root, mount)):
        fail(f"docker-compose.yml mounts {mount}, which does not exist")

if errors:
    for message in errors:
        print(f"validate-observability: {message}", file=sys.stderr)
    sys.exit(1)
print(f"validate-observability: prometheus, alerts ({len(alert_names)} rules), {len(present)} grafana dashboards and "
      f"compose profile OK ({len(exported)} exported metric names)")
