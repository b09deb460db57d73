"""The plan of the venue for the live page: zone outlines and lane markers from the venue
file's [plan] section, with each lane's turnstile maximum, as the JSON the page's plan.js
draws. Pure; the page embeds it (no extra request, no extra API path).
"""

from __future__ import annotations

from typing import Any

from sesame.common.turnstiles import lane_max_per_minute
from sesame.common.venue import Venue

MARGIN_M = 6.0

# French and English strings of the plan and the forecasts, merged into the page's strings
STRINGS: dict[str, tuple[str, str]] = {
    "plan": ("Plan of the venue", "Plan du site"),
    "plan_text": ("The plan as text", "Le plan en texte"),
    "plan_help": (
        "Zones coloured by state, lanes by status. Tab through the plan; Enter on a zone goes "
        "to its card.",
        "Espaces colorés selon leur état, portes selon leur statut. Tabulation pour parcourir "
        "le plan ; Entrée sur un espace mène à sa fiche.",
    ),
    "full_in": ("full in about {n} min", "complet dans environ {n} min"),
    "lane_rate": ("{n}/min of {max}/min", "{n}/min sur {max}/min"),
    "lane_saturated": ("saturated", "saturée"),
    "lane_entry": ("entry", "entrée"),
    "lane_exit": ("exit", "sortie"),
    "people": ("people", "personnes"),
}


def plan_data(venue: Venue) -> dict[str, Any]:
    """What plan.js draws and shows. `zones` is empty when the venue file has no outlines:
    the page then shows the zone cards alone (lanes still get their rates in the table)."""
    plan = venue.plan
    outlines = dict(plan.zones) if plan is not None else {}
    positions = {g: lp.position for g, lp in plan.lanes.items()} if plan is not None else {}
    lanes = []
    for g in venue.gates.values():
        lane = {"id": g.id, "name": g.name, "exit": g.is_exit, "to": g.to_zone, "kind": g.kind,
                "max_per_min": lane_max_per_minute(g)}  # fmt: skip
        if g.id in positions:
            lane["position"] = list(positions[g.id])
        lanes.append(lane)
    zones = [
        {"id": zid, "name": venue.zones[zid].name, "outline": [list(p) for p in zp.outline]}
        for zid, zp in outlines.items()
    ]
    pts = [p for z in zones for p in z["outline"]] + [ln["position"] for ln in lanes
                                                       if "position" in ln]  # fmt: skip
    box = None
    if zones:
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        x0, y0 = min(xs) - MARGIN_M, min(ys) - MARGIN_M
        box = [x0, y0, max(xs) + MARGIN_M - x0, max(ys) + MARGIN_M - y0]
    return {"viewbox": box, "zones": zones, "lanes": lanes}
