"""Home Assistant MQTT discovery (opt-in: `sesame counter run --ha-discovery`). Pure: the
retained config messages that make Home Assistant show the venue as one device with

- a sensor per zone: its occupancy (people, state class `measurement`), the zone's state and
  capacity as attributes (the whole occupancy message, via `json_attributes_topic`);
- a binary sensor per gate lane: online, from its retained status and Last Will;
- a binary sensor for the counter (online) and a sensor for the venue mode.

Every entity reads the existing Sesame topics (no second copy of any figure) and has a
`unique_id`. Configs for zones and lanes no longer in the venue file are removed (an empty
retained message on their config topic), from the list of topics the counter published last.
"""

from __future__ import annotations

import json

from sesame import __version__
from sesame.common import wire
from sesame.common.venue import Venue

DEFAULT_PREFIX = "homeassistant"
STATE_KEY = "ha_discovery_topics"  # the counter's store: the config topics it published


def node_id(venue: Venue) -> str:
    return f"sesame_{venue.id}".replace("-", "_")


def _device(venue: Venue) -> dict:
    return {
        "identifiers": [node_id(venue)],
        "name": venue.venue.name,
        "manufacturer": "Sesame",
        "model": "access control and visitor counting",
        "sw_version": __version__,
    }


def configs(venue: Venue, prefix: str = DEFAULT_PREFIX) -> dict[str, bytes]:
    """Config topic -> retained JSON payload, for every entity of the venue."""
    t, node = wire.Topics(venue.id), node_id(venue)
    device = _device(venue)
    counter_up = {
        "topic": t.counter_status(),
        "value_template": "{{ value_json.online }}",
        "payload_available": "True",
        "payload_not_available": "False",
    }
    out: dict[str, dict] = {}
    for z in venue.zones.values():
        oid = f"zone_{z.id}".replace("-", "_")
        out[f"{prefix}/sensor/{node}/{oid}/config"] = {
            "name": f"{z.name} occupancy",
            "unique_id": f"{node}_{oid}_occupancy",
            "state_topic": t.occupancy(z.id),
            "value_template": "{{ value_json.occupancy }}",
            "unit_of_measurement": "people",
            "state_class": "measurement",
            "icon": "mdi:account-group",
            "json_attributes_topic": t.occupancy(z.id),  # state, capacity, full_in_min...
            "availability": [counter_up],
            "device": device,
        }
    for g in venue.gates.values():
        oid = f"gate_{g.id}".replace("-", "_")
        out[f"{prefix}/binary_sensor/{node}/{oid}/config"] = {
            "name": f"{g.name} online",
            "unique_id": f"{node}_{oid}_online",
            "state_topic": t.gate_status(g.id),  # retained; its Last Will says online false
            "value_template": "{{ value_json.online }}",
            "payload_on": "True",
            "payload_off": "False",
            "device_class": "connectivity",
            "json_attributes_topic": t.gate_status(g.id),
            "device": device,
        }
    out[f"{prefix}/binary_sensor/{node}/counter/config"] = {
        "name": "Counter online",
        "unique_id": f"{node}_counter_online",
        "state_topic": t.counter_status(),
        "value_template": "{{ value_json.online }}",
        "payload_on": "True",
        "payload_off": "False",
        "device_class": "connectivity",
        "device": device,
    }
    out[f"{prefix}/sensor/{node}/venue_mode/config"] = {
        "name": "Venue mode",
        "unique_id": f"{node}_venue_mode",
        "state_topic": t.venue_control(),
        "value_template": "{{ value_json.mode }}",
        "device_class": "enum",
        "options": ["normal", "evacuation"],
        "icon": "mdi:exit-run",
        "device": device,
    }
    return {topic: json.dumps(p, ensure_ascii=False).encode() for topic, p in out.items()}


def messages(venue: Venue, previous: list[str], prefix: str = DEFAULT_PREFIX):
    """(topic, payload) to publish retained: every config, then an empty payload for each
    topic published before that is no longer wanted (Home Assistant removes the entity)."""
    wanted = configs(venue, prefix)
    gone = sorted(set(previous) - set(wanted))
    return list(wanted.items()) + [(topic, b"") for topic in gone], sorted(wanted)
