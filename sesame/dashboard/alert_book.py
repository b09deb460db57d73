"""The dashboard's alerts: one line per excursion or fault, acknowledged by an officer.

Pure logic (the caller passes the clocks and persists what each call returns as changed):
- zone alerts follow `alert_rules.step` (hysteresis, one alert per excursion);
- lane, counter and system faults are level-triggered conditions keyed `<kind>:<subject>`:
  a fault that comes back while its line is still open or ended less than `FLAP_WINDOW`
  ago reopens that line and counts one more occurrence, so a flapping lane is one line;
- lists are trimmed per group (zones, lanes, system), so a noisy lane never pushes a zone
  alert out, and an active or unacknowledged alert is never trimmed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from sesame.common import wire
from sesame.dashboard import alert_rules
from sesame.dashboard.alert_rules import Excursion, Thresholds

FLAP_WINDOW = timedelta(minutes=15)
KEEP_ENDED = 200  # ended lines kept in memory per group (zones, lanes, system)


class NoSuchAlert(KeyError):
    pass


class AlreadyAcknowledged(ValueError):
    def __init__(self, alert: Alert):
        super().__init__(f"already acknowledged by {alert.acked_by}")
        self.alert = alert


def _iso(t: datetime | None) -> str | None:
    return wire.iso(t) if t else None


def _dt(s: Any) -> datetime | None:
    return datetime.fromisoformat(s) if isinstance(s, str) else None


@dataclass
class Alert:
    id: int
    kind: str  # near_full, full, gate_offline, counter_offline, evacuation, a fault code...
    subject: str  # zone, lane, "counter" or the venue
    source: str  # "zone" | "lane" (gate status) | "counter" (counter/alerts) | "system"
    at: datetime  # start (event time for zones, the reporter's time otherwise)
    seen: datetime  # when the dashboard learnt of it (the dashboard's clock)
    raised_wall: datetime  # real time it was raised: escalation counts from it
    detail: dict[str, Any] = field(default_factory=dict)
    active: bool = True
    cleared: datetime | None = None  # end
    peak: int | None = None
    peak_at: datetime | None = None
    count: int = 1  # occurrences grouped on this line
    audible: bool = False
    acked_by: str | None = None
    acked_at: datetime | None = None
    escalated_at: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subject}"

    @property
    def group(self) -> str:
        return {"zone": "zones", "lane": "lanes", "counter": "lanes"}.get(self.source, "system")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "kind": self.kind,
            "subject": self.subject,
            "source": self.source,
            "group": self.group,
            "severity": alert_rules.severity(self.kind),
            "audible": self.audible,
            "at": _iso(self.at),
            "seen": _iso(self.seen),
            "detail": self.detail,
            "active": self.active,
            "cleared": _iso(self.cleared),
            "start": _iso(self.at),
            "end": _iso(self.cleared),
            "peak": self.peak,
            "peak_at": _iso(self.peak_at),
            "count": self.count,
            "acknowledged": self.acked_by is not None,
            "acked_by": self.acked_by,
            "acked_at": _iso(self.acked_at),
            "escalated": self.escalated_at is not None and self.active and not self.acked_by,
            "escalated_at": _iso(self.escalated_at),
            "raised_wall": _iso(self.raised_wall),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Alert:
        """Back from `to_dict` (the dashboard's database)."""
        times = {"at", "seen", "raised_wall", "cleared", "peak_at", "acked_at", "escalated_at"}
        kw = {}
        for f in fields(cls):
            v = d.get(f.name)
            kw[f.name] = _dt(v) if f.name in times else v
        kw["detail"] = dict(d.get("detail") or {})
        kw["count"] = int(d.get("count") or 1)
        kw["audible"] = bool(d.get("audible"))
        kw["active"] = bool(d.get("active"))
        return cls(**kw)


class AlertBook:
    def __init__(self, saved: Iterable[Alert] = (), *, next_id: int = 1):
        self.alerts: dict[int, Alert] = {}
        for a in saved:
            self.alerts[a.id] = a
            next_id = max(next_id, a.id + 1)
        self._ids = itertools.count(next_id)

    # -- reading -------------------------------------------------------------------------
    def listing(self) -> list[dict[str, Any]]:
        """Unacknowledged first (active before ended), then the rest; newest first."""
        return [a.to_dict() for a in sorted(self.alerts.values(), key=_order)]

    def unacknowledged(self) -> int:
        return sum(1 for a in self.alerts.values() if a.acked_by is None)

    def active(self, kind: str, subject: str) -> Alert | None:
        return next(
            (
                a
                for a in self.alerts.values()
                if a.active and (a.kind, a.subject) == (kind, subject)
            ),
            None,
        )

    def open_excursions(self, zone: str) -> dict[str, Excursion]:
        """The zone's open excursions as the rules see them (also after a restart)."""
        out = {}
        for a in self.alerts.values():
            if a.active and a.source == "zone" and a.subject == zone:
                peak = a.peak if a.peak is not None else 0
                out[a.kind] = Excursion(a.kind, a.at, peak, a.peak_at or a.at)
        return out

    # -- zones ---------------------------------------------------------------------------
    def zone_sample(
        self,
        zone: str,
        ts: datetime,
        occupancy: int,
        state: str | None,
        th: Thresholds,
        now: datetime,
        wall: datetime,
        capacity: int,
    ) -> list[Alert]:
        _, changes = alert_rules.step(self.open_excursions(zone), ts, occupancy, state, th)
        changed = []
        for what, exc in changes:
            if what == "start":
                a = self._new(exc.kind, zone, "zone", exc.start, now, wall,
                              {"occupancy": occupancy, "capacity": capacity,
                               "threshold": th.of(exc.kind)[0],
                               "clears_below": th.of(exc.kind)[1]})  # fmt: skip
                a.peak, a.peak_at = exc.peak, exc.peak_at
                a.audible = alert_rules.audible(exc.kind, False)
            else:
                a = self.active(exc.kind, zone)
                if a is None:
                    continue
                a.peak, a.peak_at = exc.peak, exc.peak_at
                if what == "end":
                    a.active, a.cleared = False, exc.end
            changed.append(a)
        return changed + self._trim()

    # -- faults and conditions -----------------------------------------------------------
    def condition(
        self,
        kind: str,
        subject: str,
        source: str,
        on: bool,
        at: datetime,
        now: datetime,
        wall: datetime,
        *,
        detail: dict[str, Any] | None = None,
        count: int | None = None,
        audible: bool = False,
    ) -> list[Alert]:
        """A fault present (on) or gone: raise, reopen, update or end its line."""
        a = self.active(kind, subject)
        if not on:
            if a is None:
                return []
            a.active, a.cleared = False, now
            return [a]
        if a is not None:  # still there: only the reporter's figures may change
            if (detail is None or detail == a.detail) and (count is None or count <= a.count):
                return []
            if detail is not None:
                a.detail = detail
            if count is not None:
                a.count = max(a.count, count)
            return [a]
        recent = self._recent(kind, subject, now)
        if recent is not None:  # flapping: the same line, one more occurrence
            recent.active, recent.cleared = True, None
            recent.count = max(recent.count + 1, count or 0)
            if detail is not None:
                recent.detail = detail
            return [recent]
        a = self._new(kind, subject, source, at, now, wall, detail or {})
        a.count = max(1, count or 1)
        a.audible = audible
        return [a, *self._trim()]

    def sync(
        self,
        source: str,
        present: Mapping[tuple[str, str], dict[str, Any]],
        now: datetime,
        wall: datetime,
        audible_of=lambda kind, subject: False,
        within=lambda kind, subject: True,
    ) -> list[Alert]:
        """A complete current list from one reporter (a shard of counter/alerts): what it
        no longer lists has ended, among the alerts `within` its scope (its shard).
        `present[(kind, subject)]` = {"since", "count", "detail"}."""
        changed: list[Alert] = []
        for a in list(self.alerts.values()):
            if (a.active and a.source == source and (a.kind, a.subject) not in present
                    and within(a.kind, a.subject)):  # fmt: skip
                changed += self.condition(a.kind, a.subject, source, False, now, now, wall)
        for (kind, subject), info in present.items():
            changed += self.condition(
                kind, subject, source, True, info.get("since") or now, now, wall,
                detail=info.get("detail") or {}, count=info.get("count"),
                audible=audible_of(kind, subject),
            )  # fmt: skip
        return _unique(changed)

    # -- the officer ---------------------------------------------------------------------
    def acknowledge(self, alert_id: int, user: str, at: datetime) -> Alert:
        a = self.alerts.get(alert_id)
        if a is None:
            raise NoSuchAlert(alert_id)
        if a.acked_by is not None:
            raise AlreadyAcknowledged(a)
        a.acked_by, a.acked_at = user, at
        return a

    def escalate(self, wall: datetime, after: timedelta) -> list[Alert]:
        """Mark the active alerts nobody acknowledged within `after` (real time)."""
        changed = []
        for a in self.alerts.values():
            if a.active and a.acked_by is None and a.escalated_at is None:
                if wall - a.raised_wall >= after:
                    a.escalated_at = wall
                    changed.append(a)
        return changed

    def escalated(self) -> list[Alert]:
        return sorted(
            (a for a in self.alerts.values() if a.active and a.acked_by is None and a.escalated_at),
            key=lambda a: a.key,
        )

    # -- inside --------------------------------------------------------------------------
    def _new(self, kind, subject, source, at, now, wall, detail) -> Alert:
        a = Alert(next(self._ids), kind, subject, source, at, now, wall, dict(detail))
        self.alerts[a.id] = a
        return a

    def _recent(self, kind: str, subject: str, now: datetime) -> Alert | None:
        cands = [
            a
            for a in self.alerts.values()
            if (a.kind, a.subject) == (kind, subject)
            and not a.active
            and a.cleared is not None
            and now - a.cleared < FLAP_WINDOW
        ]
        return max(cands, key=lambda a: a.id, default=None)

    def _trim(self) -> list[Alert]:
        """Forget the oldest ended lines beyond KEEP_ENDED per group, acknowledged ones
        first (they stay in the database); an active line is never forgotten. Returns
        nothing to push: browsers keep what they have."""
        by_group: dict[str, list[Alert]] = {}
        for a in self.alerts.values():
            if not a.active:
                by_group.setdefault(a.group, []).append(a)
        for items in by_group.values():
            if len(items) > KEEP_ENDED:
                items.sort(key=lambda a: (a.acked_by is None, a.id))
                for a in items[: len(items) - KEEP_ENDED]:
                    del self.alerts[a.id]
        return []


def _order(a: Alert) -> tuple:
    return (a.acked_by is not None, not a.active, -a.at.timestamp(), -a.id)


def _unique(alerts: list[Alert]) -> list[Alert]:
    seen: dict[int, Alert] = {}
    for a in alerts:
        seen[a.id] = a
    return list(seen.values())
