"""Lanes whose fire alarm input is active (FIRE_ALARM in their retained status).

Pure bookkeeping for the counter: which lanes report the alarm and since when, as the
`counter/alerts` findings, and whether this report should put the venue into evacuation
(only with the venue's `fire_alarm_evacuates = true`; otherwise a safety officer decides).
A lane that goes offline keeps its alarm: only its own status without FIRE_ALARM clears it.
"""

from __future__ import annotations

from datetime import datetime

from sesame.common import wire

KIND = "FIRE_ALARM"


class FireAlarms:
    def __init__(self) -> None:
        self.active: dict[str, datetime] = {}  # gate -> since (the lane's status time)

    def update(self, gate: str, st: wire.GateStatus, now: datetime) -> tuple[bool, bool]:
        """Take one lane status; returns (the list changed, this lane's alarm just began)."""
        if KIND in st.faults:
            if gate in self.active:
                return False, False
            self.active[gate] = st.ts or now
            return True, True
        if st.online and gate in self.active:
            del self.active[gate]
            return True, False
        return False, False

    def alerts(self) -> list[wire.Alert]:
        return [
            wire.Alert(KIND, gate, since, detail={"lane": gate})
            for gate, since in sorted(self.active.items())
        ]

    def message(self, topics: wire.Topics, now: datetime) -> tuple[str, bytes]:
        """(topic, payload) of the retained `counter/alerts` list."""
        return topics.alerts(), wire.Alerts(tuple(self.alerts()), now).to_json()

    @staticmethod
    def evacuate(store, topics: wire.Topics, gate: str, now: datetime) -> tuple[str, bytes]:
        """The venue's fire_alarm_evacuates setting: this lane's alarm starts the evacuation.
        Recorded and audited in the caller's transaction; returns the `control/venue`
        message every lane obeys."""
        by = f"counter:fire-alarm:{gate}"
        store.set_control("venue", "evacuation", by, now.isoformat())
        store.audit(
            "venue_evacuation", who="counter", zone=None,
            detail={"ts": now.isoformat(), "cause": KIND, "gate": gate,
                    "setting": "fire_alarm_evacuates"},
        )  # fmt: skip
        return topics.venue_control(), wire.VenueControl("evacuation", by, now).to_json()
