"""Broker URLs and credential files: `mqtt://user:pass@host:port`, `mqtts://...?ca=PATH`,
or the JSON credential file `sesame broker setup` writes. Used through `sesame.common.mqtt`.

A clustered broker is a list of addresses sharing the user, scheme and options:
`mqtt://user:pass@h1:1883,h2:1883,h3:1883`. `BrokerURL.host`/`port` is the first node,
`addresses` all of them in order; the connection moves to the next one when a node fails."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class BrokerURL:
    scheme: str  # "mqtt" or "mqtts"
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    ca: Path | None = None  # CA certificate (PEM) that signed the broker's certificate
    cert: Path | None = None  # client certificate (PEM), optional
    key: Path | None = None  # client private key (PEM), optional
    # Every node of a clustered broker, (host, port), the first being host:port; empty for
    # a single broker.
    others: tuple[tuple[str, int], ...] = ()

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        return ((self.host, self.port), *self.others)

    def at(self, index: int) -> BrokerURL:
        """The same URL pointing at node `index` (modulo the number of nodes), the other
        nodes kept in order after it."""
        addrs = self.addresses
        i = index % len(addrs)
        rest = addrs[i + 1 :] + addrs[:i]
        return replace(self, host=addrs[i][0], port=addrs[i][1], others=rest)

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"

    @property
    def display(self) -> str:
        """The URL without its password, for logs and error messages."""
        user = f"{self.username}@" if self.username else ""
        hosts = ",".join(f"{_bracket(h)}:{p}" for h, p in self.addresses)
        return f"{self.scheme}://{user}{hosts}"

    def __repr__(self) -> str:  # never print the password
        return f"BrokerURL({self.display!r})"


def _read_credentials(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"{p}: cannot read credential file ({e.strerror})") from None
    except ValueError as e:
        raise ValueError(f"{p}: credential file is not JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: credential file must hold a JSON object")
    for key in ("username", "password", "broker", "ca", "cert", "key"):
        if key in data and data[key] is not None and not isinstance(data[key], str):
            raise ValueError(f"{p}: {key!r} must be a string")
    # Certificate paths are relative to the credential file, so the folder can be copied.
    for key in ("ca", "cert", "key"):
        if data.get(key):
            data[key] = p.parent / data[key]
    return data


def parse_broker_url(url: str | None, credentials: str | Path | None = None) -> BrokerURL:
    """`mqtt://user:pass@host:port`, `mqtts://host?ca=PATH[&cert=PATH&key=PATH]` or a
    credential file (JSON written by `sesame broker setup`). A credential file fills in what
    the URL lacks; given alone (or as `url`), its "broker" entry is the URL.
    Raises ValueError with a message saying what is wrong."""
    creds: dict[str, Any] = {}
    if credentials is not None:
        creds = _read_credentials(credentials)
    if url and "://" not in url and (url.endswith(".json") or os.path.isfile(url)):
        creds = {**_read_credentials(url), **creds}
        url = None
    if not url:
        url = creds.get("broker")
        if not url:
            raise ValueError("no broker URL given (and no 'broker' in the credential file)")
    url, others = _split_hosts(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"bad broker URL {_hide(url)!r}: port must be 1-65535") from None
    if port == 0:
        raise ValueError(f"bad broker URL {_hide(url)!r}: port must be 1-65535")
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(
            f"bad broker URL {_hide(url)!r}: scheme must be mqtt:// or mqtts://, not {scheme!r}"
        )
    if not parts.hostname:
        raise ValueError(f"bad broker URL {_hide(url)!r}: no host")
    if parts.path not in ("", "/"):
        raise ValueError(f"bad broker URL {_hide(url)!r}: unexpected path {parts.path!r}")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"ca", "cert", "key"}
    if unknown:
        raise ValueError(f"bad broker URL {_hide(url)!r}: unknown option {sorted(unknown)[0]!r}")
    files: dict[str, Path | None] = {}
    for key in ("ca", "cert", "key"):
        value = query.get(key, [None])[-1] or creds.get(key)
        files[key] = Path(value) if value else None
    if scheme == "mqtt" and any(files.values()):
        raise ValueError(f"bad broker URL {_hide(url)!r}: certificates (ca/cert/key) need mqtts://")
    if (files["cert"] is None) != (files["key"] is None):
        raise ValueError(f"bad broker URL {_hide(url)!r}: a client cert needs its key, and back")
    for key, path in files.items():
        if path is not None and not path.is_file():
            raise ValueError(f"{key} file {path} does not exist")
    username = unquote(parts.username) if parts.username else creds.get("username")
    password = unquote(parts.password) if parts.password is not None else creds.get("password")
    if password is not None and not username:
        raise ValueError(f"bad broker URL {_hide(url)!r}: a password needs a user name")
    return BrokerURL(
        scheme=scheme,
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        username=username or None,
        password=password,
        ca=files["ca"],
        cert=files["cert"],
        key=files["key"],
        others=others,
    )


def _split_hosts(url: str) -> tuple[str, tuple[tuple[str, int], ...]]:
    """`scheme://user@h1:p1,h2:p2?q` -> (`scheme://user@h1:p1?q`, ((h2, p2),)). Each extra
    node is checked like the first (host present, port 1-65535, default port of the scheme)."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url, ()
    netloc, tail = rest, ""
    for i, ch in enumerate(rest):
        if ch in "/?#":
            netloc, tail = rest[:i], rest[i:]
            break
    userinfo, at, hosts = netloc.rpartition("@")
    if "," not in hosts:
        return url, ()
    first, *more = hosts.split(",")
    others = []
    default = DEFAULT_PORTS.get(head.lower(), 1883)
    for node in more:
        try:
            extra = urlsplit(f"{head}://{node}")
            port = extra.port
        except ValueError:
            raise ValueError(f"bad broker URL {_hide(url)!r}: port must be 1-65535") from None
        if not extra.hostname or extra.path or port == 0 or extra.username:
            raise ValueError(f"bad broker URL {_hide(url)!r}: bad node address {node!r}")
        others.append((extra.hostname, port or default))
    return f"{head}://{userinfo}{at}{first}{tail}", tuple(others)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _hide(url: str) -> str:
    """The URL with any password replaced, for error messages."""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
            return parts._replace(netloc=netloc).geturl()
    except ValueError:
        return "<unparseable URL>"
    return url


def with_port(url: BrokerURL, port: int) -> BrokerURL:
    """The same broker URL on another port (tests and the demo run brokers on free ports)."""
    return replace(url, port=port, others=())


def warn_password_in_url(url: str | None) -> None:
    """One line on standard error when a command line's broker URL carries a password:
    every user of the machine reads it in the process list."""
    if not url or "://" not in url:
        return
    try:
        password = urlsplit(url.split(",")[0]).password
    except ValueError:
        return  # parse_broker_url says what is wrong with it
    if password:
        import sys

        print(
            "warning: the password in --broker shows in the process list (ps); put the "
            "account in a credential file and pass --credentials FILE",
            file=sys.stderr,
        )
