"""Keys and certificates: the only place in fleetgate that creates them.

ECDSA P-256 keys and SHA-256 signatures throughout. Certificates carry the extensions a
strict verifier (OpenSSL 3) expects: BasicConstraints, KeyUsage, SubjectKeyIdentifier,
AuthorityKeyIdentifier, and a SubjectAlternativeName on server certificates.

:func:`ensure_dev_pki` creates (once) the broker CA and server certificate that the
embedded development stack uses; production deployments bring their own.
"""

from __future__ import annotations

import datetime as dt
import grp
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "DevPki",
    "Issued",
    "PrivateKey",
    "ensure_dev_pki",
    "generate_ca",
    "issue_client_certificate",
    "issue_server_certificate",
    "load_issued",
]

PrivateKey = ec.EllipticCurvePrivateKey

#: Group that mosquitto runs as after dropping root; key files are made readable to it.
BROKER_GROUP = "mosquitto"
_BACKDATE = dt.timedelta(minutes=5)  # tolerate small clock differences between machines


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key."""

    certificate: x509.Certificate
    private_key: PrivateKey

    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """The key as unencrypted PKCS#8 PEM."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def write(self, cert_path: Path, key_path: Path, *, key_group: str | None = None) -> None:
        """Write both files; the key is created 0640 (never world-readable, even briefly).

        ``key_group``: a group to give the key file to (e.g. ``mosquitto``); needs root.
        """
        cert_path.write_bytes(self.cert_pem())
        cert_path.chmod(0o644)
        _write_private(key_path, self.key_pem())
        if key_group is not None:
            os.chown(key_path, -1, grp.getgrnam(key_group).gr_gid)


def generate_ca(
    common_name: str,
    *,
    valid_days: int = 3650,
    not_before: dt.datetime | None = None,
    path_length: int | None = None,
    issuer: Issued | None = None,
) -> Issued:
    """A self-signed root CA, or an intermediate signed by ``issuer``."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now() - _BACKDATE
    signer_key = issuer.private_key if issuer else key
    builder = _builder(
        _name(common_name),
        issuer.certificate.subject if issuer else _name(common_name),
        key,
        start,
        start + dt.timedelta(days=valid_days),
    )
    builder = (
        builder.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(_aki(issuer.certificate if issuer else None, signer_key), critical=False)
    )
    return Issued(builder.sign(signer_key, hashes.SHA256()), key)


def issue_server_certificate(
    ca: Issued, hostnames: Sequence[str], ips: Sequence[str], valid_days: int = 825
) -> Issued:
    """A TLS server certificate for ``hostnames`` and ``ips`` (the first name is the CN)."""
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    if not names:
        raise ValueError("a server certificate needs at least one hostname or IP address")
    common_name = hostnames[0] if hostnames else ips[0]
    key = ec.generate_private_key(ec.SECP256R1())
    start = _now() - _BACKDATE
    builder = _leaf_builder(ca, common_name, key, start, start + dt.timedelta(days=valid_days))
    builder = builder.add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
    ).add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(builder.sign(ca.private_key, hashes.SHA256()), key)


def issue_client_certificate(
    ca: Issued,
    common_name: str,
    *,
    valid_days: int = 365,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> Issued:
    """A TLS client certificate; ``not_before``/``not_after`` allow expired or future ones."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now() - _BACKDATE
    end = not_after or start + dt.timedelta(days=valid_days)
    builder = _leaf_builder(ca, common_name, key, start, end).add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
    )
    return Issued(builder.sign(ca.private_key, hashes.SHA256()), key)


def load_issued(cert_path: Path, key_path: Path) -> Issued:
    """Read back what :meth:`Issued.write` wrote (an unencrypted EC key)."""
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path} does not hold an EC private key")
    return Issued(certificate, key)


@dataclass(frozen=True)
class DevPki:
    """Absolute paths of the development broker CA and server certificate."""

    ca_file: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def ensure_dev_pki(directory: Path) -> DevPki:
    """Create the development broker CA and server certificate in ``directory`` once.

    Existing files are reused as they are (idempotent). The server certificate names
    ``localhost``, ``127.0.0.1`` and ``::1``. Key files are 0640; when running as root
    and a ``mosquitto`` group exists, they belong to that group and the directory is
    made traversable, so that mosquitto can read them after dropping privileges.
    """
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    pki = DevPki(
        ca_file=directory / "ca.crt",
        ca_key=directory / "ca.key",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
    )
    group = _broker_group()
    if not all(p.exists() for p in (pki.ca_file, pki.ca_key, pki.server_cert, pki.server_key)):
        ca = generate_ca("fleetgate dev broker CA")
        server = issue_server_certificate(ca, ["localhost"], ["127.0.0.1", "::1"])
        ca.write(pki.ca_file, pki.ca_key)  # the CA key stays with its owner only
        server.write(pki.server_cert, pki.server_key, key_group=group)
    if group is not None:
        directory.chmod(directory.stat().st_mode | 0o711)
        os.chown(pki.server_key, -1, grp.getgrnam(group).gr_gid)
        pki.server_key.chmod(0o640)
    pki.ca_key.chmod(0o600)
    return pki


def _broker_group() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        grp.getgrnam(BROKER_GROUP)
    except KeyError:
        return None
    return BROKER_GROUP


def _write_private(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    path.chmod(0o640)  # the umask may have narrowed the mode given to open()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: PrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )


def _leaf_builder(
    ca: Issued,
    common_name: str,
    key: PrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.CertificateBuilder:
    return (
        _builder(_name(common_name), ca.certificate.subject, key, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(_aki(ca.certificate, ca.private_key), critical=False)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _aki(issuer: x509.Certificate | None, signer_key: PrivateKey) -> x509.AuthorityKeyIdentifier:
    """Prefer the issuer's own SubjectKeyIdentifier so that the two always agree."""
    if issuer is not None:
        try:
            ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        except x509.ExtensionNotFound:
            pass
        else:
            return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key())
