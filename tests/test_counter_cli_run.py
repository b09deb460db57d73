"""`sesame counter run` while the broker is away: one line saying it waits (address without
the password), retries, one line once connected; a stop then exits 0."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_counter_cli import VENUE_FILE

REPO = Path(__file__).resolve().parents[1]


# -- counter run while the broker is away -------------------------------------------------


def _read_until(proc, want: str, seen: list[str], timeout: float = 30.0) -> None:
    """Collect whole lines from both streams (raw reads: nothing hides in a buffer) until
    one holds `want`."""
    streams = {proc.stdout.fileno(): "out", proc.stderr.fileno(): "err"}
    partial = getattr(proc, "_partial", None) or {"out": b"", "err": b""}
    proc._partial = partial
    deadline = time.monotonic() + timeout
    while not any(want in line for line in seen):
        left = deadline - time.monotonic()
        assert left > 0, f"no {want!r} within {timeout} s: {seen}"
        ready, _, _ = select.select(list(streams), [], [], min(left, 0.5))
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                assert proc.poll() is None, f"the counter ended: {seen}"
                continue
            name = streams[fd]
            *lines, partial[name] = (partial[name] + chunk).split(b"\n")
            seen += [f"{name}: {x.decode().rstrip()}" for x in lines]


@pytest.mark.timeout(90)
def test_counter_run_says_it_waits_for_the_broker_then_that_it_is_connected(mosquitto, tmp_path):
    url = str(mosquitto.credentials("counter"))  # as the README says: no password on argv
    password = mosquitto.password("counter")
    mosquitto.stop()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sesame", "counter", "run", "--venue", VENUE_FILE,
         "--db", str(tmp_path / "c.db"), "--broker", url],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    seen: list[str] = []
    try:
        _read_until(proc, "waiting for the broker", seen)
        time.sleep(1.5)  # it keeps waiting, quietly: still one line, still running
        assert proc.poll() is None, seen
        mosquitto.start()
        _read_until(proc, "connected", seen)
        assert proc.poll() is None, seen
        # a broker restart: one line when it goes, one when it is back
        mosquitto.restart()
        _read_until(proc, "lost the broker", seen)
        _read_until(proc, "again", seen)
        proc.send_signal(signal.SIGTERM)
        rest_out, rest_err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = proc._partial  # what followed the last whole line read
    seen += [f"out: {x}" for x in (left["out"] + rest_out).decode().splitlines()]
    seen += [f"err: {x}" for x in (left["err"] + rest_err).decode().splitlines()]
    assert proc.returncode == 0, seen
    waiting = [s for s in seen if "waiting for the broker" in s]
    assert len(waiting) == 1 and waiting[0].startswith("err: "), seen
    assert f"127.0.0.1:{mosquitto.port}" in waiting[0], seen
    assert not any(password in s for s in seen), "the password was printed"
    connected = [s for s in seen if "connected" in s]
    assert len(connected) == 2 and all(s.startswith("out: ") for s in connected), seen
    assert len(seen) == 4, seen  # waiting, connected, lost, connected again: nothing else
