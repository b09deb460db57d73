"""`sesame export attendance` / `sesame counter ...`: what a wrong day, a wrong database, an
unwritable output or a terminal gets: one line naming what is wrong, exit 2, nothing written."""

from __future__ import annotations

import os
import pty
import selectors
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sesame.cli import main
from tests.test_counter_cli import VENUE_FILE, _db

REPO = Path(__file__).resolve().parents[1]


def _fails(capsys, argv: list[str]) -> str:
    """Exit 2 with exactly one line on stderr; returns that line."""
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, (rc, err)
    assert len(err.splitlines()) == 1, err
    return err


def _export(db, out, *extra: str) -> list[str]:
    return ["export", "attendance", "--db", str(db), "--venue", VENUE_FILE, "--out", str(out),
            *extra]  # fmt: skip


# -- the day ------------------------------------------------------------------------------


def test_a_day_that_is_not_an_event_day_is_refused(tmp_path, capsys):
    db = _db(tmp_path)
    out = tmp_path / "a.csv"
    err = _fails(capsys, _export(db, out, "--day", "2019-01-01"))
    assert "2019-01-01 is not an event day" in err and "2018-11-22" in err, err
    err = _fails(capsys, _export(db, out, "--day", "2018-02-30"))
    assert "2018-02-30" in err and "not a date" in err, err
    assert not out.exists()
    # an event day is fine
    assert main(_export(db, out, "--day", "2018-11-24")) == 0
    assert "2018-11-24,entries,,3" in out.read_text()


# -- the database and the output files ----------------------------------------------------


def test_a_file_that_is_not_a_counter_database_is_named(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# Sesame\n\nNot a database.\n" * 50)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE notes (x)")
    out = tmp_path / "a.csv"
    for db in (readme, other):
        err = _fails(capsys, _export(db, out))
        assert err.endswith(f"{db}: not a Sesame counter database"), err
        err = _fails(capsys, ["counter", "import-badges", "--db", str(db), "--manifest",
                              str(readme)])  # fmt: skip
        assert err.endswith(f"{db}: not a Sesame counter database"), err
    assert not out.exists()
    with sqlite3.connect(other) as c:  # left as it was
        assert [r[0] for r in c.execute("SELECT name FROM sqlite_master")] == ["notes"]
    err = _fails(capsys, _export(tmp_path, out))
    assert f"{tmp_path}: " in err, err


@pytest.mark.timeout(60)
def test_counter_run_names_a_wrong_database_before_any_broker(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# Sesame\n" * 100)
    err = _fails(capsys, ["counter", "run", "--venue", VENUE_FILE, "--db", str(readme),
                          "--broker", "mqtt://127.0.0.1:1"])  # fmt: skip
    assert err.endswith(f"{readme}: not a Sesame counter database"), err


def test_an_output_that_cannot_be_written_is_named(tmp_path, capsys):
    db = _db(tmp_path)
    bad = "/nonexistent/dir/a.xlsx"
    err = _fails(capsys, _export(db, bad, "--format", "xlsx"))
    assert bad in err and ".tmp" not in err, err
    err = _fails(capsys, _export(db, tmp_path, "--format", "xlsx"))
    assert f"{tmp_path}: " in err and "directory" in err, err
    # a bad --plot is found before anything is written
    out = tmp_path / "a.csv"
    err = _fails(capsys, _export(db, out, "--plot", "/nonexistent/dir/p.png"))
    assert "/nonexistent/dir/p.png" in err, err
    assert not out.exists()
    assert not list(tmp_path.glob("*.tmp"))


# -- binary formats and terminals ---------------------------------------------------------


def _export_to(stdout, db, fmt: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sesame", *_export(db, "-", "--format", fmt)],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, timeout=60,
    )  # fmt: skip


def test_xlsx_is_refused_on_a_terminal_but_written_to_a_pipe(tmp_path):
    db = _db(tmp_path)
    master, slave = pty.openpty()
    try:
        done = _export_to(slave, db, "xlsx")
        os.close(slave)
        shown = b""
        sel = selectors.DefaultSelector()
        sel.register(master, selectors.EVENT_READ)
        while sel.select(0.2):
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(master)
    err = done.stderr.decode().strip()
    assert done.returncode == 2 and len(err.splitlines()) == 1, err
    assert "terminal" in err and "xlsx" in err, err
    assert shown == b""  # nothing binary reached the terminal
    piped = _export_to(subprocess.PIPE, db, "xlsx")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout[:2] == b"PK"  # a zip: the XLSX itself
