"""Start a real Mosquitto from a `sesame broker setup` folder, on a free loopback port.

Used by the test fixtures, the benchmarks, `sesame demo` and the end-to-end tests, so they
all run the project's own generated configuration:

    proc = MosquittoProcess("run/broker")          # free port, data under a temp folder
    proc.start()
    url = proc.url("counter")                       # mqtt://counter:<password>@127.0.0.1:PORT
    proc.restart(); proc.kill(); proc.stop()

Each instance writes its own config (same password file and ACL, its port, its persistence
folder and log file) and per-account credential files pointing at its port.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self
from urllib.parse import quote

from sesame.broker.setup import (
    CREDENTIALS,
    BrokerSettings,
    credential_json,
    mosquitto_conf,
    read_credential,
)
from sesame.common.net import free_port
from sesame.common.private_files import copy_private, private_dir, write_private

MOSQUITTO = os.environ.get("SESAME_MOSQUITTO", "/usr/sbin/mosquitto")


class BrokerStartError(RuntimeError):
    pass


def mosquitto_binary() -> str | None:
    """The Mosquitto executable, or None when it is not installed."""
    if os.path.exists(MOSQUITTO) and os.access(MOSQUITTO, os.X_OK):
        return MOSQUITTO
    return shutil.which("mosquitto")


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class BrokerBase:
    """What the Mosquitto and the embedded broker runners share: accounts, URLs, files."""

    config_dir: Path
    run_dir: Path
    settings: BrokerSettings
    host: str
    port: int

    def password(self, account: str) -> str:
        cred = read_credential(self.config_dir, account)
        if cred is None:
            raise KeyError(f"no credential file for account {account!r} in {self.config_dir}")
        return cred["password"]

    def url(self, account: str | None = None, password: str | None = None) -> str:
        """mqtt://account:password@host:port (no user part when account is None)."""
        scheme = self.settings.scheme
        if account is None:
            return f"{scheme}://{self.host}:{self.port}"
        pw = password if password is not None else self.password(account)
        return f"{scheme}://{quote(account, safe='')}:{quote(pw, safe='')}@{self.host}:{self.port}"

    def credentials(self, account: str) -> Path:
        """A credential file for `account` that points at this broker's actual port."""
        path = self.run_dir / CREDENTIALS / f"{account}.json"
        if not path.exists():
            private_dir(path.parent)
            text = credential_json(
                self.settings, account, self.password(account), host=self.host, port=self.port
            )
            write_private(path, text)
            if self.settings.tls:  # certificates sit next to the credential file
                src = self.config_dir / CREDENTIALS
                for name in ("ca.crt", f"{account}.crt", f"{account}.key"):
                    if (src / name).exists() and not (path.parent / name).exists():
                        mode = 0o600 if name.endswith(".key") else 0o644
                        copy_private(src / name, path.parent / name, mode)
        return path

    def __init__(self, config_dir: str | Path, host: str | None, port: int | None,
                 run_dir: str | Path | None, kind: str, log_name: str) -> None:  # fmt: skip
        """Accounts from `config_dir`; a free port unless given; files in `run_dir`, or in a
        temporary folder (sesame-<kind>-…) removed by close()."""
        self.config_dir = Path(config_dir).resolve()
        self.settings = BrokerSettings.load(self.config_dir)
        self.host = host or self._default_host()
        self.port = port or free_port(self.host)
        self._own_run_dir = run_dir is None
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix=f"sesame-{kind}-")).resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.run_dir / log_name
        self.proc: subprocess.Popen | None = None

    def _default_host(self) -> str:
        return "127.0.0.1"

    # -- lifecycle: each runner provides start(), stop() and _reap(signal) ------------------
    log_path: Path
    _own_run_dir: bool

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def _reap(self, sig: int) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        """SIGKILL: what a power cut or the OOM killer does."""
        self._reap(signal.SIGKILL)

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        """Kill the broker and remove a temp folder we made."""
        self.kill()
        if self._own_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class MosquittoProcess(BrokerBase):
    def __init__(
        self,
        config_dir: str | Path,
        port: int | None = None,
        run_dir: str | Path | None = None,
        host: str | None = None,
    ):
        super().__init__(config_dir, host, port, run_dir, "mosquitto", "mosquitto.log")
        self._fixed_port = port
        self.data_dir = self.run_dir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.conf_path = self.run_dir / "mosquitto.conf"
        self._log_offset = 0
        binary = mosquitto_binary()
        if binary is None:
            raise BrokerStartError("mosquitto is not installed")
        self.binary = binary

    def _default_host(self) -> str:
        # clients reach a wildcard listener on loopback
        h = self.settings.host
        return "127.0.0.1" if h in ("0.0.0.0", "::") else h

    def _write_conf(self) -> None:
        # As root Mosquitto would switch to the `mosquitto` user, who cannot read a private
        # temp folder; stay the user we are.
        run_as = getpass.getuser() if os.geteuid() == 0 else None
        self.conf_path.write_text(
            mosquitto_conf(
                self.config_dir,
                self.settings,
                port=self.port,
                persistence_dir=self.data_dir,
                log_file=self.log_path,
                run_as=run_as,
            )
        )

    def start(self, timeout: float = 10.0) -> MosquittoProcess:
        if self.running:
            return self
        for attempt in range(5):
            self._write_conf()
            # readiness looks only at this run's lines (the log is appended to)
            self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                # Ctrl-C in a terminal reaches the whole process group: the broker must
                # outlive its clients until whoever started it stops it, last.
                start_new_session=True,
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                # Our own "running" line as well as an open port: another program that took
                # the port in the meantime would open it too.
                if port_open(self.host, self.port) and self._logged_running():
                    return self
                time.sleep(0.02)
            err = self._failure_text()
            self._reap(signal.SIGKILL)
            # Someone took the port between choosing and binding it: pick another.
            if self._fixed_port is None and "in use" in err.lower() and attempt < 4:
                self.port = free_port(self.host)
                continue
            raise BrokerStartError(f"mosquitto did not start on {self.host}:{self.port}: {err}")
        raise AssertionError("unreachable")

    def _logged_running(self) -> bool:
        if self.proc is None or self.proc.poll() is not None or not self.log_path.exists():
            return False
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            return f"listen socket on port {self.port}".encode() in f.read()

    def _failure_text(self) -> str:
        text = ""
        if self.proc is not None and self.proc.poll() is not None and self.proc.stderr:
            text = self.proc.stderr.read().decode(errors="replace")
        if self.log_path.exists():
            text += self.log_path.read_text(errors="replace")[-2000:]
        return " | ".join(line for line in text.splitlines() if line.strip())[-600:] or "timeout"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _reap(self, sig: int, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def stop(self) -> None:
        """Graceful stop (SIGTERM): Mosquitto saves its persistence file first."""
        self._reap(signal.SIGTERM)
        # The port must be free before a restart binds it again.
        deadline = time.monotonic() + 5
        while port_open(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.02)


def start_local_broker(
    config_dir: str | Path,
    *,
    run_dir: str | Path | None = None,
    port: int | None = None,
    embedded: bool = False,
) -> BrokerBase:
    """Start the development broker for a set-up folder: Mosquitto when installed, else (or
    with embedded=True) the embedded broker. For `sesame demo`, benchmarks, end-to-end runs.
    The result has .url(account), .credentials(account), .host, .port, .stop(), .kill(),
    .restart(), .close()."""
    import logging

    if not embedded and mosquitto_binary() is not None:
        return MosquittoProcess(config_dir, port=port, run_dir=run_dir).start()
    from sesame.broker.embedded import EmbeddedBroker

    logging.getLogger("sesame.broker").warning(
        "mosquitto is not installed: using the embedded broker (development default)"
        if not embedded
        else "using the embedded broker (development default)"
    )
    return EmbeddedBroker(config_dir, port=port, run_dir=run_dir).start()
