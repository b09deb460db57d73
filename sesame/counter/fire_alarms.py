"""Lanes whose fire alarm input is active (FIRE_ALARM in their retained status).

Pure bookkeeping for the counter: which lanes report the alarm and since when, kept as
FIRE_ALARM findings (`sesame.counter.findings`), and whether this report should put the
venue into evacuation (only with the venue's `fire_alarm_evacuates = true`; otherwise a
safety officer decides).
A lane that goes offline keeps its alarm: only its own status without FIRE_ALARM clears it.
"""

from __future__ import annotations

from datetime import datetime

from sesame.common import wire
from sesame.common.states import VenueMode
from sesame.counter.findings import Findings

KIND = "FIRE_ALARM"


class FireAlarms:
    def __init__(self, findings: Findings) -> None:
        self.findings = findings

    @property
    def active(self) -> dict[str, datetime]:
        """gate -> since (the lane's status time)"""
        return {g: a.since for g, a in self.findings.active(KIND).items()}

    def update(self, gate: str, st: wire.GateStatus, now: datetime) -> tuple[bool, bool]:
        """Take one lane status; returns (the list changed, this lane's alarm just began)."""
        if KIND in st.faults:
            if self.findings.get(KIND, gate) is not None:
                return False, False
            self.findings.raise_(KIND, gate, st.ts or now, {"lane": gate})
            return True, True
        if st.online and self.findings.clear(KIND, gate):
            return True, False
        return False, False

    @staticmethod
    def evacuate(store, topics: wire.Topics, gate: str, now: datetime) -> tuple[str, bytes]:
        """The venue's fire_alarm_evacuates setting: this lane's alarm starts the evacuation.
        Recorded and audited in the caller's transaction; returns the `control/venue`
        message every lane obeys."""
        by = f"counter:fire-alarm:{gate}"
        store.set_control("venue", VenueMode.EVACUATION, by, now.isoformat())
        store.audit(
            "venue_evacuation", who="counter", zone=None,
            detail={"ts": now.isoformat(), "cause": KIND, "gate": gate,
                    "setting": "fire_alarm_evacuates"},
        )  # fmt: skip
        return topics.venue_control(), wire.VenueControl(VenueMode.EVACUATION, by, now).to_json()
