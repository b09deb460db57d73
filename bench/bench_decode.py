"""Decode benchmarks for the gate's code readers. Prints its figures; asserts nothing.

    .venv/bin/python bench/bench_decode.py            # everything (~2 min)
    .venv/bin/python bench/bench_decode.py --quick    # fewer repetitions

1. decode + decide per frame (1280x720, 640x480), median and p99, per decoder, pinned to one
   core: frames with a badge (decode, then the full decision) and empty frames (what a camera
   sees most of the time: decode only, nothing to decide).
2. the fallback passes' cost on a defocused badge (located, unreadable by zxing-cpp alone).
3. decode rate on the QR sample photos (tests/data/qr-samples, or SESAME_QR_SAMPLES) per decoder.
4. rendered badges (real signed tokens) after each distortion: decode rate per decoder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench.bench_decode_images import (  # noqa: E402
    DISTORTIONS,
    in_frame,
    make_tokens,
    qr_samples,
    qr_samples_dir,
    render_qr,
)
from sesame.gate.decode import DECODERS as ALL_DECODERS  # noqa: E402
from sesame.gate.decode import decode_file, decode_frame  # noqa: E402
from sesame.gate.decoders import state  # noqa: E402

# without libzbar0 the pyzbar decoder cannot run: measure the others and say so
DECODERS = tuple(d for d in ALL_DECODERS if state(d).usable)
SKIPPED = {d: state(d).reason() for d in ALL_DECODERS if d not in DECODERS}


def pin_one_core() -> str:
    cv2.setNumThreads(1)
    try:
        cpu = sorted(os.sched_getaffinity(0))[-1]
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity)"


def lane_frames(tokens: list[str], size: tuple[int, int], module_px: int) -> list[np.ndarray]:
    """A badge held at varied places, slightly soft and noisy, as a lane camera sees it."""
    rng = np.random.default_rng(11)
    frames = []
    w, h = size
    for token in tokens:
        qr = render_qr(token, module_px)
        x = int(rng.integers(0, w - qr.shape[1]))
        y = int(rng.integers(0, h - qr.shape[0]))
        f = cv2.GaussianBlur(in_frame(qr, size, at=(x, y)), (0, 0), 0.8)
        f = np.clip(f + rng.normal(0, 8, f.shape), 0, 255).astype(np.uint8)
        frames.append(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))  # cameras hand over BGR
    return frames


def empty_frames(size: tuple[int, int], n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(12)
    base = in_frame(np.full((4, 4), 110, np.uint8), size)
    return [
        cv2.cvtColor(
            np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8),
            cv2.COLOR_GRAY2BGR,
        )
        for _ in range(n)
    ]


def decider():
    """The real decision with the reference venue, at an opening hour, for frames' tokens."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from sesame.common.decision import MemoryDict, decide
    from sesame.common.tokens import key_id
    from sesame.common.venue import load_venue

    venue = load_venue(Path(__file__).resolve().parent.parent / "config" / "grand-palais.toml")
    gate = venue.gates["churchill-in-1"]
    pub = Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32).public_key()  # make_tokens' key
    keys = {key_id(pub): pub}
    now = datetime.fromisoformat("2018-11-22T10:00:00+01:00")

    def run(text: str):
        return decide(
            text,
            venue=venue,
            gate=gate,
            keys=keys,
            revoked=set(),
            zone_states={},
            venue_mode="normal",
            lease_left=100,
            memory=MemoryDict(),
            now=now,
        )

    return run


def timed(wall: list[float], cpu: list[float], fn, *args):
    """Run fn(*args); append its wall and thread-CPU time in ms; return its result."""
    c0, t0 = time.thread_time(), time.perf_counter()
    out = fn(*args)
    wall.append((time.perf_counter() - t0) * 1e3)
    cpu.append((time.thread_time() - c0) * 1e3)
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def bench_frames(reps: int) -> None:
    """Decoders are timed round-robin frame by frame, so a burst of load from other processes
    on this shared machine hits all of them alike. Two clocks: wall time (what a person at the
    lane waits) and this thread's CPU time (the work itself: time lost to other processes on
    a shared core is not in it). `reference` is a fixed OpenCV workload (5x5 Gaussian blur of
    the frame) timed in the same loop, to show how noisy the run was."""
    decide = decider()
    tokens = make_tokens(12)
    names = (*DECODERS, "reference")
    print("\n## decode + decide per frame (ms), one core, decoders interleaved")
    print(
        f"{'frame':<10} {'decoder':<9} {'read':>5} | {'badge: wall med':>15} {'p99':>6}"
        f" {'cpu med':>7} {'p99':>6} | {'empty: wall med':>15} {'p99':>6} {'cpu med':>7}"
        f" {'p99':>6}"
    )
    for size, module in (((1280, 720), 5), ((640, 480), 4)):
        badges, empties = lane_frames(tokens, size, module), empty_frames(size, 12)
        for dec in DECODERS:
            decode_frame(badges[0], dec)  # warm up (library load, first allocation)
        wall = {n: {"badge": [], "empty": []} for n in names}
        cpu = {n: {"badge": [], "empty": []} for n in names}
        read = dict.fromkeys(DECODERS, 0)

        def decode_and_decide(f: np.ndarray, dec: str) -> list[str]:
            codes = decode_frame(f, dec)
            for text in codes:
                d = decide(text)
                assert d.granted or d.reason is not None
            return codes

        for _ in range(reps):
            for kind, frames in (("badge", badges), ("empty", empties)):
                for i, f in enumerate(frames):
                    for dec in DECODERS:
                        codes = timed(wall[dec][kind], cpu[dec][kind], decode_and_decide, f, dec)
                        if kind == "badge":
                            read[dec] += tokens[i] in codes
                    ref = wall["reference"][kind], cpu["reference"][kind]
                    timed(*ref, cv2.GaussianBlur, f, (5, 5), 0)
        for n in names:
            rate = f"{read[n] / (reps * len(tokens)):5.0%}" if n in read else f"{'':5}"
            cols = []
            for kind in ("badge", "empty"):
                w, c = wall[n][kind], cpu[n][kind]
                cols.append(
                    f"{statistics.median(w):15.2f} {pct(w, 0.99):6.2f}"
                    f" {statistics.median(c):7.2f} {pct(c, 0.99):6.2f}"
                )
            print(f"{f'{size[0]}x{size[1]}':<10} {n:<9} {rate} | {cols[0]} | {cols[1]}")
    t0 = time.perf_counter()
    for _ in range(200):
        decide(tokens[0])
    print(f"decide() alone: {(time.perf_counter() - t0) / 200 * 1e3:.3f} ms per call")


def bench_defocused(reps: int) -> None:
    """The fallback passes' cost: frames where zxing-cpp locates a code it cannot read (a badge
    out of focus, Gaussian blur sigma 3 px), the only frames where `combined` does more work
    than `zxing`."""
    tokens = make_tokens(6)
    print("\n## defocused badge (blur sigma 3 px): thread CPU ms per frame, one core")
    for size in ((1280, 720), (640, 480)):
        frames = [cv2.GaussianBlur(in_frame(render_qr(t, 5), size), (0, 0), 3.0) for t in tokens]
        for dec in DECODERS:
            cpu, read = [], 0
            for _ in range(reps):
                for token, f in zip(tokens, frames, strict=True):
                    read += token in timed([], cpu, decode_frame, f, dec)
            print(
                f"{f'{size[0]}x{size[1]}':<10} {dec:<9} read {read / (reps * len(tokens)):4.0%}"
                f"  median {statistics.median(cpu):6.2f}  max {max(cpu):6.2f}"
            )


def bench_samples() -> None:
    root = qr_samples_dir()
    print(f"\n## decode rate on the QR samples in {root} (exact text / total)")
    if root is None:
        print("samples not found (set SESAME_QR_SAMPLES)")
        return
    samples = qr_samples(root)
    for dec in DECODERS:
        t0 = time.perf_counter()
        ok = sum(s.expected in decode_file(s.image, dec) for s in samples)
        ms = (time.perf_counter() - t0) / len(samples) * 1e3
        print(f"{dec:<9} {ok}/{len(samples)} = {ok / len(samples):.1%}   ({ms:.1f} ms per image)")


def bench_distortions(n: int) -> None:
    tokens = make_tokens(n)
    print(f"\n## rendered badges after distortion: decode rate over {n} signed tokens")
    print(f"{'distortion':<22}" + "".join(f"{d:>10}" for d in DECODERS))
    for name, distort in DISTORTIONS.items():
        frames = [distort(t, i) for i, t in enumerate(tokens)]
        rates = [
            sum(t in decode_frame(f, d) for t, f in zip(tokens, frames, strict=True)) / n
            for d in DECODERS
        ]
        print(f"{name:<22}" + "".join(f"{r:>10.0%}" for r in rates))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    print(f"# bench_decode: {pin_one_core()}, load average {os.getloadavg()[0]:.1f}")
    for name, why in SKIPPED.items():
        print(f"# {name} skipped: {why}")
    for name in DECODERS:
        if why := state(name).reason():
            print(f"# {name} runs {state(name).label()}: {why}")
    bench_frames(reps=4 if args.quick else 15)
    bench_defocused(reps=1 if args.quick else 3)
    bench_samples()
    bench_distortions(8 if args.quick else 30)


if __name__ == "__main__":
    main()
