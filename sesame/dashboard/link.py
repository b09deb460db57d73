"""The dashboard's MQTT edge: subscribe to the venue's retained state, publish controls.

Started without waiting for the broker, so the dashboard serves pages (and says the broker
is unreachable) while Mosquitto restarts; `sesame.common.mqtt` reconnects with backoff.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from sesame.common import mqtt, wire

if TYPE_CHECKING:
    from sesame.dashboard.app import DashboardSettings

log = logging.getLogger("sesame.dashboard")
PUBLISH_WAIT_S = 3.0


class PublishRefused(Exception):
    """The broker refused the publish (MQTT 5 reason code >= 0x80, e.g. the ACL)."""


class DashboardLink:
    def __init__(
        self,
        settings: DashboardSettings,
        on_message: Callable[[str, bytes], None],
        on_state: Callable[[str, str], None] | None = None,
    ):
        t = wire.Topics(settings.venue.id)
        subs = [
            (t.occupancy("+"), 1),
            (t.gate_status("+"), 1),
            (t.counter_status(), 1),
            (t.alerts(), 1),
            (f"{t.root}/control/zones/+", 1),
            (t.venue_control(), 1),
        ]
        self.conn = mqtt.connect(
            settings.broker_url,
            f"dashboard-{uuid.uuid4().hex[:10]}",
            credentials=settings.credentials,
            subscriptions=subs,
            on_message=lambda m: on_message(m.topic, m.payload),
            clean_start=True,  # retained messages give the full state on every connect
            session_expiry=0,
            wait=False,
            on_state=on_state,
        )
        # publishes that could not be confirmed in time: (info, callback), watched until the
        # broker takes them, so the audit log can say when a queued action finally left
        self._late: list[tuple] = []
        self._late_lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="dashboard-late", daemon=True)
        self._watcher.start()

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        on_late: Callable[[str], None] | None = None,
    ) -> str:
        """'published' once the broker has accepted it, 'queued' when it could not be sent
        yet (paho sends it on reconnect; `on_late(outcome)` is called when it finally is);
        raises PublishRefused when the broker refused."""
        info = self.conn.publish(topic, payload, qos=qos, retain=retain)
        try:
            info.wait_for_publish(PUBLISH_WAIT_S)
        except (RuntimeError, ValueError):
            pass
        if not info.is_published():
            if on_late is not None:
                with self._late_lock:
                    self._late.append((info, on_late))
            return "queued"
        if self._refused(info.mid):
            raise PublishRefused(f"the broker refused the message on {topic}")
        return "published"

    def _refused(self, mid: int) -> bool:
        return any(m == mid for m, _ in list(self.conn.refusals))

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            with self._late_lock:
                done = [(i, cb) for i, cb in self._late if i.is_published()]
                self._late = [(i, cb) for i, cb in self._late if not i.is_published()]
            for info, cb in done:
                try:
                    cb("refused" if self._refused(info.mid) else "published late")
                except Exception:  # a callback must not stop the watcher
                    log.exception("late publish callback failed")

    def close(self) -> None:
        self._stop.set()
        self.conn.close(timeout=2.0)


def connect_link(settings: DashboardSettings, on_message, on_state=None) -> DashboardLink:
    return DashboardLink(settings, on_message, on_state)
