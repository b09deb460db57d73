"""The organiser view in a real headless Chromium: which day it opens on, a day with data and
an empty day (tables say "no data", never an object's name), and charts that span the day's
opening hours in the venue's time zone."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from PIL import Image

from sesame.common.venue import load_venue
from sesame.dashboard.organiser_view import default_day, opening_hours
from sesame.venues import REFERENCE_VENUE
from tests.fixtures.counter import PARIS
from tests.fixtures.dashboard import build_counter_db, passage, sample_day_events
from tests.test_dashboard_browser import page_for  # noqa: F401  (a fixture)

SATURDAY = "2018-11-24"  # 10:00-16:00
FRIDAY = "2018-11-23"  # 09:00-18:00, nothing counted in these tests
TABLES = ("categories", "departements", "denials")


def _saturday_events() -> list[tuple[str, bytes]]:
    badges = [("P7", "public", 10), ("P8", "public", 12), ("S9", "school", 15)]
    return [
        passage("churchill-in-1", i + 1, f"{SATURDAY}T{h}:05:00+01:00", b, cat, epoch="sat")
        for i, (b, cat, h) in enumerate(badges)
    ]


def _no_object_text(page) -> None:
    """No "[object HTMLTableCellElement]" (or any object's name) anywhere on the page."""
    assert "[object" not in page.locator("body").inner_text()
    assert "[object" not in page.content()


def _plot_span(page) -> str:
    """The time span the occupancy PNG's x axis was drawn with (read back from its axes)."""
    src = page.evaluate("() => document.getElementById('occupancy-png').src")  # absolute
    r = page.request.get(src)
    assert r.ok and r.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(r.body())).text["Sesame-Span"]


def _hour_labels(page) -> list[str]:
    return page.evaluate("() => Chart.getChart(document.getElementById('chart-hours')).data.labels")


def test_opens_on_the_latest_day_with_data_then_an_empty_day(
    dashboard_factory, tmp_path, page_for, artifacts  # noqa: F811
):
    # the counter ran through the event: Thursday's passages on Thursday, Saturday's on Saturday
    db = build_counter_db(tmp_path / "sesame.db", sample_day_events())
    build_counter_db(db, _saturday_events(), at=f"{SATURDAY}T15:30:00+01:00")
    server = dashboard_factory(db_path=db)  # the real clock: long after the event
    page = page_for(server, "organiser")
    page.wait_for_selector(f"body[data-loaded='{SATURDAY}']")  # not the first day (22nd)
    assert page.locator("#day").input_value() == SATURDAY
    assert page.locator("#unique-visitors").inner_text() == "3"
    assert page.locator("#categories tr[data-key='public'] td").inner_text() == "2"
    assert page.locator("#plot-hours").inner_text() == "10:00–16:00 (Europe/Paris)"
    assert _plot_span(page) == f"{SATURDAY}T10:00:00+01:00/{SATURDAY}T16:00:00+01:00"
    assert _hour_labels(page) == [f"{h}:00" for h in range(10, 16)]
    _no_object_text(page)
    page.wait_for_function("() => document.getElementById('occupancy-png').naturalWidth > 0")
    page.screenshot(path=str(artifacts / "organiser-day-with-data.png"), full_page=True)

    page.select_option("#day", FRIDAY)
    page.wait_for_selector(f"body[data-loaded='{FRIDAY}']")
    assert page.locator("#unique-visitors").inner_text() == "0"
    for table in TABLES:
        rows = page.locator(f"#{table} tbody tr")
        assert rows.count() == 1 and rows.first.inner_text() == "No data", table
    assert page.locator("#plot-hours").inner_text() == "09:00–18:00 (Europe/Paris)"
    # an empty day's plot still spans its opening hours, local time (not 01:00 to 01:00)
    assert _plot_span(page) == f"{FRIDAY}T09:00:00+01:00/{FRIDAY}T18:00:00+01:00"
    assert _hour_labels(page) == [f"{h:02d}:00" for h in range(9, 18)]
    _no_object_text(page)
    page.wait_for_function("() => document.getElementById('occupancy-png').naturalWidth > 0")
    page.screenshot(path=str(artifacts / "organiser-empty-day.png"), full_page=True)
    assert page.js_errors == []


def test_during_the_event_it_opens_on_today_even_before_any_data(
    dashboard_factory, tmp_path, page_for, artifacts  # noqa: F811
):
    db = build_counter_db(tmp_path / "sesame.db", sample_day_events())  # data on the 22nd only
    sunday_morning = datetime(2018, 11, 25, 8, 30, tzinfo=PARIS)
    server = dashboard_factory(db_path=db, clock=lambda: sunday_morning)
    page = page_for(server, "organiser", locale="fr-FR")
    page.wait_for_selector("body[data-loaded='2018-11-25']")
    assert page.locator("#day").input_value() == "2018-11-25"
    for table in TABLES:
        assert page.locator(f"#{table} tbody tr.no-data").inner_text() == "Pas de données"
    assert page.locator("#plot-hours").inner_text() == "10:00–18:00 (Europe/Paris)"
    _no_object_text(page)
    page.screenshot(path=str(artifacts / "organiser-today-empty-fr.png"), full_page=True)
    assert page.js_errors == []


def test_default_day_rules():
    venue = load_venue(REFERENCE_VENUE)
    after = datetime(2026, 1, 5, tzinfo=UTC)
    assert default_day(venue, after, set()) == "2018-11-22"  # nothing counted: day 1
    assert default_day(venue, after, {"2018-11-22", "2018-11-24"}) == "2018-11-24"
    assert default_day(venue, after, {"2017-01-01"}) == "2018-11-22"  # not an event day
    # today in Paris, although it is still the 23rd in UTC
    late = datetime(2018, 11, 23, 23, 30, tzinfo=UTC)
    assert default_day(venue, late, {"2018-11-22"}) == "2018-11-24"
    assert opening_hours(venue)[SATURDAY]["hours"] == ["10", "11", "12", "13", "14", "15"]
