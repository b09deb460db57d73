"""The one list of deny reasons, shared by gate, counter and dashboard.

Codes are stored and sent on the wire; labels are for people and live apart so that
tests assert codes, never message text.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    MALFORMED = "MALFORMED"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    UNKNOWN_KEY = "UNKNOWN_KEY"
    NOT_VALID_TODAY = "NOT_VALID_TODAY"
    OUTSIDE_OPENING_HOURS = "OUTSIDE_OPENING_HOURS"
    ZONE_NOT_ALLOWED = "ZONE_NOT_ALLOWED"
    REVOKED = "REVOKED"
    ALREADY_INSIDE = "ALREADY_INSIDE"
    NO_REENTRY = "NO_REENTRY"
    ZONE_FULL = "ZONE_FULL"
    ZONE_CLOSED = "ZONE_CLOSED"
    EVACUATION = "EVACUATION"
    LEASE_EXHAUSTED = "LEASE_EXHAUSTED"
    GATE_LOCKED = "GATE_LOCKED"
    UNKNOWN_CATEGORY = "UNKNOWN_CATEGORY"
    NO_PASSAGE = "NO_PASSAGE"
    FIRE_ALARM = "FIRE_ALARM"


# (French, English): short enough for a staff display read from two metres.
LABELS: dict[Reason, tuple[str, str]] = {
    Reason.MALFORMED: ("Code illisible ou invalide", "Unreadable or invalid code"),
    Reason.BAD_SIGNATURE: ("Badge falsifié", "Forged or altered badge"),
    Reason.UNKNOWN_KEY: ("Badge d'un autre événement", "Badge from another event"),
    Reason.NOT_VALID_TODAY: ("Badge non valable aujourd'hui", "Badge not valid today"),
    Reason.OUTSIDE_OPENING_HOURS: ("Hors horaires d'ouverture", "Outside opening hours"),
    Reason.ZONE_NOT_ALLOWED: ("Accès non autorisé à cet espace", "No access to this area"),
    Reason.REVOKED: ("Badge révoqué", "Badge revoked"),
    Reason.ALREADY_INSIDE: ("Déjà entré (sortie non enregistrée)", "Already inside (no exit)"),
    Reason.NO_REENTRY: ("Sortie définitive : pas de ré-entrée", "No re-entry allowed"),
    Reason.ZONE_FULL: ("Espace complet, patientez", "Area full, please wait"),
    Reason.ZONE_CLOSED: ("Espace fermé", "Area closed"),
    Reason.EVACUATION: ("Évacuation en cours : entrée interdite", "Evacuation: no entry"),
    Reason.LEASE_EXHAUSTED: ("Quota de la porte épuisé", "Lane allowance used up"),
    Reason.GATE_LOCKED: ("Porte verrouillée", "Lane locked"),
    Reason.UNKNOWN_CATEGORY: ("Catégorie de badge inconnue", "Unknown badge category"),
    Reason.NO_PASSAGE: ("Passage non effectué", "Nobody passed"),
    Reason.FIRE_ALARM: ("Alarme incendie : sortez", "Fire alarm: please leave"),
}


def label(reason: Reason | str, lang: str = "en") -> str:
    """Human message for a reason code; unknown codes are shown as they are."""
    try:
        fr, en = LABELS[Reason(reason)]
    except ValueError:
        return str(reason)
    return fr if lang == "fr" else en
