"""What each kind of turnstile can physically pass, in people per minute.

The figures are the upper ends of what the hardware does (a tripod passes about 30-40 people
a minute, an optical speed gate about 60, a supervised door more). The dashboard shows each
entry lane's rate against its figure so an officer sees a saturated entrance, and the counter
holds passages beyond it as physically implausible (sesame/counter/plausibility.py). A lane
may state its own figure (`max_per_minute` in its `[gates.<id>]` table).
"""

from __future__ import annotations

from typing import Protocol

MAX_PER_MINUTE: dict[str, int] = {
    "tripod": 40,
    "speedgate": 60,
    "door": 120,
}


class _Lane(Protocol):
    kind: str
    max_per_minute: int | None


def max_per_minute(kind: str) -> int:
    return MAX_PER_MINUTE.get(kind, MAX_PER_MINUTE["tripod"])


def lane_max_per_minute(lane: _Lane) -> int:
    """The lane's own figure from the venue file, else its kind's."""
    return lane.max_per_minute or max_per_minute(lane.kind)
