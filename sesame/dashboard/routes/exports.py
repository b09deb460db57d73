"""The organiser's side: their page and the attendance report in four formats."""

from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from sesame.common.reasons import Reason
from sesame.common.reasons import label as reason_label
from sesame.dashboard import exports_view
from sesame.dashboard.deps import EXPORT, Dash, Day, Exporter, Html, page_guard
from sesame.dashboard.pages import lang_of

router = APIRouter()


@router.get("/organiser", include_in_schema=False)
def organiser_page(request: Request, pages: Html, dash: Dash):
    s = page_guard(request, pages, EXPORT)
    if isinstance(s, Response):
        if isinstance(s, HTMLResponse):
            s.status_code = 403
        return s
    days = json.dumps([d.date.isoformat() for d in dash.venue.days])
    lang = lang_of(request)
    # names for the ids in the counter's report, in the page's language
    names = {
        **{z.id: z.name for z in dash.venue.zones.values()},
        **{
            c.id: c.label_fr if lang == "fr" else c.label_en for c in dash.venue.categories.values()
        },
        **{r.value: reason_label(r, lang) for r in Reason},
    }
    return pages.render("organiser.html", request, s, days=days, names=json.dumps(names))


@router.get(
    "/api/exports/attendance",
    responses={200: {"content": {"text/csv": {}, "image/png": {}}}},
)
def export_attendance(
    s: Exporter,
    dash: Dash,
    day: Day = None,
    format: Literal["csv", "xlsx", "json", "png"] = "json",
):
    d = exports_view.check_day(dash.venue, day) if day else None
    return exports_view.attendance(dash, d, format)
