"""Tenants as the management tenant manages them (Cumulocity's ``/tenant/tenants``): what a
tenant id, a domain and the other fields may be, what a create or update body says, and
which changes are refused (the management tenant is never suspended nor deleted).

A tenant id is everywhere at once: the first part of ``tenant/username`` in every login,
a single MQTT topic level (``fg/bootstrap/<tenant>/…``), a field of the broker plugin's
control lines and of device usernames, a path segment. So it is narrow: a lowercase
letter, then up to 61 lowercase letters, digits, ``_`` or ``-`` (the ``tenant`` table's
CHECK holds the same rule).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.operators import check_password, check_username
from fleetgate.domain.users import Role

TENANT_ID = re.compile(r"[a-z][a-z0-9_-]{0,61}")
MAX_TENANT_ID = 62
#: Cumulocity: company and domain "maximum 256 characters"; a domain is a DNS name here.
MAX_COMPANY = 256
MAX_DOMAIN = 253
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
MAX_CONTACT_NAME = 256
MAX_CONTACT_PHONE = 64
_PHONE = re.compile(r"\+?[0-9][0-9 ()./-]{0,62}")
MAX_EMAIL = 254


class TenantStatus(StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"


@dataclass(frozen=True, slots=True)
class TenantRecord:
    """A tenant with everything ``/tenant/tenants`` shows of it."""

    id: str
    is_management: bool
    status: TenantStatus
    created_at: datetime
    domain: str | None = None
    company: str | None = None
    contact_name: str | None = None
    contact_phone: str | None = None
    admin_email: str | None = None
    admin_name: str | None = None

    @property
    def suspended(self) -> bool:
        return self.status is TenantStatus.SUSPENDED


@dataclass(frozen=True, slots=True)
class NewTenant:
    """A tenant to create; ``id`` None: the service makes one (``t`` and 8 digits)."""

    id: str | None
    company: str
    domain: str
    admin_name: str
    admin_password: str
    admin_email: str | None = None
    contact_name: str | None = None
    contact_phone: str | None = None


@dataclass(frozen=True, slots=True)
class NewTenantRows:
    """A tenant to store with its administrator and bootstrap user (hashes made)."""

    id: str
    company: str
    domain: str
    admin_name: str
    admin_hash: str
    admin_roles: frozenset[Role]
    bootstrap_name: str
    bootstrap_hash: str
    bootstrap_roles: frozenset[Role]
    admin_email: str | None = None
    contact_name: str | None = None
    contact_phone: str | None = None


@dataclass(frozen=True, slots=True)
class DeletedTenant:
    """What a committed tenant deletion leaves for the broker and the file store."""

    tenant_id: str
    device_ids: tuple[str, ...]
    file_sha256s: tuple[str, ...]


#: The columns a PUT may change, by their ``TenantRecord`` names.
PROFILE_FIELDS = ("company", "domain", "contact_name", "contact_phone", "admin_email")


@dataclass(frozen=True, slots=True)
class TenantChanges:
    """What a PUT changes: ``profile`` lists the fields given (a JSON ``null`` clears an
    optional one); ``status`` None leaves it; ``admin_password`` is the administrator's
    new password (Cumulocity's ``adminPass``)."""

    profile: tuple[tuple[str, str | None], ...] = ()
    status: TenantStatus | None = None
    admin_password: str | None = None


def is_tenant_id(value: object) -> bool:
    return isinstance(value, str) and TENANT_ID.fullmatch(value) is not None


def check_tenant_id(value: object) -> str:
    """A valid tenant id, or :class:`ValidationFailed` saying what one must be."""
    if not is_tenant_id(value):
        raise ValidationFailed(
            "id must be a lowercase letter followed by at most 61 lowercase letters, digits, _ or -"
        )
    assert isinstance(value, str)
    return value


def check_domain(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_DOMAIN or _DOMAIN.fullmatch(value) is None:
        raise ValidationFailed(
            f"domain must be a DNS name of at most {MAX_DOMAIN} characters: letters, digits"
            " and hyphens in labels separated by dots"
        )
    return value.lower()


def _text(body: dict[str, Any], key: str, limit: int, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise ValidationFailed(f"{key} is required")
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ValidationFailed(f"{key} must be non-empty text of at most {limit} characters")
    if not value.isprintable():
        raise ValidationFailed(f"{key} must not hold control characters")
    return value


def _phone(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or _PHONE.fullmatch(value) is None:
        raise ValidationFailed(
            f"{key} must be a phone number in the international format, e.g. +48 123 456 7890"
        )
    return value


def _email(body: dict[str, Any], key: str) -> str | None:
    value = _text(body, key, MAX_EMAIL)
    if value is not None and (value.count("@") != 1 or " " in value):
        raise ValidationFailed(f"{key} must be an e-mail address")
    return value


#: Fields Cumulocity shows and a client may send back; ignored on input.
_READ_ONLY = {
    "self",
    "creationTime",
    "allowCreateTenants",
    "parent",
    "applications",
    "ownedApplications",
    "customProperties",
    "id",
    "adminName",
    "status",
}


def _unknown(body: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise ValidationFailed(f"unknown or unsupported fields: {', '.join(unknown)}")


def _admin_password(value: object, admin_name: str) -> str:
    try:
        return check_password(value, admin_name)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message.replace("password", "adminPass", 1)) from None


def read_new_tenant(body: dict[str, Any]) -> NewTenant:
    """The tenant a POST body describes (Cumulocity's tenant fields)."""
    _unknown(
        body,
        {
            "company",
            "domain",
            "adminPass",
            "adminEmail",
            "contactName",
            "contactPhone",
            *_READ_ONLY,
        },
    )
    tenant_id = check_tenant_id(body["id"]) if body.get("id") is not None else None
    if body.get("status") not in (None, TenantStatus.ACTIVE.value):
        raise ValidationFailed("a new tenant is ACTIVE: suspend it with a PUT afterwards")
    company = _text(body, "company", MAX_COMPANY, required=True)
    assert company is not None
    if body.get("domain") is None:
        raise ValidationFailed("domain is required")
    domain = check_domain(body["domain"])
    if body.get("adminName") is None:
        raise ValidationFailed("adminName is required")
    admin_name = check_username(body["adminName"])
    if body.get("adminPass") is None:
        raise ValidationFailed("adminPass is required")
    admin_password = _admin_password(body["adminPass"], admin_name)
    return NewTenant(
        id=tenant_id,
        company=company,
        domain=domain,
        admin_name=admin_name,
        admin_password=admin_password,
        admin_email=_email(body, "adminEmail"),
        contact_name=_text(body, "contactName", MAX_CONTACT_NAME),
        contact_phone=_phone(body, "contactPhone"),
    )


def _status(value: object) -> TenantStatus:
    try:
        return TenantStatus(str(value)) if isinstance(value, str) else TenantStatus("")
    except ValueError:
        raise ValidationFailed("status must be ACTIVE or SUSPENDED") from None


def read_tenant_changes(body: dict[str, Any], current: TenantRecord) -> TenantChanges:
    """What a PUT body changes for ``current``: ``company``, ``domain``, ``contactName``,
    ``contactPhone``, ``adminEmail`` (the admin user's too), ``adminPass`` (the admin
    user's password), ``status`` (suspend / reactivate). The id cannot change;
    ``adminName`` is ignored, as Cumulocity ignores it."""
    _unknown(
        body,
        {
            "company",
            "domain",
            "adminEmail",
            "contactName",
            "contactPhone",
            "adminPass",
            *_READ_ONLY,
        },
    )
    if "id" in body and body["id"] != current.id:
        raise ValidationFailed("id cannot change")
    profile: list[tuple[str, str | None]] = []
    if "company" in body:
        profile.append(("company", _text(body, "company", MAX_COMPANY, required=True)))
    if "domain" in body:
        profile.append(("domain", check_domain(body["domain"])))
    if "contactName" in body:
        profile.append(("contact_name", _text(body, "contactName", MAX_CONTACT_NAME)))
    if "contactPhone" in body:
        profile.append(("contact_phone", _phone(body, "contactPhone")))
    if "adminEmail" in body:
        profile.append(("admin_email", _email(body, "adminEmail")))
    status = _status(body["status"]) if "status" in body else None
    if status is TenantStatus.SUSPENDED and current.is_management:
        raise ValidationFailed("the management tenant cannot be suspended")
    admin_password = None
    if body.get("adminPass") is not None:
        admin_password = _admin_password(body["adminPass"], current.admin_name or "")
    return TenantChanges(profile=tuple(profile), status=status, admin_password=admin_password)


def check_deletion(tenant: TenantRecord) -> None:
    if tenant.is_management:
        raise ValidationFailed("the management tenant cannot be deleted")


def suspended_message(tenant_id: str) -> str:
    """What a suspended tenant's operator is told (401), and the broker's log reason."""
    return f"tenant {tenant_id} is suspended"
