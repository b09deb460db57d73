"""The gate's MQTT link against a real Mosquitto (the project's generated config): events
drained until the counter acks, status and Last Will, refused credentials and refused
publishes, and a broker killed and restarted while 500 passages are made."""

from __future__ import annotations

import threading
import time

import pytest

from sesame.common import mqtt, wire
from sesame.common.reasons import Reason
from sesame.gate.agent import GateAgent
from sesame.gate.turnstile import MemoryTurnstile

VENUE_ID = "grand-palais"
T = wire.Topics(VENUE_ID)


def until(cond, timeout=20.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


class Acker:
    """A minimal stand-in for the counter's ingest: records every event received and
    acknowledges (retained `gates/<gate>/ack`) the contiguous prefix it holds."""

    def __init__(self, url, ack=True):
        self.ids: list[str] = []
        self.seqs: dict[str, set[int]] = {}
        self.statuses: list[wire.GateStatus] = []
        self.ack = ack
        self._lock = threading.Lock()
        self.conn = mqtt.connect(
            url,
            "test-acker",
            clean_start=False,
            subscriptions=[(T.events(), 1), (T.gate_status(), 1)],
            on_message=self._msg,
        )

    def _msg(self, m):
        if m.topic.endswith("/status"):
            st = wire.parse_gate_status(m.payload)
            if st:
                self.statuses.append(st)
            return
        ev = wire.parse_event(m.payload)
        assert ev, ev
        with self._lock:
            self.ids.append(ev.id)
            got = self.seqs.setdefault(ev.epoch, set())
            got.add(ev.seq)
            n = 0
            while n + 1 in got:
                n += 1
        if self.ack:
            self.conn.publish(T.ack(ev.gate), wire.Ack(ev.epoch, n).to_json(), 1, True)

    def unique(self):
        with self._lock:
            return set(self.ids)

    def close(self):
        self.conn.close(timeout=1)


@pytest.fixture
def lane(gp_venue, badge_keys, tmp_path, gate_clock):
    made = []

    def make(gate="churchill-in-1", **kw):
        kw.setdefault("clock", gate_clock)
        kw.setdefault("turnstile", MemoryTurnstile())
        kw.setdefault("heartbeat", 0.5)
        a = GateAgent(gp_venue, gate, data_dir=tmp_path / gate, keys=badge_keys, **kw)
        made.append(a)
        a.start()
        return a

    yield make
    for a in made:
        if a.state == "running":
            a.stop()


def give_lease(url, gate, n):
    with mqtt.connect(url, "test-lease", clean_start=True) as c:
        c.publish(T.lease(gate), wire.Lease(gate, "2018-11-22", {"nef": n}, 1).to_json(), 1, True)


def test_events_drain_until_acked_with_status_and_will(mosquitto, lane, make_token):
    acker = Acker(mosquitto.url("counter"))
    try:
        give_lease(mosquitto.url("counter"), "churchill-in-1", 10)
        a = lane(broker_url=mosquitto.url("gate-churchill-in-1"))
        assert until(lambda: a.lease is not None and a.online)
        for i in range(5):
            assert a.handle_scan(make_token(f"B{i}")).granted
        assert a.handle_scan("garbage").reason == Reason.MALFORMED
        assert until(lambda: len(acker.unique()) == 6 and a.outbox_depth() == 0)
        assert acker.unique() == {f"churchill-in-1:{a.outbox.epoch}:{s}" for s in range(1, 7)}
        assert until(lambda: any(s.online and s.epoch == a.outbox.epoch for s in acker.statuses))
        # the status confirms the lease serial it acts on, with an empty outbox, so the
        # counter may reclaim allowance
        assert until(lambda: any(s.lease_serial == 1 and s.outbox == 0 for s in acker.statuses))
        # the lane dies without a word: the broker publishes its Last Will
        a.kill()
        assert until(lambda: acker.statuses and not acker.statuses[-1].online, timeout=40)
    finally:
        acker.close()


def test_unacknowledged_events_are_published_again(mosquitto, lane, make_token):
    silent = Acker(mosquitto.url("counter"), ack=False)
    try:
        give_lease(mosquitto.url("counter"), "churchill-in-1", 10)
        a = lane(broker_url=mosquitto.url("gate-churchill-in-1"), ack_timeout=0.5)
        assert until(lambda: a.lease is not None)
        for i in range(3):
            a.handle_scan(make_token(f"B{i}"))
        # no ack comes back: the same ids arrive again, the outbox keeps them
        assert until(lambda: len(silent.ids) >= 6)
        assert len(silent.unique()) == 3 and a.outbox_depth() == 3
    finally:
        silent.close()


def test_refused_credentials_shown_and_the_lane_keeps_deciding(mosquitto, lane, make_token):
    a = lane("balcons-up-1", broker_url=mosquitto.url("gate-balcons-up-1", password="wrong"))
    assert until(lambda: "CREDENTIALS_REFUSED" in a.faults(), timeout=10)
    assert not a.online
    assert a.handle_scan(make_token()).granted  # balcons: offline_policy "open"
    assert a.outbox_depth() == 1


def test_publish_refused_by_the_acl_is_a_fault_never_a_delivery(mosquitto, lane, make_token):
    acker = Acker(mosquitto.url("counter"))
    try:
        # a lane started with another lane's credential file: its events are refused (MQTT 5)
        a = lane("balcons-up-1", credentials=mosquitto.credentials("gate-balcons-up-2"))
        assert until(lambda: a.online)
        assert a.handle_scan(make_token()).granted
        assert until(lambda: "PUBLISH_REFUSED" in a.faults(), timeout=10)
        assert a.link.last_refusal == 135
        time.sleep(0.5)
        assert acker.ids == [] and a.outbox_depth() == 1
    finally:
        acker.close()


def test_broker_killed_and_restarted_during_500_passages(mosquitto, lane, make_token):
    acker = Acker(mosquitto.url("counter"))
    try:
        give_lease(mosquitto.url("counter"), "churchill-in-1", 1000)
        a = lane(broker_url=mosquitto.url("gate-churchill-in-1"), ack_timeout=2.0)
        assert until(lambda: a.lease is not None and a.online)
        tokens = [make_token(f"P{i:04d}") for i in range(500)]
        for i, tok in enumerate(tokens):
            if i == 200:
                mosquitto.kill()  # SIGKILL: whatever it had queued is gone
                assert until(lambda: not a.online, timeout=10)
            if i == 300:
                assert a.outbox_depth() >= 100  # kept while the broker is away
                mosquitto.start()
            assert a.handle_scan(tok).granted
        want = {f"churchill-in-1:{a.outbox.epoch}:{s}" for s in range(1, 501)}
        assert until(lambda: acker.unique() >= want and a.outbox_depth() == 0, timeout=90), (
            f"missing {len(want - acker.unique())}, outbox {a.outbox_depth()}"
        )
        assert acker.unique() == want
    finally:
        acker.close()
