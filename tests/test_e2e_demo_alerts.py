"""`sesame demo` (fast, small) does not flood the officer: its zone alerts are one near-full
and one full per excursion. The occupancy is recorded independently from the demo's broker,
and between two alerts of the same kind for a zone the zone must really have fallen below
the lower threshold. A screenshot of the alert list goes to test-artifacts/."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx

from sesame.common import mqtt, wire
from tests.fixtures.e2e import demo_dashboard

REPO = Path(__file__).resolve().parents[1]
RUN_S = 30  # real seconds of replay at x900: the morning rush and the afternoon peak
FILL_S = 120  # on a loaded machine the replay may lag: wait this long for the first full zone


def test_demo_raises_one_alert_per_excursion(tmp_path, chromium, artifacts):
    work = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sesame", "demo", "--http-port", "0", "--speed", "900",
         "--scale", "0.1", "--dir", str(work)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    history: dict[str, list[tuple[datetime, int]]] = {}
    recorder = None
    lines: list[str] = []
    try:
        url = password = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not url:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if m := re.search(r"broker: (\S+) \(accounts in (\S+)\)", line):
                topics = wire.Topics("grand-palais")
                # the demo's own broker (its credential files name the default port)
                recorder = mqtt.connect(
                    f"mqtt://{m.group(1)}", "",
                    credentials=Path(m.group(2)) / "credentials" / "dashboard.json",
                    clean_start=True, session_expiry=0,
                    subscriptions=[(topics.occupancy("+"), 1)],
                    on_message=lambda msg: _record(history, msg.payload),
                )  # fmt: skip
            if found := demo_dashboard(line):
                url, password = found
        assert url and recorder, "".join(lines)
        c = httpx.Client(base_url=url, timeout=10)
        assert c.post("/login", json={"username": "demo", "password": password}).is_success
        started = time.monotonic()
        while True:
            time.sleep(2)
            alerts = c.get("/api/alerts").json()["alerts"]
            filled = any(a["group"] == "zones" and a["kind"] == "full" for a in alerts)
            waited = time.monotonic() - started
            if (filled and waited >= RUN_S) or waited >= FILL_S:
                break

        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        try:
            page.goto(url + "/login")
            page.fill("#username", "demo")
            page.fill("#password", password)
            page.click("#login-button")
            page.wait_for_selector("body[data-ready='1']")
            page.wait_for_selector("#alerts li.alert")
            page.locator("#alerts").scroll_into_view_if_needed()
            page.screenshot(path=str(artifacts / "demo-alerts.png"), full_page=True)
        finally:
            page.close()
    finally:
        if recorder is not None:
            recorder.close()
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()

    # healthy lanes on a replay's fast clock: no lane clock is taken for a lying one
    clock = [(a["key"], a["detail"]) for a in alerts if a["kind"].startswith("CLOCK_")]
    assert not clock, clock
    zone_alerts = [a for a in alerts if a["group"] == "zones"]
    peaks = {zone: max(n for _, n in points) for zone, points in history.items()}
    assert any(a["kind"] == "full" for a in zone_alerts), (
        f"the demo never filled a zone in {FILL_S} s: peaks {peaks}, alerts {zone_alerts}"
    )
    crossings = 0
    for zone, points in history.items():
        points.sort()
        for kind in ("near_full", "full"):
            mine = sorted((a for a in zone_alerts if (a["subject"], a["kind"]) == (zone, kind)),
                          key=lambda a: a["start"])  # fmt: skip
            assert sum(a["active"] for a in mine) <= 1, mine
            for a in mine:
                assert a["peak"] >= a["detail"]["threshold"], a
            # a second alert only after the zone fell below the lower threshold
            for first, second in zip(mine, mine[1:], strict=False):
                assert first["end"] is not None, first
                lo, hi = _t(first["start"]), _t(second["start"])
                clear = first["detail"]["clears_below"]
                assert any(lo <= t <= hi and n < clear for t, n in points), (zone, kind, first)
            if mine:  # what the old rule (one alert per crossing) would have raised
                th = mine[0]["detail"]["threshold"]
                crossings += sum(1 for (_, a), (_, b) in zip(points, points[1:], strict=False)
                                 if a < th <= b)  # fmt: skip
    others = sorted({a["kind"] for a in alerts if a["group"] != "zones"})
    print(f"demo alerts: {len(zone_alerts)} zone alerts, {crossings} upward threshold crossings,"
          f" {len(alerts) - len(zone_alerts)} other {others}; "
          f"{sum(map(len, history.values()))} samples")
    assert len(zone_alerts) <= max(crossings, 2)


def _record(history, payload: bytes) -> None:
    msg = wire.parse_occupancy(payload)
    if msg:
        history.setdefault(msg.zone, []).append((msg.ts, msg.occupancy))


def _t(s: str) -> datetime:
    return datetime.fromisoformat(s)

