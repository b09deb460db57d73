"""The visitor model, the engine and the ground truth, without broker or gates.

The engine is driven here by `LocalDriver`: the real `sesame.common.decision.decide` against exact
occupancy. What the full system does with the same population is tested in
test_e2e_replay.py and test_e2e_chaos.py.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sesame.common.capacity import lease_breaches
from sesame.common.tokens import key_id
from sesame.common.venue import OUTSIDE, load_venue
from sesame.sim import badges as sim_badges
from sesame.sim import model, truth
from sesame.sim.engine import Engine, Passage
from sesame.sim.local import LocalDriver

VENUE = load_venue("config/grand-palais.toml")
THU, SUN = date(2018, 11, 22), date(2018, 11, 25)


@pytest.fixture(scope="module")
def full_population() -> model.Population:
    return model.generate(VENUE, model.Params())


def test_same_seed_same_population_other_seed_differs():
    p = model.Params().scaled(0.05)
    a, b = model.generate(VENUE, p), model.generate(VENUE, p)
    assert [(v.badge, v.legs) for v in a.visits[THU]] == [(v.badge, v.legs) for v in b.visits[THU]]
    c = model.generate(VENUE, model.Params(seed=7).scaled(0.05))
    assert [v.legs[0].at for v in c.visits[THU]] != [v.legs[0].at for v in a.visits[THU]]


def test_head_counts_match_the_parameters(full_population):
    pop = full_population
    visitors = school = 0
    for visits in pop.visits.values():
        for v in visits:
            if v.badge.category in ("public", "professional", "school"):
                visitors += v.party
            if v.badge.category == "school":
                school += v.party
    assert visitors == 40_500
    assert school == 13_300
    # schoolchildren come on the school days (Thursday and Friday) only
    assert {d for d, vs in pop.visits.items() if any(v.badge.category == "school" for v in vs)} == {
        THU,
        date(2018, 11, 23),
    }
    depts = {b.department for b in pop.badges if b.category == "school"}
    assert len(depts) == 55
    groups = [b for b in pop.badges if b.category == "school" and b.group > 1]
    assert groups and all(25 <= b.group <= 30 for b in groups[:-1])
    kinds = Counter(b.bad for b in pop.badges if b.bad)
    assert set(kinds) == set(model.BAD_KINDS)
    assert set(pop.revoked) == {b.id for b in pop.badges if b.bad == "revoked"}


def test_every_plan_starts_with_entry_and_ends_outside_before_closing(full_population):
    for d, visits in full_population.visits.items():
        _, closes = model.day_bounds(VENUE, d)
        for v in visits:
            assert v.legs[0].to == model.main_zone(VENUE)
            assert v.legs[-1].to == OUTSIDE and v.legs[-1].at < closes
            assert all(a.at <= b.at for a, b in zip(v.legs, v.legs[1:], strict=False))


def test_participants_come_before_opening(full_population):
    opens, _ = model.day_bounds(VENUE, THU)
    early = [v for v in full_population.visits[THU] if v.badge.category == "exhibitor"]
    assert early and all(v.legs[0].at < opens for v in early)


def test_sunday_demand_exceeds_the_nef_and_weekdays_do_not(full_population):
    cap = VENUE.zones["nef"].capacity
    peaks = {
        d: max(o for _, o in model.demand_curve(full_population, d, "nef"))
        for d in full_population.visits
    }
    assert peaks[SUN] > cap
    assert all(p < cap for d, p in peaks.items() if d != SUN)


def _keys(key):
    return {key_id(key.public_key()): key.public_key()}


def test_bad_badges_get_their_reason_from_the_real_decision():
    pop = model.generate(VENUE, model.Params(bad_badge_share=0.5).scaled(0.02))
    key = Ed25519PrivateKey.generate()
    tokens = sim_badges.issue(pop, key, [d.date for d in VENUE.days])
    drv = LocalDriver(VENUE, _keys(key), pop.revoked)
    at = model.day_bounds(VENUE, THU)[0] + 3_600_000
    seen = set()
    for b in pop.badges:
        if b.bad and b.days and THU in b.days:
            res = drv.scan("churchill-in-1", tokens[b.id], at, 1)
            assert not res.granted and res.reason == model.BAD_KINDS[b.bad], b
            seen.add(b.bad)
    assert seen == set(model.BAD_KINDS)


def _play(venue, pop, days):
    key = Ed25519PrivateKey.generate()
    tokens = sim_badges.issue(pop, key, [d.date for d in venue.days])
    drv = LocalDriver(venue, _keys(key), pop.revoked)
    out, stats = {}, {}
    for d in days:
        e = Engine(venue, pop, d, tokens, drv, seed=1)
        out[d.isoformat()] = e.run()
        stats[d] = e.stats
    return out, stats


def test_scaled_sunday_queues_at_the_full_nef_and_never_overfills():
    venue = model.scaled_venue(VENUE, 0.1)
    pop = model.generate(venue, model.Params().scaled(0.1))
    passages, stats = _play(venue, pop, [THU, SUN])
    t = truth.ground_truth(venue, passages, pop.badges)
    assert stats[SUN].denied.get("ZONE_FULL", 0) > 0  # queues formed on Sunday
    cap = venue.zones["nef"].capacity
    assert t["days"][THU.isoformat()]["peak_occupancy"]["nef"]["value"] < cap
    assert all(s.exit_refused == 0 for s in stats.values())
    assert (
        lease_breaches(t["over_capacity"]) == {}
    )  # an `open` zone may be listed, a lease one never
    sun = t["days"][SUN.isoformat()]
    assert 0.9 * cap < sun["peak_occupancy"]["nef"]["value"] <= cap
    thu = t["days"][THU.isoformat()]
    # every class got in on a school day, and nobody stayed after closing
    school = sum(v.party for v in pop.visits[THU] if v.badge.category == "school")
    assert thu["schoolchildren"] == school == thu["by_category"]["school"]
    for ps in passages.values():
        occ = Counter()
        for p in ps:
            occ[p.from_zone] -= p.count
            occ[p.to_zone] += p.count
        assert all(occ[z] == 0 for z in venue.zones)


def test_truth_counts_groups_by_size_and_keeps_the_first_peak():
    pop = model.generate(VENUE, model.Params().scaled(0.01))
    school = next(b for b in pop.badges if b.group > 1)
    pub = next(b for b in pop.badges if b.category == "public" and not b.bad)
    t0 = model.day_bounds(VENUE, THU)[0]
    ps = [
        Passage(
            t0, "clemenceau-in-1", OUTSIDE, "nef", school.id, "school", school.group, school.group
        ),
        Passage(t0 + 1000, "churchill-in-1", OUTSIDE, "nef", pub.id, "public", 1),
        Passage(t0 + 2000, "churchill-out-1", "nef", OUTSIDE, None, None, 1),
        Passage(t0 + 3000, "churchill-in-1", OUTSIDE, "nef", pub.id, "public", 1),
        Passage(t0 + 4000, "balcons-up-1", "nef", "balcons", pub.id, "public", 1),
    ]
    day = truth.ground_truth(VENUE, {THU.isoformat(): ps}, pop.badges)["days"][THU.isoformat()]
    assert day["unique_visitors"] == school.group + 1
    assert day["entries"] == school.group + 2
    assert day["by_category"] == {"public": 1, "school": school.group}
    assert day["schoolchildren"] == school.group
    assert day["departements"] == {school.department: school.group}
    assert day["peak_occupancy"]["nef"]["value"] == school.group + 1
    assert day["peak_occupancy"]["nef"]["at"] == truth.iso_ms(t0 + 1000, VENUE)
    assert day["peak_occupancy"]["balcons"]["value"] == 1


def test_params_are_checked():
    with pytest.raises(ValueError):
        model.generate(VENUE, model.Params(visitors=10, schoolchildren=20))
    with pytest.raises(ValueError):
        model.generate(VENUE, model.Params(departements=0))


def test_every_zone_over_capacity_is_reported_with_its_policy():
    """The balconies (`open`: not leased) can go over their capacity, and the truth says so as
    it does for a lease zone; people still inside at closing and the last exit are reported."""
    venue = model.scaled_venue(VENUE, 0.01)  # balconies 8, Nef 110
    pop = model.generate(venue, model.Params().scaled(0.01))
    pub = [b for b in pop.badges if b.category == "public" and not b.bad][:12]
    t0, closes = model.day_bounds(venue, THU)
    ps = [Passage(t0 + i, "churchill-in-1", OUTSIDE, "nef", b.id, "public", 1)
          for i, b in enumerate(pub)]  # fmt: skip
    ps += [Passage(t0 + 100 + i, "balcons-up-1", "nef", "balcons", b.id, "public", 1)
           for i, b in enumerate(pub[:10])]  # fmt: skip
    ps += [Passage(closes + 60_000, "churchill-out-1", "nef", OUTSIDE, None, None, 2)]
    t = truth.ground_truth(venue, {THU.isoformat(): ps}, pop.badges)
    day = t["days"][THU.isoformat()]
    cap = venue.zones["balcons"].capacity
    assert day["over_capacity"] == {
        "balcons": {"peak": 10, "capacity": cap, "offline_policy": "open"}
    }
    assert t["over_capacity"] == {THU.isoformat(): day["over_capacity"]}
    assert lease_breaches(t["over_capacity"]) == {}
    assert day["inside_at_closing"] == {"nef": 2, "salon-honneur": 0, "balcons": 10}
    assert day["last_exit_at"] == truth.iso_ms(closes + 60_000, venue)
    # the comparison with the export covers it: an export that hides the excess differs
    export = {"days": {THU.isoformat(): {**day, "over_capacity": {}}}, "totals": t["totals"]}
    assert any("over_capacity" in d for d in truth.compare(t, export))
