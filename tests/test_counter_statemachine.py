"""Hypothesis state machine over the counter core and simulated lanes that obey their leases.

Random interleavings of entries, exits, moves between zones, lanes going offline and back
(outbox replay, duplicates, reordering), status reports, counter restarts (state rebuilt
from the SQLite file) and ticks. Checked after every step: no lease-policy zone ever holds
more people than its capacity, and the counter's own accounting (occupancy plus
outstanding allowances) covers the truth. At the end, with every outbox delivered, the
counter's counts equal the true counts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sesame.common import wire
from sesame.common.venue import OUTSIDE, parse_venue
from sesame.counter import leases as lz
from sesame.counter.core import Core
from sesame.counter.store import CounterStore
from tests.fixtures.counter import DAY1, Clock, Lanes, small_venue_dict

_V = small_venue_dict(initial=2, max_per_gate=4, low_water=1)
_V["zones"]["hall"]["capacity"] = 7  # small, so that random runs reach it often
_V["zones"]["annex"]["capacity"] = 3
VENUE = parse_venue(_V)
TOPICS = wire.Topics(VENUE.id)
LEASED = {"in-1": "hall", "in-2": "hall", "annex-in": "annex"}
EXITS = ["out-1", "annex-out", "roof-down"]


@dataclass
class Lane:
    gate: str
    online: bool = True
    outbox: list[wire.Event] = field(default_factory=list)
    grant: int = 0  # cumulative allowance from the latest lease received
    serial: int = -1
    granted: int = 0  # entries this lane has let through today


class CounterMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        import tempfile
        from pathlib import Path

        self.dir = tempfile.TemporaryDirectory()
        self.db = Path(self.dir.name) / "c.db"
        self.lanes = Lanes(VENUE)
        self.gates = {g: Lane(g) for g in VENUE.gates}
        self.true = dict.fromkeys(VENUE.zones, 0)
        self.generated: list[str] = []
        self.rng = random.Random(0)
        self.retained: dict[str, bytes] = {}
        self.store: CounterStore | None = None
        self._start()
        # the first status opens the event day
        st_ = wire.GateStatus(gate="in-1", online=True, ts=DAY1)
        self._deliver(self.core.handle([(TOPICS.gate_status("in-1"), st_.to_json())]))

    def _start(self):
        if self.store is not None:
            self.store.close()
        self.store = CounterStore(self.db)
        self.core = Core(VENUE, self.store, Clock(DAY1))
        self._deliver(self.core.startup())

    def _deliver(self, outs):
        """The broker: retained messages reach online lanes now, offline ones on reconnect."""
        for o in outs:
            self.retained[o.topic] = o.payload
        for lane in self.gates.values():
            if lane.online:
                self._receive(lane)

    def _receive(self, lane: Lane):
        lease = self.retained.get(TOPICS.lease(lane.gate))
        if lease is not None:
            le = wire.parse_lease(lease)
            if le.serial > lane.serial:
                lane.serial = le.serial
                lane.grant = le.grants.get(LEASED.get(lane.gate, ""), 0)
        ack = self.retained.get(TOPICS.ack(lane.gate))
        if ack is not None:
            a = wire.parse_ack(ack)
            lane.outbox = [e for e in lane.outbox if not (e.epoch == a.epoch and e.seq <= a.seq)]

    def _pass(self, gate: str):
        g = VENUE.gates[gate]
        if g.from_zone != OUTSIDE:
            self.true[g.from_zone] -= 1
        if g.to_zone != OUTSIDE:
            self.true[g.to_zone] += 1
        ev = self.lanes.make(gate)
        self.generated.append(ev.id)
        self.gates[gate].outbox.append(ev)

    # -- rules ---------------------------------------------------------------------------
    @rule(gate=st.sampled_from(sorted(LEASED)))
    def enter(self, gate):
        lane, g = self.gates[gate], VENUE.gates[gate]
        if lane.granted >= lane.grant:  # the lane obeys its lease: LEASE_EXHAUSTED
            return
        if g.from_zone != OUTSIDE and self.true[g.from_zone] <= 0:
            return  # nobody there to move
        lane.granted += 1
        self._pass(gate)

    @rule(gate=st.sampled_from(EXITS + ["roof-up"]))
    def leave(self, gate):
        g = VENUE.gates[gate]
        if self.true[g.from_zone] > 0:  # exits are never blocked
            self._pass(gate)

    @rule(gate=st.sampled_from(sorted(VENUE.gates)), n=st.integers(1, 6),
          shuffle=st.booleans(), dup=st.booleans())  # fmt: skip
    def publish(self, gate, n, shuffle, dup):
        """The lane re-publishes part of its outbox: maybe reordered, maybe twice."""
        lane = self.gates[gate]
        if not lane.online or not lane.outbox:
            return
        evs = lane.outbox[:n]
        if shuffle:
            evs = self.rng.sample(evs, len(evs))
        if dup:
            evs = evs + evs[:1]
        self._deliver(self.core.handle([(TOPICS.events(gate), e.to_json()) for e in evs]))

    @rule(gate=st.sampled_from(sorted(VENUE.gates)))
    def disconnect(self, gate):
        lane = self.gates[gate]
        if lane.online:
            lane.online = False  # the broker sends its Last Will
            will = wire.GateStatus(gate=gate, online=False)
            self._deliver(self.core.handle([(TOPICS.gate_status(gate), will.to_json())]))

    @rule(gate=st.sampled_from(sorted(VENUE.gates)))
    def reconnect(self, gate):
        lane = self.gates[gate]
        if not lane.online:
            lane.online = True
            self._receive(lane)
            self.report(gate)

    @rule(gate=st.sampled_from(sorted(VENUE.gates)))
    def report(self, gate):
        lane = self.gates[gate]
        if lane.online:
            s = wire.GateStatus(gate=gate, online=True, outbox=len(lane.outbox),
                                lease_serial=lane.serial if lane.serial >= 0 else None)  # fmt: skip
            self._deliver(self.core.handle([(TOPICS.gate_status(gate), s.to_json())]))

    @rule()
    def restart_counter(self):
        self._start()

    @rule()
    def tick(self):
        self._deliver(self.core.tick())

    # -- invariants ----------------------------------------------------------------------
    @invariant()
    def never_over_capacity(self):
        for zid, z in VENUE.zones.items():
            if z.offline_policy == "lease":
                assert self.true[zid] <= z.capacity, (zid, self.true[zid])

    @invariant()
    def accounting_covers_the_truth(self):
        core = self.core
        day = core.book.current
        for zid in ("hall", "annex"):
            out = sum(
                lz.outstanding(core.leases[g], zid, core.passages[day].get(g, 0))
                for g, z in LEASED.items()
                if z == zid
            )
            load = core.desk.committed_load(zid)
            truth = self.true[zid] + sum(self.true[y] for y in core.returning[zid])
            assert max(0, load) + out <= VENUE.zones[zid].capacity
            assert max(0, load) + out >= truth

    def teardown(self):
        # Everyone reconnects and empties their outbox: counts must be exact.
        for gate in self.gates:
            self.reconnect(gate)
        for _ in range(100):
            busy = [g for g, lane in self.gates.items() if lane.outbox]
            if not busy:
                break
            for g in busy:
                self.publish(g, 50, False, False)
        assert not any(lane.outbox for lane in self.gates.values())
        for zid in VENUE.zones:
            assert self.core.book.raw(zid) == self.true[zid], zid
        self._start()  # and again after a restart
        for zid in VENUE.zones:
            assert self.core.book.raw(zid) == self.true[zid], zid
        ids = [r[0] for r in self.store.conn.execute("SELECT id FROM events")]
        assert sorted(ids) == sorted(self.generated)  # every event stored exactly once
        self.store.close()
        self.dir.cleanup()


CounterMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_counter_state_machine = pytest.mark.timeout(240)(CounterMachine.TestCase)
