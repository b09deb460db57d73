// Live view: zone gauges, day curves, lanes, alerts and the audit log, kept current by the
// server-sent event stream (/api/stream). Safety officers also get the actions.
"use strict";
const TZ = document.body.dataset.tz || undefined;
const zones = new Map();   // id -> {card, chart, points}
const gates = new Map();   // id -> row
let chartDirty = new Set();
let seriesDay = null;  // the event day the curves show (null: whatever arrives)
const dayFmt = new Intl.DateTimeFormat("en-CA", { timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit" });

function levelLabel(level) { return t("state_" + level); }

function zoneCard(z) {
  let entry = zones.get(z.id);
  if (entry) return entry;
  const tpl = document.getElementById("zone-template");
  const card = tpl.content.firstElementChild.cloneNode(true);
  card.id = "zone-" + z.id;
  card.dataset.zone = z.id;
  card.querySelector(".name").textContent = z.name;
  if (ROLE !== "safety") { const a = card.querySelector(".zone-actions"); if (a) a.remove(); }
  else wireZoneActions(card, z.id);
  document.getElementById("zones").append(card);
  entry = { card, chart: null, points: [] };
  zones.set(z.id, entry);
  if (window.Chart) entry.chart = makeChart(card.querySelector("canvas"), z);
  return entry;
}

function makeChart(canvas, z) {
  return new Chart(canvas, {
    type: "line",
    data: { datasets: [
      { data: [], borderColor: "#1f6feb", borderWidth: 2, pointRadius: 0, tension: 0, label: z.name },
      { data: [], borderColor: "#d1242f", borderDash: [4, 4], borderWidth: 1, pointRadius: 0, label: t("capacity") },
    ] },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
      plugins: { legend: { display: false }, tooltip: { enabled: true } },
      scales: {
        x: { type: "linear", ticks: { maxTicksLimit: 6, callback: (v) => (v > 1e11 ? fmtTime(new Date(v).toISOString(), TZ).slice(0, 5) : "") } },
        y: { beginAtZero: true, suggestedMax: z.capacity },
      },
    },
  });
}

function renderZone(z) {
  const entry = zoneCard(z);
  const card = entry.card;
  entry.capacity = z.capacity;
  card.dataset.level = z.level;
  card.querySelector(".occupancy").textContent = fmtNum(z.occupancy);
  card.querySelector(".capacity").textContent = fmtNum(z.capacity);
  card.querySelector(".state").textContent = levelLabel(z.level);
  const pct = z.occupancy === null ? 0 : Math.max(0, Math.min(100, 100 * z.occupancy / z.capacity));
  card.querySelector(".fill").style.width = pct + "%";
  card.querySelector(".mark").style.left = (100 * z.near_full_at / z.capacity) + "%";
  card.querySelector(".gauge").title = t("near_full_at") + " " + fmtNum(z.near_full_at);
  const control = card.querySelector(".control");
  card.dataset.control = z.control || "";
  control.textContent = z.control === "closed" ? t("state_closed") + " — " + t("closed_by") + " " + (z.control_by || "?") : "";
  if (z.ts && z.occupancy !== null) addPoint(z.id, Date.parse(z.ts), z.occupancy, z.capacity);
  document.dispatchEvent(new CustomEvent("sesame:zone", { detail: z }));  // plan.js
}

function addPoint(zone, x, y, capacity) {
  const entry = zones.get(zone);
  if (!entry || !entry.chart) return;
  if (seriesDay && dayFmt.format(new Date(x)) !== seriesDay) return;  // not the day shown
  const data = entry.chart.data.datasets[0].data;
  if (data.length && data[data.length - 1].x > x) return;  // out of order: the history has it
  data.push({ x, y });
  if (data.length > 3000) data.splice(0, data.length - 3000);
  const cap = entry.chart.data.datasets[1].data;
  cap.length = 0;
  cap.push({ x: data[0].x, y: capacity }, { x, y: capacity });
  chartDirty.add(zone);
}

// Charts are redrawn at most once a second; the numbers change immediately.
setInterval(() => {
  for (const id of chartDirty) { const e = zones.get(id); if (e && e.chart) e.chart.update("none"); }
  chartDirty = new Set();
}, 1000);

function wireZoneActions(card, id) {
  card.querySelector(".close-zone").addEventListener("click", () =>
    act(`/api/zones/${id}/close`, {}));
  card.querySelector(".open-zone").addEventListener("click", () =>
    act(`/api/zones/${id}/open`, {}));
  card.querySelector(".correction").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = ev.target;
    act(`/api/zones/${id}/corrections`, { delta: parseInt(f.delta.value, 10), reason: f.reason.value })
      .then((ok) => { if (ok) f.reset(); });
  });
}

async function act(path, body) {
  try { await api("POST", path, body); return true; }
  catch (e) { alert(t("error") + ": " + e.message); return false; }
}

function renderGate(g) {
  const tbody = document.querySelector("#gates tbody");
  let row = gates.get(g.id);
  if (!row) {
    row = el("tr", { id: "gate-" + g.id });
    for (let i = 0; i < 7; i++) row.append(el("td"));
    row.cells[0].append(el("strong", {}, g.name), el("br"), el("small", {}, `${g.id} · ${g.from} → ${g.to}`));
    tbody.append(row);
    gates.set(g.id, row);
  }
  const st = g.online === null ? "never_seen" : g.online ? "online" : "offline";
  const faults = g.faults || [];
  row.dataset.online = st;
  // the "all is well" colour only for a lane online without a fault (style.css)
  row.dataset.faults = faults.length ? "some" : "none";
  row.cells[1].textContent = t(st) + (faults.length ? " · " + faults.join(", ") : "");
  row.cells[2].textContent = fmtTime(g.last_scan, TZ);
  // the lane's last decision as its staff see it: a refusal shows with its reason
  const dec = row.cells[3];
  dec.dataset.decision = g.last_decision || "";
  dec.textContent = !g.last_decision ? "–" : g.last_decision === "GRANTED" ? t("granted")
    : t("denied") + (g.last_reason ? " · " + (T["reason_" + g.last_reason] || g.last_reason) : "");
  row.cells[4].textContent = g.passages_today == null ? "–"
    : `${fmtNum(g.passages_today)} ${t("passed")} · ${fmtNum(g.denied_today)} ${t("refused")}`;
  row.cells[5].textContent = fmtNum(g.outbox);
  row.cells[6].textContent = g.controller || "–";
  document.dispatchEvent(new CustomEvent("sesame:gate", { detail: g }));  // plan.js
}

// renderAlert / renderAlerts: alerts.js

function renderAudit(e, prepend) {
  const tbody = document.querySelector("#audit tbody");
  if (document.getElementById("audit-" + e.id)) { document.getElementById("audit-" + e.id).remove(); prepend = true; }
  const target = (zones.get(e.target) && zones.get(e.target).card.querySelector(".name").textContent) || e.target;
  let what = t("action_" + e.action) + " — " + target;
  try { const d = JSON.parse(e.detail || "{}"); if (d.delta !== undefined) what += ` (${d.delta > 0 ? "+" : ""}${d.delta})`; } catch (x) { /* detail is informative only */ }
  const row = el("tr", { id: "audit-" + e.id, "data-action": e.action },
  );
  row.append(el("td", {}, fmtTime(e.at, TZ)), el("td", {}, e.user), el("td", {}, what), el("td", {}, e.reason), el("td", {}, t("outcome_" + e.outcome.replace(" ", "_"))));
  if (prepend) tbody.prepend(row); else tbody.append(row);
}

function renderMode(m) {
  const b = document.getElementById("mode");
  b.dataset.mode = m.mode;
  b.textContent = m.mode === "evacuation" ? t("mode_evacuation") + (m.by ? " — " + m.by : "") : t("mode_normal");
  const btn = document.getElementById("evacuate");
  if (btn) { btn.dataset.on = m.mode === "evacuation" ? "1" : "0"; btn.textContent = m.mode === "evacuation" ? t("evacuate_off") : t("evacuate_on"); }
}

function renderCounter(c) {
  // a new event day (or the first one known): fetch that day's curves
  if (c.event_clock && dayFmt.format(new Date(c.event_clock)) !== seriesDay && document.body.dataset.ready) loadSeries();
  const s = document.getElementById("counter-status");
  s.dataset.online = c.online === false ? "0" : "1";
  s.textContent = c.online === false ? t("counter_offline") : "";
}

function renderBroker(b) {
  document.getElementById("conn").hidden = b.state === "connected";
}

async function loadSeries() {
  if (!window.Chart) return;
  try {
    const s = await api("GET", "/api/series");
    seriesDay = s.day;
    for (const [zone, pts] of Object.entries(s.zones)) {
      const entry = zones.get(zone);
      if (!entry || !entry.chart) continue;
      const live = entry.chart.data.datasets[0].data;
      const hist = pts.map(([ts, y]) => ({ x: Date.parse(ts), y }));
      const last = hist.length ? hist[hist.length - 1].x : -Infinity;
      entry.chart.data.datasets[0].data = hist.concat(
        live.filter((p) => p.x > last && (!s.day || dayFmt.format(new Date(p.x)) === s.day)));
      const all = entry.chart.data.datasets[0].data;
      if (all.length) {  // the capacity line spans the curve
        entry.chart.data.datasets[1].data = [
          { x: all[0].x, y: entry.capacity }, { x: all[all.length - 1].x, y: entry.capacity }];
      }
      chartDirty.add(zone);
    }
  } catch (e) { /* the curve is a help, the numbers are what matter */ }
}

function connect() {
  const es = new EventSource("/api/stream");
  const conn = document.getElementById("conn");
  es.addEventListener("snapshot", (ev) => {
    conn.hidden = true;
    const s = JSON.parse(ev.data);
    s.zones.forEach(renderZone);
    s.gates.forEach(renderGate);
    renderAlerts(s.alerts);
    document.querySelector("#audit tbody").textContent = "";
    s.audit.forEach((e) => renderAudit(e, false));
    renderMode({ mode: s.mode, by: s.mode_by });
    renderCounter(s.counter);
    renderBroker(s.broker);
    document.body.dataset.ready = "1";
    loadSeries();
  });
  es.addEventListener("zone", (ev) => renderZone(JSON.parse(ev.data)));
  es.addEventListener("gate", (ev) => renderGate(JSON.parse(ev.data)));
  es.addEventListener("alert", (ev) => renderAlert(JSON.parse(ev.data)));
  es.addEventListener("audit", (ev) => renderAudit(JSON.parse(ev.data), true));
  es.addEventListener("venue", (ev) => renderMode(JSON.parse(ev.data)));
  es.addEventListener("counter", (ev) => renderCounter(JSON.parse(ev.data)));
  es.addEventListener("broker", (ev) => renderBroker(JSON.parse(ev.data)));
  es.onerror = () => {
    conn.hidden = false;
    if (es.readyState === EventSource.CLOSED) {
      // refused (signed out) or the server went away: check, then start again
      fetch("/api/me", { credentials: "same-origin" }).then((r) => {
        if (r.status === 401) location.href = "/login";
        else setTimeout(connect, 2000);
      }, () => setTimeout(connect, 2000));
    }
  };
}

function wireEvacuation() {
  const btn = document.getElementById("evacuate");
  if (!btn) return;
  const dlg = document.getElementById("confirm-dialog");
  btn.addEventListener("click", () => {
    const on = btn.dataset.on !== "1";
    document.getElementById("confirm-text").textContent = on ? t("evacuate_confirm") : t("evacuate_off_confirm");
    document.getElementById("confirm-reason").value = "";
    dlg.dataset.on = on ? "1" : "0";
    dlg.showModal();
  });
  dlg.addEventListener("close", () => {
    if (dlg.returnValue !== "ok") return;
    act("/api/venue/evacuation", { on: dlg.dataset.on === "1", reason: document.getElementById("confirm-reason").value });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  wireEvacuation();
  connect();
  setInterval(loadSeries, 60000);  // the counter's history catches up with late uploads
});
