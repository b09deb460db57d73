"""A simulated clock shared between processes through a small file.

`sesame simulate`/`demo` and replays run the counter on simulated time: in their own process
they hand it the simulator's clock object; a counter in a child process
(`sesame counter run --clock-file PATH`) reads the time the simulator writes here. The file
holds the time as Unix milliseconds in 8 bytes (little-endian, signed), memory-mapped on both
sides, so that the simulator can set it before every action (a store of 8 bytes, no system
call). A read is repeated until two reads agree, so a write torn by the reader never shows.
"""

from __future__ import annotations

import mmap
import os
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FMT = struct.Struct("<q")


class ClockFileError(ValueError):
    pass


class ClockFileWriter:
    """The simulator's side: `set(ms)` before every action."""

    def __init__(self, path: str | Path, ms: int):
        self.path = Path(path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, _FMT.size)
            self._map = mmap.mmap(fd, _FMT.size)
        finally:
            os.close(fd)
        self.set(ms)

    def set(self, ms: int) -> None:
        self._map[: _FMT.size] = _FMT.pack(ms)

    def close(self) -> None:
        self._map.close()


class FileClock:
    """The counter's side: a clock (callable like `datetime.now`) read from the file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as e:
            raise ClockFileError(f"{path}: cannot open the clock file ({e.strerror})") from None
        try:
            if os.fstat(fd).st_size != _FMT.size:
                raise ClockFileError(f"{path}: not a clock file ({_FMT.size} bytes expected)")
            self._map = mmap.mmap(fd, _FMT.size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)

    def ms(self) -> int:
        a = _FMT.unpack(self._map[: _FMT.size])[0]
        while True:
            b = _FMT.unpack(self._map[: _FMT.size])[0]
            if a == b:
                return a
            a = b

    def __call__(self) -> datetime:
        return EPOCH + timedelta(milliseconds=self.ms())
