"""Signing in and out: the sign-in page, the session cookie, who am I."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.datastructures import Headers

from sesame.dashboard.deps import COOKIE, AnyoneChange, Dash, Html, Reader
from sesame.dashboard.errors import ApiError
from sesame.dashboard.http import LoginBody, body_doc, parse_body
from sesame.dashboard.pages import lang_of

router = APIRouter()


@router.get("/login", include_in_schema=False)
def login_page(request: Request, pages: Html):
    return pages.render("login.html", request, None)


@router.post("/login", openapi_extra=body_doc(LoginBody), responses={429: {}})
async def login(request: Request, dash: Dash):
    refusal = cross_site(request.headers)
    if refusal:  # login CSRF: another page must not sign this browser in to its account
        raise ApiError(403, "CSRF", f"sign-in refused: {refusal}")
    body = await parse_body(request, LoginBody)
    # The TCP peer, or the client a trusted proxy names (`sesame dashboard --trusted-proxy`)
    ip = request.client.host if request.client else "?"
    wait = dash.signin.retry_after(ip, body.username)
    if wait:
        raise ApiError(
            429,
            "RATE_LIMITED",
            f"too many failed sign-ins from this address; retry in {wait} s",
            {"Retry-After": str(wait)},
        )
    user = await asyncio.to_thread(dash.store.authenticate, body.username, body.password)
    if user is None:
        dash.signin.failed(ip, body.username)
        raise ApiError(401, "BAD_CREDENTIALS", "wrong username or password")
    dash.signin.succeeded(ip, body.username)
    s = dash.sessions.create(user)
    form = request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    if form:
        resp: Response = RedirectResponse("/", status_code=303)
    else:
        resp = JSONResponse({"user": user.username, "role": user.role, "csrf": s.csrf})
    resp.set_cookie(
        COOKIE,
        s.sid,
        httponly=True,
        samesite="strict",
        secure=dash.settings.cookie_secure,
        path="/",
    )
    return resp


@router.post("/logout")
def logout(request: Request, s: AnyoneChange, dash: Dash):
    dash.sessions.drop(s.sid)
    resp = JSONResponse({"ok": True})
    resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return resp


@router.get("/api/me")
def me(request: Request, s: Reader):
    return {
        "user": s.user.username,
        "role": s.user.role,
        "csrf": s.csrf,
        "lang": lang_of(request),
    }


def cross_site(headers: Headers) -> str | None:
    """Why a sign-in does not come from the dashboard's own pages, or None.

    A browser sends `Origin` on every POST; `null` (a sandboxed frame, a file, a data: URL,
    a redirect from elsewhere) and any other site's origin are refused. A client without
    `Origin` is not a browser page and may sign in. Behind a reverse proxy the proxy must
    pass the Host the browser used (nginx: `proxy_set_header Host $host`)."""
    site = headers.get("sec-fetch-site")
    if site in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site {site}"
    origin = headers.get("origin")
    if origin is None:
        return None
    if origin.strip().lower() == "null":
        return "Origin null"
    try:
        parts = urlsplit(origin)
        netloc = parts.netloc.lower()
    except ValueError:
        return "unreadable Origin"
    host = (headers.get("host") or "").lower()
    default = {"http": ":80", "https": ":443"}.get(parts.scheme, "")
    if parts.scheme not in ("http", "https") or netloc.removesuffix(default) != host.removesuffix(
        default
    ):
        return f"Origin {origin[:80]!r} is not this dashboard"
    return None
