"""The counter's core: turns batches of incoming MQTT messages into committed state and the
messages to publish. No network here: `sesame/counter/service.py` feeds it and publishes.

`handle(batch)` runs as ONE transaction: events, quarantine, sequence state, leases,
corrections and residues commit together, and only then does the caller acknowledge the
batch to the broker and publish what `handle` returned (acks, occupancy, leases). A crash
before the commit loses nothing: the broker redelivers, the gates re-publish.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sesame import __version__
from sesame.common import wire
from sesame.common.venue import OUTSIDE, Venue
from sesame.counter import leases as lz
from sesame.counter.occupancy import Book, DayClock, zone_state
from sesame.counter.sequences import Sequence as Seq
from sesame.counter.sequences import Tracker
from sesame.counter.store import Store, utcnow

SNAPSHOT_EVERY = 100_000  # events between snapshots of the rebuilt state
RATE_WINDOW_S = 60.0  # event-time window for a lane's spend rate
FUTURE_TOLERANCE_S = 3600.0  # an event this far ahead of the counter's clock has a bad clock


@dataclass(frozen=True)
class Out:
    """One message to publish after the commit (QoS 1)."""

    topic: str
    payload: bytes
    retain: bool = True


class Core:
    def __init__(
        self,
        venue: Venue,
        store: Store,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.venue = venue
        self.store = store
        self.clock = clock
        self.topics = wire.Topics(venue.id)
        self.days = DayClock(venue)
        self.lanes = lz.leased_lanes(venue)
        self.returning = lz.returning_zones(venue)
        self.lease_zones = sorted(z.id for z in venue.zones.values() if z.offline_policy == "lease")
        self._lease_day: str | None = None
        self._publish_all_leases = False
        self._reissue: set[str] = set()  # lanes whose lease must be re-sent (new epoch)
        # (day, gate, epoch) -> passages: counted once from the database, then kept by _event
        self._epoch_spend: dict[tuple[str, str, str], int] = {}
        self.tracker = Tracker()
        self.book = Book(list(venue.zones))
        # passages[day][gate] = committed passages through that lane that day (its spend)
        self.passages: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.recent: dict[str, deque[float]] = defaultdict(deque)
        self.leases: dict[str, lz.GateLease] = {}
        # Each lane's current outbox epoch, and per day the allowance written off when a lane
        # came back with a new epoch: the old outbox may have admitted people the counter
        # never heard of, so that allowance counts as people inside, never to be re-spent.
        self.lane_epochs: dict[str, str] = {}
        self.written_off: dict[str, dict[str, int]] = {}
        self.gate_status: dict[str, wire.GateStatus] = {}
        self.closed_zones: set[str] = set()
        self.evacuating = False
        self.event_clock: float | None = None
        self.events_since_snapshot = 0
        self.last_lag_ms: float | None = None
        self.stats = {"events": 0, "duplicates": 0, "quarantined": 0, "future": 0}
        self._rebuild()

    # -- start-up ------------------------------------------------------------------------
    def _rebuild(self) -> None:
        """Rebuild the in-memory state from the database: snapshot + the events after it."""
        conn = self.store.conn
        since = 0
        snap = self.store.latest_snapshot()
        if snap:
            since, state = snap
            for day, row in state["passages"].items():
                for gate, n in row.items():
                    self.passages[day][gate] = n
        q = (
            "SELECT day, gate, count(*) FROM events WHERE rowid > ? AND kind = 'passage' "
            "GROUP BY day, gate"
        )
        for day, gate, n in conn.execute(q, (since,)):
            self.passages[day][gate] += n
        for day, row in self.passages.items():
            for gate, n in row.items():
                lane = self.venue.gates.get(gate)
                if lane is not None:
                    self.book.passage(day, lane.from_zone, lane.to_zone, n)
        for day, zone, delta in conn.execute(
            "SELECT day, zone, sum(delta) FROM corrections GROUP BY day, zone"
        ):
            self.book.correct(day, zone, delta)
        self.book.current = self.store.get_state("current_day")
        self.book.closed = set(self.store.get_state("closed_days", []))
        self.lane_epochs = dict(self.store.get_state("lane_epochs", {}))
        self.written_off = {
            d: dict(r) for d, r in self.store.get_state("written_off", {}).items()
        }
        ec = self.store.get_state("event_clock")
        self.event_clock = ec
        for gate, epoch, committed, above, max_seq in conn.execute(
            "SELECT gate, epoch, committed, above, max_seq FROM gate_seqs"
        ):
            self.tracker.seqs[(gate, epoch)] = Seq.load(committed, json.loads(above), max_seq)
        for key, state in conn.execute("SELECT key, state FROM control"):
            if key == "venue":
                self.evacuating = state == "evacuation"
            elif key.startswith("zone:") and state == "closed":
                self.closed_zones.add(key[5:])
        if self.book.current is not None:
            self._load_leases(self.book.current)

    def _load_leases(self, day: str) -> None:
        self._lease_day = day
        serials = dict(self.store.conn.execute("SELECT gate, serial FROM lease_serials"))
        self.leases = {}
        for gate in self.lanes:
            self.leases[gate] = lz.GateLease(gate=gate, day=day, serial=serials.get(gate, 0))
        for gate, zone, granted, exposure in self.store.conn.execute(
            "SELECT gate, zone, granted, exposure FROM leases WHERE day = ?", (day,)
        ):
            if gate in self.leases:
                self.leases[gate].grants[zone] = granted
                self.leases[gate].exposure[zone] = exposure

    def startup(self) -> list[Out]:
        """Everything retained the counter owns, as it stands now (after a restart too)."""
        out: list[Out] = []
        self.store.begin()
        try:
            if self.book.current is None and self.days.closes_at(
                self.venue.local(self.clock()).date().isoformat()
            ):
                self._advance(self.days.day_of(self.clock()), None)
            self._plan_leases(out, force=True)
            self.store.commit()
        except BaseException:
            self.store.rollback()
            raise
        out += [self._occupancy(z) for z in self.venue.zones]
        out.append(self.status())
        return out

    # -- the batch ---------------------------------------------------------------------
    def handle(self, batch: Sequence[tuple[str, bytes]]) -> list[Out]:
        out: list[Out] = []
        rows: list[tuple] = []
        bad: list[tuple[str, bytes, str, str]] = []
        touched: dict[tuple[str, str], int] = {}
        zones: set[str] = set()
        self._dirty_days: set[str] = set()
        now = utcnow()
        self._wall_t = self.clock().timestamp()
        self.store.begin()
        try:
            for topic, payload in batch:
                reason = self._route(topic, payload, now, rows, touched, zones, out)
                if reason:
                    bad.append((topic, bytes(payload), reason, now))
            if rows:
                self.store.insert_events(rows)
            if bad:
                self.store.quarantine(bad)
            for gate, epoch in touched:
                s = self.tracker.get(gate, epoch)
                self.store.save_seq(gate, epoch, s.committed, s.above_ranges(), s.max_seq)
            for day in self._dirty_days:
                if day in self.book.closed:
                    self.store.save_residues(day, self.book.residue(day))
            if rows:
                self.store.set_state("event_clock", self.event_clock)
                self.events_since_snapshot += len(rows)
                if self.events_since_snapshot >= SNAPSHOT_EVERY:
                    self._snapshot()
            self._plan_leases(out)
            self.store.commit()
        except BaseException:
            self.store.rollback()
            raise
        self.stats["events"] += len(rows)
        self.stats["quarantined"] += len(bad)
        for gate, epoch in touched:
            out.append(Out(self.topics.ack(gate), self._ack(gate, epoch)))
        out += [self._occupancy(z) for z in sorted(zones)]
        return out

    def _route(self, topic, payload, now, rows, touched, zones, out) -> str | None:
        """Handle one message; returns a quarantine reason, or None when it was accepted."""
        parts = self.topics.split(topic)
        if parts is None:
            return "not a topic of this venue"
        if len(parts) == 3 and parts[0] == "gates" and parts[2] == "events":
            return self._event(parts[1], payload, now, rows, touched, zones)
        if len(parts) == 3 and parts[0] == "gates" and parts[2] == "status":
            return self._gate_status(parts[1], payload, zones)
        if len(parts) == 3 and parts[:2] == ("control", "zones"):
            return self._zone_control(parts[2], payload, zones)
        if parts == ("control", "venue"):
            return self._venue_control(payload, zones)
        if parts == ("control", "corrections"):
            return self._correction(payload, zones)
        return "unexpected topic"

    def _event(self, gate, payload, now, rows, touched, zones) -> str | None:
        ev = wire.parse_event(payload)
        if not ev:
            return ev.reason
        if ev.gate != gate:
            return f"gate {ev.gate!r} in the payload differs from the topic's {gate!r}"
        lane = self.venue.gates.get(gate)
        if lane is None:
            return f"unknown gate {gate!r}"
        touched[(gate, ev.epoch)] = 1
        if (ev.from_zone, ev.to_zone) != (lane.from_zone, lane.to_zone):
            # Kept in quarantine and acknowledged like a stored event: otherwise one bad
            # event would hold the lane's outbox (and its ack) back for ever.
            if not self.tracker.get(gate, ev.epoch).add(ev.seq):
                self.stats["duplicates"] += 1
                return None
            return (
                f"zones {ev.from_zone}->{ev.to_zone} do not match lane {gate} "
                f"({lane.from_zone}->{lane.to_zone})"
            )
        if not self.tracker.get(gate, ev.epoch).add(ev.seq):
            self.stats["duplicates"] += 1
            return None
        if gate not in self.lane_epochs:  # no status heard yet: its events name the epoch
            self._new_epoch(gate, ev.epoch)
        t = ev.ts.timestamp()
        future = t > self._wall_t + FUTURE_TOLERANCE_S
        if future and self.book.current is not None:
            # A lane whose clock runs ahead must not close today early: the passage counts
            # toward the live day and does not move the event clock.
            day = self.book.current
            self.stats["future"] += 1
        else:
            day = self.days.day_of_t(t)
        if not future and (self.event_clock is None or t > self.event_clock):
            self.event_clock = t
        self._advance(day, zones)
        if not future:
            day = self.days.filed_under(day, t, ev.kind, ev.from_zone, self.book.raw)
        rows.append(
            (
                ev.id, gate, ev.epoch, ev.seq, ev.ts.isoformat(), t, day,
                self.days.local_hour(t), ev.kind, ev.from_zone, ev.to_zone, ev.badge,
                ev.category, ev.reason, ev.group_size,
                ev.gate_ts.isoformat() if ev.gate_ts else None, ev.clock_offset_ms, now,
            )
        )  # fmt: skip
        if ev.kind == "passage":
            self.passages[day][gate] += 1
            if (k := (day, gate, ev.epoch)) in self._epoch_spend:
                self._epoch_spend[k] += 1
            zones.update(self.book.passage(day, ev.from_zone, ev.to_zone))
            if day != self.book.current:
                self._dirty_days.add(day)
            elif ev.to_zone != OUTSIDE:
                r = self.recent[gate]
                r.append(t)
                ref = self.event_clock if self.event_clock is not None else t
                while r and r[0] < ref - RATE_WINDOW_S:
                    r.popleft()
        return None

    def _advance(self, day: str, zones: set[str] | None) -> None:
        """Move the live day forward: close the days passed, start fresh leases."""
        closed = self.book.advance(day)
        cur = self.book.current
        if cur is None or (not closed and self._lease_day == cur):
            return
        for d in closed:
            self.store.save_residues(d, self.book.residue(d))
            self.store.audit(
                "day_closed", who="counter", zone=None, detail={"day": d,
                                                               "residue": self.book.residue(d)}
            )  # fmt: skip
        self.store.set_state("current_day", self.book.current)
        self.store.set_state("closed_days", sorted(self.book.closed))
        self.recent.clear()
        self._load_leases(cur)  # serials carry on from lease_serials: gates ignore stale ones
        self._publish_all_leases = True  # every lane needs the new day's lease
        if zones is not None:
            zones.update(self.venue.zones)

    # -- other inputs ------------------------------------------------------------------
    def _gate_status(self, gate, payload, zones) -> str | None:
        st = wire.parse_gate_status(payload)
        if not st:
            return st.reason
        if st.gate != gate or gate not in self.venue.gates:
            return f"status for gate {st.gate!r} on the topic of {gate!r}"
        self.gate_status[gate] = st
        if st.epoch is not None and self.lane_epochs.get(gate) != st.epoch:
            self._new_epoch(gate, st.epoch)
        self.store.set_gate_seen(
            gate, online=int(st.online), outbox=st.outbox, lease_serial=st.lease_serial,
            status=st.to_json().decode(),
        )  # fmt: skip
        lease = self.leases.get(gate)
        if lease is not None and st.online and st.lease_serial is not None:
            if lz.confirm(lease, st.lease_serial, st.outbox == 0):
                self.store.save_lease(gate, lease.day, lease.serial, lease.grants, lease.exposure)
        if st.ts is not None and st.ts.timestamp() <= self._wall_t + FUTURE_TOLERANCE_S:
            # A lane's clock moves the day on like its events do: on a replayed morning the
            # lanes need the new day's lease before anyone can pass.
            self._advance(self.days.day_of(st.ts), zones)
        return None

    def _zone_control(self, zone, payload, zones) -> str | None:
        zc = wire.parse_zone_control(payload)
        if not zc:
            return zc.reason
        if zone not in self.venue.zones:
            return f"unknown zone {zone!r}"
        was = "closed" if zone in self.closed_zones else "open"
        if zc.state != was:
            (self.closed_zones.add if zc.state == "closed" else self.closed_zones.discard)(zone)
            ts = zc.ts.isoformat() if zc.ts else None
            self.store.set_control(f"zone:{zone}", zc.state, zc.by, ts)
            self.store.audit(f"zone_{zc.state}", who=zc.by, zone=zone, detail={"ts": ts})
            zones.add(zone)
        return None

    def _venue_control(self, payload, zones) -> str | None:
        vc = wire.parse_venue_control(payload)
        if not vc:
            return vc.reason
        evac = vc.mode == "evacuation"
        if evac != self.evacuating:
            self.evacuating = evac
            ts = vc.ts.isoformat() if vc.ts else None
            self.store.set_control("venue", vc.mode, vc.by, ts)
            self.store.audit(f"venue_{vc.mode}", who=vc.by, zone=None, detail={"ts": ts})
            zones.update(self.venue.zones)
        return None

    def _correction(self, payload, zones) -> str | None:
        c = wire.parse_correction(payload)
        if not c:
            return c.reason
        if c.zone not in self.venue.zones:
            return f"unknown zone {c.zone!r}"
        day = self.book.current or self.days.day_of(c.ts)
        if self.store.save_correction(c, c.ts.timestamp(), day):
            before = self.book.raw(c.zone, day)
            self.book.correct(day, c.zone, c.delta)
            self.store.audit(
                "correction", who=c.by, zone=c.zone,
                detail={"id": c.id, "delta": c.delta, "reason": c.reason, "ts": c.ts.isoformat(),
                        "day": day, "before": before, "after": before + c.delta},
            )  # fmt: skip
            if day == self.book.current:
                zones.add(c.zone)
        return None

    def quarantine_one(self, topic: str, payload: bytes, reason: str) -> list[Out]:
        """Store one message in quarantine on its own (after it broke a batch). When it
        names its lane's epoch and seq, that seq counts as handled so the lane's ack moves
        on (see `_event`); returns the ack to publish."""
        parts = self.topics.split(topic)
        is_event = parts is not None and len(parts) == 3 and parts[2] == "events"
        ident = _loose_ident(parts[1], payload) if is_event else None
        out: list[Out] = []
        self.store.begin()
        try:
            self.store.quarantine([(topic, bytes(payload), reason, utcnow())])
            if ident is not None:
                gate, epoch, seq = ident
                s = self.tracker.get(gate, epoch)
                if s.add(seq):
                    self.store.save_seq(gate, epoch, s.committed, s.above_ranges(), s.max_seq)
                out.append(Out(self.topics.ack(gate), self._ack(gate, epoch)))
            self.store.commit()
        except BaseException:
            self.store.rollback()
            raise
        self.stats["quarantined"] += 1
        return out

    # -- periodic ----------------------------------------------------------------------
    def tick(self) -> list[Out]:
        """Wall-clock duties: closing the day on its own date, lease top-ups."""
        out: list[Out] = []
        self.store.begin()
        try:
            cur = self.book.current
            zones: set[str] = set()
            if cur is not None and self.days.wall_closes(cur, self.clock()):
                self._advance(self.days.next_day(cur), zones)
            self._plan_leases(out)
            self.store.commit()
        except BaseException:
            self.store.rollback()
            raise
        return out + [self._occupancy(z) for z in sorted(zones)]

    def _snapshot(self) -> None:
        rowid = self.store.last_event_rowid()
        state = {"passages": {d: dict(r) for d, r in self.passages.items()}}
        self.store.snapshot(rowid, state)
        self.events_since_snapshot = 0

    # -- leases ------------------------------------------------------------------------
    def _plan_leases(self, out: list[Out], force: bool = False) -> None:
        day = self.book.current
        if day is None:
            return
        changed: set[str] = set()
        pol = self.venue.leases
        for zone in self.lease_zones:
            gates = [g for g, zs in self.lanes.items() if zone in zs]
            demand = {}
            for g in gates:
                st = self.gate_status.get(g)
                lease = self.leases[g]
                demand[g] = lz.Demand(
                    spent=self._spent(day, g),
                    rate=float(len(self.recent.get(g, ()))) * 60.0 / RATE_WINDOW_S,
                    online=st.online if st is not None else True,
                    reported_back=bool(
                        st is not None and st.online and st.outbox == 0
                        and st.lease_serial == lease.serial
                    ),
                )  # fmt: skip
            cap = self.venue.zones[zone].capacity
            accepting = not self.evacuating and zone not in self.closed_zones
            plan = lz.plan_zone(
                zone, cap, self._committed_load(zone), {g: self.leases[g] for g in gates}, demand,
                initial=pol.initial, max_per_gate=pol.max_per_gate, low_water=pol.low_water,
                accepting=accepting,
            )  # fmt: skip
            for g, grant in plan.items():
                lz.apply(self.leases[g], zone, grant)
                changed.add(g)
        if self._publish_all_leases:
            force, self._publish_all_leases = True, False
        changed |= self._reissue & set(self.leases)
        self._reissue.clear()
        for g in sorted(self.leases if force else changed):
            lease = self.leases[g]
            if g in changed or lease.serial == 0:
                lease.serial += 1
                self.store.save_lease(g, day, lease.serial, lease.grants, lease.exposure)
            out.append(Out(self.topics.lease(g), self.lease_message(g).to_json()))

    def _committed_load(self, zone: str) -> int:
        """People the zone must have room for: inside, plus those who may walk back in, plus
        allowance written off with a lost outbox (they may be inside, uncounted)."""
        lost = sum(
            n for g, n in self.written_off.get(self.book.current or "", {}).items()
            if zone in self.lanes.get(g, ())
        )  # fmt: skip
        return self.book.raw(zone) + sum(self.book.raw(y) for y in self.returning[zone]) + lost

    def _new_epoch(self, gate: str, epoch: str) -> None:
        """A lane speaks from a new outbox (lost or replaced storage): what its old outbox
        could still have granted is written off, and its lease is re-issued for the new one."""
        old = self.lane_epochs.get(gate)
        self.lane_epochs[gate] = epoch
        self.store.set_state("lane_epochs", self.lane_epochs)
        day, lease = self.book.current, self.leases.get(gate)
        if old is None or day is None or lease is None or lease.day != day:
            return
        held = sum(lease.exposure.values()) - self._spent(day, gate)
        if held > 0:
            row = self.written_off.setdefault(day, {})
            row[gate] = row.get(gate, 0) + held
            self.store.set_state("written_off", self.written_off)
            self.store.audit(
                "allowance_written_off", who="counter", zone=None,
                detail={"gate": gate, "old_epoch": old, "new_epoch": epoch, "allowance": held},
            )  # fmt: skip
        self._reissue.add(gate)

    def _spent(self, day: str, gate: str) -> int:
        """A lane's spend as the planner sees it: committed passages plus written-off room."""
        return self.passages.get(day, {}).get(gate, 0) + self.written_off.get(day, {}).get(gate, 0)

    def _epoch_spent(self, day: str, gate: str, epoch: str) -> int:
        k = (day, gate, epoch)
        if k not in self._epoch_spend:  # in the writer's transaction: this batch included
            self._epoch_spend[k] = self.store.conn.execute(
                "SELECT count(*) FROM events WHERE gate = ? AND epoch = ? AND day = ? "
                "AND kind = 'passage'",
                (gate, epoch, day),
            ).fetchone()[0]
        return self._epoch_spend[k]

    def lease_message(self, gate: str) -> wire.Lease:
        """The lease in the terms of the lane's current outbox, which counts its own entries
        only: what is left of the allowance, on top of what this epoch already spent."""
        lease = self.leases[gate]
        epoch = self.lane_epochs.get(gate)
        grants = dict(lease.grants)
        if epoch is not None:
            base = self._spent(lease.day, gate)
            mine = self._epoch_spent(lease.day, gate, epoch)
            grants = {z: mine + max(0, n - base) for z, n in grants.items()}
        return wire.Lease(
            gate=gate, day=lease.day, grants=grants, serial=lease.serial,
            ts=self.clock(), epoch=epoch,
        )  # fmt: skip

    # -- messages ----------------------------------------------------------------------
    def _ack(self, gate: str, epoch: str) -> bytes:
        return wire.Ack(epoch=epoch, seq=self.tracker.get(gate, epoch).committed).to_json()

    def occupancy(self, zone: str) -> wire.Occupancy:
        z = self.venue.zones[zone]
        n = self.book.live(zone)
        state = zone_state(
            n, z, closed=zone in self.closed_zones, evacuating=self.evacuating
        )  # fmt: skip
        # Stamped with event time (the latest event's), so a replay of a past day reads as
        # that day on the dashboard; live, the two clocks agree.
        ec = self.event_clock
        ts = datetime.fromtimestamp(ec, self.venue.tz) if ec is not None else self.clock()
        return wire.Occupancy(zone=zone, occupancy=n, capacity=z.capacity, state=state,
                              ts=ts)  # fmt: skip

    def _occupancy(self, zone: str) -> Out:
        return Out(self.topics.occupancy(zone), self.occupancy(zone).to_json())

    def status(self, online: bool = True) -> Out:
        ec = self.event_clock
        msg = wire.CounterStatus(
            online=online, clock=self.clock(), version=__version__,
            ingest_lag_ms=self.last_lag_ms, open_gaps=self.tracker.open_gaps(),
            event_clock=datetime.fromtimestamp(ec, self.venue.tz) if ec is not None else None,
        )  # fmt: skip
        return Out(self.topics.counter_status(), msg.to_json())

    def subscriptions(self) -> list[str]:
        t = self.topics
        return [t.events(), t.gate_status(), t.zone_control(), t.venue_control(),
                t.corrections()]  # fmt: skip


def monotonic_ms() -> float:
    return time.monotonic() * 1000.0


def _loose_ident(gate: str | None, payload: bytes) -> tuple[str, str, int] | None:
    """(gate, epoch, seq) of a raw event payload from its own lane's topic, or None."""
    if gate is None:
        return None
    try:
        obj = json.loads(bytes(payload)[: wire.MAX_PAYLOAD])
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or obj.get("gate") != gate:
        return None
    epoch, seq = obj.get("epoch"), obj.get("seq")
    if not isinstance(epoch, str) or not wire._EPOCH.match(epoch):
        return None
    if type(seq) is not int or not 1 <= seq <= wire.MAX_SEQ:
        return None
    return gate, epoch, seq
