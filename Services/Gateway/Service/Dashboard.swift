/// The live dashboard served at `/`: one static page (HTML, CSS and JavaScript inline, no
/// external resource) that calls the API with the key typed in (kept in the tab's
/// `sessionStorage`, or handed over as `/#key=…`): nodes, agents with a label-selector
/// search and their timeline, the live event stream, this gateway's request rate and
/// latency percentiles sampled from `/metrics`, and the cluster's throughput, latency,
/// processes and alerts from the metrics collector (`/api/v1/metrics/summary`, `/api/v1/alerts`).
enum Dashboard {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Agent mesh</title>
<style>
  :root { --bg:#0f1419; --panel:#182029; --text:#d8dee6; --muted:#8a96a3; --ok:#3fb950; --bad:#f85149; --warn:#d29922; --accent:#58a6ff; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--text); }
  header { display:flex; gap:1rem; align-items:center; padding:.6rem 1rem; background:var(--panel); border-bottom:1px solid #263040; }
  header h1 { font-size:1.1rem; margin:0; }
  header .spacer { flex:1; }
  input, button { font:inherit; background:#0b0f14; color:var(--text); border:1px solid #2d3a4a; border-radius:4px; padding:.25rem .5rem; }
  button { cursor:pointer; }
  main { display:grid; grid-template-columns: 1fr 1fr; gap:1rem; padding:1rem; }
  section { background:var(--panel); border:1px solid #263040; border-radius:6px; padding:.75rem; min-width:0; }
  section h2 { font-size:1rem; margin:0 0 .5rem; display:flex; gap:.5rem; align-items:center; }
  table { width:100%; border-collapse:collapse; font-size:13px; }
  th, td { text-align:left; padding:.2rem .4rem; border-bottom:1px solid #222c38; white-space:nowrap; overflow:hidden; text-overflow:ellipsis; max-width:16rem; }
  th { color:var(--muted); font-weight:normal; }
  tr.clickable:hover { background:#1f2a36; cursor:pointer; }
  .ok { color:var(--ok); } .bad { color:var(--bad); } .warn { color:var(--warn); } .muted { color:var(--muted); }
  #events { height:16rem; overflow:auto; font:12px/1.35 ui-monospace, monospace; }
  #timeline { max-height:14rem; overflow:auto; }
  canvas { width:100%; height:120px; background:#0b0f14; border-radius:4px; }
  .wide { grid-column: 1 / -1; }
  #status { font-size:12px; }
</style>
</head>
<body>
<header>
  <h1>Agent mesh</h1>
  <span id="status" class="muted">not connected</span>
  <span class="spacer"></span>
  <label>API key <input id="key" type="password" size="30" autocomplete="off" placeholder="mesh_…"></label>
  <button id="connect">Connect</button>
</header>
<main>
  <section>
    <h2>Nodes</h2>
    <table><thead><tr><th>node</th><th>alive</th><th>draining</th><th>shards</th><th>agents</th><th>capacity</th><th>load</th></tr></thead>
    <tbody id="nodes"></tbody></table>
  </section>
  <section>
    <h2>Gateway throughput and latency <span class="muted" id="rate"></span></h2>
    <canvas id="chart" width="600" height="120"></canvas>
    <div class="muted">requests/s (blue) and p50 / p99 latency in ms (green / orange) over the last 5 minutes, from this gateway's /metrics</div>
  </section>
  <section>
    <h2>Cluster <span class="muted" id="cluster-summary"></span></h2>
    <canvas id="cluster-chart" width="600" height="80"></canvas>
    <div class="muted">actions/s over the last 5 minutes, from the metrics collector</div>
    <table><thead><tr><th>service</th><th>instance</th><th>up</th><th>cpu %</th><th>rss MiB</th><th>mem %</th><th>restarts</th></tr></thead>
    <tbody id="processes"></tbody></table>
  </section>
  <section>
    <h2>Alerts</h2>
    <table><thead><tr><th>rule</th><th>state</th><th>severity</th><th>about</th><th>value</th><th>since</th></tr></thead>
    <tbody id="alerts"></tbody></table>
  </section>
  <section>
    <h2>Agents <input id="selector" placeholder="label selector, e.g. team=search" size="28"> <button id="search">Search</button></h2>
    <table><thead><tr><th>id</th><th>kind</th><th>status</th><th>node</th><th>shard</th><th>restarts</th><th>revision</th></tr></thead>
    <tbody id="agents"></tbody></table>
    <div id="more" class="muted"></div>
  </section>
  <section>
    <h2>Timeline <span id="timeline-agent" class="muted">(click an agent)</span></h2>
    <div id="timeline"><table><tbody id="timeline-rows"></tbody></table></div>
  </section>
  <section class="wide">
    <h2>Live events</h2>
    <div id="events"></div>
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let key = sessionStorage.getItem("mesh-key") || "";
if (location.hash.startsWith("#key=")) {
  // A key handed over in the fragment (never sent to the server) is kept for this tab only.
  key = decodeURIComponent(location.hash.slice(5)); sessionStorage.setItem("mesh-key", key);
  history.replaceState(null, "", location.pathname);
}
$("key").value = key;
let stream = null;
const samples = [];

function text(value) { return value === undefined || value === null ? "" : String(value); }
function cell(row, value, cls) { const td = row.insertCell(); td.textContent = text(value); if (cls) td.className = cls; return td; }
function setStatus(message, cls) { $("status").textContent = message; $("status").className = cls || "muted"; }

async function api(path) {
  const response = await fetch(path, { headers: { "Authorization": "Bearer " + key } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) { throw new Error((body.error && (body.error.code + ": " + body.error.message)) || ("HTTP " + response.status)); }
  return body;
}

async function loadNodes() {
  const body = await api("/api/v1/nodes");
  const tbody = $("nodes"); tbody.replaceChildren();
  for (const node of body.items) {
    const row = tbody.insertRow();
    cell(row, node.node);
    cell(row, node.alive ? "yes" : "no", node.alive ? "ok" : "bad");
    cell(row, node.draining ? "yes" : "no", node.draining ? "warn" : "");
    cell(row, node.shards); cell(row, node.agents); cell(row, node.capacity); cell(row, Number(node.load || 0).toFixed(2));
  }
}

async function loadAgents() {
  const selector = encodeURIComponent($("selector").value.trim());
  const body = await api("/api/v1/agents?limit=200&selector=" + selector);
  const tbody = $("agents"); tbody.replaceChildren();
  for (const agent of body.items) {
    const row = tbody.insertRow(); row.className = "clickable";
    row.dataset.id = agent.id;
    cell(row, agent.id); cell(row, agent.kind);
    cell(row, agent.status, agent.status === "running" ? "ok" : (agent.status === "failed" ? "bad" : "warn"));
    cell(row, agent.node); cell(row, agent.shard); cell(row, agent.restart_count); cell(row, agent.revision);
    row.addEventListener("click", () => loadTimeline(agent.id));
  }
  $("more").textContent = body.next_cursor ? "showing the first 200; refine the selector" : body.items.length + " agents";
}

async function loadTimeline(id) {
  $("timeline-agent").textContent = id;
  const body = await api("/api/v1/agents/" + encodeURIComponent(id) + "/events?limit=200");
  const tbody = $("timeline-rows"); tbody.replaceChildren();
  for (const event of body.items) {
    const row = tbody.insertRow();
    cell(row, event.occurred_at, "muted"); cell(row, event.type); cell(row, event.node); cell(row, event.reason);
  }
}

function addEvent(frame) {
  const box = $("events");
  const line = document.createElement("div");
  line.textContent = frame;
  box.prepend(line);
  while (box.childElementCount > 200) box.lastChild.remove();
}

async function followEvents() {
  if (stream) stream.abort();
  stream = new AbortController();
  const response = await fetch("/api/v1/events", { headers: { "Authorization": "Bearer " + key }, signal: stream.signal });
  if (!response.ok || !response.body) { addEvent("event stream: HTTP " + response.status); return; }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end); buffer = buffer.slice(end + 2);
      let name = "", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        if (line.startsWith("data: ")) data = line.slice(6);
      }
      if (!name) continue;
      try {
        const event = JSON.parse(data);
        addEvent(event.occurred_at + "  " + name + "  " + text(event.agent || event.node) + "  " + text(event.reason));
        if (event.agent) loadAgents().catch(() => {});
      } catch (error) { addEvent(name + " " + data); }
    }
  }
}

function parseMetrics(body) {
  let total = 0; const buckets = new Map(); let count = 0;
  for (const line of body.split("\n")) {
    if (line.startsWith("mesh_gateway_requests_total")) total += Number(line.split(" ").pop()) || 0;
    if (line.startsWith("mesh_gateway_request_duration_seconds_bucket")) {
      const le = /le="([^"]+)"/.exec(line); if (!le) continue;
      const bound = le[1] === "+Inf" ? Infinity : Number(le[1]);
      buckets.set(bound, (buckets.get(bound) || 0) + (Number(line.split(" ").pop()) || 0));
    }
    if (line.startsWith("mesh_gateway_request_duration_seconds_count")) count += Number(line.split(" ").pop()) || 0;
  }
  return { time: Date.now(), total, count, buckets };
}

function quantile(previous, current, q) {
  const bounds = [...current.buckets.keys()].sort((a, b) => a - b);
  const n = current.count - previous.count; if (n <= 0) return 0;
  for (const bound of bounds) {
    const delta = (current.buckets.get(bound) || 0) - (previous.buckets.get(bound) || 0);
    if (delta >= q * n) return bound === Infinity ? NaN : bound * 1000;
  }
  return NaN;
}

async function sampleMetrics() {
  const response = await fetch("/metrics");
  const sample = parseMetrics(await response.text());
  const previous = samples.length ? samples[samples.length - 1].raw : null;
  if (previous) {
    const seconds = (sample.time - previous.time) / 1000;
    samples.push({ raw: sample, rate: (sample.total - previous.total) / seconds, p50: quantile(previous, sample, 0.5), p99: quantile(previous, sample, 0.99) });
  } else {
    samples.push({ raw: sample, rate: 0, p50: 0, p99: 0 });
  }
  while (samples.length > 150) samples.shift();
  const last = samples[samples.length - 1];
  $("rate").textContent = last.rate.toFixed(1) + " req/s, p50 " + (last.p50 || 0).toFixed(2) + " ms, p99 " + (last.p99 || 0).toFixed(2) + " ms";
  draw();
}

function draw() {
  const canvas = $("chart"); const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const series = [["rate", "#58a6ff"], ["p50", "#3fb950"], ["p99", "#d29922"]];
  for (const [name, colour] of series) {
    const values = samples.map((s) => Number.isFinite(s[name]) ? s[name] : 0);
    const max = Math.max(1, ...values);
    g.strokeStyle = colour; g.beginPath();
    values.forEach((v, i) => {
      const x = (i / 149) * canvas.width; const y = canvas.height - 4 - (v / max) * (canvas.height - 8);
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
  }
}

async function loadCluster() {
  const [summary, alerts] = await Promise.all([api("/api/v1/metrics/summary?minutes=5"), api("/api/v1/alerts?include_resolved=true")]);
  const latency = summary.action_latency_ns;
  $("cluster-summary").textContent = summary.actions_per_second.toFixed(1) + " actions/s, errors " + (summary.action_error_rate * 100).toFixed(1)
    + " %, p50 " + (latency.p50 / 1e6).toFixed(2) + " ms, p99 " + (latency.p99 / 1e6).toFixed(2) + " ms, "
    + summary.tasks_per_second.toFixed(1) + " tasks/s, " + summary.firing_alerts + " firing";
  const processes = $("processes"); processes.replaceChildren();
  for (const p of summary.processes) {
    const row = processes.insertRow();
    cell(row, p.service); cell(row, p.instance); cell(row, p.up ? "yes" : "no", p.up ? "ok" : "bad");
    cell(row, p.cpu_percent.toFixed(1)); cell(row, (p.resident_bytes / 1048576).toFixed(1)); cell(row, p.memory_percent.toFixed(1)); cell(row, p.restarts);
  }
  const rows = $("alerts"); rows.replaceChildren();
  for (const a of alerts.items) {
    const row = rows.insertRow();
    cell(row, a.rule); cell(row, a.state, a.state === "firing" ? "bad" : a.state === "pending" ? "warn" : "muted"); cell(row, a.severity);
    cell(row, Object.entries(a.labels).map(([k, v]) => k + "=" + v).join(" ")); cell(row, Number(a.value).toPrecision(4));
    cell(row, a.fired_at || a.active_since);
  }
  const canvas = $("cluster-chart"); const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const values = summary.action_rate.map((p) => p.value);
  const max = Math.max(1, ...values);
  g.strokeStyle = "#58a6ff"; g.beginPath();
  values.forEach((v, i) => {
    const x = (i / Math.max(1, values.length - 1)) * canvas.width; const y = canvas.height - 4 - (v / max) * (canvas.height - 8);
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.stroke();
}

async function refresh() {
  loadCluster().catch((error) => { $("cluster-summary").textContent = error.message; });
  try { await Promise.all([loadNodes(), loadAgents()]); setStatus("connected", "ok"); }
  catch (error) { setStatus(error.message, "bad"); }
}

$("connect").addEventListener("click", () => {
  key = $("key").value.trim(); sessionStorage.setItem("mesh-key", key);
  refresh(); followEvents().catch((error) => addEvent("event stream ended: " + error.message));
});
$("search").addEventListener("click", () => loadAgents().catch((error) => setStatus(error.message, "bad")));
setInterval(() => { if (key) loadNodes().catch(() => {}); }, 2000);
setInterval(() => { if (key) loadCluster().catch((error) => { $("cluster-summary").textContent = error.message; }); }, 5000);
setInterval(() => sampleMetrics().catch(() => {}), 2000);
sampleMetrics().catch(() => {});
if (key) { refresh(); followEvents().catch(() => {}); }
</script>
</body>
</html>
"""#
}
