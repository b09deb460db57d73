"""Standby counter takeover time: two counters' election loops on one PostgreSQL database
(sesame/counter/standby.py), the active one killed with -9, ten times; prints the time
from the kill to the standby holding the role with the next term (median, max).

    .venv/bin/python bench/bench_counter_takeover.py [--kills 10] [--server 127.0.0.1:5432]

Creates and drops its own database (trust auth, user postgres). Each candidate is its own
process, as counters on separate machines are; both poll every 0.5 s (the default).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]

CANDIDATE = """
import sys, time
from sesame.counter.standby import Leadership
lead = Leadership(sys.argv[1], "grand-palais", sys.argv[2])
print("standby", flush=True)
print("active", lead.acquire(), time.time(), flush=True)
while True:
    time.sleep(1)
"""


def spawn(dsn: str, name: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", CANDIDATE, dsn, name], stdout=subprocess.PIPE,
                            text=True, cwd=REPO, env=env)  # fmt: skip


def read_until(proc: subprocess.Popen, prefix: str) -> str:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"candidate exited before {prefix!r}")
        if line.startswith(prefix):
            return line.strip()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--server", default="127.0.0.1:5432")
    args = p.parse_args()
    name = f"sesame_bench_{secrets.token_hex(4)}"
    admin = psycopg.connect(f"postgresql://postgres@{args.server}/postgres", autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    dsn = f"postgresql://postgres@{args.server}/{name}"
    procs: list[subprocess.Popen] = []
    times, terms = [], []
    try:
        active = spawn(dsn, "c0")
        procs.append(active)
        read_until(active, "active")
        for i in range(args.kills):
            standby = spawn(dsn, f"c{i + 1}")
            procs.append(standby)
            read_until(standby, "standby")
            time.sleep(0.7)  # it is polling now
            t = time.time()
            active.kill()
            active.wait()
            line = read_until(standby, "active").split()
            times.append(float(line[2]) - t)
            terms.append(int(line[1]))
            active = standby
        ordered = terms == sorted(set(terms))
        med = statistics.median(times)
        print(f"takeover after kill -9, {args.kills} kills: median {med:.2f} s, "
              f"max {max(times):.2f} s, min {min(times):.2f} s; terms {terms[0]}..{terms[-1]} "
              f"strictly increasing: {ordered}")  # fmt: skip
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
