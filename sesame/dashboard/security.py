"""Sessions and CSRF tokens (pure, with an injected clock; sign-in delays: signin.py).

Sessions live in memory: a dashboard restart logs everyone out, which is acceptable for a
control-room tool and means no session secret is ever written to disk.
"""

from __future__ import annotations

import secrets
import threading
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
