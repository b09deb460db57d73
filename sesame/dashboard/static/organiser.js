// Organiser view: the counter's daily attendance as tables and charts, with downloads.
"use strict";
const DAYS = JSON.parse(document.body.dataset.days || "[]");
const TZ = document.body.dataset.tz || undefined;
const NAMES = JSON.parse(document.body.dataset.names || "{}");  // zone, category, reason ids
// per day: {opens, closes, label, hours: ["09", ...]}, local to the venue (organiser_view.py)
const HOURS = JSON.parse(document.body.dataset.hours || "{}");
const DEFAULT_DAY = document.body.dataset.defaultDay || DAYS[0];
const nameOf = (k) => NAMES[k] || k;
const charts = {};

function table(id, obj, fmt) {
  const tbody = document.querySelector(`#${id} tbody`);
  tbody.textContent = "";
  const entries = Object.entries(obj || {});
  if (!entries.length) {
    tbody.append(el("tr", { class: "no-data" }, el("td", { colspan: "2" }, t("no_data"))));
    return;
  }
  for (const [k, v] of entries) {
    const row = el("tr", { "data-key": k });
    row.append(el("th", {}, nameOf(k)), el("td", {}, fmt ? fmt(v) : fmtNum(v)));
    tbody.append(row);
  }
}

function bar(id, labels, values) {
  if (!window.Chart) return;
  if (charts[id]) charts[id].destroy();
  charts[id] = new Chart(document.getElementById(id), {
    type: "bar",
    data: { labels, datasets: [{ data: values, backgroundColor: "#1f6feb" }] },
    options: { animation: false, plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } },
  });
}

// zone -> "near full 13:47 · full 13:55": the first time that day each threshold was reached
function filledTimes(d) {
  const near = d.near_full_at || {}, full = d.full_at || {};
  const when = (at) => at ? fmtTime(at, TZ) : t("not_reached");
  const out = {};
  for (const z of Object.keys(near)) out[z] = `${t("filled_near")} ${when(near[z])} · ${t("filled_full")} ${when(full[z])}`;
  return out;
}

// Every opening hour of the day gets a bar (0 when nobody came), plus any hour outside them
// that has arrivals (early entries). Keys like "09": sorted as text, not as JavaScript orders
// integer-like keys.
function arrivalsOverOpeningHours(day, arrivals) {
  const hours = new Set([...((HOURS[day] || {}).hours || []), ...Object.keys(arrivals)]);
  const sorted = [...hours].sort((a, b) => a.localeCompare(b));
  return [sorted.map((h) => h + ":00"), sorted.map((h) => arrivals[h] || 0)];
}

async function load(day) {
  const q = "?day=" + encodeURIComponent(day);
  for (const f of ["csv", "xlsx", "png", "json"]) document.getElementById("dl-" + f).href = `/api/exports/attendance${q}&format=${f}`;
  document.getElementById("print-day").textContent = day;
  const err = document.getElementById("report-error");
  err.hidden = true;
  let report;
  try { report = await api("GET", `/api/exports/attendance${q}&format=json`); }
  catch (e) { err.textContent = t("error") + ": " + e.message; err.hidden = false; return; }
  const d = (report.days || {})[day] || {};
  document.getElementById("unique-visitors").textContent = fmtNum(d.unique_visitors);
  document.getElementById("entries").textContent = fmtNum(d.entries);
  document.getElementById("schoolchildren").textContent = fmtNum(d.schoolchildren);
  table("categories", d.by_category);
  table("departements", d.departements);
  table("denials", d.denials_by_reason);
  table("filled", filledTimes(d), (v) => v);
  table("peaks", d.peak_occupancy, (p) => p && typeof p === "object" ? `${fmtNum(p.value)} (${fmtTime(p.at, TZ)})` : fmtNum(p));
  bar("chart-hours", ...arrivalsOverOpeningHours(day, d.arrivals_by_hour || {}));
  const cats = d.by_category || {};
  bar("chart-categories", Object.keys(cats).map(nameOf), Object.values(cats));
  const open = HOURS[day];
  document.getElementById("plot-hours").textContent = open ? `${open.label} (${TZ})` : "";
  const img = document.getElementById("occupancy-png");
  img.src = `/api/exports/attendance${q}&format=png`;
  document.body.dataset.loaded = day;
}

document.addEventListener("DOMContentLoaded", () => {
  const sel = document.getElementById("day");
  for (const d of DAYS) sel.append(el("option", { value: d }, d));
  sel.addEventListener("change", () => load(sel.value));
  document.getElementById("print").addEventListener("click", () => window.print());
  if (DAYS.length) { sel.value = DAYS.includes(DEFAULT_DAY) ? DEFAULT_DAY : DAYS[0]; load(sel.value); }
});
