"""The plan of the venue and the counter's forecasts in a real headless Chromium: a passage
published by a lane changes the plan without a reload, a lane's status colours its marker,
a zone filling over ten minutes of event time shows "full in about N min" (the counter's
figure, the same on the card and the plan), and a saturated entry lane says so. Keyboard
and screen-reader paths: every shape is focusable with a label; the text list says the same.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sesame.common import mqtt, wire
from sesame.common.venue import load_venue, parse_venue
from sesame.dashboard.plan import plan_data
from tests.fixtures.dashboard import VENUE_FILE
from tests.test_dashboard_browser import page_for, retained  # noqa: F401 (fixture)

TOPICS = wire.Topics("grand-palais")


def event(venue, gate: str, seq: int, ts: datetime) -> tuple[str, bytes]:
    lane = venue.gates[gate]
    ev = wire.Event(gate=gate, epoch="plan1", seq=seq, ts=ts, kind="passage",
                    from_zone=lane.from_zone, to_zone=lane.to_zone, badge=f"P{seq}",
                    category="professional")  # fmt: skip
    return TOPICS.events(gate), ev.to_json()


def text(page, sel: str) -> str:
    return page.locator(sel).first.text_content() or ""


def test_plan_live_and_full_in(mosquitto, dashboard_factory, tmp_path, page_for, artifacts):  # noqa: F811
    from sesame.counter.service import Counter

    venue = load_venue(VENUE_FILE)
    db = tmp_path / "sesame.db"
    counter = Counter(venue, db, mosquitto.url("counter"), tick_s=0.2, status_s=1).start()
    lanes = {g: mqtt.connect(mosquitto.url(f"gate-{g}"), f"gate-{g}")
             for g in ("churchill-in-1", "salon-in-1")}  # fmt: skip
    try:
        server = dashboard_factory(db_path=db)
        page = page_for(server, "safety")
        page.wait_for_selector("body[data-ready='1']")
        page.wait_for_selector("#plan svg")
        assert page.locator("#plan-section").is_visible()
        assert page.locator("#plan .plan-zone").count() == 3
        assert page.locator("#plan .plan-lane").count() == len(venue.gates)
        page.wait_for_selector("#plan-zone-nef[data-level='open']")
        page.evaluate("() => { window.__sameDocument = true; }")

        # one passage through the Churchill entrance: the plan's figure follows, live
        t0 = datetime.fromisoformat("2018-11-25T11:00:00+01:00")
        topic, payload = event(venue, "churchill-in-1", 1, t0)
        lanes["churchill-in-1"].publish(topic, payload, 1, False)
        page.wait_for_function(
            "() => document.querySelector('#plan-zone-nef .plan-figure').textContent"
            " === '1 / 11,000'", timeout=5000)  # fmt: skip
        assert "1 / 11,000" in page.get_attribute("#plan-zone-nef", "aria-label")
        assert "1 / 11,000" in text(page, "#plan-item-zone-nef")  # the text equivalent
        st = wire.GateStatus("churchill-in-1", online=True, outbox=0, controller="ok")
        lanes["churchill-in-1"].publish(TOPICS.gate_status("churchill-in-1"), st.to_json(), 1, True)
        page.wait_for_selector("#plan-lane-churchill-in-1[data-online='online']")
        assert "online" in page.get_attribute("#plan-lane-churchill-in-1", "aria-label")
        assert page.locator("#plan-lane-churchill-in-2[data-online='never_seen']").count() == 1
        page.screenshot(path=str(artifacts / "dashboard-plan-passage.png"), full_page=False)

        # the Salon d'honneur fills: 300 people in 7.5 minutes of event time, one every 1.5 s
        pub = lanes["salon-in-1"]
        for i in range(300):
            topic, payload = event(venue, "salon-in-1", i + 1, t0 + timedelta(seconds=1.5 * i))
            pub.publish(topic, payload, 1, False)
        page.wait_for_function(
            "() => document.querySelector('#plan-zone-salon-honneur .plan-figure').textContent"
            " === '300 / 1,000'", timeout=15000)  # fmt: skip
        occ = None
        for _ in range(50):  # the retained message: what every client gets
            occ = wire.parse_occupancy(retained(mosquitto.url("counter"),
                                                TOPICS.occupancy("salon-honneur")))  # fmt: skip
            if occ.occupancy == 300:
                break
        assert occ.occupancy == 300 and occ.full_in_min is not None
        assert 15 <= occ.full_in_min <= 25  # 700 left at roughly 40 a minute
        expected = f"full in about {occ.full_in_min} min"
        page.wait_for_function(
            "(s) => document.querySelector('#zone-salon-honneur .full-in').textContent === s",
            arg=expected, timeout=5000)  # fmt: skip
        assert page.locator("#zone-salon-honneur .full-in").is_visible()
        assert text(page, "#plan-zone-salon-honneur .plan-forecast") == expected
        assert expected in page.get_attribute("#plan-zone-salon-honneur", "aria-label")
        # the Nef is not filling (its people went on into the Salon): no estimate
        assert not page.locator("#zone-nef .full-in").is_visible()
        assert text(page, "#plan-zone-nef .plan-forecast") == ""

        # the Salon's entry lane passes 40 a minute, a tripod's maximum: saturated
        assert occ.entry_rates == {"salon-in-1": 40}
        page.wait_for_selector("#plan-lane-salon-in-1[data-saturated='1']")
        assert "40/min of 40/min" in page.get_attribute("#plan-lane-salon-in-1", "aria-label")
        assert re.search(r"40/min of 40/min — saturated", text(page, "#gate-salon-in-1 .rate"))

        # keyboard: a zone on the plan is focusable, Enter goes to its card
        page.focus("#plan-zone-salon-honneur")
        page.keyboard.press("Enter")
        assert page.evaluate("() => document.activeElement.id") == "zone-salon-honneur"
        assert page.evaluate("() => window.__sameDocument") is True
        page.locator("#plan-section details summary").click()
        page.screenshot(path=str(artifacts / "dashboard-plan-full-in.png"), full_page=True)

        # closing the zone removes the estimate everywhere
        page.click("#zone-salon-honneur .close-zone")
        page.wait_for_selector("#plan-zone-salon-honneur[data-level='closed']", timeout=10000)
        page.wait_for_function(
            "() => document.querySelector('#zone-salon-honneur .full-in').hidden", timeout=5000
        )
        assert text(page, "#plan-zone-salon-honneur .plan-forecast") == ""

        # in French
        fr = page_for(server, "viewer", locale="fr-FR")
        fr.wait_for_selector("body[data-ready='1']")
        fr.wait_for_selector("#plan-zone-salon-honneur[data-level='closed']")
        assert fr.locator("#plan-title").inner_text() == "Plan du site"
        assert "40/min sur 40/min" in fr.get_attribute("#plan-lane-salon-in-1", "aria-label")
        assert "FERMÉ" in fr.get_attribute("#plan-zone-salon-honneur", "aria-label")
        fr.screenshot(path=str(artifacts / "dashboard-plan-fr.png"), full_page=False)
        assert page.js_errors == [] and fr.js_errors == []
    finally:
        for c in lanes.values():
            c.close()
        counter.stop()


def test_without_outlines_the_page_has_no_plan():
    import tomllib

    data = tomllib.loads(VENUE_FILE.read_text(encoding="utf-8"))
    data.pop("plan")
    p = plan_data(parse_venue(data))
    assert p["zones"] == [] and p["viewbox"] is None
    # the lanes still carry their kind's maximum, for the rates in the lane table
    assert {ln["id"]: ln["max_per_min"] for ln in p["lanes"]}["churchill-in-1"] == 60
    assert all("position" not in ln for ln in p["lanes"])
