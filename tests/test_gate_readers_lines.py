"""Line framing and debounce: the pure parts every reader relies on."""

from __future__ import annotations

import pytest

from sesame.common.reasons import Reason
from sesame.common.tokens import TokenError, verify
from sesame.gate.readers.base import (
    MAX_LINE_BYTES,
    Debouncer,
    LineFramer,
    MergedReader,
    QueueReader,
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize("end", [b"\r", b"\n", b"\r\n"])
def test_each_terminator_ends_a_line(end: bytes) -> None:
    f = LineFramer()
    assert f.feed(b"SES1.abc" + end + b"SES1.def" + end) == [
        ("SES1.abc", False),
        ("SES1.def", False),
    ]


def test_lines_split_across_reads_and_blank_lines_skipped() -> None:
    f = LineFramer()
    out = []
    for byte in b"\r\n\r\nAB\r\nC" + b"D\n\n":
        out += f.feed(bytes([byte]))
    assert out == [("AB", False), ("CD", False)]


def test_non_utf8_bytes_become_replacement_characters_and_token_is_malformed() -> None:
    f = LineFramer()
    [(text, cut)] = f.feed(b"SES1.\xff\xfe\x00garbage\x80\n")
    assert not cut and "\ufffd" in text and text.startswith("SES1.")
    with pytest.raises(TokenError) as e:
        verify(text, {})
    assert e.value.reason is Reason.MALFORMED


def test_five_kilobyte_line_is_cut_once_and_the_next_line_is_intact() -> None:
    f = LineFramer()
    out = f.feed(b"A" * 3000) + f.feed(b"B" * 2120 + b"\r\nSES1.next\r\n")
    assert out == [("A" * MAX_LINE_BYTES, True), ("SES1.next", False)]


def test_overlong_line_in_one_read_is_flagged() -> None:
    f = LineFramer(max_bytes=10)
    assert f.feed(b"0123456789X\nok\n") == [("0123456789", True), ("ok", False)]
    assert f.feed(b"0123456789\n") == [("0123456789", False)]  # exactly the limit is fine


def test_multibyte_character_cut_at_the_limit_does_not_crash() -> None:
    f = LineFramer(max_bytes=5)
    [(text, cut)] = f.feed("abcdé...".encode() + b"\n")
    assert cut and text.startswith("abcd")


def test_flush_returns_an_unterminated_last_line() -> None:
    f = LineFramer()
    assert f.feed(b"SES1.tail") == []
    assert f.flush() == [("SES1.tail", False)]
    assert f.flush() == []


def test_debounce_window_restarts_at_every_sighting() -> None:
    clock = FakeClock()
    d = Debouncer(2.0, clock)
    assert d.accept("A")
    for _ in range(10):  # badge held in front of the camera for 5 s: still one scan
        clock.t += 0.5
        assert not d.accept("A")
    assert d.accept("B")  # another badge is not held back
    clock.t += 2.5
    assert d.accept("A")  # taken away for longer than the window: a new scan


def test_debouncer_forgets_old_codes_but_keeps_recent_ones() -> None:
    clock = FakeClock()
    d = Debouncer(1.0, clock)
    for i in range(600):  # a busy lane: a new badge every 10 ms
        assert d.accept(f"code{i}")
        clock.t += 0.01
    assert not d.accept("code550")  # seen 0.5 s ago: still debounced
    assert d.accept("code0")  # seen 6 s ago: a new scan
    assert len(d._last_seen) <= 257  # memory stays bounded


def test_queue_reader_and_merged_reader_share_one_debounce() -> None:
    clock = FakeClock()
    keyboard, serial_port = QueueReader(), QueueReader()
    merged = MergedReader([keyboard, serial_port], debounce=2.0, clock=clock)
    keyboard.push("SES1.x")  # the scanner types the code...
    serial_port.push("SES1.x")  # ...and sends it on its serial port
    assert merged.read(0.2) == "SES1.x"
    assert merged.read(0.05) is None
    clock.t += 3
    serial_port.push("SES1.x")
    assert merged.read(0.2) == "SES1.x"
    assert merged.health == "ok"
    keyboard.close()
    assert merged.health == "QueueReader: disconnected"
    assert merged.read(0.05) is None
    merged.close()
    assert merged.read(0.01) is None
