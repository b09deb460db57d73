"""Operators' controls: closed zones, the venue's evacuation, revoked badges, corrections."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sesame.common.ids import BADGE_ID
from sesame.common.states import VenueMode, ZoneAccess
from sesame.common.topics import Topics
from sesame.common.wire.base import (
    _GATE_ID,
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
from sesame.common.wire.shards import (
    MAX_SHARD_PAYLOAD,
    REVOKED_SHARDS,
    group,
    parse_header,
    shard_name,
    shard_of,
)


@dataclass(frozen=True)
class ZoneControl:
    """Retained `control/zones/<zone>`: a safety officer opened or closed the zone."""

    state: ZoneAccess
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
    try:
        state = ZoneAccess(_get(obj, "state", str))
    except ValueError:
        raise _Bad("field 'state' must be 'open' or 'closed'") from None
    by = _get(obj, "by", str, optional=True)
    return ZoneControl(state=state, by=by[:64] if by else None, ts=_ts(obj, "ts", optional=True))


@dataclass(frozen=True)
class VenueControl:
    """Retained `control/venue`: normal operation or evacuation."""

    mode: VenueMode
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
    try:
        mode = VenueMode(_get(obj, "mode", str))
    except ValueError:
        raise _Bad("field 'mode' must be 'normal' or 'evacuation'") from None
    by = _get(obj, "by", str, optional=True)
    return VenueControl(mode=mode, by=by[:64] if by else None, ts=_ts(obj, "ts", optional=True))


@dataclass(frozen=True)
class Revocations:
    """The full list of revoked badge ids (not a delta), as `revoked.json` keeps it; on the
    wire it travels as its shards (`RevocationShard`)."""

    badges: tuple[str, ...]
    ts: datetime | None = None

    def to_json(self) -> bytes:
        return dumps(
            {"v": VERSION, "badges": sorted(self.badges), "ts": iso(self.ts) if self.ts else None}
        )

    def shards(self) -> list[RevocationShard]:
        """Every shard of the list (empty ones too: each replaces what a gate held)."""
        parts = group(set(self.badges), str, REVOKED_SHARDS)
        out = [RevocationShard(i, tuple(sorted(p)), self.ts) for i, p in parts.items()]
        for sh in out:
            if len(sh.to_json()) > MAX_SHARD_PAYLOAD:  # only ids chosen to collide
                raise ValueError(f"revocation shard {shard_name(sh.shard)} is over "
                                 f"{MAX_SHARD_PAYLOAD:,} bytes")  # fmt: skip
        return out

    def messages(self, topics: Topics) -> list[tuple[str, bytes]]:
        """(topic, payload) of every shard, as the admin publishes them (retained)."""
        return [(topics.revoked(shard_name(sh.shard)), sh.to_json()) for sh in self.shards()]


MAX_REVOKED = 100_000
# 100,000 ids of 32 characters as JSON are 3.6 MB: the file's limit, never one message's
MAX_REVOCATIONS_PAYLOAD = 4 * 1024 * 1024


@_total(limit=MAX_REVOCATIONS_PAYLOAD)
def parse_revocations(obj: dict) -> Revocations | ParseError:
    _version(obj)
    badges = _get(obj, "badges", list)
    if len(badges) > MAX_REVOKED:
        raise _Bad("too many revoked badges")
    if not all(isinstance(b, str) and BADGE_ID.match(b) for b in badges):
        raise _Bad("field 'badges' must be a list of badge ids")
    return Revocations(badges=tuple(badges), ts=_ts(obj, "ts", optional=True))


@dataclass(frozen=True)
class RevocationShard:
    """Retained `badges/revoked/<xx>`: the revoked ids whose shard is `xx` (wire/shards.py),
    all of them: it replaces the gate's previous copy of that shard."""

    shard: int
    badges: tuple[str, ...]
    ts: datetime | None = None

    def to_json(self) -> bytes:
        return dumps({"v": VERSION, "shard": shard_name(self.shard), "of": REVOKED_SHARDS,
                      "badges": sorted(self.badges),
                      "ts": iso(self.ts) if self.ts else None})  # fmt: skip


@_total(limit=MAX_SHARD_PAYLOAD)
def parse_revocation_shard(obj: dict) -> RevocationShard | ParseError:
    _version(obj)
    index = parse_header(obj, REVOKED_SHARDS)
    badges = _get(obj, "badges", list)
    if not all(isinstance(b, str) and BADGE_ID.match(b) for b in badges):
        raise _Bad("field 'badges' must be a list of badge ids")
    # an id in the wrong shard would never be looked for there: refuse, do not half-apply
    if any(shard_of(b, REVOKED_SHARDS) != index for b in badges):
        raise _Bad("field 'badges' holds an id of another shard")
    return RevocationShard(index, tuple(badges), _ts(obj, "ts", optional=True))


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
