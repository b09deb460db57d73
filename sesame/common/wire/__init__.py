"""The MQTT wire contract: topics and typed messages (see docs/design.md, "Topics").

Parsing is strict and total: every `parse_*` returns either the message or a ParseError,
never raises. Unknown extra fields are ignored so the contract can grow; fields named in
docs/mqtt.md are never renamed.

One module per message family; `from sesame.common import wire` gives all of them:
- `base`: version, limits, the parse helpers, `dumps`/`iso`;
- `lanes`: a lane's events and status, its lease and the counter's ack;
- `counter`: occupancy per zone and the counter's status;
- `controls`: closed zones, evacuation, revocations, corrections;
- `alerts`: the counter's findings (`counter/alerts/<shard>`) and the dashboard's escalations;
- `shards`: large retained lists (revocations, findings) as small messages, one per shard;
- `admissions`: the venue's badge passages republished by the counter (who is inside);
- `decisions`: a safety officer's decisions on held findings (`control/decisions`).
Topics live in `sesame.common.topics` and are re-exported here.
"""

from __future__ import annotations

from sesame.common.topics import ROOT, Route, TopicKind, Topics, match_key
from sesame.common.wire.admissions import Admission, Admissions, parse_admissions
from sesame.common.wire.alerts import (
    MAX_ALERTS_PAYLOAD,
    MAX_FINDINGS,
    CounterAlerts,
    Finding,
    alert_shards,
    escalated_payload,
    parse_counter_alerts,
)
from sesame.common.wire.base import (
    _EPOCH as _EPOCH,  # the counter checks a lane's epoch id the way the wire does
)
from sesame.common.wire.base import (
    MAX_PAYLOAD,
    MAX_SEQ,
    TS_MAX,
    TS_MIN,
    VERSION,
    ZONE_STATES,
    ParseError,
    dumps,
    iso,
)
from sesame.common.wire.base import (
    _load as _load,  # tests read a payload's JSON as the parsers see it
)
from sesame.common.wire.controls import (
    MAX_REVOCATIONS_PAYLOAD,
    MAX_REVOKED,
    Correction,
    Revocations,
    RevocationShard,
    VenueControl,
    ZoneControl,
    parse_correction,
    parse_revocation_shard,
    parse_revocations,
    parse_venue_control,
    parse_zone_control,
)
from sesame.common.wire.counter import (
    MAX_RATE,
    CounterStatus,
    Occupancy,
    parse_counter_status,
    parse_occupancy,
)
from sesame.common.wire.decisions import Decision, parse_decision
from sesame.common.wire.lanes import (
    Ack,
    Event,
    GateStatus,
    Lease,
    parse_ack,
    parse_event,
    parse_gate_status,
    parse_lease,
)

__all__ = [
    "MAX_ALERTS_PAYLOAD", "MAX_FINDINGS", "MAX_PAYLOAD", "MAX_RATE",
    "MAX_REVOCATIONS_PAYLOAD", "MAX_REVOKED", "MAX_SEQ",
    "ROOT", "TS_MAX", "TS_MIN", "VERSION", "ZONE_STATES",
    "Ack", "Admission", "Admissions", "CounterAlerts", "CounterStatus", "Correction", "Decision",
    "Event", "Finding", "GateStatus",
    "Lease", "Occupancy", "ParseError", "RevocationShard", "Revocations", "Route",
    "TopicKind", "Topics",
    "VenueControl", "ZoneControl",
    "alert_shards", "dumps", "escalated_payload", "iso", "match_key",
    "parse_ack", "parse_admissions", "parse_correction", "parse_counter_alerts",
    "parse_counter_status", "parse_decision",
    "parse_event", "parse_gate_status", "parse_lease", "parse_occupancy", "parse_revocation_shard",
    "parse_revocations", "parse_venue_control", "parse_zone_control",
]  # fmt: skip
