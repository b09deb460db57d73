"""Badge tokens: `SES1.<base64url payload>.<base64url Ed25519 signature>`.

The payload is compact JSON with short keys and nothing personal:
  {"k": key id, "b": badge id, "c": category, "d": "*" or ["2018-11-22", ...], "g": group size}
The signature covers the ASCII bytes `SES1.<payload b64>`. Gates verify offline with the
venue's public key(s), found by key id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sesame.common.ids import BADGE_ID, MAX_GROUP
from sesame.common.reasons import Reason

PREFIX = "SES1"
MAX_TOKEN_LEN = 600  # a genuine token is ~170 characters; anything far longer is garbage
_B64 = re.compile(r"^[A-Za-z0-9_-]+$")
_CATEGORY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
PRIVATE_NAME, PUBLIC_NAME = "badge-signing.key", "badge-signing.pub"


class TokenError(Exception):
    """A token that cannot be trusted, with the reason code shown at the gate."""

    def __init__(self, reason: Reason, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class Claims:
    badge: str
    category: str
    days: tuple[date, ...] | None  # None: valid every day of the event
    group: int = 1
    key_id: str = ""

    def valid_on(self, d: date) -> bool:
        return self.days is None or d in self.days

    def to_json(self) -> dict:
        return {
            "badge": self.badge,
            "category": self.category,
            "days": "all" if self.days is None else [d.isoformat() for d in self.days],
            "group": self.group,
            "key_id": self.key_id,
        }


def b64url_encode(b: bytes) -> str:
    """Unpadded base64url, as in the token."""
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def b64url_decode(s: str) -> bytes:
    if not _B64.match(s):
        raise ValueError("not base64url")
    raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    # Only the canonical spelling: the decoder ignores a last character's unused bits, so
    # without this one token would have several valid spellings.
    if b64url_encode(raw) != s:
        raise ValueError("not canonical base64url")
    return raw


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return b64url_encode(hashlib.sha256(raw).digest()[:6])


def sign(claims: Claims, private_key: Ed25519PrivateKey) -> str:
    if not BADGE_ID.match(claims.badge):
        raise ValueError(f"badge id {claims.badge!r} must be 1-32 letters, digits, - or _")
    if not _CATEGORY.match(claims.category):
        raise ValueError(f"category {claims.category!r} is not a valid id")
    if not 1 <= claims.group <= MAX_GROUP:
        raise ValueError(f"group size must be between 1 and {MAX_GROUP}")
    body = {
        "k": key_id(private_key.public_key()),
        "b": claims.badge,
        "c": claims.category,
        "d": "*" if claims.days is None else [d.isoformat() for d in claims.days],
        "g": claims.group,
    }
    payload = b64url_encode(json.dumps(body, separators=(",", ":")).encode())
    signed = f"{PREFIX}.{payload}"
    return f"{signed}.{b64url_encode(private_key.sign(signed.encode('ascii')))}"


def verify(token: str, keys: Mapping[str, Ed25519PublicKey]) -> Claims:
    """Check format and signature; return the claims or raise TokenError."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LEN:
        raise TokenError(Reason.MALFORMED, "not a badge token (too long)")
    token = token.strip()
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise TokenError(Reason.MALFORMED, "not a Sesame badge token")
    try:
        payload_raw, sig = b64url_decode(parts[1]), b64url_decode(parts[2])
        body = json.loads(payload_raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise TokenError(Reason.MALFORMED, "token is not valid base64url JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("k"), str):
        raise TokenError(Reason.MALFORMED, "token payload has no key id")
    pub = keys.get(body["k"])
    if pub is None:
        raise TokenError(Reason.UNKNOWN_KEY, f"signed by unknown key {body['k']!r}")
    if len(sig) != 64:
        raise TokenError(Reason.BAD_SIGNATURE, "signature has the wrong length")
    try:
        pub.verify(sig, f"{parts[0]}.{parts[1]}".encode("ascii"))
    except InvalidSignature:
        raise TokenError(Reason.BAD_SIGNATURE, "signature does not match") from None
    # Signed by us, so well-formed unless the issuer is broken; still check every field.
    try:
        return _claims(body)
    except (KeyError, TypeError, ValueError) as e:
        raise TokenError(Reason.MALFORMED, f"bad claims: {e}") from None


def _claims(body: dict) -> Claims:
    badge, cat, days, group = body["b"], body["c"], body["d"], body.get("g", 1)
    if not isinstance(badge, str) or not BADGE_ID.match(badge):
        raise ValueError("badge id")
    if not isinstance(cat, str) or not _CATEGORY.match(cat):
        raise ValueError("category")
    if type(group) is not int or not 1 <= group <= MAX_GROUP:
        raise ValueError("group size")
    if days == "*":
        parsed = None
    elif isinstance(days, list) and days and all(isinstance(d, str) for d in days):
        parsed = tuple(date.fromisoformat(d) for d in days)
    else:
        raise ValueError("days")
    return Claims(badge, cat, parsed, group, body["k"])


# -- key files ------------------------------------------------------------------


def generate_keypair(out_dir: str | Path) -> tuple[Path, Path]:
    """Write a new key pair; the private key is created 0600 and never overwritten."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    priv_path, pub_path = out / PRIVATE_NAME, out / PUBLIC_NAME
    if priv_path.exists() or pub_path.exists():
        raise FileExistsError(f"{priv_path} already exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv_path, pub_path


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def load_public_keys(
    *paths: str | Path, public_only: bool = False
) -> dict[str, Ed25519PublicKey]:
    """Key ring {key id: public key} from PEM files (public, or private on the organiser's
    machine). `public_only` refuses a private key: on a lane it lets whoever takes the board
    sign badges."""
    ring: dict[str, Ed25519PublicKey] = {}
    for p in paths:
        data = Path(p).read_bytes()
        if b"PRIVATE KEY" in data:
            if public_only:
                raise ValueError(f"{p} is the private signing key: install the .pub file")
            pub = load_private_key(p).public_key()
        else:
            loaded = serialization.load_pem_public_key(data)
            if not isinstance(loaded, Ed25519PublicKey):
                raise ValueError(f"{p}: not an Ed25519 public key")
            pub = loaded
        ring[key_id(pub)] = pub
    return ring
