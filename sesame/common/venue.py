"""The venue model: zones joined by gate lanes, event days, badge categories.

Loaded from TOML into frozen pydantic models; unknown keys are refused so a typo fails
loudly. Every problem becomes one ConfigError naming the file, the key and, where it can
be found, the line.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

OUTSIDE = "outside"
_ID = r"^[a-z0-9][a-z0-9_-]{0,39}$"
# Bounds that keep every figure within what the wire carries (sesame.wire: occupancy and
# capacity up to 10**9, timestamps 1900-2900) and every date computable in any time zone.
MAX_PEOPLE = 10**9
FIRST_YEAR, LAST_YEAR = 1971, 2899
# The plan of the venue (the dashboard draws it): metres, x to the right, y downwards.
PLAN_LIMIT_M = 10_000.0
Metres = Annotated[
    float, Field(ge=-PLAN_LIMIT_M, le=PLAN_LIMIT_M, allow_inf_nan=False, strict=True)
]
Point = tuple[Metres, Metres]
MAX_OUTLINE_POINTS = 200


class ConfigError(Exception):
    """A refused venue file: where and why, printable on one line."""

    def __init__(self, file: str, key: str, problem: str, line: int | None = None):
        self.file, self.key, self.problem, self.line = file, key, problem, line
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")


class Reentry(StrEnum):
    FREE = "free"  # any number of entries
    ANTIPASSBACK = "antipassback"  # must be seen leaving before entering again
    ONCE = "once"  # a single entry from outside per day


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Zone(_Model):
    id: str = Field("", description="zone id, the key of its table; filled by the loader")
    name: str = Field(description="name shown to staff and officers")
    area_m2: int | None = Field(
        None, gt=0, le=MAX_PEOPLE, strict=True, description="public floor area, for the record"
    )
    capacity: int = Field(
        gt=0, le=MAX_PEOPLE, strict=True, description="legal maximum number of people inside"
    )
    near_full: float = Field(
        0.9, gt=0, le=1, description="fraction of capacity at which the zone is near_full"
    )
    offline_policy: Literal["lease", "open"] = Field(
        "lease",
        description="lease: entry gates grant only their allowance; open: count later",
    )
    parent: str | None = Field(
        None, description="zone this one opens onto; a passage into it is an exit"
    )
    alert_hysteresis: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="fraction of capacity a zone must fall below a threshold (near_full, "
        "full) before the dashboard ends its alert, so a zone hovering at a threshold "
        "raises one alert, not one per crossing",
    )

    @field_validator("alert_hysteresis")
    @classmethod
    def _hysteresis_below_near_full(cls, v: float, info) -> float:
        near = info.data.get("near_full")
        if near is not None and v >= near:
            raise ValueError(f"must be below near_full ({near}): the alert could never end")
        return v


class Gate(_Model):
    """One turnstile lane: a passage from one zone into another."""

    id: str = ""
    name: str = ""
    from_zone: str = Field(alias="from", description="zone the person leaves")
    to_zone: str = Field(alias="to", description="zone the person enters")
    reader: bool = Field(True, description="has a badge reader; false: anonymous pulses")
    kind: Literal["tripod", "speedgate", "door"] = "tripod"
    max_per_minute: int | None = Field(
        None, ge=1, le=600, strict=True,
        description="most people the lane can pass in a minute (default: its kind's figure, "
        "sesame/common/turnstiles.py); more in event time is held as IMPLAUSIBLE_RATE",
    )  # fmt: skip
    _is_exit: bool = PrivateAttr(False)

    @property
    def is_exit(self) -> bool:
        """An exit goes outside or back into the zone this one opens onto (set by the loader)."""
        return self._is_exit


class Day(_Model):
    date: date
    opens: time
    closes: time
    note: str = ""

    @field_validator("opens", "closes")
    @classmethod
    def _local(cls, v: time) -> time:
        # opening hours are wall-clock times in the venue's time zone (DST included)
        if v.tzinfo is not None:
            raise ValueError("must be a local time without UTC offset (the venue's zone applies)")
        return v

    @field_validator("date")
    @classmethod
    def _year(cls, v: date) -> date:
        if not FIRST_YEAR <= v.year <= LAST_YEAR:
            raise ValueError(f"year must be between {FIRST_YEAR} and {LAST_YEAR}")
        return v


class Category(_Model):
    id: str = ""
    label_fr: str
    label_en: str
    zones: tuple[str, ...] = Field(description="zones a badge of this category may enter")
    reentry: Reentry = Reentry.ANTIPASSBACK
    early_minutes: int = Field(
        0, ge=0, le=600, strict=True, description="may enter this long before opening"
    )
    schoolchildren: bool = Field(False, description="counted as schoolchildren in exports")


class Leases(_Model):
    initial: int = Field(
        20, gt=0, le=MAX_PEOPLE, description="first allowance handed to an entry gate"
    )
    max_per_gate: int = Field(
        200, gt=0, le=MAX_PEOPLE, description="most a single gate may hold at once"
    )
    low_water: int = Field(
        5, ge=0, le=MAX_PEOPLE, description="top a gate up when it holds this few"
    )


class ZonePlan(_Model):
    outline: tuple[Point, ...] = Field(
        description="the zone on the plan: a polygon of [x, y] points in metres"
    )


class LanePlan(_Model):
    position: Point = Field(description="the lane on the plan: [x, y] in metres")


class Plan(_Model):
    """The plan the dashboard draws (optional): zone outlines and lane positions."""

    zones: Mapping[str, ZonePlan] = Field(default_factory=dict)
    lanes: Mapping[str, LanePlan] = Field(default_factory=dict)


class VenueInfo(_Model):
    id: str = Field(pattern=_ID, description="topic segment: sesame/v1/<id>/...")
    name: str
    timezone: str = "Europe/Paris"
    reset_residue: bool = Field(True, description="record people never scanned out at close")
    fire_alarm_evacuates: bool = Field(
        False,
        description="a lane's fire alarm input puts the venue in evacuation (audited); "
        "otherwise only a safety officer does, on the counter's FIRE_ALARM alert",
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {v!r}") from e
        return v


class Venue(_Model):
    venue: VenueInfo
    days: tuple[Day, ...]
    zones: Mapping[str, Zone]
    gates: Mapping[str, Gate]
    categories: Mapping[str, Category]
    leases: Leases = Leases()
    plan: Plan | None = None
    _source: str | None = PrivateAttr(None)  # the TOML text it was loaded from, if any

    # -- convenience -------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.venue.id

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.venue.timezone)

    def local(self, ts: datetime) -> datetime:
        return ts.astimezone(self.tz)

    def day_of(self, ts: datetime) -> Day | None:
        """The event day whose local date is ts's, or None."""
        d = self.local(ts).date()
        return next((day for day in self.days if day.date == d), None)

    def opening_window(self, day: Day, early_minutes: int = 0) -> tuple[datetime, datetime]:
        opens = datetime.combine(day.date, day.opens, self.tz) - timedelta(minutes=early_minutes)
        return opens, datetime.combine(day.date, day.closes, self.tz)

    def entry_gates(self) -> list[Gate]:
        return [g for g in self.gates.values() if not g.is_exit]

    @property
    def source(self) -> str | None:
        """The TOML text this venue was loaded from (None when built from a dict)."""
        return self._source

    def canonical_json(self) -> str:
        """Every value the program uses, in a fixed form: `parse_venue(json.loads(...))`
        rebuilds the same venue. Comments and layout of the file are not in it."""
        return json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)

    def fingerprint(self) -> str:
        """sha256 of canonical_json(): equal for two files that describe the same venue."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


class _IdError(ValueError):
    def __init__(self, key: str, problem: str):
        super().__init__(problem)
        self.key = key


def _ident(kind: str, v: str) -> None:
    if not re.match(_ID, v):
        raise ValueError(f"{kind} id {v!r} must be lowercase letters, digits, - or _")


def _checks(v: Venue) -> list[tuple[str, str]]:
    """Cross-field rules, as (key, problem) pairs."""
    errs: list[tuple[str, str]] = []
    if not v.days:
        errs.append(("days", "at least one event day is required"))
    for i, day in enumerate(v.days):
        if day.closes <= day.opens:
            errs.append((f"days[{i}].closes", "closing time must be after opening time"))
        if i and day.date <= v.days[i - 1].date:
            errs.append((f"days[{i}].date", "days must be in order and must not overlap"))
    if not v.zones:
        errs.append(("zones", "at least one zone is required"))
    for zid, z in v.zones.items():
        if zid == OUTSIDE:
            errs.append((f"zones.{zid}", "'outside' is implicit and cannot be declared"))
        if z.parent is not None and z.parent not in v.zones:
            errs.append((f"zones.{zid}.parent", f"unknown zone {z.parent!r}"))
        if z.parent == zid:
            errs.append((f"zones.{zid}.parent", "a zone cannot be its own parent"))
        elif z.parent in v.zones:
            # follow parents: a cycle would leave no way out to `outside`
            seen, cur = {zid}, z.parent
            while cur is not None and cur in v.zones and cur not in seen:
                seen.add(cur)
                cur = v.zones[cur].parent
            if cur is not None and cur in seen:
                errs.append((f"zones.{zid}.parent", "zone parents form a cycle"))
    known = set(v.zones) | {OUTSIDE}
    if not v.gates:
        errs.append(("gates", "at least one gate lane is required"))
    for gid, g in v.gates.items():
        for key, z in (("from", g.from_zone), ("to", g.to_zone)):
            if z not in known:
                errs.append((f"gates.{gid}.{key}", f"unknown zone {z!r}"))
        if g.from_zone == g.to_zone:
            errs.append((f"gates.{gid}.to", "a lane must join two different zones"))
    for cid, c in v.categories.items():
        for z in c.zones:
            if z not in v.zones:
                errs.append((f"categories.{cid}.zones", f"unknown zone {z!r}"))
    if not v.categories:
        errs.append(("categories", "at least one badge category is required"))
    if v.plan is not None:
        errs += _plan_checks(v)
    return errs


def _plan_checks(v: Venue) -> list[tuple[str, str]]:
    assert v.plan is not None
    errs = []
    for zid, zp in v.plan.zones.items():
        if zid not in v.zones:
            errs.append((f"plan.zones.{zid}", f"unknown zone {zid!r}"))
        elif problem := _outline_problem(zp.outline):
            errs.append((f"plan.zones.{zid}.outline", problem))
    for gid in v.plan.lanes:
        if gid not in v.gates:
            errs.append((f"plan.lanes.{gid}", f"unknown gate lane {gid!r}"))
    return errs


def _outline_problem(points: tuple[tuple[float, float], ...]) -> str | None:
    """Why a zone's outline cannot be drawn, or None."""
    if len(points) < 3:
        return "an outline needs at least 3 points"
    if len(points) > MAX_OUTLINE_POINTS:
        return f"an outline has at most {MAX_OUTLINE_POINTS} points"
    # shoelace formula: a polygon whose points are all on one line encloses nothing
    area = sum(
        x0 * y1 - x1 * y0
        for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True)
    )
    if abs(area) < 1e-6:
        return "the outline encloses no area (points on one line)"
    return None


def _fill_ids(data: dict[str, Any]) -> None:
    for section, kind in (("zones", "zone"), ("gates", "gate"), ("categories", "category")):
        table = data.get(section)
        if not isinstance(table, dict):
            continue
        for key, item in table.items():
            try:
                _ident(kind, key)
            except ValueError as e:
                raise _IdError(f"{section}.{key}", str(e)) from None
            if isinstance(item, dict):
                item.setdefault("id", key)
                if section == "gates":
                    item.setdefault("name", key)


def parse_venue(data: dict[str, Any], file: str = "<venue>", text: str | None = None) -> Venue:
    """Build a Venue from already-parsed TOML data; raises ConfigError."""
    data = _deepcopy(data)
    try:
        _fill_ids(data)
    except _IdError as e:
        raise ConfigError(file, e.key, str(e), _line_of(text, e.key)) from None
    try:
        venue = Venue.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        # "days[3].date", as the cross-field checks write it (and as _line_of finds it)
        key = ""
        for p in err["loc"]:
            key += f"[{p}]" if isinstance(p, int) else (f".{p}" if key else str(p))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        raise ConfigError(file, key, msg, _line_of(text, key)) from None
    problems = _checks(venue)
    if problems:
        key, msg = problems[0]
        raise ConfigError(file, key, msg, _line_of(text, key))
    for g in venue.gates.values():
        parent = venue.zones[g.from_zone].parent if g.from_zone in venue.zones else None
        g._is_exit = g.to_zone == OUTSIDE or g.to_zone == parent
    return venue


def load_venue(path: str | Path) -> Venue:
    """Read and check a venue TOML file; raises ConfigError."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(p), "", e.strerror or str(e)) from None
    except UnicodeDecodeError:
        raise ConfigError(str(p), "", "not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+)", str(e))
        raise ConfigError(
            str(p), "", f"TOML syntax: {str(e).split(' (at')[0]}", int(m.group(1)) if m else None
        ) from None
    venue = parse_venue(data, str(p), text)
    venue._source = text
    return venue


def _deepcopy(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _deepcopy(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_deepcopy(v) for v in x]
    return x


def _line_of(text: str | None, key: str) -> int | None:
    """Best-effort line of a dotted key in TOML text: its table header, then the key."""
    if not text or not key:
        return None
    parts = key.split(".")
    lines = text.splitlines()
    first = re.match(r"^([A-Za-z0-9_-]+)\[(\d+)\]$", parts[0])
    if first:  # an array of tables: days[1].date is under the second [[days]] header
        head = re.compile(r"^\s*\[\[\s*" + re.escape(first.group(1)) + r"\s*\]\]")
        starts = [i for i, ln in enumerate(lines) if head.match(ln)]
        n = int(first.group(2))
        if n >= len(starts):
            return None
        start = starts[n]
        if len(parts) == 1:
            return start + 1
        pat = re.compile(r"^\s*" + re.escape(parts[1]) + r"\s*=")
        for i in range(start + 1, len(lines)):
            if lines[i].lstrip().startswith("["):
                break
            if pat.match(lines[i]):
                return i + 1
        return start + 1
    # Find the deepest table header that matches a prefix of the key.
    start, rest = 0, parts
    for n in range(len(parts), 0, -1):
        head = ".".join(parts[:n])
        pat = re.compile(r"^\s*\[\[?\s*" + re.escape(head) + r"\s*\]\]?\s*(#.*)?$")
        idx = next((i for i, ln in enumerate(lines) if pat.match(ln)), None)
        if idx is not None:
            start, rest = idx, parts[n:]
            break
    if not rest:
        return start + 1
    leaf = re.sub(r"(\[\d+\])+$", "", rest[0])  # outline[1][0] is on the outline line
    pat = re.compile(r"^\s*" + re.escape(leaf) + r"\s*=")
    for i in range(start, len(lines)):
        if i > start and lines[i].lstrip().startswith("[") and start:
            break
        if pat.match(lines[i]):
            return i + 1
    return start + 1 if start else None
