"""Alert messages on the wire: the counter's findings and the dashboard's escalations.

- `counter/alerts/<shard>` (counter → all, retained): the complete current list of the
  counter's findings about lanes and zones, as `ALERT_SHARDS` messages, each holding the
  findings whose key falls in its shard (wire/shards.py); the dashboard shows each finding of
  every shard as an alert.
- `alerts/escalated` (dashboard → all, retained): the alerts nobody acknowledged in time,
  for a pager or a PA system to act on. Its content is a function of the alerts only (no
  publication time), so two dashboards that agree publish the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sesame.common.wire.base import (
    VERSION,
    ParseError,
    _Bad,
    _count,
    _get,
    _total,
    _ts,
    _version,
    dumps,
    iso,
)
from sesame.common.wire.shards import (
    ALERT_SHARDS,
    MAX_SHARD_PAYLOAD,
    group,
    parse_header,
    shard_name,
    shard_of,
)

MAX_ALERTS_PAYLOAD = MAX_SHARD_PAYLOAD  # one shard's message
MAX_FINDINGS = 1000  # of the counter's whole list (about 31 a shard)
MAX_DETAIL = 2048  # bytes of one finding's detail
_CODE = re.compile(r"^[A-Za-z0-9_]{1,40}$")
_SUBJECT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


@dataclass(frozen=True)
class Finding:
    kind: str  # a code, e.g. CLOCK_SKEW, HELD_PASSAGES, FIRE_ALARM
    subject: str  # gate or zone id
    since: datetime | None = None
    count: int = 1
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subject}"


@dataclass(frozen=True)
class CounterAlerts:
    """One shard of the counter's findings: all the findings of that shard, current."""

    alerts: tuple[Finding, ...]
    ts: datetime | None = None
    shard: int = 0

    def to_json(self) -> bytes:
        return dumps(
            {
                "v": VERSION,
                "shard": shard_name(self.shard),
                "of": ALERT_SHARDS,
                "ts": iso(self.ts) if self.ts else None,
                "alerts": [
                    {
                        "key": f.key,
                        "kind": f.kind,
                        "subject": f.subject,
                        "since": iso(f.since) if f.since else None,
                        "count": f.count,
                        "detail": f.detail,
                    }
                    for f in self.alerts
                ],
            }
        )


@_total(limit=MAX_ALERTS_PAYLOAD)
def parse_counter_alerts(obj: dict) -> CounterAlerts | ParseError:
    _version(obj)
    shard = parse_header(obj, ALERT_SHARDS)
    items = _get(obj, "alerts", list)
    if len(items) > MAX_FINDINGS:
        raise _Bad(f"field 'alerts' holds more than {MAX_FINDINGS} findings")
    out = []
    for it in items:
        if not isinstance(it, dict):
            raise _Bad("field 'alerts' must hold objects")
        kind, subject = _get(it, "kind", str), _get(it, "subject", str)
        if not _CODE.match(kind) or not _SUBJECT.match(subject):
            raise _Bad("an alert's 'kind' or 'subject' is not a valid code or id")
        # a reader ends what a shard no longer lists among the findings of that shard only
        if shard_of(f"{kind}:{subject}", ALERT_SHARDS) != shard:
            raise _Bad("an alert of another shard")
        detail = _get(it, "detail", dict, optional=True) or {}
        if len(dumps(detail)) > MAX_DETAIL:
            raise _Bad("an alert's 'detail' is over 2 KiB")
        out.append(
            Finding(
                kind=kind,
                subject=subject,
                since=_ts(it, "since", optional=True),
                count=_count(it, "count", 1, 10**9, optional=True) or 1,
                detail=detail,
            )
        )
    return CounterAlerts(alerts=tuple(out), ts=_ts(obj, "ts", optional=True), shard=shard)


def alert_shards(
    findings: Iterable[Finding], ts: datetime | None, shards: Iterable[int] | None = None
) -> list[CounterAlerts]:
    """The findings as shard messages: every shard (the empty ones too), or those named."""
    parts = group(findings, lambda f: f.key, ALERT_SHARDS, shards)
    return [CounterAlerts(tuple(p), ts, i) for i, p in parts.items()]


def escalated_payload(alerts: list[dict[str, Any]]) -> bytes:
    """`alerts/escalated`: deterministic (sorted by key, no publication time)."""
    keep = ("key", "kind", "subject", "severity", "start", "count", "peak", "detail")
    items = sorted(({k: a.get(k) for k in keep} for a in alerts), key=lambda a: a["key"])
    return dumps({"v": VERSION, "alerts": items})
