"""The counter's database on either engine: SQLite (a file, the default) or PostgreSQL (a
`postgresql://` URL, which several counters share when they stand by for one another).

The SQL of store.py, queries.py and exports.py is written once, in what both engines accept
(`?` placeholders, ON CONFLICT, CAST(sum(..) AS INTEGER), a `rowid` column on events); a
PostgreSQL handle turns the placeholders into psycopg's. Both handles offer the same few
calls (`execute`, `executemany`, `begin`/`commit`/`rollback`), so the store is one class.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg.pq import TransactionStatus

# What a caller catches for "the database failed" whatever the engine.
ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error)

_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(target: str | Path | None) -> bool:
    """True for a PostgreSQL URL; anything else is a SQLite file."""
    return isinstance(target, str) and target.startswith(_SCHEMES)


def display(target: str | Path) -> str:
    """The database as shown in messages: a URL without its password."""
    if not is_postgres(target):
        return str(target)
    try:
        parts = psycopg.conninfo.conninfo_to_dict(str(target))
    except psycopg.ProgrammingError:
        return "postgresql://(unreadable URL)"
    host, port, name = parts.get("host", ""), parts.get("port"), parts.get("dbname", "")
    user = f"{parts['user']}@" if parts.get("user") else ""
    return f"postgresql://{user}{host}{':' + str(port) if port else ''}/{name}"


class Database(Protocol):
    """What the store, the queries and the exports need of a connection."""

    engine: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int: ...
    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...
    @property
    def in_transaction(self) -> bool: ...


class SqliteDatabase:
    engine = "sqlite"

    def __init__(self, conn: sqlite3.Connection):
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.raw.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Rows written (inserted or updated; ignored conflicts do not count)."""
        before = self.raw.total_changes
        self.raw.executemany(sql, rows)
        return self.raw.total_changes - before

    def begin(self) -> None:
        self.raw.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if self.raw.in_transaction:
            self.raw.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def close(self) -> None:
        self.raw.close()


@functools.lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    """`?` placeholders as psycopg's `%s` (a literal % doubled). The project's SQL has no
    `?` inside string literals."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresDatabase:
    engine = "postgresql"

    def __init__(self, conn: psycopg.Connection):
        self.raw = conn  # autocommit: transactions are the explicit BEGIN ... COMMIT

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        return self.raw.execute(_pg_sql(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Rows written; psycopg sends the statements in one pipeline (one round trip)."""
        if not rows:
            return 0
        cur = self.raw.cursor()
        cur.executemany(_pg_sql(sql), rows)
        return max(cur.rowcount, 0)

    def begin(self) -> None:
        self.raw.execute("BEGIN")

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if not self.raw.closed and self.in_transaction:
            self.raw.execute("ROLLBACK")

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


# Keep-alives so that a dead database host is noticed in seconds, not hours.
PG_OPTIONS = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "connect_timeout": 5,
}


def connect_postgres(
    dsn: str, *, readonly: bool = False, application_name: str = "sesame"
) -> PostgresDatabase:
    """A PostgreSQL handle; a read-only one refuses every write at the server."""
    options = "-c default_transaction_read_only=on" if readonly else ""
    conn = psycopg.connect(
        dsn, autocommit=True, application_name=application_name, options=options, **PG_OPTIONS
    )
    return PostgresDatabase(conn)
