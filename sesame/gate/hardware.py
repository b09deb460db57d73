"""The per-gate hardware file (TOML): which reader, which turnstile controller, where the
lane keeps its data and finds its keys and credentials. Example: config/gates/*.toml.

    [reader]                 # omit on exit lanes without a reader
    type = "camera"          # camera | serial | keyboard | multi: see sesame/gate/readers/base.py
    source = 0
    [controller]
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
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sesame.common.venue import ConfigError, _line_of


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Controller(_Model):
    port: str = Field(description='serial device of the turnstile controller, or "simulated"')
    baudrate: int = Field(9600, gt=0, description="serial speed")
    pass_timeout_s: float = Field(
        8.0, gt=0, le=120, description="time a person has to push the arm once opened"
    )


class AgentSettings(_Model):
    data_dir: Path = Field(description="outbox database and last received values")
    pubkeys: tuple[Path, ...] = Field(description="badge verification keys (PEM)")
    credentials: Path | None = Field(None, description="broker credential file (JSON)")
    heartbeat_s: float = Field(5.0, gt=0, le=300, description="status heartbeat period")


class Hardware(_Model):
    reader: dict[str, Any] | None = Field(None, description="reader section for open_reader()")
    controller: Controller
    agent: AgentSettings


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
        key = ".".join(str(x) for x in err["loc"])
        msg = {"extra_forbidden": "unknown key", "missing": "required key is missing"}.get(
            err["type"], err["msg"]
        )
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
