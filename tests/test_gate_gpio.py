"""The GPIO turnstile driver and the lane's fire alarm, on gpiozero's mock pin mock_pins: the
relays are mock output pins whose state history is read back, the turnstile's contacts and
the fire panel's relay are mock input pins driven low/high by the test."""

from __future__ import annotations

import threading
import time

import pytest

from sesame.common import wire
from sesame.common.reasons import Reason
from sesame.gate.agent import GateAgent
from sesame.gate.fire_input import WithFireAlarm
from sesame.gate.hardware import GpioController
from sesame.gate.turnstile_gpio import GpioError, GpioTurnstile

# the pins of config/gates/churchill-in-1-gpio.toml and INSTALL.md's table
PINS = dict(open_in_pin=17, open_out_pin=27, free_pin=22, passed_in_pin=5, passed_out_pin=6)
FIRE = 13


def config(**kw) -> GpioController:
    base = dict(type="gpio", relay_active="low", pulse_ms=100, debounce_ms=30, **PINS)
    return GpioController.model_validate(base | kw)


def closed(mock_pins, pin: int) -> bool:
    """Is this relay closed? (relay_active low: the output pin is driven low)"""
    p = mock_pins.pin(pin)
    return p.function == "output" and p.state is False


def on_periods(mock_pins, pin: int) -> list[float]:
    """How long each closing of a relay lasted, from the pin's state history (active low;
    gpiozero's mock records each state with the time since the previous change)."""
    out, on, armed = [], False, False
    for s in mock_pins.pin(pin).states:  # the first True is the set-up driving it inactive
        armed = armed or s.state is True
        if not armed:
            continue
        if s.state is False:
            on = True
        elif on:
            out.append(s.timestamp)
            on = False
    return out


def contact(mock_pins, pin: int, chatter: int = 0) -> None:
    """The arm turns: the turnstile closes its contact (to ground) for 50 ms; `chatter` extra
    bounces at the closing and at the opening, back to back (a real bounce lasts a few ms; with
    no sleep between edges a loaded test machine cannot stretch one past the debounce)."""
    p = mock_pins.pin(pin)
    for _ in range(chatter):
        p.drive_low()
        p.drive_high()
    p.drive_low()
    time.sleep(0.05)
    for _ in range(chatter):
        p.drive_high()
        p.drive_low()
    p.drive_high()


def person(mock_pins, relay: int, passed: int, chatter: int = 0) -> threading.Thread:
    """Someone who pushes the arm once the lane unlocks (the relay closes)."""

    def run():
        deadline = time.monotonic() + 5
        while not closed(mock_pins, relay) and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(0.02)
        contact(mock_pins, passed, chatter)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def driver(cfg: GpioController):
    """The lane's turnstile as `gate run` builds it: the driver, with the controller's fire
    input around it when it has one (sesame/gate/fire_input.py)."""
    t = GpioTurnstile(cfg)
    fire = cfg.fire_input()
    return WithFireAlarm(t, fire) if fire is not None else t


@pytest.fixture
def lane(gp_venue, badge_keys, tmp_path, gate_clock, mock_pins):
    made = []

    def make(gate="churchill-in-1", pass_timeout=1.0, **kw):
        t = driver(config(**kw))
        # The mock's pull-up lifts the input as the driver sets it up; on the board the fire
        # panel's normally-closed contact holds it low all along: no alarm.
        mock_pins.pin(FIRE).drive_low()
        a = GateAgent(
            gp_venue, gate, data_dir=tmp_path / gate, keys=badge_keys, clock=gate_clock,
            turnstile=t, pass_timeout=pass_timeout, broker_url="mqtt://127.0.0.1:9",
        )  # fmt: skip
        a.on_message(
            a.topics.lease(gate), wire.Lease(gate, "2018-11-22", {"nef": 50}, 1).to_json(), True
        )
        made.append((a, t))
        return a, t

    yield make
    for a, t in made:
        if a.state == "running":
            a.stop()
        t.close()


def events(agent):
    return [wire.parse_event(b) for _, b in agent.outbox.pending(0, 1000)]


def test_granted_badge_pulses_the_entry_relay_and_one_contact_is_one_passage(
    lane, mock_pins, make_token
):
    agent, _ = lane()
    walker = person(mock_pins, 17, 5)
    dec = agent.handle_scan(make_token("B1"))
    walker.join()
    assert dec.granted and dec.passages == 1
    [ev] = events(agent)
    assert ev.kind == "passage" and ev.badge == "B1" and (ev.from_zone, ev.to_zone) == (
        "outside",
        "nef",
    )
    [period] = on_periods(mock_pins, 17)
    assert 0.09 <= period <= 0.2, period  # pulse_ms = 100
    assert on_periods(mock_pins, 27) == [] and on_periods(mock_pins, 22) == []
    assert not closed(mock_pins, 17)


def test_a_chattering_contact_is_one_passage(lane, mock_pins, make_token):
    agent, t = lane()
    walker = person(mock_pins, 17, 5, chatter=6)
    assert agent.handle_scan(make_token("B1")).granted
    walker.join()
    time.sleep(0.05)
    # no leftover pulse from the bounces: nothing anonymous after the granted passage
    assert t.pulse(0.05) is None
    assert [e.kind for e in events(agent)] == ["passage"]
    assert t.passages == 1


def test_nobody_pushes_no_passage(lane, mock_pins, make_token):
    agent, _ = lane(pass_timeout=0.3)
    t0 = time.monotonic()
    dec = agent.handle_scan(make_token("B1"))
    assert 0.3 <= time.monotonic() - t0 < 1.0
    assert not dec.granted and dec.reason == Reason.NO_PASSAGE
    [ev] = events(agent)
    assert ev.kind == "denied" and ev.reason == "NO_PASSAGE"
    assert len(on_periods(mock_pins, 17)) == 1 and not closed(mock_pins, 17)
    # a late push after the timeout is not taken for that opening (no passage for B1)
    contact(mock_pins, 5)
    assert [e.kind for e in events(agent)] == ["denied"]


def test_unsolicited_contact_on_a_readerless_exit_is_one_anonymous_passage(lane, mock_pins):
    agent, _ = lane("churchill-out-1")
    agent.start()
    contact(mock_pins, 6, chatter=4)
    deadline = time.monotonic() + 3
    while agent.outbox_depth() < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # and nothing more comes of the bounces
    [ev] = events(agent)
    assert ev.kind == "passage" and ev.badge is None and ev.to_zone == "outside"
    # nobody unlocked anything
    assert all(on_periods(mock_pins, p) == [] for p in (17, 27, 22))


def test_fire_input_frees_the_lane_at_once_with_the_broker_down(lane, mock_pins, make_token):
    agent, t = lane(fire_alarm_pin=FIRE)  # the broker (port 9) is not there
    agent.start()
    assert not agent.online and not closed(mock_pins, 22)
    mock_pins.pin(FIRE).drive_high()  # the panel's normally-closed contact opens: ALARM
    # freed by the driver from the pin callback, before the agent's loop even looks
    assert closed(mock_pins, 22) and t.fire_alarm
    deadline = time.monotonic() + 2
    while "FIRE_ALARM" not in agent.faults() and time.monotonic() < deadline:
        time.sleep(0.02)
    status = wire.parse_gate_status(agent._status())
    assert "FIRE_ALARM" in status.faults
    # entries are refused with the reason; people leaving through the free lane are counted
    dec = agent.handle_scan(make_token("B1"))
    assert not dec.granted and dec.reason == Reason.FIRE_ALARM
    assert on_periods(mock_pins, 17) == []  # no unlock pulse: the lane is free anyway
    contact(mock_pins, 6)
    deadline = time.monotonic() + 2
    while agent.outbox_depth() < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [e.kind for e in events(agent)] == ["denied", "passage"]
    # restored: the entry lane goes back to normal (the venue is not in evacuation)
    mock_pins.pin(FIRE).drive_low()
    deadline = time.monotonic() + 2
    while closed(mock_pins, 22) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not closed(mock_pins, 22) and not t.fire_alarm


def test_exit_stays_free_after_the_alarm_until_the_evacuation_ends(lane, mock_pins):
    agent, _ = lane("churchill-out-1", fire_alarm_pin=FIRE)
    agent.start()
    mock_pins.pin(FIRE).drive_high()
    assert closed(mock_pins, 22)
    agent.on_message(agent.topics.venue_control(), wire.VenueControl("evacuation").to_json(), True)
    mock_pins.pin(FIRE).drive_low()  # restored, but the venue is still evacuating
    time.sleep(0.4)
    assert closed(mock_pins, 22)
    agent.on_message(agent.topics.venue_control(), wire.VenueControl("normal").to_json(), True)
    deadline = time.monotonic() + 2
    while closed(mock_pins, 22) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not closed(mock_pins, 22)


def test_alarm_active_at_start_frees_the_lane_before_anything_else(mock_pins):
    mock_pins.pin(FIRE).drive_high()  # NC contact open (or its wire cut): alarm
    t = driver(config(fire_alarm_pin=FIRE))
    try:
        assert t.fire_alarm and closed(mock_pins, 22)
    finally:
        t.close()


def test_outputs_released_when_the_agent_stops(lane, mock_pins):
    agent, t = lane("churchill-out-1", fire_alarm_pin=FIRE)
    agent.start()
    mock_pins.pin(FIRE).drive_high()
    assert closed(mock_pins, 22)
    # the relay is closed when the lane stops (gate run: agent.stop(), then the driver closes)
    agent.stop()
    t.close()
    for pin in (17, 27, 22):
        p = mock_pins.pin(pin)
        assert p.function == "input", pin  # handed back: high impedance, the relay drops
        assert p.states[-1].state is True, pin  # and driven inactive before that


def test_a_restart_releases_what_a_killed_agent_left(mock_pins):
    # kill -9 runs no clean-up; whatever level it left on a line, the agent systemd restarts
    # drives every output inactive as it sets up (gpiozero's mock pins live in one process:
    # this shows the restart, not the kernel's handling of the dead process's lines)
    for pin in (17, 27, 22):
        mock_pins.pin(pin).output_with_state(False)  # active low: every relay closed
    t = GpioTurnstile(config())
    try:
        assert not any(closed(mock_pins, p) for p in (17, 27, 22))
    finally:
        t.close()


def test_single_contact_for_both_directions_and_free_without_a_free_relay(mock_pins):
    t = GpioTurnstile(config(free_pin=None, passed_out_pin=None))
    try:
        walker = person(mock_pins, 27, 5)
        assert t.open("out", 1.0)  # the one contact answers the opening under way
        walker.join()
        t.hold_free(True)  # no free relay: both unlock relays are held closed
        assert closed(mock_pins, 17) and closed(mock_pins, 27)
        t.hold_free(False)
        assert not closed(mock_pins, 17) and not closed(mock_pins, 27)
    finally:
        t.close()


def test_pin_in_use_is_a_one_line_error(mock_pins):
    first = GpioTurnstile(config())
    try:
        with pytest.raises(GpioError, match="open_in_pin GPIO17"):
            GpioTurnstile(config())
    finally:
        first.close()
    # the failed one released what it had taken: a new driver can have the pins
    GpioTurnstile(config()).close()
