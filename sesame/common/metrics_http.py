"""Serving Prometheus metrics: the opt-in `--metrics-port` / `--metrics-host` options of the
long-running commands, and the small HTTP server behind them.

Each process keeps its own `CollectorRegistry` (several agents or counters in one process,
as in `sesame demo` and the tests, never collide). Bound to loopback unless told otherwise:
the figures say how busy each entrance is, which is not for everyone on the network.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from sesame.common.errors import CliError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

DEFAULT_HOST = "127.0.0.1"


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--metrics-port", type=int, metavar="PORT",
        help="serve Prometheus metrics on this port (/metrics); off by default",
    )  # fmt: skip
    p.add_argument(
        "--metrics-host", default=DEFAULT_HOST, metavar="ADDRESS",
        help=f"address the metrics port listens on (default {DEFAULT_HOST})",
    )  # fmt: skip


def serve(args: argparse.Namespace, registry: CollectorRegistry, who: str) -> object | None:
    """Start the metrics server when asked; returns it (call .shutdown()) or None."""
    port = getattr(args, "metrics_port", None)
    if port is None:
        return None
    from prometheus_client import start_http_server

    if not 1 <= port <= 65535:
        raise CliError(f"--metrics-port {port} is not a TCP port (1-65535)")
    try:
        server, _thread = start_http_server(port, args.metrics_host, registry=registry)
    except OSError as e:
        raise CliError(f"--metrics-port {port}: cannot listen on {args.metrics_host}: "
                       f"{e.strerror or e}", 1) from None  # fmt: skip
    # on stderr: `sesame gate run --no-display` keeps stdout for its JSON lines
    print(f"{who}: metrics on http://{args.metrics_host}:{port}/metrics", file=sys.stderr,
          flush=True)  # fmt: skip
    return server
