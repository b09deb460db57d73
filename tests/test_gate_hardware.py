"""The per-gate hardware file, the example files, and systemd notifications from a running
`sesame gate run` (READY, WATCHDOG while the scan loop lives, STOPPING)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from sesame.common.tokens import generate_keypair
from sesame.common.venue import ConfigError, load_venue
from sesame.gate.hardware import load_hardware
from tests.fixtures.gate import ROOT


@pytest.mark.parametrize("path", sorted((ROOT / "config" / "gates").glob("*.toml")))
def test_example_files_load_and_match_the_venue(path):
    hw = load_hardware(path)
    venue = load_venue(ROOT / "config" / "grand-palais.toml")
    gate = path.stem.removesuffix("-gpio")  # <gate>-gpio.toml: the same lane on GPIO
    assert gate in venue.gates
    assert (hw.reader is None) == (not venue.gates[gate].reader)
    assert hw.agent.data_dir.is_absolute() and hw.agent.pubkeys


def test_relative_paths_and_refusals(tmp_path):
    f = tmp_path / "hw.toml"
    f.write_text('[controller]\nport = "simulated"\n[agent]\ndata_dir = "d"\npubkeys = ["k.pub"]\n')
    hw = load_hardware(f)
    assert hw.agent.data_dir == tmp_path / "d" and hw.agent.pubkeys == (tmp_path / "k.pub",)
    cases = {
        '[controller]\nport = "x"\nspeed = 3\n[agent]\ndata_dir="d"\npubkeys=[]\n': (
            "controller.speed",
            "unknown key",
            3,
        ),
        '[controller]\nport = "x"\n[agent]\npubkeys=[]\n': ("agent.data_dir", "missing", 3),
        '[reader]\nsource = 0\n[controller]\nport = "x"\n[agent]\ndata_dir="d"\npubkeys=[]\n': (
            "reader.type",
            "missing",
            1,
        ),
        '[controller]\nport = "x"\npass_timeout_s = -1\n[agent]\ndata_dir="d"\npubkeys=[]\n': (
            "controller.pass_timeout_s",
            "greater than 0",
            3,
        ),
        "[controller\n": ("", "TOML syntax", None),
    }
    for text, (key, words, line) in cases.items():
        f.write_text(text)
        with pytest.raises(ConfigError) as e:
            load_hardware(f)
        assert e.value.key == key and words in e.value.problem and e.value.line == line, e.value
        assert str(f) in str(e.value)
    with pytest.raises(ConfigError):
        load_hardware(tmp_path / "missing.toml")


def test_run_notifies_systemd(tmp_path):
    _, pub = generate_keypair(tmp_path / "keys")
    hw = tmp_path / "hw.toml"
    hw.write_text(
        f'[controller]\nport = "simulated"\n[agent]\ndata_dir = "d"\npubkeys = ["{pub}"]\n'
    )
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(30)
    env = dict(os.environ, NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="400000")
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sesame",
            "gate",
            "run",
            "--venue",
            str(ROOT / "config" / "grand-palais.toml"),
            "--gate",
            "churchill-out-1",
            "--hardware",
            str(hw),
            "--broker",
            "mqtt://127.0.0.1:9",
            "--no-display",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        got = []
        while got.count("WATCHDOG=1") < 2:
            got.append(sock.recv(100).decode())
        assert got[0] == "READY=1"
        p.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        while "STOPPING=1" not in got and time.monotonic() - t0 < 20:
            got.append(sock.recv(100).decode())
        assert "STOPPING=1" in got
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()
        sock.close()


def test_systemd_unit_restarts_and_watches_the_agent():
    import configparser

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(ROOT / "sesame" / "gate" / "deploy" / "sesame-gate@.service")
    svc = unit["Service"]
    assert svc["Type"] == "notify" and svc["Restart"] == "on-failure"
    assert int(svc["WatchdogSec"]) > 0
    cmd = svc["ExecStart"].replace("\\\n", " ").split()
    assert cmd[1:3] == ["gate", "run"]
    from sesame.cli import build_parser

    args = build_parser().parse_args(cmd[1:])  # every option it uses exists
    assert args.gate == "%i" and args.no_display


def test_doctor_refuses_the_private_signing_key_on_a_lane(tmp_path):
    from sesame.gate.doctor import _keys

    priv, pub = generate_keypair(tmp_path / "keys")
    hw = tmp_path / "hw.toml"
    for key, status in ((pub, "ok"), (priv, "FAIL")):
        hw.write_text(
            f'[controller]\nport = "simulated"\n[agent]\ndata_dir = "d"\npubkeys = ["{key}"]\n'
        )
        check = _keys(load_hardware(hw))
        assert check.status == status, check
    assert "private signing key" in check.detail and str(priv) in check.detail
