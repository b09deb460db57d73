"""`sesame broker setup`: files, accounts, permissions, password keeping and rotation, and
the command line around it (setup, run, client-args with mosquitto_sub)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from sesame.broker.process import MosquittoProcess, port_open
from sesame.broker.setup import (
    PASSWD,
    accounts,
    check_password,
    hash_password,
    read_password_file,
    setup,
)
from sesame.cli import main
from sesame.common.mqtt import ConnectRefused, connect
from sesame.common.net import free_port
from sesame.common.venue import load_venue, parse_venue

REPO = Path(__file__).resolve().parents[1]
VENUE = REPO / "config" / "grand-palais.toml"
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _passwords(out: Path) -> dict[str, str]:
    return {
        p.stem: json.loads(p.read_text())["password"] for p in (out / "credentials").glob("*.json")
    }


def test_files_accounts_and_modes(tmp_path):
    venue = load_venue(VENUE)
    result = setup(venue, tmp_path, port=18830)
    want = {"counter", "dashboard", "admin", "alerts"} | {f"gate-{g}" for g in venue.gates}
    assert set(accounts(venue)) == want and len(want) == 4 + len(venue.gates)
    assert set(result.created) == want
    assert set(read_password_file(tmp_path / PASSWD)) == want
    assert set(_passwords(tmp_path)) == want
    assert (tmp_path / PASSWD).stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "credentials").stat().st_mode & 0o777 == 0o700
    for p in (tmp_path / "credentials").glob("*.json"):
        assert p.stat().st_mode & 0o777 == 0o600
        data = json.loads(p.read_text())
        assert data["broker"] == "mqtt://127.0.0.1:18830" and data["username"] == p.stem
    conf = (tmp_path / "mosquitto.conf").read_text().splitlines()
    for line in (
        "allow_anonymous false",
        "persistence true",
        "max_queued_messages 100000",
        "max_queued_bytes 268435456",  # bounded: a flood cannot exhaust the broker's memory
        "listener 18830 127.0.0.1",
        f"acl_file {tmp_path.resolve() / 'acl'}",
    ):
        assert line in conf
    # every password hash verifies against its credential file
    hashes = read_password_file(tmp_path / PASSWD)
    for account, password in _passwords(tmp_path).items():
        assert check_password(password, hashes[account])


def test_wildcard_listener_gives_clients_this_machines_name(tmp_path):
    import socket

    setup(load_venue(VENUE), tmp_path, host="0.0.0.0", port=18831, allow_plaintext=True)
    assert "listener 18831 0.0.0.0" in (tmp_path / "mosquitto.conf").read_text().splitlines()
    cred = json.loads((tmp_path / "credentials" / "counter.json").read_text())
    assert cred["broker"] == f"mqtt://{socket.gethostname()}:18831"


def test_acl_gives_each_gate_only_its_own_topics(tmp_path):
    setup(load_venue(VENUE), tmp_path)
    text = (tmp_path / "acl").read_text()
    block = text.split("user gate-churchill-in-1\n")[1].split("\n\n")[0].splitlines()
    root = "sesame/v1/grand-palais"
    writes = sorted(line.split()[2] for line in block if line.split()[1] in ("write", "readwrite"))
    assert writes == [f"{root}/gates/churchill-in-1/events", f"{root}/gates/churchill-in-1/status"]
    assert f"topic read {root}/gates/churchill-in-1/lease" in block
    for line in block:  # nothing under another gate's (or every gate's) topics
        topic = line.split()[2]
        assert "/gates/" not in topic or "/gates/churchill-in-1/" in topic, line
        assert "#" not in topic and "corrections" not in topic, line


def test_rerun_keeps_passwords_and_rotate_changes_them(tmp_path):
    venue = load_venue(VENUE)
    setup(venue, tmp_path)
    first = _passwords(tmp_path)
    again = setup(venue, tmp_path)
    assert _passwords(tmp_path) == first and again.created == []
    rotated = setup(venue, tmp_path, rotate=True)
    after = _passwords(tmp_path)
    assert set(after) == set(first) and set(rotated.created) == set(first)
    assert all(after[a] != first[a] for a in first)
    # the broker takes the new passwords and refuses the old ones
    with MosquittoProcess(tmp_path, run_dir=tmp_path / "run") as proc:
        connect(proc.url("counter"), "new-pw", clean_start=True).close()
        with pytest.raises(ConnectRefused):
            connect(proc.url("counter", password=first["counter"]), "old-pw", timeout=5)


def test_rerun_keeps_a_password_whose_credential_file_was_moved_away(tmp_path):
    venue = load_venue(VENUE)
    setup(venue, tmp_path)
    before = read_password_file(tmp_path / PASSWD)["gate-churchill-in-1"]
    (tmp_path / "credentials" / "gate-churchill-in-1.json").unlink()  # copied to the gate
    result = setup(venue, tmp_path)
    assert read_password_file(tmp_path / PASSWD)["gate-churchill-in-1"] == before
    assert "gate-churchill-in-1" in result.kept


def test_corrupt_credential_file_keeps_the_hash_and_warns(tmp_path):
    venue = load_venue(VENUE)
    setup(venue, tmp_path)
    before = read_password_file(tmp_path / PASSWD)["counter"]
    (tmp_path / "credentials" / "counter.json").write_text('{"password": "a\\nb"}')
    result = setup(venue, tmp_path)
    assert read_password_file(tmp_path / PASSWD)["counter"] == before
    assert len(result.warnings) == 1 and "counter.json" in result.warnings[0]
    assert "counter" in setup(venue, tmp_path, rotate=True).created


def test_gates_removed_from_the_venue_lose_their_account(tmp_path):
    data = tomllib.loads(VENUE.read_text())
    setup(parse_venue(data, str(VENUE)), tmp_path)
    del data["gates"]["salon-out-1"]
    del data["plan"]["lanes"]["salon-out-1"]  # the plan may only name lanes of the venue
    result = setup(parse_venue(data, str(VENUE)), tmp_path)
    assert result.removed == ["gate-salon-out-1"]
    assert "gate-salon-out-1" not in read_password_file(tmp_path / PASSWD)
    assert not (tmp_path / "credentials" / "gate-salon-out-1.json").exists()
    assert "user gate-salon-out-1" not in (tmp_path / "acl").read_text()


def test_own_password_hashes_accepted_by_mosquitto(tmp_path):
    """Without mosquitto_passwd we write the `$7$` format ourselves: Mosquitto must take it."""
    setup(load_venue(VENUE), tmp_path, use_passwd_tool=False)
    with MosquittoProcess(tmp_path, run_dir=tmp_path / "run") as proc:
        connect(proc.url("gate-churchill-in-2"), "own-hash", clean_start=True).close()
        with pytest.raises(ConnectRefused):
            connect(proc.url("gate-churchill-in-2", password="wrong"), "own-bad", timeout=5)


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="needs mosquitto_passwd")
def test_our_hash_check_reads_mosquitto_passwd_output(tmp_path):
    f = tmp_path / "pw"
    f.write_text("someone:p@ss word\n")
    subprocess.run(["mosquitto_passwd", "-U", str(f)], check=True)
    hashed = read_password_file(f)["someone"]
    assert check_password("p@ss word", hashed) and not check_password("p@ss", hashed)
    assert check_password("x", hash_password("x")) and not check_password("y", hash_password("x"))


# -- command line -------------------------------------------------------------------------


def test_cli_setup_names_new_accounts_but_never_prints_a_password(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["broker", "setup", "--venue", str(VENUE), "--out", str(out)]) == 0
    first = capsys.readouterr()
    assert "new accounts: counter, dashboard" in first.out
    assert not any(pw in first.out + first.err for pw in _passwords(out).values())
    assert main(["broker", "setup", "--venue", str(VENUE), "--out", str(out)]) == 0
    second = capsys.readouterr().out
    assert "new accounts" not in second and "kept the passwords" in second


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("[venue\nid = 1", "bad.toml"),
        ('[venue]\nid = "x"\nname = "x"\ntimezone = "Mars/Olympus"\n', "bad.toml"),
    ],
)
def test_cli_bad_venue_exits_2_with_one_line(tmp_path, capsys, content, words):
    bad = tmp_path / "bad.toml"
    bad.write_text(content)
    code = main(["broker", "setup", "--venue", str(bad), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and words in err
    assert not (tmp_path / "o").exists()


def test_cli_missing_venue_and_bad_port(tmp_path, capsys):
    assert main(["broker", "setup", "--venue", str(tmp_path / "no.toml"), "--out", "x"]) == 2
    assert "no.toml" in capsys.readouterr().err
    code = main(["broker", "setup", "--venue", str(VENUE), "--out", str(tmp_path), "--port", "0"])
    assert code == 2 and "--port" in capsys.readouterr().err


def test_cli_run_without_setup_exits_2(tmp_path, capsys):
    assert main(["broker", "run", "--config", str(tmp_path)]) == 2
    assert "broker setup" in capsys.readouterr().err


@pytest.mark.parametrize("embedded", [False, True], ids=["mosquitto", "embedded"])
def test_cli_run_then_mosquitto_sub_with_a_credential_file(broker_config, tmp_path, embedded):
    """The newcomer's path: setup, `sesame broker run`, mosquitto_sub with a credential file."""
    out = tmp_path / "b"
    shutil.copytree(broker_config, out)
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "sesame",
        "broker",
        "run",
        "--config",
        str(out),
        "--port",
        str(port),
    ] + (["--embedded"] if embedded else [])
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while not port_open("127.0.0.1", port) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        cred = out / "credentials" / "dashboard.json"
        data = json.loads(cred.read_text())
        data["broker"] = f"mqtt://127.0.0.1:{port}"  # this run listens on a free port
        cred.write_text(json.dumps(data))
        counter = json.loads((out / "credentials" / "counter.json").read_text())
        lease_topic = "sesame/v1/grand-palais/gates/churchill-in-1/lease"
        conn = connect(
            f"mqtt://counter:{counter['password']}@127.0.0.1:{port}", "c-cli", clean_start=True
        )
        conn.publish(lease_topic, b'{"serial": 1}', retain=True).wait_for_publish(5)
        conn.close()
        shown = subprocess.run(
            [sys.executable, "-m", "sesame", "broker", "client-args", str(cred)],
            cwd=REPO,
            env=ENV,
            capture_output=True,
            text=True,
            check=True,
        )
        assert data["password"] not in shown.stdout + shown.stderr  # nor in `ps` later
        name, _, folder = shown.stdout.strip().partition("=")
        assert name == "XDG_CONFIG_HOME" and (Path(folder) / "mosquitto_sub").is_file()
        assert (Path(folder) / "mosquitto_sub").stat().st_mode & 0o777 == 0o600
        sub = subprocess.run(
            ["mosquitto_sub", "-t", "sesame/v1/grand-palais/#", "-C", "1", "-W", "10", "-v"],
            capture_output=True,
            text=True,
            timeout=20,
            env={**os.environ, "XDG_CONFIG_HOME": folder},
        )
        assert sub.stdout.strip() == f'{lease_topic} {{"serial": 1}}', sub.stderr
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if embedded:
        assert b"DEVELOPMENT DEFAULT" in proc.stderr.read()


def test_start_local_broker_prefers_mosquitto(broker_config, tmp_path, monkeypatch):
    from sesame.broker import process
    from sesame.broker.embedded import EmbeddedBroker

    b = process.start_local_broker(broker_config, run_dir=tmp_path / "a")
    try:
        assert isinstance(b, MosquittoProcess)
        connect(b.url("admin"), "local-a", clean_start=True).close()
    finally:
        b.close()
    # without Mosquitto installed: the embedded broker, same accounts
    monkeypatch.setattr(process, "mosquitto_binary", lambda: None)
    b = process.start_local_broker(broker_config, run_dir=tmp_path / "b")
    try:
        assert isinstance(b, EmbeddedBroker)
        conn = connect(b.url("admin"), "local-b", clean_start=True)
        assert conn.protocol == "3.1.1"
        conn.close()
    finally:
        b.close()
