"""An in-memory driver: the real decision (`sesame.common.decision.decide`) against exact occupancy.

No broker, no outbox: each lane remembers its own passages, and a lease-policy zone lets in
exactly as many as its remaining capacity. Used to check the visitor model quickly and by
`sesame simulate --in-memory`; the full system is driven by `sesame.run.orchestrator`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sesame.common.decision import MemoryDict, decide
from sesame.common.states import VenueMode
from sesame.common.venue import Venue
from sesame.sim.engine import ScanResult


def at_time(at: int) -> datetime:
    return datetime.fromtimestamp(at / 1000, UTC)


class LocalDriver:
    def __init__(self, venue: Venue, keys: Mapping[str, Ed25519PublicKey], revoked=()):
        self.venue, self.keys, self.revoked = venue, keys, set(revoked)
        self.memory: dict[str, MemoryDict] = defaultdict(MemoryDict)
        self.occupancy: dict[str, int] = defaultdict(int)
        self._day = None

    def _roll(self, now: datetime) -> None:
        day = self.venue.day_of(now)
        if day is not None and day != self._day:
            self._day = day
            self.occupancy.clear()  # the daily reset: everybody left at closing

    def scan(self, gate: str, text: str, at: int, pushes: int) -> ScanResult:
        now = at_time(at)
        self._roll(now)
        g = self.venue.gates[gate]
        zone = self.venue.zones.get(g.to_zone)
        room = {z.id: self._headroom(z.id) for z in self.venue.zones.values()}
        states = {z: "full" if n <= 0 else "open" for z, n in room.items()}
        lease = None
        if zone is not None:  # every zone is leased while its lanes are online
            lease = max(0, room[zone.id])
        d = decide(
            text,
            venue=self.venue,
            gate=g,
            keys=self.keys,
            revoked=self.revoked,
            zone_states=states,
            venue_mode=VenueMode.NORMAL,
            lease_left=lease,
            memory=self.memory[gate],
            now=now,
        )
        if not d.granted:
            return ScanResult(False, str(d.reason), 0)
        passed = min(pushes, d.passages)
        if passed and d.claims is not None:
            day = self.venue.day_of(now)
            if day is not None and not g.is_exit:
                self.memory[gate].entered(d.claims.badge, g.to_zone, day.date, now)
        self._move(g.from_zone, g.to_zone, passed)
        return ScanResult(True, None, passed)

    def pulse(self, gate: str, at: int, count: int) -> int:
        self._roll(at_time(at))
        g = self.venue.gates[gate]
        self._move(g.from_zone, g.to_zone, count)
        return count

    def _headroom(self, zone: str) -> int:
        """Capacity left, keeping room for those who may walk back in from zones that open
        onto this one (exits are never blocked)."""
        inside = self.occupancy[zone]
        todo = [z.id for z in self.venue.zones.values() if z.parent == zone]
        while todo:
            child = todo.pop()
            inside += self.occupancy[child]
            todo += [z.id for z in self.venue.zones.values() if z.parent == child]
        return self.venue.zones[zone].capacity - inside

    def _move(self, a: str, b: str, n: int) -> None:
        self.occupancy[a] -= n
        self.occupancy[b] += n
