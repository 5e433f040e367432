"""Tenants, users and the role names that gate every endpoint (Cumulocity's names)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from fleetgate.domain.errors import AuthenticationFailed
from fleetgate.domain.lockout import NO_FAILURES, LoginFailures


class Role(StrEnum):
    """Global roles, as Cumulocity names them."""

    TENANT_ADMIN = "ROLE_TENANT_ADMIN"
    TENANT_MANAGEMENT_ADMIN = "ROLE_TENANT_MANAGEMENT_ADMIN"
    TENANT_MANAGEMENT_READ = "ROLE_TENANT_MANAGEMENT_READ"
    USER_MANAGEMENT_ADMIN = "ROLE_USER_MANAGEMENT_ADMIN"
    USER_MANAGEMENT_READ = "ROLE_USER_MANAGEMENT_READ"
    USER_MANAGEMENT_OWN_READ = "ROLE_USER_MANAGEMENT_OWN_READ"
    USER_MANAGEMENT_OWN_ADMIN = "ROLE_USER_MANAGEMENT_OWN_ADMIN"
    INVENTORY_ADMIN = "ROLE_INVENTORY_ADMIN"
    INVENTORY_READ = "ROLE_INVENTORY_READ"
    INVENTORY_CREATE = "ROLE_INVENTORY_CREATE"
    IDENTITY_ADMIN = "ROLE_IDENTITY_ADMIN"
    IDENTITY_READ = "ROLE_IDENTITY_READ"
    DEVICE_CONTROL_ADMIN = "ROLE_DEVICE_CONTROL_ADMIN"
    DEVICE_CONTROL_READ = "ROLE_DEVICE_CONTROL_READ"
    BULK_OPERATION_ADMIN = "ROLE_BULK_OPERATION_ADMIN"
    BULK_OPERATION_READ = "ROLE_BULK_OPERATION_READ"
    OPTION_MANAGEMENT_ADMIN = "ROLE_OPTION_MANAGEMENT_ADMIN"
    OPTION_MANAGEMENT_READ = "ROLE_OPTION_MANAGEMENT_READ"
    #: The shared account devices use to ask for their credentials; nothing else.
    DEVICE_BOOTSTRAP = "ROLE_DEVICE_BOOTSTRAP"
    #: A device's own user (``device_<id>``).
    DEVICE = "ROLE_DEVICE"


#: What an administrator of an ordinary tenant holds: everything but the device roles.
ADMIN_ROLES: frozenset[Role] = frozenset(
    r for r in Role if r not in {Role.DEVICE_BOOTSTRAP, Role.DEVICE, Role.TENANT_MANAGEMENT_ADMIN}
)
#: The management tenant's administrator may also manage tenants.
MANAGEMENT_ADMIN_ROLES: frozenset[Role] = ADMIN_ROLES | {Role.TENANT_MANAGEMENT_ADMIN}
#: The bootstrap account can ask for device credentials and do nothing else anywhere.
BOOTSTRAP_ROLES: frozenset[Role] = frozenset({Role.DEVICE_BOOTSTRAP})


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    is_management: bool
    domain_name: str | None = None
    #: A suspended tenant's users cannot log in (401) and its devices are refused.
    suspended: bool = False


@dataclass(frozen=True, slots=True)
class User:
    """A user as stored; ``password_hash`` never leaves the service."""

    tenant_id: str
    username: str
    password_hash: str
    enabled: bool
    roles: frozenset[Role]
    last_password_change: datetime
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    #: Failed logins counted against the user and the lock they led to (domain/lockout).
    failures: LoginFailures = NO_FAILURES


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an authenticated, enabled user of a tenant."""

    tenant: Tenant
    user: User
    roles: frozenset[Role] = field(default_factory=frozenset)

    def has(self, role: Role) -> bool:
        return role in self.roles


@dataclass(frozen=True, slots=True)
class Login:
    """Credentials as presented: ``tenant/username`` and a password."""

    tenant_id: str
    username: str
    password: str


def parse_basic_authorization(header: str | None) -> Login:
    """Parse an HTTP ``Authorization: Basic`` header holding ``tenant/username:password``.

    Raises :class:`AuthenticationFailed` with a message saying what is wrong.
    """
    if not header:
        raise AuthenticationFailed("Full authentication is required to access this resource")
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise AuthenticationFailed("Only Basic authentication is supported")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthenticationFailed("Malformed Basic authorization header") from None
    login, sep, password = decoded.partition(":")
    if not sep or "\x00" in login:  # a tenant or user name with NUL cannot be looked up
        raise AuthenticationFailed("Malformed Basic authorization header")
    tenant_id, slash, username = login.partition("/")
    if not slash or not tenant_id or not username:
        raise AuthenticationFailed(
            "Invalid credentials! : the user name must be given as <tenant>/<username>"
        )
    return Login(tenant_id, username, password)


def mqtt_username(tenant_id: str, username: str) -> str:
    """The MQTT user name of a fleetgate user, ``<tenant>/<username>`` as in Cumulocity."""
    return f"{tenant_id}/{username}"
