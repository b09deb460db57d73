"""The running counter: MQTT in, the core in one writer thread, MQTT out.

One writer thread does everything after the connection is up: it runs paho's network loop
itself, takes whatever the broker has sent (up to `batch_max`), lets the core commit it in
one transaction, then publishes the results (gate acks, occupancy, leases) and only then
acknowledges the batch to the broker (manual PUBACK). If the process dies before the
commit, nothing was acknowledged: the broker redelivers what it still holds and the gates
re-publish the rest from their outboxes.

    c = Counter(venue, "sesame.db", "mqtt://counter:pw@broker:1883")
    c.start(); ...; c.stop()
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sesame.common import wire
from sesame.common.venue import Venue
from sesame.counter import venue_record
from sesame.counter.core import Core, Out
from sesame.counter.database import ERRORS, display, is_postgres
from sesame.counter.metrics import CounterMetrics
from sesame.counter.store import CounterStore, Fenced, utcnow

log = logging.getLogger("sesame.counter")


class Counter:
    BATCH_MAX = 250  # events per transaction; small enough to keep the broker's window open

    def __init__(
        self,
        venue: Venue,
        db_path: str | Path,
        broker_url: str | None,
        credentials: str | Path | None = None,
        *,
        client_id: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        batch_max: int = BATCH_MAX,
        tick_s: float = 1.0,
        status_s: float = 5.0,
        session_expiry: int = 7 * 86400,
        on_state: Callable[[str, str], None] | None = None,
        ha_discovery: str | None = None,
        term: int | None = None,
        name: str = "counter",
        metrics: CounterMetrics | None = None,
    ):
        self.venue = venue
        # a SQLite file, or a PostgreSQL URL shared with standby counters
        self.db_path = db_path if is_postgres(db_path) else Path(db_path)
        # The term this counter was elected with (standby.Leadership), None when it runs
        # alone: it stamps every lease and ack, and fences every transaction.
        self.term = term
        self.name = name
        self.broker_url = broker_url
        self.credentials = credentials
        self.client_id = client_id  # None: derived from the account at start()
        self.clock = clock
        self.batch_max = batch_max
        self.tick_s = tick_s
        self.status_s = status_s
        self.session_expiry = session_expiry
        self.inbox: deque = deque()
        self.core: Core | None = None
        self.conn = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.connection_events: list[tuple[str, str]] = []
        self.on_state = on_state  # hears "connected" / "disconnected" / "refused", any thread
        # served if asked; a CLI that runs one Counter per term passes one for all of them
        self.metrics = metrics or CounterMetrics(lambda: self.core, self.db_path)
        self.ha_discovery = ha_discovery  # Home Assistant discovery prefix, None: off

    # -- life cycle ----------------------------------------------------------------------
    def start(self, timeout: float | None = 15.0) -> Counter:
        """Open the database and connect; returns once the broker has accepted us. Raises
        ConnectRefused (credentials), ConnectTimeout (nothing within `timeout` s; None:
        keep trying until it answers)."""
        from sesame.common import mqtt

        if self.client_id is None:
            # Not guessable by another account: on Mosquitto any account presenting the
            # counter's id would disconnect it and drop its session, whatever the ACL.
            self.client_id = mqtt.account_client_id(
                f"sesame-counter-{self.venue.id}", self.broker_url, self.credentials
            )
        store = CounterStore(self.db_path, application_name=f"sesame-counter {self.name}")
        try:  # the database remembers its venue (exports need no --venue; another is refused)
            venue_record.remember(store.conn, self.venue, utcnow())
        except venue_record.VenueMismatch as e:
            store.close()
            raise ValueError(f"{display(self.db_path)}: {e}") from None
        if self.term is not None:
            store.fence = (self.venue.id, self.term)
        self.core = self._new_core(store)
        topics = wire.Topics(self.venue.id)
        will = (topics.counter_status(), wire.CounterStatus(online=False).to_json(), 1, True)
        try:
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
                on_state=self._on_state,
            )
        except BaseException:
            store.close()
            self.core = None
            raise
        self._thread = threading.Thread(target=self._run, name="counter-writer", daemon=True)
        self._thread.start()
        return self

    def _new_core(self, store: CounterStore) -> Core:
        """The state rebuilt from the database (at start, after a takeover, after a failed
        batch), stamping the elected term."""
        core = Core(self.venue, store, self.clock)
        core.metrics = self.metrics
        core.desk.term = self.term
        return core

    def stop(self, timeout: float = 10.0, *, stepping_down: bool = False) -> None:
        """Stop; `stepping_down`: another counter is active now, so say nothing more (no
        offline status over the new one's)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.conn is not None:
            if self.core is not None and not stepping_down:
                self._publish([self.core.status(online=False)])
            deadline = time.monotonic() + 3.0
            client = self.conn.client
            while client.want_write() and time.monotonic() < deadline:
                if client.loop(0.05) != 0:
                    break
            self.conn.close(timeout=0)
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
    def _on_state(self, state: str, detail: str) -> None:
        self.connection_events.append((state, detail))
        log.info("broker connection %s: %s", state, detail)
        if self.on_state is not None:
            try:
                self.on_state(state, detail)
            except Exception:  # a bad callback must not stop the network I/O
                log.exception("on_state callback failed")

    def _on_message(self, msg) -> None:
        # Called from inside client.loop() in the writer thread: queue only.
        self.inbox.append((time.monotonic(), msg))

    def _pump(self, timeout: float) -> None:
        """Network I/O, done by the writer thread itself: read what the broker sent
        (`_on_message` queues it), write what is pending, keepalive. One thread instead of
        paho's network thread plus ours: no GIL hand-offs per message (see bench/README)."""
        assert self.conn is not None
        rc = self.conn.client.loop(timeout)
        if rc != 0:
            self._reconnect()

    def _reconnect(self) -> None:
        assert self.conn is not None
        delay = 0.5
        while not self._stop.is_set():
            try:
                if self.conn.client.reconnect() == 0:
                    return
            except OSError as e:
                # each retry: on_state has already said once that the broker went away
                log.debug("broker unreachable: %s", e)
            self._stop.wait(delay)
            delay = min(delay * 2, 30.0)

    def _run(self) -> None:
        core = self.core
        assert core is not None and self.conn is not None
        try:
            self.conn.client.loop_stop()  # from here on this thread does the network I/O
            self._publish(core.startup())
            if self.ha_discovery:
                self._publish_discovery()
            next_tick = next_status = time.monotonic()
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_tick:
                    self._publish(core.tick())
                    next_tick = now + self.tick_s
                if now >= next_status:
                    self._publish([core.status()])
                    next_status = now + self.status_s
                if not self.inbox:
                    self._pump(max(0.0, min(next_tick, next_status, now + 0.05) - now))
                # take everything already waiting on the socket, up to one batch
                while len(self.inbox) < self.batch_max:
                    n = len(self.inbox)
                    self._pump(0.0)
                    if len(self.inbox) == n:
                        break
                if self.inbox:
                    k = min(len(self.inbox), self.batch_max)
                    batch = [self.inbox.popleft() for _ in range(k)]
                    self._handle(batch)
        except BaseException as e:  # the status goes offline; the caller sees .error
            log.exception("counter writer stopped")
            self.error = e

    def _handle(self, batch: list) -> None:
        assert self.core is not None and self.conn is not None
        items = [(m.topic, m.payload, bool(m.retain)) for _, m in batch]
        try:
            outs = self.core.handle(items)
        except Fenced:
            raise  # another counter is active: write nothing more, not even one by one
        except Exception:
            log.exception("batch of %d failed; retrying one message at a time", len(items))
            outs = self._one_by_one(items)
        self._publish(outs)
        for _, m in batch:
            if m.qos > 0:
                self.conn.ack(m)
        self.core.last_lag_ms = round((time.monotonic() - batch[0][0]) * 1000.0, 1)
        self.batches += 1

    def _reload(self) -> None:
        """A failed transaction was rolled back: rebuild the in-memory state to match."""
        assert self.core is not None
        store = self.core.store
        store.rollback()
        stats, lag = self.core.stats, self.core.last_lag_ms
        self.core = self._new_core(store)
        self.core.stats, self.core.last_lag_ms = stats, lag

    def _one_by_one(self, items: list[tuple[str, bytes, bool]]) -> list[Out]:
        """Isolate a message that breaks the core: quarantine it instead of dying on it.
        A database that keeps failing (disk full, I/O error) still stops the counter."""
        self._reload()
        outs: list[Out] = []
        for topic, payload, retain in items:
            try:
                outs += self.core.handle([(topic, payload, retain)])
            except Exception as e:
                if isinstance(e, (*ERRORS, Fenced)):
                    raise
                log.exception("message on %s quarantined after an internal error", topic)
                self._reload()
                outs += self.core.quarantine_one(topic, payload, f"internal error: {e!r}"[:500])
        return outs

    def _publish_discovery(self) -> None:
        """Home Assistant configs (retained), and removals of those the venue file dropped;
        the list is saved after publishing, so a crash in between only repeats the work."""
        from sesame.counter import ha_discovery as ha

        assert self.core is not None
        store = self.core.store
        msgs, wanted = ha.messages(self.venue, store.get_state(ha.STATE_KEY, []),
                                   self.ha_discovery)  # fmt: skip
        self._publish([Out(topic, payload) for topic, payload in msgs])
        store.begin()
        store.set_state(ha.STATE_KEY, wanted)
        store.commit()

    def _publish(self, outs: list[Out]) -> None:
        assert self.conn is not None
        for o in outs:
            self.conn.publish(o.topic, o.payload, qos=1, retain=o.retain)
