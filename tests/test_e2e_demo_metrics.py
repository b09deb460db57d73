"""A Prometheus scrape of a running `sesame demo` (issue: operations and integrations):
the counter, the dashboard and the lanes each answer on their port with the documented
metrics, and the values agree with what the demo's dashboard shows."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import httpx

from tests.fixtures.e2e import Demo
from tests.test_metrics import scrape, until

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTED = set(re.findall(r"`(sesame_[a-z_]+)", (ROOT / "docs/metrics.md").read_text()))


def three_free_ports() -> int:
    """A port P with P, P+1 and P+2 free on loopback."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base > 65530:
            continue
        free = True
        for p in (base, base + 1, base + 2):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    free = False
        if free:
            return base
    raise RuntimeError("no three consecutive free ports")


def families(port: int) -> set[str]:
    return {name for name, _ in scrape(port)}


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items()
               if n == name and all(dict(ls).get(k) == x for k, x in labels.items()))  # fmt: skip


def test_a_scrape_of_the_running_demo(tmp_path):
    base = three_free_ports()
    demo = Demo("--http-port", "0", "--speed", "600", "--scale", "0.1",
                "--metrics-port", str(base), "--dir", str(tmp_path / "demo"), cwd=tmp_path)
    url, password = demo.url, demo.password
    try:
        web = httpx.Client(base_url=url, timeout=5)
        assert web.post("/login", json={"username": "demo", "password": password}).is_success
        counter, dash, lanes = base, base + 1, base + 2

        until(lambda: total(scrape(counter), "sesame_counter_events_total", kind="passage") > 50,
              timeout=90, what="the counter's metrics to show passages")  # fmt: skip
        c = scrape(counter)
        g = scrape(lanes)
        d = scrape(dash)
        for port in (counter, dash, lanes):
            undocumented = {
                n for n in families(port)
                if n.startswith("sesame_") and not n.endswith("_created")  # client's own
                and re.sub(r"_(bucket|count|sum)$", "", n) not in DOCUMENTED
            }  # fmt: skip
            assert not undocumented, (port, undocumented)

        # the counter: every zone's occupancy within 0..capacity, the same as the dashboard's
        zones = web.get("/api/zones").json()["zones"]
        for z in zones:
            cap = c[("sesame_zone_capacity_people", (("zone", z["id"]),))]
            occ = c[("sesame_zone_occupancy_people", (("zone", z["id"]),))]
            assert cap == z["capacity"]
            assert 0 <= occ <= cap, z["id"]
        assert sum(c[("sesame_zone_occupancy_people", (("zone", z["id"]),))] for z in zones) > 0
        assert c[("sesame_counter_database_size_bytes", ())] > 0

        # the lanes: one endpoint for every lane of the venue, each connected, scans counted
        gates = {dict(ls)["gate"] for n, ls in g if n == "sesame_gate_link_state"}
        assert gates == {lane["id"] for lane in web.get("/api/gates").json()["gates"]}
        for gate in gates:
            assert total(g, "sesame_gate_link_state", gate=gate, state="connected") == 1
        # each entry lane's scans counted; what it admitted reached the counter
        for gate in ("churchill-in-1", "churchill-in-2"):
            assert total(g, "sesame_gate_scans_total", gate=gate, decision="GRANTED") > 0
            assert total(c, "sesame_counter_events_total", gate=gate, kind="passage") > 0
            assert any(n == "sesame_gate_outbox_events" and dict(ls)["gate"] == gate
                       for n, ls in g)  # fmt: skip

        # the dashboard: this session is signed in, its requests answered
        assert d[("sesame_dashboard_sessions", ())] >= 1
        assert total(d, "sesame_dashboard_http_responses_total", status="200") >= 1
    finally:
        demo.stop()
    # the metrics ports are closed with the demo
    for port in (base, base + 1, base + 2):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
