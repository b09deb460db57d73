"""What the organiser page needs besides the report: which day it opens on, each day's
opening hours in the venue's time zone (the span of its charts), and display names.

Pure functions of the venue, the dashboard's clock and the days that have data; the page
(`static/organiser.js`) reads them from `data-*` attributes. A new per-day or per-zone figure
goes into `page_values()` as one more key.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sesame.common.reasons import Reason
from sesame.common.reasons import label as reason_label
from sesame.common.venue import Venue
from sesame.counter.queries import days_with_events


def default_day(venue: Venue, now: datetime, with_data: set[str]) -> str | None:
    """During the event, today; otherwise the latest event day that has data; else the
    first event day (nothing counted yet)."""
    days = [d.date.isoformat() for d in venue.days]
    if not days:
        return None
    today = venue.local(now).date().isoformat()
    if today in days:
        return today
    counted = [d for d in days if d in with_data]
    return counted[-1] if counted else days[0]


def opening_hours(venue: Venue) -> dict[str, dict[str, Any]]:
    """Per day: opening and closing as local ISO times, and the local hours they span
    ("09" ... "17"), so an empty day's charts still cover its opening hours."""
    out = {}
    for d in venue.days:
        opens, closes = venue.opening_window(d)
        last = closes.hour - (1 if closes.minute == 0 and closes.second == 0 else 0)
        out[d.date.isoformat()] = {
            "opens": opens.isoformat(),
            "closes": closes.isoformat(),
            "label": f"{d.opens.strftime('%H:%M')}–{d.closes.strftime('%H:%M')}",
            "hours": [f"{h:02d}" for h in range(opens.hour, max(last, opens.hour) + 1)],
        }
    return out


def days_with_data(db_path: str | Path | None) -> set[str]:
    """Event days with stored events; none when there is no readable database."""
    from sesame.counter.queries import ERRORS, available

    if not available(db_path):
        return set()
    try:
        return days_with_events(db_path)
    except ERRORS:
        return set()


def names(venue: Venue, lang: str) -> dict[str, str]:
    """Display names for the ids in the counter's report, in the page's language."""
    return {
        **{z.id: z.name for z in venue.zones.values()},
        **{c.id: c.label_fr if lang == "fr" else c.label_en for c in venue.categories.values()},
        **{r.value: reason_label(r, lang) for r in Reason},
    }


def page_values(venue: Venue, db_path: str | Path | None, now: datetime, lang: str) -> dict:
    """The organiser template's values (JSON strings for its data-* attributes)."""
    day = default_day(venue, now, days_with_data(db_path))
    return {
        "days": json.dumps([d.date.isoformat() for d in venue.days]),
        "default_day": day or "",
        "hours": json.dumps(opening_hours(venue)),
        "names": json.dumps(names(venue, lang)),
    }
