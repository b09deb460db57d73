"""`sesame simulate --broker HOST:PORT --broker-config DIR` through a broker someone else runs:
made by `sesame broker setup`, started by `sesame broker run` (both as a user types them, on a
free port), a small simulated day, and the export equals the ground truth."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sesame.broker.process import port_open
from sesame.common.net import free_port
from sesame.sim.truth import compare


def _sesame(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sesame", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


@pytest.fixture
def broker_run(tmp_path):
    """`sesame broker setup --port P` then `sesame broker run` in the background."""
    port = free_port()
    conf = tmp_path / "broker"
    done = _sesame("broker", "setup", "--out", str(conf), "--port", str(port), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "sesame", "broker", "run", "--config", str(conf)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", port) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.1)
        assert port_open("127.0.0.1", port), "sesame broker run never listened"
        yield port, conf
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_a_simulated_day_through_an_external_broker_exports_the_truth(broker_run, tmp_path):
    port, conf = broker_run
    assert port != 1883
    work, truth_file = tmp_path / "work", tmp_path / "truth.json"
    done = _sesame(
        "simulate", "--broker", f"127.0.0.1:{port}", "--broker-config", str(conf),
        "--days", "1", "--scale", "0.01", "--work", str(work), "--truth", str(truth_file),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["export_equals_truth"] is True, summary
    truth = json.loads(truth_file.read_text())
    assert truth["totals"]["unique_visitors"] > 0
    # the export a user runs afterwards: the database knows its (scaled) venue
    out = tmp_path / "attendance.json"
    done = _sesame("export", "attendance", "--db", str(work / "sesame.db"), "--format", "json",
                   "--out", str(out), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert compare(truth, json.loads(out.read_text())) == []


def test_external_broker_problems_are_one_line(broker_run, tmp_path):
    port, conf = broker_run
    closed = free_port()
    for args in (
        ["--broker", f"127.0.0.1:{closed}", "--broker-config", str(conf)],
        ["--broker", f"127.0.0.1:{port}", "--broker-config", str(tmp_path / "nothing")],
        ["--broker", "127.0.0.1:notaport", "--broker-config", str(conf)],
    ):
        done = _sesame("simulate", "--days", "1", "--scale", "0.01", *args, cwd=tmp_path)
        assert done.returncode in (1, 2), (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, (args, done.stderr)
        assert "Traceback" not in done.stderr
