"""What the counter's Prometheus hook and the time-to-full forecast cost per event, in
process (no broker: the MQTT path's noise on a shared machine hides a few microseconds).

The same gate events go through `Core.handle` in batches of 250, alternately with and
without the metrics hook, on fresh databases; prints CPU microseconds per event for each
and the hook alone (CounterMetrics.batch on the same rows).

    .venv/bin/python bench/bench_counter_metrics.py [--events 40000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sesame.common import wire  # noqa: E402
from sesame.common.venue import load_venue  # noqa: E402
from sesame.counter.core import Core  # noqa: E402
from sesame.counter.metrics import CounterMetrics  # noqa: E402
from sesame.counter.store import CounterStore, EventRow  # noqa: E402

VENUE = load_venue(Path(__file__).resolve().parents[1] / "config" / "grand-palais.toml")
T = wire.Topics(VENUE.id)
START = datetime(2018, 11, 22, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))
GATES = ["churchill-in-1", "churchill-in-2", "clemenceau-in-1", "churchill-out-1"]
BATCH = 250


def events(n: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        g = GATES[i % len(GATES)]
        lane = VENUE.gates[g]
        seq = i // len(GATES) + 1
        # one passage a second per lane in event time, a pace a turnstile can pass
        # (the counter holds faster ones as implausible: sesame/counter/plausibility.py);
        # each lane its own badges (one badge at two lanes is a DOUBLE_ADMISSION finding)
        ev = wire.Event(gate=g, epoch="bench", seq=seq, ts=START + timedelta(seconds=seq),
                        kind="passage", from_zone=lane.from_zone, to_zone=lane.to_zone,
                        badge=f"B{i % len(GATES)}{seq:07d}" if lane.reader else None,
                        category="public" if lane.reader else None)  # fmt: skip
        out.append((T.events(g), ev.to_json()))
    return out


def run(evs, with_metrics: bool) -> float:
    with tempfile.TemporaryDirectory() as d:
        core = Core(VENUE, CounterStore(Path(d) / "c.db"))
        if with_metrics:
            core.metrics = CounterMetrics(lambda: core, Path(d) / "c.db")
        core.startup()
        t0 = time.process_time()
        for i in range(0, len(evs), BATCH):
            core.handle(evs[i : i + BATCH])
        cpu = time.process_time() - t0
        core.store.close()
    return cpu * 1e6 / len(evs)


def hook_alone(n: int) -> float:
    rows = [
        EventRow(f"e{i}", GATES[i % 4], "e1", i, "", 0.0, "", 0, "passage", "outside", "nef",
                 None, None, None, None, None, None, "")
        for i in range(BATCH)
    ]  # fmt: skip
    m = CounterMetrics(lambda: None, "/nonexistent")
    t0 = time.process_time()
    for _ in range(n // BATCH):
        m.batch(rows, ())
    return (time.process_time() - t0) * 1e6 / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=40_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    evs = events(args.events)
    off, on = [], []
    for r in range(args.rounds):
        off.append(run(evs, False))
        on.append(run(evs, True))
        print(f"round {r + 1}: without metrics {off[-1]:.1f} us CPU/event, "
              f"with metrics {on[-1]:.1f} us CPU/event", flush=True)  # fmt: skip
    print(f"median: without {statistics.median(off):.1f}, with {statistics.median(on):.1f} "
          f"us CPU/event; the hook alone {hook_alone(args.events):.2f} us/event")  # fmt: skip


if __name__ == "__main__":
    main()
