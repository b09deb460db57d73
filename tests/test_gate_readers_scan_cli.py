"""`sesame gate scan --image FILE`: one image through decode and decision, one JSON line out."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bench.bench_decode_images import DISTORTIONS, in_frame, render_qr
from sesame.cli import main
from sesame.common.tokens import Claims, sign
from sesame.gate.decode import DECODERS
from sesame.gate.scan_cli import DECODER_NAMES

REPO = Path(__file__).resolve().parent.parent
VENUE = str(REPO / "config" / "grand-palais.toml")
THURSDAY_10AM = "2018-11-22T10:00"


def _fixed_key(seed: int, folder: Path) -> tuple[Ed25519PrivateKey, str]:
    """A key from a fixed seed, so tokens (Ed25519 signs deterministically) and the QR images
    made from them are the same on every run; its public key written as PEM."""
    key = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
    pub = folder / f"key-{seed}.pub"
    pub.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return key, str(pub)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    ours, pub = _fixed_key(21, folder)
    theirs, _ = _fixed_key(22, folder)
    return {"priv": ours, "pub": pub, "other": theirs}


def badge_png(path: Path, text: str, distort: str | None = None) -> str:
    img = DISTORTIONS[distort](text, 0) if distort else in_frame(render_qr(text, 4))
    assert cv2.imwrite(str(path), img)
    return str(path)


def scan(capsys, *argv: str) -> tuple[int, dict | None, str]:
    code = main(["gate", "scan", *argv])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    if code == 0:
        assert len(lines) == 1, out  # exactly one JSON object on one line
        return code, json.loads(lines[0]), err
    return code, None, err


def decide_args(keys, gate: str = "churchill-in-1", at: str = THURSDAY_10AM) -> list[str]:
    return ["--venue", VENUE, "--gate", gate, "--pubkey", keys["pub"], "--at", at]


def test_decode_only_prints_the_text_and_no_decision(tmp_path, capsys, keys) -> None:
    token = sign(Claims("B000001", "public", None), keys["priv"])
    code, out, _ = scan(capsys, "--image", badge_png(tmp_path / "b.png", token))
    assert code == 0
    assert out["text"] == token and out["codes"] == [token]
    assert out["decision"] is None and out["reason"] is None


def test_a_valid_badge_is_granted_within_opening_hours(tmp_path, capsys, keys) -> None:
    token = sign(Claims("B000002", "school", (date(2018, 11, 22),), group=28), keys["priv"])
    image = badge_png(tmp_path / "b.png", token, "perspective_30pct")
    code, out, _ = scan(capsys, "--image", image, *decide_args(keys))
    assert code == 0
    assert (out["decision"], out["reason"]) == ("GRANTED", None)
    assert (out["badge"], out["category"], out["passages"]) == ("B000002", "school", 28)
    assert out["at"].startswith("2018-11-22T10:00:00+01:00")  # venue local time


def test_without_at_the_time_is_now_in_venue_local_time(tmp_path, capsys, keys) -> None:
    token = sign(Claims("B000002", "public", None), keys["priv"])
    args = decide_args(keys)[:-2]  # no --at
    code, out, _ = scan(capsys, "--image", badge_png(tmp_path / "b.png", token), *args)
    assert code == 0
    at = datetime.fromisoformat(out["at"])
    paris = datetime.now(ZoneInfo("Europe/Paris"))
    assert at.utcoffset() == paris.utcoffset() and abs(at - paris) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("at", "gate", "reason"),
    [
        ("2018-11-22T07:00", "churchill-in-1", "OUTSIDE_OPENING_HOURS"),
        ("2018-11-23T10:00", "churchill-in-1", "NOT_VALID_TODAY"),
        (THURSDAY_10AM, "salon-in-1", "ZONE_NOT_ALLOWED"),
    ],
)
def test_denials_carry_the_reason_and_both_languages(tmp_path, capsys, keys, at, gate, reason):
    token = sign(Claims("B000003", "public", (date(2018, 11, 22),)), keys["priv"])
    image = badge_png(tmp_path / "b.png", token)
    code, out, _ = scan(capsys, "--image", image, *decide_args(keys, gate, at))
    assert code == 0
    assert (out["decision"], out["reason"]) == ("DENIED", reason)
    assert out["message"]["fr"] and out["message"]["en"]
    assert out["message"]["fr"] != out["message"]["en"]


def test_hostile_codes_are_denied_with_a_reason(tmp_path, capsys, keys) -> None:
    good = sign(Claims("B000004", "public", None), keys["priv"])
    flipped = good[:60] + ("A" if good[60] != "A" else "B") + good[61:]
    cases = {
        "https://example.org/win-a-prize": "MALFORMED",
        "SES1." + "x" * 2000: "MALFORMED",  # a large code
        flipped: None,  # BAD_SIGNATURE or MALFORMED depending on where the byte landed
        sign(Claims("B000005", "public", None), keys["other"]): "UNKNOWN_KEY",
    }
    for i, (text, reason) in enumerate(cases.items()):
        image = badge_png(tmp_path / f"h{i}.png", text)
        code, out, _ = scan(capsys, "--image", image, *decide_args(keys))
        assert code == 0
        assert out["text"] == text  # decoded exactly, then refused
        assert out["decision"] == "DENIED"
        assert out["reason"] == reason or (
            reason is None
            and out["reason"]
            in (
                "BAD_SIGNATURE",
                "MALFORMED",
            )
        )


def test_no_code_in_the_image_is_denied_at_an_entry_and_granted_at_an_exit(
    tmp_path, capsys, keys
) -> None:
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((480, 640), 128, np.uint8))
    code, out, _ = scan(capsys, "--image", str(blank), *decide_args(keys))
    assert (code, out["text"], out["decision"], out["reason"]) == (0, None, "DENIED", "MALFORMED")
    code, out, _ = scan(capsys, "--image", str(blank), *decide_args(keys, "churchill-out-1"))
    assert (out["decision"], out["passages"]) == ("GRANTED", 1)  # exits are never blocked


def test_revoked_list_file(tmp_path, capsys, keys) -> None:
    token = sign(Claims("B000006", "press", None), keys["priv"])
    revoked = tmp_path / "revoked.txt"
    revoked.write_text("# stolen badges\nB000006\n")
    image = badge_png(tmp_path / "b.png", token)
    code, out, _ = scan(capsys, "--image", image, *decide_args(keys), "--revoked", str(revoked))
    assert (out["decision"], out["reason"]) == ("DENIED", "REVOKED")


def test_revoked_json_from_badges_revoke(tmp_path, capsys, keys) -> None:
    """The list `sesame badges revoke` writes is honoured, not read as nothing revoked."""
    from sesame.cli import main

    listing = tmp_path / "revoked.json"
    assert main(["badges", "revoke", "B000008", "--list", str(listing)]) == 0
    capsys.readouterr()
    token = sign(Claims("B000008", "press", None), keys["priv"])
    image = badge_png(tmp_path / "b.png", token)
    code, out, _ = scan(capsys, "--image", image, *decide_args(keys), "--revoked", str(listing))
    assert (out["decision"], out["reason"]) == ("DENIED", "REVOKED")


@pytest.mark.parametrize("decoder", DECODERS)
def test_decoder_choice(tmp_path, capsys, keys, decoder) -> None:
    token = sign(Claims("B000007", "staff", None), keys["priv"])
    image = badge_png(tmp_path / "b.png", token, "blur_sigma3")
    code, out, _ = scan(capsys, "--image", image, "--decoder", decoder)
    assert out["decoder"] == decoder
    # measured: only the pipelines with a sharpening pass read this blur
    assert out["text"] == (token if decoder in ("combined", "thorough") else None)


def test_the_command_line_offers_every_decoder() -> None:
    assert DECODER_NAMES == DECODERS


def test_bad_invocations_are_one_line_errors(tmp_path, capsys, keys) -> None:
    (tmp_path / "text.png").write_text("hello")
    token_png = badge_png(tmp_path / "b.png", "SES1.x.y")
    cases = [
        ["--image", str(tmp_path / "missing.png")],
        ["--image", str(tmp_path / "text.png")],
        ["--image", token_png, "--venue", VENUE, "--gate", "churchill-in-1"],  # no key
        ["--image", token_png, *decide_args(keys, gate="nowhere")],
        ["--image", token_png, *decide_args(keys, at="next thursday")],
        ["--image", token_png, "--gate", "churchill-in-1"],  # no venue
        ["--image", token_png, *decide_args(keys), "--pubkey", str(tmp_path / "text.png")],
    ]
    for argv in cases:
        code, out, err = scan(capsys, *argv)
        assert code == 2, argv
        assert len(err.strip().splitlines()) == 1 and "error" in err, (argv, err)


def test_the_installed_command_line(tmp_path) -> None:
    image = badge_png(tmp_path / "b.png", "https://example.org/\u2028line")
    proc = subprocess.run(
        [sys.executable, "-m", "sesame", "gate", "scan", "--image", image],
        capture_output=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    [line] = proc.stdout.splitlines()
    assert json.loads(line)["text"] == "https://example.org/\u2028line"
    missing = subprocess.run(
        [sys.executable, "-m", "sesame", "gate", "scan", "--image", str(tmp_path / "nope.png")],
        capture_output=True,
        cwd=REPO,
        timeout=60,
    )
    assert missing.returncode == 2
    assert missing.stderr.decode().count("\n") == 1 and b"nope.png" in missing.stderr
