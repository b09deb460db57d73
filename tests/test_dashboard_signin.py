"""Sign-in cannot be used against its owner: failed sign-ins slow down the address they come
from, never the account; the officer signs in from her own address while another address
hammers her account; login CSRF (`Origin: null`, another site) is refused.

Real HTTP against the served app on a real Mosquitto; the hammering client binds its
socket to 127.0.0.2, so the dashboard sees a second real source address."""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx

from sesame.dashboard.signin import Backoff, SigninGuard, address_key
from tests.fixtures.dashboard import ACCOUNTS

OFFICER, (_, PASSWORD) = "sophie", ACCOUNTS["sophie"]
ATTACKER = "127.0.0.2"


def client(url: str, source: str | None = None) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source) if source else None
    return httpx.Client(base_url=url, timeout=10, transport=transport)


def login(c: httpx.Client, username: str, password: str, **kw) -> httpx.Response:
    return c.post("/login", json={"username": username, "password": password}, **kw)


def test_the_officer_signs_in_while_another_address_hammers_her_account(dashboard):
    stop = threading.Event()
    seen: dict[int, int] = {}
    limited: list[httpx.Response] = []

    def hammer() -> None:
        with client(dashboard.url, ATTACKER) as c:
            n = 0
            while not stop.is_set() or n < 40:
                name = OFFICER.upper() if n % 2 else OFFICER  # user names are case-blind
                r = login(c, name, f"guess-{n}")
                seen[r.status_code] = seen.get(r.status_code, 0) + 1
                if r.status_code == 429:
                    limited.append(r)
                n += 1

    t = threading.Thread(target=hammer)
    started = time.monotonic()
    t.start()
    try:
        with client(dashboard.url) as officer:
            for _ in range(5):  # throughout the attack, from her own address
                r = login(officer, OFFICER, PASSWORD)
                assert r.status_code == 200, r.text
                assert officer.get("/api/me").json()["user"] == OFFICER
            # a typo of her own is one failure at her address, not a lock-out
            assert login(officer, OFFICER, "typo").status_code == 401
            assert login(officer, OFFICER, PASSWORD).status_code == 200
    finally:
        stop.set()
        t.join(60)
    elapsed = time.monotonic() - started
    # past its 5 free guesses the attacker had one more each time its wait (2 s, 4 s, ...)
    # ran out; every other guess was refused without being looked at
    turns = math.floor(math.log2(elapsed / 2 + 1))
    assert 5 <= seen.get(401, 0) <= 5 + turns and seen.get(429, 0) >= 40 - 5 - turns, seen
    r = limited[-1]
    assert r.json()["error"]["code"] == "RATE_LIMITED"
    wait = int(r.headers["retry-after"])
    assert 0 < wait <= 2 ** (turns + 1) and f"retry in {wait} s" in r.json()["error"]["message"]
    # ...and still are, even with the right password: a guesser must not learn it was right
    with client(dashboard.url, ATTACKER) as c:
        assert login(c, OFFICER, PASSWORD).status_code == 429


def test_delays_double_then_are_forgotten(dashboard_factory):
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    served = dashboard_factory(wall_clock=lambda: now[0])
    with client(served.url, ATTACKER) as c:
        for _ in range(5):
            assert login(c, OFFICER, "nope-nope").status_code == 401
        waits = []
        for _ in range(4):
            r = login(c, OFFICER, "nope-nope")
            assert r.status_code == 429
            waits.append(int(r.headers["retry-after"]))
            now[0] += timedelta(seconds=waits[-1])
            assert login(c, OFFICER, "nope-nope").status_code == 401  # its turn came
        assert waits == [2, 4, 8, 16]
        # the right password waits like any guess, then is taken
        r = login(c, OFFICER, PASSWORD)
        assert r.status_code == 429 and int(r.headers["retry-after"]) == 32
        now[0] += timedelta(seconds=32)
        assert login(c, OFFICER, PASSWORD).status_code == 200
        # another user name from this address has its own free tries (up to 20 in all)...
        assert login(c, "victor", "nope-nope").status_code == 401
        # ...and a quiet quarter of an hour forgets the address
        for i in range(20 - 10):
            login(c, f"spray{i}", "nope-nope")
        assert login(c, "olivier", "nope-nope").status_code == 429
        now[0] += timedelta(minutes=15, seconds=3)
        assert login(c, "olivier", ACCOUNTS["olivier"][1]).status_code == 200
        # forgotten, not merely waited out: failures count from zero again
        assert [login(c, "olivier", "nope-nope").status_code for _ in range(2)] == [401, 401]


def test_only_a_trusted_proxy_names_the_client(dashboard):
    """127.0.0.1 is a trusted proxy by default (`--trusted-proxy`): its X-Forwarded-For names
    the browser. Anyone else's X-Forwarded-For is ignored, so a guesser cannot pick a fresh
    address for each guess."""
    with client(dashboard.url, ATTACKER) as c:
        codes = [
            login(c, OFFICER, "x" * 9, headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code
            for i in range(6)
        ]
        assert codes == [401] * 5 + [429]
    with client(dashboard.url) as proxy:  # a reverse proxy on this machine
        far = {"X-Forwarded-For": "203.0.113.7"}
        for _ in range(5):
            assert login(proxy, OFFICER, "x" * 9, headers=far).status_code == 401
        assert login(proxy, OFFICER, PASSWORD, headers=far).status_code == 429
        near = {"X-Forwarded-For": "198.51.100.20"}
        assert login(proxy, OFFICER, PASSWORD, headers=near).status_code == 200


CROSS_SITE = [
    {"Origin": "null"},
    {"Origin": "https://evil.example"},
    {"Origin": "http://127.0.0.1.evil.example"},
    {"Origin": "file://"},
    {"Sec-Fetch-Site": "cross-site"},
]


def test_login_csrf_is_refused_with_a_message(dashboard):
    with client(dashboard.url) as c:
        for headers in CROSS_SITE:
            r = login(c, OFFICER, PASSWORD, headers=headers)
            assert r.status_code == 403, (headers, r.text)
            err = r.json()["error"]
            assert err["code"] == "CSRF" and err["message"].startswith("sign-in refused: ")
            assert "set-cookie" not in r.headers
        # the dashboard's own page, and a client that is no browser page, sign in
        own = {"Origin": dashboard.url, "Sec-Fetch-Site": "same-origin"}
        assert login(c, OFFICER, PASSWORD, headers=own).status_code == 200
        assert login(c, OFFICER, PASSWORD).status_code == 200


def test_the_sign_in_form_of_a_real_browser_carries_its_origin(dashboard, chromium):
    """The referrer policy is same-origin: with no-referrer a browser would send
    `Origin: null` on the form's own POST, and sign-in would refuse its own page."""
    ctx = chromium.new_context()
    try:
        page = ctx.new_page()
        page.goto(dashboard.url + "/login")
        page.evaluate(
            "document.getElementById('login-form').replaceWith("
            "document.getElementById('login-form').cloneNode(true))"
        )  # no JS: native
        page.fill("#username", OFFICER)
        page.fill("#password", PASSWORD)
        with page.expect_navigation():
            page.click("#login-button")
        assert page.url.rstrip("/") == dashboard.url
    finally:
        ctx.close()


# -- the decision, with an injected clock -------------------------------------------------


def test_memory_stays_bounded_under_a_spray_of_names_and_addresses():
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    guard = SigninGuard(lambda: now[0], max_keys=100)
    for i in range(5_000):
        guard.failed(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", f"user{i}")
        now[0] += timedelta(milliseconds=1)
    assert len(guard.by_address) <= 100 and len(guard.by_pair) <= 100
    # one address rotating names is still slowed down as one address
    for i in range(20):
        guard.failed("192.0.2.9", f"name{i}")
    assert guard.retry_after("192.0.2.9", "yet-another") == 2
    assert guard.retry_after("192.0.2.10", "name0") == 0


def test_an_ipv6_machine_is_its_slash_64():
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    b = Backoff(lambda: datetime(2026, 1, 1, tzinfo=UTC), free=2)
    assert [b.delay(n).total_seconds() for n in range(1, 6)] == [0, 2, 4, 8, 16]
    assert b.delay(10_000) == timedelta(minutes=15)


def test_a_trusted_proxy_that_is_no_address_is_refused_on_one_line(tmp_path, capsys):
    from sesame.cli import main

    accounts = str(tmp_path / "d.db")
    code = main(["dashboard", "--accounts", accounts, "--trusted-proxy", "nginx.local"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].endswith("--trusted-proxy 'nginx.local': not an IP address or network")
    assert not (tmp_path / "d.db").exists()  # refused before anything is opened
