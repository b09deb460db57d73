"""The counter's database remembers the venue it was created for: `sesame export attendance`
without `--venue` exports with that venue's days, a different `--venue` is refused on one line,
and a counter of another venue is refused the database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sesame.cli import main
from sesame.common.venue import load_venue
from sesame.counter.service import Counter
from sesame.venues import REFERENCE_VENUE

REPO = Path(__file__).resolve().parents[1]


def _venue_a_year_later(tmp_path: Path) -> Path:
    """The reference venue one year on: same id, gates and accounts, other days."""
    text = REFERENCE_VENUE.read_text(encoding="utf-8")
    out = tmp_path / "grand-palais-2019.toml"
    out.write_text(text.replace("date = 2018-11-", "date = 2019-11-"), encoding="utf-8")
    return out


@pytest.fixture
def db_of_2019(mosquitto, tmp_path) -> tuple[Path, Path]:
    """A database as the counter creates it for the 2019 venue (a real counter, real broker)."""
    venue_file = _venue_a_year_later(tmp_path)
    db = tmp_path / "counter.db"
    Counter(load_venue(venue_file), db, mosquitto.url("counter")).start().stop()
    return db, venue_file


def _export(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["export", "attendance", "--format", "json", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_export_without_venue_uses_the_recorded_one(db_of_2019, tmp_path, capsys):
    db, _ = db_of_2019
    out = tmp_path / "a.json"
    rc, _, err = _export(capsys, "--db", str(db), "--out", str(out))
    assert rc == 0, err
    days = json.loads(out.read_text())["days"]
    assert sorted(days) == ["2019-11-22", "2019-11-23", "2019-11-24", "2019-11-25"]
    # --day is checked against the recorded venue's days too
    rc, _, err = _export(capsys, "--db", str(db), "--day", "2018-11-22", "--out", str(out))
    assert rc == 2 and "not an event day" in err


def test_same_venue_file_is_accepted_another_is_refused_on_one_line(db_of_2019, tmp_path, capsys):
    db, venue_file = db_of_2019
    out = tmp_path / "a.json"
    rc, _, err = _export(capsys, "--db", str(db), "--venue", str(venue_file), "--out", str(out))
    assert rc == 0, err
    # a copy with other comments describes the same venue: accepted
    commented = tmp_path / "commented.toml"
    commented.write_text("# my copy\n" + venue_file.read_text(encoding="utf-8"), encoding="utf-8")
    assert _export(capsys, "--db", str(db), "--venue", str(commented), "--out", str(out))[0] == 0
    out.unlink()
    rc, _, err = _export(capsys, "--db", str(db), "--venue", str(REFERENCE_VENUE), "--out",
                         str(out))  # fmt: skip
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    assert str(REFERENCE_VENUE) in err and str(db) in err and "--venue" in err
    assert not out.exists()


def test_a_counter_of_another_venue_is_refused_the_database(db_of_2019, mosquitto, tmp_path):
    db, _ = db_of_2019
    other = tmp_path / "other.toml"
    text = REFERENCE_VENUE.read_text(encoding="utf-8")
    other.write_text(text.replace('id = "grand-palais"', 'id = "other-venue"', 1), "utf-8")
    with pytest.raises(ValueError, match="belongs to venue 'grand-palais'"):
        Counter(load_venue(other), db, mosquitto.url("counter")).start()


def test_the_record_survives_as_the_command_line_uses_it(db_of_2019, tmp_path):
    """The installed command, another working directory: nothing but --db is needed."""
    db, _ = db_of_2019
    done = subprocess.run(
        [sys.executable, "-m", "sesame", "export", "attendance", "--db", str(db),
         "--format", "csv", "--out", "-"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2019-11-25" in done.stdout and "2018-11-25" not in done.stdout
