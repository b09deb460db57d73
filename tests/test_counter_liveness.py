"""A lane whose heartbeats stop is offline in the counter's record (what the dashboard's
/api/gates shows), even though its retained status still says online: on a NATS cluster
its Will is lost with the broker node that held its connection."""

from __future__ import annotations

from sesame.common import wire
from sesame.counter import queries
from sesame.counter.liveness import Liveness
from tests.fixtures.counter import alert_shards, findings_in


def test_silence_rule():
    live = Liveness(silent_after=30)
    live.heard("in-1", 0.0, online=True)
    live.heard("in-2", 0.0, online=False)  # said offline itself: nothing to add
    assert live.newly_silent(29.0) == []
    assert live.newly_silent(31.0) == ["in-1"]
    assert live.newly_silent(60.0) == []  # once
    live.heard("in-1", 61.0, online=True)
    assert "in-1" not in live.silent


def test_counter_marks_a_silent_lane_offline(make_core, small_venue, tmp_path):
    core = make_core()
    core.liveness.silent_after = 0.3
    status = wire.GateStatus(gate="in-1", online=True)
    core.handle([(wire.Topics("testhall").gate_status("in-1"), status.to_json())])
    core.tick()

    def online():
        return {g["gate"]: g["online"] for g in queries.gates(tmp_path / "counter.db", small_venue)}

    assert online()["in-1"] is True
    import time

    time.sleep(0.4)
    out = core.tick()
    assert online()["in-1"] is False
    # and the safety officers hear of it: a LANE_SILENT finding on counter/alerts
    assert [(a.kind, a.subject) for a in findings_in(out)] == [("LANE_SILENT", "in-1")]
    assert not alert_shards(core.tick())  # once
    out = core.handle([(wire.Topics("testhall").gate_status("in-1"), status.to_json())])
    assert online()["in-1"] is True  # heard again
    assert alert_shards(out) and findings_in(out) == []  # the finding cleared
