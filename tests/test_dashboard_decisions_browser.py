"""A safety officer decides held findings from the live view, in a real headless Chromium,
with the real counter on a real Mosquitto: a lane's second new outbox of the day and a
burst of exits show as alerts with Confirm / Accept / Reject (French labels for a French
browser, no buttons for a viewer, whom the server refuses anyway); the officer's click goes
through CSRF to control/decisions, the counter applies it once under the officer's name,
and the alert ends when the counter's list no longer holds the finding."""

from __future__ import annotations

import json
import sqlite3

from sesame.counter.service import Counter
from tests.fixtures.dashboard import ROLE_USER, sign_in, wait_for
from tests.test_dashboard_browser import page_for  # noqa: F401 (fixture)
from tests.test_lane_trust_mqtt import START, VENUE, Clock, Lane, Watcher, fill_nef
from tests.test_lane_trust_mqtt import T as TOPICS


def test_officer_confirms_an_epoch_change_and_rejects_a_burst_from_the_live_view(
    mosquitto, dashboard_factory, page_for, tmp_path, artifacts  # noqa: F811
):
    db = tmp_path / "c.db"
    counter = Counter(VENUE, db, mosquitto.url("counter"), clock=Clock(START)).start()
    server = dashboard_factory()
    watch = Watcher(mosquitto.url("dashboard"), [TOPICS.alerts(), TOPICS.occupancy()])
    lane = Lane(mosquitto.url("gate-churchill-in-1"), "churchill-in-1", epoch="ep2")
    exit_lane = Lane(mosquitto.url("gate-clemenceau-out-1"), "clemenceau-out-1")
    try:
        fill_nef(mosquitto, 200)  # churchill-in-1's outbox is ep1
        for epoch in ("ep2", "ep3"):  # a new outbox, and another one the same day
            lane.status(epoch=epoch)
        exit_lane.passages(150, START, spread_s=1.0)  # a tripod: 40 a minute at most
        wait_for(lambda: watch.finding("EPOCH_CHANGE_HELD", "churchill-in-1")
                 and watch.finding("IMPLAUSIBLE_RATE", "clemenceau-out-1")
                 and watch.finding("IMPLAUSIBLE_RATE", "clemenceau-out-1").count == 150,
                 what="both findings")  # fmt: skip

        page = page_for(server, "safety")
        page.wait_for_selector("body[data-ready='1']")
        epoch_li = page.locator("#alerts li[data-kind='EPOCH_CHANGE_HELD']"
                                "[data-subject='churchill-in-1']")  # fmt: skip
        rate_li = page.locator("#alerts li[data-kind='IMPLAUSIBLE_RATE']"
                               "[data-subject='clemenceau-out-1']")  # fmt: skip
        epoch_li.locator("button.confirm_epoch").wait_for()
        assert "new outbox ep3" in epoch_li.inner_text()
        assert "150 passages held" in rate_li.inner_text()
        assert rate_li.locator("button.accept_held").inner_text() == "Accept (count them)"
        assert rate_li.locator("button.reject_held").inner_text() == "Reject"
        page.screenshot(path=str(artifacts / "live-decisions.png"), full_page=True)

        # in French, the same buttons in French; a viewer has none
        fr = page_for(server, "safety", locale="fr-FR")
        fr_li = fr.locator("#alerts li[data-kind='IMPLAUSIBLE_RATE']")
        fr_li.locator("button.reject_held").wait_for()
        assert fr_li.locator("button.reject_held").inner_text() == "Rejeter"
        assert fr.locator("#alerts button.confirm_epoch").inner_text() == (
            "Confirmer la nouvelle mémoire"
        )
        viewer = page_for(server, "viewer")
        viewer.locator("#alerts li[data-kind='IMPLAUSIBLE_RATE']").wait_for()
        assert viewer.locator("#alerts button.decide").count() == 0
        c = sign_in(server.url, "viewer")
        r = c.post("/api/decisions", headers=c.csrf_header,
                   json={"action": "reject_held", "gate": "clemenceau-out-1"})  # fmt: skip
        assert r.status_code == 403
        c.close()
        officer = sign_in(server.url, "safety")
        r = officer.post("/api/decisions", json={"action": "reject_held", "gate": "x"})
        assert r.status_code == 403  # no CSRF token
        for body, code in [
            ({"action": "reject_held", "gate": "nowhere"}, 404),
            ({"action": "drop_all", "gate": "clemenceau-out-1"}, 422),
            ({"action": "confirm_epoch", "gate": "churchill-in-1"}, 422),
            ({"action": "confirm_epoch", "gate": "churchill-in-1", "epoch": "a b"}, 422),
            ({"action": "reject_held", "gate": "clemenceau-out-1", "count": 0}, 422),
            ({"action": "reject_held", "gate": "clemenceau-out-1", "epoch": "ep0"}, 422),
        ]:
            r = officer.post("/api/decisions", headers=officer.csrf_header, json=body)
            assert r.status_code == code, (body, r.text)
        officer.close()

        # the officer confirms the new outbox: the counter applies it, the alert ends
        epoch_li.locator("button.confirm_epoch").click()
        wait_for(lambda: watch.finding("EPOCH_CHANGE_HELD", "churchill-in-1") is None,
                 what="epoch finding cleared")  # fmt: skip
        page.wait_for_selector("#alerts li.cleared[data-kind='EPOCH_CHANGE_HELD']")
        assert epoch_li.locator("button.decide").count() == 0
        # and rejects the burst: nothing counts, the alert ends
        rate_li.locator("button.reject_held").click()
        page.wait_for_selector("#alerts li.cleared[data-kind='IMPLAUSIBLE_RATE']")
        assert watch.occupancy() == 200
        page.wait_for_function(
            "() => document.querySelector('#zone-nef .occupancy').textContent === '200'"
        )
        with sqlite3.connect(db) as conn:
            done = conn.execute("SELECT action, by, outcome, detail FROM decisions "
                                "ORDER BY applied_at").fetchall()  # fmt: skip
        user = ROLE_USER["safety"]
        assert [(a, b, o) for a, b, o, _ in done] == [
            ("confirm_epoch", user, "applied"), ("reject_held", user, "applied")]  # fmt: skip
        assert json.loads(done[1][3])["passages"] == 150
        assert not page.js_errors
    finally:
        counter.stop()
        for c in (lane, exit_lane):
            c.close()
        watch.conn.close()
