"""`broker setup` notices a taken listener port and keeps an existing set-up's settings;
`broker run` refuses a taken port with one line (exit 2) instead of Mosquitto's message."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from sesame.broker.ports import port_taken
from sesame.cli import main
from sesame.common.net import free_port

REPO = Path(__file__).resolve().parents[1]
VENUE = str(REPO / "config" / "grand-palais.toml")


def _listen(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def _brokers(out: Path) -> set[str]:
    return {json.loads(p.read_text())["broker"] for p in (out / "credentials").glob("*.json")}


def test_port_taken_sees_a_listener_only():
    port = free_port()
    assert not port_taken("127.0.0.1", port)
    with _listen(port):
        assert port_taken("127.0.0.1", port)
    assert not port_taken("127.0.0.1", port)  # closed again (TIME_WAIT is not taken)


def test_setup_warns_in_one_line_when_its_port_is_taken_and_a_rerun_keeps_it(tmp_path, capsys):
    out = tmp_path / "b"
    port = free_port()
    assert main(["broker", "setup", "--venue", VENUE, "--out", str(out), "--port", str(port)]) == 0
    assert "warning" not in capsys.readouterr().err
    with _listen(port):
        # re-run without --port: the set-up keeps its port, and says that port is taken
        assert main(["broker", "setup", "--venue", VENUE, "--out", str(out)]) == 0
        cap = capsys.readouterr()
    warnings = [line for line in cap.err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1
    assert f"127.0.0.1:{port}" in warnings[0] and "--port" in warnings[0]
    assert f"mqtt://127.0.0.1:{port}" in cap.out
    assert _brokers(out) == {f"mqtt://127.0.0.1:{port}"}
    assert f"listener {port} 127.0.0.1" in (out / "mosquitto.conf").read_text()


def test_rerun_keeps_host_and_tls_and_an_explicit_port_changes_it(tmp_path, capsys):
    out = tmp_path / "b"
    port, other = free_port(), free_port()
    args = ["broker", "setup", "--venue", VENUE, "--out", str(out)]
    assert main([*args, "--port", str(port), "--host", "127.0.0.2", "--tls"]) == 0
    assert main(args) == 0
    assert json.loads((out / "broker.json").read_text())["host"] == "127.0.0.2"
    assert _brokers(out) == {f"mqtts://127.0.0.2:{port}"}
    assert main([*args, "--port", str(other)]) == 0
    assert _brokers(out) == {f"mqtts://127.0.0.2:{other}"}
    assert main([*args, "--no-tls"]) == 0  # another mode: that mode's default port
    assert _brokers(out) == {"mqtt://127.0.0.2:1883"}
    capsys.readouterr()


def test_run_refuses_a_taken_port_with_one_line(tmp_path):
    out = tmp_path / "b"
    port = free_port()
    assert main(["broker", "setup", "--venue", VENUE, "--out", str(out), "--port", str(port)]) == 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with _listen(port):
        for extra in ([], ["--embedded"]):
            r = subprocess.run(
                [sys.executable, "-m", "sesame", "broker", "run", "--config", str(out), *extra],
                capture_output=True, text=True, timeout=30, env=env,
            )  # fmt: skip
            assert r.returncode == 2, r.stderr
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "--port" in lines[0]
            assert "Address already in use" not in r.stderr
