"""Secrets stay secret: a broker listener other machines can reach is not plaintext unless
asked for; no set-up command prints a password; every secret file Sesame writes is 0600
(its folder 0700) from creation, whatever the umask.

The commands run as real processes under umask 000, the most permissive there is: a mode
that holds there holds under any umask."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sesame.cli import main
from sesame.common.private_files import write_private

REPO = Path(__file__).resolve().parents[1]
VENUE = REPO / "config" / "grand-palais.toml"
GATE = "churchill-in-1"


def sesame(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sesame", *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        preexec_fn=lambda: os.umask(0),
    )


def mode(p: Path) -> int:
    return p.stat().st_mode & 0o777


def passwords(out: Path) -> list[str]:
    return [json.loads(p.read_text())["password"] for p in (out / "credentials").glob("*.json")]


@pytest.mark.parametrize("host", ["0.0.0.0", "broker.venue.example"])
def test_a_listener_other_machines_reach_needs_tls(tmp_path, host):
    out = tmp_path / "b"
    r = sesame("broker", "setup", "--venue", str(VENUE), "--out", str(out), "--host", host)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--host {host}" in lines[0]
    assert "--tls" in lines[0] and "--allow-plaintext" in lines[0] and "in clear" in lines[0]
    assert not out.exists()  # refused before anything is written


def test_tls_or_an_explicit_allow_plaintext_opens_it(tmp_path, capsys):
    plain, tls = tmp_path / "plain", tmp_path / "tls"
    args = ["broker", "setup", "--venue", str(VENUE), "--host", "0.0.0.0"]
    assert main([*args, "--out", str(plain), "--allow-plaintext"]) == 0
    assert "warning: plaintext listener on 0.0.0.0" in capsys.readouterr().err
    assert "listener 1883 0.0.0.0" in (plain / "mosquitto.conf").read_text().splitlines()
    # the choice is not remembered: a re-run without it is refused again
    assert main(["broker", "setup", "--venue", str(VENUE), "--out", str(plain)]) == 2
    assert main([*args, "--out", str(tls), "--tls"]) == 0
    for host in ("127.0.0.1", "::1", "localhost"):  # loopback needs neither
        out = str(tmp_path / host)
        assert main(["broker", "setup", "--venue", str(VENUE), "--out", out, "--host", host]) == 0
    capsys.readouterr()
    for host in ("::", "192.0.2.10"):
        assert main([*args[:-1], host, "--out", str(tmp_path / "x")]) == 2
        assert f"--host {host}: " in capsys.readouterr().err
    code = main(["broker", "setup", "--venue", str(VENUE), "--out", str(tmp_path / "nats"),
                 "--nats-cluster", "3", "--nats-hosts", "10.0.0.1,10.0.0.2,10.0.0.3"])  # fmt: skip
    assert code == 2 and "--host 10.0.0.1" in capsys.readouterr().err


def test_no_set_up_command_prints_a_password_and_every_secret_is_0600(tmp_path):
    out, bundle, nats = tmp_path / "broker", tmp_path / "bundle", tmp_path / "nats"
    shown: list[str] = []

    def run(*args: str, stdin: str | None = None) -> None:
        r = sesame(*args, stdin=stdin)
        assert r.returncode == 0, (args, r.stderr)
        shown.append(r.stdout + r.stderr)

    setup = ["broker", "setup", "--venue", str(VENUE)]
    run(*setup, "--out", str(out), "--tls")
    run(*setup, "--out", str(out), "--tls", "--rotate")
    run(*setup, "--out", str(nats), "--nats-cluster", "3")
    run("badges", "keygen", "--out", str(tmp_path / "keys"))
    run("gate", "provision", "--venue", str(VENUE), "--gate", GATE, "--broker-config", str(out),
        "--pubkey", str(tmp_path / "keys" / "badge-signing.pub"), "--out", str(bundle))  # fmt: skip
    run("broker", "client-args", str(out / "credentials" / "dashboard.json"))
    officer = "correct horse battery"
    accounts = tmp_path / "dashboard.db"
    run("users", "add", "sophie", "--role", "safety", "--password-stdin",
        "--accounts", str(accounts), stdin=officer + "\n")  # fmt: skip

    secrets = passwords(out) + passwords(nats) + [officer]
    assert len(secrets) > 20
    for text in shown:
        assert not [s for s in secrets if s in text], text

    private = [
        out / "passwd",
        out / "tls" / "ca.key",
        out / "tls" / "server.key",
        *(out / "credentials").glob("*.json"),
        *(out / "credentials").glob("*.key"),
        *(out / "credentials" / "dashboard.mosquitto").iterdir(),
        nats / "passwd",
        *(nats / "credentials").glob("*.json"),
        *(nats / "nats").glob("*.conf"),
        tmp_path / "keys" / "badge-signing.key",
        bundle / "credentials" / f"gate-{GATE}.json",
        bundle / "credentials" / f"gate-{GATE}.key",
        accounts,  # argon2id hashes and the audit log (sesame.common.sqlite creates it 0600)
    ]
    assert len(private) > 40 and all(p.is_file() for p in private)
    assert {str(p): oct(mode(p)) for p in private if mode(p) != 0o600} == {}
    folders = [out / "credentials", out / "tls", nats / "credentials", nats / "nats",
               out / "credentials" / "dashboard.mosquitto", bundle / "credentials"]  # fmt: skip
    assert {str(p): oct(mode(p)) for p in folders if mode(p) != 0o700} == {}
    # what is public stays readable (gates and services read it as other users)
    assert mode(out / "credentials" / "ca.crt") == 0o644 and mode(out / "acl") == 0o644


def test_a_planted_temporary_file_is_never_written_through(tmp_path):
    """The bundle used to write `<name>.tmp` with O_CREAT and no O_EXCL: a file (or symlink)
    planted there received the credential. Now the temporary file is mkstemp's own."""
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched")
    target = tmp_path / "credentials" / "gate-x.json"
    target.parent.mkdir()
    for planted in (".tmp", ".partial"):
        (target.parent / (target.name + planted)).symlink_to(outside)
    write_private(target, '{"password": "s3cret"}')
    assert outside.read_text() == "untouched" and mode(target) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == [
        "gate-x.json",
        "gate-x.json.partial",
        "gate-x.json.tmp",
    ]


def test_a_password_in_a_broker_url_is_warned_about_without_showing_it(capsys):
    from sesame.common.mqtt_url import warn_password_in_url

    warn_password_in_url("mqtt://counter:s3cret-pw@broker:1883,broker2:1883")
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "process list" in err and "--credentials" in err
    assert "s3cret-pw" not in err
    for quiet in ("mqtt://broker:1883", "run/broker/credentials/counter.json", None):
        warn_password_in_url(quiet)
    assert capsys.readouterr().err == ""
