"""Counter ingest rate through a real Mosquitto, beside a bare paho-mqtt subscriber.

Both drain the same backlog the same way: N QoS 1 events queued by the broker for a
persistent session while the client is away, then the client connects and the clock runs
until the last message is in (bare: received and PUBACKed by paho; counter: committed to
SQLite, deduplicated, PUBACKed manually after the commit, end-to-end acks published).

    .venv/bin/python bench/bench_counter_ingest.py [--events 60000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sesame.broker.process import MosquittoProcess  # noqa: E402
from sesame.broker.setup import setup  # noqa: E402
from sesame.common import mqtt, wire  # noqa: E402
from sesame.common.venue import load_venue  # noqa: E402
from sesame.counter.service import Counter  # noqa: E402

VENUE = load_venue(Path(__file__).resolve().parents[1] / "config" / "grand-palais.toml")
T = wire.Topics(VENUE.id)
START = datetime(2018, 11, 22, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))
GATES = ["churchill-in-1", "churchill-in-2", "churchill-in-3", "churchill-in-4",
         "clemenceau-in-1", "churchill-out-1", "churchill-out-2", "clemenceau-out-1"]  # fmt: skip


def backlog(broker: MosquittoProcess, n: int, epoch: str) -> None:
    """Publish n events spread over the lanes, QoS 1, waiting for every PUBACK."""
    per = n // len(GATES)
    conns = []
    for g in GATES:
        lane = VENUE.gates[g]
        c = mqtt.connect(broker.url(f"gate-{g}"), f"bench-{g}", clean_start=True,
                         session_expiry=0)  # fmt: skip
        conns.append(c)
        infos = []
        for s in range(1, per + 1):
            # one passage a second per lane in event time, a pace a turnstile can pass
            # (the counter holds faster ones as implausible: sesame/counter/plausibility.py);
        # each lane its own badges (one badge at two lanes is a DOUBLE_ADMISSION finding)
            ev = wire.Event(gate=g, epoch=epoch, seq=s, ts=START + timedelta(seconds=s),
                            kind="passage", from_zone=lane.from_zone, to_zone=lane.to_zone,
                            badge=f"B{GATES.index(g)}{s:07d}" if lane.reader else None,
                            category="public" if lane.reader else None)  # fmt: skip
            infos.append(c.publish(T.events(g), ev.to_json(), qos=1))
        for i in infos:
            i.wait_for_publish(60)
    for c in conns:
        c.close()


def bare(broker: MosquittoProcess, n: int, epoch: str) -> tuple[float, float]:
    got = 0
    first = last = 0.0
    done = threading.Event()

    def on(msg):
        nonlocal got, first, last
        if got == 0:
            first = time.perf_counter()
        got += 1
        if got >= n:
            last = time.perf_counter()
            done.set()

    cid = f"bench-bare-{epoch}"
    c = mqtt.connect(broker.url("counter"), cid, subscriptions=[(T.events(), 1)])
    c.close()
    backlog(broker, n, epoch)
    t0, c0 = time.perf_counter(), time.process_time()
    c = mqtt.connect(broker.url("counter"), cid, subscriptions=[(T.events(), 1)], on_message=on)
    done.wait(300)
    cpu = time.process_time() - c0
    c.close()
    forget(broker, cid)
    if got < n:
        raise SystemExit(f"bare subscriber got {got} of {n}")
    return got / (last - t0), cpu / n * 1e6


def forget(broker: MosquittoProcess, cid: str) -> None:
    """End a persistent session so that later backlogs are not queued for it too."""
    mqtt.connect(broker.url("counter"), cid, clean_start=True, session_expiry=0).close()


def counter(
    broker: MosquittoProcess, n: int, epoch: str, db: Path, batch: int
) -> tuple[float, float]:
    cid = f"bench-counter-{epoch}"
    c = Counter(VENUE, db, broker.url("counter"), client_id=cid).start()
    time.sleep(0.5)
    c.stop()
    backlog(broker, n, epoch)
    t0, c0 = time.perf_counter(), time.process_time()
    c = Counter(VENUE, db, broker.url("counter"), client_id=cid, batch_max=batch).start()
    while c.core.stats["events"] + c.core.stats["duplicates"] < n:
        time.sleep(0.02)  # the bare run waits on an Event; poll gently so as not to steal the GIL
        if time.perf_counter() - t0 > 300:
            break
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    stored = c.core.stats["events"]
    c.stop()
    forget(broker, cid)
    if stored != n:
        raise SystemExit(f"counter stored {stored} of {n} events")
    return stored / took, cpu / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=Counter.BATCH_MAX, help="counter batch size")
    args = ap.parse_args()
    n = args.events // len(GATES) * len(GATES)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "broker"
        setup(VENUE, cfg)
        broker = MosquittoProcess(cfg, run_dir=Path(tmp) / "run").start()
        try:
            bares, counters = [], []
            for r in range(args.rounds):
                b, bc = bare(broker, n, f"b{r}")
                k, kc = counter(broker, n, f"c{r}", Path(tmp) / f"c{r}.db", args.batch)
                bares.append(b)
                counters.append(k)
                print(f"round {r + 1}: {n} QoS 1 events  bare paho subscriber {b:,.0f} msg/s "
                      f"({bc:.0f} us CPU/msg)  counter {k:,.0f} events/s ({kc:.0f} us CPU/event)"
                      f"  ratio {k / b:.2f}", flush=True)  # fmt: skip
            mb, mk = statistics.median(bares), statistics.median(counters)
            print(f"median: bare {mb:,.0f} msg/s, counter {mk:,.0f} events/s, "
                  f"ratio {mk / mb:.2f} (target >= 0.5)")  # fmt: skip
        finally:
            broker.close()


if __name__ == "__main__":
    main()
