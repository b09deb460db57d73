"""Badges from registrations: tokens, one PNG per badge, the manifest, printable sheets;
and the revocation list that gates receive.

Library first: the command line (`sesame/cli_badges.py`) only turns these errors into one
line. Output is built in a temporary directory beside the target and renamed into place
at the end, so a failure or an interruption leaves nothing half-written.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sesame.badges import sheets as badge_sheets
from sesame.badges.registrations import Registration, RegistrationFile
from sesame.common import tokens, wire
from sesame.common.errors import BadgeError
from sesame.common.ids import BADGE_ID, MANIFEST_COLUMNS
from sesame.common.revocations import load_revocations, revoked_ids, save_revocations
from sesame.common.venue import Venue

MANIFEST = "manifest.csv"
SHEETS = "sheets.pdf"
PNG_SCALE = 8  # pixels per module in the per-badge PNG: ~520 px, plenty for a phone screen
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,15}$")


@dataclass(frozen=True)
class IssuedBadge:
    badge_id: str
    token: str
    registration: Registration


@dataclass(frozen=True)
class IssueResult:
    out: Path
    badges: tuple[IssuedBadge, ...]
    pages: int  # PDF pages, 0 without --pdf


def badge_ids(count: int, prefix: str = "B", start: int = 1) -> list[str]:
    """Deterministic ids in registration order: B000001, B000002, ..."""
    if not _PREFIX.match(prefix):
        raise BadgeError(f"prefix {prefix!r} must be a letter then up to 15 letters/digits/-/_")
    if start < 1:
        raise BadgeError("the first badge number must be 1 or more")
    ids = [f"{prefix}{n:06d}" for n in range(start, start + count)]
    if ids and len(ids[-1]) > 32:
        raise BadgeError("badge ids would be longer than 32 characters")
    return ids


def make_tokens(
    regs: Sequence[Registration], key: Ed25519PrivateKey, prefix: str = "B", start: int = 1
) -> list[IssuedBadge]:
    """Sign one token per registration. The token holds id, category, days, group size only."""
    out = []
    for badge_id, reg in zip(badge_ids(len(regs), prefix, start), regs, strict=True):
        claims = tokens.Claims(badge_id, reg.category, reg.days, reg.group_size)
        out.append(IssuedBadge(badge_id, tokens.sign(claims, key), reg))
    return out


def category_label(venue: Venue | None, category: str) -> str:
    if venue is not None and category in venue.categories:
        c = venue.categories[category]
        return c.label_fr if c.label_fr == c.label_en else f"{c.label_fr} / {c.label_en}"
    return category


def issue(
    registrations: RegistrationFile,
    key: Ed25519PrivateKey,
    out: str | Path,
    *,
    pdf: bool = False,
    venue: Venue | None = None,
    prefix: str = "B",
    start: int = 1,
    progress: Callable[[int], None] | None = None,
) -> IssueResult:
    """Issue every badge into `out`, which must not exist yet (or be empty).

    One pass: each code is encoded once, written as its PNG and, with `pdf`, drawn on the
    current sheet, so memory stays at one page however large the batch. `progress(n)` is
    called with n=1 per badge done.
    """
    target = Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BadgeError(f"{target} already exists and is not empty; choose a new directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    issued = make_tokens(registrations.rows, key, prefix, start)
    tick = progress or (lambda n: None)

    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        png_dir = tmp / "png"
        png_dir.mkdir()
        items = _badges_with_pngs(issued, png_dir, venue, tick)
        pages = 0
        if pdf:
            pages = badge_sheets.write_sheets(tmp / SHEETS, items)
        else:
            for _ in items:
                pass
        write_manifest(tmp / MANIFEST, issued, registrations.extra_columns)
        os.sync()  # contents on disk before the rename makes them visible
        os.rename(tmp, target)  # replaces an empty directory; fails on a non-empty one
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return IssueResult(target, tuple(issued), pages)


def _badges_with_pngs(
    issued: Iterable[IssuedBadge], png_dir: Path, venue: Venue | None, tick: Callable[[int], None]
) -> Iterator[badge_sheets.SheetBadge]:
    """Write each badge's PNG, then hand it on for the sheets with its encoded code."""
    for b in issued:
        matrix = write_png(b.token, png_dir / f"{b.badge_id}.png")
        reg = b.registration
        label = category_label(venue, reg.category)
        if reg.group_size > 1:
            label = f"{label} ×{reg.group_size}"
        yield badge_sheets.SheetBadge(b.badge_id, b.token, reg.name, label, matrix)
        tick(1)


def write_png(token: str, path: Path) -> np.ndarray:
    """The badge code alone, with its quiet zone: what a phone shows or a gate scans.
    Returns the code's modules so the sheets need not encode it again."""
    matrix = badge_sheets.qr_matrix(token)
    badge_sheets.matrix_image(matrix, PNG_SCALE).save(path, format="PNG", compress_level=3)
    return matrix


def write_manifest(path: Path, issued: Sequence[IssuedBadge], extra: Sequence[str]) -> None:
    """The badge registry the counter imports: one row per badge, extra CSV columns kept."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow([*MANIFEST_COLUMNS, *extra])
        for b in issued:
            r = b.registration
            w.writerow(
                [
                    b.badge_id,
                    b.token,
                    r.name,
                    r.category,
                    r.days_text(),
                    r.group_size,
                    r.organisation,
                    r.department,
                    *(r.extra.get(c, "") for c in extra),
                ]
            )


def read_manifest(path: str | Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def qr_facts(token: str, printed_mm: float = 25.0) -> dict:
    """QR version, modules per side and module size when the code (with its 4-module quiet
    zone) is printed `printed_mm` wide: what decides whether a lane's scanner reads it."""
    modules = len(badge_sheets.qr_matrix(token))
    return {
        "version": (modules - 17) // 4,
        "error": "M",
        "modules": modules,
        "module_mm": round(printed_mm / (modules + 8), 3),
        "token_chars": len(token),
    }


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- revocations -------------------------------------------------------------------------
# Reading and writing the list: `sesame.common.revocations` (the gate reads it too).
__all__ = ["BadgeError", "MANIFEST_COLUMNS", "load_revocations", "revoked_ids", "save_revocations"]


def revoke(
    path: str | Path, badge_ids: Iterable[str], now: datetime | None = None
) -> tuple[wire.Revocations, list[str]]:
    """Add ids to the list (idempotent); returns the full list and the ids that were new."""
    ids = list(badge_ids)
    for b in ids:
        if not BADGE_ID.match(b):
            raise BadgeError(f"{b!r} is not a badge id (letters, digits, - or _, up to 32)")
    current = load_revocations(path)
    known = set(current.badges)
    added = [b for b in dict.fromkeys(ids) if b not in known]
    if len(known) + len(added) > wire.MAX_REVOKED:
        raise BadgeError(f"more than {wire.MAX_REVOKED:,} revoked badges")
    revs = wire.Revocations(badges=tuple(sorted(known | set(added))), ts=now or datetime.now(UTC))
    if added or not Path(path).exists():
        save_revocations(path, revs)
    else:
        revs = current
    return revs, added


def claims_json(claims: tokens.Claims) -> str:
    return json.dumps(claims.to_json(), ensure_ascii=False)
