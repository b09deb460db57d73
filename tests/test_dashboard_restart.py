"""The dashboard survives what happens on the day: `kill -9` of the dashboard keeps the
audit log and rebuilds the live view from retained messages; a broker restart is ridden
out, and an action taken while the broker is down is said to be queued, then delivered."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime

import httpx

from sesame.common import mqtt, wire
from sesame.common.net import free_port
from tests.fixtures.dashboard import REPO, VENUE_FILE, sign_in, wait_for

TOPICS = wire.Topics("grand-palais")


def spawn(mosquitto, accounts, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sesame",
            "dashboard",
            "--venue",
            str(VENUE_FILE),
            "--accounts",
            str(accounts),
            # the credential file alone names the broker, as `sesame broker setup` writes it
            "--credentials",
            str(mosquitto.credentials("dashboard")),
            "--port",
            str(port),
        ],  # fmt: skip
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def up():
        try:
            return httpx.get(f"http://127.0.0.1:{port}/login", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, 60, "the dashboard to serve")  # a cold start on a loaded machine
    except BaseException:
        proc.kill()  # never leave a dashboard behind the test
        proc.wait(10)
        raise
    return proc


def test_kill_9_keeps_the_audit_and_rebuilds_state(mosquitto, dashboard_accounts):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = spawn(mosquitto, dashboard_accounts, port)
    try:
        c = sign_in(url, "safety")
        r = c.post("/api/zones/balcons/close", json={"reason": "stairs blocked"},
                   headers=c.csrf_header)  # fmt: skip
        assert r.status_code == 200
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc = spawn(mosquitto, dashboard_accounts, port)
        # sessions are not kept across a restart: sign in again
        assert c.get("/api/audit").status_code == 401
        c = sign_in(url, "safety")
        (entry,) = c.get("/api/audit").json()["entries"]
        assert (entry["action"], entry["target"], entry["reason"], entry["outcome"]) == (
            "close_zone", "balcons", "stairs blocked", "published")  # fmt: skip
        zone = lambda: next(z for z in c.get("/api/zones").json()["zones"]  # noqa: E731
                            if z["id"] == "balcons")  # fmt: skip
        wait_for(lambda: zone()["control"] == "closed", what="the retained control state")
    finally:
        proc.kill()
        proc.wait(10)


def test_broker_restart_and_an_action_while_it_is_down(mosquitto, dashboard, signed_in):
    c = signed_in("safety")
    mosquitto.stop()
    wait_for(lambda: dashboard.dashboard.state.broker["state"] != "connected",
             what="the dashboard to notice the broker is gone")  # fmt: skip
    r = c.post("/api/zones/nef/close", json={"reason": "crowd at the doors"},
               headers=c.csrf_header)  # fmt: skip
    assert r.status_code == 202 and r.json()["outcome"] == "queued"
    assert c.get("/api/audit").json()["entries"][0]["outcome"] == "queued"
    mosquitto.start()
    wait_for(lambda: dashboard.dashboard.state.broker["state"] == "connected", 40,
             "the dashboard to reconnect")  # fmt: skip
    got = threading.Event()
    seen: list[bytes] = []

    def on(m):
        seen.append(m.payload)
        got.set()

    w = mqtt.connect(mosquitto.url("counter"), "", clean_start=True, session_expiry=0,
                     subscriptions=[(TOPICS.zone_control("nef"), 1)], on_message=on)  # fmt: skip
    try:
        assert got.wait(10), "the queued close never reached the broker"
        assert wire.parse_zone_control(seen[0]).state == "closed"
    finally:
        w.close()
    # the audit log now says when it left
    wait_for(lambda: c.get("/api/audit").json()["entries"][0]["outcome"] == "published late",
             what="the audit outcome of the queued action")  # fmt: skip
    # and live updates flow again
    pub = mqtt.connect(mosquitto.url("counter"), "counter-after")
    occ = wire.Occupancy("nef", 42, 11000, "closed", datetime.now(UTC))
    pub.publish(TOPICS.occupancy("nef"), occ.to_json(), 1, True)
    try:
        wait_for(lambda: c.get("/api/zones").json()["zones"][0]["occupancy"] == 42,
                 what="an update after the restart")  # fmt: skip
    finally:
        pub.close()
