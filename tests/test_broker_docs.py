"""Every topic and broker account is documented in docs/mqtt.md, every `sesame broker`
action in the README's Broker section (a doc that drifts from the code fails here)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from sesame.broker.setup import acl_rules
from sesame.cli import build_parser
from sesame.common.venue import load_venue
from sesame.common.wire import Topics

REPO = Path(__file__).resolve().parents[1]
DOC = (REPO / "docs" / "mqtt.md").read_text()
HEADINGS = {
    h.replace("&lt;", "<").replace("&gt;", ">") for h in re.findall(r"^## (.+)$", DOC, re.M)
}


def _topic_methods() -> list[str]:
    return [
        name
        for name, fn in inspect.getmembers(Topics, inspect.isfunction)
        if not name.startswith("_") and name not in ("split", "gate_of", "match", "owns")
    ]


def test_every_topic_has_its_own_heading():
    t = Topics("VENUE")
    for name in _topic_methods():
        fn = getattr(t, name)
        params = list(inspect.signature(fn).parameters)
        arg = {
            "events": "<gate>",
            "gate_status": "<gate>",
            "lease": "<gate>",
            "ack": "<gate>",
            "occupancy": "<zone>",
            "zone_control": "<zone>",
            "lane_admissions": "<gate>",
            "revoked": "<shard>",
            "alerts": "<shard>",
        }.get(name)
        topic = fn(arg) if params else fn()
        assert topic.startswith(t.root + "/")
        rel = topic[len(t.root) + 1 :]
        assert rel in HEADINGS, f"docs/mqtt.md has no '## {rel}' heading ({name})"


def test_every_account_kind_is_documented():
    rules = acl_rules(load_venue(REPO / "config" / "grand-palais.toml"))
    kinds = {("gate-<gate>" if a.startswith("gate-") else a) for a in rules}
    for kind in kinds:
        assert f"`{kind}`" in DOC, kind


def test_every_broker_action_is_in_the_readme():
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Broker\n", 1)[1].split("\n## ", 1)[0]
    sub = next(a for a in build_parser()._subparsers._group_actions)  # noqa: SLF001
    broker = sub.choices["broker"]
    actions = next(a for a in broker._subparsers._group_actions).choices  # noqa: SLF001
    assert set(actions) == {"setup", "run", "client-args"}
    for action, parser in actions.items():
        assert f"sesame broker {action}" in section or f"`{action}`" in section, action
        for opt in parser._option_string_actions:  # noqa: SLF001
            if opt.startswith("--") and opt != "--help":
                assert opt in section, f"README Broker section does not mention {action} {opt}"
