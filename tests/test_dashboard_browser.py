"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): a safety
officer watches a passage change the count without reloading and closes a zone; an
organiser downloads an export; a viewer gets no action buttons and is refused anyway."""

from __future__ import annotations

import csv
import io
import threading
from datetime import UTC, datetime

import pytest

from sesame.common import mqtt, wire
from tests.fixtures.counter import RunningClock
from tests.fixtures.dashboard import (
    ACCOUNTS,
    ROLE_USER,
    build_counter_db,
    passage,
    sample_day_events,
)

TOPICS = wire.Topics("grand-palais")


@pytest.fixture
def page_for(chromium, request):
    contexts = []

    def make(server, role: str | None, locale: str = "en-GB"):
        ctx = chromium.new_context(locale=locale, viewport={"width": 1280, "height": 900},
                                   accept_downloads=True)  # fmt: skip
        contexts.append(ctx)
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.js_errors = errors
        if role:
            user = ROLE_USER[role]
            page.goto(server.url + "/login")
            page.fill("#username", user)
            page.fill("#password", ACCOUNTS[user][1])
            page.click("#login-button")
            page.wait_for_url(lambda u: "/login" not in u)
        return page

    yield make
    for ctx in contexts:
        ctx.close()


def retained(url: str, topic: str, timeout: float = 10.0) -> bytes:
    """What a client connecting now receives as the retained message on `topic`."""
    got: list[bytes] = []
    done = threading.Event()

    def on(m):
        if m.retain:
            got.append(m.payload)
            done.set()

    conn = mqtt.connect(url, "", clean_start=True, session_expiry=0,
                        subscriptions=[(topic, 1)], on_message=on)  # fmt: skip
    try:
        assert done.wait(timeout), f"no retained message on {topic}"
        return got[0]
    finally:
        conn.close()


def test_safety_officer_live_view(mosquitto, dashboard_factory, tmp_path, page_for, artifacts):
    from sesame.common.venue import load_venue
    from sesame.counter.service import Counter

    venue = load_venue("config/grand-palais.toml")
    db = tmp_path / "sesame.db"
    # the counter's clock is the venue's time: Sunday, just after the passages below
    counter = Counter(venue, db, mosquitto.url("counter"), tick_s=0.2, status_s=1,
                      clock=RunningClock(datetime.fromisoformat("2018-11-25T13:05:00+01:00"))
                      ).start()  # fmt: skip
    gate = mqtt.connect(mosquitto.url("gate-churchill-in-1"), "gate-churchill-in-1")
    try:
        server = dashboard_factory(db_path=db)
        page = page_for(server, "safety")
        page.wait_for_selector("body[data-ready='1']")
        assert page.locator("#zone-nef .occupancy").inner_text() == "0"
        # the day curves are drawn by Chart.js, installed at set-up and served by the app
        assert page.evaluate(
            "() => typeof Chart === 'function' && !!Chart.getChart("
            "document.querySelector('#zone-nef canvas'))"
        )
        page.evaluate("() => { window.__sameDocument = true; }")  # gone if the page reloads

        # a passage published on the broker by a gate: counter -> occupancy -> browser
        for seq in (1, 2, 3):
            topic, payload = passage("churchill-in-1", seq, f"2018-11-25T13:0{seq}:00+01:00",
                                     f"B{seq}", "public")  # fmt: skip
            gate.publish(topic, payload, 1, False)
        page.wait_for_function(
            "() => document.querySelector('#zone-nef .occupancy').textContent === '3'", timeout=5000
        )
        assert page.evaluate("() => window.__sameDocument") is True
        assert page.locator("#zone-nef").get_attribute("data-level") == "open"
        # the lane's status shows up too
        st = wire.GateStatus("churchill-in-1", online=True, outbox=2, controller="ok")
        gate.publish(TOPICS.gate_status("churchill-in-1"), st.to_json(), 1, True)
        page.wait_for_selector("#gate-churchill-in-1[data-online='online']")
        # ... and its going offline raises an alert with its time
        st = wire.GateStatus("churchill-in-1", online=False, outbox=5,
                             ts=datetime(2018, 11, 25, 12, 7, 30, tzinfo=UTC))  # fmt: skip
        gate.publish(TOPICS.gate_status("churchill-in-1"), st.to_json(), 1, True)
        alert = page.wait_for_selector("#alerts li.active[data-kind='gate_offline']")
        assert "13:07:30" in alert.inner_text()  # shown in the venue's time zone
        page.wait_for_selector("#gate-churchill-in-1[data-online='offline']")

        # close a zone: the retained control message is on the broker, the audit log shows it
        page.click("#zone-salon-honneur .close-zone")
        page.wait_for_selector("#audit tr[data-action='close_zone']")
        msg = wire.parse_zone_control(
            retained(mosquitto.url("counter"), TOPICS.zone_control("salon-honneur"))
        )
        assert (msg.state, msg.by) == ("closed", "sophie")
        page.wait_for_selector("#zone-salon-honneur[data-control='closed']")

        # a correction with its reason
        page.fill("#zone-nef .delta", "-1")
        page.fill("#zone-nef .reason", "double pulse on lane 1")
        page.click("#zone-nef .apply-correction")
        page.wait_for_selector("#audit tr[data-action='correction']")
        assert "double pulse on lane 1" in page.locator("#audit").inner_text()
        page.wait_for_function(
            "() => document.querySelector('#zone-nef .occupancy').textContent === '2'", timeout=5000
        )

        # evacuation needs a confirmation: cancelling does nothing
        page.click("#evacuate")
        page.click("#confirm-cancel")
        assert page.locator("#mode").get_attribute("data-mode") == "normal"
        page.click("#evacuate")
        page.fill("#confirm-reason", "drill")
        page.click("#confirm-ok")
        page.wait_for_selector("#mode[data-mode='evacuation']")
        vc = wire.parse_venue_control(retained(mosquitto.url("counter"), TOPICS.venue_control()))
        assert vc.mode == "evacuation"
        page.wait_for_timeout(1200)  # curves are redrawn once a second: let the artifact show them
        page.screenshot(path=str(artifacts / "dashboard-live.png"), full_page=True)
        assert page.js_errors == []
    finally:
        gate.close()
        counter.stop()


def test_organiser_view_and_download(mosquitto, dashboard_factory, tmp_path, page_for, artifacts):
    db = build_counter_db(tmp_path / "sesame.db", sample_day_events())
    server = dashboard_factory(db_path=db)
    page = page_for(server, "organiser")
    assert page.url.endswith("/organiser")
    page.wait_for_selector("body[data-loaded='2018-11-22']")
    assert page.locator("#unique-visitors").inner_text() == "6"
    assert page.locator("#schoolchildren").inner_text() == "3"
    # ids from the report are shown by name (English here)
    assert page.locator("#denials tr[data-key='BAD_SIGNATURE'] th").inner_text() == (
        "Forged or altered badge"
    )
    assert page.locator("#categories tr[data-key='school'] th").inner_text() == "School group"
    page.wait_for_function("() => document.getElementById('occupancy-png').naturalWidth > 0")
    with page.expect_download() as dl:
        page.click("#dl-csv")
    download = dl.value
    assert download.suggested_filename == "attendance-grand-palais-2018-11-22.csv"
    rows = list(csv.reader(io.StringIO(open(download.path(), encoding="utf-8").read())))
    assert rows[0] == ["day", "metric", "key", "value"]
    assert ["2018-11-22", "unique_visitors", "", "6"] in rows
    with page.expect_download() as dl:
        page.click("#dl-xlsx")
    assert open(dl.value.path(), "rb").read(2) == b"PK"  # a zip container: xlsx
    page.screenshot(path=str(artifacts / "dashboard-organiser.png"), full_page=True)
    # the printable daily report: the page under its print stylesheet, as a PDF
    page.emulate_media(media="print")
    assert not page.locator("#print").is_visible() and page.locator("h1.print-only").is_visible()
    pdf = artifacts / "dashboard-daily-report.pdf"
    page.pdf(path=str(pdf), format="A4", print_background=True)
    assert pdf.read_bytes().startswith(b"%PDF")
    assert page.js_errors == []


def test_viewer_has_no_actions_and_is_refused(dashboard, page_for, artifacts):
    page = page_for(dashboard, "viewer", locale="fr-FR")
    page.set_viewport_size({"width": 820, "height": 1180})  # a tablet, portrait
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("#zone-nef").count() == 1
    assert page.locator("main h2").first.inner_text() == "Espaces"  # French from the browser
    page.screenshot(path=str(artifacts / "dashboard-live-tablet-viewer-fr.png"), full_page=True)
    for sel in (".close-zone", ".open-zone", ".correction", "#evacuate", "#nav-organiser"):
        assert page.locator(sel).count() == 0, sel
    # the server refuses the action even with the page's own CSRF token
    status = page.evaluate(
        """async () => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch('/api/zones/nef/close', {method: 'POST',
                headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
                body: '{}'});
            return [r.status, (await r.json()).error.code];
        }"""
    )
    assert status == [403, "FORBIDDEN"]
    assert page.goto(dashboard.url + "/organiser").status == 403


def test_french_from_the_browser_and_the_switch(dashboard, page_for):
    page = page_for(dashboard, None, locale="fr-FR")
    page.goto(dashboard.url + "/")  # anonymous: sent to the sign-in page
    assert "/login" in page.url
    assert page.locator("#login-button").inner_text() == "Connexion"
    page.fill("#username", "victor")
    page.fill("#password", "wrong password")
    page.click("#login-button")
    page.wait_for_selector("#login-error:not([hidden])")
    assert "incorrect" in page.locator("#login-error").inner_text()
    page.click("button[data-lang='en']")
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    assert page.locator("#login-button").inner_text() == "Sign in"


def test_organiser_view_shows_when_each_zone_filled(dashboard_factory, tmp_path, page_for):
    """The first time each zone was near full and full, in the venue's time: a correction
    of +9,900 at 10:20 puts the Nef (capacity 11,000, near full at 90%) over its near-full
    threshold; it never fills."""
    corr = wire.Correction(id="corr-big", zone="nef", delta=9900, reason="count at the doors",
                           by="officer", ts=datetime.fromisoformat("2018-11-22T10:20:00+01:00"))
    events = sample_day_events() + [(TOPICS.corrections(), corr.to_json())]
    server = dashboard_factory(db_path=build_counter_db(tmp_path / "sesame.db", events))
    page = page_for(server, "organiser")
    page.wait_for_selector("body[data-loaded='2018-11-22']")
    nef = page.locator("#filled tr[data-key='nef'] td").inner_text()
    assert nef == "near full 10:20:00 · full not reached"  # Paris time, as the peaks
    balcons = page.locator("#filled tr[data-key='balcons'] td").inner_text()
    assert balcons == "near full not reached · full not reached"
    assert page.js_errors == []
