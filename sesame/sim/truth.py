"""Ground truth: the attendance figures computed from what really passed the turnstiles.

Same shape and definitions as `sesame export attendance --format json` (under
`days.<YYYY-MM-DD>`), computed independently from the simulator's own record of passages:
  unique_visitors  badges that came in from outside that day, a group badge counting its size
  entries          people who came in from outside (every passage from outside)
  by_category      unique visitors per badge category
  schoolchildren   unique visitors of schoolchildren categories
  departements     schoolchildren per département (from the badge registry)
  peak_occupancy   per zone: the highest occupancy and the first time it was reached
Plus `over_capacity`: zones of lease policy that ever held more than their capacity.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sesame.sim.engine import Passage
from sesame.sim.model import Badge
from sesame.venue import OUTSIDE, Venue


def iso_ms(at: int, venue: Venue) -> str:
    t = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=at)  # exact, no float
    return t.astimezone(venue.tz).isoformat(timespec="milliseconds")


def day_figures(venue: Venue, passages: list[Passage], badges: dict[str, Badge]) -> dict:
    seen: dict[str, int] = {}  # badge -> group size, first entry from outside that day
    entries = 0
    occ: dict[str, int] = defaultdict(int)
    peak: dict[str, dict] = {z: {"value": 0, "at": None} for z in venue.zones}
    for p in sorted(passages, key=lambda p: p.at):  # stable: same-time passages keep order
        if p.from_zone == OUTSIDE:
            entries += p.count
            if p.badge is not None and p.badge not in seen:
                seen[p.badge] = p.group
        occ[p.from_zone] -= p.count
        occ[p.to_zone] += p.count
        z = p.to_zone
        if z in peak and occ[z] > peak[z]["value"]:
            peak[z] = {"value": occ[z], "at": iso_ms(p.at, venue)}
    by_cat: dict[str, int] = defaultdict(int)
    depts: dict[str, int] = defaultdict(int)
    school = 0
    for bid, n in seen.items():
        b = badges[bid]
        by_cat[b.category] += n
        cat = venue.categories.get(b.category)
        if cat is not None and cat.schoolchildren:
            school += n
            if b.department:
                depts[b.department] += n
    return {
        "unique_visitors": sum(seen.values()),
        "entries": entries,
        "by_category": dict(sorted(by_cat.items())),
        "schoolchildren": school,
        "departements": dict(sorted(depts.items())),
        "peak_occupancy": peak,
    }


def over_capacity(venue: Venue, passages: Iterable[Passage]) -> dict[str, int]:
    """Lease-policy zones whose occupancy ever exceeded capacity: zone -> highest excess."""
    occ: dict[str, int] = defaultdict(int)
    worst: dict[str, int] = {}
    for p in sorted(passages, key=lambda p: p.at):
        occ[p.from_zone] -= p.count
        occ[p.to_zone] += p.count
        z = venue.zones.get(p.to_zone)
        if z is not None and z.offline_policy == "lease" and occ[p.to_zone] > z.capacity:
            worst[z.id] = max(worst.get(z.id, 0), occ[p.to_zone] - z.capacity)
    return worst


def ground_truth(venue: Venue, by_day: dict[str, list[Passage]], badges: list[Badge]) -> dict:
    index = {b.id: b for b in badges}
    days = {d: day_figures(venue, ps, index) for d, ps in sorted(by_day.items())}
    total: dict[str, int] = {}
    for ps in by_day.values():
        for p in ps:
            if p.from_zone == OUTSIDE and p.badge is not None:
                total[p.badge] = p.group
    return {
        "venue": venue.id,
        "days": days,
        "totals": {
            "unique_visitors": sum(total.values()),
            "visitor_days": sum(d["unique_visitors"] for d in days.values()),
            "entries": sum(d["entries"] for d in days.values()),
            "schoolchildren": sum(d["schoolchildren"] for d in days.values()),
        },
        "over_capacity": {d: over_capacity(venue, ps) for d, ps in sorted(by_day.items())},
    }


def write_truth(truth: dict, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(truth, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
