"""Alerts in a real headless Chromium on a real Mosquitto: a zone oscillating around its
near-full threshold is one alert; left unacknowledged it is escalated on the broker (seen
by the pager account); a viewer sees it but is refused the acknowledgement; the safety
officer acknowledges it (audited, the escalation cleared, the tab's count gone); the alarm
tone follows audible alerts and the mute; a restarted dashboard keeps the acknowledgement."""

from __future__ import annotations

import json
import queue
from datetime import UTC, datetime, timedelta

from sesame.common import mqtt, wire
from sesame.common.venue import load_venue
from sesame.counter.occupancy import zone_state
from tests.fixtures.dashboard import sign_in, wait_for
from tests.test_dashboard_browser import page_for  # noqa: F401 (fixture)

TOPICS = wire.Topics("grand-palais")
VENUE = load_venue("config/grand-palais.toml")
T0 = datetime(2018, 11, 25, 13, 0, tzinfo=UTC)
# the Balcons (800, near full at 680, ends below 640) hovering at the threshold
OSCILLATION = [600, 681, 679, 690, 675, 685, 660, 700, 670, 690]


def publish_occupancy(conn, zone: str, n: int, second: int) -> None:
    z = VENUE.zones[zone]
    state = zone_state(n, z, closed=False, evacuating=False)
    msg = wire.Occupancy(zone, n, z.capacity, state, T0 + timedelta(seconds=second))
    conn.publish(TOPICS.occupancy(zone), msg.to_json(), 1, True).wait_for_publish(5)


def escalations(got: queue.Queue, want, timeout: float = 15.0) -> list[str]:
    """Wait for an alerts/escalated message whose keys satisfy `want`."""
    last = None

    def check():
        nonlocal last
        while not got.empty():
            last = [a["key"] for a in json.loads(got.get_nowait())["alerts"]]
        return last is not None and want(last)

    wait_for(check, timeout=timeout, what=f"escalation (last seen {last})")
    return last


def test_one_alert_escalated_refused_to_a_viewer_acknowledged_by_an_officer(
    mosquitto, dashboard_factory, page_for, artifacts  # noqa: F811
):
    server = dashboard_factory(escalate_after_s=3)
    counter = mqtt.connect(mosquitto.url("counter"), "counter-test")
    got: queue.Queue = queue.Queue()
    pager = mqtt.connect(mosquitto.url("alerts"), "pager-test", clean_start=True,
                         session_expiry=0, subscriptions=[(TOPICS.escalated_alerts(), 1)],
                         on_message=lambda m: got.put(m.payload))  # fmt: skip
    try:
        page = page_for(server, "safety")
        page.wait_for_selector("body[data-ready='1']")
        for i, n in enumerate(OSCILLATION):
            publish_occupancy(counter, "balcons", n, i * 10)
        page.wait_for_function(
            "() => document.querySelector('#zone-balcons .occupancy').textContent === '690'"
        )
        items = page.locator("#alerts li.alert")
        assert items.count() == 1, page.locator("#alerts").inner_text()
        li = page.locator("#alerts li[data-kind='near_full'][data-subject='balcons']")
        assert "unacked" in li.get_attribute("class") and li.locator(".age").count() == 1
        assert "peak 700" in li.inner_text()
        page.wait_for_function("() => document.title.startsWith('(1) ')")
        assert page.get_attribute("link[rel='icon']", "href").startswith("data:image/png")

        # nobody acknowledges: escalated on the broker, marked on the page
        assert escalations(got, lambda keys: keys == ["near_full:balcons"]) == [
            "near_full:balcons"
        ]
        page.wait_for_selector("#alerts li.escalated .badge")

        # a viewer sees it, has no button, and the server refuses it anyway
        viewer = page_for(server, "viewer")
        viewer.wait_for_selector("#alerts li[data-kind='near_full']")
        assert viewer.locator("#alerts button.ack").count() == 0
        alert_id = int(li.get_attribute("data-id"))
        refused = viewer.evaluate(
            """async (id) => {
                const csrf = document.querySelector('meta[name="csrf-token"]').content;
                const r = await fetch('/api/alerts/acknowledge', {method: 'POST',
                    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
                    body: JSON.stringify({id})});
                return [r.status, (await r.json()).error.code];
            }""",
            alert_id,
        )
        assert refused == [403, "FORBIDDEN"]

        # the safety officer acknowledges: audited, off the escalation list, count gone
        page.click("#alerts li[data-kind='near_full'] button.ack")
        page.wait_for_selector("#alerts li[data-kind='near_full'][data-acknowledged='1']")
        assert "acknowledged by sophie" in li.inner_text()
        page.wait_for_selector("#audit tr[data-action='acknowledge_alert']")
        assert escalations(got, lambda keys: keys == []) == []
        page.wait_for_function("() => !document.title.startsWith('(')")
        viewer.wait_for_selector("#alerts li[data-kind='near_full'][data-acknowledged='1']")

        # sound: enabled once by a click; a full zone sounds until muted or acknowledged
        assert page.get_attribute("body", "data-alarm") == "silent"
        page.click("#sound-on")
        publish_occupancy(counter, "balcons", 800, 200)
        page.wait_for_selector("#alerts li[data-kind='full'].unacked")
        page.wait_for_selector("body[data-alarm='sounding']")
        page.wait_for_function("() => window.__alarmBeeps > 0")
        page.click("#sound-mute")
        page.wait_for_selector("body[data-alarm='muted']")
        page.click("#sound-mute")  # unmute
        page.wait_for_selector("body[data-alarm='sounding']")
        page.wait_for_timeout(300)
        page.screenshot(path=str(artifacts / "dashboard-alerts.png"), full_page=True)
        page.click("#alerts li[data-kind='full'] button.ack")
        page.wait_for_selector("body[data-alarm='silent']")
        assert page.js_errors == [] and viewer.js_errors == []
    finally:
        counter.close()
        pager.close()

    # a restarted dashboard (same database) shows the same alerts, still acknowledged
    server.stop()
    again = dashboard_factory(escalate_after_s=3)
    c = sign_in(again.url, "viewer")
    try:
        wait_for(lambda: c.get("/api/alerts").json()["alerts"], what="alerts after restart")
        body = c.get("/api/alerts").json()
        near = next(a for a in body["alerts"] if a["key"] == "near_full:balcons")
        assert (near["id"], near["acknowledged"], near["acked_by"]) == (alert_id, True, "sophie")
        assert body["unacknowledged"] == 0 and body["escalate_after_s"] == 3
    finally:
        c.close()
