"""The large retained lists travel as small shards (sesame/common/wire/shards.py): the largest
revocation list and the largest findings list fit, every shard within the venue's message
size, and a shard replaces exactly its own items."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sesame.broker.setup import MAX_PACKET
from sesame.common import wire
from sesame.common.wire.admissions import MAX_ADMISSIONS_PAYLOAD, MAX_ITEMS, Admission, Admissions
from sesame.common.wire.shards import (
    ALERT_SHARDS,
    MAX_SHARD_PAYLOAD,
    REVOKED_SHARDS,
    ShardedSet,
    shard_index,
    shard_name,
    shard_of,
)
from sesame.counter.findings import Findings

NOW = datetime(2018, 11, 25, 15, 0, tzinfo=UTC)
T = wire.Topics("grand-palais")


def test_shards_are_the_same_everywhere():
    # a hash of the bytes (not Python's salted hash()): a gate and the admin agree
    assert shard_of("B000001", REVOKED_SHARDS) == shard_of("B000001", REVOKED_SHARDS)
    assert [shard_of(f"B{i:06d}", 128) for i in range(4)] == [
        int.from_bytes(hashlib.sha256(f"B{i:06d}".encode()).digest()[:4], "big") % 128
        for i in range(4)
    ]
    assert shard_name(10) == "0a" and shard_index("0a", 128) == 10
    for bad in ("80", "0A", "a", "000", "", None, "+"):
        assert shard_index(bad, 128) is None, bad


def test_the_largest_revocation_list_goes_in_small_shards():
    ids = tuple(f"B{i:031d}" for i in range(wire.MAX_REVOKED))  # the longest ids, 100,000
    shards = wire.Revocations(ids, NOW).shards()
    assert len(shards) == REVOKED_SHARDS
    sizes = [len(sh.to_json()) for sh in shards]
    assert max(sizes) <= MAX_SHARD_PAYLOAD < MAX_PACKET <= 64 * 1024
    assert sum(sizes) > 3_500_000  # the same 3.6 MB, in 128 messages
    got = ShardedSet(REVOKED_SHARDS)
    for sh in shards:
        parsed = wire.parse_revocation_shard(sh.to_json())
        got.replace(parsed.shard, parsed.badges)
    assert got.received == REVOKED_SHARDS and len(got) == len(ids)
    assert set(got) == set(ids)
    assert ids[0] in got and ids[-1] in got and "B1" not in got


def test_a_shard_replaces_its_own_items_and_nothing_else():
    before = wire.Revocations(("B000001", "B000002", "B000003"), NOW).shards()
    after = wire.Revocations(("B000001", "B000003"), NOW).shards()  # B000002 restored
    held = ShardedSet(REVOKED_SHARDS)
    for sh in before:
        held.replace(sh.shard, sh.badges)
    changed = shard_of("B000002", REVOKED_SHARDS)
    held.replace(changed, after[changed].badges)  # only that shard has arrived so far
    assert "B000002" not in held
    assert "B000001" in held and "B000003" in held  # whatever shard they are in


def test_a_shard_holding_another_shards_id_is_refused():
    sh = wire.Revocations(("B000001",), NOW).shards()[shard_of("B000001", REVOKED_SHARDS)]
    other = (sh.shard + 1) % REVOKED_SHARDS
    # it would never be looked for there: a gate keeps its previous copy instead
    forged = wire.RevocationShard(other, ("B000001",), NOW).to_json()
    assert not wire.parse_revocation_shard(forged)
    assert "another shard" in wire.parse_revocation_shard(forged).reason
    wrong_count = sh.to_json().replace(b'"of":128', b'"of":64')
    assert "shard count" in wire.parse_revocation_shard(wrong_count).reason


def test_the_largest_findings_list_goes_in_small_shards_and_only_changes_are_sent():
    f = Findings()
    for i in range(wire.MAX_FINDINGS):
        f.raise_("IMPLAUSIBLE_RATE", f"lane-{i:04d}", NOW, {"held": 120, "epoch": "e1" * 20})
    sent = f.messages(T, NOW)
    assert len(sent) == ALERT_SHARDS and not f.dirty
    assert max(len(p) for _, p in sent) <= MAX_SHARD_PAYLOAD
    union = {a.key for _, p in sent for a in wire.parse_counter_alerts(p).alerts}
    assert len(union) == wire.MAX_FINDINGS
    for topic, payload in sent:  # each shard on its own topic, saying which it is
        assert T.match(topic).subject == shard_name(wire.parse_counter_alerts(payload).shard)

    # one finding cleared: its shard alone is sent again, without it
    f.clear("IMPLAUSIBLE_RATE", "lane-0007")
    (topic, payload), *rest = f.messages(T, NOW)
    assert not rest
    assert T.match(topic).subject == shard_name(shard_of("IMPLAUSIBLE_RATE:lane-0007", 32))
    keys = {a.key for a in wire.parse_counter_alerts(payload).alerts}
    assert "IMPLAUSIBLE_RATE:lane-0007" not in keys and keys
    # at start-up every shard, the empty ones too (they overwrite an earlier run's)
    assert len(Findings().messages(T, NOW, every=True)) == ALERT_SHARDS


def test_a_shard_too_large_for_its_details_keeps_every_finding():
    f = Findings()
    big = {"note": "x" * 2000}
    subjects = [f"lane-{i:04d}" for i in range(3000) if shard_of(f"HELD:lane-{i:04d}", 32) == 0]
    for s in subjects[:40]:
        f.raise_("HELD", s, NOW, big)
    (_, payload), *_ = f.messages(T, NOW)
    msg = wire.parse_counter_alerts(payload)
    assert len(payload) <= MAX_SHARD_PAYLOAD
    assert len(msg.alerts) == 40 and all(a.detail == {"trimmed": True} for a in msg.alerts)


def test_the_largest_admissions_message_fits():
    gate, zone = "g" * 40, "z" * 40
    items = tuple(
        Admission(f"{gate}:{'e' * 32}:{i:016d}", gate, "B" * 32, zone, zone, NOW)
        for i in range(MAX_ITEMS)
    )
    payload = Admissions("2018-11-25", 0, MAX_ITEMS, items, more=True).to_json()
    assert len(payload) <= MAX_ADMISSIONS_PAYLOAD < MAX_PACKET
    assert wire.parse_admissions(payload)
