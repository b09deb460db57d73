"""The counter's term fences a former active counter (docs/scaling.md): a lane ignores
leases and acks below the highest term it has seen, remembers that term across a reboot,
and takes a higher term's lease even with a lower serial (a new counter counts afresh)."""

from __future__ import annotations

from sesame.common import wire
from sesame.common.reasons import Reason
from sesame.gate.term import admits, newer_lease
from tests.test_gate_agent import agents, events, feed  # noqa: F401  (the fixture)

GATE, DAY = "churchill-in-1", "2018-11-22"


def _lease(agent, n: int, serial: int, term: int | None) -> None:
    msg = wire.Lease(GATE, DAY, {"nef": n}, serial, epoch=agent.outbox.epoch, term=term)
    feed(agent, agent.topics.lease(GATE), msg)


def test_rules():
    assert admits(None, 0) and not admits(None, 2)
    assert admits(2, 2) and admits(3, 2) and not admits(1, 2)
    assert newer_lease(3, 1, DAY, 2, 99, DAY)  # new term, serials start afresh
    assert not newer_lease(2, 98, DAY, 2, 99, DAY)


def test_a_paused_former_counter_cannot_hand_out_allowance_twice(agents, make_token):  # noqa: F811
    entry = agents()
    _lease(entry, 2, serial=5, term=2)
    # the former active counter (term 1) wakes up and re-publishes a generous lease
    _lease(entry, 50, serial=99, term=1)
    _lease(entry, 50, serial=100, term=None)
    assert [entry.handle_scan(make_token(f"E{i}")).granted for i in range(3)] == [
        True,
        True,
        False,
    ]
    assert entry.handle_scan(make_token("E9")).reason == Reason.LEASE_EXHAUSTED
    assert entry.fenced_messages == 2
    assert entry.outbox.term == 2

    # a reboot keeps the fence: the term is in the outbox database
    entry.outbox.close()
    again = agents()
    assert again.outbox.term == 2
    _lease(again, 50, serial=101, term=1)
    assert again.handle_scan(make_token("E10")).reason == Reason.LEASE_EXHAUSTED
    # the next takeover (term 3) starts its serials again: taken
    _lease(again, 3, serial=1, term=3)
    assert again.handle_scan(make_token("E11")).granted
    assert again.handle_scan(make_token("E12")).reason == Reason.LEASE_EXHAUSTED


def test_an_ack_of_a_lower_term_releases_nothing(agents, make_token):  # noqa: F811
    entry = agents()
    _lease(entry, 5, serial=1, term=4)
    for i in range(3):
        assert entry.handle_scan(make_token(f"A{i}")).granted
    ack = entry.topics.ack(GATE)
    feed(entry, ack, wire.Ack(entry.outbox.epoch, 3, term=3))
    assert entry.outbox.depth() == 3  # kept: the old counter may not have committed them
    feed(entry, ack, wire.Ack(entry.outbox.epoch, 2, term=4))
    assert entry.outbox.depth() == 1


def test_wire_carries_the_term():
    lease = wire.Lease(GATE, DAY, {"nef": 1}, 1, term=7)
    assert wire.parse_lease(lease.to_json()).term == 7
    assert wire.parse_ack(wire.Ack("k3f9a2", 4, term=7).to_json()).term == 7
    assert wire.parse_ack(wire.Ack("k3f9a2", 4).to_json()).term is None
    assert not wire.parse_ack(b'{"v":1,"epoch":"k3f9a2","seq":1,"term":0}')
