"""Signing in and out: the sign-in page, the session cookie, who am I."""

from __future__ import annotations

import asyncio
import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

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
    origin = request.headers.get("origin")
    if (
        origin
        and origin != "null"
        and re.sub(r"^https?://", "", origin) != request.headers.get("host")
    ):
        raise ApiError(403, "CSRF", "cross-site sign-in refused")
    body = await parse_body(request, LoginBody)
    ip = request.client.host if request.client else "?"
    ukey, akey = f"user:{body.username.lower()}", f"ip:{ip}"
    wait = max(dash.user_limiter.retry_after(ukey), dash.addr_limiter.retry_after(akey))
    if wait:
        raise ApiError(
            429,
            "RATE_LIMITED",
            f"too many failed sign-ins; retry in {wait} s",
            {"Retry-After": str(wait)},
        )
    user = await asyncio.to_thread(dash.store.authenticate, body.username, body.password)
    if user is None:
        dash.user_limiter.failed(ukey)
        dash.addr_limiter.failed(akey)
        raise ApiError(401, "BAD_CREDENTIALS", "wrong username or password")
    dash.user_limiter.succeeded(ukey)
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
