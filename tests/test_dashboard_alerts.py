"""The dashboard's alert model without a broker: hysteresis on synthetic occupancy series,
flapping lanes grouped on one line, counter findings mirrored, retention per group,
acknowledgements that survive a restart, and the escalation list (injected clocks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sesame.common import wire
from sesame.common.venue import ConfigError, load_venue
from sesame.common.wire.alerts import (
    Finding,
    escalated_payload,
    parse_counter_alerts,
)
from sesame.dashboard import alert_book
from sesame.dashboard.alert_book import AlreadyAcknowledged, NoSuchAlert
from sesame.dashboard.alert_rules import excursions, thresholds
from sesame.dashboard.alert_store import AlertStore
from sesame.dashboard.live import LiveState

VENUE = load_venue("config/grand-palais.toml")
T = wire.Topics(VENUE.id)
T0 = datetime(2018, 11, 25, 13, 0, tzinfo=UTC)
BALCONS = thresholds(800, 0.85, 0.05)  # near full at 680, ends below 640; full 800 / 760


def series(values, state=None):
    return [(T0 + timedelta(seconds=10 * i), v, state) for i, v in enumerate(values)]


def test_thresholds_are_five_points_of_capacity_lower_by_default():
    assert (BALCONS.near_full, BALCONS.near_full_clear) == (680, 640)
    assert (BALCONS.full, BALCONS.full_clear) == (800, 760)
    assert VENUE.zones["balcons"].alert_hysteresis == 0.05
    nef = thresholds(11000, 0.9, 0.0)  # no hysteresis: the old behaviour, per crossing
    assert (nef.near_full, nef.near_full_clear) == (9900, 9900)


def test_oscillation_around_a_threshold_is_one_alert_with_start_peak_end():
    # the Balcons of the report: up and down across 680 and 800 for minutes
    values = [600, 679, 680, 675, 690, 679, 700, 799, 800, 790, 801, 770, 800, 765, 690,
              681, 679, 650, 641, 600]  # fmt: skip
    exc = excursions(series(values), BALCONS)
    assert [e.kind for e in exc] == ["near_full", "full"]
    near, full = exc
    assert near.start == T0 + timedelta(seconds=20) and near.peak == 801
    assert near.end == T0 + timedelta(seconds=190)  # 600: first sample below 640
    assert full.start == T0 + timedelta(seconds=80) and full.peak_at == T0 + timedelta(seconds=100)
    assert full.end == T0 + timedelta(seconds=140)  # 690: first sample below 760


def test_a_real_second_excursion_after_falling_below_the_lower_threshold_is_a_second():
    values = [600, 690, 650, 700, 639, 660, 679, 690, 600]
    exc = excursions(series(values), BALCONS)
    assert [(e.kind, e.peak) for e in exc] == [("near_full", 700), ("near_full", 690)]
    assert exc[0].end == T0 + timedelta(seconds=40) and exc[1].end == T0 + timedelta(seconds=80)
    # still open at the end of the history: no end
    assert excursions(series([600, 700]), BALCONS)[0].end is None


def test_the_counters_state_counts_as_the_zone_being_there():
    exc = excursions(series([500, 500], state="full"), BALCONS)
    assert [e.kind for e in exc] == ["near_full", "full"]


def test_hysteresis_is_validated_in_the_venue_file(tmp_path):
    text = open("config/grand-palais.toml", encoding="utf-8").read()
    for bad in ("0.9", "-0.1", "\"five\""):
        f = tmp_path / "venue.toml"
        f.write_text(text.replace("near_full = 0.85\noffline_policy = \"open\"",
                                  f"near_full = 0.85\nalert_hysteresis = {bad}\n"
                                  "offline_policy = \"open\""), encoding="utf-8")  # fmt: skip
        with pytest.raises(ConfigError, match="zones.balcons.alert_hysteresis"):
            load_venue(f)


def occ(zone: str, n: int, second: int, state: str = "open"):
    cap = VENUE.zones[zone].capacity
    msg = wire.Occupancy(zone, n, cap, state, T0 + timedelta(seconds=second))
    return T.occupancy(zone), msg.to_json()


def status(gate: str, online: bool, second: int, faults=()):
    st = wire.GateStatus(gate, online, ts=T0 + timedelta(seconds=second), faults=tuple(faults))
    return T.gate_status(gate), st.to_json()


def test_live_state_raises_one_alert_for_an_oscillating_zone():
    s = LiveState(VENUE)
    for i, n in enumerate([600, 690, 679, 681, 660, 700, 645, 700, 679]):
        s.apply(*occ("balcons", n, i), T0)
    (a,) = s.alert_list()
    assert (a["kind"], a["active"], a["peak"], a["count"]) == ("near_full", True, 700, 1)
    assert a["acknowledged"] is False and a["detail"]["clears_below"] == 640
    s.apply(*occ("balcons", 600, 20), T0)
    assert s.alert_list()[0]["active"] is False


def test_a_flapping_lane_is_one_line_with_a_count_and_cannot_push_zones_out():
    s = LiveState(VENUE)
    s.apply(*occ("nef", 10000, 0), T0)  # near full: a zone alert
    now = T0
    for i in range(300):  # one lane dropping and coming back every minute
        now = T0 + timedelta(minutes=i)
        s.apply(*status("churchill-in-1", False, i * 60), now)
        s.apply(*status("churchill-in-1", True, i * 60 + 30), now + timedelta(seconds=30))
    lane = [a for a in s.alert_list() if a["kind"] == "gate_offline"]
    assert len(lane) == 1 and lane[0]["count"] == 300 and lane[0]["active"] is False
    assert lane[0]["audible"] is True  # an entrance lane
    # an exit lane's outage is shown, not sounded
    s.apply(*status("churchill-out-1", False, 0), now)
    assert next(a for a in s.alert_list() if a["subject"] == "churchill-out-1")["audible"] is False
    # hundreds of separate, acknowledged lane faults: the zone alert stays in the list
    for i in range(3 * alert_book.KEEP_ENDED):
        t = now + timedelta(minutes=20 * (i + 1))
        s.apply(*status("salon-in-1", True, 0, faults=["CONTROLLER_SILENT"]), t)
        s.apply(*status("salon-in-1", True, 0), t + timedelta(seconds=1))
        line = max(a.id for a in s.book.alerts.values() if a.kind == "CONTROLLER_SILENT")
        s.acknowledge(line, "sophie", t)
    assert any(a["kind"] == "near_full" and a["subject"] == "nef" for a in s.alert_list())
    silent = [a for a in s.alert_list() if a["kind"] == "CONTROLLER_SILENT"]
    assert len(silent) == alert_book.KEEP_ENDED


def test_a_lane_out_again_after_the_flap_window_is_a_new_line():
    s = LiveState(VENUE)
    s.apply(*status("churchill-in-1", False, 0), T0)
    s.apply(*status("churchill-in-1", True, 60), T0 + timedelta(minutes=1))
    later = T0 + timedelta(minutes=1) + alert_book.FLAP_WINDOW
    s.apply(*status("churchill-in-1", False, 3600), later)
    assert [a["count"] for a in s.alert_list()] == [1, 1]


def counter_list(state, findings, at) -> None:
    """The counter's whole list, every shard of counter/alerts, as a dashboard receives it."""
    for msg in wire.alert_shards(findings, T0):
        state.apply(T.alerts(f"{msg.shard:02x}"), msg.to_json(), at)


def test_counter_findings_are_alerts_and_end_when_the_counter_drops_them():
    s = LiveState(VENUE)
    f = Finding("CLOCK_SKEW", "churchill-in-2", T0, 3, {"offset_ms": 4200})
    held = Finding("HELD_PASSAGES", "nef", T0, 12)
    counter_list(s, (f, held), T0)
    keys = {a["key"]: a for a in s.alert_list()}
    assert set(keys) == {"CLOCK_SKEW:churchill-in-2", "HELD_PASSAGES:nef"}
    assert keys["CLOCK_SKEW:churchill-in-2"]["count"] == 3
    assert keys["CLOCK_SKEW:churchill-in-2"]["detail"] == {"offset_ms": 4200}
    assert keys["HELD_PASSAGES:nef"]["source"] == "counter"
    counter_list(s, (held,), T0 + timedelta(seconds=5))
    keys = {a["key"]: a["active"] for a in s.alert_list()}
    assert keys == {"CLOCK_SKEW:churchill-in-2": False, "HELD_PASSAGES:nef": True}
    # the same finding repeated is no new alert; a fire alarm sounds
    counter_list(s, (held,), T0 + timedelta(seconds=6))
    fire = Finding("FIRE_ALARM", "nef", T0)
    counter_list(s, (held, fire), T0)
    assert len(s.alert_list()) == 3
    assert next(a for a in s.alert_list() if a["kind"] == "FIRE_ALARM")["audible"] is True


def test_a_shard_of_the_counter_list_ends_only_its_own_findings():
    """A dashboard hears the counter's list shard by shard (connecting, or the counter
    republishing the one shard that changed): a shard ends what it no longer lists among
    its own findings, never another shard's (no alert ends and reopens meanwhile)."""
    s = LiveState(VENUE)
    lane = Finding("CLOCK_AHEAD", "churchill-in-1", T0)  # shard 3
    zone = Finding("HELD_PASSAGES", "nef", T0, 4)  # shard 8
    counter_list(s, (lane, zone), T0)
    one = wire.alert_shards((lane,), T0, [3])[0]
    s.apply(T.alerts("03"), one.to_json(), T0 + timedelta(seconds=1))  # the lane's shard again
    active = {a["key"] for a in s.alert_list() if a["active"]}
    assert active == {lane.key, zone.key}
    s.apply(T.alerts("08"), wire.alert_shards((), T0, [8])[0].to_json(), T0)  # nef's, empty
    assert {a["key"]: a["active"] for a in s.alert_list()} == {lane.key: True, zone.key: False}
    # a shard naming a finding of another shard is refused whole, and changes nothing
    forged = wire.CounterAlerts((zone,), T0, 3).to_json()
    assert s.apply(T.alerts("03"), forged, T0) == [] and s.rejected == 1


@pytest.mark.parametrize(
    "payload",
    [
        b"garbage",
        b'{"v":1,"alerts":"all"}',
        b'{"v":1,"alerts":[{"kind":"A B","subject":"nef"}]}',
        b'{"v":1,"alerts":[{"kind":"X","subject":"../nef"}]}',
        b'{"v":1,"alerts":[{"kind":"X","subject":"nef","count":-1}]}',
        b'{"v":1,"alerts":[{"kind":"X","subject":"nef","detail":{"x":"' + b"y" * 3000 + b'"}}]}',
        b'{"v":2,"alerts":[]}',
    ],
)
def test_hostile_counter_alerts_change_nothing(payload):
    assert not parse_counter_alerts(payload)
    s = LiveState(VENUE)
    before = s.snapshot()
    assert s.apply(T.alerts("00"), payload, T0) == []
    assert s.snapshot() == before and s.rejected == 1


def test_evacuation_is_an_audible_alert():
    s = LiveState(VENUE)
    msg = wire.VenueControl(mode="evacuation", by="sophie", ts=T0)
    s.apply(T.venue_control(), msg.to_json(), T0)
    (a,) = s.alert_list()
    assert (a["kind"], a["audible"], a["severity"], a["active"]) == (
        "evacuation", True, "critical", True)  # fmt: skip
    s.apply(T.venue_control(), b"", T0)
    assert s.alert_list()[0]["active"] is False


def test_acknowledged_alerts_go_below_and_survive_a_restart(tmp_path):
    store = AlertStore(tmp_path / "dashboard.db")
    s = LiveState(VENUE)

    def apply(*msg, at=T0):
        store.save([d for e, d in s.apply(*msg, at) if e == "alert"])

    apply(*occ("balcons", 700, 0))
    apply(*occ("nef", 10000, 1))
    apply(*status("churchill-in-1", False, 2))
    first = {a["key"]: a for a in s.alert_list()}
    balcons = first["near_full:balcons"]["id"]
    acked = s.acknowledge(balcons, "sophie", T0 + timedelta(minutes=1))
    store.save([acked])
    with pytest.raises(AlreadyAcknowledged, match="sophie"):
        s.acknowledge(balcons, "amelie", T0)
    with pytest.raises(NoSuchAlert):
        s.acknowledge(999, "sophie", T0)
    order = [(a["key"], a["acknowledged"]) for a in s.alert_list()]
    assert order[-1] == ("near_full:balcons", True)  # unacknowledged stay on top
    store.close()

    # restart: same lines, same ids and start, the acknowledgement kept; the retained
    # occupancy continues the excursion instead of raising a new alert
    store = AlertStore(tmp_path / "dashboard.db")
    saved, next_id = store.load()
    s = LiveState(VENUE, saved, next_id)
    apply(*occ("balcons", 690, 60, "near_full"), at=T0 + timedelta(minutes=2))
    again = {a["key"]: a for a in s.alert_list()}
    assert set(again) == set(first)
    b = again["near_full:balcons"]
    assert (b["id"], b["start"], b["acked_by"], b["active"]) == (
        balcons, first["near_full:balcons"]["start"], "sophie", True)  # fmt: skip
    apply(*occ("balcons", 100, 120))
    apply(*occ("balcons", 700, 180))  # a new excursion: a new id
    ids = [a["id"] for a in s.alert_list() if a["key"] == "near_full:balcons"]
    assert len(ids) == 2 and max(ids) >= next_id
    store.close()


def test_escalation_lists_the_unacknowledged_in_time_and_is_deterministic():
    s = LiveState(VENUE)
    wall = T0
    s.apply(*occ("balcons", 800, 0), T0, wall)
    s.apply(*status("churchill-in-1", False, 0), T0, wall + timedelta(seconds=30))
    book = s.book
    after = timedelta(seconds=60)
    assert book.escalate(wall + timedelta(seconds=59), after) == []
    assert {a.key for a in book.escalate(wall + timedelta(seconds=60), after)} == {
        "near_full:balcons", "full:balcons"}  # fmt: skip
    assert book.escalate(wall + timedelta(seconds=61), after) == []  # once
    p1 = escalated_payload([a.to_dict() for a in book.escalated()])
    # the same alerts in another order (another dashboard): the same bytes
    assert p1 == escalated_payload([a.to_dict() for a in reversed(book.escalated())])
    assert [a["key"] for a in wire._load(p1)["alerts"]] == ["full:balcons", "near_full:balcons"]
    full = next(a for a in book.escalated() if a.kind == "full")
    s.acknowledge(full.id, "sophie", T0)
    assert [a.key for a in book.escalated()] == ["near_full:balcons"]
    s.apply(*occ("balcons", 100, 90), T0, wall)
    assert book.escalated() == []
