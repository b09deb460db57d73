"""The counter's core: turns batches of incoming MQTT messages into committed state and the
messages to publish. No network here: `sesame/counter/service.py` feeds it and publishes.

`handle(batch)` runs as ONE transaction: events, quarantine, sequence state, leases,
corrections and residues commit together, and only then does the caller acknowledge the
batch to the broker and publish what `handle` returned (acks, occupancy, leases). A crash
before the commit loses nothing: the broker redelivers, the gates re-publish.

The parts: `CounterStore` holds every SQL statement, `Book` the occupancy per zone and day,
`Tracker` the lanes' sequence numbers, `LeaseDesk` the leases, spend and outbox epochs,
`Controls` the closed zones and evacuation; `Batch` is what one transaction collects.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sesame import __version__
from sesame.common import wire
from sesame.common.states import EventKind
from sesame.common.venue import OUTSIDE, Venue
from sesame.common.wire import TopicKind
from sesame.counter import leases as lz
from sesame.counter.batch import Batch, Out
from sesame.counter.controls import Controls
from sesame.counter.decisions import Decisions
from sesame.counter.epochs import Epochs
from sesame.counter.findings import Findings
from sesame.counter.fire_alarms import FireAlarms
from sesame.counter.forecast import Outlook
from sesame.counter.holds import HELD, Holds
from sesame.counter.inside import Inside
from sesame.counter.lane_clocks import ClockRate, LaneClocks
from sesame.counter.lease_desk import RATE_WINDOW_S, LeaseDesk
from sesame.counter.liveness import Liveness
from sesame.counter.occupancy import Book, DayClock, zone_state
from sesame.counter.sequences import LaneSequence, Tracker
from sesame.counter.store import CounterStore, EventRow, utcnow

__all__ = ["Core", "Out"]

SNAPSHOT_EVERY = 100_000  # events between snapshots of the rebuilt state
EARLIEST_MARGIN = timedelta(days=30)  # before the first day: no stamp is believable (as a gate's)
SILENT = "LANE_SILENT"  # a finding: a lane that said it was online stopped its heartbeats


class Core:
    def __init__(
        self,
        venue: Venue,
        store: CounterStore,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.venue = venue
        self.store = store
        self.clock = clock
        self.topics = wire.Topics(venue.id)
        self.days = DayClock(venue)
        self.tracker = Tracker()
        self.book = Book(list(venue.zones))
        self.controls = Controls(store)
        self.findings = Findings()  # what counter/alerts publishes
        self.fire = FireAlarms(self.findings)  # lanes reporting FIRE_ALARM
        self.desk = LeaseDesk(venue, store, self.book, self.controls, clock)
        self.outlook = Outlook(venue, RATE_WINDOW_S)  # time to full, lane rates
        # lane trust: epoch changes past the first of the day, implausible passage rates
        self.desk.epochs = self.epochs = Epochs(store, self.book, self.desk, self.findings)
        self.holds = Holds(venue, store, self.book, self.desk, self.findings)
        self.decisions = Decisions(store, self.epochs, self.holds, clock)
        self.liveness = Liveness()
        self.inside = Inside(venue, store, self.findings, self.topics)  # who is inside
        self.event_clock: float | None = None
        self.events_since_snapshot = 0
        self.last_lag_ms: float | None = None
        first = datetime.combine(min(d.date for d in venue.days), datetime.min.time(), venue.tz)
        self.lane_clocks = LaneClocks(
            self.findings, (first - EARLIEST_MARGIN).timestamp(), venue.tz
        )  # fmt: skip
        self.clock_rate = ClockRate()  # a replay's clock runs faster than real time
        # future: passages stamped ahead of the counter's clock; behind: stamped impossibly
        # early; retained: retained copies on an events topic, ignored
        self.stats = {"events": 0, "duplicates": 0, "quarantined": 0, "future": 0,
                      "behind": 0, "retained": 0}  # fmt: skip
        self.metrics = None  # sesame.counter.metrics.CounterMetrics, set by the service
        self._retained_seen: dict[str, set[str]] = {}  # gate -> retained payloads reported
        self._handlers: dict[TopicKind, Callable[[str | None, bytes, Batch], str | None]] = {
            TopicKind.EVENTS: self._event,
            TopicKind.GATE_STATUS: self._gate_status,
            TopicKind.ZONE_CONTROL: self._zone_control,
            TopicKind.VENUE_CONTROL: self._venue_control,
            TopicKind.CORRECTIONS: self._correction,
            TopicKind.DECISIONS: self.decisions.handle,
        }
        self._rebuild()

    # The lease desk's and the controls' state, under the names the rest of the code knows.
    @property
    def leases(self) -> dict[str, lz.GateLease]:
        return self.desk.leases

    @property
    def passages(self) -> dict[str, dict[str, int]]:
        return self.desk.passages

    @property
    def returning(self) -> dict[str, set[str]]:
        return self.desk.returning

    @property
    def closed_zones(self) -> set[str]:
        return self.controls.closed_zones

    @property
    def evacuating(self) -> bool:
        return self.controls.evacuating

    # -- start-up ------------------------------------------------------------------------
    def _rebuild(self) -> None:
        """Rebuild the in-memory state from the database: snapshot + the events after it."""
        snap = self.store.latest_snapshot()
        since, state = snap if snap else (0, None)
        self.desk.restore(state, since)
        for day, row in self.desk.passages.items():
            for gate, n in row.items():
                lane = self.venue.gates.get(gate)
                if lane is not None:
                    self.book.passage(day, lane.from_zone, lane.to_zone, n)
        for day, zone, delta in self.store.correction_totals():
            self.book.correct(day, zone, delta)
        self.book.current = self.store.get_state("current_day")
        self.book.closed = set(self.store.get_state("closed_days", []))
        self.event_clock = self.store.get_state("event_clock")
        for gate, epoch, committed, above, max_seq in self.store.seq_states():
            self.tracker.seqs[(gate, epoch)] = LaneSequence.load(committed, above, max_seq)
        self.controls.restore()
        if self.book.current is not None:
            self.desk.load(self.book.current)
        self.epochs.restore()
        self.holds.restore()
        self.inside.restore(self.book.current)

    def startup(self) -> list[Out]:
        """Everything retained the counter owns, as it stands now (after a restart too)."""
        out: list[Out] = []
        with self.store.transaction():
            self._follow_clock(None)
            self.desk.plan(out, force=True)
        out += [self._occupancy(z) for z in self.venue.zones]
        out.append(self.status())
        out += self.alerts(every=True)
        return out

    def alerts(self, every: bool = False) -> list[Out]:
        """Retained counter/alerts/<shard>: the shards of the findings that changed (or all)."""
        return [Out(t, p) for t, p in self.findings.messages(self.topics, self.clock(), every)]

    # -- the batch ---------------------------------------------------------------------
    def handle(self, messages: Sequence[tuple[str, bytes] | tuple[str, bytes, bool]]) -> list[Out]:
        """`messages`: (topic, payload) or (topic, payload, retain) as the broker delivered
        them (retain: a retained copy sent on subscribing, not a message published now)."""
        b = Batch(received_at=utcnow(), wall_t=self.clock().timestamp())
        with self.store.transaction():
            self._follow_clock(b.zones)  # the day moves by the counter's clock, nothing else
            for m in messages:
                topic, payload = m[0], m[1]
                b.retained = bool(m[2]) if len(m) > 2 else False  # type: ignore[misc]
                reason = self._route(topic, payload, b)
                if reason:
                    b.bad.append((topic, bytes(payload), reason, b.received_at))
            self._write(b)
            if b.rows:
                self.inside.stored(b.out, self.clock())  # admissions to every entry lane
            self.desk.plan(b.out)
        self.stats["events"] += len(b.rows)
        self.stats["quarantined"] += len(b.bad)
        if self.metrics is not None:
            self.metrics.batch(b.rows, b.bad)
        out = b.out
        if self.findings.dirty:
            out += self.alerts()
        for gate, epoch in b.touched:
            out.append(Out(self.topics.ack(gate), self._ack(gate, epoch)))
        out += [self._occupancy(z) for z in sorted(b.zones)]
        return out

    def _route(self, topic: str, payload: bytes, b: Batch) -> str | None:
        """Handle one message; returns a quarantine reason, or None when it was accepted."""
        route = self.topics.match(topic)
        handler = self._handlers.get(route.kind) if route is not None else None
        if handler is None:
            return "unexpected topic" if self.topics.owns(topic) else "not a topic of this venue"
        return handler(route.subject, payload, b)  # type: ignore[union-attr]

    def _write(self, b: Batch) -> None:
        """What the batch changed besides the controls: events, quarantine, seq state."""
        store = self.store
        if b.rows:
            store.insert_events(b.rows)
        self.holds.write()  # after the events it may change
        if b.bad:
            store.quarantine(b.bad)
        for gate, epoch in b.touched:
            s = self.tracker.get(gate, epoch)
            store.save_seq(gate, epoch, s.committed, s.above_ranges(), s.max_seq)
        cur = self.book.current
        for day in b.dirty_days:
            if day in self.book.closed or (cur is not None and day < cur):
                # a day before the live one is closed, also one this counter never had
                # live (started after it, on its own clock): late events fix its residue
                if day not in self.book.closed:
                    self.book.closed.add(day)
                    store.set_state("closed_days", sorted(self.book.closed))
                store.save_residues(day, self.book.residue(day))
        if b.rows:
            store.set_state("event_clock", self.event_clock)
            self.events_since_snapshot += len(b.rows)
        if self.events_since_snapshot >= SNAPSHOT_EVERY or self.holds.snapshot_due:
            # counts of stored events changed (holds, decisions): the old snapshot is stale
            self._snapshot()
            self.holds.snapshot_due = False

    def _event(self, gate: str | None, payload: bytes, b: Batch) -> str | None:
        if b.retained:
            return self._retained_event(gate, payload, b)
        ev = wire.parse_event(payload)
        if not ev:
            return ev.reason
        if ev.gate != gate:
            return f"gate {ev.gate!r} in the payload differs from the topic's {gate!r}"
        lane = self.venue.gates.get(gate)
        if lane is None:
            return f"unknown gate {gate!r}"
        b.touched[(gate, ev.epoch)] = None
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
        self.desk.heard_epoch(gate, ev.epoch)
        t = self._place(gate, ev, b.wall_t)
        day = self.days.day_of_t(t)
        cur = self.book.current
        if cur is not None and day > cur:
            day = cur  # within the tolerance past closing: still the live day (the clock's)
        day = self.days.filed_under(day, t, ev.kind, ev.from_zone, self.book.raw)
        if (
            ev.kind == "passage" and cur is not None and day < cur
            and not lane.is_exit and self.desk.beyond_closed_lease(day, gate, ev.to_zone)
        ):  # fmt: skip
            # an entry that lane's lease of that day could not have granted: a slow clock
            t = b.wall_t
            self.lane_clocks.beyond_lease(gate, ev.ts.timestamp(), t)
            self.stats["behind"] += 1
            day = self.days.filed_under(min(self.days.day_of_t(t), cur), t, ev.kind,
                                        ev.from_zone, self.book.raw)  # fmt: skip
        if self.event_clock is None or t > self.event_clock:
            self.event_clock = min(t, b.wall_t)  # never ahead of the counter's clock
        kind = ev.kind
        if kind == EventKind.PASSAGE and self.holds.check(day, gate, t, ev.id, ev.epoch, b):
            kind = HELD  # physically implausible: stored, not counted (holds.py)
        b.rows.append(
            EventRow(
                ev.id, gate, ev.epoch, ev.seq, ev.ts.isoformat(), t, day,
                self.days.local_hour(t), kind, ev.from_zone, ev.to_zone, ev.badge,
                ev.category, ev.reason, ev.group_size,
                ev.gate_ts.isoformat() if ev.gate_ts else None, ev.clock_offset_ms,
                b.received_at,
            )
        )  # fmt: skip
        if kind == EventKind.PASSAGE:
            b.zones.update(self.book.passage(day, ev.from_zone, ev.to_zone))
            live_entry = day == self.book.current and ev.to_zone != OUTSIDE
            if day != self.book.current:
                b.dirty_days.add(day)
            ref = self.event_clock if self.event_clock is not None else t
            self.desk.passage(day, gate, ev.epoch, t if live_entry else None, ref)
        return None

    def _retained_event(self, gate: str | None, payload: bytes, b: Batch) -> None:
        """A retained message on a lane's events topic: the broker hands it to the counter
        on every (re)subscription, so it is no passage of now. Ignored (neither counted nor
        quarantined again and again) and reported once per distinct payload."""
        self.stats["retained"] += 1
        if gate not in self.venue.gates:
            return None
        digest = hashlib.sha256(bytes(payload)).hexdigest()[:16]
        seen = self._retained_seen.setdefault(gate, set())
        if digest not in seen and len(seen) < 100:
            seen.add(digest)
            self.findings.bump(
                "RETAINED_EVENT", gate, datetime.fromtimestamp(b.wall_t, self.venue.tz),
                {"topic": self.topics.events(gate), "payload_sha256": digest},
            )  # fmt: skip
        return None

    def _place(self, gate: str, ev: wire.Event, now: float) -> float:
        """The time a passage counts at: its lane's stamp, unless that stamp cannot be true
        (sesame/counter/lane_clocks.py); then the counter's clock. `events.ts` keeps the
        lane's stamp, `events.t` the time it was placed at."""
        t = ev.ts.timestamp()
        flag = self.lane_clocks.event(gate, t, now)
        if flag is None:
            return t
        self.stats["future" if flag == "CLOCK_AHEAD" else "behind"] += 1
        return now

    def _follow_clock(self, zones: set[str] | None) -> None:
        """Make the day of the counter's clock live (closing the days it has passed), and
        judge lanes' stamps with a tolerance for how fast that clock runs."""
        now = self.clock()
        self.lane_clocks.follow_rate(self.clock_rate.update(time.monotonic(), now.timestamp()))
        self._advance(self.days.day_of(now), zones)

    def _advance(self, day: str, zones: set[str] | None) -> None:
        """Move the live day forward: close the days passed, start fresh leases."""
        closed = self.book.advance(day)
        cur = self.book.current
        if cur is None or (not closed and self.desk.lease_day == cur):
            return
        for d in closed:
            self.store.save_residues(d, self.book.residue(d))
            self.store.audit(
                "day_closed", who="counter", zone=None, detail={"day": d,
                                                               "residue": self.book.residue(d)}
            )  # fmt: skip
        self.store.set_state("current_day", self.book.current)
        self.store.set_state("closed_days", sorted(self.book.closed))
        self.desk.new_day(cur)
        self.epochs.new_day()
        self.holds.new_day(cur, closed[-1] if closed else None)
        self.inside.new_day(cur)
        self.outlook.clear()
        if zones is not None:
            zones.update(self.venue.zones)

    # -- other inputs ------------------------------------------------------------------
    def _gate_status(self, gate: str | None, payload: bytes, b: Batch) -> str | None:
        st = wire.parse_gate_status(payload)
        if not st:
            return st.reason
        if st.gate != gate or gate not in self.venue.gates:
            return f"status for gate {st.gate!r} on the topic of {gate!r}"
        self.store.set_gate_seen(
            gate, online=int(st.online), outbox=st.outbox, lease_serial=st.lease_serial,
            status=st.to_json().decode(),
        )  # fmt: skip
        self.desk.status(gate, st)
        _, began = self.fire.update(gate, st, self.clock())
        if began and self.venue.venue.fire_alarm_evacuates and not self.controls.evacuating:
            self.controls.evacuating = True  # ended only by a safety officer
            b.out.append(Out(*self.fire.evacuate(self.store, self.topics, gate, self.clock())))
            b.zones.update(self.venue.zones)
        self.liveness.heard(gate, time.monotonic(), st.online)
        self.findings.clear(SILENT, gate)
        if st.online and not b.retained:  # a retained copy is old news, not the lane's clock
            self.lane_clocks.status(gate, st.ts, b.wall_t)
        self.inside.status(gate, st, b.out)  # what the lane missed of the admissions
        return None

    def _zone_control(self, zone: str | None, payload: bytes, b: Batch) -> str | None:
        zc = wire.parse_zone_control(payload)
        if not zc:
            return zc.reason
        if zone not in self.venue.zones:
            return f"unknown zone {zone!r}"
        if self.controls.zone(zone, zc):
            b.zones.add(zone)
        return None

    def _venue_control(self, _: str | None, payload: bytes, b: Batch) -> str | None:
        vc = wire.parse_venue_control(payload)
        if not vc:
            return vc.reason
        if self.controls.venue(vc):
            b.zones.update(self.venue.zones)
        return None

    def _correction(self, _: str | None, payload: bytes, b: Batch) -> str | None:
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
                b.zones.add(c.zone)
        return None

    def quarantine_one(self, topic: str, payload: bytes, reason: str) -> list[Out]:
        """Store one message in quarantine on its own (after it broke a batch). When it
        names its lane's epoch and seq, that seq counts as handled so the lane's ack moves
        on (see `_event`); returns the ack to publish."""
        route = self.topics.match(topic)
        is_event = route is not None and route.kind is TopicKind.EVENTS
        ident = _loose_ident(route.subject, payload) if is_event else None  # type: ignore[union-attr]
        out: list[Out] = []
        with self.store.transaction():
            self.store.quarantine([(topic, bytes(payload), reason, utcnow())])
            if ident is not None:
                gate, epoch, seq = ident
                s = self.tracker.get(gate, epoch)
                if s.add(seq):
                    self.store.save_seq(gate, epoch, s.committed, s.above_ranges(), s.max_seq)
                out.append(Out(self.topics.ack(gate), self._ack(gate, epoch)))
        self.stats["quarantined"] += 1
        if self.metrics is not None:
            self.metrics.batch((), [(topic, b"", reason)])
        return out

    # -- periodic ----------------------------------------------------------------------
    def tick(self) -> list[Out]:
        """The counter clock's duties: closing the day at its closing time, lease top-ups."""
        out: list[Out] = []
        zones: set[str] = set()
        with self.store.transaction():
            self._follow_clock(zones)
            self.desk.plan(out)
            for gate in self.liveness.newly_silent(time.monotonic()):
                # no heartbeat: offline in the counter's record, whatever its Will did (a
                # Will is lost with the broker node holding the lane's connection)
                self.store.set_gate_seen(gate, online=0)
                detail = {"lane": gate, "silent_after_s": self.liveness.silent_after}
                self.findings.raise_(SILENT, gate, self.clock(), detail)
        if self.findings.dirty:
            out += self.alerts()
        return out + [self._occupancy(z) for z in sorted(zones)]

    def _snapshot(self) -> None:
        self.store.snapshot(self.store.last_event_rowid(), self.desk.snapshot())
        self.events_since_snapshot = 0

    # -- messages ----------------------------------------------------------------------
    def lease_message(self, gate: str) -> wire.Lease:
        return self.desk.message(gate)

    def _ack(self, gate: str, epoch: str) -> bytes:
        seq = self.tracker.get(gate, epoch).committed
        return wire.Ack(epoch=epoch, seq=seq, term=self.desk.term).to_json()

    def occupancy(self, zone: str) -> wire.Occupancy:
        z = self.venue.zones[zone]
        n = self.book.live(zone)
        state = zone_state(
            n, z, closed=zone in self.controls.closed_zones, evacuating=self.controls.evacuating
        )  # fmt: skip
        # Stamped with event time (the latest event's), so a replay of a past day reads as
        # that day on the dashboard; live, the two clocks agree.
        ec = self.event_clock
        ts = datetime.fromtimestamp(ec, self.venue.tz) if ec is not None else self.clock()
        outlook = self.outlook.fields(zone, n, z.capacity, state, ec, self.desk.recent)
        return wire.Occupancy(zone=zone, occupancy=n, capacity=z.capacity, state=state, ts=ts,
                              **outlook)  # fmt: skip

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
                t.corrections(), t.decisions()]  # fmt: skip


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
