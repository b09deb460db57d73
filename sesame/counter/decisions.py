"""A safety officer's decisions on `control/decisions`, applied once by id and audited
with the officer's name: confirming a held epoch change (epochs.py), accepting or
rejecting held passages (holds.py). A decision that no longer applies (the change it
confirms is not the one held now, nothing is held) is recorded as `stale` and changes
nothing, so a repeated or late message is harmless."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sesame.common.wire.decisions import CONFIRM_EPOCH, parse_decision
from sesame.counter.batch import Batch
from sesame.counter.epochs import Epochs
from sesame.counter.holds import Holds
from sesame.counter.store import CounterStore


class Decisions:
    def __init__(self, store: CounterStore, epochs: Epochs, holds: Holds,
                 clock: Callable[[], datetime]) -> None:  # fmt: skip
        self.store, self.epochs, self.holds, self.clock = store, epochs, holds, clock
        self.gates: set[str] = set(holds.venue.gates)

    def handle(self, _: str | None, payload: bytes, b: Batch) -> str | None:
        """One control/decisions message; returns a quarantine reason or None."""
        d = parse_decision(payload)
        if not d:
            return d.reason
        if d.gate not in self.gates:
            return f"unknown gate {d.gate!r}"
        if not self.store.record_decision(d):
            return None  # applied already: delivered twice
        if d.action == CONFIRM_EPOCH:
            outcome, detail = self.epochs.confirm(d, self.clock())
        elif self.holds.held.get(d.gate, 0) == 0:
            outcome, detail = "stale", {"gate": d.gate, "passages": 0, "asked": d.count}
        else:
            outcome, detail = "applied", self.holds.decide(d, b)
        detail = {"decision": d.id, "outcome": outcome, **detail}
        self.store.decision_outcome(d.id, outcome, detail)
        self.store.audit(d.action, who=d.by, zone=None,
                         detail={**detail, "reason": d.reason, "ts": d.ts.isoformat()})  # fmt: skip
        return None
