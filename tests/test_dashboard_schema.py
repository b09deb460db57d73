"""schemathesis against the dashboard's OpenAPI schema: generated requests, signed in as
each role, never get a server error, and every refusal has the one error shape."""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.fixtures.dashboard import (
    ACCOUNTS,
    ROLE_USER,
    _module_dashboard,
    build_counter_db,
    sample_day_events,
)


@pytest.fixture(scope="module")
def fuzzed_dashboard(broker_config, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dashboard-fuzz")
    db = build_counter_db(tmp / "sesame.db", sample_day_events())
    proc, server = _module_dashboard(broker_config, tmp, db)
    sessions = {}
    for role in ("safety", "organiser"):
        s = requests.Session()
        user = ROLE_USER[role]
        r = s.post(server.url + "/login", json={"username": user, "password": ACCOUNTS[user][1]})
        r.raise_for_status()
        s.headers["X-CSRF-Token"] = r.json()["csrf"]
        sessions[role] = s
    try:
        yield server, sessions
    finally:
        for s in sessions.values():
            s.close()
        server.stop()
        proc.close()


SKIP = ("/api/stream", "/logout", "/login")


def test_generated_requests_never_break_the_api(fuzzed_dashboard):
    """Every operation, positive and negative generated data, as safety and organiser."""
    server, sessions = fuzzed_dashboard
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    ran = 0
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path in SKIP:
            # endless stream; signing out would end the fuzzing sessions; sign-in has its
            # own tests (and generated sign-ins would trip the rate limit, by design)
            continue

        @given(case=op.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)  # fmt: skip
        def check(case):
            for role, session in sessions.items():
                r = case.call(base_url=server.url, session=session, timeout=10)
                assert r.status_code < 500, (role, case.method, case.path, r.status_code, r.text)
                if r.status_code >= 400:
                    body = r.json()
                    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}

        check()
        ran += 1
    assert ran >= 10  # every operation but the skipped ones was exercised
