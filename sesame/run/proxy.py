"""A TCP relay between one gate and the broker, to cut that gate off the network.

`cut()` drops every open connection and refuses new ones (what a pulled cable or a dead
switch port does to a lane); `heal()` lets the gate reconnect. Plain sockets and threads:
the relay knows nothing of MQTT.
"""

from __future__ import annotations

import socket
import threading


class CuttableLink:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self._srv = socket.create_server((host, 0))
        self.host, self.port = host, self._srv.getsockname()[1]
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self.connections = 0
        threading.Thread(target=self._accept, name="sim-link", daemon=True).start()

    def _accept(self) -> None:
        self._srv.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()  # broker down: the gate sees a refused connection
                continue
            self.connections += 1
            with self._lock:
                self._socks |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                self._drop(s)

    def _drop(self, s: socket.socket) -> None:
        with self._lock:
            self._socks.discard(s)
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            self._drop(s)

    def heal(self) -> None:
        self._cut.clear()

    def retarget(self, port: int) -> None:
        """The broker moved to another port (restarted elsewhere)."""
        self.target = (self.target[0], port)

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self._srv.close()
