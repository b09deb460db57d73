"""`sesame gate provision`: everything one lane's board needs, in one folder.

    <out>/venue.toml                     the venue file
    <out>/gates/<gate>.toml              hardware file: reader + GPIO controller (pins of
                                         INSTALL.md's table), paths relative to itself
    <out>/credentials/gate-<gate>.json   the lane's own broker credential (0600), copied from
                                         `sesame broker setup`; with TLS also ca.crt and the
                                         lane's client certificate and key (0600)
    <out>/keys/*.pub                     the badge public key(s), never a private key
    <out>/sesame-gate@.service           the systemd unit
    <out>/README.md                      what the technician does with it

Copied as it is to /etc/sesame/ on the board, `sesame gate run` (the unit) starts from it.
Writes go through a temporary file and a rename: a re-run never leaves half a file.
"""

from __future__ import annotations

import json
from pathlib import Path

from sesame.common.private_files import private_dir, write_private
from sesame.common.venue import Venue

DEPLOY = Path(__file__).resolve().parent / "deploy"
UNIT = DEPLOY / "sesame-gate@.service"
READERS = ("camera", "serial", "keyboard", "none")

READER_SECTIONS = {
    "camera": '[reader]\ntype = "camera"\nsource = 0                  # /dev/video0\n'
    "debounce_s = 2.0\n",
    "serial": '[reader]\ntype = "serial"\nport = "/dev/ttyACM0"       # USB-CDC handheld scanner\n'
    "baudrate = 9600\ndebounce_s = 2.0\n",
    "keyboard": '[reader]\ntype = "keyboard"            # a USB scanner in keyboard mode, on '
    "standard input\ndebounce_s = 2.0\n",
}

CONTROLLER = """[controller]
type = "gpio"               # dry contacts through a relay board: sesame/gate/deploy/INSTALL.md
relay_active = "low"        # most relay boards close their relay on a low input
pulse_ms = 300              # unlock pulse
pass_timeout_s = 8          # a person who has not pushed the arm by then is not counted
open_in_pin = 17            # relay K1 -> turnstile "open entry" input
open_out_pin = 27           # relay K2 -> turnstile "open exit" input
free_pin = 22               # relay K3 -> turnstile "free / emergency" input
passed_in_pin = 5           # turnstile "passed entry" contact -> GPIO5 and GND
passed_out_pin = 6          # turnstile "passed exit" contact -> GPIO6 and GND
contact_active = "low"      # a closed contact pulls the input to ground
contact_pull = "up"
debounce_ms = 50
fire_alarm_pin = 13         # fire panel relay (normally closed) -> GPIO13 and GND
fire_alarm_active = "high"  # contact open (or wire cut) = ALARM
fire_alarm_pull = "up"
"""


class ProvisionError(ValueError):
    """Something the bundle cannot be made from (one line, names the file)."""


def _write(path: Path, data: bytes, mode: int) -> None:
    # mkstemp + mode on the descriptor + rename: the credential is never readable by others,
    # not even for a moment, and no leftover or planted temporary file is written through
    write_private(path, data, mode)


def hardware_text(venue: Venue, gate: str, reader: str) -> str:
    lane = venue.gates[gate]
    head = (
        f"# Lane {gate} ({lane.name}): {lane.from_zone} -> {lane.to_zone}. Made by "
        "`sesame gate provision`;\n# check it with `sesame gate doctor` (README.md). Relative "
        "paths are relative to this file.\n\n"
    )
    section = READER_SECTIONS.get(reader, "")
    if not section:
        head += "# No [reader]: every passage contact is one anonymous passage.\n\n"
    agent = (
        f'[agent]\ndata_dir = "/var/lib/sesame/{gate}"\n'
        'pubkeys = [{keys}]\ncredentials = "../credentials/gate-{gate}.json"\nheartbeat_s = 5\n'
    )
    return head + (section + "\n" if section else "") + CONTROLLER + ("\n" + agent)


def provision(
    venue: Venue,
    venue_file: Path,
    gate: str,
    broker_config: Path,
    pubkeys: list[Path],
    out: Path,
    reader: str | None = None,
) -> list[Path]:
    """Write the bundle; returns the files written. Raises ProvisionError."""
    if gate not in venue.gates:
        known = ", ".join(sorted(venue.gates))
        raise ProvisionError(f"{venue_file}: no gate {gate!r} (known: {known})")
    lane = venue.gates[gate]
    reader = reader or ("camera" if lane.reader else "none")
    if reader not in READERS:
        raise ProvisionError(f"--reader must be one of {', '.join(READERS)}")
    if lane.reader and reader == "none":
        raise ProvisionError(f"lane {gate} has a reader in {venue_file}: choose its type")
    account = f"gate-{gate}"
    cred_file = broker_config / "credentials" / f"{account}.json"
    try:
        cred = json.loads(cred_file.read_text(encoding="utf-8"))
    except OSError as e:
        raise ProvisionError(
            f"{cred_file}: {e.strerror} (run `sesame broker setup` for this venue first)"
        ) from None
    except ValueError as e:
        raise ProvisionError(f"{cred_file}: not JSON ({e})") from None
    if not isinstance(cred, dict) or cred.get("username") != account:
        raise ProvisionError(f"{cred_file}: not the credential of {account}")
    tls_files = [cred[k] for k in ("ca", "cert", "key") if isinstance(cred.get(k), str)]
    keys: list[tuple[str, bytes]] = []
    for k in pubkeys:
        try:
            data = k.read_bytes()
        except OSError as e:
            raise ProvisionError(f"{k}: {e.strerror}") from None
        if b"PRIVATE KEY" in data:
            raise ProvisionError(f"{k} is the private signing key: give the .pub file")
        if b"PUBLIC KEY" not in data:
            raise ProvisionError(f"{k}: not a PEM public key")
        keys.append((k.name if k.suffix == ".pub" else k.name + ".pub", data))
    if len({n for n, _ in keys}) != len(keys):
        raise ProvisionError("two badge keys have the same file name")

    written: list[Path] = []
    private_dir(out / "credentials")  # before the first secret goes in

    def put(rel: str, data: bytes, mode: int = 0o644) -> None:
        _write(out / rel, data, mode)
        written.append(out / rel)

    put("venue.toml", venue_file.read_bytes())
    key_list = ", ".join(f'"../keys/{n}"' for n, _ in keys)
    put(f"gates/{gate}.toml", hardware_text(venue, gate, reader).replace("{keys}", key_list)
        .replace("{gate}", gate).encode())  # fmt: skip
    put(f"credentials/{account}.json", cred_file.read_bytes(), 0o600)
    for name in tls_files:
        src = cred_file.parent / name
        if not src.is_file():
            raise ProvisionError(f"{src}: missing (named by {cred_file})")
        put(f"credentials/{name}", src.read_bytes(), 0o600 if name.endswith(".key") else 0o644)
    for name, data in keys:
        put(f"keys/{name}", data)
    put(UNIT.name, UNIT.read_bytes())
    put("README.md", readme(venue, gate, cred.get("broker"), bool(tls_files)).encode())
    return written


def readme(venue: Venue, gate: str, broker: str | None, tls: bool) -> str:
    lane = venue.gates[gate]
    return f"""# Lane {gate}: {lane.name}

{lane.from_zone} -> {lane.to_zone}, venue {venue.id}. Broker: {broker}{" (TLS)" if tls else ""}.
Wiring and pin table: sesame/gate/deploy/INSTALL.md (section "Wiring a tripod turnstile").

1. Copy this folder to the board as /etc/sesame (owner sesame; credentials/ stays 0700/0600):

       sudo cp -r . /etc/sesame && sudo chown -R sesame:sesame /etc/sesame

2. Wire the relay board and the turnstile as gates/{gate}.toml says (change the pins
   there if yours differ), then check everything, clicking each relay once:

       sudo -u sesame sesame gate doctor --venue /etc/sesame/venue.toml --gate {gate} \\
           --hardware /etc/sesame/gates/{gate}.toml --click

   Fix every FAIL. Each input's level is shown: a passage contact must read "open" at rest,
   the fire alarm "normal".

3. Start the lane:

       sudo cp /etc/sesame/sesame-gate@.service /etc/systemd/system/
       sudo systemctl daemon-reload && sudo systemctl enable --now sesame-gate@{gate}

Keep this folder private: credentials/ holds this lane's broker password.
"""
