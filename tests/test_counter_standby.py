"""Several counters on one PostgreSQL database: one active (advisory lock, a new term each
takeover), the others standing by. A standby takes over within seconds when the active
counter is killed with -9 or paused; a paused former active counter that wakes learns it
lost the role. Candidates run as separate processes, as counters on separate machines do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

from sesame.counter.standby import Leadership, holder_is_stale, lock_key

REPO = Path(__file__).resolve().parents[1]

# A counter's election loop, alone: prints "active <term>" on taking the role, "lost <why>"
# when it loses it (then exits 75, as `sesame counter run` steps down).
CANDIDATE = """
import sys, time, os
from sesame.counter.standby import Leadership
dsn, name = sys.argv[1:3]
def lost(why):
    print("lost", why, flush=True)
    os._exit(75)
lead = Leadership(dsn, "grand-palais", name, on_lost=lost, poll=0.2, beat_every=0.5,
                  stale_after=2.0)
print("standby", flush=True)
term = lead.acquire()
print("active", term, flush=True)
while True:
    time.sleep(1)
"""


class Candidate:
    def __init__(self, dsn: str, name: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CANDIDATE, dsn, name],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def wait_line(self, prefix: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if line.startswith(prefix):
                    return line
            time.sleep(0.02)
        return None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(5)


def test_stale_rule():
    assert holder_is_stale(None, 5) and holder_is_stale(5.1, 5) and not holder_is_stale(1, 5)
    assert lock_key("grand-palais") == lock_key("grand-palais") != lock_key("other")
    assert 0 <= lock_key("grand-palais") < 2**32


def test_standby_takes_over_after_kill_9_with_a_higher_term(pg_dsn):
    a = Candidate(pg_dsn, "counter-a")
    b = None
    try:
        assert a.wait_line("active", 15) == "active 1"
        b = Candidate(pg_dsn, "counter-b")
        assert b.wait_line("standby", 15)
        time.sleep(0.5)
        assert b.wait_line("active", 0) is None  # only one active counter at a time
        t = time.monotonic()
        a.proc.kill()  # kill -9: no clean release
        assert b.wait_line("active", 10) == "active 2"
        assert time.monotonic() - t < 5
        with psycopg.connect(pg_dsn) as conn:
            row = conn.execute("SELECT term, holder FROM sesame_term").fetchone()
        assert row == (2, "counter-b")
    finally:
        a.close()
        if b:
            b.close()


def test_a_paused_active_counter_is_replaced_and_steps_down_when_it_wakes(pg_dsn):
    a = Candidate(pg_dsn, "counter-a")
    b = None
    try:
        assert a.wait_line("active", 15) == "active 1"
        b = Candidate(pg_dsn, "counter-b")
        assert b.wait_line("standby", 15)
        a.proc.send_signal(signal.SIGSTOP)  # its socket stays open: the lock stays held
        t = time.monotonic()
        assert b.wait_line("active", 15) == "active 2"
        assert time.monotonic() - t < 10
        a.proc.send_signal(signal.SIGCONT)
        assert a.wait_line("lost", 10)
        assert a.proc.wait(5) == 75
    finally:
        a.close()
        if b:
            b.close()


def test_losing_the_lock_connection_is_reported(pg_dsn):
    lost: list[str] = []
    lead = Leadership(pg_dsn, "grand-palais", "c1", on_lost=lost.append, beat_every=0.2)
    try:
        assert lead.acquire() == 1
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
            )
        deadline = time.monotonic() + 5
        while not lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lost and "lost" in lost[0]
    finally:
        lead.release()
    again = Leadership(pg_dsn, "grand-palais", "c2")
    try:
        assert again.acquire() == 2  # the term only grows
    finally:
        again.release()
