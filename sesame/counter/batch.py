"""What one transaction of the counter collects before it commits (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sesame.counter.store import EventRow


@dataclass(frozen=True)
class Out:
    """One message to publish after the commit (QoS 1)."""

    topic: str
    payload: bytes
    retain: bool = True


@dataclass(slots=True)
class Batch:
    """The working set of one `Core.handle` call, written in one transaction."""

    received_at: str  # stamped on stored events and quarantined messages
    wall_t: float  # the counter's clock as Unix seconds, for plausibility checks
    rows: list[EventRow] = field(default_factory=list)
    # (topic, payload, reason, received_at) of messages refused
    bad: list[tuple[str, bytes, str, str]] = field(default_factory=list)
    touched: dict[tuple[str, str], None] = field(default_factory=dict)  # (gate, epoch) to ack
    zones: set[str] = field(default_factory=set)  # zones whose occupancy to publish
    dirty_days: set[str] = field(default_factory=set)  # closed days whose residue moved
    out: list[Out] = field(default_factory=list)  # leases and the like, published after
    retained: bool = False  # the message being handled is a retained copy
