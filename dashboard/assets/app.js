// The shoal dashboard: renders the frames the manager streams at /events.
// Plain DOM and SVG, nothing loaded from elsewhere.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const WINDOW_MS = 10 * 60 * 1000; // the timeline and charts show at most the last ten minutes
let firstSeen = Date.now();

// windowStart is where the timeline and the charts begin: ten minutes ago,
// or when this manager's history begins if that is later.
function windowStart(now) {
  return Math.max(now - WINDOW_MS, Math.min(firstSeen, now - 30 * 1000));
}
const SERIES = ["writes", "reads", "failures", "fsync_ms", "apply_ms"];
const COLORS = ["#2563eb", "#0f7b3f", "#b45309", "#7c3aed", "#db2777", "#0891b2", "#65a30d"];

let points = [];

function el(tag, attrs, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    // Style attributes are refused by the page's Content-Security-Policy;
    // the CSS object model is not.
    if (k === "style") e.style.cssText = v; else e.setAttribute(k, v);
  }
  if (text !== undefined) e.textContent = text;
  return e;
}

function td(text, cls) { return el("td", cls ? { class: cls } : {}, String(text)); }

function ago(ms) {
  if (ms < 0) return "never";
  if (ms < 1000) return ms + " ms";
  return (ms / 1000).toFixed(1) + " s";
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + units[i];
}

function renderDoctor(f) {
  const d = document.getElementById("doctor");
  d.dataset.status = f.doctor.status;
  d.textContent = f.doctor.summary;
  const ul = document.getElementById("problems");
  ul.replaceChildren();
  for (const p of f.doctor.problems || []) ul.append(el("li", {}, p));
  for (const w of f.doctor.warnings || []) ul.append(el("li", { class: "warning" }, w));
  if (f.doctor.recovery) ul.append(el("li", {}, "What to do: " + f.doctor.recovery));
}

function renderMembers(f) {
  document.getElementById("self").textContent = f.self.node_id;
  document.getElementById("self-addr").textContent = f.self.addr;
  const leader = f.members.find(m => m.leader);
  document.getElementById("leader").textContent = leader ? leader.node_id : "none";
  document.getElementById("term").textContent = Math.max(0, ...f.members.map(m => m.term));
  const maxLag = Math.max(1, ...f.members.map(m => m.lag));
  const body = document.querySelector("#members tbody");
  body.replaceChildren();
  for (const m of f.members) {
    const tr = el("tr", { "data-node-id": m.node_id, "data-role": m.leader ? "leader" : "follower", "data-self": m.self });
    const role = (m.leader ? "leader" : (m.state || "follower")) + ", " + m.suffrage;
    const lag = el("td", { class: "num" });
    const bar = el("span", { class: "lag", title: m.lag + " entries behind the leader" });
    bar.append(el("span", { style: "width:" + Math.round(100 * m.lag / maxLag) + "%" }));
    lag.append(bar, document.createTextNode(m.error ? "?" : String(m.lag)));
    tr.append(td(m.node_id), td(m.raft_id), td(m.addr), td(role),
      td(m.reachable ? "yes" : "no", m.reachable ? "" : "no"), td(ago(m.last_contact_ms), "num"),
      td(m.error ? "?" : m.term, "num"), td(m.error ? "?" : m.commit, "num"), td(m.error ? "?" : m.applied, "num"), lag);
    if (m.error) tr.title = m.error;
    body.append(tr);
  }
}

function renderTimeline(f) {
  const svg = document.getElementById("timeline");
  svg.replaceChildren();
  const now = Date.parse(f.at), start = windowStart(now), span = now - start;
  const x = t => Math.max(0, (t - start) / span * 600);
  const color = {};
  let next = 0;
  const legend = document.getElementById("timeline-legend");
  legend.replaceChildren();
  const changes = f.leaders || [];
  changes.forEach((c, i) => {
    const from = Date.parse(c.at), to = i + 1 < changes.length ? Date.parse(changes[i + 1].at) : now;
    if (to < start) return;
    if (c.leader && !(c.leader in color)) {
      color[c.leader] = COLORS[next++ % COLORS.length];
      const s = el("span");
      s.append(el("i", { style: "background:" + color[c.leader] }), document.createTextNode(c.leader));
      legend.append(s);
    }
    const r = el("svg:rect", { x: x(from), y: 6, width: Math.max(1, x(to) - x(from)), height: 26,
      fill: c.leader ? color[c.leader] : "#e5e7eb" });
    r.append(el("svg:title", {}, (c.leader || "no leader") + ", term " + c.term + ", from " + new Date(from).toLocaleTimeString()));
    svg.append(r);
    if (i > 0 && from >= start) svg.append(el("svg:line", { x1: x(from), x2: x(from), y1: 0, y2: 44, stroke: "#b91c1c", "stroke-width": 1.5 }));
  });
  const s = el("span");
  s.textContent = "red lines: elections; since " + new Date(start).toLocaleTimeString();
  legend.append(s);
}

function renderCharts(now) {
  const start = windowStart(now), span = now - start;
  const shown = points.filter(p => Date.parse(p.at) >= start);
  for (const name of SERIES) {
    const svg = document.getElementById("chart-" + name);
    svg.replaceChildren();
    const top = Math.max(1e-9, ...shown.map(p => p[name]));
    const coords = shown.map(p => ((Date.parse(p.at) - start) / span * 300).toFixed(1) + "," + (78 - p[name] / top * 72).toFixed(1));
    if (coords.length) svg.append(el("svg:polyline", { points: coords.join(" "), fill: "none", stroke: "#2563eb", "stroke-width": 1.5 }));
    svg.append(el("svg:text", { x: 2, y: 10, "font-size": 9, fill: "#6b7280" }, "max " + top.toFixed(name.endsWith("_ms") ? 2 : 0)));
    const last = shown[shown.length - 1];
    document.getElementById("now-" + name).textContent = last ? last[name].toFixed(name.endsWith("_ms") ? 2 : 1) : "–";
  }
}

function renderStore(f) {
  document.getElementById("store-version").textContent = f.store_version;
  const body = document.querySelector("#objects tbody");
  body.replaceChildren();
  for (const kind of Object.keys(f.objects || {}).sort()) {
    const tr = el("tr", { "data-kind": kind });
    tr.append(td(kind), td(f.objects[kind], "num count"));
    body.append(tr);
  }
  const snaps = document.querySelector("#snapshots tbody");
  snaps.replaceChildren();
  for (const s of (f.snapshots || []).slice(-8).reverse()) {
    const tr = el("tr");
    tr.append(td(new Date(Date.parse(s.at)).toLocaleTimeString()), td(bytes(s.bytes), "num"), td(s.duration_ms.toFixed(1) + " ms", "num"));
    snaps.append(tr);
  }
  if (!snaps.children.length) {
    const tr = el("tr");
    tr.append(el("td", { colspan: 3 }, "none taken since this manager started"));
    snaps.append(tr);
  }
}

function connect() {
  const status = document.getElementById("connection");
  const es = new EventSource("events");
  es.addEventListener("open", () => { status.textContent = "live"; });
  es.addEventListener("error", () => { status.textContent = "disconnected, retrying"; });
  es.addEventListener("history", e => { points = JSON.parse(e.data) || []; });
  es.addEventListener("frame", e => {
    const f = JSON.parse(e.data);
    if (f.point) points.push(f.point);
    const times = points.map(p => Date.parse(p.at)).concat((f.leaders || []).map(l => Date.parse(l.at)));
    if (times.length) firstSeen = Math.min(...times);
    const now = Date.parse(f.at);
    points = points.filter(p => Date.parse(p.at) >= now - WINDOW_MS);
    renderDoctor(f);
    renderMembers(f);
    renderTimeline(f);
    renderCharts(now);
    renderStore(f);
    document.body.dataset.frameAt = f.at;
  });
}

connect();
