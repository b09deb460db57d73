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

The tolerance is `TOLERANCE_S` plus `DELIVERY_S` of real time as the counter's clock counts
it (`ClockRate`): 122 s on the real clock; in a replay running x600, a status held up for
half a real second in the broker or behind the counter's commit is 300 s of replayed time,
not a lane's lying clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sesame.counter.findings import Findings

TOLERANCE_S = 120.0  # a lane stamp this far from the counter's clock is a clock fault
DELIVERY_S = 2.0  # real seconds a message may take from a lane's stamp to the counter's judgement
AHEAD, BEHIND = "CLOCK_AHEAD", "CLOCK_BEHIND"
Flag = Literal["CLOCK_AHEAD", "CLOCK_BEHIND"]


class ClockRate:
    """How fast the counter's clock runs against real (monotonic) time: 1 on the real clock,
    the replay's speed in a simulation. Measured over the last few real seconds, leaving out
    the largest single step, so that one jump of the clock (a replay skipping a night, a test
    setting its clock) is not taken for speed."""

    WINDOW_S = 5.0

    def __init__(self) -> None:
        self._samples: list[tuple[float, float]] = []  # (monotonic, clock), oldest first
        self.rate = 1.0

    def update(self, mono: float, clock_t: float) -> float:
        self._samples.append((mono, clock_t))
        while len(self._samples) > 2 and mono - self._samples[1][0] >= self.WINDOW_S:
            self._samples.pop(0)
        first_mono, first_t = self._samples[0]
        span = mono - first_mono
        if span >= 0.5:
            steps = [b[1] - a[1] for a, b in zip(self._samples, self._samples[1:], strict=False)]
            self.rate = max(1.0, (clock_t - first_t - max(steps)) / span)
        return self.rate


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
    tolerance: float = TOLERANCE_S + DELIVERY_S  # set by `follow_rate`

    def follow_rate(self, rate: float) -> None:
        """The counter's clock runs `rate` times real time (ClockRate)."""
        self.tolerance = TOLERANCE_S + DELIVERY_S * rate

    def event(self, gate: str, t: float, now: float) -> Flag | None:
        """Judge a passage's stamp `t` at counter time `now`: the flag when its stamp is
        not believable (the caller then places it at `now`), else None."""
        if t > now + self.tolerance:
            self._flag(AHEAD, gate, t - now, now, "event")
            return AHEAD
        if t < self.earliest_t:
            self._flag(BEHIND, gate, t - now, now, "event")
            return BEHIND
        if t >= now - self.tolerance:
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
        if skew > self.tolerance:
            lane.behind_since, lane.behind_n = None, 0
            self._flag(AHEAD, gate, skew, now, "status")
        elif skew < -self.tolerance:
            if lane.behind_since is None or t < lane.behind_since:
                lane.behind_since, lane.behind_n = t, 0
            lane.behind_n += 1
            if lane.behind_n >= 2 and t - lane.behind_since >= self.tolerance:
                self._flag(BEHIND, gate, skew, now, "status")
        else:
            lane.behind_since, lane.behind_n = None, 0
            self.findings.clear(AHEAD, gate)
            self.findings.clear(BEHIND, gate)

    def _flag(self, kind: Flag, gate: str, skew: float, now: float, source: str) -> None:
        since = datetime.fromtimestamp(now, self.tz)  # type: ignore[arg-type]
        old = self.findings.get(kind, gate)
        n = (old.count if old else 0) + (1 if source != "status" else 0)
        detail = {"skew_s": round(skew, 1), "tolerance_s": round(self.tolerance, 1),
                  "seen_in": source}
        self.findings.raise_(kind, gate, since, detail, max(1, n))
