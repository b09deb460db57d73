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
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
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

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.raw.executemany(sql, rows)

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
    """A transaction runs in psycopg's pipeline mode: its statements go out without waiting
    for each answer, and only a read (fetchone) or the COMMIT waits. A batch of events is
    then two or three round trips to the server, not one per statement (on a loaded machine
    each round trip costs milliseconds: bench/README.md)."""

    engine = "postgresql"

    def __init__(self, conn: psycopg.Connection):
        self.raw = conn  # autocommit: transactions are the explicit BEGIN ... COMMIT
        self._pipeline: psycopg.Pipeline | None = None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        return self.raw.execute(_pg_sql(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.raw.cursor().executemany(_pg_sql(sql), rows)

    def begin(self) -> None:
        self._pipeline = self.raw.pipeline()
        self._pipeline.__enter__()
        self.raw.execute("BEGIN")

    def commit(self) -> None:
        """Send COMMIT and wait for every answer; any statement's error is raised here (the
        transaction is then rolled back by `rollback`)."""
        self.raw.execute("COMMIT")
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            pipeline.__exit__(None, None, None)

    def rollback(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None and not self.raw.closed:
            try:  # answers still due; the error among them is the caller's already
                pipeline.__exit__(None, None, None)
            except psycopg.Error:
                pass
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
