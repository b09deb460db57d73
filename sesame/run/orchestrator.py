"""Drive the whole system with the visitor model: real broker, real counter, real gates.

    replay = Replay(venue, venue_file, population, broker, work_dir, options)
    replay.start(); replay.run(); replay.drain(); truth = replay.truth(); replay.close()

- badges: a fresh venue key; every badge signed with the real badge code; `manifest.csv`
  imported into the counter's registry; revoked badges published (retained) by the admin
  account;
- counter: in this process (`sesame.counter.service.Counter`) or `sesame counter run` as a child
  process that can be killed with SIGKILL and restarted on the same database;
- one gate agent per lane, in this process or each in its own process (`sesame.run.lanes`),
  with its own broker account; lanes may go through a relay that can be cut (`proxy`);
- time: simulated, set before every action; `speed` simulated seconds per real second
  (0: as fast as the system keeps up, with back-pressure on the gates' outboxes);
- ground truth: what really went through the turnstiles (`sesame.sim.truth`).

`broker` is anything with `.url(account)`, `.credentials(account)`, `.host`, `.port`
(`sesame.broker.process.MosquittoProcess`, `sesame.broker.embedded.EmbeddedBroker`).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sesame.common.capacity import over_capacity
from sesame.common.venue import Venue
from sesame.run.lanes import EPOCH, InProcessLane, ProcessLane, SimClock, wait_until
from sesame.sim import truth as truth_mod
from sesame.sim.badges import issue, write_manifest
from sesame.sim.engine import Engine, Passage, ScanResult, Stats
from sesame.sim.model import Population

log = logging.getLogger("sesame.sim")
NIGHT_MS = 30 * 60_000  # a jump in simulated time longer than this re-anchors the pacing


@dataclass
class Options:
    speed: float = 0.0  # simulated seconds per real second; 0: as fast as it keeps up
    paced_from_ms: int = 0  # simulated time before which `speed` does not apply (fast-forward)
    processes: bool = False  # every lane in its own process
    process_lanes: frozenset[str] = frozenset()  # these lanes in their own process
    relayed_lanes: frozenset[str] = frozenset()  # these lanes reach the broker via a relay
    counter_process: bool = False
    counters: int = 1  # counter processes sharing `db` (PostgreSQL): one active, others stand by
    db: str | None = None  # the counter's database: a postgresql:// URL; None: work/sesame.db
    max_backlog: int = 400  # events waiting in the outboxes before the simulation waits
    seed: int = 0
    progress: Callable[[str, int, int], None] | None = None  # (day, done, total)


@dataclass
class Outcome:
    passages: dict[str, list[Passage]] = field(default_factory=dict)
    stats: dict[str, Stats] = field(default_factory=dict)
    actions: int = 0
    wall_s: float = 0.0


class CounterProcess:
    """`sesame counter run` in a child process."""

    def __init__(self, venue_file: Path, db: Path | str, credentials: Path, log_path: Path,
                 clock_file: Path | None = None, name: str | None = None):  # fmt: skip
        self.name = name
        self.args = [
            sys.executable,
            "-m",
            "sesame",
            "counter",
            "run",
            "--venue",
            str(venue_file),
            "--db",
            str(db),
            "--credentials",
            str(credentials),
            *(["--name", name] if name else []),
        ]
        if clock_file is not None:  # the simulator's time, not the real clock
            self.args += ["--clock-file", str(clock_file)]
        self.log_path = log_path
        self.kills = 0
        self.proc: subprocess.Popen | None = None

    def start(self) -> CounterProcess:
        logf = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT
        )
        logf.close()
        return self

    def kill(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None
            self.kills += 1

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Replay:
    def __init__(
        self,
        venue: Venue,
        venue_file: Path,
        population: Population,
        broker,
        work: Path,
        options: Options | None = None,
    ):
        self.venue, self.venue_file, self.pop = venue, Path(venue_file), population
        self.broker = broker
        self.work = Path(work)
        self.opt = options or Options()
        self.db: Path | str = self.opt.db or self.work / "sesame.db"
        self.lanes: dict[str, InProcessLane | ProcessLane] = {}
        self.relays: dict = {}
        self.counter = None
        self.counters: list[CounterProcess] = []  # with Options.counters > 1
        self.tokens: dict[str, str] = {}
        self.outcome = Outcome()
        self.on_action: Callable[[int, int], None] | None = None  # chaos hooks: (n, at)
        self._anchor: tuple[int, float] | None = None
        self._last_at = 0
        self._n = 0
        # the lanes' shared simulated clock: from the start of the first day replayed, so a
        # lane that has not scanned yet reads a plausible time, then every action's time
        self.clock = SimClock(start_of_replay(venue, population))

    # -- set-up --------------------------------------------------------------------------
    def start(self) -> Replay:
        from sesame.common.tokens import generate_keypair, load_private_key, load_public_keys
        from sesame.counter.registry import import_manifest

        self.work.mkdir(parents=True, exist_ok=True)
        keydir = self.work / "keys"
        if not (keydir / "badge-signing.key").exists():
            generate_keypair(keydir)
        key = load_private_key(keydir / "badge-signing.key")
        self.pubkey = keydir / "badge-signing.pub"
        keys = load_public_keys(self.pubkey)
        self.tokens = issue(self.pop, key, [d.date for d in self.venue.days])
        manifest = write_manifest(self.pop, self.tokens, self.work / "manifest.csv")
        import_manifest(self.db, manifest)
        self.publish_revocations()
        self.start_counter()
        for gid in self.venue.gates:
            self.lanes[gid] = self._make_lane(gid, keys).start()
        return self

    def publish_revocations(self) -> None:
        from sesame.common import mqtt, wire

        topics = wire.Topics(self.venue.id)
        conn = mqtt.connect(self.broker.url("admin"), f"sim-admin-{os.getpid()}", clean_start=True)
        try:
            revocations = wire.Revocations(badges=tuple(self.pop.revoked))
            sent = [conn.publish(topic, payload, 1, retain=True)
                    for topic, payload in revocations.messages(topics)]  # fmt: skip
            for info in sent:
                info.wait_for_publish(10)
        finally:
            conn.close()

    def start_counter(self) -> None:
        """The counter runs on the simulated clock: the venue's time and day are its own
        clock's (never a lane's stamps), here the simulator's."""
        if (self.opt.counter_process or self.opt.counters > 1) and self.clock.mirror is None:
            from sesame.common.clock_file import ClockFileWriter

            self._clock_file = ClockFileWriter(self.work / "clock", self.clock.ms)
            self.clock.mirror = self._clock_file.set
        if self.opt.counters > 1:  # counters on one shared database, standing by
            self.counters = [
                CounterProcess(
                    self.venue_file, self.db, self.broker.credentials("counter"),
                    self.work / f"counter-c{i}.log", clock_file=self.work / "clock",
                    name=f"c{i}",
                ).start()
                for i in range(1, self.opt.counters + 1)
            ]  # fmt: skip
            self.counter = self.counters[0]
        elif self.opt.counter_process:
            self.counter = CounterProcess(
                self.venue_file,
                self.db,
                self.broker.credentials("counter"),
                self.work / "counter.log",
                clock_file=self.work / "clock",
            ).start()
        else:
            from sesame.counter.service import Counter

            self.counter = Counter(
                self.venue, self.db, self.broker.url("counter"), clock=self.clock
            ).start()

    def _lane_url(self, gid: str) -> str:
        url = self.broker.url(f"gate-{gid}")
        if gid not in self.opt.relayed_lanes:
            return url
        from sesame.run.proxy import CuttableLink

        relay = self.relays.get(gid) or CuttableLink(self.broker.host, self.broker.port)
        self.relays[gid] = relay
        parts = urlsplit(url)
        userinfo = parts.netloc.rsplit("@", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{userinfo}@{relay.host}:{relay.port}"))

    def _make_lane(self, gid: str, keys):
        data = self.work / "gates" / gid
        data.mkdir(parents=True, exist_ok=True)
        if self.opt.processes or gid in self.opt.process_lanes:
            return ProcessLane(
                self.venue_file, gid, data_dir=data, pubkey=self.pubkey, url=self._lane_url(gid),
                start_ms=self.clock.ms,
            )  # fmt: skip
        return InProcessLane(
            self.venue, gid, data_dir=data, keys=keys, broker_url=self._lane_url(gid),
            clock=self.clock,
        )  # fmt: skip

    # -- the driver the engine talks to ----------------------------------------------------
    def scan(self, gate: str, text: str, at: int, pushes: int) -> ScanResult:
        return self.lanes[gate].scan(text, at, pushes)

    def pulse(self, gate: str, at: int, count: int) -> int:
        return self.lanes[gate].pulse(at, count)

    def _pace(self, at: int) -> None:
        self._n += 1
        if self.on_action is not None:
            self.on_action(self._n, at)
        if at < self.opt.paced_from_ms:
            self._anchor = None  # fast-forward: pacing starts at the first paced action
        elif self._anchor is None or at - self._last_at > NIGHT_MS:
            self._anchor = (at, time.monotonic())
        self._last_at = at
        self.clock.set(at)
        if self.opt.speed > 0 and self._anchor is not None:
            sim0, wall0 = self._anchor
            ahead = (at - sim0) / 1000 / self.opt.speed - (time.monotonic() - wall0)
            if ahead > 0:
                time.sleep(ahead)
        if self._n % 200 == 0:
            self._backpressure()

    def backlog(self) -> int:
        return sum(lane.depth() for lane in self.lanes.values() if _alive(lane))

    def _backpressure(self) -> None:
        """Do not run ahead of the system: wait (a little) while the outboxes are deep."""
        if self.backlog() <= self.opt.max_backlog:
            return
        wait_until(lambda: self.backlog() <= self.opt.max_backlog // 2, timeout=5.0)
        if self._anchor is not None:  # the wait is not the simulation falling behind
            self._anchor = (self._last_at, time.monotonic())

    # -- running -------------------------------------------------------------------------
    def run(self, days: list[date] | None = None) -> Outcome:
        days = days or sorted(self.pop.visits)
        t0 = time.monotonic()
        for d in days:
            eng = Engine(self.venue, self.pop, d, self.tokens, self, seed=self.opt.seed)
            eng.pace = self._pace
            if self.opt.progress:
                total = len(eng.states)
                self.opt.progress(d.isoformat(), 0, total)
            self.outcome.passages[d.isoformat()] = eng.run()
            self.outcome.stats[d.isoformat()] = eng.stats
            if self.opt.progress:
                self.opt.progress(d.isoformat(), len(eng.states), len(eng.states))
        self.outcome.actions = self._n
        self.outcome.wall_s = time.monotonic() - t0
        return self.outcome

    def drain(self, timeout: float = 120.0) -> bool:
        """Wait until every gate's outbox is empty: the counter has committed everything."""
        return wait_until(lambda: self.backlog() == 0, timeout, step=0.2)

    def truth(self) -> dict:
        return truth_mod.ground_truth(
            self.venue, self.outcome.passages, self.pop.badges, self.outcome.stats
        )

    def close(self) -> None:
        for lane in self.lanes.values():
            try:
                lane.stop()
            except Exception:
                log.exception("stopping lane %s", lane.gate_id)
        for c in self.counters or ([self.counter] if self.counter is not None else []):
            c.stop()
        for relay in self.relays.values():
            relay.close()


def start_of_replay(venue: Venue, population: Population) -> int:
    """Simulated ms at the local midnight that starts the first day with visits."""
    days = sorted(population.visits) or [d.date for d in venue.days]
    start = datetime.combine(days[0], datetime.min.time(), venue.tz)
    return int((start - EPOCH) / timedelta(milliseconds=1))


def _alive(lane) -> bool:
    return not isinstance(lane, ProcessLane) or lane.proc is not None


def event_log_over_capacity(db: Path | str, venue: Venue) -> dict[str, dict[str, dict]]:
    """From the stored event log (not the counter's state): every zone whose occupancy ever
    went above capacity, per day -> {zone: {peak, capacity, offline_policy}} (an `open` zone
    can be; a lease zone never: see sesame.common.capacity.lease_breaches)."""
    from sesame.counter.store import connect

    conn = connect(db, readonly=True)
    try:
        rows = conn.execute(
            "SELECT day, t, from_zone, to_zone FROM events WHERE kind = 'passage' "
            "ORDER BY day, t, rowid"
        ).fetchall()
    finally:
        conn.close()
    occ: dict[tuple[str, str], int] = {}
    peaks: dict[str, dict[str, int]] = {}
    for day, _t, a, b in rows:
        occ[(day, a)] = occ.get((day, a), 0) - 1
        occ[(day, b)] = occ.get((day, b), 0) + 1
        top = peaks.setdefault(day, {})
        top[b] = max(top.get(b, 0), occ[(day, b)])
    out = {day: over_capacity(venue, top) for day, top in sorted(peaks.items())}
    return {day: zones for day, zones in out.items() if zones}
