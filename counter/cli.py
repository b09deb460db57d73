"""`sesame counter run|import-badges` and `sesame export attendance`: thin wrappers."""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from pathlib import Path

from sesame.cli_config import DEFAULT_VENUE, load_or_fail
from sesame.errors import CliError

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("counter", help="the central counter: ingest, occupancy, leases")
    csub = p.add_subparsers(dest="counter_command", metavar="ACTION", parser_class=type(p))
    csub.required = True
    run = csub.add_parser("run", help="run the counter against a broker until interrupted")
    run.add_argument("--venue", default=DEFAULT_VENUE, help="venue TOML file")
    run.add_argument("--db", default="sesame.db", help="SQLite database (created if missing)")
    run.add_argument("--broker", help="broker URL, e.g. mqtt://counter:PW@host:1883")
    run.add_argument("--credentials", help="credential file (JSON) from `sesame broker setup`")
    run.add_argument(
        "--client-id",
        help="MQTT client id (default sesame-counter-<venue>-<tag derived from the account>)",
    )
    run.set_defaults(func=_run)
    imp = csub.add_parser("import-badges", help="import manifest.csv into the badge registry")
    imp.add_argument("--db", default="sesame.db", help="SQLite database")
    imp.add_argument("--manifest", required=True, help="manifest.csv from `sesame badges issue`")
    imp.set_defaults(func=_import)

    e = sub.add_parser("export", help="export figures from the counter's database")
    esub = e.add_subparsers(dest="export_command", metavar="WHAT", parser_class=type(e))
    esub.required = True
    att = esub.add_parser("attendance", help="daily attendance: visitors, entries, peaks")
    att.add_argument("--db", default="sesame.db", help="the counter's SQLite database")
    att.add_argument("--venue", default=DEFAULT_VENUE, help="venue TOML file")
    att.add_argument("--day", help="one event day (YYYY-MM-DD); default every day")
    att.add_argument("--format", choices=("csv", "xlsx", "json"), default="csv")
    att.add_argument("--out", required=True, help="output file ('-' for standard output)")
    att.add_argument("--plot", help="also write a PNG of occupancy through --day (or day 1)")
    att.set_defaults(func=_export)


def _run(args: argparse.Namespace) -> int:
    from counter.service import Counter
    from sesame import mqtt

    venue = load_or_fail(args.venue)
    if not args.broker and not args.credentials:
        raise CliError("--broker URL or --credentials FILE is required")
    try:
        counter = Counter(venue, args.db, args.broker, args.credentials, client_id=args.client_id)
        counter.start()
    except ValueError as e:
        raise CliError(str(e)) from None
    except (mqtt.ConnectRefused, mqtt.ConnectTimeout, OSError) as e:
        raise CliError(str(e), 1) from None
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print(f"counter running: venue {venue.id}, database {args.db}, broker "
          f"{counter.conn.url.display}", flush=True)  # fmt: skip
    while not done.wait(0.5):
        if not counter.running:
            break
    counter.stop()
    if counter.error is not None:
        raise CliError(f"counter stopped: {counter.error}", 1)
    return 0


def _import(args: argparse.Namespace) -> int:
    from counter.registry import ManifestError, import_manifest

    try:
        n = import_manifest(args.db, args.manifest)
    except ManifestError as e:
        raise CliError(str(e)) from None
    print(f"imported {n} badges into {args.db}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from counter.exports import attendance, plot_occupancy, write_attendance

    venue = load_or_fail(args.venue)
    if args.day is not None and not _DAY.match(args.day):
        raise CliError(f"--day {args.day!r} is not YYYY-MM-DD")
    if not Path(args.db).is_file():
        raise CliError(f"{args.db}: no such database")
    with Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("attendance", total=None)
        report = attendance(
            args.db, venue, args.day,
            progress=lambda i, n: progress.update(task, completed=i, total=n),
        )  # fmt: skip
    if args.out == "-":
        write_attendance(report, args.format, sys.stdout.buffer)
    else:
        write_attendance(report, args.format, Path(args.out))
    if args.plot:
        day = args.day or venue.days[0].date.isoformat()
        plot_occupancy(args.db, venue, day, Path(args.plot))
    return 0
