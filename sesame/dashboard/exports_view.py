"""Organiser exports and the day's occupancy curves, read from the counter's database
through the counter's own export functions (`sesame.counter.exports`)."""

from __future__ import annotations

import io
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from fastapi.responses import Response

from sesame.common import wire
from sesame.common.venue import Venue
from sesame.dashboard.errors import ApiError

if TYPE_CHECKING:
    from sesame.dashboard.dashboard import Dashboard

MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
    "png": "image/png",
}


def check_day(venue: Venue, day: str) -> date:
    try:
        d = date.fromisoformat(day)
    except ValueError:
        raise ApiError(422, "INVALID", f"day: {day!r} is not a date") from None
    if d not in {x.date for x in venue.days}:
        days = ", ".join(x.date.isoformat() for x in venue.days)
        raise ApiError(422, "INVALID", f"day: {day} is not an event day ({days})")
    return d


def _db(dash: Dashboard) -> str:
    """The counter's database: a SQLite file, or the PostgreSQL database counters share."""
    from sesame.counter.queries import available

    p = dash.settings.db_path
    if not available(p):
        raise ApiError(503, "NO_DATABASE", "the counter's database is not available")
    return str(p)


def attendance(dash: Dashboard, day: date | None, fmt: str) -> Response:
    from sesame.counter import exports  # loaded when asked: it brings matplotlib

    db = _db(dash)
    dstr = day.isoformat() if day else None
    name = f"attendance-{dash.venue.id}-{dstr or 'all'}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "png" and dstr is None:
        raise ApiError(422, "INVALID", "day: required for the PNG chart")
    try:
        buf = io.BytesIO()
        if fmt == "png":
            exports.plot_occupancy(db, dash.venue, dstr, buf)
        else:
            report = exports.attendance(db, dash.venue, dstr)
            if fmt == "json":
                return Response(wire.dumps(report), media_type=MEDIA["json"])
            exports.write_attendance(report, fmt, buf)
    except exports.ERRORS as e:
        raise ApiError(503, "NO_DATABASE", f"the counter's database cannot be read: {e}") from None
    return Response(buf.getvalue(), media_type=MEDIA[fmt], headers=headers)


def _minute(ts: Any) -> str:
    t = ts if isinstance(ts, datetime) else datetime.fromisoformat(str(ts))
    return wire.iso(t.replace(second=0, microsecond=0))


def series(dash: Dashboard, day: date | None) -> dict[str, Any]:
    """{"day", "zones": {zone: [[ts, occupancy], ...]}}: at most one point per minute (the
    minute's highest figure, so a peak is never smoothed away), history then live points."""
    zones: dict[str, dict[str, int]] = {z: {} for z in dash.venue.zones}
    history = "none"
    from sesame.counter.queries import available

    if day is not None and available(dash.settings.db_path):
        from sesame.counter import exports  # loaded when asked: it brings matplotlib

        try:
            history_points = exports.occupancy_series(
                str(dash.settings.db_path), dash.venue, day.isoformat()
            )
        except exports.ERRORS:
            history_points = {}  # the live points still show
        for zone, points in history_points.items():
            if zone not in zones:
                continue
            for ts, occ in points:
                k = _minute(ts)
                zones[zone][k] = max(zones[zone].get(k, occ), occ)
        history = "counter"
    with dash.state.lock:
        live = {z: list(pts) for z, pts in dash.state.series.items()}
    for zone, points in live.items():
        for ts, occ in points:
            t = datetime.fromisoformat(ts)
            if day is not None and dash.venue.local(t).date() != day:
                continue  # no event day known yet: show whatever arrived live
            k = _minute(t)
            zones[zone][k] = max(zones[zone].get(k, occ), occ)
    return {
        "day": day.isoformat() if day else None,
        "history": history,
        "zones": {z: sorted(pts.items()) for z, pts in zones.items()},
    }
