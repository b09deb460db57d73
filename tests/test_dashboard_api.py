"""The dashboard's HTTP surface: every endpoint refuses anonymous users (401), the wrong
role (403), a missing CSRF token on a state change (403), bad input (4xx), always with the
one error shape; actions reach the broker and the audit log."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from sesame.common import mqtt, wire
from tests.fixtures.dashboard import ACCOUNTS, ROLE_USER, wait_for

TOPICS = wire.Topics("grand-palais")
ALL = {"safety", "organiser", "viewer"}

# (method, path, a valid body, roles allowed). Every route of the OpenAPI schema is here.
ENDPOINTS = [
    ("GET", "/api/me", None, ALL),
    ("GET", "/api/zones", None, ALL),
    ("GET", "/api/gates", None, ALL),
    ("GET", "/api/alerts", None, ALL),
    ("GET", "/api/audit", None, ALL),
    ("GET", "/api/series", None, ALL),
    ("GET", "/api/stream", None, ALL),
    ("POST", "/api/zones/nef/close", {"reason": "drill"}, {"safety"}),
    ("POST", "/api/zones/nef/open", {}, {"safety"}),
    ("POST", "/api/zones/nef/corrections", {"delta": -3, "reason": "miscount"}, {"safety"}),
    ("POST", "/api/venue/evacuation", {"on": False}, {"safety"}),
    ("POST", "/api/alerts/acknowledge", {"id": 1}, {"safety"}),
    ("POST", "/api/decisions", {"action": "reject_held", "gate": "clemenceau-out-1"}, {"safety"}),
    ("GET", "/api/exports/attendance?format=json", None, {"organiser"}),
    ("POST", "/logout", None, ALL),
]


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


def call(c: httpx.Client, method: str, path: str, body, headers=None) -> httpx.Response:
    if path == "/api/stream":  # do not wait for an endless stream: read the status only
        with c.stream(method, path, headers=headers) as r:
            r.read = lambda: b""  # type: ignore[method-assign]
            if r.status_code != 200:
                r._content = b"".join(r.iter_bytes())
            return r
    return c.request(method, path, json=body, headers=headers)


def test_every_api_route_is_covered_by_this_table(shared_dashboard):
    schema = httpx.get(shared_dashboard.url + "/openapi.json").json()
    routes = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    covered = {(m, p.split("?")[0].replace("/nef/", "/{zone}/")) for m, p, _, _ in ENDPOINTS}
    assert routes - {("POST", "/login")} == covered


@pytest.mark.parametrize("method,path,body,roles", ENDPOINTS, ids=[e[1] for e in ENDPOINTS])
def test_anonymous_is_refused_with_401(shared_dashboard, method, path, body, roles):
    with httpx.Client(base_url=shared_dashboard.url) as c:
        assert_error(call(c, method, path, body), 401, "UNAUTHENTICATED")
        # a forged session cookie is no better
        c.cookies.set("sesame_session", "forged")
        assert_error(call(c, method, path, body), 401, "UNAUTHENTICATED")


@pytest.mark.parametrize("method,path,body,roles", ENDPOINTS, ids=[e[1] for e in ENDPOINTS])
def test_wrong_role_is_refused_with_403(shared_clients, method, path, body, roles):
    for role in sorted(ALL - roles):
        c = shared_clients[role]
        assert_error(call(c, method, path, body, c.csrf_header), 403, "FORBIDDEN")


@pytest.mark.parametrize(
    "method,path,body,roles",
    [e for e in ENDPOINTS if e[0] == "POST"],
    ids=[e[1] for e in ENDPOINTS if e[0] == "POST"],
)
def test_state_change_without_csrf_token_is_refused(shared_clients, method, path, body, roles):
    c = shared_clients[sorted(roles)[0]]
    assert_error(call(c, method, path, body), 403, "CSRF")
    assert_error(call(c, method, path, body, {"X-CSRF-Token": "guess"}), 403, "CSRF")
    # another session's token does not work either
    other = shared_clients["safety2"]
    assert_error(call(c, method, path, body, other.csrf_header), 403, "CSRF")
    # nothing was done: the audit log is empty
    assert c.get("/api/audit").json()["entries"] == []


BAD_INPUT = [
    ("/api/zones/nef/corrections", {"delta": 0, "reason": "x"}, 422),
    ("/api/zones/nef/corrections", {"delta": 5}, 422),
    ("/api/zones/nef/corrections", {"delta": 5, "reason": "   "}, 422),
    ("/api/zones/nef/corrections", {"delta": "five", "reason": "x"}, 422),
    ("/api/zones/nef/corrections", {"delta": 10**7, "reason": "x"}, 422),
    ("/api/zones/nef/corrections", {"delta": 1, "reason": "x", "extra": 1}, 422),
    ("/api/zones/nef/corrections", [1, 2], 422),
    ("/api/zones/atlantis/corrections", {"delta": 1, "reason": "x"}, 404),
    ("/api/zones/atlantis/close", {}, 404),
    ("/api/zones/nef/close", {"reason": "x" * 501}, 422),
    ("/api/venue/evacuation", {}, 422),
    ("/api/venue/evacuation", {"on": "yes please"}, 422),
    ("/api/alerts/acknowledge", {}, 422),
    ("/api/alerts/acknowledge", {"id": 0}, 422),
    ("/api/alerts/acknowledge", {"id": "1"}, 422),
    ("/api/alerts/acknowledge", {"id": 2**60}, 422),
    ("/api/alerts/acknowledge", {"id": 1, "reason": "x" * 501}, 422),
    ("/api/alerts/acknowledge", {"id": 424242}, 404),
]


@pytest.mark.parametrize("path,body,status", BAD_INPUT)
def test_bad_input_gets_4xx_with_the_error_shape(shared_clients, path, body, status):
    c = shared_clients["safety"]
    assert_error(c.post(path, json=body, headers=c.csrf_header), status)
    assert c.get("/api/audit").json()["entries"] == []


def test_malformed_bodies_and_queries(shared_clients):
    c = shared_clients["safety"]
    h = {**c.csrf_header, "Content-Type": "application/json"}
    assert_error(c.post("/api/zones/nef/corrections", content=b"{not json", headers=h), 422)
    assert_error(c.post("/api/zones/nef/corrections", content=b"\xff\xfe", headers=h), 422)
    big = json.dumps({"delta": 1, "reason": "x" * 20000}).encode()
    assert_error(c.post("/api/zones/nef/corrections", content=big, headers=h), 413)
    form = {**c.csrf_header, "Content-Type": "text/plain"}
    assert_error(c.post("/api/venue/evacuation", content=b"on", headers=form), 415)
    assert_error(c.get("/api/audit?limit=0"), 422, "INVALID")
    assert_error(c.get("/api/series?day=tomorrow"), 422, "INVALID")
    assert_error(c.get("/api/series?day=2019-01-01"), 422, "INVALID")
    o = shared_clients["organiser"]
    assert_error(o.get("/api/exports/attendance?format=pdf"), 422, "INVALID")
    assert_error(o.get("/api/exports/attendance?day=2018-13-45"), 422, "INVALID")
    assert_error(o.get("/api/exports/attendance?day=2018-11-21&format=csv"), 422, "INVALID")
    assert_error(c.get("/api/nothing-here"), 404, "NOT_FOUND")
    assert_error(c.put("/api/zones"), 405)


def test_login_cookie_flags_security_headers_and_logout(dashboard):
    with httpx.Client(base_url=dashboard.url) as c:
        r = c.post("/login", json={"username": "sophie", "password": ACCOUNTS["sophie"][1]})
        assert r.status_code == 200 and r.json()["role"] == "safety"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        r = c.get("/api/zones")
        assert r.status_code == 200
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"
        csrf = {"X-CSRF-Token": r.request and c.get("/api/me").json()["csrf"]}
        assert c.post("/logout", headers=csrf).status_code == 200
        assert_error(c.get("/api/zones"), 401)
        # pages send an anonymous browser to the sign-in page
        r = c.get("/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        assert c.get("/login").status_code == 200


def test_login_is_rate_limited(dashboard):
    with httpx.Client(base_url=dashboard.url) as c:
        for _ in range(5):
            assert_error(
                c.post("/login", json={"username": "sophie", "password": "nope-nope"}),
                401,
                "BAD_CREDENTIALS",
            )
        err = c.post("/login", json={"username": "sophie", "password": "nope-nope"})
        assert_error(err, 429, "RATE_LIMITED")
        assert int(err.headers["retry-after"]) > 0
        # even the right password waits: a guesser cannot tell it was right
        r = c.post("/login", json={"username": "sophie", "password": ACCOUNTS["sophie"][1]})
        assert_error(r, 429, "RATE_LIMITED")
        # bad login input is a 4xx with the shape, and a cross-site sign-in is refused
        assert_error(c.post("/login", json={"username": "", "password": "x"}), 422)
        assert_error(
            c.post(
                "/login",
                json={"username": "victor", "password": ACCOUNTS["victor"][1]},
                headers={"Origin": "https://evil.example"},
            ),
            403,
            "CSRF",
        )


def test_removed_account_loses_its_session_at_once(dashboard, signed_in):
    c = signed_in("viewer")
    assert c.get("/api/zones").status_code == 200
    dashboard.dashboard.store.remove_user(ROLE_USER["viewer"])
    assert_error(c.get("/api/zones"), 401, "UNAUTHENTICATED")


def test_sign_in_limit_per_address_spans_usernames(dashboard):
    with httpx.Client(base_url=dashboard.url) as c:
        for i in range(20):  # a spray over many names from one address
            assert_error(c.post("/login", json={"username": f"u{i}", "password": "x"}), 401)
        assert_error(c.post("/login", json={"username": "new", "password": "x"}), 429)


def test_pages_refuse_the_wrong_role(shared_clients):
    viewer = shared_clients["viewer"]
    assert viewer.get("/").status_code == 200
    r = viewer.get("/organiser")
    assert r.status_code == 403 and 'id="forbidden"' in r.text
    organiser = shared_clients["organiser"]
    assert organiser.get("/organiser").status_code == 200


class Watcher:
    """A subscriber on the test broker that collects what arrives (admin-free: the counter
    account reads everything under the venue)."""

    def __init__(self, url: str, topic: str):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.conn = mqtt.connect(
            url,
            "",
            clean_start=True,
            session_expiry=0,
            subscriptions=[(topic, 1)],
            on_message=self._on,
        )

    def _on(self, m):
        with self.lock:
            self.messages.append((m.topic, m.payload, bool(m.retain)))

    def close(self):
        self.conn.close()


def test_close_and_open_publish_retained_control_and_are_audited(mosquitto, signed_in):
    c = signed_in("safety")
    r = c.post(
        "/api/zones/salon-honneur/close", json={"reason": "talk overflow"}, headers=c.csrf_header
    )
    assert r.status_code == 200 and r.json()["outcome"] == "published"
    # a client connecting afterwards gets the retained control message
    w = Watcher(mosquitto.url("counter"), TOPICS.zone_control("salon-honneur"))
    try:
        wait_for(lambda: w.messages, what="retained control message")
        topic, payload, retained = w.messages[0]
        msg = wire.parse_zone_control(payload)
        assert retained and msg.state == "closed" and msg.by == ROLE_USER["safety"]
    finally:
        w.close()
    c.post("/api/zones/salon-honneur/open", json={}, headers=c.csrf_header)
    entries = c.get("/api/audit").json()["entries"]
    assert [(e["action"], e["target"], e["user"]) for e in entries] == [
        ("open_zone", "salon-honneur", "sophie"),
        ("close_zone", "salon-honneur", "sophie"),
    ]
    assert entries[1]["reason"] == "talk overflow" and entries[1]["outcome"] == "published"
    # the dashboard hears its own retained message back and shows the zone open again
    wait_for(
        lambda: c.get("/api/zones").json()["zones"][1]["control"] == "open",
        what="zone control state on the dashboard",
    )


def test_correction_and_evacuation_reach_the_broker(mosquitto, signed_in):
    w = Watcher(mosquitto.url("counter"), TOPICS.root + "/control/#")
    try:
        c = signed_in("safety")
        r = c.post(
            "/api/zones/nef/corrections",
            json={"delta": -12, "reason": "exit pulses lost"},
            headers=c.csrf_header,
        )
        assert r.status_code == 200
        cid = r.json()["id"]
        r = c.post(
            "/api/venue/evacuation",
            json={"on": True, "reason": "fire alarm"},
            headers=c.csrf_header,
        )
        assert r.status_code == 200
        wait_for(lambda: len(w.messages) >= 2, what="correction and venue control")
        by_topic = {t: (p, ret) for t, p, ret in w.messages}
        corr = wire.parse_correction(by_topic[TOPICS.corrections()][0])
        assert (corr.id, corr.zone, corr.delta, corr.by) == (cid, "nef", -12, "sophie")
        assert corr.reason == "exit pulses lost"
        venue_msg, _ = by_topic[TOPICS.venue_control()]
        assert wire.parse_venue_control(venue_msg).mode == "evacuation"
        wait_for(
            lambda: c.get("/api/zones").json()["mode"] == "evacuation",
            what="evacuation mode on the dashboard",
        )
    finally:
        w.close()


def test_live_state_gates_alerts_and_stream(mosquitto, dashboard, signed_in):
    from datetime import UTC, datetime

    c = signed_in("viewer")
    pub = mqtt.connect(mosquitto.url("counter"), "counter-test")
    gate = mqtt.connect(mosquitto.url("gate-churchill-in-1"), "gate-churchill-in-1")
    lines: list[str] = []
    got_snapshot = threading.Event()

    def reader():
        with httpx.Client(base_url=dashboard.url, cookies=c.cookies, timeout=10) as s:
            with s.stream("GET", "/api/stream") as r:
                for line in r.iter_lines():
                    lines.append(line)
                    if line == "event: snapshot":
                        got_snapshot.set()
                    if line.startswith("data:") and '"occupancy":11000' in line:
                        return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        assert got_snapshot.wait(10)
        now = datetime.now(UTC)
        for n, state in ((9950, "near_full"), (11000, "full")):
            occ = wire.Occupancy("nef", n, 11000, state, now)
            pub.publish(TOPICS.occupancy("nef"), occ.to_json(), 1, True)
        st = wire.GateStatus("churchill-in-1", online=False, outbox=7, ts=now)
        gate.publish(TOPICS.gate_status("churchill-in-1"), st.to_json(), 1, True)
        pub.publish(TOPICS.occupancy("balcons"), b"garbage", 1, False)  # ignored, no crash
        t.join(10)
        assert not t.is_alive(), "the stream never carried the new figure"
        assert "event: zone" in lines
        # the closed stream let go of its queue (no leak per page load)
        wait_for(lambda: dashboard.dashboard.hub.subscribers == 0, what="stream cleanup")
        wait_for(lambda: len(c.get("/api/alerts").json()["alerts"]) == 3, what="three alerts")
        alerts = c.get("/api/alerts").json()["alerts"]
        kinds = [(a["kind"], a["subject"], a["active"]) for a in alerts]
        assert ("gate_offline", "churchill-in-1", True) in kinds
        # nested excursions: the full zone is still near full (one alert of each)
        assert ("full", "nef", True) in kinds and ("near_full", "nef", True) in kinds
        assert all(a["at"] for a in alerts)
        g = next(x for x in c.get("/api/gates").json()["gates"] if x["id"] == "churchill-in-1")
        assert g["online"] is False and g["outbox"] == 7
        z = c.get("/api/zones").json()["zones"][0]
        assert (z["occupancy"], z["level"]) == (11000, "full")
    finally:
        pub.close()
        gate.close()


def test_a_publish_the_broker_refuses_is_reported_not_assumed(dashboard):
    """The ACL refuses the dashboard's account anything but the control topics; over MQTT 5
    the refusal comes back and the link raises instead of reporting success."""
    from sesame.dashboard.link import PublishRefused

    link = dashboard.dashboard.link
    with pytest.raises(PublishRefused):
        link.publish(TOPICS.revoked("00"), b'{"v":1,"badges":[]}', qos=1, retain=True)
    assert link.publish(TOPICS.zone_control("nef"), b'{"v":1,"state":"open"}', 1, True) == (
        "published"
    )
