"""The plan of the venue in the venue file: zone outlines and lane positions, in metres.
Strict like the rest of the file: a bad outline is refused with one line naming the file,
the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sesame.common.venue import ConfigError, load_venue
from tests.fixtures.dashboard import VENUE_FILE


def polygon_area(points) -> float:
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1)
                   in zip(points, points[1:] + points[:1], strict=True))) / 2  # fmt: skip


def test_the_reference_venue_has_a_plan():
    v = load_venue(VENUE_FILE)
    assert v.plan is not None
    assert set(v.plan.zones) == set(v.zones) and set(v.plan.lanes) == set(v.gates)
    # the outlines keep each space's stated floor area (approximate shapes)
    for z in v.zones.values():
        assert polygon_area(v.plan.zones[z.id].outline) == pytest.approx(z.area_m2, rel=0.1)
    # the Churchill and Clemenceau lanes sit on the Nef's outline
    nef = v.plan.zones["nef"].outline
    xs, ys = [p[0] for p in nef], [p[1] for p in nef]
    for g in v.gates.values():
        if g.id.startswith(("churchill", "clemenceau")):
            x, y = v.plan.lanes[g.id].position
            assert x in (min(xs), max(xs)) or y in (min(ys), max(ys)), g.id


BAD = [
    ("outline = [[0, 0], [1, 1]]", "plan.zones.nef.outline: an outline needs at least 3 points"),
    ("outline = [[0, 0], [1, 1], [2, 2]]", "plan.zones.nef.outline: the outline encloses no area"),
    ('outline = [[0, 0], [1, "x"], [2, 0]]', "nef.outline[1][1]: Input should be a valid"),
    ("outline = [[0, 0], [1e9, 0], [0, 1]]", "plan.zones.nef.outline[1][0]: Input should be less"),
    ("outline = [[0, 0], [nan, 0], [0, 1]]", "nef.outline[1][0]: Input should be a finite"),
    ('outline = "square"', "plan.zones.nef.outline: Input should be a valid"),
    ("outline = [[0, 0, 0], [1, 0], [0, 1]]", "nef.outline[0]: Tuple should have at most"),
]


@pytest.mark.parametrize(("line", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_outline_is_refused_on_one_line(tmp_path: Path, line, message):
    text = VENUE_FILE.read_text(encoding="utf-8")
    old = "outline = [[30, 20], [255, 20], [255, 80], [30, 80]]"
    assert old in text
    f = tmp_path / "venue.toml"
    f.write_text(text.replace(old, line), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_venue(f)
    lineno = next(i for i, ln in enumerate(f.read_text().splitlines(), 1) if ln.startswith(line))
    assert str(e.value).startswith(f"{f}:"), str(e.value)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert e.value.line == lineno


def test_a_bad_lane_position_is_refused(tmp_path: Path):
    text = VENUE_FILE.read_text(encoding="utf-8")
    f = tmp_path / "venue.toml"
    f.write_text(text.replace("position = [120, 80]", "position = [120]"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"plan\.lanes\.churchill-in-1\.position"):
        load_venue(f)
    f.write_text(text.replace("salon-in-1 = {", "salon-in-9 = {"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"plan\.lanes\.salon-in-9: unknown gate lane"):
        load_venue(f)
    f.write_text(text.replace("[plan.zones.balcons]", "[plan.zones.balcon]"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"plan\.zones\.balcon: unknown zone"):
        load_venue(f)


def test_a_venue_without_a_plan_is_still_valid(tmp_path: Path):
    text = VENUE_FILE.read_text(encoding="utf-8")
    f = tmp_path / "venue.toml"
    f.write_text(text[: text.index("[plan.")], encoding="utf-8")
    assert load_venue(f).plan is None
