"""Operator users: what a user name and a password may be, what a create or update body
says, which roles an administrator may hand out, and which role changes would lock the
tenant's administrators out. Device users (``device_<id>``) are not operators: the device
flows make and remove them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetgate.domain.devices import DEVICE_USER_PREFIX
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.users import Role, User

#: Cumulocity: "less than 1000 characters"; the table's CHECK holds the same bound.
MAX_USERNAME = 1000
#: Characters a user name may not hold (Cumulocity: whitespace, ``/``, ``+``, ``$``,
#: ``:``; ``/`` and ``:`` would also break ``tenant/user:password``).
_USERNAME_FORBIDDEN = frozenset("/+$:")
MIN_PASSWORD = 8
#: Bounds what one login makes scrypt read (the key derivation hashes the whole password).
MAX_PASSWORD = 128
MAX_TEXT = 254  # email, firstName, lastName

#: The roles that make a user an administrator of users (either one suffices).
USER_ADMIN_ROLES: frozenset[Role] = frozenset({Role.USER_MANAGEMENT_ADMIN, Role.TENANT_ADMIN})
#: Never assignable over the API: the device flows own them.
_DEVICE_ROLES = frozenset({Role.DEVICE, Role.DEVICE_BOOTSTRAP})

_PROFILE_FIELDS = {"email": "email", "firstName": "first_name", "lastName": "last_name"}
_READ_ONLY = {
    "id",
    "self",
    "userName",
    "effectiveRoles",
    "lastPasswordChange",
    "devicePermissions",
    "shouldResetPassword",
    "locked",
    "lockedUntil",
}


@dataclass(frozen=True, slots=True)
class NewOperator:
    username: str
    password: str
    enabled: bool = True
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None


@dataclass(frozen=True, slots=True)
class OperatorChanges:
    """What a PUT changes; ``None`` leaves a field as it is (``profile`` lists the profile
    fields given, a JSON ``null`` among them clears that field)."""

    enabled: bool | None = None
    password: str | None = None
    profile: tuple[tuple[str, str | None], ...] = ()


def is_device_user(user: User) -> bool:
    return Role.DEVICE in user.roles


def check_username(username: object) -> str:
    """A valid operator user name, or :class:`ValidationFailed` saying what is wrong."""
    if not isinstance(username, str) or not username:
        raise ValidationFailed("userName must be a non-empty string")
    if len(username) > MAX_USERNAME:
        raise ValidationFailed(f"userName must be at most {MAX_USERNAME} characters")
    if any(c in _USERNAME_FORBIDDEN or c.isspace() or not c.isprintable() for c in username):
        raise ValidationFailed(
            "userName must not hold whitespace, control characters or any of / + $ :"
        )
    if username.startswith(DEVICE_USER_PREFIX):
        raise ValidationFailed(
            f"userName must not start with {DEVICE_USER_PREFIX}: device users are made "
            "by the device flows"
        )
    return username


def check_password(password: object, username: str) -> str:
    """A password an operator may have: 8 to 128 characters, printable (no control
    characters), not the user name."""
    if not isinstance(password, str):
        raise ValidationFailed("password must be a string")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValidationFailed(f"password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    if not password.isprintable():
        raise ValidationFailed("password must not hold control characters")
    if password.casefold() == username.casefold():
        raise ValidationFailed("password must not be the user name")
    return password


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body[key]
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT or not value.isprintable():
        raise ValidationFailed(f"{key} must be printable text of at most {MAX_TEXT} characters")
    return value


def _enabled(body: dict[str, Any]) -> bool | None:
    if "enabled" not in body:
        return None
    if not isinstance(body["enabled"], bool):
        raise ValidationFailed("enabled must be true or false")
    return body["enabled"]


def _unknown(body: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise ValidationFailed(f"unknown or unsupported fields: {', '.join(unknown)}")


def read_new_operator(body: dict[str, Any]) -> NewOperator:
    """The operator a POST body describes (Cumulocity's user fields)."""
    _unknown(body, {"userName", "password", "enabled", *_PROFILE_FIELDS, *_READ_ONLY})
    username = check_username(body.get("userName"))
    if "password" not in body:
        raise ValidationFailed("password is required")
    password = check_password(body["password"], username)
    enabled = _enabled(body)
    profile = {field: _text(body, key) for key, field in _PROFILE_FIELDS.items() if key in body}
    return NewOperator(username, password, True if enabled is None else enabled, **profile)


def read_changes(body: dict[str, Any], user: User) -> OperatorChanges:
    """What a PUT body changes for ``user``; a device user's only changeable field is
    ``enabled``."""
    if is_device_user(user):
        _unknown(body, {"enabled", "id", "userName", "self"})
        enabled = _enabled(body)
        if enabled is None:
            raise ValidationFailed("enabled must be true or false")
        return OperatorChanges(enabled=enabled)
    _unknown(body, {"enabled", "password", *_PROFILE_FIELDS, *_READ_ONLY})
    if "userName" in body and body["userName"] != user.username:
        raise ValidationFailed("userName cannot change")
    password = check_password(body["password"], user.username) if "password" in body else None
    profile = tuple(
        (field, _text(body, key)) for key, field in _PROFILE_FIELDS.items() if key in body
    )
    return OperatorChanges(enabled=_enabled(body), password=password, profile=profile)


def assignable_roles(is_management: bool) -> frozenset[Role]:
    """What an administrator may give an operator: every role but the device ones, and
    tenant management only in the management tenant."""
    roles = frozenset(Role) - _DEVICE_ROLES
    return roles if is_management else roles - {Role.TENANT_MANAGEMENT_ADMIN}


def check_role_assignment(role: Role, user: User, *, is_management: bool) -> None:
    if is_device_user(user):
        raise ValidationFailed("the roles of a device user are fixed by the device flows")
    if role not in assignable_roles(is_management):
        raise ValidationFailed(f"{role.value} cannot be assigned to an operator of this tenant")


def roles_to_keep(username: str, *, caller: str) -> frozenset[Role]:
    """What a removal must leave the user one of: the caller keeps a user-administration
    role; anyone else's roles may all go."""
    return USER_ADMIN_ROLES if username == caller else frozenset()


def check_role_removal(role: Role, user: User, *, caller: str) -> None:
    """An administrator cannot take away their own last user-administration role."""
    if is_device_user(user):
        raise ValidationFailed("the roles of a device user are fixed by the device flows")
    last = not (user.roles & USER_ADMIN_ROLES) - {role}
    if user.username == caller and role in USER_ADMIN_ROLES and last:
        raise ValidationFailed(
            f"you cannot remove {role.value}, your last user administration role"
        )
