"""Ground truth: the attendance figures computed from what really passed the turnstiles.

Same shape and definitions as `sesame export attendance --format json` (under
`days.<YYYY-MM-DD>`), computed independently from the simulator's own record of passages:
  unique_visitors  badges that came in from outside that day, a group badge counting its size
  entries          people who came in from outside (every passage from outside)
  by_category      unique visitors per badge category
  schoolchildren   unique visitors of schoolchildren categories
  departements     schoolchildren per département (from the badge registry)
  peak_occupancy   per zone: the highest occupancy and the first time it was reached
  near_full_at     per zone: the first time it reached its near-full threshold (or null)
  full_at          per zone: the first time it reached capacity counting those who may
                   walk back in, as the leases do (sesame/common/filling.py), or null
  over_capacity    per zone above its capacity: peak, capacity, offline policy
                   (sesame/common/capacity.py; every zone: a lease zone never, an `open` one can)
  inside_at_closing  people still inside each zone at the day's closing time (they leave
                   after it, queuing at the exit lanes; not compared: the export has `residue`)
  last_exit_at     the last passage out of the venue that day
Plus `over_capacity` per day at the top level (the same as each day's).
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sesame.common.capacity import over_capacity
from sesame.common.filling import FillWatch
from sesame.common.venue import OUTSIDE, Venue
from sesame.sim.engine import Passage, Stats
from sesame.sim.model import Badge, day_bounds


def iso_ms(at: int, venue: Venue) -> str:
    t = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=at)  # exact, no float
    return t.astimezone(venue.tz).isoformat(timespec="milliseconds")


def day_figures(
    venue: Venue, passages: list[Passage], badges: dict[str, Badge], closes: int | None = None
) -> dict:
    seen: dict[str, int] = {}  # badge -> group size, first entry from outside that day
    entries = 0
    occ: dict[str, int] = defaultdict(int)
    peak: dict[str, dict] = {z: {"value": 0, "at": None} for z in venue.zones}
    filled = FillWatch(venue, occ)
    at_close: dict[str, int] | None = None
    last_exit: int | None = None
    for p in sorted(passages, key=lambda p: p.at):  # stable: same-time passages keep order
        if at_close is None and closes is not None and p.at >= closes:
            at_close = {z: occ[z] for z in venue.zones}
        if p.to_zone == OUTSIDE:
            last_exit = p.at
        if p.from_zone == OUTSIDE:
            entries += p.count
            if p.badge is not None and p.badge not in seen:
                seen[p.badge] = p.group
        occ[p.from_zone] -= p.count
        occ[p.to_zone] += p.count
        z = p.to_zone
        if z in peak:
            filled.rose(z, p.at)
            if occ[z] > peak[z]["value"]:
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
        "near_full_at": {z: _iso(at, venue) for z, at in filled.near_at.items()},
        "full_at": {z: _iso(at, venue) for z, at in filled.full_at.items()},
        "over_capacity": over_capacity(venue, {z: v["value"] for z, v in peak.items()}),
        "inside_at_closing": at_close if at_close is not None else {z: occ[z] for z in venue.zones},
        "last_exit_at": _iso(last_exit, venue),
    }


def _iso(at: float | None, venue: Venue) -> str | None:
    return None if at is None else iso_ms(int(at), venue)


def ground_truth(
    venue: Venue,
    by_day: dict[str, list[Passage]],
    badges: list[Badge],
    stats: dict[str, Stats] | None = None,
) -> dict:
    index = {b.id: b for b in badges}
    days = {
        d: day_figures(venue, ps, index, day_bounds(venue, date.fromisoformat(d))[1])
        for d, ps in sorted(by_day.items())
    }
    for d, st in (stats or {}).items():
        denials = dict(st.denied)
        if st.no_push:  # let in, nobody pushed: the gate records NO_PASSAGE
            denials["NO_PASSAGE"] = denials.get("NO_PASSAGE", 0) + st.no_push
        days[d]["denials_by_reason"] = dict(sorted(denials.items()))
    everyone: dict[str, int] = {}
    for ps in by_day.values():
        for p in ps:
            if p.from_zone == OUTSIDE and p.badge is not None:
                everyone[p.badge] = p.group
    school = {c.id for c in venue.categories.values() if c.schoolchildren}
    return {
        "venue": venue.id,
        "days": days,
        "totals": {
            "unique_visitors": sum(everyone.values()),
            "visits": sum(d["unique_visitors"] for d in days.values()),
            "entries": sum(d["entries"] for d in days.values()),
            "schoolchildren": sum(n for b, n in everyone.items() if index[b].category in school),
        },
        "over_capacity": {d: f["over_capacity"] for d, f in days.items()},
    }


FIGURES = ("unique_visitors", "entries", "by_category", "schoolchildren", "departements")


def compare(truth: dict, export: dict) -> list[str]:
    """Every figure where `sesame export attendance --format json` differs from the truth."""
    diffs: list[str] = []
    for day, t in truth["days"].items():
        e = export.get("days", {}).get(day)
        if e is None:
            diffs.append(f"{day}: missing from the export")
            continue
        keys = FIGURES + ("over_capacity",)
        for key in keys + (("denials_by_reason",) if "denials_by_reason" in t else ()):
            if t[key] != e.get(key):
                diffs.append(f"{day} {key}: truth {t[key]!r} export {e.get(key)!r}")
        for key in ("near_full_at", "full_at"):
            for zone, ta in t[key].items():
                ea = e.get(key, {}).get(zone)
                if not _same_time(ta, ea):
                    diffs.append(f"{day} {key} {zone}: truth {ta} export {ea}")
        for zone, tp in t["peak_occupancy"].items():
            ep = e.get("peak_occupancy", {}).get(zone, {})
            if tp["value"] != ep.get("value") or not _same_time(tp["at"], ep.get("at")):
                diffs.append(f"{day} peak {zone}: truth {tp} export {ep}")
    for day, e in export.get("days", {}).items():
        # a day the truth does not have (e.g. exits after closing filed under the next day)
        # must not hold visitors
        if day not in truth["days"] and (e.get("unique_visitors") or e.get("entries")):
            diffs.append(f"{day}: visitors in the export, none in the truth")
    for key, v in truth["totals"].items():
        if export.get("totals", {}).get(key) != v:
            diffs.append(f"totals {key}: truth {v} export {export.get('totals', {}).get(key)}")
    return diffs


def _same_time(a: str | None, b: str | None) -> bool:
    """Times compared to the millisecond (the wire's resolution)."""
    if not a or not b:
        return a == b
    return abs((datetime.fromisoformat(a) - datetime.fromisoformat(b)).total_seconds()) < 0.0005


def write_truth(truth: dict, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(truth, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
