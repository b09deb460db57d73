"""Lane trust: time belongs to the counter; retained events; bounded quarantine; every zone's
capacity held while its lanes are online.

Through a real Mosquitto with the generated ACL, each lane speaking with its own gate
account: a lane whose clock lies (ahead within the last hour before closing, behind by 50
minutes, or reading 1970) changes neither the venue's day nor the counts, and is flagged on
counter/alerts. The counter's clock here is the venue's (a running clock set to the day).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import datetime, timedelta

from sesame.common import mqtt, wire
from sesame.common.venue import load_venue
from sesame.counter.service import Counter
from tests.fixtures.broker import VENUE_FILE
from tests.fixtures.counter import DAY1, PARIS, RunningClock, findings_retained
from tests.waiting import wait_for

VENUE = load_venue(VENUE_FILE)
T = wire.Topics(VENUE.id)
VENUE_ROOF_CAPACITY = 5  # tests.fixtures.counter.small_venue
BEFORE_CLOSING = datetime(2018, 11, 22, 17, 30, tzinfo=PARIS)  # the Nef closes at 18:00


class Watcher:
    """The dashboard account's view: the latest payload per topic."""

    def __init__(self, url: str, topics: list[str]):
        self.last: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.conn = mqtt.connect(url, f"watch-{os.getpid()}-{id(self)}", clean_start=True,
                                 session_expiry=0, subscriptions=[(t, 1) for t in topics],
                                 on_message=self._on)  # fmt: skip

    def _on(self, msg) -> None:
        with self.lock:
            self.last[msg.topic] = msg.payload

    def get(self, topic: str) -> bytes | None:
        with self.lock:
            return self.last.get(topic)

    def alerts(self) -> dict[str, wire.Finding]:
        with self.lock:
            return findings_retained(self.last)

    def occupancy(self, zone: str) -> int | None:
        p = self.get(T.occupancy(zone))
        return wire.parse_occupancy(p).occupancy if p else None


class Lane:
    """One lane speaking with its own gate account, its clock as wrong as the test says."""

    def __init__(self, url: str, gate: str, epoch: str = "lane1"):
        self.gate, self.epoch, self.seq = gate, epoch, 0
        self.g = VENUE.gates[gate]
        self.acked = 0
        self.conn = mqtt.connect(url, f"lane-{gate}-{os.getpid()}", clean_start=True,
                                 session_expiry=0, subscriptions=[(T.ack(gate), 1)],
                                 on_message=self._on_ack)  # fmt: skip

    def _on_ack(self, msg) -> None:
        a = wire.parse_ack(msg.payload)
        if a and a.epoch == self.epoch:
            self.acked = max(self.acked, a.seq)

    def passages(self, n: int, ts: datetime, *, retain: bool = False) -> None:
        for i in range(n):
            self.seq += 1
            badge = f"B{self.seq:06d}" if self.g.reader else None
            ev = wire.Event(gate=self.gate, epoch=self.epoch, seq=self.seq,
                            ts=ts + timedelta(seconds=i), kind="passage",
                            from_zone=self.g.from_zone, to_zone=self.g.to_zone, badge=badge,
                            category="public" if badge else None)  # fmt: skip
            self.conn.publish(T.events(self.gate), ev.to_json(), qos=1, retain=retain)

    def status(self, ts: datetime) -> None:
        st = wire.GateStatus(gate=self.gate, online=True, epoch=self.epoch, ts=ts)
        self.conn.publish(T.gate_status(self.gate), st.to_json(), qos=1, retain=True)

    def close(self) -> None:
        self.conn.close()


def _rig(mosquitto, tmp_path, start: datetime):
    clock = RunningClock(start)
    counter = Counter(VENUE, tmp_path / "c.db", mosquitto.url("counter"), clock=clock,
                      tick_s=0.2).start()  # fmt: skip
    watch = Watcher(mosquitto.url("dashboard"),
                    [T.alerts(), T.occupancy(), T.lease(), T.counter_status()])  # fmt: skip
    wait_for(lambda: watch.get(T.counter_status()), what="counter status")
    return counter, watch, clock


def _rows(db) -> list[tuple]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT gate, ts, t, day FROM events ORDER BY rowid").fetchall()


def test_a_lane_clock_50_minutes_ahead_before_closing_moves_nothing(mosquitto, tmp_path):
    """30 minutes before closing, a reader-less exit lane's clock says 18:20: its status and
    its exits are stamped past closing. The day stays the 22nd, the Nef's count is exact,
    lanes keep that day's leases and the lane is flagged CLOCK_AHEAD until its clock is right."""
    counter, watch, clock = _rig(mosquitto, tmp_path, BEFORE_CLOSING)
    entry = Lane(mosquitto.url("gate-churchill-in-1"), "churchill-in-1")
    exit_ = Lane(mosquitto.url("gate-churchill-out-1"), "churchill-out-1")
    try:
        entry.passages(30, clock())
        wait_for(lambda: entry.acked == 30, what="entries acknowledged")
        liar = clock() + timedelta(minutes=50)
        exit_.status(liar)
        exit_.passages(3, liar)
        wait_for(lambda: exit_.acked == 3, what="exits acknowledged")
        wait_for(lambda: watch.occupancy("nef") == 27, what="Nef at 27")
        ahead = wait_for(lambda: watch.alerts().get("CLOCK_AHEAD:churchill-out-1"),
                         what="CLOCK_AHEAD on counter/alerts")  # fmt: skip
        assert 2900 < ahead.detail["skew_s"] < 3100
        assert counter.core.book.current == "2018-11-22"
        assert counter.core.stats["future"] == 3
        lease = wire.parse_lease(watch.get(T.lease("churchill-in-1")))
        assert lease.day == "2018-11-22" and lease.grants["nef"] > 30
        # both times kept: the lane's stamp, and the counter's time it counts at
        exits = [r for r in _rows(tmp_path / "c.db") if r[0] == "churchill-out-1"]
        assert all(r[3] == "2018-11-22" for r in exits)
        assert all(datetime.fromisoformat(r[1]) > liar - timedelta(seconds=1) for r in exits)
        assert all(abs(r[2] - clock().timestamp()) < 60 for r in exits)
        # its clock is right again: the finding goes
        exit_.status(clock())
        wait_for(lambda: "CLOCK_AHEAD:churchill-out-1" not in watch.alerts(),
                 what="CLOCK_AHEAD cleared")  # fmt: skip
        assert watch.occupancy("nef") == 27
    finally:
        for x in (entry, exit_):
            x.close()
        watch.conn.close()
        counter.stop()


def test_lane_clocks_behind_move_nothing_and_are_flagged(mosquitto, tmp_path):
    """One entry lane reads 1970 (a board without its clock battery), another runs 50 minutes
    behind. Every passage counts today, the day does not move, both are flagged CLOCK_BEHIND."""
    counter, watch, clock = _rig(mosquitto, tmp_path, DAY1 + timedelta(hours=2))
    battery = Lane(mosquitto.url("gate-churchill-in-1"), "churchill-in-1")
    slow = Lane(mosquitto.url("gate-churchill-in-2"), "churchill-in-2")
    try:
        battery.passages(4, datetime(1970, 1, 1, tzinfo=PARIS))
        wait_for(lambda: battery.acked == 4, what="1970 passages acknowledged")
        late = clock() - timedelta(minutes=50)
        slow.status(late)
        slow.passages(5, late)
        slow.status(late + timedelta(minutes=3))  # its clock runs, 50 minutes behind
        wait_for(lambda: slow.acked == 5, what="slow lane acknowledged")
        wait_for(lambda: watch.occupancy("nef") == 9, what="Nef at 9")
        alerts = wait_for(
            lambda: (a := watch.alerts()).get("CLOCK_BEHIND:churchill-in-2")
            and "CLOCK_BEHIND:churchill-in-1" in a and a,
            what="CLOCK_BEHIND for both lanes",
        )
        assert alerts["CLOCK_BEHIND:churchill-in-2"].detail["skew_s"] < -2800
        assert counter.core.book.current == "2018-11-22"
        rows = _rows(tmp_path / "c.db")
        assert {r[3] for r in rows} == {"2018-11-22"}
        # the 1970 stamps are kept, the passages placed at the counter's time
        old = [r for r in rows if r[0] == "churchill-in-1"]
        assert all(r[1].startswith("1970") and r[2] > DAY1.timestamp() for r in old)
    finally:
        for x in (battery, slow):
            x.close()
        watch.conn.close()
        counter.stop()


def test_a_retained_event_is_ignored_and_reported(mosquitto, tmp_path):
    """A lane publishes a retained message on its events topic: the broker would hand it to
    the counter on every reconnect. It is never counted nor quarantined, and reported once."""
    counter, watch, clock = _rig(mosquitto, tmp_path, DAY1 + timedelta(hours=1))
    lane = Lane(mosquitto.url("gate-churchill-in-1"), "churchill-in-1")
    try:
        lane.passages(1, clock(), retain=True)  # the counter is subscribed: counted, live
        wait_for(lambda: lane.acked == 1, what="live delivery acknowledged")
        counter.stop()
        counter = Counter(VENUE, tmp_path / "c.db", mosquitto.url("counter"),
                          clock=clock, tick_s=0.2).start()  # fmt: skip
        lane.passages(2, clock())
        wait_for(lambda: lane.acked == 3, what="later passages acknowledged")
        found = wait_for(lambda: watch.alerts().get("RETAINED_EVENT:churchill-in-1"),
                         what="RETAINED_EVENT on counter/alerts")  # fmt: skip
        assert found.detail["topic"] == T.events("churchill-in-1")
        wait_for(lambda: watch.occupancy("nef") == 3, what="Nef at 3")
        assert counter.core.stats["retained"] >= 1
        with sqlite3.connect(tmp_path / "c.db") as c:
            assert c.execute("SELECT count(*) FROM events").fetchone()[0] == 3
            assert c.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
    finally:
        lane.conn.publish(T.events("churchill-in-1"), b"", qos=1, retain=True)  # clear it
        lane.close()
        watch.conn.close()
        counter.stop()


# -- the counter's core: the same rules, case by case ----------------------------------------


def test_a_backlog_after_an_outage_keeps_its_day_and_time(make_core, lanes, tmp_path):
    """A lane cut off at 17:50 delivers its outbox the next morning: the stamps are old but
    true (within what its lease of that day allowed), so they are filed under that day."""
    lanes.clock = datetime(2018, 11, 22, 17, 0, tzinfo=PARIS)
    core = make_core()
    core.startup()
    core.handle([lanes.event("in-1")])  # the lane's lease of the 22nd: 4 (initial)
    cut = datetime(2018, 11, 22, 17, 50, tzinfo=PARIS)
    backlog = [lanes.make("in-1", ts=cut + timedelta(seconds=i)) for i in range(3)]
    lanes.clock = datetime(2018, 11, 23, 9, 30, tzinfo=PARIS)
    core.tick()
    core.handle([(lanes.topic("in-1"), ev.to_json()) for ev in backlog])
    assert core.book.current == "2018-11-23" and core.book.live("hall") == 0
    assert core.book.raw("hall", "2018-11-22") == 4
    assert not core.findings.alerts()
    # one more "entry of the 22nd" than that lane's lease allowed that day: a slow clock
    core.handle([lanes.event("in-1", ts=cut + timedelta(minutes=1))])
    assert core.book.raw("hall", "2018-11-22") == 4 and core.book.live("hall") == 1
    assert core.findings.get("CLOCK_BEHIND", "in-1") is not None
    with sqlite3.connect(tmp_path / "counter.db") as c:
        (ts, t, day), = c.execute("SELECT ts, t, day FROM events ORDER BY rowid DESC LIMIT 1")
    assert ts.startswith("2018-11-22T17:51") and day == "2018-11-23"
    assert t == lanes.clock.timestamp()


def test_exits_beyond_occupancy_free_no_room(make_core, lanes):
    """A surplus of exits stays a residue (the raw count below 0): the live figure and the
    leases never count it as free places."""
    lanes.clock = datetime(2018, 11, 22, 10, 0, tzinfo=PARIS)
    core = make_core()
    core.startup()
    for _ in range(2):
        core.handle([lanes.event("roof-up")])
    core.handle([lanes.event("roof-down") for _ in range(1)])
    for _ in range(3):
        core.handle([lanes.event("roof-down")])  # two more than were upstairs
    assert core.book.raw("roof") == -2 and core.book.live("roof") == 0
    assert core.desk.committed_load("roof") == 0  # not -2: no places freed upstairs
    # the hall (+2 from the surplus) and the roof (-2) together hold nobody: not below 0
    assert core.book.raw("hall") == 2 and core.desk.committed_load("hall") == 0
    assert core.lease_message("roof-up").grants["roof"] <= VENUE_ROOF_CAPACITY


def test_an_open_zone_is_leased_within_capacity_while_online(make_core, lanes):
    """The roof (capacity 5, offline_policy open): its lane's allowance never lets the roof
    exceed 5 while online, like any zone's."""
    lanes.clock = datetime(2018, 11, 22, 10, 0, tzinfo=PARIS)
    core = make_core()
    core.startup()
    t = wire.Topics("testhall")
    for n in range(10):
        lease = core.lease_message("roof-up")
        left = lease.grants.get("roof", 0) - n
        if left <= 0:
            break
        core.handle([lanes.event("roof-up")])
        core.handle([(t.gate_status("roof-up"), wire.GateStatus(
            gate="roof-up", online=True, epoch="e1", lease_serial=lease.serial,
            ts=lanes.clock).to_json())])  # fmt: skip
    assert core.book.live("roof") == 5
    assert core.lease_message("roof-up").grants["roof"] == 5


def test_quarantine_is_bounded_per_gate_and_day(make_core, lanes, monkeypatch, tmp_path):
    from sesame.counter import store as store_mod

    monkeypatch.setattr(store_mod, "QUARANTINE_PER_SOURCE_DAY", 20)
    core = make_core()
    t = wire.Topics("testhall")
    big = b"{" + b"x" * 60_000
    core.handle([(t.events("in-1"), big) for _ in range(50)])
    core.handle([(t.events("in-2"), b"not json")])
    with sqlite3.connect(tmp_path / "counter.db") as c:
        rows = dict(c.execute("SELECT source, count(*) FROM quarantine GROUP BY source"))
        kept = c.execute("SELECT max(length(payload)), max(size) FROM quarantine").fetchone()
        first = c.execute("SELECT min(id) FROM quarantine WHERE source = 'in-1'").fetchone()[0]
    assert rows == {"in-1": 20, "in-2": 1}
    assert kept == (store_mod.QUARANTINE_PAYLOAD_KEPT, 60_001)
    assert first > 30  # the oldest were dropped, the newest kept
    assert list(core.store.quarantine_dropped().values()) == [30]
