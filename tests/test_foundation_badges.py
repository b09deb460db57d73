"""Issuing badges from registrations: what organisers and gates rely on.

Every PNG decodes to exactly its token through two independent decoders (zxing-cpp, ZBar);
the manifest is the counter's registry; sheets print the same codes; a bad CSV row is
reported as FILE:LINE and nothing is written, and a failure half-way leaves nothing behind.
"""

from __future__ import annotations

import base64
import json
import zlib
from datetime import date
from pathlib import Path

import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, PdfParser
from pyzbar import pyzbar

from sesame.badges import issue as badges
from sesame.badges.registrations import RegistrationError, parse_registrations, read_registrations
from sesame.cli import main
from sesame.common import tokens
from tests.fixtures.foundation import EXAMPLE_REGISTRATIONS, REFERENCE_VENUE

HEADER = "name,category,days,group_size,organisation,department\n"


def _zxing(img: Image.Image) -> list[str]:
    # QR only, as a lane reads (sesame/qr.py, sesame/gate/decode.py): over a whole printed sheet
    # zxing-cpp otherwise now and then reads a 1D barcode in the text (seen: 'A01D').
    found = zxingcpp.read_barcodes(img, formats=zxingcpp.BarcodeFormat.QRCode)
    return sorted(r.text for r in found if r.valid)


def _zbar(img: Image.Image) -> list[str]:
    # QR only, as a lane reads: ZBar otherwise now and then "finds" a 1D barcode in the
    # printed name or category under the code (seen: '916487' read as a DataBar).
    found = pyzbar.decode(img.convert("L"), symbols=[pyzbar.ZBarSymbol.QRCODE])
    return sorted(d.data.decode("ascii") for d in found)


def _pdf_pages(path: Path) -> list[Image.Image]:
    """The page images of a sheets PDF, read back with Pillow's PDF parser."""
    pdf = PdfParser.PdfParser(str(path))
    try:
        pages = []
        for ref in pdf.pages:
            page = pdf.read_indirect(ref)
            stream = pdf.read_indirect(page[b"Resources"][b"XObject"][b"Im0"])
            d = stream.dictionary
            assert (d.BitsPerComponent, d.Filter) == (1, PdfParser.PdfName("FlateDecode"))
            pages.append(Image.frombytes("1", (d.Width, d.Height), zlib.decompress(stream.buf)))
        return pages
    finally:
        pdf.close()


# -- issued output ------------------------------------------------------------------------


def test_manifest_is_the_registry(issued_badges):
    rows = issued_badges.rows
    regs = read_registrations(EXAMPLE_REGISTRATIONS)
    assert len(rows) == len(regs.rows) == 9
    assert list(rows[0]) == [*badges.MANIFEST_COLUMNS, "channel"]  # extra column kept
    assert [r["badge_id"] for r in rows] == [f"B{n:06d}" for n in range(1, 10)]
    ring = issued_badges.keys.ring
    for row, reg in zip(rows, regs.rows, strict=True):
        claims = tokens.verify(row["token"], ring)
        assert claims.badge == row["badge_id"]
        assert claims.category == row["category"] == reg.category
        assert claims.group == int(row["group_size"]) == reg.group_size
        assert row["name"] == reg.name and row["department"] == reg.department
        # no personal data in the token
        payload = base64.urlsafe_b64decode(row["token"].split(".")[1] + "==").decode()
        for personal in (reg.name, reg.organisation):
            if personal:
                assert personal not in payload
    by_id = {r["badge_id"]: r for r in rows}
    school = by_id["B000003"]
    assert (school["category"], school["group_size"], school["days"]) == (
        "school",
        "28",
        "2018-11-22",
    )
    assert tokens.verify(school["token"], ring).days == (date(2018, 11, 22),)
    assert by_id["B000006"]["days"] == "2018-11-23;2018-11-24"
    assert (
        by_id["B000002"]["days"] == "all"
        and tokens.verify(by_id["B000002"]["token"], ring).days is None
    )
    assert by_id["B000003"]["channel"] == "school programme"


def test_every_png_decodes_to_exactly_its_token_with_two_decoders(issued_badges):
    """zxing-cpp and ZBar directly, and the gate's own file decoder (gate/decode.py) as a lane
    reads a badge; `sesame badges verify --image` reads through sesame/qr.py."""
    from sesame.common.qr import decode_file as verify_decode
    from sesame.gate.decode import decode_file as gate_decode

    pngs = sorted((issued_badges.out / "png").glob("*.png"))
    assert [p.stem for p in pngs] == [r["badge_id"] for r in issued_badges.rows]
    for row, png in zip(issued_badges.rows, pngs, strict=True):
        img = Image.open(png)
        assert _zxing(img) == [row["token"]], png.name
        assert _zbar(img) == [row["token"]], png.name
        assert gate_decode(png, "zxing") == [row["token"]], png.name
        assert gate_decode(png, "pyzbar") == [row["token"]], png.name
        assert verify_decode(png) == row["token"]


def test_pngs_still_decode_when_printed_small(issued_badges):
    """A badge printed 25 mm wide and scanned at 300 dpi: ~295 px for the whole code."""
    for row in issued_badges.rows[:3]:
        img = Image.open(issued_badges.out / "png" / f"{row['badge_id']}.png").convert("L")
        small = img.resize((295, 295), Image.Resampling.BILINEAR)
        assert _zxing(small) == [row["token"]]
        assert _zbar(small) == [row["token"]]


def test_sheets_pdf_prints_every_code(issued_badges):
    pages = _pdf_pages(issued_badges.out / badges.SHEETS)
    assert len(pages) == 1 and pages[0].size == (2480, 3508)  # A4 at 300 dpi
    tokens_ = sorted(r["token"] for r in issued_badges.rows)
    assert _zxing(pages[0]) == tokens_
    assert _zbar(pages[0]) == tokens_


def test_sheets_paginate(tmp_path, badge_keypair):
    csv_text = HEADER + "".join(f"Visitor {i},public,all,1,,\n" for i in range(32))
    regs = parse_registrations(csv_text.encode(), "r.csv")
    ticks: list[int] = []
    result = badges.issue(
        regs, badge_keypair.key, tmp_path / "out", pdf=True, progress=ticks.append
    )
    assert sum(ticks) == 32  # what the progress bar counts: badges done
    pages = _pdf_pages(tmp_path / "out" / badges.SHEETS)
    assert result.pages == len(pages) == 3  # 15 a page
    found = [t for p in pages for t in _zxing(p)]
    assert sorted(found) == sorted(b.token for b in result.badges)


def test_qr_size_at_25_mm(issued_badges):
    longest = max((r["token"] for r in issued_badges.rows), key=len)
    facts = badges.qr_facts(longest)
    assert facts["version"] <= 10
    assert facts["module_mm"] >= 0.38  # above the 0.25-0.33 mm that 2D lane scanners resolve


# -- registration CSV ---------------------------------------------------------------------

BAD_ROWS = [
    ("empty name", HEADER + ",public,all,1,,\n", 2, "name: empty"),
    ("unknown category", HEADER + "A,public,all,1,,\nB,vip,all,1,,\n", 3, "unknown category 'vip'"),
    ("day outside the event", HEADER + "A,public,2018-11-26,1,,\n", 2, "not an event day"),
    ("bad date", HEADER + "A,public,2018-11-31,1,,\n", 2, "not a real date"),
    ("date in another format", HEADER + "A,public,22/11/2018,1,,\n", 2, "not an ISO date"),
    ("date listed twice", HEADER + "A,public,2018-11-22;2018-11-22,1,,\n", 2, "listed twice"),
    ("empty days", HEADER + "A,public,,1,,\n", 2, "days: empty"),
    ("group size zero", HEADER + "A,school,2018-11-22,0,,\n", 2, "group_size"),
    ("group size too big", HEADER + "A,school,2018-11-22,501,,\n", 2, "group_size"),
    ("group size not a number", HEADER + "A,school,2018-11-22,trente,,\n", 2, "whole number"),
    # a class bigger than a lane's lease low-water mark (32) could never pass into the Nef
    ("group beyond the lease", HEADER + "A,school,2018-11-22,33,,\n", 2, "low_water = 32"),
    ("too many fields", HEADER + "A,public,all,1,,,x\n", 2, "7 fields"),
    ("too few fields", HEADER + "A,public,all\n", 2, "3 fields"),
    ("missing column", "name,category,group_size\nA,public,1\n", 1, "missing column(s) days"),
    ("duplicate column", "name,category,days,name\nA,public,all,B\n", 1, "appears twice"),
    ("empty file", "", None, "empty file"),
    ("header only", HEADER, 1, "no registrations"),
    ("not UTF-8", HEADER + "A,public,all,1,,\n" + "Chlo\xe9,public,all,1,,\n", 3, "not UTF-8"),
    ("unterminated quote", HEADER + 'A,public,all,1,,\n"B,public,all,1,,\n', 3, "unreadable CSV"),
    ("control character", HEADER + "A\x07,public,all,1,,\n", 2, "control character"),
    ("line after a multi-line cell", HEADER + '"A\nB",public,all,1,,\nC,vip,all,1,,\n', 4, "vip"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "text", "line", "problem"), BAD_ROWS, ids=[b[0] for b in BAD_ROWS]
)
def test_bad_registration_file_writes_nothing(
    tmp_path, capsys, badge_keypair, what, text, line, problem
):
    csv_path = tmp_path / "reg.csv"
    csv_path.write_bytes(text.encode("latin-1") if "\xe9" in text else text.encode("utf-8"))
    out = tmp_path / "out"
    code = main([
        "badges", "issue", "--key", str(badge_keypair.private), "--registrations", str(csv_path),
        "--out", str(out), "--pdf", "--venue", str(REFERENCE_VENUE),
    ])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    where = f"{csv_path}:{line}:" if line else f"{csv_path}:"
    assert where in err and problem in err, err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reg.csv"]  # no temporary leftovers


def test_several_bad_rows_are_counted_on_the_one_line(reference_venue):
    text = HEADER + "A,vip,all,1,,\nB,public,all,1,,\n,public,all,1,,\nC,public,2018-01-01,1,,\n"
    with pytest.raises(RegistrationError) as err:
        parse_registrations(text.encode(), "r.csv", reference_venue)
    assert err.value.line == 2
    assert str(err.value).startswith("r.csv:2: category: unknown category 'vip'")
    assert str(err.value).endswith("(and 2 more bad rows)")


def test_spreadsheet_variants_are_read(reference_venue):
    """Excel's UTF-8 BOM, semicolon separators, CRLF, blank lines, upper-case header, the
    French spelling of a column, columns in another order, optional columns missing."""
    text = (
        "\ufeffDays;Name;Category;Département\r\n"
        "\r\n"
        '"2018-11-22;2018-11-23";Élodie Brun;PUBLIC;2A\r\n'
        "all;Jean Durand;staff;75\r\n"
    )
    regs = parse_registrations(text.encode("utf-8"), "r.csv", reference_venue)
    assert [(r.name, r.category, r.group_size, r.line) for r in regs.rows] == [
        ("Élodie Brun", "public", 1, 3),
        ("Jean Durand", "staff", 1, 4),
    ]
    assert regs.rows[0].days == (date(2018, 11, 22), date(2018, 11, 23))
    assert [r.department for r in regs.rows] == ["2A", "75"] and regs.extra_columns == ()


def test_every_event_day_is_stored_as_all(reference_venue):
    text = HEADER + "A,public,2018-11-25;2018-11-22;2018-11-24;2018-11-23,1,,\n"
    (row,) = parse_registrations(text.encode(), "r.csv", reference_venue).rows
    assert row.days is None and row.days_text() == "all"
    # without a venue the dates are kept as given (sorted)
    (row,) = parse_registrations(text.encode(), "r.csv").rows
    assert row.days == tuple(date(2018, 11, d) for d in (22, 23, 24, 25))


# -- issuing ------------------------------------------------------------------------------


def test_failure_half_way_leaves_nothing(tmp_path, badge_keypair, monkeypatch):
    regs = read_registrations(EXAMPLE_REGISTRATIONS)
    real, calls = badges.badge_sheets.write_sheets, []

    def failing_sheets(path, items):
        calls.append(path)
        real(path, items)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(badges.badge_sheets, "write_sheets", failing_sheets)
    with pytest.raises(OSError):
        badges.issue(regs, badge_keypair.key, tmp_path / "out", pdf=True)
    assert calls  # it got as far as the last step
    assert list(tmp_path.iterdir()) == []


def test_refuses_a_non_empty_output_directory(tmp_path, capsys, badge_keypair):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier batch")
    args = ["badges", "issue", "--key", str(badge_keypair.private), "--registrations",
            str(EXAMPLE_REGISTRATIONS), "--out", str(out)]  # fmt: skip
    assert main(args) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    # an existing empty directory is fine
    (out / "keep.txt").unlink()
    assert main(args) == 0
    assert (out / badges.MANIFEST).exists()


def test_prefix_and_start_continue_a_numbering(tmp_path, badge_keypair):
    regs = read_registrations(EXAMPLE_REGISTRATIONS)
    result = badges.issue(regs, badge_keypair.key, tmp_path / "o", prefix="EX", start=101)
    assert [b.badge_id for b in result.badges][:2] == ["EX000101", "EX000102"]
    # deterministic: same registrations, same ids
    again = badges.make_tokens(regs.rows, badge_keypair.key, prefix="EX", start=101)
    assert [b.badge_id for b in again] == [b.badge_id for b in result.badges]
    with pytest.raises(badges.BadgeError):
        badges.badge_ids(3, prefix="no spaces")


def test_large_batch_through_the_progress_bar_path(tmp_path, capsys, badge_keypair):
    n = 220  # above the progress-bar threshold
    csv_path = tmp_path / "big.csv"
    csv_path.write_text(HEADER + "".join(f"V{i},public,all,1,,\n" for i in range(n)))
    out = tmp_path / "out"
    code = main(["badges", "issue", "--key", str(badge_keypair.private), "--registrations",
                 str(csv_path), "--out", str(out)])  # fmt: skip
    assert code == 0
    assert f"issued {n} badges B000001…B000{n}" in capsys.readouterr().out
    assert len(list((out / "png").iterdir())) == n
    assert len(badges.read_manifest(out / badges.MANIFEST)) == n


# -- keys, verify, revoke on the command line -----------------------------------------------


def test_keygen_command(tmp_path, capsys):
    out = tmp_path / "keys"
    assert main(["badges", "keygen", "--out", str(out)]) == 0
    priv = out / tokens.PRIVATE_NAME
    assert priv.stat().st_mode & 0o777 == 0o600
    before = priv.read_bytes()
    capsys.readouterr()
    assert main(["badges", "keygen", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refusing to overwrite" in err
    assert priv.read_bytes() == before
    # --out naming a file: said in words, not "[Errno 17] File exists"
    assert main(["badges", "keygen", "--out", str(priv)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"{priv}: exists and is not a directory"), err


def _verify(capsys, *args) -> tuple[int, str, str]:
    code = main(["badges", "verify", *args])
    cap = capsys.readouterr()
    return code, cap.out.strip(), cap.err.strip()


def test_verify_command(issued_badges, capsys, tmp_path):
    pub = str(issued_badges.keys.public)
    row = issued_badges.rows[2]
    code, out, _ = _verify(capsys, "--pubkey", pub, row["token"])
    assert code == 0
    assert json.loads(out) == {
        "badge": "B000003",
        "category": "school",
        "days": ["2018-11-22"],
        "group": 28,
        "key_id": tokens.key_id(issued_badges.keys.key.public_key()),
    }
    tampered = row["token"][:-3] + ("AAA" if row["token"][-3:] != "AAA" else "BBB")
    assert _verify(capsys, "--pubkey", pub, tampered)[:2] == (1, "BAD_SIGNATURE")
    assert _verify(capsys, "--pubkey", pub, "hello")[:2] == (1, "MALFORMED")
    other_priv, other_pub = tokens.generate_keypair(tmp_path / "other")
    assert _verify(capsys, "--pubkey", str(other_pub), row["token"])[:2] == (1, "UNKNOWN_KEY")
    # --image: the PNG, and an image without a code
    png = issued_badges.out / "png" / "B000003.png"
    code, out, _ = _verify(capsys, "--pubkey", pub, "--image", str(png))
    assert code == 0 and json.loads(out)["badge"] == "B000003"
    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    assert _verify(capsys, "--pubkey", pub, "--image", str(blank))[:2] == (1, "MALFORMED")
    # usage errors: exit 2 with one line
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    for args in (
        ("--pubkey", pub, "--image", str(not_image)),
        ("--pubkey", pub, "--image", str(tmp_path / "missing.png")),
        ("--pubkey", str(tmp_path / "missing.pub"), row["token"]),
        ("--pubkey", pub),
        ("--pubkey", pub, "--image", str(png), row["token"]),
    ):
        code, out, err = _verify(capsys, *args)
        assert code == 2 and len(err.splitlines()) == 1, args


def test_verify_an_image_path_given_as_the_token_says_use_image(tmp_path, capsys):
    png = tmp_path / "B000003.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    code, out, err = _verify(capsys, str(png))
    assert code == 2 and out == "" and f"use --image {png}" in err, err


def test_revoke_command(tmp_path, capsys):
    from sesame.common import wire

    lst = tmp_path / "revoked.json"
    assert main(["badges", "revoke", "B000002", "B000003", "--list", str(lst)]) == 0
    revs = wire.parse_revocations(lst.read_bytes())
    assert revs and revs.badges == ("B000002", "B000003")
    assert main(["badges", "revoke", "B000003", "B000001", "--list", str(lst)]) == 0
    assert wire.parse_revocations(lst.read_bytes()).badges == ("B000001", "B000002", "B000003")
    assert "1 badge(s) revoked, 1 already" in capsys.readouterr().out
    before = lst.read_bytes()
    for args in (["not an id"], []):
        assert main(["badges", "revoke", *args, "--list", str(lst)]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert lst.read_bytes() == before
    # a damaged list is refused, not overwritten
    lst.write_text("{garbage")
    assert main(["badges", "revoke", "B000009", "--list", str(lst)]) == 2
    assert "not a revocation list" in capsys.readouterr().err
    assert lst.read_text() == "{garbage"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["revoked.json"]


def test_revoke_refuses_a_bad_broker_option_before_changing_the_list(tmp_path, capsys):
    """A typo in --broker/--credentials/--venue is a usage error (exit 2) and leaves the
    list as it was, so the user can simply run the corrected command again."""
    lst = tmp_path / "revoked.json"
    assert main(["badges", "revoke", "B000001", "--list", str(lst)]) == 0
    before = lst.read_bytes()
    capsys.readouterr()
    for bad in (
        ["--broker", "localhost:1883"],
        ["--credentials", str(tmp_path / "missing" / "admin.json")],
        ["--broker", "mqtt://127.0.0.1:1883", "--venue", str(tmp_path / "no-venue.toml")],
    ):
        assert main(["badges", "revoke", "B000002", "--list", str(lst), *bad]) == 2, bad
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "saved" not in err, (bad, err)
        assert lst.read_bytes() == before, bad


_cells = st.sampled_from(
    ["", "all", "ALL", "public", "school", "vip", "2018-11-22", "2018-11-22;2018-11-25",
     "2018-02-30", "1", "0", "501", "-3", "x", '"', "a,b", "é", "\x00", "\ufeff", " ; "]
) | st.text(max_size=10)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    header=st.permutations(["name", "category", "days", "group_size", "organisation"]),
    rows=st.lists(st.lists(_cells, min_size=0, max_size=7), max_size=6),
    sep=st.sampled_from([",", ";"]),
    raw_tail=st.binary(max_size=8),
)
def test_any_registration_file_is_refused_cleanly(reference_venue, header, rows, sep, raw_tail):
    """Whatever the file holds, parsing returns registrations or a RegistrationError with a
    line inside the file; never another exception."""
    text = sep.join(header) + "\n" + "".join(sep.join(r) + "\n" for r in rows)
    raw = text.encode("utf-8", "surrogatepass") + raw_tail
    try:
        regs = parse_registrations(raw, "r.csv", reference_venue)
    except RegistrationError as e:
        assert str(e).startswith("r.csv")
        assert e.line is None or 1 <= e.line <= raw.count(b"\n") + 1
    else:
        for r in regs.rows:
            assert r.name and r.category in reference_venue.categories and 1 <= r.group_size <= 500


def test_bad_key_or_venue_is_one_line(tmp_path, capsys, badge_keypair):
    base = ["badges", "issue", "--registrations", str(EXAMPLE_REGISTRATIONS), "--out"]
    broken_venue = tmp_path / "v.toml"
    broken_venue.write_text("[venue\n")
    for extra in (
        ["--key", str(badge_keypair.public)],  # the public key where the private one goes
        ["--key", str(tmp_path / "missing.key")],
        ["--key", str(EXAMPLE_REGISTRATIONS)],  # not a key at all
        ["--key", str(badge_keypair.private), "--venue", str(broken_venue)],
        ["--key", str(badge_keypair.private), "--prefix", "9"],
    ):
        out = tmp_path / "out"
        assert main([*base, str(out), *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("sesame badges: error: "), err
        assert not out.exists()


def test_revoked_ids_reads_both_list_shapes(tmp_path):
    lst = tmp_path / "revoked.json"
    badges.revoke(lst, ["B000002", "B000007"])
    assert badges.revoked_ids(lst) == {"B000002", "B000007"}
    txt = tmp_path / "revoked.txt"
    txt.write_text("# lost at the cloakroom\nB000002\n\n  B000009  \n")
    assert badges.revoked_ids(txt) == {"B000002", "B000009"}
    for bad in ('{"v":1,"badges":"B1"}', "B 1\n", '["B1"]'):
        txt.write_text(bad)
        with pytest.raises(badges.BadgeError):
            badges.revoked_ids(txt)
