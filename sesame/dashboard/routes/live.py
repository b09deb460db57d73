"""The live view: its page, the current figures, history for the chart, and the stream of
updates (server-sent events)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from sesame.dashboard import exports_view
from sesame.dashboard.deps import READ, Dash, Day, Html, Reader, page_guard
from sesame.dashboard.hub import sse
from sesame.dashboard.plan import plan_data

HEARTBEAT_S = 15.0

router = APIRouter()


@router.get("/", include_in_schema=False)
def live_page(request: Request, pages: Html):
    s = page_guard(request, pages, READ)
    if isinstance(s, Response):
        return s
    return pages.render("live.html", request, s, plan=json.dumps(plan_data(pages.venue)))


@router.get("/api/zones")
def zones(s: Reader, dash: Dash):
    snap = dash.state.snapshot()
    return {
        "mode": snap["mode"],
        "mode_by": snap["mode_by"],
        "day": snap["day"],
        "zones": snap["zones"],
    }


@router.get("/api/gates")
def gates(s: Reader, dash: Dash):
    return {"gates": dash.state.snapshot()["gates"], "counter": dash.state.counter_public()}


@router.get("/api/audit")
def audit(s: Reader, dash: Dash, limit: Annotated[int, Query(ge=1, le=1000)] = 100):
    return {"entries": [e.to_dict() for e in dash.store.audit_entries(limit)]}


@router.get("/api/series")
def series(s: Reader, dash: Dash, day: Day = None):
    """The day's occupancy curve per zone: the counter's history plus live points."""
    d = exports_view.check_day(dash.venue, day) if day else dash.state.current_day()
    return exports_view.series(dash, d)


@router.get(
    "/api/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(request: Request, s: Reader, dash: Dash):
    q = dash.hub.subscribe()
    snapshot = dash.state.snapshot()
    snapshot["audit"] = [e.to_dict() for e in dash.store.audit_entries(50)]
    events = dash.hub.stream(
        q,
        "retry: 1000\n\n" + sse("snapshot", snapshot),
        heartbeat_s=HEARTBEAT_S,
        alive=lambda: dash.sessions.get(s.sid) is not None,  # else: signed out elsewhere
    )
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
