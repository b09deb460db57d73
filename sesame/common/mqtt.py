"""The one place that turns a broker URL into a connected paho-mqtt client.

Every component (gate, counter, dashboard, simulator, admin tools) connects through
`connect()`, so protocol choice, persistent sessions, Last Will, reconnect backoff and the
CONNACK check are done once and the same way:

- MQTT 5 when the broker accepts it, else 3.1.1 (the embedded amqtt broker only has 3.1.1):
  until a CONNACK has fixed the protocol, a bare MQTT 5 CONNECT probes the broker before each
  attempt (amqtt never answers an MQTT 5 CONNECT that carries properties), and a CONNACK
  "unsupported protocol version" switches too. URLs: sesame/mqtt_url.py; TLS and the probe:
  sesame/mqtt_probe.py (all re-exported here).
- Persistent sessions: clean_start=False with a Session Expiry Interval above 0 on MQTT 5 (a
  session expiry of 0 would end the session at disconnect), clean_session=False on 3.1.1.
- A connection counts as connected only after a successful CONNACK. On the first connect a
  refusal for credentials or authorisation raises ConnectRefused; later refusals and network
  failures are retried with backoff 1 → 30 s and reported through `on_state`.
- A clustered broker (`mqtt://h1:p1,h2:p2,h3:p3`): every (re)connect attempt after the first
  goes to the next node in turn, with the same client id and persistent session (NATS keeps
  the session in a replicated stream, so it follows the client to any node).
- Publishes refused by the broker (MQTT 5 PUBACK reason code >= 0x80, e.g. 135 "not
  authorised" from the ACL) are recorded in `Connection.refusals` and passed to `on_refused`.
  A PUBACK never means the counter has the message: see docs/design.md, invariant 1.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

# Re-exported: callers import everything MQTT from here.
from sesame.common.mqtt_probe import (  # noqa: F401
    RC_UNSUPPORTED_PROTOCOL,
    TLSFailed,
    check_tls,
    probe_mqtt5,
    tls_context,
)
from sesame.common.mqtt_url import DEFAULT_PORTS, BrokerURL, parse_broker_url, with_port  # noqa: F401

log = logging.getLogger("sesame.common.mqtt")

BACKOFF_MIN, BACKOFF_MAX = 1, 30  # seconds between reconnect attempts

# CONNACK reason codes (MQTT 5 numbering; paho maps 3.1.1 return codes onto them).
RC_BAD_CREDENTIALS = 0x86  # 134
RC_NOT_AUTHORIZED = 0x87  # 135
# Refusals that will not go away by retrying with the same settings.
_FATAL_CONNACK = {0x85, RC_BAD_CREDENTIALS, RC_NOT_AUTHORIZED, 0x8A, 0x8C}

State = Literal["connected", "disconnected", "refused"]


class ConnectRefused(Exception):
    """The broker answered the CONNECT with a refusal (bad credentials, not authorised...)."""

    def __init__(self, reason_code: int, message: str):
        super().__init__(f"broker refused the connection: {message} (reason code {reason_code})")
        self.reason_code = reason_code
        self.message = message


class ConnectTimeout(TimeoutError):
    """No successful CONNACK within the allowed time (broker down or unreachable)."""


# -- the connection ---------------------------------------------------------------------


class Connection:
    """A paho client with the project's connection policy. Create it with `connect()`."""

    def __init__(
        self,
        url: BrokerURL,
        client_id: str,
        *,
        will: tuple | None,
        subscriptions: Sequence[tuple[str, int]],
        on_message: Callable[[paho.MQTTMessage], None] | None,
        clean_start: bool,
        session_expiry: int,
        keepalive: int,
        protocol: str,
        manual_ack: bool,
        on_state: Callable[[State, str], None] | None,
        on_refused: Callable[[int, int], None] | None,
    ):
        if protocol not in ("auto", "5", "3.1.1"):
            raise ValueError(f"protocol must be 'auto', '5' or '3.1.1', not {protocol!r}")
        if not clean_start and not client_id:
            raise ValueError("a persistent session (clean_start=False) needs a client id")
        self.url = url
        self._cluster = url  # every node; self.url is the node in use
        self._node = 0
        self._attempts = 0
        self.client_id = client_id
        self.protocol: Literal["5", "3.1.1"] = "3.1.1" if protocol == "3.1.1" else "5"
        self.subscriptions = list(subscriptions)
        self.refusals: collections.deque[tuple[int, int]] = collections.deque(maxlen=10_000)
        self.subscribe_refusals: list[tuple[str, int]] = []  # (filter, reason code)
        self._sub_mid: int | None = None
        self._subscribed = threading.Event()  # the broker answered the (re)subscription
        self.on_message = on_message
        self.on_state = on_state
        self.on_refused = on_refused
        self.last_error: str | None = None
        self._auto = protocol == "auto"
        self._confirmed = protocol != "auto"  # protocol fixed by a successful CONNACK
        self._clean_start = clean_start
        self._session_expiry = session_expiry
        self._keepalive = keepalive
        self._connected = threading.Event()
        self._ever_connected = False
        self._fatal: ConnectRefused | None = None
        self._raise_on_refusal = True
        self._closing = False
        self._publish_lock = threading.Lock()
        self.client = self._make_client(will, manual_ack)

    # -- set-up --

    def _make_client(self, will: tuple | None, manual_ack: bool) -> paho.Client:
        v5 = self.protocol == "5"
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else self._clean_start,
            manual_ack=manual_ack,
        )
        if self.url.username:
            client.username_pw_set(self.url.username, self.url.password)
        if self.url.tls:
            client.tls_set_context(tls_context(self.url))
        if will is not None:
            topic, payload, *rest = will
            qos = rest[0] if len(rest) > 0 else 1
            retain = rest[1] if len(rest) > 1 else True
            client.will_set(topic, payload, qos=qos, retain=retain)
        client.reconnect_delay_set(BACKOFF_MIN, BACKOFF_MAX)
        if os.environ.get("SESAME_MQTT_DEBUG"):  # paho's own packet log
            client.enable_logger(logging.getLogger("sesame.common.mqtt.paho"))
        # Unlimited local queue while offline: callers bound their own (the gate's outbox).
        client.max_queued_messages_set(0)
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        return client

    def _connect_properties(self) -> Properties | None:
        if self.protocol != "5" or self._session_expiry <= 0:
            return None
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._session_expiry
        return props

    def _start(self) -> None:
        kwargs: dict[str, Any] = {}
        if self.protocol == "5":
            kwargs = {"clean_start": self._clean_start, "properties": self._connect_properties()}
        self.client.connect_async(self.url.host, self.url.port, self._keepalive, **kwargs)
        self.client.loop_start()

    def _switch_protocol(self) -> None:
        """auto mode, before any successful CONNACK: try the other protocol version next.
        Done on the same client (as paho itself downgrades 3.1.1 -> 3.1) so that anything
        already queued or subscribed is kept."""
        c = self.client
        if self.protocol == "5":
            self.protocol = "3.1.1"
            c._protocol = paho.MQTTv311
            c._clean_session = self._clean_start
        else:
            self.protocol = "5"
            c._protocol = paho.MQTTv5
            c._clean_start = self._clean_start
        c._connect_properties = self._connect_properties()
        log.info("%s: trying MQTT %s", self.url.display, self.protocol)

    # -- paho callbacks (network thread) --

    def _next_node(self) -> None:
        """Before a (re)connect: after the first attempt, try the next node of a cluster.
        Called by paho with the old socket closed, so host and port may change."""
        self._attempts += 1
        if self._attempts == 1 or len(self._cluster.addresses) < 2:
            return
        self._node = (self._node + 1) % len(self._cluster.addresses)
        self.url = self._cluster.at(self._node)
        self.client._host, self.client._port = self.url.host, self.url.port
        log.info("%s: trying node %s:%d", self.client_id, self.url.host, self.url.port)

    def _on_pre_connect(self, client: paho.Client, userdata: Any) -> None:
        self._next_node()
        if self._auto and not self._confirmed:
            # Some brokers (amqtt) never answer an MQTT 5 CONNECT that carries properties, so
            # ask first with a bare one; the answer fixes the protocol for the real CONNECT.
            v5 = probe_mqtt5(self.url)
            if v5 is not None and v5 != (self.protocol == "5"):
                self._switch_protocol()

    def _on_connect(self, client, userdata, flags, reason: ReasonCode, properties) -> None:
        code = reason.value if isinstance(reason, ReasonCode) else int(reason)
        if code < 0x80:
            self._confirmed = True
            self._ever_connected = True
            self.last_error = None
            self._subscribed.clear()
            if self.subscriptions:
                # Re-subscribe every time: a broker that lost the session (restart without
                # persistence, expiry) would otherwise leave us deaf without an error.
                self._sub_mid = client.subscribe(self.subscriptions)[1]
            self._connected.set()
            self._state(
                "connected", f"MQTT {self.protocol}, session present: {bool(flags.session_present)}"
            )
            return
        message = str(reason)
        self.last_error = message
        if code == RC_UNSUPPORTED_PROTOCOL and self._auto and not self._confirmed:
            self._switch_protocol()
            return
        fatal = code in _FATAL_CONNACK or (code == RC_UNSUPPORTED_PROTOCOL and not self._auto)
        if fatal and not self._ever_connected and self._raise_on_refusal:
            self._fatal = ConnectRefused(code, message)
            client.disconnect()  # stop paho's retry loop; connect() raises
            return
        log.warning("%s refused the connection: %s (%d)", self.url.display, message, code)
        self._state("refused", f"{message} ({code})")

    def _on_connect_fail(self, client, userdata) -> None:
        self.last_error = "cannot reach the broker"
        self._state("disconnected", f"cannot reach {self.url.display}")

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._closing:
            self.last_error = str(reason)
            self._state("disconnected", str(reason))

    def _on_message(self, client, userdata, message: paho.MQTTMessage) -> None:
        if self.on_message is not None:
            try:
                self.on_message(message)
            except Exception:
                # paho would re-raise and end its network thread: one bad message must not
                # deafen the component. Without manual_ack the message counts as received.
                log.exception("on_message failed for %s", message.topic)

    def _on_publish(self, client, userdata, mid: int, reason: ReasonCode, properties) -> None:
        code = reason.value if isinstance(reason, ReasonCode) else int(reason)
        if code >= 0x80:
            self.refusals.append((mid, code))
            log.warning("%s refused publish %d: %s (%d)", self.url.display, mid, reason, code)
            if self.on_refused is not None:
                try:
                    self.on_refused(mid, code)
                except Exception:
                    log.exception("on_refused callback failed")

    def _on_subscribe(self, client, userdata, mid: int, reasons: list, properties) -> None:
        # A refused filter (0x80 and above) leaves us deaf without any other sign: say so.
        if mid != self._sub_mid:
            return
        self._subscribed.set()
        for (topic, _qos), reason in zip(self.subscriptions, reasons, strict=False):
            code = reason.value if isinstance(reason, ReasonCode) else int(reason)
            if code >= 0x80:
                self.subscribe_refusals.append((topic, code))
                log.warning("%s refused subscription %r (%d)", self.url.display, topic, code)

    def _state(self, state: State, detail: str) -> None:
        if self.on_state is not None:
            try:
                self.on_state(state, detail)
            except Exception:  # a bad callback must not kill the network thread
                log.exception("on_state callback failed")

    # -- public API --

    def is_connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._connected.wait(timeout)

    def wait_subscribed(self, timeout: float | None = None) -> bool:
        """Until the broker has answered the subscriptions made at (re)connect. A clustered
        broker answers only once it has set up the session's consumers, so a message
        published before then may not reach us."""
        return self._subscribed.wait(timeout)

    def publish(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False
    ) -> paho.MQTTMessageInfo:
        """Queue a message; safe from any thread. While offline a QoS 1 message is kept in
        memory and sent on reconnect (lost if the process dies: the gate's outbox covers that);
        `info.wait_for_publish()` then returns once the broker has it."""
        with self._publish_lock:
            info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if qos > 0 and info.rc == paho.MQTT_ERR_NO_CONN:
            # paho keeps a QoS>0 message and sends it on reconnect, but marks the info as
            # failed, so wait_for_publish() would raise although it will be delivered.
            info.rc = paho.MQTT_ERR_SUCCESS
        return info

    def subscribe(self, filters: Sequence[tuple[str, int]]) -> None:
        """Add subscriptions; kept and re-subscribed on every reconnect like the first ones."""
        new = [f for f in filters if f not in self.subscriptions]
        self.subscriptions.extend(new)
        if new and self.is_connected():
            self.client.subscribe(new)

    def ack(self, message: paho.MQTTMessage) -> None:
        """With manual_ack=True: acknowledge a QoS 1 message once it is safely stored."""
        self.client.ack(message.mid, message.qos)

    def close(self, timeout: float = 5.0) -> None:
        """Clean DISCONNECT (the Last Will is not sent), then stop the network thread.
        Waits up to `timeout` for queued QoS>0 publishes to leave first."""
        self._closing = True
        deadline = time.monotonic() + timeout
        while self._connected.is_set() and self.client.want_write() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.client.disconnect()
        self.client.loop_stop()
        self._connected.clear()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def account_client_id(
    base: str, url: str | BrokerURL | None, credentials: str | Path | None = None
) -> str:
    """`base` plus a tag derived from the account's password: stable across restarts (the
    persistent session is kept) but not guessable by another account. On Mosquitto a client
    presenting someone else's id disconnects it and drops its session, whatever the ACL, so
    a guessable id lets any account knock a component off the broker. Without a password
    (TLS client certificates) the id is `base` as it is."""
    parsed = url if isinstance(url, BrokerURL) else parse_broker_url(url, credentials)
    if not parsed.password:
        return base
    secret = f"sesame-client-id\0{parsed.username}\0{parsed.password}".encode()
    return f"{base}-{hashlib.sha256(secret).hexdigest()[:16]}"


def connect(
    url: str | BrokerURL | None,
    client_id: str,
    *,
    credentials: str | Path | None = None,
    will: tuple | None = None,
    subscriptions: Sequence[tuple[str, int]] = (),
    on_message: Callable[[paho.MQTTMessage], None] | None = None,
    clean_start: bool = False,
    session_expiry: int = 86400,
    keepalive: int = 15,
    protocol: str = "auto",
    manual_ack: bool = False,
    timeout: float | None = 10.0,
    on_state: Callable[[State, str], None] | None = None,
    on_refused: Callable[[int, int], None] | None = None,
    wait: bool = True,
) -> Connection:
    """Connect to the broker and return once a CONNACK has accepted us.

    `will` is (topic, payload[, qos=1[, retain=True]]). `subscriptions` are (filter, qos)
    pairs, re-subscribed on every (re)connect; messages go to `on_message(msg)` on paho's
    network thread. `on_state(state, detail)` hears "connected" / "disconnected" / "refused".

    wait=True (default): raises ConnectRefused when the broker refuses the credentials or the
    client, TLSFailed when the TLS handshake fails, ConnectTimeout when no CONNACK came
    within `timeout` seconds (None: forever).
    wait=False: returns at once and keeps trying in the background; refusals are reported
    through on_state and retried with backoff (for offline-first gates).
    """
    parsed = url if isinstance(url, BrokerURL) else parse_broker_url(url, credentials)
    conn = Connection(
        parsed,
        client_id,
        will=will,
        subscriptions=subscriptions,
        on_message=on_message,
        clean_start=clean_start,
        session_expiry=session_expiry,
        keepalive=keepalive,
        protocol=protocol,
        manual_ack=manual_ack,
        on_state=on_state,
        on_refused=on_refused,
    )
    conn._raise_on_refusal = wait
    if wait and parsed.tls:
        check_tls(parsed)  # a certificate problem is a configuration error: say so now
    conn._start()
    if not wait:
        return conn
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if conn._connected.wait(0.02):
            return conn
        if conn._fatal is not None:
            conn.close(timeout=0)
            raise conn._fatal
        if deadline is not None and time.monotonic() >= deadline:
            conn.close(timeout=0)
            why = f" ({conn.last_error})" if conn.last_error else ""
            raise ConnectTimeout(f"no answer from {parsed.display} within {timeout:g} s{why}")
