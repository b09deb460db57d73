"""A safety officer's answers to counter findings that wait for a person: confirm a lane's
held outbox change (EPOCH_CHANGE_HELD), accept or reject its held passages
(IMPLAUSIBLE_RATE). Audited here first, then published on control/decisions, where the
counter applies each decision once by id (sesame/common/wire/decisions.py)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import Field

from sesame.common.wire.decisions import CONFIRM_EPOCH, Decision
from sesame.dashboard.deps import Actor, Dash
from sesame.dashboard.errors import ApiError
from sesame.dashboard.http import _Body, body_doc, parse_body
from sesame.dashboard.routes.actions import acted

router = APIRouter()
_EPOCH = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class DecisionBody(_Body):
    action: Literal["confirm_epoch", "accept_held", "reject_held"]
    gate: str = Field(min_length=1, max_length=40, description="the lane the alert names")
    epoch: str | None = Field(None, max_length=32, description="confirm_epoch: the held epoch")
    count: int | None = Field(
        None, ge=1, le=2**53, strict=True, description="accept/reject: the held passages seen"
    )
    reason: str = Field("", max_length=500, description="optional note for the audit log")


@router.post("/api/decisions", openapi_extra=body_doc(DecisionBody))
async def decide(request: Request, s: Actor, dash: Dash):
    body = await parse_body(request, DecisionBody)
    if body.gate not in dash.venue.gates:
        raise ApiError(404, "NOT_FOUND", f"no lane {body.gate!r}")
    if body.action == CONFIRM_EPOCH:
        if body.epoch is None or not _EPOCH.match(body.epoch):
            raise ApiError(422, "INVALID", "epoch: the held epoch is needed to confirm it")
        if body.count is not None:
            raise ApiError(422, "INVALID", "count: only for accept_held and reject_held")
    elif body.epoch is not None:
        raise ApiError(422, "INVALID", "epoch: only for confirm_epoch")
    msg = Decision(id=uuid.uuid4().hex, action=body.action, gate=body.gate,
                   by=s.user.username, ts=dash.now(), epoch=body.epoch, count=body.count,
                   reason=body.reason)  # fmt: skip
    detail = {"id": msg.id, "gate": body.gate}
    detail.update({"epoch": body.epoch} if body.action == CONFIRM_EPOCH else {"count": body.count})
    entry = await asyncio.to_thread(
        dash.act, s.user, body.action, body.gate, dash.topics.decisions(), msg.to_json(),
        retain=False, detail=json.dumps(detail), reason=body.reason,
    )  # fmt: skip
    return acted(entry, id=msg.id)
