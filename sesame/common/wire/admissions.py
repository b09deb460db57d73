"""Admissions on the wire: the venue-wide memory of who is inside (docs/mqtt.md).

The counter numbers every badge passage it stores (its event row number) and republishes
each day's in order, so every entry lane knows who entered or left anywhere, not only
through itself:

- `counter/admissions` (counter → entry lanes, not retained): after each committed batch,
  the badge passages of the live day it stored, numbered `(after, upto]`;
- `gates/<gate>/admissions` (counter → that lane, not retained): the ones a lane missed,
  from the place its status names (`admissions_day`, `admissions_upto`), in chunks.

Only the counter may publish either (broker ACL). It republishes only what it stored from a
lane's own events topic, so a lane can speak only through its own passages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sesame.common.ids import BADGE_ID
from sesame.common.wire.base import (
    _EPOCH,
    _GATE_ID,
    _ISO_DAY,
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
from sesame.common.wire.shards import MAX_SHARD_PAYLOAD

MAX_ITEMS = 150  # per message; a replay sends more messages
# 150 items of the longest ids are about 49 KB: within the venue's small message size
MAX_ADMISSIONS_PAYLOAD = MAX_SHARD_PAYLOAD
_EVENT_ID = re.compile(r"^([a-z0-9][a-z0-9_-]{0,39}):([A-Za-z0-9_-]{1,32}):([0-9]{1,16})$")


@dataclass(frozen=True)
class Admission:
    """One badge passage as the counter stored it: `id` is the lane's event id."""

    id: str
    gate: str
    badge: str
    from_zone: str
    to_zone: str
    ts: datetime

    def to_dict(self) -> dict:
        return {"id": self.id, "gate": self.gate, "badge": self.badge,
                "from": self.from_zone, "to": self.to_zone, "ts": iso(self.ts)}  # fmt: skip


@dataclass(frozen=True)
class Admissions:
    """The admissions of `day` numbered above `after` up to `upto`; `more`: a replay
    that stopped at MAX_ITEMS (the lane asks again from `upto`)."""

    day: str
    after: int
    upto: int
    items: tuple[Admission, ...]
    more: bool = False

    def to_json(self) -> bytes:
        return dumps({"v": VERSION, "day": self.day, "after": self.after, "upto": self.upto,
                      "more": self.more, "items": [a.to_dict() for a in self.items]})  # fmt: skip


def _item(obj: object) -> Admission:
    if not isinstance(obj, dict):
        raise _Bad("field 'items' must hold objects")
    eid = _get(obj, "id", str)
    gate = _ident(obj, "gate", _GATE_ID)
    m = _EVENT_ID.match(eid)
    if m is None or m.group(1) != gate or not _EPOCH.match(m.group(2)):
        raise _Bad("an item's 'id' is not <gate>:<epoch>:<seq> of its gate")
    return Admission(
        id=eid,
        gate=gate,
        badge=_ident(obj, "badge", BADGE_ID),
        from_zone=_ident(obj, "from", _GATE_ID),
        to_zone=_ident(obj, "to", _GATE_ID),
        ts=_ts(obj, "ts"),
    )


@_total(limit=MAX_ADMISSIONS_PAYLOAD)
def parse_admissions(obj: dict) -> Admissions | ParseError:
    _version(obj)
    day = _get(obj, "day", str)
    if not _ISO_DAY.match(day):
        raise _Bad("field 'day' is not a date")
    after, upto = _count(obj, "after", 0, MAX_SEQ), _count(obj, "upto", 0, MAX_SEQ)
    if upto < after:
        raise _Bad("field 'upto' is below 'after'")
    items = _get(obj, "items", list)
    if len(items) > MAX_ITEMS:
        raise _Bad(f"field 'items' has more than {MAX_ITEMS} entries")
    more = _get(obj, "more", bool, optional=True) or False
    return Admissions(day, after, upto, tuple(_item(i) for i in items), more)
