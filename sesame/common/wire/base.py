"""What every message of the wire contract shares: the version, the limits, the
parse helpers that make every `parse_*` total, and `dumps`/`iso` for writing."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

VERSION = 1
MAX_PAYLOAD = 16 * 1024  # bytes; a genuine message is a few hundred
ZONE_STATES = ("open", "near_full", "full", "closed", "evacuating")
_GATE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_EPOCH = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_REASON_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,39}$")
MAX_SEQ = 2**53  # JSON-safe integer range
# Timestamps a gate or counter clock can plausibly read (1970 included: a board without a
# real-time clock boots there), far enough from datetime's limits for any time zone.
TS_MIN = datetime(1900, 1, 1, tzinfo=UTC)
TS_MAX = datetime(2900, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ParseError:
    """Why a payload was refused; stored with the payload in the counter's quarantine."""

    reason: str

    def __bool__(self) -> bool:  # so `if not parsed:` reads naturally
        return False


# -- helpers ---------------------------------------------------------------------


def _load(payload: bytes | str, limit: int = MAX_PAYLOAD) -> dict | ParseError:
    if isinstance(payload, str):
        payload = payload.encode("utf-8", "surrogatepass")
    if not isinstance(payload, bytes | bytearray):
        return ParseError("payload is not bytes")
    if len(payload) > limit:
        return ParseError(f"payload too large ({len(payload)} bytes > {limit})")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError:
        return ParseError("payload is not valid UTF-8")
    try:
        obj = _DECODER.decode(text)
    except (ValueError, RecursionError):
        return ParseError("payload is not JSON")
    if not isinstance(obj, dict):
        return ParseError("payload is not a JSON object")
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


# One decoder for all messages: json.loads with arguments builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


class _Bad(Exception):
    pass


def _get(obj: dict, key: str, typ: type | tuple, *, optional: bool = False) -> Any:
    if key not in obj or obj[key] is None:
        if optional:
            return None
        raise _Bad(f"missing field {key!r}")
    v = obj[key]
    # bool is an int in Python; never accept it where a number is expected
    if isinstance(v, bool) and bool not in (typ if isinstance(typ, tuple) else (typ,)):
        raise _Bad(f"field {key!r} has the wrong type")
    if not isinstance(v, typ):
        raise _Bad(f"field {key!r} has the wrong type")
    if isinstance(v, float) and not math.isfinite(v):
        raise _Bad(f"field {key!r} is not a finite number")
    return v


def _ts(obj: dict, key: str, *, optional: bool = False) -> datetime | None:
    s = _get(obj, key, str, optional=optional)
    if s is None:
        return None
    if len(s) > 40:
        raise _Bad(f"field {key!r} is not a timestamp")
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        raise _Bad(f"field {key!r} is not an ISO 8601 timestamp") from None
    if t.tzinfo is None:
        raise _Bad(f"field {key!r} has no UTC offset")
    # Years 1 and 9999 parse, but their instant overflows once moved to UTC or to the
    # venue's zone (the counter's day and hour): refuse what no clock can read.
    try:
        utc = t.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not TS_MIN <= utc < TS_MAX:
        raise _Bad(f"field {key!r} is out of range")
    return t


def _version(obj: dict) -> None:
    v = obj.get("v", VERSION)
    if type(v) is not int or v != VERSION:
        raise _Bad(f"unsupported version {v!r}")


def _ident(obj: dict, key: str, pattern: re.Pattern, *, optional: bool = False) -> str | None:
    s = _get(obj, key, str, optional=optional)
    if s is not None and not pattern.match(s):
        raise _Bad(f"field {key!r} is not a valid id")
    return s


def _count(obj: dict, key: str, lo: int = 0, hi: int = MAX_SEQ, optional: bool = False) -> Any:
    n = _get(obj, key, int, optional=optional)
    if n is not None and not lo <= n <= hi:
        raise _Bad(f"field {key!r} is out of range")
    return n


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


T = TypeVar("T")


def _total(fn=None, *, limit: int = MAX_PAYLOAD):
    """Wrap a parser so that nothing escapes it but a message or a ParseError."""
    if fn is None:
        return lambda f: _total(f, limit=limit)

    def wrapper(payload: bytes | str):
        obj = _load(payload, limit)
        if isinstance(obj, ParseError):
            return obj
        try:
            return fn(obj)
        except _Bad as e:
            return ParseError(str(e))
        except (ValueError, TypeError, KeyError, OverflowError) as e:
            return ParseError(f"invalid message: {e}")

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper
