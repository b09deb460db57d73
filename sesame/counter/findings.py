"""The counter's current findings about lanes and zones, published on `counter/alerts/<shard>`.

Every part of the counter that notices something a safety officer must see (a fire alarm, a
lane's clock far from the counter's, held passages, a badge admitted twice...) raises a
finding here under a `kind` (an upper-case code) and a `subject` (the gate or zone id) and
clears it when the cause is gone. The list is retained as a fixed number of shards (by the
finding's key, sesame/common/wire/shards.py), each rewritten whole when one of its findings
changes, so a dashboard that connects late sees exactly what is current and no message is
large. `dirty` tells the core to publish the changed shards after the transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sesame.common import wire
from sesame.common.wire.alerts import MAX_FINDINGS, CounterAlerts, Finding, alert_shards
from sesame.common.wire.shards import ALERT_SHARDS, MAX_SHARD_PAYLOAD, shard_name, shard_of


class Findings:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Finding] = {}
        self._changed: set[int] = set()  # shards to publish

    @property
    def dirty(self) -> bool:
        return bool(self._changed)

    def raise_(
        self,
        kind: str,
        subject: str,
        since: datetime,
        detail: dict[str, Any] | None = None,
        count: int = 1,
    ) -> bool:
        """Set the finding (kind, subject); keeps its first `since`. True when it changed."""
        old = self._items.get((kind, subject))
        new = Finding(kind, subject, old.since if old else since, count, detail or {})
        if old == new:
            return False
        if old is None and len(self._items) >= MAX_FINDINGS:
            return False  # cannot happen with the venue's own ids; never grow without bound
        self._items[(kind, subject)] = new
        self._changed.add(shard_of(new.key, ALERT_SHARDS))
        return True

    def bump(
        self, kind: str, subject: str, since: datetime, detail: dict[str, Any] | None = None,
        n: int = 1,
    ) -> bool:  # fmt: skip
        """Raise the finding or add `n` to its count (e.g. one more held passage)."""
        old = self._items.get((kind, subject))
        return self.raise_(kind, subject, since, detail, (old.count if old else 0) + n)

    def clear(self, kind: str, subject: str) -> bool:
        old = self._items.pop((kind, subject), None)
        if old is None:
            return False
        self._changed.add(shard_of(old.key, ALERT_SHARDS))
        return True

    def get(self, kind: str, subject: str) -> Finding | None:
        return self._items.get((kind, subject))

    def active(self, kind: str) -> dict[str, Finding]:
        """The findings of one kind, by subject."""
        return {s: a for (k, s), a in self._items.items() if k == kind}

    def alerts(self) -> list[Finding]:
        return [self._items[k] for k in sorted(self._items)]

    def messages(
        self, topics: wire.Topics, now: datetime, every: bool = False
    ) -> list[tuple[str, bytes]]:
        """(topic, payload) of each retained shard that changed, or of `every` shard (at
        start-up: a shard retained by an earlier run is overwritten); they are now published."""
        shards = None if every else sorted(self._changed)
        self._changed = set()
        return [(topics.alerts(shard_name(m.shard)), _fit(m))
                for m in alert_shards(self.alerts(), now, shards)]  # fmt: skip


def _fit(msg: CounterAlerts) -> bytes:
    """The shard's payload; if its details make it too large (details are bounded, findings
    per shard about 31), the details go, never a finding."""
    payload = msg.to_json()
    if len(payload) <= MAX_SHARD_PAYLOAD:
        return payload
    bare = tuple(Finding(f.kind, f.subject, f.since, f.count, {"trimmed": True})
                 for f in msg.alerts)  # fmt: skip
    return CounterAlerts(bare, msg.ts, msg.shard).to_json()
