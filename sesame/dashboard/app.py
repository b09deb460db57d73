"""The dashboard web app: pages, the JSON API and the live stream.

`create_app(settings)` builds it in-process (tests, `sesame demo`); `sesame.dashboard.server`
runs it. The routes live in `sesame.dashboard.routes`, one router per area; what they check
and in which order is in `sesame.dashboard.deps`. One error shape everywhere:
{"error": {"code", "message"}}.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException

from sesame.dashboard.dashboard import Dashboard, DashboardSettings, Publisher
from sesame.dashboard.errors import ApiError, error_response
from sesame.dashboard.http import STATUS_CODES, SecurityHeaders, first_error
from sesame.dashboard.metrics import CountResponses
from sesame.dashboard.pages import Pages
from sesame.dashboard.routes import actions, alerts, assets, auth, decisions, exports, live
from sesame.dashboard.routes.assets import CHART_JS

__all__ = ["CHART_JS", "Dashboard", "Publisher", "DashboardSettings", "create_app"]


def create_app(settings: DashboardSettings, *, link: Publisher | None = None) -> FastAPI:
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
    app.state.pages = Pages(settings.venue)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(CountResponses, metrics=dash.metrics)
    _error_handlers(app)
    for area in (auth, assets, live, actions, alerts, decisions, exports):
        app.include_router(area.router)
    document_zones(app, sorted(settings.venue.zones))
    return app


def _error_handlers(app: FastAPI) -> None:
    """One error shape for every refusal, whoever raises it."""

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


def document_zones(app: FastAPI, zones: list[str]) -> None:
    """Name the venue's zones as the values of every `{zone}` path parameter in the schema,
    so that generated requests reach the bodies (the routes are shared by every venue)."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            for item in schema.get("paths", {}).values():
                for op in item.values():
                    for p in op.get("parameters", []):
                        if p.get("in") == "path" and p.get("name") == "zone":
                            p["schema"] = {"enum": zones, **p.get("schema", {})}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
