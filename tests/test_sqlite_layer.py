"""The one SQLite layer (sesame.common.sqlite) under the counter, the lane's outbox and the
dashboard's accounts and alerts: databases are created 0600, there is one bookkeeping table,
databases written by the code before it still open with everything in them, transactions
roll back whole, and read-only connections neither write nor create."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from datetime import UTC, date, datetime

import pytest

from sesame.common import sqlite
from sesame.common.wire import Event
from sesame.counter.store import CounterStore
from sesame.dashboard import accounts as accounts_mod
from sesame.dashboard.accounts import AccountStore
from sesame.dashboard.alert_book import Alert
from sesame.dashboard.alert_store import AlertStore
from sesame.gate import outbox as outbox_mod
from sesame.gate.outbox import Outbox
from tests.fixtures.gate import paris

THU = date(2018, 11, 22)


@pytest.fixture
def loose_umask():
    """A umask that would leave a new file readable by everyone (022)."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def _tables(path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def _event(ob: Outbox, badge: str) -> Event:
    def build(seq):
        return Event("churchill-in-1", ob.epoch, seq, paris(2018, 11, 22, 12), "passage",
                     "outside", "nef", badge, "public", None)  # fmt: skip

    return ob.append(build, THU)


def test_every_database_is_created_0600_wal_files_too(tmp_path, loose_umask):
    counter = CounterStore(tmp_path / "counter.db")
    ob = Outbox(tmp_path / "lane" / "outbox.db")
    _event(ob, "B1")
    accounts = AccountStore(tmp_path / "dashboard.db")
    accounts.add_user("sophie", "safety", "a long password")
    AlertStore(tmp_path / "dashboard.db").save([])
    with counter.transaction():
        counter.audit("test", who=None, zone="nef", detail={})
    files = [p for p in tmp_path.rglob("*.db*") if p.is_file()]
    assert {p.name for p in files} >= {"counter.db", "outbox.db", "dashboard.db",
                                       "counter.db-wal", "outbox.db-wal"}  # fmt: skip
    assert {p.name: oct(_mode(p)) for p in files} == {p.name: "0o600" for p in files}
    counter.close(), ob.close(), accounts.close()


def test_one_bookkeeping_table_in_every_store(tmp_path):
    CounterStore(tmp_path / "c.db").close()
    Outbox(tmp_path / "o.db").close()
    AccountStore(tmp_path / "d.db").close()
    AlertStore(tmp_path / "d.db").close()
    for name in ("c.db", "o.db", "d.db"):
        tables = _tables(tmp_path / name)
        assert "_migrations" in tables and "migrations" not in tables, (name, tables)
    conn = sqlite.readonly(tmp_path / "d.db")
    assert sqlite.applied(conn) == {"0001_users_audit", "alerts_0001"}
    conn.close()


def _old_outbox(path, epoch: str, bodies: list[bytes]) -> None:
    """An outbox as the code before sesame.common.sqlite wrote it: bookkeeping in
    `migrations (name)`, the schema of 0001 and 0002, the epoch in meta."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY)")
    for stmt in sqlite.statements(outbox_mod._SCHEMA_0001 + ";" + outbox_mod.MIGRATIONS[1][1]):
        conn.execute(stmt)
    conn.execute("INSERT INTO migrations VALUES ('0001_outbox'), ('0002_badge_indexes')")
    conn.execute("INSERT INTO meta VALUES ('epoch', ?)", (epoch,))
    for seq, body in enumerate(bodies, 1):
        conn.execute("INSERT INTO events VALUES (?, ?, 'passage', ?, 'outside', 'nef', ?, ?)",
                     (seq, body, f"B{seq}", THU.isoformat(), 1542884400000 + seq))  # fmt: skip
    conn.execute("INSERT INTO meta VALUES ('last_seq', ?)", (str(len(bodies)),))
    conn.execute("INSERT INTO meta VALUES ('acked', '1')")
    conn.close()


def test_an_outbox_from_before_keeps_its_epoch_events_and_ack(tmp_path):
    path = tmp_path / "old.db"
    _old_outbox(path, "0ld3p0ch", [b'{"a":1}', b'{"a":2}', b'{"a":3}'])
    ob = Outbox(path)
    assert ob.epoch == "0ld3p0ch"  # the 0001 step (a new epoch) did not run again
    assert ob.last_seq == 3 and ob.acked_seq == 1
    assert ob.pending(0) == [(2, b'{"a":2}'), (3, b'{"a":3}')]
    assert _event(ob, "B9").seq == 4  # numbering continues, no gap
    assert ob.seen("B1", "nef", THU).last_in is not None  # its passage memory is intact
    ob.close()
    assert "migrations" not in _tables(path)
    conn = sqlite.readonly(path)
    # taken over, not applied again; the later ones (0003: admissions) applied once
    assert sqlite.applied(conn) == {"0001_outbox", "0002_badge_indexes", "0003_admissions"}
    conn.close()
    again = Outbox(path)  # and the taken-over bookkeeping holds on the next start
    assert again.epoch == "0ld3p0ch" and again.last_seq == 4
    again.close()


def test_a_dashboard_database_from_before_keeps_accounts_audit_and_alerts(tmp_path):
    path = tmp_path / "dashboard.db"
    # accounts as the code before wrote them, and the alerts table it created bare
    fresh = AccountStore(tmp_path / "template.db")
    fresh.add_user("sophie", "safety", "a long password")
    fresh.close()
    src = sqlite3.connect(tmp_path / "template.db")
    users = src.execute("SELECT * FROM users").fetchall()
    src.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY)")
    for stmt in sqlite.statements(accounts_mod._MIGRATIONS[0][1]):
        conn.execute(stmt)
    conn.execute("INSERT INTO migrations VALUES ('0001_users_audit')")
    conn.executemany("INSERT INTO users VALUES (?, ?, ?, ?)", users)
    conn.execute("INSERT INTO audit (at, user, role, action, target) VALUES "
                 "('2018-11-22T10:00:00+00:00', 'sophie', 'safety', 'close', 'nef')")  # fmt: skip
    conn.execute("CREATE TABLE alerts (id INTEGER PRIMARY KEY, key TEXT NOT NULL, active INTEGER"
                 " NOT NULL, acknowledged INTEGER NOT NULL, data TEXT NOT NULL)")  # fmt: skip
    t = datetime(2018, 11, 22, 10, tzinfo=UTC)
    alert = Alert(7, "full", "nef", "zone", t, t, t, acked_by="sophie", acked_at=t)
    d = alert.to_dict()
    conn.execute("INSERT INTO alerts VALUES (7, ?, 1, 1, ?)", (d["key"], json.dumps(d)))
    conn.close()

    store = AccountStore(path)
    assert store.authenticate("sophie", "a long password").role == "safety"
    log = [(e.user, e.action, e.target) for e in store.audit_entries()]
    assert log == [("sophie", "close", "nef")]
    store.close()
    alerts, next_id = AlertStore(path).load()
    assert [(a.id, a.key, a.acked_by) for a in alerts] == [(7, "full:nef", "sophie")]
    assert next_id == 8
    assert "migrations" not in _tables(path)


def test_a_counter_database_is_migrated_once(tmp_path):
    CounterStore(tmp_path / "c.db").close()
    conn = sqlite.connect(tmp_path / "c.db")
    from sesame.counter.store import MIGRATIONS

    assert sqlite.migrate(conn, MIGRATIONS) == []  # nothing pending on a second open
    assert sqlite.applied(conn) == {name for name, _ in MIGRATIONS}
    conn.close()


def test_a_failing_migration_or_transaction_leaves_nothing_half_done(tmp_path):
    conn = sqlite.connect(tmp_path / "x.db")
    steps = [("0001_a", "CREATE TABLE a (x INTEGER)"),
             ("0002_b", "CREATE TABLE b (x INTEGER); INSERT INTO nowhere VALUES (1)")]  # fmt: skip
    with pytest.raises(sqlite3.OperationalError):
        sqlite.migrate(conn, steps)
    assert sqlite.applied(conn) == {"0001_a"}
    assert "b" not in _tables(tmp_path / "x.db")  # 0002 rolled back whole
    with pytest.raises(RuntimeError), sqlite.transaction(conn):
        conn.execute("INSERT INTO a VALUES (1)")
        raise RuntimeError("power cut")
    assert conn.execute("SELECT count(*) FROM a").fetchone()[0] == 0 and not conn.in_transaction
    with sqlite.transaction(conn):
        conn.execute("INSERT INTO a VALUES (2)")
    assert conn.execute("SELECT x FROM a").fetchall() == [(2,)]
    conn.close()


def test_read_only_connections_refuse_writes_and_never_create(tmp_path):
    missing = tmp_path / "none.db"
    with pytest.raises(FileNotFoundError):
        sqlite.readonly(missing)
    assert not missing.exists()
    odd = tmp_path / "a ?b#c.db"  # characters that end a file name in a URI unless quoted
    CounterStore(odd).close()
    conn = sqlite.readonly(odd)
    assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM events")
    conn.close()


def test_a_migration_another_process_applied_meanwhile_is_not_applied_again(tmp_path, monkeypatch):
    steps = [("0001_a", "CREATE TABLE a (x INTEGER)")]
    first, second = sqlite.connect(tmp_path / "x.db"), sqlite.connect(tmp_path / "x.db")
    monkeypatch.setattr(sqlite, "applied", lambda conn: set())  # both read "nothing applied"
    assert sqlite.migrate(first, steps) == ["0001_a"]
    assert sqlite.migrate(second, steps) == []  # seen under the write lock, not re-run
    first.close(), second.close()


def test_states_are_stored_as_their_text(tmp_path):
    from sesame.common.states import EventKind, ZoneAccess

    conn = sqlite.connect(tmp_path / "x.db")
    conn.execute("CREATE TABLE t (kind TEXT, state TEXT)")
    conn.execute("INSERT INTO t VALUES (?, ?)", (EventKind.DENIED, ZoneAccess.CLOSED))
    assert conn.execute("SELECT kind, typeof(kind), state FROM t").fetchone() == (
        "denied", "text", "closed")  # fmt: skip
    assert conn.execute("SELECT count(*) FROM t WHERE kind = 'denied'").fetchone() == (1,)
    conn.close()
