"""`sesame gate provision`: every file a lane's board needs, the credential private, and the
bundle loads (hardware file, keys, credential) as `gate run` and `gate doctor` read it."""

from __future__ import annotations

import json
import stat

from sesame.broker.setup import setup
from sesame.cli import main
from sesame.common.tokens import generate_keypair
from sesame.common.venue import load_venue
from sesame.gate.hardware import load_hardware
from tests.fixtures.gate import ROOT

VENUE = ROOT / "config" / "grand-palais.toml"


def test_provision_writes_the_whole_bundle(tmp_path, capsys):
    setup(load_venue(VENUE), tmp_path / "broker", tls=True)
    priv, pub = generate_keypair(tmp_path / "keys")
    out = tmp_path / "bundle"
    rc = main(["gate", "provision", "--venue", str(VENUE), "--gate", "churchill-in-1",
               "--broker-config", str(tmp_path / "broker"), "--pubkey", str(pub),
               "--out", str(out)])  # fmt: skip
    assert rc in (0, None)
    for rel in ("venue.toml", "gates/churchill-in-1.toml", "credentials/gate-churchill-in-1.json",
                "credentials/ca.crt", "credentials/gate-churchill-in-1.key",
                "keys/badge-signing.pub", "sesame-gate@.service", "README.md"):  # fmt: skip
        assert (out / rel).is_file(), rel
    for rel in ("credentials/gate-churchill-in-1.json", "credentials/gate-churchill-in-1.key"):
        assert stat.S_IMODE((out / rel).stat().st_mode) == 0o600, rel
    hw = load_hardware(out / "gates" / "churchill-in-1.toml")
    assert hw.controller.type == "gpio" and hw.controller.open_in_pin == 17
    assert hw.agent.credentials.resolve() == (out / "credentials/gate-churchill-in-1.json")
    cred = json.loads(hw.agent.credentials.read_text())
    assert cred["username"] == "gate-churchill-in-1"
    assert all(k.is_file() for k in hw.agent.pubkeys)
    # a private key is refused with one line, and nothing claims success
    rc = main(["gate", "provision", "--venue", str(VENUE), "--gate", "churchill-in-1",
               "--broker-config", str(tmp_path / "broker"), "--pubkey", str(priv),
               "--out", str(tmp_path / "b2")])  # fmt: skip
    assert rc not in (0, None)
    assert "private signing key" in capsys.readouterr().err
