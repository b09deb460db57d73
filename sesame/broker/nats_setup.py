"""`sesame broker setup --nats-cluster N`: a NATS JetStream cluster serving MQTT 3.1.1.

Writes into DIR, beside what the Mosquitto set-up writes (same accounts and passwords, so a
venue can fall back to one Mosquitto):
  nats-cluster.json        the nodes (names, addresses, ports) the files were made from
  nats/<node>.conf         one node's configuration (JSON, which nats-server reads), 0600
  credentials/<acct>.json  "broker" lists every node: mqtt://h1:p1,h2:p2,h3:p3

The permissions are the Mosquitto ACL's (`setup.acl_rules`, invariant 5) in NATS terms: MQTT
topic `a/b/c` is subject `a.b.c`, `+` is `*`, and `x/#` needs both `x` and `x.>`. Every
account also needs subscribe on `$MQTT.sub.>` (where NATS keeps MQTT deliveries) and may
connect only over MQTT: without `allowed_connection_types`, a restricted user logging in on
the NATS port could read other users' QoS 1 deliveries there (measured;
docs/scaling.md). NATS keeps passwords as written in the node file, which is
therefore 0600 like the credential files.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from sesame.broker.setup import (
    CREDENTIALS,
    MAX_PACKET,
    SetupResult,
    _write,
    acl_rules,
    public_host,
    read_credential,
    setup,
)
from sesame.common.private_files import private_dir
from sesame.common.venue import Venue

CLUSTER = "nats-cluster.json"
NODES_DIR = "nats"
MAX_NODES = 7
# NATS refuses `.`, spaces and wildcards inside a topic level (a publish closes the
# connection, a subscribe gets 0x80): ids must stay within this.
_SUBJECT_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")
# Default ports of node i (0-based): MQTT 1883+i, NATS client 4222+i (loopback only, no
# account may use it), cluster routes 6222+i, monitoring 8222+i (loopback only).
BASE_PORTS = {"mqtt": 1883, "client": 4222, "cluster": 6222, "http": 8222}


@dataclass(frozen=True)
class Node:
    name: str
    host: str  # where the MQTT listener and the cluster routes listen
    mqtt_port: int
    client_port: int
    cluster_port: int
    http_port: int


@dataclass(frozen=True)
class ClusterSettings:
    venue: str
    nodes: tuple[Node, ...]
    tls: bool = False

    @property
    def scheme(self) -> str:
        return "mqtts" if self.tls else "mqtt"

    @property
    def replicas(self) -> int:
        return min(3, len(self.nodes))

    def broker_url(self, hosts: list[tuple[str, int]] | None = None) -> str:
        """The address list clients use (every node, in order)."""
        pairs = hosts or [(public_host(n.host), n.mqtt_port) for n in self.nodes]
        return f"{self.scheme}://" + ",".join(f"{_url_host(h)}:{p}" for h, p in pairs)

    def save(self, out: Path, perms: dict[str, dict[str, list[str]]]) -> None:
        """The nodes and each account's permissions (so the runner needs no venue file)."""
        data = {
            "venue": self.venue,
            "tls": self.tls,
            "nodes": [asdict(n) for n in self.nodes],
            "permissions": perms,
        }
        _write(out / CLUSTER, json.dumps(data, indent=2) + "\n", 0o644)

    @classmethod
    def load(cls, out: str | Path) -> ClusterSettings:
        path = Path(out) / CLUSTER
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            nodes = tuple(Node(**n) for n in data["nodes"])
            return cls(data["venue"], nodes, bool(data.get("tls", False)))
        except FileNotFoundError:
            raise ValueError(
                f"{path}: not found; run `sesame broker setup --nats-cluster N`"
            ) from None
        except (ValueError, TypeError, KeyError) as e:
            raise ValueError(f"{path}: not a cluster settings file ({e})") from None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def permissions_from_config(out: str | Path) -> dict[str, dict[str, list[str]]]:
    path = Path(out) / CLUSTER
    try:
        perms = json.loads(path.read_text(encoding="utf-8"))["permissions"]
        for rules in perms.values():
            if not all(isinstance(x, str) for k in ("publish", "subscribe") for x in rules[k]):
                raise ValueError("permissions must be lists of subjects")
        return perms
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: no valid permissions ({e}); run `sesame broker setup`") from None


def is_cluster(out: str | Path) -> bool:
    return (Path(out) / CLUSTER).is_file()


# -- ids and permissions --------------------------------------------------------------


def check_ids(venue: Venue) -> None:
    """Every id that becomes a topic level must be a valid NATS subject token. The venue
    loader already restricts ids to [a-z0-9_-]; this guards the cluster if it ever widens."""
    for kind, ids in (("venue", [venue.id]), ("gate", venue.gates), ("zone", venue.zones)):
        for i in ids:
            if not _SUBJECT_SAFE.match(i):
                raise ValueError(
                    f"{kind} id {i!r} cannot be a NATS subject level (only letters, digits, "
                    "'-' and '_'; no '.', space or wildcard)"
                )


def subjects(mqtt_filter: str) -> list[str]:
    """NATS subjects covering an MQTT topic filter: `a/+/b` -> [`a.*.b`], `a/#` -> [`a`, `a.>`]."""
    levels = mqtt_filter.split("/")
    out = [{"+": "*", "#": ">"}.get(level, level) for level in levels]
    if levels[-1] == "#":
        # MQTT's `a/#` also matches `a` itself; NATS's `a.>` does not.
        return [".".join(out[:-1]), ".".join(out)] if len(out) > 1 else [">"]
    return [".".join(out)]


def permissions(venue: Venue) -> dict[str, dict[str, list[str]]]:
    """account -> {"publish": [...], "subscribe": [...]} equivalent to the Mosquitto ACL."""
    perms: dict[str, dict[str, list[str]]] = {}
    for account, rules in acl_rules(venue).items():
        pub: list[str] = []
        sub: list[str] = []
        for access, topic in rules:
            if access in ("write", "readwrite"):
                pub += subjects(topic)
            if access in ("read", "readwrite"):
                sub += subjects(topic)
        sub.append("$MQTT.sub.>")  # NATS delivers MQTT subscriptions through it
        perms[account] = {
            "publish": list(dict.fromkeys(pub)),
            "subscribe": list(dict.fromkeys(sub)),
        }
    return perms


# -- node configuration ---------------------------------------------------------------


def node_conf(
    out: Path,
    cs: ClusterSettings,
    index: int,
    passwords: dict[str, str],
    perms: dict[str, dict[str, list[str]]],
    *,
    data_dir: Path | None = None,
) -> str:
    """One node's configuration as JSON (nats-server reads JSON config files)."""
    node = cs.nodes[index]
    out = out.resolve()
    conf: dict = {
        "server_name": node.name,
        # The NATS protocol port is needed by the server but used by nobody: loopback only,
        # and no account may connect over it (allowed_connection_types below).
        "listen": f"127.0.0.1:{node.client_port}",
        "http": f"127.0.0.1:{node.http_port}",
        "max_payload": MAX_PACKET,
        "jetstream": {"store_dir": str((data_dir or out / "data" / "nats").resolve() / node.name)},
        "mqtt": {
            "host": node.host,
            "port": node.mqtt_port,
            "stream_replicas": cs.replicas,
            "consumer_replicas": cs.replicas,
            # a QoS 1 delivery not acknowledged within this is sent again
            "ack_wait": "30s",
            # the counter acknowledges after committing a batch (as Mosquitto's inflight)
            "max_ack_pending": 1024,
        },
        "authorization": {
            "users": [
                {
                    "user": account,
                    "password": passwords[account],
                    "allowed_connection_types": ["MQTT"],
                    "permissions": {
                        # NATS reads an empty allow list as "no restriction": a
                        # read-only account (alerts, homeassistant) must be denied all
                        "publish": (
                            {"allow": perms[account]["publish"]}
                            if perms[account]["publish"]
                            else {"deny": [">"]}
                        ),
                        "subscribe": {"allow": perms[account]["subscribe"]},
                    },
                }
                for account in sorted(perms)
            ]
        },
    }
    if len(cs.nodes) > 1:
        conf["cluster"] = {
            "name": f"sesame-{cs.venue}",
            "listen": f"{node.host}:{node.cluster_port}",
            "routes": [f"nats-route://{_url_host(n.host)}:{n.cluster_port}" for n in cs.nodes],
        }
    if cs.tls:
        tls = out / "tls"
        conf["mqtt"]["tls"] = {
            "cert_file": str(tls / "server.crt"),
            "key_file": str(tls / "server.key"),
            "ca_file": str(tls / "ca.crt"),
            "verify": True,  # clients present a venue certificate and a password
            "timeout": 5,
        }
    return json.dumps(conf, indent=2) + "\n"


def plan_nodes(
    count: int, hosts: list[str] | None, host: str, port: int | None
) -> tuple[Node, ...]:
    """`count` nodes: one per given host (production) with the base ports, or all on `host`
    with ports shifted by one per node (one machine: development, tests, demos)."""
    if not 1 <= count <= MAX_NODES:
        raise ValueError(f"--nats-cluster {count}: must be between 1 and {MAX_NODES}")
    if hosts and len(hosts) != count:
        raise ValueError(f"--nats-hosts lists {len(hosts)} hosts for {count} nodes")
    mqtt_base = port or BASE_PORTS["mqtt"]
    nodes = []
    for i in range(count):
        shift = 0 if hosts else i
        nodes.append(
            Node(
                name=f"n{i + 1}",
                host=hosts[i] if hosts else host,
                mqtt_port=mqtt_base + shift,
                client_port=BASE_PORTS["client"] + shift,
                cluster_port=BASE_PORTS["cluster"] + shift,
                http_port=BASE_PORTS["http"] + shift,
            )
        )
    return tuple(nodes)


def setup_cluster(
    venue: Venue,
    out: str | Path,
    *,
    nodes: int,
    hosts: list[str] | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    tls: bool = False,
    rotate: bool = False,
    planned: tuple[Node, ...] | None = None,
    allow_plaintext: bool = False,
) -> SetupResult:
    """Accounts as `setup()` makes them (passwords kept unless `rotate`), then the cluster.
    `planned` replaces the node plan (tests run the CLI's `broker run` on free ports)."""
    check_ids(venue)
    out = Path(out)
    planned = planned or plan_nodes(nodes, hosts, host, port)
    tls_names = [n.host for n in planned]
    result = setup(venue, out, host=host, port=port, tls=tls, rotate=rotate, tls_names=tls_names,
                   allow_plaintext=allow_plaintext)  # fmt: skip
    cs = ClusterSettings(venue.id, planned, tls)
    passwords = cluster_passwords(out, list(permissions(venue)))
    perms = permissions(venue)
    private_dir(out / NODES_DIR)  # every node file holds every account's password
    for i, node in enumerate(cs.nodes):
        _write(
            out / NODES_DIR / f"{node.name}.conf", node_conf(out, cs, i, passwords, perms), 0o600
        )
    write_credentials(out, cs, passwords)
    cs.save(out, perms)
    return result


def cluster_passwords(out: Path, accounts: list[str]) -> dict[str, str]:
    """Plain passwords from the credential files (NATS needs them as written)."""
    passwords = {}
    for account in accounts:
        cred = read_credential(out, account)
        if cred is None:
            raise ValueError(
                f"{out / CREDENTIALS / (account + '.json')}: missing or without a password; "
                "run `sesame broker setup --nats-cluster N --rotate`"
            )
        passwords[account] = cred["password"]
    return passwords


def write_credentials(
    out: Path,
    cs: ClusterSettings,
    passwords: dict[str, str],
    *,
    folder: Path | None = None,
    hosts: list[tuple[str, int]] | None = None,
) -> None:
    """Credential files whose "broker" lists every node (same fields as Mosquitto's)."""
    for account, password in passwords.items():
        data = {"username": account, "password": password, "broker": cs.broker_url(hosts)}
        if cs.tls:
            data |= {"ca": "ca.crt", "cert": f"{account}.crt", "key": f"{account}.key"}
        path = (folder or out / CREDENTIALS) / f"{account}.json"
        _write(path, json.dumps(data, indent=2) + "\n", 0o600)
