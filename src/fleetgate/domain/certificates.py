"""Reading an uploaded CA certificate: the rules it must pass, and the facts it states.

A trusted certificate is accepted only when it is one X.509 version 3 certificate with
``BasicConstraints CA:true`` that is valid now and strong enough for the broker's OpenSSL
(security level 2: RSA and DSA keys of 2048 bits or more, elliptic curves of 224 bits or
more, no SHA-1 or MD5 signature; decision 0004); everything else is refused with a
:class:`CertificateRefused` whose ``reason`` says which rule failed. The facts shown to
the operator (fingerprint, subject, serial number, ...) are read once, here, and never
change.

Representation choices follow Cumulocity: the fingerprint is the lowercase hex SHA-1 of
the DER, the serial number is decimal, the signature algorithm uses Java's names
(``SHA256withECDSA``), timestamps are ISO 8601 UTC with milliseconds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import SignatureAlgorithmOID

from fleetgate.domain.errors import ValidationFailed

_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]+$")


#: Larger input is refused before it is looked at; a CA certificate is a few KiB.
MAX_PEM_BYTES = 64 * 1024


#: OpenSSL's security level 2 (the default of Debian bookworm's OpenSSL 3, which the
#: broker links): 112 bits of security. A CA key below these sizes makes OpenSSL refuse
#: every device certificate it signed (tests/integration/test_broker_weak_cas.py).
MIN_RSA_BITS = 2048


MIN_DSA_BITS = 2048


MIN_EC_BITS = 224


#: Signature hashes below 112 bits of collision resistance (OpenSSL rates SHA-1 at 63).
_WEAK_HASHES = frozenset({"md5", "sha1"})


class RefusalReason(StrEnum):
    """Why an uploaded certificate was refused; one value per rule."""

    TOO_LARGE = "tooLarge"
    NOT_PEM = "notPem"
    PRIVATE_KEY = "privateKey"
    NOT_A_CERTIFICATE = "notACertificate"
    SEVERAL_CERTIFICATES = "severalCertificates"
    NOT_VERSION_3 = "notVersion3"
    NOT_A_CA = "notACa"
    EXPIRED = "expired"
    NOT_YET_VALID = "notYetValid"
    WEAK_KEY = "weakKey"
    WEAK_SIGNATURE = "weakSignature"


class CertificateRefused(ValidationFailed):
    """An uploaded certificate breaks one of the rules; ``reason`` names which."""

    def __init__(self, reason: RefusalReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    """What a trusted certificate says about itself; read-only once uploaded."""

    fingerprint: str
    subject: str
    issuer: str
    serial_number: str
    algorithm_name: str
    version: int
    not_before: datetime
    not_after: datetime
    der: bytes
    pem: str


def iso_timestamp(moment: datetime) -> str:
    """``2040-02-13T13:13:00.000Z``: UTC, milliseconds, ``Z``, as Cumulocity writes them."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


_BEGIN = re.compile(r"-----BEGIN ([^-\r\n]*)-----")


_BLOCK = re.compile(r"-----BEGIN ([^-\r\n]*)-----(.*?)-----END \1-----", re.DOTALL)


_SIGNING_KEYS = (
    rsa.RSAPublicKey,
    dsa.DSAPublicKey,
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
)


_NOT_PEM = "not a PEM certificate: expected one '-----BEGIN CERTIFICATE-----' block"


# Java's names for signature algorithms (what Cumulocity's algorithmName shows).
_JAVA_ALGORITHM_NAMES = {
    SignatureAlgorithmOID.RSA_WITH_MD5: "MD5withRSA",
    SignatureAlgorithmOID.RSA_WITH_SHA1: "SHA1withRSA",
    SignatureAlgorithmOID.RSA_WITH_SHA224: "SHA224withRSA",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "SHA256withRSA",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "SHA384withRSA",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "SHA512withRSA",
    SignatureAlgorithmOID.RSASSA_PSS: "RSASSA-PSS",
    SignatureAlgorithmOID.ECDSA_WITH_SHA1: "SHA1withECDSA",
    SignatureAlgorithmOID.ECDSA_WITH_SHA224: "SHA224withECDSA",
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "SHA256withECDSA",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "SHA384withECDSA",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "SHA512withECDSA",
    SignatureAlgorithmOID.DSA_WITH_SHA1: "SHA1withDSA",
    SignatureAlgorithmOID.DSA_WITH_SHA224: "SHA224withDSA",
    SignatureAlgorithmOID.DSA_WITH_SHA256: "SHA256withDSA",
    SignatureAlgorithmOID.ED25519: "Ed25519",
    SignatureAlgorithmOID.ED448: "Ed448",
}


#: What cryptography raises when it meets a malformed part of a certificate: it reads
#: names and extensions lazily, and says "malformed" in several ways (a duplicated
#: extension, a name attribute of the wrong string type …).
_MALFORMED = (ValueError, TypeError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)


def parse_trusted_certificate(pem: str | bytes, now: datetime) -> CertificateFacts:
    """Check an uploaded CA certificate against every rule and read its facts.

    ``pem`` is one ``CERTIFICATE`` PEM block; as Cumulocity accepts it, the bare base64
    body without the BEGIN/END lines is taken too. Raises :class:`CertificateRefused`
    (a :class:`ValidationFailed`, HTTP 422) naming the first rule broken; the message
    never repeats the input, so a private key sent by mistake is not echoed back.
    """
    der = _single_certificate_der(pem)
    try:
        with warnings.catch_warnings():
            # cryptography warns about (and will refuse) non-positive serials; so do we.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            cert = x509.load_der_x509_certificate(der)
            serial_number = cert.serial_number
    except x509.InvalidVersion:
        # Newer cryptography refuses an unknown version number while loading.
        raise CertificateRefused(
            RefusalReason.NOT_VERSION_3,
            "the certificate is not X.509 version 3; a trusted certificate must be version 3",
        ) from None
    except ValueError:
        raise CertificateRefused(
            RefusalReason.NOT_PEM,
            "not a PEM certificate: the CERTIFICATE block does not hold an X.509 certificate",
        ) from None
    if serial_number <= 0:
        raise CertificateRefused(
            RefusalReason.NOT_PEM,
            "the certificate's serial number is not positive, which RFC 5280 forbids",
        )
    try:
        version = cert.version
    except x509.InvalidVersion:
        version = None
    if version is not x509.Version.v3:
        raise CertificateRefused(
            RefusalReason.NOT_VERSION_3,
            "the certificate is not X.509 version 3; a trusted certificate must be version 3",
        )
    _require_ca(cert)
    try:
        not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
        subject, issuer = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
        algorithm_oid = cert.signature_algorithm_oid
    except _MALFORMED:
        raise CertificateRefused(
            RefusalReason.NOT_PEM, "not a PEM certificate: the certificate is malformed"
        ) from None
    _require_strength(cert, algorithm_oid)
    if now >= not_after:
        raise CertificateRefused(
            RefusalReason.EXPIRED,
            f"the certificate has expired: it was valid until {iso_timestamp(not_after)}",
        )
    if now < not_before:
        raise CertificateRefused(
            RefusalReason.NOT_YET_VALID,
            f"the certificate is not valid yet: it is valid from {iso_timestamp(not_before)}",
        )
    return CertificateFacts(
        fingerprint=hashlib.sha1(der, usedforsecurity=False).hexdigest(),
        subject=subject,
        issuer=issuer,
        serial_number=str(serial_number),
        algorithm_name=_JAVA_ALGORITHM_NAMES.get(algorithm_oid, algorithm_oid.dotted_string),
        version=3,
        not_before=not_before,
        not_after=not_after,
        der=der,
        pem=_pem(der),
    )


def _single_certificate_der(pem: str | bytes) -> bytes:
    if len(pem) > MAX_PEM_BYTES or (
        isinstance(pem, str) and len(pem.encode("utf-8", "surrogatepass")) > MAX_PEM_BYTES
    ):
        raise CertificateRefused(
            RefusalReason.TOO_LARGE,
            f"the certificate is larger than {MAX_PEM_BYTES // 1024} KiB; "
            "upload one CA certificate in PEM",
        )
    if isinstance(pem, bytes):
        try:
            pem = pem.decode("utf-8")
        except UnicodeDecodeError:
            raise CertificateRefused(RefusalReason.NOT_PEM, _NOT_PEM) from None
    labels = [m.group(1).strip() for m in _BEGIN.finditer(pem)]
    if any("PRIVATE KEY" in label for label in labels):
        raise CertificateRefused(
            RefusalReason.PRIVATE_KEY,
            "a private key was sent: upload only the CA's certificate, never its private key "
            "(the key was not stored); consider it exposed if it was sent over an untrusted "
            "channel",
        )
    others = sorted({label for label in labels if label != "CERTIFICATE"})
    if others:
        raise CertificateRefused(
            RefusalReason.NOT_A_CERTIFICATE,
            f"only CERTIFICATE blocks are accepted, not {', '.join(repr(o) for o in others)}",
        )
    if len(labels) > 1:
        raise CertificateRefused(
            RefusalReason.SEVERAL_CERTIFICATES,
            f"{len(labels)} certificates were sent; upload exactly one CA certificate at a time",
        )
    if labels:
        block = _BLOCK.search(pem)
        if block is None:
            raise CertificateRefused(
                RefusalReason.NOT_PEM,
                "not a PEM certificate: the BEGIN CERTIFICATE line has no matching END line",
            )
        body = block.group(2)
    else:
        body = pem  # Cumulocity also takes the base64 body alone
    if not _BASE64.match(body):
        raise CertificateRefused(RefusalReason.NOT_PEM, _NOT_PEM)
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise CertificateRefused(RefusalReason.NOT_PEM, _NOT_PEM) from None
    if not der:
        raise CertificateRefused(RefusalReason.NOT_PEM, _NOT_PEM)
    return der


def _require_ca(cert: x509.Certificate) -> None:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise CertificateRefused(
            RefusalReason.NOT_A_CA,
            "the certificate has no BasicConstraints extension, so it is not a CA; "
            "upload the certificate of the CA that signs your devices' certificates",
        ) from None
    except _MALFORMED:
        raise CertificateRefused(
            RefusalReason.NOT_PEM, "not a PEM certificate: its extensions are malformed"
        ) from None
    if not constraints.ca:
        raise CertificateRefused(
            RefusalReason.NOT_A_CA,
            "the certificate is a leaf (BasicConstraints CA:false), not a CA; upload the "
            "certificate of the CA that signs your devices' certificates instead",
        )


_BROKER_REFUSES = "the broker's OpenSSL (security level 2) refuses"


def _require_strength(cert: x509.Certificate, algorithm_oid: x509.ObjectIdentifier) -> None:
    """The CA's key and signature must pass the broker's OpenSSL security level 2."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateRefused(
            RefusalReason.WEAK_KEY, "the certificate's public key is of a type OpenSSL cannot use"
        ) from None
    problem: str | None = None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        problem = f"an RSA key of {key.key_size} bits; {_BROKER_REFUSES} under {MIN_RSA_BITS}"
    elif isinstance(key, dsa.DSAPublicKey) and key.key_size < MIN_DSA_BITS:
        problem = f"a DSA key of {key.key_size} bits; {_BROKER_REFUSES} under {MIN_DSA_BITS}"
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < MIN_EC_BITS:
        problem = (
            f"an elliptic-curve key of {key.curve.key_size} bits ({key.curve.name});"
            f" {_BROKER_REFUSES} under {MIN_EC_BITS}"
        )
    elif not isinstance(key, _SIGNING_KEYS):
        problem = "a key that cannot sign certificates"
    if problem is not None:
        raise CertificateRefused(
            RefusalReason.WEAK_KEY,
            f"the CA has {problem}, so no device it signed could connect; use a stronger key",
        )
    try:
        digest = cert.signature_hash_algorithm
        weak = digest is not None and digest.name in _WEAK_HASHES
    except UnsupportedAlgorithm:  # MD2, MD4 …: nothing OpenSSL 3 verifies either
        weak = True
    if weak:
        shown = _JAVA_ALGORITHM_NAMES.get(algorithm_oid, algorithm_oid.dotted_string)
        raise CertificateRefused(
            RefusalReason.WEAK_SIGNATURE,
            f"the certificate is signed with {shown}: SHA-1 and MD5 signatures are refused"
            f" ({_BROKER_REFUSES} them in a device's chain, and they can be forged); have"
            " the CA certificate signed with SHA-256 or stronger",
        )


def _pem(der: bytes) -> str:
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"
