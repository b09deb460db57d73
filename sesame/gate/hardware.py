"""The per-gate hardware file (TOML): which reader, which turnstile controller, where the
lane keeps its data and finds its keys and credentials. Example: config/gates/*.toml.

    [reader]                 # omit on exit lanes without a reader
    type = "camera"          # camera | serial | keyboard | multi: see sesame/gate/readers/base.py
    source = 0
    [controller]             # type = "serial" (the default) or "gpio" (GpioController below)
    port = "/dev/ttyUSB0"    # "simulated": no turnstile, every opening passes (bench rigs)
    baudrate = 9600
    pass_timeout_s = 8
    [agent]
    data_dir = "/var/lib/sesame/churchill-in-1"
    pubkeys = ["/etc/sesame/badge-signing.pub"]
    credentials = "/etc/sesame/credentials/gate-churchill-in-1.json"

Relative paths are relative to the hardware file. Unknown keys are refused; every problem is
one ConfigError naming the file, the key and the line.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from sesame.common.venue import ConfigError, _line_of


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PASS_TIMEOUT = Field(8.0, gt=0, le=120, description="time a person has to push the arm once opened")
# BCM numbers of the GPIO lines on the 40-pin header of a Raspberry Pi (and compatibles)
Pin = Annotated[int, Field(ge=0, le=27, description="BCM GPIO number on the 40-pin header")]
Level = Literal["low", "high"]
Pull = Literal["up", "down", "none"]


class FireAlarmInput(_Model):
    """The fire panel's relay contact on a GPIO input of the lane's board, whatever drives the
    turnstile (a serial controller has no fire input of its own; sesame/gate/fire_input.py).
    A GPIO controller may take it as its `fire_alarm_pin` instead, not both."""

    pin: Pin
    active: Level = Field(
        "high", description="level meaning ALARM (a normally closed contact to ground: high)"
    )
    pull: Pull = Field("up", description="pull resistor on the input")


class Controller(_Model):
    """A controller speaking the line protocol of sesame/gate/turnstile.py on a serial port."""

    type: Literal["serial"] = "serial"
    port: str = Field(description='serial device of the turnstile controller, or "simulated"')
    baudrate: int = Field(9600, gt=0, description="serial speed")
    pass_timeout_s: float = PASS_TIMEOUT


class GpioController(_Model):
    """A dry-contact turnstile on the board's GPIO through a relay board
    (sesame/gate/turnstile_gpio.py; wiring in sesame/gate/deploy/INSTALL.md)."""

    type: Literal["gpio"]
    pass_timeout_s: float = PASS_TIMEOUT
    relay_active: Level = Field(description="level of a GPIO output that closes its relay")
    pulse_ms: int = Field(300, ge=20, le=5000, description="length of an unlock pulse")
    open_in_pin: Pin | None = Field(None, description="relay: unlock one passage inwards")
    open_out_pin: Pin | None = Field(None, description="relay: unlock one passage outwards")
    free_pin: Pin | None = Field(None, description="relay: keep the arms free (evacuation)")
    passed_in_pin: Pin | None = Field(None, description="contact: the arm turned inwards")
    passed_out_pin: Pin | None = Field(None, description="contact: the arm turned outwards")
    contact_active: Level = Field("low", description="level of a closed passage contact")
    contact_pull: Pull = Field("up", description="pull resistor on the passage inputs")
    debounce_ms: int = Field(50, ge=0, le=2000, description="a contact must be quiet this long")
    fire_alarm_pin: Pin | None = Field(None, description="input: the fire panel's relay contact")
    fire_alarm_active: Level = Field(
        "high", description="level meaning ALARM (a normally closed contact to ground: high)"
    )
    fire_alarm_pull: Pull = Field("up", description="pull resistor on the fire alarm input")

    @model_validator(mode="after")
    def _pins(self) -> GpioController:
        used: dict[int, str] = {}
        for name in self.pin_names():
            pin = getattr(self, name)
            if pin is None:
                continue
            if pin in used:
                raise ValueError(f"{name}: GPIO{pin} is already {used[pin]}")
            used[pin] = name
        if self.passed_in_pin is None and self.passed_out_pin is None:
            raise ValueError("passed_in_pin or passed_out_pin: a passage contact is needed")
        return self

    def fire_input(self) -> FireAlarmInput | None:
        """`fire_alarm_pin` and its level and pull, as any lane's fire input."""
        if self.fire_alarm_pin is None:
            return None
        return FireAlarmInput(pin=self.fire_alarm_pin, active=self.fire_alarm_active,
                              pull=self.fire_alarm_pull)  # fmt: skip

    @staticmethod
    def pin_names() -> tuple[str, ...]:
        return (
            "open_in_pin", "open_out_pin", "free_pin",
            "passed_in_pin", "passed_out_pin", "fire_alarm_pin",
        )  # fmt: skip


def _controller_type(data: Any) -> str:
    kind = data.get("type", "serial") if isinstance(data, dict) else getattr(data, "type", "")
    return kind if kind in ("serial", "gpio") else "serial"


AnyController = Annotated[
    Annotated[Controller, Tag("serial")] | Annotated[GpioController, Tag("gpio")],
    Discriminator(_controller_type),
]


class AgentSettings(_Model):
    data_dir: Path = Field(description="outbox database and last received values")
    pubkeys: tuple[Path, ...] = Field(description="badge verification keys (PEM)")
    credentials: Path | None = Field(None, description="broker credential file (JSON)")
    heartbeat_s: float = Field(5.0, gt=0, le=300, description="status heartbeat period")


class Hardware(_Model):
    reader: dict[str, Any] | None = Field(None, description="reader section for open_reader()")
    controller: AnyController
    fire_alarm: FireAlarmInput | None = None
    agent: AgentSettings

    @model_validator(mode="after")
    def _one_fire_input(self) -> Hardware:
        c, fire = self.controller, self.fire_alarm
        if fire is None or not isinstance(c, GpioController):
            return self
        if c.fire_alarm_pin is not None:
            raise ValueError("fire_alarm: the controller has fire_alarm_pin already: keep one")
        for name in c.pin_names():
            if getattr(c, name) == fire.pin:
                raise ValueError(f"fire_alarm: GPIO{fire.pin} is already controller.{name}")
        return self

    def fire_input(self) -> FireAlarmInput | None:
        """The lane's fire alarm input: `[fire_alarm]`, or a GPIO controller's own pin."""
        if self.fire_alarm is not None:
            return self.fire_alarm
        return self.controller.fire_input() if isinstance(self.controller, GpioController) else None


def load_hardware(path: str | Path) -> Hardware:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except OSError as e:
        raise ConfigError(str(p), "", e.strerror or str(e)) from None
    except UnicodeDecodeError:
        raise ConfigError(str(p), "", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(p), "", f"TOML syntax: {e}") from None
    try:
        hw = Hardware.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = list(err["loc"])
        if loc[:1] == ["controller"] and loc[1:2] in (["serial"], ["gpio"]):
            del loc[1]  # the union's tag is not a key of the file
        key = ".".join(str(x) for x in loc)
        msg = {"extra_forbidden": "unknown key", "missing": "required key is missing"}.get(
            err["type"], err["msg"].removeprefix("Value error, ")
        )
        if err["type"] == "literal_error" and loc == ["controller", "type"]:
            msg = 'must be "serial" or "gpio"'
        if loc == ["controller"] and ": " in msg:  # cross-field pin checks name their key
            name, msg = msg.split(": ", 1)
            key = f"controller.{name.split(' ')[0]}"
        if not loc and msg.startswith("fire_alarm: "):  # the file-wide fire input check
            key, msg = "fire_alarm", msg.removeprefix("fire_alarm: ")
        raise ConfigError(str(p), key, msg, _line_of(text, key)) from None
    if hw.reader is not None and not isinstance(hw.reader.get("type"), str):
        raise ConfigError(
            str(p), "reader.type", "required key is missing", _line_of(text, "reader")
        )
    base = p.resolve().parent

    def rel(x: Path) -> Path:
        return x if x.is_absolute() else base / x

    agent = hw.agent.model_copy(
        update={
            "data_dir": rel(hw.agent.data_dir),
            "pubkeys": tuple(rel(k) for k in hw.agent.pubkeys),
            "credentials": rel(hw.agent.credentials) if hw.agent.credentials else None,
        }
    )
    return hw.model_copy(update={"agent": agent})
