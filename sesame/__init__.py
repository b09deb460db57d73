"""Sesame: on-site access control and visitor counting for large venues."""

__version__ = "0.1.0"
