"""Home Assistant MQTT discovery: a client subscribing as Home Assistant does (its own
read-only account, through a real Mosquitto with the generated ACL) finds the venue's
device, one entity per zone, gate lane, the counter and the venue mode, each with a
unique_id, and the state topics they name carry what their templates read. Entities the
venue file no longer has are removed when the counter starts again."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

import pytest

from sesame.broker.process import MosquittoProcess
from sesame.broker.setup import setup
from sesame.common import mqtt, wire
from sesame.common.venue import load_venue, parse_venue
from tests.fixtures.counter import RunningClock
from tests.fixtures.dashboard import VENUE_FILE

TOPICS = wire.Topics("grand-palais")
LANE_STATUS = TOPICS.gate_status("churchill-in-1")
TEMPLATE = re.compile(r"^\{\{ value_json((?:\.[a-z_]+)+) \}\}$")


def render(template: str, payload: bytes) -> str:
    """What Home Assistant renders for `{{ value_json.a.b }}` (the only form used): the
    field's value as Jinja prints it (Python's str: True, 12, normal)."""
    m = TEMPLATE.match(template)
    assert m, f"template {template!r} is not a plain field path"
    value = json.loads(payload)
    for key in m.group(1).split(".")[1:]:
        assert isinstance(value, dict) and key in value, f"{template}: no field {key!r}"
        value = value[key]
    return str(value)


def retained(url: str, topic_filter: str, settle: float = 1.0) -> dict[str, bytes]:
    """Every retained message under a filter, as a client connecting now receives them."""
    got: dict[str, bytes] = {}
    last = [time.monotonic()]

    def on(m):
        if m.retain:
            got[m.topic] = bytes(m.payload)
            last[0] = time.monotonic()

    conn = mqtt.connect(url, "", clean_start=True, session_expiry=0,
                        subscriptions=[(topic_filter, 1)], on_message=on)  # fmt: skip
    try:
        while time.monotonic() - last[0] < settle:
            time.sleep(0.05)
    finally:
        conn.close()
    return got


@pytest.fixture
def ha_broker(tmp_path):
    cfg = tmp_path / "broker"
    setup(load_venue(VENUE_FILE), cfg, home_assistant=True)
    proc = MosquittoProcess(cfg, run_dir=tmp_path / "mosquitto")
    try:
        yield proc.start()
    finally:
        proc.close()


def test_home_assistant_discovers_the_venue(ha_broker, tmp_path):
    from sesame.counter.service import Counter

    venue = load_venue(VENUE_FILE)
    db = tmp_path / "sesame.db"
    ts = datetime.fromisoformat("2018-11-25T11:00:00+01:00")
    # the counter's clock is the venue's time: Sunday morning, when the passage below happens
    counter = Counter(venue, db, ha_broker.url("counter"), status_s=0.5,
                      ha_discovery="homeassistant", clock=RunningClock(ts)).start()  # fmt: skip
    gate = mqtt.connect(ha_broker.url("gate-churchill-in-1"), "gate-churchill-in-1")
    dash = mqtt.connect(ha_broker.url("dashboard"), "dash-ha")
    try:
        ev = wire.Event(gate="churchill-in-1", epoch="ha1", seq=1, ts=ts, kind="passage",
                        from_zone="outside", to_zone="nef", badge="H1", category="public")
        gate.publish(TOPICS.events("churchill-in-1"), ev.to_json(), 1, False)
        st = wire.GateStatus("churchill-in-1", online=True, outbox=0, controller="ok")
        gate.publish(LANE_STATUS, st.to_json(), 1, True).wait_for_publish(5)
        dash.publish(TOPICS.venue_control(), wire.VenueControl("normal", by="sophie").to_json(),
                     1, True).wait_for_publish(5)  # fmt: skip
        ha_url = ha_broker.url("homeassistant")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            occ = retained(ha_url, TOPICS.occupancy("nef"), 0.3)
            if occ and wire.parse_occupancy(occ[TOPICS.occupancy("nef")]).occupancy == 1:
                break

        configs = {t: json.loads(p) for t, p in retained(ha_url, "homeassistant/#").items()}
        assert len(configs) == len(venue.zones) + len(venue.gates) + 2
        assert all(re.fullmatch(r"homeassistant/(sensor|binary_sensor)/sesame_grand_palais/"
                                r"[a-z0-9_]+/config", t) for t in configs)  # fmt: skip
        ids = [c["unique_id"] for c in configs.values()]
        assert len(set(ids)) == len(ids)
        assert {json.dumps(c["device"], sort_keys=True) for c in configs.values()} == {
            json.dumps(configs[next(iter(configs))]["device"], sort_keys=True)}  # one device
        device = next(iter(configs.values()))["device"]
        assert device["name"] == venue.venue.name and device["identifiers"]

        states = retained(ha_url, "sesame/v1/grand-palais/#")  # all HA may read
        by_state: dict[str, dict] = {}
        for c in configs.values():
            payload = states.get(c["state_topic"])
            if c["state_topic"].endswith("/status") and "gates/" in c["state_topic"]:
                if payload is None:  # a lane never heard of: no state yet (shown unknown)
                    continue
            assert payload is not None, f"nothing retained on {c['state_topic']}"
            value = render(c["value_template"], payload)
            if "payload_on" in c:
                assert value in (c["payload_on"], c["payload_off"]), (c["name"], value)
            if "options" in c:
                assert value in c["options"]
            if "json_attributes_topic" in c:
                assert isinstance(json.loads(states[c["json_attributes_topic"]]), dict)
            for a in c.get("availability", []):
                assert render(a["value_template"], states[a["topic"]]) == a["payload_available"]
            by_state[c["unique_id"]] = {"config": c, "value": value, "payload": payload}

        nef = by_state["sesame_grand_palais_zone_nef_occupancy"]
        assert nef["value"] == "1"
        assert nef["config"]["unit_of_measurement"] == "people"
        assert nef["config"]["state_class"] == "measurement"
        attrs = json.loads(nef["payload"])
        assert attrs["state"] == "open" and attrs["capacity"] == 11000
        lane = by_state["sesame_grand_palais_gate_churchill_in_1_online"]
        assert lane["value"] == lane["config"]["payload_on"]
        assert lane["config"]["device_class"] == "connectivity"
        assert by_state["sesame_grand_palais_venue_mode"]["value"] == "normal"
        assert by_state["sesame_grand_palais_counter_online"]["value"] == "True"

        # the lane goes away (its Last Will, or its last status, says offline): HA shows off
        st = wire.GateStatus("churchill-in-1", online=False, outbox=0)
        gate.publish(LANE_STATUS, st.to_json(), 1, True).wait_for_publish(5)
        payload = retained(ha_url, TOPICS.gate_status("churchill-in-1"), 0.3)
        cfg = lane["config"]
        assert render(cfg["value_template"], payload[cfg["state_topic"]]) == cfg["payload_off"]

        # the ACL: Home Assistant's account reads, it cannot write the venue's topics
        ha = mqtt.connect(ha_url, "ha-writer", clean_start=True, session_expiry=0)
        ha.publish(TOPICS.venue_control(), b'{"v":1,"mode":"evacuation"}', 1, True)
        time.sleep(0.5)
        ha.close()
        vc = retained(ha_url, TOPICS.venue_control(), 0.3)[TOPICS.venue_control()]
        assert wire.parse_venue_control(vc).mode == "normal"
    finally:
        gate.close()
        dash.close()
        counter.stop()

    # the venue file loses a lane: its entity is removed, the others stay
    import tomllib

    data = tomllib.loads(VENUE_FILE.read_text(encoding="utf-8"))
    del data["gates"]["balcons-down-1"]
    del data["plan"]["lanes"]["balcons-down-1"]
    smaller = parse_venue(data)
    counter = Counter(smaller, db, ha_broker.url("counter"), ha_discovery="homeassistant").start()
    try:
        gone = "homeassistant/binary_sensor/sesame_grand_palais/gate_balcons_down_1/config"
        deadline = time.monotonic() + 10
        left: dict[str, bytes] = {}
        while time.monotonic() < deadline:
            left = retained(ha_broker.url("homeassistant"), "homeassistant/#", 0.5)
            if gone not in left:
                break
        assert gone not in left
        assert len(left) == len(smaller.zones) + len(smaller.gates) + 2
    finally:
        counter.stop()


def test_the_counter_refuses_a_bad_discovery_prefix(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "sesame", "counter", "run", "--broker",
                        "mqtt://127.0.0.1:1", "--db", str(tmp_path / "x.db"),
                        "--ha-discovery", "home/#"], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "--ha-discovery 'home/#'" in r.stderr


