"""Prometheus metrics: every metric is documented in docs/metrics.md, the example Grafana
dashboard uses only documented metrics, and a scrape of a running counter, lane agent and
dashboard (real processes, real Mosquitto) returns them with the figures the venue shows."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sesame.common.net import free_port
from sesame.common.tokens import Claims, generate_keypair, load_private_key, sign
from sesame.common.venue import load_venue
from sesame.gate.turnstile import SimulatedController
from tests.fixtures.counter import PARIS, running_clock_file
from tests.fixtures.dashboard import ACCOUNTS, VENUE_FILE

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "metrics.md"
GATE = "balcons-up-1"  # offline_policy "open": grants without a lease


def documented() -> set[str]:
    return set(re.findall(r"^\| `(sesame_[a-z_]+)` \|", DOC.read_text(encoding="utf-8"), re.M))


def exposed_names(registry) -> set[str]:
    """The names users query: counters with their _total, the rest as declared."""
    out = set()
    for fam in registry.collect():
        out.add(fam.name + "_total" if fam.type == "counter" else fam.name)
    return out


def test_every_metric_is_documented(tmp_path):
    from sesame.counter.core import Core
    from sesame.counter.metrics import CounterMetrics
    from sesame.counter.store import CounterStore
    from sesame.dashboard.app import Dashboard, DashboardSettings
    from sesame.gate.agent import GateAgent

    venue = load_venue(VENUE_FILE)
    core = Core(venue, CounterStore(tmp_path / "c.db"))
    names = exposed_names(CounterMetrics(lambda: core, tmp_path / "c.db").registry)
    agent = GateAgent(venue, GATE, data_dir=tmp_path, keys={})
    names |= exposed_names(agent.metrics.registry)
    dash = Dashboard(DashboardSettings(venue=venue, accounts_path=tmp_path / "a.db"))
    names |= exposed_names(dash.metrics.registry)
    assert len(names) >= 20
    assert all(n.startswith("sesame_") for n in names)
    missing = names - documented()
    assert not missing, f"docs/metrics.md needs a row for {sorted(missing)}"
    stale = documented() - names
    assert not stale, f"docs/metrics.md documents metrics that do not exist: {sorted(stale)}"
    agent.outbox.close()
    core.store.close()
    dash.stop()


def test_the_grafana_dashboard_and_scrape_config_use_documented_metrics():
    dash = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs
            for m in re.findall(r"sesame_[a-z_]+", e)}  # fmt: skip
    assert used and used <= documented(), used - documented()
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    scrape = (ROOT / "docs" / "prometheus.yml").read_text(encoding="utf-8")
    assert "job_name: sesame-counter" in scrape and "job_name: sesame-gates" in scrape


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def until(cond, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (httpx.HTTPError, KeyError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def sesame(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sesame", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)  # fmt: skip


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.terminate()
    for p in started:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def test_a_scrape_of_the_running_processes(tmp_path, mosquitto, procs):
    from sesame.dashboard.accounts import AccountStore

    priv, pub = generate_keypair(tmp_path / "keys")
    ctl = SimulatedController(pushes=True)
    hw = tmp_path / "hw.toml"
    hw.write_text(
        f'[reader]\ntype = "keyboard"\ndebounce_s = 0\n\n[controller]\nport = "{ctl.port}"\n'
        f'pass_timeout_s = 2\n\n[agent]\ndata_dir = "{tmp_path / "data"}"\npubkeys = ["{pub}"]\n'
        f'credentials = "{mosquitto.credentials("gate-" + GATE)}"\nheartbeat_s = 0.5\n'
    )
    accounts = tmp_path / "accounts.db"
    store = AccountStore(accounts)
    store.add_user("sophie", "safety", ACCOUNTS["sophie"][1])
    store.close()
    db = tmp_path / "sesame.db"
    pc, pg, pd, http = free_port(), free_port(), free_port(), free_port()
    # the counter on the day the lane's clock says (the venue's time is the counter's)
    clock = running_clock_file(tmp_path / "clock", datetime(2018, 11, 22, 12, 0, tzinfo=PARIS))
    procs.append(sesame("counter", "run", "--venue", str(VENUE_FILE), "--db", str(db),
                        "--credentials", str(mosquitto.credentials("counter")),
                        "--metrics-port", str(pc), "--clock-file", str(clock)))  # fmt: skip
    gate = sesame("gate", "run", "--venue", str(VENUE_FILE), "--gate", GATE, "--hardware",
                  str(hw), "--no-display", "--no-counter-clock", "--start-time",
                  "2018-11-22T12:00:00+01:00", "--metrics-port", str(pg),
                  stdin=subprocess.PIPE)  # fmt: skip
    procs.append(gate)
    until(lambda: db.exists(), what="the counter's database")
    procs.append(sesame("dashboard", "--venue", str(VENUE_FILE), "--db", str(db),
                        "--credentials", str(mosquitto.credentials("dashboard")),
                        "--accounts", str(accounts), "--port", str(http),
                        "--metrics-port", str(pd)))  # fmt: skip
    try:
        key = load_private_key(priv)
        tokens = [sign(Claims(f"M{i:03d}", "public", None), key) for i in range(3)]
        gate.stdin.write(("\n".join(tokens) + "\nnot a badge\n").encode())
        gate.stdin.flush()

        ev = ("sesame_counter_events_total", (("gate", GATE), ("kind", "passage")))
        until(lambda: scrape(pc)[ev] == 3, what="3 passages counted by the counter")
        c = scrape(pc)
        assert c[("sesame_counter_events_total", (("gate", GATE), ("kind", "denied")))] == 1
        assert c[("sesame_zone_occupancy_people", (("zone", "balcons"),))] == 3
        assert c[("sesame_zone_capacity_people", (("zone", "nef"),))] == 11000
        assert c[("sesame_counter_database_size_bytes", ())] > 10_000
        assert c[("sesame_counter_open_gaps_events", ())] == 0
        assert 0 <= c[("sesame_counter_ingest_lag_seconds", ())] < 5
        assert c[("sesame_counter_batches_total", ())] >= 1
        assert not any(k[0] == "sesame_counter_quarantined_total" and v for k, v in c.items())

        out = (("gate", GATE),)
        until(lambda: scrape(pg)[("sesame_gate_outbox_events", out)] == 0,
              what="the lane's outbox acknowledged")  # fmt: skip
        g = scrape(pg)
        granted = (("decision", "GRANTED"), ("gate", GATE), ("reason", ""))
        assert g[("sesame_gate_scans_total", granted)] == 3
        denied = (("decision", "DENIED"), ("gate", GATE), ("reason", "MALFORMED"))
        assert g[("sesame_gate_scans_total", denied)] == 1
        assert g[("sesame_gate_scan_to_open_seconds_count", out)] == 3
        assert 0 < g[("sesame_gate_scan_to_open_seconds_sum", out)] < 3
        assert g[("sesame_gate_link_state", (("gate", GATE), ("state", "connected")))] == 1
        assert g[("sesame_gate_controller_state", (("gate", GATE), ("state", "ok")))] == 1
        assert not any(k[0] == "sesame_gate_fault" for k in g)
        assert not any("badge" in dict(k[1]) for k in {**c, **g})  # no badge-id labels

        until(lambda: httpx.get(f"http://127.0.0.1:{http}/login").status_code == 200,
              what="the dashboard")  # fmt: skip
        with httpx.Client(base_url=f"http://127.0.0.1:{http}") as web:
            r = web.post("/login", json={"username": "sophie",
                                         "password": ACCOUNTS["sophie"][1]})  # fmt: skip
            assert r.status_code == 200
            assert web.get("/api/zones").status_code == 200
            assert web.get("/api/zones/nope").status_code in (404, 405)
            d = scrape(pd)
        assert d[("sesame_dashboard_sessions", ())] == 1
        assert d[("sesame_dashboard_http_responses_total", (("status", "200"),))] >= 3
        assert d[("sesame_dashboard_stream_clients", ())] == 0
    finally:
        ctl.close()
