"""The venue file: the reference venue loads, and every kind of bad file is refused with one
line naming the file, the key (and the line where there is one), exit code 2."""

from __future__ import annotations

import copy
import re
import tomllib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sesame.cli import main
from sesame.common.venue import OUTSIDE, ConfigError, Reentry, load_venue, parse_venue
from tests.fixtures.foundation import REFERENCE_VENUE


def test_reference_venue_model(reference_venue):
    v = reference_venue
    assert v.id == "grand-palais"
    assert {"nef", "salon-honneur", "balcons"} <= set(v.zones)
    assert v.zones["nef"].capacity == 11000
    assert len(v.gates) >= 12
    assert [d.date.isoformat() for d in v.days] == [
        "2018-11-22",
        "2018-11-23",
        "2018-11-24",
        "2018-11-25",
    ]
    assert set(v.categories) >= {
        "public",
        "professional",
        "school",
        "exhibitor",
        "speaker",
        "press",
        "staff",
    }
    assert v.categories["school"].schoolchildren
    assert v.categories["staff"].reentry is Reentry.FREE
    # exits: to outside, or back into the zone a space opens onto
    assert v.gates["churchill-out-1"].is_exit and v.gates["salon-out-1"].is_exit
    assert not v.gates["churchill-in-1"].is_exit and not v.gates["salon-in-1"].is_exit
    assert all(g.to_zone != OUTSIDE for g in v.entry_gates())
    # the model is immutable
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type is internal
        v.zones["nef"].capacity = 1


def test_days_follow_the_venue_time_zone(reference_venue):
    v = reference_venue
    # 23:30 UTC on the 21st is already the 22nd in Paris (UTC+1 in November)
    assert v.day_of(datetime(2018, 11, 21, 23, 30, tzinfo=UTC)).date.isoformat() == "2018-11-22"
    assert v.day_of(datetime(2018, 11, 21, 22, 30, tzinfo=UTC)) is None
    opens, closes = v.opening_window(v.days[0], early_minutes=90)
    assert opens.isoformat() == "2018-11-22T07:30:00+01:00"
    assert closes.isoformat() == "2018-11-22T18:00:00+01:00"


def test_config_check_prints_a_summary(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich would shorten cells to fit 80 columns
    assert main(["config", "check", str(REFERENCE_VENUE)]) == 0
    out = capsys.readouterr().out
    for word in ("Nef", "11,000", "churchill-in-1", "2018-11-25", "Gate lanes", "OK"):
        assert word in out


@pytest.mark.parametrize("columns", ["80", None], ids=["80-column terminal", "pipe"])
def test_config_check_never_cuts_an_id(capsys, monkeypatch, columns):
    """Ids are what the user types next (`--gate clemenceau-out-1`): whole in any width."""
    if columns:
        monkeypatch.setenv("COLUMNS", columns)
    else:
        monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["config", "check", str(REFERENCE_VENUE)]) == 0
    out = capsys.readouterr().out
    v = load_venue(REFERENCE_VENUE)
    for ident in [*v.gates, *v.zones, *v.categories]:
        assert re.search(rf"[│ ]{re.escape(ident)}[ │]", out), ident


# (description, text edit (old, new), key the message must name, line expected or None)
BAD_FILES = [
    ("TOML syntax error", ('name = "Nef"', 'name = "Nef'), None, 39),
    ("unknown key", ("near_full = 0.9\n", "near_fulll = 0.9\n"), "zones.nef.near_fulll", 44),
    (
        "gate naming an unknown zone",
        ('to = "salon-honneur"', 'to = "salon"'),
        "gates.salon-in-1.to",
        126,
    ),
    ("zero capacity", ("capacity = 11000", "capacity = 0"), "zones.nef.capacity", 43),
    ("negative capacity", ("capacity = 800", "capacity = -800"), "zones.balcons.capacity", 63),
    ("capacity as text", ("capacity = 800", 'capacity = "800"'), "zones.balcons.capacity", 63),
    ("overlapping days", ("date = 2018-11-23", "date = 2018-11-22"), "days[1].date", 20),
    ("unordered days", ("date = 2018-11-23", "date = 2018-11-21"), "days[1].date", 20),
    (
        "closing before opening",
        ("opens = 10:00:00\ncloses = 16:00:00", "opens = 17:00:00\ncloses = 16:00:00"),
        "days[2].closes",
        28,
    ),
    (
        "opening time with a UTC offset",
        ("opens = 10:00:00\ncloses = 16:00:00", 'opens = "10:00:00+01:00"\ncloses = 16:00:00'),
        "days[2].opens",
        27,
    ),
    (
        "category allowed into a zone that does not exist",
        ('zones = ["nef", "balcons"]\nreentry = "antipassback"\n\n[categories.professional]',
         'zones = ["nef", "galeries"]\nreentry = "antipassback"\n\n[categories.professional]'),
        "categories.public.zones",
        155,
    ),  # fmt: skip
    (
        "unknown time zone",
        ('timezone = "Europe/Paris"', 'timezone = "Mars/Olympus"'),
        "venue.timezone",
        8,
    ),
    ("bad zone id", ("[zones.balcons]", "[zones.Balcons]"), "zones.Balcons", 57),
    ("zone named outside", ("[zones.balcons]", "[zones.outside]"), "zones.outside", None),
    ("missing capacity", ("capacity = 1000\n", ""), "zones.salon-honneur.capacity", None),
    (
        "zone parents in a cycle",
        ('[zones.nef]\nname = "Nef"', '[zones.nef]\nparent = "balcons"\nname = "Nef"'),
        "zones.nef.parent",
        None,
    ),
    (
        "lane joining a zone to itself",
        ('from = "nef"\nto = "salon-honneur"', 'from = "nef"\nto = "nef"'),
        "gates.salon-in-1.to",
        None,
    ),
]  # fmt: skip


@pytest.mark.parametrize(("what", "edit", "key", "line"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_venue_file_is_refused(tmp_path, capsys, venue_text, what, edit, key, line):
    old, new = edit
    assert old in venue_text, f"test edit no longer applies: {old!r}"
    path = tmp_path / "venue.toml"
    path.write_text(venue_text.replace(old, new, 1), encoding="utf-8")

    with pytest.raises(ConfigError) as err:
        load_venue(path)
    e = err.value
    assert e.file == str(path)
    if key is not None:
        assert e.key == key
    if line is not None:
        assert e.line == line

    # the command line: exit 2, exactly one line on stderr naming file, key and line
    assert main(["config", "check", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert str(path) in lines[0]
    if key is not None:
        assert key in lines[0]
    if line is not None:
        assert f"{path}:{line}:" in lines[0]


def test_syntax_error_names_toml(tmp_path):
    path = tmp_path / "v.toml"
    path.write_text('[venue]\nid = "x"\nname = \n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_venue(path)
    assert err.value.line == 3 and "TOML syntax" in str(err.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "No such file"), (b"\xff\xfe[venue]\n", "not UTF-8"), (b"", "required key")],
)
def test_unreadable_files(tmp_path, capsys, content, problem):
    path = tmp_path / "v.toml"
    if content is not None:
        path.write_bytes(content)
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and problem in err and str(path) in err


def test_one_line_error_from_the_installed_command(tmp_path, venue_text):
    """The real console script, not just main(): exit status and a single stderr line."""
    import subprocess
    import sys

    path = tmp_path / "venue.toml"
    path.write_text(venue_text.replace("capacity = 11000", "capacity = 0"), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "sesame", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert re.fullmatch(
        rf"sesame config: error: {re.escape(str(path))}:43: zones\.nef\.capacity: .+\n", proc.stderr
    )


# -- hostile venue files -------------------------------------------------------------------

_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats() | st.text(max_size=12),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=8,
)


def _paths(obj, prefix=()):
    """Every (path) to a value in nested dicts/lists."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


REFERENCE_DATA = tomllib.loads(REFERENCE_VENUE.read_text(encoding="utf-8"))
PATHS = [p for p in _paths(REFERENCE_DATA) if p]


@settings(max_examples=300, deadline=None)
@given(edits=st.lists(st.tuples(st.sampled_from(PATHS), _values), min_size=1, max_size=3))
def test_any_damaged_venue_is_refused_cleanly(edits):
    """Replace values anywhere in the reference venue with anything: the loader returns a
    venue or raises ConfigError, never another exception."""
    data = copy.deepcopy(REFERENCE_DATA)
    for path, value in edits:
        target = data
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed this place
    text = REFERENCE_VENUE.read_text(encoding="utf-8")
    try:
        parse_venue(data, "venue.toml", text)
    except ConfigError as e:
        assert e.file == "venue.toml" and str(e).startswith("venue.toml")
