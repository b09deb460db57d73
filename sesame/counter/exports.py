"""Attendance figures from the counter's database, and their CSV / XLSX / JSON / PNG forms.

The dashboard calls these directly; `sesame export attendance` wraps them. Read-only: they
open their own connection and can run while the counter writes.

Definitions (per event day, see sesame/counter/occupancy.py for which day an event counts toward):
- entries: passages from `outside` into the venue (a group badge of N makes N passages);
- unique_visitors: distinct badges that entered, each counting its group size (registry
  first, else the size the gate reported, else 1); anonymous entries are reported apart;
- by_category: unique visitors per badge category; arrivals_by_hour: entries per local hour;
- peak_occupancy.<zone>: highest occupancy through the day with the time it was reached
  (passages and manual corrections in event-time order);
- near_full_at.<zone> / full_at.<zone>: the first time that day the zone reached its
  near-full threshold / its capacity counting those who may walk back in, as the leases
  do (sesame/common/filling.py); null if never;
- schoolchildren: unique visitors of categories marked `schoolchildren`, and departements:
  the same by the département in the badge registry ("unknown" when not registered);
- denials_by_reason: denied scans per reason code; residue: people never scanned out at close;
- over_capacity.<zone>: every zone whose peak went above its capacity, with its capacity and
  offline policy (sesame/common/capacity.py): never a lease zone; an `open` zone can be.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter as Tally
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from sesame.common.capacity import over_capacity
from sesame.common.filling import FillWatch
from sesame.common.venue import OUTSIDE, Venue
from sesame.counter.database import ERRORS as ERRORS  # what a reader catches, either engine
from sesame.counter.store import connect

Progress = Callable[[int, int], None]


def _days(conn, venue: Venue, day: str | None) -> list[str]:
    if day is not None:
        return [day]
    found = {r[0] for r in conn.execute("SELECT DISTINCT day FROM events")}
    return sorted(found | {d.date.isoformat() for d in venue.days})


_NOWHERE = (OUTSIDE, OUTSIDE)  # a gate no longer in the venue file: counted nowhere


class _Day:
    """Everything one pass over a day's passages (in event-time order) yields."""

    def __init__(self, venue: Venue):
        self.occ = dict.fromkeys(venue.zones, 0)
        self.peak: dict[str, tuple[int, float | None]] = {z: (0, None) for z in venue.zones}
        self.series: dict[str, list[tuple[str, int]]] = {z: [] for z in venue.zones}
        self.entries = self.anonymous = 0
        self.hours: Tally[int] = Tally()
        self.visitors: dict[str, list] = {}  # badge -> [category, group size, département]
        self.filled = FillWatch(venue, self.occ)


def _walk(conn, venue: Venue, day: str, registry: dict | None = None,
          minute_series: bool = False) -> _Day:  # fmt: skip
    """One pass over the day: occupancy peaks (passages and corrections in event-time order),
    optionally a per-minute series, and with a registry the entries and visitors."""
    lanes = {g.id: (g.from_zone, g.to_zone) for g in venue.gates.values()}  # venue zones only
    r = _Day(venue)
    occ, peak, series = r.occ, r.peak, r.series
    rose = r.filled.rose
    corrections = conn.execute(
        "SELECT t, zone, delta FROM corrections WHERE day = ? ORDER BY t", (day,)
    ).fetchall()
    ci = 0
    last_minute = None
    tz = venue.tz

    def bump(zone: str, n: int, t: float) -> None:
        if zone not in occ:
            return
        occ[zone] += n
        if n > 0:
            rose(zone, t)
        if occ[zone] > peak[zone][0]:
            peak[zone] = (occ[zone], t)

    def flush(t: float) -> None:
        nonlocal last_minute
        m = int(t // 60)
        if m != last_minute:
            if last_minute is not None:
                stamp = datetime.fromtimestamp(last_minute * 60, tz).isoformat()
                for z in occ:
                    series[z].append((stamp, max(0, occ[z])))
            last_minute = m

    rows = conn.execute(
        "SELECT t, gate, badge, category, hour, group_size FROM events "
        "WHERE day = ? AND kind = 'passage' ORDER BY t, rowid",
        (day,),
    )
    visitors, hours = r.visitors, [0] * 24
    next_corr = corrections[0][0] if corrections else float("inf")
    for t, gate, badge, cat, hour, size in rows:
        if t >= next_corr:
            while ci < len(corrections) and corrections[ci][0] <= t:
                ct, z, d = corrections[ci]
                bump(z, d, ct)
                ci += 1
            next_corr = corrections[ci][0] if ci < len(corrections) else float("inf")
        if minute_series:
            flush(t)
        fr, to = lanes.get(gate, _NOWHERE)
        if fr != OUTSIDE:
            occ[fr] -= 1  # (a decrease never makes a peak)
        elif registry is not None:
            r.entries += 1
            hours[hour] += 1
            if badge is None:
                r.anonymous += 1
            else:
                v = visitors.get(badge)
                reg = registry.get(badge)
                if v is None:
                    # registry first, else what the gate reported, else 1
                    visitors[badge] = [
                        cat or (reg[0] if reg else None),
                        reg[1] if reg and reg[1] else (size or 1),
                        reg[2] if reg else None,
                    ]
                elif not (reg and reg[1]) and size and size > v[1]:
                    v[1] = size
        if to != OUTSIDE:
            n = occ[to] + 1
            occ[to] = n
            rose(to, t)
            if n > peak[to][0]:
                peak[to] = (n, t)
    for ct, z, d in corrections[ci:]:
        bump(z, d, ct)
    r.hours.update({h: n for h, n in enumerate(hours) if n})
    if minute_series and last_minute is not None:
        flush(last_minute * 60 + 60)
    return r


def _peaks(r: _Day, tz) -> dict:
    return {
        z: {"value": v, "at": datetime.fromtimestamp(t, tz).isoformat() if t else None}
        for z, (v, t) in r.peak.items()
    }


def _instants(found: dict[str, float | None], tz) -> dict[str, str | None]:
    return {z: datetime.fromtimestamp(t, tz).isoformat() if t else None for z, t in found.items()}


def _registry(conn) -> dict[str, tuple]:
    return {
        b: (c, g, d)
        for b, c, g, d in conn.execute(
            "SELECT badge_id, category, group_size, department FROM badges"
        )
    }


def _day_report(conn, venue: Venue, day: str, registry: dict) -> tuple[dict, dict]:
    school = {c.id for c in venue.categories.values() if c.schoolchildren}
    r = _walk(conn, venue, day, registry)
    by_category: Tally[str] = Tally()
    departements: Tally[str] = Tally()
    unique = schoolchildren = 0
    for cat, size, dept in r.visitors.values():
        unique += size
        by_category[cat or "unknown"] += size
        if cat in school:
            schoolchildren += size
            departements[dept or "unknown"] += size
    denials = conn.execute(
        "SELECT reason, count(*) FROM events WHERE day = ? AND kind = 'denied' GROUP BY reason",
        (day,),
    ).fetchall()
    residue = conn.execute(
        "SELECT zone, residue FROM day_residues WHERE day = ? ORDER BY zone", (day,)
    ).fetchall()
    peaks = _peaks(r, venue.tz)
    return {
        "unique_visitors": unique,
        "entries": r.entries,
        "anonymous_entries": r.anonymous,
        "by_category": dict(sorted(by_category.items())),
        "arrivals_by_hour": {f"{h:02d}": n for h, n in sorted(r.hours.items())},
        "peak_occupancy": peaks,
        "near_full_at": _instants(r.filled.near_at, venue.tz),
        "full_at": _instants(r.filled.full_at, venue.tz),
        "schoolchildren": schoolchildren,
        "departements": dict(sorted(departements.items())),
        "denials_by_reason": dict(sorted(denials)),
        "residue": dict(residue),
        "over_capacity": over_capacity(venue, {z: p["value"] for z, p in peaks.items()}),
    }, r.visitors


def attendance(
    db_path: str | Path, venue: Venue, day: str | None = None, progress: Progress | None = None
) -> dict:
    """Attendance per event day: {"venue", "days": {"YYYY-MM-DD": {...}}, "totals": {...}}."""
    conn = connect(db_path, readonly=True)
    try:
        days = _days(conn, venue, day)
        registry = _registry(conn)
        report: dict = {"venue": venue.id, "days": {}}
        everyone: dict[str, list] = {}  # badge -> [category, size] over all the days
        for i, d in enumerate(days):
            report["days"][d], visitors = _day_report(conn, venue, d, registry)
            for badge, (cat, size, _dept) in visitors.items():
                v = everyone.setdefault(badge, [cat, size])
                v[1] = max(v[1], size)
            if progress:
                progress(i + 1, len(days))
        school = {c.id for c in venue.categories.values() if c.schoolchildren}
        per_day = report["days"].values()
        report["totals"] = {
            "unique_visitors": sum(s for _, s in everyone.values()),
            "visits": sum(r["unique_visitors"] for r in per_day),
            "entries": sum(r["entries"] for r in per_day),
            "schoolchildren": sum(s for c, s in everyone.values() if c in school),
            "denials": sum(sum(r["denials_by_reason"].values()) for r in per_day),
        }
        return report
    finally:
        conn.close()


def occupancy_series(
    db_path: str | Path, venue: Venue, day: str, zone: str | None = None
) -> dict[str, list[tuple[str, int]]]:
    """Occupancy per zone, one point per minute with events (local ISO time, people)."""
    conn = connect(db_path, readonly=True)
    try:
        series = _walk(conn, venue, day, minute_series=True).series
    finally:
        conn.close()
    return {zone: series.get(zone, [])} if zone is not None else series


def plot_span(venue: Venue, day: str, series: dict) -> tuple[datetime, datetime]:
    """The plot's time axis: the day's opening hours in the venue's zone, widened to any
    point outside them (early entries, late exits) so nothing counted is cut off."""
    d = next((x for x in venue.days if x.date.isoformat() == day), None)
    points = [datetime.fromisoformat(t) for pts in series.values() for t, _ in pts]
    if d is None:  # not an event day (the callers check): midnight to midnight, local
        start = datetime.combine(date.fromisoformat(day), datetime.min.time(), venue.tz)
        end = start + timedelta(days=1)
    else:
        start, end = venue.opening_window(d)
    if points:
        start, end = min(start, min(points)), max(end, max(points))
    return start, end


def plot_occupancy(db_path: str | Path, venue: Venue, day: str, out: Path | BinaryIO) -> None:
    """PNG: each zone's occupancy through the day against its capacity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    series = occupancy_series(db_path, venue, day)
    start, end = plot_span(venue, day, series)
    fig, ax = plt.subplots(figsize=(10, 5), dpi=100)
    try:
        for i, (zid, points) in enumerate(series.items()):
            z = venue.zones[zid]
            colour = f"C{i}"
            if points:
                xs = [datetime.fromisoformat(t) for t, _ in points]
                # a single minute of data is a point, not a line of zero length
                ax.plot(xs, [n for _, n in points], color=colour, label=f"{z.name}",
                        marker="o" if len(points) == 1 else None)  # fmt: skip
            ax.axhline(z.capacity, color=colour, linestyle="--", linewidth=1,
                       label=f"{z.name} capacity ({z.capacity})")  # fmt: skip
        ax.set_title(f"{venue.venue.name}: occupancy on {day}")
        ax.set_ylabel("people inside")
        ax.set_xlim(start, end)  # the opening hours even when nothing was counted
        ax.xaxis.set_major_locator(mdates.HourLocator(tz=venue.tz))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=venue.tz))
        ax.set_xlabel(f"local time ({venue.venue.timezone})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
        fig.tight_layout()
        # what the x axis spans, read back from the axes, for whoever checks the image
        lo, hi = (mdates.num2date(x, tz=venue.tz).isoformat() for x in ax.get_xlim())
        meta = {"Title": f"occupancy {venue.id} {day}", "Sesame-Span": f"{lo}/{hi}"}
        if isinstance(out, str | Path):
            buf = io.BytesIO()
            fig.savefig(buf, format="png", metadata=meta)
            _write_file(Path(out), buf.getvalue())
        else:
            fig.savefig(out, format="png", metadata=meta)
    finally:
        plt.close(fig)


# -- file formats ---------------------------------------------------------------------

_SCALARS = ("unique_visitors", "entries", "anonymous_entries", "schoolchildren")
_INSTANTS = ("near_full_at", "full_at")
_BREAKDOWNS = ("by_category", "arrivals_by_hour", "departements", "denials_by_reason", "residue")


def rows(report: dict) -> list[tuple[str, str, str, object]]:
    """The report in long form: (day, metric, key, value), the CSV and XLSX content."""
    out: list[tuple[str, str, str, object]] = []
    for day, r in report["days"].items():
        for m in _SCALARS:
            out.append((day, m, "", r[m]))
        for zone, p in r["peak_occupancy"].items():
            out.append((day, "peak_occupancy", zone, p["value"]))
            out.append((day, "peak_occupancy_at", zone, p["at"] or ""))
        for m in _INSTANTS:
            for zone, at in r.get(m, {}).items():
                out.append((day, m, zone, at or ""))
        for m in _BREAKDOWNS:
            for k, v in r[m].items():
                out.append((day, m, k, v))
        for zone, o in r.get("over_capacity", {}).items():  # people above the capacity
            out.append((day, "over_capacity", zone, o["peak"] - o["capacity"]))
    for k, v in report.get("totals", {}).items():
        out.append(("total", k, "", v))
    return out


# Text a spreadsheet would run as a formula (or DDE) when it opens the file. Registry
# départements and categories are outside input: they must arrive as the text they are.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?$")


def _risky(v: object) -> bool:
    return isinstance(v, str) and v.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(v)


def _csv_cell(v: object) -> object:
    """CSV has no types: the usual leading apostrophe keeps risky text as text."""
    return "'" + v if _risky(v) else v


def write_attendance(report: dict, fmt: str, out: Path | BinaryIO) -> None:
    """Write the report as csv (long form), xlsx (summary + one sheet per breakdown) or json."""
    if fmt == "json":
        data = json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8")
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["day", "metric", "key", "value"])
        w.writerows([_csv_cell(v) for v in row] for row in rows(report))
        data = buf.getvalue().encode("utf-8")
    elif fmt == "xlsx":
        data = _xlsx(report)
    else:
        raise ValueError(f"unknown format {fmt!r} (csv, xlsx or json)")
    if isinstance(out, str | Path):
        _write_file(Path(out), data)
    else:
        out.write(data)


def _write_file(p: Path, data: bytes) -> None:
    """Never a half-written export: a temporary file beside it, renamed over it once whole;
    the temporary file does not outlive a failure (disk full)."""
    tmp = p.with_name(p.name + ".tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _append(ws, values: list) -> None:
    """Append a row; text that openpyxl would store as a formula (a leading '=') is stored
    as a string cell, and every risky text gets Excel's quote prefix so that editing the
    cell keeps it text."""
    ws.append(values)
    for cell in ws[ws.max_row]:
        if _risky(cell.value):
            cell.data_type = "s"
            cell.quotePrefix = True


def _xlsx(report: dict) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Summary"
    zones = sorted({z for r in report["days"].values() for z in r["peak_occupancy"]})
    head = ["day", *_SCALARS, *(f"peak {z}" for z in zones), *(f"peak {z} at" for z in zones),
            *(f"{z} near full at" for z in zones), *(f"{z} full at" for z in zones)]  # fmt: skip
    _append(ws, head)
    for day, r in report["days"].items():
        _append(ws, [day, *(r[m] for m in _SCALARS),
                     *(r["peak_occupancy"][z]["value"] for z in zones),
                     *(r["peak_occupancy"][z]["at"] or "" for z in zones),
                     *(r.get("near_full_at", {}).get(z) or "" for z in zones),
                     *(r.get("full_at", {}).get(z) or "" for z in zones)])  # fmt: skip
    for m in _BREAKDOWNS:
        sheet = wb.create_sheet(m)
        _append(sheet, ["day", "key", "value"])
        for day, r in report["days"].items():
            for k, v in r[m].items():
                _append(sheet, [day, k, v])
    tot = wb.create_sheet("totals")
    for k, v in report.get("totals", {}).items():
        _append(tot, [k, v])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
