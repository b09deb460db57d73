"""The safety officer's standing decisions as the counter holds them: closed zones and
the venue's evacuation mode, each change stored and audited."""

from __future__ import annotations

from sesame.common import wire
from sesame.common.states import VenueMode, ZoneAccess
from sesame.counter.store import CounterStore


class Controls:
    def __init__(self, store: CounterStore):
        self.store = store
        self.closed_zones: set[str] = set()
        self.evacuating = False

    def restore(self) -> None:
        for key, state in self.store.controls().items():
            if key == "venue":
                self.evacuating = state == VenueMode.EVACUATION
            elif key.startswith("zone:") and state == ZoneAccess.CLOSED:
                self.closed_zones.add(key[5:])

    def accepting(self, zone: str) -> bool:
        """False while nobody may be let into the zone (closed, or the venue evacuating)."""
        return not self.evacuating and zone not in self.closed_zones

    def zone(self, zone: str, zc: wire.ZoneControl) -> bool:
        """Apply a zone's open/closed decision; True when it changed something."""
        was = ZoneAccess.CLOSED if zone in self.closed_zones else ZoneAccess.OPEN
        if zc.state == was:
            return False
        closing = zc.state == ZoneAccess.CLOSED
        (self.closed_zones.add if closing else self.closed_zones.discard)(zone)
        ts = zc.ts.isoformat() if zc.ts else None
        self.store.set_control(f"zone:{zone}", zc.state, zc.by, ts)
        self.store.audit(f"zone_{zc.state}", who=zc.by, zone=zone, detail={"ts": ts})
        return True

    def venue(self, vc: wire.VenueControl) -> bool:
        """Apply the venue's normal/evacuation mode; True when it changed."""
        evac = vc.mode == VenueMode.EVACUATION
        if evac == self.evacuating:
            return False
        self.evacuating = evac
        ts = vc.ts.isoformat() if vc.ts else None
        self.store.set_control("venue", vc.mode, vc.by, ts)
        self.store.audit(f"venue_{vc.mode}", who=vc.by, zone=None, detail={"ts": ts})
        return True
