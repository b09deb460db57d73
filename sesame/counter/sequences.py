"""Per-gate sequence tracking: what is committed, what is missing (pure).

Each gate numbers its events 1, 2, 3… within an epoch (a new epoch whenever its outbox
database is created). The counter keeps, per (gate, epoch), the highest seq up to which
everything is stored (`committed`, what the end-to-end ack carries) and the seqs stored
beyond it. A seq at or below `committed`, or already beyond it, is a duplicate: this is
what makes dedup exact without asking the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LaneSequence:
    committed: int = 0
    above: set[int] = field(default_factory=set)
    max_seq: int = 0

    def seen(self, seq: int) -> bool:
        return seq <= self.committed or seq in self.above

    def add(self, seq: int) -> bool:
        """Record seq as stored; returns False for a duplicate."""
        if self.seen(seq):
            return False
        self.max_seq = max(self.max_seq, seq)
        if seq == self.committed + 1:
            self.committed = seq
            while self.committed + 1 in self.above:
                self.committed += 1
                self.above.discard(self.committed)
        else:
            self.above.add(seq)
        return True

    def gaps(self) -> list[tuple[int, int]]:
        """Missing seqs as inclusive ranges, between committed and the highest seen."""
        out, prev = [], self.committed
        for s in sorted(self.above):
            if s > prev + 1:
                out.append((prev + 1, s - 1))
            prev = s
        return out

    def above_ranges(self) -> list[list[int]]:
        out: list[list[int]] = []
        for s in sorted(self.above):
            if out and out[-1][1] == s - 1:
                out[-1][1] = s
            else:
                out.append([s, s])
        return out

    @classmethod
    def load(cls, committed: int, ranges: list, max_seq: int) -> LaneSequence:
        above = {s for a, b in ranges for s in range(a, b + 1)}
        return cls(committed=committed, above=above, max_seq=max_seq)


class Tracker:
    def __init__(self) -> None:
        self.seqs: dict[tuple[str, str], LaneSequence] = {}

    def get(self, gate: str, epoch: str) -> LaneSequence:
        s = self.seqs.get((gate, epoch))
        if s is None:
            s = self.seqs[(gate, epoch)] = LaneSequence()
        return s

    def open_gaps(self) -> int:
        """Number of missing events across all gates and epochs."""
        return sum(b - a + 1 for s in self.seqs.values() for a, b in s.gaps())

    def gap_list(self) -> dict[str, list[tuple[int, int]]]:
        return {f"{g}:{e}": s.gaps() for (g, e), s in self.seqs.items() if s.above}
