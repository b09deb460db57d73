"""Physical plausibility of a lane's passages (pure: no database, no clock).

A turnstile passes at most so many people a minute (`sesame.common.turnstiles`, or the
lane's own `max_per_minute` in the venue file). The rule, in event time:

    no 60 s window of a lane's passages holds more than `limit` of them,
    `limit` being the lane's rate plus one group (the venue's `leases.low_water`, which a
    venue keeps at or above its largest group: a group's pupils may share a timestamp).

Every passage in a window that holds more is held: stored, not counted, for a safety
officer to accept or reject. Held passages stay in the windows (a burst does not become
plausible by being held), so the held set is the union of the overflowing windows of
everything the lane sent, whatever the order it arrived in: a backlog drained after an
outage is spread in event time and passes, and a burst is held whole, also the passages
of it that arrived first and were counted before the window overflowed (they are
returned as "retro" holds for the caller to un-count).

Windows are kept per (day, lane): a window across midnight sees each day's side alone.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

WINDOW_S = 60.0

Tag = TypeVar("Tag")  # what the caller needs to un-count a passage (its id, epoch...)


@dataclass
class _Lane(Generic[Tag]):
    times: list[float] = field(default_factory=list)  # every passage, counted or held
    counted: list[tuple[float, int]] = field(default_factory=list)  # (t, key into tags)
    tags: dict[int, Tag] = field(default_factory=dict)
    next_key: int = 0

    def count(self, lo: float, hi: float) -> int:
        """Passages with lo <= t < hi."""
        return bisect_left(self.times, hi) - bisect_left(self.times, lo)


class RateWindows(Generic[Tag]):
    """The passages of each (day, lane) the counter has seen, by event time."""

    def __init__(self) -> None:
        self._lanes: dict[tuple[str, str], _Lane[Tag]] = {}

    def loaded(self, day: str, gate: str) -> bool:
        return (day, gate) in self._lanes

    def load(self, day: str, gate: str, items: Iterable[tuple[float, Tag | None]]) -> None:
        """What the database holds for (day, lane): (t, tag) of a counted passage that a
        later burst may still hold, (t, None) of one held or decided by an officer."""
        lane: _Lane[Tag] = _Lane()
        for t, tag in items:
            lane.times.append(t)
            if tag is not None:
                lane.counted.append((t, lane.next_key))
                lane.tags[lane.next_key] = tag
                lane.next_key += 1
        lane.times.sort()
        lane.counted.sort()
        self._lanes[(day, gate)] = lane

    def add(self, day: str, gate: str, t: float, tag: Tag, limit: int) -> tuple[bool, list[Tag]]:
        """One more passage at `t`: (held, the counted passages it makes held too)."""
        lane = self._lanes.setdefault((day, gate), _Lane())
        w = WINDOW_S
        # Fast path: every window holding t lies within (t - w, t + w).
        near = bisect_left(lane.times, t + w) - bisect_right(lane.times, t - w)
        if near + 1 <= limit:
            self._insert(lane, t, tag, counted=True)
            return False, []
        c_lo = bisect_right(lane.counted, (t - w, 2**62))
        c_hi = bisect_left(lane.counted, (t + w, -1))
        if c_lo == c_hi:
            # nothing counted nearby (inside a burst already held): only t's own verdict
            held = self._overflows(lane, t, limit)
            self._insert(lane, t, tag, counted=not held)
            return held, []
        spans = self._overflowing(lane, t, limit)
        if not spans:
            self._insert(lane, t, tag, counted=True)
            return False, []
        retro = []
        for i in range(c_hi - 1, c_lo - 1, -1):
            ct, key = lane.counted[i]
            if any(a <= ct < a + w for a in spans):
                del lane.counted[i]
                retro.append(lane.tags.pop(key))
        retro.reverse()
        self._insert(lane, t, tag, counted=False)
        return True, retro

    def forget(self, keep_days: set[str]) -> None:
        """Drop the windows of days no longer kept in memory (loaded again when needed)."""
        for key in [k for k in self._lanes if k[0] not in keep_days]:
            del self._lanes[key]

    # -- windows ---------------------------------------------------------------------------
    @staticmethod
    def _insert(lane: _Lane[Tag], t: float, tag: Tag, counted: bool) -> None:
        insort(lane.times, t)
        if counted:
            insort(lane.counted, (t, lane.next_key))
            lane.tags[lane.next_key] = tag
            lane.next_key += 1

    @staticmethod
    def _overflows(lane: _Lane[Tag], t: float, limit: int) -> bool:
        """Whether some window holding t (t counted in) holds more than `limit`."""
        w = WINDOW_S
        times = lane.times
        # the windows starting at the first passage after t - w, and at t itself
        if bisect_right(times, t) - bisect_right(times, t - w) + 1 > limit:
            return True
        if bisect_left(times, t + w) - bisect_left(times, t) + 1 > limit:
            return True
        return bool(RateWindows._overflowing(lane, t, limit))

    @staticmethod
    def _overflowing(lane: _Lane[Tag], t: float, limit: int) -> list[float]:
        """Starts `a` of the windows [a, a + w) holding t that hold more than `limit` with t.
        A window's passages are those of the window starting at its first one, so the
        starts to try are t and the passages in (t - w, t]."""
        w = WINDOW_S
        lo, hi = bisect_right(lane.times, t - w), bisect_right(lane.times, t)
        starts = sorted(set(lane.times[lo:hi]) | {t})
        return [a for a in starts if lane.count(a, a + w) + 1 > limit]
