"""How fast a lane decides: the pure decide() and a whole scan through the agent.

    .venv/bin/python bench/bench_decide.py [--n 5000]

Prints per-call median and p99 and the rate on one core for:
  decide() on valid badges (in-memory passage memory)   - Ed25519 verification included
  decide() on garbage text                              - the MALFORMED fast path
  decide() with the SQLite outbox as memory (10k events stored)
  GateAgent.handle_scan(): decide + turnstile (in-process) + durable commit (synchronous=FULL)
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

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from sesame.common import wire  # noqa: E402
from sesame.common.decision import MemoryDict, decide  # noqa: E402
from sesame.common.tokens import Claims, key_id, sign  # noqa: E402
from sesame.common.venue import load_venue  # noqa: E402
from sesame.gate.agent import GateAgent  # noqa: E402
from sesame.gate.turnstile import MemoryTurnstile  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOON = datetime(2018, 11, 22, 12, tzinfo=ZoneInfo("Europe/Paris"))


def stats(name: str, times: list[float]) -> None:
    times = sorted(times)
    med = statistics.median(times)
    p99 = times[int(len(times) * 0.99) - 1]
    print(
        f"{name:<52} median {med * 1e6:8.1f} µs  p99 {p99 * 1e6:8.1f} µs  "
        f"{1 / statistics.mean(times):9.0f} /s"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    n = ap.parse_args().n
    venue = load_venue(ROOT / "config" / "grand-palais.toml")
    key = Ed25519PrivateKey.generate()
    keys = {key_id(key.public_key()): key.public_key()}
    tokens = [sign(Claims(f"B{i:06d}", "public", None), key) for i in range(n)]
    gate = venue.gates["churchill-in-1"]
    common = dict(
        venue=venue,
        gate=gate,
        keys=keys,
        revoked=frozenset({"X1", "X2"}),
        zone_states={"nef": "near_full"},
        venue_mode="normal",
        lease_left=100,
        now=NOON,
    )

    def run(texts, memory):
        out = []
        for t in texts:
            t0 = time.perf_counter()
            d = decide(t, memory=memory, **common)
            out.append(time.perf_counter() - t0)
        assert d is not None
        return out

    stats("decide(), valid badges, in-memory memory", run(tokens, MemoryDict()))
    garbage = [f"https://example.org/ticket/{i}" for i in range(n)]
    stats("decide(), garbage text (MALFORMED)", run(garbage, MemoryDict()))

    with tempfile.TemporaryDirectory() as d:
        agent = GateAgent(
            venue,
            "churchill-in-1",
            data_dir=d,
            keys=keys,
            turnstile=MemoryTurnstile(),
            clock=lambda: NOON,
        )
        # 10,000 passages already recorded today by this lane
        agent.on_message(
            agent.topics.lease("churchill-in-1"),
            wire.Lease("churchill-in-1", "2018-11-22", {"nef": 10**6}).to_json(),
            True,
        )
        clock_t = [NOON - timedelta(hours=2)]
        agent.clock._clock = lambda: clock_t[0]
        fill = [sign(Claims(f"F{i:06d}", "public", None), key) for i in range(10_000)]
        t0 = time.perf_counter()
        for tok in fill:
            agent.handle_scan(tok)
        fill_s = time.perf_counter() - t0
        clock_t[0] = NOON
        stats("decide(), SQLite outbox as memory (10k events)", run(tokens, agent.outbox))
        times = []
        for tok in tokens:
            t0 = time.perf_counter()
            agent.handle_scan(tok)
            times.append(time.perf_counter() - t0)
        stats("handle_scan(): decide + turnstile + durable commit", times)
        print(f"(filling 10,000 scans took {fill_s:.1f} s: {10_000 / fill_s:.0f} scans/s)")
        agent.outbox.close()


if __name__ == "__main__":
    main()
