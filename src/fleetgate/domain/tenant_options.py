"""Tenant options: Cumulocity's category/key/value settings of a tenant, and the ones
fleetgate itself reads.

An option is three strings. Any category may be stored (scripts written for Cumulocity
keep their own settings there), bounded and storable; the categories fleetgate reads
(:data:`FLEETGATE_OPTIONS`) hold only the keys it knows, with values it can read, so that
a misspelt key or value is refused instead of silently doing nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.gateways import TENANT_OPTION

#: Longest category and key (characters), as the ``tenant_option`` table holds them.
MAX_NAME = 256
#: Longest value (characters).
MAX_VALUE = 64 * 1024

#: Whether gateways of the tenant may register unknown children with their first
#: ``inventory`` message (docs/protocol.md, "Gateways and their children"); "true" when unset.
GATEWAYS, CHILD_AUTO_REGISTRATION = TENANT_OPTION
_BOOLEAN_VALUES = ("true", "false")

#: fleetgate's own categories: each key it reads, with the values it accepts.
FLEETGATE_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    GATEWAYS: {CHILD_AUTO_REGISTRATION: _BOOLEAN_VALUES},
}
#: Cumulocity encrypts the values of keys with this prefix; fleetgate does not, so it
#: refuses them rather than keep a secret in plain text that the caller believes encrypted.
CREDENTIALS_PREFIX = "credentials."


@dataclass(frozen=True, slots=True)
class TenantOption:
    category: str
    key: str
    value: str


def check_name(what: str, name: object) -> str:
    """A category or key: 1 to :data:`MAX_NAME` characters without ``/`` (it is a path
    segment of ``/tenant/options/{category}/{key}``) or NUL."""
    if not isinstance(name, str):
        raise ValidationFailed(f"{what} must be a string")
    if not 1 <= len(name) <= MAX_NAME:
        raise ValidationFailed(f"{what} must have 1 to {MAX_NAME} characters")
    if "/" in name:
        raise ValidationFailed(
            f"{what} cannot hold '/': options are addressed as /tenant/options/{{category}}/{{key}}"
        )
    if "\x00" in name:
        raise ValidationFailed(f"{what} holds a NUL character (\\u0000), which cannot be stored")
    return name


def check_option(category: object, key: object, value: object) -> TenantOption:
    """The option to store, or :class:`ValidationFailed` naming what is wrong."""
    category = check_name("category", category)
    key = check_name("key", key)
    if key.startswith(CREDENTIALS_PREFIX):
        raise ValidationFailed(
            f"keys starting with {CREDENTIALS_PREFIX!r} are encrypted by Cumulocity; fleetgate"
            " does not encrypt option values, so it does not store them"
        )
    if not isinstance(value, str):
        raise ValidationFailed('value must be a string (send "true", not true)')
    if len(value) > MAX_VALUE:
        raise ValidationFailed(f"value must have at most {MAX_VALUE} characters")
    if "\x00" in value:
        raise ValidationFailed("value holds a NUL character (\\u0000), which cannot be stored")
    known = FLEETGATE_OPTIONS.get(category)
    if known is not None:
        if key not in known:
            raise ValidationFailed(
                f"the category {category} holds fleetgate's own options: {', '.join(known)};"
                f" {key!r} is none of them"
            )
        if value not in known[key]:
            allowed = " or ".join(repr(v) for v in known[key])
            raise ValidationFailed(f"{category}/{key} must be {allowed}, not {value[:40]!r}")
    return TenantOption(category, key, value)


def child_auto_registration(value: str | None) -> bool:
    """The tenant's ``fleetgate.gateways`` / ``childAutoRegistration``: on unless "false"
    (``value`` is None when the option is not set)."""
    return value != "false"
