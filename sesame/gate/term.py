"""The counter's term, as a gate sees it: a fence against a former active counter.

Several counters may share one database (docs/scaling.md); one is active and every lease
and ack it publishes carries its term, a number the database raises at each takeover. A
former active counter that was paused (not dead) and wakes up still publishes with its old
term: the gate ignores anything below the highest term it has seen, and keeps that number
in its outbox database so a reboot does not forget it. Without this, a stale counter could
hand the lane allowance that the new one has already handed out again.

A message without a term comes from a counter that runs alone (no standby): it is accepted
until the lane has seen a term, and ignored afterwards.
"""

from __future__ import annotations


def admits(term: int | None, highest: int) -> bool:
    """Whether a lease or ack with `term` may be acted on, `highest` being the highest
    term this lane has accepted (0 when it has seen none)."""
    if term is None:
        return highest == 0
    return term >= highest


def newer_lease(term: int | None, serial: int, day: str, cur_term: int | None,
                cur_serial: int, cur_day: str) -> bool:  # fmt: skip
    """Whether a lease replaces the current one: a later day, a higher term (whose serials
    start afresh), or the same term with a serial at least as high."""
    if day != cur_day:
        return day > cur_day
    t, ct = term or 0, cur_term or 0
    if t != ct:
        return t > ct
    return serial >= cur_serial
