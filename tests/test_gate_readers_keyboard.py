"""Keyboard / standard-input reader, fed through a real pipe."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from sesame.gate.readers import open_reader
from sesame.gate.readers.keyboard import KeyboardReader


def _drain(reader, timeout: float = 3.0) -> list[str]:
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = reader.read(0.05)
        if text is not None:
            out.append(text)
        elif reader.health != "ok" and reader._q.empty():
            break
    return out


def test_lines_from_a_pipe_then_end_of_input() -> None:
    r_fd, w_fd = os.pipe()
    reader = KeyboardReader(r_fd, debounce=2.0).start()
    try:
        os.write(w_fd, b"SES1.one\nSES1.two\r\nSES1.one\n\xff\xfebad\n")
        os.write(w_fd, b"SES1.unterminated")
        os.close(w_fd)
        scans = _drain(reader)
        # the repeated SES1.one is inside the debounce window; the last line has no newline
        assert scans == ["SES1.one", "SES1.two", "\ufffd\ufffdbad", "SES1.unterminated"]
        assert reader.health == "disconnected"
    finally:
        reader.close()
        os.close(r_fd)


def test_close_does_not_wait_for_input() -> None:
    r_fd, w_fd = os.pipe()
    reader = KeyboardReader(r_fd).start()
    assert reader.read(0.1) is None
    t0 = time.monotonic()
    reader.close()
    assert time.monotonic() - t0 < 2.0  # the read loop wakes every 0.1 s to check
    os.close(w_fd)
    os.close(r_fd)


def test_standard_input_of_a_real_process() -> None:
    # The default stream is the process's own stdin (a scanner in keyboard mode on the console).
    code = (
        "from sesame.gate.readers import open_reader\n"
        "r = open_reader({'type': 'keyboard', 'debounce_s': 0.5})\n"
        "print(r.read(5), r.read(5), flush=True)\n"
        "r.close()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=b"SES1.stdin-a\nSES1.stdin-a\nSES1.stdin-b\n",
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().split() == ["SES1.stdin-a", "SES1.stdin-b"]


def test_a_keyboard_reader_needs_an_open_stream() -> None:
    with pytest.raises(ValueError, match="standard input"):
        open_reader({"type": "keyboard", "stream": "/dev/tty1"})
