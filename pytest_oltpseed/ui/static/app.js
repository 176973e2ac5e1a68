// oltpseed ui: renders the server's state (server-sent events) and posts
// actions. No logic lives here: every number comes from the server.
"use strict";

const $ = (id) => document.getElementById(id);
const COLORS = ["#2b6cb0", "#c05621", "#2f855a", "#9b2c2c", "#6b46c1", "#b7791f",
  "#319795", "#d53f8c", "#4a5568", "#718096", "#38a169", "#dd6b20"];
let state = null;

function fmt(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("en"); }

function showError(message) {
  const el = $("error");
  el.textContent = message || "";
  el.hidden = !message;
}

async function post(path, body) {
  showError("");
  try {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    const data = await response.json().catch(() => ({ error: response.statusText }));
    if (!response.ok) showError(data.error || `${path}: ${response.status}`);
    return data;
  } catch (e) {
    showError(`the server did not answer (${e.message})`);
    return null;
  }
}

function formData(form) {
  const data = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    data[el.name] = el.type === "checkbox" ? el.checked : el.value;
  }
  return data;
}

function seedBody() {
  const body = formData($("seed-form"));
  const custom = {};
  for (const el of $("custom-fields").querySelectorAll("input")) custom[el.dataset.table] = el.value;
  body.custom = custom;
  return body;
}

function rows(table, items, cells, bad) {
  const tbody = $(table).querySelector("tbody");
  tbody.replaceChildren();
  for (const item of items) {
    const tr = document.createElement("tr");
    if (bad && bad(item)) tr.className = "bad";
    for (const value of cells(item)) {
      const td = document.createElement("td");
      td.textContent = value;
      if (/^[-–\d,.]*$/.test(String(value))) td.className = "num";
      tr.append(td);
    }
    tbody.append(tr);
  }
  $(table).hidden = items.length === 0;
}

// -- charts: plain SVG polylines --------------------------------------------
function chart(id, series, unit) {
  const svg = $(id);
  const W = 400, H = 140, L = 44, B = 16, T = 6;
  let max = 0, tmax = 1, tmin = 0;
  for (const s of series) for (const [t, v] of s.points) {
    if (v > max) max = v;
    if (t > tmax) tmax = t;
  }
  if (series.length && series[0].points.length) tmin = series[0].points[0][0];
  max = max || 1;
  const x = (t) => L + ((t - tmin) / Math.max(tmax - tmin, 1e-9)) * (W - L - 4);
  const y = (v) => H - B - (v / max) * (H - B - T);
  let html = `<line x1="${L}" y1="${H - B}" x2="${W}" y2="${H - B}" stroke="#99a"/>`;
  html += `<text x="${L - 3}" y="${T + 8}" text-anchor="end">${fmt(Math.round(max))}</text>`;
  html += `<text x="${L - 3}" y="${H - B}" text-anchor="end">0</text>`;
  html += `<text x="${W - 4}" y="${H - 3}" text-anchor="end">${tmax.toFixed(0)} s</text>`;
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const pts = s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    const color = COLORS[i % COLORS.length];
    html += `<polyline class="series" data-name="${s.name}" fill="none" stroke="${color}"
      stroke-width="1.5" points="${pts}"/>`;
    html += `<text class="legend" x="${L + 4 + (i % 4) * 88}" y="${T + 10 + Math.floor(i / 4) * 11}"
      fill="${color}">${s.name}</text>`;
  });
  svg.innerHTML = html;
  svg.setAttribute("data-points", series.reduce((n, s) => n + s.points.length, 0));
  svg.setAttribute("aria-label", `${svg.getAttribute("aria-label").split(":")[0]}: ${
    series.map((s) => `${s.name} ${fmt(s.points.length ? s.points[s.points.length - 1][1] : 0)}${unit || ""}`).join(", ")}`);
}

// one row's inserts/updates/deletes as a stacked bar, scaled to the widest row
function bar(values, widest) {
  let x = 0, html = "";
  values.forEach((v, i) => {
    const w = (v / widest) * 200;
    html += `<rect x="${x.toFixed(1)}" y="2" width="${w.toFixed(1)}" height="10" fill="${COLORS[i]}"/>`;
    x += w;
  });
  return `<svg class="bar" viewBox="0 0 200 14" role="img" aria-label="${values.join(" / ")}">${html}</svg>`;
}

function renderStream(s) {
  const samples = s.samples || [];
  chart("chart-rate", [{ name: "events/s", points: samples.map((p) => [p.t, p.events_per_s]) }]);
  chart("chart-latency", ["p50", "p95", "p99"].map((k) => ({
    name: k, points: samples.map((p) => [p.t, p.latency[k] || 0]) })), " ms");
  chart("chart-lag", ["p50", "p95", "p99"].map((k) => ({
    name: k, points: samples.map((p) => [p.t, p.lag[k] || 0]) })), " ms");
  chart("chart-tables", ["insert", "update", "delete"].map((op) => ({
    name: op + "s", points: samples.map((p) => [p.t, p.ops[op]]) })));
  chart("chart-wal", [{ name: "retained WAL", points: samples
    .filter((p) => p.wal_bytes !== null).map((p) => [p.t, p.wal_bytes]) }], " B");

  const ledger = s.ledger;
  let status = s.status + (s.paused ? " (paused)" : "");
  if (ledger) {
    status += ` · ${fmt(ledger.events.committed)} events committed · ` +
      `${fmt(ledger.events_per_s)} events/s · run ${ledger.run_id}`;
  }
  if (s.error) status += ` · ${s.error}`;
  $("stream-status").textContent = status;
  if (ledger) {
    const tables = Object.entries(ledger.tables).filter(([, o]) => o.insert + o.update + o.delete > 0);
    const widest = Math.max(1, ...tables.map(([, o]) => o.insert + o.update + o.delete));
    rows("ledger-table", tables, ([t, o]) => [t, fmt(o.insert), fmt(o.update), fmt(o.delete)]);
    $("ledger-table").querySelectorAll("tbody tr").forEach((tr, i) => {
      const o = tables[i][1];
      const td = document.createElement("td");
      td.innerHTML = bar([o.insert, o.update, o.delete], widest);
      tr.append(td);
    });
    const lat = ledger.latency_ms, lag = ledger.lag_ms;
    $("ledger-line").textContent = `skipped ${fmt(ledger.events.skipped)}, reconnects ` +
      `${ledger.reconnects}, lost batches ${ledger.lost.batches}, latency p50/p95/p99 ` +
      `${lat.p50}/${lat.p95}/${lat.p99} ms, lag p50/p95/p99 ${lag.p50}/${lag.p95}/${lag.p99} ms`;
  } else {
    $("ledger-table").hidden = true;
    $("ledger-line").textContent = "";
  }
  $("report-link").hidden = !ledger;
  $("changes-link").hidden = !ledger;
  $("stream-summary").textContent = s.summary || "";
  $("stream-summary").hidden = !s.summary;
  const v = s.verdict;
  if (v) {
    $("verdict-caption").textContent = `CDC verify: run ${v.run_id}: ` +
      (v.ok ? "every committed change captured once" : "DIFFERENCES") +
      ` (batches ${v.batches.reported} reported, ${v.batches.captured} captured)` +
      (v.keys ? `; key by key: ${fmt(v.keys.expected)} changes expected, ` +
        `${fmt(v.keys.received)} received, ${v.keys.ok ? "each once" : "DIFFERENCES"}`
        : "");
    rows("verdict-table", v.tables, (l) => [l.table, l.op, fmt(l.reported), fmt(l.captured),
      fmt(l.extra)], (l) => !l.ok);
    $("verdict-table").hidden = false;
    $("verdict-table").dataset.ok = v.ok;
  } else {
    $("verdict-table").hidden = true;
  }
  $("wal-line").textContent = s.wal_bytes === null || s.wal_bytes === undefined ? "" :
    `slot oltpseed_ui retains ${fmt(s.wal_bytes)} bytes of WAL`;
}

function renderSeed(state) {
  const seed = state.seed;
  const plan = seed.plan || [];
  const stages = seed.stages || {};
  rows("plan-table", plan, (r) => {
    const done = stages[r.table];
    const progress = done === undefined ? "" : done >= r.rows ? "done" :
      (seed.status === "running" ? "…" : "not done");
    return [plan.indexOf(r) + 1, r.table, fmt(r.rows), r.batch, r.mode, r.items.join(", "), progress];
  });
  let status = seed.status === "idle" ? "" : `seed: ${seed.status}`;
  if (seed.seconds !== undefined) status += ` in ${seed.seconds}s`;
  if (seed.error) status += ` · ${seed.error}`;
  if (seed.warnings && seed.warnings.length) status += ` · ${seed.warnings.join("; ")}`;
  $("seed-status").textContent = status;
  const counts = Object.entries(state.counts || {});
  rows("counts-table", counts, ([t, n]) => [t, n === null ? "not installed" : fmt(n)]);
  const check = state.check;
  if (check) {
    $("check-caption").textContent = check.problem ? `Check: ${check.problem}` :
      check.ok ? `Check: all ${check.rules.length} rules hold` :
      `Check: ${check.rules.filter((r) => !r.ok).length} of ${check.rules.length} rules violated`;
    rows("check-table", check.rules, (r) => [r.rule, r.checked ? r.violations : "–",
      r.example || "", r.note], (r) => !r.ok);
    $("check-table").hidden = false;
    $("check-table").dataset.ok = check.ok;
  }
}

// a page opened while work runs shows the options that work was started with
function fillForm(form, values) {
  for (const el of form.elements) {
    if (!el.name || !(el.name in values) || values[el.name] === null) continue;
    if (el.type === "checkbox") el.checked = Boolean(values[el.name]);
    else el.value = values[el.name];
  }
}

function render(next) {
  const first = state === null;
  state = next;
  if (first && state.stream.form) fillForm($("stream-form"), state.stream.form);
  if (first && state.seed.form) fillForm($("seed-form"), state.seed.form);
  $("target").textContent = state.target + (state.embedded ? " (embedded server)" : "");
  $("app-env").textContent = state.app_env + (state.forced ? " (forced)" : "");
  const guard = $("guard");
  guard.textContent = state.guard ? `Writing is disabled: ${state.guard}` : "";
  guard.hidden = !state.guard;
  const running = state.stream.status === "running" || state.stream.status === "starting";
  const verifying = state.stream.status === "verifying";
  for (const el of document.querySelectorAll("[data-write]")) {
    el.disabled = Boolean(state.guard);
    el.title = state.guard || "";
  }
  if (!state.guard) {
    $("seed-button").disabled = state.seed.status === "running" || running || verifying;
    $("start-button").disabled = running || verifying || state.seed.status === "running";
    $("stop-button").disabled = !running;
    $("pause-button").disabled = !running || state.stream.paused;
    $("resume-button").disabled = !running || !state.stream.paused;
  }
  if (state.error) showError(state.error);
  renderSeed(state);
  renderStream(state.stream);
  const pre = state.preflight || [];
  rows("preflight-table", pre, (c) => [c.name, c.ok === true ? "ok" : c.ok === false ? "MISSING" : "note",
    c.detail, c.fix], (c) => c.ok === false);
  if (!$("custom-fields").children.length && state.custom) customFields(state.custom);
}

function customFields(volumes) {
  const box = $("custom-fields");
  for (const [domain, counts] of Object.entries(volumes)) {
    for (const [t, medium] of Object.entries(counts)) {
      const label = document.createElement("label");
      label.textContent = `${domain}: ${t} `;
      const input = document.createElement("input");
      Object.assign(input, { type: "number", min: "0", name: "", placeholder: medium });
      input.dataset.table = t;
      label.append(input);
      box.append(label);
    }
  }
}

function connect() {
  const source = new EventSource("api/events");
  source.onmessage = (e) => { $("live").textContent = "live"; render(JSON.parse(e.data)); };
  source.onerror = () => { $("live").textContent = "reconnecting…"; };
}

$("seed-profile").addEventListener("change", (e) => { $("custom").hidden = e.target.value !== "CUSTOM"; });
$("plan-button").addEventListener("click", () => post("api/plan", seedBody()));
$("seed-button").addEventListener("click", () => post("api/seed", seedBody()));
$("counts-button").addEventListener("click", () => post("api/counts", { domain: $("seed-domain").value }));
$("check-button").addEventListener("click", () => post("api/check", { domain: $("seed-domain").value }));
$("start-button").addEventListener("click", () => post("api/stream/start", formData($("stream-form"))));
$("stop-button").addEventListener("click", () => post("api/stream/stop"));
$("pause-button").addEventListener("click", () => post("api/stream/pause"));
$("resume-button").addEventListener("click", () => post("api/stream/resume"));
$("preflight-button").addEventListener("click", () => post("api/preflight", { domain: $("stream-domain").value }));
connect();
