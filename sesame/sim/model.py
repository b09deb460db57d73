"""The visitor model of the reference event: who comes, when, and where they go.

Pure and seeded: `generate(venue, params)` returns the badges to issue and, per event day,
the visits (one per badge holder or school class per day) with planned legs (enter, visit
a side zone, come back, leave). Times are integer milliseconds since the Unix epoch so that
they survive the wire's millisecond timestamps unchanged. What actually happens (queues,
denials, retries) is the engine's business (`sesame.sim.engine`).

Counts: `visitors` are visitor-days of the public, professionals and schoolchildren (the
40,500 of the reference event); exhibitors, speakers, press and staff come on top.
"""

from __future__ import annotations

import math
import random
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sesame.common.ids import MAX_GROUP
from sesame.common.venue import OUTSIDE, Venue, load_venue, parse_venue

MINUTE = 60_000
HOUR = 60 * MINUTE

# Département codes, in the order the model hands them out (metropolitan France first).
DEPARTEMENTS = (
    [f"{n:02d}" for n in range(1, 20)]
    + ["2A", "2B"]
    + [f"{n:02d}" for n in range(21, 96)]
    + ["971", "972", "973", "974", "976"]
)

# Kinds of bad badge and the deny reason a correct gate gives each.
BAD_KINDS = {
    "forged": "UNKNOWN_KEY",  # signed with a key that is not the venue's
    "tampered": "BAD_SIGNATURE",  # a genuine token with its payload altered
    "wrong_day": "NOT_VALID_TODAY",  # valid on another day of the event
    "revoked": "REVOKED",  # on the retained revocation list
    "garbage": "MALFORMED",  # not a badge at all (a URL QR code)
}


@dataclass(frozen=True)
class Params:
    visitors: int = 40_500
    schoolchildren: int = 13_300
    departements: int = 55
    days: int = 4  # replay the first N event days of the venue...
    only: tuple[str, ...] = ()  # ...or these days (ISO dates); counts stay the event's
    seed: int = 2018
    exhibitors: int = 500  # ~100 companies and 40 partners, a few people per stand
    speakers: int = 500
    press: int = 60
    staff: int = 200  # the engineering students who guide school classes
    class_size: tuple[int, int] = (25, 30)
    group_badge_share: float = 0.6  # classes with one group badge (else one badge per pupil)
    professional_share: float = 0.25  # of the non-school visitors
    bad_badge_share: float = 0.01  # of public visits: forged, tampered, wrong day, revoked...
    no_push_share: float = 0.01  # granted but does not push the arm (scans again)
    salon_share: float = 0.35  # professionals and participants who attend a talk
    balcony_share: float = 0.3
    wrong_zone_share: float = 0.02  # public who try the Salon d'honneur (not allowed)

    def scaled(self, factor: float) -> Params:
        """Every head count times `factor` (a small replay with the same mix)."""
        from dataclasses import replace

        def n(x: int) -> int:
            return round(x * factor)

        return replace(
            self,
            visitors=n(self.visitors),
            schoolchildren=n(self.schoolchildren),
            exhibitors=n(self.exhibitors),
            speakers=n(self.speakers),
            press=n(self.press),
            staff=n(self.staff),
        )

    def check(self) -> None:
        if self.visitors < 0 or self.schoolchildren < 0:
            raise ValueError("visitor counts must not be negative")
        if self.schoolchildren > self.visitors:
            raise ValueError("schoolchildren are part of the visitors: at most --visitors")
        if not 1 <= self.departements <= len(DEPARTEMENTS):
            raise ValueError(f"départements must be between 1 and {len(DEPARTEMENTS)}")
        if self.days < 1:
            raise ValueError("at least one day")
        lo, hi = self.class_size
        if not 1 <= lo <= hi <= MAX_GROUP:
            raise ValueError(f"class size must be between 1 and {MAX_GROUP}")


@dataclass(frozen=True)
class Badge:
    id: str
    category: str
    days: tuple[date, ...] | None  # None: every day
    group: int = 1
    organisation: str = ""
    department: str = ""
    bad: str | None = None  # one of BAD_KINDS, or None for a genuine badge


@dataclass
class Leg:
    """One planned move: at `at` (planned), go to zone `to` (OUTSIDE to leave)."""

    at: int
    to: str
    optional: bool = False  # a side trip: skipped (with its return) when refused


@dataclass
class Visit:
    id: int
    badge: Badge
    day: date
    party: int  # people moving together under this badge (the group size of a group badge)
    legs: list[Leg] = field(default_factory=list)
    patience: int = 90 * MINUTE  # how long they queue for a full zone before going home
    lanes: str = "main"  # "main" or "groups": which entrance and exit they use
    no_push: bool = False  # the first grant is not followed by a push


@dataclass
class Population:
    badges: list[Badge]
    visits: dict[date, list[Visit]]
    revoked: tuple[str, ...]
    params: Params


def ms(t: datetime) -> int:
    return round(t.timestamp() * 1000)


def main_zone(venue: Venue) -> str:
    """The zone most entry lanes from outside lead into (the Nef)."""
    counts: dict[str, int] = {}
    for g in venue.gates.values():
        if g.from_zone == OUTSIDE:
            counts[g.to_zone] = counts.get(g.to_zone, 0) + 1
    if not counts:
        raise ValueError("the venue has no entry lane from outside")
    return max(counts, key=lambda z: counts[z])


def side_zones(venue: Venue, main: str) -> list[str]:
    """Zones reached from the main zone through a lane with a reader."""
    return sorted(
        {
            g.to_zone
            for g in venue.gates.values()
            if g.from_zone == main and g.reader and not g.is_exit
        }
    )


def day_weights(venue: Venue, days: list) -> list[float]:
    """Share of the public per day: weekends draw more, Sunday most (the Nef filled)."""
    per_hour = {5: 1.2, 6: 3.2}  # Saturday, Sunday; weekdays 0.45
    ws = []
    for d in days:
        hours = (datetime.combine(d.date, d.closes) - datetime.combine(d.date, d.opens)).seconds
        ws.append(per_hour.get(d.date.weekday(), 0.45) * hours / 3600)
    return ws


def _split(total: int, weights: list[float]) -> list[int]:
    """Integer parts of `total` proportional to weights, summing exactly to total."""
    s = sum(weights)
    if s <= 0:
        return [0] * len(weights)
    raw = [total * w / s for w in weights]
    parts = [math.floor(r) for r in raw]
    rest = total - sum(parts)
    order = sorted(range(len(raw)), key=lambda i: raw[i] - parts[i], reverse=True)
    for i in order[:rest]:
        parts[i] += 1
    return parts


def _class_sizes(rng: random.Random, pupils: int, lo: int, hi: int) -> list[int]:
    sizes = []
    while pupils > 0:
        n = min(pupils, rng.randint(lo, hi))
        sizes.append(n)
        pupils -= n
    return sizes


class _Gen:
    def __init__(self, venue: Venue, p: Params):
        self.venue, self.p = venue, p
        self.rng = random.Random(p.seed)
        self.days = list(venue.days)  # counts are split over the whole event
        self.main = main_zone(venue)
        self.sides = side_zones(venue, self.main)
        self.badges: list[Badge] = []
        self.visits: dict[date, list[Visit]] = {d.date: [] for d in self.days}
        self.revoked: list[str] = []
        self._n = 0
        self._vid = 0

    # -- helpers -------------------------------------------------------------
    def badge(self, category: str, days, group=1, org="", dept="", bad=None) -> Badge:
        self._n += 1
        b = Badge(f"B{self._n:06d}", category, days, group, org, dept, bad)
        self.badges.append(b)
        if bad == "revoked":
            self.revoked.append(b.id)
        return b

    def visit(self, badge: Badge, d, party: int, legs: list[Leg], **kw) -> Visit:
        self._vid += 1
        v = Visit(self._vid, badge, d.date, party, legs, **kw)
        self.visits[d.date].append(v)
        return v

    def window(self, d) -> tuple[int, int]:
        o, c = self.venue.opening_window(d)
        return ms(o), ms(c)

    def clamp_leave(self, d, t: int) -> int:
        """Everybody is out before closing: the venue is swept at the end of the day."""
        _, close = self.window(d)
        latest = close - self.rng.randint(2, 25) * MINUTE
        return min(t, latest)

    def side_trip(self, legs: list[Leg], zone: str, start: int, dur: int, leave: int) -> None:
        if start + dur + 10 * MINUTE < leave:
            legs.append(Leg(start, zone, optional=True))
            legs.append(Leg(start + dur, self.main, optional=True))

    def can_enter(self, category: str, zone: str) -> bool:
        return (
            zone in self.venue.categories[category].zones
            if category in self.venue.categories
            else False
        )

    # -- populations -----------------------------------------------------------
    def public_arrival(self, d, sunday: bool) -> int:
        opens, closes = self.window(d)
        r = self.rng.random()
        if r < (0.3 if sunday else 0.4):  # the queue at opening
            t = opens + int(abs(self.rng.gauss(0, 40)) * MINUTE) - 15 * MINUTE
        elif r < (0.85 if sunday else 0.75):  # after lunch
            t = int(
                ms(datetime.combine(d.date, d.opens, self.venue.tz).replace(hour=13, minute=45))
            )
            t += int(self.rng.gauss(0, 40 if sunday else 45) * MINUTE)
        else:
            t = self.rng.randint(opens, max(opens, closes - 2 * HOUR))
        return max(opens - 20 * MINUTE, min(t, closes - 90 * MINUTE))

    def general(self, d, count: int) -> None:
        sunday = d.date.weekday() == 6
        for _ in range(count):
            pro = self.rng.random() < self.p.professional_share
            cat = "professional" if pro else "public"
            bad = None
            if not pro and self.rng.random() < self.p.bad_badge_share:
                bad = self.rng.choice(sorted(BAD_KINDS))
            days = (d.date,)
            b = self.badge(
                cat, days, org="" if not pro else f"Company {self.rng.randint(1, 400)}", bad=bad
            )
            arrive = self.public_arrival(d, sunday)
            stay = int(self.rng.lognormvariate(math.log(4.2 if sunday else 2.6), 0.35) * HOUR)
            leave = self.clamp_leave(d, arrive + stay)
            legs = [Leg(arrive, self.main)]
            t = arrive + self.rng.randint(20, 90) * MINUTE
            for z in self.sides:
                wants = self.p.salon_share if pro else self.p.balcony_share
                if not self.can_enter(cat, z):
                    wants = self.p.wrong_zone_share
                if self.rng.random() < wants:
                    dur = self.rng.randint(20, 70) * MINUTE
                    self.side_trip(legs, z, t, dur, leave)
                    t += dur + self.rng.randint(10, 40) * MINUTE
            legs.append(Leg(leave, OUTSIDE))
            self.visit(
                b,
                d,
                1,
                legs,
                patience=self.rng.randint(40, 150) * MINUTE,
                no_push=self.rng.random() < self.p.no_push_share,
            )

    def school(self, d, pupils: int, depts: list[str], cursor: list[int]) -> None:
        opens, closes = self.window(d)
        lo, hi = self.p.class_size
        balcony = next((z for z in self.sides if self.can_enter("school", z)), None)
        for size in _class_sizes(self.rng, pupils, lo, hi):
            # every département gets a class before any gets a second one
            dept = (
                depts[cursor[0] % len(depts)] if cursor[0] < len(depts) else self.rng.choice(depts)
            )
            cursor[0] += 1
            org = f"School {dept}-{self.rng.randint(1, 999):03d}"
            arrive = opens + self.rng.randint(0, 150) * MINUTE
            leave = self.clamp_leave(d, arrive + self.rng.randint(150, 270) * MINUTE)
            plan = [Leg(arrive, self.main)]
            if balcony and self.rng.random() < self.p.balcony_share:
                self.side_trip(plan, balcony, arrive + 60 * MINUTE, 30 * MINUTE, leave)
            plan.append(Leg(leave, OUTSIDE))
            if self.rng.random() < self.p.group_badge_share:
                b = self.badge("school", (d.date,), group=size, org=org, dept=dept)
                self.visit(b, d, size, plan, patience=4 * HOUR, lanes="groups")
            else:
                for i in range(size):
                    b = self.badge("school", (d.date,), org=org, dept=dept)
                    legs = [Leg(leg.at + i * 2000, leg.to, leg.optional) for leg in plan]
                    self.visit(
                        b,
                        d,
                        1,
                        legs,
                        patience=4 * HOUR,
                        lanes="groups",
                        no_push=self.rng.random() < self.p.no_push_share,
                    )

    def participants(self, category: str, count: int, days_each: int | None) -> None:
        """Exhibitors, speakers, press, staff: early entry, free re-entry, talks."""
        if category not in self.venue.categories or count == 0:
            return
        cat = self.venue.categories[category]
        for i in range(count):
            if days_each is None:
                present, valid = list(self.days), None
            else:
                present = self.rng.sample(self.days, min(days_each, len(self.days)))
                valid = tuple(sorted(x.date for x in present))
            b = self.badge(category, valid, org=f"{category.title()} {i % 140 + 1}")
            for d in present:
                if category == "staff" and d.date.weekday() >= 5:
                    continue  # the guides come on school days
                opens, closes = self.window(d)
                arrive = opens - self.rng.randint(5, max(5, cat.early_minutes)) * MINUTE
                if category in ("speaker", "press"):
                    arrive = opens + self.rng.randint(-cat.early_minutes, 300) * MINUTE
                leave = self.clamp_leave(d, closes - self.rng.randint(0, 60) * MINUTE)
                if category in ("speaker", "press"):
                    leave = self.clamp_leave(d, arrive + self.rng.randint(120, 300) * MINUTE)
                legs = [Leg(arrive, self.main)]
                for z in self.sides:
                    if self.can_enter(category, z) and self.rng.random() < (
                        0.9 if category == "speaker" and z == self.sides[-1] else self.p.salon_share
                    ):
                        self.side_trip(
                            legs,
                            z,
                            arrive + self.rng.randint(30, 200) * MINUTE,
                            self.rng.randint(30, 70) * MINUTE,
                            leave,
                        )
                legs.sort(key=lambda leg: leg.at)
                if category == "exhibitor" and self.rng.random() < 0.3:
                    # out for lunch and back: free re-entry
                    out = int(ms(datetime.combine(d.date, d.opens, self.venue.tz).replace(hour=12)))
                    out += self.rng.randint(0, 90) * MINUTE
                    if not any(out - 15 * MINUTE < leg.at < out + 60 * MINUTE for leg in legs) and (
                        out + 60 * MINUTE < leave
                    ):
                        legs += [Leg(out, OUTSIDE), Leg(out + 45 * MINUTE, self.main)]
                        legs.sort(key=lambda leg: leg.at)
                legs.append(Leg(leave, OUTSIDE))
                self.visit(b, d, 1, legs, patience=3 * HOUR)


def generate(venue: Venue, params: Params | None = None) -> Population:
    """The whole population of the event, seeded and repeatable."""
    p = params or Params()
    p.check()
    g = _Gen(venue, p)
    school_days = [d for d in g.days if d.date.weekday() < 5]
    if not school_days:
        school_days = g.days  # a weekend-only replay still has its schoolchildren
    pupils = _split(p.schoolchildren, [1.0] * len(school_days))
    general = _split(p.visitors - p.schoolchildren, day_weights(venue, g.days))
    depts = DEPARTEMENTS[: p.departements]
    cursor = [0]
    for d, n in zip(school_days, pupils, strict=True):
        g.school(d, n, depts, cursor)
    for d, n in zip(g.days, general, strict=True):
        g.general(d, n)
    g.participants("exhibitor", p.exhibitors, None)
    g.participants("staff", p.staff, None)
    g.participants("press", p.press, 2)
    g.participants("speaker", p.speakers, 1)
    keep = set(p.only) if p.only else {d.date.isoformat() for d in venue.days[: p.days]}
    unknown = keep - {d.date.isoformat() for d in venue.days}
    if unknown:
        raise ValueError(f"not event days of the venue: {', '.join(sorted(unknown))}")
    visits = {d: vs for d, vs in g.visits.items() if d.isoformat() in keep}
    for vs in visits.values():
        vs.sort(key=lambda v: (v.legs[0].at, v.id))
    return Population(g.badges, visits, tuple(g.revoked), p)


def demand_curve(
    pop: Population, d: date, zone: str, step: int = 5 * MINUTE
) -> list[tuple[int, int]]:
    """People who would be in `zone` if nobody were ever refused (planned legs only)."""
    deltas: list[tuple[int, int]] = []
    for v in pop.visits[d]:
        if v.badge.bad:
            continue
        where = OUTSIDE
        for leg in v.legs:
            if leg.to == zone and where != zone:
                deltas.append((leg.at, v.party))
            elif where == zone and leg.to != zone:
                deltas.append((leg.at, -v.party))
            where = leg.to
    deltas.sort()
    out, occ, i = [], 0, 0
    if not deltas:
        return out
    t = deltas[0][0] - deltas[0][0] % step
    while i < len(deltas):
        while i < len(deltas) and deltas[i][0] < t + step:
            occ += deltas[i][1]
            i += 1
        out.append((t, occ))
        t += step
    return out


def day_bounds(venue: Venue, d: date) -> tuple[int, int]:
    day = next(x for x in venue.days if x.date == d)
    o, c = venue.opening_window(day)
    return ms(o), ms(c)


def derive_venue_file(
    src: Path, out: Path, *, capacity_factor: float = 1.0, largest_group: int = 1
) -> tuple[Path, list[str]]:
    """A copy of a venue file for a replay, and what was changed (one line each).

    - capacities times `capacity_factor` (a small replay still fills the Nef);
    - leases: a lane tops up only when it holds `low_water` or fewer, and a group badge of N
      needs N at once, so `low_water` must be at least the largest group and `initial`
      above it, or a school class on one badge is refused for good at a lane holding less.
    Text edits keep the file's comments; the result is loaded and checked like any venue.
    """
    text = src.read_text(encoding="utf-8")
    notes: list[str] = []
    if capacity_factor != 1.0:

        def cap(m: re.Match) -> str:
            n = max(1, round(int(m.group(2)) * capacity_factor))
            return f"{m.group(1)}{n}"

        text = re.sub(r"(?m)^(capacity\s*=\s*)(\d+)", cap, text)
        notes.append(f"capacities x{capacity_factor:g}")
    venue = parse_venue(tomllib.loads(text), str(out), text)
    low, initial = venue.leases.low_water, venue.leases.initial
    if largest_group > low:
        text = _set_lease(text, "low_water", largest_group)
        notes.append(f"leases.low_water {low} -> {largest_group} (largest group badge)")
    if 2 * largest_group > initial:
        text = _set_lease(text, "initial", 2 * largest_group)
        notes.append(f"leases.initial {initial} -> {2 * largest_group}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    load_venue(out)  # refuse to hand on a file that does not load
    return out, notes


def _set_lease(text: str, key: str, value: int) -> str:
    pat = re.compile(rf"(?ms)^(\[leases\].*?^{key}\s*=\s*)(\d+)")
    if pat.search(text):
        return pat.sub(lambda m: f"{m.group(1)}{value}", text, count=1)
    if re.search(r"(?m)^\[leases\]", text):
        return re.sub(r"(?m)^(\[leases\].*)$", lambda m: f"{m.group(1)}\n{key} = {value}", text)
    return text + f"\n[leases]\n{key} = {value}\n"


def scaled_venue(venue: Venue, factor: float) -> Venue:
    """The same venue with every capacity scaled: a small replay still fills the Nef."""
    data = venue.model_dump(by_alias=True)
    for z in data["zones"].values():
        z["capacity"] = max(1, round(z["capacity"] * factor))
    return parse_venue(data, f"{venue.id} (capacities x{factor:g})")
