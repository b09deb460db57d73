"""Read-only queries on the counter's database, for the dashboard and the CLI.

Each function opens a read-only connection (the counter keeps writing meanwhile) and
returns plain dicts. The live figures also travel on MQTT (`zones/+/occupancy`): these
are for pages loaded cold and for history.

- `zone_occupancy(db, venue)`: per zone {zone, name, occupancy, capacity, state, day}
- `gates(db, venue)`: per lane {gate, name, from, to, exit, online, outbox, lease_serial,
  last_event_at, last_status_at, committed: {epoch: seq}, gaps: [[a, b], ...], grants}
- `audit(db, limit=100)`: newest first {id, at, who, action, zone, detail}
- `quarantine(db, limit=100)`: newest first {id, topic, size, reason, received_at, payload}
- `residues(db)`: {day: {zone: people never scanned out}}
- `days_with_events(db)`: the event days that have at least one event stored
"""

from __future__ import annotations

import json
from pathlib import Path

from sesame.common.states import VenueMode, ZoneAccess
from sesame.common.venue import OUTSIDE, Venue
from sesame.counter.database import ERRORS as ERRORS  # re-exported: the dashboard reads
from sesame.counter.database import display as display  # the database through queries only
from sesame.counter.database import is_postgres
from sesame.counter.occupancy import zone_state
from sesame.counter.store import connect


def available(db: str | Path | None) -> bool:
    """Whether there is a database to read: an existing SQLite file, or any PostgreSQL URL
    (whether it answers shows at the first query, as a database error)."""
    if not db:
        return False
    return is_postgres(db) or Path(db).is_file()


def _state(conn, key: str, default=None):
    row = conn.execute("SELECT value FROM days_state WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row else default


def zone_occupancy(db_path: str | Path, venue: Venue) -> list[dict]:
    conn = connect(db_path, readonly=True)
    try:
        day = _state(conn, "current_day")
        occ = dict.fromkeys(venue.zones, 0)
        if day is not None:
            for gate, n in conn.execute(
                "SELECT gate, count(*) FROM events WHERE day = ? AND kind = 'passage' "
                "GROUP BY gate",
                (day,),
            ):
                g = venue.gates.get(gate)
                if g is None:
                    continue
                if g.from_zone != OUTSIDE:
                    occ[g.from_zone] -= n
                if g.to_zone != OUTSIDE:
                    occ[g.to_zone] += n
            for zone, d in conn.execute(
                "SELECT zone, CAST(sum(delta) AS INTEGER) FROM corrections WHERE day = ? "
                "GROUP BY zone", (day,)
            ):
                if zone in occ:
                    occ[zone] += d
        control = dict(conn.execute("SELECT key, state FROM control"))
        evac = control.get("venue") == VenueMode.EVACUATION
        out = []
        for zid, z in venue.zones.items():
            n = max(0, occ[zid])
            closed = control.get(f"zone:{zid}") == ZoneAccess.CLOSED
            out.append(
                {"zone": zid, "name": z.name, "occupancy": n, "capacity": z.capacity,
                 "state": zone_state(n, z, closed=closed, evacuating=evac), "day": day}
            )  # fmt: skip
        return out
    finally:
        conn.close()


def gates(db_path: str | Path, venue: Venue) -> list[dict]:
    conn = connect(db_path, readonly=True)
    try:
        seen = {
            r[0]: r
            for r in conn.execute(
                "SELECT gate, online, outbox, lease_serial, updated_at FROM gates_seen"
            )
        }
        last = dict(conn.execute("SELECT gate, max(received_at) FROM events GROUP BY gate"))
        seqs: dict[str, dict] = {}
        for gate, epoch, committed, above, _max_seq in conn.execute(
            "SELECT gate, epoch, committed, above, max_seq FROM gate_seqs"
        ):
            s = seqs.setdefault(gate, {"committed": {}, "gaps": []})
            s["committed"][epoch] = committed
            prev = committed
            for a, b in json.loads(above):
                if a > prev + 1:
                    s["gaps"].append([epoch, prev + 1, a - 1])
                prev = b
        day = _state(conn, "current_day")
        grants: dict[str, dict] = {}
        for gate, zone, granted in conn.execute(
            "SELECT gate, zone, granted FROM leases WHERE day = ?", (day,)
        ):
            grants.setdefault(gate, {})[zone] = granted
        out = []
        for gid, g in venue.gates.items():
            r = seen.get(gid)
            s = seqs.get(gid, {"committed": {}, "gaps": []})
            out.append(
                {"gate": gid, "name": g.name, "from": g.from_zone, "to": g.to_zone,
                 "exit": g.is_exit, "online": bool(r[1]) if r and r[1] is not None else None,
                 "outbox": r[2] if r else None, "lease_serial": r[3] if r else None,
                 "last_status_at": r[4] if r else None, "last_event_at": last.get(gid),
                 "committed": s["committed"], "gaps": s["gaps"], "grants": grants.get(gid, {})}
            )  # fmt: skip
        return out
    finally:
        conn.close()


def audit(db_path: str | Path, limit: int = 100) -> list[dict]:
    conn = connect(db_path, readonly=True)
    try:
        return [
            {"id": i, "at": at, "who": who, "action": action, "zone": zone,
             "detail": json.loads(detail) if detail else {}}
            for i, at, who, action, zone, detail in conn.execute(
                "SELECT id, at, who, action, zone, detail FROM audit ORDER BY id DESC LIMIT ?",
                (limit,),
            )
        ]  # fmt: skip
    finally:
        conn.close()


def quarantine(db_path: str | Path, limit: int = 100) -> list[dict]:
    conn = connect(db_path, readonly=True)
    try:
        return [
            {"id": i, "topic": topic, "size": size, "reason": reason, "received_at": at,
             "payload": bytes(p[:2000]).decode("utf-8", "replace") if p else ""}
            for i, topic, p, size, reason, at in conn.execute(
                "SELECT id, topic, payload, size, reason, received_at FROM quarantine "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            )
        ]  # fmt: skip
    finally:
        conn.close()


def residues(db_path: str | Path) -> dict[str, dict[str, int]]:
    conn = connect(db_path, readonly=True)
    try:
        out: dict[str, dict[str, int]] = {}
        for day, zone, n in conn.execute("SELECT day, zone, residue FROM day_residues"):
            out.setdefault(day, {})[zone] = n
        return out
    finally:
        conn.close()


def days_with_events(db_path: str | Path) -> set[str]:
    """Days (YYYY-MM-DD) with at least one stored event (the `events_day` index answers)."""
    conn = connect(db_path, readonly=True)
    try:
        return {r[0] for r in conn.execute("SELECT DISTINCT day FROM events")}
    finally:
        conn.close()
