"""The camera reader on a real video: badges rendered from signed tokens, written with
cv2.VideoWriter (Motion-JPEG), then read back through OpenCV capture like a live camera."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.bench_decode_images import in_frame, make_tokens, render_qr
from sesame.gate.readers import open_reader
from sesame.gate.readers.camera import CameraReader

FPS = 10
SIZE = (640, 480)


def write_video(path: Path, scenes: list[tuple[str | None, float]]) -> None:
    """scenes: (token or None for an empty lane, seconds). The badge drifts a little, as held."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    assert writer.isOpened()
    rng = np.random.default_rng(3)
    n = 0
    for token, seconds in scenes:
        qr = render_qr(token, 4) if token else None
        for _ in range(round(seconds * FPS)):
            if qr is None:
                frame = in_frame(np.full((4, 4), 110, np.uint8))
            else:
                frame = in_frame(qr, SIZE, at=(120 + n % 7 * 3, 40 + n % 5 * 2))
            noisy = np.clip(frame + rng.normal(0, 6, frame.shape), 0, 255).astype(np.uint8)
            writer.write(cv2.cvtColor(noisy, cv2.COLOR_GRAY2BGR))
            n += 1
    writer.release()


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> tuple[Path, list[str]]:
    a, b = make_tokens(2)
    path = tmp_path_factory.mktemp("camera") / "lane.avi"
    write_video(path, [(None, 0.5), (a, 1.5), (None, 3.0), (a, 1.0), (b, 1.0), (None, 0.5)])
    return path, [a, b]


def scans_of(reader: CameraReader, timeout: float = 60.0) -> list[str]:
    assert reader.finished.wait(timeout), "the video was not played to its end"
    out = []
    while (text := reader.read(0)) is not None:
        out.append(text)
    return out


@pytest.mark.parametrize("decoder", ["zxing", "pyzbar"])
def test_held_badge_is_one_scan_and_comes_back_after_the_window(video, decoder) -> None:
    path, (a, b) = video
    reader = open_reader({"type": "camera", "source": str(path), "decoder": decoder})
    try:
        # 1.5 s held = one scan; away 3 s (> 2 s default window) = a new scan; then badge b
        assert scans_of(reader) == [a, a, b]
        assert reader.frames == 75
        assert reader.health == "disconnected"  # end of the recording
    finally:
        reader.close()


def test_a_longer_window_merges_the_two_showings(video) -> None:
    path, (a, b) = video
    reader = CameraReader(str(path), debounce=5.0).start()
    try:
        assert scans_of(reader) == [a, b]
    finally:
        reader.close()


def test_combined_decoder_reads_an_out_of_focus_badge_on_camera(tmp_path) -> None:
    # A defocused badge (Gaussian blur sigma 3 px): zxing-cpp alone never reads it; the
    # combined decoder's sharpening pass does, at a live camera's frame rate.
    (token,) = make_tokens(1)
    path = tmp_path / "soft.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    frame = cv2.GaussianBlur(in_frame(render_qr(token, 5)), (0, 0), 3.0)
    for _ in range(10):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    for decoder, expected in (("zxing", []), ("combined", [token])):
        reader = open_reader({"type": "camera", "source": str(path), "decoder": decoder})
        try:
            assert scans_of(reader) == expected, decoder
        finally:
            reader.close()


def test_a_file_that_is_not_a_video_is_an_error(tmp_path) -> None:
    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"RIFF\x00\x00garbage" * 10)
    reader = CameraReader(str(bad)).start()
    try:
        assert reader.finished.wait(10)
        assert reader.health.startswith("error:")
        assert reader.read(0.05) is None
    finally:
        reader.close()


def test_a_missing_camera_is_disconnected_and_retried_until_closed(tmp_path) -> None:
    reader = CameraReader(str(tmp_path / "video99"), backoff_max=0.1).start()
    try:
        time.sleep(0.3)
        assert reader.health == "disconnected"
        assert not reader.finished.is_set()  # still trying: a camera may be plugged back in
        assert reader.read(0.05) is None
    finally:
        t0 = time.monotonic()
        reader.close()
        assert time.monotonic() - t0 < 2.0
    assert reader.finished.is_set()


def test_a_missing_camera_does_not_flood_stderr() -> None:
    """`gate doctor` and the agent's log show the reader's health, not OpenCV's own
    warnings for every reopen attempt."""
    code = (  # camera index 99: no such device; OpenCV warns on every open by index
        "import time; from sesame.gate.readers.camera import CameraReader; "
        "r = CameraReader(99, backoff_max=0.05).start(); "
        "time.sleep(0.5); print(r.health); r.close()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "disconnected"
    assert "WARN" not in proc.stderr, proc.stderr


def test_unknown_decoder_in_the_gate_file_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown decoder"):
        open_reader({"type": "camera", "source": 0, "decoder": "tesseract"})


def test_a_live_source_that_appears_later_is_opened_and_reopened(tmp_path) -> None:
    # A live source (not a file at start) is retried with backoff; when the device comes up
    # (here: a recording appears at its path) the reader opens it, and when it stops
    # delivering frames the reader goes back to retrying.
    (token,) = make_tokens(1)
    source = tmp_path / "video0"
    reader = CameraReader(str(source), debounce=30.0, backoff_max=0.1).start()
    try:
        time.sleep(0.3)
        assert reader.health == "disconnected" and not reader.is_file
        staged = tmp_path / "staged.avi"
        write_video(staged, [(token, 1.0)])
        staged.replace(source)
        assert reader.read(20) == token
        source.unlink()  # the device goes away: played to its end, then cannot be reopened
        deadline = time.monotonic() + 20
        while reader.health != "disconnected" and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        assert reader.health == "disconnected"
        assert not reader.finished.is_set()  # still retrying
        assert reader.read(0.05) is None  # the same badge replayed is within the window
    finally:
        reader.close()
