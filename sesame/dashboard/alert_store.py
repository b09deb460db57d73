"""Alerts in the dashboard's own SQLite file, so acknowledgements and open excursions
survive a restart: a restarted dashboard continues the same lines (same ids, same start,
same acknowledgement) instead of raising them again.

One row per alert, upserted whole on every change (a few writes a minute at most).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from sesame.common import sqlite
from sesame.dashboard.alert_book import KEEP_ENDED, Alert

# In the accounts file, beside the accounts' migrations (hence the prefix). IF NOT EXISTS:
# databases from before the bookkeeping already have the table.
_MIGRATIONS: list[sqlite.Migration] = [
    (
        "alerts_0001",
        """
        CREATE TABLE IF NOT EXISTS alerts (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            active INTEGER NOT NULL,
            acknowledged INTEGER NOT NULL,
            data TEXT NOT NULL
        )
        """,
    ),
]


class AlertStore:
    def __init__(self, path: str | Path):
        self._lock = threading.Lock()
        # synchronous=FULL (sesame.common.sqlite): an acknowledgement must not be lost
        self._db = sqlite.connect(path)
        with self._lock:
            sqlite.migrate(self._db, _MIGRATIONS)

    def save(self, alerts: list[dict]) -> None:
        """Upsert alerts as `Alert.to_dict` gives them, in one transaction."""
        if not alerts:
            return
        rows = [
            (a["id"], a["key"], int(a["active"]), int(a["acknowledged"]), json.dumps(a))
            for a in alerts
        ]
        with self._lock, sqlite.transaction(self._db):
            self._db.executemany(
                "INSERT OR REPLACE INTO alerts (id, key, active, acknowledged, data)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    def load(self) -> tuple[list[Alert], int]:
        """What a restarted dashboard shows: every active or unacknowledged alert and the
        latest ended ones; and the next free id (ids never repeat)."""
        with self._lock:
            # bounded both ways: a lane that flapped for days cannot flood a restart
            rows = self._db.execute(
                "SELECT data FROM alerts WHERE id IN ("
                " SELECT id FROM (SELECT id FROM alerts WHERE active = 1 OR acknowledged = 0"
                "  ORDER BY id DESC LIMIT ?)"
                " UNION SELECT id FROM (SELECT id FROM alerts ORDER BY id DESC LIMIT ?))",
                (4 * KEEP_ENDED, 2 * KEEP_ENDED),
            ).fetchall()
            top = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM alerts").fetchone()[0]
        out = []
        for (data,) in rows:
            try:
                out.append(Alert.from_dict(json.loads(data)))
            except (ValueError, TypeError, KeyError):
                continue  # a damaged row is skipped, never fatal
        return out, int(top) + 1

    def close(self) -> None:
        with self._lock:
            self._db.close()
