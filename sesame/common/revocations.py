"""The revocation list on disk: read by the organiser's badge commands and by the gate's
scan command. Stored whole as `wire.Revocations`, the list whose shards gates receive on
`badges/revoked/<shard>` (`Revocations.shards()`), so what is on disk and what is published
cannot drift apart."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sesame.common import wire
from sesame.common.errors import BadgeError
from sesame.common.ids import BADGE_ID


def load_revocations(path: str | Path) -> wire.Revocations:
    p = Path(path)
    if not p.exists():
        return wire.Revocations(badges=())
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise BadgeError(f"{p}: {e.strerror or e}") from None
    parsed = wire.parse_revocations(raw)
    if not parsed:
        raise BadgeError(f"{p}: not a revocation list ({parsed.reason})")
    return parsed


def revoked_ids(path: str | Path) -> frozenset[str]:
    """Badge ids from a revocation file: the JSON list `sesame badges revoke` keeps, or plain
    text with one id per line (# comments allowed). Raises BadgeError on anything else, so a
    list in the wrong shape is never read as "nothing revoked"."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise BadgeError(f"{p}: {e.strerror or e}") from None
    if raw.lstrip()[:1] == b"{":
        return frozenset(load_revocations(p).badges)
    try:
        lines = raw.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise BadgeError(f"{p}: not UTF-8 text") from None
    ids = []
    for n, line in enumerate(lines, 1):
        b = line.strip()
        if not b or b.startswith("#"):
            continue
        if not BADGE_ID.match(b):
            shown = b if len(b) <= 40 else b[:40] + "…"  # the error stays one short line
            raise BadgeError(f"{p}:{n}: {shown!r} is not a badge id")
        ids.append(b)
    return frozenset(ids)


def save_revocations(path: str | Path, revs: wire.Revocations) -> None:
    """Atomic: a temporary file beside the list, fsynced, then renamed over it."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".partial", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(revs.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        dfd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
