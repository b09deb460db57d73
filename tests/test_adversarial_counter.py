"""Adversarial: hostile MQTT input against the counter (invariants 1, 2 and 4).

A real counter (counter.service.Counter) behind a real Mosquitto with the generated ACL gets
what a faulty or compromised lane can publish on its own events topic. Every bad message
must be quarantined with a reason; the counter must stay up and occupancy must not move.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timedelta

import pytest

from sesame.common import mqtt, wire
from sesame.common.venue import load_venue
from sesame.counter.service import Counter
from tests import waiting
from tests.fixtures.broker import VENUE_FILE
from tests.fixtures.counter import PARIS, Clock, RunningClock

VENUE = load_venue(VENUE_FILE)
T = wire.Topics(VENUE.id)
GATE = "churchill-in-1"
START = datetime(2018, 11, 22, 10, 0, tzinfo=PARIS)


def wait_for(cond, timeout=15.0, what="condition"):
    return waiting.wait_for(cond, timeout, what)


def event(seq: int, **over) -> dict:
    lane = VENUE.gates[GATE]
    ev = wire.Event(gate=GATE, epoch="adv1", seq=seq, ts=START + timedelta(seconds=seq % 1000),
                    kind="passage", from_zone=lane.from_zone, to_zone=lane.to_zone,
                    badge=f"B{seq:06d}", category="public")  # fmt: skip
    obj = json.loads(ev.to_json())
    obj.update(over)
    return obj


def hostile_payloads() -> list[tuple[bytes, str]]:
    """(payload, a word the quarantine reason must contain)."""
    # over the counter's limit (16 KiB), under the broker's (64 KiB): the counter must refuse
    # them itself (larger ones the broker cuts: tests/test_broker_packet_size.py)
    nested = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    return [
        (b"x" * (wire.MAX_PAYLOAD + 1), "too large"),
        (b"x" * 60_000, "too large"),
        (nested, "too large"),
        (b'{"v":1,' + b'"p":' * 3000 + b"1" + b"}" * 3000, "not JSON"),  # deep, under the limit
        (json.dumps({**event(100), "seq": float("nan")}).encode(), "JSON"),  # NaN: not JSON
        (json.dumps({**event(101), "ts": float("inf")}).encode(), "JSON"),
        (json.dumps(event(0)).encode(), "out of range"),  # seq 0
        (json.dumps(event(-5)).encode(), "out of range"),
        (json.dumps(event(2**64)).encode(), "out of range"),
        (json.dumps(event(7, to="salon-honneur")).encode(), "do not match lane"),
        (json.dumps(event(8, **{"from": "nef", "to": "outside"})).encode(), "do not match lane"),
        # a timestamp no clock can give: it must be refused, not crash the writer thread
        (json.dumps(event(9, ts="9999-12-31T23:59:59-14:00")).encode(), "ts"),
        (json.dumps(event(10, ts="0001-01-01T00:00:00+14:00")).encode(), "ts"),
        (json.dumps(event(11, ts="9999-12-31T23:59:59+00:00")).encode(), "ts"),
        (json.dumps(event(12, group_size=10**9)).encode(), "out of range"),
        (b"\xc0\xaf\x00\xff", "UTF-8"),
    ]


@pytest.fixture
def rig(mosquitto, tmp_path):
    counter = Counter(VENUE, tmp_path / "c.db", mosquitto.url("counter"), tick_s=0.2,
                      clock=RunningClock(START)).start()  # fmt: skip
    acks: list[wire.Ack] = []
    occ: dict[str, wire.Occupancy] = {}
    lock = threading.Lock()

    def on(msg):
        with lock:
            if msg.topic == T.ack(GATE):
                acks.append(wire.parse_ack(msg.payload))
            elif msg.topic.endswith("/occupancy"):
                o = wire.parse_occupancy(msg.payload)
                occ[o.zone] = o

    gate = mqtt.connect(
        mosquitto.url(f"gate-{GATE}"),
        "adv-gate",
        clean_start=True,
        session_expiry=0,
        subscriptions=[(T.ack(GATE), 1)],
        on_message=on,
    )
    watch = mqtt.connect(
        mosquitto.url("dashboard"),
        "adv-watch",
        clean_start=True,
        session_expiry=0,
        subscriptions=[(T.occupancy(), 1)],
        on_message=on,
    )
    try:
        yield counter, gate, acks, occ, tmp_path / "c.db"
    finally:
        gate.close()
        watch.close()
        counter.stop()


def _quarantine(db):
    with sqlite3.connect(db) as c:
        return c.execute("SELECT reason, size FROM quarantine ORDER BY id").fetchall()


def test_hostile_events_are_quarantined_and_the_counter_lives_on(rig):
    counter, gate, acks, occ, db = rig
    for seq in (1, 2, 3):
        gate.publish(T.events(GATE), json.dumps(event(seq)).encode()).wait_for_publish(5)
    wait_for(lambda: acks and acks[-1].seq == 3, what="ack of the three genuine passages")
    wait_for(lambda: "nef" in occ and occ["nef"].occupancy == 3, what="nef at 3")
    bad = hostile_payloads()
    for payload, _ in bad:
        gate.publish(T.events(GATE), payload, qos=1).wait_for_publish(5)
    wait_for(lambda: len(_quarantine(db)) >= len(bad) or not counter.running,
             what="every hostile payload quarantined")  # fmt: skip
    assert counter.running and counter.error is None, counter.error
    rows = _quarantine(db)
    assert len(rows) == len(bad)
    for (reason, size), (payload, word) in zip(rows, bad, strict=True):
        assert word in reason, (reason, payload[:80])
        assert size == len(payload)
    # nothing of that moved the count; the lane's next genuine passage still counts
    gate.publish(T.events(GATE), json.dumps(event(4)).encode()).wait_for_publish(5)
    wait_for(lambda: acks[-1].seq == 4, what="ack after the hostile burst")
    wait_for(lambda: occ["nef"].occupancy == 4, what="nef at 4")
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT count(*) FROM events").fetchone()[0] == 4


# -- event time running ahead of the counter's own clock --------------------------------


def test_an_event_from_a_clock_days_ahead_does_not_close_the_live_day(make_core, lanes):
    """On the day (wall clock 10:30 on 22 November), one lane whose clock jumped two days
    ahead sends a passage. The live day must stay the 22nd: occupancy of the hall is not
    reset, leases are not re-issued for another day (gates would refuse every entry) and
    the passage is either counted or quarantined with a reason, never dropped."""
    wall = Clock(datetime(2018, 11, 22, 10, 30, tzinfo=PARIS))
    core = make_core(clock=wall)
    core.startup()
    for _ in range(6):
        core.handle([lanes.event("in-1", ts=wall.t - timedelta(minutes=5))])
    assert core.book.live("hall") == 6
    ahead = lanes.make("in-2", ts=datetime(2018, 11, 23, 11, 0, tzinfo=PARIS))
    outs = core.handle([(lanes.topic("in-2"), ahead.to_json())])
    assert core.book.current == "2018-11-22"
    assert core.book.live("hall") >= 6
    for o in outs:
        if o.topic.endswith("/lease"):
            assert wire.parse_lease(o.payload).day == "2018-11-22", o.payload
    stored = core.store.conn.execute("SELECT count(*) FROM events").fetchone()[0]
    quarantined = core.store.conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    assert stored + quarantined == 7


@pytest.mark.parametrize("ts", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_extreme_timestamps_on_every_input_are_refused_with_a_reason(make_core, lanes, ts):
    """Status and corrections carry timestamps too; none may raise inside the batch."""
    core = make_core()
    core.startup()
    t = wire.Topics("testhall")
    status = json.loads(wire.GateStatus("in-1", True, 0, ts=START).to_json())
    corr = json.loads(
        wire.Correction("corr-0001", "hall", 5, "recount", "officer", START).to_json()
    )  # fmt: skip
    batch = [
        (t.gate_status("in-1"), json.dumps({**status, "ts": ts}).encode()),
        (t.gate_status("in-1"), json.dumps({**status, "last_scan": ts}).encode()),
        (t.corrections(), json.dumps({**corr, "ts": ts}).encode()),
        (t.zone_control("hall"), json.dumps({"v": 1, "state": "closed", "ts": ts}).encode()),
        (t.venue_control(), json.dumps({"v": 1, "mode": "evacuation", "ts": ts}).encode()),
    ]
    core.handle(batch)
    reasons = [r for (r,) in core.store.conn.execute("SELECT reason FROM quarantine")]
    assert len(reasons) == len(batch) and all("out of range" in r for r in reasons), reasons
    assert core.book.live("hall") == 0 and not core.evacuating and not core.closed_zones


def test_the_first_passage_of_a_fresh_counter_from_a_clock_ahead_is_not_fatal(make_core, lanes):
    """Morning of the first day, nothing received yet; the first lane to speak has a clock
    a day ahead. The passage must count toward today: raising here makes the service
    quarantine a genuine passage as an internal error and acknowledge it (lost count)."""
    wall = Clock(datetime(2018, 11, 22, 9, 30, tzinfo=PARIS))
    core = make_core(clock=wall)
    core.startup()
    ahead = lanes.make("in-1", ts=datetime(2018, 11, 23, 11, 0, tzinfo=PARIS))
    core.handle([(lanes.topic("in-1"), ahead.to_json())])
    core.handle([lanes.event("in-2", ts=wall.t)])
    assert core.book.current == "2018-11-22"
    assert core.book.live("hall") == 2
