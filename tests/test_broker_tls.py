"""`sesame broker setup --tls`: a private CA; clients connect with it, and fail without it,
with another CA, or with a client certificate from another CA."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from sesame.broker.embedded import EmbeddedBroker
from sesame.broker.process import MosquittoProcess
from sesame.broker.setup import setup
from sesame.common.mqtt import TLSFailed, connect
from sesame.common.venue import load_venue
from tests.fixtures.broker import credential_variant

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tls_config(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("broker-tls")
    setup(load_venue(REPO / "config" / "grand-palais.toml"), out, tls=True)
    return out


@pytest.fixture(params=[MosquittoProcess, EmbeddedBroker], ids=["mosquitto", "embedded"])
def tls_broker(request, tls_config, tmp_path):
    proc = request.param(tls_config, run_dir=tmp_path / "broker")
    try:
        yield proc.start()
    finally:
        proc.close()


def _variant(cred: Path, tmp_path: Path, **changes) -> Path:
    return credential_variant(cred, tmp_path / "variant", **changes)


def test_setup_writes_ca_server_and_client_certificates(tls_config):
    from cryptography import x509

    server = x509.load_pem_x509_certificate((tls_config / "tls" / "server.crt").read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    ca = x509.load_pem_x509_certificate((tls_config / "credentials" / "ca.crt").read_bytes())
    server.verify_directly_issued_by(ca)
    for f in ("tls/ca.key", "tls/server.key", "credentials/counter.key"):
        assert (tls_config / f).stat().st_mode & 0o777 == 0o600
    serialization.load_pem_private_key((tls_config / "tls" / "ca.key").read_bytes(), None)
    cred = json.loads((tls_config / "credentials" / "counter.json").read_text())
    assert cred["broker"].startswith("mqtts://127.0.0.1:")
    assert conf_has(tls_config, "require_certificate true")


def conf_has(d: Path, line: str) -> bool:
    return line in (d / "mosquitto.conf").read_text().splitlines()


def test_connects_with_generated_ca_and_client_cert(tls_broker):
    conn = connect(None, "tls-ok", credentials=tls_broker.credentials("counter"), timeout=10)
    try:
        assert conn.is_connected()
        want = "5" if isinstance(tls_broker, MosquittoProcess) else "3.1.1"
        assert conn.protocol == want
    finally:
        conn.close()


def test_fails_without_the_ca(tls_broker, tmp_path):
    cred = _variant(tls_broker.credentials("counter"), tmp_path, ca=None)
    with pytest.raises(TLSFailed, match="CERTIFICATE_VERIFY_FAILED"):
        connect(None, "tls-noca", credentials=cred, timeout=5)


def test_fails_with_another_ca(tls_broker, tmp_path, other_ca):
    cred = _variant(tls_broker.credentials("counter"), tmp_path, ca=other_ca / "ca.crt")
    with pytest.raises(TLSFailed, match="CERTIFICATE_VERIFY_FAILED"):
        connect(None, "tls-otherca", credentials=cred, timeout=5)


def test_client_certificate_from_another_ca_refused(tls_broker, tmp_path, other_ca):
    cred = _variant(
        tls_broker.credentials("counter"),
        tmp_path,
        cert=other_ca / "counter.crt",
        key=other_ca / "counter.key",
    )
    with pytest.raises(TLSFailed):
        connect(None, "tls-othercert", credentials=cred, timeout=5)


def test_mosquitto_requires_a_client_certificate(tls_config, tmp_path):
    with MosquittoProcess(tls_config, run_dir=tmp_path / "m") as proc:
        cred = _variant(proc.credentials("counter"), tmp_path, cert=None, key=None)
        with pytest.raises(TLSFailed):
            connect(None, "tls-nocert", credentials=cred, timeout=5)


def test_rerun_keeps_the_ca(tls_config, tmp_path):
    copy = tmp_path / "again"
    shutil.copytree(tls_config, copy)
    before = (copy / "tls" / "ca.crt").read_bytes()
    client_before = (copy / "credentials" / "gate-churchill-in-1.crt").read_bytes()
    setup(load_venue(REPO / "config" / "grand-palais.toml"), copy, tls=True, host="10.1.2.3")
    assert (copy / "tls" / "ca.crt").read_bytes() == before
    assert (copy / "credentials" / "gate-churchill-in-1.crt").read_bytes() == client_before
    from cryptography import x509

    server = x509.load_pem_x509_certificate((copy / "tls" / "server.crt").read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.1.2.3" in [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
