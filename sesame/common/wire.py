"""The MQTT wire contract: topics and typed messages (see DESIGN.md, "Topics").

Parsing is strict and total: every `parse_*` returns either the message or a ParseError,
never raises. Unknown extra fields are ignored so the contract can grow; fields named in
DESIGN.md are never renamed.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sesame.common.ids import BADGE_ID, MAX_GROUP
from sesame.common.reasons import Reason
from sesame.common.topics import ROOT, Route, TopicKind, Topics, match_key  # noqa: F401

VERSION = 1
MAX_PAYLOAD = 16 * 1024  # bytes; a genuine message is a few hundred
ZONE_STATES = ("open", "near_full", "full", "closed", "evacuating")
_GATE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_EPOCH = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_REASON_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,39}$")
MAX_SEQ = 2**53  # JSON-safe integer range
# Timestamps a gate or counter clock can plausibly read (1970 included: a board without a
# real-time clock boots there), far enough from datetime's limits for any time zone.
TS_MIN = datetime(1900, 1, 1, tzinfo=UTC)
TS_MAX = datetime(2900, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ParseError:
    """Why a payload was refused; stored with the payload in the counter's quarantine."""

    reason: str

    def __bool__(self) -> bool:  # so `if not parsed:` reads naturally
        return False


# -- helpers ---------------------------------------------------------------------


def _load(payload: bytes | str, limit: int = MAX_PAYLOAD) -> dict | ParseError:
    if isinstance(payload, str):
        payload = payload.encode("utf-8", "surrogatepass")
    if not isinstance(payload, bytes | bytearray):
        return ParseError("payload is not bytes")
    if len(payload) > limit:
        return ParseError(f"payload too large ({len(payload)} bytes > {limit})")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError:
        return ParseError("payload is not valid UTF-8")
    try:
        obj = _DECODER.decode(text)
    except (ValueError, RecursionError):
        return ParseError("payload is not JSON")
    if not isinstance(obj, dict):
        return ParseError("payload is not a JSON object")
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


# One decoder for all messages: json.loads with arguments builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


class _Bad(Exception):
    pass


def _get(obj: dict, key: str, typ: type | tuple, *, optional: bool = False) -> Any:
    if key not in obj or obj[key] is None:
        if optional:
            return None
        raise _Bad(f"missing field {key!r}")
    v = obj[key]
    # bool is an int in Python; never accept it where a number is expected
    if isinstance(v, bool) and bool not in (typ if isinstance(typ, tuple) else (typ,)):
        raise _Bad(f"field {key!r} has the wrong type")
    if not isinstance(v, typ):
        raise _Bad(f"field {key!r} has the wrong type")
    if isinstance(v, float) and not math.isfinite(v):
        raise _Bad(f"field {key!r} is not a finite number")
    return v


def _ts(obj: dict, key: str, *, optional: bool = False) -> datetime | None:
    s = _get(obj, key, str, optional=optional)
    if s is None:
        return None
    if len(s) > 40:
        raise _Bad(f"field {key!r} is not a timestamp")
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        raise _Bad(f"field {key!r} is not an ISO 8601 timestamp") from None
    if t.tzinfo is None:
        raise _Bad(f"field {key!r} has no UTC offset")
    # Years 1 and 9999 parse, but their instant overflows once moved to UTC or to the
    # venue's zone (the counter's day and hour): refuse what no clock can read.
    try:
        utc = t.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not TS_MIN <= utc < TS_MAX:
        raise _Bad(f"field {key!r} is out of range")
    return t


def _version(obj: dict) -> None:
    v = obj.get("v", VERSION)
    if type(v) is not int or v != VERSION:
        raise _Bad(f"unsupported version {v!r}")


def _ident(obj: dict, key: str, pattern: re.Pattern, *, optional: bool = False) -> str | None:
    s = _get(obj, key, str, optional=optional)
    if s is not None and not pattern.match(s):
        raise _Bad(f"field {key!r} is not a valid id")
    return s


def _count(obj: dict, key: str, lo: int = 0, hi: int = MAX_SEQ, optional: bool = False) -> Any:
    n = _get(obj, key, int, optional=optional)
    if n is not None and not lo <= n <= hi:
        raise _Bad(f"field {key!r} is out of range")
    return n


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


T = TypeVar("T")


def _total(fn=None, *, limit: int = MAX_PAYLOAD):
    """Wrap a parser so that nothing escapes it but a message or a ParseError."""
    if fn is None:
        return lambda f: _total(f, limit=limit)

    def wrapper(payload: bytes | str):
        obj = _load(payload, limit)
        if isinstance(obj, ParseError):
            return obj
        try:
            return fn(obj)
        except _Bad as e:
            return ParseError(str(e))
        except (ValueError, TypeError, KeyError, OverflowError) as e:
            return ParseError(f"invalid message: {e}")

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


# -- messages --------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One passage or denial at a gate lane (`gates/<gate>/events`)."""

    gate: str
    epoch: str
    seq: int
    ts: datetime
    kind: str  # "passage" | "denied"
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


@_total
def parse_event(obj: dict) -> Event | ParseError:
    _version(obj)
    gate = _ident(obj, "gate", _GATE_ID)
    epoch = _ident(obj, "epoch", _EPOCH)
    seq = _count(obj, "seq", 1)
    kind = _get(obj, "kind", str)
    if kind not in ("passage", "denied"):
        raise _Bad("field 'kind' must be 'passage' or 'denied'")
    eid = _get(obj, "id", str)
    if eid != f"{gate}:{epoch}:{seq}":
        raise _Bad("field 'id' does not match gate:epoch:seq")
    reason = _get(obj, "reason", str, optional=True)
    if kind == "denied":
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


@dataclass(frozen=True)
class Occupancy:
    """Retained `zones/<zone>/occupancy`."""

    zone: str
    occupancy: int
    capacity: int
    state: str
    ts: datetime
    # optional (docs/mqtt.md): minutes until full at the last 10 minutes' net inflow, when
    # that is under an hour; passages per minute of each entry lane into the zone
    full_in_min: int | None = None
    entry_rates: dict[str, int] | None = None

    def to_json(self) -> bytes:
        obj: dict[str, Any] = {
            "v": VERSION,
            "zone": self.zone,
            "occupancy": self.occupancy,
            "capacity": self.capacity,
            "state": self.state,
            "ts": iso(self.ts),
        }
        if self.full_in_min is not None:
            obj["full_in_min"] = self.full_in_min
        if self.entry_rates is not None:
            obj["entry_rates"] = self.entry_rates
        return dumps(obj)


@_total
def parse_occupancy(obj: dict) -> Occupancy | ParseError:
    _version(obj)
    state = _get(obj, "state", str)
    if state not in ZONE_STATES:
        raise _Bad("field 'state' is not a zone state")
    return Occupancy(
        zone=_ident(obj, "zone", _GATE_ID),
        occupancy=_count(obj, "occupancy", -(10**9), 10**9),
        capacity=_count(obj, "capacity", 0, 10**9),
        state=state,
        ts=_ts(obj, "ts"),
        full_in_min=_count(obj, "full_in_min", 0, 24 * 60, optional=True),
        entry_rates=_rates(obj),
    )


MAX_RATE = 10_000  # passages per minute: far above any turnstile, below any overflow


def _rates(obj: dict) -> dict[str, int] | None:
    rates = _get(obj, "entry_rates", dict, optional=True)
    if rates is None:
        return None
    if len(rates) > 1000:
        raise _Bad("field 'entry_rates' has too many lanes")
    out = {}
    for gate, n in rates.items():
        if not isinstance(gate, str) or not _GATE_ID.match(gate):
            raise _Bad("field 'entry_rates' names an invalid gate id")
        if type(n) is not int or not 0 <= n <= MAX_RATE:
            raise _Bad("field 'entry_rates' has a rate out of range")
        out[gate] = n
    return out


@dataclass(frozen=True)
class ZoneControl:
    """Retained `control/zones/<zone>`: a safety officer opened or closed the zone."""

    state: str  # "open" | "closed"
    by: str | None = None
    ts: datetime | None = None

    def to_json(self) -> bytes:
        return dumps(
            {
                "v": VERSION,
                "state": self.state,
                "by": self.by,
                "ts": iso(self.ts) if self.ts else None,
            }
        )


@_total
def parse_zone_control(obj: dict) -> ZoneControl | ParseError:
    _version(obj)
    state = _get(obj, "state", str)
    if state not in ("open", "closed"):
        raise _Bad("field 'state' must be 'open' or 'closed'")
    by = _get(obj, "by", str, optional=True)
    return ZoneControl(state=state, by=by[:64] if by else None, ts=_ts(obj, "ts", optional=True))


@dataclass(frozen=True)
class VenueControl:
    """Retained `control/venue`: normal operation or evacuation."""

    mode: str  # "normal" | "evacuation"
    by: str | None = None
    ts: datetime | None = None

    def to_json(self) -> bytes:
        return dumps(
            {
                "v": VERSION,
                "mode": self.mode,
                "by": self.by,
                "ts": iso(self.ts) if self.ts else None,
            }
        )


@_total
def parse_venue_control(obj: dict) -> VenueControl | ParseError:
    _version(obj)
    mode = _get(obj, "mode", str)
    if mode not in ("normal", "evacuation"):
        raise _Bad("field 'mode' must be 'normal' or 'evacuation'")
    by = _get(obj, "by", str, optional=True)
    return VenueControl(mode=mode, by=by[:64] if by else None, ts=_ts(obj, "ts", optional=True))


@dataclass(frozen=True)
class CounterStatus:
    """Retained `counter/status`; also the counter's Last Will with online=False."""

    online: bool
    clock: datetime | None = None  # the counter's wall clock, for the gates' clock check
    version: str = ""
    ingest_lag_ms: float | None = None
    open_gaps: int = 0
    event_clock: datetime | None = None  # latest event time seen (replays run on event time)

    def to_json(self) -> bytes:
        return dumps(
            {
                "v": VERSION,
                "online": self.online,
                "clock": iso(self.clock) if self.clock else None,
                "version": self.version,
                "ingest_lag_ms": self.ingest_lag_ms,
                "open_gaps": self.open_gaps,
                "event_clock": iso(self.event_clock) if self.event_clock else None,
            }
        )


@_total
def parse_counter_status(obj: dict) -> CounterStatus | ParseError:
    _version(obj)
    lag = _get(obj, "ingest_lag_ms", (int, float), optional=True)
    return CounterStatus(
        online=_get(obj, "online", bool),
        clock=_ts(obj, "clock", optional=True),
        version=(_get(obj, "version", str, optional=True) or "")[:40],
        ingest_lag_ms=float(lag) if lag is not None else None,
        open_gaps=_count(obj, "open_gaps", optional=True) or 0,
        event_clock=_ts(obj, "event_clock", optional=True),
    )


@dataclass(frozen=True)
class Revocations:
    """Retained `badges/revoked`: the full list of revoked badge ids (not a delta)."""

    badges: tuple[str, ...]
    ts: datetime | None = None

    def to_json(self) -> bytes:
        return dumps(
            {"v": VERSION, "badges": sorted(self.badges), "ts": iso(self.ts) if self.ts else None}
        )


MAX_REVOKED = 100_000


@_total(limit=4 * 1024 * 1024)
def parse_revocations(obj: dict) -> Revocations | ParseError:
    _version(obj)
    badges = _get(obj, "badges", list)
    if len(badges) > MAX_REVOKED:
        raise _Bad("too many revoked badges")
    if not all(isinstance(b, str) and BADGE_ID.match(b) for b in badges):
        raise _Bad("field 'badges' must be a list of badge ids")
    return Revocations(badges=tuple(badges), ts=_ts(obj, "ts", optional=True))


@dataclass(frozen=True)
class Correction:
    """`control/corrections` (dashboard → counter): a manual occupancy correction.

    `id` makes a repeated message harmless; the counter applies it once and audits it.
    """

    id: str
    zone: str
    delta: int
    reason: str
    by: str
    ts: datetime

    def to_json(self) -> bytes:
        return dumps(
            {
                "v": VERSION,
                "id": self.id,
                "zone": self.zone,
                "delta": self.delta,
                "reason": self.reason,
                "by": self.by,
                "ts": iso(self.ts),
            }
        )


_CORR_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


@_total
def parse_correction(obj: dict) -> Correction | ParseError:
    _version(obj)
    reason = _get(obj, "reason", str).strip()
    if not reason or len(reason) > 500:
        raise _Bad("field 'reason' must be 1-500 characters")
    delta = _count(obj, "delta", -100_000, 100_000)
    if delta == 0:
        raise _Bad("field 'delta' must not be 0")
    by = _get(obj, "by", str)
    if not by or len(by) > 64:
        raise _Bad("field 'by' must be 1-64 characters")
    return Correction(
        id=_ident(obj, "id", _CORR_ID),
        zone=_ident(obj, "zone", _GATE_ID),
        delta=delta,
        reason=reason,
        by=by,
        ts=_ts(obj, "ts"),
    )


@dataclass(frozen=True)
class Alert:
    """One counter-side finding in `counter/alerts` (e.g. kind FIRE_ALARM, subject a gate)."""

    kind: str  # an upper-case code: FIRE_ALARM, ...
    subject: str  # gate or zone id
    since: datetime
    count: int = 1
    detail: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subject}"


@dataclass(frozen=True)
class Alerts:
    """Retained `counter/alerts`: the complete current list of findings, each time."""

    alerts: tuple[Alert, ...]
    ts: datetime

    def to_json(self) -> bytes:
        return dumps(
            {
                "v": VERSION,
                "ts": iso(self.ts),
                "alerts": [
                    {"key": a.key, "kind": a.kind, "subject": a.subject, "since": iso(a.since),
                     "count": a.count, "detail": a.detail}
                    for a in self.alerts
                ],
            }
        )  # fmt: skip


_KIND = re.compile(r"^[A-Z][A-Z0-9_]{0,39}$")


@_total
def parse_alerts(obj: dict) -> Alerts | ParseError:
    _version(obj)
    items = _get(obj, "alerts", list)
    if len(items) > 1000:
        raise _Bad("field 'alerts' has more than 1000 entries")
    out = []
    for a in items:
        if not isinstance(a, dict):
            raise _Bad("field 'alerts' must hold objects")
        detail = _get(a, "detail", dict, optional=True) or {}
        out.append(
            Alert(
                kind=_ident(a, "kind", _KIND),
                subject=_ident(a, "subject", _GATE_ID),
                since=_ts(a, "since"),
                count=_count(a, "count", optional=True) or 1,
                detail=detail,
            )
        )
    return Alerts(alerts=tuple(out), ts=_ts(obj, "ts"))
