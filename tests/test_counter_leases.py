"""Capacity leases: the pure planner (property tests) and the leases the core publishes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sesame.common import wire
from sesame.counter import leases as lz
from tests.fixtures.counter import published

GATES = ["a", "b", "c", "d"]


@st.composite
def zone_states(draw):
    cap = draw(st.integers(1, 300))
    occ = draw(st.integers(-20, cap))
    leases, demand = {}, {}
    room = cap - max(0, occ)
    for g in GATES:
        spent = draw(st.integers(0, 200))
        out = draw(st.integers(0, max(0, room)))
        room -= out
        grant = spent + out - draw(st.integers(0, out))  # a pending reclaim: grant < exposure
        leases[g] = lz.GateLease(g, "d", serial=draw(st.integers(0, 5)),
                                 grants={"z": grant}, exposure={"z": spent + out})  # fmt: skip
        demand[g] = lz.Demand(
            spent=spent, rate=draw(st.floats(0, 300)), online=draw(st.booleans()),
            reported_back=draw(st.booleans()),
        )  # fmt: skip
    pol = {"initial": draw(st.integers(1, 50)), "max_per_gate": draw(st.integers(1, 200)),
           "low_water": draw(st.integers(0, 10))}  # fmt: skip
    return cap, occ, leases, demand, pol, draw(st.booleans())


def _load(cap, occ, leases, demand):
    return max(0, occ) + sum(lz.outstanding(leases[g], "z", demand[g].spent) for g in leases)


@settings(max_examples=300, deadline=None)
@given(zone_states())
def test_planning_never_promises_more_than_capacity(state):
    cap, occ, leases, demand, pol, accepting = state
    assert _load(cap, occ, leases, demand) <= cap  # precondition from the strategy
    before = {g: (dict(v.grants), dict(v.exposure)) for g, v in leases.items()}
    plan = lz.plan_zone("z", cap, occ, leases, demand, accepting=accepting, **pol)
    for g, grant in plan.items():
        lz.apply(leases[g], "z", grant)
    assert _load(cap, occ, leases, demand) <= cap
    for g, lease in leases.items():
        old_grant, old_exposure = before[g][0]["z"], before[g][1]["z"]
        # exposure only falls on confirmation, never by planning
        assert lease.exposure["z"] >= old_exposure
        if lease.grants["z"] < old_grant:  # a reclaim: only from a lane that reported back
            assert demand[g].reported_back
        if lease.grants["z"] > old_grant:  # a top-up: only online, accepting, within bounds
            assert accepting and demand[g].online
            assert lease.grants["z"] - demand[g].spent <= pol["max_per_gate"]
    # Confirmation lowers exposure to the grant, never below what was spent.
    for lease in leases.values():
        lz.confirm(lease, lease.serial, outbox_empty=True)
        assert lease.exposure["z"] == lease.grants["z"]


def test_busy_lanes_get_more_than_idle_ones():
    leases = {g: lz.GateLease(g, "d") for g in ("busy", "idle")}
    demand = {"busy": lz.Demand(rate=60.0), "idle": lz.Demand(rate=0.0)}
    plan = lz.plan_zone("z", 1000, 0, leases, demand, initial=20, max_per_gate=200, low_water=5)
    assert plan == {"busy": 120, "idle": 20}
    # Scarce room is shared in proportion to need, and never overshoots.
    plan = lz.plan_zone("z", 70, 0, leases, demand, initial=20, max_per_gate=200, low_water=5)
    assert sum(plan.values()) == 70 and plan["busy"] > plan["idle"] > 0


def test_offline_lane_keeps_its_allowance_reserved_until_it_reports_back():
    lease = lz.GateLease("g", "d", serial=3, grants={"z": 50}, exposure={"z": 50})
    other = lz.GateLease("h", "d", serial=1)
    leases = {"g": lease, "h": other}
    offline = {"g": lz.Demand(spent=10, online=False), "h": lz.Demand(rate=100.0)}
    plan = lz.plan_zone("z", 60, 0, leases, offline, initial=20, max_per_gate=200, low_water=5)
    assert plan == {"h": 20}  # 60 - 40 reserved for g
    back = {"g": lz.Demand(spent=10, reported_back=True), "h": lz.Demand(rate=100.0, spent=20)}
    lz.apply(other, "z", 20)
    plan = lz.plan_zone("z", 60, 0, leases, back, initial=20, max_per_gate=200, low_water=5)
    # Room is scarce (60 left in all, targets 20 + 200): each lane's target shrinks to its
    # share of the 60, and g, back and idle, is lowered to its share of 5.
    assert plan == {"g": 10 + 5, "h": 20 + 20}  # h gets all the room there is now
    lz.apply(lease, "z", plan["g"])
    lease.serial = 4  # the caller publishes the change under a new serial
    assert lease.exposure["z"] == 50  # still reserved until the lane confirms
    assert not lz.confirm(lease, 3, outbox_empty=True)  # an older serial is no confirmation
    assert not lz.confirm(lease, 4, outbox_empty=False)
    assert lz.confirm(lease, 4, outbox_empty=True) and lease.exposure["z"] == 15


def test_exits_are_never_leased_and_open_zones_are(small_venue, make_core):
    """An open-policy zone (the roof) is leased too: its capacity holds while its lanes are
    online; the policy only lets a cut-off lane admit without its allowance."""
    assert lz.leased_lanes(small_venue) == {
        "in-1": ["hall"], "in-2": ["hall"], "annex-in": ["annex"], "roof-up": ["roof"],
    }  # fmt: skip
    assert lz.returning_zones(small_venue)["hall"] == {"annex", "roof"}
    core = make_core()
    core.handle([(wire.Topics("testhall").gate_status("in-1"),
                  wire.GateStatus(gate="in-1", online=True, ts=_day1()).to_json())])  # fmt: skip
    outs = core.startup()
    leases = {k.split("/")[-2]: wire.parse_lease(v) for k, v in published(outs, "lease").items()}
    assert set(leases) == {"in-1", "in-2", "annex-in", "roof-up"}
    assert leases["in-1"].grants == {"hall": 4} and leases["roof-up"].grants == {"roof": 4}
    assert leases["in-1"].day == "2018-11-22"


def _day1():
    from tests.fixtures.counter import DAY1

    return DAY1


def test_core_tops_up_lanes_that_obey_until_the_zone_is_exactly_full(make_core, lanes):
    core = make_core()
    t = wire.Topics("testhall")
    core.handle([(t.gate_status("in-1"),
                  wire.GateStatus(gate="in-1", online=True, ts=_day1()).to_json())])  # fmt: skip
    grants = {g: 0 for g in ("in-1", "in-2")}
    used = dict.fromkeys(grants, 0)

    def take(outs):
        for _topic, payload in published(outs, "lease").items():
            le = wire.parse_lease(payload)
            if le.gate in grants:
                grants[le.gate] = le.grants["hall"]

    take(core.startup())
    assert grants == {"in-1": 4, "in-2": 4}
    for _ in range(60):
        for g in grants:  # each lane grants only within its lease
            if used[g] < grants[g]:
                used[g] += 1
                take(core.handle([lanes.event(g)]))
    assert core.book.live("hall") == 30 == sum(used.values())
    assert all(grants[g] == used[g] for g in grants)  # nothing left promised past capacity
    # People leave: room comes back and lanes are topped up again.
    for _ in range(5):
        take(core.handle([lanes.event("out-1")]))
    assert 0 < sum(grants.values()) - sum(used.values()) <= 5


def test_people_in_sub_zones_keep_room_in_the_parent(make_core, lanes):
    core = make_core()
    for _ in range(6):
        core.handle([lanes.event("in-1")])
        core.handle([lanes.event("annex-in")])
    # 6 in the annex may walk back to the hall at any moment: hall room = 30 - 0 - 6.
    assert core.desk.committed_load("hall") == 6
    day = core.book.current
    out = sum(
        lz.outstanding(core.leases[g], "hall", core.passages[day].get(g, 0))
        for g in ("in-1", "in-2")
    )
    assert core.desk.committed_load("hall") + out <= 30


def test_idle_lane_allowance_is_reclaimed_so_a_busy_lane_fills_the_zone(make_core, lanes):
    core = make_core()
    t = wire.Topics("testhall")
    lane_serial = {}

    def status(g, outbox=0):
        st = wire.GateStatus(gate=g, online=True, outbox=outbox, ts=_day1(),
                             lease_serial=lane_serial.get(g))  # fmt: skip
        return (t.gate_status(g), st.to_json())

    grants = {"in-1": 0, "in-2": 0}

    def take(outs):
        for payload in published(outs, "lease").values():
            le = wire.parse_lease(payload)
            if le.gate in grants:
                grants[le.gate], lane_serial[le.gate] = le.grants["hall"], le.serial

    take(core.handle([status("in-1")]))
    take(core.startup())
    used = 0
    for _ in range(200):  # only in-1 has visitors; in-2 confirms each lease it gets
        if used < grants["in-1"]:
            used += 1
            take(core.handle([lanes.event("in-1")]))
        take(core.handle([status("in-2")]))
        if core.book.live("hall") == 30:
            break
    assert core.book.live("hall") == 30 == used
    assert grants["in-2"] < 4  # its idle allowance went to the busy lane
