"""Run the dashboard with uvicorn, in the foreground (`sesame dashboard`) or in a thread
(`sesame demo`, tests, benchmarks)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from sesame.dashboard.app import DashboardSettings, create_app


class ServerThread:
    """uvicorn in a daemon thread; `start()` returns once it accepts connections."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0):
        self.app = app
        self.host = host
        # Bound here, so a busy port is an OSError naming it (`sesame demo` prints one line)
        # rather than a log line from the thread and "stopped while starting".
        try:
            self.sock = listen(host, port)
        except OSError as e:
            raise OSError(e.errno, f"cannot listen on {host}:{port}: {e.strerror}") from None
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
            **proxy_options(app),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="dashboard", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def dashboard(self):
        return self.app.state.dashboard

    def start(self, timeout: float = 15.0) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the dashboard server stopped while starting")
            if time.monotonic() > deadline:
                raise TimeoutError("the dashboard server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_in_thread(
    settings: DashboardSettings, host: str = "127.0.0.1", port: int = 0
) -> ServerThread:
    """For `sesame demo`: build the app and serve it; `.url` is the address to print."""
    return ServerThread(create_app(settings), host, port).start()


def listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket before anything starts, so a port already in use or an
    address this machine does not have is one clear OSError (uvicorn would log it over
    several lines after starting the app)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


def serve_forever(
    settings: DashboardSettings, sock: socket.socket, app: FastAPI | None = None
) -> None:
    app = create_app(settings) if app is None else app
    config = uvicorn.Config(app, log_level="info", access_log=False, **proxy_options(app))
    uvicorn.Server(config).run(sockets=[sock])


def proxy_options(app: FastAPI) -> dict:
    """Whose X-Forwarded-For is believed: only the dashboard's trusted proxies (never the
    FORWARDED_ALLOW_IPS of the environment). The sign-in delays are per client address, so
    behind a proxy that is not trusted every browser would share the proxy's address."""
    settings = app.state.dashboard.settings
    return {"proxy_headers": True, "forwarded_allow_ips": list(settings.trusted_proxies)}
