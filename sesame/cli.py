"""The `sesame` command line: wiring only. Each subsystem registers its own commands.

Commands call library functions and turn their errors into one line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sqlite3
import sys
from collections.abc import Sequence

from sesame import __version__
from sesame.common.errors import CliError

# (module, register function): each adds its subcommands to the top-level parser.
# Imported lazily so `sesame config check` does not load OpenCV or the web stack.
COMMAND_MODULES = [
    "sesame.cli_config",
    "sesame.badges.cli",
    "sesame.gate.cli",
    "sesame.broker.cli",
    "sesame.counter.cli",
    "sesame.dashboard.cli",
    "sesame.run.cli",
]


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (usage stays behind --help)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> Parser:
    parser = Parser(prog="sesame", description="On-site access control and visitor counting.")
    parser.add_argument("--version", action="version", version=f"sesame {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as e:
        print(f"sesame {args.command}: error: {e}", file=sys.stderr)
        return e.code
    except BrokenPipeError:
        # `sesame ... | head`: the reader has gone; stop quietly like other Unix tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:
        # Last resort for a path the user gave that a handler did not check (missing folder,
        # no permission, disk full): one line naming the file, not a traceback.
        print(f"sesame {args.command}: error: {_os_error(e)}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as e:
        # A database option pointing at a file that is not SQLite (or is damaged).
        print(f"sesame {args.command}: error: not a usable database ({e})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _os_error(e: OSError) -> str:
    what = e.strerror or str(e)
    return f"{e.filename}: {what}" if e.filename else what


if __name__ == "__main__":
    sys.exit(main())
