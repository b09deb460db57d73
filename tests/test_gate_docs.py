"""The README documents every `sesame gate run|doctor` option, every fault a lane reports
and every word of the turnstile protocol."""

from __future__ import annotations

import argparse
import re

from sesame.gate import agent_cli
from tests.fixtures.gate import ROOT

SECTION = re.search(
    r"^## Gate agent\n(.*?)^## ", (ROOT / "README.md").read_text(), re.S | re.M
).group(1)


def test_every_option_is_documented():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    agent_cli.register(sub)
    for name, p in sub.choices.items():
        for action in p._actions:
            for opt in action.option_strings:
                if opt.startswith("--") and opt != "--help":
                    assert opt in SECTION, f"gate {name} {opt} is not in README's Gate agent"


def test_faults_and_protocol_are_documented():
    src = (ROOT / "sesame" / "gate" / "agent.py").read_text()
    faults = set(re.findall(r'"([A-Z]+_[A-Z_]+)"', src)) - {"NO_PASSAGE"}
    assert {"CLOCK_IMPLAUSIBLE", "CONTROLLER_SILENT", "PUBLISH_REFUSED"} <= faults
    for f in faults | {"READER_"}:
        assert f in SECTION, f
    for word in (
        "OPEN IN",
        "OPEN OUT",
        "PASS",
        "TIMEOUT",
        "FREE ON",
        "FREE OFF",
        "PING",
        "PONG",
        "PULSE IN",
        "PULSE OUT",
    ):
        assert word in SECTION, word
