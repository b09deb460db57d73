"""`sesame badges keygen|issue|verify|revoke`: thin command line over sesame.badges."""

from __future__ import annotations

import argparse
import os
import sys
import time

from sesame.common.cli_venue import DEFAULT_VENUE
from sesame.common.errors import CliError

DEFAULT_KEY_DIR = "keys"
DEFAULT_PUBKEY = f"{DEFAULT_KEY_DIR}/badge-signing.pub"
DEFAULT_REVOKED = "revoked.json"
PROGRESS_FROM = 200  # badges; smaller batches finish before a bar is worth drawing


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("badges", help="issue, verify and revoke signed QR badges")
    bsub = p.add_subparsers(dest="badges_command", metavar="ACTION", parser_class=type(p))
    bsub.required = True

    k = bsub.add_parser("keygen", help="create the Ed25519 badge-signing key pair")
    k.add_argument("--out", default=DEFAULT_KEY_DIR, help="directory for the keys (default: keys)")
    k.set_defaults(func=_keygen)

    i = bsub.add_parser(
        "issue",
        help="issue badges from a registration CSV",
        description="Sign one badge per registration row and write one PNG per badge, "
        "manifest.csv and, with --pdf, printable A4 sheets. Every row is checked first: "
        "a bad row is reported as FILE:LINE and nothing is written.",
    )
    i.add_argument("--key", required=True, help="private key (badge-signing.key)")
    i.add_argument("--registrations", required=True, metavar="FILE.csv", help="registration CSV")
    i.add_argument("--out", required=True, metavar="DIR", help="new directory for the badges")
    i.add_argument("--pdf", action="store_true", help="also write printable A4 sheets")
    i.add_argument("--venue", help="venue file: check categories and days against it (recommended)")
    i.add_argument("--prefix", default="B", help="badge id prefix (default: B → B000001)")
    i.add_argument(
        "--start", type=int, default=1, help="first badge number (to continue a numbering)"
    )
    i.set_defaults(func=_issue)

    v = bsub.add_parser(
        "verify",
        help="check a badge token's format and signature",
        description="Exit 0 and print the claims as one JSON object, or exit 1 and print "
        "the reason code. Validity days are the gate's business, not checked here.",
    )
    v.add_argument("token", nargs="?", help="the token text (SES1....)")
    v.add_argument("--image", help="read the token from a QR code in this image instead")
    v.add_argument(
        "--pubkey",
        action="append",
        help=f"public key file, repeatable (default: {DEFAULT_PUBKEY})",
    )
    v.set_defaults(func=_verify)

    r = bsub.add_parser(
        "revoke",
        help="add badge ids to the revocation list gates receive",
        description="Adds the ids to the local list (JSON) and, with --broker or "
        "--credentials, publishes the full list retained on badges/revoked/<shard> (128 "
        "shards). With a broker and no ids, re-publishes the list.",
    )
    r.add_argument("ids", nargs="*", metavar="ID", help="badge ids, e.g. B000123")
    r.add_argument(
        "--list", default=DEFAULT_REVOKED, help=f"revocation list file (default: {DEFAULT_REVOKED})"
    )
    r.add_argument("--broker", help="broker URL (mqtt://host:port) or credential file")
    r.add_argument(
        "--credentials",
        help="credential file (JSON) from `sesame broker setup` (its broker is used when "
        "--broker is not given)",
    )
    r.add_argument(
        "--venue", default=DEFAULT_VENUE, help="venue file (for the topic root; default: the "
        "reference venue shipped with Sesame)"
    )
    r.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the broker (default 10)"
    )
    r.set_defaults(func=_revoke)


def _keygen(args: argparse.Namespace) -> int:
    from sesame.common import tokens

    try:
        priv, pub = tokens.generate_keypair(args.out)
    except FileExistsError as e:
        if e.errno is not None:  # from mkdir: --out names a file
            raise CliError(f"{args.out}: exists and is not a directory") from None
        raise CliError(str(e)) from None
    except OSError as e:
        raise CliError(f"{args.out}: {e.strerror or e}") from None
    kid = tokens.key_id(tokens.load_private_key(priv).public_key())
    print(f"private key {priv} (mode 0600: keep it with the organiser)")
    print(f"public key  {pub} (copy it to every gate); key id {kid}")
    return 0


def _issue(args: argparse.Namespace) -> int:
    from sesame.badges import issue as badges
    from sesame.badges.registrations import RegistrationError, read_registrations
    from sesame.common import tokens
    from sesame.common.cli_venue import load_or_fail

    venue = load_or_fail(args.venue) if args.venue else None
    try:
        key = tokens.load_private_key(args.key)
    except OSError as e:
        raise CliError(f"{args.key}: {e.strerror or e}") from None
    except ValueError as e:
        raise CliError(f"{args.key}: not an Ed25519 private key ({e})") from None
    try:
        regs = read_registrations(args.registrations, venue)
    except RegistrationError as e:
        raise CliError(str(e)) from None

    n = len(regs.rows)
    total = n
    try:
        if n >= PROGRESS_FROM:
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task(f"issuing {n:,} badges", total=total)
                result = badges.issue(
                    regs, key, args.out, pdf=args.pdf, venue=venue, prefix=args.prefix,
                    start=args.start, progress=lambda k: bar.advance(task, k),
                )  # fmt: skip
        else:
            result = badges.issue(
                regs, key, args.out, pdf=args.pdf, venue=venue, prefix=args.prefix,
                start=args.start,
            )  # fmt: skip
    except badges.BadgeError as e:
        raise CliError(str(e)) from None
    except OSError as e:
        raise CliError(f"{args.out}: {e.strerror or e}; nothing written") from None

    first, last = result.badges[0].badge_id, result.badges[-1].badge_id
    longest = max((b.token for b in result.badges), key=len)
    facts = badges.qr_facts(longest)
    print(f"issued {n:,} badges {first}…{last} into {result.out}/")
    print(f"  {badges.MANIFEST} (the counter's badge registry), png/<badge_id>.png")
    if args.pdf:
        print(f"  {badges.SHEETS}: {result.pages} A4 page(s)")
    print(
        f"  largest code: QR version {facts['version']}, {facts['modules']} modules; "
        f"printed 25 mm wide a module is {facts['module_mm']} mm"
    )
    if venue is None:
        print("  note: categories and days were not checked against a venue (use --venue)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from sesame.badges import issue as badges
    from sesame.common import tokens

    if (args.token is None) == (args.image is None):
        raise CliError("give either a TOKEN or --image FILE")
    if args.token and not args.token.startswith("SES1.") and os.path.isfile(args.token):
        raise CliError(f"{args.token} is a file, not a token: use --image {args.token}")
    paths = args.pubkey or [DEFAULT_PUBKEY]
    try:
        keys = tokens.load_public_keys(*paths)
    except OSError as e:
        raise CliError(f"{e.filename or paths[0]}: {e.strerror or e} (see --pubkey)") from None
    except ValueError as e:
        raise CliError(f"not a badge key: {e}") from None

    text = args.token if args.image is None else _read_image(args.image)
    if text is None:
        return _deny("MALFORMED", "no QR code found in the image")
    try:
        claims = tokens.verify(text, keys)
    except tokens.TokenError as e:
        return _deny(str(e.reason), e.detail)
    print(badges.claims_json(claims))
    return 0


def _deny(reason: str, detail: str) -> int:
    print(reason)
    print(f"sesame badges verify: {reason}: {detail}", file=sys.stderr)
    return 1


def _read_image(path: str) -> str | None:
    """The text of the first QR code in the image, or None when there is none."""
    from sesame.common.qr import decode_file

    try:
        return decode_file(path)
    except OSError as e:
        raise CliError(f"{path}: {e.strerror or e}") from None
    except ValueError as e:
        raise CliError(f"{path}: {e}") from None


def _revoke(args: argparse.Namespace) -> int:
    from sesame.badges import issue as badges

    publish = bool(args.broker or args.credentials)  # a credential file names its broker
    if not args.ids and not publish:
        raise CliError("give badge ids to revoke (or --broker to re-publish the list)")
    if publish:
        # Usage mistakes (a bad --venue, URL or credential file) are refused before the
        # list changes, so "saved but not published" only ever means the broker's side.
        from sesame.common.cli_venue import load_or_fail
        from sesame.common.mqtt_url import parse_broker_url

        load_or_fail(args.venue)
        try:
            parse_broker_url(args.broker, args.credentials)
        except ValueError as e:
            raise CliError(str(e)) from None
        from sesame.common.mqtt_url import warn_password_in_url

        warn_password_in_url(args.broker)
    try:
        revs, added = badges.revoke(args.list, args.ids)
    except badges.BadgeError as e:
        raise CliError(str(e)) from None
    except OSError as e:
        raise CliError(f"{args.list}: {e.strerror or e}") from None
    already = len(args.ids) - len(added)
    print(
        f"{len(added)} badge(s) revoked"
        + (f", {already} already on the list" if already else "")
        + f"; {args.list} lists {len(revs.badges):,}"
    )
    if publish:
        _publish_revocations(args, revs)
    return 0


def _publish_revocations(args: argparse.Namespace, revs) -> None:
    from sesame.common import mqtt, wire
    from sesame.common.cli_venue import load_or_fail

    venue = load_or_fail(args.venue)
    topics = wire.Topics(venue.id)
    try:
        shards = revs.messages(topics)
    except ValueError as e:
        raise CliError(f"list saved in {args.list} but not published: {e}", 1) from None
    try:
        conn = mqtt.connect(
            args.broker,
            f"sesame-revoke-{os.getpid()}",
            credentials=args.credentials,
            clean_start=True,
            session_expiry=0,
            timeout=args.timeout,
        )
    except (ValueError, mqtt.ConnectRefused, mqtt.ConnectTimeout) as e:
        raise CliError(f"list saved in {args.list} but not published: {e}", 1) from None
    try:
        # every shard, the empty ones too: each replaces what the gates hold of it
        sent = [conn.publish(topic, payload, qos=1, retain=True) for topic, payload in shards]
        deadline = time.monotonic() + args.timeout
        for info in sent:
            try:
                info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                pass  # reported below as not published
        mids = {info.mid for info in sent}
        refused = [code for mid, code in conn.refusals if mid in mids]
        missing = [info for info in sent if not info.is_published()]
    finally:
        conn.close()
    if missing or refused:
        why = f"refused by the broker (reason code {refused[0]})" if refused else "no PUBACK"
        raise CliError(f"list saved in {args.list} but not published to {topics.revoked()}: "
                       f"{why} for {max(len(missing), len(refused))} of {len(shards)} shards",
                       1)  # fmt: skip
    print(f"published {len(revs.badges):,} revoked id(s), retained, to {topics.revoked()}"
          f" ({len(shards)} shards)")  # fmt: skip
