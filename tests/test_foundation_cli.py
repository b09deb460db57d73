"""The `sesame` command line as a whole: every subcommand has --help, bad usage is one line
and exit 2, and the entry point stays fast (heavy modules load inside handlers)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from sesame.cli import main
from tests.fixtures.foundation import leaves, walk

ALL = [path for path, _ in walk()]
LEAVES = [path for path, _ in leaves()]


def test_the_tree_has_the_designed_commands():
    have = {" ".join(p) for p in ALL}
    for cmd in (
        "config check",
        "badges keygen",
        "badges issue",
        "badges verify",
        "badges revoke",
    ):
        assert cmd in have


@pytest.mark.parametrize("path", ALL, ids=" ".join)
def test_help(path, capsys):
    with pytest.raises(SystemExit) as ex:
        main([*path, "--help"])
    assert ex.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sesame " + " ".join(path))


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_unknown_option_is_one_line_exit_2(path, capsys):
    with pytest.raises(SystemExit) as ex:
        main([*path, "--no-such-option-anywhere"])
    assert ex.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("sesame") and "error" in err and "(see --help)" in err


@pytest.mark.parametrize(
    "argv",
    [[], ["no-such-command"], ["badges"], ["badges", "issue"], ["badges", "verify", "--image"]],
    ids=repr,
)
def test_bad_usage_is_one_line_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as ex:
        main(argv)
    assert ex.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_version_and_top_level_help_from_the_console_script():
    proc = subprocess.run(
        [sys.executable, "-m", "sesame", "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout.startswith("sesame ")


def test_help_does_not_load_heavy_modules():
    """`sesame --help` must stay quick on a gate's small computer: no OpenCV, MQTT client,
    web framework or plotting library at import time."""
    code = (
        "import sys; from sesame.cli import build_parser; build_parser(); "
        "heavy = ['cv2', 'paho', 'fastapi', 'uvicorn', 'matplotlib', 'zxingcpp', 'pyzbar',"
        " 'numpy'];"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


@pytest.mark.parametrize(
    "exc, needle",
    [
        (FileNotFoundError(2, "No such file or directory", "/nowhere/out.csv.tmp"), "/nowhere"),
        (PermissionError(13, "Permission denied", "/root/x.db"), "Permission denied"),
        (sqlite3.DatabaseError("file is not a database"), "not a database"),
    ],
    ids=["missing-folder", "permission", "not-sqlite"],
)
def test_a_file_error_a_handler_missed_is_one_line_exit_2(monkeypatch, capsys, exc, needle):
    """A path the user gave that a handler did not check (e.g. `--out` in a missing folder,
    `--db` naming a file that is not SQLite) ends in one line, not a traceback."""
    import sesame.cli_config

    def handler(args):
        raise exc

    monkeypatch.setattr(sesame.cli_config, "_check", handler)
    assert main(["config", "check"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("sesame config: error: ") and needle in err


def test_a_database_option_naming_a_non_sqlite_file_is_one_line(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_text("not a database\n" * 100)
    proc = subprocess.run(
        [sys.executable, "-m", "sesame", "export", "attendance", "--db", str(junk), "--out", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
