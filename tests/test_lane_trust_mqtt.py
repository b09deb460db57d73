"""Lane trust through a real Mosquitto with the generated ACL and each lane's own account:
a lane flipping its outbox epoch hundreds of times writes off one lease and starves nobody
until a safety officer confirms a change; 2,000 exits in ten seconds from one tripod exit
lane leave the Nef's count unchanged and show as held; the officer's decisions (dashboard
account, control/decisions) change counts exactly once even when delivered twice, and a
counter restart keeps holds and decisions. A lane's account cannot publish a decision."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from sesame.common import mqtt, wire
from sesame.common.venue import load_venue
from sesame.common.wire.decisions import Decision
from sesame.counter.service import Counter
from tests import waiting
from tests.fixtures.counter import PARIS, findings_retained

REPO = Path(__file__).resolve().parents[1]
VENUE = load_venue(REPO / "config" / "grand-palais.toml")
T = wire.Topics(VENUE.id)
START = datetime(2018, 11, 22, 10, 0, tzinfo=PARIS)


class Clock:
    """The counter's clock, moved along with the lanes' event time."""

    def __init__(self, t: datetime):
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def wait_for(cond, timeout=30.0, what="condition"):
    return waiting.wait_for(cond, timeout, what)


class Watcher:
    """What the dashboard account sees: the latest payload per topic."""

    def __init__(self, url, topics):
        self.last: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.conn = mqtt.connect(url, f"watch-{os.getpid()}-{id(self)}", clean_start=True,
                                 session_expiry=0, subscriptions=[(t, 1) for t in topics],
                                 on_message=self._on)  # fmt: skip
        self.conn.wait_subscribed(10)

    def _on(self, msg):
        with self.lock:
            self.last[msg.topic] = msg.payload

    def get(self, topic):
        with self.lock:
            return self.last.get(topic)

    def lease(self, gate) -> wire.Lease | None:
        p = self.get(T.lease(gate))
        return wire.parse_lease(p) if p else None

    def occupancy(self, zone="nef") -> int | None:
        p = self.get(T.occupancy(zone))
        return wire.parse_occupancy(p).occupancy if p else None

    def finding(self, kind, gate) -> wire.Finding | None:
        with self.lock:
            return findings_retained(self.last).get(f"{kind}:{gate}")


class Lane:
    """A lane publishing with its own account: events (with its outbox's seq) and status."""

    def __init__(self, url, gate, epoch="ep1"):
        self.gate, self.epoch, self.lane = gate, epoch, VENUE.gates[gate]
        self.seq: dict[str, int] = {}
        self.acked: dict[str, int] = {}
        self.lock = threading.Lock()
        self.conn = mqtt.connect(url, f"lane-{gate}-{uuid.uuid4().hex[:6]}", clean_start=True,
                                 session_expiry=0, subscriptions=[(T.ack(gate), 1)],
                                 on_message=self._on_ack)  # fmt: skip
        self.conn.wait_subscribed(10)

    def _on_ack(self, msg):
        a = wire.parse_ack(msg.payload)
        if a:
            with self.lock:
                self.acked[a.epoch] = max(self.acked.get(a.epoch, 0), a.seq)

    def passages(self, n, start, spread_s):
        step = spread_s / n
        for i in range(n):
            s = self.seq[self.epoch] = self.seq.get(self.epoch, 0) + 1
            badge = f"B{s:06d}" if self.lane.reader else None
            ev = wire.Event(gate=self.gate, epoch=self.epoch, seq=s,
                            ts=start + timedelta(seconds=i * step), kind="passage",
                            from_zone=self.lane.from_zone, to_zone=self.lane.to_zone,
                            badge=badge, category="public" if badge else None)  # fmt: skip
            self.conn.publish(T.events(self.gate), ev.to_json(), qos=1)

    def all_acked(self) -> bool:
        with self.lock:
            return self.acked.get(self.epoch, 0) >= self.seq.get(self.epoch, 0)

    def status(self, epoch=None, lease_serial=None, ts=START):
        st = wire.GateStatus(gate=self.gate, online=True, outbox=0, epoch=epoch or self.epoch,
                             ts=ts, lease_serial=lease_serial)  # fmt: skip
        self.conn.publish(T.gate_status(self.gate), st.to_json(), qos=1, retain=True)

    def close(self):
        self.conn.close()


class Officer:
    """The dashboard's account publishing a safety officer's decisions."""

    def __init__(self, url):
        self.conn = mqtt.connect(url, f"officer-{uuid.uuid4().hex[:6]}", clean_start=True,
                                 session_expiry=0)  # fmt: skip

    def decide(self, action, gate, *, epoch=None, count=None, times=1, did=None) -> str:
        d = Decision(id=did or uuid.uuid4().hex, action=action, gate=gate, by="officer1",
                     ts=START, epoch=epoch, count=count)  # fmt: skip
        for _ in range(times):
            self.conn.publish(T.decisions(), d.to_json(), qos=1).wait_for_publish(10)
        return d.id

    def close(self):
        self.conn.close()


def audit(db, action) -> list[dict]:
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT who, detail FROM audit WHERE action = ?", (action,)).fetchall()
    return [dict(json.loads(d), who=w) for w, d in rows]


def decisions(db) -> list[tuple]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT id, action, outcome FROM decisions ORDER BY applied_at").fetchall()


def fill_nef(mosquitto, n) -> None:
    """n people in through the four Churchill speed gates at a plausible pace."""
    lanes = [Lane(mosquitto.url(f"gate-churchill-in-{i}"), f"churchill-in-{i}")
             for i in range(1, 5)]  # fmt: skip
    for ln in lanes:
        ln.passages(n // 4, START - timedelta(hours=1), spread_s=n // 4 * 2.0)
    wait_for(lambda: all(ln.all_acked() for ln in lanes), what="entries acknowledged")
    for ln in lanes:
        ln.close()


def test_epoch_flips_write_off_one_lease_and_an_honest_lane_is_still_topped_up(
    mosquitto, tmp_path
):  # fmt: skip
    db = tmp_path / "c.db"
    watch = Watcher(mosquitto.url("dashboard"), [T.lease(), T.alerts(), T.occupancy()])
    clock = Clock(START)
    counter = Counter(VENUE, db, mosquitto.url("counter"), clock=clock).start()
    thief = Lane(mosquitto.url("gate-churchill-in-1"), "churchill-in-1", epoch="atk0")
    honest = Lane(mosquitto.url("gate-churchill-in-2"), "churchill-in-2")
    officer = Officer(mosquitto.url("dashboard"))
    try:
        thief.status()
        honest.status()
        wait_for(lambda: watch.lease("churchill-in-2") and watch.lease("churchill-in-1"),
                 what="first leases")  # fmt: skip
        t = START
        rounds = 0
        for flip in range(300):  # atk1, atk0, atk1, ...: the first is a new outbox, once
            thief.status(epoch=f"atk{(flip + 1) % 2}", ts=t)
            if flip % 50 == 49:  # the honest lane spends what it holds and reports back
                lease = watch.lease("churchill-in-2")
                n = lease.grants["nef"] - honest.seq.get("ep1", 0)
                honest.passages(n, t, spread_s=n * 1.0)  # one a second: a speed gate's pace
                t += timedelta(seconds=n + 60)
                clock.t = t
                wait_for(honest.all_acked, what="honest lane acknowledged")
                honest.status(lease_serial=lease.serial, ts=t)
                wait_for(lambda lease=lease: watch.lease("churchill-in-2").serial > lease.serial
                         and watch.lease("churchill-in-2").grants["nef"]
                         > lease.grants["nef"], what="honest lane topped up")  # fmt: skip
                rounds += 1
        assert rounds == 6
        # 300 flips end on atk0: the change back from atk1 waits for an officer
        wait_for(lambda: (f := watch.finding("EPOCH_CHANGE_HELD", "churchill-in-1"))
                 and f.count == 150, what="held change")  # fmt: skip
        held = watch.finding("EPOCH_CHANGE_HELD", "churchill-in-1")
        assert held.detail["epoch"] == "atk0" and held.detail["current_epoch"] == "atk1"
        assert held.detail["allowance"] > 0
        assert len(audit(db, "allowance_written_off")) == 1  # the first change only
        assert len(audit(db, "epoch_change_held")) == 1  # audited once, not 150 times
        assert watch.lease("churchill-in-1").epoch == "atk1"  # atk0's outbox got no lease
        # a lane's account cannot confirm its own change: the broker drops the message
        forged = Lane(mosquitto.url("gate-churchill-in-1"), "churchill-in-1")
        d = Decision(id=uuid.uuid4().hex, action="confirm_epoch", gate="churchill-in-1",
                     by="thief", ts=START, epoch="atk0")  # fmt: skip
        try:
            forged.conn.publish(T.decisions(), d.to_json(), qos=1)
        except Exception:  # noqa: BLE001 - refused outright is as good as dropped
            pass
        forged.close()
        # the officer confirms: one more write-off, the new outbox's lease; twice = once
        did = officer.decide("confirm_epoch", "churchill-in-1", epoch="atk0", times=2)
        wait_for(lambda: watch.lease("churchill-in-1").epoch == "atk0", what="lease for atk0")
        wait_for(lambda: watch.finding("EPOCH_CHANGE_HELD", "churchill-in-1") is None,
                 what="finding cleared")  # fmt: skip
        wait_for(lambda: len(decisions(db)) == 1, what="decision recorded")
        assert decisions(db) == [(did, "confirm_epoch", "applied")]
        offs = audit(db, "allowance_written_off")
        assert len(offs) == 2 and offs[1]["new_epoch"] == "atk0"
        [confirmed] = audit(db, "confirm_epoch")
        assert confirmed["who"] == "officer1" and confirmed["outcome"] == "applied"
        # and the lane is on its own again: the next change is held
        thief.status(epoch="atk1")
        wait_for(lambda: watch.finding("EPOCH_CHANGE_HELD", "churchill-in-1"), what="held again")
        assert len(audit(db, "allowance_written_off")) == 2
    finally:
        counter.stop()
        for c in (thief, honest, officer):
            c.close()
        watch.conn.close()


def test_a_burst_of_exits_is_held_and_decided_once_across_a_restart(mosquitto, tmp_path):
    db = tmp_path / "c.db"
    watch = Watcher(mosquitto.url("dashboard"), [T.alerts(), T.occupancy()])
    clock = Clock(START)
    counter = Counter(VENUE, db, mosquitto.url("counter"), clock=clock).start()
    exit_lane = Lane(mosquitto.url("gate-clemenceau-out-1"), "clemenceau-out-1")
    officer = Officer(mosquitto.url("dashboard"))
    try:
        fill_nef(mosquitto, 600)
        wait_for(lambda: watch.occupancy() == 600, what="Nef 600")
        exit_lane.passages(2000, START, spread_s=10.0)  # one tripod, ten seconds
        wait_for(exit_lane.all_acked, what="burst acknowledged")
        wait_for(lambda: (f := watch.finding("IMPLAUSIBLE_RATE", "clemenceau-out-1"))
                 and f.count == 2000, what="2,000 held")  # fmt: skip
        assert watch.occupancy() == 600
        with sqlite3.connect(db) as c:
            kinds = dict(c.execute("SELECT kind, count(*) FROM events "
                                   "WHERE gate = 'clemenceau-out-1' GROUP BY kind"))  # fmt: skip
        assert kinds == {"held": 2000}
        # rejected, twice: nothing counts, the finding ends
        officer.decide("reject_held", "clemenceau-out-1", count=2000, times=2)
        wait_for(lambda: watch.finding("IMPLAUSIBLE_RATE", "clemenceau-out-1") is None,
                 what="finding cleared")  # fmt: skip
        assert watch.occupancy() == 600
        # a crowd that really did leave at once (beyond the tripod's 40 a minute plus one
        # group of 32): 100 in half a second, accepted twice = once
        clock.t = START + timedelta(minutes=30)
        exit_lane.passages(100, clock.t, spread_s=0.5)
        wait_for(lambda: (f := watch.finding("IMPLAUSIBLE_RATE", "clemenceau-out-1"))
                 and f.count == 100, what="100 held")  # fmt: skip
        officer.decide("accept_held", "clemenceau-out-1", count=100, times=2)
        wait_for(lambda: watch.occupancy() == 500, what="Nef 500")
        # held when the counter restarts: still held after, and decided once after
        clock.t = START + timedelta(minutes=60)
        exit_lane.passages(120, clock.t, spread_s=1.0)
        wait_for(lambda: (f := watch.finding("IMPLAUSIBLE_RATE", "clemenceau-out-1"))
                 and f.count == 120, what="120 held")  # fmt: skip
        counter.stop()
        with watch.lock:  # what the restarted counter says, not what it said before
            watch.last = {t: p for t, p in watch.last.items() if "/counter/alerts/" not in t}
        counter = Counter(VENUE, db, mosquitto.url("counter"), clock=clock).start()
        wait_for(lambda: (f := watch.finding("IMPLAUSIBLE_RATE", "clemenceau-out-1"))
                 and f.count == 120, what="holds kept across the restart")  # fmt: skip
        assert watch.occupancy() == 500
        did = officer.decide("accept_held", "clemenceau-out-1", count=30)
        wait_for(lambda: watch.occupancy() == 470, what="Nef 470")
        officer.decide("accept_held", "clemenceau-out-1", count=30, did=did)  # repeated
        officer.decide("accept_held", "clemenceau-out-1", count=10)  # then a new one, after it
        wait_for(lambda: watch.occupancy() == 460, what="Nef 460 (30 + 10, not 30 + 30 + 10)")
        assert len(decisions(db)) == 4
        wait_for(lambda: watch.finding("IMPLAUSIBLE_RATE", "clemenceau-out-1").count == 80,
                 what="80 still held")  # fmt: skip
        assert [a["who"] for a in audit(db, "accept_held")] == ["officer1"] * 3
    finally:
        counter.stop()
        exit_lane.close()
        officer.close()
        watch.conn.close()
