"""One badge, one admission, whatever the lane (issue 12, attack 4): the venue-wide memory
of who is inside, through a real Mosquitto with the generated ACL and each lane's own
account. The counter republishes every stored badge passage on counter/admissions; entry
lanes keep them in their outbox database, so ALREADY_INSIDE and group badges hold across
lanes, across a lane's restart, and after a cut-off lane reconnects; two cut-off lanes that
both admit a badge inside raise DOUBLE_ADMISSION on counter/alerts."""

from __future__ import annotations

import json
import queue
import time
from datetime import datetime

import pytest

from sesame.common.mqtt import connect
from sesame.common.reasons import Reason
from sesame.common.wire import Topics
from sesame.common.wire.admissions import Admission, Admissions, parse_admissions
from sesame.counter.service import Counter
from sesame.gate.agent import GateAgent
from sesame.gate.turnstile import MemoryTurnstile
from sesame.run.proxy import CuttableLink

T = Topics("grand-palais")
A, B = "churchill-in-1", "churchill-in-2"


def until(cond, timeout=15.0, step=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


class Lanes:
    def __init__(self, venue, broker, keys, clock, tmp_path):
        self.venue, self.broker, self.keys = venue, broker, keys
        self.clock, self.tmp = clock, tmp_path
        self.agents: dict[str, GateAgent] = {}
        self.relays: dict[str, CuttableLink] = {}
        self.counter: Counter | None = None

    def start(self, gate: str, *, online: bool = True, relay: bool = False,
              heartbeat: float = 0.5) -> GateAgent:  # fmt: skip
        url = self.broker.url(f"gate-{gate}")
        if relay:
            r = self.relays.get(gate) or CuttableLink(self.broker.host, self.broker.port)
            self.relays[gate] = r
            url = url.replace(f":{self.broker.port}", f":{r.port}")
        agent = GateAgent(
            self.venue, gate, data_dir=self.tmp / gate, keys=self.keys,
            broker_url=url if online else None, turnstile=MemoryTurnstile(), clock=self.clock,
            heartbeat=heartbeat, ack_timeout=1.0,
        )  # fmt: skip
        agent.start()
        self.agents[gate] = agent
        return agent

    def leased(self, agent: GateAgent, need: int = 1) -> bool:
        return until(lambda: (agent.lease_left("nef", self.clock().date()) or 0) >= need)

    def close(self):
        for a in self.agents.values():
            if a.state == "running":
                a.stop()
        for r in self.relays.values():
            r.close()


@pytest.fixture
def venue_lanes(mosquitto, gp_venue, badge_keys, gate_clock, tmp_path):
    counter = Counter(gp_venue, tmp_path / "counter.db", mosquitto.url("counter"),
                      clock=gate_clock, tick_s=0.2).start()  # fmt: skip
    lanes = Lanes(gp_venue, mosquitto, badge_keys, gate_clock, tmp_path)
    lanes.counter = counter
    try:
        yield counter, lanes
    finally:
        lanes.close()
        lanes.counter.stop()


def _knows(agent: GateAgent, badge: str, clock) -> bool:
    return agent.outbox.seen(badge, "nef", clock().date()).last_in is not None


def test_the_next_lane_denies_a_badge_inside_within_a_second(venue_lanes, make_token, gate_clock):
    _, lanes = venue_lanes
    # a long heartbeat: the live message, not the lane's next status, must bring the news
    a, b = lanes.start(A), lanes.start(B, heartbeat=60)
    assert lanes.leased(a) and lanes.leased(b)
    live: queue.Queue = queue.Queue()
    watcher = connect(lanes.broker.url("dashboard"), "watch-live", clean_start=True,
                      subscriptions=[(T.admissions(), 1)],
                      on_message=lambda m: live.put(parse_admissions(m.payload)))  # fmt: skip
    assert watcher.wait_subscribed(10)
    token = make_token("B000101", "public")
    try:
        assert a.handle_scan(token).granted
        t0 = time.monotonic()
        assert until(lambda: _knows(b, "B000101", gate_clock), timeout=5, step=0.005)
        assert time.monotonic() - t0 < 1.0, "the other lane heard of the admission too late"
        # the news travelled on the live topic, one message per stored batch
        msg = live.get(timeout=1)
        assert [(x.badge, x.gate, x.to_zone) for x in msg.items] == [("B000101", A, "nef")]
    finally:
        watcher.close()
    dec = b.handle_scan(token)
    assert not dec.granted and dec.reason is Reason.ALREADY_INSIDE
    # another badge still passes at that lane: the memory is per badge
    assert b.handle_scan(make_token("B000102", "public")).granted


def test_a_group_badge_of_30_used_at_one_lane_is_refused_at_the_next(
    venue_lanes, make_token, gate_clock
):
    _, lanes = venue_lanes
    a, b = lanes.start(A), lanes.start(B)
    assert lanes.leased(a, 30) and lanes.leased(b, 30)
    token = make_token("S000030", "school", group=30)
    first = a.handle_scan(token)
    assert first.granted and first.passages == 30
    assert until(lambda: _knows(b, "S000030", gate_clock), timeout=5)
    again = b.handle_scan(token)
    assert not again.granted and again.reason is Reason.ALREADY_INSIDE
    assert b.outbox.counts(gate_clock().date())["passage"] == 0  # not one pupil more


def test_a_restarted_lane_keeps_the_memory_and_catches_up(venue_lanes, make_token, gate_clock):
    _, lanes = venue_lanes
    a, b = lanes.start(A), lanes.start(B)
    assert lanes.leased(a) and lanes.leased(b)
    seen_before = make_token("B000201")
    assert a.handle_scan(seen_before).granted
    assert until(lambda: _knows(b, "B000201", gate_clock), timeout=5)
    b.stop()
    # restarted without a network: it still remembers what it heard
    b = lanes.start(B, online=False)
    dec = b.handle_scan(seen_before)
    assert not dec.granted and dec.reason is Reason.ALREADY_INSIDE
    b.stop()
    # admitted elsewhere while this lane was away: it learns it when it reconnects
    missed = [make_token(f"B00030{i}") for i in range(3)]
    for tok in missed:
        assert a.handle_scan(tok).granted
    b = lanes.start(B)
    assert until(lambda: all(_knows(b, f"B00030{i}", gate_clock) for i in range(3)), timeout=10)
    for tok in missed:
        dec = b.handle_scan(tok)
        assert not dec.granted and dec.reason is Reason.ALREADY_INSIDE


def _alerts(broker):
    got: queue.Queue = queue.Queue()
    conn = connect(broker.url("dashboard"), "watch-alerts", clean_start=True,
                   subscriptions=[(T.alerts(), 1)],
                   on_message=lambda m: got.put(json.loads(m.payload)))  # fmt: skip
    assert conn.wait_subscribed(10)
    return conn, got


def test_two_cut_off_lanes_admitting_one_badge_raise_double_admission(
    venue_lanes, mosquitto, make_token, gate_clock
):
    counter, lanes = venue_lanes
    a, b = lanes.start(A, relay=True), lanes.start(B, relay=True)
    assert lanes.leased(a) and lanes.leased(b)
    for gate in (A, B):
        lanes.relays[gate].cut()
    assert until(lambda: not a.online and not b.online)
    token = make_token("P000401", "professional")
    assert a.handle_scan(token).granted
    gate_clock.advance(minutes=2)
    assert b.handle_scan(token).granted  # neither lane could know of the other
    watcher, got = _alerts(mosquitto)
    try:
        for gate in (A, B):
            lanes.relays[gate].heal()
        assert until(lambda: a.outbox_depth() == 0 and b.outbox_depth() == 0, timeout=20)
        found = None
        deadline = time.monotonic() + 10
        while found is None and time.monotonic() < deadline:
            try:
                msg = got.get(timeout=0.2)
            except queue.Empty:
                continue
            found = next((x for x in msg["alerts"] if x["kind"] == "DOUBLE_ADMISSION"), None)
        assert found is not None, "no DOUBLE_ADMISSION on counter/alerts"
        assert found["subject"] == B  # the lane that admitted second
        d = found["detail"]
        assert d["lanes"] == [A, B] and d["badge"] == "P000401"
        assert d["category"] == "professional" and d["zone"] == "nef"
        assert token not in json.dumps(found)  # the badge's token never leaves the lanes
        # both lanes now know it: a third try is refused at either
        assert until(lambda: _knows(a, "P000401", gate_clock) and _knows(b, "P000401", gate_clock))
    finally:
        watcher.close()
    # the finding is stored: a restarted counter still shows it
    counter.stop()
    lanes.counter = Counter(counter.venue, counter.db_path, mosquitto.url("counter"),
                            clock=gate_clock).start()  # fmt: skip
    assert lanes.counter.core.findings.get("DOUBLE_ADMISSION", B) is not None


@pytest.fixture(params=["mosquitto", "embedded_broker", "nats_cluster"])
def any_broker(request):
    return request.getfixturevalue(request.param)


def test_a_gate_cannot_publish_admissions(any_broker):
    """Only the counter speaks on the admissions topics: a lane's forgery reaches nobody
    (on Mosquitto over MQTT 5 the lane is also told: reason code 135)."""
    broker = any_broker
    at = datetime.fromisoformat("2018-11-22T12:00:00+01:00")
    forged = Admissions("2018-11-22", 0, 10**9, (
        Admission(f"{B}:e1:1", B, "B000001", "outside", "nef", at),)).to_json()  # fmt: skip
    watcher_got: queue.Queue = queue.Queue()
    watcher = connect(broker.url("dashboard"), "watch-adm", clean_start=True,
                      subscriptions=[(f"{T.root}/#", 1)],
                      on_message=lambda m: watcher_got.put((m.topic, m.payload)))  # fmt: skip
    refused = []
    thief = connect(broker.url(f"gate-{A}"), "gate-a-adm", clean_start=True,
                    on_refused=lambda mid, code: refused.append(code))  # fmt: skip
    try:
        assert watcher.wait_subscribed(10)
        for topic in (T.admissions(), T.lane_admissions(B), T.lane_admissions(A)):
            thief.publish(topic, forged).wait_for_publish(5)
        marker = f"marker-{time.monotonic()}".encode()
        thief.publish(T.gate_status(A), marker).wait_for_publish(5)
        seen = []
        deadline = time.monotonic() + 10
        while not any(p == marker for _, p in seen) and time.monotonic() < deadline:
            try:
                seen.append(watcher_got.get(timeout=0.05))
            except queue.Empty:
                pass
        assert any(p == marker for _, p in seen), "the marker never arrived"
        assert [t for t, p in seen if p == forged] == []
        if type(broker).__name__ == "MosquittoProcess":
            assert thief.protocol == "5"
            assert until(lambda: len(refused) == 3, timeout=5) and set(refused) == {135}
    finally:
        thief.close()
        watcher.close()


def test_a_stolen_lane_cannot_mark_registered_badges_inside(venue_lanes, make_token, gate_clock,
                                                             tmp_path):  # fmt: skip
    """A lane's credential in the wrong hands speaks only through its own passages: a claim
    the lane could not have made (a category the badge is not registered under, a category
    the venue does not have) is counted as the lane said but is not republished, so no other
    lane refuses that badge."""
    from sesame.common import wire
    from sesame.counter.registry import import_manifest

    counter, lanes = venue_lanes
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("badge_id,token,category\nP000501,x,professional\nP000502,y,public\n",
                        encoding="utf-8")  # fmt: skip
    import_manifest(counter.db_path, manifest)
    b = lanes.start(B)
    assert lanes.leased(b)
    thief = connect(lanes.broker.url("gate-churchill-in-3"), "stolen-in-3", clean_start=True)
    try:
        for seq, (badge, cat) in enumerate([("P000501", "public"), ("P000502", "vip"),
                                            ("P000502", "public")], 1):  # fmt: skip
            ev = wire.Event(gate="churchill-in-3", epoch="st0len", seq=seq, ts=gate_clock(),
                            kind="passage", from_zone="outside", to_zone="nef", badge=badge,
                            category=cat)  # fmt: skip
            thief.publish(T.events("churchill-in-3"), ev.to_json(), qos=1).wait_for_publish(5)
        # the one claim the lane could have made (registered category) reaches lane B
        assert until(lambda: _knows(b, "P000502", gate_clock), timeout=5)
    finally:
        thief.close()
    assert not _knows(b, "P000501", gate_clock)
    assert b.handle_scan(make_token("P000501", "professional")).granted


def test_a_new_lane_hears_the_whole_day_in_chained_replays(venue_lanes, gate_clock):
    """A lane installed (or restored) mid-day starts with nothing: the counter replays the
    day's admissions in chunks of 500, the lane asking for the next one at once."""
    from datetime import timedelta

    from sesame.common import wire

    counter, lanes = venue_lanes
    per_lane, step = 600, timedelta(seconds=1.5)  # 40 a minute: a speed gate's pace
    start = gate_clock() - per_lane * step
    for gate in ("churchill-in-3", "churchill-in-4"):
        pub = connect(lanes.broker.url(f"gate-{gate}"), f"bulk-{gate}", clean_start=True)
        try:
            for seq in range(1, per_lane + 1):
                ev = wire.Event(gate=gate, epoch="bulk1", seq=seq, ts=start + seq * step,
                                kind="passage", from_zone="outside", to_zone="nef",
                                badge=f"{gate[-1]}{seq:06d}", category="public")  # fmt: skip
                info = pub.publish(T.events(gate), ev.to_json(), qos=1)
            info.wait_for_publish(10)
        finally:
            pub.close()
    assert until(lambda: counter.core is not None and counter.core.inside.head > 0
                 and counter.core.stats["events"] >= 2 * per_lane, timeout=30)  # fmt: skip
    t0 = time.monotonic()
    b = lanes.start(B, heartbeat=60)  # its status at connect starts the chain
    day = gate_clock().date()

    def held() -> int:
        return b.outbox._db.execute("SELECT count(*) FROM admissions WHERE day = ?",
                                    (day.isoformat(),)).fetchone()[0]  # fmt: skip

    assert until(lambda: held() == 2 * per_lane, timeout=20), held()
    assert time.monotonic() - t0 < 10
    assert b.outbox.admissions_cursor() == (day.isoformat(), counter.core.inside.head)
