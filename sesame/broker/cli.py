"""`sesame broker setup|run`: generate the broker configuration from the venue, run it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sesame.common.cli_venue import DEFAULT_VENUE, VENUE_HELP, load_or_fail
from sesame.common.errors import CliError

DEFAULT_DIR = "run/broker"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("broker", help="MQTT broker: generate its configuration, run it")
    bsub = p.add_subparsers(dest="broker_command", metavar="ACTION", parser_class=type(p))
    bsub.required = True

    s = bsub.add_parser(
        "setup",
        help="write mosquitto.conf, passwords, ACL and credential files for a venue",
        description="Write a Mosquitto configuration, one account per gate plus counter, "
        "dashboard and admin, the ACL and per-account credential files (mode 0600). "
        "Re-running keeps passwords unless --rotate.",
    )
    s.add_argument("--venue", default=DEFAULT_VENUE, help=VENUE_HELP)
    s.add_argument("--out", default=DEFAULT_DIR, help=f"output folder (default {DEFAULT_DIR})")
    s.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        help="TLS listener with a private CA (default: as the existing set-up, else no)",
    )
    s.add_argument(
        "--allow-plaintext",
        action="store_true",
        help="allow a listener off loopback without --tls (a closed network only: every "
        "password crosses it in clear)",
    )
    s.add_argument("--rotate", action="store_true", help="new passwords for every account")
    s.add_argument(
        "--host", help="listener address (default: as the existing set-up, else loopback)"
    )
    s.add_argument(
        "--port",
        type=int,
        help="listener port (default: as the existing set-up, else 1883, 8883 with --tls)",
    )
    s.add_argument(
        "--home-assistant", action="store_true",
        help="also a read-only 'homeassistant' account for Home Assistant's MQTT integration",
    )  # fmt: skip
    s.add_argument(
        "--nats-cluster",
        type=int,
        metavar="N",
        help="also write an N-node NATS JetStream cluster serving MQTT (docs/scaling.md)",
    )
    s.add_argument(
        "--nats-hosts",
        metavar="H1,H2,...",
        help="with --nats-cluster: one address per node (one node per machine); default all "
        "nodes on --host with ports shifted by one per node",
    )
    s.set_defaults(func=_setup)

    r = bsub.add_parser(
        "run",
        help="run the broker in the foreground (Mosquitto, else the embedded broker)",
        description="Run Mosquitto with the generated configuration in the foreground; when "
        "Mosquitto is not installed, run the embedded Python broker (development default) "
        "with the same accounts and permissions.",
    )
    r.add_argument("--config", default=DEFAULT_DIR, help=f"setup folder (default {DEFAULT_DIR})")
    r.add_argument("--embedded", action="store_true", help="use the embedded broker")
    r.add_argument("--port", type=int, help="listen on this port instead of the configured one")
    r.add_argument(
        "--node",
        type=int,
        metavar="N",
        help="NATS cluster folder: run only node N (one per machine); default every node",
    )
    r.set_defaults(func=_run)

    a = bsub.add_parser(
        "client-args",
        help="set up mosquitto_sub/mosquitto_pub for a credential file (no password shown)",
        description="Write the options that connect mosquitto_sub and mosquitto_pub with a "
        "generated credential file into a private folder (mode 0700, files 0600) and print "
        "the XDG_CONFIG_HOME=FOLDER that makes them read it, e.g. env $(sesame broker "
        "client-args run/broker/credentials/dashboard.json) mosquitto_sub -t "
        "'sesame/v1/grand-palais/#' -v. The password never appears on a command line.",
    )
    a.add_argument("credentials", help="credential file (DIR/credentials/<account>.json)")
    a.add_argument(
        "--dir",
        help="folder for the options files (default <credential folder>/<account>.mosquitto)",
    )
    a.set_defaults(func=_client_args)


def _setup(args: argparse.Namespace) -> int:
    from sesame.broker.setup import setup

    venue = load_or_fail(args.venue)
    if args.port is not None and not 0 < args.port < 65536:
        raise CliError(f"--port {args.port}: must be between 1 and 65535")
    if args.nats_cluster is not None:
        return _setup_cluster(args, venue)
    if args.nats_hosts:
        raise CliError("--nats-hosts needs --nats-cluster N")
    from sesame.broker.setup import PlaintextRefused

    try:
        result = setup(
            venue, args.out, host=args.host, port=args.port, tls=args.tls, rotate=args.rotate,
            home_assistant=args.home_assistant, allow_plaintext=args.allow_plaintext,
        )  # fmt: skip
    except PlaintextRefused as e:
        raise CliError(str(e)) from None
    except OSError as e:
        raise CliError(f"{args.out}: {e.strerror or e}", 1) from None
    out = result.out
    s = result.settings
    print(f"broker set-up for venue {venue.id!r} in {out}/")
    print(f"  listener {s.scheme}://{s.host}:{s.port}, config {out / 'mosquitto.conf'}")
    from sesame.broker.ports import port_taken, taken_message
    from sesame.broker.setup import is_loopback

    if not s.tls and not is_loopback(s.host):
        print(f"warning: plaintext listener on {s.host} (--allow-plaintext): every password "
              "crosses that network in clear", file=sys.stderr)  # fmt: skip
    if port_taken(s.host, s.port):
        print(f"warning: {taken_message(s.host, s.port, '--port')}", file=sys.stderr)
    if result.created:  # never the passwords themselves: a terminal is not a safe
        print(f"  new accounts: {', '.join(result.created)}")
        print(f"  their passwords are in {out / 'credentials'}/<account>.json (mode 0600)")
    if result.kept:
        print(f"  kept the passwords of {len(result.kept)} accounts (--rotate to renew them)")
    if result.removed:
        print(f"  removed accounts: {', '.join(result.removed)}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"run it with: sesame broker run --config {out}")
    return 0


def _setup_cluster(args: argparse.Namespace, venue) -> int:
    from sesame.broker.nats_setup import CLUSTER, ClusterSettings, setup_cluster

    hosts = [h.strip() for h in args.nats_hosts.split(",")] if args.nats_hosts else None
    if hosts and not all(hosts):
        raise CliError(f"--nats-hosts {args.nats_hosts!r}: an empty host name")
    try:
        result = setup_cluster(
            venue, args.out, nodes=args.nats_cluster, hosts=hosts,
            host=args.host or "127.0.0.1", port=args.port, tls=bool(args.tls),
            rotate=args.rotate, allow_plaintext=args.allow_plaintext,
        )  # fmt: skip
    except ValueError as e:
        raise CliError(str(e)) from None
    except OSError as e:
        raise CliError(f"{args.out}: {e.strerror or e}", 1) from None
    out = result.out
    cs = ClusterSettings.load(out)
    print(f"NATS cluster of {len(cs.nodes)} nodes for venue {venue.id!r} in {out}/ ({CLUSTER})")
    for n in cs.nodes:
        print(f"  {n.name}: MQTT {cs.scheme}://{n.host}:{n.mqtt_port}, routes {n.cluster_port}")
    if result.created:
        print(f"  new accounts: {', '.join(result.created)} (passwords in {out / 'credentials'}/)")
    if result.kept:
        print(f"  kept the passwords of {len(result.kept)} accounts (--rotate to renew them)")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"run it with: sesame broker run --config {out} [--node N]")
    return 0


def _run(args: argparse.Namespace) -> int:
    from sesame.broker.nats_setup import is_cluster
    from sesame.broker.ports import port_taken, taken_message
    from sesame.broker.process import mosquitto_binary
    from sesame.broker.setup import CONF, BrokerSettings

    config = Path(args.config)
    if is_cluster(config):
        from sesame.broker.nats_process import BrokerStartError, run_foreground

        if args.port is not None or args.embedded:
            raise CliError("--port and --embedded do not apply to a NATS cluster folder")
        try:
            return run_foreground(config, args.node)
        except (ValueError, BrokerStartError) as e:
            raise CliError(str(e)) from None
    if args.node is not None:
        raise CliError(f"--node: {config} is not a NATS cluster folder (setup --nats-cluster N)")
    try:
        settings = BrokerSettings.load(config)
    except ValueError as e:
        raise CliError(str(e)) from None
    if args.port is not None and not 0 < args.port < 65536:
        raise CliError(f"--port {args.port}: must be between 1 and 65535")
    port = args.port or settings.port
    if port_taken(settings.host, port):
        # Mosquitto would only say "Address already in use" and exit 1.
        raise CliError(taken_message(settings.host, port, "--port"))
    if args.embedded or mosquitto_binary() is None:
        from sesame.broker.embedded import run_foreground

        why = "--embedded" if args.embedded else "mosquitto is not installed"
        print(
            f"DEVELOPMENT DEFAULT: embedded Python broker (amqtt, MQTT 3.1.1 only) because {why}; "
            "use Mosquitto in production",
            file=sys.stderr,
        )
        return run_foreground(config, port=args.port)
    import os
    import pwd

    conf = config / CONF
    run_as = None
    if os.geteuid() == 0:
        # As root Mosquitto would switch to the `mosquitto` user, who cannot read the 0600
        # password file; run as the owner of the set-up folder instead.
        run_as = pwd.getpwuid(config.stat().st_uid).pw_name
        if run_as == "root":
            print(
                "warning: the broker runs as root because the set-up folder belongs to root; "
                "chown it to an unprivileged user",
                file=sys.stderr,
            )
    if args.port is not None or run_as is not None:
        from sesame.broker.setup import mosquitto_conf

        conf = config / "mosquitto.run.conf"
        conf.write_text(mosquitto_conf(config, settings, port=args.port, run_as=run_as))
    print(
        f"mosquitto -c {conf} ({settings.scheme}://{settings.host}:{args.port or settings.port})",
        file=sys.stderr,
        flush=True,
    )
    os.execv(mosquitto_binary(), ["mosquitto", "-c", str(conf)])
    return 0  # not reached


def _client_args(args: argparse.Namespace) -> int:
    from sesame.common.mqtt import parse_broker_url
    from sesame.common.private_files import private_dir, write_private

    try:
        url = parse_broker_url(None, args.credentials)
    except ValueError as e:
        raise CliError(str(e)) from None
    opts = [("-h", url.host), ("-p", str(url.port))]
    if url.username:
        opts.append(("-u", url.username))
    if url.password is not None:
        opts.append(("-P", url.password))
    if url.tls:
        opts.append(("--cafile", str(url.ca)) if url.ca else ("--capath", "/etc/ssl/certs"))
        if url.cert and url.key:
            opts += [("--cert", str(url.cert)), ("--key", str(url.key))]
    if any(" " in v or "\n" in v for _, v in opts):  # the options file splits on spaces
        raise CliError("a path or value contains a space; pass the options by hand")
    cred = Path(args.credentials)
    folder = Path(args.dir) if args.dir else cred.parent / f"{cred.stem}.mosquitto"
    if " " in str(folder.resolve()):
        raise CliError(f"{folder.resolve()}: the folder's path contains a space; use --dir")
    text = "".join(f"{o} {v}\n" for o, v in opts)
    try:
        private_dir(folder)
        for tool in ("mosquitto_sub", "mosquitto_pub"):  # each reads $XDG_CONFIG_HOME/<tool>
            write_private(folder / tool, text)
    except OSError as e:
        raise CliError(f"{folder}: {e.strerror or e}", 1) from None
    print(f"XDG_CONFIG_HOME={folder.resolve()}")
    return 0
