"""The venue file every subsystem's command takes (`--venue`), loaded the same way by all."""

from __future__ import annotations

from importlib.resources import files

from sesame.common.errors import CliError
from sesame.common.venue import ConfigError, Venue, load_venue

# The reference venue, shipped inside the package (sesame/venues/, a data folder): every
# `--venue` default, from any directory; `config/grand-palais.toml` in a clone links to it.
DEFAULT_VENUE = str(files("sesame.venues").joinpath("grand-palais.toml"))
VENUE_HELP = "venue TOML file (default: the reference venue shipped with Sesame)"


def load_or_fail(path: str) -> Venue:
    """Load a venue for any command; a bad file becomes a one-line CLI error (exit 2)."""
    try:
        return load_venue(path)
    except ConfigError as e:
        raise CliError(str(e), 2) from None
