"""`sesame gate ...`: run, scan, doctor. Each part registers its own actions."""

from __future__ import annotations

import argparse
import importlib

# gate.agent_cli: run, doctor (the agent); gate.scan_cli: scan (the code readers).
ACTION_MODULES = ["sesame.gate.agent_cli", "sesame.gate.scan_cli"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gate", help="the turnstile agent of one lane")
    gsub = p.add_subparsers(dest="gate_command", metavar="ACTION", parser_class=type(p))
    gsub.required = True
    for name in ACTION_MODULES:
        importlib.import_module(name).register(gsub)
