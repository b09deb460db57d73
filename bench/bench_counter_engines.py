"""The counter on SQLite beside PostgreSQL (and Mosquitto beside a three-node NATS cluster),
in one run: ingest rate and publish -> retained occupancy latency.

- ingest: N QoS 1 events queued by the broker for the counter's persistent session while it
  is away, then the counter (in this process) connects and the clock runs until every event
  is committed (deduplicated, PUBACKed after the commit, acks published);
- latency: `sesame counter run` as its own process (on PostgreSQL: elected through the
  advisory lock, every transaction fenced on its term), entry events paced through one lane
  at --rate events/s, the k-th event's latency is the first occupancy update reaching k
  minus its publish time.

    .venv/bin/python bench/bench_counter_engines.py [--events 20000] [--rate 200] [--seconds 10]
        [--cluster] [--pg postgresql://postgres@127.0.0.1:5432/postgres]

A PostgreSQL database of its own is created on the --pg server for each measurement and
dropped afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import psycopg  # noqa: E402
from bench_counter_ingest import GATES, START, VENUE, T, backlog, forget  # noqa: E402

from sesame.broker.process import MosquittoProcess  # noqa: E402
from sesame.broker.setup import setup  # noqa: E402
from sesame.common import mqtt, wire  # noqa: E402
from sesame.counter.service import Counter  # noqa: E402

VENUE_FILE = ROOT / "config" / "grand-palais.toml"


@contextlib.contextmanager
def database(engine: str, tmp: Path, server: str, tag: str):
    """A fresh database: a SQLite file, or a PostgreSQL database dropped afterwards."""
    if engine == "sqlite":
        yield str(tmp / f"{tag}.db")
        return
    name = f"sesame_bench_{secrets.token_hex(4)}"
    admin = psycopg.connect(server, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def ingest(broker, n: int, epoch: str, db: str) -> float:
    cid = f"bench-counter-{epoch}"
    c = Counter(VENUE, db, broker.url("counter"), client_id=cid).start()
    time.sleep(0.5)
    c.stop()
    backlog(broker, n, epoch)
    t0 = time.perf_counter()
    c = Counter(VENUE, db, broker.url("counter"), client_id=cid).start()
    while c.core.stats["events"] + c.core.stats["duplicates"] < n:
        time.sleep(0.02)
        if time.perf_counter() - t0 > 300:
            break
    took = time.perf_counter() - t0
    stored = c.core.stats["events"]
    c.stop()
    forget(broker, cid)
    if stored != n:
        raise SystemExit(f"counter stored {stored} of {n} events")
    return stored / took


def latency(broker, db: str, rate: int, seconds: float, tmp: Path) -> tuple[float, float, float]:
    n = int(rate * seconds)
    creds = getattr(broker, "credentials", None)
    where = (["--credentials", str(creds("counter"))] if creds
             else ["--broker", broker.url("counter")])  # fmt: skip
    epoch = f"lat{secrets.token_hex(3)}"
    cid = f"bench-{epoch}"  # a session of its own: no backlog queued by another measurement
    log = (tmp / f"latency-{epoch}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sesame", "counter", "run", "--venue", str(VENUE_FILE),
         "--db", db, "--client-id", cid, *where,
         # the counter's clock is the venue's time: just after the last stamp below (one a
         # second, a speed gate's pace), so every passage is a live one of that morning
         "--start-time", (START + timedelta(seconds=n + 60)).isoformat()],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    sent = [0.0] * (n + 1)
    seen = [0.0] * (n + 1)
    reached = 0
    lock = threading.Lock()
    online = threading.Event()

    def on(msg):
        nonlocal reached
        now = time.perf_counter()
        if msg.topic == T.counter_status():
            st = wire.parse_counter_status(msg.payload)
            if st and st.online:
                online.set()
            return
        occ = wire.parse_occupancy(msg.payload)
        if not occ:
            return
        with lock:
            while reached < min(occ.occupancy, n):
                reached += 1
                seen[reached] = now

    subs = [(T.occupancy("nef"), 1), (T.counter_status(), 1)]
    watch = mqtt.connect(broker.url("dashboard"), f"bench-watch-{epoch}", clean_start=True,
                         session_expiry=0, on_message=on, subscriptions=subs)  # fmt: skip
    gate = mqtt.connect(broker.url("gate-churchill-in-1"), f"bench-lane-{epoch}",
                        clean_start=True, session_expiry=0)  # fmt: skip
    try:
        if not online.wait(60):
            raise SystemExit("the counter did not come online")
        time.sleep(1.0)
        with lock:  # the occupancy retained from before the counter started
            reached = 0
        payloads = [
            wire.Event(gate="churchill-in-1", epoch=epoch, seq=k,
                       ts=START + timedelta(seconds=k), kind="passage",
                       from_zone="outside", to_zone="nef", badge=f"B{k:06d}",
                       category="public").to_json()
            for k in range(1, n + 1)
        ]  # fmt: skip
        t0 = time.perf_counter()
        for k in range(1, n + 1):
            due = t0 + (k - 1) / rate
            while (now := time.perf_counter()) < due:
                time.sleep(min(0.0005, due - now))
            sent[k] = time.perf_counter()
            gate.publish(T.events("churchill-in-1"), payloads[k - 1], qos=1)
        deadline = time.monotonic() + 60
        while reached < n and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        gate.close()
        watch.close()
        proc.terminate()
        proc.wait(15)
        log.close()
        forget(broker, cid)
    if reached < n:  # said, and the figures are of those reflected
        print(f"  only {reached} of {n} events reflected within 60 s", flush=True)
    lat = sorted((seen[k] - sent[k]) * 1000 for k in range(1, reached + 1))
    q = statistics.quantiles(lat, n=100)
    return q[49], q[98], lat[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000, help="events per ingest measurement")
    ap.add_argument("--rate", type=int, default=200, help="events/s offered for the latency")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--cluster", action="store_true", help="also through a 3-node NATS cluster")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres",
                    help="PostgreSQL server (a database is created and dropped)")  # fmt: skip
    args = ap.parse_args()
    n = args.events // len(GATES) * len(GATES)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        brokers = [("mosquitto", _mosquitto)] + ([("nats x3", _nats)] if args.cluster else [])
        for bname, start in brokers:
            with start(tmp / bname.replace(" ", "")) as broker:
                for engine in ("sqlite", "postgresql"):
                    with database(engine, tmp, args.pg, f"i-{bname[:4]}-{engine}") as db:
                        rate = ingest(broker, n, f"{bname[:4]}{engine[:2]}", db)
                    with database(engine, tmp, args.pg, f"l-{bname[:4]}-{engine}") as db:
                        p50, p99, worst = latency(broker, db, args.rate, args.seconds, tmp)
                    print(f"{bname:9} {engine:10}  ingest {rate:7,.0f} events/s ({n} QoS 1)  "
                          f"publish->occupancy at {args.rate}/s: p50 {p50:6.1f} ms  "
                          f"p99 {p99:6.1f} ms  max {worst:6.1f} ms", flush=True)  # fmt: skip


@contextlib.contextmanager
def _mosquitto(d: Path):
    setup(VENUE, d / "config")
    broker = MosquittoProcess(d / "config", run_dir=d / "run").start()
    try:
        yield broker
    finally:
        broker.close()


@contextlib.contextmanager
def _nats(d: Path):
    from sesame.broker.nats_process import NatsCluster
    from sesame.broker.nats_setup import setup_cluster

    setup_cluster(VENUE, d / "config", nodes=3)
    cluster = NatsCluster(d / "config", run_dir=d / "run").start()
    try:
        yield cluster
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
