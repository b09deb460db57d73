// Alerts on the live page: unacknowledged first (highlighted, with their age), the
// acknowledge button for safety officers, the count in the title and the favicon so a
// background tab still tells, and an optional alarm tone (WebAudio, generated here) for
// full zones, evacuation, fire alarms and lanes down at an entrance.
// live.js feeds it: renderAlerts(list) on every snapshot, renderAlert(a) on every update.
"use strict";
const alertData = new Map();  // id -> alert as the server sent it
const BASE_TITLE = document.title;
const MUTE_MS = 10 * 60 * 1000;
let alertsDirty = false;

function renderAlerts(list) {
  alertData.clear();
  for (const a of list) alertData.set(a.id, a);
  scheduleAlerts();
}

function renderAlert(a) {
  alertData.set(a.id, a);
  scheduleAlerts();
}

function scheduleAlerts() {
  if (alertsDirty) return;
  alertsDirty = true;
  requestAnimationFrame(() => { alertsDirty = false; drawAlerts(); });
}

function alertOrder(a, b) {  // the server's order: unacknowledged, active, newest
  return (a.acknowledged - b.acknowledged) || (b.active - a.active)
    || (Date.parse(b.at) - Date.parse(a.at)) || (b.id - a.id);
}

function subjectName(id) {
  const z = typeof zones !== "undefined" && zones.get(id);
  if (z) return z.card.querySelector(".name").textContent;
  const g = typeof gates !== "undefined" && gates.get(id);
  if (g) return g.cells[0].querySelector("strong").textContent;
  return id === "counter" ? t("counter") : id;
}

function alertLabel(kind) {
  const key = "alert_" + kind;
  return t(key) === key ? kind : t(key);
}

function ageText(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  return Math.floor(s / 3600) + " h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0");
}

function drawAlerts() {
  const list = document.getElementById("alerts");
  const items = Array.from(alertData.values()).sort(alertOrder);
  list.textContent = "";
  if (!items.length) list.append(el("li", { class: "empty" }, t("no_alerts")));
  for (const a of items) list.append(alertItem(a));
  const open = items.filter((a) => !a.acknowledged).length;
  const summary = document.getElementById("alert-summary");
  if (summary) {
    summary.textContent = open ? `${open} ${t("unacknowledged")}` : "";
    summary.dataset.count = String(open);
  }
  showCount(open);
  updateAlarm();
}

function alertItem(a) {
  const li = el("li", { id: "alert-" + a.id, "data-id": String(a.id), "data-kind": a.kind,
    "data-subject": a.subject, "data-acknowledged": a.acknowledged ? "1" : "0" });
  li.className = ["alert", a.kind, a.severity, a.active ? "active" : "cleared",
    a.acknowledged ? "acked" : "unacked", a.escalated ? "escalated" : ""].join(" ").trim();
  const text = el("span", { class: "text" });
  text.append(el("time", { datetime: a.at }, fmtTime(a.at, TZ)), " ",
    el("strong", {}, subjectName(a.subject)), " — " + alertLabel(a.kind));
  const held = heldText(a);
  // held passages say their number in words; other lines count occurrences
  if (a.count > 1 && a.kind !== "IMPLAUSIBLE_RATE") {
    text.append(" ", el("span", { class: "count" }, `×${a.count}`));
  }
  if (held) text.append(" · ", el("span", { class: "held" }, held));
  if (a.peak !== null && a.peak !== undefined) text.append(` · ${t("alert_peak")} ${fmtNum(a.peak)}`);
  if (a.active && !a.acknowledged) {
    text.append(" · ", el("span", { class: "age", "data-since": a.raised_wall || a.seen },
      t("since") + " " + ageText(a.raised_wall || a.seen)));
  }
  if (!a.active) text.append(` (${t("ended")} ${fmtTime(a.cleared, TZ)})`);
  if (a.escalated) text.append(" ", el("span", { class: "badge" }, t("escalated")));
  if (a.acknowledged) {
    text.append(el("br"), el("small", { class: "acked-by" },
      `${t("acknowledged_by")} ${a.acked_by} ${fmtTime(a.acked_at, TZ)}`));
  }
  li.append(text);
  if (!a.acknowledged && ROLE === "safety") {
    const b = el("button", { type: "button", class: "ack" }, t("acknowledge"));
    b.addEventListener("click", () => acknowledge(a.id, b));
    li.append(b);
  }
  if (a.active && ROLE === "safety") li.append(...decisionButtons(a));
  return li;
}

// -- findings that wait for a safety officer (the counter's control/decisions) -----------
const DECISIONS = {
  EPOCH_CHANGE_HELD: ["confirm_epoch"],
  IMPLAUSIBLE_RATE: ["accept_held", "reject_held"],
};

function heldText(a) {
  const d = a.detail || {};
  if (a.kind === "EPOCH_CHANGE_HELD" && d.epoch) {
    return `${t("held_epoch")} ${d.epoch}, ${t("allowance_at_stake")} ${fmtNum(d.allowance || 0)}`;
  }
  if (a.kind === "IMPLAUSIBLE_RATE") {
    return `${fmtNum(d.held ?? a.count)} ${t("held_passages")} (${t("per_minute_max")} ${fmtNum(d.max_per_minute)})`;
  }
  return "";
}

function decisionButtons(a) {
  const actions = DECISIONS[a.kind] || [];
  const buttons = actions.map((action) => el("button",
    { type: "button", class: "decide " + action, "data-action": action }, t("decide_" + action)));
  buttons.forEach((b, i) => b.addEventListener("click", () => decide(a, actions[i], buttons)));
  return buttons;
}

async function decide(a, action, buttons) {
  const body = { action, gate: a.subject };
  if (action === "confirm_epoch") body.epoch = a.detail.epoch;
  else body.count = a.detail.held ?? a.count;  // what the officer saw, not what came after
  buttons.forEach((b) => { b.disabled = true; });
  try {
    await api("POST", "/api/decisions", body);
    // the alert ends when the counter's list no longer holds the finding
    buttons.forEach((b) => { b.title = t("decision_sent"); });
  } catch (e) {
    buttons.forEach((b) => { b.disabled = false; });
    alert(t("error") + ": " + e.message);
  }
}

async function acknowledge(id, button) {
  button.disabled = true;
  try {
    const r = await api("POST", "/api/alerts/acknowledge", { id });
    renderAlert(r.alert);
  } catch (e) {
    button.disabled = false;
    alert(t("error") + ": " + e.message);
  }
}

// -- the count where a background tab shows it --------------------------------------------
function showCount(n) {
  document.title = n ? `(${n}) ${BASE_TITLE}` : BASE_TITLE;
  const c = document.createElement("canvas");
  c.width = c.height = 32;
  const g = c.getContext("2d");
  g.fillStyle = n ? "#cf222e" : "#1f883d";
  g.beginPath(); g.arc(16, 16, 15, 0, 2 * Math.PI); g.fill();
  if (n) {
    g.fillStyle = "#fff";
    g.font = `bold ${n > 9 ? 16 : 20}px sans-serif`;
    g.textAlign = "center"; g.textBaseline = "middle";
    g.fillText(n > 99 ? "99+" : String(n), 16, 17);
  }
  let link = document.querySelector("link[rel='icon']");
  if (!link) { link = el("link", { rel: "icon" }); document.head.append(link); }
  link.href = c.toDataURL("image/png");
  document.body.dataset.unacknowledged = String(n);
}

// -- the alarm tone ---------------------------------------------------------------------
// Browsers start audio only after a gesture on the page: the officer enables it once per
// session (remembered for the tab; the next click anywhere resumes it after a reload).
let audio = null;
let alarmTimer = null;
window.__alarmBeeps = 0;

function soundWanted() { return sessionStorage.getItem("sesame-sound") === "1"; }
function mutedUntil() { return Number(sessionStorage.getItem("sesame-mute-until") || 0); }

function enableSound() {
  if (!audio) audio = new (window.AudioContext || window.webkitAudioContext)();
  audio.resume();
  sessionStorage.setItem("sesame-sound", "1");
  updateAlarm();
}

function beep() {
  if (!audio) return;
  const t0 = audio.currentTime;
  for (const [i, f] of [[0, 880], [1, 660]]) {  // two tones, 0.25 s each
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "square";
    osc.frequency.value = f;
    gain.gain.setValueAtTime(0.0001, t0 + i * 0.3);
    gain.gain.exponentialRampToValueAtTime(0.25, t0 + i * 0.3 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t0 + i * 0.3 + 0.25);
    osc.connect(gain).connect(audio.destination);
    osc.start(t0 + i * 0.3);
    osc.stop(t0 + i * 0.3 + 0.27);
  }
  window.__alarmBeeps += 1;
}

function alarmState() {
  const loud = Array.from(alertData.values()).some((a) => a.active && a.audible && !a.acknowledged);
  if (!soundWanted()) return loud ? "off" : "silent";
  if (!loud) return "silent";
  return Date.now() < mutedUntil() ? "muted" : "sounding";
}

function updateAlarm() {
  const state = alarmState();
  document.body.dataset.alarm = state;
  const on = document.getElementById("sound-on");
  const mute = document.getElementById("sound-mute");
  if (on) on.textContent = soundWanted() ? t("sound_enabled") : t("sound_on");
  if (on) on.setAttribute("aria-pressed", soundWanted() ? "true" : "false");
  if (mute) {
    const until = mutedUntil();
    mute.hidden = !soundWanted();
    mute.textContent = Date.now() < until
      ? `${t("muted_until")} ${new Date(until).toLocaleTimeString(document.documentElement.lang, { hour: "2-digit", minute: "2-digit" })}`
      : t("mute");
  }
  if (state === "sounding" && !alarmTimer) {
    beep();
    alarmTimer = setInterval(() => { if (alarmState() === "sounding") beep(); else updateAlarm(); }, 2000);
  } else if (state !== "sounding" && alarmTimer) {
    clearInterval(alarmTimer);
    alarmTimer = null;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const on = document.getElementById("sound-on");
  if (on) on.addEventListener("click", enableSound);
  const mute = document.getElementById("sound-mute");
  if (mute) mute.addEventListener("click", () => {
    const muted = Date.now() < mutedUntil();
    sessionStorage.setItem("sesame-mute-until", muted ? "0" : String(Date.now() + MUTE_MS));
    updateAlarm();
  });
  // a reload keeps the officer's choice; the first gesture on the page restarts the audio
  if (soundWanted()) document.addEventListener("pointerdown", enableSound, { once: true });
  showCount(0);
  updateAlarm();
  setInterval(() => {  // ages tick without a redraw; the mute ends on its own
    for (const s of document.querySelectorAll("#alerts .age")) {
      s.textContent = t("since") + " " + ageText(s.dataset.since);
    }
    updateAlarm();
  }, 1000);
});
