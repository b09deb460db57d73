"""Images for the decode benchmarks and tests: the QR sample photos kept in the repository
(`tests/data/qr-samples`, from zxing-cpp's test set, Apache-2.0), and badges rendered from
real signed tokens then distorted the way a lane camera sees them.

Not a benchmark itself; `bench/bench_decode.py` and `tests/test_gate_readers_*.py` import it.
Everything is generated from fixed seeds so every run sees the same pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import segno

REPO = Path(__file__).resolve().parent.parent
# The photos the tests and benchmarks read: carried by the repository, licence and source inside.
QR_SAMPLES = REPO / "tests" / "data" / "qr-samples"


def qr_samples_dir() -> Path | None:
    """SESAME_QR_SAMPLES (another set, e.g. a holdout), else the repository's own samples."""
    env = os.environ.get("SESAME_QR_SAMPLES")
    candidate = Path(env) if env else QR_SAMPLES
    return candidate if (candidate / "MANIFEST.tsv").is_file() else None


@dataclass(frozen=True)
class Sample:
    image: Path
    expected: str  # exact bytes of the .txt, as UTF-8 text


def qr_samples(root: Path) -> list[Sample]:
    lines = (root / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    img_col, txt_col = header.index("image"), header.index("expected_text")
    out = []
    for line in lines[1:]:
        if not line.strip():
            continue
        cols = line.split("\t")
        expected = (root / cols[txt_col]).read_bytes().decode("utf-8")
        out.append(Sample(root / cols[img_col], expected))
    return out


# -- rendered badges --------------------------------------------------------------


def make_tokens(n: int, seed: int = 7) -> list[str]:
    """n real signed badge tokens (fresh key from a fixed seed), varied categories and days."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from sesame.common.tokens import Claims, sign

    key = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
    cats = ["public", "professional", "school", "exhibitor", "speaker", "press", "staff"]
    days = [None, (date(2018, 11, 22),), (date(2018, 11, 23), date(2018, 11, 24))]
    return [
        sign(Claims(f"B{i:06d}", cats[i % len(cats)], days[i % len(days)], 1 + i % 30), key)
        for i in range(n)
    ]


def render_qr(text: str, module_px: int = 6, border: int = 4) -> np.ndarray:
    """The QR code of `text` as a grayscale array, `module_px` pixels per module."""
    m = np.array(segno.make(text, error="m", micro=False).matrix, dtype=np.uint8)
    img = np.where(m == 1, 0, 255).astype(np.uint8)
    img = np.pad(img, border, constant_values=255)
    return np.kron(img, np.ones((module_px, module_px), dtype=np.uint8))


def in_frame(
    qr: np.ndarray, size: tuple[int, int] = (640, 480), at: tuple[int, int] | None = None
) -> np.ndarray:
    """Paste a QR onto a mid-grey frame (w, h) with some texture, centred unless `at`.
    The frame grows to fit a QR larger than it."""
    qh, qw = qr.shape
    w, h = max(size[0], qw + 40), max(size[1], qh + 40)
    yy, xx = np.mgrid[0:h, 0:w]
    frame = (110 + 30 * np.sin(xx / 37.0) * np.cos(yy / 23.0)).astype(np.uint8)
    x, y = at if at is not None else ((w - qw) // 2, (h - qh) // 2)
    frame[y : y + qh, x : x + qw] = qr
    return frame


def _rotate(img: np.ndarray, deg: float) -> np.ndarray:
    h, w = img.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=110)


def _perspective(img: np.ndarray, tilt: float) -> np.ndarray:
    """A badge tilted away from the camera: the top edge shrinks by `tilt` of the width."""
    h, w = img.shape
    d = tilt * w / 2
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[d, h * tilt / 3], [w - d, h * tilt / 3], [w, h], [0, h]])
    return cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (w, h), borderValue=110)


def _noise(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def _dim(img: np.ndarray, contrast: float, offset: int) -> np.ndarray:
    return np.clip(img.astype(np.float32) * contrast + offset, 0, 255).astype(np.uint8)


# Each distortion: (token, seed) -> a 640x480 grayscale frame. Module sizes are chosen so a
# ~170-character token (QR version 9-10) fits the frame.
Distortion = Callable[[str, int], np.ndarray]


def _frame(token: str, module_px: int = 5) -> np.ndarray:
    return in_frame(render_qr(token, module_px))


DISTORTIONS: dict[str, Distortion] = {
    "clean": lambda t, s: _frame(t),
    "blur_sigma1.5": lambda t, s: cv2.GaussianBlur(_frame(t), (0, 0), 1.5),
    "blur_sigma3": lambda t, s: cv2.GaussianBlur(_frame(t), (0, 0), 3.0),
    "motion_blur_9px": lambda t, s: cv2.filter2D(_frame(t), -1, np.full((1, 9), 1 / 9)),
    "rotate_17deg": lambda t, s: _rotate(_frame(t), 17 + s % 5),
    "rotate_45deg": lambda t, s: _rotate(_frame(t), 45),
    "rotate_135deg": lambda t, s: _rotate(_frame(t), 135),
    "shrink_2px_module": lambda t, s: in_frame(render_qr(t, 2)),
    "shrink_1.5px_module": lambda t, s: in_frame(
        cv2.resize(render_qr(t, 3), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    ),
    "noise_sigma25": lambda t, s: _noise(_frame(t), 25, s),
    "noise_sigma60": lambda t, s: _noise(_frame(t), 60, s),
    "perspective_30pct": lambda t, s: _perspective(_frame(t), 0.3),
    "low_contrast_dim": lambda t, s: _dim(_frame(t), 0.25, 40),
    "jpeg_q15": lambda t, s: _jpeg(_frame(t), 15),
    "blur+noise+rotate": lambda t, s: _noise(
        _rotate(cv2.GaussianBlur(_frame(t), (0, 0), 1.2), 23), 20, s
    ),
}
