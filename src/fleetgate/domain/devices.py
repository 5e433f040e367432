"""Devices as managed objects: identity rules, registration and connection fragments.

A device's identity in the broker is its external id of type ``c8y_Serial``: it is the
MQTT client id and, for certificate devices, the certificate's CN. Its user is
``device_<id>`` (as in Cumulocity). Client ids are global in the broker, so two tenants
cannot both connect a device with the same id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Connection status and fragments live with the rest of online/offline (re-exported).
from fleetgate.domain.connections import ConnectionStatus as ConnectionStatus
from fleetgate.domain.connections import connection_fragments as connection_fragments
from fleetgate.domain.errors import Conflict, ValidationFailed

DEVICE_ID_TYPE = "c8y_Serial"
DEVICE_USER_PREFIX = "device_"
#: What auto-registration names a device's type when the device has not said.
DEFAULT_DEVICE_TYPE = "c8y_MQTTDevice"
#: The password hash of a certificate device's user: matches no password, ever.
NO_PASSWORD = "!certificate-only"  # noqa: S105 — not a password: matches none
#: A device id is at once the MQTT client id, a topic level (``fg/d/<id>/``), the CN of its
#: certificate and part of its user name (``device_<id>``, and ``<tenant>/device_<id>`` in
#: MQTT and HTTP Basic, where ``:`` would end the user name): 1 to ``DEVICE_ID_MAX``
#: printable ASCII characters, no space, none of ``DEVICE_ID_FORBIDDEN``. The broker
#: plugin applies the same rule at CONNECT (``fg_is_device_id``; a test holds the two
#: together), so a device the service would refuse never gets in.
DEVICE_ID_MAX = 128
DEVICE_ID_FORBIDDEN = "/+#$:"
_DEVICE_ID = re.compile(f"[!-~]{{1,{DEVICE_ID_MAX}}}", re.ASCII)


def is_device_id(value: str) -> bool:
    """True when ``value`` is a device id (see :data:`DEVICE_ID_MAX`)."""
    return _DEVICE_ID.fullmatch(value) is not None and not any(
        c in value for c in DEVICE_ID_FORBIDDEN
    )


def check_device_id(value: str) -> str:
    """``value`` when it is a device id, else :class:`ValidationFailed` saying why."""
    if is_device_id(value):
        return value
    if not value or len(value) > DEVICE_ID_MAX:
        raise ValidationFailed(f"a device id must have 1 to {DEVICE_ID_MAX} characters")
    bad = sorted({c for c in value if c in DEVICE_ID_FORBIDDEN or not "!" <= c <= "~"})
    raise ValidationFailed(
        f"a device id is printable ASCII without spaces or {' '.join(DEVICE_ID_FORBIDDEN)}"
        f" (it is also the MQTT client id, a topic level and part of the user name); this one"
        f" holds {', '.join(repr(c) for c in bad)}"
    )


def device_id_taken(device_id: str) -> Conflict:
    """The answer to giving a device an id that a device (or a new device request) of
    another tenant holds: device ids are global (decision 0006)."""
    return Conflict(
        f"The device id {device_id} is in use in another tenant: a device id is the device's"
        " MQTT client id, unique in the whole installation",
        code="identity/Duplicate",
    )


#: Longest external id type and value (characters), as the external_id table holds them.
MAX_EXTERNAL_ID = 1000


def check_external_id(type: object, value: object) -> tuple[str, str]:
    """(type, externalId) of a new external id: strings of 1 to 1,000 characters; a
    ``c8y_Serial`` is a device id too (:func:`check_device_id`)."""
    if not isinstance(type, str) or not isinstance(value, str):
        raise ValidationFailed("type and externalId must be strings")
    for name, text in (("type", type), ("externalId", value)):
        if not 1 <= len(text) <= MAX_EXTERNAL_ID:
            raise ValidationFailed(f"{name} must have 1 to {MAX_EXTERNAL_ID} characters")
    if type == DEVICE_ID_TYPE:
        check_device_id(value)
    return type, value


def device_username(device_id: str) -> str:
    return f"{DEVICE_USER_PREFIX}{device_id}"


def device_id_of_user(username: str) -> str | None:
    if username.startswith(DEVICE_USER_PREFIX) and len(username) > len(DEVICE_USER_PREFIX):
        return username[len(DEVICE_USER_PREFIX) :]
    return None


@dataclass(frozen=True, slots=True)
class Registration:
    object_id: int
    #: True when this call made the managed object (the device was new).
    created: bool
    #: True when this call made the device user (new device, or its user had been deleted).
    user_created: bool
    user_enabled: bool


@dataclass(frozen=True, slots=True)
class ManagedObject:
    id: int
    tenant_id: str
    name: str | None
    type: str | None
    owner: str | None
    creation_time: datetime
    last_updated: datetime
    fragments: dict[str, Any] = field(default_factory=dict)

    @property
    def is_device(self) -> bool:
        return "c8y_IsDevice" in self.fragments


def registration_fragments(ca_fingerprint: str | None) -> dict[str, Any]:
    """Fragments of a device registered on its first certificate connection."""
    return {"c8y_IsDevice": {}, **ca_fragment(ca_fingerprint)}


def ca_fragment(ca_fingerprint: str | None) -> dict[str, Any]:
    """``fleetgate_CertificateAuthority``: the CA of a device's last certificate login
    (nothing for a password login)."""
    if not ca_fingerprint:
        return {}
    return {"fleetgate_CertificateAuthority": {"fingerprint": ca_fingerprint}}


#: Keys of the managed object representation that are not fragments.
RESERVED_KEYS = frozenset(
    {
        "id",
        "self",
        "name",
        "type",
        "owner",
        "creationTime",
        "lastUpdated",
        "childDevices",
        "childAssets",
        "childAdditions",
        "deviceParents",
        "assetParents",
        "additionParents",
    }
)


#: Read-only keys that a client may send back (a read-modify-write round trip, or
#: Cumulocity's own clients, which send the whole object): ignored whatever their value,
#: as Cumulocity ignores them. ``id`` is not among them: it must name the object itself.
ECHOED_KEYS = RESERVED_KEYS - {"id", "name", "type", "owner"}


def split_managed_object_body(
    body: dict[str, Any], object_id: int | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a request body into (name/type/owner, fragments).

    For a new object (``object_id`` None) every read-only key is refused. For an update of
    ``object_id`` the read-only keys a client echoes back (:data:`ECHOED_KEYS`) are
    ignored, and ``id`` is accepted only when it is this object's own id (as a string or
    an integer): a different id is refused, never silently taken for another object.
    """
    if object_id is None:
        read_only = sorted(k for k in body if k in RESERVED_KEYS - {"name", "type", "owner"})
        if read_only:
            raise ValidationFailed(f"read-only properties cannot be set: {', '.join(read_only)}")
    elif "id" in body and not _same_id(body["id"], object_id):
        raise ValidationFailed(
            f"read-only properties cannot be set: id (the body names {str(body['id'])[:40]!r},"
            f" the object is {object_id})"
        )
    plain = plain_fields(body, ("name", "type", "owner"))
    fragments = {k: v for k, v in body.items() if k not in plain and k not in RESERVED_KEYS}
    return plain, fragments


def _same_id(sent: object, object_id: int) -> bool:
    if isinstance(sent, bool):
        return False
    if isinstance(sent, int):
        return sent == object_id
    return isinstance(sent, str) and sent == str(object_id)


def plain_fields(body: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Those of ``keys`` (name, type, owner: managed-object columns) that ``body`` sets;
    each must be a string or null."""
    plain: dict[str, Any] = {k: body[k] for k in keys if k in body}
    for key, value in plain.items():
        if value is not None and not isinstance(value, str):
            raise ValidationFailed(f"{key} must be a string")
    return plain
