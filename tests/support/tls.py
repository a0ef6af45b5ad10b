"""Throwaway certificates for TLS tests, and the server arguments that use them.

``make_pki(directory)`` writes, as PEM files:

* ``ca.pem``: a CA that signs everything below;
* ``server.pem`` / ``server-key.pem``: a server certificate for ``localhost``
  and ``127.0.0.1`` (both in the subject alternative names);
* ``other.pem`` / ``other-key.pem``: a server certificate for
  ``db.example.invalid`` only (a host name check against 127.0.0.1 fails);
* ``client.pem`` / ``client-key.pem``: a client certificate (for ``REQUIRE X509``);
* ``wrong-ca.pem``: a second CA, unrelated to the first, that signed nothing we use.

Keys are P-256 (generated in microseconds, unlike RSA) and everything is valid
from an hour ago (clock skew) for a day.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .realdb import execute

__all__ = ["Pki", "have_ssl", "make_pki", "server_tls_args"]

OTHER_HOST = "db.example.invalid"


@dataclass(frozen=True)
class Pki:
    """Paths of the files ``make_pki`` wrote."""

    ca: Path
    server_cert: Path
    server_key: Path
    other_cert: Path
    other_key: Path
    client_cert: Path
    client_key: Path
    wrong_ca: Path


@dataclass(frozen=True)
class _Issuer:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aiopool tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _make_ca(common_name: str, path: Path) -> _Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        _builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_cert(cert, path)
    return _Issuer(name, key)


def _make_leaf(
    issuer: _Issuer,
    common_name: str,
    sans: list[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    cert_path: Path,
    key_path: Path,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(_name(common_name), issuer.name, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    _write_cert(builder.sign(issuer.key, hashes.SHA256()), cert_path)
    _write_key(key, key_path)


def make_pki(directory: Path) -> Pki:
    """Write a CA, server, other-host, client and unrelated-CA set into ``directory``."""
    d = Path(directory)
    pki = Pki(
        ca=d / "ca.pem",
        server_cert=d / "server.pem",
        server_key=d / "server-key.pem",
        other_cert=d / "other.pem",
        other_key=d / "other-key.pem",
        client_cert=d / "client.pem",
        client_key=d / "client-key.pem",
        wrong_ca=d / "wrong-ca.pem",
    )
    ca = _make_ca("aiopool test CA", pki.ca)
    _make_ca("aiopool unrelated CA", pki.wrong_ca)
    server = ExtendedKeyUsageOID.SERVER_AUTH
    local_names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
    ]
    _make_leaf(ca, "localhost", local_names, server, pki.server_cert, pki.server_key)
    other_names: list[x509.GeneralName] = [x509.DNSName(OTHER_HOST)]
    _make_leaf(ca, OTHER_HOST, other_names, server, pki.other_cert, pki.other_key)
    client = ExtendedKeyUsageOID.CLIENT_AUTH
    _make_leaf(ca, "aiopool test client", [], client, pki.client_cert, pki.client_key)
    return pki


def server_tls_args(pki: Pki, *, other_host: bool = False) -> list[str]:
    """``PrivateMariaDB(extra_args=...)`` enabling TLS (MariaDB 10.11 option names).

    ``other_host=True`` serves the ``db.example.invalid`` certificate instead
    of the one for ``localhost``/``127.0.0.1``. The server's CA also verifies
    client certificates (``REQUIRE X509``).
    """
    cert, key = (pki.other_cert, pki.other_key) if other_host else (pki.server_cert, pki.server_key)
    return [f"--ssl-ca={pki.ca}", f"--ssl-cert={cert}", f"--ssl-key={key}"]


def have_ssl(url: str) -> str:
    """The server's ``have_ssl`` (``YES`` once TLS came up, else ``DISABLED``).

    Synchronous, for module-scoped fixtures: runs its own event loop in a
    worker thread, so it cannot disturb the loop of the test being set up.
    """

    async def ask() -> str:
        async with asyncio.timeout(10):
            (rows,) = await execute(url, "SHOW GLOBAL VARIABLES LIKE 'have_ssl'")
        return str(rows[0][1])

    with concurrent.futures.ThreadPoolExecutor(1) as worker:
        return worker.submit(asyncio.run, ask()).result(timeout=30)
