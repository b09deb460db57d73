"""Large retained lists in small messages (docs/mqtt.md, "Shards").

The revocation list and the counter's findings are each split into a fixed number of shards,
one retained message per shard topic (`badges/revoked/<xx>`, `counter/alerts/<xx>`, `xx` two
hex digits). An item's shard is a hash of its key, so a shard message replaces exactly the
items of its shard: whatever order shards arrive in, each item is in its old or its new state,
never lost. The count is fixed and a publisher always writes every shard, so no stale shard is
left behind when a list shrinks.

Why: Mosquitto 2.0 limits packet size only globally, for every account alike. With every
message of the venue small, that limit, and with it what one stolen lane can make the broker
hold, is small too (sesame/broker/setup.py MAX_PACKET).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from sesame.common.wire.base import _Bad, _get

REVOKED_SHARDS = 128  # 100,000 revoked ids: about 27 KB a shard
ALERT_SHARDS = 32  # 1,000 findings: about 31 a shard
MAX_SHARD_PAYLOAD = 60 * 1024  # bytes of one shard's message
_NAME = re.compile(r"^[0-9a-f]{2}$")
T = TypeVar("T")


def shard_of(key: str, shards: int) -> int:
    """The shard of an item; the same on every machine and Python (not `hash()`)."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:4], "big") % shards


def shard_name(index: int) -> str:
    return f"{index:02x}"


def shard_index(name: str | None, shards: int) -> int | None:
    """The index a shard topic names, or None when it is not one of `shards`."""
    if name is None or not _NAME.match(name):
        return None
    index = int(name, 16)
    return index if index < shards else None


def group(
    items: Iterable[T], key: Callable[[T], str], shards: int, wanted: Iterable[int] | None = None
) -> dict[int, list[T]]:
    """The items of each shard, in the order given: every shard (the empty ones too: each
    shard message replaces what a reader held of it), or the `wanted` ones."""
    out: dict[int, list[T]] = {i: [] for i in (range(shards) if wanted is None else wanted)}
    for item in items:
        part = out.get(shard_of(key(item), shards))
        if part is not None:
            part.append(item)
    return out


def parse_header(obj: dict, shards: int) -> int:
    """The index of a shard message (its `"shard"` and `"of"` fields), or raises _Bad."""
    if _get(obj, "of", int) != shards:
        raise _Bad(f"field 'of' must be {shards} (the shard count)")
    index = shard_index(_get(obj, "shard", str), shards)
    if index is None:
        raise _Bad("field 'shard' must name a shard (two hex digits)")
    return index


class ShardedSet:
    """A set kept as its shards, each replaced whole by its own message. Membership looks in
    the one shard an item can be in, so replacing a shard costs that shard only."""

    def __init__(self, shards: int) -> None:
        self.shards = shards
        self._parts: dict[int, frozenset[str]] = {}

    def replace(self, index: int, items: Iterable[str]) -> None:
        self._parts[index] = frozenset(items)

    @property
    def received(self) -> int:
        """How many shards have arrived (all of them: the whole list is known)."""
        return len(self._parts)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, str):
            return False
        part = self._parts.get(shard_of(item, self.shards))
        return part is not None and item in part

    def __len__(self) -> int:
        return sum(len(p) for p in self._parts.values())

    def __iter__(self) -> Iterator[str]:
        for index in sorted(self._parts):
            yield from self._parts[index]
