"""Badge throughput: issue 2,000 registrations (PNG only, then PNG + PDF sheets) and verify
tokens, as `sesame badges issue` and a gate do. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_badges.py [--count 2000] [--verify 20000]

Runs in a temporary directory; the machine's load average is printed beside the figures
because the machines here are shared.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sesame.badges import issue as badges
from sesame.badges.registrations import parse_registrations  # noqa: E402
from sesame.common import tokens  # noqa: E402
from sesame.common.venue import load_venue  # noqa: E402

VENUE = Path(__file__).resolve().parents[1] / "config" / "grand-palais.toml"
DAYS = ["2018-11-22", "2018-11-23", "2018-11-24", "2018-11-25"]


def registrations_csv(n: int, seed: int = 1) -> bytes:
    """A realistic mix: mostly one-day public and school badges, some multi-day ones."""
    rng = random.Random(seed)
    lines = ["name,category,days,group_size,organisation,department"]
    for i in range(n):
        r = rng.random()
        if r < 0.55:
            cat, days, group = "public", rng.choice(DAYS), 1
        elif r < 0.75:
            cat, days, group = "school", rng.choice(DAYS[:2]), rng.randint(18, 32)
        elif r < 0.9:
            cat, days, group = "professional", ";".join(sorted(rng.sample(DAYS, 2))), 1
        else:
            cat, days, group = rng.choice(["exhibitor", "speaker", "press", "staff"]), "all", 1
        lines.append(
            f"Person {i},{cat},{days},{group},Organisation {i % 97},{rng.randint(1, 95):02d}"
        )
    return ("\n".join(lines) + "\n").encode()


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=2000, help="registrations to issue")
    ap.add_argument("--verify", type=int, default=20000, help="token verifications")
    args = ap.parse_args()

    venue = load_venue(VENUE)
    regs = parse_registrations(registrations_csv(args.count), "bench.csv", venue)
    with tempfile.TemporaryDirectory() as tmp:
        priv, pub = tokens.generate_keypair(Path(tmp) / "keys")
        key, ring = tokens.load_private_key(priv), tokens.load_public_keys(pub)
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

        issued, wall, cpu = timed(lambda: badges.make_tokens(regs.rows, key))
        print(f"sign only:        {args.count / wall:8.0f} tokens/s   (cpu {cpu:.2f} s)")

        _, wall, cpu = timed(lambda: badges.issue(regs, key, Path(tmp) / "png", venue=venue))
        print(
            f"issue PNG:        {args.count / wall:8.0f} badges/s  "
            f"({args.count} in {wall:.2f} s, cpu {cpu:.2f} s)"
        )

        result, wall, cpu = timed(
            lambda: badges.issue(regs, key, Path(tmp) / "pdf", pdf=True, venue=venue)
        )
        size = (Path(tmp) / "pdf" / badges.SHEETS).stat().st_size
        print(
            f"issue PNG + PDF:  {args.count / wall:8.0f} badges/s  "
            f"({args.count} in {wall:.2f} s, cpu {cpu:.2f} s; {result.pages} pages, "
            f"{size / 1e6:.1f} MB)"
        )

        toks = [b.token for b in issued]
        n = args.verify

        def verify_all():
            for i in range(n):
                tokens.verify(toks[i % len(toks)], ring)

        _, wall, cpu = timed(verify_all)
        print(f"verify:           {n / wall:8.0f} tokens/s  ({1e6 * wall / n:.0f} µs each)")

        # reference in the same run: the bare Ed25519 check, what any verifier must pay
        pub = key.public_key()
        msg = toks[0].rsplit(".", 1)[0].encode()
        sig = key.sign(msg)

        def raw_all():
            for _ in range(n):
                pub.verify(sig, msg)

        _, wall_raw, _ = timed(raw_all)
        print(
            f"  reference: bare Ed25519 verify {n / wall_raw:8.0f}/s ({1e6 * wall_raw / n:.0f} µs)"
        )

        longest = max(toks, key=len)
        f = badges.qr_facts(longest)
        lengths = sorted(len(t) for t in toks)
        print(
            f"token length:     {lengths[0]}–{lengths[-1]} characters; largest code QR version "
            f"{f['version']} ({f['modules']} modules, level M): {f['module_mm']} mm per module "
            f"when printed 25 mm wide"
        )


if __name__ == "__main__":
    main()
