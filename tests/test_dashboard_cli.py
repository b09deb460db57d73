"""`sesame users add|remove|list` and `sesame dashboard` argument checks, through the real
command line in a subprocess."""

from __future__ import annotations

import subprocess
import sys

from sesame.dashboard.accounts import AccountStore


def sesame(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sesame", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_users_add_list_remove(tmp_path):
    acc = str(tmp_path / "accounts.db")
    r = sesame("users", "add", "sophie", "--role", "safety", "--password-stdin",
               "--accounts", acc, input="a long password\n")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert AccountStore(acc).authenticate("sophie", "a long password").role == "safety"
    r = sesame("users", "add", "sophie", "--role", "viewer", "--password-stdin",
               "--accounts", acc, input="another password\n")  # fmt: skip
    assert r.returncode == 2 and "already exists" in r.stderr and len(r.stderr.splitlines()) == 1
    r = sesame("users", "add", "olga", "--role", "organiser", "--password-stdin",
               "--accounts", acc, input="short\n")  # fmt: skip
    assert r.returncode == 2 and "password" in r.stderr
    r = sesame("users", "add", "olga", "--role", "admin", "--password-stdin", "--accounts", acc)
    assert r.returncode == 2
    # no terminal and no --password-stdin: a clear refusal, not a hang
    r = sesame("users", "add", "olga", "--role", "viewer", "--accounts", acc, input="")
    assert r.returncode == 2 and "--password-stdin" in r.stderr
    assert sesame("users", "list", "--accounts", acc).stdout == "sophie\tsafety\n"
    assert sesame("users", "remove", "sophie", "--accounts", acc).returncode == 0
    r = sesame("users", "remove", "sophie", "--accounts", acc)
    assert r.returncode == 1 and "no user" in r.stderr
    assert sesame("users", "list", "--accounts", acc).stdout == ""


def test_dashboard_refuses_bad_arguments_in_one_line(tmp_path):
    bad_venue = tmp_path / "v.toml"
    bad_venue.write_text("[venue]\nid = 'x'\nname = 'x'\nbogus = 1\n")
    cases = [
        (["--venue", str(bad_venue)], "v.toml"),
        (["--db", str(tmp_path / "missing.db")], "missing.db"),
        (["--broker", "http://example:1883"], "scheme"),
        (["--port", "70000"], "port"),
    ]
    for args, needle in cases:
        r = sesame("dashboard", "--accounts", str(tmp_path / "a.db"), *args)
        assert r.returncode == 2, (args, r.stderr)
        assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_file_that_is_not_an_accounts_database_is_refused(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not SQLite at all" * 100)
    r = sesame("users", "list", "--accounts", str(junk))
    assert r.returncode == 2 and "junk.db" in r.stderr and len(r.stderr.splitlines()) == 1
    assert junk.read_bytes().startswith(b"this is not SQLite")  # left as it was


def test_a_port_already_in_use_is_one_line_exit_2(tmp_path):
    import socket

    acc = str(tmp_path / "a.db")
    AccountStore(acc).add_user("sophie", "safety", "a long password")
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        r = sesame("dashboard", "--accounts", acc, "--port", str(port))
    assert r.returncode == 2, r.stderr
    assert f"127.0.0.1:{port}" in r.stderr and "in use" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "dashboard for" not in r.stdout  # no address printed for a server that never ran


def test_list_and_remove_refuse_a_missing_accounts_file(tmp_path):
    """A mistyped --accounts is reported, not answered with an empty list (and no stray
    empty database is left behind)."""
    missing = tmp_path / "dashbaord.db"
    for args in (["list"], ["remove", "sophie"]):
        r = sesame("users", *args, "--accounts", str(missing))
        assert r.returncode == 2, r.stderr
        assert "dashbaord.db" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not missing.exists()


def test_a_server_thread_on_a_busy_port_names_it(tmp_path):
    """`sesame demo` serves the dashboard from a thread: a busy --http-port must come back as
    an OSError naming the address (one line from the CLI), not a traceback."""
    import socket

    import pytest

    from sesame.common.venue import load_venue
    from sesame.dashboard.app import DashboardSettings, create_app
    from sesame.dashboard.server import ServerThread
    from tests.fixtures.foundation import REFERENCE_VENUE

    settings = DashboardSettings(venue=load_venue(REFERENCE_VENUE), accounts_path=tmp_path / "a.db")
    app = create_app(settings)
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}: .*in use"):
            ServerThread(app, "127.0.0.1", port)
    with ServerThread(app) as server:  # a free port still works, and is released on stop
        assert server.port > 0
    with socket.create_server(("127.0.0.1", server.port)):
        pass
