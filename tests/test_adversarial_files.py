"""Adversarial: hostile files given to the command line (invariant 4): venue files with
figures no wire message can carry, registration CSVs that smuggle spreadsheet formulas into
the organiser's exports, and image files built to exhaust a gate's memory."""

from __future__ import annotations

import io
import struct
import time
import zlib
from datetime import datetime
from pathlib import Path

import pytest

from sesame.cli import main
from sesame.common.venue import load_venue
from tests.fixtures.broker import VENUE_FILE
from tests.fixtures.counter import PARIS

REFERENCE = VENUE_FILE.read_text(encoding="utf-8")


def _one_line_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as e:
        code = main(argv)
        raise SystemExit(code)
    err = capsys.readouterr().err.strip()
    assert e.value.code not in (0, None), err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# -- venue files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("capacity = 11000", "capacity = 1000000000000000000000000000000", "zones.nef.capacity"),
        ("capacity = 11000", "capacity = 2000000000", "zones.nef.capacity"),  # wire: <= 10**9
        ("area_m2 = 13500", "area_m2 = 99999999999999999999", "zones.nef.area_m2"),
        ("max_per_gate = 200", "max_per_gate = 100000000000000000000", "leases.max_per_gate"),
        ("initial = 64", "initial = 9223372036854775807", "leases.initial"),
        # the day after overflows; the error names the fourth day and its own line
        ("date = 2018-11-25", "date = 9999-12-31", ":32: days[3].date"),
        ("date = 2018-11-22", "date = 0001-01-01", ":14: days[0].date"),  # early entry
    ],
)
def test_venue_figures_beyond_what_the_system_can_carry_are_refused(
    tmp_path, capsys, old, new, key
):
    assert old in REFERENCE
    path = tmp_path / "venue.toml"
    path.write_text(REFERENCE.replace(old, new, 1), encoding="utf-8")
    err = _one_line_error(capsys, ["config", "check", str(path)])
    assert str(path) in err and key in err, err


def test_the_largest_accepted_capacity_still_makes_parseable_occupancy(tmp_path):
    """What the loader accepts, the counter can publish and gates can read."""
    from sesame.common import wire
    from sesame.counter.core import Core
    from sesame.counter.store import CounterStore

    path = tmp_path / "venue.toml"
    path.write_text(REFERENCE.replace("capacity = 11000", "capacity = 1000000000", 1))
    core = Core(load_venue(path), CounterStore(tmp_path / "c.db"),
                lambda: datetime(2018, 11, 22, 12, tzinfo=PARIS))  # fmt: skip
    try:
        for out in core.startup():
            if out.topic.endswith("/occupancy"):
                assert wire.parse_occupancy(out.payload), out.payload
            if out.topic.endswith("/lease"):
                assert wire.parse_lease(out.payload), out.payload
    finally:
        core.store.close()


# -- registrations: formulas for the organiser's spreadsheet --------------------------------

HEADER = "name,category,days,group_size,organisation,department\n"


@pytest.mark.parametrize(
    "department",
    ['"=HYPERLINK(""http://x"",""x"")"', "@SUM(A1)", "=1+1", "+cmd|' /C calc'!A0", "-2+3+cmd|x"],
)
def test_a_department_that_is_a_formula_is_refused_with_its_line(tmp_path, capsys, department):
    """Plain numbers with a sign ("+33 1 40", "-2") stay accepted in any column."""
    from sesame.common.tokens import generate_keypair

    keys = generate_keypair(tmp_path / "keys")
    csv_path = tmp_path / "reg.csv"
    csv_path.write_text(HEADER + "Class 4B,school,all,25,College,75\n"
                        f"Class 3A,school,all,20,College,{department}\n")  # fmt: skip
    out = tmp_path / "badges"
    argv = ["badges", "issue", "--key", str(keys[0]), "--registrations", str(csv_path),
            "--out", str(out), "--venue", str(VENUE_FILE)]  # fmt: skip
    err = _one_line_error(capsys, argv)
    assert f"{csv_path.name}:3" in err and "department" in err, err
    assert not out.exists()


def test_a_department_in_the_registry_never_becomes_a_formula_in_the_xlsx(
    make_core, lanes, tmp_path
):
    from openpyxl import load_workbook

    from sesame.counter import exports, registry

    core = make_core()
    core.handle([lanes.event("in-1", badge="S1", category="school",
                             ts=datetime(2018, 11, 22, 10, tzinfo=PARIS))])  # fmt: skip
    (tmp_path / "manifest.csv").write_text(
        "badge_id,token,category,days,group_size,organisation,department\n"
        'S1,SES1.a.b,school,all,1,x,"=HYPERLINK(""http://evil"",""click"")"\n'
    )
    registry.import_manifest(tmp_path / "counter.db", tmp_path / "manifest.csv")
    report = exports.attendance(tmp_path / "counter.db", lanes.venue)
    buf = io.BytesIO()
    exports.write_attendance(report, "xlsx", buf)
    wb = load_workbook(io.BytesIO(buf.getvalue()))
    formulas = [c.value for ws in wb for row in ws.iter_rows() for c in row if c.data_type == "f"]
    assert formulas == []


# -- images for `sesame gate scan` ------------------------------------------------------------


def _png(width: int, height: int, rows: int | None = None) -> bytes:
    """A greyscale PNG of that size, all black: a few hundred KB that decode to w*h bytes."""
    co = zlib.compressobj(9)
    line = b"\x00" * (width + 1)
    data = b"".join(co.compress(line) for _ in range(height if rows is None else rows))
    data += co.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def _scan_error(tmp_path: Path, capsys, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    t0 = time.monotonic()
    err = _one_line_error(capsys, ["gate", "scan", "--image", str(path)])
    assert time.monotonic() - t0 < 5, "a refused image must be refused before decoding"
    assert name in err, err
    return err


def test_a_decompression_bomb_is_refused_before_it_is_decoded(tmp_path, capsys):
    # 144 megapixels from a file of about 140 KB (30,000 x 30,000 took 2.7 GB and 25 s)
    err = _scan_error(tmp_path, capsys, "bomb.png", _png(12_000, 12_000))
    assert "too large" in err


def test_an_image_header_beyond_opencvs_own_limit_is_an_error_not_a_traceback(tmp_path, capsys):
    _scan_error(tmp_path, capsys, "huge.pgm", b"P5\n99999 99999\n255\n" + b"\x00" * 64)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("noise.png", bytes(range(256)) * 40),
        ("nul.jpg", b"\x00" * 4096),
        ("text.png", b"SES1.not.an.image\n" * 100),
    ],
)
def test_garbage_image_files_are_one_line_errors(tmp_path, capsys, name, data):
    _scan_error(tmp_path, capsys, name, data)


def test_signed_numbers_are_not_formulas(tmp_path, capsys):
    from sesame.common.tokens import generate_keypair

    keys = generate_keypair(tmp_path / "keys")
    csv_path = tmp_path / "reg.csv"
    csv_path.write_text(HEADER.strip() + ",phone\n" + "Ada,public,all,1,-,75,+33 1 40 00 00 00\n")
    out = tmp_path / "badges"
    assert main(["badges", "issue", "--key", str(keys[0]), "--registrations", str(csv_path),
                 "--out", str(out)]) in (0, None)  # fmt: skip
    assert "+33 1 40 00 00 00" in (out / "manifest.csv").read_text()


@pytest.mark.parametrize("at", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_scan_at_a_time_no_calendar_holds_is_denied_with_a_reason(tmp_path, capsys, at):
    """`--at` is the tester's clock; decide() gets it as `now` and must answer, not raise."""
    import json

    import segno

    from sesame.common.tokens import Claims, generate_keypair, load_private_key, sign

    priv, pub = generate_keypair(tmp_path / "keys")
    token = sign(Claims("B000001", "public", None, 1), load_private_key(priv))
    segno.make(token, error="m").save(str(tmp_path / "badge.png"), scale=6)
    argv = ["gate", "scan", "--image", str(tmp_path / "badge.png"), "--venue", str(VENUE_FILE),
            "--gate", "churchill-in-1", "--pubkey", str(pub), "--at", at]  # fmt: skip
    code = main(argv)
    out = json.loads(capsys.readouterr().out)
    assert (out["decision"], out["reason"]) == ("DENIED", "OUTSIDE_OPENING_HOURS"), out
    assert code in (0, 1)


def test_a_revocation_file_of_one_huge_line_gets_a_short_error(tmp_path, capsys):
    from sesame.common.tokens import generate_keypair

    _, pub = generate_keypair(tmp_path / "keys")
    (tmp_path / "revoked.txt").write_text("[" * 200_000 + "\n")
    (tmp_path / "x.png").write_bytes(_png(64, 64))
    err = _one_line_error(capsys, ["gate", "scan", "--image", str(tmp_path / "x.png"),
                                   "--venue", str(VENUE_FILE), "--gate", "churchill-in-1",
                                   "--pubkey", str(pub),
                                   "--revoked", str(tmp_path / "revoked.txt")])  # fmt: skip
    assert "revoked.txt:1" in err and len(err) < 500, err[:200]
