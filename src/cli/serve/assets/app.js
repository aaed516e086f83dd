// The nexus-audit dashboard: reads the server's own API and draws inline SVG charts.
// No library, no network beyond this server. Log content is attacker-influenced: it only ever
// reaches the page through textContent, never as HTML.
"use strict";
(() => {

const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

function size(svg) {
  const r = svg.getBoundingClientRect();
  return { w: Math.max(320, Math.round(r.width || 600)), h: Math.max(160, Math.round(r.height || 220)) };
}

function short(s, n) {
  s = String(s);
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

// Vertical bars over time; `errors` drawn over `count` in red.
function timeline(svg, buckets) {
  clear(svg);
  const { w, h } = size(svg);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  if (!buckets.length) {
    svg.appendChild(el("text", { x: 10, y: 20, class: "empty" }, "no records"));
    return;
  }
  const left = 48, bottom = 24, top = 8;
  const max = Math.max(1, ...buckets.map((b) => b.count));
  const step = (w - left - 8) / buckets.length;
  const bw = Math.max(1, step * 0.8);
  const y = (v) => top + (h - top - bottom) * (1 - v / max);
  svg.appendChild(el("line", { x1: left, y1: h - bottom, x2: w - 4, y2: h - bottom, class: "axis" }));
  svg.appendChild(el("text", { x: 4, y: top + 10 }, fmt(max)));
  svg.appendChild(el("text", { x: 4, y: h - bottom }, "0"));
  buckets.forEach((b, i) => {
    const x = left + i * step;
    const bar = el("rect", { x, y: y(b.count), width: bw, height: h - bottom - y(b.count), class: "bar" });
    bar.appendChild(el("title", {}, `${b.key}: ${fmt(b.count)} calls, ${fmt(b.errors)} errors`));
    svg.appendChild(bar);
    if (b.errors > 0) {
      svg.appendChild(el("rect", { x, y: y(b.errors), width: bw, height: h - bottom - y(b.errors), class: "bar err" }));
    }
  });
  const labels = Math.min(6, buckets.length);
  for (let i = 0; i < labels; i++) {
    const idx = Math.floor((i * (buckets.length - 1)) / Math.max(1, labels - 1));
    const key = buckets[idx].key.replace("T", " ").replace(":00:00Z", "h");
    const last = i === labels - 1 && labels > 1;
    svg.appendChild(el("text", { x: last ? w - 4 : left + idx * step, y: h - 6, "text-anchor": last ? "end" : "start" }, key.slice(5)));
  }
}

// Horizontal bars: [[label, value], …].
function hbars(svg, rows, cls) {
  clear(svg);
  const { w } = size(svg);
  const h = Math.max(60, rows.length * 22 + 10);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.style.height = `${h}px`;
  if (!rows.length) {
    svg.appendChild(el("text", { x: 10, y: 20, class: "empty" }, "none"));
    return;
  }
  const labelW = Math.min(220, Math.round(w * 0.38));
  const max = Math.max(1, ...rows.map((r) => r[1]));
  rows.forEach(([label, value], i) => {
    const y = 6 + i * 22;
    const bw = Math.max(1, ((w - labelW - 70) * value) / max);
    svg.appendChild(el("text", { x: labelW - 6, y: y + 13, "text-anchor": "end" }, short(label, 32)));
    const bar = el("rect", { x: labelW, y, width: bw, height: 16, class: `bar ${cls || ""}` });
    bar.appendChild(el("title", {}, `${label}: ${fmt(value)}`));
    svg.appendChild(bar);
    svg.appendChild(el("text", { x: labelW + bw + 6, y: y + 13 }, fmt(value)));
  });
}

function topN(obj, n) {
  return Object.entries(obj || {}).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, n);
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
}

async function get(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `${path}: HTTP ${r.status}`);
  return body;
}

function showProblem(text) {
  const p = $("problem");
  p.hidden = !text;
  p.textContent = text || "";
}

let recordCount = 0;

async function refresh() {
  try {
    const [stats, hours, users, servers] = await Promise.all([
      get("/api/stats"),
      get("/api/audit/aggregations?group_by=hour"),
      get("/api/audit/aggregations?group_by=user"),
      get("/api/audit/aggregations?group_by=server"),
    ]);
    recordCount = stats.total_entries;
    $("record-count").textContent = fmt(stats.total_entries);
    $("error-count").textContent = fmt(stats.error_count);
    $("error-rate").textContent = stats.total_entries
      ? `${((100 * stats.error_count) / stats.total_entries).toFixed(1)} % of records`
      : "";
    const l = stats.latency_ms || {};
    $("latency").textContent = `${fmt(l.p50)} / ${fmt(l.p95)} / ${fmt(l.p99)}`;
    $("last-record").textContent = stats.last_timestamp || "–";
    $("first-record").textContent = stats.first_timestamp ? `since ${stats.first_timestamp}` : "";
    timeline($("chart-timeline"), hours.groups.slice(-72));
    hbars($("chart-errors"), topN(stats.errors_by_tool, 10), "err");
    hbars($("chart-latency"), ["min", "p50", "p90", "p95", "p99", "max"]
      .filter((k) => l[k] !== null && l[k] !== undefined).map((k) => [k, l[k]]), "p");
    hbars($("chart-users"), users.groups.slice(0, 10).map((g) => [g.key, g.count]));
    hbars($("chart-servers"), servers.groups.slice(0, 10).map((g) => [g.key, g.count]));
    const body = $("recent-errors").tBodies[0];
    body.replaceChildren();
    for (const e of (stats.recent_errors || []).slice().reverse()) {
      const row = document.createElement("tr");
      cell(row, e.timestamp);
      cell(row, e.tool);
      cell(row, e.error_type, "err");
      cell(row, e.error_message, "msg");
      body.appendChild(row);
    }
    showProblem("");
  } catch (err) {
    showProblem(String(err.message || err));
  }
  await badge();
  document.body.dataset.ready = "1";
}

async function badge() {
  const b = $("chain-badge");
  try {
    const v = await get("/api/verify");
    $("log-file").textContent = v.file;
    b.className = `badge ${v.ok ? "ok" : "bad"}`;
    b.textContent = v.ok
      ? `chain intact · ${fmt(v.records)} records`
      : `chain BROKEN · ${fmt(v.problems_total)} problem${v.problems_total === 1 ? "" : "s"}`;
    b.title = v.ok ? `head ${v.head_hash || ""}` : (v.problems[0] || {}).message || "";
  } catch (err) {
    b.className = "badge pending";
    b.textContent = "chain unknown";
    b.title = String(err.message || err);
  }
}

let pending = null;
function soon() {
  if (pending) return;
  pending = setTimeout(() => { pending = null; refresh(); }, 2000);
}

function live() {
  const source = new EventSource("/api/audit/stream");
  source.onopen = () => { $("live").className = "live on"; };
  source.onerror = () => { $("live").className = "live off"; };
  source.onmessage = (msg) => {
    let r;
    try { r = JSON.parse(msg.data); } catch { return; }
    recordCount += 1;
    $("record-count").textContent = fmt(recordCount);
    const body = $("live-feed").tBodies[0];
    const row = document.createElement("tr");
    const error = r.status && r.status !== "success";
    cell(row, r.timestamp);
    cell(row, r.user_id);
    cell(row, r.tool || r.action);
    cell(row, r.status, error ? "err" : "ok");
    cell(row, r.latency_ms === undefined ? "" : `${r.latency_ms} ms`);
    body.insertBefore(row, body.firstChild);
    while (body.rows.length > 20) body.deleteRow(body.rows.length - 1);
    soon();
  };
}

// NOTE: going live a moment after the first drawing keeps a headless browser's virtual-time budget
// (which waits for every open request) from waiting on the never-ending stream.
refresh().then(() => setTimeout(live, 1500));
})();
