"""Fan-out of live updates to the browsers' server-sent event streams.

MQTT callbacks run on paho's thread; each update is serialised once and handed to the
event loop, which copies it into every subscriber's bounded queue. A subscriber that falls
too far behind is dropped (its browser reconnects and starts again from a snapshot) rather
than slowing everyone else or growing memory without bound.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

QUEUE_SIZE = 2000
BURST = 200  # updates already queued that go out in one write
_CLOSE = None  # sentinel put in a queue to end its stream


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class Hub:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._subs: set[asyncio.Queue] = set()
        self.dropped = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def subscribe(self) -> asyncio.Queue:
        """Call on the event loop."""
        q: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        self._subs.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self._subs.discard(q)

    async def stream(
        self, q: asyncio.Queue, first: str, *, heartbeat_s: float, alive: Callable[[], bool]
    ) -> AsyncIterator[str]:
        """One browser's event stream: `first`, then its queued updates (a burst in one
        write), a comment line every `heartbeat_s` of silence, until the hub closes it or
        `alive()` turns False (checked at each heartbeat). Unsubscribes when it ends."""
        try:
            yield first
            while True:
                try:
                    item = await asyncio.wait_for(q.get(), heartbeat_s)
                except TimeoutError:
                    if not alive():
                        return
                    yield ": ping\n\n"
                    continue
                if item is _CLOSE:
                    return
                batch = [item]
                while not q.empty() and len(batch) < BURST:
                    nxt = q.get_nowait()
                    if nxt is _CLOSE:
                        yield "".join(batch)
                        return
                    batch.append(nxt)
                yield "".join(batch)
        finally:
            self.unsubscribe(q)

    def publish(self, event: str, data: Any) -> None:
        """Thread-safe: may be called from any thread."""
        if self.loop is None or self.loop.is_closed() or not self._subs:
            return
        text = sse(event, data)
        try:
            self.loop.call_soon_threadsafe(self._fanout, text)
        except RuntimeError:  # loop shutting down
            pass

    def _fanout(self, text: str) -> None:
        for q in list(self._subs):
            try:
                q.put_nowait(text)
            except asyncio.QueueFull:
                self._subs.discard(q)
                self.dropped += 1
                # make room for the sentinel so the stream ends promptly
                while not q.empty():
                    q.get_nowait()
                q.put_nowait(_CLOSE)

    def close_all(self) -> None:
        for q in list(self._subs):
            try:
                q.put_nowait(_CLOSE)
            except asyncio.QueueFull:
                pass
        self._subs.clear()
