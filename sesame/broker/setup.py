"""`sesame broker setup`: Mosquitto configuration, accounts and ACL generated from the venue.

Writes into DIR:
  mosquitto.conf           listener, persistence, limits, no anonymous access
  passwd                   Mosquitto password file (PBKDF2-SHA512, `$7$` format)
  acl                      per-account topic permissions (docs/design.md invariant 5)
  credentials/<acct>.json  {"username", "password", "broker"[, "ca", "cert", "key"]}, mode 0600
  broker.json              the settings the files were made from (read by `broker run`)
  tls/                     with --tls: private CA, server certificate (see sesame/broker/tls.py)

Re-running keeps every account's password (from its credential file, else its password-file
line) unless `rotate` is set; accounts for gates no longer in the venue are dropped.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sesame.common.private_files import private_dir, write_private
from sesame.common.venue import Venue
from sesame.common.wire import MAX_PAYLOAD, ROOT
from sesame.common.wire.admissions import MAX_ADMISSIONS_PAYLOAD
from sesame.common.wire.shards import MAX_SHARD_PAYLOAD

CONF = "mosquitto.conf"
PASSWD = "passwd"
ACL = "acl"
SETTINGS = "broker.json"
CREDENTIALS = "credentials"

# The largest packet any account may send. Mosquitto 2.0 (Debian 12 ships 2.0.11) has
# `max_packet_size` only globally, not per listener or account, so it is as small as the
# largest legitimate message of any account. Every message of the venue is small: a gate's
# at most 16 KiB; the large retained lists (the revocation list, the counter's findings) go
# as shards of at most 60 KiB each (sesame/common/wire/shards.py), the counter's admissions
# in chunks of the same size; 4 KiB more for the topic and the packet's own fields. A larger
# packet gets its sender disconnected before it reaches anyone, and a gate's oversized
# message within the limit is refused by the counter's parser (16 KiB); what may pile up
# for an offline client is bounded by max_queued_bytes below.
MAX_PACKET = max(MAX_SHARD_PAYLOAD, MAX_ADMISSIONS_PAYLOAD, MAX_PAYLOAD) + 4 * 1024
# Mosquitto's default of 1000 silently drops the rest of an offline client's queue while
# publishers still get PUBACKs (measured; docs/design.md). A gate offline for an hour at 60/min
# is 3,600 messages; the counter offline during a peak can be far more.
MAX_QUEUED = 100_000
# ...and a byte bound, so an account flooding large packets while the counter is away cannot
# exhaust the broker's memory: 100,000 genuine events are ~25 MB. A message dropped beyond it
# is still in its gate's outbox, which re-sends it until the counter acknowledges it.
MAX_QUEUED_BYTES = 256 * 1024 * 1024
# QoS 1 messages Mosquitto sends to one client before its PUBACKs: the counter acknowledges
# only after committing a batch (manual_ack), so this bounds its batch size.
MAX_INFLIGHT = 1000
PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes
PASSWORD_BYTES = 18  # 24 base64url characters


@dataclass(frozen=True)
class BrokerSettings:
    venue: str
    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False

    @property
    def scheme(self) -> str:
        return "mqtts" if self.tls else "mqtt"

    def save(self, out: Path) -> None:
        _write(out / SETTINGS, json.dumps(asdict(self), indent=2) + "\n", 0o644)

    @classmethod
    def load(cls, out: Path) -> BrokerSettings:
        path = Path(out) / SETTINGS
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except FileNotFoundError:
            raise ValueError(f"{path}: not found; run `sesame broker setup` first") from None
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: not a broker settings file ({e})") from None


# -- accounts and permissions ---------------------------------------------------------


HA_PREFIX = "homeassistant"  # Home Assistant's MQTT discovery prefix (its default)


def accounts(venue: Venue, home_assistant: bool = False) -> list[str]:
    """One account per gate, plus the counter, the dashboard, badge administration, a
    read-only account for the venue's pager or PA bridge (escalated alerts), and a read-only
    account for Home Assistant when asked."""
    extra = ["homeassistant"] if home_assistant else []
    return ["counter", "dashboard", "admin", "alerts", *extra] + [
        f"gate-{g}" for g in venue.gates
    ]


def acl_rules(venue: Venue, home_assistant: bool = False) -> dict[str, list[tuple[str, str]]]:
    """account -> [(access, topic filter)], access being read, write or readwrite."""
    r = f"{ROOT}/{venue.id}"
    rules: dict[str, list[tuple[str, str]]] = {
        "counter": [
            ("read", f"{r}/gates/+/events"),
            ("read", f"{r}/gates/+/status"),
            ("read", f"{r}/control/#"),
            ("read", f"{r}/badges/revoked/+"),
            # readwrite: a restarted counter reads back its own retained leases and acks.
            ("readwrite", f"{r}/gates/+/lease"),
            ("readwrite", f"{r}/gates/+/ack"),
            ("readwrite", f"{r}/zones/+/occupancy"),
            ("readwrite", f"{r}/counter/status"),
            ("readwrite", f"{r}/counter/alerts/+"),
            # the venue's admissions, live to every entry lane and replayed to one
            # (sesame/counter/inside.py); only the counter speaks here
            ("write", f"{r}/counter/admissions"),
            ("write", f"{r}/gates/+/admissions"),
            # only with the venue's fire_alarm_evacuates = true (sesame/counter/fire_alarms.py)
            ("write", f"{r}/control/venue"),
            # Home Assistant discovery configs (`sesame counter run --ha-discovery`)
            ("write", f"{HA_PREFIX}/#"),
        ],
        "dashboard": [
            ("read", f"{r}/#"),
            ("write", f"{r}/control/zones/+"),
            ("write", f"{r}/control/venue"),
            ("write", f"{r}/control/corrections"),
            # a safety officer's confirmations and held-passage decisions, for the counter
            ("write", f"{r}/control/decisions"),
            # unacknowledged alerts, for a venue's pager or PA system (docs/mqtt.md)
            ("write", f"{r}/alerts/escalated"),
        ],
        "admin": [("readwrite", f"{r}/badges/revoked/+")],
        # a pager or PA bridge: reads what it needs to page someone, can change nothing
        "alerts": [
            ("read", f"{r}/alerts/escalated"),
            ("read", f"{r}/counter/alerts/+"),
            ("read", f"{r}/control/venue"),
        ],
    }
    if home_assistant:  # reads what its discovered entities name, writes nothing
        rules["homeassistant"] = [
            ("read", f"{HA_PREFIX}/#"),
            ("read", f"{r}/zones/+/occupancy"),
            ("read", f"{r}/gates/+/status"),
            ("read", f"{r}/counter/status"),
            ("read", f"{r}/control/venue"),
        ]
    for g in venue.gates:
        rules[f"gate-{g}"] = [
            # Only its own events and status; never its lease or ack (a gate that could
            # write its lease could admit without limit).
            ("write", f"{r}/gates/{g}/events"),
            ("readwrite", f"{r}/gates/{g}/status"),
            ("read", f"{r}/gates/{g}/lease"),
            ("read", f"{r}/gates/{g}/ack"),
            ("read", f"{r}/zones/+/occupancy"),
            # Zone and venue control, not control/corrections (dashboard -> counter only).
            ("read", f"{r}/control/zones/+"),
            ("read", f"{r}/control/venue"),
            ("read", f"{r}/counter/status"),
            ("read", f"{r}/badges/revoked/+"),
            # every lane's admissions, as the counter stored them; never written by a gate
            ("read", f"{r}/counter/admissions"),
            ("read", f"{r}/gates/{g}/admissions"),
        ]
    return rules


def acl_text(venue: Venue, home_assistant: bool = False) -> str:
    lines = [
        f"# Generated by `sesame broker setup` for venue {venue.id!r}; do not edit by hand.",
        "# Anything not granted here is denied.",
    ]
    for account, rules in acl_rules(venue, home_assistant).items():
        lines += ["", f"user {account}"]
        lines += [f"topic {access} {topic}" for access, topic in rules]
    return "\n".join(lines) + "\n"


# -- passwords ------------------------------------------------------------------------


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def hash_password(password: str, salt: bytes | None = None) -> str:
    """Mosquitto 2.0's `$7$` format: PBKDF2-HMAC-SHA512, 101 iterations, 12-byte salt,
    standard base64: `$7$101$<salt>$<hash>`."""
    salt = salt if salt is not None else os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS, 64)
    b64 = base64.b64encode
    return f"$7${PBKDF2_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, hashed: str) -> bool:
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    salt = base64.b64decode(parts[3])
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]), 64)
    return secrets.compare_digest(base64.b64encode(digest).decode(), parts[4])


def read_password_file(path: Path) -> dict[str, str]:
    """user -> hash line of an existing password file (empty when there is none)."""
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if ":" in line and not line.startswith("#"):
            user, hashed = line.split(":", 1)
            out[user] = hashed
    return out


def password_file_text(
    passwords: dict[str, str], kept_hashes: dict[str, str], use_tool: bool | None = None
) -> str:
    """Password file contents. `passwords` are plain (hashed here: with mosquitto_passwd
    when installed, else by hash_password); `kept_hashes` are copied as they are."""
    tool = shutil.which("mosquitto_passwd") if use_tool in (None, True) else None
    if use_tool and tool is None:
        raise RuntimeError("mosquitto_passwd is not installed")
    lines: dict[str, str] = dict(kept_hashes)
    if passwords and tool:
        with tempfile.TemporaryDirectory() as tmp:
            plain = Path(tmp) / "passwd"
            _write(plain, "".join(f"{u}:{p}\n" for u, p in passwords.items()), 0o600)
            # -U hashes a plain-text `user:password` file in place, one call for all.
            subprocess.run([tool, "-U", str(plain)], check=True, capture_output=True)
            lines.update(read_password_file(plain))
    else:
        lines.update({u: hash_password(p) for u, p in passwords.items()})
    return "".join(f"{u}:{lines[u]}\n" for u in sorted(lines))


# -- the configuration file ------------------------------------------------------------


def mosquitto_conf(
    out: Path,
    settings: BrokerSettings,
    *,
    port: int | None = None,
    persistence_dir: Path | None = None,
    log_file: Path | None = None,
    run_as: str | None = None,
) -> str:
    """The Mosquitto configuration. The keyword arguments override what setup chose, for
    brokers started on a free port with their own data folder (tests, demo, benchmarks)."""
    out = out.resolve()
    data = (persistence_dir or out / "data").resolve()
    lines = [
        f"# Generated by `sesame broker setup` for venue {settings.venue!r}.",
        "# Run it with `sesame broker run --config <this folder>`.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {out / PASSWD}",
        f"acl_file {out / ACL}",
        "",
        "# QoS 1 sessions and retained messages survive a restart (saved on graceful stop",
        "# and every autosave_interval seconds; the gates' outbox covers a kill -9).",
        "persistence true",
        f"persistence_location {data}/",
        "autosave_interval 30",
        "# Sessions of clients gone for two weeks are dropped (MQTT 3.1.1 has no expiry).",
        "persistent_client_expiration 14d",
        "",
        f"max_packet_size {MAX_PACKET}",
        f"max_queued_messages {MAX_QUEUED}",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        f"max_inflight_messages {MAX_INFLIGHT}",
        "",
    ]
    if run_as:
        lines.append(f"user {run_as}")
    if log_file:
        lines.append(f"log_dest file {log_file.resolve()}")
    else:
        lines.append("log_dest stdout")
    lines += [
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        "",
    ]
    lines.append(f"listener {port if port is not None else settings.port} {settings.host}")
    if settings.tls:
        tls = out / "tls"
        lines += [
            f"cafile {tls / 'ca.crt'}",
            f"certfile {tls / 'server.crt'}",
            f"keyfile {tls / 'server.key'}",
            "tls_version tlsv1.2",
            "# Clients present a certificate from the venue CA and a password.",
            "require_certificate true",
            "use_identity_as_username false",
        ]
    return "\n".join(lines) + "\n"


# -- setup ------------------------------------------------------------------------------


@dataclass
class SetupResult:
    out: Path
    settings: BrokerSettings
    created: list[str]  # accounts with a new password (shown once)
    kept: list[str]
    removed: list[str]
    passwords: dict[str, str]  # new passwords only
    warnings: list[str] = field(default_factory=list)


def credentials_path(out: Path, account: str) -> Path:
    return Path(out) / CREDENTIALS / f"{account}.json"


def read_credential(out: Path, account: str) -> dict | None:
    try:
        data = json.loads(credentials_path(out, account).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    password = data.get("password") if isinstance(data, dict) else None
    # A password must survive the `user:password` line of the password file.
    if not isinstance(password, str) or not password or not password.isprintable():
        return None
    return data


def credential_json(
    settings: BrokerSettings,
    account: str,
    password: str,
    *,
    host: str | None = None,
    port: int | None = None,
) -> str:
    shown = public_host(host or settings.host)
    data = {
        "username": account,
        "password": password,
        "broker": f"{settings.scheme}://{_url_host(shown)}:{port or settings.port}",
    }
    if settings.tls:
        # Relative to the credential file: copy the credentials/ folder onto the gate.
        data |= {"ca": "ca.crt", "cert": f"{account}.crt", "key": f"{account}.key"}
    return json.dumps(data, indent=2) + "\n"


def public_host(host: str) -> str:
    """The name clients use: a wildcard listener is reached by this machine's name."""
    if host in ("0.0.0.0", "::", ""):
        import socket

        return socket.gethostname()
    return host


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name (or a wildcard) other machines may reach


class PlaintextRefused(ValueError):
    """A listener other machines can reach, without TLS, and not explicitly allowed."""


def check_plaintext(hosts: Iterable[str], tls: bool, allow_plaintext: bool) -> None:
    """Every password crosses a plaintext listener in clear: off loopback it needs TLS, or
    the operator's explicit word that the network is closed."""
    if tls or allow_plaintext:
        return
    for host in hosts:
        if not is_loopback(host):
            raise PlaintextRefused(
                f"--host {host}: a listener other machines can reach needs --tls (passwords "
                "would cross the network in clear), or --allow-plaintext on a closed network"
            )


def resolve_settings(
    venue: Venue,
    out: Path,
    *,
    host: str | None = None,
    port: int | None = None,
    tls: bool | None = None,
) -> BrokerSettings:
    """The settings a set-up in `out` gets: what is given, else what is there, else the
    defaults. A change of TLS without a port resets the port to that mode's default."""
    try:
        old: BrokerSettings | None = BrokerSettings.load(out)
    except ValueError:
        old = None
    tls = tls if tls is not None else (old.tls if old else False)
    if port is None:
        port = old.port if old and old.tls == tls else (8883 if tls else 1883)
    host = host if host is not None else (old.host if old else "127.0.0.1")
    return BrokerSettings(venue.id, host, port, tls)


def setup(
    venue: Venue,
    out: str | Path,
    *,
    host: str | None = None,
    port: int | None = None,
    tls: bool | None = None,
    rotate: bool = False,
    use_passwd_tool: bool | None = None,
    home_assistant: bool = False,
    tls_names: list[str] | None = None,
    allow_plaintext: bool = False,
) -> SetupResult:
    """Write (or refresh) the set-up in `out`. `host`, `port` and `tls` left as None keep
    what an existing set-up in `out` has (else loopback, 1883, no TLS): re-running after a
    venue change must not move the broker and rewrite every credential file's address.
    Raises PlaintextRefused (before writing anything) for a reachable listener without TLS
    unless `allow_plaintext`."""
    out = Path(out)
    settings = resolve_settings(venue, out, host=host, port=port, tls=tls)
    check_plaintext([settings.host, *(tls_names or [])], settings.tls, allow_plaintext)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)  # holds the password file
    private_dir(out / CREDENTIALS)
    (out / "data").mkdir(exist_ok=True)
    host = settings.host

    wanted = accounts(venue, home_assistant)
    old_hashes = read_password_file(out / PASSWD)
    passwords: dict[str, str] = {}  # plain passwords to (re)hash
    kept_hashes: dict[str, str] = {}
    created, kept = [], []
    warnings: list[str] = []
    for account in wanted:
        cred = None if rotate else read_credential(out, account)
        if cred is not None:
            passwords[account] = cred["password"]
            kept.append(account)
        elif not rotate and account in old_hashes:
            kept_hashes[account] = old_hashes[account]  # credential file moved away
            kept.append(account)
            if credentials_path(out, account).exists():
                warnings.append(
                    f"{credentials_path(out, account)} is unreadable or has no valid password: "
                    "kept the account's password hash; --rotate issues a new password"
                )
        else:
            passwords[account] = new_password()
            created.append(account)
    removed = sorted(set(old_hashes) - set(wanted))

    if settings.tls:
        from sesame.broker.tls import ensure_tls

        ensure_tls(out, host, wanted, extra_names=tls_names)

    _write(out / PASSWD, password_file_text(passwords, kept_hashes, use_passwd_tool), 0o600)
    _write(out / ACL, acl_text(venue, home_assistant), 0o644)
    for account in wanted:
        if account in passwords:
            _write(
                credentials_path(out, account),
                credential_json(settings, account, passwords[account]),
                0o600,
            )
    for account in removed:
        credentials_path(out, account).unlink(missing_ok=True)
    settings.save(out)
    _write(out / CONF, mosquitto_conf(out, settings), 0o644)
    new = {a: passwords[a] for a in created}
    return SetupResult(out, settings, created, kept, removed, new, warnings)


def _write(path: Path, text: str, mode: int) -> None:
    """Atomically, with its mode from creation on (sesame.common.private_files)."""
    write_private(path, text, mode)


def iter_credentials(out: Path) -> Iterable[Path]:
    return sorted((Path(out) / CREDENTIALS).glob("*.json"))
