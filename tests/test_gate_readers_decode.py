"""QR decoding on real photographs (tests/data/qr-samples) and on rendered, distorted badges.

The sample images are fixed, so the decode counts below are regression floors: they are what
each decoder reaches today; a change that loses an image fails here.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.bench_decode_images import (
    DISTORTIONS,
    QR_SAMPLES,
    in_frame,
    make_tokens,
    qr_samples,
    render_qr,
)
from sesame.gate.decode import DECODERS, ImageError, decode_file, decode_frame, load_image

# Measured on the 92 sample images (bench/bench_decode.py): exact text found.
SAMPLE_FLOORS = {"zxing": 85, "pyzbar": 68, "combined": 87, "thorough": 88}


@pytest.fixture(scope="module")
def samples():
    # Always the repository's own photos (never an outside folder), so a bare clone runs this.
    return qr_samples(QR_SAMPLES)


@pytest.fixture(scope="module")
def sample_results(samples):
    return {d: [s.expected in decode_file(s.image, d) for s in samples] for d in DECODERS}


@pytest.mark.parametrize("decoder", DECODERS)
def test_decode_rate_on_the_sample_photos(samples, sample_results, decoder: str) -> None:
    assert len(samples) == 92
    assert sum(sample_results[decoder]) >= SAMPLE_FLOORS[decoder]


def test_thorough_reads_every_image_either_single_decoder_reads(sample_results) -> None:
    results = zip(*(sample_results[d] for d in ("zxing", "pyzbar", "thorough")), strict=True)
    for z, p, t in results:
        assert t or not (z or p)
    for d in ("combined", "thorough"):  # the project's target for the pipeline
        assert sum(sample_results[d]) / len(sample_results[d]) >= 0.92


def test_control_characters_come_out_exactly(samples) -> None:
    # GS1 and binary payloads: no "(01)" brackets or "<SOH>" escapes, the bytes themselves.
    controls = [s for s in samples if any(ord(c) < 0x20 and c not in "\r\n" for c in s.expected)]
    assert controls, "the samples include payloads with control characters"
    found = [s.expected in decode_file(s.image, "zxing") for s in controls]
    assert all(found)


# Rendered badges: 6 real signed tokens per distortion. Floors = what the decoder reaches.
N_BADGES = 6
CHECKED = ("zxing", "combined", "thorough")
DISTORTION_FLOORS = {  # name: floors for CHECKED
    "clean": (6, 6, 6),
    "blur_sigma1.5": (6, 6, 6),
    "blur_sigma3": (0, 6, 6),
    "motion_blur_9px": (0, 0, 1),
    "rotate_17deg": (6, 6, 6),
    "rotate_45deg": (6, 6, 6),
    "rotate_135deg": (6, 6, 6),
    "shrink_2px_module": (6, 6, 6),
    "shrink_1.5px_module": (5, 6, 6),
    "noise_sigma25": (6, 6, 6),
    "noise_sigma60": (6, 6, 6),
    "perspective_30pct": (6, 6, 6),
    "low_contrast_dim": (6, 6, 6),
    "jpeg_q15": (6, 6, 6),
    "blur+noise+rotate": (6, 6, 6),
}


@pytest.fixture(scope="module")
def tokens():
    return make_tokens(N_BADGES)


def test_every_distortion_has_a_floor() -> None:
    assert set(DISTORTION_FLOORS) == set(DISTORTIONS)


@pytest.mark.parametrize("name", sorted(DISTORTIONS))
def test_rendered_badge_after_distortion(tokens, name: str) -> None:
    frames = [DISTORTIONS[name](t, i) for i, t in enumerate(tokens)]
    got = {d: [decode_frame(f, d) for f in frames] for d in CHECKED}
    for d, floor in zip(CHECKED, DISTORTION_FLOORS[name], strict=True):
        hits = sum(t in codes for t, codes in zip(tokens, got[d], strict=True))
        assert hits >= floor, f"{d}: {hits}/{N_BADGES} after {name}"
        # a miss is "nothing read", never another badge's text
        for codes in got[d]:
            assert set(codes) <= set(tokens)


def test_two_badges_in_one_frame_are_both_read(tokens) -> None:
    frame = in_frame(render_qr(tokens[0], 3), (1280, 720), at=(40, 40))
    frame[300 : 300 + 189, 700 : 700 + 189] = render_qr(tokens[1], 3)[:189, :189]
    assert set(decode_frame(frame)) == {tokens[0], tokens[1]}


def test_colour_frames_and_frames_without_a_code() -> None:
    token = make_tokens(1)[0]
    bgr = np.dstack([in_frame(render_qr(token, 4))] * 3)
    bgr[:, :, 2] = 255 - bgr[:, :, 2] // 4  # a red cast, as under warm light
    assert decode_frame(bgr) == [token]
    assert decode_frame(np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)])) == [token]
    for d in DECODERS:
        assert decode_frame(np.full((480, 640), 128, np.uint8), d) == []
        assert decode_frame(np.zeros((0, 0, 3), np.uint8), d) == []


def test_unknown_decoder_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown decoder"):
        decode_frame(np.zeros((10, 10), np.uint8), "tesseract")


def test_unreadable_image_files_raise_image_error(tmp_path) -> None:
    (tmp_path / "notes.png").write_text("not a picture")
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("notes.png", "empty.png", "missing.png"):
        with pytest.raises(ImageError, match=name):
            load_image(tmp_path / name)
    with pytest.raises(ImageError):
        load_image(tmp_path)  # a directory
