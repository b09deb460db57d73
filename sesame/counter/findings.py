"""The counter's current findings about lanes and zones, published whole on `counter/alerts`.

Every part of the counter that notices something a safety officer must see (a fire alarm, a
lane's clock far from the counter's, held passages, a badge admitted twice...) raises a
finding here under a `kind` (an upper-case code) and a `subject` (the gate or zone id) and
clears it when the cause is gone. The list is one retained message, rewritten whole whenever
it changes, so a dashboard that connects late sees exactly what is current. `dirty` tells
the core to publish it after the transaction that changed it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sesame.common import wire
from sesame.common.wire.alerts import MAX_FINDINGS, CounterAlerts, Finding


class Findings:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Finding] = {}
        self.dirty = False

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
        self.dirty = True
        return True

    def bump(
        self, kind: str, subject: str, since: datetime, detail: dict[str, Any] | None = None,
        n: int = 1,
    ) -> bool:  # fmt: skip
        """Raise the finding or add `n` to its count (e.g. one more held passage)."""
        old = self._items.get((kind, subject))
        return self.raise_(kind, subject, since, detail, (old.count if old else 0) + n)

    def clear(self, kind: str, subject: str) -> bool:
        if self._items.pop((kind, subject), None) is None:
            return False
        self.dirty = True
        return True

    def get(self, kind: str, subject: str) -> Finding | None:
        return self._items.get((kind, subject))

    def active(self, kind: str) -> dict[str, Finding]:
        """The findings of one kind, by subject."""
        return {s: a for (k, s), a in self._items.items() if k == kind}

    def alerts(self) -> list[Finding]:
        return [self._items[k] for k in sorted(self._items)]

    def message(self, topics: wire.Topics, now: datetime) -> tuple[str, bytes]:
        """(topic, payload) of the retained `counter/alerts` list; the list is now published."""
        self.dirty = False
        return topics.alerts(), CounterAlerts(tuple(self.alerts()), now).to_json()
