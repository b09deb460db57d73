"""Sessions, CSRF tokens and the login rate limit (pure, with an injected clock).

Sessions live in memory: a dashboard restart logs everyone out, which is acceptable for a
control-room tool and means no session secret is ever written to disk.
"""

from __future__ import annotations

import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sesame.dashboard.accounts import User

SESSION_IDLE = timedelta(hours=12)


@dataclass
class Session:
    sid: str
    user: User
    csrf: str
    created: datetime
    last_seen: datetime


class Sessions:
    def __init__(self, clock: Callable[[], datetime], idle: timedelta = SESSION_IDLE):
        self._clock = clock
        self._idle = idle
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, user: User) -> Session:
        now = self._clock()
        s = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._by_id[s.sid] = s
        return s

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        now = self._clock()
        with self._lock:
            s = self._by_id.get(sid)
            if s is None:
                return None
            if now - s.last_seen > self._idle:
                del self._by_id[sid]
                return None
            s.last_seen = now
            return s

    def drop(self, sid: str) -> None:
        with self._lock:
            self._by_id.pop(sid, None)

    def count(self) -> int:
        """Sessions not yet expired (for the metrics)."""
        now = self._clock()
        with self._lock:
            return sum(1 for s in self._by_id.values() if now - s.last_seen <= self._idle)

    def drop_user(self, username: str) -> None:
        with self._lock:
            for sid in [k for k, s in self._by_id.items() if s.user.username == username]:
                del self._by_id[sid]


def csrf_ok(session: Session, token: str | None) -> bool:
    return bool(token) and secrets.compare_digest(session.csrf, token)


class RateLimiter:
    """Failed logins per key (client address, username) in a sliding window."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        limit: int = 5,
        window: timedelta = timedelta(minutes=5),
    ):
        self._clock = clock
        self.limit = limit
        self.window = window
        self._fails: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def _prune(self, key: str, now: datetime) -> deque[datetime]:
        q = self._fails.setdefault(key, deque())
        while q and now - q[0] >= self.window:
            q.popleft()
        return q

    def retry_after(self, *keys: str) -> int:
        """Seconds until another attempt is allowed, 0 when it is allowed now."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for k in keys:
                q = self._prune(k, now)
                if len(q) >= self.limit:
                    wait = max(wait, (q[0] + self.window - now).total_seconds())
        return int(wait) + 1 if wait > 0 else 0

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            for k in keys:
                self._prune(k, now).append(now)
            if len(self._fails) > 10_000:  # bound memory under a spray of usernames
                for k in [k for k, q in self._fails.items() if not q]:
                    del self._fails[k]

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._fails.pop(key, None)
