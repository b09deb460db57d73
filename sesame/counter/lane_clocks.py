"""Lanes' clocks judged against the counter's own clock (pure, no I/O).

The venue's time and day belong to the counter's clock alone (the real clock, or the
simulator's in a replay): no lane's stamp moves the day or the event clock. A lane's stamp
only places its passage within the counter's time when it is believable:

- **ahead**: a passage stamped more than `TOLERANCE_S` after the counter's clock cannot have
  happened yet, whatever the network did: it is counted at the counter's time, the lane is
  flagged `CLOCK_AHEAD`.
- **behind**: a stamp in the past is normally a passage delivered late (an outbox drained
  after an outage, a backlog after the counter restarted) and keeps its time and day. It is
  treated as a lying clock (counted at the counter's time, `CLOCK_BEHIND`) only when it
  cannot be true: before the venue's first possible entry (a board reading 1970), or an
  entry into a closed day beyond what that lane's lease still allowed that day (the lane
  could not have granted it then).
- **statuses**: a lane's live (not retained) status stamped more than `TOLERANCE_S` ahead of
  the counter raises `CLOCK_AHEAD` at once; stamped as far behind, on statuses spanning at
  least `TOLERANCE_S` of the lane's own clock, `CLOCK_BEHIND` (a few statuses held up in the
  network, or the simulator's jump over a night, are not a lying clock). A status within the
  tolerance clears both. Status findings report; they never re-place passages (a late
  status and a slow clock look alike from here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sesame.counter.findings import Findings

TOLERANCE_S = 120.0  # a lane stamp this far from the counter's clock is a clock fault
AHEAD, BEHIND = "CLOCK_AHEAD", "CLOCK_BEHIND"
Flag = Literal["CLOCK_AHEAD", "CLOCK_BEHIND"]


@dataclass
class _Lane:
    behind_since: float | None = None  # lane-clock time of the first status of a run behind
    behind_n: int = 0


@dataclass
class LaneClocks:
    findings: Findings
    earliest_t: float  # the venue's first possible entry (Unix s): nothing is stamped before
    tz: object = None
    lanes: dict[str, _Lane] = field(default_factory=dict)

    def event(self, gate: str, t: float, now: float) -> Flag | None:
        """Judge a passage's stamp `t` at counter time `now`: the flag when its stamp is
        not believable (the caller then places it at `now`), else None."""
        if t > now + TOLERANCE_S:
            self._flag(AHEAD, gate, t - now, now, "event")
            return AHEAD
        if t < self.earliest_t:
            self._flag(BEHIND, gate, t - now, now, "event")
            return BEHIND
        if t >= now - TOLERANCE_S:
            self.findings.clear(AHEAD, gate)  # its stamps are good again
        return None

    def beyond_lease(self, gate: str, t: float, now: float) -> Flag:
        """An entry filed under a closed day beyond that lane's allowance of that day."""
        self._flag(BEHIND, gate, t - now, now, "beyond the lane's lease of that day")
        return BEHIND

    def status(self, gate: str, ts: datetime | None, now: float) -> None:
        """A lane's live status (retained copies are not news: the caller skips them)."""
        if ts is None:
            return
        t = ts.timestamp()
        lane = self.lanes.setdefault(gate, _Lane())
        skew = t - now
        if skew > TOLERANCE_S:
            lane.behind_since, lane.behind_n = None, 0
            self._flag(AHEAD, gate, skew, now, "status")
        elif skew < -TOLERANCE_S:
            if lane.behind_since is None or t < lane.behind_since:
                lane.behind_since, lane.behind_n = t, 0
            lane.behind_n += 1
            if lane.behind_n >= 2 and t - lane.behind_since >= TOLERANCE_S:
                self._flag(BEHIND, gate, skew, now, "status")
        else:
            lane.behind_since, lane.behind_n = None, 0
            self.findings.clear(AHEAD, gate)
            self.findings.clear(BEHIND, gate)

    def _flag(self, kind: Flag, gate: str, skew: float, now: float, source: str) -> None:
        since = datetime.fromtimestamp(now, self.tz)  # type: ignore[arg-type]
        old = self.findings.get(kind, gate)
        n = (old.count if old else 0) + (1 if source != "status" else 0)
        detail = {"skew_s": round(skew, 1), "tolerance_s": TOLERANCE_S, "seen_in": source}
        self.findings.raise_(kind, gate, since, detail, max(1, n))
