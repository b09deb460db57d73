"""Errors the command line turns into one line and an exit code."""


class CliError(Exception):
    """Bad input or a failed step: printed as one line, exit code `code` (2: bad input)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


class BadgeError(Exception):
    """A refused badge request (bad output place, bad prefix, bad revocation file...)."""
