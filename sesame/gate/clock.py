"""The gate's sense of time: its own clock, checked against the venue and the counter.

Single-board computers often boot without a real-time clock (1970, or the last time saved
at shutdown). The gate flags its clock as implausible when it reads before the venue's
first day minus a margin, or when it is far from the counter's clock (`counter/status`).
It then decides with the best time it has: its own clock plus the measured offset.

Only live counter clocks are measured (a retained copy may be hours old), except when the
gate's own clock is implausible on its face: any counter clock beats 1970.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sesame.common.venue import Venue

FIRST_DAY_MARGIN = timedelta(days=30)  # earlier than this before the first day: wrong clock
APPLY_OFFSET = timedelta(seconds=2)  # smaller offsets are transport jitter, not clock error
IMPLAUSIBLE_OFFSET = timedelta(seconds=60)  # further than this from the counter: flag it


def real_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Reading:
    own: datetime  # the gate's own clock
    best: datetime  # own + correction
    offset_ms: int | None  # correction applied (None: no counter clock known)
    plausible: bool


class GateClock:
    def __init__(
        self,
        venue: Venue,
        clock: Callable[[], datetime] = real_clock,
        *,
        trust_counter: bool = True,
    ):
        self._clock = clock
        self._trust = trust_counter
        first = min(d.date for d in venue.days)
        self._earliest = datetime.combine(first, datetime.min.time(), venue.tz) - FIRST_DAY_MARGIN
        self._offset: timedelta | None = None
        self._lock = threading.Lock()

    def own(self) -> datetime:
        t = self._clock()
        return t if t.tzinfo else t.replace(tzinfo=UTC)

    def own_plausible(self, t: datetime | None = None) -> bool:
        return (t or self.own()) >= self._earliest

    def counter_clock(self, counter: datetime, *, live: bool) -> None:
        """A counter/status clock arrived (live: published now, not a retained copy)."""
        if not self._trust:
            return
        own = self.own()
        if not live and self.own_plausible(own):
            return
        with self._lock:
            self._offset = counter - own

    def read(self) -> Reading:
        own = self.own()
        with self._lock:
            off = self._offset
        plausible = self.own_plausible(own) and (off is None or abs(off) <= IMPLAUSIBLE_OFFSET)
        if off is not None and abs(off) > APPLY_OFFSET:
            return Reading(own, own + off, int(off / timedelta(milliseconds=1)), plausible)
        return Reading(own, own, 0 if off is not None else None, plausible)
