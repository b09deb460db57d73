"""The one access decision, shared by the gate agent, the counter and the simulator.

`decide()` is a pure function: everything it needs (venue rules, zone states, the lane's
remaining lease, what this lane remembers of a badge, the time) is passed in, nothing is
read from disk, network or clock. Rules apply in the order of docs/design.md, first refusal wins:

  exits are always granted (evacuation, a full zone or a dead counter never block leaving)
  MALFORMED / UNKNOWN_KEY / BAD_SIGNATURE     (the token itself)
  UNKNOWN_CATEGORY                            (signed, but the venue has no such category)
  NOT_VALID_TODAY / OUTSIDE_OPENING_HOURS     (venue local time, category early_minutes)
  ZONE_NOT_ALLOWED                            (category may not enter the lane's target zone)
  REVOKED                                     (retained revocation list)
  ALREADY_INSIDE / NO_REENTRY                 (re-entry rule, from this lane's memory)
  EVACUATION / ZONE_CLOSED / ZONE_FULL        (venue mode, zone state)
  LEASE_EXHAUSTED                             (lease-policy zones; a group of N needs N)
  GATE_LOCKED
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sesame.common.reasons import Reason, label
from sesame.common.states import VenueMode
from sesame.common.tokens import Claims, TokenError, verify
from sesame.common.venue import Gate, Reentry, Venue

# Exit lanes mostly have no reader, so a lane rarely sees a badge leave. Anti-passback is
# therefore timed: a badge that entered through this lane cannot enter again within this
# window unless the lane saw it leave (which stops a badge being handed back over the fence).
ANTIPASSBACK_WINDOW = timedelta(minutes=30)

GRANTED_ENTRY = ("Bienvenue", "Welcome")
GRANTED_EXIT = ("Au revoir", "Goodbye")


@dataclass(frozen=True)
class Seen:
    """What one lane remembers of one badge and zone on one event day."""

    last_in: datetime | None = None  # last granted entry into the zone
    last_out: datetime | None = None  # last exit out of the zone seen by this lane
    entries: int = 0  # badge scans granted into the zone that day (a group counts once)


class PassageMemory(Protocol):
    def seen(self, badge: str, zone: str, day: date) -> Seen: ...


@dataclass
class MemoryDict:
    """In-memory PassageMemory for tests and simulation; the agent keeps its own on disk."""

    rows: dict[tuple[str, str, date], Seen] = field(default_factory=dict)

    def seen(self, badge: str, zone: str, day: date) -> Seen:
        return self.rows.get((badge, zone, day), Seen())

    def entered(self, badge: str, zone: str, day: date, at: datetime) -> None:
        s = self.seen(badge, zone, day)
        self.rows[(badge, zone, day)] = Seen(at, s.last_out, s.entries + 1)

    def left(self, badge: str, zone: str, day: date, at: datetime) -> None:
        s = self.seen(badge, zone, day)
        self.rows[(badge, zone, day)] = Seen(s.last_in, at, s.entries)


@dataclass(frozen=True)
class Decision:
    granted: bool
    reason: Reason | None
    claims: Claims | None
    passages: int  # turnstile openings granted (group size); 0 when denied
    message_fr: str
    message_en: str
    detail: str = ""  # for logs, never shown as the reason

    @property
    def code(self) -> str:
        return "GRANTED" if self.granted else "DENIED"


def _deny(reason: Reason, claims: Claims | None = None, detail: str = "") -> Decision:
    return Decision(False, reason, claims, 0, label(reason, "fr"), label(reason, "en"), detail)


def _grant(claims: Claims | None, passages: int, exit_: bool) -> Decision:
    fr, en = GRANTED_EXIT if exit_ else GRANTED_ENTRY
    return Decision(True, None, claims, passages, fr, en)


def decide(
    text: str | None,
    *,
    venue: Venue,
    gate: Gate,
    keys: Mapping[str, Ed25519PublicKey],
    revoked: Collection[str],
    zone_states: Mapping[str, str],
    venue_mode: str,
    lease_left: int | None,
    memory: PassageMemory,
    now: datetime,
    gate_locked: bool = False,
) -> Decision:
    """Decide one scan at `gate`.

    zone_states: zone id -> "open" | "near_full" | "full" | "closed" | "evacuating" (missing
      means open); the caller merges the counter's occupancy state with officers' controls.
    venue_mode: a VenueMode ("normal" | "evacuation").
    lease_left: entries this lane may still grant into its target zone today; None when the
      zone is not leased (offline_policy "open").
    now: the best time the caller has (timezone-aware).
    """
    claims: Claims | None = None
    error: TokenError | None = None
    try:
        claims = verify(text if isinstance(text, str) else "", keys)
    except TokenError as e:
        error = e

    if gate.is_exit:
        # Leaving is never refused. A readable badge is recorded; anything else passes as one
        # anonymous person.
        return _grant(claims, claims.group if claims else 1, exit_=True)

    if claims is None:
        assert error is not None
        return _deny(error.reason, None, error.detail)

    category = venue.categories.get(claims.category)
    if category is None:
        return _deny(Reason.UNKNOWN_CATEGORY, claims)

    try:
        day = venue.day_of(now)
    except (OverflowError, ValueError):  # a time no calendar in the venue's zone can hold
        return _deny(Reason.OUTSIDE_OPENING_HOURS, claims, f"implausible time {now!r}")
    if day is not None and not claims.valid_on(day.date):
        return _deny(Reason.NOT_VALID_TODAY, claims)
    if day is None:
        # Not an event day at all: a badge for named days is simply not valid today.
        reason = Reason.OUTSIDE_OPENING_HOURS if claims.days is None else Reason.NOT_VALID_TODAY
        return _deny(reason, claims)
    opens, closes = venue.opening_window(day, category.early_minutes)
    if not opens <= now < closes:
        return _deny(Reason.OUTSIDE_OPENING_HOURS, claims)

    zone = gate.to_zone
    if zone not in category.zones:
        return _deny(Reason.ZONE_NOT_ALLOWED, claims)

    if claims.badge in revoked:
        return _deny(Reason.REVOKED, claims)

    seen = memory.seen(claims.badge, zone, day.date)
    if category.reentry == Reentry.ONCE and seen.entries > 0:
        return _deny(Reason.NO_REENTRY, claims)
    if (
        category.reentry == Reentry.ANTIPASSBACK
        and seen.last_in is not None
        and (seen.last_out is None or seen.last_out < seen.last_in)
        and now - seen.last_in < ANTIPASSBACK_WINDOW
    ):
        return _deny(Reason.ALREADY_INSIDE, claims)

    state = zone_states.get(zone, "open")
    if venue_mode == VenueMode.EVACUATION or state == "evacuating":
        return _deny(Reason.EVACUATION, claims)
    if state == "closed":
        return _deny(Reason.ZONE_CLOSED, claims)
    if state == "full":
        return _deny(Reason.ZONE_FULL, claims)
    if lease_left is not None and lease_left < claims.group:
        return _deny(Reason.LEASE_EXHAUSTED, claims, f"{lease_left} left, {claims.group} needed")
    if gate_locked:
        return _deny(Reason.GATE_LOCKED, claims)
    return _grant(claims, claims.group, exit_=False)
