"""The gate outbox: durable, gap-free, kept until the counter's ack, state kept on disk."""

from __future__ import annotations

import re
from datetime import date

from sesame.common.wire import Event, parse_event
from sesame.gate.outbox import Outbox
from tests.fixtures.gate import paris

THU = date(2018, 11, 22)


def _ev(ob: Outbox, kind="passage", badge="B1", t=None, frm="outside", to="nef"):
    def build(seq):
        return Event(
            "churchill-in-1",
            ob.epoch,
            seq,
            t or paris(2018, 11, 22, 12),
            kind,
            frm,
            to,
            badge,
            "public",
            "MALFORMED" if kind == "denied" else None,
        )

    return ob.append(build, THU)


def test_epoch_is_new_per_database_and_seq_gap_free(tmp_path):
    a, b = Outbox(tmp_path / "a.db"), Outbox(tmp_path / "b.db")
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,32}", a.epoch) and a.epoch != b.epoch
    seqs = [_ev(a).seq for _ in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    a.close()
    again = Outbox(tmp_path / "a.db")  # reopening keeps the epoch and continues the seq
    assert again.epoch == a.epoch and _ev(again).seq == 6
    bodies = again.pending(0)
    assert [s for s, _ in bodies] == [1, 2, 3, 4, 5, 6]
    ev = parse_event(bodies[0][1])
    assert ev and ev.id == f"churchill-in-1:{a.epoch}:1"


def test_ack_covers_and_is_durable(tmp_path):
    ob = Outbox(tmp_path / "o.db")
    for _ in range(10):
        _ev(ob)
    assert ob.depth() == 10
    assert not ob.ack("other-epoch", 10)  # someone else's epoch changes nothing
    assert ob.ack(ob.epoch, 4) and ob.depth() == 6
    assert not ob.ack(ob.epoch, 3)  # stale
    assert ob.ack(ob.epoch, 99) and ob.acked_seq == 10  # never beyond what was written
    assert ob.pending(0) == []
    _ev(ob)
    ob.close()
    ob = Outbox(tmp_path / "o.db")
    assert ob.acked_seq == 10 and [s for s, _ in ob.pending(0)] == [11]


def test_memory_lease_spending_and_counts(tmp_path):
    ob = Outbox(tmp_path / "o.db")
    _ev(ob, t=paris(2018, 11, 22, 10))
    _ev(ob, badge="B2")
    _ev(ob, kind="denied", badge="B3")
    _ev(ob, frm="nef", to="outside", t=paris(2018, 11, 22, 11))
    s = ob.seen("B1", "nef", THU)
    assert s.entries == 1 and s.last_in == paris(2018, 11, 22, 10)
    assert s.last_out == paris(2018, 11, 22, 11)
    assert ob.seen("B3", "nef", THU).entries == 0  # a denial is not an entry
    assert ob.entries("nef", THU) == 2
    assert ob.entries("nef", date(2018, 11, 23)) == 0
    assert ob.counts(THU) == {"passage": 3, "denied": 1}


def test_state_survives_reopen(tmp_path):
    ob = Outbox(tmp_path / "o.db")
    ob.put_state("gates/x/lease", b'{"a":1}', paris(2018, 11, 22))
    ob.put_state("gates/x/lease", b'{"a":2}', paris(2018, 11, 22))
    ob.close()
    assert Outbox(tmp_path / "o.db").states() == {"gates/x/lease": b'{"a":2}'}


def test_prune_keeps_unacked_and_recent(tmp_path):
    ob = Outbox(tmp_path / "o.db")
    for _ in range(3):
        _ev(ob)
    ob.ack(ob.epoch, 2)
    assert ob.prune(date(2018, 11, 24)) == 0  # recent: kept for re-entry rules
    assert ob.prune(date(2018, 11, 30)) == 2  # old and acked
    assert [s for s, _ in ob.pending(0)] == [3]
    assert _ev(ob).seq == 4


def test_an_ack_beyond_what_was_written_starts_a_new_epoch(tmp_path):
    """A database restored from a backup is behind the counter: its next seqs are already
    taken, so it numbers from 1 in a new epoch instead (and says so across a restart)."""
    ob = Outbox(tmp_path / "o.db")
    for _ in range(4):
        _ev(ob)
    old = ob.epoch
    assert ob.ack(old, 10)  # the counter holds 1..10 of this epoch; we only have 1..4
    assert ob.epoch != old and ob.depth() == 0 and ob.pending(0) == []
    ev = _ev(ob)
    assert (ev.epoch, ev.seq) == (ob.epoch, 1)
    assert ob.entries("nef", THU) == 1  # lease spend is counted within the new epoch
    assert not ob.ack(old, 11)  # the old epoch is gone
    ob.close()
    ob = Outbox(tmp_path / "o.db")
    (body,) = [b for _, b in ob.pending(0)]
    sent = parse_event(body)
    assert (sent.epoch, sent.seq) == (ob.epoch, 1) and ob.depth() == 1
    assert ob.ack(ob.epoch, 1) and ob.depth() == 0
    assert _ev(ob).seq == 2
