"""A lane's fire alarm at the counter: FIRE_ALARM in a lane's status becomes a finding on the
retained counter/alerts list (and a dashboard alert); the venue goes into evacuation only
with the venue's `fire_alarm_evacuates = true`, audited, and only a safety officer ends it."""

from __future__ import annotations

from datetime import datetime

from sesame.common import wire
from sesame.common.venue import parse_venue
from sesame.common.wire.alerts import CounterAlerts, Finding
from sesame.common.wire.shards import ALERT_SHARDS, shard_name, shard_of
from sesame.dashboard.live import LiveState
from tests.fixtures.counter import DAY1, findings_in, published, small_venue_dict


def status(venue, gate, *faults, online=True) -> tuple[str, bytes]:
    st = wire.GateStatus(gate=gate, online=online, epoch="e1", faults=faults, ts=DAY1)
    return wire.Topics(venue.id).gate_status(gate), st.to_json()


def alerts(outs) -> list[Finding]:
    return findings_in(outs)


def test_fire_alarm_is_a_counter_alert_and_no_evacuation_by_default(small_venue, make_core):
    core = make_core()
    assert alerts(core.startup()) == []  # a fresh list replaces whatever was retained
    outs = core.handle([status(small_venue, "out-1", "FIRE_ALARM")])
    [a] = alerts(outs)
    assert (a.kind, a.subject, a.since) == ("FIRE_ALARM", "out-1", DAY1)
    assert not core.evacuating and not published(outs, "venue")
    assert {wire.parse_occupancy(p).state for p in published(outs, "occupancy").values()} <= {
        "open"
    }
    # the same status again (heartbeat) changes nothing; the lane going offline keeps it
    assert not published(core.handle([status(small_venue, "out-1", "FIRE_ALARM")]), "alerts")
    assert not published(core.handle([status(small_venue, "out-1", online=False)]), "alerts")
    # restored: the list is empty again
    assert alerts(core.handle([status(small_venue, "out-1")])) == []


def test_fire_alarm_evacuates_when_the_venue_says_so(make_core, tmp_path):
    d = small_venue_dict()
    d["venue"]["fire_alarm_evacuates"] = True
    venue = parse_venue(d)
    core = make_core(venue)
    core.startup()
    outs = core.handle([status(venue, "in-1", "FIRE_ALARM")])
    assert core.evacuating
    [ctl] = published(outs, "venue").values()
    vc = wire.parse_venue_control(ctl)
    assert vc.mode == "evacuation" and vc.by == "counter:fire-alarm:in-1"
    states = {wire.parse_occupancy(p).state for p in published(outs, "occupancy").values()}
    assert states == {"evacuating"}
    audit = core.store.conn.execute("SELECT who, action, detail FROM audit").fetchall()
    assert [(w, a) for w, a, _ in audit] == [("counter", "venue_evacuation")]
    assert '"cause": "FIRE_ALARM"' in audit[0][2] and '"gate": "in-1"' in audit[0][2]
    # the alarm restored does not end the evacuation; a safety officer does
    core.handle([status(venue, "in-1")])
    assert core.evacuating
    officer = wire.VenueControl("normal", "officer1", DAY1).to_json()
    core.handle([(wire.Topics(venue.id).venue_control(), officer)])
    assert not core.evacuating
    # a restart keeps the evacuation state it recorded
    core.handle([status(venue, "in-2", "FIRE_ALARM")])
    again = make_core(venue, db=tmp_path / "counter.db")
    assert again.evacuating


def test_dashboard_shows_the_finding_as_an_alert(small_venue):
    live = LiveState(small_venue)
    t = wire.Topics(small_venue.id)
    now = datetime(2018, 11, 22, 12, tzinfo=DAY1.tzinfo)
    shard = shard_of("FIRE_ALARM:out-1", ALERT_SHARDS)  # the one shard that names it
    topic = t.alerts(shard_name(shard))
    msg = CounterAlerts((Finding("FIRE_ALARM", "out-1", DAY1),), DAY1, shard).to_json()
    ups = live.apply(topic, msg, now)
    [(_, a)] = [u for u in ups if u[0] == "alert"]
    assert a["kind"] == "FIRE_ALARM" and a["subject"] == "out-1" and a["active"]
    assert live.apply(topic, msg, now) == []  # the same list again: nothing new
    other = (shard + 1) % ALERT_SHARDS  # another shard's list does not end it
    assert live.apply(t.alerts(shard_name(other)), CounterAlerts((), DAY1, other).to_json(),
                      now) == []  # fmt: skip
    cleared = live.apply(topic, CounterAlerts((), DAY1, shard).to_json(), now)
    assert [u[1]["active"] for u in cleared] == [False]
    assert live.apply(topic, b"{garbage", now) == [] and live.rejected == 1
