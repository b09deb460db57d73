"""Keyboard / standard input: one code per line.

Covers a scanner in keyboard-emulation (HID) mode typing into the gate's console, an operator
typing a badge number, and pipes (`cat codes.txt | sesame gate run ...`). End of input makes the
reader `disconnected`; it does not reopen standard input.
"""

from __future__ import annotations

import os
import select
import sys
import time
from typing import BinaryIO

from sesame.gate.readers.base import (
    DEFAULT_DEBOUNCE_S,
    HEALTH_DISCONNECTED,
    HEALTH_OK,
    MAX_LINE_BYTES,
    Clock,
    LineFramer,
    ThreadedReader,
)


class KeyboardReader(ThreadedReader):
    name = "keyboard"

    def __init__(
        self,
        stream: BinaryIO | int | None = None,
        debounce: float = DEFAULT_DEBOUNCE_S,
        clock: Clock = time.monotonic,
        max_line_bytes: int = MAX_LINE_BYTES,
    ):
        super().__init__(debounce, clock)
        if stream is None:
            stream = sys.stdin.buffer
        # Raw fd + select so close() never waits on a blocked read and bytes that are not
        # UTF-8 reach the framer untouched (a text stream would raise on them).
        if not isinstance(stream, int) and not hasattr(stream, "fileno"):
            raise ValueError("the keyboard reader reads standard input (or an open file)")
        self._fd = stream if isinstance(stream, int) else stream.fileno()
        self._framer = LineFramer(max_line_bytes)
        self.health = HEALTH_OK

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self._fd, 65536)
            except OSError as e:
                self.health = f"error: {e.strerror or e}"
                return
            if not data:  # end of input
                for text, cut in self._framer.flush():
                    self._emit_line(text, cut)
                self.health = HEALTH_DISCONNECTED
                return
            for text, cut in self._framer.feed(data):
                self._emit_line(text, cut)
