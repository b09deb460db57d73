"""`sesame demo` as a newcomer runs it, and `sesame simulate`'s command line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.fixtures.e2e import demo_dashboard

REPO = Path(__file__).resolve().parents[1]


def _sesame(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sesame", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return {int(x) for x in out.stdout.split()}


def _demo_address(proc: subprocess.Popen, lines: list[str]) -> tuple[str, str]:
    """The dashboard address and password the demo prints."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if found := demo_dashboard(line):
            return found
    raise AssertionError("".join(lines))


def test_demo_fills_the_dashboard_and_ctrl_c_stops_everything(tmp_path):
    # its own process group, like a command typed in a terminal
    proc = _sesame(
        "demo", "--http-port", "0", "--speed", "900", "--scale", "0.1", start_new_session=True
    )
    lines: list[str] = []
    try:
        url, password = _demo_address(proc, lines)
        assert not any(":1883" in x for x in lines)  # its own broker, never the system one
        broker_pids = _children(proc.pid)
        assert broker_pids, "the demo's broker is not its child"

        c = httpx.Client(base_url=url, timeout=5)
        assert c.post("/login", json={"username": "demo", "password": password}).is_success
        nef = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and nef == 0:
            zones = c.get("/api/zones").json()["zones"]
            nef = next(z["occupancy"] for z in zones if z["id"] == "nef") or 0
            time.sleep(0.5)
        assert nef > 0, "the dashboard never showed visitors in the Nef"
        # the organiser account it prints opens the organiser's exports
        assert any(
            re.search(r"organiser view: \S+/organiser\s+user organiser\s+password ", x)
            for x in lines + [proc.stdout.readline()]
        ), "".join(lines)
        org = httpx.Client(base_url=url, timeout=5)
        r = org.post("/login", json={"username": "organiser", "password": password})
        assert r.is_success
        assert org.get("/organiser").status_code == 200
    finally:
        # Ctrl-C in a terminal signals the whole foreground group, the demo's children too:
        # the broker must not vanish under the gates and counter before they stop
        os.killpg(proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        try:
            rc = proc.wait(30)
            stopped_in = time.monotonic() - t0
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert rc == 0
    assert stopped_in < 10, f"Ctrl-C took {stopped_in:.1f} s to stop the demo"
    for pid in broker_pids:  # the broker it started is gone
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)


def test_demo_shows_the_nef_filling_with_its_alert_and_lanes_refusing(tmp_path):
    """What the demo announces is what a newcomer sees: Sunday's Nef near full, the near-full
    alert, and entry lanes refusing for lack of room, within the first minutes (here at three
    times the default speed, with the default quarter of the crowd)."""
    proc = _sesame("demo", "--http-port", "0", "--speed", "720", start_new_session=True)
    lines: list[str] = []
    try:
        url, password = _demo_address(proc, lines)
        lines += [proc.stdout.readline(), proc.stdout.readline()]  # organiser, replaying
        c = httpx.Client(base_url=url, timeout=5)
        assert c.post("/login", json={"username": "demo", "password": password}).is_success
        nef_state = alert = None
        refusing: set[str] = set()
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and not (nef_state and alert and refusing):
            nef = next(z for z in c.get("/api/zones").json()["zones"] if z["id"] == "nef")
            if nef["state"] in ("near_full", "full"):
                nef_state = nef["state"]
            alert = alert or next((a for a in c.get("/api/alerts").json()["alerts"]
                                   if a["subject"] == "nef" and a["kind"] in ("near_full", "full")),
                                  None)  # fmt: skip
            for g in c.get("/api/gates").json()["gates"]:
                if g["from"] == "outside" and g["last_reason"] in ("LEASE_EXHAUSTED", "ZONE_FULL"):
                    refusing.add(g["id"])
            time.sleep(1)
        assert nef_state, "the Nef never came near full"
        assert alert is not None, "no near-full alert for the Nef"
        assert refusing, "no entry lane refused for lack of room"
        replaying = next(x for x in lines if x.startswith("replaying"))
        assert "2018-11-25" in replaying and "from opening at 10:00" in replaying
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(30)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_simulate_in_memory_prints_figures_and_writes_truth(tmp_path):
    truth = tmp_path / "truth.json"
    p = _sesame("simulate", "--in-memory", "--days", "1", "--scale", "0.05", "--truth", str(truth))
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out
    data = json.loads(truth.read_text())
    day = data["days"]["2018-11-22"]
    # 665 pupils over the two school days; all got in
    assert day["schoolchildren"] in (332, 333)
    assert day["schoolchildren"] == sum(day["departements"].values())
    assert data["totals"]["unique_visitors"] == day["unique_visitors"] > 0


def test_simulate_refuses_bad_input_on_one_line(tmp_path):
    for args in (
        ["--visitors", "10", "--schoolchildren", "20"],
        ["--day", "2019-01-01", "--in-memory"],
        ["--venue", str(tmp_path / "missing.toml")],
        ["--broker", "127.0.0.1:1"],
    ):
        p = _sesame("simulate", *args, env=dict(os.environ))
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 2, (args, out)
        assert len(out.strip().splitlines()) == 1 and "error" in out, (args, out)
