"""`sesame gate run` and `sesame gate doctor`."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from sesame.common import metrics_http
from sesame.common.errors import CliError


def register(gsub: argparse._SubParsersAction) -> None:
    p = gsub.add_parser(
        "run",
        help="run the agent of one lane (scan, decide, turnstile, outbox, MQTT, display)",
        description="Run one lane's agent until stopped (SIGTERM/Ctrl-C stop it cleanly).",
    )
    _common(p)
    p.add_argument(
        "--pubkey",
        action="append",
        type=Path,
        default=[],
        help="badge public key (PEM); adds to the hardware file's pubkeys",
    )
    p.add_argument("--data-dir", type=Path, help="overrides the hardware file's data_dir")
    p.add_argument(
        "--no-display",
        action="store_true",
        help="one JSON line per scan on stdout instead of the full-screen view",
    )
    p.add_argument("--start-time", help="simulation: the clock starts at this ISO time")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulation: simulated seconds per real second (with --start-time)",
    )
    p.add_argument(
        "--no-counter-clock",
        action="store_true",
        help="never correct the clock from counter/status (replays of past days)",
    )
    metrics_http.add_options(p)
    p.set_defaults(func=run)

    d = gsub.add_parser(
        "doctor",
        help="check reader, controller, clock, disk, keys, credentials and broker",
        description="One line per check; exit 1 when any check fails.",
    )
    _common(d)
    d.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="seconds to wait for the controller and the broker (default 5)",
    )
    d.add_argument(
        "--click",
        action="store_true",
        help="GPIO controller: close each relay once for its pulse (listen for the click)",
    )
    d.set_defaults(func=doctor)
    register_provision(gsub)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--venue", required=True, type=Path, help="venue file (TOML)")
    p.add_argument("--gate", required=True, help="gate lane id in the venue file")
    p.add_argument("--hardware", required=True, type=Path, help="per-gate hardware file (TOML)")
    p.add_argument("--broker", help="broker URL (mqtt://host:port); else the credential file's")
    p.add_argument(
        "--credentials",
        type=Path,
        help="broker credential file (JSON); overrides the hardware file's",
    )


def _load(args):
    from sesame.common.cli_venue import load_or_fail
    from sesame.common.venue import ConfigError
    from sesame.gate.hardware import load_hardware

    venue = load_or_fail(args.venue)
    if args.gate not in venue.gates:
        known = ", ".join(sorted(venue.gates))
        raise CliError(f"{args.venue}: no gate {args.gate!r} (known: {known})")
    try:
        hw = load_hardware(args.hardware)
    except ConfigError as e:
        raise CliError(str(e)) from None
    return venue, hw


def _keys(paths):
    from sesame.common.tokens import load_public_keys

    try:
        return load_public_keys(*paths, public_only=True)
    except (OSError, ValueError) as e:
        raise CliError(f"cannot load badge keys: {e}") from None


def _clock(args):
    from sesame.gate.clock import real_clock

    if not args.start_time:
        return real_clock
    try:
        start = datetime.fromisoformat(args.start_time)
    except ValueError:
        raise CliError(f"--start-time {args.start_time!r} is not an ISO time") from None
    if start.tzinfo is None:
        raise CliError("--start-time needs a UTC offset, e.g. 2018-11-22T09:00:00+01:00")
    from datetime import timedelta

    t0, speed = time.monotonic(), args.speed
    return lambda: start + timedelta(seconds=(time.monotonic() - t0) * speed)


def _decoders(hw, hw_file: Path) -> str | None:
    """The lane's camera decoders checked before anything opens: one that cannot run here is
    refused (file and line); the line says which decoders this machine can run."""
    from sesame.gate import decoders

    names = decoders.configured(hw.reader)
    if not names:
        return None  # no camera: nothing decodes on this lane
    chosen = []
    for name in names:
        try:
            chosen.append(decoders.require(name))
        except ValueError as e:  # DecoderUnavailable, or a name no decoder has
            raise CliError(f"{_line_of(hw_file, name)}: reader.decoder: {e}") from None
    line = f"decoder {', '.join(names)}; {decoders.summary()}"
    return line + "".join(f"; WARNING {s.label()}: {s.reason()}" for s in chosen if s.without)


def _line_of(path: Path, decoder: str) -> str:
    """FILE:LINE of the line choosing this decoder (FILE alone for the default decoder)."""
    import re

    want = re.compile(r'\bdecoder\s*=\s*["\']' + re.escape(decoder) + r'["\']')
    try:
        for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if want.search(text.split("#")[0]):
                return f"{path}:{n}"
    except OSError:
        pass
    return str(path)


def _turnstile(hw, lane, hw_file):
    t = _controller(hw, lane, hw_file)
    fire = hw.fire_input()
    if fire is None:
        return t
    from sesame.gate.fire_input import WithFireAlarm
    from sesame.gate.turnstile_gpio import GpioError

    try:  # the fire panel's contact on the board's own GPIO, whatever drives the arms
        return WithFireAlarm(t, fire)
    except GpioError as e:
        t.close()
        key = "fire_alarm" if hw.fire_alarm is not None else "controller.fire_alarm_pin"
        raise CliError(f"{hw_file}: {key}: {e}") from None


def _controller(hw, lane, hw_file):
    from sesame.gate.turnstile import MemoryTurnstile, SerialTurnstile

    if hw.controller.type == "gpio":
        from sesame.gate.turnstile_gpio import GpioError, GpioTurnstile, lane_problem

        if problem := lane_problem(hw.controller, lane):
            raise CliError(f"{hw_file}: controller.{problem}")
        try:
            return GpioTurnstile(hw.controller)
        except GpioError as e:
            raise CliError(f"{hw_file}: controller: {e}") from None
    if hw.controller.port == "simulated":
        return MemoryTurnstile(pushes=True)
    try:
        return SerialTurnstile(hw.controller.port, hw.controller.baudrate)
    except Exception as e:  # serial.SerialException, OSError
        raise CliError(f"turnstile controller {hw.controller.port}: {e}") from None


def run(args) -> int:
    from sesame.gate.agent import GateAgent
    from sesame.gate.display import render
    from sesame.gate.sdnotify import notify, watchdog_period

    venue, hw = _load(args)
    keys = _keys([*hw.agent.pubkeys, *args.pubkey])
    credentials = args.credentials or hw.agent.credentials
    if not args.broker and not credentials:
        raise CliError("no broker: give --broker URL or a credential file")
    if args.broker or credentials:
        from sesame.common.mqtt import parse_broker_url

        try:
            parse_broker_url(args.broker, credentials)
        except ValueError as e:
            raise CliError(str(e)) from None
        from sesame.common.mqtt_url import warn_password_in_url

        warn_password_in_url(args.broker)
    if decoders_line := _decoders(hw, args.hardware):
        print(f"gate {args.gate}: {decoders_line}", file=sys.stderr, flush=True)
    reader = None
    if hw.reader is not None:
        from sesame.gate.readers.base import open_reader

        try:
            reader = open_reader(hw.reader)
        except Exception as e:
            raise CliError(f"{args.hardware}: reader: {e}") from None
    try:
        turnstile = _turnstile(hw, venue.gates[args.gate], args.hardware)
    except CliError:
        if reader is not None:
            reader.close()
        raise

    lines = args.no_display or not sys.stdout.isatty()
    out_lock = threading.Lock()

    def log_line(dec) -> None:
        if not lines:
            return
        rec = {
            "gate": args.gate,
            "decision": dec.code,
            "reason": str(dec.reason) if dec.reason else None,
            "badge": dec.claims.badge if dec.claims else None,
            "passages": dec.passages,
            "outbox": agent.outbox_depth(),
        }
        with out_lock:
            print(json.dumps(rec), flush=True)

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    agent = GateAgent(
        venue,
        args.gate,
        data_dir=args.data_dir or hw.agent.data_dir,
        keys=keys,
        broker_url=args.broker,
        credentials=credentials,
        reader=reader,
        turnstile=turnstile,
        clock=_clock(args),
        trust_counter_clock=not args.no_counter_clock,
        pass_timeout=hw.controller.pass_timeout_s,
        heartbeat=hw.agent.heartbeat_s,
        on_decision=log_line,
    )
    metrics_http.serve(args, agent.metrics.registry, f"gate {args.gate}")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent.start()
    notify("READY=1")
    print(
        f"gate {args.gate}: running, epoch {agent.outbox.epoch}, outbox {agent.outbox_depth()}",
        file=sys.stderr,
        flush=True,
    )
    wd = watchdog_period()
    live = None
    if not lines:
        from rich.live import Live

        live = Live(render(agent.view()), screen=True, auto_refresh=False)
        live.start()
    try:
        next_wd = 0.0
        while not stop.wait(0.25):
            if live is not None:
                live.update(render(agent.view()), refresh=True)
            # Feed the watchdog only while the scan loop is alive: a hung loop gets restarted.
            if wd and time.monotonic() >= next_wd and time.monotonic() - agent.last_tick < 10:
                notify("WATCHDOG=1")
                next_wd = time.monotonic() + wd
    finally:
        if live is not None:
            live.stop()
        notify("STOPPING=1")
        agent.stop()
        if reader is not None:
            reader.close()
        turnstile.close()
    return 0


def doctor(args) -> int:
    from sesame.gate.doctor import run_checks

    venue, hw = _load(args)
    ok = True
    for check in run_checks(
        venue,
        args.gate,
        hw,
        broker=args.broker,
        credentials=args.credentials or hw.agent.credentials,
        timeout=args.timeout,
        click=args.click,
    ):
        print(check.line(), flush=True)
        ok = ok and check.ok
    return 0 if ok else 1


def register_provision(gsub: argparse._SubParsersAction) -> None:
    p = gsub.add_parser(
        "provision",
        help="write everything one lane's board needs (hardware file, credential, keys, unit)",
        description="Write the bundle of one lane: copy it to /etc/sesame on the board, then "
        "`sesame gate doctor` and `sesame gate run` start from it.",
    )
    p.add_argument("--venue", required=True, type=Path, help="venue file (TOML)")
    p.add_argument("--gate", required=True, help="gate lane id in the venue file")
    p.add_argument(
        "--broker-config", required=True, type=Path, help="the `sesame broker setup` folder"
    )
    p.add_argument(
        "--pubkey", required=True, action="append", type=Path, help="badge public key (PEM)"
    )
    p.add_argument("--out", required=True, type=Path, help="folder to write the bundle into")
    p.add_argument(
        "--reader",
        choices=["camera", "serial", "keyboard", "none"],
        help="reader in the hardware file (default: camera, none on reader-less lanes)",
    )
    p.set_defaults(func=provision)


def provision(args) -> int:
    from sesame.common.cli_venue import load_or_fail
    from sesame.gate.provision import ProvisionError
    from sesame.gate.provision import provision as make

    venue = load_or_fail(args.venue)
    try:
        files = make(venue, args.venue, args.gate, args.broker_config, args.pubkey, args.out,
                     args.reader)  # fmt: skip
    except ProvisionError as e:
        raise CliError(str(e)) from None
    except OSError as e:
        raise CliError(f"{args.out}: {e.strerror or e}") from None
    for f in files:
        print(f, flush=True)
    print(f"lane {args.gate}: {len(files)} files in {args.out} (see its README.md)",
          file=sys.stderr)  # fmt: skip
    return 0
