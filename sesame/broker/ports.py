"""Is a listener address already taken? `broker setup` warns, `broker run` refuses.

The machine `scripts/dev.sh` prepares runs Debian's own Mosquitto on 127.0.0.1:1883, the
default port: without this check `broker run` fails with Mosquitto's bare "Address already
in use".
"""

from __future__ import annotations

import errno
import socket


def port_taken(host: str, port: int) -> bool:
    """True when something already listens on host:port (as Mosquitto would bind it).

    SO_REUSEADDR, as Mosquitto sets it, so a socket in TIME_WAIT is not "taken". An address
    that is not this machine's (a set-up written for another host) cannot be checked here:
    False."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            return e.errno == errno.EADDRINUSE
    return False


def free_port_near(host: str, start: int, tries: int = 50) -> int | None:
    """The first port from `start` up that nobody listens on (a suggestion for --port)."""
    for port in range(start, min(start + tries, 65536)):
        if not port_taken(host, port):
            return port
    return None


def taken_message(host: str, port: int, how: str) -> str:
    """One line naming the port and the way out (`how`: the option to use)."""
    hint = free_port_near(host, port + 1)
    example = f" (e.g. {how} {hint})" if hint else ""
    return (
        f"{host}:{port} is already taken by another program (a system Mosquitto?); "
        f"choose another port with {how} N{example}"
    )
