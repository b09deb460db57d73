"""The demo's lanes as the safety officer sees them in a real headless Chromium: before any lane
has scanned (the replay starts at midnight, the doors open hours later) every simulated lane
is online without a fault, drawn in the "all is well" colour in the lane table and on the
plan; no `CLOCK_IMPLAUSIBLE` anywhere. Then a real fault (a lane's reader unplugged, as its
status says it) is drawn in the warning colour, never the "all is well" one. Screenshots in
test-artifacts/demo-lanes*.png."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from sesame.common import mqtt, wire
from sesame.common.venue import load_venue
from tests.fixtures.e2e import Demo

REPO = Path(__file__).resolve().parents[1]
VENUE = load_venue(REPO / "config" / "grand-palais.toml")
OK, WARN = "rgb(26, 127, 55)", "rgb(191, 135, 0)"  # style.css --ok, --warn
FAULTY = "churchill-out-1"  # an exit lane without a reader: idle until people leave

# each lane's row and plan marker: state, faults, text and the colours actually drawn
LANES_JS = """() => [...document.querySelectorAll('#gates tbody tr')].map((tr) => {
  const mark = document.querySelector(`#plan .plan-lane[data-gate="${tr.id.slice(5)}"]`);
  const shape = mark && mark.querySelector('circle, rect');
  return {id: tr.id.slice(5), online: tr.dataset.online, faults: tr.dataset.faults,
          status: tr.cells[1].textContent, last_scan: tr.cells[2].textContent.trim(),
          colour: getComputedStyle(tr.cells[1]).color,
          plan: shape ? getComputedStyle(shape).fill : null};
})"""


def test_demo_lanes_show_no_false_fault_and_a_real_one_in_the_warning_colour(
    tmp_path, chromium, artifacts
):
    demo = Demo("--http-port", "0", "--speed", "300", "--scale", "0.01",
                "--dir", str(tmp_path / "demo"))
    url, password, broker, accounts = demo.url, demo.password, demo.broker, demo.accounts
    page = None
    try:
        assert broker, "".join(demo.lines)

        page = chromium.new_page(viewport={"width": 1280, "height": 1400})
        page.set_default_timeout(90_000)  # a whole demo starting on a shared, loaded machine
        page.goto(url + "/login")
        page.fill("#username", "demo")
        page.fill("#password", password)
        page.click("#login-button")
        page.wait_for_selector("body[data-ready='1']")
        page.wait_for_function(  # long: a whole demo starting on a shared, loaded machine
            f"() => document.querySelectorAll('#gates tbody tr[data-online=\"online\"]').length"
            f" === {len(VENUE.gates)}", timeout=90000)  # fmt: skip

        # a few seconds of healthy lanes that have not scanned yet: no fault, ever
        seen = []
        until = time.monotonic() + 4
        while time.monotonic() < until:
            seen.append(page.evaluate(LANES_JS))
            time.sleep(0.25)
        page.screenshot(path=str(artifacts / "demo-lanes.png"), full_page=True)
        for lanes in seen:
            assert {x["id"] for x in lanes} == set(VENUE.gates)
            for x in lanes:
                assert x["online"] == "online" and x["faults"] == "none", x
                assert x["status"] == "online" and x["colour"] == OK, x
                assert x["plan"] == OK, x
        # the case at stake: lanes the replay has not used yet (exits, the group entrance)
        idle = {x["id"] for x in seen[-1] if x["last_scan"] in ("", "–")}
        assert FAULTY in idle and len(idle) >= 3, seen[-1]
        body = page.inner_text("body")
        # nor a lane's clock taken for a lying one on the replay's fast clock (as shown)
        for words in ("CLOCK_IMPLAUSIBLE", "lane clock behind", "lane clock ahead"):
            assert words not in body, words

        # a real fault, as the lane reports it in its status: never in the "all is well" colour
        lane = mqtt.connect(
            f"mqtt://{broker}", "", clean_start=True, session_expiry=0,
            credentials=accounts / "credentials" / f"gate-{FAULTY}.json",
        )  # fmt: skip
        stop = threading.Event()

        def report_fault() -> None:  # again and again: the lane's own heartbeat says otherwise
            while not stop.is_set():
                status = wire.GateStatus(gate=FAULTY, online=True, ts=datetime.now(UTC),
                                         faults=("READER_DISCONNECTED",))  # fmt: skip
                lane.publish(wire.Topics(VENUE.id).gate_status(FAULTY), status.to_json(), 1, True)
                stop.wait(0.5)

        reporter = threading.Thread(target=report_fault, daemon=True)
        reporter.start()
        try:
            drawn = page.wait_for_function(
                f"""() => {{ const x = ({LANES_JS})().find((l) => l.id === "{FAULTY}");
                  return x.status.includes("READER_DISCONNECTED") ? x : null; }}""",
                timeout=60000,
            ).json_value()  # fmt: skip
            page.screenshot(path=str(artifacts / "demo-lanes-fault.png"), full_page=True)
        finally:
            stop.set()
            reporter.join(5)
            lane.close(timeout=1)
        assert drawn["faults"] == "some" and drawn["status"] == "online · READER_DISCONNECTED"
        assert drawn["colour"] == WARN and drawn["plan"] == WARN, drawn
    finally:
        if page is not None:
            page.close()
        demo.stop()
