"""Event days: reset at closing time following event time, residue recorded, late events."""

from __future__ import annotations

from datetime import datetime, timedelta

from sesame.common import wire
from sesame.counter import queries
from tests.fixtures.counter import DAY1, PARIS, Clock, published


def test_event_day_boundaries_follow_closing_time(small_venue):
    from sesame.counter.occupancy import DayClock

    days = DayClock(small_venue)
    assert days.day_of(datetime(2018, 11, 22, 7, 30, tzinfo=PARIS)) == "2018-11-22"
    assert days.day_of(datetime(2018, 11, 22, 17, 59, 59, tzinfo=PARIS)) == "2018-11-22"
    assert days.day_of(datetime(2018, 11, 22, 18, 0, tzinfo=PARIS)) == "2018-11-23"
    # the same instant written in UTC
    assert days.day_of(datetime.fromisoformat("2018-11-22T16:59:00+00:00")) == "2018-11-22"
    assert days.day_of(datetime(2018, 11, 30, 12, 0, tzinfo=PARIS)) == "2018-11-24"  # after


def test_closing_time_reached_by_events_resets_with_residue(make_core, lanes, tmp_path):
    core = make_core()
    for g in ["in-1", "in-1", "in-2", "annex-in", "out-1"]:
        core.handle([lanes.event(g)])
    assert (core.book.live("hall"), core.book.live("annex")) == (1, 1)
    # the counter's clock reaches the next day: first event of that day
    lanes.clock = datetime(2018, 11, 23, 9, 5, tzinfo=PARIS)
    outs = core.handle([lanes.event("in-1", ts=lanes.clock)])
    occ = {wire.parse_occupancy(p).zone: wire.parse_occupancy(p).occupancy
           for p in published(outs, "occupancy").values()}  # fmt: skip
    assert occ == {"hall": 1, "annex": 0, "roof": 0}  # reset, then the new entry
    assert queries.residues(tmp_path / "counter.db")["2018-11-22"] == {
        "hall": 1, "annex": 1, "roof": 0,
    }  # fmt: skip
    # a late exit for the closed day fixes that day's residue, not today's figures
    core.handle([lanes.event("out-1", ts=DAY1 + timedelta(hours=2))])
    assert core.book.live("hall") == 1
    assert queries.residues(tmp_path / "counter.db")["2018-11-22"]["hall"] == 0
    # and all of it survives a restart
    core = make_core()
    assert core.book.current == "2018-11-23" and core.book.live("hall") == 1
    assert core.book.raw("hall", "2018-11-22") == 0
    audit = [a for a in queries.audit(tmp_path / "counter.db") if a["action"] == "day_closed"]
    assert audit and audit[0]["detail"]["day"] == "2018-11-22"


def test_the_counter_clock_closes_the_day(make_core, lanes):
    clock = Clock(datetime(2018, 11, 22, 17, 0, tzinfo=PARIS))
    core = make_core(clock=clock)
    core.handle([lanes.event("in-1"), lanes.event("in-2")])
    assert core.tick() is not None and core.book.current == "2018-11-22"
    clock.t = datetime(2018, 11, 22, 18, 0, 1, tzinfo=PARIS)
    outs = core.tick()
    assert core.book.current == "2018-11-23" and core.book.live("hall") == 0
    assert wire.parse_occupancy(published(outs, "occupancy")[
        wire.Topics("testhall").occupancy("hall")]).occupancy == 0  # fmt: skip
    assert core.book.residue("2018-11-22")["hall"] == 2
    # a replay gives the counter the simulated clock; a counter on the real clock has
    # closed those days long ago and never reopens one for a lane's stamp
    replay = make_core(db=core.store.path.with_name("replay.db"),
                       clock=Clock(datetime(2026, 6, 1, tzinfo=PARIS)))  # fmt: skip
    replay.handle([lanes.event("out-1")])
    replay.tick()
    assert replay.book.current > "2018-11-23" and replay.book.live("hall") == 0


def test_corrections_apply_once_and_are_audited(make_core, lanes, tmp_path):
    core = make_core()
    core.handle([lanes.event("in-1")])
    t = wire.Topics("testhall")
    c = wire.Correction(id="corr-0001", zone="hall", delta=12, reason="group let in by hand",
                        by="officer1", ts=DAY1 + timedelta(minutes=5))  # fmt: skip
    outs = core.handle([(t.corrections(), c.to_json()), (t.corrections(), c.to_json())])
    assert core.book.live("hall") == 13
    assert wire.parse_occupancy(published(outs, "occupancy")[t.occupancy("hall")]).occupancy == 13
    core.handle([(t.corrections(), c.to_json())])  # repeated later: still once
    core = make_core()
    assert core.book.live("hall") == 13
    rows = [a for a in queries.audit(tmp_path / "counter.db") if a["action"] == "correction"]
    assert len(rows) == 1
    assert rows[0]["who"] == "officer1" and rows[0]["detail"]["delta"] == 12
    assert rows[0]["detail"]["reason"] == "group let in by hand"
    assert (rows[0]["detail"]["before"], rows[0]["detail"]["after"]) == (1, 13)
    bad = b'{"v":1,"id":"x","zone":"hall","delta":0,"reason":"","by":"a","ts":"nope"}'
    ghost = wire.Correction(id="corr-0002", zone="attic", delta=1, reason="r", by="o",
                            ts=DAY1)  # fmt: skip
    core.handle([(t.corrections(), bad), (t.corrections(), ghost.to_json())])
    reasons = [r[0] for r in core.store.conn.execute("SELECT reason FROM quarantine")]
    assert len(reasons) == 2 and "unknown zone 'attic'" in reasons[1]


def test_zone_close_and_evacuation_states_and_leases(make_core, lanes, tmp_path):
    core = make_core()
    core.handle([lanes.event("in-1") for _ in range(3)])
    t = wire.Topics("testhall")
    closed = wire.ZoneControl(state="closed", by="officer1", ts=DAY1)
    outs = core.handle([(t.zone_control("hall"), closed.to_json())])
    assert wire.parse_occupancy(published(outs, "occupancy")[t.occupancy("hall")]).state == "closed"
    grants = dict(core.leases["in-1"].grants)
    for _ in range(5):  # lanes of a closed zone are not topped up
        core.handle([lanes.event("in-1")])
    assert core.leases["in-1"].grants == grants
    core.handle([(t.zone_control("hall"), closed.to_json())])  # retained copy again: no audit
    evac = wire.VenueControl(mode="evacuation", by="chief", ts=DAY1)
    outs = core.handle([(t.venue_control(), evac.to_json())])
    states = {wire.parse_occupancy(p).state for p in published(outs, "occupancy").values()}
    assert states == {"evacuating"}
    core = make_core()  # control state survives a restart
    assert core.occupancy("annex").state == "evacuating"
    core.handle([(t.venue_control(), wire.VenueControl(mode="normal").to_json()),
                 (t.zone_control("hall"), wire.ZoneControl(state="open").to_json())])  # fmt: skip
    assert core.occupancy("hall").state == "open"
    actions = [a["action"] for a in queries.audit(tmp_path / "counter.db")]
    assert actions[:4] == ["zone_open", "venue_normal", "venue_evacuation", "zone_closed"]
    z = {r["zone"]: r for r in queries.zone_occupancy(tmp_path / "counter.db", core.venue)}
    assert (z["hall"]["occupancy"], z["hall"]["state"], z["hall"]["capacity"]) == (8, "open", 30)


def test_near_full_and_full_states(small_venue):
    from sesame.counter.occupancy import zone_state

    hall = small_venue.zones["hall"]  # capacity 30, near_full 0.8
    assert zone_state(23, hall, closed=False, evacuating=False) == "open"
    assert zone_state(24, hall, closed=False, evacuating=False) == "near_full"
    assert zone_state(30, hall, closed=False, evacuating=False) == "full"
    assert zone_state(31, hall, closed=True, evacuating=False) == "closed"
    assert zone_state(0, hall, closed=True, evacuating=True) == "evacuating"


def test_a_lane_clock_far_ahead_does_not_close_the_day(make_core, lanes):
    clock = Clock(datetime(2018, 11, 22, 11, 0, tzinfo=PARIS))
    core = make_core(clock=clock)
    core.handle([lanes.event("in-1"), lanes.event("in-1")])
    core.handle([lanes.event("in-2", ts=datetime(2030, 1, 1, 12, 0, tzinfo=PARIS))])
    assert core.book.current == "2018-11-22" and core.book.live("hall") == 3
    assert core.stats["future"] == 1
    assert datetime.fromtimestamp(core.event_clock, PARIS).year == 2018


def test_the_counter_clock_on_the_next_morning_brings_that_day_s_leases(make_core, lanes):
    core = make_core()
    core.handle([lanes.event("in-1")])
    t = wire.Topics("testhall")
    morning = datetime(2018, 11, 23, 8, 55, tzinfo=PARIS)
    # a lane's status stamped the next morning does not move the day (its clock may lie)
    status = wire.GateStatus(gate="in-2", online=True, ts=morning)
    outs = core.handle([(t.gate_status("in-2"), status.to_json())])
    assert core.book.current == "2018-11-22" and core.book.live("hall") == 1
    assert not published(outs, "lease")
    lanes.clock = morning  # the counter's own clock does
    outs = core.tick()
    leases = [wire.parse_lease(p) for p in published(outs, "lease").values()]
    assert {le.day for le in leases} == {"2018-11-23"} and len(leases) == 4  # entry lanes
    assert core.book.current == "2018-11-23" and core.book.live("hall") == 0


def test_people_leaving_after_closing_lower_the_residue_not_tomorrow(make_core, lanes, tmp_path):
    core = make_core()
    for _ in range(5):
        core.handle([lanes.event("in-1")])
    evening = datetime(2018, 11, 22, 18, 10, tzinfo=PARIS)
    lanes.clock = evening + timedelta(seconds=3)
    core.handle([lanes.event("out-1", ts=evening + timedelta(seconds=i)) for i in range(3)])
    assert core.book.current == "2018-11-23" and core.book.raw("hall") == 0  # not -3
    assert core.book.raw("hall", "2018-11-22") == 2
    assert queries.residues(tmp_path / "counter.db")["2018-11-22"]["hall"] == 2
    morning = datetime(2018, 11, 23, 9, 5, tzinfo=PARIS)
    lanes.clock = morning
    core.handle([lanes.event("in-2", ts=morning)])
    lanes.clock = morning + timedelta(minutes=1)
    core.handle([lanes.event("out-1", ts=morning + timedelta(minutes=1))])  # a morning exit
    assert core.book.raw("hall") == 0 and core.book.raw("hall", "2018-11-22") == 2
    core = make_core()  # the attribution is stored: a restart agrees
    assert core.book.raw("hall") == 0 and core.book.raw("hall", "2018-11-22") == 2


def test_occupancy_is_stamped_with_event_time_in_a_replay(make_core, lanes):
    """A replay of 2018 years later: the dashboard's curves and alerts read the occupancy's
    time, which must be the day replayed, not the wall clock."""
    core = make_core()  # on the replay's simulated clock
    at = lanes.clock = datetime(2018, 11, 22, 10, 15, tzinfo=PARIS)
    outs = core.handle([lanes.event("in-1", ts=at)])
    hall = wire.Topics("testhall").occupancy("hall")
    occ = wire.parse_occupancy(published(outs, "occupancy")[hall])
    assert occ.occupancy == 1 and occ.ts == at


def test_events_after_the_last_closing_belong_to_the_last_day(make_core, lanes, tmp_path):
    """The crowded last day's exit queue outlasts closing time: those exits (and any late
    refusal) are the last day's, never a date that is no event day."""
    from sesame.counter import exports

    core = make_core()
    last = lanes.clock = datetime(2018, 11, 23, 17, 50, tzinfo=PARIS)
    for i in range(6):
        core.handle([lanes.event("in-1", ts=last + timedelta(seconds=i))])
    evening = lanes.clock = datetime(2018, 11, 23, 18, 20, tzinfo=PARIS)
    core.handle([lanes.event("out-1", ts=evening + timedelta(seconds=i)) for i in range(4)])
    core.handle([lanes.event("in-2", kind="denied", reason="OUTSIDE_OPENING_HOURS",
                             ts=evening + timedelta(minutes=5))])  # fmt: skip
    db = tmp_path / "counter.db"
    assert {r["day"] for r in _event_days(db)} == {"2018-11-23"}
    assert queries.residues(db)["2018-11-23"]["hall"] == 2  # 6 in, 4 out after closing
    report = exports.attendance(db, core.venue)
    assert set(report["days"]) == {"2018-11-22", "2018-11-23"}
    assert report["days"]["2018-11-23"]["denials_by_reason"] == {"OUTSIDE_OPENING_HOURS": 1}
    # a restart agrees
    core = make_core()
    assert core.book.raw("hall", "2018-11-23") == 2


def test_a_refusal_in_the_night_belongs_to_the_day_that_closed(make_core, lanes, tmp_path):
    core = make_core()
    core.handle([lanes.event("in-1")])
    night = lanes.clock = datetime(2018, 11, 22, 21, 0, tzinfo=PARIS)
    core.handle([lanes.event("in-1", kind="denied", reason="OUTSIDE_OPENING_HOURS", ts=night)])
    morning = lanes.clock = datetime(2018, 11, 23, 9, 1, tzinfo=PARIS)
    core.handle([lanes.event("in-1", kind="denied", reason="NO_REENTRY", ts=morning)])
    days = {r["reason"]: r["day"] for r in _event_days(tmp_path / "counter.db") if r["reason"]}
    assert days == {"OUTSIDE_OPENING_HOURS": "2018-11-22", "NO_REENTRY": "2018-11-23"}


def _event_days(db):
    import sqlite3

    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT day, kind, reason FROM events")]
    finally:
        conn.close()
