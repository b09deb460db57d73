"""Properties that must hold whatever comes in: decide() never raises and never blocks an
exit; a lane never grants more entries than its lease, whatever the order of scans, lease
updates, group sizes and people who do not push the arm."""

from __future__ import annotations

import tempfile
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sesame.common import wire
from sesame.common.decision import MemoryDict, decide
from sesame.common.reasons import Reason
from sesame.gate.agent import GateAgent
from sesame.gate.turnstile import MemoryTurnstile
from tests.fixtures.gate import FakeClock, paris

NOON = paris(2018, 11, 22, 12)
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    text=st.one_of(
        st.text(max_size=800), st.binary(max_size=800).map(lambda b: b.decode("utf-8", "replace"))
    )
)
def test_any_text_gets_a_reason_and_exits_always_open(gp_venue, badge_keys, text):
    common = dict(
        venue=gp_venue,
        keys=badge_keys,
        revoked=(),
        zone_states={"nef": "full"},
        venue_mode="evacuation",
        lease_left=0,
        memory=MemoryDict(),
        now=NOON,
    )
    d = decide(text, gate=gp_venue.gates["churchill-in-1"], **common)
    assert not d.granted and isinstance(d.reason, Reason) and d.passages == 0
    assert decide(text, gate=gp_venue.gates["churchill-out-1"], **common).granted


step = st.one_of(
    st.tuples(st.just("scan"), st.integers(1, 6), st.booleans()),  # group size, pushes
    st.tuples(st.just("lease"), st.integers(0, 15), st.integers(0, 3)),  # grant, serial step
    st.tuples(st.just("reopen"), st.just(0), st.just(False)),  # reboot of the board
)


@SETTINGS
@given(steps=st.lists(step, min_size=1, max_size=40))
def test_never_beyond_the_lease(gp_venue, badge_keys, make_token, steps):
    clock = FakeClock(NOON)
    with tempfile.TemporaryDirectory() as d:
        ts = MemoryTurnstile()

        def open_agent():
            return GateAgent(
                gp_venue, "clemenceau-in-1", data_dir=d, keys=badge_keys, turnstile=ts, clock=clock
            )

        a = open_agent()
        serial, best_grant, n = 0, 0, 0
        for kind, x, y in steps:
            clock.advance(minutes=1)
            if kind == "lease":
                serial += y
                a.on_message(
                    a.topics.lease("clemenceau-in-1"),
                    wire.Lease("clemenceau-in-1", "2018-11-22", {"nef": x}, serial).to_json(),
                    True,
                )
                if a.lease and a.lease.serial == serial:
                    best_grant = max(best_grant, a.lease.grants["nef"])
            elif kind == "reopen":
                a.outbox.close()
                a = open_agent()
            else:
                n += 1
                ts.pushes = y
                before = a.outbox.entries("nef", NOON.date())
                grant = a.lease.grants["nef"] if a.lease else 0
                dec = a.handle_scan(make_token(f"S{n}", "school", group=x))
                # each grant fits the lease in force when it was given
                assert before + dec.passages <= grant or not dec.granted
                assert dec.granted == (y and before + x <= grant)
            spent = a.outbox.entries("nef", NOON.date())
            # never more people in than the grant the lane acts on (or ever acted on)
            assert spent <= max(best_grant, 0)
            assert a.lease_left("nef", NOON.date()) == max(
                0, (a.lease.grants["nef"] if a.lease else 0) - spent
            )
        a.outbox.close()
    assert clock() - NOON == timedelta(minutes=len(steps))
