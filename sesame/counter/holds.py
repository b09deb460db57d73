"""Passages held as physically implausible, and the safety officer's decisions on them.

The rule is `plausibility.RateWindows`; this is its bookkeeping inside the counter's
transaction: a held passage is stored as an event of kind `held` (and a `held_passages`
row), not counted, and raises the lane's `IMPLAUSIBLE_RATE` finding with the number held.
Passages a burst makes implausible after they were counted are un-counted the same way.
An officer's `accept_held` makes them passages (counted once: the row changes kind), a
`reject_held` keeps them out for good; both name how many they saw, oldest hold first.

Counts that change for events already stored make the newest snapshot stale, so the core
takes a new one after the batch (`snapshot_due`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

from sesame.common.turnstiles import lane_max_per_minute
from sesame.common.venue import Venue
from sesame.common.wire.decisions import ACCEPT_HELD, Decision
from sesame.counter.batch import Batch
from sesame.counter.findings import Findings
from sesame.counter.lease_desk import LeaseDesk
from sesame.counter.occupancy import Book
from sesame.counter.plausibility import RateWindows
from sesame.counter.store import CounterStore

KIND = "IMPLAUSIBLE_RATE"
HELD = "held"  # the stored event's kind while held (never on the wire: lanes send EventKind)


class Tag(NamedTuple):
    """What un-counting a counted passage needs."""

    event_id: str
    epoch: str
    t: float


class Holds:
    def __init__(
        self, venue: Venue, store: CounterStore, book: Book, desk: LeaseDesk, findings: Findings
    ) -> None:
        self.venue, self.store, self.book = venue, store, book
        self.desk, self.findings = desk, findings
        group = venue.leases.low_water  # kept at or above the venue's largest group
        self.rate = {g: lane_max_per_minute(lane) for g, lane in venue.gates.items()}
        self.limit = {g: r + group for g, r in self.rate.items()}
        self.windows: RateWindows[Tag] = RateWindows()
        self.held: dict[str, int] = {}  # gate -> passages held, not decided yet
        self.held_total: dict[str, int] = {}  # gate -> held since start (metrics)
        self._new: list[tuple[str, str, str, float, str]] = []  # written after the events
        self.snapshot_due = False

    def restore(self) -> None:
        """The holds a restarted counter still has to show (the windows load lazily)."""
        self.held = self.store.held_counts()
        for gate in self.held:
            self._finding(gate, datetime.now(UTC))

    # -- the ingest path ----------------------------------------------------------------
    def check(self, day: str, gate: str, t: float, event_id: str, epoch: str, b: Batch) -> bool:
        """One passage of `gate` at event time `t`, about to be counted under `day`: True
        when it is held. A burst it reveals also holds the passages of it counted before."""
        if not self.windows.loaded(day, gate):
            self.windows.load(day, gate, self._stored(gate, day))
        held, retro = self.windows.add(day, gate, t, Tag(event_id, epoch, t), self.limit[gate])
        if held:
            self._new.append((event_id, gate, day, t, epoch))
        for tag in retro:
            self._count(b, day, gate, tag.epoch, -1)
            self._new.append((tag.event_id, gate, day, tag.t, tag.epoch))
            self.snapshot_due = True
        n = int(held) + len(retro)
        if n:
            self.held[gate] = self.held.get(gate, 0) + n
            self.held_total[gate] = self.held_total.get(gate, 0) + n
            self._finding(gate, datetime.fromtimestamp(b.wall_t, UTC))
        return held

    def _stored(self, gate: str, day: str):
        for t, eid, epoch, state in self.store.lane_window(gate, day):
            # counted passages only may still be held by a burst; held or decided ones
            # fill the windows but are never re-decided by the rule
            yield t, (Tag(eid, epoch, t) if state is None else None)

    def write(self) -> None:
        """After the batch's events are stored: record the holds of this batch."""
        if self._new:
            self.store.hold(self._new)
            self._new = []

    def new_day(self, day: str, previous: str | None) -> None:
        self.windows.forget({d for d in (day, previous) if d})

    # -- the officer --------------------------------------------------------------------
    def decide(self, d: Decision, b: Batch) -> dict:
        """Accept or reject up to `d.count` held passages of the lane; returns the detail
        to audit."""
        rows = self.store.held_of(d.gate, d.count)
        accept = d.action == ACCEPT_HELD
        self.store.decide_held([r[0] for r in rows], "accepted" if accept else "rejected", d.id)
        if accept:
            for _, day, _, epoch in rows:
                self._count(b, day, d.gate, epoch, +1)
            self.snapshot_due = bool(rows)
        left = self.held.get(d.gate, 0) - len(rows)
        if left > 0:
            self.held[d.gate] = left
            self._finding(d.gate, d.ts)
        else:
            self.held.pop(d.gate, None)
            self.findings.clear(KIND, d.gate)
        return {"gate": d.gate, "passages": len(rows), "asked": d.count, "still_held": max(0, left)}

    # -- helpers ------------------------------------------------------------------------
    def _count(self, b: Batch, day: str, gate: str, epoch: str, n: int) -> None:
        """Count (+1) or un-count (-1) one passage of the lane on `day`."""
        lane = self.venue.gates[gate]
        b.zones.update(self.book.passage(day, lane.from_zone, lane.to_zone, n))
        if day != self.book.current:
            b.dirty_days.add(day)
        self.desk.adjust(day, gate, epoch, n)

    def _finding(self, gate: str, now: datetime) -> None:
        n = self.held.get(gate, 0)
        self.findings.raise_(
            KIND, gate, now,
            {"lane": gate, "held": n, "max_per_minute": self.rate[gate],
             "window_limit": self.limit[gate]},
            count=n,
        )  # fmt: skip
