"""Handheld barcode scanner in USB-CDC (virtual serial port) mode.

The scanner sends each code as one line ending in CR, LF or CRLF. The port can vanish at any
time (cable pulled, scanner rebooted): the reader then shows `disconnected` and reopens the same
path with exponential backoff, so a udev symlink like /dev/serial/by-id/... picks up the scanner
when it comes back, whatever ttyACM number it gets.
"""

from __future__ import annotations

import errno
import logging
import time

import serial

from sesame.gate.readers.base import (
    DEFAULT_DEBOUNCE_S,
    HEALTH_DISCONNECTED,
    HEALTH_OK,
    MAX_LINE_BYTES,
    Clock,
    LineFramer,
    ThreadedReader,
)

log = logging.getLogger(__name__)


# The port is simply not there (unplugged, or not yet re-created by udev).
_ABSENT = {errno.ENOENT, errno.ENODEV, errno.ENXIO}


def _open_failure(e: Exception) -> str:
    """`disconnected` for a missing device; `error: ...` for one that is there but unusable
    (permission denied: the service user is not in `dialout`; not a tty; locked by another
    process) — the reader keeps retrying either way, the status says which."""
    if getattr(e, "errno", None) in _ABSENT:
        return HEALTH_DISCONNECTED
    return f"error: {e}"


class SerialScannerReader(ThreadedReader):
    name = "serial-scanner"

    def __init__(
        self,
        port: str,
        baudrate: int = 9600,
        debounce: float = DEFAULT_DEBOUNCE_S,
        clock: Clock = time.monotonic,
        backoff_initial: float = 0.1,
        backoff_max: float = 2.0,
        max_line_bytes: int = MAX_LINE_BYTES,
    ):
        super().__init__(debounce, clock)
        self.port, self.baudrate = port, baudrate
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.max_line_bytes = max_line_bytes
        self.reconnects = 0  # times the port came back after being lost

    def _run(self) -> None:
        backoff = self.backoff_initial
        ever_open = False
        while not self._stop.is_set():
            try:
                # exclusive: a second process (a doctor run, a stray agent) must not take
                # half the scans; it gets an error instead.
                ser = serial.Serial(self.port, self.baudrate, timeout=0.1, exclusive=True)
            except (serial.SerialException, OSError) as e:
                health = _open_failure(e)
                if health != self.health:
                    log.warning("%s: %s: %s", self.name, self.port, e)
                self.health = health
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max)
                continue
            if ever_open:
                self.reconnects += 1
            ever_open = True
            backoff = self.backoff_initial
            self.health = HEALTH_OK
            try:
                self._pump(ser)
            except (serial.SerialException, OSError, TypeError) as e:
                # pyserial raises SerialException ("returned no data") or OSError (EIO) when
                # the device goes away under a read; TypeError on some unplugs in in_waiting.
                log.warning("%s: %s lost: %s", self.name, self.port, e)
                self.health = HEALTH_DISCONNECTED
            finally:
                try:
                    ser.close()
                except (serial.SerialException, OSError):
                    pass

    def _pump(self, ser: serial.Serial) -> None:
        framer = LineFramer(self.max_line_bytes)  # a half line from before an unplug is dropped
        while not self._stop.is_set():
            data = ser.read(ser.in_waiting or 1)
            if data:
                for text, cut in framer.feed(data):
                    self._emit_line(text, cut)
