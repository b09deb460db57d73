"""Cost of the venue-wide memory of who is inside (sesame/counter/inside.py, gate outbox).

- counter: CPU time of `Core.handle` per event, batches of 250 badge passages from the
  entry lanes, with the admissions hook (republish + double-admission check) and without;
- lane: time of one `Outbox.seen()` lookup (what every scan asks) with a day's admissions
  of the whole venue stored, and of storing one message of 250 admissions.

    .venv/bin/python bench/bench_inside.py [--events 20000] [--admissions 20000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sesame.common import wire  # noqa: E402
from sesame.common.venue import load_venue  # noqa: E402
from sesame.common.wire.admissions import Admission, Admissions  # noqa: E402
from sesame.counter.core import Core  # noqa: E402
from sesame.counter.store import CounterStore  # noqa: E402
from sesame.gate.outbox import Outbox  # noqa: E402

VENUE = load_venue(Path(__file__).resolve().parents[1] / "config" / "grand-palais.toml")
T = wire.Topics(VENUE.id)
PARIS = ZoneInfo("Europe/Paris")
START = datetime(2018, 11, 22, 10, 0, tzinfo=PARIS)
LANES = ["churchill-in-1", "churchill-in-2", "churchill-in-3", "churchill-in-4",
         "clemenceau-in-1"]  # fmt: skip
BATCH = 250


def events(n: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        gate = LANES[i % len(LANES)]
        ev = wire.Event(gate=gate, epoch="b1", seq=i // len(LANES) + 1,
                        ts=START + timedelta(milliseconds=200 * i), kind="passage",
                        from_zone="outside", to_zone="nef", badge=f"B{i:06d}",
                        category="public")  # fmt: skip
        out.append((T.events(gate), ev.to_json()))
    return out


def counter_cpu(n: int, hook: bool) -> float:
    """CPU µs per event of Core.handle."""
    with tempfile.TemporaryDirectory() as tmp:
        store = CounterStore(Path(tmp) / "c.db")
        core = Core(VENUE, store, lambda: START + timedelta(hours=1))
        if not hook:
            core.inside.stored = lambda out, now: None  # type: ignore[method-assign]
        msgs = events(n)
        t0 = time.process_time()
        for i in range(0, n, BATCH):
            core.handle(msgs[i : i + BATCH])
        cpu = time.process_time() - t0
        store.close()
    return cpu / n * 1e6


def lane(n: int) -> tuple[float, float]:
    """(µs per seen() lookup, ms per stored message of 250) with n admissions stored."""
    with tempfile.TemporaryDirectory() as tmp:
        ob = Outbox(Path(tmp) / "o.db")
        day = START.date().isoformat()
        store_ms = []
        for i in range(0, n, BATCH):
            items = tuple(
                Admission(f"churchill-in-2:b1:{k + 1}", "churchill-in-2", f"B{k:06d}",
                          "outside", "nef", START + timedelta(seconds=k))  # fmt: skip
                for k in range(i, min(n, i + BATCH))
            )
            t0 = time.perf_counter()
            ob.take_admissions(Admissions(day, i, i + len(items), items), "churchill-in-1")
            store_ms.append((time.perf_counter() - t0) * 1000)
        rounds = 2000
        t0 = time.perf_counter()
        for k in range(rounds):
            ob.seen(f"B{(k * 7919) % n:06d}", "nef", START.date())
        per = (time.perf_counter() - t0) / rounds * 1e6
        ob.close()
    store_ms.sort()
    return per, store_ms[len(store_ms) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--admissions", type=int, default=20_000)
    a = ap.parse_args()
    off, on = counter_cpu(a.events, hook=False), counter_cpu(a.events, hook=True)
    print(f"counter Core.handle, {a.events} badge passages in batches of {BATCH}:")
    print(f"  without the admissions hook {off:.1f} µs/event, with it {on:.1f} µs/event "
          f"(+{on - off:.1f})")  # fmt: skip
    seen_us, store_ms = lane(a.admissions)
    print(f"lane outbox with {a.admissions} admissions of the day stored:")
    print(f"  seen() {seen_us:.0f} µs per lookup; storing 250 admissions {store_ms:.1f} ms "
          "(median, one transaction, synchronous=FULL)")  # fmt: skip


if __name__ == "__main__":
    main()
