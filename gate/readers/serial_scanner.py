"""Handheld barcode scanner in USB-CDC (virtual serial port) mode.

The scanner sends each code as one line ending in CR, LF or CRLF. The port can vanish at any
time (cable pulled, scanner rebooted): the reader then shows `disconnected` and reopens the same
path with exponential backoff, so a udev symlink like /dev/serial/by-id/... picks up the scanner
when it comes back, whatever ttyACM number it gets.
"""

from __future__ import annotations

import logging
import time

import serial

from gate.readers.base import (
    DEFAULT_DEBOUNCE_S,
    HEALTH_DISCONNECTED,
    HEALTH_OK,
    MAX_LINE_BYTES,
    Clock,
    LineFramer,
    ThreadedReader,
)

log = logging.getLogger(__name__)


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
                ser = serial.Serial(self.port, self.baudrate, timeout=0.1)
            except (serial.SerialException, OSError) as e:
                if self.health == HEALTH_OK or not ever_open:
                    log.info("%s: %s not available: %s", self.name, self.port, e)
                self.health = HEALTH_DISCONNECTED
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
