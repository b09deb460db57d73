"""End-to-end acknowledgement with the real counter: the broker is killed with SIGKILL while
the counter is down and passages are queued for it; once both are back, every passage
reaches the counter, because the gate keeps them until the counter's ack, not the PUBACK."""

from __future__ import annotations

import sqlite3
import time

from sesame.counter.service import Counter
from sesame.gate.agent import GateAgent
from sesame.gate.turnstile import MemoryTurnstile


def until(cond, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def counter_ids(db, gate):
    with sqlite3.connect(db) as c:
        return {r[0] for r in c.execute("SELECT id FROM events WHERE gate = ?", (gate,))}


def test_broker_sigkill_while_counter_down(
    mosquitto, gp_venue, badge_keys, make_token, tmp_path, gate_clock
):
    db = tmp_path / "counter.db"
    counter = Counter(gp_venue, db, mosquitto.url("counter"), clock=gate_clock).start()
    gate = GateAgent(
        gp_venue,
        "churchill-in-1",
        data_dir=tmp_path / "gate",
        keys=badge_keys,
        broker_url=mosquitto.url("gate-churchill-in-1"),
        turnstile=MemoryTurnstile(),
        clock=gate_clock,
        heartbeat=0.5,
        ack_timeout=1.0,
    )
    gate.start()
    try:
        # the counter hands the lane its lease; passages are acked end to end
        assert until(lambda: gate.lease is not None and gate.lease_left("nef", gate_clock().date()))
        for i in range(5):
            assert gate.handle_scan(make_token(f"A{i}")).granted
        assert until(lambda: gate.outbox_depth() == 0)

        counter.stop()
        for i in range(10):
            assert gate.handle_scan(make_token(f"B{i}")).granted
        # the broker takes them (PUBACK) and queues them for the absent counter...
        time.sleep(0.5)
        assert gate.outbox_depth() == 10
        mosquitto.kill()  # ...and loses that queue
        mosquitto.start()
        counter = Counter(gp_venue, db, mosquitto.url("counter"), clock=gate_clock).start()

        epoch = gate.outbox.epoch
        want = {f"churchill-in-1:{epoch}:{s}" for s in range(1, 16)}
        assert until(lambda: gate.outbox_depth() == 0, timeout=60), gate.outbox_depth()
        assert counter_ids(db, "churchill-in-1") == want
    finally:
        gate.stop()
        counter.stop()
