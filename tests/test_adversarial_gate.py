"""Adversarial: what one gate account can do to the others through a real Mosquitto with the
generated ACL (invariant 5), and exits under everything at once (invariant 3).

On Mosquitto a client that presents another client's id takes its session over and
disconnects it; the ACL does not bind client ids to accounts. So a component's client id
must not be guessable by another account, else one compromised lane can keep another lane,
or the counter, off the broker for as long as it likes.
"""

from __future__ import annotations

import time

from sesame.common import mqtt, wire
from sesame.counter.service import Counter
from sesame.gate.agent import GateAgent
from tests import waiting
from tests.fixtures.gate import FakeClock, paris

VICTIM, THIEF = "churchill-in-1", "churchill-in-2"


def wait_for(cond, timeout=10.0, what="condition"):
    return waiting.wait_for(cond, timeout, what)


def _squat(mosquitto, client_id: str, seconds: float = 2.0) -> None:
    """Another gate's account connects with `client_id`, reconnecting as paho does."""
    thief = mqtt.connect(mosquitto.url(f"gate-{THIEF}"), client_id, clean_start=True,
                         session_expiry=0, timeout=5)  # fmt: skip
    try:
        time.sleep(seconds)
    finally:
        thief.close()


def test_a_gate_cannot_knock_another_gate_off_the_broker(mosquitto, gp_venue, badge_keys,
                                                         tmp_path):  # fmt: skip
    agent = GateAgent(gp_venue, VICTIM, data_dir=tmp_path, keys=badge_keys,
                      broker_url=mosquitto.url(f"gate-{VICTIM}"),
                      clock=FakeClock(paris(2018, 11, 22, 12)))  # fmt: skip
    agent.start()
    try:
        wait_for(lambda: agent.online, what="victim online")
        drops: list[str] = []
        conn = agent.link._conn
        outer = conn.on_state

        def watch(state, detail):
            if state != "connected":
                drops.append(detail)
            if outer is not None:
                outer(state, detail)

        conn.on_state = watch
        # the id the docs give a gate, the id it actually uses: neither may be guessed
        _squat(mosquitto, f"gate-{VICTIM}", 1.0)
        assert drops == [], drops
        assert agent.link._conn.client_id != f"gate-{VICTIM}"
    finally:
        agent.stop()


def test_a_gate_cannot_knock_the_counter_off_the_broker(mosquitto, gp_venue, tmp_path):
    counter = Counter(gp_venue, tmp_path / "c.db", mosquitto.url("counter")).start()
    try:
        wait_for(lambda: counter.connection_events, what="counter connected")
        _squat(mosquitto, f"sesame-counter-{gp_venue.id}", 1.0)
        drops = [e for e in counter.connection_events if e[0] != "connected"]
        assert drops == [], drops
        assert counter.client_id.startswith(f"sesame-counter-{gp_venue.id}-")
    finally:
        counter.stop()


def test_account_client_id_is_stable_per_account_and_differs_between_accounts(mosquitto):
    a1 = mqtt.account_client_id("gate-x", mosquitto.url(f"gate-{VICTIM}"))
    a2 = mqtt.account_client_id("gate-x", mosquitto.url(f"gate-{VICTIM}"))
    b = mqtt.account_client_id("gate-x", mosquitto.url(f"gate-{THIEF}"))
    assert a1 == a2 and a1 != b and a1.startswith("gate-x-")
    assert mqtt.account_client_id("gate-x", "mqtt://127.0.0.1:1") == "gate-x"


def test_exits_stay_free_through_evacuation_full_zone_dead_counter_and_reboot(
    mosquitto, gp_venue, badge_keys, make_token, tmp_path
):
    """Everything at once (invariant 3): officers evacuate and close the Nef, the counter's
    last word is a full Nef and then its Last Will, the broker dies, and the exit lane's
    computer reboots. The exit lane comes back held free and counts who walks through."""
    from sesame.gate.turnstile import MemoryTurnstile

    T = wire.Topics(gp_venue.id)
    clock = FakeClock(paris(2018, 11, 25, 14))

    def lane(gate, turnstile):
        a = GateAgent(gp_venue, gate, data_dir=tmp_path / gate, keys=badge_keys,
                      broker_url=mosquitto.url(f"gate-{gate}"), clock=clock,
                      turnstile=turnstile, heartbeat=0.05)  # fmt: skip
        a.start()
        return a

    ts = MemoryTurnstile()
    out, entry = lane("churchill-out-1", ts), lane("churchill-in-1", MemoryTurnstile())
    try:
        wait_for(lambda: out.online and entry.online, what="lanes online")
        officer = mqtt.connect(mosquitto.url("dashboard"), "adv-officer", clean_start=True,
                               session_expiry=0)  # fmt: skip
        counter = mqtt.connect(mosquitto.url("counter"), "adv-counter", clean_start=True,
                               session_expiry=0)  # fmt: skip
        for conn, topic, msg in [
            (counter, T.occupancy("nef"),
             wire.Occupancy("nef", 11000, 11000, "full", clock.t)),
            (counter, T.counter_status(), wire.CounterStatus(online=False)),
            (officer, T.zone_control("nef"), wire.ZoneControl("closed", "officer")),
            (officer, T.venue_control(), wire.VenueControl("evacuation", "officer")),
        ]:  # fmt: skip
            conn.publish(topic, msg.to_json(), qos=1, retain=True).wait_for_publish(5)
        officer.close()
        counter.close()
        wait_for(lambda: ts.free and entry.evacuating, what="exit held free")
        assert entry.handle_scan(make_token("B000009")).reason == "EVACUATION"
        mosquitto.kill()
        out.kill()  # power cut on the exit lane's computer, broker still down
        ts2 = MemoryTurnstile()
        out = lane("churchill-out-1", ts2)
        wait_for(lambda: ts2.free, what="exit held free after the reboot, offline")
        for _ in range(5):
            ts2.push_pulse("out")
        wait_for(lambda: out.outbox_depth() >= 5, what="pulses recorded")
        dec = out.handle_scan("garbage \x00 from a torn badge")
        assert dec.granted and dec.passages == 1
    finally:
        out.stop()
        entry.stop()
