"""Static files: the dashboard's own scripts and styles, and the installed chart library."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from sesame.dashboard.errors import ApiError

HERE = Path(__file__).resolve().parents[1]
STATIC = HERE / "static"
# Chart.js, installed at set-up by `npm ci --prefix sesame/dashboard` (never committed).
CHART_JS = HERE / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"
_MEDIA = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}

router = APIRouter(include_in_schema=False)


@router.get("/vendor/chart.js")
def chart_js():
    if not CHART_JS.is_file():
        raise ApiError(404, "NOT_FOUND", "chart.js not installed: run scripts/dev.sh setup")
    return FileResponse(CHART_JS, media_type="text/javascript")


@router.get("/static/{name}")
def static(name: str):
    if not re.fullmatch(r"[a-z0-9_-]+\.(js|css|svg)", name) or not (STATIC / name).is_file():
        raise ApiError(404, "NOT_FOUND", "no such file")
    return FileResponse(STATIC / name, media_type=_MEDIA[name.rsplit(".", 1)[1]])
