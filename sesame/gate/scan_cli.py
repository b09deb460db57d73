"""`sesame gate scan --image FILE`: the whole pipeline on one image, one JSON line out.

    {"text": <first decoded text or null>, "codes": [every text found], "decoder": "thorough",
     "decision": "GRANTED"|"DENIED"|null, "reason": <code or null>,
     "message": {"fr": ..., "en": ...} | null, "badge": ..., "category": ..., "passages": n}

Without --venue it only decodes (decision null). With --venue, --gate and --pubkey it decides as
the lane would with a fresh memory, open zones, normal mode and no lease limit: what the badge
itself allows at that time (--at, default now).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from sesame.common.errors import CliError
from sesame.common.states import VenueMode

# The decoder names, repeated here so `sesame --help` does not import OpenCV; a test checks
# they match gate.decoders.DECODERS.
DECODER_NAMES = ("zxing", "pyzbar", "combined", "thorough")
SCAN_DEFAULT_DECODER = "thorough"  # one image: every extra pass is affordable


def register(gsub: argparse._SubParsersAction) -> None:
    p = gsub.add_parser(
        "scan",
        help="decode (and decide) one image of a badge; prints one JSON line",
        description="Decode the QR code in one image and, with --venue/--gate/--pubkey, "
        "decide as the lane would. Prints one JSON object on one line.",
    )
    p.add_argument("--image", required=True, metavar="FILE", help="PNG, JPEG or WebP image")
    p.add_argument("--venue", metavar="TOML", help="venue file; with --gate, also decide")
    p.add_argument("--gate", metavar="ID", help="gate lane id in the venue")
    p.add_argument(
        "--pubkey",
        action="append",
        default=[],
        metavar="FILE",
        help="badge-signing public key (PEM); repeat for several keys",
    )
    p.add_argument(
        "--revoked",
        metavar="FILE",
        help="revoked.json (sesame badges revoke) or one id per line",
    )
    p.add_argument(
        "--at",
        metavar="ISO-TIME",
        help="decide at this time (e.g. 2018-11-22T10:00; no offset = venue local time)",
    )
    p.add_argument(
        "--decoder",
        default=SCAN_DEFAULT_DECODER,
        choices=DECODER_NAMES,
        help=f"QR decoder (default {SCAN_DEFAULT_DECODER})",
    )
    p.set_defaults(func=_scan)


def _scan(args: argparse.Namespace) -> int:
    from sesame.gate.decoders import DecoderUnavailable, require

    deciding = args.venue is not None
    if deciding and not (args.gate and args.pubkey):
        raise CliError("--venue needs --gate and --pubkey to decide")
    if not deciding and (args.gate or args.at or args.revoked):
        raise CliError("--gate, --at and --revoked need --venue")
    try:
        state = require(args.decoder)
    except DecoderUnavailable as e:
        raise CliError(str(e)) from None
    if state.without:  # it still runs, but reads less than it would: say so, once
        print(f"sesame gate scan: warning: {state.label()}: {state.reason()}", file=sys.stderr)
    from sesame.gate.decode import ImageError, decode_file

    try:
        codes = decode_file(args.image, args.decoder)
    except ImageError as e:
        raise CliError(str(e)) from None
    text = codes[0] if codes else None
    out: dict[str, Any] = {"text": text, "codes": codes, "decoder": args.decoder}
    out.update(_decide(args, text) if deciding else {"decision": None, "reason": None})
    print(json.dumps(out))  # ASCII: no U+2028 or the like can split the line
    return 0


def _decide(args: argparse.Namespace, text: str | None) -> dict[str, Any]:
    from sesame.common.cli_venue import load_or_fail
    from sesame.common.decision import MemoryDict, decide
    from sesame.common.tokens import load_public_keys

    venue = load_or_fail(args.venue)
    gate = venue.gates.get(args.gate)
    if gate is None:
        raise CliError(f"{args.venue}: no gate {args.gate!r} (have: {', '.join(venue.gates)})")
    try:
        keys = load_public_keys(*args.pubkey)
    except (OSError, ValueError) as e:
        raise CliError(f"public key: {e}") from None
    revoked: frozenset[str] = frozenset()
    if args.revoked:
        from sesame.common.errors import BadgeError
        from sesame.common.revocations import revoked_ids

        try:  # the JSON list `sesame badges revoke` keeps, or one id per line
            revoked = revoked_ids(args.revoked)
        except BadgeError as e:
            raise CliError(str(e)) from None
    now = _parse_at(args.at, venue.tz) if args.at else datetime.now(venue.tz)  # shown as local
    d = decide(
        text,
        venue=venue,
        gate=gate,
        keys=keys,
        revoked=revoked,
        zone_states={},
        venue_mode=VenueMode.NORMAL,
        lease_left=None,
        memory=MemoryDict(),
        now=now,
    )
    return {
        "decision": d.code,
        "reason": None if d.reason is None else str(d.reason),
        "message": {"fr": d.message_fr, "en": d.message_en},
        "badge": d.claims.badge if d.claims else None,
        "category": d.claims.category if d.claims else None,
        "passages": d.passages,
        "gate": gate.id,
        "at": now.isoformat(),
    }


def _parse_at(value: str, tz: Any) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"--at {value!r}: not an ISO time like 2018-11-22T10:00") from None
    return at.replace(tzinfo=tz) if at.tzinfo is None else at
