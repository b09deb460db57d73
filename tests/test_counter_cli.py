"""`sesame counter import-badges` and `sesame export attendance`: results and one-line errors."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from sesame.cli import main
from sesame.common import wire
from sesame.common.venue import load_venue
from sesame.counter.core import Core
from sesame.counter.store import CounterStore
from tests.fixtures.counter import PARIS

REPO = Path(__file__).resolve().parents[1]
VENUE_FILE = str(REPO / "config" / "grand-palais.toml")


def _db(tmp_path) -> Path:
    venue = load_venue(VENUE_FILE)
    db = tmp_path / "s.db"
    store = CounterStore(db)
    core = Core(venue, store)
    t = wire.Topics(venue.id)
    start = datetime(2018, 11, 24, 10, 0, tzinfo=PARIS)
    evs = [
        wire.Event(
            gate="churchill-in-1",
            epoch="e",
            seq=i,
            ts=start + timedelta(minutes=i),
            kind="passage",
            from_zone="outside",
            to_zone="nef",
            badge=f"B{i}",
            category="school",
        )  # fmt: skip
        for i in range(1, 4)
    ]
    core.handle([(t.events("churchill-in-1"), e.to_json()) for e in evs])
    store.close()
    return db


def test_import_badges_then_export_json(tmp_path, capsys):
    db = _db(tmp_path)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "badge_id,token,name,category,days,group_size,organisation,department\n"
        "B1,t1,Class A,school,all,20,Lycee,75\nB2,t2,Class B,school,all,10,College,13\n",
        encoding="utf-8",
    )
    assert main(["counter", "import-badges", "--db", str(db), "--manifest", str(manifest)]) == 0
    assert "imported 2 badges" in capsys.readouterr().out
    out = tmp_path / "a.json"
    png = tmp_path / "a.png"
    rc = main(["export", "attendance", "--db", str(db), "--venue", VENUE_FILE, "--format",
               "json", "--out", str(out), "--day", "2018-11-24", "--plot", str(png)])  # fmt: skip
    assert rc == 0
    day = json.loads(out.read_text())["days"]["2018-11-24"]
    assert day["unique_visitors"] == 20 + 10 + 1 and day["entries"] == 3
    assert day["departements"] == {"13": 10, "75": 20, "unknown": 1}
    assert day["peak_occupancy"]["nef"] == {"value": 3, "at": "2018-11-24T10:03:00+01:00"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "m.csv"
    bad.write_text("badge_id,token,group_size\nB1,t,0\n", encoding="utf-8")
    rc = main(["counter", "import-badges", "--db", str(tmp_path / "x.db"), "--manifest", str(bad)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.endswith("m.csv:2: group_size '0' must be 1-500")
    assert len(err.splitlines()) == 1
    rc = main(["export", "attendance", "--db", str(tmp_path / "none.db"), "--venue", VENUE_FILE,
               "--out", str(tmp_path / "o.csv")])  # fmt: skip
    assert rc == 2 and "none.db: no such database" in capsys.readouterr().err
    db = _db(tmp_path)
    rc = main(["export", "attendance", "--db", str(db), "--venue", VENUE_FILE, "--day",
               "24/11/2018", "--out", str(tmp_path / "o.csv")])  # fmt: skip
    assert rc == 2 and "is not YYYY-MM-DD" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()
    rc = main(["counter", "run", "--venue", VENUE_FILE, "--db", str(db), "--broker",
               "http://nowhere"])  # fmt: skip
    assert rc == 2 and "scheme must be mqtt" in capsys.readouterr().err
