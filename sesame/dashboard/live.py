"""Live state of the venue as the dashboard sees it, built from retained MQTT messages.

Pure logic: `LiveState.apply(topic, payload, now)` parses one message and returns the
updates to push to browsers; no I/O. Alerts are derived here from state transitions
(zone near full, zone full, gate offline, counter offline) with the time they happened.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sesame.common import wire
from sesame.common.venue import Venue
from sesame.common.wire import Route, TopicKind

MAX_ALERTS = 500
MAX_POINTS = 2000  # live points kept per zone (the history comes from the counter's DB)
_SEVERITY = {"open": 0, "near_full": 1, "full": 2, "closed": 0, "evacuating": 0}

Update = tuple[str, dict[str, Any]]  # (SSE event name, JSON-able data)


def _iso(t: datetime | None) -> str | None:
    return wire.iso(t) if t else None


@dataclass
class Alert:
    id: int
    kind: str  # "near_full" | "full" | "gate_offline" | "counter_offline"
    subject: str  # zone or gate id ("counter" for the counter)
    at: datetime  # when it happened (event time for zones, status time for gates)
    seen: datetime  # when the dashboard learnt of it
    detail: dict[str, Any] = field(default_factory=dict)
    active: bool = True
    cleared: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "subject": self.subject,
            "at": _iso(self.at),
            "seen": _iso(self.seen),
            "detail": self.detail,
            "active": self.active,
            "cleared": _iso(self.cleared),
        }


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

    def __init__(self, venue: Venue):
        self.venue = venue
        self.topics = wire.Topics(venue.id)
        self.lock = threading.RLock()
        self._alert_ids = itertools.count(1)
        self.alerts: deque[Alert] = deque(maxlen=MAX_ALERTS)
        self.mode = "normal"
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
                "alerts": [a.to_dict() for a in reversed(self.alerts)],
                "day": self.current_day().isoformat() if self.current_day() else None,
            }

    def alert_list(self) -> list[dict[str, Any]]:
        with self.lock:
            return [a.to_dict() for a in reversed(self.alerts)]

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
    def apply(self, topic: str, payload: bytes, now: datetime) -> list[Update]:
        route = self.topics.match(topic)
        if route is None:
            return []
        with self.lock:
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
            self.mode = vc.mode if vc else "normal"
            self.mode_by = vc.by if vc else None
            return [("venue", {"mode": self.mode, "by": self.mode_by})]
        if kind is TopicKind.COUNTER_STATUS:
            return self._counter_status(payload, now)
        if kind is TopicKind.ALERTS:
            return self._counter_alerts(payload, now)
        return []

    def _occupancy(self, zone: str, payload: bytes, now: datetime) -> list[Update]:
        msg = wire.parse_occupancy(payload)
        if not msg or msg.zone != zone:
            self.rejected += 1
            return []
        z = self.zones[zone]
        cfg = self.venue.zones[zone]
        before = z["level"]
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
        sev_before, sev_now = _SEVERITY.get(before, 0), _SEVERITY.get(level, 0)
        if sev_now > sev_before:
            # resolve a lesser alert for the zone, raise the new one
            self._clear(lambda a: a.subject == zone and a.kind in ("near_full", "full"), now, out)
            a = self._raise(
                level, zone, msg.ts, now, occupancy=msg.occupancy, capacity=z["capacity"]
            )
            out.append(("alert", a.to_dict()))
        elif sev_now < sev_before:
            kinds = ("full",) if level == "near_full" else ("near_full", "full")
            self._clear(lambda a: a.subject == zone and a.kind in kinds, now, out)
            if level == "near_full" and not any(
                a.active and a.subject == zone and a.kind == "near_full" for a in self.alerts
            ):
                a = self._raise(
                    "near_full", zone, msg.ts, now, occupancy=msg.occupancy, capacity=z["capacity"]
                )
                out.append(("alert", a.to_dict()))
        return out

    def _gate_status(self, gate: str, payload: bytes, now: datetime) -> list[Update]:
        msg = wire.parse_gate_status(payload)
        if not msg or msg.gate != gate:
            self.rejected += 1
            return []
        g = self.gates[gate]
        was = g["online"]
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
        if not msg.online and was is not False:
            a = self._raise("gate_offline", gate, msg.ts or now, now, outbox=msg.outbox)
            out.append(("alert", a.to_dict()))
        elif msg.online and was is False:
            self._clear(lambda a: a.subject == gate and a.kind == "gate_offline", now, out)
        return out

    def _counter_status(self, payload: bytes, now: datetime) -> list[Update]:
        msg = wire.parse_counter_status(payload)
        if not msg:
            self.rejected += 1
            return []
        was = self.counter.get("online")
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
        if not msg.online and was is not False:
            a = self._raise("counter_offline", "counter", msg.clock or now, now)
            out.append(("alert", a.to_dict()))
        elif msg.online and was is False:
            self._clear(lambda a: a.kind == "counter_offline", now, out)
        return out

    def _counter_alerts(self, payload: bytes, now: datetime) -> list[Update]:
        """The counter's findings (counter/alerts, the complete list each time): raise the
        new ones as alerts of their kind (e.g. FIRE_ALARM), clear those no longer listed."""
        msg = wire.parse_alerts(payload)
        if not msg:
            self.rejected += 1
            return []
        listed = {a.key: a for a in msg.alerts}
        out: list[Update] = []
        self._clear(lambda a: "key" in a.detail and a.detail["key"] not in listed, now, out)
        shown = {a.detail["key"] for a in self.alerts if a.active and "key" in a.detail}
        for key, f in listed.items():
            if key not in shown:
                a = self._raise(f.kind, f.subject, f.since, now, key=key, **f.detail)
                out.append(("alert", a.to_dict()))
        return out

    def counter_public(self) -> dict[str, Any]:
        with self.lock:
            return {k: v for k, v in self.counter.items() if not k.startswith("_")}

    # -- alerts ------------------------------------------------------------------
    def _raise(self, kind: str, subject: str, at: datetime, now: datetime, **detail) -> Alert:
        a = Alert(next(self._alert_ids), kind, subject, at, now, detail)
        self.alerts.append(a)
        return a

    def _clear(self, pred, now: datetime, out: list[Update]) -> None:
        for a in self.alerts:
            if a.active and pred(a):
                a.active, a.cleared = False, now
                out.append(("alert", a.to_dict()))
