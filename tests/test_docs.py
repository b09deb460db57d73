"""Documentation is tested: every `sesame` command and option, every MQTT topic and every
deny reason (with its French and English label) is documented. A new command, option,
topic or reason fails here until docs/ says what it is."""

from __future__ import annotations

import html
import inspect
import re
from pathlib import Path

import pytest

from sesame.common.reasons import LABELS, Reason
from sesame.common.wire import Topics
from tests.fixtures.foundation import leaves, long_options, walk

DOCS = Path(__file__).resolve().parents[1] / "docs"
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")


def _sections(path: Path) -> dict[str, str]:
    """Heading text (backticks removed, HTML entities such as &lt; decoded) -> the text under
    it, down to the next heading of the same or a higher level."""
    lines = path.read_text(encoding="utf-8").splitlines()
    heads = []
    for i, ln in enumerate(lines):
        if m := HEADING.match(ln):
            heads.append((i, len(m.group(1)), html.unescape(m.group(2).replace("`", ""))))
    out = {}
    for n, (i, level, title) in enumerate(heads):
        end = next((j for j, lv, _ in heads[n + 1 :] if lv <= level), len(lines))
        out[title] = "\n".join(lines[i + 1 : end])
    return out


CLI_DOC = DOCS / "cli.md"
COMMANDS = [path for path, _ in walk()]
LEAVES = leaves()


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_is_documented(path):
    title = "sesame " + " ".join(path)
    assert title in _sections(CLI_DOC), f"docs/cli.md needs a heading '{title}'"


@pytest.mark.parametrize(("path", "parser"), LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_every_option_is_documented(path, parser):
    title = "sesame " + " ".join(path)
    section = _sections(CLI_DOC).get(title)
    assert section is not None, f"docs/cli.md needs a heading '{title}'"
    missing = [o for o in long_options(parser) if not re.search(rf"{re.escape(o)}\b", section)]
    assert not missing, f"docs/cli.md, '{title}': undocumented option(s) {missing}"


def _topic_patterns() -> dict[str, str]:
    """Topics method -> its topic below the venue root, with <gate>/<zone> placeholders."""
    topics = Topics("VENUE")
    out = {}
    for name, fn in inspect.getmembers(topics, inspect.ismethod):
        if name.startswith("_") or name in ("split", "gate_of", "match", "owns"):  # readers
            continue
        params = list(inspect.signature(fn).parameters)
        topic = fn(*(f"<{p}>" for p in params))
        assert topic.startswith("sesame/v1/VENUE/"), name
        out[name] = topic.removeprefix("sesame/v1/VENUE/")
    return out


TOPICS = _topic_patterns()


@pytest.mark.parametrize("method", sorted(TOPICS))
def test_every_topic_is_documented(method):
    topic = TOPICS[method]
    titles = _sections(DOCS / "mqtt.md")
    assert any(topic in t for t in titles), f"docs/mqtt.md needs a heading with '{topic}'"


def test_the_topic_list_is_the_contract():
    assert set(TOPICS.values()) >= {
        "gates/<gate>/events",
        "gates/<gate>/status",
        "gates/<gate>/lease",
        "gates/<gate>/ack",
        "counter/status",
        "zones/<zone>/occupancy",
        "control/zones/<zone>",
        "control/venue",
        "badges/revoked/<shard>",
    }


@pytest.mark.parametrize("reason", list(Reason), ids=str)
def test_every_reason_is_documented_with_its_labels(reason):
    assert reason in LABELS, f"sesame/reasons.py: no labels for {reason}"
    fr, en = LABELS[reason]
    text = (DOCS / "reasons.md").read_text(encoding="utf-8")
    row = next((ln for ln in text.splitlines() if ln.startswith(f"| `{reason}` |")), None)
    assert row is not None, f"docs/reasons.md needs a table row for `{reason}`"
    assert fr in row and en in row, f"docs/reasons.md: labels of {reason} differ from the code"
