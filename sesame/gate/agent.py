"""The gate agent: scan, decide, drive the turnstile, record, and keep the lane in sync.

One GateAgent per lane; many can run in one process (the simulator runs 14) or each as
`sesame gate run`. The middle is the pure `sesame.decision.decide()`; around it:

- the outbox (SQLite): every passage and denial is committed before the lane shows it as
  done, and it is also the lane's memory (re-entry, lease spending, today's counts) and the
  store of the last retained values received, so a reboot while offline decides the same;
- the link (MQTT): drains the outbox until the counter acks, hears lease, zones, venue
  mode, revocations and the counter's clock; retained status + Last Will;
- the turnstile: one opening per granted passage; a timeout annuls the grant (NO_PASSAGE);
  unsolicited pulses are anonymous passages (exit lanes without a reader);
- the fire alarm input (a driver with one frees the lane itself, at once): the lane stays
  free while it is active, refuses entries (FIRE_ALARM) and says FIRE_ALARM in its status;
  exits stay free afterwards while the venue is in evacuation.

Use: `agent.start()` runs the scan loop (reader + turnstile pulses) and the link in threads;
`agent.handle_scan(text)` processes one scan synchronously (simulator, tests);
`agent.anonymous_pass()` records one reader-less passage; `agent.stop()` / `agent.kill()`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sesame import __version__
from sesame.common import wire
from sesame.common.decision import Decision, decide
from sesame.common.reasons import Reason, label
from sesame.common.states import EventKind, VenueMode, ZoneAccess
from sesame.common.venue import Venue
from sesame.common.wire import Route, TopicKind
from sesame.common.wire.admissions import parse_admissions
from sesame.common.wire.shards import REVOKED_SHARDS, ShardedSet, shard_index
from sesame.gate.clock import GateClock, Reading, real_clock
from sesame.gate.display import GateView, ZoneLine
from sesame.gate.metrics import GateMetrics
from sesame.gate.outbox import Outbox
from sesame.gate.term import newer_lease
from sesame.gate.turnstile import MemoryTurnstile, Turnstile

log = logging.getLogger("sesame.gate")

PASS_TIMEOUT = 8.0  # seconds a person has to push the arm once the lane opens


class GateAgent:
    def __init__(
        self,
        venue: Venue,
        gate_id: str,
        *,
        data_dir: str | Path,
        keys: Mapping[str, Ed25519PublicKey],
        broker_url: str | None = None,
        credentials: str | Path | None = None,
        reader=None,  # gate.readers.base.CodeReader | None
        turnstile: Turnstile | None = None,
        clock: Callable[[], datetime] = real_clock,
        trust_counter_clock: bool = True,
        pass_timeout: float = PASS_TIMEOUT,
        heartbeat: float = 5.0,
        ack_timeout: float = 10.0,
        on_decision: Callable[[Decision], None] | None = None,
    ):
        if gate_id not in venue.gates:
            raise ValueError(f"gate {gate_id!r} is not a lane of venue {venue.id!r}")
        self.venue, self.gate = venue, venue.gates[gate_id]
        self.gate_id = gate_id
        self.keys = dict(keys)
        self.reader = reader
        self.turnstile: Turnstile = turnstile if turnstile is not None else MemoryTurnstile()
        self.clock = GateClock(venue, clock, trust_counter=trust_counter_clock)
        self.pass_timeout, self.heartbeat = pass_timeout, heartbeat
        self.topics = wire.Topics(venue.id)
        self.outbox = Outbox(Path(data_dir) / f"outbox-{gate_id}.db")
        self.state = "stopped"  # stopped | running | killed
        # last values received (restored from disk below)
        self.lease: wire.Lease | None = None
        self.fenced_messages = 0  # leases/acks of a lower counter term, ignored
        self.occupancy: dict[str, wire.Occupancy] = {}
        self.zone_control: dict[str, ZoneAccess] = {}
        self.venue_mode = VenueMode.NORMAL
        # badges/revoked/<shard>, each shard replaced by its own retained message
        self.revoked = ShardedSet(REVOKED_SHARDS)
        self.counter: wire.CounterStatus | None = None
        self.bad_messages = 0
        self.last_scan: datetime | None = None
        self.last: Decision | None = None
        self.last_passed: int | None = None
        self._scan_lock = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._free = False
        self._fire_seen = False  # fire alarm state last published
        self.locked = False  # staff lock of the lane (GATE_LOCKED); exits still open
        self.on_decision = on_decision  # called after each scan is recorded (CLI log line)
        self.last_tick = time.monotonic()  # the scan loop is alive (systemd watchdog)
        # An entry lane with a reader decides re-entry, so it keeps the venue's admissions
        # (every lane's badge passages, from the counter) beside its own: see on_message.
        self.keeps_admissions = self.gate.reader and not self.gate.is_exit
        self._gap_asked = 0.0  # monotonic time the lane last asked for missed admissions
        self.link = None
        if broker_url is not None or credentials is not None:
            from sesame.gate.link import GateLink

            self.link = GateLink(
                broker_url,
                gate=gate_id,
                topics=self.topics,
                outbox=self.outbox,
                credentials=credentials,
                will=self._status(online=False),
                on_message=self.on_message,
                on_change=self._publish_status,
                ack_timeout=ack_timeout,
                admissions=self.keeps_admissions,
            )
        for key, payload in self.outbox.states().items():
            route = wire.match_key(key)
            if route is not None:
                self._apply(route, payload, live=False)
        self.metrics = GateMetrics(self)  # served by `sesame gate run --metrics-port`

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self.state = "running"
        self._stop.clear()
        reading = self.clock.read()
        if reading.plausible:  # a wrong clock must not decide what is old
            self.outbox.prune(self.venue.local(reading.best).date())
        if self.link is not None:
            self.link.start()
        t = threading.Thread(target=self._loop, name=f"gate-{self.gate_id}", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        """Orderly stop: final offline status, clean disconnect, database closed."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        if self.link is not None:
            self.link.stop(final_status=self._status(online=False))
        self.outbox.close()
        self.state = "stopped"

    def kill(self) -> None:
        """Abrupt stop for tests: no final status, no DISCONNECT (the Last Will fires)."""
        self._stop.set()
        if self.link is not None:
            self.link.kill()
        for t in self._threads:
            t.join(timeout=5)
        self.outbox.close()
        self.state = "killed"

    def outbox_depth(self) -> int:
        return self.outbox.depth()

    @property
    def online(self) -> bool:
        return self.link is not None and self.link.connected

    @property
    def reaches_counter(self) -> bool:
        """Connected, and the counter's retained status (its Will when it dies) says it is
        online: the leases come from a living counter. Otherwise the lane is cut off from it,
        whether its own link or the counter is down."""
        return self.online and self.counter is not None and self.counter.online

    # -- the scan loop -------------------------------------------------------------------
    def _loop(self) -> None:
        next_beat = 0.0
        while not self._stop.is_set():
            self.last_tick = time.monotonic()
            try:
                if self.reader is not None:
                    text = self.reader.read(0.1)
                    if text is not None:
                        self.handle_scan(text)
                direction = self.turnstile.pulse(0 if self.reader is not None else 0.1)
                if direction is not None:
                    self.anonymous_pass()
                self._sync_free()
                if self._fire_seen != self.fire_alarm:
                    self._fire_seen = self.fire_alarm
                    log.warning("%s: fire alarm %s", self.gate_id,
                                "ACTIVE" if self._fire_seen else "restored")  # fmt: skip
                    next_beat = 0.0  # say it now, not at the next heartbeat
                if time.monotonic() >= next_beat and self.link is not None:
                    next_beat = time.monotonic() + self.heartbeat
                    self.link.request_status()
            except Exception:  # one bad scan or device hiccup must not stop the lane
                log.exception("%s: error in the scan loop", self.gate_id)
                time.sleep(0.1)

    def _sync_free(self) -> None:
        """Evacuation holds exit lanes free, a fire alarm every lane; back to normal when
        the input is restored and (for exits) the evacuation is over."""
        want = self.fire_alarm or (self.gate.is_exit and self.evacuating)
        if want != self._free:
            self.turnstile.hold_free(want)
            self._free = want

    @property
    def evacuating(self) -> bool:
        return self.venue_mode == VenueMode.EVACUATION

    @property
    def fire_alarm(self) -> bool:
        return bool(getattr(self.turnstile, "fire_alarm", False))

    # -- deciding ------------------------------------------------------------------------
    def zone_states(self) -> dict[str, str]:
        states = {z: o.state for z, o in self.occupancy.items()}
        for z, s in self.zone_control.items():
            if s == ZoneAccess.CLOSED:
                states[z] = "closed"
        return states

    def lease_left(self, zone: str, day: date) -> int | None:
        """Entries still allowed into `zone` today; None when no allowance applies: an exit,
        or a zone with `offline_policy = "open"` while this lane is cut off from the counter
        (while it reaches the counter, every zone's capacity is held by the leases)."""
        z = self.venue.zones.get(zone)
        if z is None or self.gate.is_exit or (
            z.offline_policy == "open" and not self.reaches_counter
        ):
            return None
        lease = self.lease
        if lease is None or lease.day != day.isoformat():
            return 0
        if lease.epoch is not None and lease.epoch != self.outbox.epoch:
            # counted against another outbox (this one was lost or replaced): acting on it
            # would spend the allowance twice; wait for the counter's lease for this epoch
            return 0
        return max(0, lease.grants.get(zone, 0) - self.outbox.entries(zone, day))

    def handle_scan(self, text: str | None) -> Decision:
        """Decide one scan, drive the turnstile, record everything. Returns the final decision:
        `passages` is how many actually passed; nobody passing makes it NO_PASSAGE."""
        t0 = time.monotonic()
        with self._scan_lock:
            reading = self.clock.read()
            now = reading.best
            day = self.venue.local(now).date()
            dec = decide(
                text,
                venue=self.venue,
                gate=self.gate,
                keys=self.keys,
                revoked=self.revoked,
                zone_states=self.zone_states(),
                venue_mode=self.venue_mode,
                lease_left=self.lease_left(self.gate.to_zone, day),
                memory=self.outbox,
                now=now,
                # a controller that does not answer cannot open the lane: say so up front
                gate_locked=self.locked or self.turnstile.health == "silent",
            )
            self.last_scan = now
            if dec.granted and self.fire_alarm and not self.gate.is_exit:
                dec = replace(
                    dec,
                    granted=False,
                    reason=Reason.FIRE_ALARM,
                    passages=0,
                    message_fr=label(Reason.FIRE_ALARM, "fr"),
                    message_en=label(Reason.FIRE_ALARM, "en"),
                )
            if not dec.granted:
                self._record(EventKind.DENIED, reading, day, dec, reason=dec.reason)
                self._shown(dec, None)
                return dec
            direction = "out" if self.gate.is_exit else "in"
            self.metrics.opened(time.monotonic() - t0)
            passed = 0
            for _ in range(dec.passages):
                if not self.turnstile.open(direction, self.pass_timeout):
                    break
                # committed before the lane shows the passage as done
                self._record(EventKind.PASSAGE, self.clock.read(), None, dec)
                passed += 1
            if passed < dec.passages:
                short = self.clock.read()  # fewer passed than the grant let through
                self._record(EventKind.DENIED, short, None, dec, reason=Reason.NO_PASSAGE)
            if passed == 0:
                final = replace(
                    dec,
                    granted=False,
                    reason=Reason.NO_PASSAGE,
                    passages=0,
                    message_fr=label(Reason.NO_PASSAGE, "fr"),
                    message_en=label(Reason.NO_PASSAGE, "en"),
                )
            else:
                final = replace(dec, passages=passed)
            self._shown(final, passed)
            return final

    def anonymous_pass(self) -> wire.Event:
        """One passage reported by the controller without a scan (badge null)."""
        with self._scan_lock:
            reading = self.clock.read()
            self.last_scan = reading.best
            return self._record(EventKind.PASSAGE, reading, None, None)

    def _record(
        self,
        kind: EventKind,
        reading: Reading,
        day: date | None,
        dec: Decision | None,
        reason: Reason | None = None,
    ) -> wire.Event:
        claims = dec.claims if dec is not None else None
        offset = reading.offset_ms

        def build(seq: int) -> wire.Event:
            return wire.Event(
                gate=self.gate_id,
                epoch=self.outbox.epoch,
                seq=seq,
                ts=self.venue.local(reading.best),
                kind=kind,
                from_zone=self.gate.from_zone,
                to_zone=self.gate.to_zone,
                badge=claims.badge if claims else None,
                category=claims.category if claims else None,
                reason=str(reason) if reason else None,
                gate_ts=self.venue.local(reading.own) if offset else None,
                clock_offset_ms=offset or None,
                group_size=claims.group if claims and claims.group > 1 else None,
            )

        ev = self.outbox.append(build, day or self.venue.local(reading.best).date())
        if self.link is not None:
            self.link.wake()
        return ev

    def _shown(self, dec: Decision, passed: int | None) -> None:
        self.last, self.last_passed = dec, passed
        self.metrics.scan(dec)
        if self.on_decision is not None:
            try:
                self.on_decision(dec)
            except Exception:
                log.exception("%s: on_decision callback failed", self.gate_id)

    # -- messages from the broker ----------------------------------------------------------
    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        route = self.topics.match(topic)
        if route is None:
            return
        mine = route.subject == self.gate_id
        if route.kind is TopicKind.ADMISSIONS or (route.kind is TopicKind.LANE_ADMISSIONS and mine):
            self._admissions(payload)
            return
        if route.kind is TopicKind.ACK and mine:
            ack = wire.parse_ack(payload)
            if not ack:
                self.bad_messages += 1
                return
            if not self.outbox.accept_term(ack.term):
                self.fenced_messages += 1  # from a former active counter
                return
            if self.outbox.ack(ack.epoch, ack.seq) and self.link is not None:
                self.link.wake()
                if self.outbox.depth() == 0:
                    self.link.request_status()  # the counter may reclaim allowance now
            return
        if self._apply(route, payload, live=not retained):
            self.outbox.put_state(route.key, payload, self.clock.read().best)
            if route.kind is TopicKind.LEASE and self.link is not None:
                self.link.request_status()  # confirm the lease serial we now act on

    def _admissions(self, payload: bytes) -> None:
        """Other lanes' admissions, live or replayed: kept in the outbox database, where
        `seen()` finds them. A gap (or a replay with more to come) makes the lane say in
        its status where it stands, and the counter sends it what it is missing."""
        if not self.keeps_admissions:
            return
        msg = parse_admissions(payload)
        if not msg:
            self.bad_messages += 1
            log.warning("%s: ignored malformed admissions: %s", self.gate_id, msg.reason)
            return
        whole = self.outbox.take_admissions(msg, self.gate_id)
        if self.link is None or (whole and not msg.more):
            return
        now = time.monotonic()
        # a replay with more to come is asked for at once; a gap in the live messages at
        # most once a second (each live message behind the gap shows it again)
        if msg.more or now - self._gap_asked >= 1.0:
            self._gap_asked = now
            self.link.request_status()

    def _apply(self, route: Route, payload: bytes, live: bool) -> bool:
        """Take one retained value; True when it was valid (and worth keeping on disk)."""
        kind = route.kind
        try:
            if kind is TopicKind.LEASE and route.subject == self.gate_id:
                lease = wire.parse_lease(payload)
                if not lease or lease.gate != self.gate_id:
                    raise ValueError("bad lease")
                if not self.outbox.accept_term(lease.term):
                    self.fenced_messages += 1  # from a former active counter
                    return False
                cur = self.lease
                if cur is None or newer_lease(lease.term, lease.serial, lease.day,
                                              cur.term, cur.serial, cur.day):  # fmt: skip
                    self.lease = lease
                return True
            if kind is TopicKind.OCCUPANCY:
                occ = wire.parse_occupancy(payload)
                if not occ or occ.zone != route.subject:
                    raise ValueError("bad occupancy")
                self.occupancy[occ.zone] = occ
                return True
            if kind is TopicKind.ZONE_CONTROL:
                ctl = wire.parse_zone_control(payload)
                if not ctl:
                    raise ValueError("bad zone control")
                self.zone_control[route.subject] = ctl.state
                return True
            if kind is TopicKind.VENUE_CONTROL:
                vc = wire.parse_venue_control(payload)
                if not vc:
                    raise ValueError("bad venue control")
                self.venue_mode = vc.mode
                return True
            if kind is TopicKind.REVOKED:
                rv = wire.parse_revocation_shard(payload)
                if not rv or shard_index(route.subject, REVOKED_SHARDS) != rv.shard:
                    raise ValueError("bad revocations")
                self.revoked.replace(rv.shard, rv.badges)
                return True
            if kind is TopicKind.COUNTER_STATUS:
                cs = wire.parse_counter_status(payload)
                if not cs:
                    raise ValueError("bad counter status")
                self.counter = cs
                if cs.online and cs.clock is not None:
                    self.clock.counter_clock(cs.clock, live=live)
                return True
        except ValueError:
            self.bad_messages += 1
            log.warning("%s: ignored a malformed message on %s", self.gate_id, route.key)
        return False

    # -- status and display ----------------------------------------------------------------
    def faults(self) -> list[str]:
        f = []
        if self.fire_alarm:
            f.append("FIRE_ALARM")
        if not self.clock.read().plausible:
            f.append("CLOCK_IMPLAUSIBLE")
        if self.turnstile.health == "silent":
            f.append("CONTROLLER_SILENT")
        health = getattr(self.reader, "health", "ok") if self.reader is not None else "ok"
        if health != "ok":
            f.append("READER_" + str(health).split(":")[0].upper().replace(" ", "_"))
        if self.link is not None:
            if self.link.state == "refused":
                f.append("CREDENTIALS_REFUSED")
            if self.link.refused_publishes:
                f.append("PUBLISH_REFUSED")
            if self.link.unacknowledged:
                f.append("UNACKNOWLEDGED")
        return f

    def _status(self, online: bool = True) -> bytes:
        now = self.clock.read().best
        counts = self.outbox.counts(self.venue.local(now).date())
        dec = self.last
        held_day, held_upto = self.outbox.admissions_cursor()
        if self.keeps_admissions and held_day is None:
            held_day = self.venue.local(now).date().isoformat()  # none yet: from the start
        return wire.GateStatus(
            gate=self.gate_id,
            online=online,
            outbox=self.outbox.depth(),
            last_scan=self.last_scan,
            version=__version__,
            epoch=self.outbox.epoch,
            faults=tuple(self.faults()) if online else (),
            controller=self.turnstile.health,
            ts=now,
            lease_serial=self.lease.serial if self.lease is not None else None,
            last_decision=dec.code if dec is not None else None,
            last_reason=str(dec.reason) if dec is not None and dec.reason else None,
            passages_today=counts[EventKind.PASSAGE],
            denied_today=counts[EventKind.DENIED],
            admissions_day=held_day if self.keeps_admissions else None,
            admissions_upto=held_upto if self.keeps_admissions else None,
        ).to_json()

    def _publish_status(self) -> None:
        if self.link is not None and self.link.connected and not self._stop.is_set():
            self.link.publish(self.topics.gate_status(self.gate_id), self._status(), retain=True)

    def view(self) -> GateView:
        reading = self.clock.read()
        day = self.venue.local(reading.best).date()
        counts = self.outbox.counts(day)
        dec = self.last
        cat = None
        if dec is not None and dec.claims is not None:
            c = self.venue.categories.get(dec.claims.category)
            cat = f"{c.label_fr} / {c.label_en}" if c else dec.claims.category
        zones = []
        states = self.zone_states()
        for zid in dict.fromkeys([self.gate.to_zone, self.gate.from_zone]):
            if zid not in self.venue.zones:
                continue
            z, occ = self.venue.zones[zid], self.occupancy.get(zid)
            zones.append(
                ZoneLine(
                    zid, z.name, occ.occupancy if occ else None, z.capacity, states.get(zid, "open")
                )
            )
        return GateView(
            gate=self.gate_id,
            gate_name=self.gate.name,
            online=self.online,
            outbox=self.outbox.depth(),
            faults=self.faults(),
            verdict=dec.code if dec else None,
            reason=str(dec.reason) if dec and dec.reason else None,
            message_fr=dec.message_fr if dec else "",
            message_en=dec.message_en if dec else "",
            category=cat,
            group=dec.claims.group if dec and dec.claims else 1,
            passed=self.last_passed,
            zones=zones,
            passages_today=counts[EventKind.PASSAGE],
            denied_today=counts[EventKind.DENIED],
            mode=self.venue_mode,
            clock=self.venue.local(reading.best).strftime("%Y-%m-%d %H:%M:%S"),
        )
