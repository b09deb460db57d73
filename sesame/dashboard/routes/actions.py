"""The safety officer's actions: close or open a zone, correct a count, evacuate. Each is
audited first, then published to the counter and the gates (see `Dashboard.act`)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sesame.common import wire
from sesame.common.states import VenueMode, ZoneAccess
from sesame.dashboard.dashboard import Dashboard
from sesame.dashboard.deps import Actor, Dash, ZoneId, zone_or_404
from sesame.dashboard.errors import ApiError
from sesame.dashboard.http import (
    CorrectionBody,
    EvacuationBody,
    ZoneActionBody,
    body_doc,
    parse_body,
)
from sesame.dashboard.security import Session

router = APIRouter()


def acted(entry: dict, **extra: Any) -> JSONResponse:
    """200 once the broker has it; 202 when it is queued until the broker is back."""
    queued = entry["outcome"] == "queued"
    return JSONResponse(
        {"ok": not queued, "outcome": entry["outcome"], "audit": entry, **extra},
        status_code=202 if queued else 200,
    )


@router.post("/api/zones/{zone}/close", openapi_extra=body_doc(ZoneActionBody))
async def close_zone(zone: ZoneId, request: Request, s: Actor, dash: Dash):
    return await _zone_state(dash, zone, ZoneAccess.CLOSED, request, s)


@router.post("/api/zones/{zone}/open", openapi_extra=body_doc(ZoneActionBody))
async def open_zone(zone: ZoneId, request: Request, s: Actor, dash: Dash):
    return await _zone_state(dash, zone, ZoneAccess.OPEN, request, s)


async def _zone_state(
    dash: Dashboard, zone: str, state: ZoneAccess, request: Request, s: Session
):
    zone_or_404(dash, zone)
    body = await parse_body(request, ZoneActionBody) if await request.body() else ZoneActionBody()
    msg = wire.ZoneControl(state=state, by=s.user.username, ts=dash.now())
    entry = await asyncio.to_thread(
        dash.act,
        s.user,
        "close_zone" if state == ZoneAccess.CLOSED else "open_zone",
        zone,
        dash.topics.zone_control(zone),
        msg.to_json(),
        retain=True,
        detail=json.dumps({"state": state}),
        reason=body.reason,
    )
    return acted(entry)


@router.post("/api/zones/{zone}/corrections", openapi_extra=body_doc(CorrectionBody))
async def correction(zone: ZoneId, request: Request, s: Actor, dash: Dash):
    zone_or_404(dash, zone)
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


@router.post("/api/venue/evacuation", openapi_extra=body_doc(EvacuationBody))
async def evacuation(request: Request, s: Actor, dash: Dash):
    body = await parse_body(request, EvacuationBody)
    mode = VenueMode.EVACUATION if body.on else VenueMode.NORMAL
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
