"""`sesame demo` in a real headless Chromium, as a safety officer sees it: the plan of the
venue follows the replay live (the Nef's figure rises without a reload) and a filling zone
shows the counter's "full in about N min", the same on its card and on the plan."""

from __future__ import annotations

import re

from tests.fixtures.dashboard import chromium  # noqa: F401 (fixture)
from tests.fixtures.e2e import Demo


def _nef(page) -> int:
    figure = page.locator("#plan-zone-nef .plan-figure").text_content() or ""
    return int(figure.split("/")[0].strip().replace(",", "") or 0)


def test_the_demo_plan_follows_the_replay_and_shows_full_in(tmp_path, chromium, artifacts):  # noqa: F811
    demo = Demo("--http-port", "0", "--speed", "600", "--scale", "0.1",
                "--dir", str(tmp_path / "demo"), cwd=tmp_path)
    url, password = demo.url, demo.password
    try:
        ctx = chromium.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
        page = ctx.new_page()
        page.set_default_timeout(90_000)  # a whole demo starting on a shared, loaded machine
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/login")
        page.fill("#username", "demo")
        page.fill("#password", password)
        page.click("#login-button")
        page.wait_for_url(lambda u: "/login" not in u)
        page.wait_for_selector("body[data-ready='1']")
        page.wait_for_selector("#plan svg")
        page.evaluate("() => { window.__sameDocument = true; }")

        # the plan's Nef figure rises with the replay, without a reload
        page.wait_for_function(
            "() => parseInt(document.querySelector('#plan-zone-nef .plan-figure')"
            ".textContent.replace(/[^0-9\\/]/g, '')) > 0", timeout=60000)  # fmt: skip
        first = _nef(page)
        page.screenshot(path=str(artifacts / "demo-plan-early.png"))
        page.wait_for_function(
            "(n) => parseInt(document.querySelector('#plan-zone-nef .plan-figure')"
            ".textContent.replace(/[^0-9\\/]/g, '')) > n", arg=first, timeout=60000)  # fmt: skip
        assert _nef(page) > first
        card = page.locator("#zone-nef .occupancy").first.text_content() or ""
        assert card.strip(), "the Nef's card shows no figure"

        # a filling zone: the counter's estimate appears on its card and on the plan
        page.wait_for_selector("#zone-nef .full-in:not([hidden])", timeout=90000)
        # read in one go: the replay keeps updating both while the test reads
        estimate, plan_text = page.evaluate(
            "() => [document.querySelector('#zone-nef .full-in').textContent,"
            " document.querySelector('#plan-zone-nef .plan-forecast').textContent]")  # fmt: skip
        assert re.fullmatch(r"full in about \d+ min", estimate or ""), estimate
        assert plan_text == estimate  # both drawn from the same occupancy message
        page.screenshot(path=str(artifacts / "demo-plan-full-in.png"), full_page=True)
        assert page.evaluate("() => window.__sameDocument") is True
        assert errors == []
        ctx.close()
    finally:
        demo.stop()
