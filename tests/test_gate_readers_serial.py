"""The serial scanner reader through a real pseudo-terminal, with a simulated scanner on the
master side. Unplug/replug: the scanner's pty is destroyed and a new one created behind the
same symlink, as udev's /dev/serial/by-id/... link follows a scanner that comes back."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sesame.common.reasons import Reason
from sesame.common.tokens import TokenError, verify
from sesame.gate.readers import open_reader
from sesame.gate.readers.base import MAX_LINE_BYTES
from sesame.gate.readers.serial_scanner import SerialScannerReader


class SimScanner:
    """A USB-CDC barcode scanner: a pty whose slave path is reached through `link`."""

    def __init__(self, link: Path):
        self.link = link
        self.master: int | None = None
        self._slave: int | None = None

    def plug(self) -> None:
        self.master, self._slave = os.openpty()  # holding the slave keeps unread bytes queued
        tmp = self.link.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(self._slave))
        tmp.replace(self.link)

    def unplug(self) -> None:
        self.link.unlink(missing_ok=True)
        for fd in (self.master, self._slave):
            if fd is not None:
                os.close(fd)
        self.master = self._slave = None

    def send(self, data: bytes, chunk: int = 0, pause: float = 0.0) -> None:
        assert self.master is not None
        step = chunk or len(data)
        for i in range(0, len(data), step):
            os.write(self.master, data[i : i + step])
            if pause:
                time.sleep(pause)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.01)


def read_n(reader, n: int, timeout: float = 5.0) -> list[str]:
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        text = reader.read(0.1)
        if text is not None:
            out.append(text)
    return out


@pytest.fixture
def scanner(tmp_path) -> Iterator[SimScanner]:
    sim = SimScanner(tmp_path / "scanner")
    sim.plug()
    yield sim
    sim.unplug()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def reader(scanner, clock) -> Iterator[SerialScannerReader]:
    r = SerialScannerReader(str(scanner.link), debounce=2.0, clock=clock, backoff_max=0.2)
    r.start()
    wait_for(lambda: r.health == "ok")
    yield r
    r.close()


def test_codes_with_cr_lf_and_crlf_even_byte_by_byte(scanner, reader) -> None:
    scanner.send(b"SES1.aaa\rSES1.bbb\n", chunk=1, pause=0.001)
    scanner.send(b"SES1.ccc\r\n")
    assert read_n(reader, 3) == ["SES1.aaa", "SES1.bbb", "SES1.ccc"]
    assert reader.read(0.2) is None  # the LF of CRLF is not an empty scan


def test_same_code_twice_within_the_window_is_one_scan(scanner, reader, clock) -> None:
    scanner.send(b"SES1.twice\r\nSES1.twice\r\n")
    assert read_n(reader, 1) == ["SES1.twice"]
    assert reader.read(0.3) is None
    clock.t += 1.5  # still within 2 s of the last sighting
    scanner.send(b"SES1.twice\r\n")
    assert reader.read(0.3) is None
    clock.t += 2.5  # the window has passed: the same badge again is a new scan
    scanner.send(b"SES1.twice\r\n")
    assert read_n(reader, 1) == ["SES1.twice"]


def test_garbage_and_a_5kb_line_give_malformed_text_and_the_reader_goes_on(scanner, reader) -> None:
    scanner.send(b"\x00\xff\xfe SES1.\x80\x81garbage\x1b[2J\r\n")
    scanner.send(b"Z" * 5120 + b"\r\n", chunk=512)
    scanner.send(b"SES1.after\r\n")
    garbage, long_line, after = read_n(reader, 3)
    assert "\ufffd" in garbage
    assert long_line == "Z" * MAX_LINE_BYTES
    assert reader.cut_lines == 1
    assert after == "SES1.after"
    for text in (garbage, long_line):
        with pytest.raises(TokenError) as e:
            verify(text, {})
        assert e.value.reason is Reason.MALFORMED
    assert reader.health == "ok"


def test_scanner_lines_through_the_decision(scanner, reader) -> None:
    # The reader's output goes straight into the lane's decision: garbage and a 5 kB line are
    # MALFORMED, a flipped byte does not pass, and a good badge right after is GRANTED.
    from datetime import datetime

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from sesame.common.decision import MemoryDict, decide
    from sesame.common.tokens import Claims, key_id, sign
    from sesame.common.venue import load_venue

    venue = load_venue(Path(__file__).resolve().parents[1] / "config" / "grand-palais.toml")
    key = Ed25519PrivateKey.generate()
    keys = {key_id(key.public_key()): key.public_key()}
    good = sign(Claims("S000001", "public", None), key)
    flipped = good[:-10] + ("A" if good[-10] != "A" else "B") + good[-9:]
    scanner.send(b"\xff\xfe\x00SES1.\x80\r\n" + b"Q" * 5000 + b"\r\n")
    scanner.send(flipped.encode() + b"\r\n" + good.encode() + b"\r\n")
    scans = read_n(reader, 4)
    assert scans[2:] == [flipped, good]
    reasons = [
        decide(
            text,
            venue=venue,
            gate=venue.gates["churchill-in-1"],
            keys=keys,
            revoked=(),
            zone_states={},
            venue_mode="normal",
            lease_left=None,
            memory=MemoryDict(),
            now=datetime.fromisoformat("2018-11-22T10:00:00+01:00"),
        ).reason
        for text in scans
    ]
    assert reasons == [Reason.MALFORMED, Reason.MALFORMED, Reason.BAD_SIGNATURE, None]


def test_unplug_and_replug_reopens_the_port(scanner, reader) -> None:
    scanner.send(b"SES1.before\r\n")
    assert read_n(reader, 1) == ["SES1.before"]
    scanner.unplug()
    wait_for(lambda: reader.health == "disconnected")
    assert reader.read(0.2) is None
    time.sleep(0.3)  # stays unplugged over several reopen attempts
    assert reader.health == "disconnected"
    scanner.plug()
    wait_for(lambda: reader.health == "ok")
    assert reader.reconnects == 1
    scanner.send(b"SES1.after\r\n")
    assert read_n(reader, 1) == ["SES1.after"]


def test_scanner_absent_at_start_is_picked_up_when_plugged(tmp_path, clock) -> None:
    sim = SimScanner(tmp_path / "late-scanner")
    r = SerialScannerReader(str(sim.link), clock=clock, backoff_max=0.2).start()
    try:
        time.sleep(0.3)
        assert r.health == "disconnected"
        sim.plug()
        wait_for(lambda: r.health == "ok")
        sim.send(b"SES1.late\n")
        assert read_n(r, 1) == ["SES1.late"]
    finally:
        t0 = time.monotonic()
        r.close()
        assert time.monotonic() - t0 < 2.0
        sim.unplug()


def test_a_port_that_is_there_but_unusable_is_an_error_not_a_disconnection(tmp_path) -> None:
    not_a_tty = tmp_path / "ttyACM0"
    not_a_tty.write_bytes(b"")
    r = SerialScannerReader(str(not_a_tty), backoff_max=0.1).start()
    try:
        wait_for(lambda: r.health.startswith("error:"))
        assert "ioctl" in r.health  # says why, for `sesame gate doctor` and the status
    finally:
        r.close()


def test_a_second_process_cannot_steal_scans(scanner, reader) -> None:
    intruder = SerialScannerReader(str(scanner.link), backoff_max=0.1).start()
    try:
        wait_for(lambda: intruder.health.startswith("error:"))
        assert "lock" in intruder.health
        scanner.send(b"SES1.one\r\nSES1.two\r\nSES1.three\r\n")
        assert read_n(reader, 3) == ["SES1.one", "SES1.two", "SES1.three"]
        assert intruder.read(0.2) is None
    finally:
        intruder.close()


def test_close_is_prompt_while_disconnected(tmp_path) -> None:
    r = open_reader({"type": "serial", "port": str(tmp_path / "nothing"), "debounce_s": 1})
    time.sleep(0.2)
    assert r.health == "disconnected"
    t0 = time.monotonic()
    r.close()
    assert time.monotonic() - t0 < 2.0


def test_keystroke_plus_serial_double_send_is_one_scan(scanner) -> None:
    read_fd, write_fd = os.pipe()
    merged = open_reader(
        {
            "type": "multi",
            "debounce_s": 2.0,
            "readers": [
                {"type": "serial", "port": str(scanner.link)},
                {"type": "keyboard", "stream": read_fd},
            ],
        }
    )
    try:
        wait_for(lambda: merged.health == "ok")
        os.write(write_fd, b"SES1.both\n")  # typed as keystrokes
        scanner.send(b"SES1.both\r\n")  # and sent on the serial port
        assert read_n(merged, 1) == ["SES1.both"]
        assert merged.read(0.4) is None
        scanner.send(b"SES1.other\r\n")
        assert read_n(merged, 1) == ["SES1.other"]
        scanner.unplug()  # the status names the reader that is gone; typing still works
        wait_for(lambda: merged.health == "serial-scanner: disconnected")
        os.write(write_fd, b"SES1.typed\n")
        assert read_n(merged, 1) == ["SES1.typed"]
    finally:
        merged.close()
        os.close(write_fd)
        os.close(read_fd)


def test_bad_reader_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown reader type"):
        open_reader({"type": "nfc"})
    with pytest.raises(ValueError, match="unknown serial reader option.*parity"):
        open_reader({"type": "serial", "port": "/dev/null", "parity": "odd"})
    with pytest.raises(ValueError, match="unknown camera reader option.*fps"):
        open_reader({"type": "camera", "source": 0, "fps": 30})
    with pytest.raises(ValueError, match="debounce_s"):
        open_reader({"type": "keyboard", "debounce_s": "two seconds"})
    with pytest.raises(ValueError, match="unknown multi reader option"):
        open_reader({"type": "multi", "readers": [], "extra": 1})
    with pytest.raises(ValueError, match="at least one"):
        open_reader({"type": "multi", "readers": []})
