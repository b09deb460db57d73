// Shared helpers for the dashboard pages: strings, the CSRF header, the language switch.
"use strict";
const T = JSON.parse(document.body.dataset.i18n || "{}");
const ROLE = document.body.dataset.role || "";
const CSRF = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

function t(key) { return T[key] || key; }

async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: { "X-CSRF-Token": CSRF } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); }
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (!r.ok) {
    const msg = data && data.error ? data.error.message : r.statusText;
    throw new Error(msg);
  }
  return data;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  // an element child is appended as itself; anything else as its text
  for (const c of children) e.append(c instanceof Node ? c : c === null || c === undefined ? "" : String(c));
  return e;
}

function fmtTime(iso, tz) {
  if (!iso) return "–";
  const d = new Date(iso);
  const opts = { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
  if (tz) opts.timeZone = tz;
  try { return d.toLocaleTimeString(document.documentElement.lang, opts); }
  catch (e) { return d.toLocaleTimeString(); }
}

function fmtNum(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString(document.documentElement.lang);
}

document.addEventListener("DOMContentLoaded", () => {
  // Elements for another role are removed, not just hidden (the server refuses anyway).
  for (const e of document.querySelectorAll("[data-role-only]")) {
    if (e.dataset.roleOnly !== ROLE) e.remove();
  }
  for (const b of document.querySelectorAll("button[data-lang]")) {
    b.addEventListener("click", () => {
      document.cookie = "lang=" + b.dataset.lang + "; path=/; SameSite=Strict; max-age=31536000";
      location.reload();
    });
  }
  const logout = document.getElementById("logout");
  if (logout) logout.addEventListener("click", async () => {
    try { await api("POST", "/logout"); } finally { location.href = "/login"; }
  });
});
