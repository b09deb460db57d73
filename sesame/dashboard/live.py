"""Live state of the venue as the dashboard sees it, built from retained MQTT messages.

Pure logic: `LiveState.apply(topic, payload, now)` parses one message and returns the
updates to push to browsers; no I/O. Alerts are kept by an `AlertBook` (hysteresis on
zones, one line per flapping lane fault, acknowledgements); the caller persists the alerts
each update carries.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sesame.common import wire
from sesame.common.states import VenueMode
from sesame.common.venue import Venue
from sesame.common.wire import Route, TopicKind
from sesame.common.wire.alerts import parse_counter_alerts
from sesame.common.wire.shards import ALERT_SHARDS, shard_index, shard_of
from sesame.dashboard import alert_rules
from sesame.dashboard.alert_book import Alert, AlertBook

MAX_POINTS = 2000  # live points kept per zone (the history comes from the counter's DB)
_SEVERITY = {"open": 0, "near_full": 1, "full": 2, "closed": 0, "evacuating": 0}

Update = tuple[str, dict[str, Any]]  # (SSE event name, JSON-able data)


def _iso(t: datetime | None) -> str | None:
    return wire.iso(t) if t else None


def zone_level(state: str | None, occupancy: int | None, capacity: int, near: float) -> str:
    """The colour a zone is shown in: the counter's state, or worse if its figures say so.

    The counter owns the thresholds; recomputing here only guards against a stale state
    field, and never shows a zone better than the counter says.
    """
    if state is None or occupancy is None:
        return "unknown"
    if state in ("closed", "evacuating"):
        return state
    own = (
        "full" if occupancy >= capacity else "near_full" if occupancy >= near * capacity else "open"
    )
    return state if _SEVERITY.get(state, 0) >= _SEVERITY[own] else own


class LiveState:
    """What every browser is shown. Call `apply` from the MQTT thread; reads take the lock."""

    def __init__(self, venue: Venue, saved_alerts: Iterable[Alert] = (), next_alert_id: int = 1):
        self.venue = venue
        self.topics = wire.Topics(venue.id)
        self.lock = threading.RLock()
        self.book = AlertBook(saved_alerts, next_id=next_alert_id)
        self._wall: datetime | None = None  # real time of the message being applied
        self._thresholds = {
            z.id: alert_rules.thresholds(z.capacity, z.near_full, z.alert_hysteresis)
            for z in venue.zones.values()
        }
        self.mode = VenueMode.NORMAL
        self.mode_by: str | None = None
        self.counter: dict[str, Any] = {"online": None}
        self.broker: dict[str, Any] = {"state": "disconnected", "detail": ""}
        self.last_event_ts: datetime | None = None
        self.rejected = 0  # malformed messages seen (shown, never fatal)
        self.zones: dict[str, dict[str, Any]] = {}
        self.series: dict[str, deque[tuple[str, int]]] = {}
        for z in venue.zones.values():
            self.zones[z.id] = {
                "id": z.id,
                "name": z.name,
                "capacity": z.capacity,
                "near_full_at": round(z.capacity * z.near_full),
                "occupancy": None,
                "state": None,
                "level": "unknown",
                "control": None,
                "control_by": None,
                "ts": None,
                "full_in_min": None,  # the counter's forecast (docs/mqtt.md)
                "entry_rates": None,  # passages per minute of each entry lane into it
            }
            self.series[z.id] = deque(maxlen=MAX_POINTS)
        self.gates: dict[str, dict[str, Any]] = {}
        for g in venue.gates.values():
            self.gates[g.id] = {
                "id": g.id,
                "name": g.name,
                "from": g.from_zone,
                "to": g.to_zone,
                "exit": g.is_exit,
                "online": None,  # never heard of
                "outbox": None,
                "last_scan": None,
                "controller": None,
                "faults": [],
                "version": None,
                "ts": None,
                "last_decision": None,
                "last_reason": None,
                "passages_today": None,
                "denied_today": None,
            }

    # -- reading -----------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "mode": self.mode,
                "mode_by": self.mode_by,
                "counter": {k: v for k, v in self.counter.items() if not k.startswith("_")},
                "broker": dict(self.broker),
                "zones": [dict(z) for z in self.zones.values()],
                "gates": [dict(g, faults=list(g["faults"])) for g in self.gates.values()],
                "alerts": self.book.listing(),
                "day": self.current_day().isoformat() if self.current_day() else None,
            }

    def alert_list(self) -> list[dict[str, Any]]:
        with self.lock:
            return self.book.listing()

    def current_day(self) -> date | None:
        """The event day the live figures belong to (event time, so replays work)."""
        with self.lock:
            # the counter's event clock first: occupancy messages carry the counter's wall
            # clock, which differs from event time during a replay
            for t in (self.counter.get("_event_clock"), self.last_event_ts):
                if t is not None:
                    d = self.venue.day_of(t)
                    if d:
                        return d.date
        return None

    # -- applying messages -------------------------------------------------------
    def apply(
        self, topic: str, payload: bytes, now: datetime, wall: datetime | None = None
    ) -> list[Update]:
        """`now`: the dashboard's clock (a replay's day); `wall`: real time, which
        escalation counts in (defaults to `now`)."""
        route = self.topics.match(topic)
        if route is None:
            return []
        with self.lock:
            self._wall = wall or now
            try:
                return self._apply(route, payload, now)
            except (KeyError, ValueError, TypeError):  # belt and braces: never kill the loop
                self.rejected += 1
                return []

    def _apply(self, route: Route, payload: bytes, now: datetime) -> list[Update]:
        kind, subject = route.kind, route.subject
        if kind is TopicKind.OCCUPANCY and subject in self.zones:
            return self._occupancy(subject, payload, now)
        if kind is TopicKind.GATE_STATUS and subject in self.gates:
            return self._gate_status(subject, payload, now)
        if kind is TopicKind.ZONE_CONTROL and subject in self.zones:
            if not payload:  # retained message cleared
                self.zones[subject].update(control=None, control_by=None)
                return [("zone", dict(self.zones[subject]))]
            msg = wire.parse_zone_control(payload)
            if not msg:
                self.rejected += 1
                return []
            self.zones[subject].update(control=msg.state, control_by=msg.by)
            return [("zone", dict(self.zones[subject]))]
        if kind is TopicKind.VENUE_CONTROL:
            vc = wire.parse_venue_control(payload) if payload else None
            if payload and not vc:
                self.rejected += 1
                return []
            self.mode = vc.mode if vc else VenueMode.NORMAL
            self.mode_by = vc.by if vc else None
            out: list[Update] = [("venue", {"mode": self.mode, "by": self.mode_by})]
            return out + self.venue_alert(now, self._wall or now)
        if kind is TopicKind.COUNTER_STATUS:
            return self._counter_status(payload, now)
        if kind is TopicKind.ALERTS:
            return self._counter_alerts(subject, payload, now)
        return []

    def _occupancy(self, zone: str, payload: bytes, now: datetime) -> list[Update]:
        msg = wire.parse_occupancy(payload)
        if not msg or msg.zone != zone:
            self.rejected += 1
            return []
        z = self.zones[zone]
        cfg = self.venue.zones[zone]
        level = zone_level(msg.state, msg.occupancy, msg.capacity or cfg.capacity, cfg.near_full)
        z.update(
            occupancy=msg.occupancy,
            capacity=msg.capacity or cfg.capacity,
            state=msg.state,
            level=level,
            ts=_iso(msg.ts),
            full_in_min=msg.full_in_min,
            entry_rates=msg.entry_rates,
        )
        if self.last_event_ts is None or msg.ts > self.last_event_ts:
            self.last_event_ts = msg.ts
        self.series[zone].append((_iso(msg.ts), msg.occupancy))
        out: list[Update] = [("zone", dict(z))]
        changed = self.book.zone_sample(
            zone, msg.ts, msg.occupancy, msg.state, self._zone_thresholds(zone, z["capacity"]),
            now, self._wall or now, z["capacity"],
        )  # fmt: skip
        return out + _alert_updates(changed)

    def _zone_thresholds(self, zone: str, capacity: int) -> alert_rules.Thresholds:
        th = self._thresholds[zone]
        if th.full != capacity:  # the counter announces another capacity: follow it
            cfg = self.venue.zones[zone]
            th = alert_rules.thresholds(capacity, cfg.near_full, cfg.alert_hysteresis)
        return th

    def _gate_status(self, gate: str, payload: bytes, now: datetime) -> list[Update]:
        msg = wire.parse_gate_status(payload)
        if not msg or msg.gate != gate:
            self.rejected += 1
            return []
        g = self.gates[gate]
        g.update(
            online=msg.online,
            outbox=msg.outbox,
            last_scan=_iso(msg.last_scan),
            controller=msg.controller,
            faults=list(msg.faults),
            version=msg.version,
            ts=_iso(msg.ts),
            last_decision=msg.last_decision,
            last_reason=msg.last_reason,
            passages_today=msg.passages_today,
            denied_today=msg.denied_today,
        )
        out: list[Update] = [("gate", dict(g, faults=list(g["faults"])))]
        wall = self._wall or now
        entrance = not self.venue.gates[gate].is_exit
        changed = self.book.condition(
            "gate_offline", gate, "lane", not msg.online, msg.ts or now, now, wall,
            detail={"outbox": msg.outbox}, audible=alert_rules.audible("gate_offline", entrance),
        )  # fmt: skip
        # each fault code the lane reports is its own line (CLOCK_IMPLAUSIBLE...)
        faults = set(msg.faults) if msg.online else set()
        known = {a.kind for a in self.book.alerts.values() if a.active and a.subject == gate
                 and a.source == "lane" and a.kind != "gate_offline"}  # fmt: skip
        for code in sorted(faults | known):
            # from when the dashboard heard of it: a fault such as CLOCK_IMPLAUSIBLE means
            # the lane's own timestamp is not to be believed
            changed += self.book.condition(
                code, gate, "lane", code in faults, now, now, wall,
                audible=alert_rules.audible(code, entrance),
            )  # fmt: skip
        return out + _alert_updates(changed)

    def _counter_status(self, payload: bytes, now: datetime) -> list[Update]:
        msg = wire.parse_counter_status(payload)
        if not msg:
            self.rejected += 1
            return []
        self.counter = {
            "online": msg.online,
            "clock": _iso(msg.clock),
            "event_clock": _iso(msg.event_clock),
            "ingest_lag_ms": msg.ingest_lag_ms,
            "open_gaps": msg.open_gaps,
            "version": msg.version,
            "_event_clock": msg.event_clock,
        }
        public = {k: v for k, v in self.counter.items() if not k.startswith("_")}
        out: list[Update] = [("counter", public)]
        changed = self.book.condition(
            "counter_offline", "counter", "system", not msg.online, msg.clock or now, now,
            self._wall or now,
        )  # fmt: skip
        return out + _alert_updates(changed)

    def _counter_alerts(self, shard: str | None, payload: bytes, now: datetime) -> list[Update]:
        """One shard of the counter's findings (lanes, zones), mirrored as alerts: what it
        lists is active, the counter's alerts of that shard it does not list have ended
        (those of other shards wait for their own shard's message)."""
        index = shard_index(shard, ALERT_SHARDS)
        msg = parse_counter_alerts(payload) if payload else None
        if index is None or (payload and not msg) or (msg and msg.shard != index):
            self.rejected += 1
            return []
        part = {}
        for f in msg.alerts if msg else ():
            if f.subject not in self.gates and f.subject not in self.zones:
                continue  # another venue's lane, or a typo: nothing to show it against
            part[(f.kind, f.subject)] = {"since": f.since, "count": f.count,
                                         "detail": f.detail}  # fmt: skip

        def audible(kind: str, subject: str) -> bool:
            gate = self.venue.gates.get(subject)
            return alert_rules.audible(kind, gate is not None and not gate.is_exit)

        def in_shard(kind: str, subject: str) -> bool:
            return shard_of(f"{kind}:{subject}", ALERT_SHARDS) == index

        changed = self.book.sync("counter", part, now, self._wall or now, audible, in_shard)
        return _alert_updates(changed)

    def counter_public(self) -> dict[str, Any]:
        with self.lock:
            return {k: v for k, v in self.counter.items() if not k.startswith("_")}

    # -- alerts ------------------------------------------------------------------
    def acknowledge(self, alert_id: int, user: str, at: datetime) -> dict[str, Any]:
        """Raises NoSuchAlert or AlreadyAcknowledged (sesame.dashboard.alert_book)."""
        with self.lock:
            return self.book.acknowledge(alert_id, user, at).to_dict()

    def venue_alert(self, now: datetime, wall: datetime) -> list[Update]:
        """Evacuation is an alert too (it sounds in every control room)."""
        evacuating = self.mode == VenueMode.EVACUATION
        changed = self.book.condition(
            "evacuation", self.venue.id, "system", evacuating, now, now, wall,
            detail={"by": self.mode_by} if self.mode_by else {},
            audible=alert_rules.audible("evacuation", False),
        )  # fmt: skip
        return _alert_updates(changed)


def _alert_updates(changed: list[Alert]) -> list[Update]:
    return [("alert", a.to_dict()) for a in changed]
