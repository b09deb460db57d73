"""TLS material for `sesame broker setup --tls`, made with the `cryptography` package.

    tls/ca.key, tls/ca.crt            the venue's private CA (key stays on the broker host)
    tls/server.key, tls/server.crt    the broker's certificate: SAN 127.0.0.1, localhost, --host
    credentials/ca.crt                copy of the CA certificate, next to the credential files
    credentials/<account>.crt/.key    one client certificate per account (CN = account)

Re-running keeps the CA and the client certificates it signed; the server certificate is
re-issued each time so a changed --host is covered.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sesame.common.private_files import private_dir

CA_DAYS = 3650
LEAF_DAYS = 825


def _write(path: Path, data: bytes, mode: int) -> None:
    from sesame.broker.setup import _write as write_text

    write_text(path, data.decode("ascii"), mode)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sesame venue"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def make_ca(cn: str = "Sesame venue CA") -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    cn: str,
    *,
    server_names: list[str] | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A leaf certificate: a server one when `server_names` is given, else a client one."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server_names is not None:
        alt: list[x509.GeneralName] = []
        for name in dict.fromkeys(server_names):  # keep order, drop repeats
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        usage = ExtendedKeyUsageOID.SERVER_AUTH
    else:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _load(key_path: Path, cert_path: Path):
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return None
    return key, cert


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except (ValueError, TypeError, Exception):  # InvalidSignature has no common base
        return False


def write_pair(key, cert, key_path: Path, cert_path: Path) -> None:
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def ensure_tls(
    out: Path, host: str, accounts: list[str], extra_names: list[str] | None = None
) -> None:
    tls = Path(out) / "tls"
    creds = Path(out) / "credentials"
    private_dir(tls)
    private_dir(creds)
    ca = _load(tls / "ca.key", tls / "ca.crt")
    if ca is None:
        ca = make_ca()
        write_pair(*ca, tls / "ca.key", tls / "ca.crt")
    ca_key, ca_cert = ca
    from sesame.broker.setup import public_host

    # extra_names: the hosts of a broker cluster's nodes, which share one certificate
    names = ["127.0.0.1", "localhost", public_host(host)]
    names += [public_host(h) for h in extra_names or []]
    old = _load(tls / "server.key", tls / "server.crt")
    server = issue(
        ca_key, ca_cert, "sesame-broker", server_names=names, key=old[0] if old else None
    )
    write_pair(*server, tls / "server.key", tls / "server.crt")
    _write(creds / "ca.crt", ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    for account in accounts:
        pair = _load(creds / f"{account}.key", creds / f"{account}.crt")
        if pair is None or not _signed_by(pair[1], ca_cert):
            write_pair(
                *issue(ca_key, ca_cert, account), creds / f"{account}.key", creds / f"{account}.crt"
            )
