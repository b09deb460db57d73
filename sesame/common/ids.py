"""Identifiers and limits every part of Sesame checks the same way (one source each)."""

from __future__ import annotations

import re

# A badge id: what the token, the wire, the manifest and the revocation list all carry.
BADGE_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# A group badge lets up to this many people through (a school class is one badge).
MAX_GROUP = 500
# The columns of the badge manifest `sesame badges issue` writes and the counter imports;
# `name` is personal and never imported.
MANIFEST_COLUMNS = (
    "badge_id",
    "token",
    "name",
    "category",
    "days",
    "group_size",
    "organisation",
    "department",
)
