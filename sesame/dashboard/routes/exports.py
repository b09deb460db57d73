"""The organiser's side: their page and the attendance report in four formats."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from sesame.dashboard import exports_view, organiser_view
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
    values = organiser_view.page_values(
        dash.venue, dash.settings.db_path, dash.now(), lang_of(request)
    )
    return pages.render("organiser.html", request, s, **values)


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
