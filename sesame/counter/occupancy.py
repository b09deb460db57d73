"""Occupancy per zone and event day: pure bookkeeping, no I/O.

A passage leaves `from` and enters `to` (`outside` is not counted). Every event counts
toward one *event day*: the first venue day whose closing time is after the event's `ts`
(so 07:30 staff arrivals count toward that day). Events of the night, after a closing and
before the next day's first possible entry, are filed under the day that closed (a passage
out of a zone only while the new day's count of that zone is empty), and everything after
the last closing under the last day: no event is filed under a date that is no event day.
The live day follows the counter's own clock alone (the simulator's in a replay, so a replay
of 2018 behaves as 2018 did): when it passes a day's closing time, that day is closed: what
is left inside is its *residue* (people never scanned out) and the live figures restart at 0.
No lane's stamp moves it (sesame/counter/lane_clocks.py).
Late events for a closed day still update that day's figures and residue, never the live
ones, so the counts stay exact whatever the delivery order.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from sesame.common.states import EventKind
from sesame.common.venue import OUTSIDE, Venue, Zone


class DayClock:
    """Maps an event time to the event day it counts toward."""

    def __init__(self, venue: Venue):
        self.venue = venue
        closes = [venue.opening_window(d)[1] for d in venue.days]
        self._close_t = [c.timestamp() for c in closes]
        self._keys = [d.date.isoformat() for d in venue.days]
        self._after = (venue.days[-1].date + timedelta(days=1)).isoformat()
        self._tz = venue.tz
        self._hours: dict[int, int] = {}
        # When each day's first badge may be let in (the earliest category's early entry).
        early = max((c.early_minutes for c in venue.categories.values()), default=0)
        self._first_in_t = [venue.opening_window(d, early)[0].timestamp() for d in venue.days]

    def day_of(self, ts: datetime) -> str:
        return self.day_of_t(ts.timestamp())

    def day_of_t(self, t: float) -> str:
        i = bisect.bisect_right(self._close_t, t)
        return self._keys[i] if i < len(self._keys) else self._after

    def night_before(self, t: float) -> str | None:
        """The day that closed before `t` when `t` falls between that closing time and the
        next day's first possible entry (the night), else None."""
        i = bisect.bisect_right(self._close_t, t)  # days closed by t
        if i == 0:
            return None
        if i < len(self._keys) and t >= self._first_in_t[i]:
            return None
        return self._keys[i - 1]

    def filed_under(
        self, day: str, t: float, kind: str, from_zone: str, raw: Callable[[str, str], int]
    ) -> str:
        """The day an event at `t` is stored under, `day` being the one it made live.

        Every event of the night (after a closing, before the next day's first possible
        entry) belongs to the day that closed, and after the last closing to the last day
        (never to a date that is no event day). A passage out of a zone goes back only while
        the new day's count of that zone is empty: someone leaving was inside before the
        reset, so it lowers that day's residue, not tomorrow's count (a negative count would
        let the next morning admit that many too many)."""
        night = self.night_before(t)
        if night is None:
            return day
        if day not in self._keys or kind != EventKind.PASSAGE:
            return night
        if from_zone != OUTSIDE and raw(from_zone, day) <= 0:
            return night
        return day

    def closes_at(self, day: str) -> float | None:
        try:
            return self._close_t[self._keys.index(day)]
        except ValueError:
            return None

    def local_hour(self, t: float) -> int:
        # Cached per quarter hour: every UTC offset in use is a multiple of 15 minutes.
        q = int(t // 900)
        h = self._hours.get(q)
        if h is None:
            if len(self._hours) > 10_000:
                self._hours.clear()
            h = self._hours[q] = datetime.fromtimestamp(q * 900, self._tz).hour
        return h


def zone_state(occupancy: int, zone: Zone, *, closed: bool, evacuating: bool) -> str:
    if evacuating:
        return "evacuating"
    if closed:
        return "closed"
    if occupancy >= zone.capacity:
        return "full"
    if occupancy >= zone.near_full * zone.capacity:
        return "near_full"
    return "open"


class Book:
    """Raw occupancy counts per (day, zone); `current` is the live day."""

    def __init__(self, zones: list[str]):
        self.zones = list(zones)
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(self.zones, 0))
        self.current: str | None = None
        self.closed: set[str] = set()

    # -- changes -----------------------------------------------------------------------
    def passage(self, day: str, from_zone: str, to_zone: str, n: int = 1) -> list[str]:
        """Apply one passage; returns the zones whose live figure changed."""
        c = self.counts[day]
        changed = []
        if from_zone != OUTSIDE and from_zone in c:
            c[from_zone] -= n
            changed.append(from_zone)
        if to_zone != OUTSIDE and to_zone in c:
            c[to_zone] += n
            changed.append(to_zone)
        return changed if day == self.current else []

    def correct(self, day: str, zone: str, delta: int) -> None:
        if zone in self.zones:
            self.counts[day][zone] += delta

    def advance(self, day: str) -> list[str]:
        """Make `day` live if it is later than the current one; returns the days closed."""
        if self.current is not None and day <= self.current:
            return []
        closed = [self.current] if self.current is not None else []
        self.closed.update(closed)
        self.current = day
        self.counts[day]  # noqa: B018 - creates the day's zero row
        return closed

    # -- figures -------------------------------------------------------------------------
    def raw(self, zone: str, day: str | None = None) -> int:
        d = day or self.current
        return self.counts[d][zone] if d is not None and d in self.counts else 0

    def live(self, zone: str) -> int:
        """What officers see: never below zero (exits of people counted the day before)."""
        return max(0, self.raw(zone))

    def residue(self, day: str) -> dict[str, int]:
        return dict(self.counts[day]) if day in self.counts else dict.fromkeys(self.zones, 0)

    def to_state(self) -> dict:
        return {"current": self.current, "closed": sorted(self.closed), "counts": self.counts}

    @classmethod
    def from_state(cls, zones: list[str], state: dict) -> Book:
        b = cls(zones)
        b.current = state.get("current")
        b.closed = set(state.get("closed", []))
        for day, row in state.get("counts", {}).items():
            for z, n in row.items():
                if z in b.zones:
                    b.counts[day][z] = n
        return b
