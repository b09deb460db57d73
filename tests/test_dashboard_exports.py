"""Organiser downloads through the API: the counter's own exports of a database the counter
filled, in every format, and clear refusals when there is nothing to export. On both
engines: a dashboard reads the PostgreSQL database the counters share as it reads the file."""

from __future__ import annotations

import csv
import io
import json

import pytest
from openpyxl import load_workbook

from tests.fixtures.counter import ENGINES, engine_target
from tests.fixtures.dashboard import build_counter_db, sample_day_events, sign_in


@pytest.fixture(params=ENGINES)
def organiser(dashboard_factory, tmp_path, request):
    db = build_counter_db(engine_target(request, tmp_path), sample_day_events())
    server = dashboard_factory(db_path=db)
    c = sign_in(server.url, "organiser")
    yield c
    c.close()


def test_every_format_of_a_day(organiser):
    q = "/api/exports/attendance?day=2018-11-22&format="
    r = organiser.get(q + "json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    day = r.json()["days"]["2018-11-22"]
    assert (day["unique_visitors"], day["entries"], day["schoolchildren"]) == (6, 6, 3)
    assert day["by_category"] == {"exhibitor": 1, "public": 2, "school": 3}
    assert day["denials_by_reason"] == {"BAD_SIGNATURE": 1}
    assert day["peak_occupancy"]["nef"]["value"] == 6

    r = organiser.get(q + "csv")
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="attendance-grand-palais-2018-11-22.csv"' in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert ["2018-11-22", "entries", "", "6"] in rows

    r = organiser.get(q + "xlsx")
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames  # a real workbook, readable

    r = organiser.get(q + "png")
    assert r.headers["content-type"] == "image/png" and r.content[:8] == b"\x89PNG\r\n\x1a\n"

    series = organiser.get("/api/series?day=2018-11-22").json()
    assert series["history"] == "counter" and max(n for _, n in series["zones"]["nef"]) == 6


def test_all_days_and_refusals(organiser, dashboard_factory):
    r = organiser.get("/api/exports/attendance?format=json")
    assert set(r.json()["days"]) >= {"2018-11-22"}
    r = organiser.get("/api/exports/attendance?format=png")  # a chart is of one day
    assert r.status_code == 422 and r.json()["error"]["code"] == "INVALID"
    r = organiser.get("/api/exports/attendance?day=2018-11-26&format=csv")  # not an event day
    assert r.status_code == 422 and "2018-11-26" in r.json()["error"]["message"]
    # a dashboard started without the counter's database says so, it does not crash
    bare = dashboard_factory()
    c = sign_in(bare.url, "organiser")
    r = c.get("/api/exports/attendance?format=json")
    assert r.status_code == 503 and r.json()["error"]["code"] == "NO_DATABASE"
    assert json.loads(c.get("/api/series?day=2018-11-22").text)["history"] == "none"
