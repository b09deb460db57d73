"""The MQTT wire contract: every message round-trips; every parser is total on hostile input
(returns the message or a ParseError, never raises) and refuses what the contract forbids."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sesame.common import wire
from sesame.common.wire import ParseError, TopicKind, Topics
from sesame.common.wire.shards import shard_of

PARIS_WINTER = timezone(timedelta(hours=1))
T = datetime(2018, 11, 22, 9, 1, 2, 123000, tzinfo=PARIS_WINTER)

# One genuine example of every message, with its parser.
MESSAGES = [
    (
        wire.Event("nef-n1", "k3f9a2", 123, T, "passage", "outside", "nef", "B000123", "school"),
        wire.parse_event,
    ),
    (
        wire.Event(
            "churchill-in-1", "e1", 7, T, "denied", "outside", "nef", "B000001", "public",
            "ZONE_FULL", gate_ts=T + timedelta(seconds=2), clock_offset_ms=-2000, group_size=30,
        ),
        wire.parse_event,
    ),  # fmt: skip
    (wire.Event("churchill-out-1", "e1", 1, T, "passage", "nef", "outside"), wire.parse_event),
    (
        wire.GateStatus(
            "nef-n1", True, 12, T, "0.1.0", "k3f9a2", ("CLOCK_IMPLAUSIBLE",), "ok", T
        ),
        wire.parse_gate_status,
    ),
    (wire.GateStatus("nef-n1", False), wire.parse_gate_status),
    (wire.Lease("nef-n1", "2018-11-22", {"nef": 40, "balcons": 3}, 9, T), wire.parse_lease),
    (wire.Ack("k3f9a2", 0), wire.parse_ack),
    (wire.Ack("k3f9a2", 123456), wire.parse_ack),
    (wire.Occupancy("nef", 10950, 11000, "near_full", T), wire.parse_occupancy),
    (wire.ZoneControl("closed", "officer-1", T), wire.parse_zone_control),
    (wire.VenueControl("evacuation", "officer-1", T), wire.parse_venue_control),
    (wire.CounterStatus(True, T, "0.1.0", 1.5, 2, T), wire.parse_counter_status),
    (wire.Revocations(("B000002", "B000003"), T), wire.parse_revocations),
    (wire.Correction("c0ffee-0001", "nef", -12, "miscount at exit", "officer-1", T),
     wire.parse_correction),
    (wire.Revocations(("B000002", "B000003"), T).shards()[shard_of("B000002", 128)],
     wire.parse_revocation_shard),
    (wire.CounterAlerts((wire.Finding("FIRE_ALARM", "out-1", T, 1, {"a": 1}),), T,
                        shard_of("FIRE_ALARM:out-1", 32)), wire.parse_counter_alerts),
]  # fmt: skip
PARSERS = sorted({p for _, p in MESSAGES}, key=lambda p: p.__name__)


def _same(a, b) -> bool:
    """Messages equal, timestamps compared as instants (the wire keeps milliseconds)."""
    return type(a) is type(b) and a == b


@pytest.mark.parametrize(("msg", "parse"), MESSAGES, ids=lambda x: type(x).__name__)
def test_every_message_round_trips(msg, parse):
    data = msg.to_json()
    assert isinstance(data, bytes)
    back = parse(data)
    assert back, getattr(back, "reason", "")
    assert _same(back, msg)
    # str input works the same as bytes
    assert _same(parse(data.decode()), msg)


@pytest.mark.parametrize(("msg", "parse"), MESSAGES, ids=lambda x: type(x).__name__)
def test_unknown_fields_are_ignored(msg, parse):
    obj = json.loads(msg.to_json())
    obj["added_in_a_later_version"] = {"x": [1, 2]}
    assert _same(parse(json.dumps(obj)), msg)


@pytest.mark.parametrize(("msg", "parse"), MESSAGES, ids=lambda x: type(x).__name__)
def test_structural_refusals(msg, parse):
    obj = json.loads(msg.to_json())
    cases = {
        "unknown version": {**obj, "v": 2},
        "version as text": {**obj, "v": "1"},
        "version as bool": {**obj, "v": True},
    }
    for what, bad in cases.items():
        got = parse(json.dumps(bad))
        assert isinstance(got, ParseError) and not got, what
        assert "version" in got.reason
    # the revocation list file may be large (4 MiB); shards of the large retained lists are
    # 60 KiB at most; everything else stays small (16 KiB)
    limits = {wire.parse_revocations: 4 * 1024 * 1024, wire.parse_revocation_shard: 60 * 1024,
              wire.parse_counter_alerts: 60 * 1024}  # fmt: skip
    limit = limits.get(parse, wire.MAX_PAYLOAD)
    for payload, word in (
        (b"\xff\xfe{}", "UTF-8"),
        (b"{not json", "JSON"),
        (b"[1,2]", "object"),
        (b'{"v":1,"x":NaN}', "JSON"),
        (b'{"v":1,"x":Infinity}', "JSON"),
        (b"{" * (limit + 1), "too large"),
        (b" " * (limit + 1), "too large"),
    ):
        got = parse(payload)
        assert isinstance(got, ParseError) and word in got.reason, (payload[:20], got)


def _without(msg, key):
    obj = json.loads(msg.to_json())
    del obj[key]
    return json.dumps(obj)


def _with(msg, **kw):
    obj = json.loads(msg.to_json())
    obj.update(kw)
    return json.dumps(obj)


EVENT = MESSAGES[0][0]
DENIAL = MESSAGES[1][0]


@pytest.mark.parametrize(
    ("payload", "word"),
    [
        (_without(EVENT, "gate"), "missing"),
        (_without(EVENT, "seq"), "missing"),
        (_without(EVENT, "ts"), "missing"),
        (_with(EVENT, seq="123"), "wrong type"),
        (_with(EVENT, seq=True), "wrong type"),
        (_with(EVENT, seq=1.0), "wrong type"),
        (_with(EVENT, seq=0), "range"),
        (_with(EVENT, seq=2**60), "range"),
        (_with(EVENT, kind="teleport"), "kind"),
        (_with(EVENT, id="nef-n1:k3f9a2:124"), "id"),
        (_with(EVENT, ts="2018-11-22T09:01:02"), "offset"),
        (_with(EVENT, ts="yesterday"), "timestamp"),
        (_with(EVENT, gate="NEF N1", id="NEF N1:k3f9a2:123"), "id"),
        (_with(EVENT, badge="B 1"), "id"),
        (_with(DENIAL, reason=None), "reason"),
        (_with(DENIAL, reason="not a code"), "reason"),
        (_with(EVENT, reason="ZONE_FULL"), "reason"),
        (_with(DENIAL, group_size=0), "range"),
    ],
)
def test_event_refusals(payload, word):
    got = wire.parse_event(payload)
    assert isinstance(got, ParseError), got
    assert word in got.reason


@pytest.mark.parametrize(
    ("parse", "payload"),
    [
        (wire.parse_lease, _with(MESSAGES[5][0], grants={"nef": -1})),
        (wire.parse_lease, _with(MESSAGES[5][0], grants={"Nef!": 1})),
        (wire.parse_lease, _with(MESSAGES[5][0], day="22/11/2018")),
        (wire.parse_lease, _with(MESSAGES[5][0], day="2018-11-2")),
        (wire.parse_lease, _with(MESSAGES[5][0], day="2018-02-30")),
        (wire.parse_ack, _with(MESSAGES[6][0], seq=-1)),
        (wire.parse_occupancy, _with(MESSAGES[8][0], state="overflowing")),
        (wire.parse_occupancy, _with(MESSAGES[8][0], capacity=-1)),
        (wire.parse_zone_control, _with(MESSAGES[9][0], state="evacuating")),
        (wire.parse_venue_control, _with(MESSAGES[10][0], mode="panic")),
        (wire.parse_gate_status, _with(MESSAGES[3][0], online="yes")),
        (wire.parse_gate_status, _with(MESSAGES[3][0], faults=["x"] * 100)),
        (wire.parse_counter_status, _with(MESSAGES[11][0], ingest_lag_ms="fast")),
        (wire.parse_revocations, _with(MESSAGES[12][0], badges=["B1", 2])),
        (wire.parse_revocations, _with(MESSAGES[12][0], badges="B1")),
        (wire.parse_correction, _with(MESSAGES[13][0], delta=0)),
        (wire.parse_correction, _with(MESSAGES[13][0], reason="  ")),
        (wire.parse_correction, _with(MESSAGES[13][0], id="short")),
    ],
)
def test_other_refusals(parse, payload):
    got = parse(payload)
    assert isinstance(got, ParseError) and got.reason, got


# -- hostile input ---------------------------------------------------------------------

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
)
_json = st.recursive(
    _json_scalars,
    lambda kids: (
        st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=12), kids, max_size=6)
    ),
    max_leaves=25,
)


def _mutations(msg) -> st.SearchStrategy[dict]:
    """A genuine message with some fields replaced, removed or added: reaches deep into the
    parsers, where random JSON alone rarely gets past the first missing field."""
    obj = json.loads(msg.to_json())
    keys = sorted(obj)
    return st.builds(
        lambda repl, drop, extra: {
            **{k: v for k, v in obj.items() if k not in drop},
            **repl,
            **extra,
        },
        st.dictionaries(st.sampled_from(keys), _json, max_size=3),
        st.sets(st.sampled_from(keys), max_size=2),
        st.dictionaries(st.text(max_size=8), _json, max_size=2),
    )


def _total(parse, payload) -> None:
    got = parse(payload)
    if isinstance(got, ParseError):
        assert not got and isinstance(got.reason, str) and got.reason
    else:
        assert got  # a message, truthy
        # whatever was accepted must serialise and parse again to the same thing
        assert _same(parse(got.to_json()), got)


@settings(max_examples=150, deadline=None)
@given(payload=st.binary(max_size=400))
def test_hostile_bytes(payload):
    for parse in PARSERS:
        _total(parse, payload)


@settings(max_examples=150, deadline=None)
@given(obj=_json)
def test_hostile_json(obj):
    text = json.dumps(obj)
    for parse in PARSERS:
        _total(parse, text)
        _total(parse, text.encode())


@pytest.mark.parametrize(("msg", "parse"), MESSAGES, ids=lambda x: type(x).__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_hostile_variants_of_genuine_messages(msg, parse, data):
    obj = data.draw(_mutations(msg))
    _total(parse, json.dumps(obj))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_hostile_text_with_surrogates(text):
    """str payloads (lone surrogates included) are handled like bytes: refused, not raised."""
    for parse in PARSERS:
        _total(parse, text)


def test_deeply_nested_json_is_refused_not_raised():
    payload = "[" * 50_000 + "]" * 50_000
    for parse in PARSERS:
        got = parse(payload)
        assert isinstance(got, ParseError)


# -- topics ----------------------------------------------------------------------------


def test_topics():
    t = Topics("grand-palais")
    root = "sesame/v1/grand-palais"
    assert t.events("nef-n1") == f"{root}/gates/nef-n1/events"
    assert t.events() == f"{root}/gates/+/events"
    assert t.gate_status("g") == f"{root}/gates/g/status"
    assert t.lease("g") == f"{root}/gates/g/lease"
    assert t.ack("g") == f"{root}/gates/g/ack"
    assert t.counter_status() == f"{root}/counter/status"
    assert t.occupancy("nef") == f"{root}/zones/nef/occupancy"
    assert t.zone_control("nef") == f"{root}/control/zones/nef"
    assert t.venue_control() == f"{root}/control/venue"
    assert t.revoked() == f"{root}/badges/revoked/+"
    assert t.revoked("0a") == f"{root}/badges/revoked/0a"
    assert t.alerts() == f"{root}/counter/alerts/+"
    assert t.match(t.revoked("7f")) == (TopicKind.REVOKED, "7f", "badges/revoked/7f")
    assert t.match(t.alerts("1f")) == (TopicKind.ALERTS, "1f", "counter/alerts/1f")
    assert t.match(f"{root}/badges/revoked") is None  # the list is only ever sharded
    assert t.corrections() == f"{root}/control/corrections"
    assert t.gate_of(t.ack("churchill-in-1")) == "churchill-in-1"
    assert t.gate_of(t.occupancy("nef")) is None
    assert t.split("sesame/v1/other/gates/g/ack") is None


def test_timestamps_keep_the_instant():
    back = wire.parse_event(EVENT.to_json())
    assert back.ts == T and back.ts.astimezone(UTC).hour == 8
