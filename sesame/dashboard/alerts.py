"""The dashboard's alert service: persistence, acknowledgement (audited) and escalation.

- Every alert an update carries is saved in the dashboard's database (`AlertStore`).
- `POST /api/alerts/acknowledge` (safety officers, sesame/dashboard/routes/alerts.py): who
  and when, in the audit log.
- Escalation: an active alert nobody acknowledged within `DashboardSettings.escalate_after_s` (real
  time) goes on the retained `alerts/escalated` topic, the complete list each time it
  changes, so a venue can hook a pager or a PA system to it. The content depends on the
  alerts only: two dashboards that agree publish the same bytes; acknowledgements are per
  dashboard, so a venue runs escalation on one of them (`--escalate-after 0` on the others).
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sesame.common.wire.alerts import escalated_payload
from sesame.dashboard.alert_book import AlreadyAcknowledged, NoSuchAlert
from sesame.dashboard.alert_store import AlertStore
from sesame.dashboard.errors import ApiError

if TYPE_CHECKING:
    from sesame.dashboard.accounts import User
    from sesame.dashboard.app import Dashboard

log = logging.getLogger("sesame.dashboard")
TICK_S = 1.0


class AlertService:
    def __init__(self, dash: Dashboard):
        self.dash = dash
        self.store = AlertStore(dash.settings.accounts_path)
        self.after = timedelta(seconds=dash.settings.escalate_after_s or 0)
        self._published: bytes | None = None  # last escalation payload the broker took
        self._poke = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def saved(self):
        return self.store.load()

    # -- persistence (MQTT thread) ------------------------------------------------------
    def persist(self, updates: list[tuple[str, Any]]) -> None:
        self.store.save([data for event, data in updates if event == "alert"])

    # -- acknowledgement ----------------------------------------------------------------
    def acknowledge(self, user: User, alert_id: int, reason: str) -> dict[str, Any]:
        dash = self.dash
        try:
            alert = dash.state.acknowledge(alert_id, user.username, dash.now())
        except NoSuchAlert:
            raise ApiError(404, "NOT_FOUND", f"no alert {alert_id}") from None
        except AlreadyAcknowledged as e:
            raise ApiError(409, "ALREADY_ACKNOWLEDGED", str(e)) from None
        self.store.save([alert])
        entry_id = dash.store.audit(
            user,
            "acknowledge_alert",
            alert["subject"],
            detail=json.dumps(
                {"id": alert["id"], "kind": alert["kind"], "subject": alert["subject"]}
            ),  # fmt: skip
            reason=reason,
            at=dash.now(),
        )
        dash.store.audit_outcome(entry_id, "recorded")
        entry = dash.store.audit_entry(entry_id).to_dict()
        dash.hub.publish("alert", alert)
        dash.hub.publish("audit", entry)
        self._poke.set()  # take it off the escalation list now
        return {"ok": True, "alert": alert, "audit": entry}

    # -- escalation ---------------------------------------------------------------------
    def start(self) -> None:
        if not self.after or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="dashboard-escalation",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # an edge: log and keep escalating
                log.exception("escalation tick failed")
            self._poke.wait(TICK_S)
            self._poke.clear()

    def tick(self) -> None:
        dash = self.dash
        with dash.state.lock:
            newly = [a.to_dict() for a in dash.state.book.escalate(dash.settings.wall_clock(),
                                                                   self.after)]  # fmt: skip
            current = [a.to_dict() for a in dash.state.book.escalated()]
        if newly:
            self.store.save(newly)
            for a in newly:
                dash.hub.publish("alert", a)
        payload = escalated_payload(current)
        if payload == self._published or dash.link is None:
            return
        try:
            dash.publish(dash.topics.escalated_alerts(), payload, retain=True)
        except ApiError as e:  # retried at the next tick
            log.warning("escalation not published: %s", e.message)
            return
        self._published = payload

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()
        if self._thread is not None:
            self._thread.join(5)
        self.store.close()
