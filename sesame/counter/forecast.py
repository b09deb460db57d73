"""Time to full: from a zone's recent net inflow, when will it reach its capacity? (pure)

The counter computes it and publishes it with the occupancy (`full_in_min`), so every
client shows the same figure. The trend is the net inflow over the last `WINDOW_S` seconds of
event time (so a replay forecasts as the day did): occupancy now minus occupancy at the start
of the window. Shown only when the trend is up and the zone would fill within the hour;
never for a zone that is full, closed or evacuating (nobody should be told to expect it).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from sesame.common.venue import Venue

WINDOW_S = 600.0  # the last 10 minutes
MIN_SPAN_S = 120.0  # less history than this says nothing about a trend
HORIZON_MIN = 60  # estimates of an hour or more are not shown
NO_FORECAST_STATES = frozenset({"full", "closed", "evacuating"})


def minutes_to_full(
    samples: Sequence[tuple[float, int]], capacity: int, state: str, window_s: float = WINDOW_S
) -> int | None:
    """Whole minutes until `capacity` at the recent net inflow, or None.

    `samples` are (event time in s, occupancy) in time order, the last one being now; the
    newest sample at or before the window's start gives the occupancy the window starts at.
    """
    if state in NO_FORECAST_STATES or len(samples) < 2:
        return None
    now_t, now_n = samples[-1]
    start = now_t - window_s
    base = samples[0]
    for s in samples:
        if s[0] > start:
            break
        base = s
    t0 = max(base[0], start)
    span = now_t - t0
    if span < MIN_SPAN_S:
        return None
    per_min = (now_n - base[1]) * 60.0 / span
    room = capacity - now_n
    if per_min <= 0 or room <= 0:
        return None
    minutes = math.ceil(room / per_min)
    return minutes if minutes < HORIZON_MIN else None


class Trend:
    """The occupancy samples of each zone over the window (plus the one just before it)."""

    def __init__(self, window_s: float = WINDOW_S):
        self.window_s = window_s
        self.samples: dict[str, deque[tuple[float, int]]] = {}

    def record(self, zone: str, t: float, n: int) -> None:
        d = self.samples.setdefault(zone, deque())
        if d and t < d[-1][0]:
            t = d[-1][0]  # event time never runs backwards here: a late event is "now"
        if d and d[-1][0] == t:
            d[-1] = (t, n)
        else:
            d.append((t, n))
        # keep one sample at or before the window's start: the window's base figure
        while len(d) > 2 and d[1][0] <= t - self.window_s:
            d.popleft()

    def clear(self) -> None:
        self.samples.clear()

    def full_in(self, zone: str, capacity: int, state: str) -> int | None:
        return minutes_to_full(tuple(self.samples.get(zone, ())), capacity, state, self.window_s)


def lane_rate(times: Sequence[float], now: float, window_s: float) -> int:
    """Passages per minute over the last `window_s` seconds before `now` (rounded)."""
    n = sum(1 for t in times if now - window_s < t <= now)
    return round(n * 60.0 / window_s)


class Outlook:
    """What the occupancy message says about where a zone is heading: its time to full and
    the current rate of each entry lane into it. Fed by the core, read when it publishes."""

    def __init__(self, venue: Venue, rate_window_s: float = 60.0):
        self.trend = Trend()
        self.rate_window_s = rate_window_s
        self.entries: dict[str, list[str]] = {z: [] for z in venue.zones}
        for g in venue.gates.values():
            if not g.is_exit and g.to_zone in self.entries:
                self.entries[g.to_zone].append(g.id)

    def clear(self) -> None:
        """A new event day: its counts start from 0, so does the trend."""
        self.trend.clear()

    def fields(
        self, zone: str, n: int, capacity: int, state: str, t: float | None,
        recent: Mapping[str, Sequence[float]],
    ) -> dict[str, Any]:  # fmt: skip
        if t is None:
            return {}
        self.trend.record(zone, t, n)
        rates = {g: lane_rate(recent.get(g, ()), t, self.rate_window_s) for g in self.entries[zone]}
        return {"full_in_min": self.trend.full_in(zone, capacity, state),
                "entry_rates": rates or None}  # fmt: skip
