"""The turnstile driver over a real pseudo-terminal, a simulated controller on the other end."""

from __future__ import annotations

import time

import pytest

from sesame.gate.turnstile import SerialTurnstile, SimulatedController


def _until(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def rig():
    made = []

    def make(pushes=True, **kw):
        ctl = SimulatedController(pushes=pushes)
        drv = SerialTurnstile(ctl.port, **kw)
        made.append((ctl, drv))
        return ctl, drv

    yield make
    for ctl, drv in made:
        drv.close()
        ctl.close()


def test_open_pass_and_timeout(rig):
    answers = iter([True, False, True])
    ctl, drv = rig(pushes=lambda d: next(answers))
    assert drv.open("in", 1.0) is True
    assert drv.open("in", 1.0) is False  # nobody pushed: the grant is annulled
    assert drv.open("out", 1.0) is True
    assert ctl.passes == 2
    assert [c.split()[:2] for c in ctl.received if c.startswith("OPEN")] == [
        ["OPEN", "IN"],
        ["OPEN", "IN"],
        ["OPEN", "OUT"],
    ]
    assert drv.health == "ok"


def test_pulses_are_anonymous_passages(rig):
    ctl, drv = rig()
    ctl.pulse("out")
    ctl.pulse("in")
    assert drv.pulse(2.0) == "out"
    assert drv.pulse(2.0) == "in"
    assert drv.pulse(0.1) is None


def test_free_mode_is_sent(rig):
    ctl, drv = rig()
    drv.hold_free(True)
    assert _until(lambda: ctl.free)
    drv.hold_free(False)
    assert _until(lambda: not ctl.free)


def test_noise_is_survived(rig):
    ctl, drv = rig()
    ctl.noise()
    ctl.noise(b"\xff" * 2000)  # a runaway line without newline
    ctl.noise(b"PASS deadbe\n")  # an answer to an opening nobody made
    assert drv.open("in", 1.0) is True
    assert _until(lambda: drv.noise >= 3)
    ctl.pulse("out")
    assert drv.pulse(2.0) == "out"
    assert drv.health == "ok"


def test_silent_controller_is_reported_and_recovers(rig):
    ctl, drv = rig(ping_every=0.1, silent_after=0.4, answer_margin=0.3)
    assert _until(lambda: any(c.startswith("PING") for c in ctl.received))
    ctl.silent = True
    assert _until(lambda: drv.health == "silent", 3.0)
    assert drv.open("in", 0.2) is False
    ctl.silent = False
    assert _until(lambda: drv.health == "ok", 3.0)
    assert drv.open("in", 1.0) is True


def test_agent_over_serial_survives_noise_counts_pulses_and_holds_free(
    rig, gp_venue, badge_keys, make_token, tmp_path, gate_clock
):
    from sesame.common import wire
    from sesame.gate.agent import GateAgent

    ctl, drv = rig(pushes=True)
    out = GateAgent(
        gp_venue,
        "churchill-out-1",
        data_dir=tmp_path,
        keys=badge_keys,
        turnstile=drv,
        clock=gate_clock,
    )
    out.start()
    try:
        ctl.noise()
        ctl.pulse("out")
        ctl.noise(b"\xde\xad\xbe\xef\n")
        ctl.pulse("out")
        assert _until(lambda: out.outbox_depth() == 2)
        assert out.handle_scan(make_token()).granted  # a badge shown at an exit: recorded too
        evs = [wire.parse_event(b) for _, b in out.outbox.pending(0)]
        assert [(e.kind, e.badge) for e in evs] == [("passage", None)] * 2 + [
            ("passage", "B000001")
        ]
        out.on_message(out.topics.venue_control(), wire.VenueControl("evacuation").to_json(), True)
        assert _until(lambda: ctl.free)
        out.on_message(out.topics.venue_control(), wire.VenueControl("normal").to_json(), False)
        assert _until(lambda: not ctl.free)
        assert drv.noise >= 2 and out.state == "running" and out.faults() == []
    finally:
        out.stop()


def test_controller_unplugged_and_replugged(tmp_path):
    link = tmp_path / "ttyUSB-controller"  # as /dev/serial/by-id/... follows the device
    first = SimulatedController()
    link.symlink_to(first.port)
    drv = SerialTurnstile(str(link), ping_every=0.1, silent_after=0.4, answer_margin=0.3)
    second = None
    try:
        assert drv.open("in", 1.0) is True
        first.close()  # unplugged
        assert _until(lambda: drv.health == "silent", 3.0)
        assert drv.open("in", 0.2) is False
        second = SimulatedController()
        link.unlink()
        link.symlink_to(second.port)  # plugged back in
        assert _until(lambda: drv.health == "ok" and drv.reopened == 1, 5.0)
        assert drv.open("in", 1.0) is True and second.passes == 1
    finally:
        drv.close()
        if second is not None:
            second.close()
