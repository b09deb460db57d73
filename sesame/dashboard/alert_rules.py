"""The zone alert rules: near-full and full with hysteresis, as pure functions.

A zone enters near-full at its threshold and leaves it only once it falls below a lower one
(`alert_hysteresis` of capacity lower, per zone in the venue file); the same for full. One
excursion above and back is one alert with its start, its peak and its end, however often
the occupancy crosses the threshold in between. Near-full and full are nested: a zone that
goes full stays near-full too, so it raises at most one of each per excursion.

`step` is one sample applied to the open excursions (the dashboard calls it per occupancy
message); `excursions` folds it over a whole history (the tests, and anyone replaying).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

ZONE_KINDS = ("near_full", "full")


@dataclass(frozen=True)
class Thresholds:
    """People counts: an excursion starts at `occupancy >= enter`, ends at `< clear`."""

    near_full: int
    near_full_clear: int
    full: int
    full_clear: int

    def of(self, kind: str) -> tuple[int, int]:
        if kind == "full":
            return self.full, self.full_clear
        return self.near_full, self.near_full_clear


def thresholds(capacity: int, near_full: float, hysteresis: float) -> Thresholds:
    # the counter's own test is `occupancy >= near_full * capacity`; the epsilon keeps a
    # product such as 0.85 * 800 = 680.0000000001 from moving the threshold by one person
    near = max(1, math.ceil(near_full * capacity - 1e-9))
    margin = max(0, round(hysteresis * capacity))
    return Thresholds(
        near_full=near,
        near_full_clear=max(1, near - margin),
        full=capacity,
        full_clear=max(1, capacity - margin),
    )


@dataclass(frozen=True)
class Excursion:
    kind: str  # "near_full" | "full"
    start: datetime
    peak: int
    peak_at: datetime
    end: datetime | None = None


Change = tuple[str, Excursion]  # ("start" | "peak" | "end", the excursion after the change)


def _asserted(kind: str, state: str | None) -> bool:
    """The counter's own state says so (it may know better than a stale figure)."""
    return state == kind or (kind == "near_full" and state == "full")


def step(
    open_: Mapping[str, Excursion],
    ts: datetime,
    occupancy: int,
    state: str | None,
    th: Thresholds,
) -> tuple[dict[str, Excursion], list[Change]]:
    """One occupancy sample: the excursions still open after it, and what changed."""
    out = dict(open_)
    changes: list[Change] = []
    for kind in ZONE_KINDS:
        enter, clear = th.of(kind)
        cur = out.get(kind)
        if cur is None:
            if occupancy >= enter or _asserted(kind, state):
                out[kind] = Excursion(kind, ts, occupancy, ts)
                changes.append(("start", out[kind]))
        elif occupancy < clear and not _asserted(kind, state):
            del out[kind]
            changes.append(("end", replace(cur, end=ts)))
        elif occupancy > cur.peak:
            out[kind] = replace(cur, peak=occupancy, peak_at=ts)
            changes.append(("peak", out[kind]))
    return out, changes


def excursions(
    history: Iterable[tuple[datetime, int, str | None]], th: Thresholds
) -> list[Excursion]:
    """Every excursion in a zone's history of (ts, occupancy, counter state), ended or
    still open, in the order they started."""
    open_: dict[str, Excursion] = {}
    done: list[Excursion] = []
    for ts, occupancy, state in history:
        open_, changes = step(open_, ts, occupancy, state, th)
        done += [e for what, e in changes if what == "end"]
    return sorted(done + list(open_.values()), key=lambda e: (e.start, e.kind != "near_full"))


# -- what an alert asks of the officer ----------------------------------------------------

# always loud: a zone at its legal limit, an evacuation, a fire alarm reported by a lane
_AUDIBLE = frozenset({"full", "evacuation", "FIRE_ALARM"})
_CRITICAL = _AUDIBLE | {"gate_offline", "counter_offline", "LANE_SILENT"}
_LANE_DOWN = frozenset({"gate_offline", "LANE_SILENT"})


def audible(kind: str, lane_is_entrance: bool) -> bool:
    """Worth a sound in the control room: full, evacuation, a lane down at an entrance."""
    return kind in _AUDIBLE or (kind in _LANE_DOWN and lane_is_entrance)


def severity(kind: str) -> str:
    return "critical" if kind in _CRITICAL else "warning"
