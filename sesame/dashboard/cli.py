"""`sesame dashboard` (the web app) and `sesame users add|remove|list` (its accounts)."""

from __future__ import annotations

import argparse
import getpass
import sys

from sesame.common import metrics_http
from sesame.common.cli_venue import DEFAULT_VENUE, VENUE_HELP
from sesame.common.errors import CliError

DEFAULT_ACCOUNTS = "dashboard.db"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dashboard",
        help="serve the web dashboard (live occupancy, safety actions, exports)",
        description="Serve the dashboard for safety officers, organisers and viewers.",
    )
    p.add_argument("--venue", default=DEFAULT_VENUE, help=VENUE_HELP)
    p.add_argument(
        "--db",
        help="the counter's database (history and exports): a SQLite file or postgresql:// URL",
    )
    p.add_argument("--broker", help="broker URL, e.g. mqtt://host:port (or a credential file)")
    p.add_argument("--credentials", help="credential file for the dashboard's broker account")
    p.add_argument("--accounts", default=DEFAULT_ACCOUNTS, help="dashboard accounts database")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8080, help="port to listen on")
    p.add_argument(
        "--secure-cookies", action="store_true", help="mark cookies Secure (behind HTTPS)"
    )
    p.add_argument(
        "--trusted-proxy",
        action="append",
        metavar="ADDR",
        help="a reverse proxy whose X-Forwarded-For names the client (address or network; "
        "repeatable; default 127.0.0.1 and ::1; 'none' trusts no header)",
    )
    metrics_http.add_options(p)
    p.add_argument(
        "--escalate-after",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="publish an alert nobody acknowledged this long on alerts/escalated (0: never; "
        "run escalation on one dashboard only)",
    )
    p.set_defaults(func=_dashboard)

    u = sub.add_parser("users", help="manage dashboard accounts (safety, organiser, viewer)")
    usub = u.add_subparsers(dest="users_command", metavar="ACTION", parser_class=type(u))
    usub.required = True
    add = usub.add_parser("add", help="add an account (password from a prompt or stdin)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=("safety", "organiser", "viewer"))
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--replace", action="store_true", help="replace an existing account")
    add.add_argument("--accounts", default=DEFAULT_ACCOUNTS, help="dashboard accounts database")
    add.set_defaults(func=_users_add)
    rm = usub.add_parser("remove", help="remove an account")
    rm.add_argument("username")
    rm.add_argument("--accounts", default=DEFAULT_ACCOUNTS, help="dashboard accounts database")
    rm.set_defaults(func=_users_remove)
    ls = usub.add_parser("list", help="list accounts and their roles")
    ls.add_argument("--accounts", default=DEFAULT_ACCOUNTS, help="dashboard accounts database")
    ls.set_defaults(func=_users_list)


def _store(path: str, *, must_exist: bool = False):
    import sqlite3
    from pathlib import Path

    from sesame.dashboard.accounts import AccountStore

    if must_exist and not Path(path).exists():
        # A mistyped --accounts would otherwise create an empty database and list nobody.
        raise CliError(f"{path}: no such accounts database (`sesame users add` creates it)")
    try:
        return AccountStore(path)
    except sqlite3.Error as e:
        raise CliError(f"{path}: not a usable accounts database ({e})") from None


def _users_add(args: argparse.Namespace) -> int:
    from sesame.dashboard.accounts import AccountError

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise CliError("no terminal for the password prompt: use --password-stdin")
        password = getpass.getpass(f"password for {args.username}: ")
        if getpass.getpass("again: ") != password:
            raise CliError("the two passwords differ")
    store = _store(args.accounts)
    try:
        user = store.add_user(args.username, args.role, password, replace=args.replace)
    except AccountError as e:
        raise CliError(str(e)) from None
    finally:
        store.close()
    print(f"added {user.username} ({user.role}) to {args.accounts}")
    return 0


def _users_remove(args: argparse.Namespace) -> int:
    from sesame.dashboard.accounts import AccountError

    store = _store(args.accounts, must_exist=True)
    try:
        store.remove_user(args.username)
    except AccountError as e:
        raise CliError(str(e), 1) from None
    finally:
        store.close()
    print(f"removed {args.username} from {args.accounts}")
    return 0


def _users_list(args: argparse.Namespace) -> int:
    store = _store(args.accounts, must_exist=True)
    try:
        for u in store.users():
            print(f"{u.username}\t{u.role}")
    finally:
        store.close()
    return 0


def trusted_proxies(given: list[str] | None) -> tuple[str, ...]:
    """`--trusted-proxy` values checked as addresses or networks (one-line error)."""
    import ipaddress

    from sesame.dashboard.dashboard import DashboardSettings

    if not given:
        return DashboardSettings.trusted_proxies
    if given == ["none"]:
        return ()
    for value in given:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise CliError(f"--trusted-proxy {value!r}: not an IP address or network") from None
    return tuple(given)


def _check_counter_db(db: str) -> None:
    """A SQLite file that exists, or a PostgreSQL database that answers (one line if not)."""
    from pathlib import Path

    from sesame.counter import queries

    if not queries.is_postgres(db):
        if not Path(db).is_file():
            raise CliError(f"{db}: no such counter database")
        return
    try:
        queries.days_with_events(db)
    except queries.ERRORS as e:
        why = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise CliError(f"{queries.display(db)}: not a readable counter database ({why})", 1) \
            from None


def _dashboard(args: argparse.Namespace) -> int:
    from sesame.common.cli_venue import load_or_fail
    from sesame.dashboard.app import DashboardSettings
    from sesame.dashboard.server import serve_forever

    venue = load_or_fail(args.venue)
    if args.db:
        _check_counter_db(args.db)
    if args.broker or args.credentials:
        from sesame.common.mqtt import parse_broker_url

        try:
            parse_broker_url(args.broker, args.credentials)
        except ValueError as e:
            raise CliError(str(e)) from None
        from sesame.common.mqtt_url import warn_password_in_url

        warn_password_in_url(args.broker)
    if not 0 < args.port < 65536:
        raise CliError(f"--port {args.port}: not a TCP port")
    if not 0 <= args.escalate_after <= 7 * 86400:  # also refuses nan
        raise CliError(f"--escalate-after {args.escalate_after:g}: must be 0-604800 seconds")
    proxies = trusted_proxies(args.trusted_proxy)
    store = _store(args.accounts)
    n = len(store.users())
    store.close()
    if n == 0:
        print(
            f"warning: no accounts in {args.accounts}; add one with "
            f"`sesame users add NAME --role safety --accounts {args.accounts}`",
            file=sys.stderr,
        )
    from sesame.dashboard.app import CHART_JS

    if not CHART_JS.is_file():
        print(
            "warning: Chart.js is not installed (run scripts/dev.sh setup, or "
            "`npm ci --prefix dashboard`): the live figures work, the curves and charts do not",
            file=sys.stderr,
        )
    settings = DashboardSettings(
        venue=venue,
        accounts_path=args.accounts,
        db_path=args.db,
        broker_url=args.broker,
        credentials=args.credentials,
        cookie_secure=args.secure_cookies,
        escalate_after_s=args.escalate_after,
        trusted_proxies=proxies,
    )
    from sesame.dashboard.server import listen

    try:
        sock = listen(args.host, args.port)
    except OSError as e:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    from sesame.dashboard.app import create_app

    app = create_app(settings)
    metrics_http.serve(args, app.state.dashboard.metrics.registry, "dashboard")
    print(f"dashboard for {venue.venue.name}: http://{args.host}:{args.port}/", flush=True)
    serve_forever(settings, sock, app)
    return 0
