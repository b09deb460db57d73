"""The embedded broker's ACL logic (pure): MQTT filter matching and "filter within rule",
checked against a reference implementation on generated topics."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from sesame.broker.embedded import allowed, filter_within, parse_acl, topic_matches

LEVELS = st.sampled_from(["a", "b", "gates", "x1", ""])
TOPICS = st.lists(LEVELS, min_size=1, max_size=5).map("/".join)


@st.composite
def filters(draw):
    parts = draw(st.lists(st.sampled_from(["a", "b", "gates", "+", ""]), min_size=1, max_size=4))
    if draw(st.booleans()):
        parts.append("#")
    return "/".join(parts)


def reference_match(filt: str, topic: str) -> bool:
    """MQTT 3.1.1 section 4.7 as a regular expression."""
    parts = filt.split("/")
    rx = ""
    for i, p in enumerate(parts):
        sep = "/" if i else ""
        if p == "#":
            # '#' also matches the parent level ("a/#" matches "a")
            rx += "(/.*)?" if i else ".*"
            break
        rx += sep + ("[^/]*" if p == "+" else re.escape(p))
    return re.fullmatch(rx, topic) is not None


@settings(max_examples=200, deadline=None)
@given(filters(), TOPICS)
def test_topic_matches_agrees_with_reference(filt, topic):
    assert topic_matches(filt, topic) == reference_match(filt, topic)


@settings(max_examples=200, deadline=None)
@given(filters(), filters(), st.lists(TOPICS, max_size=30))
def test_filter_within_is_sound(filt, rule, topics):
    """Whatever a permitted subscription can receive, the rule also matches."""
    if filter_within(filt, rule):
        for topic in topics:
            if topic_matches(filt, topic):
                assert topic_matches(rule, topic), (filt, rule, topic)


def test_filter_within_examples():
    r = "sesame/v1/gp"
    assert filter_within(f"{r}/gates/+/events", f"{r}/gates/+/events")
    assert filter_within(f"{r}/gates/g1/events", f"{r}/gates/+/events")
    assert filter_within(f"{r}/zones/+/occupancy", f"{r}/#")
    assert not filter_within(f"{r}/#", f"{r}/gates/+/events")
    assert not filter_within(f"{r}/gates/+/events", f"{r}/gates/g1/events")
    assert not filter_within(f"{r}/control/#", f"{r}/control/zones/+")


def test_allowed_follows_mosquitto_access_words():
    rules = parse_acl(
        "# comment\nuser gate-g1\ntopic write t/g1/events\ntopic readwrite t/g1/status\n"
        "topic read t/control/#\n\nuser other\ntopic t/any\n"
    )
    assert allowed(rules, "gate-g1", "t/g1/events", "publish")
    assert not allowed(rules, "gate-g1", "t/g1/events", "receive")
    assert allowed(rules, "gate-g1", "t/g1/status", "receive")
    assert allowed(rules, "gate-g1", "t/control/venue", "receive")
    assert not allowed(rules, "gate-g1", "t/control/venue", "publish")
    assert allowed(rules, "gate-g1", "t/control/zones/+", "subscribe")
    assert not allowed(rules, "gate-g1", "t/g2/events", "publish")
    assert not allowed(rules, None, "t/g1/events", "publish")  # anonymous
    assert allowed(rules, "other", "t/any", "publish")  # no access word: readwrite
    assert allowed(rules, "other", "t/any", "receive")
