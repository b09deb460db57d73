"""The running counter: MQTT in, the core in one writer thread, MQTT out.

paho's network thread only queues incoming messages. The writer thread takes whatever is
queued (up to `batch_max`), lets the core commit it in one transaction, then publishes the
results (gate acks, occupancy, leases) and only then acknowledges the batch to the broker
(manual PUBACK). If the process dies before the commit, nothing was acknowledged: the
broker redelivers what it still holds and the gates re-publish the rest from their outboxes.

    c = Counter(venue, "sesame.db", "mqtt://counter:pw@broker:1883")
    c.start(); ...; c.stop()
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from counter.core import Core, Out
from counter.store import Store
from sesame import wire
from sesame.venue import Venue

log = logging.getLogger("sesame.counter")


class Counter:
    def __init__(
        self,
        venue: Venue,
        db_path: str | Path,
        broker_url: str | None,
        credentials: str | Path | None = None,
        *,
        client_id: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        batch_max: int = 2000,
        tick_s: float = 1.0,
        status_s: float = 5.0,
        session_expiry: int = 7 * 86400,
    ):
        self.venue = venue
        self.db_path = Path(db_path)
        self.broker_url = broker_url
        self.credentials = credentials
        self.client_id = client_id or f"sesame-counter-{venue.id}"
        self.clock = clock
        self.batch_max = batch_max
        self.tick_s = tick_s
        self.status_s = status_s
        self.session_expiry = session_expiry
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.core: Core | None = None
        self.conn = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.batches = 0

    # -- life cycle ----------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> Counter:
        from sesame import mqtt

        store = Store(self.db_path)
        self.core = Core(self.venue, store, self.clock)
        topics = wire.Topics(self.venue.id)
        will = (topics.counter_status(), wire.CounterStatus(online=False).to_json(), 1, True)
        self.conn = mqtt.connect(
            self.broker_url,
            self.client_id,
            credentials=self.credentials,
            will=will,
            subscriptions=[(t, 1) for t in self.core.subscriptions()],
            on_message=self._on_message,
            clean_start=False,
            session_expiry=self.session_expiry,
            manual_ack=True,
            timeout=timeout,
        )
        self._thread = threading.Thread(target=self._run, name="counter-writer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.conn is not None:
            if self.core is not None:
                self._publish([self.core.status(online=False)])
            self.conn.close()
        if self.core is not None:
            self.core.store.close()

    def __enter__(self) -> Counter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- threads -------------------------------------------------------------------------
    def _on_message(self, msg) -> None:
        # paho's network thread: queue only, never block on SQLite here.
        self.queue.put((time.monotonic(), msg))

    def _run(self) -> None:
        core = self.core
        assert core is not None
        try:
            self._publish(core.startup())
            next_tick = next_status = time.monotonic()
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_tick:
                    self._publish(core.tick())
                    next_tick = now + self.tick_s
                if now >= next_status:
                    self._publish([core.status()])
                    next_status = now + self.status_s
                try:
                    first = self.queue.get(timeout=max(0.0, min(next_tick, next_status) - now))
                except queue.Empty:
                    continue
                batch = [first]
                while len(batch) < self.batch_max:
                    try:
                        batch.append(self.queue.get_nowait())
                    except queue.Empty:
                        break
                self._handle(batch)
        except BaseException as e:  # the status goes offline; the caller sees .error
            log.exception("counter writer stopped")
            self.error = e

    def _handle(self, batch: list) -> None:
        core = self.core
        assert core is not None and self.conn is not None
        items = [(m.topic, m.payload) for _, m in batch]
        for attempt in range(3):
            try:
                outs = core.handle(items)
                break
            except Exception:
                if attempt == 2:
                    raise
                log.exception("commit failed, retrying")
                time.sleep(0.2 * (attempt + 1))
        self._publish(outs)
        for _, m in batch:
            if m.qos > 0:
                self.conn.ack(m)
        core.last_lag_ms = round((time.monotonic() - batch[0][0]) * 1000.0, 1)
        self.batches += 1

    def _publish(self, outs: list[Out]) -> None:
        assert self.conn is not None
        for o in outs:
            self.conn.publish(o.topic, o.payload, qos=1, retain=o.retain)
