"""French and English strings for the pages; the browser's language picks one, a switch
(cookie `lang`) overrides it."""

from __future__ import annotations

from sesame.common.reasons import Reason
from sesame.common.reasons import label as reason_label

LANGS = ("en", "fr")

STRINGS: dict[str, tuple[str, str]] = {
    # key: (English, French)
    "title": ("Sesame — live occupancy", "Sesame — fréquentation en direct"),
    "organiser_title": ("Sesame — attendance", "Sesame — fréquentation"),
    "login": ("Sign in", "Connexion"),
    "username": ("Username", "Identifiant"),
    "password": ("Password", "Mot de passe"),
    "logout": ("Sign out", "Déconnexion"),
    "login_failed": ("Wrong username or password", "Identifiant ou mot de passe incorrect"),
    "login_limited": ("Too many attempts; try again in", "Trop de tentatives ; réessayez dans"),
    "seconds": ("s", "s"),
    "live": ("Live", "Direct"),
    "organiser": ("Attendance", "Fréquentation"),
    "zones": ("Zones", "Espaces"),
    "gates": ("Gate lanes", "Portes"),
    "alerts": ("Alerts", "Alertes"),
    "audit": ("Audit log", "Journal des actions"),
    "no_alerts": ("No alerts", "Aucune alerte"),
    "capacity": ("capacity", "jauge"),
    "near_full_at": ("near full at", "presque plein à"),
    "state_open": ("open", "ouvert"),
    "state_near_full": ("near full", "presque plein"),
    "state_full": ("FULL", "COMPLET"),
    "state_closed": ("CLOSED", "FERMÉ"),
    "state_evacuating": ("EVACUATING", "ÉVACUATION"),
    "state_unknown": ("no data", "pas de données"),
    "close_zone": ("Close zone", "Fermer l'espace"),
    "open_zone": ("Reopen zone", "Rouvrir l'espace"),
    "closed_by": ("closed by", "fermé par"),
    "correct": ("Correct count", "Corriger le compte"),
    "delta": ("Change (+/−)", "Écart (+/−)"),
    "reason": ("Reason", "Motif"),
    "submit": ("Apply", "Appliquer"),
    "cancel": ("Cancel", "Annuler"),
    "evacuation": ("Evacuation", "Évacuation"),
    "evacuate_on": ("Start evacuation", "Déclencher l'évacuation"),
    "evacuate_off": ("End evacuation", "Lever l'évacuation"),
    "evacuate_confirm": (
        "Put the whole venue in evacuation mode? Every entry lane refuses entry; exits stay open.",
        "Passer tout le site en évacuation ? Toutes les entrées sont refusées ; "
        "les sorties restent ouvertes.",
    ),
    "evacuate_off_confirm": (
        "End evacuation and return to normal operation?",
        "Lever l'évacuation et revenir au fonctionnement normal ?",
    ),
    "confirm": ("Confirm", "Confirmer"),
    "mode_normal": ("Normal operation", "Fonctionnement normal"),
    "mode_evacuation": ("EVACUATION IN PROGRESS", "ÉVACUATION EN COURS"),
    "online": ("online", "en ligne"),
    "offline": ("OFFLINE", "HORS LIGNE"),
    "never_seen": ("never seen", "jamais vue"),
    "last_scan": ("last scan", "dernier passage"),
    "outbox": ("outbox", "en attente"),
    "controller": ("controller", "automate"),
    "gate": ("Lane", "Porte"),
    "status": ("Status", "État"),
    "counter": ("Counter", "Compteur"),
    "counter_offline": ("counter offline", "compteur hors ligne"),
    "alert_near_full": ("near full", "presque plein"),
    "alert_full": ("full", "complet"),
    "alert_gate_offline": ("lane offline", "porte hors ligne"),
    "alert_counter_offline": ("counter offline", "compteur hors ligne"),
    "alert_evacuation": ("evacuation", "évacuation"),
    "alert_CLOCK_IMPLAUSIBLE": ("lane clock implausible", "horloge de la porte incohérente"),
    "alert_CONTROLLER_SILENT": ("turnstile controller silent", "automate du tourniquet muet"),
    "alert_CREDENTIALS_REFUSED": ("broker refused the lane's account", "compte de la porte refusé"),
    "alert_PUBLISH_REFUSED": ("lane's messages refused", "messages de la porte refusés"),
    "alert_FIRE_ALARM": ("FIRE ALARM", "ALARME INCENDIE"),
    "alert_EPOCH_CHANGE_HELD": (
        "lane reports another new outbox today: held", "la porte annonce encore une nouvelle "
        "mémoire aujourd'hui : en attente",
    ),
    "alert_IMPLAUSIBLE_RATE": (
        "passages faster than the turnstile can pass: held", "passages plus rapides que le "
        "tourniquet ne le permet : retenus",
    ),
    "held_epoch": ("new outbox", "nouvelle mémoire"),
    "allowance_at_stake": ("allowance written off if confirmed", "quota perdu si confirmé"),
    "held_passages": ("passages held", "passages retenus"),
    "per_minute_max": ("max a minute", "max par minute"),
    "decide_confirm_epoch": ("Confirm new outbox", "Confirmer la nouvelle mémoire"),
    "decide_accept_held": ("Accept (count them)", "Accepter (les compter)"),
    "decide_reject_held": ("Reject", "Rejeter"),
    "decision_sent": ("decision sent", "décision envoyée"),
    "alert_CLOCK_AHEAD": ("lane clock ahead of the counter", "horloge de la porte en avance"),
    "alert_CLOCK_BEHIND": ("lane clock behind the counter", "horloge de la porte en retard"),
    "alert_RETAINED_EVENT": ("retained message on a lane's events", "message retenu d'une porte"),
    "alert_LANE_SILENT": ("lane silent (no heartbeat)", "porte muette (plus de signal)"),
    "alert_DOUBLE_ADMISSION": ("badge admitted twice (lanes were cut off)",
                               "badge admis deux fois (portes coupées du réseau)"),
    "acknowledge": ("Acknowledge", "Prendre en compte"),
    "acknowledged_by": ("acknowledged by", "pris en compte par"),
    "unacknowledged": ("to acknowledge", "à prendre en compte"),
    "escalated": ("ESCALATED", "ESCALADÉE"),
    "alert_peak": ("peak", "pic"),
    "since": ("for", "depuis"),
    "ended": ("ended", "terminée"),
    "occurrences": ("times", "fois"),
    "sound_on": ("Enable alarm sound", "Activer le son d'alarme"),
    "sound_enabled": ("Sound on", "Son activé"),
    "mute": ("Mute 10 min", "Couper 10 min"),
    "muted_until": ("muted until", "coupé jusqu'à"),
    "outcome_recorded": ("recorded", "enregistré"),
    "action_acknowledge_alert": ("Alert acknowledged", "Alerte prise en compte"),
    "cleared": ("cleared", "levée"),
    "when": ("When", "Quand"),
    "who": ("Who", "Qui"),
    "what": ("What", "Quoi"),
    "why": ("Why", "Pourquoi"),
    "outcome": ("Result", "Résultat"),
    "day_curve": ("Today", "Aujourd'hui"),
    "day": ("Day", "Jour"),
    "day_curve_png": ("Occupancy through the day", "Fréquentation au fil de la journée"),
    "unique_visitors": ("Unique visitors", "Visiteurs uniques"),
    "entries": ("Entries", "Entrées"),
    "schoolchildren": ("Schoolchildren", "Scolaires"),
    "peak": ("Peak occupancy", "Pic de fréquentation"),
    "filled": ("When zones filled", "Remplissage des zones"),
    "last_decision": ("Last decision", "Dernière décision"),
    "today": ("Today", "Aujourd'hui"),
    "granted": ("GRANTED", "ACCEPTÉ"),
    "denied": ("DENIED", "REFUSÉ"),
    "passed": ("passed", "passages"),
    "refused": ("refused", "refus"),
    "filled_near": ("near full", "presque plein"),
    "filled_full": ("full", "plein"),
    "not_reached": ("not reached", "non atteint"),
    "by_category": ("By category", "Par catégorie"),
    "by_hour": ("Arrivals by hour", "Arrivées par heure"),
    "departements": ("Schoolchildren by département", "Scolaires par département"),
    "denials": ("Denials by reason", "Refus par motif"),
    "download": ("Download", "Télécharger"),
    "print": ("Print daily report", "Imprimer le rapport du jour"),
    "no_data": ("No data", "Pas de données"),
    "connection_lost": ("Connection lost — reconnecting…", "Connexion perdue — reconnexion…"),
    "forbidden": (
        "Your role does not give access to this page.",
        "Votre rôle ne donne pas accès à cette page.",
    ),
    "role": ("role", "rôle"),
    "error": ("Error", "Erreur"),
    "outcome_published": ("sent", "envoyé"),
    "outcome_published_late": ("sent late", "envoyé en retard"),
    "outcome_queued": ("WAITING for the broker", "EN ATTENTE du serveur"),
    "outcome_failed": ("FAILED", "ÉCHEC"),
    "outcome_refused": ("REFUSED by the broker", "REFUSÉ par le serveur"),
    "outcome_pending": ("in progress", "en cours"),
    "action_close_zone": ("Zone closed", "Espace fermé"),
    "action_open_zone": ("Zone reopened", "Espace rouvert"),
    "action_correction": ("Count corrected", "Compte corrigé"),
    "action_evacuation_on": ("Evacuation started", "Évacuation déclenchée"),
    "action_evacuation_off": ("Evacuation ended", "Évacuation levée"),
    "action_confirm_epoch": ("New outbox confirmed", "Nouvelle mémoire confirmée"),
    "action_accept_held": ("Held passages accepted", "Passages retenus acceptés"),
    "action_reject_held": ("Held passages rejected", "Passages retenus rejetés"),
}


def pick_lang(cookie: str | None, accept_language: str | None) -> str:
    """The switch wins; else the first of fr/en in Accept-Language by preference."""
    if cookie in LANGS:
        return cookie
    best, best_q = "en", -1.0
    for i, part in enumerate((accept_language or "").split(",")[:20]):
        bits = part.strip().split(";")
        tag = bits[0].strip().lower().split("-")[0]
        q = 1.0
        for b in bits[1:]:
            b = b.strip()
            if b.startswith("q="):
                try:
                    q = float(b[2:])
                except ValueError:
                    q = 0.0
        q -= i * 1e-6  # earlier wins ties
        if tag in LANGS and q > best_q:
            best, best_q = tag, q
    return best


def strings(lang: str) -> dict[str, str]:
    """The page's words, and every reason code's label as `reason_<CODE>`."""
    i = 1 if lang == "fr" else 0
    out = {k: v[i] for k, v in STRINGS.items()}
    out.update({f"reason_{r.value}": reason_label(r, lang) for r in Reason})
    return out


def _merge_plan_strings() -> None:
    from sesame.dashboard.plan import STRINGS as PLAN

    STRINGS.update(PLAN)


_merge_plan_strings()
