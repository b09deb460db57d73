"""QR decoding of camera frames and image files.

Decoders (chosen by name in the gate file or on the command line):
- ``zxing``: zxing-cpp, the default. Best rate and speed measured on the shared samples.
- ``pyzbar``: the ZBar library through pyzbar.
- ``combined``: zxing-cpp first; when it located a QR code but could not read it, pyzbar,
  then zxing-cpp again with its global-histogram binariser, on a sharpened copy, on a
  contrast-equalised (CLAHE) copy and on a 2x upscale of small images. Frames without any
  code cost what plain zxing costs, so it suits a live camera.
- ``thorough``: the same passes on every image zxing-cpp misses, located or not: the best
  rate, for single images (`sesame gate scan`); far too slow for empty camera frames.

Without the system's libzbar (gate/decoders.py says what this machine lacks), `pyzbar` cannot
run and `combined`/`thorough` skip their ZBar pass and run the others.

Text is returned exactly as encoded (zxing-cpp's ``Plain`` text mode: no GS1 brackets, no
``<SOH>`` escapes), so control characters reach the decision, which rejects them.
"""

from __future__ import annotations

import io
import stat
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import zxingcpp

from sesame.common.qr import MAX_PIXELS
from sesame.gate.decoders import DECODERS, ZBAR, library

DEFAULT_DECODER = "zxing"

# Images larger than this on their longest side are not upscaled by the fallback pass:
# a 2x upscale of a 720p frame costs more than it rescues.
_UPSCALE_MAX_SIDE = 800


# Image files read by `sesame gate scan`: a 48-megapixel phone photo passes.
MAX_FILE_BYTES = 64 * 1024 * 1024


class ImageError(Exception):
    """An image file that cannot be read as a picture."""


def to_gray(img: np.ndarray) -> np.ndarray:
    """Grayscale uint8 from a BGR, BGRA or grayscale array (what OpenCV hands us)."""
    if img.ndim == 2:
        gray = img
    elif img.ndim == 3 and img.shape[2] == 3:
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    elif img.ndim == 3 and img.shape[2] == 4:
        gray = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY)
    elif img.ndim == 3 and img.shape[2] == 1:
        gray = img[:, :, 0]
    else:
        raise ValueError(f"not an image array: shape {img.shape}")
    if gray.dtype != np.uint8:
        gray = cv2.normalize(gray, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return np.ascontiguousarray(gray)


def _zxing_scan(
    gray: np.ndarray, binarizer: zxingcpp.Binarizer | None = None
) -> tuple[list[str], bool]:
    """(texts read, whether a QR was located but could not be read)."""
    kwargs = {} if binarizer is None else {"binarizer": binarizer}
    found = zxingcpp.read_barcodes(
        gray,
        formats=zxingcpp.BarcodeFormat.QRCode,
        text_mode=zxingcpp.TextMode.Plain,
        # try_rotate turns 1-D barcode scan lines; QR location is rotation-free without it
        # (the rotated badges in the tests still read) and it costs time on every frame.
        try_rotate=False,
        return_errors=True,
        **kwargs,
    )
    return [b.text for b in found if b.valid], any(not b.valid for b in found)


def _zxing(gray: np.ndarray, binarizer: zxingcpp.Binarizer | None = None) -> list[str]:
    return _zxing_scan(gray, binarizer)[0]


def _pyzbar(gray: np.ndarray) -> list[str]:
    from pyzbar import pyzbar  # loads libzbar; only when asked for

    found = pyzbar.decode(gray, symbols=[pyzbar.ZBarSymbol.QRCODE])
    # ZBar hands back its text as UTF-8 bytes; anything else becomes U+FFFD (then MALFORMED).
    return [d.data.decode("utf-8", errors="replace") for d in found]


def _upscale(gray: np.ndarray) -> np.ndarray:
    return cv2.resize(gray, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)


def _sharpen(gray: np.ndarray) -> np.ndarray:
    """Unsharp mask: brings back module edges of an out-of-focus badge."""
    soft = cv2.GaussianBlur(gray, (0, 0), 2.0)
    return cv2.addWeighted(gray, 2.5, soft, -1.5, 0)


_CLAHE = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))


def _fallbacks(gray: np.ndarray) -> list[str]:
    # Ordered by what each rescued on the shared samples and the distorted badges
    # (bench/bench_decode.py): ZBar reads some photos zxing-cpp misses; a global threshold
    # helps uneven light; sharpening helps defocus; local contrast helps motion blur.
    passes: list[Callable[[np.ndarray], list[str]]] = [_pyzbar] if library(ZBAR).ok else []
    passes += [
        lambda g: _zxing(g, zxingcpp.Binarizer.GlobalHistogram),
        lambda g: _zxing(_sharpen(g)),
        lambda g: _zxing(_CLAHE.apply(g)),
    ]
    if max(gray.shape) <= _UPSCALE_MAX_SIDE:
        passes.append(lambda g: _zxing(_upscale(g)))
    for run in passes:
        found = run(gray)
        if found:
            return found
    return []


def _combined(gray: np.ndarray) -> list[str]:
    texts, located = _zxing_scan(gray)
    # The extra passes run only where zxing-cpp located a code it could not read, so an
    # empty lane (most camera frames) costs no more than plain zxing.
    return texts or (_fallbacks(gray) if located else [])


def _thorough(gray: np.ndarray) -> list[str]:
    return _zxing(gray) or _fallbacks(gray)


_DECODE: dict[str, Callable[[np.ndarray], list[str]]] = {
    "zxing": _zxing,
    "pyzbar": _pyzbar,
    "combined": _combined,
    "thorough": _thorough,
}


def check_decoder(name: str) -> str:
    if name not in _DECODE:
        raise ValueError(f"unknown decoder {name!r} (choose from {', '.join(DECODERS)})")
    return name


def decode_frame(img: np.ndarray, decoder: str = DEFAULT_DECODER) -> list[str]:
    """Every QR code text found in one frame, in the decoder's order, without repeats."""
    run = _DECODE[check_decoder(decoder)]
    if img.size == 0:  # a camera glitch can hand over an empty frame
        return []
    gray = to_gray(img)
    return list(dict.fromkeys(run(gray)))


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file (PNG, JPEG, WebP, ...) as a grayscale array or raise ImageError.

    Sizes are checked before anything is decoded: a PNG of a few hundred kilobytes can
    declare a billion pixels (gigabytes of memory on a gate's single-board computer)."""
    p = Path(path)
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):  # a directory, a FIFO that would block, a device
            raise ImageError(f"{p}: cannot read: not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise ImageError(f"{p}: file too large ({st.st_size} bytes > {MAX_FILE_BYTES})")
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as e:
        raise ImageError(f"{p}: cannot read: {e.strerror or e}") from None
    if data.size:
        _check_pixels(p, data)
    try:
        img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    except cv2.error:  # e.g. a header beyond OpenCV's own pixel limit
        img = None
    if img is None:
        raise ImageError(f"{p}: not a readable image")
    return img


def _check_pixels(p: Path, data: np.ndarray) -> None:
    """Refuse an image whose header declares more than MAX_PIXELS (read by Pillow, which
    opens lazily: only the header is parsed here)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():  # its bomb warning: we refuse it ourselves below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data.tobytes())) as im:
                w, h = im.size
    except Image.DecompressionBombError:
        w = h = MAX_PIXELS  # beyond Pillow's own limit: far beyond ours
        w += 1
    except Exception:  # Pillow cannot tell; OpenCV decodes it within its own limits
        return
    if w * h > MAX_PIXELS:
        raise ImageError(f"{p}: image too large ({w}x{h} pixels; at most {MAX_PIXELS})")


def decode_file(path: str | Path, decoder: str = DEFAULT_DECODER) -> list[str]:
    return decode_frame(load_image(path), decoder)
