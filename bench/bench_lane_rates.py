"""How close the simulated event's lanes come to their physical rates, and whether the
counter's plausibility rule (sesame/counter/plausibility.py) would hold any honest passage.

Plays every day of the reference venue with the in-memory model (no broker), then, per lane,
counts the most passages in any 60 s window of event time against the lane's window limit
(its rate plus one group, `leases.low_water`), and runs the rule over every passage.

    .venv/bin/python bench/bench_lane_rates.py [--scale 1.0] [--days N]
"""

from __future__ import annotations

import argparse
import time
from bisect import bisect_left
from collections import defaultdict

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sesame.common.tokens import key_id
from sesame.common.turnstiles import lane_max_per_minute
from sesame.common.venue import load_venue
from sesame.counter.plausibility import WINDOW_S, RateWindows
from sesame.sim import model
from sesame.sim.badges import issue
from sesame.sim.engine import Engine
from sesame.sim.local import LocalDriver
from sesame.venues import REFERENCE_VENUE


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--days", type=int, default=4)
    args = ap.parse_args()
    venue = load_venue(REFERENCE_VENUE)
    if args.scale != 1.0:
        venue = model.scaled_venue(venue, args.scale)
    params = model.Params(days=args.days).scaled(args.scale)
    pop = model.generate(venue, params)
    key = Ed25519PrivateKey.generate()
    tokens = issue(pop, key, [d.date for d in venue.days])
    drv = LocalDriver(venue, {key_id(key.public_key()): key.public_key()}, pop.revoked)
    group = venue.leases.low_water
    t0 = time.monotonic()
    peak: dict[str, int] = defaultdict(int)
    held = total = 0
    for d in sorted(pop.visits):
        times: dict[str, list[float]] = defaultdict(list)
        for p in Engine(venue, pop, d, tokens, drv, seed=params.seed).run():
            times[p.gate] += [p.at / 1000.0] * p.count
        rule: RateWindows[int] = RateWindows()
        for gate, ts in times.items():
            ts.sort()
            limit = lane_max_per_minute(venue.gates[gate]) + group
            for i, t in enumerate(ts):
                peak[gate] = max(peak[gate], bisect_left(ts, t + WINDOW_S) - i)
                h, retro = rule.add(d.isoformat(), gate, t, i, limit)
                held += int(h) + len(retro)
                total += 1
    print(f"days {len(pop.visits)}, passages {total:,}, held by the rule {held} "
          f"({time.monotonic() - t0:.1f} s)")  # fmt: skip
    print(f"{'lane':22} {'kind':9} {'peak/60 s':>9} {'limit':>5}")
    for gate in sorted(peak, key=lambda g: -peak[g]):
        lane = venue.gates[gate]
        print(f"{gate:22} {lane.kind:9} {peak[gate]:9d} {lane_max_per_minute(lane) + group:5d}")


if __name__ == "__main__":
    main()
