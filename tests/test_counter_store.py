"""The counter's store on both engines: the same migrations, the same writes and reads, the
same answers; on PostgreSQL, the fence that keeps a former active counter from writing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from types import SimpleNamespace

import psycopg
import pytest

from sesame.counter import migrations_pg, store
from sesame.counter.store import CounterStore, EventRow, Fenced
from tests.fixtures.counter import ENGINES, engine_target


@pytest.fixture(params=ENGINES)
def target(request, tmp_path):
    return engine_target(request, tmp_path)


def _row(i: int, gate: str = "in-1", kind: str = "passage") -> EventRow:
    return EventRow(
        f"ev{i}", gate, "e1", i, "2018-11-22T10:00:00+01:00", 1542877200.0 + i, "2018-11-22",
        10, kind, "outside", "hall", f"B{i:06d}", "public", None, None, None, None,
        store.utcnow(),
    )  # fmt: skip


def test_every_sqlite_migration_has_its_postgresql_counterpart():
    sqlite_names = [name for name, _ in store.MIGRATIONS]
    pg_names = [name for name, _ in migrations_pg.PG_MIGRATIONS]
    missing = [n for n in sqlite_names if n not in pg_names]
    assert not missing, f"migrations without a PostgreSQL version in migrations_pg.py: {missing}"
    assert pg_names == sqlite_names, "same migrations, in the same order"


def test_both_schemas_have_the_same_tables_and_columns(tmp_path, pg_dsn):
    def columns(s: CounterStore) -> dict[str, list[str]]:
        if s.engine == "sqlite":
            tables = [r[0] for r in s.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%'")]  # fmt: skip
            return {t: [r[1] for r in s.conn.execute(f"PRAGMA table_info({t})")] for t in tables}
        out: dict[str, list[str]] = {}
        for t, c in s.conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        ):
            out.setdefault(t, []).append(c)
        return out

    lite, pg = CounterStore(tmp_path / "c.db"), CounterStore(pg_dsn)
    try:
        a, b = columns(lite), columns(pg)
    finally:
        lite.close()
        pg.close()
    for table in ("events", "held_passages"):  # SQLite's rowid is implicit
        b[table].remove("rowid")
    assert a == b


def test_migrations_apply_once(target):
    s = CounterStore(target)
    s.close()
    s = CounterStore(target)  # a restart applies nothing again
    try:
        assert store.migrate(s.conn) == []
        names = [r[0] for r in s.conn.execute("SELECT name FROM _migrations ORDER BY name")]
        assert names == [n for n, _ in store.MIGRATIONS]
    finally:
        s.close()


def test_events_are_stored_once_by_id(target):
    s = CounterStore(target)
    try:
        with s.transaction():
            s.insert_events([_row(1), _row(2)])
        with s.transaction():  # a batch redelivered after a takeover: only the new one
            s.insert_events([_row(2), _row(3), _row(1)])
        ids = [r[0] for r in s.conn.execute("SELECT id FROM events ORDER BY rowid")]
        assert ids == ["ev1", "ev2", "ev3"]
        assert s.last_event_rowid() >= 3
        assert sorted(s.passages_since(0)) == [("2018-11-22", "in-1", 3)]
        first = s.conn.execute("SELECT rowid FROM events WHERE id = 'ev2'").fetchone()[0]
        assert list(s.passages_since(first)) == [("2018-11-22", "in-1", 1)]
        assert s.lane_epoch_passages("in-1", "e1", "2018-11-22") == 3
    finally:
        s.close()


def test_a_rolled_back_batch_leaves_nothing(target):
    s = CounterStore(target)
    try:
        with pytest.raises(RuntimeError), s.transaction():
            s.insert_events([_row(1)])
            s.save_seq("in-1", "e1", 1, [], 1)
            raise RuntimeError("crash before commit")
        assert s.conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0
        assert list(s.seq_states()) == []
    finally:
        s.close()


def test_state_leases_controls_corrections_and_registry(target):
    s = CounterStore(target)
    c = SimpleNamespace(id="c1", zone="hall", delta=-2, reason="count", by="sophie",
                        ts=datetime(2018, 11, 22, 11, tzinfo=UTC))  # fmt: skip
    try:
        with s.transaction():
            s.save_seq("in-1", "e1", 4, [[6, 7]], 7)
            s.save_seq("in-1", "e1", 5, [[7, 7]], 7)
            assert s.save_correction(c, c.ts.timestamp(), "2018-11-22")
            assert not s.save_correction(c, c.ts.timestamp(), "2018-11-22")  # once by id
            s.set_control("zone:hall", "closed", "sophie", None)
            s.set_control("zone:hall", "open", "sophie", None)
            s.set_gate_seen("in-1", online=1, outbox=3)
            s.set_gate_seen("in-1", online=0)
            s.save_lease("in-1", "2018-11-22", 2, {"hall": 10}, {"hall": 12})
            s.save_lease("in-1", "2018-11-22", 3, {"hall": 14}, {})
            s.save_residues("2018-11-22", {"hall": 1})
            s.set_state("lane_epochs", {"in-1": "e1"})
            s.audit("correction", who="sophie", zone="hall", detail={"é": 1})
            s.upsert_badges([{"badge_id": "B1", "token": "t", "category": "public",
                              "imported_at": store.utcnow()}])  # fmt: skip
            s.upsert_badges([{"badge_id": "B1", "token": "t2", "category": "school",
                              "imported_at": store.utcnow()}])  # fmt: skip
            for i in range(5):
                s.snapshot(i, {"passages": {"d": {"g": i}}})
        assert list(s.seq_states()) == [("in-1", "e1", 5, [[7, 7]], 7)]
        assert list(s.correction_totals()) == [("2018-11-22", "hall", -2)]
        assert s.controls() == {"zone:hall": "open"}
        assert s.lease_serials() == {"in-1": 3}
        assert list(s.leases_of("2018-11-22")) == [("in-1", "hall", 14, 14)]
        assert s.get_state("lane_epochs") == {"in-1": "e1"}
        assert s.get_state("missing", 7) == 7
        assert s.latest_snapshot() == (4, {"passages": {"d": {"g": 4}}})
        assert s.conn.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 3
        assert s.conn.execute("SELECT online, outbox FROM gates_seen").fetchone() == (0, 3)
        assert s.conn.execute("SELECT token, category FROM badges").fetchone() == ("t2", "school")
    finally:
        s.close()


def test_quarantine_keeps_bytes(target):
    s = CounterStore(target)
    try:
        with s.transaction():
            s.quarantine([("t/x", b"\xff\x00junk" * 10000, "not json", store.utcnow())])
        payload, size = s.conn.execute("SELECT payload, size FROM quarantine").fetchone()
        kept = store.QUARANTINE_PAYLOAD_KEPT
        assert bytes(payload) == (b"\xff\x00junk" * 10000)[:kept] and size == 60000
    finally:
        s.close()


def test_two_counters_migrating_together_apply_each_migration_once(pg_dsn):
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            CounterStore(pg_dsn).close()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with psycopg.connect(pg_dsn) as conn:
        n = conn.execute("SELECT count(*) FROM _migrations").fetchone()[0]
    assert n == len(store.MIGRATIONS)


def test_a_former_term_writes_nothing(pg_dsn):
    from sesame.counter.standby import Leadership

    first = Leadership(pg_dsn, "grand-palais", "a")
    assert first.try_acquire() == 1
    s = CounterStore(pg_dsn)
    s.fence = ("grand-palais", 1)
    try:
        with s.transaction():
            s.insert_events([_row(1)])
        first.release()  # the role moves: another counter takes term 2
        second = Leadership(pg_dsn, "grand-palais", "b")
        assert second.try_acquire() == 2
        with pytest.raises(Fenced), s.transaction():
            s.insert_events([_row(2)])
        assert s.conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1
        second.release()
    finally:
        s.close()


def test_held_passages_and_decisions(target):
    s = CounterStore(target)
    d = SimpleNamespace(id="d1", action="accept_held", gate="in-1", by="sophie",
                        ts=datetime(2018, 11, 22, 11, tzinfo=UTC))  # fmt: skip
    try:
        with s.transaction():
            s.insert_events([_row(i) for i in range(1, 5)])
            s.hold([(f"ev{i}", "in-1", "2018-11-22", 1542877200.0 + i, "e1") for i in (3, 1, 2)])
            s.hold([("ev1", "in-1", "2018-11-22", 1542877201.0, "e1")])  # held once
        assert s.held_counts() == {"in-1": 3}
        assert [r[0] for r in s.held_of("in-1", None)] == ["ev3", "ev1", "ev2"]  # hold order
        assert [r[0] for r in s.held_of("in-1", 2)] == ["ev3", "ev1"]
        with s.transaction():
            assert s.record_decision(d)
            assert not s.record_decision(d)  # once by id
            s.decide_held(["ev3", "ev1"], "accepted", "d1")
            s.decision_outcome("d1", "applied", {"accepted": 2})
        kinds = dict(s.conn.execute("SELECT id, kind FROM events"))
        assert kinds == {"ev1": "passage", "ev2": "held", "ev3": "passage", "ev4": "passage"}
        assert s.held_counts() == {"in-1": 1}
    finally:
        s.close()
