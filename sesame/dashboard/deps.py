"""What the routes depend on: the dashboard of the app, and who is asking.

Every /api path checks, in this order: a session (401), the CSRF token on state changes
(403 CSRF), the role (403 FORBIDDEN); the input (422) is checked by the route itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, Response

from sesame.dashboard.dashboard import Dashboard
from sesame.dashboard.errors import ApiError
from sesame.dashboard.pages import Pages
from sesame.dashboard.security import Session, csrf_ok

COOKIE = "sesame_session"
READ = frozenset({"safety", "organiser", "viewer"})
ACT = frozenset({"safety"})
EXPORT = frozenset({"organiser"})


def dashboard_of(request: Request) -> Dashboard:
    return request.app.state.dashboard


def pages_of(request: Request) -> Pages:
    return request.app.state.pages


Dash = Annotated[Dashboard, Depends(dashboard_of)]
Html = Annotated[Pages, Depends(pages_of)]


def session_of(request: Request) -> Session | None:
    dash = dashboard_of(request)
    s = dash.sessions.get(request.cookies.get(COOKIE))
    if s is None:
        return None
    # an account removed or given another role since sign-in loses its session now
    if dash.store.get_user(s.user.username) != s.user:
        dash.sessions.drop(s.sid)
        return None
    return s


def need(roles: frozenset[str], *, change: bool) -> Callable[[Request], Session]:
    def dep(request: Request) -> Session:
        s = session_of(request)
        if s is None:
            raise ApiError(401, "UNAUTHENTICATED", "sign in first")
        if change and not csrf_ok(s, request.headers.get("x-csrf-token")):
            raise ApiError(403, "CSRF", "missing or wrong X-CSRF-Token header")
        if s.user.role not in roles:
            raise ApiError(403, "FORBIDDEN", f"the {s.user.role} role may not do this")
        return s

    return dep


Reader = Annotated[Session, Depends(need(READ, change=False))]
Actor = Annotated[Session, Depends(need(ACT, change=True))]
Exporter = Annotated[Session, Depends(need(EXPORT, change=False))]
AnyoneChange = Annotated[Session, Depends(need(READ, change=True))]
# Documented as the venue's zones by `app.document_zones` (so generated requests reach the
# bodies); an unknown zone is still answered 404 by zone_or_404.
ZoneId = Annotated[str, PathParam()]
Day = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")]


def zone_or_404(dash: Dashboard, zone: str) -> str:
    if zone not in dash.venue.zones:
        raise ApiError(404, "NOT_FOUND", f"no zone {zone!r}")
    return zone


def page_guard(request: Request, pages: Pages, roles: frozenset[str]) -> Session | Response:
    """The session of a page's visitor; else the sign-in redirect or the forbidden page."""
    s = session_of(request)
    if s is None:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    if s.user.role not in roles:
        return pages.render("forbidden.html", request, s)
    return s
