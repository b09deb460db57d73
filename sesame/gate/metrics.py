"""A lane agent's Prometheus metrics (docs/metrics.md lists every one).

Scans are counted as each decision is shown, the decode time and the scan-to-open latency
are histograms; the outbox depth, the link, the controller and the faults are read from the
agent when Prometheus scrapes. Labels: the lane's id, decision, reason code, states; never
badge ids.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# decoding a camera frame: ~2-30 ms on a single-board computer (bench/bench_decode.py)
DECODE_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
# from the scan to the turnstile's opening: the decision, the outbox read, the controller
OPEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LINK_STATES = ("connected", "disconnected", "refused")
CONTROLLER_STATES = ("ok", "silent", "closed")


class GateMetrics:
    """One per agent, in its own registry (the simulator runs many agents in a process)."""

    def __init__(self, agent):
        self.agent = agent
        gate = agent.gate_id
        self.registry = CollectorRegistry(auto_describe=True)
        self._scans = Counter(
            "sesame_gate_scans_total", "Scans decided, by decision and reason code",
            ["gate", "decision", "reason"], registry=self.registry,
        )  # fmt: skip
        self._decode = Histogram(
            "sesame_gate_decode_seconds", "Time to decode one camera frame", ["gate"],
            buckets=DECODE_BUCKETS, registry=self.registry,
        ).labels(gate)  # fmt: skip
        self._open = Histogram(
            "sesame_gate_scan_to_open_seconds", "From a scan read to the lane opening",
            ["gate"], buckets=OPEN_BUCKETS, registry=self.registry,
        ).labels(gate)  # fmt: skip
        self.registry.register(_AgentState(agent))
        if hasattr(agent.reader, "on_decode"):  # camera readers time their frames
            agent.reader.on_decode = self._decode.observe

    def scan(self, dec) -> None:
        reason = str(dec.reason) if dec.reason else ""
        self._scans.labels(self.agent.gate_id, dec.code, reason).inc()

    def opened(self, seconds: float) -> None:
        self._open.observe(seconds)


class _AgentState(Collector):
    def __init__(self, agent):
        self.agent = agent

    def collect(self) -> Iterator:
        a, gate = self.agent, self.agent.gate_id
        depth = GaugeMetricFamily(
            "sesame_gate_outbox_events", "Events not yet acknowledged by the counter",
            labels=["gate"],
        )  # fmt: skip
        try:
            depth.add_metric([gate], a.outbox_depth())
        except Exception:  # the outbox is closing: no figure rather than a failed scrape
            pass
        yield depth
        link = GaugeMetricFamily(
            "sesame_gate_link_state", "1 for the state the broker link is in",
            labels=["gate", "state"],
        )  # fmt: skip
        now = a.link.state if a.link is not None else "disconnected"
        for s in LINK_STATES:
            link.add_metric([gate, s], 1.0 if s == now else 0.0)
        yield link
        ctl = GaugeMetricFamily(
            "sesame_gate_controller_state", "1 for the state the turnstile controller is in",
            labels=["gate", "state"],
        )  # fmt: skip
        health = str(a.turnstile.health)
        for s in CONTROLLER_STATES:
            ctl.add_metric([gate, s], 1.0 if s == health else 0.0)
        yield ctl
        faults = GaugeMetricFamily(
            "sesame_gate_fault", "1 for each fault the lane reports now (its status's faults)",
            labels=["gate", "fault"],
        )  # fmt: skip
        for f in a.faults():
            faults.add_metric([gate, f], 1.0)
        yield faults
