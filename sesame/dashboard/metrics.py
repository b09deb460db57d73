"""The dashboard's Prometheus metrics (docs/metrics.md lists every one): signed-in sessions,
live-stream clients, safety actions by outcome, HTTP responses by status. Served on their
own opt-in port (`sesame dashboard --metrics-port`), not on the dashboard's: the dashboard
faces the control room, the metrics face the monitoring host, and neither needs the other's
authentication.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class DashboardMetrics:
    def __init__(self, dash):
        self.registry = CollectorRegistry(auto_describe=True)
        self.actions = Counter(
            "sesame_dashboard_actions_total", "Safety actions taken, by action and outcome",
            ["action", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.responses = Counter(
            "sesame_dashboard_http_responses_total", "HTTP responses sent, by status code",
            ["status"], registry=self.registry,
        )  # fmt: skip
        self.registry.register(_Live(dash))


class _Live(Collector):
    def __init__(self, dash):
        self.dash = dash

    def collect(self) -> Iterator:
        s = GaugeMetricFamily("sesame_dashboard_sessions", "Signed-in sessions")
        s.add_metric([], self.dash.sessions.count())
        yield s
        c = GaugeMetricFamily("sesame_dashboard_stream_clients", "Browsers on the live stream")
        c.add_metric([], self.dash.hub.subscribers)
        yield c


class CountResponses:
    """ASGI middleware: counts each HTTP response by its status (the live stream included,
    counted when it starts)."""

    def __init__(self, app, metrics: DashboardMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def counted(message):
            if message["type"] == "http.response.start":
                self.metrics.responses.labels(str(message["status"])).inc()
            await send(message)

        return await self.app(scope, receive, counted)
