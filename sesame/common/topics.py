"""The MQTT topics of the contract (see docs/mqtt.md): building them, and reading one
back once for every subscriber (counter, gates, dashboard) with `Topics.match`."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

ROOT = "sesame/v1"


class TopicKind(StrEnum):
    """What a topic of the contract carries; `Topics.match` names it once for every reader."""

    EVENTS = "events"
    GATE_STATUS = "gate_status"
    LEASE = "lease"
    ACK = "ack"
    COUNTER_STATUS = "counter_status"
    OCCUPANCY = "occupancy"
    ZONE_CONTROL = "zone_control"
    VENUE_CONTROL = "venue_control"
    CORRECTIONS = "corrections"
    REVOKED = "revoked"
    ALERTS = "alerts"
    DECISIONS = "decisions"
    ADMISSIONS = "admissions"  # counter/admissions: every lane's admissions, live
    LANE_ADMISSIONS = "lane_admissions"  # gates/<gate>/admissions: one lane's catch-up


class Route(NamedTuple):
    """A matched topic: its kind, the gate or zone it names (None for venue-wide topics),
    and its path below the venue root (the key a gate keeps retained values under)."""

    kind: TopicKind
    subject: str | None
    key: str


# <root>/<a>/<subject>/<b>, <root>/<a>/<b>/<subject>, <root>/<a>/<b>
_SUBJECT_MIDDLE = {
    ("gates", "events"): TopicKind.EVENTS,
    ("gates", "status"): TopicKind.GATE_STATUS,
    ("gates", "lease"): TopicKind.LEASE,
    ("gates", "ack"): TopicKind.ACK,
    ("zones", "occupancy"): TopicKind.OCCUPANCY,
    ("gates", "admissions"): TopicKind.LANE_ADMISSIONS,
}
# the subject of a sharded list's topic is its shard (sesame/common/wire/shards.py)
_SUBJECT_LAST = {
    ("control", "zones"): TopicKind.ZONE_CONTROL,
    ("badges", "revoked"): TopicKind.REVOKED,
    ("counter", "alerts"): TopicKind.ALERTS,
}
_FIXED = {
    ("counter", "status"): TopicKind.COUNTER_STATUS,
    ("control", "venue"): TopicKind.VENUE_CONTROL,
    ("control", "corrections"): TopicKind.CORRECTIONS,
    ("control", "decisions"): TopicKind.DECISIONS,
    ("counter", "admissions"): TopicKind.ADMISSIONS,
}


class Topics:
    """Topic names under `sesame/v1/<venue>`. Handlers see ids, never prefixes."""

    def __init__(self, venue: str):
        self.root = f"{ROOT}/{venue}"
        self._prefix = self.root + "/"

    def events(self, gate: str = "+") -> str:
        return f"{self.root}/gates/{gate}/events"

    def gate_status(self, gate: str = "+") -> str:
        return f"{self.root}/gates/{gate}/status"

    def lease(self, gate: str = "+") -> str:
        return f"{self.root}/gates/{gate}/lease"

    def ack(self, gate: str = "+") -> str:
        return f"{self.root}/gates/{gate}/ack"

    def counter_status(self) -> str:
        return f"{self.root}/counter/status"

    def occupancy(self, zone: str = "+") -> str:
        return f"{self.root}/zones/{zone}/occupancy"

    def zone_control(self, zone: str = "+") -> str:
        return f"{self.root}/control/zones/{zone}"

    def venue_control(self) -> str:
        return f"{self.root}/control/venue"

    def revoked(self, shard: str = "+") -> str:
        """One shard of the revocation list (`wire.RevocationShard`); "+": all of them."""
        return f"{self.root}/badges/revoked/{shard}"

    def corrections(self) -> str:
        return f"{self.root}/control/corrections"

    def alerts(self, shard: str = "+") -> str:
        """One shard of the counter's findings (`wire.CounterAlerts`); "+": all of them."""
        return f"{self.root}/counter/alerts/{shard}"

    def decisions(self) -> str:
        """A safety officer's decisions on held findings (sesame/common/wire/decisions.py)."""
        return f"{self.root}/control/decisions"

    def admissions(self) -> str:
        """Who entered or left where, as the counter stored it (wire/admissions.py)."""
        return f"{self.root}/counter/admissions"

    def lane_admissions(self, gate: str = "+") -> str:
        """The admissions a lane missed, replayed to that lane alone."""
        return f"{self.root}/gates/{gate}/admissions"

    def escalated_alerts(self) -> str:
        return f"{self.root}/alerts/escalated"

    def owns(self, topic: str) -> bool:
        """True when the topic is under this venue's root (known kind or not)."""
        return topic.startswith(self._prefix)

    def split(self, topic: str) -> tuple[str, ...] | None:
        """Topic parts after the root, or None when it is not ours."""
        if not topic.startswith(self._prefix):
            return None
        return tuple(topic[len(self._prefix) :].split("/"))

    def match(self, topic: str) -> Route | None:
        """The contract's reading of a topic, or None when it is not one of this venue's."""
        if not topic.startswith(self._prefix):
            return None
        return match_key(topic[len(self._prefix) :])

    def gate_of(self, topic: str) -> str | None:
        parts = self.split(topic)
        if parts and len(parts) == 3 and parts[0] == "gates":
            return parts[1]
        return None


def match_key(key: str) -> Route | None:
    """Read a topic's path below the venue root ("gates/in-1/lease"); None when the
    contract has no such topic."""
    parts = key.split("/")
    if len(parts) == 3:
        a, b, c = parts
        kind = _SUBJECT_MIDDLE.get((a, c))
        if kind is not None:
            return Route(kind, b, key)
        kind = _SUBJECT_LAST.get((a, b))
        if kind is not None:
            return Route(kind, c, key)
    elif len(parts) == 2:
        kind = _FIXED.get((parts[0], parts[1]))
        if kind is not None:
            return Route(kind, None, key)
    return None
