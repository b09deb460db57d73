"""Counter failover as a lane sees it: two `sesame counter run` processes on one PostgreSQL
database and a real Mosquitto; the active one is killed with -9, ten times (each killed
counter comes back as the standby). Prints the time from the kill to the first lease of the
next term on a lane's lease topic (the standby elected, its state rebuilt from the
database, connected, its leases published): median and max.

    .venv/bin/python bench/bench_counter_failover.py [--kills 10] [--events 2000]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres]

`--events` entries are ingested first, so that each takeover rebuilds a day with data.
"""

from __future__ import annotations

import argparse
import queue
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from sesame.broker.process import MosquittoProcess  # noqa: E402
from sesame.broker.setup import setup  # noqa: E402
from sesame.common import mqtt, wire  # noqa: E402
from sesame.common.venue import load_venue  # noqa: E402

VENUE_FILE = ROOT / "config" / "grand-palais.toml"
VENUE = load_venue(VENUE_FILE)
T = wire.Topics(VENUE.id)
LANE = "churchill-in-1"
START = datetime(2018, 11, 22, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    name = f"sesame_bench_{secrets.token_hex(4)}"
    admin = psycopg.connect(args.pg, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    dsn = args.pg.rsplit("/", 1)[0] + "/" + name
    leases: queue.Queue = queue.Queue()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        setup(VENUE, tmp / "broker")
        broker = MosquittoProcess(tmp / "broker", run_dir=tmp / "run").start()
        procs: dict[str, subprocess.Popen] = {}

        def start(cname: str) -> None:
            log = (tmp / f"{cname}.log").open("ab")
            procs[cname] = subprocess.Popen(
                [sys.executable, "-m", "sesame", "counter", "run", "--venue", str(VENUE_FILE),
                 "--db", dsn, "--credentials", str(broker.credentials("counter")),
                 "--name", cname],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            log.close()

        def on(msg) -> None:
            lease = wire.parse_lease(msg.payload)
            if lease and lease.term is not None:
                leases.put((time.perf_counter(), lease.term))

        lane = mqtt.connect(broker.url(f"gate-{LANE}"), "bench-lane", clean_start=True,
                            session_expiry=0, on_message=on,
                            subscriptions=[(T.lease(LANE), 1)])  # fmt: skip
        times: list[float] = []
        terms: list[int] = []
        try:
            start("a")
            deadline = time.monotonic() + 60  # subscribed before the lane publishes
            while "counter running" not in (tmp / "a.log").read_text():
                if time.monotonic() > deadline:
                    raise SystemExit("the first counter did not connect")
                time.sleep(0.1)
            for k in range(1, args.events + 1):  # a day with data to rebuild
                ev = wire.Event(gate=LANE, epoch="fo", seq=k, ts=START + timedelta(seconds=k),
                                kind="passage", from_zone="outside", to_zone="nef",
                                badge=f"B{k:06d}", category="public")  # fmt: skip
                lane.publish(T.events(LANE), ev.to_json(), qos=1)
            first = leases.get(timeout=60)[1]  # the day began with the events: its leases
            start("b")
            time.sleep(3.0)
            term = first
            for _ in range(args.kills):
                active = _active(dsn)
                time.sleep(1.0)  # the standby is polling
                while not leases.empty():
                    leases.get_nowait()
                t0 = time.perf_counter()
                procs[active].kill()
                procs[active].wait()
                while True:
                    at, got = leases.get(timeout=60)
                    if got > term:
                        break
                times.append(at - t0)
                terms.append(got)
                term = got
                start(active)  # back as the standby
        finally:
            lane.close()
            for p in procs.values():
                if p.poll() is None:
                    p.terminate()
                    p.wait(15)
            broker.close()
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()
    ordered = terms == sorted(set(terms))
    print(f"counter failover after kill -9, {args.kills} kills, {args.events} events stored: "
          f"first lease of the new term on the lane after median "
          f"{statistics.median(times):.2f} s, max {max(times):.2f} s, min {min(times):.2f} s; "
          f"terms {terms[0]}..{terms[-1]} strictly increasing: {ordered}")  # fmt: skip
    return 0


def _active(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT holder FROM sesame_term").fetchone()[0]


if __name__ == "__main__":
    sys.exit(main())
