"""Capacity leases: how many entries each entry lane may grant into each zone (pure).

The invariant (docs/design.md, invariant 2): for every zone while its lanes are online, and for
every zone with `offline_policy = "lease"` also while they are cut off,

    occupancy + sum over its entry lanes of (exposure - spent)  <=  capacity

where `spent` is the lane's committed passages into the zone for the day and `exposure` is
the highest cumulative grant the lane may still be acting on. Grants on the wire are
cumulative for the day, so a lost or repeated lease message is harmless; a lane may grant
while its own count for the day is below its grant, hence at most `exposure - spent` people
can be inside without the counter knowing yet.

- Top-up: a lane holding `low_water` or fewer gets topped up toward its target, which
  follows its recent spend rate (busy lanes get more, idle ones keep `initial`), bounded by
  `max_per_gate` and by the zone's headroom; scarce headroom is shared by target.
- Reclaim: a lane holding more than it needs is lowered only when it has reported back
  (online, empty outbox, acting on the latest serial); the lower figure counts as its
  exposure only once the lane confirms that serial with an empty outbox (`confirm`).
  An offline lane's allowance stays reserved: it may be granting with it right now.
- Exits are never leased. Zones with `offline_policy = "open"` are leased too: their lanes
  keep to the allowance while online and admit without it only while cut off.
- People in zones that open back onto a zone (its `returning_zones`) count against its
  headroom: exits are never blocked, so their way back must always have room.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sesame.common.filling import returning_zones  # noqa: F401 (re-exported)
from sesame.common.venue import Venue


@dataclass
class GateLease:
    gate: str
    day: str
    serial: int = 0
    grants: dict[str, int] = field(default_factory=dict)
    exposure: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Demand:
    """What the counter knows about one lane and zone when planning."""

    spent: int = 0  # committed passages by this lane into the zone this day
    rate: float = 0.0  # passages per minute recently
    online: bool = True  # False once the lane's status says offline
    reported_back: bool = False  # online, outbox empty, acting on the latest serial


def leased_lanes(venue: Venue) -> dict[str, list[str]]:
    """Entry lanes and the zones they lead into (exit lanes are absent). Every zone is leased:
    its capacity holds while its lanes are online whatever its `offline_policy`, which says
    only what a cut-off lane does (keep to its allowance, or admit and count later)."""
    out: dict[str, list[str]] = {}
    for g in venue.gates.values():
        if g.is_exit:
            continue
        out[g.id] = [g.to_zone] if g.to_zone in venue.zones else []
    return out


def outstanding(lease: GateLease, zone: str, spent: int) -> int:
    return max(0, lease.exposure.get(zone, 0) - spent)


def target(demand: Demand, *, initial: int, max_per_gate: int) -> int:
    """Allowance a lane should hold: about two minutes of its recent flow."""
    return max(1, min(max_per_gate, max(initial, math.ceil(2 * demand.rate))))


def plan_zone(
    zone: str,
    capacity: int,
    occupancy: int,
    leases: dict[str, GateLease],
    demand: dict[str, Demand],
    *,
    initial: int,
    max_per_gate: int,
    low_water: int,
    accepting: bool = True,
) -> dict[str, int]:
    """New cumulative grants for the lanes into `zone` whose grant should change.

    `accepting` is False while the zone is closed or evacuating: nobody is topped up.
    """
    occ = max(0, occupancy)
    spent = {g: demand[g].spent for g in leases}
    headroom = capacity - occ - sum(outstanding(leases[g], zone, spent[g]) for g in leases)
    targets = {g: target(demand[g], initial=initial, max_per_gate=max_per_gate) for g in leases}
    holding = {g: max(0, leases[g].grants.get(zone, 0) - spent[g]) for g in leases}
    changes: dict[str, int] = {}

    # Scarce room (near capacity): the targets shrink to each lane's share of what is left,
    # so that allowance is not stranded on idle lanes while busy ones are refused.
    live = [g for g in sorted(leases) if demand[g].online]
    pool = max(0, headroom) + sum(holding[g] for g in live)
    if sum(targets[g] for g in live) > pool:
        shares = _share({g: targets[g] for g in live}, pool)
        targets.update({g: shares[g] for g in live})
        scarce = True
    else:
        scarce = False

    needs = {}
    if accepting:
        for g in live:
            low = min(low_water, targets[g] - 1) if scarce else low_water
            if holding[g] <= low and targets[g] > holding[g]:
                needs[g] = targets[g] - holding[g]

    if needs and (scarce or sum(needs.values()) > headroom):
        # Short of room: lower lanes that hold more than they need and can be reclaimed.
        for g in sorted(leases):
            d = demand[g]
            if d.reported_back and holding[g] > targets[g] and g not in needs:
                changes[g] = spent[g] + targets[g]

    give = _share(needs, max(0, headroom))
    for g, n in give.items():
        if n > 0:
            changes[g] = max(leases[g].grants.get(zone, 0), spent[g]) + n
    return changes


def _share(needs: dict[str, int], room: int) -> dict[str, int]:
    """Split `room` between lanes in proportion to what each needs, never above it."""
    total = sum(needs.values())
    if total <= room:
        return dict(needs)
    out = {g: (n * room) // total for g, n in needs.items()}
    left = room - sum(out.values())
    for g in sorted(needs, key=lambda g: (-needs[g], g)):
        if left <= 0:
            break
        if out[g] < needs[g]:
            out[g] += 1
            left -= 1
    return out


def apply(lease: GateLease, zone: str, grant: int) -> None:
    """Record a new grant; exposure rises at once, falls only on confirmation."""
    lease.grants[zone] = grant
    lease.exposure[zone] = max(lease.exposure.get(zone, 0), grant)


def confirm(lease: GateLease, serial: int, outbox_empty: bool) -> bool:
    """The lane reports acting on `serial` with everything delivered: exposure = grants.

    Returns True when some exposure fell (room was reclaimed).
    """
    if serial != lease.serial or not outbox_empty:
        return False
    fell = False
    for z, g in lease.grants.items():
        if lease.exposure.get(z, 0) > g:
            fell = True
        lease.exposure[z] = g
    return fell
