"""Every SQLite database of Sesame opens, migrates and writes through here.

- `connect`: a writer's connection: a new file is created mode 0600 before SQLite opens it
  (its -wal and -shm files take the same mode), WAL, `synchronous=FULL` (a committed write,
  hence an acknowledged event or an audit row, survives a power cut, not only `kill -9`),
  a busy timeout, and explicit transactions only (`isolation_level=None`).
- `readonly`: a reader's connection; it never creates the file and refuses every write.
- `migrate`: named migrations, applied in order, each in its own transaction together with
  its row in the one bookkeeping table `_migrations (name, applied_at)`. Never edit a
  migration that has shipped: add a new one. A step is SQL or a function of the connection.
- `transaction`: BEGIN IMMEDIATE ... COMMIT, rolled back if the block raises.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from sesame.common.private_files import PRIVATE
from sesame.common.reasons import Reason
from sesame.common.states import EventKind, VenueMode, ZoneAccess

MODE = PRIVATE  # every database: the counter's events, the lane's outbox, accounts and audit
BOOKKEEPING = "_migrations"
# Older outbox and accounts databases recorded their migrations in `migrations (name)`; the
# names are taken over into `_migrations` once, so nothing is applied twice.
LEGACY_BOOKKEEPING = "migrations"

# The StrEnums bind as their text either way; registered, sqlite3 skips its slow search for
# an adaptation (0.65 us a value, 0.3 us with the adapter: one per event on the ingest path).
for _enum in (EventKind, ZoneAccess, VenueMode, Reason):
    sqlite3.register_adapter(_enum, str)

Step = str | Callable[[sqlite3.Connection], None]
Migration = tuple[str, Step]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _create_private(path: Path) -> None:
    """Create an empty file mode 0600 unless it exists (then its mode is left alone)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, MODE)
    except FileExistsError:
        return
    os.close(fd)


def connect(
    path: str | Path, *, busy_timeout_ms: int = 5000, check_same_thread: bool = False
) -> sqlite3.Connection:
    """The writer's connection, with the project's pragmas."""
    p = Path(path)
    _create_private(p)
    conn = sqlite3.connect(
        str(p), isolation_level=None, check_same_thread=check_same_thread,
        timeout=busy_timeout_ms / 1000,
    )  # fmt: skip
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    return conn


def readonly(
    path: str | Path, *, busy_timeout_ms: int = 5000, check_same_thread: bool = False
) -> sqlite3.Connection:
    """A connection that reads only; FileNotFoundError when there is no such database."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{path}: no such database")
    # as_uri() quotes '?', '#' and spaces, which would otherwise end the file name
    conn = sqlite3.connect(
        p.resolve().as_uri() + "?mode=ro", uri=True, check_same_thread=check_same_thread,
        timeout=busy_timeout_ms / 1000,
    )  # fmt: skip
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed when the block ends, rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def statements(sql: str) -> list[str]:
    """The statements of a migration script (`--` comments dropped; no `;` in literals)."""
    lines = [ln.split("--")[0] for ln in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def schema(conn: sqlite3.Connection) -> sqlite_utils.Database:
    """sqlite-utils' view of the database (tables, columns, counts) for checks and tests;
    it leaves the connection's settings alone (no recursive triggers, no plugins)."""
    return sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)


def applied(conn: sqlite3.Connection) -> set[str]:
    """Names of the migrations recorded in the database (none when it has no bookkeeping)."""
    if not schema(conn)[BOOKKEEPING].exists():
        return set()
    return {r[0] for r in conn.execute(f"SELECT name FROM {BOOKKEEPING}")}


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> list[str]:
    """Apply the migrations not yet recorded; returns the names applied now."""
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {BOOKKEEPING} "
        "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    _take_over_legacy(conn)
    done = applied(conn)
    out = []
    for name, step in migrations:
        if name in done:
            continue
        with transaction(conn):
            # checked again under the write lock: another process may have applied it since
            if conn.execute(f"SELECT 1 FROM {BOOKKEEPING} WHERE name = ?", (name,)).fetchone():
                continue
            if callable(step):
                step(conn)
            else:
                for stmt in statements(step):
                    conn.execute(stmt)
            conn.execute(f"INSERT INTO {BOOKKEEPING} VALUES (?, ?)", (name, _now()))
        out.append(name)
    return out


def _take_over_legacy(conn: sqlite3.Connection) -> None:
    if not schema(conn)[LEGACY_BOOKKEEPING].exists():
        return
    with transaction(conn):
        if not schema(conn)[LEGACY_BOOKKEEPING].exists():
            return  # another process took it over meanwhile
        # applied_at unknown for those: the moment they are taken over, marked as such
        conn.execute(
            f"INSERT OR IGNORE INTO {BOOKKEEPING} (name, applied_at) "
            f"SELECT name, ? FROM {LEGACY_BOOKKEEPING}",
            (f"before {_now()}",),
        )
        conn.execute(f"DROP TABLE {LEGACY_BOOKKEEPING}")
