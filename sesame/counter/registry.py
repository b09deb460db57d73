"""The badge registry: `manifest.csv` from `sesame badges issue`, imported into the database.

Kept: badge id, token, category, days, group size, organisation, département and any extra
columns (as JSON). Not kept: the holder's name (the counter needs no personal data).
Importing the same manifest again updates the rows; nothing is half-imported: the whole
file is checked first, then written in one transaction.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sesame.common.ids import BADGE_ID, MANIFEST_COLUMNS, MAX_GROUP
from sesame.counter.store import CounterStore, utcnow

REQUIRED = ("badge_id", "token")
PERSONAL = ("name",)
KNOWN = tuple(c for c in MANIFEST_COLUMNS if c not in PERSONAL)


class ManifestError(ValueError):
    """A refused manifest: file, line and what is wrong, on one line."""


def read(path: str | Path) -> list[dict]:
    p = Path(path)
    try:
        f = open(p, encoding="utf-8-sig", newline="")
    except OSError as e:
        raise ManifestError(f"{p}: {e.strerror}") from None
    rows = []
    with f:
        try:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            for col in REQUIRED:
                if col not in header:
                    raise ManifestError(f"{p}:1: missing column {col!r}")
            seen: set[str] = set()
            for rec in reader:
                line = reader.line_num
                if None in rec:
                    raise ManifestError(f"{p}:{line}: more cells than columns")
                rec = {k: (v or "").strip() for k, v in rec.items()}
                bid = rec["badge_id"]
                if not BADGE_ID.match(bid):
                    raise ManifestError(f"{p}:{line}: badge_id {bid!r} is not a valid id")
                if bid in seen:
                    raise ManifestError(f"{p}:{line}: badge_id {bid!r} appears twice")
                seen.add(bid)
                gs = rec.get("group_size") or "1"
                if not gs.isdigit() or not 1 <= int(gs) <= MAX_GROUP:
                    raise ManifestError(f"{p}:{line}: group_size {gs!r} must be 1-{MAX_GROUP}")
                extra = {k: v for k, v in rec.items() if k not in KNOWN and k not in PERSONAL}
                rows.append(
                    {
                        "badge_id": bid,
                        "token": rec["token"],
                        "category": rec.get("category") or None,
                        "days": rec.get("days") or None,
                        "group_size": int(gs),
                        "organisation": rec.get("organisation") or None,
                        "department": rec.get("department") or None,
                        "extra": json.dumps(extra, ensure_ascii=False),
                    }
                )
        except UnicodeDecodeError:
            raise ManifestError(f"{p}: not UTF-8 text") from None
        except csv.Error as e:
            raise ManifestError(f"{p}: CSV syntax: {e}") from None
    return rows


def import_manifest(db_path: str | Path, manifest: str | Path) -> int:
    """Check then import a manifest; returns the number of badges written."""
    rows = read(manifest)
    now = utcnow()
    for r in rows:
        r["imported_at"] = now
    store = CounterStore(db_path)
    try:
        with store.transaction():  # all of the manifest or nothing
            store.upsert_badges(rows)
            store.audit("badges_imported", who=None, zone=None,
                        detail={"file": str(manifest), "badges": len(rows)})  # fmt: skip
    finally:
        store.close()
    return len(rows)
