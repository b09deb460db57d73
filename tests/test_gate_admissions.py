"""The lane's side of the venue-wide memory: admissions heard from the counter are kept in
the outbox database and decide re-entry like the lane's own passages (in process; the
broker path is in tests/test_lane_inside.py)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest

from sesame.common import wire
from sesame.common.reasons import Reason
from sesame.common.venue import parse_venue
from sesame.common.wire.admissions import MAX_ITEMS, Admission, Admissions, parse_admissions
from sesame.gate.agent import GateAgent
from sesame.gate.outbox import Outbox
from tests.fixtures.counter import small_venue_dict
from tests.fixtures.gate import FakeClock, paris

DAY = "2018-11-22"
NOON = paris(2018, 11, 22, 12)
T = wire.Topics("testhall")


def _adm(gate: str, badge: str, at: datetime, seq: int = 1, to: str = "hall",
         frm: str = "outside", epoch: str = "e9") -> Admission:  # fmt: skip
    return Admission(f"{gate}:{epoch}:{seq}", gate, badge, frm, to, at)


def _msg(after: int, upto: int, *items: Admission, day: str = DAY, more: bool = False) -> bytes:
    return Admissions(day, after, upto, tuple(items), more).to_json()


@pytest.fixture
def venue():
    d = small_venue_dict()
    d["categories"]["vip"] = {"label_fr": "VIP", "label_en": "VIP", "zones": ["hall"],
                              "reentry": "once"}  # fmt: skip
    d["categories"]["public"]["reentry"] = "antipassback"
    return parse_venue(d)


@pytest.fixture
def lane(venue, badge_keys, tmp_path):
    clock = FakeClock(NOON)
    agent = GateAgent(venue, "in-2", data_dir=tmp_path, keys=badge_keys, clock=clock)
    agent.lease = wire.Lease(gate="in-2", day=DAY, grants={"hall": 100}, serial=1, ts=NOON)
    yield agent, clock
    agent.outbox.close()


def test_outbox_keeps_the_chain(tmp_path):
    ob = Outbox(tmp_path / "o.db")
    assert ob.admissions_cursor() == (None, 0)
    whole = ob.take_admissions(parse_admissions(_msg(0, 5, _adm("in-1", "B1", NOON))), "in-2")
    assert whole and ob.admissions_cursor() == (DAY, 5)
    # a message after a gap is kept but the cursor waits for the replay of the gap
    gap = parse_admissions(_msg(9, 12, _adm("in-1", "B2", NOON, seq=2)))
    assert not ob.take_admissions(gap, "in-2") and ob.admissions_cursor() == (DAY, 5)
    assert ob.seen("B2", "hall", date(2018, 11, 22)).last_in is not None
    assert ob.take_admissions(parse_admissions(_msg(5, 9)), "in-2")  # the replay of the gap
    assert ob.admissions_cursor() == (DAY, 9)
    # the next venue day numbers afresh
    nxt = parse_admissions(_msg(0, 3, day="2018-11-23"))
    assert ob.take_admissions(nxt, "in-2") and ob.admissions_cursor() == ("2018-11-23", 3)
    # an old day's message does not move the cursor back
    assert ob.take_admissions(parse_admissions(_msg(0, 99)), "in-2")
    assert ob.admissions_cursor() == ("2018-11-23", 3)
    # this outbox's own passages are not counted twice
    own = parse_admissions(_msg(3, 4, _adm("in-2", "B3", NOON, epoch=ob.epoch), day="2018-11-23"))
    ob.take_admissions(own, "in-2")
    assert ob.seen("B3", "hall", date(2018, 11, 23)).entries == 0
    # kept for KEEP_DAYS like the lane's own events, then pruned
    ob.prune(date(2018, 11, 30))
    assert ob.seen("B1", "hall", date(2018, 11, 22)).last_in is None
    ob.close()


def _hear(agent, *items, after=0, upto=1, topic=None):
    agent.on_message(topic or T.admissions(), _msg(after, upto, *items), False)


def test_another_lanes_admission_decides_here(lane, make_token):
    agent, clock = lane
    _hear(agent, _adm("in-1", "B1", NOON - timedelta(minutes=2)))
    dec = agent.handle_scan(make_token("B1", "public"))
    assert not dec.granted and dec.reason is Reason.ALREADY_INSIDE
    # seen leaving through a lane with a reader elsewhere: welcome back
    _hear(agent, _adm("out-x", "B1", NOON - timedelta(minutes=1), to="outside", frm="hall"),
          after=1, upto=2)  # fmt: skip
    assert agent.handle_scan(make_token("B1", "public")).granted


def test_once_and_group_badges_hold_across_lanes(lane, make_token):
    agent, clock = lane
    _hear(agent, _adm("in-1", "V1", NOON - timedelta(hours=3)),
          *[_adm("in-1", "G1", NOON - timedelta(minutes=1), seq=2 + i) for i in range(30)],
          upto=40)  # fmt: skip
    dec = agent.handle_scan(make_token("V1", "vip"))
    assert not dec.granted and dec.reason is Reason.NO_REENTRY
    dec = agent.handle_scan(make_token("G1", "school", group=30))
    assert not dec.granted and dec.reason is Reason.ALREADY_INSIDE and dec.passages == 0


def test_replays_for_another_lane_and_garbage_are_ignored(lane, make_token):
    agent, _ = lane
    _hear(agent, _adm("in-1", "B5", NOON), topic=T.lane_admissions("in-1"))
    assert agent.handle_scan(make_token("B5", "public")).granted  # not our replay
    bad = agent.bad_messages
    agent.on_message(T.admissions(), b'{"v":1,"day":"2018-11-22","after":2,"upto":1,"items":[]}',
                     False)  # fmt: skip
    agent.on_message(T.admissions(), b"\xff", False)
    assert agent.bad_messages == bad + 2


def test_the_status_says_where_the_lane_stands(lane):
    agent, _ = lane
    st = json.loads(agent._status())
    assert (st["admissions_day"], st["admissions_upto"]) == (DAY, 0)
    _hear(agent, _adm("in-1", "B1", NOON), upto=7)
    st = wire.parse_gate_status(agent._status())
    assert (st.admissions_day, st.admissions_upto) == (DAY, 7)


def test_exit_lanes_keep_no_memory(venue, badge_keys, tmp_path):
    agent = GateAgent(venue, "out-1", data_dir=tmp_path, keys=badge_keys, clock=FakeClock(NOON))
    try:
        assert not agent.keeps_admissions
        assert "admissions_day" not in json.loads(agent._status())
        _hear(agent, _adm("in-1", "B1", NOON))
        assert agent.outbox.admissions_cursor() == (None, 0)
    finally:
        agent.outbox.close()


@pytest.mark.parametrize(
    "change, why",
    [
        ({"after": 5, "upto": 4}, "below"),
        ({"items": [{"id": "in-2:e1:1", "gate": "in-1", "badge": "B1", "from": "outside",
                     "to": "hall", "ts": "2018-11-22T12:00:00+01:00"}]}, "id"),  # fmt: skip
        ({"items": [{"id": "in-1:e1:1", "gate": "in-1", "badge": "B 1", "from": "outside",
                     "to": "hall", "ts": "2018-11-22T12:00:00+01:00"}]}, "badge"),  # fmt: skip
        ({"items": [1] * (MAX_ITEMS + 1)}, "more than"),
        ({"day": "22/11/2018"}, "date"),
    ],
)
def test_malformed_admissions_are_refused_with_a_reason(change, why):
    obj = json.loads(_msg(0, 1))
    obj.update(change)
    parsed = parse_admissions(json.dumps(obj).encode())
    assert not parsed and why in parsed.reason
