"""The live alert list and a safety officer's acknowledgement of one (audited by the alert
service, sesame/dashboard/alerts.py, which also escalates)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from pydantic import Field

from sesame.dashboard.deps import Actor, Dash, Reader
from sesame.dashboard.http import _Body, body_doc, parse_body

router = APIRouter()


class AcknowledgeBody(_Body):
    id: int = Field(ge=1, le=2**53, strict=True, description="the alert's id (GET /api/alerts)")
    reason: str = Field("", max_length=500, description="optional note for the audit log")


@router.get("/api/alerts")
def alerts(s: Reader, dash: Dash):
    items = dash.state.alert_list()
    return {
        "alerts": items,
        "unacknowledged": sum(1 for a in items if not a["acknowledged"]),
        "escalate_after_s": dash.settings.escalate_after_s or None,
    }


@router.post("/api/alerts/acknowledge", openapi_extra=body_doc(AcknowledgeBody))
async def acknowledge(request: Request, s: Actor, dash: Dash):
    body = await parse_body(request, AcknowledgeBody)
    return await asyncio.to_thread(dash.alerts.acknowledge, s.user, body.id, body.reason)
