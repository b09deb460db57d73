"""Real gate agents driven by the simulator: in this process, or one process per lane.

Each lane is a real `sesame.gate.agent.GateAgent` (decision, SQLite outbox, MQTT link) with a
simulated turnstile that lets through exactly as many people as the simulator says push the
arm, and a clock the simulator sets before every action, so that events carry simulated time
(days and opening hours follow event time).

A lane in its own process (`python -m sesame.run.lanes ...`) takes one JSON command per line
on stdin and answers on stdout; the simulator can `kill -9` it and start it again on the same
outbox. `sesame gate run` has a free-running clock (`--start-time/--speed`), which cannot
give the exact times the ground truth needs, hence this small runner around the same agent.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sesame.sim.engine import ScanResult

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SimClock:
    """Simulated time in integer milliseconds; callable like a clock. `mirror` hears every
    change (a clock file for a counter in another process)."""

    def __init__(self, ms: int = 0):
        self.ms = ms
        self.mirror: Callable[[int], None] | None = None

    def set(self, ms: int) -> None:
        self.ms = ms
        if self.mirror is not None:
            self.mirror(ms)

    def __call__(self) -> datetime:
        return EPOCH + timedelta(milliseconds=self.ms)  # exact: no float rounding


class SimTurnstile:
    """sesame.gate.turnstile.Turnstile where `pushes` people push the arm after the next scan."""

    health = "ok"

    def __init__(self):
        self.pushes = 0
        self.rotations = 0
        self._idle = threading.Event()

    def open(self, direction: str, timeout: float) -> bool:
        if self.pushes > 0:
            self.pushes -= 1
            self.rotations += 1
            return True
        return False  # nobody pushed: the gate records NO_PASSAGE

    def hold_free(self, on: bool) -> None:
        pass

    def pulse(self, timeout: float) -> str | None:
        # Reader-less lanes are driven synchronously (anonymous_pass); just idle here.
        self._idle.wait(timeout)
        return None

    def close(self) -> None:
        self._idle.set()


class InProcessLane:
    def __init__(self, venue, gate_id: str, *, data_dir: Path, keys, broker_url: str | None,
                 clock: SimClock | None = None):  # fmt: skip
        """`clock`: the replay's simulated clock, shared by its lanes. A lane's clock runs
        from the start like a real lane's, not from 1970 until its first scan (a gate reading
        1970 rightly reports CLOCK_IMPLAUSIBLE)."""
        from sesame.gate.agent import GateAgent

        self.gate_id = gate_id
        self.clock = clock if clock is not None else SimClock()
        self.turnstile = SimTurnstile()
        self._waited_on: tuple | None = None
        self.agent = GateAgent(
            venue,
            gate_id,
            data_dir=data_dir,
            keys=keys,
            broker_url=broker_url,
            turnstile=self.turnstile,
            clock=self.clock,
            trust_counter_clock=False,  # a replay of 2018: the counter's clock is today's
            ack_timeout=5.0,
        )

    def start(self) -> InProcessLane:
        self.agent.start()
        return self

    def scan(self, text: str, at: int, pushes: int) -> ScanResult:
        self.clock.set(at)
        before = self.turnstile.rotations
        self.turnstile.pushes = pushes
        dec = self.agent.handle_scan(text)
        self.turnstile.pushes = 0
        passed = self.turnstile.rotations - before
        if dec.reason == "NO_PASSAGE":  # granted, but nobody pushed
            return ScanResult(True, None, passed)
        zone = self.agent.occupancy.get(self.agent.gate.to_zone)
        if dec.reason == "LEASE_EXHAUSTED" and (zone is None or zone.state == "open"):
            self._await_top_up()
        return ScanResult(dec.granted, str(dec.reason) if dec.reason else None, passed)

    def _await_top_up(self, timeout: float = 0.1) -> None:
        """Simulated time runs far faster than the counter answers: give the lease top-up
        the (real) moment it takes before the visitor scans again. Once per lease: when no
        top-up came, the counter has no room to give and waiting again is pointless."""
        lease = self.agent.lease
        serial = (lease.day, lease.serial) if lease else None
        if serial is not None and serial == self._waited_on:
            return
        self._waited_on = serial
        wait_until(
            lambda: (ls := self.agent.lease) is not None and (ls.day, ls.serial) != serial,
            timeout,
            step=0.005,
        )

    def pulse(self, at: int, count: int) -> int:
        self.clock.set(at)
        for _ in range(count):
            self.agent.anonymous_pass()
        return count

    def depth(self) -> int:
        return self.agent.outbox_depth()

    def stop(self) -> None:
        self.agent.stop()


class ProcessLane:
    """The same lane in a child process, which can be killed with SIGKILL and restarted."""

    def __init__(self, venue_file: Path, gate_id: str, *, data_dir: Path, pubkey: Path, url: str,
                 start_ms: int = 0):  # fmt: skip
        self.gate_id = gate_id
        self.args = [
            sys.executable,
            "-m",
            "sesame.run.lanes",
            "--venue",
            str(venue_file),
            "--gate",
            gate_id,
            "--data-dir",
            str(data_dir),
            "--pubkey",
            str(pubkey),
            "--start-ms",
            str(start_ms),
        ]
        self.url = url
        self.proc: subprocess.Popen | None = None
        self.kills = 0

    def start(self) -> ProcessLane:
        env = dict(os.environ, SESAME_SIM_BROKER=self.url)  # not on the command line
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            env=env,
        )
        self._ask({"op": "depth"})  # ready
        return self

    def _ask(self, cmd: dict) -> dict:
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"lane {self.gate_id}: process ended")
        return json.loads(line)

    def scan(self, text: str, at: int, pushes: int) -> ScanResult:
        r = self._ask({"op": "scan", "text": text, "at": at, "pushes": pushes})
        return ScanResult(r["granted"], r["reason"], r["passed"])

    def pulse(self, at: int, count: int) -> int:
        return self._ask({"op": "pulse", "at": at, "count": count})["passed"]

    def depth(self) -> int:
        return self._ask({"op": "depth"})["depth"]

    def kill(self) -> None:
        """SIGKILL, between two actions: what is in the outbox must survive."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.kills += 1
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self._ask({"op": "stop"})
        except (RuntimeError, OSError, ValueError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def _serve(args: argparse.Namespace) -> int:
    from sesame.common.tokens import load_public_keys
    from sesame.common.venue import load_venue

    venue = load_venue(args.venue)
    lane = InProcessLane(
        venue,
        args.gate,
        data_dir=Path(args.data_dir),
        keys=load_public_keys(args.pubkey),
        broker_url=os.environ.get("SESAME_SIM_BROKER"),
        clock=SimClock(args.start_ms),
    ).start()
    out = sys.stdout
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "scan":
            r = lane.scan(cmd["text"], cmd["at"], cmd["pushes"])
            reply = {"granted": r.granted, "reason": r.reason, "passed": r.passed}
        elif op == "pulse":
            reply = {"passed": lane.pulse(cmd["at"], cmd["count"])}
        elif op == "depth":
            reply = {"depth": lane.depth()}
        elif op == "stop":
            lane.stop()
            out.write("{}\n")
            out.flush()
            return 0
        else:
            reply = {"error": f"unknown op {op!r}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    lane.stop()
    return 0


def wait_until(pred, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="one simulated lane in its own process")
    p.add_argument("--venue", required=True)
    p.add_argument("--gate", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--pubkey", required=True)
    p.add_argument("--start-ms", type=int, default=0, help="simulated clock at start (ms)")
    sys.exit(_serve(p.parse_args()))
