"""Broker benchmark: QoS 1 through the project's own broker set-up and `sesame.common.mqtt`.
Prints its figures; asserts nothing.

    .venv/bin/python bench/bench_broker.py            # Mosquitto, the embedded broker and
                                                      # a three-node NATS cluster
    .venv/bin/python bench/bench_broker.py --quick    # fewer messages

For each broker (generated config, free loopback port, real accounts and ACL):
1. burst: 4 gate accounts publish N events each as fast as QoS 1 allows; one counter
   subscriber (persistent session). Messages per second from the first publish to the last
   message received, and CPU seconds of this process (publishers + subscriber).
2. steady: the same four gates at a fixed total rate; end-to-end latency p50 / p99 (publish
   call to on_message, same clock).
3. connect: time for `sesame.common.mqtt.connect` to return a connected client (probe included).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sesame.broker.embedded import EmbeddedBroker  # noqa: E402
from sesame.broker.nats_process import NatsCluster  # noqa: E402
from sesame.broker.nats_setup import setup_cluster  # noqa: E402
from sesame.broker.process import MosquittoProcess  # noqa: E402
from sesame.common.mqtt import connect  # noqa: E402
from sesame.common.venue import load_venue  # noqa: E402
from sesame.common.wire import Topics  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
T = Topics("grand-palais")
GATES = ["churchill-in-1", "churchill-in-2", "clemenceau-in-1", "salon-in-1"]


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Sink:
    def __init__(self, broker, expect: int, tag: str):
        self.expect = expect
        self.count = 0
        self.latencies: list[float] = []
        self.done = threading.Event()
        self.last = 0.0
        self.conn = connect(
            broker.url("counter"),
            f"bench-counter-{tag}",
            subscriptions=[(T.events(), 1)],
            on_message=self.on_message,
        )
        self.conn.wait_subscribed(10)  # a NATS cluster sets up the session's consumers first

    def on_message(self, m) -> None:
        now = time.perf_counter()
        sent = struct.unpack("d", m.payload[:8])[0]
        self.latencies.append(now - sent)
        self.count += 1
        if self.count >= self.expect:
            self.last = now
            self.done.set()


def burst(broker, per_gate: int, tag: str) -> None:
    total = per_gate * len(GATES)
    sink = Sink(broker, total, f"burst-{tag}")
    pubs = [connect(broker.url(f"gate-{g}"), f"bench-{g}", clean_start=True) for g in GATES]
    pad = b"x" * 250  # about the size of a real event

    def run(conn, gate):
        topic = T.events(gate)
        window = []
        for _ in range(per_gate):
            window.append(conn.publish(topic, struct.pack("d", time.perf_counter()) + pad))
            if len(window) >= 200:  # bounded in-flight, like the gate's outbox pump
                window.pop(0).wait_for_publish(30)
        for info in window:
            info.wait_for_publish(30)

    c0, t0 = cpu(), time.perf_counter()
    threads = [threading.Thread(target=run, args=(c, g)) for c, g in zip(pubs, GATES, strict=True)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ok = sink.done.wait(120)
    t1, c1 = (sink.last if ok else time.perf_counter()), cpu()
    rate = sink.count / (t1 - t0)
    print(
        f"  burst  {sink.count:>6}/{total} msgs  {rate:8.0f} msg/s  "
        f"CPU {c1 - c0:5.2f} s ({(c1 - c0) / max(sink.count, 1) * 1e6:.0f} us/msg, "
        "publishers + subscriber)"
    )
    for c in pubs:
        c.close()
    sink.conn.close()


def steady(broker, rate: int, seconds: float, tag: str) -> None:
    per_gate_rate = rate / len(GATES)
    n = int(per_gate_rate * seconds)
    sink = Sink(broker, n * len(GATES), f"steady-{tag}")
    pubs = [connect(broker.url(f"gate-{g}"), f"bench-s-{g}", clean_start=True) for g in GATES]
    pad = b"x" * 250

    def run(conn, gate):
        topic = T.events(gate)
        start = time.perf_counter()
        for i in range(n):
            due = start + i / per_gate_rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            conn.publish(topic, struct.pack("d", time.perf_counter()) + pad)

    threads = [threading.Thread(target=run, args=(c, g)) for c, g in zip(pubs, GATES, strict=True)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    sink.done.wait(60)
    lat = sorted(sink.latencies)
    if lat:
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        print(
            f"  steady {rate:>5} msg/s for {seconds:g} s: {len(lat)} msgs, "
            f"latency p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        )
    for c in pubs:
        c.close()
    sink.conn.close()


def connect_time(broker, tag: str) -> None:
    times = []
    for i in range(5):
        t0 = time.perf_counter()
        c = connect(broker.url("dashboard"), f"bench-conn-{tag}-{i}", clean_start=True)
        times.append(time.perf_counter() - t0)
        c.close()
    print(f"  connect median {statistics.median(times) * 1000:.1f} ms (protocol auto)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    per_gate = 2_000 if args.quick else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "broker"
        # the cluster set-up writes the Mosquitto files too, with the same accounts
        setup_cluster(load_venue(REPO / "config" / "grand-palais.toml"), config, nodes=3)
        brokers = (("mosquitto", MosquittoProcess, 1), ("embedded", EmbeddedBroker, 4),
                   ("nats-cluster-3", NatsCluster, 4))  # fmt: skip
        for name, cls, scale in brokers:
            with cls(config, run_dir=Path(tmp) / name) as broker:
                print(f"{name} (generated config, port {broker.port})")
                connect_time(broker, name)
                burst(broker, per_gate // scale, name)
                steady(broker, 1000, 3 if args.quick else 5, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
