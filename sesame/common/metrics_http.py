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
    if not 1 <= port <= 65535:
        raise CliError(f"--metrics-port {port} is not a TCP port (1-65535)")
    return serve_registry(args.metrics_host, port, registry, who)


class Merged:
    """Several registries served as one endpoint (the lanes of `sesame demo`, one process).

    Metric families of the same name are merged into one: Prometheus refuses a second TYPE
    line for a name, and each lane's registry defines the same families (told apart by their
    `gate` label)."""

    def __init__(self, registries) -> None:
        self.registries = list(registries)

    def collect(self):
        families: dict[str, object] = {}
        for reg in self.registries:
            for fam in reg.collect():
                have = families.get(fam.name)
                if have is None:
                    families[fam.name] = fam
                else:
                    have.samples.extend(fam.samples)  # type: ignore[attr-defined]
        return iter(families.values())


def serve_registry(host: str, port: int, registry, who: str, option: str = "--metrics-port"):
    """Serve one registry (or a `Merged`) on host:port; returns the server (.shutdown()).
    The line saying where goes to stderr: `sesame gate run --no-display` keeps stdout for
    its JSON lines."""
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, host, registry=registry)
    except OSError as e:
        raise CliError(f"{option} {port}: cannot listen on {host}: {e.strerror or e}", 1) from None
    print(f"{who}: metrics on http://{host}:{port}/metrics", file=sys.stderr, flush=True)
    return server
