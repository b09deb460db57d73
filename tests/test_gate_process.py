"""`sesame gate run` as a real process: killed with SIGKILL with passages in its outbox,
restarted, everything delivered in seq order. Also `sesame gate doctor`."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sesame.common import mqtt, wire
from sesame.common.tokens import Claims, generate_keypair, load_private_key, sign
from sesame.gate.turnstile import SimulatedController
from tests.fixtures.gate import ROOT

VENUE = ROOT / "config" / "grand-palais.toml"
GATE = "balcons-up-1"  # offline_policy "open": grants without a lease
T = wire.Topics("grand-palais")


def until(cond, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


@pytest.fixture
def rig(tmp_path, mosquitto):
    priv, pub = generate_keypair(tmp_path / "keys")
    ctl = SimulatedController(pushes=True)
    hw = tmp_path / "hw.toml"
    hw.write_text(
        f"""
[reader]
type = "keyboard"
debounce_s = 0

[controller]
port = "{ctl.port}"
pass_timeout_s = 2

[agent]
data_dir = "data"
pubkeys = ["{pub}"]
credentials = "{mosquitto.credentials("gate-" + GATE)}"
heartbeat_s = 0.5
"""
    )
    procs = []

    def start():
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sesame",
                "gate",
                "run",
                "--venue",
                str(VENUE),
                "--gate",
                GATE,
                "--hardware",
                str(hw),
                "--no-display",
                "--no-counter-clock",
                "--start-time",
                "2018-11-22T12:00:00+01:00",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        procs.append(p)
        return p

    yield start, load_private_key(priv), tmp_path / "data" / f"outbox-{GATE}.db", ctl, hw
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
    ctl.close()


def outbox_seq(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            return c.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
    except sqlite3.OperationalError:  # being created by the gate right now
        return 0


def test_gate_sigkill_with_a_full_outbox_delivers_everything_in_order(rig, mosquitto):
    start, key, db, ctl, _ = rig
    mosquitto.stop()  # the lane works offline: passages pile up in its outbox
    gate = start()
    tokens = [sign(Claims(f"K{i:03d}", "public", None), key) for i in range(40)]
    gate.stdin.write(("\n".join(tokens) + "\nnot a badge\n").encode())
    gate.stdin.flush()
    assert until(lambda: outbox_seq(db) == 41), outbox_seq(db)
    os.kill(gate.pid, signal.SIGKILL)
    gate.wait()
    lines = [json.loads(x) for x in gate.stdout.read().decode().splitlines()]
    assert [x["decision"] for x in lines] == ["GRANTED"] * 40 + ["DENIED"]
    assert ctl.passes == 40

    mosquitto.start()
    got: list[wire.Event] = []
    sub = mqtt.connect(
        mosquitto.url("counter"),
        "test-order",
        clean_start=True,
        subscriptions=[(T.events(GATE), 1)],
        on_message=lambda m: got.append(wire.parse_event(m.payload)),
    )
    try:
        gate = start()  # restarted: same outbox, same epoch, drains in order
        assert until(lambda: len({e.seq for e in got}) == 41), len(got)
        first: list[int] = []
        for e in got:
            if e.seq not in first:
                first.append(e.seq)
        assert first == list(range(1, 42))
        assert len({e.epoch for e in got}) == 1
        assert [e.kind for e in sorted(got, key=lambda e: e.seq)][:41].count("passage") == 40
        # no ack from anyone yet: the outbox still holds all 41
        sub.publish(T.ack(GATE), wire.Ack(got[0].epoch, 41).to_json(), 1, True)
        assert until(lambda: _status_outbox(mosquitto) == 0)
        gate.send_signal(signal.SIGTERM)  # orderly stop: exit 0
        assert gate.wait(timeout=20) == 0
    finally:
        sub.close(timeout=1)


def _status_outbox(mosquitto) -> int | None:
    seen: list[wire.GateStatus] = []
    with mqtt.connect(
        mosquitto.url("counter"),
        "test-status",
        clean_start=True,
        subscriptions=[(T.gate_status(GATE), 1)],
        on_message=lambda m: seen.append(wire.parse_gate_status(m.payload)),
    ):
        until(lambda: bool(seen), timeout=2)
    return seen[-1].outbox if seen and seen[-1] else None


def sesame(*args: str, stdin=None) -> subprocess.CompletedProcess:
    """The `sesame` command line, as a lane's operator types it."""
    return subprocess.run(
        [sys.executable, "-m", "sesame", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=60, stdin=stdin,
    )  # fmt: skip


def doctor(hw, stdin):
    return sesame("gate", "doctor", "--venue", str(VENUE), "--gate", GATE,
                  "--hardware", str(hw), "--timeout", "1.5", stdin=stdin)  # fmt: skip


def test_doctor_one_line_per_check(rig, mosquitto):
    _, _, _, ctl, hw = rig
    r, w = os.pipe()  # a keyboard that stays plugged in
    try:
        out = doctor(hw, r)
    finally:
        os.close(r)
        os.close(w)
    lines = out.stdout.splitlines()
    names = [x.split()[0] for x in lines]
    assert names == [
        "venue",
        "reader",
        "controller",
        "clock",
        "disk",
        "keys",
        "credentials",
        "broker",
    ], out.stdout + out.stderr
    status = dict((x.split()[0], x.split()[1]) for x in lines)
    assert status["controller"] == "ok" and status["broker"] == "ok", out.stdout
    assert status["keys"] == "ok" and status["disk"] == "ok"
    assert out.returncode == 0, out.stdout
    # the broker gone and the controller silent: each is one FAIL line, exit 1
    mosquitto.stop()
    ctl.silent = True
    out = doctor(hw, subprocess.DEVNULL)  # and the keyboard unplugged (end of input)
    status = dict((x.split()[0], x.split()[1]) for x in out.stdout.splitlines())
    assert status["controller"] == "FAIL" and status["broker"] == "FAIL", out.stdout
    assert status["reader"] == "FAIL", out.stdout
    assert out.returncode == 1


def test_run_refuses_bad_input_with_one_line(tmp_path):
    bad = tmp_path / "hw.toml"
    bad.write_text(
        '[controller]\nport = "simulated"\ncolour = "red"\n[agent]\ndata_dir="d"\npubkeys=[]\n'
    )
    out = sesame("gate", "run", "--venue", str(VENUE), "--gate", GATE, "--hardware", str(bad),
                 "--broker", "mqtt://127.0.0.1:9")  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "controller.colour: unknown key" in out.stderr
    assert "hw.toml:3" in out.stderr
    out = sesame("gate", "run", "--venue", str(VENUE), "--gate", "nope", "--hardware", str(bad))
    assert out.returncode == 2 and "no gate 'nope'" in out.stderr


def test_run_refuses_the_private_signing_key(tmp_path):
    """A lane holds only the public key: with the private one, whoever takes the board
    could sign badges."""
    from sesame.common.tokens import generate_keypair

    priv, _ = generate_keypair(tmp_path / "keys")
    hw = tmp_path / "hw.toml"
    hw.write_text(
        '[reader]\ntype = "keyboard"\n[controller]\nport = "simulated"\n'
        f'[agent]\ndata_dir = "{tmp_path / "data"}"\npubkeys = ["{priv}"]\n'
    )
    out = sesame("gate", "run", "--venue", str(VENUE), "--gate", GATE, "--hardware", str(hw),
                 "--broker", "mqtt://127.0.0.1:9", stdin=subprocess.DEVNULL)  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "private signing key" in out.stderr
