"""Which QR decoders can run, said by `gate scan`, `gate run` and `gate doctor`; a configured
decoder that cannot run is refused with one line. The machine without libzbar0 is a fresh
process whose shared-library lookup cannot find libzbar (tests/fixtures/no_libzbar): pyzbar
fails there with its own error, as it does on a board where nobody ran `apt install libzbar0`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from sesame.common.tokens import generate_keypair
from tests.fixtures.gate import ROOT

VENUE = str(ROOT / "config" / "grand-palais.toml")
NO_ZBAR = ROOT / "tests" / "fixtures" / "no_libzbar"
SAMPLES = ROOT / "tests" / "data" / "qr-samples"
# zxing-cpp alone misses this photo; a non-ZBar pass of `thorough` reads it
RESCUED = SAMPLES / "qrcode-2" / "28.webp"


def sesame(*args: str, zbar: bool, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sesame", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=_env(zbar),
    )  # fmt: skip


def _env(zbar: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if not zbar:
        env["PYTHONPATH"] = str(NO_ZBAR)
    return env


def test_the_probe_really_hides_libzbar():
    probe = "from pyzbar import pyzbar"
    ok = subprocess.run([sys.executable, "-c", probe], capture_output=True, env=_env(True))
    assert ok.returncode == 0, "libzbar0 must be installed on the test machine"
    hidden = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=_env(False)
    )
    assert "Unable to find zbar shared library" in hidden.stderr


def test_scan_refuses_pyzbar_without_libzbar_in_one_line():
    r = sesame("gate", "scan", "--image", str(RESCUED), "--decoder", "pyzbar", zbar=False)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("sesame gate: error: decoder 'pyzbar' cannot run")
    assert "apt install libzbar0" in lines[0] and "usable here: zxing" in lines[0]


def test_thorough_without_libzbar_says_so_and_still_reads(tmp_path):
    want = (SAMPLES / "qrcode-2" / "28.txt").read_text()
    r = sesame("gate", "scan", "--image", str(RESCUED), "--decoder", "thorough", zbar=False)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["text"] == want
    assert r.stderr.splitlines() == [
        "sesame gate scan: warning: thorough (without its ZBar pass): "
        "ZBar: libzbar0 not found (apt install libzbar0)"
    ]
    # an image without any code, so every pass runs: nothing read, the missing one skipped
    blank = tmp_path / "blank.png"
    assert cv2.imwrite(str(blank), np.full((200, 200), 255, np.uint8))
    r = sesame("gate", "scan", "--image", str(blank), "--decoder", "thorough", zbar=False)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["text"] is None
    # with libzbar0 the same decoder is whole: no warning
    whole = sesame("gate", "scan", "--image", str(RESCUED), "--decoder", "thorough", zbar=True)
    assert whole.returncode == 0 and whole.stderr == ""


def _hardware(tmp_path: Path, decoder: str) -> Path:
    _, pub = generate_keypair(tmp_path / "keys")
    hw = tmp_path / f"hw-{decoder}.toml"
    hw.write_text(
        f"""# a lane with a camera
[reader]
type = "camera"
source = "{tmp_path / "no-camera.mp4"}"
decoder = "{decoder}"

[controller]
port = "simulated"

[agent]
data_dir = "data"
pubkeys = ["{pub}"]
"""
    )
    return hw


LANE = ("--venue", VENUE, "--gate", "churchill-in-1", "--broker", "mqtt://127.0.0.1:9")


def test_run_refuses_a_configured_decoder_that_cannot_run(tmp_path):
    hw = _hardware(tmp_path, "pyzbar")
    r = sesame("gate", "run", *LANE, "--hardware", str(hw), "--no-display", zbar=False)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"sesame gate: error: {hw}:5: reader.decoder: decoder 'pyzbar'")
    assert "libzbar0" in lines[0]
    assert not (tmp_path / "data").exists()  # refused before anything was opened


def test_run_names_the_skipped_pass_and_starts(tmp_path):
    hw = _hardware(tmp_path, "combined")
    p = subprocess.Popen(
        [sys.executable, "-m", "sesame", "gate", "run", *LANE, "--hardware", str(hw),
         "--no-display", "--start-time", "2018-11-22T12:00:00+01:00", "--no-counter-clock"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_env(False),
    )  # fmt: skip
    try:
        line = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "decoder combined" not in line:
            line = p.stderr.readline()
            assert line or p.poll() is None, "gate run ended"
        assert "decoder combined; usable: zxing, combined (without its ZBar pass)" in line
        assert "unavailable: pyzbar" in line
        assert "WARNING combined (without its ZBar pass): ZBar: libzbar0 not found" in line
        while time.monotonic() < deadline and ": running" not in line:  # and it starts
            line = p.stderr.readline()
            assert line or p.poll() is None, "gate run ended"
        assert ": running" in line
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0


@pytest.mark.parametrize(
    ("decoder", "zbar", "status", "words"),
    [
        ("pyzbar", False, "FAIL", "pyzbar cannot run: ZBar: libzbar0 not found"),
        ("combined", False, "WARN", "combined (without its ZBar pass)"),
        ("combined", True, "ok", "usable: zxing, pyzbar, combined, thorough"),
    ],
)
def test_doctor_says_which_decoders_run(tmp_path, decoder, zbar, status, words):
    hw = _hardware(tmp_path, decoder)
    r = sesame("gate", "doctor", *LANE, "--hardware", str(hw), "--timeout", "0.5", zbar=zbar)
    line = next(x for x in r.stdout.splitlines() if x.startswith("decoders"))
    assert line.split()[1] == status and words in line, r.stdout
    assert f"camera uses {decoder}" in line
    if status == "FAIL":
        assert r.returncode == 1
