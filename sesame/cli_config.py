"""`sesame config check [PATH]`: load a venue file and print what it describes."""

from __future__ import annotations

import argparse
import os

from rich.console import Console
from rich.table import Table

from sesame.common.cli_venue import DEFAULT_VENUE, VENUE_HELP, load_or_fail

__all__ = ["DEFAULT_VENUE", "VENUE_HELP", "load_or_fail", "register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="check a venue configuration file")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", parser_class=type(p))
    csub.required = True
    check = csub.add_parser("check", help="validate a venue file and print a summary")
    check.add_argument("path", nargs="?", default=DEFAULT_VENUE, help=VENUE_HELP)
    check.set_defaults(func=_check)


def _id_col(is_id: bool) -> dict:
    """Ids are what the user types next (`--gate churchill-in-1`): never cut them with an
    ellipsis on a narrow terminal or in a pipe (80 columns); the other columns wrap."""
    return {"no_wrap": True, "overflow": "fold"} if is_id else {}


def _check(args: argparse.Namespace) -> int:
    venue = load_or_fail(args.path)
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=120)  # a pipe or a file: room for whole values, not 80 columns
    console.print(f"[bold]{venue.venue.name}[/] ({venue.id}), time zone {venue.venue.timezone}")

    zones = Table(title="Zones")
    for col in ("zone", "name", "capacity", "near full at", "offline policy", "opens onto"):
        zones.add_column(col, **_id_col(col in ("zone", "opens onto")))
    for z in venue.zones.values():
        zones.add_row(
            z.id,
            z.name,
            f"{z.capacity:,}",
            f"{round(z.capacity * z.near_full):,}",
            z.offline_policy,
            z.parent or "outside",
        )
    console.print(zones)

    gates = Table(title="Gate lanes")
    for col in ("gate", "from", "to", "direction", "reader", "kind"):
        gates.add_column(col, **_id_col(col in ("gate", "from", "to")))
    for g in venue.gates.values():
        gates.add_row(
            g.id,
            g.from_zone,
            g.to_zone,
            "exit" if g.is_exit else "entry",
            "yes" if g.reader else "no",
            g.kind,
        )
    console.print(gates)

    days = Table(title="Event days")
    for col in ("date", "opens", "closes", "note"):
        days.add_column(col)
    for d in venue.days:
        days.add_row(
            d.date.isoformat(), d.opens.strftime("%H:%M"), d.closes.strftime("%H:%M"), d.note
        )
    console.print(days)

    cats = Table(title="Badge categories")
    for col in ("category", "zones", "re-entry", "early entry"):
        cats.add_column(col, **_id_col(col == "category"))
    for c in venue.categories.values():
        cats.add_row(c.id, ", ".join(c.zones), c.reentry.value, f"{c.early_minutes} min")
    console.print(cats)
    console.print(f"[green]OK[/]: {args.path}")
    return 0
