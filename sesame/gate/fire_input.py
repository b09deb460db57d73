"""A fire alarm contact on the board's GPIO for any turnstile driver (`[fire_alarm]` in the
lane's hardware file): the serial line protocol has no fire input, and a lane must obey the
fire panel whatever drives its arms.

`WithFireAlarm` wraps the driver: while the input is active it holds the lane free from the
pin callback itself, at once, without the agent's loop or the network, and keeps it free
until the input is restored; evacuation (`hold_free`) is combined with it. It has the
driver's interface plus `fire_alarm`, which the agent reads to report `FIRE_ALARM` and to
refuse entries (sesame/gate/agent.py). A GPIO controller's own `fire_alarm_pin` is served
the same way (`Hardware.fire_input()`).
"""

from __future__ import annotations

import logging
import threading

from sesame.gate.hardware import FireAlarmInput
from sesame.gate.turnstile import Turnstile
from sesame.gate.turnstile_gpio import GpioError, GpioTurnstile

log = logging.getLogger("sesame.gate.fire_input")


class WithFireAlarm:
    def __init__(self, inner: Turnstile, cfg: FireAlarmInput, *, pin_factory=None):
        try:
            import gpiozero
        except ImportError as e:  # pragma: no cover - gpiozero is a dependency
            raise GpioError(f"gpiozero is not installed ({e})") from None
        self.inner = inner
        self._lock = threading.Lock()
        self._wanted = False  # evacuation asked the lane to be free
        self._fire = False
        self._contact = GpioTurnstile._input(
            gpiozero, pin_factory, "fire_alarm.pin", cfg.pin, cfg.pull, cfg.active, 0.0
        )
        dev = self._contact.device
        dev.when_activated = dev.when_deactivated = lambda _d=None: self._edge()
        self._edge()  # an alarm already active at start frees the lane at once

    def _edge(self) -> None:
        with self._lock:
            was, self._fire = self._fire, self._contact.active
            if was == self._fire:
                return
            self.inner.hold_free(self._wanted or self._fire)
        log.warning("fire alarm input %s", "ACTIVE: lane released" if self._fire else "restored")

    @property
    def fire_alarm(self) -> bool:
        return self._fire

    @property
    def health(self) -> str:
        return self.inner.health

    def levels(self) -> dict[str, bool]:
        """The input's logical state now (doctor): True = alarm."""
        return {"fire_alarm": self._contact.active}

    def open(self, direction: str, timeout: float) -> bool:
        return self.inner.open(direction, timeout)

    def hold_free(self, on: bool) -> None:
        with self._lock:
            self._wanted = on
            self.inner.hold_free(on or self._fire)

    def pulse(self, timeout: float) -> str | None:
        return self.inner.pulse(timeout)

    def close(self) -> None:
        try:
            self._contact.device.close()
        except Exception:
            pass
        self.inner.close()
