"""Dashboard accounts and the audit log, in the dashboard's own SQLite file.

Passwords are stored as argon2id hashes only. The audit log records every safety action
(who, when, what, on what, why, and whether it reached the broker); rows are never updated
except to record the outcome of the publish they describe.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from sesame.common import sqlite

ROLES = ("safety", "organiser", "viewer")
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256

_MIGRATIONS = [
    (
        "0001_users_audit",
        """
        CREATE TABLE users (
            username TEXT PRIMARY KEY,
            role TEXT NOT NULL CHECK (role IN ('safety', 'organiser', 'viewer')),
            hash TEXT NOT NULL,
            created TEXT NOT NULL
        );
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            user TEXT NOT NULL,
            role TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            reason TEXT NOT NULL DEFAULT '',
            outcome TEXT NOT NULL DEFAULT 'pending'
        );
        """,
    ),
]


class AccountError(ValueError):
    """A refused account operation, printable on one line."""


@dataclass(frozen=True)
class User:
    username: str
    role: str


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    user: str
    role: str
    action: str
    target: str
    detail: str
    reason: str
    outcome: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class AccountStore:
    """Users and audit log. Thread-safe: one connection behind a lock (few, small writes)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._lock = threading.Lock()
        # synchronous=FULL (sesame.common.sqlite): an audit row must survive a power cut
        self._db = sqlite.connect(self.path)
        with self._lock:
            sqlite.migrate(self._db, _MIGRATIONS)
        # argon2id with the library's defaults (RFC 9106 low-memory profile)
        self._hasher = PasswordHasher()
        # verified against when the user is unknown, so timing does not reveal usernames
        self._dummy = self._hasher.hash("not-a-real-password")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- users -------------------------------------------------------------------
    def add_user(self, username: str, role: str, password: str, *, replace: bool = False) -> User:
        if not USERNAME.match(username):
            raise AccountError(
                f"username {username!r}: use 1-64 letters, digits, '.', '_', '@' or '-'"
            )
        if role not in ROLES:
            raise AccountError(f"role {role!r}: must be one of {', '.join(ROLES)}")
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise AccountError(f"password must be {MIN_PASSWORD}-{MAX_PASSWORD} characters")
        h = self._hasher.hash(password)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock:
            verb = "INSERT OR REPLACE" if replace else "INSERT"
            try:
                self._db.execute(
                    f"{verb} INTO users (username, role, hash, created) VALUES (?, ?, ?, ?)",
                    (username, role, h, now),
                )
            except sqlite3.IntegrityError:
                raise AccountError(f"user {username!r} already exists") from None
        return User(username, role)

    def remove_user(self, username: str) -> None:
        with self._lock:
            cur = self._db.execute("DELETE FROM users WHERE username = ?", (username,))
        if cur.rowcount == 0:
            raise AccountError(f"no user {username!r}")

    def users(self) -> list[User]:
        with self._lock:
            rows = self._db.execute("SELECT username, role FROM users ORDER BY username").fetchall()
        return [User(*r) for r in rows]

    def get_user(self, username: str) -> User | None:
        with self._lock:
            row = self._db.execute(
                "SELECT username, role FROM users WHERE username = ?", (username,)
            ).fetchone()
        return User(*row) if row else None

    def authenticate(self, username: str, password: str) -> User | None:
        """The user when the password matches, else None (same work either way)."""
        with self._lock:
            row = self._db.execute(
                "SELECT username, role, hash FROM users WHERE username = ?", (username,)
            ).fetchone()
        stored = row[2] if row else self._dummy
        try:
            ok = self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or row is None:
            return None
        return User(row[0], row[1])

    # -- audit -------------------------------------------------------------------
    def audit(
        self,
        user: User,
        action: str,
        target: str,
        *,
        detail: str = "",
        reason: str = "",
        at: datetime | None = None,
    ) -> int:
        """Record an action before it is carried out; returns its id for `audit_outcome`."""
        at = at or datetime.now(UTC)
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO audit (at, user, role, action, target, detail, reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    at.isoformat(timespec="milliseconds"),
                    user.username,
                    user.role,
                    action,
                    target,
                    detail,
                    reason,
                ),
            )
            return int(cur.lastrowid)

    def audit_outcome(self, entry_id: int, outcome: str) -> None:
        with self._lock:
            self._db.execute("UPDATE audit SET outcome = ? WHERE id = ?", (outcome, entry_id))

    def audit_entries(self, limit: int = 100) -> list[AuditEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, at, user, role, action, target, detail, reason, outcome"
                " FROM audit ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [AuditEntry(*r) for r in rows]

    def audit_entry(self, entry_id: int) -> AuditEntry | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, at, user, role, action, target, detail, reason, outcome"
                " FROM audit WHERE id = ?",
                (entry_id,),
            ).fetchone()
        return AuditEntry(*row) if row else None
