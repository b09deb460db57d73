"""Issue the population's badges with the real badge code, bad ones included.

Genuine badges are signed with the venue key (`sesame.common.tokens.sign`). The bad ones are made
the way they turn up at a gate: signed by another key (forged), a genuine token with its
payload altered (tampered), valid on another day, revoked, or a QR code that is no badge.
The manifest has the columns `sesame badges issue` writes, for the counter's registry.
"""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sesame.common.ids import MANIFEST_COLUMNS
from sesame.common.tokens import Claims, b64url_decode, b64url_encode, sign
from sesame.sim.model import Badge, Population


def tamper(token: str) -> str:
    """The same token with its payload altered (group size raised): the signature no longer fits."""
    prefix, payload, sig = token.split(".")
    body = json.loads(b64url_decode(payload))
    body["g"] = int(body.get("g", 1)) + 9
    return f"{prefix}.{b64url_encode(json.dumps(body, separators=(',', ':')).encode())}.{sig}"


def issue(pop: Population, key: Ed25519PrivateKey, event_days: list[date]) -> dict[str, str]:
    """badge id -> the text its QR code holds."""
    other = Ed25519PrivateKey.generate()  # a forger's key: well-formed, unknown to the gates
    tokens: dict[str, str] = {}
    for b in pop.badges:
        claims = Claims(b.id, b.category, b.days, b.group)
        if b.bad == "forged":
            tokens[b.id] = sign(claims, other)
        elif b.bad == "tampered":
            tokens[b.id] = tamper(sign(claims, key))
        elif b.bad == "wrong_day":
            tokens[b.id] = sign(Claims(b.id, b.category, (_other_day(b, event_days),)), key)
        elif b.bad == "garbage":
            tokens[b.id] = f"https://example.org/ticket/{b.id}"
        else:  # genuine, or revoked (a genuine token whose id is on the revocation list)
            tokens[b.id] = sign(claims, key)
    return tokens


def _other_day(b: Badge, event_days: list[date]) -> date:
    valid = set(b.days or ())
    for d in event_days:
        if d not in valid:
            return d
    return min(event_days) - timedelta(days=1)


def write_manifest(pop: Population, tokens: dict[str, str], path: Path) -> Path:
    """manifest.csv for the counter's badge registry (the genuine and revoked badges)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(MANIFEST_COLUMNS)
        for b in pop.badges:
            if b.bad in ("forged", "tampered", "garbage", "wrong_day"):
                continue  # never issued by the organiser
            days = "all" if b.days is None else ";".join(d.isoformat() for d in b.days)
            name = b.organisation if b.group > 1 else f"Visitor {b.id}"
            w.writerow(
                [b.id, tokens[b.id], name, b.category, days, b.group, b.organisation, b.department]
            )
    tmp.replace(path)
    return path
