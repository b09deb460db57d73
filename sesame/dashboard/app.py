"""The dashboard web app: pages, the JSON API and the live stream.

`create_app(settings)` builds it in-process (tests, `sesame demo`); `sesame.dashboard.server`
runs it. Every /api path checks, in this order: a session (401), the CSRF token on state
changes (403 CSRF), the role (403 FORBIDDEN), then the input (422). One error shape:
{"error": {"code", "message"}}.
"""

import asyncio
import contextlib
import html
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from sesame.common import wire
from sesame.common.reasons import Reason
from sesame.common.reasons import label as reason_label
from sesame.common.venue import Venue
from sesame.dashboard import alerts, exports_view
from sesame.dashboard.accounts import Store, User
from sesame.dashboard.alerts import AlertService
from sesame.dashboard.errors import ApiError, error_response
from sesame.dashboard.http import (
    STATUS_CODES,
    CorrectionBody,
    EvacuationBody,
    LoginBody,
    SecurityHeaders,
    ZoneActionBody,
    body_doc,
    first_error,
    parse_body,
)
from sesame.dashboard.hub import _CLOSE, Hub, sse
from sesame.dashboard.i18n import pick_lang, strings
from sesame.dashboard.live import LiveState
from sesame.dashboard.security import RateLimiter, Session, Sessions, csrf_ok

HERE = Path(__file__).parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"
# Chart.js, installed at set-up by `npm ci --prefix dashboard` (never committed).
CHART_JS = HERE / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"
COOKIE = "sesame_session"
HEARTBEAT_S = 15.0

READ = frozenset({"safety", "organiser", "viewer"})
ACT = frozenset({"safety"})
EXPORT = frozenset({"organiser"})


class Publisher(Protocol):
    def publish(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, on_late=None
    ) -> Any: ...

    def close(self) -> None: ...


@dataclass
class Settings:
    venue: Venue
    accounts_path: str | Path
    db_path: str | Path | None = None  # the counter's database, for history and exports
    broker_url: str | None = None
    credentials: str | Path | None = None  # broker credentials file for the dashboard account
    cookie_secure: bool = False  # set when served over HTTPS
    login_limit: int = 5  # failed sign-ins per user in 5 minutes
    login_limit_address: int = 20  # per client address (a control room shares one)
    # time stamped on actions and audit entries (`sesame demo` sets the replayed day's)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # real elapsed time, for session expiry and the sign-in limit (never the replay's)
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # an alert unacknowledged this long (real seconds) goes on alerts/escalated; 0: never
    escalate_after_s: float = 120.0


class Dashboard:
    """Everything the routes share; also the handle `sesame demo` and tests hold."""

    def __init__(self, settings: Settings, link: Publisher | None = None):
        self.settings = settings
        self.venue = settings.venue
        self.topics = wire.Topics(self.venue.id)
        self.store = Store(settings.accounts_path)
        self.sessions = Sessions(settings.wall_clock)
        self.user_limiter = RateLimiter(settings.wall_clock, limit=settings.login_limit)
        self.addr_limiter = RateLimiter(settings.wall_clock, limit=settings.login_limit_address)
        self.alerts = AlertService(self)
        self.state = LiveState(self.venue, *self.alerts.saved())
        self.hub = Hub()
        self.link = link
        self._own_link = link is None

    def now(self) -> datetime:
        return self.settings.clock()

    # called on the MQTT thread
    def on_message(self, topic: str, payload: bytes) -> None:
        updates = self.state.apply(topic, payload, self.now(), self.settings.wall_clock())
        self.alerts.persist(updates)
        for event, data in updates:
            self.hub.publish(event, data)

    def start_link(self) -> None:
        self.alerts.start()  # escalation publishes through whatever link there is
        if self.link is not None or not (self.settings.broker_url or self.settings.credentials):
            return
        from sesame.dashboard.link import connect_link

        self.link = connect_link(self.settings, self.on_message, self.on_broker_state)

    def on_broker_state(self, state: str, detail: str) -> None:
        self.state.broker = {"state": state, "detail": detail}
        self.hub.publish("broker", dict(self.state.broker))

    def stop(self) -> None:
        if self.link is not None and self._own_link:
            with contextlib.suppress(Exception):
                self.link.close()
        self.alerts.stop()
        self.hub.close_all()
        self.store.close()

    def publish(self, topic: str, payload: bytes, retain: bool, on_late=None) -> str:
        if self.link is None:
            raise ApiError(503, "BROKER_UNAVAILABLE", "no connection to the broker")
        try:
            outcome = self.link.publish(topic, payload, qos=1, retain=retain, on_late=on_late)
        except Exception as e:  # the broker link is an edge: report, never crash
            raise ApiError(503, "BROKER_REFUSED", f"publish failed: {e}") from None
        return outcome if isinstance(outcome, str) else "published"

    def act(
        self,
        user: User,
        action: str,
        target: str,
        topic: str,
        payload: bytes,
        *,
        retain: bool,
        detail: str,
        reason: str,
    ) -> dict:
        """Audit first, publish, record the outcome, tell every browser.

        'queued' means the broker could not be reached in time: the message leaves when the
        link is back, and the audit log says so rather than pretending it was delivered."""
        entry_id = self.store.audit(
            user, action, target, detail=detail, reason=reason, at=self.now()
        )

        def late(outcome: str) -> None:  # a queued action finally reached the broker
            self.store.audit_outcome(entry_id, outcome)
            self.hub.publish("audit", self.store.audit_entry(entry_id).to_dict())

        try:
            outcome = self.publish(topic, payload, retain, on_late=late)
        except ApiError:
            self.store.audit_outcome(entry_id, "failed")
            self.hub.publish("audit", self.store.audit_entry(entry_id).to_dict())
            raise
        self.store.audit_outcome(entry_id, outcome)
        entry = self.store.audit_entry(entry_id).to_dict()
        self.hub.publish("audit", entry)
        return entry


def create_app(settings: Settings, *, link: Publisher | None = None) -> FastAPI:
    dash = Dashboard(settings, link)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        dash.hub.bind(asyncio.get_running_loop())
        await asyncio.to_thread(dash.start_link)
        try:
            yield
        finally:
            dash.stop()

    app = FastAPI(
        title="Sesame dashboard",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.dashboard = dash
    app.add_middleware(SecurityHeaders)

    # -- errors: one shape everywhere ------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = STATUS_CODES.get(exc.status_code, "HTTP_ERROR")
        msg = exc.detail if isinstance(exc.detail, str) else code.lower()
        return error_response(exc.status_code, code, msg, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return error_response(422, "INVALID", first_error(list(exc.errors())))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        return error_response(500, "INTERNAL", "internal error")

    # -- auth dependencies -------------------------------------------------------
    def session_of(request: Request) -> Session | None:
        s = dash.sessions.get(request.cookies.get(COOKIE))
        if s is None:
            return None
        # an account removed or given another role since sign-in loses its session now
        if dash.store.get_user(s.user.username) != s.user:
            dash.sessions.drop(s.sid)
            return None
        return s

    def need(roles: frozenset[str], *, change: bool):
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

    reader = need(READ, change=False)
    actor = need(ACT, change=True)
    exporter = need(EXPORT, change=False)
    anyone_change = need(READ, change=True)
    Reader = Annotated[Session, Depends(reader)]
    Actor = Annotated[Session, Depends(actor)]
    Exporter = Annotated[Session, Depends(exporter)]
    AnyoneChange = Annotated[Session, Depends(anyone_change)]
    # documented as the venue's zones (so generated requests reach the bodies); an unknown
    # zone is still answered 404 by zone_or_404
    ZoneId = Annotated[str, PathParam(json_schema_extra={"enum": sorted(dash.venue.zones)})]
    Day = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")]

    def lang_of(request: Request) -> str:
        return pick_lang(request.cookies.get("lang"), request.headers.get("accept-language"))

    def acted(entry: dict, **extra: Any) -> JSONResponse:
        """200 once the broker has it; 202 when it is queued until the broker is back."""
        queued = entry["outcome"] == "queued"
        return JSONResponse(
            {"ok": not queued, "outcome": entry["outcome"], "audit": entry, **extra},
            status_code=202 if queued else 200,
        )

    def zone_or_404(zone: str) -> str:
        if zone not in dash.venue.zones:
            raise ApiError(404, "NOT_FOUND", f"no zone {zone!r}")
        return zone

    # -- pages -------------------------------------------------------------------
    def page(name: str, request: Request, session: Session | None, **extra: str) -> HTMLResponse:
        lang = lang_of(request)
        t = strings(lang)
        values = {f"t.{k}": v for k, v in t.items()}
        values.update(
            lang=lang,
            venue=dash.venue.venue.name,
            user=session.user.username if session else "",
            role=session.user.role if session else "",
            csrf=session.csrf if session else "",
            tz=dash.venue.venue.timezone,
            i18n=json.dumps(t),
            **extra,
        )
        text = (TEMPLATES / name).read_text(encoding="utf-8")
        body = re.sub(
            r"\{\{\s*([\w.]+)\s*\}\}", lambda m: html.escape(values.get(m.group(1), "")), text
        )
        return HTMLResponse(body)

    def page_guard(request: Request, roles: frozenset[str]) -> Session | Response:
        s = session_of(request)
        if s is None:
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        if s.user.role not in roles:
            return page("forbidden.html", request, s)
        return s

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request):
        return page("login.html", request, None)

    @app.get("/", include_in_schema=False)
    def live_page(request: Request):
        s = page_guard(request, READ)
        if isinstance(s, Response):
            return s
        return page("live.html", request, s)

    @app.get("/organiser", include_in_schema=False)
    def organiser_page(request: Request):
        s = page_guard(request, EXPORT)
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
                c.id: c.label_fr if lang == "fr" else c.label_en
                for c in dash.venue.categories.values()
            },
            **{r.value: reason_label(r, lang) for r in Reason},
        }
        return page("organiser.html", request, s, days=days, names=json.dumps(names))

    @app.get("/vendor/chart.js", include_in_schema=False)
    def chart_js():
        if not CHART_JS.is_file():
            raise ApiError(404, "NOT_FOUND", "chart.js not installed: run scripts/dev.sh setup")
        return FileResponse(CHART_JS, media_type="text/javascript")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        if not re.fullmatch(r"[a-z0-9_-]+\.(js|css|svg)", name) or not (STATIC / name).is_file():
            raise ApiError(404, "NOT_FOUND", "no such file")
        media = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}
        return FileResponse(STATIC / name, media_type=media[name.rsplit(".", 1)[1]])

    # -- session -----------------------------------------------------------------
    @app.post("/login", openapi_extra=body_doc(LoginBody), responses={429: {}})
    async def login(request: Request):
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
        form = request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        )
        if form:
            resp: Response = RedirectResponse("/", status_code=303)
        else:
            resp = JSONResponse({"user": user.username, "role": user.role, "csrf": s.csrf})
        resp.set_cookie(
            COOKIE,
            s.sid,
            httponly=True,
            samesite="strict",
            secure=settings.cookie_secure,
            path="/",
        )
        return resp

    @app.post("/logout")
    def logout(request: Request, s: AnyoneChange):
        dash.sessions.drop(s.sid)
        resp = JSONResponse({"ok": True})
        resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return resp

    @app.get("/api/me")
    def me(request: Request, s: Reader):
        return {
            "user": s.user.username,
            "role": s.user.role,
            "csrf": s.csrf,
            "lang": lang_of(request),
        }

    # -- live state ----------------------------------------------------------------
    @app.get("/api/zones")
    def zones(s: Reader):
        snap = dash.state.snapshot()
        return {
            "mode": snap["mode"],
            "mode_by": snap["mode_by"],
            "day": snap["day"],
            "zones": snap["zones"],
        }

    @app.get("/api/gates")
    def gates(s: Reader):
        return {"gates": dash.state.snapshot()["gates"], "counter": dash.state.counter_public()}

    alerts.add_routes(app, dash, Reader, Actor)

    @app.get("/api/audit")
    def audit(s: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 100):
        return {"entries": [e.to_dict() for e in dash.store.audit_entries(limit)]}

    @app.get("/api/series")
    def series(
        s: Reader,
        day: Day = None,
    ):
        """The day's occupancy curve per zone: the counter's history plus live points."""
        d = exports_view.check_day(dash.venue, day) if day else dash.state.current_day()
        return exports_view.series(dash, d)

    @app.get(
        "/api/stream",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def stream(request: Request, s: Reader):
        q = dash.hub.subscribe()
        snapshot = dash.state.snapshot()
        snapshot["audit"] = [e.to_dict() for e in dash.store.audit_entries(50)]

        async def events():
            try:
                yield "retry: 1000\n\n" + sse("snapshot", snapshot)
                while True:
                    try:
                        item = await asyncio.wait_for(q.get(), HEARTBEAT_S)
                    except TimeoutError:
                        if dash.sessions.get(s.sid) is None:  # signed out elsewhere
                            return
                        yield ": ping\n\n"
                        continue
                    if item is _CLOSE:
                        return
                    batch = [item]
                    # drain what is already queued: one write for a burst
                    while not q.empty() and len(batch) < 200:
                        nxt = q.get_nowait()
                        if nxt is _CLOSE:
                            yield "".join(batch)
                            return
                        batch.append(nxt)
                    yield "".join(batch)
            finally:
                dash.hub.unsubscribe(q)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # -- safety actions ----------------------------------------------------------
    @app.post("/api/zones/{zone}/close", openapi_extra=body_doc(ZoneActionBody))
    async def close_zone(zone: ZoneId, request: Request, s: Actor):
        return await _zone_state(zone, "closed", request, s)

    @app.post("/api/zones/{zone}/open", openapi_extra=body_doc(ZoneActionBody))
    async def open_zone(zone: ZoneId, request: Request, s: Actor):
        return await _zone_state(zone, "open", request, s)

    async def _zone_state(zone: str, state: str, request: Request, s: Session):
        zone_or_404(zone)
        body = (
            await parse_body(request, ZoneActionBody)
            if await request.body()
            else (ZoneActionBody())
        )
        msg = wire.ZoneControl(state=state, by=s.user.username, ts=dash.now())
        entry = await asyncio.to_thread(
            dash.act,
            s.user,
            "close_zone" if state == "closed" else "open_zone",
            zone,
            dash.topics.zone_control(zone),
            msg.to_json(),
            retain=True,
            detail=json.dumps({"state": state}),
            reason=body.reason,
        )
        return acted(entry)

    @app.post("/api/zones/{zone}/corrections", openapi_extra=body_doc(CorrectionBody))
    async def correction(zone: ZoneId, request: Request, s: Actor):
        zone_or_404(zone)
        body = await parse_body(request, CorrectionBody)
        if body.delta == 0:
            raise ApiError(422, "INVALID", "delta: must not be 0")
        msg = wire.Correction(
            id=uuid.uuid4().hex,
            zone=zone,
            delta=body.delta,
            reason=body.reason,
            by=s.user.username,
            ts=dash.now(),
        )
        entry = await asyncio.to_thread(
            dash.act,
            s.user,
            "correction",
            zone,
            dash.topics.corrections(),
            msg.to_json(),
            retain=False,
            detail=json.dumps({"delta": body.delta, "id": msg.id}),
            reason=body.reason,
        )
        return acted(entry, id=msg.id)

    @app.post("/api/venue/evacuation", openapi_extra=body_doc(EvacuationBody))
    async def evacuation(request: Request, s: Actor):
        body = await parse_body(request, EvacuationBody)
        mode = "evacuation" if body.on else "normal"
        msg = wire.VenueControl(mode=mode, by=s.user.username, ts=dash.now())
        entry = await asyncio.to_thread(
            dash.act,
            s.user,
            "evacuation_on" if body.on else "evacuation_off",
            dash.venue.id,
            dash.topics.venue_control(),
            msg.to_json(),
            retain=True,
            detail=json.dumps({"mode": mode}),
            reason=body.reason,
        )
        return acted(entry)

    # -- organiser exports -------------------------------------------------------
    @app.get(
        "/api/exports/attendance",
        responses={200: {"content": {"text/csv": {}, "image/png": {}}}},
    )
    def export_attendance(
        s: Exporter,
        day: Day = None,
        format: Literal["csv", "xlsx", "json", "png"] = "json",
    ):
        d = exports_view.check_day(dash.venue, day) if day else None
        return exports_view.attendance(dash, d, format)

    return app
