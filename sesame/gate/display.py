"""The staff display: one full-screen terminal view, readable from two metres.

A huge GRANTED / DENIED in colour (block letters), the reason in French and English, the
badge category and group count; then the lane's state: online/offline, outbox depth,
faults, zone occupancy against capacity and today's counts. `render_text()` renders to a
string so tests read exactly what staff would see.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sesame.common.states import VenueMode

# 5-row block letters for the two words that matter.
_FONT = {
    "G": [" ███ ", "█    ", "█  ██", "█   █", " ███ "],
    "R": ["████ ", "█   █", "████ ", "█  █ ", "█   █"],
    "A": [" ███ ", "█   █", "█████", "█   █", "█   █"],
    "N": ["█   █", "██  █", "█ █ █", "█  ██", "█   █"],
    "T": ["█████", "  █  ", "  █  ", "  █  ", "  █  "],
    "E": ["█████", "█    ", "████ ", "█    ", "█████"],
    "D": ["████ ", "█   █", "█   █", "█   █", "████ "],
    "I": ["█████", "  █  ", "  █  ", "  █  ", "█████"],
    " ": ["   ", "   ", "   ", "   ", "   "],
}


def big(word: str) -> str:
    """`word` in block letters (letters outside the font are left out)."""
    letters = [_FONT[c] for c in word.upper() if c in _FONT]
    return "\n".join("  ".join(rows[i] for rows in letters) for i in range(5))


@dataclass
class ZoneLine:
    zone: str
    name: str
    occupancy: int | None
    capacity: int
    state: str = "open"


@dataclass
class GateView:
    gate: str
    gate_name: str
    online: bool = False
    outbox: int = 0
    faults: list[str] = field(default_factory=list)
    # last scan
    verdict: str | None = None  # "GRANTED" | "DENIED" | None (nothing scanned yet)
    reason: str | None = None
    message_fr: str = ""
    message_en: str = ""
    category: str | None = None  # label shown (e.g. "Scolaire / School group")
    group: int = 1
    passed: int | None = None  # confirmed passages of the last grant
    # lane
    zones: list[ZoneLine] = field(default_factory=list)
    passages_today: int = 0
    denied_today: int = 0
    mode: VenueMode = VenueMode.NORMAL
    clock: str = ""


def render(v: GateView) -> RenderableType:
    parts: list[RenderableType] = []
    head = Text()
    head.append(f" {v.gate_name} ", style="bold reverse")
    head.append("  ")
    head.append(
        "EN LIGNE / ONLINE" if v.online else "HORS LIGNE / OFFLINE",
        style="bold green" if v.online else "bold white on red",
    )
    head.append(f"   file d'attente / outbox: {v.outbox}")
    if v.mode == VenueMode.EVACUATION:
        head.append("   ÉVACUATION / EVACUATION", style="bold white on red blink")
    parts.append(head)
    if v.faults:
        parts.append(Text("DÉFAUT / FAULT: " + ", ".join(v.faults), style="bold yellow"))

    if v.verdict is None:
        parts.append(Panel(Text("Présentez votre badge\nShow your badge", justify="center")))
    else:
        ok = v.verdict == "GRANTED"
        colour = "bold white on green" if ok else "bold white on red"
        body = Text(big(v.verdict) + "\n\n", style=colour, justify="center")
        body.append(v.message_fr + "\n", style=colour)
        body.append(v.message_en, style=colour)
        if v.reason:
            body.append(f"\n[{v.reason}]", style=colour)
        if v.category:
            body.append(f"\n{v.category}", style=colour)
        if v.group > 1:
            done = f"{v.passed}/{v.group}" if v.passed is not None else str(v.group)
            body.append(f"\nGroupe / group: {done}", style=colour)
        parts.append(Panel(body, style=colour))

    table = Table(title="Espaces / Zones", expand=True)
    table.add_column("zone")
    table.add_column("occupation / occupancy", justify="right")
    table.add_column("état / state")
    for z in v.zones:
        occ = "?" if z.occupancy is None else str(z.occupancy)
        style = {"full": "red", "closed": "red", "evacuating": "red", "near_full": "yellow"}
        table.add_row(z.name, f"{occ} / {z.capacity}", Text(z.state, style=style.get(z.state, "")))
    parts.append(table)
    parts.append(
        Text(
            f"Aujourd'hui / today: {v.passages_today} passages, {v.denied_today} refus / denied"
            + (f"    {v.clock}" if v.clock else "")
        )
    )
    return Group(*parts)


def render_text(v: GateView, width: int = 100, color: bool = False) -> str:
    buf = io.StringIO()
    console = Console(
        file=buf, width=width, force_terminal=color, color_system="standard" if color else None
    )
    console.print(render(v))
    return buf.getvalue()
