"""End-to-end replay benchmark: the reference event (4 days, 40,500 visitors by default)
through a real Mosquitto, one real gate agent per lane and the real counter.

    .venv/bin/python bench/bench_replay.py                      # gates in this process
    .venv/bin/python bench/bench_replay.py --processes          # one process per lane
    .venv/bin/python bench/bench_replay.py --scale 0.25 --days 1

Prints wall time, simulated actions, events stored by the counter, events per second, the
drain time, and whether the export equals the ground truth (it must).
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sesame.common.venue import load_venue  # noqa: E402
from sesame.counter.exports import attendance  # noqa: E402
from sesame.run.cli import start_broker  # noqa: E402
from sesame.run.orchestrator import Options, Replay, event_log_over_capacity  # noqa: E402
from sesame.sim import model  # noqa: E402
from sesame.sim.truth import compare  # noqa: E402


def filled_by_day(report: dict) -> dict:
    """{day: {zone: "near full HH:MM, full HH:MM, peak N at HH:MM"}} from an export."""

    def hm(at: str | None) -> str:
        return at[11:16] if at else "never"

    out = {}
    for day, r in report["days"].items():
        out[day] = {
            z: f"near full {hm(r['near_full_at'][z])}, full {hm(r['full_at'][z])}, "
            f"peak {p['value']} at {hm(p['at'])}"
            for z, p in r["peak_occupancy"].items()
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--days", type=int, default=4)
    ap.add_argument("--processes", action="store_true", help="one process per lane")
    ap.add_argument("--seed", type=int, default=2018)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sesame-bench-replay-"))
    params = model.Params(seed=args.seed, days=args.days).scaled(args.scale)
    venue_file, notes = model.derive_venue_file(
        ROOT / "config" / "grand-palais.toml",
        work / "venue.toml",
        capacity_factor=args.scale,
        largest_group=params.class_size[1],
    )
    venue = load_venue(venue_file)
    t = time.monotonic()
    pop = model.generate(venue, params)
    gen_s = time.monotonic() - t
    broker = start_broker(venue, work)
    replay = Replay(venue, venue_file, pop, broker, work, Options(processes=args.processes))
    try:
        t = time.monotonic()
        replay.start()
        setup_s = time.monotonic() - t
        out = replay.run()
        t = time.monotonic()
        drained = replay.drain(timeout=600)
        drain_s = time.monotonic() - t
        truth = replay.truth()
    finally:
        replay.close()
        broker.close()
    with sqlite3.connect(replay.db) as conn:
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    diffs = compare(truth, attendance(replay.db, venue))
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{__import__('os').cpu_count()} cores, Python {platform.python_version()}",
        "gates": "processes" if args.processes else "in-process",
        "scale": args.scale,
        "days": args.days,
        "visits": sum(len(v) for v in pop.visits.values()),
        "venue_changes": notes,
        "model_s": round(gen_s, 1),
        "setup_s (keys, badges, broker, counter, gates)": round(setup_s, 1),
        "replay_wall_s": round(out.wall_s, 1),
        "actions": out.actions,
        "events": events,
        "events_per_s": round(events / out.wall_s, 1),
        "drained": drained,
        "drain_s": round(drain_s, 1),
        "export_equals_truth": not diffs,
        "differences": diffs[:5],
        "over_capacity": event_log_over_capacity(replay.db, venue),  # every zone, with its policy
        "inside_at_closing": {
            d: sum(t["inside_at_closing"].values()) for d, t in truth["days"].items()
        },
        "last_exit_at": {d: t["last_exit_at"] for d, t in truth["days"].items()},
        "denied_by_day": {d: st.denied for d, st in out.stats.items()},
        "nef_peak_by_day": {d: t["peak_occupancy"]["nef"] for d, t in truth["days"].items()},
        # when each zone first filled, by the export (equal to the truth when the above is true)
        "filled_by_day": filled_by_day(attendance(replay.db, venue)),
        "unique_visitors": truth["totals"]["unique_visitors"],
        "visits_counted": truth["totals"]["visits"],
        "schoolchildren": truth["totals"]["schoolchildren"],
    }
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if drained and not diffs else 1


if __name__ == "__main__":
    sys.exit(main())
