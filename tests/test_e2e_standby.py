"""No single box: a replayed school day through a three-node NATS JetStream cluster, with two
`sesame counter run` processes on one PostgreSQL database (one active, one standing by).
During the day a broker node is killed and restarted, and the active counter is killed with
-9; the standby takes over under a higher term, rebuilding from the database. Afterwards the
export equals the ground truth exactly, no lease zone went over capacity, every lane had the
new counter's lease within 30 s of the kill, and every outbox drained."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import psycopg
import pytest

from sesame.broker.nats_process import NatsCluster
from sesame.common.capacity import lease_breaches
from sesame.common.venue import load_venue
from sesame.counter import leases as lz
from sesame.counter.store import connect
from sesame.run.lanes import wait_until
from sesame.run.orchestrator import Options, Replay, event_log_over_capacity
from sesame.sim import model
from sesame.sim.model import ms
from sesame.sim.truth import compare
from tests.fixtures.e2e import REFERENCE, export_attendance

THU = "2018-11-22"
TAKEOVER_LIMIT_S = 30.0


def at(hhmm: str, venue) -> int:
    return ms(datetime.fromisoformat(f"{THU}T{hhmm}:00").replace(tzinfo=venue.tz))


def active(dsn: str) -> tuple[str, int] | None:
    """(holder name, term) of the venue's active counter, as the database records it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            row = conn.execute("SELECT holder, term FROM sesame_term").fetchone()
        except psycopg.errors.UndefinedTable:
            return None
    return (row[0], int(row[1])) if row else None


class LeaseWatch:
    """When each leased lane first acted on a lease of at least `term` (wall clock)."""

    def __init__(self, replay: Replay):
        self.replay = replay
        self.lanes = sorted(lz.leased_lanes(replay.venue))
        self.term: int | None = None
        self.since = 0.0
        self.reached: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def expect(self, term: int) -> None:
        self.term, self.since, self.reached = term, time.monotonic(), {}

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            if self.term is None:
                continue
            for g in self.lanes:
                lease = self.replay.lanes[g].agent.lease
                if g not in self.reached and lease is not None and (lease.term or 0) >= self.term:
                    self.reached[g] = time.monotonic() - self.since

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def cluster(nats_config, tmp_path):
    c = NatsCluster(nats_config, run_dir=tmp_path / "nats")
    try:
        yield c.start()
    finally:
        c.close()


@pytest.mark.slow
def test_cluster_and_standby_counter_keep_exact_counts(cluster, pg_dsn, tmp_path):
    params = model.Params(seed=2018, only=(THU,)).scaled(0.05)
    venue_file, _ = model.derive_venue_file(
        REFERENCE, tmp_path / "venue.toml", capacity_factor=0.05,
        largest_group=params.class_size[1],
    )  # fmt: skip
    venue = load_venue(venue_file)
    replay = Replay(venue, venue_file, model.generate(venue, params), cluster, tmp_path / "run",
                    Options(counters=2, db=pg_dsn))  # fmt: skip
    watch = None
    try:
        replay.start()
        assert wait_until(lambda: active(pg_dsn) is not None, 30), "no counter became active"
        first = active(pg_dsn)
        assert first is not None and first[1] == 1
        watch = LeaseWatch(replay)
        watch.expect(1)
        assert wait_until(lambda: len(watch.reached) == len(watch.lanes), 60), (
            f"lanes without the first lease: {set(watch.lanes) - set(watch.reached)}"
        )
        done: list[str] = []
        by_name = {c.name: c for c in replay.counters}
        killed: list = []

        def kill_node() -> None:
            cluster.kill_node(0)  # every client starts on the first node: all move

        def kill_active() -> None:
            name, term = active(pg_dsn)  # type: ignore[misc]
            victim = by_name[name]
            victim.kill()  # kill -9, mid-batch or not
            killed.append((victim, term))
            watch.expect(term + 1)

        def restart_killed() -> None:
            killed[0][0].start()  # back as a standby

        steps = [
            ("09:40", "broker node kill -9", kill_node),
            ("10:00", "broker node back", lambda: cluster.start_node(0)),
            ("10:30", "active counter kill -9", kill_active),
            ("11:30", "killed counter back", restart_killed),
        ]
        plan = [(at(hhmm, venue), name, fn) for hhmm, name, fn in steps]

        def hook(n: int, t: int) -> None:
            while plan and t >= plan[0][0]:
                _, name, fn = plan.pop(0)
                fn()
                done.append(name)

        replay.on_action = hook
        out = replay.run()
        assert done == [name for _, name, _ in steps]
        assert replay.drain(timeout=120), f"outboxes not empty: backlog {replay.backlog()}"

        # the standby took over under the next term, within seconds, for every lane
        victim, term = killed[0]
        now = active(pg_dsn)
        assert now is not None and now[1] == term + 1 and now[0] != victim.name
        assert wait_until(lambda: len(watch.reached) == len(watch.lanes), 5), (
            f"lanes never given the new term's lease: {set(watch.lanes) - set(watch.reached)}"
        )
        slowest = max(watch.reached.values())
        print(f"takeover: every lane had the term {term + 1} lease {slowest:.2f} s after the kill")
        assert slowest < TAKEOVER_LIMIT_S, f"a lane waited {slowest:.1f} s for the new lease"
        log = (tmp_path / "run" / f"counter-{now[0]}.log").read_text()
        assert f"active counter for venue {venue.id}, term {term + 1}" in log
        assert f"taking over from {victim.name}" in log

        truth = replay.truth()
        export = export_attendance(pg_dsn, venue_file, tmp_path / "attendance.json")
        assert compare(truth, export) == []
        assert truth["days"][THU]["unique_visitors"] > 400
        assert lease_breaches(event_log_over_capacity(pg_dsn, venue)) == {}
        assert lease_breaches(truth["over_capacity"]) == {}
        assert all(s.exit_refused == 0 for s in out.stats.values())
        conn = connect(pg_dsn, readonly=True)
        try:
            assert conn.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
        finally:
            conn.close()
    finally:
        if watch is not None:
            watch.close()
        replay.close()
