"""A new outbox is an event, not a habit (counter core): the first epoch change of a lane in
a day writes off its allowance once; later ones are held (EPOCH_CHANGE_HELD: lane, epoch,
allowance at stake) without a write-off or a lease for the new outbox until an officer
confirms, once by id; holds survive a restart and end with the day."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sesame.common import wire
from sesame.common.wire.decisions import Decision
from tests.fixtures.counter import DAY1, Clock, all_findings, published

T = wire.Topics("testhall")
NOON = DAY1.replace(hour=12)


def status(gate, epoch, ts=NOON):
    return T.gate_status(gate), wire.GateStatus(gate=gate, online=True, outbox=0, epoch=epoch,
                                                ts=ts).to_json()  # fmt: skip


def confirm(gate, epoch, did=None):
    d = Decision(id=did or uuid.uuid4().hex, action="confirm_epoch", gate=gate, by="officer1",
                 ts=NOON, epoch=epoch)  # fmt: skip
    return T.decisions(), d.to_json()


def held(core):
    alerts = all_findings(core)
    return {a.subject: a for a in alerts if a.kind == "EPOCH_CHANGE_HELD"}


def write_offs(core):
    sql = "SELECT count(*) FROM audit WHERE action = 'allowance_written_off'"
    return core.store.conn.execute(sql).fetchone()[0]


def lease_epoch(outs, gate):
    p = published(outs, "lease").get(T.lease(gate))
    return wire.parse_lease(p).epoch if p else None


def test_the_second_change_waits_for_an_officer_across_a_restart(make_core, tmp_path):
    clock = Clock(NOON)
    core = make_core(clock=clock)
    core.handle([status("in-1", "e1")])
    core.startup()
    outs = core.handle([status("in-1", "e2")])  # the first new outbox today: acted on
    assert write_offs(core) == 1 and lease_epoch(outs, "in-1") == "e2"
    outs = core.handle([status("in-1", "e3")] * 3)  # the same status thrice
    assert write_offs(core) == 1 and lease_epoch(outs, "in-1") is None
    f = held(core)["in-1"]
    assert (f.detail["epoch"], f.detail["current_epoch"], f.count) == ("e3", "e2", 1)
    assert f.detail["allowance"] == core.desk.at_stake("in-1") > 0
    assert core.lease_message("in-1").epoch == "e2"  # e3's outbox has no lease

    # a restart: still held, still one write-off
    core = make_core(db=tmp_path / "counter.db", clock=clock)
    assert held(core)["in-1"].detail["epoch"] == "e3"
    core.handle([status("in-1", "e3")])
    assert write_offs(core) == 1
    stale = confirm("in-1", "e4")  # not the change held: recorded, nothing done
    did = uuid.uuid4().hex
    outs = core.handle([stale, confirm("in-1", "e3", did), confirm("in-1", "e3", did)])
    assert write_offs(core) == 2 and lease_epoch(outs, "in-1") == "e3"
    assert "in-1" not in held(core)
    outcomes = core.store.conn.execute("SELECT outcome FROM decisions ORDER BY rowid").fetchall()
    assert outcomes == [("stale",), ("applied",)]
    who = core.store.conn.execute(
        "SELECT who FROM audit WHERE action = 'confirm_epoch'").fetchall()  # fmt: skip
    assert who == [("officer1",), ("officer1",)]

    core = make_core(db=tmp_path / "counter.db", clock=clock)
    core.handle([confirm("in-1", "e3", did)])  # again after a restart: once is once
    core.handle([status("in-1", "e4")])  # one confirmation allowed one change, no more
    assert write_offs(core) == 2 and held(core)["in-1"].detail["epoch"] == "e4"


def test_flips_do_not_write_off_twice_and_a_new_day_starts_afresh(make_core):
    clock = Clock(NOON)
    core = make_core(clock=clock)
    core.handle([status("in-1", "a")])
    core.startup()
    for i in range(1, 401):
        core.handle([status("in-1", "ab"[i % 2])])
    assert write_offs(core) == 1
    assert held(core)["in-1"].count == 200  # the flips back to 'a', one hold each
    audited = core.store.conn.execute(
        "SELECT count(*) FROM audit WHERE action = 'epoch_change_held'").fetchone()[0]  # fmt: skip
    assert audited == 1
    # the next day: its first change is acted on again
    tomorrow = clock.t = NOON + timedelta(days=1)
    core.tick()
    ev = wire.Event(gate="in-2", epoch="x", seq=1, ts=tomorrow, kind="passage",
                    from_zone="outside", to_zone="hall", badge="B1", category="public")  # fmt: skip
    core.handle([(T.events("in-2"), ev.to_json())])
    assert core.book.current == "2018-11-23" and held(core) == {}
    core.handle([status("in-1", "c", ts=tomorrow)])
    assert core.lease_message("in-1").epoch == "c"
