"""`sesame simulate` (replay the reference event through the real system, write the ground
truth) and `sesame demo` (the whole system on this machine, a day replayed at high speed)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from sesame.cli_config import DEFAULT_VENUE, VENUE_HELP
from sesame.common.errors import CliError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="replay the event with simulated visitors through the real system",
        description=(
            "Generate the visitors of the event (seeded), issue their badges, and drive one "
            "real gate agent per lane through a real broker to a real counter. Writes the "
            "ground truth (what really passed the turnstiles) as JSON."
        ),
    )
    p.add_argument("--venue", default=DEFAULT_VENUE, help=VENUE_HELP)
    p.add_argument(
        "--visitors", type=int, default=40_500, help="visitor-days (public, pros, pupils)"
    )
    p.add_argument("--schoolchildren", type=int, default=13_300, help="pupils among the visitors")
    p.add_argument("--departements", type=int, default=55, help="départements the pupils come from")
    p.add_argument("--days", type=int, default=4, help="replay the first N event days")
    p.add_argument(
        "--day", action="append", default=[], help="replay this day (YYYY-MM-DD; repeatable)"
    )
    p.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="simulated seconds per real second (0: as fast as the system keeps up)",
    )
    p.add_argument("--seed", type=int, default=2018, help="seed of the visitor model")
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="scale every head count and zone capacity (0.1: a tenth of the event)",
    )
    p.add_argument("--broker", help="broker host:port or URL (default: start a Mosquitto)")
    p.add_argument(
        "--broker-config", help="`sesame broker setup` folder with the accounts (with --broker)"
    )
    p.add_argument("--work", help="folder for keys, badges, gate outboxes (default: a temp dir)")
    p.add_argument("--db", help="the counter's database (default: WORK/sesame.db)")
    p.add_argument("--truth", help="write the ground truth JSON here")
    p.add_argument("--processes", action="store_true", help="every lane in its own process")
    p.add_argument(
        "--counter-process", action="store_true", help="run the counter as `sesame counter run`"
    )
    p.add_argument(
        "--in-memory",
        action="store_true",
        help="no broker, gates or counter: the decision against exact occupancy (model check)",
    )
    p.set_defaults(func=_simulate)

    d = sub.add_parser(
        "demo",
        help="run the whole system here: broker, counter, dashboard, a simulated event day",
        description=(
            "Starts its own broker (Mosquitto when installed, else the embedded one) on a free "
            "port, the counter, the dashboard with a demo account, and replays an event day "
            "at high speed. Ctrl-C stops everything it started."
        ),
    )
    d.add_argument("--venue", default=DEFAULT_VENUE, help=VENUE_HELP)
    d.add_argument("--port", type=int, help="broker port (default: a free one)")
    d.add_argument(
        "--http-port",
        type=int,
        help="dashboard port (default 8080, or a free one when 8080 is taken; 0: a free one)",
    )
    d.add_argument("--day", help="event day to replay (YYYY-MM-DD; default: the last, crowded)")
    d.add_argument("--speed", type=float, default=240.0, help="simulated seconds per second")
    d.add_argument("--scale", type=float, default=0.25, help="share of the real crowd and capacity")
    d.add_argument("--seed", type=int, default=2018)
    d.add_argument("--dir", help="keep the demo's files here (default: a temp dir)")
    d.add_argument("--embedded", action="store_true", help="use the embedded broker")
    d.add_argument(
        "--metrics-port", type=int, metavar="PORT",
        help="serve Prometheus metrics: the counter on PORT, the dashboard on PORT+1, "
        "the lanes on PORT+2 (off by default)",
    )  # fmt: skip
    d.add_argument(
        "--metrics-host", default="127.0.0.1", metavar="ADDRESS",
        help="address the metrics ports listen on (default 127.0.0.1)",
    )  # fmt: skip
    d.set_defaults(func=_demo)


# -- shared set-up -------------------------------------------------------------------------


def _params(args, venue):
    from sesame.sim.model import Params

    p = Params(
        visitors=args.visitors,
        schoolchildren=args.schoolchildren,
        departements=args.departements,
        days=min(args.days, len(venue.days)),
        only=tuple(args.day),
        seed=args.seed,
    )
    days = {d.date.isoformat() for d in venue.days}
    for d in args.day:
        if d not in days:
            raise CliError(f"--day {d}: not an event day of {args.venue}")
    try:
        p = p.scaled(args.scale) if args.scale != 1.0 else p
        p.check()
    except ValueError as e:
        raise CliError(str(e)) from None
    return p


def prepare_venue(path: str, work: Path, scale: float, largest_group: int):
    """The replay's venue file (capacities scaled, lease water marks for group badges)."""
    from sesame.common.cli_venue import load_or_fail
    from sesame.sim.model import derive_venue_file

    load_or_fail(path)  # one-line error on a bad file
    out, notes = derive_venue_file(
        Path(path), work / "venue.toml", capacity_factor=scale, largest_group=largest_group
    )
    for n in notes:
        print(f"venue for the replay: {n}", file=sys.stderr)
    return out, load_or_fail(str(out))


class ExternalBroker:
    """A broker someone else runs (`sesame broker run`), with the accounts of its
    `sesame broker setup` folder. Nothing is started or stopped here."""

    def __init__(self, address: str, config_dir: str, run_dir: Path, venue):
        from sesame.broker.process import BrokerBase

        host, port = self.check(address, config_dir, venue)
        # the runners' shared part: accounts, URLs, credential files pointing at host:port
        self._b = BrokerBase(config_dir, host, port, run_dir, "external", "external.log")
        self.host, self.port = host, port

    @staticmethod
    def check(address: str, config_dir: str, venue) -> tuple[str, int]:
        """(host, port) of a broker that answers and a folder holding the venue's accounts;
        else one line (before any work is done)."""
        from urllib.parse import urlsplit

        from sesame.broker.process import port_open
        from sesame.broker.setup import BrokerSettings, accounts, read_credential

        try:
            settings = BrokerSettings.load(Path(config_dir))
            u = urlsplit(address if "://" in address else f"mqtt://{address}")
            host, port = u.hostname or "127.0.0.1", u.port or settings.port
        except ValueError as e:  # a settings file that is not one, a port that is not a number
            raise CliError(f"--broker {address} --broker-config {config_dir}: {e}") from None
        missing = [a for a in accounts(venue) if read_credential(Path(config_dir), a) is None]
        if missing:
            raise CliError(
                f"--broker-config {config_dir}: no account for {missing[0]} "
                f"(run `sesame broker setup` with this venue)"
            )
        if not port_open(host, port, timeout=2.0):
            raise CliError(f"--broker {host}:{port}: nothing answers there", 1)
        return host, port

    def url(self, account: str) -> str:
        return self._b.url(account)

    def credentials(self, account: str) -> Path:
        return self._b.credentials(account)

    def close(self) -> None:
        pass


def start_broker(venue, work: Path, port: int | None = None, embedded: bool = False):
    """Accounts generated for the venue, then our own broker on a free port (never 1883's)."""
    from sesame.broker.process import MosquittoProcess, mosquitto_binary
    from sesame.broker.setup import setup
    from sesame.common.net import free_port

    setup(venue, work / "broker")
    if mosquitto_binary() and not embedded:
        return MosquittoProcess(
            work / "broker", port=port or free_port(), run_dir=work / "mosquitto"
        ).start()
    from sesame.broker.embedded import EmbeddedBroker

    print("Mosquitto is not installed: using the embedded broker (development only)")
    return EmbeddedBroker(work / "broker", port=port, run_dir=work / "embedded").start()


def _status_line(replay, console):
    """Progress on long replays: simulated time and actions, every few seconds."""
    from sesame.sim.truth import iso_ms

    state = {"t": time.monotonic()}
    every = 1.0 if console.is_terminal else 10.0

    def hook(n: int, at: int) -> None:
        now = time.monotonic()
        if now - state["t"] >= every:
            state["t"] = now
            line = f"  {iso_ms(at, replay.venue)[:16]}  {n:,} actions, backlog {replay.backlog()}"
            console.print(line, highlight=False, end="\r" if console.is_terminal else "\n")

    return hook


# -- sesame simulate -------------------------------------------------------------------------


def _simulate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from sesame.common.cli_venue import load_or_fail
    from sesame.sim import model
    from sesame.sim.truth import write_truth

    console = Console(stderr=True)
    if args.speed < 0 or args.scale <= 0:
        raise CliError("--speed must be >= 0 and --scale > 0")
    if args.broker and not args.broker_config:
        raise CliError("--broker needs --broker-config (the `sesame broker setup` folder)")
    base = load_or_fail(args.venue)
    params = _params(args, base)
    if args.broker:
        ExternalBroker.check(args.broker, args.broker_config, base)
    db = Path(args.db) if args.db else None
    if not args.in_memory:
        w = Path(args.work) if args.work else None
        for old in (w / "sesame.db" if w else None, w / "gates" if w else None, db):
            if old is not None and old.exists():
                raise CliError(f"{old} is left from an earlier replay: give a fresh --work/--db")
    work = Path(args.work or tempfile.mkdtemp(prefix="sesame-sim-"))
    work.mkdir(parents=True, exist_ok=True)
    venue_file, venue = prepare_venue(args.venue, work, args.scale, params.class_size[1])
    try:
        pop = model.generate(venue, params)
    except ValueError as e:
        raise CliError(str(e)) from None
    planned = [v for day in pop.visits.values() for v in day]
    # a school class on one group badge is one planned visit of `party` people; the summary's
    # `visits` counts the people who got in, day by day
    console.print(
        f"{len(planned):,} planned visits of {sum(v.party for v in planned):,} people, "
        f"{len(pop.badges):,} badges over {len(pop.visits)} day(s); work folder {work}"
    )
    if args.in_memory:
        result = _in_memory(venue, pop, args.seed)
    else:
        result = _replay(args, venue, venue_file, pop, work, console)
    if args.truth:
        write_truth(result["truth"], Path(args.truth))
        console.print(f"ground truth: {args.truth}")
    print(json.dumps(result["summary"], indent=2))
    return _verdict(result["summary"], console)


def _verdict(summary: dict, console) -> int:
    """Say what went over capacity (an `open` zone may, a lease zone must not) and whether
    the export equals the truth: exit 1 on a lease zone over capacity or a difference."""
    from sesame.common.capacity import describe, lease_breaches

    over = summary.get("over_capacity", {})
    for day, zones in over.items():
        for zone, o in zones.items():
            colour = "red" if o["offline_policy"] == "lease" else "yellow"
            console.print(f"[{colour}]over capacity: {describe(day, zone, o)}[/]", highlight=False)
    rc = 0
    if lease_breaches(over) or lease_breaches(summary.get("over_capacity_in_event_log", {})):
        console.print("[red]a lease zone went over its capacity[/]")
        rc = 1
    if summary.get("export_equals_truth") is False:
        console.print("[red]the counter's export differs from the ground truth[/]")
        rc = 1
    return rc


def _in_memory(venue, pop, seed):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from sesame.common.tokens import key_id
    from sesame.sim.badges import issue
    from sesame.sim.engine import Engine
    from sesame.sim.local import LocalDriver
    from sesame.sim.truth import ground_truth

    key = Ed25519PrivateKey.generate()
    tokens = issue(pop, key, [d.date for d in venue.days])
    drv = LocalDriver(venue, {key_id(key.public_key()): key.public_key()}, pop.revoked)
    passages, stats = {}, {}
    t0 = time.monotonic()
    for d in sorted(pop.visits):
        eng = Engine(venue, pop, d, tokens, drv, seed=seed)
        passages[d.isoformat()] = eng.run()
        stats[d.isoformat()] = eng.stats.denied
    truth = ground_truth(venue, passages, pop.badges)
    summary = {"wall_s": round(time.monotonic() - t0, 1), "denied": stats, **truth["totals"],
               **_day_facts(truth)}  # fmt: skip
    return {"truth": truth, "summary": summary}


def _day_facts(truth: dict) -> dict:
    """What the summary says of each day beyond the totals: zones over capacity, the people
    still inside at closing (queuing at the exit lanes) and the time the last one left."""
    days = truth["days"].items()
    return {
        "over_capacity": {d: f["over_capacity"] for d, f in days if f["over_capacity"]},
        "inside_at_closing": {d: sum(f["inside_at_closing"].values()) for d, f in days},
        "last_exit_at": {d: f["last_exit_at"] for d, f in days},
    }


def _replay(args, venue, venue_file, pop, work, console):
    from sesame.run.orchestrator import Options, Replay, event_log_over_capacity

    broker = (
        ExternalBroker(args.broker, args.broker_config, work / "broker-run", venue)
        if args.broker
        else start_broker(venue, work)
    )
    opts = Options(
        speed=args.speed,
        processes=args.processes,
        counter_process=args.counter_process,
        seed=args.seed,
    )
    replay = Replay(venue, venue_file, pop, broker, work, opts)
    if args.db:
        replay.db = Path(args.db)
    try:
        replay.start()
        replay.on_action = _status_line(replay, console)
        out = replay.run()
        console.print(f"replayed {out.actions:,} actions in {out.wall_s:.1f} s; draining outboxes")
        drained = replay.drain(timeout=300)
        truth = replay.truth()
    finally:
        replay.close()
        broker.close()
    if not drained:
        raise CliError("the gates' outboxes did not drain within 5 minutes", 1)
    events = _count_events(replay.db)
    from sesame.counter.exports import attendance
    from sesame.sim.truth import compare

    diffs = compare(truth, attendance(replay.db, venue))
    summary = {
        "wall_s": round(out.wall_s, 1),
        "actions": out.actions,
        "events": events,
        "events_per_s": round(events / out.wall_s, 1) if out.wall_s else None,
        "denied": {d: s.denied for d, s in out.stats.items()},
        "export_equals_truth": not diffs,
        "differences": diffs[:10],
        "over_capacity_in_event_log": event_log_over_capacity(replay.db, venue),
        "db": str(replay.db),
        **truth["totals"],
        **_day_facts(truth),
    }
    return {"truth": truth, "summary": summary}


def _count_events(db: Path) -> int:
    from sesame.common import sqlite

    conn = sqlite.readonly(db)
    try:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        conn.close()


# -- sesame demo ------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    import signal
    import threading

    from sesame.common.cli_venue import load_or_fail
    from sesame.sim import model

    base = load_or_fail(args.venue)
    if args.scale <= 0 or args.speed <= 0:
        raise CliError("--scale and --speed must be above 0")
    for name, port in (("--port", args.port), ("--http-port", args.http_port)):
        if port is not None and not 0 <= port < 65536:
            raise CliError(f"{name} {port}: not a TCP port")
    if args.metrics_port is not None and not 1 <= args.metrics_port <= 65533:
        raise CliError(f"--metrics-port {args.metrics_port}: not a TCP port (1-65533; the "
                       "demo uses it and the next two)")  # fmt: skip
    day = base.days[-1]
    if args.day:
        day = next((d for d in base.days if d.date.isoformat() == args.day), None)
        if day is None:
            raise CliError(f"--day {args.day}: not an event day of {args.venue}")
    own_dir = args.dir is None
    work = Path(args.dir or tempfile.mkdtemp(prefix="sesame-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    params = model.Params(seed=args.seed, only=(day.date.isoformat(),)).scaled(args.scale)
    venue_file, venue = prepare_venue(args.venue, work, args.scale, params.class_size[1])
    pop = model.generate(venue, params)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started: list = []
    runner = None
    try:
        broker = start_broker(venue, work, args.port, args.embedded)
        started.append(broker)
        print(f"broker: {broker.host}:{broker.port} (accounts in {work / 'broker'})")
        from sesame.run.orchestrator import Options, Replay

        # the hours before opening (exhibitors and staff arriving) go by at once: a newcomer
        # sees the public come in, and the Nef fill, within the first minutes
        opens, _ = model.day_bounds(venue, day.date)
        replay = Replay(
            venue, venue_file, pop, broker, work, Options(speed=args.speed, paced_from_ms=opens)
        )
        replay.start()
        started.append(replay)
        server, user, secret = _start_dashboard(venue, replay, broker, work, args.http_port)
        started.append(server)
        # no command prints a password: it is in a file only its owner can read
        print(f"dashboard: {server.url}/  user {user}  password in {secret}", flush=True)
        print(f"organiser view: {server.url}/organiser  user organiser  password in {secret}")
        if args.metrics_port is not None:
            started += _serve_metrics(args, replay, server)
        print(
            f"replaying {day.date} ({day.note or 'event day'}) at x{args.speed:g} from opening"
            f" at {day.opens:%H:%M}; Ctrl-C stops"
        )
        runner = threading.Thread(
            target=_run_day, args=(replay, day.date, stop), name="demo-replay", daemon=True
        )
        runner.start()
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        print("\nstopping…", flush=True)
        if runner is not None:
            runner.join(15)  # the replay stops at its next action
        for thing in reversed(started):
            try:
                thing.close() if hasattr(thing, "close") else thing.stop()
            except Exception as e:  # keep stopping the rest
                print(f"while stopping: {e}", file=sys.stderr)
        if own_dir:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    return 0


def _serve_metrics(args, replay, server) -> list:
    """The demo's three metrics endpoints, as three machines of a venue would serve them."""
    from sesame.common.metrics_http import Merged, serve_registry

    port, host = args.metrics_port, args.metrics_host
    lanes = Merged(lane.agent.metrics.registry for lane in replay.lanes.values())
    out = []
    for offset, registry, who in (
        (0, replay.counter.metrics.registry, "counter"),
        (1, server.app.state.dashboard.metrics.registry, "dashboard"),
        (2, lanes, "lanes"),
    ):
        out.append(_Shutdown(serve_registry(host, port + offset, registry, who)))
    return out


class _Shutdown:
    def __init__(self, server) -> None:
        self.server = server

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Stopped(Exception):
    pass


def _run_day(replay, day, stop) -> None:
    def hook(n: int, at: int) -> None:
        if stop.is_set():
            raise _Stopped

    replay.on_action = hook
    try:
        replay.run([day])
        print("the day is over; the dashboard keeps running until Ctrl-C", flush=True)
    except _Stopped:
        pass


def _start_dashboard(venue, replay, broker, work: Path, port: int):
    import secrets
    import socket

    from sesame.common.private_files import write_private
    from sesame.dashboard.accounts import AccountStore
    from sesame.dashboard.app import DashboardSettings, create_app
    from sesame.dashboard.server import ServerThread
    from sesame.run.lanes import EPOCH

    password = secrets.token_urlsafe(9)
    secret = write_private(work / "dashboard-password", password + "\n")
    store = AccountStore(work / "accounts.db")
    try:
        store.add_user("demo", "safety", password, replace=True)
        # the organiser view (attendance, exports) is for organisers only
        store.add_user("organiser", "organiser", password, replace=True)
    finally:
        store.close()
    from datetime import timedelta

    def sim_now():  # the dashboard lives in the replayed day, from before its first action
        return EPOCH + timedelta(milliseconds=replay.clock.ms)

    settings = DashboardSettings(
        venue=venue,
        accounts_path=work / "accounts.db",
        db_path=replay.db,
        broker_url=broker.url("dashboard"),
    )
    settings.clock = sim_now
    if port is None:
        port = 8080
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                port = 0  # taken: any free port
    server = ServerThread(create_app(settings), "127.0.0.1", port).start()
    return server, "demo", secret
