"""The venue a counter database was created for, kept in the database itself.

The counter records its venue when it starts (id, fingerprint, the canonical form and the
TOML text it was loaded from), so an export of that database needs no `--venue`: it gets the
days, zones and categories the events were counted with. A database of one venue is refused
to another venue's counter, and an export with a venue file that differs is refused.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import psycopg

from sesame.common.venue import ConfigError, Venue, parse_venue
from sesame.counter.database import Database, display
from sesame.counter.store import connect

KEY = "venue"


class VenueMismatch(ValueError):
    """The venue given is not the one the database belongs to."""


@dataclass(frozen=True)
class Recorded:
    venue_id: str
    fingerprint: str
    recorded_at: str
    canonical: str
    source: str | None

    def venue(self, where: str) -> Venue:
        """The recorded venue rebuilt; a record that does not parse is named by `where`."""
        try:
            return parse_venue(json.loads(self.canonical), f"{where} (recorded venue)")
        except (ValueError, ConfigError) as e:
            raise VenueMismatch(f"{where}: the recorded venue is unreadable ({e})") from None


def remember(conn: Database, venue: Venue, now: str) -> None:
    """At counter start: record the venue, or refuse a database of another venue. The same
    venue id with other content (capacities, hours edited) replaces the record: the counter
    counts from now on with the new file."""
    old = _read(conn)
    if old is not None and old.venue_id != venue.id:
        raise VenueMismatch(
            f"this database belongs to venue {old.venue_id!r}, not {venue.id!r}"
        )
    if old is not None and old.fingerprint == venue.fingerprint():
        return
    value = {
        "venue_id": venue.id,
        "fingerprint": venue.fingerprint(),
        "recorded_at": now,
        "canonical": venue.canonical_json(),
        "source": venue.source,
    }
    conn.execute(
        "INSERT INTO meta VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
        "value=excluded.value, updated_at=excluded.updated_at",
        (KEY, json.dumps(value, ensure_ascii=False), now),
    )


def recorded(db_path: str | Path) -> Recorded | None:
    """The venue recorded in a counter database (read-only), or None (an older database)."""
    conn = connect(db_path, readonly=True)
    try:
        return _read(conn)
    finally:
        conn.close()


def check(db_path: str | Path, venue: Venue, venue_file: str) -> None:
    """Refuse, in one line, a venue file that differs from the database's venue."""
    rec = recorded(db_path)
    if rec is None or rec.fingerprint == venue.fingerprint():
        return
    what = (
        f"venue {venue.id!r}, the database's is {rec.venue_id!r}"
        if rec.venue_id != venue.id
        else f"not the venue {rec.venue_id!r} as recorded on {rec.recorded_at[:19]}"
    )
    raise VenueMismatch(
        f"{venue_file}: {what} in {display(db_path)}; leave out --venue to use the recorded one"
    )


def _read(conn: Database) -> Recorded | None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key=?", (KEY,)).fetchone()
    except (sqlite3.OperationalError, psycopg.errors.UndefinedTable):
        return None  # no meta table: a database from before the record
    if row is None:
        return None
    try:
        v = json.loads(row[0])
        return Recorded(
            str(v["venue_id"]), str(v["fingerprint"]), str(v["recorded_at"]),
            str(v["canonical"]), v.get("source"),
        )  # fmt: skip
    except (ValueError, KeyError, TypeError):
        raise VenueMismatch("the database's venue record is damaged") from None
