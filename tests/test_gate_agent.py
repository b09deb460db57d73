"""The gate agent in-process, without a broker: offline deciding, lease spending, bad input,
the turnstile's answer, the clock check and state restored from disk after a reboot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sesame.common import wire
from sesame.common.reasons import Reason
from sesame.gate.agent import GateAgent
from sesame.gate.turnstile import MemoryTurnstile
from tests.fixtures.gate import FakeClock, paris


@pytest.fixture
def agents(gp_venue, badge_keys, tmp_path, gate_clock):
    made = []

    def make(gate="churchill-in-1", **kw):
        kw.setdefault("data_dir", tmp_path / "data")
        kw.setdefault("clock", gate_clock)
        kw.setdefault("turnstile", MemoryTurnstile())
        a = GateAgent(gp_venue, gate, keys=badge_keys, **kw)
        made.append(a)
        return a

    yield make
    for a in made:
        if a.state == "running":
            a.stop()


def feed(agent, topic, msg, retained=True):
    agent.on_message(topic, msg.to_json() if hasattr(msg, "to_json") else msg, retained)


def lease(agent, n, day="2018-11-22", serial=1, zone="nef"):
    feed(
        agent, agent.topics.lease(agent.gate_id), wire.Lease(agent.gate_id, day, {zone: n}, serial)
    )


def events(agent):
    return [wire.parse_event(b) for _, b in agent.outbox.pending(0, 100_000)]


def test_offline_ten_minutes_with_lease_20(agents, make_token, gate_clock):
    # a broker that is not there: the lane decides on its own
    entry = agents(broker_url="mqtt://127.0.0.1:9")
    out = agents("churchill-out-1", broker_url="mqtt://127.0.0.1:9")
    entry.start()
    out.start()
    lease(entry, 20)
    results = []
    for i in range(30):  # one visitor every 20 s: 10 simulated minutes
        results.append(entry.handle_scan(make_token(f"V{i:04d}")))
        if i % 3 == 0:  # people keep leaving through the reader-less exit
            out.anonymous_pass()
            assert out.handle_scan(make_token(f"V{i:04d}")).granted
        gate_clock.advance(seconds=20)
    granted = [r for r in results if r.granted]
    assert len(granted) == 20 and all(r.granted for r in results[:20])
    assert {r.reason for r in results[20:]} == {Reason.LEASE_EXHAUSTED}
    assert not entry.online and entry.outbox_depth() == 30
    kinds = [e.kind for e in events(entry)]
    assert kinds.count("passage") == 20 and kinds.count("denied") == 10
    assert [e.seq for e in events(entry)] == list(range(1, 31))
    assert out.outbox_depth() == 20 and all(e.kind == "passage" for e in events(out))
    # more allowance from the counter (cumulative) lets exactly that many more in
    lease(entry, 22, serial=2)
    assert entry.handle_scan(make_token("W1")).granted
    assert entry.handle_scan(make_token("W2")).granted
    assert entry.handle_scan(make_token("W3")).reason == Reason.LEASE_EXHAUSTED
    # a stale copy of an older lease is ignored
    lease(entry, 5, serial=1)
    assert entry.lease.grants["nef"] == 22


def test_no_lease_no_entry_but_open_zone_and_exits_are_free(agents, make_token):
    assert agents().handle_scan(make_token()).reason == Reason.LEASE_EXHAUSTED
    assert agents("balcons-up-1").handle_scan(make_token()).granted  # offline_policy "open"
    a = agents("clemenceau-in-1")
    lease(a, 50, day="2018-11-21")  # yesterday's lease is no allowance today
    assert a.handle_scan(make_token()).reason == Reason.LEASE_EXHAUSTED


def test_an_open_zone_keeps_to_its_lease_while_online_only(agents, make_token, monkeypatch):
    """offline_policy "open" says what a cut-off lane does (admit, count later); online, the
    balconies' capacity holds through the lease like any zone's."""
    from sesame.gate.agent import GateAgent

    a = agents("balcons-up-1")
    lease(a, 2, zone="balcons")
    monkeypatch.setattr(GateAgent, "online", property(lambda self: True))
    a.counter = wire.CounterStatus(online=True)  # the counter's retained status
    assert a.handle_scan(make_token("O1")).granted
    assert a.handle_scan(make_token("O2")).granted
    assert a.handle_scan(make_token("O3")).reason == Reason.LEASE_EXHAUSTED
    a.counter = wire.CounterStatus(online=False)  # the counter's Will: it died
    assert a.handle_scan(make_token("O4")).granted
    a.counter = wire.CounterStatus(online=True)
    assert a.handle_scan(make_token("O5")).reason == Reason.LEASE_EXHAUSTED
    monkeypatch.setattr(GateAgent, "online", property(lambda self: False))  # cut off
    assert a.handle_scan(make_token("O6")).granted


@pytest.mark.parametrize(
    "text,reason",
    [
        ("\ufffd\ufffd\x00\x7f\ufffdgarbage", Reason.MALFORMED),  # non-UTF-8 serial bytes
        ("X" * 5000, Reason.MALFORMED),
        ("https://www.grandpalais.fr/billet?id=42", Reason.MALFORMED),
        (None, Reason.BAD_SIGNATURE),  # filled in below: a flipped byte
        (None, Reason.UNKNOWN_KEY),  # filled in below: another venue's key
    ],
)
def test_bad_input_is_denied_recorded_and_the_lane_goes_on(agents, make_token, text, reason):
    if reason == Reason.BAD_SIGNATURE:
        tok = make_token()
        i = len(tok) - 10
        text = tok[:i] + ("A" if tok[i] != "A" else "B") + tok[i + 1 :]
    elif reason == Reason.UNKNOWN_KEY:
        text = make_token(key=Ed25519PrivateKey.generate())
    a = agents()
    lease(a, 5)
    d = a.handle_scan(text)
    assert not d.granted and d.reason == reason
    (ev,) = events(a)
    assert ev.kind == "denied" and ev.reason == reason and ev.badge is None
    assert a.handle_scan(make_token()).granted


def test_nobody_pushing_annuls_the_grant(agents, make_token):
    ts = MemoryTurnstile(pushes=False)
    a = agents(turnstile=ts)
    lease(a, 1)
    d = a.handle_scan(make_token())
    assert not d.granted and d.reason == Reason.NO_PASSAGE and d.passages == 0
    assert [e.kind for e in events(a)] == ["denied"]
    ts.pushes = True  # the lease was not spent, the badge not marked inside
    assert a.handle_scan(make_token()).granted


def test_group_badge_counts_confirmed_passages(agents, make_token):
    pushes = iter([True, True, True, False])
    a = agents("clemenceau-in-1", turnstile=MemoryTurnstile(lambda d: next(pushes)))
    lease(a, 10)
    d = a.handle_scan(make_token("G7", "school", group=5))
    assert d.granted and d.passages == 3
    evs = events(a)
    assert [e.kind for e in evs] == ["passage"] * 3 + ["denied"]
    assert all(e.group_size == 5 and e.badge == "G7" for e in evs)
    assert evs[-1].reason == Reason.NO_PASSAGE
    assert a.lease_left("nef", evs[0].ts.date()) == 7
    assert a.handle_scan(make_token("G8", "school", group=8)).reason == Reason.LEASE_EXHAUSTED


def test_antipassback_from_the_lanes_own_memory(agents, make_token, gate_clock):
    a = agents()
    lease(a, 10)
    assert a.handle_scan(make_token()).granted
    gate_clock.advance(minutes=2)
    assert a.handle_scan(make_token()).reason == Reason.ALREADY_INSIDE
    gate_clock.advance(minutes=40)
    assert a.handle_scan(make_token()).granted


def test_reboot_while_offline_decides_the_same(agents, make_token, tmp_path):
    a = agents()
    lease(a, 3)
    for topic, payload in wire.Revocations(("R1",)).messages(a.topics):  # as the admin does
        feed(a, topic, payload)
    feed(a, a.topics.zone_control("salon-honneur"), wire.ZoneControl("closed"))
    assert a.handle_scan(make_token()).granted
    a.stop()
    b = agents()  # same data dir, no broker
    assert b.handle_scan(make_token("R1")).reason == Reason.REVOKED
    assert b.handle_scan(make_token("B2")).granted
    assert b.handle_scan(make_token("B3")).granted
    assert b.handle_scan(make_token("B4")).reason == Reason.LEASE_EXHAUSTED
    assert b.handle_scan(make_token()).reason == Reason.ALREADY_INSIDE
    assert b.zone_states()["salon-honneur"] == "closed"


def test_malformed_retained_values_are_ignored(agents, make_token):
    a = agents()
    lease(a, 2)
    for topic in (
        a.topics.lease("churchill-in-1"),
        a.topics.venue_control(),
        a.topics.revoked("00"),
        a.topics.occupancy("nef"),
        a.topics.counter_status(),
    ):
        a.on_message(topic, b"\xff\xfe not json", True)
        a.on_message(topic, b'{"v":1,"mode":"party","grants":7}', True)
    # a lease for another gate is not ours
    feed(
        a, a.topics.lease("churchill-in-1"), wire.Lease("churchill-in-2", "2018-11-22", {"nef": 99})
    )
    assert a.bad_messages == 11
    assert a.lease.grants == {"nef": 2} and a.venue_mode == "normal"
    assert a.handle_scan(make_token()).granted


def test_evacuation_holds_the_exit_free_and_records_pulses(agents, make_token):
    ts = MemoryTurnstile()
    out = agents("churchill-out-1", turnstile=ts, heartbeat=0.05)
    entry = agents()
    lease(entry, 10)
    for a in (out, entry):
        feed(a, a.topics.venue_control(), wire.VenueControl("evacuation"))
    out.start()
    for _ in range(3):
        ts.push_pulse("out")
    deadline = datetime.now().timestamp() + 5
    while (not ts.free or out.outbox_depth() < 3) and datetime.now().timestamp() < deadline:
        import time

        time.sleep(0.02)
    assert ts.free
    assert [(e.kind, e.badge, e.to_zone) for e in events(out)] == [("passage", None, "outside")] * 3
    assert entry.handle_scan(make_token()).reason == Reason.EVACUATION
    feed(out, out.topics.venue_control(), wire.VenueControl("normal"))
    deadline = datetime.now().timestamp() + 5
    while ts.free and datetime.now().timestamp() < deadline:
        import time

        time.sleep(0.02)
    assert not ts.free


def test_implausible_clock_is_flagged_and_corrected(agents, make_token, gp_venue):
    clock = FakeClock(datetime(1970, 1, 1, 0, 5, tzinfo=UTC))  # a board without RTC
    a = agents(clock=clock)
    assert "CLOCK_IMPLAUSIBLE" in a.faults()
    lease(a, 5)
    # the counter's retained clock is taken since our own is impossible
    true_now = paris(2018, 11, 22, 12)
    feed(a, a.topics.counter_status(), wire.CounterStatus(True, clock=true_now))
    assert "CLOCK_IMPLAUSIBLE" in a.faults()  # still shown: staff should fix the board
    d = a.handle_scan(make_token())
    assert d.granted  # decided with the corrected time (opening hours of Thursday)
    (ev,) = events(a)
    assert ev.ts == true_now
    assert ev.gate_ts == datetime(1970, 1, 1, 0, 5, tzinfo=UTC)
    assert ev.clock_offset_ms == int((true_now - ev.gate_ts) / timedelta(milliseconds=1))


def test_live_counter_clock_far_away_is_flagged(agents, make_token, gate_clock):
    a = agents()
    assert a.faults() == []
    feed(
        a,
        a.topics.counter_status(),
        wire.CounterStatus(True, clock=gate_clock() + timedelta(minutes=10)),
        retained=True,
    )
    assert a.clock.read().offset_ms is None  # a retained copy may be old: not trusted
    feed(
        a,
        a.topics.counter_status(),
        wire.CounterStatus(True, clock=gate_clock() + timedelta(minutes=10)),
        retained=False,
    )
    assert "CLOCK_IMPLAUSIBLE" in a.faults()
    assert a.clock.read().best == gate_clock() + timedelta(minutes=10)
    # the simulator replays old days and turns the counter clock check off
    b = agents("churchill-in-2", trust_counter_clock=False)
    feed(
        b,
        b.topics.counter_status(),
        wire.CounterStatus(True, clock=gate_clock() + timedelta(days=3000)),
        retained=False,
    )
    assert b.faults() == [] and b.clock.read().best == gate_clock()


def test_locked_lane_or_silent_controller_denies_entries_not_exits(agents, make_token):
    ts = MemoryTurnstile()
    a = agents(turnstile=ts)
    lease(a, 10)
    a.locked = True
    assert a.handle_scan(make_token()).reason == Reason.GATE_LOCKED
    a.locked = False
    ts.health = "silent"
    assert a.handle_scan(make_token()).reason == Reason.GATE_LOCKED
    assert "CONTROLLER_SILENT" in a.faults()
    assert ts.openings == []  # nothing was opened
    out = agents("churchill-out-1", turnstile=MemoryTurnstile())
    out.locked = True
    assert out.handle_scan(None).granted


def test_a_lease_counted_against_another_outbox_grants_nothing(agents, make_token):
    """A lane whose outbox was replaced (new epoch, entries counted from 0) must not spend a
    lease written for its old outbox: that would admit the same allowance twice."""
    entry = agents()
    mine = entry.outbox.epoch
    feed(
        entry,
        entry.topics.lease("churchill-in-1"),
        wire.Lease("churchill-in-1", "2018-11-22", {"nef": 5}, 1, epoch="old-card"),
    )
    assert entry.handle_scan(make_token("E1")).reason == Reason.LEASE_EXHAUSTED
    feed(
        entry,
        entry.topics.lease("churchill-in-1"),
        wire.Lease("churchill-in-1", "2018-11-22", {"nef": 1}, 2, epoch=mine),
    )
    assert entry.handle_scan(make_token("E2")).granted
    assert entry.handle_scan(make_token("E3")).reason == Reason.LEASE_EXHAUSTED
