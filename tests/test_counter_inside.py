"""The counter's side of the venue-wide memory (sesame/counter/inside.py), on the core: what
it republishes on counter/admissions, what it replays to a lane that is behind, what a lane
cannot make it say, and when it finds a double admission."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sesame.common import wire
from sesame.common.venue import parse_venue
from sesame.common.wire.admissions import MAX_ITEMS, parse_admissions
from tests.fixtures.counter import (
    DAY1,
    ENGINES,
    Clock,
    engine_target,
    findings_in,
    small_venue_dict,
)


@pytest.fixture(params=ENGINES)
def counter_target(request, tmp_path):
    """On SQLite and on the PostgreSQL database standby counters share."""
    return engine_target(request, tmp_path)

DAY = DAY1.date().isoformat()


def _admissions(outs, topic_end="counter/admissions"):
    return [parse_admissions(o.payload) for o in outs if o.topic.endswith(topic_end)]


def _status(gate, day=DAY, upto=0, online=True):
    st = wire.GateStatus(gate=gate, online=online, ts=DAY1, admissions_day=day,
                         admissions_upto=upto)  # fmt: skip
    return (wire.Topics("testhall").gate_status(gate), st.to_json())


def _core(make_core, venue=None):
    return make_core(venue=venue, clock=Clock(DAY1 + timedelta(hours=3)))


def test_badge_passages_are_republished_numbered_and_chained(make_core, lanes):
    core = _core(make_core)
    denial = lanes.event("in-1", kind="denied", badge="B2", reason="ZONE_FULL")
    out = core.handle([lanes.event("in-1", badge="B1"), lanes.event("out-1"), denial])
    (msg,) = _admissions(out)
    assert msg.day == DAY and msg.after == 0 and [a.badge for a in msg.items] == ["B1"]
    a = msg.items[0]
    assert (a.gate, a.from_zone, a.to_zone) == ("in-1", "outside", "hall")
    (nxt,) = _admissions(core.handle([lanes.event("in-2", badge="B3")]))
    assert nxt.after == msg.upto < nxt.upto  # the lanes see the chain is whole
    assert not any(o.retain for o in out if o.topic.endswith("/admissions"))


def test_a_lane_cannot_name_badges_it_could_not_have_admitted(make_core, lanes):
    core = _core(make_core)
    out = core.handle([
        lanes.event("annex-in", badge="S1", category="school"),  # school may not enter the annex
        lanes.event("in-1", badge="X1", category="vip"),  # no such category
        lanes.event("in-1", badge="B9", category="public"),
    ])  # fmt: skip
    assert [a.badge for m in _admissions(out) for a in m.items] == ["B9"]
    # with a registry imported, a badge must be registered under the category it claims
    core.store.conn.execute(
        "INSERT INTO badges (badge_id, category, imported_at) VALUES ('R1', 'school', 'x')"
    )
    out = core.handle([lanes.event("in-1", badge="R1", category="public"),
                       lanes.event("in-1", badge="R2", category="public"),
                       lanes.event("in-2", badge="R1", category="school")])  # fmt: skip
    assert [a.badge for m in _admissions(out) for a in m.items] == ["R1"]
    assert _admissions(out)[0].items[0].gate == "in-2"


def test_a_lane_behind_gets_the_rest_of_the_day_in_chunks(make_core, lanes):
    core = _core(make_core)
    n = MAX_ITEMS + 20
    # one every 2 s: a pace a tripod can pass (faster would be held as implausible)
    core.handle([lanes.event("in-1", badge=f"B{i}", ts=DAY1 + timedelta(seconds=2 * i))
                 for i in range(n)])  # fmt: skip
    got, upto, more = [], 0, True
    while more:
        (msg,) = _admissions(core.handle([_status("in-2", upto=upto)]), "gates/in-2/admissions")
        assert msg.after == upto
        got += [a.badge for a in msg.items]
        upto, more = msg.upto, msg.more
    assert got == [f"B{i}" for i in range(n)]
    # up to date: nothing more; an exit lane or an offline status gets nothing either
    assert _admissions(core.handle([_status("in-2", upto=upto)]), "/admissions") == []
    assert _admissions(core.handle([_status("in-2", online=False)]), "/admissions") == []
    # a lane still on yesterday's numbering starts the live day from the beginning
    (msg,) = _admissions(core.handle([_status("in-2", day="2018-11-21", upto=10**6)]),
                         "gates/in-2/admissions")  # fmt: skip
    assert msg.after == 0 and len(msg.items) == MAX_ITEMS and msg.more


def _double(core):
    return core.findings.get("DOUBLE_ADMISSION", "in-2")


def test_double_admission_found_in_either_order_and_kept(make_core, lanes, tmp_path):
    core = _core(make_core)
    t = DAY1 + timedelta(hours=1)
    # the second lane's passage arrives first (its backlog drained sooner)
    core.handle([lanes.event("in-2", badge="B1", ts=t + timedelta(minutes=5))])
    assert _double(core) is None
    out = core.handle([lanes.event("in-1", badge="B1", ts=t)])
    found = _double(core)
    assert found is not None and found.count == 1
    assert found.detail["lanes"] == ["in-1", "in-2"] and found.detail["badge"] == "B1"
    assert found.detail["category"] == "public" and found.detail["zone"] == "hall"
    assert [a.kind for a in findings_in(out)] == ["DOUBLE_ADMISSION"]
    # a group at one lane is one admission, not thirty doubles
    core.handle([lanes.event("in-2", badge="B1", ts=t + timedelta(minutes=6), group_size=3)
                 for _ in range(3)])  # fmt: skip
    assert _double(core).count == 1
    # kept across a restart of the counter
    assert _double(_core(make_core)).count == 1


def test_no_double_admission_after_an_exit_or_the_window(make_core, small_venue):
    d = small_venue_dict()
    d["gates"]["out-1"]["reader"] = True  # an exit lane that reads badges
    venue = parse_venue(d)
    from tests.fixtures.counter import Lanes

    lanes = Lanes(venue)
    core = _core(make_core, venue)
    t = DAY1 + timedelta(hours=1)
    core.handle([lanes.event("in-1", badge="B1", ts=t),
                 lanes.event("out-1", badge="B1", ts=t + timedelta(minutes=1)),
                 lanes.event("in-2", badge="B1", ts=t + timedelta(minutes=2)),  # seen leaving
                 lanes.event("in-1", badge="B2", ts=t),
                 lanes.event("in-2", badge="B2", ts=t + timedelta(minutes=31))])  # fmt: skip
    assert _double(core) is None


def test_once_badges_are_double_whatever_the_exits(make_core):
    d = small_venue_dict()
    d["categories"]["vip"] = {"label_fr": "VIP", "label_en": "VIP", "zones": ["hall"],
                              "reentry": "once"}  # fmt: skip
    venue = parse_venue(d)
    from tests.fixtures.counter import Lanes

    lanes = Lanes(venue)
    core = _core(make_core, venue)
    t = DAY1 + timedelta(hours=1)
    later = t + timedelta(hours=3)
    core.handle([lanes.event("in-1", badge="V1", category="vip", ts=t),
                 lanes.event("in-2", badge="V1", category="vip", ts=later)])  # fmt: skip
    assert _double(core).detail["category"] == "vip"


def test_the_next_day_starts_without_the_findings(make_core, lanes):
    core = _core(make_core)
    t = DAY1 + timedelta(hours=1)
    core.handle([lanes.event("in-1", badge="B1", ts=t),
                 lanes.event("in-2", badge="B1", ts=t + timedelta(minutes=1))])  # fmt: skip
    assert _double(core) is not None
    core.inside.new_day("2018-11-23")
    assert _double(core) is None and core.inside.head == 0


def test_a_claim_under_another_category_makes_no_double(make_core, lanes):
    core = _core(make_core)
    t = DAY1 + timedelta(hours=1)
    core.handle([lanes.event("in-1", badge="B1", category="school", ts=t),  # a lie
                 lanes.event("in-2", badge="B1", category="public",
                             ts=t + timedelta(minutes=1))])  # fmt: skip
    assert _double(core) is None
