// The plan of the venue (SVG) and the counter's forecasts, kept current from the live
// stream: live.js fires "sesame:zone" and "sesame:gate" for every update it renders.
// Zones are filled by state, lanes are markers coloured by status; every shape is
// focusable with a spoken label, and the list under the plan says the same in text.
// Also shows each zone card's "full in about N min" and each entry lane's rate.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const holder = document.getElementById("plan");
  const plan = holder && holder.dataset.plan ? JSON.parse(holder.dataset.plan) : null;
  const zoneState = new Map();  // id -> last zone update
  const laneState = new Map();  // id -> last gate update
  const rates = new Map();      // lane id -> passages per minute (from its zone's message)
  const shapes = new Map();     // "zone:<id>" / "lane:<id>" -> {shape, label, item}
  const lanesById = new Map((plan ? plan.lanes : []).map((l) => [l.id, l]));
  const zoneNames = new Map((plan ? plan.zones : []).map((z) => [z.id, z.name]));

  function fmt(key, vals) {
    let s = t(key);
    for (const [k, v] of Object.entries(vals)) s = s.replace("{" + k + "}", v);
    return s;
  }

  function svgEl(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  }

  // a label never spills out of its zone: shrink it to the zone's width (user units: metres)
  function fit(text, width, size) {
    text.setAttribute("font-size", size);
    const len = text.getComputedTextLength ? text.getComputedTextLength() : 0;
    if (len > width * 0.9) text.setAttribute("font-size", (size * width * 0.9 / len).toFixed(2));
  }

  function width(points) {
    const xs = points.map((p) => p[0]);
    return Math.max(...xs) - Math.min(...xs);
  }

  function centroid(points) {
    const n = points.length;
    return [points.reduce((a, p) => a + p[0], 0) / n, points.reduce((a, p) => a + p[1], 0) / n];
  }

  function fullIn(z) {
    if (z.full_in_min === null || z.full_in_min === undefined) return "";
    return fmt("full_in", { n: fmtNum(z.full_in_min) });
  }

  function laneStatus(g) {
    if (!g || g.online === null || g.online === undefined) return "never_seen";
    return g.online ? "online" : "offline";
  }

  function rateText(lane) {
    if (lane.exit || !rates.has(lane.id)) return "";
    return fmt("lane_rate", { n: fmtNum(rates.get(lane.id)), max: fmtNum(lane.max_per_min) });
  }

  function saturated(lane) {
    return !lane.exit && rates.has(lane.id) && rates.get(lane.id) >= 0.9 * lane.max_per_min;
  }

  function build() {
    if (!plan || !plan.zones.length) return;  // no outlines: the zone cards alone
    document.getElementById("plan-section").hidden = false;
    const [x, y, w, h] = plan.viewbox;
    const svg = svgEl("svg", { viewBox: `${x} ${y} ${w} ${h}`, role: "group",
      "aria-labelledby": "plan-title", "aria-describedby": "plan-help", class: "plan-svg" });
    const list = document.getElementById("plan-list");
    for (const z of plan.zones) {
      const g = svgEl("g", { class: "plan-zone", id: "plan-zone-" + z.id, "data-zone": z.id,
        "data-level": "unknown", tabindex: "0", role: "img" });
      const poly = svgEl("polygon", { points: z.outline.map((p) => p.join(",")).join(" ") });
      const [cx, cy] = centroid(z.outline);
      const name = svgEl("text", { x: cx, y: cy - 2, class: "plan-name", "text-anchor": "middle" });
      name.textContent = z.name;
      const figure = svgEl("text", { x: cx, y: cy + 5, class: "plan-figure", "text-anchor": "middle" });
      const forecast = svgEl("text", { x: cx, y: cy + 11, class: "plan-forecast", "text-anchor": "middle" });
      g.append(poly, name, figure, forecast);
      g.addEventListener("keydown", (ev) => {
        if (ev.key !== "Enter" && ev.key !== " ") return;
        ev.preventDefault();
        const card = document.getElementById("zone-" + z.id);
        if (card) { card.tabIndex = -1; card.scrollIntoView({ block: "center" }); card.focus(); }
      });
      svg.append(g);
      const item = el("li", { id: "plan-item-zone-" + z.id });
      list.append(item);
      shapes.set("zone:" + z.id, { shape: g, name, figure, forecast, item, width: width(z.outline) });
    }
    for (const l of plan.lanes) {
      if (!l.position) continue;
      const [lx, ly] = l.position;
      const g = svgEl("g", { class: "plan-lane" + (l.exit ? " exit" : " entry"), id: "plan-lane-" + l.id,
        "data-gate": l.id, "data-online": "never_seen", tabindex: "0", role: "img" });
      const mark = l.exit
        ? svgEl("rect", { x: lx - 1.8, y: ly - 1.8, width: 3.6, height: 3.6 })
        : svgEl("circle", { cx: lx, cy: ly, r: 2 });
      g.append(mark);
      svg.append(g);
      const item = el("li", { id: "plan-item-lane-" + l.id });
      list.append(item);
      shapes.set("lane:" + l.id, { shape: g, item });
    }
    holder.append(svg);
    for (const z of plan.zones) { const s = shapes.get("zone:" + z.id); fit(s.name, s.width, 5); drawZone(z.id); }
    for (const l of plan.lanes) drawLane(l.id);
  }

  function drawZone(id) {
    const s = shapes.get("zone:" + id);
    if (!s) return;
    const z = zoneState.get(id) || { level: "unknown", occupancy: null, capacity: null };
    s.shape.dataset.level = z.level;
    s.figure.textContent = z.occupancy === null ? "–" : `${fmtNum(z.occupancy)} / ${fmtNum(z.capacity)}`;
    s.forecast.textContent = fullIn(z);
    fit(s.figure, s.width, 5);
    fit(s.forecast, s.width, 4);
    const parts = [zoneNames.get(id), t("state_" + z.level)];
    if (z.occupancy !== null) parts.push(`${fmtNum(z.occupancy)} / ${fmtNum(z.capacity)} ${t("people")}`);
    if (fullIn(z)) parts.push(fullIn(z));
    const text = parts.join(" — ");
    s.shape.setAttribute("aria-label", text);
    s.item.textContent = text;
  }

  function drawLane(id) {
    const s = shapes.get("lane:" + id);
    const lane = lanesById.get(id);
    if (!s || !lane) return;
    const st = laneStatus(laneState.get(id));
    const faults = (laneState.get(id) || {}).faults || [];
    s.shape.dataset.online = st;
    // as in the lane table: the "all is well" colour only for a lane online without a fault
    s.shape.dataset.faults = faults.length ? "some" : "none";
    s.shape.dataset.saturated = saturated(lane) ? "1" : "0";
    const parts = [lane.name, t(lane.exit ? "lane_exit" : "lane_entry"), t(st)];
    if (faults.length) parts.push(faults.join(", "));
    if (rateText(lane)) parts.push(rateText(lane));
    if (saturated(lane)) parts.push(t("lane_saturated"));
    const text = parts.join(" — ");
    s.shape.setAttribute("aria-label", text);
    let title = s.shape.querySelector("title");
    if (!title) { title = svgEl("title", {}); s.shape.prepend(title); }
    title.textContent = text;
    s.item.textContent = text;
  }

  // the zone cards and the lane table get the same figures, plan or no plan
  function cardForecast(z) {
    const card = document.getElementById("zone-" + z.id);
    if (!card) return;
    let p = card.querySelector(".full-in");
    if (!p) { p = el("p", { class: "full-in", "aria-live": "polite" }); card.querySelector(".figure").after(p); }
    p.textContent = fullIn(z);
    p.hidden = !p.textContent;
  }

  function rowRate(id) {
    const row = document.getElementById("gate-" + id);
    const lane = lanesById.get(id);
    if (!row || !lane || lane.exit || !rates.has(id)) return;
    let span = row.cells[0].querySelector(".rate");
    if (!span) { span = el("small", { class: "rate" }); row.cells[0].append(el("br"), span); }
    span.textContent = rateText(lane) + (saturated(lane) ? " — " + t("lane_saturated") : "");
    span.dataset.saturated = saturated(lane) ? "1" : "0";
  }

  document.addEventListener("sesame:zone", (ev) => {
    const z = ev.detail;
    zoneState.set(z.id, z);
    for (const [gate, n] of Object.entries(z.entry_rates || {})) {
      rates.set(gate, n);
      drawLane(gate);
      rowRate(gate);
    }
    drawZone(z.id);
    cardForecast(z);
  });
  document.addEventListener("sesame:gate", (ev) => {
    laneState.set(ev.detail.id, ev.detail);
    drawLane(ev.detail.id);
    rowRate(ev.detail.id);
  });
  build();
})();
