"""The HTML pages: templates read once, filled with escaped values and the UI strings."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse

from sesame.common.venue import Venue
from sesame.dashboard.i18n import pick_lang, strings
from sesame.dashboard.security import Session

TEMPLATES = Path(__file__).parent / "templates"
_FIELD = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


def lang_of(request: Request) -> str:
    return pick_lang(request.cookies.get("lang"), request.headers.get("accept-language"))


class Pages:
    """Every template of `folder`, read when the app is built (not on each request)."""

    def __init__(self, venue: Venue, folder: Path = TEMPLATES):
        self.venue = venue
        self.templates = {p.name: p.read_text(encoding="utf-8") for p in folder.glob("*.html")}

    def render(
        self, name: str, request: Request, session: Session | None, **extra: str
    ) -> HTMLResponse:
        lang = lang_of(request)
        t = strings(lang)
        values = {f"t.{k}": v for k, v in t.items()}
        values.update(
            lang=lang,
            venue=self.venue.venue.name,
            user=session.user.username if session else "",
            role=session.user.role if session else "",
            csrf=session.csrf if session else "",
            tz=self.venue.venue.timezone,
            i18n=json.dumps(t),
            **extra,
        )
        body = _FIELD.sub(lambda m: html.escape(values.get(m.group(1), "")), self.templates[name])
        return HTMLResponse(body)
