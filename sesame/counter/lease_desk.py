"""The lease desk: each entry lane's allowance, spend and outbox epoch, kept in step with
the database (the planning itself is pure, in `leases.py`).

It owns what the planner needs and nothing else: committed passages per lane and day (the
spend), recent entry rates, the leases, each lane's current outbox epoch, and the
allowance written off when a lane came back with a new epoch. Everything it writes goes
through the core's open transaction.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sesame.common import wire
from sesame.common.venue import Venue
from sesame.counter import leases as lz
from sesame.counter.batch import Out
from sesame.counter.controls import Controls
from sesame.counter.occupancy import Book
from sesame.counter.store import CounterStore

RATE_WINDOW_S = 60.0  # event-time window for a lane's spend rate


class LeaseDesk:
    def __init__(
        self,
        venue: Venue,
        store: CounterStore,
        book: Book,
        controls: Controls,
        clock: Callable[[], datetime],
    ):
        self.venue = venue
        self.store = store
        self.book = book
        self.controls = controls
        self.clock = clock
        # The active counter's term when counters share a database (sesame/counter/standby.py);
        # None for a counter running alone. Carried by every lease (and, through Core, ack).
        self.term: int | None = None
        self.topics = wire.Topics(venue.id)
        self.lanes = lz.leased_lanes(venue)
        self.returning = lz.returning_zones(venue)
        self.lease_zones = sorted(venue.zones)  # every zone: see leases.leased_lanes
        # passages[day][gate] = committed passages through that lane that day (its spend)
        self.passages: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.recent: dict[str, deque[float]] = defaultdict(deque)
        self.leases: dict[str, lz.GateLease] = {}
        self.gate_status: dict[str, wire.GateStatus] = {}
        # Each lane's current outbox epoch, and per day the allowance written off when a lane
        # came back with a new epoch: the old outbox may have admitted people the counter
        # never heard of, so that allowance counts as people inside, never to be re-spent.
        self.lane_epochs: dict[str, str] = {}
        self.written_off: dict[str, dict[str, int]] = {}
        self._lease_day: str | None = None
        self._publish_all = False
        self._reissue: set[str] = set()  # lanes whose lease must be re-sent (new epoch)
        # (day, gate, epoch) -> passages: counted once from the database, then kept by passage()
        self._epoch_spend: dict[tuple[str, str, str], int] = {}
        # sesame.counter.epochs.Epochs, set by the core: whether a lane's epoch change is
        # acted on or held for a safety officer (None: every change is acted on)
        self.epochs: Any = None
        # closed day -> (gate, zone) -> the most that lane's lease of that day allowed
        self._closed_exposure: dict[str, dict[tuple[str, str], int]] = {}

    # -- state -------------------------------------------------------------------------
    def restore(self, snapshot: dict | None, since: int) -> None:
        """Spend from the snapshot plus the events after it; epochs and write-offs."""
        if snapshot:
            for day, row in snapshot["passages"].items():
                for gate, n in row.items():
                    self.passages[day][gate] = n
        for day, gate, n in self.store.passages_since(since):
            self.passages[day][gate] += n
        self.lane_epochs = dict(self.store.get_state("lane_epochs", {}))
        self.written_off = {d: dict(r) for d, r in self.store.get_state("written_off", {}).items()}

    def snapshot(self) -> dict:
        return {"passages": {d: dict(r) for d, r in self.passages.items()}}

    @property
    def lease_day(self) -> str | None:
        return self._lease_day

    def load(self, day: str) -> None:
        """The leases stored for `day` (serials carry on from lease_serials)."""
        self._lease_day = day
        serials = self.store.lease_serials()
        self.leases = {}
        for gate in self.lanes:
            self.leases[gate] = lz.GateLease(gate=gate, day=day, serial=serials.get(gate, 0))
        for gate, zone, granted, exposure in self.store.leases_of(day):
            if gate in self.leases:
                self.leases[gate].grants[zone] = granted
                self.leases[gate].exposure[zone] = exposure

    def new_day(self, day: str) -> None:
        """A new live day: fresh leases, which every lane needs at once (gates ignore the
        stale serials)."""
        self.recent.clear()
        self.load(day)
        self._publish_all = True

    # -- what the lanes report -------------------------------------------------------------
    def passage(self, day: str, gate: str, epoch: str, t: float | None, ref: float) -> None:
        """A committed passage (the hot path). `t` is its time when it is an entry into a
        zone on the live day (it feeds the lane's rate), else None; `ref` the event clock."""
        self.passages[day][gate] += 1
        if (k := (day, gate, epoch)) in self._epoch_spend:
            self._epoch_spend[k] += 1
        if t is not None:
            r = self.recent[gate]
            r.append(t)
            while r and r[0] < ref - RATE_WINDOW_S:
                r.popleft()

    def adjust(self, day: str, gate: str, epoch: str, n: int) -> None:
        """A stored event's count changed after the fact (a held passage accepted, a
        counted one held by a burst): the lane's spend follows."""
        self.passages[day][gate] += n
        if (k := (day, gate, epoch)) in self._epoch_spend:
            self._epoch_spend[k] += n

    def heard_epoch(self, gate: str, epoch: str) -> None:
        """An event names its outbox epoch: the lane's epoch when no status said one yet."""
        if gate not in self.lane_epochs:
            self.new_epoch(gate, epoch)

    def status(self, gate: str, st: wire.GateStatus) -> None:
        """A lane's status: its epoch, and the lease serial it acts on."""
        self.gate_status[gate] = st
        if st.epoch is not None:
            if self.lane_epochs.get(gate) != st.epoch:
                if self.epochs is None or self.epochs.admit(gate, st.epoch, self.clock()):
                    self.new_epoch(gate, st.epoch)
            elif self.epochs is not None:
                self.epochs.same_epoch(gate)
        lease = self.leases.get(gate)
        if lease is not None and st.online and st.lease_serial is not None:
            if lz.confirm(lease, st.lease_serial, st.outbox == 0):
                self.store.save_lease(gate, lease.day, lease.serial, lease.grants, lease.exposure)

    def new_epoch(self, gate: str, epoch: str) -> None:
        """A lane speaks from a new outbox (lost or replaced storage): what its old outbox
        could still have granted is written off, and its lease is re-issued for the new one."""
        old = self.lane_epochs.get(gate)
        self.lane_epochs[gate] = epoch
        self.store.set_state("lane_epochs", self.lane_epochs)
        day, lease = self.book.current, self.leases.get(gate)
        if old is None or day is None or lease is None or lease.day != day:
            return
        held = self.at_stake(gate)
        if held > 0:
            row = self.written_off.setdefault(day, {})
            row[gate] = row.get(gate, 0) + held
            self.store.set_state("written_off", self.written_off)
            self.store.audit(
                "allowance_written_off", who="counter", zone=None,
                detail={"gate": gate, "old_epoch": old, "new_epoch": epoch, "allowance": held},
            )  # fmt: skip
        self._reissue.add(gate)

    def at_stake(self, gate: str) -> int:
        """What a new epoch of the lane would write off: its lease's allowance not spent."""
        day, lease = self.book.current, self.leases.get(gate)
        if day is None or lease is None or lease.day != day:
            return 0
        return max(0, sum(lease.exposure.values()) - self.spent(day, gate))

    # -- planning ------------------------------------------------------------------------
    def plan(self, out: list[Out], force: bool = False) -> None:
        """Top up or reclaim every leased zone's lanes; queue the leases that changed (all
        of them when `force`, or on a new day)."""
        day = self.book.current
        if day is None:
            return
        changed: set[str] = set()
        for zone in self.lease_zones:
            for g, grant in self._plan_zone(day, zone).items():
                lz.apply(self.leases[g], zone, grant)
                changed.add(g)
        if self._publish_all:
            force, self._publish_all = True, False
        changed |= self._reissue & set(self.leases)
        self._reissue.clear()
        for g in sorted(self.leases if force else changed):
            lease = self.leases[g]
            if g in changed or lease.serial == 0:
                lease.serial += 1
                self.store.save_lease(g, day, lease.serial, lease.grants, lease.exposure)
            out.append(Out(self.topics.lease(g), self.message(g).to_json()))

    def _plan_zone(self, day: str, zone: str) -> dict[str, int]:
        gates = [g for g, zs in self.lanes.items() if zone in zs]
        demand = {}
        for g in gates:
            st = self.gate_status.get(g)
            lease = self.leases[g]
            demand[g] = lz.Demand(
                spent=self.spent(day, g),
                rate=float(len(self.recent.get(g, ()))) * 60.0 / RATE_WINDOW_S,
                online=st.online if st is not None else True,
                reported_back=bool(
                    st is not None and st.online and st.outbox == 0
                    and st.lease_serial == lease.serial
                ),
            )  # fmt: skip
        pol = self.venue.leases
        return lz.plan_zone(
            zone, self.venue.zones[zone].capacity, self.committed_load(zone),
            {g: self.leases[g] for g in gates}, demand,
            initial=pol.initial, max_per_gate=pol.max_per_gate, low_water=pol.low_water,
            accepting=self.controls.accepting(zone),
        )  # fmt: skip

    def committed_load(self, zone: str) -> int:
        """People the zone must have room for: inside, plus those who may walk back in, plus
        allowance written off with a lost outbox (they may be inside, uncounted)."""
        lost = sum(
            n for g, n in self.written_off.get(self.book.current or "", {}).items()
            if zone in self.lanes.get(g, ())
        )  # fmt: skip
        # Never negative room: a surplus of exits (people counted the day before, a bouncing
        # sensor) stays in the raw counts as a residue and frees no places. The raw counts
        # are summed first: a sub-zone below 0 while its exit into the zone arrived before
        # its entry is that person counted in the zone, not a free place.
        book = self.book
        inside = book.raw(zone) + sum(book.raw(y) for y in self.returning[zone])
        return max(0, inside) + lost

    def beyond_closed_lease(self, day: str, gate: str, zone: str) -> bool:
        """True when one more entry by `gate` into `zone` filed under the closed `day` is
        more than that lane's lease of that day allowed (its clock is wrong, not late).
        Only lease-policy zones (a cut-off lane of an open zone admits without a lease), and
        only a day this counter leased that lane something."""
        z = self.venue.zones.get(zone)
        if z is None or z.offline_policy != "lease":
            return False
        if day not in self._closed_exposure:
            rows = self.store.leases_of(day)
            self._closed_exposure[day] = {(g, zz): max(gr, ex) for g, zz, gr, ex in rows}
        allowed = self._closed_exposure[day].get((gate, zone))
        if allowed is None:  # this counter leased that lane nothing that day: cannot judge
            return False
        return self.passages.get(day, {}).get(gate, 0) + 1 > allowed

    def spent(self, day: str, gate: str) -> int:
        """A lane's spend as the planner sees it: committed passages plus written-off room."""
        return self.passages.get(day, {}).get(gate, 0) + self.written_off.get(day, {}).get(gate, 0)

    def _epoch_spent(self, day: str, gate: str, epoch: str) -> int:
        k = (day, gate, epoch)
        if k not in self._epoch_spend:  # in the writer's transaction: this batch included
            self._epoch_spend[k] = self.store.lane_epoch_passages(gate, epoch, day)
        return self._epoch_spend[k]

    def message(self, gate: str) -> wire.Lease:
        """The lease in the terms of the lane's current outbox, which counts its own entries
        only: what is left of the allowance, on top of what this epoch already spent."""
        lease = self.leases[gate]
        epoch = self.lane_epochs.get(gate)
        grants = dict(lease.grants)
        if epoch is not None:
            base = self.spent(lease.day, gate)
            mine = self._epoch_spent(lease.day, gate, epoch)
            grants = {z: mine + max(0, n - base) for z, n in grants.items()}
        return wire.Lease(
            gate=gate, day=lease.day, grants=grants, serial=lease.serial,
            ts=self.clock(), epoch=epoch, term=self.term,
        )  # fmt: skip
