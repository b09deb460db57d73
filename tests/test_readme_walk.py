"""The README as a path: its commands run in order, in a temporary copy of the repository, on a
machine where 127.0.0.1:1883 is taken (Debian's system Mosquitto), and each does what the
README says. Every fenced block of the README and docs/ is labelled; every shell and Python
block runs here or says why not (`<!-- not run: ... -->`), and those are counted.
"""

from __future__ import annotations

import csv
import json
import re
import socket
import stat
import time
import urllib.request
from pathlib import Path

import pytest

from sesame.broker.process import port_open
from sesame.common.net import free_port
from tests.docs_blocks import INERT, PYTHON, REPO, SHELL, Background, Walk, blocks, wait_for

DOCS = [
    "README.md",
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")),
    "sesame/gate/deploy/INSTALL.md",
]
# Blocks that cannot run on one machine, per document: a new one must be added here on purpose.
NOT_RUN = {
    "README.md": 3,  # scripts/dev.sh (root, apt), a lane's board, the whole 4-day event
    "docs/metrics.md": 1,  # an excerpt with `...`
    "docs/scaling.md": 2,  # three broker machines; two counter machines and a database server
    "sesame/gate/deploy/INSTALL.md": 5,  # every step is on the lane's board, mostly as root
}
SAFETY_PW, ORGANISER_PW = "safety-pass-1", "organiser-pass-1"


@pytest.fixture
def port_1883_taken():
    """The machine the README is written for: a system Mosquitto on 127.0.0.1:1883. When
    nothing listens there, the test holds the port itself."""
    if port_open("127.0.0.1", 1883, timeout=0.5):
        yield
        return
    s = socket.socket()
    s.bind(("127.0.0.1", 1883))
    s.listen()
    try:
        yield
    finally:
        s.close()


def test_every_block_is_labelled_and_every_command_block_runs_or_says_why():
    not_run: dict[str, int] = {}
    for doc in DOCS:
        for b in blocks(doc):
            assert b.lang in SHELL | PYTHON | INERT, f"{b.where}: fence language {b.lang!r}"
            if b.not_run is not None:
                assert b.lang in SHELL | PYTHON, f"{b.where}: only command blocks are 'not run'"
                assert len(b.not_run) > 10, f"{b.where}: say why it cannot run"
                not_run[doc] = not_run.get(doc, 0) + 1
            if b.write is not None:
                assert b.lang in INERT, f"{b.where}: a file to write is not a command block"
    assert not_run == NOT_RUN


@pytest.mark.parametrize("doc", [d for d in DOCS if d != "README.md"])
def test_the_command_blocks_of_docs_run(doc, tmp_path):
    walk = Walk.copy_of_repository(tmp_path / "repo", ports={})
    try:
        for b in blocks(doc):
            if b.write:
                walk.write_block(b)
            elif b.runnable:
                for r in walk.run_block(b):
                    assert r.rc == 0, f"{b.where}: {r.command} -> {r.rc}\n{r.out}"
    finally:
        assert all(rc is not None for _, rc in walk.stop())


# -- the README walk ------------------------------------------------------------------------


def _token(walk: Walk, badge: str) -> str:
    with open(walk.root / "badges" / "manifest.csv", encoding="utf-8") as f:
        return next(r["token"] for r in csv.DictReader(f) if r["badge_id"] == badge)


def _broker_ready(walk: Walk, r) -> None:
    wait_for("the broker's port", lambda: port_open("127.0.0.1", walk.ports["1884"]))


def _sub_ready(walk: Walk, r) -> None:
    # the retained revocation list first, as the README says
    shard = r"badges/revoked/[0-9a-f]{2} .*B000009"  # the shard holding it (docs/mqtt.md)
    wait_for("badges/revoked", lambda: re.search(shard, r.output()))


def _counter_ready(walk: Walk, r) -> None:
    wait_for("counter running", lambda: "counter running" in r.output())


def _lane_ready(walk: Walk, r) -> None:
    """Paste B000005 until the lane grants it; before its first lease it refuses with
    LEASE_EXHAUSTED, never anything else. Pastes are 2.2 s apart after a refusal: the same
    code within 2 s is the same scan."""
    token = _token(walk, "B000005")
    deadline = time.monotonic() + 40
    lines: list[dict] = []
    while not any(x["decision"] == "GRANTED" for x in lines):
        assert time.monotonic() < deadline, "no GRANTED line within 40 s"
        seen = len(lines)
        r.proc.stdin.write(token.encode() + b"\n")
        r.proc.stdin.flush()
        wait_for("the lane's decision line", lambda n=seen: len(_decisions(r)) > n, 20)
        lines = _decisions(r)
        if lines[-1]["decision"] != "GRANTED":
            time.sleep(2.2)
    assert all(x["reason"] == "LEASE_EXHAUSTED" for x in lines if x["decision"] != "GRANTED")
    assert lines[-1]["badge"] == "B000005" and lines[-1]["passages"] == 1


def _decisions(r) -> list[dict]:
    return [json.loads(x) for x in r.output().splitlines() if x.startswith("{")]


def _dashboard_ready(walk: Walk, r) -> None:
    base = f"http://127.0.0.1:{walk.ports['8080']}"

    def login_page():
        try:
            with urllib.request.urlopen(f"{base}/login", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    wait_for("the dashboard's sign-in page", login_page)
    body = json.dumps({"username": "sophie", "password": SAFETY_PW}).encode()
    req = urllib.request.Request(f"{base}/login", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200 and "csrf" in json.loads(resp.read())


BACKGROUND = {
    "sesame broker run": Background(_broker_ready),
    "mosquitto_sub": Background(_sub_ready),
    "sesame counter run": Background(_counter_ready),
    "sesame gate run": Background(_lane_ready, stdin=True),
    "sesame dashboard": Background(_dashboard_ready),
}


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _files(walk: Walk, *names: str) -> None:
    for n in names:
        assert (walk.root / n).is_file(), f"{n} was not written"


def _check(walk: Walk, cmd: str, out: str) -> str | None:
    """What the README says the command does; returns the name of the check applied."""
    root = walk.root
    if cmd.startswith(".venv/bin/sesame config check"):
        assert "OK: config/grand-palais.toml" in out
        return "config check"
    if "badges keygen" in cmd:
        _files(walk, "keys/badge-signing.key", "keys/badge-signing.pub")
        assert _mode(root / "keys/badge-signing.key") == 0o600
        return "keygen"
    if "badges issue" in cmd:
        _files(walk, "badges/png/B000001.png", "badges/manifest.csv", "badges/sheets.pdf")
        assert "issued 9 badges B000001…B000009" in out
        return "issue"
    if "badges verify" in cmd:
        claims = json.loads(out)
        assert claims["badge"] == "B000003" and claims["group"] == 28
        return "verify"
    if "badges revoke B000002 B000007" in cmd:
        assert json.loads((root / "revoked.json").read_text())["badges"] == ["B000002", "B000007"]
        return "revoke"
    if "broker setup" in cmd:
        _files(walk, "run/broker/mosquitto.conf", "run/broker/passwd", "run/broker/acl")
        creds = root / "run/broker/credentials"
        for account in ("counter", "dashboard", "admin", "alerts", "gate-churchill-in-1"):
            assert _mode(creds / f"{account}.json") == 0o600
        port = json.loads((creds / "counter.json").read_text())
        assert str(walk.ports["1884"]) in json.dumps(port)
        assert "already taken" not in out  # the README's port is free; 1883 is not
        return "broker setup"
    if "badges revoke B000009 --credentials" in cmd:
        assert "published 3 revoked id(s), retained" in out
        return "revoke published"
    if "gate scan" in cmd:
        d = json.loads(out)
        assert d["decision"] == "GRANTED" and d["badge"] == "B000003" and d["passages"] == 28
        return "gate scan"
    if cmd.startswith("python README.md"):
        # no counter in that script: the lane has no lease yet; one anonymous passage queued
        assert out.splitlines()[:2] == ["False LEASE_EXHAUSTED", "outbox 2"], out
        return "in-process API"
    if "import-badges" in cmd:
        assert "imported 9 badges" in out
        return "import-badges"
    if "export attendance --db sesame.db" in cmd:
        _files(walk, "attendance.xlsx", "nef.png")
        return "export xlsx"
    if "users add sophie" in cmd:
        assert "added sophie (safety)" in out, out
        return "users add (prompt)"
    if "users add olivier" in cmd:
        assert "added olivier (organiser)" in out
        return "users add (stdin)"
    if "users list" in cmd and "users remove olivier" in cmd:
        assert "sophie\tsafety" in out and "olivier\torganiser" in out
        assert "removed olivier from dashboard.db" in out
        return "users list; remove"
    if cmd.startswith("sesame simulate"):
        summary = json.loads(out[out.index("\n{") : out.rindex("}") + 1])
        assert summary["export_equals_truth"] is True
        # every zone leased while its lanes reach the counter: none over, the balconies
        # (an `open` zone) included
        assert summary["over_capacity"] == {}
        assert "over capacity" not in out
        _files(walk, "truth.json", "sim/sesame.db")
        return "simulate"
    if "export attendance --db sim/sesame.db" in cmd:
        from sesame.sim.truth import compare

        truth = json.loads((root / "truth.json").read_text())
        assert compare(truth, json.loads((root / "a.json").read_text())) == []
        return "export json"
    return None


CHECKS = {"config check", "keygen", "issue", "verify", "revoke", "broker setup",
          "revoke published", "gate scan", "in-process API", "import-badges", "export xlsx",
          "users add (prompt)", "users add (stdin)", "users list; remove", "simulate",
          "export json"}  # fmt: skip
STARTED = set(BACKGROUND)


def test_the_readme_path_runs_in_order_where_1883_is_taken(tmp_path, port_1883_taken):
    assert port_open("127.0.0.1", 1883, timeout=0.5)
    walk = Walk.copy_of_repository(tmp_path / "repo", {"1884": free_port(), "8080": free_port()})
    walk.env["PW"] = ORGANISER_PW
    walk.background = BACKGROUND
    walk.prompts = {"sesame users add sophie": [SAFETY_PW, SAFETY_PW]}
    done: list[str] = []
    api_block = None
    try:
        for b in blocks("README.md"):
            if b.write:
                walk.write_block(b)
            if not b.runnable:
                continue
            if b.lang in PYTHON:
                api_block = b
            for r in walk.run_block(b):
                assert r.rc == 0, f"{b.where}: {r.command} -> exit {r.rc}\n{r.out}"
                name = _check(walk, r.command, r.out)
                assert name is not None, f"{b.where}: no check says what {r.command!r} does"
                done.append(name)
            assert not walk.leftovers(), f"{b.where} left processes running: {walk.leftovers()}"
        started = {p for p in BACKGROUND for r in walk.running if p in r.command}

        # the in-process example stops what it started even when the work in it raises
        assert api_block is not None
        broken = api_block.text.replace(
            "decision = agent.handle_scan(token)", "raise RuntimeError('scan failed')"
        )
        assert broken != api_block.text
        failing = type(api_block)(api_block.doc, api_block.line, "python", broken)
        (r,) = walk.run_block(failing)
        assert r.rc == 1 and "RuntimeError: scan failed" in r.out
        assert not walk.leftovers(), walk.leftovers()

        # what the Broker section says of the default port on this machine
        r = walk.run("sesame broker setup --venue config/grand-palais.toml --out run/default")
        assert r.rc == 0 and "127.0.0.1:1883 is already taken" in r.out and "--port" in r.out
        r = walk.run("sesame broker run --config run/default", background=False)
        assert r.rc == 2 and len(r.out.strip().splitlines()) == 1 and "1883" in r.out, r.out
        r = walk.run("sesame broker setup --venue config/grand-palais.toml --out run/broker")
        assert f"listener mqtt://127.0.0.1:{walk.ports['1884']}" in r.out  # the port it wrote
    finally:
        t0 = time.monotonic()
        stopped = walk.stop()
        walk.kill_leftovers()  # only processes naming this test's own temporary copy
        print(f"stopped the background commands in {time.monotonic() - t0:.1f} s")
        for r in walk.results:
            print(f"{r.seconds:6.1f} s  {r.command[:90]}")
    assert sorted(done) == sorted(CHECKS), done
    assert started == STARTED
    for cmd, rc in stopped:  # Ctrl-C / SIGTERM ends each one
        assert rc is not None, f"{cmd} did not stop on SIGTERM"


_FILES = {"db", "toml", "json", "csv", "md", "py", "png", "pdf", "xlsx", "log", "conf"}


def _resolves(name: str) -> bool:
    import importlib

    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("doc", DOCS)
def test_every_python_name_the_docs_give_imports(doc):
    """`sesame.x.y` written in the text (a module, class or function a reader would import)
    exists under that name."""
    text = (REPO / doc).read_text(encoding="utf-8")
    names = set(re.findall(r"`(sesame(?:\.[A-Za-z_]\w*)+)", text))
    wrong = sorted(n for n in names if n.rsplit(".", 1)[-1] not in _FILES and not _resolves(n))
    assert not wrong, f"{doc}: no such module or attribute: {wrong}"
