"""The running counter against a real Mosquitto (the project's generated config and ACL):
commit-before-ack, retained occupancy/ack/lease/status, quarantine, Last Will, and a
`kill -9` of the counter process mid-stream with every event stored exactly once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from sesame.common import mqtt, wire
from sesame.common.venue import load_venue
from sesame.counter.service import Counter
from tests import waiting
from tests.fixtures.counter import PARIS, RunningClock, running_clock_file

REPO = Path(__file__).resolve().parents[1]
VENUE_FILE = REPO / "config" / "grand-palais.toml"
VENUE = load_venue(VENUE_FILE)
T = wire.Topics(VENUE.id)
START = datetime(2018, 11, 22, 9, 0, tzinfo=PARIS)


def wait_for(cond, timeout=20.0, what="condition"):
    return waiting.wait_for(cond, timeout, what)


class Watcher:
    """A dashboard-side subscriber collecting the latest payload per topic."""

    def __init__(self, url, topics):
        self.last: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.conn = mqtt.connect(url, f"watch-{os.getpid()}-{id(self)}", clean_start=True,
                                 session_expiry=0, subscriptions=[(t, 1) for t in topics],
                                 on_message=self._on)  # fmt: skip

    def _on(self, msg):
        with self.lock:
            self.last[msg.topic] = msg.payload

    def get(self, topic):
        with self.lock:
            return self.last.get(topic)


class GateSim:
    """A lane with an outbox: re-publishes whatever the counter's ack does not cover yet."""

    def __init__(self, url, gate, epoch="ep1"):
        self.gate, self.epoch = gate, epoch
        lane = VENUE.gates[gate]
        self.lane = lane
        self.outbox: dict[int, bytes] = {}
        self.acked = 0
        self.seq = 0
        self.lock = threading.Lock()
        self.conn = mqtt.connect(
            url, f"sim-{gate}", clean_start=True, session_expiry=0,
            subscriptions=[(T.ack(gate), 1)], on_message=self._on_ack,
        )  # fmt: skip

    def _on_ack(self, msg):
        a = wire.parse_ack(msg.payload)
        if a and a.epoch == self.epoch:
            with self.lock:
                self.acked = max(self.acked, a.seq)
                for s in [s for s in self.outbox if s <= a.seq]:
                    del self.outbox[s]

    def passage(self, n=1, payload_gate=None):
        for _ in range(n):
            self.seq += 1
            badge = None if not self.lane.reader else f"B{self.seq:06d}"
            ev = wire.Event(gate=self.gate, epoch=self.epoch, seq=self.seq,
                            ts=START + timedelta(seconds=self.seq), kind="passage",
                            from_zone=self.lane.from_zone, to_zone=self.lane.to_zone,
                            badge=badge, category="public" if badge else None)  # fmt: skip
            data = ev.to_json()
            with self.lock:
                self.outbox[self.seq] = data
            self.conn.publish(T.events(self.gate), data, qos=1)

    def replay(self):
        with self.lock:
            pending = sorted(self.outbox.items())
        for _, data in pending:
            self.conn.publish(T.events(self.gate), data, qos=1)

    def close(self):
        self.conn.close()


def test_counter_service_end_to_end(mosquitto, tmp_path):
    watch = Watcher(mosquitto.url("dashboard"), [T.occupancy(), T.counter_status(), T.lease()])
    counter = Counter(VENUE, tmp_path / "c.db", mosquitto.url("counter"),
                      clock=RunningClock(START)).start()  # fmt: skip
    gate = GateSim(mosquitto.url("gate-churchill-in-1"), "churchill-in-1")
    out = GateSim(mosquitto.url("gate-churchill-out-1"), "churchill-out-1")
    try:
        wait_for(lambda: watch.get(T.counter_status()), what="counter status")
        st = wire.parse_counter_status(watch.get(T.counter_status()))
        assert st.online and st.clock is not None
        gate.passage(30)
        out.passage(4)
        wait_for(lambda: gate.acked == 30 and out.acked == 4, what="end-to-end acks")
        nef = T.occupancy("nef")
        wait_for(lambda: watch.get(nef) and wire.parse_occupancy(watch.get(nef)).occupancy == 26,
                 what="nef occupancy 26")  # fmt: skip
        occ = wire.parse_occupancy(watch.get(nef))
        assert (occ.capacity, occ.state) == (11000, "open")
        # leases for entry lanes only, retained for gates that connect later
        wait_for(lambda: watch.get(T.lease("churchill-in-2")), what="lease")
        assert wire.parse_lease(watch.get(T.lease("churchill-in-2"))).grants == {
            "nef": VENUE.leases.initial
        }
        assert watch.get(T.lease("churchill-out-1")) is None
        # an open-policy zone is leased too: its capacity holds while its lanes are online
        assert wire.parse_lease(watch.get(T.lease("balcons-up-1"))).grants == {
            "balcons": VENUE.leases.initial
        }
        # garbage and a spoofed gate id on the lane's own topic: quarantined, counter alive
        gate.conn.publish(T.events("churchill-in-1"), b"\x00not json", qos=1)
        spoof = wire.Event(gate="churchill-in-2", epoch="x", seq=1, ts=START, kind="passage",
                           from_zone="outside", to_zone="nef", badge="B1").to_json()  # fmt: skip
        gate.conn.publish(T.events("churchill-in-1"), spoof, qos=1)
        db = tmp_path / "c.db"

        def quarantined():
            with sqlite3.connect(db) as c:
                return c.execute("SELECT count(*) FROM quarantine").fetchone()[0]

        wait_for(lambda: quarantined() == 2, what="quarantine rows")
        gate.passage(1)
        wait_for(lambda: gate.acked == 31, what="ack after garbage")
        assert counter.running and counter.error is None
    finally:
        gate.close()
        out.close()
        counter.stop()
    wait_for(lambda: not wire.parse_counter_status(watch.get(T.counter_status())).online,
             what="status offline after stop")  # fmt: skip
    watch.conn.close()
    with sqlite3.connect(tmp_path / "c.db") as c:
        assert c.execute("SELECT count(*) FROM events").fetchone()[0] == 35


def test_last_will_when_the_counter_dies(mosquitto, tmp_path):
    watch = Watcher(mosquitto.url("dashboard"), [T.counter_status()])
    proc = _spawn_counter(mosquitto, tmp_path)
    try:
        wait_for(lambda: watch.get(T.counter_status())
                 and wire.parse_counter_status(watch.get(T.counter_status())).online,
                 what="counter online")  # fmt: skip
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # keepalive 15 s: the broker publishes the will after 1.5 keepalives at most
        wait_for(lambda: not wire.parse_counter_status(watch.get(T.counter_status())).online,
                 timeout=30, what="Last Will")  # fmt: skip
    finally:
        proc.kill()
        watch.conn.close()


def _spawn_counter(mosquitto, tmp_path):
    """`sesame counter run` on the simulated time of the morning replayed: a clock file that
    runs with real time, as a simulator keeps it, from START + 11 min: after every stamp the
    GateSims below write (one a second per lane, up to 600), so their passages arrive as
    deliveries of the past minutes at a turnstile's pace, neither ahead of the counter's clock
    nor a burst."""
    if not (tmp_path / "clock").exists():
        running_clock_file(tmp_path / "clock", START + timedelta(minutes=11))
    log = open(tmp_path / "counter.log", "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "sesame", "counter", "run", "--venue", str(VENUE_FILE),
         "--db", str(tmp_path / "c.db"), "--broker", mosquitto.url("counter"),
         "--clock-file", str(tmp_path / "clock")],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.mark.timeout(180)
def test_kill_9_mid_stream_stores_every_event_exactly_once(mosquitto, tmp_path):
    gates = ["churchill-in-1", "churchill-in-2", "clemenceau-in-1", "churchill-out-1",
             "salon-in-1"]  # fmt: skip
    sims = [GateSim(mosquitto.url(f"gate-{g}"), g) for g in gates]
    per_gate = 600
    db = tmp_path / "c.db"

    def stored():
        if not db.exists():
            return 0
        try:
            with sqlite3.connect(db, timeout=5) as c:
                return c.execute("SELECT count(*) FROM events").fetchone()[0]
        except sqlite3.OperationalError:
            return 0

    watch = Watcher(mosquitto.url("dashboard"), [T.counter_status()])
    proc = _spawn_counter(mosquitto, tmp_path)
    try:
        wait_for(lambda: watch.get(T.counter_status())
                 and wire.parse_counter_status(watch.get(T.counter_status())).online,
                 what="counter online")  # fmt: skip
        stop = threading.Event()

        def produce():
            for _ in range(per_gate // 10):
                for s in sims:
                    s.passage(10)
                time.sleep(0.05)
            stop.set()

        producer = threading.Thread(target=produce)
        producer.start()
        wait_for(lambda: stored() >= 500, timeout=60, what="first events stored")
        proc.send_signal(signal.SIGKILL)  # mid-stream
        proc.wait(10)
        killed_at = stored()
        producer.join()
        assert killed_at < per_gate * len(gates)  # it really died mid-stream
        proc = _spawn_counter(mosquitto, tmp_path)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all(s.acked == per_gate for s in sims):
                break
            for s in sims:  # the outboxes re-publish what is not acknowledged yet
                s.replay()
            time.sleep(1.0)
        assert [s.acked for s in sims] == [per_gate] * len(gates)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        for s in sims:
            s.close()
        watch.conn.close()
    with sqlite3.connect(db) as c:
        n, distinct = c.execute("SELECT count(*), count(DISTINCT id) FROM events").fetchone()
        per = dict(c.execute("SELECT gate, count(*) FROM events GROUP BY gate"))
        gaps = c.execute("SELECT gate, committed, above FROM gate_seqs").fetchall()
    assert n == distinct == per_gate * len(gates)
    assert per == dict.fromkeys(gates, per_gate)
    assert all(committed == per_gate and above == "[]" for _, committed, above in gaps)
    # the occupancy rebuilt after the restart is exact
    from sesame.counter.queries import zone_occupancy

    occ = {r["zone"]: r["occupancy"] for r in zone_occupancy(db, VENUE)}
    assert occ == {"nef": 3 * per_gate - per_gate - per_gate, "salon-honneur": per_gate,
                   "balcons": 0}  # fmt: skip


def test_counter_reconnects_after_a_broker_restart(mosquitto, tmp_path):
    counter = Counter(VENUE, tmp_path / "c.db", mosquitto.url("counter"),
                      clock=RunningClock(START)).start()  # fmt: skip
    gate = GateSim(mosquitto.url("gate-churchill-in-1"), "churchill-in-1")
    try:
        gate.passage(5)
        wait_for(lambda: gate.acked == 5, what="acks before restart")
        gate.close()
        mosquitto.restart()
        gate = GateSim(mosquitto.url("gate-churchill-in-1"), "churchill-in-1")
        gate.seq = 5
        gate.passage(5)
        deadline = time.monotonic() + 40
        while gate.acked < 10 and time.monotonic() < deadline:
            gate.replay()  # the outbox re-publishes until acknowledged
            time.sleep(0.5)
        assert gate.acked == 10
        assert counter.running and counter.error is None
        assert any(s == "disconnected" for s, _ in counter.connection_events)
    finally:
        gate.close()
        counter.stop()
    with sqlite3.connect(tmp_path / "c.db") as c:
        assert c.execute("SELECT count(*) FROM events").fetchone()[0] == 10


def test_a_message_that_breaks_the_core_is_quarantined_not_fatal(mosquitto, tmp_path, monkeypatch):
    real = wire.parse_event

    def fragile(payload):  # stands for a bug the validation did not foresee
        if b"B000003" in bytes(payload):
            raise RuntimeError("unforeseen")
        return real(payload)

    monkeypatch.setattr(wire, "parse_event", fragile)
    counter = Counter(VENUE, tmp_path / "c.db", mosquitto.url("counter"),
                      clock=RunningClock(START)).start()  # fmt: skip
    gate = GateSim(mosquitto.url("gate-churchill-in-1"), "churchill-in-1")
    try:
        gate.passage(6)
        wait_for(lambda: gate.acked == 6, what="acks past the poison message")
        assert counter.running and counter.error is None
        assert counter.core.book.live("nef") == 5  # the other five, each once
    finally:
        gate.close()
        counter.stop()
    with sqlite3.connect(tmp_path / "c.db") as c:
        assert c.execute("SELECT count(*) FROM events").fetchone()[0] == 5
        (reason,) = c.execute("SELECT reason FROM quarantine").fetchone()
    assert "internal error" in reason and "unforeseen" in reason
