"""What every part of the dashboard shares: its settings, the accounts store, sessions, the
live state, the browsers' hub and the broker link (`Dashboard`), and how a safety action
is audited and published (`Dashboard.act`). The HTTP routes are in `sesame.dashboard.routes`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sesame.common import wire
from sesame.common.venue import Venue
from sesame.dashboard.accounts import AccountStore, User
from sesame.dashboard.alerts import AlertService
from sesame.dashboard.errors import ApiError
from sesame.dashboard.hub import Hub
from sesame.dashboard.live import LiveState
from sesame.dashboard.metrics import DashboardMetrics
from sesame.dashboard.security import Sessions
from sesame.dashboard.signin import SigninGuard


class Publisher(Protocol):
    def publish(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, on_late=None
    ) -> Any: ...

    def close(self) -> None: ...


@dataclass
class DashboardSettings:
    venue: Venue
    accounts_path: str | Path
    db_path: str | Path | None = None  # the counter's database, for history and exports
    broker_url: str | None = None
    credentials: str | Path | None = None  # broker credentials file for the dashboard account
    cookie_secure: bool = False  # set when served over HTTPS
    # failed sign-ins free of delay per client address and user name, and per address
    # (a control room shares one); then 2 s doubling (sesame/dashboard/signin.py)
    login_limit: int = 5
    login_limit_address: int = 20
    # addresses whose X-Forwarded-For names the client (a reverse proxy on this machine)
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    # time stamped on actions and audit entries (`sesame demo` sets the replayed day's)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # real elapsed time, for session expiry and the sign-in limit (never the replay's)
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # an alert unacknowledged this long (real seconds) goes on alerts/escalated; 0: never
    escalate_after_s: float = 120.0


class Dashboard:
    """Everything the routes share; also the handle `sesame demo` and tests hold."""

    def __init__(self, settings: DashboardSettings, link: Publisher | None = None):
        self.settings = settings
        self.venue = settings.venue
        self.topics = wire.Topics(self.venue.id)
        self.store = AccountStore(settings.accounts_path)
        self.sessions = Sessions(settings.wall_clock)
        self.signin = SigninGuard(
            settings.wall_clock, settings.login_limit, settings.login_limit_address
        )
        self.alerts = AlertService(self)
        self.state = LiveState(self.venue, *self.alerts.saved())
        self.hub = Hub()
        self.link = link
        self._own_link = link is None
        self.metrics = DashboardMetrics(self)  # served by `sesame dashboard --metrics-port`

    def now(self) -> datetime:
        return self.settings.clock()

    # called on the MQTT thread
    def on_message(self, topic: str, payload: bytes) -> None:
        updates = self.state.apply(topic, payload, self.now(), self.settings.wall_clock())
        self.alerts.persist(updates)
        for event, data in updates:
            self.hub.publish(event, data)

    def start_link(self) -> None:
        self.alerts.start()  # escalation publishes through whatever link there is
        if self.link is not None or not (self.settings.broker_url or self.settings.credentials):
            return
        from sesame.dashboard.link import connect_link

        self.link = connect_link(self.settings, self.on_message, self.on_broker_state)

    def on_broker_state(self, state: str, detail: str) -> None:
        self.state.broker = {"state": state, "detail": detail}
        self.hub.publish("broker", dict(self.state.broker))

    def stop(self) -> None:
        if self.link is not None and self._own_link:
            with contextlib.suppress(Exception):
                self.link.close()
        self.alerts.stop()
        self.hub.close_all()
        self.store.close()

    def publish(self, topic: str, payload: bytes, retain: bool, on_late=None) -> str:
        if self.link is None:
            raise ApiError(503, "BROKER_UNAVAILABLE", "no connection to the broker")
        try:
            outcome = self.link.publish(topic, payload, qos=1, retain=retain, on_late=on_late)
        except Exception as e:  # the broker link is an edge: report, never crash
            raise ApiError(503, "BROKER_REFUSED", f"publish failed: {e}") from None
        return outcome if isinstance(outcome, str) else "published"

    def act(
        self,
        user: User,
        action: str,
        target: str,
        topic: str,
        payload: bytes,
        *,
        retain: bool,
        detail: str,
        reason: str,
    ) -> dict:
        """Audit first, publish, record the outcome, tell every browser.

        'queued' means the broker could not be reached in time: the message leaves when the
        link is back, and the audit log says so rather than pretending it was delivered."""
        entry_id = self.store.audit(
            user, action, target, detail=detail, reason=reason, at=self.now()
        )

        def late(outcome: str) -> None:  # a queued action finally reached the broker
            self.store.audit_outcome(entry_id, outcome)
            self.hub.publish("audit", self.store.audit_entry(entry_id).to_dict())

        try:
            outcome = self.publish(topic, payload, retain, on_late=late)
        except ApiError:
            self.metrics.actions.labels(action, "failed").inc()
            self.store.audit_outcome(entry_id, "failed")
            self.hub.publish("audit", self.store.audit_entry(entry_id).to_dict())
            raise
        self.metrics.actions.labels(action, outcome).inc()
        self.store.audit_outcome(entry_id, outcome)
        entry = self.store.audit_entry(entry_id).to_dict()
        self.hub.publish("audit", entry)
        return entry
