"""The venue-wide memory of who is inside: the counter republishes admissions and finds
badges admitted twice.

Re-entry rules (`ALREADY_INSIDE`, `NO_REENTRY`, group badges) are decided at each lane, so
each entry lane must know what every other lane admitted. The counter is the one voice:

- after each committed batch it publishes the badge passages of the live day it stored on
  `counter/admissions`, numbered by their event row (`after`, `upto`], within moments;
- an entry lane says in its status how far it holds them (`admissions_day`,
  `admissions_upto`); when that is behind (a restart, a cut cable, a message lost) the
  counter replays the rest on `gates/<gate>/admissions`, at most a day's worth, in chunks;
- it republishes only what it stored from a lane's own events topic and what that lane could
  have admitted (a lane with a reader, a known category allowed into the zone, the badge's
  registered category when a registry is imported): a lane speaks only through its own
  passages, at the rate its turnstile allows (docs/design.md, invariant 6).

A lane cut off from the broker still decides from what it last heard, so two cut-off lanes
can both admit a badge that is inside. When their passages arrive, the counter records a
double admission and raises `DOUBLE_ADMISSION` (subject: the lane that admitted second; the
detail names both lanes, the badge id and its category, never its token).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sesame.common import wire
from sesame.common.decision import ANTIPASSBACK_WINDOW
from sesame.common.venue import OUTSIDE, Reentry, Venue
from sesame.common.wire.admissions import MAX_ITEMS, Admission, Admissions
from sesame.counter.batch import Out
from sesame.counter.findings import Findings
from sesame.counter.store import CounterStore, utcnow
from sesame.counter.store_admissions import BadgePassage, DoubleAdmission

KIND = "DOUBLE_ADMISSION"
WINDOW_S = ANTIPASSBACK_WINDOW.total_seconds()


class Inside:
    def __init__(self, venue: Venue, store: CounterStore, findings: Findings, topics: wire.Topics):
        self.venue, self.store, self.findings, self.topics = venue, store, findings, topics
        self.day: str | None = None  # the live day, whose admissions the lanes hear
        self.head = 0  # number of the live day's last admission published
        self.scanned = 0  # event rows up to this one have been looked at

    # -- state ---------------------------------------------------------------------------
    def restore(self, day: str | None) -> None:
        """After start-up or a rebuild: where the stream stands, the day's findings."""
        self.scanned = self.store.last_event_rowid()
        self.new_day(day)

    def new_day(self, day: str | None) -> None:
        self.day = day
        self.head = self.store.admissions_head(day)
        for subject in list(self.findings.active(KIND)):
            self.findings.clear(KIND, subject)
        for d in self.store.double_admissions(day):
            self.findings.bump(KIND, d.second_gate, datetime.fromisoformat(d.found_at),
                               _detail(d))  # fmt: skip

    # -- what lanes may say --------------------------------------------------------------
    def _admissible(self, r: BadgePassage, registry: bool) -> bool:
        """Whether the lane could have admitted this badge: only then do other lanes hear
        of it (a lane cannot block badges it never saw by naming them)."""
        lane = self.venue.gates.get(r.gate)
        cat = self.venue.categories.get(r.category or "")
        if lane is None or not lane.reader or cat is None:
            return False
        if r.to_zone != OUTSIDE and r.to_zone not in cat.zones:
            return False
        return not registry or r.registered == r.category

    # -- after a batch is stored ---------------------------------------------------------
    def stored(self, out: list[Out], now: datetime) -> None:
        """Publish the live day's new admissions and look for double admissions."""
        rows = self.store.badge_passages_after(self.scanned)
        self.scanned = self.store.last_event_rowid()
        if not rows:
            return
        registry = self.store.has_registry()
        live = []
        for r in rows:
            if not self._admissible(r, registry):
                continue
            if r.day == self.day:
                live.append(r)
            if r.to_zone != OUTSIDE:
                self._check_double(r, now)
        for i in range(0, len(live), MAX_ITEMS):
            chunk = live[i : i + MAX_ITEMS]
            msg = Admissions(self.day or "", self.head, chunk[-1].rowid, _items(chunk))
            out.append(Out(self.topics.admissions(), msg.to_json(), retain=False))
            self.head = chunk[-1].rowid

    def status(self, gate: str, st: wire.GateStatus, out: list[Out]) -> None:
        """An entry lane behind the stream gets what it misses (one chunk per status)."""
        lane = self.venue.gates.get(gate)
        if (
            self.day is None
            or st.admissions_day is None
            or not st.online
            or lane is None
            or not lane.reader
            or lane.is_exit
        ):
            return
        after = st.admissions_upto or 0 if st.admissions_day == self.day else 0
        if after >= self.head:
            return
        rows = self.store.badge_passages_of_day(self.day, after, MAX_ITEMS)
        more = len(rows) == MAX_ITEMS and rows[-1].rowid < self.head
        upto = rows[-1].rowid if more else self.head
        registry = self.store.has_registry()
        items = _items([r for r in rows if self._admissible(r, registry)])
        msg = Admissions(self.day, after, upto, items, more)
        out.append(Out(self.topics.lane_admissions(gate), msg.to_json(), retain=False))

    # -- double admissions ---------------------------------------------------------------
    def _check_double(self, r: BadgePassage, now: datetime) -> None:
        """Another lane admitted this badge into the same zone while it was inside: within
        the anti-passback window with no exit seen between (any time that day for `once`)."""
        cat = self.venue.categories[r.category or ""]
        if cat.reentry == Reentry.FREE:
            return
        # the same category only: a claim this row's lane could have made (see _admissible)
        others = self.store.entries_elsewhere(r.badge, r.day, r.to_zone, r.gate, r.category)
        if not others:
            return
        exits = self.store.exit_times(r.badge, r.day, r.to_zone)
        for gate, t, ts in others:
            lane = self.venue.gates.get(gate)
            if lane is None or not lane.reader:
                continue
            lo, hi = min(t, r.t), max(t, r.t)
            if cat.reentry == Reentry.ANTIPASSBACK and (
                hi - lo >= WINDOW_S or any(lo < x < hi for x in exits)
            ):
                continue
            mine, theirs = (r.gate, r.ts), (gate, ts)
            first, second = (theirs, mine) if t <= r.t else (mine, theirs)
            d = DoubleAdmission(r.day, r.badge, r.to_zone, first[0], second[0], r.category,
                                first[1], second[1], utcnow())  # fmt: skip
            if self.store.record_double_admission(d):
                self.findings.bump(KIND, d.second_gate, now, _detail(d))


def _items(rows: list[BadgePassage]) -> tuple[Admission, ...]:
    return tuple(
        Admission(r.id, r.gate, r.badge, r.from_zone, r.to_zone, datetime.fromisoformat(r.ts))
        for r in rows
    )


def _detail(d: DoubleAdmission) -> dict[str, Any]:
    """The latest double admission of a lane: both lanes, the badge id and category (the
    token never leaves the lanes)."""
    return {"day": d.day, "badge": d.badge, "category": d.category, "zone": d.zone,
            "lanes": [d.first_gate, d.second_gate], "first_at": d.first_ts,
            "second_at": d.second_ts}  # fmt: skip
