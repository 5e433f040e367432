"""The certificate listener's ``capath``: trusted CAs in OpenSSL hashed-directory form.

OpenSSL looks a chain's issuer up in a ``capath`` directory by the hash of its subject
name: it opens ``<hash>.0``, ``<hash>.1``, ... until one verifies. :func:`sync_capath`
makes a directory hold exactly the CAs it is given, each as ``<fingerprint>.pem`` plus a
symlink ``<subject hash>.<n>`` to it.

The subject hash is OpenSSL's ``X509_NAME_hash`` of the canonical subject. We ask the
``openssl`` command (Debian package ``openssl``) rather than re-implementing the
canonical encoding in Python: the canonicalisation (string-type conversion, case folding,
whitespace collapsing per RDN) is easy to get subtly wrong, and a wrong hash fails
silently (the CA is simply never found). The command uses the same libcrypto as the
broker, so the two cannot disagree. It is called once per CA per sync; CAs are few.

mosquitto 2.0.11 reads new files in capath at each handshake but never forgets a CA
once loaded (DESIGN.md); the plugin's live state is what withdraws trust. This module is
synchronous file I/O: call it from a thread in async code.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fleetgate.domain.errors import ConfigurationError

__all__ = ["fingerprint", "subject_hash", "sync_capath"]

_FINGERPRINT = re.compile(r"[0-9a-f]{40}")
_TMP_SUFFIX = ".tmp"


def fingerprint(certificate: x509.Certificate) -> str:
    """Lowercase hex SHA-1 of the DER, as Cumulocity shows a trusted certificate's."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    return hashlib.sha1(der, usedforsecurity=False).hexdigest()


def subject_hash(pem: bytes) -> str:
    """OpenSSL's ``X509_NAME_hash`` of the certificate's subject, as 8 hex digits."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ConfigurationError(
            "the openssl command is needed to write the trusted CA directory; "
            "install the Debian package: apt-get install openssl"
        )
    result = subprocess.run(
        [openssl, "x509", "-subject_hash", "-noout"],
        input=pem,
        capture_output=True,
        check=False,
    )
    value = result.stdout.decode("ascii", "replace").strip()
    if result.returncode != 0 or not re.fullmatch(r"[0-9a-f]{8}", value):
        raise ValueError(f"openssl could not hash the certificate subject: {result.stderr!r}")
    return value


def sync_capath(directory: Path, certificates: Mapping[str, bytes]) -> None:
    """Make ``directory`` hold exactly ``certificates`` (fingerprint -> PEM) for OpenSSL.

    Each CA becomes ``<fingerprint>.pem`` (0644: CA certificates are public) plus a
    symlink ``<subject hash>.<n>``; ``n`` counts CAs with the same subject hash in
    fingerprint order. Files and links are replaced atomically (rename), unchanged ones
    are left alone, and every other file or link in ``directory`` is removed, so a
    repeated call changes nothing. Raises ValueError when a key is not the lowercase hex
    SHA-1 of its certificate or a value is not one PEM certificate.
    """
    directory.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, bytes | str] = {}  # name -> file content, or symlink target
    counters: dict[str, int] = {}
    for fp in sorted(certificates):
        pem = certificates[fp]
        if not _FINGERPRINT.fullmatch(fp):
            raise ValueError(f"not a lowercase hex SHA-1 fingerprint: {fp!r}")
        certificate = x509.load_pem_x509_certificate(pem)
        if fingerprint(certificate) != fp:
            raise ValueError(
                f"certificate filed under {fp} has fingerprint {fingerprint(certificate)}"
            )
        name = f"{fp}.pem"
        wanted[name] = certificate.public_bytes(serialization.Encoding.PEM)
        digest = subject_hash(pem)
        n = counters.get(digest, 0)
        counters[digest] = n + 1
        wanted[f"{digest}.{n}"] = name
    # Certificates before links, so a link never points at a file not yet there.
    for name, content in sorted(wanted.items(), key=lambda item: isinstance(item[1], str)):
        if isinstance(content, bytes):
            _write_file(directory / name, content)
        else:
            _write_link(directory / name, content)
    for entry in directory.iterdir():
        if entry.name not in wanted and (entry.is_symlink() or entry.is_file()):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()


def _write_file(path: Path, content: bytes) -> None:
    if path.is_file() and not path.is_symlink() and path.read_bytes() == content:
        path.chmod(0o644)
        return
    tmp = path.with_name(path.name + _TMP_SUFFIX)
    tmp.unlink(missing_ok=True)
    tmp.write_bytes(content)
    tmp.chmod(0o644)
    tmp.replace(path)


def _write_link(path: Path, target: str) -> None:
    if path.is_symlink() and os.readlink(path) == target:
        return
    tmp = path.with_name(path.name + _TMP_SUFFIX)
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(path)
