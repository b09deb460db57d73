"""`sesame broker setup --nats-cluster 3 --tls`: a three-node NATS JetStream cluster whose MQTT
listeners speak TLS with the venue's private CA and require a client certificate as well as
the account's password. A lane's status published on one node reaches the counter on another;
a client without the CA, with another CA's certificate, or without a certificate is refused;
the permissions are the plain cluster's (a gate cannot write its own lease)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sesame.broker.nats_process import NatsCluster
from sesame.broker.nats_setup import setup_cluster
from sesame.common.mqtt import TLSFailed, connect
from sesame.common.venue import load_venue
from sesame.common.wire import Topics
from tests.fixtures.broker import VENUE_FILE, credential_variant
from tests.waiting import wait_for

T = Topics("grand-palais")
GATE = "churchill-in-1"


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    out = tmp_path_factory.mktemp("nats-tls")
    setup_cluster(load_venue(VENUE_FILE), out, nodes=3, tls=True)
    cluster = NatsCluster(out, run_dir=tmp_path_factory.mktemp("nats-tls-run"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.close()


def _on_node(cluster, account: str, index: int, tmp_path: Path, **changes) -> Path:
    """A copy of the account's credential file naming one node (and maybe other entries)."""
    node = f"mqtts://127.0.0.1:{cluster.settings.nodes[index].mqtt_port}"
    return credential_variant(cluster.credentials(account), tmp_path / f"{account}-{index}",
                              broker=node, **changes)  # fmt: skip


def test_a_lane_on_one_node_reaches_the_counter_on_another_over_tls(tls_cluster, tmp_path):
    assert tls_cluster.settings.scheme == "mqtts"
    got: list[tuple[str, bytes]] = []
    seen = threading.Event()

    def on_message(msg):
        got.append((msg.topic, bytes(msg.payload)))
        seen.set()

    on_0 = _on_node(tls_cluster, "counter", 0, tmp_path)
    on_2 = _on_node(tls_cluster, f"gate-{GATE}", 2, tmp_path)
    counter = connect(None, "tls-counter", credentials=on_0, clean_start=True,
                      subscriptions=[(T.gate_status(), 1)], on_message=on_message,
                      timeout=20)  # fmt: skip
    gate = connect(None, "tls-gate", credentials=on_2, clean_start=True, timeout=20)
    try:
        assert counter.wait_subscribed(20)
        # its own status: allowed; its own lease: refused by the permissions, as without TLS
        gate.publish(T.lease(GATE), b"forged", qos=1).wait_for_publish(10)
        gate.publish(T.gate_status(GATE), b'{"tls": true}', qos=1).wait_for_publish(10)
        wait_for(lambda: (T.gate_status(GATE), b'{"tls": true}') in got, what="the status",
                 timeout=20)  # fmt: skip
        assert all(topic != T.lease(GATE) for topic, _ in got)
    finally:
        gate.close()
        counter.close()


def test_a_client_without_the_ca_or_the_venues_certificate_is_refused(
    tls_cluster, tmp_path, other_ca
):
    for changes in (
        {"ca": None},  # does not trust the cluster's certificate
        {"ca": other_ca / "ca.crt"},
        {"cert": other_ca / "counter.crt", "key": other_ca / "counter.key"},
        {"cert": None, "key": None},  # no client certificate at all
    ):
        cred = _on_node(tls_cluster, "counter", 1, tmp_path / str(len(changes)), **changes)
        with pytest.raises(TLSFailed):
            connect(None, "tls-refused", credentials=cred, clean_start=True, timeout=8)
