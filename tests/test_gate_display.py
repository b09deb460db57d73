"""The staff display, rendered to a string as staff would read it."""

from __future__ import annotations

from sesame.common import wire
from sesame.gate.agent import GateAgent
from sesame.gate.display import GateView, ZoneLine, big, render_text
from sesame.gate.turnstile import MemoryTurnstile


def test_granted_and_denied_in_big_letters_with_reason():
    v = GateView(
        "churchill-in-1",
        "Churchill entrance, lane 1",
        online=True,
        outbox=3,
        verdict="GRANTED",
        message_fr="Bienvenue",
        message_en="Welcome",
        category="Scolaire / School group",
        group=25,
        passed=25,
        zones=[ZoneLine("nef", "Nef", 10450, 11000, "near_full")],
        passages_today=812,
        denied_today=14,
    )
    s = render_text(v)
    assert big("GRANTED").splitlines()[0] in s
    assert "Bienvenue" in s and "Welcome" in s and "Scolaire / School group" in s
    assert "25/25" in s and "10450 / 11000" in s and "near_full" in s
    assert "ONLINE" in s and "outbox: 3" in s and "812 passages" in s and "14 refus" in s
    v.verdict, v.reason, v.online = "DENIED", "ZONE_FULL", False
    v.message_fr, v.message_en = "Espace complet, patientez", "Area full, please wait"
    s = render_text(v)
    assert big("DENIED").splitlines()[2] in s and big("GRANTED").splitlines()[0] not in s
    assert "Espace complet" in s and "Area full" in s and "ZONE_FULL" in s and "OFFLINE" in s
    coloured = render_text(v, color=True)
    assert "\x1b[" in coloured and "41m" in coloured  # red background


def test_agent_view_after_scans(gp_venue, badge_keys, make_token, tmp_path, gate_clock):
    a = GateAgent(
        gp_venue,
        "churchill-in-1",
        data_dir=tmp_path,
        keys=badge_keys,
        turnstile=MemoryTurnstile(),
        clock=gate_clock,
    )
    assert "Show your badge" in render_text(a.view())
    a.on_message(
        a.topics.lease("churchill-in-1"),
        wire.Lease("churchill-in-1", "2018-11-22", {"nef": 1}).to_json(),
        True,
    )
    a.on_message(
        a.topics.occupancy("nef"),
        wire.Occupancy("nef", 9999, 11000, "near_full", gate_clock()).to_json(),
        True,
    )
    a.handle_scan(make_token())
    s = render_text(a.view())
    assert "Bienvenue" in s and "Grand public / General public" in s
    assert "9999 / 11000" in s and "1 passages" in s and "OFFLINE" in s and "outbox: 1" in s
    a.handle_scan(make_token("B2"))
    s = render_text(a.view())
    assert "LEASE_EXHAUSTED" in s and "Lane allowance used up" in s and "1 refus" in s
    assert "2018-11-22 12:00:00" in s
