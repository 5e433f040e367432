"""Trusted certificates: the CAs whose devices may connect, and the rules they obey.

A tenant uploads the certificate of a CA (a root or an intermediate) in PEM; reading it
and the rules it must pass are :mod:`fleetgate.domain.certificates`. Once stored, only the
name, the status and the auto-registration flag can be edited (:func:`apply_update`), and
no two stored CAs may share a subject (:func:`subject_key`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from cryptography import x509
from cryptography.x509.oid import NameOID

from fleetgate.domain.certificates import (
    CertificateFacts,
    iso_timestamp,
    parse_trusted_certificate,
)
from fleetgate.domain.errors import Conflict, ValidationFailed

__all__ = [
    "MAX_NAME_LENGTH",
    "TrustStatus",
    "TrustedCertificate",
    "apply_update",
    "certificate_from_upload",
    "default_name",
    "new_trusted_certificate",
    "parse_flag",
    "parse_name",
    "parse_status",
    "read_only_values",
]

MAX_NAME_LENGTH = 1000


class TrustStatus(StrEnum):
    """Whether devices whose certificates this CA signed may connect."""

    ENABLED = "ENABLED"
    DISABLED = "DISABLED"


def subject_key(subject: str) -> str:
    """A subject name as OpenSSL compares names (``X509_NAME_cmp`` on the canonical form):
    letter case and runs of white space do not count. Two trusted CAs with one key cannot
    both be found by the broker's TLS, which looks a CA up by its subject."""
    return " ".join(subject.split()).lower()


def subject_taken(subject: str) -> Conflict:
    return Conflict(
        f"a trusted certificate with the subject {subject!r} is stored already (in this or"
        " another tenant): the broker's TLS finds a device's CA by its subject and would"
        " only ever try one of the two; give this CA a subject of its own"
    )


@dataclass(frozen=True, slots=True)
class TrustedCertificate:
    """A CA certificate trusted by one tenant, with the settings its operator chose."""

    tenant_id: str
    name: str
    status: TrustStatus
    auto_registration: bool
    facts: CertificateFacts

    @property
    def fingerprint(self) -> str:
        return self.facts.fingerprint

    @property
    def enabled(self) -> bool:
        return self.status is TrustStatus.ENABLED


# --- creating and editing -----------------------------------------------------------


def default_name(facts: CertificateFacts) -> str:
    """The subject's common name, else the whole subject: a name when none was given."""
    cert = x509.load_der_x509_certificate(facts.der)
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if common and isinstance(common[0].value, str) and common[0].value:
        return common[0].value
    return facts.subject or facts.fingerprint


def new_trusted_certificate(
    tenant_id: str,
    facts: CertificateFacts,
    *,
    name: str | None,
    status: TrustStatus,
    auto_registration: bool,
) -> TrustedCertificate:
    """A tenant's new trusted certificate; without a name, the subject's CN is used."""
    chosen = default_name(facts) if name is None else _check_name(name)
    return TrustedCertificate(tenant_id, chosen, status, auto_registration, facts)


def _check_name(name: str) -> str:
    if not name.strip():
        raise ValidationFailed("name: must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationFailed(f"name: must be at most {MAX_NAME_LENGTH} characters")
    return name


def read_only_values(cert: TrustedCertificate) -> dict[str, object]:
    """The representation's read-only fields and their values (``self`` excepted)."""
    facts = cert.facts
    return {
        "fingerprint": facts.fingerprint,
        "subject": facts.subject,
        "issuer": facts.issuer,
        "serialNumber": facts.serial_number,
        "algorithmName": facts.algorithm_name,
        "version": facts.version,
        "notBefore": iso_timestamp(facts.not_before),
        "notAfter": iso_timestamp(facts.not_after),
        "certInPemFormat": facts.pem,
    }


def _same_read_only(field: str, sent: object, current: object) -> bool:
    if field == "certInPemFormat" and isinstance(sent, str) and isinstance(current, str):
        # Compare the base64 bodies: line breaks and BEGIN/END lines may differ.
        def strip(text: str) -> str:
            return "".join(
                line.strip() for line in text.splitlines() if not line.startswith("-----")
            )

        return strip(sent) == strip(current)
    if field == "version" and isinstance(sent, str):
        return sent == str(current)
    return sent == current


def parse_flag(field: str, value: object) -> bool:
    """A JSON boolean; ``"true"``/``"false"`` too, as Cumulocity's own examples send them."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValidationFailed(f"{field}: must be true or false")


def parse_status(value: object) -> TrustStatus:
    if isinstance(value, str) and value in TrustStatus.__members__:
        return TrustStatus(value)
    raise ValidationFailed("status: must be ENABLED or DISABLED")


def parse_name(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationFailed("name: must be a string")
    return _check_name(value)


_EDITABLE = frozenset({"name", "status", "autoRegistrationEnabled"})
_READ_ONLY = frozenset(
    {
        "fingerprint",
        "subject",
        "issuer",
        "serialNumber",
        "algorithmName",
        "version",
        "notBefore",
        "notAfter",
        "certInPemFormat",
    }
)
#: Fields a client may send back unchanged from a GET but which we do not compare.
_IGNORED = frozenset({"self", "tenantId"})


def apply_update(cert: TrustedCertificate, changes: Mapping[str, object]) -> TrustedCertificate:
    """The certificate after an operator's edit (the body of a PUT).

    Only ``name``, ``status`` and ``autoRegistrationEnabled`` may change. A read-only
    field (``certInPemFormat``, ``fingerprint``, ``subject``, ...) may be sent back with
    its current value, so that GET → edit → PUT works; a different value is refused with
    a 422 naming the field, never silently dropped. Unknown fields are refused too, so a
    misspelt field name is not mistaken for a successful edit.
    """
    unknown = sorted(set(changes) - _EDITABLE - _READ_ONLY - _IGNORED)
    if unknown:
        raise ValidationFailed(
            f"{', '.join(unknown)}: unknown field; only name, status and "
            "autoRegistrationEnabled can be changed"
        )
    current = read_only_values(cert)
    for field in sorted(_READ_ONLY & set(changes)):
        if not _same_read_only(field, changes[field], current[field]):
            raise ValidationFailed(
                f"{field}: is read-only and cannot be changed; to trust another "
                "certificate, upload it and delete this one"
            )
    updated = cert
    if "name" in changes:
        updated = replace(updated, name=parse_name(changes["name"]))
    if "status" in changes:
        updated = replace(updated, status=parse_status(changes["status"]))
    if "autoRegistrationEnabled" in changes:
        updated = replace(
            updated,
            auto_registration=parse_flag(
                "autoRegistrationEnabled", changes["autoRegistrationEnabled"]
            ),
        )
    return updated


def certificate_from_upload(
    tenant_id: str, body: Mapping[str, object], now: datetime
) -> TrustedCertificate:
    """The trusted certificate a POST body asks for, checked against every rule.

    ``certInPemFormat`` and ``status`` are required (as in Cumulocity); ``name``
    defaults to the subject's common name and ``autoRegistrationEnabled`` to false.
    Read-only fields may be sent if they match the certificate; unknown fields are
    refused.
    """
    unknown = sorted(set(body) - _EDITABLE - _READ_ONLY - _IGNORED)
    if unknown:
        raise ValidationFailed(f"{', '.join(unknown)}: unknown field")
    missing = [f for f in ("certInPemFormat", "status") if body.get(f) is None]
    if missing:
        raise ValidationFailed(f"{', '.join(missing)}: required")
    pem = body["certInPemFormat"]
    if not isinstance(pem, str):
        raise ValidationFailed("certInPemFormat: must be a string holding a PEM certificate")
    status = parse_status(body["status"])
    name = parse_name(body["name"]) if body.get("name") is not None else None
    auto = body.get("autoRegistrationEnabled")
    auto_registration = False if auto is None else parse_flag("autoRegistrationEnabled", auto)
    facts = parse_trusted_certificate(pem, now)
    cert = new_trusted_certificate(
        tenant_id, facts, name=name, status=status, auto_registration=auto_registration
    )
    current = read_only_values(cert)
    for field in sorted((_READ_ONLY - {"certInPemFormat"}) & set(body)):
        if not _same_read_only(field, body[field], current[field]):
            raise ValidationFailed(
                f"{field}: is read-only and is read from the certificate; it does not match"
            )
    return cert
