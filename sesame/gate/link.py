"""The gate's MQTT link: drains the outbox in order, hears the counter, reports status.

Delivery is the counter's business, not the broker's: an event leaves the outbox only when
the counter's retained `gates/<gate>/ack` covers it. The pump publishes unacknowledged
events in seq order (QoS 1) and starts again from the last ack after every reconnect, or
when the ack has not moved for `ack_timeout` seconds while events are outstanding. The
counter dedups by event id, so a repeat is harmless; a gap never happens.

A broker that refuses a publish (MQTT 5 PUBACK reason >= 0x80, e.g. 135 not authorised)
raises the PUBLISH_REFUSED fault; the event stays in the outbox. A broker that drops a
refused publish silently and answers with a normal PUBACK (MQTT 3.1.1, and NATS in every
case) gives no such sign: events published but not acknowledged for `ack_timeout` seconds
while connected raise the UNACKNOWLEDGED fault instead, shown on the lane and in its status.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sesame.common.wire import Topics
from sesame.gate.outbox import Outbox

log = logging.getLogger("sesame.gate.link")

WINDOW = 1000  # events published ahead of the counter's ack
BATCH = 200
ACK_TIMEOUT = 10.0  # seconds without ack progress before publishing again from the ack


class GateLink:
    def __init__(
        self,
        broker_url: str,
        *,
        gate: str,
        topics: Topics,
        outbox: Outbox,
        credentials: str | Path | None,
        will: bytes,
        on_message: Callable[[str, bytes, bool], None],
        on_change: Callable[[], None] = lambda: None,
        ack_timeout: float = ACK_TIMEOUT,
        admissions: bool = False,
    ):
        self.gate, self.topics, self.outbox = gate, topics, outbox
        self.admissions = admissions  # an entry lane hears every lane's admissions
        self._url, self._credentials, self._will = broker_url, credentials, will
        self._on_message, self._on_change = on_message, on_change
        self.ack_timeout = ack_timeout
        self.state = "disconnected"  # connected | disconnected | refused
        self.detail = ""
        self.refused_publishes = 0
        self.last_refusal: int | None = None
        self._conn = None
        self._wake = threading.Event()
        self._status_due = threading.Event()
        self._stop = threading.Event()
        self._sent = 0  # highest seq handed to the broker since the last restart point
        self._last_progress = time.monotonic()
        self._last_acked = outbox.acked_seq
        # monotonic time since which published events wait for an ack that does not move
        self._waiting_since: float | None = None
        self._thread: threading.Thread | None = None

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.is_connected()

    @property
    def unacknowledged(self) -> bool:
        """Events published while connected have waited longer than `ack_timeout` for the
        counter's ack: dropped by the broker, or the counter is not taking them."""
        since = self._waiting_since
        return self.connected and since is not None and time.monotonic() - since > self.ack_timeout

    def subscriptions(self) -> list[tuple[str, int]]:
        t = self.topics
        return [
            (t.lease(self.gate), 1),
            (t.ack(self.gate), 1),
            (t.occupancy(), 1),
            (t.zone_control(), 1),
            (t.venue_control(), 1),
            (t.revoked(), 1),
            (t.counter_status(), 1),
        ] + ([(t.admissions(), 1), (t.lane_admissions(self.gate), 1)] if self.admissions else [])

    def start(self) -> None:
        from sesame.common import mqtt

        self._conn = mqtt.connect(
            self._url,
            # not guessable by another gate, which could otherwise disconnect this one
            mqtt.account_client_id(f"gate-{self.gate}", self._url, self._credentials),
            credentials=self._credentials,
            will=(self.topics.gate_status(self.gate), self._will, 1, True),
            subscriptions=self.subscriptions(),
            on_message=lambda m: self._on_message(m.topic, bytes(m.payload), bool(m.retain)),
            on_state=self._state,
            on_refused=self._refused,
            wait=False,
        )
        self._thread = threading.Thread(target=self._pump, name=f"pump-{self.gate}", daemon=True)
        self._thread.start()

    def _state(self, state: str, detail: str) -> None:
        self.state, self.detail = state, detail
        if state == "connected":
            self._sent = self.outbox.acked_seq  # publish again everything not acknowledged
            self._last_progress = time.monotonic()
            self._waiting_since = None  # the counter gets its chance on this connection
        self.request_status()

    def _refused(self, mid: int, code: int) -> None:
        self.refused_publishes += 1
        self.last_refusal = code
        self.request_status()

    def wake(self) -> None:
        """A new event is in the outbox, or an ack arrived."""
        self._wake.set()

    def request_status(self) -> None:
        """Publish the status soon, from the pump thread: never from inside a paho callback,
        where publishing can deadlock against a publish in another thread."""
        self._status_due.set()
        self._wake.set()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        if self._conn is not None:
            self._conn.publish(topic, payload, qos=1, retain=retain)

    def _pump(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            if not self.connected:
                continue
            try:
                self._pump_once()
            except Exception:  # the pump must outlive any one failure, or delivery stops
                if self._stop.is_set():
                    return
                log.exception("%s: outbox pump failed; trying again", self.gate)
                time.sleep(0.5)

    def _pump_once(self) -> None:
        topic = self.topics.events(self.gate)
        if self._status_due.is_set():
            self._status_due.clear()
            self._on_change()
        acked = self.outbox.acked_seq
        now = time.monotonic()
        if acked != self._last_acked:
            # the counter is taking our events: whatever was refused before is resolved
            self._last_acked, self._last_progress = acked, now
            self.refused_publishes = 0
            self._waiting_since = None
        stalled = self.unacknowledged
        if self.outbox.depth() == 0:
            self._waiting_since = None
        elif self._sent > acked and self._waiting_since is None:
            self._waiting_since = now
        if self.unacknowledged != stalled:
            self._on_change()  # the fault appears or clears on the lane and in its status
        if self._sent < acked:
            self._sent = acked
        if self._sent > acked and now - self._last_progress > self.ack_timeout:
            log.info(
                "%s: no ack for %.0f s, publishing again from %d",
                self.gate,
                self.ack_timeout,
                acked + 1,
            )
            self._sent, self._last_progress = acked, now
        while self._sent < acked + WINDOW and self.connected and not self._stop.is_set():
            batch = self.outbox.pending(self._sent, min(BATCH, acked + WINDOW - self._sent))
            if not batch:
                break
            for seq, body in batch:
                self.publish(topic, body)
                self._sent = seq

    def stop(self, final_status: bytes | None = None) -> None:
        """Orderly stop: publish the final (offline) status, disconnect cleanly."""
        self._stop.set()
        self._wake.set()
        if self._conn is not None:
            if final_status is not None and self.connected:
                self._conn.publish(self.topics.gate_status(self.gate), final_status, 1, True)
            self._conn.close(timeout=2.0)
        if self._thread is not None:
            self._thread.join(timeout=2)

    def kill(self) -> None:
        """Abrupt stop for tests: drop the socket without DISCONNECT, so the Will fires."""
        self._stop.set()
        self._wake.set()
        if self._conn is not None:
            c = self._conn.client
            c.loop_stop()
            sock = c.socket()
            if sock is not None:
                sock.close()
