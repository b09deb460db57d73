"""`sesame counter run|import-badges` and `sesame export attendance`: thin wrappers."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sqlite3
import sys
import threading
from datetime import date
from pathlib import Path

from sesame.common import metrics_http, sqlite
from sesame.common.cli_venue import DEFAULT_VENUE, VENUE_HELP, load_or_fail
from sesame.common.errors import CliError

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,3}$")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("counter", help="the central counter: ingest, occupancy, leases")
    csub = p.add_subparsers(dest="counter_command", metavar="ACTION", parser_class=type(p))
    csub.required = True
    run = csub.add_parser("run", help="run the counter against a broker until interrupted")
    run.add_argument("--venue", default=DEFAULT_VENUE, help=VENUE_HELP)
    run.add_argument("--db", default="sesame.db", help="SQLite database (created if missing)")
    run.add_argument("--broker", help="broker URL, e.g. mqtt://host:1883 (account: --credentials)")
    run.add_argument("--credentials", help="credential file (JSON) from `sesame broker setup`")
    run.add_argument(
        "--client-id",
        help="MQTT client id (default sesame-counter-<venue>-<tag derived from the account>)",
    )
    run.add_argument(
        "--ha-discovery", nargs="?", const="homeassistant", metavar="PREFIX",
        help="publish Home Assistant MQTT discovery configs (prefix default homeassistant)",
    )  # fmt: skip
    run.add_argument(
        "--clock-file", metavar="FILE",
        help="run on the simulated time a simulator writes to FILE (replays; default: the "
        "real clock)",
    )  # fmt: skip
    metrics_http.add_options(run)
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
    att.add_argument(
        "--venue",
        help="venue TOML file (default: the venue the database was created for); a file that "
        "differs from it is refused",
    )
    att.add_argument("--day", help="one event day (YYYY-MM-DD); default every day")
    att.add_argument("--format", choices=("csv", "xlsx", "json"), default="csv")
    att.add_argument("--out", required=True, help="output file ('-' for standard output)")
    att.add_argument("--plot", help="also write a PNG of occupancy through --day (or day 1)")
    att.set_defaults(func=_export)


def _check_database(path: str, *, create: bool) -> None:
    """One line naming the file when --db is not the counter's database, before anything
    opens it (the store would otherwise add the counter's tables to someone else's file).
    create=True: a missing or empty file is fine (the counter creates its tables)."""
    p = Path(path)
    if not p.exists():
        if not create:
            raise CliError(f"{path}: no such database")
        if not p.parent.is_dir():
            raise CliError(f"{path}: folder {p.parent} does not exist")
        return
    if p.is_dir():
        raise CliError(f"{path}: is a directory, not a database")
    if not os.access(p, os.R_OK):
        raise CliError(f"{path}: permission denied")
    if create and p.stat().st_size == 0:
        return
    try:
        conn = sqlite.readonly(p)
        try:
            tables = set(sqlite.schema(conn).table_names())
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        tables = {"(not SQLite)"}
    if create and not tables:
        return  # an empty SQLite database
    if not {"_migrations", "events"} <= tables:
        raise CliError(f"{path}: not a Sesame counter database")


def _check_output(path: str) -> Path:
    """One line naming an output file that cannot be written, before any work is done."""
    p = Path(path)
    if p.is_dir():
        raise CliError(f"{path}: is a directory")
    if not p.parent.is_dir():
        raise CliError(f"{path}: folder {p.parent} does not exist")
    if not os.access(p.parent, os.W_OK):
        raise CliError(f"{path}: cannot write in folder {p.parent}")
    return p


def _check_day(venue, day: str) -> None:
    if not _DAY.match(day):
        raise CliError(f"--day {day!r} is not YYYY-MM-DD")
    try:
        d = date.fromisoformat(day)
    except ValueError:
        raise CliError(f"--day {day} is not a date") from None
    if d not in {x.date for x in venue.days}:  # as the dashboard's API (422)
        days = ", ".join(x.date.isoformat() for x in venue.days)
        raise CliError(f"--day {day} is not an event day of {venue.id} ({days})")


def _export_venue(db: str, venue_file: str | None):
    """The venue to export with: the one recorded in the database, a --venue file only when
    it is the same venue; a database from before the record takes --venue or the reference."""
    from sesame.counter import venue_record

    try:
        if venue_file is not None:
            venue = load_or_fail(venue_file)
            venue_record.check(db, venue, venue_file)
            return venue
        rec = venue_record.recorded(db)
    except venue_record.VenueMismatch as e:
        raise CliError(str(e)) from None
    if rec is None:
        print(f"{db}: no venue recorded (a database from an older counter); exporting with "
              f"the reference venue {DEFAULT_VENUE}", file=sys.stderr)  # fmt: skip
        return load_or_fail(DEFAULT_VENUE)
    try:
        return rec.venue(db)
    except venue_record.VenueMismatch as e:
        raise CliError(str(e)) from None


def _run(args: argparse.Namespace) -> int:
    from sesame.common import mqtt
    from sesame.counter.service import Counter

    venue = load_or_fail(args.venue)
    if not args.broker and not args.credentials:
        raise CliError("--broker URL or --credentials FILE is required")
    _check_database(args.db, create=True)
    if args.ha_discovery is not None and not _PREFIX.match(args.ha_discovery):
        raise CliError(f"--ha-discovery {args.ha_discovery!r}: a topic prefix is letters, "
                       "digits, _ and -, in segments joined by /")  # fmt: skip
    try:
        where = mqtt.parse_broker_url(args.broker, args.credentials).display  # no password
    except ValueError as e:
        raise CliError(str(e)) from None
    from sesame.common.mqtt_url import warn_password_in_url

    warn_password_in_url(args.broker)
    # One line per change of the broker connection, not one per retry: the counter keeps
    # trying (a counter started before its broker, a broker restarted) until stopped.
    lock = threading.Lock()
    shown = {"state": "starting"}

    def on_state(state: str, detail: str) -> None:
        with lock:
            before = shown["state"]  # starting, waiting (never connected), connected, lost
            if state == "connected":
                shown["state"] = "connected"
                if before == "lost":  # the first connection is said by the main thread
                    print(f"counter: connected to the broker at {where} again", flush=True)
            elif before == "starting":
                shown["state"] = "waiting"
                why = "not reachable" if detail.startswith("cannot reach") else detail
                print(f"counter: waiting for the broker at {where} ({why}); "
                      "retrying until it answers", file=sys.stderr, flush=True)  # fmt: skip
            elif before == "connected":
                shown["state"] = "lost"
                print(f"counter: lost the broker at {where} ({detail}); retrying",
                      file=sys.stderr, flush=True)  # fmt: skip

    class _Stopped(Exception):
        pass

    done = threading.Event()

    def stop(*_: object) -> None:
        done.set()
        if counter is None:  # still waiting for the broker: give up waiting
            raise _Stopped

    counter = None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    clock = {}
    if args.clock_file:
        from sesame.common.clock_file import ClockFileError, FileClock

        try:
            clock["clock"] = FileClock(args.clock_file)
        except ClockFileError as e:
            raise CliError(str(e)) from None
    c = Counter(venue, args.db, args.broker, args.credentials, client_id=args.client_id,
                on_state=on_state, ha_discovery=args.ha_discovery, **clock)  # fmt: skip
    metrics_http.serve(args, c.metrics.registry, "counter")
    try:
        c.start(timeout=None)  # until the broker answers, a refusal, or a stop
        counter = c
    except _Stopped:
        if c.running:  # the stop came just as it connected
            c.stop()
        print("counter: stopped before the broker answered", file=sys.stderr, flush=True)
        return 0
    except ValueError as e:
        raise CliError(str(e)) from None
    except (mqtt.ConnectRefused, mqtt.ConnectTimeout, OSError) as e:
        raise CliError(str(e), 1) from None
    print(f"counter running: connected to the broker at {where}; venue {venue.id}, "
          f"database {args.db}", flush=True)  # fmt: skip
    while not done.wait(0.5):
        if not counter.running:
            break
    counter.stop()
    if counter.error is not None:
        raise CliError(f"counter stopped: {counter.error}", 1)
    return 0


def _import(args: argparse.Namespace) -> int:
    from sesame.counter.registry import ManifestError, import_manifest

    _check_database(args.db, create=True)
    try:
        n = import_manifest(args.db, args.manifest)
    except ManifestError as e:
        raise CliError(str(e)) from None
    print(f"imported {n} badges into {args.db}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from sesame.counter.exports import attendance, plot_occupancy, write_attendance

    _check_database(args.db, create=False)
    venue = _export_venue(args.db, args.venue)
    if args.day is not None:
        _check_day(venue, args.day)
    # everything that could stop the export is checked before any work or any file written
    if args.out == "-":
        if args.format == "xlsx" and sys.stdout.isatty():
            raise CliError(
                "--format xlsx is binary: not written to a terminal (use --out FILE or a pipe)"
            )
        out: Path | None = None
    else:
        out = _check_output(args.out)
    plot = _check_output(args.plot) if args.plot else None
    with Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("attendance", total=None)
        report = attendance(
            args.db, venue, args.day,
            progress=lambda i, n: progress.update(task, completed=i, total=n),
        )  # fmt: skip
    if out is None:
        write_attendance(report, args.format, sys.stdout.buffer)
    else:
        try:
            write_attendance(report, args.format, out)
        except OSError as e:
            raise CliError(f"{out}: {e.strerror or e}") from None
    if plot is not None:
        day = args.day or venue.days[0].date.isoformat()
        try:
            plot_occupancy(args.db, venue, day, plot)
        except OSError as e:
            raise CliError(f"{plot}: {e.strerror or e}") from None
    return 0
