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
_NAME = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("counter", help="the central counter: ingest, occupancy, leases")
    csub = p.add_subparsers(dest="counter_command", metavar="ACTION", parser_class=type(p))
    csub.required = True
    run = csub.add_parser("run", help="run the counter against a broker until interrupted")
    run.add_argument("--venue", default=DEFAULT_VENUE, help=VENUE_HELP)
    run.add_argument(
        "--db", default="sesame.db",
        help="SQLite database (created if missing), or postgresql://USER@HOST/NAME shared by "
        "standby counters: one is active, the others take over when it dies",
    )  # fmt: skip
    run.add_argument(
        "--name",
        help="this counter's name among those sharing a PostgreSQL database (default HOST:PID)",
    )
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
    when = run.add_mutually_exclusive_group()
    when.add_argument(
        "--clock-file", metavar="FILE",
        help="run on the simulated time a simulator writes to FILE (replays; default: the "
        "real clock)",
    )  # fmt: skip
    when.add_argument(
        "--start-time", metavar="ISO",
        help="run on a clock that starts at this time (with its UTC offset) and goes on with "
        "real time: to try the venue's past event days by hand (default: the real clock)",
    )  # fmt: skip
    metrics_http.add_options(run)
    run.set_defaults(func=_run)
    imp = csub.add_parser("import-badges", help="import manifest.csv into the badge registry")
    imp.add_argument("--db", default="sesame.db", help="SQLite database or postgresql:// URL")
    imp.add_argument("--manifest", required=True, help="manifest.csv from `sesame badges issue`")
    imp.set_defaults(func=_import)

    e = sub.add_parser("export", help="export figures from the counter's database")
    esub = e.add_subparsers(dest="export_command", metavar="WHAT", parser_class=type(e))
    esub.required = True
    att = esub.add_parser("attendance", help="daily attendance: visitors, entries, peaks")
    att.add_argument(
        "--db", default="sesame.db", help="the counter's SQLite database or postgresql:// URL"
    )
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
    from sesame.counter.database import is_postgres

    if is_postgres(path):
        return _check_postgres(path, create=create)
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


def _check_postgres(dsn: str, *, create: bool) -> None:
    """The same checks on a PostgreSQL database: it answers, and holds the counter's tables
    (or, when the counter may create them, no tables of anyone else)."""
    from sesame.counter.database import ERRORS, display
    from sesame.counter.store import connect

    try:
        conn = connect(dsn, readonly=True)
        try:
            tables = {r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )}  # fmt: skip
        finally:
            conn.close()
    except ERRORS as e:
        why = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise CliError(f"{display(dsn)}: cannot read the database ({why})", 1) from None
    ours = {"_migrations", "events"}
    if create and not tables - {"sesame_term"}:
        return  # an empty database (a standby may have made its term table)
    if not ours <= tables:
        raise CliError(f"{display(dsn)}: not a Sesame counter database")


def _warn_password_in_dsn(db: str) -> None:
    """As for --broker: a database password on the command line shows in the process list."""
    from sesame.counter.database import is_postgres

    if not is_postgres(db):
        return
    import psycopg

    try:
        password = psycopg.conninfo.conninfo_to_dict(db).get("password")
    except psycopg.ProgrammingError:
        return  # the database check says what is wrong with it
    if password:
        print("warning: the password in --db shows in the process list (ps); put it in "
              "~/.pgpass or PGPASSWORD instead", file=sys.stderr)  # fmt: skip


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
    from sesame.counter.database import display

    try:
        if venue_file is not None:
            venue = load_or_fail(venue_file)
            venue_record.check(db, venue, venue_file)
            return venue
        rec = venue_record.recorded(db)
    except venue_record.VenueMismatch as e:
        raise CliError(str(e)) from None
    if rec is None:
        print(f"{display(db)}: no venue recorded (a database from an older counter); "
              f"exporting with the reference venue {DEFAULT_VENUE}", file=sys.stderr)  # fmt: skip
        return load_or_fail(DEFAULT_VENUE)
    try:
        return rec.venue(display(db))
    except venue_record.VenueMismatch as e:
        raise CliError(str(e)) from None


def _run(args: argparse.Namespace) -> int:
    from sesame.common import mqtt
    from sesame.counter.database import is_postgres
    from sesame.counter.metrics import CounterMetrics

    venue = load_or_fail(args.venue)
    if not args.broker and not args.credentials:
        raise CliError("--broker URL or --credentials FILE is required")
    _warn_password_in_dsn(args.db)
    _check_database(args.db, create=True)
    if args.ha_discovery is not None and not _PREFIX.match(args.ha_discovery):
        raise CliError(f"--ha-discovery {args.ha_discovery!r}: a topic prefix is letters, "
                       "digits, _ and -, in segments joined by /")  # fmt: skip
    if args.name is not None and not _NAME.match(args.name):
        raise CliError(f"--name {args.name!r}: letters, digits and . _ : - (1-64)")
    try:
        where = mqtt.parse_broker_url(args.broker, args.credentials).display  # no password
    except ValueError as e:
        raise CliError(str(e)) from None
    from sesame.common.mqtt_url import warn_password_in_url

    warn_password_in_url(args.broker)
    done = threading.Event()
    waiting = threading.Event()  # set while waiting for the broker: a stop ends the wait

    class _Stopped(Exception):
        pass

    def stop(*_: object) -> None:
        done.set()
        if waiting.is_set():
            raise _Stopped

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    clock = {}
    if args.start_time:
        clock["clock"] = _started_clock(args.start_time)
    if args.clock_file:
        from sesame.common.clock_file import ClockFileError, FileClock

        try:
            clock["clock"] = FileClock(args.clock_file)
        except ClockFileError as e:
            raise CliError(str(e)) from None
    current: list = [None]
    metrics = CounterMetrics(lambda: current[0].core if current[0] else None, args.db)
    metrics_http.serve(args, metrics.registry, "counter")
    run = _Serve(args, venue, where, done, waiting, _Stopped, current, metrics, clock)
    if not is_postgres(args.db):
        return run.serve(term=None, name="counter", lost=None) or 0
    return _elected(args, venue, done, run)


def _elected(args: argparse.Namespace, venue, done: threading.Event, run: _Serve) -> int:
    """Counters sharing a PostgreSQL database: stand by until this one holds the venue's
    lock, count under its term until it is lost, then stand by again (or stop)."""
    import socket

    from sesame.counter.database import display
    from sesame.counter.standby import Leadership

    name = args.name or f"{socket.gethostname()}:{os.getpid()}"
    db = display(args.db)
    while not done.is_set():
        lost = threading.Event()

        def on_lost(why: str, lost: threading.Event = lost) -> None:
            print(f"counter {name}: no longer the active counter ({why}); stepping down",
                  file=sys.stderr, flush=True)  # fmt: skip
            lost.set()

        lead = Leadership(args.db, venue.id, name, on_lost=on_lost)
        print(f"counter {name}: standing by for venue {venue.id} on {db}", flush=True)
        term = lead.acquire(done)
        if term is None:
            break
        after = f", taking over from {lead.previous}" if lead.previous else ""
        print(f"counter {name}: active counter for venue {venue.id}, term {term}{after}; "
              "rebuilding from the database", flush=True)  # fmt: skip
        try:
            rc = run.serve(term=term, name=name, lost=lost)
        finally:
            lead.release()
        if rc is not None:
            return rc
    print(f"counter {name}: stopped", flush=True)
    return 0


def _started_clock(text: str):
    """`--start-time`: the venue's time begins at `text` and runs with the real clock."""
    import time
    from datetime import datetime, timedelta

    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--start-time {text!r} is not an ISO time") from None
    if start.tzinfo is None:
        raise CliError("--start-time needs a UTC offset, e.g. 2018-11-22T10:00:00+01:00")
    t0 = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - t0)


class _Serve:
    """One Counter from start to stop: the broker connection's messages, the stop signal."""

    def __init__(self, args, venue, where, done, waiting, stopped, current, metrics, clock):
        self.args, self.venue, self.where = args, venue, where
        self.clock = clock  # {"clock": FileClock} with --clock-file, else the real clock
        self.done, self.waiting, self.stopped = done, waiting, stopped
        self.current, self.metrics = current, metrics

    def serve(self, *, term: int | None, name: str, lost: threading.Event | None) -> int | None:
        """0 when stopped; None when this counter stepped down (another one is active, or
        the shared database failed: stand by again); CliError when it cannot run."""
        from sesame.common import mqtt
        from sesame.counter.database import ERRORS, display
        from sesame.counter.service import Counter
        from sesame.counter.store import Fenced

        args, where = self.args, self.where
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

        c = Counter(self.venue, args.db, args.broker, args.credentials, client_id=args.client_id,
                    on_state=on_state, ha_discovery=args.ha_discovery, term=term, name=name,
                    metrics=self.metrics, **self.clock)  # fmt: skip
        self.current[0] = c
        try:
            self.waiting.set()
            if self.done.is_set():
                raise self.stopped
            c.start(timeout=None)  # until the broker answers, a refusal, or a stop
            self.waiting.clear()
        except self.stopped:
            self.waiting.clear()
            if c.running:  # the stop came just as it connected
                c.stop()
            print("counter: stopped before the broker answered", file=sys.stderr, flush=True)
            return 0
        except ValueError as e:
            self.waiting.clear()
            raise CliError(str(e)) from None
        except (mqtt.ConnectRefused, mqtt.ConnectTimeout, OSError) as e:
            self.waiting.clear()
            raise CliError(str(e), 1) from None
        except ERRORS as e:
            self.waiting.clear()
            if term is None:
                raise CliError(f"{display(args.db)}: {e}", 1) from None
            print(f"counter: database failed ({e}); standing by", file=sys.stderr, flush=True)
            return None
        print(f"counter running: connected to the broker at {where}; venue {self.venue.id}, "
              f"database {display(args.db)}", flush=True)  # fmt: skip
        while not self.done.wait(0.2):
            if not c.running or (lost is not None and lost.is_set()):
                break
        stepping_down = lost is not None and (lost.is_set() or isinstance(c.error, Fenced))
        c.stop(stepping_down=stepping_down)
        if stepping_down:
            return None
        if c.error is not None:
            if term is not None and isinstance(c.error, ERRORS):
                print(f"counter: database failed ({c.error}); standing by",
                      file=sys.stderr, flush=True)  # fmt: skip
                return None
            raise CliError(f"counter stopped: {c.error}", 1)
        return 0


def _import(args: argparse.Namespace) -> int:
    from sesame.counter.registry import ManifestError, import_manifest

    _check_database(args.db, create=True)
    try:
        n = import_manifest(args.db, args.manifest)
    except ManifestError as e:
        raise CliError(str(e)) from None
    from sesame.counter.database import display

    print(f"imported {n} badges into {display(args.db)}")
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
