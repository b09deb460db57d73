"""`control/decisions` (dashboard -> counter): a safety officer's answer to a counter
finding that waits for a person.

- `confirm_epoch`: the lane `gate` really did get a new outbox (`epoch`) again today; the
  counter writes its allowance off once more and leases the new outbox
  (`EPOCH_CHANGE_HELD`, sesame/counter/epochs.py).
- `accept_held` / `reject_held`: the passages the counter held as physically implausible
  at `gate` (`IMPLAUSIBLE_RATE`, sesame/counter/plausibility.py) did happen and count, or
  did not and never will. `count` is how many the officer saw held (the oldest first), so
  passages held after the officer looked are not decided unseen; absent: all of them.

`id` makes a repeated message harmless: the counter applies a decision once, and audits
it with the officer's name (`by`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sesame.common.wire.base import (
    _EPOCH,
    _GATE_ID,
    MAX_SEQ,
    VERSION,
    ParseError,
    _Bad,
    _count,
    _get,
    _ident,
    _total,
    _ts,
    _version,
    dumps,
    iso,
)

CONFIRM_EPOCH = "confirm_epoch"
ACCEPT_HELD = "accept_held"
REJECT_HELD = "reject_held"
ACTIONS = (CONFIRM_EPOCH, ACCEPT_HELD, REJECT_HELD)
_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


@dataclass(frozen=True)
class Decision:
    id: str
    action: str  # one of ACTIONS
    gate: str
    by: str  # the officer's user name
    ts: datetime
    epoch: str | None = None  # confirm_epoch: the outbox confirmed
    count: int | None = None  # accept_held / reject_held: how many the officer saw
    reason: str = ""

    def to_json(self) -> bytes:
        d = {"v": VERSION, "id": self.id, "action": self.action, "gate": self.gate,
             "by": self.by, "ts": iso(self.ts)}  # fmt: skip
        if self.epoch is not None:
            d["epoch"] = self.epoch
        if self.count is not None:
            d["count"] = self.count
        if self.reason:
            d["reason"] = self.reason
        return dumps(d)


@_total
def parse_decision(obj: dict) -> Decision | ParseError:
    _version(obj)
    action = _get(obj, "action", str)
    if action not in ACTIONS:
        raise _Bad(f"field 'action' must be one of {', '.join(ACTIONS)}")
    by = _get(obj, "by", str)
    if not by or len(by) > 64:
        raise _Bad("field 'by' must be 1-64 characters")
    reason = _get(obj, "reason", str, optional=True) or ""
    if len(reason) > 500:
        raise _Bad("field 'reason' must be at most 500 characters")
    epoch = _ident(obj, "epoch", _EPOCH, optional=action != CONFIRM_EPOCH)
    if action != CONFIRM_EPOCH and epoch is not None:
        raise _Bad(f"field 'epoch' belongs to {CONFIRM_EPOCH} only")
    count = _count(obj, "count", 1, MAX_SEQ, optional=True)
    if action == CONFIRM_EPOCH and count is not None:
        raise _Bad(f"field 'count' belongs to {ACCEPT_HELD} and {REJECT_HELD} only")
    return Decision(
        id=_ident(obj, "id", _ID),
        action=action,
        gate=_ident(obj, "gate", _GATE_ID),
        by=by,
        ts=_ts(obj, "ts"),
        epoch=epoch,
        count=count,
        reason=reason,
    )
