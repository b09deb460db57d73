"""Camera reader: OpenCV capture, frames decoded in the reader's thread.

`source` is a camera index (0, "0"), a device path (/dev/video0), a stream URL or a video file.
A live source that stops delivering frames is released and reopened with backoff. A video file is
played once at full speed and debounced on its own timeline (the frame timestamps), so a
recording debounces exactly as the live scene would have; at its end the reader is
`disconnected` and `finished` is set.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2

from sesame.gate.decode import DEFAULT_DECODER, check_decoder, decode_frame
from sesame.gate.decoders import require
from sesame.gate.readers.base import (
    DEFAULT_DEBOUNCE_S,
    HEALTH_DISCONNECTED,
    HEALTH_OK,
    Clock,
    ThreadedReader,
)

log = logging.getLogger(__name__)
# OpenCV writes "[ WARN:0@…] can't open camera by index" to stderr on every failed open (each
# reopen with backoff, each `gate doctor`); the reader reports that as its health instead.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


class CameraReader(ThreadedReader):
    name = "camera"

    def __init__(
        self,
        source: int | str = 0,
        decoder: str = DEFAULT_DECODER,
        debounce: float = DEFAULT_DEBOUNCE_S,
        clock: Clock = time.monotonic,
        width: int | None = None,
        height: int | None = None,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
    ):
        super().__init__(debounce, clock)
        self.decoder = check_decoder(decoder)
        # A decoder that cannot run here would read nothing, frame after frame: refuse it.
        require(self.decoder)
        if isinstance(source, str) and source.isdigit():
            source = int(source)
        self.source = source
        self.is_file = isinstance(source, str) and Path(source).is_file()
        self.width, self.height = width, height
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.frames = 0  # frames decoded, for the status and the benchmarks
        self.bad_frames = 0  # frames the decoder failed on
        self.on_decode: Callable[[float], None] | None = None  # hears each decode's seconds
        self.finished = threading.Event()
        self._media_s = 0.0
        if self.is_file:
            self._debouncer._clock = lambda: self._media_s

    def _open(self) -> cv2.VideoCapture | None:
        cap = cv2.VideoCapture(self.source)
        if not cap.isOpened():
            cap.release()
            return None
        if not self.is_file:
            # Decode the newest frame, not one queued while the previous was being decoded.
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            if self.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            if self.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        return cap

    def _run(self) -> None:
        backoff = self.backoff_initial
        try:
            while not self._stop.is_set():
                cap = self._open()
                if cap is None:
                    if self.is_file:
                        self.health = f"error: cannot open video {self.source}"
                        return
                    self.health = HEALTH_DISCONNECTED
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self.backoff_max)
                    continue
                self.health = HEALTH_OK
                try:
                    got_frames = self._pump(cap)
                finally:
                    cap.release()
                self.health = HEALTH_DISCONNECTED
                if self.is_file:
                    return
                log.warning("%s: %s stopped delivering frames; reopening", self.name, self.source)
                # a camera that opens but gives no frame must not spin: back off as well
                backoff = self.backoff_initial if got_frames else min(backoff * 2, self.backoff_max)
                self._stop.wait(backoff)
        finally:
            self.finished.set()

    def _pump(self, cap: cv2.VideoCapture) -> bool:
        """Decode frames until the source stops; True if it gave at least one frame."""
        got = False
        while not self._stop.is_set():
            ok, frame = cap.read()
            if not ok or frame is None:
                return got
            got = True
            if self.is_file:
                self._media_s = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            self.frames += 1
            t0 = time.perf_counter()
            try:
                codes = decode_frame(frame, self.decoder)
                if self.on_decode is not None:
                    self.on_decode(time.perf_counter() - t0)
            except Exception as e:  # one odd frame must not stop the lane's camera
                self.bad_frames += 1
                log.warning("%s: frame %d not decodable: %s", self.name, self.frames, e)
                continue
            for text in codes:
                self._emit(text)
        return got
