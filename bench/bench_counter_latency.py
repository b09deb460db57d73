"""Publish -> retained occupancy update latency at a steady event rate, real Mosquitto.

The counter runs as its own process (`sesame counter run`); this process paces entry
events through one lane at --rate events/s and watches `zones/nef/occupancy`. Entries only,
so the k-th event is reflected once the published occupancy reaches k: its latency is the
first such update's arrival minus the k-th publish time (same clock, same process).

    .venv/bin/python bench/bench_counter_latency.py [--rate 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sesame.broker.process import MosquittoProcess  # noqa: E402
from sesame.broker.setup import setup  # noqa: E402
from sesame.common import mqtt, wire  # noqa: E402
from sesame.common.venue import load_venue  # noqa: E402

VENUE_FILE = ROOT / "config" / "grand-palais.toml"
VENUE = load_venue(VENUE_FILE)
T = wire.Topics(VENUE.id)
START = datetime(2018, 11, 22, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=1000, help="events per second")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    n = int(args.rate * args.seconds)
    if n >= VENUE.zones["nef"].capacity:
        raise SystemExit("keep rate x seconds below the Nef's capacity (entries only)")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "broker"
        setup(VENUE, cfg)
        broker = MosquittoProcess(cfg, run_dir=Path(tmp) / "run").start()
        proc = subprocess.Popen(
            [sys.executable, "-m", "sesame", "counter", "run", "--venue", str(VENUE_FILE),
             "--db", str(Path(tmp) / "c.db"), "--credentials", str(broker.credentials("counter")),
             # the counter's clock is the venue's time: just after the last stamp below (one
             # a second), so every passage is a live one of the replayed morning
             "--start-time", (START + timedelta(seconds=n + 60)).isoformat()],
            cwd=ROOT, stdout=subprocess.DEVNULL,
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
        watch = mqtt.connect(broker.url("dashboard"), "bench-watch", clean_start=True,
                             session_expiry=0, on_message=on, subscriptions=subs)  # fmt: skip
        gate = mqtt.connect(broker.url("gate-churchill-in-1"), "bench-lane", clean_start=True,
                            session_expiry=0)  # fmt: skip
        try:
            if not online.wait(30):
                raise SystemExit("the counter did not come online")
            time.sleep(0.5)
            payloads = [
                # one passage a second per lane in event time, a pace a turnstile can pass
                # (the counter holds faster ones as implausible: sesame/counter/plausibility.py)
                wire.Event(gate="churchill-in-1", epoch="lat", seq=k,
                           ts=START + timedelta(seconds=k), kind="passage",
                           from_zone="outside", to_zone="nef", badge=f"B{k:06d}",
                           category="public").to_json()
                for k in range(1, n + 1)
            ]  # fmt: skip
            t0 = time.perf_counter()
            for k in range(1, n + 1):
                due = t0 + (k - 1) / args.rate
                while (now := time.perf_counter()) < due:
                    time.sleep(min(0.0005, due - now))
                sent[k] = time.perf_counter()
                gate.publish(T.events("churchill-in-1"), payloads[k - 1], qos=1)
            deadline = time.monotonic() + 30
            while reached < n and time.monotonic() < deadline:
                time.sleep(0.01)
            elapsed = sent[n] - t0
        finally:
            gate.close()
            watch.close()
            proc.terminate()
            proc.wait(15)
            broker.close()
    lat = sorted((seen[k] - sent[k]) * 1000 for k in range(1, reached + 1))
    if reached < n:
        print(f"only {reached} of {n} events reflected in time")
    q = statistics.quantiles(lat, n=100)
    print(f"{reached} events at {n / elapsed:,.0f} events/s offered through one lane: "
          f"publish -> retained occupancy p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms, "
          f"max {lat[-1]:.1f} ms (target p99 < 100 ms)")  # fmt: skip


if __name__ == "__main__":
    main()
