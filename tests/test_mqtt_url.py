"""Broker URLs and credential files: what `common.mqtt.parse_broker_url` accepts and refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sesame.common.mqtt import BrokerURL, parse_broker_url


def test_plain_url_with_credentials_and_default_port():
    u = parse_broker_url("mqtt://gate-a:s%3Acret@broker.local")
    assert (u.scheme, u.host, u.port, u.username, u.password) == (
        "mqtt",
        "broker.local",
        1883,
        "gate-a",
        "s:cret",
    )
    assert not u.tls


def test_mqtts_default_port_and_ca(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    u = parse_broker_url(f"mqtts://10.0.0.5?ca={ca}")
    assert (u.port, u.tls, u.ca) == (8883, True, ca)


def test_password_never_shown():
    u = parse_broker_url("mqtt://counter:hunter2@127.0.0.1:1999")
    assert "hunter2" not in repr(u) and "hunter2" not in u.display
    assert u.display == "mqtt://counter@127.0.0.1:1999"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://h:1", "scheme"),
        ("mqtt://:1883", "no host"),
        ("mqtt://h:99999", "port"),
        ("mqtt://h:1/some/path", "path"),
        ("mqtt://h:1?bogus=1", "bogus"),
        ("mqtt://h:1?ca=/etc/hostname", "mqtts"),
        ("mqtt://:secret@h:1", "user name"),
        ("", "no broker URL"),
    ],
)
def test_bad_urls_say_why(url, words):
    with pytest.raises(ValueError, match=words):
        parse_broker_url(url)


def test_bad_url_error_hides_password():
    with pytest.raises(ValueError) as e:
        parse_broker_url("ftp://u:topsecret@h")
    assert "topsecret" not in str(e.value)


def test_missing_ca_file_named(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        parse_broker_url(f"mqtts://h?ca={tmp_path / 'nope.crt'}")


def _cred(tmp_path: Path, **data) -> Path:
    p = tmp_path / "gate.json"
    p.write_text(json.dumps(data))
    return p


def test_credential_file_alone(tmp_path):
    (tmp_path / "ca.crt").write_text("x")
    p = _cred(tmp_path, username="gate-a", password="pw", broker="mqtts://b:8884", ca="ca.crt")
    for u in (parse_broker_url(None, p), parse_broker_url(str(p))):
        assert isinstance(u, BrokerURL)
        assert (u.host, u.port, u.username, u.password) == ("b", 8884, "gate-a", "pw")
        assert u.ca == tmp_path / "ca.crt"  # relative to the credential file


def test_url_wins_over_credential_file(tmp_path):
    p = _cred(tmp_path, username="gate-a", password="pw", broker="mqtt://elsewhere:1")
    u = parse_broker_url("mqtt://127.0.0.1:2000", p)
    assert (u.host, u.port, u.username, u.password) == ("127.0.0.1", 2000, "gate-a", "pw")


@pytest.mark.parametrize(
    ("text", "words"),
    [("not json", "not JSON"), ("[1]", "JSON object"), ('{"password": 5}', "string")],
)
def test_bad_credential_files(tmp_path, text, words):
    p = tmp_path / "c.json"
    p.write_text(text)
    with pytest.raises(ValueError, match=words):
        parse_broker_url(None, p)


def test_missing_credential_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        parse_broker_url(None, tmp_path / "none.json")
