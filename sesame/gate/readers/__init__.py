"""Code readers: camera, serial scanner, keyboard — one small interface (`CodeReader`)."""

from sesame.gate.readers.base import (
    DEFAULT_DEBOUNCE_S,
    CodeReader,
    Debouncer,
    LineFramer,
    MergedReader,
    QueueReader,
    open_reader,
)

__all__ = [
    "DEFAULT_DEBOUNCE_S",
    "CodeReader",
    "Debouncer",
    "LineFramer",
    "MergedReader",
    "QueueReader",
    "open_reader",
]
