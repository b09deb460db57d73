"""A new outbox is an event, not a habit: how many epoch changes a lane gets each day.

A lane whose status names a new outbox epoch lost or replaced its storage; the counter
writes off what the old outbox could still grant (`LeaseDesk.new_epoch`) and leases the new
one. A lane may do that once a day on its own. Any further change that day is held: the
lane keeps its old epoch in the counter's books, so its new outbox gets no lease and
nothing more is written off, and the finding `EPOCH_CHANGE_HELD` names the lane, the new
epoch and the allowance a confirmation would write off. A safety officer's
`confirm_epoch` decision (control/decisions) allows exactly one more change, for that
epoch. A lane that comes back to the epoch it has in the counter's books ends the hold.

So no sequence of status messages writes off more than one lease per confirmed change.
Lanes without a lease today (exits, open zones) have nothing to write off and change freely.
"""

from __future__ import annotations

from datetime import datetime

from sesame.common.wire.decisions import Decision
from sesame.counter.findings import Findings
from sesame.counter.lease_desk import LeaseDesk
from sesame.counter.occupancy import Book
from sesame.counter.store import CounterStore

KIND = "EPOCH_CHANGE_HELD"
FREE_PER_DAY = 1  # changes a lane makes on its own each day


class Epochs:
    def __init__(
        self, store: CounterStore, book: Book, desk: LeaseDesk, findings: Findings
    ) -> None:
        self.store, self.book, self.desk, self.findings = store, book, desk, findings
        # day -> gate -> [changes acted on, changes allowed, changes held] (`_row`)
        self.days: dict[str, dict[str, list[int]]] = {}
        # gate -> the change waiting for an officer: epoch, day, allowance, attempts, since
        self.pending: dict[str, dict] = {}

    def restore(self) -> None:
        self.days = {d: {g: list(v) for g, v in r.items()}
                     for d, r in self.store.get_state("epoch_changes", {}).items()}  # fmt: skip
        self.pending = dict(self.store.get_state("epoch_pending", {}))
        for gate, p in self.pending.items():
            self._finding(gate, p)

    def admit(self, gate: str, epoch: str, now: datetime) -> bool:
        """The lane's status names `epoch`, not the one in the books: act on it (True)
        or hold it for an officer (False)."""
        day = self.book.current
        lease = self.desk.leases.get(gate)
        if gate not in self.desk.lane_epochs or day is None or lease is None or lease.day != day:
            return True  # a first epoch, or no allowance to write off
        row = self._row(day, gate)
        if row[0] < row[1]:
            row[0] += 1
            self._drop_pending(gate)
            self._save()
            return True
        p = self.pending.get(gate)
        at_stake = self.desk.at_stake(gate)
        if p is not None and (p["epoch"], p["day"], p["allowance"]) == (epoch, day, at_stake):
            return False  # the same hold, reported again
        row[2] += 1
        current = self.desk.lane_epochs.get(gate)
        if row[2] == 1:  # audited once a day per lane: a flipping lane floods nothing
            self.store.audit(
                "epoch_change_held", who="counter", zone=None,
                detail={"gate": gate, "epoch": epoch, "day": day, "allowance": at_stake,
                        "current_epoch": current},
            )  # fmt: skip
        since = p["since"] if p is not None and p["day"] == day else now.isoformat()
        self.pending[gate] = {"epoch": epoch, "day": day, "allowance": at_stake,
                              "attempts": row[2], "since": since, "current": current}  # fmt: skip
        self._save()
        self._finding(gate, self.pending[gate])
        return False

    def same_epoch(self, gate: str) -> None:
        """The lane reports the epoch in the books again: a held change is moot."""
        if gate in self.pending and self._drop_pending(gate):
            self._save()

    def confirm(self, d: Decision, now: datetime) -> tuple[str, dict]:
        """An officer's confirm_epoch: (outcome, detail to audit). Applied only to the
        change held now for that lane and epoch; otherwise 'stale'."""
        p = self.pending.get(d.gate)
        day = self.book.current
        if p is None or p["epoch"] != d.epoch or p["day"] != day:
            held = p["epoch"] if p else None
            return "stale", {"gate": d.gate, "epoch": d.epoch, "held_epoch": held}
        row = self._row(day, d.gate)
        row[1] = row[0] + 1  # exactly one more change
        at_stake = self.desk.at_stake(d.gate)
        self.admit(d.gate, d.epoch, now)  # acts now: write-off, re-issued lease
        self.desk.new_epoch(d.gate, d.epoch)
        return "applied", {"gate": d.gate, "epoch": d.epoch, "allowance_written_off": at_stake,
                           "old_epoch": p.get("current")}  # fmt: skip

    def new_day(self) -> None:
        """Yesterday's held changes end with yesterday's leases; today is a new count."""
        keep = {self.book.current}
        self.days = {d: r for d, r in self.days.items() if d in keep}
        for gate in list(self.pending):
            self._drop_pending(gate)
        self._save()

    # -- helpers --------------------------------------------------------------------------
    def _row(self, day: str, gate: str) -> list[int]:
        """[changes acted on, changes allowed, changes held] of the lane that day."""
        return self.days.setdefault(day, {}).setdefault(gate, [0, FREE_PER_DAY, 0])

    def _drop_pending(self, gate: str) -> bool:
        self.findings.clear(KIND, gate)
        return self.pending.pop(gate, None) is not None

    def _finding(self, gate: str, p: dict) -> None:
        self.findings.raise_(
            KIND, gate, datetime.fromisoformat(p["since"]),
            {"lane": gate, "epoch": p["epoch"], "allowance": p["allowance"],
             "current_epoch": p.get("current"), "day": p["day"]},
            count=p["attempts"],
        )  # fmt: skip

    def _save(self) -> None:
        self.store.set_state("epoch_changes", self.days)
        self.store.set_state("epoch_pending", self.pending)
