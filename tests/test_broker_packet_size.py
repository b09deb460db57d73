"""The broker's packet limit, through a real Mosquitto made by `sesame broker setup`: a gate
that sends a packet over the limit (64 KiB) is disconnected and nobody receives it, while the
largest legitimate lists pass whole, as their shards: the admin's revocation list of 100,000
badges and the counter's complete list of 1,000 findings.

Mosquitto 2.0 (Debian 12) applies `max_packet_size` to every client alike, so every message
of the venue is small (sesame/common/wire/shards.py, sesame/broker/setup.py MAX_PACKET)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sesame.broker.setup import MAX_PACKET
from sesame.common import wire
from sesame.common.mqtt import connect
from sesame.common.wire.shards import ALERT_SHARDS, MAX_SHARD_PAYLOAD, REVOKED_SHARDS
from sesame.counter.findings import Findings
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

    def under(self, prefix: str) -> dict[str, list[bytes]]:
        with self.lock:
            return {t: list(m) for t, m in self.messages.items() if t.startswith(prefix)}


def test_the_limit_is_in_the_generated_configuration(broker_config):
    conf = (broker_config / "mosquitto.conf").read_text().splitlines()
    assert f"max_packet_size {MAX_PACKET}" in conf
    assert MAX_PACKET <= 64 * 1024  # small, not Mosquitto's unlimited default


def test_an_oversized_gate_packet_is_cut_and_large_legitimate_ones_pass(mosquitto):
    now = datetime.now(UTC)
    T = wire.Topics("grand-palais")
    events, status = f"{ROOT}/gates/{GATE}/events", f"{ROOT}/gates/{GATE}/status"
    counter_in, gate_in, dashboard_in = Inbox(), Inbox(), Inbox()
    counter = connect(mosquitto.url("counter"), "pk-counter", clean_start=True,
                      subscriptions=[(f"{ROOT}/gates/+/events", 1),
                                     (f"{ROOT}/gates/+/status", 1)],
                      on_message=counter_in)  # fmt: skip
    dashboard = connect(mosquitto.url("dashboard"), "pk-dashboard", clean_start=True,
                        subscriptions=[(T.alerts(), 1)], on_message=dashboard_in)  # fmt: skip
    states: list[str] = []
    # MQTT 3.1.1: the gate is not even told the limit, the broker alone enforces it
    gate = connect(mosquitto.url(f"gate-{GATE}"), "pk-gate", clean_start=True,
                   protocol="3.1.1", subscriptions=[(T.revoked(), 1)], on_message=gate_in,
                   on_state=lambda s, d: states.append(s))  # fmt: skip
    admin = connect(mosquitto.url("admin"), "pk-admin", clean_start=True)
    try:
        for c in (counter, dashboard, gate):
            assert c.wait_subscribed(10)
        # the largest legitimate lists pass whole, every shard of them
        findings = Findings()
        for i in range(wire.MAX_FINDINGS):
            findings.raise_("IMPLAUSIBLE_RATE", f"lane-{i:04d}", now, {"held": 120, "epoch": "e1"})
        alert_shards = findings.messages(T, now, every=True)
        assert len(alert_shards) == ALERT_SHARDS
        for topic, payload in alert_shards:
            assert len(payload) <= MAX_SHARD_PAYLOAD
            counter.publish(topic, payload, retain=True).wait_for_publish(10)
        revocations = wire.Revocations(tuple(f"B{i:031d}" for i in range(wire.MAX_REVOKED)), now)
        shards = revocations.messages(T)
        assert 3_500_000 < sum(len(payload) for _, payload in shards)  # 3.6 MB in all
        for topic, payload in shards:
            admin.publish(topic, payload, retain=True)
        wait_for(lambda: len(dashboard_in.under(f"{ROOT}/counter/alerts/")) == ALERT_SHARDS,
                 what="every shard of the findings", timeout=20)  # fmt: skip
        got = dashboard_in.under(f"{ROOT}/counter/alerts/")
        assert {t: m[-1] for t, m in got.items()} == dict(alert_shards)
        keys = {a.key for m in got.values() for a in wire.parse_counter_alerts(m[-1]).alerts}
        assert len(keys) == wire.MAX_FINDINGS
        wait_for(lambda: len(gate_in.under(f"{ROOT}/badges/revoked/")) == REVOKED_SHARDS,
                 what="every shard of the revocations", timeout=30)  # fmt: skip
        badges = set()
        for m in gate_in.under(f"{ROOT}/badges/revoked/").values():
            badges.update(wire.parse_revocation_shard(m[-1]).badges)
        assert badges == set(revocations.badges)

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
