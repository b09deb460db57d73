"""Venue files shipped with the program (package data, so they are found wherever the command
runs, from a clone or an installed wheel).

`grand-palais.toml` is the reference venue: the default of every `--venue`. In a clone,
`config/grand-palais.toml` is a symbolic link to it, the path the documentation uses.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

# A regular (not zipped) package: its resources are files on disk.
REFERENCE_VENUE = Path(str(files(__name__).joinpath("grand-palais.toml")))
