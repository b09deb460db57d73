"""The broker as a NATS JetStream cluster (`sesame broker setup --nats-cluster 3`): the
generated configuration, the NATS port closed to every account, clients moving to another
node when theirs dies, and `sesame broker run` starting the nodes. The permission tests
(spoofing, forged lease/ack, anonymous) run against the cluster in test_broker_acl.py."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from sesame.broker.nats_process import healthy
from sesame.broker.nats_setup import (
    ClusterSettings,
    check_ids,
    plan_nodes,
    setup_cluster,
    subjects,
)
from sesame.common.mqtt import connect, parse_broker_url
from sesame.common.net import free_ports
from sesame.common.venue import load_venue
from sesame.common.wire import Topics
from tests.fixtures.broker import VENUE_FILE

REPO = Path(__file__).resolve().parents[1]
T = Topics("grand-palais")
GATE = "churchill-in-1"


def _conf(config: Path, node: str) -> dict:
    return json.loads((config / "nats" / f"{node}.conf").read_text())


def test_subjects_follow_the_mqtt_filters():
    assert subjects("a/+/b") == ["a.*.b"]
    # MQTT's x/# matches x itself: NATS needs both
    assert subjects("sesame/v1/gp/#") == ["sesame.v1.gp", "sesame.v1.gp.>"]


def test_every_account_is_mqtt_only_with_its_deliveries(nats_config):
    cs = ClusterSettings.load(nats_config)
    assert len(cs.nodes) == 3 and cs.replicas == 3
    for node in cs.nodes:
        conf_path = nats_config / "nats" / f"{node.name}.conf"
        assert stat.S_IMODE(conf_path.stat().st_mode) == 0o600  # it holds the passwords
        conf = _conf(nats_config, node.name)
        assert conf["mqtt"]["stream_replicas"] == 3 and conf["listen"].startswith("127.0.0.1:")
        assert len(conf["cluster"]["routes"]) == 3
        users = {u["user"]: u for u in conf["authorization"]["users"]}
        assert "counter" in users and f"gate-{GATE}" in users and "dashboard" in users
        for user in users.values():
            assert user["allowed_connection_types"] == ["MQTT"]
            assert "$MQTT.sub.>" in user["permissions"]["subscribe"]["allow"]
        dash = users["dashboard"]["permissions"]["subscribe"]["allow"]
        assert "sesame.v1.grand-palais" in dash and "sesame.v1.grand-palais.>" in dash
        gate_pub = users[f"gate-{GATE}"]["permissions"]["publish"]["allow"]
        assert f"sesame.v1.grand-palais.gates.{GATE}.events" in gate_pub
        assert not any("lease" in s or "ack" in s for s in gate_pub)
    cred = json.loads((nats_config / "credentials" / "counter.json").read_text())
    url = parse_broker_url(cred["broker"])
    assert url.addresses == (("127.0.0.1", 1883), ("127.0.0.1", 1884), ("127.0.0.1", 1885))


def test_a_dotted_id_is_refused():
    venue = SimpleNamespace(id="grand-palais", gates={"nef.n1": None}, zones={"nef": None})
    with pytest.raises(ValueError, match="nef.n1.*NATS"):
        check_ids(venue)


def test_cli_refuses_a_bad_cluster(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "sesame", "broker", *args],
                              capture_output=True, text=True, cwd=REPO)  # fmt: skip

    r = run("setup", "--venue", str(VENUE_FILE), "--out", str(tmp_path), "--nats-cluster", "0")
    assert r.returncode != 0 and "--nats-cluster 0" in r.stderr and len(r.stderr.splitlines()) == 1
    r = run("setup", "--venue", str(VENUE_FILE), "--out", str(tmp_path), "--nats-cluster", "3",
            "--nats-hosts", "a,b")  # fmt: skip
    assert r.returncode != 0 and "2 hosts for 3 nodes" in r.stderr


def test_the_nats_port_refuses_every_account(nats_cluster):
    """Only MQTT: over the NATS protocol a restricted account could read others' deliveries."""
    node = nats_cluster.settings.nodes[0]
    with socket.create_connection(("127.0.0.1", node.client_port), timeout=5) as s:
        s.recv(4096)  # INFO
        creds = {"user": "counter", "pass": nats_cluster.password("counter"), "verbose": True}
        s.sendall(f"CONNECT {json.dumps(creds)}\r\nPING\r\n".encode())
        time.sleep(0.3)
        answer = s.recv(4096)
    assert b"-ERR" in answer and b"Authorization" in answer


def test_client_moves_to_another_node_with_its_session(nats_cluster):
    """The subscriber's node is killed while a gate publishes: it reconnects to another node
    with the same client id, MQTT 3.1.1 (NATS refuses 5), session present, and gets every
    message; the killed node comes back and serves again."""
    cluster = nats_cluster
    try:
        got: queue.Queue = queue.Queue()
        states: list[str] = []
        sub = connect(cluster.url("counter"), "counter-failover",
                      subscriptions=[(T.events(), 1)], on_message=lambda m: got.put(m.payload),
                      on_state=lambda s, d: states.append(f"{s} {d}"))  # fmt: skip
        assert sub.protocol == "3.1.1" and sub.wait_subscribed(10)
        assert sub.url.port == cluster.settings.nodes[0].mqtt_port
        # the gate lists node 2 first, so it stays up while node 1 dies
        gate_url = parse_broker_url(cluster.url(f"gate-{GATE}")).at(1)
        gate = connect(gate_url, "gate-failover", clean_start=True)
        for i in range(50):
            gate.publish(T.events(GATE), f"m{i}".encode()).wait_for_publish(5)
        cluster.kill_node(0)
        for i in range(50, 100):
            gate.publish(T.events(GATE), f"m{i}".encode()).wait_for_publish(10)
        seen: set[bytes] = set()
        deadline = time.monotonic() + 40
        while len(seen) < 100 and time.monotonic() < deadline:
            try:
                seen.add(got.get(timeout=0.2))
            except queue.Empty:
                pass
        assert seen == {f"m{i}".encode() for i in range(100)}
        assert sub.url.port != cluster.settings.nodes[0].mqtt_port
        assert any("session present: True" in s for s in states[1:]), states
        cluster.start_node(0)  # ready = it grants an MQTT subscription again
        gate.close()
        sub.close()
    finally:
        if not cluster.running(0):
            cluster.start_node(0)


def test_broker_run_starts_every_node_or_one(tmp_path):
    """`sesame broker run --config DIR` runs the folder's cluster; `--node N` one node."""
    venue = load_venue(VENUE_FILE)
    ports = iter(free_ports(12))  # distinct: twelve free_port() calls may repeat one
    planned = tuple(
        replace(n, mqtt_port=next(ports), client_port=next(ports), cluster_port=next(ports),
                http_port=next(ports))
        for n in plan_nodes(3, None, "127.0.0.1", None)
    )  # fmt: skip
    setup_cluster(venue, tmp_path / "b", nodes=3, planned=planned)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "sesame", "broker", "run", "--config", str(tmp_path / "b")]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        url = json.loads((tmp_path / "b" / "credentials" / "counter.json").read_text())["broker"]
        cred = tmp_path / "b" / "credentials" / "counter.json"
        conn = connect(url, "counter-run", credentials=cred, clean_start=True, timeout=30)
        conn.close()
        assert all(healthy(n.http_port) for n in planned)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    assert not any(healthy(n.http_port, 0.2) for n in planned)  # every node stopped
    one = subprocess.Popen(cmd + ["--node", "2"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        varz = None
        while varz is None and time.monotonic() < deadline:
            try:
                import urllib.request

                with urllib.request.urlopen(f"http://127.0.0.1:{planned[1].http_port}/varz") as r:
                    varz = json.loads(r.read())
            except OSError:
                time.sleep(0.2)
        assert varz is not None and varz["server_name"] == "n2"
        assert not healthy(planned[0].http_port, 0.2)
    finally:
        os.killpg(one.pid, signal.SIGTERM)
        one.wait(20)
