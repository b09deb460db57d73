"""When each zone first filled: the definitions shared by the counter's exports and the
simulator's ground truth, so both report the same instant for the same passages.

- near-full: the zone's own occupancy reaches `near_full x capacity` (what the officers see
  as the zone's `near_full` state);
- full: the zone's occupancy plus the occupants of the zones that may walk back into it
  through an exit lane reaches its capacity. That is how the leases count (an exit is
  never blocked, so the Nef keeps room for the people in the Salon d'honneur): from that
  instant the lanes into the zone can admit nobody.
"""

from __future__ import annotations

from collections.abc import Mapping

from sesame.common.venue import Venue


def returning_zones(venue: Venue) -> dict[str, set[str]]:
    """For each zone, the zones whose occupants may walk back into it through an exit lane
    (never blocked, never leased), directly or through other such zones.

    Their occupants count against the zone's headroom: someone in the Salon d'honneur may
    step back into the Nef at any moment, so the Nef keeps room for them.
    """
    feeds: dict[str, set[str]] = {z: set() for z in venue.zones}
    for g in venue.gates.values():
        if g.is_exit and g.to_zone in feeds and g.from_zone in venue.zones:
            feeds[g.to_zone].add(g.from_zone)
    out: dict[str, set[str]] = {}
    for z in venue.zones:
        seen: set[str] = set()
        todo = list(feeds[z])
        while todo:
            y = todo.pop()
            if y in seen or y == z:
                continue
            seen.add(y)
            todo.extend(feeds[y])
        out[z] = seen
    return out


class FillWatch:
    """Follows one day's occupancy and keeps the first time each zone was near full and
    full. Call `rose(zone, t)` after every increase of a zone's occupancy; cheap once
    every zone has filled (nothing left to watch)."""

    def __init__(self, venue: Venue, occ: Mapping[str, int]):
        self.occ = occ  # the caller's live counts, read, never written
        self.near_at: dict[str, float | None] = dict.fromkeys(venue.zones)
        self.full_at: dict[str, float | None] = dict.fromkeys(venue.zones)
        # the same comparison as the zone's published state (counter/occupancy.py)
        self._near = {z: v.near_full * v.capacity for z, v in venue.zones.items()}
        self._cap = {z: v.capacity for z, v in venue.zones.items()}
        back = returning_zones(venue)
        self._load_of = {z: (z, *sorted(back[z])) for z in venue.zones}
        # a rise in zone y can fill every zone whose load counts y
        self._fills: dict[str, list[str]] = {z: [] for z in venue.zones}
        for z, parts in self._load_of.items():
            for y in parts:
                self._fills[y].append(z)
        self._pending_near = set(venue.zones)
        self._pending_full = set(venue.zones)

    def rose(self, zone: str, t: float) -> None:
        if zone in self._pending_near and self.occ[zone] >= self._near[zone]:
            self.near_at[zone] = t
            self._pending_near.discard(zone)
        if not self._pending_full:
            return
        for z in self._fills.get(zone, ()):
            if z in self._pending_full and self.load(z) >= self._cap[z]:
                self.full_at[z] = t
                self._pending_full.discard(z)

    def load(self, zone: str) -> int:
        """The zone's occupancy plus those who may walk back in (as the leases count)."""
        return sum(self.occ[y] for y in self._load_of[zone])
