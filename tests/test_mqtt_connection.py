"""The shared client against real brokers: protocol choice, persistent sessions across a
broker restart, reconnect with re-subscription, Last Will, offline start, timeouts."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sesame.common.mqtt import ConnectTimeout, connect
from sesame.common.net import free_port
from sesame.common.wire import Topics

T = Topics("grand-palais")
GATE = "churchill-in-1"
REPO = Path(__file__).resolve().parents[1]


def _wait(pred, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def _collect(got: queue.Queue, n: int, timeout: float = 10.0) -> list:
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        try:
            out.append(got.get(timeout=0.05))
        except queue.Empty:
            pass
    return out


def test_auto_picks_mqtt5_on_mosquitto_and_311_when_forced(mosquitto):
    a = connect(mosquitto.url("counter"), "proto-a")
    b = connect(mosquitto.url("dashboard"), "proto-b", protocol="3.1.1")
    try:
        assert (a.protocol, b.protocol) == ("5", "3.1.1")
        assert a.is_connected() and b.is_connected()
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_queued_qos1_survive_graceful_broker_restart(mosquitto, protocol):
    """An offline persistent session's QoS 1 messages are kept across a restart."""
    got: queue.Queue = queue.Queue()
    sub = connect(
        mosquitto.url("counter"),
        f"counter-persist-{protocol}",
        protocol=protocol,
        subscriptions=[(T.events(), 1)],
        on_message=lambda m: got.put(m.payload),
    )
    sub.close()  # clean disconnect: the session stays (expiry 1 day / clean_session off)

    gate = connect(mosquitto.url(f"gate-{GATE}"), "gate-persist", clean_start=True)
    infos = [gate.publish(T.events(GATE), f"e{i}".encode()) for i in range(200)]
    for info in infos:
        info.wait_for_publish(5)
    gate.close()

    mosquitto.restart()

    sub = connect(
        mosquitto.url("counter"),
        f"counter-persist-{protocol}",
        protocol=protocol,
        subscriptions=[(T.events(), 1)],
        on_message=lambda m: got.put(m.payload),
    )
    try:
        received = _collect(got, 200)
        assert sorted(received) == sorted(f"e{i}".encode() for i in range(200))
    finally:
        sub.close()


@pytest.mark.parametrize("which", ["mosquitto", "embedded_broker"])
def test_reconnects_and_resubscribes_after_broker_restart(request, which):
    broker = request.getfixturevalue(which)
    got: queue.Queue = queue.Queue()
    states: list[str] = []
    sub = connect(
        broker.url("counter"),
        "counter-resub",
        subscriptions=[(T.events(), 1)],
        on_message=lambda m: got.put(m.payload),
        on_state=lambda state, detail: states.append(state),
    )
    try:
        sub.subscribe([(T.gate_status(), 1)])  # added later: kept across reconnects too
        broker.restart()  # the embedded broker forgets every session: only re-subscribing helps
        assert _wait(lambda: "disconnected" in states)
        assert sub.wait_connected(40)  # backoff 1, 2, 4, 8, 16 s under load
        gate = connect(broker.url(f"gate-{GATE}"), "gate-resub", clean_start=True)
        gate.publish(T.events(GATE), b"after-restart").wait_for_publish(5)
        gate.publish(T.gate_status(GATE), b"status-after-restart").wait_for_publish(5)
        gate.close()
        assert sorted(_collect(got, 2)) == [b"after-restart", b"status-after-restart"]
        assert states[0] == "connected" and states[-1] == "connected"
    finally:
        sub.close()


_DYING_GATE = """
import sys, time
from sesame.common.mqtt import connect
conn = connect(sys.argv[1], "gate-dying", clean_start=True,
               will=(sys.argv[2], b'{"online": false}'))
print("up", flush=True)
time.sleep(60)
"""


def test_last_will_published_when_client_dies(mosquitto):
    """A gate killed with SIGKILL gets its retained offline status from its Last Will."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _DYING_GATE, mosquitto.url(f"gate-{GATE}"), T.gate_status(GATE)],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout.readline() == b"up\n"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    got: queue.Queue = queue.Queue()
    watcher = connect(
        mosquitto.url("dashboard"),
        "watch-will",
        clean_start=True,
        subscriptions=[(T.gate_status(GATE), 1)],
        on_message=lambda m: got.put((m.payload, m.retain)),
    )
    try:
        assert _collect(got, 1) == [(b'{"online": false}', True)]
    finally:
        watcher.close()


def test_clean_close_sends_no_will(mosquitto):
    got: queue.Queue = queue.Queue()
    watcher = connect(
        mosquitto.url("dashboard"),
        "watch-nowill",
        clean_start=True,
        subscriptions=[(T.gate_status(GATE), 1)],
        on_message=lambda m: got.put(m.payload),
    )
    gate = connect(mosquitto.url(f"gate-{GATE}"), "gate-clean", will=(T.gate_status(GATE), b"will"))
    gate.close()
    try:
        # A marker from the dashboard's own view: the will would have arrived before it.
        gate = connect(mosquitto.url(f"gate-{GATE}"), "gate-clean2", clean_start=True)
        gate.publish(T.gate_status(GATE), b"marker").wait_for_publish(5)
        gate.close()
        assert _collect(got, 1) == [b"marker"]
    finally:
        watcher.close()


def test_offline_start_connects_when_broker_appears(mosquitto):
    mosquitto.stop()
    states: list[str] = []
    conn = connect(
        mosquitto.url("counter"), "late", wait=False, on_state=lambda s, d: states.append(s)
    )
    try:
        assert not conn.is_connected()
        info = conn.publish(T.lease(GATE), b"queued while offline", retain=True)
        mosquitto.start()
        assert conn.wait_connected(40)
        info.wait_for_publish(5)
        assert conn.protocol == "5"
        assert states[-1] == "connected"
    finally:
        conn.close()
    got: queue.Queue = queue.Queue()
    check = connect(
        mosquitto.url(f"gate-{GATE}"),
        "gate-late",
        clean_start=True,
        subscriptions=[(T.lease(GATE), 1)],
        on_message=lambda m: got.put(m.payload),
    )
    try:
        assert _collect(got, 1) == [b"queued while offline"]
    finally:
        check.close()


def test_timeout_when_nobody_listens():
    t0 = time.monotonic()
    with pytest.raises(ConnectTimeout, match="within 1.5 s"):
        connect(f"mqtt://u:p@127.0.0.1:{free_port()}", "nobody", timeout=1.5)
    assert time.monotonic() - t0 < 5


def test_refused_subscription_is_recorded(embedded_broker):
    """The embedded broker refuses a SUBSCRIBE outside the ACL (Mosquitto grants it and
    delivers nothing); the connection records the refused filters and keeps the others."""
    conn = connect(
        embedded_broker.url(f"gate-{GATE}"),
        "gate-sub-refused",
        clean_start=True,
        subscriptions=[(T.counter_status(), 1), (T.events(), 1), (f"{T.root}/#", 1)],
    )
    try:
        assert _wait(lambda: len(conn.subscribe_refusals) == 2)
        assert conn.subscribe_refusals == [(T.events(), 0x80), (f"{T.root}/#", 0x80)]
        assert conn.is_connected()
    finally:
        conn.close()


def test_a_failing_on_message_does_not_deafen_the_client(mosquitto):
    got: list[bytes] = []

    def on_message(m):
        got.append(m.payload)
        if m.payload == b"boom":
            raise ValueError("handler bug")

    sub = connect(
        mosquitto.url("counter"),
        "counter-boom",
        clean_start=True,
        subscriptions=[(T.events(), 1)],
        on_message=on_message,
    )
    gate = connect(mosquitto.url(f"gate-{GATE}"), "gate-boom", clean_start=True)
    try:
        gate.publish(T.events(GATE), b"boom").wait_for_publish(5)
        gate.publish(T.events(GATE), b"after").wait_for_publish(5)
        assert _wait(lambda: got == [b"boom", b"after"], 5), got
        assert sub.is_connected()
    finally:
        gate.close()
        sub.close()


def test_reconnects_after_broker_kill_9(mosquitto):
    """SIGKILL (power cut): the client notices, retries with backoff and comes back."""
    got: queue.Queue = queue.Queue()
    states: list[str] = []
    sub = connect(
        mosquitto.url("counter"),
        "counter-kill",
        subscriptions=[(T.events(), 1)],
        on_message=lambda m: got.put(m.payload),
        on_state=lambda state, detail: states.append(state),
    )
    try:
        mosquitto.kill()
        assert _wait(lambda: "disconnected" in states)
        mosquitto.start()
        assert sub.wait_connected(40)
        gate = connect(mosquitto.url(f"gate-{GATE}"), "gate-kill", clean_start=True)
        gate.publish(T.events(GATE), b"after-kill").wait_for_publish(5)
        gate.close()
        assert _collect(got, 1) == [b"after-kill"]
    finally:
        sub.close()


def test_background_connect_reports_refusal_and_keeps_trying(mosquitto):
    """wait=False (offline-first gates): a refused CONNECT is reported, never raised, and
    retried with backoff, so fixing the broker side lets the client in without a restart."""
    states: list[tuple[str, str]] = []
    conn = connect(
        mosquitto.url("counter", password="stale"),
        "counter-stale",
        wait=False,
        on_state=lambda s, d: states.append((s, d)),
    )
    try:
        assert _wait(lambda: sum(s == "refused" for s, _ in states) >= 2, 10), states
        assert not conn.is_connected()
        assert "135" in states[-1][1] or "134" in states[-1][1]
    finally:
        conn.close()
