"""Exactness: a replay of a school day and the crowded Sunday (a tenth of the event, a tenth of
the capacities) through real Mosquitto, 14 real gate agents and a real counter. The export a
user runs equals the ground truth on every figure, and no lease zone ever held more than its
capacity according to the stored event log."""

from __future__ import annotations

import sqlite3

from sesame.common.capacity import lease_breaches
from sesame.run.orchestrator import event_log_over_capacity
from sesame.sim.truth import compare
from tests.fixtures.e2e import export_attendance

THU, SUN = "2018-11-22", "2018-11-25"


def test_replay_export_equals_ground_truth(replay_of, tmp_path):
    replay = replay_of(only=(THU, SUN), scale=0.1).start()
    out = replay.run()
    assert replay.drain(timeout=90), f"outboxes not empty: backlog {replay.backlog()}"
    truth = replay.truth()

    export = export_attendance(replay.db, replay.venue_file, tmp_path / "attendance.json")
    assert compare(truth, export) == []

    # what the figures are about actually happened
    thu, sun = truth["days"][THU], truth["days"][SUN]
    assert thu["schoolchildren"] > 600
    assert sum(thu["departements"].values()) == thu["schoolchildren"]
    assert len(thu["departements"]) >= 20  # every class from its own département first
    assert thu["by_category"]["exhibitor"] > 0 and sun["unique_visitors"] > thu["unique_visitors"]
    full = out.stats[SUN].denied.get("ZONE_FULL", 0) + out.stats[SUN].denied.get(
        "LEASE_EXHAUSTED", 0
    )
    assert full > 0, "the Nef never filled on Sunday: no queue formed"
    nef = replay.venue.zones["nef"].capacity
    assert sun["peak_occupancy"]["nef"]["value"] > 0.9 * nef
    # the reference's Sunday: the Nef reached capacity in the early afternoon (and only then:
    # the export's times equal the truth's, compared above)
    near = export["days"][SUN]["near_full_at"]["nef"]
    assert near is not None and "13:00" <= near[11:16] < "15:00", near
    assert export["days"][SUN]["full_at"]["nef"] >= near
    assert export["days"][THU]["full_at"]["nef"] is None  # a school day never fills the Nef
    for reason in ("BAD_SIGNATURE", "UNKNOWN_KEY", "REVOKED", "NOT_VALID_TODAY", "MALFORMED"):
        assert sum(s.denied.get(reason, 0) for s in out.stats.values()) > 0, reason
    assert all(s.exit_refused == 0 for s in out.stats.values())

    # capacity, from the event log and independently from what really passed
    assert lease_breaches(event_log_over_capacity(replay.db, replay.venue)) == {}
    assert lease_breaches(truth["over_capacity"]) == {}
    # no lane was cut off: every zone, the open-policy balconies too, stayed within capacity
    assert event_log_over_capacity(replay.db, replay.venue) == {}
    # everyone left before closing: nothing left over at the daily reset
    assert all(not any(d["residue"].values()) for d in export["days"].values())
    with sqlite3.connect(replay.db) as conn:
        assert conn.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
