"""The dashboard's HTTP routes, one router per area: sign-in (`auth`), the live view and
its stream (`live`), the safety officer's actions (`actions`), the organiser's exports
(`exports`), and the static files (`assets`)."""
