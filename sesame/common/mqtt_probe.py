"""TLS context, TLS handshake check and the MQTT 5 probe used by `sesame.common.mqtt.connect`."""

from __future__ import annotations

import socket
import ssl

from sesame.common.mqtt_url import BrokerURL

RC_UNSUPPORTED_PROTOCOL = 0x84  # 132, CONNACK "unsupported protocol version"


class TLSFailed(ConnectionError):
    """The TLS handshake failed: unknown CA, wrong host name, certificate refused..."""


def tls_context(url: BrokerURL) -> ssl.SSLContext:
    """Verify the broker against the given CA (else the system's), check its name, and
    present a client certificate when one is given."""
    ctx = ssl.create_default_context(cafile=str(url.ca) if url.ca else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if url.cert and url.key:
        ctx.load_cert_chain(str(url.cert), str(url.key))
    return ctx


def check_tls(url: BrokerURL, timeout: float = 5.0) -> None:
    """One TLS handshake with the broker; raises TLSFailed when it fails (an unreachable
    broker is not a TLS failure: that is left to the reconnect loop)."""
    try:
        sock = socket.create_connection((url.host, url.port), timeout=timeout)
    except OSError:
        return
    try:
        with tls_context(url).wrap_socket(sock, server_hostname=url.host) as tls:
            # TLS 1.3 reports a refused client certificate only at the first read.
            tls.settimeout(0.2)
            try:
                closed = tls.recv(1) == b""
            except TimeoutError:
                closed = False  # the broker waits for our CONNECT, as it should
            if closed:
                raise TLSFailed(
                    f"TLS with {url.display} failed: the broker closed the connection after "
                    "the handshake (client certificate refused?)"
                )
    except TLSFailed:
        raise
    except ssl.SSLError as e:
        raise TLSFailed(f"TLS with {url.display} failed: {e.reason or e}") from None
    except OSError:  # reset or unreachable: not a certificate problem
        return
    finally:
        sock.close()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _mqtt_string(b: bytes) -> bytes:
    return len(b).to_bytes(2, "big") + b


def probe_mqtt5(url: BrokerURL, timeout: float = 3.0) -> bool | None:
    """Does the broker speak MQTT 5? One bare CONNECT: clean start, no properties, empty
    client id (no session is touched) and no credentials (amqtt never answers a v5 CONNECT
    with them; Mosquitto logs the probe as "not authorised"). True: an MQTT 5 answer,
    accepted or refused; False: "unsupported protocol version", or closed or silent;
    None: the broker is unreachable."""
    body = _mqtt_string(b"MQTT") + bytes([5, 0x02]) + (10).to_bytes(2, "big") + b"\x00"
    body += _mqtt_string(b"")
    packet = b"\x10" + _varint(len(body)) + body
    try:
        sock: socket.socket = socket.create_connection((url.host, url.port), timeout=timeout)
    except OSError:
        return None
    try:
        if url.tls:
            sock = tls_context(url).wrap_socket(sock, server_hostname=url.host)
        sock.sendall(packet)
        answer = b""
        while len(answer) < 4:
            chunk = sock.recv(4 - len(answer))
            if not chunk:
                break
            answer += chunk
        if len(answer) < 4 or answer[0] != 0x20:
            return False
        reason = answer[3]
        if reason in (0x01, RC_UNSUPPORTED_PROTOCOL):  # 0x01: the 3.1.1 return code
            return False
        if reason == 0:
            sock.sendall(b"\xe0\x00")  # DISCONNECT
        return True
    except TimeoutError:
        return False
    except (OSError, ssl.SSLError):
        return None
    finally:
        sock.close()
