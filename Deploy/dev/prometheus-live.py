#!/usr/bin/env python3
"""Runs Deploy/prometheus and Deploy/grafana against a whole local mesh in a real Prometheus.

Starts a local mesh (`meshctl up --detach`, two workers, each service with its own /metrics
port), then Prometheus with the scrape jobs of Deploy/prometheus/prometheus.yml pointed at
the local ports (every other setting kept; 1 s scrape and evaluation intervals so it runs in
seconds) and the rules of Deploy/prometheus/alerts.yml. Drives a little traffic through the
gateway (agent create, actions, a durable task) and checks:

- every scrape target is up;
- every alert rule is loaded and evaluates without error;
- every Grafana dashboard query and every alert expression evaluates without error, and
  every metric they name has series in Prometheus;
- SIGKILL of a worker makes `node_down` fire in Prometheus for that worker.

Tears everything down afterwards, also on failure.

Usage: prometheus-live.py MESHCTL PROMETHEUS   (run by Deploy/dev/prometheus-check.sh)
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from ruamel.yaml import YAML

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

failures = []


def fail(message):
    failures.append(message)
    print(f"prometheus-live: FAIL {message}", file=sys.stderr)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(url, body=None, headers=None, timeout=10):
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body is not None else "GET")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


def prom(base, path, **params):
    query = urllib.parse.urlencode(params)
    _, body = http(f"{base}{path}" + (f"?{query}" if query else ""))
    answer = json.loads(body)
    if answer.get("status") != "success":
        raise RuntimeError(f"{path}: {answer.get('error')}")
    return answer["data"]


def wait(what, check, timeout):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (OSError, RuntimeError, urllib.error.URLError, ValueError) as error:
            last = error
        time.sleep(0.5)
    raise TimeoutError(f"{what} not reached in {timeout} s" + (f" (last error: {last})" if last else ""))


def local_config(mesh, rules):
    """Deploy/prometheus/prometheus.yml with each job's targets replaced by the local ports."""
    with open(os.path.join(ROOT, "Deploy/prometheus/prometheus.yml")) as handle:
        config = YAML(typ="safe").load(handle)
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [rules]
    ports = {}
    for process in mesh["processes"]:
        if process.get("metricsPort") and process["name"].startswith("mesh-"):
            ports.setdefault(process["name"], []).append(f"127.0.0.1:{process['metricsPort']}")
    for job in config["scrape_configs"]:
        name = job["job_name"]
        service = "mesh-metrics-collector" if name == "mesh-collector" else name
        if service not in ports:
            fail(f"scrape job {name}: the local mesh has no process {service} with a metrics port")
            continue
        for key in [key for key in job if key.endswith("_sd_configs") or key == "static_configs"]:
            del job[key]
        job["static_configs"] = [{"targets": ports.pop(service)}]
    for service in ports:
        fail(f"{service} serves /metrics but prometheus.yml has no job for it")
    return config


def dashboard_queries():
    queries = []
    folder = os.path.join(ROOT, "Deploy/grafana/dashboards")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            with open(os.path.join(folder, name)) as handle:
                dashboard = json.load(handle)
            for panel in dashboard.get("panels", []):
                for target in panel.get("targets", []):
                    queries.append((f"{name}: {panel.get('title')}", target["expr"]))
    return queries


def rule_queries():
    with open(os.path.join(ROOT, "Deploy/prometheus/alerts.yml")) as handle:
        alerts = YAML(typ="safe").load(handle)
    return [(f"alerts.yml: {rule['alert']}", rule["expr"]) for group in alerts["groups"] for rule in group["rules"]]


def traffic(gateway, key):
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    agent = f"prom-probe-{os.getpid()}"
    http(f"{gateway}/api/v1/agents", json.dumps({"id": agent, "kind": "echo"}).encode(), headers)

    def act():
        status, _ = http(f"{gateway}/api/v1/agents/{agent}/actions/echo", b'{"hello":"prometheus"}', headers)
        return status == 200

    wait("the probe agent answering", act, 30)
    for _ in range(50):
        act()
    task = {"agent": agent, "action": "echo", "payload": {"n": 1}}
    http(f"{gateway}/api/v1/tasks", json.dumps(task).encode(), headers)


def main():
    meshctl, prometheus = sys.argv[1], sys.argv[2]
    state = tempfile.mkdtemp(prefix="mesh-prometheus-")
    os.chmod(state, 0o755)
    prometheus_process = None
    gateway_port, prometheus_port = free_port(), free_port()
    try:
        subprocess.run(
            [meshctl, "up", "--detach", "--state-dir", state, "--workers", "2",
             "--nats-port", str(free_port()), "--nats-monitor-port", str(free_port()),
             "--postgres-port", str(free_port()), "--gateway-port", str(gateway_port)],
            check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(state, "up.json")) as handle:
            mesh = json.load(handle)
        rules = os.path.join(state, "alerts.yml")
        shutil.copy(os.path.join(ROOT, "Deploy/prometheus/alerts.yml"), rules)
        config_path = os.path.join(state, "prometheus.yml")
        with open(config_path, "w") as handle:
            json.dump(local_config(mesh, rules), handle, indent=2)  # JSON is YAML
        base = f"http://127.0.0.1:{prometheus_port}"
        prometheus_process = subprocess.Popen(
            [prometheus, f"--config.file={config_path}", f"--storage.tsdb.path={state}/prometheus",
             f"--web.listen-address=127.0.0.1:{prometheus_port}", "--log.level=warn"],
            stdout=open(os.path.join(state, "prometheus.log"), "w"), stderr=subprocess.STDOUT)
        wait("Prometheus ready", lambda: http(f"{base}/-/ready")[0] == 200, 30)

        with open(os.path.join(state, "gateway-admin.key")) as handle:
            traffic(f"http://127.0.0.1:{gateway_port}", handle.read().strip())

        def targets_up():
            active = prom(base, "/api/v1/targets")["activeTargets"]
            return active if active and all(target["health"] == "up" for target in active) else None

        targets = wait("every scrape target up", targets_up, 30)
        print(f"prometheus-live: {len(targets)} scrape targets up "
              f"({', '.join(sorted({target['labels']['job'] for target in targets}))})")

        def rules_evaluated():
            found = [rule for group in prom(base, "/api/v1/rules")["groups"] for rule in group["rules"]]
            return found if found and all(rule["health"] != "unknown" for rule in found) else None

        loaded = wait("every rule evaluated", rules_evaluated, 30)
        for rule in loaded:
            if rule["health"] != "ok":
                fail(f"rule {rule['name']}: {rule['health']} {rule.get('lastError', '')}")
        print(f"prometheus-live: {len(loaded)} alert rules loaded and evaluating")

        # Series behind every metric a dashboard or a rule names.
        queries = dashboard_queries() + rule_queries()
        metrics = sorted({metric for _, expr in queries for metric in re.findall(r"\b(mesh_[a-z0-9_]+)\b", expr)})

        def missing_series():
            return [metric for metric in metrics if not prom(base, "/api/v1/series", **{"match[]": metric})]

        try:
            wait("series for every metric used", lambda: missing_series() == [], 30)
            absent = []
        except TimeoutError:
            absent = missing_series()
        for metric in absent:
            fail(f"no series of {metric}, which a dashboard or rule uses")
        for where, expr in queries:
            try:
                prom(base, "/api/v1/query", query=expr)
            except (RuntimeError, urllib.error.HTTPError) as error:
                fail(f"{where}: {expr!r} does not evaluate: {error}")
        print(f"prometheus-live: {len(queries)} dashboard and rule queries evaluate; "
              f"{len(metrics) - len(absent)} of the {len(metrics)} metrics they name have series")

        # A worker killed: node_down must fire for it in Prometheus.
        worker = [process for process in mesh["processes"] if process["name"] == "mesh-agent-worker"][-1]
        os.kill(worker["pid"], signal.SIGKILL)
        killed = time.monotonic()
        instance = worker["id"]

        def node_down():
            for alert in prom(base, "/api/v1/alerts")["alerts"]:
                labels = alert["labels"]
                if labels.get("alertname") == "node_down" and labels.get("instance") == instance and alert["state"] == "firing":
                    return alert
            return None

        try:
            wait(f"node_down firing for {instance}", node_down, 90)
            print(f"prometheus-live: node_down fired for {instance} {time.monotonic() - killed:.1f} s after its SIGKILL")
        except TimeoutError as error:
            fail(str(error))
    except Exception as error:  # noqa: BLE001 — reported, then the teardown runs
        fail(f"{type(error).__name__}: {error}")
    finally:
        if prometheus_process:
            prometheus_process.terminate()
            try:
                prometheus_process.wait(10)
            except subprocess.TimeoutExpired:
                prometheus_process.kill()
        subprocess.run([meshctl, "down", "--state-dir", state], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if failures and os.path.exists(os.path.join(state, "prometheus.log")):
            with open(os.path.join(state, "prometheus.log")) as handle:
                sys.stderr.write(handle.read()[-4000:])
        shutil.rmtree(state, ignore_errors=True)
    if failures:
        sys.exit(1)
    print("prometheus-live: OK")


if __name__ == "__main__":
    main()
