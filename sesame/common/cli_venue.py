"""The venue file every subsystem's command takes (`--venue`), loaded the same way by all."""

from __future__ import annotations

from sesame.common.errors import CliError
from sesame.common.venue import ConfigError, Venue, load_venue

DEFAULT_VENUE = "config/grand-palais.toml"


def load_or_fail(path: str) -> Venue:
    """Load a venue for any command; a bad file becomes a one-line CLI error (exit 2)."""
    try:
        return load_venue(path)
    except ConfigError as e:
        raise CliError(str(e), 2) from None
