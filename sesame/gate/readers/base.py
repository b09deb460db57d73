"""The code-reader interface, shared plumbing (debounce, line framing) and `open_reader`.

Every reader hands out *debounced scans*: one badge held in front of a camera, or one trigger
pull that the scanner sends twice, is one scan. Readers run their device in a thread and never
raise from it: a device that disappears shows in `health` and is reopened with backoff.
"""

from __future__ import annotations

import inspect
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)

Clock = Callable[[], float]

DEFAULT_DEBOUNCE_S = 2.0
# A Sesame token is ~170 characters and verify() refuses anything over 600; a line far beyond
# that is garbage (or a stuck scanner) and is cut here so one bad line cannot eat memory.
MAX_LINE_BYTES = 2048

_TERMINATOR = re.compile(rb"[\r\n]")

HEALTH_OK = "ok"
HEALTH_DISCONNECTED = "disconnected"


@runtime_checkable
class CodeReader(Protocol):
    health: str  # "ok" | "disconnected" | "error: ..."

    def read(self, timeout: float) -> str | None:
        """The next debounced scan, or None when nothing came within `timeout` seconds."""
        ...

    def close(self) -> None: ...


class Debouncer:
    """Drops a code seen again within `window` seconds of its last sighting.

    The window restarts at every sighting, so a badge held in front of the camera for a minute
    is one scan, and only `window` seconds after it was taken away does it count again.
    """

    def __init__(self, window: float = DEFAULT_DEBOUNCE_S, clock: Clock = time.monotonic):
        self.window, self._clock = window, clock
        self._last_seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def accept(self, text: str) -> bool:
        now = self._clock()
        with self._lock:
            last = self._last_seen.get(text)
            self._last_seen[text] = now
            if len(self._last_seen) > 256:  # forget codes not seen for a while
                self._last_seen = {
                    t: s for t, s in self._last_seen.items() if now - s <= self.window
                }
            return last is None or now - last > self.window


class LineFramer:
    """Bytes in, text lines out: CR, LF or CRLF terminated, as USB-CDC scanners send them.

    Undecodable bytes become U+FFFD (the decision then says MALFORMED). A line longer than
    `max_bytes` is cut: its first `max_bytes` come out once, flagged, and the rest up to the next
    terminator is dropped.
    """

    def __init__(self, max_bytes: int = MAX_LINE_BYTES):
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._overflowed = False  # inside a line already cut: drop until the terminator

    def feed(self, data: bytes) -> list[tuple[str, bool]]:
        """Lines completed by `data`, each as (text, was_cut). Empty lines are skipped."""
        out: list[tuple[str, bool]] = []
        *done, rest = _TERMINATOR.split(data)
        for segment in done:
            self._take(segment)
            if self._overflowed:
                self._overflowed = False  # the cut line's tail ends here
            elif self._buf:
                out.append((self._text(), len(self._buf) > self.max_bytes))
            self._buf.clear()
        self._take(rest)
        if len(self._buf) > self.max_bytes:  # over-long and still going: cut it now
            out.append((self._text(), True))
            self._buf.clear()
            self._overflowed = True
        return out

    def flush(self) -> list[tuple[str, bool]]:
        """The unterminated rest at end of input (a keyboard stream closing mid-line)."""
        cut = len(self._buf) > self.max_bytes
        rest = [] if self._overflowed or not self._buf else [(self._text(), cut)]
        self._buf.clear()
        self._overflowed = False
        return rest

    def _take(self, chunk: bytes) -> None:
        if not self._overflowed:
            self._buf += chunk[: self.max_bytes + 1 - len(self._buf)]
            # one byte more than the limit is kept so feed() can tell "full" from "over"

    def _text(self) -> str:
        return bytes(self._buf[: self.max_bytes]).decode("utf-8", errors="replace")


class QueueReader:
    """An in-memory reader: `push(text)` then `read()`. For tests and the simulator.

    With `debounce` > 0 it debounces like a real device; by default every push is a scan.
    """

    def __init__(self, debounce: float = 0.0, clock: Clock = time.monotonic):
        self.health = HEALTH_OK
        self._q: queue.Queue[str] = queue.Queue()
        self._debouncer = Debouncer(debounce, clock) if debounce > 0 else None
        self._closed = False

    def push(self, text: str) -> None:
        if self._debouncer is None or self._debouncer.accept(text):
            self._q.put(text)

    def read(self, timeout: float) -> str | None:
        if self._closed:
            return None
        try:
            return self._q.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

    def close(self) -> None:
        self._closed = True
        self.health = HEALTH_DISCONNECTED


class ThreadedReader:
    """Base of the device readers: a daemon thread produces raw codes via `_emit`, debounced
    into a queue that `read()` drains. Subclasses implement `_run()` and watch `_stop`."""

    name = "reader"

    def __init__(self, debounce: float = DEFAULT_DEBOUNCE_S, clock: Clock = time.monotonic):
        self.health = HEALTH_DISCONNECTED
        self.cut_lines = 0  # over-long lines cut (each one logged as a warning)
        self._q: queue.Queue[str] = queue.Queue()
        self._debouncer = Debouncer(debounce, clock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._guarded_run, name=self.name, daemon=True)

    def start(self) -> ThreadedReader:
        self._thread.start()
        return self

    def _guarded_run(self) -> None:
        try:
            self._run()
        except Exception as e:  # the device thread must never die silently
            log.exception("%s stopped", self.name)
            self.health = f"error: {e}"

    def _run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _emit(self, text: str) -> None:
        if text and self._debouncer.accept(text):
            self._q.put(text)

    def _emit_line(self, text: str, was_cut: bool) -> None:
        if was_cut:
            self.cut_lines += 1
            log.warning("%s: line over %d bytes cut", self.name, MAX_LINE_BYTES)
        self._emit(text)

    def read(self, timeout: float) -> str | None:
        try:
            return self._q.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.health = HEALTH_DISCONNECTED


class MergedReader:
    """Several readers as one, with one shared debounce: a scanner that types the code as a
    keyboard *and* sends it on its serial port gives one scan, not two."""

    def __init__(
        self,
        readers: Iterable[CodeReader],
        debounce: float = DEFAULT_DEBOUNCE_S,
        clock: Clock = time.monotonic,
        poll: float = 0.01,  # adds at most this to a scan's latency
    ):
        self.readers = list(readers)
        if not self.readers:
            raise ValueError("a merged reader needs at least one reader")
        self._debouncer = Debouncer(debounce, clock)
        self._poll = poll

    @property
    def health(self) -> str:
        """ "ok" when every reader is; else which ones are not, e.g. "serial-scanner:
        disconnected" (the lane still reads through the others, but someone should look)."""
        bad = [
            f"{getattr(r, 'name', type(r).__name__)}: {r.health}"
            for r in self.readers
            if r.health != HEALTH_OK
        ]
        return "; ".join(bad) if bad else HEALTH_OK

    def read(self, timeout: float) -> str | None:
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            for r in self.readers:
                text = r.read(0)
                if text is not None and self._debouncer.accept(text):
                    return text
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(self._poll, left))

    def close(self) -> None:
        for r in self.readers:
            r.close()


def _cfg_dict(cfg: Any) -> dict[str, Any]:
    if hasattr(cfg, "model_dump"):
        return dict(cfg.model_dump())
    if isinstance(cfg, dict):
        return dict(cfg)
    raise TypeError(f"reader config must be a mapping or a pydantic model, not {type(cfg)!r}")


def open_reader(cfg: Any, clock: Clock = time.monotonic) -> CodeReader:
    """Open and start a reader from its gate-file section.

    {"type": "camera", "source": 0 | "/dev/video0" | "file.mp4" | "rtsp://...",
     "decoder": "zxing"|"pyzbar"|"combined", "debounce_s": 2.0, "width": 1280, "height": 720}
    {"type": "serial", "port": "/dev/ttyACM0", "baudrate": 9600, "debounce_s": 2.0}
    {"type": "keyboard", "debounce_s": 2.0}                     (standard input)
    {"type": "multi", "readers": [<any of the above>, ...], "debounce_s": 2.0}
    """
    c = _cfg_dict(cfg)
    kind = c.pop("type", None)
    try:
        debounce = float(c.pop("debounce_s", DEFAULT_DEBOUNCE_S))
    except (TypeError, ValueError):
        raise ValueError("reader debounce_s must be a number of seconds") from None
    if debounce < 0:
        raise ValueError("reader debounce_s must not be negative")
    if kind == "multi":
        sub_cfgs = c.pop("readers", [])
        _no_unknown(kind, c, ["readers"])
        if not sub_cfgs:
            raise ValueError("a multi reader needs at least one reader in readers = [...]")
        subs: list[CodeReader] = []
        try:
            for sub in sub_cfgs:
                subs.append(open_reader(sub, clock))
        except Exception:
            for r in subs:  # do not leave a half-opened set of devices running
                r.close()
            raise
        return MergedReader(subs, debounce=debounce, clock=clock)
    if kind == "camera":
        from sesame.gate.readers.camera import CameraReader as cls
    elif kind == "serial":
        from sesame.gate.readers.serial_scanner import SerialScannerReader as cls
    elif kind == "keyboard":
        from sesame.gate.readers.keyboard import KeyboardReader as cls
    else:
        raise ValueError(f"unknown reader type {kind!r} (camera, serial, keyboard or multi)")
    params = inspect.signature(cls.__init__).parameters
    _no_unknown(kind, c, [n for n in params if n not in ("self", "debounce", "clock")])
    return cls(debounce=debounce, clock=clock, **c).start()


def _no_unknown(kind: str, options: dict[str, Any], known: Iterable[str]) -> None:
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"unknown {kind} reader option(s): {', '.join(unknown)}"
            f" (known: {', '.join(['type', 'debounce_s', *known])})"
        )
