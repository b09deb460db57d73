"""Which QR decoders this machine can run, and what each one lacks.

The decoders of gate/decode.py stand on three libraries. zxing-cpp and OpenCV (frames, image
files, the image passes of `combined`/`thorough`) are wheels that pip installs; ZBar is a
wheel (pyzbar) around a *system* library, libzbar0, that pip does not install. Without it,
`pyzbar` reads nothing at all and `combined`/`thorough` lose their ZBar pass. Each library is
probed once per process, so a lane says what is missing when it starts (`gate run`, `gate
doctor`, `gate scan`) instead of reading nothing frame after frame. No import here loads a
decoding library at module import: this module must work when one of them is broken.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

DECODERS = ("zxing", "pyzbar", "combined", "thorough")
DEFAULT_CAMERA_DECODER = "zxing"  # CameraReader's default

ZXING, OPENCV, ZBAR = "zxing-cpp", "OpenCV", "ZBar"

# decoder -> (libraries it cannot run without, libraries of passes it can run without)
NEEDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "zxing": ((ZXING, OPENCV), ()),
    "pyzbar": ((ZBAR, OPENCV), ()),
    "combined": ((ZXING, OPENCV), (ZBAR,)),
    "thorough": ((ZXING, OPENCV), (ZBAR,)),
}


class DecoderUnavailable(ValueError):
    """A decoder asked for that cannot run on this machine (one line, names the fix)."""


@dataclass(frozen=True)
class Library:
    name: str
    ok: bool
    detail: str = ""  # why not, and the fix


def _probe_zxing() -> None:
    import zxingcpp  # noqa: F401


def _probe_opencv() -> None:
    import cv2  # noqa: F401


def _probe_zbar() -> None:
    from pyzbar import pyzbar  # noqa: F401  (loads libzbar through ctypes at import)


_PROBES = {ZXING: _probe_zxing, OPENCV: _probe_opencv, ZBAR: _probe_zbar}
_PIP = {ZXING: "zxing-cpp", OPENCV: "opencv-python-headless", ZBAR: "pyzbar"}


def _why(name: str, e: Exception) -> str:
    text = str(e) or type(e).__name__
    if name == ZBAR and "zbar shared library" in text:
        return "libzbar0 not found (apt install libzbar0)"
    if isinstance(e, ModuleNotFoundError):
        return f"{text} (pip install {_PIP[name]})"
    return text


@functools.cache
def library(name: str) -> Library:
    try:
        _PROBES[name]()
    except Exception as e:  # ImportError, or OSError from a broken shared library
        return Library(name, False, _why(name, e))
    return Library(name, True)


@dataclass(frozen=True)
class DecoderState:
    name: str
    missing: tuple[Library, ...]  # required: without them the decoder cannot run
    without: tuple[Library, ...]  # optional passes that will be skipped

    @property
    def usable(self) -> bool:
        return not self.missing

    def label(self) -> str:
        """e.g. "combined (without its ZBar pass)"."""
        if self.without:
            passes = " and ".join(lib.name for lib in self.without)
            return f"{self.name} (without its {passes} pass)"
        return self.name

    def reason(self) -> str:
        """Why it cannot run, or which passes it skips and why ("" when whole)."""
        libs = self.missing or self.without
        return "; ".join(f"{lib.name}: {lib.detail}" for lib in libs)


def state(name: str) -> DecoderState:
    if name not in NEEDS:
        raise ValueError(f"unknown decoder {name!r} (choose from {', '.join(DECODERS)})")
    required, optional = NEEDS[name]
    return DecoderState(
        name,
        tuple(library(x) for x in required if not library(x).ok),
        tuple(library(x) for x in optional if not library(x).ok),
    )


def states() -> list[DecoderState]:
    return [state(n) for n in DECODERS]


def summary() -> str:
    """One line, each missing library named once with its fix: "usable: zxing, combined
    (without its ZBar pass); unavailable: pyzbar; missing ZBar: libzbar0 not found (...)"."""
    all_ = states()
    out = f"usable: {', '.join(s.label() for s in all_ if s.usable) or 'none'}"
    broken = [s.name for s in all_ if not s.usable]
    if broken:
        out += f"; unavailable: {', '.join(broken)}"
    missing = [library(x) for x in (ZXING, OPENCV, ZBAR) if not library(x).ok]
    if missing:
        out += "; missing " + "; ".join(f"{lib.name}: {lib.detail}" for lib in missing)
    return out


def require(name: str) -> DecoderState:
    """The decoder's state if it can run here; DecoderUnavailable otherwise."""
    s = state(name)
    if not s.usable:
        others = [x.label() for x in states() if x.usable]
        raise DecoderUnavailable(
            f"decoder {name!r} cannot run on this machine: {s.reason()}"
            f" (usable here: {', '.join(others) or 'none'})"
        )
    return s


def configured(reader: dict[str, Any] | None) -> list[str]:
    """The decoders a hardware file's [reader] section uses (camera readers, also inside a
    multi reader), in order, without repeats; [] when no camera decodes."""
    found: list[str] = []

    def walk(cfg: Any) -> None:
        if not isinstance(cfg, dict):
            return
        if cfg.get("type") == "camera":
            found.append(str(cfg.get("decoder", DEFAULT_CAMERA_DECODER)))
        elif cfg.get("type") == "multi":
            for sub in cfg.get("readers", []) or []:
                walk(sub)

    walk(reader)
    return list(dict.fromkeys(found))


def check_configured(names: Iterable[str]) -> list[DecoderState]:
    """require() for each; raises on the first that cannot run."""
    return [require(n) for n in names]
