"""A dry-contact turnstile on the board's GPIO (gpiozero), behind the Turnstile interface.

Tripod turnstiles and speed gates take potential-free inputs and give potential-free outputs:

  board -> turnstile (relays)             turnstile -> board (contacts)
  open_in / open_out: a pulse unlocks     passed_in / passed_out: the arm turned, one person
    one passage in that direction           passed (one contact for both directions is fine)
  free: held closed, the arms are free    (the fire panel's relay: sesame/gate/fire_input.py)

Semantics are the serial driver's: `open()` pulses the direction's relay and waits for that
direction's passage contact or the timeout (False: NO_PASSAGE); a contact nobody opened for is
an unsolicited pulse (an exit lane without a reader, a lane held free); `hold_free()` keeps the
lane free. A chattering contact is one passage: an activation counts only after the input was
quiet for `debounce_ms` (debounced here, not by the pin library, so every backend behaves
alike). The controller's `fire_alarm_pin` is the lane's fire input, served as on any lane by
`fire_input.WithFireAlarm` around this driver (`Hardware.fire_input()`).

Outputs are driven inactive when the driver starts (a restart after a crash releases what the
dead process left) and when it closes. What a killed process leaves on a line depends on the
board: see INSTALL.md for the turnstile's own fail-safe wiring.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from sesame.gate.hardware import GpioController

log = logging.getLogger("sesame.gate.gpio")

OUTPUTS = ("open_in", "open_out", "free")


class GpioError(RuntimeError):
    """A pin that cannot be set up (in use, not on this board, no pin library)."""


def lane_problem(cfg: GpioController, lane) -> str | None:
    """What the wiring lacks for this lane (a venue Gate), as "key: problem", or None."""
    direction = "out" if lane.is_exit else "in"
    if lane.reader and getattr(cfg, f"open_{direction}_pin") is None:
        return f"open_{direction}_pin: the lane has a reader but no relay to unlock it"
    return None


class _Contact:
    """One input: logical level (per the configured active level) and a quiet-time debounce."""

    def __init__(self, device, invert: bool, debounce_s: float):
        self.device, self.invert, self.debounce_s = device, invert, debounce_s
        self.last_edge = float("-inf")
        self.chatter = 0  # edges ignored as bounce

    @property
    def active(self) -> bool:
        return bool(self.device.is_active) != self.invert

    def edge(self, now: float) -> bool:
        """An edge arrived; True when it is a fresh activation (not bounce)."""
        quiet = now - self.last_edge >= self.debounce_s
        self.last_edge = now
        if not self.active:
            return False
        if not quiet:
            self.chatter += 1
        return quiet


class GpioTurnstile:
    def __init__(self, cfg: GpioController, *, pin_factory=None):
        try:
            import gpiozero
        except ImportError as e:  # pragma: no cover - gpiozero is a dependency
            raise GpioError(f"gpiozero is not installed ({e})") from None
        self.cfg = cfg
        self.health = "ok"
        self.passages = 0  # passage contacts counted (doctor, tests)
        self._lock = threading.Lock()
        self._passed = threading.Condition(self._lock)
        self._waiting: str | None = None  # direction of the opening under way
        self._got: bool = False
        self._pulses: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._free_wanted = False
        self._free_on = False
        self._closed = threading.Event()
        self.outputs: dict[str, gpiozero.DigitalOutputDevice] = {}
        self._contacts: dict[str, _Contact] = {}
        try:
            self._setup(gpiozero, pin_factory)
        except Exception as e:
            self.close()
            raise GpioError(str(e) or type(e).__name__) from None

    def _setup(self, gpiozero, factory) -> None:
        cfg = self.cfg
        for name in OUTPUTS:
            pin = getattr(cfg, f"{name}_pin")
            if pin is None:
                continue
            try:
                self.outputs[name] = gpiozero.DigitalOutputDevice(
                    pin,
                    active_high=cfg.relay_active == "high",
                    initial_value=False,  # released: whatever a dead agent left is undone
                    pin_factory=factory,
                )
            except Exception as e:
                raise GpioError(f"{name}_pin GPIO{pin}: {e}") from None
        debounce = cfg.debounce_ms / 1000
        for direction in ("in", "out"):
            pin = getattr(cfg, f"passed_{direction}_pin")
            if pin is not None:
                c = self._input(gpiozero, factory, f"passed_{direction}_pin", pin,
                                cfg.contact_pull, cfg.contact_active, debounce)  # fmt: skip
                self._contacts[direction] = c
                c.device.when_activated = c.device.when_deactivated = (
                    lambda _d=None, direction=direction: self._contact_edge(direction)
                )

    @staticmethod
    def _input(gpiozero, factory, name, pin, pull, level, debounce) -> _Contact:
        pull_up = {"up": True, "down": False, "none": None}[pull]
        try:
            dev = gpiozero.DigitalInputDevice(
                pin,
                pull_up=pull_up,
                active_state=(level == "high") if pull_up is None else None,
                bounce_time=None,
                pin_factory=factory,
            )
        except Exception as e:
            raise GpioError(f"{name} GPIO{pin}: {e}") from None
        # With a pull resistor gpiozero takes the opposite level as active (pull-up: low).
        device_high = (not pull_up) if pull_up is not None else level == "high"
        return _Contact(dev, invert=device_high != (level == "high"), debounce_s=debounce)

    # -- pin callbacks (gpiozero's thread; synchronous with the mock factory) ---------------
    def _contact_edge(self, direction: str) -> None:
        contact = self._contacts[direction]
        with self._lock:
            if not contact.edge(time.monotonic()):
                return
            self.passages += 1
            # A single contact serves both directions; it answers the opening under way.
            serves = {direction} if len(self._contacts) == 2 else {"in", "out"}
            if self._waiting in serves and not self._got:
                self._got = True
                self._passed.notify_all()
                return
        self._pulses.put(direction)

    def _apply_free(self) -> None:
        """Free relay (or, without one, every unlock relay held closed) as asked (evacuation,
        a fire alarm). Called with the lock held."""
        want = self._free_wanted and not self._closed.is_set()
        if want == self._free_on:
            return
        self._free_on = want
        targets = (
            [self.outputs["free"]]
            if "free" in self.outputs
            else [d for n, d in self.outputs.items() if n != "free"]
        )
        for dev in targets:
            dev.value = want

    # -- Turnstile ---------------------------------------------------------------------------
    @property
    def free(self) -> bool:
        return self._free_on

    def open(self, direction: str, timeout: float) -> bool:
        relay = self.outputs.get(f"open_{direction}")
        deadline = time.monotonic() + timeout
        with self._lock:
            self._waiting, self._got = direction, False
            pulse = relay is not None and not self._free_on
            if pulse:
                relay.on()
        try:
            if pulse:
                # The whole pulse, even if the arm turns at once: controllers latch the
                # unlock on a pulse of their minimum length.
                self._closed.wait(self.cfg.pulse_ms / 1000)
                with self._lock:
                    if not self._free_on:
                        relay.off()
            with self._lock:
                while not self._got and not self._closed.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._passed.wait(left)
                return self._got
        finally:
            with self._lock:
                self._waiting = None

    def hold_free(self, on: bool) -> None:
        with self._lock:
            self._free_wanted = on
            self._apply_free()

    def pulse(self, timeout: float) -> str | None:
        try:
            return self._pulses.get(timeout=timeout) if timeout > 0 else self._pulses.get_nowait()
        except queue.Empty:
            return None

    def levels(self) -> dict[str, bool]:
        """Each passage contact's logical state now (doctor): True = contact active."""
        return {f"passed_{d}": c.active for d, c in self._contacts.items()}

    def click(self, name: str, seconds: float | None = None) -> None:
        """Close one relay for a pulse (doctor --click): the technician hears it."""
        dev = self.outputs[name]
        dev.on()
        try:
            time.sleep(self.cfg.pulse_ms / 1000 if seconds is None else seconds)
        finally:
            dev.off()

    def close(self) -> None:
        """Release every relay, then hand the pins back (gpiozero makes them inputs)."""
        self._closed.set()
        with self._lock:
            self._passed.notify_all()
            self._free_on = False
        for dev in self.outputs.values():
            try:
                dev.off()
            except Exception:
                pass
        for dev in [*self.outputs.values(), *(c.device for c in self._contacts.values())]:
            try:
                dev.close()
            except Exception:
                pass
        self.health = "closed"
