"""`sesame counter run --db postgresql://…` as users run it: two counters on one database
and a real Mosquitto. One is active, the other stands by and takes over after a kill -9 or
when the active one is paused; a paused counter that wakes steps down and stands by again.
Errors about the database are one line, without the password."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

from sesame.counter.store import CounterStore
from tests.fixtures.e2e import REFERENCE

REPO = Path(__file__).resolve().parents[1]


class CounterRun:
    def __init__(self, dsn: str, name: str, credentials: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sesame", "counter", "run", "--venue", str(REFERENCE),
             "--db", dsn, "--credentials", str(credentials), "--name", name],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        )  # fmt: skip
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float, after: int = 0) -> int:
        """Index of the first line from `after` on containing `text`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, line in enumerate(self.lines[after:], after):
                if text in line:
                    return i
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} within {timeout} s; output: {self.lines}")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _term(dsn: str) -> tuple[str, int]:
    with psycopg.connect(dsn) as conn:
        holder, term = conn.execute("SELECT holder, term FROM sesame_term").fetchone()
    return holder, int(term)


def test_standby_takes_over_after_kill_9_and_a_paused_one_steps_down(mosquitto, pg_dsn):
    creds = mosquitto.credentials("counter")
    a = CounterRun(pg_dsn, "a", creds)
    b = None
    try:
        a.wait_for("active counter for venue grand-palais, term 1;", 30)
        a.wait_for("counter running: connected to the broker", 30)
        assert "postgres@127.0.0.1:5432" in a.lines[0]
        b = CounterRun(pg_dsn, "b", creds)
        b.wait_for("counter b: standing by for venue grand-palais", 30)
        t0 = time.monotonic()
        a.proc.kill()  # kill -9
        a.proc.wait()
        b.wait_for("active counter for venue grand-palais, term 2, taking over from a", 15)
        took = time.monotonic() - t0
        b.wait_for("counter running", 30)
        assert _term(pg_dsn) == ("b", 2) and took < 10

        # a comes back as the standby; b is paused: a ends b's sessions and takes term 3
        a = CounterRun(pg_dsn, "a", creds)
        a.wait_for("counter a: standing by", 30)
        os.kill(b.proc.pid, signal.SIGSTOP)
        a.wait_for("term 3, taking over from b", 30)
        os.kill(b.proc.pid, signal.SIGCONT)
        seen = len(b.lines)
        b.wait_for("no longer the active counter", 15, after=seen)
        b.wait_for("counter b: standing by", 15, after=seen)
        assert b.proc.poll() is None and _term(pg_dsn) == ("a", 3)
    finally:
        a.close()
        if b is not None:
            b.close()


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sesame", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO)  # fmt: skip


def test_database_errors_are_one_line_without_the_password(pg_dsn, tmp_path, mosquitto):
    creds = str(mosquitto.credentials("counter"))
    unreachable = "postgresql://postgres:s3cret@127.0.0.1:1/nowhere"
    done = _run("counter", "run", "--db", unreachable, "--credentials", creds)
    warning, error = done.stderr.strip().splitlines()
    assert done.returncode == 1 and "s3cret" not in done.stderr
    assert "the password in --db shows in the process list" in warning
    assert "cannot read the database" in error and "127.0.0.1:1/nowhere" in error
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id int)")  # someone else's database
    done = _run("counter", "run", "--db", pg_dsn, "--credentials", creds)
    assert done.returncode == 2 and "not a Sesame counter database" in done.stderr
    done = _run("counter", "run", "--db", "sesame.db", "--credentials", creds, "--name", "a b")
    assert done.returncode == 2 and "--name 'a b'" in done.stderr
    done = _run("dashboard", "--db", unreachable, "--accounts", str(tmp_path / "d.db"))
    assert done.returncode == 1 and "s3cret" not in done.stderr
    assert "not a readable counter database" in done.stderr


def test_export_and_import_on_postgresql(pg_dsn, tmp_path):
    CounterStore(pg_dsn).close()
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("badge_id,token,category\nB000001,t1,public\n", encoding="utf-8")
    done = _run("counter", "import-badges", "--db", pg_dsn, "--manifest", str(manifest))
    assert done.returncode == 0, done.stderr
    out = tmp_path / "a.json"
    done = _run("export", "attendance", "--db", pg_dsn, "--venue", str(REFERENCE),
                "--format", "json", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"venue": "grand-palais"' in out.read_text(encoding="utf-8")
