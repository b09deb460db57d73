"""The gate's link on a three-node NATS cluster: a lane drains its outbox while the node it
is connected to is killed and restarted, and a publish NATS drops silently (with a normal
PUBACK) shows on the lane as UNACKNOWLEDGED, never as a delivery."""

from __future__ import annotations

import time

from tests.test_gate_link import Acker, give_lease, lane, until  # noqa: F401  (the fixture)


def test_a_silently_dropped_publish_shows_on_the_lane(nats_cluster, lane, make_token):  # noqa: F811
    acker = Acker(nats_cluster.url("counter"))
    try:
        # another lane's credentials: NATS drops its events and still sends PUBACKs
        a = lane("balcons-up-1", credentials=nats_cluster.credentials("gate-balcons-up-2"),
                 ack_timeout=1.0)  # fmt: skip
        assert until(lambda: a.online, timeout=20)
        assert a.link._conn.protocol == "3.1.1"  # NATS refuses MQTT 5
        assert a.handle_scan(make_token()).granted
        assert until(lambda: "UNACKNOWLEDGED" in a.faults(), timeout=10)
        assert "PUBLISH_REFUSED" not in a.faults()  # nothing else tells
        assert "UNACKNOWLEDGED" in a.view().faults  # on the staff display
        assert acker.ids == [] and a.outbox_depth() == 1
    finally:
        acker.close()


def test_lane_drains_while_its_node_is_killed_and_restarted(nats_cluster, lane, make_token):  # noqa: F811
    acker = Acker(nats_cluster.url("counter"))
    give_lease(nats_cluster.url("counter"), "churchill-in-1", 1000)
    node = 0
    try:
        a = lane(broker_url=nats_cluster.url("gate-churchill-in-1"), ack_timeout=2.0)
        assert until(lambda: a.online and a.lease is not None, timeout=20)
        port = a.link._conn.url.port
        node = next(i for i, n in enumerate(nats_cluster.settings.nodes) if n.mqtt_port == port)
        granted = 0
        for i in range(40):
            granted += a.handle_scan(make_token(f"B{i:05d}")).granted
            if i == 15:
                nats_cluster.kill_node(node)  # the lane's and the acker's node
            time.sleep(0.02)
        assert until(lambda: a.outbox_depth() == 0, timeout=60), a.outbox_depth()
        assert a.link._conn.url.port != port
        assert len(acker.unique()) == granted == 40
        assert "UNACKNOWLEDGED" not in a.faults()
    finally:
        acker.close()
        if not nats_cluster.running(node):
            nats_cluster.start_node(node)
