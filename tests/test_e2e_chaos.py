"""Chaos: during a replayed school day, restart the broker (gracefully, then with SIGKILL),
SIGKILL the counter (a `sesame counter run` process) and one gate agent (its own process),
cut another gate off the broker for an hour of event time, and publish malformed messages.
After draining, the export still equals the ground truth exactly, no lease zone went over
capacity, every outbox is empty and the quarantine holds exactly the malformed messages."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import pytest

from sesame.common import mqtt, wire
from sesame.common.capacity import lease_breaches
from sesame.run.lanes import wait_until
from sesame.run.orchestrator import event_log_over_capacity
from sesame.sim.model import ms
from sesame.sim.truth import compare
from tests.fixtures.e2e import export_attendance

THU = "2018-11-22"
KILLED_LANE, CUT_LANE = "churchill-in-2", "churchill-in-3"


def at(hhmm: str, venue) -> int:
    return ms(datetime.fromisoformat(f"{THU}T{hhmm}:00").replace(tzinfo=venue.tz))


def _malformed(venue) -> list[bytes]:
    good = wire.Event(
        gate="churchill-in-4",  # spoofed: published on churchill-in-1's topic
        epoch="chaos1",
        seq=1,
        ts=datetime.fromisoformat(f"{THU}T10:00:00+01:00"),
        kind="passage",
        from_zone="outside",
        to_zone="nef",
        badge="B999999",
        category="public",
    )
    wrong_zones = wire.Event(**{**good.__dict__, "gate": "churchill-in-1", "to_zone": "balcons"})
    return [b"not json at all \xff", good.to_json(), wrong_zones.to_json()]


@pytest.mark.slow
def test_chaos_keeps_exact_counts(replay_of, mosquitto, tmp_path):
    replay = replay_of(
        only=(THU,),
        scale=0.1,
        counter_process=True,
        process_lanes=frozenset({KILLED_LANE}),
        relayed_lanes=frozenset({CUT_LANE}),
    ).start()
    venue = replay.venue
    injected = _malformed(venue)
    done: list[str] = []

    def inject() -> None:
        conn = mqtt.connect(mosquitto.url("gate-churchill-in-1"), "chaos-injector")
        try:
            for payload in injected:
                conn.publish(wire.Topics(venue.id).events("churchill-in-1"), payload, qos=1)
            wait_until(lambda: False, 0.3)
        finally:
            conn.close()

    def restart_counter() -> None:
        replay.counter.kill()
        wait_until(lambda: False, 1.0)  # the gates keep deciding with their leases
        replay.counter.start()

    def kill_lane() -> None:
        lane = replay.lanes[KILLED_LANE]
        depth = lane.depth()
        lane.kill()  # SIGKILL
        lane.start()  # same outbox, same epoch
        assert lane.depth() <= depth  # nothing lost; a retained ack may cover more now

    offline: list[int] = []

    def heal() -> None:
        offline.append(replay.lanes[CUT_LANE].depth())  # decided alone meanwhile
        replay.relays[CUT_LANE].heal()

    steps = [
        ("09:20", "broker restart", mosquitto.restart),
        ("09:40", "malformed messages", inject),
        ("10:00", "counter kill -9", restart_counter),
        ("10:20", "gate kill -9", kill_lane),
        ("10:40", "gate cut off", replay.relays[CUT_LANE].cut),
        ("11:10", "broker kill -9", lambda: (mosquitto.kill(), mosquitto.start())),
        ("11:40", "gate back", heal),
    ]
    plan = [(at(hhmm, venue), name, fn) for hhmm, name, fn in steps]

    def hook(n: int, t: int) -> None:
        while plan and t >= plan[0][0]:
            _, name, fn = plan.pop(0)
            fn()
            done.append(name)

    replay.on_action = hook
    out = replay.run()
    assert done == [name for _, name, _ in steps]
    assert replay.drain(timeout=120), f"outboxes not empty: backlog {replay.backlog()}"
    assert replay.backlog() == 0
    assert replay.lanes[KILLED_LANE].kills == 1
    assert offline[0] > 0 and replay.relays[CUT_LANE].connections >= 2
    truth = replay.truth()

    export = export_attendance(replay.db, replay.venue_file, tmp_path / "attendance.json")
    assert compare(truth, export) == []
    assert truth["days"][THU]["unique_visitors"] > 900
    assert lease_breaches(event_log_over_capacity(replay.db, venue)) == {}
    assert lease_breaches(truth["over_capacity"]) == {}
    assert all(s.exit_refused == 0 for s in out.stats.values())
    with sqlite3.connect(replay.db) as conn:
        quarantined = sorted(bytes(p) for (p,) in conn.execute("SELECT payload FROM quarantine"))
    assert quarantined == sorted(injected)
