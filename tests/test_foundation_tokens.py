"""Badge tokens: what a gate trusts. Round trip, tampering, foreign keys, garbage."""

from __future__ import annotations

import base64
import json
import os
import stat
import string
from datetime import date

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sesame.common import tokens
from sesame.common.reasons import Reason
from sesame.common.tokens import Claims, TokenError

DAYS = (date(2018, 11, 22), date(2018, 11, 24))


def _reason(token, ring) -> Reason:
    with pytest.raises(TokenError) as err:
        tokens.verify(token, ring)
    return err.value.reason


def test_round_trip(badge_keypair):
    ring = badge_keypair.ring
    for claims in (
        Claims("B000001", "public", None, 1),
        Claims("B000123", "school", DAYS, 28),
        Claims("X-9_z", "staff", (date(2018, 11, 25),), 500),
    ):
        token = tokens.sign(claims, badge_keypair.key)
        assert token.startswith("SES1.") and token.count(".") == 2
        got = tokens.verify(token, ring)
        assert (got.badge, got.category, got.days, got.group) == (
            claims.badge,
            claims.category,
            claims.days,
            claims.group,
        )
        assert got.key_id in ring
        # surrounding whitespace (a scanner's trailing newline) is tolerated
        assert tokens.verify(token + "\r\n", ring) == got


def test_token_holds_no_personal_data_and_is_short(badge_keypair):
    token = badge_keypair.sign("B000042", "professional", DAYS, 1)
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert set(payload) == {"k", "b", "c", "d", "g"}
    # fits a QR version 10 (M) even with several days: printable at 25 mm
    assert len(token) <= 240


def test_valid_on(badge_keypair):
    claims = tokens.verify(badge_keypair.sign("B1", "public", DAYS), badge_keypair.ring)
    assert claims.valid_on(date(2018, 11, 22)) and not claims.valid_on(date(2018, 11, 23))
    every = tokens.verify(badge_keypair.sign("B2", "public", None), badge_keypair.ring)
    assert every.valid_on(date(2018, 11, 23))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_single_byte_change_fails(badge_keypair, data):
    token = badge_keypair.sign("B000777", "exhibitor", DAYS, 3)
    ring = badge_keypair.ring
    raw = bytearray(token.encode("ascii"))
    i = data.draw(st.integers(0, len(raw) - 1), label="position")
    new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[i]), label="byte")
    raw[i] = new
    tampered = raw.decode("latin-1")
    with pytest.raises(TokenError) as err:
        tokens.verify(tampered, ring)
    assert err.value.reason in (Reason.MALFORMED, Reason.BAD_SIGNATURE, Reason.UNKNOWN_KEY)


def test_every_position_and_every_character_fails(badge_keypair):
    """Exhaustive companion of the property: every position changed to every other base64url
    character (or the separator), so the failure must come from the signature check, not the
    format. This is what caught the last signature character's unused bits being ignored."""
    token = badge_keypair.sign("B000778", "school", (date(2018, 11, 22),), 30)
    ring = badge_keypair.ring
    alphabet = string.ascii_letters + string.digits + "-_."
    accepted = []
    for i, ch in enumerate(token):
        for repl in alphabet:
            if repl == ch:
                continue
            try:
                tokens.verify(token[:i] + repl + token[i + 1 :], ring)
            except TokenError:
                continue
            accepted.append((i, ch, repl))
    assert accepted == []


def test_signed_by_another_key(badge_keypair):
    other = Ed25519PrivateKey.generate()
    token = tokens.sign(Claims("B000001", "public", None), other)
    assert _reason(token, badge_keypair.ring) is Reason.UNKNOWN_KEY


def test_foreign_signature_claiming_our_key_id(badge_keypair):
    """A forger who copies our key id into a payload signed with their own key."""
    ours = tokens.key_id(badge_keypair.key.public_key())
    body = {"k": ours, "b": "B000001", "c": "staff", "d": "*", "g": 1}
    payload = tokens.b64url_encode(json.dumps(body, separators=(",", ":")).encode())
    signed = f"SES1.{payload}"
    sig = Ed25519PrivateKey.generate().sign(signed.encode())
    forged = f"{signed}.{tokens.b64url_encode(sig)}"
    assert _reason(forged, badge_keypair.ring) is Reason.BAD_SIGNATURE


def test_key_ring_with_two_keys(badge_keypair, tmp_path):
    """Gates can hold last year's key and this year's: both verify, by key id."""
    priv2, pub2 = tokens.generate_keypair(tmp_path)
    ring = tokens.load_public_keys(badge_keypair.public, pub2)
    assert len(ring) == 2
    t1 = badge_keypair.sign("B1")
    t2 = tokens.sign(Claims("B2", "public", None), tokens.load_private_key(priv2))
    assert tokens.verify(t1, ring).badge == "B1" and tokens.verify(t2, ring).badge == "B2"


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "hello",
        "SES1",
        "SES1..",
        "SES2.e30.AAAA",
        "SES1.e30.AAAA",  # {} : no key id
        "SES1.W10.AAAA",  # [] : not an object
        "SES1.!!!!.AAAA",
        "SES1.eyJrIjoxfQ.AAAA",  # key id not a string
        "https://example.org/?q=SES1",
        "SES1." + "A" * 1000 + ".AAAA",
        "\x00\x01\x02",
    ],
)
def test_garbage_is_malformed(badge_keypair, garbage):
    assert _reason(garbage, badge_keypair.ring) is Reason.MALFORMED


def test_signed_but_nonsense_claims_are_malformed(badge_keypair):
    """Even a correctly signed payload must have sane fields (an issuer bug, not a crash)."""
    kid = tokens.key_id(badge_keypair.key.public_key())
    for body in (
        {"k": kid, "b": "B1", "c": "public", "d": "*", "g": 0},
        {"k": kid, "b": "B1", "c": "public", "d": [], "g": 1},
        {"k": kid, "b": "B1", "c": "public", "d": ["2018-13-40"], "g": 1},
        {"k": kid, "b": "B 1", "c": "public", "d": "*", "g": 1},
        {"k": kid, "b": "B1", "c": "Public!", "d": "*", "g": 1},
        {"k": kid, "b": "B1", "c": "public", "d": "*", "g": True},
        {"k": kid, "c": "public", "d": "*"},
    ):
        payload = tokens.b64url_encode(json.dumps(body).encode())
        signed = f"SES1.{payload}"
        token = f"{signed}.{tokens.b64url_encode(badge_keypair.key.sign(signed.encode()))}"
        assert _reason(token, badge_keypair.ring) is Reason.MALFORMED, body


@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
@settings(max_examples=200, deadline=None)
def test_verify_never_raises_anything_else(text):
    ring = {"k": Ed25519PrivateKey.generate().public_key()}
    try:
        tokens.verify(text, ring)
    except TokenError as e:
        assert isinstance(e.reason, Reason)


def test_sign_refuses_bad_claims(badge_keypair):
    for claims in (
        Claims("", "public", None),
        Claims("B" * 33, "public", None),
        Claims("B1", "Public", None),
        Claims("B1", "public", None, 501),
    ):
        with pytest.raises(ValueError):
            tokens.sign(claims, badge_keypair.key)


def test_keygen_private_key_mode_and_no_overwrite(tmp_path):
    priv, pub = tokens.generate_keypair(tmp_path / "k")
    assert stat.S_IMODE(os.stat(priv).st_mode) == 0o600
    before = priv.read_bytes()
    with pytest.raises(FileExistsError):
        tokens.generate_keypair(tmp_path / "k")
    assert priv.read_bytes() == before
    # a public key alone verifies; a private key file also works as a ring entry
    assert set(tokens.load_public_keys(pub)) == set(tokens.load_public_keys(priv))
