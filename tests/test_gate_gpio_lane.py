"""From `sesame broker setup` to a visitor through a GPIO lane, with the technician's commands:
`sesame broker setup` + `sesame broker run` (a real Mosquitto on a free port), `sesame gate
provision`, then `sesame gate run` started from the bundle as the unit starts it. The counter
runs in the test (its clock on an event day); the badge is typed on the lane's keyboard reader.
A granted badge pulses the unlock relay, the arm's contact makes one passage the counter
acknowledges; then the fire panel's loop opens: the lane frees itself at once, refuses
entries, the counter raises FIRE_ALARM; restored, the lane locks again.

The agent's GPIO is gpiozero's mock pin factory. Mock pins live inside the agent's process, so
the turnstile behind them is simulated there too (tests/fixtures/gpio_tripod/sitecustomize.py
on PYTHONPATH): when the unlock relay closes, the arm turns and its passage contact closes;
every pin change is logged to a file the test reads. The agent's own code is not touched.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sesame.broker.process import port_open
from sesame.common.net import free_port
from sesame.common.tokens import Claims, generate_keypair, load_private_key, sign
from sesame.common.venue import load_venue
from sesame.counter.service import Counter
from sesame.gate.hardware import load_hardware
from tests.fixtures.gate import ROOT, FakeClock, paris

VENUE = ROOT / "config" / "grand-palais.toml"
GATE = "churchill-in-1"
RIG = ROOT / "tests" / "fixtures" / "gpio_tripod"
# the pins of the provision template (INSTALL.md's table): relays active low
OPEN_IN, OPEN_OUT, FREE, PASSED_IN, FIRE_LOOP = 17, 27, 22, 5, 13
RELEASED, CLOSED = 1, 0


def until(cond, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


def sesame(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sesame", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


@pytest.fixture
def broker(tmp_path):
    """`sesame broker setup --port P` then `sesame broker run`, as the organiser types them."""
    port = free_port()
    conf = tmp_path / "broker"
    done = sesame("broker", "setup", "--venue", str(VENUE), "--out", str(conf),
                  "--port", str(port), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "sesame", "broker", "run", "--config", str(conf)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert until(lambda: port_open("127.0.0.1", port) or proc.poll() is not None, 20)
        assert proc.poll() is None, proc.stdout.read()
        yield conf
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def pin_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def closings(log: list[dict], pin: int) -> list[float]:
    """Seconds each closing of an output (relay) lasted."""
    out, since = [], None
    for e in log:
        if e["pin"] != pin or e["as"] != "output":
            continue
        if e["state"] == CLOSED:
            since = e["t"]
        elif since is not None:
            out.append(e["t"] - since)
            since = None
    return out


def first(log: list[dict], pin: int, state: int, kind: str = "output") -> float | None:
    """When a pin first took this state (an output, or a contact the rig opened/closed)."""
    return next((e["t"] for e in log if (e["pin"], e["state"], e["as"]) == (pin, state, kind)),
                None)  # fmt: skip


def outbox(db: Path) -> tuple[int, int]:
    """(last seq, acked seq) of the lane's outbox, read-only."""
    if not db.exists():
        return 0, -1
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            last = c.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
            row = c.execute("SELECT value FROM meta WHERE key = 'acked'").fetchone()
    except sqlite3.OperationalError:  # being created right now
        return 0, -1
    return last, int(row[0]) if row else 0


def test_provisioned_gpio_lane_passes_a_visitor_and_obeys_the_fire_alarm(broker, tmp_path):
    priv, pub = generate_keypair(tmp_path / "keys")
    bundle = tmp_path / "bundle"
    done = sesame("gate", "provision", "--venue", str(VENUE), "--gate", GATE,
                  "--broker-config", str(broker), "--pubkey", str(pub), "--out", str(bundle),
                  "--reader", "keyboard", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    hw = bundle / "gates" / f"{GATE}.toml"

    db = tmp_path / "counter.db"
    counter = Counter(load_venue(VENUE), db, None, broker / "credentials" / "counter.json",
                      clock=FakeClock(paris(2018, 11, 22, 12)), status_s=0.5).start()  # fmt: skip
    log_file, data = tmp_path / "pins.jsonl", tmp_path / "lane-data"
    # the fire panel's loop is wired and closed (no alarm): the lane is not held free
    commands = tmp_path / "rig-commands.jsonl"
    rig = {"log": str(log_file), "unlock": {str(OPEN_IN): PASSED_IN}, "closed": [FIRE_LOOP],
           "commands": str(commands), "relay_active": "low", "contact_active": "low",
           "push_after_ms": 100}  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(RIG), SESAME_TEST_TRIPOD=json.dumps(rig),
               GPIOZERO_PIN_FACTORY="mock")  # fmt: skip
    gate = subprocess.Popen(
        [sys.executable, "-m", "sesame", "gate", "run", "--venue", str(bundle / "venue.toml"),
         "--gate", GATE, "--hardware", str(hw), "--data-dir", str(data), "--no-display",
         "--start-time", "2018-11-22T12:00:00+01:00"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    try:
        # the lane is up and its relays released before anyone comes
        assert until(lambda: {e["pin"] for e in pin_log(log_file)} >= {OPEN_IN, OPEN_OUT, FREE})
        assert all(e["state"] == RELEASED for e in pin_log(log_file))
        assert until(lambda: counter.core is not None and GATE in counter.core.leases)

        key = load_private_key(priv)
        decisions = []
        deadline = time.monotonic() + 30
        for i in range(1000):  # until the lane holds the counter's lease (retained, just sent)
            gate.stdin.write(sign(Claims(f"V{i:03d}", "public", None), key) + "\n")
            gate.stdin.flush()
            line = gate.stdout.readline()
            assert line, gate.stderr.read()
            decisions.append(json.loads(line))
            if decisions[-1]["decision"] == "GRANTED":
                break
            assert decisions[-1]["reason"] == "LEASE_EXHAUSTED", decisions[-1]
            assert time.monotonic() < deadline, "the lane never got its lease"
            time.sleep(0.3)
        visitor = decisions[-1]
        assert visitor["decision"] == "GRANTED" and visitor["passages"] == 1, decisions

        log = pin_log(log_file)
        pulses = closings(log, OPEN_IN)
        assert len(pulses) == 1 and 0.28 <= pulses[0] < 1.5, pulses  # pulse_ms = 300
        assert [e["state"] for e in log if e["as"] == "contact"] == [1, 0]  # one arm turn
        assert closings(log, OPEN_OUT) == [] and closings(log, FREE) == []

        # the passage reaches the counter, and the counter's ack empties the lane's outbox
        def counted() -> list[tuple]:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
                return c.execute("SELECT badge, kind FROM events WHERE gate = ? AND "
                                 "kind = 'passage'", (GATE,)).fetchall()  # fmt: skip

        assert until(lambda: counted() == [(visitor["badge"], "passage")]), counted()
        ob = data / f"outbox-{GATE}.db"
        assert until(lambda: outbox(ob)[0] > 0 and outbox(ob)[1] == outbox(ob)[0]), outbox(ob)

        # the fire panel's relay opens: the lane frees its turnstile at once, by itself...
        with commands.open("a") as f:
            f.write(json.dumps({"open": FIRE_LOOP}) + "\n")
        assert until(lambda: first(pin_log(log_file), FREE, CLOSED) is not None, timeout=5)
        opened = first(pin_log(log_file), FIRE_LOOP, 0, "contact")
        freed = first(pin_log(log_file), FREE, CLOSED)
        assert 0 <= freed - opened < 0.5, (opened, freed)
        # ...refuses entries, and the counter hears of it (a FIRE_ALARM finding, not an
        # evacuation: the reference venue leaves that to a safety officer)
        gate.stdin.write(sign(Claims("V900", "public", None), key) + "\n")
        gate.stdin.flush()
        refused = json.loads(gate.stdout.readline())
        assert (refused["decision"], refused["reason"]) == ("DENIED", "FIRE_ALARM"), refused
        assert until(lambda: GATE in counter.core.fire.active)
        assert not counter.core.controls.evacuating
        # restored: the free relay is released and the finding clears
        with commands.open("a") as f:
            f.write(json.dumps({"close": FIRE_LOOP}) + "\n")
        assert until(lambda: len(closings(pin_log(log_file), FREE)) == 1, timeout=5)
        assert until(lambda: GATE not in counter.core.fire.active)
    finally:
        gate.send_signal(signal.SIGTERM)
        rc = gate.wait(timeout=20)
        counter.stop()
    assert rc == 0, gate.stderr.read()
    # stopped: every output's last state is released
    last = {e["pin"]: e["state"] for e in pin_log(log_file) if e["as"] == "output"}
    assert last == {OPEN_IN: RELEASED, OPEN_OUT: RELEASED, FREE: RELEASED}


EXAMPLE = ROOT / "config" / "gates" / f"{GATE}-gpio.toml"
INSTALL = ROOT / "sesame" / "gate" / "deploy" / "INSTALL.md"


def test_example_gpio_file_install_table_and_provision_template_agree(tmp_path):
    from sesame.broker.setup import setup
    from sesame.gate.provision import provision

    example = load_hardware(EXAMPLE).controller
    table = dict(re.findall(r"`(\w+_pin) = (\d+)`", INSTALL.read_text()))
    pins = {k: getattr(example, k) for k in example.pin_names() if getattr(example, k) is not None}
    assert {k: int(v) for k, v in table.items()} == pins
    venue = load_venue(VENUE)
    setup(venue, tmp_path / "broker")
    _, pub = generate_keypair(tmp_path / "keys")
    provision(venue, VENUE, GATE, tmp_path / "broker", [pub], tmp_path / "bundle")
    assert load_hardware(tmp_path / "bundle" / "gates" / f"{GATE}.toml").controller == example


def test_doctor_validates_the_example_gpio_file_and_clicks_each_relay(tmp_path):
    log_file = tmp_path / "pins.jsonl"
    rig = {"log": str(log_file), "unlock": {}, "closed": [FIRE_LOOP]}  # fire loop closed
    env = dict(os.environ, PYTHONPATH=str(RIG), SESAME_TEST_TRIPOD=json.dumps(rig),
               GPIOZERO_PIN_FACTORY="mock")  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "sesame", "gate", "doctor", "--venue", str(VENUE), "--gate", GATE,
         "--hardware", str(EXAMPLE), "--timeout", "0.5", "--click"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
    )  # fmt: skip
    checks = {}
    for line in done.stdout.splitlines():
        name, status, detail = re.match(r"(\S+(?: \S+)?)\s+(ok|WARN|FAIL)\s+(.*)", line).groups()
        checks[name] = (status, detail)
    assert checks["controller"] == (
        "ok", "gpio: relays open_in GPIO17, open_out GPIO27, free GPIO22 released"
    ), done.stdout
    assert checks["in passed_in"] == ("ok", "GPIO5 open")
    assert checks["in passed_out"] == ("ok", "GPIO6 open")
    assert checks["in fire_alarm"] == ("ok", "GPIO13 normal")
    assert checks["decoders"][0] == "ok" and checks["venue"][0] == "ok"
    for relay, pin in (("open_in", OPEN_IN), ("open_out", OPEN_OUT), ("free", FREE)):
        assert checks[f"click {relay}"][0] == "ok"
        pulses = closings(pin_log(log_file), pin)
        assert len(pulses) == 1 and 0.28 <= pulses[0] < 1.5, (relay, pulses)
    # off the board only what lives on the board fails: its camera, key, credential, broker
    failed = {name for name, (status, _) in checks.items() if status == "FAIL"}
    assert failed == {"reader", "keys", "credentials", "broker"}, done.stdout
    assert done.returncode == 1
