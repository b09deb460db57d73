"""Topic permissions (DESIGN.md invariant 5) enforced by the generated configuration, on a
real Mosquitto, on the embedded broker and on a three-node NATS JetStream cluster."""

from __future__ import annotations

import queue
import time

import pytest

from sesame.common.mqtt import ConnectRefused, connect
from sesame.common.wire import Topics

T = Topics("grand-palais")
GATE_A, GATE_B = "churchill-in-1", "churchill-in-2"


@pytest.fixture(params=["mosquitto", "embedded_broker", "nats_cluster"])
def broker(request):
    return request.getfixturevalue(request.param)


def _subscriber(broker, account: str, filters: list[str], client_id: str):
    got: queue.Queue = queue.Queue()
    conn = connect(
        broker.url(account),
        client_id,
        clean_start=True,
        subscriptions=[(f, 1) for f in filters],
        on_message=lambda m: got.put((m.topic, m.payload)),
    )
    assert conn.wait_subscribed(10)  # a clustered broker sets up consumers first
    return conn, got


def _until_marker(got: queue.Queue, marker: bytes, timeout: float = 5.0) -> list:
    """Messages received up to `marker`. Published last by the same client, the marker
    arrives after anything the broker let through before it (per-client ordering)."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            item = got.get(timeout=0.05)
        except queue.Empty:
            continue
        seen.append(item)
        if item[1] == marker:
            return seen
    raise AssertionError(f"marker {marker!r} never arrived; got {seen}")


def _attempts(broker, account: str, topics: list[str], marker_topic: str) -> list:
    """Publish to each topic as `account` (then a permitted marker) and return what a
    dashboard subscribed to everything received."""
    watcher, got = _subscriber(broker, "dashboard", [f"{T.root}/#"], f"watch-{account}")
    pub = connect(broker.url(account), f"pub-{account}", clean_start=True)
    try:
        for topic in topics:
            pub.publish(topic, b"forged").wait_for_publish(5)
        pub.publish(marker_topic, b"marker").wait_for_publish(5)
        return _until_marker(got, b"marker")
    finally:
        pub.close()
        watcher.close()


def test_gate_cannot_spoof_another_gates_events(broker):
    counter, got = _subscriber(broker, "counter", [T.events()], "counter-acl")
    gate_a = connect(broker.url(f"gate-{GATE_A}"), "gate-a-acl", clean_start=True)
    try:
        gate_a.publish(T.events(GATE_B), b'{"spoofed": true}').wait_for_publish(5)
        gate_a.publish(T.events(GATE_A), b"marker").wait_for_publish(5)
        seen = _until_marker(got, b"marker")
        assert seen == [(T.events(GATE_A), b"marker")]
    finally:
        gate_a.close()
        counter.close()


def test_gate_cannot_write_control_lease_ack_or_others_status(broker):
    forged = [
        T.zone_control("nef"),
        T.venue_control(),
        T.corrections(),
        T.decisions(),  # it could confirm its own new outbox or accept its own burst
        T.lease(GATE_A),  # its own lease: it could admit without limit
        T.ack(GATE_A),  # its own ack: it could drop events the counter never saw
        T.gate_status(GATE_B),
        T.occupancy("nef"),
        T.counter_status(),
        T.revoked("00"),
    ]
    seen = _attempts(broker, f"gate-{GATE_A}", forged, T.gate_status(GATE_A))
    assert seen == [(T.gate_status(GATE_A), b"marker")]


def test_counter_cannot_forge_gate_events_or_control(broker):
    forged = [T.events(GATE_A), T.gate_status(GATE_A), T.zone_control("nef"), T.revoked("00"),
              T.decisions()]  # fmt: skip
    seen = _attempts(broker, "counter", forged, T.lease(GATE_A))
    assert seen == [(T.lease(GATE_A), b"marker")]


def test_dashboard_publishes_only_control(broker):
    forged = [T.events(GATE_A), T.lease(GATE_A), T.occupancy("nef"), T.revoked("00")]
    allowed = [T.zone_control("nef"), T.decisions()]
    seen = _attempts(broker, "dashboard", forged + allowed, T.venue_control())
    assert seen == [(t, b"forged") for t in allowed] + [(T.venue_control(), b"marker")]


def test_admin_publishes_revocations_only(broker):
    seen = _attempts(broker, "admin", [T.venue_control(), T.events(GATE_A), T.decisions()],
                     T.revoked("00"))  # fmt: skip
    assert seen == [(T.revoked("00"), b"marker")]


def test_gate_reads_its_lease_and_ack_but_not_another_gates(broker):
    counter = connect(broker.url("counter"), "counter-lease", clean_start=True)
    for gate in (GATE_A, GATE_B):
        counter.publish(T.lease(gate), f"lease-{gate}".encode(), retain=True).wait_for_publish(5)
        counter.publish(T.ack(gate), f"ack-{gate}".encode(), retain=True).wait_for_publish(5)
    counter.publish(T.counter_status(), b"status", retain=True).wait_for_publish(5)
    counter.close()
    dashboard = connect(broker.url("dashboard"), "dash-corr", clean_start=True)
    dashboard.publish(T.corrections(), b"correction", retain=True).wait_for_publish(5)
    dashboard.close()
    gate, got = _subscriber(
        broker,
        f"gate-{GATE_A}",
        [
            T.lease(GATE_A),
            T.ack(GATE_A),
            T.lease(GATE_B),
            T.events(),
            T.counter_status(),
            T.corrections(),
        ],
        "gate-a-reads",
    )
    try:
        received = set()
        deadline = time.monotonic() + 5
        while len(received) < 3 and time.monotonic() < deadline:
            try:
                received.add(got.get(timeout=0.05))
            except queue.Empty:
                pass
        time.sleep(0.2)  # anything not allowed would have arrived with the retained ones
        while not got.empty():
            received.add(got.get())
        assert received == {
            (T.lease(GATE_A), f"lease-{GATE_A}".encode()),
            (T.ack(GATE_A), f"ack-{GATE_A}".encode()),
            (T.counter_status(), b"status"),
        }
    finally:
        gate.close()


_WILL_SPOOFER = """
import sys, time
from sesame.common.mqtt import ConnectRefused, connect
url, forged, own = sys.argv[1:4]
# a legitimate will on its own topic: the positive control that wills are sent at all
connect(url, "will-honest", clean_start=True, timeout=5, will=(own, b"honest will", 1, False))
try:
    connect(url, "will-spoofer", clean_start=True, timeout=5,
            will=(forged, b"forged will", 1, False))
    print("connected", flush=True)
except ConnectRefused:
    print("refused", flush=True)
time.sleep(60)
"""


def test_gate_cannot_spoof_through_its_last_will(broker):
    """A Last Will on another gate's events topic never reaches the counter (Mosquitto
    drops it; the embedded broker, which would publish it unchecked, refuses the client)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    counter, got = _subscriber(broker, "counter", [T.events()], "counter-will")
    args = [broker.url(f"gate-{GATE_A}"), T.events(GATE_B), T.events(GATE_A)]
    proc = subprocess.Popen(
        [sys.executable, "-c", _WILL_SPOOFER, *args],
        stdout=subprocess.PIPE,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    try:
        outcome = proc.stdout.readline()
        assert outcome in (b"connected\n", b"refused\n")
        proc.kill()  # both sockets close uncleanly at once: the broker sends the wills
        proc.wait(5)
        seen = _until_marker(got, b"honest will")
        time.sleep(0.3)  # the forged will, if any, goes out with the honest one
        gate_a = connect(broker.url(f"gate-{GATE_A}"), "gate-a-marker", clean_start=True)
        gate_a.publish(T.events(GATE_A), b"marker").wait_for_publish(5)
        gate_a.close()
        seen += _until_marker(got, b"marker")
        assert seen == [(T.events(GATE_A), b"honest will"), (T.events(GATE_A), b"marker")]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        counter.close()


def test_another_account_cannot_read_the_counters_queued_session(broker):
    """A gate presenting the counter's client id gets none of the events queued for it
    (Mosquitto re-checks the ACL on delivery; the embedded broker binds client ids to
    accounts). Mosquitto still drops that queue: the gates' outbox and the end-to-end ack
    cover it (docs/mqtt.md)."""
    counter = connect(broker.url("counter"), "counter-main", subscriptions=[(T.events(), 1)])
    counter.close()  # offline, session kept: events queue up for it
    gate_a = connect(broker.url(f"gate-{GATE_A}"), "gate-a-queue", clean_start=True)
    for i in range(3):
        gate_a.publish(T.events(GATE_A), f"e{i}".encode()).wait_for_publish(5)
    gate_a.close()
    stolen: queue.Queue = queue.Queue()
    try:
        thief = connect(
            broker.url(f"gate-{GATE_B}"),
            "counter-main",
            on_message=lambda m: stolen.put((m.topic, m.payload)),
            timeout=5,
        )
    except ConnectRefused:
        return  # the embedded broker refuses the client id outright
    try:
        # the thief's own status is readable: its arrival shows delivery has happened
        thief.subscribe([(T.gate_status(GATE_B), 1)])
        thief.publish(T.gate_status(GATE_B), b"marker").wait_for_publish(5)
        assert _until_marker(stolen, b"marker") == [(T.gate_status(GATE_B), b"marker")]
    finally:
        thief.close()


def test_refused_publish_reports_reason_135_over_mqtt5(mosquitto):
    refused = []
    gate_a = connect(
        mosquitto.url(f"gate-{GATE_A}"),
        "gate-a-v5",
        clean_start=True,
        on_refused=lambda mid, code: refused.append((mid, code)),
    )
    try:
        assert gate_a.protocol == "5"
        bad = gate_a.publish(T.events(GATE_B), b"spoof")
        good = gate_a.publish(T.events(GATE_A), b"fine")
        bad.wait_for_publish(5)
        good.wait_for_publish(5)
        deadline = time.monotonic() + 5
        while not gate_a.refusals and time.monotonic() < deadline:
            time.sleep(0.01)
        assert list(gate_a.refusals) == [(bad.mid, 135)]
        assert refused == [(bad.mid, 135)]
    finally:
        gate_a.close()


def test_embedded_broker_speaks_311_only(embedded_broker):
    conn = connect(embedded_broker.url("counter"), "c-311", clean_start=True)
    try:
        assert conn.protocol == "3.1.1"
    finally:
        conn.close()


def test_wrong_password_refused(broker):
    with pytest.raises(ConnectRefused) as e:
        connect(broker.url("counter", password="not-the-password"), "counter-bad", timeout=5)
    # Mosquitto 2.0 answers a wrong password with 135 "not authorised", others with 134.
    assert e.value.reason_code in (134, 135)


def test_unknown_account_refused(broker):
    with pytest.raises(ConnectRefused):
        connect(broker.url("gate-nowhere", password="x"), "nobody", timeout=5)


def test_anonymous_refused(broker):
    with pytest.raises(ConnectRefused) as e:
        connect(broker.url(None), "anon", timeout=5)
    assert e.value.reason_code in (134, 135)


def test_alert_topics_counter_and_dashboard_write_the_pager_account_only_reads(broker):
    # only the alert topics: a session-wide cluster also hands the watcher the retained leases
    # and acks earlier tests left
    alert_topics = {T.alerts("00"), T.escalated_alerts()}
    seen = _attempts(broker, "counter", [T.escalated_alerts()], T.alerts("00"))
    assert [m for m in seen if m[0] in alert_topics] == [(T.alerts("00"), b"marker")]
    seen = _attempts(broker, "dashboard", [T.alerts("00")], T.escalated_alerts())
    assert [m for m in seen if m[0] in alert_topics] == [(T.escalated_alerts(), b"marker")]
    # the pager/PA bridge account: reads escalations, publishes nothing
    pager, got = _subscriber(broker, "alerts", [T.escalated_alerts()], "pager-1")
    watcher, all_seen = _subscriber(broker, "dashboard", [f"{T.root}/#"], "watch-pager")
    pub = connect(broker.url("alerts"), "pager-pub", clean_start=True)
    dash = connect(broker.url("dashboard"), "dash-pub", clean_start=True)
    try:
        for topic in (T.venue_control(), T.escalated_alerts(), T.zone_control("nef")):
            pub.publish(topic, b"forged").wait_for_publish(5)
        dash.publish(T.escalated_alerts(), b"marker").wait_for_publish(5)
        control = alert_topics | {T.venue_control(), T.zone_control("nef")}
        live = [m for m in _until_marker(all_seen, b"marker") if m[0] in control]
        assert live == [(T.escalated_alerts(), b"marker")]
        assert _until_marker(got, b"marker") == [(T.escalated_alerts(), b"marker")]
    finally:
        for c in (pager, watcher, pub, dash):
            c.close()
