"""The embedded Python broker (amqtt, MQTT 3.1.1 only): the development default when
Mosquitto is not installed. Same accounts (the generated password file) and the same topic
permissions (the generated ACL file) as Mosquitto, enforced by two amqtt plugins below.

Differences from Mosquitto, all on the safe side or documented:
- MQTT 3.1.1 only, so a refused publish still gets a normal PUBACK (no reason code);
- a SUBSCRIBE must lie entirely inside a readable filter (Mosquitto accepts a wider filter
  and filters on delivery); amqtt sends retained messages without a per-message read check,
  hence this stricter rule;
- no persistence of sessions across a restart; 3-5x slower. Demos and tests only.

Run it: `sesame broker run --embedded --config DIR`, or `python -m sesame.broker.embedded`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

from sesame.broker.process import BrokerBase, BrokerStartError, port_open
from sesame.broker.setup import ACL, PASSWD, BrokerSettings, check_password, read_password_file

log = logging.getLogger("sesame.broker.embedded")

READ, WRITE = "read", "write"


# -- ACL semantics (Mosquitto's acl_file) -------------------------------------------------


def parse_acl(text: str) -> dict[str, list[tuple[str, str]]]:
    """The generated ACL file: `user NAME` then `topic read|write|readwrite FILTER` lines."""
    rules: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split(None, 2)
        if words[0] == "user" and len(words) == 2:
            current = rules.setdefault(words[1], [])
        elif words[0] == "topic" and current is not None:
            if len(words) == 2:
                current.append(("readwrite", words[1]))
            elif words[1] in ("read", "write", "readwrite", "deny"):
                current.append((words[1], words[2]))
    return rules


def topic_matches(filt: str, topic: str) -> bool:
    """MQTT topic filter matching (+ one level, # the rest)."""
    f, t = filt.split("/"), topic.split("/")
    for i, part in enumerate(f):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(f) == len(t)


def filter_within(filt: str, rule: str) -> bool:
    """True when every topic `filt` can match is also matched by `rule`."""
    f, r = filt.split("/"), rule.split("/")
    for i, part in enumerate(r):
        if part == "#":
            return True
        if i >= len(f):
            return False
        if part == "+":
            if f[i] == "#":
                return False
            continue
        if f[i] != part:  # a literal in the rule does not cover + or # in the filter
            return False
    return len(f) == len(r)


def allowed(
    rules: dict[str, list[tuple[str, str]]], user: str | None, topic: str, action: str
) -> bool:
    """Mosquitto semantics: publish needs write, receive/subscribe need read; default deny."""
    if not user:
        return False
    want = WRITE if action == "publish" else READ
    for access, rule in rules.get(user, []):
        if access == "deny" or want not in access:
            continue
        if action == "subscribe":
            if filter_within(topic, rule):
                return True
        elif topic_matches(rule, topic):
            return True
    return False


# -- amqtt plugins ---------------------------------------------------------------------


class PasswordFileAuth(BaseAuthPlugin):
    """Accounts from the generated Mosquitto password file (`$7$` PBKDF2-SHA512 hashes)."""

    @dataclass
    class Config:
        config_dir: str = "."

    def __init__(self, context) -> None:
        super().__init__(context)
        config_dir = Path(self.config.config_dir)
        self.hashes = read_password_file(config_dir / PASSWD)
        self.rules = parse_acl((config_dir / ACL).read_text(encoding="utf-8"))
        self.owners: dict[str, str] = {}  # client id -> the account that first used it

    async def authenticate(self, *, session) -> bool:
        user, password = session.username, session.password
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        hashed = self.hashes.get(user or "")
        ok = bool(hashed and password is not None and check_password(password, hashed))
        if not ok:
            log.warning("refused connection from %r (user %r)", session.client_id, user)
            return False
        # amqtt hands a resumed session's queued messages to whoever presents its client id,
        # without a read check: bind each client id to the first account that used it.
        owner = self.owners.setdefault(session.client_id, user)
        if owner != user:
            log.warning(
                "refused connection from %r: client id belongs to user %r, not %r",
                session.client_id,
                owner,
                user,
            )
            return False
        # amqtt publishes a Last Will without any topic check: a gate could otherwise leave
        # a will on another gate's events topic and die. Refuse such a connection.
        if session.will_flag and not allowed(self.rules, user, session.will_topic or "", "publish"):
            log.warning(
                "refused connection from %r: user %r may not publish its will on %r",
                session.client_id,
                user,
                session.will_topic,
            )
            return False
        return True


class AclFileTopics(BaseTopicPlugin):
    """Topic permissions from the generated ACL file."""

    @dataclass
    class Config:
        config_dir: str = "."

    def __init__(self, context) -> None:
        super().__init__(context)
        self.rules = parse_acl((Path(self.config.config_dir) / ACL).read_text(encoding="utf-8"))

    async def topic_filtering(self, *, session=None, topic=None, action=None) -> bool:
        user = session.username if session else None
        ok = topic is not None and allowed(self.rules, user, topic, str(action))
        if not ok:
            log.info("denied %s %r for user %r", action, topic, user)
        return ok


def amqtt_config(config_dir: Path, host: str, port: int, settings: BrokerSettings) -> dict:
    listener: dict = {"type": "tcp", "bind": f"{host}:{port}"}
    if settings.tls:
        tls = config_dir / "tls"
        listener |= {
            "ssl": True,
            "cafile": str(tls / "ca.crt"),
            "certfile": str(tls / "server.crt"),
            "keyfile": str(tls / "server.key"),
        }
    plugin_cfg = {"config_dir": str(config_dir)}
    return {
        "listeners": {"default": listener},
        "plugins": {
            f"{__name__}.PasswordFileAuth": plugin_cfg,
            f"{__name__}.AclFileTopics": plugin_cfg,
        },
    }


async def serve(config_dir: Path, host: str, port: int, stop: asyncio.Event) -> None:
    from amqtt.broker import Broker

    settings = BrokerSettings.load(config_dir)
    broker = Broker(amqtt_config(config_dir.resolve(), host, port, settings))
    await broker.start()
    log.warning(
        "embedded broker (development default, MQTT 3.1.1) listening on %s:%d for venue %r",
        host,
        port,
        settings.venue,
    )
    try:
        await stop.wait()
    finally:
        await broker.shutdown()


def run_foreground(config_dir: str | Path, port: int | None = None, host: str | None = None) -> int:
    """Run until SIGINT/SIGTERM; returns the exit code."""
    config_dir = Path(config_dir)
    settings = BrokerSettings.load(config_dir)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("sesame").setLevel(logging.INFO)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(config_dir, host or settings.host, port or settings.port, stop)

    asyncio.run(main())
    return 0


class EmbeddedBroker(BrokerBase):
    """The embedded broker in its own process, with MosquittoProcess's interface."""

    def __init__(
        self,
        config_dir: str | Path,
        port: int | None = None,
        run_dir: str | Path | None = None,
        host: str | None = None,
    ):
        super().__init__(config_dir, host, port, run_dir, "embedded", "broker.log")

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        if self.running:
            return self
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        ready = f"listening on {self.host}:{self.port} ".encode()
        root = Path(__file__).resolve().parents[2]
        env = dict(os.environ, PYTHONPATH=f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sesame.broker.embedded",
                    "--config",
                    str(self.config_dir),
                    "--host",
                    self.host,
                    "--port",
                    str(self.port),
                ],
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=logf,
                env=env,
                cwd=root,
                start_new_session=True,  # stopped by its owner, not by the terminal's Ctrl-C
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if port_open(self.host, self.port) and ready in self._log_bytes(offset):
                return self
            time.sleep(0.05)
        text = self.log()[-600:]
        self.kill()
        raise BrokerStartError(f"embedded broker did not start on {self.host}:{self.port}: {text}")

    def _log_bytes(self, offset: int) -> bytes:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _reap(self, sig: int) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        self._reap(signal.SIGTERM)



def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sesame.broker.embedded", description=__doc__)
    p.add_argument("--config", required=True, help="folder written by `sesame broker setup`")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    args = p.parse_args(argv)
    return run_foreground(args.config, port=args.port, host=args.host)


if __name__ == "__main__":
    sys.exit(main())
