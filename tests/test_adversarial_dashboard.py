"""Adversarial: hostile HTTP against a served dashboard (invariants 4 and 5).

An anonymous client may reach `POST /login`; what it sends must be refused from the headers
where it can be, never buffered whole: a request that announces a gigabyte, or streams an
endless chunked body, gets 413 at once with the one error shape.
"""

from __future__ import annotations

import json
import socket

import pytest

from sesame.common.venue import load_venue
from sesame.dashboard.http import MAX_BODY
from tests.fixtures.dashboard import ACCOUNTS, VENUE_FILE


@pytest.fixture(scope="module")
def one_account(tmp_path_factory):
    from sesame.dashboard.accounts import AccountStore

    path = tmp_path_factory.mktemp("adv-dash") / "dashboard.db"
    store = AccountStore(path)
    user, (role, pw) = next(iter(ACCOUNTS.items()))
    store.add_user(user, role, pw)
    store.close()
    return path


@pytest.fixture
def served(one_account):
    from sesame.dashboard.app import DashboardSettings, create_app
    from sesame.dashboard.server import ServerThread

    settings = DashboardSettings(venue=load_venue(VENUE_FILE), accounts_path=one_account,
                        db_path=None, broker_url=None)  # fmt: skip
    server = ServerThread(create_app(settings)).start()
    try:
        yield server
    finally:
        server.stop()


def _raw(server, head: bytes, body: bytes, timeout: float = 3.0) -> tuple[int, dict]:
    """Send a request by hand (what httpx would not send), read the answer without waiting
    for the rest of the body we promised. Returns (status, JSON body)."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as s:
        s.sendall(head + body)
        data = b""
        try:
            while b"\r\n\r\n" not in data or not _complete(data):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            raise AssertionError(f"no answer within {timeout} s: body waited for") from None
    status = int(data.split(b" ", 2)[1])
    payload = data.split(b"\r\n\r\n", 1)[1]
    return status, json.loads(payload) if payload.startswith(b"{") else {}


def _complete(data: bytes) -> bool:
    head, _, rest = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(rest) >= int(line.split(b":")[1])
    return False


def _head(server, extra: str) -> bytes:
    return (
        f"POST /login HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


def test_a_gigabyte_announced_to_login_is_refused_from_the_header(served):
    status, body = _raw(served, _head(served, "Content-Length: 1073741824\r\n"), b"{" * 20_000)
    assert status == 413
    assert body["error"]["code"] == "TOO_LARGE"


def test_an_endless_chunked_body_is_cut_at_the_limit(served):
    chunk = b"x" * 8192
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY // 8192 + 2))
    status, got = _raw(served, _head(served, "Transfer-Encoding: chunked\r\n"), body)
    assert status == 413
    assert got["error"]["code"] == "TOO_LARGE"


def test_a_body_within_the_limit_still_signs_in(served):
    import httpx

    user, (_, pw) = next(iter(ACCOUNTS.items()))
    with httpx.Client(base_url=served.url, timeout=5) as c:
        r = c.post("/login", json={"username": user, "password": pw})
        assert r.status_code == 200, r.text
        pad = {"username": user, "password": pw, "x": "y" * (MAX_BODY + 10)}
        r = c.post("/login", json=pad)
        assert r.status_code == 413 and r.json()["error"]["code"] == "TOO_LARGE"


def test_the_sign_in_form_still_works_and_a_bad_form_is_refused(served):
    import httpx

    user, (_, pw) = next(iter(ACCOUNTS.items()))
    with httpx.Client(base_url=served.url, timeout=5) as c:
        r = c.post("/login", data={"username": user, "password": pw})
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert c.get("/api/me").status_code == 200
    form = {"content-type": "application/x-www-form-urlencoded"}
    with httpx.Client(base_url=served.url, timeout=5) as c:
        for body in (b"username=a&password=%ff%fe", b"\xff\xfe", b"&" * 5000 + b"a=b"):
            r = c.post("/login", content=body, headers=form)
            assert r.status_code in (401, 422), (body[:20], r.status_code, r.text)
            assert set(r.json()["error"]) == {"code", "message"}


@pytest.mark.parametrize("next_", ["/%5Clocalhost:{port}/phish", "/%09/localhost:{port}/phish"])
def test_sign_in_never_redirects_to_another_site(served, chromium, next_):
    """`/login?next=` only leads within the dashboard: a browser reads `/\\host` as
    `//host`, another site, where a copy of the sign-in page could ask again."""
    user, (_, pw) = next(iter(ACCOUNTS.items()))
    ctx = chromium.new_context()
    try:
        page = ctx.new_page()
        page.goto(served.url + "/login?next=" + next_.format(port=served.port))
        page.fill("#username", user)
        page.fill("#password", pw)
        page.click("#login-button")
        page.wait_for_url(lambda u: "/login" not in u, timeout=10_000)
        assert page.url.startswith(served.url + "/"), page.url
        # a path of the dashboard itself is still followed
        page.goto(served.url + "/login?next=/%3Flang%3Den")
        page.fill("#username", user)
        page.fill("#password", pw)
        page.click("#login-button")
        page.wait_for_url(lambda u: "/login" not in u, timeout=10_000)
        assert page.url == served.url + "/?lang=en", page.url
    finally:
        ctx.close()
