"""The counter's core in process (no broker), and the cost of its event insert two ways.

1. `Core.handle`: CPU microseconds per event, gate events in batches of 250 on a fresh
   database (`--repo DIR` measures another checkout of Sesame the same way, e.g. the code
   before a change: `git worktree add /tmp/before <commit>`).
2. The ingest insert alone, on the events table of the counter's migrations: the store's
   hand-written `executemany` of `INSERT OR IGNORE` against sqlite-utils'
   `Table.insert_all(ignore=True)`, both 250 rows a transaction, microseconds per row.

    .venv/bin/python bench/bench_counter_core.py [--events 20000] [--rounds 3] [--repo DIR]
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

ap = argparse.ArgumentParser()
ap.add_argument("--events", type=int, default=20_000)
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]))
ARGS = ap.parse_args()
sys.path.insert(0, ARGS.repo)

import sqlite_utils  # noqa: E402

from sesame.common import wire  # noqa: E402
from sesame.common.venue import load_venue  # noqa: E402
from sesame.counter import store as store_mod  # noqa: E402
from sesame.counter.core import Core  # noqa: E402

# the store's class before and after it was named CounterStore
Store = getattr(store_mod, "CounterStore", None) or store_mod.Store
VENUE = load_venue(Path(ARGS.repo) / "config" / "grand-palais.toml")
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
        # one passage a second per lane in event time, a pace a speed gate can pass: faster
        # ones the counter holds as implausible (sesame/counter/plausibility.py), which would
        # measure holding, not counting; each lane its own badges (one badge admitted at
        # two lanes while inside is a DOUBLE_ADMISSION finding, sesame/counter/inside.py)
        ev = wire.Event(gate=g, epoch="bench", seq=seq, ts=START + timedelta(seconds=seq),
                        kind="passage", from_zone=lane.from_zone, to_zone=lane.to_zone,
                        badge=f"B{i % len(GATES)}{seq:07d}" if lane.reader else None,
                        category="public" if lane.reader else None)  # fmt: skip
        out.append((T.events(g), ev.to_json()))
    return out


def core_handle(evs) -> float:
    with tempfile.TemporaryDirectory() as d:
        core = Core(VENUE, Store(Path(d) / "c.db"))
        core.startup()
        t0 = time.process_time()
        for i in range(0, len(evs), BATCH):
            core.handle(evs[i : i + BATCH])
        cpu = time.process_time() - t0
        core.store.close()
    return cpu * 1e6 / len(evs)


def rows(n: int) -> list[tuple]:
    EventRow = store_mod.EventRow
    return [EventRow(f"g:e:{i}", "g", "e", i, "2018-11-22T09:00:00+01:00", 1542873600.0 + i,
                     "2018-11-22", 9, "passage", "outside", "nef", f"B{i:07d}", "public", None,
                     None, None, None, "2018-11-22T08:00:00.000+00:00")
            for i in range(1, n + 1)]  # fmt: skip


def insert_handwritten(rs) -> float:
    with tempfile.TemporaryDirectory() as d:
        st = Store(Path(d) / "c.db")
        t0 = time.perf_counter()
        for i in range(0, len(rs), BATCH):
            with st.transaction():
                st.insert_events(rs[i : i + BATCH])
        dt = time.perf_counter() - t0
        st.close()
    return dt * 1e6 / len(rs)


def insert_sqlite_utils(rs) -> float:
    fields = store_mod.EventRow._fields
    with tempfile.TemporaryDirectory() as d:
        st = Store(Path(d) / "c.db")
        st.conn.isolation_level = ""  # sqlite-utils manages its own transactions
        db = sqlite_utils.Database(st.conn, recursive_triggers=False, execute_plugins=False)
        table = db["events"]
        t0 = time.perf_counter()
        for i in range(0, len(rs), BATCH):
            table.insert_all((dict(zip(fields, r, strict=True)) for r in rs[i : i + BATCH]),
                             ignore=True, batch_size=BATCH)  # fmt: skip
        dt = time.perf_counter() - t0
        st.close()
    return dt * 1e6 / len(rs)


def main() -> None:
    evs, rs = events(ARGS.events), rows(ARGS.events)
    core, hand, lib = [], [], []
    for r in range(ARGS.rounds):
        core.append(core_handle(evs))
        hand.append(insert_handwritten(rs))
        lib.append(insert_sqlite_utils(rs))
        print(f"round {r + 1}: Core.handle {core[-1]:.1f} us CPU/event; insert: hand-written "
              f"{hand[-1]:.1f} us/row, sqlite-utils {lib[-1]:.1f} us/row", flush=True)  # fmt: skip
    print(f"median ({ARGS.repo}): Core.handle {statistics.median(core):.1f} us CPU/event; "
          f"insert hand-written {statistics.median(hand):.1f} us/row, sqlite-utils "
          f"{statistics.median(lib):.1f} us/row "
          f"(x{statistics.median(lib) / statistics.median(hand):.1f})")  # fmt: skip


if __name__ == "__main__":
    main()
