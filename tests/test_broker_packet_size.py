"""The broker's packet limit, through a real Mosquitto made by `sesame broker setup`: a gate
that sends a packet over the limit is disconnected and nobody receives it, while the
largest legitimate messages pass whole: the admin's revocation list of 100,000 badges and the
counter's complete alert list of 1,000 findings.

Mosquitto 2.0 (Debian 12) applies `max_packet_size` to every client alike, so the limit is
the revocation list's (sesame/broker/setup.py MAX_PACKET)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sesame.broker.setup import MAX_PACKET
from sesame.common import wire
from sesame.common.mqtt import connect
from sesame.common.wire import MAX_ALERTS_PAYLOAD, CounterAlerts, Finding
from tests.waiting import wait_for

GATE = "churchill-in-1"
ROOT = "sesame/v1/grand-palais"


class Inbox:
    def __init__(self) -> None:
        self.messages: dict[str, list[bytes]] = {}
        self.lock = threading.Lock()

    def __call__(self, msg) -> None:
        with self.lock:
            self.messages.setdefault(msg.topic, []).append(bytes(msg.payload))

    def of(self, topic: str) -> list[bytes]:
        with self.lock:
            return list(self.messages.get(topic, []))


def test_the_limit_is_in_the_generated_configuration(broker_config):
    conf = (broker_config / "mosquitto.conf").read_text().splitlines()
    assert f"max_packet_size {MAX_PACKET}" in conf
    assert MAX_PACKET < 5 * 1024 * 1024  # a few MiB, not Mosquitto's unlimited default


def test_an_oversized_gate_packet_is_cut_and_large_legitimate_ones_pass(mosquitto):
    now = datetime.now(UTC)
    events, status = f"{ROOT}/gates/{GATE}/events", f"{ROOT}/gates/{GATE}/status"
    alerts, revoked = f"{ROOT}/counter/alerts", f"{ROOT}/badges/revoked"
    counter_in, gate_in = Inbox(), Inbox()
    counter = connect(mosquitto.url("counter"), "pk-counter", clean_start=True,
                      subscriptions=[(f"{ROOT}/gates/+/events", 1),
                                     (f"{ROOT}/gates/+/status", 1)],
                      on_message=counter_in)  # fmt: skip
    dashboard_in = Inbox()
    dashboard = connect(mosquitto.url("dashboard"), "pk-dashboard", clean_start=True,
                        subscriptions=[(alerts, 1)], on_message=dashboard_in)  # fmt: skip
    states: list[str] = []
    # MQTT 3.1.1: the gate is not even told the limit, the broker alone enforces it
    gate = connect(mosquitto.url(f"gate-{GATE}"), "pk-gate", clean_start=True,
                   protocol="3.1.1", subscriptions=[(revoked, 1)], on_message=gate_in,
                   on_state=lambda s, d: states.append(s))  # fmt: skip
    admin = connect(mosquitto.url("admin"), "pk-admin", clean_start=True)
    try:
        for c in (counter, dashboard, gate):
            assert c.wait_subscribed(10)
        # the largest legitimate messages pass whole
        big_list = CounterAlerts(
            tuple(
                Finding("IMPLAUSIBLE_RATE", f"lane-{i:04d}", now, 7, {"held": 120, "epoch": "e1"})
                for i in range(1000)
            ),
            now,
        ).to_json()
        assert 150_000 < len(big_list) <= MAX_ALERTS_PAYLOAD
        counter.publish(alerts, big_list, retain=True).wait_for_publish(10)
        revocations = wire.Revocations(tuple(f"B{i:031d}" for i in range(wire.MAX_REVOKED)), now)
        payload = revocations.to_json()
        assert 3_500_000 < len(payload) <= wire.MAX_REVOCATIONS_PAYLOAD
        admin.publish(revoked, payload, retain=True).wait_for_publish(20)
        wait_for(lambda: dashboard_in.of(alerts) == [big_list], what="the alert list", timeout=20)
        wait_for(lambda: gate_in.of(revoked) == [payload], what="the revocations", timeout=20)
        assert wire.parse_revocations(gate_in.of(revoked)[0]).badges == revocations.badges

        # a gate's packet over the limit: disconnected, delivered to nobody
        states.clear()
        gate.publish(events, b"x" * MAX_PACKET, qos=0)
        wait_for(lambda: "disconnected" in states, what="the broker cutting the gate", timeout=20)
        # the gate reconnects and its genuine messages flow again
        assert gate.wait_connected(20)
        gate.publish(status, b'{"small": true}', qos=1).wait_for_publish(10)
        wait_for(lambda: counter_in.of(status) == [b'{"small": true}'], what="the status")
        assert counter_in.of(events) == []
    finally:
        for c in (gate, admin, dashboard, counter):
            c.close()
