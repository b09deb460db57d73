"""Physical plausibility: a lane's passages beyond what its turnstile can pass in a minute of
event time are held (stored, not counted, IMPLAUSIBLE_RATE), a burst whole; a backlog spread
in event time passes in any order; a safety officer accepts or rejects the held passages on
control/decisions, applied once by id, audited, kept across a restart."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sesame.common import wire
from sesame.common.turnstiles import lane_max_per_minute
from sesame.common.venue import ConfigError, parse_venue
from sesame.common.wire.decisions import Decision, parse_decision
from sesame.counter.plausibility import WINDOW_S, RateWindows
from tests.fixtures.counter import DAY1, Lanes, all_findings, published, small_venue_dict

NOON = DAY1.replace(hour=12)


def counter_clock():
    """The counter's own time (the venue's only time): just after the bursts below, so every
    passage of these tests is placed at its own stamp (a late delivery, not a lying clock)."""
    return NOON + timedelta(seconds=30)


def held_by_definition(times: list[float], limit: int) -> set[int]:
    """Every passage in a 60 s window holding more than `limit` (brute force)."""
    held: set[int] = set()
    for a in times:
        inside = [i for i, x in enumerate(times) if a <= x < a + WINDOW_S]
        if len(inside) > limit:
            held.update(inside)
    return held


def run(times: list[float], order: list[int], limit: int) -> set[int]:
    w: RateWindows[int] = RateWindows()
    held: set[int] = set()
    for i in order:
        h, retro = w.add("d", "g", times[i], i, limit)
        if h:
            held.add(i)
        held.update(retro)
    return held


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 400), min_size=1, max_size=60),
    st.integers(1, 8),
    st.randoms(use_true_random=False),
)
def test_the_held_passages_are_the_overflowing_windows_whatever_the_order(secs, limit, rnd):
    times = [float(s) for s in secs]
    order = list(range(len(times)))
    rnd.shuffle(order)
    assert run(times, order, limit) == held_by_definition(times, limit)


def test_a_spread_backlog_passes_and_a_burst_is_held_whole():
    limit = 41
    honest = [i * 2.0 for i in range(600)]  # 30 a minute for 20 minutes
    order = list(range(len(honest)))
    random.Random(1).shuffle(order)  # drained out of order after an outage
    assert run(honest, order, limit) == set()
    # 2,000 in ten seconds after ten honest ones: the honest ones within the minute before
    # are held with the burst (they share its window), those further back stay counted
    times = [i * 10.0 for i in range(10)] + [130 + i * 0.005 for i in range(2000)]
    held = run(times, list(range(len(times))), limit)
    assert held == held_by_definition(times, limit)
    assert held == set(range(8, 2010))  # 80 s and 90 s share the window [80, 140)


def test_lane_rates_come_from_the_kind_or_the_venue_file(small_venue):
    assert lane_max_per_minute(small_venue.gates["in-1"]) == 40  # tripod
    d = small_venue_dict()
    d["gates"]["out-1"]["max_per_minute"] = 90
    d["gates"]["in-2"]["kind"] = "door"
    v = parse_venue(d)
    assert lane_max_per_minute(v.gates["out-1"]) == 90
    assert lane_max_per_minute(v.gates["in-2"]) == 120
    for bad in (0, 601, "fast", 1.5):
        d["gates"]["out-1"]["max_per_minute"] = bad
        with pytest.raises(ConfigError, match="max_per_minute"):
            parse_venue(d)


# -- the counter ----------------------------------------------------------------------------


def big_venue():
    d = small_venue_dict()
    d["zones"]["hall"]["capacity"] = 5000
    return parse_venue(d)


def fill(core, lanes: Lanes, n: int) -> None:
    """n people in through in-1 and in-2, one every 3 s per lane (plausible)."""
    t = NOON - timedelta(hours=1)
    batch = []
    for i in range(n):
        gate = "in-1" if i % 2 else "in-2"
        batch.append(lanes.event(gate, ts=t + timedelta(seconds=3 * (i // 2))))
    core.handle(batch)


def burst(lanes: Lanes, n: int, gate: str = "out-1", start=NOON, spread_s=10.0):
    step = spread_s / n
    return [lanes.event(gate, ts=start + timedelta(seconds=i * step)) for i in range(n)]


def decision(action, gate="out-1", count=None, by="officer1", did=None) -> tuple[str, bytes]:
    d = Decision(id=did or uuid.uuid4().hex, action=action, gate=gate, by=by, ts=NOON,
                 count=count)  # fmt: skip
    return wire.Topics("testhall").decisions(), d.to_json()


def findings(core) -> dict[tuple[str, str], wire.Finding]:
    return {(a.kind, a.subject): a for a in all_findings(core)}


def hall(core) -> int:
    return core.occupancy("hall").occupancy


def test_2000_exits_in_ten_seconds_leave_the_count_unchanged_and_show_as_held(make_core, tmp_path):
    venue = big_venue()
    core = make_core(venue, clock=counter_clock)
    lanes = Lanes(venue)
    fill(core, lanes, 600)
    assert hall(core) == 600
    b = burst(lanes, 2000)
    outs = []
    for i in range(0, 2000, 250):  # as the broker delivers them: several batches
        outs += core.handle(b[i : i + 250])
        assert hall(core) == 600
    f = findings(core)[("IMPLAUSIBLE_RATE", "out-1")]
    assert f.count == 2000 and f.detail["max_per_minute"] == 40
    kinds = dict(core.store.conn.execute(
        "SELECT kind, count(*) FROM events WHERE gate = 'out-1' GROUP BY kind"))  # fmt: skip
    assert kinds == {"held": 2000}
    # every one acknowledged: the lane's outbox drains, nothing is re-sent for ever
    [ack] = published(outs, "ack").values()
    assert wire.parse_ack(ack).seq == 2000
    # the export counts no held passage
    from sesame.counter.queries import zone_occupancy

    occ = {r["zone"]: r["occupancy"] for r in zone_occupancy(tmp_path / "counter.db", venue)}
    assert occ["hall"] == 600
    # and Prometheus sees them (docs/metrics.md)
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from sesame.counter.metrics import CounterMetrics

    m = CounterMetrics(lambda: core, tmp_path / "counter.db")
    text = generate_latest(m.registry).decode()
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for f in text_string_to_metric_families(text) for s in f.samples}  # fmt: skip
    assert got[("sesame_counter_held_passages", (("gate", "out-1"),))] == 2000
    assert got[("sesame_counter_held_total", (("gate", "out-1"),))] == 2000
    assert got[("sesame_counter_held_passages", (("gate", "in-1"),))] == 0


def test_an_officer_rejects_or_accepts_once_even_when_the_decision_comes_twice(make_core, tmp_path):
    venue = big_venue()
    core = make_core(venue, clock=counter_clock)
    lanes = Lanes(venue)
    fill(core, lanes, 600)
    core.handle(burst(lanes, 100, spread_s=5))  # 100 exits in 5 s: all held
    assert hall(core) == 600 and findings(core)[("IMPLAUSIBLE_RATE", "out-1")].count == 100
    accept = decision("accept_held", count=60)
    outs = core.handle([accept])
    assert hall(core) == 540  # the 60 oldest holds count now
    assert wire.parse_occupancy(published(outs, "occupancy")[
        wire.Topics("testhall").occupancy("hall")]).occupancy == 540  # fmt: skip
    assert findings(core)[("IMPLAUSIBLE_RATE", "out-1")].count == 40
    core.handle([accept, accept])  # delivered again (QoS 1, a second dashboard...)
    assert hall(core) == 540
    # a restart keeps the count, the holds, and the decisions already applied
    core = make_core(venue, db=tmp_path / "counter.db", clock=counter_clock)
    assert hall(core) == 540
    assert findings(core)[("IMPLAUSIBLE_RATE", "out-1")].count == 40
    core.handle([accept])
    assert hall(core) == 540
    reject = decision("reject_held")
    core.handle([reject, reject])
    assert hall(core) == 540 and ("IMPLAUSIBLE_RATE", "out-1") not in findings(core)
    core = make_core(venue, db=tmp_path / "counter.db", clock=counter_clock)
    assert hall(core) == 540 and ("IMPLAUSIBLE_RATE", "out-1") not in findings(core)
    rows = core.store.conn.execute(
        "SELECT state, count(*) FROM held_passages GROUP BY state").fetchall()  # fmt: skip
    assert dict(rows) == {"accepted": 60, "rejected": 40}
    audit = core.store.conn.execute(
        "SELECT who, action, detail FROM audit WHERE action LIKE '%_held'").fetchall()  # fmt: skip
    assert [(w, a) for w, a, _ in audit] == [("officer1", "accept_held"),
                                            ("officer1", "reject_held")]  # fmt: skip
    assert '"passages": 60' in audit[0][2] and '"passages": 40' in audit[1][2]
    # a decision with nothing left to decide is recorded as stale and changes nothing
    core.handle([decision("accept_held")])
    assert hall(core) == 540
    assert core.store.conn.execute(
        "SELECT outcome FROM decisions ORDER BY applied_at DESC LIMIT 1").fetchone() == ("stale",)


def test_passages_counted_before_a_burst_showed_are_held_with_it_across_a_restart(
    make_core, tmp_path
):  # fmt: skip
    venue = big_venue()
    core = make_core(venue, clock=counter_clock)
    lanes = Lanes(venue)
    fill(core, lanes, 100)
    b = burst(lanes, 200, spread_s=4)
    core.handle(b[:30])  # plausible so far: counted
    assert hall(core) == 70
    # a restart between the two halves
    core = make_core(venue, db=tmp_path / "counter.db", clock=counter_clock)
    core.handle(b[30:])
    assert hall(core) == 100
    assert findings(core)[("IMPLAUSIBLE_RATE", "out-1")].count == 200
    core = make_core(venue, db=tmp_path / "counter.db", clock=counter_clock)
    assert hall(core) == 100
    core.handle([decision("accept_held")])
    assert hall(core) == 0
    core = make_core(venue, db=tmp_path / "counter.db", clock=counter_clock)
    assert hall(core) == 0 and core.book.raw("hall") == -100


def test_a_group_sharing_a_timestamp_passes(make_core):
    d = small_venue_dict(initial=40, max_per_gate=100, low_water=32)
    d["zones"]["hall"]["capacity"] = 5000
    venue = parse_venue(d)
    core = make_core(venue, clock=counter_clock)
    lanes = Lanes(venue)
    # a class of 32 at one instant, then the lane's full rate for the rest of the minute
    same = [lanes.event("in-1", ts=NOON, group_size=32) for _ in range(32)]
    rest = [lanes.event("in-1", ts=NOON + timedelta(seconds=1.4 * (i + 1))) for i in range(40)]
    core.handle(same + rest)
    assert hall(core) == 72 and not findings(core)
    core.handle([lanes.event("in-1", ts=NOON + timedelta(seconds=59))])  # one too many
    assert hall(core) == 0 and findings(core)[("IMPLAUSIBLE_RATE", "in-1")].count == 73


def test_decisions_are_hostile_input():
    good = Decision(id="d" * 16, action="accept_held", gate="out-1", by="o", ts=NOON, count=3)
    assert parse_decision(good.to_json()) == good
    for raw in [
        b"{", b"[]", b'{"v":1}',
        good.to_json().replace(b"accept_held", b"delete_all"),
        good.to_json().replace(b'"count":3', b'"count":0'),
        good.to_json().replace(b'"count":3', b'"count":true'),
        good.to_json().replace(b'"gate":"out-1"', b'"gate":"../x"'),
        good.to_json().replace(b'"id":"dddddddddddddddd"', b'"id":"x"'),
        good.to_json().replace(b'"by":"o"', b'"by":""'),
        Decision(id="e" * 16, action="confirm_epoch", gate="in-1", by="o", ts=NOON).to_json(),
        Decision(id="e" * 16, action="reject_held", gate="in-1", by="o", ts=NOON,
                 epoch="e2").to_json(),  # fmt: skip
    ]:
        assert not parse_decision(raw), raw


def test_a_bad_decision_is_quarantined_and_a_gate_may_not_name_another_venue(make_core):
    core = make_core()
    topic = wire.Topics("testhall").decisions()
    core.handle([(topic, b"not json"), decision("accept_held", gate="nowhere")])
    reasons = [r for (r,) in core.store.conn.execute("SELECT reason FROM quarantine")]
    assert len(reasons) == 2 and "unknown gate" in reasons[1]

