"""One active counter among several sharing a PostgreSQL database; the others stand by.

The active counter holds a session-level advisory lock on a connection of its own (never
the one that writes events, whose transactions come and go). Taking the lock raises the
venue's term in the database (`sesame_term`), and every lease and ack the counter publishes
carries that term: a lane ignores a lower term than the highest it has seen
(sesame/gate/term.py), so a former active counter that wakes up cannot hand out allowance
twice.

How the role moves:
- The active counter dies (kill -9, power loss): PostgreSQL sees its connection close and
  drops the lock; a standby polling every `poll` seconds takes it and a new term.
- The active counter is paused or cut off while its socket stays open: it no longer beats
  (`beat` in `sesame_term`, every `beat_every` seconds on the lock connection). A standby
  that sees the beat older than `stale_after` ends the holder's sessions, the lock's and
  its writer's (same `application_name`; pg_terminate_backend: same database role, or
  pg_signal_backend) and takes the lock. Ending the writer's session rolls back the batch
  it had open: the store fences every transaction on the term (store.CounterStore.fence), so
  nothing of the former term commits after a takeover.
- The active counter loses its lock connection (network, database restart, terminated by
  a standby): `on_lost` is called at once from the watchdog thread; the counter must stop
  publishing and step down (`sesame counter run` then stands by again, in the same process).

Decisions (`holder_is_stale`) are pure; PostgreSQL is at the edges.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psycopg

log = logging.getLogger("sesame.counter.standby")

POLL = 0.5  # seconds between a standby's attempts
BEAT_EVERY = 1.0  # seconds between the active counter's beats
STALE_AFTER = 5.0  # a beat older than this: the holder is paused or cut off
# Keep-alives on the lock connection so that a dead peer is noticed in seconds, not hours.
_KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 2,
    "keepalives_interval": 1,
    "keepalives_count": 2,
    "connect_timeout": 5,
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sesame_term (
    venue text PRIMARY KEY,
    term bigint NOT NULL,
    holder text NOT NULL,
    since timestamptz NOT NULL,
    beat timestamptz NOT NULL
)
"""


def lock_key(venue: str) -> int:
    """The advisory lock's key for a venue, a stable number below 2**32 (two venues on one
    database do not share an active counter); pg_locks shows it as objid, classid 0."""
    return zlib.crc32(f"sesame-counter\0{venue}".encode())


def holder_is_stale(beat_age: float | None, stale_after: float) -> bool:
    """A holder whose last beat is older than `stale_after` seconds (or who never beat)
    is paused or cut off: a standby may end its session."""
    return beat_age is None or beat_age > stale_after


@dataclass(frozen=True)
class Holder:
    pid: int  # the holder's backend pid
    beat_age: float | None  # seconds since its last beat (None: no beat recorded)
    term: int | None


class Leadership:
    """The active role for `venue` on database `dsn`. `acquire()` blocks until this counter
    is active and returns its term; `on_lost()` is called if the role is lost afterwards."""

    def __init__(
        self,
        dsn: str,
        venue: str,
        name: str,
        *,
        on_lost: Callable[[str], None] = lambda why: None,
        application_name: str | None = None,
        poll: float = POLL,
        beat_every: float = BEAT_EVERY,
        stale_after: float = STALE_AFTER,
    ):
        self.dsn, self.venue, self.name = dsn, venue, name
        self.key = lock_key(venue)
        self.on_lost = on_lost
        self.poll, self.beat_every, self.stale_after = poll, beat_every, stale_after
        self.term: int | None = None
        self.previous: str | None = None  # the holder before this counter took the role
        # shared with this counter's store connection, so that a standby can end both
        self.application_name = application_name or f"sesame-counter {name}"
        self._conn: psycopg.Connection | None = None
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self.lost: str | None = None

    # -- becoming active --

    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(
            self.dsn, autocommit=True, application_name=self.application_name, **_KEEPALIVE
        )
        conn.execute(_SCHEMA)
        # a paused former holder's open batch holds the term row: never wait on it for long
        conn.execute("SET lock_timeout = '5s'")
        return conn

    def try_acquire(self) -> int | None:
        """One attempt: the new term when this counter became active, else None. Ends a
        stale holder's session first, so that the next attempt can succeed."""
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        got = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]
        if not got:
            holder = self.holder()
            if holder is not None and holder_is_stale(holder.beat_age, self.stale_after):
                log.warning("%s: active counter (backend %d) silent for %s s: ending its session",
                            self.name, holder.pid, holder.beat_age)  # fmt: skip
                self._conn.execute(
                    "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a, "
                    "(SELECT application_name FROM pg_stat_activity WHERE pid = %s) h "
                    "WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() "
                    "AND (a.pid = %s OR a.application_name = h.application_name)",
                    (holder.pid, holder.pid),
                )
            return None
        try:
            row = self._conn.execute(
                "WITH old AS (SELECT holder FROM sesame_term WHERE venue = %s) "
                "INSERT INTO sesame_term (venue, term, holder, since, beat) "
                "VALUES (%s, 1, %s, now(), now()) "
                "ON CONFLICT (venue) DO UPDATE SET term = sesame_term.term + 1, "
                "holder = EXCLUDED.holder, since = now(), beat = now() "
                "RETURNING term, (SELECT holder FROM old)",
                (self.venue, self.venue, self.name),
            ).fetchone()
        except psycopg.errors.LockNotAvailable:
            # a former holder's batch still holds the term row: let go, try again later
            self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            return None
        self.term, self.previous = int(row[0]), row[1]
        self._start_watchdog()
        log.info("%s: active counter for %s, term %d", self.name, self.venue, self.term)
        return self.term

    def acquire(self, stop: threading.Event | None = None) -> int | None:
        """Stand by until active; None when `stop` is set first. Database errors while
        standing by are retried (the database may be restarting)."""
        stop = stop or self._stop
        while not stop.is_set():
            try:
                term = self.try_acquire()
                if term is not None:
                    return term
            except psycopg.Error as e:
                log.warning("%s: standing by, database unavailable: %s", self.name, e)
                self._drop_conn()
            stop.wait(self.poll)
        return None

    def holder(self) -> Holder | None:
        """Who holds the lock now, and how long since it beat."""
        assert self._conn is not None
        row = self._conn.execute(
            "SELECT l.pid, EXTRACT(EPOCH FROM now() - t.beat), t.term FROM pg_locks l "
            "LEFT JOIN sesame_term t ON t.venue = %s "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = 0 "
            "AND l.objid::bigint = %s AND l.objsubid = 1 AND l.database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
            (self.venue, self.key),
        ).fetchone()
        if row is None:
            return None
        return Holder(int(row[0]), None if row[1] is None else float(row[1]), row[2])

    # -- staying active --

    def _start_watchdog(self) -> None:
        self._watchdog = threading.Thread(target=self._watch, name="counter-lock", daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        """Beat on the lock connection; any failure means the lock may be gone: report it."""
        while not self._stop.wait(self.beat_every):
            try:
                assert self._conn is not None
                row = self._conn.execute(
                    "UPDATE sesame_term SET beat = now() WHERE venue = %s AND term = %s "
                    "RETURNING term",
                    (self.venue, self.term),
                ).fetchone()
                if row is None:  # another counter took a newer term
                    self._lose("a newer term was taken")
                    return
            except psycopg.errors.LockNotAvailable:
                # this counter's own batch held the term row past lock_timeout: the lock is
                # still ours (the connection answered); beat again next time
                log.warning("%s: beat delayed by a long transaction", self.name)
            except (psycopg.Error, AssertionError) as e:
                self._lose(f"lock connection lost: {e}")
                return

    def _lose(self, why: str) -> None:
        if self._stop.is_set():
            return
        self.lost = why
        log.error("%s: no longer the active counter (%s)", self.name, why)
        self._drop_conn()
        try:
            self.on_lost(why)
        except Exception:
            log.exception("on_lost callback failed")

    def last_beat(self) -> datetime | None:
        assert self._conn is not None
        row = self._conn.execute(
            "SELECT beat FROM sesame_term WHERE venue = %s", (self.venue,)
        ).fetchone()
        return row[0] if row else None

    def _drop_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def release(self) -> None:
        """Step down cleanly (the lock goes with the session)."""
        self._stop.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=5)
        self._drop_conn()
        self.term = None

