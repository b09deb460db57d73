"""Ingest: validation, quarantine, dedup, ordering, gaps, acks, rebuild after a restart."""

from __future__ import annotations

import json

import pytest

from sesame.common import wire
from sesame.counter.database import ERRORS
from tests.fixtures.counter import ENGINES, engine_target, published


@pytest.fixture(params=ENGINES)
def counter_target(request, tmp_path):
    """Every test here runs on SQLite and on PostgreSQL."""
    return engine_target(request, tmp_path)


def _occ(outs, zone):
    for o in reversed(outs):
        if o.topic.endswith(f"/zones/{zone}/occupancy"):
            return wire.parse_occupancy(o.payload)
    return None


def _rows(core, sql):
    return core.store.conn.execute(sql).fetchall()


def test_passages_move_people_and_publish_occupancy(make_core, lanes):
    core = make_core()
    outs = core.handle([lanes.event("in-1"), lanes.event("in-2"), lanes.event("annex-in")])
    assert core.book.live("hall") == 1 and core.book.live("annex") == 1
    occ = _occ(outs, "hall")
    assert (occ.occupancy, occ.capacity, occ.state) == (1, 30, "open")
    outs = core.handle([lanes.event("out-1")])  # anonymous exit
    assert _occ(outs, "hall").occupancy == 0
    assert _rows(core, "SELECT count(*) FROM events")[0][0] == 4


def test_duplicates_are_stored_once_and_still_acked(make_core, lanes):
    core = make_core()
    e1, e2 = lanes.event("in-1"), lanes.event("in-1")
    core.handle([e1, e2, e1])
    outs = core.handle([e2, e1])
    assert _rows(core, "SELECT count(*) FROM events")[0][0] == 2
    assert core.book.live("hall") == 2
    acks = published(outs, "ack")
    assert wire.parse_ack(acks[wire.Topics("testhall").ack("in-1")]) == wire.Ack("e1", 2)
    assert core.stats["duplicates"] == 3


def test_out_of_order_and_gap_filled_late(make_core, lanes):
    core = make_core()
    evs = [lanes.event("in-1") for _ in range(5)]
    outs = core.handle([evs[0], evs[3], evs[4]])
    ack_topic = wire.Topics("testhall").ack("in-1")
    assert wire.parse_ack(published(outs, "ack")[ack_topic]).seq == 1  # 2, 3 missing
    assert core.tracker.open_gaps() == 2
    assert core.tracker.gap_list() == {"in-1:e1": [(2, 3)]}
    assert wire.parse_counter_status(core.status().payload).open_gaps == 2
    outs = core.handle([evs[2]])
    assert wire.parse_ack(published(outs, "ack")[ack_topic]).seq == 1
    outs = core.handle([evs[1]])
    assert wire.parse_ack(published(outs, "ack")[ack_topic]).seq == 5
    assert core.tracker.open_gaps() == 0
    assert core.book.live("hall") == 5


def test_exit_before_its_entry_ends_exact(make_core, lanes):
    core = make_core()
    entry, leave = lanes.event("in-1"), lanes.event("out-1")
    core.handle([leave])
    assert core.book.raw("hall") == -1 and core.book.live("hall") == 0  # never shown below 0
    core.handle([entry])
    assert core.book.raw("hall") == 0


def test_epochs_are_tracked_apart(make_core, lanes):
    core = make_core()
    core.handle([lanes.event("in-1"), lanes.event("in-1")])
    lanes.new_epoch("in-1", "e2")  # the gate's outbox database was recreated
    outs = core.handle([lanes.event("in-1")])
    ack = wire.parse_ack(published(outs, "ack")[wire.Topics("testhall").ack("in-1")])
    assert ack == wire.Ack("e2", 1)
    assert core.book.live("hall") == 3


def _quarantine(core):
    return [(t, r) for t, r in _rows(core, "SELECT topic, reason FROM quarantine ORDER BY id")]


def test_bad_input_is_quarantined_with_a_reason(make_core, lanes):
    core = make_core()
    t = wire.Topics("testhall")
    good = lanes.make("in-1")
    spoof = json.loads(good.to_json())
    spoof.update(gate="in-2", id=f"in-2:{good.epoch}:{good.seq}")
    wrong_zone = json.loads(lanes.make("in-2").to_json())
    wrong_zone["to"] = "annex"
    ghost = json.loads(lanes.make("in-1").to_json())
    ghost.update(gate="ghost-1", id=f"ghost-1:{ghost['epoch']}:{ghost['seq']}")
    batch = [
        (t.events("in-1"), b"{not json"),
        (t.events("in-1"), b"\xff\xfe\x00garbage"),
        (t.events("in-1"), b"[1, 2]"),
        (t.events("in-1"), b'{"v":1,"gate":"in-1"}'),
        (t.events("in-1"), b'{"pad":"' + b"x" * 100_000 + b'"}'),
        (t.events("in-1"), json.dumps(spoof).encode()),  # in-1 speaking as in-2
        (t.events("in-2"), json.dumps(wrong_zone).encode()),
        (t.events("ghost-1"), json.dumps(ghost).encode()),
        ("sesame/v1/other-venue/gates/in-1/events", good.to_json()),
        (t.events("in-1"), b""),
    ]
    outs = core.handle(batch)
    q = _quarantine(core)
    assert len(q) == len(batch)
    reasons = [r for _, r in q]
    assert "not JSON" in reasons[0]
    assert "UTF-8" in reasons[1]
    assert "JSON object" in reasons[2]
    assert "missing field" in reasons[3]
    assert "too large" in reasons[4]
    assert "differs from the topic" in reasons[5]
    assert "do not match lane in-2" in reasons[6]
    assert "unknown gate 'ghost-1'" in reasons[7]
    assert "not a topic of this venue" in reasons[8]
    assert _rows(core, "SELECT count(*) FROM events")[0][0] == 0
    assert core.book.live("hall") == 0
    # Only the lane whose own, well-formed event was quarantined (wrong zones) is acked past
    # it, so that one bad event cannot hold its outbox back for ever.
    assert published(outs, "ack") == {t.ack("in-2"): wire.Ack("e1", 1).to_json()}
    # the oversized payload is kept (truncated to the quarantine's bound) with its real size
    from sesame.counter.store import QUARANTINE_PAYLOAD_KEPT

    size, stored = _rows(core, "SELECT size, length(payload) FROM quarantine WHERE id = 5")[0]
    assert size > 100_000 and stored == QUARANTINE_PAYLOAD_KEPT == 4096
    # the good message after all of that still counts
    core.handle([(t.events("in-1"), good.to_json())])
    assert core.book.live("hall") == 1


def test_restart_rebuilds_state_from_the_database(make_core, lanes, small_venue):
    core = make_core()
    evs = [lanes.event(g) for g in ["in-1", "in-1", "in-2", "annex-in", "out-1"]]
    core.handle([evs[1], evs[2], evs[3], evs[4]])  # in-1 seq 1 missing
    before = {z: core.book.raw(z) for z in small_venue.zones}
    core = make_core()  # restart on the same file
    assert {z: core.book.raw(z) for z in small_venue.zones} == before
    assert core.tracker.open_gaps() == 1
    core.handle([evs[1], evs[0]])  # replayed outbox: 2 is a duplicate, 1 fills the gap
    assert core.book.raw("hall") == before["hall"] + 1
    assert core.tracker.open_gaps() == 0
    assert _rows(core, "SELECT count(*) FROM events")[0][0] == 5


def test_snapshot_plus_tail_equals_full_rebuild(make_core, lanes, small_venue, monkeypatch):
    import sesame.counter.core as core_mod

    monkeypatch.setattr(core_mod, "SNAPSHOT_EVERY", 3)
    core = make_core()
    for g in ["in-1", "in-2", "in-1", "annex-in", "out-1", "in-2", "annex-out"]:
        core.handle([lanes.event(g)])
    assert _rows(core, "SELECT count(*) FROM snapshots")[0][0] >= 1
    want = {z: core.book.raw(z) for z in small_venue.zones}
    core = make_core()
    assert {z: core.book.raw(z) for z in small_venue.zones} == want
    assert want == {"hall": 3, "annex": 0, "roof": 0}


def test_a_failed_commit_stores_nothing(make_core, lanes):
    core = make_core()
    core.handle([lanes.event("in-1")])
    if core.store.engine == "sqlite":
        core.store.conn.execute("CREATE TRIGGER boom BEFORE INSERT ON events "
                                "BEGIN SELECT RAISE(ABORT, 'disk full'); END")  # fmt: skip
    else:
        core.store.conn.execute(
            "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN RAISE 'disk full'; END $$ "
            "LANGUAGE plpgsql; CREATE TRIGGER boom BEFORE INSERT ON events "
            "FOR EACH ROW EXECUTE FUNCTION boom()"
        )
    try:
        core.handle([lanes.event("in-1"), lanes.event("in-1")])
    except ERRORS:
        pass
    else:
        raise AssertionError("the failing commit should raise")
    from sesame.counter.core import Core

    core = Core(core.venue, core.store, core.clock)
    assert _rows(core, "SELECT count(*) FROM events")[0][0] == 1
    assert core.tracker.get("in-1", "e1").committed == 1  # seq state rolled back with it


def test_queries_for_the_dashboard(make_core, lanes, small_venue, counter_target):
    from sesame.counter import queries

    core = make_core()
    t = wire.Topics("testhall")
    evs = [lanes.event("in-1") for _ in range(4)]
    status = wire.GateStatus(gate="in-1", online=True, outbox=2, lease_serial=1)
    core.handle([evs[0], evs[3], (t.gate_status("in-1"), status.to_json()),
                 (t.events("in-1"), b"junk")])  # fmt: skip
    db = counter_target
    rows = {r["gate"]: r for r in queries.gates(db, small_venue)}
    assert set(rows) == set(small_venue.gates)
    g = rows["in-1"]
    assert (g["online"], g["outbox"], g["lease_serial"]) == (True, 2, 1)
    assert g["committed"] == {"e1": 1} and g["gaps"] == [["e1", 2, 3]]
    assert g["grants"] == {"hall": 2 + 4} and g["last_event_at"] is not None  # spent + initial
    out = rows["out-1"]
    assert out["exit"] and out["online"] is None and out["grants"] == {}
    zones = {z["zone"]: z for z in queries.zone_occupancy(db, small_venue)}
    assert zones["hall"]["occupancy"] == 2 and zones["hall"]["day"] == "2018-11-22"
    q = queries.quarantine(db)
    assert len(q) == 1 and q[0]["payload"] == "junk" and q[0]["topic"] == t.events("in-1")
    st = wire.parse_counter_status(core.status().payload)
    assert st.online and st.open_gaps == 2
    assert st.event_clock == wire.parse_event(evs[3][1]).ts
