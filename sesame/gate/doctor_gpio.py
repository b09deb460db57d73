"""`sesame gate doctor` for a GPIO turnstile: the pins can be had, the lane's wiring is
complete, each input's level now (a passage contact closed at rest is a stuck or miswired
contact; an active fire alarm frees the lane), and on request a click of each relay."""

from __future__ import annotations

import time
from collections.abc import Iterator

from sesame.gate.doctor import Check
from sesame.gate.hardware import FireAlarmInput, GpioController
from sesame.gate.turnstile_gpio import OUTPUTS, GpioError, GpioTurnstile, lane_problem


def gpio_checks(cfg: GpioController, lane, *, click: bool = False) -> Iterator[Check]:
    if problem := lane_problem(cfg, lane):
        yield Check("controller", "FAIL", f"gpio: controller.{problem}")
        return
    try:
        t = GpioTurnstile(cfg)
    except GpioError as e:
        yield Check("controller", "FAIL", f"gpio: {e}")
        return
    try:
        relays = [f"{n} GPIO{getattr(cfg, f'{n}_pin')}" for n in OUTPUTS if n in t.outputs]
        yield Check("controller", "ok", f"gpio: relays {', '.join(relays)} released")
        for name, active in t.levels().items():
            pin = getattr(cfg, f"{name}_pin")
            status, word = ("WARN", "closed at rest: stuck?") if active else ("ok", "open")
            yield Check(f"in {name}", status, f"GPIO{pin} {word}")
        if click:
            for name in t.outputs:
                t.click(name)
                yield Check(f"click {name}", "ok", f"GPIO{getattr(cfg, f'{name}_pin')} pulsed "
                            f"{cfg.pulse_ms} ms (did relay and turnstile react?)")  # fmt: skip
                time.sleep(0.5)
    finally:
        t.close()


def fire_input_check(cfg: FireAlarmInput) -> Check:
    """The lane's fire alarm input (`Hardware.fire_input()`): its level now."""
    from sesame.gate.fire_input import WithFireAlarm
    from sesame.gate.turnstile import MemoryTurnstile

    try:
        t = WithFireAlarm(MemoryTurnstile(), cfg)
    except GpioError as e:
        return Check("in fire_alarm", "FAIL", f"GPIO{cfg.pin}: {e}")
    try:
        alarm = t.levels()["fire_alarm"]
    finally:
        t.close()
    word = "ALARM (lane held free)" if alarm else "normal"
    return Check("in fire_alarm", "WARN" if alarm else "ok", f"GPIO{cfg.pin} {word}")
