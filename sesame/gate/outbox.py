"""The gate's durable outbox: every passage and denial, in order, until the counter has it.

SQLite in WAL mode with synchronous=FULL: `append()` returns only once the event is on
disk, so a power cut after a grant is shown never loses it. The database is also the
lane's passage memory (re-entry rules, lease spending, today's counts) and keeps the last
retained values the lane received (lease, zone states, revocations...) so that a reboot
while offline still decides correctly.

`epoch` is a random id chosen when the database is created; `seq` counts from 1 without
gaps within an epoch. Events stay until the counter's end-to-end ack covers them, and are
pruned only when acknowledged and a few days old.

An ack beyond the last event written means this database is behind the counter (restored
from a backup or copied from another card): the seqs after it are already taken. The outbox
then starts a new epoch in place, numbering from 1 again (rows keep one increasing local
seq; `seq_base` maps it to the wire), so no new passage is mistaken for a duplicate, and the
counter re-issues the lane's lease for the new epoch.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

from sesame.common import sqlite
from sesame.common.decision import Seen
from sesame.common.states import EventKind
from sesame.common.wire import Event
from sesame.common.wire.admissions import Admissions

KEEP_DAYS = 3  # acknowledged events stay this long for re-entry rules and counts

_SCHEMA_0001 = """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY,        -- gap-free within the epoch
            body BLOB NOT NULL,             -- the exact JSON published
            kind TEXT NOT NULL,             -- passage | denied
            badge TEXT,
            zone_from TEXT NOT NULL,
            zone_to TEXT NOT NULL,
            day TEXT NOT NULL,              -- venue-local date of ts
            t_ms INTEGER NOT NULL           -- ts (corrected), epoch milliseconds
        );
        CREATE INDEX events_badge ON events (badge, day);
        CREATE INDEX events_day ON events (day, zone_to, kind);
        CREATE TABLE state (key TEXT PRIMARY KEY, payload BLOB NOT NULL, updated TEXT NOT NULL);
"""


def _new_outbox(db: sqlite3.Connection) -> None:
    for stmt in sqlite.statements(_SCHEMA_0001):
        db.execute(stmt)
    # A new database is a new epoch: the counter will not confuse its seq numbers with
    # those of a lost or replaced disk.
    db.execute("INSERT INTO meta VALUES ('epoch', ?)", (secrets.token_hex(6),))


MIGRATIONS: list[sqlite.Migration] = [
    ("0001_outbox", _new_outbox),
    (
        # Without statistics SQLite preferred events_day for the per-badge lookups, scanning
        # the whole day (3 ms a scan at 10k events); these cover the re-entry queries exactly.
        "0002_badge_indexes",
        """
        DROP INDEX events_badge;
        CREATE INDEX events_badge_in ON events (badge, day, zone_to, kind, t_ms);
        CREATE INDEX events_badge_out ON events (badge, day, zone_from, kind, t_ms);
        """,
    ),
    (
        # The venue-wide memory: badge passages of every lane as the counter stored them
        # (counter/admissions), so re-entry rules hold across lanes. The lane's place in
        # the counter's numbering is kept in meta (admissions_day, admissions_upto).
        "0003_admissions",
        """
        CREATE TABLE admissions (
            id TEXT PRIMARY KEY,            -- the admitting lane's event id
            gate TEXT NOT NULL,
            badge TEXT NOT NULL,
            zone_from TEXT NOT NULL,
            zone_to TEXT NOT NULL,
            day TEXT NOT NULL,              -- the counter's event day
            t_ms INTEGER NOT NULL
        );
        CREATE INDEX admissions_in ON admissions (badge, day, zone_to, t_ms);
        CREATE INDEX admissions_out ON admissions (badge, day, zone_from, t_ms);
        """,
    ),
]


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


class Outbox:
    """One writer (any thread, serialised by a lock); opened once per agent."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite.connect(self.path, busy_timeout_ms=30_000)
        with self._lock:
            sqlite.migrate(self._db, MIGRATIONS)
        self.epoch = self._meta("epoch")
        self._last = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        self._last = max(self._last, int(self._meta("last_seq") or 0))
        self._acked = int(self._meta("acked") or 0)
        self._base = int(self._meta("seq_base") or 0)  # local seq of the epoch's seq 0
        self._entries: dict[tuple[str, str], int] = {}  # (zone, day) -> passages, see entries()

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- the counter's term (sesame/gate/term.py) -------------------------------------
    @property
    def term(self) -> int:
        """The highest counter term this lane has accepted (0: none yet)."""
        return int(self._meta("term") or 0)

    def accept_term(self, term: int | None) -> bool:
        """Whether a lease/ack of `term` may be acted on; a higher term is kept durably
        before it is acted on, so a reboot still fences the former counter."""
        from sesame.gate.term import admits

        with self._lock:
            highest = self.term
            if not admits(term, highest):
                return False
            if term is not None and term > highest:
                with sqlite.transaction(self._db):
                    self._set_meta("term", str(term))
            return True

    # -- events --------------------------------------------------------------------
    def append(self, build: Callable[[int], Event], day: date) -> Event:
        """Give the next seq to `build(seq)` and commit the event durably before returning."""
        with self._lock:
            seq = self._last + 1
            ev = build(seq - self._base)
            with sqlite.transaction(self._db):
                self._db.execute(
                    "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        seq,
                        ev.to_json(),
                        ev.kind,
                        ev.badge,
                        ev.from_zone,
                        ev.to_zone,
                        day.isoformat(),
                        _ms(ev.ts),
                    ),
                )
                self._set_meta("last_seq", str(seq))
            self._last = seq
            k = (ev.to_zone, day.isoformat())
            if ev.kind == EventKind.PASSAGE and k in self._entries:
                self._entries[k] += 1
            return ev

    @property
    def last_seq(self) -> int:
        return self._last

    @property
    def acked_seq(self) -> int:
        return self._acked

    def depth(self) -> int:
        return self._last - self._acked

    def ack(self, epoch: str, seq: int) -> bool:
        """Apply the counter's ack; True when it moved. Other epochs and stale acks are ignored."""
        if epoch != self.epoch:
            return False
        seq += self._base
        if seq > self._last:
            self._behind_the_counter()
            return True
        with self._lock:
            if seq <= self._acked:
                return False
            with sqlite.transaction(self._db):
                self._set_meta("acked", str(seq))
            self._acked = seq
            return True

    def _behind_the_counter(self) -> None:
        """Everything held is covered; later events go out under a new epoch."""
        with self._lock:
            epoch = secrets.token_hex(6)
            with sqlite.transaction(self._db):
                self._set_meta("epoch", epoch)
                self._set_meta("seq_base", str(self._last))
                self._set_meta("acked", str(self._last))
            self.epoch, self._base, self._acked = epoch, self._last, self._last
            self._entries.clear()  # lease spend is counted within the epoch

    def pending(self, after: int, limit: int = 500) -> list[tuple[int, bytes]]:
        """Unacknowledged events with seq > after, in seq order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, body FROM events WHERE seq > ? AND seq > ? ORDER BY seq LIMIT ?",
                (after, self._acked, limit),
            ).fetchall()
        return [(s, bytes(b)) for s, b in rows]

    def prune(self, today: date) -> int:
        """Drop acknowledged events older than KEEP_DAYS; returns how many."""
        cutoff = (today - timedelta(days=KEEP_DAYS)).isoformat()
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM events WHERE seq <= ? AND day < ?", (self._acked, cutoff)
            )
            self._db.execute("DELETE FROM admissions WHERE day < ?", (cutoff,))
            self._entries.clear()
            return cur.rowcount

    # -- passage memory, lease spending, counts -----------------------------------
    def seen(self, badge: str, zone: str, day: date) -> Seen:
        """What the venue knows of `badge` in `zone` on `day`: this lane's own passages and
        every lane's admissions the counter republished."""
        d = day.isoformat()
        with self._lock:
            last_in, n = self._db.execute(
                "SELECT MAX(t), COUNT(*) FROM ("
                " SELECT t_ms AS t FROM events WHERE badge = ? AND day = ?"
                " AND kind = 'passage' AND zone_to = ?"
                " UNION ALL SELECT t_ms FROM admissions WHERE badge = ? AND day = ?"
                " AND zone_to = ?)",
                (badge, d, zone) * 2,
            ).fetchone()
            (last_out,) = self._db.execute(
                "SELECT MAX(t) FROM ("
                " SELECT t_ms AS t FROM events WHERE badge = ? AND day = ?"
                " AND kind = 'passage' AND zone_from = ?"
                " UNION ALL SELECT t_ms FROM admissions WHERE badge = ? AND day = ?"
                " AND zone_from = ?)",
                (badge, d, zone) * 2,
            ).fetchone()

        def t(ms: int | None) -> datetime | None:
            return None if ms is None else datetime.fromtimestamp(ms / 1000).astimezone()

        return Seen(t(last_in), t(last_out), n)

    # -- the venue's admissions (counter/admissions, gates/<gate>/admissions) ------
    def admissions_cursor(self) -> tuple[str | None, int]:
        """(day, n): this lane holds every admission of `day` the counter numbered up to n."""
        with self._lock:
            return self._meta("admissions_day"), int(self._meta("admissions_upto") or 0)

    def take_admissions(self, msg: Admissions, gate: str) -> bool:
        """Keep the counter's admissions (except this outbox's own passages, already here).
        True when the lane now holds all of the message's day up to `msg.upto`; False when
        some came before it that the lane has not seen (the counter replays them)."""
        own = f"{gate}:{self.epoch}:"
        rows = [
            (a.id, a.gate, a.badge, a.from_zone, a.to_zone, msg.day, _ms(a.ts))
            for a in msg.items
            if not a.id.startswith(own)
        ]
        with self._lock:
            day = self._meta("admissions_day")
            upto = int(self._meta("admissions_upto") or 0)
            if day is None or msg.day > day:  # a new venue day: its numbering starts afresh
                day, upto = msg.day, 0
            with sqlite.transaction(self._db):
                self._db.executemany(
                    "INSERT OR IGNORE INTO admissions VALUES (?, ?, ?, ?, ?, ?, ?)", rows
                )
                if msg.day == day and msg.after <= upto < msg.upto:
                    upto = msg.upto
                self._set_meta("admissions_day", day)
                self._set_meta("admissions_upto", str(upto))
        return msg.day < day or upto >= msg.upto

    def entries(self, zone: str, day: date) -> int:
        """Passages this lane made into `zone` on `day` in the current epoch (what it spent
        of the lease, which is counted per epoch). Counted once from the database, then kept
        up to date by append() (the only writer)."""
        k = (zone, day.isoformat())
        with self._lock:
            if k not in self._entries:
                self._entries[k] = self._db.execute(
                    "SELECT COUNT(*) FROM events"
                    " WHERE day = ? AND zone_to = ? AND kind = 'passage' AND seq > ?",
                    (k[1], zone, self._base),
                ).fetchone()[0]
            return self._entries[k]

    def counts(self, day: date) -> dict[str, int]:
        """Today's figures for the staff display: passages and denials."""
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, COUNT(*) FROM events WHERE day = ? GROUP BY kind", (day.isoformat(),)
            ).fetchall()
        out = {"passage": 0, "denied": 0}
        out.update(dict(rows))
        return out

    # -- last received retained values -------------------------------------------
    def put_state(self, key: str, payload: bytes, now: datetime) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO state VALUES (?, ?, ?)", (key, payload, now.isoformat())
            )

    def states(self) -> dict[str, bytes]:
        with self._lock:
            return {k: bytes(p) for k, p in self._db.execute("SELECT key, payload FROM state")}

    def close(self) -> None:
        with self._lock:
            self._db.close()
