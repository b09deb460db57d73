"""Registration CSV files: parsed and checked in full before any badge is made.

Columns (header row, any order, case-insensitive): `name, category, days` are required;
`group_size` (default 1), `organisation`, `department` are optional; any other column is
kept as it is and copied into the manifest. `days` is `all` or `;`-separated ISO dates.
The file is UTF-8 (a byte-order mark, as Excel writes it, is accepted); a file whose header
has `;` but no `,` is read as semicolon-separated, as French spreadsheets save it.

Every problem is a RegistrationError naming the file and the line, so an organiser can fix
the file and run again; nothing is issued from a file with a bad row.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sesame.common.ids import MAX_GROUP
from sesame.common.venue import Venue

REQUIRED = ("name", "category", "days")
OPTIONAL = ("group_size", "organisation", "department")
KNOWN = REQUIRED + OPTIONAL
ALIASES = {
    "département": "department",
    "departement": "department",
    "organization": "organisation",
    "group size": "group_size",
}
MAX_NAME = 200
MAX_ROWS = 1_000_000
_CATEGORY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# A cell a spreadsheet would evaluate: =, @, or + / - followed by more than a number.
_FORMULA = re.compile(r"^(?:[=@]|[+-](?![0-9 .()/+-]*$))")


class RegistrationError(Exception):
    """A refused registration file: `FILE:LINE: problem` on one line."""

    def __init__(self, file: str, line: int | None, problem: str):
        self.file, self.line, self.problem = file, line, problem
        super().__init__(f"{file}:{line}: {problem}" if line else f"{file}: {problem}")


@dataclass(frozen=True)
class Registration:
    line: int  # where it came from, for messages
    name: str
    category: str
    days: tuple[date, ...] | None  # None: every day of the event
    group_size: int = 1
    organisation: str = ""
    department: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def days_text(self) -> str:
        return "all" if self.days is None else ";".join(d.isoformat() for d in self.days)


@dataclass(frozen=True)
class RegistrationFile:
    rows: tuple[Registration, ...]
    extra_columns: tuple[str, ...]  # in file order


def read_registrations(path: str | Path, venue: Venue | None = None) -> RegistrationFile:
    """Read and check a whole registration file; raises RegistrationError on the first bad row.

    With a venue, categories must exist in it and days must be event days; a row listing
    every event day is stored as `all` (a shorter token, hence a smaller QR code).
    """
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise RegistrationError(name, None, e.strerror or str(e)) from None
    return parse_registrations(raw, name, venue)


def parse_registrations(
    raw: bytes, file: str = "<csv>", venue: Venue | None = None
) -> RegistrationFile:
    text = _decode(raw, file)
    first = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header, header_line = _header(reader, file)
    columns = {c: i for i, c in enumerate(header)}
    extra = tuple(c for c in header if c not in KNOWN)
    rows: list[Registration] = []
    bad: list[RegistrationError] = []
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            bad.append(RegistrationError(file, start, f"unreadable CSV: {e}"))
            break
        if not any(cell.strip() for cell in record):
            continue  # blank line
        if len(rows) + len(bad) >= MAX_ROWS:
            bad.append(RegistrationError(file, start, f"more than {MAX_ROWS:,} registrations"))
            break
        try:
            rows.append(_row(record, header, columns, start, venue))
        except ValueError as e:
            bad.append(RegistrationError(file, start, str(e)))
    if bad:
        first_bad = bad[0]
        if len(bad) > 1:
            rows_word = "rows" if len(bad) > 2 else "row"
            more = f"{first_bad.problem} (and {len(bad) - 1} more bad {rows_word})"
            raise RegistrationError(file, first_bad.line, more)
        raise first_bad
    if not rows:
        raise RegistrationError(file, header_line, "no registrations after the header")
    return RegistrationFile(tuple(rows), extra)


def _decode(raw: bytes, file: str) -> str:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise RegistrationError(
            file, line, f"not UTF-8 text (byte 0x{raw[e.start]:02x}); save the file as CSV UTF-8"
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise RegistrationError(file, line, "contains a NUL byte: not a CSV text file")
    return text


def _column(name: str) -> str:
    """Known columns match case-insensitively, with their French or US spelling."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    return key if key in KNOWN else name.strip()


def _header(reader, file: str) -> tuple[list[str], int]:
    try:
        for record in reader:
            if any(c.strip() for c in record):
                break
        else:
            raise RegistrationError(file, None, "empty file: expected a header row")
    except csv.Error as e:
        raise RegistrationError(file, reader.line_num, f"unreadable CSV: {e}") from None
    line = reader.line_num
    header = [_column(c) for c in record]
    for i, c in enumerate(header):
        if not c:
            raise RegistrationError(file, line, f"header: column {i + 1} has no name")
        if header.index(c) != i:
            raise RegistrationError(file, line, f"header: column {c!r} appears twice")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise RegistrationError(
            file,
            line,
            f"header: missing column(s) {', '.join(missing)}; expected "
            f"{', '.join(KNOWN)} (found {', '.join(header)})",
        )
    return header, line


def _row(
    record: list[str], header: list[str], columns: dict[str, int], line: int, venue: Venue | None
) -> Registration:
    if len(record) != len(header):
        raise ValueError(f"{len(record)} fields, but the header has {len(header)}")
    cell = {c: record[i].strip() for c, i in columns.items()}
    for c, v in cell.items():
        if _CONTROL.search(v):
            raise ValueError(f"{c}: contains a control character")
        if _FORMULA.match(v):
            # the manifest and the attendance exports (départements) open in spreadsheets
            raise ValueError(f"{c}: {v[:20]!r} would run as a spreadsheet formula")

    name = cell["name"]
    if not name:
        raise ValueError("name: empty")
    if len(name) > MAX_NAME:
        raise ValueError(f"name: longer than {MAX_NAME} characters")

    category = cell["category"].lower()
    if not _CATEGORY.match(category):
        raise ValueError(f"category: {cell['category']!r} is not a category id")
    if venue is not None and category not in venue.categories:
        known = ", ".join(venue.categories)
        raise ValueError(f"category: unknown category {category!r} (known: {known})")

    days = _days(cell["days"], venue)

    group_text = cell.get("group_size", "")
    if group_text == "":
        group = 1
    else:
        try:
            group = int(group_text)
        except ValueError:
            raise ValueError(f"group_size: {group_text!r} is not a whole number") from None
        if not 1 <= group <= MAX_GROUP:
            raise ValueError(f"group_size: {group} is not between 1 and {MAX_GROUP}")
        if venue is not None and group > _largest_group(venue, category):
            # a lane grants a group only when its allowance covers all of it, and is topped
            # up only once it holds `low_water` or fewer: a bigger group would never pass
            raise ValueError(
                f"group_size: {group} is more than a lane's lease can hold for a group "
                f"([leases] low_water = {venue.leases.low_water}): split the group or raise it"
            )

    return Registration(
        line=line,
        name=name,
        category=category,
        days=days,
        group_size=group,
        organisation=cell.get("organisation", ""),
        department=cell.get("department", ""),
        extra={c: v for c, v in cell.items() if c not in KNOWN},
    )


def _largest_group(venue: Venue, category: str) -> int:
    """The largest group badge that can pass: a gate grants a group only when its allowance
    covers it, and every zone's entries are leased while the lanes are online."""
    return venue.leases.low_water if venue.categories[category].zones else MAX_GROUP


def _days(text: str, venue: Venue | None) -> tuple[date, ...] | None:
    if text.lower() == "all":
        return None
    if not text:
        raise ValueError("days: empty (write 'all' or dates like 2018-11-22;2018-11-23)")
    out: list[date] = []
    for part in text.split(";"):
        part = part.strip()
        if not _ISO_DATE.match(part):
            raise ValueError(f"days: {part!r} is not an ISO date (YYYY-MM-DD) or 'all'")
        try:
            d = date.fromisoformat(part)
        except ValueError:
            raise ValueError(f"days: {part!r} is not a real date") from None
        if d in out:
            raise ValueError(f"days: {part} is listed twice")
        out.append(d)
    out.sort()
    if venue is not None:
        event = [day.date for day in venue.days]
        for d in out:
            if d not in event:
                listed = ", ".join(x.isoformat() for x in event)
                raise ValueError(f"days: {d.isoformat()} is not an event day ({listed})")
        if out == event:
            return None  # every day: the shorter form
    return tuple(out)
