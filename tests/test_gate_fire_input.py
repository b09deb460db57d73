"""The fire alarm on any lane (`[fire_alarm]` in the hardware file): a lane whose turnstile
speaks the serial line protocol takes the fire panel's contact on a GPIO input of its board.
The controller is simulated on the other end of a real pseudo-terminal, the input is a
gpiozero mock pin: the panel's contact opening frees the lane at once with the broker down,
entries are refused with FIRE_ALARM, and the lane locks again when it is restored."""

from __future__ import annotations

import time

import pytest

from sesame.common import wire
from sesame.common.reasons import Reason
from sesame.gate.agent import GateAgent
from sesame.gate.fire_input import WithFireAlarm
from sesame.gate.hardware import ConfigError, FireAlarmInput, load_hardware
from sesame.gate.turnstile import SerialTurnstile, SimulatedController
from tests.waiting import wait_for

FIRE = 13


@pytest.fixture
def serial_lane(gp_venue, badge_keys, tmp_path, gate_clock, mock_pins):
    made = []

    def make(gate="churchill-in-1"):
        ctl = SimulatedController(pushes=True)
        drv = SerialTurnstile(ctl.port)
        fire = WithFireAlarm(drv, FireAlarmInput(pin=FIRE))
        # the mock's pull-up lifts the input as it is set up; on the board the panel's
        # normally-closed contact holds it low all along: no alarm
        mock_pins.pin(FIRE).drive_low()
        agent = GateAgent(
            gp_venue, gate, data_dir=tmp_path / gate, keys=badge_keys, clock=gate_clock,
            turnstile=fire, pass_timeout=1.0, broker_url="mqtt://127.0.0.1:9",
        )  # fmt: skip
        agent.on_message(
            agent.topics.lease(gate), wire.Lease(gate, "2018-11-22", {"nef": 50}, 1).to_json(),
            True,
        )  # fmt: skip
        made.append((agent, fire, ctl))
        return agent, fire, ctl

    yield make
    for agent, fire, ctl in made:
        if agent.state == "running":
            agent.stop()
        fire.close()
        ctl.close()


def test_a_serial_lane_is_freed_by_its_fire_input_with_the_broker_down(
    serial_lane, mock_pins, make_token
):
    agent, fire, ctl = serial_lane()
    agent.start()
    assert not agent.online
    assert agent.handle_scan(make_token("B1")).granted  # normal: one opening, one passage
    assert not ctl.free

    mock_pins.pin(FIRE).drive_high()  # the panel's contact opens: ALARM
    assert fire.fire_alarm  # at once, from the pin callback: FREE ON is on its way
    wait_for(lambda: ctl.free, 5, "FREE ON at the controller")
    wait_for(lambda: "FIRE_ALARM" in agent.faults(), 5, "FIRE_ALARM in the faults")
    assert "FIRE_ALARM" in wire.parse_gate_status(agent._status()).faults
    dec = agent.handle_scan(make_token("B2"))
    assert not dec.granted and dec.reason == Reason.FIRE_ALARM
    assert sum(c.startswith("OPEN") for c in ctl.received) == 1  # no unlock: it is free

    mock_pins.pin(FIRE).drive_low()  # restored: an entry lane locks again (no evacuation)
    wait_for(lambda: not ctl.free, 5, "FREE OFF at the controller")
    assert not fire.fire_alarm
    wait_for(lambda: "FIRE_ALARM" not in agent.faults(), 5, "FIRE_ALARM gone")


def test_evacuation_and_the_fire_input_together(serial_lane, mock_pins):
    agent, fire, ctl = serial_lane("churchill-out-1")
    agent.start()
    mock_pins.pin(FIRE).drive_high()
    wait_for(lambda: ctl.free, 5, "FREE ON at the controller")
    agent.on_message(agent.topics.venue_control(), wire.VenueControl("evacuation").to_json(), True)
    mock_pins.pin(FIRE).drive_low()  # the alarm ends, the evacuation goes on: exits stay free
    time.sleep(0.3)
    assert ctl.free
    agent.on_message(agent.topics.venue_control(), wire.VenueControl("normal").to_json(), False)
    wait_for(lambda: not ctl.free, 5, "FREE OFF at the controller")


def test_an_alarm_already_active_at_start_frees_the_lane(mock_pins):
    ctl = SimulatedController(pushes=True)
    drv = SerialTurnstile(ctl.port)
    mock_pins.pin(FIRE).drive_high()
    fire = WithFireAlarm(drv, FireAlarmInput(pin=FIRE, pull="none", active="high"))
    try:
        assert fire.fire_alarm and fire.levels() == {"fire_alarm": True}
        wait_for(lambda: ctl.free, 5, "FREE ON at the controller")
    finally:
        fire.close()
        ctl.close()


def _hardware(tmp_path, text: str):
    (tmp_path / "key.pem").write_text("")
    f = tmp_path / "hw.toml"
    f.write_text(text + '\n[agent]\ndata_dir = "data"\npubkeys = ["key.pem"]\n')
    return load_hardware(f)


SERIAL = '[controller]\ntype = "serial"\nport = "/dev/ttyUSB0"\n'
GPIO = ('[controller]\ntype = "gpio"\nrelay_active = "low"\nopen_in_pin = 17\n'
        'passed_in_pin = 5\n')  # fmt: skip


def test_the_hardware_file_takes_one_fire_input(tmp_path):
    hw = _hardware(tmp_path, SERIAL + "[fire_alarm]\npin = 13\n")
    assert hw.fire_alarm == FireAlarmInput(pin=13, active="high", pull="up")
    assert _hardware(tmp_path, GPIO + "[fire_alarm]\npin = 13\n").fire_alarm.pin == 13
    bad = {
        GPIO + "fire_alarm_pin = 12\n[fire_alarm]\npin = 13\n": "fire_alarm_pin already",
        GPIO + "[fire_alarm]\npin = 5\n": "GPIO5 is already controller.passed_in_pin",
        SERIAL + "[fire_alarm]\npin = 40\n": "less than or equal to 27",
        SERIAL + '[fire_alarm]\npin = 13\nactive = "open"\n': "'low' or 'high'",
    }
    for text, words in bad.items():
        with pytest.raises(ConfigError) as e:
            _hardware(tmp_path, text)
        assert words in str(e.value) and "fire_alarm" in str(e.value), str(e.value)


def test_doctor_shows_the_fire_input_of_a_serial_lane(tmp_path, mock_pins, gp_venue):
    from sesame.gate.doctor import run_checks

    # no pull resistor: the mock pin keeps the level the test drives (a pull-up would lift it
    # as the doctor sets the input up)
    hw = _hardware(tmp_path, '[controller]\nport = "simulated"\n'
                             '[fire_alarm]\npin = 13\npull = "none"\n')  # fmt: skip

    def fire_check():
        checks = run_checks(gp_venue, "churchill-in-1", hw, broker=None, credentials=None,
                            timeout=0.5)  # fmt: skip
        found = [c for c in checks if c.name == "in fire_alarm"]
        assert len(found) == 1
        return found[0].status, found[0].detail

    mock_pins.pin(FIRE).drive_low()  # the panel's contact closed: all is well
    assert fire_check() == ("ok", "GPIO13 normal")
    mock_pins.pin(FIRE).drive_high()
    assert fire_check() == ("WARN", "GPIO13 ALARM (lane held free)")
