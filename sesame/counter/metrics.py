"""The counter's Prometheus metrics (docs/metrics.md lists every one).

Counted as batches commit (`batch`, one call per transaction, so the ingest path pays one
small loop per batch, not a metric update per event); the state figures (occupancy, leases,
gaps, lag, database size) are read from the core when Prometheus scrapes, never kept twice.
Labels stay few: gate ids, zone ids, event kinds and a fixed set of quarantine classes,
never badge ids or free text.
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

# quarantine reason (free text, from the core and the wire parsers) -> a fixed class
_CLASSES = (
    ("internal error", "internal_error"),
    ("not a topic of this venue", "wrong_topic"),
    ("unexpected topic", "wrong_topic"),
    ("unknown gate", "unknown_gate"),
    ("unknown zone", "unknown_zone"),
    ("differs from the topic", "gate_mismatch"),
    ("status for gate", "gate_mismatch"),
    ("do not match lane", "zone_mismatch"),
)
QUARANTINE_CLASSES = ("malformed", *sorted({c for _, c in _CLASSES}))


def quarantine_class(reason: str) -> str:
    """The class of a quarantine reason; anything the parsers refused is `malformed`."""
    for needle, cls in _CLASSES:
        if needle in reason:
            return cls
    return "malformed"


class CounterMetrics:
    """One per running counter, in its own registry. `core` returns the live Core (it is
    replaced after a failed batch), `db_path` the SQLite file."""

    def __init__(self, core: Callable[[], object | None], db_path: str | os.PathLike):
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter(
            "sesame_counter_events_total", "Gate events committed, by lane and kind",
            ["gate", "kind"], registry=self.registry,
        )  # fmt: skip
        self.quarantined = Counter(
            "sesame_counter_quarantined_total", "Messages kept in quarantine, by class",
            ["reason"], registry=self.registry,
        )  # fmt: skip
        self.batches = Counter(
            "sesame_counter_batches_total", "Transactions committed", registry=self.registry
        )
        self.registry.register(_CoreState(core, db_path))

    def batch(self, rows: Sequence[tuple], bad: Sequence[tuple]) -> None:
        """One committed transaction: event rows (store.EventRow) and quarantine rows
        (topic, payload, reason, ...)."""
        self.batches.inc()
        for (gate, kind), n in Tally((r.gate, r.kind) for r in rows).items():
            self.events.labels(gate, kind).inc(n)
        for r in bad:
            self.quarantined.labels(quarantine_class(r[2])).inc()


class _CoreState(Collector):
    """Figures read from the core at scrape time (from the scrape thread: copies only)."""

    def __init__(self, core: Callable[[], object | None], db_path: str | os.PathLike):
        self.core, self.db_path = core, os.fspath(db_path)

    def collect(self) -> Iterator:
        core = self.core()
        if not self.db_path.startswith(("postgresql://", "postgres://")):
            # a file's size; PostgreSQL's is the database server's to report
            size = GaugeMetricFamily(
                "sesame_counter_database_size_bytes", "SQLite database and write-ahead log"
            )
            size.add_metric([], sum(_size(self.db_path + s) for s in ("", "-wal")))
            yield size
        if core is None:
            return
        for _ in range(3):  # the writer thread may change a dict while we copy it
            try:
                yield from self._figures(core)
                return
            except RuntimeError:
                continue

    def _figures(self, core) -> Iterator:
        occ = GaugeMetricFamily("sesame_zone_occupancy_people", "People inside", labels=["zone"])
        cap = GaugeMetricFamily("sesame_zone_capacity_people", "Legal capacity", labels=["zone"])
        lease = GaugeMetricFamily(
            "sesame_zone_lease_outstanding_people",
            "Entries the zone's lanes may still grant under their leases", labels=["zone"],
        )  # fmt: skip
        day = core.book.current
        leases = list(core.leases.items())
        for zid, z in core.venue.zones.items():
            occ.add_metric([zid], core.book.live(zid))
            cap.add_metric([zid], z.capacity)
            out = sum(max(0, ls.exposure.get(zid, 0) - core.desk.spent(day, g)) for g, ls in leases
                      if zid in ls.exposure) if day else 0  # fmt: skip
            lease.add_metric([zid], out)
        lag = GaugeMetricFamily(
            "sesame_counter_ingest_lag_seconds",
            "From a batch's first message arriving to its commit and publication",
        )
        lag.add_metric([], (core.last_lag_ms or 0.0) / 1000.0)
        gaps = GaugeMetricFamily(
            "sesame_counter_open_gaps_events", "Events missing in the lanes' sequences"
        )
        gaps.add_metric([], core.tracker.open_gaps())
        dup = CounterMetricFamily(
            "sesame_counter_duplicates", "Events received again and ignored (already counted)"
        )
        dup.add_metric([], core.stats.get("duplicates", 0))
        fut = CounterMetricFamily(
            "sesame_counter_future_events",
            "Events stamped over 120 s ahead of the counter's clock (counted at its time)",
        )
        fut.add_metric([], core.stats.get("future", 0))
        held = GaugeMetricFamily(
            "sesame_counter_held_passages", "Passages held as implausible, awaiting an officer",
            labels=["gate"],
        )  # fmt: skip
        held_total = CounterMetricFamily(
            "sesame_counter_held", "Passages held as implausible since the counter started",
            labels=["gate"],
        )  # fmt: skip
        holds = core.holds
        for gate in core.venue.gates:
            held.add_metric([gate], holds.held.get(gate, 0))
            held_total.add_metric([gate], holds.held_total.get(gate, 0))
        epochs = GaugeMetricFamily(
            "sesame_counter_epoch_held_lanes", "Lanes whose outbox change awaits an officer"
        )
        epochs.add_metric([], len(core.epochs.pending))
        yield from (occ, cap, lease, lag, gaps, dup, fut, held, held_total, epochs)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
