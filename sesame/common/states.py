"""The states every part names the same way (StrEnum: each member is its wire string, so
messages, database rows and comparisons with plain strings are unchanged)."""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """What a lane's event records (`gates/<gate>/events`, the outbox, the counter's log)."""

    PASSAGE = "passage"
    DENIED = "denied"


class ZoneAccess(StrEnum):
    """What a safety officer sets on `control/zones/<zone>`."""

    OPEN = "open"
    CLOSED = "closed"


class VenueMode(StrEnum):
    """What `control/venue` says of the whole venue."""

    NORMAL = "normal"
    EVACUATION = "evacuation"
