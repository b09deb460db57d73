"""What each kind of turnstile can physically pass, in people per minute.

The figures are the upper ends of what the hardware does (docs/design.md, reference facts: a
tripod passes about 20-30 people a minute, an optical speed gate 40-60). The dashboard shows
each entry lane's rate against its kind's figure so an officer sees a saturated entrance.
One place, so the venue model can later let a lane override its kind's figure.
"""

from __future__ import annotations

MAX_PER_MINUTE: dict[str, int] = {
    "tripod": 30,
    "speedgate": 60,
    "door": 60,  # a supervised door: about a speed gate's flow
}


def max_per_minute(kind: str) -> int:
    return MAX_PER_MINUTE.get(kind, MAX_PER_MINUTE["tripod"])
