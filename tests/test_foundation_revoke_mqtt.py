"""`sesame badges revoke --broker`: the full list reaches gates as the retained
`badges/revoked/<shard>` messages (all 128 of them), through a real Mosquitto with the
project's generated ACL."""

from __future__ import annotations

import threading

from sesame.cli import main
from sesame.common import mqtt, wire
from sesame.common.wire.shards import REVOKED_SHARDS, shard_name
from tests.fixtures.foundation import REFERENCE_VENUE

TOPIC = wire.Topics("grand-palais").revoked()


def _retained(broker, account: str = "admin", timeout: float = 10.0) -> wire.Revocations | None:
    """What a client connecting now receives on badges/revoked/+ (every retained shard,
    joined), or None when nothing is retained."""
    got: dict[str, bytes] = {}
    complete = threading.Event()

    def on_message(msg):
        got[msg.topic] = msg.payload
        if len(got) == REVOKED_SHARDS:
            complete.set()

    conn = mqtt.connect(
        broker.url(account),
        f"test-reader-{threading.get_ident()}",
        subscriptions=[(TOPIC, 1)],
        on_message=on_message,
        clean_start=True,
        session_expiry=0,
    )
    try:
        complete.wait(timeout)
    finally:
        conn.close()
    if not got:
        return None
    assert len(got) == REVOKED_SHARDS, f"{len(got)} of {REVOKED_SHARDS} shards retained"
    badges: list[str] = []
    for topic, payload in got.items():
        shard = wire.parse_revocation_shard(payload)
        assert shard and topic == wire.Topics("grand-palais").revoked(shard_name(shard.shard))
        badges += shard.badges
    return wire.Revocations(tuple(sorted(badges)))


def _revoke(broker_arg: str, lst, *ids: str, timeout: float = 10) -> int:
    """--credentials for a credential file (it names its broker), --broker for a URL."""
    option = "--credentials" if broker_arg.endswith(".json") else "--broker"
    return main(["badges", "revoke", *ids, "--list", str(lst), option, broker_arg,
                 "--venue", str(REFERENCE_VENUE), "--timeout", str(timeout)])  # fmt: skip


def test_revocations_are_published_retained(mosquitto, tmp_path, capsys):
    lst = tmp_path / "revoked.json"
    creds = str(mosquitto.credentials("admin"))
    assert _revoke(creds, lst, "B000002", "B000003") == 0
    out = capsys.readouterr().out
    assert f"published 2 revoked id(s), retained, to {TOPIC} (128 shards)" in out
    assert _retained(mosquitto).badges == ("B000002", "B000003")

    # the next revocation publishes the full list, not a delta; a gate account reads it
    assert _revoke(creds, lst, "B000007") == 0
    assert _retained(mosquitto, "gate-churchill-in-1").badges == ("B000002", "B000003", "B000007")

    # still there after a broker restart (retained and persisted on graceful stop)
    mosquitto.restart()
    assert _retained(mosquitto).badges == ("B000002", "B000003", "B000007")


def test_republish_without_ids(mosquitto, tmp_path, capsys):
    lst = tmp_path / "revoked.json"
    assert main(["badges", "revoke", "B1", "--list", str(lst)]) == 0  # offline first
    assert _retained(mosquitto, timeout=1.0) is None
    assert _revoke(mosquitto.url("admin"), lst) == 0
    assert _retained(mosquitto).badges == ("B1",)


def test_refused_publish_is_an_error(mosquitto, tmp_path, capsys):
    """The dashboard account may not write badges/revoked: the ACL drops the message, and
    the command must say so rather than report success (MQTT 5 PUBACK reason code)."""
    lst = tmp_path / "revoked.json"
    assert _revoke(str(mosquitto.credentials("dashboard")), lst, "B000004") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "saved in" in err and "not published" in err and "135" in err
    assert wire.parse_revocations(lst.read_bytes()).badges == ("B000004",)
    assert _retained(mosquitto, timeout=1.0) is None


def test_unreachable_broker_keeps_the_local_list(mosquitto, tmp_path, capsys):
    lst = tmp_path / "revoked.json"
    url = str(mosquitto.credentials("admin"))  # a URL with a password would add a warning
    mosquitto.stop()
    assert _revoke(url, lst, "B000005", timeout=1.5) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not published" in err
    assert wire.parse_revocations(lst.read_bytes()).badges == ("B000005",)
