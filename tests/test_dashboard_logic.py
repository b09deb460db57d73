"""The dashboard's pure parts: alerts from state transitions, zone colours, language
choice, the login rate limit and sessions (injected clock), accounts with argon2."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from sesame.common import wire
from sesame.common.venue import load_venue
from sesame.dashboard.accounts import AccountError, AccountStore
from sesame.dashboard.i18n import STRINGS, pick_lang
from sesame.dashboard.live import LiveState, zone_level
from sesame.dashboard.security import Sessions
from sesame.dashboard.signin import SigninGuard

VENUE = load_venue("config/grand-palais.toml")
T = wire.Topics(VENUE.id)
T0 = datetime(2018, 11, 25, 13, 0, tzinfo=UTC)


def occ(zone: str, n: int, state: str, minute: int = 0) -> tuple[str, bytes]:
    cap = VENUE.zones[zone].capacity
    return T.occupancy(zone), wire.Occupancy(
        zone, n, cap, state, T0 + timedelta(minutes=minute)
    ).to_json()


def status(gate: str, online: bool, minute: int = 0) -> tuple[str, bytes]:
    return T.gate_status(gate), wire.GateStatus(
        gate, online, ts=T0 + timedelta(minutes=minute)
    ).to_json()


def test_zone_alerts_follow_the_counters_states_with_their_time():
    s = LiveState(VENUE)
    s.apply(*occ("nef", 5000, "open"), T0)
    assert s.alert_list() == []
    s.apply(*occ("nef", 9900, "near_full", 5), T0)
    s.apply(*occ("nef", 11000, "full", 9), T0)
    alerts = s.alert_list()
    # nested: a full zone is near full too, within the same excursion
    assert [(a["kind"], a["active"]) for a in alerts] == [("full", True), ("near_full", True)]
    assert alerts[0]["at"] == wire.iso(T0 + timedelta(minutes=9))  # event time, not arrival
    assert alerts[1]["at"] == wire.iso(T0 + timedelta(minutes=5))
    s.apply(*occ("nef", 10000, "near_full", 20), T0)  # back under 95 %: full ends
    kinds = [(a["kind"], a["active"]) for a in s.alert_list()]
    assert kinds == [("near_full", True), ("full", False)]  # still the one near-full alert
    full = s.alert_list()[1]
    assert (full["peak"], full["end"]) == (11000, wire.iso(T0 + timedelta(minutes=20)))
    s.apply(*occ("nef", 100, "open", 30), T0)
    assert not any(a["active"] for a in s.alert_list())
    assert s.current_day().isoformat() == "2018-11-25"


def test_a_stale_open_state_is_shown_by_the_figures_never_better():
    nef = VENUE.zones["nef"]
    assert zone_level("open", 11000, nef.capacity, nef.near_full) == "full"
    assert zone_level("open", 9950, nef.capacity, nef.near_full) == "near_full"
    assert zone_level("full", 10, nef.capacity, nef.near_full) == "full"
    assert zone_level("closed", 10, nef.capacity, nef.near_full) == "closed"
    assert zone_level(None, None, nef.capacity, nef.near_full) == "unknown"


def test_gate_offline_alert_and_recovery():
    s = LiveState(VENUE)
    s.apply(*status("churchill-in-2", True), T0)
    s.apply(*status("churchill-in-2", False, 3), T0)
    s.apply(*status("churchill-in-2", False, 4), T0)  # still offline: no second alert
    (a,) = s.alert_list()
    assert (a["kind"], a["subject"], a["active"]) == ("gate_offline", "churchill-in-2", True)
    s.apply(*status("churchill-in-2", True, 9), T0)
    assert s.alert_list()[0]["active"] is False
    counter = wire.CounterStatus(online=False, clock=T0)
    s.apply(T.counter_status(), counter.to_json(), T0)
    assert s.alert_list()[0]["kind"] == "counter_offline"


@pytest.mark.parametrize(
    "topic,payload",
    [
        (T.occupancy("nef"), b"\xff\xfe"),
        (T.occupancy("nef"), b'{"zone":"nef"}'),
        (T.occupancy("nef"), occ("balcons", 3, "open")[1]),  # payload for another zone
        (T.occupancy("atlantis"), occ("nef", 3, "open")[1]),
        (T.gate_status("churchill-in-1"), b"[]"),
        (T.zone_control("nef"), b'{"state":"ajar"}'),
        (T.venue_control(), b'{"mode":"party"}'),
        (T.counter_status(), b"null"),
        ("sesame/v1/other-venue/zones/nef/occupancy", occ("nef", 3, "open")[1]),
    ],
)
def test_hostile_messages_change_nothing(topic, payload):
    s = LiveState(VENUE)
    before = s.snapshot()
    assert s.apply(topic, payload, T0) == []
    assert s.snapshot() == before


def test_language_from_the_browser_and_the_switch():
    assert pick_lang(None, "fr-FR,fr;q=0.9,en;q=0.8") == "fr"
    assert pick_lang(None, "de-DE,en;q=0.5,fr;q=0.7") == "fr"
    assert pick_lang(None, "en-GB,fr;q=0.9") == "en"
    assert pick_lang(None, "de, it;q=0.5") == "en"
    assert pick_lang(None, "fr;q=garbage, en;q=0.1") == "en"
    assert pick_lang("fr", "en-US") == "fr"  # the switch wins
    assert pick_lang("xx", "fr") == "fr"
    assert all(en and fr for en, fr in STRINGS.values())


def test_sign_in_backoff_with_an_injected_clock():
    """Failures slow down the address (and address + user name) they come from; the same user
    name from another address is not held back; quiet for long enough, all is forgotten."""
    now = [T0]
    guard = SigninGuard(lambda: now[0], free_per_user=3, free_per_address=20)
    for _ in range(3):
        assert guard.retry_after("192.0.2.1", "a") == 0
        guard.failed("192.0.2.1", "A")  # user names are case-blind
    assert guard.retry_after("192.0.2.1", "a") == 2
    assert guard.retry_after("192.0.2.2", "a") == 0  # the owner elsewhere is not locked out
    assert guard.retry_after("192.0.2.1", "b") == 0  # another name: below the address's 20
    now[0] += timedelta(seconds=2)
    assert guard.retry_after("192.0.2.1", "a") == 0
    guard.failed("192.0.2.1", "a")
    assert guard.retry_after("192.0.2.1", "a") == 4
    now[0] += timedelta(minutes=16)
    guard.failed("192.0.2.1", "a")  # forgotten: counting starts again
    assert guard.retry_after("192.0.2.1", "a") == 0


def test_sessions_expire_when_idle():
    from sesame.dashboard.accounts import User

    now = [T0]
    ss = Sessions(lambda: now[0], idle=timedelta(hours=1))
    s = ss.create(User("a", "viewer"))
    now[0] += timedelta(minutes=59)
    assert ss.get(s.sid) is s
    now[0] += timedelta(minutes=61)
    assert ss.get(s.sid) is None
    assert ss.get("") is None and ss.get("nope") is None


def test_accounts_store_argon2_hashes_only(tmp_path):
    store = AccountStore(tmp_path / "d.db")
    store.add_user("amelie", "safety", "correct horse")
    with pytest.raises(AccountError):
        store.add_user("amelie", "viewer", "another one")
    for bad in (("bad name", "viewer", "password1"), ("x", "admin", "password1"),
                ("x", "viewer", "short")):  # fmt: skip
        with pytest.raises(AccountError):
            store.add_user(*bad)
    assert store.authenticate("amelie", "correct horse").role == "safety"
    assert store.authenticate("amelie", "wrong horse") is None
    assert store.authenticate("nobody", "correct horse") is None
    store.close()
    raw = sqlite3.connect(tmp_path / "d.db").execute("SELECT hash FROM users").fetchone()[0]
    assert raw.startswith("$argon2id$") and "correct horse" not in raw
    # reopening keeps accounts and does not re-run migrations
    store = AccountStore(tmp_path / "d.db")
    assert [u.username for u in store.users()] == ["amelie"]
    store.remove_user("amelie")
    with pytest.raises(AccountError):
        store.remove_user("amelie")


def test_a_slow_viewer_is_dropped_not_waited_for():
    import asyncio

    from sesame.dashboard.hub import _CLOSE, QUEUE_SIZE, Hub

    async def run():
        hub = Hub()
        hub.bind(asyncio.get_running_loop())
        slow, fast = hub.subscribe(), hub.subscribe()
        received = []
        for i in range(QUEUE_SIZE + 10):
            hub.publish("zone", {"i": i})
            if i % 100 == 0:
                await asyncio.sleep(0)  # let the loop deliver
                while not fast.empty():
                    received.append(fast.get_nowait())
        await asyncio.sleep(0.05)
        while not fast.empty():
            received.append(fast.get_nowait())
        # the slow one got the sentinel and left; the fast one got everything, in order
        assert slow.get_nowait() is _CLOSE and hub.subscribers == 1 and hub.dropped == 1
        assert len(received) == QUEUE_SIZE + 10
        assert received[0].startswith('event: zone\ndata: {"i":0}')

    asyncio.run(run())
