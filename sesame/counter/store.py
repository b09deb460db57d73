"""The counter's SQLite database: schema, named migrations, and the batched writes.

One writer: the counter's core thread owns the connection it opens here; the dashboard,
exports and the CLI open their own read-only connections (WAL lets them read while the
counter writes). Every batch of events is one transaction together with the gate
sequence state it changes, so a `kill -9` leaves either all of a batch or none of it.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from sesame.common import sqlite
from sesame.counter.database import (
    Database,
    PostgresDatabase,
    SqliteDatabase,
    connect_postgres,
    is_postgres,
)
from sesame.counter.migrations_pg import PG_MIGRATIONS
from sesame.counter.store_admissions import AdmissionQueries

# Named migrations (sesame.common.sqlite.migrate, recorded in `_migrations`). Never edit one
# that has shipped: add a new one.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_events",
        """
        CREATE TABLE events (
            id TEXT PRIMARY KEY,
            gate TEXT NOT NULL, epoch TEXT NOT NULL, seq INTEGER NOT NULL,
            ts TEXT NOT NULL,          -- as sent by the gate (ISO 8601 with offset)
            t REAL NOT NULL,           -- ts as Unix seconds, for ordering
            day TEXT NOT NULL,         -- event day the event counts toward (see occupancy.py)
            hour INTEGER NOT NULL,     -- local hour of ts, for arrivals by hour
            kind TEXT NOT NULL, from_zone TEXT NOT NULL, to_zone TEXT NOT NULL,
            badge TEXT, category TEXT, reason TEXT, group_size INTEGER,
            gate_ts TEXT, clock_offset_ms INTEGER,
            received_at TEXT NOT NULL
        );
        CREATE INDEX events_day ON events(day, kind, t);
        CREATE TABLE gate_seqs (
            gate TEXT NOT NULL, epoch TEXT NOT NULL,
            committed INTEGER NOT NULL,  -- every seq up to this one is stored
            above TEXT NOT NULL,         -- JSON ranges [[a, b], ...] stored beyond it
            max_seq INTEGER NOT NULL,
            first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
            PRIMARY KEY (gate, epoch)
        );
        CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            topic TEXT NOT NULL, payload BLOB, size INTEGER NOT NULL,
            reason TEXT NOT NULL, received_at TEXT NOT NULL
        );
        """,
    ),
    (
        "0002_registry_and_control",
        """
        CREATE TABLE badges (
            badge_id TEXT PRIMARY KEY, token TEXT, category TEXT, days TEXT,
            group_size INTEGER NOT NULL DEFAULT 1, organisation TEXT, department TEXT,
            extra TEXT NOT NULL DEFAULT '{}', imported_at TEXT NOT NULL
        );
        CREATE TABLE corrections (
            id TEXT PRIMARY KEY, zone TEXT NOT NULL, delta INTEGER NOT NULL,
            reason TEXT NOT NULL, by TEXT NOT NULL, ts TEXT NOT NULL, t REAL NOT NULL,
            day TEXT NOT NULL, applied_at TEXT NOT NULL
        );
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL, who TEXT, action TEXT NOT NULL, zone TEXT, detail TEXT
        );
        CREATE TABLE control (
            key TEXT PRIMARY KEY,        -- 'zone:<id>' or 'venue'
            state TEXT NOT NULL, by TEXT, ts TEXT, updated_at TEXT NOT NULL
        );
        CREATE TABLE gates_seen (
            gate TEXT PRIMARY KEY, online INTEGER, outbox INTEGER, lease_serial INTEGER,
            status TEXT, last_event_at TEXT, updated_at TEXT NOT NULL
        );
        """,
    ),
    (
        "0003_leases_days_snapshots",
        """
        CREATE TABLE leases (
            gate TEXT NOT NULL, day TEXT NOT NULL, zone TEXT NOT NULL,
            granted INTEGER NOT NULL,    -- cumulative allowance last published
            exposure INTEGER NOT NULL,   -- the most the gate may still act on
            PRIMARY KEY (gate, day, zone)
        );
        CREATE TABLE lease_serials (
            gate TEXT PRIMARY KEY, serial INTEGER NOT NULL, day TEXT NOT NULL
        );
        CREATE TABLE day_residues (
            day TEXT NOT NULL, zone TEXT NOT NULL, residue INTEGER NOT NULL,
            closed_at TEXT NOT NULL, PRIMARY KEY (day, zone)
        );
        CREATE TABLE days_state (
            key TEXT PRIMARY KEY, value TEXT NOT NULL
        );
        CREATE TABLE snapshots (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            event_rowid INTEGER NOT NULL, taken_at TEXT NOT NULL, state TEXT NOT NULL
        );
        """,
    ),
    (
        "0004_events_by_lane_epoch",
        """
        -- a lane's spend within its current outbox epoch, for the epoch-scoped lease
        CREATE INDEX events_lane_epoch ON events(gate, epoch, day, kind);
        """,
    ),
    (
        "0005_meta",
        """
        -- facts about the database itself, e.g. 'venue': the venue it counts (venue_record.py)
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL);
        """,
    ),
    (
        "0007_quarantine_bound",
        """
        -- quarantine is bounded per source (the gate of the topic, else 'other') and day
        -- (UTC date received): beyond QUARANTINE_PER_SOURCE_DAY the oldest row goes
        ALTER TABLE quarantine ADD COLUMN source TEXT;
        ALTER TABLE quarantine ADD COLUMN day TEXT;
        CREATE INDEX quarantine_source_day ON quarantine(source, day, id);
        CREATE TABLE quarantine_dropped (
            source TEXT NOT NULL, day TEXT NOT NULL, dropped INTEGER NOT NULL,
            PRIMARY KEY (source, day)
        );
        """,
    ),
    (
        "0008_double_admissions",
        """
        -- a badge's passages that day, for the double-admission check (inside.py)
        CREATE INDEX events_badge_day ON events(badge, day) WHERE badge IS NOT NULL;
        -- two lanes admitted the same badge into a zone while it was inside
        CREATE TABLE double_admissions (
            day TEXT NOT NULL, badge TEXT NOT NULL, zone TEXT NOT NULL,
            first_gate TEXT NOT NULL, second_gate TEXT NOT NULL, category TEXT,
            first_ts TEXT NOT NULL, second_ts TEXT NOT NULL, found_at TEXT NOT NULL,
            PRIMARY KEY (day, badge, zone, first_gate, second_gate)
        );
        """,
    ),
    (
        "0009_holds_decisions",
        """
        -- passages held as physically implausible (sesame/counter/plausibility.py); the
        -- event itself is in `events`, of kind 'held' until an officer accepts it
        CREATE TABLE held_passages (
            event_id TEXT PRIMARY KEY,
            gate TEXT NOT NULL, day TEXT NOT NULL, t REAL NOT NULL, epoch TEXT NOT NULL,
            state TEXT NOT NULL,       -- held | accepted | rejected
            held_at TEXT NOT NULL, decision TEXT, decided_at TEXT
        );
        CREATE INDEX held_by_lane ON held_passages(gate, state);
        -- a safety officer's decisions (control/decisions), each applied once by id
        CREATE TABLE decisions (
            id TEXT PRIMARY KEY, action TEXT NOT NULL, gate TEXT NOT NULL, by TEXT NOT NULL,
            ts TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL,
            applied_at TEXT NOT NULL
        );
        """,
    ),
]

QUARANTINE_PER_SOURCE_DAY = 1000  # rows kept per gate (or 'other') and day
QUARANTINE_PAYLOAD_KEPT = 4096  # bytes of each refused payload kept (size keeps the length)


def quarantine_source(topic: str) -> str:
    """The gate a quarantined message came from (its topic's), else 'other'."""
    parts = topic.split("/", 5)
    if len(parts) >= 5 and parts[3] == "gates" and parts[4]:
        return parts[4][:64]
    return "other"


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def connect(target: str | Path, *, readonly: bool = False,
            application_name: str = "sesame") -> Database:  # fmt: skip
    """A handle on the counter's database: a SQLite file with the project's pragmas
    (sesame.common.sqlite; a read-only one never creates the file), or a PostgreSQL URL."""
    if is_postgres(target):
        return connect_postgres(str(target), readonly=readonly,
                                application_name=application_name)  # fmt: skip
    return SqliteDatabase(sqlite.readonly(target) if readonly else sqlite.connect(target))


def migrate(db: Database | sqlite3.Connection) -> list[str]:
    """Apply the migrations not yet recorded; returns the names applied."""
    if isinstance(db, PostgresDatabase):
        return _migrate_pg(db)
    return sqlite.migrate(db.raw if isinstance(db, SqliteDatabase) else db, MIGRATIONS)


# Counters starting together on one PostgreSQL database migrate one at a time.
_MIGRATE_LOCK = zlib.crc32(b"sesame-counter-migrate")


def _migrate_pg(db: PostgresDatabase) -> list[str]:
    """The pending PostgreSQL migrations, all in one transaction (DDL is transactional
    there), under a lock so that two counters starting together do not both apply them."""
    applied = []
    db.begin()
    try:
        db.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATE_LOCK,))
        db.execute("CREATE TABLE IF NOT EXISTS _migrations "
                   "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")  # fmt: skip
        done = {r[0] for r in db.execute("SELECT name FROM _migrations")}
        for name, sql in PG_MIGRATIONS:
            if name in done:
                continue
            for stmt in sqlite.statements(sql):
                db.execute(stmt)
            db.execute("INSERT INTO _migrations VALUES (?, ?)", (name, utcnow()))
            applied.append(name)
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return applied


class Fenced(RuntimeError):
    """Another counter holds a newer term: this one must write nothing more."""


class EventRow(NamedTuple):
    """One row of `events`, in column order: the insert names its columns from these
    fields, so a row cannot be read against the wrong column."""

    id: str
    gate: str
    epoch: str
    seq: int
    ts: str  # as sent by the gate
    t: float  # ts as Unix seconds
    day: str  # the event day it counts toward
    hour: int  # local hour of ts
    kind: str
    from_zone: str
    to_zone: str
    badge: str | None
    category: str | None
    reason: str | None
    group_size: int | None
    gate_ts: str | None
    clock_offset_ms: int | None
    received_at: str


EVENT_COLUMNS = ", ".join(EventRow._fields)
_INSERT_EVENT = (
    f"INSERT INTO events ({EVENT_COLUMNS}) "
    f"VALUES ({', '.join('?' * len(EventRow._fields))}) ON CONFLICT DO NOTHING"
)


class CounterStore(AdmissionQueries):
    """The writer's handle on the database, and every statement the counter runs on it (those
    of who is inside in sesame/counter/store_admissions.py). Not thread-safe: one thread
    writes."""

    def __init__(self, target: str | Path, *, application_name: str = "sesame-counter"):
        self.target = target if is_postgres(target) else Path(target)
        self.path = self.target  # the SQLite file (the name callers knew); or the URL
        self.conn: Database = connect(self.target, application_name=application_name)
        self.engine = self.conn.engine
        # (venue, term) once this counter is the active one among several (standby.py):
        # every transaction first checks the term is still ours and holds it till commit.
        self.fence: tuple[str, int] | None = None
        migrate(self.conn)

    def close(self) -> None:
        self.conn.close()

    # -- transactions ----------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        self.begin()
        try:
            yield
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def begin(self) -> None:
        self.conn.begin()
        if self.fence is not None:
            # FOR SHARE: a standby taking over (which raises the term) waits for this
            # transaction, so nothing of a former term commits after the takeover.
            venue, term = self.fence
            row = self.conn.execute(
                "SELECT term FROM sesame_term WHERE venue = ? FOR SHARE", (venue,)
            ).fetchone()
            if row is None or int(row[0]) != term:
                self.conn.rollback()
                raise Fenced(f"term {term} of venue {venue} is over (now {row and row[0]})")

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    # -- writes (inside a transaction) --------------------------------------------------
    # The hot path stays one hand-written executemany: sqlite-utils' insert_all took 2.7 times
    # as long per row (median of 28 runs, bench/bench_counter_core.py, bench/README.md).
    def insert_events(self, rows: Sequence[EventRow]) -> None:
        """The hot path: one executemany (pipelined on PostgreSQL); events already stored
        (same id) are skipped, so a batch redelivered after a takeover counts once."""
        self.conn.executemany(_INSERT_EVENT, rows)

    def quarantine(self, rows: Sequence[tuple[str, bytes, str, str]]) -> None:
        """rows: (topic, payload, reason, received_at). Bounded: the first
        QUARANTINE_PAYLOAD_KEPT bytes of each payload, QUARANTINE_PER_SOURCE_DAY rows per
        gate and day (the oldest dropped, counted in quarantine_dropped), so one faulty or
        hostile lane cannot fill the disk."""
        conn = self.conn
        for t, p, r, at in rows:
            source, day = quarantine_source(t), at[:10]
            (n,) = conn.execute(
                "SELECT count(*) FROM quarantine WHERE source = ? AND day = ?", (source, day)
            ).fetchone()
            if n >= QUARANTINE_PER_SOURCE_DAY:
                conn.execute(
                    "DELETE FROM quarantine WHERE id IN (SELECT id FROM quarantine "
                    "WHERE source = ? AND day = ? ORDER BY id LIMIT ?)",
                    (source, day, n - QUARANTINE_PER_SOURCE_DAY + 1),
                )
                conn.execute(
                    "INSERT INTO quarantine_dropped VALUES (?, ?, 1) ON CONFLICT(source, day) "
                    "DO UPDATE SET dropped = quarantine_dropped.dropped + 1",
                    (source, day),
                )
            conn.execute(
                "INSERT INTO quarantine (topic, payload, size, reason, received_at, source, day) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (t, p[:QUARANTINE_PAYLOAD_KEPT], len(p), r, at, source, day),
            )

    def quarantine_dropped(self) -> dict[tuple[str, str], int]:
        """(source, day) -> quarantined rows dropped beyond the bound."""
        rows = self.conn.execute("SELECT source, day, dropped FROM quarantine_dropped")
        return {(src, day): n for src, day, n in rows}

    def save_seq(self, gate: str, epoch: str, committed: int, above: list, max_seq: int) -> None:
        now = utcnow()
        self.conn.execute(
            "INSERT INTO gate_seqs VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (gate, epoch) DO "
            "UPDATE SET committed=excluded.committed, above=excluded.above, "
            "max_seq=excluded.max_seq, last_seen=excluded.last_seen",
            (gate, epoch, committed, json.dumps(above), max_seq, now, now),
        )

    def save_correction(self, c: Any, t: float, day: str) -> bool:
        """Store a correction once by id; False when it was already applied."""
        # RETURNING, not rowcount: a pipelined PostgreSQL statement has no rowcount yet
        row = self.conn.execute(
            "INSERT INTO corrections VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING "
            "RETURNING id",
            (c.id, c.zone, c.delta, c.reason, c.by, c.ts.isoformat(), t, day, utcnow()),
        ).fetchone()
        return row is not None

    def audit(self, action: str, *, who: str | None, zone: str | None, detail: dict) -> None:
        self.conn.execute(
            "INSERT INTO audit (at, who, action, zone, detail) VALUES (?, ?, ?, ?, ?)",
            (utcnow(), who, action, zone, json.dumps(detail, ensure_ascii=False)),
        )

    def set_control(self, key: str, state: str, by: str | None, ts: str | None) -> None:
        self.conn.execute(
            "INSERT INTO control VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
            "state=excluded.state, by=excluded.by, ts=excluded.ts, updated_at=excluded.updated_at",
            (key, state, by, ts, utcnow()),
        )

    def set_gate_seen(self, gate: str, **fields: Any) -> None:
        fields["updated_at"] = utcnow()
        cols = ", ".join(fields)
        sets = ", ".join(f"{k}=excluded.{k}" for k in fields)
        self.conn.execute(
            f"INSERT INTO gates_seen (gate, {cols}) VALUES (?, {', '.join('?' * len(fields))}) "
            f"ON CONFLICT (gate) DO UPDATE SET {sets}",
            (gate, *fields.values()),
        )

    def save_lease(self, gate: str, day: str, serial: int, grants: dict, exposure: dict) -> None:
        self.conn.execute(
            "INSERT INTO lease_serials VALUES (?, ?, ?) ON CONFLICT (gate) DO UPDATE SET "
            "serial=excluded.serial, day=excluded.day",
            (gate, serial, day),
        )
        self.conn.executemany(
            "INSERT INTO leases VALUES (?, ?, ?, ?, ?) ON CONFLICT (gate, day, zone) DO UPDATE "
            "SET granted=excluded.granted, exposure=excluded.exposure",
            [(gate, day, z, grants[z], exposure.get(z, grants[z])) for z in grants],
        )

    def save_residues(self, day: str, residues: dict[str, int]) -> None:
        self.conn.executemany(
            "INSERT INTO day_residues VALUES (?, ?, ?, ?) ON CONFLICT (day, zone) DO UPDATE "
            "SET residue=excluded.residue",
            [(day, z, n, utcnow()) for z, n in residues.items()],
        )

    def upsert_badges(self, rows: Sequence[dict]) -> None:
        """Registry rows (every row with the same keys, badge_id first), replaced by id."""
        if not rows:
            return
        cols = list(rows[0])
        self.conn.executemany(
            f"INSERT INTO badges ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
            "ON CONFLICT (badge_id) DO UPDATE SET "
            + ", ".join(f"{c}=excluded.{c}" for c in cols[1:]),
            [tuple(r[c] for c in cols) for r in rows],
        )

    def set_state(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO days_state VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
            "SET value=excluded.value",
            (key, json.dumps(value)),
        )

    def snapshot(self, event_rowid: int, state: dict) -> None:
        self.conn.execute(
            "INSERT INTO snapshots (event_rowid, taken_at, state) VALUES (?, ?, ?)",
            (event_rowid, utcnow(), json.dumps(state)),
        )
        # Keep the last few only; the newest is all a restart needs.
        self.conn.execute(
            "DELETE FROM snapshots WHERE id NOT IN "
            "(SELECT id FROM snapshots ORDER BY id DESC LIMIT 3)"
        )

    # -- reads ---------------------------------------------------------------------------
    def get_state(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM days_state WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def last_event_rowid(self) -> int:
        return self.conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0]

    def latest_snapshot(self) -> tuple[int, dict] | None:
        row = self.conn.execute(
            "SELECT event_rowid, state FROM snapshots ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def passages_since(self, rowid: int) -> Iterator[tuple[str, str, int]]:
        """(day, gate, passages) for the events stored after `rowid`."""
        yield from self.conn.execute(
            "SELECT day, gate, count(*) FROM events WHERE rowid > ? AND kind = 'passage' "
            "GROUP BY day, gate",
            (rowid,),
        )

    def lane_epoch_passages(self, gate: str, epoch: str, day: str) -> int:
        """Passages one lane stored in one outbox epoch on one day."""
        return self.conn.execute(
            "SELECT count(*) FROM events WHERE gate = ? AND epoch = ? AND day = ? "
            "AND kind = 'passage'",
            (gate, epoch, day),
        ).fetchone()[0]

    def correction_totals(self) -> Iterator[tuple[str, str, int]]:
        """(day, zone, sum of deltas) of every correction applied."""
        yield from self.conn.execute(
            "SELECT day, zone, CAST(sum(delta) AS INTEGER) FROM corrections GROUP BY day, zone"
        )

    def seq_states(self) -> Iterator[tuple[str, str, int, list, int]]:
        """(gate, epoch, committed, above ranges, max_seq) of every lane epoch heard."""
        for gate, epoch, committed, above, max_seq in self.conn.execute(
            "SELECT gate, epoch, committed, above, max_seq FROM gate_seqs"
        ):
            yield gate, epoch, committed, json.loads(above), max_seq

    def controls(self) -> dict[str, str]:
        """Control key ('venue', 'zone:<id>') -> state."""
        return dict(self.conn.execute("SELECT key, state FROM control"))

    def lease_serials(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT gate, serial FROM lease_serials"))

    def leases_of(self, day: str) -> Iterator[tuple[str, str, int, int]]:
        """(gate, zone, granted, exposure) of the leases stored for `day`."""
        yield from self.conn.execute(
            "SELECT gate, zone, granted, exposure FROM leases WHERE day = ?", (day,)
        )

    # -- held passages and officers' decisions (holds.py, epochs.py) -----------------------
    def lane_window(self, gate: str, day: str) -> Iterator[tuple[float, str, str, str | None]]:
        """(t, event id, epoch, hold state or None) of a lane's passages on a day, held or
        counted, for its plausibility windows."""
        yield from self.conn.execute(
            "SELECT e.t, e.id, e.epoch, h.state FROM events e "
            "LEFT JOIN held_passages h ON h.event_id = e.id "
            "WHERE e.gate = ? AND e.day = ? AND e.kind IN ('passage', 'held')",
            (gate, day),
        )

    def hold(self, rows: Sequence[tuple[str, str, str, float, str]]) -> None:
        """rows: (event id, gate, day, t, epoch) of events now held: stored events of kind
        'passage' (counted before a burst showed) become 'held'."""
        now = utcnow()
        self.conn.executemany(
            "UPDATE events SET kind = 'held' WHERE id = ? AND kind = 'passage'",
            [(r[0],) for r in rows],
        )
        self.conn.executemany(
            "INSERT INTO held_passages (event_id, gate, day, t, epoch, state, held_at) "
            "VALUES (?, ?, ?, ?, ?, 'held', ?) ON CONFLICT DO NOTHING",
            [(*r, now) for r in rows],
        )

    def held_counts(self) -> dict[str, int]:
        """gate -> passages held and not decided yet."""
        return dict(self.conn.execute(
            "SELECT gate, count(*) FROM held_passages WHERE state = 'held' GROUP BY gate"
        ))  # fmt: skip

    def held_of(self, gate: str, limit: int | None) -> list[tuple[str, str, float, str]]:
        """(event id, day, t, epoch) of a lane's undecided held passages, oldest hold first."""
        # rowid: insertion order (an identity column of that name on PostgreSQL)
        sql = ("SELECT event_id, day, t, epoch FROM held_passages WHERE gate = ? "
               "AND state = 'held' ORDER BY rowid")  # fmt: skip
        if limit is None:
            return self.conn.execute(sql, (gate,)).fetchall()
        return self.conn.execute(sql + " LIMIT ?", (gate, limit)).fetchall()

    def decide_held(self, ids: Sequence[str], state: str, decision: str) -> None:
        """Mark held passages accepted (their events count as passages again) or rejected."""
        now = utcnow()
        self.conn.executemany(
            "UPDATE held_passages SET state = ?, decision = ?, decided_at = ? "
            "WHERE event_id = ? AND state = 'held'",
            [(state, decision, now, i) for i in ids],
        )
        if state == "accepted":
            self.conn.executemany(
                "UPDATE events SET kind = 'passage' WHERE id = ? AND kind = 'held'",
                [(i,) for i in ids],
            )

    def record_decision(self, d: Any) -> bool:
        """Record an officer's decision once by id; False when it was already applied."""
        # RETURNING, not rowcount: a pipelined PostgreSQL statement has no rowcount yet
        row = self.conn.execute(
            "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, '', '{}', ?) ON CONFLICT DO NOTHING "
            "RETURNING id",
            (d.id, d.action, d.gate, d.by, d.ts.isoformat(), utcnow()),
        ).fetchone()
        return row is not None

    def decision_outcome(self, decision_id: str, outcome: str, detail: dict) -> None:
        self.conn.execute(
            "UPDATE decisions SET outcome = ?, detail = ? WHERE id = ?",
            (outcome, json.dumps(detail, ensure_ascii=False), decision_id),
        )
