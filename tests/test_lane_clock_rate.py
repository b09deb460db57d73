"""A replay's clock runs faster than real time: a lane's status held up half a real second
behind the counter's commit is minutes of replayed time, and must not read as a lying clock
(it did: `sesame demo --speed 600` showed CLOCK_BEHIND on nine healthy lanes within a
minute). On the real clock the tolerance stays about two minutes, and a lying clock is
still flagged in a replay (sesame/counter/lane_clocks.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from sesame.counter.findings import Findings
from sesame.counter.lane_clocks import DELIVERY_S, TOLERANCE_S, ClockRate, LaneClocks

T0 = 1_543_000_000.0  # some afternoon of the event


def _rate(steps: list[tuple[float, float]]) -> float:
    r = ClockRate()
    for mono, t in steps:
        r.update(mono, t)
    return r.rate


def test_the_real_clock_runs_at_one():
    assert _rate([(i * 0.2, T0 + i * 0.2) for i in range(40)]) == 1.0


def test_a_replay_runs_at_its_speed():
    rate = _rate([(i * 0.05, T0 + i * 0.05 * 600) for i in range(200)])
    assert 550 < rate <= 600


def test_one_jump_of_the_clock_is_not_speed():
    # a test or a replay setting its clock an hour on, otherwise still
    steps = [(i * 0.1, T0) for i in range(10)] + [(1.0 + i * 0.1, T0 + 3600) for i in range(10)]
    assert _rate(steps) == 1.0


def _judge(rate: float, skews: list[float]) -> dict[str, float]:
    f = Findings()
    clocks = LaneClocks(f, T0 - 86_400 * 10)
    clocks.follow_rate(rate)
    now = T0
    for skew in skews:  # statuses every 5 s of lane time, `skew` behind or ahead
        now += 5 * rate
        clocks.status("in-1", datetime.fromtimestamp(now + skew, UTC), now)
    return {a.kind: a.detail["skew_s"] for a in f.alerts()}


def test_statuses_late_by_a_real_half_second_in_a_fast_replay_are_no_clock_fault():
    assert _judge(600, [-0.5 * 600] * 300) == {}  # 300 s behind, again and again
    # the same lateness on the real clock would be a lane far behind
    assert "CLOCK_BEHIND" in _judge(1, [-300] * 300)


def test_a_lying_clock_is_still_flagged_in_a_replay():
    tolerance = TOLERANCE_S + DELIVERY_S * 600
    assert _judge(600, [-(tolerance + 3600)] * 300)["CLOCK_BEHIND"] < -3600
    assert _judge(600, [tolerance + 3600])["CLOCK_AHEAD"] > 3600


def test_the_real_clock_keeps_a_two_minute_tolerance():
    assert _judge(1, [-100] * 100) == {}
    assert _judge(1, [125]) == {"CLOCK_AHEAD": 125.0}
