"""The reader sections of the example hardware files open with `open_reader` (no option it
does not know); on this machine the devices are absent, so the readers report it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sesame.gate.hardware import load_hardware
from sesame.gate.readers import open_reader

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "config" / "gates").glob("*.toml"))
WITH_READER = [p for p in EXAMPLES if load_hardware(p).reader is not None]  # exit lanes: none


@pytest.mark.parametrize("path", WITH_READER, ids=[p.stem for p in WITH_READER])
def test_example_reader_sections_open(path: Path) -> None:
    cfg = dict(load_hardware(path).reader or {})
    if cfg.get("type") == "serial":
        cfg["port"] = "/nonexistent/ttyACM0"  # never touch a real device from a test
    if cfg.get("type") == "camera":
        cfg["source"] = "/nonexistent/video0"
    reader = open_reader(cfg)
    try:
        time.sleep(0.2)
        assert reader.health == "disconnected"
        assert reader.read(0.05) is None
    finally:
        reader.close()


def test_there_are_example_files_with_readers() -> None:
    assert WITH_READER
