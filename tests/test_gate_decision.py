"""The pure access decision: every rule, in order, with an injected time."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sesame.common.decision import ANTIPASSBACK_WINDOW, MemoryDict, decide
from sesame.common.reasons import Reason
from sesame.common.venue import Reentry
from tests.fixtures.gate import paris

THU = date(2018, 11, 22)
NOON = paris(2018, 11, 22, 12)


@pytest.fixture
def run(gp_venue, badge_keys):
    def run(text, gate="churchill-in-1", **kw):
        args = dict(
            venue=gp_venue,
            gate=gp_venue.gates[gate],
            keys=badge_keys,
            revoked=(),
            zone_states={},
            venue_mode="normal",
            lease_left=20,
            memory=MemoryDict(),
            now=NOON,
        )
        args.update(kw)
        return decide(text, **args)

    return run


def test_valid_badge_is_granted_with_bilingual_message(run, make_token):
    d = run(make_token())
    assert d.granted and d.reason is None and d.passages == 1
    assert d.claims.badge == "B000001"
    assert d.message_fr and d.message_en and d.message_fr != d.message_en


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "https://example.org/ticket?id=123",
        "SES1.abc",
        "SES1.!!!.???",
        "\ufffd\ufffd\x00garbage\ufffd",
        "SES1." + "A" * 5000 + ".sig",
        None,
    ],
)
def test_garbage_is_malformed(run, text):
    d = run(text)
    assert not d.granted and d.reason == Reason.MALFORMED and d.passages == 0


def test_flipped_byte_is_bad_signature(run, make_token):
    tok = make_token()
    head, payload, sig = tok.split(".")
    # flip one character of the signature: still base64url, no longer valid
    sig = ("B" if sig[5] != "B" else "C").join([sig[:5], sig[6:]])
    d = run(f"{head}.{payload}.{sig}")
    assert d.reason == Reason.BAD_SIGNATURE


def test_other_venue_key_is_unknown_key(run, make_token):
    other = Ed25519PrivateKey.generate()
    assert run(make_token(key=other)).reason == Reason.UNKNOWN_KEY


def test_unknown_category(run, make_token):
    assert run(make_token(category="vip")).reason == Reason.UNKNOWN_CATEGORY


def test_not_valid_today(run, make_token):
    assert run(make_token(days=(date(2018, 11, 23),))).reason == Reason.NOT_VALID_TODAY
    assert run(make_token(days=(THU,))).granted
    # a day-limited badge on a day that is not an event day at all
    assert run(make_token(days=(THU,)), now=paris(2018, 11, 26)).reason == Reason.NOT_VALID_TODAY


def test_opening_hours_in_venue_local_time(run, make_token):
    tok = make_token()
    assert run(tok, now=paris(2018, 11, 22, 8, 59)).reason == Reason.OUTSIDE_OPENING_HOURS
    assert run(tok, now=paris(2018, 11, 22, 9, 0)).granted
    assert run(tok, now=paris(2018, 11, 22, 17, 59)).granted
    assert run(tok, now=paris(2018, 11, 22, 18, 0)).reason == Reason.OUTSIDE_OPENING_HOURS
    # Saturday closed early (16:00); the same instant in UTC is 15:30Z = 16:30 Paris
    sat_late = paris(2018, 11, 24, 16, 30).astimezone(__import__("datetime").UTC)
    assert run(tok, now=sat_late).reason == Reason.OUTSIDE_OPENING_HOURS
    # no event day: an all-days badge is outside opening hours
    assert run(tok, now=paris(2018, 11, 21, 12)).reason == Reason.OUTSIDE_OPENING_HOURS


def test_early_minutes_per_category(run, make_token):
    at = paris(2018, 11, 22, 7, 45)  # 75 minutes before opening
    assert run(make_token(category="exhibitor"), now=at).granted  # 90 early minutes
    assert run(make_token(category="speaker"), now=at).reason == Reason.OUTSIDE_OPENING_HOURS
    assert run(make_token(category="staff"), now=paris(2018, 11, 22, 6, 0)).granted


def test_zone_not_allowed(run, make_token):
    assert run(make_token(), gate="salon-in-1").reason == Reason.ZONE_NOT_ALLOWED
    assert run(make_token(category="professional"), gate="salon-in-1").granted


def test_revoked(run, make_token):
    assert run(make_token(), revoked={"B000001"}).reason == Reason.REVOKED
    assert run(make_token(), revoked={"B000002"}).granted


def test_antipassback_is_timed_and_cleared_by_a_seen_exit(run, make_token):
    mem = MemoryDict()
    mem.entered("B000001", "nef", THU, NOON - timedelta(minutes=5))
    assert run(make_token(), memory=mem).reason == Reason.ALREADY_INSIDE
    later = NOON - timedelta(minutes=5) + ANTIPASSBACK_WINDOW
    assert run(make_token(), memory=mem, now=later).granted
    mem.left("B000001", "nef", THU, NOON - timedelta(minutes=1))
    assert run(make_token(), memory=mem).granted
    # free re-entry categories are never stopped
    mem.entered("E1", "nef", THU, NOON - timedelta(minutes=1))
    assert run(make_token("E1", "exhibitor"), memory=mem).granted
    # memory is per day: yesterday's entry does not count today
    mem2 = MemoryDict()
    mem2.entered("B000001", "nef", date(2018, 11, 21), NOON - timedelta(minutes=1))
    assert run(make_token(), memory=mem2).granted


def test_once_category_refuses_reentry(run, make_token, gp_venue):
    cats = dict(gp_venue.categories)
    cats["public"] = cats["public"].model_copy(update={"reentry": Reentry.ONCE})
    venue = gp_venue.model_copy(update={"categories": cats})
    mem = MemoryDict()
    assert run(make_token(), venue=venue, memory=mem).granted
    mem.entered("B000001", "nef", THU, NOON - timedelta(hours=3))
    mem.left("B000001", "nef", THU, NOON - timedelta(hours=2))
    assert run(make_token(), venue=venue, memory=mem).reason == Reason.NO_REENTRY


def test_evacuation_closed_full_in_order(run, make_token):
    tok = make_token()
    assert run(tok, venue_mode="evacuation").reason == Reason.EVACUATION
    assert run(tok, zone_states={"nef": "evacuating"}).reason == Reason.EVACUATION
    assert run(tok, zone_states={"nef": "closed"}).reason == Reason.ZONE_CLOSED
    assert run(tok, zone_states={"nef": "full"}).reason == Reason.ZONE_FULL
    assert run(tok, zone_states={"nef": "near_full"}).granted
    # another zone's state does not matter
    assert run(tok, zone_states={"balcons": "closed"}).granted
    # revoked beats evacuation (badge rules first)
    assert run(tok, venue_mode="evacuation", revoked={"B000001"}).reason == Reason.REVOKED


def test_lease_exhausted_counts_a_group(run, make_token):
    assert run(make_token(), lease_left=0).reason == Reason.LEASE_EXHAUSTED
    assert run(make_token(), lease_left=1).granted
    group = make_token("G1", "school", group=25)
    assert run(group, lease_left=24).reason == Reason.LEASE_EXHAUSTED
    d = run(group, lease_left=25)
    assert d.granted and d.passages == 25
    # an unleased zone (offline_policy "open": lease_left None) is never exhausted
    assert run(make_token(), gate="balcons-up-1", lease_left=None).granted


def test_gate_locked_is_last(run, make_token):
    assert run(make_token(), gate_locked=True).reason == Reason.GATE_LOCKED
    assert run(make_token(), gate_locked=True, lease_left=0).reason == Reason.LEASE_EXHAUSTED


@pytest.mark.parametrize("gate", ["churchill-out-1", "salon-out-1", "balcons-down-1"])
def test_exits_are_always_granted(run, make_token, gate):
    hostile = dict(
        venue_mode="evacuation",
        zone_states={"nef": "full", "salon-honneur": "closed", "balcons": "evacuating"},
        lease_left=0,
        revoked={"B000001"},
        now=paris(2018, 11, 22, 23, 0),
        gate_locked=True,
    )
    d = run(make_token(), gate=gate, **hostile)
    assert d.granted and d.passages == 1 and d.claims.badge == "B000001"
    d = run("garbage", gate=gate, **hostile)
    assert d.granted and d.passages == 1 and d.claims is None
    assert run(make_token("G", "school", group=12), gate=gate, **hostile).passages == 12
