"""The discrete-event engine: plays one event day's visits against a `Driver`.

The model plans; the engine meets reality. Each visit walks its legs in time order through
real lanes (a queue per lane, service time by lane kind), and the driver says what the gate
decided and how many people actually turned the arm. Refusals change the plan: a full zone
means queueing and scanning again (until the visitor's patience runs out), a bad badge or a
side zone the badge does not open means giving up that move. Every passage that really
happened is recorded, which is the ground truth.

The driver is the real system in `sesame simulate` (gate agents, broker, counter); tests of
the model alone use a small in-memory one.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from sesame.common.venue import OUTSIDE, Gate, Venue
from sesame.sim.model import MINUTE, Population, Visit, day_bounds, main_zone

SERVICE_MS = {"speedgate": 1_200, "tripod": 2_400, "door": 3_000}  # per person through a lane
DENY_MS = 4_000  # a refused visitor steps aside
RETRY_REASONS = {
    "ZONE_FULL",
    "LEASE_EXHAUSTED",
    "ZONE_CLOSED",
    "EVACUATION",
    "GATE_LOCKED",
    "OUTSIDE_OPENING_HOURS",
}


@dataclass(frozen=True)
class ScanResult:
    granted: bool
    reason: str | None
    passed: int  # people who actually turned the arm


class Driver(Protocol):
    def scan(self, gate: str, text: str, at: int, pushes: int) -> ScanResult:
        """A badge is presented at `gate` at `at` (ms); `pushes` people will push if let in."""
        ...

    def pulse(self, gate: str, at: int, count: int) -> int:
        """`count` people leave through a lane without a reader; returns passages made."""
        ...


@dataclass(frozen=True)
class Passage:
    """One real movement through a lane: the ground truth."""

    at: int
    gate: str
    from_zone: str
    to_zone: str
    badge: str | None
    category: str | None
    count: int  # people through the arm in this action
    group: int = 1  # the badge's group size


@dataclass
class Stats:
    scans: int = 0
    pulses: int = 0
    denied: dict[str, int] = field(default_factory=dict)
    gave_up: int = 0  # visits that never got in (or back in)
    skipped_trips: int = 0
    no_push: int = 0
    exit_refused: int = 0  # must stay 0: exits are never blocked

    def deny(self, reason: str | None) -> None:
        key = reason or "UNKNOWN"
        self.denied[key] = self.denied.get(key, 0) + 1


@dataclass
class _State:
    visit: Visit
    where: str = OUTSIDE
    leg: int = 0
    waiting_since: int | None = None
    slot: str | None = None  # the lane whose queue they are in
    done: bool = False


class Engine:
    """Plays the visits of one day; `run()` returns the passages that really happened."""

    def __init__(
        self,
        venue: Venue,
        population: Population,
        day: date,
        tokens: dict[str, str],
        driver: Driver,
        *,
        seed: int = 0,
        pace: Callable[[int], None] | None = None,
    ):
        self.venue, self.day, self.tokens, self.driver = venue, day, tokens, driver
        self.rng = random.Random(f"{seed}:{day.isoformat()}")
        self.pace = pace or (lambda at: None)
        self.opens, self.closes = day_bounds(venue, day)
        self.main = main_zone(venue)
        self.states = [_State(v) for v in population.visits.get(day, [])]
        self.free_at: dict[str, int] = {g: 0 for g in venue.gates}
        self.passages: list[Passage] = []
        self.stats = Stats()
        self._heap: list[tuple[int, int, int]] = []
        self._n = 0
        self._last = 0
        self._hops = _next_hops(venue)

    def _push(self, at: int, idx: int) -> None:
        self._n += 1
        heapq.heappush(self._heap, (at, self._n, idx))

    def run(self) -> list[Passage]:
        for i, s in enumerate(self.states):
            if s.visit.legs:
                self._push(s.visit.legs[0].at, i)
        while self._heap:
            at, _, idx = heapq.heappop(self._heap)
            self._step(at, idx)
        return self.passages

    # -- one visit, one step ---------------------------------------------------------
    def _step(self, t: int, idx: int) -> None:
        s = self.states[idx]
        v = s.visit
        while s.leg < len(v.legs) and v.legs[s.leg].to == s.where:
            s.leg += 1
        if s.leg >= len(v.legs):
            s.done = True
            return
        leg = v.legs[s.leg]
        hop = self._hops.get((s.where, leg.to))
        if hop is None:  # no way there from here (a venue without that lane): drop the leg
            s.leg += 1
            self._push(t + 1, idx)
            return
        if s.slot is not None:  # their turn in the queue they joined
            gate, s.slot = self.venue.gates[s.slot], None
        else:
            gate = self._lane(s.where, hop, v)
            if self.free_at[gate.id] > t:  # join the queue: a slot after those ahead
                start = self.free_at[gate.id]
                self.free_at[gate.id] = start + SERVICE_MS[gate.kind] * v.party
                s.slot = gate.id
                self._push(start, idx)
                return
        # one action per millisecond: events never tie, so their order is the same
        # everywhere (the wire carries milliseconds)
        t = max(t, self._last + 1)
        self._last = t
        self.pace(t)
        service = SERVICE_MS[gate.kind]
        if not gate.reader:
            self.stats.pulses += 1
            passed = self.driver.pulse(gate.id, t, v.party)
            self._record(t, gate, None, None, passed, 1)
            self._busy(gate.id, t + service * max(1, passed))
            self._moved(s, idx, hop, t + service * max(1, passed))
            return
        self.stats.scans += 1
        pushes = 0 if v.no_push else v.party
        res = self.driver.scan(gate.id, self.tokens[v.badge.id], t, pushes)
        if res.granted and res.passed > 0:
            self._record(t, gate, v.badge.id, v.badge.category, res.passed, v.badge.group)
            self._busy(gate.id, t + service * res.passed)
            s.waiting_since = None
            self._moved(s, idx, hop, t + service * res.passed)
            return
        self._busy(gate.id, t + DENY_MS)
        if res.granted:  # let in, but nobody pushed: they notice and scan again
            self.stats.no_push += 1
            v.no_push = False
            self._push(t + 10_000, idx)
            return
        self.stats.deny(res.reason)
        self._refused(s, idx, t, res.reason, gate)

    def _busy(self, gate: str, until: int) -> None:
        self.free_at[gate] = max(self.free_at[gate], until)

    def _moved(self, s: _State, idx: int, to: str, free: int) -> None:
        s.where = to
        v = s.visit
        if to == v.legs[s.leg].to:
            s.leg += 1
        if s.leg < len(v.legs):
            self._push(max(v.legs[s.leg].at, free), idx)
        else:
            s.done = True

    def _refused(self, s: _State, idx: int, t: int, reason: str | None, gate: Gate) -> None:
        v = s.visit
        leg = v.legs[s.leg]
        if gate.is_exit or leg.to == OUTSIDE:
            self.stats.exit_refused += 1  # must never happen; try again shortly
            self._push(t + 30_000, idx)
            return
        if leg.optional:  # a side trip: not worth queueing for
            self.stats.skipped_trips += 1
            s.leg += 1
            while s.leg < len(v.legs) and v.legs[s.leg].optional and v.legs[s.leg].to == s.where:
                s.leg += 1
            if s.leg < len(v.legs):
                self._push(max(v.legs[s.leg].at, t + DENY_MS), idx)
            return
        if reason in RETRY_REASONS:
            if s.waiting_since is None:
                s.waiting_since = t
            late = t > self.closes - 45 * MINUTE
            if t - s.waiting_since <= v.patience and not late:
                wait = self.rng.randint(120, 360) * 1000  # back in the queue
                if reason == "LEASE_EXHAUSTED" and t - s.waiting_since < MINUTE:
                    wait = self.rng.randint(5, 20) * 1000  # lanes are topped up within moments
                if reason == "OUTSIDE_OPENING_HOURS":
                    early = self.venue.categories[v.badge.category].early_minutes
                    wait = max(
                        wait, self.opens - early * MINUTE - t + self.rng.randint(0, 300) * 1000
                    )
                self._push(t + wait, idx)
                return
        # a bad badge, no re-entry, no access, or out of patience: they go home
        self.stats.gave_up += 1
        s.done = True

    def _lane(self, where: str, to: str, v: Visit) -> Gate:
        lanes = [g for g in self.venue.gates.values() if g.from_zone == where and g.to_zone == to]
        if where == OUTSIDE or to == OUTSIDE:
            # school classes use the groups entrance (tripods), the public the speed gates
            want = [g for g in lanes if (g.kind != "speedgate") == (v.lanes == "groups")]
            lanes = want or lanes
        best = min(self.free_at[g.id] for g in lanes)
        return self.rng.choice([g for g in lanes if self.free_at[g.id] == best])

    def _record(self, t: int, gate: Gate, badge, category, count: int, group: int) -> None:
        if count > 0:
            self.passages.append(
                Passage(t, gate.id, gate.from_zone, gate.to_zone, badge, category, count, group)
            )


def _next_hops(venue: Venue) -> dict[tuple[str, str], str]:
    """(here, destination) -> next zone on a shortest path through the lanes."""
    zones = [OUTSIDE, *venue.zones]
    adj: dict[str, set[str]] = {z: set() for z in zones}
    for g in venue.gates.values():
        adj[g.from_zone].add(g.to_zone)
    hops: dict[tuple[str, str], str] = {}
    for src in zones:
        first: dict[str, str] = {}
        q = deque()
        for n in sorted(adj[src]):
            if n != src and n not in first:
                first[n] = n
                q.append(n)
        while q:
            z = q.popleft()
            for n in sorted(adj[z]):
                if n != src and n not in first:
                    first[n] = first[z]
                    q.append(n)
        for dst, hop in first.items():
            hops[(src, dst)] = hop
    return hops
