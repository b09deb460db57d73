"""Attendance exports against a hand-computed fixture (JSON, CSV, XLSX via openpyxl, PNG)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta

import pytest

from sesame.counter import exports, registry
from tests.fixtures.counter import PARIS

D1 = datetime(2018, 11, 22, tzinfo=PARIS)
D2 = datetime(2018, 11, 23, tzinfo=PARIS)


def at(day, hh, mm, ss=0):
    return day + timedelta(hours=hh, minutes=mm, seconds=ss)


MANIFEST = """badge_id,token,name,category,days,group_size,organisation,department,tshirt
S1,SES1.a.b,Class 4B,school,all,25,College Jean Moulin,75,M
S2,SES1.c.d,Class 3A,school,all,10,College Voltaire,93,
P1,SES1.e.f,Ada L,public,all,1,ACME,,L
P2,SES1.g.h,Alan T,public,all,1,,,
"""


@pytest.fixture
def attendance_db(make_core, lanes, tmp_path):
    """Two days of hand-written traffic; the expected figures are worked out in the tests.
    Delivered late (the counter's clock is past both days): placed by the lanes' stamps."""
    lanes.clock = at(D2, 12, 0)
    core = make_core()
    ev = []
    ev += [lanes.event("in-1", badge="S1", category="school", group_size=25,
                       ts=at(D1, 9, 10, i)) for i in range(25)]  # fmt: skip
    ev.append(lanes.event("in-2", badge="P1", ts=at(D1, 9, 20)))
    ev.append(lanes.event("in-1", badge="P2", ts=at(D1, 9, 40)))
    ev += [lanes.event("in-2", badge="S2", category="school", group_size=10,
                       ts=at(D1, 10, 5, i)) for i in range(10)]  # fmt: skip
    ev.append(lanes.event("in-1", kind="denied", badge="X9", reason="NOT_VALID_TODAY",
                          ts=at(D1, 10, 10)))  # fmt: skip
    ev.append(lanes.event("in-1", kind="denied", badge="X8", reason="REVOKED", ts=at(D1, 10, 11)))
    ev.append(lanes.event("in-2", kind="denied", badge="X8", reason="REVOKED", ts=at(D1, 10, 12)))
    ev += [lanes.event("out-1", ts=at(D1, 10, 30, i)) for i in range(5)]
    ev.append(lanes.event("annex-in", badge="P1", ts=at(D1, 10, 45)))
    # day 2
    ev.append(lanes.event("in-1", badge="P1", ts=at(D2, 9, 30)))
    ev.append(lanes.event("in-1", badge="P2", ts=at(D2, 9, 31)))
    ev.append(lanes.event("out-1", ts=at(D2, 9, 40)))
    ev.append(lanes.event("in-2", badge="P2", ts=at(D2, 9, 50)))
    # delivered in two shuffled halves: the order of arrival must not matter
    core.handle(ev[::2])
    core.handle(ev[1::2])
    (tmp_path / "manifest.csv").write_text(MANIFEST, encoding="utf-8")
    assert registry.import_manifest(tmp_path / "counter.db", tmp_path / "manifest.csv") == 4
    return tmp_path / "counter.db"


EXPECTED_DAY1 = {
    "unique_visitors": 37,
    "entries": 37,
    "anonymous_entries": 0,
    "by_category": {"public": 2, "school": 35},
    "arrivals_by_hour": {"09": 27, "10": 10},
    "peak_occupancy": {
        "hall": {"value": 37, "at": "2018-11-22T10:05:09+01:00"},
        "annex": {"value": 1, "at": "2018-11-22T10:45:00+01:00"},
        "roof": {"value": 0, "at": None},
    },
    # hall: capacity 30, near full at 0.8 -> the 24th pupil of S1 (09:10:23); full when the
    # hall and the zones that walk back into it (annex, roof) hold 30: S2's third (10:05:02)
    "near_full_at": {"hall": "2018-11-22T09:10:23+01:00", "annex": None, "roof": None},
    "full_at": {"hall": "2018-11-22T10:05:02+01:00", "annex": None, "roof": None},
    "schoolchildren": 35,
    "departements": {"75": 25, "93": 10},
    "denials_by_reason": {"NOT_VALID_TODAY": 1, "REVOKED": 2},
    "residue": {"annex": 1, "hall": 31, "roof": 0},
    # the hand-written traffic ignores the leases: the export says so rather than hide it
    "over_capacity": {"hall": {"peak": 37, "capacity": 30, "offline_policy": "lease"}},
}
EXPECTED_DAY2 = {
    "unique_visitors": 2,
    "entries": 3,
    "anonymous_entries": 0,
    "by_category": {"public": 2},
    "arrivals_by_hour": {"09": 3},
    "peak_occupancy": {
        "hall": {"value": 2, "at": "2018-11-23T09:31:00+01:00"},
        "annex": {"value": 0, "at": None},
        "roof": {"value": 0, "at": None},
    },
    "near_full_at": {"hall": None, "annex": None, "roof": None},
    "full_at": {"hall": None, "annex": None, "roof": None},
    "schoolchildren": 0,
    "departements": {},
    "denials_by_reason": {},
    "residue": {},
    "over_capacity": {},
}
EXPECTED_TOTALS = {"unique_visitors": 37, "visits": 39, "entries": 40, "schoolchildren": 35,
                   "denials": 3}  # fmt: skip


def test_attendance_figures(attendance_db, small_venue):
    report = exports.attendance(attendance_db, small_venue)
    assert report["days"]["2018-11-22"] == EXPECTED_DAY1
    assert report["days"]["2018-11-23"] == EXPECTED_DAY2
    assert report["totals"] == EXPECTED_TOTALS
    one = exports.attendance(attendance_db, small_venue, day="2018-11-23")
    assert list(one["days"]) == ["2018-11-23"] and one["totals"]["visits"] == 2


def test_registry_keeps_extra_columns_but_no_names(attendance_db):
    import sqlite3

    conn = sqlite3.connect(attendance_db)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(badges)")]
    assert "name" not in cols
    row = conn.execute("SELECT organisation, department, group_size, extra FROM badges "
                       "WHERE badge_id = 'S1'").fetchone()  # fmt: skip
    assert row[:3] == ("College Jean Moulin", "75", 25) and json.loads(row[3]) == {"tshirt": "M"}
    assert "Class 4B" not in json.dumps(conn.execute("SELECT * FROM badges").fetchall())


def test_registry_refuses_a_bad_manifest_whole(tmp_path):
    db = tmp_path / "r.db"
    bad = tmp_path / "bad.csv"
    bad.write_text("badge_id,token,group_size\nA1,t,2\nA2,t,lots\n", encoding="utf-8")
    with pytest.raises(registry.ManifestError, match=r"bad.csv:3: group_size 'lots'"):
        registry.import_manifest(db, bad)
    bad.write_text("token\nt\n", encoding="utf-8")
    with pytest.raises(registry.ManifestError, match=r"bad.csv:1: missing column 'badge_id'"):
        registry.import_manifest(db, bad)
    bad.write_text("badge_id,token\nA1,t\nA1,u\n", encoding="utf-8")
    with pytest.raises(registry.ManifestError, match="appears twice"):
        registry.import_manifest(db, bad)
    assert not db.exists()  # checked whole before anything is written


def test_json_csv_and_xlsx_files(attendance_db, small_venue, tmp_path):
    from openpyxl import load_workbook

    report = exports.attendance(attendance_db, small_venue)
    exports.write_attendance(report, "json", tmp_path / "a.json")
    assert json.loads((tmp_path / "a.json").read_text())["days"]["2018-11-22"] == EXPECTED_DAY1

    buf = io.BytesIO()
    exports.write_attendance(report, "csv", buf)
    rows = list(csv.reader(io.StringIO(buf.getvalue().decode("utf-8"))))
    assert rows[0] == ["day", "metric", "key", "value"]
    got = {(d, m, k): v for d, m, k, v in rows[1:]}
    assert got[("2018-11-22", "unique_visitors", "")] == "37"
    assert got[("2018-11-22", "peak_occupancy", "hall")] == "37"
    assert got[("2018-11-22", "peak_occupancy_at", "hall")] == "2018-11-22T10:05:09+01:00"
    assert got[("2018-11-22", "departements", "93")] == "10"
    assert got[("2018-11-22", "denials_by_reason", "REVOKED")] == "2"
    assert got[("2018-11-23", "arrivals_by_hour", "09")] == "3"
    assert got[("total", "unique_visitors", "")] == "37"
    assert got[("2018-11-22", "near_full_at", "hall")] == "2018-11-22T09:10:23+01:00"
    assert got[("2018-11-22", "full_at", "hall")] == "2018-11-22T10:05:02+01:00"
    assert got[("2018-11-22", "full_at", "annex")] == ""  # never

    exports.write_attendance(report, "xlsx", tmp_path / "a.xlsx")
    wb = load_workbook(tmp_path / "a.xlsx")
    summary = list(wb["Summary"].values)
    head = summary[0]
    day1 = dict(zip(head, summary[1], strict=True))
    assert day1["day"] == "2018-11-22" and day1["unique_visitors"] == 37
    assert day1["schoolchildren"] == 35 and day1["peak hall"] == 37
    assert day1["peak hall at"] == "2018-11-22T10:05:09+01:00"
    assert day1["hall near full at"] == "2018-11-22T09:10:23+01:00"
    assert day1["hall full at"] == "2018-11-22T10:05:02+01:00"
    assert ("2018-11-22", "75", 25) in list(wb["departements"].values)
    assert ("2018-11-22", "school", 35) in list(wb["by_category"].values)
    with pytest.raises(ValueError, match="unknown format"):
        exports.write_attendance(report, "pdf", tmp_path / "a.pdf")


def test_occupancy_series_and_plot(attendance_db, small_venue, tmp_path):
    series = exports.occupancy_series(attendance_db, small_venue, "2018-11-22")
    hall = dict(series["hall"])
    assert hall["2018-11-22T09:10:00+01:00"] == 25
    assert hall["2018-11-22T10:05:00+01:00"] == 37
    assert hall["2018-11-22T10:45:00+01:00"] == 31
    assert exports.occupancy_series(attendance_db, small_venue, "2018-11-22", "annex")[
        "annex"][-1] == ("2018-11-22T10:45:00+01:00", 1)  # fmt: skip
    exports.plot_occupancy(attendance_db, small_venue, "2018-11-22", tmp_path / "p.png")
    from PIL import Image

    img = Image.open(tmp_path / "p.png")
    assert img.format == "PNG" and img.size == (1000, 500)


def test_corrections_count_in_the_peak_at_their_time(make_core, lanes, small_venue, tmp_path):
    from sesame.common import wire

    lanes.clock = at(D1, 12, 0)  # the counter's clock: after the traffic below
    core = make_core()
    core.handle([lanes.event("in-1", ts=at(D1, 9, 0, i)) for i in range(3)])
    c = wire.Correction(id="corr-0001", zone="hall", delta=10, reason="side door",
                        by="officer", ts=at(D1, 9, 30))  # fmt: skip
    core.handle([(wire.Topics("testhall").corrections(), c.to_json())])
    core.handle([lanes.event("out-1", ts=at(D1, 10, 0))])
    day = exports.attendance(tmp_path / "counter.db", small_venue, "2018-11-22")["days"][
        "2018-11-22"
    ]
    assert day["peak_occupancy"]["hall"] == {"value": 13, "at": "2018-11-22T09:30:00+01:00"}
    assert day["entries"] == 3  # a correction is not an entry


# Registry text that a spreadsheet would run: neutralised in both spreadsheet formats.
RISKY = ["=1+1", "@SUM(A1)", "+cmd|' /C calc'!A0", "-2+3+cmd|x"]


@pytest.fixture
def risky_db(make_core, lanes, tmp_path):
    """School badges whose registry département is a formula, plus one plain negative number."""
    lanes.clock = at(D1, 12, 0)
    core = make_core()
    departments = [*RISKY, "-3", "2A"]
    core.handle([lanes.event("in-1", badge=f"S{i}", category="school", ts=at(D1, 10, i))
                 for i in range(len(departments))])  # fmt: skip
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["badge_id", "token", "category", "days", "group_size", "department"])
    for i, d in enumerate(departments):
        w.writerow([f"S{i}", f"SES1.{i}.x", "school", "all", 1, d])
    (tmp_path / "manifest.csv").write_text(buf.getvalue(), encoding="utf-8", newline="")
    registry.import_manifest(tmp_path / "counter.db", tmp_path / "manifest.csv")
    return tmp_path / "counter.db"


def test_registry_formulas_are_plain_text_in_the_csv(risky_db, small_venue):
    report = exports.attendance(risky_db, small_venue, "2018-11-22")
    assert sorted(report["days"]["2018-11-22"]["departements"]) == sorted([*RISKY, "-3", "2A"])
    buf = io.BytesIO()
    exports.write_attendance(report, "csv", buf)
    rows = list(csv.reader(io.StringIO(buf.getvalue().decode("utf-8"), newline="")))
    depts = {k: v for _d, m, k, v in rows[1:] if m == "departements"}
    # the usual neutralisation: a leading apostrophe, the text kept whole after it
    assert sorted(depts) == sorted(["'" + r for r in RISKY] + ["-3", "2A"]), depts
    assert set(depts.values()) == {"1"}
    # plain numbers, negative ones included, stay numbers
    assert ("2018-11-22", "unique_visitors", "", "6") in [tuple(r) for r in rows]


def test_registry_formulas_are_plain_text_in_the_xlsx(risky_db, small_venue):
    from openpyxl import load_workbook

    report = exports.attendance(risky_db, small_venue, "2018-11-22")
    buf = io.BytesIO()
    exports.write_attendance(report, "xlsx", buf)
    wb = load_workbook(io.BytesIO(buf.getvalue()))
    cells = [c for ws in wb for row in ws.iter_rows() for c in row]
    assert [c.value for c in cells if c.data_type == "f"] == []
    keys = [r[1] for r in wb["departements"].iter_rows(min_row=2, values_only=True)]
    assert sorted(keys) == sorted([*RISKY, "-3", "2A"])  # the text itself, as text
    summary = dict(zip(*wb["Summary"].values, strict=False))
    assert summary["unique_visitors"] == 6


def test_tab_and_carriage_return_lead_nowhere_in_the_csv():
    """The registry strips them, but a category comes from whatever the lane sent."""
    day = {
        "unique_visitors": -3,
        "entries": 0,
        "anonymous_entries": 0,
        "schoolchildren": 0,
        "peak_occupancy": {},
        "by_category": {"\t=1+1": 2, "\r@x": 1, "-3": 4},
        "arrivals_by_hour": {},
        "departements": {},
        "denials_by_reason": {},
        "residue": {},
    }
    buf = io.BytesIO()
    exports.write_attendance({"venue": "v", "days": {"2018-11-22": day}}, "csv", buf)
    rows = list(csv.reader(io.StringIO(buf.getvalue().decode("utf-8"), newline="")))
    assert ["2018-11-22", "by_category", "'\t=1+1", "2"] in rows
    assert ["2018-11-22", "by_category", "'\r@x", "1"] in rows
    assert ["2018-11-22", "by_category", "-3", "4"] in rows
    assert ["2018-11-22", "unique_visitors", "", "-3"] in rows


def test_full_counts_those_who_may_walk_back_in(make_core, lanes, small_venue, tmp_path):
    """The hall (capacity 30) is full when the hall, the annex and the roof together hold 30,
    as the leases count it: people upstairs may walk back down at any moment. A correction
    counts at its own time; near full (0.8: 24 people) reads the hall's own occupancy."""
    from sesame.common import wire

    lanes.clock = at(D1, 12, 0)
    core = make_core()
    core.handle([lanes.event("in-1", ts=at(D1, 9, 0, i)) for i in range(22)])
    core.handle([lanes.event("roof-up", ts=at(D1, 9, 5, i)) for i in range(4)])  # hall 18
    core.handle([lanes.event("annex-in", ts=at(D1, 9, 6, i)) for i in range(5)])  # hall 13
    core.handle([lanes.event("in-2", ts=at(D1, 9, 10, i)) for i in range(7)])  # hall 20, load 29
    c = wire.Correction(id="corr-0002", zone="hall", delta=1, reason="side door",
                        by="officer", ts=at(D1, 9, 20))  # fmt: skip
    core.handle([(wire.Topics("testhall").corrections(), c.to_json())])  # load 30: full
    core.handle([lanes.event("annex-out", ts=at(D1, 9, 30, i)) for i in range(3)])  # hall 24
    day = exports.attendance(tmp_path / "counter.db", small_venue, "2018-11-22")["days"][
        "2018-11-22"
    ]
    assert day["full_at"]["hall"] == "2018-11-22T09:20:00+01:00"
    assert day["near_full_at"]["hall"] == "2018-11-22T09:30:02+01:00"  # the third one back
    assert day["near_full_at"]["annex"] is None  # 5 of 8 never reached 0.9
    assert day["full_at"] == {"hall": "2018-11-22T09:20:00+01:00", "annex": None, "roof": None}
