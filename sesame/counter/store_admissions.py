"""The counter store's statements for the venue-wide memory of who is inside
(sesame/counter/inside.py): the badge passages republished to entry lanes and the double
admissions found. A part of `CounterStore` (kept in its own module for size); portable SQL,
for SQLite and PostgreSQL alike."""

from __future__ import annotations

from typing import NamedTuple

from sesame.counter.database import Database

_COLUMNS = "e.rowid, e.id, e.gate, e.badge, e.from_zone, e.to_zone, e.ts, e.t, e.day, e.category"
_NEW_ROWS = (
    f"SELECT {_COLUMNS}, r.category FROM events e LEFT JOIN badges r ON r.badge_id = e.badge"
    " WHERE e.rowid > ? AND e.kind = 'passage' AND e.badge IS NOT NULL ORDER BY e.rowid"
)
_DAY_ROWS = (
    f"SELECT {_COLUMNS}, r.category FROM events e LEFT JOIN badges r ON r.badge_id = e.badge"
    " WHERE e.day = ? AND e.kind = 'passage' AND e.badge IS NOT NULL AND e.rowid > ?"
    " ORDER BY e.rowid LIMIT ?"
)


class BadgePassage(NamedTuple):
    """One stored badge passage, with the badge's registered category."""

    rowid: int
    id: str
    gate: str
    badge: str
    from_zone: str
    to_zone: str
    ts: str
    t: float
    day: str
    category: str | None
    registered: str | None  # the badge's category in the registry; None: not registered


class DoubleAdmission(NamedTuple):
    day: str
    badge: str
    zone: str
    first_gate: str
    second_gate: str
    category: str | None
    first_ts: str
    second_ts: str
    found_at: str


class AdmissionQueries:
    conn: Database

    def admissions_head(self, day: str | None) -> int:
        """The event row of the day's last badge passage (0: none)."""
        return self.conn.execute(
            "SELECT coalesce(max(rowid), 0) FROM events WHERE day = ? AND kind = 'passage'"
            " AND badge IS NOT NULL", (day,),
        ).fetchone()[0]  # fmt: skip

    def badge_passages_after(self, rowid: int) -> list[BadgePassage]:
        return [BadgePassage(*r) for r in self.conn.execute(_NEW_ROWS, (rowid,))]

    def badge_passages_of_day(self, day: str, after: int, limit: int) -> list[BadgePassage]:
        return [BadgePassage(*r) for r in self.conn.execute(_DAY_ROWS, (day, after, limit))]

    def has_registry(self) -> bool:
        return self.conn.execute("SELECT EXISTS (SELECT 1 FROM badges)").fetchone()[0] == 1

    def entries_elsewhere(
        self, badge: str, day: str, zone: str, not_gate: str, category: str | None
    ) -> list[tuple[str, float, str]]:
        """(gate, t, ts) of the badge's passages into `zone` that day at other lanes, under
        the same category."""
        return self.conn.execute(
            "SELECT gate, t, ts FROM events WHERE badge = ? AND day = ? AND kind = 'passage'"
            " AND to_zone = ? AND gate != ? AND category = ?",
            (badge, day, zone, not_gate, category),
        ).fetchall()  # fmt: skip

    def exit_times(self, badge: str, day: str, zone: str) -> list[float]:
        """When the badge left `zone` that day."""
        return [t for (t,) in self.conn.execute(
            "SELECT t FROM events WHERE badge = ? AND day = ? AND kind = 'passage'"
            " AND from_zone = ?", (badge, day, zone),
        )]  # fmt: skip

    def record_double_admission(self, d: DoubleAdmission) -> bool:
        """True when it is new (one row per day, badge, zone and pair of lanes)."""
        # RETURNING, not rowcount: a pipelined PostgreSQL statement has no rowcount yet
        return self.conn.execute(
            "INSERT INTO double_admissions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING RETURNING day", tuple(d),
        ).fetchone() is not None  # fmt: skip

    def double_admissions(self, day: str | None) -> list[DoubleAdmission]:
        rows = self.conn.execute(
            "SELECT day, badge, zone, first_gate, second_gate, category, first_ts, second_ts,"
            " found_at FROM double_admissions WHERE day = ? ORDER BY found_at", (day,),
        ).fetchall()  # fmt: skip
        return [DoubleAdmission(*r) for r in rows]
