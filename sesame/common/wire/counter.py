"""What the counter publishes for everyone: each zone's occupancy and its own status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sesame.common.wire.base import (
    _GATE_ID,
    VERSION,
    ZONE_STATES,
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
