"""Turnstile controllers: the serial line protocol, a driver, and simulated controllers.

Line protocol (ASCII, one command or answer per line, `\\n`-terminated, `\\r` ignored):

  host -> controller                    controller -> host
  OPEN IN <id> | OPEN OUT <id>          PASS <id>       the arm turned: one person passed
                                        TIMEOUT <id>    nobody pushed within its time: annulled
  FREE ON | FREE OFF                    FREE ON | FREE OFF   (acknowledged) evacuation: the
                                                        exit stays free / back to normal
  PING <n>                              PONG <n>        health check
                                        PULSE IN | PULSE OUT   an unsolicited passage (lanes
                                                        without reader, or while held free);
                                                        the agent records it along the lane
                                                        (from -> to): every lane is one-way

`<id>` is a short token chosen by the host so a late answer is never taken for another
opening. Anything else the controller sends is noise: counted and ignored. A controller
that does not answer PING is reported `silent` on the gate's status topic.
"""

from __future__ import annotations

import os
import queue
import secrets
import threading
import time
from collections.abc import Callable
from typing import Protocol

PING_EVERY = 2.0  # seconds between health checks
SILENT_AFTER = 5.0  # no answer for this long: the controller is silent


class Turnstile(Protocol):
    """Implemented here (serial, memory) and in turnstile_gpio.py (dry contacts on GPIO).
    A driver with a fire alarm input also has `fire_alarm: bool` (True while the input is
    active; it frees the lane itself); the agent reads it with getattr, default False."""

    health: str  # "ok" | "silent" | "closed"

    def open(self, direction: str, timeout: float) -> bool:
        """Unlock for one passage ("in"/"out"); True once the arm turned, False if nobody did."""
        ...

    def hold_free(self, on: bool) -> None:
        """Evacuation: keep the lane free (exits) or back to normal."""
        ...

    def pulse(self, timeout: float) -> str | None:
        """Next unsolicited passage ("in"/"out"), or None within `timeout`."""
        ...

    def close(self) -> None: ...


class MemoryTurnstile:
    """In-process turnstile for tests and simulation: no threads, no I/O.

    `pushes` decides whether a person pushes the arm: a bool, or a callable called per opening.
    """

    def __init__(self, pushes: bool | Callable[[str], bool] = True):
        self.pushes = pushes
        self.health = "ok"
        self.free = False
        self.fire_alarm = False  # set_fire_alarm(): the lane's fire input, as a driver has it
        self.openings: list[tuple[str, bool]] = []
        self._pulses: queue.SimpleQueue[str] = queue.SimpleQueue()

    def set_fire_alarm(self, on: bool) -> None:
        self.fire_alarm = on

    def open(self, direction: str, timeout: float) -> bool:
        passed = self.pushes(direction) if callable(self.pushes) else bool(self.pushes)
        self.openings.append((direction, passed))
        return passed

    def hold_free(self, on: bool) -> None:
        self.free = on

    def push_pulse(self, direction: str = "out") -> None:
        """Someone walked through a reader-less lane (or a lane held free)."""
        self._pulses.put(direction)

    def pulse(self, timeout: float) -> str | None:
        try:
            return self._pulses.get(timeout=timeout) if timeout > 0 else self._pulses.get_nowait()
        except queue.Empty:
            return None

    def close(self) -> None:
        self.health = "closed"


class SerialTurnstile:
    """Driver for a controller on a serial port (pyserial), speaking the protocol above."""

    fire_alarm = False  # the line protocol has no fire input: wire the panel to the controller

    def __init__(
        self,
        port: str,
        baudrate: int = 9600,
        *,
        ping_every: float = PING_EVERY,
        silent_after: float = SILENT_AFTER,
        answer_margin: float = 2.0,
    ):
        self.port, self.baudrate = port, baudrate
        self._serial = self._open_port()
        self.reopened = 0  # times the port was reopened after an unplug
        self.health = "ok"
        self.noise = 0  # lines that were not protocol answers
        self.heard = 0  # valid lines from the controller (doctor: is anyone there?)
        self._answers: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._pulses: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._last_heard = time.monotonic()
        self._ping_every, self._silent_after = ping_every, silent_after
        self._margin = answer_margin
        self._reader = threading.Thread(target=self._read_loop, name=f"ctl-{port}", daemon=True)
        self._reader.start()
        self._pinger = threading.Thread(target=self._ping_loop, name=f"ping-{port}", daemon=True)
        self._pinger.start()

    # -- wire ------------------------------------------------------------------------
    def _open_port(self):
        import serial  # pyserial; imported here so the simulator does not need a port

        return serial.Serial(self.port, baudrate=self.baudrate, timeout=0.1, write_timeout=1.0)

    def _reopen(self) -> None:
        """The controller's USB adapter was unplugged: close, then try the port again every
        second until it is back (a /dev/serial/by-id/ path survives a replug)."""
        try:
            self._serial.close()
        except Exception:
            pass
        while not self._stop.wait(1.0):
            try:
                port = self._open_port()
            except Exception:
                continue
            with self._write_lock:
                self._serial = port
            self.reopened += 1
            return

    def _send(self, line: str) -> None:
        try:
            with self._write_lock:
                self._serial.write((line + "\n").encode("ascii"))
        except Exception:  # a write to a dead port: reported through health, never raised
            self.health = "silent"

    def _read_loop(self) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                chunk = self._serial.read(256)
            except Exception:
                if self._stop.is_set():
                    return
                self.health = "silent"
                buf = b""
                self._reopen()
                continue
            if not chunk:
                continue
            buf += chunk
            *lines, buf = buf.split(b"\n")
            if len(buf) > 256:  # a runaway line without newline is noise
                self.noise += 1
                buf = b""
            for raw in lines:
                self._line(raw.replace(b"\r", b"").decode("ascii", "replace").strip())

    def _line(self, line: str) -> None:
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("PASS", "TIMEOUT", "PONG"):
            self._answers.put((parts[0], parts[1]))
        elif len(parts) == 2 and parts[0] == "PULSE" and parts[1] in ("IN", "OUT"):
            self._pulses.put(parts[1].lower())
        elif len(parts) == 2 and parts[0] == "FREE" and parts[1] in ("ON", "OFF"):
            pass
        else:
            self.noise += 1
            return
        self._last_heard = time.monotonic()
        self.heard += 1
        self.health = "ok"

    def _ping_loop(self) -> None:
        n = 0
        while not self._stop.wait(self._ping_every):
            n += 1
            self._send(f"PING {n}")
            if time.monotonic() - self._last_heard > self._silent_after:
                self.health = "silent"

    def _await(self, ident: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                word, got = self._answers.get(timeout=left)
            except queue.Empty:
                break
            if got == ident:
                return word
            # a PONG or a late answer to an earlier opening: not ours
        return None

    # -- Turnstile ---------------------------------------------------------------
    def open(self, direction: str, timeout: float) -> bool:
        ident = secrets.token_hex(3)
        self._send(f"OPEN {direction.upper()} {ident}")
        # The controller times the opening itself; allow it a margin to say so.
        answer = self._await(ident, timeout + self._margin)
        if answer is None:
            self.health = "silent"
        return answer == "PASS"

    def hold_free(self, on: bool) -> None:
        self._send(f"FREE {'ON' if on else 'OFF'}")

    def pulse(self, timeout: float) -> str | None:
        try:
            return self._pulses.get(timeout=timeout) if timeout > 0 else self._pulses.get_nowait()
        except queue.Empty:
            return None

    def close(self) -> None:
        self._stop.set()
        try:
            self._serial.close()
        except Exception:
            pass
        self.health = "closed"


class SimulatedController:
    """A turnstile controller on a pseudo-terminal, for tests and bench rigs.

    `.port` is the device path to give SerialTurnstile. `pushes` says whether the person
    pushes the arm (bool or callable per opening); `silent=True` makes it stop answering;
    `noise()` writes garbage; `pulse()` reports an unsolicited passage.
    """

    def __init__(self, pushes: bool | Callable[[str], bool] = True, pass_delay: float = 0.0):
        self._master, self._slave = os.openpty()
        import tty

        tty.setraw(self._slave)  # no echo, no line discipline: bytes as they are
        self.port = os.ttyname(self._slave)
        self.pushes, self.pass_delay = pushes, pass_delay
        self.silent = False
        self.free = False
        self.received: list[str] = []
        self.passes = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="sim-controller", daemon=True)
        self._thread.start()

    def _write(self, data: bytes) -> None:
        with self._lock:
            try:
                os.write(self._master, data)
            except OSError:
                pass

    def _loop(self) -> None:
        import select

        buf = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(self._master, 1024)
            except OSError:
                return
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                self._command(raw.decode("ascii", "replace").strip())

    def _command(self, line: str) -> None:
        self.received.append(line)
        if self.silent:
            return
        parts = line.split()
        if len(parts) == 3 and parts[0] == "OPEN":
            direction, ident = parts[1].lower(), parts[2]
            pushed = self.pushes(direction) if callable(self.pushes) else bool(self.pushes)
            if self.pass_delay:
                time.sleep(self.pass_delay)
            if pushed:
                self.passes += 1
            self._write(f"{'PASS' if pushed else 'TIMEOUT'} {ident}\n".encode())
        elif len(parts) == 2 and parts[0] == "FREE":
            self.free = parts[1] == "ON"
            self._write(f"FREE {parts[1]}\n".encode())
        elif len(parts) == 2 and parts[0] == "PING":
            self._write(f"PONG {parts[1]}\n".encode())

    def pulse(self, direction: str = "out") -> None:
        self._write(f"PULSE {direction.upper()}\n".encode())

    def noise(
        self, data: bytes = b"\x00\xff\xfe garbage \x1b[2J\r\nPASS\nPULSE SIDEWAYS\n"
    ) -> None:
        self._write(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
