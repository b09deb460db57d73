"""Adversarial: capacity leases with real gate agents and the real counter core (invariant 2).

The rig: the counter core (tests/fixtures/counter.py, small venue: hall capacity 30) and
GateAgents on the two entry lanes, wired by hand (what the broker would carry), so a test
decides exactly when a lane is partitioned. The people admitted are counted at the
turnstiles (MemoryTurnstile openings), not by the counter.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from sesame.common import wire
from sesame.counter.core import Out
from sesame.gate.agent import GateAgent
from sesame.gate.turnstile import MemoryTurnstile
from tests.fixtures.counter import PARIS
from tests.fixtures.gate import FakeClock

NOON = datetime(2018, 11, 22, 12, 0, tzinfo=PARIS)


class Rig:
    def __init__(self, core, venue, keys, make_token, tmp_path, clock):
        self.core, self.venue, self.keys = core, venue, keys
        self.make_token, self.tmp = make_token, tmp_path
        self.clock = clock  # the lanes' clocks and the counter's wall clock
        self.agents: dict[str, GateAgent] = {}
        self.retained: dict[str, bytes] = {}
        self.admitted = 0  # people through entry turnstiles, all lanes, all agents
        self.badges = 0
        self.deliver(core.startup())

    def agent(self, gate: str, data: str) -> GateAgent:
        a = GateAgent(self.venue, gate, data_dir=self.tmp / data, keys=self.keys,
                      clock=self.clock, turnstile=MemoryTurnstile())  # fmt: skip
        self.agents[gate] = a
        return a

    def connect(self, a: GateAgent) -> None:
        """The lane (re)connects: the broker hands it every retained message it may read."""
        for topic, payload in sorted(self.retained.items()):
            parts = a.topics.split(topic)
            if parts and (parts[0] != "gates" or parts[1] == a.gate_id):
                a.on_message(topic, payload, True)

    def deliver(self, outs: list[Out]) -> None:
        for o in outs:
            if o.retain:
                self.retained[o.topic] = o.payload
            for a in self.agents.values():
                parts = a.topics.split(o.topic)
                if parts and (parts[0] != "gates" or parts[1] == a.gate_id):
                    a.on_message(o.topic, o.payload, False)

    def sync(self, a: GateAgent) -> None:
        """Everything the lane has not had acknowledged reaches the counter."""
        pending = a.outbox.pending(0, 100_000)
        if pending:
            topic = a.topics.events(a.gate_id)
            self.deliver(self.core.handle([(topic, body) for _, body in pending]))
        st = (a.topics.gate_status(a.gate_id), a._status())
        self.deliver(self.core.handle([st]))
        self.deliver(self.core.tick())

    def scan(self, a: GateAgent) -> bool:
        self.badges += 1
        self.clock.advance(seconds=2)
        dec = a.handle_scan(self.make_token(f"B{self.badges:05d}", "public"))
        self.admitted += dec.passages if dec.granted else 0
        return dec.granted


@pytest.fixture
def rig(make_core, small_venue, badge_keys, make_token, tmp_path):
    clock = FakeClock(NOON)
    core = make_core(clock=clock)
    r = Rig(core, small_venue, badge_keys, make_token, tmp_path, clock)
    yield r
    for a in r.agents.values():
        a.outbox.close()


def test_both_lanes_partitioned_at_once_never_overfill(rig):
    a, b = rig.agent("in-1", "a"), rig.agent("in-2", "b")
    rig.connect(a)
    rig.connect(b)
    # online: both lanes admit and sync until the hall is nearly full
    while rig.admitted < 22:
        for lane in (a, b):
            rig.scan(lane)
            rig.sync(lane)
    # the broker goes away for both: each spends whatever it holds, nothing more
    for _ in range(60):
        rig.scan(a)
        rig.scan(b)
    assert rig.admitted <= rig.venue.zones["hall"].capacity
    # back online: the counter's count is the turnstiles' count
    rig.sync(a)
    rig.sync(b)
    assert rig.core.book.live("hall") == rig.admitted


def test_a_lane_that_lost_its_outbox_cannot_spend_its_lease_twice(rig):
    a, b = rig.agent("in-1", "a"), rig.agent("in-2", "b")
    rig.connect(a)
    rig.connect(b)
    while rig.admitted < 20:
        for lane in (a, b):
            rig.scan(lane)
            rig.sync(lane)
    # lane in-1's storage is replaced (new SD card, corrupt database): a new outbox and
    # epoch; it connects, gets its retained lease and the open hall, then the link drops
    a.outbox.close()
    a2 = rig.agent("in-1", "a-new-card")
    assert a2.outbox.epoch != a.outbox.epoch
    rig.connect(a2)
    for _ in range(60):
        rig.scan(a2)
        rig.scan(b)
    assert rig.admitted <= rig.venue.zones["hall"].capacity, (
        f"{rig.admitted} people admitted into a hall of {rig.venue.zones['hall'].capacity}"
    )


def test_a_lane_back_with_a_new_outbox_works_again_within_capacity(rig):
    """The lane with a new outbox reports its epoch; the counter writes off what the old one
    could still grant (those people may be inside, uncounted) and re-issues the lease for the
    new epoch: the lane admits again, and the hall still never holds more than its capacity
    even if the old outbox had admitted its whole allowance."""
    a, b = rig.agent("in-1", "a"), rig.agent("in-2", "b")
    rig.connect(a)
    rig.connect(b)
    for _ in range(5):
        for lane in (a, b):
            rig.scan(lane)
            rig.sync(lane)
    # lane in-1 admits its whole allowance, then its storage dies before any of it is sent
    while rig.scan(a):
        pass
    lost = a.outbox_depth()
    assert lost > 0
    a.outbox.close()
    a2 = rig.agent("in-1", "a-new-card")
    rig.connect(a2)
    assert not rig.scan(a2)  # the old epoch's lease is not this outbox's
    rig.sync(a2)  # its status names the new epoch: the counter re-issues the lease
    lease = wire.parse_lease(rig.retained[a2.topics.lease("in-1")])
    assert lease.epoch == a2.outbox.epoch
    admitted_after = 0
    for _ in range(60):
        for lane in (a2, b):
            before = rig.admitted
            rig.scan(lane)
            admitted_after += rig.admitted - before
            rig.sync(lane)
    assert rig.admitted <= rig.venue.zones["hall"].capacity, rig.admitted
    # the lane was not starved: with the hall at capacity, every place went to someone
    assert rig.admitted == rig.venue.zones["hall"].capacity
    assert admitted_after > 0
    audit = rig.core.store.conn.execute(
        "SELECT count(*) FROM audit WHERE action = 'allowance_written_off'"
    ).fetchone()[0]
    assert audit == 1


def test_sync_helper_sees_every_event(rig):
    """The rig itself: what the agents record is what the counter counts."""
    a = rig.agent("in-1", "a")
    rig.connect(a)
    for _ in range(3):
        rig.scan(a)
    rig.sync(a)
    assert rig.core.book.live("hall") == rig.admitted == 3
    assert wire.parse_ack(rig.retained[a.topics.ack("in-1")]).seq == 3


def test_people_leaving_after_closing_do_not_make_room_the_next_morning(rig):
    a, b, out = rig.agent("in-1", "a"), rig.agent("in-2", "b"), rig.agent("out-1", "out")
    for lane in (a, b, out):
        rig.connect(lane)
    rig.clock.set(datetime(2018, 11, 22, 17, 0, tzinfo=PARIS))
    for lane in (a, b):
        rig.sync(lane)
    while rig.admitted < 20:
        rig.scan(a if rig.badges % 2 else b)
        rig.sync(a)
        rig.sync(b)
    # closing is 18:00; the last twenty visitors walk out at 18:10, as people do
    rig.clock.set(datetime(2018, 11, 22, 18, 10, tzinfo=PARIS))
    for _ in range(20):
        out.anonymous_pass()
    rig.sync(out)
    # next morning the hall is empty; the lanes may admit its capacity, no more
    rig.clock.set(datetime(2018, 11, 23, 9, 30, tzinfo=PARIS))
    day1 = rig.admitted
    for lane in (a, b, out):
        rig.sync(lane)
    for _ in range(40):
        for lane in (a, b):
            rig.scan(lane)
            rig.sync(lane)
    assert rig.admitted - day1 <= rig.venue.zones["hall"].capacity, (
        f"{rig.admitted - day1} admitted into an empty hall of "
        f"{rig.venue.zones['hall'].capacity}; counter says {rig.core.book.live('hall')}"
    )


def test_an_outbox_restored_from_a_backup_loses_no_passage(rig):
    import shutil
    import sqlite3

    a = rig.agent("in-1", "a")
    rig.connect(a)
    for _ in range(4):
        rig.scan(a)
    rig.sync(a)
    backup = rig.tmp / "backup.db"
    with sqlite3.connect(backup) as dst:
        a.outbox._db.backup(dst)
    for _ in range(6):
        rig.scan(a)
    rig.sync(a)
    assert rig.core.book.live("hall") == 10
    # the lane's card fails; a spare is written from last week's image of the same lane
    a.outbox.close()
    shutil.copy(backup, a.outbox.path)
    for suffix in ("-wal", "-shm"):
        a.outbox.path.with_name(a.outbox.path.name + suffix).unlink(missing_ok=True)
    spare = rig.agent("in-1", "a")
    restored_epoch = spare.outbox.epoch
    rig.connect(spare)  # the retained ack says seq 10 of this epoch is committed
    # that is beyond anything this outbox wrote: it is behind the counter and moves to a new
    # epoch, whose status (sent on connect) gets the lane a lease for it
    assert spare.outbox.epoch != restored_epoch
    rig.sync(spare)
    for _ in range(3):
        rig.scan(spare)
    rig.sync(spare)
    assert rig.core.book.live("hall") == rig.admitted == 13
