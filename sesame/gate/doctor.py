"""`sesame gate doctor`: one line per thing a lane needs, each ok / WARN / FAIL."""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sesame.common.venue import Venue
from sesame.gate.clock import FIRST_DAY_MARGIN
from sesame.gate.hardware import Hardware

MIN_FREE_BYTES = 200 * 1024 * 1024  # a day of events is a few MB; this leaves weeks


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok" | "WARN" | "FAIL"
    detail: str

    @property
    def ok(self) -> bool:
        return self.status != "FAIL"

    def line(self) -> str:
        return f"{self.name:<12} {self.status:<4} {self.detail}"


def run_checks(
    venue: Venue,
    gate_id: str,
    hw: Hardware,
    *,
    broker: str | None,
    credentials: Path | None,
    now: datetime | None = None,
    timeout: float = 5.0,
    click: bool = False,
) -> Iterator[Check]:
    g = venue.gates[gate_id]
    yield Check("venue", "ok", f"{venue.id}, lane {gate_id}: {g.from_zone} -> {g.to_zone}")
    yield _reader(hw, g.reader)
    if decoders := _decoders(hw):
        yield decoders
    if hw.controller.type == "gpio":
        from sesame.gate.doctor_gpio import gpio_checks

        yield from gpio_checks(hw.controller, g, click=click)
    else:
        yield _controller(hw, timeout)
    if (fire := hw.fire_input()) is not None:
        from sesame.gate.doctor_gpio import fire_input_check

        yield fire_input_check(fire)
    yield _clock(venue, now or datetime.now(UTC))
    yield _disk(hw.agent.data_dir)
    yield _keys(hw)
    yield _credentials(credentials)
    yield _broker(broker, credentials, gate_id, timeout)


def _reader(hw: Hardware, lane_has_reader: bool) -> Check:
    if hw.reader is None:
        if lane_has_reader:
            return Check("reader", "FAIL", "the lane has a reader but the hardware file has none")
        return Check("reader", "ok", "none (exit lane: anonymous passages)")
    from sesame.gate.readers.base import open_reader

    kind = hw.reader.get("type")
    try:
        r = open_reader(hw.reader)
    except Exception as e:
        return Check("reader", "FAIL", f"{kind}: {e}")
    try:
        time.sleep(0.5)  # let it open its device
        health = r.health
    finally:
        r.close()
    if health != "ok":
        return Check("reader", "FAIL", f"{kind}: {health}")
    return Check("reader", "ok", f"{kind} opened")


def _decoders(hw: Hardware) -> Check | None:
    """The camera's decoder can run here (FAIL), and whole (WARN: a pass is skipped)."""
    from sesame.gate import decoders

    names = decoders.configured(hw.reader)
    if not names:
        return None  # no camera: nothing decodes on this lane
    status, notes = "ok", []
    for name in names:
        try:
            s = decoders.state(name)
        except ValueError as e:
            return Check("decoders", "FAIL", str(e))
        if not s.usable:
            status = "FAIL"
            notes.append(f"{name} cannot run: {s.reason()}")
        elif s.without:
            status = "WARN" if status == "ok" else status
            notes.append(f"{s.label()}: {s.reason()}")
    head = f"camera uses {', '.join(names)}"
    if notes:
        return Check("decoders", status, f"{head}: {'; '.join(notes)}")
    return Check("decoders", status, f"{head}; {decoders.summary()}")


def _controller(hw: Hardware, timeout: float) -> Check:
    port = hw.controller.port
    if port == "simulated":
        return Check("controller", "WARN", "simulated: no turnstile, every opening passes")
    from sesame.gate.turnstile import SerialTurnstile

    try:
        t = SerialTurnstile(port, hw.controller.baudrate, ping_every=0.3)
    except Exception as e:
        return Check("controller", "FAIL", f"{port}: {e}")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not t.heard:
            time.sleep(0.05)
        heard, noise = t.heard, t.noise
    finally:
        t.close()
    if not heard:
        return Check("controller", "FAIL", f"{port}: no answer to PING within {timeout:g} s")
    extra = f" ({noise} noise lines)" if noise else ""
    return Check("controller", "ok", f"{port} answers PING{extra}")


def _clock(venue: Venue, now: datetime) -> Check:
    first = min(d.date for d in venue.days)
    earliest = datetime.combine(first, datetime.min.time(), venue.tz) - FIRST_DAY_MARGIN
    local = venue.local(now).strftime("%Y-%m-%d %H:%M:%S %Z")
    if now < earliest:
        return Check("clock", "FAIL", f"{local} is before the venue's first day: no RTC/NTP?")
    return Check("clock", "ok", local)


def _disk(data_dir: Path) -> Check:
    probe = data_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        return Check("disk", "FAIL", f"{data_dir}: not writable")
    free = shutil.disk_usage(probe).free
    status = "ok" if free >= MIN_FREE_BYTES else "FAIL"
    return Check("disk", status, f"{free / 2**30:.1f} GiB free for {data_dir}")


def _keys(hw: Hardware) -> Check:
    from sesame.common.tokens import load_public_keys

    try:
        ring = load_public_keys(*hw.agent.pubkeys)
    except (OSError, ValueError) as e:
        return Check("keys", "FAIL", str(e))
    if not ring:
        return Check("keys", "FAIL", "no badge key configured")
    # load_public_keys accepts a private key too (handy on the organiser's machine), but on a
    # lane it means whoever takes the board can sign badges.
    private = [str(p) for p in hw.agent.pubkeys if b"PRIVATE KEY" in Path(p).read_bytes()]
    if private:
        return Check(
            "keys", "FAIL", f"{private[0]} is the private signing key: install the .pub file"
        )
    return Check("keys", "ok", f"{len(ring)} badge key(s): {', '.join(sorted(ring))}")


def _credentials(path: Path | None) -> Check:
    if path is None:
        return Check("credentials", "WARN", "no credential file (URL credentials only)")
    try:
        st = path.stat()
    except OSError as e:
        return Check("credentials", "FAIL", f"{path}: {e.strerror}")
    from sesame.common.mqtt import parse_broker_url

    try:
        url = parse_broker_url(None, path) if _has_broker(path) else None
    except ValueError as e:
        return Check("credentials", "FAIL", str(e))
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return Check("credentials", "WARN", f"{path} is readable by others (chmod 600)")
    return Check("credentials", "ok", f"{path} ({url.username if url else 'no broker entry'})")


def _has_broker(path: Path) -> bool:
    import json

    try:
        return bool(json.loads(path.read_text()).get("broker"))
    except (OSError, ValueError, AttributeError):
        return False


def _broker(url: str | None, credentials: Path | None, gate_id: str, timeout: float) -> Check:
    from sesame.common import mqtt

    try:
        parsed = mqtt.parse_broker_url(url, credentials)
    except ValueError as e:
        return Check("broker", "FAIL", str(e))
    try:
        conn = mqtt.connect(
            parsed, f"gate-{gate_id}-doctor", clean_start=True, session_expiry=0, timeout=timeout
        )
    except mqtt.ConnectRefused as e:
        return Check("broker", "FAIL", f"{parsed.display}: {e.message}")
    except (mqtt.ConnectTimeout, OSError) as e:
        return Check("broker", "FAIL", f"{parsed.display}: {e}")
    proto = conn.protocol
    conn.close(timeout=1)
    return Check("broker", "ok", f"{parsed.display} (MQTT {proto})")
