"""Counter restart and attendance export on a 4-day, 1M-event database.

Builds the database once (random but consistent traffic through the reference venue's
lanes over its four days, a 40k-badge registry), then times:
- rebuild: a Core started on it (state from the latest snapshot plus the events after it),
  and the same without any snapshot (everything from one GROUP BY);
- export: `attendance()` for all four days, then writing it as JSON, CSV and XLSX, and one
  day's occupancy PNG.

    .venv/bin/python bench/bench_counter_rebuild.py [--events 1000000] [--keep DB]
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sesame.common.venue import OUTSIDE, load_venue  # noqa: E402
from sesame.counter import exports  # noqa: E402
from sesame.counter.core import Core  # noqa: E402
from sesame.counter.occupancy import DayClock  # noqa: E402
from sesame.counter.store import CounterStore, utcnow  # noqa: E402

VENUE = load_venue(ROOT / "config" / "grand-palais.toml")
TAIL = 20_000  # events stored after the snapshot


def build(db: Path, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    store = CounterStore(db)
    days = DayClock(VENUE)
    lanes = list(VENUE.gates.values())
    by_from: dict[str, list] = {}
    for g in lanes:
        by_from.setdefault(g.from_zone, []).append(g)
    cats = list(VENUE.categories)
    badges = [f"B{i:06d}" for i in range(40_000)]
    store.begin()
    store.conn.executemany(
        "INSERT INTO badges (badge_id, token, category, group_size, department, imported_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(b, "t", "school" if i % 3 == 0 else rng.choice(cats), 25 if i % 3 == 0 else 1,
          f"{rng.randint(1, 95):02d}" if i % 3 == 0 else None, utcnow())
         for i, b in enumerate(badges)],
    )  # fmt: skip
    store.commit()
    seq = {g.id: 0 for g in lanes}
    per_day = n // len(VENUE.days)
    now = utcnow()
    for day in VENUE.days:
        opens, closes = VENUE.opening_window(day)
        t, step = opens.timestamp(), (closes - opens).total_seconds() / per_day
        occ = dict.fromkeys(VENUE.zones, 0)
        rows = []
        for _ in range(per_day):
            t += step
            # choose a zone to leave, weighted towards entering early and leaving late
            frac = (t - opens.timestamp()) / (closes - opens).total_seconds()
            inside = [z for z, k in occ.items() if k > 0]
            if not inside or rng.random() < 0.62 - 0.3 * frac:
                src = OUTSIDE
            else:
                src = rng.choice(inside)
            g = rng.choice(by_from[src])
            denied = g.reader and rng.random() < 0.03
            seq[g.id] += 1
            s = seq[g.id]
            if not denied:
                if g.from_zone != OUTSIDE:
                    occ[g.from_zone] -= 1
                if g.to_zone != OUTSIDE:
                    occ[g.to_zone] += 1
            badge = rng.choice(badges) if g.reader else None
            ts = datetime.fromtimestamp(t, VENUE.tz)
            rows.append((
                f"{g.id}:e1:{s}", g.id, "e1", s, ts.isoformat(timespec="milliseconds"), t,
                days.day_of_t(t), days.local_hour(t), "denied" if denied else "passage",
                g.from_zone, g.to_zone, badge, rng.choice(cats) if badge else None,
                "ZONE_FULL" if denied else None, None, None, None, now,
            ))  # fmt: skip
            if len(rows) >= 20_000:
                store.begin()
                store.insert_events(rows)
                store.commit()
                rows.clear()
        store.begin()
        store.insert_events(rows)
        for g, s in seq.items():
            store.save_seq(g, "e1", s, [], s)
        store.set_state("current_day", day.date.isoformat())
        store.commit()
    store.close()


def timed(label: str, fn, runs: int = 3):
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    print(f"  {label}: {best:.2f} s (best of {runs})", flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--keep", help="build the database at this path and keep it")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.keep) if args.keep else Path(tmp) / "c.db"
        if not db.exists():
            t = time.perf_counter()
            build(db, args.events)
            print(f"built {args.events:,} events in {time.perf_counter() - t:.1f} s: {db}")
        print("rebuild after a restart:")

        def start(drop_snapshots: bool = False) -> Core:
            store = CounterStore(db)
            if drop_snapshots:
                store.conn.execute("DELETE FROM snapshots")
            core = Core(VENUE, store)
            store.close()
            return core

        timed("no snapshot (one GROUP BY over all events)", lambda: start(True))
        store = CounterStore(db)
        core = Core(VENUE, store)
        store.begin()
        core._snapshot()
        store.commit()
        store.close()
        build_tail(db)
        core = timed(f"latest snapshot + {TAIL:,} events after it", start)
        print(f"  live day {core.book.current}, nef {core.book.live('nef')}")
        print("export of every day:")
        report = timed("attendance() for 4 days", lambda: exports.attendance(db, VENUE))
        for fmt in ("json", "csv", "xlsx"):
            timed(f"write {fmt}", lambda f=fmt: exports.write_attendance(report, f, io.BytesIO()))
        day = VENUE.days[-1].date.isoformat()
        png = io.BytesIO()
        timed(f"occupancy PNG for {day}", lambda: exports.plot_occupancy(db, VENUE, day, png))
        tot = report["totals"]
        print(f"  totals: {tot['entries']:,} entries, {tot['unique_visitors']:,} unique visitors")


def build_tail(db: Path) -> None:
    """A few more events after the snapshot, as a running counter would have stored."""
    store = CounterStore(db)
    days = DayClock(VENUE)
    last = store.conn.execute("SELECT max(t) FROM events").fetchone()[0]
    rows = []
    for s in range(1, TAIL + 1):
        t = last + s * 0.01
        rows.append((
            f"churchill-in-1:tail:{s}", "churchill-in-1", "tail", s,
            datetime.fromtimestamp(t, VENUE.tz).isoformat(), t, days.day_of_t(t),
            days.local_hour(t), "passage", "outside", "nef", "B000001", "public", None, None,
            None, None, utcnow(),
        ))  # fmt: skip
    store.begin()
    store.insert_events(rows)
    store.commit()
    store.close()


if __name__ == "__main__":
    main()
