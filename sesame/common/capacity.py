"""Zones that held more people than their capacity: one definition for the counter's
exports, the simulator's ground truth and the replay's event-log check.

Every zone is checked. A zone of `offline_policy = "lease"` must never be over: its lanes
admit only what the counter leased them, so an excess there is a bug. A zone of policy
`open` can be: its lanes are not leased and count later (the balconies of the reference
venue), so only the near-full and full alerts hold it; its excess is reported as such.
"""

from __future__ import annotations

from collections.abc import Mapping

from sesame.common.venue import Venue


def over_capacity(venue: Venue, peaks: Mapping[str, int]) -> dict[str, dict]:
    """{zone: {"peak", "capacity", "offline_policy"}} for each zone whose peak occupancy
    (zone -> highest head count that day) went above its capacity."""
    out: dict[str, dict] = {}
    for zone_id, peak in sorted(peaks.items()):
        z = venue.zones.get(zone_id)
        if z is not None and peak > z.capacity:
            policy = z.offline_policy
            out[zone_id] = {"peak": peak, "capacity": z.capacity, "offline_policy": policy}
    return out


def lease_breaches(per_day: Mapping[str, Mapping[str, dict]]) -> dict[str, dict[str, dict]]:
    """The lease-policy zones of an over-capacity report per day (must always be empty)."""
    out: dict[str, dict[str, dict]] = {}
    for day, zones in per_day.items():
        bad = {z: o for z, o in zones.items() if o["offline_policy"] == "lease"}
        if bad:
            out[day] = bad
    return out


def describe(day: str, zone: str, o: Mapping) -> str:
    """One line for a person: which zone, how far over, and what that means."""
    if o["offline_policy"] == "lease":
        why = "a lease zone: its lanes admitted more than the counter leased them"
    else:
        why = "an `open` zone: its lanes are not leased, only the alerts hold it"
    return f"{day} {zone}: peak {o['peak']:,} over its capacity {o['capacity']:,} ({why})"
