"""Topic permissions enforced by a real Mosquitto running the generated configuration."""

from __future__ import annotations

import queue
import time

import pytest

from sesame.mqtt import ConnectRefused, connect
from sesame.wire import Topics

T = Topics("grand-palais")
GATE_A, GATE_B = "churchill-in-1", "churchill-in-2"


def _collector(mosquitto, account: str, topic: str, client_id: str):
    got: queue.Queue = queue.Queue()
    conn = connect(
        mosquitto.url(account),
        client_id,
        subscriptions=[(topic, 1)],
        on_message=lambda m: got.put((m.topic, m.payload)),
    )
    return conn, got


def _drain_until(got: queue.Queue, want: bytes, timeout: float = 5.0) -> list:
    """Messages received until `want` arrives (the marker proves earlier ones had time)."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            item = got.get(timeout=0.05)
        except queue.Empty:
            continue
        seen.append(item)
        if item[1] == want:
            return seen
    raise AssertionError(f"marker {want!r} never arrived; got {seen}")


def test_gate_cannot_spoof_another_gates_events(mosquitto):
    counter, got = _collector(mosquitto, "counter", T.events(), "counter-acl")
    gate_a = connect(mosquitto.url(f"gate-{GATE_A}"), "gate-a-acl")
    try:
        gate_a.publish(T.events(GATE_B), b'{"spoofed": true}').wait_for_publish(5)
        gate_a.publish(T.events(GATE_A), b"marker").wait_for_publish(5)
        seen = _drain_until(got, b"marker")
        assert [t for t, _ in seen] == [T.events(GATE_A)]
        # Over MQTT 5 the refusal comes back as reason code 135 (not authorised).
        assert gate_a.protocol == "5"
        deadline = time.monotonic() + 5
        while not gate_a.refusals and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [code for _, code in gate_a.refusals] == [135]
    finally:
        gate_a.close()
        counter.close()


def test_wrong_password_refused(mosquitto):
    with pytest.raises(ConnectRefused) as e:
        connect(mosquitto.url("counter", password="not-the-password"), "counter-bad", timeout=5)
    # Mosquitto 2.0 answers a wrong password with 135 "not authorised", others with 134.
    assert e.value.reason_code in (134, 135)


def test_anonymous_refused(mosquitto):
    with pytest.raises(ConnectRefused) as e:
        connect(mosquitto.url(None), "anon", timeout=5)
    assert e.value.reason_code == 135
