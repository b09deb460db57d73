"""A lane's messages: its events and status (gate → counter), its lease and the counter's
end-to-end ack (counter → gate)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sesame.common.ids import BADGE_ID, MAX_GROUP
from sesame.common.reasons import Reason
from sesame.common.states import EventKind
from sesame.common.wire.base import (
    _EPOCH,
    _GATE_ID,
    _ISO_DAY,
    _REASON_CODE,
    MAX_SEQ,
    VERSION,
    ParseError,
    _Bad,
    _count,
    _get,
    _ident,
    _total,
    _ts,
    _version,
    dumps,
    iso,
)


@dataclass(frozen=True)
class Event:
    """One passage or denial at a gate lane (`gates/<gate>/events`)."""

    gate: str
    epoch: str
    seq: int
    ts: datetime
    kind: EventKind
    from_zone: str
    to_zone: str
    badge: str | None = None
    category: str | None = None
    reason: str | None = None
    # extensions (optional on the wire)
    gate_ts: datetime | None = None  # the gate's own clock when it differs from ts
    clock_offset_ms: int | None = None  # correction applied to the gate's clock
    group_size: int | None = None  # size of the group badge this passage belongs to

    @property
    def id(self) -> str:
        return f"{self.gate}:{self.epoch}:{self.seq}"

    def to_dict(self) -> dict:
        d: dict[str, Any] = {
            "v": VERSION,
            "id": self.id,
            "gate": self.gate,
            "epoch": self.epoch,
            "seq": self.seq,
            "ts": iso(self.ts),
            "kind": self.kind,
            "from": self.from_zone,
            "to": self.to_zone,
            "badge": self.badge,
            "category": self.category,
            "reason": self.reason,
        }
        if self.gate_ts is not None:
            d["gate_ts"] = iso(self.gate_ts)
        if self.clock_offset_ms is not None:
            d["clock_offset_ms"] = self.clock_offset_ms
        if self.group_size is not None:
            d["group_size"] = self.group_size
        return d

    def to_json(self) -> bytes:
        return dumps(self.to_dict())


_KINDS = {k.value: k for k in EventKind}


@_total
def parse_event(obj: dict) -> Event | ParseError:
    _version(obj)
    gate = _ident(obj, "gate", _GATE_ID)
    epoch = _ident(obj, "epoch", _EPOCH)
    seq = _count(obj, "seq", 1)
    kind = _KINDS.get(_get(obj, "kind", str))  # a dict: EventKind(...) costs 0.5 us an event
    if kind is None:
        raise _Bad("field 'kind' must be 'passage' or 'denied'")
    eid = _get(obj, "id", str)
    if eid != f"{gate}:{epoch}:{seq}":
        raise _Bad("field 'id' does not match gate:epoch:seq")
    reason = _get(obj, "reason", str, optional=True)
    if kind == EventKind.DENIED:
        if reason is None:
            raise _Bad("a denial needs a reason")
        if reason not in Reason.__members__ and not _REASON_CODE.match(reason):
            raise _Bad("field 'reason' is not a reason code")
    elif reason is not None:
        raise _Bad("a passage has no reason")
    return Event(
        gate=gate,
        epoch=epoch,
        seq=seq,
        ts=_ts(obj, "ts"),
        kind=kind,
        from_zone=_ident(obj, "from", _GATE_ID),
        to_zone=_ident(obj, "to", _GATE_ID),
        badge=_ident(obj, "badge", BADGE_ID, optional=True),
        category=_ident(obj, "category", _GATE_ID, optional=True),
        reason=reason,
        gate_ts=_ts(obj, "gate_ts", optional=True),
        clock_offset_ms=_count(obj, "clock_offset_ms", -MAX_SEQ, MAX_SEQ, optional=True),
        group_size=_count(obj, "group_size", 1, MAX_GROUP, optional=True),
    )


@dataclass(frozen=True)
class GateStatus:
    """Retained `gates/<gate>/status`; also the gate's Last Will with online=False."""

    gate: str
    online: bool
    outbox: int = 0
    last_scan: datetime | None = None
    version: str = ""
    epoch: str | None = None
    faults: tuple[str, ...] = ()  # e.g. "CLOCK_IMPLAUSIBLE", "CONTROLLER_SILENT"
    controller: str | None = None  # "ok" | "silent" | None (no controller)
    ts: datetime | None = None
    # serial of the lease the gate is acting on; with outbox == 0 it lets the counter
    # reclaim allowance the gate no longer needs (sesame/counter/leases.py)
    lease_serial: int | None = None
    # what the staff at the lane see, so the officers see it too: the last decision
    # ("GRANTED" | "DENIED") with its reason code, and the lane's figures for today
    last_decision: str | None = None
    last_reason: str | None = None
    passages_today: int | None = None
    denied_today: int | None = None
    # an entry lane's place in the venue's admissions (counter/admissions): it holds every
    # one of `admissions_day` up to the counter's number `admissions_upto`; the counter
    # replays what is missing on gates/<gate>/admissions (sesame/counter/inside.py)
    admissions_day: str | None = None
    admissions_upto: int | None = None

    def to_json(self) -> bytes:
        d = asdict(self)
        if self.admissions_day is None:  # a lane without the memory says nothing of it
            del d["admissions_day"], d["admissions_upto"]
        d["v"] = VERSION
        d["faults"] = list(self.faults)
        d["last_scan"] = iso(self.last_scan) if self.last_scan else None
        d["ts"] = iso(self.ts) if self.ts else None
        return dumps(d)


def _decision(obj: dict) -> str | None:
    v = _get(obj, "last_decision", str, optional=True)
    if v is not None and v not in ("GRANTED", "DENIED"):
        raise _Bad("field 'last_decision' must be 'GRANTED' or 'DENIED'")
    return v


def _reason_code(obj: dict, key: str) -> str | None:
    v = _get(obj, key, str, optional=True)
    if v is not None and not _REASON_CODE.match(v):
        raise _Bad(f"field {key!r} is not a reason code")
    return v


@_total
def parse_gate_status(obj: dict) -> GateStatus | ParseError:
    _version(obj)
    faults = _get(obj, "faults", list, optional=True) or []
    if len(faults) > 32 or not all(isinstance(f, str) and len(f) <= 64 for f in faults):
        raise _Bad("field 'faults' must be a short list of codes")
    return GateStatus(
        gate=_ident(obj, "gate", _GATE_ID),
        online=_get(obj, "online", bool),
        outbox=_count(obj, "outbox", optional=True) or 0,
        last_scan=_ts(obj, "last_scan", optional=True),
        version=(_get(obj, "version", str, optional=True) or "")[:40],
        epoch=_ident(obj, "epoch", _EPOCH, optional=True),
        faults=tuple(faults),
        controller=_get(obj, "controller", str, optional=True),
        ts=_ts(obj, "ts", optional=True),
        lease_serial=_count(obj, "lease_serial", optional=True),
        last_decision=_decision(obj),
        last_reason=_reason_code(obj, "last_reason"),
        passages_today=_count(obj, "passages_today", optional=True),
        denied_today=_count(obj, "denied_today", optional=True),
        **_admissions_cursor(obj),
    )


def _admissions_cursor(obj: dict) -> dict[str, Any]:
    day = _get(obj, "admissions_day", str, optional=True)
    if day is None:
        return {}
    if not _ISO_DAY.match(day):
        raise _Bad("field 'admissions_day' is not a date")
    return {"admissions_day": day, "admissions_upto": _count(obj, "admissions_upto")}


@dataclass(frozen=True)
class Lease:
    """Retained `gates/<gate>/lease`: how many entries the gate may grant, per zone.

    `grants[zone]` is the cumulative number of entries the counter has allowed this gate
    into that zone in `day`; the gate may grant while its own count of granted entries
    for that day is below it. Cumulative figures make a lost or repeated message harmless.

    `epoch` names the outbox the figures are counted against: a lane whose outbox was lost
    or replaced (a new epoch counts its entries from 0) must not act on a lease written for
    another epoch, or it would spend its allowance twice.
    """

    gate: str
    day: str  # ISO date of the event day the allowance belongs to
    grants: dict[str, int] = field(default_factory=dict)
    serial: int = 0  # increases with every change, so a gate ignores stale copies
    ts: datetime | None = None
    epoch: str | None = None
    # the active counter's term (docs/scaling.md): a gate ignores leases of a lower term
    term: int | None = None

    def to_json(self) -> bytes:
        d = {
            "v": VERSION,
            "gate": self.gate,
            "day": self.day,
            "grants": self.grants,
            "serial": self.serial,
            "ts": iso(self.ts) if self.ts else None,
        }
        if self.epoch is not None:
            d["epoch"] = self.epoch
        if self.term is not None:
            d["term"] = self.term
        return dumps(d)


@_total
def parse_lease(obj: dict) -> Lease | ParseError:
    _version(obj)
    grants = _get(obj, "grants", dict)
    if len(grants) > 256:
        raise _Bad("too many zones in 'grants'")
    for z, n in grants.items():
        if not _GATE_ID.match(z) or type(n) is not int or not 0 <= n <= MAX_SEQ:
            raise _Bad("field 'grants' must map zone ids to counts")
    day = _get(obj, "day", str)
    # canonical ISO only: strptime alone takes "2018-1-2", which a gate would never match
    if not _ISO_DAY.match(day):
        raise _Bad("field 'day' must be an ISO date YYYY-MM-DD")
    datetime.strptime(day, "%Y-%m-%d")
    return Lease(
        gate=_ident(obj, "gate", _GATE_ID),
        day=day,
        grants=dict(grants),
        serial=_count(obj, "serial", optional=True) or 0,
        epoch=_ident(obj, "epoch", _EPOCH, optional=True),
        ts=_ts(obj, "ts", optional=True),
        term=_count(obj, "term", 1, optional=True),
    )


@dataclass(frozen=True)
class Ack:
    """Retained `gates/<gate>/ack`: every event of `epoch` up to `seq` is committed."""

    epoch: str
    seq: int
    term: int | None = None  # the active counter's term, as on leases

    def to_json(self) -> bytes:
        d: dict[str, Any] = {"v": VERSION, "epoch": self.epoch, "seq": self.seq}
        if self.term is not None:
            d["term"] = self.term
        return dumps(d)


@_total
def parse_ack(obj: dict) -> Ack | ParseError:
    _version(obj)
    return Ack(
        epoch=_ident(obj, "epoch", _EPOCH),
        seq=_count(obj, "seq", 0),
        term=_count(obj, "term", 1, optional=True),
    )
